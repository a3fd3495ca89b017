//! Reading `Cookie:` and writing `Set-Cookie:` (the `cookie` crate does the syntax; this module decides the
//! attributes).
//!
//! Every cookie the sidecar sets is `HttpOnly` (no token ever reaches JavaScript), `Path=/` and, when the
//! browser talks https to the ALB, `Secure`. The sidecar itself only sees plain http behind the ALB, so "secure"
//! is decided by the host's configured external scheme, never by the connection.
//!
//! # `__Host-` and `__Secure-` names on plain http
//! Browsers refuse a `__Host-`/`__Secure-` cookie that is not `Secure`, and a `Secure` cookie is never stored
//! from, or sent to, an http origin. So on a host whose external scheme is http (a local demo), the prefix is
//! dropped: `__Host-oidc_session` becomes `oidc_session`. [`CookieSettings::session_name`] and
//! [`CookieSettings::login_prefix`] return the effective names, and everything here uses them.
//!
//! # `Domain`
//! A configured `cookie_domain` is written only on names without the `__Host-` prefix (browsers drop a
//! `__Host-` cookie that carries `Domain`; the config refuses that combination, this is the second line).

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

use cookie::time::Duration as CookieDuration;
use cookie::{Cookie, SameSite};
use http::header::{HeaderMap, COOKIE};

use crate::config::SessionConfig;

/// Browsers store at most about 4096 bytes of name + value per cookie; proxies and the ALB also dislike single
/// header lines above 4 KiB. Every `Set-Cookie` line we write stays below this, attributes included.
pub const MAX_SET_COOKIE_LINE: usize = 4095;
/// mod_auth_openidc and oauth2-proxy chunk at 4000 bytes of name + value; we never exceed it either.
pub const MAX_PAIR_BYTES: usize = 4000;

const HOST_PREFIX: &str = "__Host-";
const SECURE_PREFIX: &str = "__Secure-";
/// Base name of the per-login cookies (see `pending`), before the `__Host-` prefix.
const LOGIN_BASE: &str = "oidc_login_";

/// One `Set-Cookie` header to send.
#[derive(Clone, PartialEq, Eq)]
pub struct SetCookie {
    /// The cookie's name (for tests and for de-duplicating).
    pub name: String,
    /// The full header value: `name=value; HttpOnly; ...`.
    pub header: String,
}

impl SetCookie {
    /// The `name=value` part, as a browser would send it back in a `Cookie:` header.
    pub fn pair(&self) -> &str {
        self.header.split(';').next().unwrap_or(&self.header)
    }

    /// True when this header deletes the cookie (`Max-Age=0`).
    pub fn is_removal(&self) -> bool {
        self.header.contains("; Max-Age=0")
    }
}

impl std::fmt::Debug for SetCookie {
    // The header carries a sealed session: show only the name and whether it is a removal.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetCookie")
            .field("name", &self.name)
            .field("removal", &self.is_removal())
            .finish()
    }
}

/// The cookies of one request, by name. When a name appears twice (a host-only and a `Domain` cookie, or a
/// path-specific one) the first wins: browsers send the most specific cookie first.
///
/// Names and values borrow the request's `Cookie` header: a session request reads a cookie of a kilobyte or more,
/// and copying every pair into its own `String` was most of what reading it cost.
///
/// A browser sends a handful of cookies to one site, so they are kept in a list and found by comparing names: no
/// hashing and no table for the two or three cookies of a typical request. Past [`CookieMap::LINEAR`] cookies a
/// name index is built, so a request with thousands of tiny cookies costs one hash per cookie, not a scan each.
#[derive(Clone, Default)]
pub struct CookieMap<'a> {
    /// In the order sent, each name once (its first value).
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Position in `pairs` by name, once there are more than [`CookieMap::LINEAR`].
    index: Option<HashMap<Cow<'a, str>, usize, foldhash::fast::RandomState>>,
    /// Some part of the headers was not a `name=value` pair (skipped here, but still the app's business).
    unparsed: bool,
}

impl std::fmt::Debug for CookieMap<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.names().collect();
        names.sort();
        f.debug_struct("CookieMap").field("names", &names).finish()
    }
}

/// Two maps are equal when they hold the same names with the same values, whatever the order they came in.
impl PartialEq for CookieMap<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.unparsed == other.unparsed
            && self.len() == other.len()
            && self.pairs.iter().all(|(n, v)| other.get(n) == Some(v.as_ref()))
    }
}

impl Eq for CookieMap<'_> {}

