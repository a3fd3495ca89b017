//! Logging: JSON lines by default (one per request from the gateway's `logging` hook), text for local use.
//!
//! The subscriber also bridges the `log` crate, so Pingora's own records arrive as JSON with their target.
//! Nothing here ever formats a token, cookie or secret: callers pass only labelled, non-secret fields.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Keeps the log writer thread alive; dropping it flushes what is still queued.
pub struct LogGuard(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard);

/// Installs the global subscriber once; later calls are ignored (tests, `check` after `run`).
///
/// Lines go through a background writer with a buffer, so a request never waits on a `write` to stdout and lines
/// under load leave in batches (one syscall for many lines). If the queue is full, lines wait rather than being
/// dropped: an access log with holes is worse than a slower one.
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_env("OIDC_SIDECAR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(64 * 1024)
        .finish(std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()));
    let result = match format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(writer)
            .try_init(),
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).try_init(),
    };
    let _ = result;
    LogGuard(guard)
}
