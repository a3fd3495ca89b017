//! `oidc-sidecar explain`: what the sidecar would decide for one token and request, check by check, and why.
//!
//! The tool a developer runs when Postman says 401. It runs every check on its own, not stopping at the first
//! failure, so one run shows everything that is wrong ("expired *and* wrong audience"). It fetches the provider's
//! keys once if it can; when it cannot (offline laptop, provider unreachable) it says so, skips the signature, and
//! still judges everything else. The final verdict comes from the same [`Verifier`] and [`policy`] code the gateway
//! runs, so explain and the gateway cannot disagree.

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::{Access, Config, PathMatch};
use crate::identity::{AuthMethod, Principal};
use crate::oidc::verify::{
    check_audience, check_header, check_issuer, check_subject, check_tenant, human_duration, numeric_date, show,
    split_compact, unix_now, unverified_claims, TokenError,
};
use crate::oidc::{KeyLookup, KeyStore, Verifier};
use crate::policy::{self, Decision, Router};

/// How long explain waits for discovery + JWKS before judging without them.
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Pass,
    Fail,
    /// Not checked (and why, in the detail).
    Skip,
    /// Context, not a check.
    Info,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub mark: Mark,
    pub name: String,
    pub detail: String,
}

/// The outcome: each check, then the status the sidecar would answer and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainReport {
    pub checks: Vec<Check>,
    /// 200, 400, 401, 403, 404 or 503.
    pub status: u16,
    pub verdict: String,
    /// False when the verdict assumes something explain could not check (the signature, when keys were not
    /// fetched).
    pub certain: bool,
}

impl ExplainReport {
    fn push(&mut self, mark: Mark, name: impl Into<String>, detail: impl Into<String>) {
        self.checks.push(Check { mark, name: name.into(), detail: detail.into() });
    }

    fn pass(&mut self, name: &str, detail: impl Into<String>) {
        self.push(Mark::Pass, name, detail);
    }

    fn fail(&mut self, name: &str, detail: impl Into<String>) {
        self.push(Mark::Fail, name, detail);
    }

    fn info(&mut self, name: &str, detail: impl Into<String>) {
        self.push(Mark::Info, name, detail);
    }

    fn skip(&mut self, name: &str, detail: impl Into<String>) {
        self.push(Mark::Skip, name, detail);
    }

    /// The first check with this name.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

impl fmt::Display for ExplainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            let mark = match c.mark {
                Mark::Pass => "✓",
                Mark::Fail => "✗",
                Mark::Skip => "–",
                Mark::Info => "·",
            };
            writeln!(f, "{mark} {}: {}", c.name, c.detail)?;
        }
        writeln!(f)?;
        let hedge = if self.certain { "" } else { " (assuming the signature is valid)" };
        write!(f, "verdict: {}{hedge}: {}", self.status, self.verdict)
    }
}

/// What the token part concluded.
enum TokenVerdict {
    /// No token was given.
    Absent,
    /// The gateway would refuse it with this error.
    Invalid(TokenError),
    /// Verified (or, when `certain` is false, everything but the signature passed).
    Valid { claims: Map<String, Value>, expires_at: i64, certain: bool },
}

/// Explains the decision for `token` (empty = none; a leading `Bearer ` is ignored) on `method host path`.
pub async fn explain(cfg: &Config, token: &str, host: &str, path: &str, method: &str) -> ExplainReport {
    let mut r = ExplainReport { checks: Vec::new(), status: 0, verdict: String::new(), certain: true };
    let token = strip_bearer(token.trim());
    let verdict = if token.is_empty() {
        r.info("token", "none given");
        TokenVerdict::Absent
    } else {
        explain_token(cfg, token, &mut r).await
    };
    explain_route(cfg, host, path, method, verdict, &mut r);
    r
}

fn strip_bearer(token: &str) -> &str {
    match token.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => token,
    }
}

