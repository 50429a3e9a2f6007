//! The employee list and writes: `GET`/`POST /personnel/api/employees/`, and `GET`, `PUT`,
//! `PATCH`, `DELETE` on one employee.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use adms_store::roster::{EmployeeFields, EmployeeFilter, OrgKind};

use super::record::{EmployeeRecord, record};
use super::{refusal, sync_employee};
use crate::api::auth::Authenticated;
use crate::api::pagination::{Envelope, ListRequest, PageParams};
use crate::api::request::rules::fail;
use crate::api::request::{
    Date, DrfBody, Field, FieldErrors, IdList, Int, Text, Written, invalid_pk, printable, quoted,
};
use crate::api::{ApiError, openapi, parse_id};
use crate::state::SharedState;

/// How a write body is read: on create, `emp_code`, `department` and `area` are required (an
/// update ignores `emp_code`: it cannot change).
#[derive(Debug, Clone, Copy)]
pub struct WriteMode {
    creating: bool,
}

/// The employee write body (JSON or form-encoded). Create requires `emp_code`, `department`
/// and `area`; `PUT` / `PATCH` take any subset and ignore `emp_code`. `null` means "not given".
/// Text must not contain control characters; numbers may come as numeric strings.
#[derive(Debug, Deserialize, utoipa::ToSchema, garde::Validate)]
#[garde(context(WriteMode))]
pub struct EmployeeWrite {
    /// The device PIN: 1 to 24 letters or digits (leading zeros are kept).
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 24, pattern = "^[A-Za-z0-9]+$")]
    #[garde(custom(emp_code_rule))]
    emp_code: Field<Text>,
    /// A department id.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    #[garde(custom(required_on_create), custom(pk))]
    department: Field<Written>,
    /// Area ids (a comma-separated string in form bodies); not empty.
    #[serde(default)]
    #[schema(value_type = Option<Vec<i64>>, min_items = 1)]
    #[garde(custom(required_on_create), custom(area_list))]
    area: Field<IdList>,
    /// A position id; `null` or `""` clears it.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    #[garde(custom(position_rule))]
    position: Field<Written>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 25)]
    #[garde(custom(text_field(25)))]
    first_name: Field<Text>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 25)]
    #[garde(custom(text_field(25)))]
    last_name: Field<Text>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 25)]
    #[garde(custom(text_field(25)))]
    nickname: Field<Text>,
    /// Up to 20 digits, or 8 hex digits in brackets (`[15CD5B07]`).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    #[garde(custom(card_no_rule))]
    card_no: Field<Text>,
    /// At most 8 letters or digits; stored for the devices, never returned.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 8)]
    #[garde(custom(device_password_rule))]
    device_password: Field<Text>,
    /// `YYYY-MM-DD` (default today on create).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    #[garde(custom(date))]
    hire_date: Field<Date>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    #[garde(custom(date))]
    birthday: Field<Date>,
    /// `M`, `F`, `S` or `O`; `""` clears it.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    #[garde(custom(gender_rule))]
    gender: Field<Text>,
    /// -1 (the device's default) to 255.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = -1, maximum = 255)]
    #[garde(custom(whole_number(-1..=255)))]
    verify_mode: Field<Int>,
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 100)]
    #[garde(custom(whole_number(0..=100)))]
    emp_type: Field<Int>,
    /// 0 (employee), 2, 6, 10 or 14 (administrator).
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    #[garde(custom(whole_number(0..=14)), custom(privilege))]
    dev_privilege: Field<Int>,
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 1)]
    #[garde(custom(whole_number(0..=1)))]
    app_status: Field<Int>,
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 2)]
    #[garde(custom(whole_number(1..=2)))]
    app_role: Field<Int>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20)]
    #[garde(custom(text_field(20)))]
    contact_tel: Field<Text>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20)]
    #[garde(custom(text_field(20)))]
    office_tel: Field<Text>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20)]
    #[garde(custom(text_field(20)))]
    mobile: Field<Text>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 50)]
    #[garde(custom(text_field(50)))]
    national: Field<Text>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20)]
    #[garde(custom(text_field(20)))]
    city: Field<Text>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200)]
    #[garde(custom(text_field(200)))]
    address: Field<Text>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 10)]
    #[garde(custom(text_field(10)))]
    postcode: Field<Text>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 50)]
    #[garde(custom(text_field(50)), custom(email_rule))]
    email: Field<Text>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20)]
    #[garde(custom(text_field(20)))]
    enroll_sn: Field<Text>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20)]
    #[garde(custom(text_field(20)))]
    ssn: Field<Text>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20)]
    #[garde(custom(text_field(20)))]
    religion: Field<Text>,
}

