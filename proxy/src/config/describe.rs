//! What `oidc-sidecar check` prints: the configuration as the sidecar understood it, in words.
//!
//! The point is to let an operator see the decisions, not the syntax: which issuers and audiences a token must
//! match, which backend each host reaches, and every route in the order it is tried, with its line in the file so
//! a surprising decision can be traced back. Secrets are never printed, only whether they are set.

use std::fmt::Write as _;

use super::*;

/// Renders `config` for humans. Never contains a secret value.
pub fn describe(config: &Config) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_all(&mut out, config);
    out
}

fn write_all(out: &mut String, c: &Config) -> std::fmt::Result {
    writeln!(out, "configuration {}", c.source.display())?;
    writeln!(out)?;

    let p = &c.provider;
    writeln!(out, "provider")?;
    match (&p.required_tenant, p.entra) {
        (Some(tid), true) => writeln!(out, "  issuer        {} (Entra ID tenant {tid})", p.issuer)?,
        _ => writeln!(out, "  issuer        {}", p.issuer)?,
    }
    if !p.extra_issuers.is_empty() {
        writeln!(out, "  also accepts  {}", p.extra_issuers.join(", "))?;
    }
    writeln!(out, "  discovery     {}", p.discovery_url)?;
    let auth = match &p.client_auth {
        ClientAuth::ClientSecretBasic => format!("client_secret_basic, {}", set_or_not(p.client_secret.is_some())),
        ClientAuth::ClientSecretPost => format!("client_secret_post, {}", set_or_not(p.client_secret.is_some())),
        ClientAuth::PrivateKeyJwt { x5t, kid, .. } => {
            let thumb = match x5t {
                Some(t) => format!("certificate thumbprint {t}"),
                None => "no certificate thumbprint".to_string(),
            };
            match kid {
                Some(k) => format!("private_key_jwt, {thumb}, key id {k}"),
                None => format!("private_key_jwt, {thumb}"),
            }
        }
    };
    writeln!(out, "  client id     {} ({auth})", p.client_id)?;
    writeln!(out, "  audiences     {}", p.audiences.join(", "))?;
    match &p.required_tenant {
        Some(tid) => writeln!(out, "  tenant        tid must be {tid}")?,
        None => writeln!(out, "  tenant        any (no tid check)")?,
    }
    let algs: Vec<String> = p.algorithms.iter().map(|a| format!("{a:?}")).collect();
    writeln!(out, "  algorithms    {}", algs.join(", "))?;
    writeln!(out, "  clock skew    {}", humantime::format_duration(p.clock_skew))?;
    writeln!(out, "  login scopes  {}", p.scopes.join(" "))?;
    writeln!(
        out,
        "  keys          refreshed every {}, unknown kid refetched at most every {}",
        humantime::format_duration(p.jwks_refresh),
        humantime::format_duration(p.jwks_refetch_cooldown)
    )?;
    writeln!(out)?;

    let s = &c.server;
    writeln!(out, "server")?;
    writeln!(out, "  listen        {} ({} threads), health {}", s.listen, s.threads, s.health_path)?;
    writeln!(out, "  admin         {} (assertion JWKS, /metrics)", s.admin_listen)?;
    if s.trusted_proxies.is_empty() {
        writeln!(out, "  forwarded     X-Forwarded-* ignored (no trusted_proxies)")?;
    } else {
        let nets: Vec<String> = s.trusted_proxies.iter().map(ToString::to_string).collect();
        writeln!(out, "  forwarded     X-Forwarded-* believed from {}", nets.join(", "))?;
    }
    writeln!(
        out,
        "  upstream      connect {}, read {}, idle {}",
        humantime::format_duration(s.upstream_connect_timeout),
        humantime::format_duration(s.upstream_read_timeout),
        humantime::format_duration(s.upstream_idle_timeout)
    )?;
    match s.downstream_idle_timeout {
        None => writeln!(out, "  clients       idle connections kept until the client (the ALB) closes them")?,
        Some(d) => writeln!(out, "  clients       idle connections closed after {}", humantime::format_duration(d))?,
    }
    writeln!(
        out,
        "  shutdown      grace {}, then {}; logs {}",
        humantime::format_duration(s.grace_period),
        humantime::format_duration(s.shutdown_timeout),
        match s.log_format {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        }
    )?;
    writeln!(out)?;

    let i = &c.identity;
    writeln!(out, "identity")?;
    writeln!(out, "  headers       {}* (removed from every request, then set by the sidecar)", i.header_prefix)?;
    writeln!(
        out,
        "  assertion     iss {}, valid {}, key {}",
        i.assertion_issuer,
        humantime::format_duration(i.assertion_ttl),
        if i.signing_key.is_some() { "configured" } else { "generated at start" }
    )?;
    writeln!(out)?;

    let ss = &c.session;
    writeln!(out, "session")?;
    match (ss.store, &ss.redis_url) {
        (SessionStore::Redis, Some(url)) => writeln!(
            out,
            "  store         redis at {}{}",
            redis_location(url.expose()),
            if ss.redis_client_cache { " (client-side cache on)" } else { "" }
        )?,
        (SessionStore::Redis, None) => writeln!(out, "  store         redis")?,
        (SessionStore::Cookie, _) => writeln!(out, "  store         sealed cookie")?,
    }
    match &ss.cookie_domain {
        Some(d) => writeln!(out, "  cookie        {} (Domain={d})", ss.cookie_name)?,
        None => writeln!(out, "  cookie        {}", ss.cookie_name)?,
    }
    match ss.keys.len() {
        0 => writeln!(out, "  keys          none: one is generated at start (sessions end at restart and are not shared between tasks)")?,
        1 => writeln!(out, "  keys          1")?,
        n => writeln!(out, "  keys          {n} (the first seals, all open)")?,
    }
    writeln!(
        out,
        "  lifetime      idle {}, at most {}, refresh {} before expiry",
        humantime::format_duration(ss.inactivity_timeout),
        humantime::format_duration(ss.max_lifetime),
        humantime::format_duration(ss.refresh_margin)
    )?;
    let ep = &ss.paths;
    writeln!(
        out,
        "  endpoints     login {}, callback {}, logout {}, userinfo {}, front-channel logout {}",
        ep.login, ep.callback, ep.logout, ep.userinfo, ep.frontchannel_logout
    )?;

    for h in &c.hosts {
        writeln!(out)?;
        writeln!(out, "host {} (line {})", h.name, h.line)?;
        match &h.backend {
            Backend::Upstream { addr, tls, .. } => {
                writeln!(out, "  backend       upstream {}://{addr}", if *tls { "https" } else { "http" })?
            }
            Backend::Static { root } => writeln!(out, "  backend       static files from {}", root.display())?,
        }
        match h.login {
            LoginMode::Redirect => writeln!(out, "  login         browsers are sent to the provider; other requests get 401")?,
            LoginMode::Deny => writeln!(out, "  login         none: 401 without a valid token or session")?,
        }
        let mut upstream = Vec::new();
        upstream.push(if h.forward_authorization { "Authorization forwarded" } else { "Authorization dropped" });
        if h.forward_access_token {
            upstream.push("session access token sent as Bearer");
        }
        if h.userinfo_access_token {
            upstream.push("userinfo shows the session access token to the page");
        }
        match h.claim_headers {
            ClaimHeaders::None => {}
            ClaimHeaders::ModAuthOpenidc { access_token: false } => upstream.push("OIDC_CLAIM_* headers"),
            ClaimHeaders::ModAuthOpenidc { access_token: true } => upstream.push("OIDC_CLAIM_* headers and OIDC_access_token"),
        }
        writeln!(out, "  upstream sees {}", upstream.join(", "))?;
        if let Some(url) = &h.external_url {
            writeln!(out, "  external url  {url}")?;
        }
        if !h.allowed_origins.is_empty() {
            writeln!(out, "  origins       {}", h.allowed_origins.join(", "))?;
        }
        if let Some(sh) = &h.security_headers {
            let mut names = Vec::new();
            if sh.hsts.is_some() {
                names.push("Strict-Transport-Security");
            }
            if sh.content_type_options {
                names.push("X-Content-Type-Options");
            }
            if sh.referrer_policy.is_some() {
                names.push("Referrer-Policy");
            }
            if sh.content_security_policy.is_some() {
                names.push("Content-Security-Policy");
            }
            writeln!(out, "  adds headers  {}", if names.is_empty() { "none".into() } else { names.join(", ") })?;
        }
        writeln!(out, "  routes (first match wins):")?;
        let width = h.routes.iter().map(|r| match_words(&r.path).len()).max().unwrap_or(0);
        for r in &h.routes {
            let methods = match &r.methods {
                None => "any method".to_string(),
                Some(m) => m.iter().map(http::Method::as_str).collect::<Vec<_>>().join(" "),
            };
            writeln!(
                out,
                "    line {:<4} {:<width$}  {:<12} {}",
                r.line,
                match_words(&r.path),
                methods,
                access_words(&r.access)
            )?;
        }
        writeln!(out, "    otherwise  denied (no route matches)")?;
    }
    Ok(())
}

