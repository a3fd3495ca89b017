//! A provider's JWKS turned into verification keys, parsed once per fetch so a request only does a map lookup.
//!
//! Parsing is lenient per key and strict per set: one key of an unknown type or an encryption key is skipped (a
//! provider may publish keys we do not use, and one odd entry must not take every key down), but a set with no
//! usable signing key is an error, so the last good set stays in place. Symmetric (`oct`) keys are never loaded:
//! a JWKS is public, and an HMAC key from it would let anyone sign.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::Value;

/// More keys than any provider publishes (Entra: a handful); bounds memory and lookup work.
pub const MAX_KEYS: usize = 100;

/// One verification key.
#[derive(Clone)]
pub struct KeyEntry {
    pub key: DecodingKey,
    pub family: AlgorithmFamily,
    /// The one algorithm this key may verify, when the JWK says (`alg`) or its curve implies it (P-256 → ES256).
    pub alg: Option<Algorithm>,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry").field("family", &self.family).field("alg", &self.alg).finish()
    }
}

impl KeyEntry {
    /// Can this key verify a signature made with `alg`?
    pub fn fits(&self, alg: Algorithm) -> bool {
        self.family == family_of(alg) && self.alg.is_none_or(|a| a == alg)
    }

    pub fn family_name(&self) -> &'static str {
        family_name(self.family)
    }
}

pub fn family_of(alg: Algorithm) -> AlgorithmFamily {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => AlgorithmFamily::Hmac,
        Algorithm::ES256 | Algorithm::ES384 => AlgorithmFamily::Ec,
        Algorithm::EdDSA => AlgorithmFamily::Ed,
        _ => AlgorithmFamily::Rsa,
    }
}

pub fn family_name(family: AlgorithmFamily) -> &'static str {
    match family {
        AlgorithmFamily::Hmac => "symmetric",
        AlgorithmFamily::Rsa => "RSA",
        AlgorithmFamily::Ec => "EC",
        AlgorithmFamily::Ed => "EdDSA (OKP)",
    }
}

/// The outcome of looking up the key for a token.
#[derive(Debug)]
pub enum KeyLookup<'a> {
    Found(&'a Arc<KeyEntry>),
    /// The token names a `kid` the set does not have.
    UnknownKid,
    /// The token names no `kid` and the set has this many keys, so none can be chosen.
    NoKid(usize),
}

/// The usable keys of one JWKS.
#[derive(Debug, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<KeyEntry>>,
    /// Keys published without a `kid`.
    anonymous: Vec<Arc<KeyEntry>>,
    /// Why some published keys were not loaded (for logs and `explain`).
    pub skipped: Vec<String>,
}

impl KeySet {
    /// Parses a JWKS document. Errors only when nothing usable is in it.
    pub fn parse(body: &[u8]) -> Result<KeySet, String> {
        let doc: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        let keys = doc.get("keys").and_then(Value::as_array).ok_or("no \"keys\" array")?;
        let mut set = KeySet::default();
        for (i, raw) in keys.iter().take(MAX_KEYS).enumerate() {
            let kid = raw.get("kid").and_then(Value::as_str).map(str::to_string);
            let name = kid.clone().unwrap_or_else(|| format!("#{i}"));
            match load_key(raw) {
                Ok(entry) => match kid {
                    Some(kid) if set.by_kid.contains_key(&kid) => {
                        set.skipped.push(format!("{name}: duplicate kid, first one kept"));
                    }
                    Some(kid) => {
                        set.by_kid.insert(kid, Arc::new(entry));
                    }
                    None => set.anonymous.push(Arc::new(entry)),
                },
                Err(why) => set.skipped.push(format!("{name}: {why}")),
            }
        }
        if keys.len() > MAX_KEYS {
            set.skipped.push(format!("{} keys beyond the first {MAX_KEYS} ignored", keys.len() - MAX_KEYS));
        }
        if set.is_empty() {
            let why = if set.skipped.is_empty() { "the set is empty".to_string() } else { set.skipped.join("; ") };
            return Err(format!("no usable signing key ({why})"));
        }
        Ok(set)
    }

    pub fn len(&self) -> usize {
        self.by_kid.len() + self.anonymous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, kid: &str) -> Option<&Arc<KeyEntry>> {
        self.by_kid.get(kid)
    }

    /// Key ids, sorted (for messages).
    pub fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.by_kid.keys().map(String::as_str).collect();
        kids.sort_unstable();
        kids
    }

    /// The key for a token's `kid`. A provider that publishes a single key may leave `kid` out on either side:
    /// then that one key is the only candidate. With several keys, a token must name its key.
    pub fn select(&self, kid: Option<&str>) -> KeyLookup<'_> {
        if let Some(kid) = kid {
            if let Some(entry) = self.by_kid.get(kid) {
                return KeyLookup::Found(entry);
            }
        }
        if self.len() == 1 {
            if let Some(only) = self.anonymous.first() {
                return KeyLookup::Found(only);
            }
            if kid.is_none() {
                if let Some(only) = self.by_kid.values().next() {
                    return KeyLookup::Found(only);
                }
            }
        }
        match kid {
            Some(_) => KeyLookup::UnknownKid,
            None => KeyLookup::NoKid(self.len()),
        }
    }
}

