//! `table=ATTPHOTO` / `/iclock/fdata` bodies: a text header, a NUL, then the JPEG bytes
//! (`protocol.md` §3.6). Treated as binary: never decoded as text past the header.
//!
//! ```text
//! photo       = header NUL image        ; no NUL: MissingKey
//! header      = header-line *(LF header-line)   ; UTF-8, else InvalidUtf8
//! header-line = key "=" value *CR       ; lines without "=" are ignored; keys any case
//! image       = *OCTET
//! ```
//!
//! `PIN` (the file name) is required (`MissingKey`); `SN`, `size` and `CMD` are read when
//! present, the last of a repeated key winning. The file name reads
//! `photo-stamp ["-" pin] ["." extension]` by convention, `photo-stamp = 14DIGIT`.

use nom::Parser;
use nom::bytes::complete::{tag, take_till, take_while_m_n};
use nom::combinator::all_consuming;

use crate::grammar::{Parsed, Reject, reason, sub_str};
use crate::reject::RejectReason;
use crate::time::{LocalDateTime, date_time};

/// Header fields and image bytes of an attendance photo, borrowing from the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttPhoto<'a> {
    /// `PIN=` value: the file name, `YYYYMMDDhhmmss-<PIN>.jpg` by convention.
    pub file_name: &'a str,
    pub sn: &'a str,
    pub size: Option<u64>,
    pub cmd: &'a str,
    pub image: &'a [u8],
}

impl<'a> AttPhoto<'a> {
    /// Punch time and PIN from the conventional file name; the PIN is absent for a failed
    /// verification (`20260101080000.jpg`).
    pub fn time_and_pin(&self) -> Option<(LocalDateTime, Option<&'a str>)> {
        let stem = self.file_name.rsplit_once('.').map_or(self.file_name, |(s, _)| s);
        let (stamp, pin) = match stem.split_once('-') {
            Some((stamp, pin)) => (stamp, (!pin.is_empty()).then_some(pin)),
            None => (stem, None),
        };
        photo_stamp(stamp.as_bytes()).ok().map(|(_, time)| (time, pin))
    }
}

/// `photo-stamp = 14DIGIT`, `YYYYMMDDhhmmss`, the whole input: the punch time of a file name.
fn photo_stamp(input: &[u8]) -> Parsed<'_, LocalDateTime> {
    let (rest, digits) = all_consuming(take_while_m_n(14, 14, |b: u8| b.is_ascii_digit())).parse(input)?;
    // Laid out as `YYYY-MM-DD hh:mm:ss` on the stack, the one form `date_time` reads.
    let mut text = *b"0000-00-00 00:00:00";
    for (at, pair) in [(0, 0..4), (5, 4..6), (8, 6..8), (11, 8..10), (14, 10..12), (17, 12..14)] {
        let part = digits.get(pair).unwrap_or_default();
        if let Some(slot) = text.get_mut(at..at + part.len()) {
            slot.copy_from_slice(part);
        }
    }
    let (_, time) = date_time(&text).map_err(|_| nom::Err::Error(Reject(RejectReason::BadTime)))?;
    Ok((rest, time))
}

/// `header NUL`: the header's bytes; the rest of the input is the image.
fn header(input: &[u8]) -> Parsed<'_, &[u8]> {
    let (rest, header) = take_till(|b| b == 0).parse(input)?;
    let (image, _) = reason(RejectReason::MissingKey, tag(&b"\0"[..])).parse(rest)?;
    Ok((image, header))
}

/// `header-line`: the line up to its LF (or the header's end).
fn header_line(input: &[u8]) -> Parsed<'_, &[u8]> {
    let (rest, line) = take_till(|b| b == b'\n').parse(input)?;
    Ok((rest, line))
}

/// `key "=" value` of a header line, when it has a `=`.
fn key_value(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let (rest, key) = take_till::<_, _, Reject>(|b| b == b'=').parse(line).ok()?;
    let (value, _) = tag::<_, _, Reject>(&b"="[..]).parse(rest).ok()?;
    Some((key, value))
}

