//! Native routes under `/api/v1/` for what ZKBio Time has no route for: device approval and
//! settings, and the list of rejected lines.

use axum::Json;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::HeaderMap;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use adms_protocol::text::TextEncoding;
use adms_store::Approval;

use super::ApiError;
use super::auth::Authenticated;
use super::pagination::{Envelope, PageRequest, QueryParams, envelope};
use crate::app::SharedState;
use crate::zones::parse_zone;

/// `PATCH /api/v1/devices/{sn}` body; absent fields are left unchanged.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceUpdate {
    approval: Option<String>,
    alias: Option<String>,
    time_zone: Option<String>,
    text_encoding: Option<String>,
}

pub async fn update_device(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(sn): Path<String>,
    Json(update): Json<DeviceUpdate>,
) -> Result<Json<Value>, ApiError> {
    let field_error = |field: &str, message: &str| ApiError::BadRequest(json!({ field: [message] }));
    if let Some(tz) = &update.time_zone
        && parse_zone(tz).is_none()
    {
        return Err(field_error("time_zone", "Unknown time zone (IANA name or ±HH:MM)."));
    }
    if let Some(enc) = &update.text_encoding
        && TextEncoding::for_label(enc).is_none()
    {
        return Err(field_error("text_encoding", "Unknown encoding label."));
    }
    if let Some(alias) = &update.alias
        && (alias.len() > 100 || alias.chars().any(char::is_control))
    {
        return Err(field_error("alias", "At most 100 printable characters."));
    }
    let approval = match update.approval.as_deref() {
        None => None,
        Some("approved") => Some(Approval::Approved),
        Some("pending") => Some(Approval::Pending),
        Some(_) => {
            return Err(field_error("approval", "Must be \"approved\" or \"pending\"."));
        }
    };
    let found = state
        .store
        .configure_device(&sn, update.alias.as_deref(), update.time_zone.as_deref(), update.text_encoding.as_deref())
        .await?;
    if !found {
        return Err(ApiError::NotFound);
    }
    if let Some(approval) = approval {
        state.store.set_approval(&sn, approval).await?;
    }
    state.devices.invalidate(&sn);
    tracing::info!(sn = %sn, by = %who.name, ?update, "device settings changed");
    let device = state.store.device_by_sn(&sn).await?.ok_or(ApiError::NotFound)?;
    if approval == Some(Approval::Approved) {
        // An approved terminal gets its area's roster (a pending one received nothing).
        crate::roster::sync_terminal(&state, device.id).await?;
    }
    Ok(Json(json!({
        "sn": device.sn,
        "alias": device.alias,
        "approval": device.approval.as_str(),
        "time_zone": device.time_zone,
        "text_encoding": device.text_encoding,
    })))
}

/// A rejected line; the raw bytes as base64 and, for reading, as lossy text.
#[derive(Debug, Serialize)]
pub struct RejectedLine {
    id: i64,
    sn: String,
    table: String,
    line_no: i64,
    reason: String,
    raw_base64: String,
    raw_text: String,
    seen_count: i64,
    first_seen: String,
    last_seen: String,
}

pub async fn rejected_lines(
    State(state): State<SharedState>,
    _auth: Authenticated,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> Result<Json<Envelope<RejectedLine>>, ApiError> {
    let params = QueryParams::parse(raw.as_deref());
    let page = PageRequest::from_params(&params)?;
    let (count, rows) = state.store.list_rejected_lines(params.get("sn"), page.store_page()).await?;
    page.check(count)?;
    let zone = &state.display_zone;
    let data = rows
        .into_iter()
        .map(|r| RejectedLine {
            id: r.id,
            sn: r.sn,
            table: r.table_name,
            line_no: r.line_no,
            reason: r.reason,
            raw_text: String::from_utf8_lossy(&r.raw).into_owned(),
            raw_base64: base64::engine::general_purpose::STANDARD.encode(&r.raw),
            seen_count: r.seen_count,
            first_seen: zone.format_micros(r.first_seen_at),
            last_seen: zone.format_micros(r.last_seen_at),
        })
        .collect();
    Ok(Json(envelope(&headers, &uri, &params, page, count, data)))
}
