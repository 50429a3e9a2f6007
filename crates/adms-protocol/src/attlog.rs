//! `table=ATTLOG` lines: one punch per line (`protocol.md` §4.1).
//!
//! `PIN \t Time \t Status \t Verify [\t Workcode [\t Reserved ...]]`. Firmware sends 7 to 12+
//! columns, trailing TABs and empty work codes; only the first four columns are required, every
//! column after the work code is kept verbatim in [`AttLogRecord::extra`].
//!
//! ```text
//! punch           = pin TAB local-date-time TAB punch-state TAB verify-mode
//!                   [TAB work-code [TAB extra]]
//! pin             = 1*64(%x20-7E / %x80-FF)        ; EmptyPin, FieldTooLong, ControlCharacter
//! local-date-time = 4DIGIT "-" 2DIGIT "-" 2DIGIT (SP / "T") 2DIGIT ":" 2DIGIT ":" 2DIGIT
//!                                                  ; BadTime, also for an impossible date
//! punch-state     = 1*3DIGIT / ALPHA               ; BadState; the number at most 255
//! verify-mode     = 1*5DIGIT                       ; BadVerify; at most 65535
//! work-code       = *64(%x20-7E / %x80-FF)         ; FieldTooLong, ControlCharacter
//! extra           = *(TAB / %x20-7E / %x80-FF)     ; ControlCharacter
//! ```
//!
//! A missing TAB where the grammar needs one is `TooFewFields`; the first field that fails
//! decides the reason. A line longer than [`MAX_LINE_LEN`] is `FieldTooLong` and a line that is
//! not UTF-8 is `InvalidUtf8` before any field is looked at.

use nom::Parser;
use nom::combinator::{consumed, rest};
use nom::sequence::terminated;

use crate::grammar::{
    Parsed, column, column_end, fail, has_control, optional_column, reason, reason_of, small_number, sub_str, tab,
};
use crate::lines::{Line, lines};
use crate::reject::{RejectReason, Rejected};
use crate::time::{LocalDateTime, date_time};

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

/// Parses one ATTLOG line (without its terminator).
pub fn parse_attlog_line(line: &[u8]) -> Result<AttLogRecord<'_>, RejectReason> {
    if line.len() > MAX_LINE_LEN {
        return Err(RejectReason::FieldTooLong);
    }
    let text = std::str::from_utf8(line).map_err(|_| RejectReason::InvalidUtf8)?;
    parse_text_line::<true>(text)
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
                Some(line_text) => parse_text_line::<false>(line_text),
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

/// The columns of a punch as the grammar cuts them, before they are borrowed as text.
struct Punch<'a> {
    pin: &'a [u8],
    time_raw: &'a [u8],
    time: LocalDateTime,
    state: &'a [u8],
    verify: u16,
    work_code: &'a [u8],
    extra: &'a [u8],
}

impl<'a> Punch<'a> {
    /// The record, its columns borrowed from `line`, the text the punch was parsed from.
    #[inline(always)]
    fn borrow_from(self, line: &'a str) -> Option<AttLogRecord<'a>> {
        Some(AttLogRecord {
            pin: sub_str(line, self.pin)?,
            time_raw: sub_str(line, self.time_raw)?,
            time: self.time,
            state: sub_str(line, self.state)?,
            verify: self.verify,
            work_code: sub_str(line, self.work_code)?,
            extra: sub_str(line, self.extra)?,
        })
    }
}

/// `punch`: one ATTLOG line. `CHECK_CONTROLS` is false only when the whole body is already known
/// to be printable ASCII; the fields then skip their control-character checks.
///
/// Written as a sequence of field parsers rather than one tuple of combinators: this runs once
/// per punch, and plain calls let every field parser inline into it (the tuple's nested
/// `Parser::process` calls did not: 42 % more instructions a line than the hand-written parser,
/// against 2.5 % fewer written this way; BENCHMARKS.md, 2026-12-06).
#[inline(always)]
fn punch<const CHECK_CONTROLS: bool>(line: &[u8]) -> Parsed<'_, Punch<'_>> {
    let (input, pin) = pin::<CHECK_CONTROLS>(line)?;
    let (input, _) = tab(input)?;
    let (input, (time_raw, time)) = local_date_time(input)?;
    let (input, _) = tab(input)?;
    let (input, state) = punch_state(input)?;
    let (input, _) = tab(input)?;
    let (input, verify) = verify_mode(input)?;
    let (input, work_code) = optional_column(input, work_code::<CHECK_CONTROLS>)?;
    let (input, extra) = optional_column(input, extra::<CHECK_CONTROLS>)?;
    Ok((input, Punch { pin, time_raw, time, state, verify, work_code, extra }))
}

/// `pin = 1*64(%x20-7E / %x80-FF)`: the user id, a string (leading zeros count).
#[inline(always)]
fn pin<const CHECK_CONTROLS: bool>(input: &[u8]) -> Parsed<'_, &[u8]> {
    let (rest, pin) = column(input)?;
    if pin.is_empty() {
        return fail(RejectReason::EmptyPin);
    }
    if pin.len() > MAX_PIN_LEN {
        return fail(RejectReason::FieldTooLong);
    }
    if CHECK_CONTROLS && has_control(pin) {
        return fail(RejectReason::ControlCharacter);
    }
    Ok((rest, pin))
}

