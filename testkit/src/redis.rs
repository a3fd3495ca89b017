//! A private `redis-server` for one test: on a free port, with only the options the case needs, stopped on drop.
//!
//! Tests that stop Redis (outage and recovery) or set a password must not touch the machine's shared Redis, so each
//! starts its own. One launcher instead of one per suite: the same readiness wait, the same "is it installed"
//! message, and the same clean-up everywhere.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What the server is started with. `Default` is a plain, non-persisting server on a free port.
#[derive(Debug, Clone, Default)]
pub struct RedisConfig {
    /// `--requirepass`.
    pub password: Option<String>,
    /// Saves to this directory (`--save "3600 1" --dir`), so that a [`RedisServer::stop`] then
    /// [`RedisServer::restart`] keeps the data, as an ElastiCache failover does. Without it nothing is saved.
    pub persist_in: Option<PathBuf>,
    /// Serve TLS only, on the port (`--port 0 --tls-port`); certificate options go in `args`.
    pub tls: bool,
    /// Further `redis-server` arguments.
    pub args: Vec<String>,
    /// Working directory (relative certificate paths in `args`).
    pub current_dir: Option<PathBuf>,
}

/// A running private `redis-server`, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    config: RedisConfig,
}

impl RedisServer {
    /// A plain server on a free port. Panics, saying what to install, when `redis-server` cannot start.
    pub fn start() -> RedisServer {
        RedisServer::start_with(RedisConfig::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A server with `config` on a free port. `Err` says why it did not come up (not installed, exited at once,
    /// for example on an option this build lacks, or not listening within 10 s), so a caller may skip instead.
    pub fn start_with(config: RedisConfig) -> Result<RedisServer, String> {
        // A port found free can be taken before redis-server binds it (parallel tests probe ports the same way):
        // then the server exits at start, and another port is tried.
        let mut last = String::new();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port: {e}"))?
                .port();
            let mut server = RedisServer { child: None, port, config: config.clone() };
            match server.run() {
                Ok(()) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>` (no password: add it where the test wants it).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGTERM and wait: a persisting server saves first.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same options (after [`RedisServer::stop`]).
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.run()
    }

    fn run(&mut self) -> Result<(), String> {
        let c = &self.config;
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        if c.tls {
            cmd.args(["--port", "0", "--tls-port", &port]);
        } else {
            cmd.args(["--port", &port]);
        }
        cmd.args(["--bind", "127.0.0.1", "--appendonly", "no"]);
        match &c.persist_in {
            Some(dir) => cmd.args(["--save", "3600 1", "--dir"]).arg(dir),
            None => cmd.args(["--save", ""]),
        };
        if let Some(pw) = &c.password {
            cmd.args(["--requirepass", pw]);
        }
        cmd.args(&c.args);
        if let Some(d) = &c.current_dir {
            cmd.current_dir(d);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server could not start ({e}): apt-get install redis-server"))?;
        // Bounded by a deadline for start-up only; nothing is asserted about how fast it was.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // Listening is not enough: something else may hold the port for a moment. Ready means the server
            // answers (plain: a PING reply; TLS: it is still running once the port takes connections), so the
            // exit check comes after the probe.
            let answers =
                TcpStream::connect(("127.0.0.1", self.port)).is_ok() && (self.config.tls || answers_ping(self.port));
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("redis-server exited at start ({status}): port taken, or an option this build lacks?"));
            }
            if answers {
                self.child = Some(child);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!("redis-server did not listen on {} within 10 s", self.port))
    }
}

/// True when a Redis answers `PING` on the port (`+PONG`, or `-NOAUTH` from one with a password).
fn answers_ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut b = [0u8; 64];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut b).is_ok_and(|n| b[..n].starts_with(b"+PONG") || b[..n].starts_with(b"-NOAUTH"))
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// One inline command, after `AUTH` when given; the raw reply.
    fn command(port: u16, auth: Option<&str>, line: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        if let Some(pw) = auth {
            write!(s, "AUTH {pw}\r\n").expect("write");
            let mut b = [0u8; 64];
            let n = s.read(&mut b).expect("read");
            assert_eq!(&b[..n], b"+OK\r\n");
        }
        write!(s, "{line}\r\n").expect("write");
        let mut b = [0u8; 128];
        let n = s.read(&mut b).unwrap_or_else(|e| panic!("{line}: {e}"));
        String::from_utf8_lossy(&b[..n]).into_owned()
    }

    #[test]
    fn starts_with_a_password_stops_and_restarts_keeping_data() {
        let dir = std::env::temp_dir().join(format!("oidc-testkit-redis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut r = RedisServer::start_with(RedisConfig {
            password: Some("pw".into()),
            persist_in: Some(dir.clone()),
            ..Default::default()
        })
        .expect("redis-server");
        assert!(command(r.port(), None, "PING").starts_with("-NOAUTH"), "a password is required");
        assert_eq!(command(r.port(), Some("pw"), "SET kept yes"), "+OK\r\n");
        r.stop();
        assert!(TcpStream::connect(("127.0.0.1", r.port())).is_err(), "stopped");
        r.restart().expect("restart");
        assert_eq!(command(r.port(), Some("pw"), "GET kept"), "$3\r\nyes\r\n", "saved on SIGTERM, loaded again");
        drop(r);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_option_redis_lacks_is_an_error_not_a_hang() {
        let e = RedisServer::start_with(RedisConfig { args: vec!["--no-such-option".into(), "1".into()], ..Default::default() })
            .expect_err("refused");
        assert!(e.contains("exited at start"), "{e}");
    }
}
