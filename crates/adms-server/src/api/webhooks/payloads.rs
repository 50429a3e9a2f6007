//! The webhook bodies as schemas, for the `webhooks` section of the OpenAPI document
//! (`openapi::webhooks`). The bodies themselves are written by adms-store (`events`, and
//! `commands` for `command.completed`), byte for byte as they are stored and signed; these types
//! only describe them, and `tests/it/openapi.rs` checks real deliveries of every type against
//! them.
#![allow(dead_code, reason = "documentation only: adms-store writes the bodies")]

use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, Discriminator, OneOfBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};

/// The device an event is about.
#[derive(Debug, ToSchema)]
pub struct WebhookDevice {
    /// The serial number.
    sn: String,
    /// The name the operator gave it (`""` when none).
    alias: String,
    /// The IANA name or fixed offset (`+05:30`) its local times are read in.
    time_zone: String,
}

/// A punch state: the code the device sent and its meaning.
#[derive(Debug, ToSchema)]
pub struct WebhookPunchState {
    /// As sent (firmware also sends letters), e.g. `0`.
    code: String,
    /// `Check In`, `Check Out`, …; `Unknown` for a code without a meaning.
    name: String,
}

/// A verify mode: the code the device sent and its meaning.
#[derive(Debug, ToSchema)]
pub struct WebhookVerifyMode {
    code: i64,
    /// `Fingerprint`, `Card`, `Face`, …; `Other` for a code without a meaning.
    name: String,
}

/// How `utc_time` and the event's `timestamp` were found.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum WebhookTimeBasis {
    /// From the device's local time and zone.
    DeviceClock,
    /// The device's zone is unknown: `utc_time` is null and `timestamp` is the receive time.
    Received,
}

/// `attendance.punch`: one punch, as the device recorded it.
#[derive(Debug, ToSchema)]
pub struct WebhookPunchData {
    device: WebhookDevice,
    /// The device's punches are numbered 1, 2, 3, … without gaps, in arrival order.
    seq: i64,
    /// The user's PIN (leading zeros are significant).
    pin: String,
    /// Device-local `YYYY-MM-DD HH:MM:SS`.
    local_time: String,
    /// RFC 3339 UTC; null when the device's zone is unknown.
    utc_time: Option<String>,
    #[schema(inline)]
    time_basis: WebhookTimeBasis,
    punch_state: WebhookPunchState,
    verify_mode: WebhookVerifyMode,
    work_code: String,
    /// When the server received it (RFC 3339 UTC).
    received_at: String,
    /// The ATTLOG line as the device sent it.
    raw: String,
}

/// `device.registered`: the first request from a serial number never seen before.
#[derive(Debug, ToSchema)]
pub struct WebhookDeviceRegisteredData {
    device: WebhookDevice,
    /// `approved`, or `pending` (its data, events included, is held until an operator approves it).
    approval: String,
    /// `att` (attendance push) or `acc` (Security PUSH).
    protocol_family: String,
    /// The address its first request came from.
    ip_address: String,
}

/// `device.offline`: no request from the device for `offline_after_secs`.
#[derive(Debug, ToSchema)]
pub struct WebhookDeviceOfflineData {
    device: WebhookDevice,
    /// Its last request (RFC 3339 UTC).
    last_seen_at: String,
    /// `heartbeat_missed`.
    reason: String,
    /// Its highest punch `seq` so far: what it uploads after coming back continues from there.
    last_punch_seq: i64,
}

/// `device.online`: a device reported offline made a request again.
#[derive(Debug, ToSchema)]
pub struct WebhookDeviceOnlineData {
    device: WebhookDevice,
    /// The `timestamp` of its `device.offline` event.
    offline_since: String,
    /// Its first request after that (also the event's `timestamp`).
    back_at: String,
    last_punch_seq: i64,
}

