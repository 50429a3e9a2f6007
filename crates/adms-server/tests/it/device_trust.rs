//! The device trust model, tried as an attacker on the same network would: with nothing but
//! HTTP and invented serial numbers. These suites run with the product's defaults (the harness
//! approves devices for the other suites; here that is overridden).

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Api, Device, RawResponse, Server, parse_response};

/// The product's defaults for what the harness loosens.
const DEFAULTS: [(&str, &str); 2] =
    [("ADMS_UNKNOWN_DEVICES", "pending"), ("ADMS_DEVICE_REGISTRATIONS_PER_MINUTE", "30")];

fn with_defaults<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env: Vec<(&str, &str)> = DEFAULTS.to_vec();
    env.extend_from_slice(extra);
    env
}

/// The `C:<id>:<command>` lines of a poll reply.
fn command_lines(reply: &str) -> Vec<(i64, String)> {
    reply
        .lines()
        .filter_map(|l| l.strip_prefix("C:"))
        .filter_map(|l| l.split_once(':'))
        .map(|(id, cmd)| (id.parse().expect("command id"), cmd.to_owned()))
        .collect()
}

async fn poll(device: &Device<'_>) -> Vec<(i64, String)> {
    command_lines(&device.get(&format!("/iclock/getrequest?SN={}", device.sn)).await.text())
}

/// Polls and answers every command with success, until a poll hands out nothing.
async fn drain(device: &Device<'_>) {
    for _ in 0..20 {
        let lines = poll(device).await;
        if lines.is_empty() {
            return;
        }
        let results: String = lines.iter().map(|(id, _)| format!("ID={id}&Return=0&CMD=DATA\n")).collect();
        device.post(&format!("/iclock/devicecmd?SN={}", device.sn), results.as_bytes()).await;
    }
    panic!("{} kept receiving commands", device.sn);
}

async fn create(api: &Api, path: &str, body: Value) -> Value {
    let (status, answer) = api.post_json(path, &body).await;
    assert!(status == 201 || status == 200, "POST {path}: {status} {answer}");
    answer
}

async fn terminal_id(api: &Api, sn: &str) -> i64 {
    api.get(&format!("/iclock/api/terminals/?sn={sn}")).await["data"][0]["id"].as_i64().expect("terminal id")
}

fn employee_codes(list: &Value) -> Vec<String> {
    let mut codes: Vec<String> =
        list["data"].as_array().unwrap().iter().map(|e| e["emp_code"].as_str().unwrap().to_owned()).collect();
    codes.sort();
    codes
}

/// A real terminal, approved by the operator and assigned to area "HQ"; an ERP employee in HQ and
/// one in area 1 ("Not Authorized"), both with device passwords and cards. Returns the HQ area id.
async fn site(server: &Server, api: &Api, real: &Device<'_>) -> i64 {
    real.handshake().await;
    let (status, answer) =
        api.patch_json(&format!("/api/v1/devices/{}", real.sn), &json!({ "approval": "approved" })).await;
    assert_eq!(status, 200, "{answer}");
    let hq = create(api, "/personnel/api/areas/", json!({ "area_code": "HQ", "area_name": "HQ" })).await["id"]
        .as_i64()
        .unwrap();
    let id = terminal_id(api, &real.sn).await;
    assert_eq!(api.patch_json(&format!("/iclock/api/terminals/{id}/"), &json!({ "area": hq })).await.0, 200);
    create(
        api,
        "/personnel/api/employees/",
        json!({ "emp_code": "0042", "first_name": "Ann", "last_name": "Lee", "department": 1, "area": [hq],
                "card_no": "123456", "device_password": "4321" }),
    )
    .await;
    create(
        api,
        "/personnel/api/employees/",
        json!({ "emp_code": "0007", "first_name": "Bo", "department": 1, "area": [1],
                "card_no": "777777", "device_password": "7777" }),
    )
    .await;
    drain(real).await;
    let _ = server;
    hq
}

/// What a rogue host posts: a new super-admin with a known password and card, a promotion of an
/// existing employee, and its own fingerprint under that employee's PIN.
const ROGUE_OPERLOG: &[u8] =
    b"USER PIN=666\tName=Mallory\tPri=14\tPasswd=1234\tCard=999999\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n\
USER PIN=0042\tName=Mallory\tPri=14\tPasswd=1234\tCard=999998\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n\
FP PIN=0042\tFID=6\tSize=8\tValid=1\tTMP=ocoAAA==\n";

