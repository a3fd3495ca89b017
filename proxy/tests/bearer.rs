//! The Bearer path end to end, over real sockets: the `oidc-sidecar` binary in front of the testkit's OpenID
//! provider and an echo upstream.

mod common;

use std::time::Duration;

use common::*;
use jsonwebtoken::{decode, decode_header, jwk::JwkSet, DecodingKey, Validation};
use oidc_testkit::{now, unsigned_token, TestProvider};
use serde_json::{json, Value};

const HOST: &str = "api.test";

async fn setup() -> (TestProvider, EchoUpstream, Sidecar) {
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.expect("upstream");
    let sidecar = Sidecar::start(&api_config(&provider, &upstream.url(), "")).await;
    (provider, upstream, sidecar)
}

fn www_authenticate(r: &reqwest::Response) -> String {
    r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

async fn get(s: &Sidecar, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = client().get(s.url(path)).header("host", HOST);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request")
}

/// Expects a 401 `invalid_token` whose description contains `needle`, in the header and the JSON body.
async fn expect_invalid(s: &Sidecar, token: &str, needle: &str) {
    let r = get(s, "/items", Some(token)).await;
    assert_eq!(r.status(), 401, "token should be refused for {needle}");
    let challenge = www_authenticate(&r);
    assert!(challenge.starts_with("Bearer realm=\"api.test\""), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.to_lowercase().contains(&needle.to_lowercase()), "challenge {challenge:?} lacks {needle:?}");
    let body: Value = r.json().await.expect("json body");
    assert_eq!(body["error"], "invalid_token");
    assert!(body["error_description"].as_str().unwrap_or_default().to_lowercase().contains(&needle.to_lowercase()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_token_reaches_upstream_with_verifiable_identity() {
    let (provider, upstream, sidecar) = setup().await;
    let token = provider.sign(provider.default_claims());

    let r = client()
        .get(sidecar.url("/items?x=1"))
        .header("host", HOST)
        .bearer_auth(&token)
        .header("X-Auth-Subject", "spoofed-admin")
        .header("x-auth-roles", "Admin")
        .header("OIDC_CLAIM_roles", "Admin")
        // As the ALB (a trusted peer here) sends them: the gateway writes its own in their place.
        .header("X-Forwarded-For", "203.0.113.7")
        .header("X-Forwarded-Proto", "http")
        .header("X-Forwarded-Port", "80")
        // What a CGI-style server would read as the client address: it must not reach the app beside ours.
        .header("X_Forwarded_For", "6.6.6.6")
        .header("Forwarded", "for=6.6.6.6;proto=https;host=evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo = echo_of(r).await;
    assert_eq!(echo.path, "/items?x=1");
    assert_eq!(echo.headers["x-forwarded-for"], ["203.0.113.7, 127.0.0.1"], "the chain, replaced, not appended to");
    assert_eq!(echo.headers["x-forwarded-proto"], ["http"]);
    assert_eq!(echo.headers["x-forwarded-host"], [HOST]);
    // The port the external URL used (here the trusted peer's, as the ALB sends it), once.
    assert_eq!(echo.headers["x-forwarded-port"], ["80"]);
    assert!(echo.header("x_forwarded_for").is_none(), "{:?}", echo.raw_names);
    assert!(echo.header("forwarded").is_none(), "{:?}", echo.raw_names);
    assert_eq!(echo.header("x-auth-subject"), Some(oidc_testkit::TEST_OID));
    assert_eq!(echo.headers["x-auth-subject"].len(), 1, "spoofed value must be gone, not appended");
    assert_eq!(echo.header("x-auth-roles"), Some("Reader"));
    assert!(echo.header("oidc_claim_roles").is_none());
    assert_eq!(echo.header("x-auth-scopes"), Some("user.read"));
    assert_eq!(echo.header("x-auth-tenant"), Some(provider.tenant().as_str()));
    assert_eq!(echo.header("x-auth-method"), Some("bearer"));
    assert_eq!(echo.header("x-auth-name"), Some("Test User"));
    assert_eq!(echo.header("x-auth-email"), Some("test.user@example.com"));
    assert_eq!(echo.header("authorization"), Some(format!("Bearer {token}").as_str()));
    assert_eq!(echo.header("x-forwarded-proto"), Some("http"));
    // Identity and forwarding headers go out once each, their names lower-case on the wire (flow::upstream).
    for name in ["x-auth-subject", "x-auth-roles", "x-auth-method", "x-auth-assertion", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-port"] {
        assert_eq!(echo.raw_names.iter().filter(|n| *n == name).count(), 1, "{name}: {:?}", echo.raw_names);
    }

    // The assertion verifies against the admin listener's JWKS, and only with the right audience.
    let assertion = echo.header("x-auth-assertion").expect("assertion").to_string();
    let jwks: JwkSet = client().get(sidecar.admin_url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let header = decode_header(&assertion).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let jwk = jwks.find(header.kid.as_deref().expect("kid")).expect("kid in admin JWKS");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut v = Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[HOST]);
    v.set_issuer(&["oidc-sidecar"]);
    let claims = decode::<Value>(&assertion, &key, &v).expect("assertion verifies").claims;
    assert_eq!(claims["sub"], oidc_testkit::TEST_OID);
    assert_eq!(claims["roles"], json!(["Reader"]));
    let mut wrong = Validation::new(jsonwebtoken::Algorithm::ES256);
    wrong.set_audience(&["other.host"]);
    assert!(decode::<Value>(&assertion, &key, &wrong).is_err());

    // Seen again: the same assertion comes from the cache (no new signature).
    let r2 = get(&sidecar, "/items", Some(&token)).await;
    let echo2 = echo_of(r2).await;
    assert_eq!(echo2.header("x-auth-assertion"), Some(assertion.as_str()));
    assert_eq!(upstream.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_their_reason() {
    let (provider, _upstream, sidecar) = setup().await;
    let base = provider.default_claims();

    // No token: 401 with only the realm.
    let r = get(&sidecar, "/items", None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(www_authenticate(&r), "Bearer realm=\"api.test\"");

    let mut c = base.clone();
    c["exp"] = json!(now() - 300);
    expect_invalid(&sidecar, &provider.sign(c), "expired").await;

    let mut c = base.clone();
    c["aud"] = json!("api://someone-else");
    expect_invalid(&sidecar, &provider.sign(c), "api://someone-else").await;

    let mut c = base.clone();
    c["aud"] = json!(["api://a", "api://b"]);
    expect_invalid(&sidecar, &provider.sign(c), "audience").await;

    let mut c = base.clone();
    c["iss"] = json!("https://evil.example/v2.0");
    expect_invalid(&sidecar, &provider.sign(c), "issuer").await;

    let mut c = base.clone();
    c["tid"] = json!("00000000-0000-0000-0000-00000000dead");
    expect_invalid(&sidecar, &provider.sign(c), "tenant").await;

    let mut c = base.clone();
    c["nbf"] = json!(now() + 3600);
    expect_invalid(&sidecar, &provider.sign(c), "not").await;

    expect_invalid(&sidecar, &unsigned_token("none", &base), "none").await;
    expect_invalid(&sidecar, &provider.sign_with_header(json!({"alg":"RS256","kid":"no-such-kid","typ":"JWT"}), base.clone()), "no-such-kid").await;
    expect_invalid(
        &sidecar,
        &provider.sign_with_header(json!({"alg":"RS256","kid":provider.current_kid(),"jku":"https://evil.example/jwks"}), base.clone()),
        "jku",
    )
    .await;

    // A Microsoft Graph token: says so, and which audience to ask for.
    let mut c = base.clone();
    c["aud"] = json!("00000003-0000-0000-c000-000000000000");
    let graph = provider.sign_with_header(json!({"alg":"RS256","kid":provider.current_kid(),"nonce":"abc"}), c);
    let r = get(&sidecar, "/items", Some(&graph)).await;
    assert_eq!(r.status(), 401);
    let challenge = www_authenticate(&r);
    assert!(challenge.contains("Graph"), "{challenge}");
    assert!(challenge.contains(&provider.audience()), "{challenge}");

    // Tampered signature.
    let good = provider.sign(base.clone());
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    let mut payload: Value = serde_json::from_slice(&base64_decode(&parts[1])).unwrap();
    payload["roles"] = json!(["Admin"]);
    parts[1] = base64_encode(&serde_json::to_vec(&payload).unwrap());
    expect_invalid(&sidecar, &parts.join("."), "signature").await;

    // Two Authorization headers; a token in the query string.
    let r = client()
        .get(sidecar.url("/items"))
        .header("host", HOST)
        .header("authorization", format!("Bearer {good}"))
        .header("authorization", format!("Bearer {good}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(www_authenticate(&r).contains("invalid_request"));
    let r = get(&sidecar, &format!("/items?access_token={good}"), None).await;
    assert_eq!(r.status(), 401);
    assert!(www_authenticate(&r).contains("query string"));

    // Valid token, missing claims: 403 insufficient_scope naming what is required.
    let r = get(&sidecar, "/admin/users", Some(&good)).await;
    assert_eq!(r.status(), 403);
    let challenge = www_authenticate(&r);
    assert!(challenge.contains("insufficient_scope") && challenge.contains("Admin"), "{challenge}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");

    let mut c = base.clone();
    c["scp"] = json!("other.scope");
    let r = get(&sidecar, "/items", Some(&provider.sign(c))).await;
    assert_eq!(r.status(), 403);
    assert!(www_authenticate(&r).contains("scope=\"user.read\""), "{}", www_authenticate(&r));

    // Group overage on a group route: refused, and the reason says why.
    let mut c = base.clone();
    c["_claim_names"] = json!({"groups": "src1"});
    c["_claim_sources"] = json!({"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/x/getMemberObjects"}});
    let r = get(&sidecar, "/groups/x", Some(&provider.sign(c))).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert!(body["error_description"].as_str().unwrap().contains("overage"), "{body}");

    // The right role passes.
    let mut c = base.clone();
    c["roles"] = json!(["Admin"]);
    assert_eq!(get(&sidecar, "/admin/users", Some(&provider.sign(c))).await.status(), 200);

    // No token in the logs, ever. (Lines are buffered for up to 100 ms: wait for the access log to show.)
    let mut logs = sidecar.logs();
    for _ in 0..50 {
        if logs.contains("\"decision\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        logs = sidecar.logs();
    }
    assert!(!logs.contains(&good), "a token was logged");
    assert!(logs.contains("\"decision\""), "access log lines are JSON with a decision: {logs}");

    // The access line of the last request, field by field (written by hand, see telemetry::access).
    let mut line: Option<Value> = None;
    for _ in 0..50 {
        line = sidecar
            .logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .rfind(|v| v["target"] == "access" && v["path"] == "/admin/users" && v["status"] == 200);
        if line.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let line = line.expect("an access line for GET /admin/users 200");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["host"], HOST);
    assert_eq!(line["auth"], "bearer");
    assert_eq!(line["decision"], "allow");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["message"], "request");
    assert_eq!(line["subject"], base["oid"], "{line}");
    assert!(line["route_line"].as_u64().is_some_and(|l| l > 0), "{line}");
    assert!(line["latency_ms"].as_f64().is_some_and(|ms| ms >= line["upstream_ms"].as_f64().unwrap()), "{line}");
    assert!(line["timestamp"].as_str().is_some_and(|t| t.len() == 27 && t.ends_with('Z')), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_is_fail_closed_and_path_spellings_cannot_bypass_rules() {
    let (provider, upstream, sidecar) = setup().await;
    let reader = provider.sign(provider.default_claims());

    // Public route: no token needed, and spoofed identity never arrives.
    let r = client()
        .get(sidecar.url("/public/info"))
        .header("host", HOST)
        .header("X-Auth-Subject", "admin")
        .header("X-AUTH-ROLES", "Admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo = echo_of(r).await;
    assert!(echo.headers.keys().all(|k| !k.starts_with("x-auth-")), "{:?}", echo.headers);

    // Spellings that would reach /admin/ through the public prefix are judged as /admin/.
    for path in ["/public/../admin/users", "/public/%2e%2e/admin/users", "//admin/users", "/public/./../admin/users"] {
        let r = get(&sidecar, path, Some(&reader)).await;
        assert_eq!(r.status(), 403, "{path} must be judged by the /admin/ rule");
    }
    for path in ["/public%2f..%2fadmin/users", "/public/..%5cadmin"] {
        let r = get(&sidecar, path, Some(&reader)).await;
        assert_eq!(r.status(), 400, "{path} must be refused");
    }
    // A raw backslash (an HTTP client library would rewrite it, so over a plain socket).
    assert_eq!(raw_status(sidecar.port, "/public\\..\\admin/users", &reader).await, 400);
    // Nothing of the above reached the upstream.
    assert_eq!(upstream.requests().len(), 1);

    // The upstream sees the normalized path.
    let r = get(&sidecar, "/public//a/./b/../c", None).await;
    assert_eq!(echo_of(r).await.path, "/public/a/c");

    // Unknown host: denied. Health: any host.
    let r = client().get(sidecar.url("/items")).header("host", "other.test").bearer_auth(&reader).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = client().get(sidecar.url("/healthz")).header("host", "10.0.3.17").send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_is_picked_up_by_refetch() {
    let (provider, _upstream, sidecar) = setup().await;
    let old = provider.sign(provider.default_claims());
    assert_eq!(get(&sidecar, "/items", Some(&old)).await.status(), 200);
    let fetches = provider.jwks_fetch_count();

    let new_kid = provider.rotate_key();
    let fresh = provider.sign(provider.default_claims());
    assert_eq!(decode_header(&fresh).unwrap().kid.as_deref(), Some(new_kid.as_str()));
    assert_eq!(get(&sidecar, "/items", Some(&fresh)).await.status(), 200, "new kid → refetch → 200");
    assert!(provider.jwks_fetch_count() > fetches);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_down_at_start_then_up_and_down_later() {
    let provider = TestProvider::start().await;
    provider.set_down(true);
    let upstream = EchoUpstream::start().await.unwrap();
    let sidecar = Sidecar::start(&api_config(&provider, &upstream.url(), "")).await;
    let token = provider.sign(provider.default_claims());

    // Starts anyway: public routes work, protected ones answer 503 with the reason.
    assert_eq!(get(&sidecar, "/public/x", None).await.status(), 200);
    let r = get(&sidecar, "/items", Some(&token)).await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert!(body["error_description"].as_str().unwrap().contains("cannot verify tokens yet"), "{body}");

    // Provider back: keys load (retry with backoff) and the token passes.
    provider.set_down(false);
    let mut status = 0;
    for _ in 0..100 {
        status = get(&sidecar, "/items", Some(&token)).await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 200, "keys never loaded after the provider came back");

    // Down again later: the cached keys keep serving (a fresh token, so no verified-token cache hit).
    provider.set_down(true);
    let mut c = provider.default_claims();
    c["jti"] = json!("another");
    assert_eq!(get(&sidecar, "/items", Some(&provider.sign(c))).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_refused_is_502_and_timeout_is_504() {
    let provider = TestProvider::start().await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let sidecar = Sidecar::start(&api_config(&provider, &dead, "")).await;
    let r = get(&sidecar, "/public/x", None).await;
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "bad_gateway");

    let upstream = EchoUpstream::start().await.unwrap();
    let sidecar = Sidecar::start(&api_config(&provider, &upstream.url(), "")).await;
    let r = get(&sidecar, "/public/slow/4000", None).await;
    assert_eq!(r.status(), 504);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "upstream_timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_request() {
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.unwrap();
    let mut sidecar = Sidecar::start(&api_config(&provider, &upstream.url(), "")).await;
    let token = provider.sign(provider.default_claims());

    let mut inflight = Vec::new();
    for i in 0..20 {
        let url = sidecar.url(&format!("/slow/1500?i={i}"));
        let token = token.clone();
        inflight.push(tokio::spawn(async move {
            client().get(url).header("host", HOST).bearer_auth(token).send().await.map(|r| r.status().as_u16())
        }));
    }
    // Let every request reach the upstream, then ask the sidecar to stop. Up to 10 s: a debug build on a busy
    // two-core machine (CI builds and tests in parallel) can take seconds to verify the first token.
    for _ in 0..500 {
        if upstream.requests().len() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(upstream.requests().len(), 20);
    sidecar.sigterm();
    for h in inflight {
        assert_eq!(h.await.unwrap().expect("in-flight request completed"), 200);
    }
    let status = sidecar.wait_exit(Duration::from_secs(15)).await.expect("exited within grace + timeout");
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_and_verifications() {
    let (provider, _upstream, sidecar) = setup().await;
    let token = provider.sign(provider.default_claims());
    assert_eq!(get(&sidecar, "/items", Some(&token)).await.status(), 200);
    assert_eq!(get(&sidecar, "/items", None).await.status(), 401);
    // Metrics are recorded in the logging phase, just after the answer is written: poll until both requests show.
    let mut text = String::new();
    for _ in 0..50 {
        text = client().get(sidecar.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
        if text.contains("decision=\"unauthenticated\"") && text.contains("decision=\"allow\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(text.contains("oidc_sidecar_requests_total{decision=\"allow\",host=\"api.test\",status=\"200\"}"), "{text}");
    assert!(text.contains("decision=\"unauthenticated\""), "{text}");
    assert!(text.contains("oidc_sidecar_token_verifications_total"), "{text}");
    assert!(text.contains("oidc_sidecar_jwks_fetches_total{result=\"ok\"}"), "{text}");
    assert!(text.contains("oidc_sidecar_request_duration_seconds_bucket"), "{text}");
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Sends one request with the path exactly as given and returns the status code.
async fn raw_status(port: u16, path: &str, token: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mod_auth_openidc_claim_headers_for_migrated_apps() {
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.unwrap();
    let sidecar = Sidecar::start(&api_config(
        &provider,
        &upstream.url(),
        "claim_headers = \"mod_auth_openidc\"\nforward_authorization = false",
    ))
    .await;
    let token = provider.sign(provider.default_claims());
    let r = client()
        .get(sidecar.url("/items"))
        .header("host", HOST)
        .bearer_auth(&token)
        .header("OIDC_CLAIM_roles", "Admin")
        .header("oidc-claim-email", "spoof@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo = echo_of(r).await;
    // Claims the way mod_auth_openidc names them; arrays joined with ",".
    assert_eq!(echo.header("oidc_claim_roles"), Some("Reader"));
    assert_eq!(echo.headers["oidc_claim_roles"].len(), 1);
    assert_eq!(echo.header("oidc_claim_tid"), Some(provider.tenant().as_str()));
    assert_eq!(echo.header("oidc_claim_scp"), Some("user.read"));
    assert!(echo.header("oidc-claim-email").is_none(), "a spoofed OIDC header must not survive");
    // On the wire in lower case, as an HTTP/2 hop would send them (flow::upstream says why).
    for name in ["oidc_claim_roles", "oidc_claim_tid", "oidc_claim_scp", "x-auth-method"] {
        assert!(echo.raw_names.iter().any(|n| n == name), "{name} not sent: {:?}", echo.raw_names);
    }
    // The X-Auth-* set is still there, and this host drops the client's Authorization header.
    assert_eq!(echo.header("x-auth-method"), Some("bearer"));
    assert!(echo.header("authorization").is_none());
}

/// One request on an open connection, read until its whole response (headers, then `Content-Length` bytes of body)
/// has come: its status code.
async fn request_on(stream: &mut tokio::net::TcpStream, path: &str, token: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {token}\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed mid-response");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .expect("a Content-Length");
            if body.len() >= length {
                return head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            }
        }
    }
}

/// The sidecar's side of the one established connection to its listener, as `ss` shows it (with its timers).
fn server_socket(port: u16) -> String {
    let out = std::process::Command::new("ss")
        .args(["-tnoH", "state", "established", &format!("( sport = :{port} )")])
        .output()
        .expect("ss (iproute2) runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_stay_connected_until_they_close_unless_a_limit_is_set() {
    use tokio::io::AsyncReadExt;
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.unwrap();
    let token = provider.sign(provider.default_claims());

    // Default: an idle connection is the client's (the ALB's) to close; the kernel probes it for a dead peer.
    let sidecar = Sidecar::start(&api_config(&provider, &upstream.url(), "")).await;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", sidecar.port)).await.unwrap();
    assert_eq!(request_on(&mut conn, "/items", &token).await, 200);
    let socket = server_socket(sidecar.port);
    assert!(socket.contains("timer:(keepalive"), "TCP keep-alive on the client's connection: {socket}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(request_on(&mut conn, "/items", &token).await, 200, "still open after idling");
    drop(sidecar);

    // With `server.downstream_idle_timeout`, the sidecar closes an idle connection itself.
    let limited = api_config(&provider, &upstream.url(), "")
        .replacen("[server]\n", "[server]\ndownstream_idle_timeout = \"1s\"\n", 1);
    let sidecar = Sidecar::start(&limited).await;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", sidecar.port)).await.unwrap();
    assert_eq!(request_on(&mut conn, "/items", &token).await, 200);
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut byte)).await;
    assert!(matches!(read, Ok(Ok(0))), "closed by the sidecar after idling: {read:?}");
}
