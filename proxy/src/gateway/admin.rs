//! The admin listener (loopback only by default): the assertion JWKS the upstream verifies against, Prometheus
//! metrics, and a liveness answer. Kept off the ALB-facing port so neither keys nor metrics are public.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::flow::App;

pub struct Admin {
    pub app: Arc<App>,
}

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .header("Content-Length", body.len().to_string())
        .header("Cache-Control", "no-store")
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/.well-known/jwks.json" => reply(200, "application/json", self.app.signer.jwks_json().into_bytes()),
            "/metrics" => reply(200, "text/plain; version=0.0.4", crate::metrics::render().into_bytes()),
            "/healthz" => {
                let ready = self.app.keys.ready();
                let body = serde_json::json!({
                    "status": "ok",
                    "keys_loaded": ready,
                    "keys_error": self.app.keys.unavailable_reason(),
                });
                reply(200, "application/json", body.to_string().into_bytes())
            }
            _ => reply(404, "application/json", br#"{"error":"not_found"}"#.to_vec()),
        }
    }
}
