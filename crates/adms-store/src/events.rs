//! Webhook events: their deterministic ids and canonical JSON bodies.
//!
//! A body is built once, when its event row is inserted, and stored; every delivery, retry and
//! replay sends those stored bytes. Field order is fixed by the structs below, so the same
//! cause always produces the same bytes.

use adms_protocol::labels;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Event types, as they appear in `type` and in endpoint filters: the words of
/// [`adms_model::EventType`], as string constants for the code that still passes them as text.
pub mod event_type {
    use adms_model::EventType;

    pub const ATTENDANCE_PUNCH: &str = EventType::AttendancePunch.as_str();
    pub const DEVICE_REGISTERED: &str = EventType::DeviceRegistered.as_str();
    pub const DEVICE_ONLINE: &str = EventType::DeviceOnline.as_str();
    pub const DEVICE_OFFLINE: &str = EventType::DeviceOffline.as_str();
    pub const USER_ENROLLED: &str = EventType::UserEnrolled.as_str();
    pub const USER_UPDATED: &str = EventType::UserUpdated.as_str();
    pub const COMMAND_COMPLETED: &str = EventType::CommandCompleted.as_str();
    pub const ACCESS_EVENT: &str = EventType::AccessEvent.as_str();
    /// Every type an endpoint can subscribe to.
    pub const ALL: [&str; 8] = [
        ATTENDANCE_PUNCH,
        DEVICE_REGISTERED,
        DEVICE_ONLINE,
        DEVICE_OFFLINE,
        USER_ENROLLED,
        USER_UPDATED,
        COMMAND_COMPLETED,
        ACCESS_EVENT,
    ];
}

/// Version of the payload shapes; bumped only for incompatible changes.
pub const API_VERSION: &str = "1";

/// `evt_` + 32 hex digits of SHA-256 over the parts, separated by a byte no part can contain
/// (device text with control characters is rejected before it gets here). Contains no `.`,
/// which Standard Webhooks forbids in ids.
pub fn event_id(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hash.update([0x1f]);
        }
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    format!("evt_{}", hex::encode(&digest[..16]))
}

/// The id of a punch's event: its natural key with the device SN (not the database id, so a
/// restored or migrated database derives the same ids).
pub fn punch_event_id(sn: &str, pin: &str, local_time: &str, state: &str, verify: u16, work_code: &str) -> String {
    let verify = verify.to_string();
    event_id(&[event_type::ATTENDANCE_PUNCH, sn, pin, local_time, state, &verify, work_code])
}

/// RFC 3339 UTC text for Unix microseconds (`2026-11-20T08:00:00Z`, fractions only when present).
pub fn rfc3339_micros(micros: i64) -> String {
    jiff::Timestamp::from_microsecond(micros).map(|t| t.to_string()).unwrap_or_default()
}

/// RFC 3339 UTC text for Unix seconds.
pub fn rfc3339_seconds(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds).map(|t| t.to_string()).unwrap_or_default()
}

#[derive(Debug, Serialize)]
struct Envelope<'a, T> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    /// When the event happened (for punches: the punch instant, or the receive time when the
    /// device's zone is unknown; `data.time_basis` says which).
    timestamp: String,
    api_version: &'static str,
    data: T,
}

/// The device as events describe it.
#[derive(Debug, Clone, Serialize)]
pub struct EventDevice<'a> {
    pub sn: &'a str,
    pub alias: &'a str,
    /// IANA name or fixed offset the device's local times are read in.
    pub time_zone: &'a str,
}

#[derive(Debug, Serialize)]
struct Coded<'a, C> {
    code: C,
    name: &'a str,
}

#[derive(Debug, Serialize)]
struct PunchData<'a> {
    device: EventDevice<'a>,
    seq: i64,
    pin: &'a str,
    local_time: &'a str,
    utc_time: Option<String>,
    /// `device_clock` when `utc_time` comes from the device time and zone; `received` when the
    /// zone is unknown and `timestamp` is the receive time.
    time_basis: &'static str,
    punch_state: Coded<'a, &'a str>,
    verify_mode: Coded<'a, u16>,
    work_code: &'a str,
    received_at: String,
    raw: &'a str,
}

