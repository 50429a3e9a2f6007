//! Elevator levels in the native API, `/api/v1/access/elevator-levels/...` (issue 19): a time
//! segment and a set of floors of elevator controllers (declared with
//! `PUT /api/v1/access/controllers/{sn}/floors`), and their members. Shaped and scoped as the
//! door levels' routes (`access_control`): reads need `read`, changes `roster:write`; every
//! change plans the controllers it concerns and queues only the difference (their
//! `usereleauthorize`, `user` and `timezone` rows).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use adms_store::EleLevel;

use super::access_control::{List, MemberView, MemberWrite, body, provision};
use super::auth::Authenticated;
use super::{ApiError, openapi, parse_id};
use crate::state::SharedState;

/// An elevator level: a time segment and a set of floors, possibly of several controllers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EleLevelView {
    id: i64,
    name: String,
    time_segment_id: i64,
    /// Ids of `GET /api/v1/access/floors`.
    floor_ids: Vec<i64>,
    member_count: i64,
}

impl From<EleLevel> for EleLevelView {
    fn from(l: EleLevel) -> EleLevelView {
        EleLevelView {
            id: l.id,
            name: l.name,
            time_segment_id: l.time_segment_id,
            floor_ids: l.floor_ids,
            member_count: l.member_count,
        }
    }
}

/// An elevator level as written.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EleLevelWrite {
    name: String,
    time_segment_id: i64,
}

/// List the elevator levels.
#[utoipa::path(
    get,
    path = "/api/v1/access/elevator-levels",
    tag = openapi::tag::ACCESS,
    responses((status = 200, description = "Every elevator level.", body = List<EleLevelView>))
)]
pub async fn list_ele_levels(
    State(state): State<SharedState>,
    _auth: Authenticated,
) -> Result<Json<List<EleLevelView>>, ApiError> {
    Ok(List::of(state.store.ele_levels().await?.into_iter().map(EleLevelView::from).collect()))
}

/// Create an elevator level (no floors, no members yet).
#[utoipa::path(
    post,
    path = "/api/v1/access/elevator-levels",
    tag = openapi::tag::ACCESS,
    request_body = EleLevelWrite,
    responses(
        (status = 201, description = "Created.", body = EleLevelView),
        (status = 400, description = "Malformed body or name, unknown time segment.", body = openapi::ValidationErrors),
        (status = 409, description = "The name is taken.", body = openapi::Detail),
    )
)]
pub async fn create_ele_level(
    State(state): State<SharedState>,
    _auth: Authenticated,
    bytes: Bytes,
) -> Result<(StatusCode, Json<EleLevelView>), ApiError> {
    let request: EleLevelWrite = body(&bytes)?;
    let level = state.store.create_ele_level(&request.name, request.time_segment_id).await?;
    Ok((StatusCode::CREATED, Json(level.into())))
}

/// Get one elevator level.
#[utoipa::path(
    get,
    path = "/api/v1/access/elevator-levels/{id}",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The elevator level id.")),
    responses(
        (status = 200, description = "The level.", body = EleLevelView),
        (status = 404, description = "No such level.", body = openapi::Detail),
    )
)]
pub async fn get_ele_level(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<EleLevelView>, ApiError> {
    let level = state.store.ele_level(parse_id(&id)?).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(level.into()))
}

