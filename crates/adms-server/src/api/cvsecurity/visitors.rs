//! `visRegistration/add` and `visRegistration/exit` (`cvsecurity_api.md` §5.13) over the
//! bridge's visits (`adms_store::visits`, `services::access::register_visit`/`end_visit`).
//!
//! Where the reference is silent, our choices:
//! - `visLevels` are access levels (`accLevel/list` ids): CVSecurity's separate visitor levels
//!   (`visLevel/list`) are not served; a visit without levels is registered and opens nothing.
//! - The visitor's pin is "8" and the visit's id in 8 digits, server-generated as CVSecurity's
//!   are; `add` answers `data: null` as the manual says, so a client that needs the pin reads
//!   the native `GET /api/v1/access/visits`.
//! - `certType` 1 is accepted (a Flask client sends it) beside the documented 2-8.
//! - `exit` ends the visitor's visit in progress (not left, not ended) for that document.

use axum::extract::State;
use serde_json::Value;

use adms_model::access::LocalTime;
use adms_store::visits::{NewVisit, VisitError, VisitKey};

use super::envelope::{CvError, CvResult, Envelope};
use super::ids;
use super::params::CvRequest;
use crate::services::access as provisioning;
use crate::state::SharedState;

impl From<VisitError> for CvError {
    fn from(error: VisitError) -> CvError {
        match error {
            VisitError::HostMissing(_) => CvError::VisitHostMissing,
            VisitError::LevelMissing(_) => CvError::LevelMissing,
            VisitError::AlreadyRegistered => CvError::VisitAlreadyRegistered,
            VisitError::CardUsed(holder) => CvError::CardUsed(holder),
            VisitError::EndsBeforeStart => CvError::StartAfterEnd,
            VisitError::NotRegistered => CvError::VisitNotRegistered,
            VisitError::NameEmpty => CvError::VisitNameEmpty,
            VisitError::BadCertType => CvError::VisitCertTypeBad,
            VisitError::BadCertNum => CvError::VisitCertNumBad,
            VisitError::BadCount => CvError::VisitCountBad,
            error @ VisitError::BadText(..) => CvError::VisitSpecialCharacters(error.to_string()),
            error @ VisitError::BadCard => CvError::Other(error.to_string()),
            VisitError::Store(error) => CvError::Store(error),
        }
    }
}

fn visit_time(text: Option<&str>) -> Result<LocalTime, CvError> {
    text.ok_or(CvError::VisitDateEmpty)?.parse().map_err(|_| CvError::VisitDateFormat)
}

fn cert_type(text: Option<&str>) -> Result<i64, CvError> {
    text.ok_or(CvError::VisitCertTypeEmpty)?.parse().map_err(|_| CvError::VisitCertTypeBad)
}

/// The visit a `visRegistration/add` body describes, its required fields checked in the
/// reference's order.
async fn new_visit(state: &SharedState, request: &CvRequest) -> Result<NewVisit, CvError> {
    let params = &request.params;
    let host = params.get("persPersonPin").ok_or(CvError::VisitHostEmpty)?.to_owned();
    let cert_type = cert_type(params.get("certType"))?;
    let cert_num = params.get("certNum").ok_or(CvError::VisitCertNumEmpty)?.to_owned();
    let name = params.get("visEmpName").ok_or(CvError::VisitNameEmpty)?.to_owned();
    let reason = params.get("visitReason").ok_or(CvError::VisitReasonEmpty)?.to_owned();
    let count = params.get("visitorCount").ok_or(CvError::VisitCountBad)?;
    let visitor_count = count.parse::<i64>().map_err(|_| CvError::VisitCountBad)?;
    let (starts_at, ends_at) = (visit_time(params.get("startTime"))?, visit_time(params.get("endTime"))?);
    let mut level_ids = Vec::new();
    for id in params.list("visLevels")? {
        let id = ids::decode(&id).ok_or(CvError::LevelMissing)?;
        level_ids.push(state.store.access_level(id).await?.ok_or(CvError::LevelMissing)?.id);
    }
    Ok(NewVisit {
        host_emp_code: host,
        cert_type,
        cert_num,
        name,
        phone: params.get("visitEmpPhone").unwrap_or_default().to_owned(),
        company: params.get("company").unwrap_or_default().to_owned(),
        reason,
        visitor_count,
        starts_at,
        ends_at,
        card_no: params.get("cardNo").unwrap_or_default().to_owned(),
        level_ids,
    })
}

/// `visRegistration/add` (JSON body): registers the visit and provisions its visitor.
pub async fn add(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    request.require_write()?;
    let result = async {
        let visit = new_visit(&state, &request).await?;
        provisioning::register_visit(&state, &visit).await?;
        Ok(())
    }
    .await;
    // The host, not the visitor's document number: the audit log is not sealed.
    request.audit(&state, request.params.get("persPersonPin").unwrap_or_default(), result.is_ok()).await;
    result.map(|()| Envelope::success(Value::Null))
}

/// `visRegistration/exit?certType=&certNum=`: the visitor leaves; their rights go at once.
pub async fn exit(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    request.require_write()?;
    let result = async {
        let cert_type = cert_type(request.params.get("certType"))?;
        let cert_num = request.params.get("certNum").ok_or(CvError::VisitCertNumEmpty)?.to_owned();
        provisioning::end_visit(&state, &VisitKey::Certificate { cert_type, cert_num }).await?;
        Ok(())
    }
    .await;
    // The document's type only: the audit log is not sealed.
    let target = format!("certType:{}", request.params.get("certType").unwrap_or_default());
    request.audit(&state, &target, result.is_ok()).await;
    result.map(|()| Envelope::success(Value::Null))
}
