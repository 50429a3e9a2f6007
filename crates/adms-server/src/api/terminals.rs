//! `GET /iclock/api/terminals/`: devices in ZKBio Time 9.x's terminal shape.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use adms_store::roster::{AreaRef, DEFAULT_AREA_ID, OrgKind};
use adms_store::{TerminalFilter, TerminalRow, now_micros};

use super::auth::Authenticated;
use super::pagination::{Envelope, ListRequest, PageParams};
use super::request::{DrfBody, Field, FieldErrors, Text, Written, invalid_pk, printable, quoted};
use super::{ApiError, openapi};
use crate::state::SharedState;

/// The terminal's area.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = TerminalArea)]
pub struct Area {
    id: i64,
    area_code: String,
    area_name: String,
}

impl From<AreaRef> for Area {
    fn from(a: AreaRef) -> Area {
        Area { id: a.id, area_code: a.area_code, area_name: a.area_name }
    }
}

/// ZKBio Time 9.x terminal record.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Terminal {
    id: i64,
    sn: String,
    /// The address the terminal reports for itself (its options, `INFO=`); the address its
    /// requests come from until it reports one.
    ip_address: String,
    alias: String,
    terminal_name: String,
    fw_ver: String,
    push_ver: String,
    /// `"1"` online (a request within `offline_after_secs`), `"0"` offline.
    state: &'static str,
    /// `approved`, or `pending`: its data is held from the API, webhooks and the roster until
    /// an operator approves it (`adms-bridge device approve SN` or `PATCH /api/v1/devices/{sn}`).
    approval: String,
    terminal_tz: i32,
    area: Area,
    last_activity: Option<String>,
    user_count: Option<i64>,
    fp_count: Option<i64>,
    face_count: Option<i64>,
    palm_count: Option<i64>,
    transaction_count: Option<i64>,
    push_time: Option<String>,
    transfer_time: String,
    transfer_interval: u32,
    is_attendance: i32,
    area_name: String,
}

impl Terminal {
    fn from_row(r: TerminalRow, area: AreaRef, state: &SharedState) -> Terminal {
        // This process may have seen the device more recently than the last activity flush.
        let seen_here = state.devices.get(&r.sn).map_or(0, |e| e.last_seen());
        let last = r.last_activity_at.unwrap_or(0).max(seen_here);
        let offline_after =
            i64::try_from(state.config.offline_after_secs()).unwrap_or(i64::MAX).saturating_mul(1_000_000);
        let online = last > 0 && now_micros().saturating_sub(last) <= offline_after;
        let zone =
            r.time_zone.as_deref().and_then(crate::zones::parse_zone).unwrap_or_else(|| state.default_zone.clone());
        let last_activity = (last > 0).then(|| state.display_zone.format_micros(last));
        Terminal {
            id: r.id,
            terminal_name: if r.model.is_empty() { r.sn.clone() } else { r.model },
            sn: r.sn,
            ip_address: r.ip_address,
            alias: r.alias,
            fw_ver: r.firmware,
            push_ver: r.push_version,
            state: if online { "1" } else { "0" },
            approval: r.approval,
            terminal_tz: adms_protocol::time::handshake_time_zone(zone.offset_now()),
            area_name: area.area_name.clone(),
            area: area.into(),
            push_time: last_activity.clone(),
            last_activity,
            user_count: r.user_count,
            fp_count: r.fp_count,
            face_count: r.face_count,
            palm_count: r.palm_count,
            transaction_count: r.transaction_count.or(Some(r.stored_punches)),
            transfer_time: state.config.devices.trans_times.clone(),
            transfer_interval: state.config.devices.trans_interval_min,
            is_attendance: 1,
        }
    }
}

