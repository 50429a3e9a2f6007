//! `/personnel/api/resigns/`: open resignations in ZKBio Time's shape, and `reinstatement/`.
//! Resigning removes the employee from every terminal; their punches stay.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use adms_store::roster::{NewResignation, Resignation, ResignationFilter};

use super::auth::Authenticated;
use super::pagination::{Envelope, ListRequest, PageParams};
use super::personnel::{ResignationFields, sync_employee};
use super::request::{Bool, Date, DrfBody, Field, IdList, Int, Text, Written, invalid_pk};
use super::{ApiError, openapi};
use crate::state::SharedState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResignEmployee {
    id: i64,
    emp_code: String,
    first_name: String,
    last_name: String,
}

/// ZKBio Time resignation record.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResignRecord {
    id: i64,
    resign_date: String,
    resign_type: i64,
    disableatt: bool,
    reason: String,
    employee: ResignEmployee,
    first_name: String,
    last_name: String,
}

impl From<Resignation> for ResignRecord {
    fn from(r: Resignation) -> ResignRecord {
        ResignRecord {
            id: r.id,
            resign_date: r.resign_date,
            resign_type: r.resign_type,
            disableatt: r.disableatt,
            reason: r.reason,
            first_name: r.first_name.clone(),
            last_name: r.last_name.clone(),
            employee: ResignEmployee {
                id: r.employee_id,
                emp_code: r.emp_code,
                first_name: r.first_name,
                last_name: r.last_name,
            },
        }
    }
}

/// A resignation's write body; create requires `employee` and `resign_date`, `PUT` / `PATCH`
/// take any subset (`employee` is ignored there).
// Its resignation fields are checked as `adjust_resign`'s are ([`ResignationFields`]).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ResignWrite {
    /// The employee id.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    employee: Field<Int>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    resign_date: Field<Date>,
    /// 1 to 5 (default 1).
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 5)]
    resign_type: Field<Written>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200)]
    reason: Field<Text>,
    /// Default true.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    disableatt: Field<Bool>,
}

impl ResignWrite {
    fn resignation(self) -> ResignationFields {
        ResignationFields {
            resign_date: self.resign_date,
            resign_type: self.resign_type,
            reason: self.reason,
            disableatt: self.disableatt,
        }
    }
}

/// The body of `reinstatement`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ReinstatementRequest {
    /// Resignation ids (a comma-separated string in form bodies).
    #[serde(default)]
    #[schema(value_type = Vec<i64>, min_items = 1, required = true)]
    resigns: Field<IdList>,
}

/// List open resignations.
#[utoipa::path(
    get,
    path = "/personnel/api/resigns",
    tag = openapi::tag::PERSONNEL,
    params(
        ("employee" = Option<i64>, Query, description = "An employee id."),
        ("resign_type" = Option<i64>, Query),
        ("resign_date" = Option<String>, Query, description = "`YYYY-MM-DD`."),
        PageParams,
    ),
    responses(
        (status = 200, description = "One page of resignations.", body = Envelope<ResignRecord>),
        (status = 400, description = "A numeric filter is not a whole number.", body = openapi::ValidationErrors),
        (status = 404, description = "`Invalid page.`", body = openapi::Detail),
    )
)]
pub async fn list(
    State(state): State<SharedState>,
    _auth: Authenticated,
    list: ListRequest,
) -> Result<Json<Envelope<ResignRecord>>, ApiError> {
    let params = &list.params;
    let filter = ResignationFilter {
        id: None,
        employee: params.int("employee")?,
        resign_type: params.int("resign_type")?,
        resign_date: params.get("resign_date").map(str::to_owned),
    };
    let (count, rows) = state.store.list_resignations(&filter, list.store_page()).await?;
    Ok(Json(list.envelope(count, rows.into_iter().map(ResignRecord::from).collect())?))
}

/// Get one resignation.
#[utoipa::path(
    get,
    path = "/personnel/api/resigns/{id}",
    tag = openapi::tag::PERSONNEL,
    params(("id" = i64, Path, description = "The resignation id.")),
    responses(
        (status = 200, description = "The resignation.", body = ResignRecord),
        (status = 404, description = "No such resignation.", body = openapi::Detail),
    )
)]
pub async fn detail(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<ResignRecord>, ApiError> {
    let r = state.store.resignation_by_id(super::parse_id(&id)?).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(r.into()))
}

