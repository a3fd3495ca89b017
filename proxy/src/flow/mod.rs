//! One request, top to bottom: route → authenticate (Bearer or session) → authorize → forward with identity, or
//! answer (redirect, 401, 403, 502/503) with a clear reason.
//!
//! Pure of Pingora: the gateway hands in the request's parts and gets an [`Outcome`] back, so this whole pipeline is
//! tested with plain values, and the gateway stays an adapter.

pub mod browser;
pub mod forwarded;
pub mod response;
pub mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use sha2::{Digest, Sha256};

use crate::config::{Access, Backend, Config, HostConfig};
use crate::identity::{headers as id_headers, AssertionSigner, AuthMethod, Principal};
use crate::oidc::{KeyStore, VerifiedToken, Verifier};
use crate::policy::{self, Decision, Router};

pub use browser::{Browser, SessionAuth};
pub use forwarded::External;
pub use response::LocalResponse;

/// What the gateway does with a request.
#[derive(Debug)]
pub enum Outcome {
    /// Answer locally.
    Respond(LocalResponse),
    /// Send upstream with these changes.
    Forward(Box<Forward>),
}

/// How a request goes upstream.
#[derive(Debug, Clone)]
pub struct Forward {
    /// Index of the host in the config (for per-host response headers).
    pub host: usize,
    pub upstream: SocketAddr,
    /// The normalized path plus the original query: what the upstream sees is what the policy matched.
    pub path_and_query: String,
    /// Identity headers to add after every inbound identity header was removed (shared: a repeated token reuses
    /// the same prepared headers and assertion).
    pub identity: IdentityHeaders,
    pub authorization: AuthorizationHeader,
    /// The `Cookie` header upstream (the sidecar's own cookies never reach the app).
    pub cookie: CookieHeader,
    pub external: External,
    /// `Set-Cookie` values to append to the upstream's response (refreshed session).
    pub set_cookies: Vec<String>,
    /// `bearer`, `session` or `anonymous` (the subject is in the [`Trace`]).
    pub auth: &'static str,
}

/// One identity header as the gateway adds it upstream.
#[derive(Debug, Clone)]
pub struct IdentityHeader {
    /// The name the identity module gives it (`X-Auth-Subject`, `OIDC_CLAIM_email`), parsed once when prepared and
    /// shared by every request of the session or token; it goes out lower-case ([`upstream`] says why).
    pub name: HeaderName,
    pub value: HeaderValue,
}

/// A principal's identity headers on one host, prepared once and shared by every request that reuses them.
pub type IdentityHeaders = Arc<Vec<IdentityHeader>>;

/// A session's identity headers, per host, made on its first request to that host and reused until the assertion
/// is past half its life. One lives with each opened session (`browser::View`), which is made anew whenever the
/// session changes (refresh, sliding), so a refreshed session never reuses old roles, and a session seen again
/// finds its headers without a cache lookup of their own.
#[derive(Default)]
pub struct SessionHeaders(parking_lot::Mutex<Vec<(usize, IdentityHeaders, i64)>>);

impl SessionHeaders {
    /// The headers for `host` while fresh at `now`.
    fn get(&self, host: usize, now: i64) -> Option<IdentityHeaders> {
        self.0.lock().iter().find(|(h, _, fresh)| *h == host && *fresh > now).map(|(_, headers, _)| headers.clone())
    }

    fn put(&self, host: usize, headers: IdentityHeaders, fresh_until: i64) {
        let mut slots = self.0.lock();
        match slots.iter_mut().find(|(h, _, _)| *h == host) {
            Some(slot) => *slot = (host, headers, fresh_until),
            None => slots.push((host, headers, fresh_until)),
        }
    }
}

impl std::fmt::Debug for SessionHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHeaders").field("hosts", &self.0.lock().len()).finish()
    }
}

/// What happens to the `Authorization` header on the way upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationHeader {
    Keep,
    Drop,
    /// `Bearer <session access token>`.
    Replace(String),
}

