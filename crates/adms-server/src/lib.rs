//! adms-bridge server: the only crate that knows HTTP.
//!
//! - [`device`]: `/iclock/*`, the ZKTeco push protocol.
//! - [`api`]: the ZKBio Time-compatible REST API and native `/api/v1/` routes.
//! - [`app`]: state, router, middleware, startup and graceful shutdown.
//! - [`config`]: layered configuration, validated at start.
//! - [`roster`]: roster changes planned for terminals and handed to the command queue.

pub mod api;
pub mod app;
pub mod config;
pub mod device;
pub mod limits;
pub mod roster;
pub mod telemetry;
pub mod vault;
pub mod zones;

pub use app::{AppState, Application, SharedState, StartupError};
pub use config::Config;
