//! Where a finished login may send the browser: only a path on this same host.
//!
//! The `rd` parameter of the login endpoint is attacker-controlled (anyone can mail a link to
//! `/oauth2/login?rd=...`), so anything a browser could resolve to another origin is refused, including the
//! forms browsers "fix up": `//evil` and `/\evil` (scheme-relative; browsers treat `\` as `/`), tabs and
//! newlines (browsers delete them from URLs, so `/\t/evil` becomes `//evil`), and the same again percent-encoded
//! once (`/%2f%2fevil`, `/%5cevil`), in case something between us and the browser decodes it.

use percent_encoding::percent_decode_str;

/// Longest return path kept; longer ones fall back to `/`.
pub const MAX_RETURN_PATH: usize = 2048;

/// `raw` if it is a safe same-host path (it is returned unchanged, still percent-encoded), else `None`.
///
/// Accepted: ASCII `/` followed by anything printable, except a second `/` or a `\` right after the first
/// `/`, and no `\` or whitespace/control characters anywhere; the same must hold after decoding percent escapes
/// once (spaces excepted there: `%20` is fine in a path).
pub fn safe_return_path(raw: &str) -> Option<String> {
    if raw.is_empty() || raw.len() > MAX_RETURN_PATH {
        return None;
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic()) || !path_shape_ok(raw.as_bytes()) {
        return None;
    }
    let decoded: Vec<u8> = percent_decode_str(raw).collect();
    if decoded.iter().any(|&b| b.is_ascii_control() || b == 0x7f) || !path_shape_ok(&decoded) {
        return None;
    }
    Some(raw.to_owned())
}

/// [`safe_return_path`], or `/` when absent or refused.
pub fn return_path_or_root(raw: Option<&str>) -> String {
    raw.and_then(safe_return_path).unwrap_or_else(|| "/".to_owned())
}

fn path_shape_ok(p: &[u8]) -> bool {
    p.first() == Some(&b'/') && !matches!(p.get(1), Some(b'/') | Some(b'\\')) && !p.contains(&b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_plain_paths() {
        for ok in [
            "/",
            "/app",
            "/app/page?x=1&y=%2F#frag",
            "/a%20b",
            "/api/v1/items/42",
            "/path;param",
        ] {
            assert_eq!(safe_return_path(ok).as_deref(), Some(ok), "{ok}");
        }
    }

    #[test]
    fn refuses_open_redirects() {
        for bad in [
            "",
            "//evil.com",
            "///evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "\\/evil.com",
            "https://evil.com",
            "http:evil.com",
            "javascript:alert(1)",
            "evil.com",
            "/%2f%2fevil.com",
            "/%2F/evil.com",
            "/%5cevil.com",
            "/%5Cevil.com",
            "/a\\b",
            "/a%5cb",
            "/\t/evil.com",
            "/%09/evil.com",
            "/\n/evil.com",
            "/%0d%0aSet-Cookie:x=y",
            "/ /evil",
            "/é",
            "/%00",
            " /app",
        ] {
            assert_eq!(safe_return_path(bad), None, "{bad:?}");
        }
        assert_eq!(safe_return_path(&format!("/{}", "a".repeat(MAX_RETURN_PATH))), None);
    }

    #[test]
    fn default_is_root() {
        assert_eq!(return_path_or_root(None), "/");
        assert_eq!(return_path_or_root(Some("//evil")), "/");
        assert_eq!(return_path_or_root(Some("/ok")), "/ok");
    }

    proptest! {
        /// Whatever is accepted resolves on this host: as a URL relative to https://app.example.com/ it keeps
        /// the host, both as given and decoded once.
        #[test]
        fn prop_accepted_paths_stay_on_host(s in "[ -~\\t\\n]{0,40}", pre in prop::sample::select(vec!["", "/", "//", "/%2f", "\\"])) {
            let raw = format!("{pre}{s}");
            if let Some(p) = safe_return_path(&raw) {
                let base = url::Url::parse("https://app.example.com/x/").unwrap();
                let joined = base.join(&p).unwrap();
                prop_assert_eq!(joined.host_str(), Some("app.example.com"));
                let decoded = percent_decode_str(&p).decode_utf8_lossy().into_owned();
                let joined = base.join(&decoded).unwrap();
                prop_assert_eq!(joined.host_str(), Some("app.example.com"));
            }
        }
    }
}
