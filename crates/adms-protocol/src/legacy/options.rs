//! The hand-written parser the nom grammar in [`crate::options`] replaced, kept verbatim (as of
//! `2028e2c`) for the differential test only.
//!
//! Option dumps: `table=options` bodies, `/iclock/registry` bodies and `INFO` command results
//! (`protocol.md` §3.2, §3.9, §3.14).
//!
//! `key=value` pairs separated by commas (some firmware: newlines). Values may contain commas
//! (`~OEMVendor=ZKTeco Co., Ltd.`), so a segment only starts a new pair when it looks like
//! `key=`; otherwise it is glued to the previous value, commas included.

use crate::options::OptionPair;

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
