//! The `adms-sim` binary against a real server on loopback: the adms-bridge application (the
//! same `Config::from_variables` and `Application::build` as its binary) served on this test's
//! runtime, a fresh SQLite database per test, and `adms-sim replay` run as its own process.

use std::path::{Path, PathBuf};
use std::process::Output;

use adms_sim::session::{StepKind, parse_script};

const USER: &str = "admin";
const PASSWORD: &str = "correct horse";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// A server on `127.0.0.1:0` with its own database in `dir`, the harness settings of
/// adms-server's tests, then `env`. Returns `http://ADDR`; it serves until the test ends.
async fn start_server(dir: &Path, env: &[(String, String)]) -> String {
    let database = format!("sqlite://{}/adms.db", dir.display());
    let harness = [
        ("ADMS_DATABASE_URL", database.as_str()),
        ("ADMS_LISTEN", "127.0.0.1:0"),
        ("ADMS_ADMIN_USER", USER),
        ("ADMS_ADMIN_PASSWORD", PASSWORD),
        ("ADMS_TIME_ZONE", "UTC"),
        ("ADMS_UNKNOWN_DEVICES", "auto"),
        ("ADMS_DEVICE_REGISTRATIONS_PER_MINUTE", "100000"),
    ];
    let all = harness.into_iter().chain(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let config = adms_server::Config::from_variables(all).expect("server configuration");
    let app = adms_server::Application::build(config).await.expect("server start");
    let addr = app.local_addr().expect("bound");
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    format!("http://{addr}")
}

async fn adms_sim(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_adms-sim"))
        .args(args)
        .env_remove("ADMS_SIM_TARGET")
        .env_remove("ADMS_SIM_USER")
        .env_remove("ADMS_SIM_PASSWORD")
        .output()
        .await
        .expect("run adms-sim")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn gbk_session() -> (String, adms_sim::session::Script) {
    let session = fixtures().join("sessions/gbk-chinese-unit.session");
    let shown = session.display().to_string();
    let script =
        parse_script(&shown, &std::fs::read_to_string(&session).expect("session"), &fixtures().join("payloads"))
            .expect("parses");
    (shown, script)
}

fn database_steps(script: &adms_sim::session::Script) -> usize {
    script.steps.iter().filter(|s| matches!(s.kind, StepKind::Rows { .. } | StepKind::DeviceOption { .. })).count()
}

/// With credentials, the `rows` and `option` steps are checked through the API
/// (`/api/v1/stats/tables`, `/api/v1/devices/{sn}/options`): nothing is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_plays_a_fixture_session_and_checks_stored_state_through_the_api() {
    let (shown, script) = gbk_session();
    assert!(database_steps(&script) > 0, "the session should have rows/option steps");
    let dir = tempfile::tempdir().expect("temp dir");
    let target = start_server(dir.path(), &script.env).await;

    let output = adms_sim(&["replay", &shown, "--target", &target, "--user", USER, "--password", PASSWORD]).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{}", text(&output.stderr));
    let total = script.steps.len();
    let summary = format!("{shown}: OK, {total} steps: {total} steps passed, 0 failed as marked (xfail), 0 skipped");
    assert!(stdout.lines().any(|l| l == summary), "no line {summary:?} in:\n{stdout}");
    assert!(stdout.contains(&format!("{shown}: note: written for a server with ADMS_TIME_ZONE=+08:00")), "{stdout}");
    assert!(stdout.lines().any(|l| l == "1 of 1 sessions passed"), "{stdout}");
}

/// Without credentials, the steps that need the API or the database are listed as skipped with
/// the reason, never counted as passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_the_stored_state_steps_are_listed_as_skipped() {
    let (shown, script) = gbk_session();
    let api_steps = script.steps.iter().filter(|s| matches!(s.kind, StepKind::Api { .. })).count();
    let skipped_steps = database_steps(&script) + api_steps;
    let dir = tempfile::tempdir().expect("temp dir");
    let target = start_server(dir.path(), &script.env).await;

    let output = adms_sim(&["replay", &shown, "--target", &target]).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{}", text(&output.stderr));
    let total = script.steps.len();
    let passed = total - skipped_steps;
    let summary = format!(
        "{shown}: OK, {total} steps: {passed} steps passed, 0 failed as marked (xfail), {skipped_steps} skipped"
    );
    assert!(stdout.lines().any(|l| l == summary), "no line {summary:?} in:\n{stdout}");
    let skipped: Vec<&str> = stdout.lines().filter(|l| l.trim_start().starts_with("skipped ")).collect();
    assert_eq!(skipped.len(), skipped_steps, "{stdout}");
    let database_reason = skipped.iter().filter(|l| l.contains("no database checks were given")).count();
    assert_eq!(database_reason, database_steps(&script), "{stdout}");
}