/// What happens to the `Cookie` header on the way upstream: the sidecar's own cookies never reach the app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CookieHeader {
    /// None of the cookies is ours: the header goes as it came.
    #[default]
    Keep,
    /// Every cookie is ours: no `Cookie` header.
    Drop,
    /// The app's cookies, ours taken out.
    Replace(String),
}

/// The parts of a request the pipeline reads.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a Method,
    /// The raw path, without the query.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The request body, read only for the login callback's `form_post` (everything else streams to the upstream).
    pub body: Option<&'a [u8]>,
    /// The TCP peer.
    pub peer: Option<IpAddr>,
}

/// Everything the pipeline needs, built once at start.
pub struct App {
    pub config: Arc<Config>,
    pub router: Router,
    pub keys: Arc<KeyStore>,
    pub verifier: Verifier,
    pub signer: AssertionSigner,
    pub browser: Browser,
    /// The static SPA of each host with `static_root` (same index as `config.hosts`).
    assets: Vec<Option<crate::assets::Assets>>,
    /// What a verified Bearer token means on one host: its principal and ready-made upstream headers (with the
    /// signed assertion), so a token seen again costs no claim parsing, no signature and no header building.
    prepared: moka::sync::Cache<(usize, usize), Arc<Prepared>, foldhash::fast::RandomState>,
    /// Set on SIGTERM: the health path answers 503 so the ALB stops sending new requests.
    pub draining: AtomicBool,
}

/// A verified token's identity on one host, ready to forward.
struct Prepared {
    /// Held so the verifier's `Arc` (whose address is the cache key) cannot be freed and reused while cached.
    token: Arc<VerifiedToken>,
    principal: Arc<Principal>,
    headers: IdentityHeaders,
    /// After this the assertion is past half its life and is made again.
    fresh_until: i64,
}

/// Log fields every outcome carries.
#[derive(Debug, Default, Clone)]
pub struct Trace {
    /// Index of the host in the config, once known (its name for the log; security headers for local answers too).
    pub host_idx: Option<usize>,
    /// How the caller authenticated (`bearer`, `session`), even when the answer is a refusal.
    pub auth: Option<&'static str>,
    /// The caller, once authenticated (shared, not copied: the log reads only its subject).
    pub caller: Option<Arc<Principal>>,
    pub route_line: Option<usize>,
}

impl Trace {
    /// The caller's subject (oid/sub) for the log, never a token.
    pub fn subject(&self) -> Option<&str> {
        self.caller.as_deref().map(|p| p.subject.as_str())
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Why the Authorization header could not be read as one Bearer token.
#[derive(Debug, PartialEq, Eq)]
enum Credential<'a> {
    None,
    Bearer(&'a str),
    Invalid(&'static str),
}

/// Reads the Bearer token: from exactly one `Authorization` header, scheme case-insensitive (RFC 6750 §2.1).
fn bearer(headers: &HeaderMap) -> Credential<'_> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(first) = values.next() else { return Credential::None };
    if values.next().is_some() {
        return Credential::Invalid("several Authorization headers were sent; send exactly one");
    }
    let Ok(value) = first.to_str() else { return Credential::Invalid("the Authorization header is not ASCII") };
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Credential::Invalid("the Authorization scheme is not Bearer");
    }
    let token = token.trim();
    if token.is_empty() {
        return Credential::Invalid("the Bearer token is empty");
    }
    Credential::Bearer(token)
}

/// True when the query string carries a token (`access_token=`), which RFC 6750 §2.3 allows but we refuse.
fn token_in_query(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|kv| kv.split('=').next().is_some_and(|k| k.eq_ignore_ascii_case("access_token"))))
}

/// Turns identity header pairs into typed headers once, so the gateway copies them without parsing. A pair that is
/// not a valid header (the identity module already sanitizes values) is dropped and logged.
fn header_values(pairs: Vec<(String, String)>) -> IdentityHeaders {
    let mut out = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value)) {
            (Ok(n), Ok(v)) => out.push(IdentityHeader { name: n, value: v }),
            _ => tracing::warn!(header = %name, "identity header dropped: not a valid header"),
        }
    }
    Arc::new(out)
}

