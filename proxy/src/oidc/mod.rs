//! OpenID Connect: discovery, the JWKS cache, token verification and (for browsers) the code flow.
//!
//! [`KeyStore`] owns everything fetched from the provider and keeps it fresh in the background; [`Verifier`] turns
//! a token into verified claims using only what the key store already holds (plus, at most once per cooldown, a
//! refetch when a token names a key it has not seen). Requests never wait for the provider otherwise, and a
//! provider outage never removes keys that were once good.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use rand::Rng;

use crate::config::ProviderConfig;

pub mod cache;
pub mod codeflow;
pub mod discovery;
pub mod jwks;
pub mod verify;

pub use discovery::ProviderMetadata;
pub use jwks::{KeyEntry, KeyLookup, KeySet};
pub use verify::{TokenError, VerifiedToken, Verifier};

/// Why the provider's metadata or keys could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OidcError {
    #[error("{what} {url} must use https (plain http is allowed only for loopback hosts)")]
    InsecureUrl { what: &'static str, url: String },
    #[error("{what} {url} is not a valid URL: {reason}")]
    InvalidUrl { what: &'static str, url: String, reason: String },
    #[error("cannot create the HTTP client: {0}")]
    Client(String),
    #[error("{what} {url}: {reason}")]
    Fetch { what: &'static str, url: String, reason: String },
    #[error("{what} {url} answered HTTP {status}")]
    Status { what: &'static str, url: String, status: u16 },
    #[error("{what} {url}: {reason}")]
    Invalid { what: &'static str, url: String, reason: String },
    #[error("discovery document {url} names issuer {found}, but the configured issuer is {expected}")]
    IssuerMismatch { url: String, found: String, expected: String },
}

/// Timing of the key store. [`KeyStoreOptions::from_config`] gives production values; tests shorten them.
#[derive(Debug, Clone)]
pub struct KeyStoreOptions {
    /// Floor for a Cache-Control `max-age` (a provider saying `no-cache` must not make us poll it in a loop).
    pub min_refresh: Duration,
    /// Ceiling for `max-age`, and the interval when the provider gives none (`jwks_refresh`).
    pub max_refresh: Duration,
    /// Minimum time between two refetches caused by an unknown `kid`.
    pub refetch_cooldown: Duration,
    /// First retry delay while fetching fails; doubles up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Whole-request timeout of one fetch.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl KeyStoreOptions {
    pub fn from_config(cfg: &ProviderConfig) -> KeyStoreOptions {
        let max_refresh = cfg.jwks_refresh.max(Duration::from_secs(1));
        KeyStoreOptions {
            min_refresh: Duration::from_secs(300).min(max_refresh),
            max_refresh,
            refetch_cooldown: cfg.jwks_refetch_cooldown,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
        }
    }

    /// How long to keep a JWKS before fetching it again, given its Cache-Control freshness.
    pub fn refresh_interval(&self, max_age: Option<Duration>) -> Duration {
        match max_age {
            Some(age) => age.clamp(self.min_refresh, self.max_refresh.max(self.min_refresh)),
            None => self.max_refresh,
        }
    }
}

/// The provider's metadata and signing keys, fetched in the background and swapped in atomically.
pub struct KeyStore {
    http: reqwest::Client,
    discovery_url: String,
    issuer: String,
    options: KeyStoreOptions,
    metadata: ArcSwapOption<ProviderMetadata>,
    keys: ArcSwapOption<KeySet>,
    /// The last fetch failure; cleared by a success. Shown in 503 bodies while no keys are loaded.
    last_error: Mutex<Option<String>>,
    /// One fetch at a time (background refresh or unknown-kid refetch); others wait for it and use its result.
    fetch_lock: tokio::sync::Mutex<()>,
    /// Completed fetch attempts, so a waiter can tell that a fetch finished while it waited.
    fetch_generation: AtomicU64,
    last_unknown_kid_fetch: Mutex<Option<Instant>>,
    /// When the background task plans its next fetch (diagnostics and tests).
    next_refresh: Mutex<Option<Duration>>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("discovery_url", &self.discovery_url)
            .field("ready", &self.ready())
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// Checks the discovery URL and builds the HTTP client; fetches nothing (see [`run`](Self::run)).
    pub fn new(cfg: &ProviderConfig) -> Result<Arc<KeyStore>, OidcError> {
        Self::with_options(cfg, KeyStoreOptions::from_config(cfg))
    }

    pub fn with_options(cfg: &ProviderConfig, options: KeyStoreOptions) -> Result<Arc<KeyStore>, OidcError> {
        discovery::check_fetch_url(&cfg.discovery_url, "discovery URL")?;
        // No redirects: a redirect would move trust to whatever URL the answer names (and openidconnect's docs
        // require this against SSRF). Timeouts: a hanging provider must not hold the refresh task forever.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            .user_agent(concat!("oidc-sidecar/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OidcError::Client(discovery::error_chain(&e)))?;
        Ok(Arc::new(KeyStore {
            http,
            discovery_url: cfg.discovery_url.clone(),
            issuer: cfg.issuer.clone(),
            options,
            metadata: ArcSwapOption::empty(),
            keys: ArcSwapOption::empty(),
            last_error: Mutex::new(None),
            fetch_lock: tokio::sync::Mutex::new(()),
            fetch_generation: AtomicU64::new(0),
            last_unknown_kid_fetch: Mutex::new(None),
            next_refresh: Mutex::new(None),
        }))
    }

    /// The HTTP client used for the provider (no redirects, timeouts): the code flow reuses it.
    pub fn http_client(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn options(&self) -> &KeyStoreOptions {
        &self.options
    }

    /// Keys are loaded: protected routes can be decided.
    pub fn ready(&self) -> bool {
        self.keys.load().is_some()
    }

    /// Why keys are not loaded (for 503 bodies); `None` once they are.
    pub fn unavailable_reason(&self) -> Option<String> {
        if self.ready() {
            return None;
        }
        let last = self.last_error.lock().clone();
        Some(match last {
            Some(e) => format!("identity provider keys not loaded: {e}"),
            None => "identity provider keys not loaded yet (first fetch in progress)".to_string(),
        })
    }

    /// Until the start-up fetch has finished once (keys or an error), waits for it, at most `max`: the ALB may
    /// send a task its first requests while that fetch is still under way, and a few milliseconds of waiting beat a
    /// 503. After the first attempt this returns at once, keys or not (a provider that is down is reported, not
    /// waited for on every request).
    pub async fn wait_first_fetch(&self, max: Duration) {
        let step = Duration::from_millis(10);
        let mut waited = Duration::ZERO;
        while !self.ready() && self.fetch_generation.load(Ordering::SeqCst) == 0 && waited < max {
            tokio::time::sleep(step).await;
            waited += step;
        }
    }

    /// The last failure, even while older keys still serve (health details, `explain`).
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    pub fn metadata(&self) -> Option<Arc<ProviderMetadata>> {
        self.metadata.load_full()
    }

    /// The current key set (`None` until the first successful fetch).
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        self.keys.load_full()
    }

    /// The delay the background task chose after its last fetch.
    pub fn next_refresh(&self) -> Option<Duration> {
        *self.next_refresh.lock()
    }

    /// Background task: fetch until it works (backoff with jitter; the sidecar serves public routes meanwhile),
    /// then refresh on the provider's schedule within bounds. A failed refresh keeps the last good keys and retries
    /// with backoff. Returns when `shutdown` becomes true or its sender is dropped.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut backoff = self.options.retry_initial;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let wait = match self.refresh().await {
                Ok(interval) => {
                    backoff = self.options.retry_initial;
                    interval
                }
                Err(_) => {
                    let wait = jitter(backoff);
                    backoff = (backoff * 2).min(self.options.retry_max);
                    wait
                }
            };
            *self.next_refresh.lock() = Some(wait);
            let sleep = tokio::time::sleep(wait);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    changed = shutdown.changed() => {
                        if changed.is_err() || *shutdown.borrow() {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// One discovery + JWKS fetch now (the background task's step; `explain` uses it once). Returns how long the
    /// new keys may be kept.
    pub async fn refresh(&self) -> Result<Duration, OidcError> {
        let _one_at_a_time = self.fetch_lock.lock().await;
        let result = self.fetch_all().await;
        self.fetch_generation.fetch_add(1, Ordering::SeqCst);
        self.record(result.as_ref().err());
        result.map(|max_age| self.options.refresh_interval(max_age))
    }

    /// A token named a key we do not have: the provider may have rotated. Refetch the JWKS, but at most once per
    /// cooldown (an attacker can send any `kid`), and only one fetch at a time: callers arriving during a fetch
    /// wait for it and use its result.
    pub async fn refetch_for_unknown_kid(&self) {
        let seen = self.fetch_generation.load(Ordering::SeqCst);
        let _one_at_a_time = self.fetch_lock.lock().await;
        if self.fetch_generation.load(Ordering::SeqCst) != seen {
            return;
        }
        {
            let mut last = self.last_unknown_kid_fetch.lock();
            if last.is_some_and(|t| t.elapsed() < self.options.refetch_cooldown) {
                return;
            }
            *last = Some(Instant::now());
        }
        let result = match self.metadata() {
            Some(meta) => self.fetch_jwks(&meta.jwks_uri).await,
            None => self.fetch_all().await,
        };
        self.fetch_generation.fetch_add(1, Ordering::SeqCst);
        self.record(result.as_ref().err());
    }

    fn record(&self, error: Option<&OidcError>) {
        match error {
            None => *self.last_error.lock() = None,
            Some(e) => {
                tracing::warn!(error = %e, keys_loaded = self.ready(), "identity provider fetch failed");
                *self.last_error.lock() = Some(e.to_string());
            }
        }
    }

    /// Discovery (keeping the previous document if it fails and there is one), then the JWKS.
    async fn fetch_all(&self) -> Result<Option<Duration>, OidcError> {
        let meta = match self.fetch_discovery().await {
            Ok(meta) => meta,
            Err(e) => match self.metadata() {
                Some(previous) => {
                    tracing::warn!(error = %e, "discovery failed; using the previous document");
                    previous
                }
                None => return Err(e),
            },
        };
        self.fetch_jwks(&meta.jwks_uri).await
    }

    async fn fetch_discovery(&self) -> Result<Arc<ProviderMetadata>, OidcError> {
        let fetched = discovery::fetch(&self.http, &self.discovery_url, "discovery").await;
        crate::metrics::jwks_fetch(fetched.is_ok());
        let meta = Arc::new(ProviderMetadata::parse(&fetched?.body, &self.discovery_url, &self.issuer)?);
        self.metadata.store(Some(meta.clone()));
        Ok(meta)
    }

    async fn fetch_jwks(&self, url: &str) -> Result<Option<Duration>, OidcError> {
        let result = async {
            let fetched = discovery::fetch(&self.http, url, "JWKS").await?;
            let set = KeySet::parse(&fetched.body)
                .map_err(|reason| OidcError::Invalid { what: "JWKS", url: url.to_string(), reason })?;
            Ok((set, fetched.max_age))
        }
        .await;
        crate::metrics::jwks_fetch(result.is_ok());
        let (set, max_age) = result?;
        if !set.skipped.is_empty() {
            tracing::info!(skipped = ?set.skipped, "some published keys were not loaded");
        }
        tracing::info!(keys = set.len(), kids = ?set.kids(), "signing keys loaded");
        self.keys.store(Some(Arc::new(set)));
        Ok(max_age)
    }

    /// Test and `explain` helper: install keys without fetching.
    pub fn install_keys(&self, set: KeySet) {
        self.keys.store(Some(Arc::new(set)));
    }
}

/// Between half and all of `d`: many sidecars restarted together must not retry in lockstep.
fn jitter(d: Duration) -> Duration {
    let ms = d.as_millis().max(2) as u64;
    Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms))
}

#[cfg(test)]
pub(crate) mod tests;