/// `local-date-time` as a whole column: the time exactly as sent, and its value.
#[inline(always)]
fn local_date_time(input: &[u8]) -> Parsed<'_, (&[u8], LocalDateTime)> {
    reason(RejectReason::BadTime, terminated(consumed(date_time), column_end)).parse(input)
}

/// `punch-state = 1*3DIGIT / ALPHA`, the number at most 255.
#[inline(always)]
fn punch_state(input: &[u8]) -> Parsed<'_, &[u8]> {
    let (rest, state) = column(input)?;
    let valid = match state {
        [letter] if letter.is_ascii_alphabetic() => true,
        digits => matches!(small_number::<3>(digits), Ok(([], value)) if value <= 255),
    };
    if !valid {
        return fail(RejectReason::BadState);
    }
    Ok((rest, state))
}

/// `verify-mode = 1*5DIGIT`, at most 65535.
#[inline(always)]
fn verify_mode(input: &[u8]) -> Parsed<'_, u16> {
    match small_number::<5>(input) {
        Ok((rest, value)) if column_end(rest).is_ok() => match u16::try_from(value) {
            Ok(mode) => Ok((rest, mode)),
            Err(_) => fail(RejectReason::BadVerify),
        },
        _ => fail(RejectReason::BadVerify),
    }
}

/// `work-code = *64(%x20-7E / %x80-FF)`, often empty or `0`.
#[inline(always)]
fn work_code<const CHECK_CONTROLS: bool>(input: &[u8]) -> Parsed<'_, &[u8]> {
    let (rest, work_code) = column(input)?;
    if work_code.len() > MAX_WORK_CODE_LEN {
        return fail(RejectReason::FieldTooLong);
    }
    if CHECK_CONTROLS && has_control(work_code) {
        return fail(RejectReason::ControlCharacter);
    }
    Ok((rest, work_code))
}

/// `extra = *(TAB / %x20-7E / %x80-FF)`: every later column, TABs included, kept verbatim.
#[inline(always)]
fn extra<const CHECK_CONTROLS: bool>(input: &[u8]) -> Parsed<'_, &[u8]> {
    let is_control = |b: u8| b != b'\t' && (b < 0x20 || b == 0x7f);
    if CHECK_CONTROLS && input.iter().any(|&b| is_control(b)) {
        return fail(RejectReason::ControlCharacter);
    }
    rest(input)
}

/// `punch` over a line known to be text, and the record borrowed from it.
#[inline(always)]
fn parse_text_line<const CHECK_CONTROLS: bool>(text: &str) -> Result<AttLogRecord<'_>, RejectReason> {
    let (_, punch) = punch::<CHECK_CONTROLS>(text.as_bytes()).map_err(reason_of)?;
    // Every column ends at a TAB or at the end of the line, so `borrow_from` cannot fail.
    punch.borrow_from(text).ok_or(RejectReason::InvalidUtf8)
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
