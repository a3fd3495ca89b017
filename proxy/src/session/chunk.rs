//! Splitting one long cookie value over several cookies, and joining it back.
//!
//! A session sealed into a cookie grows with the user's claims (Entra users in many groups) and can pass the
//! ~4 KB a browser keeps per cookie. It is then written as `name.0`, `name.1`, ... (the scheme of
//! oauth2-proxy and mod_auth_openidc); a value that fits is written as plain `name`. The value is base64url, so
//! it can be cut anywhere.
//!
//! The browser keeps cookies from the last response that set them, so a session that shrinks (from three
//! chunks to one) must expire the chunks it no longer uses, or a stale `name.1` would be glued onto the new
//! `name.0`.
//! [`stale`] lists them from the request's cookies.

use std::borrow::Cow;

use super::cookies::CookieMap;

/// Most chunks we write or read. 16 × ~3.9 KB is far beyond the ALB's 16 KB header limit: a session that
/// needs more is refused before this matters (`max_cookie_bytes`), and a request claiming more is junk.
pub const MAX_CHUNKS: usize = 16;

/// Splits `value` into cookies whose `name=value` pair is at most `max_pair` bytes. Returns `[(name, value)]`
/// when it fits, else `[(name.0, part), (name.1, part), ...]`. `value` must be ASCII (sealed values are
/// base64url); `max_pair` must leave room for the longest chunk name plus at least one byte.
pub fn chunk(name: &str, value: &str, max_pair: usize) -> Vec<(String, String)> {
    if name.len() + 1 + value.len() <= max_pair {
        return vec![(name.to_owned(), value.to_owned())];
    }
    // Reserve room for the widest suffix we can produce (".NN").
    let per = max_pair.saturating_sub(name.len() + 1 + 3).max(1);
    value
        .as_bytes()
        .chunks(per)
        .enumerate()
        .map(|(i, part)| (format!("{name}.{i}"), String::from_utf8_lossy(part).into_owned()))
        .collect()
}

/// Joins a value written by [`chunk`]: plain `name` if present, else `name.0`, `name.1`, ... up to the first
/// missing index. `None` when neither form is present or the chunks are more than [`MAX_CHUNKS`].
pub fn join<'c>(name: &str, cookies: &'c CookieMap<'_>) -> Option<Cow<'c, str>> {
    if let Some(v) = cookies.get(name) {
        return Some(Cow::Borrowed(v));
    }
    let mut out = String::new();
    let mut n = 0;
    while let Some(part) = cookies.get(&chunk_name(name, n)) {
        if n == MAX_CHUNKS {
            return None;
        }
        out.push_str(part);
        n += 1;
    }
    (n > 0).then_some(Cow::Owned(out))
}

/// Names of cookies in the request that belong to `name` (plain or chunked) but are not in `kept`: these must
/// be expired when the new value is written.
pub fn stale(name: &str, cookies: &CookieMap<'_>, kept: &[String]) -> Vec<String> {
    let mut out: Vec<String> = cookies
        .names()
        .filter(|n| is_part_of(name, n) && !kept.iter().any(|k| k == n))
        .map(str::to_owned)
        .collect();
    out.sort();
    out
}

/// True for `name` itself and for `name.<digits>`.
pub fn is_part_of(name: &str, candidate: &str) -> bool {
    match candidate.strip_prefix(name) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('.')
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

fn chunk_name(name: &str, i: usize) -> String {
    format!("{name}.{i}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn jar(pairs: &[(String, String)]) -> CookieMap<'static> {
        let mut m = CookieMap::default();
        for (n, v) in pairs {
            m.insert(n.clone(), v.clone());
        }
        m
    }

    #[test]
    fn small_value_is_one_plain_cookie() {
        let c = chunk("s", "abc", 100);
        assert_eq!(c, vec![("s".to_string(), "abc".to_string())]);
        assert_eq!(join("s", &jar(&c)).as_deref(), Some("abc"));
    }

    #[test]
    fn large_value_is_split_and_joined() {
        let v = "x".repeat(10_000);
        let c = chunk("__Host-s", &v, 4000);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].0, "__Host-s.0");
        assert!(c.iter().all(|(n, v)| n.len() + 1 + v.len() <= 4000));
        assert_eq!(join("__Host-s", &jar(&c)).unwrap(), v);
    }

    #[test]
    fn missing_middle_chunk_truncates_and_fails_later() {
        let v = "y".repeat(9000);
        let mut c = chunk("s", &v, 4000);
        c.remove(1);
        // Join stops at the gap; the sealed value then fails to open (tested in store).
        assert_eq!(join("s", &jar(&c)).unwrap().len(), c[0].1.len());
    }

    #[test]
    fn absent_gives_none_and_too_many_chunks_refused() {
        assert_eq!(join("s", &CookieMap::default()), None);
        let many: Vec<(String, String)> = (0..=MAX_CHUNKS).map(|i| (format!("s.{i}"), "a".into())).collect();
        assert_eq!(join("s", &jar(&many)), None);
    }

    #[test]
    fn stale_lists_chunks_not_rewritten() {
        let old = jar(&chunk("s", &"z".repeat(9000), 4000));
        let new = chunk("s", "small", 4000);
        let kept: Vec<String> = new.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(stale("s", &old, &kept), vec!["s.0", "s.1", "s.2"]);
        // The reverse: plain cookie replaced by chunks.
        let old = jar(&[
            ("s".into(), "v".into()),
            ("other".into(), "1".into()),
            ("s.x".into(), "2".into()),
        ]);
        assert_eq!(stale("s", &old, &["s.0".into(), "s.1".into()]), vec!["s"]);
    }

    proptest! {
        #[test]
        fn prop_chunk_join_round_trip(len in 0usize..40_000, max in 40usize..5000) {
            let v: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let c = chunk("__Host-oidc_session", &v, max);
            // Suffixes up to ".99" are reserved for; beyond 100 chunks nothing is written anyway.
            if c.len() <= 100 {
                prop_assert!(c.iter().all(|(n, v)| n.len() + 1 + v.len() <= max));
            }
            if c.len() <= MAX_CHUNKS {
                let jar = jar(&c);
                prop_assert_eq!(join("__Host-oidc_session", &jar).unwrap(), v);
            }
        }
    }
}
