//! `/api/v1/webhooks/events`, the event log, and the per-device cursors a receiver reconciles
//! gaps with: `/api/v1/devices/{sn}/punches` and, for access controllers,
//! `/api/v1/devices/{sn}/access-events`.

use axum::Json;
use axum::extract::{Path, RawQuery, State};

use adms_store::Approval;
use adms_store::events::event_type;

use super::views::{AccessEventPage, AccessEventView, EventPage, EventView, PunchPage, PunchView};
use super::{EventType, not_a_choice};
use crate::api::auth::Authenticated;
use crate::api::pagination::{KeysetPage, QueryParams};
use crate::api::request::FieldErrors;
use crate::api::{ApiError, openapi};
use crate::state::SharedState;

const DEFAULT_CURSOR_LIMIT: i64 = 500;

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
    KeysetPage { params, limit, before, mut errors }: KeysetPage,
) -> Result<Json<EventPage>, ApiError> {
    let kind = params.get("type");
    if let Some(k) = kind
        && !event_type::ALL.contains(&k)
    {
        errors.add("type", not_a_choice(k, &event_type::ALL));
    }
    errors.finish()?;
    let rows = state.store.list_events(kind, params.get("device_sn"), limit, before).await?;
    let next_before = KeysetPage::next_before(&rows, limit, |e| e.id);
    Ok(Json(EventPage { data: rows.into_iter().map(EventView::from).collect(), next_before }))
}

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
    let SeqCursor { device, after_seq, limit } = SeqCursor::read(&state, &sn, raw.as_deref()).await?;
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

/// Read an access controller's events after a `seq` (the SIEM's cursor).
///
/// The controller's stored `rtlog` events with `seq > after_seq`, in `seq` order: numbered
/// 1, 2, 3… per controller in the order they were committed, with no gap, so a client that
/// stores the last `seq` it handled and asks again from there sees every event once (and every
/// replica answers the same). Each is the `data` of its `access.event` webhook plus `seq` and the
/// webhook's `event_id`. Call again with `after_seq=next_after_seq` while `has_more` is true.
/// Devices pending approval answer 404.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{sn}/access-events",
    tag = openapi::tag::DEVICES,
    params(
        ("sn" = String, Path, description = "The controller's serial number."),
        ("after_seq" = Option<i64>, Query, minimum = 0, description = "Default 0."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Default 500."),
    ),
    responses(
        (status = 200, description = "The next access events.", body = AccessEventPage),
        (status = 400, description = "An invalid `after_seq` or `limit`.", body = openapi::ValidationErrors),
        (status = 404, description = "Unknown or pending device.", body = openapi::Detail),
    )
)]
pub async fn device_access_events(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(sn): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<AccessEventPage>, ApiError> {
    let SeqCursor { device, after_seq, limit } = SeqCursor::read(&state, &sn, raw.as_deref()).await?;
    let rows = state.store.access_events_after_seq(device.id, &device.sn, after_seq, limit).await?;
    let next_after_seq = rows.last().map_or(after_seq, |e| e.seq);
    let has_more = rows.len() as i64 == limit;
    Ok(Json(AccessEventPage {
        device_sn: device.sn,
        data: rows.into_iter().map(AccessEventView::from).collect(),
        next_after_seq,
        has_more,
    }))
}

/// A per-device cursor request: the approved device and the validated `after_seq` and `limit`.
struct SeqCursor {
    device: adms_store::Device,
    after_seq: i64,
    limit: i64,
}

impl SeqCursor {
    async fn read(state: &SharedState, sn: &str, raw: Option<&str>) -> Result<SeqCursor, ApiError> {
        let params = QueryParams::parse(raw);
        let mut errors = FieldErrors::default();
        let after_seq = params.int_within("after_seq", &(0..=i64::MAX), Some(0), &mut errors).unwrap_or(0);
        let limit = params.int_within("limit", &(1..=1_000), Some(DEFAULT_CURSOR_LIMIT), &mut errors);
        let device = state.store.device_by_sn(sn).await?;
        // A device pending approval is held from the API, as in the transactions list.
        let device = device.filter(|d| d.approval == Approval::Approved).ok_or(ApiError::NotFound)?;
        errors.finish()?;
        Ok(SeqCursor { device, after_seq, limit: limit.unwrap_or(DEFAULT_CURSOR_LIMIT) })
    }
}
