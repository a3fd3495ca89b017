//! The gateway: the only module that speaks Pingora.
//!
//! It turns each request into a call of [`crate::flow::App::handle`] and writes what comes back: a local answer
//! ([`LocalResponse`]) or a forward to the host's upstream with the identity headers the flow decided. Everything
//! that decides lives in the pure core; this module only adapts.

pub mod admin;
pub mod server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::{HttpPeer, Session};
use pingora::proxy::{FailToProxy, ProxyHttp};
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::config::SecurityHeaders;
use crate::flow::{upstream, App, Forward, LocalResponse, Outcome, Request, Trace};
use crate::telemetry::access::AccessRecord;

/// The callback's form_post body holds a code, a state and perhaps an ID token: 16 KiB is ample.
const MAX_CALLBACK_BODY: usize = 16 * 1024;

/// The Pingora application: a thin adapter around the pure [`App`].
pub struct Gateway {
    pub app: Arc<App>,
    /// Pingora's keep-alive setting for client connections: seconds idle before closing, 0 for "until the client
    /// closes it".
    keepalive_secs: u64,
}

/// Per-request state, from the first filter to `logging`.
pub struct Ctx {
    start: Instant,
    upstream_start: Option<Instant>,
    upstream_elapsed: Option<Duration>,
    forward: Option<Box<Forward>>,
    trace: Trace,
    decision: &'static str,
    reason: String,
    auth: &'static str,
    status: u16,
}

// === impl Gateway ===

impl Gateway {
    pub fn new(app: Arc<App>) -> Self {
        let keepalive_secs = keepalive_secs(app.config.server.downstream_idle_timeout);
        Gateway { app, keepalive_secs }
    }

    /// Writes a local answer. Not via `respond_error`, which closes the connection: the ALB's connection survives.
    async fn write_local(&self, session: &mut Session, ctx: &mut Ctx, r: LocalResponse) -> Result<()> {
        let mut header = ResponseHeader::build(r.status, Some(r.headers.len() + 4))?;
        for (name, value) in &r.headers {
            // `append`, never `insert`: several Set-Cookie headers must all survive.
            header.append_header(name.clone(), value.as_str())?;
        }
        // A 304 carries no Content-Length of its own (RFC 9110 §8.6): it would contradict the representation's.
        if r.status != 304 {
            header.insert_header("Content-Length", r.body.len().to_string())?;
        }
        if let Some(sec) = ctx.trace.host_idx.and_then(|h| self.security_headers(h)) {
            apply_security_headers(&mut header, sec)?;
        }
        ctx.status = r.status;
        ctx.decision = r.decision;
        ctx.reason = r.reason;
        let head_only = session.req_header().method == http::Method::HEAD;
        if r.body.is_empty() || head_only {
            session.write_response_header(Box::new(header), true).await?;
        } else {
            session.write_response_header(Box::new(header), false).await?;
            session.write_response_body(Some(r.body), true).await?;
        }
        Ok(())
    }

    fn security_headers(&self, host: usize) -> Option<&SecurityHeaders> {
        self.app.config.hosts.get(host).and_then(|h| h.security_headers.as_ref())
    }
}

/// Pingora counts keep-alive in whole seconds, 0 meaning no limit: a configured timeout is rounded up, never to 0.
fn keepalive_secs(idle: Option<Duration>) -> u64 {
    match idle {
        None => 0,
        Some(d) => (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1),
    }
}

fn apply_security_headers(header: &mut ResponseHeader, sec: &SecurityHeaders) -> Result<()> {
    if let Some(hsts) = &sec.hsts {
        header.insert_header("Strict-Transport-Security", hsts.as_str())?;
    }
    if sec.content_type_options {
        header.insert_header("X-Content-Type-Options", "nosniff")?;
    }
    if let Some(rp) = &sec.referrer_policy {
        header.insert_header("Referrer-Policy", rp.as_str())?;
    }
    if let Some(csp) = &sec.content_security_policy {
        header.insert_header("Content-Security-Policy", csp.as_str())?;
    }
    Ok(())
}

