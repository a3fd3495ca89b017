//! A small OpenID provider on a real socket: discovery, a JWKS, a client-credentials token endpoint, and signing
//! helpers, so tests exercise the sidecar's HTTP fetching, caching and rotation exactly as against Entra ID.
//!
//! Keys are fixed PEMs embedded in the crate (see `keys/README.md`): generating RSA keys in a debug build costs
//! seconds per test, and tests only need keys nobody else has. "Rotation" walks a pool of them, each under a fresh
//! `kid`.
//!
//! The server answers one request per connection (`Connection: close`): simple, and every fetch the sidecar makes
//! is a real new connection, which is what its timeouts and retries must cope with.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Entra-like tenant id used in default claims.
pub const TEST_TENANT: &str = "11111111-2222-3333-4444-555555555555";
/// Default accepted audience of the access tokens this provider issues.
pub const TEST_AUDIENCE: &str = "api://oidc-sidecar-test";
/// Default client id (the sidecar's own registration).
pub const TEST_CLIENT_ID: &str = "00000000-aaaa-bbbb-cccc-000000000001";
/// `oid` of the default user.
pub const TEST_OID: &str = "99999999-8888-7777-6666-555555555555";
/// Default client secret checked by the `authorization_code` and `refresh_token` grants (basic or post).
pub const TEST_CLIENT_SECRET: &str = "test-client-secret";

const RSA_PEMS: [&str; 3] =
    [include_str!("keys/rsa1.pem"), include_str!("keys/rsa2.pem"), include_str!("keys/rsa3.pem")];
const EC_PEMS: [&str; 2] = [include_str!("keys/ec1.pem"), include_str!("keys/ec2.pem")];
/// Public half of the first RSA key, for algorithm-confusion tests (HS256 with the public key as secret).
pub const RSA1_PUBLIC_PEM: &str = include_str!("keys/rsa1.pub.pem");

/// A signing key and its public JWK (without `kid`: each published slot sets its own).
struct KeyMaterial {
    encoding: EncodingKey,
    jwk: Jwk,
}

fn rsa_pool() -> &'static [KeyMaterial] {
    static POOL: OnceLock<Vec<KeyMaterial>> = OnceLock::new();
    POOL.get_or_init(|| RSA_PEMS.iter().map(|pem| material(pem, Algorithm::RS256)).collect())
}

fn ec_pool() -> &'static [KeyMaterial] {
    static POOL: OnceLock<Vec<KeyMaterial>> = OnceLock::new();
    POOL.get_or_init(|| EC_PEMS.iter().map(|pem| material(pem, Algorithm::ES256)).collect())
}

/// Embedded keys are constants of this crate: a failure here is a bug in the crate, not in a test.
fn material(pem: &str, alg: Algorithm) -> KeyMaterial {
    let encoding = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .expect("embedded test key parses");
    let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("embedded test key converts to a JWK");
    // Entra publishes no `alg` on its keys: neither do we, so the sidecar must pin algorithms itself.
    jwk.common.key_algorithm = None;
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    KeyMaterial { encoding, jwk }
}

/// One published RSA key: a `kid` and which pooled key it is.
#[derive(Clone)]
struct Slot {
    kid: String,
    pool_index: usize,
}

/// Options for [`TestProvider::start_with`].
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// 0 = any free port.
    pub port: u16,
    /// Path part of the issuer, e.g. `/11111111-.../v2.0` to look like Entra; empty by default.
    pub issuer_path: String,
    /// `aud` of issued access tokens.
    pub audience: String,
    /// `tid` of issued tokens.
    pub tenant: String,
    /// `scp` of user tokens from [`TestProvider::default_claims`].
    pub scopes: String,
    /// `roles` of default and client-credentials tokens.
    pub roles: Vec<String>,
    /// Publish the EC P-256 key besides the RSA key.
    pub publish_ec: bool,
    /// Lifetime of issued tokens, seconds.
    pub token_lifetime: i64,
    /// Number of `groups` (object ids) in the signed-in user's ID and access tokens (0 = no claim).
    pub groups: usize,
    /// Secret the code and refresh grants require (client_secret_basic or client_secret_post).
    pub client_secret: String,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        ProviderOptions {
            port: 0,
            issuer_path: String::new(),
            audience: TEST_AUDIENCE.to_string(),
            tenant: TEST_TENANT.to_string(),
            scopes: "user.read".to_string(),
            roles: vec!["Reader".to_string()],
            publish_ec: true,
            token_lifetime: 3600,
            groups: 0,
            client_secret: TEST_CLIENT_SECRET.to_string(),
        }
    }
}

