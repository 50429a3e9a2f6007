//! Device presence: `device.offline` after `offline_after_secs` without a request, and
//! `device.online` when such a device makes a request again.
//!
//! A periodic check reads the devices whose presence may have to change from the database
//! (what every replica flushed) and adds what this process saw in memory and has not flushed
//! yet. Silent devices are marked offline; offline ones that were active since are brought back;
//! for the others, the cached entry is flagged so that the device's next request here brings it
//! back at once, with the exact time, while a poll otherwise stays free of database reads.
//! Every change is a conditional update in the store, in one transaction with its event, so
//! with several replicas each transition is reported once.
//!
//! Times come from the webhook clock (the system clock, movable forward only in tests), the
//! same clock device requests are stamped with.

use std::time::Duration;

use adms_store::{OfflineCheck, Presence, SeenAgain, StoreError};

use crate::device_registry::DeviceEntry;
use crate::state::{AppState, SharedState};
use crate::zones::parse_zone;

/// How often presence is checked: a device is reported offline at most this much later than
/// `offline_after_secs` after its last request.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Runs the presence check every [`CHECK_EVERY`] until the task is aborted.
pub async fn run_checks(state: SharedState, stop: tokio_util::sync::CancellationToken) {
    let started_at = state.webhooks.clock.now_micros();
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while crate::periodic::next_tick(&mut tick, &stop).await {
        if let Err(error) = check(&state, started_at).await {
            tracing::warn!(%error, "device presence check failed");
        }
    }
}

/// One presence check. `started_at` is when this process started checking: no device is
/// reported offline before the process has been up for the threshold, because after a restart
/// the stored activity is as old as the downtime and devices need a poll interval to come back.
pub async fn check(state: &AppState, started_at: i64) -> Result<(), StoreError> {
    let now = state.webhooks.clock.now_micros();
    let threshold = i64::try_from(state.config.offline_after_secs()).unwrap_or(i64::MAX).saturating_mul(1_000_000);
    let silent_since = now.saturating_sub(threshold);
    let may_report_offline = started_at <= silent_since;
    let mut new_events = false;
    for device in state.store.presence_candidates(silent_since).await? {
        let entry = state.devices.get(&device.sn);
        let seen_here = entry.as_ref().map_or(0, |e| e.last_seen());
        let last_seen = device.last_activity_at.max(seen_here);
        match device.presence {
            Presence::Offline => {
                let marked_at = device.presence_changed_at.unwrap_or(i64::MAX);
                if last_seen > marked_at {
                    // Active since it was marked: on another replica, or here before the flag
                    // below was set. Its first request's time is not known here; the latest is.
                    let time_zone = zone_name(state, device.time_zone.as_deref());
                    let seen =
                        SeenAgain { device_id: device.device_id, time_zone: &time_zone, back_at: last_seen, now };
                    if state.store.mark_device_online(&seen).await? {
                        tracing::info!(sn = %device.sn, "device back online");
                        new_events = true;
                        crate::services::roster::sync_terminal_logged(state, device.device_id).await;
                    }
                } else if let Some(entry) = &entry {
                    entry.set_reported_offline();
                }
            }
            _ if last_seen < silent_since => {
                if !may_report_offline {
                    continue;
                }
                let time_zone = zone_name(state, device.time_zone.as_deref());
                let offline =
                    OfflineCheck { device_id: device.device_id, time_zone: &time_zone, seen_here, silent_since, now };
                if state.store.mark_device_offline(&offline).await? {
                    tracing::info!(sn = %device.sn, last_seen = %adms_store::events::rfc3339_micros(last_seen), "device offline");
                    if let Some(entry) = &entry {
                        entry.set_reported_offline();
                    }
                    new_events = true;
                }
            }
            Presence::Unknown => {
                // Stored before presence was tracked and active now: online, nothing to report.
                let time_zone = zone_name(state, device.time_zone.as_deref());
                let seen = SeenAgain { device_id: device.device_id, time_zone: &time_zone, back_at: last_seen, now };
                state.store.mark_device_online(&seen).await?;
            }
            Presence::Online => {}
        }
    }
    if new_events {
        state.webhooks.wake.notify_one();
    }
    Ok(())
}

/// Brings a device reported offline back online at its request at `now`. A failure does not
/// fail the request: the flag is set again and the next request (or the periodic check) retries.
pub async fn seen_again(state: &AppState, entry: &DeviceEntry, now: i64) {
    let device = entry.snapshot();
    let zone = state.zone_for(&device);
    let seen = SeenAgain { device_id: device.id, time_zone: &zone.name, back_at: now, now };
    match state.store.mark_device_online(&seen).await {
        Ok(true) => {
            tracing::info!("device back online");
            state.webhooks.wake.notify_one();
            // Changes made while it was away reach it now.
            crate::services::roster::sync_terminal_logged(state, device.id).await;
        }
        Ok(false) => {}
        Err(error) => {
            entry.set_reported_offline();
            tracing::warn!(%error, "could not record the device back online; retried at its next request");
        }
    }
}

/// The zone events name for a device: its own setting, or the server default.
fn zone_name(state: &AppState, own: Option<&str>) -> String {
    own.and_then(parse_zone).map_or_else(|| state.default_zone.name.clone(), |zone| zone.name)
}
