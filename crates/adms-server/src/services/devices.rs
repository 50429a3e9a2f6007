//! Device settings an operator changes: approval, alias, area. The API and the console change
//! them here;
//! each change is committed, the device cache forgets the device (its next request reads the
//! change), and a change that decides what the terminal should hold plans its roster.

use adms_store::{Approval, StoreError};

use crate::state::AppState;

/// Approves a device or makes it pending again; `false` when there is no such device. An
/// approved terminal gets its area's roster (a pending one received nothing).
pub async fn set_approval(state: &AppState, sn: &str, approval: Approval) -> Result<bool, StoreError> {
    let Some(device) = state.store.device_by_sn(sn).await? else { return Ok(false) };
    state.store.set_approval(sn, approval).await?;
    state.devices.invalidate(sn);
    if approval == Approval::Approved {
        crate::services::roster::sync_terminal(state, device.id).await?;
    }
    Ok(true)
}

/// A new alias; `false` when there is no such device.
pub async fn rename(state: &AppState, sn: &str, alias: &str) -> Result<bool, StoreError> {
    let found = state.store.configure_device(sn, Some(alias), None, None).await?;
    state.devices.invalidate(sn);
    Ok(found)
}

/// Moves a terminal to an area (which must exist) and plans its roster when the area changed.
pub async fn set_area(state: &AppState, device_id: i64, area_id: i64) -> Result<(), StoreError> {
    let current = state.store.terminal_areas(&[device_id]).await?.get(&device_id).map(|a| a.id);
    if current == Some(area_id) {
        return Ok(());
    }
    state.store.set_terminal_area(device_id, area_id).await?;
    crate::services::roster::sync_terminal(state, device_id).await
}
