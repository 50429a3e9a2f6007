//! Commands the server queues for a device, and their encoding to the exact text that follows
//! `C:<id>:` in a getrequest reply (`protocol.md` §5.1, §5.2).
//!
//! A [`DeviceCommand`] is typed: callers never format command text. [`DeviceCommand::encode`]
//! validates every value first: TAB separates fields and LF separates commands, so a value with
//! a TAB, CR, LF, NUL or any other control character would split the command (a name
//! `"A\tPri=14"` would make the user an administrator) and is refused with a [`CommandError`]
//! naming the field; lengths are bounded by what firmware stores.
//!
//! Serde gives the JSON form used by the API and stored with each queued command:
//! `{"type": "user_upsert", "pin": "016", "name": "Ana", ...}`.

use serde::{Deserialize, Serialize};

use crate::access::{self, AccessTable, AuxOutputAction, DoorAction, FloorAction};
use crate::time::LocalDateTime;

/// Longest PIN accepted (devices store alphanumeric PINs of up to ~20 digits; `protocol.md` §10.15).
pub const PIN_MAX_LEN: usize = 24;
/// Longest user name, in characters (one implementation truncates at 24; `protocol.md` §5.2).
pub const NAME_MAX_CHARS: usize = 24;
/// Longest device password.
pub const PASSWORD_MAX_LEN: usize = 8;
/// Longest base64 template (BIODATA templates are ~12 KB, face templates larger).
pub const TEMPLATE_MAX_LEN: usize = 256 * 1024;
/// Longest `SET OPTION` value.
pub const OPTION_VALUE_MAX_LEN: usize = 256;

/// Privilege values the firmware knows (`protocol.md` §4.2): 0 normal user, 2 enroller,
/// 6 administrator, 10 user-defined, 14 super administrator.
pub const PRIVILEGES: [u8; 5] = [0, 2, 6, 10, 14];

fn default_group() -> u16 {
    1
}

fn default_time_zones() -> String {
    "0000000100000000".to_owned()
}

fn default_verify() -> i16 {
    -1
}

fn default_valid() -> u8 {
    1
}