/// `user.enrolled` / `user.updated`: a user as the device reported it in an OPERLOG `USER`
/// line. The password is never sent, only whether one is set.
#[derive(Debug, ToSchema)]
pub struct WebhookUserData {
    device: WebhookDevice,
    pin: String,
    /// Decoded in the device's text encoding.
    name: String,
    /// 0 user, 2 enroller, 6 administrator, 10 user-defined, 14 super administrator.
    privilege: Option<i64>,
    /// Digits, or `[8 hex]`.
    card: String,
    group: String,
    /// The user's access time-zone setting as the device sends it (not a clock zone).
    time_zone: String,
    has_password: bool,
}

/// `command.completed`: a queued command ended `succeeded`, `failed` or `expired`.
#[derive(Debug, ToSchema)]
pub struct WebhookCommandData {
    device: WebhookDevice,
    command_id: i64,
    /// The command's `type` (`user_upsert`, `reboot`, …).
    kind: String,
    /// The user it was about, when it was about one.
    pin: Option<String>,
    dedupe_key: Option<String>,
    /// `succeeded`, `failed` or `expired`.
    state: String,
    /// The device's `Return=`; null when it expired unanswered.
    return_code: Option<i64>,
    /// The return code's meaning, or why it expired.
    result: String,
    send_count: i64,
    /// RFC 3339 UTC, as the other instants.
    enqueued_at: String,
    /// Null when it was never delivered.
    sent_at: Option<String>,
    completed_at: String,
}

/// `access.event`: one real-time event of an access controller (`rtlog`).
#[derive(Debug, ToSchema)]
pub struct WebhookAccessEventData {
    device: WebhookDevice,
    /// The stored event's id.
    access_event_id: i64,
    /// The event's number in its controller's sequence: 1, 2, 3… in the order they were
    /// stored, with no gap (`GET /api/v1/devices/{sn}/access-events?after_seq=` reads it). Absent
    /// from events stored by 0.2.0 and earlier.
    seq: Option<i64>,
    /// The controller's wall-clock time, `YYYY-MM-DD HH:MM:SS`.
    local_time: String,
    /// The person, or null for an event without one.
    pin: Option<String>,
    /// The door (or aux input) number.
    door: Option<i64>,
    /// The controller's event code (locale-independent).
    event_code: Option<i64>,
    /// The code's English name (`Event <code>` for a code without one).
    event_name: String,
    /// `normal`, `error` (refusals, 20-99) or `alarm` (100-199).
    level: String,
    /// True for alarms (forced door, tamper, duress).
    alarm: bool,
    /// 0 in, 1 out.
    in_out: Option<i64>,
    /// The verify mode as the controller sent it.
    verify_type: String,
}

