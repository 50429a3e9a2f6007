//! Native routes under `/api/v1/` for what ZKBio Time has no route for: device approval and
//! settings, and the list of rejected lines.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use adms_protocol::text::TextEncoding;
use adms_store::Approval;

use super::auth::Authenticated;
use super::pagination::{Envelope, ListRequest, PageParams};
use super::request::rules::{self, string_or_null};
use super::request::{Field, JsonObject};
use super::{ApiError, openapi};
use crate::state::SharedState;
use crate::zones::parse_zone;

/// `PATCH /api/v1/devices/{sn}` body; absent (or `null`) fields are left unchanged, unknown
/// ones refused. Every invalid field is reported at once.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema, garde::Validate)]
pub struct DeviceUpdate {
    /// `approved` or `pending`; an approved terminal gets its area's roster.
    #[schema(value_type = Option<adms_model::Approval>)]
    #[garde(custom(string_or_null), custom(approval_word))]
    #[serde(default)]
    approval: Field<String>,
    /// At most 100 printable characters.
    #[schema(value_type = Option<String>, max_length = 100)]
    #[garde(custom(string_or_null), custom(alias_text))]
    #[serde(default)]
    alias: Field<String>,
    /// An IANA name or a fixed offset `±HH:MM`: the zone the device's wall-clock times are read in.
    #[schema(value_type = Option<String>)]
    #[garde(custom(string_or_null), custom(known_zone))]
    #[serde(default)]
    time_zone: Field<String>,
    /// An encoding label (`utf-8`, `gb18030`, `windows-1252`, ...) for the device's text.
    #[schema(value_type = Option<String>)]
    #[garde(custom(string_or_null), custom(known_encoding))]
    #[serde(default)]
    text_encoding: Field<String>,
}

fn approval_word<C>(field: &Field<String>, _: &C) -> garde::Result {
    match field.given().map(String::as_str) {
        None | Some("approved" | "pending") => Ok(()),
        Some(_) => rules::fail("Must be \"approved\" or \"pending\"."),
    }
}

fn alias_text<C>(field: &Field<String>, _: &C) -> garde::Result {
    match field.given() {
        Some(alias) if alias.len() > 100 || alias.chars().any(char::is_control) => {
            rules::fail("At most 100 printable characters.")
        }
        _ => Ok(()),
    }
}

fn known_zone<C>(field: &Field<String>, _: &C) -> garde::Result {
    match field.given() {
        Some(zone) if parse_zone(zone).is_none() => rules::fail("Unknown time zone (IANA name or ±HH:MM)."),
        _ => Ok(()),
    }
}

fn known_encoding<C>(field: &Field<String>, _: &C) -> garde::Result {
    match field.given() {
        Some(label) if TextEncoding::for_label(label).is_none() => rules::fail("Unknown encoding label."),
        _ => Ok(()),
    }
}

/// The device's settings after a change.
// Keys in sorted order, as the `json!` it replaced wrote them: clients have seen these bytes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceSettings {
    alias: String,
    #[schema(value_type = adms_model::Approval)]
    approval: &'static str,
    sn: String,
    text_encoding: Option<String>,
    time_zone: Option<String>,
}

/// Change a device's approval, alias, time zone or text encoding.
#[utoipa::path(
    patch,
    path = "/api/v1/devices/{sn}",
    tag = openapi::tag::DEVICES,
    params(("sn" = String, Path, description = "The device's serial number.")),
    request_body(content = Option<DeviceUpdate>, description = "An empty body changes nothing."),
    responses(
        (status = 200, description = "The device's settings.", body = DeviceSettings),
        (status = 400, description = "Every invalid field at once (`{\"<field>\": [\"<message>\"]}`; an unknown field: `Unknown field.`), a body that is not a JSON object (`non_field_errors`) or malformed JSON (`detail`).", body = openapi::ValidationErrors),
        (status = 404, description = "Unknown serial number.", body = openapi::Detail),
    )
)]
pub async fn update_device(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(sn): Path<String>,
    body: Bytes,
) -> Result<Json<DeviceSettings>, ApiError> {
    // Read here rather than with axum's `Json`, whose refusals are plain text: the API answers
    // DRF's JSON bodies.
    let request = JsonObject::<DeviceUpdate>::parse(&body)?;
    request.errors().finish()?;
    let update = request.body;
    let approval = match update.approval.given().map(String::as_str) {
        Some("approved") => Some(Approval::Approved),
        Some("pending") => Some(Approval::Pending),
        _ => None,
    };
    let (alias, time_zone, text_encoding) =
        (update.alias.given(), update.time_zone.given(), update.text_encoding.given());
    let found = state
        .store
        .configure_device(
            &sn,
            alias.map(String::as_str),
            time_zone.map(String::as_str),
            text_encoding.map(String::as_str),
        )
        .await?;
    if !found {
        return Err(ApiError::NotFound);
    }
    state.devices.invalidate(&sn);
    if let Some(approval) = approval {
        // An approved terminal gets its area's roster (a pending one received nothing).
        crate::services::devices::set_approval(&state, &sn, approval).await?;
    }
    tracing::info!(sn = %sn, by = %who.name, ?update, "device settings changed");
    let device = state.store.device_by_sn(&sn).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(DeviceSettings {
        alias: device.alias,
        approval: device.approval.as_str(),
        sn: device.sn,
        text_encoding: device.text_encoding,
        time_zone: device.time_zone,
    }))
}

/// A rejected line; the raw bytes as base64 and, for reading, as lossy text.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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

/// List rejected lines: uploaded lines that did not parse, kept raw with the reason.
#[utoipa::path(
    get,
    path = "/api/v1/rejected-lines",
    tag = openapi::tag::DEVICES,
    params(("sn" = Option<String>, Query, description = "Only this device's lines."), PageParams),
    responses(
        (status = 200, description = "One page of rejected lines.", body = Envelope<RejectedLine>),
        (status = 404, description = "`Invalid page.`", body = openapi::Detail),
    )
)]
pub async fn rejected_lines(
    State(state): State<SharedState>,
    _auth: Authenticated,
    list: ListRequest,
) -> Result<Json<Envelope<RejectedLine>>, ApiError> {
    let params = &list.params;
    let (count, rows) = state.store.list_rejected_lines(params.get("sn"), list.store_page()).await?;
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
    Ok(Json(list.envelope(count, data)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer keeps the sorted key order of the `json!` it replaced.
    #[test]
    fn device_settings_keys_are_in_sorted_order() {
        let settings = DeviceSettings {
            alias: "a".into(),
            approval: "approved",
            sn: "S".into(),
            text_encoding: None,
            time_zone: Some("UTC".into()),
        };
        let text = serde_json::to_string(&settings).unwrap();
        assert_eq!(text, serde_json::to_value(&settings).unwrap().to_string());
    }
}
