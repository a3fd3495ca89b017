//! The provider-facing half of the browser sign-in: the authorization URL (PKCE S256, `state`, `nonce`), the
//! code and refresh-token exchanges at the token endpoint with the three client authentications Entra accepts,
//! RP-initiated logout, and the plain HTML page shown when the provider refuses a sign-in.
//!
//! Nothing here knows about Pingora or sessions: [`CodeFlow::start`] hands back the values the caller must keep
//! (in the pending-login cookie) and [`CodeFlow::exchange`] / [`CodeFlow::refresh`] hand back the tokens; the caller
//! verifies the ID token with the sidecar's own JWKS cache and decides what the session stores.
//!
//! # Why plain `reqwest` and not `openidconnect` / `oauth2`
//! The token endpoint protocol is three form fields and a JSON answer; what we need around it is exactly what those
//! crates make awkward:
//! - their clients are typestates (`CoreClient<EndpointSet, EndpointNotSet, …, EndpointMaybeSet, …>`), which the
//!   gateway would have to name and rebuild on every discovery refresh, while here endpoints are plain data
//!   ([`Endpoints`]) passed per call;
//! - `oauth2` 5 has no `private_key_jwt`; a client assertion would go through `add_extra_param` with the auth type
//!   forced to "request body" and no secret, i.e. by hand anyway, and its `x5t` header (which Entra requires) is ours
//!   to build in any case;
//! - their ID-token verifier uses a JWKS fetched once at discovery and never refreshed; we verify ID tokens with our
//!   own rotating JWKS cache, so the only things left to borrow would be URL building and PKCE, a dozen lines;
//! - their error type flattens "provider said `invalid_grant`" and "body was not JSON" into shapes we would have to
//!   re-match; the callback needs to tell those apart to show a retry page instead of a 500.
//!
//! The HTTP client follows no redirects (a token endpoint that redirects is either misconfigured or an SSRF lever)
//! and has short timeouts, so a hung provider costs a login at most ten seconds, never a worker.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{ClientAuth, ProviderConfig};

/// Connect timeout of token-endpoint calls.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request timeout of token-endpoint calls.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest token response read. Entra tokens for users in many groups are big, but not megabytes.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Lifetime of a `private_key_jwt` client assertion (RFC 7523 wants it short; it is used once, immediately).
const ASSERTION_LIFETIME_SECS: u64 = 300;
/// Longest provider `error_description` kept (Entra's carry trace and correlation ids; enough for support).
const MAX_DESCRIPTION_CHARS: usize = 500;
/// Parameters [`CodeFlow::start`] sets itself; an `extra` pair with one of these names is ignored, so a caller
/// cannot accidentally weaken PKCE, `state` or `nonce`.
const RESERVED_AUTHORIZE_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
];

/// The provider's endpoints the sign-in uses, as published by discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorization: url::Url,
    pub token: url::Url,
    pub end_session: Option<url::Url>,
}

impl Endpoints {
    /// From the discovery document's strings (`authorization_endpoint`, `token_endpoint`, `end_session_endpoint`).
    /// An unparsable URL is the provider's fault, hence `BadResponse`; an unparsable optional end-session URL is
    /// dropped (logout then only clears our session) rather than failing every login.
    pub fn parse(authorization: &str, token: &str, end_session: Option<&str>) -> Result<Self, CodeFlowError> {
        let parse = |what: &str, s: &str| {
            url::Url::parse(s).map_err(|e| CodeFlowError::BadResponse(format!("{what} is not a URL: {e}")))
        };
        Ok(Endpoints {
            authorization: parse("authorization_endpoint", authorization)?,
            token: parse("token_endpoint", token)?,
            end_session: end_session.and_then(|s| url::Url::parse(s).ok()),
        })
    }
}

/// What a new sign-in needs remembered until the callback: the browser goes to `url`; `state`, `nonce` and
/// `pkce_verifier` go into the pending-login cookie and are checked / sent back at the callback.
#[derive(Clone)]
pub struct LoginStart {
    /// The authorization URL to redirect the browser to.
    pub url: String,
    /// 256-bit random, base64url; must come back unchanged on the callback (CSRF).
    pub state: String,
    /// 256-bit random, base64url; must be the ID token's `nonce` claim (replay).
    pub nonce: String,
    /// RFC 7636 code verifier (43 characters of base64url); sent only to the token endpoint.
    pub pkce_verifier: String,
}

impl fmt::Debug for LoginStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL carries state, nonce and the challenge, all of which are harmless without the verifier;
        // the verifier itself is never printed.
        f.debug_struct("LoginStart")
            .field("url", &self.url)
            .field("state", &self.state)
            .field("nonce", &self.nonce)
            .field("pkce_verifier", &"***")
            .finish()
    }
}

/// A successful token-endpoint answer (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3).
///
/// Everything is optional because providers differ (a refresh answer may omit the ID token or the refresh token;
/// when the refresh token is absent the caller keeps the old one). [`CodeFlow::exchange`] and
/// [`CodeFlow::refresh`] guarantee at least one of `access_token` / `id_token` is present.
#[derive(Clone, Deserialize, PartialEq, Eq)]
pub struct TokenResponse {
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default, deserialize_with = "de_opt_u64_lenient")]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub scope: Option<String>,
    /// Usually `Bearer`; empty when the provider left it out.
    #[serde(default)]
    pub token_type: String,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a token: only whether it is there.
        let present = |t: &Option<String>| if t.is_some() { "<present>" } else { "<absent>" };
        f.debug_struct("TokenResponse")
            .field("access_token", &present(&self.access_token))
            .field("id_token", &present(&self.id_token))
            .field("refresh_token", &present(&self.refresh_token))
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("token_type", &self.token_type)
            .finish()
    }
}

/// `expires_in` is a number per RFC 6749, but some providers (older ADFS, some gateways) send a string.
fn de_opt_u64_lenient<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrStr {
        Num(u64),
        Str(String),
        Float(f64),
    }
    Ok(match Option::<NumOrStr>::deserialize(d)? {
        None => None,
        Some(NumOrStr::Num(n)) => Some(n),
        Some(NumOrStr::Str(s)) => s.trim().parse().ok(),
        Some(NumOrStr::Float(f)) if f.is_finite() && f >= 0.0 => Some(f as u64),
        Some(NumOrStr::Float(_)) => None,
    })
}

