//! Logging: JSON lines by default (one per request from the gateway's `logging` hook), text for local use.
//!
//! The subscriber also bridges the `log` crate, so Pingora's own records arrive as JSON with their target.
//! Nothing here ever formats a token, cookie or secret: callers pass only labelled, non-secret fields.

pub mod access;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Flushes the log buffer when dropped (end of `run`).
pub struct LogGuard(BufferedStdout);

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.0.flush();
    }
}

/// Standard output behind a 64 KiB buffer, flushed every 100 ms by a small thread and whenever the buffer fills.
///
/// A direct write costs a syscall per request; a channel to a writer thread (tracing-appender) costs a thread
/// wake-up per request on a busy core, which measured worse. Copying the line into a shared buffer costs neither;
/// the price is that a line may reach stdout up to 100 ms late, and a crash loses at most that much.
#[derive(Clone)]
pub struct BufferedStdout {
    inner: std::sync::Arc<parking_lot::Mutex<std::io::BufWriter<std::io::Stdout>>>,
}

impl BufferedStdout {
    fn new() -> Self {
        let inner = std::sync::Arc::new(parking_lot::Mutex::new(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        )));
        let weak = std::sync::Arc::downgrade(&inner);
        let _ = std::thread::Builder::new().name("log-flush".into()).spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            match weak.upgrade() {
                Some(w) => {
                    let _ = std::io::Write::flush(&mut *w.lock());
                }
                None => return,
            }
        });
        BufferedStdout { inner }
    }

    fn flush(&self) {
        let _ = std::io::Write::flush(&mut *self.inner.lock());
    }
}

impl std::io::Write for BufferedStdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.lock().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.lock().write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.lock().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BufferedStdout {
    type Writer = BufferedStdout;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs the global subscriber once; later calls are ignored (tests, `check` after `run`).
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_env("OIDC_SIDECAR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = BufferedStdout::new();
    let result = match format {
        LogFormat::Json => {
            // Request lines skip tracing's formatter (see `access`); everything else goes through it.
            access::install(writer.clone());
            tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_env_filter(filter)
                .with_writer(writer.clone())
                .try_init()
        }
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer.clone()).try_init(),
    };
    let _ = result;
    LogGuard(writer)
}
