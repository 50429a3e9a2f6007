//! The session format of `fixtures/README.md`, parsed: a [`Script`] of [`Step`]s. Pure: the only
//! I/O is reading the `@FILE` payloads from the payload folder given to [`parse_script`].
//! Errors name `file:line`, every one of a script at once.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// Headers every scripted request carries unless the script removes them, as ZKTeco firmware
/// sends them (`Host` is added by the player with the target's address). POSTs also get
/// `Content-Type`.
pub const DEVICE_HEADERS: [(&str, &str); 2] = [("User-Agent", "iClock Proxy/1.09"), ("Accept", "*/*")];
const POST_CONTENT_TYPE: (&str, &str) = ("Content-Type", "text/plain");

/// Every table a `rows TABLE N` step may count.
pub const COUNTED_TABLES: [&str; 13] = [
    "devices",
    "punches",
    "rejected_lines",
    "operation_logs",
    "device_users",
    "biometric_templates",
    "user_photos",
    "device_records",
    "device_options",
    "command_results",
    "access_events",
    "raw_uploads",
    "att_photos",
];

/// One error of a script, at its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ScriptError {
    /// The script's name as given to [`parse_script`] (e.g. `fixtures/sessions/NAME.session`).
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl ScriptError {
    fn at(file: &str, line: usize, message: impl Into<String>) -> ScriptError {
        ScriptError { file: file.to_owned(), line, message: message.into() }
    }
}

/// Every error of a script, in line order; shown one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScriptErrors(pub Vec<ScriptError>);

impl fmt::Display for ScriptErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// A check that did not hold: what the step expected and what came, both as written for a
/// reader (strings quoted with their escapes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub expected: String,
    pub came: String,
    /// Where an exact expectation and the answer first part, when both are long enough for the
    /// place to matter: `at character N: expected "…", came "…"`.
    pub difference: Option<String>,
}

impl Mismatch {
    pub fn new(expected: impl Into<String>, came: impl Into<String>) -> Mismatch {
        Mismatch { expected: expected.into(), came: came.into(), difference: None }
    }
}

/// The first place two texts differ, with a little of each from there (for long answers, where
/// the whole of both says little).
fn first_difference(expected: &str, actual: &str) -> Option<String> {
    if expected.chars().count() < 20 && actual.chars().count() < 20 {
        return None;
    }
    let at = expected.chars().zip(actual.chars()).take_while(|(a, b)| a == b).count();
    let rest = |s: &str| s.chars().skip(at).take(24).collect::<String>();
    let line = expected.chars().take(at).filter(|c| *c == '\n').count() + 1;
    Some(format!("at character {at} (line {line}): expected {:?}, came {:?}", rest(expected), rest(actual)))
}

/// A parsed session script.
#[derive(Debug)]
pub struct Script {
    /// The name given to [`parse_script`] (e.g. `fixtures/sessions/NAME.session`), as failures
    /// show it.
    pub name: String,
    /// The `env KEY=VALUE` lines: settings of the server the session was written for (the player
    /// does not apply them; whoever starts the server does).
    pub env: Vec<(String, String)>,
    pub steps: Vec<Step>,
}

impl Script {
    /// The `SN` of the script's first request: the device a replay keeps its sessions in order
    /// for (`--concurrency`). `None` when it names none.
    pub fn device_sn(&self) -> Option<String> {
        self.steps.iter().find_map(|step| match &step.kind {
            StepKind::Request(request) => query_sn(&request.target),
            _ => None,
        })
    }

    /// Requests in the script.
    pub fn requests(&self) -> usize {
        self.steps.iter().filter(|s| matches!(s.kind, StepKind::Request(_))).count()
    }
}

/// The `SN` query parameter of a request target (any case of the key, as the server reads it).
pub fn query_sn(target: &str) -> Option<String> {
    let query = target.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.eq_ignore_ascii_case("sn") && !value.is_empty()).then(|| value.to_owned())
    })
}

