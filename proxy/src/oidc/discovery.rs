//! The provider's discovery document, and the fetch rules every call to the provider follows.
//!
//! Discovery is trusted for exactly one thing the sidecar cannot configure: where the keys and endpoints live. So
//! the document must name the configured issuer exactly (OpenID Connect Discovery 1.0 §4.3), and every URL in it
//! that the sidecar fetches must be HTTPS (plain HTTP only for loopback, for tests): a document that points the
//! JWKS elsewhere would otherwise let whoever answers that URL mint tokens.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::OidcError;

/// Upper bound of a discovery document or JWKS body. Entra's are a few KB; this stops a hostile or broken endpoint
/// from making the sidecar buffer without limit.
pub const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// What discovery tells the sidecar (only the fields it uses; unknown ones are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    #[serde(default)]
    pub frontchannel_logout_supported: Option<bool>,
}

impl ProviderMetadata {
    /// Parses a discovery document fetched from `url` and checks it against the configured issuer.
    pub fn parse(body: &[u8], url: &str, expected_issuer: &str) -> Result<ProviderMetadata, OidcError> {
        let meta: ProviderMetadata = serde_json::from_slice(body).map_err(|e| OidcError::Invalid {
            what: "discovery document",
            url: url.to_string(),
            reason: format!("not a valid OpenID provider metadata document: {e}"),
        })?;
        if meta.issuer != expected_issuer {
            return Err(OidcError::IssuerMismatch {
                url: url.to_string(),
                found: meta.issuer,
                expected: expected_issuer.to_string(),
            });
        }
        check_fetch_url(&meta.jwks_uri, "jwks_uri")?;
        check_fetch_url(&meta.token_endpoint, "token_endpoint")?;
        Ok(meta)
    }
}

/// A URL the sidecar will send requests to: HTTPS, or HTTP to a loopback host (tests, local demo).
pub fn check_fetch_url(raw: &str, what: &'static str) -> Result<url::Url, OidcError> {
    let url = url::Url::parse(raw).map_err(|e| OidcError::InvalidUrl {
        what,
        url: raw.to_string(),
        reason: e.to_string(),
    })?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(OidcError::InsecureUrl { what, url: raw.to_string() }),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The body of a successful GET plus its freshness (`Cache-Control: max-age` minus `Age`; zero for
/// `no-cache`/`no-store`).
pub(crate) struct Fetched {
    pub body: Vec<u8>,
    pub max_age: Option<Duration>,
}

/// GET `url`, 200 only, body capped at [`MAX_DOCUMENT_BYTES`]. The client never follows redirects (see `KeyStore`).
pub(crate) async fn fetch(client: &reqwest::Client, url: &str, what: &'static str) -> Result<Fetched, OidcError> {
    let fail = |reason: String| OidcError::Fetch { what, url: url.to_string(), reason };
    let mut resp = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| fail(error_chain(&e)))?;
    let status = resp.status();
    if status != reqwest::StatusCode::OK {
        return Err(OidcError::Status { what, url: url.to_string(), status: status.as_u16() });
    }
    let max_age = freshness(resp.headers());
    if resp.content_length().is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64) {
        return Err(OidcError::Invalid { what, url: url.to_string(), reason: "response too large".into() });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| fail(error_chain(&e)))? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(OidcError::Invalid { what, url: url.to_string(), reason: "response too large".into() });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched { body, max_age })
}

fn freshness(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let cc = headers.get_all(reqwest::header::CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok());
    let max_age = parse_cache_control(cc)?;
    let age = headers
        .get(reqwest::header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Some(max_age.saturating_sub(Duration::from_secs(age)))
}

/// `max-age=N` from Cache-Control values; `no-cache` / `no-store` mean "refresh as soon as allowed" (zero).
pub fn parse_cache_control<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Duration> {
    let mut max_age = None;
    for value in values {
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive, None),
            };
            if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
                return Some(Duration::ZERO);
            }
            if name.eq_ignore_ascii_case("max-age") && max_age.is_none() {
                max_age = arg.and_then(|a| a.parse::<u64>().ok()).map(Duration::from_secs);
            }
        }
    }
    max_age
}

