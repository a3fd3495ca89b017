//! Browser sessions inside the request flow: the `/oauth2/*` endpoints, authenticating a request by its session
//! cookie (with refresh), and what an unauthenticated request is told (a redirect to login for a top-level
//! navigation, 401 JSON for everything else).
//!
//! Contract with `flow/mod.rs` (the lead's): `Browser::new` is built once at start; `endpoint` is asked first for
//! every request on a known host; `authenticate` is asked when no Bearer credential came; `challenge` answers an
//! unauthenticated request on a protected route; `csrf_ok` guards session-authenticated unsafe methods.
//!
//! - [`endpoints`]: login, callback, logout, userinfo, front-channel logout.
//! - [`refresh`]: renewing a session's access token once per session (in-process single-flight, Redis lock).
//! - [`pages`]: the HTML pages people see when a sign-in cannot finish.
//!
//! A session's claims are the ID token's (without `scp`/`scope`, which grant nothing there) merged with the
//! verified access token's ([`merge_claims`]): the same semantics as [`Principal::from_session`], kept as one
//! map so the session stays small. Its principal is then [`Principal::from_claims`] of that map.

mod endpoints;
mod pages;
mod refresh;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{CookieHeader, External, LocalResponse, Outcome, Request, SessionHeaders};
use crate::config::{ClientAuth, Config, HostConfig, LoginMode, SessionConfig};
use crate::identity::{AuthMethod, Principal};
use crate::oidc::codeflow::{CodeFlow, Endpoints};
use crate::oidc::{KeyStore, Verifier};
use crate::session::{
    kept_claims, merge_claims, request_kind, unix_now, CookieMap, CookieSettings, KeyRing, SessionData, SessionStore,
    SingleFlight, StoreError,
};

/// What a request's session cookie amounted to.
#[derive(Debug, Default)]
pub struct SessionAuth {
    /// The caller, when the session is valid (shared: the same session seen again reuses it).
    pub principal: Option<Arc<Principal>>,
    /// `Set-Cookie` values for the response: a slid or refreshed session, or removals of a bad cookie.
    pub set_cookies: Vec<String>,
    /// The session's access token, on a host with `forward_access_token` (elsewhere `None`).
    pub access_token: Option<String>,
    /// Key of the assertion cache: changes whenever the session's tokens change.
    pub cache_key: Option<[u8; 32]>,
    /// The session's identity headers per host, kept with its view.
    pub headers: Option<Arc<SessionHeaders>>,
    /// The `Cookie` header to send upstream, decided from the cookies read for the session (what
    /// [`Browser::upstream_cookie`] answers, without reading the header again).
    pub upstream_cookie: CookieHeader,
}

/// The sidecar's own endpoints under `session.paths`.
#[derive(Debug, Clone, Copy)]
enum EndpointKind {
    Login,
    Callback,
    Logout,
    Userinfo,
    FrontchannelLogout,
}

/// A session as [`Browser::load_session`] found it, after refresh and sliding.
struct Loaded {
    auth: SessionAuth,
    data: Option<Arc<SessionData>>,
}

/// What an opened session means for the flow, made once per opened session and kept on it
/// ([`crate::session::Derived`]): the store hands out the same shared session while its cookie (or Redis value) is
/// unchanged, so a session's claims are turned into a principal once, not on every request.
struct View {
    principal: Arc<Principal>,
    cache_key: [u8; 32],
    headers: Arc<SessionHeaders>,
}

/// The longest ID token kept in a cookie-store session for logout's `id_token_hint`: a larger one (Entra, many
/// groups) would cost more cookie than it is worth; logout then sends `client_id` instead, which providers accept.
const MAX_ID_TOKEN_HINT_IN_COOKIE: usize = 2048;

/// How long a finished refresh answers later requests that still carry the old refresh token.
const REFRESH_GRACE: Duration = Duration::from_secs(30);

/// Browser sign-in state shared by all requests.
pub struct Browser {
    keys: Arc<KeyStore>,
    verifier: Verifier,
    /// `Err(why)` when the configuration has no client credentials: an API-only sidecar (Bearer tokens) needs
    /// none, and then browser sign-in answers 503 with the reason instead of stopping the sidecar at start.
    codeflow: Result<CodeFlow, String>,
    /// Sent with logout so the provider can check `post_logout_redirect_uri` without an ID token hint.
    client_id: String,
    store: SessionStore,
    cfg: SessionConfig,
    /// Claims kept in a session besides the defaults: those route claim rules name.
    keep: Vec<String>,
    /// Some host forwards the session's access token or shows it in `userinfo`, so the session must keep it.
    keep_access_token: bool,
    refreshes: SingleFlight<[u8; 32], SessionData, refresh::Failure>,
}

