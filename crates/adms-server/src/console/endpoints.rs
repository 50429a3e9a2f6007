//! Webhook endpoint management in the console: create one (URL, description, event types: the
//! API's rules and address policy, through `services::webhooks`), its page (settings, its
//! backlog, its deliveries), rotate its secret, replay a range of punches to it, delete it
//! after a confirmation step. Changes need `webhooks:admin`, as the API's.
//!
//! A new secret (after create and after a rotation) is shown in the answer itself (200, sent
//! `no-store`), never stored in the clear nor put in an address: a reload does not show it
//! again.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use adms_store::events::event_type;
use adms_store::webhook_queries::ReplayOutcome;
use adms_store::webhooks::{Endpoint, EndpointSettings};

use super::pages::{Layout, encode};
use super::session::{ConsoleUser, CsrfForm, NoFields};
use super::webhooks::BacklogFacts;
use super::{ConsoleError, render};
use crate::auth::Scope;
use crate::services::webhooks::{self as service, ReplayBounds};
use crate::state::SharedState;

/// The longest grace for the previous secret, in hours (7 days, as the API's).
const MAX_GRACE_HOURS: i64 = 7 * 24;

/// A secret to show once.
pub(super) struct NewSecret {
    pub what: &'static str,
    pub secret: String,
}

#[derive(Template)]
#[template(path = "console/endpoint.html")]
struct EndpointPage {
    layout: Layout,
    nav: &'static str,
    endpoint: Endpoint,
    href: String,
    events: String,
    created: String,
    backlog: Option<BacklogFacts>,
    deliveries_href: String,
    can_change: bool,
    secret: Option<NewSecret>,
    error: Option<String>,
    /// The replay form's fields as sent (kept after an error).
    replay: ReplayForm,
}

/// What a change left to say on the endpoint page.
#[derive(Debug, Default, Deserialize)]
pub struct EndpointQuery {
    done: Option<String>,
    replayed: Option<u64>,
    created: Option<u64>,
}

fn endpoint_href(uid: &str) -> String {
    format!("/ui/webhooks/endpoints/{}", encode(uid))
}

fn event_list(event_types: Option<&str>) -> String {
    event_types
        .and_then(|types| serde_json::from_str::<Vec<String>>(types).ok())
        .map_or_else(|| "every type".to_owned(), |types| types.join(", "))
}

async fn endpoint_page(
    state: &SharedState,
    user: &ConsoleUser,
    uid: &str,
    notice: Option<String>,
    secret: Option<NewSecret>,
    error: Option<String>,
    replay: ReplayForm,
) -> Result<Response, ConsoleError> {
    let endpoint = state.store.endpoint_by_uid(uid).await?.ok_or(ConsoleError::NotFound)?;
    let zone = &state.display_zone;
    // One row per endpoint (a handful): this one's.
    let backlog = state
        .store
        .delivery_backlog(state.webhooks.clock.now_micros())
        .await?
        .into_iter()
        .find(|b| b.endpoint_uid == endpoint.uid)
        .map(|b| BacklogFacts::of(&b, zone));
    let mut layout = Layout::of(user);
    layout.notice = notice;
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let mut response = render(&EndpointPage {
        layout,
        nav: "webhooks",
        href: endpoint_href(&endpoint.uid),
        events: event_list(endpoint.event_types.as_deref()),
        created: zone.format_micros(endpoint.created_at),
        deliveries_href: format!("/ui/webhooks?endpoint={}", encode(&endpoint.uid)),
        endpoint,
        backlog,
        can_change: user.scopes.allows(Scope::WebhooksAdmin),
        secret,
        error,
        replay,
    })?;
    *response.status_mut() = status;
    Ok(response)
}

/// `GET /ui/webhooks/endpoints/{uid}`.
pub async fn endpoint(
    State(state): State<SharedState>,
    user: ConsoleUser,
    Path(uid): Path<String>,
    Query(query): Query<EndpointQuery>,
) -> Result<Response, ConsoleError> {
    let notice = match query.done.as_deref() {
        Some("replayed") => Some(format!(
            "Replay queued: {} punch events due now to this endpoint ({} created for punches stored before any endpoint).",
            query.replayed.unwrap_or(0),
            query.created.unwrap_or(0)
        )),
        _ => None,
    };
    endpoint_page(&state, &user, &uid, notice, None, None, ReplayForm::default()).await
}

