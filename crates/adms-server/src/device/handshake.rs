//! Handshakes and configuration: attendance `GET cdata?options=all`, Security PUSH
//! `registry` / `push` / `rtdata`.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;

use adms_protocol::query::DeviceQuery;
use adms_protocol::reply::{self, ServerSettings, Stamps};
use adms_store::{DeviceFacts, HandshakeUpdate, RawUpload, now_micros};

use super::{DeviceCtx, DeviceError, ok};
use crate::state::SharedState;

/// The push protocol version we implement (`protocol.md` §1).
pub const PUSH_PROTOCOL_VERSION: &str = "2.4.1";

fn settings<'a>(state: &'a SharedState, server_version: &'a str) -> ServerSettings<'a> {
    let c = &state.config;
    ServerSettings {
        error_delay_secs: c.devices.error_delay_secs,
        delay_secs: c.devices.delay_secs,
        trans_times: &c.devices.trans_times,
        trans_interval_min: c.devices.trans_interval_min,
        realtime: c.devices.realtime,
        server_version,
        server_name: &c.server_name,
        push_protocol_version: PUSH_PROTOCOL_VERSION,
    }
}

fn server_version() -> String {
    format!("{PUSH_PROTOCOL_VERSION} adms-bridge-{}", env!("CARGO_PKG_VERSION"))
}

/// Handshake: the device's settings and upload stamps.
///
/// `GET /iclock/cdata?SN=…&options=all`: the reply carries the server's settings (delays,
/// realtime, the time zone, the stamps of the tables already received). Access devices
/// (`DeviceType=acc`) get the Security PUSH form, or a bare `OK` asking them to register
/// first. `table=RemoteAtt` (a lookup of a user the device lacks) answers `NONE`.
#[utoipa::path(
    get,
    path = "/iclock/cdata",
    tag = crate::api::openapi::tag::DEVICE,
    security(()),
    params(crate::api::openapi::DeviceParams,
        ("options" = Option<String>, Query, description = "`all` for the handshake."),
        ("pushver" = Option<String>, Query, description = "The firmware's push protocol version."),
        ("language" = Option<String>, Query, description = "The device's language code."),
        ("DeviceType" = Option<String>, Query, description = "`acc` for access controllers (Security PUSH)."),
        ("table" = Option<String>, Query, description = "`RemoteAtt` for a remote-attendance lookup.")),
    responses(
        (status = 200, description = "The handshake reply (`GET OPTION FROM: <SN>` and its settings), `OK`, or `NONE`.", body = String, content_type = "text/plain"),
        (status = 400, description = "No valid `SN`: `ERROR: <reason>`.", body = String, content_type = "text/plain"),
    )
)]
pub async fn cdata_get(State(state): State<SharedState>, ctx: DeviceCtx) -> Result<Response, DeviceError> {
    let q = ctx.query();
    if is_remote_att(&q) {
        // Remote attendance: the device asks for a user it lacks; the roster is not served yet.
        return Ok(ok("NONE"));
    }
    let family = protocol_family(&q);
    let update = handshake_update(&q, &ctx.ip);
    if !ctx.handshake_stored {
        state.store.record_handshake(ctx.entry.id(), &update).await?;
    }
    ctx.entry.update(|d| {
        d.push_version = update.push_version.to_owned();
        d.language = update.language.to_owned();
        d.protocol_family = family.to_owned();
    });
    let device = ctx.entry.snapshot();
    let zone = state.zone_for(&device);
    let version = server_version();
    let settings = settings(&state, &version);
    tracing::info!(pushver = update.push_version, language = update.language, family, "handshake");
    if family == "acc" {
        // Security PUSH: a bare OK asks the device to register (POST /iclock/registry).
        if device.registry_code.is_empty() {
            return Ok(ok("OK"));
        }
        return Ok(ok(reply::security_push_config(&device.registry_code, &session_id(&device.sn), &settings, true)));
    }
    let stamps = Stamps {
        attlog: &device.attlog_stamp,
        operlog: &device.operlog_stamp,
        attphoto: &device.attphoto_stamp,
        biodata: &device.biodata_stamp,
    };
    Ok(ok(reply::handshake(&device.sn, stamps, &settings, zone.offset_now())))
}

/// `acc` for a Security PUSH access controller (`DeviceType=acc`), `att` otherwise.
pub(super) fn protocol_family(q: &DeviceQuery<'_>) -> &'static str {
    match q.device_type.as_deref() {
        Some(t) if t.trim().eq_ignore_ascii_case("acc") => "acc",
        _ => "att",
    }
}

/// A `GET cdata` that is a remote-attendance lookup, not a handshake.
pub(super) fn is_remote_att(q: &DeviceQuery<'_>) -> bool {
    q.table.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("RemoteAtt"))
}

