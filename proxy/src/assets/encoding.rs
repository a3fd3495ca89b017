//! `Accept-Encoding` negotiation between the identity file and its precompressed `.br` / `.gz` siblings.
//!
//! Only codings the build already produced are offered: the sidecar never compresses on the fly, so the CPU cost of
//! a response stays a refcount clone whatever the client asks for.

use http::header::ACCEPT_ENCODING;
use http::HeaderMap;

/// The content coding of the bytes a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Coding {
    Identity,
    Gzip,
    Brotli,
}

impl Coding {
    /// The `Content-Encoding` value, `None` for identity (which is never named on a response).
    pub(super) fn header_value(self) -> Option<&'static str> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some("gzip"),
            Coding::Brotli => Some("br"),
        }
    }
}

/// Picks the coding to send, following RFC 9110 §12.5.3:
/// - no `Accept-Encoding` at all: identity (any coding would be allowed, but an old client that sent nothing is
///   better served plain);
/// - a coding not listed is refused unless `*` lists it; `q=0` refuses; an item with a malformed `q` is ignored;
/// - identity is acceptable unless `identity;q=0` (or `*;q=0` without `identity`) refuses it, and when unlisted it
///   loses every tie, so `gzip` alone means "gzip please";
/// - the highest q among the variants that exist wins, ties going br, then gzip, then identity (smaller first).
///
/// When everything available is refused, identity is sent anyway: a 406 for a static file helps nobody, and the
/// RFC lets the server ignore the header rather than fail.
pub(super) fn choose(headers: &HeaderMap, has_gzip: bool, has_br: bool) -> Coding {
    if !has_gzip && !has_br {
        return Coding::Identity;
    }
    let mut present = false;
    let (mut br, mut gzip, mut identity, mut star): (Option<f32>, Option<f32>, Option<f32>, Option<f32>) =
        (None, None, None, None);
    for value in headers.get_all(ACCEPT_ENCODING) {
        present = true;
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            if coding.is_empty() {
                continue;
            }
            let mut q = Some(1.0);
            for param in parts {
                if let Some((k, v)) = param.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        q = parse_q(v.trim());
                    }
                }
            }
            let Some(q) = q else { continue };
            let slot = if coding.eq_ignore_ascii_case("br") {
                &mut br
            } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                &mut gzip
            } else if coding.eq_ignore_ascii_case("identity") {
                &mut identity
            } else if coding == "*" {
                &mut star
            } else {
                continue;
            };
            // Listed twice: the kinder value wins, as most servers do.
            *slot = Some(slot.map_or(q, |old| old.max(q)));
        }
    }
    if !present {
        return Coding::Identity;
    }
    let q_br = if has_br { br.or(star).unwrap_or(0.0) } else { 0.0 };
    let q_gzip = if has_gzip { gzip.or(star).unwrap_or(0.0) } else { 0.0 };
    let q_identity = identity.or(star).unwrap_or(f32::MIN_POSITIVE);

    let mut best = (Coding::Identity, 0.0f32);
    for (coding, q) in [(Coding::Brotli, q_br), (Coding::Gzip, q_gzip), (Coding::Identity, q_identity)] {
        if q > best.1 {
            best = (coding, q);
        }
    }
    best.0
}

/// An RFC 9110 `qvalue`: `0`, `1`, or up to three decimals. Anything else is `None` (the item is ignored).
fn parse_q(v: &str) -> Option<f32> {
    if v.is_empty() || v.len() > 5 || !v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let q: f32 = v.parse().ok()?;
    (0.0..=1.0).contains(&q).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn pick(accept: Option<&str>, gzip: bool, br: bool) -> Coding {
        let mut h = HeaderMap::new();
        if let Some(a) = accept {
            h.insert(ACCEPT_ENCODING, HeaderValue::from_str(a).unwrap());
        }
        choose(&h, gzip, br)
    }

    #[test]
    fn browsers_get_brotli_then_gzip() {
        assert_eq!(pick(Some("gzip, deflate, br, zstd"), true, true), Coding::Brotli);
        assert_eq!(pick(Some("gzip, deflate, br"), true, false), Coding::Gzip);
        assert_eq!(pick(Some("gzip, deflate"), true, true), Coding::Gzip);
        assert_eq!(pick(Some("deflate"), true, true), Coding::Identity);
    }

    #[test]
    fn absent_header_or_no_variant_is_identity() {
        assert_eq!(pick(None, true, true), Coding::Identity);
        assert_eq!(pick(Some("br"), false, false), Coding::Identity);
        assert_eq!(pick(Some(""), true, true), Coding::Identity);
    }

    #[test]
    fn q_values_rank_and_q0_refuses() {
        assert_eq!(pick(Some("br;q=0.5, gzip;q=0.9"), true, true), Coding::Gzip);
        assert_eq!(pick(Some("br;q=0, gzip"), true, true), Coding::Gzip);
        assert_eq!(pick(Some("br;q=0, gzip;q=0"), true, true), Coding::Identity);
        assert_eq!(pick(Some("gzip;q=0.000"), true, false), Coding::Identity);
        assert_eq!(pick(Some("br; Q=1.0"), true, true), Coding::Brotli);
        // identity explicitly preferred over compression.
        assert_eq!(pick(Some("identity;q=1, gzip;q=0.5"), true, false), Coding::Identity);
    }

    #[test]
    fn star_covers_unlisted_codings() {
        assert_eq!(pick(Some("*"), true, true), Coding::Brotli);
        assert_eq!(pick(Some("gzip;q=0, *"), true, false), Coding::Identity);
        assert_eq!(pick(Some("br;q=0, *;q=0.5"), true, true), Coding::Gzip);
    }

    #[test]
    fn malformed_items_are_ignored_not_trusted() {
        assert_eq!(pick(Some("br;q=2"), true, true), Coding::Identity);
        assert_eq!(pick(Some("br;q=abc, gzip"), true, true), Coding::Gzip);
        assert_eq!(pick(Some("br;q=-1"), true, true), Coding::Identity);
        assert_eq!(pick(Some(" , ;q=1, x-gzip"), true, true), Coding::Gzip);
    }

    #[test]
    fn several_header_lines_are_one_list() {
        let mut h = HeaderMap::new();
        h.append(ACCEPT_ENCODING, HeaderValue::from_static("gzip;q=0.2"));
        h.append(ACCEPT_ENCODING, HeaderValue::from_static("br"));
        assert_eq!(choose(&h, true, true), Coding::Brotli);
    }
}
