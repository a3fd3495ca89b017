//! The key store against the test provider over real sockets: first fetch, rotation, cooldown, outages,
//! Cache-Control. No assertion depends on how fast anything runs: tests wait for events (with a generous limit).

use std::sync::Arc;
use std::time::Duration;

use oidc_testkit::{TestProvider, TEST_AUDIENCE, TEST_CLIENT_ID, TEST_TENANT};
use serde_json::json;

use super::*;
use crate::config::{ClientAuth, ProviderConfig};

/// A provider config for `issuer` with the test provider's audience (plus a GUID one), tenant and client.
pub(crate) fn provider_config(issuer: &str) -> ProviderConfig {
    ProviderConfig {
        issuer: issuer.to_string(),
        discovery_url: format!("{issuer}/.well-known/openid-configuration"),
        extra_issuers: vec![],
        client_id: TEST_CLIENT_ID.to_string(),
        client_secret: None,
        client_auth: ClientAuth::ClientSecretBasic,
        audiences: vec![TEST_AUDIENCE.to_string(), "6e3a0e1c-0000-4000-8000-00000000a11d".to_string()],
        required_tenant: Some(TEST_TENANT.to_string()),
        clock_skew: Duration::from_secs(60),
        algorithms: crate::config::DEFAULT_ALGORITHMS.to_vec(),
        scopes: vec!["openid".into(), "profile".into(), "email".into(), "offline_access".into()],
        jwks_refresh: Duration::from_secs(3600),
        jwks_refetch_cooldown: Duration::from_secs(30),
        entra: false,
    }
}

/// Short retries so "down, then up" tests finish quickly; refresh schedule left at production values unless set.
fn fast_options(cfg: &ProviderConfig) -> KeyStoreOptions {
    KeyStoreOptions {
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(100),
        ..KeyStoreOptions::from_config(cfg)
    }
}

/// Polls `cond` every 10 ms for up to 20 s. An event wait, not a timing assertion.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

struct Running {
    store: Arc<KeyStore>,
    _shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn spawn(store: Arc<KeyStore>) -> Running {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(store.clone().run(rx));
    Running { store, _shutdown: tx, task }
}

#[tokio::test]
async fn first_fetch_loads_metadata_and_keys() {
    let p = TestProvider::start().await;
    let cfg = provider_config(&p.issuer());
    let store = KeyStore::new(&cfg).unwrap();
    assert!(!store.ready());
    assert!(store.unavailable_reason().unwrap().contains("first fetch in progress"));
    let r = spawn(store);
    eventually("keys loaded", || r.store.ready()).await;
    assert_eq!(r.store.unavailable_reason(), None);
    let meta = r.store.metadata().unwrap();
    assert_eq!(meta.issuer, p.issuer());
    assert_eq!(meta.jwks_uri, p.jwks_url());
    assert_eq!(meta.end_session_endpoint.as_deref(), Some(format!("{}/logout", p.url()).as_str()));
    let keys = r.store.keys().unwrap();
    assert_eq!(keys.kids(), vec!["tk-ec-1", p.current_kid().as_str()]);
    assert_eq!(p.discovery_fetch_count(), 1);
    assert_eq!(p.jwks_fetch_count(), 1);
    // No Cache-Control: the configured interval.
    assert_eq!(r.store.next_refresh(), Some(Duration::from_secs(3600)));
}

#[tokio::test]
async fn a_token_checked_during_the_first_fetch_waits_for_it() {
    let p = TestProvider::start().await;
    let cfg = provider_config(&p.issuer());
    let store = KeyStore::new(&cfg).unwrap();
    let verifier = Verifier::new(&cfg, store.clone());
    // Checked at the very moment the sidecar starts fetching: no keys yet, but the first fetch is under way.
    assert!(!store.ready());
    let r = spawn(store);
    let t = verifier.verify_access_token(&p.sign(p.default_claims())).await.expect("waited for the first fetch");
    assert_eq!(t.kid.as_deref(), Some(p.current_kid().as_str()));
    assert!(r.store.ready());
}

#[tokio::test]
async fn shutdown_stops_the_task() {
    let p = TestProvider::start().await;
    let cfg = provider_config(&p.issuer());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let store = KeyStore::new(&cfg).unwrap();
    let task = tokio::spawn(store.clone().run(rx));
    eventually("keys loaded", || store.ready()).await;
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(20), task).await.expect("task ends on shutdown").unwrap();
}

#[tokio::test]
async fn rotation_new_kid_triggers_refetch_then_verifies() {
    let p = TestProvider::start().await;
    let cfg = provider_config(&p.issuer());
    let store = KeyStore::new(&cfg).unwrap();
    store.refresh().await.unwrap();
    let verifier = Verifier::new(&cfg, store.clone());
    verifier.verify_access_token(&p.sign(p.default_claims())).await.unwrap();
    let fetches = p.jwks_fetch_count();

    let new_kid = p.rotate_key();
    let t = verifier.verify_access_token(&p.sign(p.default_claims())).await.unwrap();
    assert_eq!(t.kid.as_deref(), Some(new_kid.as_str()));
    assert_eq!(p.jwks_fetch_count(), fetches + 1, "exactly one refetch");
    assert!(store.keys().unwrap().get(&new_kid).is_some());
}

