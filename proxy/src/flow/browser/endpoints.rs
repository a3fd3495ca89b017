//! The sidecar's own endpoints: login, callback, logout, userinfo and front-channel logout.
//!
//! None of them ever answers 500 for something a browser or the provider sent: a missing or expired pending login,
//! a provider error, a refused code or ID token all end on an HTML page that says what happened and links to a
//! fresh sign-in.

use http::Method;
use serde_json::{json, Value};

use crate::config::{HostConfig, LoginMode, SessionConfig};
use crate::identity::Principal;
use crate::oidc::codeflow::{callback_error_page, end_session_url, CodeFlowError};
use crate::session::pending::{clear_all_pending, clear_pending, open_pending};
use crate::session::{return_path_or_root, unix_now, CookieMap, PendingLogin, SessionData, SetCookie, StoreError};

use super::super::{External, LocalResponse, Request};
use super::{
    is_secure, login_url, origin, pages, query_param, redirect_uri, session_claims, store_unavailable, Browser, Loaded,
};

/// Adds `Set-Cookie` headers to a local answer.
fn with_set_cookies(mut r: LocalResponse, sets: impl IntoIterator<Item = SetCookie>) -> LocalResponse {
    for c in sets {
        r.headers.push(("Set-Cookie".to_string(), c.header));
    }
    r
}

fn method_not_allowed(allow: &str) -> LocalResponse {
    LocalResponse::json_error(405, "method_not_allowed", "invalid_request", format!("this endpoint takes {allow}"))
        .with_header("Allow", allow)
}

/// The JSON `userinfo` answers: who is signed in and until when; no token, unless the host opts in to showing
/// the (still valid) access token.
pub(super) fn userinfo_json(p: &Principal, data: &SessionData, now: u64, cfg: &SessionConfig, access_token: bool) -> Value {
    let mut v = json!({
        "subject": p.subject,
        "name": p.name,
        "email": p.email,
        "roles": p.roles,
        "groups": p.groups,
        "groups_overage": p.groups_overage,
        "scopes": p.scopes,
        "tenant": p.tenant,
        "expires_at": now.saturating_add(data.remaining(now, cfg)),
        "access_token_expires_at": data.access_expires_at,
    });
    if access_token {
        if let (Some(token), Value::Object(map)) = (data.access_token_valid(now), &mut v) {
            map.insert("access_token".into(), Value::String(token.to_string()));
        }
    }
    v
}

impl Browser {
    /// `GET {login}?rd=/path`: a pending-login cookie and a redirect to the provider.
    pub(super) fn login(&self, req: &Request<'_>, host: &HostConfig, external: &External) -> LocalResponse {
        if req.method != Method::GET && req.method != Method::HEAD {
            return method_not_allowed("GET, HEAD");
        }
        let return_to = return_path_or_root(query_param(req.query, "rd").as_deref());
        let (flow, ep) = match self.codeflow().and_then(|f| Ok((f, self.endpoints()?))) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let start = flow.start(&ep, &redirect_uri(host, external, &self.cfg.paths.callback), &[]);
        let now = unix_now();
        let pending = PendingLogin {
            state: start.state,
            nonce: start.nonce,
            pkce_verifier: start.pkce_verifier,
            return_to,
            created_at: now,
        };
        let jar = self.store.settings(is_secure(host, external));
        let sets = pending.seal(&self.store.key_ring(), jar, &CookieMap::from_headers(req.headers), now);
        with_set_cookies(LocalResponse::redirect(&start.url, "login"), sets)
    }

