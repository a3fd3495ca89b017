//! Renewing a session's access token with its refresh token, once per session however many requests notice.
//!
//! In this process, [`SingleFlight`](crate::session::SingleFlight) keyed by the refresh token's hash runs one
//! refresh and shares its result (also with requests that arrive during the grace period still carrying the old
//! cookie). With the Redis store, tasks take the session's refresh lock first; a task that finds it held waits for
//! the holder and reads the session it stored, so a rotated refresh token is never spent twice.

use std::sync::Arc;

use std::fmt;
use std::time::Duration;

use crate::session::{merge_claims, refresh_key, unix_now, CookieMap, SessionData};

use super::Browser;

/// How long a task waits for another task's refresh of the same session (Redis store).
const PEER_REFRESH_WAIT: Duration = Duration::from_secs(5);

/// Why a refresh did not produce new tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The provider refused the refresh token (`invalid_grant`: revoked, expired, reused): the session is over.
    Grant(String),
    /// The provider or the store could not be asked, or answered oddly: worth retrying.
    Transient(String),
    /// The session no longer exists (another task's refresh failed and ended it, or logout).
    Gone,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Grant(why) => write!(f, "the provider refused the refresh token: {why}"),
            Failure::Transient(why) => write!(f, "refresh not possible right now: {why}"),
            Failure::Gone => f.write_str("the session was ended elsewhere"),
        }
    }
}

impl Browser {
    /// New tokens for `data` (its other fields unchanged, `last_seen` kept at the latest).
    pub(super) async fn refresh(&self, data: &SessionData, _now: u64) -> Result<SessionData, Failure> {
        let Some(rt) = data.refresh_token.clone() else {
            return Err(Failure::Grant("the session has no refresh token".into()));
        };
        let result = self.refreshes.run(refresh_key(&rt), || self.refresh_once(data.clone(), rt)).await;
        result.map(|mut new| {
            new.last_seen = new.last_seen.max(data.last_seen);
            new
        })
    }

    async fn refresh_once(&self, data: SessionData, rt: String) -> Result<SessionData, Failure> {
        let Some(redis) = self.store.redis() else {
            return self.redeem(&data, &rt).await;
        };
        let transient = |e: crate::session::StoreError| Failure::Transient(e.to_string());
        match redis.refresh_lock(&data.sid).await.map_err(transient)? {
            Some(lock) => {
                let result = async {
                    // Another task may have refreshed between our load and taking the lock.
                    match self.store.reload(&data.sid).await.map_err(transient)? {
                        None => Err(Failure::Gone),
                        Some(current) if current.refresh_token.as_deref() != Some(rt.as_str()) => {
                            Ok(Arc::unwrap_or_clone(current))
                        }
                        Some(current) => {
                            let new = self.redeem(&current, &rt).await?;
                            // Stored before the lock goes, so waiting tasks read the new tokens.
                            self.store.save(&new, &CookieMap::default(), true).await.map_err(transient)?;
                            Ok(new)
                        }
                    }
                }
                .await;
                if let Err(e) = redis.release(&lock).await {
                    tracing::debug!(error = %e, "refresh lock not released; it expires on its own");
                }
                result
            }
            None => match self.store.await_peer_refresh(&data.sid, PEER_REFRESH_WAIT).await.map_err(transient)? {
                None => Err(Failure::Gone),
                Some(current) if current.refresh_token.as_deref() != Some(rt.as_str()) => {
                            Ok(Arc::unwrap_or_clone(current))
                        }
                Some(_) => Err(Failure::Transient("another task's refresh of this session did not finish".into())),
            },
        }
    }

    /// One call to the token endpoint, and the session it makes.
    async fn redeem(&self, data: &SessionData, rt: &str) -> Result<SessionData, Failure> {
        let flow = self.codeflow().map_err(|r| Failure::Transient(r.reason))?;
        let ep = self.endpoints().map_err(|r| Failure::Transient(r.reason))?;
        let resp = flow.refresh(&ep, rt).await.map_err(|e| {
            if e.is_grant_error() {
                Failure::Grant(e.to_string())
            } else {
                Failure::Transient(e.to_string())
            }
        })?;
        let now = unix_now();
        let mut new = data.clone();
        if let Some(at) = resp.access_token {
            match self.verifier.verify_access_token(&at).await {
                Ok(v) => {
                    new.claims = merge_claims(&new.claims, Some(&v.claims), &self.keep);
                    new.access_expires_at = u64::try_from(v.expires_at).ok();
                }
                Err(e) => {
                    tracing::debug!(reason = %e.description(), "refreshed access token is not one of ours; claims unchanged");
                    new.access_expires_at = resp.expires_in.map(|s| now.saturating_add(s));
                }
            }
            new.access_token = self.keep_access_token.then_some(at);
        }
        if let Some(rt) = resp.refresh_token {
            new.refresh_token = Some(rt);
        }
        if let Some(id) = resp.id_token {
            if self.keeps_id_token(&id) {
                new.id_token = Some(id);
            }
        }
        if new.needs_refresh(now, self.cfg.refresh_margin) {
            tracing::warn!(
                margin = ?self.cfg.refresh_margin,
                expires_in = new.access_expires_at.map(|e| e.saturating_sub(now)),
                "the new access token already needs a refresh: session.refresh_margin is not shorter than the \
                 provider's access-token lifetime, so every request refreshes; lower session.refresh_margin"
            );
        }
        Ok(new)
    }
}