/// A command for one device, tagged by `type` (`user_upsert`, `reboot`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeviceCommand {
    /// `DATA UPDATE USERINFO`: add or replace a user. Every field is sent, because some firmware
    /// resets fields that are sent empty or left out (`protocol.md` §10.14).
    UserUpsert {
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 24, pattern = "^[A-Za-z0-9]+$"))]
        pin: String,
        #[serde(default)]
        name: String,
        /// The user's privilege: 0 (user), 2 (enroller), 6 (administrator), 10 (user-defined) or 14
        /// (super administrator).
        #[serde(default)]
        privilege: u8,
        #[serde(default)]
        password: String,
        /// Decimal card number, or 4 hex bytes in brackets (`[15CD5B07]`); empty for none.
        #[serde(default)]
        card: String,
        #[serde(default = "default_group")]
        group: u16,
        /// The user's 16-digit access time-zone setting (`TZ=`), not a clock zone.
        #[serde(default = "default_time_zones")]
        time_zones: String,
        /// Verification mode; -1 uses the group's mode.
        #[serde(default = "default_verify")]
        verify: i16,
        #[serde(default)]
        vice_card: String,
        /// Validity window; sent only when given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_datetime: Option<LocalDateTime>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end_datetime: Option<LocalDateTime>,
    },
    /// `DATA DELETE USERINFO PIN=…`: removes the user and their biometrics.
    UserDelete {
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 24, pattern = "^[A-Za-z0-9]+$"))]
        pin: String,
    },
    /// `DATA UPDATE FINGERTMP`: a ZKFinger template (base64) for finger 0-9.
    FingerprintUpsert {
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 24, pattern = "^[A-Za-z0-9]+$"))]
        pin: String,
        finger: u8,
        #[serde(default = "default_valid")]
        valid: u8,
        template: String,
    },
    /// `DATA DELETE FINGERTMP PIN=…[\tFID=…]`: one finger, or all of the user's.
    FingerprintDelete {
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 24, pattern = "^[A-Za-z0-9]+$"))]
        pin: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        finger: Option<u8>,
    },
    /// `DATA UPDATE FACE`: a near-infrared face template.
    FaceUpsert {
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 24, pattern = "^[A-Za-z0-9]+$"))]
        pin: String,
        #[serde(default)]
        face_id: u8,
        #[serde(default = "default_valid")]
        valid: u8,
        template: String,
    },
    /// `DATA DELETE FACE PIN=…`.
    FaceDelete {
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 24, pattern = "^[A-Za-z0-9]+$"))]
        pin: String,
    },
    /// `DATA UPDATE BIODATA`: a unified template. `bio_type` 1 fingerprint, 2 NIR face, 7 finger
    /// vein, 8 palm, 9 visible-light face; the versions must match the target device's
    /// algorithm, or it answers -12 / -30 (`protocol.md` §4.3).
    BiodataUpsert {
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 24, pattern = "^[A-Za-z0-9]+$"))]
        pin: String,
        bio_type: u8,
        #[serde(default)]
        no: u8,
        #[serde(default)]
        index: u8,
        #[serde(default = "default_valid")]
        valid: u8,
        #[serde(default)]
        duress: u8,
        major_ver: u16,
        #[serde(default)]
        minor_ver: u16,
        #[serde(default)]
        format: u8,
        template: String,
    },
    /// `DATA DELETE BIODATA Pin=…[\tType=…[\tNo=…]]`.
    BiodataDelete {
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 24, pattern = "^[A-Za-z0-9]+$"))]
        pin: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bio_type: Option<u8>,
        /// Only with `bio_type`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        no: Option<u8>,
    },
    /// `CLEAR LOG`: deletes the attendance log on the device.
    ClearLog,
    /// `CLEAR PHOTO`: deletes attendance photos.
    ClearPhoto,
    /// `CLEAR DATA`: wipes users, templates **and attendance** (`protocol.md` §5.2).
    ClearData,
    /// `REBOOT`. Always the last command of a poll: nothing after it would be run.
    Reboot,
    /// `INFO`: the device answers with its options in the result body.
    Info,
    /// `CHECK`: the device handshakes again (setting its clock from the reply) and re-uploads
    /// tables whose stamp is 0.
    Check,
    /// `LOG`: upload new data now.
    UploadNew,
    /// `RELOAD OPTIONS`.
    ReloadOptions,
    /// `DATA QUERY ATTLOG StartTime=…\tEndTime=…`: the device re-uploads the punches of a range
    /// (device local time) as ordinary ATTLOG posts; `Return` is the number found.
    QueryAttlog { start_time: LocalDateTime, end_time: LocalDateTime },
    /// `DATA QUERY USERINFO [PIN=…]`: users come back as OPERLOG `USER` lines (no PIN: all
    /// users, on firmware that supports it).
    QueryUserinfo {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pin: Option<String>,
    },
    /// `SET OPTION <key>=<value>` (one option per command).
    SetOption { key: String, value: String },
    /// `SET OPTIONS DateTime=<encoded>`: sets the clock (the Security PUSH form; attendance
    /// firmware sets its clock from the handshake instead: see `check`).
    SetClock { local_time: LocalDateTime },
    /// `AC_UNLOCK`: opens the door output (access-capable models).
    Unlock,
    /// `CONTROL DEVICE 01<door>01<seconds>`: opens door `door` (1-99) for `seconds` (1-99)
    /// (Security PUSH access controllers, `protocol.md` §5.3).
    DoorOpen { door: u8, seconds: u8 },
    /// `DATA UPDATE user …`: a user of a Security PUSH access controller (see
    /// [`access`](crate::access) for the choices made where the reference guesses).
    AccessUserUpsert {
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 24, pattern = "^[A-Za-z0-9]+$"))]
        pin: String,
        #[serde(default)]
        name: String,
        /// Decimal card number, or 4 hex bytes in brackets; empty for none.
        #[serde(default)]
        card: String,
        #[serde(default)]
        password: String,
        #[serde(default = "default_group")]
        group: u16,
        /// First valid day, `YYYYMMDD`; absent: unlimited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_date: Option<u32>,
        /// Last valid day, `YYYYMMDD`; absent: unlimited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end_date: Option<u32>,
        #[serde(default)]
        privilege: u8,
    },
    /// `DATA DELETE user Pin=…` on an access controller.
    AccessUserDelete {
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 24, pattern = "^[A-Za-z0-9]+$"))]
        pin: String,
    },
    /// `DATA UPDATE userauthorize`: the doors (bitmask, door n → bit n-1) a user may open
    /// during one time zone.
    AccessAuthorizeUpsert {
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 24, pattern = "^[A-Za-z0-9]+$"))]
        pin: String,
        timezone_id: u32,
        doors: u32,
    },
    /// `DATA DELETE userauthorize Pin=…\tAuthorizeTimezoneId=…`.
    AccessAuthorizeDelete {
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 24, pattern = "^[A-Za-z0-9]+$"))]
        pin: String,
        timezone_id: u32,
    },
    /// `DATA UPDATE usereleauthorize`: the floors (1-256, at least one) a user may select on
    /// an elevator controller during one time zone (sent as a mask: see
    /// [`access::ele_authorize_line`]).
    AccessEleAuthorizeUpsert {
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 24, pattern = "^[A-Za-z0-9]+$"))]
        pin: String,
        timezone_id: u32,
        floors: Vec<u16>,
    },
    /// `DATA DELETE usereleauthorize Pin=…\tAuthorizeTimezoneId=…`.
    AccessEleAuthorizeDelete {
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 24, pattern = "^[A-Za-z0-9]+$"))]
        pin: String,
        timezone_id: u32,
    },
    /// `DATA UPDATE timezone`: 30 packed intervals (3 per weekday Sunday first, then 3 per
    /// holiday type), each `(HHMM start << 16) | HHMM end`, 0 for none.
    AccessTimezoneUpsert { timezone_id: u32, intervals: Vec<u32> },
    /// `DATA DELETE timezone TimezoneId=…`.
    AccessTimezoneDelete { timezone_id: u32 },
    /// `DATA UPDATE holiday`: `date` as `YYYYMMDD`, type 1-3, every year or that date only.
    AccessHolidayUpsert { date: u32, holiday_type: u8, yearly: bool },
    /// `DATA DELETE holiday Holiday=…`.
    AccessHolidayDelete { date: u32 },
    /// `DATA DELETE <table> *`: empties one access table (a full re-sync starts with these).
    AccessClear { table: AccessTable },
    /// `CONTROL DEVICE AABBCCDD` on door `door` (1-32): open for `seconds` (1-254, only with
    /// `open`), close, normally open, cancel alarm, normal-open zone on/off.
    DoorControl {
        door: u8,
        action: DoorAction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seconds: Option<u8>,
    },
    /// `CONTROL DEVICE 01 nn 02 dd` on auxiliary output `output` (1-32): on for `seconds`
    /// (1-254, only with `open`), off, or latched on.
    AuxOutputControl {
        output: u8,
        action: AuxOutputAction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seconds: Option<u8>,
    },
    /// `CONTROL DEVICE 11|12 <32-byte floor mask> dd` on an elevator controller's floors
    /// (1-256, at least one): released for `seconds` (1-254, only with `open`), closed, or
    /// released until closed (see [`access::floor_operand`]).
    FloorControl {
        floors: Vec<u16>,
        action: FloorAction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seconds: Option<u8>,
    },
}

