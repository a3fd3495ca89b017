//! Where sessions live: sealed in the browser's cookie (default) or in Redis behind a random id.
//!
//! | | cookie store | Redis store |
//! |---|---|---|
//! | cookie holds | the whole session, sealed, chunked past ~4 KB | a 256-bit random id (43 chars) |
//! | shared between tasks | by sharing the keys | by sharing Redis (and the keys: values are sealed) |
//! | logout | clears the cookie; **a copy taken before logout stays valid until it expires** (inactivity timeout or absolute lifetime, whichever first) | deletes the entry: every copy is dead |
//! | size | bounded by `max_cookie_bytes` and the ALB's 16 KB header limit | unbounded |
//! | Redis down | n/a | 503 on session routes |
//!
//! Every way a cookie can be bad (tampered, truncated, missing a chunk, sealed by a foreign or removed key,
//! expired, unknown to Redis) reads as "no session" (`Ok(None)`); the caller clears it with
//! [`SessionStore::clear_cookies`] and continues as anonymous. Only an unreachable Redis is an error.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::chunk;
use super::cookies::{CookieMap, CookieSettings, SetCookie};
use super::data::{unix_now, SessionData};
use super::redis::{RedisOptions, RedisStore};
use super::seal::KeyRing;
use crate::config::{self, SessionConfig};

/// Why a session could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached or did not answer in time: the request gets 503, the log gets the reason.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// The sealed session is too large for cookies.
    #[error("the session needs {bytes} bytes of cookies, above session.max_cookie_bytes = {limit} (browsers and the ALB refuse large request headers, often because of many groups); set session.store = \"redis\" to keep sessions server-side, or keep fewer claims/tokens in the session")]
    SessionTooLarge { bytes: usize, limit: usize },
    /// The session could not be encoded (not expected: plain data).
    #[error("session could not be encoded: {0}")]
    Encode(String),
    /// The store's configuration is unusable (bad Redis URL).
    #[error("{0}")]
    Config(String),
}

/// The two kinds of store.
// One per process: the size of the Redis variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Backend {
    Cookie,
    Redis(RedisStore),
}

/// Sessions for every host of this sidecar. Cheap to clone (the key ring, Redis connection and the cache of
/// opened sessions are shared).
#[derive(Clone)]
pub struct SessionStore {
    /// Swappable so new keys can be loaded without a restart (clones share it).
    ring: Arc<ArcSwap<KeyRing>>,
    /// Sessions opened lately, by their sealed value. Opening (base64, AES-GCM, JSON) costs microseconds on
    /// every request of a session, while a browser sends the same value until the session changes, and one
    /// sealed value always opens to the same session. Only values that opened are kept, and a hit compares the
    /// whole value and its purpose, so the cache never accepts what opening would refuse; expiry is checked on
    /// every request as before, and a new key ring empties it.
    opened: OpenedCache,
    /// The associated data of the http (`[0]`) and https (`[1]`) session cookie, made once.
    purposes: [Arc<[u8]>; 2],
    cfg: SessionConfig,
    https: CookieSettings,
    http: CookieSettings,
    backend: Backend,
}

/// An opened session and the associated data it was sealed with.
#[derive(Clone)]
struct Opened {
    purpose: Arc<[u8]>,
    /// The ring that opened it: after a key change the entry no longer counts (even one inserted while the ring
    /// was being replaced).
    ring: Arc<KeyRing>,
    data: Arc<SessionData>,
}

type OpenedCache = moka::sync::Cache<String, Opened, foldhash::fast::RandomState>;

/// Estimated bytes the cache may keep alive: sealed values, the sessions they open to, and what the flow derived
/// from each ([`super::Derived`]: its principal and identity headers).
const OPENED_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// A rough size of what one entry keeps alive: the sealed value, the opened session (about as large), and what the
/// flow derives from it (the claims again in the principal, the lists again in the identity headers and the
/// assertion: about twice more, plus a fixed part). A user in 200 Entra groups weighs about 45 KB, one in a few
/// groups about 4 KB.
fn opened_weight(sealed: &str, o: &Opened) -> u32 {
    u32::try_from(4 * sealed.len() + 2048 + o.purpose.len()).unwrap_or(u32::MAX)
}

/// How long an opened session stays cached without use.
const OPENED_CACHE_IDLE: Duration = Duration::from_secs(300);

fn opened_cache() -> OpenedCache {
    moka::sync::Cache::builder()
        .max_capacity(OPENED_CACHE_BYTES)
        .weigher(|sealed: &String, o: &Opened| opened_weight(sealed, o))
        .time_to_idle(OPENED_CACHE_IDLE)
        .build_with_hasher(foldhash::fast::RandomState::default())
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore")
            .field("cfg", &self.cfg)
            .field("backend", &self.backend)
            .field("opened", &self.opened.entry_count())
            .finish_non_exhaustive()
    }
}

