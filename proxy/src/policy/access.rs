//! Access decisions: does this caller satisfy this route's [`Access`]?
//!
//! Pure and synchronous. The reasons are written for the person reading a 403 body or a log line: they name what the
//! route requires and why the caller falls short, but never echo the caller's own claims back.

use serde_json::{Map, Value};

use crate::config::{Access, ClaimRule, ClaimTest, Requirements};
use crate::identity::Principal;

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The route needs a caller and there is none: 401 (or a login redirect for a browser).
    Unauthenticated,
    /// The caller is known but lacks what the route requires: 403.
    Forbidden(Denial),
}

/// Why a known caller was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// What the route requires, e.g. `scope user.read` or `one of roles Admin, Owner`.
    pub required: String,
    /// One sentence for the 403 body and the log.
    pub reason: String,
    /// The `scope="..."` value for `WWW-Authenticate: Bearer error="insufficient_scope"` when the missing piece is
    /// a scope (space-separated; for an any-of rule, the alternatives).
    pub scope_hint: Option<String>,
}

/// Decides `access` for `principal` (`None` = no credentials were presented or they were not valid).
///
/// `Public` allows everyone; `Authenticated` needs a principal; `Require` needs a principal that satisfies every
/// non-empty list of [`Requirements`]. The first unmet requirement, in the order scopes, roles, groups, claims,
/// is the one reported.
pub fn evaluate(access: &Access, principal: Option<&Principal>) -> Decision {
    match (access, principal) {
        (Access::Public, _) => Decision::Allow,
        (_, None) => Decision::Unauthenticated,
        (Access::Authenticated, Some(_)) => Decision::Allow,
        (Access::Require(req), Some(p)) => match check(req, p) {
            None => Decision::Allow,
            Some(denial) => Decision::Forbidden(denial),
        },
    }
}

fn check(req: &Requirements, p: &Principal) -> Option<Denial> {
    // Scopes: exact items of `scp` only. A role that happens to be named like a scope never counts.
    let missing: Vec<&String> = req.scopes_all.iter().filter(|s| !p.scopes.contains(s)).collect();
    if !missing.is_empty() {
        let required = if req.scopes_all.len() == 1 {
            format!("scope {}", req.scopes_all[0])
        } else {
            format!("scopes {}", join_and(&req.scopes_all))
        };
        let lacking =
            if missing.len() == 1 { format!("scope {}", missing[0]) } else { format!("scopes {}", join_and(&missing)) };
        return Some(Denial {
            reason: format!("the token lacks {lacking}{}", scope_note(p, &missing)),
            required,
            scope_hint: Some(join(&req.scopes_all, " ")),
        });
    }
    if !req.scopes_any.is_empty() && !req.scopes_any.iter().any(|s| p.scopes.contains(s)) {
        let required = one_of("scope", "scopes", &req.scopes_any);
        let named: Vec<&String> = req.scopes_any.iter().collect();
        return Some(Denial {
            reason: format!("the token carries none of the accepted scopes ({required}){}", scope_note(p, &named)),
            required,
            scope_hint: Some(join(&req.scopes_any, " ")),
        });
    }

    let missing: Vec<&String> = req.roles_all.iter().filter(|r| !p.roles.contains(r)).collect();
    if !missing.is_empty() {
        let required = if req.roles_all.len() == 1 {
            format!("role {}", req.roles_all[0])
        } else {
            format!("roles {}", join_and(&req.roles_all))
        };
        let lacking = if missing.len() == 1 {
            format!("app role {}", missing[0])
        } else {
            format!("app roles {}", join_and(&missing))
        };
        return Some(Denial { reason: format!("the caller lacks {lacking}"), required, scope_hint: None });
    }
    if !req.roles_any.is_empty() && !req.roles_any.iter().any(|r| p.roles.contains(r)) {
        let required = one_of("role", "roles", &req.roles_any);
        return Some(Denial {
            reason: format!("the caller has none of the accepted app roles ({required})"),
            required,
            scope_hint: None,
        });
    }

    if !req.groups_any.is_empty() && !req.groups_any.iter().any(|g| p.groups.contains(g)) {
        let required = one_of("group", "groups", &req.groups_any);
        let reason = if p.groups_overage {
            "the identity provider left the groups out of the token because the user is in too many groups \
             (Entra ID group overage), and the sidecar does not look them up in Microsoft Graph; \
             use app roles for this route instead of groups"
                .to_string()
        } else {
            format!("the caller is in none of the accepted groups ({required})")
        };
        return Some(Denial { required, reason, scope_hint: None });
    }

    for rule in &req.claims {
        if let Some(denial) = check_claim(rule, &p.claims) {
            return Some(denial);
        }
    }
    None
}