struct State {
    opts: ProviderOptions,
    issuer: String,
    base_url: String,
    slots: Vec<Slot>,
    /// Index into `slots` of the key that signs.
    current: usize,
    /// Counter for fresh kids across rotations.
    generation: usize,
    down: bool,
    hang_up: bool,
    cache_control: Option<String>,
    /// Authorization codes issued by `/authorize` and not yet redeemed.
    codes: HashMap<String, CodeGrant>,
    /// Live refresh tokens (rotated on every use).
    refresh_tokens: HashMap<String, String>,
    /// `/authorize` answers with this error instead of a code.
    authorize_error: Option<String>,
    /// Refresh grants answer `invalid_grant`.
    refresh_fails: bool,
    /// Query of the last end-session request.
    last_end_session: Option<String>,
    /// Counter for codes, refresh tokens and provider session ids.
    serial: u64,
    /// Provider session id (`sid`) of the last sign-in.
    last_sid: Option<String>,
}

/// What `/authorize` remembered for the token endpoint.
#[derive(Clone)]
struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    /// Provider session id (`sid` claim).
    sid: String,
}

struct Shared {
    state: Mutex<State>,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
    token_requests: AtomicUsize,
    code_grants: AtomicUsize,
    refresh_grants: AtomicUsize,
    end_sessions: AtomicUsize,
}

/// A running test provider; stops serving when dropped.
pub struct TestProvider {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A valid Entra-like (v2) access-token claim set: iss, aud, exp (+1 h), nbf, iat, tid, oid, sub, scp, roles, name,
/// preferred_username, ver, azp.
pub fn entra_claims(issuer: &str, audience: &str, tenant: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "aud": audience,
        "exp": now + 3600,
        "nbf": now - 5,
        "iat": now - 5,
        "tid": tenant,
        "oid": TEST_OID,
        "sub": "pairwise-subject-of-test-user",
        "azp": TEST_CLIENT_ID,
        "azpacr": "0",
        "ver": "2.0",
        "scp": "user.read",
        "roles": ["Reader"],
        "name": "Test User",
        "preferred_username": "test.user@example.com",
    })
}

impl TestProvider {
    /// Serves on 127.0.0.1 on a free port with default options; issuer = `http://127.0.0.1:<port>`.
    pub async fn start() -> TestProvider {
        Self::start_with(ProviderOptions::default()).await.expect("bind 127.0.0.1:0 for the test provider")
    }

