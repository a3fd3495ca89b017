//! Good files load with the right values and defaults; every bad file is answered with the exact line and key.

use super::*;
use std::collections::HashMap;
use std::io::Write as _;

const TID: &str = "11111111-2222-3333-4444-555555555555";
/// base64 (standard, padded) of bytes 0..32.
const KEY_STD: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

// === fixtures ===

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name| map.get(name).cloned()
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn ok(text: &str) -> Config {
    ok_env(text, &no_env)
}

fn ok_env(text: &str, env: Lookup<'_>) -> Config {
    match load_str_with_env(text, Path::new("test.toml"), env) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got: {e}\n{text}"),
    }
}

/// The error's (line, key, message).
fn bad(text: &str) -> (usize, String, String) {
    bad_env(text, &no_env)
}

fn bad_env(text: &str, env: Lookup<'_>) -> (usize, String, String) {
    match load_str_with_env(text, Path::new("test.toml"), env) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(ConfigError::Invalid { file, line, key, message }) => {
            assert_eq!(file, "test.toml");
            (line, key, message)
        }
        Err(e) => panic!("expected Invalid, got {e}"),
    }
}

/// 1-based line of the first line containing `needle`: keeps expected line numbers honest when a fixture changes.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1).unwrap_or_else(|| panic!("`{needle}` not in fixture"))
}

/// Asserts line (found by `needle`), key, and that the message contains `says`.
#[track_caller]
fn assert_bad(text: &str, needle: &str, key: &str, says: &str) {
    let (line, k, message) = bad(text);
    assert_eq!((line, k.as_str()), (line_of(text, needle), key), "message: {message}");
    assert!(message.contains(says), "message `{message}` lacks `{says}`");
}

const PROVIDER: &str = r#"[provider]
issuer = "https://idp.example.com"
client_id = "cid"
audiences = ["api://app"]
"#;

const HOST: &str = r#"
[[hosts]]
name = "api.example.com"
upstream = "http://127.0.0.1:8000"
[[hosts.routes]]
path = "/"
"#;

fn full(middle: &str) -> String {
    format!("{PROVIDER}{middle}{HOST}")
}

// === good files ===

#[test]
fn minimal_file_gets_documented_defaults() {
    let c = ok(&full(""));
    assert_eq!(c.source, PathBuf::from("test.toml"));
    let s = &c.server;
    assert_eq!(s.listen, "0.0.0.0:80".parse().unwrap());
    assert_eq!(s.admin_listen, "127.0.0.1:9901".parse().unwrap());
    assert_eq!(s.threads, std::thread::available_parallelism().map_or(1, |n| n.get()));
    assert!(s.trusted_proxies.is_empty());
    assert_eq!(s.health_path, "/healthz");
    assert_eq!(s.grace_period, Duration::from_secs(10));
    assert_eq!(s.shutdown_timeout, Duration::from_secs(5));
    assert_eq!(s.upstream_connect_timeout, Duration::from_secs(1));
    assert_eq!(s.upstream_read_timeout, Duration::from_secs(60));
    assert_eq!(s.upstream_idle_timeout, Duration::from_secs(4));
    assert_eq!(s.downstream_idle_timeout, None, "idle clients are kept until they (the ALB) close");
    assert_eq!(s.log_format, LogFormat::Json);

    let p = &c.provider;
    assert_eq!(p.issuer, "https://idp.example.com");
    assert_eq!(p.discovery_url, "https://idp.example.com/.well-known/openid-configuration");
    assert!(p.extra_issuers.is_empty());
    assert_eq!(p.client_id, "cid");
    assert_eq!(p.client_secret, None);
    assert_eq!(p.client_auth, ClientAuth::ClientSecretBasic);
    assert_eq!(p.audiences, vec!["api://app"]);
    assert_eq!(p.required_tenant, None);
    assert_eq!(p.clock_skew, Duration::from_secs(60));
    assert_eq!(p.algorithms, DEFAULT_ALGORITHMS.to_vec());
    assert!(!p.algorithms.iter().any(|a| format!("{a:?}").starts_with("HS")));
    assert_eq!(p.scopes, vec!["openid", "profile", "email", "offline_access"]);
    assert_eq!(p.jwks_refresh, Duration::from_secs(3600));
    assert_eq!(p.jwks_refetch_cooldown, Duration::from_secs(30));
    assert!(!p.entra);

    let i = &c.identity;
    assert_eq!(i.header_prefix, "X-Auth-");
    assert_eq!(i.assertion_ttl, Duration::from_secs(300));
    assert_eq!(i.assertion_issuer, "oidc-sidecar");
    assert!(i.signing_key.is_none());

    let ss = &c.session;
    assert_eq!(ss.store, SessionStore::Cookie);
    assert_eq!(ss.cookie_name, "__Host-oidc_session");
    assert_eq!(ss.cookie_domain, None);
    assert!(ss.keys.is_empty(), "no keys configured: the runtime makes an ephemeral one");
    assert_eq!(ss.inactivity_timeout, Duration::from_secs(3600));
    assert_eq!(ss.max_lifetime, Duration::from_secs(8 * 3600));
    assert_eq!(ss.refresh_margin, Duration::from_secs(60));
    assert_eq!(ss.max_cookie_bytes, 12288);
    assert!(ss.redis_url.is_none());
    assert!(ss.redis_client_cache, "Redis reads are cached (and invalidated by Redis) unless turned off");
    assert_eq!(ss.paths.login, "/oauth2/login");
    assert_eq!(ss.paths.callback, "/oauth2/callback");
    assert_eq!(ss.paths.logout, "/oauth2/logout");
    assert_eq!(ss.paths.userinfo, "/oauth2/userinfo");
    assert_eq!(ss.paths.frontchannel_logout, "/oauth2/frontchannel-logout");

    let h = &c.hosts[0];
    assert_eq!(h.name, "api.example.com");
    assert_eq!(h.backend, Backend::Upstream { addr: "127.0.0.1:8000".parse().unwrap(), tls: false, sni: String::new() });
    assert_eq!(h.login, LoginMode::Redirect);
    assert!(h.forward_authorization);
    assert!(!h.forward_access_token);
    assert_eq!(h.claim_headers, ClaimHeaders::None);
    assert!(h.allowed_origins.is_empty());
    assert!(h.security_headers.is_none());
    assert!(h.external_url.is_none());
    assert_eq!(h.line, 6);
    assert_eq!(h.routes.len(), 1);
    assert_eq!(h.routes[0].path, PathMatch::Prefix("/".into()));
    assert_eq!(h.routes[0].methods, None);
    assert_eq!(h.routes[0].access, Access::Authenticated, "no access and no requirements = authenticated");
    assert_eq!(h.routes[0].line, 9);
}