/// What a handshake tells about the device.
pub(super) fn handshake_update<'a>(q: &'a DeviceQuery<'_>, ip: &'a str) -> HandshakeUpdate<'a> {
    HandshakeUpdate {
        push_version: q.pushver.as_deref().unwrap_or(""),
        language: q.language.as_deref().unwrap_or(""),
        device_type: q.device_type.as_deref().unwrap_or(""),
        protocol_family: protocol_family(q),
        ip_address: ip,
    }
}

fn session_id(sn: &str) -> String {
    let digest = adms_store::sha256(format!("adms-bridge-session:{sn}").as_bytes());
    hex::encode(&digest[..16])
}

/// Security PUSH registration.
///
/// Stores the device's parameters and answers a registry code (kept, so a re-registration gets
/// the same one).
#[utoipa::path(
    method(get, post),
    path = "/iclock/registry",
    tag = crate::api::openapi::tag::DEVICE,
    security(()),
    params(crate::api::openapi::DeviceParams),
    request_body(content = Option<String>, content_type = "text/plain", description = "The device parameters (`key=value` lines or comma-separated)."),
    responses(
        (status = 200, description = "`RegistryCode=<code>`.", body = String, content_type = "text/plain"),
        (status = 400, description = "No valid `SN`: `ERROR: <reason>`.", body = String, content_type = "text/plain"),
    )
)]
pub async fn registry(State(state): State<SharedState>, ctx: DeviceCtx, body: Bytes) -> Result<Response, DeviceError> {
    let options = super::upload::owned_options(&body);
    let mut code = ctx.entry.snapshot().registry_code;
    let new_code = code.is_empty().then(|| hex::encode(rand::random::<[u8; 8]>()));
    if let Some(c) = &new_code {
        code.clone_from(c);
    }
    let facts = DeviceFacts {
        info: (!options.is_empty()).then(|| super::upload::info_from_options(&options)),
        options,
        registry_code: new_code.clone(),
    };
    let raw = RawUpload {
        device_id: Some(ctx.entry.id()),
        sn: &ctx.sn,
        endpoint: "registry",
        table: "registry",
        query: &ctx.query,
        body: &body,
        received_at: now_micros(),
        // A handshake body of a known kind: kept beside its parsed form, never charged.
        quota: None,
    };
    state.store.store_device_facts(ctx.entry.id(), Some(&raw), &facts).await?;
    if new_code.is_some() {
        ctx.entry.update(|d| d.registry_code.clone_from(&code));
        tracing::info!("access device registered");
    }
    Ok(ok(reply::registry_code(&code)))
}

/// Security PUSH configuration download.
#[utoipa::path(
    method(get, post),
    path = "/iclock/push",
    tag = crate::api::openapi::tag::DEVICE,
    security(()),
    params(crate::api::openapi::DeviceParams),
    responses(
        (status = 200, description = "The configuration (`key=value` lines).", body = String, content_type = "text/plain"),
        (status = 400, description = "No valid `SN`: `ERROR: <reason>`.", body = String, content_type = "text/plain"),
    )
)]
pub async fn push_config(State(state): State<SharedState>, ctx: DeviceCtx) -> Result<Response, DeviceError> {
    let device = ctx.entry.snapshot();
    let version = server_version();
    Ok(ok(reply::security_push_config(
        &device.registry_code,
        &session_id(&device.sn),
        &settings(&state, &version),
        false,
    )))
}

/// Security PUSH clock sync.
#[utoipa::path(
    method(get, post),
    path = "/iclock/rtdata",
    tag = crate::api::openapi::tag::DEVICE,
    security(()),
    params(crate::api::openapi::DeviceParams,
        ("type" = Option<String>, Query, description = "`time` asks for the server's clock.")),
    responses(
        (status = 200, description = "`DateTime=<encoded>,ServerTZ=<offset>` for `type=time`, else `OK`.", body = String, content_type = "text/plain"),
        (status = 400, description = "No valid `SN`: `ERROR: <reason>`.", body = String, content_type = "text/plain"),
    )
)]
pub async fn rtdata(State(state): State<SharedState>, ctx: DeviceCtx) -> Result<Response, DeviceError> {
    let q = ctx.query();
    if q.kind.as_deref().is_some_and(|k| k.eq_ignore_ascii_case("time")) {
        let zone = state.zone_for(&ctx.entry.snapshot());
        return Ok(ok(reply::rtdata_time(zone.now_local(), zone.offset_now())));
    }
    Ok(ok("OK"))
}
