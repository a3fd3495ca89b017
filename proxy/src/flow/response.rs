//! Every answer the sidecar gives itself, as plain data.
//!
//! One type with named constructors (like linkerd's `SyntheticHttpResponse`), so the status, the RFC 6750 challenge
//! and the JSON reason always agree, and the gateway has exactly one place that writes them.

use bytes::Bytes;
use serde_json::json;

/// A response the sidecar writes without asking the upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Short label for logs and metrics (`unauthenticated`, `invalid_token`, `forbidden`, ...).
    pub decision: &'static str,
    /// Human reason for the log line (never a token).
    pub reason: String,
}

/// Quotes a value for an RFC 7235 auth-param: backslash-escapes `"` and `\`, drops control characters.
fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c if c.is_ascii() => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

impl LocalResponse {
    fn json(status: u16, decision: &'static str, reason: String, body: serde_json::Value) -> Self {
        let body = Bytes::from(body.to_string());
        LocalResponse {
            status,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Cache-Control".into(), "no-store".into()),
            ],
            body,
            decision,
            reason,
        }
    }

    /// A JSON error `{"error": code, "error_description": reason}`.
    pub fn json_error(status: u16, decision: &'static str, code: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        let body = json!({ "error": code, "error_description": reason });
        Self::json(status, decision, reason, body)
    }

    /// 401 without credentials: only the realm, as RFC 6750 §3.1 asks when the request had no token.
    pub fn unauthenticated(realm: &str, login_url: Option<&str>) -> Self {
        let reason = "authentication required: send Authorization: Bearer <access token>".to_string();
        let mut body = json!({ "error": "unauthenticated", "error_description": reason });
        if let Some(login) = login_url {
            body["login_url"] = json!(login);
        }
        let mut r = Self::json(401, "unauthenticated", reason, body);
        r.headers.push(("WWW-Authenticate".into(), format!("Bearer realm={}", quote(realm))));
        r
    }

    /// 401 for a token that was sent but is not acceptable (`invalid_token`) or a malformed request
    /// (`invalid_request`), naming the precise reason.
    pub fn bad_token(realm: &str, error: &'static str, description: &str) -> Self {
        let decision = if error == "invalid_request" { "invalid_request" } else { "invalid_token" };
        let mut r = Self::json_error(401, decision, error, description);
        r.headers.push((
            "WWW-Authenticate".into(),
            format!("Bearer realm={}, error={}, error_description={}", quote(realm), quote(error), quote(description)),
        ));
        r
    }

    /// 403 for a valid caller without the route's claims.
    pub fn insufficient(realm: &str, required: &str, reason: &str, scope: Option<&str>) -> Self {
        let body = json!({ "error": "insufficient_scope", "error_description": reason, "required": required });
        let mut r = Self::json(403, "forbidden", reason.to_string(), body);
        let mut challenge = format!(
            "Bearer realm={}, error=\"insufficient_scope\", error_description={}",
            quote(realm),
            quote(reason)
        );
        if let Some(scope) = scope {
            challenge.push_str(&format!(", scope={}", quote(scope)));
        }
        r.headers.push(("WWW-Authenticate".into(), challenge));
        r
    }

    /// 403 for a request no route admits (fail closed).
    pub fn no_route(path: &str) -> Self {
        Self::json_error(403, "no_route", "access_denied", format!("no route is configured for {path}"))
    }

    /// 503 while the provider's keys are not loaded (or the session store is down).
    pub fn unavailable(reason: impl Into<String>) -> Self {
        let mut r = Self::json_error(503, "unavailable", "temporarily_unavailable", reason);
        r.headers.push(("Retry-After".into(), "5".into()));
        r
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::json_error(400, "bad_request", "invalid_request", reason)
    }

    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::json_error(404, "not_found", "not_found", reason)
    }

    /// A redirect (302) with no body.
    pub fn redirect(location: &str, decision: &'static str) -> Self {
        LocalResponse {
            status: 302,
            headers: vec![
                ("Location".into(), location.to_string()),
                ("Cache-Control".into(), "no-store".into()),
            ],
            body: Bytes::new(),
            decision,
            reason: "redirect".into(),
        }
    }

    /// A small HTML page (provider errors at the callback, and the like).
    pub fn html(status: u16, decision: &'static str, reason: impl Into<String>, html: String) -> Self {
        LocalResponse {
            status,
            headers: vec![
                ("Content-Type".into(), "text/html; charset=utf-8".into()),
                ("Cache-Control".into(), "no-store".into()),
            ],
            body: Bytes::from(html),
            decision,
            reason: reason.into(),
        }
    }

    /// 200 with a JSON document.
    pub fn ok_json(value: serde_json::Value, decision: &'static str) -> Self {
        Self::json(200, decision, String::new(), value)
    }

    /// Adds a header (e.g. `Set-Cookie`; several are kept, never merged).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(r: &'a LocalResponse, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    #[test]
    fn no_token_is_401_with_only_the_realm() {
        let r = LocalResponse::unauthenticated("api.example.com", None);
        assert_eq!(r.status, 401);
        assert_eq!(header(&r, "www-authenticate"), Some("Bearer realm=\"api.example.com\""));
    }

    #[test]
    fn bad_token_names_the_reason_in_header_and_body() {
        let r = LocalResponse::bad_token("api", "invalid_token", "audience api://x is not \"accepted\"");
        assert_eq!(r.status, 401);
        assert_eq!(
            header(&r, "www-authenticate"),
            Some(r#"Bearer realm="api", error="invalid_token", error_description="audience api://x is not \"accepted\"""#)
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], "invalid_token");
        assert_eq!(body["error_description"], "audience api://x is not \"accepted\"");
    }

    #[test]
    fn forbidden_is_403_insufficient_scope_with_scope_param() {
        let r = LocalResponse::insufficient("api", "scope user.read", "scope user.read is required", Some("user.read"));
        assert_eq!(r.status, 403);
        let h = header(&r, "www-authenticate").unwrap();
        assert!(h.contains("error=\"insufficient_scope\""));
        assert!(h.ends_with("scope=\"user.read\""));
    }

    #[test]
    fn quoting_drops_control_characters() {
        assert_eq!(quote("a\r\nb\"c"), "\"ab\\\"c\"");
    }
}