/// Rename an elevator level or move it to another time segment.
#[utoipa::path(
    put,
    path = "/api/v1/access/elevator-levels/{id}",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The elevator level id.")),
    request_body = EleLevelWrite,
    responses(
        (status = 200, description = "The level.", body = EleLevelView),
        (status = 400, description = "Malformed body or name, unknown time segment.", body = openapi::ValidationErrors),
        (status = 404, description = "No such level.", body = openapi::Detail),
        (status = 409, description = "The name is taken.", body = openapi::Detail),
    )
)]
pub async fn update_ele_level(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<EleLevelView>, ApiError> {
    let request: EleLevelWrite = body(&bytes)?;
    let id = parse_id(&id)?;
    let affected = state.store.update_ele_level(id, &request.name, request.time_segment_id).await?;
    provision(&state, affected).await?;
    let level = state.store.ele_level(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(level.into()))
}

/// Delete an elevator level; its members lose its floors.
#[utoipa::path(
    delete,
    path = "/api/v1/access/elevator-levels/{id}",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The elevator level id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such level.", body = openapi::Detail),
    )
)]
pub async fn delete_ele_level(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let affected = state.store.delete_ele_level(parse_id(&id)?).await?;
    provision(&state, affected).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/access/elevator-levels/{id}/floors` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EleLevelFloors {
    floor_ids: Vec<i64>,
}

/// Add floors to an elevator level (floors already in it are kept).
#[utoipa::path(
    post,
    path = "/api/v1/access/elevator-levels/{id}/floors",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The elevator level id.")),
    request_body = EleLevelFloors,
    responses(
        (status = 200, description = "The level.", body = EleLevelView),
        (status = 400, description = "Malformed body, unknown floor.", body = openapi::ValidationErrors),
        (status = 404, description = "No such level.", body = openapi::Detail),
    )
)]
pub async fn add_ele_level_floors(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<EleLevelView>, ApiError> {
    let request: EleLevelFloors = body(&bytes)?;
    let id = parse_id(&id)?;
    let affected = state.store.add_ele_level_floors(id, &request.floor_ids).await?;
    provision(&state, affected).await?;
    Ok(Json(state.store.ele_level(id).await?.ok_or(ApiError::NotFound)?.into()))
}

/// Remove a floor from an elevator level.
#[utoipa::path(
    delete,
    path = "/api/v1/access/elevator-levels/{id}/floors/{floor_id}",
    tag = openapi::tag::ACCESS,
    params(
        ("id" = i64, Path, description = "The elevator level id."),
        ("floor_id" = i64, Path, description = "The floor id."),
    ),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "No such level, or the floor is not in it.", body = openapi::Detail),
    )
)]
pub async fn remove_ele_level_floor(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path((id, floor_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let affected = state.store.remove_ele_level_floor(parse_id(&id)?, parse_id(&floor_id)?).await?;
    provision(&state, affected).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List an elevator level's members.
#[utoipa::path(
    get,
    path = "/api/v1/access/elevator-levels/{id}/members",
    tag = openapi::tag::ACCESS,
    params(("id" = i64, Path, description = "The elevator level id.")),
    responses(
        (status = 200, description = "The members, by employee code.", body = List<MemberView>),
        (status = 404, description = "No such level.", body = openapi::Detail),
    )
)]
pub async fn list_ele_members(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<List<MemberView>>, ApiError> {
    let id = parse_id(&id)?;
    state.store.ele_level(id).await?.ok_or(ApiError::NotFound)?;
    let members = state.store.ele_level_members(id).await?;
    Ok(List::of(members.into_iter().map(MemberView::from).collect()))
}

/// Put an employee in an elevator level, with an optional validity window (replaces the window
/// of a member). The controllers of the level's floors get the person and their floor rights.
#[utoipa::path(
    put,
    path = "/api/v1/access/elevator-levels/{id}/members/{emp_code}",
    tag = openapi::tag::ACCESS,
    params(
        ("id" = i64, Path, description = "The elevator level id."),
        ("emp_code" = String, Path, description = "The employee's code (the controllers' PIN)."),
    ),
    request_body(content = Option<MemberWrite>, description = "An empty body: no validity limit."),
    responses(
        (status = 200, description = "The membership.", body = MemberView),
        (status = 400, description = "Malformed body or date, unknown employee, window ending before it starts.", body = openapi::ValidationErrors),
        (status = 404, description = "No such level.", body = openapi::Detail),
    )
)]
pub async fn put_ele_member(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path((id, emp_code)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Json<MemberView>, ApiError> {
    let request: MemberWrite =
        if bytes.iter().all(u8::is_ascii_whitespace) { MemberWrite::default() } else { body(&bytes)? };
    let affected =
        state.store.put_ele_level_member(parse_id(&id)?, &emp_code, request.valid_from, request.valid_until).await?;
    provision(&state, affected).await?;
    Ok(Json(MemberView { emp_code, valid_from: request.valid_from, valid_until: request.valid_until }))
}

/// Take an employee out of an elevator level.
#[utoipa::path(
    delete,
    path = "/api/v1/access/elevator-levels/{id}/members/{emp_code}",
    tag = openapi::tag::ACCESS,
    params(
        ("id" = i64, Path, description = "The elevator level id."),
        ("emp_code" = String, Path, description = "The employee's code."),
    ),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "No such level, or the employee is not in it.", body = openapi::Detail),
    )
)]
pub async fn remove_ele_member(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path((id, emp_code)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let affected = state.store.remove_ele_level_member(parse_id(&id)?, &emp_code).await?;
    provision(&state, affected).await?;
    Ok(StatusCode::NO_CONTENT)
}
