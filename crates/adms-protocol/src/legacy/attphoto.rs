//! The hand-written parser the nom grammar in [`crate::attphoto`] replaced, kept verbatim (as of
//! `2028e2c`) for the differential test only.
//!
//! `table=ATTPHOTO` / `/iclock/fdata` bodies: a text header, a NUL, then the JPEG bytes
//! (`protocol.md` §3.6). Treated as binary: never decoded as text past the header.

use crate::attphoto::AttPhoto;
use crate::reject::RejectReason;

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
