//! Capture (`--capture-dir`): device traffic recorded as session scripts that `adms-sim replay`
//! plays unchanged. Real processes throughout: the `adms-bridge` binary with capture on, the
//! `adms-sim` binary playing scripted sessions into it, then the captured files replayed by the
//! same binary against a second fresh server.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use adms_sim::session::{BodySources, Script, StepKind, parse_script, parse_script_in};
use common::{ADMIN_PASSWORD, ADMIN_USER, Api, Device, Server, eventually, fixtures};

use crate::replay_binary::adms_sim_binary;

/// A device credential sent on a device path: it must not reach the captured files (only the
/// allowlisted firmware headers are recorded).
const DEVICE_PATH_SECRET: &str = "devpathsecret0042";

/// A session of this test's own device: GBK names, a hostile ATTLOG batch (invalid UTF-8, NUL,
/// control bytes), an attendance photo (NUL then JPEG-like bytes, without a PIN), a Cookie,
/// an `Authorization` header where none belongs, a firmware without `Content-Type`.
fn binary_bodies_session() -> String {
    format!(
        "\
GET /iclock/cdata?SN=SIMCAP0001&options=all&language=83 +Cookie:token=0123abcd
=> 200 ^GET OPTION FROM: SIMCAP0001\\n
POST /iclock/cdata?SN=SIMCAP0001&table=OPERLOG&OpStamp=1 @operlog/gbk-users.bin +User-Agent:ZK\\u{{20}}Web\\u{{20}}Server
=> 200 OK: 6
POST /iclock/cdata?SN=SIMCAP0001&table=ATTLOG&Stamp=9999 @attlog/hostile-batch.bin -Content-Type
=> 200 OK: 2
POST /iclock/cdata.aspx?SN=SIMCAP0001&table=ATTPHOTO @attphoto/no-nul.bin
=> 200 OK
POST /iclock/cdata?SN=SIMCAP0001&table=ATTLOG @attlog/binary-noise.bin
=> 200
GET /iclock/getrequest?SN=SIMCAP0001 +Authorization:Token\\u{{20}}{DEVICE_PATH_SECRET}
=> 200 OK
"
    )
}

fn run_sim(args: &[&str]) -> Output {
    Command::new(adms_sim_binary()).args(args).env_remove("ADMS_SIM_API_KEY").output().expect("run adms-sim")
}

fn show(output: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The captured session scripts, parsed, per device folder, once the writer has finished them.
fn captured_scripts(dir: &Path) -> Vec<Script> {
    read_captured(dir).unwrap_or_else(|e| panic!("{e}"))
}

/// The captured session scripts so far: a file the writer deletes (rotation, the cap) between
/// the listing and the reading is left out; one it is still writing may not parse yet (the
/// error). For the waits; what they wait for is then read with [`captured_scripts`].
fn read_captured(dir: &Path) -> Result<Vec<Script>, String> {
    let mut scripts = Vec::new();
    for path in files_under(dir).into_iter().filter(|p| p.extension().is_some_and(|e| e == "session")) {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("captured session {}: {e}", path.display()),
        };
        let sources = BodySources { payloads: dir, session_dir: path.parent() };
        let script = parse_script_in(&path.display().to_string(), &text, sources)
            .map_err(|e| format!("a captured session does not parse:\n{e}\n{text}"))?;
        scripts.push(script);
    }
    Ok(scripts)
}

