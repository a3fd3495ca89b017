//! Access-token and ID-token verification.
//!
//! Order matters for cost and for safety: bound the size, check the compact shape, then read the JOSE header with
//! our own strict parser and refuse every header that asks for something we do not do (`none`, HMAC, keys carried
//! by the token, critical extensions, unencoded payloads, Graph's nonce scheme) *before* any key lookup or
//! signature work. The signature and the registered claims are then checked by `jsonwebtoken` (aws-lc), and the
//! claims a second time by our own exact comparisons, which also produce the precise reasons for
//! `error_description`: a developer reading a 401 should learn which value was wrong and which would be right.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::cache::{cache_key, TokenCache, DEFAULT_CAPACITY};
use super::jwks::{family_name, family_of, KeyEntry, KeyLookup};
use super::KeyStore;
use crate::config::ProviderConfig;

/// Larger tokens are refused before any parsing. An Entra token with 200 groups (the overage limit) is ~12 KB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// A `kid` is a lookup key, nothing more; anything longer than this is not one.
const MAX_KID_BYTES: usize = 256;
/// How long a request made while the sidecar's first key fetch is still running waits for it (then 503).
const FIRST_FETCH_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// Audiences of Microsoft Graph access tokens (v2 GUID form and v1 URI forms).
pub const GRAPH_AUDIENCES: [&str; 3] =
    ["00000003-0000-0000-c000-000000000000", "https://graph.microsoft.com", "https://graph.microsoft.com/"];

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    pub claims: Map<String, Value>,
    /// `exp`, unix seconds.
    pub expires_at: i64,
    pub kid: Option<String>,
    pub alg: String,
}

/// Why a token was refused. [`TokenError::description`] is the sentence for `error_description` and the JSON body;
/// values taken from the token are sanitised (printable ASCII, no quotes, bounded length) so they are safe inside a
/// `WWW-Authenticate` quoted string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is {len} bytes, more than the {max} accepted")]
    TooLarge { len: usize, max: usize },
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("token is encrypted (JWE); a signed JWT (JWS) is expected")]
    Encrypted,
    #[error("token is not signed (alg {0})")]
    AlgNone(String),
    #[error(
        "token is signed with {0}, a shared-secret algorithm; only the provider's public-key signatures are accepted"
    )]
    Hmac(String),
    #[error("algorithm {alg} is not accepted (accepted: {accepted})")]
    AlgorithmNotAccepted { alg: String, accepted: String },
    #[error("token header carries key material ({0}); keys are only taken from the provider's JWKS")]
    EmbeddedKey(&'static str),
    #[error("token header marks extensions critical that are not supported (crit: {0})")]
    Critical(String),
    #[error("token uses the b64 header (unencoded payload, RFC 7797), which is not supported")]
    UnencodedPayload,
    #[error("this is a Microsoft Graph token: it is meant for graph.microsoft.com and cannot be verified by this API; request a token for one of the accepted audiences: {accepted}")]
    GraphToken { accepted: String },
    #[error("unknown key id {0}")]
    UnknownKid(String),
    #[error("token has no key id (kid) and the provider publishes {0} keys")]
    NoKid(usize),
    #[error("key {kid} is an {key_family} key and cannot verify {alg}")]
    KeyMismatch { kid: String, key_family: &'static str, alg: String },
    #[error("signature does not verify with key {0}")]
    BadSignature(String),
    #[error("token expired {}", ago(*.0))]
    Expired(i64),
    #[error("token is not valid yet (nbf is {} in the future)", human_duration(*.0))]
    NotYetValid(i64),
    #[error("token was issued in the future (iat is {} ahead of this server's clock)", human_duration(*.0))]
    IssuedInFuture(i64),
    #[error("token has no {0} claim")]
    MissingClaim(&'static str),
    #[error("claim {claim} {why}")]
    InvalidClaim { claim: String, why: String },
    #[error("issuer {iss} is not accepted (accepted: {accepted})")]
    Issuer { iss: String, accepted: String },
    #[error("audience {aud} is not accepted (accepted: {accepted})")]
    Audience { aud: String, accepted: String },
    #[error("tenant {tid} is not accepted (required: {required})")]
    Tenant { tid: String, required: String },
    #[error("ID token nonce does not match the login request")]
    Nonce,
    #[error("ID token {0}")]
    AuthorizedParty(String),
    #[error("signing keys are not available: {0}")]
    KeysUnavailable(String),
}

impl TokenError {
    /// The precise human reason, for `error_description` and JSON bodies.
    pub fn description(&self) -> String {
        self.to_string()
    }

    /// A short, bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            TokenError::TooLarge { .. } => "too_large",
            TokenError::Malformed(_) => "malformed",
            TokenError::Encrypted => "encrypted",
            TokenError::AlgNone(_) => "alg_none",
            TokenError::Hmac(_) => "alg_hmac",
            TokenError::AlgorithmNotAccepted { .. } => "algorithm",
            TokenError::EmbeddedKey(_) => "embedded_key",
            TokenError::Critical(_) => "crit",
            TokenError::UnencodedPayload => "b64",
            TokenError::GraphToken { .. } => "graph_token",
            TokenError::UnknownKid(_) => "unknown_kid",
            TokenError::NoKid(_) => "no_kid",
            TokenError::KeyMismatch { .. } => "key_mismatch",
            TokenError::BadSignature(_) => "signature",
            TokenError::Expired(_) => "expired",
            TokenError::NotYetValid(_) => "not_yet_valid",
            TokenError::IssuedInFuture(_) => "iat_future",
            TokenError::MissingClaim(_) => "missing_claim",
            TokenError::InvalidClaim { .. } => "invalid_claim",
            TokenError::Issuer { .. } => "issuer",
            TokenError::Audience { .. } => "audience",
            TokenError::Tenant { .. } => "tenant",
            TokenError::Nonce => "nonce",
            TokenError::AuthorizedParty(_) => "azp",
            TokenError::KeysUnavailable(_) => "keys_unavailable",
        }
    }

    /// Keys are not loaded yet: the answer is 503 (try again), not 401 (your token is bad).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, TokenError::KeysUnavailable(_))
    }
}

