//! Browser sessions: sealed cookies, the cookie and Redis stores, pending logins, and the request checks that
//! belong to sessions (navigation or API call, CSRF, safe return paths).
//!
//! Pure apart from the Redis client: nothing here knows Pingora. The gateway/flow owns the order of things:
//! parse cookies ([`CookieMap`]), [`SessionStore::load`], decide, then send what [`SessionStore::save`] or
//! [`SessionStore::clear_cookies`] returned.
//!
//! - [`seal`]: AES-256-GCM key ring (first key seals, all open; ids derived from the keys).
//! - [`chunk`]: one value over `name.0..name.N` cookies, and the stale chunks to expire.
//! - [`cookies`]: `Cookie:` parsing, `Set-Cookie` attributes, `__Host-` handling on http, stripping our cookies
//!   before the upstream sees them.
//! - [`data`]: the session itself, its timeouts, claim filtering.
//! - [`store`]: cookie store or Redis store behind one type.
//! - [`redis`]: the Redis side (connection manager, TTLs, refresh lock).
//! - [`refresh`]: one refresh per session at a time in this process, results shared for a grace period.
//! - [`pending`]: one sealed cookie per login in flight (state, nonce, PKCE verifier, return path).
//! - [`return_to`]: the only return targets a login accepts (relative paths on this host).
//! - [`request_kind`]: top-level navigation vs API call; CSRF origin check.
//!
//! # One request, as the flow uses it
//! 1. `let cookies = CookieMap::from_headers(&req.headers)`; `secure` = the host's external scheme is https.
//! 2. `store.load(&cookies, secure)`: `Err(Unavailable)` → 503 (only with Redis; Bearer routes never call it);
//!    `Ok(None)` with `store.has_session_cookie(..)` → send `store.clear_cookies(..)` and go on as anonymous.
//! 3. With a session: `csrf_ok(..)` for unsafe methods; `needs_refresh` → refresh through [`SingleFlight`]
//!    keyed by [`refresh_key`] (and with Redis, [`RedisStore::refresh_lock`] /
//!    [`SessionStore::await_peer_refresh`]); `needs_touch` → `touch(now)`; then `store.save(..)` if anything
//!    changed and send its `Set-Cookie`s on the response.
//! 4. Upstream: strip our cookies with [`CookieSettings::strip_own_cookies`].
//! 5. No session on a protected route: [`is_navigation`] → `PendingLogin::new(return_path_or_root(rd), now)`,
//!    `.seal(..)` its cookie, redirect to the provider with `state`, `nonce`, `pkce_challenge()`; else 401.
//! 6. Callback: [`pending::open_pending`] with the `state` query parameter, exchange the code, verify the ID
//!    token's nonce, `SessionData::new` with [`merge_claims`], `store.save` (a [`StoreError::SessionTooLarge`]
//!    is a clear error page that names the Redis store), [`pending::clear_pending`], redirect to `return_to`.

pub mod chunk;
pub mod cookies;
pub mod data;
pub mod pending;
pub mod redis;
pub mod refresh;
pub mod request_kind;
pub mod return_to;
pub mod seal;
pub mod store;

pub use cookies::{CookieMap, CookieSettings, SetCookie};
pub use data::{filter_claims, kept_claims, merge_claims, unix_now, Derived, SessionData, DEFAULT_KEPT_CLAIMS};
pub use pending::PendingLogin;
pub use redis::{RedisOptions, RedisStore, RefreshLock};
pub use refresh::{refresh_key, SingleFlight};
pub use request_kind::{csrf_ok, is_cors_preflight, is_navigation};
pub use return_to::{return_path_or_root, safe_return_path};
pub use seal::{KeyRing, KeyRingError, SealError};
pub use store::{SessionStore, StoreError};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

/// 256 random bits from the OS, base64url without padding (43 characters).
pub fn random_id() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// True for strings [`random_id`] could have produced: checked before a client-supplied id reaches Redis.
pub fn is_random_id(s: &str) -> bool {
    s.len() == 43 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_distinct_and_well_formed() {
        let a = random_id();
        let b = random_id();
        assert_ne!(a, b);
        assert!(is_random_id(&a) && is_random_id(&b));
        assert!(!is_random_id("short"));
        assert!(!is_random_id(&format!("{}=", &a[..42])));
    }
}
