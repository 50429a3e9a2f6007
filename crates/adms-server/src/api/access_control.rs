//! The native access-control API, `/api/v1/access/...` (issue 19): doors (derived from what
//! each controller reports; renamed here), time segments, holidays, access levels with their
//! doors and members, a controller's full re-sync, door and auxiliary-output control through
//! the command queue, and visits (visitors with access that ends by itself).
//! Every change is planned for the controllers it concerns and only the difference is queued
//! (`services::access`). Reads need `read`; model changes `roster:write` (the same people who
//! manage the roster grant its rights); door control and re-sync `devices:control`.
//!
//! Lists are whole (`{"count": n, "data": [...]}`): doors, segments and levels number in the
//! hundreds, not more.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use adms_model::access::{AccessDate, LocalTime, VisitPhase, WeeklySchedule};
use adms_protocol::access::{AuxOutputAction, DoorAction, FloorAction};
use adms_store::access::{
    AccessAuxOutput, AccessDoor, AccessFloor, AccessHoliday, AccessLevel, AffectedControllers, LevelMember, TimeSegment,
};

use adms_store::visits::{AccessVisit, NewVisit, VisitError, VisitKey};

use super::auth::Authenticated;
use super::{ApiError, openapi, parse_id};
use crate::services::access as provisioning;
use crate::state::SharedState;

/// A whole list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct List<T> {
    count: usize,
    data: Vec<T>,
}

impl<T> List<T> {
    pub(super) fn of(data: Vec<T>) -> Json<List<T>> {
        Json(List { count: data.len(), data })
    }
}

/// Reads a JSON body strictly (unknown fields refused); a refusal names what is wrong.
pub(super) fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(json!({ "non_field_errors": [e.to_string()] })))
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(json!({ field: [message.into()] }))
}

/// Plans and queues for the controllers a change concerns; the number of commands queued.
pub(super) async fn provision(state: &SharedState, controllers: AffectedControllers) -> Result<usize, ApiError> {
    Ok(provisioning::sync_controllers(state, controllers).await?)
}

/// A door of an access controller.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DoorView {
    id: i64,
    /// The controller's serial number.
    sn: String,
    /// The door's number on its controller (1-32).
    door_no: i64,
    name: String,
}

impl From<AccessDoor> for DoorView {
    fn from(d: AccessDoor) -> DoorView {
        DoorView { id: d.id, sn: d.sn, door_no: d.door_no, name: d.name }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DoorFilter {
    /// Only those of this controller.
    sn: Option<String>,
}

/// List the doors of every access controller (or of one).
#[utoipa::path(
    get,
    path = "/api/v1/access/doors",
    tag = openapi::tag::ACCESS,
    params(DoorFilter),
    responses(
        (status = 200, description = "The doors, by controller and door number.", body = List<DoorView>),
        (status = 404, description = "Unknown serial number.", body = openapi::Detail),
    )
)]
pub async fn list_doors(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Query(filter): Query<DoorFilter>,
) -> Result<Json<List<DoorView>>, ApiError> {
    let device_id = match &filter.sn {
        Some(sn) => Some(state.store.device_by_sn(sn).await?.ok_or(ApiError::NotFound)?.id),
        None => None,
    };
    let doors = state.store.access_doors(device_id).await?;
    Ok(List::of(doors.into_iter().map(DoorView::from).collect()))
}

/// Get one door.
#[utoipa::path(
    get,
    path = "/api/v1/access/doors/{id}",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The door id.")),
    responses(
        (status = 200, description = "The door.", body = DoorView),
        (status = 404, description = "No such door.", body = openapi::Detail),
    )
)]
pub async fn get_door(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<DoorView>, ApiError> {
    let door = state.store.access_door(parse_id(&id)?).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(door.into()))
}

/// `PATCH /api/v1/access/doors/{id}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoorRename {
    /// 1 to 100 characters.
    name: String,
}

/// Rename a door (names are the bridge's; controllers never see them).
#[utoipa::path(
    patch,
    path = "/api/v1/access/doors/{id}",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The door id.")),
    request_body = DoorRename,
    responses(
        (status = 200, description = "The door.", body = DoorView),
        (status = 400, description = "Malformed body or name.", body = openapi::ValidationErrors),
        (status = 404, description = "No such door.", body = openapi::Detail),
    )
)]
pub async fn rename_door(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<DoorView>, ApiError> {
    let request: DoorRename = body(&bytes)?;
    let door = state.store.rename_access_door(parse_id(&id)?, &request.name).await?;
    Ok(Json(door.into()))
}

/// `POST /api/v1/access/doors/{id}/control` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoorControlRequest {
    /// `open` (for `seconds`), `close`, `normally_open` (unlocked until closed),
    /// `cancel_alarm`, `enable_normal_open_zone`, `disable_normal_open_zone`.
    action: DoorAction,
    /// With `open` only: 1 to 254.
    #[serde(default)]
    seconds: Option<u8>,
}

