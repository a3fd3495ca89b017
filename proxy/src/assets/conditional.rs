//! Conditional GET: `If-None-Match` and `If-Modified-Since` (RFC 9110 §13.1.2, §13.1.3, §13.2.2).

use std::time::SystemTime;

use http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH};
use http::HeaderMap;

/// True when the client's cached copy is current, so a 304 replaces the body.
///
/// `If-None-Match` wins over `If-Modified-Since` whenever it is present (even unreadable), as §13.2.2 orders:
/// an ETag is exact, a date has one-second resolution. Comparison is weak (`W/"x"` matches `"x"`), the one
/// §13.1.2 asks for on GET and HEAD; `*` matches any existing file.
pub(super) fn not_modified(headers: &HeaderMap, etag: &str, last_modified: Option<SystemTime>) -> bool {
    let mut if_none_match = headers.get_all(IF_NONE_MATCH).iter().peekable();
    if if_none_match.peek().is_some() {
        let ours = opaque(etag);
        return if_none_match
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .any(|tag| tag == "*" || opaque(tag) == ours);
    }
    let Some(last_modified) = last_modified else { return false };
    let Some(since) = headers
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v.trim()).ok())
    else {
        return false;
    };
    last_modified <= since
}

/// The opaque tag with any weakness prefix removed.
fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::{Duration, UNIX_EPOCH};

    const TAG: &str = "\"0123abcd\"";

    fn headers(pairs: &[(http::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn etag_lists_weak_tags_and_star() {
        let t = Some(UNIX_EPOCH);
        assert!(not_modified(&headers(&[(IF_NONE_MATCH, TAG)]), TAG, t));
        assert!(not_modified(&headers(&[(IF_NONE_MATCH, "\"other\", W/\"0123abcd\"")]), TAG, t));
        assert!(not_modified(&headers(&[(IF_NONE_MATCH, "*")]), TAG, t));
        assert!(!not_modified(&headers(&[(IF_NONE_MATCH, "\"other\"")]), TAG, t));
        // Unquoted is not the same tag.
        assert!(!not_modified(&headers(&[(IF_NONE_MATCH, "0123abcd")]), TAG, t));
        assert!(not_modified(&headers(&[(IF_NONE_MATCH, "\"a\""), (IF_NONE_MATCH, TAG)]), TAG, t));
    }

    #[test]
    fn date_compares_at_second_resolution() {
        let lm = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |t: SystemTime| httpdate::fmt_http_date(t);
        assert!(not_modified(&headers(&[(IF_MODIFIED_SINCE, &at(lm))]), TAG, Some(lm)));
        assert!(not_modified(&headers(&[(IF_MODIFIED_SINCE, &at(lm + Duration::from_secs(60)))]), TAG, Some(lm)));
        assert!(!not_modified(&headers(&[(IF_MODIFIED_SINCE, &at(lm - Duration::from_secs(1)))]), TAG, Some(lm)));
        assert!(!not_modified(&headers(&[(IF_MODIFIED_SINCE, "yesterday")]), TAG, Some(lm)));
        assert!(!not_modified(&headers(&[(IF_MODIFIED_SINCE, &at(lm))]), TAG, None));
    }

    #[test]
    fn etag_mismatch_is_not_rescued_by_a_date() {
        let lm = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = httpdate::fmt_http_date(lm + Duration::from_secs(60));
        let h = headers(&[(IF_NONE_MATCH, "\"stale\""), (IF_MODIFIED_SINCE, &date)]);
        assert!(!not_modified(&h, TAG, Some(lm)));
    }

    #[test]
    fn nothing_conditional_is_modified() {
        assert!(!not_modified(&HeaderMap::new(), TAG, Some(UNIX_EPOCH)));
    }
}
