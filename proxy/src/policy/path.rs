//! Path normalization: one canonical spelling of every request path.
//!
//! Route policies are matched on the path this module returns, and the same string is what the upstream receives.
//! That is the whole defence against path confusion: if the policy and the upstream read the same bytes, no spelling
//! (`/public/../admin`, `/%2e%2e/admin`, `//admin`, `/adm%69n`) can reach a path the policy did not see.
//!
//! # The canonical form
//! The raw path is fully percent-decoded, checked, its `.`/`..` segments resolved and repeated slashes collapsed;
//! then it is re-encoded with one fixed rule: unreserved characters (`A-Z a-z 0-9 - . _ ~`), the sub-delimiters
//! other than `;` (`! $ & ' ( ) * + , =`), `:` and `@` are written raw, every other byte as `%XX` (upper-case hex).
//! So `%41` becomes `A`, `%7e` becomes `~`, a space becomes `%20` and `é` becomes `%C3%A9`. The re-encoding is a
//! bijection of the decoded text, so matching the canonical form is the same as matching what Starlette (which routes
//! on the fully decoded path) sees, and `normalize(normalize(p)) == normalize(p)`.
//!
//! # What is refused (and why)
//! - A path that does not start with `/` (absolute-form, `*`, empty): not an origin-form path.
//! - `%2F` (encoded `/`): Starlette decodes it into a real `/`, so `/admin%2Fx` would reach `/admin/x` past a rule
//!   written for `/admin/`. Decoding it ourselves would break apps that use it on purpose, so it is refused.
//! - `\` raw or as `%5C`: some servers and frameworks treat it as a separator.
//! - control characters, raw or encoded (`%00`-`%1F`, `%7F`, and U+0080-U+009F): no legitimate path holds them, and
//!   NUL truncates paths in C code.
//! - double encoding: a decoded `%` followed by two hex digits (`%252F`, `%25%32%46`): a second decoder would see a
//!   different path than we matched.
//! - malformed escapes (`%`, `%2`, `%zz`): decoders disagree on them (some keep, some drop, some fail).
//! - bytes that do not decode to UTF-8 (including overlong forms like `%C0%AE`).
//! - `..` that would climb above the root: refused, not clamped, since no honest client sends it.
//! - a raw `;` (path parameter): uvicorn and Starlette keep `;` as a plain character, so for a Python upstream it is
//!   harmless, but Java servlet containers, Spring and some proxies strip `;...` from a segment, so `/admin;x` would
//!   be served as `/admin` after matching a different route here. The sidecar fronts "any web app", so it refuses.
//!   An encoded `%3B` is a literal character for every server we know of, and stays encoded.
//! - a raw `?` or `#`: the caller passes the path without its query; a stray one means the caller split wrongly.
//!
//! Matching is case-sensitive, like Starlette's routing: `/ADMIN` is not `/admin`. An upstream that folds case (IIS,
//! some Windows file servers) needs its routes written for every spelling, or a route on `/` that protects everything.

use std::fmt::Write as _;

/// Why a request path was refused. Each message is safe to show to the client (it echoes nothing it sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request path must be an absolute path starting with `/`")]
    NotOriginForm,
    #[error("the request path contains an encoded `/` (%2F), which the upstream could read as a separator")]
    EncodedSlash,
    #[error("the request path contains a backslash (raw or %5C), which some servers read as a separator")]
    Backslash,
    #[error("the request path contains a control character (raw or percent-encoded)")]
    ControlCharacter,
    #[error("the request path is percent-encoded twice (%25 followed by a hex pair)")]
    DoubleEncoding,
    #[error("the request path contains a malformed percent-escape")]
    MalformedEscape,
    #[error("the request path does not decode to valid UTF-8")]
    InvalidUtf8,
    #[error("the request path climbs above the root with `..`")]
    AboveRoot,
    #[error("the request path contains `;` (a path parameter), which some servers strip before routing")]
    PathParameter,
    #[error("the request path contains a raw `?` or `#`")]
    QueryOrFragment,
}

/// The canonical form of `raw` (a request path without its query), or why it is refused. See the module docs.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    // Nearly every path a client sends is canonical already: then it is its own canonical form, and the decoding,
    // segment splitting and re-encoding of the full procedure (four allocations) would only rebuild the same bytes.
    if is_canonical(raw.as_bytes()) {
        return Ok(raw.to_owned());
    }
    normalize_in_full(raw)
}

