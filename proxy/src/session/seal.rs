//! Sealing: AES-256-GCM under a ring of keys, so session and login cookies can be read by every task of a
//! rolling deploy.
//!
//! Envelope (then base64url without padding): `[key id: 1 byte][nonce: 12 bytes][ciphertext + 16-byte tag]`.
//!
//! - The key id is derived from the key itself (first byte of a SHA-256 over a label and the key), not from its
//!   position in the list. During a rolling deploy the old tasks run with `[old]` and the new ones with
//!   `[new, old]`; an id taken from the index would name different keys on different tasks.
//! - Ids are one byte, so two keys of a ring can share one (1 in 256). `open` therefore tries every key with the
//!   id, never just the first.
//! - The configured bytes are never used as the AES key directly: the sealing key is an HKDF-SHA256 subkey, so a
//!   key that is also used elsewhere (or was leaked from a log of another tool) is not the cipher key itself.
//! - The `purpose` is the AEAD associated data. It binds a sealed value to what it is for (`session-v1|<name>`,
//!   `login-v1|<state prefix>`, `redis-v1|<key>`): a value sealed for one purpose never opens as another, and the
//!   version in it lets a future format refuse old values cleanly.
//! - Nonces are random (96 bits). With one key that is safe for about 2^32 seals; rotate keys long before that.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use hkdf::Hkdf;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::config::SessionConfig;

/// Length of a sealing key in bytes (AES-256).
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Smallest envelope: key id, nonce and tag around an empty plaintext.
const MIN_ENVELOPE: usize = 1 + NONCE_LEN + TAG_LEN;

const KEY_ID_LABEL: &[u8] = b"oidc-sidecar key id v1";
const HKDF_SALT: &[u8] = b"oidc-sidecar seal";
const HKDF_INFO: &[u8] = b"aes-256-gcm v1";

/// Why a configured key list cannot be used. Names the position of the bad key, never its value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyRingError {
    #[error("session.keys[{index}] is not base64 (standard or URL-safe alphabet); generate one with `openssl rand -base64 32`")]
    NotBase64 { index: usize },
    #[error("session.keys[{index}] decodes to {len} bytes, but a sealing key must be exactly 32 bytes; generate one with `openssl rand -base64 32`")]
    WrongLength { index: usize, len: usize },
}

/// Why a sealed value did not open. Every variant means "no valid value": callers treat all of them alike (no
/// session, clear the cookie); the distinction is only for logs and metrics.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed value is not base64url or too short to be an envelope")]
    Malformed,
    #[error("sealed value names a key (id {0:#04x}) that is not in the key ring (sealed by a removed or foreign key)")]
    UnknownKey(u8),
    #[error(
        "sealed value failed authentication (tampered, truncated, sealed for another purpose or by a foreign key)"
    )]
    Forged,
}

struct RingKey {
    id: u8,
    cipher: Aes256Gcm,
}

/// The sealing keys: the first seals, all open.
pub struct KeyRing {
    keys: Vec<RingKey>,
    ephemeral: bool,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("key_ids", &self.keys.iter().map(|k| k.id).collect::<Vec<_>>())
            .field("ephemeral", &self.ephemeral)
            .finish()
    }
}

impl KeyRing {
    /// Builds the ring from `session.keys` (base64, standard or URL-safe alphabet, padding optional, 32 bytes
    /// each). With no key configured the ring holds one random key and [`KeyRing::is_ephemeral`] is true: the
    /// caller must warn, because sessions then die with the task and are not shared between tasks.
    pub fn from_config(cfg: &SessionConfig) -> Result<KeyRing, KeyRingError> {
        if cfg.keys.is_empty() {
            return Ok(KeyRing::ephemeral());
        }
        let mut raw = Vec::with_capacity(cfg.keys.len());
        for (index, secret) in cfg.keys.iter().enumerate() {
            raw.push(decode_key(index, secret.expose())?);
        }
        Ok(KeyRing::from_keys(&raw))
    }