/// One directive of a script, with its line.
#[derive(Debug)]
pub struct Step {
    /// 1-based line number in the script.
    pub line: usize,
    /// The line as written, for failure messages.
    pub source: String,
    /// Reason given by a preceding `xfail` line: the check is expected to fail.
    pub xfail: Option<String>,
    pub kind: StepKind,
}

#[derive(Debug)]
pub enum StepKind {
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
    /// `save NAME` (the last answer's body) or `save NAME FIELD` (a value of its JSON body:
    /// `id`, or a path such as `data/0/id`)
    Save {
        name: String,
        field: Option<String>,
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
    /// `call METHOD PATH [JSON]`: an API request made with the session's credentials (what an
    /// operator or an ERP does between device requests); its answer is the last answer.
    Call {
        method: &'static str,
        path: Text,
        body: Option<Text>,
    },
    /// `api LIST[?QUERY] count N` / `api LIST[?QUERY] FIELD V1,V2,...`
    Api {
        list: ApiList,
        query: String,
        check: ApiCheck,
    },
}

#[derive(Debug)]
pub struct Request {
    pub method: &'static str,
    pub target: String,
    pub body: Vec<u8>,
    /// `gap=Nms`: the time the device left between the previous answer and this request (a
    /// captured session records it; `adms-sim replay --speed` compresses it).
    pub gap: Option<Duration>,
    /// Headers in sending order, after the script's `-Name` / `+Name:value` edits.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiList {
    Transactions,
    Terminals,
    RejectedLines,
}

impl ApiList {
    pub fn parse(name: &str) -> Option<ApiList> {
        match name {
            "transactions" => Some(ApiList::Transactions),
            "terminals" => Some(ApiList::Terminals),
            "rejected-lines" => Some(ApiList::RejectedLines),
            _ => None,
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            ApiList::Transactions => "/iclock/api/transactions/",
            ApiList::Terminals => "/iclock/api/terminals/",
            ApiList::RejectedLines => "/api/v1/rejected-lines",
        }
    }
}

#[derive(Debug)]
pub enum ApiCheck {
    Count(usize),
    Field { name: String, values: Vec<Text> },
}

#[derive(Debug)]
pub enum Matcher {
    Exact(Text),
    Contains(Text),
    Prefix(Text),
    NotContains(Text),
}

impl Matcher {
    pub fn check(&self, actual: &str, saved: &Saved) -> Result<(), Mismatch> {
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
        if ok {
            return Ok(());
        }
        let difference = matches!(self, Matcher::Exact(_) | Matcher::Prefix(_))
            .then(|| first_difference(&expected, actual))
            .flatten();
        Err(Mismatch { expected: format!("{how} {expected:?}"), came: format!("{actual:?}"), difference })
    }
}

/// Expected text: literals with escapes resolved, and `${name}` references to saved bodies.
#[derive(Debug, Clone)]
pub struct Text(Vec<Piece>);

#[derive(Debug, Clone)]
enum Piece {
    Literal(String),
    Saved(String),
}

pub type Saved = Vec<(String, String)>;

impl Text {
    pub fn render(&self, saved: &Saved) -> String {
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

/// Where a script's bodies come from: `@FILE` from the payload folder, `<FILE` from the folder
/// of the session file itself (captured sessions keep their bodies beside them).
#[derive(Debug, Clone, Copy)]
pub struct BodySources<'a> {
    pub payloads: &'a Path,
    /// `None` for a script that is not a file: `<FILE` is then an error.
    pub session_dir: Option<&'a Path>,
}

/// Parses a whole script; every error is reported (each shown as `name:line: message`), not just
/// the first. `@FILE` payloads are read from `payloads` (the only I/O); `<FILE` is refused (see
/// [`parse_script_in`]).
pub fn parse_script(name: &str, text: &str, payloads: &Path) -> Result<Script, ScriptErrors> {
    parse_script_in(name, text, BodySources { payloads, session_dir: None })
}

/// [`parse_script`] for a session file: `<FILE` bodies are read beside it.
pub fn parse_script_in(name: &str, text: &str, sources: BodySources<'_>) -> Result<Script, ScriptErrors> {
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
            "GET" | "POST" => parse_request(keyword, rest, sources).map(Some),
            "=>" => parse_status(rest, &saved_names).map(Some),
            "header" => parse_header(rest, &saved_names).map(Some),
            "save" => parse_save(rest).map(|kind| {
                if let StepKind::Save { name, .. } = &kind {
                    saved_names.insert(name.clone());
                }
                Some(kind)
            }),
            "rows" => parse_rows(rest).map(Some),
            "option" => parse_option(rest, &saved_names).map(Some),
            "api" => parse_api(rest, &saved_names).map(Some),
            "call" => parse_call(rest, &saved_names).map(Some),
            other => Err(format!("unknown keyword `{other}`")),
        };
        let kind = match parsed {
            Ok(Some(kind)) => kind,
            Ok(None) => continue,
            Err(message) => {
                errors.push(ScriptError::at(name, line_no, message));
                // The broken line is what an `xfail` before it was meant for.
                pending_xfail = None;
                continue;
            }
        };
        let needs_response = matches!(kind, StepKind::Status { .. } | StepKind::Header { .. } | StepKind::Save { .. });
        if needs_response && !seen_request {
            errors.push(ScriptError::at(
                name,
                line_no,
                format!("`{keyword}` checks the last response, but no request came before"),
            ));
            continue;
        }
        let is_check = !matches!(kind, StepKind::Request(_) | StepKind::Call { .. } | StepKind::Save { .. });
        let xfail = match pending_xfail.take() {
            Some((_, reason)) if is_check => Some(reason),
            Some((xfail_line, _)) => {
                errors.push(ScriptError::at(
                    name,
                    xfail_line,
                    format!("`xfail` must be followed by a check, not `{keyword}`"),
                ));
                None
            }
            None => None,
        };
        seen_request |= matches!(kind, StepKind::Request(_) | StepKind::Call { .. });
        script.steps.push(Step { line: line_no, source: line.to_owned(), xfail, kind });
    }
    if let Some((xfail_line, _)) = pending_xfail {
        errors.push(ScriptError::at(name, xfail_line, "`xfail` at the end of the script marks nothing"));
    }
    if !seen_request && errors.is_empty() {
        errors.push(ScriptError::at(name, 1, "the script sends no request"));
    }
    if errors.is_empty() { Ok(script) } else { Err(ScriptErrors(errors)) }
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

fn parse_request(method: &str, rest: &str, sources: BodySources<'_>) -> Result<StepKind, String> {
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
    let mut gap = None;
    for token in tokens {
        if let Some(file) = token.strip_prefix('@') {
            if body.is_some() {
                return Err("only one body (`@payload` or `<file`) per request".to_owned());
            }
            if file.contains("..") || file.starts_with('/') {
                return Err(format!("`@{file}` must be a path under fixtures/payloads/"));
            }
            let bytes = std::fs::read(sources.payloads.join(file)).map_err(|e| format!("payload `{file}`: {e}"))?;
            body = Some(bytes);
        } else if let Some(file) = token.strip_prefix('<') {
            if body.is_some() {
                return Err("only one body (`@payload` or `<file`) per request".to_owned());
            }
            if file.is_empty() || file.contains("..") || file.starts_with('/') {
                return Err(format!("`<{file}` must be a path under the session's folder"));
            }
            let dir = sources.session_dir.ok_or("`<file` reads beside the session file, and this script is not one")?;
            let bytes = std::fs::read(dir.join(file)).map_err(|e| format!("body `{file}`: {e}"))?;
            body = Some(bytes);
        } else if let Some(ms) = token.strip_prefix("gap=") {
            let ms: u64 = ms
                .strip_suffix("ms")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("`{token}`: expected gap=Nms (milliseconds)"))?;
            gap = Some(Duration::from_millis(ms));
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
            // The value takes the expected-text escapes (`\u{20}` for a space, which would end
            // the token), without saved references.
            let value = parse_text(value, &HashSet::new())?.render(&Vec::new());
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(format!("`+{name}`: a header value cannot hold line breaks or control characters"));
            }
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            headers.push((name.to_owned(), value));
        } else {
            return Err(format!(
                "unexpected `{token}` (expected @payload, <file, xN, -Header, +Header:value or gap=Nms)"
            ));
        }
    }
    if method == "GET" && body.is_some() {
        return Err("GET requests carry no payload".to_owned());
    }
    Ok(StepKind::Request(Request { method, target: target.to_owned(), body: body.unwrap_or_default(), gap, headers }))
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
    let (name, field) = match rest.split_once(' ') {
        Some((name, field)) => (name, Some(field.trim())),
        None => (rest, None),
    };
    if !is_name(name) {
        return Err("`save NAME [FIELD]` (a name of letters, digits, `_`)".to_owned());
    }
    if let Some(field) = field
        && (field.is_empty() || field.split('/').any(|part| part.is_empty() || part.contains(char::is_whitespace)))
    {
        return Err(format!("`{field}`: a JSON field is a key or a path of keys and indexes (`data/0/id`)"));
    }
    Ok(StepKind::Save { name: name.to_owned(), field: field.map(str::to_owned) })
}

