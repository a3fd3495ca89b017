//! Every refusal of the verifier, with tokens signed by the test provider's real keys (or crafted by hand where
//! the attack is the point), plus the precise wording of the reasons developers will read.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oidc_testkit::{unsigned_token, TestProvider, RSA1_PUBLIC_PEM, TEST_AUDIENCE, TEST_CLIENT_ID, TEST_TENANT};
use serde_json::{json, Value};

use super::*;
use crate::oidc::tests::provider_config;
use crate::oidc::KeyStore;

const API_GUID: &str = "6e3a0e1c-0000-4000-8000-00000000a11d";

async fn setup_with(edit: impl FnOnce(&mut ProviderConfig)) -> (TestProvider, Verifier) {
    let p = TestProvider::start().await;
    let mut cfg = provider_config(&p.issuer());
    edit(&mut cfg);
    let ks = KeyStore::new(&cfg).unwrap();
    ks.refresh().await.expect("test provider answers");
    let v = Verifier::new(&cfg, ks);
    (p, v)
}

async fn setup() -> (TestProvider, Verifier) {
    setup_with(|_| {}).await
}

fn with(mut claims: Value, edits: Value) -> Value {
    for (k, v) in edits.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

async fn refused(v: &Verifier, token: &str) -> TokenError {
    match v.verify_access_token(token).await {
        Ok(t) => panic!("token accepted: {:?}", t.claims),
        Err(e) => e,
    }
}

// === accepted ===

#[tokio::test]
async fn valid_rs256_token_is_accepted_then_served_from_cache() {
    let (p, v) = setup().await;
    let token = p.sign(p.default_claims());
    let first = v.verify_access_token(&token).await.unwrap();
    assert_eq!(first.claims["oid"], json!(oidc_testkit::TEST_OID));
    assert_eq!(first.kid.as_deref(), Some(p.current_kid().as_str()));
    assert_eq!(first.alg, "RS256");
    assert_eq!(Some(first.expires_at), first.claims["exp"].as_i64());
    let second = v.verify_access_token(&token).await.unwrap();
    assert!(Arc::ptr_eq(&first, &second), "second verification must be the cached verdict");
}

#[tokio::test]
async fn valid_es256_and_ps256_tokens_are_accepted() {
    let (p, v) = setup().await;
    let t = v.verify_access_token(&p.sign_es256(p.default_claims())).await.unwrap();
    assert_eq!(t.alg, "ES256");
    let token = p.sign_with_header(json!({"alg": "PS256", "kid": p.current_kid()}), p.default_claims());
    assert_eq!(v.verify_access_token(&token).await.unwrap().alg, "PS256");
}

#[tokio::test]
async fn v1_and_v2_issuers_are_accepted_when_configured() {
    let v1 = format!("https://sts.windows.net/{TEST_TENANT}/");
    let v1c = v1.clone();
    let (p, v) = setup_with(move |c| c.extra_issuers = vec![v1c]).await;
    v.verify_access_token(&p.sign(p.default_claims())).await.unwrap();
    let claims = with(p.default_claims(), json!({"iss": v1, "ver": "1.0"}));
    v.verify_access_token(&p.sign(claims)).await.unwrap();
}

#[tokio::test]
async fn aud_array_containing_an_accepted_audience_passes() {
    let (p, v) = setup().await;
    let claims = with(p.default_claims(), json!({"aud": ["api://someone-else", API_GUID]}));
    v.verify_access_token(&p.sign(claims)).await.unwrap();
}

#[tokio::test]
async fn within_clock_skew_passes() {
    let (p, v) = setup().await;
    let now = unix_now();
    let claims = with(p.default_claims(), json!({"exp": now - 30, "nbf": now + 30, "iat": now + 30}));
    v.verify_access_token(&p.sign(claims)).await.unwrap();
}

// === header refusals ===

#[tokio::test]
async fn alg_none_in_any_spelling_is_refused() {
    let (p, v) = setup().await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let e = refused(&v, &unsigned_token(alg, &p.default_claims())).await;
        assert!(matches!(e, TokenError::AlgNone(_)), "{alg}: {e:?}");
        assert_eq!(e.kind(), "alg_none");
    }
    // Same, with a (meaningless) signature attached.
    let token = p.sign_with_header(json!({"alg": "none", "kid": p.current_kid()}), p.default_claims());
    assert!(matches!(refused(&v, &token).await, TokenError::AlgNone(_)));
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    // The classic algorithm confusion: the attacker knows the public key and uses it as an HMAC secret.
    let (p, v) = setup_with(|c| c.algorithms.push(Algorithm::HS256)).await;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(p.current_kid());
    let key = EncodingKey::from_secret(RSA1_PUBLIC_PEM.as_bytes()).unwrap();
    let token = jsonwebtoken::encode(&header, &p.default_claims(), &key).unwrap();
    let e = refused(&v, &token).await;
    assert!(matches!(e, TokenError::Hmac(ref a) if a == "HS256"), "{e:?}");
    assert!(!v.algorithms().contains(&Algorithm::HS256), "HS* is dropped even when configured");
    for alg in ["HS384", "hs512"] {
        let token = p.sign_with_header(json!({"alg": alg, "kid": p.current_kid()}), p.default_claims());
        assert!(matches!(refused(&v, &token).await, TokenError::Hmac(_)));
    }
}