/// Several devices at once: each device's sessions keep their order (the second session of a
/// device counts what the first stored), every session is reported, and `--progress` shows
/// the progress line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_play_concurrently_and_each_devices_sessions_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = start_server(dir.path(), &[]).await;
    let sessions = dir.path().join("sessions");
    std::fs::create_dir(&sessions).expect("sessions folder");
    let devices = ["SIMCONC001", "SIMCONC002", "SIMCONC003", "SIMCONC004"];
    for sn in devices {
        // Named so that name order is the device's order.
        std::fs::write(
            sessions.join(format!("{sn}-1.session")),
            format!(
                "GET /iclock/cdata?SN={sn}&options=all&pushver=2.4.1\n=> 200 ^GET OPTION FROM: {sn}\n\
                 POST /iclock/cdata?SN={sn}&table=ATTLOG&Stamp=1 @attlog/documented-7col.txt gap=30ms\n=> 200 OK: 3\n"
            ),
        )
        .expect("write");
        std::fs::write(
            sessions.join(format!("{sn}-2.session")),
            format!(
                "GET /iclock/getrequest?SN={sn}\n=> 200 OK\napi transactions?terminal_sn={sn} count 3\n\
                 POST /iclock/cdata?SN={sn}&table=ATTLOG&Stamp=2 @attlog/documented-7col.txt\n=> 200 OK: 3\n\
                 api transactions?terminal_sn={sn} count 3\n"
            ),
        )
        .expect("write");
    }
    let (shown, payloads) = (sessions.display().to_string(), fixtures().join("payloads").display().to_string());
    let output = adms_sim(&[
        "replay",
        &shown,
        "--target",
        &target,
        "--payloads",
        &payloads,
        "--user",
        USER,
        "--password",
        PASSWORD,
        "--concurrency",
        "4",
        "--speed",
        "10",
        "--progress",
    ])
    .await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{}", text(&output.stderr));
    assert!(stdout.lines().any(|l| l == "8 of 8 sessions passed"), "{stdout}");
    for sn in devices {
        let first = stdout.find(&format!("{sn}-1.session: OK")).unwrap_or_else(|| panic!("{sn}-1 in {stdout}"));
        let second = stdout.find(&format!("{sn}-2.session: OK")).unwrap_or_else(|| panic!("{sn}-2 in {stdout}"));
        assert!(first < second, "{sn}'s sessions out of order:\n{stdout}");
    }
    assert!(text(&output.stderr).contains("8 of 8 sessions played, 0 failed"), "{}", text(&output.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_expectation_fails_with_a_readable_diff() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = start_server(dir.path(), &[]).await;
    // Three punches go in; the script expects 99.
    let session = dir.path().join("wrong.session");
    std::fs::write(
        &session,
        "\
GET /iclock/cdata?SN=SIMWRONG01&options=all&pushver=2.4.1&language=69
=> 200 ^GET OPTION FROM: SIMWRONG01\\n
POST /iclock/cdata?SN=SIMWRONG01&table=ATTLOG&Stamp=9999 @attlog/documented-7col.txt
=> 200 OK: 99
GET /iclock/getrequest?SN=SIMWRONG01
=> 200 OK
",
    )
    .expect("write the session");
    let shown = session.display().to_string();
    let payloads = fixtures().join("payloads").display().to_string();

    let output = adms_sim(&["replay", &shown, "--target", &target, "--payloads", &payloads]).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{}", text(&output.stderr));
    let addr = target.trim_start_matches("http://");
    let length = std::fs::metadata(fixtures().join("payloads/attlog/documented-7col.txt")).expect("payload").len();
    let diff = format!(
        "\
{shown}: FAILED at step 4 of 6 (3 steps passed, 0 failed as marked (xfail), 0 skipped)
{shown}:4: => 200 OK: 99
    after:    POST /iclock/cdata?SN=SIMWRONG01&table=ATTLOG&Stamp=9999 @attlog/documented-7col.txt
    sent:     POST /iclock/cdata?SN=SIMWRONG01&table=ATTLOG&Stamp=9999 HTTP/1.1
              Host: {addr}
              User-Agent: iClock Proxy/1.09
              Accept: */*
              Content-Type: text/plain
              Content-Length: {length}
              Connection: close
              ({length} body bytes)
    expected: status 200, body to be \"OK: 99\"
    came:     \"OK: 3\"
0 of 1 sessions passed
"
    );
    assert_eq!(stdout, diff);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_script_names_its_lines_and_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = dir.path().join("broken.session");
    std::fs::write(&session, "GET /iclock/ping?SN=A\n=> abc\nfrobnicate\n").expect("write the session");
    let shown = session.display().to_string();
    // Nothing is sent: the target is never reached.
    let output = adms_sim(&["replay", &shown, "--target", "http://127.0.0.1:9"]).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("{shown}: INVALID\n{shown}:2: ")), "{stdout}");
    assert!(stdout.contains(&format!("\n{shown}:3: unknown keyword `frobnicate`")), "{stdout}");
}