/// Adds `Set-Cookie` values (a cleared or refreshed session) to a local answer.
fn with_cookies(mut r: LocalResponse, cookies: &[String]) -> LocalResponse {
    for c in cookies {
        r.headers.push(("Set-Cookie".to_string(), c.clone()));
    }
    r
}

impl App {
    /// Builds the pipeline from a validated config.
    pub fn new(config: Arc<Config>, keys: Arc<KeyStore>, signer: AssertionSigner) -> anyhow::Result<Self> {
        let router = Router::new(&config.hosts);
        let verifier = Verifier::new(&config.provider, keys.clone());
        let browser = Browser::new(&config, keys.clone())?;
        let mut assets = Vec::with_capacity(config.hosts.len());
        for host in &config.hosts {
            assets.push(match &host.backend {
                Backend::Static { root } => {
                    let loaded = crate::assets::Assets::load(root, crate::assets::Limits::default())
                        .map_err(|e| anyhow::anyhow!("host {}: static_root: {e}", host.name))?;
                    tracing::info!(host = %host.name, root = %root.display(), files = loaded.len(), bytes = loaded.total_bytes(), "static files loaded");
                    Some(loaded)
                }
                Backend::Upstream { .. } => None,
            });
        }
        // Keys are addresses and digests, not attacker-chosen text: the fast hasher is enough.
        let prepared = moka::sync::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(config.identity.assertion_ttl.max(std::time::Duration::from_secs(1)))
            .build_with_hasher(foldhash::fast::RandomState::default());
        Ok(App { config, router, keys, verifier, signer, browser, assets, prepared, draining: AtomicBool::new(false) })
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// The whole decision for one request.
    pub async fn handle(&self, req: Request<'_>, trace: &mut Trace) -> Outcome {
        // The ALB health check uses the task's IP as Host: answer it before host routing.
        if req.path == self.config.server.health_path {
            return Outcome::Respond(if self.draining.load(Ordering::SeqCst) {
                LocalResponse::unavailable("draining: the sidecar is shutting down")
            } else {
                LocalResponse::ok_json(serde_json::json!({ "status": "ok" }), "health")
            });
        }

        // 1. Route: host, then the normalized path.
        let external = forwarded::external(req.peer, req.headers, &self.config.server.trusted_proxies);
        let Some(host_idx) = self.router.select_host(&external.host) else {
            return Outcome::Respond(LocalResponse::not_found(format!("no host is configured for {}", external.host)));
        };
        let host = self.router.host(host_idx);
        trace.host_idx = Some(host_idx);
        let path = match policy::path::normalize(req.path) {
            Ok(p) => p,
            Err(e) => return Outcome::Respond(LocalResponse::bad_request(format!("refused path: {e}"))),
        };
        // The sidecar's own endpoints (/oauth2/login, callback, logout, userinfo). Boxed, and only for them: the
        // callback's future (token exchange over HTTP) would otherwise make every request's future kilobytes larger.
        if self.browser.is_endpoint(&path) {
            if let Some(outcome) = Box::pin(self.browser.endpoint(&req, host, &path, &external)).await {
                return outcome;
            }
        }
        let path_and_query = match req.query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };

        // A CORS preflight carries no credentials by design: it goes to the app unauthenticated (identity stripped).
        if crate::session::request_kind::is_cors_preflight(req.method, req.headers) {
            let cookie = self.browser.upstream_cookie(req.headers, &external);
            return self.forward(host_idx, host, path_and_query, external, None, Vec::new(), None, cookie);
        }

        let Some(route) = self.router.route(host_idx, &path, req.method) else {
            return Outcome::Respond(LocalResponse::no_route(&path));
        };
        trace.route_line = Some(route.line);
        let realm = host.name.as_str();

        // 2. Authenticate: a Bearer token if one came, else the session cookie. Public routes still get identity
        // headers when valid credentials come along, but bad ones do not stop them.
        let public = matches!(route.access, Access::Public);
        let mut principal: Option<Arc<Principal>> = None;
        let mut cache_key: Option<[u8; 32]> = None;
        let mut session_headers: Option<Arc<SessionHeaders>> = None;
        let mut set_cookies: Vec<String> = Vec::new();
        let mut session_token: Option<String> = None;
        let mut prepared: Option<Arc<Prepared>> = None;
        let mut bearer_token: Option<Arc<VerifiedToken>> = None;
        // The `Cookie` header upstream, when reading the session already decided it.
        let mut cookie_decided: Option<CookieHeader> = None;
        match bearer(req.headers) {
            Credential::Bearer(token) => match self.verifier.verify_access_token(token).await {
                Ok(verified) => {
                    let key = (Arc::as_ptr(&verified) as usize, host_idx);
                    match self.prepared.get(&key) {
                        Some(p) if Arc::ptr_eq(&p.token, &verified) && p.fresh_until > now() => prepared = Some(p),
                        _ => {
                            cache_key = Some(Sha256::digest(token.as_bytes()).into());
                            principal = Some(Arc::new(Principal::from_claims(
                                &verified.claims,
                                verified.expires_at,
                                AuthMethod::Bearer,
                            )));
                            bearer_token = Some(verified);
                        }
                    }
                }
                Err(e) if public => {
                    tracing::debug!(reason = %e.description(), "token ignored on a public route");
                }
                Err(e) if e.is_unavailable() => {
                    return Outcome::Respond(LocalResponse::unavailable(format!(
                        "cannot verify tokens yet: {}",
                        e.description()
                    )))
                }
                Err(e) => return Outcome::Respond(LocalResponse::bad_token(realm, "invalid_token", &e.description())),
            },
            Credential::Invalid(why) if !public => {
                return Outcome::Respond(LocalResponse::bad_token(realm, "invalid_request", why))
            }
            Credential::Invalid(_) => {}
            Credential::None => {
                if !public && token_in_query(req.query) {
                    return Outcome::Respond(LocalResponse::bad_token(
                        realm,
                        "invalid_request",
                        "tokens in the query string are not accepted; send Authorization: Bearer <token>",
                    ));
                }
                match self.browser.authenticate(&req, host, &external).await {
                    Ok(session) => {
                        cookie_decided = Some(session.upstream_cookie);
                        set_cookies = session.set_cookies;
                        if let Some(p) = session.principal {
                            if !self.browser.csrf_ok(req.method, req.headers, host, &external) {
                                return Outcome::Respond(with_cookies(
                                    LocalResponse::json_error(
                                        403,
                                        "csrf",
                                        "csrf_refused",
                                        "a cross-site request with the session cookie was refused: unsafe methods need a same-origin Origin or Sec-Fetch-Site",
                                    ),
                                    &set_cookies,
                                ));
                            }
                            cache_key = session.cache_key;
                            session_headers = session.headers;
                            session_token = session.access_token;
                            principal = Some(p);
                        }
                    }
                    Err(unavailable) if !public => return Outcome::Respond(unavailable),
                    Err(_) => {}
                }
            }
        }

        // 3. Authorize.
        let who = prepared.as_ref().map(|p| &p.principal).or(principal.as_ref());
        if let Some(p) = who {
            trace.auth = Some(p.method.as_str());
            trace.caller = Some(p.clone());
        }
        match policy::evaluate(&route.access, who.map(|p| &**p)) {
            Decision::Allow => {}
            Decision::Unauthenticated => {
                let answer = self.browser.challenge(&req, host, &external, &path_and_query);
                return Outcome::Respond(with_cookies(answer, &set_cookies));
            }
            Decision::Forbidden(denial) => {
                return Outcome::Respond(with_cookies(
                    LocalResponse::insufficient(realm, &denial.required, &denial.reason, denial.scope_hint.as_deref()),
                    &set_cookies,
                ))
            }
        }

        // 4. A static host answers from its files (the policy above applied to them as to any path).
        if let Some(assets) = self.assets.get(host_idx).and_then(Option::as_ref) {
            return Outcome::Respond(with_cookies(assets.serve(req.method, &path, req.headers), &set_cookies));
        }

        // 5. Forward with identity: a repeated token's prepared headers, or headers made now (and remembered).
        let cookie = cookie_decided.unwrap_or_else(|| self.browser.upstream_cookie(req.headers, &external));
        if let Some(p) = &prepared {
            let identity = Some((p.headers.clone(), &*p.principal));
            return self.forward(host_idx, host, path_and_query, external, identity, set_cookies, None, cookie);
        }
        let Some(p) = principal else {
            return self.forward(host_idx, host, path_and_query, external, None, set_cookies, session_token, cookie);
        };
        let made = self.identity_headers(host_idx, host, &p, cache_key, session_headers.as_deref(), session_token.as_deref());
        let headers = match made {
            Ok(h) => h,
            Err(answer) => return Outcome::Respond(answer),
        };
        let identity = Some((headers.clone(), &*p));
        let outcome = self.forward(host_idx, host, path_and_query, external, identity, set_cookies, session_token, cookie);
        if let Some(token) = bearer_token {
            let key = (Arc::as_ptr(&token) as usize, host_idx);
            let fresh_until = self.fresh_until(p.expires_at);
            self.prepared.insert(key, Arc::new(Prepared { token, principal: p, headers, fresh_until }));
        }
        outcome
    }