#[tokio::test]
async fn a_rogue_serial_number_cannot_change_the_roster_or_receive_credentials() {
    let settings: [(&str, Vec<(&str, &str)>); 4] = [
        ("defaults (pending, observe)", vec![]),
        ("unknown_devices = auto", vec![("ADMS_UNKNOWN_DEVICES", "auto")]),
        ("pending with device_users = adopt_all", vec![("ADMS_DEVICE_USERS", "adopt_all")]),
        (
            "auto with device_users = adopt_new",
            vec![("ADMS_UNKNOWN_DEVICES", "auto"), ("ADMS_DEVICE_USERS", "adopt_new")],
        ),
    ];
    for (setting, extra) in settings {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path(), &with_defaults(&extra));
        let api = Api::login(&server).await;
        let real = Device { server: &server, sn: "REAL0001".into() };
        site(&server, &api, &real).await;
        let before = api.get("/personnel/api/employees/").await;

        let rogue = Device { server: &server, sn: "ROGUE001".into() };
        rogue.handshake().await;
        let first = poll(&rogue).await;
        let answer = rogue.post("/iclock/cdata?SN=ROGUE001&table=OPERLOG&Stamp=1", ROGUE_OPERLOG).await;
        assert_eq!(answer.status, 200, "{setting}: the device is answered, its data kept");

        // The roster is unchanged: no new employee, no promotion, no new card or name. Only
        // where the operator both approves everyone and adopts new users does the rogue's new
        // PIN become an employee, and then a normal user in area 1, which no terminal receives.
        let after = api.get("/personnel/api/employees/").await;
        let without = |list: &Value, pin: &str| -> Vec<Value> {
            list["data"].as_array().unwrap().iter().filter(|e| e["emp_code"] != pin).cloned().collect()
        };
        if extra.contains(&("ADMS_DEVICE_USERS", "adopt_new")) {
            assert_eq!(employee_codes(&after), ["0007", "0042", "666"], "{setting}: {after}");
            let mallory = after["data"].as_array().unwrap().iter().find(|e| e["emp_code"] == "666").unwrap();
            assert_eq!((&mallory["dev_privilege"], &mallory["area"][0]["id"]), (&json!(0), &json!(1)), "{setting}");
        } else {
            assert_eq!(employee_codes(&after), ["0007", "0042"], "{setting}: {after}");
        }
        assert_eq!(without(&before, "666"), without(&after, "666"), "{setting}");

        // Nothing reaches the real terminal, not even after an explicit resync of the employee
        // whose PIN the rogue enrolled a finger under, nor after a restart (the reconcile pass).
        let ann = after["data"].as_array().unwrap().iter().find(|e| e["emp_code"] == "0042").unwrap()["id"].clone();
        let (status, _) =
            api.post_json("/personnel/api/employees/resync_to_device/", &json!({ "employees": [ann] })).await;
        assert_eq!(status, 200);
        assert_eq!(poll(&real).await, Vec::new(), "{setting}: the real terminal receives nothing of the rogue's");
        drop(api);
        let mut server = server;
        server.stop();
        let server = Server::start(dir.path(), &with_defaults(&extra));
        let real = Device { server: &server, sn: "REAL0001".into() };
        let rogue = Device { server: &server, sn: "ROGUE001".into() };
        assert_eq!(poll(&real).await, Vec::new(), "{setting}: nothing after the reconcile at start");

        // The rogue received no credentials: no user, card, password or template of anyone.
        let later = poll(&rogue).await;
        for (_, line) in first.iter().chain(later.iter()) {
            assert!(
                !line.contains("USERINFO") && !line.contains("FINGERTMP") && !line.contains("BIODATA"),
                "{setting}: the rogue was sent {line:?}"
            );
        }
        // What it sent is kept per device and visible to the operator.
        let api = Api::login(&server).await;
        let commands = api.get("/api/v1/devices/ROGUE001/commands").await;
        assert_eq!(commands["count"], 0, "{setting}: nothing queued for the rogue: {commands}");
    }
}