// === durations and sanitising ===

/// "45 s", "3 min", "2 h 5 min", "3 days".
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        format!("{s} s")
    } else if s < 2 * 3600 {
        format!("{} min", s / 60)
    } else if s < 2 * 86400 {
        match (s / 3600, (s % 3600) / 60) {
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m} min"),
        }
    } else {
        format!("{} days", s / 86400)
    }
}

fn ago(secs: i64) -> String {
    format!("{} ago", human_duration(secs))
}

/// A value from the token, made safe for a header's quoted string and bounded in length.
pub fn show(s: &str) -> String {
    const MAX: usize = 100;
    let mut out: String = s
        .chars()
        .take(MAX)
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '?' })
        .collect();
    if s.chars().count() > MAX {
        out.push_str("...");
    }
    out
}

fn show_value(v: &Value) -> String {
    match v {
        Value::String(s) => show(s),
        Value::Array(items) if items.is_empty() => "[] (empty)".to_string(),
        Value::Array(items) => items.iter().map(show_value).collect::<Vec<_>>().join(", "),
        other => show(&other.to_string()),
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none configured".to_string()
    } else {
        items.join(", ")
    }
}

pub fn unix_now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

// === structure and header ===

/// The three base64url parts of a compact JWS.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    pub header: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
    /// `header.payload`: what the signature covers.
    pub signing_input: &'a str,
}

