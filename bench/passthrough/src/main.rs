//! The smallest Pingora pass-through: the framework's own ceiling for `bench/run.sh`.
//!
//! It does exactly what the sidecar does on its fast path minus every check: accept HTTP/1.1,
//! pick one fixed upstream, reuse pooled upstream connections. Whatever the sidecar loses against
//! this number is the cost of authentication, not of Pingora.
//!
//! Usage: `bare-pingora [LISTEN] [UPSTREAM]` (or env `BARE_PINGORA_LISTEN`, `BARE_PINGORA_UPSTREAM`;
//! defaults `127.0.0.1:18082` and `127.0.0.1:18080`). Threads: env `BARE_PINGORA_THREADS` (default 1).

use std::net::SocketAddr;
use std::process::ExitCode;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

/// Forwards every request to one upstream address.
struct PassThrough {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for PassThrough {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        // A parsed SocketAddr: HttpPeer::new resolves (and unwraps) anything else.
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
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

    let mut conf = ServerConf::default();
    conf.threads = threads;
    conf.grace_period_seconds = Some(0);
    conf.graceful_shutdown_timeout_seconds = Some(1);
    // Keep-alive pooling towards the upstream stays on (default pool size 128).

    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, PassThrough { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    eprintln!("bare-pingora: {listen} -> {upstream}, {threads} thread(s)");
    server.run_forever()
}
