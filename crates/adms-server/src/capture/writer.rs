//! The capture writer: an OS thread of its own draining the queue into session files, one
//! folder per device (`DIR/<SN>/<start>-<n>.session`, payloads in `DIR/<SN>/<start>-<n>/`).
//! All file I/O of capture happens here, never on the runtime.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use super::{CaptureSettings, Exchange};

/// The headers `adms-sim replay` sends by default (`fixtures/README.md`); a recorded request
/// says only how it differs from them.
const REPLAY_DEFAULTS: [(&str, &str); 2] = [("User-Agent", "iClock Proxy/1.09"), ("Accept", "*/*")];
const REPLAY_POST_DEFAULT: (&str, &str) = ("Content-Type", "text/plain");

/// Answer values that differ from one server (or run) to the next: an expectation stops just
/// after the first of them (`^…` prefix), so a replay against another server still matches.
const VARYING_VALUES: [&str; 4] = ["RegistryCode=", "SessionID=", "DateTime=", "ServerTime="];

pub(super) struct Writer {
    files: Files,
    receiver: mpsc::Receiver<Exchange>,
    queued_bytes: Arc<AtomicUsize>,
    write_failures: Counter,
}

impl Writer {
    pub(super) fn new(
        files: Files,
        receiver: mpsc::Receiver<Exchange>,
        queued_bytes: Arc<AtomicUsize>,
        write_failures: Counter,
    ) -> Writer {
        Writer { files, receiver, queued_bytes, write_failures }
    }

    /// Until the queue closes (the `Capture` dropped).
    pub(super) fn run(mut self) {
        while let Some(exchange) = self.receiver.blocking_recv() {
            if let Err(error) = self.files.write(&exchange) {
                let total = self.write_failures.inc() + 1;
                if total == 1 || total.is_multiple_of(1000) {
                    tracing::warn!(sn = %exchange.sn, failures_so_far = total, "device exchange not captured: {error}");
                }
            }
            self.queued_bytes.fetch_sub(exchange.queued_bytes(), Ordering::AcqRel);
        }
    }
}

/// The session file a device is being recorded into.
struct Current {
    path: PathBuf,
    /// File name without `.session`: also the name of its payload folder.
    stem: String,
    opened: Instant,
    bytes: u64,
    payloads: u32,
    last_finished: Instant,
}

/// A file no longer written, oldest first: deleted when the folder is over its cap.
struct Closed {
    session: PathBuf,
    payloads: PathBuf,
    bytes: u64,
}

pub(super) struct Files {
    settings: CaptureSettings,
    current: HashMap<String, Current>,
    closed: VecDeque<Closed>,
    total_bytes: u64,
    /// Tells apart files opened in the same second.
    opened_count: u64,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum WriteError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the capture folder is at its cap ([capture] max_total_bytes) and holds no closed file to delete")]
    DiskCap,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io { path: path.to_owned(), source }
}

