//! Secrets at rest (endpoint signing secrets, and through [`SecretKey::seal_for`] the server's
//! other secrets), sealed with the operator's master key (`ADMS_SECRET_KEY` or its key file).
//!
//! A signing key must be usable for HMAC, so it cannot be hashed like a password; the next best
//! thing is to keep it encrypted in the database and open it only to sign. Sealed text is
//! `sealed:v1:` + base64 of a random 24-byte nonce and the XChaCha20-Poly1305 ciphertext (with its
//! tag). The endpoint's public id is the associated data, so a sealed secret copied onto another
//! endpoint does not open. Rows written before a key was configured hold the `whsec_` text itself;
//! [`reveal`] reads both, and the server seals plaintext rows at start once a key is set.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// What every sealed secret starts with (`v1`: XChaCha20-Poly1305, endpoint id as AAD).
pub const SEALED_PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 24;
/// Domain separation for the associated data.
const AAD_CONTEXT: &str = "adms-bridge webhook secret";

/// A master key that cannot be used, or a stored secret that cannot be opened. Never contains
/// key or secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the master key must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)")]
    BadKey,
    #[error("a stored signing secret is sealed, but no master key (ADMS_SECRET_KEY) is configured")]
    NoKey,
    #[error(
        "a stored signing secret does not open with this master key (a different ADMS_SECRET_KEY, or a damaged row)"
    )]
    WrongKey,
}

/// The operator's master key. `Debug` never shows it.
#[derive(Clone)]
pub struct SecretKey(chacha20poly1305::Key);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl FromStr for SecretKey {
    type Err = SealError;

    /// Base64 (standard alphabet, padding optional) of exactly 32 bytes.
    fn from_str(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| SealError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKey)?;
        Ok(SecretKey(key.into()))
    }
}

impl SecretKey {
    /// A new random key (the server generates one on first start when none is configured).
    pub fn generate() -> SecretKey {
        SecretKey(rand::random::<[u8; 32]>().into())
    }

    /// The key as its configuration text (base64 of the 32 bytes), to write a key file.
    pub fn to_base64(&self) -> String {
        let bytes: &[u8] = &self.0;
        STANDARD.encode(bytes)
    }

    /// Seals `secret` for the endpoint `endpoint_uid`, under a fresh random nonce.
    pub fn seal(&self, endpoint_uid: &str, secret: &str) -> String {
        self.seal_for(AAD_CONTEXT, endpoint_uid, secret)
    }

    /// Opens what [`seal`](Self::seal) produced for the same endpoint.
    pub fn open(&self, endpoint_uid: &str, stored: &str) -> Result<String, SealError> {
        self.open_for(AAD_CONTEXT, endpoint_uid, stored)
    }

    /// Seals `secret` as the record `record` of the kind `context` (associated data: both), so a
    /// sealed value copied onto another record or kind does not open.
    pub fn seal_for(&self, context: &str, record: &str, secret: &str) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let aad = associated_data(context, record);
        let sealed = XChaCha20Poly1305::new(&self.0)
            .encrypt(&XNonce::from(nonce), Payload { msg: secret.as_bytes(), aad: aad.as_bytes() })
            // Encryption fails only for messages beyond 256 GiB.
            .unwrap_or_default();
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(bytes))
    }

    /// Opens what [`seal_for`](Self::seal_for) produced for the same kind and record.
    pub fn open_for(&self, context: &str, record: &str, stored: &str) -> Result<String, SealError> {
        let encoded = stored.strip_prefix(SEALED_PREFIX).ok_or(SealError::WrongKey)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| SealError::WrongKey)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::WrongKey);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::WrongKey)?;
        let aad = associated_data(context, record);
        let plain = XChaCha20Poly1305::new(&self.0)
            .decrypt(&XNonce::from(nonce), Payload { msg: sealed, aad: aad.as_bytes() })
            .map_err(|_| SealError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| SealError::WrongKey)
    }
}

fn associated_data(context: &str, record: &str) -> String {
    format!("{context}\u{1f}{record}")
}

/// True for a stored secret that needs the master key.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// How to store a new secret: sealed when a key is configured, as it is otherwise.
pub fn conceal(key: Option<&SecretKey>, endpoint_uid: &str, secret: &str) -> String {
    match key {
        Some(key) => key.seal(endpoint_uid, secret),
        None => secret.to_owned(),
    }
}

/// The `whsec_` text of a stored secret: opened with the key when sealed, as stored otherwise.
pub fn reveal(key: Option<&SecretKey>, endpoint_uid: &str, stored: &str) -> Result<String, SealError> {
    if !is_sealed(stored) {
        return Ok(stored.to_owned());
    }
    key.ok_or(SealError::NoKey)?.open(endpoint_uid, stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_endpoint() {
        let key: SecretKey = KEY.parse().unwrap();
        let sealed = key.seal("ep_a", SECRET);
        assert!(is_sealed(&sealed) && !sealed.contains("C2FVsBQ"), "{sealed}");
        assert_ne!(sealed, key.seal("ep_a", SECRET), "a fresh nonce each time");
        assert_eq!(key.open("ep_a", &sealed).unwrap(), SECRET);
        assert_eq!(reveal(Some(&key), "ep_a", &sealed).unwrap(), SECRET);
        assert_eq!(key.open("ep_b", &sealed), Err(SealError::WrongKey), "bound to its endpoint");
        let other: SecretKey = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=".parse().unwrap();
        assert_eq!(other.open("ep_a", &sealed), Err(SealError::WrongKey));
        assert_eq!(reveal(None, "ep_a", &sealed), Err(SealError::NoKey));
        let mut damaged = sealed.clone().into_bytes();
        let last = damaged.len() - 3;
        damaged[last] = if damaged[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(key.open("ep_a", std::str::from_utf8(&damaged).unwrap()), Err(SealError::WrongKey));
    }

    #[test]
    fn plaintext_rows_read_as_they_are_and_keys_are_validated() {
        assert_eq!(reveal(None, "ep_a", SECRET).unwrap(), SECRET);
        let key: SecretKey = KEY.parse().unwrap();
        assert_eq!(reveal(Some(&key), "ep_a", SECRET).unwrap(), SECRET);
        assert_eq!(conceal(None, "ep_a", SECRET), SECRET);
        assert!(is_sealed(&conceal(Some(&key), "ep_a", SECRET)));
        assert_eq!(KEY.trim_end_matches('=').parse::<SecretKey>().map(|_| ()), Ok(()));
        for bad in ["", "not base64!", "MDEyMzQ1Njc4OWFiY2RlZg==" /* 16 bytes */] {
            assert_eq!(bad.parse::<SecretKey>().map(|_| ()), Err(SealError::BadKey), "{bad}");
        }
        assert_eq!(format!("{key:?}"), "SecretKey(***)");
    }
}
