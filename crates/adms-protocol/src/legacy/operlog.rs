//! The hand-written OPERLOG parser the nom grammar in [`crate::operlog`] replaced, kept verbatim
//! (as of `2028e2c`) for the differential test and the A/B bench only.
//!
//! `table=OPERLOG` (and `table=BIODATA`) lines: operation log, roster and biometric records
//! (`protocol.md` §3.4, §3.5, §4.2, §4.3).
//!
//! Every line starts with a record kind and a space. `OPLOG` is positional; every other kind is
//! `key=value` fields separated by TABs. Kinds we do not model are returned as
//! [`OperLogRecord::Other`] so the caller can store them raw: nothing is dropped.

use super::kv::KvFields as LegacyKv;
use crate::kv::KvFields;
use crate::operlog::{BiometricKind, BiometricRecord, OpLogRecord, OperLogRecord, PhotoKind, PhotoRecord, UserRecord};
use crate::reject::RejectReason;
use crate::time::LocalDateTime;

fn kind_and_fields(line: &[u8]) -> Result<(&str, &[u8]), RejectReason> {
    let (kind, rest) = match memchr::memchr2(b' ', b'\t', line) {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &[][..]),
    };
    if kind.is_empty() || !kind.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_') {
        return Err(RejectReason::MissingKind);
    }
    let kind = std::str::from_utf8(kind).map_err(|_| RejectReason::MissingKind)?;
    Ok((kind, rest))
}

fn pin_of<'a>(fields: &LegacyKv<'a>) -> Result<&'a str, RejectReason> {
    let pin = fields.get("PIN").ok_or(RejectReason::MissingKey)?;
    if pin.is_empty() {
        return Err(RejectReason::EmptyPin);
    }
    if pin.len() > crate::attlog::MAX_PIN_LEN {
        return Err(RejectReason::FieldTooLong);
    }
    let pin = std::str::from_utf8(pin).map_err(|_| RejectReason::InvalidUtf8)?;
    if pin.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(RejectReason::ControlCharacter);
    }
    Ok(pin)
}

fn text<'a>(fields: &LegacyKv<'a>, key: &str) -> Result<&'a str, RejectReason> {
    match fields.get(key) {
        None => Ok(""),
        Some(v) => std::str::from_utf8(v).map_err(|_| RejectReason::InvalidUtf8),
    }
}

fn parse_oplog(rest: &[u8]) -> Result<OpLogRecord<'_>, RejectReason> {
    let mut columns = rest.split(|&b| b == b'\t');
    let op_code = columns.next().ok_or(RejectReason::TooFewFields)?;
    let op_code =
        std::str::from_utf8(op_code.trim_ascii()).ok().and_then(|s| s.parse().ok()).ok_or(RejectReason::BadNumber)?;
    let operator = columns.next().ok_or(RejectReason::TooFewFields)?;
    let operator = std::str::from_utf8(operator).map_err(|_| RejectReason::InvalidUtf8)?;
    let time = columns.next().ok_or(RejectReason::TooFewFields)?;
    let time = LocalDateTime::parse(time).ok_or(RejectReason::BadTime)?;
    let mut objects: [&[u8]; 4] = [b""; 4];
    for slot in &mut objects {
        *slot = columns.next().unwrap_or(b"");
    }
    Ok(OpLogRecord { op_code, operator, time, objects })
}

fn parse_biometric(kind: BiometricKind, fields: LegacyKv<'_>) -> Result<BiometricRecord<'_>, RejectReason> {
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

fn parse_photo(kind: PhotoKind, fields: LegacyKv<'_>) -> Result<PhotoRecord<'_>, RejectReason> {
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

/// Parses one OPERLOG or BIODATA line.
pub fn parse_operlog_line(line: &[u8]) -> Result<OperLogRecord<'_>, RejectReason> {
    let (kind, rest) = kind_and_fields(line)?;
    let fields = LegacyKv::new(rest);
    let upper = |k: &str| kind.eq_ignore_ascii_case(k);
    if upper("OPLOG") {
        return parse_oplog(rest).map(OperLogRecord::OpLog);
    }
    if upper("USER") {
        let pin = pin_of(&fields)?;
        let get = |k: &str| fields.get(k).unwrap_or(b"");
        return Ok(OperLogRecord::User(UserRecord {
            pin,
            name: get("Name"),
            privilege: fields.get_int("Pri")?,
            password: get("Passwd"),
            card: get("Card"),
            group: get("Grp"),
            time_zone: get("TZ"),
            verify: fields.get_int("Verify")?,
            vice_card: get("ViceCard"),
            fields: KvFields::new(rest),
        }));
    }
    let biometric = [
        ("FP", BiometricKind::Fingerprint),
        ("FACE", BiometricKind::Face),
        ("FVEIN", BiometricKind::FingerVein),
        ("BIODATA", BiometricKind::BioData),
    ];
    if let Some(&(_, bk)) = biometric.iter().find(|(name, _)| upper(name)) {
        return parse_biometric(bk, fields).map(OperLogRecord::Biometric);
    }
    if upper("USERPIC") {
        return parse_photo(PhotoKind::UserPic, fields).map(OperLogRecord::Photo);
    }
    if upper("BIOPHOTO") {
        return parse_photo(PhotoKind::BioPhoto, fields).map(OperLogRecord::Photo);
    }
    Ok(OperLogRecord::Other { kind, fields: KvFields::new(rest) })
}
