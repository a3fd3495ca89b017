//! The Redis side of the Redis session store.
//!
//! - One `ConnectionManager` (multiplexed, reconnecting, cheap to clone) per store, created lazily on first use
//!   so the sidecar starts, and Bearer routes work, while Redis is down, and so its background tasks live on a
//!   runtime that serves requests rather than on a start-up runtime that is later dropped.
//! - Every command has a hard deadline ([`RedisOptions::op_timeout`]): a session route answers 503 within it
//!   instead of hanging while Redis is unreachable.
//! - After Redis restarts, the first command on the dead connection fails with an I/O error, which makes the
//!   manager reconnect; we retry that command once, so the first request after a restart already succeeds.
//! - Keys are `<prefix>s:<base64url SHA-256 of the session id>`: a Redis dump or `MONITOR` output holds no
//!   usable cookie value. Values are sealed with the key ring, with the key as associated data, so nothing in
//!   Redis is readable without the keys and a value cannot be moved to another key.
//! - `rediss://` (ElastiCache in-transit encryption) uses rustls with the process-default crypto provider
//!   (installed first thing in `main`) and webpki roots.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::store::StoreError;

/// Timeouts and naming for the Redis store.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Prefix of every key, so several services can share one Redis. Default `oidc-sidecar:`.
    pub key_prefix: String,
    /// TCP (and TLS) connect deadline for one attempt. Default 1 s.
    pub connect_timeout: Duration,
    /// Deadline for one command's reply on an established connection. Default 500 ms.
    pub response_timeout: Duration,
    /// Deadline for one store operation, reconnect and retry included. Default 2 s.
    pub op_timeout: Duration,
    /// How long a refresh lock is held at most (if its owner dies). Default 10 s.
    pub lock_ttl: Duration,
    /// PEM of the CA that signed the Redis server's certificate, for `rediss://` to a private CA. `None`: the
    /// webpki (Mozilla) roots and the system's, which cover ElastiCache.
    pub root_cert_pem: Option<Vec<u8>>,
    /// Server-assisted client-side caching of session reads (RESP3 `CLIENT TRACKING`): a session read once is
    /// served from memory until Redis says its key changed (refresh, slide, logout on any task) or the
    /// connection is replaced, which empties the cache. Saves a round trip per request; needs Redis 6 or later.
    /// Default true.
    pub client_cache: bool,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            key_prefix: "oidc-sidecar:".into(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_millis(500),
            op_timeout: Duration::from_secs(2),
            lock_ttl: Duration::from_secs(10),
            root_cert_pem: None,
            client_cache: true,
        }
    }
}

/// Redis connection and key scheme.
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    manager: Arc<OnceCell<ConnectionManager>>,
    opts: RedisOptions,
    /// `host:port` for messages (never the password).
    endpoint: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("endpoint", &self.endpoint)
            .field("opts", &self.opts)
            .finish()
    }
}

/// A held refresh lock; release it with [`RedisStore::release`]. Expires by itself after `lock_ttl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshLock {
    key: String,
    token: String,
}

/// Session values the client-side cache holds at most (sealed sessions are 1-12 KB: at most ~25 MB).
const CLIENT_CACHE_ENTRIES: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(2048) {
    Some(n) => n,
    None => unreachable!(),
};

/// Longest time a cached session value is trusted without Redis saying anything (a bound for the unexpected).
const CLIENT_CACHE_TTL: Duration = Duration::from_secs(60);

/// Deletes the lock only if it still holds our token: a lock that expired and was taken by another task is
/// not ours to delete.
const RELEASE_SCRIPT: &str =
    r#"if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end"#;

impl RedisStore {
    /// Validates the URL (`redis://` or `rediss://`) without connecting.
    pub fn new(url: &str, opts: RedisOptions) -> Result<RedisStore, StoreError> {
        let parsed = url::Url::parse(url).map_err(|_| StoreError::Config("session.redis_url is not a URL".into()))?;
        if !matches!(parsed.scheme(), "redis" | "rediss") {
            return Err(StoreError::Config(format!(
                "session.redis_url must start with redis:// or rediss://, not {}://",
                parsed.scheme()
            )));
        }
        let endpoint = format!(
            "{}://{}:{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or(""),
            parsed.port().unwrap_or(6379)
        );
        // Client-side caching needs RESP3, asked for in the URL (the crate's way) unless the operator already did.
        let url = if opts.client_cache && !parsed.query_pairs().any(|(k, _)| k == "protocol") {
            let mut u = parsed.clone();
            u.query_pairs_mut().append_pair("protocol", "resp3");
            u.to_string()
        } else {
            url.to_string()
        };
        let url = url.as_str();
        // The redis crate's own message may quote the URL, password included: say only what is wrong, by kind.
        let client = match (&opts.root_cert_pem, parsed.scheme()) {
            (Some(pem), "rediss") => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
            _ => redis::Client::open(url),
        }
        .map_err(|e| StoreError::Config(format!("session.redis_url ({endpoint}) is not usable: {:?}", e.kind())))?;
        Ok(RedisStore {
            client,
            manager: Arc::new(OnceCell::new()),
            opts,
            endpoint,
        })
    }