/// What a punch event says.
#[derive(Debug, Clone)]
pub struct PunchEvent<'a> {
    pub event_id: &'a str,
    pub device: EventDevice<'a>,
    pub seq: i64,
    pub pin: &'a str,
    pub local_time: &'a str,
    pub utc_time: Option<i64>,
    pub state: &'a str,
    pub verify: u16,
    pub work_code: &'a str,
    pub received_at: i64,
    pub raw_line: &'a str,
}

impl PunchEvent<'_> {
    /// The instant the event happened, Unix microseconds (the receive time when unknown).
    pub fn occurred_at(&self) -> i64 {
        self.utc_time.map_or(self.received_at, |s| s.saturating_mul(1_000_000))
    }

    /// The canonical body.
    pub fn body(&self) -> Vec<u8> {
        let utc_time = self.utc_time.map(rfc3339_seconds);
        let envelope = Envelope {
            id: self.event_id,
            event_type: event_type::ATTENDANCE_PUNCH,
            timestamp: utc_time.clone().unwrap_or_else(|| rfc3339_micros(self.received_at)),
            api_version: API_VERSION,
            data: PunchData {
                device: self.device.clone(),
                seq: self.seq,
                pin: self.pin,
                local_time: self.local_time,
                time_basis: if utc_time.is_some() { "device_clock" } else { "received" },
                utc_time,
                punch_state: Coded { code: self.state, name: labels::punch_state(self.state) },
                verify_mode: Coded { code: self.verify, name: labels::verify_type(i64::from(self.verify)) },
                work_code: self.work_code,
                received_at: rfc3339_micros(self.received_at),
                raw: self.raw_line,
            },
        };
        serde_json::to_vec(&envelope).unwrap_or_default()
    }
}

/// A device or roster event body: the envelope around any serialisable `data`.
pub fn event_body<T: Serialize>(event_id: &str, event_type: &str, occurred_at: i64, data: &T) -> Vec<u8> {
    let envelope =
        Envelope { id: event_id, event_type, timestamp: rfc3339_micros(occurred_at), api_version: API_VERSION, data };
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// The `type` of a batched request's body.
pub const BATCH_TYPE: &str = "batch";

/// The webhook-id of a batch: `bat_` + 32 hex digits of SHA-256 over its members' event ids in
/// body order. The same members always give the same id, and different members a different one.
pub fn batch_id<'a>(member_event_ids: impl IntoIterator<Item = &'a str>) -> String {
    let mut hash = Sha256::new();
    hash.update(BATCH_TYPE.as_bytes());
    for id in member_event_ids {
        hash.update([0x1f]);
        hash.update(id.as_bytes());
    }
    format!("bat_{}", hex::encode(&hash.finalize()[..16]))
}

/// The body of a batched request: `{"id":…,"type":"batch","api_version":"1","data":[…]}`, where
/// `data` holds each member's stored body byte for byte, in the order given. Built by
/// concatenation, not re-serialisation, so every member is exactly what it would be on its own
/// (and what it is signed as, should it ever travel alone).
pub fn batch_body<'a>(batch_id: &str, member_bodies: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let head = serde_json::to_vec(&batch_id).unwrap_or_default();
    let mut body = Vec::with_capacity(1024);
    body.extend_from_slice(b"{\"id\":");
    body.extend_from_slice(&head);
    body.extend_from_slice(b",\"type\":\"batch\",\"api_version\":\"");
    body.extend_from_slice(API_VERSION.as_bytes());
    body.extend_from_slice(b"\",\"data\":[");
    for (i, member) in member_bodies.into_iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(member);
    }
    body.extend_from_slice(b"]}");
    body
}

/// The id of a device's `device.registered` event: one per serial number, ever.
pub fn device_registered_event_id(sn: &str) -> String {
    event_id(&[event_type::DEVICE_REGISTERED, sn])
}

/// The id of a `device.offline` (`at` = when the device was last seen) or `device.online`
/// (`at` = when it was seen again) event: one per transition.
pub fn device_presence_event_id(event_type: &str, sn: &str, at_micros: i64) -> String {
    event_id(&[event_type, sn, &at_micros.to_string()])
}

/// The id of a `user.enrolled` event: one per user of a device.
pub fn user_enrolled_event_id(sn: &str, pin: &str) -> String {
    event_id(&[event_type::USER_ENROLLED, sn, pin])
}