/// Size bound and compact-serialization shape: three non-empty base64url parts (JWE has five).
pub fn split_compact(token: &str) -> Result<Parts<'_>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge { len: token.len(), max: MAX_TOKEN_BYTES });
    }
    if token.is_empty() {
        return Err(TokenError::Malformed("empty token".into()));
    }
    if !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
        return Err(TokenError::Malformed(
            "characters outside base64url (padding, '+', '/', spaces or quotes?)".into(),
        ));
    }
    let mut it = token.split('.');
    let parts: [Option<&str>; 6] = [it.next(), it.next(), it.next(), it.next(), it.next(), it.next()];
    match parts {
        [Some(h), Some(p), Some(s), None, ..] => {
            if h.is_empty() || p.is_empty() {
                return Err(TokenError::Malformed("empty header or payload".into()));
            }
            let signing_input = &token[..h.len() + 1 + p.len()];
            Ok(Parts { header: h, payload: p, signature: s, signing_input })
        }
        [Some(_), Some(_), Some(_), Some(_), Some(_), None] => Err(TokenError::Encrypted),
        _ => Err(TokenError::Malformed("not a JWT (expected three dot-separated parts)".into())),
    }
}

/// A JSON object whose members must be unique: a token with `"aud"` twice is refused, because two parsers could
/// each believe a different one (first-wins vs last-wins).
#[derive(Debug, Clone, PartialEq)]
pub struct StrictObject(pub Map<String, Value>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictObject;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StrictObject, A::Error> {
                let mut map = Map::new();
                while let Some((k, v)) = access.next_entry::<String, Value>()? {
                    if map.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!("duplicate member {}", show(&k))));
                    }
                    map.insert(k, v);
                }
                Ok(StrictObject(map))
            }
        }
        d.deserialize_map(V)
    }
}

fn decode_object(part: &str, what: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes =
        URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed(format!("{what} is not valid base64url")))?;
    serde_json::from_slice::<StrictObject>(&bytes)
        .map(|o| o.0)
        .map_err(|e| TokenError::Malformed(format!("{what} is not a JSON object ({e})")))
}

/// The claims, unverified: for messages about a token already refused, and for `explain`.
pub fn unverified_claims(parts: &Parts<'_>) -> Result<Map<String, Value>, TokenError> {
    decode_object(parts.payload, "payload")
}

/// What the header says, once it passed [`check_header`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoseHeader {
    pub alg: Algorithm,
    pub alg_name: String,
    pub kid: Option<String>,
    pub typ: Option<String>,
}

/// Parses the JOSE header and refuses everything the verifier does not do. `accepted` is the configured list.
pub fn check_header(parts: &Parts<'_>, accepted: &[Algorithm]) -> Result<JoseHeader, TokenError> {
    let header = decode_object(parts.header, "header")?;
    // Graph first: its header is otherwise normal, and the useful answer is "wrong token", not "bad signature".
    if header.contains_key("nonce") {
        return Err(TokenError::GraphToken { accepted: String::new() });
    }
    let alg_name = match header.get("alg") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(TokenError::Malformed("header alg is not a string".into())),
        None => return Err(TokenError::Malformed("header has no alg".into())),
    };
    if alg_name.eq_ignore_ascii_case("none") {
        return Err(TokenError::AlgNone(show(&alg_name)));
    }
    if alg_name.len() >= 2 && alg_name[..2].eq_ignore_ascii_case("HS") {
        return Err(TokenError::Hmac(show(&alg_name)));
    }
    if header.contains_key("enc") || header.contains_key("zip") {
        return Err(TokenError::Encrypted);
    }
    for param in ["jwk", "jku", "x5u", "x5c"] {
        if header.contains_key(param) {
            return Err(TokenError::EmbeddedKey(param));
        }
    }
    if let Some(crit) = header.get("crit") {
        // We implement no extension, so any `crit` (RFC 7515 §4.1.11) invalidates the token.
        return Err(TokenError::Critical(show_value(crit)));
    }
    if header.contains_key("b64") {
        return Err(TokenError::UnencodedPayload);
    }
    let alg: Algorithm = alg_name
        .parse()
        .map_err(|_| TokenError::AlgorithmNotAccepted { alg: show(&alg_name), accepted: alg_list(accepted) })?;
    if !accepted.contains(&alg) {
        return Err(TokenError::AlgorithmNotAccepted { alg: show(&alg_name), accepted: alg_list(accepted) });
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) if !k.is_empty() && k.len() <= MAX_KID_BYTES => Some(k.clone()),
        Some(_) => return Err(TokenError::Malformed("header kid is not a short string".into())),
    };
    let typ = header.get("typ").and_then(Value::as_str).map(str::to_string);
    Ok(JoseHeader { alg, alg_name, kid, typ })
}

