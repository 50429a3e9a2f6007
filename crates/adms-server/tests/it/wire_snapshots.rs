//! Snapshots (insta) of what the server says to the outside world, driven over HTTP against the
//! application served in process (the same snapshots hold for the binary): the device replies (`/iclock/*`), the ZKBio Time records and list envelopes
//! (`/iclock/api/transactions/`, `/personnel/api/employees/`), every webhook body type with its
//! Standard Webhooks headers, and `/api/openapi.json`. What varies between runs or engines
//! (database ids, receive and creation times, the server's address, signatures) is redacted;
//! everything else, key order of the webhook bodies included, is compared as sent. The files are
//! in `snapshots/` beside this module; `INSTA_UPDATE=always` (or `cargo insta review`) updates
//! them after an intended change, and CI (`CI=true`) fails on any difference.

use crate::common;

use adms_server::ordered_json::Json;
use common::webhooks::{Received, Receiver, SECRET, attlog_lines};
use common::{Api, Device, RawResponse, Server};
use insta::internals::Content;
use serde_json::json;

/// JSON as it was sent: objects keep the order of their keys (`serde_json::Value` sorts them,
/// and the order of a webhook body's fields is part of its canonical bytes).
fn parse_json(bytes: &[u8]) -> Json {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// Settings for one test: the server's address redacted wherever a string holds it (the `next`
/// and `previous` links of a page), the snapshot files without the module prefix.
fn settings(server: &Server) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    let addr = server.addr.clone();
    settings.add_redaction(
        ".**",
        insta::dynamic_redaction(move |value, _path| match value.as_str() {
            Some(text) if text.contains(&addr) => Content::from(text.replace(&addr, "[addr]")),
            _ => value,
        }),
    );
    settings
}

/// A device reply as text: status line, the headers that are part of the protocol (not `Date`,
/// not the request id), and the body.
fn reply_text(reply: &RawResponse) -> String {
    let mut text = format!("HTTP {}\n", reply.status);
    for name in ["content-type", "content-length"] {
        if let Some(value) = reply.header(name) {
            text.push_str(&format!("{name}: {value}\n"));
        }
    }
    text.push('\n');
    text.push_str(&reply.text());
    text
}

/// A received webhook as one document: the Standard Webhooks headers (the timestamp and the
/// signature redacted, after the signature was checked) and the body as sent.
fn webhook(received: &Received) -> Json {
    let verifier = standardwebhooks::Webhook::new(SECRET).expect("secret");
    let expected = verifier.sign(&received.id, received.timestamp, &received.body).expect("sign");
    assert!(
        received.signature.split(' ').any(|s| s == expected),
        "the signature of {} does not verify: {}",
        received.id,
        received.signature
    );
    let body = parse_json(&received.body);
    Json::Object(vec![
        ("path".into(), Json::String(received.path.clone())),
        ("webhook_id".into(), Json::String(received.id.clone())),
        ("webhook_timestamp".into(), Json::Number(received.timestamp.into())),
        ("webhook_signature".into(), Json::String(received.signature.clone())),
        ("body".into(), body),
    ])
}

/// Starts a server whose `ADMS_WEBHOOK_URL` endpoint is `receiver` (every event type), on the
/// test clock, with a 30 s offline threshold.
async fn start_with_webhook(dir: &std::path::Path, receiver: &Receiver) -> Server {
    let url = receiver.url();
    Server::in_process(
        dir,
        &[
            ("ADMS_WEBHOOK_URL", url.as_str()),
            ("ADMS_WEBHOOK_SECRET", SECRET),
            ("ADMS_TEST_CLOCK", "true"),
            ("ADMS_OFFLINE_AFTER_SECS", "30"),
        ],
    )
    .await
}

/// The redactions every webhook snapshot shares: the delivery's timestamp and signature.
macro_rules! assert_webhook_snapshot {
    ($name:expr, $value:expr, { $($selector:expr => $replacement:expr),* $(,)? }) => {
        insta::assert_json_snapshot!($name, $value, {
            ".webhook_timestamp" => "[time]",
            ".webhook_signature" => "v1,[signature]",
            $($selector => $replacement),*
        })
    };
}

