//! adms-bridge server: the only crate that knows HTTP.
//!
//! - [`device`]: `/iclock/*`, the ZKTeco push protocol.
//! - [`api`]: the ZKBio Time-compatible REST API and native `/api/v1/` routes.
//! - [`console`]: the operator console, HTML pages at `/ui/`.
//! - [`services`]: what both sides do the same way: queueing commands, roster sync.
//! - [`state`]: the application state they share.
//! - [`app`]: the composition root: startup, router and middleware, the accept loop,
//!   background work and graceful shutdown.
//! - [`config`]: layered configuration, validated at start.

pub mod api;
pub mod app;
pub mod auth;
pub mod capture;
pub mod client_addr;
pub mod config;
pub mod console;
pub mod device;
pub mod device_registry;
pub mod device_trust;
pub mod limits;
pub mod ordered_json;
pub mod periodic;
pub mod replies;
pub mod roles;
pub mod services;
pub mod signals;
pub mod state;
pub mod telemetry;
pub mod zones;

pub use app::{Application, StartupError, vault};
pub use config::Config;
pub use state::{AppState, SharedState};
