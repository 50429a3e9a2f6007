//! Security PUSH real-time uploads: `table=rtlog` (access events) and `table=rtstate` (door
//! state), TAB-separated `key=value` lines whose key order differs between firmware
//! (`protocol.md` §4.7). Parsed by key; the full access-control meaning comes later.
//!
//! ```text
//! event = fields                ; the key=value grammar of `crate::kv`, keys in any order
//! time  = local-date-time       ; required: MissingKey, BadTime
//! pin / cardno / verifytype     ; text when present: InvalidUtf8
//! eventaddr / event / inoutstatus = integer  ; when present: BadNumber
//! ```

use nom::Parser;
use nom::combinator::all_consuming;

use crate::kv::KvFields;
use crate::reject::RejectReason;
use crate::time::{LocalDateTime, date_time};

/// One `rtlog` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessEventRecord<'a> {
    pub time: LocalDateTime,
    pub pin: &'a str,
    pub card_no: &'a str,
    pub door: Option<i64>,
    pub event: Option<i64>,
    pub in_out: Option<i64>,
    pub verify_type: &'a str,
    pub fields: KvFields<'a>,
}

/// Parses one `rtlog` line; `time=` is required, the rest optional.
pub fn parse_rtlog_line(line: &[u8]) -> Result<AccessEventRecord<'_>, RejectReason> {
    let fields = KvFields::new(line);
    let time = fields.get("time").ok_or(RejectReason::MissingKey)?;
    let time = match all_consuming(date_time).parse(time) {
        Ok((_, time)) => time,
        Err(_) => return Err(RejectReason::BadTime),
    };
    let text = |k: &str| -> Result<&str, RejectReason> {
        fields.get(k).map_or(Ok(""), |v| std::str::from_utf8(v).map_err(|_| RejectReason::InvalidUtf8))
    };
    Ok(AccessEventRecord {
        time,
        pin: text("pin")?,
        card_no: text("cardno")?,
        door: fields.get_int("eventaddr")?,
        event: fields.get_int("event")?,
        in_out: fields.get_int("inoutstatus")?,
        verify_type: text("verifytype")?,
        fields,
    })
}

/// One `rtstate` line: a controller's door sensors, lock relays and alarms, each a hex string
/// (`time=… sensor=<hex> relay=<hex> alarm=<hex>`). Decoded per door by [`DoorStateBits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoorStateRecord<'a> {
    pub time: LocalDateTime,
    pub sensor: &'a str,
    pub relay: &'a str,
    pub alarm: &'a str,
}

/// Longest hex field kept (32 doors' alarm bytes).
const MAX_STATE_HEX: usize = 64;

/// Parses one `rtstate` line; `time=` is required, each field is hex (empty when absent).
pub fn parse_rtstate_line(line: &[u8]) -> Result<DoorStateRecord<'_>, RejectReason> {
    let fields = KvFields::new(line);
    let time = fields.get("time").ok_or(RejectReason::MissingKey)?;
    let time = match all_consuming(date_time).parse(time) {
        Ok((_, time)) => time,
        Err(_) => return Err(RejectReason::BadTime),
    };
    let hex = |k: &str| -> Result<&str, RejectReason> {
        let value = fields.get(k).unwrap_or_default();
        if value.len() > MAX_STATE_HEX || !value.iter().all(u8::is_ascii_hexdigit) {
            return Err(RejectReason::BadNumber);
        }
        std::str::from_utf8(value).map_err(|_| RejectReason::InvalidUtf8)
    };
    Ok(DoorStateRecord { time, sensor: hex("sensor")?, relay: hex("relay")?, alarm: hex("alarm")? })
}

/// One door's state read from the hex fields of `rtstate` (`cvsecurity_api.md` §7.10). Where
/// the sources disagree, our reading, here alone: the sensor packs 2 bits per door, four doors
/// a byte, door 1 in the lowest bits (the official document; one field client and our fixture
/// read one byte per door, which agrees for door 1); the relay is 1 bit per door, door 1 the
/// lowest bit of the first byte, 1 = unlocked (`protocol.md`'s reading; the document's
/// polarity is ambiguous); the alarm is one byte per door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoorStateBits {
    /// 0 no sensor, 1 closed, 2 open (3 read as unknown); `None` when not reported.
    pub sensor: Option<u8>,
    /// Whether the lock is released; `None` when not reported.
    pub relay_open: Option<bool>,
    /// bit0 forced open, bit1 tamper, bit2 duress password, bit3 duress fingerprint, bit4
    /// open too long, bit5 mains lost, bit6 battery lost, bit7 reader tamper.
    pub alarm: Option<u8>,
}

impl DoorStateBits {
    /// Door `door` (1-32) of the hex fields.
    pub fn of(sensor: &str, relay: &str, alarm: &str, door: u8) -> DoorStateBits {
        let byte = |hex: &str, index: usize| -> Option<u8> {
            hex.get(index * 2..index * 2 + 2).and_then(|b| u8::from_str_radix(b, 16).ok())
        };
        let n = usize::from(door.max(1) - 1);
        DoorStateBits {
            sensor: byte(sensor, n / 4).map(|b| (b >> ((n % 4) * 2)) & 0b11),
            relay_open: byte(relay, n / 8).map(|b| b & (1 << (n % 8)) != 0),
            alarm: byte(alarm, n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtstate_lines_decode_per_door() {
        let r = parse_rtstate_line(b"time=2026-11-20 08:15:41\tsensor=0201\trelay=0200\talarm=0010").unwrap();
        assert_eq!((r.sensor, r.relay, r.alarm), ("0201", "0200", "0010"));
        let door1 = DoorStateBits::of(r.sensor, r.relay, r.alarm, 1);
        assert_eq!(door1, DoorStateBits { sensor: Some(2), relay_open: Some(false), alarm: Some(0) });
        let door2 = DoorStateBits::of(r.sensor, r.relay, r.alarm, 2);
        assert_eq!(door2, DoorStateBits { sensor: Some(0), relay_open: Some(true), alarm: Some(0x10) });
        let door5 = DoorStateBits::of(r.sensor, r.relay, r.alarm, 5);
        assert_eq!((door5.sensor, door5.alarm), (Some(1), None));
        assert_eq!(DoorStateBits::of("", "", "", 1), DoorStateBits { sensor: None, relay_open: None, alarm: None });
        assert_eq!(parse_rtstate_line(b"time=2026-11-20 08:15:41\tsensor=zz"), Err(RejectReason::BadNumber));
        assert_eq!(parse_rtstate_line(b"sensor=01"), Err(RejectReason::MissingKey));
    }

    #[test]
    fn parses_by_key_in_any_order() {
        let r = parse_rtlog_line(b"pin=76069670\ttime=2026-09-28 11:30:05\tcardno=0\teventaddr=1\tevent=0\tinoutstatus=0\tverifytype=15\tindex=42").unwrap();
        assert_eq!((r.pin, r.event, r.door, r.verify_type), ("76069670", Some(0), Some(1), "15"));
        assert_eq!(r.time.to_string(), "2026-09-28 11:30:05");
        assert_eq!(parse_rtlog_line(b"pin=1\tevent=0"), Err(RejectReason::MissingKey));
        assert_eq!(parse_rtlog_line(b"time=never"), Err(RejectReason::BadTime));
    }
}
