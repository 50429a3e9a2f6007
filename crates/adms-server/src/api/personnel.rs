//! `/personnel/api/employees/`: the roster in ZKBio Time 9.x's employee shape, its writes and
//! actions (`adjust_resign`, `adjust_area`, `del_bio_template`, `resync_to_device`). Every
//! change is followed by a roster sync plan for the terminals concerned (see
//! `adms_store::roster_sync`).

use axum::Json;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use adms_store::StoreError;
use adms_store::roster::{
    AreaRef, Employee, EmployeeAssignment, EmployeeFields, EmployeeFilter, NewResignation, OrgKind, RosterError,
    RosterRefusal,
};

use super::auth::Authenticated;
use super::body::{WriteBody, boolean, date, given, id_list, integer, printable, text};
use super::pagination::{Envelope, PageRequest, QueryParams, envelope};
use super::request::FieldErrors;
use super::{ApiError, openapi};
use crate::state::SharedState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DepartmentRef {
    id: i64,
    dept_code: String,
    dept_name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PositionRef {
    id: i64,
    position_code: String,
    position_name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AreaRecord {
    id: i64,
    area_code: String,
    area_name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttEmployee {
    id: i64,
    enable_attendance: bool,
    enable_overtime: bool,
    enable_holiday: bool,
    enable_schedule: bool,
}

/// ZKBio Time 9.x employee record, keys in its order. `device_password` is always `null`:
/// the bridge keeps it for the devices and never shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EmployeeRecord {
    id: i64,
    emp_code: String,
    first_name: String,
    last_name: String,
    nickname: String,
    format_name: String,
    photo: String,
    full_name: String,
    device_password: Option<String>,
    card_no: String,
    department: DepartmentRef,
    position: Option<PositionRef>,
    hire_date: Option<String>,
    gender: Option<String>,
    birthday: Option<String>,
    verify_mode: i64,
    emp_type: Option<i64>,
    contact_tel: String,
    office_tel: String,
    mobile: String,
    national: String,
    city: String,
    address: String,
    postcode: String,
    email: String,
    enroll_sn: String,
    ssn: String,
    religion: String,
    attemployee: AttEmployee,
    dev_privilege: i64,
    area: Vec<AreaRecord>,
    app_status: i64,
    app_role: i64,
    /// `YYYY-MM-DD HH:MM:SS` in the display zone.
    update_time: String,
    /// `"Ver <major>:<count>"` from the templates devices reported, or `"-"` (also `face`,
    /// `palm`, `vl_face`, `vl_palm`).
    fingerprint: String,
    face: String,
    palm: String,
    vl_face: String,
    vl_palm: String,
    vl_face_photo: String,
}

/// Template types behind each biometric column (BIODATA `Type`).
const FINGERPRINT: i64 = 1;
const FACE: i64 = 2;
const FINGER_VEIN: i64 = 7;
const PALM: i64 = 8;
const VL_FACE: i64 = 9;
const VL_PALM: i64 = 10;

impl EmployeeRecord {
    fn from_employee(e: Employee, state: &SharedState) -> EmployeeRecord {
        let bio = |bio_type: i64| {
            e.biometrics.iter().find(|b| b.bio_type == bio_type).map_or_else(
                || "-".to_owned(),
                |b| format!("Ver {}:{}", b.major_ver.map_or_else(String::new, |v| v.to_string()), b.count),
            )
        };
        let (fingerprint, face, palm, vl_face, vl_palm) =
            (bio(FINGERPRINT), bio(FACE), bio(PALM), bio(VL_FACE), bio(VL_PALM));
        let f = e.fields;
        EmployeeRecord {
            id: e.id,
            format_name: format!("{} {}", f.emp_code, f.first_name).trim().to_owned(),
            full_name: format!("{} {}", f.first_name, f.last_name).trim().to_owned(),
            emp_code: f.emp_code,
            first_name: f.first_name,
            last_name: f.last_name,
            nickname: f.nickname,
            photo: String::new(),
            device_password: None,
            card_no: f.card_no,
            department: DepartmentRef { id: f.department_id, dept_code: e.dept_code, dept_name: e.dept_name },
            position: match (f.position_id, e.position_code, e.position_name) {
                (Some(id), Some(position_code), Some(position_name)) => {
                    Some(PositionRef { id, position_code, position_name })
                }
                _ => None,
            },
            hire_date: f.hire_date,
            gender: f.gender,
            birthday: f.birthday,
            verify_mode: f.verify_mode,
            emp_type: f.emp_type,
            contact_tel: f.contact_tel,
            office_tel: f.office_tel,
            mobile: f.mobile,
            national: f.national,
            city: f.city,
            address: f.address,
            postcode: f.postcode,
            email: f.email,
            enroll_sn: f.enroll_sn,
            ssn: f.ssn,
            religion: f.religion,
            attemployee: AttEmployee {
                id: e.id,
                enable_attendance: e.status == "active",
                enable_overtime: true,
                enable_holiday: true,
                enable_schedule: true,
            },
            dev_privilege: f.dev_privilege,
            area: e.areas.into_iter().map(area_record).collect(),
            app_status: f.app_status,
            app_role: f.app_role,
            update_time: state.display_zone.format_micros(e.updated_at),
            fingerprint,
            face,
            palm,
            vl_face,
            vl_palm,
            vl_face_photo: "-".to_owned(),
        }
    }
}

fn area_record(a: AreaRef) -> AreaRecord {
    AreaRecord { id: a.id, area_code: a.area_code, area_name: a.area_name }
}

/// The employee write body (JSON or form-encoded). Create requires `emp_code`, `department`
/// and `area`; `PUT` / `PATCH` take any subset and ignore `emp_code`. `null` means "not given".
/// Text must not contain control characters; numbers may come as numeric strings.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the handlers read the body field by field")]
pub struct EmployeeWrite {
    /// The device PIN: 1 to 24 letters or digits (leading zeros are kept).
    #[schema(min_length = 1, max_length = 24, pattern = "^[A-Za-z0-9]+$")]
    emp_code: Option<String>,
    /// A department id.
    department: Option<i64>,
    /// Area ids (a comma-separated string in form bodies); not empty.
    #[schema(min_items = 1)]
    area: Option<Vec<i64>>,
    /// A position id; `null` or `""` clears it.
    position: Option<i64>,
    #[schema(max_length = 25)]
    first_name: Option<String>,
    #[schema(max_length = 25)]
    last_name: Option<String>,
    #[schema(max_length = 25)]
    nickname: Option<String>,
    /// Up to 20 digits, or 8 hex digits in brackets (`[15CD5B07]`).
    card_no: Option<String>,
    /// At most 8 letters or digits; stored for the devices, never returned.
    #[schema(max_length = 8)]
    device_password: Option<String>,
    /// `YYYY-MM-DD` (default today on create).
    #[schema(format = Date)]
    hire_date: Option<String>,
    #[schema(format = Date)]
    birthday: Option<String>,
    /// `M`, `F`, `S` or `O`; `""` clears it.
    gender: Option<String>,
    /// -1 (the device's default) to 255.
    #[schema(minimum = -1, maximum = 255)]
    verify_mode: Option<i64>,
    #[schema(minimum = 0, maximum = 100)]
    emp_type: Option<i64>,
    /// 0 (employee), 2, 6, 10 or 14 (administrator).
    dev_privilege: Option<i64>,
    #[schema(minimum = 0, maximum = 1)]
    app_status: Option<i64>,
    #[schema(minimum = 1, maximum = 2)]
    app_role: Option<i64>,
    #[schema(max_length = 20)]
    contact_tel: Option<String>,
    #[schema(max_length = 20)]
    office_tel: Option<String>,
    #[schema(max_length = 20)]
    mobile: Option<String>,
    #[schema(max_length = 50)]
    national: Option<String>,
    #[schema(max_length = 20)]
    city: Option<String>,
    #[schema(max_length = 200)]
    address: Option<String>,
    #[schema(max_length = 10)]
    postcode: Option<String>,
    #[schema(max_length = 50)]
    email: Option<String>,
    #[schema(max_length = 20)]
    enroll_sn: Option<String>,
    #[schema(max_length = 20)]
    ssn: Option<String>,
    #[schema(max_length = 20)]
    religion: Option<String>,
}

/// The body of `adjust_resign` (and, with `employee` instead of `employees`, of a
/// resignation create): `employees` and `resign_date` are required.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the handlers read the body field by field")]
pub struct ResignAction {
    /// Employee ids (a comma-separated string in form bodies).
    #[schema(min_items = 1)]
    employees: Vec<i64>,
    #[schema(format = Date)]
    resign_date: String,
    /// 1 to 5 (default 1).
    #[schema(minimum = 1, maximum = 5)]
    resign_type: Option<i64>,
    #[schema(max_length = 200)]
    reason: Option<String>,
    /// Default true.
    disableatt: Option<bool>,
}

/// The body of `adjust_area`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the handler reads the body field by field")]
pub struct AreaAction {
    #[schema(min_items = 1)]
    employees: Vec<i64>,
    /// Area ids; the employees' areas become exactly these.
    #[schema(min_items = 1)]
    areas: Vec<i64>,
}

/// The body of `adjust_department`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the handler reads the body field by field")]
pub struct DepartmentAction {
    #[schema(min_items = 1)]
    employees: Vec<i64>,
    /// Department id.
    department: i64,
}

/// The body of `adjust_position`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the handler reads the body field by field")]
pub struct PositionAction {
    #[schema(min_items = 1)]
    employees: Vec<i64>,
    /// Position id.
    position: i64,
}

/// The body of `adjust_emp_type`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the handler reads the body field by field")]
pub struct EmpTypeAction {
    #[schema(min_items = 1)]
    employees: Vec<i64>,
    #[schema(minimum = 0, maximum = 100)]
    emp_type: i64,
}

/// The body of `del_bio_template`: which templates to forget (all false by default).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the handler reads the body field by field")]
pub struct BioTemplateAction {
    #[schema(min_items = 1)]
    employees: Vec<i64>,
    finger_print: Option<bool>,
    /// Near-infrared and visible-light faces.
    face: Option<bool>,
    finger_vein: Option<bool>,
    /// Palms, both kinds.
    palm: Option<bool>,
}

/// The body of `resync_to_device`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the handler reads the body field by field")]
pub struct EmployeesAction {
    #[schema(min_items = 1)]
    employees: Vec<i64>,
}

/// List active employees.
///
/// Ascending id; resigned employees are listed by `/personnel/api/resigns/` (their detail
/// route still answers).
#[utoipa::path(
    get,
    path = "/personnel/api/employees",
    tag = openapi::tag::PERSONNEL,
    params(
        ("emp_code" = Option<String>, Query, description = "Exact employee code."),
        ("emp_code_icontains" = Option<String>, Query, description = "Code contains (any case)."),
        ("first_name" = Option<String>, Query),
        ("first_name_icontains" = Option<String>, Query),
        ("last_name" = Option<String>, Query),
        ("last_name_icontains" = Option<String>, Query),
        ("department" = Option<i64>, Query, description = "A department id."),
        ("areas" = Option<i64>, Query, description = "An area id (`area` is read too)."),
        ("app_status" = Option<i64>, Query),
        openapi::PageParams,
    ),
    responses(
        (status = 200, description = "One page of employees.", body = Envelope<EmployeeRecord>),
        (status = 400, description = "A numeric filter is not a whole number.", body = openapi::ValidationErrors),
        (status = 404, description = "`Invalid page.`", body = openapi::Detail),
    )
)]
pub async fn list(
    State(state): State<SharedState>,
    _auth: Authenticated,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> Result<Json<Envelope<EmployeeRecord>>, ApiError> {
    let params = QueryParams::parse(raw.as_deref());
    let page = PageRequest::from_params(&params)?;
    let owned = |k: &str| params.get(k).map(str::to_owned);
    let filter = EmployeeFilter {
        id: None,
        emp_code: owned("emp_code"),
        emp_code_icontains: owned("emp_code_icontains"),
        first_name: owned("first_name"),
        first_name_icontains: owned("first_name_icontains"),
        last_name: owned("last_name"),
        last_name_icontains: owned("last_name_icontains"),
        department: params.int("department")?,
        area: params.int("areas")?.or(params.int("area")?),
        app_status: params.int("app_status")?,
        status: Some("active".into()),
    };
    let (count, rows) = state.store.list_employees(&filter, page.store_page()).await?;
    page.check(count)?;
    let data = rows.into_iter().map(|e| EmployeeRecord::from_employee(e, &state)).collect();
    Ok(Json(envelope(&headers, &uri, &params, page, count, data)))
}

async fn record(state: &SharedState, id: i64) -> Result<EmployeeRecord, ApiError> {
    let employee = state.store.employee_by_id(id).await?.ok_or(ApiError::NotFound)?;
    Ok(EmployeeRecord::from_employee(employee, state))
}

/// Get one employee (also a resigned one).
#[utoipa::path(
    get,
    path = "/personnel/api/employees/{id}",
    tag = openapi::tag::PERSONNEL,
    params(("id" = i64, Path, description = "The employee id.")),
    responses(
        (status = 200, description = "The employee.", body = EmployeeRecord),
        (status = 404, description = "No such employee.", body = openapi::Detail),
    )
)]
pub async fn detail(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<EmployeeRecord>, ApiError> {
    Ok(Json(record(&state, super::parse_id(&id)?).await?))
}

/// Text fields: (name, maximum length). All are checked for control characters, so nothing
/// sent to a device can carry a tab or newline into a command.
const TEXT_FIELDS: [(&str, usize); 14] = [
    ("first_name", 25),
    ("last_name", 25),
    ("nickname", 25),
    ("contact_tel", 20),
    ("office_tel", 20),
    ("mobile", 20),
    ("national", 50),
    ("city", 20),
    ("address", 200),
    ("postcode", 10),
    ("email", 50),
    ("enroll_sn", 20),
    ("ssn", 20),
    ("religion", 20),
];

fn text_slot<'a>(f: &'a mut EmployeeFields, name: &str) -> Option<&'a mut String> {
    Some(match name {
        "first_name" => &mut f.first_name,
        "last_name" => &mut f.last_name,
        "nickname" => &mut f.nickname,
        "contact_tel" => &mut f.contact_tel,
        "office_tel" => &mut f.office_tel,
        "mobile" => &mut f.mobile,
        "national" => &mut f.national,
        "city" => &mut f.city,
        "address" => &mut f.address,
        "postcode" => &mut f.postcode,
        "email" => &mut f.email,
        "enroll_sn" => &mut f.enroll_sn,
        "ssn" => &mut f.ssn,
        "religion" => &mut f.religion,
        _ => return None,
    })
}