#[test]
fn entra_shorthand_fills_issuers_discovery_and_tenant() {
    let text = r#"[provider]
tenant_id = "${ENTRA_TENANT_ID}"
client_id = "cid"
audiences = ["api://app"]
extra_issuers = ["https://other.example.com"]
[[hosts]]
name = "*"
upstream = "http://127.0.0.1:8000"
[[hosts.routes]]
path = "/"
"#;
    let c = ok_env(text, &env_of(&[("ENTRA_TENANT_ID", TID)]));
    let p = &c.provider;
    assert_eq!(p.issuer, format!("https://login.microsoftonline.com/{TID}/v2.0"));
    assert_eq!(p.discovery_url, format!("https://login.microsoftonline.com/{TID}/v2.0/.well-known/openid-configuration"));
    assert_eq!(p.extra_issuers, vec![format!("https://sts.windows.net/{TID}/"), "https://other.example.com".into()]);
    assert_eq!(p.required_tenant.as_deref(), Some(TID));
    assert!(p.entra);
}

#[test]
fn every_field_of_a_full_host_is_read() {
    let text = full(
        r#"client_auth = "client_secret_post"
client_secret = "s3cret"
algorithms = ["rs256", "ES256", "eddsa", "RS256"]
clock_skew = "2m"
required_tenant = "t1"
discovery_url = "https://idp.example.com/custom/.well-known/openid-configuration"

[server]
listen = "localhost:8080"
threads = 3
trusted_proxies = ["10.0.0.0/16", "192.168.1.7", "10.1.2.3/8", "fd00::/8"]
log_format = "text"
grace_period = "0s"
downstream_idle_timeout = "90s"

[identity]
header_prefix = "X-Ident-"

[session]
cookie_name = "__Secure-s"
cookie_domain = ".Example.com"
max_cookie_bytes = 4096

[[hosts]]
name = "App.Example.com"
upstream = "http://localhost:9000/"
login = "deny"
forward_authorization = false
forward_access_token = true
claim_headers = "mod_auth_openidc"
claim_headers_access_token = true
allowed_origins = ["https://spa.example.com/", "http://localhost:3000"]
external_url = "https://app.example.com"
[hosts.security_headers]
hsts = "max-age=60"
content_security_policy = "frame-ancestors 'none'"
[[hosts.routes]]
exact = "/health"
access = "public"
[[hosts.routes]]
path = "/admin/"
methods = ["get", "POST", "GET"]
roles = ["Admin"]
roles_all = ["A", "B"]
groups = ["g1"]
[[hosts.routes]]
path = "/api"
access = "authenticated"
scopes = ["user.read"]
scopes_any = ["a", "b"]
claims = [{ claim = "department", equals = "Sales" }, { claim = "amr", contains = "mfa" }]
"#,
    );
    let c = ok(&text);
    let p = &c.provider;
    assert_eq!(p.client_auth, ClientAuth::ClientSecretPost);
    assert_eq!(p.client_secret, Some(Secret("s3cret".into())));
    assert_eq!(p.algorithms, vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]);
    assert_eq!(p.clock_skew, Duration::from_secs(120));
    assert_eq!(p.required_tenant.as_deref(), Some("t1"));
    assert_eq!(p.discovery_url, "https://idp.example.com/custom/.well-known/openid-configuration");
    let s = &c.server;
    assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(s.threads, 3);
    let nets: Vec<String> = s.trusted_proxies.iter().map(ToString::to_string).collect();
    assert_eq!(nets, ["10.0.0.0/16", "192.168.1.7/32", "10.0.0.0/8", "fd00::/8"]);
    assert_eq!(s.log_format, LogFormat::Text);
    assert_eq!(s.grace_period, Duration::ZERO);
    assert_eq!(s.downstream_idle_timeout, Some(Duration::from_secs(90)));
    assert_eq!(c.identity.header_prefix, "X-Ident-");
    assert_eq!(c.session.cookie_domain.as_deref(), Some("example.com"));
    assert_eq!(c.session.max_cookie_bytes, 4096);

    let h = &c.hosts[0];
    assert_eq!(h.name, "app.example.com");
    assert_eq!(h.backend, Backend::Upstream { addr: "127.0.0.1:9000".parse().unwrap(), tls: false, sni: String::new() });
    assert_eq!(h.login, LoginMode::Deny);
    assert!(!h.forward_authorization);
    assert!(h.forward_access_token);
    assert_eq!(h.claim_headers, ClaimHeaders::ModAuthOpenidc { access_token: true });
    assert_eq!(h.allowed_origins, vec!["https://spa.example.com", "http://localhost:3000"]);
    assert_eq!(h.external_url.as_ref().map(url::Url::as_str), Some("https://app.example.com/"));
    assert_eq!(
        h.security_headers,
        Some(SecurityHeaders {
            hsts: Some("max-age=60".into()),
            content_type_options: true,
            referrer_policy: None,
            content_security_policy: Some("frame-ancestors 'none'".into()),
        })
    );
    let r = &h.routes;
    assert_eq!(r[0].path, PathMatch::Exact("/health".into()));
    assert_eq!(r[0].access, Access::Public);
    assert_eq!(r[0].line, line_of(&text, "exact = \"/health\"") - 1);
    assert_eq!(r[1].methods, Some(vec![http::Method::GET, http::Method::POST]));
    assert_eq!(
        r[1].access,
        Access::Require(Requirements {
            roles_any: vec!["Admin".into()],
            roles_all: vec!["A".into(), "B".into()],
            groups_any: vec!["g1".into()],
            ..Requirements::default()
        })
    );
    assert_eq!(
        r[2].access,
        Access::Require(Requirements {
            scopes_all: vec!["user.read".into()],
            scopes_any: vec!["a".into(), "b".into()],
            claims: vec![
                ClaimRule { claim: "department".into(), test: ClaimTest::Equals("Sales".into()) },
                ClaimRule { claim: "amr".into(), test: ClaimTest::Contains("mfa".into()) },
            ],
            ..Requirements::default()
        })
    );
    // The second host: the one from `full`.
    assert_eq!(c.hosts[1].name, "api.example.com");
}

