//! Headers the upstream receives: which inbound ones to strip, and the identity ones to add.
//!
//! # Stripping
//! On every route, public ones included, `flow::upstream` removes each inbound header for which
//! [`is_identity_header`] is true, then adds [`upstream_headers`]. Two things are stripped whatever the host's
//! `claim_headers` mode:
//! - our namespace (`X-Auth-` by default), compared case-insensitively **and with `_` and `-` treated alike**:
//!   WSGI, CGI, PHP and Django map `X-Auth-Subject` and `X_Auth_Subject` to the same `HTTP_X_AUTH_SUBJECT`, so a
//!   client could otherwise smuggle a header the app reads as ours;
//! - everything starting with `OIDC_` / `OIDC-` (`OIDC_CLAIM_*`, `OIDC_access_token`, `OIDC_id_token`, ...): an app
//!   migrated from mod_auth_openidc may read them even on a host where we do not send them, so a client must never
//!   be able to supply them.
//!
//! It also removes a client's `X-Forwarded-For/Proto/Host` and `Forwarded` ([`is_forwarding_header`], with the
//! same `_` folding) before it writes the gateway's own `X-Forwarded-*`.
//!
//! # Value encoding of `X-Auth-*`
//! Values are visible ASCII: control characters (CR, LF, TAB, NUL, ...) are dropped, `%` and every non-ASCII
//! character are percent-encoded as UTF-8 (`José` → `Jos%C3%A9`, `100%` → `100%25`). An app reads a value with one
//! percent-decode (Python: `urllib.parse.unquote`). List headers are joined after encoding each item, and `,` inside
//! an item is encoded as `%2C`, so splitting on `,` (Roles, Groups) or on spaces (Scopes, which cannot hold spaces)
//! and then decoding each item is exact. Percent-encoding was chosen over RFC 2047 because every language has a
//! decoder for it and ASCII values (the common case) come through unchanged. The signed `X-Auth-Assertion` carries
//! the exact values when that matters.
//!
//! # `OIDC_CLAIM_*` (claim_headers = "mod_auth_openidc")
//! Named and rendered as mod_auth_openidc does with its defaults (`OIDCClaimPrefix OIDC_CLAIM_`,
//! `OIDCClaimDelimiter ,`, `OIDCPassClaimsAs headers` with no value encoding): one header per top-level claim, the
//! name's characters that are not valid in a header name replaced by `-`; strings as they are, booleans as `1`/`0`,
//! integers in decimal, other numbers with six decimals (`%lf`), arrays of strings/booleans/numbers joined with `,`,
//! objects as compact JSON, null skipped. Values keep their UTF-8 bytes as mod_auth_openidc sends them (apps that
//! decoded them keep working); only control characters are dropped so no value can split a header.
//! `OIDC_access_token` (and `OIDC_access_token_expires`) are added when the host asks for them.

use serde_json::Value;

use crate::config::ClaimHeaders;

use super::Principal;

/// The prefix mod_auth_openidc puts before claim names.
pub const OIDC_CLAIM_PREFIX: &str = "OIDC_CLAIM_";

/// True when an inbound header must be removed before the request goes upstream: it is in our `prefix` namespace
/// or it is one of mod_auth_openidc's `OIDC_*` headers (see the module docs for why both, and why `_` = `-`).
pub fn is_identity_header(name: &str, prefix: &str) -> bool {
    starts_with_folded(name, "oidc-") || (!prefix.is_empty() && starts_with_folded(name, prefix))
}

/// True for an inbound `X-Forwarded-For`, `-Proto`, `-Host` or `-Port`, or RFC 7239 `Forwarded`, however spelled: the
/// gateway writes its own `X-Forwarded-*` (from what `flow::forwarded` believed) and a client's must not reach the
/// app beside them. `Forwarded` is never believed (the ALB does not send it), so whatever arrives came from the
/// client, and an app that reads it (Spring's `ForwardedHeaderFilter`, say) would take the client's word for its
/// own address and scheme. `_` counts as `-` here too: a server that maps headers to CGI-style variables would
/// otherwise read a client's `X_Forwarded_For` as the client address.
pub fn is_forwarding_header(name: &str) -> bool {
    ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "forwarded"]
        .iter()
        .any(|f| name.len() == f.len() && starts_with_folded(name, f))
}