fn alg_list(algs: &[Algorithm]) -> String {
    if algs.is_empty() {
        return "none configured".into();
    }
    algs.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ")
}

// === claim checks (pure; the verifier and `explain` both use them) ===

/// A NumericDate: a JSON number (integer or finite non-negative float), never a string.
pub fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                if i >= 0 {
                    return Ok(Some(i));
                }
            } else if let Some(f) = n.as_f64() {
                if (0.0..1e15).contains(&f) {
                    return Ok(Some(f.floor() as i64));
                }
            }
            Err(TokenError::InvalidClaim { claim: name.into(), why: "is not a valid timestamp".into() })
        }
        Some(_) => Err(TokenError::InvalidClaim { claim: name.into(), why: "is not a number".into() }),
    }
}

/// `exp` required and not past (with `skew`), `nbf` and `iat` not in the future (with `skew`). Returns `exp`.
pub fn check_times(claims: &Map<String, Value>, now: i64, skew: i64, require_iat: bool) -> Result<i64, TokenError> {
    let exp = numeric_date(claims, "exp")?.ok_or(TokenError::MissingClaim("exp"))?;
    if now > exp.saturating_add(skew) {
        return Err(TokenError::Expired(now - exp));
    }
    if let Some(nbf) = numeric_date(claims, "nbf")? {
        if nbf > now.saturating_add(skew) {
            return Err(TokenError::NotYetValid(nbf - now));
        }
    }
    match numeric_date(claims, "iat")? {
        Some(iat) if iat > now.saturating_add(skew) => return Err(TokenError::IssuedInFuture(iat - now)),
        None if require_iat => return Err(TokenError::MissingClaim("iat")),
        _ => {}
    }
    Ok(exp)
}

/// `iss` is a string equal to one of `accepted` (no normalisation: trailing slashes and case matter).
pub fn check_issuer(claims: &Map<String, Value>, accepted: &[String]) -> Result<(), TokenError> {
    match claims.get("iss") {
        None => Err(TokenError::MissingClaim("iss")),
        Some(Value::String(iss)) if accepted.iter().any(|a| a == iss) => Ok(()),
        Some(Value::String(iss)) => Err(TokenError::Issuer { iss: show(iss), accepted: list(accepted) }),
        Some(_) => Err(TokenError::InvalidClaim { claim: "iss".into(), why: "is not a string".into() }),
    }
}

