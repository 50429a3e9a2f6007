//! Access control as values, and the desired-state planner for one access controller. Pure: no
//! I/O, no clock, no SQL, and nothing about the wire (the store maps an [`AccessChange`] to the
//! device command that performs it; the command text lives in `adms_protocol::access`).
//!
//! An access controller holds four tables the bridge manages: `user` (who exists, with card,
//! password and validity), `userauthorize` (per person and time zone, the bitmask of this
//! controller's doors they may open), `timezone` (weekly intervals) and `holiday`. An elevator
//! controller (one with floors) holds a fifth, `usereleauthorize` (per person and time zone, the
//! floors they may select), filled from elevator levels as `userauthorize` is from door levels. The bridge
//! never reads them back: what a controller holds is what was sent to it, in queue order, minus
//! what it refused. [`ControllerRows`] is such a table set, keyed by each row's identity on the
//! controller ([`RowKey`]); [`plan`] compares the rows a controller should hold with the rows it
//! holds (or will hold once its queued commands ran) and returns the changes that close the gap,
//! each row once, in an order the controller can apply them (a time zone before the rights that
//! name it, rights deleted before their user).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// Intervals a controller stores per day (and per holiday type).
pub const INTERVALS_PER_DAY: usize = 3;
/// Days of a schedule: Sunday … Saturday, then holiday types 1–3.
pub const SCHEDULE_DAYS: usize = 10;

/// What is wrong with an access value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("interval {0:?}: expected HH:MM-HH:MM, start not after end")]
    BadInterval(String),
    #[error("{day}: at most {INTERVALS_PER_DAY} intervals per day")]
    TooManyIntervals { day: &'static str },
    #[error("date {0:?}: expected YYYY-MM-DD (2000-2099)")]
    BadDate(String),
    #[error("holiday type {0}: expected 1, 2 or 3")]
    BadHolidayType(i64),
    #[error("door number {0}: expected 1 to 32")]
    BadDoorNumber(i64),
    #[error("validity ends before it starts")]
    EmptyValidity,
    #[error("time {0:?}: expected YYYY-MM-DD HH:MM:SS (2000-2099)")]
    BadLocalTime(String),
}

/// One interval of a day, from `start_minute` to `end_minute` (minutes after midnight, both
/// inclusive, at most 23:59). Written `"08:30-12:00"` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interval {
    pub start_minute: u16,
    pub end_minute: u16,
}

impl Interval {
    pub fn new(start_minute: u16, end_minute: u16) -> Result<Interval, AccessError> {
        let interval = Interval { start_minute, end_minute };
        if start_minute > end_minute || end_minute >= 24 * 60 {
            return Err(AccessError::BadInterval(interval.to_string()));
        }
        Ok(interval)
    }

    /// As the controller stores it: `(HHMM start << 16) | HHMM end`.
    pub fn packed(self) -> u32 {
        let hhmm = |m: u16| u32::from(m / 60) * 100 + u32::from(m % 60);
        (hhmm(self.start_minute) << 16) | hhmm(self.end_minute)
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, e) = (self.start_minute, self.end_minute);
        write!(f, "{:02}:{:02}-{:02}:{:02}", s / 60, s % 60, e / 60, e % 60)
    }
}

impl std::str::FromStr for Interval {
    type Err = AccessError;
    fn from_str(text: &str) -> Result<Interval, AccessError> {
        let bad = || AccessError::BadInterval(text.to_owned());
        let clock = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (start, end) = text.split_once('-').ok_or_else(bad)?;
        Interval::new(clock(start).ok_or_else(bad)?, clock(end).ok_or_else(bad)?).map_err(|_| bad())
    }
}

impl Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Interval, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A time segment's weekly intervals, plus the intervals of each holiday type (a holiday's
/// type decides which of the three applies on that date). A day without intervals allows no
/// access that day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WeeklySchedule {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>, example = json!(["08:00-12:00", "13:00-18:00"])))]
    pub sunday: Vec<Interval>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub monday: Vec<Interval>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub tuesday: Vec<Interval>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub wednesday: Vec<Interval>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub thursday: Vec<Interval>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub friday: Vec<Interval>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub saturday: Vec<Interval>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub holiday_type1: Vec<Interval>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub holiday_type2: Vec<Interval>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub holiday_type3: Vec<Interval>,
}

