//! `person/*`, `department/*` and `card/*` over the roster: its employees are the persons (the
//! `pin` is the employee code), its departments the departments. The roster writes served are
//! `person/add` (an upsert, the call most clients make before granting levels) and
//! `person/delete`; other roster writes stay with the ZKBio Time-compatible and native APIs.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use serde_json::{Value, json};

use adms_model::access::AccessDate;
use adms_store::roster::{
    Employee, EmployeeFields, EmployeeFilter, OrgFilter, OrgKind, OrgUnit, RosterError, RosterRefusal,
};
use adms_store::{Page, StoreError};

use super::envelope::{CvError, CvResult, Envelope};
use super::params::{CvRequest, MAX_OTHER_PAGE, PageRequest};
use super::{Shape, ids, shaped};
use crate::state::SharedState;

/// A person as `person/get` shows it, with the fields of the full record the roster has
/// (`v2/person/getPersonList`); what it does not hold is `""`. Passwords are never shown.
fn person_view(e: &Employee, level_ids: &[i64]) -> Value {
    let f = &e.fields;
    let level_ids: Vec<String> = level_ids.iter().map(|id| ids::encode(*id)).collect();
    json!({
        "id": ids::encode(e.id),
        "pin": f.emp_code,
        "deptCode": e.dept_code,
        "deptName": e.dept_name,
        "name": f.first_name,
        "lastName": f.last_name,
        "gender": f.gender.clone().unwrap_or_default(),
        "birthday": f.birthday.clone().unwrap_or_default(),
        "hireDate": f.hire_date.clone().unwrap_or_default(),
        "cardNo": f.card_no,
        "supplyCards": "",
        "mobilePhone": f.mobile,
        "email": f.email,
        "personPhoto": "",
        "personPwd": "",
        "selfPwd": "",
        "carPlate": "",
        "ssn": "",
        "certType": "",
        "certNumber": "",
        "photoPath": "",
        "vislightPhoto": "",
        "vislightPhotoPath": "",
        "isSendMail": false,
        "isDisabled": e.status != "active",
        "accLevelIds": level_ids.join(","),
        "accStartTime": "",
        "accEndTime": "",
    })
}

/// The ids of the levels each person (by pin) is a member of.
async fn levels_by_pin(state: &SharedState) -> Result<BTreeMap<String, Vec<i64>>, CvError> {
    let mut by_pin: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for level in state.store.access_levels().await? {
        if level.member_count == 0 {
            continue;
        }
        for member in state.store.access_level_members(level.id).await? {
            by_pin.entry(member.emp_code).or_default().push(level.id);
        }
    }
    Ok(by_pin)
}

/// A live employee by pin (active or resigned).
async fn person(state: &SharedState, pin: Option<&str>) -> Result<Employee, CvError> {
    let pin = pin.ok_or(CvError::PinEmpty)?;
    state.store.employee_by_code(pin).await?.ok_or(CvError::PersonMissing)
}

/// `person/get/{pin}`.
pub async fn get_by_path(State(state): State<SharedState>, Path(pin): Path<String>, _request: CvRequest) -> CvResult {
    let e = person(&state, Some(pin.as_str())).await?;
    let levels = levels_by_pin(&state).await?;
    Ok(Envelope::success(person_view(&e, levels.get(&e.fields.emp_code).map_or(&[], Vec::as_slice))))
}

/// `person/get?pin=`, `v2/person/get?pin=`.
pub async fn get(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    let e = person(&state, request.params.get("pin")).await?;
    let levels = levels_by_pin(&state).await?;
    Ok(Envelope::success(person_view(&e, levels.get(&e.fields.emp_code).map_or(&[], Vec::as_slice))))
}

/// `person/getPersonList` (bare array), `v2/person/getPersonList` (paged): filtered by `pins`
/// and `deptCodes` (comma lists; an unknown department matches nobody), by employee id.
pub async fn list(State(state): State<SharedState>, request: CvRequest, shape: Shape) -> CvResult {
    let page = request.params.page(MAX_OTHER_PAGE)?;
    let pins = request.params.list("pins")?;
    let dept_codes = request.params.list("deptCodes")?;
    let (total, rows) = if pins.is_empty() {
        persons_of_departments(&state, &dept_codes, page).await?
    } else {
        // A list of pins is short (the reference bounds such lists at 500 characters): each
        // is looked up, then the page is cut.
        let mut found = Vec::new();
        for pin in &pins {
            if let Some(e) = state.store.employee_by_code(pin).await?
                && (dept_codes.is_empty() || dept_codes.contains(&e.dept_code))
                && !found.iter().any(|f: &Employee| f.id == e.id)
            {
                found.push(e);
            }
        }
        found.sort_by_key(|e| e.id);
        let total = i64::try_from(found.len()).unwrap_or(i64::MAX);
        let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
        let size = usize::try_from(page.page_size).unwrap_or(usize::MAX);
        (total, found.into_iter().skip(offset).take(size).collect())
    };
    let levels = levels_by_pin(&state).await?;
    let views =
        rows.iter().map(|e| person_view(e, levels.get(&e.fields.emp_code).map_or(&[], Vec::as_slice))).collect();
    Ok(Envelope::success(shaped(shape, page, total, views)))
}

