//! The native webhook API under `/api/v1/webhooks/`, and the per-device punch cursor
//! `/api/v1/devices/{sn}/punches` a receiver reconciles gaps with.
//!
//! Token auth on every route; errors are Django REST Framework bodies (`{"field": ["message"]}`
//! for invalid input, `{"detail": "Not found."}` for unknown ids). Times are RFC 3339 UTC.
//! Request bodies are read as JSON objects field by field, so a wrong type or an unknown field is
//! a 400 naming the field, never a generic rejection.

use std::ops::RangeInclusive;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value, json};

use adms_protocol::labels;
use adms_store::Approval;
use adms_store::events::{event_type, rfc3339_micros, rfc3339_seconds};
use adms_store::webhook_queries::{AttemptRow, CursorPunch, ReplayOutcome, ReplayRange, ResendOutcome};
use adms_store::webhooks::{DeliveryRow, Endpoint, EndpointBacklog, EndpointSettings};
use adms_webhooks::{
    AddressPolicy, BlockReason, NON_TEXT_BODY_MARKER, RESPONSE_CAPTURE_LIMIT, Url, UrlError, WebhookSecret, check_url,
    keep_as_text,
};

use super::auth::Authenticated;
use super::pagination::QueryParams;
use super::transactions::parse_filter_time;
use super::{ApiError, openapi};
use crate::state::SharedState;

/// Longest endpoint URL accepted.
const MAX_URL_CHARS: usize = 2048;
/// Longest endpoint description accepted.
const MAX_DESCRIPTION_CHARS: usize = 500;
const TIMEOUT_MS: RangeInclusive<i64> = 1_000..=30_000;
const DEFAULT_TIMEOUT_MS: i64 = 15_000;
const BATCH_MAX: RangeInclusive<i64> = 1..=500;
/// How long the previous secret stays valid after a rotation, at most (7 days).
const GRACE_SECS: RangeInclusive<i64> = 0..=7 * 86_400;
const DEFAULT_GRACE_SECS: i64 = 86_400;
const DELIVERY_LIMIT: RangeInclusive<i64> = 1..=500;
const DEFAULT_DELIVERY_LIMIT: i64 = 100;
const PUNCH_LIMIT: RangeInclusive<i64> = 1..=1_000;
const DEFAULT_PUNCH_LIMIT: i64 = 500;
/// Punch events one replay call may cover.
const MAX_REPLAY_EVENTS: i64 = 100_000;
/// Bytes of a receiver's response body shown per attempt: what the dispatcher keeps (rows
/// written by earlier versions may hold more, up to 20 KiB).
const RESPONSE_BODY_SHOWN: usize = RESPONSE_CAPTURE_LIMIT;
const DELIVERY_STATES: [&str; 5] = ["pending", "in_flight", "succeeded", "exhausted", "cancelled"];

// ---------------------------------------------------------------------------------------------
// Reading request bodies and query strings, DRF style.

/// Validation errors by field, answered together as one 400.
#[derive(Debug, Default)]
struct FieldErrors(Map<String, Value>);

impl FieldErrors {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        let entry = self.0.entry(field.to_owned()).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(messages) = entry {
            messages.push(Value::String(message.into()));
        }
    }

    fn check(self) -> Result<(), ApiError> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::BadRequest(Value::Object(self.0))) }
    }
}

/// A JSON object body; an empty body is an empty object.
fn parse_object(body: &Bytes, allowed: &[&str], errors: &mut FieldErrors) -> Result<Map<String, Value>, ApiError> {
    if body.trim_ascii().is_empty() {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(json!({ "detail": format!("JSON parse error - {e}") })))?;
    let Value::Object(object) = value else {
        return Err(ApiError::BadRequest(json!({
            "non_field_errors": ["Invalid data. Expected a dictionary."]
        })));
    };
    for key in object.keys().filter(|k| !allowed.contains(&k.as_str())) {
        errors.add(key, "Unknown field.");
    }
    Ok(object)
}

/// A field's value: absent, explicitly `null`, or present.
fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key)
}

fn string_field(object: &Map<String, Value>, key: &str, errors: &mut FieldErrors) -> Option<String> {
    match field(object, key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => {
            errors.add(key, "This field may not be null.");
            None
        }
        _ => {
            errors.add(key, "Not a valid string.");
            None
        }
    }
}

fn int_field(
    object: &Map<String, Value>,
    key: &str,
    range: &RangeInclusive<i64>,
    errors: &mut FieldErrors,
) -> Option<i64> {
    let value = field(object, key)?;
    match value.as_i64() {
        Some(n) if range.contains(&n) => Some(n),
        Some(_) => {
            errors.add(key, format!("Ensure this value is between {} and {}.", range.start(), range.end()));
            None
        }
        None => {
            errors.add(key, "A valid integer is required.");
            None
        }
    }
}

fn bool_field(object: &Map<String, Value>, key: &str, errors: &mut FieldErrors) -> Option<bool> {
    match field(object, key)? {
        Value::Bool(b) => Some(*b),
        _ => {
            errors.add(key, "Must be a valid boolean.");
            None
        }
    }
}

/// `event_types`: absent → `None`; `null` → every type (`Some(None)`); otherwise a non-empty
/// list of known types, de-duplicated, stored as a JSON array.
fn event_types_field(object: &Map<String, Value>, errors: &mut FieldErrors) -> Option<Option<String>> {
    const KEY: &str = "event_types";
    match field(object, KEY)? {
        Value::Null => Some(None),
        Value::Array(items) if items.is_empty() => {
            errors.add(KEY, "This list may not be empty; omit it or send null for every type.");
            None
        }
        Value::Array(items) => {
            let mut types: Vec<&str> = Vec::with_capacity(items.len());
            let mut valid = true;
            for item in items {
                match item.as_str() {
                    Some(t) if event_type::ALL.contains(&t) => {
                        if !types.contains(&t) {
                            types.push(t);
                        }
                    }
                    Some(t) => {
                        errors.add(
                            KEY,
                            format!("\"{t}\" is not a valid choice (one of: {}).", event_type::ALL.join(", ")),
                        );
                        valid = false;
                    }
                    None => {
                        errors.add(KEY, "Every item must be a string.");
                        valid = false;
                    }
                }
            }
            if !valid {
                return None;
            }
            Some(Some(serde_json::to_string(&types).unwrap_or_else(|_| "[]".into())))
        }
        _ => {
            errors.add(KEY, "Expected a list of items.");
            None
        }
    }
}

