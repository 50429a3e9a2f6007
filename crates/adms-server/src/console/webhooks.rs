//! The console's webhook pages: the endpoints (pause and resume them), the backlog per
//! endpoint, the delivery log (filters in the URL, keyset-paged), one delivery with every
//! attempt and the receiver's answer, and resending it. Changes need `webhooks:admin`, as the
//! API's. Creating, rotating, deleting and replaying are in [`super::endpoints`].

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use adms_store::webhook_queries::ResendOutcome;

use super::pages::{Layout, encode};
use super::session::{ConsoleUser, CsrfForm, NoFields};
use super::{ConsoleError, render};
use crate::auth::Scope;
use crate::state::SharedState;

/// Deliveries per page.
const DELIVERIES_PER_PAGE: i64 = 50;
/// The delivery states a filter may name.
const DELIVERY_STATES: [&str; 5] = ["pending", "in_flight", "succeeded", "exhausted", "cancelled"];

struct BacklogLine {
    endpoint: String,
    href: String,
    facts: BacklogFacts,
}

/// One endpoint's backlog as the webhooks page and the endpoint's page show it.
pub(super) struct BacklogFacts {
    pub due: i64,
    pub waiting: i64,
    pub in_flight: i64,
    pub exhausted: i64,
    pub oldest_due: String,
    pub failures: i64,
    pub last_success: String,
    pub last_failure: String,
}

impl BacklogFacts {
    pub(super) fn of(b: &adms_store::webhooks::EndpointBacklog, zone: &crate::zones::Zone) -> BacklogFacts {
        let time = |t: Option<i64>| t.map_or_else(|| "never".to_owned(), |t| zone.format_micros(t));
        BacklogFacts {
            due: b.due,
            waiting: b.waiting,
            in_flight: b.in_flight,
            exhausted: b.exhausted,
            oldest_due: b.oldest_due_at.map(|t| zone.format_micros(t)).unwrap_or_default(),
            failures: b.consecutive_failures,
            last_success: time(b.last_success_at),
            last_failure: time(b.last_failure_at),
        }
    }
}

struct DeliveryLine {
    id: i64,
    href: String,
    event_id: String,
    event_type: String,
    endpoint: String,
    state: String,
    attempts: i64,
    last_answer: String,
    next_attempt: String,
    created: String,
}

fn delivery_line(state: &SharedState, d: adms_store::webhooks::DeliveryRow) -> DeliveryLine {
    let zone = &state.display_zone;
    let last_answer = match (d.last_status, d.last_error) {
        (Some(status), _) => format!("HTTP {status}"),
        (None, Some(error)) => error,
        (None, None) => String::new(),
    };
    DeliveryLine {
        id: d.id,
        href: format!("/ui/webhooks/deliveries/{}", d.id),
        event_id: d.event_id,
        event_type: d.event_type,
        endpoint: d.endpoint_uid,
        next_attempt: if d.state == "pending" { zone.format_micros(d.next_attempt_at) } else { String::new() },
        state: d.state,
        attempts: d.attempt_count,
        last_answer,
        created: zone.format_micros(d.created_at),
    }
}

struct EndpointLine {
    uid: String,
    /// The endpoint's page.
    href: String,
    /// Where its pause or resume form posts.
    action: String,
    url: String,
    description: String,
    events: String,
    paused: Option<String>,
}

#[derive(Template)]
#[template(path = "console/webhooks.html")]
struct WebhooksPage {
    layout: Layout,
    nav: &'static str,
    endpoints: Vec<EndpointLine>,
    can_change: bool,
    backlog: Vec<BacklogLine>,
    deliveries: Vec<DeliveryLine>,
    filter_endpoint: String,
    filter_state: String,
    first_page: Option<String>,
    next_page: Option<String>,
    /// The event types the create form offers.
    event_types: &'static [&'static str],
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct WebhooksQuery {
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    state: String,
    /// Keyset: the last id of the previous page.
    #[serde(default)]
    before: String,
    /// What a change left to say.
    done: Option<String>,
}

impl WebhooksQuery {
    fn href(&self, before: Option<i64>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [("endpoint", &self.endpoint), ("state", &self.state)] {
            if !value.is_empty() {
                query.append_pair(key, value);
            }
        }
        if let Some(before) = before {
            query.append_pair("before", &before.to_string());
        }
        let query = query.finish();
        if query.is_empty() { "/ui/webhooks".to_owned() } else { format!("/ui/webhooks?{query}") }
    }
}

