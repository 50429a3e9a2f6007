//! Sealing at rest, with no I/O: the operator's master key, values sealed under it and bound to
//! the record they belong to, and keyed digests for the values that must stay comparable.
//!
//! A sealed value is XChaCha20-Poly1305 under the master key with a fresh random 24-byte nonce.
//! Its associated data is the value's *kind* (say `employees.card_no`) and its *record* (the
//! row's identity), so a sealed value copied onto another row or column does not open. Text
//! columns hold `sealed:v1:` + base64(nonce ‖ ciphertext ‖ tag); binary columns hold the same
//! prefix followed by the raw bytes. Values stored before a key was configured are plaintext:
//! every reader here passes them through, and the server seals them in place at its next start.
//!
//! Some sealed values must still be compared: a card number belongs to one employee, and a line
//! a device sends again must be recognised as the same line. Those get a keyed digest
//! (HMAC-SHA256 under a separate random [`IndexKey`], itself sealed in the database): equal
//! values give equal digests, but nobody without the key can test a guess against one (a plain
//! SHA-256 of an 8-digit card number is reversed in seconds).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// What every sealed value starts with (`v1`: XChaCha20-Poly1305, kind and record as AAD).
pub const SEALED_PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 24;
/// The kind of a webhook endpoint's signing secret (its record: the endpoint's public id).
pub const WEBHOOK_SECRET: &str = "adms-bridge webhook secret";

/// A master key that cannot be used, or a stored value that cannot be opened. Never contains
/// key or secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the master key must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)")]
    BadKey,
    #[error("a stored value is sealed, but no master key (ADMS_SECRET_KEY or its key file) is configured")]
    NoKey,
    #[error("a stored value does not open with this master key (a different ADMS_SECRET_KEY, or a damaged row)")]
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
        let bytes = STANDARD.decode(text).or_else(|_| STANDARD_NO_PAD.decode(text)).map_err(|_| SealError::BadKey)?;
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

    /// Seals the signing secret of the webhook endpoint `endpoint_uid`.
    pub fn seal(&self, endpoint_uid: &str, secret: &str) -> String {
        self.seal_for(WEBHOOK_SECRET, endpoint_uid, secret)
    }

    /// Opens what [`seal`](Self::seal) produced for the same endpoint.
    pub fn open(&self, endpoint_uid: &str, stored: &str) -> Result<String, SealError> {
        self.open_for(WEBHOOK_SECRET, endpoint_uid, stored)
    }

    /// Seals `secret` as the record `record` of the kind `kind` (text form).
    pub fn seal_for(&self, kind: &str, record: &str, secret: &str) -> String {
        let sealed = self.seal_raw(kind, record, secret.as_bytes());
        format!("{SEALED_PREFIX}{}", STANDARD.encode(sealed))
    }

    /// Opens what [`seal_for`](Self::seal_for) produced for the same kind and record.
    pub fn open_for(&self, kind: &str, record: &str, stored: &str) -> Result<String, SealError> {
        let encoded = stored.strip_prefix(SEALED_PREFIX).ok_or(SealError::WrongKey)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| SealError::WrongKey)?;
        String::from_utf8(self.open_raw(kind, record, &bytes)?).map_err(|_| SealError::WrongKey)
    }

    /// Seals `value` as the record `record` of the kind `kind` (binary form, for BLOB columns).
    pub fn seal_bytes_for(&self, kind: &str, record: &str, value: &[u8]) -> Vec<u8> {
        let sealed = self.seal_raw(kind, record, value);
        let mut out = Vec::with_capacity(SEALED_PREFIX.len() + sealed.len());
        out.extend_from_slice(SEALED_PREFIX.as_bytes());
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what [`seal_bytes_for`](Self::seal_bytes_for) produced for the same kind and record.
    pub fn open_bytes_for(&self, kind: &str, record: &str, stored: &[u8]) -> Result<Vec<u8>, SealError> {
        let sealed = stored.strip_prefix(SEALED_PREFIX.as_bytes()).ok_or(SealError::WrongKey)?;
        self.open_raw(kind, record, sealed)
    }

    /// nonce ‖ ciphertext ‖ tag.
    fn seal_raw(&self, kind: &str, record: &str, value: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let aad = associated_data(kind, record);
        let sealed = XChaCha20Poly1305::new(&self.0)
            .encrypt(&XNonce::from(nonce), Payload { msg: value, aad: &aad })
            // Encryption fails only for messages beyond 256 GiB.
            .unwrap_or_default();
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        bytes
    }

    fn open_raw(&self, kind: &str, record: &str, bytes: &[u8]) -> Result<Vec<u8>, SealError> {
        if bytes.len() < NONCE_LEN {
            return Err(SealError::WrongKey);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::WrongKey)?;
        let aad = associated_data(kind, record);
        XChaCha20Poly1305::new(&self.0)
            .decrypt(&XNonce::from(nonce), Payload { msg: sealed, aad: &aad })
            .map_err(|_| SealError::WrongKey)
    }
}