impl Browser {
    pub fn new(config: &Config, keys: Arc<KeyStore>) -> anyhow::Result<Browser> {
        let p = &config.provider;
        let no_credentials = matches!(p.client_auth, ClientAuth::ClientSecretBasic | ClientAuth::ClientSecretPost)
            && p.client_secret.is_none();
        let codeflow = match CodeFlow::new(p) {
            Ok(flow) => Ok(flow),
            // Only a missing secret disables sign-in; a credential that is present but unusable stops the start.
            Err(e) if no_credentials => {
                let why = format!("browser sign-in is disabled: {e}");
                if config.hosts.iter().any(|h| h.login == LoginMode::Redirect) {
                    tracing::info!("{why} (set provider.client_secret or a private key to enable it)");
                }
                Err(why)
            }
            Err(e) => return Err(e.into()),
        };
        let ring = KeyRing::from_config(&config.session)?;
        if ring.is_ephemeral() && codeflow.is_ok() {
            tracing::warn!(
                "session.keys is not set: sessions are sealed with a key generated at start, so they end when the \
                 sidecar restarts and are not accepted by other tasks; set session.keys (or keys_file) in production"
            );
        }
        let store = SessionStore::new(&config.session, Arc::new(ring))?;
        let verifier = Verifier::new(&config.provider, keys.clone());
        Ok(Browser {
            keys,
            verifier,
            codeflow,
            store,
            cfg: config.session.clone(),
            keep: kept_claims(&config.hosts),
            keep_access_token: config.hosts.iter().any(|h| h.forward_access_token || h.userinfo_access_token),
            client_id: config.provider.client_id.clone(),
            refreshes: SingleFlight::new(REFRESH_GRACE),
        })
    }

    /// Which of the sidecar's own endpoints `path` is, if any: the one place their paths are compared.
    fn endpoint_kind(&self, path: &str) -> Option<EndpointKind> {
        let p = &self.cfg.paths;
        [
            (&p.login, EndpointKind::Login),
            (&p.callback, EndpointKind::Callback),
            (&p.logout, EndpointKind::Logout),
            (&p.userinfo, EndpointKind::Userinfo),
            (&p.frontchannel_logout, EndpointKind::FrontchannelLogout),
        ]
        .into_iter()
        .find_map(|(p, kind)| (path == p.as_str()).then_some(kind))
    }

    /// Whether `path` is one of the sidecar's own endpoints (answered by [`Browser::endpoint`]).
    pub fn is_endpoint(&self, path: &str) -> bool {
        self.endpoint_kind(path).is_some()
    }

    /// Answers the sidecar's own endpoints (`login`, `callback`, `logout`, `userinfo`, front-channel logout) when
    /// `path` is one of them; `None` lets the request go on to routing.
    pub async fn endpoint(
        &self,
        req: &Request<'_>,
        host: &HostConfig,
        path: &str,
        external: &External,
    ) -> Option<Outcome> {
        let answer = match self.endpoint_kind(path)? {
            EndpointKind::Login => self.login(req, host, external),
            EndpointKind::Callback => self.callback(req, host, external).await,
            EndpointKind::Logout => self.logout(req, host, external).await,
            EndpointKind::Userinfo => self.userinfo(req, host, external).await,
            EndpointKind::FrontchannelLogout => self.frontchannel_logout(req, host, external).await,
        };
        Some(Outcome::Respond(answer))
    }

    /// Authenticates by session cookie. `Err` is a ready answer (503 when the session store is unreachable) that
    /// the caller returns on protected routes.
    pub async fn authenticate(
        &self,
        req: &Request<'_>,
        host: &HostConfig,
        external: &External,
    ) -> Result<SessionAuth, LocalResponse> {
        let cookies = CookieMap::from_headers(req.headers);
        let mut auth = self.load_session_from(&cookies, host, external).await?.auth;
        auth.upstream_cookie = self.upstream_cookie_of(&cookies, req.headers);
        Ok(auth)
    }