    /// Until when a prepared identity may be reused: while the assertion has at least half its life left, and
    /// never past the caller's own credentials.
    fn fresh_until(&self, expires_at: i64) -> i64 {
        let half_life = (self.config.identity.assertion_ttl.as_secs() / 2) as i64;
        (now() + half_life).min(expires_at)
    }

    /// The upstream identity headers for `p` on this host, with the signed assertion. A session's are remembered
    /// in its `remembered` slots; a Bearer token's by the caller (see `prepared`).
    fn identity_headers(
        &self,
        host_idx: usize,
        host: &HostConfig,
        p: &Principal,
        cache_key: Option<[u8; 32]>,
        remembered: Option<&SessionHeaders>,
        session_token: Option<&str>,
    ) -> Result<IdentityHeaders, LocalResponse> {
        if let Some(headers) = remembered.and_then(|r| r.get(host_idx, now())) {
            return Ok(headers);
        }
        let mut key = cache_key.unwrap_or_else(|| Sha256::digest(p.subject.as_bytes()).into());
        // The assertion's audience is the host, so the same token on two hosts gets two assertions.
        let host_hash: [u8; 32] = Sha256::digest(host.name.as_bytes()).into();
        for (k, h) in key.iter_mut().zip(host_hash) {
            *k ^= h;
        }
        let assertion = match self.signer.sign_cached(&key, p, &host.name, now()) {
            Ok(a) => a,
            // Accepted within the clock-skew leeway but already past `exp`: the assertion would be born dead.
            Err(crate::identity::AssertionError::Expired) => {
                return Err(LocalResponse::bad_token(&host.name, "invalid_token", "the token has expired"))
            }
            Err(e) => {
                tracing::error!(error = %e, "identity assertion could not be signed");
                return Err(LocalResponse::json_error(
                    500,
                    "internal",
                    "server_error",
                    "the identity assertion could not be signed",
                ));
            }
        };
        let headers = header_values(id_headers::upstream_headers(
            p,
            &assertion,
            &self.config.identity.header_prefix,
            host.claim_headers,
            if host.forward_access_token { session_token } else { None },
        ));
        if let Some(r) = remembered {
            r.put(host_idx, headers.clone(), self.fresh_until(p.expires_at));
        }
        Ok(headers)
    }

