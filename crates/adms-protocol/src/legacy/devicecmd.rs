//! The hand-written parser the nom grammar in [`crate::devicecmd`] replaced, kept verbatim (as of
//! `2028e2c`) for the differential test only.
//!
//! `POST /iclock/devicecmd` bodies: results of commands (`protocol.md` §3.9).
//!
//! One result per `ID=` line (`ID=..&Return=..&CMD=..`), several per body. Some results carry a
//! payload on the following lines (`INFO` answers with `key=value` lines; `Shell` and `GetFile`
//! use a multi-line `ID=\nReturn=\nCMD=\nContent=` form). Results are matched by id only: `CMD`
//! echoes just the first word of the command.

use crate::devicecmd::CommandResult;
use crate::lines::Line;
use crate::reject::{RejectReason, Rejected};

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