/// `GET /ui/webhooks?endpoint=&state=&before=`.
pub async fn webhooks(
    State(state): State<SharedState>,
    user: ConsoleUser,
    Query(query): Query<WebhooksQuery>,
) -> Result<Response, ConsoleError> {
    webhooks_page(&state, &user, &query, None).await
}

/// The webhooks page with a change's refusal (400).
pub(super) async fn refused(state: &SharedState, user: &ConsoleUser, why: String) -> Result<Response, ConsoleError> {
    webhooks_page(state, user, &WebhooksQuery::default(), Some(why)).await
}

async fn webhooks_page(
    state: &SharedState,
    user: &ConsoleUser,
    query: &WebhooksQuery,
    error: Option<String>,
) -> Result<Response, ConsoleError> {
    if !query.state.is_empty() && !DELIVERY_STATES.contains(&query.state.as_str()) {
        return Err(ConsoleError::BadRequest("Unknown state in the address.".into()));
    }
    let before_id = match query.before.as_str() {
        "" => None,
        text => Some(text.parse::<i64>().map_err(|_| ConsoleError::BadRequest("Unknown page in the address.".into()))?),
    };
    let zone = &state.display_zone;
    let backlog = state
        .store
        .delivery_backlog(state.webhooks.clock.now_micros())
        .await?
        .into_iter()
        .map(|b| BacklogLine {
            href: format!("/ui/webhooks?endpoint={}", encode(&b.endpoint_uid)),
            facts: BacklogFacts::of(&b, zone),
            endpoint: b.endpoint_uid,
        })
        .collect();
    let endpoint = Some(query.endpoint.trim()).filter(|e| !e.is_empty());
    let filter_state = Some(query.state.as_str()).filter(|s| !s.is_empty());
    // One more than shown: whether there is an older page.
    let mut rows = state.store.list_deliveries(endpoint, filter_state, DELIVERIES_PER_PAGE + 1, before_id).await?;
    let more = rows.len() as i64 > DELIVERIES_PER_PAGE;
    rows.truncate(DELIVERIES_PER_PAGE as usize);
    let next_page = more.then(|| rows.last().map(|d| query.href(Some(d.id)))).flatten();
    let endpoints = state
        .store
        .list_endpoints()
        .await?
        .into_iter()
        .map(|e| EndpointLine {
            href: format!("/ui/webhooks/endpoints/{}", encode(&e.uid)),
            action: format!(
                "/ui/webhooks/endpoints/{}/{}",
                encode(&e.uid),
                if e.paused_reason.is_some() { "resume" } else { "pause" }
            ),
            uid: e.uid,
            url: e.url,
            description: e.description,
            events: e
                .event_types
                .and_then(|types| serde_json::from_str::<Vec<String>>(&types).ok())
                .map_or_else(|| "every type".to_owned(), |types| types.join(", ")),
            paused: e.paused_reason,
        })
        .collect();
    let mut layout = Layout::of(user);
    layout.notice = match query.done.as_deref() {
        Some("paused") => Some("Endpoint paused: its deliveries wait until it is resumed.".to_owned()),
        Some("resumed") => Some("Endpoint resumed.".to_owned()),
        Some("deleted") => Some("Endpoint deleted: its waiting deliveries were cancelled.".to_owned()),
        _ => None,
    };
    let status = if error.is_some() { axum::http::StatusCode::BAD_REQUEST } else { axum::http::StatusCode::OK };
    let mut response = render(&WebhooksPage {
        layout,
        nav: "webhooks",
        endpoints,
        can_change: user.scopes.allows(Scope::WebhooksAdmin),
        backlog,
        deliveries: rows.into_iter().map(|d| delivery_line(state, d)).collect(),
        filter_endpoint: query.endpoint.clone(),
        filter_state: query.state.clone(),
        first_page: before_id.is_some().then(|| query.href(None)),
        next_page,
        event_types: &adms_store::events::event_type::ALL,
        error,
    })?;
    *response.status_mut() = status;
    Ok(response)
}

struct AttemptLine {
    number: i64,
    trigger: String,
    started: String,
    duration: String,
    status: String,
    error: String,
    body: String,
}

#[derive(Template)]
#[template(path = "console/delivery.html")]
struct DeliveryPage {
    layout: Layout,
    nav: &'static str,
    delivery: DeliveryLine,
    attempts: Vec<AttemptLine>,
    can_resend: bool,
    error: Option<String>,
}

/// What a resend left on the delivery page.
#[derive(Debug, Default, Deserialize)]
pub struct DeliveryQuery {
    done: Option<String>,
}

