//! Scripted device sessions: every `fixtures/sessions/*.session` runs against a fresh server
//! (the real binary, its own temp database). A script sends byte-exact requests with bodies from
//! `fixtures/payloads/` and checks replies, row counts and what the ERP API serves. The format is
//! documented in `fixtures/README.md`; failures and script errors name `file:line`.
//!
//! `FIXTURE_SESSION=<name>` runs only the sessions whose file name contains `<name>`.

use crate::common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{Api, COUNTED_TABLES, RawResponse, Server, count_rows, device_option, fixtures};

/// Headers every scripted request carries unless the script removes them, as ZKTeco firmware
/// sends them (`Host` is added with the server address). POSTs also get `Content-Type`.
const DEVICE_HEADERS: [(&str, &str); 2] = [("User-Agent", "iClock Proxy/1.09"), ("Accept", "*/*")];
const POST_CONTENT_TYPE: (&str, &str) = ("Content-Type", "text/plain");

/// A stuck server fails the step instead of hanging the test run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn every_fixture_session_runs_as_scripted() {
    let only = std::env::var("FIXTURE_SESSION").ok();
    let sessions: Vec<PathBuf> = session_files()
        .into_iter()
        .filter(|p| only.as_deref().is_none_or(|name| file_name(p).contains(name)))
        .collect();
    assert!(!sessions.is_empty(), "no *.session files under {}", fixtures().join("sessions").display());
    let mut failures = Vec::new();
    for path in &sessions {
        let shown = format!("fixtures/sessions/{}", file_name(path));
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{shown}: {e}"));
        let outcome = match parse_script(&shown, &text, &fixtures().join("payloads")) {
            Ok(script) => run_script(&script).await,
            Err(errors) => Err(errors.join("\n")),
        };
        match outcome {
            Ok(report) => {
                for note in &report.expected_failures {
                    eprintln!("{note}");
                }
                let xfailed = report.expected_failures.len();
                eprintln!("{shown}: {} steps passed, {xfailed} failed as marked (xfail)", report.steps - xfailed);
            }
            Err(message) => failures.push(message),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} sessions failed:\n\n{}",
        failures.len(),
        sessions.len(),
        failures.join("\n\n")
    );
}

#[test]
fn script_errors_name_the_file_and_line() {
    let payloads = fixtures().join("payloads");
    let script = "\
# comment
GET /iclock/ping?SN=A
=> 200 OK
env ADMS_TIME_ZONE=+08:00
POST /iclock/cdata?SN=A @attlog/does-not-exist.txt
=> abc
rows nonsense 1
api transactions count many
frobnicate
option A key_without_matcher
xfail
=> 200 ${never_saved}
";
    let errors = parse_script("x.session", script, &payloads).expect_err("script has errors");
    let lines: Vec<&str> = errors.iter().map(|e| e.split(": ").next().unwrap_or_default()).collect();
    assert_eq!(
        lines,
        [
            "x.session:4",
            "x.session:5",
            "x.session:6",
            "x.session:7",
            "x.session:8",
            "x.session:9",
            "x.session:10",
            "x.session:11",
            "x.session:12"
        ],
        "{errors:#?}"
    );
    let errors = parse_script("y.session", "=> 200 OK\n", &payloads).expect_err("expectation before a request");
    assert!(errors[0].starts_with("y.session:1: "), "{errors:?}");
}

