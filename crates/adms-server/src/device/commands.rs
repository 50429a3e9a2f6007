//! The device side of the command queue: handing commands out on `getrequest`, the expiry
//! sweep and the cross-replica wake-up. Queueing is [`crate::services::commands::enqueue`].

use std::time::Duration;

use adms_protocol::reply::push_command;
use adms_protocol::text::TextEncoding;
use adms_store::{CommandWatch, StoreError};
use tokio_util::sync::CancellationToken;

use crate::device_registry::DeviceEntry;
use crate::periodic::next_tick;
use crate::state::SharedState;

/// The reply to a poll: `C:<id>:<command>` lines for the due commands, or `None` when there is
/// nothing to send (the caller answers `OK`). Reads the store only when the entry says the
/// queue may hold something due.
pub async fn poll_reply(state: &SharedState, entry: &DeviceEntry) -> Result<Option<Vec<u8>>, StoreError> {
    let now = state.webhooks.clock.now_micros();
    let Some(generation) = entry.commands_due(now) else {
        return Ok(None);
    };
    let taken = state.store.take_due_commands(entry.id(), now, &state.commands).await?;
    entry.commands_taken(generation, taken.next_due_at);
    if taken.completed > 0 {
        state.webhooks.wake.notify_one();
    }
    if taken.commands.is_empty() {
        return Ok(None);
    }
    let mut text = String::new();
    for c in &taken.commands {
        // Stored text was validated by the encoder; an id or text that cannot be framed would
        // be a bug, and is skipped rather than sent (it expires, visibly).
        if let Err(error) = push_command(&mut text, &c.id.to_string(), &c.text) {
            tracing::error!(command = c.id, %error, "stored command cannot be framed; not sent");
        }
    }
    tracing::info!(commands = taken.commands.len(), "commands handed out");
    let device = entry.snapshot();
    let encoding = device
        .text_encoding
        .as_deref()
        .and_then(TextEncoding::for_label)
        .unwrap_or_else(|| TextEncoding::for_language(Some(device.language.as_str())));
    // Names go out in the device's code page (GB18030 on Chinese units); text it cannot
    // represent goes as UTF-8, which is what most firmware reads.
    let bytes = match encoding.encode(&text) {
        Some(bytes) => bytes.into_owned(),
        None => {
            tracing::warn!(
                encoding = encoding.name(),
                "command text not representable in the device encoding; sent as UTF-8"
            );
            text.into_bytes()
        }
    };
    Ok(Some(bytes))
}

/// Wakes the cached devices that got commands from elsewhere. A poll with nothing known to be
/// queued is answered from memory, so a command another replica (or another process on the
/// same database) queued would otherwise wait until this process next read the device's queue.
/// Commands queued here wake their devices at once; the store's [`CommandWatch`] reports the
/// others (SQLite: within about a second; PostgreSQL: at their commit, by `LISTEN`).
pub async fn run_cross_replica_wake(state: SharedState, stop: CancellationToken, watch: CommandWatch) {
    use std::sync::atomic::Ordering;
    let mut watch = Some(watch);
    state.wake_ups.store(true, Ordering::Relaxed);
    loop {
        let result = match &mut watch {
            // After a failure: a new watch (PostgreSQL: a new `LISTEN` connection), then every
            // cached device reads its queue once, for what was queued while nobody listened.
            None => state.store.watch_queued_commands().await.map(|w| {
                watch = Some(w);
                state.devices.wake_all();
                Vec::new()
            }),
            Some(w) => tokio::select! {
                () = stop.cancelled() => return,
                devices = w.next() => devices,
            },
        };
        match result {
            Ok(device_ids) => {
                state.wake_ups.store(true, Ordering::Relaxed);
                if !device_ids.is_empty() {
                    state.devices.commands_enqueued(&device_ids);
                }
            }
            Err(error) => {
                state.wake_ups.store(false, Ordering::Relaxed);
                watch = None;
                tracing::warn!(%error, "queued-command watch failed; retried in a second");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
        if stop.is_cancelled() {
            return;
        }
    }
}

/// Every 2 s: expires commands of devices that stopped polling (polls expire their own).
pub async fn run_expiry(state: SharedState, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while next_tick(&mut tick, &stop).await {
        match state.store.expire_due_commands(state.webhooks.clock.now_micros(), &state.commands).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(expired = n, "queued commands expired");
                state.webhooks.wake.notify_one();
            }
            Err(error) => tracing::warn!(%error, "command expiry sweep failed"),
        }
    }
}