impl SessionStore {
    /// Builds the store `cfg.store` names. With Redis, the URL is checked but not connected to: the sidecar
    /// starts while Redis is down (Bearer routes still work) and connects on first use.
    pub fn new(cfg: &SessionConfig, ring: Arc<KeyRing>) -> Result<SessionStore, StoreError> {
        let backend = match cfg.store {
            config::SessionStore::Cookie => Backend::Cookie,
            config::SessionStore::Redis => {
                let url = cfg
                    .redis_url
                    .as_ref()
                    .ok_or_else(|| StoreError::Config("session.store = \"redis\" needs session.redis_url".into()))?;
                let opts = RedisOptions { client_cache: cfg.redis_client_cache, ..RedisOptions::default() };
                Backend::Redis(RedisStore::new(url.expose(), opts)?)
            }
        };
        Ok(SessionStore::with_backend(cfg, ring, backend))
    }

    /// A store with an explicit backend (tests, or Redis with non-default [`RedisOptions`]).
    pub fn with_backend(cfg: &SessionConfig, ring: Arc<KeyRing>, backend: Backend) -> SessionStore {
        let https = CookieSettings::new(cfg, true);
        let http = CookieSettings::new(cfg, false);
        SessionStore {
            ring: Arc::new(ArcSwap::new(ring)),
            opened: opened_cache(),
            purposes: [&http, &https].map(|settings| cookie_purpose(settings.session_name()).into()),
            cfg: cfg.clone(),
            https,
            http,
            backend,
        }
    }