    /// The answer to an unauthenticated request on a protected route.
    pub fn challenge(
        &self,
        req: &Request<'_>,
        host: &HostConfig,
        _external: &External,
        path_and_query: &str,
    ) -> LocalResponse {
        let login = login_url(&self.cfg.paths.login, path_and_query);
        let mode = if self.codeflow.is_ok() { host.login } else { LoginMode::Deny };
        if wants_redirect(mode, req.method, req.headers) {
            LocalResponse::redirect(&login, "login_redirect")
        } else {
            let login = (mode == LoginMode::Redirect).then_some(login.as_str());
            LocalResponse::unauthenticated(&host.name, login)
        }
    }

    /// Cross-site request forgery guard for session-authenticated requests.
    pub fn csrf_ok(&self, method: &Method, headers: &HeaderMap, host: &HostConfig, external: &External) -> bool {
        // Safe methods pass without the origin being built: most session requests are GETs.
        method.is_safe() || request_kind::csrf_ok(method, headers, &origin(host, external), &host.allowed_origins)
    }

    /// The `Cookie` header to send upstream: the sidecar's own cookies removed.
    pub fn upstream_cookie(&self, headers: &HeaderMap, _external: &External) -> CookieHeader {
        strip_cookies(headers, &[self.store.settings(true), self.store.settings(false)])
    }

    /// [`Browser::upstream_cookie`] from cookies already read: a session request reads its cookie header once. A
    /// part that is no pair is not among the map's names, and is the app's.
    fn upstream_cookie_of(&self, cookies: &CookieMap<'_>, headers: &HeaderMap) -> CookieHeader {
        let jars = [self.store.settings(true), self.store.settings(false)];
        cookie_decision(cookies.names(), !cookies.all_parsed(), headers, &jars)
    }

    // === sessions ===

    /// The request's session: loaded, refreshed when its access token is about to expire, slid when idle long
    /// enough, or ended (cookies cleared) when bad, expired or no longer refreshable.
    ///
    /// Refreshing, saving and ending are boxed: they are the rare paths, and unboxed their futures (HTTP to the
    /// provider, Redis writes) would make the future of every request, which the gateway allocates and copies
    /// per request, several kilobytes larger.
    async fn load_session(
        &self,
        headers: &HeaderMap,
        host: &HostConfig,
        external: &External,
    ) -> Result<Loaded, LocalResponse> {
        self.load_session_from(&CookieMap::from_headers(headers), host, external).await
    }

    /// [`Browser::load_session`] from the request's cookies, already read.
    async fn load_session_from(
        &self,
        cookies: &CookieMap<'_>,
        host: &HostConfig,
        external: &External,
    ) -> Result<Loaded, LocalResponse> {
        let secure = is_secure(host, external);
        if !self.store.has_session_cookie(cookies, secure) {
            return Ok(Loaded { auth: SessionAuth::default(), data: None });
        }
        let now = unix_now();
        let mut data = match self.store.load_at(cookies, secure, now).await {
            Ok(Some(d)) => d,
            Ok(None) => {
                // Tampered, truncated, foreign, expired or unknown to Redis: no session, and the cookie goes.
                tracing::debug!("session cookie did not open or has expired; clearing it");
                return Ok(Loaded { auth: cleared(self.store.clear_cookies(cookies, secure)), data: None });
            }
            Err(e) => return Err(store_unavailable(&e)),
        };
        let mut set_cookies = Vec::new();
        if data.needs_refresh(now, self.cfg.refresh_margin) {
            match Box::pin(self.refresh(&data, now)).await {
                Ok(new) => {
                    data = Arc::new(new);
                    Arc::make_mut(&mut data).touch(now);
                    match Box::pin(self.store.save(&data, cookies, secure)).await {
                        Ok(sets) => set_cookies = sets.into_iter().map(|c| c.header).collect(),
                        Err(e) => {
                            tracing::warn!(error = %e, "refreshed session could not be stored; ending it");
                            return Ok(Box::pin(self.end(&data, cookies, secure)).await);
                        }
                    }
                }
                Err(refresh::Failure::Transient(why)) if access_unexpired(&data, now) => {
                    // The provider hiccupped but the token still works: keep going, the next request retries.
                    tracing::warn!(reason = %why, "access token refresh failed; keeping the session until the token expires");
                }
                Err(failure) => {
                    tracing::info!(reason = %failure, "access token refresh failed; ending the session");
                    return Ok(Box::pin(self.end(&data, cookies, secure)).await);
                }
            }
        } else if data.needs_touch(now, &self.cfg) {
            Arc::make_mut(&mut data).touch(now);
            match Box::pin(self.store.save(&data, cookies, secure)).await {
                Ok(sets) => set_cookies = sets.into_iter().map(|c| c.header).collect(),
                // Not fatal: the session is valid, only its inactivity clock did not move this time.
                Err(e) => tracing::warn!(error = %e, "could not slide the session's inactivity timeout"),
            }
        }
        let view = self.view(&data, now);
        let auth = SessionAuth {
            principal: Some(view.principal.clone()),
            set_cookies,
            // Copied only for a host that forwards it: elsewhere nothing reads it.
            access_token: data.access_token_valid(now).filter(|_| host.forward_access_token).map(str::to_owned),
            cache_key: Some(view.cache_key),
            headers: Some(view.headers.clone()),
            // Decided by `authenticate`, which read the cookies.
            upstream_cookie: CookieHeader::Keep,
        };
        Ok(Loaded { auth, data: Some(data) })
    }