/// Extra words when a scope rule fails for a reason the caller would not guess.
fn scope_note(p: &Principal, wanted: &[&String]) -> &'static str {
    if p.scopes.is_empty() && p.is_app_only() {
        "; it is an app-only token (client credentials), which carries application roles, not delegated scopes"
    } else if wanted.iter().any(|s| p.roles.contains(s)) {
        "; an app role with the same name does not count as a scope"
    } else {
        ""
    }
}

fn check_claim(rule: &ClaimRule, claims: &Map<String, Value>) -> Option<Denial> {
    let (required, expected) = match &rule.test {
        ClaimTest::Equals(v) => (format!("claim {} equal to \"{v}\"", rule.claim), v),
        ClaimTest::Contains(v) => (format!("claim {} containing \"{v}\"", rule.claim), v),
    };
    let reason = match lookup(claims, &rule.claim) {
        None | Some(Value::Null) => format!("the token has no {} claim", rule.claim),
        Some(value) => {
            let ok = match &rule.test {
                ClaimTest::Equals(_) => claim_equals(value, expected),
                ClaimTest::Contains(_) => claim_contains(value, expected),
            };
            if ok {
                return None;
            }
            match &rule.test {
                ClaimTest::Equals(_) => format!("the {} claim is not \"{expected}\"", rule.claim),
                ClaimTest::Contains(_) => format!("the {} claim does not contain \"{expected}\"", rule.claim),
            }
        }
    };
    Some(Denial { required, reason, scope_hint: None })
}

/// A claim by name; when no claim has that exact name, dots walk into nested objects (`realm_access.roles`).
/// The exact name is tried first because claim names may themselves contain dots (URLs as names).
pub fn lookup<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// Scalar rendered as text (`"x"`, `42`, `true`), compared exactly. An array equals the value when one of its
/// elements does, as mod_auth_openidc's `Require claim` does. Objects and null never match.
fn claim_equals(value: &Value, expected: &str) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|v| scalar_equals(v, expected)),
        v => scalar_equals(v, expected),
    }
}

/// An array holding the value, or a string holding it as one space-separated item (like `scp`). Never a
/// substring: `user.read` does not contain `user`.
fn claim_contains(value: &Value, expected: &str) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|v| scalar_equals(v, expected)),
        Value::String(s) => s.split_ascii_whitespace().any(|item| item == expected),
        v => scalar_equals(v, expected),
    }
}

fn scalar_equals(value: &Value, expected: &str) -> bool {
    match value {
        Value::String(s) => s == expected,
        Value::Bool(b) => expected == if *b { "true" } else { "false" },
        Value::Number(n) => n.to_string() == expected,
        _ => false,
    }
}

fn join<S: AsRef<str>>(items: &[S], sep: &str) -> String {
    items.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(sep)
}

/// `a`, `a and b`, `a, b and c`.
fn join_and<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [init @ .., last] => format!("{} and {}", join(init, ", "), last.as_ref()),
    }
}

