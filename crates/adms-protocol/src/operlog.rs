//! `table=OPERLOG` (and `table=BIODATA`) lines: operation log, roster and biometric records
//! (`protocol.md` §3.4, §3.5, §4.2, §4.3).
//!
//! Every line starts with a record kind and a space. `OPLOG` is positional; every other kind is
//! `key=value` fields separated by TABs. Kinds we do not model are returned as
//! [`OperLogRecord::Other`] so the caller can store them raw: nothing is dropped.
//!
//! ```text
//! record   = kind [(SP / TAB) (oplog / fields)]   ; `oplog` for the kind OPLOG, any case
//! kind     = 1*(ALPHA / DIGIT / "_")             ; MissingKind
//! oplog    = op-code TAB operator TAB local-date-time *4(TAB object) *(TAB column)
//! op-code  = *WSP ["+"] 1*DIGIT *WSP             ; BadNumber; at most 65535
//! operator = column                              ; InvalidUtf8
//! object   = column
//! ```
//!
//! `fields` is the `key=value` grammar of [`crate::kv`]; USER, FP, FACE, FVEIN, BIODATA,
//! USERPIC and BIOPHOTO records then need `PIN` (`MissingKey`, `EmptyPin`, `FieldTooLong`,
//! `InvalidUtf8`, `ControlCharacter`), BIODATA also `Type`, and every numeric key they read must
//! be an `integer` (`BadNumber`).

use nom::Parser;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::combinator::{all_consuming, opt};
use nom::sequence::delimited;

use crate::grammar::{Parsed, Reject, column, column_end, fail, has_control, optional_column, reason, reason_of, tab};
use crate::kv::KvFields;
use crate::reject::RejectReason;
use crate::time::{LocalDateTime, date_time};

/// One OPERLOG/BIODATA line, borrowing from the body.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OperLogRecord<'a> {
    OpLog(OpLogRecord<'a>),
    User(UserRecord<'a>),
    Biometric(BiometricRecord<'a>),
    Photo(PhotoRecord<'a>),
    /// `IDCARD`, `WORKCODE`, `ERRORLOG` and any kind not modelled yet.
    Other {
        kind: &'a str,
        fields: KvFields<'a>,
    },
}

/// `OPLOG <op>\t<operator>\t<time>\t<obj1>\t<obj2>\t<obj3>\t<obj4>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpLogRecord<'a> {
    pub op_code: u16,
    pub operator: &'a str,
    pub time: LocalDateTime,
    pub objects: [&'a [u8]; 4],
}

/// `USER PIN=..\tName=..\tPri=..\tPasswd=..\tCard=..\tGrp=..\tTZ=..\tVerify=..\tViceCard=..`.
/// Text fields stay bytes: names arrive in the device's code page (GB2312 on Chinese units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserRecord<'a> {
    pub pin: &'a str,
    pub name: &'a [u8],
    pub privilege: Option<i64>,
    pub password: &'a [u8],
    pub card: &'a [u8],
    pub group: &'a [u8],
    pub time_zone: &'a [u8],
    pub verify: Option<i64>,
    pub vice_card: &'a [u8],
    pub fields: KvFields<'a>,
}

/// Which record kind a template came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BiometricKind {
    /// `FP` (fingerprint, ZKFinger v9/v10).
    Fingerprint,
    /// `FACE` (near-infrared face).
    Face,
    /// `FVEIN`.
    FingerVein,
    /// `BIODATA` (unified template; the type says what it is).
    BioData,
}

impl BiometricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BiometricKind::Fingerprint => "FP",
            BiometricKind::Face => "FACE",
            BiometricKind::FingerVein => "FVEIN",
            BiometricKind::BioData => "BIODATA",
        }
    }
}

/// A biometric template, unified over `FP`, `FACE`, `FVEIN` and `BIODATA`. The template text is
/// kept exactly as received (base64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BiometricRecord<'a> {
    pub kind: BiometricKind,
    pub pin: &'a str,
    /// BIODATA `Type` (1 fingerprint, 2 NIR face, 7 finger vein, 8 palm, 9 visible face ...);
    /// derived from the kind for the legacy records.
    pub bio_type: i64,
    /// Finger / slot number (`FID` or `No`).
    pub no: i64,
    /// Fragment index (`Index`), 0 when absent.
    pub index: i64,
    pub valid: Option<i64>,
    pub duress: Option<i64>,
    pub major_ver: Option<i64>,
    pub minor_ver: Option<i64>,
    pub format: &'a str,
    pub size: Option<i64>,
    pub template: &'a str,
}

