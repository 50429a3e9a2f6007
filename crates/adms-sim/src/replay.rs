//! Plays a parsed [`Script`] against a server: each request goes out as ZKTeco firmware sends it
//! (HTTP/1.1 written byte for byte on a fresh TCP connection, `Connection: close`, the exact
//! `Content-Length`), and every check runs against what came back. The [`Report`] says how many
//! steps ran, which `xfail` steps failed as marked (with what came), which were skipped and why,
//! and the first failure with what was sent, expected and came.
//!
//! `api …` steps log in with the [`Credentials`] given to the [`Player`]; `rows` and `option`
//! steps read the server's database, which this crate never touches: they go through a
//! [`DatabaseChecks`] given by the caller. Without one (or without credentials), those steps are
//! reported as skipped with the reason, never as passed.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::session::{ApiCheck, ApiList, Matcher, Mismatch, Request, Saved, Script, Step, StepKind};

/// A stuck server fails the step instead of hanging the replay.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The future a [`DatabaseChecks`] method returns.
pub type CheckFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// The checks of stored state that need the server's database (`rows TABLE N`,
/// `option SN KEY MATCHER`), answered by whoever can read it (adms-server's tests do, with their
/// database helpers). An `Err` is a failure of the step, with its message.
pub trait DatabaseChecks: Sync {
    /// Rows in `table` (one of [`crate::session::COUNTED_TABLES`]).
    fn count_rows<'a>(&'a self, table: &'a str) -> CheckFuture<'a, i64>;
    /// The stored value of one device option; `None` when the device never sent that key.
    fn device_option<'a>(&'a self, sn: &'a str, key: &'a str) -> CheckFuture<'a, Option<String>>;
}

/// The `rows` and `option` steps answered through the API, for a server whose database the
/// caller cannot read (remote, or PostgreSQL): `GET /api/v1/stats/tables` (an administrator's
/// read) and `GET /api/v1/devices/{sn}/options`, logged in with the given account.
pub struct ApiChecks {
    base: String,
    auth: ApiAuth,
    client: reqwest::Client,
    token: tokio::sync::Mutex<Option<String>>,
}

impl fmt::Debug for ApiChecks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiChecks").field("base", &self.base).finish_non_exhaustive()
    }
}

impl ApiChecks {
    /// Checks against the server at `target` (`http://HOST:PORT`).
    pub fn new(target: &str, auth: ApiAuth) -> Result<ApiChecks, ReplayError> {
        let player = Player::new(target)?;
        Ok(ApiChecks {
            base: format!("http://{}", player.authority),
            auth,
            client: player.client,
            token: tokio::sync::Mutex::new(None),
        })
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        let mut token = self.token.lock().await;
        if token.is_none() {
            *token = Some(match &self.auth {
                ApiAuth::Login(credentials) => login(&self.client, &self.base, credentials).await?,
                ApiAuth::Key(key) => key.clone(),
            });
        }
        let url = format!("{}{path}", self.base);
        let response = self
            .client
            .get(&url)
            .header("Authorization", format!("Token {}", token.as_deref().unwrap_or_default()))
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status();
        let answer: Value = response.json().await.map_err(|e| format!("GET {url}: {status}, not JSON: {e}"))?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(Value::Null);
        }
        if !status.is_success() {
            return Err(format!("GET {url}: {status} {answer}"));
        }
        Ok(answer)
    }
}

impl DatabaseChecks for ApiChecks {
    fn count_rows<'a>(&'a self, table: &'a str) -> CheckFuture<'a, i64> {
        Box::pin(async move {
            let answer = self.get("/api/v1/stats/tables").await?;
            answer["tables"][table]
                .as_i64()
                .ok_or_else(|| format!("GET /api/v1/stats/tables has no count for {table}: {answer}"))
        })
    }

    fn device_option<'a>(&'a self, sn: &'a str, key: &'a str) -> CheckFuture<'a, Option<String>> {
        Box::pin(async move {
            let sn_path: String = sn
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            let answer = self.get(&format!("/api/v1/devices/{sn_path}/options")).await?;
            Ok(answer["options"][key].as_str().map(str::to_owned))
        })
    }
}

/// How API calls authenticate: a login, or an API token (`adms-bridge token create`).
#[derive(Clone)]
pub enum ApiAuth {
    Login(Credentials),
    Key(String),
}

impl fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiAuth::Login(c) => write!(f, "Login({})", c.username),
            ApiAuth::Key(_) => f.write_str("Key([REDACTED])"),
        }
    }
}