#[tokio::test]
async fn device_replies() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let dev = Device { server: &server, sn: "SNAP0001".into() };
    let _settings = settings(&server).bind_to_scope();

    insta::assert_snapshot!("device_handshake_options", reply_text(&dev.handshake().await));
    let upload =
        dev.attlog(b"016\t2026-11-20 08:00:00\t0\t1\t0\t0\t0\n017\t2026-11-20 08:01:00\t1\t15\t0\t0\t0\n").await;
    insta::assert_snapshot!("device_attlog_upload", reply_text(&upload));
    let idle = dev.get(&format!("/iclock/getrequest?SN={}", dev.sn)).await;
    insta::assert_snapshot!("device_poll_nothing_queued", reply_text(&idle));

    let (status, queued) = api
        .post_json(
            &format!("/api/v1/devices/{}/commands", dev.sn),
            &json!({ "command": { "type": "user_upsert", "pin": "016", "name": "Ana Lima", "card": "123456" } }),
        )
        .await;
    assert_eq!(status, 201, "{queued}");
    let id = queued["id"].as_i64().expect("command id");
    let poll = dev.get(&format!("/iclock/getrequest?SN={}", dev.sn)).await;
    assert!(poll.text().starts_with(&format!("C:{id}:")), "{}", poll.text());
    insta::assert_snapshot!("device_poll_queued_command", reply_text(&poll).replace(&format!("C:{id}:"), "C:[id]:"));
    let result =
        dev.post(&format!("/iclock/devicecmd?SN={}", dev.sn), format!("ID={id}&Return=0&CMD=DATA\n").as_bytes()).await;
    insta::assert_snapshot!("device_command_result", reply_text(&result));
}

#[tokio::test]
async fn zkbio_time_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let dev = Device { server: &server, sn: "SNAP0002".into() };
    assert_eq!(dev.handshake().await.status, 200);
    let body = b"016\t2026-11-20 08:00:00\t0\t1\t0\t0\t0\n016\t2026-11-20 17:02:30\t1\t15\t0\t0\t0\n017\t2026-11-20 08:01:00\t4\t4\t7\t0\t0\n";
    assert_eq!(dev.attlog(body).await.text(), "OK: 3");
    let _settings = settings(&server).bind_to_scope();

    let page = parse_json(&raw_get(&api, "/iclock/api/transactions/?page_size=2").await);
    insta::assert_json_snapshot!("zkbio_transactions_page", page, {
        ".data[].id" => "[id]",
        ".data[].upload_time" => "[time]",
    });
    let list = api.transactions("").await;
    let first = list.first().expect("a transaction")["id"].as_i64().unwrap();
    let one = parse_json(&raw_get(&api, &format!("/iclock/api/transactions/{first}/")).await);
    insta::assert_json_snapshot!("zkbio_transaction_record", one, {
        ".id" => "[id]",
        ".upload_time" => "[time]",
    });
}

#[tokio::test]
async fn zkbio_time_employees() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let _settings = settings(&server).bind_to_scope();

    let create = async |path: &str, body: serde_json::Value| -> serde_json::Value {
        let (status, answer) = api.post_json(path, &body).await;
        assert_eq!(status, 201, "POST {path} {body}: {answer}");
        answer
    };
    let area = create("/personnel/api/areas/", json!({ "area_code": "HQ", "area_name": "Head office" })).await;
    let dept = create("/personnel/api/departments/", json!({ "dept_code": "S", "dept_name": "Sales" })).await;
    let pos = create("/personnel/api/positions/", json!({ "position_code": "C", "position_name": "Clerk" })).await;
    let employee = create(
        "/personnel/api/employees/",
        json!({ "emp_code": "0042", "first_name": "Ann", "last_name": "Lee", "department": dept["id"],
                "area": [area["id"]], "position": pos["id"], "card_no": "[15CD5B07]", "device_password": "4321",
                "hire_date": "2026-01-05", "gender": "F", "email": null }),
    )
    .await;
    create(
        "/personnel/api/employees/",
        json!({ "emp_code": "1001", "first_name": "Bo", "department": 1, "area": [1] }),
    )
    .await;

    let page = parse_json(&raw_get(&api, "/personnel/api/employees/?page_size=1").await);
    insta::assert_json_snapshot!("zkbio_employees_page", page, {
        ".data[].id" => "[id]",
        ".data[].department.id" => "[id]",
        ".data[].attemployee.id" => "[id]",
        ".data[].position.id" => "[id]",
        ".data[].area[].id" => "[id]",
        ".data[].create_time" => "[time]",
        ".data[].update_time" => "[time]",
    });
    let id = employee["id"].as_i64().expect("employee id");
    let one = parse_json(&raw_get(&api, &format!("/personnel/api/employees/{id}/")).await);
    insta::assert_json_snapshot!("zkbio_employee_record", one, {
        ".id" => "[id]",
        ".department.id" => "[id]",
        ".attemployee.id" => "[id]",
        ".position.id" => "[id]",
        ".area[].id" => "[id]",
        ".create_time" => "[time]",
        ".update_time" => "[time]",
    });
}

