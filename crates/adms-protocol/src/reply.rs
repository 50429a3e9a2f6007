//! Everything the server sends back to a device, as bytes (`protocol.md` §2.3, §3, §5.1).
//!
//! Values that came from a device (stamps) or an operator are written through [`push_line`],
//! which drops CR/LF so that no value can inject an extra option line.

use std::fmt::Write as _;

use crate::time::{LocalDateTime, handshake_time_zone, offset_hhmm};

/// The upload flags we ask for (TransFlag format II, `protocol.md` §3.1): every table.
pub const TRANS_FLAG_ALL: &str = "TransData AttLog\tOpLog\tAttPhoto\tEnrollUser\tChgUser\tEnrollFP\tChgFP\tFPImag\tFACE\tUserPic\tWORKCODE\tBioPhoto";

/// Template kinds we accept (`MultiBioDataSupport`, one slot per BIODATA type 0-9): fingerprint,
/// NIR face, finger vein, palm and visible-light face. Everything is stored as received.
pub const MULTI_BIO_DATA_SUPPORT: &str = "0:1:1:0:0:0:0:1:1:1";
/// Biometric photos we accept (`MultiBioPhotoSupport`): visible-light face photos.
pub const MULTI_BIO_PHOTO_SUPPORT: &str = "0:0:0:0:0:0:0:0:0:1";

/// The plain acknowledgement.
pub const OK: &[u8] = b"OK";

/// `OK: <n>` for an upload of which `n` records were accepted.
pub fn ok_count(n: usize) -> String {
    format!("OK: {n}")
}

fn push_line(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push('=');
    out.extend(value.chars().filter(|c| *c != '\n' && *c != '\r'));
    out.push('\n');
}

/// Per-table upload marks echoed in the handshake. Never `None` (`protocol.md` §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamps<'a> {
    pub attlog: &'a str,
    pub operlog: &'a str,
    pub attphoto: &'a str,
    pub biodata: &'a str,
}

/// The server settings sent in a handshake reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerSettings<'a> {
    pub error_delay_secs: u32,
    pub delay_secs: u32,
    pub trans_times: &'a str,
    pub trans_interval_min: u32,
    pub realtime: bool,
    pub server_version: &'a str,
    pub server_name: &'a str,
    pub push_protocol_version: &'a str,
}

/// The attendance handshake reply: `GET OPTION FROM: <SN>` and one `key=value` per line.
pub fn handshake(sn: &str, stamps: Stamps<'_>, settings: &ServerSettings<'_>, utc_offset_seconds: i32) -> String {
    let mut out = String::with_capacity(640);
    out.push_str("GET OPTION FROM: ");
    out.extend(sn.chars().filter(|c| *c != '\n' && *c != '\r'));
    out.push('\n');
    // Legacy names first, for pre-pushver firmware (ZKTeco's demo sends both sets).
    push_line(&mut out, "Stamp", stamps.attlog);
    push_line(&mut out, "OpStamp", stamps.operlog);
    push_line(&mut out, "PhotoStamp", stamps.attphoto);
    push_line(&mut out, "ATTLOGStamp", stamps.attlog);
    push_line(&mut out, "OPERLOGStamp", stamps.operlog);
    push_line(&mut out, "ATTPHOTOStamp", stamps.attphoto);
    push_line(&mut out, "BIODATAStamp", stamps.biodata);
    push_line(&mut out, "ErrorDelay", &settings.error_delay_secs.to_string());
    push_line(&mut out, "Delay", &settings.delay_secs.to_string());
    push_line(&mut out, "TransTimes", settings.trans_times);
    push_line(&mut out, "TransInterval", &settings.trans_interval_min.to_string());
    push_line(&mut out, "TransFlag", TRANS_FLAG_ALL);
    push_line(&mut out, "TimeZone", &handshake_time_zone(utc_offset_seconds).to_string());
    push_line(&mut out, "Realtime", if settings.realtime { "1" } else { "0" });
    push_line(&mut out, "Encrypt", "0");
    push_line(&mut out, "ServerVer", settings.server_version);
    push_line(&mut out, "PushProtVer", settings.push_protocol_version);
    push_line(&mut out, "PushOptionsFlag", "1");
    push_line(&mut out, "PushOptions", "FingerFunOn,FaceFunOn,PvFunOn,FvFunOn,BioPhotoFun,BioDataFun");
    push_line(&mut out, "SupportPing", "1");
    push_line(&mut out, "MultiBioDataSupport", MULTI_BIO_DATA_SUPPORT);
    push_line(&mut out, "MultiBioPhotoSupport", MULTI_BIO_PHOTO_SUPPORT);
    push_line(&mut out, "ServerName", settings.server_name);
    out
}

/// Security PUSH settings block: the answer to `/iclock/push` and, with `registry=ok` first, to
/// the handshake of a registered access device (`protocol.md` §3.14, §3.15).
pub fn security_push_config(
    registry_code: &str,
    session_id: &str,
    settings: &ServerSettings<'_>,
    registered_handshake: bool,
) -> String {
    let mut out = String::with_capacity(320);
    if registered_handshake {
        out.push_str("registry=ok\n");
        push_line(&mut out, "RegistryCode", registry_code);
    }
    push_line(&mut out, "ServerVersion", "3.1.2");
    push_line(&mut out, "ServerName", settings.server_name);
    push_line(&mut out, "PushProtVer", "3.1.2");
    push_line(&mut out, "PushVersion", "3.1.2");
    push_line(&mut out, "ErrorDelay", &settings.error_delay_secs.to_string());
    push_line(&mut out, "RequestDelay", &settings.delay_secs.to_string());
    push_line(&mut out, "TransTimes", settings.trans_times);
    push_line(&mut out, "TransInterval", &settings.trans_interval_min.to_string());
    push_line(&mut out, "TransTables", "User Transaction");
    push_line(&mut out, "Realtime", if settings.realtime { "1" } else { "0" });
    push_line(&mut out, "SessionID", session_id);
    push_line(&mut out, "TimeoutSec", "10");
    out
}