fn session_files() -> Vec<PathBuf> {
    let dir = fixtures().join("sessions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "session"))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The script model
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Script {
    /// `fixtures/sessions/NAME`, as failures show it.
    name: String,
    env: Vec<(String, String)>,
    steps: Vec<Step>,
}

#[derive(Debug)]
struct Step {
    line: usize,
    /// The line as written, for failure messages.
    source: String,
    /// Reason given by a preceding `xfail` line: the check is expected to fail.
    xfail: Option<String>,
    kind: StepKind,
}

#[derive(Debug)]
enum StepKind {
    Request(Request),
    /// `=> STATUS [MATCHER]`
    Status {
        status: u16,
        body: Option<Matcher>,
    },
    /// `header NAME MATCHER`
    Header {
        name: String,
        matcher: Matcher,
    },
    /// `save NAME`
    Save {
        name: String,
    },
    /// `rows TABLE N`
    Rows {
        table: String,
        count: i64,
    },
    /// `option SN KEY MATCHER`
    DeviceOption {
        sn: String,
        key: String,
        matcher: Matcher,
    },
    /// `api LIST[?QUERY] count N` / `api LIST[?QUERY] FIELD V1,V2,...`
    Api {
        list: ApiList,
        query: String,
        check: ApiCheck,
    },
}

#[derive(Debug)]
struct Request {
    method: &'static str,
    target: String,
    body: Vec<u8>,
    /// Headers in sending order, after the script's `-Name` / `+Name:value` edits.
    headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApiList {
    Transactions,
    Terminals,
    RejectedLines,
}

impl ApiList {
    fn parse(name: &str) -> Option<ApiList> {
        match name {
            "transactions" => Some(ApiList::Transactions),
            "terminals" => Some(ApiList::Terminals),
            "rejected-lines" => Some(ApiList::RejectedLines),
            _ => None,
        }
    }

    fn path(self) -> &'static str {
        match self {
            ApiList::Transactions => "/iclock/api/transactions/",
            ApiList::Terminals => "/iclock/api/terminals/",
            ApiList::RejectedLines => "/api/v1/rejected-lines",
        }
    }
}

#[derive(Debug)]
enum ApiCheck {
    Count(usize),
    Field { name: String, values: Vec<Text> },
}

#[derive(Debug)]
enum Matcher {
    Exact(Text),
    Contains(Text),
    Prefix(Text),
    NotContains(Text),
}

impl Matcher {
    fn check(&self, actual: &str, saved: &Saved) -> Result<(), String> {
        let (ok, how, expected) = match self {
            Matcher::Exact(t) => {
                let e = t.render(saved);
                (actual == e, "to be", e)
            }
            Matcher::Contains(t) => {
                let e = t.render(saved);
                (actual.contains(&e), "to contain", e)
            }
            Matcher::Prefix(t) => {
                let e = t.render(saved);
                (actual.starts_with(&e), "to start with", e)
            }
            Matcher::NotContains(t) => {
                let e = t.render(saved);
                (!actual.contains(&e), "not to contain", e)
            }
        };
        if ok { Ok(()) } else { Err(format!("expected {actual:?} {how} {expected:?}")) }
    }
}

/// Expected text: literals with escapes resolved, and `${name}` references to saved bodies.
#[derive(Debug, Clone)]
struct Text(Vec<Piece>);

#[derive(Debug, Clone)]
enum Piece {
    Literal(String),
    Saved(String),
}

type Saved = Vec<(String, String)>;

impl Text {
    fn render(&self, saved: &Saved) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                Piece::Saved(name) => {
                    // The parser only accepts names saved earlier in the script.
                    if let Some((_, value)) = saved.iter().rev().find(|(n, _)| n == name) {
                        out.push_str(value);
                    }
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Parses a whole script; every error is reported (as `name:line: message`), not just the first.
fn parse_script(name: &str, text: &str, payloads: &Path) -> Result<Script, Vec<String>> {
    let mut script = Script { name: name.to_owned(), env: Vec::new(), steps: Vec::new() };
    let mut errors = Vec::new();
    let mut saved_names: HashSet<String> = HashSet::new();
    let mut pending_xfail: Option<(usize, String)> = None;
    let mut seen_request = false;
    for (index, raw_line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (keyword, rest) = line.split_once(char::is_whitespace).map_or((line, ""), |(k, r)| (k, r.trim_start()));
        let parsed: Result<Option<StepKind>, String> = match keyword {
            "env" => parse_env(rest, seen_request).map(|pair| {
                script.env.push(pair);
                None
            }),
            "xfail" if rest.is_empty() => Err("`xfail` needs a reason".to_owned()),
            "xfail" => {
                pending_xfail = Some((line_no, rest.to_owned()));
                continue;
            }
            "GET" | "POST" => parse_request(keyword, rest, payloads).map(Some),
            "=>" => parse_status(rest, &saved_names).map(Some),
            "header" => parse_header(rest, &saved_names).map(Some),
            "save" => parse_save(rest).map(|kind| {
                if let StepKind::Save { name } = &kind {
                    saved_names.insert(name.clone());
                }
                Some(kind)
            }),
            "rows" => parse_rows(rest).map(Some),
            "option" => parse_option(rest, &saved_names).map(Some),
            "api" => parse_api(rest, &saved_names).map(Some),
            other => Err(format!("unknown keyword `{other}`")),
        };
        let kind = match parsed {
            Ok(Some(kind)) => kind,
            Ok(None) => continue,
            Err(message) => {
                errors.push(format!("{name}:{line_no}: {message}"));
                // The broken line is what an `xfail` before it was meant for.
                pending_xfail = None;
                continue;
            }
        };
        let needs_response = matches!(kind, StepKind::Status { .. } | StepKind::Header { .. } | StepKind::Save { .. });
        if needs_response && !seen_request {
            errors.push(format!("{name}:{line_no}: `{keyword}` checks the last response, but no request came before"));
            continue;
        }
        let is_check = !matches!(kind, StepKind::Request(_) | StepKind::Save { .. });
        let xfail = match pending_xfail.take() {
            Some((_, reason)) if is_check => Some(reason),
            Some((xfail_line, _)) => {
                errors.push(format!("{name}:{xfail_line}: `xfail` must be followed by a check, not `{keyword}`"));
                None
            }
            None => None,
        };
        seen_request |= matches!(kind, StepKind::Request(_));
        script.steps.push(Step { line: line_no, source: line.to_owned(), xfail, kind });
    }
    if let Some((xfail_line, _)) = pending_xfail {
        errors.push(format!("{name}:{xfail_line}: `xfail` at the end of the script marks nothing"));
    }
    if !seen_request && errors.is_empty() {
        errors.push(format!("{name}:1: the script sends no request"));
    }
    if errors.is_empty() { Ok(script) } else { Err(errors) }
}

fn parse_env(rest: &str, seen_request: bool) -> Result<(String, String), String> {
    if seen_request {
        return Err("`env` must come before the first request (it configures the server start)".to_owned());
    }
    let (key, value) = rest.split_once('=').ok_or("`env` needs KEY=VALUE")?;
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
        return Err(format!("`{key}` is not an environment variable name"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

fn parse_request(method: &str, rest: &str, payloads: &Path) -> Result<StepKind, String> {
    let mut tokens = rest.split_whitespace();
    let target = tokens.next().ok_or("a request needs a path")?;
    if !target.starts_with('/') {
        return Err(format!("the path must start with `/`: `{target}`"));
    }
    let method = if method == "GET" { "GET" } else { "POST" };
    let mut headers: Vec<(String, String)> =
        DEVICE_HEADERS.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    if method == "POST" {
        headers.push((POST_CONTENT_TYPE.0.to_owned(), POST_CONTENT_TYPE.1.to_owned()));
    }
    let mut body: Option<Vec<u8>> = None;
    for token in tokens {
        if let Some(file) = token.strip_prefix('@') {
            if body.is_some() {
                return Err("only one `@payload` per request".to_owned());
            }
            if file.contains("..") || file.starts_with('/') {
                return Err(format!("`@{file}` must be a path under fixtures/payloads/"));
            }
            let bytes = std::fs::read(payloads.join(file)).map_err(|e| format!("payload `{file}`: {e}"))?;
            body = Some(bytes);
        } else if let Some(times) = token.strip_prefix('x').and_then(|n| n.parse::<usize>().ok()) {
            let once = body.as_ref().ok_or("`xN` repeats the payload, so it must follow `@payload`")?;
            if times == 0 {
                return Err("`x0` would send nothing; drop the payload instead".to_owned());
            }
            body = Some(once.repeat(times));
        } else if let Some(name) = token.strip_prefix('-') {
            let before = headers.len();
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            if headers.len() == before {
                return Err(format!("`-{name}` removes a header this request would not send"));
            }
        } else if let Some(header) = token.strip_prefix('+') {
            let (name, value) = header.split_once(':').ok_or("`+Name:value` adds or replaces a header")?;
            if ["host", "content-length", "connection"].iter().any(|h| name.eq_ignore_ascii_case(h)) {
                return Err(format!("`{name}` is set by the test client"));
            }
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            headers.push((name.to_owned(), value.to_owned()));
        } else {
            return Err(format!("unexpected `{token}` (expected @payload, xN, -Header or +Header:value)"));
        }
    }
    if method == "GET" && body.is_some() {
        return Err("GET requests carry no payload".to_owned());
    }
    Ok(StepKind::Request(Request { method, target: target.to_owned(), body: body.unwrap_or_default(), headers }))
}

fn parse_status(rest: &str, saved: &HashSet<String>) -> Result<StepKind, String> {
    let (status, matcher) = match rest.split_once(' ') {
        Some((status, matcher)) => (status, Some(matcher)),
        None => (rest, None),
    };
    let status: u16 = status
        .parse()
        .ok()
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| format!("`=> {rest}`: expected an HTTP status, then optionally the body"))?;
    let body = matcher.map(|m| parse_matcher(m, saved)).transpose()?;
    Ok(StepKind::Status { status, body })
}

fn parse_header(rest: &str, saved: &HashSet<String>) -> Result<StepKind, String> {
    let (name, matcher) = rest.split_once(' ').ok_or("`header NAME MATCHER`")?;
    Ok(StepKind::Header { name: name.to_owned(), matcher: parse_matcher(matcher, saved)? })
}

fn parse_matcher(text: &str, saved: &HashSet<String>) -> Result<Matcher, String> {
    Ok(if let Some(t) = text.strip_prefix("!~") {
        Matcher::NotContains(parse_text(t, saved)?)
    } else if let Some(t) = text.strip_prefix('~') {
        Matcher::Contains(parse_text(t, saved)?)
    } else if let Some(t) = text.strip_prefix('^') {
        Matcher::Prefix(parse_text(t, saved)?)
    } else {
        Matcher::Exact(parse_text(text, saved)?)
    })
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Resolves `\n \r \t \\ \$ \~ \^ \! \u{HEX}` and splits out `${name}` references.
fn parse_text(raw: &str, saved: &HashSet<String>) -> Result<Text, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => literal.push('\n'),
                Some('r') => literal.push('\r'),
                Some('t') => literal.push('\t'),
                Some(c @ ('\\' | '$' | '~' | '^' | '!')) => literal.push(c),
                Some('u') => {
                    if chars.next() != Some('{') {
                        return Err("`\\u` needs `{HEX}`".to_owned());
                    }
                    let hex: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    let ch = u32::from_str_radix(&hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("`\\u{{{hex}}}` is not a character"))?;
                    literal.push(ch);
                }
                other => return Err(format!("unknown escape `\\{}`", other.map(String::from).unwrap_or_default())),
            },
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                if !saved.contains(&name) {
                    return Err(format!("`${{{name}}}` was not saved before this line (`save {name}`)"));
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Saved(name));
            }
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(Text(pieces))
}

fn parse_save(rest: &str) -> Result<StepKind, String> {
    if !is_name(rest) {
        return Err("`save NAME` (letters, digits, `_`)".to_owned());
    }
    Ok(StepKind::Save { name: rest.to_owned() })
}

fn parse_rows(rest: &str) -> Result<StepKind, String> {
    let (table, count) = rest.split_once(' ').ok_or("`rows TABLE N`")?;
    if !COUNTED_TABLES.contains(&table) {
        return Err(format!("`{table}` is not a counted table (one of {})", COUNTED_TABLES.join(", ")));
    }
    let count = count.trim().parse().map_err(|_| format!("`{count}` is not a row count"))?;
    Ok(StepKind::Rows { table: table.to_owned(), count })
}

fn parse_option(rest: &str, saved: &HashSet<String>) -> Result<StepKind, String> {
    let mut parts = rest.splitn(3, ' ');
    let (sn, key, matcher) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next());
    let matcher = matcher.filter(|_| !sn.is_empty() && !key.is_empty()).ok_or("`option SN KEY MATCHER`")?;
    Ok(StepKind::DeviceOption { sn: sn.to_owned(), key: key.to_owned(), matcher: parse_matcher(matcher, saved)? })
}

fn parse_api(rest: &str, saved: &HashSet<String>) -> Result<StepKind, String> {
    let mut parts = rest.splitn(3, ' ');
    let (resource, check, values) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next());
    let (list_name, query) = resource.split_once('?').unwrap_or((resource, ""));
    let list = ApiList::parse(list_name)
        .ok_or_else(|| format!("`{list_name}` is not an API list (transactions, terminals, rejected-lines)"))?;
    let values =
        values.map(str::trim).filter(|v| !v.is_empty()).ok_or("`api LIST count N` or `api LIST FIELD V1,V2`")?;
    let check = if check == "count" {
        ApiCheck::Count(values.parse().map_err(|_| format!("`{values}` is not a count"))?)
    } else if is_name(check) {
        let values = values.split(',').map(|v| parse_text(v, saved)).collect::<Result<_, _>>()?;
        ApiCheck::Field { name: check.to_owned(), values }
    } else {
        return Err(format!("`{check}` is not a field name"));
    };
    Ok(StepKind::Api { list, query: query.to_owned(), check })
}

// ---------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct RunReport {
    steps: usize,
    /// One note per `xfail` step that failed as expected.
    expected_failures: Vec<String>,
}

async fn run_script(script: &Script) -> Result<RunReport, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("{}: temp dir: {e}", script.name))?;
    let env: Vec<(&str, &str)> = script.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::in_process(dir.path(), &env).await;
    let mut api: Option<Api> = None;
    let mut last: Option<(String, RawResponse)> = None;
    let mut saved: Saved = Vec::new();
    let mut report = RunReport { steps: 0, expected_failures: Vec::new() };
    for step in &script.steps {
        let at = format!("{}:{}", script.name, step.line);
        let outcome = match &step.kind {
            StepKind::Request(request) => match send(&server, request).await {
                Ok(response) => {
                    let implicit = check_device_reply(&request.target, &response);
                    last = Some((step.source.clone(), response));
                    implicit
                }
                Err(e) => Err(e),
            },
            StepKind::Save { name } => {
                // The parser only allows `save` after a request.
                let body = last.as_ref().map(|(_, r)| r.text()).unwrap_or_default();
                saved.push((name.clone(), body));
                Ok(())
            }
            StepKind::Status { status, body } => {
                let (_, response) = last.as_ref().ok_or("no response")?;
                check_status(response, *status, body.as_ref(), &saved)
            }
            StepKind::Header { name, matcher } => {
                let (_, response) = last.as_ref().ok_or("no response")?;
                match response.header(name) {
                    Some(value) => matcher.check(value, &saved).map_err(|e| format!("header {name}: {e}")),
                    None => Err(format!("no {name} header in the response")),
                }
            }
            StepKind::Rows { table, count } => {
                let actual = count_rows(server.db(), table).await;
                if actual == *count { Ok(()) } else { Err(format!("{table} has {actual} rows, expected {count}")) }
            }
            StepKind::DeviceOption { sn, key, matcher } => match device_option(server.db(), sn, key).await {
                Some(value) => matcher.check(&value, &saved).map_err(|e| format!("option {key} of {sn}: {e}")),
                None => Err(format!("{sn} has no stored option {key}")),
            },
            StepKind::Api { list, query, check } => {
                if api.is_none() {
                    api = Some(Api::login(&server).await);
                }
                let api = api.as_ref().ok_or("API login failed")?;
                check_api(api, *list, query, check, &saved).await
            }
        };
        report.steps += 1;
        let context = match (&step.kind, &last) {
            (StepKind::Request(_), _) | (_, None) => String::new(),
            (_, Some((request, _))) => format!("\n    after: {request}"),
        };
        match (outcome, &step.xfail) {
            (Ok(()), None) => {}
            (Err(e), None) => return Err(format!("{at}: {}{context}\n    {e}", step.source)),
            (Err(e), Some(reason)) => {
                report.expected_failures.push(format!("{at}: xfail ({reason}): {}{context}\n    {e}", step.source))
            }
            (Ok(()), Some(reason)) => {
                return Err(format!(
                    "{at}: {}\n    marked `xfail {reason}` but passes now: remove the xfail",
                    step.source
                ));
            }
        }
    }
    Ok(report)
}