impl Files {
    /// Counts what earlier runs left in the folder (their files are the first deleted).
    pub(super) fn open(settings: &CaptureSettings) -> std::io::Result<Files> {
        let mut found: Vec<(std::time::SystemTime, Closed)> = Vec::new();
        for device in std::fs::read_dir(&settings.dir)? {
            let device = device?.path();
            if !device.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&device)? {
                let session = entry?.path();
                if session.extension().is_none_or(|e| e != "session") {
                    continue;
                }
                let payloads = session.with_extension("");
                let meta = std::fs::metadata(&session)?;
                let bytes = meta.len() + folder_bytes(&payloads);
                found.push((meta.modified()?, Closed { session, payloads, bytes }));
            }
        }
        found.sort_by_key(|(modified, _)| *modified);
        let total_bytes = found.iter().map(|(_, c)| c.bytes).sum();
        Ok(Files {
            settings: settings.clone(),
            current: HashMap::new(),
            closed: found.into_iter().map(|(_, c)| c).collect(),
            total_bytes,
            opened_count: 0,
        })
    }

    fn write(&mut self, exchange: &Exchange) -> Result<(), WriteError> {
        let folder = self.settings.dir.join(device_folder(&exchange.sn));
        let rotate = self.current.get(&exchange.sn).is_some_and(|c| {
            c.bytes >= self.settings.max_file_bytes || c.opened.elapsed() >= self.settings.max_file_age
        });
        if rotate {
            self.close(&exchange.sn);
        }
        let mut text = String::new();
        if !self.current.contains_key(&exchange.sn) {
            self.opened_count += 1;
            let now = jiff::Timestamp::now();
            let stem = format!("{}-{}", now.strftime("%Y%m%dT%H%M%SZ"), self.opened_count);
            let _ = writeln!(
                text,
                "# Captured by adms-bridge: device {:?}, from {now:.0}.\n\
                 # Replay against a fresh server with the same settings: adms-sim replay FILE --target http://HOST:PORT",
                exchange.sn
            );
            let current = Current {
                path: folder.join(format!("{stem}.session")),
                stem,
                opened: Instant::now(),
                bytes: 0,
                payloads: 0,
                last_finished: exchange.started,
            };
            self.current.insert(exchange.sn.clone(), current);
        }
        let payload_bytes = if exchange.body_complete && !exchange.body.is_empty() && exchange.method == "POST" {
            exchange.body.len() as u64
        } else {
            0
        };
        let budget_needed = payload_bytes + 1024 + exchange.answer.len() as u64;
        while self.total_bytes + budget_needed > self.settings.max_total_bytes {
            if self.closed.is_empty() {
                // A device that went quiet keeps its file open: the oldest such file of another
                // device is closed, so that it can go.
                let idle = self
                    .current
                    .iter()
                    .filter(|(sn, _)| **sn != exchange.sn)
                    .min_by_key(|(_, c)| c.opened)
                    .map(|(sn, _)| sn.clone());
                match idle {
                    Some(sn) => self.close(&sn),
                    None => return Err(WriteError::DiskCap),
                }
            }
            let Some(oldest) = self.closed.pop_front() else { return Err(WriteError::DiskCap) };
            let _ = std::fs::remove_file(&oldest.session);
            let _ = std::fs::remove_dir_all(&oldest.payloads);
            self.total_bytes = self.total_bytes.saturating_sub(oldest.bytes);
        }
        let Some(current) = self.current.get_mut(&exchange.sn) else { return Ok(()) };
        std::fs::create_dir_all(&folder).map_err(io(&folder))?;
        let payload = if payload_bytes > 0 {
            current.payloads += 1;
            let name = format!("{}/{:04}.bin", current.stem, current.payloads);
            let path = folder.join(&name);
            let dir = folder.join(&current.stem);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            std::fs::write(&path, &exchange.body).map_err(io(&path))?;
            Some(name)
        } else {
            None
        };
        let gap = exchange.started.saturating_duration_since(current.last_finished);
        render(&mut text, exchange, payload.as_deref(), gap.as_millis());
        current.last_finished = exchange.finished;
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(&current.path).map_err(io(&current.path))?;
        file.write_all(text.as_bytes()).map_err(io(&current.path))?;
        let written = text.len() as u64 + payload_bytes;
        current.bytes += written;
        self.total_bytes += written;
        Ok(())
    }

    fn close(&mut self, sn: &str) {
        if let Some(current) = self.current.remove(sn) {
            let payloads = current.path.with_extension("");
            self.closed.push_back(Closed { session: current.path, payloads, bytes: current.bytes });
        }
    }
}

fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// A device's folder: its serial number when it is a plain name, else `_other` (an absent or
/// hostile `SN` must not name a path).
fn device_folder(sn: &str) -> &str {
    let plain = !sn.is_empty()
        && sn.len() <= 64
        && !sn.starts_with('.')
        && sn.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if plain { sn } else { "_other" }
}

