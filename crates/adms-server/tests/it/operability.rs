//! What an operator and an integrator rely on to tell the bridge's state: unknown paths answer
//! 404 (a misspelt write never looks like success), `/healthz` and `/readyz`, and `/metrics`
//! (parsed by the reference OpenMetrics parser where it is installed, always in CI).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::common::{self, Api, Device, Server, database::Bind};

/// Every unknown path answers DRF's JSON 404, except a browser's GET outside the API prefixes
/// (ZKBio Time's page).
#[tokio::test]
async fn unknown_paths_answer_json_404_except_a_browser_page() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let client = reqwest::Client::new();
    let cases: [(&str, &str, Option<&str>); 9] = [
        ("POST", "/api/v1/webhooks/endpoint", None),
        ("PUT", "/iclock/api/transacions/1/", None),
        ("DELETE", "/personnel/api/employes/1/", None),
        ("PATCH", "/att/api/nothing/", None),
        ("GET", "/api/v2/anything", Some("text/html")),
        ("GET", "/iclock/api/nothing/", Some("text/html")),
        ("GET", "/some/page", Some("application/json")),
        ("GET", "/some/page", None),
        ("POST", "/some/page", Some("text/html")),
    ];
    for (method, path, accept) in cases {
        let mut request = client
            .request(method.parse().unwrap(), server.url(path))
            .header("Authorization", format!("Token {}", api.token));
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        let body = response.text().await.unwrap();
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert!(content_type.starts_with("application/json"), "{method} {path}: {content_type}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({ "detail": "Not found." }), "{method} {path}");
    }
    // A browser's GET of another path: ZKBio Time's page, as it answers.
    let page = client.get(server.url("/some/page")).header("Accept", "text/html,*/*").send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<title>Page not found</title>"));
}

#[tokio::test]
async fn health_and_readiness_need_no_credentials_and_say_why_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let health = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap(), json!({ "status": "ok" }));
    let (status, ready) = readyz(&server).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["role"], "all");
    assert_eq!(
        ready["checks"],
        json!({ "shutdown": "ok", "database": "ok", "migrations": "ok", "punch_writer": "ok", "wake_ups": "ok" })
    );
    assert!(ready.get("reason").is_none());

    // A newer release expanded the database under this running server: still ready, and says so.
    let expansion = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                     VALUES (99990101000000, 'future punch photos', TRUE, '', 0)";
    server.db().execute(expansion, &[]).await;
    let (status, ready) = readyz(&server).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["checks"]["migrations"], "ok", "{ready}");
    // Then contracted it: this release may no longer run on it.
    let newer = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (99990101000001, 'contract drop punch notes', TRUE, '', 0)";
    server.db().execute(newer, &[]).await;
    let (status, ready) = readyz(&server).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "unavailable");
    let reason = ready["reason"].as_str().unwrap();
    assert!(reason.starts_with("migrations: "), "{reason}");
    assert!(reason.contains("99990101000001") && reason.contains("newer release"), "{reason}");
    assert_eq!(ready["checks"]["database"], "ok");

    server.db().execute("DELETE FROM _sqlx_migrations WHERE version >= 99990101000000", &[]).await;
    let (status, _) = readyz(&server).await;
    assert_eq!(status, 200);
}

