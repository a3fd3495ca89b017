//! What a session remembers about a signed-in browser.
//!
//! Kept small on purpose: with the cookie store all of it travels in every request (a user in 200 Entra groups
//! must still fit under the ALB's 16 KB header limit). So only the claims policies and identity headers read
//! are kept ([`DEFAULT_KEPT_CLAIMS`] plus the claims named in route rules), the access token only when the
//! caller needs it, the refresh token, and the ID token only when logout needs it as `id_token_hint`.
//! Serialized as JSON with one- or two-letter field names.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{Access, HostConfig, SessionConfig};

/// Claims every session keeps when the provider sent them: identity (`oid`, `sub`, `tid`, names, email),
/// authorization (`roles`, `groups`, `scp`), Entra's group-overage marker (`_claim_names`, `hasgroups`), the
/// token type marker (`idtyp`) and the provider session id (`sid`, for front-channel logout).
pub const DEFAULT_KEPT_CLAIMS: &[&str] = &[
    "oid",
    "sub",
    "tid",
    "name",
    "preferred_username",
    "email",
    "upn",
    "roles",
    "groups",
    "scp",
    "_claim_names",
    "hasgroups",
    "idtyp",
    "sid",
];

/// Claims whose values from the ID token and the access token are merged as sets (see [`merge_claims`]).
const UNION_CLAIMS: &[&str] = &["roles", "groups"];

/// One browser session.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionData {
    /// Random 256-bit id (base64url): the Redis key (hashed) and what logout deletes. Not a secret with the
    /// cookie store, the only secret with the Redis store.
    #[serde(rename = "i")]
    pub sid: String,
    /// `sub` of the ID token (or `oid` for Entra, the caller decides).
    #[serde(rename = "s")]
    pub subject: String,
    /// Filtered claims of the ID token and access token together.
    #[serde(rename = "c", default)]
    pub claims: Map<String, Value>,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Expiry of `access_token`, unix seconds.
    #[serde(rename = "ae", default, skip_serializing_if = "Option::is_none")]
    pub access_expires_at: Option<u64>,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Only kept for logout's `id_token_hint`.
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// Unix seconds.
    #[serde(rename = "ct")]
    pub created_at: u64,
    /// Last request seen (unix seconds): the inactivity timeout counts from here.
    #[serde(rename = "ls")]
    pub last_seen: u64,
    /// Absolute end of the session (unix seconds), fixed at login; a refresh never extends it.
    #[serde(rename = "x")]
    pub expires_at: u64,
    /// What the request flow made of this session; never stored (see [`Derived`]).
    #[serde(skip)]
    pub derived: Derived,
}

/// What the request flow made of one opened session (its principal, assertion key and identity headers), kept on
/// the shared session itself.
///
/// The store hands out the same `Arc<SessionData>` while the cookie (or Redis value) stays the same, so a session
/// seen again finds what was made of it here, without a cache (and a lookup per request) of its own. Never
/// serialized, never compared, and emptied by `Clone` and by [`SessionData::touch`]: a changed session (refreshed,
/// slid) is derived anew and never shows the old roles. The session module does not know the type: the flow does.
#[derive(Default)]
pub struct Derived(OnceLock<Arc<dyn Any + Send + Sync>>);

impl Derived {
    /// The value made from this session, made by `make` on first use. Two requests racing on a new session may
    /// both make one; the first stored is kept, and the other serves its own request only.
    pub fn get_or_make<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Arc<T> {
        if let Some(kept) = self.0.get() {
            // Only one type is ever kept; another is made afresh rather than trusted.
            return Arc::clone(kept).downcast::<T>().unwrap_or_else(|_| Arc::new(make()));
        }
        let made = Arc::new(make());
        let _ = self.0.set(made.clone());
        made
    }
}

impl Clone for Derived {
    fn clone(&self) -> Self {
        Derived::default()
    }
}