/// One exchange as session lines: the request (with `gap=`, its header edits and its payload
/// file), then the expected answer.
fn render(out: &mut String, exchange: &Exchange, payload: Option<&str>, gap_ms: u128) {
    let method_known = exchange.method == "GET" || exchange.method == "POST";
    let target_plain = exchange.target.starts_with('/') && !exchange.target.bytes().any(|b| b <= b' ' || b >= 0x7f);
    if !exchange.body_complete
        || !method_known
        || !target_plain
        || (exchange.method == "GET" && !exchange.body.is_empty())
    {
        let _ = writeln!(
            out,
            "# not recorded: {} {:?} ({} body bytes read, answered {}): {}",
            exchange.method,
            exchange.target,
            exchange.body.len(),
            exchange.status,
            if exchange.body_complete {
                "not a request the session format can replay"
            } else {
                "the server answered before reading the whole body"
            }
        );
        return;
    }
    let mut line = format!("{} {}", exchange.method, exchange.target);
    if let Some(payload) = payload {
        let _ = write!(line, " <{payload}");
    }
    let mut defaults: Vec<(&str, &str)> = REPLAY_DEFAULTS.to_vec();
    if exchange.method == "POST" {
        defaults.push(REPLAY_POST_DEFAULT);
    }
    for (name, _) in &defaults {
        if !exchange.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
            let _ = write!(line, " -{name}");
        }
    }
    for (name, value) in &exchange.headers {
        let is_default = defaults.iter().any(|(k, v)| k.eq_ignore_ascii_case(name) && v == value);
        if !is_default {
            let _ = write!(line, " +{}:{}", header_name(name), escape(value, true));
        }
    }
    if gap_ms > 0 {
        let _ = write!(line, " gap={gap_ms}ms");
    }
    let _ = writeln!(out, "{line}");
    let answer = String::from_utf8_lossy(&exchange.answer);
    let _ = match expectation(&answer) {
        Some(matcher) => writeln!(out, "=> {} {matcher}", exchange.status),
        None => writeln!(out, "=> {}", exchange.status),
    };
}

/// A header name as firmware writes it (`user-agent` → `User-Agent`); HTTP/1 names are
/// case-insensitive, so this only makes the script readable.
fn header_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The body matcher of a recorded answer: exact, or (when it holds a value that differs between
/// servers: a command id, [`VARYING_VALUES`]) `^` and the text before that value. `None`: check
/// the status only (an empty body, or nothing stable before the varying part).
fn expectation(answer: &str) -> Option<String> {
    let mut cut = None;
    for marker in VARYING_VALUES {
        if let Some(at) = answer.find(marker) {
            cut = Some(cut.map_or(at + marker.len(), |c: usize| c.min(at + marker.len())));
        }
    }
    // Command lines `C:<id>:<text>`: the id is the server's.
    let mut offset = 0;
    for line in answer.split_inclusive('\n') {
        if line.starts_with("C:") {
            cut = Some(cut.map_or(offset + 2, |c: usize| c.min(offset + 2)));
            break;
        }
        offset += line.len();
    }
    match cut {
        None if answer.is_empty() => None,
        None => Some(escape(answer, false)),
        Some(0) => None,
        Some(at) => Some(format!("^{}", escape_body(&answer[..at]))),
    }
}

/// An exact expectation: a first character that would read as a matcher is escaped.
fn escape(text: &str, header: bool) -> String {
    let escaped = escape_body(text);
    if header {
        // Every space would end the `+Name:value` token.
        return escaped.replace(' ', "\\u{20}");
    }
    match escaped.chars().next() {
        Some(c @ ('~' | '^' | '!')) => format!("\\{c}{}", &escaped[1..]),
        _ => escaped,
    }
}

/// Text with the session format's escapes: `\n \r \t \\ \$`, control characters and spaces
/// (which would end a token or be trimmed) as `\u{HEX}`.
fn escape_body(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            '$' => out.push_str("\\$"),
            // A space inside a body is kept, except first and last (the script's line is
            // trimmed); in a header value every space would end the token.
            ' ' if i == 0 || i == last => out.push_str("\\u{20}"),
            c if c.is_control() || c == '\u{fffd}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_that_differ_between_servers_are_matched_by_their_stable_start() {
        assert_eq!(expectation("OK: 3").as_deref(), Some("OK: 3"));
        assert_eq!(expectation("").as_deref(), None);
        assert_eq!(expectation("C:12:INFO\nC:13:CHECK\n").as_deref(), Some("^C:"));
        assert_eq!(expectation("OK\nC:12:INFO\n").as_deref(), Some("^OK\\nC:"));
        assert_eq!(expectation("RegistryCode=ab12").as_deref(), Some("^RegistryCode="));
        assert_eq!(
            expectation("registry=ok\nRegistryCode=x\nSessionID=y\n").as_deref(),
            Some("^registry=ok\\nRegistryCode=")
        );
        assert_eq!(expectation("~odd $x ").as_deref(), Some("\\~odd \\$x\\u{20}"));
    }

    #[test]
    fn hostile_serial_numbers_name_no_path() {
        assert_eq!(device_folder("ABC123"), "ABC123");
        for bad in ["", "../etc", "a/b", ".hidden", "x y", &"A".repeat(65)] {
            assert_eq!(device_folder(bad), "_other", "{bad}");
        }
    }
}