/// Kind and record, separated by a byte neither contains (unit separator).
fn associated_data(kind: &str, record: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(kind.len() + 1 + record.len());
    aad.extend_from_slice(kind.as_bytes());
    aad.push(0x1f);
    aad.extend_from_slice(record.as_bytes());
    aad
}

/// True for a stored text value that needs the master key.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// True for a stored binary value that needs the master key.
pub fn is_sealed_bytes(stored: &[u8]) -> bool {
    stored.starts_with(SEALED_PREFIX.as_bytes())
}

/// The key of the keyed digests: random, generated once per database and stored sealed under
/// the master key (so re-keying the master key re-seals it without changing any digest).
#[derive(Clone)]
pub struct IndexKey([u8; 32]);

impl fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IndexKey(***)")
    }
}

impl IndexKey {
    /// A new random index key.
    pub fn generate() -> IndexKey {
        IndexKey(rand::random())
    }

    /// The key as text (to be sealed into the database).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Reads [`to_base64`](Self::to_base64)'s text.
    pub fn from_base64(text: &str) -> Result<IndexKey, SealError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| SealError::WrongKey)?;
        Ok(IndexKey(bytes.try_into().map_err(|_| SealError::WrongKey)?))
    }

    /// HMAC-SHA256 of `value` for the kind `kind` (the same value of two kinds gives two digests).
    pub fn digest(&self, kind: &str, value: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(kind.as_bytes());
        mac.update(&[0x1f]);
        mac.update(value);
        mac.finalize().into_bytes().into()
    }
}

/// Everything a store needs to seal and open its columns: the master key and the index key.
#[derive(Debug, Clone)]
pub struct Vault {
    key: SecretKey,
    index: IndexKey,
}

impl Vault {
    pub fn new(key: SecretKey, index: IndexKey) -> Vault {
        Vault { key, index }
    }
}

/// How a store seals: with a [`Vault`], or (an in-memory database started without a key) not
/// at all. Empty values stay empty either way: "no card" is not a secret, and the roster's
/// queries test for it.
#[derive(Debug, Clone, Copy)]
pub struct Sealer<'a>(pub Option<&'a Vault>);

