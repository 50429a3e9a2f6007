//! The employee record in ZKBio Time 9.x's shape, as every personnel route answers it.

use serde::Serialize;

use adms_store::roster::{AreaRef, Employee};

use crate::api::ApiError;
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
pub(super) const FINGERPRINT: i64 = 1;
pub(super) const FACE: i64 = 2;
pub(super) const FINGER_VEIN: i64 = 7;
pub(super) const PALM: i64 = 8;
pub(super) const VL_FACE: i64 = 9;
pub(super) const VL_PALM: i64 = 10;

impl EmployeeRecord {
    pub(super) fn from_employee(e: Employee, state: &SharedState) -> EmployeeRecord {
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

/// The record of employee `id` as stored now.
pub(super) async fn record(state: &SharedState, id: i64) -> Result<EmployeeRecord, ApiError> {
    let employee = state.store.employee_by_id(id).await?.ok_or(ApiError::NotFound)?;
    Ok(EmployeeRecord::from_employee(employee, state))
}
