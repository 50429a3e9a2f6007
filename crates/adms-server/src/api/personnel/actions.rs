//! The employee actions of ZKBio Time 9.x: `adjust_resign` (and the 8.x spelling
//! `adjust_regsin`), `adjust_area`, `adjust_department`, `adjust_position`, `adjust_emp_type`,
//! `del_bio_template`, `resync_to_device`.
//!
//! Each body names `employees`, which is checked and resolved before any other field: an
//! action with no valid employee list is answered with that error alone, as ZKBio Time does.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use adms_store::roster::{Employee, EmployeeAssignment, NewResignation, OrgKind};

use super::record::{FACE, FINGER_VEIN, FINGERPRINT, PALM, VL_FACE, VL_PALM};
use super::{refusal, sync_employee};
use crate::api::auth::Authenticated;
use crate::api::request::rules::{drf_boolean, employee_ids, fail};
use crate::api::request::{
    Bool, Date, DrfBody, Field, FieldErrors, IdList, Int, Text, Written, invalid_pk, printable, quoted,
};
use crate::api::{ApiError, openapi};
use crate::state::SharedState;

/// How resignation fields are read: a new resignation needs `resign_date`; a change keeps what
/// it is not given.
#[derive(Debug, Clone, Copy)]
pub struct Resigning {
    pub changing: bool,
}

/// The fields of a resignation as `adjust_resign` and `/personnel/api/resigns/` read them, and
/// their rules. Each of those bodies declares the fields itself (their schemas differ: a
/// change of a resignation needs no `resign_date`) and hands them over here.
#[derive(Debug, garde::Validate)]
#[garde(context(Resigning))]
pub struct ResignationFields {
    #[garde(custom(resign_date_rule))]
    pub resign_date: Field<Date>,
    #[garde(custom(resign_type_rule))]
    pub resign_type: Field<Written>,
    #[garde(custom(reason_rule))]
    pub reason: Field<Text>,
    #[garde(custom(drf_boolean))]
    pub disableatt: Field<Bool>,
}

fn resign_date_rule(field: &Field<Date>, resigning: &Resigning) -> garde::Result {
    match field {
        Field::Invalid(_) => fail("Date has wrong format. Use one of these formats instead: YYYY-MM-DD."),
        Field::Absent | Field::Null if !resigning.changing => fail("This field is required."),
        _ => Ok(()),
    }
}

fn resign_type_rule<C>(field: &Field<Written>, _: &C) -> garde::Result {
    let not_a_choice = |text: &str| fail(format!("\"{text}\" is not a valid choice."));
    match field {
        Field::Given(t) if !(1..=5).contains(&t.value) => not_a_choice(&t.text),
        Field::Invalid(value) => not_a_choice(&quoted(value)),
        _ => Ok(()),
    }
}

fn reason_rule<C>(field: &Field<Text>, _: &C) -> garde::Result {
    match field {
        Field::Absent | Field::Null => Ok(()),
        Field::Given(Text(s)) if s.chars().count() <= 200 && printable(s) => Ok(()),
        _ => fail("Ensure this field has no more than 200 printable characters."),
    }
}

impl ResignationFields {
    /// The resignation the fields describe: checked, over `current` when changing one.
    pub fn resolve(self, current: Option<&NewResignation>) -> Result<NewResignation, ApiError> {
        FieldErrors::of(&self, &Resigning { changing: current.is_some() }).finish()?;
        Ok(NewResignation {
            resign_date: match self.resign_date {
                Field::Given(Date(day)) => day,
                _ => current.map(|c| c.resign_date.clone()).unwrap_or_default(),
            },
            resign_type: match self.resign_type {
                Field::Given(t) => t.value,
                _ => current.map_or(1, |c| c.resign_type),
            },
            reason: match self.reason {
                Field::Given(Text(s)) => s,
                _ => current.map_or_else(String::new, |c| c.reason.clone()),
            },
            disableatt: match self.disableatt {
                Field::Given(Bool(b)) => b,
                _ => current.is_none_or(|c| c.disableatt),
            },
        })
    }
}

/// The body of `resync_to_device`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct EmployeesAction {
    #[serde(default)]
    #[schema(value_type = Vec<i64>, min_items = 1, required = true)]
    employees: Field<IdList>,
}

