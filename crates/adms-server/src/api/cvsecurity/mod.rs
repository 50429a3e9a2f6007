//! The ZKBio CVSecurity-compatible API (issue 19; `cvsecurity_api.md` is the reference): the
//! paths CVSecurity's third-party clients call (visitor systems, SIEM feeds, gym and parking
//! software), under `/api/...` in their unversioned, `v2/` and `v3/` forms, answered with
//! CVSecurity's envelope.
//!
//! - `params`: parameters from the query, a form body or a JSON body; the `access_token` check
//!   (a CVSecurity API client, `adms-bridge token create --kind cvsecurity`: its own table, so
//!   the token opens these routes only, and no other credential opens them).
//! - `envelope`: `{code, message, data}`, and every error code with its meaning.
//! - `ids`: our integer ids in CVSecurity's 32-hex shape.
//! - `persons`, `access`, `elevators`, `transactions`, `visitors`: the families; `names`: event and
//!   verify-mode names.
//!
//! What a client may do: every read of these families; writes (`person/add`, `person/delete`,
//! level membership, level and person sync, remote door, auxiliary-output and floor open and close,
//! visitor registration and exit) unless its client was created `--read-only`. No other roster
//! write is served here.
//!
//! Methods are not checked: clients are sloppy (POST with query parameters, GET on POST
//! paths), and the reference advises being liberal.

mod access;
mod elevators;
mod envelope;
mod ids;
pub mod names;
mod params;
mod persons;
mod transactions;
mod visitors;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::any;
use serde_json::{Value, json};

use crate::state::SharedState;
use access::{AuxOutputBy, DoorBy};
use adms_protocol::access::FloorAction;
use params::{CvRequest, PageRequest};

/// How a list is answered: unversioned lists give a bare array, `v2/`/`v3/` lists the paged
/// wrapper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Bare,
    Paged,
}

/// A list as `shape` answers it. The paged wrapper (`cvsecurity_api.md` §3.3): `page` is the
/// zero-based page (Spring Data's), `size` the rows in this page, `offset` the page again (the
/// only sample with a page other than the first shows `offset` equal to `page`: our choice,
/// here alone), `lastPage` whether no row follows.
pub fn shaped(shape: Shape, page: PageRequest, total: i64, rows: Vec<Value>) -> Value {
    match shape {
        Shape::Bare => Value::Array(rows),
        Shape::Paged => {
            let size = i64::try_from(rows.len()).unwrap_or(i64::MAX);
            json!({
                "page": page.page_no - 1,
                "size": size,
                "total": total,
                "offset": page.page_no - 1,
                "lastPage": page.offset().saturating_add(size) >= total,
                "data": rows,
            })
        }
    }
}

type St = State<SharedState>;
type P = Path<String>;

