//! The few HTML pages a browser can land on at the sidecar's own endpoints. Self-contained (no scripts, no external
//! resources), every dynamic string escaped: they are shown to people, so they say what happened and offer the
//! one useful next step (a link that starts a fresh sign-in).

use crate::oidc::codeflow::html_escape;

use super::super::LocalResponse;

/// A page with a title, one paragraph and an optional "Try again" link (`retry` must already be a same-site path).
pub fn message(status: u16, decision: &'static str, title: &str, text: &str, retry: Option<&str>) -> LocalResponse {
    let link = retry
        .map(|r| format!("<p><a class=\"button\" href=\"{}\">Try again</a></p>\n", html_escape(r)))
        .unwrap_or_default();
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n<title>{title}</title>\n\
         <style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;\
         color:#222}}h1{{font-size:1.5rem}}a.button{{display:inline-block;margin-top:1rem;padding:.5rem 1rem;\
         background:#0b5cad;color:#fff;border-radius:4px;text-decoration:none}}</style>\n</head>\n<body>\n\
         <h1>{title}</h1>\n<p>{text}</p>\n{link}</body>\n</html>\n",
        title = html_escape(title),
        text = html_escape(text),
    );
    LocalResponse::html(status, decision, format!("{title}: {text}"), html)
}

/// The callback came without a pending login we can match: expired (10 minutes), finished already (back button),
/// started in another browser, or cookies blocked.
pub fn login_expired(retry: &str) -> LocalResponse {
    message(
        400,
        "login_expired",
        "Your sign-in expired",
        "This sign-in could not be matched to one started in this browser: it took too long, was already \
         finished, or cookies are blocked. Try again to start a fresh sign-in.",
        Some(retry),
    )
}

/// The sealed session does not fit the cookie budget: only the operator can fix it.
pub fn session_too_large(bytes: usize, limit: usize) -> LocalResponse {
    message(
        500,
        "session_too_large",
        "Your session is too large for cookies",
        &format!(
            "You signed in, but your session needs {bytes} bytes of cookies, more than the {limit} this service \
             allows (usually because of membership in many groups). The operator should set session.store = \
             \"redis\" in the sidecar configuration to keep sessions on the server."
        ),
        None,
    )
}

/// The small page the provider's front-channel logout iframe loads.
pub fn signed_out() -> LocalResponse {
    LocalResponse::html(
        200,
        "frontchannel_logout",
        "front-channel logout",
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Signed out</title></head>\
         <body><p>Signed out.</p></body></html>\n"
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_their_text() {
        let r = message(400, "x", "<t>", "a \"b\" & c", Some("/oauth2/login?rd=%2F&x=\"y\""));
        let body = String::from_utf8(r.body.to_vec()).unwrap();
        assert!(body.contains("&lt;t&gt;"));
        assert!(body.contains("a &quot;b&quot; &amp; c"));
        assert!(body.contains("href=\"/oauth2/login?rd=%2F&amp;x=&quot;y&quot;\""));
        assert_eq!(r.status, 400);
    }

    #[test]
    fn too_large_page_names_redis() {
        let r = session_too_large(20000, 12288);
        let body = String::from_utf8(r.body.to_vec()).unwrap();
        assert!(body.contains("session.store = &quot;redis&quot;"));
        assert!(body.contains("20000"));
    }
}