/// List terminals.
#[utoipa::path(
    get,
    path = "/iclock/api/terminals",
    tag = openapi::tag::TERMINALS,
    params(
        ("sn" = Option<String>, Query, description = "Exact serial number."),
        ("alias" = Option<String>, Query, description = "Exact alias."),
        ("sn_icontains" = Option<String>, Query, description = "Serial number contains (any case)."),
        ("alias_icontains" = Option<String>, Query, description = "Alias contains (any case)."),
        PageParams,
    ),
    responses(
        (status = 200, description = "One page of terminals.", body = Envelope<Terminal>),
        (status = 404, description = "`Invalid page.`", body = openapi::Detail),
    )
)]
pub async fn list(
    State(state): State<SharedState>,
    _auth: Authenticated,
    list: ListRequest,
) -> Result<Json<Envelope<Terminal>>, ApiError> {
    let params = &list.params;
    let filter = TerminalFilter {
        sn: params.get("sn").map(str::to_owned),
        alias: params.get("alias").map(str::to_owned),
        sn_icontains: params.get("sn_icontains").map(str::to_owned),
        alias_icontains: params.get("alias_icontains").map(str::to_owned),
        id: None,
    };
    let (count, rows) = state.store.list_terminals(&filter, list.store_page()).await?;
    // A page past the end is answered before the terminals' areas are read.
    list.page.check(count)?;
    let mut areas = state.store.terminal_areas(&rows.iter().map(|r| r.id).collect::<Vec<_>>()).await?;
    let data = rows
        .into_iter()
        .map(|r| {
            let area = areas.remove(&r.id).unwrap_or_else(default_area);
            Terminal::from_row(r, area, &state)
        })
        .collect();
    Ok(Json(list.envelope(count, data)?))
}

/// Get one terminal.
#[utoipa::path(
    get,
    path = "/iclock/api/terminals/{id}",
    tag = openapi::tag::TERMINALS,
    params(("id" = i64, Path, description = "The terminal id.")),
    responses(
        (status = 200, description = "The terminal.", body = Terminal),
        (status = 404, description = "No such terminal.", body = openapi::Detail),
    )
)]
pub async fn detail(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Terminal>, ApiError> {
    let id = super::parse_id(&id)?;
    Ok(Json(terminal(&state, id).await?))
}

async fn terminal(state: &SharedState, id: i64) -> Result<Terminal, ApiError> {
    let filter = TerminalFilter { id: Some(id), ..TerminalFilter::default() };
    let (_, rows) = state.store.list_terminals(&filter, adms_store::Page { offset: 0, limit: 1 }).await?;
    let row = rows.into_iter().next().ok_or(ApiError::NotFound)?;
    let area = state.store.terminal_areas(&[id]).await?.remove(&id).unwrap_or_else(default_area);
    Ok(Terminal::from_row(row, area, state))
}

fn default_area() -> AreaRef {
    AreaRef { id: DEFAULT_AREA_ID, area_code: "1".into(), area_name: "Not Authorized".into() }
}

/// Change a terminal's area or alias.
///
/// `area` (an area id) and `alias`; `sn` is read-only and other fields are ignored. Moving a
/// terminal to another area plans its roster again: the employees of the new area are sent,
/// those of the old one removed.
#[utoipa::path(
    method(put, patch),
    path = "/iclock/api/terminals/{id}",
    tag = openapi::tag::TERMINALS,
    params(("id" = i64, Path, description = "The terminal id.")),
    request_body(
        content(
            (Option<TerminalUpdate> = "application/json"),
            (Option<TerminalUpdate> = "application/x-www-form-urlencoded"),
        ),
        description = "An empty body changes nothing.",
    ),
    responses(
        (status = 200, description = "The terminal as changed.", body = Terminal),
        (status = 400, description = "Invalid `alias` or unknown `area`.", body = openapi::ValidationErrors),
        (status = 404, description = "No such terminal.", body = openapi::Detail),
    )
)]
pub async fn update(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
    DrfBody(body): DrfBody<TerminalUpdate>,
) -> Result<Json<Terminal>, ApiError> {
    let id = super::parse_id(&id)?;
    let current = terminal(&state, id).await?;
    let mut errors = FieldErrors::of(&body, &());
    if let Field::Given(area) = &body.area
        && state.store.org_by_id(OrgKind::Area, area.value).await?.is_none()
    {
        errors.add("area", invalid_pk(&area.text));
    }
    let alias = body.alias.given().map(|Text(alias)| alias);
    let area = body.area.given().map(|area| area.value);
    errors.finish()?;
    if let Some(alias) = &alias {
        crate::services::devices::rename(&state, &current.sn, alias).await?;
    }
    if let Some(area) = area
        && area != current.area.id
    {
        crate::services::devices::set_area(&state, id, area).await?;
        tracing::info!(user = %who.name, sn = %current.sn, area, "terminal moved to another area");
    }
    Ok(Json(terminal(&state, id).await?))
}

/// The `PUT` / `PATCH` body; absent fields keep their value.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema, garde::Validate)]
pub struct TerminalUpdate {
    /// An area id (number or numeric string).
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    #[garde(custom(area_rule))]
    area: Field<Written>,
    /// At most 100 printable characters.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    #[garde(custom(alias_rule))]
    alias: Field<Text>,
}