    /// The principal and assertion cache key of an opened session, made once per shared session. Its expiry does
    /// not move while the session is unchanged: `now + remaining` is the session's end.
    fn view(&self, data: &SessionData, now: u64) -> Arc<View> {
        data.derived.get_or_make(|| View {
            principal: Arc::new(session_principal(data, now, &self.cfg)),
            cache_key: cache_key(data),
            headers: Arc::default(),
        })
    }

    /// Ends a session that can no longer be used: its Redis entry deleted (best effort) and its cookies cleared.
    async fn end(&self, data: &SessionData, cookies: &CookieMap<'_>, secure: bool) -> Loaded {
        let sets = match self.store.delete(Some(data), cookies, secure).await {
            Ok(sets) => sets,
            Err(e) => {
                tracing::warn!(error = %e, "could not delete the ended session from the store");
                self.store.clear_cookies(cookies, secure)
            }
        };
        Loaded { auth: cleared(sets), data: None }
    }

    /// Whether a session keeps this ID token (for logout's `id_token_hint`): always in Redis, in cookies only when
    /// small.
    fn keeps_id_token(&self, id_token: &str) -> bool {
        self.store.redis().is_some() || id_token.len() <= MAX_ID_TOKEN_HINT_IN_COOKIE
    }

    /// The code flow, or 503 naming why sign-in is disabled.
    fn codeflow(&self) -> Result<&CodeFlow, LocalResponse> {
        self.codeflow.as_ref().map_err(|why| LocalResponse::unavailable(why.clone()))
    }

    fn endpoints(&self) -> Result<Endpoints, LocalResponse> {
        let Some(m) = self.keys.metadata() else {
            let why = self.keys.unavailable_reason().unwrap_or_else(|| "not loaded yet".into());
            return Err(LocalResponse::unavailable(format!(
                "sign-in is not available yet: the provider's discovery document is not loaded ({why})"
            )));
        };
        Endpoints::parse(&m.authorization_endpoint, &m.token_endpoint, m.end_session_endpoint.as_deref()).map_err(|e| {
            LocalResponse::unavailable(format!("sign-in is not available: the provider's endpoints are unusable ({e})"))
        })
    }
}

/// The session's access token has not expired yet (or its expiry is unknown).
fn access_unexpired(data: &SessionData, now: u64) -> bool {
    data.access_expires_at.is_none_or(|exp| now < exp)
}

/// An anonymous result that removes cookies.
fn cleared(sets: Vec<crate::session::SetCookie>) -> SessionAuth {
    SessionAuth { set_cookies: sets.into_iter().map(|c| c.header).collect(), ..SessionAuth::default() }
}

fn store_unavailable(e: &StoreError) -> LocalResponse {
    tracing::warn!(error = %e, "session store unavailable; answering 503 on a session route");
    match e {
        StoreError::Unavailable(_) => LocalResponse::unavailable(e.to_string()),
        other => LocalResponse::unavailable(format!("session store unavailable: {other}")),
    }
}

/// The principal of a session: its merged claims, valid until the session ends.
fn session_principal(data: &SessionData, now: u64, cfg: &SessionConfig) -> Principal {
    let until = now.saturating_add(data.remaining(now, cfg));
    Principal::from_claims(&data.claims, i64::try_from(until).unwrap_or(i64::MAX), AuthMethod::Session)
}

