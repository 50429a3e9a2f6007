//! Standard Webhooks `v1` signatures: HMAC-SHA256 over `"{webhook-id}.{webhook-timestamp}.{body}"`.
//!
//! Endpoint secrets are shown to users as `whsec_` + base64 of the raw key; the HMAC key is the
//! decoded bytes, not the text. During a key rotation every live secret signs the same content and
//! the `webhook-signature` header carries one `v1,<base64>` entry per secret, space-separated; a
//! receiver accepts the request if any entry verifies with the secret it holds.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

/// Header carrying the event id, stable across retries: the receiver's idempotency key.
pub const WEBHOOK_ID: &str = "webhook-id";
/// Header carrying the Unix seconds of this attempt (so it changes on every retry).
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the space-separated `v1,<base64>` signatures.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// The text every secret starts with when shown to users.
const SECRET_PREFIX: &str = "whsec_";
/// The signature scheme tag for symmetric HMAC-SHA256 signatures.
const SCHEME_V1: &str = "v1";
/// Key length of [`WebhookSecret::generate`]: the spec's recommended 32 bytes.
const GENERATED_KEY_LEN: usize = 32;
/// Key lengths the spec allows; shorter keys are too weak, longer ones are someone's mistake.
const KEY_LEN_RANGE: std::ops::RangeInclusive<usize> = 24..=64;

type HmacSha256 = Hmac<Sha256>;

/// Why a text or byte string is not a usable endpoint secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The text does not start with `whsec_`.
    #[error("webhook secret must start with `whsec_`")]
    MissingPrefix,
    /// The part after `whsec_` is not standard, padded base64.
    #[error("webhook secret is not valid base64 after `whsec_`")]
    InvalidBase64,
    /// The decoded key is outside 24..=64 bytes.
    #[error("webhook secret decodes to {0} bytes; 24 to 64 are allowed")]
    InvalidLength(usize),
}

/// An endpoint's HMAC key.
///
/// `Display` prints the `whsec_…` form (that is how it is stored and shown once to the user);
/// `Debug` never prints the key, so a secret inside a logged struct does not leak.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
    /// The HMAC state after absorbing the key, so each signature only hashes the message.
    keyed_mac: HmacSha256,
}

impl WebhookSecret {
    /// A fresh secret of 32 random bytes from the thread-local CSPRNG (ChaCha seeded by the OS).
    pub fn generate() -> Self {
        let mut key = [0u8; GENERATED_KEY_LEN];
        rand::rng().fill_bytes(&mut key);
        Self { keyed_mac: keyed_mac(&key), key: key.to_vec() }
    }

    /// A secret from raw key bytes (24 to 64 of them).
    pub fn from_bytes(key: &[u8]) -> Result<Self, SecretError> {
        if !KEY_LEN_RANGE.contains(&key.len()) {
            return Err(SecretError::InvalidLength(key.len()));
        }
        Ok(Self { keyed_mac: keyed_mac(key), key: key.to_vec() })
    }

    /// The `v1` signature of one message under this secret: the raw 32-byte HMAC-SHA256.
    fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        let mut mac = self.keyed_mac.clone();
        feed_signed_content(&mut mac, msg_id, timestamp, body);
        mac.finalize().into_bytes().into()
    }

    /// Whether `signature` is this secret's signature of the message, compared in constant time.
    fn signed(&self, msg_id: &str, timestamp: i64, body: &[u8], signature: &[u8]) -> bool {
        let mut mac = self.keyed_mac.clone();
        feed_signed_content(&mut mac, msg_id, timestamp, body);
        mac.verify_slice(signature).is_ok()
    }
}

/// HMAC-SHA256 keyed with `key`, which is at most one SHA-256 block (64 bytes) long.
///
/// RFC 2104 zero-pads keys shorter than the block, so padding here first gives the same MAC while
/// using the fixed-size constructor, which cannot fail (the slice one returns a `Result` that HMAC
/// never uses). Longer keys would be hashed instead; [`KEY_LEN_RANGE`] excludes them.
fn keyed_mac(key: &[u8]) -> HmacSha256 {
    let mut block = [0u8; 64];
    for (padded, byte) in block.iter_mut().zip(key) {
        *padded = *byte;
    }
    <HmacSha256 as hmac::digest::KeyInit>::new(&block.into())
}

fn feed_signed_content(mac: &mut HmacSha256, msg_id: &str, timestamp: i64, body: &[u8]) {
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
}

impl FromStr for WebhookSecret {
    type Err = SecretError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or(SecretError::MissingPrefix)?;
        let key = BASE64.decode(encoded).map_err(|_| SecretError::InvalidBase64)?;
        Self::from_bytes(&key)
    }
}

