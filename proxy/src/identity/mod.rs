//! Identity: who the caller is, as the policy and the upstream see it, whichever way they authenticated.
//!
//! A [`Principal`] is built from verified claims (a Bearer access token, or a session's access-token and ID-token
//! claims together), so one route policy and one set of upstream headers serve both paths.

use serde_json::{Map, Value};

pub mod assertion;
pub mod headers;

pub use assertion::{AssertionError, AssertionSigner};

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

// === impl Principal ===

impl Principal {
    /// A principal from one verified token's claims (a Bearer access token).
    ///
    /// `subject` is `oid` when present, else `sub`, else empty (the verifier requires `sub`, so empty means a
    /// token that should not have passed). Unknown and malformed claims are ignored, never fatal: providers add
    /// claims at any time.
    pub fn from_claims(claims: &Map<String, Value>, expires_at: i64, method: AuthMethod) -> Principal {
        Principal {
            subject: string_claim(claims, "oid").or_else(|| string_claim(claims, "sub")).unwrap_or_default(),
            name: string_claim(claims, "name"),
            email: ["preferred_username", "email", "upn", "unique_name"].iter().find_map(|k| string_claim(claims, k)),
            roles: list_claim(claims.get("roles")),
            groups: list_claim(claims.get("groups")),
            scopes: scopes_of(claims),
            tenant: string_claim(claims, "tid"),
            groups_overage: has_groups_overage(claims),
            claims: claims.clone(),
            expires_at,
            method,
        }
    }

