//! Logging: JSON lines by default (one per request from the gateway's `logging` hook), text for local use.
//!
//! The subscriber also bridges the `log` crate, so Pingora's own records arrive as JSON with their target.
//! Nothing here ever formats a token, cookie or secret: callers pass only labelled, non-secret fields.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls are ignored (tests, `check` after `run`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("OIDC_SIDECAR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let result = match format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_env_filter(filter)
            .with_writer(std::io::stdout)
            .try_init(),
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stdout).try_init(),
    };
    let _ = result;
}