    /// The forward itself: where to, and what happens to `Authorization`.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        host_idx: usize,
        host: &HostConfig,
        path_and_query: String,
        external: External,
        identity: Option<(IdentityHeaders, &Principal)>,
        set_cookies: Vec<String>,
        session_token: Option<String>,
        cookie: CookieHeader,
    ) -> Outcome {
        let upstream = match &host.backend {
            Backend::Upstream { addr, .. } => *addr,
            // Static hosts are answered from their files before this point.
            Backend::Static { .. } => {
                return Outcome::Respond(LocalResponse::not_found("static serving is not available for this host"))
            }
        };
        let authorization = match (&session_token, host.forward_access_token) {
            (Some(token), true) => AuthorizationHeader::Replace(format!("Bearer {token}")),
            _ if host.forward_authorization => AuthorizationHeader::Keep,
            _ => AuthorizationHeader::Drop,
        };
        let (identity, auth) = match identity {
            Some((headers, p)) => (headers, p.method.as_str()),
            None => (Arc::new(Vec::new()), "anonymous"),
        };
        Outcome::Forward(Box::new(Forward {
            host: host_idx,
            upstream,
            path_and_query,
            identity,
            authorization,
            cookie,
            external,
            set_cookies,
            auth,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        m
    }

    #[test]
    fn bearer_is_read_from_one_header_case_insensitively() {
        assert_eq!(bearer(&headers(&[("authorization", "bearer abc")])), Credential::Bearer("abc"));
        assert_eq!(bearer(&headers(&[("authorization", "Bearer  abc ")])), Credential::Bearer("abc"));
        assert_eq!(bearer(&headers(&[])), Credential::None);
        assert!(matches!(bearer(&headers(&[("authorization", "Basic Zm9vOmJhcg==")])), Credential::Invalid(_)));
        assert!(matches!(bearer(&headers(&[("authorization", "Bearer")])), Credential::Invalid(_)));
        assert!(matches!(
            bearer(&headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")])),
            Credential::Invalid(_)
        ));
    }

    /// A session's identity headers are made once per host and reused while the session stays the same; a session
    /// that changed (a refresh brings new roles) gets new ones, and each host its own (the assertion's audience).
    #[tokio::test]
    async fn session_identity_headers_are_reused_per_host_until_the_session_changes() {
        use crate::session::{unix_now, CookieMap, KeyRing, SessionData, SessionStore};
        // The browser tests' host, and the same again as a second host of the same service.
        let mut cfg = browser::tests::config("login = \"deny\"");
        let mut api = cfg.hosts[0].clone();
        api.name = "api.example.com".into();
        cfg.hosts.push(api);
        let cfg = Arc::new(cfg);
        let keys = KeyStore::new(&cfg.provider).expect("key store");
        let signer = AssertionSigner::generate("oidc-sidecar".into(), std::time::Duration::from_secs(300)).expect("signer");
        let ring = Arc::new(KeyRing::from_config(&cfg.session).expect("keys"));
        let store = SessionStore::new(&cfg.session, ring).expect("store");
        let app = App::new(cfg.clone(), keys, signer).expect("app");

        let cookie_for = |roles: &[&str], access_expires_at: u64| {
            let claims = serde_json::json!({ "sub": "u1", "oid": "o1", "roles": roles });
            let mut d = SessionData::new("o1", claims.as_object().cloned().expect("object"), unix_now(), &cfg.session);
            d.sid = "s".repeat(43);
            d.access_expires_at = Some(access_expires_at);
            d
        };
        let mut cookies = Vec::new();
        for d in [cookie_for(&["reader"], unix_now() + 3600), cookie_for(&["admin"], unix_now() + 3601)] {
            let set = store.save(&d, &CookieMap::default(), false).await.expect("sealed");
            cookies.push(set.iter().map(|c| c.pair().to_owned()).collect::<Vec<_>>().join("; "));
        }
        let forward = |host: &'static str, cookie: String| {
            let app = &app;
            async move {
                let h = headers(&[("host", host), ("cookie", &cookie)]);
                let peer = Some(IpAddr::from([127, 0, 0, 1]));
                let req = Request { method: &Method::GET, path: "/", query: None, headers: &h, body: None, peer };
                match app.handle(req, &mut Trace::default()).await {
                    Outcome::Forward(f) => f.identity,
                    Outcome::Respond(r) => panic!("{} {}", r.status, String::from_utf8_lossy(&r.body)),
                }
            }
        };
        let value = |headers: &IdentityHeaders, name: &str| {
            let h = headers.iter().find(|h| h.name == name);
            h.map(|h| h.value.to_str().expect("ascii").to_owned())
        };

        let first = forward("app.example.com", cookies[0].clone()).await;
        assert_eq!(value(&first, "X-Auth-Roles").as_deref(), Some("reader"));
        let again = forward("app.example.com", cookies[0].clone()).await;
        assert!(Arc::ptr_eq(&first, &again), "the same session on the same host reuses its headers");

        let other_host = forward("api.example.com", cookies[0].clone()).await;
        assert!(!Arc::ptr_eq(&first, &other_host));
        assert_ne!(value(&first, "X-Auth-Assertion"), value(&other_host, "X-Auth-Assertion"), "one assertion per host");
        let back = forward("app.example.com", cookies[0].clone()).await;
        assert!(Arc::ptr_eq(&first, &back), "a second host does not displace the first");

        let refreshed = forward("app.example.com", cookies[1].clone()).await;
        assert_eq!(value(&refreshed, "X-Auth-Roles").as_deref(), Some("admin"), "a changed session never reuses old roles");
        assert_eq!(value(&refreshed, "X-Auth-Subject"), value(&first, "X-Auth-Subject"));
    }

    #[test]
    fn query_tokens_are_spotted() {
        assert!(token_in_query(Some("a=1&access_token=x")));
        assert!(token_in_query(Some("ACCESS_TOKEN=x")));
        assert!(!token_in_query(Some("access_tokens=x")));
        assert!(!token_in_query(None));
    }
}

/// The future of one request's decision is allocated and copied by the gateway for every request (Pingora boxes the
/// filter's future), so its size is a cost on the hot path: the rare paths (sign-in endpoints, refresh, Redis,
/// token verification on a cache miss) are boxed where they are awaited. This keeps them boxed.
#[cfg(test)]
mod future_size {
    fn size<F: std::future::Future>(_: &F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn the_hot_path_future_stays_small() {
        let toml = "[provider]\nissuer = \"https://l.example.com\"\nclient_id = \"c\"\naudiences = [\"a\"]\n[[hosts]]\nname = \"a\"\nupstream = \"http://127.0.0.1:1\"\n[[hosts.routes]]\npath = \"/\"\naccess = \"public\"\n";
        let cfg = std::sync::Arc::new(crate::config::load_str(toml, std::path::Path::new("t.toml")).expect("config"));
        let keys = crate::oidc::KeyStore::new(&cfg.provider).expect("keys");
        let signer =
            crate::identity::AssertionSigner::generate("x".into(), std::time::Duration::from_secs(60)).expect("signer");
        let app = super::App::new(cfg, keys, signer).expect("app");
        let (h, m) = (http::HeaderMap::new(), http::Method::GET);
        let req = super::Request { method: &m, path: "/", query: None, headers: &h, body: None, peer: None };
        let ext = super::forwarded::external(None, &h, &[]);
        let mut trace = super::Trace::default();
        // Unboxed, these were 3.7 KB and 3.1 KB.
        let handle = size(&app.handle(req, &mut trace));
        assert!(handle <= 1536, "App::handle's future is {handle} bytes: box the await that grew it");
        let session = size(&app.browser.authenticate(&req, &app.config.hosts[0], &ext));
        assert!(session <= 768, "Browser::authenticate's future is {session} bytes: box the await that grew it");
        let verify = size(&app.verifier.verify_access_token("t"));
        assert!(verify <= 256, "Verifier::verify_access_token's future is {verify} bytes");
    }
}