/// `RegistryCode=<code>` answer to `/iclock/registry` (no newline, as documented).
pub fn registry_code(code: &str) -> String {
    let mut out = String::from("RegistryCode=");
    out.extend(code.chars().filter(|c| c.is_ascii_alphanumeric()).take(32));
    out
}

/// `DateTime=<zk encoded>,ServerTZ=+hhmm` answer to `/iclock/rtdata?type=time`.
pub fn rtdata_time(local_now: LocalDateTime, utc_offset_seconds: i32) -> String {
    format!("DateTime={},ServerTZ={}", local_now.zk_encoded(), offset_hhmm(utc_offset_seconds))
}

/// A command that cannot be framed safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommandFrameError {
    #[error("command ids are 1 to 16 letters or digits")]
    BadId,
    #[error("command text must not be empty or contain CR or LF")]
    BadText,
}

/// Appends `C:<id>:<command>\n` to a getrequest reply (`protocol.md` §5.1).
pub fn push_command(out: &mut String, id: &str, command: &str) -> Result<(), CommandFrameError> {
    if id.is_empty() || id.len() > 16 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(CommandFrameError::BadId);
    }
    if command.is_empty() || command.contains(['\n', '\r']) {
        return Err(CommandFrameError::BadText);
    }
    let _ = writeln!(out, "C:{id}:{command}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::parse_options;

    fn settings() -> ServerSettings<'static> {
        ServerSettings {
            error_delay_secs: 30,
            delay_secs: 10,
            trans_times: "00:00;14:05",
            trans_interval_min: 1,
            realtime: true,
            server_version: "2.4.1 adms-bridge",
            server_name: "adms-bridge",
            push_protocol_version: "2.4.1",
        }
    }

    #[test]
    fn handshake_round_trips_through_the_options_parser() {
        let stamps = Stamps { attlog: "9999", operlog: "0\nEvil=1", attphoto: "0", biodata: "0" };
        let text = handshake("CKJF201960996", stamps, &settings(), 19_800);
        let (first, rest) = text.split_once('\n').unwrap();
        assert_eq!(first, "GET OPTION FROM: CKJF201960996");
        let pairs: Vec<(String, String)> = rest
            .lines()
            .flat_map(|l| parse_options(l.as_bytes()))
            .map(|p| (p.key_str().to_owned(), String::from_utf8_lossy(p.value).into_owned()))
            .collect();
        let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("ATTLOGStamp"), Some("9999"));
        assert_eq!(get("OPERLOGStamp"), Some("0Evil=1"), "CR/LF cannot inject a line");
        assert_eq!(get("Evil"), None);
        assert_eq!(get("TimeZone"), Some("330"));
        assert_eq!(get("Delay"), Some("10"));
        assert_eq!(get("TransTimes"), Some("00:00;14:05"));
        assert_eq!(get("Realtime"), Some("1"));
        assert_eq!(get("Encrypt"), Some("0"));
        assert_eq!(get("PushProtVer"), Some("2.4.1"));
        assert!(text.contains(&format!("TransFlag={TRANS_FLAG_ALL}\n")));
        assert!(!text.contains("None"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn security_push_blocks() {
        let block = security_push_config("abc123", "s1", &settings(), true);
        assert!(block.starts_with("registry=ok\nRegistryCode=abc123\n"));
        assert!(!block.contains("GET OPTION") && !block.contains("ATTLOGStamp"));
        let block = security_push_config("abc123", "s1", &settings(), false);
        assert!(block.starts_with("ServerVersion=3.1.2\n"));
        assert_eq!(registry_code("ab\ncd-1"), "RegistryCode=abcd1");
        let t = LocalDateTime { year: 2000, month: 1, day: 1, hour: 0, minute: 1, second: 0 };
        assert_eq!(rtdata_time(t, 8 * 3600), "DateTime=60,ServerTZ=+0800");
    }

    #[test]
    fn command_framing_rejects_injection() {
        let mut out = String::new();
        push_command(&mut out, "12", "INFO").unwrap();
        push_command(&mut out, "a13eeb9927464f9e", "DATA UPDATE USERINFO PIN=1\tName=A").unwrap();
        assert_eq!(out, "C:12:INFO\nC:a13eeb9927464f9e:DATA UPDATE USERINFO PIN=1\tName=A\n");
        assert_eq!(push_command(&mut out, "1", "REBOOT\nC:2:CLEAR DATA"), Err(CommandFrameError::BadText));
        assert_eq!(push_command(&mut out, "1:2", "INFO"), Err(CommandFrameError::BadId));
        assert_eq!(push_command(&mut out, "", "INFO"), Err(CommandFrameError::BadId));
        assert_eq!(ok_count(128), "OK: 128");
    }
}