#[test]
fn upstream_forms() {
    for (written, addr) in [
        ("http://127.0.0.1:8000", "127.0.0.1:8000"),
        ("http://localhost:8000", "127.0.0.1:8000"),
        ("HTTP://LOCALHOST:8000/", "127.0.0.1:8000"),
        ("http://10.1.2.3", "10.1.2.3:80"),
        ("http://[::1]:8000", "[::1]:8000"),
        ("http://[::1]", "[::1]:80"),
    ] {
        assert_eq!(parse_upstream(written), Ok(addr.parse().unwrap()), "{written}");
    }
}

// === every example file loads ===

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

fn example_env(dir: &Path) -> impl Fn(&str) -> Option<String> {
    let secret = dir.join("client_secret");
    std::fs::write(&secret, "client-secret-from-file\n").unwrap();
    let redis = dir.join("redis_url");
    std::fs::write(&redis, "rediss://:auth-token@master.example.cache.amazonaws.com:6379\n").unwrap();
    let pairs: Vec<(String, String)> = vec![
        ("ENTRA_TENANT_ID".into(), TID.into()),
        ("ENTRA_CLIENT_ID".into(), "00000000-aaaa-bbbb-cccc-000000000001".into()),
        ("ENTRA_CLIENT_SECRET".into(), "secret".into()),
        ("ENTRA_API_CLIENT_ID".into(), "00000000-aaaa-bbbb-cccc-000000000002".into()),
        ("SESSION_KEY".into(), KEY_STD.into()),
        ("CLIENT_SECRET_FILE".into(), secret.display().to_string()),
        ("REDIS_URL_FILE".into(), redis.display().to_string()),
        ("REDIS_URL".into(), "rediss://:auth-token@master.example.cache.amazonaws.com:6379".into()),
    ];
    let map: HashMap<String, String> = pairs.into_iter().collect();
    move |k| map.get(k).cloned()
}

#[test]
fn every_example_config_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let env = example_env(tmp.path());
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        if let Err(e) = load_with_env(&path, &env) {
            panic!("{e}");
        }
        seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    seen.sort();
    for name in ["api.toml", "demo.toml", "minimal.toml", "spa.toml"] {
        assert!(seen.iter().any(|s| s == name), "{name} missing from config/: {seen:?}");
    }
}

#[test]
fn example_api_is_entra_and_bearer_only() {
    let tmp = tempfile::tempdir().unwrap();
    let c = load_with_env(&examples_dir().join("api.toml"), &example_env(tmp.path())).unwrap();
    assert!(c.provider.entra);
    assert_eq!(c.provider.audiences, vec!["api://myapp-api", "00000000-aaaa-bbbb-cccc-000000000002"]);
    assert_eq!(c.provider.algorithms, vec![Algorithm::RS256]);
    let h = &c.hosts[0];
    assert_eq!(h.login, LoginMode::Deny);
    assert_eq!(h.routes.first().map(|r| &r.access), Some(&Access::Public));
    assert_eq!(c.session.key_bytes(), vec![core::array::from_fn::<u8, 32, _>(|i| i as u8)]);
}

#[test]
fn example_spa_serves_static_files_and_reads_secret_files() {
    let tmp = tempfile::tempdir().unwrap();
    let c = load_with_env(&examples_dir().join("spa.toml"), &example_env(tmp.path())).unwrap();
    let app = &c.hosts[0];
    assert_eq!(app.backend, Backend::Static { root: PathBuf::from("/srv/spa") });
    assert_eq!(app.login, LoginMode::Redirect);
    assert_eq!(c.provider.client_secret, Some(Secret("client-secret-from-file".into())));
    assert_eq!(c.session.store, SessionStore::Redis);
    assert_eq!(
        c.session.redis_url,
        Some(Secret("rediss://:auth-token@master.example.cache.amazonaws.com:6379".into()))
    );
    assert_eq!(c.session.cookie_domain.as_deref(), Some("example.com"));
}

#[test]
fn example_demo_is_local() {
    let c = load_with_env(&examples_dir().join("demo.toml"), &no_env).unwrap();
    assert_eq!(c.provider.issuer, "http://127.0.0.1:9000");
    assert_eq!(c.provider.discovery_url, "http://127.0.0.1:9000/.well-known/openid-configuration");
    assert_eq!(c.server.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.hosts[0].backend, Backend::Upstream { addr: "127.0.0.1:8000".parse().unwrap(), tls: false, sni: String::new() });
    // Overridable from the environment.
    let c = load_with_env(&examples_dir().join("demo.toml"), &env_of(&[("DEMO_ISSUER", "http://localhost:9100/t/v2.0")])).unwrap();
    assert_eq!(c.provider.issuer, "http://localhost:9100/t/v2.0");
}

// === ${VAR} ===

#[test]
fn variables_expand_in_every_string_position() {
    let text = r#"[provider]
issuer = "https://${IDP_HOST}/${TENANT}/v2.0"
client_id = "${CID}"
audiences = ["api://${APP}", "${CID}"]
[[hosts]]
name = "${HOST}"
upstream = "http://127.0.0.1:${PORT}"
[[hosts.routes]]
path = "/"
claims = [{ claim = "dept", equals = "${DEPT}" }]
"#;
    let env = env_of(&[
        ("IDP_HOST", "idp.example.com"),
        ("TENANT", "t1"),
        ("CID", "client-1"),
        ("APP", "myapp"),
        ("HOST", "api.example.com"),
        ("PORT", "8001"),
        ("DEPT", "Sales"),
    ]);
    let c = ok_env(text, &env);
    assert_eq!(c.provider.issuer, "https://idp.example.com/t1/v2.0");
    assert_eq!(c.provider.audiences, vec!["api://myapp", "client-1"]);
    assert_eq!(c.hosts[0].name, "api.example.com");
    assert_eq!(c.hosts[0].backend, Backend::Upstream { addr: "127.0.0.1:8001".parse().unwrap(), tls: false, sni: String::new() });
    let Access::Require(r) = &c.hosts[0].routes[0].access else { panic!("expected requirements") };
    assert_eq!(r.claims[0].test, ClaimTest::Equals("Sales".into()));
}