    /// The provider sends the browser back here with `code` and `state` (or `error`).
    pub(super) async fn callback(&self, req: &Request<'_>, host: &HostConfig, external: &External) -> LocalResponse {
        let login = &self.cfg.paths.login;
        let retry_root = login_url(login, "/");
        // response_mode=query puts the answer in the query; form_post in a form body (read by the gateway, capped).
        let params: Option<&str> = if req.method == Method::POST {
            match req.body.map(std::str::from_utf8) {
                Some(Ok(form)) => Some(form),
                _ => {
                    return pages::message(
                        400,
                        "callback_incomplete",
                        "Sign-in could not finish",
                        "The sign-in service posted a form this service could not read. Start a fresh sign-in.",
                        Some(&retry_root),
                    )
                }
            }
        } else if req.method == Method::GET {
            req.query
        } else {
            return method_not_allowed("GET, POST");
        };
        let secure = is_secure(host, external);
        let jar = self.store.settings(secure);
        let cookies = CookieMap::from_headers(req.headers);
        let ring = self.store.key_ring();
        let now = unix_now();
        let state = query_param(params, "state");
        let pending = state.as_deref().and_then(|s| open_pending(&ring, jar, &cookies, s, now));
        // The pending login is spent whatever happens next.
        let clear: Vec<SetCookie> = state.as_deref().and_then(|s| clear_pending(jar, s)).into_iter().collect();
        let retry = pending.as_ref().map_or(retry_root.clone(), |p| login_url(login, &p.return_to));

        if let Some(error) = query_param(params, "error") {
            let description = query_param(params, "error_description");
            let page = callback_error_page(&error, description.as_deref(), &retry);
            tracing::info!(error = %error.chars().take(64).collect::<String>(), "the provider refused the sign-in");
            return with_set_cookies(LocalResponse::html(400, "provider_error", "the provider refused the sign-in", page), clear);
        }
        let Some(code) = query_param(params, "code").filter(|c| !c.is_empty()) else {
            return with_set_cookies(
                pages::message(
                    400,
                    "callback_incomplete",
                    "Sign-in could not finish",
                    "This address is only meant to be reached from the sign-in service, with a code and a state. \
                     Start a fresh sign-in instead.",
                    Some(&retry_root),
                ),
                clear,
            );
        };
        let Some(pending) = pending else {
            return with_set_cookies(pages::login_expired(&retry_root), clear);
        };
        let (flow, ep) = match self.codeflow().and_then(|f| Ok((f, self.endpoints()?))) {
            Ok(x) => x,
            Err(r) => return with_set_cookies(r, clear),
        };
        let redirect = redirect_uri(host, external, &self.cfg.paths.callback);
        let tokens = match flow.exchange(&ep, &code, &redirect, &pending.pkce_verifier).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "code exchange failed");
                let page = match &e {
                    CodeFlowError::Provider { error, .. } => LocalResponse::html(
                        400,
                        "code_refused",
                        e.to_string(),
                        callback_error_page(error, Some(&e.user_message()), &retry),
                    ),
                    _ => pages::message(502, "token_endpoint_failed", "Sign-in could not finish", &e.user_message(), Some(&retry)),
                };
                return with_set_cookies(page, clear);
            }
        };
        let Some(id_token) = tokens.id_token.as_deref() else {
            tracing::warn!("the token endpoint answered without an ID token (is `openid` among the scopes?)");
            return with_set_cookies(
                pages::message(
                    502,
                    "no_id_token",
                    "Sign-in could not finish",
                    "The sign-in service did not say who you are (no ID token). Please contact the administrator.",
                    Some(&retry),
                ),
                clear,
            );
        };
        let id = match self.verifier.verify_id_token(id_token, &pending.nonce).await {
            Ok(v) => v,
            Err(e) if e.is_unavailable() => {
                return with_set_cookies(LocalResponse::unavailable(format!("cannot verify the ID token yet: {}", e.description())), clear)
            }
            Err(e) => {
                let why = e.description();
                tracing::warn!(reason = %why, "ID token refused at the callback");
                return with_set_cookies(
                    pages::message(
                        400,
                        "id_token_refused",
                        "Sign-in could not be verified",
                        &format!("The answer of the sign-in service did not pass verification ({why}). Try again."),
                        Some(&retry),
                    ),
                    clear,
                );
            }
        };
        // The access token may be opaque or meant for another API (Graph): then only the ID token's claims count.
        let access = match tokens.access_token.as_deref() {
            Some(at) => match self.verifier.verify_access_token(at).await {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::debug!(reason = %e.description(), "the session's access token is not one of ours; using the ID token's claims only");
                    None
                }
            },
            None => None,
        };
        let subject = ["oid", "sub"]
            .iter()
            .find_map(|k| id.claims.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
            .unwrap_or_default()
            .to_string();
        let claims = session_claims(&id.claims, access.as_ref().map(|v| &v.claims), &self.keep);
        let mut data = SessionData::new(subject, claims, now, &self.cfg);
        data.access_expires_at = access
            .as_ref()
            .and_then(|v| u64::try_from(v.expires_at).ok())
            .or_else(|| tokens.expires_in.map(|s| now.saturating_add(s)));
        data.access_token = if self.keep_access_token { tokens.access_token.clone() } else { None };
        data.refresh_token = tokens.refresh_token.clone();
        if ep.end_session.is_some() && self.keeps_id_token(id_token) {
            data.id_token = Some(id_token.to_string());
        }

        // A login replaces whatever session this browser had (its Redis entry too).
        if self.store.redis().is_some() && self.store.has_session_cookie(&cookies, secure) {
            if let Err(e) = self.store.delete(None, &cookies, secure).await {
                tracing::warn!(error = %e, "previous session could not be deleted at login");
            }
        }
        let sets = match self.store.save(&data, &cookies, secure).await {
            Ok(sets) => sets,
            Err(StoreError::SessionTooLarge { bytes, limit }) => {
                let groups = data.claims.get("groups").and_then(serde_json::Value::as_array).map_or(0, Vec::len);
                tracing::warn!(
                    bytes,
                    limit,
                    groups,
                    "a session is too large for cookies: set session.store = \"redis\" (or keep fewer claims)"
                );
                return with_set_cookies(pages::session_too_large(bytes, limit), clear);
            }
            Err(e @ StoreError::Unavailable(_)) => return with_set_cookies(store_unavailable(&e), clear),
            Err(e) => {
                tracing::error!(error = %e, "session could not be stored");
                return with_set_cookies(
                    pages::message(500, "session_error", "Sign-in could not finish", "The session could not be stored.", Some(&retry)),
                    clear,
                );
            }
        };
        tracing::info!(subject = %data.subject, "signed in");
        let mut r = LocalResponse::redirect(&pending.return_to, "login_complete");
        r = with_set_cookies(r, sets);
        with_set_cookies(r, clear)
    }

    /// Ends the session here (and its Redis entry), then at the provider when it has an `end_session_endpoint`.
    pub(super) async fn logout(&self, req: &Request<'_>, host: &HostConfig, external: &External) -> LocalResponse {
        // Not HEAD: link checkers and prefetchers use it, and must not sign anyone out.
        if req.method != Method::GET && req.method != Method::POST {
            return method_not_allowed("GET, POST");
        }
        if req.method == Method::POST && !self.csrf_ok(req.method, req.headers, host, external) {
            return LocalResponse::json_error(403, "csrf", "csrf_refused", "a cross-site logout was refused");
        }
        let secure = is_secure(host, external);
        let jar = self.store.settings(secure);
        let cookies = CookieMap::from_headers(req.headers);
        let data = match self.store.load(&cookies, secure).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "logout: session store unavailable");
                None
            }
        };
        let mut sets = match self.store.delete(data.as_deref(), &cookies, secure).await {
            Ok(sets) => sets,
            Err(e) => {
                // The server-side session survives: say so instead of pretending, but drop the cookie anyway.
                let r = store_unavailable(&e);
                return with_set_cookies(r, self.store.clear_cookies(&cookies, secure));
            }
        };
        sets.extend(clear_all_pending(jar, &cookies));
        let back = format!("{}/", origin(host, external));
        let hint = data.as_ref().and_then(|d| d.id_token.as_deref());
        let target = self
            .endpoints()
            .ok()
            .and_then(|ep| end_session_url(&ep, hint, &back, &self.client_id))
            .unwrap_or_else(|| "/".to_string());
        if let Some(d) = &data {
            tracing::info!(subject = %d.subject, "signed out");
        }
        with_set_cookies(LocalResponse::redirect(&target, "logout"), sets)
    }

    /// Who is signed in, for the SPA. 401 JSON without a session; the access token only where the host allows it.
    pub(super) async fn userinfo(&self, req: &Request<'_>, host: &HostConfig, external: &External) -> LocalResponse {
        if req.method != Method::GET && req.method != Method::HEAD {
            return method_not_allowed("GET, HEAD");
        }
        let Loaded { auth, data } = match self.load_session(req.headers, host, external).await {
            Ok(l) => l,
            Err(r) => return r,
        };
        let mut r = match (&auth.principal, &data) {
            (Some(p), Some(d)) => {
                LocalResponse::ok_json(userinfo_json(p, d, unix_now(), &self.cfg, host.userinfo_access_token), "userinfo")
            }
            _ => {
                let login = login_url(&self.cfg.paths.login, "/");
                LocalResponse::unauthenticated(&host.name, (host.login == LoginMode::Redirect).then_some(login.as_str()))
            }
        };
        for c in auth.set_cookies {
            r.headers.push(("Set-Cookie".to_string(), c));
        }
        r
    }

    /// The provider loads this in an iframe when the user signs out there: end this browser's session, and with
    /// Redis every session of the provider session named by `sid`.
    pub(super) async fn frontchannel_logout(
        &self,
        req: &Request<'_>,
        host: &HostConfig,
        external: &External,
    ) -> LocalResponse {
        if req.method != Method::GET && req.method != Method::HEAD {
            return method_not_allowed("GET, HEAD");
        }
        let secure = is_secure(host, external);
        let cookies = CookieMap::from_headers(req.headers);
        let mut sets = Vec::new();
        if self.store.has_session_cookie(&cookies, secure) {
            let data = self.store.load(&cookies, secure).await.ok().flatten();
            match self.store.delete(data.as_deref(), &cookies, secure).await {
                Ok(s) => sets = s,
                Err(e) => return with_set_cookies(store_unavailable(&e), self.store.clear_cookies(&cookies, secure)),
            }
        }
        // `iss` (when sent) must be our provider's, or `sid` names someone else's session.
        let iss_ok = query_param(req.query, "iss").is_none_or(|iss| self.verifier.issuers().contains(&iss));
        if let Some(sid) = query_param(req.query, "sid").filter(|s| iss_ok && !s.is_empty()) {
            match self.store.delete_by_provider_sid(&sid).await {
                Ok(n) => tracing::info!(sessions = n, "front-channel logout"),
                Err(e) => return with_set_cookies(store_unavailable(&e), sets),
            }
        }
        with_set_cookies(pages::signed_out(), sets)
    }
}
