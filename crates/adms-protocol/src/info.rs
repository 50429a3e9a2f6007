//! The `INFO=` value of a `getrequest` poll (`protocol.md` §3.8): a comma list of firmware
//! version, counts and the device IP. Old firmware sends 6 values, new firmware 13.
//!
//! ```text
//! info  = value *("," value)   ; by position: firmware, users, fingerprints, punches, IP,
//!                              ; fp-algorithm, face-algorithm, (unused), faces, functions,
//!                              ; cards, user-photos, att-photos; later values are ignored
//! value = *(%x00-2B / %x2D-FF)  ; trimmed; empty text is absent
//! count = integer              ; at least 0, else absent (never an error)
//! ```

use nom::Parser;
use nom::bytes::complete::take_till;

use crate::grammar::{Reject, sub_str};
use crate::kv::integer;

/// Device facts from `INFO=`, borrowing from the (already URL-decoded) value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceInfo<'a> {
    pub firmware: Option<&'a str>,
    pub user_count: Option<i64>,
    pub fp_count: Option<i64>,
    pub attlog_count: Option<i64>,
    pub ip_address: Option<&'a str>,
    pub fp_algorithm: Option<&'a str>,
    pub face_algorithm: Option<&'a str>,
    pub face_count: Option<i64>,
    pub functions: Option<&'a str>,
    pub card_count: Option<i64>,
    pub user_photo_count: Option<i64>,
    pub att_photo_count: Option<i64>,
}

/// `value`: the text up to the next comma (or the end).
fn value(input: &[u8]) -> nom::IResult<&[u8], &[u8], Reject> {
    take_till(|b| b == b',').parse(input)
}

/// Parses an `INFO=` value; unparsable counts become `None`, never an error.
pub fn parse_info(info_value: &str) -> DeviceInfo<'_> {
    let mut info = DeviceInfo::default();
    let text = |raw: &[u8]| sub_str(info_value, raw).map(str::trim).filter(|v| !v.is_empty());
    let count = |raw: &[u8]| {
        let trimmed = sub_str(info_value, raw)?.trim();
        integer(trimmed.as_bytes()).ok().map(|(_, n)| n).filter(|n| *n >= 0)
    };
    let mut input = info_value.as_bytes();
    for position in 0.. {
        let Ok((rest, raw)) = value(input) else { break };
        match position {
            0 => info.firmware = text(raw),
            1 => info.user_count = count(raw),
            2 => info.fp_count = count(raw),
            3 => info.attlog_count = count(raw),
            4 => info.ip_address = text(raw),
            5 => info.fp_algorithm = text(raw),
            6 => info.face_algorithm = text(raw),
            8 => info.face_count = count(raw),
            9 => info.functions = text(raw),
            10 => info.card_count = count(raw),
            11 => info.user_photo_count = count(raw),
            12 => info.att_photo_count = count(raw),
            _ => {}
        }
        // The comma that ends this value, or the end of the list.
        match rest.split_first() {
            Some((_comma, after)) => input = after,
            None => break,
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirteen_and_six_value_forms() {
        let i = parse_info("Ver 8.0.4.3-20230217,12,30,4512,192.168.1.201,10,-1,0,0,111,5,0,0");
        assert_eq!(i.firmware, Some("Ver 8.0.4.3-20230217"));
        assert_eq!((i.user_count, i.fp_count, i.attlog_count), (Some(12), Some(30), Some(4512)));
        assert_eq!(i.ip_address, Some("192.168.1.201"));
        assert_eq!(i.face_algorithm, Some("-1"));
        assert_eq!(i.card_count, Some(5));
        let i = parse_info("Ver 6.60,1,2,3,10.0.0.2,10");
        assert_eq!((i.user_count, i.face_count, i.functions), (Some(1), None, None));
        let i = parse_info("x,notanumber");
        assert_eq!(i.user_count, None);
        assert_eq!(parse_info(""), DeviceInfo::default());
    }
}