/// A request as sent: method, target, body.
type Sent = (&'static str, String, Vec<u8>);

/// The requests of a script.
fn requests(script: &Script) -> Vec<Sent> {
    script
        .steps
        .iter()
        .filter_map(|s| match &s.kind {
            StepKind::Request(r) => Some((r.method, r.target.clone(), r.body.clone())),
            _ => None,
        })
        .collect()
}

/// Plays `sessions` (fixture names or texts) with `adms-sim replay` into a server with capture
/// on, then replays what was captured against a second fresh server: every captured session
/// passes, each device's requests were captured in order with their exact bytes, and no API
/// credential appears in any captured file.
fn round_trip(sessions: &[(&str, String)], env: &[(&str, &str)]) {
    crate::sqlite_run_only!("the capture writer and replay do not depend on the engine");
    let work = tempfile::tempdir().expect("temp dir");
    let capture_dir = work.path().join("captured");
    let scripted = work.path().join("scripted");
    std::fs::create_dir(&scripted).expect("folder");
    let mut originals = Vec::new();
    for (name, text) in sessions {
        let path = scripted.join(format!("{name}.session"));
        std::fs::write(&path, text).expect("write session");
        let script = parse_script(name, text, &fixtures().join("payloads")).expect("scripted session parses");
        originals.push((path, script));
    }
    let recording_env: Vec<(&str, &str)> =
        env.iter().copied().chain([("ADMS_CAPTURE_DIR", capture_dir.to_str().expect("utf-8 path"))]).collect();
    let (first_dir, second_dir) = (work.path().join("first"), work.path().join("second"));
    std::fs::create_dir(&first_dir).and_then(|()| std::fs::create_dir(&second_dir)).expect("server folders");
    let first = Server::start(&first_dir, &recording_env);
    let payloads = fixtures().join("payloads").display().to_string();
    for (path, _) in &originals {
        let output = run_sim(&[
            "replay",
            &path.display().to_string(),
            "--target",
            &first.url(""),
            "--payloads",
            &payloads,
            "--user",
            ADMIN_USER,
            "--password",
            ADMIN_PASSWORD,
        ]);
        assert_eq!(output.status.code(), Some(0), "scripted session against the recording server:\n{}", show(&output));
    }

    // Each device's requests, in order, as scripted.
    let mut expected: std::collections::BTreeMap<String, Vec<Sent>> = Default::default();
    for (_, script) in &originals {
        for request in requests(script) {
            let sn = adms_sim::session::query_sn(&request.1).expect("every scripted request names its device");
            expected.entry(sn).or_default().push(request);
        }
    }
    let total: usize = expected.values().map(Vec::len).sum();
    // The writer works on its own thread: wait until it wrote every exchange.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(eventually("the capture writer wrote every exchange", async || {
        read_captured(&capture_dir).is_ok_and(|s| s.iter().map(|s| s.requests()).sum::<usize>() == total)
    }));
    let captured = captured_scripts(&capture_dir);
    for (sn, wanted) in &expected {
        let device: Vec<_> =
            captured.iter().filter(|s| s.device_sn().as_deref() == Some(sn)).flat_map(requests).collect();
        assert_eq!(device.len(), wanted.len(), "{sn}: captured requests");
        for (got, want) in device.iter().zip(wanted) {
            assert_eq!((got.0, &got.1), (want.0, &want.1), "{sn}: method and target as sent");
            // Byte for byte, binary bodies included.
            assert!(got.2 == want.2, "{sn}: {} {}: the captured body differs from the one sent", want.0, want.1);
        }
    }
    // Only device traffic, and no credential: neither the API account nor the session token it
    // got nor a header that does not belong on a device path.
    for file in files_under(&capture_dir) {
        let bytes = std::fs::read(&file).expect("read captured file");
        let text = String::from_utf8_lossy(&bytes);
        for secret in [ADMIN_PASSWORD, DEVICE_PATH_SECRET, "api-token-auth", "Authorization", "/iclock/api/"] {
            assert!(!text.contains(secret), "{} holds {secret:?}", file.display());
        }
    }

    // The captured sessions, unchanged, against a second fresh server: no difference.
    let second = Server::start(&second_dir, env);
    let output = run_sim(&[
        "replay",
        &capture_dir.display().to_string(),
        "--target",
        &second.url(""),
        "--concurrency",
        "4",
        "--speed",
        "0",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "captured sessions against a fresh server:\n{}", show(&output));
    let passed = format!("{0} of {0} sessions passed", captured.len());
    assert!(stdout.lines().any(|l| l == passed), "{stdout}");
}

#[test]
fn an_attendance_terminal_and_binary_bodies_round_trip_through_capture() {
    let push2 = std::fs::read_to_string(fixtures().join("sessions/push2-attendance.session")).expect("fixture");
    round_trip(
        &[("push2-attendance", push2), ("binary-bodies", binary_bodies_session())],
        &[("ADMS_TIME_ZONE", "+05:30")],
    );
}

/// Security PUSH: registry codes and session ids differ between servers, and the captured
/// expectations stop before them.
#[test]
fn an_access_panel_round_trips_through_capture() {
    let access = std::fs::read_to_string(fixtures().join("sessions/security-push-access.session")).expect("fixture");
    round_trip(&[("security-push-access", access)], &[("ADMS_TIME_ZONE", "+08:00")]);
}