    /// A ring from raw 32-byte keys; the first seals. An empty slice gives an ephemeral ring.
    pub fn from_keys(keys: &[[u8; KEY_LEN]]) -> KeyRing {
        if keys.is_empty() {
            return KeyRing::ephemeral();
        }
        KeyRing {
            keys: keys.iter().map(ring_key).collect(),
            ephemeral: false,
        }
    }

    /// A ring with one random key, for a sidecar started without `session.keys` (local demo, single task).
    pub fn ephemeral() -> KeyRing {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        KeyRing {
            keys: vec![ring_key(&key)],
            ephemeral: true,
        }
    }

    /// True when the ring was generated at start because no key was configured.
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// The id byte of the sealing key (for logs: which key a deploy seals with, without revealing it).
    pub fn sealing_key_id(&self) -> u8 {
        self.keys[0].id
    }

    /// Number of keys that open.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never true: a ring always has a sealing key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Seals `plaintext` for `purpose` with the first key; returns base64url without padding.
    pub fn seal(&self, purpose: &[u8], plaintext: &[u8]) -> String {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut buf = Vec::with_capacity(MIN_ENVELOPE + plaintext.len());
        buf.push(key.id);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plaintext);
        let tag = match key
            .cipher
            .encrypt_in_place_detached(&Nonce::from(nonce), purpose, &mut buf[1 + NONCE_LEN..])
        {
            Ok(tag) => tag,
            // Only fails for plaintexts beyond 64 GiB, which no caller can produce.
            Err(_) => unreachable!("AES-GCM plaintext length limit exceeded"),
        };
        buf.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(&buf)
    }

    /// Opens a value sealed by [`KeyRing::seal`] with the same `purpose`, by any key of the ring.
    pub fn open(&self, purpose: &[u8], sealed: &str) -> Result<Vec<u8>, SealError> {
        let raw = URL_SAFE_NO_PAD
            .decode(sealed.as_bytes())
            .map_err(|_| SealError::Malformed)?;
        if raw.len() < MIN_ENVELOPE {
            return Err(SealError::Malformed);
        }
        let id = raw[0];
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&raw[1..1 + NONCE_LEN]);
        let nonce = Nonce::from(nonce);
        let body = &raw[1 + NONCE_LEN..];
        let (ct, tag_bytes) = body.split_at(body.len() - TAG_LEN);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(tag_bytes);
        let tag = aes_gcm::Tag::from(tag);
        let mut found = false;
        for key in self.keys.iter().filter(|k| k.id == id) {
            found = true;
            let mut buf = ct.to_vec();
            if key
                .cipher
                .decrypt_in_place_detached(&nonce, purpose, &mut buf, &tag)
                .is_ok()
            {
                return Ok(buf);
            }
        }
        if found {
            Err(SealError::Forged)
        } else {
            Err(SealError::UnknownKey(id))
        }
    }
}

fn ring_key(key: &[u8; KEY_LEN]) -> RingKey {
    let mut h = Sha256::new();
    h.update(KEY_ID_LABEL);
    h.update(key);
    let id = h.finalize()[0];
    let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), key);
    let mut sub = Zeroizing::new([0u8; KEY_LEN]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
    if hk.expand(HKDF_INFO, sub.as_mut()).is_err() {
        unreachable!("HKDF output length within limits");
    }
    let cipher = match Aes256Gcm::new_from_slice(sub.as_ref()) {
        Ok(c) => c,
        Err(_) => unreachable!("HKDF produced a 32-byte key"),
    };
    RingKey { id, cipher }
}