fn load_key(raw: &Value) -> Result<KeyEntry, String> {
    let kty = raw.get("kty").and_then(Value::as_str).unwrap_or("?");
    if kty == "oct" {
        return Err("symmetric (oct) key refused".into());
    }
    let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|e| format!("unsupported key ({kty}): {e}"))?;
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return Err("not a signing key (use)".into());
    }
    if let Some(ops) = &jwk.common.key_operations {
        if !ops.contains(&KeyOperations::Verify) {
            return Err("key_ops does not allow verify".into());
        }
    }
    let declared = match jwk.common.key_algorithm {
        Some(ka) => {
            Some(ka.to_string().parse::<Algorithm>().map_err(|_| format!("alg {ka} is not a signature algorithm"))?)
        }
        None => None,
    };
    let (family, implied) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (AlgorithmFamily::Rsa, None),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => (AlgorithmFamily::Ec, Some(Algorithm::ES256)),
            EllipticCurve::P384 => (AlgorithmFamily::Ec, Some(Algorithm::ES384)),
            ref c => return Err(format!("curve {c:?} is not supported")),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => (AlgorithmFamily::Ed, Some(Algorithm::EdDSA)),
            ref c => return Err(format!("curve {c:?} is not supported")),
        },
        AlgorithmParameters::OctetKey(_) => return Err("symmetric (oct) key refused".into()),
        _ => return Err(format!("key type {kty} is not supported")),
    };
    if let Some(alg) = declared {
        if family_of(alg) != family || implied.is_some_and(|i| i != alg) {
            return Err(format!("alg {alg:?} does not fit a {} key", family_name(family)));
        }
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("bad key material: {e}"))?;
    Ok(KeyEntry { key, family, alg: declared.or(implied) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rsa_jwk(kid: Option<&str>) -> Value {
        // Modulus of a real 2048-bit key is not needed for parsing; any base64url bytes load.
        let mut v = json!({"kty": "RSA", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"});
        if let Some(kid) = kid {
            v["kid"] = json!(kid);
        }
        v
    }

    fn ec_jwk(kid: &str, crv: &str) -> Value {
        json!({"kty": "EC", "crv": crv, "kid": kid,
               "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})
    }

    fn parse(keys: Vec<Value>) -> Result<KeySet, String> {
        KeySet::parse(json!({ "keys": keys }).to_string().as_bytes())
    }

    #[test]
    fn selects_by_kid_and_skips_unusable_keys() {
        let set = parse(vec![
            rsa_jwk(Some("a")),
            ec_jwk("b", "P-256"),
            json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"}),
            {
                let mut enc = rsa_jwk(Some("e"));
                enc["use"] = json!("enc");
                enc
            },
            json!({"kty": "weird", "kid": "w"}),
            ec_jwk("p521", "P-521"),
        ])
        .unwrap();
        assert_eq!(set.kids(), vec!["a", "b"]);
        assert_eq!(set.skipped.len(), 4, "{:?}", set.skipped);
        assert!(set.skipped.iter().any(|s| s.starts_with("h: symmetric")));
        match set.select(Some("b")) {
            KeyLookup::Found(k) => {
                assert_eq!(k.family, AlgorithmFamily::Ec);
                assert_eq!(k.alg, Some(Algorithm::ES256));
                assert!(k.fits(Algorithm::ES256) && !k.fits(Algorithm::ES384) && !k.fits(Algorithm::RS256));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(set.select(Some("zzz")), KeyLookup::UnknownKid));
        assert!(matches!(set.select(None), KeyLookup::NoKid(2)));
    }

    #[test]
    fn single_key_without_kid_is_the_only_candidate() {
        let set = parse(vec![rsa_jwk(None)]).unwrap();
        assert!(matches!(set.select(None), KeyLookup::Found(_)));
        assert!(matches!(set.select(Some("anything")), KeyLookup::Found(_)));

        let set = parse(vec![rsa_jwk(Some("only"))]).unwrap();
        assert!(matches!(set.select(None), KeyLookup::Found(_)));
        assert!(matches!(set.select(Some("other")), KeyLookup::UnknownKid));

        let set = parse(vec![rsa_jwk(None), rsa_jwk(None)]).unwrap();
        assert!(matches!(set.select(None), KeyLookup::NoKid(2)));
    }

    #[test]
    fn declared_alg_must_fit_key() {
        let mut k = rsa_jwk(Some("a"));
        k["alg"] = json!("RS256");
        let set = parse(vec![k]).unwrap();
        let KeyLookup::Found(e) = set.select(Some("a")) else { panic!() };
        assert!(e.fits(Algorithm::RS256) && !e.fits(Algorithm::PS256));

        let mut k = rsa_jwk(Some("a"));
        k["alg"] = json!("ES256");
        assert!(parse(vec![k]).unwrap_err().contains("does not fit"));

        let mut k = rsa_jwk(Some("a"));
        k["alg"] = json!("RSA-OAEP");
        assert!(parse(vec![k]).is_err());
    }

    #[test]
    fn empty_or_broken_sets_are_errors() {
        assert!(parse(vec![]).unwrap_err().contains("empty"));
        assert!(parse(vec![json!({"kty": "oct", "k": "c2VjcmV0"})]).unwrap_err().contains("symmetric"));
        assert!(KeySet::parse(b"<html>").is_err());
        assert!(KeySet::parse(b"{\"keys\": 3}").is_err());
    }

    #[test]
    fn duplicate_kid_keeps_first() {
        let set = parse(vec![rsa_jwk(Some("a")), ec_jwk("a", "P-256")]).unwrap();
        let KeyLookup::Found(e) = set.select(Some("a")) else { panic!() };
        assert_eq!(e.family, AlgorithmFamily::Rsa);
        assert_eq!(set.skipped.len(), 1);
    }
}
