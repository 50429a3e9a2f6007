//! `door/*`, `device/*`, `reader/*` and `accLevel/*` over the access model (`adms_store::access`),
//! and the writes, through the same services as the native `/api/v1/access/...` routes
//! (`services::access`: the provisioning plan and the command queue).
//!
//! Where the reference is silent or guesses, our choices:
//! - `accLevel/addLevelPerson` adds the person to the levels (keeping a validity window an
//!   existing membership has) and provisions the controllers concerned at once: the bridge keeps
//!   controllers in the desired state, so there is no separate "push" step to forget.
//! - `accLevel/syncPerson` does the same for the levels it names (clients call it after
//!   `addLevelPerson`, or instead of it) and re-plans every controller of the person; it does not
//!   take the person out of levels it does not name.
//! - `accLevel/deleteLevel` takes the person out of the levels named; a level they were not in is
//!   no error.
//! - `accLevel/syncLevel` re-plans every controller of the level's doors (the difference is
//!   queued, as after any change; a full re-sync of a controller is the native API's).
//! - Door states (`door/allDoorState`, `doorStateById`, `doorStateBySn`) are the manual's
//!   shape: an object (an array by serial number) with words; one field client reads an array
//!   of numeric codes from `doorStateById`, which is not served. `timestamp` is not required.
//!   `connect` is "1" when the controller is online, "0" offline or not yet seen, "2" when it
//!   is not approved (CVSecurity's "disabled").
//! - `auxOut/*` (undocumented, seen in one field client, `cvsecurity_api.md` §5.7): an
//!   auxiliary output's id is its row's (`access_aux_outputs`, derived from the controller's
//!   `AuxOutCount`), in the same 32-hex form; the timed open takes `interval` like a door's.
//! - `floor/*`: an elevator controller's floors are declared in the native API (no registry
//!   key for them is known); a floor is released with `CONTROL DEVICE 11 <floor mask> <s>`,
//!   closed with duration 0 and held open with `12 … FF` (`adms_protocol::access::floor_operand`).
//! - A remote open or close answers once the command is queued; the controller's result is the
//!   command's outcome in the native command API (CVSecurity's answer carries no result either).

use axum::extract::{Path, State};
use serde_json::{Value, json};

use adms_protocol::access::{AuxOutputAction, DoorAction, FloorAction};
use adms_protocol::rtlog::DoorStateBits;
use adms_store::access::{AccessAuxOutput, AccessDoor, AccessFloor, AccessLevel};
use adms_store::cvsecurity::{AccessDevice, ControllerState};

use super::envelope::{CvError, CvResult, Envelope};
use super::ids::{self, ReaderSide};
use super::params::{CvRequest, MAX_OTHER_PAGE, PageRequest};
use super::{Shape, shaped};
use crate::services::access as provisioning;
use crate::state::SharedState;

/// One page of rows already in memory.
pub(super) fn page_of<T>(rows: Vec<T>, page: PageRequest) -> (i64, Vec<T>) {
    let total = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
    let size = usize::try_from(page.page_size).unwrap_or(usize::MAX);
    (total, rows.into_iter().skip(offset).take(size).collect())
}

fn door_view(d: &AccessDoor) -> Value {
    json!({ "id": ids::encode(d.id), "name": d.name, "deviceId": ids::encode(d.device_id), "deviceSn": d.sn, "doorNo": d.door_no })
}

/// `door/list` (paging optional), `v2/door/list`.
pub async fn door_list(State(state): State<SharedState>, request: CvRequest, shape: Shape) -> CvResult {
    let page = request.params.page_or_all(MAX_OTHER_PAGE)?;
    let (total, doors) = page_of(state.store.access_doors(None).await?, page);
    Ok(Envelope::success(shaped(shape, page, total, doors.iter().map(door_view).collect())))
}

async fn door_by_id(state: &SharedState, id: Option<&str>) -> Result<AccessDoor, CvError> {
    let id = id.ok_or(CvError::DoorIdEmpty)?;
    let id = ids::decode(id).ok_or(CvError::DoorMissing)?;
    state.store.access_door(id).await?.ok_or(CvError::DoorMissing)
}

async fn door_by_name(state: &SharedState, name: Option<&str>) -> Result<AccessDoor, CvError> {
    let name = name.ok_or(CvError::DoorNameEmpty)?;
    let doors = state.store.access_doors(None).await?;
    doors.into_iter().find(|d| d.name == name).ok_or(CvError::DoorMissing)
}