/// The envelope every event has (`id`, `type`, `timestamp`, `api_version`, `data`), one schema
/// per event type, with `type` its single value.
macro_rules! event_schema {
    ($(#[$doc:meta])* $name:ident, $type_name:ident, $word:literal, $data:ty) => {
        #[derive(Debug, ToSchema)]
        pub enum $type_name {
            #[schema(rename = $word)]
            Only,
        }

        $(#[$doc])*
        #[derive(Debug, ToSchema)]
        pub struct $name {
            /// The event id (`evt_` and 32 hex digits), also the `webhook-id` header: derived from
            /// the event's cause, so a re-sent or replayed event keeps it. Deduplicate on it.
            id: String,
            #[schema(inline)]
            r#type: $type_name,
            /// When the event happened (RFC 3339 UTC).
            timestamp: String,
            /// `1`.
            api_version: String,
            data: $data,
        }
    };
}

event_schema!(
    /// A new punch.
    AttendancePunchEvent, AttendancePunchType, "attendance.punch", WebhookPunchData
);
event_schema!(
    /// A serial number seen for the first time.
    DeviceRegisteredEvent, DeviceRegisteredType, "device.registered", WebhookDeviceRegisteredData
);
event_schema!(
    /// A device stopped making requests.
    DeviceOfflineEvent, DeviceOfflineType, "device.offline", WebhookDeviceOfflineData
);
event_schema!(
    /// A device reported offline is back.
    DeviceOnlineEvent, DeviceOnlineType, "device.online", WebhookDeviceOnlineData
);
event_schema!(
    /// A device reported a PIN for the first time.
    UserEnrolledEvent, UserEnrolledType, "user.enrolled", WebhookUserData
);
event_schema!(
    /// A stored field of a device's user changed.
    UserUpdatedEvent, UserUpdatedType, "user.updated", WebhookUserData
);
event_schema!(
    /// A queued command ended.
    CommandCompletedEvent, CommandCompletedType, "command.completed", WebhookCommandData
);
event_schema!(
    /// An access controller's real-time event.
    AccessEventEvent, AccessEventType, "access.event", WebhookAccessEventData
);

/// Every event schema: its event type, its schema name, and what it is.
pub const EVENTS: [(&str, &str, &str); 8] = [
    ("attendance.punch", "AttendancePunchEvent", "A new punch"),
    ("device.registered", "DeviceRegisteredEvent", "A serial number seen for the first time"),
    ("device.online", "DeviceOnlineEvent", "A device reported offline is back"),
    ("device.offline", "DeviceOfflineEvent", "A device stopped making requests"),
    ("user.enrolled", "UserEnrolledEvent", "A device reported a PIN for the first time"),
    ("user.updated", "UserUpdatedEvent", "A stored field of a device's user changed"),
    ("command.completed", "CommandCompletedEvent", "A queued command ended"),
    ("access.event", "AccessEventEvent", "An access controller's real-time event"),
];

/// The event type of a batch.
#[derive(Debug, ToSchema)]
pub enum BatchType {
    #[schema(rename = "batch")]
    Only,
}

/// What an endpoint with `batch_max` > 1 receives: up to `batch_max` events in one request,
/// each the event's own body, byte for byte.
#[derive(Debug, ToSchema)]
pub struct WebhookBatch {
    /// `bat_` and 32 hex digits, derived from the members' event ids in order; also the
    /// `webhook-id` header. A retry re-sends the same id and body.
    id: String,
    #[schema(inline)]
    r#type: BatchType,
    /// `1`.
    api_version: String,
    #[schema(schema_with = any_events)]
    data: Vec<()>,
}

/// A list of events of any type.
fn any_events() -> ArrayBuilder {
    ArrayBuilder::new().items(any_event())
}

/// One event of any type, told apart by `type` (the discriminator).
pub fn any_event() -> RefOr<Schema> {
    let mut one_of = OneOfBuilder::new();
    for (_, name, _) in EVENTS {
        one_of = one_of.item(Ref::from_schema_name(name));
    }
    let mapping = EVENTS.map(|(event_type, name, _)| (event_type, format!("#/components/schemas/{name}")));
    one_of = one_of.discriminator(Some(Discriminator::with_mapping("type", mapping)));
    RefOr::T(Schema::OneOf(one_of.build()))
}

/// Every schema the `webhooks` section refers to, by name.
pub fn schemas() -> Vec<(String, RefOr<Schema>)> {
    let mut all = Vec::new();
    fn add<T: ToSchema>(all: &mut Vec<(String, RefOr<Schema>)>) {
        T::schemas(all);
        all.push((T::name().into_owned(), T::schema()));
    }
    add::<AttendancePunchEvent>(&mut all);
    add::<DeviceRegisteredEvent>(&mut all);
    add::<DeviceOnlineEvent>(&mut all);
    add::<DeviceOfflineEvent>(&mut all);
    add::<UserEnrolledEvent>(&mut all);
    add::<UserUpdatedEvent>(&mut all);
    add::<CommandCompletedEvent>(&mut all);
    add::<AccessEventEvent>(&mut all);
    add::<WebhookBatch>(&mut all);
    all
}
