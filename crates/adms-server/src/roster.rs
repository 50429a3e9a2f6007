//! Roster changes → terminals: after an employee or terminal changes, or a terminal comes
//! online (first contact, replacement, back from offline), the store plans what each terminal
//! must receive (`adms_store::roster_sync`) and it is handed to the device command queue here.

use adms_store::StoreError;
use adms_store::roster_sync::RosterChange;

use crate::app::AppState;

/// Hands planned roster changes to the device command queue.
///
/// The persistent command queue (typed commands, de-duplication keys) is built on another
/// branch; until it is merged the plan is computed and logged, and not delivered.
pub async fn push_roster_changes(_state: &AppState, plan: Vec<(i64, RosterChange)>) -> Result<(), StoreError> {
    for (device_id, change) in &plan {
        tracing::info!(device_id, pin = change.pin(), key = %change.dedup_key(), "roster change planned");
    }
    Ok(())
}

/// Plans and hands over what one employee's current record needs on every terminal.
pub async fn sync_employee(state: &AppState, emp_code: &str) -> Result<(), StoreError> {
    let plan = state.store.plan_employee_sync(emp_code).await?;
    push_roster_changes(state, plan).await
}

/// Plans and hands over what one terminal needs to hold its area's roster.
pub async fn sync_terminal(state: &AppState, device_id: i64) -> Result<(), StoreError> {
    let plan = state.store.plan_device_sync(device_id).await?;
    push_roster_changes(state, plan).await
}

/// [`sync_terminal`] for device paths: a failure is logged, never fails the device's request
/// (the next time the terminal comes online, or a resync, plans again).
pub async fn sync_terminal_logged(state: &AppState, device_id: i64) {
    if let Err(error) = sync_terminal(state, device_id).await {
        tracing::warn!(%error, device_id, "roster sync for the terminal failed; planned again when it next comes online");
    }
}
