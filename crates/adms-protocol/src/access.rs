//! Security PUSH access-control commands: the exact text of the `user`, `userauthorize`,
//! `timezone` and `holiday` rows and of `CONTROL DEVICE` (`cvsecurity_api.md` §6, §7.2, §7.3,
//! §7.7; `protocol.md` §5.3). Every choice the reference marks as a guess is made here, once:
//!
//! - **User validity** (`StartTime`/`EndTime`) is sent as `YYYYMMDD` (the form for controllers
//!   whose option `DateFmtFunOn` is 0, and one a C3-200 Plus was seen to accept); `0` means
//!   unlimited. Controllers with `DateFmtFunOn=1` want old-encoded seconds: not supported yet.
//! - **`userauthorize` rows** are keyed on the controller by (`Pin`, `AuthorizeTimezoneId`):
//!   one row per person and time zone whose `AuthorizeDoorId` is the bitmask of that
//!   controller's doors (door n → bit n-1). Controllers whose `AccSupportFunList` bit 15 asks
//!   for one door per row are not supported yet.
//! - **Deleting one `userauthorize` row** names both keys: `DATA DELETE userauthorize
//!   Pin=…\tAuthorizeTimezoneId=…` (a two-field condition, as `DATA DELETE templatev10
//!   Pin=…\tFingerID=…` is known to work; the two-key form itself is unverified on hardware).
//! - **Elevator floor rights** (`usereleauthorize`, §7.6: one OCR'd source, no capture, key
//!   spelling inconsistent there) are sent as `DATA UPDATE usereleauthorize Pin=…\t
//!   AuthorizeTimezoneId=…\tAuthorizeFloors=<mask>`: the keys of `userauthorize` for the person
//!   and time zone, and the doc's `AuthorizeFloors` for the floors, whose mask is hexadecimal,
//!   floor n → bit n-1, without leading zeros (the doc's "floors 8 and 9" → `180`). The doc's
//!   direct-floor id is not sent. All of it is in [`ele_authorize_line`] and
//!   [`ELE_AUTHORIZE_KEYS`]; a delete names the same two keys as `userauthorize`'s.
//! - **Holidays**: `Holiday=YYYYMMDD`, `HolidayType` 1–3, `Loop` 1 (every year on that month and
//!   day) or 2 (that date only).
//! - **`CONTROL DEVICE`** operands are four bytes written `%02X` (door 1 for 15 s is
//!   `0101010F`). "Normally open" is output with duration `FF` (latched), "close" duration `00`
//!   (the reference notes one C3 firmware that treats `00` differently: unverified).
//! - One record per command: the multi-record form (CRLF-separated records under one `C:` id)
//!   is not used, so each row is acknowledged on its own and a refused row names itself.

use serde::{Deserialize, Serialize};

/// Intervals of one time zone: 3 per day for Sunday … Saturday, then 3 per holiday type 1–3.
pub const TIMEZONE_SLOTS: usize = 30;

/// The `timezone` field names, in the order [`TIMEZONE_SLOTS`] values are given.
pub const TIMEZONE_FIELDS: [&str; TIMEZONE_SLOTS] = [
    "SunTime1",
    "SunTime2",
    "SunTime3",
    "MonTime1",
    "MonTime2",
    "MonTime3",
    "TueTime1",
    "TueTime2",
    "TueTime3",
    "WedTime1",
    "WedTime2",
    "WedTime3",
    "ThuTime1",
    "ThuTime2",
    "ThuTime3",
    "FriTime1",
    "FriTime2",
    "FriTime3",
    "SatTime1",
    "SatTime2",
    "SatTime3",
    "Hol1Time1",
    "Hol1Time2",
    "Hol1Time3",
    "Hol2Time1",
    "Hol2Time2",
    "Hol2Time3",
    "Hol3Time1",
    "Hol3Time2",
    "Hol3Time3",
];

/// The access tables a full re-sync clears (`DATA DELETE <table> *`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AccessTable {
    User,
    Userauthorize,
    /// Elevator floor rights (elevator controllers only).
    Usereleauthorize,
    Timezone,
    Holiday,
}

impl AccessTable {
    /// The table's name on the wire.
    pub fn wire_name(self) -> &'static str {
        match self {
            AccessTable::User => "user",
            AccessTable::Userauthorize => "userauthorize",
            AccessTable::Usereleauthorize => "usereleauthorize",
            AccessTable::Timezone => "timezone",
            AccessTable::Holiday => "holiday",
        }
    }
}

