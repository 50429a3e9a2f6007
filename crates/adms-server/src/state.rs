//! The application state every handler, service and background task shares: built once by
//! [`crate::app`] (the composition root) and handed out as [`SharedState`].

use std::sync::Arc;

use adms_store::{Device, Store};
use adms_webhooks::{AddressPolicy, Clock, DeliveryMetrics, SecretKey, sealing};
use tokio::sync::Notify;

use crate::auth::AuthState;
use crate::config::Config;
use crate::device_registry::DeviceRegistry;
use crate::zones::{Zone, parse_zone};

/// Everything handlers share.
#[derive(Debug)]
pub struct AppState {
    pub store: Store,
    pub config: Config,
    pub devices: DeviceRegistry,
    /// The earliest accepted punch time (`punch_time_min`, validated at start).
    pub punch_window_start: adms_protocol::LocalDateTime,
    /// Which devices are trusted: approval of new serial numbers, allowed addresses,
    /// registration limits.
    pub trust: crate::device_trust::DeviceTrust,
    /// Zone for devices without their own setting; sent to devices in the handshake.
    pub default_zone: Zone,
    /// Zone the API shows server-side times (`upload_time`, `last_activity`) in.
    pub display_zone: Zone,
    pub auth: AuthState,
    pub webhooks: WebhookRuntime,
    /// How polls hand out, re-send and expire queued commands.
    pub commands: adms_store::CommandPolicy,
    /// The OpenAPI document and the docs page, rendered when the router is built (from the
    /// routes it registers) and read only by the two documentation routes. Kept here rather
    /// than in a request extension, which every device request would have paid for.
    pub documents: std::sync::OnceLock<Documents>,
    /// Daily quota refusals (counter and log-once state).
    pub quotas: crate::limits::QuotaGuard,
    /// `/metrics`: the registry and what handlers record in it.
    pub telemetry: crate::telemetry::Telemetry,
    /// Set when shutdown begins: `/readyz` answers 503 while requests are still served.
    pub draining: std::sync::atomic::AtomicBool,
    /// Cancelled when shutdown begins (with `draining`): answers that would never end by
    /// themselves (the console's live stream) end on it, so they do not hold the graceful
    /// shutdown open, and the browser reconnects to a replica that is not stopping.
    pub stopping: tokio_util::sync::CancellationToken,
    /// The cross-replica wake-up of polling devices listens (PostgreSQL: its `LISTEN`
    /// connection is up); cleared while it fails, for `/readyz`.
    pub wake_ups: std::sync::atomic::AtomicBool,
    /// Device traffic recorded as session scripts (`[capture] dir`); `None` when off.
    pub capture: Option<std::sync::Arc<crate::capture::Capture>>,
}

/// What the webhook side shares with handlers.
#[derive(Debug)]
pub struct WebhookRuntime {
    /// The dispatcher's clock (movable only with `test_clock`).
    pub clock: Arc<Clock>,
    /// Wakes the dispatcher when new deliveries were committed.
    pub wake: Arc<Notify>,
    pub address_policy: AddressPolicy,
    /// What this process's dispatcher did, for `/metrics`.
    pub metrics: Arc<DeliveryMetrics>,
    /// Seals new signing secrets at rest (and opens them to sign); `None`: stored as `whsec_` text.
    pub secret_key: Option<SecretKey>,
}

impl WebhookRuntime {
    /// A new signing secret in the form it is stored.
    pub fn conceal(&self, endpoint_uid: &str, secret: &str) -> String {
        sealing::conceal(self.secret_key.as_ref(), endpoint_uid, secret)
    }
}

pub type SharedState = Arc<AppState>;

/// What the two documentation routes serve (`/api/openapi.json`, `/api/docs/`), rendered once
/// by `api::openapi::render_documents` when the router is built.
#[derive(Debug, Clone)]
pub struct Documents {
    pub openapi_json: Arc<str>,
    pub docs_page: Arc<str>,
}

impl AppState {
    /// How far what `device` reports about its users may reach the roster: only an approved
    /// device is ever adopted from, under the operator's `device_users` policy.
    pub fn adoption_for(&self, device: &Device) -> adms_store::AdoptionPolicy {
        if device.approval != adms_store::Approval::Approved {
            return adms_store::AdoptionPolicy::default();
        }
        adms_store::AdoptionPolicy {
            adoption: self.config.devices.users.adoption(),
            allow_admin: self.config.devices.users_allow_admin,
        }
    }

    /// The zone a device's wall-clock times are read in.
    pub fn zone_for(&self, device: &Device) -> Zone {
        device.time_zone.as_deref().and_then(parse_zone).unwrap_or_else(|| self.default_zone.clone())
    }
}