/// Decodes one configured key: base64 in either alphabet, with or without padding, surrounding whitespace
/// ignored (a key file may end in a newline).
fn decode_key(index: usize, text: &str) -> Result<[u8; KEY_LEN], KeyRingError> {
    let text = text.trim();
    let decoded = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text.as_bytes()).ok())
        .map(Zeroizing::new)
        .ok_or(KeyRingError::NotBase64 { index })?;
    if decoded.len() != KEY_LEN {
        return Err(KeyRingError::WrongLength {
            index,
            len: decoded.len(),
        });
    }
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(&decoded);
    Ok(key)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Secret;
    use proptest::prelude::*;

    pub(crate) fn key(b: u8) -> [u8; KEY_LEN] {
        [b; KEY_LEN]
    }

    pub(crate) fn ring(keys: &[u8]) -> KeyRing {
        KeyRing::from_keys(&keys.iter().map(|b| key(*b)).collect::<Vec<_>>())
    }

    pub(crate) fn session_config(keys: Vec<Secret>) -> SessionConfig {
        SessionConfig {
            store: crate::config::SessionStore::Cookie,
            cookie_name: "__Host-oidc_session".into(),
            cookie_domain: None,
            keys,
            inactivity_timeout: std::time::Duration::from_secs(3600),
            max_lifetime: std::time::Duration::from_secs(8 * 3600),
            refresh_margin: std::time::Duration::from_secs(60),
            max_cookie_bytes: 12288,
            redis_url: None,
            redis_client_cache: true,
            paths: crate::config::EndpointPaths {
                login: "/oauth2/login".into(),
                callback: "/oauth2/callback".into(),
                logout: "/oauth2/logout".into(),
                userinfo: "/oauth2/userinfo".into(),
                frontchannel_logout: "/oauth2/frontchannel-logout".into(),
            },
        }
    }

    #[test]
    fn round_trip() {
        let r = ring(&[1]);
        let s = r.seal(b"session-v1", b"hello");
        assert_eq!(r.open(b"session-v1", &s).unwrap(), b"hello");
        assert!(!s.contains('=') && !s.contains('+') && !s.contains('/'));
    }

    #[test]
    fn seals_are_randomised() {
        let r = ring(&[1]);
        assert_ne!(r.seal(b"p", b"same"), r.seal(b"p", b"same"));
    }

    #[test]
    fn rotation_new_ring_opens_old_seal_and_seals_with_new() {
        let old = ring(&[1]);
        let rolled = ring(&[2, 1]);
        let by_old = old.seal(b"p", b"from old task");
        assert_eq!(rolled.open(b"p", &by_old).unwrap(), b"from old task");
        let by_new = rolled.seal(b"p", b"from new task");
        // Old tasks cannot read the new key's values (expected during a deploy: they are about to go away)...
        assert!(matches!(old.open(b"p", &by_new), Err(SealError::UnknownKey(_))));
        // ...but a ring that still lists both can.
        assert_eq!(ring(&[1, 2]).open(b"p", &by_new).unwrap(), b"from new task");
        assert_ne!(rolled.sealing_key_id(), old.sealing_key_id());
    }

    #[test]
    fn key_id_is_independent_of_position() {
        assert_eq!(ring(&[7, 8]).sealing_key_id(), ring(&[7]).sealing_key_id());
        assert_eq!(ring(&[9, 7]).keys[1].id, ring(&[7]).sealing_key_id());
    }

    #[test]
    fn wrong_purpose_fails() {
        let r = ring(&[1]);
        let s = r.seal(b"login-v1|abc", b"x");
        assert_eq!(r.open(b"session-v1", &s), Err(SealError::Forged));
    }

    #[test]
    fn foreign_key_fails() {
        let s = ring(&[1]).seal(b"p", b"x");
        assert!(matches!(ring(&[3]).open(b"p", &s), Err(SealError::UnknownKey(_))));
    }

    #[test]
    fn colliding_key_ids_are_all_tried() {
        // Find two keys with the same id byte; the second must still open its values.
        let first = key(0);
        let id = ring_key(&first).id;
        let other = (1u16..=u16::MAX)
            .map(|i| {
                let mut k = [0u8; KEY_LEN];
                k[..2].copy_from_slice(&i.to_be_bytes());
                k
            })
            .find(|k| ring_key(k).id == id)
            .unwrap();
        let sealed = KeyRing::from_keys(&[other]).seal(b"p", b"collide");
        let both = KeyRing::from_keys(&[first, other]);
        assert_eq!(both.open(b"p", &sealed).unwrap(), b"collide");
        assert_eq!(KeyRing::from_keys(&[first]).open(b"p", &sealed), Err(SealError::Forged));
    }

    #[test]
    fn truncated_and_garbage_fail() {
        let r = ring(&[1]);
        let s = r.seal(b"p", b"some plaintext");
        // One byte short: still base64, but the tag no longer matches.
        let mut raw = URL_SAFE_NO_PAD.decode(&s).unwrap();
        raw.pop();
        assert_eq!(
            r.open(b"p", &URL_SAFE_NO_PAD.encode(&raw)).unwrap_err(),
            SealError::Forged
        );
        assert!(r.open(b"p", &s[..s.len() - 1]).is_err());
        assert_eq!(r.open(b"p", &s[..10]).unwrap_err(), SealError::Malformed);
        assert_eq!(r.open(b"p", "").unwrap_err(), SealError::Malformed);
        assert_eq!(r.open(b"p", "not base64!!").unwrap_err(), SealError::Malformed);
        assert_eq!(r.open(b"p", &format!("{s}=")).unwrap_err(), SealError::Malformed);
    }

    #[test]
    fn from_config_decodes_both_alphabets_and_reports_index() {
        let k = [0xfbu8; 32];
        let std = STANDARD.encode(k);
        let url = URL_SAFE_NO_PAD.encode(k);
        assert!(std.contains('+') || std.contains('/'));
        let cfg = session_config(vec![Secret(format!("{std}\n")), Secret(url)]);
        let r = KeyRing::from_config(&cfg).unwrap();
        assert_eq!(r.len(), 2);
        assert!(!r.is_ephemeral());
        assert_eq!(r.sealing_key_id(), KeyRing::from_keys(&[k]).sealing_key_id());

        let bad = session_config(vec![Secret(std.clone()), Secret("***".into())]);
        assert_eq!(
            KeyRing::from_config(&bad).unwrap_err(),
            KeyRingError::NotBase64 { index: 1 }
        );
        let short = session_config(vec![Secret(STANDARD.encode([1u8; 16]))]);
        let err = KeyRing::from_config(&short).unwrap_err();
        assert_eq!(err, KeyRingError::WrongLength { index: 0, len: 16 });
        assert!(!err.to_string().contains(&STANDARD.encode([1u8; 16])));
    }

    #[test]
    fn empty_config_gives_ephemeral_ring() {
        let r = KeyRing::from_config(&session_config(vec![])).unwrap();
        assert!(r.is_ephemeral());
        let s = r.seal(b"p", b"x");
        assert_eq!(r.open(b"p", &s).unwrap(), b"x");
        assert!(KeyRing::ephemeral().open(b"p", &s).is_err());
    }

    #[test]
    fn debug_shows_no_key_material() {
        let d = format!("{:?}", ring(&[1]));
        assert!(d.contains("key_ids") && !d.contains("cipher"));
    }

    proptest! {
        #[test]
        fn prop_round_trip(pt in proptest::collection::vec(any::<u8>(), 0..2048),
                           purpose in proptest::collection::vec(any::<u8>(), 0..64)) {
            let r = ring(&[5, 6]);
            let s = r.seal(&purpose, &pt);
            prop_assert_eq!(r.open(&purpose, &s).unwrap(), pt);
        }

        #[test]
        fn prop_any_bit_flip_is_refused(pt in proptest::collection::vec(any::<u8>(), 0..256),
                                        pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let r = ring(&[5]);
            let s = r.seal(b"p", &pt);
            let mut raw = URL_SAFE_NO_PAD.decode(&s).unwrap();
            let i = pos.index(raw.len());
            raw[i] ^= 1 << bit;
            let tampered = URL_SAFE_NO_PAD.encode(&raw);
            prop_assert!(r.open(b"p", &tampered).is_err());
        }

        #[test]
        fn prop_garbage_never_panics(s in "\\PC{0,200}") {
            let _ = ring(&[5]).open(b"p", &s);
        }
    }
}
