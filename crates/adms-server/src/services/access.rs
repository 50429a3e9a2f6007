//! Access control → controllers: after a level, a membership, a time segment, a holiday or an
//! employee changes, each controller concerned is planned (`adms_store::access`) and only the
//! difference is queued, one command per row under the row's de-duplication key, so a burst
//! of changes leaves each row queued once (a newer desire for a row supersedes the queued
//! one). A controller that is offline keeps its queue until it polls; a full re-sync of one
//! controller is [`resync_controller`]. Door and auxiliary-output control commands are queued here
//! too.

use adms_model::access::{AccessChange, LocalTime};
use adms_protocol::DeviceCommand;
use adms_protocol::access::{AuxOutputAction, DoorAction, FloorAction};
use adms_store::access::{AccessAuxOutput, AccessDoor, AccessFloor, change_command};
use adms_store::visits::{AccessVisit, NewVisit, VisitError, VisitKey};
use adms_store::{Enqueued, NewCommand, StoreError};
use tokio_util::sync::CancellationToken;

use crate::services::commands;
use crate::state::AppState;

/// The source of provisioning commands in the queue.
pub const SOURCE: &str = "access";

/// Now in the display zone (the controllers' local time): visits in progress are those whose
/// window holds it.
pub fn now(state: &AppState) -> LocalTime {
    state.display_zone.now_local().to_string().parse().unwrap_or_else(|_| {
        // Outside 2000-2099 the controllers cannot hold dates either; plan as of 2000-01-01.
        "2000-01-01 00:00:00".parse().unwrap_or_else(|_| unreachable!("a valid time"))
    })
}

/// Queues a controller's planned changes; returns how many were queued (or already were).
async fn push(state: &AppState, device_id: i64, changes: &[AccessChange]) -> Result<usize, StoreError> {
    if changes.is_empty() {
        return Ok(0);
    }
    let expires_at = commands::default_expiry(state);
    let queued: Vec<NewCommand> = changes
        .iter()
        .map(|change| NewCommand {
            device_id,
            command: change_command(change),
            dedupe_key: Some(change.dedup_key()),
            source: SOURCE.to_owned(),
            expires_at,
        })
        .collect();
    commands::enqueue(state, &queued).await?;
    tracing::info!(device_id, commands = queued.len(), "access changes queued");
    Ok(queued.len())
}

/// Plans each controller and queues its differences; returns the number of commands queued.
pub async fn sync_controllers(
    state: &AppState,
    device_ids: impl IntoIterator<Item = i64>,
) -> Result<usize, StoreError> {
    let now = now(state);
    let mut total = 0;
    for device_id in device_ids {
        let plan = state.store.plan_access_sync(device_id, &now).await?;
        total += push(state, device_id, &plan).await?;
    }
    Ok(total)
}

/// Every access controller (a holiday change concerns them all).
pub async fn sync_all_controllers(state: &AppState) -> Result<usize, StoreError> {
    let ids = state.store.access_controller_ids().await?;
    sync_controllers(state, ids).await
}

/// The controllers an employee's record concerns (after a change of their card, password,
/// name, status or deletion).
pub async fn sync_employee(state: &AppState, emp_code: &str) -> Result<usize, StoreError> {
    let ids = state.store.access_controllers_of_employee(emp_code).await?;
    sync_controllers(state, ids).await
}

/// A full re-sync of one controller: its access tables cleared and everything it should hold
/// queued again. Returns the number of commands queued.
pub async fn resync_controller(state: &AppState, device_id: i64) -> Result<usize, StoreError> {
    let plan = state.store.plan_access_resync(device_id, &now(state)).await?;
    push(state, device_id, &plan).await
}

/// Queues `CONTROL DEVICE` for one door; the command's result (from the controller's
/// `/iclock/devicecmd`) completes it.
pub async fn control_door(
    state: &AppState,
    door: &AccessDoor,
    action: DoorAction,
    seconds: Option<u8>,
    source: String,
) -> Result<Enqueued, StoreError> {
    let door_no = u8::try_from(door.door_no).map_err(|_| StoreError::Invalid("door number out of range".into()))?;
    let command = DeviceCommand::DoorControl { door: door_no, action, seconds };
    let new = NewCommand {
        device_id: door.device_id,
        command,
        dedupe_key: None,
        source,
        expires_at: commands::default_expiry(state),
    };
    let enqueued = commands::enqueue(state, std::slice::from_ref(&new)).await?;
    enqueued.into_iter().next().ok_or(StoreError::NotFound)
}