/// What is wrong with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldProblem {
    Empty,
    TooLong {
        max: usize,
    },
    /// TAB, CR, LF, NUL or another control character: it would split the command.
    ControlCharacter,
    /// A bidirectional control or a Unicode line separator: the value would show on the
    /// terminal other than it reads here.
    UnsafeCharacter,
    /// Only ASCII letters and digits are allowed.
    NotAlphanumeric,
    /// Not a base64 template.
    NotBase64,
    OutOfRange,
    /// Not in the expected format (described).
    Format(&'static str),
}

impl std::fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldProblem::Empty => f.write_str("must not be empty"),
            FieldProblem::TooLong { max } => write!(f, "is longer than {max}"),
            FieldProblem::ControlCharacter => {
                f.write_str("contains a control character (TAB, CR, LF, NUL, ...), which would split the command")
            }
            FieldProblem::UnsafeCharacter => {
                f.write_str("contains a bidirectional control or line separator (U+202E, U+2028, ...)")
            }
            FieldProblem::NotAlphanumeric => f.write_str("must be ASCII letters and digits only"),
            FieldProblem::NotBase64 => f.write_str("must be a base64 template"),
            FieldProblem::OutOfRange => f.write_str("is out of range"),
            FieldProblem::Format(what) => write!(f, "must be {what}"),
        }
    }
}

/// A command that cannot be encoded safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("{field} {problem}")]
    InvalidField { field: &'static str, problem: FieldProblem },
}

fn invalid(field: &'static str, problem: FieldProblem) -> CommandError {
    CommandError::InvalidField { field, problem }
}

/// Free text: no control characters, bidirectional controls or line separators, at most
/// `max_chars` characters.
fn text(field: &'static str, value: &str, max_chars: usize) -> Result<(), CommandError> {
    if value.chars().any(char::is_control) {
        return Err(invalid(field, FieldProblem::ControlCharacter));
    }
    if crate::text::has_unsafe_chars(value) {
        return Err(invalid(field, FieldProblem::UnsafeCharacter));
    }
    if value.chars().count() > max_chars {
        return Err(invalid(field, FieldProblem::TooLong { max: max_chars }));
    }
    Ok(())
}

/// ASCII letters and digits, 1 to `max` of them (empty allowed when `allow_empty`).
fn alphanumeric(field: &'static str, value: &str, max: usize, allow_empty: bool) -> Result<(), CommandError> {
    if value.chars().any(char::is_control) {
        return Err(invalid(field, FieldProblem::ControlCharacter));
    }
    if value.is_empty() && !allow_empty {
        return Err(invalid(field, FieldProblem::Empty));
    }
    if value.len() > max {
        return Err(invalid(field, FieldProblem::TooLong { max }));
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid(field, FieldProblem::NotAlphanumeric));
    }
    Ok(())
}

fn pin(value: &str) -> Result<(), CommandError> {
    alphanumeric("pin", value, PIN_MAX_LEN, false)
}

/// A card: empty, up to 20 decimal digits, or `[` 8 hex digits `]` (`protocol.md` §4.2).
fn card(field: &'static str, value: &str) -> Result<(), CommandError> {
    if value.chars().any(char::is_control) {
        return Err(invalid(field, FieldProblem::ControlCharacter));
    }
    let decimal = value.len() <= 20 && value.bytes().all(|b| b.is_ascii_digit());
    let bracketed = value.len() == 10
        && value.starts_with('[')
        && value.ends_with(']')
        && value[1..9].bytes().all(|b| b.is_ascii_hexdigit());
    if decimal || bracketed {
        Ok(())
    } else {
        Err(invalid(field, FieldProblem::Format("up to 20 digits or [8 hex digits]")))
    }
}

/// Checks a base64 template and returns its decoded length (the `Size=` firmware expects).
fn template(value: &str) -> Result<usize, CommandError> {
    const FIELD: &str = "template";
    if value.chars().any(char::is_control) {
        return Err(invalid(FIELD, FieldProblem::ControlCharacter));
    }
    if value.is_empty() {
        return Err(invalid(FIELD, FieldProblem::Empty));
    }
    if value.len() > TEMPLATE_MAX_LEN {
        return Err(invalid(FIELD, FieldProblem::TooLong { max: TEMPLATE_MAX_LEN }));
    }
    let bytes = value.as_bytes();
    let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &bytes[..bytes.len() - padding];
    let alphabet = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    if !bytes.len().is_multiple_of(4) || padding > 2 || !body.iter().all(alphabet) {
        return Err(invalid(FIELD, FieldProblem::NotBase64));
    }
    Ok(bytes.len() / 4 * 3 - padding)
}

fn range(field: &'static str, value: u32, min: u32, max: u32) -> Result<(), CommandError> {
    if (min..=max).contains(&value) { Ok(()) } else { Err(invalid(field, FieldProblem::OutOfRange)) }
}

