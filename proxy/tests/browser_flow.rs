//! Browser sign-in end to end over real sockets: the `oidc-sidecar` binary in front of the testkit's OpenID provider
//! (auto-approving `/authorize`, code + PKCE and refresh grants, end_session) and the echo upstream, with a small
//! cookie jar standing in for the browser. Redis cases start their own `redis-server` on a free port.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use oidc_testkit::redis::{RedisConfig, RedisServer};
use oidc_testkit::{ProviderOptions, TestProvider, TEST_CLIENT_SECRET};
use serde_json::Value;

const HOST: &str = "app.test";
const KEY1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

// === fixtures ===

/// An app host with a login redirect: public, admin (role), items (scope) and everything else authenticated.
fn app_config(provider: &TestProvider, upstream: &str, session: &str, host_extra: &str) -> String {
    format!(
        r#"
[server]
listen = "{{LISTEN}}"
admin_listen = "{{ADMIN}}"
# One worker: the no-steal (current-thread) runtime a small Fargate task runs on; the Bearer suite runs two.
threads = 1
trusted_proxies = ["127.0.0.0/8"]
grace_period = "1s"
shutdown_timeout = "1s"
upstream_read_timeout = "5s"

[provider]
issuer = "{issuer}"
audiences = ["{aud}"]
required_tenant = "{tid}"
client_id = "{client}"
client_secret = "{secret}"
jwks_refetch_cooldown = "1s"

[session]
{session}

[[hosts]]
name = "{HOST}"
upstream = "{upstream}"
{host_extra}
[[hosts.routes]]
path = "/public/"
access = "public"
[[hosts.routes]]
path = "/admin/"
roles = ["Admin"]
[[hosts.routes]]
path = "/items/"
scopes = ["user.read"]
[[hosts.routes]]
path = "/groups/"
groups = ["aaaaaaaa-0000-0000-0000-000000000150"]
[[hosts.routes]]
path = "/"
access = "authenticated"
"#,
        issuer = provider.issuer(),
        aud = provider.audience(),
        tid = provider.tenant(),
        client = oidc_testkit::TEST_CLIENT_ID,
        secret = TEST_CLIENT_SECRET,
    )
}

fn cookie_session(extra: &str) -> String {
    format!("keys = [\"{KEY1}\"]\n{extra}")
}

fn redis_session(port: u16, extra: &str) -> String {
    format!("store = \"redis\"\nredis_url = \"redis://127.0.0.1:{port}\"\nkeys = [\"{KEY1}\"]\n{extra}")
}

async fn provider_with(opts: ProviderOptions) -> TestProvider {
    TestProvider::start_with(opts).await.expect("test provider")
}

/// Waits until the sidecar has the provider's discovery document (login answers 302, not 503).
async fn wait_ready(s: &Sidecar) {
    wait_ready_on(s, HOST).await;
}

/// [`wait_ready`] for a given host name.
async fn wait_ready_on(s: &Sidecar, host: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let r = client().get(s.url("/oauth2/login")).header("host", host).send().await;
        if r.is_ok_and(|r| r.status() == 302) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sign-in never became available; log:\n{}", s.logs());
}

async fn start(config: &str) -> Sidecar {
    let s = Sidecar::start(config).await;
    wait_ready(&s).await;
    s
}

/// A private `redis-server` on a free port that saves to its own directory on shutdown, so a stop/start keeps
/// the sessions (like ElastiCache failing over).
struct Redis {
    server: RedisServer,
    _dir: tempfile::TempDir,
}

impl Redis {
    async fn start() -> Redis {
        let dir = tempfile::tempdir().expect("dir");
        let config = RedisConfig { persist_in: Some(dir.path().to_path_buf()), ..Default::default() };
        // Blocks the test for the few milliseconds redis-server takes to start; the sidecar is another process.
        let server = RedisServer::start_with(config).unwrap_or_else(|e| panic!("{e}"));
        Redis { server, _dir: dir }
    }

    fn port(&self) -> u16 {
        self.server.port()
    }

    /// Starts it again on the same port, with what it saved.
    async fn run(&mut self) {
        self.server.restart().unwrap_or_else(|e| panic!("{e}"));
    }

    /// SIGTERM (Redis saves, then exits) and wait for the exit.
    fn stop(&mut self) {
        self.server.stop();
    }
}

/// The cookies a browser would hold for the app host, applied from `Set-Cookie` headers.
#[derive(Debug, Default, Clone)]
struct Jar {
    cookies: BTreeMap<String, String>,
    /// Every `Set-Cookie` line seen, for flag checks.
    lines: Vec<String>,
}

impl Jar {
    fn absorb(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all("set-cookie") {
            let line = v.to_str().expect("ascii Set-Cookie").to_string();
            let pair = line.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').expect("name=value");
            let removal = line.to_ascii_lowercase().contains("max-age=0");
            if removal {
                self.cookies.remove(name.trim());
            } else {
                self.cookies.insert(name.trim().to_string(), value.to_string());
            }
            self.lines.push(line);
        }
    }

    fn header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn session_cookies(&self, base: &str) -> Vec<(String, String)> {
        self.cookies
            .iter()
            .filter(|(k, _)| *k == base || k.strip_prefix(base).is_some_and(|rest| rest.starts_with('.')))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The browser: one jar, requests to the sidecar with `Host: app.test` (and `X-Forwarded-Proto` when https).
struct Browser<'a> {
    sidecar: &'a Sidecar,
    jar: Jar,
    https: bool,
    host: &'static str,
}

impl<'a> Browser<'a> {
    fn new(sidecar: &'a Sidecar) -> Self {
        Browser { sidecar, jar: Jar::default(), https: false, host: HOST }
    }