impl WeeklySchedule {
    /// Every day and holiday type open all day (`00:00-23:59`).
    pub fn always() -> WeeklySchedule {
        let all = vec![Interval { start_minute: 0, end_minute: 23 * 60 + 59 }];
        WeeklySchedule {
            sunday: all.clone(),
            monday: all.clone(),
            tuesday: all.clone(),
            wednesday: all.clone(),
            thursday: all.clone(),
            friday: all.clone(),
            saturday: all.clone(),
            holiday_type1: all.clone(),
            holiday_type2: all.clone(),
            holiday_type3: all,
        }
    }

    /// The days with their names, in the controller's field order.
    pub fn days(&self) -> [(&'static str, &[Interval]); SCHEDULE_DAYS] {
        [
            ("sunday", &self.sunday),
            ("monday", &self.monday),
            ("tuesday", &self.tuesday),
            ("wednesday", &self.wednesday),
            ("thursday", &self.thursday),
            ("friday", &self.friday),
            ("saturday", &self.saturday),
            ("holiday_type1", &self.holiday_type1),
            ("holiday_type2", &self.holiday_type2),
            ("holiday_type3", &self.holiday_type3),
        ]
    }

    /// At most three intervals a day (intervals themselves are checked when read).
    pub fn validate(&self) -> Result<(), AccessError> {
        for (day, intervals) in self.days() {
            if intervals.len() > INTERVALS_PER_DAY {
                return Err(AccessError::TooManyIntervals { day });
            }
        }
        Ok(())
    }

    /// The 30 packed values of a `timezone` row (3 per day; 0 for no interval), sorted within
    /// each day so that equal schedules give equal rows.
    pub fn packed(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(SCHEDULE_DAYS * INTERVALS_PER_DAY);
        for (_, intervals) in self.days() {
            let mut day: Vec<Interval> = intervals.to_vec();
            day.sort_unstable();
            for slot in 0..INTERVALS_PER_DAY {
                out.push(day.get(slot).map_or(0, |i| i.packed()));
            }
        }
        out
    }
}

/// A calendar date as a controller takes it: `YYYYMMDD`. Written `"2026-12-24"` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccessDate(u32);

impl AccessDate {
    pub fn new(year: u32, month: u32, day: u32) -> Result<AccessDate, AccessError> {
        if !(2000..=2099).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return Err(AccessError::BadDate(format!("{year:04}-{month:02}-{day:02}")));
        }
        Ok(AccessDate(year * 10_000 + month * 100 + day))
    }

    /// `YYYYMMDD`.
    pub fn yyyymmdd(self) -> u32 {
        self.0
    }

    /// From `YYYYMMDD`.
    pub fn from_yyyymmdd(value: u32) -> Result<AccessDate, AccessError> {
        AccessDate::new(value / 10_000, value / 100 % 100, value % 100)
    }
}

impl fmt::Display for AccessDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.0 / 10_000, self.0 / 100 % 100, self.0 % 100)
    }
}

impl std::str::FromStr for AccessDate {
    type Err = AccessError;
    fn from_str(text: &str) -> Result<AccessDate, AccessError> {
        let bad = || AccessError::BadDate(text.to_owned());
        let mut parts = text.split('-');
        let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let number = |p: &str| p.parse::<u32>().map_err(|_| bad());
        AccessDate::new(number(y)?, number(m)?, number(d)?).map_err(|_| bad())
    }
}

impl Serialize for AccessDate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AccessDate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<AccessDate, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A person as an access controller holds them (`user` row).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ControllerUser {
    pub pin: String,
    pub name: String,
    pub card: String,
    /// In clear: the controller needs it. Redacted in `Debug`.
    pub password: String,
    /// First and last valid day; `None`: unlimited.
    pub start_date: Option<AccessDate>,
    pub end_date: Option<AccessDate>,
}

impl fmt::Debug for ControllerUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControllerUser")
            .field("pin", &self.pin)
            .field("name", &self.name)
            .field("card", &self.card)
            .field("password", &if self.password.is_empty() { "" } else { "***" })
            .field("start_date", &self.start_date)
            .field("end_date", &self.end_date)
            .finish()
    }
}