/// The employees an action's `employees` names, every id checked (ZKBio Time's nested message
/// for an unknown one).
async fn resolve_employees(state: &SharedState, employees: &Field<IdList>) -> Result<Vec<Employee>, ApiError> {
    if let Err(error) = employee_ids(employees, &()) {
        return Err(ApiError::BadRequest(json!({ "employees": [error.message()] })));
    }
    let ids = employees.given().map_or(&[][..], |IdList(ids)| ids);
    let mut employees = Vec::with_capacity(ids.len());
    for &id in ids {
        match state.store.employee_by_id(id).await? {
            Some(e) => employees.push(e),
            None => {
                return Err(ApiError::BadRequest(json!({ "employees": { "employees": invalid_pk(id) } })));
            }
        }
    }
    Ok(employees)
}

/// The body of `adjust_resign` (and, with `employee` instead of `employees`, of a
/// resignation create): `employees` and `resign_date` are required.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ResignAction {
    /// Employee ids (a comma-separated string in form bodies).
    #[serde(default)]
    #[schema(value_type = Vec<i64>, min_items = 1, required = true)]
    employees: Field<IdList>,
    #[serde(default)]
    #[schema(value_type = String, format = Date, required = true)]
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

/// The body of `adjust_area`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AreaAction {
    #[serde(default)]
    #[schema(value_type = Vec<i64>, min_items = 1, required = true)]
    employees: Field<IdList>,
    /// Area ids; the employees' areas become exactly these.
    #[serde(default)]
    #[schema(value_type = Vec<i64>, min_items = 1, required = true)]
    areas: Field<IdList>,
}

/// The body of `adjust_department`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DepartmentAction {
    #[serde(default)]
    #[schema(value_type = Vec<i64>, min_items = 1, required = true)]
    employees: Field<IdList>,
    /// Department id.
    #[serde(default)]
    #[schema(value_type = i64, required = true)]
    department: Field<Int>,
}

/// The body of `adjust_position`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PositionAction {
    #[serde(default)]
    #[schema(value_type = Vec<i64>, min_items = 1, required = true)]
    employees: Field<IdList>,
    /// Position id.
    #[serde(default)]
    #[schema(value_type = i64, required = true)]
    position: Field<Int>,
}

/// The body of `adjust_emp_type`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct EmpTypeAction {
    #[serde(default)]
    #[schema(value_type = Vec<i64>, min_items = 1, required = true)]
    employees: Field<IdList>,
    #[serde(default)]
    #[schema(value_type = i64, minimum = 0, maximum = 100, required = true)]
    emp_type: Field<Int>,
}

/// The body of `del_bio_template`: which templates to forget (all false by default).
#[derive(Debug, Deserialize, utoipa::ToSchema, garde::Validate)]
pub struct BioTemplateAction {
    #[serde(default)]
    #[schema(value_type = Vec<i64>, min_items = 1, required = true)]
    #[garde(skip)]
    employees: Field<IdList>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    #[garde(custom(drf_boolean))]
    finger_print: Field<Bool>,
    /// Near-infrared and visible-light faces.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    #[garde(custom(drf_boolean))]
    face: Field<Bool>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    #[garde(custom(drf_boolean))]
    finger_vein: Field<Bool>,
    /// Palms, both kinds.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    #[garde(custom(drf_boolean))]
    palm: Field<Bool>,
}

fn success() -> Json<Value> {
    Json(json!({ "detail": "Success." }))
}

/// Resign employees.
///
/// They are removed from every terminal; their punches are kept. 400 if one is already
/// resigned.
#[utoipa::path(
    post,
    path = "/personnel/api/employees/adjust_resign",
    tag = openapi::tag::PERSONNEL,
    request_body(content(
        (ResignAction = "application/json"),
        (ResignAction = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "`{\"detail\": \"Success.\"}`", body = openapi::Detail),
        (status = 400, description = "Invalid fields, an unknown id (`{\"employees\": {\"employees\": \"Invalid pk ...\"}}`), or an employee already resigned.", body = openapi::ValidationErrors),
    )
)]
pub async fn adjust_resign(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    DrfBody(body): DrfBody<ResignAction>,
) -> Result<Json<Value>, ApiError> {
    let employees = resolve_employees(&state, &body.employees).await?;
    let resignation = ResignationFields {
        resign_date: body.resign_date,
        resign_type: body.resign_type,
        reason: body.reason,
        disableatt: body.disableatt,
    }
    .resolve(None)?;
    let ids: Vec<i64> = employees.iter().map(|e| e.id).collect();
    state.store.resign_employees(&ids, &resignation).await.map_err(refusal)?;
    tracing::info!(user = %who.name, employees = ids.len(), "employees resigned");
    for e in &employees {
        sync_employee(&state, &e.fields.emp_code).await?;
    }
    Ok(success())
}

