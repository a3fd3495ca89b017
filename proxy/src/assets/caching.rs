//! What a file is (Content-Type) and how long browsers may keep it (Cache-Control).
//!
//! # The fingerprint rule
//! A file is *fingerprinted* (its name changes whenever its content does, so it may be cached for a year without
//! revalidation) when, and only when:
//! 1. it lies under `/assets/` (Vite's and Rollup's default output directory, which holds only hashed files), or
//! 2. its name, split on `.` and `-`, holds a hash-like segment:
//!    - 8 or more hex digits with at least one digit and one letter (`main.3f2a9c1b.js` from Create React App,
//!      `main.3f2a9c1b4d5e6f70.js` from Angular, webpack's `[contenthash]`), or
//!    - exactly 8 base64url characters ending the name after a `-`, mixing a digit with a letter or holding an
//!      upper-case letter after the first (`index-BdX3k9Qa.js`, Vite with a custom `assetsDir`).
//!
//! `index.html` is never fingerprinted, wherever it lies: it names the current fingerprints, so it must always be
//! revalidated. Everything else gets `no-cache` (cache, but ask first: with the strong ETag that costs a 304).
//!
//! The rules lean towards `no-cache`: a hash the rule misses costs a revalidation, a name wrongly taken for a hash
//! would pin a stale file in browsers for a year. The one broad rule is `/assets/`; an app that copies unhashed
//! files there (Vite's `public/assets/`) should move them elsewhere.

/// `Cache-Control` of fingerprinted files.
pub(super) const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of everything else: revalidate on every use.
pub(super) const REVALIDATE: &str = "no-cache";

/// The `Cache-Control` value for the file at `key` (a decoded path starting with `/`).
pub(super) fn cache_control(key: &str) -> &'static str {
    if is_fingerprinted(key) {
        IMMUTABLE
    } else {
        REVALIDATE
    }
}

/// See the module docs.
pub(super) fn is_fingerprinted(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    if name.eq_ignore_ascii_case("index.html") {
        return false;
    }
    if key.starts_with("/assets/") {
        return true;
    }
    let stem = match name.rsplit_once('.') {
        Some((stem, _ext)) if !stem.is_empty() => stem,
        _ => name,
    };
    if stem.split(['.', '-']).any(is_hex_hash) {
        return true;
    }
    vite_hash(stem)
}

fn is_hex_hash(segment: &str) -> bool {
    segment.len() >= 8
        && segment.bytes().all(|b| b.is_ascii_hexdigit())
        && segment.bytes().any(|b| b.is_ascii_digit())
        && segment.bytes().any(|b| b.is_ascii_alphabetic())
}

/// `name-XXXXXXXX`: Vite's `[name]-[hash]` with its 8-character base64url hash (which may itself hold `-` or `_`).
fn vite_hash(stem: &str) -> bool {
    let bytes = stem.as_bytes();
    if bytes.len() < 10 || bytes[bytes.len() - 9] != b'-' {
        return false;
    }
    let hash = &bytes[bytes.len() - 8..];
    if !hash.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_') {
        return false;
    }
    // `icon-1024x768`: image dimensions, not a hash.
    if let Some(x) = hash.iter().position(|b| *b == b'x') {
        let (w, h) = (&hash[..x], &hash[x + 1..]);
        if !w.is_empty() && !h.is_empty() && w.iter().chain(h).all(u8::is_ascii_digit) {
            return false;
        }
    }
    let digit = hash.iter().any(u8::is_ascii_digit);
    let letter = hash.iter().any(u8::is_ascii_alphabetic);
    let inner_upper = hash[1..].iter().any(u8::is_ascii_uppercase);
    let lower = hash.iter().any(u8::is_ascii_lowercase);
    (digit && letter) || (inner_upper && lower)
}

/// The `Content-Type` for a file name: `charset=utf-8` on text, since build tools write UTF-8 and a browser guessing
/// Latin-1 would garble it; the JavaScript type is RFC 9239's `text/javascript` whatever the extension.
pub(super) fn content_type(name: &str) -> String {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => return "text/html; charset=utf-8".into(),
        "js" | "mjs" | "cjs" => return "text/javascript; charset=utf-8".into(),
        "css" => return "text/css; charset=utf-8".into(),
        // Source maps are JSON; mime_guess says text/plain.
        "map" | "json" => return "application/json".into(),
        "webmanifest" => return "application/manifest+json".into(),
        "wasm" => return "application/wasm".into(),
        _ => {}
    }
    let mime = mime_guess::from_ext(&ext).first_or_octet_stream();
    if mime.type_() == mime_guess::mime::TEXT || mime.essence_str() == "image/svg+xml" {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.essence_str().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_tool_hashes_are_fingerprints() {
        for key in [
            "/assets/index-BdX3k9Qa.js",
            "/assets/logo.png",
            "/static/js/main.3f2a9c1b.js",
            "/static/js/main.3f2a9c1b.js.map",
            "/main.3f2a9c1b4d5e6f70.js",
            "/styles.0a1b2c3d4e5f6a7b.css",
            "/js/index-BdX3k9Qa.js",
            "/js/vendor-a_b-C3dE.js",
            "/js/chunk-QwErTyUi.js",
        ] {
            assert!(is_fingerprinted(key), "{key}");
            assert_eq!(cache_control(key), IMMUTABLE);
        }
    }

    #[test]
    fn plain_names_revalidate() {
        for key in [
            "/index.html",
            "/assets/index.html",
            "/favicon.ico",
            "/robots.txt",
            "/manifest.webmanifest",
            "/logo-standard.png",
            "/logo-Standard.png",
            "/report-20240101.pdf",
            "/cafebabe.js",
            "/assetsX/app.js",
            "/sub/assets/app.js",
            "/icon-1024x768.png",
        ] {
            assert!(!is_fingerprinted(key), "{key}");
            assert_eq!(cache_control(key), REVALIDATE);
        }
    }

    #[test]
    fn types_carry_charset_on_text() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("app.1a2b3c4d.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("a.MJS"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("a.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("a.js.map"), "application/json");
        assert_eq!(content_type("robots.txt"), "text/plain; charset=utf-8");
        assert_eq!(content_type("logo.svg"), "image/svg+xml; charset=utf-8");
        assert_eq!(content_type("favicon.ico"), "image/x-icon");
        assert_eq!(content_type("font.woff2"), "font/woff2");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
        assert_eq!(content_type("blob.unknownext"), "application/octet-stream");
    }
}
