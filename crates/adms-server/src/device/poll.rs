//! Heartbeats and command results: `getrequest`, `ping`, `devicecmd`.
//!
//! A poll is answered from memory: the device entry is cached and its activity is flushed in
//! batches, so the only database write on this path is an `INFO=` value that changed.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;

use adms_protocol::devicecmd::parse_command_results;
use adms_protocol::info::parse_info;
use adms_store::{CommandResultRow, DeviceFacts, DeviceInfoUpdate, RejectedLine, ResultOutcome};

use super::upload::{info_from_options, owned_options};
use super::{DeviceCtx, DeviceError, ok};
use crate::state::SharedState;

/// Heartbeat and command poll.
///
/// The due commands as `C:<id>:<command>` lines (in the device's text encoding), or `OK`
/// (answered from memory when nothing is queued). `INFO=` updates the device record when it
/// changed.
#[utoipa::path(
    method(get, post),
    path = "/iclock/getrequest",
    tag = crate::api::openapi::tag::DEVICE,
    security(()),
    params(crate::api::openapi::DeviceParams,
        ("INFO" = Option<String>, Query, description = "Firmware, counts and IP, comma-separated.")),
    responses(
        (status = 200, description = "`C:<id>:<command>` lines, or `OK`.", body = String, content_type = "text/plain"),
        (status = 400, description = "No valid `SN`: `ERROR: <reason>`.", body = String, content_type = "text/plain"),
    )
)]
pub async fn getrequest(State(state): State<SharedState>, ctx: DeviceCtx) -> Result<Response, DeviceError> {
    let q = ctx.query();
    if let Some(info) = q.info.as_deref()
        && ctx.entry.info_changed(info)
    {
        let i = parse_info(info);
        let update = DeviceInfoUpdate {
            firmware: i.firmware.map(str::to_owned),
            ip_address: i.ip_address.map(str::to_owned),
            user_count: i.user_count,
            fp_count: i.fp_count,
            face_count: i.face_count,
            transaction_count: i.attlog_count,
            fp_algorithm: i.fp_algorithm.map(str::to_owned),
            face_algorithm: i.face_algorithm.map(str::to_owned),
            ..DeviceInfoUpdate::default()
        };
        state.store.update_device_info(ctx.entry.id(), &update).await?;
        tracing::debug!(info, "device INFO recorded");
    }
    drop(q);
    match super::commands::poll_reply(&state, &ctx.entry).await? {
        Some(lines) => Ok(super::reply_bytes(axum::http::StatusCode::OK, lines)),
        None => Ok(ok("OK")),
    }
}

/// Keep-alive during long uploads.
#[utoipa::path(
    method(get, post),
    path = "/iclock/ping",
    tag = crate::api::openapi::tag::DEVICE,
    security(()),
    params(crate::api::openapi::DeviceParams),
    responses(
        (status = 200, description = "`OK`.", body = String, content_type = "text/plain"),
        (status = 400, description = "No valid `SN`: `ERROR: <reason>`.", body = String, content_type = "text/plain"),
    )
)]
pub async fn ping(_ctx: DeviceCtx) -> Response {
    ok("OK")
}

/// Command results.
///
/// One or many results per body (`ID=<id>&Return=<code>&CMD=<cmd>`, with data for `INFO`),
/// matched to this device's commands and stored in one transaction (re-sent bodies add
/// nothing). Always answered `OK`, even for unknown ids, so the device does not repeat.
#[utoipa::path(
    post,
    path = "/iclock/devicecmd",
    tag = crate::api::openapi::tag::DEVICE,
    security(()),
    params(crate::api::openapi::DeviceParams),
    request_body(content = Option<String>, content_type = "text/plain", description = "Result lines."),
    responses(
        (status = 200, description = "`OK`.", body = String, content_type = "text/plain"),
        (status = 400, description = "No valid `SN`: `ERROR: <reason>`.", body = String, content_type = "text/plain"),
    )
)]
pub async fn devicecmd(State(state): State<SharedState>, ctx: DeviceCtx, body: Bytes) -> Result<Response, DeviceError> {
    let mut results = Vec::new();
    let mut rejected = Vec::new();
    let mut facts = DeviceFacts::default();
    let device_id = ctx.entry.id();
    for item in parse_command_results(&body) {
        match item {
            Ok(r) => {
                if r.cmd.eq_ignore_ascii_case("INFO") && !r.payload.is_empty() {
                    let options = owned_options(r.payload);
                    if !options.is_empty() {
                        facts.info = Some(info_from_options(&options));
                        facts.options.extend(options);
                    }
                }
                results.push(CommandResultRow {
                    command_id: r.id.to_owned(),
                    return_code: r.return_code,
                    cmd: r.cmd.to_owned(),
                    head: r.head.to_vec(),
                    payload: r.payload.to_vec(),
                });
            }
            Err(r) => rejected.push(RejectedLine {
                table: "devicecmd",
                line_no: r.line.number,
                raw: r.line.bytes.to_vec(),
                reason: r.reason.code(),
            }),
        }
    }
    if !rejected.is_empty() {
        tracing::warn!(results = results.len(), rejected = rejected.len(), "devicecmd lines rejected and kept raw");
    }
    let now = state.webhooks.clock.now_micros();
    let outcomes =
        state.store.store_command_results(device_id, &results, &rejected, &facts, now, &state.commands).await?;
    let mut applied = 0;
    for (result, outcome) in results.iter().zip(&outcomes) {
        match outcome {
            ResultOutcome::Applied => applied += 1,
            ResultOutcome::Duplicate => tracing::debug!(id = %result.command_id, "duplicate command result"),
            other => tracing::warn!(
                id = %result.command_id,
                outcome = other.as_str(),
                "command result matches no command of this device; recorded"
            ),
        }
    }
    if applied > 0 {
        state.webhooks.wake.notify_one();
    }
    tracing::debug!(results = results.len(), applied, "command results stored");
    Ok(ok("OK"))
}

/// Keep-alive on the command-result path (some firmware polls it with GET).
#[utoipa::path(
    get,
    path = "/iclock/devicecmd",
    tag = crate::api::openapi::tag::DEVICE,
    security(()),
    params(crate::api::openapi::DeviceParams),
    responses(
        (status = 200, description = "`OK`.", body = String, content_type = "text/plain"),
        (status = 400, description = "No valid `SN`: `ERROR: <reason>`.", body = String, content_type = "text/plain"),
    )
)]
pub async fn devicecmd_ping(ctx: DeviceCtx) -> Response {
    ping(ctx).await
}

/// Keep-alive on the query-answer path (some firmware polls it with GET).
#[utoipa::path(
    get,
    path = "/iclock/querydata",
    tag = crate::api::openapi::tag::DEVICE,
    security(()),
    params(crate::api::openapi::DeviceParams),
    responses(
        (status = 200, description = "`OK`.", body = String, content_type = "text/plain"),
        (status = 400, description = "No valid `SN`: `ERROR: <reason>`.", body = String, content_type = "text/plain"),
    )
)]
pub async fn querydata_ping(ctx: DeviceCtx) -> Response {
    ping(ctx).await
}