    /// `scheme://host:port`, for logs.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn options(&self) -> &RedisOptions {
        &self.opts
    }

    /// The Redis key holding session `sid`.
    pub fn session_key(&self, sid: &str) -> String {
        format!("{}s:{}", self.opts.key_prefix, hash_id(sid))
    }

    /// The Redis set listing the sessions of one provider session (`sid` claim of the ID token).
    pub fn provider_index_key(&self, provider_sid: &str) -> String {
        format!("{}idp:{}", self.opts.key_prefix, hash_id(provider_sid))
    }

    fn lock_key(&self, sid: &str) -> String {
        format!("{}lock:{}", self.opts.key_prefix, hash_id(sid))
    }

    async fn manager(&self) -> Result<ConnectionManager, StoreError> {
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.opts.connect_timeout))
            .set_response_timeout(Some(self.opts.response_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        // Only session reads opt in (see `get_session`); locks and indexes always go to the server.
        let cfg = if self.opts.client_cache {
            cfg.set_cache_config(
                redis::caching::CacheConfig::new()
                    .set_mode(redis::caching::CacheMode::OptIn)
                    .set_size(CLIENT_CACHE_ENTRIES)
                    .set_default_client_ttl(CLIENT_CACHE_TTL),
            )
        } else {
            cfg
        };
        let m = self
            .manager
            .get_or_try_init(|| async { ConnectionManager::new_lazy_with_config(self.client.clone(), cfg) })
            .await
            .map_err(|e| self.unavailable(&e))?;
        Ok(m.clone())
    }

    fn unavailable(&self, e: &RedisError) -> StoreError {
        let mut reason = e.to_string();
        reason.truncate(200);
        StoreError::Unavailable(format!("Redis at {}: {reason}", self.endpoint))
    }

    /// Runs `op` with the operation deadline, retrying once after a connection-level failure (the manager has
    /// started reconnecting by then). Every command we send is idempotent, so the retry is safe.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        let attempt = async {
            let m = self.manager().await?;
            match op(m.clone()).await {
                Ok(v) => Ok(v),
                Err(e)
                    if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() || e.is_timeout() =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    op(m).await.map_err(|e| self.unavailable(&e))
                }
                Err(e) => Err(self.unavailable(&e)),
            }
        };
        match tokio::time::timeout(self.opts.op_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable(format!(
                "Redis at {} did not answer within {:?}",
                self.endpoint, self.opts.op_timeout
            ))),
        }
    }

    /// `SET key value EX ttl` (at least 1 s).
    pub async fn put(&self, key: &str, value: &str, ttl_secs: u64) -> Result<(), StoreError> {
        let ttl = ttl_secs.max(1);
        self.run(|mut m| async move { m.set_ex::<_, _, ()>(key, value, ttl).await })
            .await
    }

    /// `SET key value EX ttl`, and record `key` in the set `index` (kept for `index_ttl`), in one transaction.
    pub async fn put_indexed(
        &self,
        key: &str,
        value: &str,
        ttl_secs: u64,
        index: &str,
        index_ttl_secs: u64,
    ) -> Result<(), StoreError> {
        let ttl = ttl_secs.max(1);
        let index_ttl = i64::try_from(index_ttl_secs.max(ttl)).unwrap_or(i64::MAX);
        self.run(|mut m| async move {
            redis::pipe()
                .atomic()
                .set_ex(key, value, ttl)
                .ignore()
                .sadd(index, key)
                .ignore()
                .expire(index, index_ttl)
                .ignore()
                .query_async::<()>(&mut m)
                .await
        })
        .await
    }

    /// Deletes every key listed in the set `index`, and the set; returns how many keys existed.
    pub async fn delete_indexed(&self, index: &str) -> Result<usize, StoreError> {
        let keys: Vec<String> = self
            .run(|mut m| async move { m.smembers::<_, Vec<String>>(index).await })
            .await?;
        let mut all = keys.clone();
        all.push(index.to_owned());
        let removed: usize = self
            .run(|mut m| {
                let all = all.clone();
                async move { m.del::<_, usize>(all).await }
            })
            .await?;
        Ok(removed.saturating_sub(1).min(keys.len()))
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.run(|mut m| async move { m.get::<_, Option<String>>(key).await })
            .await
    }

    /// `GET` of a session key, from the client-side cache when enabled (see [`RedisOptions::client_cache`]).
    pub async fn get_session(&self, key: &str) -> Result<Option<String>, StoreError> {
        if !self.opts.client_cache {
            return self.get(key).await;
        }
        self.run(|mut m| async move {
            let mut cmd = redis::cmd("GET");
            cmd.arg(key).set_cache_config(redis::CommandCacheConfig::new().set_enable_cache(true));
            cmd.query_async::<Option<String>>(&mut m).await
        })
        .await
    }

    /// Hits and misses of the client-side cache since start (`None` when it is off or not connected yet).
    pub fn client_cache_hits(&self) -> Option<(usize, usize)> {
        let m = self.manager.get()?;
        m.get_cache_statistics().map(|s| (s.hit, s.miss))
    }

    pub async fn del(&self, key: &str) -> Result<(), StoreError> {
        self.run(|mut m| async move { m.del::<_, ()>(key).await }).await
    }

    /// Seconds to live of `key` (`None` when absent or without TTL): for tests and diagnostics.
    pub async fn ttl(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let t: i64 = self.run(|mut m| async move { m.ttl::<_, i64>(key).await }).await?;
        Ok(u64::try_from(t).ok())
    }

    /// `PING`, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|mut m| async move { redis::cmd("PING").query_async::<String>(&mut m).await.map(|_| ()) })
            .await
    }

    /// Tries to take the refresh lock of session `sid` (`SET NX PX lock_ttl`). `Ok(None)`: another task is
    /// refreshing this session right now: wait briefly, then [`super::SessionStore::reload`] the session and use
    /// the tokens it stored, instead of spending the (rotated, now invalid) refresh token again.
    pub async fn refresh_lock(&self, sid: &str) -> Result<Option<RefreshLock>, StoreError> {
        let key = self.lock_key(sid);
        let token = super::random_id();
        let ttl_ms = u64::try_from(self.opts.lock_ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let got: Option<String> = self
            .run(|mut m| {
                let key = key.clone();
                let token = token.clone();
                async move {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&token)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut m)
                        .await
                }
            })
            .await?;
        Ok(got.map(|_| RefreshLock { key, token }))
    }

    /// Whether some task holds the refresh lock of session `sid`.
    pub async fn lock_held(&self, sid: &str) -> Result<bool, StoreError> {
        let key = self.lock_key(sid);
        let n: i64 = self
            .run(|mut m| {
                let key = key.clone();
                async move { m.exists::<_, i64>(key).await }
            })
            .await?;
        Ok(n > 0)
    }

    /// Releases a lock taken by [`RedisStore::refresh_lock`], only if it is still ours.
    pub async fn release(&self, lock: &RefreshLock) -> Result<(), StoreError> {
        self.run(|mut m| async move {
            redis::cmd("EVAL")
                .arg(RELEASE_SCRIPT)
                .arg(1)
                .arg(&lock.key)
                .arg(&lock.token)
                .query_async::<i64>(&mut m)
                .await
                .map(|_| ())
        })
        .await
    }
}

