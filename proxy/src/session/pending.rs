//! A login in flight: what the callback needs to finish it (state, nonce, PKCE verifier, return path), sealed
//! into its own short-lived cookie.
//!
//! - One cookie per login, named after the first 8 characters of its `state` (`__Host-oidc_login_<8>`), so
//!   several tabs signing in at once do not overwrite each other's login.
//! - Bounded: many tabs or XHRs hitting an expired session must not pile up login cookies until the request
//!   headers are too large (mod_auth_openidc's most reported problem). Beyond [`MAX_PENDING`] the oldest are
//!   expired.
//! - Sealed with the cookie's own name as associated data, and the full `state` inside: the callback's `state`
//!   must equal it exactly (compared in constant time). Ten minutes to finish.
//! - `SameSite=None; Secure` on https: with `response_mode=form_post` the provider's cross-site POST carries no
//!   Lax cookie and the login could never finish. A sealed, state-bound cookie gives a cross-site attacker
//!   nothing. On plain http (local demo) it is `Lax`: form_post then cannot work, query mode does.

use cookie::SameSite;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::cookies::{CookieMap, CookieSettings, SetCookie};
use super::seal::KeyRing;

/// Most logins in flight per browser.
pub const MAX_PENDING: usize = 5;
/// Seconds a login may take (cookie Max-Age and the check on open).
pub const PENDING_TTL_SECS: u64 = 600;
/// Characters of `state` in the cookie name.
const NAME_STATE_CHARS: usize = 8;

/// What the callback needs to finish one login.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    #[serde(rename = "s")]
    pub state: String,
    #[serde(rename = "n")]
    pub nonce: String,
    #[serde(rename = "v")]
    pub pkce_verifier: String,
    /// Already checked with [`super::safe_return_path`].
    #[serde(rename = "r")]
    pub return_to: String,
    /// Unix seconds.
    #[serde(rename = "t")]
    pub created_at: u64,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("state", &self.state.get(..NAME_STATE_CHARS))
            .field("return_to", &self.return_to)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl PendingLogin {
    /// A new login with random `state`, `nonce` (256 bits each) and PKCE verifier (43 characters, RFC 7636).
    pub fn new(return_to: impl Into<String>, now: u64) -> PendingLogin {
        PendingLogin {
            state: super::random_id(),
            nonce: super::random_id(),
            pkce_verifier: super::random_id(),
            return_to: return_to.into(),
            created_at: now,
        }
    }

    /// The S256 PKCE challenge: base64url(SHA-256(verifier)).
    pub fn pkce_challenge(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(self.pkce_verifier.as_bytes()))
    }

    /// The cookie that carries this login, plus removals of the oldest pending logins so that at most
    /// [`MAX_PENDING`] remain (unreadable ones are removed first).
    pub fn seal(&self, ring: &KeyRing, jar: &CookieSettings, existing: &CookieMap<'_>, now: u64) -> Vec<SetCookie> {
        let Some(name) = cookie_name(jar, &self.state) else {
            return Vec::new();
        };
        let body = match serde_json::to_vec(self) {
            Ok(b) => b,
            Err(_) => return Vec::new(),
        };
        let sealed = ring.seal(&purpose(&name), &body);
        let max_age = i64::try_from(PENDING_TTL_SECS).unwrap_or(600);
        let mut out = vec![jar.set(&name, &sealed, SameSite::None, max_age)];

        // Others in flight, oldest (or unreadable/expired: age u64::MAX) first.
        let mut others: Vec<(u64, &str)> = existing
            .with_prefix(jar.login_prefix())
            .filter(|(n, _)| *n != name)
            .map(|(n, v)| {
                let age = open_named(ring, n, v)
                    .filter(|p| now.saturating_sub(p.created_at) < PENDING_TTL_SECS)
                    .map_or(u64::MAX, |p| now.saturating_sub(p.created_at));
                (age, n)
            })
            .collect();
        others.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        let excess = (others.len() + 1).saturating_sub(MAX_PENDING);
        let dead = others.iter().filter(|(age, _)| *age == u64::MAX).count();
        for (_, n) in others.iter().take(excess.max(dead)) {
            out.push(jar.expire(n));
        }
        out
    }
}

/// The login the callback's `state` names, if its cookie is present, opens, matches `state` exactly and is
/// younger than [`PENDING_TTL_SECS`].
pub fn open_pending(
    ring: &KeyRing,
    jar: &CookieSettings,
    cookies: &CookieMap<'_>,
    state: &str,
    now: u64,
) -> Option<PendingLogin> {
    let name = cookie_name(jar, state)?;
    let p = open_named(ring, &name, cookies.get(&name)?)?;
    let same: bool = p.state.as_bytes().ct_eq(state.as_bytes()).into();
    let fresh = now.saturating_sub(p.created_at) < PENDING_TTL_SECS && p.created_at <= now.saturating_add(60);
    (same && fresh).then_some(p)
}

/// Removal of the login cookie for `state` (after the callback, successful or not).
pub fn clear_pending(jar: &CookieSettings, state: &str) -> Option<SetCookie> {
    cookie_name(jar, state).map(|n| jar.expire(&n))
}

/// Removals of every pending-login cookie the request carries (logout).
pub fn clear_all_pending(jar: &CookieSettings, cookies: &CookieMap<'_>) -> Vec<SetCookie> {
    let mut names: Vec<&str> = cookies.with_prefix(jar.login_prefix()).map(|(n, _)| n).collect();
    names.sort();
    names.into_iter().map(|n| jar.expire(n)).collect()
}