/// Why a call to the token endpoint (or setting one up) failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CodeFlowError {
    /// The provider answered with an OAuth error (RFC 6749 §5.2), e.g. `invalid_grant` for an expired or replayed
    /// code or a revoked refresh token. Both fields are sanitized to plain printable text.
    #[error("the provider refused the token request: {error}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Provider { error: String, description: Option<String> },
    /// The provider answered with an HTTP error status (or a redirect) and no OAuth error body.
    #[error("token endpoint answered {0}")]
    Http(String),
    /// A success status with a body that is not a usable token response.
    #[error("token endpoint sent an unusable response: {0}")]
    BadResponse(String),
    /// No answer: connection refused, DNS, TLS, timeout.
    #[error("token endpoint unreachable: {0}")]
    Unreachable(String),
    /// The client credentials in the configuration cannot be used (missing secret, unreadable key, bad thumbprint).
    /// Raised by [`CodeFlow::new`], so it fails at start, not at the first login.
    #[error("client authentication is misconfigured: {0}")]
    Config(String),
}

impl CodeFlowError {
    /// A plain-text sentence for the person in front of the browser. It never contains provider-supplied text
    /// other than a sanitized error code, so it is safe to show (the caller still escapes it).
    pub fn user_message(&self) -> String {
        match self {
            CodeFlowError::Provider { error, .. } => match error.as_str() {
                "invalid_grant" => {
                    "Your sign-in link has expired or was already used. Please sign in again.".to_string()
                }
                "invalid_client" | "unauthorized_client" => "The sign-in service did not accept this \
                     application's credentials. Please contact the administrator."
                    .to_string(),
                "invalid_scope" => "The sign-in service refused the requested permissions. Please contact the \
                     administrator."
                    .to_string(),
                "temporarily_unavailable" | "server_error" => {
                    "The sign-in service is temporarily unavailable. Please try again in a moment.".to_string()
                }
                other => format!("The sign-in service refused the request ({}). Please try again.", other),
            },
            CodeFlowError::Http(_) => {
                "The sign-in service answered with an error. Please try again in a moment.".to_string()
            }
            CodeFlowError::BadResponse(_) => {
                "The sign-in service sent an answer that could not be understood. Please try again.".to_string()
            }
            CodeFlowError::Unreachable(_) => {
                "The sign-in service could not be reached. Please try again in a moment.".to_string()
            }
            CodeFlowError::Config(_) => {
                "Sign-in is not configured correctly. Please contact the administrator.".to_string()
            }
        }
    }

    /// Whether asking the user to sign in again could help (as opposed to waiting or calling an administrator).
    pub fn is_grant_error(&self) -> bool {
        matches!(self, CodeFlowError::Provider { error, .. } if error == "invalid_grant")
    }
}

// === impl CodeFlow ===

/// How this client proves itself at the token endpoint, prepared once from configuration.
#[derive(Clone)]
enum ClientCredentials {
    Basic { secret: String },
    Post { secret: String },
    PrivateKeyJwt { key: EncodingKey, alg: Algorithm, x5t: Option<Thumbprint>, kid: Option<String> },
}

/// A certificate thumbprint ready for the JWS header.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Thumbprint {
    /// `x5t`: base64url SHA-1 of the DER certificate (what Entra's certificate credentials require).
    Sha1(String),
    /// `x5t#S256`: base64url SHA-256 of the DER certificate.
    Sha256(String),
}

/// The sign-in's conversation with the provider: builds authorization URLs and calls the token endpoint.
/// Cheap to clone (the HTTP client is reference-counted).
#[derive(Clone)]
pub struct CodeFlow {
    client_id: String,
    scope: String,
    credentials: ClientCredentials,
    http: reqwest::Client,
}

impl fmt::Debug for CodeFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.credentials {
            ClientCredentials::Basic { .. } => "client_secret_basic",
            ClientCredentials::Post { .. } => "client_secret_post",
            ClientCredentials::PrivateKeyJwt { .. } => "private_key_jwt",
        };
        f.debug_struct("CodeFlow")
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("client_auth", &auth)
            .finish()
    }
}

impl CodeFlow {
    /// Prepares the client from configuration: parses the private key and thumbprint now, so a bad credential
    /// stops the sidecar at start rather than failing every login.
    pub fn new(provider: &ProviderConfig) -> Result<Self, CodeFlowError> {
        let credentials = match &provider.client_auth {
            ClientAuth::ClientSecretBasic => ClientCredentials::Basic { secret: required_secret(provider)? },
            ClientAuth::ClientSecretPost => ClientCredentials::Post { secret: required_secret(provider)? },
            ClientAuth::PrivateKeyJwt { key_pem, x5t, kid } => {
                let (key, alg) = signing_key(key_pem.expose())?;
                let x5t = x5t.as_deref().map(parse_thumbprint).transpose()?;
                ClientCredentials::PrivateKeyJwt { key, alg, x5t, kid: kid.clone() }
            }
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("oidc-sidecar/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CodeFlowError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(CodeFlow { client_id: provider.client_id.clone(), scope: scope_string(&provider.scopes), credentials, http })
    }

    /// The space-separated scope sent at login and refresh (always includes `openid`).
    pub fn scope(&self) -> &str {
        &self.scope
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Begins a sign-in: fresh `state`, `nonce` and PKCE verifier, and the authorization URL carrying them.
    ///
    /// `extra` adds provider-specific parameters (`prompt`, `login_hint`, `domain_hint`, …); a pair naming one of
    /// the parameters set here is ignored. Query parameters already in the authorization endpoint (Azure AD B2C's
    /// `p=`) are kept. `response_mode=query` is asked for because the pending-login cookie is `SameSite=Lax`, which a
    /// cross-site form_post would not carry.
    pub fn start(&self, ep: &Endpoints, redirect_uri: &str, extra: &[(&str, &str)]) -> LoginStart {
        let state = random_token();
        let nonce = random_token();
        let pkce_verifier = random_token();
        let challenge = pkce_challenge(&pkce_verifier);

        let mut url = ep.authorization.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("scope", &self.scope)
                .append_pair("state", &state)
                .append_pair("nonce", &nonce)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("response_mode", "query");
            for (k, v) in extra {
                if !RESERVED_AUTHORIZE_PARAMS.contains(k) {
                    q.append_pair(k, v);
                }
            }
        }
        LoginStart { url: url.into(), state, nonce, pkce_verifier }
    }

    /// Trades the callback's `code` for tokens (RFC 6749 §4.1.3 with the PKCE verifier, RFC 7636 §4.5).
    /// `redirect_uri` must be byte-identical to the one given to [`CodeFlow::start`].
    pub async fn exchange(
        &self,
        ep: &Endpoints,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: &str,
    ) -> Result<TokenResponse, CodeFlowError> {
        let form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("redirect_uri", redirect_uri.to_string()),
            ("code_verifier", pkce_verifier.to_string()),
        ];
        self.token_request(ep, form).await
    }

    /// Redeems a refresh token (RFC 6749 §6). The configured scope is sent again because Entra's v2 endpoint
    /// expects it; it equals the originally granted set, which RFC 6749 allows. When the answer carries a new
    /// refresh token (rotation) the caller must store it and drop the old one.
    pub async fn refresh(&self, ep: &Endpoints, refresh_token: &str) -> Result<TokenResponse, CodeFlowError> {
        let form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh_token.to_string()),
            ("scope", self.scope.clone()),
        ];
        self.token_request(ep, form).await
    }

    async fn token_request(
        &self,
        ep: &Endpoints,
        mut form: Vec<(&'static str, String)>,
    ) -> Result<TokenResponse, CodeFlowError> {
        let mut req = self.http.post(ep.token.clone()).header(reqwest::header::ACCEPT, "application/json");
        match &self.credentials {
            ClientCredentials::Basic { secret } => {
                req = req.header(reqwest::header::AUTHORIZATION, basic_authorization(&self.client_id, secret));
            }
            ClientCredentials::Post { secret } => {
                form.push(("client_id", self.client_id.clone()));
                form.push(("client_secret", secret.clone()));
            }
            ClientCredentials::PrivateKeyJwt { key, alg, x5t, kid } => {
                let assertion =
                    client_assertion(&self.client_id, ep.token.as_str(), key, *alg, x5t.as_ref(), kid.as_deref())?;
                form.push(("client_id", self.client_id.clone()));
                form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
                form.push(("client_assertion", assertion));
            }
        }
        let resp = req.form(&form).send().await.map_err(|e| CodeFlowError::Unreachable(describe_reqwest(&e)))?;
        let status = resp.status();
        let body = read_limited(resp).await?;
        parse_token_response(status, &body)
    }
}