fn set_or_not(set: bool) -> &'static str {
    if set { "secret set" } else { "no secret" }
}

fn match_words(p: &PathMatch) -> String {
    match p {
        PathMatch::Prefix(s) => format!("{s}*"),
        PathMatch::Exact(s) => format!("{s} (exact)"),
    }
}

/// Who may pass, in words: `public`, `authenticated`, or `authenticated, scopes all of: a, b; ...`.
pub fn access_words(a: &Access) -> String {
    match a {
        Access::Public => "public".to_string(),
        Access::Authenticated => "authenticated".to_string(),
        Access::Require(r) => {
            let mut parts = Vec::new();
            let mut list = |what: &str, items: &[String]| {
                if !items.is_empty() {
                    parts.push(format!("{what} {}", items.join(", ")));
                }
            };
            list("scopes all of", &r.scopes_all);
            list("scopes any of", &r.scopes_any);
            list("roles any of", &r.roles_any);
            list("roles all of", &r.roles_all);
            list("groups any of", &r.groups_any);
            for c in &r.claims {
                parts.push(match &c.test {
                    ClaimTest::Equals(v) => format!("claim {} equals \"{v}\"", c.claim),
                    ClaimTest::Contains(v) => format!("claim {} contains \"{v}\"", c.claim),
                });
            }
            format!("authenticated, {}", parts.join("; "))
        }
    }
}