#[tokio::test]
async fn algorithms_outside_the_configured_list_are_refused() {
    let (p, v) = setup_with(|c| c.algorithms = vec![Algorithm::RS256]).await;
    let e = refused(&v, &p.sign_es256(p.default_claims())).await;
    assert_eq!(e, TokenError::AlgorithmNotAccepted { alg: "ES256".into(), accepted: "RS256".into() });
    assert_eq!(e.description(), "algorithm ES256 is not accepted (accepted: RS256)");
    let token = p.sign_with_header(json!({"alg": "PS256", "kid": p.current_kid()}), p.default_claims());
    assert!(matches!(refused(&v, &token).await, TokenError::AlgorithmNotAccepted { .. }));
    let token = p.sign_with_header(json!({"alg": "RS1", "kid": p.current_kid()}), p.default_claims());
    assert!(matches!(refused(&v, &token).await, TokenError::AlgorithmNotAccepted { .. }));
}

#[tokio::test]
async fn keys_embedded_in_the_header_are_refused() {
    let (p, v) = setup().await;
    let jwk = p.jwks()["keys"][0].clone();
    let cases = [
        ("jwk", json!({"alg": "RS256", "kid": p.current_kid(), "jwk": jwk})),
        ("jku", json!({"alg": "RS256", "kid": p.current_kid(), "jku": "https://attacker.example/jwks"})),
        ("x5u", json!({"alg": "RS256", "kid": p.current_kid(), "x5u": "https://attacker.example/cert"})),
        ("x5c", json!({"alg": "RS256", "kid": p.current_kid(), "x5c": ["MIIB"]})),
    ];
    for (param, header) in cases {
        let e = refused(&v, &p.sign_with_header(header, p.default_claims())).await;
        assert_eq!(e, TokenError::EmbeddedKey(param), "{param}");
        assert!(e.description().contains(param));
    }
}

#[tokio::test]
async fn crit_and_b64_are_refused() {
    let (p, v) = setup().await;
    let kid = p.current_kid();
    let token = p.sign_with_header(
        json!({"alg": "RS256", "kid": kid, "crit": ["http://example.com/ext"], "http://example.com/ext": true}),
        p.default_claims(),
    );
    let e = refused(&v, &token).await;
    assert!(matches!(e, TokenError::Critical(ref c) if c == "http://example.com/ext"), "{e:?}");
    let token =
        p.sign_with_header(json!({"alg": "RS256", "kid": kid, "crit": ["b64"], "b64": false}), p.default_claims());
    assert!(matches!(refused(&v, &token).await, TokenError::Critical(_)));
    let token = p.sign_with_header(json!({"alg": "RS256", "kid": kid, "b64": false}), p.default_claims());
    assert_eq!(refused(&v, &token).await, TokenError::UnencodedPayload);
}

