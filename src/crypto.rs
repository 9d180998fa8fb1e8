//! Token encryption at rest, API key hashing and random values.
//!
//! Token ciphertexts are AES-256-GCM with a fresh 96-bit nonce per value, stored as
//! `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`. The key id is the first
//! 8 bytes of SHA-256 over the key, in hex, so a later key rotation can keep old keys
//! around and pick the right one for each value. The associated data binds each
//! ciphertext to the row and field it was written for, so a ciphertext copied into
//! another connection does not decrypt.

use std::collections::HashMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use rand::distributions::{Alphanumeric, DistString};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const FORMAT_VERSION: &str = "v1";
const NONCE_LEN: usize = 12;

/// Prefix of every API key.
pub const API_KEY_PREFIX: &str = "pb_live_";
/// Number of random base62 characters after the prefix in generated keys.
const API_KEY_RANDOM_LEN: usize = 40;
/// Minimum number of base62 characters accepted after the prefix.
const API_KEY_MIN_RANDOM_LEN: usize = 32;
/// Upper bound on accepted key length, so that hashing work per request stays bounded.
const API_KEY_MAX_LEN: usize = 256;

/// A 256-bit AES key; `Debug` never prints the key material.
#[derive(Clone)]
pub struct EncryptionKey {
    bytes: [u8; 32],
    id: String,
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionKey {{ id: {}, .. }}", self.id)
    }
}

/// Errors of key parsing and token decryption. The messages name no secret.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the key is not valid base64")]
    KeyNotBase64,
    #[error("the key decodes to {0} bytes; it must be exactly 32")]
    KeyWrongLength(usize),
    #[error("the ciphertext is malformed")]
    MalformedCiphertext,
    #[error("no configured encryption key has id {0}")]
    UnknownKeyId(String),
    #[error("the ciphertext failed authentication")]
    DecryptionFailed,
}

impl EncryptionKey {
    /// Parses the base64 text of 32 bytes (standard or URL-safe alphabet, padding optional).
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| CryptoError::KeyNotBase64)?;
        let bytes: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::KeyWrongLength(bytes.len()))?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::digest(bytes);
        let id = hex::encode(&digest[..8]);
        EncryptionKey { bytes, id }
    }

    /// Generates a new random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// Returns the key as base64, for writing a generated key to a file.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.bytes))
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Encrypts new values under the primary key and decrypts under any known key.
#[derive(Clone)]
pub struct TokenCipher {
    primary: String,
    keys: HashMap<String, Aes256Gcm>,
}

impl fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenCipher {{ primary: {} }}", self.primary)
    }
}

impl TokenCipher {
    /// Creates a cipher that encrypts under `primary` and can still decrypt values of `older` keys.
    pub fn new(primary: &EncryptionKey, older: &[EncryptionKey]) -> Self {
        let mut keys = HashMap::new();
        for key in std::iter::once(primary).chain(older) {
            keys.insert(key.id.clone(), Aes256Gcm::new((&key.bytes).into()));
        }
        TokenCipher {
            primary: primary.id.clone(),
            keys,
        }
    }

    /// Encrypts `plaintext`; `context` (for example `connection:<id>:access_token`)
    /// must be given again to decrypt.
    pub fn encrypt(&self, plaintext: &str, context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let cipher = self
            .keys
            .get(&self.primary)
            .expect("the primary key is always in the map");
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: context.as_bytes(),
        };
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        format!(
            "{FORMAT_VERSION}.{}.{}",
            self.primary,
            URL_SAFE_NO_PAD.encode(blob)
        )
    }

    /// Decrypts a value written by [`TokenCipher::encrypt`] with the same `context`.
    pub fn decrypt(&self, stored: &str, context: &str) -> Result<SecretString, CryptoError> {
        let mut fields = stored.splitn(3, '.');
        let (Some(FORMAT_VERSION), Some(key_id), Some(data)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(CryptoError::MalformedCiphertext);
        };
        let cipher = self
            .keys
            .get(key_id)
            .ok_or_else(|| CryptoError::UnknownKeyId(key_id.to_owned()))?;
        let blob = URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| CryptoError::MalformedCiphertext)?;
        if blob.len() < NONCE_LEN {
            return Err(CryptoError::MalformedCiphertext);
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let payload = Payload {
            msg: sealed,
            aad: context.as_bytes(),
        };
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| CryptoError::DecryptionFailed)?;
        let text = String::from_utf8(plain).map_err(|_| CryptoError::MalformedCiphertext)?;
        Ok(SecretString::from(text))
    }
}

/// A newly generated API key; `key` is shown once and never stored.
pub struct NewApiKey {
    pub key: SecretString,
    pub hash: String,
    pub hint: String,
}