/// `POST /ui/webhooks/endpoints`: `url`, `description`, `event` (repeated; none: every type).
/// Answers the new endpoint's page with its secret, shown this once; a refusal answers the
/// webhooks page with the reason (400).
pub async fn create(
    State(state): State<SharedState>,
    CsrfForm(user, fields): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    user.may(Scope::WebhooksAdmin)?;
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).unwrap_or_default();
    let refuse = |why: String| super::webhooks::refused(&state, &user, why);
    let url = match service::valid_url(field("url"), &state.webhooks.address_policy) {
        Ok(url) => url,
        Err(why) => return refuse(format!("URL: {why}")).await,
    };
    let description = field("description");
    if description.chars().count() > service::MAX_DESCRIPTION_CHARS {
        return refuse(format!("Description: at most {} characters.", service::MAX_DESCRIPTION_CHARS)).await;
    }
    let mut types: Vec<&str> = Vec::new();
    for (_, word) in fields.iter().filter(|(k, _)| k == "event") {
        match event_type::ALL.iter().find(|t| **t == word.as_str()) {
            Some(known) if !types.contains(known) => types.push(known),
            Some(_) => {}
            None => return refuse(format!("Unknown event type \"{word}\".")).await,
        }
    }
    // None ticked: every type, as the API's absent list.
    let event_types = (!types.is_empty()).then(|| serde_json::to_string(&types).unwrap_or_else(|_| "[]".into()));
    let settings = EndpointSettings {
        url: &url,
        description,
        event_types: event_types.as_deref(),
        timeout_ms: service::DEFAULT_TIMEOUT_MS,
        batch_max: 1,
        ordered: false,
    };
    // Source `api`: the API documents `api` and `env`, and the console is the API's rules.
    let (endpoint, secret) = service::create_endpoint(&state, &settings, "api").await?;
    tracing::info!(endpoint = %endpoint.uid, url = %endpoint.url, by = %user.name, "webhook endpoint created from the console");
    super::actions::audit(&state, &user, "/ui/webhooks/endpoints", &endpoint.uid).await;
    let secret = Some(NewSecret { what: "created", secret });
    endpoint_page(&state, &user, &endpoint.uid, None, secret, None, ReplayForm::default()).await
}

#[derive(Debug, Default, Deserialize)]
pub struct RotateForm {
    /// How long the previous secret stays valid, in hours (empty: a day).
    #[serde(default)]
    grace_hours: String,
}

/// `POST /ui/webhooks/endpoints/{uid}/rotate-secret`: the new secret shown once.
pub async fn rotate_secret(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    CsrfForm(user, form): CsrfForm<RotateForm>,
) -> Result<Response, ConsoleError> {
    user.may(Scope::WebhooksAdmin)?;
    let grace_secs = match form.grace_hours.trim() {
        "" => service::DEFAULT_GRACE_SECS,
        hours => match hours.parse::<i64>() {
            Ok(hours) if (0..=MAX_GRACE_HOURS).contains(&hours) => hours * 3600,
            _ => {
                let why = format!("Hours the previous secret stays valid: 0 to {MAX_GRACE_HOURS}.");
                return endpoint_page(&state, &user, &uid, None, None, Some(why), ReplayForm::default()).await;
            }
        },
    };
    let (secret, _) = service::rotate_secret(&state, &uid, grace_secs).await?.ok_or(ConsoleError::NotFound)?;
    tracing::info!(endpoint = %uid, by = %user.name, grace_secs, "webhook secret rotated from the console");
    super::actions::audit(&state, &user, "/ui/webhooks/endpoints/{uid}/rotate-secret", &uid).await;
    let secret = Some(NewSecret { what: "rotated", secret });
    endpoint_page(&state, &user, &uid, None, secret, None, ReplayForm::default()).await
}

#[derive(Template)]
#[template(path = "console/endpoint_delete.html")]
struct DeletePage {
    layout: Layout,
    nav: &'static str,
    endpoint: Endpoint,
    href: String,
}

