//! Configuration: one TOML file per service, turned into a validated, typed [`Config`].
//!
//! The file's shape (serde, `deny_unknown_fields`, spans for line numbers) lives in `raw`; this module holds the
//! runtime shape that the rest of the sidecar reads. Every string the filters would otherwise parse on each request
//! (addresses, CIDRs, path prefixes, algorithms) is parsed here once, so a bad value fails at start with the file,
//! line and key, never on a request.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use jsonwebtoken::Algorithm;

pub mod raw;
pub mod env;
mod load;
mod describe;

#[cfg(test)]
pub(crate) use load::DEFAULT_ALGORITHMS;
pub use load::{decode_session_key, load, load_str, load_str_with_env, load_with_env, ConfigError};
pub use describe::{access_words, describe};

/// The whole validated configuration of one sidecar.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (for messages); `<string>` when parsed from memory.
    pub source: PathBuf,
    pub server: ServerConfig,
    pub provider: ProviderConfig,
    pub identity: IdentityConfig,
    pub session: SessionConfig,
    pub hosts: Vec<HostConfig>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the ALB's traffic arrives. Default `0.0.0.0:80`.
    pub listen: SocketAddr,
    /// Worker threads of the proxy service. Default: the number of CPUs.
    pub threads: usize,
    /// Peers whose `X-Forwarded-For/Proto/Host/Port` are believed (the ALB's subnets). Default: none.
    pub trusted_proxies: Vec<IpNet>,
    /// Answered by the sidecar itself on every host (ALB health checks). Default `/healthz`.
    pub health_path: String,
    /// Loopback listener for the assertion JWKS and `/metrics`. Default `127.0.0.1:9901`.
    pub admin_listen: SocketAddr,
    /// After SIGTERM: how long in-flight requests may take. Default 10 s (ECS stopTimeout is 30 s).
    pub grace_period: Duration,
    /// After the grace period: how long runtimes get to stop. Default 5 s.
    pub shutdown_timeout: Duration,
    /// Upstream connect timeout. Default 1 s.
    pub upstream_connect_timeout: Duration,
    /// Upstream read timeout (time to first byte / between reads). Default 60 s.
    pub upstream_read_timeout: Duration,
    /// How long an idle pooled upstream connection is kept. Default 4 s: below uvicorn's 5 s keep-alive.
    pub upstream_idle_timeout: Duration,
    /// How long a client's connection may sit idle between requests before the sidecar closes it. Default `None`:
    /// until the client closes it. Behind the ALB that is what AWS asks of a target (the ALB closes idle
    /// connections at its own idle timeout, whatever it is set to; a target that closes first races it into 502s),
    /// and it spares every request a timer. Dead peers are found by TCP keep-alive either way.
    pub downstream_idle_timeout: Option<Duration>,
    /// `json` (default) or `text`.
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The one OpenID provider (Entra ID or any standard one).
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The primary issuer (`iss` of ID tokens; v2 issuer for Entra).
    pub issuer: String,
    /// Default `issuer + "/.well-known/openid-configuration"`.
    pub discovery_url: String,
    /// Other accepted `iss` values (Entra: the v1 issuer `https://sts.windows.net/{tid}/`).
    pub extra_issuers: Vec<String>,
    pub client_id: String,
    /// From `client_secret` or `client_secret_file`.
    pub client_secret: Option<Secret>,
    pub client_auth: ClientAuth,
    /// Accepted `aud` values of access tokens (Bearer). Compared exactly.
    pub audiences: Vec<String>,
    /// When set, the `tid` claim must equal it (Entra single tenant).
    pub required_tenant: Option<String>,
    /// Leeway on `exp`, `nbf` and `iat`. Default 60 s.
    pub clock_skew: Duration,
    /// Accepted signature algorithms. Default RS256/384/512, PS256/384/512, ES256/384, EdDSA. Never `none` or HS*.
    pub algorithms: Vec<Algorithm>,
    /// Scopes asked at login. Default `openid profile email offline_access`.
    pub scopes: Vec<String>,
    /// Background JWKS refresh interval when the provider gives no Cache-Control. Default 1 h.
    pub jwks_refresh: Duration,
    /// Minimum time between two refetches caused by an unknown `kid`. Default 30 s.
    pub jwks_refetch_cooldown: Duration,
    /// True when configured with the Entra shorthand `tenant_id`.
    pub entra: bool,
}

/// How the sidecar authenticates itself at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
    /// Entra certificate credentials: a PEM private key and the certificate's SHA-1 thumbprint (`x5t`); for other
    /// providers, the `kid` the key was registered under (a provider holding several keys for the client picks by it).
    PrivateKeyJwt { key_pem: Secret, x5t: Option<String>, kid: Option<String> },
}

/// A secret value: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// What the upstream is told about the caller.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Inbound headers with this prefix (case-insensitive) are always removed. Default `X-Auth-`.
    pub header_prefix: String,
    /// Lifetime of `X-Auth-Assertion`. Default 5 min.
    pub assertion_ttl: Duration,
    /// `iss` of the assertion. Default `oidc-sidecar`.
    pub assertion_issuer: String,
    /// PEM (PKCS#8) P-256 private key; generated at start when absent.
    pub signing_key: Option<Secret>,
}