/// The id of a `user.updated` event: the user's change count and a digest of its new values, so
/// the same change processed twice is one event, and a later change back and forth is another.
pub fn user_updated_event_id(sn: &str, pin: &str, revision: i64, values_sha256_hex: &str) -> String {
    event_id(&[event_type::USER_UPDATED, sn, pin, &revision.to_string(), values_sha256_hex])
}

/// Why a device is reported offline.
pub const OFFLINE_HEARTBEAT_MISSED: &str = "heartbeat_missed";

/// `device.registered`: a serial number seen for the first time.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRegisteredData<'a> {
    pub device: EventDevice<'a>,
    /// `approved`, or `pending` (its data, events included, is held until an operator approves it).
    pub approval: &'a str,
    /// `att` (attendance push) or `acc` (Security PUSH).
    pub protocol_family: &'a str,
    /// The address its first request came from.
    pub ip_address: &'a str,
}

/// `device.offline`: no request from the device for `offline_after_secs`.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceOfflineData<'a> {
    pub device: EventDevice<'a>,
    /// The device's last request (RFC 3339).
    pub last_seen_at: String,
    pub reason: &'a str,
    /// Its highest punch `seq` so far: what it uploads after coming back continues from there.
    pub last_punch_seq: i64,
}

/// `device.online`: a device reported offline made a request again.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceOnlineData<'a> {
    pub device: EventDevice<'a>,
    /// When it was reported offline (the `timestamp` of its `device.offline` event).
    pub offline_since: String,
    /// Its first request after that.
    pub back_at: String,
    pub last_punch_seq: i64,
}