/// `GET /ui/webhooks/deliveries/{id}`.
pub async fn delivery(
    State(state): State<SharedState>,
    user: ConsoleUser,
    Path(id): Path<String>,
    Query(query): Query<DeliveryQuery>,
) -> Result<Response, ConsoleError> {
    let notice = (query.done.as_deref() == Some("resent")).then(|| "Resent: the delivery is due now.".to_owned());
    delivery_page(&state, &user, &id, notice, None).await
}

async fn delivery_page(
    state: &SharedState,
    user: &ConsoleUser,
    id: &str,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, ConsoleError> {
    let id: i64 = id.parse().map_err(|_| ConsoleError::NotFound)?;
    // The newest delivery below id + 1: this one, when it exists.
    let row = state
        .store
        .list_deliveries(None, None, 1, Some(id.saturating_add(1)))
        .await?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or(ConsoleError::NotFound)?;
    let attempts = state.store.delivery_attempts(id).await?.unwrap_or_default();
    let zone = &state.display_zone;
    let mut layout = Layout::of(user);
    layout.notice = notice;
    let page = DeliveryPage {
        layout,
        nav: "webhooks",
        delivery: delivery_line(state, row),
        attempts: attempts
            .into_iter()
            .map(|a| AttemptLine {
                number: a.attempt_no,
                trigger: a.trigger_kind,
                started: zone.format_micros(a.started_at),
                duration: a.duration_us.map(|us| format!("{} ms", us / 1000)).unwrap_or_default(),
                status: a.http_status.map(|s| s.to_string()).unwrap_or_default(),
                error: [a.error_kind, a.error].into_iter().flatten().collect::<Vec<_>>().join(": "),
                body: a.response_body.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default(),
            })
            .collect(),
        can_resend: user.scopes.allows(Scope::WebhooksAdmin),
        error,
    };
    let mut response = render(&page)?;
    if page.error.is_some() {
        *response.status_mut() = axum::http::StatusCode::CONFLICT;
    }
    Ok(response)
}

/// `POST /ui/webhooks/deliveries/{id}/resend`: due now, as the API's resend.
pub async fn resend(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    CsrfForm(user, NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, ConsoleError> {
    user.may(Scope::WebhooksAdmin)?;
    let delivery: i64 = id.parse().map_err(|_| ConsoleError::NotFound)?;
    let why = match state.store.resend_delivery(delivery, state.webhooks.clock.now_micros()).await? {
        ResendOutcome::Queued => {
            state.webhooks.wake.notify_one();
            tracing::info!(delivery, by = %user.name, "webhook delivery resent from the console");
            super::actions::audit(&state, &user, "/ui/webhooks/deliveries/{id}/resend", &id).await;
            return Ok(Redirect::to(&format!("/ui/webhooks/deliveries/{delivery}?done=resent")).into_response());
        }
        ResendOutcome::NotFound => return Err(ConsoleError::NotFound),
        ResendOutcome::InFlight => "The delivery is being attempted right now; retry in a moment.",
        ResendOutcome::EndpointDeleted => "The delivery's endpoint was deleted: nothing would send it.",
    };
    delivery_page(&state, &user, &id, None, Some(why.to_owned())).await
}

async fn pause_or_resume(
    state: &SharedState,
    user: &ConsoleUser,
    uid: &str,
    paused: bool,
) -> Result<Response, ConsoleError> {
    user.may(Scope::WebhooksAdmin)?;
    let endpoint = state.store.endpoint_by_uid(uid).await?.ok_or(ConsoleError::NotFound)?;
    crate::services::webhooks::set_paused(state, uid, endpoint.paused_reason.as_deref(), paused).await?;
    let (route, done) = if paused {
        ("/ui/webhooks/endpoints/{uid}/pause", "paused")
    } else {
        ("/ui/webhooks/endpoints/{uid}/resume", "resumed")
    };
    tracing::info!(endpoint = %uid, by = %user.name, paused, "webhook endpoint paused or resumed from the console");
    super::actions::audit(state, user, route, uid).await;
    Ok(Redirect::to(&format!("/ui/webhooks?done={done}")).into_response())
}

/// `POST /ui/webhooks/endpoints/{uid}/pause`.
pub async fn pause(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    CsrfForm(user, NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, ConsoleError> {
    pause_or_resume(&state, &user, &uid, true).await
}

/// `POST /ui/webhooks/endpoints/{uid}/resume`.
pub async fn resume(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    CsrfForm(user, NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, ConsoleError> {
    pause_or_resume(&state, &user, &uid, false).await
}
