//! `table=ATTPHOTO` / `/iclock/fdata` bodies: a text header, a NUL, then the JPEG bytes
//! (`protocol.md` §3.6). Treated as binary: never decoded as text past the header.

use crate::reject::RejectReason;
use crate::time::LocalDateTime;

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
        let b = stamp.as_bytes();
        if b.len() != 14 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let text = format!(
            "{}-{}-{} {}:{}:{}",
            &stamp[0..4],
            &stamp[4..6],
            &stamp[6..8],
            &stamp[8..10],
            &stamp[10..12],
            &stamp[12..14]
        );
        LocalDateTime::parse(text.as_bytes()).map(|t| (t, pin))
    }
}

/// Splits the body at the first NUL and reads the header lines.
pub fn parse_att_photo(body: &[u8]) -> Result<AttPhoto<'_>, RejectReason> {
    let nul = memchr::memchr(0, body).ok_or(RejectReason::MissingKey)?;
    let header = std::str::from_utf8(&body[..nul]).map_err(|_| RejectReason::InvalidUtf8)?;
    let mut photo = AttPhoto { file_name: "", sn: "", size: None, cmd: "", image: &body[nul + 1..] };
    for line in header.split('\n') {
        let line = line.trim_end_matches('\r');
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "pin" => photo.file_name = value.trim(),
            "sn" => photo.sn = value.trim(),
            "size" => photo.size = value.trim().parse().ok(),
            "cmd" => photo.cmd = value.trim(),
            _ => {}
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
}
