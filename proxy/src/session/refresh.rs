//! Refreshing once per session, however many requests notice the expiry at the same moment.
//!
//! A page load fires a burst of parallel requests that all carry the same session. If each of them spent the
//! refresh token, providers that rotate refresh tokens would answer all but the first with `invalid_grant` and
//! the user would be logged out (oauth2-proxy#1992, mod_auth_openidc#204). So:
//!
//! - In this process, [`SingleFlight`] runs one refresh per key (the SHA-256 of the refresh token, see
//!   [`refresh_key`]) and hands its result to every request that asked meanwhile. The result is also kept for a
//!   short grace period: requests that left the browser before it received the new cookie still carry the old
//!   one, and get the new tokens instead of refreshing again. Failures are not kept: the next request retries.
//! - Across tasks (Redis store), [`super::RedisStore::refresh_lock`] lets one task refresh; the others wait with
//!   [`super::SessionStore::await_peer_refresh`] and read the session it stored.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

/// Key of a refresh: SHA-256 of the refresh token (the token itself is never kept as a map key).
pub fn refresh_key(refresh_token: &str) -> [u8; 32] {
    Sha256::digest(refresh_token.as_bytes()).into()
}

struct Slot<V, E> {
    cell: Arc<OnceCell<Result<V, E>>>,
    created: Instant,
}

/// One run per key at a time; successful results shared for `grace` after the run started.
pub struct SingleFlight<K, V, E> {
    slots: Mutex<HashMap<K, Slot<V, E>>>,
    grace: Duration,
}

impl<K, V, E> std::fmt::Debug for SingleFlight<K, V, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight")
            .field("slots", &self.slots.lock().len())
            .field("grace", &self.grace)
            .finish()
    }
}

impl<K: Eq + Hash + Clone, V: Clone, E: Clone> SingleFlight<K, V, E> {
    /// `grace`: how long a successful result answers later callers with the same key (30 s is a good value:
    /// longer than a page's burst, far shorter than an access token's life).
    pub fn new(grace: Duration) -> Self {
        SingleFlight {
            slots: Mutex::new(HashMap::new()),
            grace,
        }
    }

    /// Runs `make()` unless a run for `key` is in flight (then waits for it) or succeeded within the grace
    /// period (then returns its result). If the running caller is cancelled, a waiter takes over and runs its
    /// own `make()`.
    pub async fn run<F, Fut>(&self, key: K, make: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<V, E>>,
    {
        let cell = {
            let mut slots = self.slots.lock();
            let now = Instant::now();
            // Forget finished runs past their grace, and failures (they must be retried, not replayed).
            slots.retain(|_, s| match s.cell.get() {
                Some(Ok(_)) => now.duration_since(s.created) < self.grace,
                Some(Err(_)) => false,
                None => true,
            });
            slots
                .entry(key)
                .or_insert_with(|| Slot {
                    cell: Arc::new(OnceCell::new()),
                    created: now,
                })
                .cell
                .clone()
        };
        cell.get_or_init(make).await.clone()
    }

    /// Number of remembered keys (for tests and metrics).
    pub fn len(&self) -> usize {
        self.slots.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn parallel_callers_share_one_run() {
        let sf = Arc::new(SingleFlight::<[u8; 32], String, String>::new(Duration::from_secs(30)));
        let runs = Arc::new(AtomicUsize::new(0));
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let mut handles = Vec::new();
        for _ in 0..10 {
            let sf = sf.clone();
            let runs = runs.clone();
            let mut rx = release_rx.clone();
            handles.push(tokio::spawn(async move {
                sf.run(refresh_key("rt-1"), || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    // Hold the run open until every caller is waiting on it.
                    let _ = rx.wait_for(|v| *v).await;
                    Ok::<_, String>("new-tokens".to_string())
                })
                .await
            }));
        }
        // Let all ten reach the single flight, then finish the run.
        while sf.is_empty() {
            tokio::task::yield_now().await;
        }
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        release_tx.send(true).unwrap();
        for h in handles {
            assert_eq!(h.await.unwrap().unwrap(), "new-tokens");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // A late request with the old token gets the same result without refreshing again.
        let late = sf
            .run(refresh_key("rt-1"), || async {
                Ok::<_, String>("second refresh".into())
            })
            .await;
        assert_eq!(late.unwrap(), "new-tokens");
        // Another session refreshes on its own.
        let other = sf
            .run(refresh_key("rt-2"), || async { Ok::<_, String>("other".into()) })
            .await;
        assert_eq!(other.unwrap(), "other");
    }

    #[tokio::test]
    async fn failures_are_not_replayed() {
        let sf = SingleFlight::<u8, u8, String>::new(Duration::from_secs(30));
        assert!(sf.run(1, || async { Err("invalid_grant".to_string()) }).await.is_err());
        assert_eq!(sf.run(1, || async { Ok(7) }).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn results_expire_after_grace() {
        let sf = SingleFlight::<u8, u8, String>::new(Duration::ZERO);
        assert_eq!(sf.run(1, || async { Ok(1) }).await.unwrap(), 1);
        assert_eq!(sf.run(1, || async { Ok(2) }).await.unwrap(), 2);
        assert_eq!(sf.len(), 1);
    }

    #[tokio::test]
    async fn cancelled_runner_hands_over_to_a_waiter() {
        let sf = Arc::new(SingleFlight::<u8, u8, String>::new(Duration::from_secs(30)));
        let first = {
            let sf = sf.clone();
            tokio::spawn(async move { sf.run(1, std::future::pending::<Result<u8, String>>).await })
        };
        while sf.is_empty() {
            tokio::task::yield_now().await;
        }
        first.abort();
        let _ = first.await;
        assert_eq!(sf.run(1, || async { Ok(9) }).await.unwrap(), 9);
    }

    #[test]
    fn key_is_a_hash() {
        assert_ne!(refresh_key("a"), refresh_key("b"));
        assert_eq!(refresh_key("a"), refresh_key("a"));
    }
}
