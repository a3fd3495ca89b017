//! Mints a signed-in browser session for a sidecar config, with the sidecar's own sealing and stores, and prints
//! the value of the `Cookie:` header a browser holding that session would send.
//!
//! Why: the session points of `bench/run.sh` (issue 3) measure requests that carry a valid session, and the
//! bench's loopback provider cannot log anyone in. Going through the real [`SessionStore::save`] (same
//! [`KeyRing`], same cookie names, chunking, Redis key and TTL) means the benchmark measures exactly what a
//! browser session costs, not a look-alike. The session is the one the callback would create for the bench
//! user: claims filtered and merged like [`merge_claims`] does at login, an access token expiry far ahead and no
//! refresh token, so nothing refreshes during a run.
//!
//! ```text
//! cargo run --release --example mint_session -- --config bench/sidecar.toml [--redis] [--https]
//!     [--scp "bench.read"] [--claim name=json]... [--access-token-file PATH]
//! ```
//!
//! - `--redis`: refuse unless the config's store is Redis (the hook for the Redis point asks for it, so a wrong
//!   config cannot silently bench the cookie store). The session is written to Redis; the output is the id cookie.
//! - `--https`: the cookie names of a host whose external scheme is https (`__Host-` kept). Default: http, as the
//!   bench talks plain http to the sidecar and a `__Host-` name would be dropped there.
//! - `--access-token-file`: kept in the session only when a host forwards the access token (as the callback does).
//!
//! The output is a bearer credential for that sidecar: print it to a pipe, never to a log. Test keys only.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use oidc_sidecar::config::{self, Config};
use oidc_sidecar::session::{kept_claims, merge_claims, unix_now, CookieMap, KeyRing, SessionData, SessionStore};

const USAGE: &str = "usage: mint_session --config PATH [--redis] [--https] [--scp \"s1 s2\"] [--claim name=json]... \
[--access-token-file PATH]";

/// Ten years: the access token never comes near its refresh margin during a run.
const FAR_FUTURE_SECS: u64 = 10 * 365 * 24 * 3600;

#[derive(Debug)]
struct Args {
    config: PathBuf,
    redis: bool,
    https: bool,
    scp: String,
    claims: Vec<(String, Value)>,
    access_token_file: Option<PathBuf>,
}

fn parse(args: Vec<String>) -> Result<Args, String> {
    let mut out = Args {
        config: PathBuf::new(),
        redis: false,
        https: false,
        scp: "bench.read".into(),
        claims: Vec::new(),
        access_token_file: None,
    };
    let mut config = None;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--config" => config = Some(PathBuf::from(value()?)),
            "--redis" => out.redis = true,
            "--https" => out.https = true,
            "--scp" => out.scp = value()?,
            "--claim" => {
                let v = value()?;
                let (name, raw) = v.split_once('=').ok_or_else(|| format!("--claim wants name=json, got {v:?}"))?;
                // A bare word is a string claim; anything that parses as JSON is taken as JSON.
                let parsed = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
                out.claims.push((name.to_string(), parsed));
            }
            "--access-token-file" => out.access_token_file = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    out.config = config.ok_or_else(|| format!("--config is required\n{USAGE}"))?;
    Ok(out)
}

/// The bench user's ID token and access token claims (as `bench/fixtures.py` issues them), with overrides.
fn user_claims(args: &Args) -> (Map<String, Value>, Map<String, Value>) {
    let mut id = json!({
        "sub": "bench-subject",
        "oid": "00000000-0000-0000-0000-00000000be4c",
        "tid": "00000000-0000-0000-0000-000000000001",
        "name": "Bench User",
        "preferred_username": "bench@example.com",
        "sid": "bench-provider-session",
    });
    let mut access = json!({
        "sub": "bench-subject",
        "oid": "00000000-0000-0000-0000-00000000be4c",
        "tid": "00000000-0000-0000-0000-000000000001",
        "scp": args.scp,
    });
    for (name, v) in &args.claims {
        id[name] = v.clone();
        access[name] = v.clone();
    }
    let obj = |v: Value| v.as_object().cloned().unwrap_or_default();
    (obj(id), obj(access))
}

async fn mint(args: Args) -> Result<String, String> {
    let config = config::load(&args.config).map_err(|e| e.to_string())?;
    mint_for(&config, &args).await
}

