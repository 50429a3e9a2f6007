//! Device wall-clock times and the time-related values of the protocol.
//!
//! Devices send local wall-clock time without an offset (`protocol.md` §7.2). This module only
//! parses and formats that text; turning it into an instant needs a time-zone database and is
//! done by the store.

use std::fmt;

use nom::bytes::complete::take;
use nom::{IResult, Parser};

/// A calendar-valid local date and time as the device sent it (`YYYY-MM-DD hh:mm:ss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalDateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl LocalDateTime {
    /// Parses `YYYY-MM-DD hh:mm:ss` (or with `T` as the separator) and checks the calendar.
    pub fn parse(input: &[u8]) -> Option<LocalDateTime> {
        match date_time(input) {
            Ok(([], value)) => Some(value),
            _ => None,
        }
    }

    /// Writes the canonical `YYYY-MM-DD hh:mm:ss` form into a fixed buffer (no allocation).
    pub fn to_bytes(&self) -> [u8; 19] {
        let mut out = *b"0000-00-00 00:00:00";
        put_digits(&mut out[0..4], u32::from(self.year));
        put_digits(&mut out[5..7], u32::from(self.month));
        put_digits(&mut out[8..10], u32::from(self.day));
        put_digits(&mut out[11..13], u32::from(self.hour));
        put_digits(&mut out[14..16], u32::from(self.minute));
        put_digits(&mut out[17..19], u32::from(self.second));
        out
    }

    /// Seconds since 2000-01-01 00:00:00 in ZKTeco's "old encoded time", used by Security PUSH
    /// `DateTime=` values (`protocol.md` §3.16): every month counts 31 days.
    pub fn zk_encoded(&self) -> i64 {
        let days =
            (i64::from(self.year) - 2000) * 12 * 31 + (i64::from(self.month) - 1) * 31 + (i64::from(self.day) - 1);
        days * 86_400 + i64::from(self.hour) * 3600 + i64::from(self.minute) * 60 + i64::from(self.second)
    }
}

impl fmt::Display for LocalDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        // The buffer holds ASCII digits and separators only.
        f.write_str(std::str::from_utf8(&bytes).map_err(|_| fmt::Error)?)
    }
}

fn put_digits(out: &mut [u8], mut value: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Length of `YYYY-MM-DD hh:mm:ss`.
const DATE_TIME_LEN: usize = 19;
/// Positions of the digits in `YYYY-MM-DD hh:mm:ss`.
const DIGITS: [usize; 14] = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];

/// nom parser for a device date-time; fails on impossible calendar values.
///
/// The layout is fixed, so after `take(19)` every check is a comparison at a known position:
/// this runs once per punch and is most of the cost of an ATTLOG line.
#[inline]
pub fn date_time(input: &[u8]) -> IResult<&[u8], LocalDateTime> {
    let fail = || nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::Verify));
    let (rest, raw) = take(DATE_TIME_LEN).parse(input)?;
    let raw: &[u8; DATE_TIME_LEN] = raw.try_into().map_err(|_| fail())?;
    let digit = |i: usize| raw[i].wrapping_sub(b'0');
    let separators =
        raw[4] == b'-' && raw[7] == b'-' && (raw[10] == b' ' || raw[10] == b'T') && raw[13] == b':' && raw[16] == b':';
    let non_digits = DIGITS.iter().fold(false, |bad, &i| bad | (digit(i) > 9));
    if !separators || non_digits {
        return Err(fail());
    }
    let two = |i: usize| digit(i) * 10 + digit(i + 1);
    let year = u16::from(two(0)) * 100 + u16::from(two(2));
    let (month, day, hour, minute, second) = (two(5), two(8), two(11), two(14), two(17));
    let value = LocalDateTime { year, month, day, hour, minute, second };
    if !is_valid(&value) {
        return Err(nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::Verify)));
    }
    Ok((rest, value))
}