/// `<prefix><first 8 chars of state>`, or `None` when `state` is not something we issued (it comes from the
/// query string: it must not be able to name arbitrary cookies).
fn cookie_name(jar: &CookieSettings, state: &str) -> Option<String> {
    if !super::is_random_id(state) {
        return None;
    }
    Some(format!("{}{}", jar.login_prefix(), &state[..NAME_STATE_CHARS]))
}

fn purpose(name: &str) -> Vec<u8> {
    format!("login-v1|{name}").into_bytes()
}

fn open_named(ring: &KeyRing, name: &str, value: &str) -> Option<PendingLogin> {
    let plain = ring.open(&purpose(name), value).ok()?;
    let p: PendingLogin = serde_json::from_slice(&plain).ok()?;
    // The name must be the one this login's state gives (no copying a value under another name).
    name.ends_with(p.state.get(..NAME_STATE_CHARS)?).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::seal::tests::{ring, session_config};

    fn jar(secure: bool) -> CookieSettings {
        CookieSettings::new(&session_config(vec![]), secure)
    }

    fn browser(before: &CookieMap<'_>, set: &[SetCookie]) -> CookieMap<'static> {
        let mut out = CookieMap::default();
        for s in set.iter().filter(|s| !s.is_removal()) {
            let (n, v) = s.pair().split_once('=').unwrap();
            out.insert(n, v);
        }
        for n in before.names() {
            if !set.iter().any(|s| s.name == n) {
                out.insert(n, before.get(n).unwrap());
            }
        }
        out
    }

    #[test]
    fn round_trip_and_flags() {
        let r = ring(&[1]);
        let j = jar(true);
        let p = PendingLogin::new("/deep/link?x=1", 1000);
        let set = p.seal(&r, &j, &CookieMap::default(), 1000);
        assert_eq!(set.len(), 1);
        assert_eq!(set[0].name, format!("__Host-oidc_login_{}", &p.state[..8]));
        let h = &set[0].header;
        assert!(
            h.contains("SameSite=None") && h.contains("Secure") && h.contains("HttpOnly"),
            "{h}"
        );
        assert!(h.contains("Max-Age=600") && h.contains("Path=/"), "{h}");
        let c = browser(&CookieMap::default(), &set);
        assert_eq!(open_pending(&r, &j, &c, &p.state, 1500).unwrap(), p);
        assert_eq!(open_pending(&r, &j, &c, &p.state, 1600), None, "too old");
        assert!(clear_pending(&j, &p.state).unwrap().is_removal());
    }

    #[test]
    fn wrong_state_with_same_prefix_is_refused() {
        let r = ring(&[1]);
        let j = jar(true);
        let p = PendingLogin::new("/", 0);
        let c = browser(&CookieMap::default(), &p.seal(&r, &j, &CookieMap::default(), 0));
        let mut forged = p.state.clone();
        forged.replace_range(20..21, if &p.state[20..21] == "A" { "B" } else { "A" });
        assert_eq!(open_pending(&r, &j, &c, &forged, 1), None);
        assert_eq!(open_pending(&r, &j, &c, "short", 1), None);
        assert_eq!(open_pending(&r, &j, &c, "x; y=../", 1), None);
        assert_eq!(open_pending(&ring(&[2]), &j, &c, &p.state, 1), None, "foreign key");
    }

    #[test]
    fn parallel_logins_coexist_and_are_capped() {
        let r = ring(&[1]);
        let j = jar(true);
        let mut c = CookieMap::default();
        let mut logins = Vec::new();
        for i in 0..8u64 {
            let p = PendingLogin::new(format!("/tab/{i}"), 100 + i);
            let set = p.seal(&r, &j, &c, 100 + i);
            c = browser(&c, &set);
            logins.push(p);
            assert!(c.with_prefix(j.login_prefix()).count() <= MAX_PENDING);
        }
        // The newest MAX_PENDING survive, each finishes with its own return path.
        for (i, p) in logins.iter().enumerate() {
            let got = open_pending(&r, &j, &c, &p.state, 110);
            if i >= 8 - MAX_PENDING {
                assert_eq!(got.unwrap().return_to, format!("/tab/{i}"));
            } else {
                assert_eq!(got, None, "login {i} should have been dropped");
            }
        }
        assert_eq!(clear_all_pending(&j, &c).len(), MAX_PENDING);
    }

    #[test]
    fn unreadable_login_cookies_are_removed() {
        let r = ring(&[1]);
        let j = jar(true);
        let mut c = CookieMap::default();
        c.insert("__Host-oidc_login_junkjunk", "garbage");
        let set = PendingLogin::new("/", 0).seal(&r, &j, &c, 0);
        assert!(set
            .iter()
            .any(|s| s.name == "__Host-oidc_login_junkjunk" && s.is_removal()));
    }

    #[test]
    fn value_moved_to_another_name_is_refused() {
        let r = ring(&[1]);
        let j = jar(true);
        let a = PendingLogin::new("/", 0);
        let set = a.seal(&r, &j, &CookieMap::default(), 0);
        let value = set[0].pair().split_once('=').unwrap().1;
        assert_eq!(open_named(&r, "__Host-oidc_login_AAAAAAAA", value), None);
    }

    #[test]
    fn pkce_challenge_matches_rfc7636_example() {
        let mut p = PendingLogin::new("/", 0);
        p.pkce_verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into();
        assert_eq!(p.pkce_challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn http_host_uses_lax_and_unprefixed_name() {
        let r = ring(&[1]);
        let j = jar(false);
        let p = PendingLogin::new("/", 0);
        let set = p.seal(&r, &j, &CookieMap::default(), 0);
        assert!(set[0].name.starts_with("oidc_login_"));
        assert!(set[0].header.contains("SameSite=Lax") && !set[0].header.contains("Secure"));
    }
}