/// The command a door control queued; its outcome is the command's (`GET /api/v1/commands/{id}`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DoorControlQueued {
    command_id: i64,
    sn: String,
    /// The exact line the controller receives.
    wire: String,
}

/// Open, close, hold open, cancel an alarm or switch today's normal-open zone of one door.
///
/// Queued as `CONTROL DEVICE AABBCCDD` for the door's controller; the controller's answer on
/// `/iclock/devicecmd` completes the command (`succeeded` or `failed` with its return code).
#[utoipa::path(
    post,
    path = "/api/v1/access/doors/{id}/control",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The door id.")),
    request_body = DoorControlRequest,
    responses(
        (status = 201, description = "Queued.", body = DoorControlQueued),
        (status = 400, description = "Malformed body, unknown action, or `seconds` missing or out of range.", body = openapi::ValidationErrors),
        (status = 404, description = "No such door.", body = openapi::Detail),
    )
)]
pub async fn control_door(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<DoorControlQueued>), ApiError> {
    let request: DoorControlRequest = body(&bytes)?;
    match (request.action, request.seconds) {
        (DoorAction::Open, Some(1..=254)) => {}
        (DoorAction::Open, _) => return Err(invalid("seconds", "1 to 254 with open.")),
        (_, Some(_)) => return Err(invalid("seconds", "Only with open.")),
        (_, None) => {}
    }
    let door = state.store.access_door(parse_id(&id)?).await?.ok_or(ApiError::NotFound)?;
    let source = format!("api:{}", who.name);
    let enqueued = provisioning::control_door(&state, &door, request.action, request.seconds, source).await?;
    let row = state.store.command(enqueued.id).await?.ok_or(ApiError::NotFound)?;
    tracing::info!(sn = %door.sn, door = door.door_no, by = %who.name, id = row.id, "door control queued");
    Ok((StatusCode::CREATED, Json(DoorControlQueued { command_id: row.id, sn: door.sn, wire: row.command })))
}

/// An auxiliary output of an access controller (a relay that is not a lock: siren, barrier,
/// light), derived from the `AuxOutCount` it reports.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuxOutputView {
    id: i64,
    /// The controller's serial number.
    sn: String,
    /// The output's number on its controller (1-32).
    aux_no: i64,
    name: String,
}

impl From<AccessAuxOutput> for AuxOutputView {
    fn from(a: AccessAuxOutput) -> AuxOutputView {
        AuxOutputView { id: a.id, sn: a.sn, aux_no: a.aux_no, name: a.name }
    }
}

/// List the auxiliary outputs of every access controller (or of one).
#[utoipa::path(
    get,
    path = "/api/v1/access/aux-outputs",
    tag = openapi::tag::ACCESS,
    params(DoorFilter),
    responses(
        (status = 200, description = "The auxiliary outputs, by controller and output number.", body = List<AuxOutputView>),
        (status = 404, description = "Unknown serial number.", body = openapi::Detail),
    )
)]
pub async fn list_aux_outputs(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Query(filter): Query<DoorFilter>,
) -> Result<Json<List<AuxOutputView>>, ApiError> {
    let device_id = match &filter.sn {
        Some(sn) => Some(state.store.device_by_sn(sn).await?.ok_or(ApiError::NotFound)?.id),
        None => None,
    };
    let outputs = state.store.access_aux_outputs(device_id).await?;
    Ok(List::of(outputs.into_iter().map(AuxOutputView::from).collect()))
}

/// `POST /api/v1/access/aux-outputs/{id}/control` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuxOutputControlRequest {
    /// `open` (for `seconds`), `close`, `normally_open` (on until closed).
    action: AuxOutputAction,
    /// With `open` only: 1 to 254.
    #[serde(default)]
    seconds: Option<u8>,
}

