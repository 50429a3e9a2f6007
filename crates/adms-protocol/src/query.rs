//! Query strings of device requests (`SN=..&table=..&Stamp=..`).
//!
//! Percent-decoding is done by `form_urlencoded`; values borrow from the query when nothing
//! needed decoding. Unknown parameters are ignored; a repeated parameter keeps its first value
//! (`type=tabledata&type=tabledata`, `protocol.md` §10.9). Names match case-insensitively.

use std::borrow::Cow;

/// Longest serial number accepted.
pub const MAX_SN_LEN: usize = 64;

/// The parameters a device request may carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceQuery<'a> {
    pub sn: Option<Cow<'a, str>>,
    pub options: Option<Cow<'a, str>>,
    pub pushver: Option<Cow<'a, str>>,
    pub language: Option<Cow<'a, str>>,
    pub device_type: Option<Cow<'a, str>>,
    pub push_options_flag: Option<Cow<'a, str>>,
    pub table: Option<Cow<'a, str>>,
    pub stamp: Option<Cow<'a, str>>,
    pub op_stamp: Option<Cow<'a, str>>,
    pub info: Option<Cow<'a, str>>,
    pub kind: Option<Cow<'a, str>>,
    pub table_name: Option<Cow<'a, str>>,
    pub count: Option<Cow<'a, str>>,
    pub cmd_id: Option<Cow<'a, str>>,
    pub pin: Option<Cow<'a, str>>,
}

/// Why a query cannot identify a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the SN parameter is missing")]
    MissingSn,
    #[error("the SN parameter is empty, too long or contains characters a serial number cannot have")]
    InvalidSn,
}

impl<'a> DeviceQuery<'a> {
    /// Parses a raw query string (without `?`).
    pub fn parse(query: &'a str) -> DeviceQuery<'a> {
        let mut q = DeviceQuery::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            const NAMES: [&str; 15] = [
                "sn",
                "options",
                "pushver",
                "language",
                "devicetype",
                "pushoptionsflag",
                "table",
                "stamp",
                "opstamp",
                "info",
                "type",
                "tablename",
                "count",
                "cmdid",
                "pin",
            ];
            // Case-insensitive without allocating: this runs on every poll.
            let Some(index) = NAMES.iter().position(|n| n.eq_ignore_ascii_case(&key)) else { continue };
            let slot = match index {
                0 => &mut q.sn,
                1 => &mut q.options,
                2 => &mut q.pushver,
                3 => &mut q.language,
                4 => &mut q.device_type,
                5 => &mut q.push_options_flag,
                6 => &mut q.table,
                7 => &mut q.stamp,
                8 => &mut q.op_stamp,
                9 => &mut q.info,
                10 => &mut q.kind,
                11 => &mut q.table_name,
                12 => &mut q.count,
                13 => &mut q.cmd_id,
                _ => &mut q.pin,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        q
    }

    /// The serial number, validated: 1 to 64 printable ASCII characters without spaces.
    pub fn serial(&self) -> Result<&str, QueryError> {
        let sn = self.sn.as_deref().ok_or(QueryError::MissingSn)?;
        let sn = sn.trim();
        if sn.is_empty() || sn.len() > MAX_SN_LEN || !sn.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(QueryError::InvalidSn);
        }
        Ok(sn)
    }

    /// True for the attendance handshake `GET cdata?SN=..&options=all`.
    pub fn is_handshake(&self) -> bool {
        self.options.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_handshake_and_upload_queries() {
        let q = DeviceQuery::parse(
            "SN=CKJF201960996&options=all&language=69&pushver=2.4.1&PushOptionsFlag=1&DeviceType=middle%20east",
        );
        assert_eq!(q.serial(), Ok("CKJF201960996"));
        assert!(q.is_handshake());
        assert_eq!(q.pushver.as_deref(), Some("2.4.1"));
        assert_eq!(q.device_type.as_deref(), Some("middle east"));
        let q = DeviceQuery::parse("SN=X&table=ATTLOG&Stamp=9999&unknown=1");
        assert_eq!((q.table.as_deref(), q.stamp.as_deref()), (Some("ATTLOG"), Some("9999")));
        assert!(!q.is_handshake());
        let q = DeviceQuery::parse("SN=X&INFO=Ver%208.0.4.3-20230217,12,30");
        assert_eq!(q.info.as_deref(), Some("Ver 8.0.4.3-20230217,12,30"));
        let q = DeviceQuery::parse("SN=X&type=tabledata&type=other&&tablename=user");
        assert_eq!((q.kind.as_deref(), q.table_name.as_deref()), (Some("tabledata"), Some("user")));
    }

    #[test]
    fn serial_validation() {
        assert_eq!(DeviceQuery::parse("table=ATTLOG").serial(), Err(QueryError::MissingSn));
        assert_eq!(DeviceQuery::parse("SN=").serial(), Err(QueryError::InvalidSn));
        assert_eq!(DeviceQuery::parse("SN=a%20b").serial(), Err(QueryError::InvalidSn));
        assert_eq!(DeviceQuery::parse("SN=a%0Ab").serial(), Err(QueryError::InvalidSn));
        let long = format!("SN={}", "A".repeat(MAX_SN_LEN + 1));
        assert_eq!(DeviceQuery::parse(&long).serial(), Err(QueryError::InvalidSn));
        assert_eq!(DeviceQuery::parse("sn=abc").serial(), Ok("abc"));
    }
}
