//! Test harness: the application on 127.0.0.1:0, served in the test's process
//! ([`Server::in_process`]) or as the real `adms-bridge` binary ([`Server::start`], for the
//! stories that need a process: SIGKILL, restarts, replicas, start-up), with a database per test
//! folder (SQLite or PostgreSQL, see [`engine`]), a raw HTTP/1.1 client for byte-exact device
//! requests, and a JSON client for the API.
#![allow(dead_code)]

pub mod database;
pub mod polling;

pub mod webhooks;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use database::{Database, Engine, engine};

pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "correct horse";

/// A running server: the `adms-bridge` binary ([`Server::start`]), or the same application
/// served inside the test's own process ([`Server::in_process`]).
pub struct Server {
    process: Process,
    pub addr: String,
    pub dir: PathBuf,
    db: Database,
}

enum Process {
    Child(Child),
    /// `Application::run_until_stopped` on the test's runtime; aborted when the `Server` is
    /// dropped, and its background work ends with the runtime at the end of the test.
    InProcess(tokio::task::JoinHandle<std::io::Result<()>>),
}

/// What every test server is started with before the test's own settings: the database of its
/// folder comes first, then these, then the test's `env`.
const HARNESS_ENV: [(&str, &str); 8] = [
    ("ADMS_ADMIN_USER", ADMIN_USER),
    ("ADMS_ADMIN_PASSWORD", ADMIN_PASSWORD),
    ("ADMS_TIME_ZONE", "UTC"),
    // Most suites test other features on trusted terminals: they are approved on first contact
    // and may register freely from loopback. The trust suite (`device_trust`) runs with the
    // product's defaults by overriding these.
    ("ADMS_UNKNOWN_DEVICES", "auto"),
    ("ADMS_DEVICE_REGISTRATIONS_PER_MINUTE", "100000"),
    // Without the start-up warning that `auto` gives every test server.
    ("RUST_LOG", "warn,adms_server::device_trust=error"),
    // Webhook receivers in tests listen on 127.0.0.1, which the address policy refuses unless
    // listed. Set before the test's own env, so a test can take it away.
    ("ADMS_WEBHOOK_ALLOW_LIST", "127.0.0.1/32"),
    // Stopped servers stop at once; the drain test sets its own.
    ("ADMS_DRAIN_SECS", "0"),
];

