//! `Assets` over a real directory tree: what each request gets, and what can never be reached.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{ACCEPT_ENCODING, IF_MODIFIED_SINCE, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue, Method};

use super::*;

const INDEX: &str = "<!doctype html><title>spa</title>";
const APP_JS: &str = "console.log('app');";
const APP: &str = "/assets/app.1a2b3c4d.js";
/// The mtime every fixture file gets, so Last-Modified is known.
const MTIME: u64 = 1_700_000_000;

fn write(root: &Path, rel: &str, content: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, content).unwrap();
    let f = fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(MTIME)).unwrap();
}

/// An SPA build: index, a fingerprinted bundle with `.gz` and `.br` siblings, a favicon, a nested docs index, a
/// standalone `.gz`, a hidden file, and symlinks in and out of the root.
fn fixture() -> (tempfile::TempDir, Assets) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "index.html", INDEX.as_bytes());
    write(root, "assets/app.1a2b3c4d.js", APP_JS.as_bytes());
    write(root, "assets/app.1a2b3c4d.js.gz", b"GZIP-BYTES");
    write(root, "assets/app.1a2b3c4d.js.br", b"BROTLI-BYTES");
    write(root, "assets/style.css", b"body{}");
    write(root, "favicon.ico", &[0, 0, 1, 0]);
    write(root, "docs/index.html", b"<p>docs</p>");
    write(root, "downloads/data.tar.gz", b"TARBALL");
    write(root, "hello world.txt", b"spaced");
    write(root, "\u{e9}t\u{e9}.txt", b"accented");
    write(root, ".env", b"SECRET=1");
    write(root, ".git/config", b"[core]");
    write(root, ".well-known/security.txt", b"Contact: mailto:security@example.com");
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        symlink("/etc/passwd", root.join("passwd.txt")).unwrap();
        symlink("/etc/passwd", root.join("passwd")).unwrap();
        symlink("/etc", root.join("etc")).unwrap();
        symlink("assets/app.1a2b3c4d.js", root.join("alias.js")).unwrap();
        symlink(".", root.join("loop")).unwrap();
        symlink("assets", root.join("static")).unwrap();
        symlink("does-not-exist", root.join("dangling.js")).unwrap();
    }
    let assets = Assets::load(root, Limits::default()).expect("fixture loads");
    (dir, assets)
}

fn get(a: &Assets, path: &str, headers: &[(http::HeaderName, &str)]) -> LocalResponse {
    request(a, Method::GET, path, headers)
}

fn request(a: &Assets, method: Method, path: &str, headers: &[(http::HeaderName, &str)]) -> LocalResponse {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(k.clone(), HeaderValue::from_str(v).unwrap());
    }
    a.serve(&method, path, &h)
}

fn header<'a>(r: &'a LocalResponse, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn is_index(r: &LocalResponse) -> bool {
    r.status == 200 && r.body == INDEX.as_bytes()
}

#[test]
fn fingerprinted_asset_is_immutable_and_typed() {
    let (_d, a) = fixture();
    let r = get(&a, APP, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, APP_JS.as_bytes());
    assert_eq!(r.decision, "static");
    assert_eq!(header(&r, "cache-control"), Some("public, max-age=31536000, immutable"));
    assert_eq!(header(&r, "content-type"), Some("text/javascript; charset=utf-8"));
    assert_eq!(header(&r, "vary"), Some("Accept-Encoding"));
    assert_eq!(header(&r, "content-encoding"), None);
    let etag = header(&r, "etag").unwrap();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34, "{etag}");
    assert_eq!(header(&r, "last-modified"), Some(httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(MTIME)).as_str()));
}