impl fmt::Display for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SECRET_PREFIX}{}", BASE64.encode(&self.key))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// The `webhook-signature` header value: `v1,<base64>` per secret, space-separated, in the order
/// given (current secret first, then the ones being rotated out). Empty when `secrets` is empty.
///
/// `msg_id` must not contain `.` for the signed content to be unambiguous; ids are ours (`evt_…`).
pub fn signature_header(secrets: &[WebhookSecret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut header = String::with_capacity(secrets.len() * 48);
    for secret in secrets {
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str(SCHEME_V1);
        header.push(',');
        BASE64.encode_string(secret.sign(msg_id, timestamp, body), &mut header);
    }
    header
}

/// Whether any `v1` entry of a `webhook-signature` header is `secret`'s signature of the message.
///
/// This is the receiver's check, used by our tests: the HMAC comparison is constant-time, entries
/// of other schemes or with malformed base64 are skipped. It does not check the timestamp against
/// a tolerance window; that is the receiver's policy, not the signature's.
pub fn verify(secret: &WebhookSecret, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    header
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(scheme, _)| *scheme == SCHEME_V1)
        .filter_map(|(_, encoded)| BASE64.decode(encoded).ok())
        .any(|signature| secret.signed(msg_id, timestamp, body, &signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const SPEC_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const SPEC_TIMESTAMP: i64 = 1_649_367_553;
    const SPEC_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SPEC_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn spec_secret() -> WebhookSecret {
        SPEC_SECRET.parse().expect("spec secret parses")
    }

    #[test]
    fn spec_test_vector() {
        let header = signature_header(&[spec_secret()], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY);
        assert_eq!(header, SPEC_SIGNATURE);
        assert!(verify(&spec_secret(), SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, SPEC_SIGNATURE));
    }

    #[test]
    fn rotation_header_has_one_entry_per_secret_and_each_verifies() {
        let new = WebhookSecret::generate();
        let header = signature_header(&[new.clone(), spec_secret()], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY);
        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1], SPEC_SIGNATURE);
        assert!(entries[0].starts_with("v1,"));
        assert!(verify(&new, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, &header));
        assert!(verify(&spec_secret(), SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, &header));
        assert!(!verify(&WebhookSecret::generate(), SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, &header));
    }

    #[test]
    fn zero_padded_key_gives_the_same_mac_as_the_key_itself() {
        for len in [24, 32, 33, 63, 64] {
            let key: Vec<u8> = (1..=len).map(|byte| byte as u8).collect();
            let mut padded = keyed_mac(&key);
            let mut direct = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
            padded.update(b"evt_1.1700000000.{}");
            direct.update(b"evt_1.1700000000.{}");
            assert_eq!(padded.finalize().into_bytes(), direct.finalize().into_bytes(), "key length {len}");
        }
    }

    #[test]
    fn no_secrets_give_an_empty_header() {
        assert_eq!(signature_header(&[], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY), "");
    }

    #[test]
    fn verify_rejects_any_change_to_the_signed_content() {
        let secret = spec_secret();
        assert!(!verify(&secret, "msg_other", SPEC_TIMESTAMP, SPEC_BODY, SPEC_SIGNATURE));
        assert!(!verify(&secret, SPEC_ID, SPEC_TIMESTAMP + 1, SPEC_BODY, SPEC_SIGNATURE));
        assert!(!verify(&secret, SPEC_ID, SPEC_TIMESTAMP, b"{}", SPEC_SIGNATURE));
    }

    #[test]
    fn verify_skips_malformed_and_foreign_entries() {
        let secret = spec_secret();
        let good = SPEC_SIGNATURE;
        let sig = &good[3..];
        let cases: &[(&str, bool)] = &[
            ("", false),
            ("v1", false),
            ("v1,", false),
            ("v1,not base64!", false),
            (&format!("v1a,{sig}"), false),
            (&format!("v2,{sig}"), false),
            (&format!("v1,{}", &sig[..sig.len() - 4]), false),
            (&format!("garbage v1a,{sig} {good}"), true),
            (&format!("{good} v1,AAAA"), true),
        ];
        for (header, expected) in cases {
            assert_eq!(verify(&secret, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, header), *expected, "header {header:?}");
        }
    }

    #[test]
    fn body_need_not_be_utf8() {
        let secret = WebhookSecret::generate();
        let body = [0xff, 0x00, 0xfe];
        let header = signature_header(std::slice::from_ref(&secret), "evt_1", 7, &body);
        assert!(verify(&secret, "evt_1", 7, &body, &header));
    }

    #[test]
    fn secret_text_round_trips_and_generated_secrets_differ() {
        assert_eq!(spec_secret().to_string(), SPEC_SECRET);
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        let a_text = a.to_string();
        assert!(a_text.starts_with("whsec_"));
        assert_eq!(BASE64.decode(&a_text[6..]).expect("base64").len(), 32);
        assert_ne!(a_text, b.to_string());
        assert_eq!(a_text.parse::<WebhookSecret>().expect("round trip").to_string(), a_text);
    }

    #[test]
    fn secret_parsing_table() {
        let b64 = |n: usize| BASE64.encode(vec![7u8; n]);
        let cases: Vec<(String, Result<(), SecretError>)> = vec![
            (String::new(), Err(SecretError::MissingPrefix)),
            (b64(32), Err(SecretError::MissingPrefix)),
            (format!("WHSEC_{}", b64(32)), Err(SecretError::MissingPrefix)),
            (format!("whsk_{}", b64(32)), Err(SecretError::MissingPrefix)),
            ("whsec_".to_owned(), Err(SecretError::InvalidLength(0))),
            ("whsec_!!!!".to_owned(), Err(SecretError::InvalidBase64)),
            (format!("whsec_{} ", b64(32)), Err(SecretError::InvalidBase64)),
            (format!("whsec_{}", b64(23)), Err(SecretError::InvalidLength(23))),
            (format!("whsec_{}", b64(24)), Ok(())),
            (format!("whsec_{}", b64(32)), Ok(())),
            (format!("whsec_{}", b64(64)), Ok(())),
            (format!("whsec_{}", b64(65)), Err(SecretError::InvalidLength(65))),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<WebhookSecret>().map(|_| ()), expected, "text {text:?}");
        }
        assert_eq!(WebhookSecret::from_bytes(&[1; 10]).map(|_| ()), Err(SecretError::InvalidLength(10)));
    }

    #[test]
    fn debug_redacts_the_key() {
        let secret = spec_secret();
        let debug = format!("{secret:?} {:?}", vec![secret.clone()]);
        assert!(!debug.contains("C2FVsBQ"), "{debug}");
        assert!(debug.contains("redacted"));
    }
}