/// Which record kind a photo came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhotoKind {
    UserPic,
    BioPhoto,
}

impl PhotoKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PhotoKind::UserPic => "USERPIC",
            PhotoKind::BioPhoto => "BIOPHOTO",
        }
    }
}

/// `USERPIC` / `BIOPHOTO`: a base64 JPEG of a user (or a URL on newer firmware).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhotoRecord<'a> {
    pub kind: PhotoKind,
    pub pin: &'a str,
    pub file_name: &'a str,
    pub photo_type: i64,
    pub size: Option<i64>,
    pub content: &'a str,
    pub url: &'a str,
}

/// `kind`, and the separator after it when there is one.
fn record_kind(input: &[u8]) -> Parsed<'_, &str> {
    let is_kind_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let (rest, kind) = reason(RejectReason::MissingKind, take_while1(is_kind_byte)).parse(input)?;
    let rest = match rest.split_first() {
        None => rest,
        Some((b' ' | b'\t', fields)) => fields,
        Some(_) => return fail(RejectReason::MissingKind),
    };
    // Letters, digits and `_` only: always UTF-8.
    let kind = std::str::from_utf8(kind).map_err(|_| nom::Err::Error(Reject(RejectReason::MissingKind)))?;
    Ok((rest, kind))
}

/// `oplog`: an operation record, positional.
fn oplog(input: &[u8]) -> Parsed<'_, OpLogRecord<'_>> {
    let (input, op_code) = op_code(input)?;
    let (input, _) = tab(input)?;
    let (input, operator) = operator(input)?;
    let (input, _) = tab(input)?;
    let (mut input, time) = oplog_time(input)?;
    let mut objects: [&[u8]; 4] = [b""; 4];
    for object in &mut objects {
        (input, *object) = optional_column(input, column)?;
    }
    Ok((input, OpLogRecord { op_code, operator, time, objects }))
}

/// `op-code`: the operation number, spaces around it allowed.
fn op_code(input: &[u8]) -> Parsed<'_, u16> {
    let (rest, raw) = column(input)?;
    let spaces = || take_while(|b: u8| b.is_ascii_whitespace());
    let number = delimited(spaces(), (opt(tag(&b"+"[..])), nom::character::complete::u16), spaces());
    let (_, (_, op_code)) = reason(RejectReason::BadNumber, all_consuming(number)).parse(raw)?;
    Ok((rest, op_code))
}

/// `operator`: who did it (a PIN, or `0` for the device itself), as text.
fn operator(input: &[u8]) -> Parsed<'_, &str> {
    let (rest, raw) = column(input)?;
    let operator = std::str::from_utf8(raw).map_err(|_| nom::Err::Error(Reject(RejectReason::InvalidUtf8)))?;
    Ok((rest, operator))
}

/// `local-date-time` as a whole column.
fn oplog_time(input: &[u8]) -> Parsed<'_, LocalDateTime> {
    let (rest, time) = date_time(input)?;
    let (rest, ()) = reason(RejectReason::BadTime, column_end).parse(rest)?;
    Ok((rest, time))
}

/// The `PIN` of a record: required, 1 to 64 bytes of text without control characters.
fn pin_of<'a>(fields: &KvFields<'a>) -> Result<&'a str, RejectReason> {
    let pin = fields.get("PIN").ok_or(RejectReason::MissingKey)?;
    if pin.is_empty() {
        return Err(RejectReason::EmptyPin);
    }
    if pin.len() > crate::attlog::MAX_PIN_LEN {
        return Err(RejectReason::FieldTooLong);
    }
    let pin = std::str::from_utf8(pin).map_err(|_| RejectReason::InvalidUtf8)?;
    if has_control(pin.as_bytes()) {
        return Err(RejectReason::ControlCharacter);
    }
    Ok(pin)
}