/// Switch one auxiliary output on for a time, on until closed, or off.
///
/// Queued as `CONTROL DEVICE 01 nn 02 dd` for the output's controller; the controller's answer
/// on `/iclock/devicecmd` completes the command, as for a door.
#[utoipa::path(
    post,
    path = "/api/v1/access/aux-outputs/{id}/control",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The auxiliary output id.")),
    request_body = AuxOutputControlRequest,
    responses(
        (status = 201, description = "Queued.", body = DoorControlQueued),
        (status = 400, description = "Malformed body, unknown action, or `seconds` missing or out of range.", body = openapi::ValidationErrors),
        (status = 404, description = "No such auxiliary output.", body = openapi::Detail),
    )
)]
pub async fn control_aux_output(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<DoorControlQueued>), ApiError> {
    let request: AuxOutputControlRequest = body(&bytes)?;
    match (request.action, request.seconds) {
        (AuxOutputAction::Open, Some(1..=254)) => {}
        (AuxOutputAction::Open, _) => return Err(invalid("seconds", "1 to 254 with open.")),
        (_, Some(_)) => return Err(invalid("seconds", "Only with open.")),
        (_, None) => {}
    }
    let output = state.store.access_aux_output(parse_id(&id)?).await?.ok_or(ApiError::NotFound)?;
    let source = format!("api:{}", who.name);
    let enqueued = provisioning::control_aux_output(&state, &output, request.action, request.seconds, source).await?;
    let row = state.store.command(enqueued.id).await?.ok_or(ApiError::NotFound)?;
    tracing::info!(sn = %output.sn, aux_output = output.aux_no, by = %who.name, id = row.id, "auxiliary output control queued");
    Ok((StatusCode::CREATED, Json(DoorControlQueued { command_id: row.id, sn: output.sn, wire: row.command })))
}

/// A floor of an elevator controller.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FloorView {
    id: i64,
    /// The controller's serial number.
    sn: String,
    /// The floor's number on its controller (1-256; its relay).
    floor_no: i64,
    name: String,
}

impl From<AccessFloor> for FloorView {
    fn from(f: AccessFloor) -> FloorView {
        FloorView { id: f.id, sn: f.sn, floor_no: f.floor_no, name: f.name }
    }
}

/// List the floors of every elevator controller (or of one).
#[utoipa::path(
    get,
    path = "/api/v1/access/floors",
    tag = openapi::tag::ACCESS,
    params(DoorFilter),
    responses(
        (status = 200, description = "The floors, by controller and floor number.", body = List<FloorView>),
        (status = 404, description = "Unknown serial number.", body = openapi::Detail),
    )
)]
pub async fn list_floors(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Query(filter): Query<DoorFilter>,
) -> Result<Json<List<FloorView>>, ApiError> {
    let device_id = match &filter.sn {
        Some(sn) => Some(state.store.device_by_sn(sn).await?.ok_or(ApiError::NotFound)?.id),
        None => None,
    };
    let floors = state.store.access_floors(device_id).await?;
    Ok(List::of(floors.into_iter().map(FloorView::from).collect()))
}

/// `PUT /api/v1/access/controllers/{sn}/floors` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FloorCount {
    /// 0 to 256: floors 1 to this exist afterwards.
    floor_count: i64,
}

/// Declare an elevator controller's floors.
///
/// Elevator controllers report no floor count the bridge knows of: an operator states it.
/// New floors are named `<alias or SN>-<n>`; floors above the count are deleted.
#[utoipa::path(
    put,
    path = "/api/v1/access/controllers/{sn}/floors",
    tag = openapi::tag::ACCESS,
    params(("sn" = String, Path, description = "The elevator controller's serial number.")),
    request_body = FloorCount,
    responses(
        (status = 200, description = "The controller's floors.", body = List<FloorView>),
        (status = 400, description = "Malformed body or count out of range.", body = openapi::ValidationErrors),
        (status = 404, description = "Unknown serial number.", body = openapi::Detail),
    )
)]
pub async fn set_floors(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(sn): Path<String>,
    bytes: Bytes,
) -> Result<Json<List<FloorView>>, ApiError> {
    let request: FloorCount = body(&bytes)?;
    if !(0..=adms_store::access::MAX_FLOORS).contains(&request.floor_count) {
        return Err(invalid("floor_count", "0 to 256."));
    }
    let device = state.store.device_by_sn(&sn).await?.ok_or(ApiError::NotFound)?;
    let floors = state.store.set_elevator_floors(device.id, request.floor_count).await?;
    // Elevator levels may have lost floors, or the controller become one: plan it again.
    provision(&state, [device.id].into()).await?;
    Ok(List::of(floors.into_iter().map(FloorView::from).collect()))
}

/// `POST /api/v1/access/floors/{id}/control` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FloorControlRequest {
    /// `open` (for `seconds`), `close`, `normally_open` (released until closed).
    action: FloorAction,
    /// With `open` only: 1 to 254.
    #[serde(default)]
    seconds: Option<u8>,
}