/// `scheme://host:port` of a Redis URL: never its password.
fn redis_location(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or("?"),
            u.port().map_or_else(|| "6379".to_string(), |p| p.to_string())
        ),
        Err(_) => "(url set)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    fn env() -> impl Fn(&str) -> Option<String> {
        let map: HashMap<&str, &str> = [
            ("TID", "11111111-2222-3333-4444-555555555555"),
            ("SECRET", "very-secret-client-secret"),
            ("SESSION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
            ("REDIS_PASSWORD", "hunter2-redis"),
        ]
        .into_iter()
        .collect();
        move |k| map.get(k).map(|v| v.to_string())
    }

    const FILE: &str = r#"
[provider]
tenant_id = "${TID}"
client_id = "cid"
client_secret = "${SECRET}"
audiences = ["api://app"]

[session]
store = "redis"
keys = ["${SESSION_KEY}"]
redis_url = "rediss://:${REDIS_PASSWORD}@cache.example.com:6380"

[[hosts]]
name = "api.example.com"
upstream = "http://127.0.0.1:8000"
login = "deny"
[[hosts.routes]]
exact = "/health"
access = "public"
[[hosts.routes]]
path = "/admin/"
methods = ["GET", "post"]
roles = ["Admin"]
[[hosts.routes]]
path = "/"
scopes = ["user.read"]
claims = [{ claim = "amr", contains = "mfa" }]
"#;

    fn described() -> String {
        let c = load::load_str_with_env(FILE, Path::new("test.toml"), &env()).unwrap();
        describe(&c)
    }

    #[test]
    fn names_provider_and_entra_issuers() {
        let d = described();
        let tid = "11111111-2222-3333-4444-555555555555";
        assert!(d.contains(&format!("issuer        https://login.microsoftonline.com/{tid}/v2.0 (Entra ID tenant {tid})")), "{d}");
        assert!(d.contains(&format!("also accepts  https://sts.windows.net/{tid}/")), "{d}");
        assert!(d.contains(&format!("discovery     https://login.microsoftonline.com/{tid}/v2.0/.well-known/openid-configuration")), "{d}");
        assert!(d.contains("audiences     api://app"), "{d}");
        assert!(d.contains(&format!("tid must be {tid}")), "{d}");
    }

    #[test]
    fn lists_routes_in_order_with_lines_and_words() {
        let d = described();
        let health = d.find("line 17   /health (exact)").expect(&d);
        let admin = d.find("line 20   /admin/*").expect(&d);
        let root = d.find("line 24   /*").expect(&d);
        assert!(health < admin && admin < root, "{d}");
        assert!(d.contains("GET POST     authenticated, roles any of Admin"), "{d}");
        assert!(d.contains("authenticated, scopes all of user.read; claim amr contains \"mfa\""), "{d}");
        assert!(d.contains("host api.example.com (line 13)"), "{d}");
        assert!(d.contains("backend       upstream http://127.0.0.1:8000"), "{d}");
        assert!(d.contains("otherwise  denied"), "{d}");
    }

    #[test]
    fn never_prints_secrets() {
        let d = described();
        for secret in ["very-secret-client-secret", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "hunter2-redis"] {
            assert!(!d.contains(secret), "secret leaked: {d}");
        }
        assert!(d.contains("redis at rediss://cache.example.com:6380"), "{d}");
        assert!(d.contains("client_secret_basic, secret set"), "{d}");
    }
}