/// What a `CONTROL DEVICE` command does to a door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DoorAction {
    /// Unlock for `seconds` (1–254): `01 dd 01 ss`.
    Open,
    /// Lock now (ends a timed or latched open): `01 dd 01 00`.
    Close,
    /// Unlock until closed (normally open on): `01 dd 01 FF`.
    NormallyOpen,
    /// Cancel the door's alarm: `02 dd 00 00`.
    CancelAlarm,
    /// Enable today's normal-open time zone: `04 dd 01 00`.
    EnableNormalOpenZone,
    /// Disable today's normal-open time zone: `04 dd 00 00`.
    DisableNormalOpenZone,
}

/// The four operand bytes of `CONTROL DEVICE` for `action` on door `door` (`seconds` only for
/// [`DoorAction::Open`]).
pub fn control_operand(door: u8, action: DoorAction, seconds: u8) -> [u8; 4] {
    match action {
        DoorAction::Open => [0x01, door, 0x01, seconds],
        DoorAction::Close => [0x01, door, 0x01, 0x00],
        DoorAction::NormallyOpen => [0x01, door, 0x01, 0xFF],
        DoorAction::CancelAlarm => [0x02, door, 0x00, 0x00],
        DoorAction::EnableNormalOpenZone => [0x04, door, 0x01, 0x00],
        DoorAction::DisableNormalOpenZone => [0x04, door, 0x00, 0x00],
    }
}

/// What a `CONTROL DEVICE` command does to an auxiliary output (a relay that is not a lock:
/// sirens, barriers, lights; `AuxOutCount` of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuxOutputAction {
    /// Switch on for `seconds` (1–254): `01 nn 02 ss`.
    Open,
    /// Switch off now: `01 nn 02 00`.
    Close,
    /// Switch on until closed (latched): `01 nn 02 FF`.
    NormallyOpen,
}

/// The four operand bytes of `CONTROL DEVICE` for `action` on auxiliary output `output`
/// (`seconds` only for [`AuxOutputAction::Open`]): the output operation (`01`) with address type
/// `02`, "aux output" (§7.7), where a door's has `01`, "lock".
pub fn aux_output_operand(output: u8, action: AuxOutputAction, seconds: u8) -> [u8; 4] {
    match action {
        AuxOutputAction::Open => [0x01, output, 0x02, seconds],
        AuxOutputAction::Close => [0x01, output, 0x02, 0x00],
        AuxOutputAction::NormallyOpen => [0x01, output, 0x02, 0xFF],
    }
}

/// Floors an elevator controller's mask can name (32 bytes).
pub const MAX_FLOORS: u16 = 256;

/// What a `CONTROL DEVICE` command does to an elevator's floors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FloorAction {
    /// Release the floors' buttons for `seconds` (1–254): `11 <mask> ss`.
    Open,
    /// End a release now: `11 <mask> 00` (our choice: the reference documents no close for
    /// floors; a door's close is its open with duration 0).
    Close,
    /// Release until closed (normal open): `12 <mask> FF`.
    NormallyOpen,
}

/// The operand bytes of `CONTROL DEVICE` for `action` on elevator floors `floors` (1–256;
/// `seconds` only for [`FloorAction::Open`]): the operation (`11` timed release, `12` normal
/// open), the 32-byte floor mask written most-significant bit first (floor 1 is `80` in the
/// first byte, floor 9 `80` in the second), then the duration. Every choice about the elevator
/// encoding is here (`cvsecurity_api.md` §7.6, one source, no capture): change it here.
pub fn floor_operand(floors: &[u16], action: FloorAction, seconds: u8) -> Vec<u8> {
    let mut mask = [0u8; 32];
    for floor in floors.iter().filter(|f| (1..=MAX_FLOORS).contains(f)) {
        let bit = usize::from(floor - 1);
        mask[bit / 8] |= 0x80 >> (bit % 8);
    }
    let (operation, duration) = match action {
        FloorAction::Open => (0x11, seconds),
        FloorAction::Close => (0x11, 0x00),
        FloorAction::NormallyOpen => (0x12, 0xFF),
    };
    let mut operand = Vec::with_capacity(34);
    operand.push(operation);
    operand.extend_from_slice(&mask);
    operand.push(duration);
    operand
}

/// `CONTROL DEVICE` with any number of operand bytes, each `%02X`.
pub fn control_line_of(operand: &[u8]) -> String {
    let mut line = String::from("CONTROL DEVICE ");
    for byte in operand {
        line.push_str(&format!("{byte:02X}"));
    }
    line
}

/// `CONTROL DEVICE AABBCCDD`.
pub fn control_line(operand: [u8; 4]) -> String {
    let [a, b, c, d] = operand;
    format!("CONTROL DEVICE {a:02X}{b:02X}{c:02X}{d:02X}")
}

/// One interval as the controller stores it: start and end as HHMM decimal, start shifted left
/// 16 bits (`08:30–12:00` → `830 << 16 | 1200`); `0` is no interval.
pub fn pack_interval(start_minute: u16, end_minute: u16) -> u32 {
    let hhmm = |m: u16| u32::from(m / 60) * 100 + u32::from(m % 60);
    (hhmm(start_minute) << 16) | hhmm(end_minute)
}

