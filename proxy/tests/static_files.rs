//! Static SPA serving end to end, over real sockets: the `oidc-sidecar` binary with two `static_root` hosts on the
//! same build, one public and one behind login with only `/assets/` and `/favicon.ico` public.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use oidc_testkit::TestProvider;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Everything public: the SPA fallback is reachable without a login.
const PUBLIC: &str = "spa.test";
/// The whole SPA behind login, its bundles and favicon public.
const PROTECTED: &str = "app.test";

const INDEX: &str = "<!doctype html><html><head><script src=\"/assets/app.1a2b3c4d.js\"></script></head></html>";
const APP_JS: &str = "document.body.textContent = 'hello from the bundle';";
const APP: &str = "/assets/app.1a2b3c4d.js";
// Not real compressed data: the sidecar serves precompressed files as they are, it never decodes them.
const APP_GZ: &[u8] = b"\x1f\x8bpretend-gzip";
const APP_BR: &[u8] = b"pretend-brotli";
const FAVICON: &[u8] = &[0, 0, 1, 0, 1, 0, 16, 16];

fn write_spa(root: &Path) {
    let w = |rel: &str, bytes: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    w("index.html", INDEX.as_bytes());
    w("assets/app.1a2b3c4d.js", APP_JS.as_bytes());
    w("assets/app.1a2b3c4d.js.gz", APP_GZ);
    w("assets/app.1a2b3c4d.js.br", APP_BR);
    w("favicon.ico", FAVICON);
    w(".env", b"SECRET=do-not-serve");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/passwd", root.join("passwd.txt")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
    }
}

fn config(provider: &TestProvider, root: &Path) -> String {
    format!(
        r#"
[server]
listen = "{{LISTEN}}"
admin_listen = "{{ADMIN}}"
threads = 2
grace_period = "1s"
shutdown_timeout = "1s"

[provider]
issuer = "{issuer}"
audiences = ["{aud}"]
required_tenant = "{tid}"
client_id = "{client}"
client_secret = "test-secret"

[[hosts]]
name = "{PUBLIC}"
static_root = "{root}"
[[hosts.routes]]
path = "/"
access = "public"

[[hosts]]
name = "{PROTECTED}"
static_root = "{root}"
[hosts.security_headers]
hsts = "max-age=31536000"
content_type_options = true
referrer_policy = "no-referrer"
content_security_policy = "default-src 'self'; frame-ancestors 'none'"
[[hosts.routes]]
exact = "/favicon.ico"
access = "public"
[[hosts.routes]]
path = "/assets/"
access = "public"
[[hosts.routes]]
path = "/"
access = "authenticated"
"#,
        issuer = provider.issuer(),
        aud = provider.audience(),
        tid = provider.tenant(),
        client = oidc_testkit::TEST_CLIENT_ID,
        root = root.display(),
    )
}

struct Setup {
    provider: TestProvider,
    sidecar: Sidecar,
    _spa: tempfile::TempDir,
}

async fn setup() -> Setup {
    let provider = TestProvider::start().await;
    let spa = tempfile::tempdir().expect("temp dir");
    write_spa(spa.path());
    let sidecar = Sidecar::start(&config(&provider, spa.path())).await;
    Setup { provider, sidecar, _spa: spa }
}

/// No redirects, no cookies, and no transparent decompression whatever features reqwest was built with: the test
/// must see `Content-Encoding` and the bytes as sent.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("reqwest client")
}

async fn get(s: &Sidecar, host: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = http().get(s.url(path)).header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request")
}

fn h<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

