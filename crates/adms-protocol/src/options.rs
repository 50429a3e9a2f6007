//! Option dumps: `table=options` bodies, `/iclock/registry` bodies and `INFO` command results
//! (`protocol.md` §3.2, §3.9, §3.14).
//!
//! `key=value` pairs separated by commas (some firmware: newlines). Values may contain commas
//! (`~OEMVendor=ZKTeco Co., Ltd.`), so a segment only starts a new pair when it looks like
//! `key=`; otherwise it is glued to the previous value, commas included.
//!
//! ```text
//! options      = item *(separator item)
//! separator    = "," / LF
//! item         = option / text / blank
//! option       = key "=" value *continuation  ; a pair
//! key          = *WSP 1*(ALPHA / DIGIT / "~" / "_" / "." / "-") *WSP
//! value        = segment                      ; the rest of the segment, "=" included
//! continuation = 1*("," blank) text / "," text    ; commas only: a LF never glues
//! text         = segment                      ; neither a pair nor blank: key ""
//! blank        = *WSP
//! segment      = *(%x00-09 / %x0B-2B / %x2D-FF)
//! ```
//!
//! Values (and text) are trimmed of ASCII whitespace.

use nom::Parser;
use nom::bytes::complete::{tag, take_till};

use crate::grammar::{Parsed, Reject, fail};
use crate::reject::RejectReason;

/// One `key=value` option, borrowing from the body. `key` is empty for text that precedes the
/// first pair (kept rather than dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionPair<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl<'a> OptionPair<'a> {
    pub fn key_str(&self) -> &'a str {
        std::str::from_utf8(self.key).unwrap_or_default()
    }
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'~' | b'_' | b'.' | b'-')
}

fn is_separator(b: u8) -> bool {
    b == b',' || b == b'\n'
}

/// `segment`: the bytes up to the next separator (or the end); never fails.
fn segment(input: &[u8]) -> Parsed<'_, &[u8]> {
    take_till(is_separator).parse(input)
}

/// `blank`: a segment of ASCII whitespace only (or nothing).
fn is_blank(segment: &[u8]) -> bool {
    segment.trim_ascii().is_empty()
}

/// `key "="` at the start of a segment: the key, trimmed, and the rest of the segment.
fn key(segment: &[u8]) -> Parsed<'_, &[u8]> {
    let (rest, raw) = take_till(|b| b == b'=').parse(segment)?;
    let (value, _) = tag(&b"="[..]).parse(rest)?;
    let key = raw.trim_ascii();
    if key.is_empty() || !key.iter().all(|&b| is_key_byte(b)) {
        return fail(RejectReason::MissingKey);
    }
    Ok((value, key))
}

/// `continuation`, from the separator after a value: the text glued to it and what follows.
fn continuation(mut input: &[u8]) -> Parsed<'_, &[u8]> {
    loop {
        let (after_comma, _) = tag(&b","[..]).parse(input)?;
        let (rest, text) = segment(after_comma)?;
        if is_blank(text) {
            input = rest;
            continue;
        }
        if key(text).is_ok() {
            return fail(RejectReason::MissingKey);
        }
        return Ok((rest, text));
    }
}

/// `option`: a pair, its value running over every continuation.
fn option(input: &[u8]) -> Parsed<'_, OptionPair<'_>> {
    let (mut rest, first_segment) = segment(input)?;
    let (value_head, key) = key(first_segment)?;
    // Offsets into `input`, where the value starts and (so far) ends.
    let value_start = first_segment.len() - value_head.len();
    let mut value_end = first_segment.len();
    while let Ok((after, _text)) = continuation(rest) {
        value_end = input.len() - after.len();
        rest = after;
    }
    let value = input.get(value_start..value_end).unwrap_or_default().trim_ascii();
    Ok((rest, OptionPair { key, value }))
}

/// `item` where it is not an option: text kept with an empty key, or nothing for a blank.
fn text(input: &[u8]) -> Parsed<'_, Option<OptionPair<'_>>> {
    let (rest, text) = segment(input)?;
    let pair = (!is_blank(text)).then(|| OptionPair { key: b"", value: text.trim_ascii() });
    Ok((rest, pair))
}

/// Parses an options dump into pairs, in order. Values are trimmed of surrounding whitespace.
pub fn parse_options(body: &[u8]) -> Vec<OptionPair<'_>> {
    let mut pairs: Vec<OptionPair<'_>> = Vec::new();
    let mut input = body;
    loop {
        let item: Result<_, nom::Err<Reject>> = match option(input) {
            Ok((rest, pair)) => Ok((rest, Some(pair))),
            Err(_) => text(input),
        };
        let Ok((rest, pair)) = item else { break };
        pairs.extend(pair);
        // The separator that ends the item, or the end of the body.
        match rest.split_first() {
            Some((_separator, after)) => input = after,
            None => break,
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(body: &[u8]) -> Vec<(String, String)> {
        parse_options(body)
            .into_iter()
            .map(|p| (String::from_utf8_lossy(p.key).into_owned(), String::from_utf8_lossy(p.value).into_owned()))
            .collect()
    }

    fn owned(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn commas_inside_values_spaces_and_empty_values() {
        assert_eq!(
            pairs(b"~DeviceName=SpeedFace-V5L,~OEMVendor=ZKTeco Co., Ltd.,RegDeviceType=,~OEMVendor2= ZKTeco Inc. ,FaceFunOn=1"),
            owned(&[
                ("~DeviceName", "SpeedFace-V5L"),
                ("~OEMVendor", "ZKTeco Co., Ltd."),
                ("RegDeviceType", ""),
                ("~OEMVendor2", "ZKTeco Inc."),
                ("FaceFunOn", "1"),
            ])
        );
    }

    #[test]
    fn newline_separators_trailing_separators_and_leading_garbage() {
        assert_eq!(
            pairs(b"garbage\nFingerFunOn=1\r\nFaceFunOn=1,\n"),
            owned(&[("", "garbage"), ("FingerFunOn", "1"), ("FaceFunOn", "1")])
        );
        assert_eq!(pairs(b""), owned(&[]));
        assert_eq!(
            pairs(b"MultiBioDataSupport=0:1:0:0:0:0:0:0:1:1"),
            owned(&[("MultiBioDataSupport", "0:1:0:0:0:0:0:0:1:1")])
        );
        assert_eq!(pairs(b"MinorVer =0,x=a=b"), owned(&[("MinorVer", "0"), ("x", "a=b")]));
    }
}