#[test]
fn index_and_plain_files_revalidate() {
    let (_d, a) = fixture();
    for path in ["/", "/index.html", "/favicon.ico", "/docs/"] {
        let r = get(&a, path, &[]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(header(&r, "cache-control"), Some("no-cache"), "{path}");
        assert_eq!(header(&r, "vary"), None, "{path}: no variants, nothing varies");
    }
    assert_eq!(header(&get(&a, "/", &[]), "content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(header(&get(&a, "/favicon.ico", &[]), "content-type"), Some("image/x-icon"));
    // Everything under /assets/ counts as fingerprinted (documented rule).
    assert_eq!(header(&get(&a, "/assets/style.css", &[]), "cache-control"), Some(caching::IMMUTABLE));
}

#[test]
fn etag_match_is_304_with_validators_and_no_body() {
    let (_d, a) = fixture();
    let etag = header(&get(&a, APP, &[]), "etag").unwrap().to_string();
    for inm in [etag.clone(), format!("W/{etag}"), format!("\"nope\", {etag}"), "*".to_string()] {
        let r = get(&a, APP, &[(IF_NONE_MATCH, &inm)]);
        assert_eq!(r.status, 304, "{inm}");
        assert!(r.body.is_empty());
        assert_eq!(header(&r, "etag"), Some(etag.as_str()));
        assert_eq!(header(&r, "cache-control"), Some(caching::IMMUTABLE));
        assert_eq!(header(&r, "vary"), Some("Accept-Encoding"));
        assert_eq!(header(&r, "content-type"), None);
    }
    let r = get(&a, APP, &[(IF_NONE_MATCH, "\"stale\"")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, APP_JS.as_bytes());
}

#[test]
fn if_modified_since_is_304_only_without_if_none_match() {
    let (_d, a) = fixture();
    let lm = UNIX_EPOCH + Duration::from_secs(MTIME);
    let same = httpdate::fmt_http_date(lm);
    let later = httpdate::fmt_http_date(lm + Duration::from_secs(3600));
    let earlier = httpdate::fmt_http_date(lm - Duration::from_secs(1));
    assert_eq!(get(&a, "/favicon.ico", &[(IF_MODIFIED_SINCE, &same)]).status, 304);
    assert_eq!(get(&a, "/favicon.ico", &[(IF_MODIFIED_SINCE, &later)]).status, 304);
    assert_eq!(get(&a, "/favicon.ico", &[(IF_MODIFIED_SINCE, &earlier)]).status, 200);
    assert_eq!(get(&a, "/favicon.ico", &[(IF_MODIFIED_SINCE, "garbage")]).status, 200);
    // A mismatching If-None-Match wins over a satisfied date.
    let r = get(&a, "/favicon.ico", &[(IF_NONE_MATCH, "\"stale\""), (IF_MODIFIED_SINCE, &later)]);
    assert_eq!(r.status, 200);
}

#[test]
fn precompressed_variants_follow_accept_encoding() {
    let (_d, a) = fixture();
    let br = get(&a, APP, &[(ACCEPT_ENCODING, "gzip, deflate, br")]);
    assert_eq!(br.body, &b"BROTLI-BYTES"[..]);
    assert_eq!(header(&br, "content-encoding"), Some("br"));
    assert_eq!(header(&br, "content-type"), Some("text/javascript; charset=utf-8"));
    assert_eq!(header(&br, "vary"), Some("Accept-Encoding"));

    let gz = get(&a, APP, &[(ACCEPT_ENCODING, "gzip;q=1, br;q=0.5")]);
    assert_eq!(gz.body, &b"GZIP-BYTES"[..]);
    assert_eq!(header(&gz, "content-encoding"), Some("gzip"));

    let refused = get(&a, APP, &[(ACCEPT_ENCODING, "br;q=0, gzip;q=0")]);
    assert_eq!(refused.body, APP_JS.as_bytes());
    assert_eq!(header(&refused, "content-encoding"), None);
    assert_eq!(header(&refused, "vary"), Some("Accept-Encoding"));

    // Each representation has its own strong ETag, and 304 checks the one that would be sent.
    let tags = [header(&br, "etag"), header(&gz, "etag"), header(&refused, "etag")];
    assert!(tags[0] != tags[1] && tags[1] != tags[2] && tags[0] != tags[2], "{tags:?}");
    let gz_tag = tags[1].unwrap();
    assert_eq!(get(&a, APP, &[(ACCEPT_ENCODING, "gzip"), (IF_NONE_MATCH, gz_tag)]).status, 304);
    assert_eq!(get(&a, APP, &[(ACCEPT_ENCODING, "br"), (IF_NONE_MATCH, gz_tag)]).status, 200);
}

#[test]
fn siblings_are_variants_not_paths_unless_alone() {
    let (_d, a) = fixture();
    assert_eq!(get(&a, "/assets/app.1a2b3c4d.js.br", &[]).status, 404);
    assert_eq!(get(&a, "/assets/app.1a2b3c4d.js.gz", &[]).status, 404);
    // A .gz with no uncompressed twin is just a file.
    let tar = get(&a, "/downloads/data.tar.gz", &[(ACCEPT_ENCODING, "gzip")]);
    assert_eq!(tar.status, 200);
    assert_eq!(tar.body, &b"TARBALL"[..]);
    assert_eq!(header(&tar, "content-encoding"), None);
    assert_eq!(header(&tar, "content-type"), Some("application/gzip"));
}

#[test]
fn spa_fallback_for_routes_404_for_missing_files() {
    let (_d, a) = fixture();
    for route in ["/some/deep/link", "/orders/42", "/assets/", "/login"] {
        let r = get(&a, route, &[]);
        assert!(is_index(&r), "{route} -> {} {:?}", r.status, r.body);
        assert_eq!(header(&r, "cache-control"), Some("no-cache"), "{route}");
        assert_eq!(header(&r, "content-type"), Some("text/html; charset=utf-8"));
        assert!(r.reason.contains("fallback"), "{}", r.reason);
    }
    for missing in ["/missing.js", "/assets/missing.1a2b3c4d.js", "/deep/link/v1.2", "/robots.txt"] {
        let r = get(&a, missing, &[]);
        assert_eq!(r.status, 404, "{missing}");
        assert_eq!(r.decision, "static");
        assert_eq!(header(&r, "content-type"), Some("application/json"));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], "not_found");
    }
}

#[test]
fn without_index_html_there_is_no_fallback() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "app.js", b"x");
    let a = Assets::load(dir.path(), Limits::default()).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(get(&a, "/", &[]).status, 404);
    assert_eq!(get(&a, "/some/route", &[]).status, 404);
    assert_eq!(get(&a, "/app.js", &[]).status, 200);
}