/// Every live employee, or those of the departments named, one page: departments one after
/// the other, each in id order.
async fn persons_of_departments(
    state: &SharedState,
    dept_codes: &[String],
    page: PageRequest,
) -> Result<(i64, Vec<Employee>), CvError> {
    if dept_codes.is_empty() {
        let filter = EmployeeFilter::default();
        return Ok(state.store.list_employees(&filter, Page { offset: page.offset(), limit: page.page_size }).await?);
    }
    let (mut skip, mut want, mut total, mut rows) = (page.offset(), page.page_size, 0, Vec::new());
    for code in dept_codes {
        let Some(dept) = department(state, code).await? else { continue };
        let filter = EmployeeFilter { department: Some(dept.id), ..EmployeeFilter::default() };
        let (count, found) = state.store.list_employees(&filter, Page { offset: skip, limit: want }).await?;
        total += count;
        skip = (skip - count).max(0);
        want -= i64::try_from(found.len()).unwrap_or(want);
        rows.extend(found);
    }
    Ok((total, rows))
}

async fn department(state: &SharedState, code: &str) -> Result<Option<OrgUnit>, CvError> {
    let filter = OrgFilter { code: Some(code.to_owned()), ..OrgFilter::default() };
    Ok(state.store.list_org(OrgKind::Department, &filter, Page { offset: 0, limit: 1 }).await?.1.pop())
}

fn department_view(d: &OrgUnit) -> Value {
    json!({ "code": d.code, "name": d.name, "parentCode": d.parent_code, "sortNo": d.id })
}

/// `department/get/{code}`.
pub async fn department_by_path(
    State(state): State<SharedState>,
    Path(code): Path<String>,
    _request: CvRequest,
) -> CvResult {
    let dept = department(&state, code.trim()).await?.ok_or(CvError::DeptMissing)?;
    Ok(Envelope::success(department_view(&dept)))
}

/// `department/get?code=`, `v2/department/get?code=`.
pub async fn department_get(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    let code = request.params.get("code").ok_or(CvError::DeptCodeEmpty)?;
    let dept = department(&state, code).await?.ok_or(CvError::DeptMissing)?;
    Ok(Envelope::success(department_view(&dept)))
}

/// `department/getDepartmentList`: the paged wrapper even unversioned, as the reference
/// documents.
pub async fn department_list(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    let page = request.params.page(MAX_OTHER_PAGE)?;
    let (total, rows) = state
        .store
        .list_org(OrgKind::Department, &OrgFilter::default(), Page { offset: page.offset(), limit: page.page_size })
        .await?;
    Ok(Envelope::success(shaped(Shape::Paged, page, total, rows.iter().map(department_view).collect())))
}

/// A person's cards: the roster holds one (the main card, `cardType` "0").
fn cards_view(e: &Employee) -> Value {
    let cards: Vec<Value> = [&e.fields.card_no]
        .into_iter()
        .filter(|card| !card.is_empty())
        .map(|card| json!({ "pin": e.fields.emp_code, "cardNo": card, "cardType": "0" }))
        .collect();
    Value::Array(cards)
}

/// `card/getCards/{pin}`.
pub async fn cards_by_path(State(state): State<SharedState>, Path(pin): Path<String>, _request: CvRequest) -> CvResult {
    Ok(Envelope::success(cards_view(&person(&state, Some(pin.as_str())).await?)))
}

/// `card/getCards?pin=`, `v2/card/getCards?pin=`.
pub async fn cards(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    Ok(Envelope::success(cards_view(&person(&state, request.params.get("pin")).await?)))
}

/// A person's access window from `accStartTime`/`accEndTime` (`yyyy-MM-dd HH:mm:ss` or a
/// date): its date, since level memberships are valid for whole days (the time of day is not
/// kept; the controller gets dates).
fn access_date(text: Option<&str>) -> Result<Option<AccessDate>, CvError> {
    let Some(text) = text else { return Ok(None) };
    let date = text.get(..10).ok_or(CvError::TimeFormat)?;
    date.parse().map(Some).map_err(|_| CvError::TimeFormat)
}

/// `person/add` (JSON body, as the manual and clients send it; a form or the query work too):
/// creates the person or updates the one with this pin. `deptCode` (default: the root
/// department), `name`, `lastName`, `gender`, `cardNo` (`""` removes the card; absent keeps
/// it), `accLevelIds` with the optional `accStartTime`/`accEndTime` window (the person is put
/// in those levels with that window). Every level is checked before anything changes.
pub async fn add(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    request.require_write()?;
    let result = add_person(&state, &request).await;
    request.audit(&state, request.params.get("pin").unwrap_or_default(), result.is_ok()).await;
    result.map(|()| Envelope::success(Value::Null))
}

