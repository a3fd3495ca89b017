//! `oidc-sidecar`: run the proxy, check a config offline, explain a decision, migrate an Apache config.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use oidc_sidecar::config;

/// mimalloc: the proxy allocates many small, short-lived buffers per request; glibc malloc showed as the largest
/// single cost in profiles (docs/benchmarks.md). The bare-Pingora baseline uses the same allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc asks the kernel for transparent huge pages on its arenas (`madvise(MADV_HUGEPAGE)`), so the few KiB
/// a thread touches in a fresh region are backed by a whole 2 MiB page: 14 of the 31 MB an idle task held. A
/// proxy's heap is small and churns, so 4 KiB pages keep a task's memory close to what it uses (the benchmark
/// showed no throughput cost; docs/benchmarks.md). Inherited by every thread; failure (an old kernel) leaves
/// the system's setting in place.
#[cfg(target_os = "linux")]
fn no_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes integers only and changes nothing but this process's paging policy.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

const DEFAULT_CONFIG: &str = "/etc/oidc-sidecar/config.toml";

#[derive(Parser)]
#[command(name = "oidc-sidecar", version, about = "OpenID Connect login and token checks in front of any web app")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        #[arg(long, env = "OIDC_SIDECAR_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate a config offline and print the hosts and routes it understood.
    Check {
        #[arg(long, env = "OIDC_SIDECAR_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Say, check by check, what the sidecar would decide for this token on this host and path.
    Explain {
        #[arg(long, env = "OIDC_SIDECAR_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        host: String,
        #[arg(long)]
        path: String,
        #[arg(long, default_value = "GET")]
        method: String,
        /// The access token, or `-` to read it from standard input (keeps it out of shell history).
        token: Option<String>,
    },
    /// Print the equivalent TOML for a web server's OIDC config.
    Migrate {
        #[command(subcommand)]
        from: MigrateFrom,
    },
    /// Exit 0 when the URL answers 200 (the container HEALTHCHECK; no shell or curl needed in the image).
    Health {
        #[arg(long, default_value = "http://127.0.0.1:80/healthz")]
        url: String,
    },
}

#[derive(Subcommand)]
enum MigrateFrom {
    /// An Apache httpd config using mod_auth_openidc.
    Apache { file: PathBuf },
}

fn main() -> ExitCode {
    #[cfg(target_os = "linux")]
    no_transparent_huge_pages();
    // reqwest (ring) and redis TLS both use the process-default rustls provider: exactly one must be installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => run(config),
        Command::Check { config } => check(config),
        Command::Explain { config, host, path, method, token } => explain(config, host, path, method, token),
        Command::Migrate { from: MigrateFrom::Apache { file } } => migrate_apache(file),
        Command::Health { url } => health(&url),
    }
}

fn load(path: &std::path::Path) -> Result<config::Config, ExitCode> {
    config::load(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

fn run(path: PathBuf) -> ExitCode {
    let cfg = match load(&path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let _log = oidc_sidecar::telemetry::init(cfg.server.log_format);
    match oidc_sidecar::gateway::server::run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "oidc-sidecar failed");
            eprintln!("oidc-sidecar: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: PathBuf) -> ExitCode {
    match load(&path) {
        Ok(cfg) => {
            println!("{}: ok", path.display());
            print!("{}", config::describe(&cfg));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn explain(path: PathBuf, host: String, req_path: String, method: String, token: Option<String>) -> ExitCode {
    let cfg = match load(&path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let token = match token.as_deref() {
        None | Some("-") => {
            let mut s = String::new();
            if std::io::stdin().read_to_string(&mut s).is_err() {
                eprintln!("cannot read the token from standard input");
                return ExitCode::from(2);
            }
            s.trim().to_string()
        }
        Some(t) => t.to_string(),
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = rt.block_on(oidc_sidecar::explain::explain(&cfg, &token, &host, &req_path, &method));
    println!("{report}");
    // Scripts can tell the verdict without parsing: 0 = would pass, 1 = would be refused.
    if report.status == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn migrate_apache(file: PathBuf) -> ExitCode {
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let out = oidc_sidecar::migrate::migrate_apache(&text);
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    print!("{}", out.toml);
    ExitCode::SUCCESS
}

/// A minimal HTTP/1.1 GET over std: the runtime image has no curl.
fn health(url: &str) -> ExitCode {
    let Some(rest) = url.strip_prefix("http://") else {
        eprintln!("health: only http:// URLs are supported");
        return ExitCode::from(2);
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let timeout = std::time::Duration::from_secs(3);
    let addr = match std::net::ToSocketAddrs::to_socket_addrs(authority).ok().and_then(|mut a| a.next()) {
        Some(a) => a,
        None => {
            eprintln!("health: cannot resolve {authority}");
            return ExitCode::FAILURE;
        }
    };
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, timeout) else {
        eprintln!("health: cannot connect to {authority}");
        return ExitCode::FAILURE;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: oidc-sidecar-health\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return ExitCode::FAILURE;
    }
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") {
        ExitCode::SUCCESS
    } else {
        eprintln!("health: {}", head.lines().next().unwrap_or("no answer"));
        ExitCode::FAILURE
    }
}
