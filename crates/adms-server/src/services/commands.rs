//! Queueing device commands: the one way server code does it. [`enqueue`] commits the commands
//! and then wakes the devices concerned, so that their next poll reads the queue instead of
//! answering `OK` from memory (a command queued without the wake-up would wait until the
//! cross-replica check noticed it, about a second later).

use adms_store::{Enqueued, NewCommand, StoreError};

use crate::state::AppState;

/// Queues commands (one transaction) and wakes their devices.
pub async fn enqueue(state: &AppState, commands: &[NewCommand]) -> Result<Vec<Enqueued>, StoreError> {
    let enqueued = state.store.enqueue_commands(commands, state.webhooks.clock.now_micros()).await?;
    wake(state, commands);
    Ok(enqueued)
}

/// Marks the devices of `commands` as having queued commands (each device once).
pub fn wake(state: &AppState, commands: &[NewCommand]) {
    let mut device_ids: Vec<i64> = commands.iter().map(|c| c.device_id).collect();
    device_ids.sort_unstable();
    device_ids.dedup();
    state.devices.commands_enqueued(&device_ids);
}

/// When a command queued now expires: `command_ttl_secs` from the dispatcher's clock.
pub fn default_expiry(state: &AppState) -> i64 {
    let ttl = i64::try_from(state.config.commands.ttl_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX / 2);
    state.webhooks.clock.now_micros().saturating_add(ttl)
}
