//! Bearer verification cost: RS256 and ES256 with every check (cold), and a token seen before (cached).
//!
//! Keys come from the test provider over a real socket, once, before measuring; nothing is fetched while measuring.
//! `cargo bench -p oidc-sidecar --bench verify -- --warm-up-time 1 --measurement-time 3`

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use jsonwebtoken::Algorithm;
use oidc_sidecar::config::{ClientAuth, ProviderConfig};
use oidc_sidecar::oidc::{KeyStore, Verifier};
use oidc_testkit::{TestProvider, TEST_AUDIENCE, TEST_CLIENT_ID, TEST_TENANT};

fn provider_config(issuer: &str) -> ProviderConfig {
    ProviderConfig {
        issuer: issuer.to_string(),
        discovery_url: format!("{issuer}/.well-known/openid-configuration"),
        extra_issuers: vec![],
        client_id: TEST_CLIENT_ID.to_string(),
        client_secret: None,
        client_auth: ClientAuth::ClientSecretBasic,
        audiences: vec![TEST_AUDIENCE.to_string()],
        required_tenant: Some(TEST_TENANT.to_string()),
        clock_skew: Duration::from_secs(60),
        algorithms: vec![Algorithm::RS256, Algorithm::PS256, Algorithm::ES256],
        scopes: vec!["openid".into()],
        jwks_refresh: Duration::from_secs(3600),
        jwks_refetch_cooldown: Duration::from_secs(30),
        entra: false,
    }
}

fn bench_verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (provider, verifier) = rt.block_on(async {
        let provider = TestProvider::start().await;
        let cfg = provider_config(&provider.issuer());
        let keys = KeyStore::new(&cfg).expect("key store");
        keys.refresh().await.expect("test provider serves keys");
        let verifier = Verifier::new(&cfg, keys);
        (provider, verifier)
    });
    let rs256 = provider.sign(provider.default_claims());
    let es256 = provider.sign_es256(provider.default_claims());
    println!("token sizes: RS256 {} bytes, ES256 {} bytes", rs256.len(), es256.len());
    rt.block_on(verifier.verify_access_token_uncached(&rs256)).expect("RS256 token verifies");
    rt.block_on(verifier.verify_access_token_uncached(&es256)).expect("ES256 token verifies");

    let mut g = c.benchmark_group("verify");
    g.bench_function("rs256_cold", |b| {
        b.iter(|| rt.block_on(verifier.verify_access_token_uncached(black_box(&rs256))).expect("valid"))
    });
    g.bench_function("es256_cold", |b| {
        b.iter(|| rt.block_on(verifier.verify_access_token_uncached(black_box(&es256))).expect("valid"))
    });
    rt.block_on(verifier.verify_access_token(&rs256)).expect("valid");
    g.bench_function("rs256_cached", |b| {
        b.iter(|| rt.block_on(verifier.verify_access_token(black_box(&rs256))).expect("valid"))
    });
    // A refusal before any signature work (what an attacker spraying alg=none costs).
    let none = oidc_testkit::unsigned_token("none", &provider.default_claims());
    g.bench_function("alg_none_refused", |b| {
        b.iter(|| rt.block_on(verifier.verify_access_token_uncached(black_box(&none))).expect_err("refused"))
    });
    g.finish();
    drop(provider);
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
