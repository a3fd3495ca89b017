//! The signed identity assertion (`X-Auth-Assertion`).
//!
//! Headers alone prove nothing to the upstream: anything that can reach its port could send them. The assertion is
//! a short-lived ES256 JWT, signed by this sidecar's own key, that repeats the identity headers; the app verifies it
//! against the JWKS the sidecar serves on its loopback admin listener ([`AssertionSigner::jwks_json`]) and so knows
//! the request passed through its own sidecar. The key is generated at start unless one is configured; its `kid` is
//! the RFC 7638 thumbprint, so the same key always has the same `kid`.
//!
//! Signing costs an ECDSA operation per request; [`AssertionSigner::sign_cached`] reuses an assertion for the same
//! token and host until less than half its lifetime remains, so a repeated Bearer token costs no signature.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use p256::SecretKey;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::Principal;

/// How many (token, host) assertions are kept. Each entry is one JWT of about 1 KB.
const DEFAULT_CACHE_ENTRIES: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error("cannot sign the identity assertion: {0}")]
    Sign(String),
    /// The configured signing key could not be used. Never includes the key itself.
    #[error("the assertion signing key is unusable: {0}")]
    Key(String),
    /// The caller's credentials expire at or before `now`: an assertion for them would be born expired.
    #[error("the caller's credentials have expired; no identity assertion can be issued")]
    Expired,
}

/// Signs identity assertions with one P-256 key, and publishes its public half.
pub struct AssertionSigner {
    key: EncodingKey,
    header: Header,
    kid: String,
    jwks: String,
    issuer: String,
    ttl: Duration,
    cache: moka::sync::Cache<[u8; 32], Cached>,
}

#[derive(Clone)]
struct Cached {
    token: Arc<str>,
    iat: i64,
    exp: i64,
}

/// The assertion's claims. Names follow Entra's where one exists (`oid`, `tid`, `scp`, `roles`, `groups`), so an
/// app written against Entra tokens reads these the same way.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    oid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    roles: &'a [String],
    groups: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    groups_overage: bool,
    /// Space-separated, like Entra's `scp`; absent for app-only callers.
    #[serde(skip_serializing_if = "Option::is_none")]
    scp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amr: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    azp: Option<&'a str>,
    idtyp: &'static str,
    auth_method: &'static str,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
}

// === impl AssertionSigner ===

impl AssertionSigner {
    /// A signer with a fresh random P-256 key (the default: the app fetches the public key from the admin JWKS).
    pub fn generate(issuer: String, ttl: Duration) -> Result<Self, AssertionError> {
        let secret = SecretKey::random(&mut rand::rngs::OsRng);
        Self::from_secret(&secret, issuer, ttl)
    }

    /// A signer with a configured key: a P-256 private key as PKCS#8 (`BEGIN PRIVATE KEY`) or SEC1
    /// (`BEGIN EC PRIVATE KEY`) PEM, e.g. from `openssl ecparam -name prime256v1 -genkey`.
    pub fn from_pem(pem: &str, issuer: String, ttl: Duration) -> Result<Self, AssertionError> {
        let secret = SecretKey::from_pkcs8_pem(pem).or_else(|_| SecretKey::from_sec1_pem(pem)).map_err(|_| {
            AssertionError::Key("expected a P-256 (prime256v1) private key in PKCS#8 or SEC1 PEM".into())
        })?;
        Self::from_secret(&secret, issuer, ttl)
    }

    /// A new random P-256 private key as PKCS#8 PEM, for operators who want to pin the key (`signing_key`).
    pub fn generate_pem() -> Result<String, AssertionError> {
        let secret = SecretKey::random(&mut rand::rngs::OsRng);
        let pem = secret.to_pkcs8_pem(LineEnding::LF).map_err(|e| AssertionError::Key(e.to_string()))?;
        Ok(pem.to_string())
    }