impl Server {
    /// Starts the binary on the database of `dir` (a restart on the same `dir` finds its data).
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_together(dir, env, 1).pop().expect("one server")
    }

    /// Starts `n` processes on the database of `dir` ([`Database::of`]) at the same moment (all
    /// spawned before any is waited for), as replicas brought up together would be. Every
    /// process is owned by a `Server` before any is waited for, so a failed start kills them all
    /// (none outlives the test holding its stderr).
    pub fn start_together(dir: &Path, env: &[(&str, &str)], n: usize) -> Vec<Server> {
        let db = Database::of(dir);
        let mut servers: Vec<Server> = (0..n)
            .map(|_| Server {
                process: Process::Child(Server::spawn(&db, env)),
                addr: String::new(),
                dir: dir.to_owned(),
                db: db.clone(),
            })
            .collect();
        for server in &mut servers {
            server.addr = server.listening_address();
        }
        servers
    }

    /// The same application as [`Server::start`], configured from the same variables, served
    /// on the test's own runtime: no process to spawn, and a panic in a handler shows in the
    /// test. For every test that needs no process of its own (SIGKILL, restarts, replicas,
    /// start-up failures, stderr, memory use: those use [`Server::start`]).
    pub async fn in_process(dir: &Path, env: &[(&str, &str)]) -> Server {
        let db = Database::of(dir);
        let harness = db.server_env();
        let all = harness
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .chain(HARNESS_ENV.iter().copied())
            .chain([("ADMS_LISTEN", "127.0.0.1:0")])
            .chain(env.iter().copied());
        // The server's logs, as the binary writes them (`RUST_LOG` of the harness), captured per
        // test by the test harness: shown when the test fails.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn,adms_server::device_trust=error"))
            .with_test_writer()
            .try_init();
        // Read as the binary reads its environment.
        let config =
            adms_server::Config::from_variables(all).unwrap_or_else(|e| panic!("test server configuration: {e}"));
        let app = adms_server::Application::build(config).await.unwrap_or_else(|e| panic!("starting in process: {e}"));
        let addr = app.local_addr().expect("bound").to_string();
        let task = tokio::spawn(app.run_until_stopped(std::future::pending()));
        Server { process: Process::InProcess(task), addr, dir: dir.to_owned(), db }
    }

    /// [`Server::start`] on a given address (a replica restarted where a proxy expects it).
    pub fn start_on(dir: &Path, env: &[(&str, &str)], listen: &str) -> Server {
        let db = Database::of(dir);
        let mut server = Server {
            process: Process::Child(Server::spawn_on(&db, env, listen)),
            addr: String::new(),
            dir: dir.to_owned(),
            db,
        };
        server.addr = server.listening_address();
        server
    }

    fn spawn(db: &Database, env: &[(&str, &str)]) -> Child {
        Server::spawn_on(db, env, "127.0.0.1:0")
    }

    fn spawn_on(db: &Database, env: &[(&str, &str)], listen: &str) -> Child {
        let mut cmd = db.command();
        cmd.args(["serve", "--listen", listen]).stdout(Stdio::piped()).stderr(Stdio::inherit());
        for (k, v) in HARNESS_ENV.iter().chain(env) {
            cmd.env(k, v);
        }
        cmd.spawn().expect("spawn adms-bridge")
    }

    /// The process, which only [`Server::start`] has.
    fn child(&mut self) -> &mut Child {
        match &mut self.process {
            Process::Child(child) => child,
            Process::InProcess(_) => panic!("a server started in process has no process: use Server::start"),
        }
    }

    /// Waits for the `listening on` line of the process.
    fn listening_address(&mut self) -> String {
        let stdout = self.child().stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read listening line");
        line.trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The process id: the dispatcher names itself `adms-bridge-<pid>` in leases and attempts
    /// (the test's own for a server in process).
    pub fn pid(&self) -> u32 {
        match &self.process {
            Process::Child(child) => child.id(),
            Process::InProcess(_) => std::process::id(),
        }
    }

    /// The database it runs on.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The SQLite file, for the tests about the file itself ([`sqlite_only!`](crate::sqlite_only)).
    pub fn db_path(&self) -> PathBuf {
        self.dir.join("adms.db")
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        let child = self.child();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Sends SIGTERM and returns at once (the drain on shutdown, a second signal).
    pub fn signal_term(&self) {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("kill");
        assert!(status.success(), "kill -TERM");
    }

    /// Waits (up to [`EVENTUALLY`]) for the process to exit, and returns how it did.
    pub fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let child = self.child();
        let deadline = std::time::Instant::now() + EVENTUALLY;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "the server did not exit within {EVENTUALLY:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        let child = self.child();
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        for _ in 0..100 {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        match &mut self.process {
            Process::Child(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Process::InProcess(task) => task.abort(),
        }
    }
}

/// The sum of the samples of `text` (an OpenMetrics exposition) whose line `matches`; `None`
/// when no line does.
pub fn sum_samples(text: &str, matches: impl Fn(&str) -> bool) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|line| !line.starts_with('#') && matches(line))
        .map(|line| line.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()).expect("a sample's value"))
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// How long [`eventually`] waits before it fails: generous, because the two cores run the
/// tests in parallel (and, on a developer's machine, builds beside them).
pub const EVENTUALLY: Duration = Duration::from_secs(30);

