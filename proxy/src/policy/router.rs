//! Host and route selection: which [`HostConfig`] a request belongs to and which of its routes applies.
//!
//! Everything a request would otherwise parse is prepared in [`Router::new`]: host names are indexed and route
//! paths are brought to the same canonical form as request paths ([`super::path::normalize`]), so a route written
//! `/caf%C3%A9/` or `/café/` matches the same requests. Matching itself is string comparison on segment boundaries.

use std::borrow::Cow;
use std::collections::HashMap;

use http::Method;

use crate::config::{HostConfig, PathMatch, RouteConfig};

use super::path;

/// The hosts of one configuration, indexed for lookups. Cheap to share behind an `Arc`; rebuilt on reload.
#[derive(Debug, Clone)]
pub struct Router {
    hosts: Vec<HostConfig>,
    /// Route matchers per host, in file order, beside `hosts[i].routes`.
    matchers: Vec<Vec<Matcher>>,
    exact: HashMap<String, usize, foldhash::fast::RandomState>,
    /// `*.example.com` names as (`.example.com`, index), longest suffix first.
    suffixes: Vec<(String, usize)>,
    any: Option<usize>,
}

#[derive(Debug, Clone)]
enum Matcher {
    /// The prefix without its trailing `/`: matches `base` itself and `base/...`. Empty for `/` (everything).
    Prefix(String),
    Exact(String),
}

// === impl Router ===

impl Router {
    /// Indexes `hosts`. A host listed twice keeps its first entry (the config loader should refuse duplicates).
    ///
    /// Route paths are normalized like request paths. A route path that does not normalize (e.g. it holds `%2F`) is
    /// kept as written; since no normalized request path can contain it, such a route never matches. The config
    /// loader should refuse those paths with [`path::normalize`]'s message.
    pub fn new(hosts: &[HostConfig]) -> Router {
        let mut exact = HashMap::default();
        let mut suffixes = Vec::new();
        let mut any = None;
        for (idx, host) in hosts.iter().enumerate() {
            let name = canonical_host(&host.name);
            if name == "*" {
                any.get_or_insert(idx);
            } else if let Some(suffix) = name.strip_prefix('*') {
                if suffix.starts_with('.') && !suffixes.iter().any(|(s, _)| s == suffix) {
                    suffixes.push((suffix.to_string(), idx));
                }
            } else {
                exact.entry(name).or_insert(idx);
            }
        }
        suffixes.sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        let matchers = hosts.iter().map(|h| h.routes.iter().map(|r| Matcher::new(&r.path)).collect()).collect();
        Router { hosts: hosts.to_vec(), matchers, exact, suffixes, any }
    }

    /// The host for a `Host` (or trusted `X-Forwarded-Host`) value: case-insensitive, port ignored, `[v6]:port`
    /// understood. An exact name wins over `*.domain`, which wins over `*`. `None` when nothing matches or the
    /// value is not a plausible host name (the caller denies).
    pub fn select_host(&self, host_header: &str) -> Option<usize> {
        let host = match parse_host_header(host_header) {
            Some(h) => h,
            // An absent or empty Host (HTTP/1.0) can only be served by a catch-all host.
            None if host_header.trim().is_empty() => return self.any,
            None => return None,
        };
        if let Some(&idx) = self.exact.get(host.as_ref()) {
            return Some(idx);
        }
        for (suffix, idx) in &self.suffixes {
            if host.len() > suffix.len() && host.ends_with(suffix.as_str()) {
                return Some(*idx);
            }
        }
        self.any
    }

    /// The host at `idx`, as returned by [`Router::select_host`].
    ///
    /// # Panics
    /// When `idx` did not come from this router's `select_host`.
    pub fn host(&self, idx: usize) -> &HostConfig {
        &self.hosts[idx]
    }

    pub fn hosts(&self) -> &[HostConfig] {
        &self.hosts
    }