/// An API account for the `api …` steps.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Why a replay could not start at all (a step that fails is in the [`Report`] instead).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the target must be http://HOST:PORT, got `{0}`")]
    Target(String),
    #[error("the HTTP client could not be built: {0}")]
    Client(#[source] reqwest::Error),
}

/// Plays scripts against one target.
pub struct Player<'a> {
    /// `HOST:PORT`, for the TCP connection and the `Host` header.
    authority: String,
    credentials: Option<Credentials>,
    /// An API token used as it is (instead of logging in with `credentials`).
    api_key: Option<String>,
    database: Option<&'a dyn DatabaseChecks>,
    client: reqwest::Client,
    /// Recorded gaps (`gap=Nms`) are waited for divided by this; `None` sends at once.
    speed: Option<f64>,
    /// Requests sent so far, by every replay of this player (for a progress line).
    sent: Arc<AtomicU64>,
}

impl fmt::Debug for Player<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Player")
            .field("authority", &self.authority)
            .field("credentials", &self.credentials.as_ref().map(|c| &c.username))
            .field("database", &self.database.is_some())
            .finish()
    }
}

impl<'a> Player<'a> {
    /// A player for the server at `target` (`http://HOST:PORT`, an optional trailing `/`).
    pub fn new(target: &str) -> Result<Player<'a>, ReplayError> {
        let authority = target
            .strip_prefix("http://")
            .map(|rest| rest.strip_suffix('/').unwrap_or(rest))
            .filter(|a| !a.is_empty() && !a.contains('/') && !a.contains('?'))
            .ok_or_else(|| ReplayError::Target(target.to_owned()))?;
        let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().map_err(ReplayError::Client)?;
        Ok(Player {
            authority: authority.to_owned(),
            credentials: None,
            api_key: None,
            database: None,
            client,
            speed: None,
            sent: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Waits the recorded gap before each request (`gap=Nms`), divided by `speed` (2.0: twice as
    /// fast as the device was). Without it, and with a speed of 0 or less, requests go out at
    /// once.
    pub fn with_speed(mut self, speed: f64) -> Player<'a> {
        self.speed = (speed > 0.0 && speed.is_finite()).then_some(speed);
        self
    }

    /// Requests this player has sent, counted as they go (every replay of it together).
    pub fn requests_sent(&self) -> Arc<AtomicU64> {
        self.sent.clone()
    }

    /// The account the `api …` steps log in with.
    pub fn with_credentials(mut self, credentials: Credentials) -> Player<'a> {
        self.credentials = Some(credentials);
        self
    }

    /// The API token the `api …` steps send (`Authorization: Token KEY`), instead of a login.
    pub fn with_api_key(mut self, key: String) -> Player<'a> {
        self.api_key = Some(key);
        self
    }

