//! The device side: `/iclock/*` as ZKTeco push firmware expects it.
//!
//! Every reply is `text/plain` with an exact length and a GMT `Date` header (the terminal sets
//! its clock from it). Paths are normalised before routing (`.aspx`, doubled and trailing
//! slashes, case), see [`crate::app::normalize_path`].

pub mod commands;
mod handshake;
mod poll;
pub mod presence;
mod upload;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use adms_protocol::query::DeviceQuery;
use adms_store::{NewDevice, QuotaKind, StoreError};

use crate::api::openapi::DocumentedRoutes;
use crate::device_registry::DeviceEntry;
use crate::state::SharedState;

/// The device protocol's routes, each documented by its handler's `#[utoipa::path]` (see
/// [`crate::api::openapi`]).
pub fn routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::new()
        .public(routes!(handshake::cdata_get, upload::cdata_post))
        .public(routes!(upload::edata_post))
        .public(routes!(poll::getrequest))
        .public(routes!(poll::devicecmd, poll::devicecmd_ping))
        .public(routes!(poll::ping))
        .public(routes!(handshake::registry))
        .public(routes!(handshake::push_config))
        .public(routes!(handshake::rtdata))
        .public(routes!(upload::querydata, poll::querydata_ping))
        .public(routes!(upload::fdata))
        .public(routes!(upload::exchange))
        .public(routes!(upload::unrecognised))
}

pub use crate::replies::{ok, reply, reply_bytes};

/// Why a device request failed. Client errors are answered 4xx and logged with the SN; storage
/// errors are answered 503 so the device keeps the data and retries.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{0}")]
    BadRequest(String),
    /// Refused by the trust rules (`device_networks`): nothing is stored.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Too many new serial numbers from one address (`device_registrations_per_minute`).
    #[error("{0}")]
    TooManyRegistrations(&'static str),
    /// The device passed its daily quota of this kind: nothing of the request stored.
    #[error("daily quota exceeded")]
    QuotaExceeded(QuotaKind),
    /// A streamed body passed `max_body_bytes` (the limit).
    #[error("body too large")]
    BodyTooLarge(usize),
    #[error("storage unavailable: {0}")]
    Store(#[source] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for DeviceError {
    fn from(error: StoreError) -> Self {
        match error {
            // A refusal, not a failure: 413, which the device does not retry at once.
            StoreError::QuotaExceeded(kind) => DeviceError::QuotaExceeded(kind),
            error => DeviceError::Store(error),
        }
    }
}

impl IntoResponse for DeviceError {
    fn into_response(self) -> Response {
        match self {
            DeviceError::BadRequest(message) => {
                tracing::warn!(%message, "bad device request");
                reply(StatusCode::BAD_REQUEST, format!("ERROR: {message}"))
            }
            DeviceError::Forbidden(message) => {
                tracing::warn!(message, "device request refused");
                reply(StatusCode::FORBIDDEN, format!("ERROR: {message}"))
            }
            DeviceError::TooManyRegistrations(message) => {
                tracing::warn!(message, "device registration refused");
                let mut response = reply(StatusCode::TOO_MANY_REQUESTS, format!("ERROR: {message}"));
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
                response
            }
            DeviceError::QuotaExceeded(kind) => {
                // Counted and logged by the handler, which knows the device and the quota.
                let what = match kind {
                    QuotaKind::Raw => "raw uploads",
                    QuotaKind::Photo => "photos",
                };
                let mut response =
                    reply(StatusCode::PAYLOAD_TOO_LARGE, format!("ERROR: daily quota for {what} exceeded"));
                response.extensions_mut().insert(crate::limits::Explained);
                response
            }
            DeviceError::BodyTooLarge(limit) => {
                tracing::warn!(limit, "streamed request body over max_body_bytes refused with 413");
                crate::limits::body_too_large_reply(limit)
            }
            DeviceError::Store(error) => {
                tracing::error!(%error, "device request not stored; the device will resend");
                reply(StatusCode::SERVICE_UNAVAILABLE, "ERROR: storage unavailable, retry later")
            }
            DeviceError::Internal(message) => {
                tracing::error!(%message, "device request failed");
                reply(StatusCode::INTERNAL_SERVER_ERROR, "ERROR: internal error, retry later")
            }
        }
    }
}

/// An identified device request: validated SN, the device entry (registered on first contact),
/// the raw query and the peer address.
#[derive(Debug)]
pub struct DeviceCtx {
    pub entry: Arc<DeviceEntry>,
    pub sn: String,
    pub query: String,
    pub ip: String,
    /// This request is a handshake that registered the device, and its facts were stored with
    /// the new row: the handshake needs no write of its own.
    pub handshake_stored: bool,
}

impl DeviceCtx {
    pub fn query(&self) -> DeviceQuery<'_> {
        DeviceQuery::parse(&self.query)
    }
}

impl FromRequestParts<SharedState> for DeviceCtx {
    type Rejection = DeviceError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default().to_owned();
        let q = DeviceQuery::parse(&query);
        let sn = q.serial().map_err(|e| DeviceError::BadRequest(e.to_string()))?.to_owned();
        let family = handshake::protocol_family(&q);
        let is_handshake = parts.method == axum::http::Method::GET
            && parts.uri.path().ends_with("/cdata")
            && !handshake::is_remote_att(&q);
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
        if !state.trust.address_allowed(peer) {
            return Err(DeviceError::Forbidden("device address not allowed"));
        }
        let ip = peer.map(|ip| ip.to_string()).unwrap_or_default();
        drop(q);
        let (entry, registered) = match state.devices.load(&state.store, &sn).await? {
            Some(entry) => (entry, false),
            None => {
                // Only a serial number never seen before costs a registration.
                if !state.trust.admit_registration(peer) {
                    return Err(DeviceError::TooManyRegistrations(
                        "too many new devices from this address, retry later",
                    ));
                }
                let q = DeviceQuery::parse(&query);
                let new = NewDevice {
                    sn: &sn,
                    approval: Some(state.trust.approval_for_new(&sn, peer, &query)),
                    protocol_family: family,
                    ip_address: &ip,
                    default_time_zone: &state.default_zone.name,
                    // A first contact is usually the handshake: stored with the row, one commit.
                    handshake: is_handshake.then(|| handshake::handshake_update(&q, &ip)),
                };
                state.devices.register(&state.store, &new).await?
            }
        };
        if registered {
            state.webhooks.wake.notify_one();
            // A new terminal (or one replacing another) gets its area's roster.
            crate::services::roster::sync_terminal_logged(state, entry.id()).await;
        }
        let now = state.webhooks.clock.now_micros();
        entry.touch(&ip, now);
        if entry.take_reported_offline() {
            presence::seen_again(state, &entry, now).await;
        }
        Ok(DeviceCtx { entry, sn, query, ip, handshake_stored: registered && is_handshake })
    }
}