#[test]
fn missing_variable_names_it_with_line_and_key() {
    let text = full("client_secret = \"${ENTRA_CLIENT_SECRET}\"\n");
    let (line, key, message) = bad(&text);
    assert_eq!(line, line_of(&text, "ENTRA_CLIENT_SECRET"));
    assert_eq!(key, "provider.client_secret");
    assert!(message.contains("ENTRA_CLIENT_SECRET is not set"), "{message}");

    let text = full("audiences = [\"a\",\n  \"${API_ID}\"]\n").replace("audiences = [\"api://app\"]\n", "");
    let (line, key, message) = bad(&text);
    assert_eq!((line, key.as_str()), (line_of(&text, "API_ID"), "provider.audiences[1]"));
    assert!(message.contains("API_ID"), "{message}");
}

#[test]
fn env_values_cannot_inject_toml() {
    let text = full("client_secret = \"${SECRET}\"\n");
    let hostile = "x\"\nclient_auth = \"private_key_jwt\"\n[server]\nlisten = \"0.0.0.0:1\"\n#";
    let c = ok_env(&text, &env_of(&[("SECRET", hostile)]));
    assert_eq!(c.provider.client_secret, Some(Secret(hostile.into())), "the value is one string, nothing more");
    assert_eq!(c.provider.client_auth, ClientAuth::ClientSecretBasic);
    assert_eq!(c.server.listen, "0.0.0.0:80".parse().unwrap());
}

proptest::proptest! {
    /// Whatever an environment value holds (quotes, newlines, `[tables]`, `${...}`), it becomes exactly one string.
    #[test]
    fn any_env_value_is_one_string(v in "\\PC*[\"\n\\[\\]=#]?\\PC*") {
        proptest::prop_assume!(!v.trim().is_empty());
        let text = full("client_secret = \"${SECRET}\"\n");
        let c = ok_env(&text, &env_of(&[("SECRET", v.as_str())]));
        proptest::prop_assert_eq!(c.provider.client_secret, Some(Secret(v)));
        proptest::prop_assert_eq!(c.server.listen, "0.0.0.0:80".parse::<SocketAddr>().unwrap());
    }
}

#[test]
fn escaped_dollar_is_literal() {
    let text = full("client_secret = \"pa$${ss}word$\"\n");
    assert_eq!(ok(&text).provider.client_secret, Some(Secret("pa${ss}word$".into())));
}

#[test]
fn keys_are_never_expanded() {
    // `${X}` in a key is just an unknown key, not a variable.
    let text = full("\"${X}\" = \"v\"\n");
    let (_, key, message) = bad(&text);
    assert_eq!(key, "provider.${X}");
    assert!(message.contains("unknown key"), "{message}");
}

// === _file twins ===

#[test]
fn secret_files_are_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, content: &str| {
        let p = dir.path().join(name);
        std::fs::File::create(&p).unwrap().write_all(content.as_bytes()).unwrap();
        p
    };
    write("secret", "s3cret\n");
    write("key.pem", "-----BEGIN PRIVATE KEY-----\nMIG...\n-----END PRIVATE KEY-----\n");
    write("keys", &format!("# newest first\n{KEY_STD}\n\n{}\n", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"));
    write("redis", "redis://127.0.0.1:6379/0\r\n");
    let text = full(
        r#"client_secret_file = "secret"
[identity]
signing_key_file = "key.pem"
[session]
store = "redis"
keys_file = "keys"
redis_url_file = "redis"
redis_client_cache = false
"#,
    );
    // Relative `_file` paths are taken from the config file's directory.
    let c = load_str_with_env(&text, &dir.path().join("sidecar.toml"), &no_env).unwrap();
    assert_eq!(c.provider.client_secret, Some(Secret("s3cret".into())));
    assert_eq!(
        c.identity.signing_key,
        Some(Secret("-----BEGIN PRIVATE KEY-----\nMIG...\n-----END PRIVATE KEY-----".into()))
    );
    assert_eq!(c.session.keys, vec![Secret(KEY_STD.into()), Secret(KEY_STD.into())]);
    assert_eq!(c.session.redis_url, Some(Secret("redis://127.0.0.1:6379/0".into())));
    assert!(!c.session.redis_client_cache);
}

#[test]
fn private_key_jwt_reads_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("cert.key");
    std::fs::write(&pem, "-----BEGIN RSA PRIVATE KEY-----\nMII\n-----END RSA PRIVATE KEY-----\n").unwrap();
    let text = full(&format!(
        "client_auth = \"private_key_jwt\"\nprivate_key_file = \"{}\"\ncertificate_thumbprint = \"5D:0E:7A:0C:1B:2F:3A:4B:5C:6D:7E:8F:90:01:12:23:34:45:56:67\"\n",
        pem.display()
    ));
    let c = ok(&text);
    let ClientAuth::PrivateKeyJwt { key_pem, x5t, kid } = &c.provider.client_auth else { panic!("expected private_key_jwt") };
    assert!(key_pem.expose().starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(x5t.is_some());
    assert_eq!(kid, &None);

    let with_kid = ok(&text.replace("certificate_thumbprint", "private_key_id = \"sidecar-2026\"\ncertificate_thumbprint"));
    let ClientAuth::PrivateKeyJwt { kid, .. } = &with_kid.provider.client_auth else { panic!("expected private_key_jwt") };
    assert_eq!(kid.as_deref(), Some("sidecar-2026"));
    let (_, key, msg) = bad(&full("client_auth = \"client_secret_post\"\nclient_secret = \"s\"\nprivate_key_id = \"k\"\n"));
    assert_eq!(key, "provider.private_key_id");
    assert!(msg.contains("only used with"), "{msg}");
}

#[test]
fn secret_and_its_file_together_are_refused() {
    for (name, section) in [
        ("client_secret", "provider"),
        ("private_key", "provider"),
        ("signing_key", "identity"),
        ("redis_url", "session"),
    ] {
        let body = format!("{name} = \"x\"\n{name}_file = \"/run/secrets/x\"\n");
        let text = if section == "provider" { full(&body) } else { full(&format!("[{section}]\n{body}")) };
        let (line, key, message) = bad(&text);
        assert_eq!((line, key.as_str()), (line_of(&text, &format!("{name}_file")), format!("{section}.{name}_file").as_str()));
        assert!(message.contains(&format!("only one of {name} and {name}_file")), "{message}");
    }
    let text = full(&format!("[session]\nkeys = [\"{KEY_STD}\"]\nkeys_file = \"/k\"\n"));
    assert_bad(&text, "keys_file", "session.keys_file", "only one of keys and keys_file");
}

#[test]
fn unreadable_secret_file_names_the_key() {
    let text = full("client_secret_file = \"/nonexistent/oidc-sidecar-test/secret\"\n");
    assert_bad(&text, "client_secret_file", "provider.client_secret_file", "cannot read /nonexistent/oidc-sidecar-test/secret");
}

// === session keys ===

#[test]
fn session_keys_accept_every_base64_spelling() {
    let bytes: [u8; 32] = core::array::from_fn(|i| (i * 7 + 250) as u8);
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        let written = engine.encode(bytes);
        assert_eq!(decode_session_key(&written), Some(bytes), "{written}");
        let c = ok(&full(&format!("[session]\nkeys = [\"{written}\"]\n")));
        assert_eq!(c.session.keys, vec![Secret(STANDARD.encode(bytes))]);
        assert_eq!(c.session.key_bytes(), vec![bytes]);
    }
    assert_eq!(decode_session_key("AAAA"), None);
}