/// Queues `CONTROL DEVICE` for one auxiliary output (`01 nn 02 dd`); the controller's result
/// completes the command, as for a door.
pub async fn control_aux_output(
    state: &AppState,
    output: &AccessAuxOutput,
    action: AuxOutputAction,
    seconds: Option<u8>,
    source: String,
) -> Result<Enqueued, StoreError> {
    let aux_no =
        u8::try_from(output.aux_no).map_err(|_| StoreError::Invalid("auxiliary output number out of range".into()))?;
    let new = NewCommand {
        device_id: output.device_id,
        command: DeviceCommand::AuxOutputControl { output: aux_no, action, seconds },
        dedupe_key: None,
        source,
        expires_at: commands::default_expiry(state),
    };
    let enqueued = commands::enqueue(state, std::slice::from_ref(&new)).await?;
    enqueued.into_iter().next().ok_or(StoreError::NotFound)
}

/// Queues `CONTROL DEVICE 11|12 <floor mask> dd` for one floor of an elevator controller; the
/// controller's result completes the command, as for a door.
pub async fn control_floor(
    state: &AppState,
    floor: &AccessFloor,
    action: FloorAction,
    seconds: Option<u8>,
    source: String,
) -> Result<Enqueued, StoreError> {
    let floor_no =
        u16::try_from(floor.floor_no).map_err(|_| StoreError::Invalid("floor number out of range".into()))?;
    let new = NewCommand {
        device_id: floor.device_id,
        command: DeviceCommand::FloorControl { floors: vec![floor_no], action, seconds },
        dedupe_key: None,
        source,
        expires_at: commands::default_expiry(state),
    };
    let enqueued = commands::enqueue(state, std::slice::from_ref(&new)).await?;
    enqueued.into_iter().next().ok_or(StoreError::NotFound)
}

/// Registers a visit and puts its visitor on the controllers of its levels (when it is in
/// progress already; otherwise the periodic pass does when it starts).
pub async fn register_visit(state: &AppState, visit: &NewVisit) -> Result<AccessVisit, VisitError> {
    let (visit, controllers) = state.store.create_visit(visit, &now(state)).await?;
    sync_controllers(state, controllers).await?;
    tracing::info!(visit = visit.id, pin = %visit.pin, "visit registered");
    Ok(visit)
}

/// Ends a visit (the visitor left): the controllers lose the visitor at once.
pub async fn end_visit(state: &AppState, key: &VisitKey) -> Result<AccessVisit, VisitError> {
    let visit = state.store.exit_visit(key, &now(state)).await?;
    let controllers = state.store.visit_controllers(&visit).await?;
    sync_controllers(state, controllers).await?;
    tracing::info!(visit = visit.id, pin = %visit.pin, "visit ended");
    Ok(visit)
}

/// How often the worker looks for visits that started or ended.
pub const VISIT_BOUNDARY_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Plans the controllers of the visits that started or ended since they were last planned;
/// returns the number of commands queued.
pub async fn settle_visits(state: &AppState) -> Result<usize, StoreError> {
    let controllers = state.store.settle_visit_boundaries(&now(state)).await?;
    sync_controllers(state, controllers).await
}

/// The worker's loop over [`settle_visits`]: a visitor is put on the controllers when their
/// visit starts and taken off when it ends, within [`VISIT_BOUNDARY_EVERY`].
pub async fn run_visit_boundaries(state: crate::state::SharedState, stop: CancellationToken) {
    let mut tick = tokio::time::interval(VISIT_BOUNDARY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while crate::periodic::next_tick(&mut tick, &stop).await {
        match settle_visits(&state).await {
            Ok(0) => {}
            Ok(queued) => tracing::info!(queued, "visit starts and ends planned"),
            Err(error) => tracing::warn!(%error, "visit starts and ends not planned; the next pass retries"),
        }
    }
}