#[tokio::test]
async fn new_serial_numbers_start_pending_and_auto_warns_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &with_defaults(&[])).await;
    let api = Api::login(&server).await;
    let device = Device { server: &server, sn: "NEW00001".into() };
    device.handshake().await;
    assert_eq!(device.attlog(b"1\t2026-11-20 08:00:00\t0\t1\t0\t0\t0\n").await.text(), "OK: 1");
    let terminal = api.get("/iclock/api/terminals/?sn=NEW00001").await;
    assert_eq!(terminal["count"], 1, "a pending terminal is listed: {terminal}");
    let (_, record) = api.patch_json("/api/v1/devices/NEW00001", &json!({})).await;
    assert_eq!(record["approval"], "pending", "{record}");
    assert_eq!(api.transactions("").await.len(), 0, "a pending device's punches are held");
    assert_eq!(api.patch_json("/api/v1/devices/NEW00001", &json!({ "approval": "approved" })).await.0, 200);
    assert_eq!(api.transactions("").await.len(), 1, "released on approval");
}

#[test]
fn auto_approval_is_warned_about_at_start() {
    use std::io::{BufRead, BufReader, Read};
    let dir = tempfile::tempdir().unwrap();
    let mut child = crate::common::Database::of(dir.path())
        .command()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("ADMS_UNKNOWN_DEVICES", "auto")
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .env_remove("ADMS_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn adms-bridge");
    // The warning is logged while the server is built, before it says where it listens.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    if !line.starts_with("listening on") {
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        panic!("did not start ({line:?}): {stderr}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains("unknown_devices = \"auto\"") && stderr.contains("WARN"), "{stderr}");
}

#[tokio::test]
async fn trust_rules_approve_only_devices_that_meet_all_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(
        dir.path(),
        &with_defaults(&[("ADMS_DEVICE_TRUST_SNS", "CKJF*"), ("ADMS_DEVICE_TRUST_KEYS", "pairing-7f3a")]),
    )
    .await;
    let api = Api::login(&server).await;
    let approval = |sn: &'static str| {
        let api = &api;
        async move {
            let (status, record) = api.patch_json(&format!("/api/v1/devices/{sn}"), &json!({})).await;
            assert_eq!(status, 200, "{sn}: {record}");
            record["approval"].as_str().unwrap().to_owned()
        }
    };
    let get = |sn: &str, extra: &str| {
        let device = Device { server: &server, sn: sn.to_owned() };
        let path = format!("/iclock/cdata?SN={sn}&options=all&pushver=2.4.1{extra}");
        async move { device.get(&path).await.status }
    };
    assert_eq!(get("CKJF0001", "&key=pairing-7f3a").await, 200);
    assert_eq!(get("CKJF0002", "&pushcommkey=wrong").await, 200);
    assert_eq!(get("XXXX0003", "&key=pairing-7f3a").await, 200);
    assert_eq!(approval("CKJF0001").await, "approved", "pattern and key");
    assert_eq!(approval("CKJF0002").await, "pending", "wrong key");
    assert_eq!(approval("XXXX0003").await, "pending", "SN outside the patterns");
    // A key presented later does not approve a device that is already known.
    assert_eq!(get("CKJF0002", "&key=pairing-7f3a").await, 200);
    assert_eq!(approval("CKJF0002").await, "pending");
}

/// Sends a raw request from a chosen loopback address (all of 127.0.0.0/8 is local on Linux).
async fn raw_request_from(local: &str, server: &Server, head: &str, body: &[u8]) -> RawResponse {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(server.addr.parse().unwrap()).await.expect("connect");
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(format!("\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    stream.write_all(&request).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    parse_response(&out)
}

async fn handshake_from(local: &str, server: &Server, sn: &str) -> RawResponse {
    let head = format!("GET /iclock/cdata?SN={sn}&options=all&pushver=2.4.1 HTTP/1.1\r\nHost: {}", server.addr);
    raw_request_from(local, server, &head, b"").await
}

#[tokio::test]
async fn device_requests_from_outside_device_networks_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &with_defaults(&[("ADMS_DEVICE_NETWORKS", "127.0.0.2/32")])).await;
    let api = Api::login(&server).await;
    let refused = handshake_from("127.0.0.1", &server, "OUTSIDE1").await;
    assert_eq!((refused.status, refused.text().as_str()), (403, "ERROR: device address not allowed"));
    let head = format!("POST /iclock/cdata?SN=OUTSIDE1&table=ATTLOG HTTP/1.1\r\nHost: {}", server.addr);
    let upload = raw_request_from("127.0.0.1", &server, &head, b"1\t2026-11-20 08:00:00\t0\t1\n").await;
    assert_eq!(upload.status, 403);
    assert_eq!(handshake_from("127.0.0.2", &server, "INSIDE01").await.status, 200);
    let terminals = api.get("/iclock/api/terminals/").await;
    let sns: Vec<&str> = terminals["data"].as_array().unwrap().iter().map(|t| t["sn"].as_str().unwrap()).collect();
    assert_eq!(sns, ["INSIDE01"], "the refused address registered nothing");
    let (_, rejected) = api.get_status("/api/v1/rejected-lines").await;
    assert_eq!(rejected["count"], 0, "{rejected}");
}