/// The error and its causes on one line ("error sending request: connection refused"), without the URL twice.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = if let Some(re) = e.downcast_ref::<reqwest::Error>() {
        if re.is_timeout() {
            "timed out".to_string()
        } else if re.is_connect() {
            "cannot connect".to_string()
        } else {
            re.to_string()
        }
    } else {
        e.to_string()
    };
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(issuer: &str, jwks: &str) -> Vec<u8> {
        serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": "https://idp.example/authorize",
            "token_endpoint": "https://idp.example/token",
            "jwks_uri": jwks,
            "end_session_endpoint": "https://idp.example/logout",
            "some_future_field": {"x": 1},
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn parses_and_checks_issuer_exactly() {
        let m = ProviderMetadata::parse(
            &doc("https://idp.example/t/v2.0", "https://idp.example/keys"),
            "u",
            "https://idp.example/t/v2.0",
        )
        .unwrap();
        assert_eq!(m.jwks_uri, "https://idp.example/keys");
        assert_eq!(m.end_session_endpoint.as_deref(), Some("https://idp.example/logout"));
        assert_eq!(m.userinfo_endpoint, None);

        let err = ProviderMetadata::parse(
            &doc("https://idp.example/t/v2.0/", "https://idp.example/keys"),
            "u",
            "https://idp.example/t/v2.0",
        )
        .unwrap_err();
        assert!(matches!(err, OidcError::IssuerMismatch { .. }), "{err}");
        assert!(err.to_string().contains("https://idp.example/t/v2.0/"), "{err}");
    }

    #[test]
    fn refuses_plain_http_jwks_except_loopback() {
        let err = ProviderMetadata::parse(&doc("i", "http://idp.example/keys"), "u", "i").unwrap_err();
        assert!(matches!(err, OidcError::InsecureUrl { what: "jwks_uri", .. }), "{err}");
        assert!(ProviderMetadata::parse(&doc("i", "http://127.0.0.1:8080/keys"), "u", "i").is_ok());
        assert!(ProviderMetadata::parse(&doc("i", "http://[::1]:8080/keys"), "u", "i").is_ok());
        assert!(ProviderMetadata::parse(&doc("i", "http://localhost/keys"), "u", "i").is_ok());
        assert!(check_fetch_url("http://127.0.0.1.evil.example/keys", "x").is_err());
        assert!(check_fetch_url("ftp://idp.example/keys", "x").is_err());
        assert!(check_fetch_url("not a url", "x").is_err());
    }

    #[test]
    fn missing_required_field_is_reported() {
        let body = br#"{"issuer":"i","jwks_uri":"https://x/k"}"#;
        let err = ProviderMetadata::parse(body, "https://x/.well-known/openid-configuration", "i").unwrap_err();
        assert!(err.to_string().contains("authorization_endpoint"), "{err}");
    }

    #[test]
    fn cache_control() {
        assert_eq!(parse_cache_control(["public, max-age=3600"]), Some(Duration::from_secs(3600)));
        assert_eq!(parse_cache_control(["max-age=\"60\""]), Some(Duration::from_secs(60)));
        assert_eq!(parse_cache_control(["private", "MAX-AGE=5"]), Some(Duration::from_secs(5)));
        assert_eq!(parse_cache_control(["no-cache"]), Some(Duration::ZERO));
        assert_eq!(parse_cache_control(["max-age=10, no-store"]), Some(Duration::ZERO));
        assert_eq!(parse_cache_control(["public"]), None);
        assert_eq!(parse_cache_control(["max-age=abc"]), None);
        assert_eq!(parse_cache_control(Vec::<&str>::new()), None);
    }
}