#[test]
fn session_key_of_wrong_length_is_refused_without_echo() {
    let short = "c2hvcnQta2V5"; // "short-key"
    let text = full(&format!("[session]\nkeys = [\"{KEY_STD}\",\n  \"{short}\"]\n"));
    let (line, key, message) = bad(&text);
    assert_eq!((line, key.as_str()), (line_of(&text, short), "session.keys[1]"));
    assert!(message.contains("32 bytes"), "{message}");
    assert!(!message.contains(short), "a key must never be echoed: {message}");
}

#[test]
fn empty_keys_list_means_ephemeral() {
    assert!(ok(&full("[session]\nkeys = []\n")).session.keys.is_empty());
}

// === bad files: syntax, unknown keys, types ===

#[test]
fn error_renders_as_file_line_key_message() {
    let text = full("clientid = \"x\"\n");
    let err = load_str_with_env(&text, Path::new("/etc/oidc-sidecar/config.toml"), &no_env).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("/etc/oidc-sidecar/config.toml:{}: provider.clientid: unknown key; did you mean `client_id`?", line_of(&text, "clientid"))
    );
}

#[test]
fn unknown_keys_are_refused_everywhere_with_a_suggestion() {
    assert_bad(&full("[sever]\nlisten = \"0.0.0.0:80\"\n"), "[sever]", "sever", "did you mean `server`?");
    assert_bad(&full("[server]\nlisen = \"0.0.0.0:80\"\n"), "lisen", "server.lisen", "did you mean `listen`?");
    assert_bad(&full("[session.paths]\nlogon = \"/x\"\n"), "logon", "session.paths.logon", "did you mean `login`?");
    let text = format!("{PROVIDER}{HOST}[[hosts.routes]]\npath = \"/a\"\nacess = \"public\"\n");
    assert_bad(&text, "acess", "hosts[0].routes[1].acess", "did you mean `access`?");
    let text = format!("{PROVIDER}{HOST}[[hosts]]\nname = \"b\"\nupstreem = \"http://127.0.0.1:1\"\n");
    assert_bad(&text, "upstreem", "hosts[1].upstreem", "did you mean `upstream`?");
    let text = format!("{PROVIDER}{HOST}claims = [{{ claim = \"a\", equal = \"b\" }}]\n");
    assert_bad(&text, "equal =", "hosts[0].routes[0].claims[0].equal", "did you mean `equals`?");
    let text = full("[hosts.security_headers]\n");
    let (line, _, message) = bad(&text);
    assert_eq!(line, line_of(&text, "[[hosts]]"), "{message}");
    let text = full("whatever_this_is = 1\n");
    let (_, key, message) = bad(&text);
    assert_eq!(key, "provider.whatever_this_is");
    assert!(message.starts_with("unknown key; expected one of "), "{message}");
}

#[test]
fn wrong_types_name_the_key() {
    assert_bad(&full("[server]\nthreads = \"two\"\n"), "threads", "server.threads", "invalid type");
    assert_bad(&full("[server]\nthreads = -1\n"), "threads", "server.threads", "expected a whole number");
    assert_bad(&full("clock_skew = 60\n"), "clock_skew", "provider.clock_skew", "a duration is a string such as \"60s\"");
    assert_bad(&full("audiences2 = 1\n"), "audiences2", "provider.audiences2", "unknown key");
    let text = PROVIDER.replace("audiences = [\"api://app\"]", "audiences = \"api://app\"") + HOST;
    assert_bad(&text, "audiences", "provider.audiences", "invalid type: string");
    let text = format!("{PROVIDER}{HOST}access = \"publik\"\n");
    assert_bad(&text, "publik", "hosts[0].routes[0].access", "unknown variant `publik`");
    assert_bad(&full("[session]\nstore = \"memcached\"\n"), "memcached", "session.store", "unknown variant");
    let text = format!("{PROVIDER}{HOST}methods = [\"GET\", 5]\n");
    assert_bad(&text, "methods", "hosts[0].routes[0].methods[1]", "invalid type: integer");
}