/// A body over the capture queue's byte budget is not captured: the device gets its answer as
/// always, the drop is counted in `/metrics` before that answer leaves, and the exchanges
/// around it are still written.
#[tokio::test]
async fn a_full_capture_queue_drops_and_counts_instead_of_waiting() {
    let work = tempfile::tempdir().expect("temp dir");
    let capture_dir = work.path().join("captured");
    let server = Server::in_process(
        work.path(),
        &[("ADMS_CAPTURE_DIR", capture_dir.to_str().expect("path")), ("ADMS_CAPTURE_QUEUE_BYTES", "4096")],
    )
    .await;
    let device = Device { server: &server, sn: "SIMDROP001".into() };
    assert_eq!(device.handshake().await.status, 200);
    let line = std::fs::read(fixtures().join("payloads/attlog/one-line.txt")).expect("payload");
    let big: Vec<u8> = (0..200)
        .flat_map(|i| format!("{}\t2026-11-20 08:{:02}:{:02}\t0\t1\t0\t0\n", 1000 + i, i / 60, i % 60).into_bytes())
        .collect();
    assert!(big.len() > 4096 && !line.is_empty());
    let answer = device.attlog(&big).await;
    assert_eq!((answer.status, answer.text()), (200, "OK: 200".to_owned()), "the device is answered as always");
    let api = Api::login(&server).await;
    assert_eq!(metric(&api, "adms_capture_dropped_total").await, 1.0);
    assert_eq!(metric(&api, "adms_capture_write_failures_total").await, 0.0);
    // A later exchange is written: the one dropped before it never will be.
    assert_eq!(device.get("/iclock/getrequest?SN=SIMDROP001").await.status, 200);
    eventually("the poll after the dropped upload is captured", async || {
        read_captured(&capture_dir)
            .is_ok_and(|s| s.iter().any(|s| requests(s).iter().any(|r| r.1.contains("getrequest"))))
    })
    .await;
    let captured: Vec<_> = captured_scripts(&capture_dir).iter().flat_map(requests).map(|r| r.1).collect();
    assert_eq!(
        captured,
        ["/iclock/cdata?SN=SIMDROP001&options=all&pushver=2.4.1&language=69", "/iclock/getrequest?SN=SIMDROP001"]
    );
}

/// A device turned on at run time: with `[capture] all_devices = false` nothing is recorded
/// until `POST /api/v1/capture` names the device, and then only that device.
#[tokio::test]
async fn capture_of_one_device_is_turned_on_through_the_api() {
    let work = tempfile::tempdir().expect("temp dir");
    let capture_dir = work.path().join("captured");
    let server = Server::in_process(
        work.path(),
        &[("ADMS_CAPTURE_DIR", capture_dir.to_str().expect("path")), ("ADMS_CAPTURE_ALL_DEVICES", "false")],
    )
    .await;
    let wanted = Device { server: &server, sn: "SIMONE0001".into() };
    let other = Device { server: &server, sn: "SIMOTHER01".into() };
    assert_eq!(wanted.handshake().await.status, 200);
    let api = Api::login(&server).await;
    let (status, answer) =
        api.post_json("/api/v1/capture", &serde_json::json!({ "sn": "SIMONE0001", "for_secs": 600 })).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, serde_json::json!({ "sn": "SIMONE0001", "for_secs": 600 }));
    let (status, _) = api.post_json("/api/v1/capture", &serde_json::json!({ "sn": "SIMONE0001", "for_secs": 0 })).await;
    assert_eq!(status, 400);
    assert_eq!(other.handshake().await.status, 200);
    assert_eq!(wanted.get("/iclock/getrequest?SN=SIMONE0001").await.status, 200);
    eventually("the wanted device's poll is captured", async || {
        read_captured(&capture_dir).is_ok_and(|s| s.iter().any(|s| s.device_sn().as_deref() == Some("SIMONE0001")))
    })
    .await;
    // Its handshake came before capture was on; the other device is never recorded.
    let captured: Vec<_> = captured_scripts(&capture_dir).iter().flat_map(requests).map(|r| r.1).collect();
    assert_eq!(captured, ["/iclock/getrequest?SN=SIMONE0001"]);
    assert!(!capture_dir.join("SIMOTHER01").exists());
}

/// Without a capture folder the API says so.
#[tokio::test]
async fn capture_without_a_folder_is_a_conflict() {
    let work = tempfile::tempdir().expect("temp dir");
    let server = Server::in_process(work.path(), &[]).await;
    let api = Api::login(&server).await;
    let (status, answer) = api.post_json("/api/v1/capture", &serde_json::json!({ "sn": "X1", "for_secs": 60 })).await;
    assert_eq!(status, 409, "{answer}");
}