/// `user.enrolled` / `user.updated`: a user as the device reported it in an OPERLOG `USER` line.
/// The password is never sent, only whether one is set.
#[derive(Debug, Clone, Serialize)]
pub struct UserData<'a> {
    pub device: EventDevice<'a>,
    pub pin: &'a str,
    /// Decoded in the device's text encoding.
    pub name: &'a str,
    pub privilege: Option<i64>,
    pub card: &'a str,
    pub group: &'a str,
    /// The user's access time-zone setting as the device sends it (not a clock zone).
    pub time_zone: &'a str,
    pub has_password: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punch_ids_follow_the_natural_key_only() {
        let a = punch_event_id("SN1", "016", "2026-11-20 08:00:00", "0", 1, "");
        assert_eq!(a, punch_event_id("SN1", "016", "2026-11-20 08:00:00", "0", 1, ""));
        assert_eq!(a.len(), 4 + 32);
        assert!(a.starts_with("evt_") && !a.contains('.'));
        for other in [
            punch_event_id("SN2", "016", "2026-11-20 08:00:00", "0", 1, ""),
            punch_event_id("SN1", "16", "2026-11-20 08:00:00", "0", 1, ""),
            punch_event_id("SN1", "016", "2026-11-20 08:00:01", "0", 1, ""),
            punch_event_id("SN1", "016", "2026-11-20 08:00:00", "1", 1, ""),
            punch_event_id("SN1", "016", "2026-11-20 08:00:00", "0", 15, ""),
            punch_event_id("SN1", "016", "2026-11-20 08:00:00", "0", 1, "0"),
            // the separator keeps field boundaries: "01"+"6" is not "0"+"16"
            punch_event_id("SN1", "01", "62026-11-20 08:00:00", "0", 1, ""),
        ] {
            assert_ne!(a, other);
        }
    }

    #[test]
    fn batch_ids_and_bodies_follow_the_members() {
        let a = batch_id(["evt_1", "evt_2"]);
        assert_eq!(a, batch_id(["evt_1", "evt_2"]));
        assert!(a.starts_with("bat_") && a.len() == 4 + 32 && !a.contains('.'));
        assert_ne!(a, batch_id(["evt_2", "evt_1"]), "order is part of the batch");
        assert_ne!(a, batch_id(["evt_1"]));
        assert_ne!(batch_id(["evt_1", "evt_23"]), batch_id(["evt_12", "evt_3"]));
        let members: [&[u8]; 2] = [br#"{"id":"evt_1","n":1}"#, br#"{"id":"evt_2","n":[2]}"#];
        let body = batch_body(&a, members);
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            format!(
                r#"{{"id":"{a}","type":"batch","api_version":"1","data":[{{"id":"evt_1","n":1}},{{"id":"evt_2","n":[2]}}]}}"#
            )
        );
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["data"][1]["n"][0], 2);
    }

    #[test]
    fn punch_body_shape() {
        let event = PunchEvent {
            event_id: "evt_x",
            device: EventDevice { sn: "SN1", alias: "Gate A", time_zone: "+05:30" },
            seq: 7,
            pin: "016",
            local_time: "2026-11-20 08:00:00",
            utc_time: Some(1_795_141_800),
            state: "255",
            verify: 15,
            work_code: "",
            received_at: 1_795_141_801_500_000,
            raw_line: "016\t2026-11-20 08:00:00\t255\t15",
        };
        let body = String::from_utf8(event.body()).unwrap();
        assert_eq!(
            body,
            r#"{"id":"evt_x","type":"attendance.punch","timestamp":"2026-11-20T02:30:00Z","api_version":"1","data":{"device":{"sn":"SN1","alias":"Gate A","time_zone":"+05:30"},"seq":7,"pin":"016","local_time":"2026-11-20 08:00:00","utc_time":"2026-11-20T02:30:00Z","time_basis":"device_clock","punch_state":{"code":"255","name":"Unknown"},"verify_mode":{"code":15,"name":"Face"},"work_code":"","received_at":"2026-11-20T02:30:01.5Z","raw":"016\t2026-11-20 08:00:00\t255\t15"}}"#
        );
        let unknown_zone = PunchEvent { utc_time: None, ..event };
        let body: serde_json::Value = serde_json::from_slice(&unknown_zone.body()).unwrap();
        assert_eq!(body["timestamp"], "2026-11-20T02:30:01.5Z");
        assert_eq!(body["data"]["time_basis"], "received");
        assert_eq!(body["data"]["utc_time"], serde_json::Value::Null);
    }

    #[test]
    fn device_and_roster_body_shapes() {
        let device = EventDevice { sn: "SN1", alias: "Gate A", time_zone: "+05:30" };
        let at = 1_795_141_800_000_000;
        let registered = DeviceRegisteredData {
            device: device.clone(),
            approval: "approved",
            protocol_family: "att",
            ip_address: "10.0.0.5",
        };
        assert_eq!(
            String::from_utf8(event_body("evt_r", event_type::DEVICE_REGISTERED, at, &registered)).unwrap(),
            r#"{"id":"evt_r","type":"device.registered","timestamp":"2026-11-20T02:30:00Z","api_version":"1","data":{"device":{"sn":"SN1","alias":"Gate A","time_zone":"+05:30"},"approval":"approved","protocol_family":"att","ip_address":"10.0.0.5"}}"#
        );
        let offline = DeviceOfflineData {
            device: device.clone(),
            last_seen_at: rfc3339_micros(at - 30_500_000),
            reason: OFFLINE_HEARTBEAT_MISSED,
            last_punch_seq: 18234,
        };
        assert_eq!(
            String::from_utf8(event_body("evt_f", event_type::DEVICE_OFFLINE, at, &offline)).unwrap(),
            r#"{"id":"evt_f","type":"device.offline","timestamp":"2026-11-20T02:30:00Z","api_version":"1","data":{"device":{"sn":"SN1","alias":"Gate A","time_zone":"+05:30"},"last_seen_at":"2026-11-20T02:29:29.5Z","reason":"heartbeat_missed","last_punch_seq":18234}}"#
        );
        let online = DeviceOnlineData {
            device: device.clone(),
            offline_since: rfc3339_micros(at),
            back_at: rfc3339_micros(at + 600_000_000),
            last_punch_seq: 18234,
        };
        assert_eq!(
            String::from_utf8(event_body("evt_n", event_type::DEVICE_ONLINE, at + 600_000_000, &online)).unwrap(),
            r#"{"id":"evt_n","type":"device.online","timestamp":"2026-11-20T02:40:00Z","api_version":"1","data":{"device":{"sn":"SN1","alias":"Gate A","time_zone":"+05:30"},"offline_since":"2026-11-20T02:30:00Z","back_at":"2026-11-20T02:40:00Z","last_punch_seq":18234}}"#
        );
        let user = UserData {
            device,
            pin: "016",
            name: "José",
            privilege: Some(0),
            card: "[15CD5B07]",
            group: "1",
            time_zone: "0000000100000000",
            has_password: true,
        };
        assert_eq!(
            String::from_utf8(event_body("evt_u", event_type::USER_ENROLLED, at, &user)).unwrap(),
            r#"{"id":"evt_u","type":"user.enrolled","timestamp":"2026-11-20T02:30:00Z","api_version":"1","data":{"device":{"sn":"SN1","alias":"Gate A","time_zone":"+05:30"},"pin":"016","name":"José","privilege":0,"card":"[15CD5B07]","group":"1","time_zone":"0000000100000000","has_password":true}}"#
        );
    }

    #[test]
    fn device_and_roster_ids_follow_their_cause() {
        let registered = device_registered_event_id("SN1");
        assert_eq!(registered, event_id(&[event_type::DEVICE_REGISTERED, "SN1"]));
        assert_ne!(registered, device_registered_event_id("SN2"));
        let offline = device_presence_event_id(event_type::DEVICE_OFFLINE, "SN1", 1);
        assert_eq!(offline, event_id(&[event_type::DEVICE_OFFLINE, "SN1", "1"]));
        assert_ne!(offline, device_presence_event_id(event_type::DEVICE_OFFLINE, "SN1", 2));
        assert_ne!(offline, device_presence_event_id(event_type::DEVICE_ONLINE, "SN1", 1));
        assert_eq!(user_enrolled_event_id("SN1", "7"), event_id(&[event_type::USER_ENROLLED, "SN1", "7"]));
        let updated = user_updated_event_id("SN1", "7", 1, "ab");
        assert_ne!(updated, user_updated_event_id("SN1", "7", 2, "ab"));
        assert_ne!(updated, user_updated_event_id("SN1", "7", 1, "cd"));
    }
}

