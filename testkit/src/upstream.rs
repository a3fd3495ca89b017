//! An upstream that echoes what it received, over a real socket, so tests see exactly what the sidecar forwarded.
//!
//! Requests: any path echoes `{method, path, headers, body}` as JSON; a path holding `/slow/<ms>` waits first (graceful-shutdown
//! tests); `/status/<code>` answers that status. HTTP/1.1 keep-alive is honoured, as uvicorn would.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the upstream saw it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Echo {
    pub method: String,
    pub path: String,
    /// Lower-cased names, each with every value in order.
    pub headers: BTreeMap<String, Vec<String>>,
    /// Header names exactly as they came over the wire, in order (for spelling checks).
    #[serde(default)]
    pub raw_names: Vec<String>,
    pub body: String,
}

impl Echo {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).and_then(|v| v.first()).map(String::as_str)
    }
}

/// A running echo upstream.
pub struct EchoUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Echo>>>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl EchoUpstream {
    /// Binds 127.0.0.1 on a free port and serves until dropped.
    pub async fn start() -> std::io::Result<EchoUpstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (s, c) = (seen.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, s).await;
                });
            }
        });
        Ok(EchoUpstream { addr, seen, connections, task })
    }

    /// `http://127.0.0.1:port`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Echo> {
        self.seen.lock().clone()
    }

    /// TCP connections accepted so far (connection reuse shows as fewer connections than requests).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, seen: Arc<Mutex<Vec<Echo>>>) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // Read one request head.
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut raw_names = Vec::new();
        for line in lines {
            if let Some((k, v)) = line.split_once(':') {
                raw_names.push(k.trim().to_string());
                headers.entry(k.trim().to_ascii_lowercase()).or_default().push(v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.first())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < len {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            body.extend_from_slice(&chunk[..n]);
        }
        buf = body.split_off(len.min(body.len()));
        let close = headers
            .get("connection")
            .and_then(|v| v.first())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));

        let echo = Echo { method, path: path.clone(), headers, raw_names, body: String::from_utf8_lossy(&body).to_string() };
        seen.lock().push(echo.clone());

        let mut status = 200u16;
        if let Some(ms) = path.split_once("/slow/").map(|(_, s)| s).and_then(|s| s.split(['?', '/']).next()?.parse::<u64>().ok()) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(code) = path.split_once("/status/").map(|(_, s)| s).and_then(|s| s.split(['?', '/']).next()?.parse::<u16>().ok()) {
            status = code;
        }
        let payload = serde_json::to_vec(&echo).unwrap_or_default();
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
            payload.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        stream.write_all(response.as_bytes()).await?;
        stream.write_all(&payload).await?;
        if close {
            return Ok(());
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
