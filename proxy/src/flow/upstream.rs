//! The request head the app receives: the client's, minus what the sidecar owns, plus what it vouches for.
//!
//! Pure of Pingora: [`rewrite_headers`] edits an `http::HeaderMap`, which the gateway takes out of Pingora's head
//! and puts back, so the rules are tested here with plain maps.
//!
//! Header names reach the app lower-case (`x-auth-subject`, `oidc_claim_email`), as HTTP/2 and HTTP/3 send every
//! name: field names are case-insensitive (RFC 9110 §5.1), and every framework an app is written in (Starlette,
//! WSGI/CGI, PHP, servlets, Express, Go) looks them up that way. Keeping the client's and our own spelling would
//! mean going through Pingora's case-preserving map, which parses and allocates each name again per request and
//! keeps a second map beside the values: about 1.5 µs, nearly a tenth of a pass-through request (docs/benchmarks.md).

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::forwarded::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PORT, X_FORWARDED_PROTO};
use super::{AuthorizationHeader, CookieHeader, Forward};
use crate::identity::headers::{is_forwarding_header, is_identity_header};

/// A header the sidecar meant to send upstream could not be one (the app gets no request with it missing).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpstreamHeaderError {
    #[error("the {0} header for the upstream is not a valid header value")]
    InvalidValue(&'static str),
    #[error("the request has too many headers to add the identity headers")]
    TooManyHeaders,
}