/// An endpoint URL: http(s), at most 2048 characters, not an IP literal the address policy
/// refuses (names are vetted again at every delivery, by the guarded resolver). Returns the
/// URL as parsed (normalised).
fn valid_url(raw: &str, policy: &AddressPolicy) -> Result<String, String> {
    let too_long = || format!("Ensure this field has no more than {MAX_URL_CHARS} characters.");
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(too_long());
    }
    let url = Url::parse(raw.trim()).map_err(|_| "Enter a valid URL.".to_owned())?;
    check_url(&url, policy).map_err(|e| match e {
        UrlError::UnsupportedScheme(_) => "Only http and https URLs are accepted.".to_owned(),
        UrlError::MissingHost => "Enter a valid URL.".to_owned(),
        UrlError::Blocked(blocked) if blocked.reason == BlockReason::OwnListener => format!(
            "Address {} is not allowed for webhooks ({}): the bridge does not send webhooks to itself.",
            blocked.ip, blocked.reason
        ),
        UrlError::Blocked(blocked) => format!(
            "Address {} is not allowed for webhooks ({}); an operator can open it with webhook_allow_list.",
            blocked.ip, blocked.reason
        ),
    })?;
    let url = String::from(url);
    if url.chars().count() > MAX_URL_CHARS {
        return Err(too_long());
    }
    Ok(url)
}

fn description_ok(description: &str) -> bool {
    description.chars().count() <= MAX_DESCRIPTION_CHARS
}

/// An integer query parameter within `range`, or `default` when absent.
fn query_int(
    params: &QueryParams,
    key: &str,
    range: &RangeInclusive<i64>,
    default: Option<i64>,
    errors: &mut FieldErrors,
) -> Option<i64> {
    let Some(text) = params.get(key) else { return default };
    match text.parse::<i64>() {
        Ok(n) if range.contains(&n) => Some(n),
        Ok(_) => {
            errors.add(key, format!("Ensure this value is between {} and {}.", range.start(), range.end()));
            None
        }
        Err(_) => {
            errors.add(key, "A valid integer is required.");
            None
        }
    }
}

/// A numeric id from the path; anything else is an unknown id (404).
fn path_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>().map_err(|_| ApiError::NotFound)
}

/// `ep_` + 24 random lowercase alphanumerics.
fn new_endpoint_uid() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..24).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect();
    format!("ep_{suffix}")
}

// ---------------------------------------------------------------------------------------------
// Response shapes.

/// An endpoint as the API shows it (never with a secret, except [`CreatedEndpoint`]).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    id: String,
    url: String,
    description: String,
    /// `null` = every event type.
    event_types: Option<Vec<String>>,
    paused: bool,
    /// `manual` (an operator) or `gone` (the receiver answered 410).
    paused_reason: Option<String>,
    /// `api`, or `env` for the endpoint `ADMS_WEBHOOK_URL` manages.
    source: String,
    timeout_ms: i64,
    batch_max: i64,
    ordered: bool,
    created_at: String,
    updated_at: String,
}

impl From<Endpoint> for EndpointView {
    fn from(ep: Endpoint) -> Self {
        EndpointView {
            event_types: ep.event_types.as_deref().and_then(|t| serde_json::from_str(t).ok()),
            paused: ep.paused_reason.is_some(),
            paused_reason: ep.paused_reason,
            id: ep.uid,
            url: ep.url,
            description: ep.description,
            source: ep.source,
            timeout_ms: ep.timeout_ms,
            batch_max: ep.batch_max,
            ordered: ep.ordered,
            created_at: rfc3339_micros(ep.created_at),
            updated_at: rfc3339_micros(ep.updated_at),
        }
    }
}

/// The creation answer: the endpoint and, this once, its signing secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    endpoint: EndpointView,
    secret: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DataList<T: Serialize> {
    data: Vec<T>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    id: i64,
    /// The `webhook-id` of the event.
    event_id: String,
    #[schema(value_type = EventType)]
    event_type: String,
    /// The endpoint id (`ep_…`).
    endpoint: String,
    #[schema(value_type = DeliveryState)]
    state: String,
    attempt_count: i64,
    /// When the next attempt is due (pending and in-flight deliveries only).
    next_attempt_at: Option<String>,
    last_status: Option<i64>,
    last_error: Option<String>,
    succeeded_at: Option<String>,
    created_at: String,
}