    pub async fn start_with(opts: ProviderOptions) -> std::io::Result<TestProvider> {
        let listener = TcpListener::bind(("127.0.0.1", opts.port)).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let issuer_path = opts.issuer_path.trim_end_matches('/').to_string();
        let issuer = format!("{base_url}{issuer_path}");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                opts: ProviderOptions { issuer_path, ..opts },
                issuer,
                base_url,
                slots: vec![Slot { kid: "tk-rsa-1".to_string(), pool_index: 0 }],
                current: 0,
                generation: 1,
                down: false,
                hang_up: false,
                cache_control: None,
                codes: HashMap::new(),
                refresh_tokens: HashMap::new(),
                authorize_error: None,
                refresh_fails: false,
                last_end_session: None,
                serial: 0,
                last_sid: None,
            }),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
            token_requests: AtomicUsize::new(0),
            code_grants: AtomicUsize::new(0),
            refresh_grants: AtomicUsize::new(0),
            end_sessions: AtomicUsize::new(0),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = handle(stream, s).await;
                });
            }
        });
        Ok(TestProvider { shared, addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `iss` of every token, and the base of discovery.
    pub fn issuer(&self) -> String {
        self.shared.state.lock().issuer.clone()
    }

    /// `http://127.0.0.1:<port>` (no path).
    pub fn url(&self) -> String {
        self.shared.state.lock().base_url.clone()
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.url())
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.url())
    }

    pub fn audience(&self) -> String {
        self.shared.state.lock().opts.audience.clone()
    }

    pub fn tenant(&self) -> String {
        self.shared.state.lock().opts.tenant.clone()
    }

    /// The `kid` that [`sign`](Self::sign) uses now.
    pub fn current_kid(&self) -> String {
        let st = self.shared.state.lock();
        st.slots[st.current].kid.clone()
    }

    /// The `kid` of the published EC key.
    pub fn ec_kid(&self) -> String {
        "tk-ec-1".to_string()
    }

    /// A valid access-token claim set from this provider (see [`entra_claims`]), with this provider's issuer,
    /// audience, tenant, scopes, roles and lifetime.
    pub fn default_claims(&self) -> Value {
        let st = self.shared.state.lock();
        let mut claims = entra_claims(&st.issuer, &st.opts.audience, &st.opts.tenant);
        claims["scp"] = json!(st.opts.scopes);
        claims["roles"] = json!(st.opts.roles);
        claims["exp"] = json!(now() + st.opts.token_lifetime);
        claims
    }

    /// RS256 with the current key, header `{alg, typ, kid}`.
    pub fn sign(&self, claims: Value) -> String {
        let kid = self.current_kid();
        self.sign_with_header(json!({"alg": "RS256", "typ": "JWT", "kid": kid}), claims)
    }

    /// ES256 with the EC key, header `{alg, typ, kid}`.
    pub fn sign_es256(&self, claims: Value) -> String {
        self.sign_with_header(json!({"alg": "ES256", "typ": "JWT", "kid": self.ec_kid()}), claims)
    }

    /// Signs exactly this header and these claims. The key follows the header's `alg`: ES256 signs with the EC key,
    /// RS*/PS* with the current RSA key; any other `alg` (none, HS256, garbage) gets an RS256 signature from the
    /// current RSA key, so a test sees the verifier refuse the header, not the signature.
    pub fn sign_with_header(&self, header: Value, claims: Value) -> String {
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("RS256");
        let (key, alg) = match alg {
            "ES256" => (&ec_pool()[0].encoding, Algorithm::ES256),
            "RS384" => (self.current_rsa(), Algorithm::RS384),
            "RS512" => (self.current_rsa(), Algorithm::RS512),
            "PS256" => (self.current_rsa(), Algorithm::PS256),
            "PS384" => (self.current_rsa(), Algorithm::PS384),
            "PS512" => (self.current_rsa(), Algorithm::PS512),
            _ => (self.current_rsa(), Algorithm::RS256),
        };
        sign_raw(&header, &claims, key, alg)
    }

    /// Signs exactly these header and payload JSON texts, RS256 with the current key: for tests that need JSON
    /// a `Value` cannot hold (duplicate members, odd number forms).
    pub fn sign_text(&self, header_json: &str, payload_json: &str) -> String {
        let message = format!("{}.{}", b64(header_json.as_bytes()), b64(payload_json.as_bytes()));
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), self.current_rsa(), Algorithm::RS256)
            .expect("signing with an embedded key");
        format!("{message}.{sig}")
    }

    fn current_rsa(&self) -> &'static EncodingKey {
        let st = self.shared.state.lock();
        &rsa_pool()[st.slots[st.current].pool_index].encoding
    }

    /// Publishes a new RSA key under a new `kid` and makes it current. Old keys stay published until
    /// [`remove_old_keys`](Self::remove_old_keys). Returns the new `kid`.
    pub fn rotate_key(&self) -> String {
        let mut st = self.shared.state.lock();
        st.generation += 1;
        let slot = Slot { kid: format!("tk-rsa-{}", st.generation), pool_index: (st.generation - 1) % RSA_PEMS.len() };
        let kid = slot.kid.clone();
        st.slots.push(slot);
        st.current = st.slots.len() - 1;
        kid
    }

    /// Keeps only the current RSA key in the JWKS.
    pub fn remove_old_keys(&self) {
        let mut st = self.shared.state.lock();
        let current = st.slots[st.current].clone();
        st.slots = vec![current];
        st.current = 0;
    }

    /// `true`: every request is answered 503 (the provider is "down").
    pub fn set_down(&self, down: bool) {
        self.shared.state.lock().down = down;
    }

    /// `true`: every connection is closed without an answer.
    pub fn set_hang_up(&self, hang_up: bool) {
        self.shared.state.lock().hang_up = hang_up;
    }

    /// `Cache-Control` header of the JWKS response (none by default).
    pub fn set_cache_control(&self, value: Option<String>) {
        self.shared.state.lock().cache_control = value;
    }

    /// JWKS requests answered with keys (not counting 503s while down).
    pub fn jwks_fetch_count(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Discovery requests answered with a document.
    pub fn discovery_fetch_count(&self) -> usize {
        self.shared.discovery_fetches.load(Ordering::SeqCst)
    }

    pub fn token_request_count(&self) -> usize {
        self.shared.token_requests.load(Ordering::SeqCst)
    }

    /// Successful `authorization_code` grants.
    pub fn code_grant_count(&self) -> usize {
        self.shared.code_grants.load(Ordering::SeqCst)
    }

    /// Successful `refresh_token` grants.
    pub fn refresh_grant_count(&self) -> usize {
        self.shared.refresh_grants.load(Ordering::SeqCst)
    }

    /// Requests to the end-session endpoint (`/logout`).
    pub fn end_session_count(&self) -> usize {
        self.shared.end_sessions.load(Ordering::SeqCst)
    }

    /// The query string of the last end-session request.
    pub fn last_end_session(&self) -> Option<String> {
        self.shared.state.lock().last_end_session.clone()
    }

    /// `Some(error)`: `/authorize` redirects back with `error=<error>` (e.g. `access_denied`) instead of a code.
    pub fn set_authorize_error(&self, error: Option<&str>) {
        self.shared.state.lock().authorize_error = error.map(str::to_string);
    }

    /// `true`: refresh grants are refused with `invalid_grant` (revoked refresh token).
    pub fn set_refresh_fails(&self, fails: bool) {
        self.shared.state.lock().refresh_fails = fails;
    }

    /// The provider session id (`sid` claim) of the last sign-in, as a front-channel logout would name it.
    pub fn last_sid(&self) -> Option<String> {
        self.shared.state.lock().last_sid.clone()
    }

    /// The group object ids the signed-in user's tokens carry.
    pub fn user_groups(&self) -> Vec<String> {
        user_groups(self.shared.state.lock().opts.groups)
    }

    /// The JWKS as currently served.
    pub fn jwks(&self) -> Value {
        jwks_of(&self.shared.state.lock())
    }

    /// The discovery document as served.
    pub fn discovery(&self) -> Value {
        discovery_of(&self.shared.state.lock())
    }

    /// A client-credentials (app-only) access token like `/token` issues: no `scp`, `roles`, `idtyp = app`.
    pub fn client_credentials_token(&self, client_id: &str) -> String {
        client_credentials(&self.shared.state.lock(), client_id).0
    }
}