/// Rewrites `headers` for the upstream of `forward`: takes out whatever the client sent in our identity namespace
/// (`prefix`, `OIDC_*`) and its forwarding headers, applies the `Authorization` and `Cookie` decisions, then appends
/// the identity headers and our `X-Forwarded-For/Proto/Host/Port`.
///
/// Taking out first lets the map grow at most once, by a reservation for exactly what is added, and makes appending
/// safe: none of the added names is left in the map, so no client value can sit beside ours.
pub fn rewrite_headers(headers: &mut HeaderMap, forward: &Forward, prefix: &str) -> Result<(), UpstreamHeaderError> {
    // Collected first (the map cannot be edited while iterated); the Vec allocates only when something matches.
    let replaced: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_identity_header(name.as_str(), prefix) || is_forwarding_header(name.as_str()))
        .cloned()
        .collect();
    for name in replaced {
        headers.remove(&name);
    }
    match &forward.authorization {
        AuthorizationHeader::Keep => {}
        AuthorizationHeader::Drop => {
            headers.remove(AUTHORIZATION);
        }
        AuthorizationHeader::Replace(v) => {
            let v = HeaderValue::from_str(v).map_err(|_| UpstreamHeaderError::InvalidValue("Authorization"))?;
            headers.insert(AUTHORIZATION, v);
        }
    }
    match &forward.cookie {
        CookieHeader::Keep => {}
        CookieHeader::Drop => {
            headers.remove(COOKIE);
        }
        CookieHeader::Replace(v) => {
            let v = HeaderValue::from_str(v).map_err(|_| UpstreamHeaderError::InvalidValue("Cookie"))?;
            headers.insert(COOKIE, v);
        }
    }

    let ext = &forward.external;
    let forwarded_for =
        HeaderValue::from_str(&ext.forwarded_for).map_err(|_| UpstreamHeaderError::InvalidValue("X-Forwarded-For"))?;
    let forwarded_host =
        HeaderValue::from_str(&ext.host).map_err(|_| UpstreamHeaderError::InvalidValue("X-Forwarded-Host"))?;
    let forwarded_port = match ext.port {
        443 => HeaderValue::from_static("443"),
        80 => HeaderValue::from_static("80"),
        p => HeaderValue::from(p),
    };
    headers.try_reserve(forward.identity.len() + 4).map_err(|_| UpstreamHeaderError::TooManyHeaders)?;
    for h in forward.identity.iter() {
        headers.try_append(h.name.clone(), h.value.clone()).map_err(|_| UpstreamHeaderError::TooManyHeaders)?;
    }
    let ours = [
        (X_FORWARDED_FOR, forwarded_for),
        (X_FORWARDED_PROTO, HeaderValue::from_static(ext.scheme)),
        (X_FORWARDED_HOST, forwarded_host),
        (X_FORWARDED_PORT, forwarded_port),
    ];
    for (name, value) in ours {
        headers.try_append(name, value).map_err(|_| UpstreamHeaderError::TooManyHeaders)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::flow::{External, IdentityHeader};

    fn forward(authorization: AuthorizationHeader, cookie: CookieHeader) -> Forward {
        let identity = ["x-auth-subject", "x-auth-method", "oidc_claim_email"]
            .iter()
            .map(|n| IdentityHeader {
                name: HeaderName::from_static(n),
                value: HeaderValue::from_str(&format!("ours-{n}")).unwrap(),
            })
            .collect();
        Forward {
            host: 0,
            upstream: "127.0.0.1:8000".parse().unwrap(),
            path_and_query: "/".into(),
            identity: Arc::new(identity),
            authorization,
            cookie,
            external: External {
                client_ip: Some([203, 0, 113, 7].into()),
                scheme: "https",
                host: "app.example.com".into(),
                port: 443,
                forwarded_for: "203.0.113.7, 10.0.0.9".into(),
            },
            set_cookies: Vec::new(),
            auth: "session",
        }
    }

    fn client_headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn all<'a>(h: &'a HeaderMap, name: &str) -> Vec<&'a str> {
        h.get_all(name).iter().map(|v| v.to_str().unwrap()).collect()
    }

    #[test]
    fn a_clients_identity_and_forwarding_headers_never_sit_beside_ours() {
        let mut h = client_headers(&[
            ("host", "app.example.com"),
            ("X-Auth-Subject", "spoofed-admin"),
            ("x_auth_method", "bearer"),
            ("OIDC_CLAIM_email", "boss@example.com"),
            ("OIDC-CLAIM-roles", "Admin"),
            ("X-Auth-Roles", "Admin"),
            ("x-forwarded-for", "1.2.3.4"),
            ("X_Forwarded_For", "5.6.7.8"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-port", "8443"),
            ("X_Forwarded_Port", "8444"),
            ("forwarded", "for=1.2.3.4;proto=https"),
            ("accept", "text/html"),
        ]);
        rewrite_headers(&mut h, &forward(AuthorizationHeader::Keep, CookieHeader::Keep), "X-Auth-").unwrap();

        assert_eq!(all(&h, "x-auth-subject"), ["ours-x-auth-subject"]);
        assert_eq!(all(&h, "x-auth-method"), ["ours-x-auth-method"]);
        assert_eq!(all(&h, "oidc_claim_email"), ["ours-oidc_claim_email"]);
        for gone in ["x_auth_method", "oidc-claim-roles", "x-auth-roles", "x_forwarded_for", "x_forwarded_port", "forwarded"] {
            assert!(h.get(gone).is_none(), "{gone} reached the app");
        }
        assert_eq!(all(&h, "x-forwarded-for"), ["203.0.113.7, 10.0.0.9"]);
        assert_eq!(all(&h, "x-forwarded-proto"), ["https"]);
        assert_eq!(all(&h, "x-forwarded-host"), ["app.example.com"]);
        assert_eq!(all(&h, "x-forwarded-port"), ["443"]);
        // What is not ours passes untouched.
        assert_eq!(all(&h, "host"), ["app.example.com"]);
        assert_eq!(all(&h, "accept"), ["text/html"]);
        assert_eq!(h.len(), 9);
    }

    #[test]
    fn authorization_and_cookie_follow_the_decision() {
        let client = [("authorization", "Bearer client"), ("cookie", "__Host-session=sealed; theme=dark")];

        let mut h = client_headers(&client);
        rewrite_headers(&mut h, &forward(AuthorizationHeader::Keep, CookieHeader::Keep), "X-Auth-").unwrap();
        assert_eq!(all(&h, "authorization"), ["Bearer client"]);
        assert_eq!(all(&h, "cookie"), ["__Host-session=sealed; theme=dark"]);

        let mut h = client_headers(&client);
        rewrite_headers(&mut h, &forward(AuthorizationHeader::Drop, CookieHeader::Drop), "X-Auth-").unwrap();
        assert!(h.get("authorization").is_none());
        assert!(h.get("cookie").is_none());

        let mut h = client_headers(&client);
        let replace =
            forward(AuthorizationHeader::Replace("Bearer session-at".into()), CookieHeader::Replace("theme=dark".into()));
        rewrite_headers(&mut h, &replace, "X-Auth-").unwrap();
        assert_eq!(all(&h, "authorization"), ["Bearer session-at"]);
        assert_eq!(all(&h, "cookie"), ["theme=dark"]);
    }

    #[test]
    fn a_value_that_cannot_be_a_header_refuses_the_forward() {
        let mut h = HeaderMap::new();
        let bad = forward(AuthorizationHeader::Replace("Bearer a\r\nX-Auth-Subject: admin".into()), CookieHeader::Keep);
        assert_eq!(rewrite_headers(&mut h, &bad, "X-Auth-"), Err(UpstreamHeaderError::InvalidValue("Authorization")));
    }
}