async fn add_person(state: &SharedState, request: &CvRequest) -> Result<(), CvError> {
    let params = &request.params;
    let pin = params.get("pin").ok_or(CvError::PinEmpty)?.to_owned();
    // What every controller and terminal takes as a user id.
    if pin.len() > 24 || !pin.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(CvError::PinInvalid);
    }
    for name in ["name", "lastName"] {
        if params.get(name).is_some_and(|n| n.chars().count() > 64 || n.chars().any(char::is_control)) {
            return Err(CvError::Other(format!("{name} must be at most 64 characters, without control characters")));
        }
    }
    let (from, until) = (access_date(params.get("accStartTime"))?, access_date(params.get("accEndTime"))?);
    if let (Some(from), Some(until)) = (from, until)
        && from > until
    {
        return Err(CvError::StartAfterEnd);
    }
    let mut levels = Vec::new();
    for id in params.list("accLevelIds")? {
        let id = ids::decode(&id).ok_or(CvError::LevelMissing)?;
        levels.push(state.store.access_level(id).await?.ok_or(CvError::LevelMissing)?.id);
    }
    let existing = state.store.employee_by_code(&pin).await?;
    let areas: Vec<i64> = existing.as_ref().map(|e| e.areas.iter().map(|a| a.id).collect()).unwrap_or_default();
    let mut fields = existing.map_or_else(
        || EmployeeFields {
            emp_code: pin.clone(),
            department_id: 1,
            verify_mode: -1,
            app_role: 1,
            hire_date: Some(state.display_zone.format_micros(adms_store::now_micros())[..10].to_owned()),
            ..EmployeeFields::default()
        },
        |e| e.fields,
    );
    if let Some(code) = params.get("deptCode") {
        fields.department_id = department(state, code).await?.ok_or(CvError::DeptMissing)?.id;
    }
    if let Some(name) = params.get("name") {
        fields.first_name = name.to_owned();
    }
    if let Some(last) = params.get("lastName") {
        fields.last_name = last.to_owned();
    }
    if let Some(gender) = params.get("gender").filter(|g| matches!(*g, "M" | "F")) {
        fields.gender = Some(gender.to_owned());
    }
    // Present but empty removes the card (`get` reads "" as absent, so look at the raw value).
    if params.has("cardNo") {
        fields.card_no = params.get("cardNo").unwrap_or_default().to_owned();
    }
    match state.store.save_employee(&fields, &areas).await {
        Ok(_) => {}
        Err(RosterError::Refused(RosterRefusal::DuplicateCard(holder))) => return Err(CvError::CardUsed(holder)),
        Err(RosterError::Refused(other)) => return Err(CvError::Other(other.to_string())),
        Err(RosterError::Store(StoreError::Invalid(reason))) => return Err(CvError::Other(reason)),
        Err(RosterError::Store(error)) => return Err(error.into()),
    }
    crate::services::roster::sync_employee(state, &pin).await?;
    for level in levels {
        let affected = state
            .store
            .put_access_level_member(level, &pin, from, until)
            .await
            .map_err(|e| CvError::LevelGrantFailed(e.to_string()))?;
        crate::services::access::sync_controllers(state, affected).await?;
    }
    tracing::info!(client = %request.client.name, pin = %pin, "person saved through the CVSecurity API");
    Ok(())
}

/// `person/delete/{pin}` (DELETE or POST).
pub async fn delete_by_path(State(state): State<SharedState>, Path(pin): Path<String>, request: CvRequest) -> CvResult {
    delete_pins(&state, &request, vec![pin.trim().to_owned()]).await
}

/// `person/delete?pin=`.
pub async fn delete(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    let pin = request.params.get("pin").unwrap_or_default().to_owned();
    delete_pins(&state, &request, vec![pin]).await
}

/// `v2/person/deleteByPins?pins=`: every pin is checked before any is deleted.
pub async fn delete_by_pins(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    let pins = request.params.list("pins")?;
    delete_pins(&state, &request, pins).await
}

/// Deletes persons from the roster (their transactions stay), as the native API does: their
/// users, rights and templates leave the terminals and controllers through the next plans.
async fn delete_pins(state: &SharedState, request: &CvRequest, pins: Vec<String>) -> CvResult {
    request.require_write()?;
    let result = async {
        let mut found = Vec::with_capacity(pins.len());
        for pin in &pins {
            found.push(person(state, Some(pin.as_str()).filter(|p| !p.is_empty())).await?);
        }
        if found.is_empty() {
            return Err(CvError::PinEmpty);
        }
        for e in &found {
            state.store.delete_employee(e.id).await?;
            crate::services::roster::sync_employee(state, &e.fields.emp_code).await?;
        }
        Ok(())
    }
    .await;
    request.audit(state, &pins.join(","), result.is_ok()).await;
    result.map(|()| Envelope::success(Value::Null))
}