/// Generates an API key: the prefix and 40 random base62 characters (about 238 bits).
pub fn generate_api_key() -> NewApiKey {
    let random = Alphanumeric.sample_string(&mut rand::rngs::OsRng, API_KEY_RANDOM_LEN);
    let key = format!("{API_KEY_PREFIX}{random}");
    let hint = key[key.len() - 4..].to_owned();
    let hash = hash_api_key(&key);
    NewApiKey {
        key: SecretString::from(key),
        hash,
        hint,
    }
}

/// Checks the shape of a presented key before any lookup.
pub fn is_well_formed_api_key(key: &str) -> bool {
    let Some(random) = key.strip_prefix(API_KEY_PREFIX) else {
        return false;
    };
    key.len() <= API_KEY_MAX_LEN
        && random.len() >= API_KEY_MIN_RANDOM_LEN
        && random.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// SHA-256 of the key, in hex. A plain hash suffices because keys carry over 190
/// bits of randomness, so there is nothing to brute-force.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// SHA-256 of a value, in hex, for storing lookup keys of one-time secrets such as
/// OAuth `state`.
pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// `len` random bytes as unpadded base64url.
pub fn random_urlsafe(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Computes the PKCE S256 challenge of a verifier: base64url(SHA-256(verifier)).
pub fn pkce_challenge(verifier: &SecretString) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose_secret().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> TokenCipher {
        TokenCipher::new(&EncryptionKey::from_bytes([7; 32]), &[])
    }

    #[test]
    fn round_trip_with_context() {
        let cipher = cipher();
        let sealed = cipher.encrypt("ya29.secret", "connection:1:access");
        let opened = cipher.decrypt(&sealed, "connection:1:access").unwrap();
        assert_eq!(opened.expose_secret(), "ya29.secret");
        assert!(!sealed.contains("ya29"));
    }

    #[test]
    fn nonce_differs_per_value() {
        let cipher = cipher();
        assert_ne!(cipher.encrypt("same", "c"), cipher.encrypt("same", "c"));
    }

    #[test]
    fn other_context_fails() {
        let cipher = cipher();
        let sealed = cipher.encrypt("token", "connection:1:access");
        assert!(matches!(
            cipher.decrypt(&sealed, "connection:2:access"),
            Err(CryptoError::DecryptionFailed)
        ));
    }

    #[test]
    fn old_key_still_decrypts() {
        let old = EncryptionKey::from_bytes([1; 32]);
        let new = EncryptionKey::from_bytes([2; 32]);
        let sealed = TokenCipher::new(&old, &[]).encrypt("token", "c");
        let rotated = TokenCipher::new(&new, &[old]);
        assert_eq!(
            rotated.decrypt(&sealed, "c").unwrap().expose_secret(),
            "token"
        );
        assert!(rotated.encrypt("token", "c").contains(new.id()));
    }

    #[test]
    fn unknown_key_id_is_reported() {
        let sealed = TokenCipher::new(&EncryptionKey::from_bytes([1; 32]), &[]).encrypt("t", "c");
        let other = TokenCipher::new(&EncryptionKey::from_bytes([2; 32]), &[]);
        assert!(matches!(
            other.decrypt(&sealed, "c"),
            Err(CryptoError::UnknownKeyId(_))
        ));
    }

    #[test]
    fn malformed_ciphertexts_are_errors() {
        let cipher = cipher();
        for bad in ["", "v1", "v1.x", "v2.a.b", "v1.abc.!!!", "v1.abc.AAAA"] {
            assert!(cipher.decrypt(bad, "c").is_err(), "{bad:?} decrypted");
        }
    }

    #[test]
    fn key_parsing_checks_length() {
        assert!(matches!(
            EncryptionKey::from_base64("AAAA"),
            Err(CryptoError::KeyWrongLength(3))
        ));
        assert!(matches!(
            EncryptionKey::from_base64("not base64!"),
            Err(CryptoError::KeyNotBase64)
        ));
    }

    #[test]
    fn generated_api_keys_are_well_formed() {
        let key = generate_api_key();
        let text = key.key.expose_secret();
        assert!(is_well_formed_api_key(text));
        assert_eq!(key.hash, hash_api_key(text));
        assert!(text.ends_with(&key.hint));
        assert_eq!(key.hint.len(), 4);
    }

    #[test]
    fn api_key_shape_is_checked() {
        let short = format!("{API_KEY_PREFIX}{}", "a".repeat(31));
        let symbol = format!("{API_KEY_PREFIX}{}-", "a".repeat(32));
        let good = format!("{API_KEY_PREFIX}{}", "a".repeat(32));
        assert!(!is_well_formed_api_key(&short));
        assert!(!is_well_formed_api_key(&symbol));
        assert!(!is_well_formed_api_key(
            "sk_live_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        ));
        assert!(is_well_formed_api_key(&good));
    }

    #[test]
    fn pkce_matches_rfc7636_example() {
        let verifier = SecretString::from("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            pkce_challenge(&verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