/// PostgreSQL refusing connections: `/readyz` says the database does not answer, within its
/// bound, and is ready again once it does.
#[tokio::test]
async fn readiness_follows_the_database_on_postgres() {
    if common::engine() != common::Engine::Postgres {
        use std::io::Write as _;
        let _ = std::io::stderr()
            .write_all(b"PostgreSQL-only (readiness_follows_the_database_on_postgres): skipped on SQLite\n");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    assert_eq!(readyz(&server).await.0, 200);
    let url = server.db().url().to_owned();
    let name = url.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    let admin_url = format!("{}/postgres", url.rsplit_once('/').unwrap().0);
    let admin = |sql: String| {
        let admin_url = admin_url.clone();
        async move {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
        }
    };
    admin(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false")).await;
    admin(format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")).await;
    common::eventually("readyz answers 503", async || readyz(&server).await.0 == 503).await;
    let (_, ready) = readyz(&server).await;
    assert!(ready["reason"].as_str().unwrap().starts_with("database: "), "{ready}");
    assert_eq!(ready["checks"]["migrations"], "not checked: no database");
    // The `LISTEN` connection of the wake-ups went with the others.
    common::eventually("readyz says the wake-ups do not listen", async || {
        readyz(&server).await.1["checks"]["wake_ups"] == "not listening"
    })
    .await;
    admin(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true")).await;
    // Ready again only once the wake-ups listen again, too.
    common::eventually("readyz answers 200 again", async || readyz(&server).await.0 == 200).await;
    assert_eq!(readyz(&server).await.1["checks"]["wake_ups"], "ok");
}

/// Uploads, re-sends, rejected lines, devices, commands, HTTP requests and the process, as
/// Prometheus reads them.
#[tokio::test]
async fn metrics_count_what_the_bridge_did() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_TEST_CLOCK", "true")]).await;
    let api = Api::login(&server).await;
    let device = Device { server: &server, sn: "METRICS01".into() };
    device.handshake().await;
    let body = b"1\t2026-12-01 08:00:00\t0\t1\t0\t0\n2\t2026-12-01 08:01:00\t0\t1\t0\t0\n\tnot a punch\n";
    assert!(device.attlog(body).await.text().starts_with("OK"));
    assert!(device.attlog(body).await.text().starts_with("OK"), "the same lines again");
    let (status, _) =
        api.post_json("/api/v1/devices/METRICS01/commands", &json!({ "command": { "type": "info" } })).await;
    assert_eq!(status, 201);
    // Two minutes later (the server's clock), the command still queued and the device silent.
    api.advance_clock(120).await;

    let metrics = scrape(&server, &api).await;
    // The sum over the samples with these labels (and any others).
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let matching: Vec<f64> = metrics
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
            .map(|s| s.value)
            .collect();
        assert!(!matching.is_empty(), "no {name}{labels:?} in {metrics:#?}");
        matching.iter().sum()
    };
    assert_eq!(value("adms_punches_stored_total", &[]), 2.0);
    assert_eq!(value("adms_punches_resent_total", &[]), 2.0);
    assert_eq!(value("adms_device_uploads_total", &[("table", "ATTLOG")]), 2.0);
    assert_eq!(value("adms_rejected_lines_total", &[("table", "ATTLOG"), ("reason", "empty_pin")]), 2.0);
    assert!(value("adms_punch_group_batches_count", &[]) >= 2.0);
    assert!(value("adms_punch_commit_duration_seconds_sum", &[]) > 0.0);
    assert_eq!(value("adms_devices_known", &[]), 1.0);
    assert_eq!(value("adms_devices_pending_approval", &[]), 0.0);
    assert_eq!(value("adms_device_last_request_age_seconds_count", &[]), 1.0);
    assert_eq!(value("adms_device_last_request_age_seconds_bucket", &[("le", "60.0")]), 0.0);
    assert_eq!(value("adms_device_last_request_age_seconds_bucket", &[("le", "120.0")]), 0.0);
    assert_eq!(value("adms_device_last_request_age_seconds_bucket", &[("le", "300.0")]), 1.0);
    assert_eq!(value("adms_commands", &[("state", "queued")]), 1.0);
    let waited = value("adms_commands_oldest_queued_age_seconds", &[]);
    assert!((120.0..300.0).contains(&waited), "{waited}");
    assert_eq!(
        value(
            "adms_http_request_duration_seconds_count",
            &[("group", "device"), ("method", "POST"), ("status", "200")]
        ),
        2.0
    );
    assert!(value("adms_http_request_duration_seconds_count", &[("group", "api"), ("method", "POST")]) >= 2.0);
    assert_eq!(value("adms_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert!(value("process_resident_memory_bytes", &[]) > 1e6);
    assert!(value("process_open_fds", &[]) > 3.0);
    assert!(value("process_cpu_seconds_total", &[]) > 0.0);
    assert_eq!(value("adms_login_refused_total", &[("reason", "throttled")]), 0.0);
    assert_eq!(value("adms_device_quota_refusals_total", &[("kind", "raw")]), 0.0);

    // The device polls: its command goes out, the queue gauge follows.
    device.get("/iclock/getrequest?SN=METRICS01").await;
    let metrics = scrape(&server, &api).await;
    let sent = metrics.iter().find(|s| s.name == "adms_commands" && s.labels["state"] == "sent").unwrap();
    assert_eq!(sent.value, 1.0);
}

/// A pending device counts as pending, not by presence.
#[tokio::test]
async fn metrics_count_pending_devices() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "pending")]).await;
    let api = Api::login(&server).await;
    Device { server: &server, sn: "PENDING01".into() }.handshake().await;
    let metrics = scrape(&server, &api).await;
    let get = |name: &str| metrics.iter().find(|s| s.name == name).map(|s| s.value);
    assert_eq!(get("adms_devices_pending_approval"), Some(1.0));
    let approved: f64 = metrics.iter().filter(|s| s.name == "adms_devices").map(|s| s.value).sum();
    assert_eq!(approved, 0.0);
    let sn = [Bind::Text("PENDING01".into())];
    assert_eq!(server.db().scalar_i64("SELECT COUNT(*) FROM devices WHERE sn = $1", &sn).await, 1);
}