#[tokio::test]
async fn graph_tokens_are_named_as_such() {
    let (p, v) = setup().await;
    let graph_claims = with(p.default_claims(), json!({"aud": "00000003-0000-0000-c000-000000000000"}));
    // The real thing: a nonce in the header (the signature covers its hash, so it never verifies).
    let token =
        p.sign_with_header(json!({"alg": "RS256", "kid": p.current_kid(), "nonce": "abc"}), graph_claims.clone());
    let e = refused(&v, &token).await;
    assert_eq!(e.kind(), "graph_token");
    let d = e.description();
    assert!(d.contains("Microsoft Graph token"), "{d}");
    assert!(d.contains(TEST_AUDIENCE) && d.contains(API_GUID), "names the accepted audiences: {d}");
    // Graph audience without the nonce header (validly signed): still the Graph message, not a bare audience one.
    for aud in [json!("https://graph.microsoft.com"), json!(["00000003-0000-0000-c000-000000000000"])] {
        let claims = with(p.default_claims(), json!({ "aud": aud }));
        assert_eq!(refused(&v, &p.sign(claims)).await.kind(), "graph_token");
    }
}

// === structure ===

#[tokio::test]
async fn malformed_tokens_are_refused_before_any_key_work() {
    let (p, v) = setup().await;
    let good = p.sign(p.default_claims());
    assert!(matches!(refused(&v, &"a".repeat(MAX_TOKEN_BYTES + 1)).await, TokenError::TooLarge { .. }));
    assert_eq!(refused(&v, "a.b.c.d.e").await, TokenError::Encrypted);
    assert!(matches!(refused(&v, "a.b").await, TokenError::Malformed(_)));
    assert!(matches!(refused(&v, "").await, TokenError::Malformed(_)));
    assert!(matches!(refused(&v, &format!("{good}=")).await, TokenError::Malformed(_)), "padding");
    assert!(matches!(refused(&v, &good.replacen('-', "+", 1).replacen('_', "/", 1)).await, TokenError::Malformed(_)));
    assert!(matches!(refused(&v, &format!("{good}.")).await, TokenError::Malformed(_)), "four parts");
    assert!(matches!(
        refused(&v, "eyJhbGciOiJSUzI1NiJ9.e30.").await,
        TokenError::NoKid(_) | TokenError::BadSignature(_)
    ));
    assert!(matches!(refused(&v, "bm90IGpzb24.e30.c2ln").await, TokenError::Malformed(_)), "header not JSON");
}