/// `door/get?id=`, `v2/door/get?id=`.
pub async fn door_get(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    Ok(Envelope::success(door_view(&door_by_id(&state, request.params.get("id")).await?)))
}

pub(super) fn device_view(d: &AccessDevice) -> Value {
    let state = if d.approved { "1" } else { "0" };
    json!({
        "id": ids::encode(d.id),
        "sn": d.sn,
        // CVSecurity names a device by its IP by default; the bridge by its alias or serial.
        "name": if d.alias.is_empty() { d.sn.clone() } else { d.alias.clone() },
        "type": d.model.clone().unwrap_or_default(),
        // Enabled (approved) or not; connectivity is not a device field in CVSecurity.
        "state": state,
        "status": state,
        "module": "acc",
    })
}

/// `device/accList` (bare), `v2/device/list` (paged): the access controllers.
pub async fn device_list(State(state): State<SharedState>, request: CvRequest, shape: Shape) -> CvResult {
    let page = request.params.page(MAX_OTHER_PAGE)?;
    let (total, devices) = page_of(state.store.access_devices(None).await?, page);
    Ok(Envelope::success(shaped(shape, page, total, devices.iter().map(device_view).collect())))
}

/// `device/getAcc?sn=`.
pub async fn device_get(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    let sn = request.params.get("sn").ok_or(CvError::SnEmpty)?;
    let device = state.store.access_devices(Some(sn)).await?.pop().ok_or(CvError::DeviceMissing)?;
    Ok(Envelope::success(device_view(&device)))
}

fn reader_view(door: &AccessDoor, side: ReaderSide, language: super::names::Language) -> Value {
    json!({
        "id": ids::encode(ids::reader_id(door.id, side)),
        "doorId": ids::encode(door.id),
        "name": language.reader(&door.name, Some(side as i64)),
        // Controllers number a door's readers 2n-1 (in) and 2n (out).
        "readerNo": door.door_no * 2 - 1 + side as i64,
        "readerState": side as i64,
    })
}

/// `reader/accList` (paging optional), `v2/reader/list`: two readers per door, entry and exit.
pub async fn reader_list(State(state): State<SharedState>, request: CvRequest, shape: Shape) -> CvResult {
    let page = request.params.page_or_all(MAX_OTHER_PAGE)?;
    let doors = state.store.access_doors(None).await?;
    let language = state.config.cvsecurity.language;
    let readers: Vec<Value> = doors
        .iter()
        .flat_map(|door| [reader_view(door, ReaderSide::In, language), reader_view(door, ReaderSide::Out, language)])
        .collect();
    let (total, readers) = page_of(readers, page);
    Ok(Envelope::success(shaped(shape, page, total, readers)))
}

/// `reader/getAcc?id=`.
pub async fn reader_get(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    let id = request.params.get("id").ok_or(CvError::ReaderIdEmpty)?;
    let (door_id, side) = ids::reader_of(ids::decode(id).ok_or(CvError::ReaderMissing)?);
    let door = state.store.access_door(door_id).await?.ok_or(CvError::ReaderMissing)?;
    Ok(Envelope::success(reader_view(&door, side, state.config.cvsecurity.language)))
}

fn level_view(l: &AccessLevel) -> Value {
    json!({ "id": ids::encode(l.id), "name": l.name })
}

/// `accLevel/list` (bare), `v2/accLevel/list` (paged).
pub async fn level_list(State(state): State<SharedState>, request: CvRequest, shape: Shape) -> CvResult {
    let page = request.params.page(MAX_OTHER_PAGE)?;
    let (total, levels) = page_of(state.store.access_levels().await?, page);
    Ok(Envelope::success(shaped(shape, page, total, levels.iter().map(level_view).collect())))
}

async fn level_by_id(state: &SharedState, id: Option<&str>) -> Result<AccessLevel, CvError> {
    let id = id.ok_or(CvError::LevelIdEmpty)?;
    let id = ids::decode(id).ok_or(CvError::LevelMissing)?;
    state.store.access_level(id).await?.ok_or(CvError::LevelMissing)
}

/// `accLevel/getById/{id}`.
pub async fn level_by_path(State(state): State<SharedState>, Path(id): Path<String>, _request: CvRequest) -> CvResult {
    Ok(Envelope::success(level_view(&level_by_id(&state, Some(id.as_str())).await?)))
}

/// `v2/accLevel/getById?id=`.
pub async fn level_get(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    Ok(Envelope::success(level_view(&level_by_id(&state, request.params.get("id")).await?)))
}

