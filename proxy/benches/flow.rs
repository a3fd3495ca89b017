//! The whole authorization decision for one request, without sockets: `flow::App::handle` as the gateway calls it.
//!
//! Cases: a repeated valid Bearer token (the common case: verified-token and prepared-identity caches hit), a fresh
//! token each time is not measured here (see `verify` for the signature cost), a request without a token (401), and
//! a browser session in the cookie store seen again (opened-session, principal and identity caches hit).
//! `block_on_empty` is the harness's own share (entering the runtime), included in every other case.
//! `cargo bench -p oidc-sidecar --bench flow -- --warm-up-time 1 --measurement-time 3`

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue, Method};
use oidc_sidecar::flow::{App, Outcome, Request, Trace};
use oidc_sidecar::identity::AssertionSigner;
use oidc_sidecar::oidc::KeyStore;
use oidc_sidecar::session::{unix_now, CookieMap, KeyRing, SessionData, SessionStore};
use oidc_testkit::TestProvider;

fn bench_flow(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (provider, app, session_cookie) = rt.block_on(async {
        let provider = TestProvider::start().await;
        let toml = format!(
            "[provider]\nissuer = \"{}\"\nclient_id = \"c\"\naudiences = [\"{}\"]\n[session]\nkeys = [\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"]\n[[hosts]]\nname = \"api.test\"\nupstream = \"http://127.0.0.1:8000\"\nlogin = \"deny\"\n[[hosts.routes]]\npath = \"/\"\nscopes = [\"user.read\"]\n",
            provider.issuer(),
            provider.audience()
        );
        let cfg = oidc_sidecar::config::load_str(&toml, std::path::Path::new("bench.toml")).expect("config");
        let keys = KeyStore::new(&cfg.provider).expect("key store");
        keys.refresh().await.expect("keys");
        let signer = AssertionSigner::generate("oidc-sidecar".into(), std::time::Duration::from_secs(300)).expect("signer");
        let cfg = Arc::new(cfg);
        // A session as the callback would store it: the default claims, scope included, sealed with the config's key.
        let store = SessionStore::new(&cfg.session, Arc::new(KeyRing::from_config(&cfg.session).expect("keys")))
            .expect("store");
        let claims = provider.default_claims().as_object().cloned().expect("claims");
        let data = SessionData::new("bench-user", claims, unix_now(), &cfg.session);
        let set = store.save(&data, &CookieMap::default(), false).await.expect("session");
        let cookie: Vec<&str> = set.iter().map(|c| c.pair()).collect();
        let app = App::new(cfg, keys, signer).expect("app");
        (provider, app, cookie.join("; "))
    });
    let token = provider.sign(provider.default_claims());
    let mut with_token = HeaderMap::new();
    with_token.insert("host", HeaderValue::from_static("api.test"));
    with_token.insert("authorization", HeaderValue::from_str(&format!("Bearer {token}")).expect("header"));
    with_token.insert("accept", HeaderValue::from_static("application/json"));
    let mut without = HeaderMap::new();
    without.insert("host", HeaderValue::from_static("api.test"));
    without.insert("accept", HeaderValue::from_static("application/json"));
    let mut with_session = without.clone();
    with_session.insert("cookie", HeaderValue::from_str(&session_cookie).expect("cookie"));
    let get = Method::GET;
    fn req<'a>(method: &'a Method, headers: &'a HeaderMap) -> Request<'a> {
        Request { method, path: "/items/42", query: Some("x=1"), headers, body: None, peer: Some([127, 0, 0, 1].into()) }
    }
    // First calls fill the caches.
    for headers in [&with_token, &with_session] {
        match rt.block_on(app.handle(req(&get, headers), &mut Trace::default())) {
            Outcome::Forward(_) => {}
            Outcome::Respond(r) => panic!("expected a forward, got {} ({})", r.status, r.reason),
        }
    }

    let mut g = c.benchmark_group("flow");
    // What every case below pays for the harness alone (entering the runtime): subtract it to get the decision.
    g.bench_function("block_on_empty", |b| b.iter(|| rt.block_on(black_box(async {}))));
    g.bench_function("bearer_repeated_token", |b| {
        b.iter(|| rt.block_on(app.handle(black_box(req(&get, &with_token)), &mut Trace::default())))
    });
    g.bench_function("session_cookie_repeated", |b| {
        b.iter(|| rt.block_on(app.handle(black_box(req(&get, &with_session)), &mut Trace::default())))
    });
    g.bench_function("no_token_401", |b| {
        b.iter(|| rt.block_on(app.handle(black_box(req(&get, &without)), &mut Trace::default())))
    });
    g.finish();
}

criterion_group!(benches, bench_flow);
criterion_main!(benches);
