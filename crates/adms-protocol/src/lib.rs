//! The ZKTeco ADMS / iClock "push" wire protocol, as a pure library.
//!
//! This crate turns request bytes into typed records and turns replies into bytes. It does no
//! I/O, has no async, no clock and no time-zone database, so it can be fuzzed, benchmarked and
//! reused by other tools (the load generator, replay tools).
//!
//! Parsing happens in two stages, as in `imap-codec`:
//! 1. [`lines`] frames a body into lines without judging them;
//! 2. one parser per table turns a line into a record **borrowing from the body**, or into a
//!    [`Rejected`] carrying the raw bytes and a [`RejectReason`]. A rejected line never aborts the
//!    rest of a batch: the caller stores it raw and goes on.
//!
//! The table parsers are nom 8 grammars over `&[u8]`: one small parser per field, composed into
//! a line parser; each module's documentation shows its grammar in ABNF-like lines, and
//! [`grammar`] holds the shared pieces (the error type [`grammar::Reject`] carries the
//! `RejectReason` of the field that failed). They replaced hand-written byte loops after a
//! differential test showed identical output over the fixtures, the shared captures and
//! generated bodies (BENCHMARKS.md, "the nom codec", has the A/B figures).
//!
//! Every fact encoded here comes from the protocol notes (`protocol.md` in the shared reference
//! material), cited by section in the item docs.

pub mod access;
pub mod attlog;
pub mod attphoto;
pub mod command;
pub mod devicecmd;
pub mod grammar;
pub mod info;
pub mod kv;
pub mod labels;
pub mod lines;
pub mod operlog;
pub mod options;
pub mod query;
pub mod reply;
pub mod rtlog;
pub mod table;
pub mod text;
pub mod time;

mod reject;

pub use attlog::{AttLogRecord, parse_attlog_body, parse_attlog_line};
pub use command::{CommandError, DeviceCommand};
pub use lines::{Line, lines};
pub use reject::{RejectReason, Rejected};
pub use table::UploadTable;
pub use time::LocalDateTime;

/// Parses every line of a body with `parse_line`, numbering lines from 1.
///
/// Yields `Ok(record)` or `Err(Rejected)` for every non-blank line, so that
/// `parsed + rejected == non-blank lines` always holds.
pub fn parse_lines<'a, T>(
    body: &'a [u8],
    parse_line: impl Fn(&'a [u8]) -> Result<T, RejectReason> + 'a,
) -> impl Iterator<Item = Result<(Line<'a>, T), Rejected<'a>>> + 'a {
    lines(body).map(move |line| match parse_line(line.bytes) {
        Ok(record) => Ok((line, record)),
        Err(reason) => Err(Rejected { line, reason }),
    })
}