/// What `/token` issues for the client-credentials grant: app-only claims (no `scp` or user names, `idtyp = app`,
/// `azp` = the client), RS256 with the current key. Returns the token and its lifetime.
fn client_credentials(st: &State, client_id: &str) -> (String, i64) {
    let mut claims = entra_claims(&st.issuer, &st.opts.audience, &st.opts.tenant);
    claims["roles"] = json!(st.opts.roles);
    claims["exp"] = json!(now() + st.opts.token_lifetime);
    if let Some(obj) = claims.as_object_mut() {
        obj.remove("scp");
        obj.remove("name");
        obj.remove("preferred_username");
        obj.insert("idtyp".into(), json!("app"));
        obj.insert("azp".into(), json!(client_id));
        obj.insert("sub".into(), json!(format!("sp-{client_id}")));
    }
    let slot = &st.slots[st.current];
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": slot.kid});
    let token = sign_raw(&header, &claims, &rsa_pool()[slot.pool_index].encoding, Algorithm::RS256);
    (token, st.opts.token_lifetime)
}

/// `base64url(header).base64url(claims).base64url(signature)`.
pub fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("signing with an embedded key");
    format!("{message}.{sig}")
}

/// An unsigned token (`alg` as given, empty signature): for "alg none" tests.
pub fn unsigned_token(alg: &str, claims: &Value) -> String {
    let header = json!({"alg": alg, "typ": "JWT"});
    format!("{}.{}.", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()))
}

fn jwks_of(st: &State) -> Value {
    let mut keys = Vec::new();
    for slot in &st.slots {
        let mut jwk = rsa_pool()[slot.pool_index].jwk.clone();
        jwk.common.key_id = Some(slot.kid.clone());
        keys.push(serde_json::to_value(jwk).unwrap_or(Value::Null));
    }
    if st.opts.publish_ec {
        let mut jwk = ec_pool()[0].jwk.clone();
        jwk.common.key_id = Some("tk-ec-1".to_string());
        keys.push(serde_json::to_value(jwk).unwrap_or(Value::Null));
    }
    json!({ "keys": keys })
}

fn discovery_of(st: &State) -> Value {
    let base = &st.base_url;
    json!({
        "issuer": st.issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "end_session_endpoint": format!("{base}/logout"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
    })
}

// === the HTTP server ===

struct Request {
    method: String,
    path: String,
    /// `Authorization` header, for client authentication at `/token`.
    authorization: Option<String>,
    body: Vec<u8>,
}

async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > 64 * 1024 {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let mut content_length = 0usize;
    let mut authorization = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap_or(0);
            }
            if name.trim().eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_string());
            }
        }
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < content_length.min(1024 * 1024) {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(Request { method, path, authorization, body }))
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    extra: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    let _ = stream.shutdown().await;
    Ok(())
}

