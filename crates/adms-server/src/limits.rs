//! Per-device daily quotas (`device_raw_quota_bytes_per_day`, `device_photo_quota_bytes_per_day`)
//! as the handlers use them, their refusal counter for `/metrics`, and the 413 a body over
//! `max_body_bytes` gets (plain text on device routes, DRF JSON on the API).

use std::collections::HashSet;
use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use adms_store::{Quota, QuotaKind};
use prometheus_client::metrics::counter::Counter;

/// Quota refusals of this process, and which (device, day, kind) were already logged.
#[derive(Debug, Default)]
pub struct QuotaGuard {
    /// Refusals of raw uploads, for `/metrics`.
    pub raw_refusals: Counter,
    /// Refusals of photos, for `/metrics`.
    pub photo_refusals: Counter,
    logged: Mutex<HashSet<(i64, i64, QuotaKind)>>,
}

impl QuotaGuard {
    /// Counts a refusal and logs it at warn, once per device, UTC day and kind (a device over
    /// its quota re-sends every few seconds; one line says what an operator needs).
    pub fn refused(&self, device_id: i64, sn: &str, kind: QuotaKind, quota: Quota) {
        let counter = match kind {
            QuotaKind::Raw => &self.raw_refusals,
            QuotaKind::Photo => &self.photo_refusals,
        };
        counter.inc();
        let first = {
            let mut logged = self.logged.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // Entries of past days are never looked at again.
            logged.retain(|&(_, day, _)| day >= quota.day);
            logged.insert((device_id, quota.day, kind))
        };
        if first {
            tracing::warn!(
                sn,
                kind = kind.as_str(),
                limit_bytes = quota.limit_bytes,
                "device over its daily quota: uploads of this kind refused with 413 until the next UTC day"
            );
        }
    }
}

/// Marks a 413 a handler produced with its own explanation (quota, streamed body limit), so
/// [`explain_body_limit`] leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct Explained;

/// The device reply for a body over `max_body_bytes`.
pub fn body_too_large_reply(limit: usize) -> Response {
    let mut response =
        crate::replies::reply(StatusCode::PAYLOAD_TOO_LARGE, format!("ERROR: body too large (limit {limit} bytes)"));
    response.extensions_mut().insert(Explained);
    response
}

/// Gives the 413 of the body limit (axum's extractors answer it with a generic text) the
/// shape of its side: `ERROR: body too large (limit N bytes)` for a device, `{"detail": ...}`
/// for the API, so the reason is visible in a device's log or an ERP's error report.
pub async fn explain_body_limit(State(limit): State<usize>, request: Request, next: Next) -> Response {
    // Paths are normalised before this layer (lower-cased device paths).
    let path = request.uri().path();
    let device = path.starts_with("/iclock/") && !path.starts_with("/iclock/api/");
    let response = next.run(request).await;
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE || response.extensions().get::<Explained>().is_some() {
        return response;
    }
    if device {
        return body_too_large_reply(limit);
    }
    let mut response = (
        StatusCode::PAYLOAD_TOO_LARGE,
        serde_json::json!({ "detail": format!("Request body too large (limit {limit} bytes).") }).to_string(),
    )
        .into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