/// Release one floor's button for a time, until closed, or end a release.
///
/// Queued as `CONTROL DEVICE 11 <32-byte floor mask> dd` (`12 … FF` for normally open) for the
/// floor's controller; the controller's answer completes the command. The elevator encoding
/// has a single source and no capture (see the README).
#[utoipa::path(
    post,
    path = "/api/v1/access/floors/{id}/control",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The floor id.")),
    request_body = FloorControlRequest,
    responses(
        (status = 201, description = "Queued.", body = DoorControlQueued),
        (status = 400, description = "Malformed body, unknown action, or `seconds` missing or out of range.", body = openapi::ValidationErrors),
        (status = 404, description = "No such floor.", body = openapi::Detail),
    )
)]
pub async fn control_floor(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<DoorControlQueued>), ApiError> {
    let request: FloorControlRequest = body(&bytes)?;
    match (request.action, request.seconds) {
        (FloorAction::Open, Some(1..=254)) => {}
        (FloorAction::Open, _) => return Err(invalid("seconds", "1 to 254 with open.")),
        (_, Some(_)) => return Err(invalid("seconds", "Only with open.")),
        (_, None) => {}
    }
    let floor = state.store.access_floor(parse_id(&id)?).await?.ok_or(ApiError::NotFound)?;
    let source = format!("api:{}", who.name);
    let enqueued = provisioning::control_floor(&state, &floor, request.action, request.seconds, source).await?;
    let row = state.store.command(enqueued.id).await?.ok_or(ApiError::NotFound)?;
    tracing::info!(sn = %floor.sn, floor = floor.floor_no, by = %who.name, id = row.id, "floor control queued");
    Ok((StatusCode::CREATED, Json(DoorControlQueued { command_id: row.id, sn: floor.sn, wire: row.command })))
}

/// A time segment.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SegmentView {
    /// Also the `TimezoneId` controllers hold it under.
    id: i64,
    name: String,
    schedule: WeeklySchedule,
}

impl From<TimeSegment> for SegmentView {
    fn from(s: TimeSegment) -> SegmentView {
        SegmentView { id: s.id, name: s.name, schedule: s.schedule }
    }
}

/// A time segment as written: a name, and up to 3 intervals (`"HH:MM-HH:MM"`) per day and
/// per holiday type; a day left out allows no access.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentWrite {
    name: String,
    schedule: WeeklySchedule,
}

/// List the time segments.
#[utoipa::path(
    get,
    path = "/api/v1/access/time-segments",
    tag = openapi::tag::ACCESS,
    responses((status = 200, description = "Every time segment.", body = List<SegmentView>))
)]
pub async fn list_segments(
    State(state): State<SharedState>,
    _auth: Authenticated,
) -> Result<Json<List<SegmentView>>, ApiError> {
    Ok(List::of(state.store.time_segments().await?.into_iter().map(SegmentView::from).collect()))
}

/// Create a time segment.
#[utoipa::path(
    post,
    path = "/api/v1/access/time-segments",
    tag = openapi::tag::ACCESS,
    request_body = SegmentWrite,
    responses(
        (status = 201, description = "Created.", body = SegmentView),
        (status = 400, description = "Malformed body, interval or name; more than 3 intervals a day.", body = openapi::ValidationErrors),
        (status = 409, description = "The name is taken.", body = openapi::Detail),
    )
)]
pub async fn create_segment(
    State(state): State<SharedState>,
    _auth: Authenticated,
    bytes: Bytes,
) -> Result<(StatusCode, Json<SegmentView>), ApiError> {
    let request: SegmentWrite = body(&bytes)?;
    let segment = state.store.create_time_segment(&request.name, &request.schedule).await?;
    Ok((StatusCode::CREATED, Json(segment.into())))
}

/// Get one time segment.
#[utoipa::path(
    get,
    path = "/api/v1/access/time-segments/{id}",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The segment id.")),
    responses(
        (status = 200, description = "The segment.", body = SegmentView),
        (status = 404, description = "No such segment.", body = openapi::Detail),
    )
)]
pub async fn get_segment(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<SegmentView>, ApiError> {
    let segment = state.store.time_segment(parse_id(&id)?).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(segment.into()))
}

/// Replace a time segment; the controllers holding it get the new intervals.
#[utoipa::path(
    put,
    path = "/api/v1/access/time-segments/{id}",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The segment id.")),
    request_body = SegmentWrite,
    responses(
        (status = 200, description = "The segment.", body = SegmentView),
        (status = 400, description = "Malformed body, interval or name.", body = openapi::ValidationErrors),
        (status = 404, description = "No such segment.", body = openapi::Detail),
        (status = 409, description = "The name is taken.", body = openapi::Detail),
    )
)]
pub async fn update_segment(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<SegmentView>, ApiError> {
    let request: SegmentWrite = body(&bytes)?;
    let id = parse_id(&id)?;
    let affected = state.store.update_time_segment(id, &request.name, &request.schedule).await?;
    provision(&state, affected).await?;
    let segment = state.store.time_segment(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(segment.into()))
}

/// Delete a time segment no level uses.
#[utoipa::path(
    delete,
    path = "/api/v1/access/time-segments/{id}",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The segment id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such segment.", body = openapi::Detail),
        (status = 409, description = "A level uses it.", body = openapi::Detail),
    )
)]
pub async fn delete_segment(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_time_segment(parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A holiday: on its date, the intervals of its type apply instead of the weekday's.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HolidayView {
    id: i64,
    #[schema(value_type = String, example = "2026-12-25")]
    date: AccessDate,
    name: String,
    /// 1, 2 or 3.
    holiday_type: u8,
    /// Every year on this month and day, or this date only.
    yearly: bool,
}

impl From<AccessHoliday> for HolidayView {
    fn from(h: AccessHoliday) -> HolidayView {
        HolidayView { id: h.id, date: h.day, name: h.name, holiday_type: h.holiday_type, yearly: h.yearly }
    }
}

/// `POST /api/v1/access/holidays` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HolidayWrite {
    #[schema(value_type = String, example = "2026-12-25")]
    date: AccessDate,
    #[serde(default)]
    name: String,
    #[serde(default = "one")]
    holiday_type: u8,
    #[serde(default)]
    yearly: bool,
}