#[test]
fn missing_required_keys_point_at_their_table() {
    let text = format!("{PROVIDER}{HOST}[[hosts]]\nupstream = \"http://127.0.0.1:1\"\n");
    let (line, key, message) = bad(&text);
    assert_eq!((line, key.as_str()), (text.lines().count() - 1, "hosts[1].name"));
    assert_eq!(message, "missing (required)");
    let text = format!("{PROVIDER}{HOST}claims = [{{ equals = \"b\" }}]\n");
    assert_bad(&text, "claims", "hosts[0].routes[0].claims[0].claim", "missing");
    let (line, key, _) = bad("[server]\nthreads = 1\n");
    assert_eq!((line, key.as_str()), (1, "provider"));
}

#[test]
fn syntax_errors_give_the_line() {
    let text = full("client_secret = \"unterminated\n");
    let (line, _, message) = bad(&text);
    assert_eq!(line, line_of(&text, "unterminated"));
    assert!(message.starts_with("TOML syntax"), "{message}");
    let text = full("[server]\nlisten = 0.0.0.0:80\n");
    let (line, key, _) = bad(&text);
    assert_eq!((line, key.as_str()), (line_of(&text, "listen"), "server.listen"));
    let text = full("client_id = \"again\"\n");
    let (line, key, message) = bad(&text);
    assert_eq!((line, key.as_str()), (line_of(&text, "again"), "provider.client_id"), "{message}");
    assert!(message.contains("duplicate key"), "{message}");
    let text = format!("{PROVIDER}{HOST}methods = [GET]\n");
    let (line, key, _) = bad(&text);
    assert_eq!((line, key.as_str()), (line_of(&text, "[GET]"), "hosts[0].routes[0].methods"));
}

// === bad files: values ===

#[test]
fn bad_cidr_duration_address() {
    let text = full("[server]\ntrusted_proxies = [\"10.0.0.0/16\", \"10.0.0.0/33\"]\n");
    assert_bad(&text, "trusted_proxies", "server.trusted_proxies[1]", "`10.0.0.0/33` is not a CIDR");
    assert_bad(&full("clock_skew = \"60 sec onds\"\n"), "clock_skew", "provider.clock_skew", "is not a duration");
    assert_bad(&full("clock_skew = \"1h\"\n"), "clock_skew", "provider.clock_skew", "above 10 minutes");
    assert_bad(&full("jwks_refresh = \"0s\"\n"), "jwks_refresh", "provider.jwks_refresh", "longer than zero");
    assert_bad(
        &full("[server]\ndownstream_idle_timeout = \"0s\"\n"),
        "downstream_idle_timeout",
        "server.downstream_idle_timeout",
        "longer than zero",
    );
    assert_bad(
        &full("[server]\ndownstream_idle_timeout = 75\n"),
        "downstream_idle_timeout",
        "server.downstream_idle_timeout",
        "a duration is a string",
    );
    assert_bad(&full("[server]\nlisten = \"0.0.0.0\"\n"), "listen", "server.listen", "not an address");
    assert_bad(&full("[server]\nadmin_listen = \"0.0.0.0:80\"\n"), "admin_listen", "server.admin_listen", "also server.listen");
    assert_bad(&full("[server]\nthreads = 0\n"), "threads", "server.threads", "at least 1");
    assert_bad(&full("[server]\nhealth_path = \"healthz\"\n"), "health_path", "server.health_path", "must start with `/`");
}

#[test]
fn refused_algorithms() {
    let text = full("algorithms = [\"RS256\", \"HS256\"]\n");
    assert_bad(&text, "algorithms", "provider.algorithms[1]", "HMAC");
    assert_bad(&full("algorithms = [\"none\"]\n"), "algorithms", "provider.algorithms[0]", "unsigned");
    assert_bad(&full("algorithms = [\"hs512\"]\n"), "algorithms", "provider.algorithms[0]", "refused");
    assert_bad(&full("algorithms = [\"RS1024\"]\n"), "algorithms", "provider.algorithms[0]", "not an algorithm");
    assert_bad(&full("algorithms = []\n"), "algorithms", "provider.algorithms", "is empty");
}

#[test]
fn bad_upstreams() {
    let cases = [
        ("https://127.0.0.1:8000", "plain HTTP"),
        ("http://app.internal:8000", "IP address or localhost"),
        ("http://127.0.0.1:8000/api", "no path"),
        ("127.0.0.1:8000", "not an upstream URL"),
        ("http://127.0.0.1:99999", "not a port"),
        ("http://user:pw@127.0.0.1:1", "credentials"),
    ];
    for (written, says) in cases {
        let text = format!("{PROVIDER}{}", HOST.replace("http://127.0.0.1:8000", written));
        assert_bad(&text, "upstream", "hosts[0].upstream", says);
    }
    let text = format!("{PROVIDER}{}", HOST.replace("upstream = \"http://127.0.0.1:8000\"", "static_root = \"/srv\"\nupstream = \"http://127.0.0.1:1\""));
    assert_bad(&text, "static_root", "hosts[0].static_root", "only one of upstream and static_root");
    let text = format!("{PROVIDER}{}", HOST.replace("upstream = \"http://127.0.0.1:8000\"\n", ""));
    assert_bad(&text, "[[hosts]]", "hosts[0]", "needs upstream");
}

