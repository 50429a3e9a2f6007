//! `table=ATTLOG` lines: one punch per line (`protocol.md` §4.1).
//!
//! `PIN \t Time \t Status \t Verify [\t Workcode [\t Reserved ...]]`. Firmware sends 7 to 12+
//! columns, trailing TABs and empty work codes; only the first four columns are required, every
//! column after the work code is kept verbatim in [`AttLogRecord::extra`].

use crate::lines::{Line, lines};
use crate::reject::{RejectReason, Rejected};
use crate::time::LocalDateTime;

/// Longest PIN accepted. Devices use up to ~24 characters; national-ID PINs are ~20 digits.
pub const MAX_PIN_LEN: usize = 64;
/// Longest work code accepted.
pub const MAX_WORK_CODE_LEN: usize = 64;
/// Longest ATTLOG line accepted: the widest documented layout, with base64 `ExtendData`, is far
/// shorter; anything longer is not a punch.
pub const MAX_LINE_LEN: usize = 8 * 1024;

/// One punch, borrowing from the request body.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttLogRecord<'a> {
    /// User id on the device: a string, leading zeros significant.
    pub pin: &'a str,
    /// The time exactly as sent (19 bytes; `T` separator kept if the device used it).
    pub time_raw: &'a str,
    /// The same time, validated.
    pub time: LocalDateTime,
    /// Punch state code as sent: `0`–`255` (255 = no state) or a legacy letter such as `I`.
    pub state: &'a str,
    /// Verification mode code (1 fingerprint, 4 card, 15 face, 25 palm, ...).
    pub verify: u16,
    /// Work code as sent; often empty or `0`.
    pub work_code: &'a str,
    /// Every column after the work code, TABs included, exactly as sent (may be empty).
    pub extra: &'a str,
}

