//! Background work: every periodic loop and the webhook dispatcher, spawned on one
//! [`TaskTracker`] and stopped by one [`CancellationToken`], so shutdown lets each loop finish
//! the pass it is in (a flush, a sweep, a delivery) and waits for it instead of aborting it.

use std::sync::Arc;
use std::time::Duration;

use adms_store::now_micros;
use adms_webhooks::{DeliveryClient, Dispatcher, DispatcherConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::device_registry::flush_activity;
use crate::periodic::next_tick;
use crate::state::SharedState;

/// The running background work.
#[derive(Debug)]
pub(super) struct Background {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Background {
    /// Starts the loops of this process's roles. `device`: the activity flush (with approvals
    /// withdrawn elsewhere) and the cross-replica wake-up of polling devices (on `wake_ups`,
    /// established before serving so `/readyz` is ready from the first request). `worker`: the
    /// dispatcher, presence checks, the command expiry sweep, the roster reconcile, visit starts
    /// and ends, and the session and quota purges. Every role: the activity summary.
    pub(super) fn start(
        state: &SharedState,
        wake_ups: Option<adms_store::CommandWatch>,
    ) -> std::io::Result<Background> {
        let roles = state.config.role;
        // Built first: should it fail, nothing has been spawned that would run unstopped.
        let dispatcher = if roles.worker { Some(dispatcher(state)?) } else { None };
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        if roles.device {
            let flush_every = Duration::from_secs(state.config.devices.activity_flush_secs.max(1));
            tasks.spawn(flush_activity_and_approvals(state.clone(), flush_every, stop.clone()));
        }
        if let Some(watch) = wake_ups {
            tasks.spawn(crate::device::commands::run_cross_replica_wake(state.clone(), stop.clone(), watch));
        }
        if let Some(dispatcher) = dispatcher {
            tasks.spawn(dispatcher.run(stop.clone()));
            tasks.spawn(crate::device::presence::run_checks(state.clone(), stop.clone()));
            tasks.spawn(crate::device::commands::run_expiry(state.clone(), stop.clone()));
            tasks.spawn(crate::services::roster::run_reconcile(state.clone(), stop.clone()));
            tasks.spawn(crate::services::access::run_visit_boundaries(state.clone(), stop.clone()));
            tasks.spawn(purge_expired(state.clone(), stop.clone()));
        }
        if (roles.device || roles.worker) && state.store.engine() == adms_store::Engine::Postgres {
            tasks.spawn(refresh_statistics(state.clone(), stop.clone()));
        }
        tasks.spawn(super::metrics::log_summaries(state.clone(), stop.clone()));
        tasks.close();
        Ok(Background { stop, tasks })
    }

    /// Signals every loop to stop and waits for them: each ends after the pass it is in. In-flight
    /// webhook requests end within their timeout and their attempts are recorded, so the wait
    /// is bounded by it; past that, what is still running is left (a delivery's lease expires
    /// and it is retried).
    pub(super) async fn stop(self, state: &SharedState) {
        self.stop.cancel();
        let drain = Duration::from_secs(state.config.webhooks.timeout_secs + 5);
        if tokio::time::timeout(drain, self.tasks.wait()).await.is_err() {
            tracing::warn!("background tasks did not stop in time; webhook leases will expire and be retried");
        }
    }
}

/// The outbox worker, configured from the state.
fn dispatcher(state: &SharedState) -> std::io::Result<Dispatcher> {
    let config = &state.config;
    let client = DeliveryClient::new(
        state.webhooks.address_policy.clone(),
        Duration::from_secs(5).min(Duration::from_secs(config.webhooks.timeout_secs)),
        Duration::from_secs(config.webhooks.timeout_secs),
        concat!("adms-bridge/", env!("CARGO_PKG_VERSION")),
    )
    .map_err(std::io::Error::other)?;
    let dispatcher = Dispatcher::new(
        state.store.clone(),
        client,
        DispatcherConfig {
            concurrency: config.webhooks.concurrency,
            // Longer than any request may take, so a live worker never loses its lease.
            // (endpoints' own timeouts are at most 30 s).
            lease: Duration::from_secs(config.webhooks.timeout_secs.max(30) + 30),
            ..DispatcherConfig::default()
        },
        Arc::clone(&state.webhooks.clock),
        Arc::clone(&state.webhooks.wake),
        Arc::clone(&state.webhooks.metrics),
    )
    .with_secret_key(state.webhooks.secret_key.clone());
    Ok(dispatcher)
}

/// Flushes device activity every `activity_flush_secs`, and withdraws from the registry the
/// approvals withdrawn elsewhere.
async fn flush_activity_and_approvals(state: SharedState, flush_every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(flush_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while next_tick(&mut tick, &stop).await {
        if let Err(error) = flush_activity(&state.devices, &state.store).await {
            tracing::warn!(%error, "device activity flush failed");
        }
        // Approvals withdrawn elsewhere (`adms-bridge device reject`, another replica's API):
        // approvals granted elsewhere are read on the device's next request already.
        match state.store.pending_device_sns().await {
            Ok(pending) => {
                for sn in state.devices.withdraw_approvals(&pending) {
                    tracing::info!(%sn, "device approval withdrawn elsewhere: its data is held from now on");
                }
            }
            Err(error) => tracing::warn!(%error, "reading pending devices failed"),
        }
    }
}

/// Every [`PURGE_EVERY`]: expired session tokens, and the daily quota usage of past days.
async fn purge_expired(state: SharedState, stop: CancellationToken) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while next_tick(&mut tick, &stop).await {
        match state.store.purge_expired_sessions(now_micros()).await {
            Ok(n) if n > 0 => tracing::info!(purged = n, "expired session tokens removed"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "session purge failed"),
        }
        match state.store.purge_console_sessions(now_micros()).await {
            Ok(n) if n > 0 => tracing::info!(purged = n, "ended and expired console sessions removed"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "console session purge failed"),
        }
        // Quotas read only their own day's usage; yesterday's row is kept as a margin.
        let today = adms_store::Quota::for_day(state.webhooks.clock.now_micros(), 0).day;
        match state.store.purge_quota_usage(today - 1).await {
            Ok(n) if n > 0 => tracing::info!(purged = n, "old daily quota usage removed"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "quota usage purge failed"),
        }
    }
}

/// Every [`STATISTICS_EVERY`] (PostgreSQL, device and worker roles): refreshes the statistics
/// of hot tables that doubled since the planner last learnt their size, so that the punch
/// writer's and the dispatcher's prepared statements are not left with plans made for empty
/// tables (see `Store::refresh_statistics`). Several replicas may do it at once: an `ANALYZE`
/// waits for another one of the same table, and doing it twice costs a sample read.
async fn refresh_statistics(state: SharedState, stop: CancellationToken) {
    let mut tick = tokio::time::interval(STATISTICS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while next_tick(&mut tick, &stop).await {
        match state.store.refresh_statistics().await {
            Ok(tables) if !tables.is_empty() => tracing::debug!(?tables, "table statistics refreshed"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "refreshing table statistics failed"),
        }
    }
}

/// How often the hot tables' growth is checked: a young table doubles in seconds under load,
/// and a check is one read of the statistics views.
const STATISTICS_EVERY: Duration = Duration::from_secs(2);

/// How often expired sessions and old quota usage are purged (the flush used to do it every
/// 720 ticks of 5 s).
const PURGE_EVERY: Duration = Duration::from_secs(3600);