async fn readyz(server: &Server) -> (u16, Value) {
    let response = reqwest::get(server.url("/readyz")).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// One sample of the exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// `/metrics`, checked by the OpenMetrics reference parser (Python's `prometheus_client`) when
/// it is installed (always in CI), and read into samples.
/// The `rtlog` writers' groups: two uploads one after the other are two groups of one, each
/// counted once, none failed.
#[tokio::test]
async fn metrics_count_the_access_event_groups() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let panel = Device { server: &server, sn: "METRICSACC".into() };
    assert_eq!(panel.post("/iclock/registry?SN=METRICSACC", b"DeviceType=acc,LockCount=1").await.status, 200);
    for second in 0..2 {
        let line = format!(
            "time=2026-12-06 09:00:0{second}\tpin=1\tcardno=0\teventaddr=1\tevent=0\tinoutstatus=0\tverifytype=1\n"
        );
        assert_eq!(panel.post("/iclock/cdata?SN=METRICSACC&table=rtlog", line.as_bytes()).await.text(), "OK");
    }
    let metrics = scrape(&server, &api).await;
    let value = |name: &str| -> f64 {
        metrics.iter().find(|s| s.name == name).map(|s| s.value).unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(value("adms_access_event_group_uploads_sum"), 2.0);
    assert_eq!(value("adms_access_event_group_uploads_count"), 2.0);
    assert!(value("adms_access_event_commit_duration_seconds_sum") > 0.0);
    assert_eq!(value("adms_access_event_groups_failed_total"), 0.0);
}

async fn scrape(server: &Server, api: &Api) -> Vec<Sample> {
    let response = api
        .client
        .get(server.url("/metrics"))
        .header("Authorization", format!("Token {}", api.token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let text = response.text().await.unwrap();
    check_with_reference_parser(&text);
    text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).map(parse_sample).collect()
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("sample line {line:?}"));
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => {
            let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("labels of {line:?}"));
            let mut labels = BTreeMap::new();
            // Label values here have no `,` or `"` of their own.
            for pair in inner.split(',').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("label {pair:?} of {line:?}"));
                labels.insert(k.to_owned(), v.trim_matches('"').to_owned());
            }
            (name, labels)
        }
        None => (series, BTreeMap::new()),
    };
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("value of {line:?}")),
    };
    Sample { name: name.to_owned(), labels, value }
}

/// Parses `text` with `prometheus_client.openmetrics.parser`, which refuses what the format
/// does not allow (a counter without `_total`, unsorted buckets, a missing `# EOF`, ...).
fn check_with_reference_parser(text: &str) {
    use std::io::Write as _;
    let script = "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n\
                  families = list(parse(sys.stdin.read()))\nprint(len(families))\n";
    let mut child = match std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => return reference_parser_missing(&format!("python3: {error}")),
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named 'prometheus_client'") {
        return reference_parser_missing("prometheus_client is not installed (pip install prometheus-client)");
    }
    assert!(output.status.success(), "the OpenMetrics parser refused /metrics: {stderr}\n{text}");
    let families: usize = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap();
    assert!(families > 20, "{families} families");
}