impl Sealer<'_> {
    /// The stored form of a text value.
    pub fn seal(&self, kind: &str, record: &str, value: &str) -> String {
        match self.0 {
            Some(vault) if !value.is_empty() => vault.key.seal_for(kind, record, value),
            _ => value.to_owned(),
        }
    }

    /// The value of a stored text: opened when sealed, as stored otherwise.
    pub fn open(&self, kind: &str, record: &str, stored: &str) -> Result<String, SealError> {
        if !is_sealed(stored) {
            return Ok(stored.to_owned());
        }
        self.0.ok_or(SealError::NoKey)?.key.open_for(kind, record, stored)
    }

    /// The stored form of a binary value.
    pub fn seal_bytes(&self, kind: &str, record: &str, value: &[u8]) -> Vec<u8> {
        match self.0 {
            Some(vault) if !value.is_empty() => vault.key.seal_bytes_for(kind, record, value),
            _ => value.to_vec(),
        }
    }

    /// The value of a stored binary: opened when sealed, as stored otherwise.
    pub fn open_bytes(&self, kind: &str, record: &str, stored: &[u8]) -> Result<Vec<u8>, SealError> {
        if !is_sealed_bytes(stored) {
            return Ok(stored.to_vec());
        }
        self.0.ok_or(SealError::NoKey)?.key.open_bytes_for(kind, record, stored)
    }

    /// The digest that stands for `value` where equal values must be found: keyed with a
    /// vault, plain SHA-256 without one.
    pub fn digest(&self, kind: &str, value: &[u8]) -> [u8; 32] {
        match self.0 {
            Some(vault) => vault.index.digest(kind, value),
            None => Sha256::digest(value).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    fn vault() -> Vault {
        Vault::new(KEY.parse().unwrap(), IndexKey::generate())
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_endpoint() {
        let key: SecretKey = KEY.parse().unwrap();
        let sealed = key.seal("ep_a", SECRET);
        assert!(is_sealed(&sealed) && !sealed.contains("C2FVsBQ"), "{sealed}");
        assert_ne!(sealed, key.seal("ep_a", SECRET), "a fresh nonce each time");
        assert_eq!(key.open("ep_a", &sealed).unwrap(), SECRET);
        assert_eq!(key.open("ep_b", &sealed), Err(SealError::WrongKey), "bound to its endpoint");
        let other: SecretKey = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=".parse().unwrap();
        assert_eq!(other.open("ep_a", &sealed), Err(SealError::WrongKey));
        let mut damaged = sealed.clone().into_bytes();
        let last = damaged.len() - 3;
        damaged[last] = if damaged[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(key.open("ep_a", std::str::from_utf8(&damaged).unwrap()), Err(SealError::WrongKey));
    }

    #[test]
    fn keys_are_validated_and_never_printed() {
        assert_eq!(KEY.trim_end_matches('=').parse::<SecretKey>().map(|_| ()), Ok(()));
        for bad in ["", "not base64!", "MDEyMzQ1Njc4OWFiY2RlZg==" /* 16 bytes */] {
            assert_eq!(bad.parse::<SecretKey>().map(|_| ()), Err(SealError::BadKey), "{bad}");
        }
        let key: SecretKey = KEY.parse().unwrap();
        assert_eq!(format!("{key:?}"), "SecretKey(***)");
        assert_eq!(format!("{:?}", IndexKey::generate()), "IndexKey(***)");
    }

    #[test]
    fn values_are_bound_to_their_kind_and_record() {
        let vault = vault();
        let sealer = Sealer(Some(&vault));
        let card = sealer.seal("employees.card_no", "7", "12345678");
        assert!(is_sealed(&card) && !card.contains("12345678"));
        assert_eq!(sealer.open("employees.card_no", "7", &card).unwrap(), "12345678");
        assert_eq!(sealer.open("employees.card_no", "8", &card), Err(SealError::WrongKey), "another row");
        assert_eq!(sealer.open("employees.mobile", "7", &card), Err(SealError::WrongKey), "another column");
        let raw = sealer.seal_bytes("rejected_lines.raw", "1", b"USER PIN=1\tPasswd=4321");
        assert!(is_sealed_bytes(&raw) && !raw.windows(4).any(|w| w == b"4321"));
        assert_eq!(sealer.open_bytes("rejected_lines.raw", "1", &raw).unwrap(), b"USER PIN=1\tPasswd=4321");
        assert_eq!(Sealer(None).open("employees.card_no", "7", &card), Err(SealError::NoKey));
    }

    #[test]
    fn empty_and_plaintext_values_pass_through() {
        let vault = vault();
        let sealer = Sealer(Some(&vault));
        assert_eq!(sealer.seal("employees.card_no", "7", ""), "");
        assert_eq!(sealer.open("employees.card_no", "7", "12345678").unwrap(), "12345678", "written before a key");
        assert_eq!(Sealer(None).seal("employees.card_no", "7", "12345678"), "12345678");
        assert!(sealer.seal_bytes("k", "r", b"").is_empty());
    }

    #[test]
    fn keyed_digests_need_the_index_key() {
        let vault = vault();
        let sealer = Sealer(Some(&vault));
        let a = sealer.digest("card", b"12345678");
        assert_eq!(a, sealer.digest("card", b"12345678"), "equal values, equal digests");
        assert_ne!(a, sealer.digest("card", b"12345679"));
        assert_ne!(a, sealer.digest("raw", b"12345678"), "kinds are separated");
        let plain: [u8; 32] = Sha256::digest(b"12345678").into();
        assert_ne!(a, plain, "not a plain SHA-256 anyone can recompute");
        assert_eq!(Sealer(None).digest("card", b"12345678"), plain);
        let other = Vault::new(KEY.parse().unwrap(), IndexKey::generate());
        assert_ne!(a, Sealer(Some(&other)).digest("card", b"12345678"));
        let copy = IndexKey::from_base64(&vault.index.to_base64()).unwrap();
        assert_eq!(copy.digest("card", b"12345678"), a);
    }
}