/// One request written byte for byte, so `..` and odd escapes reach the sidecar unchanged (reqwest's URL parser
/// would resolve them first). Returns the status and the body.
async fn raw_get(s: &Sidecar, host: &str, target: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", s.port)).await.expect("connect");
    let req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut buf)).await.expect("response").expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status line: {text}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprinted_assets_are_immutable_and_revalidate_with_304() {
    let Setup { sidecar: s, .. } = setup().await;

    let r = get(&s, PUBLIC, APP, &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "cache-control"), Some("public, max-age=31536000, immutable"));
    assert_eq!(h(&r, "content-type"), Some("text/javascript; charset=utf-8"));
    assert_eq!(h(&r, "vary"), Some("Accept-Encoding"));
    assert_eq!(h(&r, "content-encoding"), None);
    assert_eq!(h(&r, "content-length"), Some(APP_JS.len().to_string().as_str()));
    let etag = h(&r, "etag").expect("etag").to_string();
    let last_modified = h(&r, "last-modified").expect("last-modified").to_string();
    assert!(httpdate::parse_http_date(&last_modified).is_ok(), "{last_modified}");
    assert_eq!(r.text().await.unwrap(), APP_JS);

    // If-None-Match (exact, weak, in a list) → 304 with the validator and no body.
    for inm in [etag.clone(), format!("W/{etag}"), format!("\"other\", {etag}")] {
        let r = get(&s, PUBLIC, APP, &[("if-none-match", &inm)]).await;
        assert_eq!(r.status(), 304, "{inm}");
        assert_eq!(h(&r, "etag"), Some(etag.as_str()));
        assert_eq!(h(&r, "cache-control"), Some("public, max-age=31536000, immutable"));
        assert!(r.bytes().await.unwrap().is_empty());
    }
    assert_eq!(get(&s, PUBLIC, APP, &[("if-none-match", "\"stale\"")]).await.status(), 200);

    // If-Modified-Since → 304 when the file is not newer.
    let r = get(&s, PUBLIC, APP, &[("if-modified-since", &last_modified)]).await;
    assert_eq!(r.status(), 304);
    assert_eq!(get(&s, PUBLIC, APP, &[("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")]).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precompressed_siblings_follow_accept_encoding() {
    let Setup { sidecar: s, .. } = setup().await;

    let r = get(&s, PUBLIC, APP, &[("accept-encoding", "gzip")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "content-encoding"), Some("gzip"));
    assert_eq!(h(&r, "vary"), Some("Accept-Encoding"));
    assert_eq!(h(&r, "content-type"), Some("text/javascript; charset=utf-8"));
    let gz_etag = h(&r, "etag").unwrap().to_string();
    assert_eq!(&r.bytes().await.unwrap()[..], APP_GZ);

    let r = get(&s, PUBLIC, APP, &[("accept-encoding", "gzip, deflate, br")]).await;
    assert_eq!(h(&r, "content-encoding"), Some("br"));
    assert_ne!(h(&r, "etag"), Some(gz_etag.as_str()), "each encoding has its own strong ETag");
    assert_eq!(&r.bytes().await.unwrap()[..], APP_BR);

    let r = get(&s, PUBLIC, APP, &[("accept-encoding", "br;q=0.1, gzip;q=0.9")]).await;
    assert_eq!(h(&r, "content-encoding"), Some("gzip"));

    let r = get(&s, PUBLIC, APP, &[("accept-encoding", "br;q=0, gzip;q=0")]).await;
    assert_eq!(h(&r, "content-encoding"), None);
    assert_eq!(r.text().await.unwrap(), APP_JS);

    // 304 for the variant the client holds.
    let r = get(&s, PUBLIC, APP, &[("accept-encoding", "gzip"), ("if-none-match", &gz_etag)]).await;
    assert_eq!(r.status(), 304);

    // The siblings are variants, not paths.
    assert_eq!(get(&s, PUBLIC, "/assets/app.1a2b3c4d.js.br", &[]).await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spa_fallback_index_and_missing_files() {
    let Setup { sidecar: s, .. } = setup().await;

    for path in ["/", "/index.html", "/some/deep/link", "/orders/42/"] {
        let r = get(&s, PUBLIC, path, &[("accept", "text/html")]).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(h(&r, "cache-control"), Some("no-cache"), "{path}");
        assert_eq!(h(&r, "content-type"), Some("text/html; charset=utf-8"), "{path}");
        assert!(h(&r, "etag").is_some());
        assert_eq!(r.text().await.unwrap(), INDEX, "{path}");
    }

    let r = get(&s, PUBLIC, "/favicon.ico", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "content-type"), Some("image/x-icon"));
    assert_eq!(h(&r, "cache-control"), Some("no-cache"));
    assert_eq!(&r.bytes().await.unwrap()[..], FAVICON);

    for path in ["/missing.js", "/assets/missing.1a2b3c4d.css"] {
        let r = get(&s, PUBLIC, path, &[]).await;
        assert_eq!(r.status(), 404, "{path}");
        let body: serde_json::Value = r.json().await.expect("json 404");
        assert_eq!(body["error"], "not_found");
    }

    // HEAD: GET's headers, Content-Length of the body it would have sent, no body.
    let r = http().head(s.url(APP)).header("host", PUBLIC).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "content-length"), Some(APP_JS.len().to_string().as_str()));
    assert_eq!(h(&r, "cache-control"), Some("public, max-age=31536000, immutable"));
    assert!(r.bytes().await.unwrap().is_empty());

    let r = http().post(s.url(APP)).header("host", PUBLIC).body("x").send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(h(&r, "allow"), Some("GET, HEAD"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outside_the_root_is_reachable() {
    let Setup { sidecar: s, .. } = setup().await;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let leaked = |body: &str| !passwd.is_empty() && body.contains(passwd.lines().next().unwrap_or("root:"));

    // The raw client does reach the files, so the refusals below are not vacuous.
    assert_eq!(raw_get(&s, PUBLIC, APP).await, (200, APP_JS.to_string()));
    assert_eq!(raw_get(&s, PUBLIC, "/some/route").await, (200, INDEX.to_string()));

    for target in [
        "/../../../../etc/passwd",
        "/assets/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/..%5c..%5cetc%5cpasswd",
        "/assets/%252e%252e/index.html",
        "/passwd.txt",
        "/etc/passwd",
        "/etc/hostname",
        "/.env",
    ] {
        let (status, body) = raw_get(&s, PUBLIC, target).await;
        assert!(!leaked(&body), "{target} leaked /etc/passwd");
        assert!(!body.contains("SECRET=do-not-serve"), "{target} leaked .env");
        // Refused (400), not found (404), or the SPA page for an extension-less route: never the file.
        assert!(status == 400 || status == 404 || (status == 200 && body == INDEX), "{target} -> {status} {body}");
    }
    assert_eq!(raw_get(&s, PUBLIC, "/passwd.txt").await.0, 404, "a symlink out of the root is not a file");
    assert_eq!(raw_get(&s, PUBLIC, "/.env").await.0, 404, "hidden files are not loaded");
    assert_eq!(raw_get(&s, PUBLIC, "/../../../../etc/passwd").await.0, 400, "climbing above the root is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_policies_apply_to_files() {
    let Setup { sidecar: s, provider, .. } = setup().await;

    // Public routes on the protected host.
    let r = get(&s, PROTECTED, APP, &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), APP_JS);
    assert_eq!(get(&s, PROTECTED, "/favicon.ico", &[]).await.status(), 200);

    // The page itself (and every client-side route) needs a login; an API-style request gets 401.
    for path in ["/", "/index.html", "/some/deep/link"] {
        let r = get(&s, PROTECTED, path, &[("accept", "application/json")]).await;
        assert_eq!(r.status(), 401, "{path}");
        let body = r.text().await.unwrap();
        assert!(!body.contains("<!doctype html>"), "{path} leaked the page: {body}");
    }

    // A valid token opens it.
    let token = provider.sign(provider.default_claims());
    let r = get(&s, PROTECTED, "/some/deep/link", &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "cache-control"), Some("no-cache"));
    assert_eq!(r.text().await.unwrap(), INDEX);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_apply_to_static_files() {
    let Setup { sidecar: s, .. } = setup().await;
    let r = get(&s, PROTECTED, APP, &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "strict-transport-security"), Some("max-age=31536000"));
    assert_eq!(h(&r, "x-content-type-options"), Some("nosniff"));
    assert_eq!(h(&r, "referrer-policy"), Some("no-referrer"));
    assert_eq!(h(&r, "content-security-policy"), Some("default-src 'self'; frame-ancestors 'none'"));
    // The public host configured none.
    let r = get(&s, PUBLIC, APP, &[]).await;
    assert_eq!(h(&r, "x-content-type-options"), None);
}