/// The text of one `Cookie:` header, or `None` when it is not UTF-8.
///
/// UTF-8 is checked rather than HTTP's visible-ASCII rule (`HeaderValue::to_str`): the check is vectorized where
/// `to_str` goes byte by byte over a session cookie of hundreds of bytes, twice per request; and a neighbour app's
/// cookie with non-ASCII bytes in the same header no longer hides ours. The header cannot hold CR, LF or NUL (the
/// HTTP parser refused those), and what reads the text only looks for `;` and `=`.
pub fn header_text(value: &http::HeaderValue) -> Option<&str> {
    std::str::from_utf8(value.as_bytes()).ok()
}

/// The non-blank `;`-separated parts of one `Cookie:` header, trimmed. One vectorized pass over the bytes: every
/// request with a session runs this over a cookie of 500 bytes or more (to read the session, and to take it out of
/// what the app gets), where `str::split` and the `cookie` crate's parser, which scans each pair several times,
/// showed up in the proxy's profile.
pub fn parts(header: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut separators = memchr::memchr_iter(b';', header.as_bytes()).chain(std::iter::once(header.len()));
    std::iter::from_fn(move || loop {
        let end = separators.next()?;
        // `;` is ASCII, so both ends are char boundaries.
        let part = header[start..end].trim();
        start = end + 1;
        if !part.is_empty() {
            return Some(part);
        }
    })
}

/// A part's cookie name: what precedes its first `=`, trimmed (the whole part when it has none).
pub fn part_name(part: &str) -> &str {
    match memchr::memchr(b'=', part.as_bytes()) {
        Some(eq) => part[..eq].trim(),
        None => part,
    }
}

/// The `name=value` pairs of one `Cookie:` header, read as `cookie::Cookie::split_parse` reads them: parts without
/// `=` or with an empty name skipped, name and value trimmed, nothing decoded.
pub fn pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    parts(header).filter_map(pair)
}

/// One part as a `name=value` pair, or `None` without `=` or with an empty name.
fn pair(part: &str) -> Option<(&str, &str)> {
    let eq = memchr::memchr(b'=', part.as_bytes())?;
    let name = part[..eq].trim();
    (!name.is_empty()).then(|| (name, part[eq + 1..].trim()))
}

impl<'a> CookieMap<'a> {
    /// Up to this many cookies, names are found by comparing them one by one.
    pub const LINEAR: usize = 16;

    /// Parses every `Cookie:` header of a request. Pairs that do not parse are skipped, never an error: a
    /// client's junk cookie must not break its session.
    pub fn from_headers(headers: &'a HeaderMap) -> CookieMap<'a> {
        let mut out = CookieMap::with_room();
        for s in headers.get_all(COOKIE).iter().filter_map(header_text) {
            out.add_header(s);
        }
        out
    }

    /// Parses one `Cookie:` header value.
    pub fn parse(header: &'a str) -> CookieMap<'a> {
        let mut out = CookieMap::with_room();
        out.add_header(header);
        out
    }

    /// Room for a typical request's cookies (a session, perhaps in chunks, and the app's few) in one allocation.
    fn with_room() -> CookieMap<'a> {
        CookieMap { pairs: Vec::with_capacity(8), ..CookieMap::default() }
    }

    fn add_header(&mut self, header: &'a str) {
        for part in parts(header) {
            match pair(part) {
                Some((name, value)) => self.add(Cow::Borrowed(name), Cow::Borrowed(value)),
                None => self.unparsed = true,
            }
        }
    }

    /// Adds a cookie unless its name is already here (the first one sent wins): one look-up, in the list or in the
    /// index, and the index built once, when the list grows past [`CookieMap::LINEAR`].
    fn add(&mut self, name: Cow<'a, str>, value: Cow<'a, str>) {
        let at = self.pairs.len();
        match &mut self.index {
            Some(index) => match index.entry(name) {
                Entry::Occupied(_) => {}
                Entry::Vacant(slot) => {
                    let name = slot.key().clone();
                    slot.insert(at);
                    self.pairs.push((name, value));
                }
            },
            None => {
                if self.pairs.iter().any(|(n, _)| *n == name) {
                    return;
                }
                self.pairs.push((name, value));
                if self.pairs.len() > Self::LINEAR {
                    let mut index = HashMap::with_capacity_and_hasher(Self::LINEAR * 2, Default::default());
                    index.extend(self.pairs.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)));
                    self.index = Some(index);
                }
            }
        }
    }

    fn position(&self, name: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(name).copied(),
            None => self.pairs.iter().position(|(n, _)| n == name),
        }
    }

    /// Whether every part of the headers was a `name=value` pair (then [`CookieMap::names`] names all of them).
    pub fn all_parsed(&self) -> bool {
        !self.unparsed
    }

    /// Inserts a cookie (tests, and callers that got cookies from elsewhere). An existing value is kept.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.add(Cow::Owned(name.into()), Cow::Owned(value.into()));
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).map(|i| self.pairs[i].1.as_ref())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// All names, in the order first sent.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(n, _)| n.as_ref())
    }

    /// Name/value pairs whose name starts with `prefix`.
    pub fn with_prefix<'s>(&'s self, prefix: &'s str) -> impl Iterator<Item = (&'s str, &'s str)> + 's {
        self.pairs.iter().filter(move |(n, _)| n.starts_with(prefix)).map(|(n, v)| (n.as_ref(), v.as_ref()))
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// How this sidecar names and flags its cookies on one kind of host (https or http).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieSettings {
    secure: bool,
    session_name: String,
    login_prefix: String,
    domain: Option<String>,
}

