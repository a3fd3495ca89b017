//! Who is asking: a person navigating (send them to sign in) or code (answer 401, never a redirect to the
//! provider, which a `fetch()` would follow into a CORS error); and whether an unsafe request came from our
//! own pages (CSRF).
//!
//! Navigation detection follows mod_auth_openidc's default (the most complete of the peers): `Sec-Fetch-*`
//! when the browser sends it (every current browser does), else content negotiation on `Accept`.

use http::header::{HeaderMap, ACCEPT, ORIGIN};
use http::Method;

const SEC_FETCH_MODE: &str = "sec-fetch-mode";
const SEC_FETCH_DEST: &str = "sec-fetch-dest";
const SEC_FETCH_SITE: &str = "sec-fetch-site";
const X_REQUESTED_WITH: &str = "x-requested-with";
const ACCESS_CONTROL_REQUEST_METHOD: &str = "access-control-request-method";

/// True for a top-level browser navigation, which may be redirected to the provider:
/// GET or HEAD, no `X-Requested-With`, and
/// - with `Sec-Fetch-Mode`: it is `navigate` (and `Sec-Fetch-Dest`, when sent, is `document`: an iframe cannot
///   show the provider's page, which refuses framing);
/// - without it: `Accept` prefers `text/html` (or XHTML) over JSON and lists it explicitly (a bare `*/*` is
///   what `curl` and `fetch()` send);
/// - either way, not when `Accept` prefers JSON.
pub fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    if headers.contains_key(X_REQUESTED_WITH) {
        return false;
    }
    let accept = accept_q(headers);
    if accept.json > 0.0 && accept.json >= accept.html {
        return false;
    }
    match header_str(headers, SEC_FETCH_MODE) {
        Some(mode) => {
            mode.eq_ignore_ascii_case("navigate")
                && header_str(headers, SEC_FETCH_DEST).is_none_or(|d| d.eq_ignore_ascii_case("document"))
        }
        None => accept.html > 0.0,
    }
}

/// A CORS preflight: `OPTIONS` with `Access-Control-Request-Method`. It never carries credentials, so it is not
/// authenticated.
pub fn is_cors_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// Whether a session-authenticated request may proceed as far as CSRF goes.
/// Safe methods (GET, HEAD, OPTIONS, TRACE) always may. Unsafe ones need
/// - an `Origin` equal to `own_origin` or one of `allowed` (scheme, host and port; case and default ports do not
///   matter), or
/// - no `Origin` but `Sec-Fetch-Site: same-origin`.
///
/// Neither header, `Origin: null`, or a cross-site/same-site `Sec-Fetch-Site` is refused (fail closed: every
/// browser sends `Origin` on cross-origin POSTs, and on all non-GET fetches).
pub fn csrf_ok(method: &Method, headers: &HeaderMap, own_origin: &str, allowed: &[String]) -> bool {
    if method.is_safe() {
        return true;
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let Ok(origin) = origin.to_str() else { return false };
        let Some(origin) = normalize_origin(origin) else {
            return false;
        };
        return normalize_origin(own_origin).is_some_and(|own| own == origin)
            || allowed.iter().filter_map(|a| normalize_origin(a)).any(|a| a == origin);
    }
    header_str(headers, SEC_FETCH_SITE).is_some_and(|s| s.eq_ignore_ascii_case("same-origin"))
}