impl<'a> AttLogRecord<'a> {
    /// Column `index` (0-based over the whole line) if present, e.g. 7 = MaskFlag, 8 = Temperature
    /// on firmware that sends them.
    pub fn column(&self, index: usize) -> Option<&'a str> {
        if index < 5 {
            return None;
        }
        self.extra.split('\t').nth(index - 5)
    }

    /// MaskFlag column (index 7) when the device sent one.
    pub fn mask_flag(&self) -> Option<u8> {
        self.column(7).and_then(|v| v.parse().ok())
    }

    /// Temperature column (index 8) when the device measured one (`0` and `255` mean none).
    pub fn temperature(&self) -> Option<f64> {
        let value: f64 = self.column(8)?.trim().parse().ok()?;
        (value.is_finite() && value > 0.0 && value != 255.0).then_some(value)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// (line, Ok((pin, time, state, verify, work_code, extra)) | Err(reason))
    type Expected = Result<(&'static str, &'static str, &'static str, u16, &'static str, &'static str), RejectReason>;

    fn check(line: &[u8], want: Expected) {
        let got = parse_attlog_line(line).map(|r| (r.pin, r.time_raw, r.state, r.verify, r.work_code, r.extra));
        assert_eq!(got, want, "line {:?}", String::from_utf8_lossy(line));
    }

    #[test]
    fn known_answers() {
        use RejectReason::*;
        let cases: &[(&[u8], Expected)] = &[
            // documented 7-column layout
            (b"1452\t2015-07-30 15:16:28\t0\t1\t0\t0\t0", Ok(("1452", "2015-07-30 15:16:28", "0", 1, "0", "0\t0"))),
            // empty work code and trailing TAB (BOCK200961014, Paraguay unit)
            (b"1\t2024-07-28 01:25:24\t0\t1\t\t0\t0\t", Ok(("1", "2024-07-28 01:25:24", "0", 1, "", "0\t0\t"))),
            // 11 columns with a per-record sequence number (MB10-VL)
            (
                b"46\t2025-01-29 06:58:48\t0\t15\t0\t0\t0\t0\t0\t0\t10881",
                Ok(("46", "2025-01-29 06:58:48", "0", 15, "0", "0\t0\t0\t0\t0\t10881")),
            ),
            // 255 in column 8, trailing empty column (ZAM180)
            (
                b"9999\t2026-08-12 08:53:23\t0\t15\t0\t0\t0\t255\t0\t0\t",
                Ok(("9999", "2026-08-12 08:53:23", "0", 15, "0", "0\t0\t255\t0\t0\t")),
            ),
            // state 255 = no state selected
            (b"2\t2026-09-28 10:47:39\t255\t15\t0\t0\t0", Ok(("2", "2026-09-28 10:47:39", "255", 15, "0", "0\t0"))),
            // leading zeros are significant
            (b"016\t2026-01-01 08:00:00\t1\t4", Ok(("016", "2026-01-01 08:00:00", "1", 4, "", ""))),
            // legacy letter state, T separator
            (b"7\t2026-01-01T08:00:00\tI\t1\t5", Ok(("7", "2026-01-01T08:00:00", "I", 1, "5", ""))),
            // alphanumeric PIN and work code
            (b"A-12\t2026-01-01 08:00:00\t0\t1\tWC7\t0", Ok(("A-12", "2026-01-01 08:00:00", "0", 1, "WC7", "0"))),
            // hostile rows
            (b"THIS IS NOT A PUNCH", Err(TooFewFields)),
            (b"1\t2026-13-45 99:99:99\t0\t1\t0", Err(BadTime)),
            (b"1\t2026-01-01 08:00:00\tX1\t1\t0", Err(BadState)),
            (b"1\t2026-01-01 08:00:00\t256\t1\t0", Err(BadState)),
            (b"1\t2026-01-01 08:00:00\t\t1\t0", Err(BadState)),
            (b"1\t2026-01-01 08:00:00\t0\tface\t0", Err(BadVerify)),
            (b"1\t2026-01-01 08:00:00\t0\t99999999", Err(BadVerify)),
            (b"1\t2026-01-01 08:00:00", Err(TooFewFields)),
            (b"1\t2026-01-01 08:00:00\t0", Err(TooFewFields)),
            (b"1\t2026-01-01 08:0", Err(BadTime)),
            (b"\t2026-01-01 08:00:00\t0\t1\t0", Err(EmptyPin)),
            (b"\t\t\t", Err(EmptyPin)),
            (b"1\t2026-01-01 08:00:00\t0\t1\t0\xff\xfe", Err(InvalidUtf8)),
            (b"1\t2026-01-01 08:00:00\t0\t1\t0\x00garbage", Err(ControlCharacter)),
            (b"1\x01\t2026-01-01 08:00:00\t0\t1", Err(ControlCharacter)),
        ];
        for (line, want) in cases {
            check(line, *want);
        }
    }

    #[test]
    fn huge_fields_are_rejected() {
        let mut pin = vec![b'9'; MAX_PIN_LEN + 1];
        pin.extend_from_slice(b"\t2026-01-01 08:00:00\t0\t1");
        check(&pin, Err(RejectReason::FieldTooLong));
        let mut line = b"1\t2026-01-01 08:00:00\t0\t1\t".to_vec();
        line.extend(std::iter::repeat_n(b'0', MAX_LINE_LEN));
        check(&line, Err(RejectReason::FieldTooLong));
    }

    #[test]
    fn optional_columns() {
        let r = parse_attlog_line(b"5\t2026-01-01 08:00:00\t0\t15\t0\t0\t0\t1\t36.6\t0").unwrap();
        assert_eq!(r.mask_flag(), Some(1));
        assert_eq!(r.temperature(), Some(36.6));
        assert_eq!(r.column(9), Some("0"));
        assert_eq!(r.column(10), None);
        let r = parse_attlog_line(b"5\t2026-01-01 08:00:00\t0\t15\t0\t0\t0\t255\t255").unwrap();
        assert_eq!(r.temperature(), None);
        let r = parse_attlog_line(b"5\t2026-01-01 08:00:00\t0\t15").unwrap();
        assert_eq!((r.mask_flag(), r.temperature()), (None, None));
    }

    #[test]
    fn a_cut_off_last_line_is_rejected_not_guessed() {
        let reasons = |body: &[u8]| -> Vec<Option<RejectReason>> {
            parse_attlog_body(body).map(|r| r.err().map(|rejected| rejected.reason)).collect()
        };
        let full = b"1\t2026-01-01 08:00:00\t0\t15\t0\t0\t0\n2\t2026-01-01 08:01:00\t0\t15\t0\t0\t0\n";
        assert_eq!(reasons(full), [None, None]);
        // cut after the verify column: "15" may have been "1"
        assert_eq!(reasons(&full[..full.len() - 7]), [None, Some(RejectReason::TruncatedTail)]);
        // no final newline but as long as its sibling: a whole line
        assert_eq!(reasons(&full[..full.len() - 1]), [None, None]);
        // a lone short line has no sibling to compare with
        assert_eq!(reasons(b"3\t2026-01-01 08:00:00\t0\t1"), [None]);
        // terminated short lines are firmware layouts, not truncation
        assert_eq!(reasons(b"1\t2026-01-01 08:00:00\t0\t1\t0\t0\t0\n4\t2026-01-01 08:00:00\t0\t1\n"), [None, None]);
    }
}