/// A card number a device accepts: up to 20 digits, or 4 hex bytes in brackets.
fn valid_card(card: &str) -> bool {
    let bracketed = card.len() == 10
        && card.starts_with('[')
        && card.ends_with(']')
        && card[1..9].bytes().all(|b| b.is_ascii_hexdigit());
    bracketed || (card.len() <= 20 && card.bytes().all(|b| b.is_ascii_digit()))
}

/// An `emp_code` a device accepts as a PIN: 1 to 24 letters or digits (leading zeros kept).
fn valid_emp_code(code: &str) -> bool {
    (1..=24).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Applies the body to `fields` (an existing employee, or defaults on create) and returns the
/// areas when given. Every problem is reported at once, DRF-style.
async fn apply_body(
    state: &SharedState,
    body: &Map<String, Value>,
    fields: &mut EmployeeFields,
    creating: bool,
) -> Result<Option<Vec<i64>>, ApiError> {
    let mut errors = FieldErrors::default();
    if creating {
        match given(body, "emp_code").and_then(text) {
            None => errors.add("emp_code", "This field is required."),
            Some(code) if !valid_emp_code(&code) => {
                errors.add("emp_code", "1 to 24 letters or digits, no spaces.");
            }
            Some(code) => fields.emp_code = code,
        }
    }
    for (name, max) in TEXT_FIELDS {
        let Some(value) = given(body, name) else { continue };
        match text(value) {
            None => errors.add(name, "Not a valid string."),
            Some(s) if s.chars().count() > max => {
                errors.add(name, format!("Ensure this field has no more than {max} characters."));
            }
            Some(s) if !printable(&s) => errors.add(name, "Control characters (tab, newline) are not allowed."),
            Some(s) if name == "email" && !s.is_empty() && !s.contains('@') => {
                errors.add(name, "Enter a valid email address.");
            }
            Some(s) => {
                if let Some(slot) = text_slot(fields, name) {
                    *slot = s;
                }
            }
        }
    }
    if let Some(value) = given(body, "card_no") {
        match text(value) {
            Some(s) if valid_card(&s) => fields.card_no = s,
            _ => errors.add("card_no", "Up to 20 digits, or 8 hex digits in brackets ([15CD5B07])."),
        }
    }
    if let Some(value) = given(body, "device_password") {
        match text(value) {
            Some(s) if s.len() <= 8 && s.bytes().all(|b| b.is_ascii_alphanumeric()) => fields.device_password = s,
            _ => errors.add("device_password", "At most 8 letters or digits."),
        }
    }
    for (name, slot) in [("hire_date", &mut fields.hire_date), ("birthday", &mut fields.birthday)] {
        if let Some(value) = given(body, name) {
            match date(value) {
                Some(d) => *slot = Some(d),
                None => errors.add(name, "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."),
            }
        }
    }
    if let Some(value) = given(body, "gender") {
        match text(value).as_deref() {
            Some(g @ ("M" | "F" | "S" | "O")) => fields.gender = Some(g.to_owned()),
            Some("") => fields.gender = None,
            _ => errors.add("gender", "\"M\", \"F\", \"S\" or \"O\"."),
        }
    }
    let mut int_field = |name: &str, range: std::ops::RangeInclusive<i64>| -> Option<i64> {
        let value = given(body, name)?;
        match integer(value) {
            Some(v) if range.contains(&v) => Some(v),
            _ => {
                errors.add(name, format!("A whole number from {} to {}.", range.start(), range.end()));
                None
            }
        }
    };
    if let Some(v) = int_field("verify_mode", -1..=255) {
        fields.verify_mode = v;
    }
    if let Some(v) = int_field("emp_type", 0..=100) {
        fields.emp_type = Some(v);
    }
    let privilege = int_field("dev_privilege", 0..=14);
    if let Some(v) = int_field("app_status", 0..=1) {
        fields.app_status = v;
    }
    if let Some(v) = int_field("app_role", 1..=2) {
        fields.app_role = v;
    }
    if let Some(v) = privilege {
        if adms_protocol::command::PRIVILEGES.iter().any(|p| i64::from(*p) == v) {
            fields.dev_privilege = v;
        } else {
            errors.add("dev_privilege", "One of 0 (employee), 2, 6, 10 or 14 (administrator).");
        }
    }
    match given(body, "department") {
        None if creating => errors.add("department", "This field is required."),
        None => {}
        Some(value) => match integer(value) {
            Some(id) if state.store.org_by_id(OrgKind::Department, id).await?.is_some() => fields.department_id = id,
            _ => errors.add(
                "department",
                format!("Invalid pk \"{}\" - object does not exist.", text(value).unwrap_or_default()),
            ),
        },
    }
    if let Some(value) = body.get("position") {
        if value.is_null() || text(value).is_some_and(|s| s.is_empty()) {
            fields.position_id = None;
        } else {
            match integer(value) {
                Some(id) if state.store.org_by_id(OrgKind::Position, id).await?.is_some() => {
                    fields.position_id = Some(id);
                }
                _ => errors.add(
                    "position",
                    format!("Invalid pk \"{}\" - object does not exist.", text(value).unwrap_or_default()),
                ),
            }
        }
    }
    let areas = match given(body, "area") {
        None if creating => {
            errors.add("area", "This field is required.");
            None
        }
        None => None,
        Some(value) => match id_list(value) {
            Some(ids) if ids.is_empty() => {
                errors.add("area", "This list may not be empty.");
                None
            }
            Some(ids) => {
                let missing = state.store.missing_org_ids(OrgKind::Area, &ids).await?;
                if let Some(id) = missing.first() {
                    errors.add("area", format!("Invalid pk \"{id}\" - object does not exist."));
                }
                Some(ids)
            }
            None => {
                errors.add("area", "Expected a list of items.");
                None
            }
        },
    };
    errors.finish()?;
    Ok(areas)
}

fn refusal(e: RosterError) -> ApiError {
    match e {
        RosterError::Refused(RosterRefusal::DuplicateCard(holder)) => {
            ApiError::BadRequest(json!({ "Update Failed": format!("Duplicate card number with {holder}") }))
        }
        RosterError::Refused(RosterRefusal::AlreadyResigned(code)) => {
            ApiError::BadRequest(json!({ "employees": [format!("Employee {code} has already resigned.")] }))
        }
        RosterError::Refused(other) => ApiError::BadRequest(json!({ "detail": other.to_string() })),
        RosterError::Store(StoreError::NotFound) => ApiError::NotFound,
        RosterError::Store(e) => ApiError::Store(e),
    }
}

/// Create an employee (or update the one with that `emp_code`).
///
/// As ZKBio Time 9.x does, an existing `emp_code` updates that employee (200); a deleted
/// employee's code creates them again. The terminals of the employee's areas are then brought
/// in line (commands queued).
#[utoipa::path(
    post,
    path = "/personnel/api/employees",
    tag = openapi::tag::PERSONNEL,
    request_body(content(
        (EmployeeWrite = "application/json"),
        (EmployeeWrite = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 201, description = "Created.", body = EmployeeRecord),
        (status = 200, description = "An employee with that `emp_code` existed and was updated.", body = EmployeeRecord),
        (status = 400, description = "Invalid fields (all reported at once), or `{\"Update Failed\": \"Duplicate card number with <code>\"}`.", body = openapi::ValidationErrors),
    )
)]
pub async fn create(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    WriteBody(body): WriteBody,
) -> Result<Response, ApiError> {
    let code = given(&body, "emp_code").and_then(text).unwrap_or_default();
    let existing = if code.is_empty() { None } else { state.store.employee_by_code(&code).await? };
    let (mut fields, creating) = match existing {
        Some(e) => (e.fields, false),
        None => (EmployeeFields { department_id: 1, verify_mode: -1, app_role: 1, ..EmployeeFields::default() }, true),
    };
    let mut areas = apply_body(&state, &body, &mut fields, true).await?;
    if fields.hire_date.is_none() {
        fields.hire_date = Some(state.display_zone.format_micros(adms_store::now_micros())[..10].to_owned());
    }
    if !creating && areas.is_none() {
        areas = state.store.employee_by_code(&fields.emp_code).await?.map(|e| e.areas.iter().map(|a| a.id).collect());
    }
    let saved = state.store.save_employee(&fields, &areas.unwrap_or_default()).await.map_err(refusal)?;
    tracing::info!(user = %who.name, emp_code = %fields.emp_code, created = saved.created, "employee saved");
    sync_employee(&state, &fields.emp_code).await?;
    let status = if saved.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(record(&state, saved.id).await?)).into_response())
}