impl From<DeliveryRow> for DeliveryView {
    fn from(d: DeliveryRow) -> Self {
        let waiting = d.state == "pending" || d.state == "in_flight";
        DeliveryView {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            endpoint: d.endpoint_uid,
            next_attempt_at: waiting.then(|| rfc3339_micros(d.next_attempt_at)),
            state: d.state,
            attempt_count: d.attempt_count,
            last_status: d.last_status,
            last_error: d.last_error,
            succeeded_at: d.succeeded_at.map(rfc3339_micros),
            created_at: rfc3339_micros(d.created_at),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    #[schema(value_type = Vec<EventView>)]
    data: Vec<Value>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    next_before: Option<i64>,
}

/// List webhook events, newest first.
///
/// Each with the exact body that is sent (as JSON) and how many of its deliveries succeeded.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/events",
    tag = openapi::tag::WEBHOOKS,
    params(
        ("type" = Option<EventType>, Query, description = "Only this event type."),
        ("device_sn" = Option<String>, Query, description = "Only this device's events."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Default 100."),
        ("before" = Option<i64>, Query, minimum = 1, description = "An event `id`: older events (`next_before` of the previous page)."),
    ),
    responses(
        (status = 200, description = "One page of events.", body = EventPage),
        (status = 400, description = "An invalid filter.", body = openapi::ValidationErrors),
    )
)]
pub async fn list_events(
    State(state): State<SharedState>,
    _auth: Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Json<EventPage>, ApiError> {
    let params = QueryParams::parse(raw.as_deref());
    let mut errors = FieldErrors::default();
    let limit = query_int(&params, "limit", &DELIVERY_LIMIT, Some(DEFAULT_DELIVERY_LIMIT), &mut errors);
    let before = query_int(&params, "before", &(1..=i64::MAX), None, &mut errors);
    let kind = params.get("type");
    if let Some(k) = kind
        && !event_type::ALL.contains(&k)
    {
        errors.add("type", format!("\"{k}\" is not a valid choice (one of: {}).", event_type::ALL.join(", ")));
    }
    errors.check()?;
    let limit = limit.unwrap_or(DEFAULT_DELIVERY_LIMIT);
    let rows = state.store.list_events(kind, params.get("device_sn"), limit, before).await?;
    let next_before = (rows.len() as i64 == limit).then(|| rows.last().map(|e| e.id)).flatten();
    let data = rows
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id,
                "event_id": e.event_id,
                "type": e.event_type,
                "device_sn": e.device_sn,
                "seq": e.seq,
                "occurred_at": rfc3339_micros(e.occurred_at),
                "created_at": rfc3339_micros(e.created_at),
                "deliveries": e.deliveries,
                "delivered": e.delivered,
                "body": serde_json::from_slice::<Value>(&e.body).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(Json(EventPage { data, next_before }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryPage {
    data: Vec<DeliveryView>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    next_before: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    attempt_no: i64,
    trigger: String,
    worker: String,
    started_at: String,
    duration_ms: Option<f64>,
    /// The `webhook-id` of the batch this attempt carried; `null` when the event went alone.
    batch_id: Option<String>,
    http_status: Option<i64>,
    error_kind: Option<String>,
    error: Option<String>,
    /// The start of the receiver's answer (at most 1024 bytes) when it was text; a marker,
    /// `[non-text response body not kept]`, when it was not.
    response_body: Option<String>,
    /// The text shown fills the 1024 bytes kept: the answer may have gone on.
    response_body_truncated: bool,
    accepted: bool,
}

impl From<AttemptRow> for AttemptView {
    fn from(a: AttemptRow) -> Self {
        let (response_body, response_body_truncated) = match a.response_body {
            None => (None, false),
            Some(bytes) => {
                // New rows hold text or the marker already; rows of earlier versions may hold
                // any bytes, which are shown by the same rule (their Content-Type is unknown).
                let mut text =
                    String::from_utf8(keep_as_text(bytes, true)).unwrap_or_else(|_| NON_TEXT_BODY_MARKER.to_owned());
                // A character is at most 4 bytes, so text cut at the limit is longer than this.
                let truncated = text.len() > RESPONSE_BODY_SHOWN - 4;
                if text.len() > RESPONSE_BODY_SHOWN {
                    let mut cut = RESPONSE_BODY_SHOWN;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                }
                (Some(text), truncated)
            }
        };
        AttemptView {
            attempt_no: a.attempt_no,
            trigger: a.trigger_kind,
            worker: a.worker,
            started_at: rfc3339_micros(a.started_at),
            duration_ms: a.duration_us.map(|us| us as f64 / 1_000.0),
            batch_id: a.batch_id,
            http_status: a.http_status,
            error_kind: a.error_kind,
            error: a.error,
            response_body,
            response_body_truncated,
            accepted: a.accepted,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BacklogView {
    endpoint: String,
    due: i64,
    in_flight: i64,
    exhausted: i64,
    /// How long the oldest due delivery has been waiting; `null` when nothing is due.
    oldest_due_age_secs: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Coded<'a, C: Serialize> {
    code: C,
    name: &'a str,
}

/// A punch as the cursor serves it: the `data` of its `attendance.punch` webhook (without the
/// device, named once at the top) plus its API `id` and webhook `event_id`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PunchView {
    id: i64,
    event_id: Option<String>,
    seq: i64,
    pin: String,
    local_time: String,
    utc_time: Option<String>,
    time_basis: &'static str,
    punch_state: Coded<'static, String>,
    verify_mode: Coded<'static, i64>,
    work_code: String,
    received_at: String,
    raw: String,
}

impl From<CursorPunch> for PunchView {
    fn from(p: CursorPunch) -> Self {
        let utc_time = p.utc_time.map(rfc3339_seconds);
        PunchView {
            id: p.id,
            event_id: p.event_id,
            seq: p.seq,
            pin: p.pin,
            local_time: p.local_time,
            time_basis: if utc_time.is_some() { "device_clock" } else { "received" },
            utc_time,
            punch_state: Coded { name: labels::punch_state(&p.state), code: p.state },
            verify_mode: Coded { code: p.verify, name: labels::verify_type(p.verify) },
            work_code: p.work_code,
            received_at: rfc3339_micros(p.received_at),
            raw: p.raw_line,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PunchPage {
    device_sn: String,
    data: Vec<PunchView>,
    /// Pass as `after_seq` for the next call (the last `seq` returned, or the one given).
    next_after_seq: i64,
    /// Whether more punches follow right away (the page was full).
    has_more: bool,
}

// ---------------------------------------------------------------------------------------------
// Shapes for the document only: bodies the handlers read field by field and answers they build
// with `json!`.

/// Webhook event types.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only")]
pub enum EventType {
    #[schema(rename = "attendance.punch")]
    AttendancePunch,
    #[schema(rename = "device.registered")]
    DeviceRegistered,
    #[schema(rename = "device.online")]
    DeviceOnline,
    #[schema(rename = "device.offline")]
    DeviceOffline,
    #[schema(rename = "user.enrolled")]
    UserEnrolled,
    #[schema(rename = "user.updated")]
    UserUpdated,
    #[schema(rename = "command.completed")]
    CommandCompleted,
}

/// Delivery states.
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code, reason = "documentation only")]
pub enum DeliveryState {
    Pending,
    InFlight,
    Succeeded,
    Exhausted,
    Cancelled,
}

/// An event as `GET /api/v1/webhooks/events` lists it.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the handler builds it with json!")]
pub struct EventView {
    /// Pass as `before` for older events.
    id: i64,
    /// The `webhook-id`.
    event_id: String,
    #[schema(rename = "type")]
    event_type: EventType,
    device_sn: Option<String>,
    /// The punch's per-device `seq` (punch events).
    seq: Option<i64>,
    occurred_at: String,
    created_at: String,
    /// Deliveries of this event, and how many succeeded.
    deliveries: i64,
    delivered: i64,
    /// The exact JSON that is sent and signed.
    #[schema(value_type = Object)]
    body: Value,
}

/// The endpoint creation body; only `url` is required. Unknown fields are refused.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the handler reads the body field by field")]
#[serde(deny_unknown_fields)]
pub struct EndpointCreate {
    /// `http` or `https`, at most 2048 characters (after normalisation); an IP literal the
    /// address policy refuses is a 400.
    #[schema(max_length = 2048, format = "uri")]
    url: String,
    #[schema(max_length = 500, required = false)]
    description: String,
    /// The types to receive; absent or `null`: every type.
    #[schema(min_items = 1)]
    event_types: Option<Vec<EventType>>,
    /// Default 15000.
    #[schema(minimum = 1000, maximum = 30000, required = false)]
    timeout_ms: i64,
    /// Events per request, default 1.
    #[schema(minimum = 1, maximum = 500, required = false)]
    batch_max: i64,
    /// Per-device `seq` order, default false.
    #[schema(required = false)]
    ordered: bool,
}

/// The endpoint change body: any creation field, and `paused`. Unknown fields are refused.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the handler reads the body field by field")]
#[serde(deny_unknown_fields)]
pub struct EndpointUpdate {
    #[schema(max_length = 2048, format = "uri", required = false)]
    url: String,
    /// `null` clears it.
    #[schema(max_length = 500)]
    description: Option<String>,
    /// `null`: every type.
    #[schema(min_items = 1)]
    event_types: Option<Vec<EventType>>,
    #[schema(minimum = 1000, maximum = 30000, required = false)]
    timeout_ms: i64,
    #[schema(minimum = 1, maximum = 500, required = false)]
    batch_max: i64,
    #[schema(required = false)]
    ordered: bool,
    /// `true` stops attempts (deliveries keep accumulating); `false` resumes and makes waiting
    /// deliveries due at once.
    #[schema(required = false)]
    paused: bool,
}

/// The secret rotation body.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the handler reads the body field by field")]
#[serde(deny_unknown_fields)]
pub struct RotateSecretRequest {
    /// How long the previous secret stays valid, default 86400 (a day), at most 7 days.
    #[schema(minimum = 0, maximum = 604800, required = false)]
    grace_secs: i64,
}

/// The new secret, shown this once.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the handler answers with json!")]
pub struct RotatedSecret {
    /// `whsec_…`
    secret: String,
    previous_secrets_valid_until: String,
}

/// The replay body: every bound optional and inclusive.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the handler reads the body field by field")]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// A known device.
    #[schema(required = false)]
    device_sn: String,
    /// Per-device numbers, so they need `device_sn`.
    #[schema(minimum = 0, required = false)]
    from_seq: i64,
    #[schema(minimum = 0, required = false)]
    to_seq: i64,
    /// Device-local punch time `YYYY-MM-DD HH:MM:SS`, or a bare `YYYY-MM-DD` (the whole day).
    #[schema(required = false, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}:[0-9]{2})?$")]
    from_time: String,
    #[schema(required = false, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}:[0-9]{2})?$")]
    to_time: String,
}

/// What a replay queued.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the handler answers with json!")]
pub struct ReplayAnswer {
    /// Punches queued to the endpoint.
    replayed: i64,
    /// Of which had no event yet (stored before any endpoint existed).
    events_created: i64,
}

/// A resent delivery.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the handler answers with json!")]
pub struct ResendAnswer {
    id: i64,
    /// Always `pending`.
    state: DeliveryState,
}

/// The attempts of one delivery, oldest first.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the handler answers with json!")]
pub struct AttemptList {
    delivery_id: i64,
    data: Vec<AttemptView>,
}

// ---------------------------------------------------------------------------------------------
// Endpoints.

const ENDPOINT_FIELDS: [&str; 7] =
    ["url", "description", "event_types", "timeout_ms", "batch_max", "ordered", "paused"];

/// Create a webhook endpoint.
///
/// The answer is the only time the signing `secret` is shown. The endpoint receives the events
/// created after it exists; earlier punches reach it by a replay.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/endpoints",
    tag = openapi::tag::WEBHOOKS,
    request_body = EndpointCreate,
    responses(
        (status = 201, description = "Created, with its secret.", body = CreatedEndpoint),
        (status = 400, description = "Invalid or unknown fields, or invalid JSON.", body = openapi::ValidationErrors),
    )
)]
pub async fn create_endpoint(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedEndpoint>), ApiError> {
    let mut errors = FieldErrors::default();
    let object = parse_object(&body, &ENDPOINT_FIELDS[..6], &mut errors)?;
    let url = match string_field(&object, "url", &mut errors) {
        Some(raw) => valid_url(&raw, &state.webhooks.address_policy).map_err(|m| errors.add("url", m)).ok(),
        None => {
            if field(&object, "url").is_none() {
                errors.add("url", "This field is required.");
            }
            None
        }
    };
    let description = string_field(&object, "description", &mut errors).unwrap_or_default();
    if !description_ok(&description) {
        errors.add("description", format!("Ensure this field has no more than {MAX_DESCRIPTION_CHARS} characters."));
    }
    let event_types = event_types_field(&object, &mut errors).flatten();
    let timeout_ms = int_field(&object, "timeout_ms", &TIMEOUT_MS, &mut errors).unwrap_or(DEFAULT_TIMEOUT_MS);
    let batch_max = int_field(&object, "batch_max", &BATCH_MAX, &mut errors).unwrap_or(1);
    let ordered = bool_field(&object, "ordered", &mut errors).unwrap_or(false);
    errors.check()?;
    let url = url.ok_or_else(|| ApiError::Internal("validated URL missing".into()))?;
    let settings = EndpointSettings {
        url: &url,
        description: &description,
        event_types: event_types.as_deref(),
        timeout_ms,
        batch_max,
        ordered,
    };
    let secret = WebhookSecret::generate().to_string();
    let uid = new_endpoint_uid();
    let stored = state.webhooks.conceal(&uid, &secret);
    let endpoint = state.store.create_endpoint(&uid, &settings, "api", &stored).await?;
    tracing::info!(endpoint = %uid, url = %endpoint.url, by = %who.name, "webhook endpoint created");
    Ok((StatusCode::CREATED, Json(CreatedEndpoint { endpoint: endpoint.into(), secret })))
}

/// List webhook endpoints, oldest first (never a secret).
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/endpoints",
    tag = openapi::tag::WEBHOOKS,
    responses((status = 200, description = "Every endpoint.", body = DataList<EndpointView>))
)]
pub async fn list_endpoints(
    State(state): State<SharedState>,
    _auth: Authenticated,
) -> Result<Json<DataList<EndpointView>>, ApiError> {
    let endpoints = state.store.list_endpoints().await?;
    Ok(Json(DataList { data: endpoints.into_iter().map(EndpointView::from).collect() }))
}

/// Get one webhook endpoint.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/endpoints/{uid}",
    tag = openapi::tag::WEBHOOKS,
    params(("uid" = String, Path, description = "The endpoint id (`ep_…`).")),
    responses(
        (status = 200, description = "The endpoint.", body = EndpointView),
        (status = 404, description = "No such endpoint.", body = openapi::Detail),
    )
)]
pub async fn get_endpoint(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(uid): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    let endpoint = state.store.endpoint_by_uid(&uid).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(endpoint.into()))
}

