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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_by_key_in_any_order() {
        let r = parse_rtlog_line(b"pin=76069670\ttime=2026-09-28 11:30:05\tcardno=0\teventaddr=1\tevent=0\tinoutstatus=0\tverifytype=15\tindex=42").unwrap();
        assert_eq!((r.pin, r.event, r.door, r.verify_type), ("76069670", Some(0), Some(1), "15"));
        assert_eq!(r.time.to_string(), "2026-09-28 11:30:05");
        assert_eq!(parse_rtlog_line(b"pin=1\tevent=0"), Err(RejectReason::MissingKey));
        assert_eq!(parse_rtlog_line(b"time=never"), Err(RejectReason::BadTime));
    }
}
