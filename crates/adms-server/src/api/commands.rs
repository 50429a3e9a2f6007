//! The command queue through the API: the native `/api/v1/` routes (enqueue any typed command,
//! list a device's commands, get one, cancel a queued one) and the ZKBio Time terminal actions
//! (`POST /iclock/api/terminals/reboot/` and the others of `biotime_api.md` §2.3).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use adms_protocol::DeviceCommand;
use adms_store::{CommandRow, EnqueueOutcome, NewCommand, StoreError};

use super::auth::Authenticated;
use super::pagination::{Envelope, ListRequest, PageParams};
use super::request::rules::{self, required, string_or_null};
use super::request::{Field, FieldErrors, JsonObject};
use super::{ApiError, openapi};
use crate::services::commands::{TerminalAction, default_expiry, enqueue, strict_command};
use crate::state::SharedState;

/// `POST /api/v1/devices/{sn}/commands` body. Unknown fields are refused; every invalid field
/// is reported at once.
#[derive(Debug, Deserialize, utoipa::ToSchema, garde::Validate)]
pub struct EnqueueRequest {
    /// The typed command, e.g. `{"type": "reboot"}`.
    #[schema(value_type = DeviceCommand, required = true)]
    #[garde(custom(required), custom(command_object))]
    #[serde(default)]
    command: Field<Value>,
    /// While a command with this key is queued for the device, the same command is not queued
    /// again; a different one supersedes it. 1 to 200 printable characters.
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200)]
    #[garde(custom(string_or_null), custom(dedupe_key_text))]
    #[serde(default)]
    dedupe_key: Field<String>,
    /// Lifetime instead of the configured `command_ttl_secs`.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 31_622_400)]
    #[garde(custom(integer_or_null(1..=MAX_EXPIRES_IN_SECS)))]
    #[serde(default)]
    expires_in_secs: Field<i64>,
}

/// The longest lifetime a command may be given: a leap year.
const MAX_EXPIRES_IN_SECS: i64 = 366 * 86_400;

/// A JSON object; what is in it is read by [`read_command`].
fn command_object<C>(field: &Field<Value>, _: &C) -> garde::Result {
    match field {
        Field::Given(Value::Object(_)) | Field::Absent => Ok(()),
        _ => rules::fail("Must be an object such as {\"type\": \"reboot\"}."),
    }
}

fn dedupe_key_text<C>(field: &Field<String>, _: &C) -> garde::Result {
    match field.given() {
        Some(key) if key.is_empty() || key.len() > 200 || key.chars().any(char::is_control) => {
            rules::fail("1 to 200 printable characters.")
        }
        _ => Ok(()),
    }
}

/// An integer in `range`, or `null` (not given).
fn integer_or_null<C>(range: std::ops::RangeInclusive<i64>) -> impl FnOnce(&Field<i64>, &C) -> garde::Result {
    move |field, _| match field {
        Field::Absent | Field::Null => Ok(()),
        Field::Given(n) if range.contains(n) => Ok(()),
        Field::Given(_) | Field::Invalid(_) => rules::fail(format!("{} to {}.", range.start(), range.end())),
    }
}

/// The command of a body whose rules passed, read strictly ([`strict_command`]) and checked as
/// the device line it becomes; what is wrong is added to `errors` (under `command`, by field).
fn read_command(value: &Value, errors: &mut FieldErrors) -> Option<DeviceCommand> {
    let command = match strict_command(value) {
        Ok(command) => command,
        Err(message) => {
            errors.add("command", message);
            return None;
        }
    };
    match command.encode() {
        Ok(_) => Some(command),
        Err(e) => {
            errors.add_within("command", adms_store::commands::command_error_field(&e), e.to_string());
            None
        }
    }
}

