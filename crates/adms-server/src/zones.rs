//! Time zones: device wall-clock time to UTC, and the server's display zone.

use jiff::tz::{Offset, TimeZone};
use jiff::{Timestamp, civil};

use adms_protocol::LocalDateTime;

const DAY_MICROS: i64 = 86_400_000_000;

/// A zone and the name it is stored under.
#[derive(Debug, Clone)]
pub struct Zone {
    pub name: String,
    pub tz: TimeZone,
}

/// Parses `auto` (the server's zone), an IANA name, `UTC`, or a fixed offset `±HH:MM`.
pub fn parse_zone(text: &str) -> Option<Zone> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("auto") {
        let tz = TimeZone::try_system().unwrap_or(TimeZone::UTC);
        let name = tz.iana_name().map_or_else(|| "UTC".to_owned(), str::to_owned);
        return Some(Zone { name, tz });
    }
    if let Some(offset) = parse_offset(text) {
        return Some(Zone { name: text.to_owned(), tz: TimeZone::fixed(offset) });
    }
    TimeZone::get(text).ok().map(|tz| Zone { name: text.to_owned(), tz })
}

fn parse_offset(text: &str) -> Option<Offset> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return None;
    }
    Offset::from_seconds(sign * (h * 3600 + m * 60)).ok()
}

impl Zone {
    /// The UTC instant of a device wall-clock time (DST gaps and folds resolved the
    /// "compatible" way: later for gaps, earlier for folds), as Unix seconds.
    pub fn to_utc(&self, t: &LocalDateTime) -> Option<i64> {
        let dt = civil::DateTime::new(
            i16::try_from(t.year).ok()?,
            i8::try_from(t.month).ok()?,
            i8::try_from(t.day).ok()?,
            i8::try_from(t.hour).ok()?,
            i8::try_from(t.minute).ok()?,
            i8::try_from(t.second).ok()?,
            0,
        )
        .ok()?;
        self.tz.to_timestamp(dt).ok().map(|ts| ts.as_second())
    }

    /// The zone's current UTC offset in seconds (for the handshake `TimeZone`).
    pub fn offset_now(&self) -> i32 {
        self.tz.to_offset(Timestamp::now()).seconds()
    }

    /// Wall-clock time now in this zone.
    pub fn now_local(&self) -> LocalDateTime {
        let dt = Timestamp::now().to_zoned(self.tz.clone()).datetime();
        to_local(dt)
    }

    /// `YYYY-MM-DD HH:MM:SS` in this zone for Unix microseconds.
    pub fn format_micros(&self, micros: i64) -> String {
        match Timestamp::from_microsecond(micros) {
            Ok(ts) => to_local(ts.to_zoned(self.tz.clone()).datetime()).to_string(),
            Err(_) => String::new(),
        }
    }

    /// The start of the day (in this zone) the instant `micros` falls in, Unix microseconds: the
    /// console's "today", and the day the punch writer marks on each device.
    pub fn day_start_micros(&self, micros: i64) -> i64 {
        Timestamp::from_microsecond(micros)
            .ok()
            .and_then(|ts| ts.to_zoned(self.tz.clone()).start_of_day().ok())
            .map_or_else(|| micros - micros.rem_euclid(DAY_MICROS), |start| start.timestamp().as_microsecond())
    }

    /// Unix microseconds of a wall-clock time in this zone.
    pub fn micros_of(&self, t: &LocalDateTime) -> Option<i64> {
        self.to_utc(t).map(|s| s.saturating_mul(1_000_000))
    }
}

fn to_local(dt: civil::DateTime) -> LocalDateTime {
    let n = |v: i8| u8::try_from(v).unwrap_or_default();
    LocalDateTime {
        year: u16::try_from(dt.year()).unwrap_or_default(),
        month: n(dt.month()),
        day: n(dt.day()),
        hour: n(dt.hour()),
        minute: n(dt.minute()),
        second: n(dt.second()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_and_conversions() {
        let t = LocalDateTime::parse(b"2026-03-29 02:30:00").unwrap();
        let utc = parse_zone("UTC").unwrap();
        assert_eq!(utc.to_utc(&t), Some(1_774_751_400));
        let ist = parse_zone("+05:30").unwrap();
        assert_eq!(ist.to_utc(&t), Some(1_774_751_400 - 19_800));
        assert_eq!(ist.offset_now(), 19_800);
        // 02:30 does not exist in Berlin that day (DST gap): resolved forward, one hour later in UTC terms
        let berlin = parse_zone("Europe/Berlin").unwrap();
        assert_eq!(berlin.to_utc(&t), Some(1_774_751_400 - 3600));
        assert!(parse_zone("Mars/Olympus").is_none());
        assert!(parse_zone("+25:00").is_none());
        assert!(parse_zone("auto").is_some());
        assert_eq!(utc.format_micros(1_774_751_400_000_000), "2026-03-29 02:30:00");
        // 2026-03-29 02:30 UTC: that day began at 00:00 UTC, and at 00:00 in Berlin (22:00 UTC
        // the evening before, still winter time); in Kolkata it is 08:00, a day begun 18:30 UTC.
        let at = 1_774_751_400_000_000;
        assert_eq!(utc.day_start_micros(at), at - 9_000_000_000);
        assert_eq!(berlin.day_start_micros(at), at - 9_000_000_000 - 3_600_000_000);
        assert_eq!(ist.day_start_micros(at), at - 9_000_000_000 + (24 * 3600 - 19_800) * 1_000_000 - 86_400_000_000);
    }
}