/// One row of an access controller's tables.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Row {
    User(ControllerUser),
    /// The doors (bitmask, door n → bit n-1) `pin` may open during time zone `timezone_id`.
    Authorize {
        pin: String,
        timezone_id: u32,
        doors: u32,
    },
    /// The floors (1–256) `pin` may select during time zone `timezone_id` on an elevator
    /// controller (`usereleauthorize`; the wire's mask is made from them in
    /// `adms_protocol::access`).
    EleAuthorize {
        pin: String,
        timezone_id: u32,
        floors: BTreeSet<u16>,
    },
    /// A time zone's 30 packed intervals ([`WeeklySchedule::packed`]).
    Timezone {
        timezone_id: u32,
        intervals: Vec<u32>,
    },
    Holiday {
        date: AccessDate,
        holiday_type: u8,
        yearly: bool,
    },
}

/// Which table a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    User,
    Authorize,
    EleAuthorize,
    Timezone,
    Holiday,
}

/// A row's identity on the controller: a new row under the same key replaces the old one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RowKey {
    User(String),
    Authorize(String, u32),
    EleAuthorize(String, u32),
    Timezone(u32),
    Holiday(AccessDate),
}

impl RowKey {
    pub fn table(&self) -> Table {
        match self {
            RowKey::User(_) => Table::User,
            RowKey::Authorize(..) => Table::Authorize,
            RowKey::EleAuthorize(..) => Table::EleAuthorize,
            RowKey::Timezone(_) => Table::Timezone,
            RowKey::Holiday(_) => Table::Holiday,
        }
    }

    /// The command queue's de-duplication key: names the row, not its content, so a newer
    /// desire for the same row (an update, or its delete) supersedes a queued older one.
    pub fn dedup_key(&self) -> String {
        match self {
            RowKey::User(pin) => format!("access:user:{pin}"),
            RowKey::Authorize(pin, tz) => format!("access:authorize:{pin}:{tz}"),
            RowKey::EleAuthorize(pin, tz) => format!("access:eleauthorize:{pin}:{tz}"),
            RowKey::Timezone(tz) => format!("access:timezone:{tz}"),
            RowKey::Holiday(date) => format!("access:holiday:{}", date.yyyymmdd()),
        }
    }
}

impl Row {
    pub fn key(&self) -> RowKey {
        match self {
            Row::User(u) => RowKey::User(u.pin.clone()),
            Row::Authorize { pin, timezone_id, .. } => RowKey::Authorize(pin.clone(), *timezone_id),
            Row::EleAuthorize { pin, timezone_id, .. } => RowKey::EleAuthorize(pin.clone(), *timezone_id),
            Row::Timezone { timezone_id, .. } => RowKey::Timezone(*timezone_id),
            Row::Holiday { date, .. } => RowKey::Holiday(*date),
        }
    }
}

/// One change to a controller's tables.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccessChange {
    /// Adds the row, or replaces the row with its key.
    Upsert(Row),
    /// Removes the row with this key.
    Delete(RowKey),
    /// Empties a table (a full re-sync starts with these).
    Clear(Table),
}

impl AccessChange {
    /// The de-duplication key of the change (see [`RowKey::dedup_key`]); a clear has its own.
    pub fn dedup_key(&self) -> String {
        match self {
            AccessChange::Upsert(row) => row.key().dedup_key(),
            AccessChange::Delete(key) => key.dedup_key(),
            AccessChange::Clear(table) => format!("access:clear:{table:?}").to_ascii_lowercase(),
        }
    }
}

/// A controller's access tables: what it should hold, or what it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControllerRows {
    pub rows: BTreeMap<RowKey, Row>,
}

impl ControllerRows {
    pub fn insert(&mut self, row: Row) {
        self.rows.insert(row.key(), row);
    }