/// A command as the API shows it. Times are in the display zone (`YYYY-MM-DD HH:MM:SS`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CommandView {
    id: i64,
    sn: String,
    kind: String,
    /// The typed command, as enqueued.
    #[schema(value_type = DeviceCommand)]
    command: Value,
    /// The exact line text sent after `C:<id>:`.
    wire: String,
    dedupe_key: Option<String>,
    source: String,
    /// `queued`, `sent`, `succeeded`, `failed`, `expired` or `cancelled`.
    #[schema(value_type = adms_model::CommandState)]
    state: String,
    return_code: Option<i64>,
    /// The return code's meaning, or why it expired or was cancelled.
    result: Option<String>,
    /// Data that came with the result (INFO options), as text.
    result_payload: Option<String>,
    send_count: i64,
    created_at: String,
    sent_at: Option<String>,
    completed_at: Option<String>,
    expires_at: Option<String>,
    /// Only in the answer to an enqueue: `queued`, `already_queued` or `superseded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'static str>,
    /// With `superseded`: the command it replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    superseded: Option<i64>,
}

impl CommandView {
    fn new(row: CommandRow, state: &SharedState) -> CommandView {
        let zone = &state.display_zone;
        CommandView {
            id: row.id,
            sn: row.sn,
            kind: row.kind,
            command: serde_json::from_str(&row.params).unwrap_or(Value::Null),
            wire: row.command,
            dedupe_key: row.dedupe_key,
            source: row.source,
            state: row.state,
            return_code: row.return_code,
            result: row.result,
            result_payload: row.result_payload.map(|p| match String::from_utf8(p) {
                Ok(text) => text,
                Err(e) => base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
            }),
            send_count: row.send_count,
            created_at: zone.format_micros(row.created_at),
            sent_at: row.sent_at.map(|t| zone.format_micros(t)),
            completed_at: row.completed_at.map(|t| zone.format_micros(t)),
            expires_at: (row.expires_at < i64::MAX).then(|| zone.format_micros(row.expires_at)),
            outcome: None,
            superseded: None,
        }
    }
}

fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::NotFound => ApiError::NotFound,
        StoreError::InvalidCommand(e) => {
            let field = adms_store::commands::command_error_field(&e);
            ApiError::BadRequest(json!({ "command": { field: [e.to_string()] } }))
        }
        other => ApiError::Store(other),
    }
}

async fn device_id(state: &SharedState, sn: &str) -> Result<i64, ApiError> {
    Ok(state.store.device_by_sn(sn).await?.ok_or(ApiError::NotFound)?.id)
}

/// Queue a command for a device.
///
/// With a `dedupe_key` already queued for the device, the same command is not queued again
/// (200 `already_queued`, the existing record) and a different one supersedes it (201
/// `superseded`, the old one cancelled). A value that would break the command line (a control
/// character, over a length limit) is refused naming the field.
#[utoipa::path(
    post,
    path = "/api/v1/devices/{sn}/commands",
    tag = openapi::tag::COMMANDS,
    params(("sn" = String, Path, description = "The device's serial number.")),
    request_body = EnqueueRequest,
    responses(
        (status = 201, description = "Queued (`outcome` `queued` or `superseded`).", body = CommandView),
        (status = 200, description = "The same command was already queued under `dedupe_key` (`outcome` `already_queued`).", body = CommandView),
        (status = 400, description = "Malformed JSON or unknown `type` (`non_field_errors`), or `{\"command\": {\"<field>\": [...]}}`.", body = openapi::ValidationErrors),
        (status = 404, description = "Unknown serial number.", body = openapi::Detail),
    )
)]
pub async fn enqueue_command(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(sn): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<CommandView>), ApiError> {
    let request = JsonObject::<EnqueueRequest>::parse(&body)?;
    let mut errors = request.errors();
    let command = match &request.body.command {
        Field::Given(value @ Value::Object(_)) => read_command(value, &mut errors),
        _ => None,
    };
    errors.finish()?;
    let command = command.ok_or_else(|| ApiError::Internal("a command passed its checks unread".into()))?;
    let request = request.body;
    let device_id = device_id(&state, &sn).await?;
    let expires_at = match request.expires_in_secs.given() {
        Some(&secs) => state.webhooks.clock.now_micros() + secs * 1_000_000,
        None => default_expiry(&state),
    };
    let new = NewCommand {
        device_id,
        command,
        dedupe_key: request.dedupe_key.given().cloned(),
        source: format!("api:{}", who.name),
        expires_at,
    };
    let enqueued = enqueue(&state, std::slice::from_ref(&new)).await.map_err(store_error)?;
    let done = enqueued.first().copied().ok_or_else(|| ApiError::Internal("enqueue returned nothing".into()))?;
    let row = state.store.command(done.id).await?.ok_or(ApiError::NotFound)?;
    tracing::info!(sn = %sn, by = %who.name, id = done.id, kind = new.command.kind(), "command enqueued");
    let mut view = CommandView::new(row, &state);
    let status = match done.outcome {
        EnqueueOutcome::Queued => {
            view.outcome = Some("queued");
            StatusCode::CREATED
        }
        EnqueueOutcome::AlreadyQueued => {
            view.outcome = Some("already_queued");
            StatusCode::OK
        }
        EnqueueOutcome::Superseded { previous } => {
            view.outcome = Some("superseded");
            view.superseded = Some(previous);
            StatusCode::CREATED
        }
    };
    Ok((status, Json(view)))
}