/// A text value: empty when absent, `InvalidUtf8` when not text.
fn text<'a>(fields: &KvFields<'a>, key: &str) -> Result<&'a str, RejectReason> {
    match fields.get(key) {
        None => Ok(""),
        Some(v) => std::str::from_utf8(v).map_err(|_| RejectReason::InvalidUtf8),
    }
}

fn parse_biometric(kind: BiometricKind, fields: KvFields<'_>) -> Result<BiometricRecord<'_>, RejectReason> {
    let pin = pin_of(&fields)?;
    let (bio_type, no) = match kind {
        BiometricKind::Fingerprint => (1, fields.get_int("FID")?.unwrap_or(0)),
        BiometricKind::Face => (2, fields.get_int("FID")?.unwrap_or(0)),
        BiometricKind::FingerVein => (7, fields.get_int("FID")?.unwrap_or(0)),
        BiometricKind::BioData => {
            (fields.get_int("Type")?.ok_or(RejectReason::MissingKey)?, fields.get_int("No")?.unwrap_or(0))
        }
    };
    Ok(BiometricRecord {
        kind,
        pin,
        bio_type,
        no,
        index: fields.get_int("Index")?.unwrap_or(0),
        valid: fields.get_int("Valid")?,
        duress: fields.get_int("Duress")?,
        major_ver: fields.get_int("MajorVer")?,
        minor_ver: fields.get_int("MinorVer")?,
        format: text(&fields, "Format")?,
        size: fields.get_int("Size")?,
        template: text(&fields, "TMP")?,
    })
}

fn parse_photo(kind: PhotoKind, fields: KvFields<'_>) -> Result<PhotoRecord<'_>, RejectReason> {
    Ok(PhotoRecord {
        kind,
        pin: pin_of(&fields)?,
        file_name: text(&fields, "FileName")?,
        photo_type: fields.get_int("Type")?.unwrap_or(0),
        size: fields.get_int("Size")?,
        content: text(&fields, "Content")?,
        url: text(&fields, "Url")?,
    })
}

/// A `USER` record: the roster entry, text fields as raw bytes.
fn user(fields: KvFields<'_>) -> Result<UserRecord<'_>, RejectReason> {
    let pin = pin_of(&fields)?;
    let get = |k: &str| fields.get(k).unwrap_or(b"");
    Ok(UserRecord {
        pin,
        name: get("Name"),
        privilege: fields.get_int("Pri")?,
        password: get("Passwd"),
        card: get("Card"),
        group: get("Grp"),
        time_zone: get("TZ"),
        verify: fields.get_int("Verify")?,
        vice_card: get("ViceCard"),
        fields,
    })
}

/// Parses one OPERLOG or BIODATA line: `record`.
pub fn parse_operlog_line(line: &[u8]) -> Result<OperLogRecord<'_>, RejectReason> {
    let (rest, kind) = record_kind(line).map_err(reason_of)?;
    let fields = KvFields::new(rest);
    let is = |name: &str| kind.eq_ignore_ascii_case(name);
    if is("OPLOG") {
        return oplog(rest).map(|(_, record)| OperLogRecord::OpLog(record)).map_err(reason_of);
    }
    if is("USER") {
        return user(fields).map(OperLogRecord::User);
    }
    const BIOMETRIC: [(&str, BiometricKind); 4] = [
        ("FP", BiometricKind::Fingerprint),
        ("FACE", BiometricKind::Face),
        ("FVEIN", BiometricKind::FingerVein),
        ("BIODATA", BiometricKind::BioData),
    ];
    if let Some(&(_, biometric_kind)) = BIOMETRIC.iter().find(|(name, _)| is(name)) {
        return parse_biometric(biometric_kind, fields).map(OperLogRecord::Biometric);
    }
    if is("USERPIC") {
        return parse_photo(PhotoKind::UserPic, fields).map(OperLogRecord::Photo);
    }
    if is("BIOPHOTO") {
        return parse_photo(PhotoKind::BioPhoto, fields).map(OperLogRecord::Photo);
    }
    Ok(OperLogRecord::Other { kind, fields })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oplog_lines() {
        let r = parse_operlog_line(b"OPLOG 5\t0\t2020-06-23 10:39:48\tDHCP\t1\t0\t0").unwrap();
        let OperLogRecord::OpLog(op) = r else { panic!("{r:?}") };
        assert_eq!(op.op_code, 5);
        assert_eq!(op.operator, "0");
        assert_eq!(op.time.to_string(), "2020-06-23 10:39:48");
        assert_eq!(op.objects, [&b"DHCP"[..], b"1", b"0", b"0"]);
        // short OPLOG keeps missing objects empty
        let OperLogRecord::OpLog(op) = parse_operlog_line(b"OPLOG 0\t0\t2020-06-23 10:39:48").unwrap() else {
            panic!()
        };
        assert_eq!(op.objects, [&b""[..]; 4]);
        assert_eq!(parse_operlog_line(b"OPLOG x\t0\t2020-06-23 10:39:48"), Err(RejectReason::BadNumber));
        assert_eq!(parse_operlog_line(b"OPLOG 3\t0\tyesterday"), Err(RejectReason::BadTime));
        assert_eq!(parse_operlog_line(b"OPLOG 3"), Err(RejectReason::TooFewFields));
    }

    #[test]
    fn user_lines_keep_raw_name_bytes() {
        let line = b"USER PIN=016\tName=Jos\xe9 \xff\tPri=14\tPasswd=123\tCard=[15CD5B07]\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=";
        let OperLogRecord::User(u) = parse_operlog_line(line).unwrap() else { panic!() };
        assert_eq!(u.pin, "016");
        assert_eq!(u.name, b"Jos\xe9 \xff");
        assert_eq!(u.privilege, Some(14));
        assert_eq!(u.card, b"[15CD5B07]");
        assert_eq!(u.verify, Some(-1));
        assert_eq!(u.time_zone, b"0000000100000000");
        assert_eq!(parse_operlog_line(b"USER Name=x"), Err(RejectReason::MissingKey));
        assert_eq!(parse_operlog_line(b"USER PIN=\tName=x"), Err(RejectReason::EmptyPin));
        assert_eq!(parse_operlog_line(b"USER PIN=1\tPri=admin"), Err(RejectReason::BadNumber));
    }

    #[test]
    fn templates_and_photos() {
        let OperLogRecord::Biometric(b) =
            parse_operlog_line(b"FP PIN=1\tFID=6\tSize=1184\tValid=1\tTMP=ocoAAA==").unwrap()
        else {
            panic!()
        };
        assert_eq!((b.kind, b.pin, b.bio_type, b.no, b.template), (BiometricKind::Fingerprint, "1", 1, 6, "ocoAAA=="));
        let line =
            b"BIODATA Pin=5\tNo=0\tIndex=3\tValid=1\tDuress=0\tType=8\tMajorVer=12\tMinorVer=0\tFormat=0\tTmp=QUJD";
        let OperLogRecord::Biometric(b) = parse_operlog_line(line).unwrap() else { panic!() };
        assert_eq!((b.bio_type, b.index, b.major_ver, b.template), (8, 3, Some(12), "QUJD"));
        assert_eq!(parse_operlog_line(b"BIODATA Pin=5\tNo=0"), Err(RejectReason::MissingKey));
        let OperLogRecord::Photo(p) =
            parse_operlog_line(b"BIOPHOTO PIN=5\tFileName=5.jpg\tType=0\tSize=36908\tContent=/9j/4AAQ").unwrap()
        else {
            panic!()
        };
        assert_eq!((p.kind, p.file_name, p.size, p.content), (PhotoKind::BioPhoto, "5.jpg", Some(36908), "/9j/4AAQ"));
    }

    #[test]
    fn unknown_kinds_are_kept_and_garbage_is_rejected() {
        let r = parse_operlog_line(b"WORKCODE PIN=1\tCODE=7\tNAME=x").unwrap();
        assert!(matches!(r, OperLogRecord::Other { kind: "WORKCODE", .. }));
        assert_eq!(parse_operlog_line(b"\tPIN=1"), Err(RejectReason::MissingKind));
        assert_eq!(parse_operlog_line(b"{json}"), Err(RejectReason::MissingKind));
    }
}