async fn explain_token(cfg: &Config, token: &str, r: &mut ExplainReport) -> TokenVerdict {
    let p = &cfg.provider;
    let parts = match split_compact(token) {
        Ok(parts) => parts,
        Err(e) => {
            r.fail("format", e.description());
            return TokenVerdict::Invalid(e);
        }
    };
    r.pass("format", format!("compact JWS, {} bytes", token.len()));

    // Header: refusals here end the token part, as they end verification.
    let header = match check_header(&parts, &p.algorithms) {
        Ok(h) => {
            let kid = h.kid.as_deref().map(show).unwrap_or_else(|| "none".into());
            let typ = h.typ.as_deref().map(|t| format!(", typ {}", show(t))).unwrap_or_default();
            r.pass("header", format!("alg {}, kid {kid}{typ}", h.alg_name));
            h
        }
        Err(e) => {
            let e = match e {
                TokenError::GraphToken { .. } => TokenError::GraphToken { accepted: p.audiences.join(", ") },
                other => other,
            };
            r.fail("header", e.description());
            return TokenVerdict::Invalid(e);
        }
    };
    let claims = match unverified_claims(&parts) {
        Ok(c) => c,
        Err(e) => {
            r.fail("claims", e.description());
            return TokenVerdict::Invalid(e);
        }
    };
    describe_claims(&claims, r);

    // Keys: fetched once, with a bound; without them the signature is skipped and said so.
    let store = match KeyStore::new(p) {
        Ok(store) => match tokio::time::timeout(FETCH_TIMEOUT, store.refresh()).await {
            Ok(Ok(_)) => {
                let n = store.keys().map(|k| k.len()).unwrap_or(0);
                let from = store.metadata().map(|m| m.jwks_uri.clone()).unwrap_or_default();
                r.pass("keys", format!("{n} signing keys fetched from {from}"));
                Some(store)
            }
            Ok(Err(e)) => {
                r.skip("keys", format!("keys not fetched: {e}; signature not checked"));
                None
            }
            Err(_) => {
                r.skip(
                    "keys",
                    format!("keys not fetched: no answer within {} s; signature not checked", FETCH_TIMEOUT.as_secs()),
                );
                None
            }
        },
        Err(e) => {
            r.skip("keys", format!("keys not fetched: {e}; signature not checked"));
            None
        }
    };

    let kid_shown = header.kid.as_deref().map(show).unwrap_or_else(|| "(no kid)".into());
    if let Some(set) = store.as_ref().and_then(|s| s.keys()) {
        match set.select(header.kid.as_deref()) {
            KeyLookup::Found(entry) => {
                r.pass("key id", format!("{kid_shown} found ({} key)", entry.family_name()));
                if !entry.fits(header.alg) {
                    r.fail(
                        "key type",
                        format!(
                            "key {kid_shown} is an {} key and cannot verify {}",
                            entry.family_name(),
                            header.alg_name
                        ),
                    );
                } else {
                    match jsonwebtoken::crypto::verify(
                        parts.signature,
                        parts.signing_input.as_bytes(),
                        &entry.key,
                        header.alg,
                    ) {
                        Ok(true) => r.pass("signature", format!("{} with key {kid_shown}", header.alg_name)),
                        Ok(false) => r.fail("signature", format!("does not verify with key {kid_shown}")),
                        Err(e) => r.fail("signature", format!("cannot be checked with key {kid_shown}: {e}")),
                    }
                }
            }
            KeyLookup::UnknownKid => {
                let published = set.kids().join(", ");
                r.fail("key id", format!("unknown key id {kid_shown} (the provider publishes: {published})"));
                r.skip("signature", "no key to check it with");
            }
            KeyLookup::NoKid(n) => {
                r.fail("key id", format!("token has no kid and the provider publishes {n} keys"));
                r.skip("signature", "no key to check it with");
            }
        }
    } else {
        r.skip("key id", format!("{kid_shown}: not looked up (no keys)"));
        r.skip("signature", "not checked (no keys)");
    }

    // Claims, each on its own.
    let mut issuers = vec![p.issuer.clone()];
    issuers.extend(p.extra_issuers.iter().cloned());
    match check_issuer(&claims, &issuers) {
        Ok(()) => r.pass("issuer", show(claims.get("iss").and_then(Value::as_str).unwrap_or_default())),
        Err(e) => r.fail("issuer", e.description()),
    }
    match check_audience(&claims, &p.audiences) {
        Ok(()) => r.pass("audience", format!("{} is accepted", show_value(claims.get("aud")))),
        Err(e) => r.fail("audience", e.description()),
    }
    explain_times(&claims, p.clock_skew.as_secs() as i64, r);
    match (check_tenant(&claims, p.required_tenant.as_deref()), &p.required_tenant) {
        (Ok(()), Some(t)) => r.pass("tenant", format!("tid {t}")),
        (Ok(()), None) => r.info("tenant", format!("tid {} (no tenant required)", show_value(claims.get("tid")))),
        (Err(e), _) => r.fail("tenant", e.description()),
    }
    if let Err(e) = check_subject(&claims) {
        r.fail("subject", e.description());
    }

    // The verdict on the token: the gateway's own verifier when keys are here, our checks otherwise.
    match store {
        Some(store) => {
            let verifier = Verifier::new(p, store);
            match verifier.verify_access_token_uncached(token).await {
                Ok(t) => TokenVerdict::Valid { claims: t.claims, expires_at: t.expires_at, certain: true },
                Err(e) => TokenVerdict::Invalid(e),
            }
        }
        None => {
            let failed = r.checks.iter().any(|c| c.mark == Mark::Fail);
            if failed {
                // Reproduce the verifier's reason from the claim checks (header ones returned earlier).
                let now = unix_now();
                let skew = p.clock_skew.as_secs() as i64;
                let e = crate::oidc::verify::check_times(&claims, now, skew, false)
                    .err()
                    .or_else(|| check_issuer(&claims, &issuers).err())
                    .or_else(|| check_audience(&claims, &p.audiences).err())
                    .or_else(|| check_tenant(&claims, p.required_tenant.as_deref()).err())
                    .or_else(|| check_subject(&claims).err())
                    .unwrap_or_else(|| TokenError::Malformed("see the failed checks above".into()));
                TokenVerdict::Invalid(e)
            } else {
                let expires_at = numeric_date(&claims, "exp").ok().flatten().unwrap_or(0);
                TokenVerdict::Valid { claims, expires_at, certain: false }
            }
        }
    }
}