fn form_value(body: &[u8], key: &str) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(mut stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let Some(req) = read_request(&mut stream).await? else { return Ok(()) };
    let (down, hang_up, issuer_path) = {
        let st = shared.state.lock();
        (st.down, st.hang_up, st.opts.issuer_path.clone())
    };
    if hang_up {
        return Ok(());
    }
    if down {
        return respond(&mut stream, 503, "application/json", &[], br#"{"error":"temporarily_unavailable"}"#).await;
    }
    let path = req.path.split('?').next().unwrap_or_default().to_string();
    let discovery_path = format!("{issuer_path}/.well-known/openid-configuration");
    if path == discovery_path || path == "/.well-known/openid-configuration" {
        shared.discovery_fetches.fetch_add(1, Ordering::SeqCst);
        let body = discovery_of(&shared.state.lock()).to_string();
        return respond(&mut stream, 200, "application/json", &[], body.as_bytes()).await;
    }
    match path.as_str() {
        "/jwks" => {
            shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            let (body, cache_control) = {
                let st = shared.state.lock();
                (jwks_of(&st).to_string(), st.cache_control.clone())
            };
            let extra: Vec<(&str, String)> = cache_control.map(|v| ("Cache-Control", v)).into_iter().collect();
            respond(&mut stream, 200, "application/json", &extra, body.as_bytes()).await
        }
        "/token" => {
            if req.method != "POST" {
                return respond(&mut stream, 405, "application/json", &[], br#"{"error":"invalid_request"}"#).await;
            }
            shared.token_requests.fetch_add(1, Ordering::SeqCst);
            let grant = form_value(&req.body, "grant_type");
            if matches!(grant.as_deref(), Some("authorization_code") | Some("refresh_token")) {
                let (status, body) = user_grant(&shared, &req);
                return respond(
                    &mut stream,
                    status,
                    "application/json",
                    &[("Cache-Control", "no-store".into())],
                    body.to_string().as_bytes(),
                )
                .await;
            }
            if grant.as_deref() != Some("client_credentials") {
                return respond(&mut stream, 400, "application/json", &[], br#"{"error":"unsupported_grant_type"}"#)
                    .await;
            }
            let client_id = form_value(&req.body, "client_id").unwrap_or_else(|| TEST_CLIENT_ID.to_string());
            let (token, lifetime) = client_credentials(&shared.state.lock(), &client_id);
            let body = json!({"token_type": "Bearer", "expires_in": lifetime, "access_token": token}).to_string();
            respond(&mut stream, 200, "application/json", &[("Cache-Control", "no-store".into())], body.as_bytes())
                .await
        }
        "/authorize" => {
            let query = req.path.split_once('?').map(|(_, q)| q).unwrap_or_default();
            match authorize(&shared, query) {
                Ok(location) => respond(&mut stream, 302, "text/plain", &[("Location", location)], b"").await,
                Err(why) => respond(&mut stream, 400, "text/plain", &[], why.as_bytes()).await,
            }
        }
        "/logout" => {
            shared.end_sessions.fetch_add(1, Ordering::SeqCst);
            let query = req.path.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default();
            let back = query_value(&query, "post_logout_redirect_uri");
            shared.state.lock().last_end_session = Some(query);
            match back {
                Some(back) => respond(&mut stream, 302, "text/plain", &[("Location", back)], b"").await,
                None => respond(&mut stream, 200, "text/html", &[], b"<p id=\"signed-out\">signed out</p>").await,
            }
        }
        _ => respond(&mut stream, 404, "application/json", &[], br#"{"error":"not_found"}"#).await,
    }
}

// === the code flow: /authorize (auto-approve) and the user grants at /token ===

fn query_value(query: &str, key: &str) -> Option<String> {
    form_value(query.as_bytes(), key)
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn user_groups(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("aaaaaaaa-0000-0000-0000-{:012}", i + 1)).collect()
}

/// Auto-approves a sign-in: checks the request like a real provider would (client, PKCE S256) and redirects back
/// with a one-time code and the `state`, or with `error=` when set so.
fn authorize(shared: &Shared, query: &str) -> Result<String, String> {
    let q = |k: &str| query_value(query, k);
    let redirect_uri = q("redirect_uri").ok_or("redirect_uri is required")?;
    if !(redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://")) {
        return Err("redirect_uri must be absolute".into());
    }
    let client_id = q("client_id").ok_or("client_id is required")?;
    let state = q("state").unwrap_or_default();
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let mut st = shared.state.lock();
    if let Some(error) = st.authorize_error.clone() {
        return Ok(format!(
            "{redirect_uri}{sep}error={}&error_description={}&state={}",
            encode(&error),
            encode("The user cancelled"),
            encode(&state)
        ));
    }
    let bad = |e: &str| {
        Ok(format!("{redirect_uri}{sep}error=invalid_request&error_description={}&state={}", encode(e), encode(&state)))
    };
    if client_id != TEST_CLIENT_ID {
        return bad("unknown client_id");
    }
    if q("response_type").as_deref() != Some("code") {
        return bad("response_type must be code");
    }
    if q("code_challenge_method").as_deref() != Some("S256") {
        return bad("PKCE S256 is required");
    }
    let Some(challenge) = q("code_challenge").filter(|c| c.len() >= 43) else {
        return bad("code_challenge is required");
    };
    st.serial += 1;
    let code = format!("code-{}-{}", st.serial, now());
    let sid = format!("idp-session-{}", st.serial);
    st.last_sid = Some(sid.clone());
    st.codes.insert(
        code.clone(),
        CodeGrant { client_id, redirect_uri: redirect_uri.clone(), challenge, nonce: q("nonce"), sid },
    );
    Ok(format!("{redirect_uri}{sep}code={}&state={}", encode(&code), encode(&state)))
}

/// The client's credentials at `/token`: `(client_id, secret)` from Basic auth or the form.
fn client_auth(req: &Request) -> Option<(String, String)> {
    if let Some(basic) = req.authorization.as_deref().and_then(|a| a.strip_prefix("Basic ")) {
        let raw = base64::engine::general_purpose::STANDARD.decode(basic.trim()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (id, secret) = text.split_once(':')?;
        return Some((percent_decode(id), percent_decode(secret)));
    }
    Some((form_value(&req.body, "client_id")?, form_value(&req.body, "client_secret")?))
}

fn oauth_error(error: &str, description: &str) -> (u16, Value) {
    (400, json!({"error": error, "error_description": description}))
}

/// `authorization_code` (with PKCE) and `refresh_token` grants for the test user.
fn user_grant(shared: &Shared, req: &Request) -> (u16, Value) {
    use sha2::Digest;
    let form = |k: &str| form_value(&req.body, k);
    let mut st = shared.state.lock();
    match client_auth(req) {
        Some((id, secret)) if id == TEST_CLIENT_ID && secret == st.opts.client_secret => {}
        _ => return (401, json!({"error": "invalid_client", "error_description": "client authentication failed"})),
    }
    let (nonce, sid) = if form("grant_type").as_deref() == Some("authorization_code") {
        let Some(grant) = form("code").and_then(|c| st.codes.remove(&c)) else {
            return oauth_error("invalid_grant", "the code is unknown, expired or already used");
        };
        if grant.client_id != TEST_CLIENT_ID || form("redirect_uri").as_deref() != Some(grant.redirect_uri.as_str()) {
            return oauth_error("invalid_grant", "redirect_uri does not match the authorization request");
        }
        let verifier = form("code_verifier").unwrap_or_default();
        if b64(&sha2::Sha256::digest(verifier.as_bytes())) != grant.challenge {
            return oauth_error("invalid_grant", "PKCE verification failed");
        }
        shared.code_grants.fetch_add(1, Ordering::SeqCst);
        (grant.nonce, grant.sid)
    } else {
        let Some(sid) = form("refresh_token").and_then(|t| st.refresh_tokens.remove(&t)) else {
            return oauth_error("invalid_grant", "the refresh token is unknown, revoked or already used");
        };
        if st.refresh_fails {
            return oauth_error("invalid_grant", "the refresh token was revoked");
        }
        shared.refresh_grants.fetch_add(1, Ordering::SeqCst);
        (None, sid)
    };
    st.serial += 1;
    let refresh = format!("rt-{}-{}", st.serial, now());
    st.refresh_tokens.insert(refresh.clone(), sid.clone());
    let (access, id) = user_tokens(&st, nonce.as_deref(), &sid);
    (
        200,
        json!({
            "token_type": "Bearer",
            "expires_in": st.opts.token_lifetime,
            "access_token": access,
            "id_token": id,
            "refresh_token": refresh,
            "scope": format!("openid profile email offline_access {}", st.opts.scopes),
        }),
    )
}

/// An access token (for the API: `scp`, `roles`, `groups`) and an ID token (for the client: `nonce`, `sid`) for the
/// test user, both RS256 with the current key.
fn user_tokens(st: &State, nonce: Option<&str>, sid: &str) -> (String, String) {
    let exp = now() + st.opts.token_lifetime;
    let groups = user_groups(st.opts.groups);
    let mut access = entra_claims(&st.issuer, &st.opts.audience, &st.opts.tenant);
    access["scp"] = json!(st.opts.scopes);
    access["roles"] = json!(st.opts.roles);
    access["exp"] = json!(exp);
    let mut id = json!({
        "iss": st.issuer,
        "aud": TEST_CLIENT_ID,
        "exp": exp,
        "iat": now() - 1,
        "nbf": now() - 1,
        "tid": st.opts.tenant,
        "oid": TEST_OID,
        "sub": "pairwise-subject-of-test-user",
        "name": "Test User",
        "preferred_username": "test.user@example.com",
        "email": "test.user@example.com",
        "sid": sid,
        "ver": "2.0",
    });
    if !groups.is_empty() {
        access["groups"] = json!(groups);
        id["groups"] = json!(groups);
    }
    if let Some(n) = nonce {
        id["nonce"] = json!(n);
    }
    let slot = &st.slots[st.current];
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": slot.kid});
    let key = &rsa_pool()[slot.pool_index].encoding;
    (sign_raw(&header, &access, key, Algorithm::RS256), sign_raw(&header, &id, key, Algorithm::RS256))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, DecodingKey, Validation};

    #[tokio::test]
    async fn serves_discovery_and_jwks_that_verify_its_tokens() {
        let p = TestProvider::start().await;
        let client = Http::new(p.addr());
        let (status, _, body) = client.get("/.well-known/openid-configuration").await;
        assert_eq!(status, 200);
        let doc: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(doc["issuer"], json!(p.issuer()));
        assert_eq!(doc["jwks_uri"], json!(p.jwks_url()));

        let (status, _, body) = client.get("/jwks").await;
        assert_eq!(status, 200);
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&body).unwrap();
        assert_eq!(jwks.keys.len(), 2, "one RSA and one EC key");
        assert_eq!(p.jwks_fetch_count(), 1);

        let token = p.sign(p.default_claims());
        let jwk = jwks.find(&p.current_kid()).unwrap();
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[TEST_AUDIENCE]);
        v.set_issuer(&[p.issuer()]);
        let data = decode::<Value>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &v).unwrap();
        assert_eq!(data.claims["tid"], json!(TEST_TENANT));

        let token = p.sign_es256(p.default_claims());
        let jwk = jwks.find(&p.ec_kid()).unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[TEST_AUDIENCE]);
        decode::<Value>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &v).unwrap();
    }

    #[tokio::test]
    async fn rotation_publishes_new_kid_and_can_drop_old() {
        let p = TestProvider::start().await;
        let old = p.current_kid();
        let new = p.rotate_key();
        assert_ne!(old, new);
        assert_eq!(p.current_kid(), new);
        let kids: Vec<String> =
            p.jwks()["keys"].as_array().unwrap().iter().filter_map(|k| k["kid"].as_str().map(String::from)).collect();
        assert!(kids.contains(&old) && kids.contains(&new));
        p.remove_old_keys();
        let kids: Vec<String> =
            p.jwks()["keys"].as_array().unwrap().iter().filter_map(|k| k["kid"].as_str().map(String::from)).collect();
        assert!(!kids.contains(&old) && kids.contains(&new));
    }

    #[tokio::test]
    async fn down_answers_503_and_cache_control_is_sent() {
        let p = TestProvider::start().await;
        let client = Http::new(p.addr());
        p.set_down(true);
        assert_eq!(client.get("/jwks").await.0, 503);
        assert_eq!(p.jwks_fetch_count(), 0);
        p.set_down(false);
        p.set_cache_control(Some("public, max-age=120".into()));
        let (status, head, _) = client.get("/jwks").await;
        assert_eq!(status, 200);
        assert!(head.contains("Cache-Control: public, max-age=120"), "{head}");
    }

    #[tokio::test]
    async fn code_flow_with_pkce_refresh_rotation_and_end_session() {
        use sha2::Digest;
        let p = TestProvider::start().await;
        let client = Http::new(p.addr());
        let verifier = "v".repeat(43);
        let challenge = b64(&sha2::Sha256::digest(verifier.as_bytes()));
        let redirect = "http%3A%2F%2Fapp.test%2Fcb";
        let q = format!(
            "/authorize?response_type=code&client_id={TEST_CLIENT_ID}&redirect_uri={redirect}&state=st&nonce=nn&code_challenge={challenge}&code_challenge_method=S256"
        );
        let (status, head, _) = client.get(&q).await;
        assert_eq!(status, 302);
        let location = head.lines().find_map(|l| l.strip_prefix("Location: ")).unwrap().to_string();
        assert!(location.starts_with("http://app.test/cb?code="), "{location}");
        let code = query_value(location.split_once('?').unwrap().1, "code").unwrap();
        assert_eq!(query_value(location.split_once('?').unwrap().1, "state").as_deref(), Some("st"));

        let form = |code: &str, verifier: &str| {
            format!("grant_type=authorization_code&code={code}&redirect_uri={redirect}&code_verifier={verifier}&client_id={TEST_CLIENT_ID}&client_secret={TEST_CLIENT_SECRET}")
        };
        // Wrong verifier: refused, and the code is spent.
        let (status, _, body) = client.post("/token", &form(&code, &"x".repeat(43))).await;
        assert_eq!(status, 400, "{body}");
        let (status, head, _) = client.get(&q).await;
        assert_eq!(status, 302);
        let location = head.lines().find_map(|l| l.strip_prefix("Location: ")).unwrap().to_string();
        let code = query_value(location.split_once('?').unwrap().1, "code").unwrap();
        let (status, _, body) =
            client.post("/token", &form(&code, &verifier).replace(TEST_CLIENT_SECRET, "wrong")).await;
        assert_eq!(status, 401, "client authentication is checked: {body}");
        let (status, head, _) = client.get(&q).await;
        assert_eq!(status, 302);
        let location = head.lines().find_map(|l| l.strip_prefix("Location: ")).unwrap().to_string();
        let code = query_value(location.split_once('?').unwrap().1, "code").unwrap();
        let (status, _, body) = client.post("/token", &form(&code, &verifier)).await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let id: Value = jsonwebtoken::dangerous::insecure_decode_claims(v["id_token"].as_str().unwrap()).unwrap();
        assert_eq!(id["nonce"], "nn");
        assert_eq!(id["aud"], TEST_CLIENT_ID);
        assert_eq!(id["sid"].as_str(), p.last_sid().as_deref());
        let at: Value = jsonwebtoken::dangerous::insecure_decode_claims(v["access_token"].as_str().unwrap()).unwrap();
        assert_eq!(at["scp"], "user.read");
        assert_eq!(p.code_grant_count(), 1);
        let (status, _, _) = client.post("/token", &form(&code, &verifier)).await;
        assert_eq!(status, 400, "a code is single-use");

        let rt = v["refresh_token"].as_str().unwrap().to_string();
        let refresh = |rt: &str| {
            format!("grant_type=refresh_token&refresh_token={rt}&client_id={TEST_CLIENT_ID}&client_secret={TEST_CLIENT_SECRET}")
        };
        let (status, _, body) = client.post("/token", &refresh(&rt)).await;
        assert_eq!(status, 200, "{body}");
        let (status, _, _) = client.post("/token", &refresh(&rt)).await;
        assert_eq!(status, 400, "refresh tokens rotate");
        assert_eq!(p.refresh_grant_count(), 1);

        let (status, head, _) = client.get("/logout?post_logout_redirect_uri=http%3A%2F%2Fapp.test%2F").await;
        assert_eq!(status, 302);
        assert!(head.contains("Location: http://app.test/"));
        assert_eq!(p.end_session_count(), 1);
    }

    #[tokio::test]
    async fn token_endpoint_issues_app_only_tokens() {
        let p = TestProvider::start().await;
        let client = Http::new(p.addr());
        let (status, _, body) = client.post("/token", "grant_type=client_credentials&client_id=my-app").await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let token = v["access_token"].as_str().unwrap();
        let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(token).unwrap();
        assert_eq!(claims["idtyp"], json!("app"));
        assert_eq!(claims["azp"], json!("my-app"));
        assert!(claims.get("scp").is_none());
        let (status, _, _) = client.post("/token", "grant_type=password").await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn entra_like_issuer_path() {
        let p = TestProvider::start_with(ProviderOptions {
            issuer_path: format!("/{TEST_TENANT}/v2.0"),
            ..Default::default()
        })
        .await
        .unwrap();
        assert!(p.issuer().ends_with(&format!("/{TEST_TENANT}/v2.0")));
        let client = Http::new(p.addr());
        let (status, _, _) = client.get(&format!("/{TEST_TENANT}/v2.0/.well-known/openid-configuration")).await;
        assert_eq!(status, 200);
    }

    #[test]
    fn percent_decoding_of_form_values() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("api%3A%2F%2Fx"), "api://x");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
        assert_eq!(percent_decode("end%2"), "end%2");
    }

    /// A tiny HTTP/1.1 client for these tests (one request per connection).
    struct Http {
        addr: SocketAddr,
    }

    impl Http {
        fn new(addr: SocketAddr) -> Self {
            Http { addr }
        }
        async fn get(&self, path: &str) -> (u16, String, String) {
            self.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")).await
        }
        async fn post(&self, path: &str, body: &str) -> (u16, String, String) {
            self.send(format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ))
            .await
        }
        async fn send(&self, raw: String) -> (u16, String, String) {
            let mut s = TcpStream::connect(self.addr).await.unwrap();
            s.write_all(raw.as_bytes()).await.unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.unwrap();
            let text = String::from_utf8_lossy(&out).to_string();
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            (status, head.to_string(), body.to_string())
        }
    }
}