/// List a device's commands, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{sn}/commands",
    tag = openapi::tag::COMMANDS,
    params(
        ("sn" = String, Path, description = "The device's serial number."),
        ("state" = Option<adms_model::CommandState>, Query, description = "Only commands in this state."),
        PageParams,
    ),
    responses(
        (status = 200, description = "One page of commands.", body = Envelope<CommandView>),
        (status = 400, description = "Unknown `state`.", body = openapi::ValidationErrors),
        (status = 404, description = "Unknown serial number, or `Invalid page.`", body = openapi::Detail),
    )
)]
pub async fn list_commands(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(sn): Path<String>,
    list: ListRequest,
) -> Result<Json<Envelope<CommandView>>, ApiError> {
    let params = &list.params;
    let filter = params.get("state").filter(|s| !s.is_empty());
    if let Some(s) = filter
        && !["queued", "sent", "succeeded", "failed", "expired", "cancelled"].contains(&s)
    {
        return Err(ApiError::BadRequest(json!({ "state": [format!("Unknown state \"{s}\".")] })));
    }
    let device_id = device_id(&state, &sn).await?;
    let (count, rows) = state.store.list_commands(device_id, filter, list.store_page()).await?;
    let data = rows.into_iter().map(|r| CommandView::new(r, &state)).collect();
    Ok(Json(list.envelope(count, data)?))
}

/// Get one command.
#[utoipa::path(
    get,
    path = "/api/v1/commands/{id}",
    tag = openapi::tag::COMMANDS,
    params(("id" = i64, Path, description = "The command id.")),
    responses(
        (status = 200, description = "The command.", body = CommandView),
        (status = 404, description = "No such command.", body = openapi::Detail),
    )
)]
pub async fn get_command(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<CommandView>, ApiError> {
    let row = state.store.command(super::parse_id(&id)?).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(CommandView::new(row, &state)))
}

/// Cancel a queued command.
///
/// Only a queued command: a sent one may have run already.
#[utoipa::path(
    post,
    path = "/api/v1/commands/{id}/cancel",
    tag = openapi::tag::COMMANDS,
    params(("id" = i64, Path, description = "The command id.")),
    responses(
        (status = 200, description = "Cancelled; the record.", body = CommandView),
        (status = 404, description = "No such command.", body = openapi::Detail),
        (status = 409, description = "Not queued any more.", body = openapi::Detail),
    )
)]
pub async fn cancel_command(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<CommandView>, ApiError> {
    let now = state.webhooks.clock.now_micros();
    match state.store.cancel_command(super::parse_id(&id)?, &format!("cancelled by {}", who.name), now).await {
        Ok(row) => {
            tracing::info!(id = row.id, by = %who.name, "command cancelled");
            Ok(Json(CommandView::new(row, &state)))
        }
        Err(StoreError::Conflict(_)) => Err(ApiError::Conflict("Only a queued command can be cancelled.")),
        Err(e) => Err(store_error(e)),
    }
}

/// `{"terminals": [ids]}`, as ZKBio Time's terminal actions take it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TerminalsRequest {
    /// Terminal ids, as numbers or numeric strings.
    #[serde(default)]
    #[schema(value_type = Vec<i64>, min_items = 1)]
    terminals: Vec<Value>,
}