#[tokio::test]
async fn unknown_kid_refetch_has_a_cooldown() {
    let p = TestProvider::start().await;
    let cfg = provider_config(&p.issuer());
    let store = KeyStore::new(&cfg).unwrap();
    store.refresh().await.unwrap();
    let verifier = Verifier::new(&cfg, store.clone());
    let base = p.jwks_fetch_count();
    let forged = |kid: &str| p.sign_with_header(json!({"alg": "RS256", "kid": kid}), p.default_claims());

    assert_eq!(verifier.verify_access_token(&forged("k1")).await.unwrap_err().kind(), "unknown_kid");
    assert_eq!(p.jwks_fetch_count(), base + 1);
    // A second unknown kid inside the cooldown: refused without another fetch.
    assert_eq!(verifier.verify_access_token(&forged("k2")).await.unwrap_err().kind(), "unknown_kid");
    assert_eq!(p.jwks_fetch_count(), base + 1);
    // Even a real rotation waits for the cooldown (the background refresh would pick it up).
    p.rotate_key();
    assert_eq!(verifier.verify_access_token(&p.sign(p.default_claims())).await.unwrap_err().kind(), "unknown_kid");
    assert_eq!(p.jwks_fetch_count(), base + 1);
}

#[tokio::test]
async fn zero_cooldown_allows_each_refetch() {
    let p = TestProvider::start().await;
    let mut cfg = provider_config(&p.issuer());
    cfg.jwks_refetch_cooldown = Duration::ZERO;
    let store = KeyStore::new(&cfg).unwrap();
    store.refresh().await.unwrap();
    let base = p.jwks_fetch_count();
    store.refetch_for_unknown_kid().await;
    store.refetch_for_unknown_kid().await;
    assert_eq!(p.jwks_fetch_count(), base + 2);
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_fetch() {
    let p = TestProvider::start().await;
    let mut cfg = provider_config(&p.issuer());
    cfg.jwks_refetch_cooldown = Duration::ZERO; // so only single-flight, not the cooldown, can merge them
    let store = KeyStore::new(&cfg).unwrap();
    store.refresh().await.unwrap();
    let base = p.jwks_fetch_count();
    // Hold the fetch lock so every caller queues behind one in-flight "fetch".
    let guard = store.fetch_lock.lock().await;
    let mut waiters = Vec::new();
    for _ in 0..8 {
        let s = store.clone();
        waiters.push(tokio::spawn(async move { s.refetch_for_unknown_kid().await }));
    }
    // Current-thread runtime: yielding lets every spawned caller run up to the lock and queue there.
    tokio::time::sleep(Duration::from_millis(50)).await;
    store.fetch_generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst); // the in-flight fetch completes
    drop(guard);
    for w in waiters {
        w.await.unwrap();
    }
    // Every caller saw the in-flight fetch complete and used its result instead of fetching again.
    assert_eq!(p.jwks_fetch_count(), base, "all callers waited on the in-flight fetch");
}

#[tokio::test]
async fn provider_down_at_start_then_up() {
    let p = TestProvider::start().await;
    p.set_down(true);
    let cfg = provider_config(&p.issuer());
    let store = KeyStore::with_options(&cfg, fast_options(&cfg)).unwrap();
    let r = spawn(store);
    eventually("a failed attempt is recorded", || r.store.last_error().is_some()).await;
    assert!(!r.store.ready());
    let reason = r.store.unavailable_reason().unwrap();
    assert!(reason.contains("503") && reason.contains("discovery"), "{reason}");

    let verifier = Verifier::new(&cfg, r.store.clone());
    let e = verifier.verify_access_token(&p.sign(p.default_claims())).await.unwrap_err();
    assert!(e.is_unavailable());
    assert!(e.description().contains("503"), "{e}");

    p.set_down(false);
    eventually("keys loaded after the provider came back", || r.store.ready()).await;
    verifier.verify_access_token(&p.sign(p.default_claims())).await.unwrap();
    assert_eq!(r.store.unavailable_reason(), None);
}

#[tokio::test]
async fn unreachable_provider_reason_says_so() {
    // A port with nothing listening: bind, learn the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = provider_config(&format!("http://127.0.0.1:{port}"));
    let store = KeyStore::with_options(&cfg, fast_options(&cfg)).unwrap();
    let e = store.refresh().await.unwrap_err();
    assert!(matches!(e, OidcError::Fetch { what: "discovery", .. }), "{e:?}");
    assert!(store.unavailable_reason().unwrap().contains("cannot connect"), "{:?}", store.unavailable_reason());
}

