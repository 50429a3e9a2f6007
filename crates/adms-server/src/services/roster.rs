//! Roster changes → terminals: after an employee or terminal changes, or a terminal comes
//! online (first contact, replacement, back from offline), the store plans what each terminal
//! must receive (`adms_store::roster_sync`) and it is queued as device commands here.

use adms_store::StoreError;
use adms_store::commands::NewCommand;
use adms_store::roster_sync::RosterChange;

use tokio_util::sync::CancellationToken;

use crate::services::commands;
use crate::state::AppState;

/// Queues planned roster changes as device commands (source `roster`, de-duplication key
/// naming the user or template slot, so a newer desire supersedes a queued older one) and wakes
/// the devices concerned. A change the encoder refuses (a value a device cannot take) is logged
/// and skipped; the others are queued.
pub async fn push_roster_changes(state: &AppState, plan: Vec<(i64, RosterChange)>) -> Result<(), StoreError> {
    if plan.is_empty() {
        return Ok(());
    }
    let expires_at = commands::default_expiry(state);
    let queued: Vec<NewCommand> = plan
        .iter()
        .map(|(device_id, change)| NewCommand {
            device_id: *device_id,
            command: change.to_command(),
            dedupe_key: Some(change.dedup_key()),
            source: "roster".to_owned(),
            expires_at,
        })
        .collect();
    match commands::enqueue(state, &queued).await {
        Ok(_) => {}
        Err(StoreError::InvalidCommand(error)) => {
            // One bad value must not hold back the rest: queue them one by one.
            tracing::warn!(%error, "a roster change was refused by the command encoder; queueing the others one by one");
            for command in &queued {
                if let Err(error) = commands::enqueue(state, std::slice::from_ref(command)).await {
                    tracing::warn!(%error, device_id = command.device_id, kind = command.command.kind(), "roster change not queued");
                }
            }
        }
        Err(other) => return Err(other),
    }
    let devices = {
        let mut ids: Vec<i64> = queued.iter().map(|c| c.device_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    tracing::info!(commands = queued.len(), devices, "roster changes queued");
    Ok(())
}

/// Plans and hands over what one employee's current record needs on every terminal.
pub async fn sync_employee(state: &AppState, emp_code: &str) -> Result<(), StoreError> {
    let plan = state.store.plan_employee_sync(emp_code).await?;
    push_roster_changes(state, plan).await?;
    // The same person on access controllers (card, password, name, status).
    crate::services::access::sync_employee(state, emp_code).await?;
    Ok(())
}

/// Plans and hands over what one terminal needs to hold its area's roster.
pub async fn sync_terminal(state: &AppState, device_id: i64) -> Result<(), StoreError> {
    let plan = state.store.plan_device_sync(device_id).await?;
    push_roster_changes(state, plan).await?;
    // An access controller catches up on what changed while it was away.
    crate::services::access::sync_controllers(state, [device_id]).await?;
    Ok(())
}

/// [`sync_terminal`] for device paths: a failure is logged, never fails the device's request
/// (the next time the terminal comes online, or a resync, plans again).
pub async fn sync_terminal_logged(state: &AppState, device_id: i64) {
    if let Err(error) = sync_terminal(state, device_id).await {
        tracing::warn!(%error, device_id, "roster sync for the terminal failed; planned again when it next comes online");
    }
}

/// Plans every approved terminal against the roster, at start and then every
/// `roster_reconcile_secs`.
///
/// An API change commits the roster first and queues its commands in a second transaction
/// (the plan reads the committed roster and what is already queued). A crash, or a storage
/// error, between the two would leave terminals behind until they next came online; this pass
/// closes that gap. Planning is idempotent (what is queued, or succeeded since the device last
/// reported, counts as done), so replicas running it at the same time add nothing twice.
pub async fn run_reconcile(state: crate::state::SharedState, stop: CancellationToken) {
    let every = state.config.roster.reconcile_secs;
    loop {
        reconcile_all_terminals(&state, &stop).await;
        if every == 0 {
            return;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(every)) => {}
        }
    }
}

/// One pass of [`run_reconcile`]; a terminal that fails is logged and the others go on.
/// Ends between two terminals once `stop` is cancelled (the next start plans them all again).
pub async fn reconcile_all_terminals(state: &AppState, stop: &CancellationToken) {
    let device_ids = match state.store.approved_device_ids().await {
        Ok(ids) => ids,
        Err(error) => {
            tracing::warn!(%error, "roster reconcile: terminals not listed; next pass retries");
            return;
        }
    };
    for device_id in device_ids {
        if stop.is_cancelled() {
            return;
        }
        sync_terminal_logged(state, device_id).await;
    }
}
