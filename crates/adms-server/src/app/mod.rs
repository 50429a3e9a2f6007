//! The composition root: builds the application state ([`startup`]), serves it ([`serve`])
//! through the router ([`router`]) with its background work ([`tasks`]), and stops it.
//!
//! `Application::build` binds the listener (so tests can use `127.0.0.1:0` and read the port),
//! `run_until_stopped` serves until the shutdown future resolves, then drains in-flight requests
//! and background work, and flushes device activity.

mod capture;
mod health;
mod metrics;
mod router;
mod secrets;
mod serve;
mod startup;
mod tasks;
pub mod vault;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tower::Layer as _;
use tower::util::MapRequestLayer;

pub use router::{normalize_path, router};
pub use secrets::{Rekeyed, rekey_stored_secrets};
pub use startup::StartupError;

use crate::device_registry::flush_activity;
use crate::state::SharedState;

/// A built server, bound and ready to run.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: SharedState,
}

impl Application {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// Serves until `shutdown` resolves; then finishes in-flight requests, stops the background
    /// work (each loop ends its current pass) and flushes activity.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let state = self.state.clone();
        // Checked when the configuration was loaded; read before anything is spawned.
        let proxies = crate::client_addr::TrustedProxies::new(
            crate::config::networks("http.trusted_proxies", &state.config.http.trusted_proxies)
                .map_err(std::io::Error::other)?,
        );
        // The device side's wake-up watch (PostgreSQL: its `LISTEN` connection), up before the
        // first request so `/readyz` counts it from the start.
        let wake_ups = if state.config.role.device {
            Some(state.store.watch_queued_commands().await.map_err(std::io::Error::other)?)
        } else {
            None
        };
        let background = tasks::Background::start(&state, wake_ups)?;
        let service = MapRequestLayer::new(normalize_path).layer(router(state.clone()));
        let header_timeout = Duration::from_secs(state.config.http.header_read_timeout_secs);
        let drained = drain(state.clone(), shutdown);
        let result = serve::serve(self.listener, service, header_timeout, proxies, drained).await;
        background.stop(&state).await;
        if let Err(error) = flush_activity(&state.devices, &state.store).await {
            tracing::warn!(%error, "final device activity flush failed");
        }
        state.store.close().await;
        if let Some(capture) = state.capture.clone() {
            // What devices said last is what a field problem needs most: give the writer a
            // moment to finish the queue (off the runtime; it never holds the stop up longer).
            let _ = tokio::task::spawn_blocking(move || capture.wait_until_written(Duration::from_secs(5))).await;
        }
        tracing::info!("server stopped");
        result
    }
}

/// Resolves `drain_secs` after `shutdown` did, `/readyz` answering 503 meanwhile while every
/// request is still served: a load balancer's health check takes the replica out before its
/// listener closes. A second Ctrl-C (or SIGTERM) ends the wait.
async fn drain(state: SharedState, shutdown: impl Future<Output = ()> + Send + 'static) {
    shutdown.await;
    let drain_for = Duration::from_secs(state.config.http.drain_secs);
    // Listening before `/readyz` says draining: a second signal sent once it does is not missed.
    let second = if drain_for.is_zero() { None } else { crate::signals::StopSignals::listen().ok() };
    state.draining.store(true, std::sync::atomic::Ordering::Relaxed);
    // Endless answers (the console's live stream) end now, while requests are still served:
    // their browsers reconnect elsewhere, and the listener's close does not wait for them.
    state.stopping.cancel();
    if drain_for.is_zero() {
        return;
    }
    tracing::info!(drain_secs = drain_for.as_secs(), "draining: /readyz answers 503; requests are still served");
    let second_signal = async {
        match second {
            Some(mut signals) => signals.recv().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = tokio::time::sleep(drain_for) => {}
        () = second_signal => tracing::info!("second shutdown signal: drain cut short"),
    }
}