/// Interprets a token-endpoint answer. Separate from the HTTP call so every shape is unit-testable.
fn parse_token_response(status: reqwest::StatusCode, body: &[u8]) -> Result<TokenResponse, CodeFlowError> {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }

    // An OAuth error body wins whatever the status (RFC 6749 says 400/401, some providers use 200 or 5xx).
    if let Ok(e) = serde_json::from_slice::<OAuthError>(body) {
        let error = sanitize_code(&e.error);
        if !error.is_empty() {
            let description = e.error_description.as_deref().map(sanitize_text).filter(|d| !d.is_empty());
            return Err(CodeFlowError::Provider { error, description });
        }
    }
    if status.is_redirection() {
        return Err(CodeFlowError::Http(format!("HTTP {} (redirects are not followed)", status.as_u16())));
    }
    if !status.is_success() {
        return Err(CodeFlowError::Http(format!("HTTP {} without an OAuth error body", status.as_u16())));
    }
    let tokens: TokenResponse = serde_json::from_slice(body)
        .map_err(|e| CodeFlowError::BadResponse(format!("not a JSON token response ({})", e.classify_name())))?;
    if tokens.access_token.is_none() && tokens.id_token.is_none() {
        return Err(CodeFlowError::BadResponse("neither access_token nor id_token in the response".into()));
    }
    Ok(tokens)
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    /// The serde error category only: its message could quote the body, which may hold tokens.
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected field types",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, CodeFlowError> {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(CodeFlowError::BadResponse(format!("response larger than {MAX_RESPONSE_BYTES} bytes")));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(CodeFlowError::Unreachable(describe_reqwest(&e))),
        }
    }
}

/// A reqwest error without its URL (the URL is configuration, but keep logs short and uniform).
fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "response body failed"
    } else if e.is_request() {
        "request failed"
    } else {
        "failed"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(e);
    // The innermost cause is the informative one (e.g. "Connection refused (os error 111)").
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

fn required_secret(provider: &ProviderConfig) -> Result<String, CodeFlowError> {
    match &provider.client_secret {
        Some(s) if !s.expose().is_empty() => Ok(s.expose().to_string()),
        _ => Err(CodeFlowError::Config("client_secret is required for client_secret_basic/post".into())),
    }
}

/// RSA keys sign RS256 (the only algorithm Entra accepts for certificate credentials); a P-256 key signs ES256
/// for providers that allow it.
fn signing_key(pem: &str) -> Result<(EncodingKey, Algorithm), CodeFlowError> {
    if let Ok(k) = EncodingKey::from_rsa_pem(pem.as_bytes()) {
        return Ok((k, Algorithm::RS256));
    }
    if let Ok(k) = EncodingKey::from_ec_pem(pem.as_bytes()) {
        return Ok((k, Algorithm::ES256));
    }
    Err(CodeFlowError::Config("the private_key_jwt key is not an RSA or P-256 private key in PEM".into()))
}

/// Accepts a thumbprint as Entra's portal shows it (hex, optionally with `:` or spaces) or already base64url.
/// 20 bytes is SHA-1 (`x5t`), 32 bytes SHA-256 (`x5t#S256`).
fn parse_thumbprint(raw: &str) -> Result<Thumbprint, CodeFlowError> {
    let compact: String = raw.chars().filter(|c| !c.is_whitespace() && *c != ':').collect();
    let is_hex = !compact.is_empty() && compact.chars().all(|c| c.is_ascii_hexdigit());
    let bytes = if is_hex && (compact.len() == 40 || compact.len() == 64) {
        (0..compact.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&compact[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| CodeFlowError::Config("certificate thumbprint is not valid hex".into()))?
    } else {
        URL_SAFE_NO_PAD
            .decode(compact.trim_end_matches('='))
            .map_err(|_| CodeFlowError::Config("certificate thumbprint is neither hex nor base64url".into()))?
    };
    match bytes.len() {
        20 => Ok(Thumbprint::Sha1(URL_SAFE_NO_PAD.encode(&bytes))),
        32 => Ok(Thumbprint::Sha256(URL_SAFE_NO_PAD.encode(&bytes))),
        n => Err(CodeFlowError::Config(format!(
            "certificate thumbprint has {n} bytes; expected 20 (SHA-1) or 32 (SHA-256)"
        ))),
    }
}

#[derive(Serialize, Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: String,
    jti: String,
    iat: u64,
    nbf: u64,
    exp: u64,
}

/// RFC 7523 §2.2 client assertion: `iss` = `sub` = client id, `aud` = the token endpoint, single-use `jti`.
fn client_assertion(
    client_id: &str,
    token_endpoint: &str,
    key: &EncodingKey,
    alg: Algorithm,
    thumbprint: Option<&Thumbprint>,
    kid: Option<&str>,
) -> Result<String, CodeFlowError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let claims = AssertionClaims {
        iss: client_id.to_string(),
        sub: client_id.to_string(),
        aud: token_endpoint.to_string(),
        jti: uuid::Uuid::new_v4().to_string(),
        iat: now,
        nbf: now,
        exp: now + ASSERTION_LIFETIME_SECS,
    };
    let mut header = Header::new(alg);
    header.typ = Some("JWT".into());
    header.kid = kid.map(str::to_string);
    match thumbprint {
        Some(Thumbprint::Sha1(t)) => header.x5t = Some(t.clone()),
        Some(Thumbprint::Sha256(t)) => header.x5t_s256 = Some(t.clone()),
        None => {}
    }
    jsonwebtoken::encode(&header, &claims, key)
        .map_err(|e| CodeFlowError::Config(format!("cannot sign the client assertion: {e}")))
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded *before* Base64, so a `:` in either survives.
fn basic_authorization(client_id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(client_id), enc(secret))))
}