/// Checks `check` every 50 ms until it holds, and fails naming `reason` (what was awaited) if
/// it does not within [`EVENTUALLY`]. The one way tests wait for something asynchronous.
pub async fn eventually(reason: &str, check: impl AsyncFnMut() -> bool) {
    eventually_within(EVENTUALLY, reason, check).await;
}

/// [`eventually`] with another limit, for the few waits known to take longer (thousands of
/// deliveries from two processes, say).
pub async fn eventually_within(limit: Duration, reason: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {limit:?} waiting until {reason}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the binary on the database of `dir` expecting it to fail, without a master key unless
/// `env` gives one; returns what it wrote on stderr.
pub fn start_failing(dir: &Path, env: &[(&str, &str)]) -> String {
    let mut cmd = Database::of(dir).command();
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("ADMS_TIME_ZONE", "UTC")
        .env("RUST_LOG", "warn")
        .env_remove("ADMS_SECRET_KEY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn");
    let output = child.wait_with_output().expect("wait");
    assert!(!output.status.success(), "started although it should not have");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening on"));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A raw HTTP response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends exactly `head` (request line + headers, CRLF separated, without the blank line) and
/// `body`, as old firmware does (`Connection: close`), and reads the whole response.
pub async fn raw_request(addr: &str, head: &str, body: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(format!("\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    stream.write_all(&request).await.expect("write");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.expect("read");
    parse_response(&out)
}

pub fn parse_response(bytes: &[u8]) -> RawResponse {
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers =
        lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))).collect();
    RawResponse { status, headers, body: bytes[split + 4..].to_vec() }
}

/// A device: GET/POST with the headers ZKTeco firmware sends.
pub struct Device<'a> {
    pub server: &'a Server,
    pub sn: String,
}

impl Device<'_> {
    pub async fn get(&self, path_and_query: &str) -> RawResponse {
        let head = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {}\r\nUser-Agent: iClock Proxy/1.09\r\nAccept: */*",
            self.server.addr
        );
        raw_request(&self.server.addr, &head, b"").await
    }

    pub async fn post(&self, path_and_query: &str, body: &[u8]) -> RawResponse {
        let head = format!(
            "POST {path_and_query} HTTP/1.1\r\nHost: {}\r\nUser-Agent: iClock Proxy/1.09\r\nAccept: */*\r\nContent-Type: text/plain",
            self.server.addr
        );
        raw_request(&self.server.addr, &head, body).await
    }

    pub async fn handshake(&self) -> RawResponse {
        self.get(&format!("/iclock/cdata?SN={}&options=all&pushver=2.4.1&language=69", self.sn)).await
    }

    pub async fn attlog(&self, body: &[u8]) -> RawResponse {
        self.post(&format!("/iclock/cdata?SN={}&table=ATTLOG&Stamp=9999", self.sn), body).await
    }
}

/// API client logged in with a session token.
pub struct Api {
    pub client: reqwest::Client,
    pub server_addr: String,
    pub token: String,
}

impl Api {
    pub async fn login(server: &Server) -> Api {
        let client = reqwest::Client::new();
        let response: serde_json::Value = client
            .post(server.url("/api-token-auth/"))
            .json(&serde_json::json!({ "username": ADMIN_USER, "password": ADMIN_PASSWORD }))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login json");
        let token = response["token"].as_str().expect("token").to_owned();
        Api { client, server_addr: server.addr.clone(), token }
    }

    /// `/metrics` of the server at `addr` (`HOST:PORT`; any replica of the database accepts
    /// this token), as text.
    pub async fn metrics_of(&self, addr: &str) -> String {
        let response = self
            .client
            .get(format!("http://{addr}/metrics"))
            .header("Authorization", format!("Token {}", self.token))
            .send()
            .await
            .expect("scrape");
        assert_eq!(response.status(), 200);
        response.text().await.expect("metrics text")
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        let response = self
            .client
            .get(format!("http://{}{}", self.server_addr, path))
            .header("Authorization", format!("Token {}", self.token))
            .send()
            .await
            .expect("api get");
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("json")
    }