/// `call METHOD PATH [JSON]`; the path and the body take the expected-text escapes and `${name}`.
fn parse_call(rest: &str, saved: &HashSet<String>) -> Result<StepKind, String> {
    let usage = "`call METHOD PATH [JSON body]` (GET, POST, PUT, PATCH or DELETE)";
    let (method, rest) = rest.split_once(' ').ok_or(usage)?;
    let method = ["GET", "POST", "PUT", "PATCH", "DELETE"].into_iter().find(|m| *m == method).ok_or(usage)?;
    let (path, body) = match rest.trim().split_once(' ') {
        Some((path, body)) => (path, Some(body.trim())),
        None => (rest.trim(), None),
    };
    if !path.starts_with('/') {
        return Err(format!("the path must start with `/`: `{path}`"));
    }
    let body = body.map(|b| parse_text(b, saved)).transpose()?;
    Ok(StepKind::Call { method, path: parse_text(path, saved)?, body })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn payloads() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/payloads")
    }

    #[test]
    fn script_errors_name_the_file_and_line() {
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
        let errors = parse_script("x.session", script, &payloads()).expect_err("script has errors");
        let lines: Vec<usize> = errors.0.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 5, 6, 7, 8, 9, 10, 11, 12], "{errors:#?}");
        assert!(errors.0.iter().all(|e| e.file == "x.session"), "{errors:#?}");
        assert!(errors.to_string().lines().all(|l| l.starts_with("x.session:")), "{errors}");
        let errors = parse_script("y.session", "=> 200 OK\n", &payloads()).expect_err("expectation before a request");
        assert!(errors.0[0].to_string().starts_with("y.session:1: "), "{errors:?}");
    }

    #[test]
    fn api_calls_save_json_fields_that_later_paths_and_bodies_use() {
        let script = "\
call POST /api/v1/access/levels {\"name\":\"Staff\"}
=> 201
save level id
save first_door data/0/id
call PUT /api/v1/access/levels/${level}/members/7 {\"door\":${first_door}}
GET /iclock/getrequest?SN=A
";
        let script = parse_script("c.session", script, &payloads()).expect("parses");
        let saved: Saved = vec![("level".into(), "12".into()), ("first_door".into(), "3".into())];
        match &script.steps[4].kind {
            StepKind::Call { method, path, body } => {
                assert_eq!(*method, "PUT");
                assert_eq!(path.render(&saved), "/api/v1/access/levels/12/members/7");
                assert_eq!(body.as_ref().map(|b| b.render(&saved)).as_deref(), Some("{\"door\":3}"));
            }
            other => panic!("a call, not {other:?}"),
        }
        assert!(matches!(&script.steps[3].kind, StepKind::Save { field: Some(f), .. } if f == "data/0/id"));
        assert_eq!(script.requests(), 1, "a call is no device request");
        assert_eq!(script.device_sn().as_deref(), Some("A"));

        let broken = "call FETCH /x\ncall GET x\ncall POST /y/${unsaved}\nGET /iclock/ping?SN=A\nsave n data//id\n";
        let errors = parse_script("d.session", broken, &payloads()).expect_err("broken calls");
        let lines: Vec<usize> = errors.0.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 2, 3, 5], "{errors:#?}");
    }

    #[test]
    fn a_long_exact_answer_says_where_it_differs() {
        let script = "GET /iclock/getrequest?SN=A\n=> 200 GET OPTION FROM: A\\nDelay=10\\nTimeZone=8\n";
        let parsed = parse_script("d.session", script, &payloads()).expect("parses");
        let StepKind::Status { body: Some(matcher), .. } = &parsed.steps[1].kind else { panic!() };
        let mismatch = matcher.check("GET OPTION FROM: A\nDelay=30\nTimeZone=8", &Vec::new()).expect_err("differs");
        assert_eq!(
            mismatch.difference.as_deref(),
            Some("at character 25 (line 2): expected \"10\\nTimeZone=8\", came \"30\\nTimeZone=8\"")
        );
        // Short answers say all there is in `expected` and `came`.
        let short = parse_script("s.session", "GET /x?SN=A\n=> 200 OK: 3\n", &payloads()).expect("parses");
        let StepKind::Status { body: Some(matcher), .. } = &short.steps[1].kind else { panic!() };
        assert_eq!(matcher.check("OK: 4", &Vec::new()).expect_err("differs").difference, None);
    }

    #[test]
    fn gaps_bodies_beside_the_session_and_escaped_header_values_parse() {
        let dir = tempfile_dir();
        std::fs::create_dir_all(dir.join("s1")).expect("folder");
        std::fs::write(dir.join("s1/0001.bin"), b"a\0b\xff").expect("payload");
        let script = "POST /iclock/cdata?SN=A&table=ATTLOG <s1/0001.bin +User-Agent:ZK\\u{20}Web gap=1520ms\n=> 200\n";
        let sources = BodySources { payloads: &payloads(), session_dir: Some(&dir) };
        let parsed = parse_script_in("g.session", script, sources).expect("parses");
        let StepKind::Request(request) = &parsed.steps[0].kind else { panic!() };
        assert_eq!(request.body, b"a\0b\xff");
        assert_eq!(request.gap, Some(Duration::from_millis(1520)));
        assert!(request.headers.contains(&("User-Agent".to_owned(), "ZK Web".to_owned())), "{:?}", request.headers);
        let errors = parse_script("n.session", script, &payloads()).expect_err("<file needs a session file");
        assert!(errors.to_string().contains("beside the session file"), "{errors}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        std::env::temp_dir().join(format!("adms-sim-session-test-{}", std::process::id()))
    }

    #[test]
    fn a_script_parses_into_its_steps() {
        let script = "\
env ADMS_TIME_ZONE=+08:00
POST /iclock/cdata?SN=A&table=ATTLOG @attlog/documented-7col.txt x2 -Content-Type +Cookie:a=b
=> 200 ~OK
save reply
xfail not yet
header Date ~${reply}
rows punches 4
";
        let parsed = parse_script("z.session", script, &payloads()).expect("parses");
        assert_eq!(parsed.env, [("ADMS_TIME_ZONE".to_owned(), "+08:00".to_owned())]);
        assert_eq!(parsed.steps.len(), 5);
        let StepKind::Request(request) = &parsed.steps[0].kind else { panic!("{:?}", parsed.steps[0]) };
        let once = std::fs::read(payloads().join("attlog/documented-7col.txt")).expect("payload");
        assert_eq!(request.body, once.repeat(2));
        let names: Vec<&str> = request.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["User-Agent", "Accept", "Cookie"]);
        assert_eq!(parsed.steps[3].xfail.as_deref(), Some("not yet"));
        assert_eq!(parsed.steps[3].line, 6);
        let saved = vec![("reply".to_owned(), "GMT".to_owned())];
        let StepKind::Header { matcher, .. } = &parsed.steps[3].kind else { panic!() };
        assert!(matcher.check("Sun, 06 Dec 2026 12:00:00 GMT", &saved).is_ok());
        assert_eq!(matcher.check("x", &saved), Err(Mismatch::new("to contain \"GMT\"", "\"x\"")),);
    }
}
