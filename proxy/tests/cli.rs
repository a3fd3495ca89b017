//! The command line as an operator and a developer use it: `check`, `explain`, `migrate apache`, `health`.

mod common;

use std::process::Command;

use common::*;
use oidc_testkit::TestProvider;

fn sidecar() -> Command {
    Command::new(env!("CARGO_BIN_EXE_oidc-sidecar"))
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn check_prints_what_it_understood_and_points_at_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        &dir,
        "good.toml",
        "[provider]\nissuer = \"https://idp.example.com\"\nclient_id = \"c\"\naudiences = [\"api://x\"]\n\n[[hosts]]\nname = \"api.example.com\"\nupstream = \"http://127.0.0.1:8000\"\n[[hosts.routes]]\npath = \"/health\"\naccess = \"public\"\n[[hosts.routes]]\npath = \"/admin/\"\nroles = [\"Admin\"]\n",
    );
    let out = sidecar().args(["check", "--config"]).arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("api.example.com"), "{text}");
    assert!(text.contains("/admin/") && text.contains("Admin"), "{text}");

    // An unknown key: file:line: key: message, exit 2.
    let bad = write(
        &dir,
        "bad.toml",
        "[provider]\nissuer = \"https://idp.example.com\"\nclient_id = \"c\"\naudiences = [\"api://x\"]\n\n[[hosts]]\nname = \"api.example.com\"\nupstrem = \"http://127.0.0.1:8000\"\n",
    );
    let out = sidecar().args(["check", "--config"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:8: hosts[0].upstrem:", bad.display())), "{err}");

    // A missing environment variable is named, with its line.
    let env = write(
        &dir,
        "env.toml",
        "[provider]\nissuer = \"https://idp.example.com\"\nclient_id = \"${NO_SUCH_VAR_FOR_TEST}\"\naudiences = [\"api://x\"]\n[[hosts]]\nname = \"a\"\nupstream = \"http://127.0.0.1:8000\"\n[[hosts.routes]]\npath = \"/\"\n",
    );
    let out = sidecar().args(["check", "--config"]).arg(&env).env_remove("NO_SUCH_VAR_FOR_TEST").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":3: provider.client_id:") && err.contains("NO_SUCH_VAR_FOR_TEST"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_says_check_by_check_why() {
    let provider = TestProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(&dir, "c.toml", &api_config(&provider, "http://127.0.0.1:8000", "").replace("{LISTEN}", "127.0.0.1:18999").replace("{ADMIN}", "127.0.0.1:18998"));
    let token = provider.sign(provider.default_claims());
    let run = |path: &'static str, token: String| {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || {
            sidecar()
                .args(["explain", "--config"])
                .arg(&cfg)
                .args(["--host", "api.test", "--path", path, &token])
                .output()
                .unwrap()
        })
    };
    let out = run("/items", token.clone()).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("signature"), "{text} / {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("verdict: 200"), "{text}");
    assert!(out.status.success());
    let out = run("/admin/x", token.clone()).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("verdict: 403") && text.contains("Admin"), "{text}");
    assert_eq!(out.status.code(), Some(1), "a refused verdict exits 1");
    let mut c = provider.default_claims();
    c["aud"] = serde_json::json!("api://other");
    let out = run("/items", provider.sign(c)).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("verdict: 401") && text.contains("api://other"), "{text}");
}

#[test]
fn migrated_apache_configs_pass_check() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/apache");
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("conf") {
            continue;
        }
        let out = sidecar().args(["migrate", "apache"]).arg(&path).output().unwrap();
        assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        let toml = String::from_utf8(out.stdout).unwrap();
        assert!(toml.contains("[[hosts]]"), "{toml}");
        let migrated = write(&dir, "migrated.toml", &toml);
        // The output names the secrets it needs as ${VAR}s: give them values as an operator would.
        let mut check = sidecar();
        check.args(["check", "--config"]).arg(&migrated);
        for line in toml.lines() {
            let mut rest = line;
            while let Some(i) = rest.find("${") {
                let after = &rest[i + 2..];
                let Some(end) = after.find('}') else { break };
                let var = after[..end].split(":-").next().unwrap();
                check.env(var, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
                rest = &after[end..];
            }
        }
        let out = check.output().unwrap();
        assert!(
            out.status.success(),
            "{} → check failed: {}\n{toml}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        n += 1;
    }
    assert!(n >= 4, "expected several fixtures, found {n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_subcommand_is_the_container_healthcheck() {
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.unwrap();
    let s = Sidecar::start(&api_config(&provider, &upstream.url(), "")).await;
    let url = s.url("/healthz");
    let ok = tokio::task::spawn_blocking(move || sidecar().args(["health", "--url", &url]).status().unwrap()).await.unwrap();
    assert!(ok.success());
    let dead = format!("http://127.0.0.1:{}/healthz", free_port());
    let bad = tokio::task::spawn_blocking(move || sidecar().args(["health", "--url", &dead]).status().unwrap()).await.unwrap();
    assert!(!bad.success());
}

/// The running server asks for 4 KiB pages (main.rs): huge pages behind mimalloc's arenas were 14 of the 31 MB an
/// idle task held. The kernel reports the process's setting in /proc/<pid>/status.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_without_transparent_huge_pages() {
    let provider = TestProvider::start().await;
    let upstream = EchoUpstream::start().await.unwrap();
    let s = Sidecar::start(&api_config(&provider, &upstream.url(), "")).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) else {
        eprintln!("this kernel does not report THP_enabled (before Linux 5.0); nothing to check");
        return;
    };
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}