async fn level_by_name(state: &SharedState, name: &str) -> Result<AccessLevel, CvError> {
    let levels = state.store.access_levels().await?;
    levels.into_iter().find(|l| l.name == name).ok_or(CvError::LevelMissing)
}

/// `accLevel/getByName/{name}`.
pub async fn level_by_name_path(
    State(state): State<SharedState>,
    Path(name): Path<String>,
    _request: CvRequest,
) -> CvResult {
    Ok(Envelope::success(level_view(&level_by_name(&state, name.trim()).await?)))
}

/// `v2/accLevel/getByName?name=`.
pub async fn level_get_by_name(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    let name = request.params.get("name").ok_or(CvError::LevelIdEmpty)?;
    Ok(Envelope::success(level_view(&level_by_name(&state, name).await?)))
}

/// The pin and the levels a membership write names, all checked before anything changes.
async fn pin_and_levels(state: &SharedState, request: &CvRequest) -> Result<(String, Vec<AccessLevel>), CvError> {
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

/// Adds a person to levels (a membership they already have keeps its window) and provisions.
async fn add_to_levels(state: &SharedState, pin: &str, levels: &[AccessLevel]) -> Result<(), CvError> {
    for level in levels {
        let members = state.store.access_level_members(level.id).await?;
        if members.iter().any(|m| m.emp_code == pin) {
            continue;
        }
        let affected = state
            .store
            .put_access_level_member(level.id, pin, None, None)
            .await
            .map_err(|e| CvError::LevelGrantFailed(e.to_string()))?;
        provisioning::sync_controllers(state, affected).await?;
    }
    Ok(())
}

/// Runs a write, then audits it under `target`.
pub(super) async fn audited(
    state: &SharedState,
    request: &CvRequest,
    target: &str,
    result: Result<(), CvError>,
) -> CvResult {
    request.audit(state, target, result.is_ok()).await;
    if let Err(error) = &result {
        tracing::info!(client = %request.client.name, target, code = error.code(), %error, "CVSecurity write refused");
    }
    result.map(|()| Envelope::success(Value::Null))
}

/// `accLevel/addLevelPerson?pin=&levelIds=`.
pub async fn add_level_person(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    request.require_write()?;
    let result = async {
        let (pin, levels) = pin_and_levels(&state, &request).await?;
        add_to_levels(&state, &pin, &levels).await
    }
    .await;
    audited(&state, &request, request.params.get("pin").unwrap_or_default(), result).await
}

/// `accLevel/syncPerson?pin=&levelIds=`.
pub async fn sync_person(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    request.require_write()?;
    let result = async {
        let (pin, levels) = pin_and_levels(&state, &request).await?;
        add_to_levels(&state, &pin, &levels).await?;
        provisioning::sync_employee(&state, &pin).await?;
        Ok(())
    }
    .await;
    audited(&state, &request, request.params.get("pin").unwrap_or_default(), result).await
}

/// `accLevel/deleteLevel?pin=&levelIds=`: takes the person out of those levels.
pub async fn delete_level(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    request.require_write()?;
    let result = async {
        let (pin, levels) = pin_and_levels(&state, &request).await?;
        for level in &levels {
            match state.store.remove_access_level_member(level.id, &pin).await {
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

/// `accLevel/syncLevel?levelId=`.
pub async fn sync_level(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    request.require_write()?;
    let result = async {
        let level = level_by_id(&state, request.params.get("levelId")).await?;
        let doors = state.store.access_doors(None).await?;
        let controllers: std::collections::BTreeSet<i64> =
            doors.iter().filter(|d| level.door_ids.contains(&d.id)).map(|d| d.device_id).collect();
        provisioning::sync_controllers(&state, controllers).await?;
        Ok(())
    }
    .await;
    audited(&state, &request, request.params.get("levelId").unwrap_or_default(), result).await
}

/// Which door a remote operation names.
#[derive(Debug, Clone, Copy)]
pub enum DoorBy {
    Id,
    Name,
}

/// `door/remoteOpenById?doorId=&interval=`, `door/remoteOpenByName?doorName=&interval=`:
/// `CONTROL DEVICE 01 <door> 01 <seconds>`.
pub async fn remote_open(State(state): State<SharedState>, request: CvRequest, by: DoorBy) -> CvResult {
    door_control(state, request, by, DoorAction::Open).await
}

/// `door/remoteCloseById` and `door/remoteoffById` (both spellings exist), and by name:
/// `CONTROL DEVICE 01 <door> 01 00`.
pub async fn remote_close(State(state): State<SharedState>, request: CvRequest, by: DoorBy) -> CvResult {
    door_control(state, request, by, DoorAction::Close).await
}

async fn door_control(state: SharedState, request: CvRequest, by: DoorBy, action: DoorAction) -> CvResult {
    request.require_write()?;
    let target = match by {
        DoorBy::Id => request.params.get("doorId"),
        DoorBy::Name => request.params.get("doorName"),
    }
    .unwrap_or_default()
    .to_owned();
    let result = async {
        let door = match by {
            DoorBy::Id => door_by_id(&state, request.params.get("doorId")).await?,
            DoorBy::Name => door_by_name(&state, request.params.get("doorName")).await?,
        };
        let seconds = match action {
            DoorAction::Open => {
                let interval = request.params.get("interval").and_then(|s| s.parse::<u8>().ok());
                Some(interval.filter(|s| (1..=254).contains(s)).ok_or(CvError::DoorDuration)?)
            }
            _ => None,
        };
        let source = format!("cvsecurity:{}", request.client.name);
        let queued = provisioning::control_door(&state, &door, action, seconds, source).await?;
        tracing::info!(sn = %door.sn, door = door.door_no, command = queued.id, client = %request.client.name, "CVSecurity door control queued");
        Ok(())
    }
    .await;
    audited(&state, &request, &target, result).await
}

/// Which auxiliary-output operation a remote call is.
#[derive(Debug, Clone, Copy)]
pub enum AuxOutputBy {
    /// `auxOut/remoteOpenByAuxOutById?id=&interval=`.
    Open,
    /// `auxOut/remoteNormalOpenByAuxOutById?id=`.
    NormallyOpen,
    /// `auxOut/remoteCloseByAuxOutById?id=`.
    Close,
}

async fn aux_output_by_id(state: &SharedState, id: Option<&str>) -> Result<AccessAuxOutput, CvError> {
    let id = id.filter(|s| !s.trim().is_empty()).ok_or(CvError::AuxOutputIdEmpty)?;
    let id = ids::decode(id).ok_or(CvError::AuxOutputMissing)?;
    state.store.access_aux_output(id).await?.ok_or(CvError::AuxOutputMissing)
}

/// `auxOut/remoteOpenByAuxOutById` (`CONTROL DEVICE 01 <aux> 02 <seconds>`),
/// `auxOut/remoteNormalOpenByAuxOutById` (`… 02 FF`), `auxOut/remoteCloseByAuxOutById`
/// (`… 02 00`).
pub async fn aux_output_control(State(state): State<SharedState>, request: CvRequest, by: AuxOutputBy) -> CvResult {
    request.require_write()?;
    let target = request.params.get("id").unwrap_or_default().to_owned();
    let result = async {
        let output = aux_output_by_id(&state, request.params.get("id")).await?;
        let (action, seconds) = match by {
            AuxOutputBy::Open => {
                let interval = request.params.get("interval").and_then(|s| s.trim().parse::<u8>().ok());
                (AuxOutputAction::Open, Some(interval.filter(|s| (1..=254).contains(s)).ok_or(CvError::AuxOutputDuration)?))
            }
            AuxOutputBy::NormallyOpen => (AuxOutputAction::NormallyOpen, None),
            AuxOutputBy::Close => (AuxOutputAction::Close, None),
        };
        let source = format!("cvsecurity:{}", request.client.name);
        let queued = provisioning::control_aux_output(&state, &output, action, seconds, source).await?;
        tracing::info!(sn = %output.sn, aux_output = output.aux_no, command = queued.id, client = %request.client.name, "CVSecurity auxiliary output control queued");
        Ok(())
    }
    .await;
    audited(&state, &request, &target, result).await
}

fn floor_view(f: &AccessFloor) -> Value {
    json!({ "id": ids::encode(f.id), "floorNo": f.floor_no, "name": f.name, "deviceId": ids::encode(f.device_id) })
}

/// `floor/list` (paging optional), `v2/floor/list`.
pub async fn floor_list(State(state): State<SharedState>, request: CvRequest, shape: Shape) -> CvResult {
    let page = request.params.page_or_all(MAX_OTHER_PAGE)?;
    let (total, floors) = page_of(state.store.access_floors(None).await?, page);
    Ok(Envelope::success(shaped(shape, page, total, floors.iter().map(floor_view).collect())))
}

/// `floor/remoteOpenById?floorId=&interval=` and `floor/remoteCloseById` (also spelt
/// `remoteoffById`) `?floorId=`.
pub async fn floor_control(State(state): State<SharedState>, request: CvRequest, action: FloorAction) -> CvResult {
    request.require_write()?;
    let target = request.params.get("floorId").unwrap_or_default().to_owned();
    let result = async {
        let id = request.params.get("floorId").ok_or(CvError::FloorIdEmpty)?;
        let id = ids::decode(id).ok_or(CvError::FloorMissing)?;
        let floor = state.store.access_floor(id).await?.ok_or(CvError::FloorMissing)?;
        let seconds = match action {
            FloorAction::Open => {
                let interval = request.params.get("interval").ok_or(CvError::FloorDurationEmpty)?;
                let seconds = interval.parse::<u8>().ok().filter(|s| (1..=254).contains(s));
                Some(seconds.ok_or(CvError::FloorDuration)?)
            }
            _ => None,
        };
        let source = format!("cvsecurity:{}", request.client.name);
        let queued = provisioning::control_floor(&state, &floor, action, seconds, source).await?;
        tracing::info!(sn = %floor.sn, floor = floor.floor_no, command = queued.id, client = %request.client.name, "CVSecurity floor control queued");
        Ok(())
    }
    .await;
    audited(&state, &request, &target, result).await
}

/// The manual's words for one door's state (`cvsecurity_api.md` §5.6).
fn door_state_view(door: &AccessDoor, device: Option<&AccessDevice>, state: Option<&ControllerState>) -> Value {
    let connect = match device {
        Some(d) if !d.approved => "2",
        Some(d) if d.presence == "online" => "1",
        _ => "0",
    };
    let bits = state.map_or(DoorStateBits { sensor: None, relay_open: None, alarm: None }, |s| {
        DoorStateBits::of(&s.sensor, &s.relay, &s.alarm, u8::try_from(door.door_no).unwrap_or(1))
    });
    let sensor = match bits.sensor {
        Some(0) => "nosensor",
        Some(1) => "off",
        Some(2) => "open",
        _ => "unknown",
    };
    let relay = match bits.relay_open {
        Some(true) => "open",
        Some(false) => "off",
        None => "unknown",
    };
    // The first alarm bit set, in the controller's bit order.
    const ALARMS: [&str; 8] = [
        "opened accidentally",
        "tamper",
        "duress password",
        "duress fingerprint",
        "timeout",
        "backup power",
        "low battery",
        "tamper",
    ];
    let alarm = match bits.alarm {
        None => "unknown",
        Some(0) => "none",
        Some(byte) => ALARMS[byte.trailing_zeros() as usize],
    };
    json!({
        "id": ids::encode(door.id),
        "name": door.name,
        "deviceId": ids::encode(door.device_id),
        "connect": connect,
        "sensor": sensor,
        "relay": relay,
        "alarm": alarm,
    })
}

/// The state of each door `keep` selects.
async fn door_states(state: &SharedState, keep: impl Fn(&AccessDoor) -> bool) -> Result<Vec<Value>, CvError> {
    let devices = state.store.access_devices(None).await?;
    let states = state.store.controller_states().await?;
    let doors = state.store.access_doors(None).await?;
    Ok(doors
        .iter()
        .filter(|d| keep(d))
        .map(|d| {
            let device = devices.iter().find(|v| v.id == d.device_id);
            door_state_view(d, device, states.iter().find(|s| s.device_id == d.device_id))
        })
        .collect())
}

/// `door/allDoorState`.
pub async fn all_door_states(State(state): State<SharedState>, _request: CvRequest) -> CvResult {
    Ok(Envelope::success(Value::Array(door_states(&state, |_| true).await?)))
}

/// `door/doorStateById?doorId=`: one object.
pub async fn door_state_by_id(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    let door = door_by_id(&state, request.params.get("doorId")).await?;
    let mut states = door_states(&state, |d| d.id == door.id).await?;
    states.pop().map(Envelope::success).ok_or(CvError::DoorMissing)
}

/// `door/doorStateBySn?deviceSn=`: the doors of one controller.
pub async fn door_states_by_sn(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    let sn = request.params.get("deviceSn").or(request.params.get("sn")).ok_or(CvError::SnEmpty)?.to_owned();
    if state.store.access_devices(Some(&sn)).await?.is_empty() {
        return Err(CvError::DeviceMissing);
    }
    Ok(Envelope::success(Value::Array(door_states(&state, |d| d.sn == sn).await?)))
}
