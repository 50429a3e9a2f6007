//! `GET /iclock/api/biodatas/[{id}/]`: biometric templates in ZKBio Time 9.x's record shape
//! (`biotime_api.md` §2.4), read-only. Templates come from the terminals (OPERLOG / BIODATA
//! uploads); each slot is shown once, as the newest copy a terminal reported. Removing them is
//! `POST /personnel/api/employees/del_bio_template/`.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use adms_store::templates::{TemplateFilter, TemplateRecord};

use super::auth::Authenticated;
use super::pagination::{Envelope, ListRequest, PageParams};
use super::{ApiError, openapi};
use crate::state::SharedState;

/// ZKBio Time 9.x biodata record, plus the template itself (`bio_tmp`, which the Odoo client
/// reads) and where it came from.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BiodataRecord {
    id: i64,
    /// `"<emp_code> <first_name>"`; clients take the PIN from its first word.
    employee: String,
    emp_code: String,
    /// The type's display text (`Fingerprint`, `Face`, …).
    bio_type: &'static str,
    bio_no: i64,
    bio_index: i64,
    major_ver: Option<i64>,
    minor_ver: Option<i64>,
    valid: Option<i64>,
    duress: Option<i64>,
    bio_tmp: String,
    terminal_sn: String,
    update_time: String,
}

impl BiodataRecord {
    fn new(r: TemplateRecord, state: &SharedState) -> BiodataRecord {
        BiodataRecord {
            id: r.id,
            employee: format!("{} {}", r.pin, r.first_name).trim_end().to_owned(),
            emp_code: r.pin,
            bio_type: bio_type_name(r.bio_type),
            bio_no: r.bio_no,
            bio_index: r.bio_index,
            major_ver: r.major_ver,
            minor_ver: r.minor_ver,
            valid: r.valid,
            duress: r.duress,
            bio_tmp: r.template,
            terminal_sn: r.device_sn,
            update_time: state.display_zone.format_micros(r.updated_at),
        }
    }
}

/// The display text of a BIODATA `Type` (`protocol.md` §4.3).
fn bio_type_name(bio_type: i64) -> &'static str {
    match bio_type {
        0 => "General",
        1 => "Fingerprint",
        2 => "Face",
        3 => "Voiceprint",
        4 => "Iris",
        5 => "Retina",
        6 => "Palm Print",
        7 => "Finger Vein",
        8 => "Palm",
        9 => "Visible Light Face",
        10 => "Visible Light Palm",
        _ => "Unknown",
    }
}

/// List biometric templates.
///
/// One record per template slot (PIN, type, number, fragment): the newest copy a terminal
/// reported. Ascending id.
#[utoipa::path(
    get,
    path = "/iclock/api/biodatas",
    tag = openapi::tag::PERSONNEL,
    params(
        ("emp_code" = Option<String>, Query, description = "The employee's PIN."),
        ("bio_type" = Option<i64>, Query, description = "BIODATA type: 1 fingerprint, 2 face, 7 finger vein, 8 palm, 9 visible-light face, ..."),
        PageParams,
    ),
    responses(
        (status = 200, description = "One page of templates.", body = Envelope<BiodataRecord>),
        (status = 400, description = "`bio_type` is not a whole number.", body = openapi::ValidationErrors),
        (status = 404, description = "`Invalid page.`", body = openapi::Detail),
    )
)]
pub async fn list(
    State(state): State<SharedState>,
    _auth: Authenticated,
    list: ListRequest,
) -> Result<Json<Envelope<BiodataRecord>>, ApiError> {
    let params = &list.params;
    let filter = TemplateFilter {
        id: None,
        emp_code: params.get("emp_code").map(str::to_owned),
        bio_type: params.int("bio_type")?,
    };
    let (count, rows) = state.store.list_templates(&filter, list.store_page()).await?;
    let records = rows.into_iter().map(|r| BiodataRecord::new(r, &state)).collect();
    Ok(Json(list.envelope(count, records)?))
}

/// Get one biometric template.
#[utoipa::path(
    get,
    path = "/iclock/api/biodatas/{id}",
    tag = openapi::tag::PERSONNEL,
    params(("id" = i64, Path, description = "The template record id.")),
    responses(
        (status = 200, description = "The template.", body = BiodataRecord),
        (status = 404, description = "No such template (or a newer copy of its slot replaced it).", body = openapi::Detail),
    )
)]
pub async fn detail(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<BiodataRecord>, ApiError> {
    let id = super::parse_id(&id)?;
    let record = state.store.template_by_id(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(BiodataRecord::new(record, &state)))
}