/// Meaning of a `Return=` code (`protocol.md` §6), for people reading a command's result.
pub fn return_code_meaning(code: i64) -> &'static str {
    match code {
        0 => "success",
        1.. => "success (count of records or bytes)",
        -1 => "bad parameter (also: no data, for DATA QUERY on some firmware)",
        -2 => "photo size mismatch",
        -3 => "read/write error",
        -9 => "template size mismatch",
        -10 => "PIN not on the device",
        -11 => "bad fingerprint template format",
        -12 => "invalid fingerprint template",
        -30 => "template or algorithm version mismatch",
        -1001 => "capacity reached",
        -1002 => "not supported",
        -1003 => "execution timed out",
        -1004 => "data inconsistent with the device configuration",
        -1005 => "device busy",
        -1006 => "data too long",
        -1007 => "memory error",
        -1008 => "could not fetch data from the server",
        _ => "error (code not documented)",
    }
}

/// Whether a `Return=` code means the command did what it was asked: 0, or a count for the
/// queries (none of our commands uses the positive failure codes of `ENROLL_*`).
pub fn return_code_succeeded(code: i64) -> bool {
    code >= 0
}

impl DeviceCommand {
    /// The JSON `type` of the command (`user_upsert`, `reboot`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            DeviceCommand::UserUpsert { .. } => "user_upsert",
            DeviceCommand::UserDelete { .. } => "user_delete",
            DeviceCommand::FingerprintUpsert { .. } => "fingerprint_upsert",
            DeviceCommand::FingerprintDelete { .. } => "fingerprint_delete",
            DeviceCommand::FaceUpsert { .. } => "face_upsert",
            DeviceCommand::FaceDelete { .. } => "face_delete",
            DeviceCommand::BiodataUpsert { .. } => "biodata_upsert",
            DeviceCommand::BiodataDelete { .. } => "biodata_delete",
            DeviceCommand::ClearLog => "clear_log",
            DeviceCommand::ClearPhoto => "clear_photo",
            DeviceCommand::ClearData => "clear_data",
            DeviceCommand::Reboot => "reboot",
            DeviceCommand::Info => "info",
            DeviceCommand::Check => "check",
            DeviceCommand::UploadNew => "upload_new",
            DeviceCommand::ReloadOptions => "reload_options",
            DeviceCommand::QueryAttlog { .. } => "query_attlog",
            DeviceCommand::QueryUserinfo { .. } => "query_userinfo",
            DeviceCommand::SetOption { .. } => "set_option",
            DeviceCommand::SetClock { .. } => "set_clock",
            DeviceCommand::Unlock => "unlock",
            DeviceCommand::DoorOpen { .. } => "door_open",
            DeviceCommand::AccessUserUpsert { .. } => "access_user_upsert",
            DeviceCommand::AccessUserDelete { .. } => "access_user_delete",
            DeviceCommand::AccessAuthorizeUpsert { .. } => "access_authorize_upsert",
            DeviceCommand::AccessAuthorizeDelete { .. } => "access_authorize_delete",
            DeviceCommand::AccessEleAuthorizeUpsert { .. } => "access_ele_authorize_upsert",
            DeviceCommand::AccessEleAuthorizeDelete { .. } => "access_ele_authorize_delete",
            DeviceCommand::AccessTimezoneUpsert { .. } => "access_timezone_upsert",
            DeviceCommand::AccessTimezoneDelete { .. } => "access_timezone_delete",
            DeviceCommand::AccessHolidayUpsert { .. } => "access_holiday_upsert",
            DeviceCommand::AccessHolidayDelete { .. } => "access_holiday_delete",
            DeviceCommand::AccessClear { .. } => "access_clear",
            DeviceCommand::DoorControl { .. } => "door_control",
            DeviceCommand::AuxOutputControl { .. } => "aux_output_control",
            DeviceCommand::FloorControl { .. } => "floor_control",
        }
    }

    /// The user a command is about, if any.
    pub fn pin(&self) -> Option<&str> {
        match self {
            DeviceCommand::UserUpsert { pin, .. }
            | DeviceCommand::UserDelete { pin }
            | DeviceCommand::FingerprintUpsert { pin, .. }
            | DeviceCommand::FingerprintDelete { pin, .. }
            | DeviceCommand::FaceUpsert { pin, .. }
            | DeviceCommand::FaceDelete { pin }
            | DeviceCommand::BiodataUpsert { pin, .. }
            | DeviceCommand::BiodataDelete { pin, .. }
            | DeviceCommand::AccessUserUpsert { pin, .. }
            | DeviceCommand::AccessUserDelete { pin }
            | DeviceCommand::AccessAuthorizeUpsert { pin, .. }
            | DeviceCommand::AccessAuthorizeDelete { pin, .. }
            | DeviceCommand::AccessEleAuthorizeUpsert { pin, .. }
            | DeviceCommand::AccessEleAuthorizeDelete { pin, .. } => Some(pin),
            DeviceCommand::QueryUserinfo { pin } => pin.as_deref(),
            _ => None,
        }
    }

    /// True for `REBOOT`: a poll's reply ends with it.
    pub fn ends_poll(&self) -> bool {
        matches!(self, DeviceCommand::Reboot)
    }

    /// The command text (without `C:<id>:`), after validating every value.
    pub fn encode(&self) -> Result<String, CommandError> {
        self.validate()?;
        Ok(self.format())
    }

    fn validate(&self) -> Result<(), CommandError> {
        match self {
            DeviceCommand::UserUpsert {
                pin: p,
                name,
                privilege,
                password,
                card: c,
                group: _,
                time_zones,
                verify,
                vice_card,
                start_datetime,
                end_datetime,
            } => {
                pin(p)?;
                text("name", name, NAME_MAX_CHARS)?;
                if !PRIVILEGES.contains(privilege) {
                    return Err(invalid("privilege", FieldProblem::Format("one of 0, 2, 6, 10, 14")));
                }
                alphanumeric("password", password, PASSWORD_MAX_LEN, true)?;
                card("card", c)?;
                card("vice_card", vice_card)?;
                if time_zones.len() != 16 || !time_zones.bytes().all(|b| b.is_ascii_digit()) {
                    text("time_zones", time_zones, 16)?;
                    return Err(invalid("time_zones", FieldProblem::Format("16 digits")));
                }
                range("verify", u32::try_from(i32::from(*verify) + 1).unwrap_or(u32::MAX), 0, 256)?;
                if let (Some(start), Some(end)) = (start_datetime, end_datetime)
                    && start > end
                {
                    return Err(invalid("end_datetime", FieldProblem::Format("after start_datetime")));
                }
            }
            DeviceCommand::UserDelete { pin: p }
            | DeviceCommand::FaceDelete { pin: p }
            | DeviceCommand::QueryUserinfo { pin: Some(p) } => pin(p)?,
            DeviceCommand::FingerprintUpsert { pin: p, finger, valid, template: t } => {
                pin(p)?;
                range("finger", u32::from(*finger), 0, 9)?;
                range("valid", u32::from(*valid), 0, 255)?;
                template(t)?;
            }
            DeviceCommand::FingerprintDelete { pin: p, finger } => {
                pin(p)?;
                if let Some(finger) = finger {
                    range("finger", u32::from(*finger), 0, 9)?;
                }
            }
            DeviceCommand::FaceUpsert { pin: p, template: t, .. } => {
                pin(p)?;
                template(t)?;
            }
            DeviceCommand::BiodataUpsert { pin: p, bio_type, no, template: t, .. } => {
                pin(p)?;
                range("bio_type", u32::from(*bio_type), 0, 10)?;
                range("no", u32::from(*no), 0, 9)?;
                template(t)?;
            }
            DeviceCommand::BiodataDelete { pin: p, bio_type, no } => {
                pin(p)?;
                if let Some(bio_type) = bio_type {
                    range("bio_type", u32::from(*bio_type), 0, 10)?;
                }
                match (bio_type, no) {
                    (None, Some(_)) => return Err(invalid("no", FieldProblem::Format("given only with bio_type"))),
                    (_, Some(no)) => range("no", u32::from(*no), 0, 9)?,
                    _ => {}
                }
            }
            DeviceCommand::QueryAttlog { start_time, end_time } => {
                if start_time > end_time {
                    return Err(invalid("end_time", FieldProblem::Format("after start_time")));
                }
            }
            DeviceCommand::SetOption { key, value } => {
                if key.is_empty() {
                    return Err(invalid("key", FieldProblem::Empty));
                }
                text("key", key, 64)?;
                if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'~' || b == b'.') {
                    return Err(invalid("key", FieldProblem::Format("letters, digits, '_', '~' or '.'")));
                }
                text("value", value, OPTION_VALUE_MAX_LEN)?;
            }
            DeviceCommand::SetClock { local_time } => {
                range("local_time", u32::from(local_time.year), 2000, 2099)?;
            }
            DeviceCommand::DoorOpen { door, seconds } => {
                range("door", u32::from(*door), 1, 99)?;
                range("seconds", u32::from(*seconds), 1, 99)?;
            }
            DeviceCommand::AccessUserUpsert { pin: p, name, card: c, password, start_date, end_date, .. } => {
                pin(p)?;
                text("name", name, NAME_MAX_CHARS)?;
                card("card", c)?;
                alphanumeric("password", password, PASSWORD_MAX_LEN, true)?;
                for (field, date) in [("start_date", start_date), ("end_date", end_date)] {
                    if let Some(date) = date
                        && !access::is_yyyymmdd(*date)
                    {
                        return Err(invalid(field, FieldProblem::Format("YYYYMMDD")));
                    }
                }
                if let (Some(start), Some(end)) = (start_date, end_date)
                    && start > end
                {
                    return Err(invalid("end_date", FieldProblem::Format("not before start_date")));
                }
            }
            DeviceCommand::AccessUserDelete { pin: p }
            | DeviceCommand::AccessAuthorizeDelete { pin: p, .. }
            | DeviceCommand::AccessEleAuthorizeDelete { pin: p, .. } => pin(p)?,
            DeviceCommand::AccessEleAuthorizeUpsert { pin: p, floors, .. } => {
                pin(p)?;
                if floors.is_empty() {
                    return Err(invalid("floors", FieldProblem::Empty));
                }
                for floor in floors {
                    range("floors", u32::from(*floor), 1, u32::from(access::MAX_FLOORS))?;
                }
            }
            DeviceCommand::AccessAuthorizeUpsert { pin: p, doors, .. } => {
                pin(p)?;
                if *doors == 0 {
                    return Err(invalid("doors", FieldProblem::Empty));
                }
            }
            DeviceCommand::AccessTimezoneUpsert { intervals, .. } => {
                if intervals.len() != access::TIMEZONE_SLOTS {
                    return Err(invalid("intervals", FieldProblem::Format("30 values")));
                }
                if !intervals.iter().all(|v| access::is_packed_interval(*v)) {
                    return Err(invalid("intervals", FieldProblem::Format("(HHMM start << 16) | HHMM end")));
                }
            }
            DeviceCommand::AccessHolidayUpsert { date, holiday_type, .. } => {
                if !access::is_yyyymmdd(*date) {
                    return Err(invalid("date", FieldProblem::Format("YYYYMMDD")));
                }
                range("holiday_type", u32::from(*holiday_type), 1, 3)?;
            }
            DeviceCommand::AccessHolidayDelete { date } => {
                if !access::is_yyyymmdd(*date) {
                    return Err(invalid("date", FieldProblem::Format("YYYYMMDD")));
                }
            }
            DeviceCommand::DoorControl { door, action, seconds } => {
                range("door", u32::from(*door), 1, 32)?;
                match (action, seconds) {
                    (DoorAction::Open, Some(s)) => range("seconds", u32::from(*s), 1, 254)?,
                    (DoorAction::Open, None) => return Err(invalid("seconds", FieldProblem::Empty)),
                    (_, Some(_)) => return Err(invalid("seconds", FieldProblem::Format("only with open"))),
                    (_, None) => {}
                }
            }
            DeviceCommand::FloorControl { floors, action, seconds } => {
                if floors.is_empty() {
                    return Err(invalid("floors", FieldProblem::Empty));
                }
                for floor in floors {
                    range("floors", u32::from(*floor), 1, u32::from(access::MAX_FLOORS))?;
                }
                match (action, seconds) {
                    (FloorAction::Open, Some(s)) => range("seconds", u32::from(*s), 1, 254)?,
                    (FloorAction::Open, None) => return Err(invalid("seconds", FieldProblem::Empty)),
                    (_, Some(_)) => return Err(invalid("seconds", FieldProblem::Format("only with open"))),
                    (_, None) => {}
                }
            }
            DeviceCommand::AuxOutputControl { output, action, seconds } => {
                range("output", u32::from(*output), 1, 32)?;
                match (action, seconds) {
                    (AuxOutputAction::Open, Some(s)) => range("seconds", u32::from(*s), 1, 254)?,
                    (AuxOutputAction::Open, None) => return Err(invalid("seconds", FieldProblem::Empty)),
                    (_, Some(_)) => return Err(invalid("seconds", FieldProblem::Format("only with open"))),
                    (_, None) => {}
                }
            }
            DeviceCommand::AccessTimezoneDelete { .. } | DeviceCommand::AccessClear { .. } => {}
            DeviceCommand::QueryUserinfo { pin: None }
            | DeviceCommand::ClearLog
            | DeviceCommand::ClearPhoto
            | DeviceCommand::ClearData
            | DeviceCommand::Reboot
            | DeviceCommand::Info
            | DeviceCommand::Check
            | DeviceCommand::UploadNew
            | DeviceCommand::ReloadOptions
            | DeviceCommand::Unlock => {}
        }
        Ok(())
    }

    /// The text, from values already validated.
    fn format(&self) -> String {
        match self {
            DeviceCommand::UserUpsert {
                pin,
                name,
                privilege,
                password,
                card,
                group,
                time_zones,
                verify,
                vice_card,
                start_datetime,
                end_datetime,
            } => {
                let mut out = format!(
                    "DATA UPDATE USERINFO PIN={pin}\tName={name}\tPri={privilege}\tPasswd={password}\tCard={card}\tGrp={group}\tTZ={time_zones}\tVerify={verify}\tViceCard={vice_card}"
                );
                if let Some(start) = start_datetime {
                    out.push_str(&format!("\tStartDatetime={start}"));
                }
                if let Some(end) = end_datetime {
                    out.push_str(&format!("\tEndDatetime={end}"));
                }
                out
            }
            DeviceCommand::UserDelete { pin } => format!("DATA DELETE USERINFO PIN={pin}"),
            DeviceCommand::FingerprintUpsert { pin, finger, valid, template: t } => {
                let size = template(t).unwrap_or_default();
                format!("DATA UPDATE FINGERTMP PIN={pin}\tFID={finger}\tSize={size}\tValid={valid}\tTMP={t}")
            }
            DeviceCommand::FingerprintDelete { pin, finger: None } => format!("DATA DELETE FINGERTMP PIN={pin}"),
            DeviceCommand::FingerprintDelete { pin, finger: Some(finger) } => {
                format!("DATA DELETE FINGERTMP PIN={pin}\tFID={finger}")
            }
            DeviceCommand::FaceUpsert { pin, face_id, valid, template: t } => {
                let size = template(t).unwrap_or_default();
                format!("DATA UPDATE FACE PIN={pin}\tFID={face_id}\tValid={valid}\tSize={size}\tTMP={t}")
            }
            DeviceCommand::FaceDelete { pin } => format!("DATA DELETE FACE PIN={pin}"),
            DeviceCommand::BiodataUpsert {
                pin,
                bio_type,
                no,
                index,
                valid,
                duress,
                major_ver,
                minor_ver,
                format,
                template,
            } => format!(
                "DATA UPDATE BIODATA Pin={pin}\tNo={no}\tIndex={index}\tValid={valid}\tDuress={duress}\tType={bio_type}\tMajorVer={major_ver}\tMinorVer={minor_ver}\tFormat={format}\tTmp={template}"
            ),
            DeviceCommand::BiodataDelete { pin, bio_type, no } => {
                let mut out = format!("DATA DELETE BIODATA Pin={pin}");
                if let Some(bio_type) = bio_type {
                    out.push_str(&format!("\tType={bio_type}"));
                    if let Some(no) = no {
                        out.push_str(&format!("\tNo={no}"));
                    }
                }
                out
            }
            DeviceCommand::ClearLog => "CLEAR LOG".to_owned(),
            DeviceCommand::ClearPhoto => "CLEAR PHOTO".to_owned(),
            DeviceCommand::ClearData => "CLEAR DATA".to_owned(),
            DeviceCommand::Reboot => "REBOOT".to_owned(),
            DeviceCommand::Info => "INFO".to_owned(),
            DeviceCommand::Check => "CHECK".to_owned(),
            DeviceCommand::UploadNew => "LOG".to_owned(),
            DeviceCommand::ReloadOptions => "RELOAD OPTIONS".to_owned(),
            DeviceCommand::QueryAttlog { start_time, end_time } => {
                format!("DATA QUERY ATTLOG StartTime={start_time}\tEndTime={end_time}")
            }
            DeviceCommand::QueryUserinfo { pin: None } => "DATA QUERY USERINFO".to_owned(),
            DeviceCommand::QueryUserinfo { pin: Some(pin) } => format!("DATA QUERY USERINFO PIN={pin}"),
            DeviceCommand::SetOption { key, value } => format!("SET OPTION {key}={value}"),
            DeviceCommand::SetClock { local_time } => format!("SET OPTIONS DateTime={}", local_time.zk_encoded()),
            DeviceCommand::Unlock => "AC_UNLOCK".to_owned(),
            DeviceCommand::DoorOpen { door, seconds } => format!("CONTROL DEVICE 01{door:02}01{seconds:02}"),
            DeviceCommand::AccessUserUpsert { pin, name, card, password, group, start_date, end_date, privilege } => {
                access::user_line(pin, card, password, *group, *start_date, *end_date, name, *privilege)
            }
            DeviceCommand::AccessUserDelete { pin } => access::user_delete_line(pin),
            DeviceCommand::AccessAuthorizeUpsert { pin, timezone_id, doors } => {
                access::authorize_line(pin, *timezone_id, *doors)
            }
            DeviceCommand::AccessAuthorizeDelete { pin, timezone_id } => {
                access::authorize_delete_line(pin, *timezone_id)
            }
            DeviceCommand::AccessEleAuthorizeUpsert { pin, timezone_id, floors } => {
                access::ele_authorize_line(pin, *timezone_id, floors)
            }
            DeviceCommand::AccessEleAuthorizeDelete { pin, timezone_id } => {
                access::ele_authorize_delete_line(pin, *timezone_id)
            }
            DeviceCommand::AccessTimezoneUpsert { timezone_id, intervals } => {
                access::timezone_line(*timezone_id, intervals)
            }
            DeviceCommand::AccessTimezoneDelete { timezone_id } => access::timezone_delete_line(*timezone_id),
            DeviceCommand::AccessHolidayUpsert { date, holiday_type, yearly } => {
                access::holiday_line(*date, *holiday_type, *yearly)
            }
            DeviceCommand::AccessHolidayDelete { date } => access::holiday_delete_line(*date),
            DeviceCommand::AccessClear { table } => access::clear_line(*table),
            DeviceCommand::DoorControl { door, action, seconds } => {
                access::control_line(access::control_operand(*door, *action, seconds.unwrap_or(0)))
            }
            DeviceCommand::AuxOutputControl { output, action, seconds } => {
                access::control_line(access::aux_output_operand(*output, *action, seconds.unwrap_or(0)))
            }
            DeviceCommand::FloorControl { floors, action, seconds } => {
                access::control_line_of(&access::floor_operand(floors, *action, seconds.unwrap_or(0)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> DeviceCommand {
        DeviceCommand::UserUpsert {
            pin: "016".into(),
            name: name.into(),
            privilege: 0,
            password: "1234".into(),
            card: "[15CD5B07]".into(),
            group: 1,
            time_zones: default_time_zones(),
            verify: -1,
            vice_card: String::new(),
            start_datetime: None,
            end_datetime: None,
        }
    }

    #[test]
    fn user_upsert_sends_every_field() {
        assert_eq!(
            user("José").encode().unwrap(),
            "DATA UPDATE USERINFO PIN=016\tName=José\tPri=0\tPasswd=1234\tCard=[15CD5B07]\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard="
        );
    }

    #[test]
    fn injection_is_refused_by_field() {
        for name in ["A\tPri=14", "A\nC:2:CLEAR DATA", "A\r", "A\0"] {
            assert_eq!(
                user(name).encode(),
                Err(CommandError::InvalidField { field: "name", problem: FieldProblem::ControlCharacter }),
                "{name:?}"
            );
        }
        for name in ["\u{202E}nimda", "A\u{2028}B", "A\u{2066}B"] {
            assert_eq!(
                user(name).encode(),
                Err(CommandError::InvalidField { field: "name", problem: FieldProblem::UnsafeCharacter }),
                "{name:?}"
            );
        }
        let long = "x".repeat(NAME_MAX_CHARS + 1);
        assert_eq!(
            user(&long).encode(),
            Err(CommandError::InvalidField { field: "name", problem: FieldProblem::TooLong { max: NAME_MAX_CHARS } })
        );
        let bad_pin = DeviceCommand::UserDelete { pin: "1\tx".into() };
        assert!(matches!(bad_pin.encode(), Err(CommandError::InvalidField { field: "pin", .. })));
        let option = DeviceCommand::SetOption { key: "Delay".into(), value: "10\nREBOOT".into() };
        assert!(matches!(option.encode(), Err(CommandError::InvalidField { field: "value", .. })));
        let template =
            DeviceCommand::FingerprintUpsert { pin: "1".into(), finger: 0, valid: 1, template: "AAAA\tBBBB".into() };
        assert!(matches!(template.encode(), Err(CommandError::InvalidField { field: "template", .. })));
    }

    #[test]
    fn templates_carry_their_decoded_size() {
        let fp = DeviceCommand::FingerprintUpsert { pin: "1".into(), finger: 6, valid: 1, template: "TUFBQQ==".into() };
        assert_eq!(fp.encode().unwrap(), "DATA UPDATE FINGERTMP PIN=1\tFID=6\tSize=4\tValid=1\tTMP=TUFBQQ==");
        let bad = DeviceCommand::FingerprintUpsert { pin: "1".into(), finger: 6, valid: 1, template: "TUFBQQ=".into() };
        assert!(bad.encode().is_err());
    }

    #[test]
    fn json_form_is_tagged_and_strict() {
        let cmd: DeviceCommand = serde_json::from_str(
            r#"{"type":"query_attlog","start_time":"2026-11-20 00:00:00","end_time":"2026-11-20 23:59:59"}"#,
        )
        .unwrap();
        assert_eq!(
            cmd.encode().unwrap(),
            "DATA QUERY ATTLOG StartTime=2026-11-20 00:00:00\tEndTime=2026-11-20 23:59:59"
        );
        assert_eq!(serde_json::to_value(&cmd).unwrap()["type"], "query_attlog");
        assert!(serde_json::from_str::<DeviceCommand>(r#"{"type":"user_delete","pin":"1","extra":1}"#).is_err());
        assert!(serde_json::from_str::<DeviceCommand>(r#"{"type":"shell"}"#).is_err());
        let user: DeviceCommand = serde_json::from_str(r#"{"type":"user_upsert","pin":"7"}"#).unwrap();
        assert_eq!(
            user.encode().unwrap(),
            "DATA UPDATE USERINFO PIN=7\tName=\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard="
        );
    }

    #[test]
    fn aux_output_control_is_an_output_with_address_type_two() {
        let open: DeviceCommand =
            serde_json::from_str(r#"{"type":"aux_output_control","output":2,"action":"open","seconds":30}"#).unwrap();
        assert_eq!(open.kind(), "aux_output_control");
        assert_eq!(open.encode().unwrap(), "CONTROL DEVICE 0102021E");
        let latched =
            DeviceCommand::AuxOutputControl { output: 1, action: AuxOutputAction::NormallyOpen, seconds: None };
        assert_eq!(latched.encode().unwrap(), "CONTROL DEVICE 010102FF");
        for (output, action, seconds) in [
            (0, AuxOutputAction::Close, None),
            (33, AuxOutputAction::Close, None),
            (1, AuxOutputAction::Open, None),
            (1, AuxOutputAction::Open, Some(0)),
            (1, AuxOutputAction::Open, Some(255)),
            (1, AuxOutputAction::Close, Some(5)),
        ] {
            let command = DeviceCommand::AuxOutputControl { output, action, seconds };
            assert!(command.encode().is_err(), "{command:?}");
        }
    }

    #[test]
    fn elevator_floor_rights_are_a_hex_mask_of_valid_floors_keyed_like_door_rights() {
        let rights: DeviceCommand =
            serde_json::from_str(r#"{"type":"access_ele_authorize_upsert","pin":"7","timezone_id":2,"floors":[9,8]}"#)
                .unwrap();
        assert_eq!((rights.kind(), rights.pin()), ("access_ele_authorize_upsert", Some("7")));
        assert_eq!(
            rights.encode().unwrap(),
            "DATA UPDATE usereleauthorize Pin=7\tAuthorizeTimezoneId=2\tAuthorizeFloors=180"
        );
        let delete = DeviceCommand::AccessEleAuthorizeDelete { pin: "7".into(), timezone_id: 2 };
        assert_eq!(delete.encode().unwrap(), "DATA DELETE usereleauthorize Pin=7\tAuthorizeTimezoneId=2");
        assert_eq!(delete.kind(), "access_ele_authorize_delete");
        for (pin, floors) in [("7", vec![]), ("7", vec![0]), ("7", vec![257]), ("7\tPin=8", vec![1]), ("", vec![1])] {
            let command = DeviceCommand::AccessEleAuthorizeUpsert { pin: pin.into(), timezone_id: 1, floors };
            assert!(command.encode().is_err(), "{command:?}");
        }
        assert!(DeviceCommand::AccessEleAuthorizeDelete { pin: "7\n".into(), timezone_id: 1 }.encode().is_err());
        let clear = DeviceCommand::AccessClear { table: AccessTable::Usereleauthorize };
        assert_eq!(clear.encode().unwrap(), "DATA DELETE usereleauthorize *");
    }

    #[test]
    fn return_codes() {
        assert!(return_code_succeeded(0) && return_code_succeeded(12));
        assert!(!return_code_succeeded(-1002));
        assert_eq!(return_code_meaning(-1002), "not supported");
        assert_eq!(return_code_meaning(-77), "error (code not documented)");
    }
}