fn one() -> u8 {
    1
}

/// List the holidays.
#[utoipa::path(
    get,
    path = "/api/v1/access/holidays",
    tag = openapi::tag::ACCESS,
    responses((status = 200, description = "Every holiday, by date.", body = List<HolidayView>))
)]
pub async fn list_holidays(
    State(state): State<SharedState>,
    _auth: Authenticated,
) -> Result<Json<List<HolidayView>>, ApiError> {
    Ok(List::of(state.store.access_holidays().await?.into_iter().map(HolidayView::from).collect()))
}

/// Add a holiday; every access controller gets it.
#[utoipa::path(
    post,
    path = "/api/v1/access/holidays",
    tag = openapi::tag::ACCESS,
    request_body = HolidayWrite,
    responses(
        (status = 201, description = "Created.", body = HolidayView),
        (status = 400, description = "Malformed body, date or type.", body = openapi::ValidationErrors),
        (status = 409, description = "A holiday on that date exists.", body = openapi::Detail),
    )
)]
pub async fn create_holiday(
    State(state): State<SharedState>,
    _auth: Authenticated,
    bytes: Bytes,
) -> Result<(StatusCode, Json<HolidayView>), ApiError> {
    let request: HolidayWrite = body(&bytes)?;
    let holiday =
        state.store.create_access_holiday(request.date, &request.name, request.holiday_type, request.yearly).await?;
    provisioning::sync_all_controllers(&state).await?;
    Ok((StatusCode::CREATED, Json(holiday.into())))
}

/// Remove a holiday from the model and every controller.
#[utoipa::path(
    delete,
    path = "/api/v1/access/holidays/{id}",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The holiday id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such holiday.", body = openapi::Detail),
    )
)]
pub async fn delete_holiday(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_access_holiday(parse_id(&id)?).await?;
    provisioning::sync_all_controllers(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An access level: a time segment and a set of doors, possibly of several controllers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LevelView {
    id: i64,
    name: String,
    time_segment_id: i64,
    door_ids: Vec<i64>,
    member_count: i64,
}

impl From<AccessLevel> for LevelView {
    fn from(l: AccessLevel) -> LevelView {
        LevelView {
            id: l.id,
            name: l.name,
            time_segment_id: l.time_segment_id,
            door_ids: l.door_ids,
            member_count: l.member_count,
        }
    }
}

/// A level as written.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelWrite {
    name: String,
    time_segment_id: i64,
}

/// List the access levels.
#[utoipa::path(
    get,
    path = "/api/v1/access/levels",
    tag = openapi::tag::ACCESS,
    responses((status = 200, description = "Every level.", body = List<LevelView>))
)]
pub async fn list_levels(
    State(state): State<SharedState>,
    _auth: Authenticated,
) -> Result<Json<List<LevelView>>, ApiError> {
    Ok(List::of(state.store.access_levels().await?.into_iter().map(LevelView::from).collect()))
}

/// Create an access level (no doors, no members yet).
#[utoipa::path(
    post,
    path = "/api/v1/access/levels",
    tag = openapi::tag::ACCESS,
    request_body = LevelWrite,
    responses(
        (status = 201, description = "Created.", body = LevelView),
        (status = 400, description = "Malformed body or name, unknown time segment.", body = openapi::ValidationErrors),
        (status = 409, description = "The name is taken.", body = openapi::Detail),
    )
)]
pub async fn create_level(
    State(state): State<SharedState>,
    _auth: Authenticated,
    bytes: Bytes,
) -> Result<(StatusCode, Json<LevelView>), ApiError> {
    let request: LevelWrite = body(&bytes)?;
    let level = state.store.create_access_level(&request.name, request.time_segment_id).await?;
    Ok((StatusCode::CREATED, Json(level.into())))
}