/// The `Cookie:` header value of a new session for `config`'s store (saved to Redis first with that store).
async fn mint_for(config: &Config, args: &Args) -> Result<String, String> {
    let is_redis = config.session.store == config::SessionStore::Redis;
    if args.redis != is_redis {
        return Err(format!(
            "{}: session.store is {}, but --redis was {}",
            args.config.display(),
            if is_redis { "redis" } else { "cookie" },
            if args.redis { "given" } else { "not given" }
        ));
    }
    let ring = KeyRing::from_config(&config.session).map_err(|e| e.to_string())?;
    if ring.is_ephemeral() {
        // A session sealed with a throwaway key opens nowhere: say so instead of printing a useless cookie.
        return Err("session.keys is empty: set it (bench: BENCH_SESSION_KEY) so the sidecar can open the session".into());
    }
    let store = SessionStore::new(&config.session, Arc::new(ring)).map_err(|e| e.to_string())?;

    let (id, mut access) = user_claims(args);
    // As at the callback: an ID token's scp grants nothing; scopes come from the access token.
    let mut id = id;
    id.remove("scp");
    access.remove("sid");
    let claims = merge_claims(&id, Some(&access), &kept_claims(&config.hosts));
    let subject = ["oid", "sub"]
        .iter()
        .find_map(|k| claims.get(*k).and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    let now = unix_now();
    let mut data = SessionData::new(subject, claims, now, &config.session);
    data.access_expires_at = Some(now.saturating_add(FAR_FUTURE_SECS));
    if config.hosts.iter().any(|h| h.forward_access_token) {
        if let Some(path) = &args.access_token_file {
            let token = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            data.access_token = Some(token.trim().to_string());
        }
    }

    let sets = store
        .save(&data, &CookieMap::default(), args.https)
        .await
        .map_err(|e| e.to_string())?;
    // `Set-Cookie: name=value; HttpOnly; ...` -> `name=value`, joined as one `Cookie:` header (chunks in order).
    let pairs: Vec<&str> = sets.iter().filter(|s| !s.is_removal()).map(|s| s.pair()).collect();
    if pairs.is_empty() {
        return Err("the store returned no session cookie".into());
    }
    Ok(pairs.join("; "))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1).collect()) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match mint(args).await {
        Ok(cookie) => {
            println!("{cookie}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mint_session: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn bench_config(extra_session: &str) -> Config {
        let text = format!(
            r#"
[provider]
issuer = "http://127.0.0.1:18088"
client_id = "bench"
client_secret = "s"
audiences = ["api://bench"]

[session]
store = "cookie"
keys = ["{KEY}"]
{extra_session}

[[hosts]]
name = "*"
upstream = "http://127.0.0.1:18080"
login = "deny"

[[hosts.routes]]
path = "/"
scopes = ["bench.read"]
"#
        );
        let no_env = |_: &str| -> Option<String> { None };
        config::load_str_with_env(&text, Path::new("bench.toml"), &no_env).expect("test config loads")
    }

    #[test]
    fn parses_flags() {
        let a = parse(args(&["--config", "x.toml", "--redis", "--claim", "roles=[\"A\"]", "--claim", "dept=Sales"]))
            .unwrap();
        assert_eq!(a.config, PathBuf::from("x.toml"));
        assert!(a.redis && !a.https);
        assert_eq!(a.scp, "bench.read");
        assert_eq!(a.claims[0], ("roles".to_string(), json!(["A"])));
        assert_eq!(a.claims[1], ("dept".to_string(), json!("Sales")));
        assert!(parse(args(&["--redis"])).is_err(), "--config is required");
        assert!(parse(args(&["--config"])).is_err());
        assert!(parse(args(&["--config", "x", "--claim", "novalue"])).is_err());
        assert!(parse(args(&["--config", "x", "--what"])).is_err());
    }

    /// The printed cookie is one the sidecar's own store opens, with the claims the bench route needs.
    #[tokio::test(flavor = "current_thread")]
    async fn minted_cookie_opens_with_the_sidecars_store() {
        let config = bench_config("");
        let a = parse(args(&["--config", "bench.toml"])).unwrap();
        let cookie = mint_for(&config, &a).await.unwrap();
        assert!(cookie.starts_with("oidc_session="), "plain http drops __Host-: {cookie}");

        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::COOKIE, cookie.parse().unwrap());
        let ring = KeyRing::from_config(&config.session).unwrap();
        let store = SessionStore::new(&config.session, Arc::new(ring)).unwrap();
        let data = store.load(&CookieMap::from_headers(&headers), false).await.unwrap().expect("session opens");
        assert_eq!(data.claim_str("scp"), Some("bench.read"));
        assert_eq!(data.claim_str("oid"), Some("00000000-0000-0000-0000-00000000be4c"));
        assert_eq!(data.claim_str("name"), Some("Bench User"));
        assert_eq!(data.subject, "00000000-0000-0000-0000-00000000be4c");
        assert!(data.refresh_token.is_none() && data.access_token.is_none(), "nothing to refresh or forward");
        assert!(!data.needs_refresh(unix_now() + 365 * 24 * 3600, std::time::Duration::from_secs(60)));

        // Under another key it is no session at all.
        let foreign = SessionStore::new(&config.session, Arc::new(KeyRing::ephemeral())).unwrap();
        assert!(foreign.load(&CookieMap::from_headers(&headers), false).await.unwrap().is_none());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn https_names_and_store_mismatch() {
        let config = bench_config("");
        let a = parse(args(&["--config", "bench.toml", "--https"])).unwrap();
        assert!(mint_for(&config, &a).await.unwrap().starts_with("__Host-oidc_session="));
        let a = parse(args(&["--config", "bench.toml", "--redis"])).unwrap();
        let err = mint_for(&config, &a).await.unwrap_err();
        assert!(err.contains("session.store is cookie"), "{err}");
    }
}
