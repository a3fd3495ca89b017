//! Who the client is and which URL it used, as far as we can believe it.
//!
//! The ALB ends TLS and *appends* the peer it saw to `X-Forwarded-For`, so the header is only believed when the TCP
//! peer is a configured proxy, and then read right to left, skipping trusted hops: the first untrusted address is
//! the client. Everything a client could write itself (left of that) is ignored. The same trust decides whether
//! `X-Forwarded-Proto/Host/Port` say anything about the external URL.

use std::net::IpAddr;

use http::header::{HeaderName, HOST};
use http::HeaderMap;
use ipnet::IpNet;

/// The request as the outside world made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    /// The client's address (after trusted hops are removed), if known.
    pub client_ip: Option<IpAddr>,
    /// `https` or `http`.
    pub scheme: &'static str,
    /// Host as the client addressed it, lower-cased, with a port only when non-default.
    pub host: String,
    /// The port the client addressed: the host's own, a trusted `X-Forwarded-Port`, or the scheme's default.
    pub port: u16,
    /// The `X-Forwarded-For` value to send upstream: the believed chain plus the TCP peer.
    pub forwarded_for: String,
}

impl External {
    /// `scheme://host`, the origin a browser sees.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    trusted.iter().any(|net| net.contains(&ip))
}

// Looked up by name constants: a `&str` name is parsed and validated again on every lookup, for every request.
// They are also the names `flow::upstream` writes.
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

fn header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// Works out the external view of a request from its TCP peer and headers.
pub fn external(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> External {
    let peer_trusted = peer.is_some_and(|ip| is_trusted(ip, trusted));
    let mut client_ip = peer;
    // The believed chain plus the TCP peer, built in place (this runs for every request). A chain from a peer we
    // do not trust is not even read.
    let mut forwarded_for = String::with_capacity(64);
    if peer_trusted {
        let xff: Vec<&str> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        // Right to left: skip trusted hops; the first untrusted one is the client.
        for hop in xff.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) if is_trusted(ip, trusted) => continue,
                Ok(ip) => {
                    client_ip = Some(ip);
                    break;
                }
                Err(_) => break,
            }
        }
        for hop in &xff {
            if !forwarded_for.is_empty() {
                forwarded_for.push_str(", ");
            }
            forwarded_for.push_str(hop);
        }
    }
    if let Some(p) = peer {
        if !forwarded_for.is_empty() {
            forwarded_for.push_str(", ");
        }
        push_ip(&mut forwarded_for, p);
    }

    let (scheme, forwarded_host, forwarded_port) = if peer_trusted {
        (
            header(headers, &X_FORWARDED_PROTO).and_then(|p| {
                let first = p.split(',').next().unwrap_or(p).trim();
                if first.eq_ignore_ascii_case("https") {
                    Some("https")
                } else if first.eq_ignore_ascii_case("http") {
                    Some("http")
                } else {
                    None
                }
            }),
            header(headers, &X_FORWARDED_HOST).map(|h| h.split(',').next().unwrap_or(h).trim().to_string()),
            header(headers, &X_FORWARDED_PORT).and_then(|p| p.parse::<u16>().ok()),
        )
    } else {
        (None, None, None)
    };
    let scheme = scheme.unwrap_or("http");
    let mut raw_host = forwarded_host.or_else(|| header(headers, &HOST).map(str::to_string)).unwrap_or_default();
    raw_host.make_ascii_lowercase();
    let (host, port) = with_port(raw_host, scheme, forwarded_port);
    External { client_ip, scheme, host, port, forwarded_for }
}

/// Writes an address as `Display` does; IPv4 (the ALB's and every VPC peer) without the formatting machinery,
/// because this runs for every request.
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(_) => {
            let _ = std::fmt::Write::write_fmt(out, format_args!("{ip}"));
        }
    }
}

/// Adds a non-default forwarded port to a host that has none; drops a default one. A host already written as
/// `name:port` in canonical form is returned as it came (no copy). With the host, the port the client addressed.
fn with_port(host: String, scheme: &str, port: Option<u16>) -> (String, u16) {
    let default = default_port(scheme);
    let (name, existing) = split_port(&host);
    match existing.or(port) {
        Some(p) if p != default => {
            let digits = p.checked_ilog10().unwrap_or(0) as usize + 1;
            if existing == Some(p) && host.len() == name.len() + 1 + digits {
                (host, p)
            } else {
                (format!("{name}:{p}"), p)
            }
        }
        _ if name.len() == host.len() => (host, default),
        _ => (name.to_string(), default),
    }
}

/// The port a URL of `scheme` means when it names none.
pub(crate) fn default_port(scheme: &str) -> u16 {
    if scheme == "https" {
        443
    } else {
        80
    }
}