fn show_value(v: Option<&Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(Value::String(s)) => show(s),
        Some(Value::Array(a)) if a.is_empty() => "[] (empty)".into(),
        Some(Value::Array(a)) => a.iter().map(|x| show_value(Some(x))).collect::<Vec<_>>().join(", "),
        Some(other) => show(&other.to_string()),
    }
}

fn describe_claims(claims: &Map<String, Value>, r: &mut ExplainReport) {
    let who = ["oid", "sub"]
        .iter()
        .find_map(|k| claims.get(*k).and_then(Value::as_str).map(|v| format!("{k} {}", show(v))))
        .unwrap_or_else(|| "no oid or sub".into());
    let kind = match claims.get("idtyp").and_then(Value::as_str) {
        Some("app") => ", app-only (idtyp app)",
        Some("user") => ", user (idtyp user)",
        _ if claims.contains_key("scp") => ", delegated (has scp)",
        _ => "",
    };
    let ver = claims.get("ver").and_then(Value::as_str).map(|v| format!(", Entra v{}", show(v))).unwrap_or_default();
    r.info("subject", format!("{who}{kind}{ver}"));
}

fn explain_times(claims: &Map<String, Value>, skew: i64, r: &mut ExplainReport) {
    let now = unix_now();
    let at = |t: i64| {
        std::time::UNIX_EPOCH
            .checked_add(Duration::from_secs(t.max(0) as u64))
            .map(|st| humantime::format_rfc3339_seconds(st).to_string())
            .unwrap_or_else(|| t.to_string())
    };
    match numeric_date(claims, "exp") {
        Ok(Some(exp)) if now > exp + skew => r.fail(
            "expiry",
            format!("token expired {} ago (at {}; clock skew allowed: {skew} s)", human_duration(now - exp), at(exp)),
        ),
        Ok(Some(exp)) if now > exp => r.pass(
            "expiry",
            format!("expired {} ago but within the {skew} s clock skew (at {})", human_duration(now - exp), at(exp)),
        ),
        Ok(Some(exp)) => r.pass("expiry", format!("expires in {} (at {})", human_duration(exp - now), at(exp))),
        Ok(None) => r.fail("expiry", "token has no exp claim"),
        Err(e) => r.fail("expiry", e.description()),
    }
    match numeric_date(claims, "nbf") {
        Ok(Some(nbf)) if nbf > now + skew => r.fail(
            "not before",
            format!("token is not valid for another {} (nbf {})", human_duration(nbf - now), at(nbf)),
        ),
        Ok(Some(nbf)) if nbf > now => {
            r.pass("not before", format!("in {} but within the clock skew", human_duration(nbf - now)))
        }
        Ok(Some(nbf)) => r.pass("not before", format!("valid since {} ago", human_duration(now - nbf))),
        Ok(None) => r.info("not before", "no nbf claim"),
        Err(e) => r.fail("not before", e.description()),
    }
    match numeric_date(claims, "iat") {
        Ok(Some(iat)) if iat > now + skew => r.fail(
            "issued at",
            format!(
                "token was issued {} in the future (iat {}): check this machine's clock",
                human_duration(iat - now),
                at(iat)
            ),
        ),
        Ok(Some(iat)) => r.pass("issued at", format!("{} ago", human_duration(now - iat))),
        Ok(None) => r.info("issued at", "no iat claim"),
        Err(e) => r.fail("issued at", e.description()),
    }
}