    /// Any request with the token; `body` is sent as JSON when given. Returns the status and
    /// the JSON answer (`Null` when there is none).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .client
            .request(method.clone(), format!("http://{}{}", self.server_addr, path))
            .header("Authorization", format!("Token {}", self.token));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    pub async fn get_status(&self, path: &str) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// Moves the server's test clock (`ADMS_TEST_CLOCK=true`) forward.
    pub async fn advance_clock(&self, secs: u64) {
        let (status, answer) = self.post_json("/api/v1/test/clock", &serde_json::json!({ "advance_secs": secs })).await;
        assert_eq!(status, 200, "{answer}");
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch_json(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// Every transaction (one big page), ascending id.
    pub async fn transactions(&self, query: &str) -> Vec<serde_json::Value> {
        let page = self.get(&format!("/iclock/api/transactions/?page_size=999999&{query}")).await;
        page["data"].as_array().cloned().unwrap_or_default()
    }
}

/// The fixtures directory of the repository.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// The shared captures, when the reference material sits beside the checkout.
pub fn shared_captures() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/captures");
    dir.is_dir().then_some(dir)
}

/// Every table `count_rows` can count: the store's list (what the API's table counts answer).
pub use adms_store::COUNTED_TABLES;

/// Rows in a table, read straight from the database.
pub async fn count_rows(db: &Database, table: &str) -> i64 {
    let sql = match table {
        "devices" => "SELECT COUNT(*) FROM devices",
        "punches" => "SELECT COUNT(*) FROM punches",
        "rejected_lines" => "SELECT COUNT(*) FROM rejected_lines",
        "operation_logs" => "SELECT COUNT(*) FROM operation_logs",
        "device_users" => "SELECT COUNT(*) FROM device_users",
        "biometric_templates" => "SELECT COUNT(*) FROM biometric_templates",
        "user_photos" => "SELECT COUNT(*) FROM user_photos",
        "device_records" => "SELECT COUNT(*) FROM device_records",
        "device_options" => "SELECT COUNT(*) FROM device_options",
        "command_results" => "SELECT COUNT(*) FROM command_results",
        "access_events" => "SELECT COUNT(*) FROM access_events",
        "raw_uploads" => "SELECT COUNT(*) FROM raw_uploads",
        "att_photos" => "SELECT COUNT(*) FROM att_photos",
        other => panic!("unknown table {other}"),
    };
    db.scalar_i64(sql, &[]).await
}

/// One stored device option (from an options dump, a registry body or an INFO result), read
/// straight from the database; `None` when the device never sent that key.
pub async fn device_option(db: &Database, sn: &str, key: &str) -> Option<String> {
    db.fetch_optional::<(String,)>(
        "SELECT o.value FROM device_options AS o JOIN devices AS d ON d.id = o.device_id WHERE d.sn = $1 AND o.key = $2",
        &[sn.into(), key.into()],
    )
    .await
    .map(|(value,)| value)
}

/// A loopback address no one listens on, for a process or receiver that binds it later
/// (connections are refused until then). Its port lies below the kernel's ephemeral range,
/// which a port-0 listener or an outgoing connection of another test could otherwise take
/// meanwhile (a late receiver's bind once failed with `AddrInUse`); only explicit binds use
/// these ports.
pub fn closed_loopback_addr() -> std::net::SocketAddr {
    use std::hash::BuildHasher as _;
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_from.max(10_001));
    let random = std::collections::hash_map::RandomState::new();
    for attempt in 0u32..1000 {
        let port = low + (random.hash_one(attempt) % u64::from(high - low)) as u16;
        // Free now (bound and released at once): the receiver binds it when its time comes.
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return listener.local_addr().unwrap();
        }
    }
    panic!("no free loopback port between {low} and {high}");
}