fn audiences_of(claims: &Map<String, Value>) -> Result<Vec<&str>, TokenError> {
    match claims.get("aud") {
        None => Err(TokenError::MissingClaim("aud")),
        Some(Value::String(a)) => Ok(vec![a.as_str()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str())
            .collect::<Option<Vec<&str>>>()
            .ok_or_else(|| TokenError::InvalidClaim { claim: "aud".into(), why: "holds a non-string".into() }),
        Some(_) => Err(TokenError::InvalidClaim { claim: "aud".into(), why: "is not a string or array".into() }),
    }
}

/// `aud` (a string, or an array holding at least one) equals one of `accepted` exactly. A Graph audience gets the
/// Graph explanation.
pub fn check_audience(claims: &Map<String, Value>, accepted: &[String]) -> Result<(), TokenError> {
    let auds = audiences_of(claims)?;
    if auds.iter().any(|a| accepted.iter().any(|x| x == a)) {
        return Ok(());
    }
    if auds.iter().any(|a| GRAPH_AUDIENCES.contains(a)) {
        return Err(TokenError::GraphToken { accepted: list(accepted) });
    }
    let shown = if auds.is_empty() {
        "[] (empty)".to_string()
    } else {
        auds.iter().map(|a| show(a)).collect::<Vec<_>>().join(", ")
    };
    Err(TokenError::Audience { aud: shown, accepted: list(accepted) })
}

/// Someone the token is about: `sub` (OpenID Connect, RFC 9068) or Entra's `oid`, as a non-empty string. The
/// upstream's identity headers are keyed on it, so a token naming nobody is refused rather than forwarded as "".
pub fn check_subject(claims: &Map<String, Value>) -> Result<(), TokenError> {
    let named = |k: &str| claims.get(k).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    if named("sub") || named("oid") {
        Ok(())
    } else {
        Err(TokenError::MissingClaim("sub"))
    }
}

/// `tid` equals the required tenant when one is configured.
pub fn check_tenant(claims: &Map<String, Value>, required: Option<&str>) -> Result<(), TokenError> {
    let Some(required) = required else { return Ok(()) };
    match claims.get("tid") {
        Some(Value::String(tid)) if tid == required => Ok(()),
        Some(Value::String(tid)) => Err(TokenError::Tenant { tid: show(tid), required: required.to_string() }),
        Some(_) => Err(TokenError::InvalidClaim { claim: "tid".into(), why: "is not a string".into() }),
        None => Err(TokenError::MissingClaim("tid")),
    }
}

/// ID token audience rules (OpenID Connect Core §3.1.3.7): our client id among `aud`; `azp`, when present, is our
/// client id; several audiences require `azp`.
pub fn check_id_audience(claims: &Map<String, Value>, client_id: &str) -> Result<(), TokenError> {
    let auds = audiences_of(claims)?;
    if !auds.contains(&client_id) {
        let shown = auds.iter().map(|a| show(a)).collect::<Vec<_>>().join(", ");
        return Err(TokenError::Audience { aud: shown, accepted: client_id.to_string() });
    }
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == client_id => Ok(()),
        Some(Value::String(azp)) => Err(TokenError::AuthorizedParty(format!(
            "was issued to another client (azp {}, expected {client_id})",
            show(azp)
        ))),
        Some(_) => Err(TokenError::InvalidClaim { claim: "azp".into(), why: "is not a string".into() }),
        None if auds.len() > 1 => Err(TokenError::AuthorizedParty("has several audiences but no azp".into())),
        None => Ok(()),
    }
}