fn explain_route(cfg: &Config, host: &str, raw_path: &str, method: &str, token: TokenVerdict, r: &mut ExplainReport) {
    let raw_path = raw_path.split('?').next().unwrap_or_default();
    if raw_path == cfg.server.health_path {
        r.info("route", format!("{raw_path} is the health path, answered by the sidecar itself on every host"));
        return finish(r, 200, "health check answered by the sidecar", true);
    }
    let router = Router::new(&cfg.hosts);
    let Some(host_idx) = router.select_host(host) else {
        let names: Vec<&str> = cfg.hosts.iter().map(|h| h.name.as_str()).collect();
        r.fail("host", format!("no configured host matches {} (configured: {})", show(host), names.join(", ")));
        return finish(r, 404, &format!("no host is configured for {}", show(host)), true);
    };
    let host_cfg = router.host(host_idx);
    r.pass("host", format!("{} (line {})", host_cfg.name, host_cfg.line));
    let path = match policy::path::normalize(raw_path) {
        Ok(p) => p,
        Err(e) => {
            r.fail("path", e.to_string());
            return finish(r, 400, &format!("refused path: {e}"), true);
        }
    };
    if path != raw_path {
        r.info("path", format!("{} is matched as {path}", show(raw_path)));
    }
    let Ok(method) = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
        r.fail("method", format!("{} is not an HTTP method", show(method)));
        return finish(r, 400, "invalid method", true);
    };
    let Some(route) = router.route(host_idx, &path, &method) else {
        r.fail("route", format!("no route matches {method} {path}: denied (fail closed)"));
        return finish(r, 403, &format!("no route is configured for {path}"), true);
    };
    let matcher = match &route.path {
        PathMatch::Prefix(p) => format!("prefix {p}"),
        PathMatch::Exact(p) => format!("exact {p}"),
    };
    let methods = route
        .methods
        .as_ref()
        .map(|m| format!(" {}", m.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(",")))
        .unwrap_or_default();
    r.pass(
        "route",
        format!("line {}: {matcher}{methods}, requires {}", route.line, crate::config::access_words(&route.access)),
    );

    let public = matches!(route.access, Access::Public);
    let (principal, certain) = match token {
        TokenVerdict::Absent => (None, true),
        TokenVerdict::Invalid(e) if public => {
            r.info("token", format!("ignored on a public route ({})", e.description()));
            (None, true)
        }
        TokenVerdict::Invalid(e) if e.is_unavailable() => {
            return finish(r, 503, &format!("cannot verify tokens yet: {}", e.description()), true);
        }
        TokenVerdict::Invalid(e) => {
            return finish(r, 401, &format!("invalid_token: {}", e.description()), true);
        }
        TokenVerdict::Valid { claims, expires_at, certain } => {
            let p = Principal::from_claims(&claims, expires_at, AuthMethod::Bearer);
            describe_principal(&p, r);
            (Some(p), certain)
        }
    };
    match policy::evaluate(&route.access, principal.as_ref()) {
        Decision::Allow => {
            r.pass("access", "allowed");
            let why = if public { "public route" } else { "the token satisfies the route" };
            finish(r, 200, &format!("{why}: forwarded to the upstream"), certain || public);
        }
        Decision::Unauthenticated => {
            r.fail("access", "the route needs a valid token and none was given");
            finish(r, 401, "no token: send Authorization: Bearer <access token>", true);
        }
        Decision::Forbidden(denial) => {
            r.fail("access", format!("{} (requires {})", denial.reason, denial.required));
            finish(r, 403, &format!("insufficient_scope: {}", denial.reason), certain);
        }
    }
}

