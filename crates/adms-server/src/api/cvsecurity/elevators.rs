//! `eleDevice/*`, `eleLevel/*` and `eleTransaction/*` (`cvsecurity_api.md` §5.12) over the
//! elevator levels (`adms_store::EleLevel`) and the floors declared per controller, the writes
//! going through `services::access` as the native routes' do.
//!
//! Where the reference is silent or guesses, our choices:
//! - An elevator controller is a device with declared floors (no registry key marks one); its
//!   `type` is "EC-100" (the only elevator panel type the reference shows), `module` "ele".
//! - `eleLevel/syncPerson?pin=&levelIds=` puts the person in the levels named (a membership they
//!   already have keeps its window) and provisions the controllers of those levels and every
//!   controller of the person: assign and push in one call, as the reference guesses (there is
//!   no `eleLevel/addLevelPerson`); it does not take the person out of levels it does not name.
//! - `eleLevel/deleteLevel?pin=&levelIds=` takes the person out of the levels named; a level
//!   they were not in is no error (as `accLevel/deleteLevel`).
//! - `eleLevel/syncLevel?levelId=` re-plans every controller of the level's floors (the
//!   difference is queued).
//! - `eleTransaction/*` are the access events of elevator controllers, in the record shape of
//!   `transaction/list` (`transactions`).
//! - The error codes are the access levels' (-24 level missing, -42/-43 ids empty, -40 grant
//!   failed) and the devices' (-200 SN empty, -102 device missing): the reference has none of
//!   its own for elevators.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use serde_json::{Value, json};

use adms_store::EleLevel;
use adms_store::cvsecurity::AccessDevice;

use super::access::{audited, device_view, page_of};
use super::envelope::{CvError, CvResult, Envelope};
use super::ids;
use super::params::{CvRequest, MAX_OTHER_PAGE};
use super::{Shape, shaped};
use crate::services::access as provisioning;
use crate::state::SharedState;

/// An elevator controller: an access device's fields, with CVSecurity's elevator type and module.
fn ele_device_view(d: &AccessDevice) -> Value {
    let mut view = device_view(d);
    view["type"] = json!("EC-100");
    view["module"] = json!("ele");
    view
}

/// `eleDevice/eleList` (bare), `v2/eleDevice/eleList` (paged): the elevator controllers.
pub async fn device_list(State(state): State<SharedState>, request: CvRequest, shape: Shape) -> CvResult {
    let page = request.params.page(MAX_OTHER_PAGE)?;
    let (total, devices) = page_of(state.store.elevator_devices(None).await?, page);
    Ok(Envelope::success(shaped(shape, page, total, devices.iter().map(ele_device_view).collect())))
}

/// `eleDevice/getEle?sn=`.
pub async fn device_get(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    let sn = request.params.get("sn").ok_or(CvError::SnEmpty)?;
    let device = state.store.elevator_devices(Some(sn)).await?.pop().ok_or(CvError::DeviceMissing)?;
    Ok(Envelope::success(ele_device_view(&device)))
}

fn level_view(l: &EleLevel) -> Value {
    json!({ "id": ids::encode(l.id), "name": l.name })
}

/// `eleLevel/list` (bare), `v2/eleLevel/list` (paged).
pub async fn level_list(State(state): State<SharedState>, request: CvRequest, shape: Shape) -> CvResult {
    let page = request.params.page(MAX_OTHER_PAGE)?;
    let (total, levels) = page_of(state.store.ele_levels().await?, page);
    Ok(Envelope::success(shaped(shape, page, total, levels.iter().map(level_view).collect())))
}

async fn level_by_id(state: &SharedState, id: Option<&str>) -> Result<EleLevel, CvError> {
    let id = id.ok_or(CvError::LevelIdEmpty)?;
    let id = ids::decode(id).ok_or(CvError::EleLevelMissing)?;
    state.store.ele_level(id).await?.ok_or(CvError::EleLevelMissing)
}

/// `eleLevel/getById/{id}`.
pub async fn level_by_path(State(state): State<SharedState>, Path(id): Path<String>, _request: CvRequest) -> CvResult {
    Ok(Envelope::success(level_view(&level_by_id(&state, Some(id.as_str())).await?)))
}

/// `eleLevel/getByName/{name}`.
pub async fn level_by_name_path(
    State(state): State<SharedState>,
    Path(name): Path<String>,
    _request: CvRequest,
) -> CvResult {
    let level = state.store.ele_level_by_name(name.trim()).await?.ok_or(CvError::EleLevelMissing)?;
    Ok(Envelope::success(level_view(&level)))
}

/// The pin and the levels a membership write names, all checked before anything changes.
async fn pin_and_levels(state: &SharedState, request: &CvRequest) -> Result<(String, Vec<EleLevel>), CvError> {
    let pin = request.params.get("pin").ok_or(CvError::PinEmpty)?.to_owned();
    let names = request.params.list("levelIds")?;
    if names.is_empty() {
        return Err(CvError::PersonOrLevelEmpty);
    }
    if state.store.employee_by_code(&pin).await?.is_none() {
        return Err(CvError::PersonMissing);
    }
    let mut levels = Vec::with_capacity(names.len());
    for id in &names {
        levels.push(level_by_id(state, Some(id)).await?);
    }
    Ok((pin, levels))
}

/// `eleLevel/syncPerson?pin=&levelIds=`: into the levels, then pushed (see the module docs).
pub async fn sync_person(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    request.require_write()?;
    let result = async {
        let (pin, levels) = pin_and_levels(&state, &request).await?;
        let mut controllers = BTreeSet::new();
        for level in &levels {
            let members = state.store.ele_level_members(level.id).await?;
            if members.iter().any(|m| m.emp_code == pin) {
                continue;
            }
            let affected = state
                .store
                .put_ele_level_member(level.id, &pin, None, None)
                .await
                .map_err(|e| CvError::LevelGrantFailed(e.to_string()))?;
            controllers.extend(affected);
        }
        controllers.extend(state.store.access_controllers_of_employee(&pin).await?);
        provisioning::sync_controllers(&state, controllers).await?;
        Ok(())
    }
    .await;
    audited(&state, &request, request.params.get("pin").unwrap_or_default(), result).await
}

/// `eleLevel/deleteLevel?pin=&levelIds=`: takes the person out of those levels.
pub async fn delete_level(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    request.require_write()?;
    let result = async {
        let (pin, levels) = pin_and_levels(&state, &request).await?;
        for level in &levels {
            match state.store.remove_ele_level_member(level.id, &pin).await {
                Ok(affected) => {
                    provisioning::sync_controllers(&state, affected).await?;
                }
                // Not a member: nothing to take away.
                Err(error) if error.kind() == adms_store::ErrorKind::NotFound => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
    .await;
    audited(&state, &request, request.params.get("pin").unwrap_or_default(), result).await
}

/// `eleLevel/syncLevel?levelId=`: re-plans the controllers of the level's floors.
pub async fn sync_level(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    request.require_write()?;
    let result = async {
        let level = level_by_id(&state, request.params.get("levelId")).await?;
        let floors = state.store.access_floors(None).await?;
        let controllers: BTreeSet<i64> =
            floors.iter().filter(|f| level.floor_ids.contains(&f.id)).map(|f| f.device_id).collect();
        provisioning::sync_controllers(&state, controllers).await?;
        Ok(())
    }
    .await;
    audited(&state, &request, request.params.get("levelId").unwrap_or_default(), result).await
}
