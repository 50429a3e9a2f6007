//! `POST /iclock/devicecmd` bodies: results of commands (`protocol.md` §3.9).
//!
//! One result per `ID=` line (`ID=..&Return=..&CMD=..`), several per body. Some results carry a
//! payload on the following lines (`INFO` answers with `key=value` lines; `Shell` and `GetFile`
//! use a multi-line `ID=\nReturn=\nCMD=\nContent=` form). Results are matched by id only: `CMD`
//! echoes just the first word of the command.
//!
//! ```text
//! results     = *(result / stray-line)
//! result      = id-line *header-line *payload-line
//! id-line     = "ID=" param *("&" param)   ; keys any case; a later param wins
//! param       = "ID=" text / "Return=" integer / "CMD=" text / *(%x00-25 / %x27-FF)
//! header-line = "Return=" integer / "CMD=" text / "SN=" line / "FILENAME=" line
//!                                          ; Return and CMD only while not yet known
//! payload-line = line                      ; any line that is not an id-line
//! stray-line  = line                       ; before the first id-line: NotACommandResult
//!                                          ; unless blank
//! line        = *(%x00-09 / %x0B-FF) [CR] (LF / end)
//! ```
//!
//! A result without an id is `MissingKey`, one with an id over 64 bytes `FieldTooLong`; a
//! `Return` that is not a number reads as absent.

use nom::Parser;
use nom::bytes::complete::{tag_no_case, take_till};
use nom::combinator::{eof, not};

use crate::grammar::{Parsed, Reject};
use crate::kv::integer;
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

/// `line`: one line of the body without its LF and one CR before it; fails at the body's end.
fn line(input: &[u8]) -> Parsed<'_, &[u8]> {
    let (input, ()) = not(eof).parse(input)?;
    let (rest, line) = take_till(|b| b == b'\n').parse(input)?;
    let rest = rest.get(1..).unwrap_or(rest);
    Ok((rest, line.strip_suffix(b"\r").unwrap_or(line)))
}

/// `key` at the start of `input` (any case), and what follows it.
fn after_key<'a>(input: &'a [u8], key: &'static str) -> Option<&'a [u8]> {
    tag_no_case::<_, _, Reject>(key.as_bytes()).parse(input).ok().map(|(value, _)| value)
}

/// `text`: a value as text, trimmed; empty when it is not UTF-8.
fn text(value: &[u8]) -> &str {
    std::str::from_utf8(value.trim_ascii()).unwrap_or_default()
}

/// `integer` for `Return=`: trimmed; absent when it is not a number.
fn return_code(value: &[u8]) -> Option<i64> {
    integer(text(value).as_bytes()).ok().map(|(_, code)| code)
}

/// `id-line`: the result its params describe (no payload yet).
fn id_line(line: &[u8]) -> Option<CommandResult<'_>> {
    after_key(line, "ID=")?;
    let mut result = CommandResult { id: "", return_code: None, cmd: "", head: line, payload: b"" };
    let mut input = line;
    loop {
        let (rest, param) = take_till::<_, _, Reject>(|b| b == b'&').parse(input).ok()?;
        if let Some(id) = after_key(param, "ID=") {
            result.id = text(id);
        } else if let Some(code) = after_key(param, "Return=") {
            result.return_code = return_code(code);
        } else if let Some(cmd) = after_key(param, "CMD=") {
            result.cmd = text(cmd);
        }
        match rest.split_first() {
            Some((_ampersand, after)) => input = after,
            None => return Some(result),
        }
    }
}

/// `header-line`, applied to `result`; false when the line is not one (the payload starts).
fn header_line<'a>(line: &'a [u8], result: &mut CommandResult<'a>) -> bool {
    if let Some(code) = after_key(line, "Return=").filter(|_| result.return_code.is_none()) {
        result.return_code = return_code(code);
    } else if let Some(cmd) = after_key(line, "CMD=").filter(|_| result.cmd.is_empty()) {
        result.cmd = text(cmd);
    } else if after_key(line, "SN=").is_none() && after_key(line, "FILENAME=").is_none() {
        return false;
    }
    true
}

/// Parses every result in a devicecmd body. Text before the first `ID=` is rejected (kept raw).
pub fn parse_command_results(body: &[u8]) -> Vec<Result<CommandResult<'_>, Rejected<'_>>> {
    let mut out = Vec::new();
    let mut input = body;
    let mut number = 0u32;
    while let Ok((rest, head)) = line(input) {
        input = rest;
        number = number.saturating_add(1);
        let Some(mut result) = id_line(head) else {
            if !head.trim_ascii().is_empty() {
                out.push(Err(Rejected { line: Line { number, bytes: head }, reason: RejectReason::NotACommandResult }));
            }
            continue;
        };
        let head_number = number;
        // Header lines of the multi-line form, then the payload up to the next `ID=`.
        while let Ok((rest, header)) = line(input) {
            if !header_line(header, &mut result) {
                break;
            }
            input = rest;
            number = number.saturating_add(1);
        }
        let payload_start = input;
        while let Ok((rest, payload_line)) = line(input) {
            if after_key(payload_line, "ID=").is_some() {
                break;
            }
            input = rest;
            number = number.saturating_add(1);
        }
        result.payload = payload_start.get(..payload_start.len() - input.len()).unwrap_or_default();
        let reason = match result.id.len() {
            0 => Some(RejectReason::MissingKey),
            1..=64 => None,
            _ => Some(RejectReason::FieldTooLong),
        };
        out.push(match reason {
            None => Ok(result),
            Some(reason) => Err(Rejected { line: Line { number: head_number, bytes: head }, reason }),
        });
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
