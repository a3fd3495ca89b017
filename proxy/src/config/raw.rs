//! The serde-facing shape of the config file.
//!
//! Deliberately dumb: strings stay strings here (durations, addresses, CIDRs, algorithms, URLs) and are parsed in
//! `load`, where the error can say which key on which line is wrong in our own words. Only closed sets of words are
//! serde enums, because serde's "unknown variant `x`, expected `a` or `b`" is already the right message. Every
//! struct refuses unknown keys: a typo must be an error, never a silently ignored setting.
//!
//! Secrets come as a pair `x` / `x_file`; `load` refuses both being set.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    pub provider: RawProvider,
    #[serde(default)]
    pub identity: RawIdentity,
    #[serde(default)]
    pub session: RawSession,
    #[serde(default)]
    pub hosts: Vec<RawHost>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub threads: Option<usize>,
    pub trusted_proxies: Option<Vec<String>>,
    pub health_path: Option<String>,
    pub admin_listen: Option<String>,
    pub grace_period: Option<String>,
    pub shutdown_timeout: Option<String>,
    pub log_format: Option<RawLogFormat>,
    pub upstream_connect_timeout: Option<String>,
    pub upstream_read_timeout: Option<String>,
    pub upstream_idle_timeout: Option<String>,
    pub downstream_idle_timeout: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawLogFormat {
    Json,
    Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// Entra shorthand; exactly one of `tenant_id` / `issuer`.
    pub tenant_id: Option<String>,
    pub issuer: Option<String>,
    pub discovery_url: Option<String>,
    pub extra_issuers: Option<Vec<String>>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub client_auth: Option<RawClientAuth>,
    pub private_key: Option<String>,
    pub private_key_file: Option<String>,
    pub certificate_thumbprint: Option<String>,
    pub private_key_id: Option<String>,
    pub audiences: Option<Vec<String>>,
    pub required_tenant: Option<String>,
    pub clock_skew: Option<String>,
    pub algorithms: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub jwks_refresh: Option<String>,
    pub jwks_refetch_cooldown: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    pub header_prefix: Option<String>,
    pub assertion_ttl: Option<String>,
    pub assertion_issuer: Option<String>,
    pub signing_key: Option<String>,
    pub signing_key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    pub store: Option<RawStore>,
    pub cookie_name: Option<String>,
    pub cookie_domain: Option<String>,
    pub keys: Option<Vec<String>>,
    pub keys_file: Option<String>,
    pub inactivity_timeout: Option<String>,
    pub max_lifetime: Option<String>,
    pub refresh_margin: Option<String>,
    pub max_cookie_bytes: Option<usize>,
    pub redis_url: Option<String>,
    pub redis_url_file: Option<String>,
    pub redis_client_cache: Option<bool>,
    #[serde(default)]
    pub paths: RawPaths,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawStore {
    Cookie,
    Redis,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPaths {
    pub login: Option<String>,
    pub callback: Option<String>,
    pub logout: Option<String>,
    pub userinfo: Option<String>,
    pub frontchannel_logout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub name: String,
    pub upstream: Option<String>,
    pub static_root: Option<String>,
    pub login: Option<RawLogin>,
    pub forward_authorization: Option<bool>,
    pub forward_access_token: Option<bool>,
    pub userinfo_access_token: Option<bool>,
    pub claim_headers: Option<RawClaimHeaders>,
    pub claim_headers_access_token: Option<bool>,
    pub allowed_origins: Option<Vec<String>>,
    pub external_url: Option<String>,
    pub security_headers: Option<RawSecurityHeaders>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawLogin {
    Redirect,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawClaimHeaders {
    None,
    ModAuthOpenidc,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecurityHeaders {
    pub hsts: Option<String>,
    pub content_type_options: Option<bool>,
    pub referrer_policy: Option<String>,
    pub content_security_policy: Option<String>,
}

/// One `[[hosts.routes]]`. Requirement lists: every list given must be satisfied; within a list, `scopes` and
/// `roles_all` need all, `scopes_any`, `roles` and `groups` need any one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub path: Option<String>,
    pub exact: Option<String>,
    pub methods: Option<Vec<String>>,
    pub access: Option<RawAccess>,
    #[serde(alias = "scopes_all")]
    pub scopes: Option<Vec<String>>,
    pub scopes_any: Option<Vec<String>>,
    #[serde(alias = "roles_any")]
    pub roles: Option<Vec<String>>,
    pub roles_all: Option<Vec<String>>,
    #[serde(alias = "groups_any")]
    pub groups: Option<Vec<String>>,
    pub claims: Option<Vec<RawClaim>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawAccess {
    Public,
    Authenticated,
}

/// `{ claim = "department", equals = "Sales" }` or `{ claim = "amr", contains = "mfa" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClaim {
    pub claim: String,
    pub equals: Option<String>,
    pub contains: Option<String>,
}