/// Changes when the session's tokens change, so a refreshed session gets a fresh assertion.
fn cache_key(data: &SessionData) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"session|");
    h.update(data.sid.as_bytes());
    h.update(b"|");
    match (data.access_expires_at, &data.access_token) {
        (Some(exp), _) => h.update(exp.to_be_bytes()),
        (None, Some(t)) => h.update(t.as_bytes()),
        (None, None) => {}
    }
    h.finalize().into()
}

/// The claims a new session keeps: the ID token's (without `scp`/`scope`, which an ID token cannot grant) with the
/// verified access token's merged in (see [`merge_claims`]).
fn session_claims(id: &Map<String, Value>, access: Option<&Map<String, Value>>, keep: &[String]) -> Map<String, Value> {
    let mut id = id.clone();
    id.remove("scp");
    id.remove("scope");
    let mut merged = merge_claims(&id, access, keep);
    // The access token's roles first, as `Principal::from_session` orders them (what the API would see as Bearer).
    if let Some(Value::Array(from_access)) = access.and_then(|a| a.get("roles")) {
        let mut roles = from_access.clone();
        if let Some(Value::Array(all)) = merged.get("roles") {
            roles.extend(all.iter().filter(|r| !from_access.contains(r)).cloned());
        }
        merged.insert("roles".into(), Value::Array(roles));
    }
    merged
}

/// The external scheme is https: from `external_url` when configured, else from the (trusted) forwarded headers.
fn is_secure(host: &HostConfig, external: &External) -> bool {
    match &host.external_url {
        Some(u) => u.scheme() == "https",
        None => external.scheme == "https",
    }
}

/// The origin the browser sees: `external_url`'s when configured, else from the (trusted) forwarded headers.
fn origin(host: &HostConfig, external: &External) -> String {
    match &host.external_url {
        Some(u) => u.origin().ascii_serialization(),
        None => external.origin(),
    }
}

/// The redirect URI registered at the provider: the external origin plus the callback path.
fn redirect_uri(host: &HostConfig, external: &External, callback_path: &str) -> String {
    format!("{}{}", origin(host, external), callback_path)
}

/// `{login}?rd={path and query, percent-encoded}`.
fn login_url(login_path: &str, return_to: &str) -> String {
    let rd: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    format!("{login_path}?rd={rd}")
}

/// A top-level navigation on a host that sends people to sign in.
fn wants_redirect(mode: LoginMode, method: &Method, headers: &HeaderMap) -> bool {
    mode == LoginMode::Redirect && request_kind::is_navigation(method, headers)
}

/// The request's `Cookie` header(s) without the cookies any of `jars` owns: `Keep` when none is theirs.
fn strip_cookies(headers: &HeaderMap, jars: &[&CookieSettings]) -> CookieHeader {
    let names = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(crate::session::cookies::header_text)
        .flat_map(|value| crate::session::cookies::parts(value).map(crate::session::cookies::part_name));
    cookie_decision(names, false, headers, jars)
}

/// What the app gets of a request whose cookies are named `names`, with `unnamed` parts besides when some part is no
/// pair (one pass, nothing collected): the header as it came when none is ours, none when all are, else the header
/// rebuilt without ours.
fn cookie_decision<'a>(
    names: impl Iterator<Item = &'a str>,
    unnamed: bool,
    headers: &HeaderMap,
    jars: &[&CookieSettings],
) -> CookieHeader {
    let own = |name: &str| jars.iter().any(|j| j.is_own_cookie(name));
    let (mut any_own, mut all_own) = (false, !unnamed);
    for name in names {
        if own(name) {
            any_own = true;
        } else {
            all_own = false;
        }
    }
    if !any_own {
        return CookieHeader::Keep;
    }
    // The common case, a browser that holds only our cookies for this site: drop the header, build nothing.
    if all_own {
        return CookieHeader::Drop;
    }
    let values: Vec<&str> =
        headers.get_all(http::header::COOKIE).iter().filter_map(crate::session::cookies::header_text).collect();
    let mut rest = Some(values.join("; "));
    for jar in jars {
        rest = rest.and_then(|r| jar.strip_own_cookies(&r));
    }
    rest.map_or(CookieHeader::Drop, CookieHeader::Replace)
}

/// One query parameter, percent-decoded (first occurrence).
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[cfg(test)]
pub(crate) mod tests;