/// Change, pause or resume a webhook endpoint.
///
/// Any of the creation fields, and `paused`.
#[utoipa::path(
    patch,
    path = "/api/v1/webhooks/endpoints/{uid}",
    tag = openapi::tag::WEBHOOKS,
    params(("uid" = String, Path, description = "The endpoint id (`ep_…`).")),
    request_body(content = Option<EndpointUpdate>, description = "An empty body changes nothing."),
    responses(
        (status = 200, description = "The endpoint as changed.", body = EndpointView),
        (status = 400, description = "Invalid or unknown fields, or invalid JSON.", body = openapi::ValidationErrors),
        (status = 404, description = "No such endpoint.", body = openapi::Detail),
    )
)]
pub async fn update_endpoint(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(uid): Path<String>,
    body: Bytes,
) -> Result<Json<EndpointView>, ApiError> {
    let current = state.store.endpoint_by_uid(&uid).await?.ok_or(ApiError::NotFound)?;
    let mut errors = FieldErrors::default();
    let object = parse_object(&body, &ENDPOINT_FIELDS, &mut errors)?;
    let url = string_field(&object, "url", &mut errors)
        .and_then(|raw| valid_url(&raw, &state.webhooks.address_policy).map_err(|m| errors.add("url", m)).ok());
    let description = match field(&object, "description") {
        Some(Value::Null) => Some(String::new()),
        _ => string_field(&object, "description", &mut errors),
    };
    if description.as_deref().is_some_and(|d| !description_ok(d)) {
        errors.add("description", format!("Ensure this field has no more than {MAX_DESCRIPTION_CHARS} characters."));
    }
    let event_types = event_types_field(&object, &mut errors);
    let timeout_ms = int_field(&object, "timeout_ms", &TIMEOUT_MS, &mut errors);
    let batch_max = int_field(&object, "batch_max", &BATCH_MAX, &mut errors);
    let ordered = bool_field(&object, "ordered", &mut errors);
    let paused = bool_field(&object, "paused", &mut errors);
    errors.check()?;

    let settings_changed = ["url", "description", "event_types", "timeout_ms", "batch_max", "ordered"]
        .iter()
        .any(|k| object.contains_key(*k));
    if settings_changed {
        let settings = EndpointSettings {
            url: url.as_deref().unwrap_or(&current.url),
            description: description.as_deref().unwrap_or(&current.description),
            event_types: match &event_types {
                Some(types) => types.as_deref(),
                None => current.event_types.as_deref(),
            },
            timeout_ms: timeout_ms.unwrap_or(current.timeout_ms),
            batch_max: batch_max.unwrap_or(current.batch_max),
            ordered: ordered.unwrap_or(current.ordered),
        };
        if !state.store.update_endpoint(&uid, &settings).await? {
            return Err(ApiError::NotFound);
        }
    }
    match (paused, current.paused_reason.as_deref()) {
        // Pausing overrides a `gone` pause with the operator's; resuming only when paused, so
        // an active endpoint's retry schedule is not disturbed.
        (Some(true), reason) if reason != Some("manual") => {
            state.store.set_endpoint_paused(&uid, Some("manual")).await?;
        }
        (Some(false), Some(_)) => {
            state.store.set_endpoint_paused(&uid, None).await?;
            state.webhooks.wake.notify_one();
        }
        _ => {}
    }
    let endpoint = state.store.endpoint_by_uid(&uid).await?.ok_or(ApiError::NotFound)?;
    tracing::info!(endpoint = %uid, by = %who.name, fields = ?object.keys().collect::<Vec<_>>(), "webhook endpoint changed");
    Ok(Json(endpoint.into()))
}