#[tokio::test]
async fn new_serial_numbers_per_address_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &with_defaults(&[("ADMS_DEVICE_REGISTRATIONS_PER_MINUTE", "3")])).await;
    for n in 0..3 {
        assert_eq!(handshake_from("127.0.0.1", &server, &format!("BURST{n:03}")).await.status, 200);
    }
    let refused = handshake_from("127.0.0.1", &server, "BURST003").await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.header("Retry-After"), Some("60"));
    // Known devices are not limited; another address has its own budget.
    assert_eq!(handshake_from("127.0.0.1", &server, "BURST000").await.status, 200);
    assert_eq!(handshake_from("127.0.0.3", &server, "BURST003").await.status, 200);
    let api = Api::login(&server).await;
    assert_eq!(api.get("/iclock/api/terminals/").await["count"], 4);
}

/// An approved terminal assigned to an area, under each `device_users` policy.
#[tokio::test]
async fn an_approved_terminal_adopts_users_by_policy_and_never_makes_an_administrator() {
    for (policy, extra) in [
        ("observe", vec![]),
        ("adopt_new", vec![("ADMS_DEVICE_USERS", "adopt_new")]),
        ("adopt_all", vec![("ADMS_DEVICE_USERS", "adopt_all")]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::in_process(dir.path(), &with_defaults(&extra)).await;
        let api = Api::login(&server).await;
        let real = Device { server: &server, sn: "REAL0001".into() };
        let hq = site(&server, &api, &real).await;
        let second = Device { server: &server, sn: "REAL0002".into() };
        second.handshake().await;
        assert_eq!(api.patch_json("/api/v1/devices/REAL0002", &json!({ "approval": "approved" })).await.0, 200);
        let id = terminal_id(&api, "REAL0002").await;
        assert_eq!(api.patch_json(&format!("/iclock/api/terminals/{id}/"), &json!({ "area": hq })).await.0, 200);
        drain(&second).await;
        // Enrolled at the first terminal: a new admin-level user with a finger, a name with a
        // right-to-left override, and a changed name for the ERP's employee.
        let body = "USER PIN=501\tName=Carla\tPri=14\tPasswd=55\tCard=501501\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n\
                    FP PIN=501\tFID=1\tSize=8\tValid=1\tTMP=ocoAAA==\n\
                    USER PIN=502\tName=\u{202E}nimda\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n\
                    USER PIN=0042\tName=Ann Renamed\tPri=0\tPasswd=4321\tCard=123456\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n";
        let answer = real.post("/iclock/cdata?SN=REAL0001&table=OPERLOG&Stamp=2", body.as_bytes()).await;
        assert_eq!(answer.text(), "OK: 3", "{policy}: the bidi line is kept raw, not counted");
        let (_, rejected) = api.get_status("/api/v1/rejected-lines?sn=REAL0001").await;
        assert_eq!(rejected["count"], 1, "{policy}: {rejected}");
        assert_eq!(rejected["data"][0]["reason"], "unsafe_text", "{policy}: {rejected}");

        let employees = api.get("/personnel/api/employees/").await;
        let codes = employee_codes(&employees);
        let carla = employees["data"].as_array().unwrap().iter().find(|e| e["emp_code"] == "501").cloned();
        match policy {
            "observe" => assert_eq!(codes, ["0007", "0042"], "{policy}"),
            _ => {
                assert_eq!(codes, ["0007", "0042", "501"], "{policy}");
                let carla = carla.as_ref().unwrap();
                assert_eq!(carla["dev_privilege"], 0, "{policy}: adopted as a normal user: {carla}");
            }
        }
        let ann = employees["data"].as_array().unwrap().iter().find(|e| e["emp_code"] == "0042").unwrap().clone();
        assert_eq!(ann["first_name"], "Ann", "{policy}: the ERP's employee is never overwritten");

        // What reaches the second terminal of the area: Carla (a normal user) and her finger
        // when adopted; nothing under observe.
        let mut api_sync = Vec::new();
        if let Some(carla) = &carla {
            api_sync.push(carla["id"].clone());
        }
        if !api_sync.is_empty() {
            let (status, _) =
                api.post_json("/personnel/api/employees/resync_to_device/", &json!({ "employees": api_sync })).await;
            assert_eq!(status, 200);
        }
        let lines: Vec<String> = poll(&second).await.into_iter().map(|(_, l)| l).collect();
        match policy {
            "observe" => assert_eq!(lines, Vec::<String>::new(), "{policy}"),
            _ => {
                assert_eq!(lines.len(), 2, "{policy}: {lines:?}");
                assert!(
                    lines[0].starts_with("DATA UPDATE USERINFO PIN=501\tName=Carla\tPri=0\t"),
                    "{policy}: {lines:?}"
                );
                assert!(lines[1].starts_with("DATA UPDATE FINGERTMP PIN=501\tFID=1\t"), "{policy}: {lines:?}");
            }
        }
        assert!(!lines.iter().any(|l| l.contains("PIN=502")), "{policy}: the bidi user goes nowhere");
    }
}

#[tokio::test]
async fn punches_outside_the_plausible_window_are_kept_as_rejected_lines() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let device = Device { server: &server, sn: "CLOCK001".into() };
    device.handshake().await;
    let body = b"1\t1999-12-31 23:59:59\t0\t1\t0\t0\t0\n\
                 2\t2000-01-01 00:00:00\t0\t1\t0\t0\t0\n\
                 3\t9999-12-31 23:59:59\t0\t1\t0\t0\t0\n\
                 4\t2026-11-20 08:00:00\t0\t1\t0\t0\t0\n";
    assert_eq!(device.attlog(body).await.text(), "OK: 2");
    let pins: Vec<String> =
        api.transactions("").await.iter().map(|t| t["emp_code"].as_str().unwrap().to_owned()).collect();
    assert_eq!(pins, ["2", "4"]);
    let (_, rejected) = api.get_status("/api/v1/rejected-lines?sn=CLOCK001").await;
    let reasons: Vec<&str> =
        rejected["data"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["implausible_time", "implausible_time"], "{rejected}");
    // Re-sending the same body adds nothing and is still answered.
    assert_eq!(device.attlog(body).await.text(), "OK: 2");
    assert_eq!(api.transactions("").await.len(), 2);
}

