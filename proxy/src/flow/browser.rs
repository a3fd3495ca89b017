//! Browser sessions inside the request flow: the `/oauth2/*` endpoints, authenticating a request by its session
//! cookie (with refresh), and what an unauthenticated request is told (a redirect to login for a top-level
//! navigation, 401 JSON for everything else).
//!
//! Contract with `flow/mod.rs` (the lead's): `Browser::new` is built once at start; `endpoint` is asked first for
//! every request on a known host; `authenticate` is asked when no Bearer credential came; `challenge` answers an
//! unauthenticated request on a protected route; `csrf_ok` guards session-authenticated unsafe methods.

use std::sync::Arc;

use http::{HeaderMap, Method};

use super::{External, LocalResponse, Outcome, Request};
use crate::config::{Config, HostConfig};
use crate::identity::Principal;
use crate::oidc::KeyStore;

/// What a request's session cookie amounted to.
#[derive(Debug, Default)]
pub struct SessionAuth {
    /// The caller, when the session is valid.
    pub principal: Option<Principal>,
    /// `Set-Cookie` values for the response: a slid or refreshed session, or removals of a bad cookie.
    pub set_cookies: Vec<String>,
    /// The session's access token (for `forward_access_token`).
    pub access_token: Option<String>,
    /// Key of the assertion cache: changes whenever the session's tokens change.
    pub cache_key: Option<[u8; 32]>,
}

/// Browser sign-in state shared by all requests.
pub struct Browser {
    _keys: Arc<KeyStore>,
}

impl Browser {
    pub fn new(_config: &Config, keys: Arc<KeyStore>) -> anyhow::Result<Browser> {
        Ok(Browser { _keys: keys })
    }

    /// Answers the sidecar's own endpoints (`login`, `callback`, `logout`, `userinfo`, front-channel logout) when
    /// `path` is one of them; `None` lets the request go on to routing.
    pub async fn endpoint(
        &self,
        _req: &Request<'_>,
        _host: &HostConfig,
        _path: &str,
        _external: &External,
    ) -> Option<Outcome> {
        None
    }

    /// Authenticates by session cookie. `Err` is a ready answer (503 when the session store is unreachable) that
    /// the caller returns on protected routes.
    pub async fn authenticate(
        &self,
        _req: &Request<'_>,
        _host: &HostConfig,
        _external: &External,
    ) -> Result<SessionAuth, LocalResponse> {
        Ok(SessionAuth::default())
    }

    /// The answer to an unauthenticated request on a protected route.
    pub fn challenge(
        &self,
        _req: &Request<'_>,
        host: &HostConfig,
        _external: &External,
        _path_and_query: &str,
    ) -> LocalResponse {
        LocalResponse::unauthenticated(&host.name, None)
    }

    /// Cross-site request forgery guard for session-authenticated requests.
    pub fn csrf_ok(&self, _method: &Method, _headers: &HeaderMap, _host: &HostConfig, _external: &External) -> bool {
        true
    }

    /// The `Cookie` header to send upstream: the sidecar's own cookies removed (`None` = drop the header).
    pub fn upstream_cookie(&self, headers: &HeaderMap, _external: &External) -> Option<Option<String>> {
        let _ = headers;
        None
    }
}