    /// The tables after `change` ran on the controller.
    pub fn apply(&mut self, change: &AccessChange) {
        match change {
            AccessChange::Upsert(row) => self.insert(row.clone()),
            AccessChange::Delete(key) => {
                self.rows.remove(key);
            }
            AccessChange::Clear(table) => self.rows.retain(|key, _| key.table() != *table),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// The changes that make a controller holding `held` hold exactly `desired`: an upsert for
/// every desired row it lacks or holds differently, a delete for every row it holds that is not
/// desired, nothing for rows already right. Ordered so the controller never holds a right
/// naming a missing user or time zone: rights deletes (doors and floors), user deletes, time
/// zones, holidays, users, rights, and last the deletes of time zones no longer used.
pub fn plan(desired: &ControllerRows, held: &ControllerRows) -> Vec<AccessChange> {
    // Buckets in the order they are sent.
    let mut buckets: [Vec<AccessChange>; 8] = Default::default();
    for key in held.rows.keys() {
        if !desired.rows.contains_key(key) {
            let bucket = match key.table() {
                Table::Authorize | Table::EleAuthorize => 0,
                Table::User => 1,
                Table::Holiday => 3,
                Table::Timezone => 7,
            };
            buckets[bucket].push(AccessChange::Delete(key.clone()));
        }
    }
    for (key, row) in &desired.rows {
        if held.rows.get(key) != Some(row) {
            let bucket = match key.table() {
                Table::Timezone => 2,
                Table::Holiday => 4,
                Table::User => 5,
                Table::Authorize | Table::EleAuthorize => 6,
            };
            buckets[bucket].push(AccessChange::Upsert(row.clone()));
        }
    }
    buckets.into_iter().flatten().collect()
}

/// A person with a right on the controller, as the desired `user` row is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub pin: String,
    pub timezone_id: u32,
    /// The controller's door number (1–32).
    pub door_no: u8,
}

/// A person with a floor of an elevator controller through an elevator level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloorGrant {
    pub pin: String,
    pub timezone_id: u32,
    /// The controller's floor number (1–256).
    pub floor_no: u16,
}

/// Floors an elevator controller's `usereleauthorize` mask can name (32 bytes).
pub const MAX_FLOOR_NO: u16 = 256;

/// What one controller should hold: a `user` row for every person with at least one grant on
/// it, one `userauthorize` row per person and time zone with the bitmask of the granted doors,
/// the time zones the grants name, and every holiday. `users` may list more persons than have
/// grants (they are left out); grants of a person missing from `users` are left out too.
pub fn desired_rows(
    users: &BTreeMap<String, ControllerUser>,
    grants: &[Grant],
    timezones: &BTreeMap<u32, WeeklySchedule>,
    holidays: &[(AccessDate, u8, bool)],
) -> ControllerRows {
    desired_rows_with_floors(users, grants, &[], timezones, holidays)
}

/// [`desired_rows`] for a controller that may also be an elevator controller: besides, one
/// `usereleauthorize` row per person and time zone with the set of granted floors, the person's
/// `user` row (an elevator controller checks the person as a door controller does) and the time
/// zone. Floors outside 1–256 are left out.
pub fn desired_rows_with_floors(
    users: &BTreeMap<String, ControllerUser>,
    grants: &[Grant],
    floor_grants: &[FloorGrant],
    timezones: &BTreeMap<u32, WeeklySchedule>,
    holidays: &[(AccessDate, u8, bool)],
) -> ControllerRows {
    let mut masks: BTreeMap<(String, u32), u32> = BTreeMap::new();
    for grant in grants {
        if !users.contains_key(&grant.pin) || !timezones.contains_key(&grant.timezone_id) {
            continue;
        }
        let Some(bit) = grant.door_no.checked_sub(1).and_then(|n| 1u32.checked_shl(n.into())) else { continue };
        *masks.entry((grant.pin.clone(), grant.timezone_id)).or_default() |= bit;
    }
    let mut out = ControllerRows::default();
    for ((pin, timezone_id), doors) in &masks {
        if let Some(user) = users.get(pin) {
            out.insert(Row::User(user.clone()));
        }
        out.insert(Row::Authorize { pin: pin.clone(), timezone_id: *timezone_id, doors: *doors });
        if let Some(schedule) = timezones.get(timezone_id) {
            out.insert(Row::Timezone { timezone_id: *timezone_id, intervals: schedule.packed() });
        }
    }
    let mut floors: BTreeMap<(String, u32), BTreeSet<u16>> = BTreeMap::new();
    for grant in floor_grants {
        if !users.contains_key(&grant.pin)
            || !timezones.contains_key(&grant.timezone_id)
            || !(1..=MAX_FLOOR_NO).contains(&grant.floor_no)
        {
            continue;
        }
        floors.entry((grant.pin.clone(), grant.timezone_id)).or_default().insert(grant.floor_no);
    }
    for ((pin, timezone_id), floors) in floors {
        if let Some(user) = users.get(&pin) {
            out.insert(Row::User(user.clone()));
        }
        if let Some(schedule) = timezones.get(&timezone_id) {
            out.insert(Row::Timezone { timezone_id, intervals: schedule.packed() });
        }
        out.insert(Row::EleAuthorize { pin, timezone_id, floors });
    }
    for (date, holiday_type, yearly) in holidays {
        out.insert(Row::Holiday { date: *date, holiday_type: *holiday_type, yearly: *yearly });
    }
    out
}

/// A local date and time as visits are given (`YYYY-MM-DD HH:MM:SS`, the controllers' and
/// CVSecurity's form): its day, and the text itself, which orders as the time does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalTime {
    text: String,
}

