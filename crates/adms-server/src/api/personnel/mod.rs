//! `/personnel/api/employees/`: the roster in ZKBio Time 9.x's employee shape ([`record`]), its
//! list and writes ([`employees`]) and actions ([`actions`]: `adjust_resign`, `adjust_area`,
//! `del_bio_template`, `resync_to_device`, ...). Every change is followed by a roster sync plan
//! for the terminals concerned (see `adms_store::roster_sync`).

pub mod actions;
pub mod employees;
pub mod record;

use adms_store::StoreError;
use adms_store::roster::{RosterError, RosterRefusal};
use serde_json::json;

use super::ApiError;
use crate::state::SharedState;

pub use actions::ResignationFields;

/// A roster refusal in ZKBio Time's words.
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

/// Plans and hands over the terminal changes one employee's current record needs.
pub async fn sync_employee(state: &SharedState, emp_code: &str) -> Result<(), ApiError> {
    Ok(crate::services::roster::sync_employee(state, emp_code).await?)
}