    /// A browser session's principal: who the user is comes from the ID token; what they may do from the access
    /// token (its `scp` and `roles`) plus the ID token's `roles` (Entra puts app roles in the ID token of the app
    /// that signed the user in, and in the access token of the API).
    ///
    /// `claims` holds the ID token's claims with the access token's added where the ID token has none; for `scp`,
    /// `scope` and `roles` the access token wins (`roles` becomes the union, like [`Principal::roles`]).
    /// `access_claims` is `None` when the access token is opaque or not meant for us (e.g. a Graph token).
    pub fn from_session(
        id_claims: &Map<String, Value>,
        access_claims: Option<&Map<String, Value>>,
        expires_at: i64,
    ) -> Principal {
        let mut p = Principal::from_claims(id_claims, expires_at, AuthMethod::Session);
        // Scopes describe an access token; an ID token's `scp`/`scope` (rare) grants nothing.
        p.scopes.clear();
        p.claims.remove("scp");
        p.claims.remove("scope");
        let Some(access) = access_claims else {
            return p;
        };
        let from_access = Principal::from_claims(access, expires_at, AuthMethod::Session);

        let mut roles = from_access.roles;
        push_unique(&mut roles, p.roles);
        p.roles = roles;
        p.scopes = from_access.scopes;
        push_unique(&mut p.groups, from_access.groups);
        p.groups_overage |= from_access.groups_overage;
        if p.tenant.is_none() {
            p.tenant = from_access.tenant;
        }

        for (k, v) in access {
            match k.as_str() {
                "scp" | "scope" => {
                    p.claims.insert(k.clone(), v.clone());
                }
                "roles" => {}
                _ => {
                    p.claims.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        if !p.roles.is_empty() {
            p.claims.insert("roles".into(), Value::Array(p.roles.iter().cloned().map(Value::String).collect()));
        }
        p
    }

    /// True for an application calling on its own behalf (client credentials), with no user behind it.
    ///
    /// Entra's `idtyp` optional claim says so reliably (`app` or `user`). Without it, a token with no delegated
    /// scopes and no user name or e-mail of any kind is taken as app-only; this guess only shapes error messages
    /// and the `idtyp` of the assertion, never an authorization decision.
    pub fn is_app_only(&self) -> bool {
        match self.claims.get("idtyp").and_then(Value::as_str) {
            Some(idtyp) => idtyp == "app",
            None => {
                self.scopes.is_empty()
                    && !self.claims.contains_key("scp")
                    && !self.claims.contains_key("scope")
                    && self.name.is_none()
                    && self.email.is_none()
            }
        }
    }

    /// Seconds until the credentials expire at `now` (negative when already expired).
    pub fn expires_in(&self, now: i64) -> i64 {
        self.expires_at - now
    }
}

/// A non-empty string claim.
fn string_claim(claims: &Map<String, Value>, key: &str) -> Option<String> {
    match claims.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// An array of strings (other elements skipped), or a single space-separated string.
fn list_claim(value: Option<&Value>) -> Vec<String> {
    let mut out = Vec::new();
    match value {
        Some(Value::Array(items)) => {
            for s in items.iter().filter_map(Value::as_str).filter(|s| !s.is_empty()) {
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_string());
                }
            }
        }
        Some(Value::String(s)) => {
            for item in s.split_ascii_whitespace() {
                if !out.iter().any(|o| o == item) {
                    out.push(item.to_string());
                }
            }
        }
        _ => {}
    }
    out
}

/// `scp` (Entra: space-separated string; some providers: an array), else `scope` (RFC 9068 / RFC 8693).
fn scopes_of(claims: &Map<String, Value>) -> Vec<String> {
    match claims.get("scp") {
        Some(v @ (Value::String(_) | Value::Array(_))) => list_claim(Some(v)),
        _ => list_claim(claims.get("scope")),
    }
}

fn has_groups_overage(claims: &Map<String, Value>) -> bool {
    let named = claims.get("_claim_names").and_then(Value::as_object).is_some_and(|names| names.contains_key("groups"));
    let hasgroups = match claims.get("hasgroups") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    named || hasgroups
}

fn push_unique(into: &mut Vec<String>, items: Vec<String>) {
    for item in items {
        if !into.contains(&item) {
            into.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn entra_delegated_token() {
        let claims = map(json!({
            "aud": "api://app", "iss": "https://login.microsoftonline.com/t1/v2.0", "oid": "oid-1", "sub": "pairwise",
            "tid": "t1", "name": "Ada Lovelace", "preferred_username": "ada@example.com", "email": "other@example.com",
            "scp": "user.read  files.write user.read", "roles": ["Admin", 3, "", "Admin"], "groups": ["g1"],
            "idtyp": "user"
        }));
        let p = Principal::from_claims(&claims, 1000, AuthMethod::Bearer);
        assert_eq!(p.subject, "oid-1");
        assert_eq!(p.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(p.email.as_deref(), Some("ada@example.com"));
        assert_eq!(p.scopes, vec!["user.read", "files.write"]);
        assert_eq!(p.roles, vec!["Admin"]);
        assert_eq!(p.groups, vec!["g1"]);
        assert_eq!(p.tenant.as_deref(), Some("t1"));
        assert!(!p.groups_overage);
        assert!(!p.is_app_only());
        assert_eq!(p.expires_at, 1000);
        assert_eq!(p.method, AuthMethod::Bearer);
        assert_eq!(p.claims, claims);
        assert_eq!(p.expires_in(400), 600);
    }

    #[test]
    fn fallbacks() {
        let p = Principal::from_claims(&map(json!({ "sub": "s", "upn": "u@x" })), 0, AuthMethod::Bearer);
        assert_eq!(p.subject, "s");
        assert_eq!(p.email.as_deref(), Some("u@x"));
        let p = Principal::from_claims(
            &map(json!({ "sub": "s", "unique_name": "live.com#u@x", "scope": "a b" })),
            0,
            AuthMethod::Bearer,
        );
        assert_eq!(p.email.as_deref(), Some("live.com#u@x"));
        assert_eq!(p.scopes, vec!["a", "b"]);
        let p = Principal::from_claims(
            &map(json!({ "sub": "s", "scope": ["a", "b"], "email": "e@x" })),
            0,
            AuthMethod::Bearer,
        );
        assert_eq!(p.scopes, vec!["a", "b"]);
        assert_eq!(p.email.as_deref(), Some("e@x"));
        let p = Principal::from_claims(&map(json!({ "oid": "", "sub": "s", "scp": ["x"] })), 0, AuthMethod::Bearer);
        assert_eq!(p.subject, "s");
        assert_eq!(p.scopes, vec!["x"]);
        let p = Principal::from_claims(&map(json!({})), 0, AuthMethod::Bearer);
        assert_eq!(p.subject, "");
        assert!(p.scopes.is_empty() && p.roles.is_empty());
    }

    #[test]
    fn overage_markers() {
        let p = Principal::from_claims(
            &map(json!({ "sub": "s", "_claim_names": { "groups": "src1" } })),
            0,
            AuthMethod::Bearer,
        );
        assert!(p.groups_overage);
        let p = Principal::from_claims(&map(json!({ "sub": "s", "hasgroups": true })), 0, AuthMethod::Bearer);
        assert!(p.groups_overage);
        let p = Principal::from_claims(
            &map(json!({ "sub": "s", "hasgroups": false, "_claim_names": {} })),
            0,
            AuthMethod::Bearer,
        );
        assert!(!p.groups_overage);
    }

    #[test]
    fn app_only() {
        let app = Principal::from_claims(
            &map(json!({ "oid": "sp", "sub": "sp", "idtyp": "app", "roles": ["Jobs.Run"] })),
            0,
            AuthMethod::Bearer,
        );
        assert!(app.is_app_only());
        let guessed = Principal::from_claims(
            &map(json!({ "oid": "sp", "sub": "sp", "roles": ["Jobs.Run"] })),
            0,
            AuthMethod::Bearer,
        );
        assert!(guessed.is_app_only());
        let user = Principal::from_claims(&map(json!({ "sub": "s", "idtyp": "user" })), 0, AuthMethod::Bearer);
        assert!(!user.is_app_only());
        let named = Principal::from_claims(&map(json!({ "sub": "s", "name": "Ada" })), 0, AuthMethod::Bearer);
        assert!(!named.is_app_only());
    }

    #[test]
    fn session_merges_id_and_access_tokens() {
        let id = map(json!({
            "iss": "https://idp", "aud": "spa-client", "oid": "oid-1", "sub": "pairwise-spa", "tid": "t1",
            "name": "Ada", "preferred_username": "ada@example.com", "roles": ["Viewer"], "nonce": "n1"
        }));
        let access = map(json!({
            "iss": "https://idp", "aud": "api://app", "oid": "oid-1", "sub": "pairwise-api", "tid": "t1",
            "scp": "user.read", "roles": ["Admin", "Viewer"], "groups": ["g1"], "azp": "spa-client"
        }));
        let p = Principal::from_session(&id, Some(&access), 500);
        assert_eq!(p.method, AuthMethod::Session);
        assert_eq!(p.subject, "oid-1");
        assert_eq!(p.name.as_deref(), Some("Ada"));
        assert_eq!(p.scopes, vec!["user.read"]);
        assert_eq!(p.roles, vec!["Admin", "Viewer"]);
        assert_eq!(p.groups, vec!["g1"]);
        assert_eq!(p.expires_at, 500);
        // Identity claims from the ID token, authorization claims from the access token.
        assert_eq!(p.claims["aud"], "spa-client");
        assert_eq!(p.claims["sub"], "pairwise-spa");
        assert_eq!(p.claims["scp"], "user.read");
        assert_eq!(p.claims["roles"], json!(["Admin", "Viewer"]));
        assert_eq!(p.claims["azp"], "spa-client");
        assert_eq!(p.claims["nonce"], "n1");
    }

    #[test]
    fn session_without_access_claims_has_no_scopes() {
        let id = map(json!({ "sub": "s", "roles": ["Viewer"], "scp": "should.not.count" }));
        let p = Principal::from_session(&id, None, 10);
        assert_eq!(p.roles, vec!["Viewer"]);
        assert!(p.scopes.is_empty());
        assert!(!p.claims.contains_key("scp"));
        assert_eq!(p.method, AuthMethod::Session);
        // An access token without scopes removes any the ID token carried.
        let p = Principal::from_session(&id, Some(&map(json!({ "sub": "s", "roles": ["Admin"] }))), 10);
        assert!(p.scopes.is_empty());
        assert!(!p.claims.contains_key("scp"));
        assert_eq!(p.roles, vec!["Admin", "Viewer"]);
    }
}
