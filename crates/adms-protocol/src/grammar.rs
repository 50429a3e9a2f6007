//! Building blocks shared by the nom grammars of the tables: the error type that carries a
//! [`RejectReason`], the combinator that attaches one, and the few field shapes every
//! TAB-separated table has.
//!
//! Each grammar is written so that the first field that fails decides the reason: the field
//! parser that fails wraps nom's error into [`Reject`] with its own reason, and nothing above it
//! backtracks (the line parsers contain no `alt` across fields), so the reason survives to the
//! caller unchanged.
//!
//! ```text
//! column = *(%x00-08 / %x0A-FF)    ; anything up to the next TAB or the end of the line
//! TAB    = %x09
//! ```

use nom::error::{ErrorKind, ParseError};
use nom::{IResult, Parser};

use crate::reject::RejectReason;

/// nom's error type for the table grammars: why the line is rejected.
///
/// nom's own parsers fail with an [`ErrorKind`], which says which combinator failed, not what is
/// wrong with the line; every field parser therefore names its reason with [`reason`]. A failure
/// that escapes unnamed can only be a missing field, hence the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject(pub RejectReason);

impl<I> ParseError<I> for Reject {
    fn from_error_kind(_: I, _: ErrorKind) -> Self {
        Reject(RejectReason::TooFewFields)
    }

    fn append(_: I, _: ErrorKind, other: Self) -> Self {
        other
    }
}

/// What every table parser returns.
pub type Parsed<'a, O> = IResult<&'a [u8], O, Reject>;

/// The line's reason for a failed parse (`Incomplete` cannot happen: the grammars only use
/// nom's `complete` parsers, which treat the end of the input as the end of the line).
pub fn reason_of(error: nom::Err<Reject>) -> RejectReason {
    match error {
        nom::Err::Error(Reject(reason)) | nom::Err::Failure(Reject(reason)) => reason,
        nom::Err::Incomplete(_) => RejectReason::TooFewFields,
    }
}

/// `parser`, with `why` as the reason whenever it fails.
#[inline(always)]
pub fn reason<'a, O, P>(why: RejectReason, mut parser: P) -> impl Parser<&'a [u8], Output = O, Error = Reject>
where
    P: Parser<&'a [u8], Output = O, Error = Reject>,
{
    move |input: &'a [u8]| parser.parse(input).map_err(|error| error.map(|_| Reject(why)))
}

/// A failure for `why`.
#[inline(always)]
pub fn fail<'a, O>(why: RejectReason) -> Parsed<'a, O> {
    Err(nom::Err::Error(Reject(why)))
}

#[inline(always)]
pub fn is_tab(b: u8) -> bool {
    b == b'\t'
}

/// `column`: the bytes up to the next TAB (or the end of the line); never fails.
///
/// `take_till(is_tab)` written out: it runs for several columns of every punch, and nom's version
/// stayed an out-of-line call through `Parser::process` (about 40 instructions a column). A
/// plain byte loop, not `memchr`: table fields are 1 to 19 bytes, too short for a vector search
/// to pay for its set-up.
#[inline(always)]
pub fn column(input: &[u8]) -> Parsed<'_, &[u8]> {
    let end = input.iter().position(|&b| is_tab(b)).unwrap_or(input.len());
    let (column, rest) = input.split_at(end);
    Ok((rest, column))
}

/// `TAB`; a line that ends instead has too few fields.
#[inline(always)]
pub fn tab(input: &[u8]) -> Parsed<'_, u8> {
    match input.split_first() {
        Some((b'\t', rest)) => Ok((rest, b'\t')),
        _ => fail(RejectReason::TooFewFields),
    }
}

/// Succeeds, consuming nothing, where a column ends: before a TAB or at the end of the line.
#[inline(always)]
pub fn column_end(input: &[u8]) -> Parsed<'_, ()> {
    match input.first() {
        None | Some(b'\t') => Ok((input, ())),
        Some(_) => fail(RejectReason::TooFewFields),
    }
}

/// True when `bytes` holds a C0 control character or DEL.
#[inline]
pub fn has_control(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b < 0x20 || b == 0x7f)
}

/// `part` as text, where `part` is a sub-slice of `text`'s bytes cut at ASCII delimiters (so at
/// character boundaries): the grammars run over bytes, the records hold `&str` borrowed from the
/// body, and this maps one to the other without validating the bytes again.
#[inline(always)]
pub fn sub_str<'a>(text: &'a str, part: &[u8]) -> Option<&'a str> {
    let start = (part.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    text.get(start..start.checked_add(part.len())?)
}

/// `[TAB column]`: after a TAB, `column` (which must then succeed: a bad optional column rejects
/// the line rather than reading as absent); otherwise nothing, as the empty slice at `input` so
/// that an absent column too borrows from the line.
#[inline(always)]
pub fn optional_column<'a>(
    input: &'a [u8],
    column: impl FnOnce(&'a [u8]) -> Parsed<'a, &'a [u8]>,
) -> Parsed<'a, &'a [u8]> {
    match input.split_first() {
        Some((b'\t', rest)) => column(rest),
        _ => Ok((input, input)),
    }
}

/// `1*MAX_DIGITS DIGIT` as a number; at most 9 digits, so that it fits a `u32`.
///
/// A primitive of its own rather than `take_while_m_n` and a fold: it runs for two columns of
/// every punch, and one pass that reads and adds each digit is a few instructions a byte.
#[inline(always)]
pub fn small_number<const MAX_DIGITS: usize>(input: &[u8]) -> Parsed<'_, u32> {
    const { assert!(MAX_DIGITS <= 9) };
    let mut value = 0u32;
    let mut length = 0;
    for &b in input.iter().take(MAX_DIGITS) {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        value = value * 10 + u32::from(digit);
        length += 1;
    }
    match (length, input.get(length..)) {
        (1.., Some(rest)) => Ok((rest, value)),
        _ => fail(RejectReason::BadNumber),
    }
}