/// Sends one request as firmware does (HTTP/1.1, `Connection: close`, exact `Content-Length`)
/// and reads the whole answer.
async fn send(server: &Server, request: &Request) -> Result<RawResponse, String> {
    let mut head = format!("{} {} HTTP/1.1\r\nHost: {}\r\n", request.method, request.target, server.addr);
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", request.body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&request.body);
    let exchange = async {
        let mut stream = TcpStream::connect(&server.addr).await.map_err(|e| format!("connect: {e}"))?;
        // A server refusing an oversize body may answer and close before reading all of it, so
        // a failed write is not an error by itself: the answer already sent is what counts.
        let _ = stream.write_all(&bytes).await;
        let mut out = Vec::new();
        // On a reset after the answer, read_to_end keeps what arrived before it.
        let _ = stream.read_to_end(&mut out).await;
        Ok::<_, String>(out)
    };
    let out = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {REQUEST_TIMEOUT:?}"))??;
    if !out.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(format!("not an HTTP response: {:?}", String::from_utf8_lossy(&out)));
    }
    Ok(common::parse_response(&out))
}

/// What every 2xx device reply must carry (`protocol.md` §2.3, §11.6): `text/plain`, a GMT
/// `Date` (the terminal sets its clock from it) and an exact `Content-Length`.
fn check_device_reply(target: &str, response: &RawResponse) -> Result<(), String> {
    let path = target.split('?').next().unwrap_or_default().to_ascii_lowercase();
    let is_device_path = path.trim_start_matches('/').starts_with("iclock/") && !path.contains("/iclock/api");
    if !is_device_path || !(200..300).contains(&response.status) {
        return Ok(());
    }
    if response.header("content-type") != Some("text/plain") {
        return Err(format!("device reply Content-Type is {:?}, not text/plain", response.header("content-type")));
    }
    match response.header("date") {
        Some(date) if date.ends_with(" GMT") && httpdate::parse_http_date(date).is_ok() => {}
        other => return Err(format!("device reply needs an RFC 1123 GMT Date header, got {other:?}")),
    }
    let length = response.header("content-length").and_then(|v| v.parse::<usize>().ok());
    if length != Some(response.body.len()) {
        return Err(format!("Content-Length {length:?} but the body has {} bytes", response.body.len()));
    }
    Ok(())
}