/// Case-insensitive prefix test in which `_` and `-` are the same character.
fn starts_with_folded(name: &str, prefix: &str) -> bool {
    let fold = |b: u8| if b == b'_' { b'-' } else { b.to_ascii_lowercase() };
    name.len() >= prefix.len() && name.bytes().zip(prefix.bytes()).all(|(a, b)| fold(a) == fold(b))
}

/// The identity headers for `p`, in a fixed order, ready to insert after stripping.
///
/// Always: `{prefix}Subject`, `{prefix}Method` and `{prefix}Assertion`. `Name`, `Email`, `Roles`, `Groups`,
/// `Scopes` and `Tenant` when the principal has a value for them. With
/// [`ClaimHeaders::ModAuthOpenidc`]: one `OIDC_CLAIM_<name>` per claim, and `OIDC_access_token` /
/// `OIDC_access_token_expires` when `access_token: true` and a token is given.
pub fn upstream_headers(
    p: &Principal,
    assertion: &str,
    prefix: &str,
    claim_headers: ClaimHeaders,
    access_token: Option<&str>,
) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(10);
    let mut add = |name: &str, value: String| out.push((format!("{prefix}{name}"), value));

    add("Subject", encode_value(&p.subject));
    if let Some(name) = &p.name {
        add("Name", encode_value(name));
    }
    if let Some(email) = &p.email {
        add("Email", encode_value(email));
    }
    if !p.roles.is_empty() {
        add("Roles", encode_list(&p.roles, ","));
    }
    if !p.groups.is_empty() {
        add("Groups", encode_list(&p.groups, ","));
    }
    if !p.scopes.is_empty() {
        add("Scopes", encode_list(&p.scopes, " "));
    }
    if let Some(tenant) = &p.tenant {
        add("Tenant", encode_value(tenant));
    }
    add("Method", p.method.as_str().to_string());
    add("Assertion", strip_controls(assertion));

    if let ClaimHeaders::ModAuthOpenidc { access_token: pass_token } = claim_headers {
        for (claim, value) in &p.claims {
            if let Some(rendered) = mod_auth_openidc_value(value) {
                out.push((format!("{OIDC_CLAIM_PREFIX}{}", header_name_chars(claim)), strip_controls(&rendered)));
            }
        }
        if let (true, Some(token)) = (pass_token, access_token) {
            out.push(("OIDC_access_token".to_string(), strip_controls(token)));
            out.push(("OIDC_access_token_expires".to_string(), p.expires_at.to_string()));
        }
    }
    out
}

/// One `X-Auth-*` value: controls dropped, `%` and non-ASCII percent-encoded (see the module docs).
pub fn encode_value(value: &str) -> String {
    encode(value, false)
}

fn encode_list(items: &[String], sep: &str) -> String {
    items.iter().map(|item| encode(item, true)).collect::<Vec<_>>().join(sep)
}

fn encode(value: &str, in_list: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            c if c.is_ascii_control() => {}
            '%' => out.push_str("%25"),
            ',' if in_list => out.push_str("%2C"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    out
}

/// Drops control characters (CR and LF above all) so a value can never end its header line.
fn strip_controls(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).collect()
}

/// mod_auth_openidc's `oidc_http_hdr_normalize_name`: control bytes, non-ASCII bytes and HTTP separators become `-`.
/// Also replaces the few ASCII bytes that are neither separators nor valid in a header name, so the result is
/// always a valid `http::HeaderName`.
fn header_name_chars(claim: &str) -> String {
    claim
        .bytes()
        .map(|b| {
            let tchar = b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                );
            if tchar {
                b as char
            } else {
                '-'
            }
        })
        .collect()
}

/// A claim rendered the way mod_auth_openidc's `oidc_util_appinfo_set_all` does; `None` for what it skips.
fn mod_auth_openidc_value(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
        Value::Number(n) => Some(number(n)),
        Value::Object(_) => Some(value.to_string()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
                    Value::Number(n) => Some(number(n)),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        Value::Null => None,
    }
}