/// The raw bytes of a 200 answer to an authenticated GET.
async fn raw_get(api: &Api, path: &str) -> Vec<u8> {
    let response = api
        .client
        .get(format!("http://{}{}", api.server_addr, path))
        .header("Authorization", format!("Token {}", api.token))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200, "GET {path}");
    response.bytes().await.expect("body").to_vec()
}

#[tokio::test]
async fn webhook_bodies_of_device_presence() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_webhook(dir.path(), &receiver).await;
    let api = Api::login(&server).await;
    let dev = Device { server: &server, sn: "SNAP0003".into() };
    let _settings = settings(&server).bind_to_scope();

    assert_eq!(dev.handshake().await.status, 200);
    let registered = receiver.wait_for_n("device.registered", 1).await;
    assert_webhook_snapshot!("webhook_device_registered", webhook(&registered[0]), {
        ".body.timestamp" => "[time]",
    });
    api.advance_clock(60).await;
    let offline = receiver.wait_for_n("device.offline", 1).await;
    // The ids of presence events derive from the instant of the transition.
    assert_webhook_snapshot!("webhook_device_offline", webhook(&offline[0]), {
        ".webhook_id" => "[event id]",
        ".body.id" => "[event id]",
        ".body.timestamp" => "[time]",
        ".body.data.last_seen_at" => "[time]",
    });
    assert_eq!(dev.get(&format!("/iclock/getrequest?SN={}", dev.sn)).await.text(), "OK");
    let online = receiver.wait_for_n("device.online", 1).await;
    assert_eq!(online[0].json()["data"]["offline_since"], offline[0].json()["timestamp"]);
    assert_webhook_snapshot!("webhook_device_online", webhook(&online[0]), {
        ".webhook_id" => "[event id]",
        ".body.id" => "[event id]",
        ".body.timestamp" => "[time]",
        ".body.data.offline_since" => "[time]",
        ".body.data.back_at" => "[time]",
    });
}

#[tokio::test]
async fn webhook_body_of_a_punch() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_webhook(dir.path(), &receiver).await;
    let dev = Device { server: &server, sn: "SNAP0004".into() };
    let _settings = settings(&server).bind_to_scope();

    assert_eq!(dev.handshake().await.status, 200);
    assert_eq!(dev.attlog(b"016\t2026-11-20 08:00:00\t0\t1\t7\t0\t0\n").await.text(), "OK: 1");
    let punch = receiver.wait_for_n("attendance.punch", 1).await;
    assert_webhook_snapshot!("webhook_attendance_punch", webhook(&punch[0]), {
        ".body.data.received_at" => "[time]",
    });
}

#[tokio::test]
async fn webhook_body_of_an_access_event() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_webhook(dir.path(), &receiver).await;
    let dev = Device { server: &server, sn: "SNAP0010".into() };
    let _settings = settings(&server).bind_to_scope();

    assert_eq!(dev.post("/iclock/registry?SN=SNAP0010", b"DeviceType=acc,LockCount=2").await.status, 200);
    let line = "time=2026-11-20 08:00:00\tpin=016\tcardno=123456\teventaddr=1\tevent=0\tinoutstatus=0\tverifytype=4\tindex=1\n";
    let r = dev.post("/iclock/cdata?SN=SNAP0010&table=rtlog", line.as_bytes()).await;
    assert_eq!((r.status, r.text()), (200, "OK".to_owned()));
    let event = receiver.wait_for_n("access.event", 1).await;
    assert_webhook_snapshot!("webhook_access_event", webhook(&event[0]), {
        // Derived from the line's keyed digest: each server's key is its own.
        ".webhook_id" => "[event id]",
        ".body.id" => "[event id]",
        ".body.timestamp" => "[time]",
        ".body.data.access_event_id" => "[id]",
    });
}

#[tokio::test]
async fn webhook_bodies_of_device_users() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_webhook(dir.path(), &receiver).await;
    let dev = Device { server: &server, sn: "SNAP0005".into() };
    let _settings = settings(&server).bind_to_scope();

    assert_eq!(dev.handshake().await.status, 200);
    let operlog = async |line: &str| {
        let reply = dev.post(&format!("/iclock/cdata?SN={}&table=OPERLOG&Stamp=1", dev.sn), line.as_bytes()).await;
        assert_eq!(reply.text(), "OK: 1");
    };
    operlog("USER PIN=016\tName=Ann\tPri=0\tPasswd=Qx7Wz\tCard=[15CD5B07]\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n").await;
    let enrolled = receiver.wait_for_n("user.enrolled", 1).await;
    assert_webhook_snapshot!("webhook_user_enrolled", webhook(&enrolled[0]), {
        ".body.timestamp" => "[time]",
    });
    operlog("USER PIN=016\tName=Ann Lee\tPri=14\tPasswd=Qx7Wz\tCard=[15CD5B07]\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n").await;
    let updated = receiver.wait_for_n("user.updated", 1).await;
    assert_webhook_snapshot!("webhook_user_updated", webhook(&updated[0]), {
        ".body.timestamp" => "[time]",
    });
}

