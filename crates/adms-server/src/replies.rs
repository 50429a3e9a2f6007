//! The plain-text reply a device gets, with the headers firmware needs: used by the device
//! routes and by the body-limit middleware (`limits`), which answers a device's 413 itself.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A plain-text device reply with the headers firmware needs.
pub fn reply(status: StatusCode, body: impl Into<String>) -> Response {
    reply_bytes(status, body.into().into_bytes())
}

/// [`reply`] for a body that is not UTF-8 (commands in a device's code page).
pub fn reply_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now())) {
        headers.insert(header::DATE, date);
    }
    response
}

pub fn ok(body: impl Into<String>) -> Response {
    reply(StatusCode::OK, body)
}
