//! What webhook tests share: the endpoint secret and one received request.

use axum::body::Bytes;
use axum::http::HeaderMap;

/// The `whsec_` secret the tests configure (the Standard Webhooks spec's test key).
pub const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// One webhook request as a receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: Bytes,
}

impl Received {
    /// From the three Standard Webhooks headers (by case-insensitive name) and the raw body.
    pub fn new(header: impl Fn(&str) -> String, body: Bytes) -> Received {
        Received {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp").parse().unwrap_or(0),
            signature: header("webhook-signature"),
            body,
        }
    }

    /// From an axum request's headers.
    pub fn from_headers(headers: &HeaderMap, body: Bytes) -> Received {
        Received::new(|name| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(), body)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }
}
