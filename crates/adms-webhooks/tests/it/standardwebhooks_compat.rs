//! Our signatures checked by the independent `standardwebhooks` crate (the spec's own Rust library).

use std::time::{SystemTime, UNIX_EPOCH};

use adms_webhooks::signing::{WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};
use adms_webhooks::{WebhookSecret, signature_header};
use reqwest::header::{HeaderMap, HeaderValue};
use standardwebhooks::Webhook;

const BODY: &[u8] = br#"{"type":"attendance.punch","data":{"seq":18234,"user_pin":"10457"}}"#;

fn now() -> i64 {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs();
    i64::try_from(seconds).expect("seconds fit i64")
}

fn headers(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(WEBHOOK_ID, HeaderValue::from_str(id).expect("id"));
    map.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
    map.insert(WEBHOOK_SIGNATURE, HeaderValue::from_str(signature).expect("signature"));
    map
}

fn receiver(secret: &WebhookSecret) -> Webhook {
    Webhook::new(&secret.to_string()).expect("the library accepts our secret text")
}

#[test]
fn spec_vector_matches_the_library() {
    let secret: WebhookSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".parse().expect("secret");
    let id = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    let ours = signature_header(std::slice::from_ref(&secret), id, 1_649_367_553, body);
    let theirs = receiver(&secret).sign(id, 1_649_367_553, body).expect("library signs");
    assert_eq!(ours, theirs);
    assert_eq!(ours, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
}

#[test]
fn our_header_verifies_with_the_library() {
    let secret = WebhookSecret::generate();
    let timestamp = now();
    let signature = signature_header(std::slice::from_ref(&secret), "evt_01", timestamp, BODY);
    receiver(&secret).verify(BODY, &headers("evt_01", timestamp, &signature)).expect("verifies");

    // The library must also reject what does not match, or the test above proves nothing.
    let tampered = br#"{"type":"attendance.punch","data":{"seq":18235,"user_pin":"10457"}}"#;
    assert!(receiver(&secret).verify(tampered, &headers("evt_01", timestamp, &signature)).is_err());
    assert!(receiver(&secret).verify(BODY, &headers("evt_02", timestamp, &signature)).is_err());
    assert!(receiver(&WebhookSecret::generate()).verify(BODY, &headers("evt_01", timestamp, &signature)).is_err());
}

#[test]
fn rotation_header_verifies_with_each_secret() {
    let current = WebhookSecret::generate();
    let retiring = WebhookSecret::generate();
    let timestamp = now();
    let signature = signature_header(&[current.clone(), retiring.clone()], "evt_rotate", timestamp, BODY);
    assert_eq!(signature.split(' ').count(), 2);
    let sent = headers("evt_rotate", timestamp, &signature);
    receiver(&current).verify(BODY, &sent).expect("current secret verifies");
    receiver(&retiring).verify(BODY, &sent).expect("retiring secret verifies");
    assert!(receiver(&WebhookSecret::generate()).verify(BODY, &sent).is_err());
}

#[test]
fn secrets_of_every_allowed_length_interoperate() {
    let timestamp = now();
    for len in [24, 32, 48, 64] {
        let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let secret = WebhookSecret::from_bytes(&key).expect("valid length");
        let signature = signature_header(std::slice::from_ref(&secret), "evt_len", timestamp, BODY);
        receiver(&secret).verify(BODY, &headers("evt_len", timestamp, &signature)).expect("verifies");
    }
}