impl LocalTime {
    /// The day (what a controller's `StartTime`/`EndTime` can hold).
    pub fn date(&self) -> AccessDate {
        // Checked when read.
        self.text[..10].parse().unwrap_or_else(|_| unreachable!("a checked date"))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for LocalTime {
    type Err = AccessError;
    fn from_str(text: &str) -> Result<LocalTime, AccessError> {
        let bad = || AccessError::BadLocalTime(text.to_owned());
        let text = text.trim();
        let (date, clock) = text.split_once(' ').ok_or_else(bad)?;
        date.parse::<AccessDate>().map_err(|_| bad())?;
        let parts: Vec<&str> = clock.split(':').collect();
        let [h, m, s] = parts.as_slice() else { return Err(bad()) };
        let number = |p: &str, max: u8| -> Option<u8> {
            (p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
                .filter(|n| *n <= max)
        };
        number(h, 23).zip(number(m, 59)).zip(number(s, 59)).ok_or_else(bad)?;
        Ok(LocalTime { text: text.to_owned() })
    }
}

/// Where a visit is at a moment: its visitor is on the controllers of its levels only while
/// it is [`VisitPhase::Active`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum VisitPhase {
    Upcoming = 0,
    Active = 1,
    /// Its end passed, or the visitor left.
    Over = 2,
}

impl VisitPhase {
    /// The phase at `now` of a visit from `starts_at` to `ends_at` (the end excluded).
    pub fn at(starts_at: &LocalTime, ends_at: &LocalTime, exited: bool, now: &LocalTime) -> VisitPhase {
        if exited || now >= ends_at {
            VisitPhase::Over
        } else if now >= starts_at {
            VisitPhase::Active
        } else {
            VisitPhase::Upcoming
        }
    }

    /// As stored (`access_visits.planned_phase`); an unknown number reads as over.
    pub fn from_number(n: i64) -> VisitPhase {
        match n {
            0 => VisitPhase::Upcoming,
            1 => VisitPhase::Active,
            _ => VisitPhase::Over,
        }
    }
}

/// A visitor's pin on the controllers: "8" and the visit's id in (at least) 8 digits, in the
/// shape of CVSecurity's visitor pins (`800000001`).
pub fn visitor_pin(visit_id: i64) -> String {
    format!("8{visit_id:08}")
}

/// A visitor as a controller holds them: valid from the day the visit starts to the day it ends
/// (the controller enforces days; the bridge removes them when the visit ends or they leave).
pub fn visitor_user(
    visit_id: i64,
    name: &str,
    card: &str,
    starts_at: &LocalTime,
    ends_at: &LocalTime,
) -> ControllerUser {
    ControllerUser {
        pin: visitor_pin(visit_id),
        name: name.to_owned(),
        card: card.to_owned(),
        password: String::new(),
        start_date: Some(starts_at.date()),
        end_date: Some(ends_at.date()),
    }
}

#[cfg(test)]
mod tests;