#[test]
fn directories_serve_their_index_never_a_listing() {
    let (_d, a) = fixture();
    for path in ["/docs/", "/docs"] {
        let r = get(&a, path, &[]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, &b"<p>docs</p>"[..], "{path}");
    }
    // A directory without index.html falls back to the SPA, it is never listed.
    let r = get(&a, "/downloads/", &[]);
    assert!(is_index(&r));
    assert!(!String::from_utf8_lossy(&r.body).contains("data.tar.gz"));
}

#[test]
fn head_has_get_headers_and_body_length() {
    let (_d, a) = fixture();
    for (path, ae) in [(APP, "br"), ("/", ""), ("/deep/link", "")] {
        let g = get(&a, path, &[(ACCEPT_ENCODING, ae)]);
        let h = request(&a, Method::HEAD, path, &[(ACCEPT_ENCODING, ae)]);
        assert_eq!(h.status, g.status, "{path}");
        assert_eq!(h.headers, g.headers, "{path}");
        // The gateway writes Content-Length from the body and skips the body itself for HEAD.
        assert_eq!(h.body.len(), g.body.len(), "{path}");
    }
    let etag = header(&get(&a, "/", &[]), "etag").unwrap().to_string();
    assert_eq!(request(&a, Method::HEAD, "/", &[(IF_NONE_MATCH, &etag)]).status, 304);
}

#[test]
fn other_methods_are_405_with_allow() {
    let (_d, a) = fixture();
    for m in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS, Method::PATCH] {
        let r = request(&a, m.clone(), APP, &[]);
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(header(&r, "allow"), Some("GET, HEAD"));
        assert_eq!(r.decision, "static");
    }
    assert_eq!(request(&a, Method::POST, "/no/such/route", &[]).status, 405);
}

#[test]
fn traversal_spellings_are_simply_not_found() {
    let (_d, a) = fixture();
    for path in [
        "/%2e%2e/x",
        "/%2E%2E/etc/passwd",
        "/..",
        "/../etc/passwd",
        "/assets/../index.html",
        "/./index.html",
        "/..%2fetc%2fpasswd",
        "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/..\\..\\etc\\passwd",
        "/%5c..%5cetc",
        "//etc/passwd",
        "/index.html%00.js",
        "/%ff",
        "..",
        "",
        "etc/passwd",
    ] {
        let r = get(&a, path, &[]);
        assert_eq!(r.status, 404, "{path:?} -> {}", r.status);
        assert!(!String::from_utf8_lossy(&r.body).contains("root:"), "{path}");
    }
}

