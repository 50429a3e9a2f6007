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

/// A receiver on loopback that answers 200 to every request and records it.
pub struct Receiver {
    pub url: String,
    pub received: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        use std::sync::{Arc, Mutex};
        async fn record(
            axum::extract::State(received): axum::extract::State<Arc<Mutex<Vec<Received>>>>,
            headers: HeaderMap,
            body: Bytes,
        ) -> axum::http::StatusCode {
            received.lock().unwrap().push(Received::from_headers(&headers, body));
            axum::http::StatusCode::OK
        }
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let app = axum::Router::new().route("/hook", axum::routing::post(record)).with_state(Arc::clone(&received));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url: format!("http://{addr}/hook"), received }
    }

    pub fn of_type(&self, event_type: &str) -> Vec<Received> {
        self.received.lock().unwrap().iter().filter(|r| r.event_type() == event_type).cloned().collect()
    }

    /// Waits (up to 15 s) until a request of `event_type` satisfying `matches` arrived.
    pub async fn wait_for(&self, event_type: &str, matches: impl Fn(&serde_json::Value) -> bool) -> Received {
        for _ in 0..300 {
            if let Some(r) = self.of_type(event_type).into_iter().find(|r| matches(&r.json())) {
                return r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no matching {event_type} event; got {:?}", self.of_type(event_type));
    }
}

/// An ATTLOG body of `n` distinct punches numbered from `from` (PIN `100 + i`, one minute apart).
pub fn attlog_lines(from: usize, n: usize) -> Vec<u8> {
    (from..from + n)
        .map(|i| format!("{}\t2026-11-20 {:02}:{:02}:00\t0\t1\t0\t0\t0\n", 100 + i, 8 + i / 60, i % 60))
        .collect::<String>()
        .into_bytes()
}