/// Run a terminal action: queue its commands for each terminal.
///
/// `POST /iclock/api/terminals/<action>/` (the path parameter is the action's name, not an
/// id): `reboot` → `REBOOT`; `upload_transaction` → `DATA QUERY ATTLOG` over the whole log;
/// `upload_all` → `CHECK`, `DATA QUERY USERINFO` and the same ATTLOG query; `clear_capture` →
/// `CLEAR PHOTO`; `clear_all` → `CLEAR DATA` (users, templates and attendance);
/// `clear_attendance` → `CLEAR LOG`; `sync_time` → `CHECK`; `read_info` → `INFO`;
/// `clear_command` cancels the queued, unsent commands. Repeating an action before the device
/// polls queues nothing new. An unknown id fails the whole batch, as in ZKBio Time.
#[utoipa::path(
    post,
    path = "/iclock/api/terminals/{id}",
    tag = openapi::tag::TERMINALS,
    params(("id" = inline(TerminalAction), Path, description = "The action.")),
    request_body = TerminalsRequest,
    responses(
        (status = 200, description = "`{\"detail\": \"Success.\"}`", body = openapi::Detail),
        (status = 400, description = "Invalid JSON, an empty list, or `{\"terminals\": {\"<index>\": [\"Invalid pk ...\"]}}`.", body = openapi::ValidationErrors),
        (status = 404, description = "Unknown action.", body = openapi::Detail),
    )
)]
pub async fn terminal_action(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(action): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let Some(typed_action) = TerminalAction::from_name(&action) else {
        return Err(ApiError::NotFound);
    };
    let request: TerminalsRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(json!({ "non_field_errors": [format!("Invalid JSON: {e}")] })))?;
    if request.terminals.is_empty() {
        return Err(ApiError::BadRequest(json!({ "terminals": ["This list may not be empty."] })));
    }
    let mut devices = Vec::new();
    let mut errors = serde_json::Map::new();
    for (i, raw) in request.terminals.iter().enumerate() {
        let id = raw.as_i64().or_else(|| raw.as_str().and_then(|s| s.trim().parse().ok()));
        let found = match id {
            Some(id) if !state.store.terminal_deleted(id).await? => state.store.device_by_id(id).await?,
            _ => None,
        };
        match found {
            Some(device) => devices.push(device),
            None => {
                let shown = raw.as_str().map_or_else(|| raw.to_string(), str::to_owned);
                errors.insert(i.to_string(), json!([format!("Invalid pk \"{shown}\" - object does not exist.")]));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::BadRequest(json!({ "terminals": errors })));
    }
    let now = state.webhooks.clock.now_micros();
    if typed_action == TerminalAction::ClearCommand {
        for device in &devices {
            state.store.cancel_queued_commands(device.id, &format!("cleared by {}", who.name), now).await?;
        }
    } else {
        let expires_at = default_expiry(&state);
        let mut commands = Vec::new();
        for device in &devices {
            let device_now = state.zone_for(device).now_local();
            for command in typed_action.commands(device_now) {
                commands.push(NewCommand {
                    device_id: device.id,
                    dedupe_key: Some(format!("terminals:{action}:{}", command.kind())),
                    command,
                    source: format!("terminals:{action}:{}", who.name),
                    expires_at,
                });
            }
        }
        enqueue(&state, &commands).await.map_err(store_error)?;
    }
    tracing::info!(action = %action, terminals = devices.len(), by = %who.name, "terminal action queued");
    Ok(Json(json!({ "detail": "Success." })))
}