impl CookieSettings {
    /// Settings for a host whose external scheme is https (`secure = true`) or http.
    pub fn new(cfg: &SessionConfig, secure: bool) -> CookieSettings {
        let session_name = effective_name(&cfg.cookie_name, secure);
        let login_prefix = effective_name(&format!("{HOST_PREFIX}{LOGIN_BASE}"), secure);
        let domain = if session_name.starts_with(HOST_PREFIX) {
            None
        } else {
            cfg.cookie_domain.clone()
        };
        CookieSettings {
            secure,
            session_name,
            login_prefix,
            domain,
        }
    }

    pub fn secure(&self) -> bool {
        self.secure
    }

    /// The session cookie's name as sent to this kind of host (prefix dropped on http).
    pub fn session_name(&self) -> &str {
        &self.session_name
    }

    /// Prefix of the per-login cookies (`__Host-oidc_login_` on https).
    pub fn login_prefix(&self) -> &str {
        &self.login_prefix
    }

    /// True for every cookie this sidecar owns (session, its chunks, pending logins): these are never forwarded
    /// to the upstream.
    pub fn is_own_cookie(&self, name: &str) -> bool {
        if name.starts_with(&self.login_prefix) {
            return true;
        }
        super::chunk::is_part_of(&self.session_name, name)
    }

    /// A `Cookie:` header value without this sidecar's cookies, or `None` when nothing is left (drop the
    /// header). Pairs that do not parse are passed through untouched: they are the app's business.
    pub fn strip_own_cookies(&self, header: &str) -> Option<String> {
        let kept: Vec<&str> = parts(header).filter(|part| !self.is_own_cookie(part_name(part))).collect();
        if kept.is_empty() {
            None
        } else {
            Some(kept.join("; "))
        }
    }

    /// Length of the attributes [`CookieSettings::set`] appends, for the longest `Max-Age` we write.
    pub fn attributes_len(&self) -> usize {
        self.set("x", "", SameSite::None, i64::from(u32::MAX)).header.len() - "x=".len()
    }

    /// Largest name + value that keeps a `Set-Cookie` line under [`MAX_SET_COOKIE_LINE`] and the pair under
    /// [`MAX_PAIR_BYTES`].
    pub fn max_pair_bytes(&self) -> usize {
        MAX_PAIR_BYTES.min(MAX_SET_COOKIE_LINE.saturating_sub(self.attributes_len()))
    }

    /// `name=value; HttpOnly; [Secure;] SameSite=..; Path=/; Max-Age=..; [Domain=..]`. `SameSite=None` is only
    /// valid with `Secure`; on an http host it is written as `Lax`.
    pub fn set(&self, name: &str, value: &str, same_site: SameSite, max_age_secs: i64) -> SetCookie {
        let same_site = if same_site == SameSite::None && !self.secure {
            SameSite::Lax
        } else {
            same_site
        };
        let mut b = Cookie::build((name.to_owned(), value.to_owned()))
            .http_only(true)
            .secure(self.secure)
            .same_site(same_site)
            .path("/")
            .max_age(CookieDuration::seconds(max_age_secs.max(0)));
        if let Some(d) = &self.domain {
            if !name.starts_with(HOST_PREFIX) {
                b = b.domain(d.clone());
            }
        }
        SetCookie {
            name: name.to_owned(),
            header: b.build().to_string(),
        }
    }