#[test]
fn provider_identity_rules() {
    let both = PROVIDER.replace("[provider]\n", "[provider]\ntenant_id = \"t\"\n") + HOST;
    assert_bad(&both, "issuer", "provider.issuer", "either tenant_id");
    let neither = PROVIDER.replace("issuer = \"https://idp.example.com\"\n", "") + HOST;
    assert_bad(&neither, "[provider]", "provider", "set issuer");
    let common = PROVIDER.replace("issuer = \"https://idp.example.com\"", "tenant_id = \"common\"") + HOST;
    assert_bad(&common, "common", "provider.tenant_id", "multi-tenant");
    let http = PROVIDER.replace("https://idp.example.com", "http://idp.example.com") + HOST;
    assert_bad(&http, "issuer", "provider.issuer", "loopback");
    let local = PROVIDER.replace("https://idp.example.com", "http://[::1]:9000") + HOST;
    assert_eq!(ok(&local).provider.issuer, "http://[::1]:9000");
    let tenant_mismatch = PROVIDER.replace("issuer = \"https://idp.example.com\"", "tenant_id = \"t1\"\nrequired_tenant = \"t2\"") + HOST;
    assert_bad(&tenant_mismatch, "required_tenant", "provider.required_tenant", "differs from tenant_id");
    let no_client = PROVIDER.replace("client_id = \"cid\"\n", "") + HOST;
    assert_bad(&no_client, "[provider]", "provider.client_id", "missing");
    let no_aud = PROVIDER.replace("audiences = [\"api://app\"]\n", "") + HOST;
    assert_bad(&no_aud, "[provider]", "provider.audiences", "at least one");
    assert_bad(&format!("{}{HOST}", PROVIDER.replace("[\"api://app\"]", "[]")), "audiences", "provider.audiences", "at least one");
    assert_bad(&full("scopes = [\"profile\"]\n"), "scopes", "provider.scopes", "openid");
    assert_bad(&full("client_auth = \"private_key_jwt\"\n"), "client_auth", "provider.client_auth", "private_key_file");
    assert_bad(&full("private_key = \"-----BEGIN PRIVATE KEY-----\"\n"), "private_key", "provider.private_key", "only used with");
    let thumb = "client_auth = \"private_key_jwt\"\nprivate_key = \"-----BEGIN PRIVATE KEY-----\\nx\\n-----END PRIVATE KEY-----\"\ncertificate_thumbprint = \"abc\"\n";
    assert_bad(&full(thumb), "certificate_thumbprint", "provider.certificate_thumbprint", "bytes");
    let not_pem = "client_auth = \"private_key_jwt\"\nprivate_key = \"${PK}\"\n";
    let (_, key, message) = bad_env(&full(not_pem), &env_of(&[("PK", "supersecretvalue")]));
    assert_eq!(key, "provider.private_key");
    assert!(!message.contains("supersecretvalue"), "{message}");
    assert_bad(&full("[identity]\nheader_prefix = \"Auth\"\n"), "header_prefix", "identity.header_prefix", "authorization");
    assert_bad(&full("[identity]\nheader_prefix = \"\"\n"), "header_prefix", "identity.header_prefix", "is empty");
}

#[test]
fn session_rules() {
    let text = full("[session]\ncookie_domain = \"example.com\"\n");
    assert_bad(&text, "cookie_domain", "session.cookie_domain", "__Host-");
    assert!(ok(&full("[session]\ncookie_name = \"__Secure-s\"\ncookie_domain = \"example.com\"\n")).session.cookie_domain.is_some());
    assert_bad(&full("[session]\nstore = \"redis\"\n"), "store", "session.store", "needs redis_url");
    assert_bad(&full("[session]\nredis_url = \"redis://h:1\"\n"), "redis_url", "session.redis_url", "only used with store");
    let text = full("[session]\nstore = \"redis\"\nredis_url = \"http://:pass@h:1\"\n");
    let (_, key, message) = bad(&text);
    assert_eq!(key, "session.redis_url");
    assert!(message.contains("not redis://") && !message.contains("pass"), "{message}");
    assert_bad(&full("[session]\ncookie_name = \"a b\"\n"), "cookie_name", "session.cookie_name", "not a cookie name");
    // Harmless (the absolute lifetime bounds it) and what a migrated mod_auth_openidc config may say.
    assert_eq!(ok(&full("[session]\ninactivity_timeout = \"9h\"\n")).session.inactivity_timeout, Duration::from_secs(9 * 3600));
    assert_bad(&full("[session]\nmax_cookie_bytes = 100000\n"), "max_cookie_bytes", "session.max_cookie_bytes", "16 KB");
    assert_bad(&full("[session.paths]\nlogout = \"/oauth2/login\"\n"), "logout", "session.paths.logout", "also session.paths.login");
    assert_bad(&full("[session.paths]\nuserinfo = \"/healthz\"\n"), "userinfo", "session.paths.userinfo", "health_path");
}

#[test]
fn host_rules() {
    let (line, key, message) = bad(PROVIDER);
    assert_eq!((line, key.as_str()), (1, "hosts"));
    assert!(message.contains("at least one"), "{message}");
    let dup = format!("{PROVIDER}{HOST}{}", HOST.replace("api.example.com", "API.example.com"));
    let (line, key, message) = bad(&dup);
    assert_eq!(key, "hosts[1].name");
    assert_eq!(line, dup.lines().enumerate().filter(|(_, l)| l.contains("name =")).nth(1).unwrap().0 + 1);
    assert!(message.contains(&format!("already defined at line {}", line_of(&dup, "[[hosts]]"))), "{message}");
    for (name, says) in [("api.example.com:443", "no port"), ("https://api.example.com", "URL"), ("a b", "not a host name")] {
        let text = format!("{PROVIDER}{}", HOST.replace("api.example.com", name));
        assert_bad(&text, "name =", "hosts[0].name", says);
    }
    for name in ["*", "*.example.com", "[::1]", "10.0.0.1"] {
        ok(&format!("{PROVIDER}{}", HOST.replace("api.example.com", name)));
    }
    let no_routes = format!("{PROVIDER}[[hosts]]\nname = \"a\"\nupstream = \"http://127.0.0.1:1\"\n");
    assert_bad(&no_routes, "[[hosts]]", "hosts[0]", "no [[hosts.routes]]");
    let t = format!("{PROVIDER}{HOST}");
    assert_bad(&t.replace("name = \"api.example.com\"", "name = \"a\"\nallowed_origins = [\"*\"]"), "allowed_origins", "hosts[0].allowed_origins[0]", "wildcard");
    assert_bad(&t.replace("name = \"api.example.com\"", "name = \"a\"\nallowed_origins = [\"https://a.com/x\"]"), "allowed_origins", "hosts[0].allowed_origins[0]", "without path");
    assert_bad(&t.replace("name = \"api.example.com\"", "name = \"a\"\nexternal_url = \"https://a.com/app\""), "external_url", "hosts[0].external_url", "base URL only");
    assert_bad(&t.replace("name = \"api.example.com\"", "name = \"a\"\nclaim_headers_access_token = true"), "claim_headers_access_token", "hosts[0].claim_headers_access_token", "mod_auth_openidc");
}

