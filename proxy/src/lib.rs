//! oidc-sidecar: OpenID Connect login and token checks in front of any web app.
//!
//! The core is pure and knows nothing of Pingora: [`config`] (TOML to a validated `Config`), [`oidc`] (discovery,
//! JWKS, token verification, the code flow), [`session`] (sealed cookies and the Redis store), [`policy`] (host and
//! path to route, claims to a decision), [`identity`] (what the upstream is told, and the signed assertion),
//! [`assets`] (the SPA's static files) and [`flow`] (one request, top to bottom: route, authenticate, authorize,
//! decide). [`gateway`] is the only module that speaks Pingora: it turns a request into a call of [`flow`] and writes
//! the answer. See `docs/architecture.md`.

pub mod config;
pub mod identity;
pub mod oidc;
pub mod policy;
pub mod session;
pub mod assets;
pub mod flow;
pub mod metrics;
pub mod telemetry;
pub mod gateway;
pub mod explain;
pub mod migrate;
