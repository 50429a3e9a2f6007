//! The capture hook: the innermost middleware, which hands every `/iclock/*` exchange (not
//! `/iclock/api/*`) of a captured device to [`crate::capture::Capture`]. What the device
//! receives is unchanged: the request body is copied as the handler reads it (never read ahead
//! of it), and the answer, a short text, is collected and sent on as it was.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt as _;

use crate::capture::{Exchange, RECORDED_HEADERS};
use crate::state::SharedState;

/// What the handler read of the request body.
#[derive(Default)]
struct Copied {
    bytes: Vec<u8>,
    /// More than the capture queue would take: the copy stopped and the exchange is dropped.
    over_budget: bool,
}

pub async fn capture_exchange(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let Some(capture) = state.capture.as_ref() else { return next.run(request).await };
    let path = request.uri().path();
    if !path.starts_with("/iclock/") || path.starts_with("/iclock/api/") {
        return next.run(request).await;
    }
    let original = request.extensions().get::<OriginalUri>().map_or_else(|| request.uri().clone(), |o| o.0.clone());
    let query = original.query().unwrap_or_default();
    let sn = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k.eq_ignore_ascii_case("sn"))
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !capture.wants(&sn) {
        return next.run(request).await;
    }
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let target = original.path_and_query().map_or_else(|| original.path().to_owned(), |pq| pq.as_str().to_owned());
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter(|(name, _)| RECORDED_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect();
    let declared_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
    let copied = Arc::new(Mutex::new(Copied::default()));
    let budget = capture.max_queued_body();
    let (parts, body) = request.into_parts();
    let tee = copied.clone();
    let body = body.map_frame(move |frame| {
        if let Some(data) = frame.data_ref() {
            let mut copied = tee.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if copied.bytes.len() + data.len() > budget {
                copied.over_budget = true;
                copied.bytes = Vec::new();
            } else if !copied.over_budget {
                copied.bytes.extend_from_slice(data);
            }
        }
        frame
    });
    let response = next.run(Request::from_parts(parts, Body::new(body))).await;
    let (parts, body) = response.into_parts();
    // Device answers are short texts held in memory by their handlers: collecting them costs no
    // wait. A body that fails mid-stream is passed on as the error it was.
    let answer = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::warn!(sn, "device answer failed while captured: {error}");
            return Response::from_parts(parts, Body::new(http_body_util::Empty::<Bytes>::new()));
        }
    };
    let copied = std::mem::take(&mut *copied.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let body_complete = !copied.over_budget
        && match declared_length {
            Some(length) => copied.bytes.len() == length,
            // No length and not chunked: HTTP/1.1 says there is no body.
            None => !chunked && copied.bytes.is_empty(),
        };
    if copied.over_budget {
        capture.record_dropped(&sn);
    } else {
        capture.record(Exchange {
            sn,
            started,
            finished: Instant::now(),
            method,
            target,
            headers,
            body: Bytes::from(copied.bytes),
            body_complete,
            status: parts.status.as_u16(),
            answer: answer.clone(),
        });
    }
    Response::from_parts(parts, Body::from(answer))
}