/// Resign employees (the 8.x documentation's spelling `adjust_regsin`, which real clients call).
#[utoipa::path(
    post,
    path = "/personnel/api/employees/adjust_regsin",
    tag = openapi::tag::PERSONNEL,
    request_body(content(
        (ResignAction = "application/json"),
        (ResignAction = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "`{\"detail\": \"Success.\"}`", body = openapi::Detail),
        (status = 400, description = "As `adjust_resign`.", body = openapi::ValidationErrors),
    )
)]
pub async fn adjust_regsin(
    state: State<SharedState>,
    who: Authenticated,
    body: DrfBody<ResignAction>,
) -> Result<Json<Value>, ApiError> {
    adjust_resign(state, who, body).await
}

/// Move employees to other areas.
///
/// Their areas become exactly `areas`; the terminals follow (users added and removed).
#[utoipa::path(
    post,
    path = "/personnel/api/employees/adjust_area",
    tag = openapi::tag::PERSONNEL,
    request_body(content(
        (AreaAction = "application/json"),
        (AreaAction = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "`{\"detail\": \"Success.\"}`", body = openapi::Detail),
        (status = 400, description = "Missing or unknown employees or areas.", body = openapi::ValidationErrors),
    )
)]
pub async fn adjust_area(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    DrfBody(body): DrfBody<AreaAction>,
) -> Result<Json<Value>, ApiError> {
    let employees = resolve_employees(&state, &body.employees).await?;
    let areas = match body.areas {
        Field::Given(IdList(ids)) if !ids.is_empty() => ids,
        _ => return Err(ApiError::BadRequest(json!({ "areas": ["This field is required."] }))),
    };
    if let Some(id) = state.store.missing_org_ids(OrgKind::Area, &areas).await?.first() {
        return Err(ApiError::BadRequest(json!({ "areas": [invalid_pk(id)] })));
    }
    let ids: Vec<i64> = employees.iter().map(|e| e.id).collect();
    state.store.set_employee_areas(&ids, &areas).await?;
    tracing::info!(user = %who.name, employees = ids.len(), "employee areas adjusted");
    for e in &employees {
        sync_employee(&state, &e.fields.emp_code).await?;
    }
    Ok(success())
}

/// Move employees to a department.
///
/// Terminals hold no department, so no command follows.
#[utoipa::path(
    post,
    path = "/personnel/api/employees/adjust_department",
    tag = openapi::tag::PERSONNEL,
    request_body(content(
        (DepartmentAction = "application/json"),
        (DepartmentAction = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "`{\"detail\": \"Success.\"}`", body = openapi::Detail),
        (status = 400, description = "Missing or unknown employees or department.", body = openapi::ValidationErrors),
    )
)]
pub async fn adjust_department(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    DrfBody(body): DrfBody<DepartmentAction>,
) -> Result<Json<Value>, ApiError> {
    let id = existing_org_id(&state, &body.department, "department", OrgKind::Department).await?;
    assign(&state, &who.name, &body.employees, EmployeeAssignment::Department(id)).await
}

/// Give employees a position.
#[utoipa::path(
    post,
    path = "/personnel/api/employees/adjust_position",
    tag = openapi::tag::PERSONNEL,
    request_body(content(
        (PositionAction = "application/json"),
        (PositionAction = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "`{\"detail\": \"Success.\"}`", body = openapi::Detail),
        (status = 400, description = "Missing or unknown employees or position.", body = openapi::ValidationErrors),
    )
)]
pub async fn adjust_position(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    DrfBody(body): DrfBody<PositionAction>,
) -> Result<Json<Value>, ApiError> {
    let id = existing_org_id(&state, &body.position, "position", OrgKind::Position).await?;
    assign(&state, &who.name, &body.employees, EmployeeAssignment::Position(id)).await
}

/// Set employees' employment type.
///
/// `emp_type` 0 to 100, as on create.
#[utoipa::path(
    post,
    path = "/personnel/api/employees/adjust_emp_type",
    tag = openapi::tag::PERSONNEL,
    request_body(content(
        (EmpTypeAction = "application/json"),
        (EmpTypeAction = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "`{\"detail\": \"Success.\"}`", body = openapi::Detail),
        (status = 400, description = "Missing or unknown employees, or `emp_type` not an integer from 0 to 100.", body = openapi::ValidationErrors),
    )
)]
pub async fn adjust_emp_type(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    DrfBody(body): DrfBody<EmpTypeAction>,
) -> Result<Json<Value>, ApiError> {
    let emp_type = match body.emp_type {
        Field::Given(Int(v)) if (0..=100).contains(&v) => v,
        Field::Absent | Field::Null => {
            return Err(ApiError::BadRequest(json!({ "emp_type": ["This field is required."] })));
        }
        _ => return Err(ApiError::BadRequest(json!({ "emp_type": ["A valid integer is required."] }))),
    };
    assign(&state, &who.name, &body.employees, EmployeeAssignment::EmpType(emp_type)).await
}