/// Delete a webhook endpoint.
///
/// Waiting deliveries are cancelled; the history stays listable.
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/endpoints/{uid}",
    tag = openapi::tag::WEBHOOKS,
    params(("uid" = String, Path, description = "The endpoint id (`ep_…`).")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such endpoint.", body = openapi::Detail),
    )
)]
pub async fn delete_endpoint(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(uid): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !state.store.delete_endpoint(&uid).await? {
        return Err(ApiError::NotFound);
    }
    tracing::info!(endpoint = %uid, by = %who.name, "webhook endpoint deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate an endpoint's signing secret.
///
/// Until the grace period ends, requests carry signatures with both the old and the new secret.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/endpoints/{uid}/rotate-secret",
    tag = openapi::tag::WEBHOOKS,
    params(("uid" = String, Path, description = "The endpoint id (`ep_…`).")),
    request_body(content = Option<RotateSecretRequest>, description = "An empty body keeps the default grace period."),
    responses(
        (status = 200, description = "The new secret, shown this once.", body = RotatedSecret),
        (status = 400, description = "Invalid `grace_secs`, unknown fields or invalid JSON.", body = openapi::ValidationErrors),
        (status = 404, description = "No such endpoint.", body = openapi::Detail),
    )
)]
pub async fn rotate_secret(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(uid): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let mut errors = FieldErrors::default();
    let object = parse_object(&body, &["grace_secs"], &mut errors)?;
    let grace_secs = int_field(&object, "grace_secs", &GRACE_SECS, &mut errors).unwrap_or(DEFAULT_GRACE_SECS);
    if state.store.endpoint_by_uid(&uid).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    errors.check()?;
    let secret = WebhookSecret::generate().to_string();
    // Secrets are checked against the dispatcher's clock.
    let valid_until = state.webhooks.clock.now_micros().saturating_add(grace_secs.saturating_mul(1_000_000));
    if !state.store.rotate_endpoint_secret(&uid, &state.webhooks.conceal(&uid, &secret), valid_until).await? {
        return Err(ApiError::NotFound);
    }
    tracing::info!(endpoint = %uid, by = %who.name, grace_secs, "webhook secret rotated");
    Ok(Json(json!({ "secret": secret, "previous_secrets_valid_until": rfc3339_micros(valid_until) })))
}