fn upstream_error_body(status: u16, reason: &str) -> LocalResponse {
    let code = if status == 504 { "upstream_timeout" } else { "bad_gateway" };
    let mut r = LocalResponse::json_error(status, "upstream_error", code, reason.to_string());
    r.decision = "upstream_error";
    r
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            start: Instant::now(),
            upstream_start: None,
            upstream_elapsed: None,
            forward: None,
            trace: Trace::default(),
            decision: "none",
            reason: String::new(),
            auth: "anonymous",
            status: 0,
        }
    }

    /// No downstream modules. Pingora's default is a response-compression module, added disabled, whose filters
    /// still run (and allocate) on every request. The sidecar never compresses: the app does, or the client's
    /// side of the ALB.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    /// Runs first, before any module: how long the client's connection may then sit idle (see
    /// `server.downstream_idle_timeout`; by default until the client, the ALB, closes it).
    async fn early_request_filter(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<()> {
        session.set_keepalive(Some(self.keepalive_secs));
        Ok(())
    }

    /// Runs the whole flow. `Ok(true)`: a local answer was written and the request ends here; `Ok(false)`: proxy on,
    /// with the decision kept in `ctx.forward` for the upstream filters.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let peer = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        // The only body the sidecar reads itself: the provider's form_post to the callback, capped.
        let mut body: Option<Vec<u8>> = None;
        if session.req_header().method == http::Method::POST
            && session.req_header().uri.path() == self.app.config.session.paths.callback
        {
            let mut buf = Vec::new();
            while let Some(chunk) = session.read_request_body().await? {
                if buf.len() + chunk.len() > MAX_CALLBACK_BODY {
                    let r = LocalResponse::json_error(413, "too_large", "invalid_request", "the callback form is too large");
                    self.write_local(session, ctx, r).await?;
                    return Ok(true);
                }
                buf.extend_from_slice(&chunk);
            }
            body = Some(buf);
        }
        let outcome = {
            let req = session.req_header();
            let request = Request {
                method: &req.method,
                path: req.uri.path(),
                query: req.uri.query(),
                headers: &req.headers,
                body: body.as_deref(),
                peer,
            };
            self.app.handle(request, &mut ctx.trace).await
        };
        match outcome {
            Outcome::Respond(r) => {
                self.write_local(session, ctx, r).await?;
                Ok(true)
            }
            Outcome::Forward(f) => {
                ctx.decision = "allow";
                ctx.auth = f.auth;
                ctx.forward = Some(f);
                Ok(false)
            }
        }
    }

    /// Where the request goes: the host's upstream, by literal address (no DNS on the request path).
    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let Some(forward) = ctx.forward.as_ref() else {
            return Error::e_explain(ErrorType::InternalError, "no forward decision for this request");
        };
        let server = &self.app.config.server;
        let mut peer = HttpPeer::new(forward.upstream, false, String::new());
        peer.options.connection_timeout = Some(server.upstream_connect_timeout);
        peer.options.total_connection_timeout = Some(server.upstream_connect_timeout);
        peer.options.read_timeout = Some(server.upstream_read_timeout);
        peer.options.write_timeout = Some(server.upstream_read_timeout);
        peer.options.idle_timeout = Some(server.upstream_idle_timeout);
        ctx.upstream_start = Some(Instant::now());
        Ok(Box::new(peer))
    }

    /// Rewrites the request for the upstream: the normalized path, and the headers as `flow::upstream` decides.
    ///
    /// The head is taken apart into `http` parts and rebuilt, so the headers are edited in a plain `HeaderMap`
    /// rather than through Pingora's case-preserving setters (`flow::upstream` says why names go out lower-case).
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(forward) = ctx.forward.as_ref() else {
            return Error::e_explain(ErrorType::InternalError, "no forward decision for this request");
        };
        let end_stream = upstream_request.send_end_stream();
        let empty = RequestHeader::from(http::Request::new(()).into_parts().0);
        let mut parts: http::request::Parts = std::mem::replace(upstream_request, empty).into();
        // Most requests arrive already normalized and in origin form: then the URI stays as it is (no re-parse).
        // The rebuilt head sends the URI's path, so an absolute-form target reaches the app in origin form.
        let unchanged = parts.uri.scheme().is_none()
            && parts.uri.path_and_query().map(|p| p.as_str()) == Some(forward.path_and_query.as_str());
        if !unchanged {
            parts.uri = forward
                .path_and_query
                .parse()
                .map_err(|_| Error::explain(ErrorType::InternalError, "normalized path is not a valid URI"))?;
        }
        upstream::rewrite_headers(&mut parts.headers, forward, &self.app.config.identity.header_prefix)
            .map_err(|e| Error::explain(ErrorType::InternalError, e.to_string()))?;
        *upstream_request = RequestHeader::from(parts);
        if let Some(end_stream) = end_stream {
            upstream_request.set_send_end_stream(end_stream);
        }
        Ok(())
    }

    /// Adds refreshed session cookies and the host's security headers to proxied responses.
    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(start) = ctx.upstream_start {
            ctx.upstream_elapsed = Some(start.elapsed());
        }
        ctx.status = upstream_response.status.as_u16();
        if let Some(forward) = ctx.forward.as_ref() {
            for cookie in &forward.set_cookies {
                upstream_response.append_header("Set-Cookie", cookie.as_str())?;
            }
            if let Some(sec) = self.security_headers(forward.host) {
                apply_security_headers(upstream_response, sec)?;
            }
        }
        Ok(())
    }

    /// Upstream refused → 502, upstream timed out → 504, each with a JSON reason.
    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let (status, reason) = match e.etype() {
            ErrorType::HTTPStatus(code) => (*code, format!("HTTP {code}")),
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                (504, "the upstream did not answer in time".to_string())
            }
            _ => match e.esource() {
                ErrorSource::Upstream => (502, "the upstream refused the connection or failed".to_string()),
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => (0, String::new()),
                    _ => (400, "bad request".to_string()),
                },
                _ => (500, "internal error".to_string()),
            },
        };
        if status > 0 {
            let body = upstream_error_body(status, &reason);
            ctx.reason = format!("{reason}: {}", e.etype().as_str());
            ctx.decision = "upstream_error";
            ctx.status = status;
            let mut header = match ResponseHeader::build(status, Some(4)) {
                Ok(h) => h,
                Err(_) => return FailToProxy { error_code: status, can_reuse_downstream: false },
            };
            let _ = header.insert_header("Content-Type", "application/json");
            let _ = header.insert_header("Content-Length", body.body.len().to_string());
            let _ = header.insert_header("Cache-Control", "no-store");
            let ok = session.write_response_header(Box::new(header), false).await.is_ok()
                && session.write_response_body(Some(Bytes::clone(&body.body)), true).await.is_ok();
            return FailToProxy { error_code: status, can_reuse_downstream: ok };
        }
        FailToProxy { error_code: status, can_reuse_downstream: false }
    }

    /// Pingora's error log line for a failed request: method, path without the query (it may hold `code=`), host.
    fn request_summary(&self, session: &Session, _ctx: &Ctx) -> String {
        let req = session.req_header();
        let host = req.headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("-");
        format!("{} {}, Host: {host}", req.method, req.uri.path())
    }

    /// The access log line and metrics, for every request (local answers and errors too). Never a token or cookie.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let req = session.req_header();
        let status = session.response_written().map(|r| r.status.as_u16()).unwrap_or(ctx.status);
        let latency = ctx.start.elapsed();
        let upstream = ctx.upstream_elapsed.or_else(|| ctx.upstream_start.map(|s| s.elapsed()));
        let host = ctx.trace.host_idx.and_then(|i| self.app.config.hosts.get(i)).map_or("-", |h| h.name.as_str());
        crate::telemetry::access::log(&AccessRecord {
            host,
            method: req.method.as_str(),
            path: req.uri.path(),
            status,
            latency,
            upstream,
            auth: ctx.trace.auth.unwrap_or(ctx.auth),
            subject: ctx.trace.subject(),
            decision: ctx.decision,
            reason: ctx.reason.as_str(),
            route_line: ctx.trace.route_line,
            error: e.map(|e| e.etype().as_str()),
        });
        crate::metrics::request(host, status, ctx.decision, latency.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_timeouts_become_whole_seconds_and_never_mean_unlimited_by_accident() {
        assert_eq!(keepalive_secs(None), 0, "unset: until the client closes the connection");
        assert_eq!(keepalive_secs(Some(Duration::from_secs(75))), 75);
        assert_eq!(keepalive_secs(Some(Duration::from_millis(1500))), 2, "rounded up");
        assert_eq!(keepalive_secs(Some(Duration::from_millis(200))), 1, "a short timeout is not 0, which is no limit");
    }
}