/// `access.event`: one `rtlog` line of an access controller, with its code's English name and
/// level (`alarm` for codes 100–199). `timestamp` is when the bridge received it; `local_time` is
/// the controller's wall clock. The card number is not sent (it is sealed at rest).
#[derive(Debug, Serialize)]
pub struct AccessEventData<'a> {
    pub device: &'a EventDevice<'a>,
    /// The stored row's id.
    pub access_event_id: i64,
    /// The event's number in its controller's gapless sequence (the access-event cursor's).
    pub seq: i64,
    pub local_time: &'a str,
    /// `null` for events without a person (`pin=0` on the wire).
    pub pin: Option<&'a str>,
    pub door: Option<i64>,
    pub event_code: Option<i64>,
    pub event_name: String,
    /// `normal`, `error` or `alarm`.
    pub level: &'static str,
    pub alarm: bool,
    /// 0 in, 1 out.
    pub in_out: Option<i64>,
    pub verify_type: &'a str,
}

/// An access event code's English name (`Event <code>` for a code the table lacks, `Unknown`
/// without one) and level: `normal`, `error` or `alarm`. As in the `access.event` webhook.
pub fn access_event_name_and_level(code: Option<i64>) -> (String, &'static str) {
    match code {
        Some(code) => (
            adms_protocol::labels::access_event(code).map_or_else(|| format!("Event {code}"), str::to_owned),
            adms_protocol::labels::access_event_level(code),
        ),
        None => ("Unknown".to_owned(), "normal"),
    }
}

/// The body of an `access.event`.
pub(crate) fn access_event_body(
    event_id: &str,
    device: &EventDevice<'_>,
    (row, seq): (i64, i64),
    e: &crate::uploads::AccessEvent,
    received_at: i64,
) -> Vec<u8> {
    let (event_name, level) = access_event_name_and_level(e.event_code);
    let data = AccessEventData {
        device,
        access_event_id: row,
        seq,
        local_time: &e.local_time,
        pin: Some(e.pin.as_str()).filter(|p| !p.is_empty() && *p != "0"),
        door: e.door,
        event_code: e.event_code,
        event_name,
        level,
        alarm: level == "alarm",
        in_out: e.in_out,
        verify_type: &e.verify_type,
    };
    event_body(event_id, event_type::ACCESS_EVENT, received_at, &data)
}