#[cfg(unix)]
#[test]
fn symlinks_out_of_the_root_are_never_served() {
    let (_d, a) = fixture();
    let passwd = fs::read("/etc/passwd").unwrap_or_default();
    assert_eq!(get(&a, "/passwd.txt", &[]).status, 404);
    assert_eq!(get(&a, "/etc/passwd", &[]).status, 200, "extension-less: the SPA fallback, not the file");
    for path in ["/passwd", "/etc/passwd", "/etc/hostname", "/etc/"] {
        let r = get(&a, path, &[]);
        assert!(is_index(&r), "{path}");
        assert_ne!(r.body, passwd, "{path}");
    }
    assert_eq!(get(&a, "/etc/os-release.txt", &[]).status, 404);
    assert!(!a.contains("/passwd.txt") && !a.contains("/passwd") && !a.contains("/etc/passwd"));
    // Dangling links are skipped, loops do not hang the load.
    assert_eq!(get(&a, "/dangling.js", &[]).status, 404);
    assert!(!a.contains("/loop/loop/index.html"));
}

#[cfg(unix)]
#[test]
fn symlinks_inside_the_root_are_served() {
    let (_d, a) = fixture();
    let r = get(&a, "/alias.js", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, APP_JS.as_bytes());
    assert_eq!(header(&r, "cache-control"), Some("no-cache"), "the alias name has no fingerprint");
    // A directory link inside the root is followed; its siblings stay variants under the new name.
    let r = get(&a, "/static/app.1a2b3c4d.js", &[(ACCEPT_ENCODING, "br")]);
    assert_eq!(r.body, &b"BROTLI-BYTES"[..]);
    // `loop -> .` points back at an ancestor: skipped, not walked forever.
    assert!(!a.contains("/loop/index.html"));
}

#[test]
fn hidden_files_are_not_loaded_but_well_known_is() {
    let (_d, a) = fixture();
    assert_eq!(get(&a, "/.env", &[]).status, 404);
    assert!(!a.contains("/.git/config"));
    assert!(is_index(&get(&a, "/.git/HEAD", &[])));
    let r = get(&a, "/.well-known/security.txt", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "content-type"), Some("text/plain; charset=utf-8"));
}

#[test]
fn encoded_names_match_the_canonical_spelling() {
    let (_d, a) = fixture();
    assert_eq!(get(&a, "/hello%20world.txt", &[]).body, &b"spaced"[..]);
    assert_eq!(get(&a, "/%C3%A9t%C3%A9.txt", &[]).body, &b"accented"[..]);
}

#[test]
fn serving_shares_the_loaded_bytes() {
    let (_d, a) = fixture();
    let one = get(&a, APP, &[]);
    let two = get(&a, APP, &[]);
    assert_eq!(one.body.as_ptr(), two.body.as_ptr(), "a response is a refcount clone, not a copy");
}

#[test]
fn counts_exclude_siblings_and_skipped_files() {
    let (_d, a) = fixture();
    let mut expected = vec![
        "/index.html",
        APP,
        "/assets/style.css",
        "/favicon.ico",
        "/docs/index.html",
        "/downloads/data.tar.gz",
        "/hello world.txt",
        "/\u{e9}t\u{e9}.txt",
        "/.well-known/security.txt",
    ];
    if cfg!(unix) {
        expected.extend(["/alias.js", "/static/app.1a2b3c4d.js", "/static/style.css"]);
    }
    for k in &expected {
        assert!(a.files.contains_key(*k), "{k}");
    }
    assert_eq!(a.len(), expected.len(), "{:?}", a.files.keys().collect::<Vec<_>>());
    assert!(a.total_bytes() > 0);
    let debug = format!("{a:?}");
    assert!(debug.contains("files") && !debug.contains("console.log"), "{debug}");
}

