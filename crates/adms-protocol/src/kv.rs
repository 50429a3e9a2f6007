//! `key=value` fields separated by TABs, the shape of `USER`, `FP`, `BIODATA`, `rtlog` and most
//! other record kinds (`protocol.md` §4.2, §4.7).
//!
//! ```text
//! fields  = *TAB [kv-pair *(1*TAB kv-pair) *TAB]  ; empty segments are skipped
//! kv-pair = key ["=" value]                      ; no "=": an empty value
//! key     = *(%x00-08 / %x0A-3C / %x3E-FF)       ; up to the first "=", trimmed of ASCII spaces
//! value   = *(%x00-08 / %x0A-FF)                 ; may hold "=" (base64 padding)
//! integer = ["+" / "-"] 1*DIGIT                  ; a value read as a number, spaces trimmed
//! ```

use nom::Parser;
use nom::bytes::complete::{take_till, take_while};
use nom::combinator::all_consuming;

use crate::grammar::{Parsed, column, is_tab};

/// Borrowed `key=value\tkey=value...` fields. Lookups are case-insensitive because firmware mixes
/// `PIN`/`Pin`/`pin` across record kinds. Values may contain `=` (base64 padding): the split is
/// at the first `=` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvFields<'a> {
    raw: &'a [u8],
}

impl<'a> KvFields<'a> {
    pub fn new(raw: &'a [u8]) -> KvFields<'a> {
        KvFields { raw }
    }

    /// The fields exactly as sent.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Every `(key, value)` pair in order; a segment without `=` yields an empty value.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let mut input = self.raw;
        std::iter::from_fn(move || {
            let (pair_start, _) = separators(input).ok()?;
            if pair_start.is_empty() {
                return None;
            }
            let (rest, pair) = kv_pair(pair_start).ok()?;
            input = rest;
            Some(pair)
        })
    }

    /// The value of the first field named `key` (ASCII case-insensitive).
    pub fn get(&self, key: &str) -> Option<&'a [u8]> {
        self.iter().find(|(k, _)| k.eq_ignore_ascii_case(key.as_bytes())).map(|(_, v)| v)
    }

    /// The value as UTF-8 text, `None` when absent or not UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&'a str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The value as an integer; `None` when absent or empty, `Err` when present but not a number.
    pub fn get_int(&self, key: &str) -> Result<Option<i64>, crate::RejectReason> {
        match self.get_str(key).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => integer(v.as_bytes()).map(|(_, value)| Some(value)).map_err(|_| crate::RejectReason::BadNumber),
        }
    }
}

/// `1*TAB` between pairs (or `*TAB` around them): skipped, so empty segments yield nothing.
fn separators(input: &[u8]) -> Parsed<'_, &[u8]> {
    take_while(is_tab).parse(input)
}

/// `kv-pair`: the key (trimmed) and the value (as sent); never fails.
pub fn kv_pair(input: &[u8]) -> Parsed<'_, (&[u8], &[u8])> {
    let (rest, key) = take_till(|b| b == b'=' || b == b'\t').parse(input)?;
    let (rest, value) = match rest.split_first() {
        Some((b'=', value)) => column(value)?,
        _ => (rest, &rest[..0]),
    };
    Ok((rest, (key.trim_ascii(), value)))
}

/// `integer`, the whole input: a decimal `i64` with an optional sign (what `str::parse` takes).
pub fn integer(input: &[u8]) -> Parsed<'_, i64> {
    all_consuming(nom::character::complete::i64).parse(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_case_insensitive_and_split_at_first_equals() {
        let kv = KvFields::new(b"PIN=1\tName=Ana\tTMP=abc==\tCard=\tflag\tMinorVer =0");
        assert_eq!(kv.get("pin"), Some(&b"1"[..]));
        assert_eq!(kv.get("NAME"), Some(&b"Ana"[..]));
        assert_eq!(kv.get("Tmp"), Some(&b"abc=="[..]));
        assert_eq!(kv.get("card"), Some(&b""[..]));
        assert_eq!(kv.get("flag"), Some(&b""[..]));
        assert_eq!(kv.get("MinorVer"), Some(&b"0"[..]));
        assert_eq!(kv.get("missing"), None);
        assert_eq!(kv.get_int("minorver"), Ok(Some(0)));
        assert_eq!(kv.get_int("card"), Ok(None));
        assert_eq!(kv.get_int("name"), Err(crate::RejectReason::BadNumber));
    }
}
