//! `/metrics` as the application serves it: the handler, the per-request recorder, what a
//! scrape reads from the state, and the summary line logged every minute. The registry and its
//! encoding are [`crate::telemetry::metrics`]'s.

use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

use adms_store::{Presence, StoreError};
use adms_webhooks::EndpointGauge;

use crate::state::{AppState, SharedState};
use crate::telemetry::metrics::{CONTENT_TYPE, HistogramSnapshot, Scrape};

/// Prometheus metrics.
///
/// OpenMetrics text, authenticated like every API route (Prometheus sends
/// `Authorization: Bearer <integration key>`): HTTP requests, uploads and punches, rejected
/// lines, devices and their presence, the command queue, each webhook endpoint's backlog and
/// this process's delivery attempts, the punch writer's groups, logins, quota refusals, and the
/// process's CPU, memory and file descriptors. README "Metrics" lists them.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = crate::api::openapi::tag::METRICS,
    responses((status = 200, description = "The metrics.", body = String, content_type = "application/openmetrics-text; version=1.0.0"))
)]
pub(super) async fn metrics(
    State(state): State<SharedState>,
    _who: crate::api::auth::Authenticated,
) -> Result<Response, crate::api::ApiError> {
    let text = state.telemetry.render(read_scrape(&state)).await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

/// Records every request's group, method, status and duration. Outermost, so that refusals by
/// the other layers (408, 413, a panic's 500) are counted too.
pub(super) async fn record_http(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let group = crate::telemetry::metrics::route_group(request.uri().path());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    state.telemetry.http_request(group, &method, response.status().as_u16(), started.elapsed());
    response
}

/// What the database and the OS know now.
async fn read_scrape(state: &AppState) -> Result<Scrape, StoreError> {
    let now = state.webhooks.clock.now_micros();
    let census = state.store.device_census().await?;
    let mut scrape = Scrape { devices_known: census.devices.len() as u64, ..Scrape::default() };
    let mut idle = Vec::with_capacity(census.devices.len());
    for device in &census.devices {
        if device.approval != adms_store::Approval::Approved {
            scrape.pending_approval += 1;
        } else {
            let slot = match device.presence {
                Presence::Online => 0,
                Presence::Offline => 1,
                _ => 2,
            };
            scrape.presence[slot] += 1;
        }
        // What this process saw and has not flushed yet is newer than the database's.
        let seen_here = state.devices.get(&device.sn).map_or(0, |entry| entry.last_seen());
        let last = device.last_activity_at.unwrap_or(0).max(seen_here);
        if last > 0 {
            idle.push((now - last).max(0) as f64 / 1e6);
        }
    }
    scrape.idle = HistogramSnapshot::idle(idle.into_iter());
    scrape.commands = state.store.command_census().await?;
    scrape.oldest_queued_age_secs = scrape.commands.oldest_queued_at.map_or(0.0, |at| (now - at).max(0) as f64 / 1e6);
    let backlog = state.store.delivery_backlog(now).await?;
    let endpoints = state.store.list_endpoints().await?;
    let uid_of = |id: i64| endpoints.iter().find(|e| e.id == id).map_or_else(|| id.to_string(), |e| e.uid.clone());
    scrape.endpoints = backlog
        .into_iter()
        .map(|b| EndpointGauge {
            endpoint: b.endpoint_uid,
            due: b.due,
            waiting: b.waiting,
            in_flight: b.in_flight,
            exhausted: b.exhausted,
            oldest_due_age_secs: b.oldest_due_at.map_or(0.0, |at| (now - at).max(0) as f64 / 1e6),
            oldest_pending_age_secs: b.oldest_pending_since.map_or(0.0, |at| (now - at).max(0) as f64 / 1e6),
            consecutive_failures: b.consecutive_failures,
            last_success_secs: b.last_success_at.map_or(0.0, |at| at as f64 / 1e6),
        })
        .collect();
    scrape.attempts = state
        .webhooks
        .metrics
        .attempts()
        .into_iter()
        .map(|((endpoint, outcome), count)| ((uid_of(endpoint), outcome), count))
        .collect();
    // A few small reads of /proc, off the async threads.
    scrape.process = tokio::task::spawn_blocking(metrics_process::collector::collect).await.unwrap_or_default();
    Ok(scrape)
}

/// The totals a summary is the difference of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    punches_stored: u64,
    punches_resent: u64,
    delivered: u64,
    failed: u64,
}

impl Totals {
    fn now(state: &SharedState) -> Totals {
        let writer = state.store.punch_writer().metrics();
        let (mut delivered, mut failed) = (0, 0);
        for ((_, outcome), n) in state.webhooks.metrics.attempts() {
            if outcome == "delivered" {
                delivered += n;
            } else {
                failed += n;
            }
        }
        Totals {
            punches_stored: writer.punches_stored.get(),
            punches_resent: writer.punches_resent.get(),
            delivered,
            failed,
        }
    }
}

/// Logs the summary every `[log] summary_secs` until `stop` (never when it is 0).
pub(super) async fn log_summaries(state: SharedState, stop: CancellationToken) {
    let period = Duration::from_secs(state.config.log.summary_secs);
    if period.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut before = Totals::now(&state);
    let mut since = state.webhooks.clock.now_micros();
    while crate::periodic::next_tick(&mut tick, &stop).await {
        let now = Totals::now(&state);
        let devices_seen = state.devices.seen_since(since);
        since = state.webhooks.clock.now_micros();
        tracing::info!(
            period_secs = period.as_secs(),
            devices_seen,
            punches_stored = now.punches_stored - before.punches_stored,
            punches_resent = now.punches_resent - before.punches_resent,
            deliveries_sent = now.delivered - before.delivered,
            deliveries_failed = now.failed - before.failed,
            "activity summary"
        );
        before = now;
    }
}