    fn from_secret(secret: &SecretKey, issuer: String, ttl: Duration) -> Result<Self, AssertionError> {
        let der = secret.to_pkcs8_der().map_err(|e| AssertionError::Key(e.to_string()))?;
        let key = EncodingKey::from_ec_der(der.as_bytes());

        let point = secret.public_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(AssertionError::Key("the public key has no affine coordinates".into()));
        };
        let x = URL_SAFE_NO_PAD.encode(x);
        let y = URL_SAFE_NO_PAD.encode(y);
        // RFC 7638: the required members, lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        let jwks = serde_json::json!({
            "keys": [{ "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256" }]
        })
        .to_string();

        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.clone());
        header.typ = Some("JWT".into());

        // Entries are useless after the TTL anyway; the half-life check on read does the precise expiry.
        let cache = moka::sync::Cache::builder()
            .max_capacity(DEFAULT_CACHE_ENTRIES)
            .time_to_live(ttl.max(Duration::from_secs(1)))
            .build();
        let signer = AssertionSigner { key, header, kid, jwks, issuer, ttl, cache };
        // Fail at start, not on the first request, if the crypto backend refuses the key.
        jsonwebtoken::encode(&signer.header, &serde_json::json!({}), &signer.key)
            .map_err(|e| AssertionError::Key(e.to_string()))?;
        Ok(signer)
    }

    /// Signs an assertion about `p` for the upstream of host `audience`, issued at `now` (Unix seconds).
    ///
    /// It expires after the configured TTL or when the caller's credentials do, whichever is first; it is
    /// [`AssertionError::Expired`] when they already have.
    pub fn sign(&self, p: &Principal, audience: &str, now: i64) -> Result<String, AssertionError> {
        Ok(self.sign_inner(p, audience, now)?.0)
    }

    /// Like [`AssertionSigner::sign`], but returns the assertion issued earlier under `cache_key` while it has at
    /// least half its lifetime left. `cache_key` must identify the credentials and the audience together (the
    /// gateway uses SHA-256 of the token and the host): the cached assertion is returned without looking at `p`.
    pub fn sign_cached(
        &self,
        cache_key: &[u8; 32],
        p: &Principal,
        audience: &str,
        now: i64,
    ) -> Result<Arc<str>, AssertionError> {
        if let Some(c) = self.cache.get(cache_key) {
            let remaining = c.exp - now;
            if remaining > 0 && remaining * 2 >= c.exp - c.iat {
                return Ok(c.token);
            }
        }
        let (token, exp) = self.sign_inner(p, audience, now)?;
        let token: Arc<str> = Arc::from(token);
        self.cache.insert(*cache_key, Cached { token: token.clone(), iat: now, exp });
        Ok(token)
    }

    fn sign_inner(&self, p: &Principal, audience: &str, now: i64) -> Result<(String, i64), AssertionError> {
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let exp = now.saturating_add(ttl).min(p.expires_at);
        if exp <= now {
            return Err(AssertionError::Expired);
        }
        let str_claim = |k: &str| p.claims.get(k).and_then(Value::as_str);
        let claims = Claims {
            iss: &self.issuer,
            aud: audience,
            sub: &p.subject,
            oid: str_claim("oid"),
            tid: p.tenant.as_deref(),
            name: p.name.as_deref(),
            email: p.email.as_deref(),
            roles: &p.roles,
            groups: &p.groups,
            groups_overage: p.groups_overage,
            scp: (!p.scopes.is_empty()).then(|| p.scopes.join(" ")),
            amr: p.claims.get("amr").filter(|v| v.is_array()),
            azp: str_claim("azp").or_else(|| str_claim("appid")),
            idtyp: if p.is_app_only() { "app" } else { "user" },
            auth_method: p.method.as_str(),
            iat: now,
            nbf: now,
            exp,
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        let token =
            jsonwebtoken::encode(&self.header, &claims, &self.key).map_err(|e| AssertionError::Sign(e.to_string()))?;
        Ok((token, exp))
    }

    /// The public key as a JWK Set, served on the admin listener (`/.well-known/jwks.json`).
    pub fn jwks_json(&self) -> String {
        self.jwks.clone()
    }

    /// The key id (RFC 7638 SHA-256 thumbprint of the public key).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AuthMethod;
    use jsonwebtoken::jwk::{JwkSet, ThumbprintHash};
    use jsonwebtoken::{DecodingKey, Validation};
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    fn signer() -> AssertionSigner {
        AssertionSigner::generate("oidc-sidecar".into(), Duration::from_secs(300)).expect("generate")
    }

    fn principal(expires_at: i64) -> Principal {
        let Value::Object(claims) = json!({
            "oid": "oid-1", "sub": "s", "tid": "t1", "name": "Zoë", "preferred_username": "zoe@example.com",
            "scp": "user.read files.write", "roles": ["Admin"], "groups": ["g1"], "amr": ["pwd", "mfa"],
            "azp": "spa-client"
        }) else {
            unreachable!()
        };
        Principal::from_claims(&claims, expires_at, AuthMethod::Bearer)
    }

    /// Verifies `token` as an app would: with nothing but the JWKS document.
    fn verify(jwks: &str, token: &str, aud: &str, iss: &str) -> Result<Value, jsonwebtoken::errors::Error> {
        let set: JwkSet = serde_json::from_str(jwks).expect("jwks parses");
        let header = jsonwebtoken::decode_header(token)?;
        let jwk = set.find(header.kid.as_deref().expect("kid")).expect("kid in jwks");
        let key = DecodingKey::from_jwk(jwk)?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[iss]);
        validation.set_audience(&[aud]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        // Most tests sign at a fixed `now` in the past and check exp/nbf by value; `verify_now` checks them live.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        Ok(jsonwebtoken::decode::<Value>(token, &key, &validation)?.claims)
    }

    #[test]
    fn assertion_verifies_now_with_exp_and_nbf_checked() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let s = signer();
        let token = s.sign(&principal(now + 3600), "api.example.com", now).unwrap();
        let set: JwkSet = serde_json::from_str(&s.jwks_json()).unwrap();
        let key = DecodingKey::from_jwk(&set.keys[0]).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&["oidc-sidecar"]);
        validation.set_audience(&["api.example.com"]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "nbf"]);
        validation.validate_nbf = true;
        validation.leeway = 0;
        assert!(jsonwebtoken::decode::<Value>(&token, &key, &validation).is_ok());
        // Signed an hour ago with a 5-minute TTL: expired.
        let old = s.sign(&principal(now + 3600), "api.example.com", now - 3600).unwrap();
        let err = jsonwebtoken::decode::<Value>(&old, &key, &validation).unwrap_err();
        assert_eq!(err.kind(), &jsonwebtoken::errors::ErrorKind::ExpiredSignature);
    }

    #[test]
    fn assertion_verifies_with_only_the_jwks() {
        let s = signer();
        let token = s.sign(&principal(NOW + 3600), "api.example.com", NOW).expect("sign");
        let claims = verify(&s.jwks_json(), &token, "api.example.com", "oidc-sidecar").expect("verifies");
        assert_eq!(claims["sub"], "oid-1");
        assert_eq!(claims["oid"], "oid-1");
        assert_eq!(claims["tid"], "t1");
        assert_eq!(claims["name"], "Zoë");
        assert_eq!(claims["email"], "zoe@example.com");
        assert_eq!(claims["roles"], json!(["Admin"]));
        assert_eq!(claims["groups"], json!(["g1"]));
        assert_eq!(claims["scp"], "user.read files.write");
        assert_eq!(claims["amr"], json!(["pwd", "mfa"]));
        assert_eq!(claims["azp"], "spa-client");
        assert_eq!(claims["idtyp"], "user");
        assert_eq!(claims["auth_method"], "bearer");
        assert_eq!(claims["iat"], NOW);
        assert_eq!(claims["nbf"], NOW);
        assert_eq!(claims["exp"], NOW + 300);
        assert_eq!(claims["jti"].as_str().map(str::len), Some(32));
        assert!(claims.get("groups_overage").is_none());

        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some(s.kid()));
    }

    #[test]
    fn wrong_audience_or_issuer_or_key_is_rejected() {
        let s = signer();
        let token = s.sign(&principal(NOW + 3600), "api.example.com", NOW).unwrap();
        assert!(verify(&s.jwks_json(), &token, "other.example.com", "oidc-sidecar").is_err());
        assert!(verify(&s.jwks_json(), &token, "api.example.com", "someone-else").is_err());
        // Another sidecar's JWKS (same kid forced) does not verify it.
        let other = signer();
        let forged_jwks = other.jwks_json().replace(other.kid(), s.kid());
        assert!(verify(&forged_jwks, &token, "api.example.com", "oidc-sidecar").is_err());
    }

    #[test]
    fn expiry_is_capped_by_the_credentials() {
        let s = signer();
        let token = s.sign(&principal(NOW + 42), "h", NOW).unwrap();
        let claims = verify(&s.jwks_json(), &token, "h", "oidc-sidecar").unwrap();
        assert_eq!(claims["exp"], NOW + 42);
        assert!(matches!(s.sign(&principal(NOW), "h", NOW), Err(AssertionError::Expired)));
        assert!(matches!(s.sign(&principal(NOW - 5), "h", NOW), Err(AssertionError::Expired)));
    }

    #[test]
    fn app_only_callers_have_no_scp() {
        let Value::Object(claims) = json!({ "oid": "sp", "sub": "sp", "idtyp": "app", "roles": ["Jobs.Run"] }) else {
            unreachable!()
        };
        let p = Principal::from_claims(&claims, NOW + 3600, AuthMethod::Bearer);
        let s = signer();
        let c = verify(&s.jwks_json(), &s.sign(&p, "h", NOW).unwrap(), "h", "oidc-sidecar").unwrap();
        assert!(c.get("scp").is_none());
        assert_eq!(c["idtyp"], "app");
        assert_eq!(c["roles"], json!(["Jobs.Run"]));
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint_and_stable_for_a_pem() {
        let pem = AssertionSigner::generate_pem().unwrap();
        let a = AssertionSigner::from_pem(&pem, "i".into(), Duration::from_secs(60)).unwrap();
        let b = AssertionSigner::from_pem(&pem, "i".into(), Duration::from_secs(60)).unwrap();
        assert_eq!(a.kid(), b.kid());
        assert_eq!(a.jwks_json(), b.jwks_json());
        let set: JwkSet = serde_json::from_str(&a.jwks_json()).unwrap();
        assert_eq!(set.keys[0].thumbprint(ThumbprintHash::SHA256).unwrap(), a.kid());
        let doc: Value = serde_json::from_str(&a.jwks_json()).unwrap();
        let k = &doc["keys"][0];
        assert_eq!(
            (k["kty"].as_str(), k["crv"].as_str(), k["use"].as_str(), k["alg"].as_str()),
            (Some("EC"), Some("P-256"), Some("sig"), Some("ES256"))
        );
        assert!(k.get("d").is_none(), "the private key must never be published");
        assert_ne!(a.kid(), signer().kid());
    }

    #[test]
    fn sec1_pem_is_accepted_and_garbage_is_refused() {
        let secret = SecretKey::random(&mut rand::rngs::OsRng);
        let sec1 = secret.to_sec1_pem(LineEnding::LF).unwrap();
        let s = AssertionSigner::from_pem(&sec1, "i".into(), Duration::from_secs(60)).unwrap();
        let token = s.sign(&principal(NOW + 100), "h", NOW).unwrap();
        assert!(verify(&s.jwks_json(), &token, "h", "i").is_ok());

        let err = AssertionSigner::from_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "i".into(),
            Duration::from_secs(60),
        )
        .unwrap_err();
        assert!(matches!(err, AssertionError::Key(_)));
        assert!(!err.to_string().contains("AAAA"));
        assert!(!format!("{s:?}").contains("PRIVATE"));
    }

    #[test]
    fn cached_assertions_are_reused_until_half_their_life() {
        let s = signer(); // ttl 300 s
        let p = principal(NOW + 3600);
        let key = [7u8; 32];
        let first = s.sign_cached(&key, &p, "h", NOW).unwrap();
        assert!(Arc::ptr_eq(&first, &s.sign_cached(&key, &p, "h", NOW + 1).unwrap()));
        assert!(Arc::ptr_eq(&first, &s.sign_cached(&key, &p, "h", NOW + 150).unwrap()));
        let renewed = s.sign_cached(&key, &p, "h", NOW + 151).unwrap();
        assert_ne!(&*first, &*renewed);
        let claims = verify(&s.jwks_json(), &renewed, "h", "oidc-sidecar").unwrap();
        assert_eq!(claims["iat"], NOW + 151);
        // Another key (another token or host) gets its own assertion.
        let other = s.sign_cached(&[8u8; 32], &p, "h", NOW + 151).unwrap();
        assert_ne!(&*other, &*renewed);
        // An expired principal is refused even when nothing is cached.
        assert!(matches!(s.sign_cached(&[9u8; 32], &principal(NOW), "h", NOW), Err(AssertionError::Expired)));
    }
}