#[tokio::test]
async fn duplicate_members_are_refused() {
    let (p, v) = setup().await;
    let now = unix_now();
    let kid = p.current_kid();
    let header = format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#);
    let payload = format!(
        r#"{{"iss":"{}","aud":"api://evil","aud":"{TEST_AUDIENCE}","exp":{},"tid":"{TEST_TENANT}"}}"#,
        p.issuer(),
        now + 600
    );
    let e = refused(&v, &p.sign_text(&header, &payload)).await;
    assert!(matches!(e, TokenError::Malformed(ref m) if m.contains("duplicate")), "{e:?}");
    let header = format!(r#"{{"alg":"none","alg":"RS256","kid":"{kid}"}}"#);
    let payload = p.default_claims().to_string();
    assert!(matches!(refused(&v, &p.sign_text(&header, &payload)).await, TokenError::Malformed(_)));
}

// === keys ===

#[tokio::test]
async fn unknown_kid_after_refetch() {
    let (p, v) = setup().await;
    let before = p.jwks_fetch_count();
    let token = p.sign_with_header(json!({"alg": "RS256", "kid": "no-such-key"}), p.default_claims());
    let e = refused(&v, &token).await;
    assert_eq!(e, TokenError::UnknownKid("no-such-key".into()));
    assert_eq!(e.description(), "unknown key id no-such-key");
    assert_eq!(p.jwks_fetch_count(), before + 1, "one refetch for the unknown kid");
}

#[tokio::test]
async fn key_type_must_fit_alg() {
    let (p, v) = setup().await;
    // ES256 header naming the RSA key, and RS256 naming the EC key.
    let token = p.sign_with_header(json!({"alg": "ES256", "kid": p.current_kid()}), p.default_claims());
    let e = refused(&v, &token).await;
    assert!(matches!(e, TokenError::KeyMismatch { key_family: "RSA", .. }), "{e:?}");
    let token = p.sign_with_header(json!({"alg": "RS256", "kid": p.ec_kid()}), p.default_claims());
    let e = refused(&v, &token).await;
    assert!(matches!(e, TokenError::KeyMismatch { key_family: "EC", .. }), "{e:?}");
    assert_eq!(e.description(), format!("key {} is an EC key and cannot verify RS256", p.ec_kid()));
}

#[tokio::test]
async fn tampered_payload_fails_the_signature() {
    let (p, v) = setup().await;
    let token = p.sign(p.default_claims());
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(with(p.default_claims(), json!({"roles": ["Admin"]})).to_string());
    parts[1] = &forged;
    let e = refused(&v, &parts.join(".")).await;
    assert_eq!(e, TokenError::BadSignature(p.current_kid()));
    // Another provider's key under our kid: same.
    let other = TestProvider::start().await;
    other.rotate_key(); // different key material, kid tk-rsa-2
    let mut claims = p.default_claims();
    claims["iss"] = json!(p.issuer());
    let token = other.sign_with_header(json!({"alg": "RS256", "kid": p.current_kid()}), claims);
    assert!(matches!(refused(&v, &token).await, TokenError::BadSignature(_)));
}

#[tokio::test]
async fn keys_not_loaded_is_unavailable_not_invalid() {
    let p = TestProvider::start().await;
    let cfg = provider_config(&p.issuer());
    let v = Verifier::new(&cfg, KeyStore::new(&cfg).unwrap());
    let e = refused(&v, &p.sign(p.default_claims())).await;
    assert!(e.is_unavailable(), "{e:?}");
    assert_eq!(e.kind(), "keys_unavailable");
    assert!(!TokenError::UnknownKid("x".into()).is_unavailable());
}

#[tokio::test]
async fn cached_verdict_is_dropped_when_its_key_is_withdrawn() {
    let (p, v) = setup().await;
    let token = p.sign(p.default_claims());
    v.verify_access_token(&token).await.unwrap();
    p.rotate_key();
    p.remove_old_keys();
    v.key_store().refresh().await.unwrap();
    let e = refused(&v, &token).await;
    assert!(matches!(e, TokenError::UnknownKid(_)), "{e:?}");
}

// === claims ===

#[tokio::test]
async fn wrong_audience_names_both_sides() {
    let (p, v) = setup().await;
    let e = refused(&v, &p.sign(with(p.default_claims(), json!({"aud": "api://x"})))).await;
    assert_eq!(e.description(), format!("audience api://x is not accepted (accepted: {TEST_AUDIENCE}, {API_GUID})"));
    let e = refused(&v, &p.sign(with(p.default_claims(), json!({"aud": ["api://x", "api://y"]})))).await;
    assert!(e.description().starts_with("audience api://x, api://y is not accepted"), "{e}");
    // Exact comparison: no trailing-slash or case folding.
    for aud in [format!("{TEST_AUDIENCE}/"), TEST_AUDIENCE.to_uppercase()] {
        let e = refused(&v, &p.sign(with(p.default_claims(), json!({ "aud": aud })))).await;
        assert_eq!(e.kind(), "audience");
    }
    let e = refused(&v, &p.sign(with(p.default_claims(), json!({"aud": []})))).await;
    assert_eq!(e.kind(), "audience");
    let e = refused(&v, &p.sign(with(p.default_claims(), json!({"aud": null})))).await;
    assert_eq!(e, TokenError::MissingClaim("aud"));
}

#[tokio::test]
async fn wrong_or_missing_issuer() {
    let (p, v) = setup().await;
    let e = refused(&v, &p.sign(with(p.default_claims(), json!({"iss": "https://evil.example/"})))).await;
    assert_eq!(e.description(), format!("issuer https://evil.example/ is not accepted (accepted: {})", p.issuer()));
    let e = refused(&v, &p.sign(with(p.default_claims(), json!({"iss": format!("{}/", p.issuer())})))).await;
    assert_eq!(e.kind(), "issuer");
    let e = refused(&v, &p.sign(with(p.default_claims(), json!({"iss": [p.issuer()]})))).await;
    assert!(matches!(e, TokenError::InvalidClaim { .. } | TokenError::Issuer { .. }), "{e:?}");
    let e = refused(&v, &p.sign(with(p.default_claims(), json!({"iss": null})))).await;
    assert_eq!(e, TokenError::MissingClaim("iss"));
}

#[tokio::test]
async fn expired_beyond_skew_says_how_long_ago() {
    let (p, v) = setup().await;
    let now = unix_now();
    let e = refused(&v, &p.sign(with(p.default_claims(), json!({"exp": now - 180})))).await;
    assert!(matches!(e, TokenError::Expired(s) if (180..=185).contains(&s)), "{e:?}");
    assert_eq!(e.description(), "token expired 3 min ago");
    let e = refused(&v, &p.sign(with(p.default_claims(), json!({"exp": null})))).await;
    assert_eq!(e, TokenError::MissingClaim("exp"));
    let e = refused(&v, &p.sign(with(p.default_claims(), json!({"exp": (now + 600).to_string()})))).await;
    assert!(
        matches!(e, TokenError::InvalidClaim { ref claim, .. } if claim == "exp")
            || e == TokenError::MissingClaim("exp"),
        "{e:?}"
    );
}

#[tokio::test]
async fn not_yet_valid_and_issued_in_the_future() {
    let (p, v) = setup().await;
    let now = unix_now();
    let e = refused(&v, &p.sign(with(p.default_claims(), json!({"nbf": now + 600})))).await;
    assert!(matches!(e, TokenError::NotYetValid(s) if (595..=600).contains(&s)), "{e:?}");
    assert!(e.description().starts_with("token is not valid yet (nbf is 10 min"), "{e}");
    let e = refused(&v, &p.sign(with(p.default_claims(), json!({"iat": now + 600})))).await;
    assert!(matches!(e, TokenError::IssuedInFuture(_)), "{e:?}");
    assert_eq!(e.kind(), "iat_future");
}

#[tokio::test]
async fn tenant_must_match_when_required() {
    let (p, v) = setup().await;
    let e =
        refused(&v, &p.sign(with(p.default_claims(), json!({"tid": "9188040d-6c67-4c5b-b112-36a304b66dad"})))).await;
    assert_eq!(
        e.description(),
        format!("tenant 9188040d-6c67-4c5b-b112-36a304b66dad is not accepted (required: {TEST_TENANT})")
    );
    let e = refused(&v, &p.sign(with(p.default_claims(), json!({"tid": null})))).await;
    assert_eq!(e, TokenError::MissingClaim("tid"));
    // Without a required tenant, any tid passes.
    let (p, v) = setup_with(|c| c.required_tenant = None).await;
    v.verify_access_token(&p.sign(with(p.default_claims(), json!({"tid": "other"})))).await.unwrap();
}

#[tokio::test]
async fn token_values_in_reasons_are_sanitised() {
    let (p, v) = setup().await;
    let e = refused(&v, &p.sign(with(p.default_claims(), json!({"aud": "x\"; evil=\"1\r\nSet-Cookie: a=b"})))).await;
    let d = e.description();
    assert!(!d.contains('"') && !d.contains('\r') && !d.contains('\n'), "{d}");
    let e = refused(&v, &p.sign(with(p.default_claims(), json!({"aud": "é".repeat(500)})))).await;
    assert!(e.description().len() < 400 && e.description().is_ascii());
}

#[tokio::test]
async fn a_token_must_name_a_subject() {
    let (p, v) = setup().await;
    // oid alone (Entra) or sub alone (any OIDC provider) is enough; neither is refused.
    v.verify_access_token(&p.sign(with(p.default_claims(), json!({"sub": null})))).await.unwrap();
    v.verify_access_token(&p.sign(with(p.default_claims(), json!({"oid": null})))).await.unwrap();
    let e = refused(&v, &p.sign(with(p.default_claims(), json!({"sub": null, "oid": null})))).await;
    assert_eq!(e, TokenError::MissingClaim("sub"));
    let e = refused(&v, &p.sign(with(p.default_claims(), json!({"sub": "", "oid": null})))).await;
    assert_eq!(e, TokenError::MissingClaim("sub"));
}

// === ID tokens ===

fn id_claims(p: &TestProvider, nonce: &str) -> Value {
    with(p.default_claims(), json!({"aud": TEST_CLIENT_ID, "nonce": nonce, "scp": null, "roles": null, "azp": null}))
}

#[tokio::test]
async fn id_token_checks() {
    let (p, v) = setup().await;
    let ok = v.verify_id_token(&p.sign(id_claims(&p, "n-123")), "n-123").await.unwrap();
    assert_eq!(ok.claims["nonce"], json!("n-123"));
    assert_eq!(v.verify_id_token(&p.sign(id_claims(&p, "n-123")), "n-456").await.unwrap_err(), TokenError::Nonce);
    let e = v.verify_id_token(&p.sign(with(id_claims(&p, "n"), json!({"nonce": null}))), "n").await.unwrap_err();
    assert_eq!(e, TokenError::MissingClaim("nonce"));
    // An access token for the API is not an ID token for us.
    let e = v.verify_id_token(&p.sign(with(p.default_claims(), json!({"nonce": "n"}))), "n").await.unwrap_err();
    assert_eq!(e.kind(), "audience");
    let e = v
        .verify_id_token(&p.sign(with(id_claims(&p, "n"), json!({"aud": [TEST_CLIENT_ID, "other"]}))), "n")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "azp");
    let e = v.verify_id_token(&p.sign(with(id_claims(&p, "n"), json!({"azp": "other"}))), "n").await.unwrap_err();
    assert_eq!(e.kind(), "azp");
    v.verify_id_token(
        &p.sign(with(id_claims(&p, "n"), json!({"aud": [TEST_CLIENT_ID, "o"], "azp": TEST_CLIENT_ID}))),
        "n",
    )
    .await
    .unwrap();
    let e = v.verify_id_token(&p.sign(with(id_claims(&p, "n"), json!({"iat": null}))), "n").await.unwrap_err();
    assert_eq!(e, TokenError::MissingClaim("iat"));
    let e = v.verify_id_token(&unsigned_token("none", &id_claims(&p, "n")), "n").await.unwrap_err();
    assert_eq!(e.kind(), "alg_none");
    assert_eq!(v.verify_id_token(&p.sign(id_claims(&p, "")), "").await.unwrap_err(), TokenError::Nonce);
}