/// `GET /ui/webhooks/endpoints/{uid}/delete`: the confirmation step.
pub async fn confirm_delete(
    State(state): State<SharedState>,
    user: ConsoleUser,
    Path(uid): Path<String>,
) -> Result<Response, ConsoleError> {
    user.may(Scope::WebhooksAdmin)?;
    let endpoint = state.store.endpoint_by_uid(&uid).await?.ok_or(ConsoleError::NotFound)?;
    render(&DeletePage { layout: Layout::of(&user), nav: "webhooks", href: endpoint_href(&endpoint.uid), endpoint })
}

/// `POST /ui/webhooks/endpoints/{uid}/delete`: waiting deliveries are cancelled, the history
/// stays listable (as the API's delete).
pub async fn delete(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    CsrfForm(user, NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, ConsoleError> {
    user.may(Scope::WebhooksAdmin)?;
    if !state.store.delete_endpoint(&uid).await? {
        return Err(ConsoleError::NotFound);
    }
    tracing::info!(endpoint = %uid, by = %user.name, "webhook endpoint deleted from the console");
    super::actions::audit(&state, &user, "/ui/webhooks/endpoints/{uid}/delete", &uid).await;
    Ok(Redirect::to("/ui/webhooks?done=deleted").into_response())
}

/// The replay form: every bound optional and inclusive, as the API's replay body.
#[derive(Debug, Default, Deserialize)]
pub struct ReplayForm {
    #[serde(default)]
    device_sn: String,
    #[serde(default)]
    from_seq: String,
    #[serde(default)]
    to_seq: String,
    #[serde(default)]
    from_time: String,
    #[serde(default)]
    to_time: String,
}

impl ReplayForm {
    /// The bounds, or what is wrong with a field (as the page says it).
    fn bounds(&self) -> Result<ReplayBounds, String> {
        let text = |value: &str| Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        let seq = |name: &str, value: &str| match value.trim() {
            "" => Ok(None),
            number => {
                number.parse::<i64>().ok().filter(|n| *n >= 0).map(Some).ok_or(format!("{name}: a number, 0 or more."))
            }
        };
        let time = |name: &str, value: &str, end_of_day: bool| match value.trim() {
            "" => Ok(None),
            given => crate::api::replay_local_time(given, end_of_day)
                .map(Some)
                .ok_or(format!("{name}: device-local YYYY-MM-DD HH:MM:SS or YYYY-MM-DD.")),
        };
        Ok(ReplayBounds {
            device_sn: text(&self.device_sn),
            from_seq: seq("From seq", &self.from_seq)?,
            to_seq: seq("To seq", &self.to_seq)?,
            from_local_time: time("From time", &self.from_time, false)?,
            to_local_time: time("To time", &self.to_time, true)?,
        })
    }
}

/// `POST /ui/webhooks/endpoints/{uid}/replay`: the API's replay, from a form.
pub async fn replay(
    State(state): State<SharedState>,
    Path(uid): Path<String>,
    CsrfForm(user, form): CsrfForm<ReplayForm>,
) -> Result<Response, ConsoleError> {
    user.may(Scope::WebhooksAdmin)?;
    let endpoint = state.store.endpoint_by_uid(&uid).await?.ok_or(ConsoleError::NotFound)?;
    let bounds = match form.bounds() {
        Ok(bounds) => bounds,
        Err(why) => return endpoint_page(&state, &user, &uid, None, None, Some(why), form).await,
    };
    let (device_id, refusals) = service::check_replay(&state, &endpoint, &bounds).await?;
    if !refusals.is_empty() {
        let why = refusals.iter().map(|(_, why)| *why).collect::<Vec<_>>().join(" ");
        return endpoint_page(&state, &user, &uid, None, None, Some(why), form).await;
    }
    match service::replay(&state, &uid, device_id, &bounds).await? {
        ReplayOutcome::NotFound => Err(ConsoleError::NotFound),
        ReplayOutcome::TooMany(count) => {
            let why = service::too_many_to_replay(count);
            endpoint_page(&state, &user, &uid, None, None, Some(why), form).await
        }
        ReplayOutcome::Replayed { events, events_created } => {
            tracing::info!(endpoint = %uid, by = %user.name, events, events_created, "punches replayed from the console");
            super::actions::audit(&state, &user, "/ui/webhooks/endpoints/{uid}/replay", &uid).await;
            let href = format!("{}?done=replayed&replayed={events}&created={events_created}", endpoint_href(&uid));
            Ok(Redirect::to(&href).into_response())
        }
    }
}
