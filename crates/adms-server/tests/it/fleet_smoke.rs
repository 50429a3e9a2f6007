//! `adms-sim fleet` against the real `adms-bridge` process on the suite's engine: a few hundred
//! terminals for a few seconds (attendance units, some going offline and dumping a backlog,
//! access panels), new serial numbers left pending by the server and approved through the API
//! at the end, then every acknowledged punch checked through the transactions API; a command
//! queued by an operator during the run is run and answered by its terminal. Only outcomes are
//! asserted, never a throughput figure.

use crate::common;

use std::process::{Command, Stdio};

use common::{ADMIN_PASSWORD, ADMIN_USER, Api, Server, eventually};

use crate::replay_binary::adms_sim_binary;

#[test]
fn a_fleet_smoke_run_stores_every_acknowledged_punch_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "pending")]);
    let output = Command::new(adms_sim_binary())
        .args([
            "fleet",
            "--devices",
            "300",
            "--target",
            &server.url(""),
            "--duration",
            "8s",
            "--punch-every",
            "1s",
            "--poll-every",
            "1s",
            "--offline-share",
            "0.2",
            "--access-share",
            "0.2",
            "--approve",
            "--user",
            ADMIN_USER,
            "--password",
            ADMIN_PASSWORD,
            "--json",
        ])
        .env_remove("ADMS_SIM_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run adms-sim fleet");
    // While it runs, an operator asks the first terminal for its INFO: it is run and answered
    // on /iclock/devicecmd at the terminal's next poll.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (api, command_id) = rt.block_on(async {
        let api = Api::login(&server).await;
        let mut id = None;
        eventually("the first terminal is registered and its command queued", async || {
            let (status, answer) = api
                .post_json("/api/v1/devices/SIM000000/commands", &serde_json::json!({ "command": { "type": "info" } }))
                .await;
            id = answer["id"].as_i64().filter(|_| status == 201);
            id.is_some()
        })
        .await;
        (api, id.expect("a command id"))
    });
    let output = output.wait_with_output().expect("wait for adms-sim fleet");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let shown = format!("exit {:?}\n{stdout}\n{}", output.status.code(), String::from_utf8_lossy(&output.stderr));
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {shown}"));
    assert_eq!(output.status.code(), Some(0), "{shown}");
    assert_eq!(summary["errors"], serde_json::json!({}), "{shown}");
    assert_eq!((summary["devices_up"].as_u64(), summary["startup_retries"].as_u64()), (Some(300), Some(0)), "{shown}");
    let verification = &summary["verification"];
    assert_eq!(verification["passed"], true, "{shown}");
    let acknowledged = summary["punches"]["acknowledged"].as_u64().expect("acknowledged");
    assert!(acknowledged > 0, "{shown}");
    assert_eq!(verification["acknowledged"].as_u64(), Some(acknowledged), "{shown}");
    assert_eq!(verification["missing_count"], 0, "{shown}");
    assert_eq!(verification["duplicated_count"], 0, "{shown}");
    // The cycle was lived: every kind of request the model makes went out.
    for kind in
        ["handshake", "options", "operlog", "poll", "attlog", "backlog", "devicecmd", "registry", "push", "rtlog"]
    {
        let requests = summary["requests"][kind]["requests"].as_u64().unwrap_or(0);
        assert!(requests > 0, "no {kind} request: {shown}");
    }
    let command = rt.block_on(api.get(&format!("/api/v1/commands/{command_id}")));
    assert_eq!((command["state"].as_str(), command["return_code"].as_i64()), (Some("succeeded"), Some(0)), "{command}");
}

/// The same fleet with `--keep-alive`: each terminal keeps its connection between requests (the
/// server keeps it open and answers on it), every punch is still stored once, and far fewer
/// connections are opened than requests sent.
#[test]
fn a_keep_alive_fleet_reuses_its_connections_and_loses_nothing() {
    crate::sqlite_run_only!("the simulator's connection handling does not depend on the engine");
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), &[]);
    let output = Command::new(adms_sim_binary())
        .args(["fleet", "--devices", "100", "--target", &server.url(""), "--duration", "3s"])
        .args(["--punch-every", "500ms", "--poll-every", "500ms", "--keep-alive", "--json"])
        .args(["--user", ADMIN_USER, "--password", ADMIN_PASSWORD])
        .env_remove("ADMS_SIM_API_KEY")
        .output()
        .expect("run adms-sim fleet");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let shown = format!("exit {:?}\n{stdout}\n{}", output.status.code(), String::from_utf8_lossy(&output.stderr));
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {shown}"));
    assert_eq!(output.status.code(), Some(0), "{shown}");
    assert_eq!(summary["errors"], serde_json::json!({}), "{shown}");
    assert_eq!(summary["verification"]["passed"], true, "{shown}");
    let requests: u64 =
        summary["requests"].as_object().expect("kinds").values().filter_map(|k| k["requests"].as_u64()).sum();
    let connections = summary["connections"].as_u64().expect("connections");
    assert!(connections >= 100, "every terminal connects at least once: {shown}");
    assert!(connections * 2 < requests, "{connections} connections for {requests} requests: {shown}");
}

/// Terminals that find no server start over after their error delay, as firmware does: a fleet
/// started before its server (the port refuses connections until the server listens there)
/// comes up once the server does, and loses nothing.
#[test]
fn terminals_that_find_no_server_try_again_after_their_error_delay() {
    crate::sqlite_run_only!("the simulator's retries do not depend on the engine");
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = crate::common::closed_loopback_addr().to_string();
    let mut fleet = Command::new(adms_sim_binary())
        .args(["fleet", "--devices", "20", "--target", &format!("http://{listen}"), "--duration", "8s"])
        .args(["--ramp", "100ms", "--error-delay", "1s", "--punch-every", "500ms", "--poll-every", "500ms"])
        .args(["--sources", "1", "--progress", "--json", "--user", ADMIN_USER, "--password", ADMIN_PASSWORD])
        .env_remove("ADMS_SIM_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run adms-sim fleet");
    // The progress line counts errors: wait for the first refused start-up before the server
    // starts listening.
    let mut progress = fleet.stderr.take().expect("stderr");
    let (refused, wait_refused) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut told = false;
        while let Ok(n) = std::io::Read::read(&mut progress, &mut chunk) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&seen);
            let errors = text.rsplit('\r').find_map(|line| {
                line.trim().strip_suffix("errors").and_then(|l| l.trim().rsplit(' ').next()?.parse::<u64>().ok())
            });
            if !told && errors.is_some_and(|n| n > 0) {
                told = true;
                let _ = refused.send(());
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    wait_refused.recv_timeout(std::time::Duration::from_secs(30)).expect("a start-up refused");
    let _server = Server::start_on(dir.path(), &[], &listen);
    let output = fleet.wait_with_output().expect("wait for adms-sim fleet");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let shown = format!("exit {:?}\n{stdout}\n{}", output.status.code(), reader.join().expect("stderr reader"));
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {shown}"));
    assert_eq!(summary["devices_up"].as_u64(), Some(20), "{shown}");
    assert!(summary["startup_retries"].as_u64().is_some_and(|n| n >= 1), "{shown}");
    assert_eq!(summary["verification"]["passed"], true, "{shown}");
    assert!(summary["punches"]["acknowledged"].as_u64().is_some_and(|n| n > 0), "{shown}");
}
