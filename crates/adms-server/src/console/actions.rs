//! The console's changes: each a POST form with the session's CSRF token ([`CsrfForm`]),
//! allowed to roles with `devices:control`, made through `services/` (the one way commands are
//! queued and device settings change), audited like an API change (a `session`, on its `/ui/` route), and
//! answered with a redirect to the device page (post/redirect/get), or the page again with the
//! error when the input was refused.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use adms_store::roster::OrgKind;
use adms_store::{Approval, EnqueueOutcome, NewAuditEntry, NewCommand, StoreError, now_micros};

use super::ConsoleError;
use super::pages::{device_href, device_page};
use super::session::{ConsoleUser, CsrfForm, NoFields};
use crate::auth::Scope;
use crate::services::commands::{action_commands, default_expiry, enqueue, validate_command};
use crate::state::SharedState;

/// Records a console change in the audit log; a failed write is logged and changes nothing
/// (as for the API).
pub(super) async fn audit(state: &SharedState, user: &ConsoleUser, route: &str, target: &str) {
    let entry = NewAuditEntry {
        at: now_micros(),
        actor: user.name.clone(),
        // A login session, as the API's session tokens are (the column's vocabulary); the
        // `/ui/` route says it was the console's.
        actor_kind: "session",
        user_id: Some(user.user_id),
        token_id: None,
        method: Method::POST.to_string(),
        route: route.to_owned(),
        target: Some(target.to_owned()),
        // Every change answers with the redirect to its page.
        status: Some(StatusCode::SEE_OTHER.as_u16()),
        address: None,
    };
    if let Err(error) = state.store.record_audit(&entry).await {
        tracing::warn!(%error, route, actor = %user.name, "audit entry not written");
    }
}

/// The redirect after a change: the device page with what was done.
fn done(sn: &str, what: &str) -> Response {
    Redirect::to(&format!("{}?done={what}", device_href(sn))).into_response()
}

async fn approval(state: &SharedState, user: &ConsoleUser, sn: &str, approval: Approval) -> Result<(), ConsoleError> {
    user.may(Scope::DevicesControl)?;
    if !crate::services::devices::set_approval(state, sn, approval).await? {
        return Err(ConsoleError::NotFound);
    }
    tracing::info!(sn, by = %user.name, approval = approval.as_str(), "device approval changed from the console");
    Ok(())
}

