//! What an operator reads and switches to see what devices did: a device's stored options, the
//! row count of each table (what `adms-sim replay` checks for a session's `rows TABLE N` when it
//! has no database to read), and capture of one device's traffic at run time.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use super::auth::Authenticated;
use super::{ApiError, openapi};
use crate::state::SharedState;

/// A device's options as it last reported them (options dump, registry body, `INFO`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceOptions {
    sn: String,
    /// Key → value, keys in ascending order.
    options: BTreeMap<String, String>,
}

/// Read a device's stored options.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{sn}/options",
    tag = openapi::tag::DEVICES,
    params(("sn" = String, Path, description = "The device's serial number.")),
    responses(
        (status = 200, description = "The options.", body = DeviceOptions),
        (status = 404, description = "Unknown serial number.", body = openapi::Detail),
    )
)]
pub async fn device_options(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(sn): Path<String>,
) -> Result<Json<DeviceOptions>, ApiError> {
    let device = state.store.device_by_sn(&sn).await?.ok_or(ApiError::NotFound)?;
    let options = state.store.device_options(device.id).await?.into_iter().collect();
    Ok(Json(DeviceOptions { sn: device.sn, options }))
}

/// Rows per table.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TableCounts {
    /// Table → rows, for `devices`, `punches`, `rejected_lines`, `operation_logs`,
    /// `device_users`, `biometric_templates`, `user_photos`, `device_records`, `device_options`,
    /// `command_results`, `access_events`, `raw_uploads` and `att_photos`.
    tables: BTreeMap<&'static str, i64>,
}

/// Count the rows of each device-data table.
///
/// Each count reads its whole table: an administrator's check (and `adms-sim replay`'s `rows`
/// steps against a server whose database it cannot read), not something to poll.
#[utoipa::path(
    get,
    path = "/api/v1/stats/tables",
    tag = openapi::tag::DEVICES,
    responses((status = 200, description = "The counts.", body = TableCounts))
)]
pub async fn table_counts(
    State(state): State<SharedState>,
    _auth: Authenticated,
) -> Result<Json<TableCounts>, ApiError> {
    let tables = state.store.table_row_counts().await?.into_iter().collect();
    Ok(Json(TableCounts { tables }))
}

/// `POST /api/v1/capture`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// The device's serial number (it need not have connected yet).
    sn: String,
    /// How long to record it, seconds (1 to 86400).
    for_secs: u64,
}

/// What capture does now for the device.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CaptureStarted {
    sn: String,
    for_secs: u64,
}

/// Record one device's traffic for a while.
///
/// Needs a capture folder (`--capture-dir`, `[capture] dir`); with `[capture] all_devices`
/// every device is recorded already and this changes nothing. The files are the session scripts
/// `adms-sim replay` plays (see the README's *Capture*).
#[utoipa::path(
    post,
    path = "/api/v1/capture",
    tag = openapi::tag::DEVICES,
    request_body = CaptureRequest,
    responses(
        (status = 200, description = "Recording.", body = CaptureStarted),
        (status = 400, description = "Not `{\"sn\": …, \"for_secs\": 1..86400}`.", body = openapi::Detail),
        (status = 409, description = "The server has no capture folder.", body = openapi::Detail),
    )
)]
pub async fn start_capture(
    State(state): State<SharedState>,
    _auth: Authenticated,
    body: Bytes,
) -> Result<Json<CaptureStarted>, ApiError> {
    let bad = |detail: String| ApiError::BadRequest(serde_json::json!({ "detail": detail }));
    let request: CaptureRequest = serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
    if request.sn.is_empty() || request.sn.len() > 64 || request.sn.chars().any(char::is_control) {
        return Err(bad("sn: 1 to 64 characters, no control characters".to_owned()));
    }
    if !(1..=86_400).contains(&request.for_secs) {
        return Err(bad("for_secs: 1 to 86400".to_owned()));
    }
    let capture = state
        .capture
        .as_ref()
        .ok_or(ApiError::Conflict("The server has no capture folder (--capture-dir, [capture] dir)."))?;
    capture.enable(&request.sn, Duration::from_secs(request.for_secs));
    Ok(Json(CaptureStarted { sn: request.sn, for_secs: request.for_secs }))
}