/// An `emp_code` a device accepts as a PIN: 1 to 24 letters or digits (leading zeros kept).
fn valid_emp_code(code: &str) -> bool {
    (1..=24).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn emp_code_rule(field: &Field<Text>, mode: &WriteMode) -> garde::Result {
    match field.given() {
        _ if !mode.creating => Ok(()),
        None => fail("This field is required."),
        Some(Text(code)) if !valid_emp_code(code) => fail("1 to 24 letters or digits, no spaces."),
        Some(_) => Ok(()),
    }
}

fn required_on_create<T>(field: &Field<T>, mode: &WriteMode) -> garde::Result {
    if mode.creating && matches!(field, Field::Absent | Field::Null) { fail("This field is required.") } else { Ok(()) }
}

/// A primary key; whether it exists is checked against the store after these rules.
fn pk<C>(field: &Field<Written>, _: &C) -> garde::Result {
    match field {
        Field::Invalid(value) => fail(invalid_pk(quoted(value))),
        _ => Ok(()),
    }
}

/// `null` or `""` clears the position.
fn clears_position(field: &Field<Written>) -> bool {
    match field {
        Field::Null => true,
        Field::Invalid(value) => value.as_str().is_some_and(|s| s.trim().is_empty()),
        _ => false,
    }
}

fn position_rule<C>(field: &Field<Written>, context: &C) -> garde::Result {
    if clears_position(field) { Ok(()) } else { pk(field, context) }
}

fn area_list(field: &Field<IdList>, _: &WriteMode) -> garde::Result {
    match field {
        Field::Invalid(_) => fail("Expected a list of items."),
        Field::Given(IdList(ids)) if ids.is_empty() => fail("This list may not be empty."),
        _ => Ok(()),
    }
}

/// Text of at most `max` characters with no control character, so nothing sent to a device
/// can carry a tab or newline into a command.
fn text_field<C>(max: usize) -> impl FnOnce(&Field<Text>, &C) -> garde::Result {
    move |field, _| match field {
        Field::Invalid(_) => fail("Not a valid string."),
        Field::Given(Text(s)) if s.chars().count() > max => {
            fail(format!("Ensure this field has no more than {max} characters."))
        }
        Field::Given(Text(s)) if !printable(s) => fail("Control characters (tab, newline) are not allowed."),
        _ => Ok(()),
    }
}

/// Checked after [`text_field`], on text it accepted.
fn email_rule<C>(field: &Field<Text>, _: &C) -> garde::Result {
    match field.given() {
        Some(Text(s)) if s.chars().count() <= 50 && printable(s) && !s.is_empty() && !s.contains('@') => {
            fail("Enter a valid email address.")
        }
        _ => Ok(()),
    }
}

/// A card number a device accepts: up to 20 digits, or 4 hex bytes in brackets.
fn valid_card(card: &str) -> bool {
    let bracketed = card.len() == 10
        && card.starts_with('[')
        && card.ends_with(']')
        && card[1..9].bytes().all(|b| b.is_ascii_hexdigit());
    bracketed || (card.len() <= 20 && card.bytes().all(|b| b.is_ascii_digit()))
}

fn card_no_rule<C>(field: &Field<Text>, _: &C) -> garde::Result {
    match field {
        Field::Absent | Field::Null => Ok(()),
        Field::Given(Text(s)) if valid_card(s) => Ok(()),
        _ => fail("Up to 20 digits, or 8 hex digits in brackets ([15CD5B07])."),
    }
}

fn device_password_rule<C>(field: &Field<Text>, _: &C) -> garde::Result {
    match field {
        Field::Absent | Field::Null => Ok(()),
        Field::Given(Text(s)) if s.len() <= 8 && s.bytes().all(|b| b.is_ascii_alphanumeric()) => Ok(()),
        _ => fail("At most 8 letters or digits."),
    }
}

fn date<C>(field: &Field<Date>, _: &C) -> garde::Result {
    match field {
        Field::Invalid(_) => fail("Date has wrong format. Use one of these formats instead: YYYY-MM-DD."),
        _ => Ok(()),
    }
}

fn gender_rule<C>(field: &Field<Text>, _: &C) -> garde::Result {
    match field {
        Field::Absent | Field::Null => Ok(()),
        Field::Given(Text(g)) if matches!(g.as_str(), "M" | "F" | "S" | "O" | "") => Ok(()),
        _ => fail("\"M\", \"F\", \"S\" or \"O\"."),
    }
}

fn whole_number<C>(range: std::ops::RangeInclusive<i64>) -> impl FnOnce(&Field<Int>, &C) -> garde::Result {
    move |field, _| match field {
        Field::Absent | Field::Null => Ok(()),
        Field::Given(Int(v)) if range.contains(v) => Ok(()),
        _ => fail(format!("A whole number from {} to {}.", range.start(), range.end())),
    }
}

/// Checked after the range (0 to 14): the privileges a device knows.
fn privilege<C>(field: &Field<Int>, _: &C) -> garde::Result {
    match field.given() {
        Some(Int(v))
            if (0..=14).contains(v) && !adms_protocol::command::PRIVILEGES.iter().any(|p| i64::from(*p) == *v) =>
        {
            fail("One of 0 (employee), 2, 6, 10 or 14 (administrator).")
        }
        _ => Ok(()),
    }
}

impl EmployeeWrite {
    /// Every problem of the body at once, DRF-style: its rules, then the ids it names that do
    /// not exist.
    async fn check(&self, state: &SharedState, mode: WriteMode) -> Result<(), ApiError> {
        let mut errors = FieldErrors::of(self, &mode);
        if let Field::Given(department) = &self.department
            && state.store.org_by_id(OrgKind::Department, department.value).await?.is_none()
        {
            errors.add("department", invalid_pk(&department.text));
        }
        if let Field::Given(position) = &self.position
            && state.store.org_by_id(OrgKind::Position, position.value).await?.is_none()
        {
            errors.add("position", invalid_pk(&position.text));
        }
        if let Field::Given(IdList(ids)) = &self.area
            && !ids.is_empty()
            && let Some(id) = state.store.missing_org_ids(OrgKind::Area, ids).await?.first()
        {
            errors.add("area", invalid_pk(id));
        }
        errors.finish()
    }

    /// Applies a checked body to `fields` (an existing employee, or defaults on create) and
    /// returns the areas when given.
    fn apply(self, fields: &mut EmployeeFields, mode: WriteMode) -> Option<Vec<i64>> {
        if mode.creating
            && let Field::Given(Text(code)) = self.emp_code
        {
            fields.emp_code = code;
        }
        for (field, slot) in [
            (self.first_name, &mut fields.first_name),
            (self.last_name, &mut fields.last_name),
            (self.nickname, &mut fields.nickname),
            (self.contact_tel, &mut fields.contact_tel),
            (self.office_tel, &mut fields.office_tel),
            (self.mobile, &mut fields.mobile),
            (self.national, &mut fields.national),
            (self.city, &mut fields.city),
            (self.address, &mut fields.address),
            (self.postcode, &mut fields.postcode),
            (self.email, &mut fields.email),
            (self.enroll_sn, &mut fields.enroll_sn),
            (self.ssn, &mut fields.ssn),
            (self.religion, &mut fields.religion),
            (self.card_no, &mut fields.card_no),
            (self.device_password, &mut fields.device_password),
        ] {
            if let Field::Given(Text(value)) = field {
                *slot = value;
            }
        }
        for (field, slot) in [(self.hire_date, &mut fields.hire_date), (self.birthday, &mut fields.birthday)] {
            if let Field::Given(Date(day)) = field {
                *slot = Some(day);
            }
        }
        if let Field::Given(Text(g)) = self.gender {
            fields.gender = (!g.is_empty()).then_some(g);
        }
        for (field, slot) in [
            (self.verify_mode, &mut fields.verify_mode),
            (self.dev_privilege, &mut fields.dev_privilege),
            (self.app_status, &mut fields.app_status),
            (self.app_role, &mut fields.app_role),
        ] {
            if let Field::Given(Int(value)) = field {
                *slot = value;
            }
        }
        if let Field::Given(Int(value)) = self.emp_type {
            fields.emp_type = Some(value);
        }
        if let Field::Given(department) = self.department {
            fields.department_id = department.value;
        }
        if clears_position(&self.position) {
            fields.position_id = None;
        } else if let Field::Given(position) = self.position {
            fields.position_id = Some(position.value);
        }
        match self.area {
            Field::Given(IdList(ids)) => Some(ids),
            _ => None,
        }
    }
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
        PageParams,
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
    list: ListRequest,
) -> Result<Json<Envelope<EmployeeRecord>>, ApiError> {
    let params = &list.params;
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
    let (count, rows) = state.store.list_employees(&filter, list.store_page()).await?;
    let data = rows.into_iter().map(|e| EmployeeRecord::from_employee(e, &state)).collect();
    Ok(Json(list.envelope(count, data)?))
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
    Ok(Json(record(&state, parse_id(&id)?).await?))
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
    DrfBody(body): DrfBody<EmployeeWrite>,
) -> Result<Response, ApiError> {
    let code = body.emp_code.given().map_or("", |Text(code)| code.as_str());
    let existing = if code.is_empty() { None } else { state.store.employee_by_code(code).await? };
    let (mut fields, creating) = match existing {
        Some(e) => (e.fields, false),
        None => (EmployeeFields { department_id: 1, verify_mode: -1, app_role: 1, ..EmployeeFields::default() }, true),
    };
    // An existing code is updated, but with the create body's rules (`department`, `area`
    // required), as ZKBio Time does.
    let mode = WriteMode { creating: true };
    body.check(&state, mode).await?;
    let mut areas = body.apply(&mut fields, mode);
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
    DrfBody(body): DrfBody<EmployeeWrite>,
) -> Result<Json<EmployeeRecord>, ApiError> {
    let id = parse_id(&id)?;
    let existing = state.store.employee_by_id(id).await?.ok_or(ApiError::NotFound)?;
    let current_areas: Vec<i64> = existing.areas.iter().map(|a| a.id).collect();
    let mut fields = existing.fields;
    let mode = WriteMode { creating: false };
    body.check(&state, mode).await?;
    let areas = body.apply(&mut fields, mode).unwrap_or(current_areas);
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
    let id = parse_id(&id)?;
    let employee = state.store.employee_by_id(id).await?.ok_or(ApiError::NotFound)?;
    state.store.delete_employee(id).await?;
    tracing::info!(user = %who.name, emp_code = %employee.fields.emp_code, "employee deleted");
    sync_employee(&state, &employee.fields.emp_code).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn errors_of(body: Value, creating: bool) -> Value {
        let body: EmployeeWrite = serde_json::from_value(body).unwrap();
        match FieldErrors::of(&body, &WriteMode { creating }).finish() {
            Ok(()) => Value::Null,
            Err(ApiError::BadRequest(errors)) => errors,
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn every_failing_field_is_reported_at_once_in_drf_words() {
        let body = serde_json::json!({
            "emp_code": "7 7", "first_name": "Evil\tName", "last_name": ["x"], "email": "nobody",
            "card_no": "12ab", "device_password": "123456789", "hire_date": "2026-02-30", "gender": "X",
            "verify_mode": "256", "dev_privilege": 3, "app_role": "two", "position": "abc", "area": [],
        });
        assert_eq!(
            errors_of(body, true),
            serde_json::json!({
                "emp_code": ["1 to 24 letters or digits, no spaces."],
                "department": ["This field is required."],
                "area": ["This list may not be empty."],
                "position": ["Invalid pk \"abc\" - object does not exist."],
                "first_name": ["Control characters (tab, newline) are not allowed."],
                "last_name": ["Not a valid string."],
                "email": ["Enter a valid email address."],
                "card_no": ["Up to 20 digits, or 8 hex digits in brackets ([15CD5B07])."],
                "device_password": ["At most 8 letters or digits."],
                "hire_date": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."],
                "gender": ["\"M\", \"F\", \"S\" or \"O\"."],
                "verify_mode": ["A whole number from -1 to 255."],
                "dev_privilege": ["One of 0 (employee), 2, 6, 10 or 14 (administrator)."],
                "app_role": ["A whole number from 1 to 2."],
            })
        );
        // An update ignores `emp_code` and requires nothing; `null` is "not given", and `""`
        // clears the position.
        assert_eq!(
            errors_of(serde_json::json!({"emp_code": "7 7", "first_name": null, "position": ""}), false),
            Value::Null
        );
    }

    #[test]
    fn numbers_may_come_as_strings_and_position_can_be_cleared() {
        let body: EmployeeWrite = serde_json::from_value(serde_json::json!({
            "emp_code": " 0042 ", "department": "3", "area": "1,2", "verify_mode": "15", "position": null,
            "gender": "", "hire_date": "2026-01-31",
        }))
        .unwrap();
        let mut fields = EmployeeFields { position_id: Some(4), gender: Some("F".into()), ..EmployeeFields::default() };
        let areas = body.apply(&mut fields, WriteMode { creating: true });
        assert_eq!(areas, Some(vec![1, 2]));
        assert_eq!(
            (fields.emp_code.as_str(), fields.department_id, fields.verify_mode, fields.position_id, fields.gender),
            ("0042", 3, 15, None, None)
        );
        assert_eq!(fields.hire_date.as_deref(), Some("2026-01-31"));
    }
}
