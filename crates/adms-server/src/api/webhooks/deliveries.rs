//! `/api/v1/webhooks/deliveries` and `/backlog`: the outbox, each delivery's attempts, resending.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use adms_store::events::rfc3339_micros;
use adms_store::webhook_queries::ResendOutcome;
use adms_store::webhooks::EndpointBacklog;

use super::views::{AttemptList, AttemptView, BacklogView, DataList, DeliveryPage, DeliveryView, ResendAnswer};
use super::{DELIVERY_STATES, DeliveryState, not_a_choice};
use crate::api::auth::Authenticated;
use crate::api::pagination::KeysetPage;
use crate::api::{ApiError, openapi, parse_id};
use crate::state::SharedState;

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
    KeysetPage { params, limit, before, mut errors }: KeysetPage,
) -> Result<Json<DeliveryPage>, ApiError> {
    let delivery_state = params.get("state");
    if let Some(s) = delivery_state
        && !DELIVERY_STATES.contains(&s)
    {
        errors.add("state", not_a_choice(s, &DELIVERY_STATES));
    }
    errors.finish()?;
    let rows = state.store.list_deliveries(params.get("endpoint"), delivery_state, limit, before).await?;
    let next_before = KeysetPage::next_before(&rows, limit, |d| d.id);
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
) -> Result<Json<AttemptList>, ApiError> {
    let id = parse_id(&id)?;
    let attempts = state.store.delivery_attempts(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(AttemptList { delivery_id: id, data: attempts.into_iter().map(AttemptView::from).collect() }))
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
) -> Result<(StatusCode, Json<ResendAnswer>), ApiError> {
    let id = parse_id(&id)?;
    let now = state.webhooks.clock.now_micros();
    match state.store.resend_delivery(id, now).await? {
        ResendOutcome::Queued => {
            state.webhooks.wake.notify_one();
            tracing::info!(delivery = id, by = %who.name, "webhook delivery resent");
            Ok((StatusCode::ACCEPTED, Json(ResendAnswer { id, state: "pending" })))
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
    responses((status = 200, description = "Due, waiting, in-flight and exhausted deliveries and the health of each endpoint.", body = DataList<BacklogView>))
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
            waiting: b.waiting,
            oldest_pending_age_secs: b
                .oldest_pending_since
                .map(|at| (now.saturating_sub(at).max(0) / 1_000) as f64 / 1_000.0),
            consecutive_failures: b.consecutive_failures,
            last_success_at: b.last_success_at.map(rfc3339_micros),
        })
        .collect();
    Ok(Json(DataList { data }))
}