/// `scheme://host[:port]` lower-cased, default port dropped, trailing `/` tolerated; `None` for `null` or
/// anything that is not an http(s) origin.
fn normalize_origin(s: &str) -> Option<String> {
    let s = s.trim();
    let s = s.strip_suffix('/').unwrap_or(s);
    let url = url::Url::parse(s).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.path() != "/" || url.query().is_some() {
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let host = url.host_str()?;
    // `Url` lower-cases the host and drops default ports already.
    Some(match url.port() {
        Some(p) => format!("{}://{}:{}", url.scheme(), host, p),
        None => format!("{}://{}", url.scheme(), host),
    })
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

struct AcceptQ {
    html: f32,
    json: f32,
}

/// Highest q given to HTML (`text/html`, `application/xhtml+xml`) and to JSON (`application/json`,
/// `application/*+json`), over every `Accept` header. Wildcards count for neither.
fn accept_q(headers: &HeaderMap) -> AcceptQ {
    let mut q = AcceptQ { html: 0.0, json: 0.0 };
    for value in headers.get_all(ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let weight = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                .find_map(|v| v.trim().parse::<f32>().ok())
                .filter(|w| w.is_finite())
                .map_or(1.0, |w| w.clamp(0.0, 1.0));
            if media == "text/html" || media == "application/xhtml+xml" {
                q.html = q.html.max(weight);
            } else if media == "application/json" || (media.starts_with("application/") && media.ends_with("+json")) {
                q.json = q.json.max(weight);
            }
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// (method, request headers, expected answer, what the case is).
    type Case<'a> = (&'a Method, &'a [(&'static str, &'static str)], bool, &'a str);

    const BROWSER_ACCEPT: &str =
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn navigation_matrix() {
        let get = Method::GET;
        let cases: &[Case] = &[
            (
                &get,
                &[
                    ("sec-fetch-mode", "navigate"),
                    ("sec-fetch-dest", "document"),
                    ("accept", BROWSER_ACCEPT),
                ],
                true,
                "browser navigation",
            ),
            (
                &Method::HEAD,
                &[("sec-fetch-mode", "navigate")],
                true,
                "HEAD navigation",
            ),
            (
                &get,
                &[
                    ("sec-fetch-mode", "cors"),
                    ("sec-fetch-dest", "empty"),
                    ("accept", "*/*"),
                ],
                false,
                "fetch()",
            ),
            (
                &get,
                &[("sec-fetch-mode", "no-cors"), ("accept", BROWSER_ACCEPT)],
                false,
                "img/script",
            ),
            (
                &get,
                &[("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "iframe")],
                false,
                "iframe",
            ),
            (
                &get,
                &[("sec-fetch-mode", "navigate"), ("x-requested-with", "XMLHttpRequest")],
                false,
                "XHR marker",
            ),
            (
                &get,
                &[("sec-fetch-mode", "navigate"), ("accept", "application/json")],
                false,
                "navigate but JSON",
            ),
            (&get, &[("accept", BROWSER_ACCEPT)], true, "old browser, no Sec-Fetch"),
            (&get, &[("accept", "*/*")], false, "curl"),
            (&get, &[], false, "no headers"),
            (&get, &[("accept", "application/json")], false, "API client"),
            (
                &get,
                &[("accept", "application/json, text/html")],
                false,
                "tie goes to API",
            ),
            (
                &get,
                &[("accept", "application/json;q=0.5, text/html")],
                true,
                "HTML preferred",
            ),
            (
                &get,
                &[("accept", "text/html;q=0.2, application/vnd.api+json")],
                false,
                "+json preferred",
            ),
            (&get, &[("accept", "text/html;q=0")], false, "html refused"),
            (
                &get,
                &[("accept", "text/html"), ("x-requested-with", "XMLHttpRequest")],
                false,
                "jQuery",
            ),
            (
                &Method::POST,
                &[("sec-fetch-mode", "navigate"), ("accept", BROWSER_ACCEPT)],
                false,
                "form POST",
            ),
            (&Method::DELETE, &[("accept", "text/html")], false, "DELETE"),
        ];
        for (m, hs, want, what) in cases {
            assert_eq!(is_navigation(m, &h(hs)), *want, "{what}");
        }
    }

    #[test]
    fn preflight() {
        assert!(is_cors_preflight(
            &Method::OPTIONS,
            &h(&[("access-control-request-method", "POST")])
        ));
        assert!(!is_cors_preflight(&Method::OPTIONS, &h(&[])));
        assert!(!is_cors_preflight(
            &Method::GET,
            &h(&[("access-control-request-method", "POST")])
        ));
    }

    #[test]
    fn csrf_matrix() {
        let own = "https://app.example.com";
        let allowed = vec![
            "https://spa.example.com".to_string(),
            "http://localhost:5173".to_string(),
        ];
        let post = Method::POST;
        let cases: &[Case] = &[
            (&Method::GET, &[("origin", "https://evil.com")], true, "safe method"),
            (&Method::HEAD, &[], true, "HEAD"),
            (&Method::OPTIONS, &[], true, "OPTIONS"),
            (&post, &[("origin", "https://app.example.com")], true, "same origin"),
            (
                &post,
                &[("origin", "https://APP.example.com:443")],
                true,
                "case and default port",
            ),
            (&post, &[("origin", "https://spa.example.com")], true, "allowed origin"),
            (&post, &[("origin", "http://localhost:5173")], true, "allowed with port"),
            (&post, &[("origin", "http://localhost:5174")], false, "other port"),
            (&post, &[("origin", "http://app.example.com")], false, "other scheme"),
            (
                &post,
                &[("origin", "https://app.example.com.evil.com")],
                false,
                "suffix trick",
            ),
            (&post, &[("origin", "https://evil.com")], false, "cross site"),
            (&post, &[("origin", "null")], false, "opaque origin"),
            (
                &post,
                &[("origin", "https://evil.com"), ("sec-fetch-site", "same-origin")],
                false,
                "Origin wins",
            ),
            (
                &post,
                &[("sec-fetch-site", "same-origin")],
                true,
                "no Origin, same-origin fetch",
            ),
            (&post, &[("sec-fetch-site", "same-site")], false, "sibling subdomain"),
            (&post, &[("sec-fetch-site", "cross-site")], false, "cross-site"),
            (&post, &[("sec-fetch-site", "none")], false, "none"),
            (&post, &[], false, "neither header"),
            (
                &Method::PUT,
                &[("origin", "https://app.example.com")],
                true,
                "PUT same origin",
            ),
            (&Method::DELETE, &[], false, "DELETE bare"),
            (&Method::PATCH, &[("origin", "https://evil.com")], false, "PATCH cross"),
        ];
        for (m, hs, want, what) in cases {
            assert_eq!(csrf_ok(m, &h(hs), own, &allowed), *want, "{what}");
        }
        // own origin given with a trailing slash or a default port still matches.
        assert!(csrf_ok(
            &post,
            &h(&[("origin", "https://app.example.com")]),
            "https://app.example.com:443/",
            &[]
        ));
    }
}