/// Sets `assignment` on the employees an `adjust_*` body lists (all of them or, when one id is
/// unknown, none).
async fn assign(
    state: &SharedState,
    user: &str,
    employees: &Field<IdList>,
    assignment: EmployeeAssignment,
) -> Result<Json<Value>, ApiError> {
    let ids: Vec<i64> = resolve_employees(state, employees).await?.iter().map(|e| e.id).collect();
    state.store.set_employee_assignment(&ids, assignment).await?;
    tracing::info!(user, employees = ids.len(), ?assignment, "employees adjusted");
    Ok(success())
}

/// The id in `field` of an `adjust_*` body, which must name an existing department or position.
async fn existing_org_id(
    state: &SharedState,
    id: &Field<Int>,
    field: &'static str,
    kind: OrgKind,
) -> Result<i64, ApiError> {
    match id {
        Field::Absent | Field::Null => Err(ApiError::BadRequest(json!({ field: ["This field is required."] }))),
        Field::Given(Int(id)) if state.store.org_by_id(kind, *id).await?.is_some() => Ok(*id),
        Field::Given(Int(id)) => Err(ApiError::BadRequest(json!({ field: [invalid_pk(id)] }))),
        Field::Invalid(_) => Err(ApiError::BadRequest(json!({ field: ["Incorrect type. Expected pk value."] }))),
    }
}

/// Delete employees' biometric templates.
///
/// Forgets the chosen biometrics (`finger_print`, `face`, `finger_vein`, `palm`; all false by
/// default) and removes them from every terminal that holds them.
#[utoipa::path(
    post,
    path = "/personnel/api/employees/del_bio_template",
    tag = openapi::tag::PERSONNEL,
    request_body(content(
        (BioTemplateAction = "application/json"),
        (BioTemplateAction = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "`{\"detail\": \"Success.\"}`", body = openapi::Detail),
        (status = 400, description = "Missing or unknown employees, or a flag that is not a boolean.", body = openapi::ValidationErrors),
    )
)]
pub async fn del_bio_template(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    DrfBody(body): DrfBody<BioTemplateAction>,
) -> Result<Json<Value>, ApiError> {
    let employees = resolve_employees(&state, &body.employees).await?;
    FieldErrors::of(&body, &()).finish()?;
    let mut types = Vec::new();
    for (flag, bio_types) in [
        (&body.finger_print, &[FINGERPRINT][..]),
        (&body.face, &[FACE, VL_FACE]),
        (&body.finger_vein, &[FINGER_VEIN]),
        (&body.palm, &[PALM, VL_PALM]),
    ] {
        if let Field::Given(Bool(true)) = flag {
            types.extend_from_slice(bio_types);
        }
    }
    if types.is_empty() {
        return Ok(success());
    }
    for e in &employees {
        let plan = state.store.delete_employee_templates(e.id, &types).await?;
        crate::services::roster::push_roster_changes(&state, plan).await?;
    }
    tracing::info!(user = %who.name, employees = employees.len(), ?types, "biometric templates deleted");
    Ok(success())
}

/// Send employees to their terminals again.
///
/// Brings every terminal of the employees' areas in line with the roster (missing or outdated
/// users and templates are sent again).
#[utoipa::path(
    post,
    path = "/personnel/api/employees/resync_to_device",
    tag = openapi::tag::PERSONNEL,
    request_body(content(
        (EmployeesAction = "application/json"),
        (EmployeesAction = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "`{\"detail\": \"Success.\"}`", body = openapi::Detail),
        (status = 400, description = "Missing or unknown employees.", body = openapi::ValidationErrors),
    )
)]
pub async fn resync_to_device(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    DrfBody(body): DrfBody<EmployeesAction>,
) -> Result<Json<Value>, ApiError> {
    let employees = resolve_employees(&state, &body.employees).await?;
    for e in &employees {
        sync_employee(&state, &e.fields.emp_code).await?;
    }
    tracing::info!(user = %who.name, employees = employees.len(), "employees re-synced to devices");
    Ok(success())
}
