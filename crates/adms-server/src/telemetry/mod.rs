//! What an operator watches, without the application state: logs (structured `tracing` to
//! stderr; stdout carries only the `listening on` line) and the metrics registry. The routes
//! that read the state (`/metrics`, `/healthz`, `/readyz`) and the summary line a minute are
//! the composition root's (`app::metrics`, `app::health`).

pub mod metrics;

pub use metrics::Telemetry;

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `RUST_LOG` overrides the configured filter. Colours only
/// when stderr is a terminal (a journal or a file gets plain text); `json` makes every line a
/// JSON object.
pub fn init(filter: &str, format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if format == "json" { builder.json().try_init() } else { builder.try_init() };
}
