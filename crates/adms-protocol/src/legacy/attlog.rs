//! The hand-written ATTLOG parser the nom grammar in [`crate::attlog`] replaced, kept verbatim
//! (as of `2028e2c`) for the differential test and the A/B bench only.
//!
//! `table=ATTLOG` lines: one punch per line (`protocol.md` §4.1).
//!
//! `PIN \t Time \t Status \t Verify [\t Workcode [\t Reserved ...]]`. Firmware sends 7 to 12+
//! columns, trailing TABs and empty work codes; only the first four columns are required, every
//! column after the work code is kept verbatim in [`AttLogRecord::extra`].

use crate::attlog::{AttLogRecord, MAX_LINE_LEN, MAX_PIN_LEN, MAX_WORK_CODE_LEN};
use crate::lines::{Line, lines};
use crate::reject::{RejectReason, Rejected};
use crate::time::LocalDateTime;

/// Length of `YYYY-MM-DD hh:mm:ss`.
const TIME_LEN: usize = 19;

fn has_control(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b < 0x20 || b == 0x7f)
}

/// The value of 1 to `max_len` ASCII digits; `None` for anything else. One pass, so that short
/// numeric fields cost a few instructions per byte.
#[inline]
fn small_number(raw: &[u8], max_len: usize) -> Option<u32> {
    if raw.is_empty() || raw.len() > max_len {
        return None;
    }
    let mut value = 0u32;
    for &b in raw {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + u32::from(digit);
    }
    Some(value)
}

fn state_code(raw: &[u8]) -> Result<(), RejectReason> {
    match raw {
        [b] if b.is_ascii_alphabetic() => Ok(()),
        _ => match small_number(raw, 3) {
            Some(value) if value <= 255 => Ok(()),
            _ => Err(RejectReason::BadState),
        },
    }
}

fn verify_code(raw: &[u8]) -> Result<u16, RejectReason> {
    small_number(raw, 5).and_then(|value| u16::try_from(value).ok()).ok_or(RejectReason::BadVerify)
}

/// Parses one ATTLOG line (without its terminator).
pub fn parse_attlog_line(line: &[u8]) -> Result<AttLogRecord<'_>, RejectReason> {
    if line.len() > MAX_LINE_LEN {
        return Err(RejectReason::FieldTooLong);
    }
    let text = std::str::from_utf8(line).map_err(|_| RejectReason::InvalidUtf8)?;
    parse_text_line(text, true)
}

/// Parses every line of an ATTLOG body: the results of [`parse_attlog_line`] for each line
/// (as [`parse_lines`](crate::parse_lines) gives them), except that a body cut off in transit is
/// recognised: when the body does not end with a newline and its last line has fewer columns
/// than the line before it, that line is rejected as [`RejectReason::TruncatedTail`] instead of
/// being stored with missing or shortened fields (a verify mode `15` cut to `1` would still
/// parse). It is kept raw and reported like any rejected line (`protocol.md` §4.1).
///
/// Faster than line by line: one pass over the whole body checks that it is plain printable
/// ASCII (TAB and line ends aside), which is what terminals send; then no line needs its own
/// UTF-8 or control-character check.
pub fn parse_attlog_body(body: &[u8]) -> impl Iterator<Item = Result<(Line<'_>, AttLogRecord<'_>), Rejected<'_>>> {
    let clean_text = if is_plain_ascii_text(body) { std::str::from_utf8(body).ok() } else { None };
    // Where the unterminated last line starts, if the body does not end with a newline.
    let unterminated_tail = (!body.ends_with(b"\n")).then(|| memchr::memrchr(b'\n', body).map_or(0, |i| i + 1));
    // Only the last line is ever compared with its predecessor, so columns are counted for those
    // two lines alone, not for every line of the body.
    let mut previous_line: &[u8] = &[];
    lines(body).map(move |line| {
        let start = line.bytes.as_ptr() as usize - body.as_ptr() as usize;
        let truncated = unterminated_tail == Some(start) && columns(line.bytes) < columns(previous_line);
        previous_line = line.bytes;
        let parsed = match clean_text {
            _ if truncated => Err(RejectReason::TruncatedTail),
            // `line.bytes` is a sub-slice of `body`, so its offset indexes `text` too.
            Some(text) if line.bytes.len() <= MAX_LINE_LEN => match text.get(start..start + line.bytes.len()) {
                Some(line_text) => parse_text_line(line_text, false),
                None => parse_attlog_line(line.bytes),
            },
            _ => parse_attlog_line(line.bytes),
        };
        match parsed {
            Ok(record) => Ok((line, record)),
            Err(reason) => Err(Rejected { line, reason }),
        }
    })
}