/// An area id; whether it exists is checked against the store after the rules.
fn area_rule<C>(field: &Field<Written>, _: &C) -> garde::Result {
    match field {
        Field::Invalid(value) => Err(garde::Error::new(invalid_pk(quoted(value)))),
        _ => Ok(()),
    }
}

fn alias_rule<C>(field: &Field<Text>, _: &C) -> garde::Result {
    match field {
        Field::Absent | Field::Null => Ok(()),
        Field::Given(Text(alias)) if alias.chars().count() <= 100 && printable(alias) => Ok(()),
        _ => Err(garde::Error::new("At most 100 printable characters.")),
    }
}

/// `POST /iclock/api/terminals/` body (ZKBio Time 9.x). `sn` is required; `area` (an area id)
/// places the terminal, and `heartbeat` is ignored (the poll interval is the server's `delay_secs`, which the
/// answer shows). Unknown keys are ignored, as DRF does.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema, garde::Validate)]
pub struct TerminalWrite {
    /// At most 32 printable characters without spaces.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 32, pattern = "^[!-~]+$")]
    #[serde(default)]
    #[garde(custom(sn_rule))]
    sn: Field<Text>,
    /// At most 50 printable characters.
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    #[garde(custom(create_alias_rule))]
    alias: Field<Text>,
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    #[garde(custom(ip_rule))]
    ip_address: Field<Text>,
    /// An area id (number or numeric string).
    #[schema(value_type = Option<i64>)]
    #[serde(default)]
    #[garde(custom(area_rule))]
    area: Field<Written>,
    /// Hours (8) in the 8.x docs, minutes (240) in 9.5 recordings: |value| ≤ 14 is read as hours.
    #[schema(value_type = Option<i32>)]
    #[serde(default)]
    #[garde(custom(terminal_tz_rule))]
    terminal_tz: Field<Written>,
}

fn sn_rule<C>(field: &Field<Text>, _: &C) -> garde::Result {
    match field {
        Field::Given(Text(sn)) if sn.is_empty() => Err(garde::Error::new("This field is required.")),
        Field::Given(Text(sn)) if sn.len() <= 32 && sn.bytes().all(|b| b.is_ascii_graphic()) => Ok(()),
        Field::Absent | Field::Null => Err(garde::Error::new("This field is required.")),
        _ => Err(garde::Error::new("At most 32 printable characters without spaces.")),
    }
}

fn create_alias_rule<C>(field: &Field<Text>, _: &C) -> garde::Result {
    match field {
        Field::Absent | Field::Null => Ok(()),
        Field::Given(Text(alias)) if alias.chars().count() <= 50 && printable(alias) => Ok(()),
        _ => Err(garde::Error::new("Ensure this field has no more than 50 printable characters.")),
    }
}

fn ip_rule<C>(field: &Field<Text>, _: &C) -> garde::Result {
    match field {
        Field::Absent | Field::Null => Ok(()),
        Field::Given(Text(ip)) if ip.len() <= 45 && printable(ip) => Ok(()),
        _ => Err(garde::Error::new("Enter a valid IPv4 or IPv6 address.")),
    }
}

fn terminal_tz_rule<C>(field: &Field<Written>, _: &C) -> garde::Result {
    match field {
        Field::Absent | Field::Null => Ok(()),
        Field::Given(tz) if terminal_zone(tz.value).is_some() => Ok(()),
        _ => Err(garde::Error::new("Must be an offset in hours (-14 to 14) or minutes.")),
    }
}

/// The zone setting `terminal_tz` stands for: hours when |value| ≤ 14, else minutes.
fn terminal_zone(tz: i64) -> Option<String> {
    let minutes = if tz.abs() <= 14 { tz * 60 } else { tz };
    if minutes.abs() > 14 * 60 {
        return None;
    }
    let sign = if minutes < 0 { '-' } else { '+' };
    Some(format!("{sign}{:02}:{:02}", minutes.abs() / 60, minutes.abs() % 60))
}

/// A terminal as ZKBio Time 9.x answers a write (create or update).
// Keys in sorted order, as the `json!` it replaced wrote them: clients have seen these bytes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TerminalCreated {
    alias: String,
    /// The area id.
    area: i64,
    /// The server's `delay_secs` (the poll interval).
    heartbeat: u32,
    id: i64,
    ip_address: String,
    sn: String,
}