/// A user row's validity date (`YYYYMMDD`), or `0` for unlimited.
fn validity(date: Option<u32>) -> u32 {
    date.unwrap_or(0)
}

/// `DATA UPDATE user …`, fields in the order of `protocol.md` §5.3.
#[allow(clippy::too_many_arguments)]
pub fn user_line(
    pin: &str,
    card: &str,
    password: &str,
    group: u16,
    start_date: Option<u32>,
    end_date: Option<u32>,
    name: &str,
    privilege: u8,
) -> String {
    format!(
        "DATA UPDATE user CardNo={card}\tPin={pin}\tPassword={password}\tGroup={group}\tStartTime={}\tEndTime={}\tName={name}\tPrivilege={privilege}",
        validity(start_date),
        validity(end_date)
    )
}

/// `DATA DELETE user Pin=…`.
pub fn user_delete_line(pin: &str) -> String {
    format!("DATA DELETE user Pin={pin}")
}

/// `DATA UPDATE userauthorize Pin=…\tAuthorizeTimezoneId=…\tAuthorizeDoorId=<bitmask>`.
pub fn authorize_line(pin: &str, timezone_id: u32, doors: u32) -> String {
    format!("DATA UPDATE userauthorize Pin={pin}\tAuthorizeTimezoneId={timezone_id}\tAuthorizeDoorId={doors}")
}

/// `DATA DELETE userauthorize Pin=…\tAuthorizeTimezoneId=…`.
pub fn authorize_delete_line(pin: &str, timezone_id: u32) -> String {
    format!("DATA DELETE userauthorize Pin={pin}\tAuthorizeTimezoneId={timezone_id}")
}

/// The table and keys of an elevator floor right: table, person, time zone, floor mask (see
/// the module docs: the reference is unsure of the spelling; change it here).
pub const ELE_AUTHORIZE_KEYS: [&str; 4] = ["usereleauthorize", "Pin", "AuthorizeTimezoneId", "AuthorizeFloors"];

/// The floor mask of `usereleauthorize`: floor n → bit n-1 of a number of up to 256 bits,
/// written in uppercase hexadecimal without leading zeros (floors 8 and 9 → `180`; no floor
/// → `0`). Floors outside 1–[`MAX_FLOORS`] are ignored.
pub fn floor_mask_hex(floors: &[u16]) -> String {
    // Little-endian nibbles: nibble i holds floors 4i+1 … 4i+4.
    let mut nibbles = [0u8; 64];
    for floor in floors.iter().filter(|f| (1..=MAX_FLOORS).contains(f)) {
        let bit = usize::from(floor - 1);
        nibbles[bit / 4] |= 1 << (bit % 4);
    }
    let top = nibbles.iter().rposition(|n| *n != 0).unwrap_or(0);
    nibbles[..=top].iter().rev().map(|n| format!("{n:X}")).collect()
}

/// `DATA UPDATE usereleauthorize Pin=…\tAuthorizeTimezoneId=…\tAuthorizeFloors=<hex mask>`.
pub fn ele_authorize_line(pin: &str, timezone_id: u32, floors: &[u16]) -> String {
    let [table, pin_key, timezone_key, floors_key] = ELE_AUTHORIZE_KEYS;
    format!(
        "DATA UPDATE {table} {pin_key}={pin}\t{timezone_key}={timezone_id}\t{floors_key}={}",
        floor_mask_hex(floors)
    )
}

/// `DATA DELETE usereleauthorize Pin=…\tAuthorizeTimezoneId=…`.
pub fn ele_authorize_delete_line(pin: &str, timezone_id: u32) -> String {
    let [table, pin_key, timezone_key, _] = ELE_AUTHORIZE_KEYS;
    format!("DATA DELETE {table} {pin_key}={pin}\t{timezone_key}={timezone_id}")
}

/// `DATA UPDATE timezone TimezoneId=…\tSunTime1=…` … `Hol3Time3=…`.
pub fn timezone_line(timezone_id: u32, intervals: &[u32]) -> String {
    let mut out = format!("DATA UPDATE timezone TimezoneId={timezone_id}");
    for (field, value) in TIMEZONE_FIELDS.iter().zip(intervals) {
        out.push_str(&format!("\t{field}={value}"));
    }
    out
}

/// `DATA DELETE timezone TimezoneId=…`.
pub fn timezone_delete_line(timezone_id: u32) -> String {
    format!("DATA DELETE timezone TimezoneId={timezone_id}")
}

/// `DATA UPDATE holiday Holiday=YYYYMMDD\tHolidayType=…\tLoop=…`.
pub fn holiday_line(date: u32, holiday_type: u8, yearly: bool) -> String {
    let repeat = if yearly { 1 } else { 2 };
    format!("DATA UPDATE holiday Holiday={date}\tHolidayType={holiday_type}\tLoop={repeat}")
}