fn is_valid(t: &LocalDateTime) -> bool {
    (1..=12).contains(&t.month)
        && t.day >= 1
        && t.day <= days_in_month(t.year, t.month)
        && t.hour < 24
        && t.minute < 60
        && t.second < 60
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// The `TimeZone=` value of the handshake for a UTC offset in seconds.
///
/// Firmware reads `|v| < 12` as hours and larger magnitudes as minutes (`protocol.md` §3.1, §7.2):
/// whole-hour offsets below 12 h go out in hours, everything else (half-hour zones such as +5:30,
/// and ±12 h or more) in minutes, which is what fixed the 2:30 shift reported in the field.
pub fn handshake_time_zone(offset_seconds: i32) -> i32 {
    let minutes = offset_seconds / 60;
    if minutes % 60 == 0 && (minutes / 60).abs() < 12 { minutes / 60 } else { minutes }
}

/// `+hhmm` / `-hhmm` form used by Security PUSH (`ServerTZ=+0800`).
pub fn offset_hhmm(offset_seconds: i32) -> String {
    let sign = if offset_seconds < 0 { '-' } else { '+' };
    let minutes = offset_seconds.unsigned_abs() / 60;
    format!("{sign}{:02}{:02}", minutes / 60, minutes % 60)
}

/// As `YYYY-MM-DD hh:mm:ss` text, the form devices and the API use.
impl serde::Serialize for LocalDateTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for LocalDateTime {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        LocalDateTime::parse(text.as_bytes())
            .ok_or_else(|| serde::de::Error::custom("expected a valid date-time YYYY-MM-DD hh:mm:ss"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_and_rejects_impossible_times() {
        let ok: &[(&[u8], &str)] = &[
            (b"2024-07-28 01:25:24", "2024-07-28 01:25:24"),
            (b"2024-02-29T23:59:59", "2024-02-29 23:59:59"),
            (b"2000-01-01 00:00:00", "2000-01-01 00:00:00"),
        ];
        for (input, want) in ok {
            assert_eq!(LocalDateTime::parse(input).map(|t| t.to_string()).as_deref(), Some(*want));
        }
        let bad: &[&[u8]] = &[
            b"2026-13-45 99:99:99",
            b"2023-02-29 10:00:00",
            b"2024-04-31 10:00:00",
            b"2024-07-28 24:00:00",
            b"2024-07-28 01:25:60",
            b"2024-07-28 01:25",
            b"2024-07-28 01:25:24 ",
            b"2024/07/28 01:25:24",
            b"",
            b"0",
            b"2024-07-2a 01:25:24",
        ];
        for input in bad {
            assert_eq!(LocalDateTime::parse(input), None, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn time_zone_values() {
        assert_eq!(handshake_time_zone(8 * 3600), 8);
        assert_eq!(handshake_time_zone(-5 * 3600), -5);
        assert_eq!(handshake_time_zone(0), 0);
        assert_eq!(handshake_time_zone(5 * 3600 + 1800), 330);
        assert_eq!(handshake_time_zone(-(3 * 3600 + 1800)), -210);
        assert_eq!(handshake_time_zone(5 * 3600 + 45 * 60), 345);
        assert_eq!(handshake_time_zone(12 * 3600), 720);
        assert_eq!(handshake_time_zone(13 * 3600), 780);
        assert_eq!(offset_hhmm(8 * 3600), "+0800");
        assert_eq!(offset_hhmm(-(3 * 3600 + 1800)), "-0330");
    }

    #[test]
    fn zk_encoded_time_matches_the_documented_formula() {
        let t = LocalDateTime { year: 2000, month: 1, day: 1, hour: 0, minute: 0, second: 1 };
        assert_eq!(t.zk_encoded(), 1);
        let t = LocalDateTime { year: 2001, month: 2, day: 3, hour: 4, minute: 5, second: 6 };
        assert_eq!(t.zk_encoded(), ((12 * 31 + 31 + 2) * 86_400) + 4 * 3600 + 5 * 60 + 6);
    }
}