/// [`normalize`] without its shortcut for paths that are canonical already.
fn normalize_in_full(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotOriginForm);
    }
    let decoded = decode(bytes)?;
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::InvalidUtf8)?;
    // C1 controls arrive as UTF-8 (`%C2%85`), so they are only visible after decoding.
    if decoded.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }

    let mut segments: Vec<&str> = Vec::new();
    // Whether the result ends with `/`: the input did, or its last segment was `.` or `..` (RFC 3986 §5.2.4).
    let mut trailing_slash = false;
    for segment in decoded[1..].split('/') {
        trailing_slash = false;
        match segment {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing_slash = true;
            }
            other => segments.push(other),
        }
    }

    let mut out = String::with_capacity(decoded.len() + 8);
    for segment in &segments {
        out.push('/');
        encode_segment(segment, &mut out);
    }
    if segments.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

/// True when `path` is already in the canonical form: a leading `/`, then only raw path bytes between slashes (no
/// escape to decode or re-encode), no empty segment but a trailing one (no `//` to collapse) and no `.` or `..`
/// segment to resolve. For such a path every step of [`normalize`] is the identity; a property test checks that
/// the full procedure agrees.
fn is_canonical(path: &[u8]) -> bool {
    let Some(rest) = path.strip_prefix(b"/") else { return false };
    let mut segments = rest.split(|&b| b == b'/').peekable();
    while let Some(segment) = segments.next() {
        let canonical = match segment {
            [] => segments.peek().is_none(),
            b"." | b".." => false,
            s => s.iter().all(|&b| is_raw_path_byte(b)),
        };
        if !canonical {
            return false;
        }
    }
    true
}

