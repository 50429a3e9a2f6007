//! `/healthz` (the process answers) and `/readyz` (it can do its work: it is not draining for
//! shutdown, the database answers in time, its migrations are this binary's, and with the
//! `device` role the punch writer runs and the cross-process wake-up listens). No credentials: load balancers and orchestrators probe
//! them. Cheap: `/readyz` is two indexed reads.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::state::SharedState;

/// How long `/readyz` waits for the database before it answers 503.
pub const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

/// `/healthz`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    status: &'static str,
}

/// `/readyz`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    status: &'static str,
    /// This process's roles: `all`, or `device`, `api`, `worker` comma-separated.
    role: String,
    /// Why not ready (absent when ready): the first failed check.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// Every check: `ok` or what is wrong.
    checks: Checks,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Checks {
    /// `ok`, or `draining` once shutdown began (the listener still serves meanwhile).
    shutdown: String,
    /// The database answered `SELECT 1` within 2 s.
    database: String,
    /// Applied migrations match this binary's.
    migrations: String,
    /// The punch writer takes batches (`not used` without the `device` role).
    punch_writer: String,
    /// The wake-up of polling devices for commands queued by other processes listens
    /// (PostgreSQL: its `LISTEN` connection; `not used` without the `device` role).
    wake_ups: String,
}

/// The process is up.
///
/// Answers 200 as long as the process serves HTTP; says nothing about the database (see
/// `/readyz`). No credentials.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = crate::api::openapi::tag::METRICS,
    security(()),
    responses((status = 200, description = "The process is up.", body = Health))
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The server can do its work.
///
/// 200 when the process is not shutting down, the database answers within 2 s, its applied
/// migrations are exactly this binary's, and (with the `device` role) the punch writer runs and
/// the wake-up of polling devices listens (PostgreSQL: its `LISTEN` connection);
/// 503 with the reason otherwise. From a shutdown signal on, 503 `shutdown: draining` while
/// requests are still served for `drain_secs`, so a load balancer stops sending first. No
/// credentials.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = crate::api::openapi::tag::METRICS,
    security(()),
    responses(
        (status = 200, description = "Ready.", body = Readiness),
        (status = 503, description = "Not ready: `reason` says why.", body = Readiness),
    )
)]
pub async fn readyz(State(state): State<SharedState>) -> Response {
    let readiness = check(&state).await;
    let status = if readiness.reason.is_none() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(readiness)).into_response()
}

/// Runs every check; the first failure is the reason.
async fn check(state: &SharedState) -> Readiness {
    const OK: &str = "ok";
    const NOT_USED: &str = "not used";
    let shutdown = if state.draining.load(std::sync::atomic::Ordering::Relaxed) { "draining" } else { OK }.to_owned();
    let database = match state.store.ping(DATABASE_TIMEOUT).await {
        Ok(()) => OK.to_owned(),
        Err(error) => format!("{error}"),
    };
    // Without a database the migrations cannot be read: one reason is enough.
    let migrations = if database == OK {
        match state.store.migration_state().await {
            Ok(migrations) if migrations.is_current() => OK.to_owned(),
            Ok(migrations) => format!("migrations {migrations}"),
            Err(error) => format!("{error}"),
        }
    } else {
        "not checked: no database".to_owned()
    };
    let punch_writer = match (state.config.role.device, state.store.punch_writer().is_running()) {
        (false, _) => NOT_USED.to_owned(),
        (true, true) => OK.to_owned(),
        (true, false) => "stopped".to_owned(),
    };
    let wake_ups = match (state.config.role.device, state.wake_ups.load(std::sync::atomic::Ordering::Relaxed)) {
        (false, _) => NOT_USED.to_owned(),
        (true, true) => OK.to_owned(),
        (true, false) => "not listening".to_owned(),
    };
    let reason = [
        ("shutdown", &shutdown),
        ("database", &database),
        ("migrations", &migrations),
        ("punch writer", &punch_writer),
        ("wake-ups", &wake_ups),
    ]
    .into_iter()
    .find(|(_, outcome)| outcome.as_str() != OK && outcome.as_str() != NOT_USED)
    .map(|(name, outcome)| format!("{name}: {outcome}"));
    state.telemetry.note_readiness(reason.as_deref());
    Readiness {
        status: if reason.is_none() { "ready" } else { "unavailable" },
        role: state.config.role.to_string(),
        reason,
        checks: Checks { shutdown, database, migrations, punch_writer, wake_ups },
    }
}