    /// What answers the `rows` and `option` steps.
    pub fn with_database(mut self, database: &'a dyn DatabaseChecks) -> Player<'a> {
        self.database = Some(database);
        self
    }

    /// Plays every step in order; the first failing step ends the replay. The script's `env`
    /// lines are not applied (the target is already running): the caller starts the server
    /// with them.
    pub async fn play(&self, script: &Script) -> Report {
        let mut run =
            Run { player: self, token: self.api_key.clone(), last: None, last_skipped: false, saved: Vec::new() };
        let mut report = Report {
            name: script.name.clone(),
            steps: script.steps.len(),
            run: 0,
            expected_failures: Vec::new(),
            skipped: Vec::new(),
            failure: None,
        };
        for step in &script.steps {
            report.run += 1;
            let at = format!("{}:{}", script.name, step.line);
            let outcome = run.step(step).await;
            let (after, sent) = match (&step.kind, &run.last) {
                // What was sent, even when no answer came.
                (StepKind::Request(request), _) => (None, Some(describe(&self.authority, request))),
                (_, Some(last)) => (Some(last.source.clone()), Some(last.sent.clone())),
                (_, None) => (None, None),
            };
            let failure = |mismatch: Option<Mismatch>, note: Option<String>| Failure {
                at: at.clone(),
                source: step.source.clone(),
                after: after.clone(),
                sent: sent.clone(),
                mismatch,
                note,
            };
            match (outcome, &step.xfail) {
                (Outcome::Passed, None) => {}
                (Outcome::Failed(m), None) => {
                    report.failure = Some(failure(Some(m), None));
                    break;
                }
                (Outcome::Failed(m), Some(reason)) => report
                    .expected_failures
                    .push(ExpectedFailure { reason: reason.clone(), failure: failure(Some(m), None) }),
                (Outcome::Passed, Some(reason)) => {
                    let note = format!("marked `xfail {reason}` but passes now: remove the xfail");
                    report.failure = Some(failure(None, Some(note)));
                    break;
                }
                (Outcome::Skipped(reason), _) => {
                    report.skipped.push(Skipped { at, source: step.source.clone(), reason: reason.to_owned() })
                }
            }
        }
        report
    }
}

/// What one replay did.
#[derive(Debug)]
pub struct Report {
    /// The script's name.
    pub name: String,
    /// Steps in the script.
    pub steps: usize,
    /// Steps played (all of them unless one failed).
    pub run: usize,
    /// `xfail` steps that failed as marked, with what came.
    pub expected_failures: Vec<ExpectedFailure>,
    /// Steps not checked, each with the reason.
    pub skipped: Vec<Skipped>,
    /// The step that ended the replay.
    pub failure: Option<Failure>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// Steps that ran and held (not xfail, not skipped, not the failure).
    pub fn steps_passed(&self) -> usize {
        self.run - self.expected_failures.len() - self.skipped.len() - usize::from(self.failure.is_some())
    }
}

/// A step that failed as its `xfail` said.
#[derive(Debug)]
pub struct ExpectedFailure {
    pub reason: String,
    pub failure: Failure,
}

impl fmt::Display for ExpectedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Failure { at, source, .. } = &self.failure;
        let rest = self.failure.to_string();
        let details = rest.strip_prefix(&format!("{at}: {source}")).unwrap_or_default();
        write!(f, "{at}: xfail ({}): {source}{details}", self.reason)
    }
}

/// A step that was not checked.
#[derive(Debug)]
pub struct Skipped {
    /// `NAME:LINE`
    pub at: String,
    pub source: String,
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.at, self.source, self.reason)
    }
}

/// A failed step: where, the line, the request it followed and what was sent, what it expected
/// and what came.
#[derive(Debug)]
pub struct Failure {
    /// `NAME:LINE`
    pub at: String,
    /// The step as written.
    pub source: String,
    /// The request line of the script the check followed (not for a request step).
    pub after: Option<String>,
    /// What was sent for that request: request line, headers and body size.
    pub sent: Option<String>,
    pub mismatch: Option<Mismatch>,
    /// What else is to say (an `xfail` that passes).
    pub note: Option<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.source)?;
        if let Some(after) = &self.after {
            write!(f, "\n    after:    {after}")?;
        }
        if let Some(sent) = &self.sent {
            write!(f, "\n    sent:     {}", sent.replace('\n', "\n              "))?;
        }
        if let Some(m) = &self.mismatch {
            write!(f, "\n    expected: {}\n    came:     {}", m.expected, m.came)?;
            if let Some(difference) = &m.difference {
                write!(f, "\n    differs:  {difference}")?;
            }
        }
        if let Some(note) = &self.note {
            write!(f, "\n    {note}")?;
        }
        Ok(())
    }
}