    /// The first route of host `host_idx`, in file order, that matches `normalized_path` (the output of
    /// [`path::normalize`]) and `method`. A route with a method list matches only those methods; `HEAD` also
    /// matches a route that allows `GET`. `None` when no route matches: the caller must deny (fail closed).
    pub fn route(&self, host_idx: usize, normalized_path: &str, method: &Method) -> Option<&RouteConfig> {
        self.route_index(host_idx, normalized_path, method).map(|i| &self.hosts[host_idx].routes[i])
    }

    /// Like [`Router::route`], but the index of the route within the host's `routes`.
    pub fn route_index(&self, host_idx: usize, normalized_path: &str, method: &Method) -> Option<usize> {
        let host = self.hosts.get(host_idx)?;
        let matchers = self.matchers.get(host_idx)?;
        host.routes.iter().zip(matchers).position(|(route, matcher)| {
            matcher.matches(normalized_path) && method_allowed(route.methods.as_deref(), method)
        })
    }
}

// === impl Matcher ===

impl Matcher {
    fn new(path_match: &PathMatch) -> Matcher {
        match path_match {
            PathMatch::Prefix(p) => {
                let canonical = path::normalize(p).unwrap_or_else(|_| p.clone());
                Matcher::Prefix(canonical.trim_end_matches('/').to_string())
            }
            PathMatch::Exact(p) => Matcher::Exact(path::normalize(p).unwrap_or_else(|_| p.clone())),
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            // `/api` matches `/api` and `/api/...`, never `/apix`.
            Matcher::Prefix(base) => {
                path.strip_prefix(base.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
            Matcher::Exact(p) => path == p,
        }
    }
}

fn method_allowed(methods: Option<&[Method]>, method: &Method) -> bool {
    match methods {
        None => true,
        Some(list) => list.iter().any(|m| m == method || (*method == Method::HEAD && *m == Method::GET)),
    }
}

/// A config host name in the form `parse_host_header` produces: lower case, no brackets, no trailing dot.
fn canonical_host(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(&name);
    name.strip_suffix('.').unwrap_or(name).to_string()
}

/// `Host` value to a bare, lower-case host name; `None` when it is not one.
fn parse_host_header(value: &str) -> Option<Cow<'_, str>> {
    let value = value.trim();
    let host = if let Some(rest) = value.strip_prefix('[') {
        // `[v6]` or `[v6]:port`
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return None;
        }
        inside
    } else {
        match value.rsplit_once(':') {
            Some((h, port)) if !h.contains(':') => {
                if !is_port(port) {
                    return None;
                }
                h
            }
            // A bare IPv6 address without brackets is not valid in Host.
            Some(_) => return None,
            None => value,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':')) {
        return None;
    }
    // Hosts arrive lower-cased already (see `flow::forwarded`): then nothing is copied.
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    })
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_util::{host, route};

    fn router() -> Router {
        Router::new(&[
            host(
                "api.example.com",
                vec![
                    route(PathMatch::Exact("/health".into()), None),
                    route(PathMatch::Prefix("/admin/".into()), None),
                    route(PathMatch::Prefix("/api".into()), Some(vec![Method::GET])),
                    route(PathMatch::Prefix("/api".into()), Some(vec![Method::POST])),
                    route(PathMatch::Prefix("/caf%c3%a9/".into()), None),
                ],
            ),
            host("*.example.com", vec![route(PathMatch::Prefix("/".into()), None)]),
            host("*", vec![route(PathMatch::Prefix("/public".into()), None)]),
            host("[::1]", vec![]),
        ])
    }

    #[test]
    fn host_selection() {
        let r = router();
        assert_eq!(r.select_host("api.example.com"), Some(0));
        assert_eq!(r.select_host("API.Example.COM:8443"), Some(0));
        assert_eq!(r.select_host("api.example.com."), Some(0));
        assert_eq!(r.select_host(" api.example.com "), Some(0));
        assert_eq!(r.select_host("app.example.com"), Some(1));
        assert_eq!(r.select_host("example.com"), Some(2));
        assert_eq!(r.select_host("other.test"), Some(2));
        assert_eq!(r.select_host("[::1]:80"), Some(3));
        assert_eq!(r.select_host("[::1]"), Some(3));
        assert_eq!(r.select_host(""), Some(2));
        // Garbage never picks a specific host; it falls to nothing at all.
        assert_eq!(r.select_host("api.example.com:http"), None);
        assert_eq!(r.select_host("api.example.com/x"), None);
        assert_eq!(r.select_host("user@api.example.com"), None);
        assert_eq!(r.select_host("[::1"), None);
        assert_eq!(r.select_host("::1"), None);
    }

    #[test]
    fn no_catch_all_means_unknown_hosts_are_refused() {
        let r = Router::new(&[host("api.example.com", vec![])]);
        assert_eq!(r.select_host("evil.test"), None);
        assert_eq!(r.select_host(""), None);
        assert_eq!(r.host(0).name, "api.example.com");
    }

    #[test]
    fn prefix_matches_on_segment_boundaries() {
        let r = router();
        let get = Method::GET;
        let line = |p: &str, m: &Method| r.route(0, p, m).map(|route| route.line);
        assert_eq!(line("/admin/", &get), Some(2));
        assert_eq!(line("/admin", &get), Some(2));
        assert_eq!(line("/admin/users", &get), Some(2));
        assert_eq!(line("/adminx", &get), None);
        assert_eq!(line("/api", &get), Some(3));
        assert_eq!(line("/api/x", &get), Some(3));
        assert_eq!(line("/apix", &get), None);
        assert_eq!(line("/health", &get), Some(1));
        assert_eq!(line("/health/", &get), None);
        assert_eq!(line("/healthz", &get), None);
        assert_eq!(line("/café", &get), None, "request paths arrive normalized");
        assert_eq!(line("/caf%C3%A9/x", &get), Some(5), "route paths are normalized too");
    }

    #[test]
    fn methods_restrict_and_head_follows_get() {
        let r = router();
        assert_eq!(r.route(0, "/api/x", &Method::HEAD).map(|x| x.line), Some(3));
        assert_eq!(r.route(0, "/api/x", &Method::POST).map(|x| x.line), Some(4));
        assert!(r.route(0, "/api/x", &Method::DELETE).is_none());
    }

    #[test]
    fn first_match_in_file_order_wins() {
        let r = Router::new(&[host(
            "h",
            vec![route(PathMatch::Prefix("/".into()), None), route(PathMatch::Prefix("/admin".into()), None)],
        )]);
        assert_eq!(r.route(0, "/admin", &Method::GET).map(|x| x.line), Some(1));
        assert_eq!(r.route_index(0, "/admin", &Method::GET), Some(0));
    }

    #[test]
    fn unknown_host_index_matches_nothing() {
        assert!(router().route(99, "/", &Method::GET).is_none());
    }

    #[test]
    fn encoded_spellings_cannot_reach_admin_through_a_public_route() {
        // `/public` is public, `/admin/` protected, nothing else: every spelling of an admin path either lands on
        // the admin route or is refused by normalize.
        let r = Router::new(&[host(
            "h",
            vec![route(PathMatch::Prefix("/admin/".into()), None), route(PathMatch::Prefix("/public".into()), None)],
        )]);
        for raw in [
            "/public/../admin",
            "/public/%2e%2e/admin",
            "/public/%2E%2e/admin/x",
            "//admin",
            "/public//../admin",
            "/./admin",
            "/adm%69n/x",
            "/public/./../admin",
        ] {
            let p = path::normalize(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(r.route(0, &p, &Method::GET).map(|x| x.line), Some(1), "{raw} -> {p}");
        }
        for raw in ["/%2e%2e/admin", "/admin%2f..", "/public%2f..%2fadmin", "/public/..;/admin", "/public\\..\\admin"] {
            assert!(path::normalize(raw).is_err(), "{raw}");
        }
        // Case-sensitive, like Starlette: `/ADMIN` is another path, and here no route takes it.
        assert!(r.route(0, &path::normalize("/ADMIN").unwrap(), &Method::GET).is_none());
    }
}