/// Number of TAB-separated columns of a line (0 for no line).
fn columns(line: &[u8]) -> usize {
    if line.is_empty() { 0 } else { 1 + memchr::memchr_iter(b'\t', line).count() }
}

/// True when every byte is printable ASCII, TAB or LF, and every CR is part of a CRLF. The
/// byte test is written without early exit inside each chunk so that it compiles to a vector
/// loop; the CR pairing is only checked for bodies that contain a CR at all.
fn is_plain_ascii_text(body: &[u8]) -> bool {
    let mut any_cr = false;
    let printable = body.chunks(64).all(|chunk| {
        let (ok, cr) = chunk.iter().fold((true, false), |(ok, cr), &b| {
            (ok & ((0x20..0x7f).contains(&b) | (b == b'\t') | (b == b'\n') | (b == b'\r')), cr | (b == b'\r'))
        });
        any_cr |= cr;
        ok
    });
    printable
        && (!any_cr || memchr::memchr_iter(b'\r', body).count() == memchr::memmem::find_iter(body, b"\r\n").count())
}

/// The next field of a line and what follows its TAB (`None` when the line ended instead).
/// A plain byte loop, not `memchr`: ATTLOG fields are 1 to 19 bytes, too short for a vector
/// search to pay for its set-up. A TAB is ASCII, so both halves start on char boundaries.
#[inline]
fn next_field(text: &str) -> (&str, Option<&str>) {
    let Some(tab) = text.bytes().position(|b| b == b'\t') else {
        return (text, None);
    };
    match (text.get(..tab), text.get(tab + 1..)) {
        (Some(field), Some(rest)) => (field, Some(rest)),
        _ => (text, None),
    }
}

/// The field parser over validated text; `check_controls` is false only when the whole body is
/// already known to be free of control characters. Checks run in field order, so a line gets
/// the reason of its first bad field.
fn parse_text_line(text: &str, check_controls: bool) -> Result<AttLogRecord<'_>, RejectReason> {
    let (pin, rest) = next_field(text);
    if pin.is_empty() {
        return Err(RejectReason::EmptyPin);
    }
    if pin.len() > MAX_PIN_LEN {
        return Err(RejectReason::FieldTooLong);
    }
    if check_controls && has_control(pin.as_bytes()) {
        return Err(RejectReason::ControlCharacter);
    }
    let rest = rest.ok_or(RejectReason::TooFewFields)?;
    // The time is 19 bytes on every firmware: look for its TAB there before scanning for it.
    let (time_raw, rest) = match (rest.as_bytes().get(TIME_LEN), rest.get(..TIME_LEN), rest.get(TIME_LEN + 1..)) {
        (Some(b'\t'), Some(time), Some(rest)) => (time, Some(rest)),
        _ => next_field(rest),
    };
    let time = LocalDateTime::parse(time_raw.as_bytes()).ok_or(RejectReason::BadTime)?;
    let (state, rest) = next_field(rest.ok_or(RejectReason::TooFewFields)?);
    state_code(state.as_bytes())?;
    let (verify, rest) = next_field(rest.ok_or(RejectReason::TooFewFields)?);
    let verify = verify_code(verify.as_bytes())?;
    let (work_code, extra) = match rest {
        None => ("", ""),
        Some(rest) => {
            let (work_code, extra) = next_field(rest);
            (work_code, extra.unwrap_or(""))
        }
    };
    if work_code.len() > MAX_WORK_CODE_LEN {
        return Err(RejectReason::FieldTooLong);
    }
    if check_controls
        && (has_control(work_code.as_bytes()) || extra.bytes().any(|b| b != b'\t' && (b < 0x20 || b == 0x7f)))
    {
        return Err(RejectReason::ControlCharacter);
    }
    Ok(AttLogRecord { pin, time_raw, time, state, verify, work_code, extra })
}
