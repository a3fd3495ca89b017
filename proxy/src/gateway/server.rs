//! Building and running the Pingora server from a validated config.
//!
//! Our CLI and TOML own the configuration: Pingora's own argv parsing and YAML are bypassed
//! (`Server::new_with_opt_and_conf(None, ..)`). `main` stays synchronous because Pingora builds its own runtimes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::listeners::TcpSocketOptions;
use pingora::protocols::TcpKeepalive;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use super::admin::Admin;
use super::Gateway;
use crate::config::Config;
use crate::flow::App;
use crate::identity::AssertionSigner;
use crate::oidc::KeyStore;

/// Fetches discovery and keys in the background: the proxy listens at once, so public routes and the health check
/// work while the provider is down, and protected routes answer 503 with the reason until keys load.
struct KeyRefresher {
    keys: Arc<KeyStore>,
}

#[async_trait]
impl BackgroundService for KeyRefresher {
    async fn start(&self, shutdown: ShutdownWatch) {
        self.keys.clone().run(shutdown).await;
    }
}

/// SIGTERM: mark the sidecar as draining (health answers 503), then let Pingora stop accepting and finish in-flight
/// requests within the grace period. SIGINT: fast shutdown.
struct Signals {
    app: Arc<App>,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            tracing::error!("cannot install signal handlers; shutting down");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: draining, finishing in-flight requests");
                self.app.start_draining();
                ShutdownSignal::GracefulTerminate
            }
            _ = int.recv() => ShutdownSignal::FastShutdown,
        }
    }
}

/// Pingora's server settings from ours.
fn server_conf(config: &Config) -> ServerConf {
    let mut conf = ServerConf::default();
    conf.threads = config.server.threads.max(1);
    // One worker has nobody to steal from: Pingora's no-steal flavour is then one current-thread Tokio runtime,
    // which spares every wake-up the multi-thread scheduler's cross-thread bookkeeping (docs/benchmarks.md).
    // With several workers, stealing stays on: no-steal pins each connection to a random thread for its life, and
    // the ALB's few long-lived keep-alive connections would then load the threads unevenly.
    conf.work_stealing = conf.threads > 1;
    conf.grace_period_seconds = Some(config.server.grace_period.as_secs());
    conf.graceful_shutdown_timeout_seconds = Some(config.server.shutdown_timeout.as_secs().max(1));
    conf.upstream_keepalive_pool_size = 128;
    // Pingora's daemon/upgrade machinery is unused: the container runtime owns the process.
    conf.pid_file = std::env::temp_dir().join("oidc-sidecar.pid").display().to_string();
    conf.upgrade_sock = std::env::temp_dir().join("oidc-sidecar-upgrade.sock").display().to_string();
    conf
}

/// Builds the server and runs it until a signal; returns when it has stopped.
pub fn run(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let signer = match &config.identity.signing_key {
        Some(pem) => AssertionSigner::from_pem(pem.expose(), config.identity.assertion_issuer.clone(), config.identity.assertion_ttl)?,
        None => AssertionSigner::generate(config.identity.assertion_issuer.clone(), config.identity.assertion_ttl)?,
    };
    let keys = KeyStore::new(&config.provider)?;
    let app = Arc::new(App::new(config.clone(), keys.clone(), signer)?);

    let conf = server_conf(&config);
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let refresher = background_service("provider keys", KeyRefresher { keys });
    server.add_service(refresher);

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway::new(app.clone()),
        "oidc-sidecar",
    );
    proxy.add_tcp_with_settings(&config.server.listen.to_string(), client_socket_options());
    server.add_service(proxy);

    let mut admin = Service::new("admin".to_string(), Admin { app: app.clone() });
    admin.add_tcp(&config.server.admin_listen.to_string());
    server.add_service(admin);

    tracing::info!(
        listen = %config.server.listen,
        admin = %config.server.admin_listen,
        hosts = config.hosts.len(),
        "oidc-sidecar starting"
    );
    server.run(RunArgs { shutdown_signal: Box::new(Signals { app }) });
    tracing::info!("oidc-sidecar stopped");
    // Give the log writer a moment; Pingora's runtimes are already down.
    std::thread::sleep(Duration::from_millis(10));
    Ok(())
}

/// TCP keep-alive on client connections: a peer that vanished without closing (a replaced ALB node, a broken
/// path) is found by the kernel's probes and its connection closed, at no cost per request. The HTTP keep-alive
/// stays unbounded by default (`server.downstream_idle_timeout`), so this is what reaps dead connections.
fn client_socket_options() -> TcpSocketOptions {
    let mut options = TcpSocketOptions::default();
    options.tcp_keepalive = Some(TcpKeepalive {
        idle: CLIENT_TCP_KEEPALIVE_IDLE,
        interval: CLIENT_TCP_KEEPALIVE_INTERVAL,
        count: CLIENT_TCP_KEEPALIVE_PROBES,
        #[cfg(target_os = "linux")]
        user_timeout: Duration::ZERO,
    });
    options
}

/// Probing starts after this long without traffic: above the ALB's default 60 s idle timeout, so a healthy ALB
/// connection is closed by the ALB before it is ever probed.
const CLIENT_TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(75);
const CLIENT_TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Unanswered probes before the connection is closed: a dead peer goes within 75 s + 4 x 15 s, about 2 minutes.
const CLIENT_TCP_KEEPALIVE_PROBES: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    fn config(threads: usize) -> Config {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:18080\"\nthreads = {threads}\n[provider]\nissuer = \"https://login.example.com/t/v2.0\"\nclient_id = \"c\"\n\
             audiences = [\"api://x\"]\n[[hosts]]\nname = \"*\"\nupstream = \"http://127.0.0.1:9000\"\n[[hosts.routes]]\npath = \"/\"\naccess = \"public\"\n"
        );
        crate::config::load_str(&text, std::path::Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn one_worker_runs_without_work_stealing_and_several_steal() {
        let one = server_conf(&config(1));
        assert_eq!((one.threads, one.work_stealing), (1, false));
        let four = server_conf(&config(4));
        assert_eq!((four.threads, four.work_stealing), (4, true));
        assert_eq!(four.upstream_keepalive_pool_size, 128);
    }
}