/// Replay punches to one endpoint.
///
/// Every punch in the range is queued to this endpoint only, due now; punches stored before
/// any endpoint existed get their event now, with the same id and body the live path would
/// have produced. At most 100,000 punches per call. Times are device-local `YYYY-MM-DD
/// HH:MM:SS` (a bare date is the whole day), bounds inclusive.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/endpoints/{uid}/replay",
    tag = openapi::tag::WEBHOOKS,
    params(("uid" = String, Path, description = "The endpoint id (`ep_…`).")),
    request_body(content = Option<ReplayRequest>, description = "An empty body replays every punch."),
    responses(
        (status = 202, description = "Queued.", body = ReplayAnswer),
        (status = 400, description = "An invalid range, an endpoint without `attendance.punch`, or too many punches.", body = openapi::ValidationErrors),
        (status = 404, description = "No such endpoint.", body = openapi::Detail),
    )
)]
pub async fn replay(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(uid): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let endpoint = state.store.endpoint_by_uid(&uid).await?.ok_or(ApiError::NotFound)?;
    let mut errors = FieldErrors::default();
    let object = parse_object(&body, &["device_sn", "from_seq", "to_seq", "from_time", "to_time"], &mut errors)?;
    let seq_range = 0..=i64::MAX;
    let from_seq = int_field(&object, "from_seq", &seq_range, &mut errors);
    let to_seq = int_field(&object, "to_seq", &seq_range, &mut errors);
    let mut local_time = |key: &str, end_of_day: bool| {
        let text = string_field(&object, key, &mut errors)?;
        // Exactly a date or a date and time: an RFC 3339 instant (`…Z`, `…+05:30`) would
        // otherwise be silently read as device-local time.
        let parsed = matches!(text.trim().len(), 10 | 19)
            .then(|| parse_filter_time(&text, end_of_day))
            .flatten()
            .map(|t| t.to_string());
        if parsed.is_none() {
            errors.add(key, "Enter a valid date/time: device-local YYYY-MM-DD HH:MM:SS or YYYY-MM-DD.");
        }
        parsed
    };
    let from_time = local_time("from_time", false);
    let to_time = local_time("to_time", true);
    let device_sn = string_field(&object, "device_sn", &mut errors);
    let device = match &device_sn {
        Some(sn) => {
            let device = state.store.device_by_sn(sn).await?;
            if device.is_none() {
                errors.add("device_sn", "Unknown device.");
            }
            device
        }
        None => None,
    };
    if (from_seq.is_some() || to_seq.is_some()) && device_sn.is_none() {
        errors.add("device_sn", "Required with from_seq/to_seq (seq numbers are per device).");
    }
    if let (Some(from), Some(to)) = (from_seq, to_seq)
        && from > to
    {
        errors.add("to_seq", "Must not be less than from_seq.");
    }
    if let (Some(from), Some(to)) = (&from_time, &to_time)
        && from > to
    {
        errors.add("to_time", "Must not be before from_time.");
    }
    if !receives_punches(endpoint.event_types.as_deref()) {
        errors.add("non_field_errors", "The endpoint does not subscribe to attendance.punch.");
    }
    errors.check()?;
    let range = ReplayRange {
        device_id: device.map(|d| d.id),
        from_seq,
        to_seq,
        from_local_time: from_time.as_deref(),
        to_local_time: to_time.as_deref(),
    };
    let now = state.webhooks.clock.now_micros();
    match state.store.replay_punches(&uid, &range, MAX_REPLAY_EVENTS, now).await? {
        ReplayOutcome::NotFound => Err(ApiError::NotFound),
        ReplayOutcome::TooMany(count) => Err(ApiError::BadRequest(json!({
            "non_field_errors": [format!(
                "The range holds {count} punches; at most {MAX_REPLAY_EVENTS} per replay. Narrow it (device_sn, seq or time bounds) and replay in parts."
            )]
        }))),
        ReplayOutcome::Replayed { events, events_created } => {
            if events > 0 {
                state.webhooks.wake.notify_one();
            }
            tracing::info!(endpoint = %uid, by = %who.name, events, events_created, "punches replayed to webhook endpoint");
            Ok((StatusCode::ACCEPTED, Json(json!({ "replayed": events, "events_created": events_created }))))
        }
    }
}