#[tokio::test]
async fn webhook_body_of_a_completed_command() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_with_webhook(dir.path(), &receiver).await;
    let api = Api::login(&server).await;
    let dev = Device { server: &server, sn: "SNAP0006".into() };
    let _settings = settings(&server).bind_to_scope();

    assert_eq!(dev.handshake().await.status, 200);
    let (status, queued) = api
        .post_json(
            &format!("/api/v1/devices/{}/commands", dev.sn),
            &json!({ "command": { "type": "user_delete", "pin": "77" } }),
        )
        .await;
    assert_eq!(status, 201, "{queued}");
    let id = queued["id"].as_i64().expect("command id");
    assert_eq!(
        dev.get(&format!("/iclock/getrequest?SN={}", dev.sn)).await.text(),
        format!("C:{id}:DATA DELETE USERINFO PIN=77\n")
    );
    let reply = dev
        .post(&format!("/iclock/devicecmd?SN={}", dev.sn), format!("ID={id}&Return=-10&CMD=DATA\n").as_bytes())
        .await;
    assert_eq!(reply.text(), "OK");
    let completed = receiver.wait_for("command.completed", |body| body["data"]["command_id"] == id).await;
    assert_webhook_snapshot!("webhook_command_completed", webhook(&completed), {
        ".webhook_id" => "[event id]",
        ".body.id" => "[event id]",
        ".body.timestamp" => "[time]",
        ".body.data.command_id" => "[id]",
        ".body.data.**" => insta::dynamic_redaction(|value, path| {
            // Every instant of the command's life: enqueued, sent, completed.
            if path.to_string().ends_with("_at") { Content::from("[time]") } else { value }
        }),
    });
}

#[tokio::test]
async fn webhook_body_of_a_batch() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_TEST_CLOCK", "true")]).await;
    let api = Api::login(&server).await;
    let _settings = settings(&server).bind_to_scope();
    let (status, endpoint) = api
        .post_json(
            "/api/v1/webhooks/endpoints",
            &json!({ "url": format!("{}/batch", receiver.base_url()), "event_types": ["attendance.punch"],
                     "batch_max": 10, "ordered": true }),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    let endpoint_id = endpoint["id"].as_str().expect("endpoint id").to_owned();
    // Paused while the device uploads, so the backlog is due at once when it resumes.
    let (status, paused) =
        api.patch_json(&format!("/api/v1/webhooks/endpoints/{endpoint_id}"), &json!({ "paused": true })).await;
    assert_eq!(status, 200, "{paused}");
    let dev = Device { server: &server, sn: "SNAP0007".into() };
    assert_eq!(dev.handshake().await.status, 200);
    assert_eq!(dev.attlog(&attlog_lines(0, 3)).await.text(), "OK: 3");
    let (status, _) =
        api.patch_json(&format!("/api/v1/webhooks/endpoints/{endpoint_id}"), &json!({ "paused": false })).await;
    assert_eq!(status, 200);

    let batch = receiver.wait_for_n("batch", 1).await;
    let secret = endpoint["secret"].as_str().expect("secret");
    let verifier = standardwebhooks::Webhook::new(secret).expect("secret");
    let expected = verifier.sign(&batch[0].id, batch[0].timestamp, &batch[0].body).expect("sign");
    assert!(batch[0].signature.split(' ').any(|s| s == expected), "the batch's signature does not verify");
    let document = Json::Object(vec![
        ("path".into(), Json::String(batch[0].path.clone())),
        ("webhook_id".into(), Json::String(batch[0].id.clone())),
        ("body".into(), parse_json(&batch[0].body)),
    ]);
    insta::assert_json_snapshot!("webhook_batch", document, {
        ".body.data[].data.received_at" => "[time]",
    });
}

#[tokio::test]
async fn openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let _settings = settings(&server).bind_to_scope();
    let document = parse_json(&raw_get(&api, "/api/openapi.json").await);
    insta::assert_json_snapshot!("openapi_document", document);
}