#[test]
fn route_rules() {
    let route = |body: &str| format!("{PROVIDER}{}", HOST.replace("path = \"/\"\n", body));
    assert_bad(&route("path = \"admin\"\n"), "admin", "hosts[0].routes[0].path", "must start with `/`");
    assert_bad(&route("exact = \"/a/../b\"\n"), "exact", "hosts[0].routes[0].exact", "`..`");
    assert_bad(&route("path = \"/a//b\"\n"), "path", "hosts[0].routes[0].path", "`//`");
    assert_bad(&route("path = \"/a?x=1\"\n"), "path", "hosts[0].routes[0].path", "no query");
    assert_bad(&route("path = \"/a\"\nexact = \"/a\"\n"), "exact", "hosts[0].routes[0].exact", "only one of path");
    assert_bad(&route("methods = [\"GET\"]\n"), "[[hosts.routes]]", "hosts[0].routes[0]", "needs path");
    assert_bad(&route("path = \"/\"\nmethods = []\n"), "methods", "hosts[0].routes[0].methods", "is empty");
    assert_bad(&route("path = \"/\"\nmethods = [\"GE T\"]\n"), "methods", "hosts[0].routes[0].methods[0]", "not an HTTP method");
    assert_bad(&route("path = \"/\"\naccess = \"public\"\nroles = [\"Admin\"]\n"), "access", "hosts[0].routes[0].access", "cannot have requirements");
    assert_bad(&route("path = \"/\"\nroles = []\n"), "roles", "hosts[0].routes[0].roles", "is empty");
    assert_bad(&route("path = \"/\"\ngroups = [\"\"]\n"), "groups", "hosts[0].routes[0].groups[0]", "is empty");
    assert_bad(
        &route("path = \"/\"\nclaims = [{ claim = \"a\", equals = \"b\", contains = \"c\" }]\n"),
        "claims",
        "hosts[0].routes[0].claims[0].contains",
        "only one of equals and contains",
    );
    assert_bad(&route("path = \"/\"\nclaims = [{ claim = \"a\" }]\n"), "claims", "hosts[0].routes[0].claims[0]", "needs equals");
    assert_bad(&route("path = \"/\"\nclaims = [{ claim = \"a..b\", equals = \"x\" }]\n"), "claims", "hosts[0].routes[0].claims[0].claim", "claim name");
    // Aliases read the same as the short names.
    let c = ok(&route("path = \"/\"\nscopes_all = [\"s\"]\nroles_any = [\"r\"]\ngroups_any = [\"g\"]\n"));
    let Access::Require(r) = &c.hosts[0].routes[0].access else { panic!("requirements expected") };
    assert_eq!((r.scopes_all.as_slice(), r.roles_any.as_slice(), r.groups_any.as_slice()), (&["s".to_string()][..], &["r".to_string()][..], &["g".to_string()][..]));
    // "authenticated" plus requirements is just the requirements.
    let c = ok(&route("path = \"/\"\naccess = \"authenticated\"\nscopes = [\"s\"]\n"));
    assert!(matches!(c.hosts[0].routes[0].access, Access::Require(_)));
}

#[test]
fn shadowed_routes_are_refused() {
    let routes = |body: &str| format!("{PROVIDER}[[hosts]]\nname = \"a\"\nupstream = \"http://127.0.0.1:1\"\n{body}");
    let text = routes("[[hosts.routes]]\npath = \"/\"\n[[hosts.routes]]\npath = \"/admin/\"\nroles = [\"Admin\"]\n");
    let (line, key, message) = bad(&text);
    assert_eq!((line, key.as_str()), (line_of(&text, "path = \"/admin/\"") - 1, "hosts[0].routes[1]"));
    assert!(message.contains(&format!("never matches: the route at line {}", line_of(&text, "path = \"/\"") - 1)), "{message}");
    let text = routes("[[hosts.routes]]\npath = \"/api/\"\n[[hosts.routes]]\nexact = \"/api\"\n");
    let (line, key, message) = bad(&text);
    assert_eq!((line, key.as_str()), (line_of(&text, "exact = \"/api\"") - 1, "hosts[0].routes[1]"));
    assert!(message.contains("never matches"), "{message}");
    // Not shadowed: a narrower method set first, a sibling prefix, an exact path before its prefix.
    ok(&routes("[[hosts.routes]]\npath = \"/\"\nmethods = [\"GET\"]\n[[hosts.routes]]\npath = \"/\"\n"));
    ok(&routes("[[hosts.routes]]\npath = \"/api\"\n[[hosts.routes]]\npath = \"/apix\"\n"));
    ok(&routes("[[hosts.routes]]\nexact = \"/api\"\n[[hosts.routes]]\npath = \"/api\"\n"));
    let text = routes("[[hosts.routes]]\npath = \"/\"\nmethods = [\"GET\", \"POST\"]\n[[hosts.routes]]\npath = \"/x\"\nmethods = [\"post\"]\n");
    let (line, key, _) = bad(&text);
    assert_eq!((line, key.as_str()), (line_of(&text, "path = \"/x\"") - 1, "hosts[0].routes[1]"));
}

#[test]
fn unreadable_file_is_a_read_error() {
    let err = load(Path::new("/nonexistent/oidc-sidecar/config.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().starts_with("/nonexistent/oidc-sidecar/config.toml: cannot read"), "{err}");
}

#[test]
fn line_index_edges() {
    let idx = SpanIndex::build("a = 1\nb = 2\n", &DeTable::parse("a = 1\nb = 2\n").unwrap());
    assert_eq!(idx.line_at(0), 1);
    assert_eq!(idx.line_at(5), 1);
    assert_eq!(idx.line_at(6), 2);
    assert_eq!(idx.line_of("b"), 2);
    assert_eq!(idx.line_of("b.missing.deeper"), 2);
    assert_eq!(idx.line_of("nothing[3].x"), 1);
}

#[test]
fn suggestions_only_when_close() {
    assert_eq!(closest("clientid", &["client_id", "issuer"]), Some("client_id"));
    assert_eq!(closest("zzzzzz", &["client_id", "issuer"]), None);
}