/// Splits `name:port` (and `[v6]:port`) into its parts.
pub fn split_port(host: &str) -> (&str, Option<u16>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let port = rest[end + 1..].strip_prefix(':').and_then(|p| p.parse().ok());
            return (&host[..end + 2], port);
        }
        return (host, None);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => match port.parse() {
            Ok(p) => (name, Some(p)),
            Err(_) => (host, None),
        },
        _ => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        m
    }

    fn alb() -> Vec<IpNet> {
        vec!["10.0.0.0/16".parse().unwrap()]
    }

    #[test]
    fn untrusted_peer_cannot_claim_https_or_another_host_or_ip() {
        let e = external(
            Some("203.0.113.9".parse().unwrap()),
            &h(&[
                ("host", "app.example.com"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "evil.example"),
                ("x-forwarded-for", "1.2.3.4"),
            ]),
            &alb(),
        );
        assert_eq!(e.scheme, "http");
        assert_eq!(e.host, "app.example.com");
        assert_eq!(e.port, 80);
        assert_eq!(e.client_ip, Some("203.0.113.9".parse().unwrap()));
        assert_eq!(e.forwarded_for, "203.0.113.9");
    }

    #[test]
    fn alb_peer_is_believed_right_to_left() {
        // The client wrote "6.6.6.6" itself; the ALB appended the real client 198.51.100.7.
        let e = external(
            Some("10.0.1.20".parse().unwrap()),
            &h(&[
                ("host", "10.0.3.4"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "App.Example.com"),
                ("x-forwarded-port", "443"),
                ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
            ]),
            &alb(),
        );
        assert_eq!(e.scheme, "https");
        assert_eq!(e.host, "app.example.com");
        assert_eq!(e.origin(), "https://app.example.com");
        assert_eq!(e.port, 443);
        assert_eq!(e.client_ip, Some("198.51.100.7".parse().unwrap()));
        assert_eq!(e.forwarded_for, "6.6.6.6, 198.51.100.7, 10.0.1.20");
    }

    #[test]
    fn the_forwarded_scheme_is_read_case_insensitively_and_only_http_or_https() {
        let peer = Some("10.0.1.20".parse().unwrap());
        let scheme = |proto: &str| external(peer, &h(&[("host", "x"), ("x-forwarded-proto", proto)]), &alb()).scheme;
        assert_eq!(scheme("HTTPS"), "https");
        assert_eq!(scheme(" Https , http"), "https");
        assert_eq!(scheme("HTTP"), "http");
        assert_eq!(scheme("wss"), "http");
        assert_eq!(scheme("httpsx"), "http");
        assert_eq!(external(peer, &h(&[("host", "App.EXAMPLE.com")]), &alb()).host, "app.example.com");
    }

    #[test]
    fn trusted_hops_are_skipped_and_odd_ports_kept() {
        let e = external(
            Some("10.0.1.20".parse().unwrap()),
            &h(&[("host", "x"), ("x-forwarded-for", "198.51.100.7, 10.0.9.9"), ("x-forwarded-port", "8443"), ("x-forwarded-proto", "https")]),
            &alb(),
        );
        assert_eq!(e.client_ip, Some("198.51.100.7".parse().unwrap()));
        assert_eq!(e.host, "x:8443");
        assert_eq!(e.port, 8443);
    }

    #[test]
    fn an_untrusted_peer_cannot_claim_a_port() {
        let headers = h(&[("host", "app.example.com"), ("x-forwarded-port", "8443"), ("x-forwarded-proto", "https")]);
        let e = external(Some("203.0.113.9".parse().unwrap()), &headers, &alb());
        assert_eq!((e.host.as_str(), e.port), ("app.example.com", 80));
        let e = external(Some("203.0.113.9".parse().unwrap()), &h(&[("host", "app.example.com:8080")]), &alb());
        assert_eq!((e.host.as_str(), e.port), ("app.example.com:8080", 8080), "the Host header's own port counts");
    }

    #[test]
    fn ports_are_kept_only_when_not_the_default_and_written_canonically() {
        let cases = [
            ("a.b:8443", "https", None, ("a.b:8443", 8443)),
            ("a.b:443", "https", None, ("a.b", 443)),
            ("a.b:0080", "http", None, ("a.b", 80)),
            ("a.b:08443", "http", None, ("a.b:8443", 8443)),
            ("a.b:+8443", "http", None, ("a.b:8443", 8443)),
            ("a.b", "http", Some(8080), ("a.b:8080", 8080)),
            ("a.b", "http", Some(80), ("a.b", 80)),
            ("a.b:9000", "http", Some(8080), ("a.b:9000", 9000)),
            ("[::1]:8080", "http", None, ("[::1]:8080", 8080)),
            ("[::1]:80", "http", None, ("[::1]", 80)),
            ("a.b", "http", None, ("a.b", 80)),
            ("a.b", "https", None, ("a.b", 443)),
        ];
        for (host, scheme, port, (want_host, want_port)) in cases {
            let (got_host, got_port) = with_port(host.to_string(), scheme, port);
            assert_eq!((got_host.as_str(), got_port), (want_host, want_port), "{host} {scheme} {port:?}");
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut ips: Vec<IpAddr> = ["0.0.0.0", "255.255.255.255", "10.0.1.20", "1.22.133.9", "::1", "2001:db8::7"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        ips.extend((0..=255u8).map(|o| IpAddr::from([o, 255 - o, o / 3, o % 7])));
        for ip in ips {
            let mut out = String::from("x");
            push_ip(&mut out, ip);
            assert_eq!(out, format!("x{ip}"));
        }
    }

    #[test]
    fn split_port_handles_v6_and_names() {
        assert_eq!(split_port("a.b:8080"), ("a.b", Some(8080)));
        assert_eq!(split_port("a.b"), ("a.b", None));
        assert_eq!(split_port("[::1]:80"), ("[::1]", Some(80)));
        assert_eq!(split_port("[::1]"), ("[::1]", None));
    }
}