#[tokio::test]
async fn provider_down_later_keeps_cached_keys() {
    let p = TestProvider::start().await;
    let mut cfg = provider_config(&p.issuer());
    cfg.jwks_refresh = Duration::from_millis(50); // refresh constantly so outages are noticed
    let opts = KeyStoreOptions { min_refresh: Duration::from_millis(10), ..fast_options(&cfg) };
    let store = KeyStore::with_options(&cfg, opts).unwrap();
    let r = spawn(store);
    eventually("keys loaded", || r.store.ready()).await;
    let verifier = Verifier::new(&cfg, r.store.clone());

    p.set_down(true);
    eventually("a failed refresh", || r.store.last_error().is_some()).await;
    assert!(r.store.ready(), "last good keys stay");
    assert_eq!(r.store.unavailable_reason(), None);
    // A token never seen before (no cache) verifies with the cached keys.
    verifier.verify_access_token(&p.sign(p.default_claims())).await.unwrap();

    p.set_hang_up(true);
    let before = r.store.last_error();
    eventually("another failed refresh", || r.store.last_error() != before || before.is_none()).await;
    verifier.verify_access_token(&p.sign(p.default_claims())).await.unwrap();
    assert!(r.store.ready());

    p.set_hang_up(false);
    p.set_down(false);
    eventually("recovered", || r.store.last_error().is_none()).await;
}

#[tokio::test]
async fn cache_control_max_age_is_honoured_within_bounds() {
    let p = TestProvider::start().await;
    let cfg = provider_config(&p.issuer()); // jwks_refresh 1 h
    let opts = KeyStoreOptions { min_refresh: Duration::from_millis(100), ..fast_options(&cfg) };

    p.set_cache_control(Some("public, max-age=1".into()));
    let store = KeyStore::with_options(&cfg, opts.clone()).unwrap();
    assert_eq!(store.refresh().await.unwrap(), Duration::from_secs(1));
    p.set_cache_control(Some("max-age=86400".into()));
    assert_eq!(store.refresh().await.unwrap(), Duration::from_secs(3600), "capped at jwks_refresh");
    p.set_cache_control(Some("no-store".into()));
    assert_eq!(store.refresh().await.unwrap(), Duration::from_millis(100), "floored at min_refresh");

    // And the background task really refetches on that schedule (max-age=1 → about every second).
    p.set_cache_control(Some("max-age=1".into()));
    let r = spawn(KeyStore::with_options(&cfg, opts).unwrap());
    eventually("loaded", || r.store.ready()).await;
    let after_first = p.jwks_fetch_count();
    eventually("a refresh driven by max-age", || p.jwks_fetch_count() > after_first).await;
    assert_eq!(r.store.next_refresh(), Some(Duration::from_secs(1)));
    r.task.abort();
}

#[test]
fn production_bounds() {
    let cfg = provider_config("https://idp.example");
    let o = KeyStoreOptions::from_config(&cfg);
    assert_eq!(o.min_refresh, Duration::from_secs(300));
    assert_eq!(o.refresh_interval(Some(Duration::from_secs(10))), Duration::from_secs(300));
    assert_eq!(o.refresh_interval(Some(Duration::from_secs(1800))), Duration::from_secs(1800));
    assert_eq!(o.refresh_interval(Some(Duration::from_secs(86400))), Duration::from_secs(3600));
    assert_eq!(o.refresh_interval(None), Duration::from_secs(3600));
    assert_eq!(o.refetch_cooldown, Duration::from_secs(30));
    // A short configured interval lowers the floor with it.
    let mut short = cfg.clone();
    short.jwks_refresh = Duration::from_secs(60);
    let o = KeyStoreOptions::from_config(&short);
    assert_eq!(o.refresh_interval(Some(Duration::ZERO)), Duration::from_secs(60));
}

#[test]
fn plain_http_discovery_only_for_loopback() {
    let cfg = provider_config("http://login.example.com/tenant/v2.0");
    let e = KeyStore::new(&cfg).unwrap_err();
    assert!(matches!(e, OidcError::InsecureUrl { .. }), "{e:?}");
    assert!(KeyStore::new(&provider_config("https://login.example.com/t/v2.0")).is_ok());
    assert!(KeyStore::new(&provider_config("http://127.0.0.1:9/t")).is_ok());
}

#[tokio::test]
async fn discovery_naming_another_issuer_is_refused() {
    let p = TestProvider::start().await;
    let mut cfg = provider_config(&format!("{}/other", p.url()));
    cfg.discovery_url = p.discovery_url();
    let store = KeyStore::new(&cfg).unwrap();
    let e = store.refresh().await.unwrap_err();
    assert!(matches!(e, OidcError::IssuerMismatch { .. }), "{e:?}");
    assert!(!store.ready());
}

#[test]
fn jitter_stays_within_half_to_full() {
    for _ in 0..100 {
        let j = jitter(Duration::from_millis(1000));
        assert!(j >= Duration::from_millis(500) && j <= Duration::from_millis(1000));
    }
}