/// Change an employee.
///
/// Any subset of the writable fields (ZKBio Time accepts partial PUTs too); `emp_code` cannot
/// change and is ignored.
#[utoipa::path(
    method(put, patch),
    path = "/personnel/api/employees/{id}",
    tag = openapi::tag::PERSONNEL,
    params(("id" = i64, Path, description = "The employee id.")),
    request_body(
        content(
            (Option<EmployeeWrite> = "application/json"),
            (Option<EmployeeWrite> = "application/x-www-form-urlencoded"),
        ),
        description = "An empty body changes nothing.",
    ),
    responses(
        (status = 200, description = "The employee as changed.", body = EmployeeRecord),
        (status = 400, description = "Invalid fields, or a duplicate card number.", body = openapi::ValidationErrors),
        (status = 404, description = "No such employee.", body = openapi::Detail),
    )
)]
pub async fn update(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
    WriteBody(body): WriteBody,
) -> Result<Json<EmployeeRecord>, ApiError> {
    let id = super::parse_id(&id)?;
    let existing = state.store.employee_by_id(id).await?.ok_or(ApiError::NotFound)?;
    let current_areas: Vec<i64> = existing.areas.iter().map(|a| a.id).collect();
    let mut fields = existing.fields;
    let areas = apply_body(&state, &body, &mut fields, false).await?.unwrap_or(current_areas);
    state.store.save_employee(&fields, &areas).await.map_err(refusal)?;
    tracing::info!(user = %who.name, emp_code = %fields.emp_code, "employee updated");
    sync_employee(&state, &fields.emp_code).await?;
    Ok(Json(record(&state, id).await?))
}