    /// Cookie names and flags for a host whose external scheme is https (`secure`) or http.
    pub fn settings(&self, secure: bool) -> &CookieSettings {
        if secure {
            &self.https
        } else {
            &self.http
        }
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The Redis store, for the refresh lock.
    pub fn redis(&self) -> Option<&RedisStore> {
        match &self.backend {
            Backend::Redis(r) => Some(r),
            Backend::Cookie => None,
        }
    }

    /// The key ring in use now.
    pub fn key_ring(&self) -> Arc<KeyRing> {
        self.ring.load_full()
    }

    /// Replaces the key ring (key rotation without restart), for this store and all its clones. Sessions
    /// sealed by a key the new ring lacks stop opening.
    pub fn set_key_ring(&self, ring: Arc<KeyRing>) {
        self.ring.store(ring);
        self.opened.invalidate_all();
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// True when the request carries a session cookie (plain or chunked), valid or not.
    pub fn has_session_cookie(&self, cookies: &CookieMap<'_>, secure: bool) -> bool {
        let name = self.settings(secure).session_name();
        cookies.names().any(|n| chunk::is_part_of(name, n))
    }

    /// Stores `data` and returns the `Set-Cookie` headers to send, including removals of chunks the request
    /// still carries but the new value no longer uses. A session already expired is not stored: its cookies are
    /// cleared instead.
    pub async fn save(
        &self,
        data: &SessionData,
        existing: &CookieMap<'_>,
        secure: bool,
    ) -> Result<Vec<SetCookie>, StoreError> {
        self.save_at(data, existing, secure, unix_now()).await
    }

    pub async fn save_at(
        &self,
        data: &SessionData,
        existing: &CookieMap<'_>,
        secure: bool,
        now: u64,
    ) -> Result<Vec<SetCookie>, StoreError> {
        let jar = self.settings(secure);
        let name = jar.session_name();
        if data.is_expired(now, &self.cfg) {
            self.delete_entry(data).await?;
            return Ok(self.clear_cookies(existing, secure));
        }
        let json = serde_json::to_vec(data).map_err(|e| StoreError::Encode(e.to_string()))?;
        let max_age = i64::try_from(data.remaining_absolute(now)).unwrap_or(i64::MAX);
        let value = match &self.backend {
            Backend::Cookie => {
                let sealed = self.ring.load().seal(&cookie_purpose(name), &json);
                let parts = chunk::chunk(name, &sealed, jar.max_pair_bytes());
                let bytes: usize = parts.iter().map(|(n, v)| n.len() + 1 + v.len()).sum();
                if bytes > self.cfg.max_cookie_bytes || parts.len() > chunk::MAX_CHUNKS {
                    return Err(StoreError::SessionTooLarge {
                        bytes,
                        limit: self.cfg.max_cookie_bytes,
                    });
                }
                parts
            }
            Backend::Redis(r) => {
                if !super::is_random_id(&data.sid) {
                    return Err(StoreError::Encode("session id is not a 256-bit random id".into()));
                }
                let key = r.session_key(&data.sid);
                let sealed = self.ring.load().seal(&redis_purpose(&key), &json);
                let ttl = data.remaining(now, &self.cfg);
                match data.claim_str("sid") {
                    // Indexed by the provider's session id, so front-/back-channel logout can find it.
                    Some(psid) => {
                        let index = r.provider_index_key(psid);
                        r.put_indexed(&key, &sealed, ttl, &index, self.cfg.max_lifetime.as_secs())
                            .await?
                    }
                    None => r.put(&key, &sealed, ttl).await?,
                }
                vec![(name.to_owned(), data.sid.clone())]
            }
        };
        let kept: Vec<String> = value.iter().map(|(n, _)| n.clone()).collect();
        let mut out: Vec<SetCookie> = value.iter().map(|(n, v)| jar.set_lax(n, v, max_age)).collect();
        out.extend(chunk::stale(name, existing, &kept).iter().map(|n| jar.expire(n)));
        Ok(out)
    }

    /// The request's session, if it has a valid, unexpired one. Any bad cookie is `Ok(None)`;
    /// `Err(Unavailable)` only when Redis cannot be asked.
    pub async fn load(&self, cookies: &CookieMap<'_>, secure: bool) -> Result<Option<Arc<SessionData>>, StoreError> {
        self.load_at(cookies, secure, unix_now()).await
    }

    pub async fn load_at(
        &self,
        cookies: &CookieMap<'_>,
        secure: bool,
        now: u64,
    ) -> Result<Option<Arc<SessionData>>, StoreError> {
        let name = self.settings(secure).session_name();
        let Some(value) = chunk::join(name, cookies) else {
            return Ok(None);
        };
        let data = match &self.backend {
            Backend::Cookie => self.open_json(&self.purposes[usize::from(secure)], &value),
            // Boxed: with the cookie store this branch never runs, yet its future (a Redis round trip) would make
            // every request's future, allocated and copied per request, a kilobyte larger.
            Backend::Redis(_) => Box::pin(self.read(&value, true)).await?,
        };
        Ok(data.filter(|d| !d.is_expired(now, &self.cfg)))
    }

    /// Reads session `sid` straight from Redis (after waiting for another task's refresh). `Ok(None)` with the
    /// cookie store, for an unknown or malformed id, or for a value that does not open.
    pub async fn reload(&self, sid: &str) -> Result<Option<Arc<SessionData>>, StoreError> {
        self.read(sid, false).await
    }

    /// Reads session `sid` from Redis: from the client-side cache when `cached` (requests; Redis invalidates it
    /// when any task changes the session), always from the server otherwise (refresh, which must see another
    /// task's rotation the moment its lock is released).
    async fn read(&self, sid: &str, cached: bool) -> Result<Option<Arc<SessionData>>, StoreError> {
        let Backend::Redis(r) = &self.backend else {
            return Ok(None);
        };
        if !super::is_random_id(sid) {
            return Ok(None);
        }
        let key = r.session_key(sid);
        let sealed = if cached { r.get_session(&key).await? } else { r.get(&key).await? };
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        Ok(self.open_json(&redis_purpose(&key), &sealed).filter(|d| d.sid == sid))
    }

    /// Another task holds the refresh lock of `sid` ([`RedisStore::refresh_lock`] returned `None`): waits until
    /// it lets go (or `max_wait` passes) and reads the session it stored, with its new tokens. `Ok(None)` when
    /// the session is gone (the refresh failed and ended it) or with the cookie store.
    pub async fn await_peer_refresh(
        &self,
        sid: &str,
        max_wait: Duration,
    ) -> Result<Option<Arc<SessionData>>, StoreError> {
        let Backend::Redis(r) = &self.backend else {
            return Ok(None);
        };
        let step = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        while waited < max_wait && r.lock_held(sid).await? {
            tokio::time::sleep(step).await;
            waited += step;
        }
        self.reload(sid).await
    }

    /// Opens a sealed session, from the cache when this exact value opened before under the same purpose.
    fn open_json(&self, purpose: &[u8], sealed: &str) -> Option<Arc<SessionData>> {
        let ring = self.ring.load_full();
        if let Some(hit) = self.opened.get(sealed) {
            if *hit.purpose == *purpose && Arc::ptr_eq(&hit.ring, &ring) {
                return Some(hit.data);
            }
        }
        let plain = ring.open(purpose, sealed).ok()?;
        let data: Arc<SessionData> = Arc::new(serde_json::from_slice(&plain).ok()?);
        self.opened.insert(sealed.to_owned(), Opened { purpose: purpose.into(), ring, data: data.clone() });
        Some(data)
    }

    /// Ends a session: deletes its Redis entry (from `data`, or from the cookie when the session did not load)
    /// and returns the removals of every session cookie the request carries.
    pub async fn delete(
        &self,
        data: Option<&SessionData>,
        cookies: &CookieMap<'_>,
        secure: bool,
    ) -> Result<Vec<SetCookie>, StoreError> {
        if let Backend::Redis(r) = &self.backend {
            let from_cookie = chunk::join(self.settings(secure).session_name(), cookies).map(Cow::into_owned);
            let sid = data.map(|d| d.sid.clone()).or(from_cookie);
            if let Some(sid) = sid.filter(|s| super::is_random_id(s)) {
                r.del(&r.session_key(&sid)).await?;
            }
        }
        Ok(self.clear_cookies(cookies, secure))
    }

    /// Provider-initiated logout (front-channel `sid` parameter, or a back-channel logout token's `sid`): ends
    /// every session of that provider session. Returns how many existed. Only the Redis store can do this:
    /// with the cookie store the session lives in the browser, and a front-channel logout iframe is a
    /// cross-site request that does not carry `SameSite=Lax` cookies, so `Ok(0)`.
    pub async fn delete_by_provider_sid(&self, provider_sid: &str) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Redis(r) => r.delete_indexed(&r.provider_index_key(provider_sid)).await,
            Backend::Cookie => Ok(0),
        }
    }