/// The CVSecurity routes (the `api` role's).
pub fn routes() -> Router<SharedState> {
    use Shape::{Bare, Paged};
    Router::new()
        // Persons, departments, cards.
        .route("/api/person/add", any(persons::add))
        .route("/api/person/delete/{pin}", any(persons::delete_by_path))
        .route("/api/person/delete", any(persons::delete))
        .route("/api/v2/person/deleteByPins", any(persons::delete_by_pins))
        .route("/api/person/get/{pin}", any(persons::get_by_path))
        .route("/api/person/get", any(persons::get))
        .route("/api/v2/person/get", any(persons::get))
        .route("/api/person/getPersonList", any(|s: St, r: CvRequest| persons::list(s, r, Bare)))
        .route("/api/v2/person/getPersonList", any(|s: St, r: CvRequest| persons::list(s, r, Paged)))
        .route("/api/department/get/{code}", any(persons::department_by_path))
        .route("/api/department/get", any(persons::department_get))
        .route("/api/v2/department/get", any(persons::department_get))
        .route("/api/department/getDepartmentList", any(persons::department_list))
        .route("/api/v2/department/getDepartmentList", any(persons::department_list))
        .route("/api/card/getCards/{pin}", any(persons::cards_by_path))
        .route("/api/card/getCards", any(persons::cards))
        .route("/api/v2/card/getCards", any(persons::cards))
        // Doors, devices, readers, levels.
        .route("/api/door/list", any(|s: St, r: CvRequest| access::door_list(s, r, Bare)))
        .route("/api/v2/door/list", any(|s: St, r: CvRequest| access::door_list(s, r, Paged)))
        .route("/api/door/get", any(access::door_get))
        .route("/api/door/allDoorState", any(access::all_door_states))
        .route("/api/door/doorStateById", any(access::door_state_by_id))
        .route("/api/door/doorStateBySn", any(access::door_states_by_sn))
        .route("/api/v2/door/get", any(access::door_get))
        .route("/api/device/accList", any(|s: St, r: CvRequest| access::device_list(s, r, Bare)))
        .route("/api/v2/device/list", any(|s: St, r: CvRequest| access::device_list(s, r, Paged)))
        .route("/api/v2/device/accList", any(|s: St, r: CvRequest| access::device_list(s, r, Paged)))
        .route("/api/device/getAcc", any(access::device_get))
        .route("/api/reader/accList", any(|s: St, r: CvRequest| access::reader_list(s, r, Bare)))
        .route("/api/v2/reader/list", any(|s: St, r: CvRequest| access::reader_list(s, r, Paged)))
        .route("/api/reader/getAcc", any(access::reader_get))
        .route("/api/accLevel/list", any(|s: St, r: CvRequest| access::level_list(s, r, Bare)))
        .route("/api/v2/accLevel/list", any(|s: St, r: CvRequest| access::level_list(s, r, Paged)))
        .route("/api/accLevel/getById/{id}", any(access::level_by_path))
        .route("/api/v2/accLevel/getById", any(access::level_get))
        .route("/api/accLevel/getByName/{name}", any(access::level_by_name_path))
        .route("/api/v2/accLevel/getByName", any(access::level_get_by_name))
        .route("/api/accLevel/addLevelPerson", any(access::add_level_person))
        .route("/api/accLevel/deleteLevel", any(access::delete_level))
        .route("/api/accLevel/syncPerson", any(access::sync_person))
        .route("/api/accLevel/syncLevel", any(access::sync_level))
        .route("/api/door/remoteOpenById", any(|s: St, r: CvRequest| access::remote_open(s, r, DoorBy::Id)))
        .route("/api/door/remoteOpenByName", any(|s: St, r: CvRequest| access::remote_open(s, r, DoorBy::Name)))
        // The manual's URL and its heading (and Swagger) disagree: both are served.
        .route("/api/door/remoteCloseById", any(|s: St, r: CvRequest| access::remote_close(s, r, DoorBy::Id)))
        .route("/api/door/remoteoffById", any(|s: St, r: CvRequest| access::remote_close(s, r, DoorBy::Id)))
        .route("/api/door/remoteCloseByName", any(|s: St, r: CvRequest| access::remote_close(s, r, DoorBy::Name)))
        .route("/api/door/remoteoffByName", any(|s: St, r: CvRequest| access::remote_close(s, r, DoorBy::Name)))
        // Auxiliary outputs (undocumented; the paths a field client calls, and the timed open by symmetry).
        .route(
            "/api/auxOut/remoteOpenByAuxOutById",
            any(|s: St, r: CvRequest| access::aux_output_control(s, r, AuxOutputBy::Open)),
        )
        .route(
            "/api/auxOut/remoteNormalOpenByAuxOutById",
            any(|s: St, r: CvRequest| access::aux_output_control(s, r, AuxOutputBy::NormallyOpen)),
        )
        .route(
            "/api/auxOut/remoteCloseByAuxOutById",
            any(|s: St, r: CvRequest| access::aux_output_control(s, r, AuxOutputBy::Close)),
        )
        // Elevator floors.
        .route("/api/floor/list", any(|s: St, r: CvRequest| access::floor_list(s, r, Bare)))
        .route("/api/v2/floor/list", any(|s: St, r: CvRequest| access::floor_list(s, r, Paged)))
        .route("/api/floor/remoteOpenById", any(|s: St, r: CvRequest| access::floor_control(s, r, FloorAction::Open)))
        // The manual's URL and its heading disagree: both are served.
        .route("/api/floor/remoteCloseById", any(|s: St, r: CvRequest| access::floor_control(s, r, FloorAction::Close)))
        .route("/api/floor/remoteoffById", any(|s: St, r: CvRequest| access::floor_control(s, r, FloorAction::Close)))
        // Elevator controllers and levels, and their transactions.
        .route("/api/eleDevice/eleList", any(|s: St, r: CvRequest| elevators::device_list(s, r, Bare)))
        .route("/api/v2/eleDevice/eleList", any(|s: St, r: CvRequest| elevators::device_list(s, r, Paged)))
        .route("/api/eleDevice/getEle", any(elevators::device_get))
        .route("/api/eleLevel/list", any(|s: St, r: CvRequest| elevators::level_list(s, r, Bare)))
        // The manual's URL for this one wrongly shows `v2/accLevel/list`.
        .route("/api/v2/eleLevel/list", any(|s: St, r: CvRequest| elevators::level_list(s, r, Paged)))
        .route("/api/eleLevel/getById/{id}", any(elevators::level_by_path))
        .route("/api/eleLevel/getByName/{name}", any(elevators::level_by_name_path))
        .route("/api/eleLevel/syncLevel", any(elevators::sync_level))
        .route("/api/eleLevel/syncPerson", any(elevators::sync_person))
        .route("/api/eleLevel/deleteLevel", any(elevators::delete_level))
        .route("/api/eleTransaction/list", any(|s: St, r: CvRequest| transactions::ele_list(s, r, Bare)))
        .route("/api/v2/eleTransaction/list", any(|s: St, r: CvRequest| transactions::ele_list(s, r, Paged)))
        // Visitors.
        .route("/api/visRegistration/add", any(visitors::add))
        .route("/api/visRegistration/exit", any(visitors::exit))
        // Transactions.
        .route("/api/transaction/list", any(|s: St, r: CvRequest| transactions::list(s, r, Bare)))
        .route("/api/v2/transaction/list", any(|s: St, r: CvRequest| transactions::list(s, r, Paged)))
        .route(
            "/api/transaction/device/{sn}",
            any(|s: St, p: P, r: CvRequest| transactions::by_device_path(s, p, r, Bare)),
        )
        .route(
            "/api/v2/transaction/device/{sn}",
            any(|s: St, p: P, r: CvRequest| transactions::by_device_path(s, p, r, Paged)),
        )
        .route("/api/v3/transaction/device", any(transactions::by_device))
        .route(
            "/api/transaction/person/{pin}",
            any(|s: St, p: P, r: CvRequest| transactions::by_person_path(s, p, r, Bare)),
        )
        .route(
            "/api/v2/transaction/person/{pin}",
            any(|s: St, p: P, r: CvRequest| transactions::by_person_path(s, p, r, Paged)),
        )
        .route("/api/v3/transaction/person", any(transactions::by_person))
        .route("/api/transaction/monitor", any(transactions::monitor))
        .route("/api/transaction/getById/{id}", any(transactions::get_by_path))
        .route("/api/v2/transaction/getById", any(transactions::get))
}