fn describe_principal(p: &Principal, r: &mut ExplainReport) {
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.iter().map(|s| show(s)).collect::<Vec<_>>().join(", ")
        }
    };
    let groups = if p.groups_overage {
        "unknown (group overage: Entra left them out of the token)".to_string()
    } else {
        list(&p.groups)
    };
    r.info("token grants", format!("scopes: {}; roles: {}; groups: {groups}", list(&p.scopes), list(&p.roles)));
}

fn finish(r: &mut ExplainReport, status: u16, verdict: &str, certain: bool) {
    r.status = status;
    r.verdict = verdict.to_string();
    r.certain = certain;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Access, PathMatch, Requirements, RouteConfig};
    use crate::oidc::tests::provider_config;
    use oidc_testkit::{TestProvider, TEST_AUDIENCE};
    use serde_json::json;

    fn config(issuer: &str) -> Config {
        let route = |path: PathMatch, access: Access, line: usize| RouteConfig { path, methods: None, access, line };
        let host = crate::policy::test_util::host(
            "api.example.com",
            vec![
                route(PathMatch::Exact("/health".into()), Access::Public, 0),
                route(
                    PathMatch::Prefix("/admin/".into()),
                    Access::Require(Requirements { roles_any: vec!["Admin".into()], ..Default::default() }),
                    0,
                ),
                route(
                    PathMatch::Prefix("/".into()),
                    Access::Require(Requirements { scopes_all: vec!["user.read".into()], ..Default::default() }),
                    0,
                ),
            ],
        );
        let mut cfg = crate::config::load_str(MINIMAL, std::path::Path::new("<test>")).expect("minimal config loads");
        cfg.provider = provider_config(issuer);
        cfg.hosts = vec![host];
        cfg
    }

    const MINIMAL: &str = r#"
[provider]
issuer = "https://login.example.com/t/v2.0"
client_id = "c"
audiences = ["api://x"]

[[hosts]]
name = "api.example.com"
upstream = "http://127.0.0.1:8000"