/// Browser sessions (issue 3). Present in every config with defaults so the Bearer path never has to ask.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub store: SessionStore,
    /// Cookie name. Default `__Host-oidc_session`.
    pub cookie_name: String,
    /// Cookie `Domain` (shared between app and api hosts); incompatible with the `__Host-` prefix.
    pub cookie_domain: Option<String>,
    /// Sealing keys, 32 bytes each: the first seals, all open. Each is standard padded base64 of the 32 bytes
    /// (whatever alphabet the file used); [`SessionConfig::key_bytes`] decodes them. Empty = none configured: the
    /// runtime generates an ephemeral key and warns.
    pub keys: Vec<Secret>,
    pub inactivity_timeout: Duration,
    pub max_lifetime: Duration,
    /// Refresh the access token this long before it expires. Default 60 s.
    pub refresh_margin: Duration,
    /// Beyond this many bytes of cookie the login says so and recommends Redis. Default 12 KiB.
    pub max_cookie_bytes: usize,
    /// `redis://` or `rediss://` URL, required when `store = redis`.
    pub redis_url: Option<Secret>,
    /// Keep read sessions in memory, invalidated by Redis itself (RESP3 client tracking) when another task
    /// changes or deletes them. Default true; false for servers without RESP3 (Redis < 6).
    pub redis_client_cache: bool,
    /// Paths of the sidecar's own endpoints.
    pub paths: EndpointPaths,
}

impl SessionConfig {
    /// The sealing keys as bytes, first (sealing) key first. `keys` hold standard padded base64 of 32 bytes, checked
    /// at load, so nothing is dropped here unless a caller built a `SessionConfig` by hand with a bad key.
    pub fn key_bytes(&self) -> Vec<[u8; 32]> {
        self.keys.iter().filter_map(|k| decode_session_key(k.expose())).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStore {
    Cookie,
    Redis,
}

#[derive(Debug, Clone)]
pub struct EndpointPaths {
    pub login: String,
    pub callback: String,
    pub logout: String,
    pub userinfo: String,
    pub frontchannel_logout: String,
}

/// One virtual host and its ordered routes.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Lower-cased host name without port, e.g. `api.example.com`. `*` matches any host.
    pub name: String,
    pub backend: Backend,
    pub routes: Vec<RouteConfig>,
    pub login: LoginMode,
    /// Forward the client's `Authorization` header upstream. Default true.
    pub forward_authorization: bool,
    /// Send the session's access token upstream as `Authorization: Bearer`. Default false.
    pub forward_access_token: bool,
    /// Put the session's access token in this host's `userinfo` answer, for an SPA that calls other APIs with it
    /// itself. Off by default: any script on the page (an XSS included) can then read the token.
    pub userinfo_access_token: bool,
    /// Also send mod_auth_openidc-style `OIDC_CLAIM_*` headers.
    pub claim_headers: ClaimHeaders,
    /// Origins besides the host itself allowed for session-authenticated unsafe methods and CORS.
    pub allowed_origins: Vec<String>,
    /// Response security headers; `None` = add none.
    pub security_headers: Option<SecurityHeaders>,
    /// The external base URL (`https://app.example.com`) used for redirect URIs; from forwarded headers when absent.
    pub external_url: Option<url::Url>,
    /// Line in the config file where this host starts.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// Plain-HTTP upstream on a literal socket address (no DNS on the request path).
    Upstream { addr: SocketAddr, tls: bool, sni: String },
    /// A static SPA build served by the sidecar.
    Static { root: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMode {
    /// Browser navigations are sent to the provider.
    Redirect,
    /// Every unauthenticated request gets 401.
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimHeaders {
    None,
    ModAuthOpenidc { access_token: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityHeaders {
    pub hsts: Option<String>,
    pub content_type_options: bool,
    pub referrer_policy: Option<String>,
    pub content_security_policy: Option<String>,
}

/// One route: which requests it matches and who may pass.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub path: PathMatch,
    /// `None` = any method.
    pub methods: Option<Vec<http::Method>>,
    pub access: Access,
    /// Line in the config file (for `check`, `explain` and log reasons).
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Matches the path itself and everything below it on a segment boundary (`/admin/` or `/admin`).
    Prefix(String),
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Public,
    Authenticated,
    Require(Requirements),
}

/// Claims a caller must have. Every non-empty list must be satisfied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    pub scopes_all: Vec<String>,
    pub scopes_any: Vec<String>,
    /// Any one of these app roles.
    pub roles_any: Vec<String>,
    pub roles_all: Vec<String>,
    /// Any one of these group object ids.
    pub groups_any: Vec<String>,
    pub claims: Vec<ClaimRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRule {
    /// Claim name; dots address nested objects (`realm_access.roles`).
    pub claim: String,
    pub test: ClaimTest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimTest {
    /// The claim (string, number or bool rendered as string) equals the value.
    Equals(String),
    /// The claim is an array holding the value, or a space-separated string holding it as one item.
    Contains(String),
}
