//! Write bodies as DRF parses them: JSON objects, and form-encoded bodies (one ZKBio Time
//! client creates employees form-encoded), read into one JSON map; and DRF-style field
//! validation that collects every error before answering 400.

use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde_json::{Map, Value, json};

use super::ApiError;

/// Largest write body accepted on the personnel routes.
const MAX_WRITE_BODY: usize = 256 * 1024;

/// A request body as a JSON object. Form fields given several times become arrays.
#[derive(Debug, Default)]
pub struct WriteBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for WriteBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let bytes = axum::body::to_bytes(request.into_body(), MAX_WRITE_BODY)
            .await
            .map_err(|_| ApiError::PayloadTooLarge(MAX_WRITE_BODY))?;
        if bytes.trim_ascii().is_empty() {
            return Ok(WriteBody::default());
        }
        if content_type.contains("json") || bytes.trim_ascii_start().starts_with(b"{") {
            return match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => Ok(WriteBody(map)),
                Ok(_) => Err(ApiError::BadRequest(
                    json!({ "non_field_errors": ["Invalid data. Expected a dictionary, but got a list or value."] }),
                )),
                Err(e) => Err(ApiError::BadRequest(json!({ "detail": format!("JSON parse error - {e}") }))),
            };
        }
        let mut map = Map::new();
        for (k, v) in form_urlencoded::parse(&bytes) {
            let v = Value::String(v.into_owned());
            match map.get_mut(k.as_ref()) {
                None => {
                    map.insert(k.into_owned(), v);
                }
                Some(Value::Array(items)) => items.push(v),
                Some(first) => {
                    let first = first.take();
                    map.insert(k.into_owned(), Value::Array(vec![first, v]));
                }
            }
        }
        Ok(WriteBody(map))
    }
}

/// The value of `key`, with `null` meaning "not given" (one client sends `null` for every
/// optional field it was not given).
pub fn given<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    body.get(key).filter(|v| !v.is_null())
}

/// Text as DRF's `CharField` reads it: strings, and numbers as their text.
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An integer from a number or a numeric string.
pub fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean as DRF's `BooleanField` reads it.
pub fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A list of ids: a JSON array of numbers or numeric strings, one number, or a
/// comma-separated string (form bodies).
pub fn id_list(value: &Value) -> Option<Vec<i64>> {
    match value {
        Value::Array(items) => items.iter().map(integer).collect(),
        Value::Number(_) => integer(value).map(|i| vec![i]),
        Value::String(s) => s.split(',').filter(|p| !p.trim().is_empty()).map(|p| p.trim().parse().ok()).collect(),
        _ => None,
    }
}

/// A `YYYY-MM-DD` date, checked for being a real day.
pub fn date(value: &Value) -> Option<String> {
    let s = text(value)?;
    let parsed: jiff::civil::Date = s.parse().ok()?;
    (s.len() == 10).then(|| parsed.to_string())
}

/// Text that may reach a device or a log line: no control characters (tab, newline) at all.
pub fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}