/// Get one access level.
#[utoipa::path(
    get,
    path = "/api/v1/access/levels/{id}",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The level id.")),
    responses(
        (status = 200, description = "The level.", body = LevelView),
        (status = 404, description = "No such level.", body = openapi::Detail),
    )
)]
pub async fn get_level(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<LevelView>, ApiError> {
    let level = state.store.access_level(parse_id(&id)?).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(level.into()))
}

/// Rename a level or move it to another time segment.
#[utoipa::path(
    put,
    path = "/api/v1/access/levels/{id}",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The level id.")),
    request_body = LevelWrite,
    responses(
        (status = 200, description = "The level.", body = LevelView),
        (status = 400, description = "Malformed body or name, unknown time segment.", body = openapi::ValidationErrors),
        (status = 404, description = "No such level.", body = openapi::Detail),
        (status = 409, description = "The name is taken.", body = openapi::Detail),
    )
)]
pub async fn update_level(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<LevelView>, ApiError> {
    let request: LevelWrite = body(&bytes)?;
    let id = parse_id(&id)?;
    let affected = state.store.update_access_level(id, &request.name, request.time_segment_id).await?;
    provision(&state, affected).await?;
    let level = state.store.access_level(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(level.into()))
}

/// Delete a level; its members lose its doors.
#[utoipa::path(
    delete,
    path = "/api/v1/access/levels/{id}",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The level id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such level.", body = openapi::Detail),
    )
)]
pub async fn delete_level(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let affected = state.store.delete_access_level(parse_id(&id)?).await?;
    provision(&state, affected).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/access/levels/{id}/doors` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelDoors {
    door_ids: Vec<i64>,
}

/// Add doors to a level (doors already in it are kept).
#[utoipa::path(
    post,
    path = "/api/v1/access/levels/{id}/doors",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The level id.")),
    request_body = LevelDoors,
    responses(
        (status = 200, description = "The level.", body = LevelView),
        (status = 400, description = "Malformed body, unknown door.", body = openapi::ValidationErrors),
        (status = 404, description = "No such level.", body = openapi::Detail),
    )
)]
pub async fn add_level_doors(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<LevelView>, ApiError> {
    let request: LevelDoors = body(&bytes)?;
    let id = parse_id(&id)?;
    let affected = state.store.add_access_level_doors(id, &request.door_ids).await?;
    provision(&state, affected).await?;
    Ok(Json(state.store.access_level(id).await?.ok_or(ApiError::NotFound)?.into()))
}

/// Remove a door from a level.
#[utoipa::path(
    delete,
    path = "/api/v1/access/levels/{id}/doors/{door_id}",
    tag = openapi::tag::ACCESS,
    params(
        ("id" = i64, Path, description = "The level id."),
        ("door_id" = i64, Path, description = "The door id."),
    ),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "No such level, or the door is not in it.", body = openapi::Detail),
    )
)]
pub async fn remove_level_door(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path((id, door_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let affected = state.store.remove_access_level_door(parse_id(&id)?, parse_id(&door_id)?).await?;
    provision(&state, affected).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A member of a level.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberView {
    pub(super) emp_code: String,
    /// First valid day (local date), or `null`: unlimited.
    #[schema(value_type = Option<String>, example = "2026-12-01")]
    pub(super) valid_from: Option<AccessDate>,
    /// Last valid day (local date), or `null`: unlimited.
    #[schema(value_type = Option<String>, example = "2026-12-31")]
    pub(super) valid_until: Option<AccessDate>,
}

impl From<LevelMember> for MemberView {
    fn from(m: LevelMember) -> MemberView {
        MemberView { emp_code: m.emp_code, valid_from: m.valid_from, valid_until: m.valid_until }
    }
}

/// `PUT /api/v1/access/levels/{id}/members/{emp_code}` body (may be empty: unlimited).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberWrite {
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "2026-12-01")]
    pub(super) valid_from: Option<AccessDate>,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "2026-12-31")]
    pub(super) valid_until: Option<AccessDate>,
}

/// List a level's members.
#[utoipa::path(
    get,
    path = "/api/v1/access/levels/{id}/members",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The level id.")),
    responses(
        (status = 200, description = "The members, by employee code.", body = List<MemberView>),
        (status = 404, description = "No such level.", body = openapi::Detail),
    )
)]
pub async fn list_members(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<List<MemberView>>, ApiError> {
    let id = parse_id(&id)?;
    state.store.access_level(id).await?.ok_or(ApiError::NotFound)?;
    Ok(List::of(state.store.access_level_members(id).await?.into_iter().map(MemberView::from).collect()))
}

/// Put an employee in a level, with an optional validity window (replaces the window of a
/// member). The controllers of the level's doors get the person and their rights.
#[utoipa::path(
    put,
    path = "/api/v1/access/levels/{id}/members/{emp_code}",
    tag = openapi::tag::ACCESS,
    params(
        ("id" = i64, Path, description = "The level id."),
        ("emp_code" = String, Path, description = "The employee's code (the controllers' PIN)."),
    ),
    request_body(content = Option<MemberWrite>, description = "An empty body: no validity limit."),
    responses(
        (status = 200, description = "The membership.", body = MemberView),
        (status = 400, description = "Malformed body or date, unknown employee, window ending before it starts.", body = openapi::ValidationErrors),
        (status = 404, description = "No such level.", body = openapi::Detail),
    )
)]
pub async fn put_member(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path((id, emp_code)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Json<MemberView>, ApiError> {
    let request: MemberWrite =
        if bytes.iter().all(u8::is_ascii_whitespace) { MemberWrite::default() } else { body(&bytes)? };
    let affected =
        state.store.put_access_level_member(parse_id(&id)?, &emp_code, request.valid_from, request.valid_until).await?;
    provision(&state, affected).await?;
    Ok(Json(MemberView { emp_code, valid_from: request.valid_from, valid_until: request.valid_until }))
}

/// Take an employee out of a level.
#[utoipa::path(
    delete,
    path = "/api/v1/access/levels/{id}/members/{emp_code}",
    tag = openapi::tag::ACCESS,
    params(
        ("id" = i64, Path, description = "The level id."),
        ("emp_code" = String, Path, description = "The employee's code."),
    ),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "No such level, or the employee is not in it.", body = openapi::Detail),
    )
)]
pub async fn remove_member(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path((id, emp_code)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let affected = state.store.remove_access_level_member(parse_id(&id)?, &emp_code).await?;
    provision(&state, affected).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a re-sync queued.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResyncQueued {
    sn: String,
    /// Commands queued: the four table clears, then every row the controller should hold.
    queued: usize,
}

/// Re-send everything one controller should hold: its access tables are cleared, then every
/// time zone, holiday, user and right is queued again (queued older changes are superseded).
#[utoipa::path(
    post,
    path = "/api/v1/access/controllers/{sn}/resync",
    tag = openapi::tag::ACCESS,
    params(("sn" = String, Path, description = "The controller's serial number.")),
    responses(
        (status = 200, description = "Queued.", body = ResyncQueued),
        (status = 404, description = "Unknown serial number.", body = openapi::Detail),
        (status = 409, description = "The device is not approved.", body = openapi::Detail),
    )
)]
pub async fn resync_controller(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(sn): Path<String>,
) -> Result<Json<ResyncQueued>, ApiError> {
    let device = state.store.device_by_sn(&sn).await?.ok_or(ApiError::NotFound)?;
    if device.approval != adms_store::Approval::Approved {
        return Err(ApiError::Conflict("The device is not approved: it gets no access rights."));
    }
    let queued = provisioning::resync_controller(&state, device.id).await?;
    Ok(Json(ResyncQueued { sn, queued }))
}

/// A visit: a visitor with the doors of its access levels from `starts_at` to `ends_at` (local
/// times), or until they leave.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VisitView {
    id: i64,
    /// The visitor's pin on the controllers ("8" and the id in 8 digits).
    pin: String,
    /// The employee visited.
    host_emp_code: String,
    /// CVSecurity's certificate type: 1-8 (2 ID card, 3 passport, 4 driver's licence, …, 8 other).
    cert_type: i64,
    cert_num: String,
    name: String,
    phone: String,
    company: String,
    reason: String,
    visitor_count: i64,
    /// `YYYY-MM-DD HH:MM:SS`, local time.
    starts_at: String,
    ends_at: String,
    card_no: String,
    level_ids: Vec<i64>,
    /// `upcoming`, `active` (the visitor is on the controllers) or `over` (ended or left).
    phase: &'static str,
    /// When the visitor left, Unix microseconds.
    exited_at: Option<i64>,
}

fn visit_view(visit: AccessVisit, now: &LocalTime) -> VisitView {
    let phase = match visit.phase(now) {
        VisitPhase::Upcoming => "upcoming",
        VisitPhase::Active => "active",
        VisitPhase::Over => "over",
    };
    VisitView {
        id: visit.id,
        pin: visit.pin,
        host_emp_code: visit.host_emp_code,
        cert_type: visit.cert_type,
        cert_num: visit.cert_num,
        name: visit.name,
        phone: visit.phone,
        company: visit.company,
        reason: visit.reason,
        visitor_count: visit.visitor_count,
        starts_at: visit.starts_at.to_string(),
        ends_at: visit.ends_at.to_string(),
        card_no: visit.card_no,
        level_ids: visit.level_ids,
        phase,
        exited_at: visit.exited_at,
    }
}

impl From<VisitError> for ApiError {
    fn from(error: VisitError) -> ApiError {
        let field = match &error {
            VisitError::Store(_) => {
                return match error {
                    VisitError::Store(store) => ApiError::Store(store),
                    _ => ApiError::Internal(error.to_string()),
                };
            }
            VisitError::AlreadyRegistered => {
                return ApiError::Conflict("this visitor is already registered for a visit in progress");
            }
            VisitError::NotRegistered => return ApiError::NotFound,
            VisitError::HostMissing(_) => "host_emp_code",
            VisitError::LevelMissing(_) => "level_ids",
            VisitError::CardUsed(_) | VisitError::BadCard => "card_no",
            VisitError::EndsBeforeStart => "ends_at",
            VisitError::NameEmpty => "name",
            VisitError::BadText(field, _) => field,
            VisitError::BadCertType => "cert_type",
            VisitError::BadCertNum => "cert_num",
            VisitError::BadCount => "visitor_count",
        };
        invalid(field, error.to_string())
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VisitFilter {
    /// Only the visits in progress now (started, not ended, not left).
    #[serde(default)]
    in_progress: bool,
}

/// List visits, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/access/visits",
    tag = openapi::tag::ACCESS,
    params(VisitFilter),
    responses((status = 200, description = "The visits.", body = List<VisitView>))
)]
pub async fn list_visits(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Query(filter): Query<VisitFilter>,
) -> Result<Json<List<VisitView>>, ApiError> {
    let now = provisioning::now(&state);
    let visits = state.store.access_visits(filter.in_progress.then_some(&now)).await?;
    Ok(List::of(visits.into_iter().map(|v| visit_view(v, &now)).collect()))
}

/// `POST /api/v1/access/visits` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitRequest {
    /// The employee visited.
    host_emp_code: String,
    /// 1-8 (CVSecurity's certificate types).
    cert_type: i64,
    /// 1 to 30 letters, digits or '-'.
    cert_num: String,
    /// 1 to 64 characters.
    name: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    company: String,
    #[serde(default)]
    reason: String,
    #[serde(default = "one_visitor")]
    visitor_count: i64,
    /// `YYYY-MM-DD HH:MM:SS`, local time.
    #[schema(value_type = String, example = "2026-12-07 09:00:00")]
    starts_at: String,
    /// After `starts_at`.
    #[schema(value_type = String, example = "2026-12-07 17:00:00")]
    ends_at: String,
    /// Up to 20 digits, or `[8 hex]`.
    #[serde(default)]
    card_no: String,
    /// Access levels whose doors the visitor may open.
    #[serde(default)]
    level_ids: Vec<i64>,
}

fn one_visitor() -> i64 {
    1
}

/// Register a visit.
///
/// While it is in progress its visitor is on the controllers of its levels (a `user` row valid
/// on the visit's days, and `userauthorize` rows); when it ends or the visitor leaves, the
/// rows are deleted (the worker looks for starts and ends every 30 seconds).
#[utoipa::path(
    post,
    path = "/api/v1/access/visits",
    tag = openapi::tag::ACCESS,
    request_body = VisitRequest,
    responses(
        (status = 201, description = "Registered.", body = VisitView),
        (status = 400, description = "A field is missing or invalid, the host or a level does not exist, or the card is an employee's.", body = openapi::ValidationErrors),
        (status = 409, description = "This document is in another visit in progress.", body = openapi::Detail),
    )
)]
pub async fn create_visit(
    State(state): State<SharedState>,
    _auth: Authenticated,
    bytes: Bytes,
) -> Result<(StatusCode, Json<VisitView>), ApiError> {
    let request: VisitRequest = body(&bytes)?;
    let time = |field: &str, text: &str| text.parse::<LocalTime>().map_err(|e| invalid(field, e.to_string()));
    let visit = NewVisit {
        host_emp_code: request.host_emp_code,
        cert_type: request.cert_type,
        cert_num: request.cert_num,
        name: request.name,
        phone: request.phone,
        company: request.company,
        reason: request.reason,
        visitor_count: request.visitor_count,
        starts_at: time("starts_at", &request.starts_at)?,
        ends_at: time("ends_at", &request.ends_at)?,
        card_no: request.card_no,
        level_ids: request.level_ids,
    };
    let visit = provisioning::register_visit(&state, &visit).await?;
    Ok((StatusCode::CREATED, Json(visit_view(visit, &provisioning::now(&state)))))
}

/// End a visit now (the visitor left): their rows are deleted from the controllers.
#[utoipa::path(
    post,
    path = "/api/v1/access/visits/{id}/exit",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The visit id.")),
    responses(
        (status = 200, description = "Ended.", body = VisitView),
        (status = 404, description = "No such visit, or its visitor left already.", body = openapi::Detail),
    )
)]
pub async fn exit_visit(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<VisitView>, ApiError> {
    let visit = provisioning::end_visit(&state, &VisitKey::Id(parse_id(&id)?)).await?;
    Ok(Json(visit_view(visit, &provisioning::now(&state))))
}