    /// A session-kind cookie: `SameSite=Lax`.
    pub fn set_lax(&self, name: &str, value: &str, max_age_secs: i64) -> SetCookie {
        self.set(name, value, SameSite::Lax, max_age_secs)
    }

    /// Deletes a cookie: same name, path and domain, empty value, `Max-Age=0`.
    pub fn expire(&self, name: &str) -> SetCookie {
        self.set(name, "", SameSite::Lax, 0)
    }
}

/// The name browsers will accept on this kind of host: `__Host-`/`__Secure-` dropped when not secure.
fn effective_name(configured: &str, secure: bool) -> String {
    if secure {
        return configured.to_owned();
    }
    configured
        .strip_prefix(HOST_PREFIX)
        .or_else(|| configured.strip_prefix(SECURE_PREFIX))
        .unwrap_or(configured)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::seal::tests::session_config;
    use http::HeaderValue;

    #[test]
    fn parses_multiple_headers_first_wins_and_skips_junk() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; b=2; junk; c=x=y"));
        h.append(COOKIE, HeaderValue::from_static("a=3; d=4"));
        let m = CookieMap::from_headers(&h);
        assert_eq!(m.get("a"), Some("1"));
        assert_eq!(m.get("b"), Some("2"));
        assert_eq!(m.get("c"), Some("x=y"));
        assert_eq!(m.get("d"), Some("4"));
        assert!(!m.contains("junk"));
    }

    /// The list and the index behind it answer alike: first value wins, every name found, around the switch too.
    #[test]
    fn many_cookies_are_indexed_and_first_still_wins() {
        for n in [1, CookieMap::LINEAR - 1, CookieMap::LINEAR, CookieMap::LINEAR + 1, 2_000] {
            let mut header: Vec<String> = (0..n).map(|i| format!("c{i}={i}")).collect();
            // A repeat of the first and of the last name, with other values: both lose.
            header.push("c0=late".into());
            header.push(format!("c{}=late", n - 1));
            let header = header.join("; ");
            let m = CookieMap::parse(&header);
            assert_eq!(m.len(), n, "{n} cookies");
            for i in [0, n / 2, n - 1] {
                assert_eq!(m.get(&format!("c{i}")), Some(i.to_string().as_str()), "c{i} of {n}");
            }
            assert!(!m.contains(&format!("c{n}")));
            assert_eq!(m.names().next(), Some("c0"), "names in the order sent");
            // Equality ignores the order the cookies came in.
            let reversed: Vec<String> = (0..n).rev().map(|i| format!("c{i}={i}")).collect();
            let reversed = reversed.join("; ");
            assert_eq!(CookieMap::parse(&reversed), m, "{n} cookies");
            assert_ne!(CookieMap::parse(&format!("{reversed}; extra=1")), m);
        }
        let mut m = CookieMap::parse("a=1");
        m.insert("a", "2");
        m.insert("b", "3");
        assert_eq!((m.get("a"), m.get("b")), (Some("1"), Some("3")), "insert keeps an existing value");
    }

    #[test]
    fn a_neighbours_non_ascii_cookie_does_not_hide_ours() {
        let mut h = HeaderMap::new();
        let raw = "pref=caf\u{e9}; __Host-oidc_session=sealed".as_bytes();
        h.append(COOKIE, HeaderValue::from_bytes(raw).expect("obs-text is a valid header value"));
        assert!(h.get(COOKIE).expect("cookie").to_str().is_err(), "HTTP's visible-ASCII rule would drop the header");
        let m = CookieMap::from_headers(&h);
        assert_eq!(m.get("__Host-oidc_session"), Some("sealed"));
        assert_eq!(m.get("pref"), Some("caf\u{e9}"));
        // Bytes that are not UTF-8 at all: the header is skipped, never a panic.
        let mut bad = HeaderMap::new();
        bad.append(COOKIE, HeaderValue::from_bytes(b"a=\xff\xfe; b=2").expect("obs-text"));
        assert!(CookieMap::from_headers(&bad).is_empty());
    }

    /// The one-pass reader must read every header exactly as the `cookie` crate it replaced on this path.
    fn crate_pairs(header: &str) -> Vec<(String, String)> {
        Cookie::split_parse(header).flatten().map(|c| (c.name().to_owned(), c.value().to_owned())).collect()
    }

    fn our_pairs(header: &str) -> Vec<(String, String)> {
        pairs(header).map(|(n, v)| (n.to_owned(), v.to_owned())).collect()
    }

    #[test]
    fn pairs_read_headers_as_the_cookie_crate_does() {
        for h in [
            "",
            ";;",
            " ; ;",
            "name=value",
            "  name=value  ",
            "name=value;;other=key",
            "name=value ;  ; other=key",
            "a=%20; b=\"quoted\"; c==; =nameless; junk; d=x=y;",
            "\u{3000}a=1\u{3000}; é=ü ; \tb\t=\t2\t",
            "__Host-oidc_session=AAAA.BBBB_cc-dd; __Host-oidc_session.1=x",
        ] {
            assert_eq!(our_pairs(h), crate_pairs(h), "{h:?}");
        }
        assert_eq!(parts(" a=1 ;; junk ;b= ").collect::<Vec<_>>(), ["a=1", "junk", "b="]);
        assert_eq!(part_name(" x = 1"), "x");
        assert_eq!(part_name("junk"), "junk");
    }

    proptest::proptest! {
        #[test]
        fn pairs_agree_with_the_cookie_crate_on_any_header(h in "[a-c=; \t\u{a0}é\"]{0,40}") {
            proptest::prop_assert_eq!(our_pairs(&h), crate_pairs(&h));
        }
    }

    #[test]
    fn https_cookie_has_all_flags() {
        let s = CookieSettings::new(&session_config(vec![]), true);
        assert_eq!(s.session_name(), "__Host-oidc_session");
        let c = s.set_lax(s.session_name(), "v", 3600);
        assert_eq!(
            c.header,
            "__Host-oidc_session=v; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=3600"
        );
        assert!(!c.is_removal());
        assert!(s.expire("x").is_removal());
    }

    #[test]
    fn http_drops_host_prefix_and_secure() {
        let s = CookieSettings::new(&session_config(vec![]), false);
        assert_eq!(s.session_name(), "oidc_session");
        assert_eq!(s.login_prefix(), "oidc_login_");
        let c = s.set(s.session_name(), "v", SameSite::None, 10);
        assert!(!c.header.contains("Secure"), "{}", c.header);
        assert!(c.header.contains("SameSite=Lax"), "{}", c.header);
    }

    #[test]
    fn domain_only_without_host_prefix() {
        let mut cfg = session_config(vec![]);
        cfg.cookie_domain = Some("example.com".into());
        let https = CookieSettings::new(&cfg, true);
        assert!(!https.set_lax(https.session_name(), "v", 1).header.contains("Domain"));
        cfg.cookie_name = "oidc_session".into();
        let shared = CookieSettings::new(&cfg, true);
        assert!(shared
            .set_lax("oidc_session", "v", 1)
            .header
            .contains("; Domain=example.com"));
        // Login cookies keep __Host- and therefore never get a Domain.
        let login = format!("{}abc", shared.login_prefix());
        assert!(!shared.set_lax(&login, "v", 1).header.contains("Domain"));
    }

    #[test]
    fn own_cookies_recognised_and_stripped() {
        let s = CookieSettings::new(&session_config(vec![]), true);
        assert!(s.is_own_cookie("__Host-oidc_session"));
        assert!(s.is_own_cookie("__Host-oidc_session.0"));
        assert!(s.is_own_cookie("__Host-oidc_session.12"));
        assert!(s.is_own_cookie("__Host-oidc_login_abcdefgh"));
        assert!(!s.is_own_cookie("__Host-oidc_session.x"));
        assert!(!s.is_own_cookie("__Host-oidc_sessionx"));
        assert!(!s.is_own_cookie("app"));
        assert_eq!(
            s.strip_own_cookies("app=1; __Host-oidc_session.0=aaa; __Host-oidc_session.1=bbb;theme=dark")
                .as_deref(),
            Some("app=1; theme=dark")
        );
        assert_eq!(
            s.strip_own_cookies("__Host-oidc_session=a; __Host-oidc_login_x=b"),
            None
        );
    }

    #[test]
    fn max_pair_keeps_line_under_limit() {
        let mut cfg = session_config(vec![]);
        cfg.cookie_name = "s".into();
        cfg.cookie_domain = Some(format!("{}.example.com", "a".repeat(200)));
        let s = CookieSettings::new(&cfg, true);
        let max = s.max_pair_bytes();
        assert!(max <= MAX_PAIR_BYTES);
        let value = "v".repeat(max - 2);
        let line = s
            .set(&format!("s{}", ""), &value, SameSite::None, i64::from(u32::MAX))
            .header;
        assert!(line.len() <= MAX_SET_COOKIE_LINE, "{}", line.len());
    }
}