/// `adms-bridge device approve` run beside a server: the server's cached view of the device
/// must not keep treating it as pending (its users are adopted from its next upload on).
#[tokio::test]
async fn an_approval_from_the_cli_reaches_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &with_defaults(&[("ADMS_DEVICE_USERS", "adopt_new")]));
    let api = Api::login(&server).await;
    let device = Device { server: &server, sn: "CLIAPP01".into() };
    assert_eq!(device.handshake().await.status, 200);
    let user = |pin: &str| {
        format!("USER PIN={pin}\tName=Dee\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n")
    };
    let path = "/iclock/cdata?SN=CLIAPP01&table=OPERLOG&Stamp=1";
    assert_eq!(device.post(path, user("601").as_bytes()).await.text(), "OK: 1");
    assert!(!employee_codes(&api.get("/personnel/api/employees/").await).contains(&"601".to_owned()), "pending");

    let output = server.db().command().args(["device", "approve", "CLIAPP01"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    assert_eq!(device.post(path, user("602").as_bytes()).await.text(), "OK: 1");
    let codes = employee_codes(&api.get("/personnel/api/employees/").await);
    assert!(codes.contains(&"602".to_owned()), "adopted once approved: {codes:?}");
    assert!(!codes.contains(&"601".to_owned()), "what it sent while pending stays per device: {codes:?}");
}