enum Outcome {
    Passed,
    Failed(Mismatch),
    Skipped(&'static str),
}

impl From<Result<(), Mismatch>> for Outcome {
    fn from(result: Result<(), Mismatch>) -> Outcome {
        match result {
            Ok(()) => Outcome::Passed,
            Err(m) => Outcome::Failed(m),
        }
    }
}

/// The last answer, with the script line and the request that produced it.
struct Last {
    source: String,
    sent: String,
    response: Response,
}

struct Run<'p, 'a> {
    player: &'p Player<'a>,
    token: Option<String>,
    last: Option<Last>,
    /// The last request was a `call` skipped for want of credentials: the checks of its answer
    /// are skipped too.
    last_skipped: bool,
    saved: Saved,
}

impl Run<'_, '_> {
    async fn step(&mut self, step: &Step) -> Outcome {
        match &step.kind {
            StepKind::Request(request) => {
                if let (Some(gap), Some(speed)) = (request.gap, self.player.speed) {
                    tokio::time::sleep(gap.div_f64(speed)).await;
                }
                let sent = describe(&self.player.authority, request);
                self.last_skipped = false;
                self.player.sent.fetch_add(1, Ordering::Relaxed);
                match send(&self.player.authority, request).await {
                    Ok(response) => {
                        let implicit = check_device_reply(&request.target, &response);
                        self.last = Some(Last { source: step.source.clone(), sent, response });
                        implicit.into()
                    }
                    Err(came) => {
                        self.last = None;
                        Outcome::Failed(Mismatch::new("an HTTP answer", came))
                    }
                }
            }
            StepKind::Save { .. } | StepKind::Status { .. } | StepKind::Header { .. } if self.last_skipped => {
                Outcome::Skipped(CHECKS_A_SKIPPED_CALL)
            }
            StepKind::Save { name, field } => {
                // The parser only allows `save` after a request.
                let body = self.last.as_ref().map(|l| l.response.text()).unwrap_or_default();
                let value = match field {
                    None => body,
                    Some(field) => match json_field(&body, field) {
                        Some(value) => value,
                        None => {
                            return Outcome::Failed(Mismatch::new(
                                format!("a JSON body with `{field}`"),
                                format!("{body:?}"),
                            ));
                        }
                    },
                };
                self.saved.push((name.clone(), value));
                Outcome::Passed
            }
            StepKind::Call { method, path, body } => {
                self.last = None;
                self.last_skipped = false;
                if let Err(outcome) = self.log_in().await {
                    self.last_skipped = matches!(outcome, Outcome::Skipped(_));
                    return outcome;
                }
                let token = self.token.as_deref().unwrap_or_default();
                let path = path.render(&self.saved);
                let body = body.as_ref().map(|b| b.render(&self.saved));
                let sent = format!(
                    "{method} {path} (API, as the session's user){}",
                    body.as_deref().map(|b| format!("\n{b}")).unwrap_or_default()
                );
                match self.player.call(token, method, &path, body).await {
                    Ok(response) => {
                        self.last = Some(Last { source: step.source.clone(), sent, response });
                        Outcome::Passed
                    }
                    Err(came) => Outcome::Failed(Mismatch::new("an HTTP answer", came)),
                }
            }
            StepKind::Status { status, body } => match &self.last {
                Some(last) => check_status(&last.response, *status, body.as_ref(), &self.saved).into(),
                None => Outcome::Failed(Mismatch::new(format!("status {status}"), "no answer to check")),
            },
            StepKind::Header { name, matcher } => match &self.last {
                Some(last) => match last.response.header(name) {
                    Some(value) => {
                        matcher.check(value, &self.saved).map_err(|m| prefix(&format!("{name}: "), m)).into()
                    }
                    None => Outcome::Failed(Mismatch::new(format!("a {name} header"), "none in the response")),
                },
                None => Outcome::Failed(Mismatch::new(format!("a {name} header"), "no answer to check")),
            },
            StepKind::Rows { table, count } => {
                let Some(database) = self.player.database else { return Outcome::Skipped(NO_DATABASE) };
                match database.count_rows(table).await {
                    Ok(actual) if actual == *count => Outcome::Passed,
                    Ok(actual) => Outcome::Failed(Mismatch::new(format!("{count} rows"), format!("{actual} rows"))),
                    Err(e) => Outcome::Failed(Mismatch::new(format!("{count} rows"), e)),
                }
            }
            StepKind::DeviceOption { sn, key, matcher } => {
                let Some(database) = self.player.database else { return Outcome::Skipped(NO_DATABASE) };
                match database.device_option(sn, key).await {
                    Ok(Some(value)) => matcher
                        .check(&value, &self.saved)
                        .map_err(|m| prefix(&format!("option {key} of {sn} "), m))
                        .into(),
                    Ok(None) => Outcome::Failed(Mismatch::new(
                        format!("option {key} of {sn}"),
                        format!("{sn} has no stored option {key}"),
                    )),
                    Err(e) => Outcome::Failed(Mismatch::new(format!("option {key} of {sn}"), e)),
                }
            }
            StepKind::Api { list, query, check } => {
                if let Err(outcome) = self.log_in().await {
                    return outcome;
                }
                let token = self.token.as_deref().unwrap_or_default();
                self.player.check_api(token, *list, query, check, &self.saved).await.into()
            }
        }
    }
}

impl Run<'_, '_> {
    /// An API session for the `api` and `call` steps, once per run; the outcome to give when
    /// there is none.
    async fn log_in(&mut self) -> Result<(), Outcome> {
        if self.token.is_some() {
            return Ok(());
        }
        let Some(credentials) = &self.player.credentials else { return Err(Outcome::Skipped(NO_CREDENTIALS)) };
        match self.player.login(credentials).await {
            Ok(token) => {
                self.token = Some(token);
                Ok(())
            }
            Err(e) => Err(Outcome::Failed(Mismatch::new("an API session", e))),
        }
    }
}

/// A value of a JSON body by key or path (`data/0/id`): a string as it is, anything else as JSON
/// writes it.
fn json_field(body: &str, field: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let found = value.pointer(&format!("/{field}"))?;
    Some(match found {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

const CHECKS_A_SKIPPED_CALL: &str = "checks the answer of a `call` step that was skipped";
const NO_DATABASE: &str =
    "reads the server's database, and no database checks were given (give API credentials to check it through the API)";
const NO_CREDENTIALS: &str = "needs the API, and no credentials were given (--user and --password, or --api-key)";

fn prefix(what: &str, m: Mismatch) -> Mismatch {
    Mismatch { expected: format!("{what}{}", m.expected), ..m }
}

/// The request as sent, for failure messages: request line, headers, body size.
fn describe(authority: &str, request: &Request) -> String {
    let mut out = format!("{} {} HTTP/1.1\nHost: {authority}", request.method, request.target);
    for (name, value) in &request.headers {
        out.push_str(&format!("\n{name}: {value}"));
    }
    out.push_str(&format!("\nContent-Length: {0}\nConnection: close\n({0} body bytes)", request.body.len()));
    out
}

/// A raw HTTP answer.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn parse(bytes: &[u8]) -> Option<Response> {
        let split = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let headers =
            lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))).collect();
        Some(Response { status, headers, body: bytes[split + 4..].to_vec() })
    }
}