#[tokio::test]
async fn id_tokens_only_from_the_primary_issuer() {
    let v1 = format!("https://sts.windows.net/{TEST_TENANT}/");
    let v1c = v1.clone();
    let (p, v) = setup_with(move |c| c.extra_issuers = vec![v1c]).await;
    let e = v.verify_id_token(&p.sign(with(id_claims(&p, "n"), json!({"iss": v1}))), "n").await.unwrap_err();
    assert_eq!(e.kind(), "issuer");
}

// === pure helpers ===

#[test]
fn human_durations() {
    assert_eq!(human_duration(0), "0 s");
    assert_eq!(human_duration(45), "45 s");
    assert_eq!(human_duration(180), "3 min");
    assert_eq!(human_duration(7200), "2 h");
    assert_eq!(human_duration(7500), "2 h 5 min");
    assert_eq!(human_duration(3 * 86400 + 5), "3 days");
    assert_eq!(human_duration(-5), "0 s");
    assert_eq!(TokenError::Expired(180).description(), "token expired 3 min ago");
}

#[test]
fn time_checks_on_odd_values() {
    let now = 1_700_000_000;
    let c = |v: Value| v.as_object().unwrap().clone();
    assert_eq!(check_times(&c(json!({"exp": now + 10})), now, 60, false), Ok(now + 10));
    assert_eq!(check_times(&c(json!({"exp": (now + 10) as f64 + 0.5})), now, 60, false), Ok(now + 10));
    assert!(check_times(&c(json!({"exp": -1})), now, 60, false).is_err());
    assert!(check_times(&c(json!({"exp": 1e300})), now, 60, false).is_err());
    assert!(check_times(&c(json!({"exp": u64::MAX})), now, 60, false).is_err());
    assert!(check_times(&c(json!({"exp": true})), now, 60, false).is_err());
    assert_eq!(check_times(&c(json!({"exp": now - 61})), now, 60, false), Err(TokenError::Expired(61)));
    assert_eq!(
        check_times(&c(json!({"exp": now + 10, "nbf": "0"})), now, 60, false).unwrap_err().kind(),
        "invalid_claim"
    );
}

#[test]
fn sanitiser() {
    assert_eq!(show("api://ok-1"), "api://ok-1");
    assert_eq!(show("a\"b\\c\nd"), "a?b?c?d");
    assert!(show(&"x".repeat(500)).ends_with("..."));
}

#[test]
fn reasons_are_stable() {
    // The gateway puts these in error_description; pin the wording.
    assert_eq!(TokenError::UnknownKid("abc".into()).description(), "unknown key id abc");
    assert_eq!(
        TokenError::Issuer { iss: "https://a/".into(), accepted: "https://b".into() }.description(),
        "issuer https://a/ is not accepted (accepted: https://b)"
    );
    assert_eq!(TokenError::MissingClaim("tid").description(), "token has no tid claim");
    let _ = Duration::ZERO;
}
