//! Endpoint signing secrets at rest, sealed with the operator's master key (`ADMS_SECRET_KEY` or
//! its key file) through `adms-vault`.
//!
//! A signing key must be usable for HMAC, so it cannot be hashed like a password; the next best
//! thing is to keep it encrypted in the database and open it only to sign. Sealed text is
//! `sealed:v1:` + base64 of a random 24-byte nonce and the XChaCha20-Poly1305 ciphertext (with its
//! tag). The endpoint's public id is the associated data, so a sealed secret copied onto another
//! endpoint does not open. Rows written before a key was configured hold the `whsec_` text itself;
//! [`reveal`] reads both, and the server seals plaintext rows at start once a key is set.

pub use adms_vault::{SealError, SecretKey, is_sealed};

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