/// Outside CI the reference parser is optional; in CI (`CI` set) it must be there.
fn reference_parser_missing(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "the OpenMetrics reference parser is needed in CI: {why}");
    eprintln!("OpenMetrics reference parser not run: {why}");
}

/// With stderr going to a journal or a file: no colours, every line JSON with
/// `log_format=json`, and the generated signing secret of the `ADMS_WEBHOOK_URL` endpoint
/// written to a private file beside the database, never to the log.
#[test]
fn logs_are_plain_json_off_a_terminal_and_never_carry_a_signing_secret() {
    crate::sqlite_only!("the secret file lies beside the SQLite database");
    use std::io::BufRead as _;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let mut child = crate::common::database::Database::of(dir.path())
        .command()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("ADMS_TIME_ZONE", "UTC")
        .env("ADMS_LOG", "info")
        .env("ADMS_LOG_FORMAT", "json")
        .env("ADMS_WEBHOOK_URL", "http://127.0.0.1:9/hook")
        .env("ADMS_WEBHOOK_ALLOW_LIST", "127.0.0.1/32")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Started once it listens; everything about the endpoint was logged before.
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains('\x1b'), "colours off a terminal: {stderr}");
    for line in stderr.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert!(!stderr.contains("whsec_"), "the secret is in the log: {stderr}");
    let file = dir.path().join("adms.db.webhook-secret");
    assert!(stderr.contains(&file.display().to_string()), "the log says where the secret is: {stderr}");
    let secret = std::fs::read_to_string(&file).unwrap();
    assert!(secret.starts_with("whsec_") && secret.trim().len() > 20, "{secret}");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
}

/// The summary line at `info`: what the process did in each period (here 1 s instead of 60).
#[tokio::test]
async fn a_summary_line_says_what_the_last_period_brought() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let child = crate::common::database::Database::of(dir.path())
        .command()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("ADMS_TIME_ZONE", "UTC")
        .env("ADMS_LOG", "warn,adms_server::app::metrics=info")
        .env("ADMS_LOG_FORMAT", "json")
        .env("ADMS_LOG_SUMMARY_SECS", "1")
        .env("ADMS_UNKNOWN_DEVICES", "auto")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Killed however the test ends.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = KillOnDrop(child);
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on http://").unwrap().to_owned();
    // Summaries as they come, read on a thread of their own.
    let (lines, summaries) = std::sync::mpsc::channel::<Value>();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(value) = serde_json::from_str::<Value>(&line)
                && value["fields"]["message"] == "activity summary"
                && lines.send(value).is_err()
            {
                break;
            }
        }
    });
    let head = |path: &str| format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain");
    common::raw_request(&addr, &head("/iclock/cdata?SN=SUMMARY1&options=all").replace("POST", "GET"), b"").await;
    let body = b"1\t2026-12-01 08:00:00\t0\t1\t0\t0\n2\t2026-12-01 08:01:00\t0\t1\t0\t0\n";
    let first = common::raw_request(&addr, &head("/iclock/cdata?SN=SUMMARY1&table=ATTLOG&Stamp=1"), body).await;
    assert_eq!(first.text(), "OK: 2");
    common::raw_request(&addr, &head("/iclock/cdata?SN=SUMMARY1&table=ATTLOG&Stamp=1"), body).await;
    // The periods of the uploads add up to what was sent; each line has every field.
    let (mut stored, mut resent) = (0, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while stored < 2 || resent < 2 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let summary = summaries.recv_timeout(left).expect("a summary line within 30 s");
        let fields = &summary["fields"];
        assert_eq!(fields["period_secs"], 1, "{summary}");
        for key in ["devices_seen", "deliveries_sent", "deliveries_failed"] {
            assert!(fields[key].is_u64(), "{key}: {summary}");
        }
        stored += fields["punches_stored"].as_u64().unwrap();
        resent += fields["punches_resent"].as_u64().unwrap();
    }
    assert_eq!((stored, resent), (2, 2));
}