[[hosts.routes]]
path = "/"
access = "authenticated"
"#;

    fn with(mut claims: Value, edits: Value) -> Value {
        for (k, v) in edits.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    }

    #[tokio::test]
    async fn valid_token_on_a_scope_route_is_200() {
        let p = TestProvider::start().await;
        let cfg = config(&p.issuer());
        let token = p.sign(p.default_claims());
        let r = explain(&cfg, &format!("Bearer {token}"), "api.example.com", "/items", "get").await;
        let text = r.to_string();
        assert_eq!(r.status, 200, "{text}");
        assert!(r.certain);
        assert!(text.contains(&format!("✓ signature: RS256 with key {}", p.current_kid())), "{text}");
        assert!(text.contains("✓ audience: api://oidc-sidecar-test is accepted"), "{text}");
        assert!(text.contains("✓ expiry: expires in 59 min") || text.contains("✓ expiry: expires in 60 min"), "{text}");
        assert!(text.contains("✓ route: line 3: prefix /"), "{text}");
        assert!(text.ends_with("verdict: 200: the token satisfies the route: forwarded to the upstream"), "{text}");
    }

    #[tokio::test]
    async fn reports_every_failed_check_and_the_gateway_reason() {
        let p = TestProvider::start().await;
        let cfg = config(&p.issuer());
        let now = unix_now();
        let token = p.sign(with(p.default_claims(), json!({"aud": "api://wrong", "exp": now - 180})));
        let r = explain(&cfg, &token, "api.example.com", "/items", "GET").await;
        let text = r.to_string();
        assert_eq!(r.status, 401, "{text}");
        assert_eq!(r.check("signature").unwrap().mark, Mark::Pass, "{text}");
        assert_eq!(r.check("audience").unwrap().mark, Mark::Fail);
        assert!(r.check("audience").unwrap().detail.contains("api://wrong"), "{text}");
        assert_eq!(r.check("expiry").unwrap().mark, Mark::Fail);
        assert!(r.check("expiry").unwrap().detail.starts_with("token expired 3 min ago"), "{text}");
        assert!(text.contains("verdict: 401: invalid_token: token expired 3 min ago"), "{text}");
    }

    #[tokio::test]
    async fn missing_role_is_403_naming_the_requirement() {
        let p = TestProvider::start().await;
        let cfg = config(&p.issuer());
        let r = explain(&cfg, &p.sign(p.default_claims()), "api.example.com", "/admin/users", "DELETE").await;
        let text = r.to_string();
        assert_eq!(r.status, 403, "{text}");
        assert!(text.contains("· token grants: scopes: user.read; roles: Reader"), "{text}");
        assert!(r.check("access").unwrap().detail.contains("Admin"), "{text}");
    }

    #[tokio::test]
    async fn provider_unreachable_degrades_gracefully() {
        let p = TestProvider::start().await;
        let cfg = config(&p.issuer());
        let token = p.sign(p.default_claims());
        p.set_down(true);
        let r = explain(&cfg, &token, "api.example.com", "/items", "GET").await;
        let text = r.to_string();
        let keys = r.check("keys").unwrap();
        assert_eq!(keys.mark, Mark::Skip);
        assert!(
            keys.detail.starts_with("keys not fetched:") && keys.detail.ends_with("signature not checked"),
            "{text}"
        );
        assert_eq!(r.check("signature").unwrap().mark, Mark::Skip);
        assert_eq!(r.check("audience").unwrap().mark, Mark::Pass);
        assert_eq!(r.status, 200);
        assert!(!r.certain);
        assert!(text.contains("verdict: 200 (assuming the signature is valid)"), "{text}");

        // And a claim failure is still a certain 401 without keys.
        let bad = p.sign(with(p.default_claims(), json!({"aud": "api://x"})));
        let r = explain(&cfg, &bad, "api.example.com", "/items", "GET").await;
        assert_eq!(r.status, 401);
        assert!(r.verdict.contains("audience api://x is not accepted"), "{}", r.verdict);
    }

    #[tokio::test]
    async fn header_refusals_and_routing_failures() {
        let p = TestProvider::start().await;
        let cfg = config(&p.issuer());
        let r =
            explain(&cfg, &oidc_testkit::unsigned_token("none", &p.default_claims()), "api.example.com", "/", "GET")
                .await;
        assert_eq!(r.status, 401);
        assert!(r.to_string().contains("✗ header: token is not signed (alg none)"), "{r}");

        let graph =
            p.sign_with_header(json!({"alg": "RS256", "kid": p.current_kid(), "nonce": "x"}), p.default_claims());
        let r = explain(&cfg, &graph, "api.example.com", "/", "GET").await;
        assert!(r.verdict.contains("Microsoft Graph token") && r.verdict.contains(TEST_AUDIENCE), "{r}");

        let token = p.sign(p.default_claims());
        let r = explain(&cfg, &token, "other.example.com", "/", "GET").await;
        assert_eq!(r.status, 404, "{r}");
        let r = explain(&cfg, &token, "api.example.com", "/a/%2e%2e/%2e%2e/etc", "GET").await;
        assert_eq!(r.status, 400, "{r}");
        let r = explain(&cfg, "", "api.example.com", "/items", "GET").await;
        assert_eq!(r.status, 401, "{r}");
        let r = explain(&cfg, "not-a-jwt", "api.example.com", "/health", "GET").await;
        assert_eq!(r.status, 200, "public route ignores a bad token: {r}");
        let r = explain(&cfg, &token, "api.example.com", "/admin/../items", "GET").await;
        assert!(r.check("path").is_some_and(|c| c.detail.contains("/items")), "{r}");
    }

    #[test]
    fn strips_a_pasted_scheme() {
        assert_eq!(strip_bearer("Bearer abc"), "abc");
        assert_eq!(strip_bearer("bearer   abc"), "abc");
        assert_eq!(strip_bearer("abc"), "abc");
    }
}