    fn on(&self, sidecar: &'a Sidecar) -> Browser<'a> {
        Browser { sidecar, jar: self.jar.clone(), https: self.https, host: self.host }
    }

    fn request(&self, method: reqwest::Method, path_and_query: &str) -> reqwest::RequestBuilder {
        let mut b = client().request(method, self.sidecar.url(path_and_query)).header("host", self.host);
        if self.https {
            b = b.header("x-forwarded-proto", "https");
        }
        if !self.jar.cookies.is_empty() {
            b = b.header("cookie", self.jar.header());
        }
        b
    }

    async fn send(&mut self, b: reqwest::RequestBuilder) -> reqwest::Response {
        let r = b.send().await.expect("request to the sidecar");
        self.jar.absorb(&r);
        r
    }

    /// A top-level navigation.
    async fn navigate(&mut self, path_and_query: &str) -> reqwest::Response {
        let b = self
            .request(reqwest::Method::GET, path_and_query)
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-dest", "document");
        self.send(b).await
    }

    /// A `fetch()` from the SPA.
    async fn fetch(&mut self, path: &str) -> reqwest::Response {
        let b = self.request(reqwest::Method::GET, path).header("accept", "application/json").header("sec-fetch-mode", "cors");
        self.send(b).await
    }

    /// Follows the whole sign-in from a navigation to `deep`: app → login → provider → callback → back on `deep`.
    /// Returns the final location the callback sent the browser to.
    async fn sign_in(&mut self, provider: &TestProvider, deep: &str) -> String {
        let r = self.navigate(deep).await;
        assert_eq!(r.status(), 302, "navigation without a session goes to login");
        let login = location(&r);
        assert!(login.starts_with("/oauth2/login?rd="), "{login}");
        self.follow_login(provider, &login).await
    }

    /// From `/oauth2/login?...` through the provider and the callback; returns the callback's `Location`.
    async fn follow_login(&mut self, provider: &TestProvider, login: &str) -> String {
        let r = self.navigate(login).await;
        assert_eq!(r.status(), 302, "login redirects to the provider: {}", self.sidecar.logs());
        let authorize = location(&r);
        assert!(authorize.starts_with(&format!("{}/authorize?", provider.url())), "{authorize}");
        let r = client().get(&authorize).send().await.expect("provider");
        assert_eq!(r.status(), 302, "provider auto-approves");
        let back = location(&r);
        let scheme = if self.https { "https" } else { "http" };
        let prefix = format!("{scheme}://{}/oauth2/callback?", self.host);
        assert!(back.starts_with(&prefix), "redirect_uri from the external origin: {back}");
        let r = self.navigate(&back[format!("{scheme}://{}", self.host).len()..]).await;
        assert_eq!(r.status(), 302, "callback finishes: {}", self.sidecar.logs());
        location(&r)
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

fn query_of(url: &str) -> BTreeMap<String, String> {
    let u = url::Url::parse(url).expect("absolute URL");
    u.query_pairs().into_owned().collect()
}

// === cases ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_link_login_lands_back_with_a_session_the_app_sees_as_identity() {
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let s = start(&app_config(&provider, &upstream.url(), &cookie_session(""), "")).await;
    let mut b = Browser::new(&s);

    let landed = b.sign_in(&provider, "/deep/link?x=1&y=%2F").await;
    assert_eq!(landed, "/deep/link?x=1&y=%2F");
    assert_eq!(provider.code_grant_count(), 1);

    // Session cookie flags (plain http: no Secure, no __Host- prefix); the pending-login cookie is gone.
    let session = b.jar.session_cookies("oidc_session");
    assert_eq!(session.len(), 1, "{:?}", b.jar.cookies.keys());
    let line = b.jar.lines.iter().rev().find(|l| l.starts_with("oidc_session=")).unwrap().to_ascii_lowercase();
    for flag in ["httponly", "samesite=lax", "path=/"] {
        assert!(line.contains(flag), "{flag} in {line}");
    }
    assert!(!line.contains("secure"), "{line}");
    assert!(!b.jar.cookies.keys().any(|k| k.starts_with("oidc_login_")), "{:?}", b.jar.cookies.keys());

    // The deep link itself, as a navigation and as a SPA fetch with an app cookie beside ours.
    b.jar.cookies.insert("theme".into(), "dark".into());
    let r = b.fetch("/deep/link?x=1").await;
    assert_eq!(r.status(), 200);
    let echo = echo_of(r).await;
    assert_eq!(echo.header("x-auth-method"), Some("session"));
    assert_eq!(echo.header("x-auth-subject"), Some(oidc_testkit::TEST_OID));
    assert_eq!(echo.header("x-auth-name"), Some("Test User"));
    assert_eq!(echo.header("x-auth-scopes"), Some("user.read"));
    assert!(echo.header("x-auth-assertion").is_some_and(|a| a.split('.').count() == 3));
    assert_eq!(echo.header("cookie"), Some("theme=dark"), "our cookies never reach the app");
    assert!(echo.header("authorization").is_none(), "no token forwarded unless the host asks");

    // A route needing scope user.read admits the session: the scope comes from its access token.
    let r = b.fetch("/items/1").await;
    assert_eq!(r.status(), 200);
    // The role Admin is not the user's (Reader).
    assert_eq!(b.fetch("/admin/x").await.status(), 403);

    // userinfo for the SPA: the user, no tokens.
    let r = b.fetch("/oauth2/userinfo").await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let info: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(info["subject"], oidc_testkit::TEST_OID);
    assert_eq!(info["email"], "test.user@example.com");
    assert_eq!(info["scopes"], serde_json::json!(["user.read"]));
    assert_eq!(info["roles"], serde_json::json!(["Reader"]));
    assert!(info["expires_at"].as_u64().is_some());
    assert!(!text.contains("eyJ"), "no JWT in userinfo: {text}");

    // Without the session: fetch → 401 JSON with WWW-Authenticate and a login URL; navigation → login.
    let mut anon = Browser::new(&s);
    let r = anon.fetch("/deep/link").await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["login_url"], "/oauth2/login?rd=%2Fdeep%2Flink");
    let r = anon.navigate("/deep/link").await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/oauth2/login?rd=%2Fdeep%2Flink");
    assert_eq!(anon.fetch("/oauth2/userinfo").await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_behind_a_trusted_proxy_gives_secure_host_prefixed_cookies() {
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let s = start(&app_config(&provider, &upstream.url(), &cookie_session(""), "")).await;
    let mut b = Browser::new(&s);
    b.https = true;
    let landed = b.sign_in(&provider, "/home").await;
    assert_eq!(landed, "/home");
    let pending = b.jar.lines.iter().find(|l| l.starts_with("__Host-oidc_login_")).expect("pending-login cookie");
    assert!(pending.contains("Secure") && pending.contains("SameSite=None"), "{pending}");
    let line = b.jar.lines.iter().rev().find(|l| l.starts_with("__Host-oidc_session=")).expect("__Host- session cookie");
    for flag in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(line.contains(flag), "{flag} in {line}");
    }
    assert!(!line.contains("Domain"), "{line}");
    assert_eq!(b.fetch("/home").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_redirects_are_refused() {
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let s = start(&app_config(&provider, &upstream.url(), &cookie_session(""), "")).await;
    let evil = [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "%2F%2Fevil.example",
        "/%2F/evil.example",
        "/%5Cevil.example",
        "javascript:alert(1)",
        "http:evil.example",
        "/\t/evil.example",
    ];
    for rd in evil {
        let mut b = Browser::new(&s);
        let enc: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        let landed = b.follow_login(&provider, &format!("/oauth2/login?rd={enc}")).await;
        assert_eq!(landed, "/", "rd={rd:?} must land on /");
    }
    let mut b = Browser::new(&s);
    assert_eq!(b.follow_login(&provider, "/oauth2/login?rd=%2Fok%3Fz%3D1").await, "/ok?z=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_cookie_is_no_session_and_is_cleared() {
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let s = start(&app_config(&provider, &upstream.url(), &cookie_session(""), "")).await;
    let mut b = Browser::new(&s);
    b.sign_in(&provider, "/").await;
    let value = b.jar.cookies.get("oidc_session").cloned().expect("session");
    // Flip one character in the middle of the sealed value.
    let mut bytes = value.into_bytes();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
    b.jar.cookies.insert("oidc_session".into(), String::from_utf8(bytes).unwrap());
    let r = b.fetch("/x").await;
    assert_eq!(r.status(), 401);
    assert!(!b.jar.cookies.contains_key("oidc_session"), "the bad cookie was cleared");
    // Truncated garbage too, and a navigation goes to login again.
    b.jar.cookies.insert("oidc_session".into(), "AQ".into());
    let r = b.navigate("/x").await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/oauth2/login?rd=%2Fx");
    assert!(!b.jar.cookies.contains_key("oidc_session"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_clears_the_cookie_and_goes_to_end_session() {
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let s = start(&app_config(&provider, &upstream.url(), &cookie_session(""), "")).await;
    let mut b = Browser::new(&s);
    b.sign_in(&provider, "/").await;
    assert_eq!(b.fetch("/me").await.status(), 200);
    let r = b.navigate("/oauth2/logout").await;
    assert_eq!(r.status(), 302);
    let target = location(&r);
    assert!(target.starts_with(&format!("{}/logout?", provider.url())), "{target}");
    let q = query_of(&target);
    assert_eq!(q.get("post_logout_redirect_uri").map(String::as_str), Some("http://app.test/"));
    assert!(q.get("id_token_hint").is_some_and(|h| h.split('.').count() == 3), "{q:?}");
    assert_eq!(q.get("client_id").map(String::as_str), Some(oidc_testkit::TEST_CLIENT_ID));
    assert!(b.jar.session_cookies("oidc_session").is_empty(), "session cookie cleared");
    assert_eq!(b.fetch("/me").await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_and_bad_callbacks_are_pages_not_500s() {
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let s = start(&app_config(&provider, &upstream.url(), &cookie_session(""), "")).await;
    let mut b = Browser::new(&s);
    provider.set_authorize_error(Some("access_denied"));
    let r = b.navigate("/oauth2/login?rd=%2Fwanted").await;
    let r = client().get(location(&r)).send().await.unwrap();
    let back = location(&r);
    let r = b.navigate(&back["http://app.test".len()..]).await;
    assert_eq!(r.status(), 400);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains("access_denied"), "{html}");
    assert!(html.contains("href=\"/oauth2/login?rd=%2Fwanted\""), "retry goes back to the wanted page: {html}");
    assert!(!b.jar.cookies.keys().any(|k| k.starts_with("oidc_login_")), "pending login spent");
    provider.set_authorize_error(None);

    for q in ["code=bogus&state=bogus", "error=consent_required&state=x", ""] {
        let r = b.navigate(&format!("/oauth2/callback?{q}")).await;
        assert_eq!(r.status(), 400, "callback?{q}");
    }
    // A code replayed: the provider refuses it, the user gets a page.
    let r = b.navigate("/oauth2/login?rd=%2F").await;
    let r = client().get(location(&r)).send().await.unwrap();
    let callback = location(&r)["http://app.test".len()..].to_string();
    let saved = b.jar.clone();
    assert_eq!(b.navigate(&callback).await.status(), 302);
    b.jar = saved;
    let r = b.navigate(&callback).await;
    assert_eq!(r.status(), 400, "replayed code");
    assert!(r.text().await.unwrap().contains("invalid_grant"));
    // response_mode=form_post: the same answer arriving as a form body signs the user in.
    let r = b.navigate("/oauth2/login?rd=%2Fposted").await;
    let r = client().get(location(&r)).send().await.unwrap();
    let callback = location(&r);
    let form = callback.split_once('?').map(|(_, q)| q.to_string()).expect("callback query");
    let r = b
        .send(
            b.request(reqwest::Method::POST, "/oauth2/callback")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form),
        )
        .await;
    assert_eq!(r.status(), 302, "form_post callback");
    assert_eq!(location(&r), "/posted");
    // A form that is not a sign-in answer gets a page, not a 500.
    let r = b.send(b.request(reqwest::Method::POST, "/oauth2/callback").body("code=x&state=y")).await;
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_cross_site_post_with_the_session_is_refused() {
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let s = start(&app_config(&provider, &upstream.url(), &cookie_session(""), "")).await;
    let mut b = Browser::new(&s);
    b.sign_in(&provider, "/").await;
    let post = |origin: Option<&str>, b: &Browser| {
        let mut r = b.request(reqwest::Method::POST, "/items/new").header("content-type", "application/json").body("{}");
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r
    };
    let r = b.send(post(Some("http://evil.example"), &b)).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "csrf_refused");
    assert_eq!(b.send(post(None, &b)).await.status(), 403, "no Origin, no Sec-Fetch-Site");
    let r = b.send(post(Some("http://app.test"), &b)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(echo_of(r).await.method, "POST");
    let r = b.send(post(None, &b).header("sec-fetch-site", "same-origin")).await;
    assert_eq!(r.status(), 200);
    // An unauthenticated POST is a 401, never a redirect.
    let anon = Browser::new(&s);
    let r = client()
        .post(s.url("/items/new"))
        .header("host", HOST)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    drop(anon);
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_outlives_its_access_token_through_refresh() {
    let provider = provider_with(ProviderOptions { token_lifetime: 3, ..Default::default() }).await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let s = start(&app_config(&provider, &upstream.url(), &cookie_session("refresh_margin = \"1s\""), "forward_access_token = true"))
        .await;
    let mut b = Browser::new(&s);
    b.sign_in(&provider, "/").await;
    let first = echo_of(b.fetch("/items/1").await).await;
    let first_token = first.header("authorization").expect("forwarded access token").to_string();
    assert_eq!(provider.refresh_grant_count(), 0);

    // Past the access token's expiry: the request still passes, with a new token, after one refresh grant.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let r = b.fetch("/items/1").await;
    assert_eq!(r.status(), 200, "{}", s.logs());
    let refreshed = echo_of(r).await;
    assert!(provider.refresh_grant_count() >= 1, "the provider saw a refresh_token grant");
    let second_token = refreshed.header("authorization").expect("token").to_string();
    assert_ne!(first_token, second_token, "the upstream gets the new access token");
    assert_eq!(refreshed.header("x-auth-method"), Some("session"));
    assert_ne!(first.header("x-auth-assertion"), refreshed.header("x-auth-assertion"));

    // A refresh the provider refuses ends the session: API → 401 (cookie cleared), navigation → login.
    provider.set_refresh_fails(true);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let saved = b.jar.clone();
    let r = b.fetch("/items/1").await;
    assert_eq!(r.status(), 401);
    assert!(b.jar.session_cookies("oidc_session").is_empty(), "ended session's cookie cleared");
    b.jar = saved;
    let r = b.navigate("/items/1").await;
    assert_eq!(r.status(), 302);
    assert!(location(&r).starts_with("/oauth2/login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_requests_refresh_once() {
    let provider = provider_with(ProviderOptions { token_lifetime: 3, ..Default::default() }).await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let s = start(&app_config(&provider, &upstream.url(), &cookie_session("refresh_margin = \"1s\""), "")).await;
    let mut b = Browser::new(&s);
    b.sign_in(&provider, "/").await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let req = b.request(reqwest::Method::GET, "/items/1").header("accept", "application/json");
        tasks.push(tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 200);
    }
    assert_eq!(provider.refresh_grant_count(), 1, "one refresh for the burst (the provider rotates refresh tokens)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sidecars_with_the_same_keys_share_a_cookie_session() {
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let config = app_config(&provider, &upstream.url(), &cookie_session(""), "");
    let a = start(&config).await;
    let bside = start(&config).await;
    let mut b = Browser::new(&a);
    b.sign_in(&provider, "/").await;
    let mut on_b = b.on(&bside);
    assert_eq!(on_b.fetch("/me").await.status(), 200);

    // Key rotation: a task with [K2, K1] still opens K1 sessions; one with only K2 does not.
    let rotated = start(&app_config(&provider, &upstream.url(), &format!("keys = [\"{KEY2}\", \"{KEY1}\"]"), "")).await;
    assert_eq!(b.on(&rotated).fetch("/me").await.status(), 200);
    let only_new = start(&app_config(&provider, &upstream.url(), &format!("keys = [\"{KEY2}\"]"), "")).await;
    assert_eq!(b.on(&only_new).fetch("/me").await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sessions_are_shared_and_die_at_logout() {
    let redis = Redis::start().await;
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let config = app_config(&provider, &upstream.url(), &redis_session(redis.port(), ""), "");
    let a = start(&config).await;
    let other = start(&config).await;
    let mut b = Browser::new(&a);
    b.sign_in(&provider, "/").await;
    let cookies = b.jar.session_cookies("oidc_session");
    assert_eq!(cookies.len(), 1);
    assert_eq!(cookies[0].1.len(), 43, "the cookie holds only a random id");
    assert_eq!(b.fetch("/me").await.status(), 200);
    let copied = b.jar.clone();
    let mut on_other = b.on(&other);
    assert_eq!(on_other.fetch("/me").await.status(), 200, "second task reads the session from Redis");

    let r = on_other.navigate("/oauth2/logout").await;
    assert_eq!(r.status(), 302);
    assert!(on_other.jar.session_cookies("oidc_session").is_empty());
    for s in [&a, &other] {
        let mut old = Browser { sidecar: s, jar: copied.clone(), https: false, host: HOST };
        assert_eq!(old.fetch("/me").await.status(), 401, "a cookie copied before logout is dead");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_means_503_on_session_routes_while_bearer_works_and_recovers() {
    let mut redis = Redis::start().await;
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let s = start(&app_config(&provider, &upstream.url(), &redis_session(redis.port(), ""), "")).await;
    let mut b = Browser::new(&s);
    b.sign_in(&provider, "/").await;
    assert_eq!(b.fetch("/me").await.status(), 200);
    let token = provider.sign(provider.default_claims());

    redis.stop();
    let r = b.fetch("/me").await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert!(body["error_description"].as_str().unwrap_or_default().contains("Redis"), "{body}");
    let line = wait_for_log(&s, |l| l.contains("session store unavailable")).await;
    assert!(line.contains("WARN") && line.contains(&format!("127.0.0.1:{}", redis.port())), "the log names the store: {line}");
    let r = client().get(s.url("/items/1")).header("host", HOST).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200, "Bearer does not need Redis");
    let r = client().get(s.url("/public/x")).header("host", HOST).send().await.unwrap();
    assert_eq!(r.status(), 200, "public routes do not need Redis");

    redis.run().await;
    // Recovery is automatic; the connection manager may need a moment to reconnect.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut status = 0;
    while Instant::now() < deadline {
        status = b.fetch("/me").await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 200, "session back once Redis is; log:\n{}", s.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_in_200_groups_fits_in_chunked_cookies_or_one_redis_cookie() {
    let provider = provider_with(ProviderOptions { groups: 200, ..Default::default() }).await;
    let upstream = EchoUpstream::start().await.expect("upstream");

    let s = start(&app_config(&provider, &upstream.url(), &cookie_session(""), "")).await;
    let mut b = Browser::new(&s);
    b.sign_in(&provider, "/").await;
    let chunks = b.jar.session_cookies("oidc_session");
    assert!(chunks.len() >= 2, "split over several cookies: {:?}", chunks.iter().map(|c| &c.0).collect::<Vec<_>>());
    for (n, v) in &chunks {
        assert!(n.len() + v.len() < 4096, "{n} fits one cookie");
    }
    let total: usize = chunks.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    assert!(total < 16 * 1024, "Cookie header {total} B under the ALB limit");
    let r = b.fetch("/groups/x").await;
    assert_eq!(r.status(), 200, "group 150 of 200 is seen");
    drop(s);

    let redis = Redis::start().await;
    let s = start(&app_config(&provider, &upstream.url(), &redis_session(redis.port(), ""), "")).await;
    let mut b = Browser::new(&s);
    b.sign_in(&provider, "/").await;
    let cookies = b.jar.session_cookies("oidc_session");
    assert_eq!(cookies.len(), 1);
    assert!(cookies[0].1.len() < 100);
    assert_eq!(b.fetch("/groups/x").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_channel_logout_ends_the_session() {
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let s = start(&app_config(&provider, &upstream.url(), &cookie_session(""), "")).await;
    let mut b = Browser::new(&s);
    b.sign_in(&provider, "/").await;
    // The cookie store's limit (README): a call that carries no cookie (a cross-site iframe with a Lax cookie)
    // cannot find a session that lives only in the browser; it still answers the provider's iframe.
    let sid = provider.last_sid().expect("a provider session");
    let cookieless = format!("/oauth2/frontchannel-logout?iss={}&sid={sid}", provider.issuer());
    let r = client().get(s.url(&cookieless)).header("host", HOST).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(b.fetch("/me").await.status(), 200, "cookie store: nothing to end without the cookie");
    // Same-site iframe: the cookie comes along and the session ends.
    let r = b.navigate(&cookieless).await;
    assert_eq!(r.status(), 200);
    assert!(b.jar.session_cookies("oidc_session").is_empty());
    assert_eq!(b.fetch("/me").await.status(), 401);

    // Redis: the provider's `sid` ends the session even when the iframe carries no cookie.
    let redis = Redis::start().await;
    let s = start(&app_config(&provider, &upstream.url(), &redis_session(redis.port(), ""), "")).await;
    let mut b = Browser::new(&s);
    b.sign_in(&provider, "/").await;
    assert_eq!(b.fetch("/me").await.status(), 200);
    let sid = provider.last_sid().expect("a provider session");
    let r = client()
        .get(s.url(&format!("/oauth2/frontchannel-logout?iss={}&sid={sid}", provider.issuer())))
        .header("host", HOST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(b.fetch("/me").await.status(), 401, "session of provider sid {sid} ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_refreshes_once_across_two_tasks() {
    let redis = Redis::start().await;
    let provider = provider_with(ProviderOptions { token_lifetime: 3, ..Default::default() }).await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let config = app_config(&provider, &upstream.url(), &redis_session(redis.port(), "refresh_margin = \"1s\""), "");
    let a = start(&config).await;
    let other = start(&config).await;
    let mut b = Browser::new(&a);
    b.sign_in(&provider, "/").await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let on_other = b.on(&other);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let req = if i % 2 == 0 { b.request(reqwest::Method::GET, "/items/1") } else { on_other.request(reqwest::Method::GET, "/items/1") };
        let req = req.header("accept", "application/json");
        tasks.push(tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 200);
    }
    assert_eq!(provider.refresh_grant_count(), 1, "one refresh across both tasks; logs:\n{}\n{}", a.logs(), other.logs());
    // Both tasks now serve the refreshed session without another grant.
    let mut b2 = b.on(&other);
    assert_eq!(b2.fetch("/items/2").await.status(), 200);
    assert_eq!(b.fetch("/items/2").await.status(), 200);
    assert_eq!(provider.refresh_grant_count(), 1);
}

/// The first log line matching `f`, waiting for the sidecar's log writer to get it to the file.
async fn wait_for_log(s: &Sidecar, f: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(l) = s.logs().lines().find(|l| f(l)) {
            return l.to_string();
        }
        assert!(Instant::now() < deadline, "no such log line:\n{}", s.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fetches `/me` every `every` for `for_`, asserting each answer; returns how many requests were made.
async fn keep_fetching(b: &mut Browser<'_>, every: Duration, for_: Duration, want: u16) -> usize {
    let end = Instant::now() + for_;
    let mut n = 0;
    while Instant::now() < end {
        tokio::time::sleep(every).await;
        let r = b.fetch("/me").await;
        assert_eq!(r.status().as_u16(), want, "request {n} at {:?} before the end", end.saturating_duration_since(Instant::now()));
        n += 1;
    }
    n
}

/// Runs the inactivity/absolute-lifetime scenario on one store: an active session outlives its 3 s inactivity
/// timeout (each request slides it: a new cookie, or a longer Redis TTL), an idle one ends, and activity does not
/// stretch a session past its absolute lifetime.
async fn inactivity_and_absolute_lifetime(session: String, redis: Option<&Redis>) {
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let s = start(&app_config(&provider, &upstream.url(), &session, "")).await;

    // Active for 7 s (more than twice the 3 s inactivity timeout): every request within it is served.
    let mut b = Browser::new(&s);
    b.sign_in(&provider, "/").await;
    let first_cookie = b.jar.session_cookies("oidc_session");
    let sets_before = b.jar.lines.len();
    keep_fetching(&mut b, Duration::from_millis(700), Duration::from_secs(7), 200).await;
    if redis.is_none() {
        assert!(b.jar.lines.len() > sets_before, "the cookie store re-issues the cookie as the session slides");
        assert_ne!(b.jar.session_cookies("oidc_session"), first_cookie, "a fresher sealed session");
    } else {
        assert_eq!(b.jar.session_cookies("oidc_session"), first_cookie, "with Redis the id cookie stays");
    }
    // Idle for longer than the inactivity timeout: the session is over (API → 401, navigation → login).
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(b.fetch("/me").await.status(), 401, "idle past the inactivity timeout; log:\n{}", s.logs());
    let r = b.navigate("/me").await;
    assert_eq!(r.status(), 302);
    assert!(location(&r).starts_with("/oauth2/login?rd="), "{}", location(&r));
    if let Some(redis) = redis {
        // The ended session left nothing behind in Redis either (its TTL ran out or it was deleted).
        let keys = redis_keys(redis.port(), "oidc-sidecar:s:*");
        assert!(keys.is_empty(), "no session left in Redis: {keys:?}");
    }

    // Absolute lifetime 9 s: a session used every 700 ms still ends between 9 and 10 s after sign-in.
    let mut b = Browser::new(&s);
    let signed_in = Instant::now();
    b.sign_in(&provider, "/").await;
    keep_fetching(&mut b, Duration::from_millis(700), Duration::from_secs(6), 200).await;
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(signed_in.elapsed())).await;
    assert_eq!(b.fetch("/me").await.status(), 401, "active, but past the absolute lifetime");
}

/// The keys of DB 0 of a private Redis matching `pattern`, read with `redis-cli`.
fn redis_keys(port: u16, pattern: &str) -> Vec<String> {
    let out = Command::new("redis-cli").args(["-p", &port.to_string(), "--raw", "keys", pattern]).output().expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inactivity_timeout_slides_with_use_and_absolute_lifetime_does_not_cookie_store() {
    inactivity_and_absolute_lifetime(cookie_session("inactivity_timeout = \"3s\"\nmax_lifetime = \"9s\""), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inactivity_timeout_slides_with_use_and_absolute_lifetime_does_not_redis_store() {
    let redis = Redis::start().await;
    let session = redis_session(redis.port(), "inactivity_timeout = \"3s\"\nmax_lifetime = \"9s\"");
    inactivity_and_absolute_lifetime(session, Some(&redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_too_large_for_cookies_says_redis_at_login() {
    let provider = provider_with(ProviderOptions { groups: 200, ..Default::default() }).await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let s = start(&app_config(&provider, &upstream.url(), &cookie_session("max_cookie_bytes = 4000"), "")).await;
    let mut b = Browser::new(&s);
    let r = b.navigate("/deep").await;
    let login = location(&r);
    let r = b.navigate(&login).await;
    let r = client().get(location(&r)).send().await.expect("provider");
    let back = location(&r);
    let r = b.navigate(&back[format!("http://{HOST}").len()..]).await;

    // 500: the operator's setting cannot hold this user's session (and the ALB's 5xx alarm should see it).
    assert_eq!(r.status(), 500, "no session, no redirect");
    assert!(r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().starts_with("text/html"));
    let page = r.text().await.unwrap();
    assert!(page.contains("store = &quot;redis&quot;") || page.contains("store = \"redis\""), "the page names the fix: {page}");
    assert!(b.jar.session_cookies("oidc_session").is_empty(), "no session cookie: {:?}", b.jar.cookies.keys());
    assert!(!b.jar.cookies.keys().any(|k| k.starts_with("oidc_login_")), "the pending login is cleared");
    let line = wait_for_log(&s, |l| l.contains("too large for cookies")).await;
    assert!(line.contains("session.store = \\\"redis\\\"") && line.contains("\"groups\":200"), "the log names the fix and why: {line}");
    assert_eq!(b.fetch("/deep").await.status(), 401);
}

/// `app.example.test` signs in; `api.example.test` (login = "deny", the app's origin allowed) accepts the same
/// session through a `Domain` cookie, as two ECS services behind one ALB would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_share_one_session_through_the_cookie_domain() {
    const APP: &str = "app.example.test";
    const API: &str = "api.example.test";
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let session = cookie_session("cookie_name = \"__Secure-oidc_session\"\ncookie_domain = \"example.test\"");
    let config = app_config(&provider, &upstream.url(), &session, "").replace(&format!("name = \"{HOST}\""), &format!("name = \"{APP}\""))
        + &format!(
            r#"
[[hosts]]
name = "{API}"
upstream = "{}"
login = "deny"
allowed_origins = ["https://{APP}"]
[[hosts.routes]]
path = "/"
access = "authenticated"
"#,
            upstream.url()
        );
    let s = Sidecar::start(&config).await;
    wait_ready_on(&s, APP).await;

    let mut app = Browser::new(&s);
    app.https = true;
    app.host = APP;
    assert_eq!(app.sign_in(&provider, "/home").await, "/home");
    let line = app.jar.lines.iter().rev().find(|l| l.starts_with("__Secure-oidc_session=")).expect("session cookie").clone();
    for flag in ["Domain=example.test", "Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(line.contains(flag), "{flag} in {line}");
    }

    // The browser sends the Domain cookie to the API host too.
    let mut api = app.on(&s);
    api.host = API;
    let r = api.fetch("/orders").await;
    assert_eq!(r.status(), 200, "the API host accepts the app's session");
    let echo = echo_of(r).await;
    assert_eq!(echo.header("x-auth-method"), Some("session"));
    assert_eq!(echo.header("x-auth-subject"), Some(oidc_testkit::TEST_OID));
    assert_eq!(echo.header("x-forwarded-host"), Some(API));
    // A write from the app's pages (cross-origin, allowed) passes CSRF; from any other origin it does not.
    let post = |origin: &str| {
        api.request(reqwest::Method::POST, "/orders")
            .header("origin", origin)
            .header("content-type", "application/json")
            .body("{}")
    };
    let allowed = post(&format!("https://{APP}")).send().await.unwrap();
    assert_eq!(allowed.status(), 200, "allowed origin");
    let refused = post("https://evil.example.net").send().await.unwrap();
    assert_eq!(refused.status(), 403, "foreign origin");
    // An API host with login = "deny" never redirects a navigation to the provider.
    let mut anon = Browser::new(&s);
    anon.host = API;
    anon.https = true;
    assert_eq!(anon.navigate("/orders").await.status(), 401);

    // Logout on the app clears the Domain cookie (same Domain attribute), so the API host sees no session.
    let r = app.navigate("/oauth2/logout").await;
    assert_eq!(r.status(), 302);
    let removal = app.jar.lines.iter().rev().find(|l| l.starts_with("__Secure-oidc_session=")).expect("removal").clone();
    assert!(removal.contains("Max-Age=0") && removal.contains("Domain=example.test"), "{removal}");
    let mut api = app.on(&s);
    api.host = API;
    assert_eq!(api.fetch("/orders").await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cors_preflight_reaches_the_app_without_credentials_or_identity() {
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let s = start(&app_config(&provider, &upstream.url(), &cookie_session(""), "")).await;
    let preflight = |b: &Browser<'_>| {
        b.request(reqwest::Method::OPTIONS, "/items/1")
            .header("origin", "https://spa.example.net")
            .header("access-control-request-method", "DELETE")
            .header("access-control-request-headers", "content-type")
            .header("x-auth-subject", "spoofed")
    };

    // Without any session: the preflight is not refused (a browser never sends credentials with it).
    let anon = Browser::new(&s);
    let r = preflight(&anon).send().await.unwrap();
    assert_eq!(r.status(), 200, "answered by the app, not 401");
    let echo = echo_of(r).await;
    assert_eq!(echo.method, "OPTIONS");
    assert_eq!(echo.header("access-control-request-method"), Some("DELETE"));
    assert!(echo.headers.keys().all(|k| !k.starts_with("x-auth-")), "no identity, spoofed or ours: {:?}", echo.headers.keys());

    // With a session cookie: still no identity and no session cookie for the app.
    let mut b = Browser::new(&s);
    b.sign_in(&provider, "/").await;
    let r = preflight(&b).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let echo = echo_of(r).await;
    assert!(echo.headers.keys().all(|k| !k.starts_with("x-auth-")), "{:?}", echo.headers.keys());
    assert!(echo.header("cookie").is_none_or(|c| !c.contains("oidc_session")), "{:?}", echo.header("cookie"));

    // An OPTIONS that is not a preflight is an ordinary request: no session → 401.
    let r = anon.request(reqwest::Method::OPTIONS, "/items/1").header("accept", "application/json").send().await.unwrap();
    assert_eq!(r.status(), 401);
}

/// Opens the cookie-store session a browser holds with the sidecar's own code and the same config.
async fn open_session(config: &str, jar: &Jar) -> oidc_sidecar::session::SessionData {
    use oidc_sidecar::session::{CookieMap, KeyRing, SessionStore};
    let text = config.replace("{LISTEN}", "127.0.0.1:1").replace("{ADMIN}", "127.0.0.1:2");
    let cfg = oidc_sidecar::config::load_str(&text, std::path::Path::new("test.toml")).expect("config");
    let ring = KeyRing::from_config(&cfg.session).expect("keys");
    let store = SessionStore::new(&cfg.session, std::sync::Arc::new(ring)).expect("store");
    let data = store.load(&CookieMap::parse(&jar.header()), false).await.expect("opens").expect("a session");
    (*data).clone()
}

/// What a session keeps: the claims policies and headers use, the refresh token, the ID token only as a logout hint
/// that fits, and the access token only for a host that forwards it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_keeps_only_what_it_needs() {
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.expect("upstream");

    let plain = app_config(&provider, &upstream.url(), &cookie_session(""), "");
    let s = start(&plain).await;
    let mut b = Browser::new(&s);
    b.sign_in(&provider, "/").await;
    let d = open_session(&plain, &b.jar).await;
    assert!(d.access_token.is_none(), "no host forwards it: not kept");
    assert!(d.access_expires_at.is_some(), "its expiry is, for refresh");
    assert!(d.refresh_token.is_some());
    assert!(d.id_token.as_deref().is_some_and(|t| t.split('.').count() == 3), "small ID token kept as the logout hint");
    let extra: Vec<&String> =
        d.claims.keys().filter(|k| !oidc_sidecar::session::DEFAULT_KEPT_CLAIMS.contains(&k.as_str())).collect();
    assert!(extra.is_empty(), "only the claims policies and headers use: {extra:?}");
    for gone in ["nonce", "aud", "iss", "exp", "iat", "azp"] {
        assert!(!d.claims.contains_key(gone), "{gone} is not kept");
    }
    assert_eq!(d.claim_str("scp"), Some("user.read"), "the access token's scopes are");
    drop(s);

    let forwarding = app_config(&provider, &upstream.url(), &cookie_session(""), "forward_access_token = true");
    let s = start(&forwarding).await;
    let mut b = Browser::new(&s);
    b.sign_in(&provider, "/").await;
    let d = open_session(&forwarding, &b.jar).await;
    let token = d.access_token.clone().expect("kept for forwarding");
    let echo = echo_of(b.fetch("/me").await).await;
    assert_eq!(echo.header("authorization"), Some(format!("Bearer {token}").as_str()), "the kept token is what is sent");
    drop(s);

    // 200 groups make an ID token too large to carry as a hint in cookies: it is dropped (logout then names the
    // client instead), while the session itself is still chunked into cookies.
    let big = provider_with(ProviderOptions { groups: 200, ..Default::default() }).await;
    let groups = app_config(&big, &upstream.url(), &cookie_session(""), "");
    let s = start(&groups).await;
    let mut b = Browser::new(&s);
    b.sign_in(&big, "/").await;
    let d = open_session(&groups, &b.jar).await;
    assert!(d.id_token.is_none(), "a large ID token is not kept in cookies");
    assert_eq!(d.claims.get("groups").and_then(Value::as_array).map(Vec::len), Some(200));
    let r = b.navigate("/oauth2/logout").await;
    let q = query_of(&location(&r));
    assert!(!q.contains_key("id_token_hint"), "{q:?}");
    assert_eq!(q.get("client_id").map(String::as_str), Some(oidc_testkit::TEST_CLIENT_ID));
}

/// `exp` of a JWT, read without verifying (the upstream's copy of what the provider issued).
fn jwt_exp(bearer: &str) -> u64 {
    use base64::Engine as _;
    let token = bearer.trim_start_matches("Bearer ");
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    let v: Value = serde_json::from_slice(&bytes).expect("JSON claims");
    v["exp"].as_u64().expect("exp")
}

/// The refresh happens `refresh_margin` before the access token expires, not after: the app never receives a token
/// about to lapse mid-request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_token_is_refreshed_within_the_margin_before_it_expires() {
    let provider = provider_with(ProviderOptions { token_lifetime: 12, ..Default::default() }).await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let config = app_config(&provider, &upstream.url(), &cookie_session("refresh_margin = \"9s\""), "forward_access_token = true");
    let s = start(&config).await;
    let mut b = Browser::new(&s);
    b.sign_in(&provider, "/").await;
    let first = echo_of(b.fetch("/me").await).await.header("authorization").expect("token").to_string();
    assert_eq!(provider.refresh_grant_count(), 0, "a fresh token is used as is");

    // 4 s later the token has 8 s left: inside the 9 s margin, so this request refreshes first.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(jwt_exp(&first) > now + 5, "the old token is still valid for a while");
    let second = echo_of(b.fetch("/me").await).await.header("authorization").expect("token").to_string();
    assert_eq!(provider.refresh_grant_count(), 1, "refreshed before expiry; log:\n{}", s.logs());
    assert_ne!(first, second, "the app gets the new token");
    assert!(jwt_exp(&second) > jwt_exp(&first));

    // The new token is outside the margin again: no second grant.
    let third = echo_of(b.fetch("/me").await).await.header("authorization").expect("token").to_string();
    assert_eq!(third, second);
    assert_eq!(provider.refresh_grant_count(), 1);
}