impl PartialEq for Derived {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for SessionData {
    // Tokens never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionData")
            .field("subject", &self.subject)
            .field("claims", &self.claims.keys().collect::<Vec<_>>())
            .field("access_token", &self.access_token.as_ref().map(|_| "***"))
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .field("id_token", &self.id_token.as_ref().map(|_| "***"))
            .field("created_at", &self.created_at)
            .field("last_seen", &self.last_seen)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl SessionData {
    /// A new session at login: fresh random id, `last_seen = created_at = now`, `expires_at = now +
    /// max_lifetime`.
    pub fn new(subject: impl Into<String>, claims: Map<String, Value>, now: u64, cfg: &SessionConfig) -> SessionData {
        SessionData {
            sid: super::random_id(),
            subject: subject.into(),
            claims,
            access_token: None,
            access_expires_at: None,
            refresh_token: None,
            id_token: None,
            created_at: now,
            last_seen: now,
            expires_at: now.saturating_add(cfg.max_lifetime.as_secs()),
            derived: Derived::default(),
        }
    }

    /// Over its absolute lifetime, or idle for longer than the inactivity timeout. Uses the stored
    /// `expires_at` and also `created_at + max_lifetime`, so lowering `max_lifetime` in config shortens
    /// sessions that already exist.
    pub fn is_expired(&self, now: u64, cfg: &SessionConfig) -> bool {
        now >= self.expires_at
            || now >= self.created_at.saturating_add(cfg.max_lifetime.as_secs())
            || now >= self.last_seen.saturating_add(cfg.inactivity_timeout.as_secs())
    }

    /// The access token expires within `margin` and a refresh token exists to renew it. A session without an
    /// access token (not kept) or without an expiry never needs a refresh.
    pub fn needs_refresh(&self, now: u64, margin: Duration) -> bool {
        match (&self.refresh_token, self.access_expires_at) {
            (Some(_), Some(exp)) => now.saturating_add(margin.as_secs()) >= exp,
            _ => false,
        }
    }

    /// The access token is present and not expired at `now`.
    pub fn access_token_valid(&self, now: u64) -> Option<&str> {
        match (&self.access_token, self.access_expires_at) {
            (Some(t), Some(exp)) if now < exp => Some(t),
            (Some(t), None) => Some(t),
            _ => None,
        }
    }

    /// Whether `last_seen` is stale enough to rewrite the session. Rewriting on every request would reseal
    /// (and with the cookie store, resend kilobytes of `Set-Cookie`) for nothing: the inactivity timeout only
    /// needs `last_seen` to a fraction of its length. Rewritten once per 1/10 of the timeout (at least every
    /// 5 minutes, at most every second). A fixed floor above that fraction would let a short timeout (under
    /// ~11 s) end an active session before its first rewrite.
    pub fn needs_touch(&self, now: u64, cfg: &SessionConfig) -> bool {
        let step = (cfg.inactivity_timeout.as_secs() / 10).clamp(1, 300);
        now.saturating_sub(self.last_seen) >= step
    }

    /// Records activity at `now` (then save the session; see [`SessionData::needs_touch`]). What was derived from
    /// the session goes too, even when it is changed in place rather than copied: the principal's end moved.
    pub fn touch(&mut self, now: u64) {
        self.last_seen = self.last_seen.max(now);
        self.derived = Derived::default();
    }

    /// Seconds until the session ends for either reason (0 when expired): the Redis TTL and the cookie Max-Age.
    pub fn remaining(&self, now: u64, cfg: &SessionConfig) -> u64 {
        let absolute = self
            .expires_at
            .min(self.created_at.saturating_add(cfg.max_lifetime.as_secs()));
        let idle = self.last_seen.saturating_add(cfg.inactivity_timeout.as_secs());
        absolute.min(idle).saturating_sub(now)
    }

    /// Seconds until the absolute end (0 when past).
    pub fn remaining_absolute(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }

    /// A claim as a string (`name`, `email`, ...).
    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }
}

/// Claim names route rules read (top-level name of a dotted path), kept in sessions besides the defaults.
pub fn kept_claims(hosts: &[HostConfig]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for route in hosts.iter().flat_map(|h| &h.routes) {
        if let Access::Require(req) = &route.access {
            for rule in &req.claims {
                let top = rule.claim.split('.').next().unwrap_or(&rule.claim).to_string();
                if !out.contains(&top) {
                    out.push(top);
                }
            }
        }
    }
    out
}

/// Keeps only the claims in [`DEFAULT_KEPT_CLAIMS`] and `keep` (claims named by route rules).
pub fn filter_claims(claims: &Map<String, Value>, keep: &[String]) -> Map<String, Value> {
    claims
        .iter()
        .filter(|(k, _)| DEFAULT_KEPT_CLAIMS.contains(&k.as_str()) || keep.iter().any(|x| x == *k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The claims a session is authorized on: the ID token's, completed by the access token's. A session is
/// judged on both (issue 3 §6): `scp` and API `roles` live in the access token, profile claims in the ID token.
///
/// - `roles` and `groups` are the union of both (app roles of the client and of the API may differ).
/// - Every other claim: the access token's value when it has one (it is what the API would see as Bearer),
///   else the ID token's. Profile claims are normally only in one of them.
///
/// Both maps are filtered with `keep` first. Pass `None` when the access token is opaque (not a JWT).
pub fn merge_claims(
    id: &Map<String, Value>,
    access: Option<&Map<String, Value>>,
    keep: &[String],
) -> Map<String, Value> {
    let mut out = filter_claims(id, keep);
    let Some(access) = access else { return out };
    for (k, v) in filter_claims(access, keep) {
        if UNION_CLAIMS.contains(&k.as_str()) {
            if let (Some(Value::Array(mine)), Value::Array(theirs)) = (out.get_mut(&k), &v) {
                for item in theirs {
                    if !mine.contains(item) {
                        mine.push(item.clone());
                    }
                }
                continue;
            }
        }
        out.insert(k, v);
    }
    out
}

/// Unix seconds now (0 if the clock is before 1970, which only a broken host has).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::seal::tests::session_config;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn what_was_derived_stays_with_the_shared_session_but_not_with_a_changed_copy() {
        let cfg = session_config(vec![]);
        let s = SessionData::new("u", claims(json!({"roles": ["reader"]})), 1000, &cfg);
        let made = std::cell::Cell::new(0);
        let make = || {
            made.set(made.get() + 1);
            format!("view {}", made.get())
        };
        let first = s.derived.get_or_make(make);
        let again = s.derived.get_or_make(make);
        assert!(Arc::ptr_eq(&first, &again), "the same session reuses what was made of it");
        assert_eq!(made.get(), 1);
        // A refreshed or slid session is a copy: it derives anew.
        let mut changed = s.clone();
        changed.touch(2000);
        assert_eq!(*changed.derived.get_or_make(make), "view 2");
        // Slid in place (nobody else held it), it derives anew too.
        changed.touch(3000);
        assert_eq!(*changed.derived.get_or_make(make), "view 3");
        // Never stored: the sealed JSON does not carry it, and an opened session starts empty.
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("view"), "{json}");
        let opened: SessionData = serde_json::from_str(&json).unwrap();
        assert_eq!(opened, s, "compared without it");
        assert_eq!(*opened.derived.get_or_make(make), "view 4");
        // Another type than the one kept is made afresh, never mistaken for it.
        assert_eq!(*s.derived.get_or_make(|| 7_u32), 7);
        assert_eq!(*s.derived.get_or_make(make), "view 1");
    }

    #[test]
    fn expiry_inactivity_and_absolute() {
        let cfg = session_config(vec![]); // 1 h idle, 8 h absolute
        let mut s = SessionData::new("u", Map::new(), 1000, &cfg);
        assert_eq!(s.expires_at, 1000 + 8 * 3600);
        assert!(!s.is_expired(1000 + 3599, &cfg));
        assert!(s.is_expired(1000 + 3600, &cfg), "idle for the whole timeout");
        s.last_seen = 1000 + 7 * 3600 + 1800;
        assert!(!s.is_expired(1000 + 8 * 3600 - 1, &cfg));
        assert!(s.is_expired(1000 + 8 * 3600, &cfg), "absolute lifetime");
        assert_eq!(s.remaining(1000 + 8 * 3600 - 10, &cfg), 10);
        // Lowering max_lifetime in config applies to existing sessions.
        let mut short = cfg.clone();
        short.max_lifetime = Duration::from_secs(3600);
        assert!(s.is_expired(1000 + 3600, &short));
    }

    #[test]
    fn remaining_is_min_of_idle_and_absolute() {
        let cfg = session_config(vec![]);
        let s = SessionData::new("u", Map::new(), 0, &cfg);
        assert_eq!(s.remaining(100, &cfg), 3500);
        assert_eq!(s.remaining(5000, &cfg), 0);
    }

    #[test]
    fn needs_refresh_only_with_refresh_token_and_expiry() {
        let cfg = session_config(vec![]);
        let mut s = SessionData::new("u", Map::new(), 0, &cfg);
        s.access_token = Some("at".into());
        s.access_expires_at = Some(1000);
        assert!(!s.needs_refresh(900, Duration::from_secs(60)), "no refresh token");
        s.refresh_token = Some("rt".into());
        assert!(!s.needs_refresh(939, Duration::from_secs(60)));
        assert!(s.needs_refresh(940, Duration::from_secs(60)));
        assert_eq!(s.access_token_valid(999), Some("at"));
        assert_eq!(s.access_token_valid(1000), None);
    }

    #[test]
    fn touch_is_throttled() {
        let cfg = session_config(vec![]); // 1 h: step 300 s
        let s = SessionData::new("u", Map::new(), 0, &cfg);
        assert!(!s.needs_touch(299, &cfg));
        assert!(s.needs_touch(300, &cfg));
    }

    #[test]
    fn a_short_inactivity_timeout_is_touched_before_it_ends() {
        for secs in [1u64, 3, 9, 11, 60, 299, 3600, 86_400] {
            let mut cfg = session_config(vec![]);
            cfg.inactivity_timeout = Duration::from_secs(secs);
            cfg.max_lifetime = Duration::from_secs(10 * 86_400);
            let s = SessionData::new("u", Map::new(), 0, &cfg);
            let first = (1..=secs).find(|&t| s.needs_touch(t, &cfg)).expect("touched at some point");
            assert!(first < secs || secs == 1, "{secs} s timeout: first rewrite at {first} s, after it ended");
            assert!(!s.is_expired(first.min(secs - 1), &cfg), "{secs} s: still alive when touched");
        }
    }

    #[test]
    fn filter_keeps_listed_claims_only() {
        let c = claims(json!({"oid": "1", "roles": ["A"], "department": "Sales", "aio": "junk", "uti": "x"}));
        let f = filter_claims(&c, &["department".to_string()]);
        let mut keys: Vec<&String> = f.keys().collect();
        keys.sort();
        assert_eq!(keys, ["department", "oid", "roles"]);
    }

    #[test]
    fn merge_unions_roles_and_prefers_access_token() {
        let id = claims(json!({"sub": "s", "name": "Ann", "roles": ["A"], "groups": ["g1"]}));
        let at = claims(json!({"sub": "s", "scp": "user.read", "roles": ["A", "B"], "groups": ["g2"], "nonsense": 1}));
        let m = merge_claims(&id, Some(&at), &[]);
        assert_eq!(m["roles"], json!(["A", "B"]));
        assert_eq!(m["groups"], json!(["g1", "g2"]));
        assert_eq!(m["scp"], json!("user.read"));
        assert_eq!(m["name"], json!("Ann"));
        assert!(!m.contains_key("nonsense"));
        assert_eq!(merge_claims(&id, None, &[]).get("scp"), None);
    }

    #[test]
    fn serde_is_compact_and_round_trips() {
        let cfg = session_config(vec![]);
        let mut s = SessionData::new("user", claims(json!({"oid": "o"})), 5, &cfg);
        s.refresh_token = Some("rt".into());
        let j = serde_json::to_string(&s).unwrap();
        assert!(j.contains("\"r\":\"rt\"") && !j.contains("\"a\":"), "{j}");
        let back: SessionData = serde_json::from_str(&j).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn debug_hides_tokens() {
        let cfg = session_config(vec![]);
        let mut s = SessionData::new("u", Map::new(), 0, &cfg);
        s.access_token = Some("SECRET-AT".into());
        s.refresh_token = Some("SECRET-RT".into());
        s.id_token = Some("SECRET-ID".into());
        let d = format!("{s:?}");
        assert!(!d.contains("SECRET"), "{d}");
    }
}