fn scope_string(scopes: &[String]) -> String {
    let mut out: Vec<&str> = Vec::with_capacity(scopes.len() + 1);
    // Without `openid` the provider speaks plain OAuth and returns no ID token: never what the sidecar wants.
    if !scopes.iter().any(|s| s == "openid") {
        out.push("openid");
    }
    for s in scopes {
        let s = s.trim();
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    }
    out.join(" ")
}

/// 256 bits from the OS generator, base64url without padding (43 characters); also a valid RFC 7636 verifier.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7636 §4.2: `BASE64URL(SHA256(ASCII(code_verifier)))`.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Keeps an OAuth error code to its RFC 6749 character set (printable ASCII minus `"` and `\`), bounded.
fn sanitize_code(s: &str) -> String {
    s.chars().filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\').take(100).collect()
}

/// Provider prose reduced to one line of printable text, bounded. HTML is left to the caller's escaping.
fn sanitize_text(s: &str) -> String {
    let one_line: String =
        s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_DESCRIPTION_CHARS).collect();
    one_line.split_whitespace().collect::<Vec<_>>().join(" ")
}

// === logout ===

/// The RP-initiated logout URL (OpenID Connect RP-Initiated Logout 1.0 §2), or `None` when the provider publishes
/// no `end_session_endpoint` (then clearing our own session is all logout can do).
///
/// `client_id` is always sent: it lets the provider check `post_logout_redirect_uri` when the ID token hint is
/// absent (the session may not keep the raw ID token). Existing query parameters of the endpoint are kept.
pub fn end_session_url(
    ep: &Endpoints,
    id_token_hint: Option<&str>,
    post_logout_redirect_uri: &str,
    client_id: &str,
) -> Option<String> {
    let mut url = ep.end_session.clone()?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(hint) = id_token_hint.filter(|h| !h.is_empty()) {
            q.append_pair("id_token_hint", hint);
        }
        if !post_logout_redirect_uri.is_empty() {
            q.append_pair("post_logout_redirect_uri", post_logout_redirect_uri);
        }
        if !client_id.is_empty() {
            q.append_pair("client_id", client_id);
        }
    }
    Some(url.into())
}

// === callback error page ===

/// Escapes the five characters that matter in HTML text and quoted attributes.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Title and explanation for the error codes a sign-in callback can carry (RFC 6749 §4.1.2.1, OpenID Connect
/// Core §3.1.2.6) plus `invalid_grant` from the code exchange.
fn explain_error(error: &str) -> (&'static str, &'static str) {
    match error {
        "access_denied" => (
            "Sign-in was cancelled",
            "The sign-in was cancelled or access was denied. If you did not mean to cancel, try again; if access \
             keeps being denied, ask your administrator to grant you access to this application.",
        ),
        "consent_required" => (
            "Consent is required",
            "This application needs your consent (or an administrator's) before you can sign in. Try again and \
             accept the permissions requested, or ask your administrator to grant consent for your organization.",
        ),
        "interaction_required" | "login_required" | "account_selection_required" => (
            "Please sign in again",
            "The sign-in service needs you to sign in interactively (for example to complete multi-factor \
             authentication or choose an account). Try again to continue.",
        ),
        "invalid_grant" => (
            "Your sign-in expired",
            "The sign-in took too long or the link was already used, for example by going back in the browser. \
             Try again to start a fresh sign-in.",
        ),
        "temporarily_unavailable" | "server_error" => (
            "Sign-in service unavailable",
            "The sign-in service is having trouble right now. Please wait a moment and try again.",
        ),
        "invalid_request"
        | "invalid_scope"
        | "unauthorized_client"
        | "unsupported_response_type"
        | "invalid_client"
        | "request_not_supported"
        | "request_uri_not_supported"
        | "registration_not_supported"
        | "invalid_request_uri"
        | "invalid_request_object" => (
            "Sign-in is misconfigured",
            "The sign-in service rejected the request from this application. Please contact your administrator; \
             the details below will help them.",
        ),
        _ => (
            "Sign-in failed",
            "The sign-in service could not complete the sign-in. Please try again; if it keeps failing, contact \
             your administrator with the details below.",
        ),
    }
}

/// Only same-site paths and http(s) URLs may become the "Try again" link; anything else (a `javascript:` URL,
/// a scheme-relative `//host`) falls back to `/`.
fn safe_retry_url(u: &str) -> &str {
    let is_path = u.starts_with('/') && !u.starts_with("//") && !u.starts_with("/\\");
    let lower = u.get(..8).map(str::to_ascii_lowercase).unwrap_or_default();
    let is_http = lower.starts_with("https://") || lower.starts_with("http://");
    if (is_path || is_http) && !u.chars().any(|c| c.is_control()) {
        u
    } else {
        "/"
    }
}