/// `role Admin` or `one of roles Admin, Owner`.
fn one_of(singular: &str, plural: &str, items: &[String]) -> String {
    if items.len() == 1 {
        format!("{singular} {}", items[0])
    } else {
        format!("one of {plural} {}", join(items, ", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AuthMethod;
    use serde_json::json;

    fn principal(claims: Value) -> Principal {
        let Value::Object(map) = claims else { panic!("claims must be an object") };
        Principal::from_claims(&map, 2_000_000_000, AuthMethod::Bearer)
    }

    fn user() -> Principal {
        principal(json!({
            "oid": "u1", "sub": "s1", "tid": "t1", "name": "Ada", "preferred_username": "ada@example.com",
            "scp": "user.read files.write", "roles": ["Reader", "admin.all"], "groups": ["g1", "g2"],
            "idtyp": "user", "ver": "2.0", "age": 42, "verified": true, "acct": 0,
            "realm_access": { "roles": ["editor"] }, "https://example.com/tier": "gold",
            "org": { "id": 7 }
        }))
    }

    fn app() -> Principal {
        principal(json!({ "oid": "sp1", "sub": "sp1", "tid": "t1", "idtyp": "app", "roles": ["Jobs.Run"] }))
    }

    fn require(f: impl FnOnce(&mut Requirements)) -> Access {
        let mut r = Requirements::default();
        f(&mut r);
        Access::Require(r)
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn denial(d: Decision) -> Denial {
        match d {
            Decision::Forbidden(d) => d,
            other => panic!("expected Forbidden, got {other:?}"),
        }
    }

    #[test]
    fn public_and_authenticated() {
        assert_eq!(evaluate(&Access::Public, None), Decision::Allow);
        assert_eq!(evaluate(&Access::Public, Some(&user())), Decision::Allow);
        assert_eq!(evaluate(&Access::Authenticated, None), Decision::Unauthenticated);
        assert_eq!(evaluate(&Access::Authenticated, Some(&app())), Decision::Allow);
        assert_eq!(evaluate(&require(|_| {}), None), Decision::Unauthenticated);
        assert_eq!(evaluate(&require(|_| {}), Some(&user())), Decision::Allow);
    }

    #[test]
    fn scopes_all_needs_each_exact_item() {
        let access = require(|r| r.scopes_all = strings(&["user.read", "files.write"]));
        assert_eq!(evaluate(&access, Some(&user())), Decision::Allow);
        let access = require(|r| r.scopes_all = strings(&["user.read", "mail.send"]));
        let d = denial(evaluate(&access, Some(&user())));
        assert_eq!(d.required, "scopes user.read and mail.send");
        assert_eq!(d.reason, "the token lacks scope mail.send");
        assert_eq!(d.scope_hint.as_deref(), Some("user.read mail.send"));
        // No substring matches.
        let access = require(|r| r.scopes_all = strings(&["user"]));
        assert_eq!(denial(evaluate(&access, Some(&user()))).required, "scope user");
    }

    #[test]
    fn roles_never_satisfy_scopes() {
        let access = require(|r| r.scopes_all = strings(&["admin.all"]));
        let d = denial(evaluate(&access, Some(&user())));
        assert!(d.reason.contains("app role with the same name does not count"), "{}", d.reason);
        let access = require(|r| r.scopes_any = strings(&["Jobs.Run"]));
        let d = denial(evaluate(&access, Some(&app())));
        assert_eq!(d.required, "scope Jobs.Run");
        assert!(d.reason.contains("app-only token"), "{}", d.reason);
        assert_eq!(d.scope_hint.as_deref(), Some("Jobs.Run"));
    }

    #[test]
    fn scopes_any() {
        let access = require(|r| r.scopes_any = strings(&["mail.send", "files.write"]));
        assert_eq!(evaluate(&access, Some(&user())), Decision::Allow);
        let access = require(|r| r.scopes_any = strings(&["mail.send", "mail.read"]));
        let d = denial(evaluate(&access, Some(&user())));
        assert_eq!(d.required, "one of scopes mail.send, mail.read");
        assert_eq!(d.scope_hint.as_deref(), Some("mail.send mail.read"));
    }

    #[test]
    fn roles_any_and_all() {
        let access = require(|r| r.roles_any = strings(&["Admin", "Owner"]));
        let d = denial(evaluate(&access, Some(&user())));
        assert_eq!(d.required, "one of roles Admin, Owner");
        assert_eq!(d.scope_hint, None);
        assert_eq!(evaluate(&require(|r| r.roles_any = strings(&["Jobs.Run"])), Some(&app())), Decision::Allow);

        let access = require(|r| r.roles_all = strings(&["Reader", "admin.all"]));
        assert_eq!(evaluate(&access, Some(&user())), Decision::Allow);
        let access = require(|r| r.roles_all = strings(&["Reader", "Writer"]));
        let d = denial(evaluate(&access, Some(&user())));
        assert_eq!(d.required, "roles Reader and Writer");
        assert_eq!(d.reason, "the caller lacks app role Writer");
        // Scopes never satisfy roles either.
        let access = require(|r| r.roles_any = strings(&["user.read"]));
        assert!(matches!(evaluate(&access, Some(&user())), Decision::Forbidden(_)));
    }

    #[test]
    fn every_non_empty_list_must_hold() {
        let access = require(|r| {
            r.scopes_all = strings(&["user.read"]);
            r.roles_any = strings(&["Reader"]);
            r.groups_any = strings(&["g9"]);
        });
        let d = denial(evaluate(&access, Some(&user())));
        assert_eq!(d.required, "group g9");
    }

    #[test]
    fn groups_and_overage() {
        assert_eq!(evaluate(&require(|r| r.groups_any = strings(&["g0", "g2"])), Some(&user())), Decision::Allow);
        let d = denial(evaluate(&require(|r| r.groups_any = strings(&["g0", "g3"])), Some(&user())));
        assert_eq!(d.required, "one of groups g0, g3");
        assert!(!d.reason.contains("overage"));

        let overage = principal(json!({ "oid": "u", "scp": "user.read", "_claim_names": { "groups": "src1" },
            "_claim_sources": { "src1": { "endpoint": "https://graph.windows.net/x" } } }));
        assert!(overage.groups_overage);
        let d = denial(evaluate(&require(|r| r.groups_any = strings(&["g1"])), Some(&overage)));
        assert!(d.reason.contains("too many groups"), "{}", d.reason);
        assert!(d.reason.contains("overage") && d.reason.contains("app roles"), "{}", d.reason);

        // Overage with the group found anyway (e.g. in the other token of a session) still allows.
        let mut found = overage.clone();
        found.groups = strings(&["g1"]);
        assert_eq!(evaluate(&require(|r| r.groups_any = strings(&["g1"])), Some(&found)), Decision::Allow);
    }

    #[test]
    fn claim_rules() {
        let p = user();
        let ok = |claim: &str, test: ClaimTest| {
            let access = require(|r| r.claims = vec![ClaimRule { claim: claim.into(), test }]);
            evaluate(&access, Some(&p)) == Decision::Allow
        };
        assert!(ok("tid", ClaimTest::Equals("t1".into())));
        assert!(!ok("tid", ClaimTest::Equals("t2".into())));
        assert!(ok("age", ClaimTest::Equals("42".into())));
        assert!(ok("verified", ClaimTest::Equals("true".into())));
        assert!(!ok("verified", ClaimTest::Equals("false".into())));
        assert!(ok("roles", ClaimTest::Equals("Reader".into())));
        assert!(ok("roles", ClaimTest::Contains("Reader".into())));
        assert!(!ok("roles", ClaimTest::Contains("Read".into())));
        assert!(ok("scp", ClaimTest::Contains("files.write".into())));
        assert!(!ok("scp", ClaimTest::Contains("files".into())));
        assert!(!ok("scp", ClaimTest::Equals("files.write".into())));
        assert!(ok("realm_access.roles", ClaimTest::Contains("editor".into())));
        assert!(ok("org.id", ClaimTest::Equals("7".into())));
        assert!(!ok("org", ClaimTest::Equals("7".into())));
        assert!(ok("https://example.com/tier", ClaimTest::Equals("gold".into())));
        assert!(!ok("missing.claim", ClaimTest::Equals("x".into())));

        let access =
            require(|r| r.claims = vec![ClaimRule { claim: "tid".into(), test: ClaimTest::Equals("t2".into()) }]);
        let d = denial(evaluate(&access, Some(&p)));
        assert_eq!(d.required, "claim tid equal to \"t2\"");
        assert_eq!(d.reason, "the tid claim is not \"t2\"");
        let access =
            require(|r| r.claims = vec![ClaimRule { claim: "dept".into(), test: ClaimTest::Contains("x".into()) }]);
        assert_eq!(denial(evaluate(&access, Some(&p))).reason, "the token has no dept claim");
    }

    #[test]
    fn join_helpers() {
        assert_eq!(join_and(&["a"]), "a");
        assert_eq!(join_and(&["a", "b"]), "a and b");
        assert_eq!(join_and(&["a", "b", "c"]), "a, b and c");
    }
}
