//! What a simulated terminal writes: its upload lines, its wall clock and an access panel's
//! first contact, byte for byte as firmware writes them (`protocol.md` §3.1, §3.13–§3.17).
//! The fleet's terminals and adms-loadgen's closed-loop drivers both write through here, so the
//! benchmark's figures are of the same requests the simulator sends.

use std::io::Write;

/// Appends `YYYY-MM-DD HH:MM:SS`, the civil UTC time of `unix` (a terminal's wall clock).
pub fn write_wall_clock(out: &mut Vec<u8>, unix: u64) {
    let (days, secs) = ((unix / 86_400) as i64, unix % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(out, "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
}

/// The wall clock of `unix` as a string.
pub fn wall_clock(unix: u64) -> String {
    let mut out = Vec::with_capacity(19);
    write_wall_clock(&mut out, unix);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends one push 2.x ATTLOG line: PIN, time, status 0 (check-in), verify 1 (fingerprint),
/// work code 0 and the two reserved columns.
pub fn write_attlog_line(out: &mut Vec<u8>, pin: u32, unix: u64) {
    let _ = write!(out, "{pin}\t");
    write_wall_clock(out, unix);
    out.extend_from_slice(b"\t0\t1\t0\t0\t0\n");
}

/// One access event as a Security PUSH panel reports it in `rtlog`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtlogEvent {
    pub unix: u64,
    pub pin: u32,
    /// 0: no card.
    pub card_no: u32,
    pub door: u8,
    /// 0: granted (normal verify open).
    pub event: u16,
    /// 4: card, 15: face.
    pub verify_type: u8,
    /// The panel's log position, growing by one per event.
    pub index: u64,
}

/// Appends one `rtlog` line (`key=value`, tab-separated).
pub fn write_rtlog_line(out: &mut Vec<u8>, e: &RtlogEvent) {
    out.extend_from_slice(b"time=");
    write_wall_clock(out, e.unix);
    let _ = writeln!(
        out,
        "\tpin={}\tcardno={}\teventaddr={}\tevent={}\tinoutstatus=0\tverifytype={}\tindex={}",
        e.pin, e.card_no, e.door, e.event, e.verify_type, e.index
    );
}

/// An access panel's handshake (`DeviceType=acc`, Security PUSH 3.1.2): answered `OK` before it
/// registers, the registry code and `registry=ok` after.
pub fn access_handshake_path(sn: &str) -> String {
    format!("/iclock/cdata?SN={sn}&options=all&pushver=3.1.2&DeviceType=acc")
}

/// The registry an inBIO460 Pro posts to `/iclock/registry` (four doors, eight readers), with
/// the last two bytes of its MAC and of its IP address.
pub fn access_registry_body(mac: [u8; 2], ip: [u8; 2]) -> String {
    format!(
        "DeviceType=acc,~DeviceName=inBIO460 Pro,FirmVer=AC Ver 5.7.8.3033 Nov  4 2022,PushVersion=Ver 3.2.1,\
         MAC=00:17:61:aa:{:02x}:{:02x},LockCount=4,ReaderCount=8,MachineType=10,IPAddress=10.1.{}.{}",
        mac[0], mac[1], ip[0], ip[1]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_is_the_civil_utc_time() {
        assert_eq!(wall_clock(0), "1970-01-01 00:00:00");
        assert_eq!(wall_clock(1_795_176_000), "2026-11-20 12:00:00");
        assert_eq!(wall_clock(951_782_400), "2000-02-29 00:00:00");
    }

    #[test]
    fn lines_are_what_firmware_writes() {
        let mut out = Vec::new();
        write_attlog_line(&mut out, 1042, 1_795_176_001);
        assert_eq!(out, b"1042\t2026-11-20 12:00:01\t0\t1\t0\t0\t0\n");
        out.clear();
        let event = RtlogEvent { unix: 0, pin: 7, card_no: 123_456, door: 2, event: 0, verify_type: 4, index: 21 };
        write_rtlog_line(&mut out, &event);
        assert_eq!(
            out,
            b"time=1970-01-01 00:00:00\tpin=7\tcardno=123456\teventaddr=2\tevent=0\tinoutstatus=0\tverifytype=4\tindex=21\n"
        );
    }
}
