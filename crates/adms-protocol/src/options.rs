//! Option dumps: `table=options` bodies, `/iclock/registry` bodies and `INFO` command results
//! (`protocol.md` §3.2, §3.9, §3.14).
//!
//! `key=value` pairs separated by commas (some firmware: newlines). Values may contain commas
//! (`~OEMVendor=ZKTeco Co., Ltd.`), so a segment only starts a new pair when it looks like
//! `key=`; otherwise it is glued to the previous value, commas included.

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

/// The key of `segment` if it looks like `key=...`.
fn key_of(segment: &[u8]) -> Option<(&[u8], usize)> {
    let eq = memchr::memchr(b'=', segment)?;
    let key = segment[..eq].trim_ascii();
    (!key.is_empty() && key.iter().all(|&b| is_key_byte(b))).then_some((key, eq))
}

/// Parses an options dump into pairs, in order. Values are trimmed of surrounding whitespace.
pub fn parse_options(body: &[u8]) -> Vec<OptionPair<'_>> {
    let mut pairs: Vec<OptionPair<'_>> = Vec::new();
    // (key, value_start, value_end) of the pair being built
    let mut current: Option<(&[u8], usize, usize)> = None;
    let mut start = 0;
    while start <= body.len() {
        let end = memchr::memchr2(b',', b'\n', &body[start..]).map_or(body.len(), |i| start + i);
        let segment = &body[start..end];
        match key_of(segment) {
            Some((key, eq)) => {
                if let Some((k, vs, ve)) = current.take() {
                    pairs.push(OptionPair { key: k, value: body[vs..ve].trim_ascii() });
                }
                current = Some((key, start + eq + 1, end));
            }
            None => match current.as_mut() {
                _ if segment.trim_ascii().is_empty() => {}
                // A newline never glues: it only separates, even when blank segments (`\n,`) follow it.
                Some((_, _, ve)) if !body[*ve..start].contains(&b'\n') => *ve = end,
                _ => {
                    if let Some((k, vs, ve)) = current.take() {
                        pairs.push(OptionPair { key: k, value: body[vs..ve].trim_ascii() });
                    }
                    pairs.push(OptionPair { key: b"", value: segment.trim_ascii() });
                }
            },
        }
        start = end + 1;
    }
    if let Some((k, vs, ve)) = current {
        pairs.push(OptionPair { key: k, value: body[vs..ve].trim_ascii() });
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
