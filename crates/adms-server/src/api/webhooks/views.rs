//! What the webhook routes answer: endpoints, deliveries, attempts, events, punches.
//!
//! Answers that were once built with `json!` (whose keys serde_json writes in sorted order)
//! declare their fields in that order, so the bytes a client reads are the same.

use serde::Serialize;
use serde_json::Value;

use adms_protocol::labels;
use adms_store::access_events::CursorAccessEvent;
use adms_store::events::{access_event_name_and_level, rfc3339_micros, rfc3339_seconds};
use adms_store::webhook_queries::{AttemptRow, CursorPunch, EventListRow};
use adms_store::webhooks::{DeliveryRow, Endpoint};
use adms_webhooks::{NON_TEXT_BODY_MARKER, RESPONSE_CAPTURE_LIMIT, keep_as_text};

use super::{DeliveryState, EventType};

/// Bytes of a receiver's response body shown per attempt: what the dispatcher keeps (rows
/// written by earlier versions may hold more, up to 20 KiB).
pub(super) const RESPONSE_BODY_SHOWN: usize = RESPONSE_CAPTURE_LIMIT;

/// An endpoint as the API shows it (never with its secret, which only the answers that create
/// the endpoint or rotate its secret show).
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
    pub endpoint: EndpointView,
    pub secret: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DataList<T: Serialize> {
    pub data: Vec<T>,
}

/// The new secret, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotatedSecret {
    pub previous_secrets_valid_until: String,
    /// `whsec_…`
    pub secret: String,
}

/// What a replay queued.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReplayAnswer {
    /// Of which had no event yet (stored before any endpoint existed).
    pub events_created: u64,
    /// Punches queued to the endpoint.
    pub replayed: u64,
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
pub struct DeliveryPage {
    pub data: Vec<DeliveryView>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    pub next_before: Option<i64>,
}

/// A resent delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResendAnswer {
    pub id: i64,
    /// Always `pending`.
    #[schema(value_type = DeliveryState)]
    pub state: &'static str,
}

/// The attempts of one delivery, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptList {
    pub data: Vec<AttemptView>,
    pub delivery_id: i64,
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
    pub endpoint: String,
    pub due: i64,
    pub in_flight: i64,
    pub exhausted: i64,
    /// How long the oldest due delivery has been waiting; `null` when nothing is due.
    pub oldest_due_age_secs: Option<f64>,
    /// Pending deliveries waiting out a retry delay: while a receiver is down its backlog is
    /// here, not in `due`.
    pub waiting: i64,
    /// How long the oldest undelivered delivery (due, waiting or in flight) has been queued;
    /// `null` when none is. It grows for as long as the receiver is down: alert on it.
    pub oldest_pending_age_secs: Option<f64>,
    /// Failed attempts in a row since the endpoint's last success.
    pub consecutive_failures: i64,
    /// When the endpoint last answered with success; `null`: never.
    pub last_success_at: Option<String>,
}

/// An event as `GET /api/v1/webhooks/events` lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    /// The exact JSON that is sent and signed.
    #[schema(value_type = Object)]
    body: Value,
    created_at: String,
    delivered: i64,
    /// Deliveries of this event, and how many succeeded.
    deliveries: i64,
    device_sn: Option<String>,
    /// The `webhook-id`.
    event_id: String,
    /// Pass as `before` for older events.
    id: i64,
    occurred_at: String,
    /// The punch's per-device `seq` (punch events).
    seq: Option<i64>,
    #[serde(rename = "type")]
    #[schema(value_type = EventType)]
    event_type: String,
}

impl From<EventListRow> for EventView {
    fn from(e: EventListRow) -> Self {
        EventView {
            id: e.id,
            event_id: e.event_id,
            event_type: e.event_type,
            device_sn: e.device_sn,
            seq: e.seq,
            occurred_at: rfc3339_micros(e.occurred_at),
            created_at: rfc3339_micros(e.created_at),
            deliveries: e.deliveries,
            delivered: e.delivered,
            body: serde_json::from_slice::<Value>(&e.body).unwrap_or(Value::Null),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub data: Vec<EventView>,
    /// Pass as `before` for the next (older) page; `null` on the last page.
    pub next_before: Option<i64>,
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

/// An access event as the cursor serves it: the `data` of its `access.event` webhook (without
/// the device, named once at the top) plus its `seq` and webhook `event_id`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccessEventView {
    /// The stored row's id (`access_event_id` in the webhook).
    id: i64,
    event_id: String,
    seq: i64,
    /// The controller's wall-clock time.
    local_time: String,
    /// `null` for events without a person (`pin=0` on the wire).
    pin: Option<String>,
    door: Option<i64>,
    event_code: Option<i64>,
    event_name: String,
    /// `normal`, `error` or `alarm`.
    level: &'static str,
    alarm: bool,
    /// 0 in, 1 out.
    in_out: Option<i64>,
    verify_type: String,
    received_at: String,
}

impl From<CursorAccessEvent> for AccessEventView {
    fn from(e: CursorAccessEvent) -> Self {
        let (event_name, level) = access_event_name_and_level(e.event_code);
        AccessEventView {
            id: e.id,
            event_id: e.event_id,
            seq: e.seq,
            local_time: e.local_time,
            pin: Some(e.pin).filter(|p| !p.is_empty() && p != "0"),
            door: e.door,
            event_code: e.event_code,
            event_name,
            level,
            alarm: level == "alarm",
            in_out: e.in_out,
            verify_type: e.verify_type,
            received_at: rfc3339_micros(e.received_at),
        }
    }
}

/// One page of a controller's access events after a `seq`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccessEventPage {
    pub device_sn: String,
    pub data: Vec<AccessEventView>,
    /// Pass as `after_seq` for the next call (the last `seq` returned, or the one given).
    pub next_after_seq: i64,
    /// Whether more events follow right away (the page was full).
    pub has_more: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PunchPage {
    pub device_sn: String,
    pub data: Vec<PunchView>,
    /// Pass as `after_seq` for the next call (the last `seq` returned, or the one given).
    pub next_after_seq: i64,
    /// Whether more punches follow right away (the page was full).
    pub has_more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The answers once built with `json!` keep its (sorted) key order.
    #[test]
    fn answers_keep_the_sorted_key_order() {
        let rotated = RotatedSecret { previous_secrets_valid_until: "t".into(), secret: "s".into() };
        let text = serde_json::to_string(&rotated).unwrap();
        assert_eq!(text, serde_json::to_string(&serde_json::to_value(&rotated).unwrap()).unwrap());
        let replay = ReplayAnswer { events_created: 1, replayed: 2 };
        assert_eq!(serde_json::to_string(&replay).unwrap(), r#"{"events_created":1,"replayed":2}"#);
        let event = EventView::from(EventListRow {
            id: 1,
            event_id: "evt".into(),
            event_type: "device.online".into(),
            device_sn: Some("S".into()),
            seq: None,
            occurred_at: 0,
            created_at: 0,
            body: br#"{"b":1,"a":2}"#.to_vec(),
            deliveries: 2,
            delivered: 1,
        });
        let text = serde_json::to_string(&event).unwrap();
        assert_eq!(text, serde_json::to_value(&event).unwrap().to_string());
        let attempts = AttemptList { data: vec![], delivery_id: 3 };
        let text = serde_json::to_string(&attempts).unwrap();
        assert_eq!(text, serde_json::to_value(&attempts).unwrap().to_string());
        let resent = ResendAnswer { id: 3, state: "pending" };
        assert_eq!(serde_json::to_string(&resent).unwrap(), serde_json::to_value(&resent).unwrap().to_string());
    }
}
