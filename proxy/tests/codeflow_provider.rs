//! The code flow's provider-facing half against the testkit OpenID provider over real sockets: endpoints taken
//! from its discovery document, and the failure shapes a real provider produces (an OAuth error for a grant it
//! does not support, 503 while down, connections closed without an answer). None of them may panic or look like
//! success.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use oidc_sidecar::config::{ClientAuth, ProviderConfig, Secret};
use oidc_sidecar::oidc::codeflow::{callback_error_page, end_session_url, CodeFlow, CodeFlowError, Endpoints};
use oidc_testkit::{TestProvider, TEST_CLIENT_ID};

fn provider_config(tp: &TestProvider) -> ProviderConfig {
    ProviderConfig {
        issuer: tp.issuer(),
        discovery_url: tp.discovery_url(),
        extra_issuers: vec![],
        client_id: TEST_CLIENT_ID.to_string(),
        client_secret: Some(Secret("test-secret".into())),
        client_auth: ClientAuth::ClientSecretPost,
        audiences: vec![tp.audience()],
        required_tenant: None,
        clock_skew: Duration::from_secs(60),
        algorithms: vec![Algorithm::RS256],
        scopes: vec!["openid".into(), "profile".into(), "email".into(), "offline_access".into()],
        jwks_refresh: Duration::from_secs(3600),
        jwks_refetch_cooldown: Duration::from_secs(30),
        entra: false,
    }
}

/// What the gateway's discovery does, reduced to the three URLs the code flow needs.
async fn discover(tp: &TestProvider) -> Endpoints {
    let doc: serde_json::Value =
        reqwest::get(tp.discovery_url()).await.unwrap().error_for_status().unwrap().json().await.unwrap();
    let url = |k: &str| url::Url::parse(doc[k].as_str().unwrap_or_else(|| panic!("{k} in discovery"))).unwrap();
    Endpoints {
        authorization: url("authorization_endpoint"),
        token: url("token_endpoint"),
        end_session: Some(url("end_session_endpoint")),
    }
}

#[tokio::test]
async fn urls_from_discovery() {
    let tp = TestProvider::start().await;
    let ep = discover(&tp).await;
    let flow = CodeFlow::new(&provider_config(&tp)).unwrap();

    let start = flow.start(&ep, "https://app.example.test/oauth2/callback", &[]);
    let url = url::Url::parse(&start.url).unwrap();
    assert_eq!(url.as_str().split('?').next().unwrap(), format!("{}/authorize", tp.url()));
    let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert!(q.contains(&("client_id".into(), TEST_CLIENT_ID.into())));
    assert!(q.contains(&("state".into(), start.state.clone())));
    assert!(q.contains(&("code_challenge_method".into(), "S256".into())));

    let logout = end_session_url(&ep, Some("hint"), "https://app.example.test/", TEST_CLIENT_ID).unwrap();
    assert!(logout.starts_with(&format!("{}/logout?", tp.url())));
}

#[tokio::test]
async fn unsupported_grant_is_a_provider_error() {
    let tp = TestProvider::start().await;
    let ep = discover(&tp).await;
    let flow = CodeFlow::new(&provider_config(&tp)).unwrap();
    // The testkit provider checks client authentication ("test-secret" is not its secret): a code exchange must
    // come back as its OAuth error.
    let err = flow.exchange(&ep, "some-code", "https://app.example.test/oauth2/callback", "v").await.unwrap_err();
    assert!(matches!(&err, CodeFlowError::Provider { error, .. } if error == "invalid_client"), "{err:?}");
    assert_eq!(tp.token_request_count(), 1);
    let page = callback_error_page("invalid_client", None, "/oauth2/login?rd=%2F");
    assert!(page.contains("Try again"));
}

#[tokio::test]
async fn provider_down_and_hang_up() {
    let tp = TestProvider::start().await;
    let ep = discover(&tp).await;
    let flow = CodeFlow::new(&provider_config(&tp)).unwrap();

    tp.set_down(true);
    let err = flow.refresh(&ep, "rt").await.unwrap_err();
    assert_eq!(err, CodeFlowError::Provider { error: "temporarily_unavailable".into(), description: None });
    assert!(err.user_message().contains("temporarily unavailable"));

    tp.set_down(false);
    tp.set_hang_up(true);
    let err = flow.refresh(&ep, "rt").await.unwrap_err();
    assert!(matches!(err, CodeFlowError::Unreachable(_)), "{err:?}");
}
