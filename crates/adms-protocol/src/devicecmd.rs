//! `POST /iclock/devicecmd` bodies: results of commands (`protocol.md` §3.9).
//!
//! One result per `ID=` line (`ID=..&Return=..&CMD=..`), several per body. Some results carry a
//! payload on the following lines (`INFO` answers with `key=value` lines; `Shell` and `GetFile`
//! use a multi-line `ID=\nReturn=\nCMD=\nContent=` form). Results are matched by id only: `CMD`
//! echoes just the first word of the command.

use crate::lines::Line;
use crate::reject::{RejectReason, Rejected};

/// One command result, borrowing from the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandResult<'a> {
    /// The command id we sent (`C:<id>:`), as echoed.
    pub id: &'a str,
    /// `Return=`: 0 success, negative error codes, positive counts/sizes.
    pub return_code: Option<i64>,
    /// First word of the command (`DATA`, `INFO`, `CLEAR_LOG`, ...).
    pub cmd: &'a str,
    /// The whole first line, so extra parameters (`AttlogSum=`, `SN=`) are kept.
    pub head: &'a [u8],
    /// Everything after the result's header lines up to the next result (may be empty).
    pub payload: &'a [u8],
}

fn starts_with_key(line: &[u8], key: &[u8]) -> bool {
    line.len() >= key.len() && line[..key.len()].eq_ignore_ascii_case(key)
}

fn value_after<'a>(line: &'a [u8], key: &[u8]) -> &'a [u8] {
    &line[key.len()..]
}

fn to_str(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes.trim_ascii()).unwrap_or_default()
}

fn parse_return(bytes: &[u8]) -> Option<i64> {
    to_str(bytes).parse().ok()
}

/// Splits a body into lines with their byte ranges (LF-terminated, CR stripped).
fn line_spans(body: &[u8]) -> Vec<(usize, usize, usize)> {
    // (start, end_without_terminator, next_start)
    let mut spans = Vec::new();
    let mut start = 0;
    while start < body.len() {
        let next = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |i| start + i + 1);
        let mut end = if next > start && body.get(next - 1) == Some(&b'\n') { next - 1 } else { next };
        if end > start && body[end - 1] == b'\r' {
            end -= 1;
        }
        spans.push((start, end, next));
        start = next;
    }
    spans
}

/// Parses every result in a devicecmd body. Text before the first `ID=` is rejected (kept raw).
pub fn parse_command_results(body: &[u8]) -> Vec<Result<CommandResult<'_>, Rejected<'_>>> {
    let spans = line_spans(body);
    let mut out = Vec::new();
    let mut i = 0;
    while i < spans.len() {
        let (start, end, _) = spans[i];
        let line = &body[start..end];
        let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if !starts_with_key(line, b"ID=") {
            if !line.trim_ascii().is_empty() {
                out.push(Err(Rejected { line: Line { number, bytes: line }, reason: RejectReason::NotACommandResult }));
            }
            i += 1;
            continue;
        }
        let mut result = CommandResult { id: "", return_code: None, cmd: "", head: line, payload: b"" };
        for param in line.split(|&b| b == b'&') {
            if starts_with_key(param, b"ID=") {
                result.id = to_str(value_after(param, b"ID="));
            } else if starts_with_key(param, b"Return=") {
                result.return_code = parse_return(value_after(param, b"Return="));
            } else if starts_with_key(param, b"CMD=") {
                result.cmd = to_str(value_after(param, b"CMD="));
            }
        }
        // Header lines of the multi-line form, then the payload up to the next `ID=`.
        let mut j = i + 1;
        while j < spans.len() {
            let l = &body[spans[j].0..spans[j].1];
            if starts_with_key(l, b"Return=") && result.return_code.is_none() {
                result.return_code = parse_return(value_after(l, b"Return="));
            } else if starts_with_key(l, b"CMD=") && result.cmd.is_empty() {
                result.cmd = to_str(value_after(l, b"CMD="));
            } else if starts_with_key(l, b"SN=") || starts_with_key(l, b"FILENAME=") {
            } else {
                break;
            }
            j += 1;
        }
        let payload_start = spans.get(j).map_or(body.len(), |s| s.0);
        let mut k = j;
        while k < spans.len() && !starts_with_key(&body[spans[k].0..spans[k].1], b"ID=") {
            k += 1;
        }
        let payload_end = spans.get(k).map_or(body.len(), |s| s.0);
        result.payload = &body[payload_start..payload_end.max(payload_start)];
        if result.id.is_empty() || result.id.len() > 64 {
            out.push(Err(Rejected {
                line: Line { number, bytes: line },
                reason: if result.id.is_empty() { RejectReason::MissingKey } else { RejectReason::FieldTooLong },
            }));
        } else {
            out.push(Ok(result));
        }
        i = k;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_single_line_results() {
        let body = b"ID=1&Return=0&CMD=DATA\nID=2&Return=-1002&CMD=DATA\r\nID=a13eeb9927464f9e&Return=3&CMD=CHECK\n";
        let r: Vec<_> = parse_command_results(body).into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].id, r[0].return_code, r[0].cmd), ("1", Some(0), "DATA"));
        assert_eq!((r[1].id, r[1].return_code), ("2", Some(-1002)));
        assert_eq!((r[2].id, r[2].return_code, r[2].cmd), ("a13eeb9927464f9e", Some(3), "CHECK"));
        assert!(r.iter().all(|x| x.payload.is_empty()));
    }

    #[test]
    fn info_payload_is_not_read_as_results() {
        let body = b"ID=1&Return=0&CMD=DATA\nID=1786485203822&Return=0&CMD=INFO\n~DeviceName=SpeedFace-V5L\nUserCount=4\nID=9&Return=0&CMD=CHECK";
        let r: Vec<_> = parse_command_results(body).into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].cmd, "INFO");
        assert_eq!(r[1].payload, b"~DeviceName=SpeedFace-V5L\nUserCount=4\n");
        assert_eq!(r[2].id, "9");
    }

    #[test]
    fn multi_line_shell_form_and_garbage() {
        let body = b"junk\nID=32\nReturn=0\nCMD=Shell\nContent=total 0\nline two\n";
        let r = parse_command_results(body);
        assert_eq!(r.len(), 2);
        assert!(matches!(r[0], Err(Rejected { reason: RejectReason::NotACommandResult, .. })));
        let ok = r[1].unwrap();
        assert_eq!((ok.id, ok.return_code, ok.cmd), ("32", Some(0), "Shell"));
        assert_eq!(ok.payload, b"Content=total 0\nline two\n");
        assert!(parse_command_results(b"ID=&Return=0")[0].is_err());
        assert!(parse_command_results(b"").is_empty());
    }
}
