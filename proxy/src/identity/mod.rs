//! Identity: who the caller is, as the policy and the upstream see it, whichever way they authenticated.
//!
//! A [`Principal`] is built from verified claims (a Bearer access token, or a session's access-token and ID-token
//! claims together), so one route policy and one set of upstream headers serve both paths.

use serde_json::{Map, Value};

pub mod headers;
pub mod assertion;

pub use assertion::{AssertionSigner, AssertionError};

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    Bearer,
    Session,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Bearer => "bearer",
            AuthMethod::Session => "session",
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// `oid` when present (stable across apps in a tenant), else `sub`.
    pub subject: String,
    pub name: Option<String>,
    /// `preferred_username`, else `email`, else `upn`: display only, never for authorization.
    pub email: Option<String>,
    /// `roles` (array).
    pub roles: Vec<String>,
    /// `groups` (array of object ids). Empty when unknown because of overage: see `groups_overage`.
    pub groups: Vec<String>,
    /// `scp` (space-separated) or `scope`.
    pub scopes: Vec<String>,
    /// `tid`.
    pub tenant: Option<String>,
    /// Entra left the groups out (`_claim_names.groups` or `hasgroups`): group rules cannot be decided.
    pub groups_overage: bool,
    /// All claims, for claim rules and mod_auth_openidc-style headers.
    pub claims: Map<String, Value>,
    /// Unix seconds after which this principal's credentials are no longer valid.
    pub expires_at: i64,
    pub method: AuthMethod,
}
