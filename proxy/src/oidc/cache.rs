//! Verified access tokens, kept until they expire, so a client that sends the same token on every request pays
//! for one signature check per token lifetime instead of one per request.
//!
//! Keyed by the SHA-256 of the token: the cache never holds the token itself (a memory dump shows no credentials),
//! and the key has a fixed size whatever the token's. Only successes are cached; a refusal is cheap to repeat and
//! caching it would let garbage evict good entries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::verify::VerifiedToken;

/// Entries beyond this age are dropped even if the token lives longer (Entra CAE tokens live up to 28 h): bounds
/// how long a token stays trusted after its key was withdrawn without anyone noticing.
pub const MAX_ENTRY_TTL: Duration = Duration::from_secs(24 * 3600);

/// Default number of cached tokens (a few hundred bytes to a few KB each).
pub const DEFAULT_CAPACITY: u64 = 10_000;

pub type CacheKey = [u8; 32];

pub fn cache_key(token: &str) -> CacheKey {
    Sha256::digest(token.as_bytes()).into()
}

pub struct TokenCache {
    inner: moka::sync::Cache<CacheKey, Arc<VerifiedToken>>,
}

/// Each entry lives until its token's `exp` (never longer than [`MAX_ENTRY_TTL`]).
struct ExpireWithToken;

impl moka::Expiry<CacheKey, Arc<VerifiedToken>> for ExpireWithToken {
    fn expire_after_create(&self, _key: &CacheKey, value: &Arc<VerifiedToken>, _now: Instant) -> Option<Duration> {
        let left = value.expires_at.saturating_sub(super::verify::unix_now()).max(0) as u64;
        Some(Duration::from_secs(left).min(MAX_ENTRY_TTL))
    }
}

impl TokenCache {
    pub fn new(capacity: u64) -> TokenCache {
        TokenCache { inner: moka::sync::Cache::builder().max_capacity(capacity).expire_after(ExpireWithToken).build() }
    }

    /// A cached token that has not expired at `now` (unix seconds). The time check is repeated here because the
    /// cache's own expiry is driven by a monotonic clock set at insertion, not by the token's wall-clock `exp`.
    pub fn get(&self, key: &CacheKey, now: i64) -> Option<Arc<VerifiedToken>> {
        let hit = self.inner.get(key)?;
        if hit.expires_at <= now {
            self.inner.invalidate(key);
            return None;
        }
        Some(hit)
    }

    pub fn insert(&self, key: CacheKey, token: Arc<VerifiedToken>) {
        self.inner.insert(key, token);
    }

    pub fn invalidate(&self, key: &CacheKey) {
        self.inner.invalidate(key);
    }

    /// Approximate number of entries (moka counts lazily).
    pub fn entry_count(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn token(expires_at: i64) -> Arc<VerifiedToken> {
        Arc::new(VerifiedToken { claims: Map::new(), expires_at, kid: Some("k".into()), alg: "RS256".into() })
    }

    #[test]
    fn keys_are_sha256_of_the_token() {
        assert_eq!(cache_key("abc"), cache_key("abc"));
        assert_ne!(cache_key("abc"), cache_key("abd"));
        // SHA-256("abc") starts with ba7816bf.
        assert_eq!(&cache_key("abc")[..4], &[0xba, 0x78, 0x16, 0xbf]);
    }

    #[test]
    fn hit_until_exp_then_gone() {
        let cache = TokenCache::new(10);
        let now = super::super::verify::unix_now();
        cache.insert(cache_key("t1"), token(now + 600));
        assert!(cache.get(&cache_key("t1"), now).is_some());
        assert!(cache.get(&cache_key("t2"), now).is_none());
        // Seen from a later wall-clock time, the entry is expired and removed.
        assert!(cache.get(&cache_key("t1"), now + 600).is_none());
        assert!(cache.get(&cache_key("t1"), now).is_none());
    }

    #[test]
    fn already_expired_entries_are_never_served() {
        let cache = TokenCache::new(10);
        let now = super::super::verify::unix_now();
        cache.insert(cache_key("old"), token(now - 1));
        assert!(cache.get(&cache_key("old"), now).is_none());
    }

    #[test]
    fn bounded() {
        let cache = TokenCache::new(50);
        let now = super::super::verify::unix_now();
        for i in 0..500 {
            cache.insert(cache_key(&format!("t{i}")), token(now + 600));
        }
        assert!(cache.entry_count() <= 50, "{}", cache.entry_count());
    }
}
