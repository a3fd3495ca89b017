//! Policy: which host and route a request belongs to, and whether a caller's claims satisfy it.
//!
//! Three pure steps, in the order the gateway runs them:
//! 1. [`path::normalize`] turns the raw request path into the one spelling that is both matched and forwarded;
//! 2. [`Router`] picks the host from `Host` and the first route (in file order) for the normalized path and method;
//!    no route means deny;
//! 3. [`evaluate`] decides the route's [`Access`](crate::config::Access) for the caller: allow, 401 or 403 with a
//!    reason.

pub mod access;
pub mod path;
pub mod router;

pub use access::{evaluate, Decision, Denial};
pub use path::PathError;
pub use router::Router;

#[cfg(test)]
pub(crate) mod test_util {
    //! Fixtures for policy tests: hosts and routes with everything but the part under test defaulted.
    use crate::config::{Access, Backend, ClaimHeaders, HostConfig, LoginMode, PathMatch, RouteConfig};

    /// A host whose routes get `line` = their 1-based position, so tests can say which route matched.
    pub fn host(name: &str, mut routes: Vec<RouteConfig>) -> HostConfig {
        for (i, r) in routes.iter_mut().enumerate() {
            r.line = i + 1;
        }
        HostConfig {
            name: name.to_string(),
            backend: Backend::Upstream { addr: ([127, 0, 0, 1], 8000).into(), tls: false, sni: String::new() },
            routes,
            login: LoginMode::Deny,
            forward_authorization: true,
            forward_access_token: false,
            userinfo_access_token: false,
            claim_headers: ClaimHeaders::None,
            allowed_origins: Vec::new(),
            security_headers: None,
            external_url: None,
            line: 1,
        }
    }

    pub fn route(path: PathMatch, methods: Option<Vec<http::Method>>) -> RouteConfig {
        RouteConfig { path, methods, access: Access::Authenticated, line: 0 }
    }
}