/// Whether an endpoint's filter (`None` = every type) takes punch events.
fn receives_punches(event_types: Option<&str>) -> bool {
    event_types.is_none_or(|types| {
        serde_json::from_str::<Vec<String>>(types)
            .is_ok_and(|types| types.iter().any(|t| t == event_type::ATTENDANCE_PUNCH))
    })
}

// ---------------------------------------------------------------------------------------------
// Deliveries.

/// List webhook deliveries, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/deliveries",
    tag = openapi::tag::WEBHOOKS,
    params(
        ("endpoint" = Option<String>, Query, description = "Only this endpoint's deliveries (`ep_…`)."),
        ("state" = Option<DeliveryState>, Query),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Default 100."),
        ("before" = Option<i64>, Query, minimum = 1, description = "A delivery id: older deliveries (`next_before` of the previous page)."),
    ),
    responses(
        (status = 200, description = "One page of deliveries.", body = DeliveryPage),
        (status = 400, description = "An invalid filter.", body = openapi::ValidationErrors),
    )
)]
pub async fn list_deliveries(
    State(state): State<SharedState>,
    _auth: Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Json<DeliveryPage>, ApiError> {
    let params = QueryParams::parse(raw.as_deref());
    let mut errors = FieldErrors::default();
    let limit = query_int(&params, "limit", &DELIVERY_LIMIT, Some(DEFAULT_DELIVERY_LIMIT), &mut errors);
    let before = query_int(&params, "before", &(1..=i64::MAX), None, &mut errors);
    let delivery_state = params.get("state");
    if let Some(s) = delivery_state
        && !DELIVERY_STATES.contains(&s)
    {
        errors.add("state", format!("\"{s}\" is not a valid choice (one of: {}).", DELIVERY_STATES.join(", ")));
    }
    errors.check()?;
    let limit = limit.unwrap_or(DEFAULT_DELIVERY_LIMIT);
    let rows = state.store.list_deliveries(params.get("endpoint"), delivery_state, limit, before).await?;
    let next_before = (rows.len() as i64 == limit).then(|| rows.last().map(|d| d.id)).flatten();
    Ok(Json(DeliveryPage { data: rows.into_iter().map(DeliveryView::from).collect(), next_before }))
}

/// List a delivery's attempts, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/deliveries/{id}/attempts",
    tag = openapi::tag::WEBHOOKS,
    params(("id" = i64, Path, description = "The delivery id.")),
    responses(
        (status = 200, description = "The attempts.", body = AttemptList),
        (status = 404, description = "No such delivery.", body = openapi::Detail),
    )
)]
pub async fn delivery_attempts(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id)?;
    let attempts = state.store.delivery_attempts(id).await?.ok_or(ApiError::NotFound)?;
    let data: Vec<AttemptView> = attempts.into_iter().map(AttemptView::from).collect();
    Ok(Json(json!({ "delivery_id": id, "data": data })))
}

/// Resend a delivery now.
///
/// A pending delivery keeps its attempt count; a succeeded, exhausted or cancelled one starts
/// a fresh 7-day schedule.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/deliveries/{id}/resend",
    tag = openapi::tag::WEBHOOKS,
    params(("id" = i64, Path, description = "The delivery id.")),
    responses(
        (status = 202, description = "Due now.", body = ResendAnswer),
        (status = 404, description = "No such delivery.", body = openapi::Detail),
        (status = 409, description = "Being sent right now, or its endpoint was deleted.", body = openapi::Detail),
    )
)]
pub async fn resend_delivery(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = path_id(&id)?;
    let now = state.webhooks.clock.now_micros();
    match state.store.resend_delivery(id, now).await? {
        ResendOutcome::Queued => {
            state.webhooks.wake.notify_one();
            tracing::info!(delivery = id, by = %who.name, "webhook delivery resent");
            Ok((StatusCode::ACCEPTED, Json(json!({ "id": id, "state": "pending" }))))
        }
        ResendOutcome::NotFound => Err(ApiError::NotFound),
        ResendOutcome::InFlight => Err(ApiError::Conflict("The delivery is being attempted right now; retry later.")),
        ResendOutcome::EndpointDeleted => Err(ApiError::Conflict("The delivery's endpoint was deleted.")),
    }
}

/// Show the delivery backlog of each live endpoint.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/backlog",
    tag = openapi::tag::WEBHOOKS,
    responses((status = 200, description = "Due, in-flight and exhausted deliveries per endpoint.", body = DataList<BacklogView>))
)]
pub async fn backlog(
    State(state): State<SharedState>,
    _auth: Authenticated,
) -> Result<Json<DataList<BacklogView>>, ApiError> {
    let now = state.webhooks.clock.now_micros();
    let rows = state.store.delivery_backlog(now).await?;
    let data = rows
        .into_iter()
        .map(|b: EndpointBacklog| BacklogView {
            endpoint: b.endpoint_uid,
            due: b.due,
            in_flight: b.in_flight,
            exhausted: b.exhausted,
            oldest_due_age_secs: b.oldest_due_at.map(|at| (now.saturating_sub(at).max(0) / 1_000) as f64 / 1_000.0),
        })
        .collect();
    Ok(Json(DataList { data }))
}

// ---------------------------------------------------------------------------------------------
// The reconciliation cursor.