#[test]
fn oversize_files_fail_the_load_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "index.html", b"ok");
    write(dir.path(), "video/big.mp4", &[0u8; 2048]);
    let err = Assets::load(dir.path(), Limits::new(1024, 1 << 20)).unwrap_err();
    assert!(matches!(err, AssetsError::FileTooLarge { size: 2048, limit: 1024, .. }), "{err}");
    assert!(err.to_string().contains("big.mp4"), "{err}");

    let err = Assets::load(dir.path(), Limits::new(4096, 1000)).unwrap_err();
    assert!(matches!(err, AssetsError::TotalTooLarge { limit: 1000, .. }), "{err}");

    // A precompressed sibling counts like any file.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "app.js", b"x");
    write(dir.path(), "app.js.br", &[0u8; 2048]);
    let err = Assets::load(dir.path(), Limits::new(1024, 1 << 20)).unwrap_err();
    assert!(err.to_string().contains("app.js.br"), "{err}");
}

#[test]
fn a_bad_root_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let err = Assets::load(&missing, Limits::default()).unwrap_err();
    assert!(matches!(err, AssetsError::Root { .. }));
    assert!(err.to_string().contains("no-such-dir"), "{err}");

    write(dir.path(), "file.txt", b"x");
    let err = Assets::load(&dir.path().join("file.txt"), Limits::default()).unwrap_err();
    assert!(matches!(err, AssetsError::NotADirectory { .. }), "{err}");
}

#[test]
fn too_many_files_or_too_deep_fail_the_load() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..5 {
        write(dir.path(), &format!("f{i}.txt"), b"x");
    }
    let limits = Limits { max_files: 3, ..Limits::default() };
    assert!(matches!(Assets::load(dir.path(), limits).unwrap_err(), AssetsError::TooManyFiles { limit: 3, .. }));

    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a/b/c/d.txt", b"x");
    let limits = Limits { max_depth: 2, ..Limits::default() };
    assert!(matches!(Assets::load(dir.path(), limits).unwrap_err(), AssetsError::TooDeep { limit: 2, .. }));
    let limits = Limits { max_depth: 3, ..Limits::default() };
    assert!(Assets::load(dir.path(), limits).is_ok());
}

#[test]
fn file_without_mtime_semantics_still_gets_an_etag() {
    // Last-Modified follows the file; a file touched now is not modified since "now + 1 h".
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("index.html"), INDEX).unwrap();
    let a = Assets::load(dir.path(), Limits::default()).unwrap();
    let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
    assert_eq!(get(&a, "/", &[(IF_MODIFIED_SINCE, &later)]).status, 304);
    assert!(header(&get(&a, "/", &[]), "etag").is_some());
}

mod any_path {
    use super::*;
    use proptest::prelude::*;

    fn piece() -> impl Strategy<Value = &'static str> {
        proptest::sample::select(vec![
            "/", ".", "..", "%2e", "%2E", "%2f", "%5c", "\\", "%00", "%25", "etc", "passwd", "passwd.txt", "index.html",
            "assets", "app.1a2b3c4d.js", ".br", ".gz", "docs", "%C3%A9", "~", " ", ".env", "loop", "static",
        ])
    }

    proptest! {
        /// Whatever the path, the answer is a loaded file, the SPA page, or a 404: never a panic, never a byte from
        /// outside the map.
        #[test]
        fn any_path_yields_only_loaded_bytes(pieces in proptest::collection::vec(piece(), 0..8)) {
            let (_d, a) = FIXTURE.with(|f| f.clone());
            let path: String = pieces.concat();
            let r = get(&a, &path, &[(ACCEPT_ENCODING, "br, gzip")]);
            prop_assert!(matches!(r.status, 200 | 404), "{path:?} -> {}", r.status);
            if r.status == 200 {
                let known = a.files.values().any(|f| {
                    [Some(&f.identity), f.gzip.as_ref(), f.br.as_ref()].into_iter().flatten().any(|v| v.bytes == r.body)
                });
                prop_assert!(known, "{path:?} served bytes that were never loaded");
            }
        }
    }

    thread_local! {
        static FIXTURE: (std::rc::Rc<tempfile::TempDir>, std::rc::Rc<Assets>) = {
            let (d, a) = fixture();
            (std::rc::Rc::new(d), std::rc::Rc::new(a))
        };
    }
}