/// The 9.x write shape `{id, sn, ip_address, alias, area, heartbeat}`.
fn write_shape(id: i64, sn: &str, ip: &str, alias: &str, area: Option<i64>, state: &SharedState) -> TerminalCreated {
    let area = area.unwrap_or(DEFAULT_AREA_ID);
    TerminalCreated {
        alias: alias.to_owned(),
        area,
        heartbeat: state.config.devices.delay_secs,
        id,
        ip_address: ip.to_owned(),
        sn: sn.to_owned(),
    }
}

/// Register a terminal before it first connects.
///
/// The terminal is approved; `terminal_tz` (hours when |value| ≤ 14, else minutes) becomes
/// its zone, `area` places it.
#[utoipa::path(
    post,
    path = "/iclock/api/terminals",
    tag = openapi::tag::TERMINALS,
    request_body = TerminalWrite,
    responses(
        (status = 201, description = "Registered.", body = TerminalCreated),
        (status = 400, description = "`sn` missing, invalid or already present; invalid JSON, `alias`, `ip_address`, `terminal_tz` or `area`.", body = openapi::ValidationErrors),
    )
)]
pub async fn create(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    DrfBody(w): DrfBody<TerminalWrite>,
) -> Result<(axum::http::StatusCode, Json<TerminalCreated>), ApiError> {
    let mut errors = FieldErrors::of(&w, &());
    let sn = w.sn.given().map_or("", |Text(sn)| sn.as_str());
    let ip = w.ip_address.given().map_or("", |Text(ip)| ip.as_str());
    let zone = w.terminal_tz.given().and_then(|tz| terminal_zone(tz.value));
    let alias = w.alias.given().map(|Text(alias)| alias.as_str());
    let mut area = None;
    if let Field::Given(written) = &w.area {
        if state.store.org_by_id(OrgKind::Area, written.value).await?.is_some() {
            area = Some(written.value);
        } else {
            errors.add("area", invalid_pk(&written.text));
        }
    }
    let existing = if errors.is_empty() { state.store.device_by_sn(sn).await? } else { None };
    if let Some(existing) = &existing
        && !state.store.terminal_deleted(existing.id).await?
    {
        errors.add("sn", "terminal with this sn already exists.");
    }
    errors.finish()?;
    if let Some(existing) = existing {
        state.store.restore_terminal(existing.id).await?;
    }
    let new = adms_store::NewDevice {
        sn,
        approval: Some(adms_store::Approval::Approved),
        protocol_family: "att",
        ip_address: ip,
        default_time_zone: &state.default_zone.name,
        // Created through the API: the terminal has not been heard from.
        handshake: None,
    };
    let device = state.store.register_device(&new).await?;
    state.store.configure_device(sn, alias, zone.as_deref(), None).await?;
    if let Some(area) = area {
        state.store.set_terminal_area(device.id, area).await?;
        crate::services::roster::sync_terminal(&state, device.id).await?;
    }
    state.devices.invalidate(sn);
    state.webhooks.wake.notify_one();
    tracing::info!(sn, by = %who.name, "terminal created through the API");
    let alias = alias.unwrap_or(&device.alias);
    Ok((axum::http::StatusCode::CREATED, Json(write_shape(device.id, sn, ip, alias, area, &state))))
}

/// Delete a terminal.
///
/// The terminal leaves the list and its queued commands are cancelled; its punches stay, and
/// its next request brings it back.
#[utoipa::path(
    delete,
    path = "/iclock/api/terminals/{id}",
    tag = openapi::tag::TERMINALS,
    params(("id" = i64, Path, description = "The terminal id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such terminal.", body = openapi::Detail),
    )
)]
pub async fn delete(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    let id = super::parse_id(&id)?;
    let device = state.store.device_by_id(id).await?.ok_or(ApiError::NotFound)?;
    if !state.store.delete_terminal(id, state.webhooks.clock.now_micros()).await? {
        return Err(ApiError::NotFound);
    }
    state.devices.invalidate(&device.sn);
    tracing::info!(sn = %device.sn, by = %who.name, "terminal deleted through the API");
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer keeps the sorted key order of the `json!` it replaced.
    #[test]
    fn created_terminal_keys_are_in_sorted_order() {
        let created = TerminalCreated {
            alias: "a".into(),
            area: 1,
            heartbeat: 10,
            id: 2,
            ip_address: "10.0.0.2".into(),
            sn: "S".into(),
        };
        let text = serde_json::to_string(&created).unwrap();
        assert_eq!(text, serde_json::to_value(&created).unwrap().to_string());
    }
}
