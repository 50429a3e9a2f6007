//! The hand-written `key=value` lookups the legacy OPERLOG parser used (as of `2028e2c`).
//!
//! `key=value` fields separated by TABs, the shape of `USER`, `FP`, `BIODATA`, `rtlog` and most
//! other record kinds (`protocol.md` §4.2, §4.7).

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

    /// Every `(key, value)` pair in order; a segment without `=` yields an empty value.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.raw.split(|&b| b == b'\t').filter(|s| !s.is_empty()).map(|segment| match memchr::memchr(b'=', segment) {
            Some(i) => (trim(&segment[..i]), &segment[i + 1..]),
            None => (trim(segment), &[][..]),
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
            Some(v) => v.parse().map(Some).map_err(|_| crate::RejectReason::BadNumber),
        }
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}