fn check_nonce(claims: &Map<String, Value>, expected: &str) -> Result<(), TokenError> {
    use subtle::ConstantTimeEq;
    match claims.get("nonce") {
        Some(Value::String(n)) if !expected.is_empty() && bool::from(n.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
        Some(Value::String(_)) => Err(TokenError::Nonce),
        Some(_) => Err(TokenError::InvalidClaim { claim: "nonce".into(), why: "is not a string".into() }),
        None => Err(TokenError::MissingClaim("nonce")),
    }
}

// === the verifier ===

#[derive(Clone, Copy)]
enum Expect<'a> {
    Access,
    Id { nonce: &'a str },
}

/// Verifies tokens against one provider's configuration and the keys of its [`KeyStore`].
pub struct Verifier {
    keys: Arc<KeyStore>,
    /// Configured algorithms minus anything symmetric (config refuses HS*, this makes it structural).
    algorithms: Vec<Algorithm>,
    /// One `Validation` per key family: jsonwebtoken requires every algorithm it allows to fit the key.
    access: Vec<(AlgorithmFamily, Validation)>,
    id: Vec<(AlgorithmFamily, Validation)>,
    issuers: Vec<String>,
    id_issuers: Vec<String>,
    audiences: Vec<String>,
    client_id: String,
    required_tenant: Option<String>,
    skew: i64,
    cache: TokenCache,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.algorithms)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    pub fn new(cfg: &ProviderConfig, keys: Arc<KeyStore>) -> Verifier {
        let algorithms: Vec<Algorithm> = cfg
            .algorithms
            .iter()
            .copied()
            .filter(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
            .collect();
        let skew = cfg.clock_skew.as_secs().min(3600);
        let mut issuers = vec![cfg.issuer.clone()];
        issuers.extend(cfg.extra_issuers.iter().cloned());
        let id_issuers = vec![cfg.issuer.clone()];
        let validations = |issuers: &[String], audiences: &[String]| {
            [AlgorithmFamily::Rsa, AlgorithmFamily::Ec, AlgorithmFamily::Ed]
                .into_iter()
                .filter_map(|family| {
                    let algs: Vec<Algorithm> = algorithms.iter().copied().filter(|a| family_of(*a) == family).collect();
                    let first = *algs.first()?;
                    let mut v = Validation::new(first);
                    v.algorithms = algs;
                    v.set_required_spec_claims(&["exp", "iss", "aud"]);
                    v.validate_exp = true;
                    v.validate_nbf = true;
                    v.validate_aud = true;
                    v.leeway = skew;
                    v.set_issuer(issuers);
                    v.set_audience(audiences);
                    Some((family, v))
                })
                .collect::<Vec<_>>()
        };
        let access = validations(&issuers, &cfg.audiences);
        let id = validations(&id_issuers, std::slice::from_ref(&cfg.client_id));
        Verifier {
            keys,
            algorithms,
            access,
            id,
            issuers,
            id_issuers,
            audiences: cfg.audiences.clone(),
            client_id: cfg.client_id.clone(),
            required_tenant: cfg.required_tenant.clone(),
            skew: skew as i64,
            cache: TokenCache::new(DEFAULT_CAPACITY),
        }
    }

    pub fn key_store(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// Accepted access-token audiences (for messages).
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// Accepted access-token issuers.
    pub fn issuers(&self) -> &[String] {
        &self.issuers
    }

    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    pub fn clock_skew(&self) -> i64 {
        self.skew
    }

    pub fn required_tenant(&self) -> Option<&str> {
        self.required_tenant.as_deref()
    }

    /// A Bearer access token: cached verdicts first (a hit costs a SHA-256 and a map lookup), then every check.
    pub async fn verify_access_token(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenError> {
        let result = self.verify_access_inner(token).await;
        crate::metrics::verification(match &result {
            Ok((_, true)) => "cached",
            Ok((_, false)) => "ok",
            Err(e) => e.kind(),
        });
        result.map(|(t, _)| t)
    }

    async fn verify_access_inner(&self, token: &str) -> Result<(Arc<VerifiedToken>, bool), TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge { len: token.len(), max: MAX_TOKEN_BYTES });
        }
        let key = cache_key(token);
        if let Some(hit) = self.cache.get(&key, unix_now()) {
            if self.key_still_published(&hit) {
                return Ok((hit, true));
            }
            // The key was withdrawn (compromise, emergency rotation): the verdict no longer holds.
            self.cache.invalidate(&key);
        }
        // Boxed: a miss (signature check, perhaps a JWKS fetch) is the cold path, and its future would otherwise
        // make every request's future (allocated and copied by the gateway per request) as large as its own.
        let verified = Arc::new(Box::pin(self.verify_uncached(token, Expect::Access)).await?);
        self.cache.insert(key, verified.clone());
        Ok((verified, false))
    }

    /// Every check, ignoring and not filling the cache: for benchmarks and `explain`. Not counted in metrics.
    pub async fn verify_access_token_uncached(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        self.verify_uncached(token, Expect::Access).await
    }

    fn key_still_published(&self, token: &VerifiedToken) -> bool {
        match (self.keys.keys(), token.kid.as_deref()) {
            (Some(set), Some(kid)) => matches!(set.select(Some(kid)), KeyLookup::Found(_)),
            (Some(set), None) => matches!(set.select(None), KeyLookup::Found(_)),
            (None, _) => false,
        }
    }

    /// An ID token from the code flow: same header and signature rules; `aud` = our client id (with `azp` rules),
    /// `iss` = the configured issuer, `nonce` = the one sent with the login, `iat` required. Never cached.
    pub async fn verify_id_token(&self, token: &str, expected_nonce: &str) -> Result<VerifiedToken, TokenError> {
        let result = self.verify_uncached(token, Expect::Id { nonce: expected_nonce }).await;
        crate::metrics::verification(match &result {
            Ok(_) => "id_ok",
            Err(e) => e.kind(),
        });
        result
    }

    async fn verify_uncached(&self, token: &str, expect: Expect<'_>) -> Result<VerifiedToken, TokenError> {
        let parts = split_compact(token)?;
        let header = check_header(&parts, &self.algorithms).map_err(|e| self.with_audiences(e))?;
        let entry = self.find_key(&header).await?;
        let kid_shown = header.kid.as_deref().map(show).unwrap_or_else(|| "(no kid)".into());
        if !entry.fits(header.alg) {
            return Err(TokenError::KeyMismatch {
                kid: kid_shown,
                key_family: entry.family_name(),
                alg: header.alg_name.clone(),
            });
        }
        let validations = match expect {
            Expect::Access => &self.access,
            Expect::Id { .. } => &self.id,
        };
        let family = family_of(header.alg);
        let Some((_, validation)) = validations.iter().find(|(f, _)| *f == family) else {
            // Unreachable: check_header accepted the alg, so its family has a validation.
            return Err(TokenError::AlgorithmNotAccepted {
                alg: header.alg_name.clone(),
                accepted: alg_list(&self.algorithms),
            });
        };
        let claims = match jsonwebtoken::decode::<StrictObject>(token, &entry.key, validation) {
            Ok(data) => data.claims.0,
            Err(e) => return Err(self.explain_decode_error(e, &parts, &header, &kid_shown, expect)),
        };
        let expires_at = self.check_claims(&claims, expect)?;
        Ok(VerifiedToken { claims, expires_at, kid: header.kid, alg: header.alg_name })
    }

    /// Our own checks, after jsonwebtoken's (belt and braces, and they also hold for `iat` and `tid`, which it
    /// does not check). Returns `exp`.
    fn check_claims(&self, claims: &Map<String, Value>, expect: Expect<'_>) -> Result<i64, TokenError> {
        let now = unix_now();
        match expect {
            Expect::Access => {
                let exp = check_times(claims, now, self.skew, false)?;
                check_issuer(claims, &self.issuers)?;
                check_audience(claims, &self.audiences)?;
                check_tenant(claims, self.required_tenant.as_deref())?;
                check_subject(claims)?;
                Ok(exp)
            }
            Expect::Id { nonce } => {
                let exp = check_times(claims, now, self.skew, true)?;
                check_issuer(claims, &self.id_issuers)?;
                check_id_audience(claims, &self.client_id)?;
                check_nonce(claims, nonce)?;
                check_tenant(claims, self.required_tenant.as_deref())?;
                match claims.get("sub").and_then(Value::as_str) {
                    Some(s) if !s.is_empty() => {}
                    _ => return Err(TokenError::MissingClaim("sub")),
                }
                Ok(exp)
            }
        }
    }

    fn with_audiences(&self, e: TokenError) -> TokenError {
        match e {
            TokenError::GraphToken { .. } => TokenError::GraphToken { accepted: list(&self.audiences) },
            other => other,
        }
    }

    /// The key for this header, refetching the JWKS once (subject to the key store's cooldown) for an unknown kid.
    async fn find_key(&self, header: &JoseHeader) -> Result<Arc<KeyEntry>, TokenError> {
        if !self.keys.ready() {
            self.keys.wait_first_fetch(FIRST_FETCH_WAIT).await;
        }
        let Some(set) = self.keys.keys() else {
            return Err(TokenError::KeysUnavailable(
                self.keys.unavailable_reason().unwrap_or_else(|| "keys not loaded".into()),
            ));
        };
        match set.select(header.kid.as_deref()) {
            KeyLookup::Found(entry) => return Ok(entry.clone()),
            KeyLookup::NoKid(n) => return Err(TokenError::NoKid(n)),
            KeyLookup::UnknownKid => {}
        }
        self.keys.refetch_for_unknown_kid().await;
        let set = self.keys.keys().unwrap_or(set);
        match set.select(header.kid.as_deref()) {
            KeyLookup::Found(entry) => Ok(entry.clone()),
            KeyLookup::NoKid(n) => Err(TokenError::NoKid(n)),
            KeyLookup::UnknownKid => Err(TokenError::UnknownKid(header.kid.as_deref().map(show).unwrap_or_default())),
        }
    }

    /// Turns jsonwebtoken's coarse error into the precise reason, using our own checks on the (already refused)
    /// claims; falls back to a generic reason if they disagree.
    fn explain_decode_error(
        &self,
        e: jsonwebtoken::errors::Error,
        parts: &Parts<'_>,
        header: &JoseHeader,
        kid: &str,
        expect: Expect<'_>,
    ) -> TokenError {
        let claims = unverified_claims(parts);
        let precise = |claims: &Map<String, Value>| -> Option<TokenError> {
            let now = unix_now();
            let require_iat = matches!(expect, Expect::Id { .. });
            let r = match e.kind() {
                ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => {
                    check_times(claims, now, self.skew, require_iat).err()
                }
                ErrorKind::InvalidIssuer => match expect {
                    Expect::Access => check_issuer(claims, &self.issuers).err(),
                    Expect::Id { .. } => check_issuer(claims, &self.id_issuers).err(),
                },
                ErrorKind::InvalidAudience => match expect {
                    Expect::Access => check_audience(claims, &self.audiences).err(),
                    Expect::Id { .. } => check_id_audience(claims, &self.client_id).err(),
                },
                ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
                    check_times(claims, now, self.skew, false)
                        .err()
                        .or_else(|| check_issuer(claims, &self.issuers).err())
                        .or_else(|| audiences_of(claims).err())
                }
                ErrorKind::InvalidSignature => {
                    // A Graph token without its nonce header still fails here: say what it is.
                    match audiences_of(claims) {
                        Ok(auds) if auds.iter().any(|a| GRAPH_AUDIENCES.contains(a)) => {
                            Some(TokenError::GraphToken { accepted: list(&self.audiences) })
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
            r
        };
        if let Ok(claims) = &claims {
            if let Some(precise) = precise(claims) {
                return precise;
            }
        }
        match e.into_kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature(kid.to_string()),
            ErrorKind::ExpiredSignature => TokenError::Expired(0),
            ErrorKind::ImmatureSignature => TokenError::NotYetValid(0),
            ErrorKind::InvalidIssuer => {
                TokenError::Issuer { iss: "(unreadable)".into(), accepted: list(&self.issuers) }
            }
            ErrorKind::InvalidAudience => {
                TokenError::Audience { aud: "(unreadable)".into(), accepted: list(&self.audiences) }
            }
            ErrorKind::MissingRequiredClaim(c) => match c.as_str() {
                "iss" => TokenError::MissingClaim("iss"),
                "aud" => TokenError::MissingClaim("aud"),
                _ => TokenError::MissingClaim("exp"),
            },
            ErrorKind::InvalidClaimFormat(c) => {
                TokenError::InvalidClaim { claim: show(&c), why: "has the wrong type".into() }
            }
            ErrorKind::InvalidAlgorithm => TokenError::KeyMismatch {
                kid: kid.to_string(),
                key_family: family_name(family_of(header.alg)),
                alg: header.alg_name.clone(),
            },
            ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidKeyFormat => TokenError::BadSignature(kid.to_string()),
            ErrorKind::Json(_) | ErrorKind::Utf8(_) | ErrorKind::Base64(_) | ErrorKind::InvalidToken => match claims {
                Err(precise) => precise,
                Ok(_) => TokenError::Malformed("payload is not a valid JSON object".into()),
            },
            other => TokenError::Malformed(format!("{other:?}")),
        }
    }
}

#[cfg(test)]
mod tests;