/// Delete an employee.
///
/// The employee leaves the roster and every terminal; their punches stay.
#[utoipa::path(
    delete,
    path = "/personnel/api/employees/{id}",
    tag = openapi::tag::PERSONNEL,
    params(("id" = i64, Path, description = "The employee id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such employee.", body = openapi::Detail),
    )
)]
pub async fn delete(
    State(state): State<SharedState>,
    Authenticated(who): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = super::parse_id(&id)?;
    let employee = state.store.employee_by_id(id).await?.ok_or(ApiError::NotFound)?;
    state.store.delete_employee(id).await?;
    tracing::info!(user = %who.name, emp_code = %employee.fields.emp_code, "employee deleted");
    sync_employee(&state, &employee.fields.emp_code).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The `employees` list of an action body, every id checked (ZKBio Time's nested message).
async fn action_employees(state: &SharedState, body: &Map<String, Value>) -> Result<Vec<Employee>, ApiError> {
    let Some(ids) = given(body, "employees").and_then(id_list) else {
        return Err(ApiError::BadRequest(json!({ "employees": ["This field is required."] })));
    };
    if ids.is_empty() {
        return Err(ApiError::BadRequest(json!({ "employees": ["This list may not be empty."] })));
    }
    let mut employees = Vec::new();
    for id in ids {
        match state.store.employee_by_id(id).await? {
            Some(e) => employees.push(e),
            None => {
                return Err(ApiError::BadRequest(
                    json!({ "employees": { "employees": format!("Invalid pk \"{id}\" - object does not exist.") } }),
                ));
            }
        }
    }
    Ok(employees)
}

fn success() -> Json<Value> {
    Json(json!({ "detail": "Success." }))
}

/// Resignation fields as `adjust_resign` and `/personnel/api/resigns/` take them.
pub fn resignation_from_body(
    body: &Map<String, Value>,
    current: Option<&NewResignation>,
) -> Result<NewResignation, ApiError> {
    let mut errors = FieldErrors::default();
    let resign_date = match given(body, "resign_date") {
        Some(v) => date(v).unwrap_or_else(|| {
            errors.add("resign_date", "Date has wrong format. Use one of these formats instead: YYYY-MM-DD.");
            String::new()
        }),
        None => match current {
            Some(c) => c.resign_date.clone(),
            None => {
                errors.add("resign_date", "This field is required.");
                String::new()
            }
        },
    };
    let resign_type = match given(body, "resign_type") {
        Some(v) => integer(v).filter(|t| (1..=5).contains(t)).unwrap_or_else(|| {
            errors.add("resign_type", format!("\"{}\" is not a valid choice.", text(v).unwrap_or_default()));
            0
        }),
        None => current.map_or(1, |c| c.resign_type),
    };
    let reason = match given(body, "reason") {
        Some(v) => match text(v) {
            Some(s) if s.chars().count() <= 200 && printable(&s) => s,
            _ => {
                errors.add("reason", "Ensure this field has no more than 200 printable characters.");
                String::new()
            }
        },
        None => current.map_or_else(String::new, |c| c.reason.clone()),
    };
    let disableatt = match given(body, "disableatt") {
        Some(v) => boolean(v).unwrap_or_else(|| {
            errors.add("disableatt", "Must be a valid boolean.");
            true
        }),
        None => current.is_none_or(|c| c.disableatt),
    };
    errors.finish()?;
    Ok(NewResignation { resign_date, resign_type, disableatt, reason })
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
    WriteBody(body): WriteBody,
) -> Result<Json<Value>, ApiError> {
    let employees = action_employees(&state, &body).await?;
    let resignation = resignation_from_body(&body, None)?;
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
    body: WriteBody,
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
    WriteBody(body): WriteBody,
) -> Result<Json<Value>, ApiError> {
    let employees = action_employees(&state, &body).await?;
    let areas = match given(&body, "areas").and_then(id_list) {
        Some(ids) if !ids.is_empty() => ids,
        _ => return Err(ApiError::BadRequest(json!({ "areas": ["This field is required."] }))),
    };
    if let Some(id) = state.store.missing_org_ids(OrgKind::Area, &areas).await?.first() {
        return Err(ApiError::BadRequest(
            json!({ "areas": [format!("Invalid pk \"{id}\" - object does not exist.")] }),
        ));
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
    WriteBody(body): WriteBody,
) -> Result<Json<Value>, ApiError> {
    let id = existing_org_id(&state, &body, "department", OrgKind::Department).await?;
    assign(&state, &who.name, &body, EmployeeAssignment::Department(id)).await
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
    WriteBody(body): WriteBody,
) -> Result<Json<Value>, ApiError> {
    let id = existing_org_id(&state, &body, "position", OrgKind::Position).await?;
    assign(&state, &who.name, &body, EmployeeAssignment::Position(id)).await
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
    WriteBody(body): WriteBody,
) -> Result<Json<Value>, ApiError> {
    let emp_type = match given(&body, "emp_type").map(integer) {
        Some(Some(v)) if (0..=100).contains(&v) => v,
        Some(_) => return Err(ApiError::BadRequest(json!({ "emp_type": ["A valid integer is required."] }))),
        None => return Err(ApiError::BadRequest(json!({ "emp_type": ["This field is required."] }))),
    };
    assign(&state, &who.name, &body, EmployeeAssignment::EmpType(emp_type)).await
}

/// Sets `assignment` on the employees an `adjust_*` body lists (all of them or, when one id is
/// unknown, none).
async fn assign(
    state: &SharedState,
    user: &str,
    body: &Map<String, Value>,
    assignment: EmployeeAssignment,
) -> Result<Json<Value>, ApiError> {
    let ids: Vec<i64> = action_employees(state, body).await?.iter().map(|e| e.id).collect();
    state.store.set_employee_assignment(&ids, assignment).await?;
    tracing::info!(user, employees = ids.len(), ?assignment, "employees adjusted");
    Ok(success())
}

/// The id in `field` of an `adjust_*` body, which must name an existing department or position.
async fn existing_org_id(
    state: &SharedState,
    body: &Map<String, Value>,
    field: &'static str,
    kind: OrgKind,
) -> Result<i64, ApiError> {
    let Some(value) = given(body, field) else {
        return Err(ApiError::BadRequest(json!({ field: ["This field is required."] })));
    };
    match integer(value) {
        Some(id) if state.store.org_by_id(kind, id).await?.is_some() => Ok(id),
        Some(id) => {
            Err(ApiError::BadRequest(json!({ field: [format!("Invalid pk \"{id}\" - object does not exist.")] })))
        }
        None => Err(ApiError::BadRequest(json!({ field: ["Incorrect type. Expected pk value."] }))),
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
    WriteBody(body): WriteBody,
) -> Result<Json<Value>, ApiError> {
    let employees = action_employees(&state, &body).await?;
    let mut errors = FieldErrors::default();
    let mut types = Vec::new();
    for (flag, bio_types) in [
        ("finger_print", &[FINGERPRINT][..]),
        ("face", &[FACE, VL_FACE]),
        ("finger_vein", &[FINGER_VEIN]),
        ("palm", &[PALM, VL_PALM]),
    ] {
        match given(&body, flag).map(boolean) {
            None | Some(Some(false)) => {}
            Some(Some(true)) => types.extend_from_slice(bio_types),
            Some(None) => errors.add(flag, "Must be a valid boolean."),
        }
    }
    errors.finish()?;
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
    WriteBody(body): WriteBody,
) -> Result<Json<Value>, ApiError> {
    let employees = action_employees(&state, &body).await?;
    for e in &employees {
        sync_employee(&state, &e.fields.emp_code).await?;
    }
    tracing::info!(user = %who.name, employees = employees.len(), "employees re-synced to devices");
    Ok(success())
}

/// Plans and hands over the terminal changes one employee's current record needs.
pub async fn sync_employee(state: &SharedState, emp_code: &str) -> Result<(), ApiError> {
    Ok(crate::services::roster::sync_employee(state, emp_code).await?)
}