/// Resign one employee.
///
/// The employee is removed from every terminal; their punches stay.
#[utoipa::path(
    post,
    path = "/personnel/api/resigns",
    tag = openapi::tag::PERSONNEL,
    request_body(content(
        (ResignWrite = "application/json"),
        (ResignWrite = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 201, description = "Resigned.", body = ResignRecord),
        (status = 400, description = "Invalid fields, an unknown employee, or one already resigned.", body = openapi::ValidationErrors),
    )
)]
pub async fn create(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    DrfBody(body): DrfBody<ResignWrite>,
) -> Result<Response, ApiError> {
    let Field::Given(Int(employee_id)) = body.employee else {
        return Err(ApiError::BadRequest(json!({ "employee": ["This field is required."] })));
    };
    let Some(employee) = state.store.employee_by_id(employee_id).await? else {
        return Err(ApiError::BadRequest(json!({ "employee": [invalid_pk(employee_id)] })));
    };
    let resignation = body.resignation().resolve(None)?;
    let ids = state.store.resign_employees(&[employee_id], &resignation).await.map_err(|e| match e {
        adms_store::roster::RosterError::Refused(r) => ApiError::BadRequest(json!({ "employee": [r.to_string()] })),
        adms_store::roster::RosterError::Store(e) => ApiError::Store(e),
    })?;
    tracing::info!(user = %who.name, emp_code = %employee.fields.emp_code, "employee resigned");
    sync_employee(&state, &employee.fields.emp_code).await?;
    let id = ids.first().copied().ok_or(ApiError::NotFound)?;
    let r = state.store.resignation_by_id(id).await?.ok_or(ApiError::NotFound)?;
    Ok((StatusCode::CREATED, Json(ResignRecord::from(r))).into_response())
}

/// Change a resignation.
#[utoipa::path(
    method(put, patch),
    path = "/personnel/api/resigns/{id}",
    tag = openapi::tag::PERSONNEL,
    params(("id" = i64, Path, description = "The resignation id.")),
    request_body(
        content(
            (Option<ResignWrite> = "application/json"),
            (Option<ResignWrite> = "application/x-www-form-urlencoded"),
        ),
        description = "An empty body changes nothing.",
    ),
    responses(
        (status = 200, description = "The resignation as changed.", body = ResignRecord),
        (status = 400, description = "Invalid fields.", body = openapi::ValidationErrors),
        (status = 404, description = "No such resignation.", body = openapi::Detail),
    )
)]
pub async fn update(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
    DrfBody(body): DrfBody<ResignWrite>,
) -> Result<Json<ResignRecord>, ApiError> {
    let id = super::parse_id(&id)?;
    let current = state.store.resignation_by_id(id).await?.ok_or(ApiError::NotFound)?;
    let current = NewResignation {
        resign_date: current.resign_date,
        resign_type: current.resign_type,
        disableatt: current.disableatt,
        reason: current.reason,
    };
    let updated = body.resignation().resolve(Some(&current))?;
    state.store.update_resignation(id, &updated).await?;
    let r = state.store.resignation_by_id(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(r.into()))
}

async fn reinstate_and_sync(state: &SharedState, resign_ids: &[i64]) -> Result<usize, ApiError> {
    let employees = state.store.reinstate(resign_ids).await?;
    for id in &employees {
        if let Some(e) = state.store.employee_by_id(*id).await? {
            sync_employee(state, &e.fields.emp_code).await?;
        }
    }
    Ok(employees.len())
}

/// Withdraw a resignation: the employee is reinstated.
#[utoipa::path(
    delete,
    path = "/personnel/api/resigns/{id}",
    tag = openapi::tag::PERSONNEL,
    params(("id" = i64, Path, description = "The resignation id.")),
    responses(
        (status = 204, description = "Withdrawn; the employee is active again."),
        (status = 404, description = "No such resignation.", body = openapi::Detail),
    )
)]
pub async fn delete(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = super::parse_id(&id)?;
    if reinstate_and_sync(&state, &[id]).await? == 0 {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Reinstate resigned employees.
///
/// The employees become active again and go back onto the terminals of their areas.
#[utoipa::path(
    post,
    path = "/personnel/api/resigns/reinstatement",
    tag = openapi::tag::PERSONNEL,
    request_body(content(
        (ReinstatementRequest = "application/json"),
        (ReinstatementRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "`{\"detail\": \"Success.\"}`", body = openapi::Detail),
        (status = 400, description = "`resigns` missing or naming an unknown resignation.", body = openapi::ValidationErrors),
    )
)]
pub async fn reinstatement(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    DrfBody(body): DrfBody<ReinstatementRequest>,
) -> Result<Json<Value>, ApiError> {
    let ids = match body.resigns {
        Field::Given(IdList(ids)) if !ids.is_empty() => ids,
        _ => return Err(ApiError::BadRequest(json!({ "resigns": ["This field is required."] }))),
    };
    for id in &ids {
        if state.store.resignation_by_id(*id).await?.is_none() {
            return Err(ApiError::BadRequest(json!({ "resigns": { "resigns": invalid_pk(id) } })));
        }
    }
    let n = reinstate_and_sync(&state, &ids).await?;
    tracing::info!(user = %who.name, employees = n, "employees reinstated");
    Ok(Json(json!({ "detail": "Success." })))
}
