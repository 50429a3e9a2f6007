//! The hand-written parser the nom grammar in [`crate::info`] replaced, kept verbatim (as of
//! `2028e2c`) for the differential test only.
//!
//! The `INFO=` value of a `getrequest` poll (`protocol.md` §3.8): a comma list of firmware
//! version, counts and the device IP. Old firmware sends 6 values, new firmware 13.

use crate::info::DeviceInfo;

/// Parses an `INFO=` value; unparsable counts become `None`, never an error.
pub fn parse_info(value: &str) -> DeviceInfo<'_> {
    let mut info = DeviceInfo::default();
    fn text(s: &str) -> Option<&str> {
        let s = s.trim();
        (!s.is_empty()).then_some(s)
    }
    for (i, v) in value.split(',').enumerate() {
        let count = || v.trim().parse::<i64>().ok().filter(|n| *n >= 0);
        match i {
            0 => info.firmware = text(v),
            1 => info.user_count = count(),
            2 => info.fp_count = count(),
            3 => info.attlog_count = count(),
            4 => info.ip_address = text(v),
            5 => info.fp_algorithm = text(v),
            6 => info.face_algorithm = text(v),
            8 => info.face_count = count(),
            9 => info.functions = text(v),
            10 => info.card_count = count(),
            11 => info.user_photo_count = count(),
            12 => info.att_photo_count = count(),
            _ => {}
        }
    }
    info
}
