//! The smallest Pingora pass-through: the framework's own ceiling for `bench/run.sh`.
//!
//! It does exactly what the sidecar does on its fast path minus every check: accept HTTP/1.1,
//! pick one fixed upstream, reuse pooled upstream connections. Whatever the sidecar loses against
//! this number is the cost of authentication, not of Pingora.
//!
//! Usage: `bare-pingora [LISTEN] [UPSTREAM]` (or env `BARE_PINGORA_LISTEN`, `BARE_PINGORA_UPSTREAM`;
//! defaults `127.0.0.1:18082` and `127.0.0.1:18080`). Threads: env `BARE_PINGORA_THREADS` (default 1).
//!
//! Plumbing mode (`BARE_PINGORA_PLUMBING=<file>`, bench system (c'') `pingora-plumbing`): still no check of
//! any kind, but the per-request work any production proxy in the sidecar's place must do before it checks
//! anything, done the way the sidecar's gateway does it: the downstream keep-alive left to the client (the ALB),
//! the upstream connect/read/write/idle timeouts (the sidecar's defaults), the `Cookie` header dropped, and the
//! headers listed in the file (`name: value` per line: what the sidecar added upstream for a session request,
//! captured by `bench/session/capture-upstream.sh`) appended. The sidecar's distance to this system is what
//! authentication, sessions, logging and metrics cost; its distance to plain pass-through also includes this.
//! `BARE_PINGORA_PLUMBING_TIMEOUTS=0` leaves the timeouts out (the headers' share alone). Headers are edited as the
//! gateway edits them, in the head's plain `http` parts (names lower-case); `BARE_PINGORA_PLUMBING_CASE=1` goes
//! through Pingora's case-preserving `append_header` instead, as the gateway did until 30 Nov 2026. Like the
//! gateway, plumbing mode runs without Pingora's default downstream module (response compression, added disabled);
//! plain pass-through keeps it, as Pingora ships.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use async_trait::async_trait;
use pingora::modules::http::compression::ResponseCompressionBuilder;
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

/// Forwards every request to one upstream address.
struct PassThrough {
    upstream: SocketAddr,
    /// Plumbing mode: the headers to add upstream (see the module docs).
    plumbing: Option<Vec<(bytes::Bytes, http::HeaderName, http::HeaderValue)>>,
    /// Plumbing mode with the sidecar's upstream timeouts (the default).
    timeouts: bool,
    /// Plumbing mode through Pingora's case-preserving `append_header` (the gateway before 30 Nov 2026).
    case: bool,
}

#[async_trait]
impl ProxyHttp for PassThrough {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        if self.plumbing.is_none() {
            // Pingora's default, which plain pass-through keeps.
            modules.add_module(ResponseCompressionBuilder::enable(0));
        }
    }

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        if self.plumbing.is_some() {
            // As oidc-sidecar's gateway by default: idle connections are the client's (the ALB's) to close.
            session.set_keepalive(Some(0));
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        // A parsed SocketAddr: HttpPeer::new resolves (and unwraps) anything else.
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        if self.plumbing.is_some() && self.timeouts {
            // oidc-sidecar's defaults (server.upstream_*_timeout), set the way its gateway sets them.
            peer.options.connection_timeout = Some(Duration::from_secs(1));
            peer.options.total_connection_timeout = Some(Duration::from_secs(1));
            peer.options.read_timeout = Some(Duration::from_secs(60));
            peer.options.write_timeout = Some(Duration::from_secs(60));
            peer.options.idle_timeout = Some(Duration::from_secs(4));
        }
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        let Some(headers) = &self.plumbing else { return Ok(()) };
        if self.case {
            upstream_request.remove_header("cookie");
            for (spelling, _, value) in headers {
                upstream_request.append_header(spelling.clone(), value.clone())?;
            }
            return Ok(());
        }
        // As the gateway (oidc-sidecar's `upstream_request_filter`): the head taken apart, its header map edited
        // with a reservation and parsed names, and rebuilt.
        let empty = RequestHeader::from(http::Request::new(()).into_parts().0);
        let mut parts: http::request::Parts = std::mem::replace(upstream_request, empty).into();
        parts.headers.remove(http::header::COOKIE);
        parts.headers.try_reserve(headers.len()).or_err(InternalError, "too many headers")?;
        for (_, name, value) in headers {
            parts.headers.try_append(name.clone(), value.clone()).or_err(InternalError, "too many headers")?;
        }
        *upstream_request = RequestHeader::from(parts);
        Ok(())
    }
}