/// The page shown when the provider refuses a sign-in at the callback (`error=access_denied`, `consent_required`,
/// `interaction_required`, …) or the code exchange fails with `invalid_grant`. Self-contained (no scripts, no
/// external resources); every provider-supplied string is sanitized and escaped. Serve it with status 400 or
/// 403 (or 502 for exchange failures), never 500.
pub fn callback_error_page(error: &str, description: Option<&str>, retry_url: &str) -> String {
    let code = sanitize_code(error);
    let (title, explanation) = explain_error(&code);
    let description = description.map(sanitize_text).filter(|d| !d.is_empty());
    let mut details = String::new();
    if !code.is_empty() {
        details.push_str(&format!("<p class=\"details\">Error code: <code>{}</code></p>\n", html_escape(&code)));
    }
    if let Some(d) = description {
        details.push_str(&format!("<p class=\"details\">{}</p>\n", html_escape(&d)));
    }
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n<title>{title}</title>\n\
         <style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;\
         color:#222}}h1{{font-size:1.5rem}}.details{{color:#555;font-size:.9rem;word-break:break-word}}\
         a.button{{display:inline-block;margin-top:1rem;padding:.5rem 1rem;background:#0b5cad;color:#fff;\
         border-radius:4px;text-decoration:none}}</style>\n</head>\n<body>\n<h1>{title}</h1>\n<p>{explanation}</p>\n\
         {details}<p><a class=\"button\" href=\"{retry}\">Try again</a></p>\n</body>\n</html>\n",
        title = html_escape(title),
        explanation = html_escape(explanation),
        details = details,
        retry = html_escape(safe_retry_url(retry_url)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const RSA_PEM: &str = include_str!("../../../testkit/src/keys/rsa1.pem");
    const RSA_PUB_PEM: &str = include_str!("../../../testkit/src/keys/rsa1.pub.pem");
    const EC_PEM: &str = include_str!("../../../testkit/src/keys/ec1.pem");
    /// A SHA-1 thumbprint as Entra's portal shows it (hex).
    const THUMB_HEX: &str = "5D0E7A0C1B2F3A4B5C6D7E8F9001122334455667";

    fn provider(auth: ClientAuth, secret: Option<&str>) -> ProviderConfig {
        ProviderConfig {
            issuer: "https://login.example.test/tenant/v2.0".into(),
            discovery_url: "https://login.example.test/tenant/v2.0/.well-known/openid-configuration".into(),
            extra_issuers: vec![],
            client_id: "client 1:a".into(),
            client_secret: secret.map(|s| Secret(s.into())),
            client_auth: auth,
            audiences: vec![],
            required_tenant: None,
            clock_skew: Duration::from_secs(60),
            algorithms: vec![Algorithm::RS256],
            scopes: vec!["openid".into(), "profile".into(), "offline_access".into()],
            jwks_refresh: Duration::from_secs(3600),
            jwks_refetch_cooldown: Duration::from_secs(30),
            entra: false,
        }
    }

    fn endpoints(base: &str) -> Endpoints {
        Endpoints {
            authorization: url::Url::parse(&format!("{base}/authorize?p=b2c_policy")).unwrap(),
            token: url::Url::parse(&format!("{base}/token")).unwrap(),
            end_session: Some(url::Url::parse(&format!("{base}/logout")).unwrap()),
        }
    }

    fn query(u: &str) -> HashMap<String, Vec<String>> {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in url::Url::parse(u).unwrap().query_pairs() {
            m.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        m
    }

    fn one<'a>(q: &'a HashMap<String, Vec<String>>, k: &str) -> &'a str {
        let v = q.get(k).unwrap_or_else(|| panic!("missing {k}"));
        assert_eq!(v.len(), 1, "{k} appears {} times", v.len());
        &v[0]
    }

    // === a tiny token endpoint over a real socket ===

    #[derive(Debug, Clone)]
    struct Received {
        request_line: String,
        headers: HashMap<String, String>,
        form: HashMap<String, String>,
    }

    #[derive(Clone)]
    struct Reply {
        status: u16,
        content_type: &'static str,
        body: String,
        extra: Vec<(&'static str, &'static str)>,
    }

    fn json(status: u16, v: serde_json::Value) -> Reply {
        Reply { status, content_type: "application/json", body: v.to_string(), extra: vec![] }
    }

    /// Serves `reply` to every request and records what arrived.
    async fn token_server(reply: Reply) -> (SocketAddr, Arc<Mutex<Vec<Received>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let reply = reply.clone();
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 4096];
                    let head_end = loop {
                        let n = sock.read(&mut tmp).await.unwrap();
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&tmp[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
                    let mut lines = head.split("\r\n");
                    let request_line = lines.next().unwrap().to_string();
                    let headers: HashMap<String, String> = lines
                        .filter_map(|l| l.split_once(": "))
                        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                        .collect();
                    let len: usize = headers.get("content-length").map(|v| v.parse().unwrap()).unwrap_or(0);
                    while buf.len() < head_end + len {
                        let n = sock.read(&mut tmp).await.unwrap();
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&tmp[..n]);
                    }
                    let form = url::form_urlencoded::parse(&buf[head_end..]).into_owned().collect();
                    seen.lock().unwrap().push(Received { request_line, headers, form });
                    let mut out = format!(
                        "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n",
                        reply.status,
                        reply.content_type,
                        reply.body.len()
                    );
                    for (k, v) in &reply.extra {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    out.push_str(&reply.body);
                    let _ = sock.write_all(out.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        (addr, seen)
    }

    fn ok_tokens() -> Reply {
        json(
            200,
            serde_json::json!({
                "access_token": "at-1", "id_token": "idt-1", "refresh_token": "rt-1",
                "expires_in": 3599, "scope": "openid profile", "token_type": "Bearer"
            }),
        )
    }

    // === PKCE, state, nonce, authorization URL ===

    #[test]
    fn pkce_challenge_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn start_builds_the_authorization_url() {
        let flow = CodeFlow::new(&provider(ClientAuth::ClientSecretBasic, Some("s"))).unwrap();
        let ep = endpoints("https://idp.example.test");
        let start = flow.start(
            &ep,
            "https://app.example.test/oauth2/callback",
            &[("prompt", "select_account"), ("state", "attacker"), ("code_challenge_method", "plain")],
        );
        assert!(start.url.starts_with("https://idp.example.test/authorize?"));
        let q = query(&start.url);
        assert_eq!(one(&q, "p"), "b2c_policy", "existing endpoint query kept");
        assert_eq!(one(&q, "response_type"), "code");
        assert_eq!(one(&q, "client_id"), "client 1:a");
        assert_eq!(one(&q, "redirect_uri"), "https://app.example.test/oauth2/callback");
        assert_eq!(one(&q, "scope"), "openid profile offline_access");
        assert_eq!(one(&q, "state"), start.state, "reserved extra ignored");
        assert_eq!(one(&q, "nonce"), start.nonce);
        assert_eq!(one(&q, "code_challenge"), pkce_challenge(&start.pkce_verifier));
        assert_eq!(one(&q, "code_challenge_method"), "S256", "reserved extra ignored");
        assert_eq!(one(&q, "response_mode"), "query");
        assert_eq!(one(&q, "prompt"), "select_account");
        assert!(!q.contains_key("code_verifier"), "verifier never in the browser URL");

        for v in [&start.state, &start.nonce] {
            assert_eq!(URL_SAFE_NO_PAD.decode(v).unwrap().len(), 32, "256 bits");
        }
        let ver = &start.pkce_verifier;
        assert!((43..=128).contains(&ver.len()));
        assert!(ver.chars().all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c)), "RFC 7636 unreserved");

        let again = flow.start(&ep, "https://app.example.test/oauth2/callback", &[]);
        assert_ne!(again.state, start.state);
        assert_ne!(again.nonce, start.nonce);
        assert_ne!(again.pkce_verifier, start.pkce_verifier);
        assert!(!format!("{start:?}").contains(start.pkce_verifier.as_str()), "Debug hides the verifier");
    }

    #[test]
    fn scope_always_has_openid_once() {
        assert_eq!(scope_string(&["profile".into(), "email".into()]), "openid profile email");
        assert_eq!(scope_string(&["openid".into(), "openid".into(), " ".into()]), "openid");
    }

    // === client credentials ===

    #[test]
    fn secret_auth_requires_a_secret() {
        for auth in [ClientAuth::ClientSecretBasic, ClientAuth::ClientSecretPost] {
            let err = CodeFlow::new(&provider(auth.clone(), None)).unwrap_err();
            assert!(matches!(err, CodeFlowError::Config(_)), "{err:?}");
            assert!(matches!(CodeFlow::new(&provider(auth, Some(""))), Err(CodeFlowError::Config(_))));
        }
    }

    #[test]
    fn private_key_jwt_rejects_a_bad_key_or_thumbprint() {
        let bad_key = ClientAuth::PrivateKeyJwt { key_pem: Secret("not a pem".into()), x5t: None, kid: None };
        assert!(matches!(CodeFlow::new(&provider(bad_key, None)), Err(CodeFlowError::Config(_))));
        let bad_thumb = ClientAuth::PrivateKeyJwt { key_pem: Secret(RSA_PEM.into()), x5t: Some("abc".into()), kid: None };
        assert!(matches!(CodeFlow::new(&provider(bad_thumb, None)), Err(CodeFlowError::Config(_))));
    }

    #[test]
    fn thumbprints_are_normalised_to_base64url() {
        let sha1 = hex_bytes(THUMB_HEX);
        let want = URL_SAFE_NO_PAD.encode(&sha1);
        assert_eq!(parse_thumbprint(THUMB_HEX).unwrap(), Thumbprint::Sha1(want.clone()));
        let colons: String = THUMB_HEX
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_thumbprint(&colons).unwrap(), Thumbprint::Sha1(want.clone()));
        assert_eq!(parse_thumbprint(&want).unwrap(), Thumbprint::Sha1(want.clone()));
        let sha256 = "a".repeat(64);
        assert_eq!(parse_thumbprint(&sha256).unwrap(), Thumbprint::Sha256(URL_SAFE_NO_PAD.encode(hex_bytes(&sha256))));
        assert!(parse_thumbprint("zz").is_err());
        assert!(parse_thumbprint(&"ab".repeat(10)).is_err(), "10 bytes is no thumbprint");
    }

    fn hex_bytes(h: &str) -> Vec<u8> {
        (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
    }

    fn decode_assertion(token: &str, aud: &str) -> (jsonwebtoken::Header, AssertionClaims) {
        let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
        v.set_audience(&[aud]);
        v.set_issuer(&["client 1:a"]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(RSA_PUB_PEM.as_bytes()).unwrap();
        let data = jsonwebtoken::decode::<AssertionClaims>(token, &key, &v).expect("assertion verifies");
        (data.header, data.claims)
    }

    #[test]
    fn private_key_jwt_assertion_verifies_and_carries_x5t() {
        let (key, alg) = signing_key(RSA_PEM).unwrap();
        assert_eq!(alg, Algorithm::RS256);
        let thumb = parse_thumbprint(THUMB_HEX).unwrap();
        let aud = "https://login.example.test/tenant/oauth2/v2.0/token";
        let token = client_assertion("client 1:a", aud, &key, alg, Some(&thumb), None).unwrap();
        let (header, claims) = decode_assertion(&token, aud);
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.x5t.as_deref(), Some(URL_SAFE_NO_PAD.encode(hex_bytes(THUMB_HEX)).as_str()));
        assert_eq!(header.x5t_s256, None);
        assert_eq!(claims.iss, "client 1:a");
        assert_eq!(claims.sub, "client 1:a");
        assert_eq!(claims.aud, aud);
        assert_eq!(claims.exp - claims.iat, ASSERTION_LIFETIME_SECS);
        assert!(uuid::Uuid::parse_str(&claims.jti).is_ok());
        let other = client_assertion("client 1:a", aud, &key, alg, Some(&thumb), None).unwrap();
        assert_ne!(decode_assertion(&other, aud).1.jti, claims.jti, "jti is single-use");

        // A wrong audience must not verify: proves the check is real.
        let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
        v.set_audience(&["https://elsewhere.test/token"]);
        let key_pub = jsonwebtoken::DecodingKey::from_rsa_pem(RSA_PUB_PEM.as_bytes()).unwrap();
        assert!(jsonwebtoken::decode::<AssertionClaims>(&token, &key_pub, &v).is_err());
    }

    #[test]
    fn ec_key_signs_es256() {
        let (_key, alg) = signing_key(EC_PEM).unwrap();
        assert_eq!(alg, Algorithm::ES256);
    }

    #[test]
    fn basic_credentials_are_form_encoded_before_base64() {
        let h = basic_authorization("client 1:a", "p@ss:w rd/+");
        let raw = STANDARD.decode(h.strip_prefix("Basic ").unwrap()).unwrap();
        assert_eq!(String::from_utf8(raw).unwrap(), "client+1%3Aa:p%40ss%3Aw+rd%2F%2B");
    }

    // === the token endpoint, on the wire ===

    #[tokio::test]
    async fn exchange_with_client_secret_basic() {
        let (addr, seen) = token_server(ok_tokens()).await;
        let ep = endpoints(&format!("http://{addr}"));
        let flow = CodeFlow::new(&provider(ClientAuth::ClientSecretBasic, Some("p@ss:w rd/+"))).unwrap();
        let t = flow.exchange(&ep, "the-code", "https://app.example.test/cb", "the-verifier").await.unwrap();
        assert_eq!(t.access_token.as_deref(), Some("at-1"));
        assert_eq!(t.id_token.as_deref(), Some("idt-1"));
        assert_eq!(t.refresh_token.as_deref(), Some("rt-1"));
        assert_eq!(t.expires_in, Some(3599));
        assert_eq!(t.token_type, "Bearer");

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let r = &seen[0];
        assert_eq!(r.request_line, "POST /token HTTP/1.1");
        assert_eq!(r.headers["content-type"], "application/x-www-form-urlencoded");
        let basic = r.headers["authorization"].strip_prefix("Basic ").expect("Basic auth");
        let pair = String::from_utf8(STANDARD.decode(basic).unwrap()).unwrap();
        assert_eq!(pair, "client+1%3Aa:p%40ss%3Aw+rd%2F%2B");
        assert_eq!(r.form["grant_type"], "authorization_code");
        assert_eq!(r.form["code"], "the-code");
        assert_eq!(r.form["redirect_uri"], "https://app.example.test/cb");
        assert_eq!(r.form["code_verifier"], "the-verifier");
        assert!(!r.form.contains_key("client_secret"), "secret only in the header");
        assert!(!r.form.contains_key("client_assertion"));
    }

    #[tokio::test]
    async fn exchange_with_client_secret_post() {
        let (addr, seen) = token_server(ok_tokens()).await;
        let ep = endpoints(&format!("http://{addr}"));
        let flow = CodeFlow::new(&provider(ClientAuth::ClientSecretPost, Some("p@ss:w rd/+"))).unwrap();
        flow.exchange(&ep, "c", "https://app.example.test/cb", "v").await.unwrap();
        let seen = seen.lock().unwrap();
        let r = &seen[0];
        assert!(!r.headers.contains_key("authorization"), "no Basic header with client_secret_post");
        assert_eq!(r.form["client_id"], "client 1:a");
        assert_eq!(r.form["client_secret"], "p@ss:w rd/+");
        assert_eq!(r.form["code_verifier"], "v");
    }

    #[tokio::test]
    async fn exchange_with_private_key_jwt() {
        let (addr, seen) = token_server(ok_tokens()).await;
        let ep = endpoints(&format!("http://{addr}"));
        let auth = ClientAuth::PrivateKeyJwt { key_pem: Secret(RSA_PEM.into()), x5t: Some(THUMB_HEX.into()), kid: None };
        let flow = CodeFlow::new(&provider(auth, None)).unwrap();
        flow.exchange(&ep, "c", "https://app.example.test/cb", "v").await.unwrap();
        // A non-Entra provider with the key registered under a kid: the header names it.
        let auth = ClientAuth::PrivateKeyJwt { key_pem: Secret(RSA_PEM.into()), x5t: None, kid: Some("sidecar-2026".into()) };
        let flow = CodeFlow::new(&provider(auth, None)).unwrap();
        flow.exchange(&ep, "c", "https://app.example.test/cb", "v").await.unwrap();
        let seen = seen.lock().unwrap();
        let r = &seen[0];
        assert!(!r.headers.contains_key("authorization"));
        assert!(!r.form.contains_key("client_secret"));
        assert_eq!(r.form["client_id"], "client 1:a");
        assert_eq!(r.form["client_assertion_type"], "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
        let (header, claims) = decode_assertion(&r.form["client_assertion"], ep.token.as_str());
        assert!(header.x5t.is_some());
        assert_eq!(header.kid, None, "no kid unless configured");
        assert_eq!(claims.aud, format!("http://{addr}/token"));
        let (header, _) = decode_assertion(&seen[1].form["client_assertion"], ep.token.as_str());
        assert_eq!((header.kid.as_deref(), header.x5t.as_deref()), (Some("sidecar-2026"), None));
    }

    #[tokio::test]
    async fn invalid_grant_becomes_a_provider_error() {
        let reply = json(
            400,
            serde_json::json!({
                "error": "invalid_grant",
                "error_description": "AADSTS70008: The provided authorization code has expired.\r\nTrace ID: 1",
                "error_codes": [70008]
            }),
        );
        let (addr, _) = token_server(reply).await;
        let ep = endpoints(&format!("http://{addr}"));
        let flow = CodeFlow::new(&provider(ClientAuth::ClientSecretPost, Some("s"))).unwrap();
        let err = flow.exchange(&ep, "old-code", "https://app.example.test/cb", "v").await.unwrap_err();
        assert_eq!(
            err,
            CodeFlowError::Provider {
                error: "invalid_grant".into(),
                description: Some("AADSTS70008: The provided authorization code has expired. Trace ID: 1".into()),
            }
        );
        assert!(err.is_grant_error());
        assert!(err.user_message().contains("expired"));
    }

    #[tokio::test]
    async fn non_json_500_is_an_http_error() {
        let reply = Reply {
            status: 500,
            content_type: "text/html",
            body: "<html><script>alert(1)</script>Internal error</html>".into(),
            extra: vec![],
        };
        let (addr, _) = token_server(reply).await;
        let ep = endpoints(&format!("http://{addr}"));
        let flow = CodeFlow::new(&provider(ClientAuth::ClientSecretBasic, Some("s"))).unwrap();
        let err = flow.exchange(&ep, "c", "https://app.example.test/cb", "v").await.unwrap_err();
        assert!(matches!(&err, CodeFlowError::Http(m) if m.contains("500")), "{err:?}");
        assert!(!err.user_message().contains('<'));
        assert!(!err.to_string().contains("script"), "provider body not echoed");
    }

    #[tokio::test]
    async fn non_json_200_is_a_bad_response() {
        let reply = Reply { status: 200, content_type: "text/plain", body: "hello".into(), extra: vec![] };
        let (addr, _) = token_server(reply).await;
        let ep = endpoints(&format!("http://{addr}"));
        let flow = CodeFlow::new(&provider(ClientAuth::ClientSecretBasic, Some("s"))).unwrap();
        let err = flow.exchange(&ep, "c", "https://app.example.test/cb", "v").await.unwrap_err();
        assert!(matches!(err, CodeFlowError::BadResponse(_)), "{err:?}");
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let reply = Reply {
            status: 302,
            content_type: "text/plain",
            body: String::new(),
            extra: vec![("location", "http://169.254.169.254/latest/meta-data/")],
        };
        let (addr, seen) = token_server(reply).await;
        let ep = endpoints(&format!("http://{addr}"));
        let flow = CodeFlow::new(&provider(ClientAuth::ClientSecretBasic, Some("s"))).unwrap();
        let err = flow.exchange(&ep, "c", "https://app.example.test/cb", "v").await.unwrap_err();
        assert!(matches!(&err, CodeFlowError::Http(m) if m.contains("302")), "{err:?}");
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn closed_port_is_unreachable() {
        // Bind then drop to get a port that (almost certainly) nobody listens on.
        let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let ep = endpoints(&format!("http://{addr}"));
        let flow = CodeFlow::new(&provider(ClientAuth::ClientSecretBasic, Some("s"))).unwrap();
        let err = flow.refresh(&ep, "rt").await.unwrap_err();
        assert!(matches!(err, CodeFlowError::Unreachable(_)), "{err:?}");
    }

    #[tokio::test]
    async fn refresh_returns_the_rotated_refresh_token() {
        let reply = json(
            200,
            serde_json::json!({
                "access_token": "at-2", "refresh_token": "rt-2", "expires_in": "3600", "token_type": "Bearer"
            }),
        );
        let (addr, seen) = token_server(reply).await;
        let ep = endpoints(&format!("http://{addr}"));
        let flow = CodeFlow::new(&provider(ClientAuth::ClientSecretPost, Some("s"))).unwrap();
        let t = flow.refresh(&ep, "rt-1").await.unwrap();
        assert_eq!(t.access_token.as_deref(), Some("at-2"));
        assert_eq!(t.refresh_token.as_deref(), Some("rt-2"));
        assert_eq!(t.id_token, None);
        assert_eq!(t.expires_in, Some(3600), "string expires_in tolerated");
        let seen = seen.lock().unwrap();
        let r = &seen[0];
        assert_eq!(r.form["grant_type"], "refresh_token");
        assert_eq!(r.form["refresh_token"], "rt-1");
        assert_eq!(r.form["scope"], "openid profile offline_access");
        assert_eq!(r.form["client_secret"], "s");
    }

    #[test]
    fn token_response_shapes() {
        use reqwest::StatusCode;
        let ok = parse_token_response(StatusCode::OK, br#"{"id_token":"x"}"#).unwrap();
        assert_eq!(ok.id_token.as_deref(), Some("x"));
        assert_eq!(ok.token_type, "");
        assert!(matches!(
            parse_token_response(StatusCode::OK, br#"{"token_type":"Bearer"}"#),
            Err(CodeFlowError::BadResponse(_))
        ));
        // An error body with a 200 status is still an error.
        assert!(matches!(
            parse_token_response(StatusCode::OK, br#"{"error":"invalid_request"}"#),
            Err(CodeFlowError::Provider { description: None, .. })
        ));
        // A JSON body without `error` on a 401 is an HTTP error, not a success.
        assert!(matches!(parse_token_response(StatusCode::UNAUTHORIZED, b"{}"), Err(CodeFlowError::Http(_))));
        // Hostile error codes are reduced to the RFC's character set.
        let e = parse_token_response(StatusCode::BAD_REQUEST, br#"{"error":"bad\"<x>\n"}"#).unwrap_err();
        assert_eq!(e, CodeFlowError::Provider { error: "bad<x>".into(), description: None });
    }

    #[test]
    fn token_response_debug_hides_tokens() {
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"SECRET-AT","refresh_token":"SECRET-RT"}"#).unwrap();
        let s = format!("{t:?}");
        assert!(!s.contains("SECRET"), "{s}");
        assert!(s.contains("<present>"));
    }

    #[test]
    fn endpoints_parse_from_discovery_strings() {
        let ep = Endpoints::parse("https://idp.test/a", "https://idp.test/t", Some("not a url")).unwrap();
        assert_eq!(ep.token.as_str(), "https://idp.test/t");
        assert_eq!(ep.end_session, None, "bad optional logout URL dropped");
        assert!(matches!(Endpoints::parse("https://idp.test/a", "nope", None), Err(CodeFlowError::BadResponse(_))));
    }

    // === logout ===

    #[test]
    fn end_session_url_carries_hint_redirect_and_client() {
        let mut ep = endpoints("https://idp.example.test");
        ep.end_session = Some(url::Url::parse("https://idp.example.test/logout?x=1").unwrap());
        let u = end_session_url(&ep, Some("id.tok.en"), "https://app.example.test/", "cid").unwrap();
        let q = query(&u);
        assert_eq!(one(&q, "x"), "1");
        assert_eq!(one(&q, "id_token_hint"), "id.tok.en");
        assert_eq!(one(&q, "post_logout_redirect_uri"), "https://app.example.test/");
        assert_eq!(one(&q, "client_id"), "cid");

        let u = end_session_url(&ep, None, "https://app.example.test/", "cid").unwrap();
        assert!(!query(&u).contains_key("id_token_hint"));

        ep.end_session = None;
        assert_eq!(end_session_url(&ep, Some("t"), "https://app.example.test/", "cid"), None);
    }

    // === error page ===

    #[test]
    fn error_page_escapes_provider_text() {
        let page = callback_error_page(
            "access_denied",
            Some("<script>alert('x')</script> & \"more\""),
            "/oauth2/login?rd=%2Fhome&x=\"><script>",
        );
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;more&quot;"));
        assert!(page.contains("href=\"/oauth2/login?rd=%2Fhome&amp;x=&quot;&gt;&lt;script&gt;\""));
        assert!(page.contains("<title>Sign-in was cancelled</title>"));
        assert!(page.contains("Try again"));
        assert!(page.starts_with("<!doctype html>"));
    }

    #[test]
    fn error_page_explains_known_codes() {
        assert!(callback_error_page("consent_required", None, "/").contains("consent"));
        assert!(callback_error_page("interaction_required", None, "/").contains("sign in interactively"));
        assert!(callback_error_page("invalid_grant", None, "/").contains("Your sign-in expired"));
        let unknown = callback_error_page("<b>weird</b>", None, "/");
        assert!(unknown.contains("<title>Sign-in failed</title>"));
        assert!(unknown.contains("<code>&lt;b&gt;weird&lt;/b&gt;</code>"));
    }

    #[test]
    fn error_page_refuses_dangerous_retry_links() {
        for bad in ["javascript:alert(1)", "//evil.example/", "/\\evil.example", "data:text/html,x", "/a\nb"] {
            let page = callback_error_page("access_denied", None, bad);
            assert!(page.contains("href=\"/\""), "{bad}: {page}");
        }
        let page = callback_error_page("access_denied", None, "https://app.example.test/oauth2/login");
        assert!(page.contains("href=\"https://app.example.test/oauth2/login\""));
    }

    #[test]
    fn html_escape_covers_the_five() {
        assert_eq!(html_escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}