/// Percent-decodes the whole path, refusing the bytes and escapes listed in the module docs.
fn decode(bytes: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::MalformedEscape);
                };
                let v = hi << 4 | lo;
                match v {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::Backslash),
                    0x00..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                    _ => out.push(v),
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::PathParameter),
            b'?' | b'#' => return Err(PathError::QueryOrFragment),
            0x00..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Checked on the decoded bytes so that `%25%34%31` (which decodes to `%41`) is caught as well as `%2541`.
    if out.windows(3).any(|w| w[0] == b'%' && hex_value(w[1]).is_some() && hex_value(w[2]).is_some()) {
        return Err(PathError::DoubleEncoding);
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Bytes written raw in a canonical segment: RFC 3986 `pchar` minus `;` and `%`.
fn is_raw_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(b, b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=')
        || matches!(b, b':' | b'@')
}

fn encode_segment(segment: &str, out: &mut String) {
    for &b in segment.as_bytes() {
        if is_raw_path_byte(b) {
            out.push(b as char);
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(raw: &str) -> String {
        match normalize(raw) {
            Ok(p) => p,
            Err(e) => panic!("{raw:?} was refused: {e}"),
        }
    }

    #[test]
    fn canonical_paths_are_recognised() {
        for p in ["/", "/api", "/api/", "/api/users/42", "/a-b_c.d~e", "/x:y@z", "/.well-known/x", "/a..b/"] {
            assert!(is_canonical(p.as_bytes()), "{p}");
        }
        for p in ["", "a", "//", "//a", "/a//b", "/.", "/./a", "/a/..", "/a/../", "/a%20b", "/caf\u{e9}", "/a;b", "/a\\b", "/a b"] {
            assert!(!is_canonical(p.as_bytes()), "{p}");
        }
    }

    #[test]
    fn plain_paths_are_unchanged() {
        for p in ["/", "/api", "/api/", "/api/users/42", "/a-b_c.d~e", "/x:y@z", "/a,b=c+d!$&'()*"] {
            assert_eq!(ok(p), p);
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded() {
        assert_eq!(ok("/adm%69n"), "/admin");
        assert_eq!(ok("/%41%7e%7E%2D"), "/A~~-");
        assert_eq!(ok("/a%2Bb"), "/a+b");
    }

    #[test]
    fn other_bytes_are_encoded_upper_case() {
        assert_eq!(ok("/a%20b"), "/a%20b");
        assert_eq!(ok("/a%3fb"), "/a%3Fb");
        assert_eq!(ok("/caf%c3%a9"), "/caf%C3%A9");
        assert_eq!(ok("/café"), "/caf%C3%A9");
        assert_eq!(ok("/a\"b"), "/a%22b");
        assert_eq!(ok("/x%3By"), "/x%3By");
        // A lone `%` that is not an escape after decoding is kept, encoded.
        assert_eq!(ok("/100%25"), "/100%25");
        assert_eq!(ok("/%25zz"), "/%25zz");
    }

    #[test]
    fn dot_segments_are_resolved() {
        assert_eq!(ok("/public/../admin"), "/admin");
        assert_eq!(ok("/public/./x"), "/public/x");
        assert_eq!(ok("/a/b/.."), "/a/");
        assert_eq!(ok("/a/b/."), "/a/b/");
        assert_eq!(ok("/a/.."), "/");
        assert_eq!(ok("/."), "/");
        assert_eq!(ok("/public/%2e%2e/admin"), "/admin");
        assert_eq!(ok("/public/%2E%2e/admin"), "/admin");
        assert_eq!(ok("/public/.%2e/admin"), "/admin");
        assert_eq!(ok("/x/%2e/y"), "/x/y");
        // Not dot segments: kept as names.
        assert_eq!(ok("/.../x"), "/.../x");
        assert_eq!(ok("/.well-known/jwks.json"), "/.well-known/jwks.json");
    }

    #[test]
    fn repeated_slashes_collapse() {
        assert_eq!(ok("//admin"), "/admin");
        assert_eq!(ok("/a//b///c"), "/a/b/c");
        assert_eq!(ok("/a//"), "/a/");
        assert_eq!(ok("//"), "/");
    }

    #[test]
    fn refusals() {
        use PathError::*;
        let cases: &[(&str, PathError)] = &[
            ("", NotOriginForm),
            ("*", NotOriginForm),
            ("admin", NotOriginForm),
            ("http://evil/admin", NotOriginForm),
            ("/admin%2f..", EncodedSlash),
            ("/admin%2Fx", EncodedSlash),
            ("/a\\b", Backslash),
            ("/a%5cb", Backslash),
            ("/a%5C..%5Cadmin", Backslash),
            ("/a%00", ControlCharacter),
            ("/a\0", ControlCharacter),
            ("/a%0d%0aX-Evil:1", ControlCharacter),
            ("/a%7f", ControlCharacter),
            ("/a%c2%85", ControlCharacter),
            ("/a\tb", ControlCharacter),
            ("/%252f", DoubleEncoding),
            ("/%252e%252e/admin", DoubleEncoding),
            ("/%25%32%46", DoubleEncoding),
            ("/%", MalformedEscape),
            ("/%2", MalformedEscape),
            ("/%zz", MalformedEscape),
            ("/%c0%ae%c0%ae/admin", InvalidUtf8),
            ("/%ff", InvalidUtf8),
            ("/..", AboveRoot),
            ("/a/../..", AboveRoot),
            ("/%2e%2e/admin", AboveRoot),
            ("/admin;x", PathParameter),
            ("/public/..;/admin", PathParameter),
            ("/a?b", QueryOrFragment),
            ("/a#b", QueryOrFragment),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw).as_ref(), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn case_is_preserved() {
        // Starlette's routing is case-sensitive, so is ours: `/ADMIN` is a different path.
        assert_eq!(ok("/ADMIN"), "/ADMIN");
    }

    /// Characters that make path-confusion attempts likely: separators, dots, escapes of them, and odd bytes.
    fn path_strategy() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/".to_string()),
            Just("//".to_string()),
            Just(".".to_string()),
            Just("..".to_string()),
            Just("%2e".to_string()),
            Just("%2E".to_string()),
            Just("%2f".to_string()),
            Just("%5c".to_string()),
            Just("%25".to_string()),
            Just("%".to_string()),
            Just("%41".to_string()),
            Just("%20".to_string()),
            Just("%c3%a9".to_string()),
            Just(";".to_string()),
            Just("admin".to_string()),
            Just("public".to_string()),
            Just("é".to_string()),
            "[a-zA-Z0-9._~!$&'()*+,=:@%-]{1,4}".prop_map(|s| s),
            any::<char>().prop_map(|c| c.to_string()),
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|v| format!("/{}", v.concat()))
    }

    /// The properties below only mean something if the generator produces accepted paths, including ones with
    /// dot segments and escapes, often enough.
    #[test]
    fn strategy_exercises_accepting_paths() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let strategy = path_strategy();
        let (mut accepted, mut tricky) = (0, 0);
        for _ in 0..2000 {
            let raw = strategy.new_tree(&mut runner).unwrap().current();
            if normalize(&raw).is_ok() {
                accepted += 1;
                if raw.contains("..") || raw.to_ascii_lowercase().contains("%2e") || raw.contains("//") {
                    tricky += 1;
                }
            }
        }
        assert!(accepted >= 200, "only {accepted} of 2000 generated paths were accepted");
        assert!(tricky >= 50, "only {tricky} accepted paths had dot segments, %2e or //");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn normalized_paths_are_canonical(raw in path_strategy()) {
            if let Ok(p) = normalize(&raw) {
                prop_assert!(p.starts_with('/'));
                prop_assert!(!p.contains("//"), "{p}");
                prop_assert!(!p.split('/').any(|s| s == "." || s == ".."), "{p}");
                let lower = p.to_ascii_lowercase();
                prop_assert!(!lower.contains("%2f") && !lower.contains("%5c"), "{p}");
                prop_assert!(!p.contains('\\') && !p.contains(';'), "{p}");
                prop_assert!(p.is_ascii(), "{p}");
                prop_assert_eq!(normalize(&p), Ok(p.clone()));
                prop_assert_eq!(normalize_in_full(&p), Ok(p.clone()));
            }
        }

        /// The shortcut for canonical paths is exact: whenever it applies, the full procedure returns the path
        /// unchanged. (Not the converse: `/a%20b` is canonical but escaped, so it takes the full way.)
        #[test]
        fn the_canonical_shortcut_agrees_with_the_full_procedure(
            raw in prop_oneof![path_strategy(), "/[a-z./%;~-]{0,12}", "(/[a-zA-Z0-9._~-]{0,3}){0,5}/?"]
        ) {
            let full = normalize_in_full(&raw);
            if is_canonical(raw.as_bytes()) {
                prop_assert_eq!(full.as_deref(), Ok(raw.as_str()));
            }
            prop_assert_eq!(normalize(&raw), full);
        }

        /// Whatever the spelling, a path lands under `/admin` after normalization exactly when its decoded,
        /// dot-resolved form does: checked against an independent, naive reference implementation.
        #[test]
        fn no_spelling_escapes_a_prefix(raw in path_strategy()) {
            if let Ok(p) = normalize(&raw) {
                let reference = reference_resolve(&raw);
                prop_assert_eq!(Some(p.clone()), reference.clone(), "raw {:?}", raw);
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(raw in ".*") {
            let _ = normalize(&raw);
            let _ = normalize(&format!("/{raw}"));
        }
    }

    /// A deliberately simple second implementation: decode everything with the `percent-encoding` crate, split on
    /// `/`, resolve dots with a stack, re-encode. Only used where `normalize` accepted the input.
    fn reference_resolve(raw: &str) -> Option<String> {
        let decoded = percent_encoding::percent_decode_str(raw).decode_utf8().ok()?;
        let mut stack: Vec<&str> = Vec::new();
        let parts: Vec<&str> = decoded.split('/').skip(1).collect();
        let mut trailing = false;
        for part in &parts {
            trailing = matches!(*part, "" | "." | "..");
            match *part {
                "" | "." => {}
                ".." => {
                    stack.pop()?;
                }
                s => stack.push(s),
            }
        }
        const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~')
            .remove(b'!')
            .remove(b'$')
            .remove(b'&')
            .remove(b'\'')
            .remove(b'(')
            .remove(b')')
            .remove(b'*')
            .remove(b'+')
            .remove(b',')
            .remove(b'=')
            .remove(b':')
            .remove(b'@');
        let mut out = String::new();
        for s in &stack {
            out.push('/');
            out.push_str(&percent_encoding::utf8_percent_encode(s, SET).to_string());
        }
        if stack.is_empty() || trailing {
            out.push('/');
        }
        Some(out)
    }
}