/// Reads `name: value` lines (blank lines and `#` comments skipped).
fn read_headers(path: &str) -> std::result::Result<Vec<(bytes::Bytes, http::HeaderName, http::HeaderValue)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| format!("{path}:{}: expected `name: value`", n + 1))?;
        let parsed = http::HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| format!("{path}:{}: {e}", n + 1))?;
        let value = http::HeaderValue::from_str(value.trim()).map_err(|e| format!("{path}:{}: {e}", n + 1))?;
        out.push((bytes::Bytes::copy_from_slice(name.trim().as_bytes()), parsed, value));
    }
    Ok(out)
}

fn arg_or_env(position: usize, var: &str, default: &str) -> String {
    std::env::args()
        .nth(position)
        .or_else(|| std::env::var(var).ok())
        .unwrap_or_else(|| default.to_owned())
}

/// Same allocator as oidc-sidecar, so the ratio between the two measures the sidecar's own work.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let listen = arg_or_env(1, "BARE_PINGORA_LISTEN", "127.0.0.1:18082");
    let upstream = arg_or_env(2, "BARE_PINGORA_UPSTREAM", "127.0.0.1:18080");
    let upstream: SocketAddr = match upstream.parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("bare-pingora: upstream {upstream:?} is not an IP:port: {e}");
            return ExitCode::from(2);
        }
    };
    let threads = match std::env::var("BARE_PINGORA_THREADS").map(|t| t.parse::<usize>()) {
        Err(_) => 1,
        Ok(Ok(n)) if n > 0 => n,
        Ok(_) => {
            eprintln!("bare-pingora: BARE_PINGORA_THREADS must be a positive integer");
            return ExitCode::from(2);
        }
    };

    let plumbing = match std::env::var("BARE_PINGORA_PLUMBING") {
        Err(_) => None,
        Ok(path) => match read_headers(&path) {
            Ok(headers) => Some(headers),
            Err(e) => {
                eprintln!("bare-pingora: BARE_PINGORA_PLUMBING: {e}");
                return ExitCode::from(2);
            }
        },
    };

    let timeouts = std::env::var("BARE_PINGORA_PLUMBING_TIMEOUTS").map_or(true, |v| v != "0");
    let case = std::env::var("BARE_PINGORA_PLUMBING_CASE").is_ok_and(|v| v == "1");

    let conf = ServerConf {
        threads,
        // BARE_PINGORA_WORK_STEALING=0: Pingora's no-steal runtime (one current-thread Tokio runtime per thread).
        work_stealing: std::env::var("BARE_PINGORA_WORK_STEALING").map_or(true, |v| v != "0"),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    // Keep-alive pooling towards the upstream stays on (default pool size 128).

    let runtime = if conf.work_stealing { "work-stealing" } else { "no-steal" };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, PassThrough { upstream, plumbing: plumbing.clone(), timeouts, case });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    let mode = match &plumbing {
        Some(h) => format!(
            ", plumbing mode ({} headers added upstream, timeouts {}, names {})",
            h.len(),
            if timeouts { "on" } else { "off" },
            if case { "as spelled, through append_header" } else { "lower-case, in the head's parts" }
        ),
        None => String::new(),
    };
    eprintln!("bare-pingora: {listen} -> {upstream}, {threads} thread(s), {runtime} runtime{mode}");
    server.run_forever()
}
