use super::*;
use crate::config::load_str;
use serde_json::json;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A one-host configuration (`app.example.com`: `/admin/` needs a claim, the rest a sign-in), `extra_host` added
/// to the host's table.
pub(crate) fn config(extra_host: &str) -> Config {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:18080"
trusted_proxies = ["127.0.0.0/8"]

[provider]
issuer = "https://login.example.com/tenant/v2.0"
client_id = "client-1"
client_secret = "secret-1"
audiences = ["api://x"]

[session]
keys = ["{KEY}"]

[[hosts]]
name = "app.example.com"
upstream = "http://127.0.0.1:9000"
{extra_host}
[[hosts.routes]]
path = "/admin/"
claims = [{{ claim = "department.name", equals = "IT" }}]
[[hosts.routes]]
path = "/"
access = "authenticated"
"#
    );
    load_str(&text, std::path::Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn browser(cfg: &Config) -> Browser {
    let keys = KeyStore::new(&cfg.provider).expect("key store");
    Browser::new(cfg, keys).expect("browser")
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    m
}

fn external(scheme: &str, host: &str) -> External {
    let scheme = if scheme == "https" { "https" } else { "http" };
    let port = crate::flow::forwarded::default_port(scheme);
    External { client_ip: None, scheme, host: host.into(), port, forwarded_for: String::new() }
}

fn header<'a>(r: &'a LocalResponse, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

#[test]
fn redirect_uri_comes_from_external_url_or_the_trusted_origin() {
    let cfg = config("");
    let host = &cfg.hosts[0];
    assert_eq!(
        redirect_uri(host, &external("https", "app.example.com"), "/oauth2/callback"),
        "https://app.example.com/oauth2/callback"
    );
    assert_eq!(
        redirect_uri(host, &external("http", "127.0.0.1:8080"), "/cb"),
        "http://127.0.0.1:8080/cb"
    );
    let cfg = config("external_url = \"https://app.example.com\"");
    let host = &cfg.hosts[0];
    // Whatever the request said, the configured URL wins.
    assert_eq!(
        redirect_uri(host, &external("http", "evil.example"), "/oauth2/callback"),
        "https://app.example.com/oauth2/callback"
    );
    assert!(is_secure(host, &external("http", "evil.example")));
}

#[test]
fn login_url_encodes_the_return_path() {
    assert_eq!(login_url("/oauth2/login", "/a/b?x=1&y=2"), "/oauth2/login?rd=%2Fa%2Fb%3Fx%3D1%26y%3D2");
    assert_eq!(query_param(Some("rd=%2Fa%2Fb%3Fx%3D1%26y%3D2&z=1"), "rd").as_deref(), Some("/a/b?x=1&y=2"));
    assert_eq!(query_param(Some("a=1"), "rd"), None);
    assert_eq!(query_param(None, "rd"), None);
}

#[test]
fn navigations_are_redirected_to_login_and_api_calls_get_401() {
    let cfg = config("");
    let b = browser(&cfg);
    let host = &cfg.hosts[0];
    let ext = external("https", "app.example.com");
    let nav = headers(&[("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "document"), ("accept", "text/html")]);
    let req = Request { method: &Method::GET, path: "/deep/link", query: Some("x=1"), headers: &nav, body: None, peer: None };
    let r = b.challenge(&req, host, &ext, "/deep/link?x=1");
    assert_eq!(r.status, 302);
    assert_eq!(header(&r, "location"), Some("/oauth2/login?rd=%2Fdeep%2Flink%3Fx%3D1"));

    let fetch = headers(&[("sec-fetch-mode", "cors"), ("accept", "*/*")]);
    let req = Request { method: &Method::GET, path: "/api/me", query: None, headers: &fetch, body: None, peer: None };
    let r = b.challenge(&req, host, &ext, "/api/me");
    assert_eq!(r.status, 401);
    assert!(header(&r, "www-authenticate").unwrap().starts_with("Bearer realm=\"app.example.com\""));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["login_url"], "/oauth2/login?rd=%2Fapi%2Fme");

    // An unsafe method is never redirected, even from a page.
    let req = Request { method: &Method::POST, path: "/x", query: None, headers: &nav, body: None, peer: None };
    assert_eq!(b.challenge(&req, host, &ext, "/x").status, 401);

    // login = "deny": 401 for everyone, and no login URL offered.
    let cfg = config("login = \"deny\"");
    let b = browser(&cfg);
    let req = Request { method: &Method::GET, path: "/deep", query: None, headers: &nav, body: None, peer: None };
    let r = b.challenge(&req, &cfg.hosts[0], &ext, "/deep");
    assert_eq!(r.status, 401);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(body.get("login_url").is_none());
}

#[tokio::test]
async fn own_cookies_never_reach_the_upstream() {
    let cfg = config("");
    let b = browser(&cfg);
    let ext = external("https", "app.example.com");
    // The request's Cookie headers, and what the app gets: keep the header, drop it, or this instead.
    type Case<'a> = (&'a [(&'a str, &'a str)], CookieHeader);
    let replace = |v: &str| CookieHeader::Replace(v.to_owned());
    let cases: &[Case] = &[
        (&[], CookieHeader::Keep),
        (&[("cookie", "theme=dark; lang=en")], CookieHeader::Keep),
        (
            &[("cookie", "theme=dark; __Host-oidc_session.0=abc; __Host-oidc_session.1=def; lang=en")],
            replace("theme=dark; lang=en"),
        ),
        (&[("cookie", "__Host-oidc_session=abc; __Host-oidc_login_abcdefgh=x")], CookieHeader::Drop),
        // Over several Cookie headers, and a repeated name.
        (&[("cookie", "__Host-oidc_session=abc"), ("cookie", "__Host-oidc_session=def")], CookieHeader::Drop),
        (&[("cookie", "__Host-oidc_session=abc"), ("cookie", "a=1")], replace("a=1")),
        // A part that is no pair is the app's, even beside nothing but ours.
        (&[("cookie", "__Host-oidc_session=abc; junk")], replace("junk")),
        // The http (local demo) names are ours too.
        (&[("cookie", "oidc_session=abc; a=1")], replace("a=1")),
    ];
    for (sent, expected) in cases {
        let h = headers(sent);
        let expected = expected.clone();
        assert_eq!(b.upstream_cookie(&h, &ext), expected, "{sent:?}");
        // A session request decides it from the cookies read for the session, to the same answer.
        let req = Request { method: &Method::GET, path: "/", query: None, headers: &h, body: None, peer: None };
        let auth = b.authenticate(&req, &cfg.hosts[0], &ext).await.expect("no store error");
        assert_eq!(auth.upstream_cookie, expected, "{sent:?}");
    }
}

#[test]
fn csrf_uses_the_external_origin_and_allowed_origins() {
    let cfg = config("allowed_origins = [\"https://spa.example.com\"]");
    let b = browser(&cfg);
    let host = &cfg.hosts[0];
    let ext = external("https", "app.example.com");
    let post = Method::POST;
    assert!(b.csrf_ok(&post, &headers(&[("origin", "https://app.example.com")]), host, &ext));
    assert!(b.csrf_ok(&post, &headers(&[("origin", "https://spa.example.com")]), host, &ext));
    assert!(!b.csrf_ok(&post, &headers(&[("origin", "https://evil.example")]), host, &ext));
    assert!(!b.csrf_ok(&post, &headers(&[]), host, &ext));
    assert!(b.csrf_ok(&Method::GET, &headers(&[("origin", "https://evil.example")]), host, &ext));
}

#[test]
fn claims_named_by_routes_are_kept() {
    let cfg = config("");
    assert_eq!(kept_claims(&cfg.hosts), vec!["department".to_string()]);
}

#[test]
fn session_claims_take_scopes_only_from_the_access_token() {
    let id = json!({"sub": "s", "oid": "o", "name": "N", "scp": "forged", "roles": ["A"], "nonce": "n", "exp": 1})
        .as_object()
        .cloned()
        .unwrap();
    let access = json!({"scp": "user.read", "roles": ["B"], "aud": "api://x"}).as_object().cloned().unwrap();
    let merged = session_claims(&id, Some(&access), &[]);
    assert_eq!(merged["scp"], "user.read");
    assert_eq!(merged["roles"], json!(["B", "A"]));
    assert!(merged.get("nonce").is_none() && merged.get("exp").is_none() && merged.get("aud").is_none());
    let p = Principal::from_claims(&merged, 10, AuthMethod::Session);
    assert_eq!(p.scopes, vec!["user.read"]);
    assert_eq!(p.subject, "o");

    // The same principal as `Principal::from_session` builds from the two tokens.
    let expected = Principal::from_session(&id, Some(&access), 10);
    for (a, b) in [(&p.roles, &expected.roles), (&p.groups, &expected.groups), (&p.scopes, &expected.scopes)] {
        assert_eq!(a, b);
    }
    assert_eq!((&p.subject, &p.name, &p.tenant), (&expected.subject, &expected.name, &expected.tenant));

    // Opaque access token: the ID token's `scp` grants nothing.
    let only_id = session_claims(&id, None, &[]);
    assert!(only_id.get("scp").is_none());
}

fn session(cfg: &Config) -> SessionData {
    let claims = json!({"oid": "o", "name": "Ann", "email": "ann@example.com", "roles": ["Admin"], "groups": ["g1"],
        "scp": "user.read", "tid": "t"})
    .as_object()
    .cloned()
    .unwrap();
    let mut d = SessionData::new("o", claims, 1_000, &cfg.session);
    d.access_token = Some("secret-access-token".into());
    d.refresh_token = Some("secret-refresh-token".into());
    d.id_token = Some("secret-id-token".into());
    d.access_expires_at = Some(1_600);
    d
}

#[test]
fn userinfo_has_the_user_and_no_tokens() {
    let cfg = config("");
    let d = session(&cfg);
    let p = session_principal(&d, 1_000, &cfg.session);
    let v = endpoints::userinfo_json(&p, &d, 1_000, &cfg.session, false);
    assert_eq!(v["subject"], "o");
    assert_eq!(v["name"], "Ann");
    assert_eq!(v["email"], "ann@example.com");
    assert_eq!(v["roles"], json!(["Admin"]));
    assert_eq!(v["groups"], json!(["g1"]));
    assert_eq!(v["scopes"], json!(["user.read"]));
    assert_eq!(v["tenant"], "t");
    // Inactivity timeout (1 h default) comes before the absolute lifetime (8 h).
    assert_eq!(v["expires_at"], 1_000 + 3600);
    assert_eq!(v["access_token_expires_at"], 1_600);
    let text = v.to_string();
    assert!(!text.contains("secret-"), "no token in {text}");
    assert_eq!(p.method, AuthMethod::Session);
}

#[test]
fn userinfo_shows_the_access_token_only_where_the_host_allows_it_and_only_while_valid() {
    let cfg = config("");
    let d = session(&cfg);
    let p = session_principal(&d, 1_000, &cfg.session);
    let v = endpoints::userinfo_json(&p, &d, 1_000, &cfg.session, true);
    assert_eq!(v["access_token"], d.access_token.clone().expect("the fixture keeps one"));
    let text = v.to_string();
    assert!(!text.contains("secret-refresh") && !text.contains("secret-id"), "never the refresh or ID token: {text}");
    // Expired (access_expires_at 1_600): not shown, even to a host that allows it.
    let v = endpoints::userinfo_json(&p, &d, 1_600, &cfg.session, true);
    assert!(v.get("access_token").is_none(), "{v}");
}

#[test]
fn cache_key_changes_when_tokens_change() {
    let cfg = config("");
    let mut d = session(&cfg);
    let before = cache_key(&d);
    assert_eq!(before, cache_key(&d.clone()));
    d.access_expires_at = Some(5_000);
    assert_ne!(before, cache_key(&d));
    let mut other = session(&cfg);
    other.access_expires_at = Some(5_000);
    assert_ne!(cache_key(&d), cache_key(&other), "two sessions never share an assertion");
}

#[tokio::test]
async fn login_before_discovery_is_503_and_unknown_paths_pass() {
    let cfg = config("");
    let b = browser(&cfg);
    let host = &cfg.hosts[0];
    let ext = external("https", "app.example.com");
    let h = headers(&[]);
    let req = Request { method: &Method::GET, path: "/oauth2/login", query: Some("rd=/x"), headers: &h, body: None, peer: None };
    match b.endpoint(&req, host, "/oauth2/login", &ext).await {
        Some(Outcome::Respond(r)) => {
            assert_eq!(r.status, 503);
            assert!(r.reason.contains("discovery"), "{}", r.reason);
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    assert!(b.endpoint(&req, host, "/oauth2/other", &ext).await.is_none());
}

#[tokio::test]
async fn callback_without_a_pending_login_is_a_page_not_a_500() {
    let cfg = config("");
    let b = browser(&cfg);
    let host = &cfg.hosts[0];
    let ext = external("https", "app.example.com");
    let h = headers(&[]);
    for q in [Some("code=bogus&state=bogus"), Some("code=c&state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), None] {
        let req = Request { method: &Method::GET, path: "/oauth2/callback", query: q, headers: &h, body: None, peer: None };
        let Some(Outcome::Respond(r)) = b.endpoint(&req, host, "/oauth2/callback", &ext).await else {
            panic!("callback must answer")
        };
        assert_eq!(r.status, 400, "{q:?}");
        assert_eq!(header(&r, "content-type"), Some("text/html; charset=utf-8"));
        assert!(String::from_utf8_lossy(&r.body).contains("href=\"/oauth2/login?rd=%2F\""));
    }
    let req = Request {
        method: &Method::GET,
        path: "/oauth2/callback",
        query: Some("error=access_denied&error_description=%3Cscript%3E&state=x"),
        headers: &h,
        body: None,
        peer: None,
    };
    let Some(Outcome::Respond(r)) = b.endpoint(&req, host, "/oauth2/callback", &ext).await else { panic!() };
    assert_eq!(r.status, 400);
    let body = String::from_utf8_lossy(&r.body);
    assert!(body.contains("access_denied") && !body.contains("<script>"));
}

#[tokio::test]
async fn a_tampered_cookie_is_no_session_and_is_cleared() {
    let cfg = config("");
    let b = browser(&cfg);
    let host = &cfg.hosts[0];
    let ext = external("https", "app.example.com");
    let h = headers(&[("cookie", "__Host-oidc_session=AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA; other=1")]);
    let req = Request { method: &Method::GET, path: "/", query: None, headers: &h, body: None, peer: None };
    let auth = b.authenticate(&req, host, &ext).await.expect("no store error");
    assert!(auth.principal.is_none());
    assert_eq!(auth.set_cookies.len(), 1);
    assert!(auth.set_cookies[0].starts_with("__Host-oidc_session=;"), "{}", auth.set_cookies[0]);
    assert!(auth.set_cookies[0].contains("Max-Age=0"));

    // A valid one opens, with method session and the assertion cache key set.
    let d = session(&cfg);
    let mut d = SessionData { created_at: unix_now(), last_seen: unix_now(), expires_at: unix_now() + 3600, ..d };
    d.access_expires_at = Some(unix_now() + 3600);
    let sets = b.store.save(&d, &CookieMap::default(), true).await.unwrap();
    let cookie = sets.iter().map(|s| s.pair()).collect::<Vec<_>>().join("; ");
    let h = headers(&[("cookie", &cookie)]);
    let req = Request { method: &Method::GET, path: "/", query: None, headers: &h, body: None, peer: None };
    let auth = b.authenticate(&req, host, &ext).await.unwrap();
    let p = auth.principal.expect("session principal");
    assert_eq!(p.method, AuthMethod::Session);
    assert_eq!(p.scopes, vec!["user.read"]);
    assert!(auth.cache_key.is_some());
    assert!(auth.set_cookies.is_empty(), "nothing to slide yet");
    // The same cookie on plain http is another name: not ours there.
    let auth = b.authenticate(&req, host, &external("http", "app.example.com")).await.unwrap();
    assert!(auth.principal.is_none());
}

#[tokio::test]
async fn without_client_credentials_sign_in_is_off_but_the_sidecar_starts() {
    let mut cfg = config("");
    cfg.provider.client_secret = None;
    let b = browser(&cfg);
    let host = &cfg.hosts[0];
    let ext = external("https", "app.example.com");
    let nav = headers(&[("sec-fetch-mode", "navigate"), ("accept", "text/html")]);
    let req = Request { method: &Method::GET, path: "/x", query: None, headers: &nav, body: None, peer: None };
    let r = b.challenge(&req, host, &ext, "/x");
    assert_eq!(r.status, 401, "no redirect to a login that cannot work");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(body.get("login_url").is_none());
    let req = Request { method: &Method::GET, path: "/oauth2/login", query: None, headers: &nav, body: None, peer: None };
    let Some(Outcome::Respond(r)) = b.endpoint(&req, host, "/oauth2/login", &ext).await else { panic!() };
    assert_eq!(r.status, 503);
    assert!(r.reason.contains("client_secret"), "{}", r.reason);

    // A credential that is configured but unusable still stops the start.
    let mut cfg = config("");
    cfg.provider.client_auth =
        crate::config::ClientAuth::PrivateKeyJwt { key_pem: crate::config::Secret("not a key".into()), x5t: None, kid: None };
    let keys = KeyStore::new(&cfg.provider).unwrap();
    assert!(Browser::new(&cfg, keys).is_err());
}