fn number(n: &serde_json::Number) -> String {
    match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) => i.to_string(),
        (_, Some(u), _) => u.to_string(),
        (_, _, Some(f)) => format!("{f:.6}"),
        _ => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AuthMethod;
    use serde_json::{json, Map};

    fn principal() -> Principal {
        let Value::Object(claims) = json!({
            "oid": "oid-1", "sub": "s", "tid": "t1", "name": "José\r\nX-Injected: 1", "preferred_username": "jose@example.com",
            "roles": ["Admin", "a,b"], "groups": ["g1", "g2"], "scp": "user.read files.write",
            "email_verified": true, "auth_time": 1700000000, "ratio": 1.5, "address": { "locality": "Köln" },
            "nothing": null, "mixed": ["x", true, 3, null, {"a": 1}], "naïve claim": "v", "amr": ["pwd", "mfa"]
        }) else {
            unreachable!()
        };
        Principal::from_claims(&claims, 1_700_003_600, AuthMethod::Bearer)
    }

    fn get<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn identity_header_detection() {
        for name in [
            "X-Auth-Subject",
            "x-auth-roles",
            "X_AUTH_SUBJECT",
            "x_Auth-Assertion",
            "X-Auth-",
            "OIDC_CLAIM_email",
            "oidc_access_token",
            "OIDC-CLAIM-sub",
            "OIDC_id_token_payload",
        ] {
            assert!(is_identity_header(name, "X-Auth-"), "{name}");
        }
        for name in ["X-Authorization", "Authorization", "X-Aut", "X-Forwarded-For", "OIDCX", "Cookie", ""] {
            assert!(!is_identity_header(name, "X-Auth-"), "{name}");
        }
        assert!(is_identity_header("X-Remote-Roles", "x-remote-"));
        // An empty prefix never matches everything.
        assert!(!is_identity_header("Host", ""));
    }

    #[test]
    fn forwarding_header_detection() {
        for name in ["x-forwarded-for", "X-Forwarded-Proto", "x_forwarded_host", "X_FORWARDED_FOR", "x-forwarded_for", "Forwarded", "X-Forwarded-Port", "x_forwarded_port"] {
            assert!(is_forwarding_header(name), "{name}");
        }
        for name in ["x-forwarded-fort", "x-forwarded-forx", "x-forwarded-ports", "forwardedx", "x-forwarded-", ""] {
            assert!(!is_forwarding_header(name), "{name}");
        }
    }

    #[test]
    fn x_auth_headers() {
        let h = upstream_headers(&principal(), "a.b.c", "X-Auth-", ClaimHeaders::None, Some("tok"));
        let names: Vec<&str> = h.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "X-Auth-Subject",
                "X-Auth-Name",
                "X-Auth-Email",
                "X-Auth-Roles",
                "X-Auth-Groups",
                "X-Auth-Scopes",
                "X-Auth-Tenant",
                "X-Auth-Method",
                "X-Auth-Assertion"
            ]
        );
        assert_eq!(get(&h, "X-Auth-Subject"), Some("oid-1"));
        assert_eq!(get(&h, "X-Auth-Name"), Some("Jos%C3%A9X-Injected: 1"));
        assert_eq!(get(&h, "X-Auth-Email"), Some("jose@example.com"));
        assert_eq!(get(&h, "X-Auth-Roles"), Some("Admin,a%2Cb"));
        assert_eq!(get(&h, "X-Auth-Groups"), Some("g1,g2"));
        assert_eq!(get(&h, "X-Auth-Scopes"), Some("user.read files.write"));
        assert_eq!(get(&h, "X-Auth-Tenant"), Some("t1"));
        assert_eq!(get(&h, "X-Auth-Method"), Some("bearer"));
        assert_eq!(get(&h, "X-Auth-Assertion"), Some("a.b.c"));
        assert!(!h.iter().any(|(n, _)| n.starts_with("OIDC")));
        for (name, value) in &h {
            assert!(value.bytes().all(|b| (0x20..0x7f).contains(&b)), "{name}: {value:?}");
            assert!(http::HeaderName::from_bytes(name.as_bytes()).is_ok(), "{name}");
            assert!(http::HeaderValue::from_str(value).is_ok(), "{name}");
        }
    }

    #[test]
    fn values_round_trip_through_percent_decoding() {
        for original in ["plain", "100% sure", "Zoë Åström", "日本語", "a,b"] {
            let encoded = encode_value(original);
            assert!(encoded.is_ascii());
            let decoded = percent_encoding::percent_decode_str(&encoded).decode_utf8().unwrap();
            assert_eq!(decoded, original);
        }
    }

    #[test]
    fn empty_values_are_left_out() {
        let Value::Object(claims) = json!({ "sub": "app-sp" }) else { unreachable!() };
        let mut p = Principal::from_claims(&claims, 0, AuthMethod::Session);
        p.claims = Map::new();
        let h = upstream_headers(&p, "jwt", "X-Id-", ClaimHeaders::ModAuthOpenidc { access_token: false }, Some("t"));
        let names: Vec<&str> = h.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["X-Id-Subject", "X-Id-Method", "X-Id-Assertion"]);
        assert_eq!(get(&h, "X-Id-Method"), Some("session"));
    }

    #[test]
    fn mod_auth_openidc_headers() {
        let mode = ClaimHeaders::ModAuthOpenidc { access_token: true };
        let h = upstream_headers(&principal(), "jwt", "X-Auth-", mode, Some("eyJ.access\r\n"));
        assert_eq!(get(&h, "OIDC_CLAIM_sub"), Some("s"));
        assert_eq!(get(&h, "OIDC_CLAIM_oid"), Some("oid-1"));
        assert_eq!(get(&h, "OIDC_CLAIM_preferred_username"), Some("jose@example.com"));
        assert_eq!(get(&h, "OIDC_CLAIM_name"), Some("JoséX-Injected: 1"));
        assert_eq!(get(&h, "OIDC_CLAIM_roles"), Some("Admin,a,b"));
        assert_eq!(get(&h, "OIDC_CLAIM_amr"), Some("pwd,mfa"));
        assert_eq!(get(&h, "OIDC_CLAIM_scp"), Some("user.read files.write"));
        assert_eq!(get(&h, "OIDC_CLAIM_email_verified"), Some("1"));
        assert_eq!(get(&h, "OIDC_CLAIM_auth_time"), Some("1700000000"));
        assert_eq!(get(&h, "OIDC_CLAIM_ratio"), Some("1.500000"));
        assert_eq!(get(&h, "OIDC_CLAIM_address"), Some(r#"{"locality":"Köln"}"#));
        assert_eq!(get(&h, "OIDC_CLAIM_mixed"), Some("x,1,3"));
        assert_eq!(get(&h, "OIDC_CLAIM_na--ve-claim"), Some("v"));
        assert_eq!(get(&h, "OIDC_CLAIM_nothing"), None);
        assert_eq!(get(&h, "OIDC_access_token"), Some("eyJ.access"));
        assert_eq!(get(&h, "OIDC_access_token_expires"), Some("1700003600"));
        for (name, value) in &h {
            assert!(http::HeaderName::from_bytes(name.as_bytes()).is_ok(), "{name}");
            assert!(http::HeaderValue::from_bytes(value.as_bytes()).is_ok(), "{name}: {value:?}");
            assert!(!value.contains('\r') && !value.contains('\n'));
            // Everything we add is something we would strip from a client.
            assert!(is_identity_header(name, "X-Auth-"), "{name}");
        }

        let no_token = ClaimHeaders::ModAuthOpenidc { access_token: false };
        let h = upstream_headers(&principal(), "jwt", "X-Auth-", no_token, Some("eyJ.access"));
        assert_eq!(get(&h, "OIDC_access_token"), None);
        let h = upstream_headers(&principal(), "jwt", "X-Auth-", mode, None);
        assert_eq!(get(&h, "OIDC_access_token"), None);
    }
}