fn check_status(response: &RawResponse, status: u16, body: Option<&Matcher>, saved: &Saved) -> Result<(), String> {
    let text = response.text();
    if response.status != status {
        return Err(format!("status {} (expected {status}), body {text:?}", response.status));
    }
    match body {
        Some(matcher) => matcher.check(&text, saved),
        None => Ok(()),
    }
}

async fn check_api(api: &Api, list: ApiList, query: &str, check: &ApiCheck, saved: &Saved) -> Result<(), String> {
    let records = fetch_all(api, list, query).await?;
    match check {
        ApiCheck::Count(n) => {
            if records.len() == *n {
                Ok(())
            } else {
                let ids: Vec<String> = records.iter().map(|r| render(&r["id"])).collect();
                Err(format!("{} records (ids {}), expected {n}", records.len(), ids.join(",")))
            }
        }
        ApiCheck::Field { name, values } => {
            let actual: Vec<String> = records.iter().map(|r| render(r.get(name).unwrap_or(&Value::Null))).collect();
            let expected: Vec<String> = values.iter().map(|v| v.render(saved)).collect();
            if actual == expected { Ok(()) } else { Err(format!("{name}: got {actual:?}, expected {expected:?}")) }
        }
    }
}

/// Every record of a list, following `next` links page by page as an ERP does. Checks that the
/// envelope's `count` matches what the pages held, and for transactions in the default order
/// that ids strictly ascend (each punch served once).
async fn fetch_all(api: &Api, list: ApiList, query: &str) -> Result<Vec<Value>, String> {
    let has_page_size = query.split('&').any(|p| p.starts_with("page_size=") || p.starts_with("limit="));
    let separator = if query.is_empty() { "" } else { "&" };
    let query = if has_page_size { query.to_owned() } else { format!("{query}{separator}page_size=1000") };
    let mut url = Some(format!("http://{}{}?{query}", api.server_addr, list.path()));
    let mut records = Vec::new();
    let mut count = None;
    let mut pages = 0;
    while let Some(current) = url.take() {
        pages += 1;
        if pages > 1000 {
            return Err(format!("more than 1000 pages; stopped at {current}"));
        }
        let response = api
            .client
            .get(&current)
            .header("Authorization", format!("Token {}", api.token))
            .send()
            .await
            .map_err(|e| format!("GET {current}: {e}"))?;
        let status = response.status();
        let page: Value = response.json().await.map_err(|e| format!("GET {current}: {status}, not JSON: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {current}: {status} {page}"));
        }
        count = page["count"].as_u64();
        records.extend(page["data"].as_array().cloned().unwrap_or_default());
        url = page["next"].as_str().map(str::to_owned);
    }
    let count = count.ok_or("the envelope has no count")?;
    if usize::try_from(count).ok() != Some(records.len()) {
        return Err(format!("envelope count {count}, but the pages held {} records", records.len()));
    }
    if list == ApiList::Transactions && !query.contains("ordering=") {
        let ids: Vec<i64> = records.iter().filter_map(|r| r["id"].as_i64()).collect();
        if ids.len() != records.len() || ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("transaction ids not unique and ascending: {ids:?}"));
        }
    }
    Ok(records)
}

/// A JSON value as a script writes it: strings bare, `null`, numbers and booleans as JSON.
fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