/// Sends one request as firmware does (HTTP/1.1, `Connection: close`, exact `Content-Length`)
/// and reads the whole answer.
async fn send(authority: &str, request: &Request) -> Result<Response, String> {
    let mut head = format!("{} {} HTTP/1.1\r\nHost: {authority}\r\n", request.method, request.target);
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", request.body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&request.body);
    let exchange = async {
        let mut stream = TcpStream::connect(authority).await.map_err(|e| format!("connect to {authority}: {e}"))?;
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
    Response::parse(&out).ok_or_else(|| format!("not an HTTP response: {:?}", String::from_utf8_lossy(&out)))
}

/// What every 2xx device reply must carry (`protocol.md` §2.3, §11.6): `text/plain`, a GMT
/// `Date` (the terminal sets its clock from it) and an exact `Content-Length`.
fn check_device_reply(target: &str, response: &Response) -> Result<(), Mismatch> {
    let path = target.split('?').next().unwrap_or_default().to_ascii_lowercase();
    let is_device_path = path.trim_start_matches('/').starts_with("iclock/") && !path.contains("/iclock/api");
    if !is_device_path || !(200..300).contains(&response.status) {
        return Ok(());
    }
    if response.header("content-type") != Some("text/plain") {
        return Err(Mismatch::new(
            "a device reply with Content-Type text/plain",
            format!("Content-Type {:?}", response.header("content-type")),
        ));
    }
    match response.header("date") {
        Some(date) if date.ends_with(" GMT") && httpdate::parse_http_date(date).is_ok() => {}
        other => return Err(Mismatch::new("a device reply with an RFC 1123 GMT Date header", format!("{other:?}"))),
    }
    let length = response.header("content-length").and_then(|v| v.parse::<usize>().ok());
    if length != Some(response.body.len()) {
        return Err(Mismatch::new(
            "a Content-Length equal to the body's length",
            format!("Content-Length {length:?} and a body of {} bytes", response.body.len()),
        ));
    }
    Ok(())
}

fn check_status(response: &Response, status: u16, body: Option<&Matcher>, saved: &Saved) -> Result<(), Mismatch> {
    let text = response.text();
    if response.status != status {
        let expected = match body {
            Some(_) => format!("status {status}, then the body checked"),
            None => format!("status {status}"),
        };
        return Err(Mismatch::new(expected, format!("status {}, body {text:?}", response.status)));
    }
    match body {
        Some(matcher) => matcher.check(&text, saved).map_err(|m| prefix(&format!("status {status}, body "), m)),
        None => Ok(()),
    }
}

impl Player<'_> {
    fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.authority)
    }

    /// One `call` step: the API request with the session's token, a JSON body if any.
    async fn call(&self, token: &str, method: &str, path: &str, body: Option<String>) -> Result<Response, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request =
            self.client.request(method.clone(), self.url(path)).header("Authorization", format!("Token {token}"));
        if let Some(body) = body {
            request = request.header("Content-Type", "application/json").body(body);
        }
        let response = request.send().await.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = response.bytes().await.map_err(|e| format!("{method} {path}: {e}"))?.to_vec();
        Ok(Response { status, headers, body })
    }

    /// A session token for the `api …` steps.
    async fn login(&self, credentials: &Credentials) -> Result<String, String> {
        login(&self.client, &self.url(""), credentials).await
    }

    async fn check_api(
        &self,
        token: &str,
        list: ApiList,
        query: &str,
        check: &ApiCheck,
        saved: &Saved,
    ) -> Result<(), Mismatch> {
        let expected = || match check {
            ApiCheck::Count(n) => format!("{n} records"),
            ApiCheck::Field { name, values } => {
                let values: Vec<String> = values.iter().map(|v| v.render(saved)).collect();
                format!("{name}: {values:?}")
            }
        };
        let records = self.fetch_all(token, list, query).await.map_err(|e| Mismatch::new(expected(), e))?;
        match check {
            ApiCheck::Count(n) => {
                if records.len() == *n {
                    Ok(())
                } else {
                    let ids: Vec<String> = records.iter().map(|r| render(&r["id"])).collect();
                    Err(Mismatch::new(expected(), format!("{} records (ids {})", records.len(), ids.join(","))))
                }
            }
            ApiCheck::Field { name, values } => {
                let actual: Vec<String> = records.iter().map(|r| render(r.get(name).unwrap_or(&Value::Null))).collect();
                let wanted: Vec<String> = values.iter().map(|v| v.render(saved)).collect();
                if actual == wanted { Ok(()) } else { Err(Mismatch::new(expected(), format!("{name}: {actual:?}"))) }
            }
        }
    }

    /// Every record of a list, following `next` links page by page as an ERP does. Checks that
    /// the envelope's `count` matches what the pages held, and for transactions in the default
    /// order that ids strictly ascend (each punch served once).
    async fn fetch_all(&self, token: &str, list: ApiList, query: &str) -> Result<Vec<Value>, String> {
        let has_page_size = query.split('&').any(|p| p.starts_with("page_size=") || p.starts_with("limit="));
        let separator = if query.is_empty() { "" } else { "&" };
        let query = if has_page_size { query.to_owned() } else { format!("{query}{separator}page_size=1000") };
        let mut url = Some(self.url(&format!("{}?{query}", list.path())));
        let mut records = Vec::new();
        let mut count = None;
        let mut pages = 0;
        while let Some(current) = url.take() {
            pages += 1;
            if pages > 1000 {
                return Err(format!("more than 1000 pages; stopped at {current}"));
            }
            let response = self
                .client
                .get(&current)
                .header("Authorization", format!("Token {token}"))
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
}

/// A session token for `credentials` at `base` (`http://HOST:PORT`).
pub async fn login(client: &reqwest::Client, base: &str, credentials: &Credentials) -> Result<String, String> {
    let url = format!("{base}/api-token-auth/");
    let response = client
        .post(&url)
        .json(&serde_json::json!({ "username": credentials.username, "password": credentials.password }))
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    match answer["token"].as_str() {
        Some(token) if status.is_success() => Ok(token.to_owned()),
        _ => Err(format!("login as {} refused: {status} {answer}", credentials.username)),
    }
}

/// A JSON value as a script writes it: strings bare, `null`, numbers and booleans as JSON.
fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sessions of several devices will be played side by side (issue 17): a replay must be
    /// able to run on any worker thread.
    #[test]
    fn a_replay_can_be_spawned() {
        fn spawnable<T: Send>(_: &T) {}
        let player = Player::new("http://127.0.0.1:9").expect("target");
        let script = Script { name: String::new(), env: Vec::new(), steps: Vec::new() };
        spawnable(&player.play(&script));
    }

    #[test]
    fn only_plain_http_targets_are_accepted() {
        for good in ["http://127.0.0.1:8080", "http://bridge.example:80/", "http://[::1]:8080"] {
            assert!(Player::new(good).is_ok(), "{good}");
        }
        for bad in ["https://bridge.example", "127.0.0.1:8080", "http://", "http://host/iclock", "http://h?x"] {
            assert!(matches!(Player::new(bad), Err(ReplayError::Target(_))), "{bad}");
        }
    }
}