/// Read a device's punches after a `seq` (the reconciliation cursor).
///
/// The device's punches with `seq > after_seq`, in `seq` order (gapless), each the `data` of
/// its `attendance.punch` event plus its transaction `id` and webhook `event_id`. Call again
/// with `after_seq=next_after_seq` while `has_more` is true. Devices pending approval answer
/// 404.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{sn}/punches",
    tag = openapi::tag::DEVICES,
    params(
        ("sn" = String, Path, description = "The device's serial number."),
        ("after_seq" = Option<i64>, Query, minimum = 0, description = "Default 0."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Default 500."),
    ),
    responses(
        (status = 200, description = "The next punches.", body = PunchPage),
        (status = 400, description = "An invalid `after_seq` or `limit`.", body = openapi::ValidationErrors),
        (status = 404, description = "Unknown or pending device.", body = openapi::Detail),
    )
)]
pub async fn device_punches(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(sn): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<PunchPage>, ApiError> {
    let params = QueryParams::parse(raw.as_deref());
    let mut errors = FieldErrors::default();
    let after_seq = query_int(&params, "after_seq", &(0..=i64::MAX), Some(0), &mut errors).unwrap_or(0);
    let limit = query_int(&params, "limit", &PUNCH_LIMIT, Some(DEFAULT_PUNCH_LIMIT), &mut errors);
    let device = state.store.device_by_sn(&sn).await?;
    // A device pending approval is held from the API, as in the transactions list.
    let device = device.filter(|d| d.approval == Approval::Approved).ok_or(ApiError::NotFound)?;
    errors.check()?;
    let limit = limit.unwrap_or(DEFAULT_PUNCH_LIMIT);
    let rows = state.store.punches_after_seq(device.id, after_seq, limit).await?;
    let next_after_seq = rows.last().map_or(after_seq, |p| p.seq);
    let has_more = rows.len() as i64 == limit;
    Ok(Json(PunchPage {
        device_sn: device.sn,
        data: rows.into_iter().map(PunchView::from).collect(),
        next_after_seq,
        has_more,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_for_scheme_length_and_literal_addresses() {
        let strict = AddressPolicy::default();
        let on_site = AddressPolicy { allow_private: true, ..AddressPolicy::default() };
        let listed = AddressPolicy {
            allow_list: vec!["127.0.0.1/32".parse().unwrap()],
            own_listeners: vec!["0.0.0.0:8081".parse().unwrap()],
            ..on_site.clone()
        };
        assert_eq!(valid_url("https://erp.example.com/hooks", &strict).as_deref(), Ok("https://erp.example.com/hooks"));
        assert_eq!(valid_url("http://erp.example.com", &strict).as_deref(), Ok("http://erp.example.com/"));
        assert!(valid_url("ftp://erp.example.com/", &strict).unwrap_err().contains("http and https"));
        assert!(valid_url("not a url", &strict).unwrap_err().contains("valid URL"));
        assert!(valid_url("http://127.0.0.1:9000/", &strict).unwrap_err().contains("127.0.0.1"));
        // Loopback opens only through the allow list, and never at the bridge's own port.
        assert!(valid_url("http://127.0.0.1:9000/", &on_site).unwrap_err().contains("127.0.0.1"));
        assert!(valid_url("http://localhost:9000/", &on_site).unwrap_err().contains("127.0.0.1"));
        assert!(valid_url("http://10.1.2.3/", &on_site).is_ok());
        assert!(valid_url("http://127.0.0.1:9000/", &listed).is_ok());
        assert!(valid_url("http://localhost:9000/", &listed).is_ok());
        assert!(valid_url("http://127.0.0.1:8081/", &listed).unwrap_err().contains("own listening address"));
        assert!(valid_url("http://169.254.169.254/", &on_site).unwrap_err().contains("169.254.169.254"));
        let long = format!("https://erp.example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(valid_url(&long, &strict).unwrap_err().contains("2048"));
    }

    #[test]
    fn endpoint_uids_are_ep_and_24_lowercase_alphanumerics() {
        let uid = new_endpoint_uid();
        assert_eq!(uid.len(), 27);
        let suffix = uid.strip_prefix("ep_").unwrap();
        assert!(suffix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{uid}");
        assert_ne!(uid, new_endpoint_uid());
    }

    #[test]
    fn event_type_filters() {
        let mut errors = FieldErrors::default();
        let object = |v: Value| v.as_object().cloned().unwrap();
        let types = event_types_field(
            &object(json!({"event_types": ["attendance.punch", "device.offline", "attendance.punch"]})),
            &mut errors,
        );
        assert_eq!(types, Some(Some(r#"["attendance.punch","device.offline"]"#.to_owned())));
        assert_eq!(event_types_field(&object(json!({"event_types": null})), &mut errors), Some(None));
        assert_eq!(event_types_field(&object(json!({})), &mut errors), None);
        assert!(errors.0.is_empty());
        assert_eq!(event_types_field(&object(json!({"event_types": ["punch"]})), &mut errors), None);
        assert_eq!(event_types_field(&object(json!({"event_types": []})), &mut errors), None);
        assert_eq!(errors.0["event_types"].as_array().map(Vec::len), Some(2));
        assert!(receives_punches(None));
        assert!(receives_punches(Some(r#"["device.online","attendance.punch"]"#)));
        assert!(!receives_punches(Some(r#"["device.online"]"#)));
    }

    #[test]
    fn response_bodies_are_cut_on_a_character_boundary() {
        let attempt = |body: Vec<u8>| AttemptRow {
            attempt_no: 1,
            trigger_kind: "scheduled".into(),
            worker: "w".into(),
            started_at: 0,
            duration_us: Some(1_500),
            batch_id: None,
            http_status: Some(500),
            error_kind: Some("http".into()),
            error: None,
            response_body: Some(body),
            accepted: true,
        };
        let view = AttemptView::from(attempt("é".repeat(RESPONSE_BODY_SHOWN).into_bytes()));
        assert!(view.response_body_truncated);
        assert_eq!(view.response_body.as_ref().map(String::len), Some(RESPONSE_BODY_SHOWN));
        assert_eq!(view.duration_ms, Some(1.5));
        let view = AttemptView::from(attempt("x".repeat(20 * 1024).into_bytes()));
        assert!(view.response_body_truncated, "a row of an earlier version, cut to what is shown");
        assert_eq!(view.response_body.as_ref().map(String::len), Some(RESPONSE_BODY_SHOWN));
        let view = AttemptView::from(attempt(b"database locked".to_vec()));
        assert_eq!(view.response_body.as_deref(), Some("database locked"));
        assert!(!view.response_body_truncated);
        // Bytes that are not UTF-8 (kept by earlier versions) are not shown.
        let view = AttemptView::from(attempt(vec![b'o', b'k', 0xff]));
        assert_eq!(view.response_body.as_deref(), Some(NON_TEXT_BODY_MARKER));
        assert!(!view.response_body_truncated);
    }
}