/// `DATA DELETE holiday Holiday=YYYYMMDD`.
pub fn holiday_delete_line(date: u32) -> String {
    format!("DATA DELETE holiday Holiday={date}")
}

/// `DATA DELETE <table> *`.
pub fn clear_line(table: AccessTable) -> String {
    format!("DATA DELETE {} *", table.wire_name())
}

/// Whether `date` is a plausible `YYYYMMDD` (year 2000–2099, month 1–12, day 1–31).
pub fn is_yyyymmdd(date: u32) -> bool {
    let (year, month, day) = (date / 10_000, date / 100 % 100, date % 100);
    (2000..=2099).contains(&year) && (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// Whether `value` is a packed interval of two HHMM times, start not after end.
pub fn is_packed_interval(value: u32) -> bool {
    if value == 0 {
        return true;
    }
    let valid = |hhmm: u32| hhmm / 100 < 24 && hhmm % 100 < 60;
    let (start, end) = (value >> 16, value & 0xFFFF);
    valid(start) && valid(end) && start <= end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_reference() {
        assert_eq!(control_line(control_operand(1, DoorAction::Open, 5)), "CONTROL DEVICE 01010105");
        assert_eq!(control_line(control_operand(1, DoorAction::Open, 15)), "CONTROL DEVICE 0101010F");
        assert_eq!(control_line(control_operand(1, DoorAction::CancelAlarm, 0)), "CONTROL DEVICE 02010000");
        assert_eq!(control_line(control_operand(2, DoorAction::NormallyOpen, 0)), "CONTROL DEVICE 010201FF");
        assert_eq!(control_line(aux_output_operand(1, AuxOutputAction::Open, 5)), "CONTROL DEVICE 01010205");
        assert_eq!(control_line(aux_output_operand(2, AuxOutputAction::Close, 9)), "CONTROL DEVICE 01020200");
        assert_eq!(control_line(aux_output_operand(3, AuxOutputAction::NormallyOpen, 0)), "CONTROL DEVICE 010302FF");
        let zeros = |bytes: usize| "00".repeat(bytes);
        assert_eq!(
            control_line_of(&floor_operand(&[1], FloorAction::Open, 5)),
            format!("CONTROL DEVICE 1180{}05", zeros(31))
        );
        // Floors 8 and 9 straddle the first two bytes; 256 is the last bit of the last byte.
        assert_eq!(
            control_line_of(&floor_operand(&[8, 9, 256], FloorAction::NormallyOpen, 0)),
            format!("CONTROL DEVICE 120180{}01FF", zeros(29))
        );
        assert_eq!(
            control_line_of(&floor_operand(&[2], FloorAction::Close, 9)),
            format!("CONTROL DEVICE 1140{}00", zeros(31))
        );
        assert_eq!(pack_interval(0, 23 * 60 + 59), 2359);
        assert_eq!(pack_interval(8 * 60 + 30, 12 * 60), 830 * 65536 + 1200);
        assert!(is_packed_interval(pack_interval(8 * 60 + 30, 12 * 60)));
        assert!(!is_packed_interval(pack_interval(12 * 60, 8 * 60)));
        assert_eq!(
            authorize_line("7", 2, 3),
            "DATA UPDATE userauthorize Pin=7\tAuthorizeTimezoneId=2\tAuthorizeDoorId=3"
        );
        assert_eq!(floor_mask_hex(&[8, 9]), "180", "the reference's example");
        assert_eq!(floor_mask_hex(&[1]), "1");
        assert_eq!(floor_mask_hex(&[]), "0");
        assert_eq!(floor_mask_hex(&[0, 257]), "0");
        assert_eq!(floor_mask_hex(&[256]), format!("8{}", "0".repeat(63)));
        assert_eq!(floor_mask_hex(&[1, 2, 3, 4, 5, 16]), "801F");
        assert_eq!(
            ele_authorize_line("7", 2, &[8, 9]),
            "DATA UPDATE usereleauthorize Pin=7\tAuthorizeTimezoneId=2\tAuthorizeFloors=180"
        );
        assert_eq!(ele_authorize_delete_line("7", 2), "DATA DELETE usereleauthorize Pin=7\tAuthorizeTimezoneId=2");
        assert_eq!(holiday_line(20261225, 1, true), "DATA UPDATE holiday Holiday=20261225\tHolidayType=1\tLoop=1");
        assert_eq!(clear_line(AccessTable::Userauthorize), "DATA DELETE userauthorize *");
        assert!(is_yyyymmdd(20261231) && !is_yyyymmdd(20261301) && !is_yyyymmdd(19991231));
    }
}