/// `POST /ui/devices/{sn}/approve`.
pub async fn approve(
    State(state): State<SharedState>,
    Path(sn): Path<String>,
    CsrfForm(user, NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, ConsoleError> {
    approval(&state, &user, &sn, Approval::Approved).await?;
    audit(&state, &user, "/ui/devices/{sn}/approve", &sn).await;
    Ok(done(&sn, "approved"))
}

/// `POST /ui/devices/{sn}/reject`: pending again.
pub async fn reject(
    State(state): State<SharedState>,
    Path(sn): Path<String>,
    CsrfForm(user, NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, ConsoleError> {
    approval(&state, &user, &sn, Approval::Pending).await?;
    audit(&state, &user, "/ui/devices/{sn}/reject", &sn).await;
    Ok(done(&sn, "rejected"))
}

#[derive(Debug, Deserialize)]
pub struct AliasForm {
    #[serde(default)]
    alias: String,
}

/// `POST /ui/devices/{sn}/alias`: at most 100 printable characters (the API's rule).
pub async fn rename(
    State(state): State<SharedState>,
    Path(sn): Path<String>,
    CsrfForm(user, form): CsrfForm<AliasForm>,
) -> Result<Response, ConsoleError> {
    user.may(Scope::DevicesControl)?;
    let alias = form.alias.trim();
    if alias.chars().count() > 100 || alias.chars().any(char::is_control) {
        let error = Some("An alias is at most 100 printable characters.".to_owned());
        return device_page(&state, &user, &sn, None, error, None).await;
    }
    if !crate::services::devices::rename(&state, &sn, alias).await? {
        return Err(ConsoleError::NotFound);
    }
    audit(&state, &user, "/ui/devices/{sn}/alias", &sn).await;
    Ok(done(&sn, "renamed"))
}

#[derive(Debug, Deserialize)]
pub struct AreaForm {
    #[serde(default)]
    area: String,
}

/// `POST /ui/devices/{sn}/area`: an existing area's id.
pub async fn set_area(
    State(state): State<SharedState>,
    Path(sn): Path<String>,
    CsrfForm(user, form): CsrfForm<AreaForm>,
) -> Result<Response, ConsoleError> {
    user.may(Scope::DevicesControl)?;
    let device = state.store.device_by_sn(&sn).await?.ok_or(ConsoleError::NotFound)?;
    let area = match form.area.trim().parse::<i64>() {
        Ok(id) => state.store.org_by_id(OrgKind::Area, id).await?,
        Err(_) => None,
    };
    let Some(area) = area else {
        let error = Some("Choose an existing area.".to_owned());
        return device_page(&state, &user, &sn, None, error, None).await;
    };
    crate::services::devices::set_area(&state, device.id, area.id).await?;
    tracing::info!(sn = %sn, by = %user.name, area = area.id, "terminal moved to another area from the console");
    audit(&state, &user, "/ui/devices/{sn}/area", &sn).await;
    Ok(done(&sn, "area"))
}

#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    action: String,
}

/// `POST /ui/devices/{sn}/action`: a terminal action (reboot, sync time, …), queued as the
/// API's terminal actions queue it (same commands, same de-duplication keys).
pub async fn terminal_action(
    State(state): State<SharedState>,
    Path(sn): Path<String>,
    CsrfForm(user, form): CsrfForm<ActionForm>,
) -> Result<Response, ConsoleError> {
    user.may(Scope::DevicesControl)?;
    let device = state.store.device_by_sn(&sn).await?.ok_or(ConsoleError::NotFound)?;
    let action = form.action.as_str();
    let Some(commands) = action_commands(action, state.zone_for(&device).now_local()) else {
        let error = Some("Unknown terminal action.".to_owned());
        return device_page(&state, &user, &sn, None, error, None).await;
    };
    if action == "clear_command" {
        let now = state.webhooks.clock.now_micros();
        state.store.cancel_queued_commands(device.id, &format!("cleared by {}", user.name), now).await?;
    } else {
        let expires_at = default_expiry(&state);
        let commands: Vec<NewCommand> = commands
            .into_iter()
            .map(|command| NewCommand {
                device_id: device.id,
                dedupe_key: Some(format!("terminals:{action}:{}", command.kind())),
                command,
                source: format!("console:{action}:{}", user.name),
                expires_at,
            })
            .collect();
        enqueue(&state, &commands).await?;
    }
    tracing::info!(sn = %sn, action, by = %user.name, "terminal action queued from the console");
    audit(&state, &user, "/ui/devices/{sn}/action", &sn).await;
    Ok(done(&sn, "action"))
}

#[derive(Debug, Deserialize)]
pub struct CommandForm {
    #[serde(default)]
    command: String,
}

/// `POST /ui/devices/{sn}/commands`: any typed command, as JSON, read and checked as the API
/// reads it (`services::commands::validate_command`), queued through `services::commands`.
pub async fn send_command(
    State(state): State<SharedState>,
    Path(sn): Path<String>,
    CsrfForm(user, form): CsrfForm<CommandForm>,
) -> Result<Response, ConsoleError> {
    user.may(Scope::DevicesControl)?;
    let device = state.store.device_by_sn(&sn).await?.ok_or(ConsoleError::NotFound)?;
    let text = form.command;
    let command = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(value @ serde_json::Value::Object(_)) => validate_command(&value),
        Ok(_) => Err("Must be an object such as {\"type\": \"reboot\"}.".to_owned()),
        Err(e) => Err(format!("Invalid JSON: {e}")),
    };
    let command = match command {
        Ok(command) => command,
        Err(why) => {
            let error = Some(format!("Command refused: {why}"));
            return device_page(&state, &user, &sn, None, error, Some(text)).await;
        }
    };
    let new = NewCommand {
        device_id: device.id,
        command,
        dedupe_key: None,
        source: format!("console:{}", user.name),
        expires_at: default_expiry(&state),
    };
    let enqueued = match enqueue(&state, std::slice::from_ref(&new)).await {
        Ok(enqueued) => enqueued,
        Err(StoreError::InvalidCommand(e)) => {
            let error = Some(format!("Command refused: {e}"));
            return device_page(&state, &user, &sn, None, error, Some(text)).await;
        }
        Err(other) => return Err(other.into()),
    };
    let outcome = match enqueued.first().map(|e| e.outcome) {
        Some(EnqueueOutcome::AlreadyQueued) => "already_queued",
        _ => "queued",
    };
    tracing::info!(sn = %sn, by = %user.name, kind = new.command.kind(), "command queued from the console");
    audit(&state, &user, "/ui/devices/{sn}/commands", &sn).await;
    Ok(done(&sn, outcome))
}

/// `POST /ui/commands/{id}/cancel`: only a queued command (a sent one may have run).
pub async fn cancel_command(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    CsrfForm(user, NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, ConsoleError> {
    user.may(Scope::DevicesControl)?;
    let id: i64 = id.parse().map_err(|_| ConsoleError::NotFound)?;
    let command = state.store.command(id).await?.ok_or(ConsoleError::NotFound)?;
    let now = state.webhooks.clock.now_micros();
    match state.store.cancel_command(id, &format!("cancelled by {}", user.name), now).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            let error = Some(format!("Command {id} is no longer queued: it may have run, and cannot be cancelled."));
            return device_page(&state, &user, &command.sn, None, error, None).await;
        }
        Err(other) => return Err(other.into()),
    }
    tracing::info!(id, by = %user.name, "command cancelled from the console");
    audit(&state, &user, "/ui/commands/{id}/cancel", &id.to_string()).await;
    Ok(done(&command.sn, "cancelled"))
}