    async fn delete_entry(&self, data: &SessionData) -> Result<(), StoreError> {
        if let Backend::Redis(r) = &self.backend {
            if super::is_random_id(&data.sid) {
                r.del(&r.session_key(&data.sid)).await?;
            }
        }
        Ok(())
    }

    /// Removals for every session cookie (plain and chunks) the request carries; empty when it carries none.
    pub fn clear_cookies(&self, cookies: &CookieMap<'_>, secure: bool) -> Vec<SetCookie> {
        let jar = self.settings(secure);
        chunk::stale(jar.session_name(), cookies, &[])
            .iter()
            .map(|n| jar.expire(n))
            .collect()
    }
}

/// Associated data of a cookie-store session: bound to the cookie's name, so a value cannot be replayed under
/// another sidecar's cookie name sharing the keys.
fn cookie_purpose(name: &str) -> Vec<u8> {
    format!("session-v1|{name}").into_bytes()
}

/// Associated data of a Redis value: bound to its key.
fn redis_purpose(key: &str) -> Vec<u8> {
    format!("redis-session-v1|{key}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oidc_testkit::redis::RedisServer;
    use crate::config::Secret;
    use crate::session::redis::tests::shared_store;
    use crate::session::seal::tests::{ring, session_config};
    use serde_json::{json, Map, Value};

    const NOW: u64 = 1_800_000_000;

    fn cookie_store(keys: &[u8]) -> SessionStore {
        SessionStore::with_backend(&session_config(vec![]), Arc::new(ring(keys)), Backend::Cookie)
    }

    fn session(store: &SessionStore, claims: Value) -> SessionData {
        let mut d = SessionData::new(
            "user-1",
            claims.as_object().cloned().unwrap_or_default(),
            NOW,
            store.config(),
        );
        d.refresh_token = Some("rt-123".into());
        d.access_token = Some("at-456".into());
        d.access_expires_at = Some(NOW + 3600);
        d
    }

    /// What the browser would send back after receiving `set` on top of `before`.
    fn browser(before: &CookieMap<'_>, set: &[SetCookie]) -> CookieMap<'static> {
        let mut out = CookieMap::default();
        for s in set {
            if !s.is_removal() {
                let (n, v) = s.pair().split_once('=').unwrap();
                out.insert(n, v);
            }
        }
        for n in before.names() {
            if !set.iter().any(|s| s.name == n) {
                out.insert(n, before.get(n).unwrap());
            }
        }
        out
    }

    fn groups(n: usize) -> Value {
        json!({"oid": "o", "groups": (0..n).map(|i| format!("{:08x}-aaaa-bbbb-cccc-{:012x}", i, i)).collect::<Vec<_>>()})
    }

    #[tokio::test]
    async fn cookie_store_round_trip() {
        let st = cookie_store(&[1]);
        let d = session(&st, json!({"oid": "o", "roles": ["A"]}));
        let set = st.save_at(&d, &CookieMap::default(), true, NOW).await.unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set[0].name, "__Host-oidc_session");
        assert!(set[0].header.contains("Max-Age=28800"), "{}", set[0].header);
        let jar = browser(&CookieMap::default(), &set);
        let back = st.load_at(&jar, true, NOW + 10).await.unwrap().unwrap();
        assert_eq!(*back, d);
        assert!(!set[0].header.contains("rt-123"));
    }

    #[test]
    fn opened_sessions_are_weighed_by_what_they_keep_alive() {
        use crate::identity::{AuthMethod, Principal};
        let st = cookie_store(&[1]);
        let purpose = cookie_purpose("__Host-oidc_session");
        let weigh = |groups: usize| {
            let groups: Vec<String> = (0..groups).map(|i| format!("{i:08x}-aaaa-bbbb-cccc-000000000000")).collect();
            let d = session(&st, json!({"oid": "o", "groups": groups}));
            let json = serde_json::to_vec(&d).unwrap();
            let sealed = st.ring.load().seal(&purpose, &json);
            // What the flow derives: the claims once more in the principal (its lists besides).
            let principal = Principal::from_claims(&d.claims, 1_800_003_600, AuthMethod::Session);
            let derived = json.len() + principal.groups.iter().map(|g| g.len() + 24).sum::<usize>();
            let opened = Opened { purpose: purpose.clone().into(), ring: st.ring.load_full(), data: Arc::new(d) };
            (opened_weight(&sealed, &opened), sealed.len() + json.len() + derived)
        };
        let (small, _) = weigh(0);
        assert!((2048..8192).contains(&small), "{small}");
        // 200 groups keep about 25 KB alive past the sealed value (the list in the session, the principal and the
        // identity headers): the weight counts more than the value, the session and the principal together.
        let (large, counted) = weigh(200);
        assert!(u64::from(large) > counted as u64 && large > 40_000, "{large} vs {counted}");
        let fit = OPENED_CACHE_BYTES / u64::from(large);
        assert!(fit < 1_000, "the bound holds a few hundred such sessions, not thousands: {fit}");
    }

    #[tokio::test]
    async fn an_opened_session_is_reused_but_never_past_what_opening_allows() {
        let st = cookie_store(&[1]);
        let d = session(&st, json!({"oid": "o", "roles": ["A"]}));
        let set = st.save_at(&d, &CookieMap::default(), true, NOW).await.unwrap();
        let jar = browser(&CookieMap::default(), &set);
        let first = st.load_at(&jar, true, NOW).await.unwrap().unwrap();
        let again = st.load_at(&jar, true, NOW + 1).await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the same sealed value is opened once");
        assert!(Arc::ptr_eq(&first, &st.clone().load_at(&jar, true, NOW).await.unwrap().unwrap()), "clones share it");

        // Expiry is checked on every request, cached or not.
        assert_eq!(st.load_at(&jar, true, NOW + 3600).await.unwrap(), None);
        // The same value under the other cookie name (another purpose) does not open, cached or not.
        let mut moved = CookieMap::default();
        moved.insert("oidc_session", jar.get("__Host-oidc_session").unwrap());
        assert_eq!(st.load_at(&moved, false, NOW).await.unwrap(), None);
        // One flipped character is another value: it is opened (and refused), not looked up.
        let sealed = jar.get("__Host-oidc_session").unwrap().to_owned();
        let mut bytes = sealed.clone().into_bytes();
        let i = bytes.len() / 2;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let mut tampered = CookieMap::default();
        tampered.insert("__Host-oidc_session", String::from_utf8(bytes).unwrap());
        assert_eq!(st.load_at(&tampered, true, NOW).await.unwrap(), None);
        // A new key ring without the sealing key: the cached session is gone too.
        st.set_key_ring(Arc::new(ring(&[2])));
        assert_eq!(st.load_at(&jar, true, NOW).await.unwrap(), None);
        st.set_key_ring(Arc::new(ring(&[1])));
        let reopened = st.load_at(&jar, true, NOW).await.unwrap().unwrap();
        assert_eq!(*reopened, d);
        assert!(!Arc::ptr_eq(&first, &reopened), "opened again under the new ring");
    }

    #[tokio::test]
    async fn big_session_is_chunked_and_shrinking_expires_stale_chunks() {
        let st = cookie_store(&[1]);
        let big = session(&st, groups(100));
        let set = st.save_at(&big, &CookieMap::default(), true, NOW).await.unwrap();
        assert!(set.len() >= 2, "{} cookies", set.len());
        assert!(set
            .iter()
            .all(|s| s.header.len() <= crate::session::cookies::MAX_SET_COOKIE_LINE));
        let jar = browser(&CookieMap::default(), &set);
        assert_eq!(*st.load_at(&jar, true, NOW).await.unwrap().unwrap(), big);

        let small = session(&st, json!({"oid": "o"}));
        let set2 = st.save_at(&small, &jar, true, NOW).await.unwrap();
        let removed: Vec<&str> = set2
            .iter()
            .filter(|s| s.is_removal())
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(removed.len(), set.len(), "every old chunk expired: {removed:?}");
        let jar2 = browser(&jar, &set2);
        assert_eq!(jar2.len(), 1);
        assert_eq!(*st.load_at(&jar2, true, NOW).await.unwrap().unwrap(), small);
    }

    #[tokio::test]
    async fn two_hundred_groups_fit_the_default_bound_or_say_redis() {
        let st = cookie_store(&[1]);
        let d = session(&st, groups(200));
        // 200 GUID groups are ~8 KB of JSON, ~11 KB sealed: under 12 KiB by default.
        let set = st.save_at(&d, &CookieMap::default(), true, NOW).await.unwrap();
        let total: usize = set.iter().map(|s| s.pair().len()).sum();
        assert!(total <= 12288, "{total}");
        let mut cfg = session_config(vec![]);
        cfg.max_cookie_bytes = 4000;
        let small = SessionStore::with_backend(&cfg, Arc::new(ring(&[1])), Backend::Cookie);
        match small.save_at(&d, &CookieMap::default(), true, NOW).await {
            Err(e @ StoreError::SessionTooLarge { .. }) => assert!(e.to_string().contains("store = \"redis\"")),
            other => panic!("expected SessionTooLarge, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn tampered_truncated_missing_chunk_foreign_and_expired_are_none() {
        let st = cookie_store(&[1]);
        let d = session(&st, groups(100));
        let set = st.save_at(&d, &CookieMap::default(), true, NOW).await.unwrap();
        let jar = browser(&CookieMap::default(), &set);

        // Tampered: flip one character of the first chunk.
        let mut t = CookieMap::default();
        for n in jar.names() {
            let v = jar.get(n).unwrap();
            let v = if n.ends_with(".0") {
                let mut b = v.as_bytes().to_vec();
                b[40] = if b[40] == b'A' { b'B' } else { b'A' };
                String::from_utf8(b).unwrap()
            } else {
                v.to_owned()
            };
            t.insert(n, v);
        }
        assert_eq!(st.load_at(&t, true, NOW).await.unwrap(), None);
        // Missing the last chunk.
        let mut m = CookieMap::default();
        let last = format!("__Host-oidc_session.{}", set.len() - 1);
        for n in jar.names().filter(|n| *n != last) {
            m.insert(n, jar.get(n).unwrap());
        }
        assert_eq!(st.load_at(&m, true, NOW).await.unwrap(), None);
        // Foreign key.
        assert_eq!(cookie_store(&[9]).load_at(&jar, true, NOW).await.unwrap(), None);
        // Rotated ring [new, old] still reads it.
        assert_eq!(
            *cookie_store(&[9, 1]).load_at(&jar, true, NOW).await.unwrap().unwrap(),
            d
        );
        // Expired by inactivity.
        assert_eq!(st.load_at(&jar, true, NOW + 3600).await.unwrap(), None);
        // Junk.
        let junk = CookieMap::parse("__Host-oidc_session=%%%; other=1");
        assert_eq!(st.load_at(&junk, true, NOW).await.unwrap(), None);
        assert_eq!(st.clear_cookies(&junk, true).len(), 1);
        assert!(st.clear_cookies(&CookieMap::parse("other=1"), true).is_empty());
    }

    #[tokio::test]
    async fn value_under_another_cookie_name_is_refused() {
        let st = cookie_store(&[1]);
        let d = session(&st, json!({}));
        let set = st.save_at(&d, &CookieMap::default(), false, NOW).await.unwrap();
        assert_eq!(set[0].name, "oidc_session");
        let value = set[0]
            .header
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned();
        let mut moved = CookieMap::default();
        moved.insert("__Host-oidc_session", value);
        assert_eq!(st.load_at(&moved, true, NOW).await.unwrap(), None);
    }

    #[tokio::test]
    async fn saving_an_expired_session_clears_it() {
        let st = cookie_store(&[1]);
        let d = session(&st, json!({}));
        let jar = browser(
            &CookieMap::default(),
            &st.save_at(&d, &CookieMap::default(), true, NOW).await.unwrap(),
        );
        let set = st.save_at(&d, &jar, true, NOW + 9 * 3600).await.unwrap();
        assert!(set.iter().all(SetCookie::is_removal) && set.len() == 1);
    }

    fn redis_store(keys: &[u8]) -> SessionStore {
        let mut cfg = session_config(vec![Secret("unused".into())]);
        cfg.store = crate::config::SessionStore::Redis;
        SessionStore::with_backend(&cfg, Arc::new(ring(keys)), Backend::Redis(shared_store()))
    }

    #[tokio::test]
    async fn redis_store_save_load_ttl_delete() {
        let st = redis_store(&[1]);
        let r = st.redis().unwrap().clone();
        let now = unix_now();
        let mut d = SessionData::new("user", groups(300).as_object().cloned().unwrap(), now, st.config());
        d.refresh_token = Some("rt".into());
        let set = st.save_at(&d, &CookieMap::default(), true, now).await.unwrap();
        assert_eq!(set.len(), 1);
        let jar = browser(&CookieMap::default(), &set);
        assert_eq!(
            jar.get("__Host-oidc_session"),
            Some(d.sid.as_str()),
            "cookie holds only the id"
        );
        assert_eq!(*st.load_at(&jar, true, now).await.unwrap().unwrap(), d);

        // TTL = inactivity (1 h) here, as the absolute end is 8 h away.
        let key = r.session_key(&d.sid);
        let ttl = r.ttl(&key).await.unwrap().unwrap();
        assert!(ttl > 3000 && ttl <= 3600, "{ttl}");
        // The value in Redis is sealed.
        let raw = r.get(&key).await.unwrap().unwrap();
        assert!(!raw.contains("user") && !raw.contains("\"rt\""));

        // Another task with the rotated ring reads it.
        let other = SessionStore::with_backend(st.config(), Arc::new(ring(&[2, 1])), st.backend().clone());
        assert!(other.load_at(&jar, true, now).await.unwrap().is_some());
        // Hot swap to a ring without the old key: the session no longer opens, in every clone.
        let clone = other.clone();
        other.set_key_ring(Arc::new(ring(&[2])));
        assert_eq!(clone.load_at(&jar, true, now).await.unwrap(), None);

        // Logout kills every copy of the cookie.
        let cleared = st.delete(Some(&d), &jar, true).await.unwrap();
        assert!(cleared.iter().all(SetCookie::is_removal) && !cleared.is_empty());
        assert_eq!(st.load_at(&jar, true, now).await.unwrap(), None);
        assert_eq!(r.get(&key).await.unwrap(), None);
    }

    /// Polls `load` for up to 2 s until `want` holds: Redis invalidates other clients' cached copies right after
    /// the write, but the message travels on their own connection.
    async fn eventually(st: &SessionStore, jar: &CookieMap<'_>, now: u64, want: impl Fn(Option<&SessionData>) -> bool) {
        for _ in 0..200 {
            if want(st.load_at(jar, true, now).await.unwrap().as_deref()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the other task's change never reached this one");
    }

    #[tokio::test]
    async fn redis_reads_are_cached_until_any_task_changes_or_ends_the_session() {
        for client_cache in [true, false] {
            let a = redis_store(&[1]);
            let opts = RedisOptions { client_cache, ..a.redis().unwrap().options().clone() };
            let a = SessionStore::with_backend(
                a.config(),
                Arc::new(ring(&[1])),
                Backend::Redis(RedisStore::new("redis://127.0.0.1:6379", opts.clone()).unwrap()),
            );
            // Another task: its own connection to the same Redis, same prefix and keys.
            let b = SessionStore::with_backend(
                a.config(),
                Arc::new(ring(&[1])),
                Backend::Redis(RedisStore::new("redis://127.0.0.1:6379", opts).unwrap()),
            );
            let now = unix_now();
            let d = SessionData::new("user", groups(3).as_object().cloned().unwrap(), now, a.config());
            let set = b.save_at(&d, &CookieMap::default(), true, now).await.unwrap();
            let jar = browser(&CookieMap::default(), &set);
            for _ in 0..5 {
                assert_eq!(*a.load_at(&jar, true, now).await.unwrap().unwrap(), d);
            }
            let stats = a.redis().unwrap().client_cache_hits();
            if client_cache {
                let (hits, misses) = stats.expect("client cache on");
                assert!(hits >= 4 && misses >= 1, "hits {hits}, misses {misses}");
            } else {
                assert_eq!(stats, None);
            }

            // Another task slides the session: this one sees the new value, not its cached copy.
            let mut slid = d.clone();
            slid.last_seen = now + 30;
            b.save_at(&slid, &jar, true, now).await.unwrap();
            eventually(&a, &jar, now, |got| got.is_some_and(|g| g.last_seen == now + 30)).await;
            // Another task logs the session out: every copy of the cookie is dead here too.
            b.delete(Some(&slid), &jar, true).await.unwrap();
            eventually(&a, &jar, now, |got| got.is_none()).await;
            // Refresh reads always ask the server.
            assert_eq!(a.reload(&d.sid).await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn redis_ttl_is_capped_by_absolute_end() {
        let st = redis_store(&[1]);
        let r = st.redis().unwrap().clone();
        let now = unix_now();
        let mut d = SessionData::new("u", Map::new(), now, st.config());
        d.expires_at = now + 120;
        st.save_at(&d, &CookieMap::default(), true, now).await.unwrap();
        let ttl = r.ttl(&r.session_key(&d.sid)).await.unwrap().unwrap();
        assert!(ttl <= 120 && ttl > 0, "{ttl}");
        st.delete(Some(&d), &CookieMap::default(), true).await.unwrap();
    }

    #[tokio::test]
    async fn redis_unknown_forged_or_moved_ids_are_none() {
        let st = redis_store(&[1]);
        let r = st.redis().unwrap().clone();
        let header = format!("__Host-oidc_session={}", crate::session::random_id());
        let unknown = CookieMap::parse(&header);
        assert_eq!(st.load(&unknown, true).await.unwrap(), None);
        let junk = CookieMap::parse("__Host-oidc_session=../../etc");
        assert_eq!(st.load(&junk, true).await.unwrap(), None);
        // A value copied to another key does not open there.
        let now = unix_now();
        let d = SessionData::new("u", Map::new(), now, st.config());
        st.save_at(&d, &CookieMap::default(), true, now).await.unwrap();
        let sealed = r.get(&r.session_key(&d.sid)).await.unwrap().unwrap();
        let other_id = crate::session::random_id();
        r.put(&r.session_key(&other_id), &sealed, 60).await.unwrap();
        let header = format!("__Host-oidc_session={other_id}");
        let moved = CookieMap::parse(&header);
        assert_eq!(st.load(&moved, true).await.unwrap(), None);
        st.delete(None, &moved, true).await.unwrap();
        st.delete(Some(&d), &CookieMap::default(), true).await.unwrap();
    }

    #[tokio::test]
    async fn logout_without_loaded_session_still_deletes_redis_entry() {
        let st = redis_store(&[1]);
        let now = unix_now();
        let d = SessionData::new("u", Map::new(), now, st.config());
        let jar = browser(
            &CookieMap::default(),
            &st.save_at(&d, &CookieMap::default(), true, now).await.unwrap(),
        );
        // E.g. the key was rotated away so the session does not open, but logout must still remove it.
        st.delete(None, &jar, true).await.unwrap();
        assert_eq!(st.reload(&d.sid).await.unwrap(), None);
    }

    #[tokio::test]
    async fn redis_down_is_unavailable() {
        let mut cfg = session_config(vec![]);
        cfg.store = crate::config::SessionStore::Redis;
        cfg.redis_url = Some(Secret("redis://127.0.0.1:1".into()));
        let st = SessionStore::new(&cfg, Arc::new(ring(&[1]))).unwrap();
        let header = format!("__Host-oidc_session={}", crate::session::random_id());
        let jar = CookieMap::parse(&header);
        assert!(matches!(st.load(&jar, true).await, Err(StoreError::Unavailable(_))));
        // No session cookie: Redis is not asked, no error (anonymous requests keep working).
        assert_eq!(st.load(&CookieMap::default(), true).await.unwrap(), None);
        let d = SessionData::new("u", Map::new(), unix_now(), st.config());
        assert!(matches!(
            st.save(&d, &CookieMap::default(), true).await,
            Err(StoreError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn redis_stopped_gives_unavailable_and_restart_recovers() {
        let mut server = RedisServer::start();
        let port = server.port();
        let mut cfg = session_config(vec![]);
        cfg.store = crate::config::SessionStore::Redis;
        cfg.redis_url = Some(Secret(server.url()));
        let st = SessionStore::new(&cfg, Arc::new(ring(&[1]))).unwrap();
        let now = unix_now();
        let d = SessionData::new("u", Map::new(), now, st.config());
        let jar = browser(
            &CookieMap::default(),
            &st.save_at(&d, &CookieMap::default(), true, now).await.unwrap(),
        );
        assert!(st.load_at(&jar, true, now).await.unwrap().is_some());

        server.stop();
        // The client-side cache may answer until the client has seen its connection close (a few ms; in this
        // single-threaded test, once the test yields), then every read goes to the dead server.
        let mut last = None;
        for _ in 0..100 {
            match st.load_at(&jar, true, now).await {
                Err(StoreError::Unavailable(reason)) => {
                    assert!(reason.contains(&port.to_string()), "{reason}");
                    last = None;
                    break;
                }
                other => last = Some(format!("{other:?}")),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(last, None, "expected Unavailable while Redis is down");
        assert!(matches!(
            st.save_at(&d, &CookieMap::default(), true, now).await,
            Err(StoreError::Unavailable(_))
        ));

        // Same port, empty (no persistence): the old session is gone, but the same store works again without
        // being rebuilt: the first command after the restart already succeeds.
        server.restart().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(st.load_at(&jar, true, now).await.unwrap(), None);
        let jar = browser(
            &CookieMap::default(),
            &st.save_at(&d, &CookieMap::default(), true, now).await.unwrap(),
        );
        assert_eq!(*st.load_at(&jar, true, now).await.unwrap().unwrap(), d);
    }

    #[tokio::test]
    async fn redis_restart_while_connected_recovers_on_first_command() {
        let mut server = RedisServer::start();
        let r = RedisStore::new(&server.url(), RedisOptions::default()).unwrap();
        r.put("k", "v", 60).await.unwrap();
        server.stop();
        server.restart().unwrap_or_else(|e| panic!("{e}"));
        // The multiplexed connection is dead; the command fails on it, the manager reconnects, the retry succeeds.
        assert_eq!(r.get("k").await.unwrap(), None);
        r.put("k", "w", 60).await.unwrap();
        assert_eq!(r.get("k").await.unwrap().as_deref(), Some("w"));
    }

    #[tokio::test]
    async fn peers_wait_for_the_refreshing_task_and_read_its_tokens() {
        let st = redis_store(&[1]);
        let r = st.redis().unwrap().clone();
        let now = unix_now();
        let mut d = SessionData::new("u", Map::new(), now, st.config());
        d.refresh_token = Some("rt-old".into());
        st.save_at(&d, &CookieMap::default(), true, now).await.unwrap();

        let lock = r.refresh_lock(&d.sid).await.unwrap().expect("first task refreshes");
        assert_eq!(r.refresh_lock(&d.sid).await.unwrap(), None, "second task must wait");
        let waiter = {
            let st = st.clone();
            let sid = d.sid.clone();
            tokio::spawn(async move { st.await_peer_refresh(&sid, Duration::from_secs(30)).await })
        };
        // The refreshing task stores the rotated tokens, then lets go.
        d.refresh_token = Some("rt-new".into());
        st.save_at(&d, &CookieMap::default(), true, now).await.unwrap();
        r.release(&lock).await.unwrap();
        let seen = waiter.await.unwrap().unwrap().unwrap();
        assert_eq!(seen.refresh_token.as_deref(), Some("rt-new"));
        st.delete(Some(&d), &CookieMap::default(), true).await.unwrap();
    }

    #[tokio::test]
    async fn provider_logout_ends_all_sessions_of_that_provider_session() {
        let st = redis_store(&[1]);
        let now = unix_now();
        let claims = json!({"sid": "idp-session-1"}).as_object().cloned().unwrap();
        let a = SessionData::new("u", claims.clone(), now, st.config());
        let b = SessionData::new("u", claims, now, st.config());
        let other = SessionData::new(
            "u",
            json!({"sid": "idp-session-2"}).as_object().cloned().unwrap(),
            now,
            st.config(),
        );
        for d in [&a, &b, &other] {
            st.save_at(d, &CookieMap::default(), true, now).await.unwrap();
        }
        assert_eq!(st.delete_by_provider_sid("idp-session-1").await.unwrap(), 2);
        assert_eq!(st.reload(&a.sid).await.unwrap(), None);
        assert_eq!(st.reload(&b.sid).await.unwrap(), None);
        assert!(st.reload(&other.sid).await.unwrap().is_some());
        assert_eq!(st.delete_by_provider_sid("idp-session-1").await.unwrap(), 0);
        assert_eq!(st.delete_by_provider_sid("idp-session-2").await.unwrap(), 1);
        assert_eq!(
            cookie_store(&[1])
                .delete_by_provider_sid("idp-session-2")
                .await
                .unwrap(),
            0
        );
    }

    #[test]
    fn redis_store_needs_url() {
        let mut cfg = session_config(vec![]);
        cfg.store = crate::config::SessionStore::Redis;
        assert!(matches!(
            SessionStore::new(&cfg, Arc::new(ring(&[1]))),
            Err(StoreError::Config(_))
        ));
    }
}
