//! Device wall-clock times and the time-related values of the protocol.
//!
//! Devices send local wall-clock time without an offset (`protocol.md` §7.2). This module only
//! parses and formats that text; turning it into an instant needs a time-zone database and is
//! done by the store.

use std::fmt;

use crate::grammar::{Parsed, Reject};
use crate::reject::RejectReason;

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
    #[inline]
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

/// `YYYY-MM-DD hh:mm:ss` read as three little-endian words: bytes 0–7, 8–15 and 11–18 (the
/// last overlaps the second). `d` marks a digit, `.` a byte checked elsewhere (byte 10, ` ` or
/// `T`), anything else a separator that must match exactly.
const WORDS: [(usize, &[u8; 8]); 3] = [(0, b"dddd-dd-"), (8, b"dd.dd:dd"), (11, b"dd:dd:dd")];

/// What [`pattern_word`] extracts from a pattern.
#[derive(Clone, Copy)]
enum Slots {
    /// `0xff` in each digit byte.
    DigitMask,
    /// `0xff` in each separator byte.
    SeparatorMask,
    /// The separator bytes themselves.
    Separators,
}

/// One of the words of `pattern` that [`date_time`] compares against, little-endian.
const fn pattern_word(pattern: &[u8; 8], slots: Slots) -> u64 {
    let mut word = 0u64;
    let mut i = 0;
    while i < 8 {
        let b = pattern[i];
        let byte = match slots {
            Slots::DigitMask if b == b'd' => 0xff,
            Slots::SeparatorMask if b != b'd' && b != b'.' => 0xff,
            Slots::Separators if b != b'd' && b != b'.' => b as u64,
            _ => 0,
        };
        word |= byte << (8 * i);
        i += 1;
    }
    word
}

/// Per word: (offset, digit mask, separator mask, separators).
const CHECKS: [(usize, u64, u64, u64); 3] = {
    let mut out = [(0, 0, 0, 0); 3];
    let mut i = 0;
    while i < 3 {
        let (at, pattern) = WORDS[i];
        out[i] = (
            at,
            pattern_word(pattern, Slots::DigitMask),
            pattern_word(pattern, Slots::SeparatorMask),
            pattern_word(pattern, Slots::Separators),
        );
        i += 1;
    }
    out
};

/// `local-date-time = 4DIGIT "-" 2DIGIT "-" 2DIGIT (SP / "T") 2DIGIT ":" 2DIGIT ":" 2DIGIT`, the
/// nom parser of a device date-time; fails with `BadTime`, also on impossible calendar values.
///
/// It runs once per punch and was most of the cost of an ATTLOG line, so the layout is checked
/// and read eight bytes at a time: in each word, every digit byte XOR `'0'` must be below 10
/// (the high bit of `d + 0x76`, or of `d` itself, flags the others) and every separator byte
/// must match exactly; then `d * 10 + (d >> 8)` turns each pair of digit bytes into its
/// two-digit value in place (at most 99, so no byte carries into the next).
#[inline]
pub fn date_time(input: &[u8]) -> Parsed<'_, LocalDateTime> {
    let fail = || nom::Err::Error(Reject(RejectReason::BadTime));
    // `split_first_chunk` rather than nom's `take`: a fixed-size array lets every index below
    // be checked at compile time, and this is the hottest parser of all.
    let Some((raw, rest)) = input.split_first_chunk::<DATE_TIME_LEN>() else {
        return Err(fail());
    };
    let mut bad = u64::from(raw[10] != b' ' && raw[10] != b'T');
    let mut pairs = [0u64; 3];
    for (pair, (at, digits, separator_mask, separators)) in pairs.iter_mut().zip(CHECKS) {
        let word = raw.get(at..at + 8).and_then(|w| w.try_into().ok()).map_or(0, u64::from_le_bytes);
        let d = (word ^ 0x3030_3030_3030_3030) & digits;
        bad |= ((d.wrapping_add(0x7676_7676_7676_7676) | d) & digits & 0x8080_8080_8080_8080)
            | ((word & separator_mask) ^ separators);
        *pair = d.wrapping_mul(10).wrapping_add(d >> 8);
    }
    if bad != 0 {
        return Err(fail());
    }
    let byte = |word: u64, index: u32| (word >> (8 * index)) as u8;
    let [date, day_hour, time] = pairs;
    let value = LocalDateTime {
        year: u16::from(byte(date, 0)) * 100 + u16::from(byte(date, 2)),
        month: byte(date, 5),
        day: byte(day_hour, 0),
        hour: byte(time, 0),
        minute: byte(time, 3),
        second: byte(time, 6),
    };
    if !is_valid(&value) {
        return Err(fail());
    }
    Ok((rest, value))
}

/// Calendar check. The common case (a day up to 28) needs no month table.
#[inline]
fn is_valid(t: &LocalDateTime) -> bool {
    let in_range = (t.month.wrapping_sub(1) < 12)
        & (t.day.wrapping_sub(1) < 31)
        & (t.hour < 24)
        & (t.minute < 60)
        & (t.second < 60);
    in_range && (t.day <= 28 || t.day <= days_in_month(t.year, t.month))
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
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
/// The JSON form is the text `YYYY-MM-DD hh:mm:ss` (see the serde impls below).
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for LocalDateTime {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "Device-local wall-clock time, `YYYY-MM-DD hh:mm:ss` (`T` also accepted as the separator).",
            ))
            .pattern(Some(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}$"))
            .examples(["2026-11-20 08:00:00"])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for LocalDateTime {}

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

    /// The word-at-a-time check against a byte-by-byte reference, for every value of every
    /// byte of a valid time (a separator swapped, a digit replaced by anything, high bytes).
    #[test]
    fn every_single_byte_change_is_judged_like_a_byte_by_byte_check() {
        fn reference(raw: &[u8]) -> Option<LocalDateTime> {
            let layout = b"dddd-dd-dd?dd:dd:dd";
            if raw.len() != layout.len() {
                return None;
            }
            for (&b, &slot) in raw.iter().zip(layout) {
                let ok = match slot {
                    b'd' => b.is_ascii_digit(),
                    b'?' => b == b' ' || b == b'T',
                    sep => b == sep,
                };
                if !ok {
                    return None;
                }
            }
            let n =
                |range: std::ops::Range<usize>| raw[range].iter().fold(0u16, |acc, &b| acc * 10 + u16::from(b - b'0'));
            let t = LocalDateTime {
                year: n(0..4),
                month: n(5..7) as u8,
                day: n(8..10) as u8,
                hour: n(11..13) as u8,
                minute: n(14..16) as u8,
                second: n(17..19) as u8,
            };
            let leap = (t.year.is_multiple_of(4) && !t.year.is_multiple_of(100)) || t.year.is_multiple_of(400);
            let days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            let valid = (1..=12).contains(&t.month)
                && t.day >= 1
                && t.day <= days[usize::from(t.month) - 1]
                && t.hour < 24
                && t.minute < 60
                && t.second < 60;
            valid.then_some(t)
        }
        for base in [b"2024-02-29 23:59:59", b"2023-12-31T00:00:00", b"1999-09-09 09:09:09"] {
            for position in 0..base.len() {
                for value in 0..=255u8 {
                    let mut raw = *base;
                    raw[position] = value;
                    assert_eq!(LocalDateTime::parse(&raw), reference(&raw), "{:?}", String::from_utf8_lossy(&raw));
                }
            }
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