/// Splits the body at the first NUL and reads the header lines.
pub fn parse_att_photo(body: &[u8]) -> Result<AttPhoto<'_>, RejectReason> {
    let (image, header_bytes) = header(body).map_err(crate::grammar::reason_of)?;
    let header_text = std::str::from_utf8(header_bytes).map_err(|_| RejectReason::InvalidUtf8)?;
    let text = |part: &[u8]| sub_str(header_text, part).unwrap_or_default().trim();
    let mut photo = AttPhoto { file_name: "", sn: "", size: None, cmd: "", image };
    let mut input = header_bytes;
    while let Ok((rest, line)) = header_line(input) {
        // Every CR at the end of the line goes, not only the one of a CRLF.
        let mut line = line;
        while let Some(shorter) = line.strip_suffix(b"\r") {
            line = shorter;
        }
        if let Some((key, value)) = key_value(line) {
            let key = text(key);
            if key.eq_ignore_ascii_case("pin") {
                photo.file_name = text(value);
            } else if key.eq_ignore_ascii_case("sn") {
                photo.sn = text(value);
            } else if key.eq_ignore_ascii_case("size") {
                photo.size = text(value).parse().ok();
            } else if key.eq_ignore_ascii_case("cmd") {
                photo.cmd = text(value);
            }
        }
        match rest.split_first() {
            Some((_line_feed, after)) => input = after,
            None => break,
        }
    }
    if photo.file_name.is_empty() {
        return Err(RejectReason::MissingKey);
    }
    Ok(photo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_header_and_binary() {
        let mut body = b"PIN=20260101080000-016.jpg\nSN=ABC123\nsize=4\nCMD=uploadphoto\0".to_vec();
        body.extend_from_slice(&[0xff, 0xd8, 0x00, 0xd9]);
        let p = parse_att_photo(&body).unwrap();
        assert_eq!((p.file_name, p.sn, p.size, p.cmd), ("20260101080000-016.jpg", "ABC123", Some(4), "uploadphoto"));
        assert_eq!(p.image, &[0xff, 0xd8, 0x00, 0xd9]);
        let (t, pin) = p.time_and_pin().unwrap();
        assert_eq!((t.to_string().as_str(), pin), ("2026-01-01 08:00:00", Some("016")));
        let p = parse_att_photo(b"PIN=20260101080000.jpg\0x").unwrap();
        assert_eq!(p.time_and_pin().map(|(_, pin)| pin), Some(None));
        assert_eq!(parse_att_photo(b"no nul here"), Err(RejectReason::MissingKey));
        assert_eq!(parse_att_photo(b"SN=1\0jpeg"), Err(RejectReason::MissingKey));
    }

    /// The stamp of a file name against the text form it stands for, byte by byte changed.
    #[test]
    fn photo_stamps_read_as_the_time_they_spell() {
        let reference = |stamp: &[u8]| -> Option<LocalDateTime> {
            if stamp.len() != 14 || !stamp.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let s = std::str::from_utf8(stamp).ok()?;
            let text = format!("{}-{}-{} {}:{}:{}", &s[0..4], &s[4..6], &s[6..8], &s[8..10], &s[10..12], &s[12..14]);
            LocalDateTime::parse(text.as_bytes())
        };
        for base in [b"20240229235959", b"20231231000000", b"19990909090909"] {
            for position in 0..base.len() {
                for value in 0..=255u8 {
                    let mut stamp = *base;
                    stamp[position] = value;
                    assert_eq!(photo_stamp(&stamp).ok().map(|(_, t)| t), reference(&stamp), "{stamp:?}");
                }
            }
        }
        assert!(photo_stamp(b"2024022923595").is_err());
        assert!(photo_stamp(b"202402292359590").is_err());
    }
}
