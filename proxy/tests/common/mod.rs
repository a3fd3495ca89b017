//! Shared fixtures for the integration suites: the real `oidc-sidecar` binary as a child process, on free ports,
//! in front of the testkit's OpenID provider and echo upstream.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use oidc_testkit::TestProvider;


#[allow(unused_imports)]
pub use oidc_testkit::upstream::{Echo, EchoUpstream};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

pub struct Sidecar {
    child: Option<Child>,
    pub port: u16,
    pub admin_port: u16,
    pub dir: tempfile::TempDir,
    log_path: PathBuf,
}

impl Sidecar {
    /// Writes the config (with `{LISTEN}` and `{ADMIN}` replaced by free ports) and starts the binary.
    pub async fn start(config: &str) -> Sidecar {
        let s = Self::spawn(config);
        s.wait_listening().await;
        s
    }

    pub fn spawn(config: &str) -> Sidecar {
        let port = free_port();
        let admin_port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let config = config.replace("{LISTEN}", &format!("127.0.0.1:{port}")).replace("{ADMIN}", &format!("127.0.0.1:{admin_port}"));
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).expect("write config");
        let log_path = dir.path().join("sidecar.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let err = log.try_clone().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_oidc-sidecar"))
            .arg("run")
            .arg("--config")
            .arg(&path)
            .env("OIDC_SIDECAR_LOG", "info")
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn oidc-sidecar");
        Sidecar { child: Some(child), port, admin_port, dir, log_path }
    }

    /// Waits until the health path answers.
    pub async fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = client();
        while Instant::now() < deadline {
            if let Ok(r) = client.get(self.url("/healthz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sidecar did not start listening; log:\n{}", self.logs());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn sigterm(&self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
    }

    /// Waits for the process to exit (bounded).
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Some(status);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A client that never follows redirects and keeps no cookies.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("reqwest client")
}

/// The standard API config: three routes like the issue's example, plus a group route and a public echo.
pub fn api_config(provider: &TestProvider, upstream: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "{{LISTEN}}"
admin_listen = "{{ADMIN}}"
threads = 2
trusted_proxies = ["127.0.0.0/8"]
grace_period = "5s"
shutdown_timeout = "2s"
upstream_read_timeout = "2s"

[provider]
issuer = "{issuer}"
audiences = ["{aud}"]
required_tenant = "{tid}"
client_id = "{client}"
jwks_refetch_cooldown = "1s"

[[hosts]]
name = "api.test"
upstream = "{upstream}"
{extra}
[[hosts.routes]]
path = "/public/"
access = "public"
[[hosts.routes]]
path = "/admin/"
roles = ["Admin"]
[[hosts.routes]]
path = "/groups/"
groups = ["aaaaaaaa-0000-0000-0000-000000000001"]
[[hosts.routes]]
path = "/"
scopes = ["user.read"]
"#,
        issuer = provider.issuer(),
        aud = provider.audience(),
        tid = provider.tenant(),
        client = oidc_testkit::TEST_CLIENT_ID,
    )
}

/// The echo the upstream sent back.
pub async fn echo_of(resp: reqwest::Response) -> Echo {
    let text = resp.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not an echo ({e}): {text}"))
}