/// base64url(SHA-256(id)): the Redis name of a session id.
fn hash_id(sid: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(sid.as_bytes()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use oidc_testkit::redis::{RedisConfig, RedisServer};

    /// A store on the shared Redis (127.0.0.1:6379) with a key prefix unique to this test run.
    pub(crate) fn shared_store() -> RedisStore {
        let opts = RedisOptions {
            key_prefix: format!("oidc-sidecar-test:{}:", super::super::random_id()),
            ..Default::default()
        };
        RedisStore::new("redis://127.0.0.1:6379", opts).unwrap()
    }

    #[test]
    fn url_validation_never_echoes_password() {
        let e = RedisStore::new("http://:hunter2@h:1", RedisOptions::default()).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("redis://"));
        let e = RedisStore::new("not a url :hunter2", RedisOptions::default()).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let ok = RedisStore::new("rediss://:hunter2@cache.example.com:6380/0", RedisOptions::default()).unwrap();
        assert_eq!(ok.endpoint(), "rediss://cache.example.com:6380");
        assert!(!format!("{ok:?}").contains("hunter2"));
    }

    #[test]
    fn keys_hash_the_id() {
        let s = RedisStore::new("redis://127.0.0.1:6379", RedisOptions::default()).unwrap();
        let k = s.session_key("abc");
        assert!(k.starts_with("oidc-sidecar:s:") && !k.contains("abc"));
        assert_ne!(s.lock_key("abc"), k);
    }

    #[tokio::test]
    async fn put_get_ttl_del_on_real_redis() {
        let s = shared_store();
        let k = s.session_key("t1");
        s.put(&k, "v", 100).await.unwrap();
        assert_eq!(s.get(&k).await.unwrap().as_deref(), Some("v"));
        let ttl = s.ttl(&k).await.unwrap().unwrap();
        assert!((1..=100).contains(&ttl), "{ttl}");
        s.del(&k).await.unwrap();
        assert_eq!(s.get(&k).await.unwrap(), None);
        s.ping().await.unwrap();
    }

    #[tokio::test]
    async fn refresh_lock_is_exclusive_and_released_only_by_owner() {
        let s = shared_store();
        let a = s.refresh_lock("sid").await.unwrap().expect("first taker gets the lock");
        assert_eq!(s.refresh_lock("sid").await.unwrap(), None);
        // A stranger's token does not release it.
        let fake = RefreshLock {
            key: a.key.clone(),
            token: "not-the-owner".into(),
        };
        s.release(&fake).await.unwrap();
        assert_eq!(s.refresh_lock("sid").await.unwrap(), None);
        s.release(&a).await.unwrap();
        let b = s.refresh_lock("sid").await.unwrap().expect("free again after release");
        s.release(&b).await.unwrap();
    }

    /// A missing tool skips a test on a developer's machine, saying so; under `scripts/test.sh` (which installs
    /// the tools and sets `OIDC_SIDECAR_TEST_STRICT=1`) it fails instead, so CI cannot pass by skipping.
    fn skip_or_fail(why: &str) {
        if std::env::var_os("OIDC_SIDECAR_TEST_STRICT").is_some_and(|v| v == "1") {
            panic!("required test tool missing: {why}");
        }
        eprintln!("SKIPPED rediss test: {why}");
    }

    /// `redis://` with AUTH (ElastiCache without TLS, or a self-managed Redis): the password in the URL, with or
    /// without the `default` user; a wrong one is Unavailable and never echoed.
    #[tokio::test]
    async fn redis_url_with_password_authenticates() {
        let r = RedisServer::start_with(RedisConfig { password: Some("pw-4-redis".into()), ..Default::default() })
            .unwrap_or_else(|e| panic!("{e}"));
        for url in [format!("redis://:pw-4-redis@127.0.0.1:{}", r.port()), format!("redis://default:pw-4-redis@127.0.0.1:{}/2", r.port())] {
            let s = RedisStore::new(&url, RedisOptions::default()).unwrap();
            assert!(!s.endpoint().contains("pw-4-redis"), "{}", s.endpoint());
            s.put("k", "v", 60).await.unwrap();
            assert_eq!(s.get("k").await.unwrap().as_deref(), Some("v"), "{}", s.endpoint());
        }
        let wrong = RedisStore::new(&format!("redis://:not-the-pw@127.0.0.1:{}", r.port()), RedisOptions::default()).unwrap();
        match wrong.get("k").await {
            Err(StoreError::Unavailable(reason)) => assert!(!reason.contains("not-the-pw"), "{reason}"),
            other => panic!("a wrong password must be Unavailable, got {other:?}"),
        }
        let none = RedisStore::new(&format!("redis://127.0.0.1:{}", r.port()), RedisOptions::default()).unwrap();
        assert!(matches!(none.get("k").await, Err(StoreError::Unavailable(_))), "no password: refused");
    }

    /// A Redis that accepts the connection and then never answers (a hung node, a black-holed security group)
    /// must not hang a session route: every operation ends at `op_timeout` as Unavailable.
    #[tokio::test]
    async fn a_silent_redis_is_unavailable_at_the_deadline_not_a_hang() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepting = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock); // read nothing, answer nothing, close nothing
            }
        });
        let opts = RedisOptions {
            connect_timeout: Duration::from_millis(300),
            response_timeout: Duration::from_millis(200),
            op_timeout: Duration::from_millis(600),
            ..Default::default()
        };
        for client_cache in [false, true] {
            let s = RedisStore::new(&format!("redis://127.0.0.1:{port}"), RedisOptions { client_cache, ..opts.clone() }).unwrap();
            // The outer bound only tells a hang from an answer; the store's own deadline is what answers.
            let get = tokio::time::timeout(Duration::from_secs(20), s.get("k")).await.expect("get returned");
            match get {
                Err(StoreError::Unavailable(reason)) => assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}"),
                other => panic!("expected Unavailable, got {other:?}"),
            }
            let put = tokio::time::timeout(Duration::from_secs(20), s.put("k", "v", 5)).await.expect("put returned");
            assert!(matches!(put, Err(StoreError::Unavailable(_))), "{put:?}");
        }
        accepting.abort();
    }

    /// `rediss://` with AUTH against a private redis-server with TLS and a private CA (made with the openssl
    /// CLI). Skipped, saying so, where `openssl` or a TLS-capable `redis-server` is missing (failed under
    /// `OIDC_SIDECAR_TEST_STRICT=1`).
    #[tokio::test]
    async fn rediss_with_auth_and_private_ca() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let sh = |args: &[&str]| {
            std::process::Command::new("openssl")
                .args(args)
                .current_dir(d)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let made = sh(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=test-ca",
        ]) && sh(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=localhost",
        ]) && std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .is_ok()
            && sh(&[
                "x509",
                "-req",
                "-in",
                "srv.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "srv.pem",
                "-days",
                "1",
                "-extfile",
                "ext.cnf",
            ]);
        if !made {
            skip_or_fail("openssl CLI not available");
            return;
        }
        let tls = RedisConfig {
            tls: true,
            password: Some("s3cret-pw".into()),
            args: ["--tls-cert-file", "srv.pem", "--tls-key-file", "srv.key", "--tls-ca-cert-file", "ca.pem"]
                .into_iter()
                .chain(["--tls-auth-clients", "no"])
                .map(String::from)
                .collect(),
            current_dir: Some(d.to_path_buf()),
            ..Default::default()
        };
        let server = match RedisServer::start_with(tls) {
            Ok(s) => s,
            // Not installed, or built without TLS: it exits at start.
            Err(e) => return skip_or_fail(&format!("no TLS-capable redis-server: {e}")),
        };
        let port = server.port();
        let ca = std::fs::read(d.join("ca.pem")).unwrap();
        let opts = RedisOptions {
            root_cert_pem: Some(ca.clone()),
            ..Default::default()
        };
        let good = RedisStore::new(&format!("rediss://:s3cret-pw@localhost:{port}"), opts.clone()).unwrap();
        let result = async {
            good.put("k", "v", 60).await?;
            good.get("k").await
        }
        .await;
        // Wrong password and untrusted server certificate both fail, as Unavailable, without the password.
        let bad_pw = RedisStore::new(&format!("rediss://:wrong-pw@localhost:{port}"), opts).unwrap();
        let bad_pw = bad_pw.get("k").await;
        let no_ca = RedisStore::new(
            &format!("rediss://:s3cret-pw@localhost:{port}"),
            RedisOptions::default(),
        )
        .unwrap();
        let no_ca = no_ca.get("k").await;
        drop(server);
        assert_eq!(result.unwrap().as_deref(), Some("v"));
        match bad_pw {
            Err(StoreError::Unavailable(r)) => {
                eprintln!("wrong password: {r}");
                assert!(!r.contains("wrong-pw"), "{r}")
            }
            other => panic!("wrong password must be Unavailable, got {other:?}"),
        }
        match no_ca {
            Err(StoreError::Unavailable(r)) => {
                eprintln!("untrusted certificate: {r}");
                assert!(!r.contains("s3cret-pw"), "{r}")
            }
            other => panic!("untrusted certificate must be Unavailable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unreachable_redis_is_unavailable_not_a_hang() {
        // Port 1 on loopback: connection refused.
        let s = RedisStore::new("redis://127.0.0.1:1", RedisOptions::default()).unwrap();
        match s.get("k").await {
            Err(StoreError::Unavailable(reason)) => assert!(reason.contains("127.0.0.1:1"), "{reason}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}