/// A counter's value from `/metrics` (0 when absent).
async fn metric(api: &Api, name: &str) -> f64 {
    let text = api.metrics_of(&api.server_addr).await;
    crate::common::sum_samples(&text, |line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ')))
        .unwrap_or(0.0)
}

/// Files rotate by size (here after every exchange) and the oldest are deleted to keep the
/// folder under its cap; the newest exchange is always there.
#[tokio::test]
async fn captured_files_rotate_and_the_folder_stays_under_its_cap() {
    crate::sqlite_run_only!("the capture writer's rotation does not depend on the engine");
    let work = tempfile::tempdir().expect("temp dir");
    let capture_dir = work.path().join("captured");
    let server = Server::in_process(
        work.path(),
        &[
            ("ADMS_CAPTURE_DIR", capture_dir.to_str().expect("path")),
            ("ADMS_CAPTURE_MAX_FILE_BYTES", "1"),
            ("ADMS_CAPTURE_MAX_TOTAL_BYTES", "2500"),
        ],
    )
    .await;
    let device = Device { server: &server, sn: "SIMROTATE1".into() };
    for i in 0..12 {
        assert_eq!(device.get(&format!("/iclock/getrequest?SN=SIMROTATE1&n={i}")).await.status, 200);
    }
    eventually("the last poll is captured", async || {
        read_captured(&capture_dir).is_ok_and(|s| s.iter().flat_map(requests).any(|r| r.1.ends_with("&n=11")))
    })
    .await;
    let sessions = captured_scripts(&capture_dir);
    assert!(sessions.len() > 1, "one file per exchange, some deleted: {}", sessions.len());
    assert!(sessions.iter().all(|s| s.requests() == 1), "a file past its size holds one exchange");
    let total: u64 = files_under(&capture_dir).iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    assert!(total <= 2500, "{total} bytes on disk");
    let kept: Vec<String> = sessions.iter().flat_map(requests).map(|r| r.1).collect();
    assert!(!kept.iter().any(|t| t.ends_with("&n=0")), "the oldest was deleted: {kept:?}");
}

/// `adms-bridge capture --sn SN --for 10m` beside a running server turns capture on for that
/// device through the API, with an `admin` integration key; a key without the scope is refused.
#[test]
fn the_capture_command_turns_one_device_on_in_a_running_server() {
    let work = tempfile::tempdir().expect("temp dir");
    let capture_dir = work.path().join("captured");
    let server = Server::start(
        work.path(),
        &[("ADMS_CAPTURE_DIR", capture_dir.to_str().expect("path")), ("ADMS_CAPTURE_ALL_DEVICES", "false")],
    );
    let cli = |args: &[&str]| server.db().command().args(args).env("RUST_LOG", "warn").output().expect("adms-bridge");
    let key = |scope: &str| {
        let output = cli(&["token", "create", "--name", scope, "--scope", scope]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let (admin, reader) = (key("admin"), key("read"));
    let url = server.url("");
    let refused = cli(&["capture", "--sn", "SIMCLI0001", "--for", "10m", "--server", &url, "--token", &reader]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("403"), "{}", String::from_utf8_lossy(&refused.stderr));
    let output = cli(&["capture", "--sn", "SIMCLI0001", "--for", "10m", "--server", &url, "--token", &admin]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("capturing SIMCLI0001 for 10 min"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let device = Device { server: &server, sn: "SIMCLI0001".into() };
        assert_eq!(device.handshake().await.status, 200);
        eventually("the device's handshake is captured", async || {
            read_captured(&capture_dir).is_ok_and(|s| s.iter().any(|s| s.device_sn().as_deref() == Some("SIMCLI0001")))
        })
        .await;
    });
}

/// Past the cap, the file of a device that went quiet is closed and deleted for a device still
/// talking; when only the writing device's own open file is left, its exchanges are not written
/// and counted as write failures (the cap holds).
#[tokio::test]
async fn at_the_cap_a_quiet_devices_file_goes_first() {
    crate::sqlite_run_only!("the capture writer's rotation does not depend on the engine");
    let work = tempfile::tempdir().expect("temp dir");
    let capture_dir = work.path().join("captured");
    let server = Server::in_process(
        work.path(),
        &[("ADMS_CAPTURE_DIR", capture_dir.to_str().expect("path")), ("ADMS_CAPTURE_MAX_TOTAL_BYTES", "2000")],
    )
    .await;
    let quiet = Device { server: &server, sn: "SIMQUIET01".into() };
    let busy = Device { server: &server, sn: "SIMBUSY001".into() };
    assert_eq!(quiet.get("/iclock/getrequest?SN=SIMQUIET01").await.status, 200);
    eventually("the quiet device's poll is captured", async || capture_dir.join("SIMQUIET01").exists()).await;
    let api = Api::login(&server).await;
    for i in 0..20 {
        assert_eq!(busy.get(&format!("/iclock/getrequest?SN=SIMBUSY001&n={i}")).await.status, 200);
    }
    eventually("the busy device's exchanges reach the cap", async || {
        metric(&api, "adms_capture_write_failures_total").await > 0.0
    })
    .await;
    let quiet_files = files_under(&capture_dir.join("SIMQUIET01"));
    assert!(quiet_files.is_empty(), "the quiet device's file was deleted: {quiet_files:?}");
    let total: u64 = files_under(&capture_dir).iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    assert!(total <= 2000, "{total} bytes on disk");
}
