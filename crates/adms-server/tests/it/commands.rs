//! The command queue end to end: the real binary, a device speaking raw HTTP/1.1, the API with a
//! token, a webhook receiver on loopback and the test clock. A command enqueued through the API
//! reaches the device's next poll as the exact `C:<id>:` line, its result completes it (and is
//! announced as `command.completed`), unanswered commands are re-sent and expire, a query is
//! answered by an ATTLOG upload, and hostile input changes nothing.

use crate::common;

use std::path::Path;

use common::webhooks::{Receiver, SECRET, Witness};
use common::{Api, Database, Device, Server, eventually};
use serde_json::{Value, json};

async fn poll(dev: &Device<'_>) -> String {
    let r = dev.get(&format!("/iclock/getrequest?SN={}", dev.sn)).await;
    assert_eq!(r.status, 200);
    r.text()
}

async fn devicecmd(dev: &Device<'_>, body: &str) {
    let r = dev.post(&format!("/iclock/devicecmd?SN={}", dev.sn), body.as_bytes()).await;
    assert_eq!((r.status, r.text()), (200, "OK".to_owned()), "devicecmd {body:?}");
}

async fn enqueue(api: &Api, sn: &str, body: Value) -> (u16, Value) {
    api.post_json(&format!("/api/v1/devices/{sn}/commands"), &body).await
}

async fn enqueue_ok(api: &Api, sn: &str, command: Value) -> i64 {
    let (status, answer) = enqueue(api, sn, json!({ "command": command })).await;
    assert_eq!(status, 201, "{answer}");
    answer["id"].as_i64().expect("id")
}

async fn command(api: &Api, id: i64) -> Value {
    api.get(&format!("/api/v1/commands/{id}")).await
}

/// `(outcome, seen_count)` of every stored result for `command_id`, read from the database.
async fn result_outcomes(db: &Database, command_id: &str) -> Vec<(String, i64)> {
    db.fetch_all(
        "SELECT outcome, seen_count FROM command_results WHERE command_id = $1 ORDER BY id",
        &[command_id.into()],
    )
    .await
}

/// The server in process, its `ADMS_WEBHOOK_URL` endpoint `receiver`, on the test clock.
async fn start(dir: &Path, receiver: &Receiver, extra: &[(&str, &str)]) -> Server {
    Server::in_process(dir, &settings(receiver, extra).iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await
}

/// [`start`] as a process of its own (replicas of one database).
fn start_process(dir: &Path, receiver: &Receiver, extra: &[(&str, &str)]) -> Server {
    Server::start(dir, &settings(receiver, extra).iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>())
}

fn settings<'a>(receiver: &Receiver, extra: &[(&'a str, &str)]) -> Vec<(&'a str, String)> {
    let mut env = vec![
        ("ADMS_WEBHOOK_URL", receiver.url()),
        ("ADMS_WEBHOOK_SECRET", SECRET.into()),
        ("ADMS_TEST_CLOCK", "true".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

#[tokio::test]
async fn enqueued_command_reaches_the_next_poll_and_its_result_completes_it() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &receiver, &[]).await;
    let api = Api::login(&server).await;
    let dev = Device { server: &server, sn: "CMD0001".into() };
    assert_eq!(dev.handshake().await.status, 200);
    assert_eq!(poll(&dev).await, "OK", "nothing queued yet");

    let id = enqueue_ok(
        &api,
        "CMD0001",
        json!({ "type": "user_upsert", "pin": "016", "name": "Ana Lima", "card": "123456" }),
    )
    .await;
    assert_eq!(command(&api, id).await["state"], "queued");
    assert_eq!(
        poll(&dev).await,
        format!(
            "C:{id}:DATA UPDATE USERINFO PIN=016\tName=Ana Lima\tPri=0\tPasswd=\tCard=123456\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n"
        )
    );
    let sent = command(&api, id).await;
    assert_eq!((sent["state"].as_str(), sent["send_count"].as_i64()), (Some("sent"), Some(1)));
    assert_eq!(poll(&dev).await, "OK", "a sent command is not handed out again before its re-send time");

    devicecmd(&dev, &format!("ID={id}&Return=0&CMD=DATA\n")).await;
    let done = command(&api, id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["return_code"], 0);
    assert_eq!(done["result"], "success");
    let event = receiver.wait_for("command.completed", |b| b["data"]["command_id"] == id).await;
    let body = event.json();
    assert_eq!(body["data"]["state"], "succeeded");
    assert_eq!(body["data"]["kind"], "user_upsert");
    assert_eq!(body["data"]["pin"], "016");
    assert_eq!(body["data"]["device"]["sn"], "CMD0001");
    assert_eq!(body["data"]["return_code"], 0);

    // A failure code is kept with its meaning, and announced too.
    let delete = enqueue_ok(&api, "CMD0001", json!({ "type": "user_delete", "pin": "77" })).await;
    assert_eq!(poll(&dev).await, format!("C:{delete}:DATA DELETE USERINFO PIN=77\n"));
    devicecmd(&dev, &format!("ID={delete}&Return=-10&CMD=DATA")).await;
    let failed = command(&api, delete).await;
    assert_eq!((failed["state"].as_str(), failed["return_code"].as_i64()), (Some("failed"), Some(-10)));
    assert_eq!(failed["result"], "PIN not on the device");
    let event = receiver.wait_for("command.completed", |b| b["data"]["command_id"] == delete).await;
    assert_eq!(event.json()["data"]["state"], "failed");
    assert_eq!(event.json()["data"]["result"], "PIN not on the device");

    // Several per poll, in order, and nothing after a REBOOT.
    let info = enqueue_ok(&api, "CMD0001", json!({ "type": "info" })).await;
    let reboot = enqueue_ok(&api, "CMD0001", json!({ "type": "reboot" })).await;
    let check = enqueue_ok(&api, "CMD0001", json!({ "type": "check" })).await;
    assert_eq!(poll(&dev).await, format!("C:{info}:INFO\nC:{reboot}:REBOOT\n"));
    // Both answered in one body; INFO's options are applied to the device.
    devicecmd(
        &dev,
        &format!("ID={info}&Return=0&CMD=INFO\n~DeviceName=SpeedFace-V5L\nUserCount=4\nFWVersion=Ver 8.0.4.3\nID={reboot}&Return=0&CMD=REBOOT\n"),
    )
    .await;
    assert_eq!(poll(&dev).await, format!("C:{check}:CHECK\n"));
    let info_done = command(&api, info).await;
    assert_eq!(info_done["state"], "succeeded");
    assert!(info_done["result_payload"].as_str().unwrap().contains("UserCount=4"), "{info_done}");
    assert_eq!(common::device_option(server.db(), "CMD0001", "UserCount").await.as_deref(), Some("4"));
    assert_eq!(command(&api, reboot).await["state"], "succeeded");

    // The list shows every command of the device, newest first, filterable by state.
    let list = api.get("/api/v1/devices/CMD0001/commands?page_size=50").await;
    assert_eq!(list["count"], 5);
    assert_eq!(list["data"][0]["id"], check);
    let failed_only = api.get("/api/v1/devices/CMD0001/commands?state=failed").await;
    assert_eq!(failed_only["count"], 1);
    assert_eq!(failed_only["data"][0]["id"], delete);
}

#[tokio::test]
async fn hostile_and_stray_input_changes_nothing() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &receiver, &[]).await;
    let api = Api::login(&server).await;
    let dev = Device { server: &server, sn: "CMD0002".into() };
    let other = Device { server: &server, sn: "CMD0003".into() };
    assert_eq!(dev.handshake().await.status, 200);
    assert_eq!(other.handshake().await.status, 200);

    // A TAB or a newline in a value would split the command: refused with the field named.
    for name in ["Eve\tPri=14", "Eve\nC:1:CLEAR DATA", "Eve\r"] {
        let (status, answer) =
            enqueue(&api, "CMD0002", json!({ "command": { "type": "user_upsert", "pin": "5", "name": name } })).await;
        assert_eq!(status, 400, "{name:?}: {answer}");
        assert!(answer["command"]["name"][0].as_str().unwrap().contains("control character"), "{answer}");
    }
    let (status, answer) =
        enqueue(&api, "CMD0002", json!({ "command": { "type": "set_option", "key": "Delay", "value": "1\nREBOOT" } }))
            .await;
    assert_eq!(status, 400, "{answer}");
    let (status, _) = enqueue(&api, "CMD0002", json!({ "command": { "type": "shell", "cmd": "rm -rf /" } })).await;
    assert_eq!(status, 400, "no such command type");
    // A field the command does not take is refused, also beside a command that takes none.
    for command in
        [json!({ "type": "reboot", "pin": "5" }), json!({ "type": "user_delete", "pin": "5", "purge": true })]
    {
        let (status, answer) = enqueue(&api, "CMD0002", json!({ "command": command })).await;
        assert_eq!(status, 400, "{command}: {answer}");
        assert!(answer.to_string().contains("unknown field"), "{answer}");
    }
    // Every invalid field of the body at once, each named.
    let body = json!({
        "command": { "type": "user_upsert", "pin": "5", "name": "Eve\t" },
        "dedupe_key": "",
        "expires_in_secs": 0,
        "colour": "red",
    });
    let (status, answer) = enqueue(&api, "CMD0002", body).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["dedupe_key"], json!(["1 to 200 printable characters."]), "{answer}");
    assert_eq!(answer["expires_in_secs"], json!(["1 to 31622400."]), "{answer}");
    assert_eq!(answer["colour"], json!(["Unknown field."]), "{answer}");
    assert!(answer["command"]["name"][0].as_str().unwrap().contains("control character"), "{answer}");
    let (status, answer) = enqueue(&api, "CMD0002", json!({ "command": "reboot" })).await;
    assert_eq!((status, &answer["command"][0]), (400, &json!("Must be an object such as {\"type\": \"reboot\"}.")));
    let (status, answer) = enqueue(&api, "CMD0002", json!({})).await;
    assert_eq!((status, answer), (400, json!({ "command": ["This field is required."] })));
    // An optional field sent as null is no unknown field.
    let (status, answer) =
        enqueue(&api, "CMD0002", json!({ "command": { "type": "fingerprint_delete", "pin": "5", "finger": null } }))
            .await;
    assert_eq!(status, 201, "{answer}");
    let queued = answer["id"].as_i64().unwrap();
    assert_eq!(api.post_json(&format!("/api/v1/commands/{queued}/cancel"), &json!({})).await.0, 200);
    let (status, _) = enqueue(&api, "NOSUCHSN", json!({ "command": { "type": "reboot" } })).await;
    assert_eq!(status, 404);
    let unauthenticated = reqwest::Client::new()
        .post(server.url("/api/v1/devices/CMD0002/commands"))
        .json(&json!({ "command": { "type": "reboot" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(poll(&dev).await, "OK", "nothing refused was queued");
    assert_eq!(api.get("/api/v1/devices/CMD0002/commands").await["count"], 1, "only the cancelled one");

    // De-duplication: the same desired command under one key is queued once.
    let first =
        enqueue(&api, "CMD0002", json!({ "command": { "type": "user_delete", "pin": "5" }, "dedupe_key": "user:5" }))
            .await;
    let again =
        enqueue(&api, "CMD0002", json!({ "command": { "type": "user_delete", "pin": "5" }, "dedupe_key": "user:5" }))
            .await;
    assert_eq!((first.0, again.0), (201, 200));
    assert_eq!(again.1["outcome"], "already_queued");
    assert_eq!(first.1["id"], again.1["id"]);
    let id = first.1["id"].as_i64().unwrap();
    assert_eq!(poll(&dev).await, format!("C:{id}:DATA DELETE USERINFO PIN=5\n"));

    // Another device answering this device's command id: recorded, nothing changes.
    devicecmd(&other, &format!("ID={id}&Return=0&CMD=DATA\n")).await;
    assert_eq!(command(&api, id).await["state"], "sent");
    // Unknown ids, ids that were never ours, and garbage: recorded, answered OK.
    devicecmd(&dev, "ID=987654&Return=0&CMD=DATA\nID=info8487&Return=0&CMD=INFO\nnot a result\n").await;
    assert_eq!(result_outcomes(server.db(), "987654").await, [("unknown_id".to_owned(), 1)]);
    assert_eq!(result_outcomes(server.db(), "info8487").await, [("unknown_id".to_owned(), 1)]);

    // The real answer, then the same answer again (a device re-sending its devicecmd body).
    devicecmd(&dev, &format!("ID={id}&Return=0&CMD=DATA\n")).await;
    devicecmd(&dev, &format!("ID={id}&Return=0&CMD=DATA\n")).await;
    // And a contradicting late answer: the first one stands.
    devicecmd(&dev, &format!("ID={id}&Return=-1002&CMD=DATA\n")).await;
    let done = command(&api, id).await;
    assert_eq!((done["state"].as_str(), done["return_code"].as_i64()), (Some("succeeded"), Some(0)));
    assert_eq!(
        result_outcomes(server.db(), &id.to_string()).await,
        [("other_device".to_owned(), 1), ("applied".to_owned(), 2), ("duplicate".to_owned(), 1)]
    );
    receiver.wait_for("command.completed", |b| b["data"]["command_id"] == id).await;
    // Every result above was committed before its answer; after a dispatcher pass that started
    // later, a second event would have been sent too.
    Witness::create(&api).await.pass(&server).await;
    let events: Vec<_> =
        receiver.of_type("command.completed").into_iter().filter(|r| r.json()["data"]["command_id"] == id).collect();
    assert_eq!(events.len(), 1, "one event for one completion");

    // Cancel: only while queued.
    let queued = enqueue_ok(&api, "CMD0002", json!({ "type": "clear_log" })).await;
    let (status, cancelled) = api.post_json(&format!("/api/v1/commands/{queued}/cancel"), &json!({})).await;
    assert_eq!((status, cancelled["state"].as_str()), (200, Some("cancelled")), "{cancelled}");
    assert_eq!(poll(&dev).await, "OK", "a cancelled command is never sent");
    let (status, _) = api.post_json(&format!("/api/v1/commands/{id}/cancel"), &json!({})).await;
    assert_eq!(status, 409, "a completed command cannot be cancelled");
    let (status, _) = api.post_json("/api/v1/commands/424242/cancel", &json!({})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn unanswered_commands_are_resent_then_expire() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server =
        start(dir.path(), &receiver, &[("ADMS_COMMAND_RESEND_SECS", "30"), ("ADMS_COMMAND_MAX_SENDS", "2")]).await;
    let api = Api::login(&server).await;
    let dev = Device { server: &server, sn: "CMD0004".into() };
    let silent = Device { server: &server, sn: "CMD0005".into() };
    assert_eq!(dev.handshake().await.status, 200);
    assert_eq!(silent.handshake().await.status, 200);

    let id = enqueue_ok(&api, "CMD0004", json!({ "type": "clear_log" })).await;
    let line = format!("C:{id}:CLEAR LOG\n");
    assert_eq!(poll(&dev).await, line);
    assert_eq!(poll(&dev).await, "OK");
    api.advance_clock(31).await;
    assert_eq!(poll(&dev).await, line, "re-sent after the re-send time");
    assert_eq!(command(&api, id).await["send_count"], 2);
    api.advance_clock(31).await;
    assert_eq!(poll(&dev).await, "OK", "sent twice without an answer: expired, not sent a third time");
    let expired = command(&api, id).await;
    assert_eq!(expired["state"], "expired", "{expired}");
    assert_eq!(expired["result"], "no answer after 2 sends");
    let event = receiver.wait_for("command.completed", |b| b["data"]["command_id"] == id).await;
    assert_eq!(event.json()["data"]["state"], "expired");

    // The device answers after all: the truth wins, announced under a new event id.
    devicecmd(&dev, &format!("ID={id}&Return=0&CMD=CLEAR_LOG")).await;
    assert_eq!(command(&api, id).await["state"], "succeeded");
    let late = receiver
        .wait_for("command.completed", |b| b["data"]["command_id"] == id && b["data"]["state"] == "succeeded")
        .await;
    assert_ne!(late.id, event.id);

    // A device that never polls: its command expires by the sweep when its lifetime ends.
    let (status, queued) =
        enqueue(&api, "CMD0005", json!({ "command": { "type": "reboot" }, "expires_in_secs": 60 })).await;
    assert_eq!(status, 201, "{queued}");
    let silent_id = queued["id"].as_i64().unwrap();
    api.advance_clock(61).await;
    let event = receiver.wait_for("command.completed", |b| b["data"]["command_id"] == silent_id).await;
    assert_eq!(event.json()["data"]["state"], "expired");
    assert_eq!(event.json()["data"]["result"], "not delivered before it expired");
    assert_eq!(command(&api, silent_id).await["state"], "expired");
    assert_eq!(poll(&silent).await, "OK", "an expired command is never delivered");
}

#[tokio::test]
async fn backfill_query_is_answered_by_an_attlog_upload() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &receiver, &[]).await;
    let api = Api::login(&server).await;
    let dev = Device { server: &server, sn: "CMD0006".into() };
    assert_eq!(dev.handshake().await.status, 200);

    let id = enqueue_ok(
        &api,
        "CMD0006",
        json!({ "type": "query_attlog", "start_time": "2026-11-19 00:00:00", "end_time": "2026-11-19 23:59:59" }),
    )
    .await;
    assert_eq!(
        poll(&dev).await,
        format!("C:{id}:DATA QUERY ATTLOG StartTime=2026-11-19 00:00:00\tEndTime=2026-11-19 23:59:59\n")
    );
    // The device answers with the day's punches as an ordinary upload, then the count.
    let r = dev.attlog(b"016\t2026-11-19 08:01:00\t0\t1\t0\t0\n017\t2026-11-19 17:30:12\t1\t15\t0\t0\n").await;
    assert_eq!(r.text(), "OK: 2");
    devicecmd(&dev, &format!("ID={id}&Return=2&CMD=DATA\n")).await;
    let done = command(&api, id).await;
    assert_eq!((done["state"].as_str(), done["return_code"].as_i64()), (Some("succeeded"), Some(2)));
    let punches = api.transactions("terminal_sn=CMD0006").await;
    let times: Vec<_> = punches.iter().map(|p| p["punch_time"].as_str().unwrap().to_owned()).collect();
    assert_eq!(times, ["2026-11-19 08:01:00", "2026-11-19 17:30:12"]);
    receiver.wait_for("command.completed", |b| b["data"]["command_id"] == id && b["data"]["return_code"] == 2).await;
}

#[tokio::test]
async fn zkbio_time_terminal_actions_queue_device_commands() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &receiver, &[]).await;
    let api = Api::login(&server).await;
    let dev = Device { server: &server, sn: "CMD0007".into() };
    assert_eq!(dev.handshake().await.status, 200);
    let terminals = api.get("/iclock/api/terminals/?sn=CMD0007").await;
    let terminal_id = terminals["data"][0]["id"].as_i64().unwrap();

    // Twice before the device polls: one REBOOT.
    for _ in 0..2 {
        let (status, answer) =
            api.post_json("/iclock/api/terminals/reboot/", &json!({ "terminals": [terminal_id] })).await;
        assert_eq!((status, answer), (200, json!({ "detail": "Success." })));
    }
    let reply = poll(&dev).await;
    assert!(reply.starts_with("C:") && reply.ends_with(":REBOOT\n") && reply.matches('\n').count() == 1, "{reply:?}");

    let (status, answer) = api
        .post_json("/iclock/api/terminals/upload_transaction/", &json!({ "terminals": [terminal_id.to_string()] }))
        .await;
    assert_eq!(status, 200, "{answer}");
    let reply = poll(&dev).await;
    assert!(reply.contains(":DATA QUERY ATTLOG StartTime=2000-01-01 00:00:00\tEndTime="), "{reply:?}");

    // clear_command drops what is queued and not sent yet.
    let (status, _) = api.post_json("/iclock/api/terminals/clear_all/", &json!({ "terminals": [terminal_id] })).await;
    assert_eq!(status, 200);
    let (status, _) =
        api.post_json("/iclock/api/terminals/clear_command/", &json!({ "terminals": [terminal_id] })).await;
    assert_eq!(status, 200);
    assert_eq!(poll(&dev).await, "OK", "CLEAR DATA was cancelled before it was sent");
    let cancelled = api.get("/api/v1/devices/CMD0007/commands?state=cancelled").await;
    assert_eq!(cancelled["data"][0]["kind"], "clear_data");

    // An unknown terminal fails the whole batch, as in ZKBio Time.
    let (status, answer) =
        api.post_json("/iclock/api/terminals/reboot/", &json!({ "terminals": [terminal_id, 99999] })).await;
    assert_eq!(status, 400);
    assert_eq!(answer, json!({ "terminals": { "1": ["Invalid pk \"99999\" - object does not exist."] } }));
    assert_eq!(poll(&dev).await, "OK");
}

#[tokio::test]
async fn terminals_can_be_created_updated_and_deleted() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &receiver, &[("ADMS_ACTIVITY_FLUSH_SECS", "1")]).await;
    let api = Api::login(&server).await;

    let (status, created) = api
        .post_json(
            "/iclock/api/terminals/",
            &json!({ "sn": "NEW0001", "alias": "Gate B", "area": 1, "terminal_tz": 8 }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(
        created,
        json!({ "id": id, "sn": "NEW0001", "ip_address": "", "alias": "Gate B", "area": 1, "heartbeat": 10 })
    );
    let (status, answer) = api.post_json("/iclock/api/terminals/", &json!({ "sn": "NEW0001" })).await;
    assert_eq!((status, answer), (400, json!({ "sn": ["terminal with this sn already exists."] })));
    let (status, answer) = api.post_json("/iclock/api/terminals/", &json!({ "alias": "x" })).await;
    assert_eq!((status, answer), (400, json!({ "sn": ["This field is required."] })));
    let (status, _) = api.post_json("/iclock/api/terminals/", &json!({ "sn": "NEW0002", "alias": "a\tb" })).await;
    assert_eq!(status, 400);
    // Every invalid field at once.
    let every_field = json!({ "sn": "has space", "alias": "a\tb", "ip_address": "x".repeat(46), "area": 999, "terminal_tz": 100_000 });
    let (status, answer) = api.post_json("/iclock/api/terminals/", &every_field).await;
    assert_eq!(
        (status, answer),
        (
            400,
            json!({
                "sn": ["At most 32 printable characters without spaces."],
                "alias": ["Ensure this field has no more than 50 printable characters."],
                "ip_address": ["Enter a valid IPv4 or IPv6 address."],
                "terminal_tz": ["Must be an offset in hours (-14 to 14) or minutes."],
                "area": ["Invalid pk \"999\" - object does not exist."],
            })
        )
    );

    let terminal = api.get(&format!("/iclock/api/terminals/{id}/")).await;
    assert_eq!((terminal["alias"].as_str(), terminal["terminal_tz"].as_i64()), (Some("Gate B"), Some(8)));
    let (status, updated) = api
        .send(
            reqwest::Method::PATCH,
            &format!("/iclock/api/terminals/{id}/"),
            Some(&json!({ "alias": "Gate C", "sn": "OTHER" })),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        (updated["alias"].as_str(), updated["sn"].as_str()),
        (Some("Gate C"), Some("NEW0001")),
        "sn is read-only"
    );
    assert_eq!(api.get(&format!("/iclock/api/terminals/{id}/")).await["alias"], "Gate C");

    // Deleting cancels what is queued for it and hides it; its next request brings it back.
    let (status, _) = api.post_json("/iclock/api/terminals/reboot/", &json!({ "terminals": [id] })).await;
    assert_eq!(status, 200);
    let (status, _) = api.delete(&format!("/iclock/api/terminals/{id}/")).await;
    assert_eq!(status, 204);
    let (status, _) = api.get_status(&format!("/iclock/api/terminals/{id}/")).await;
    assert_eq!(status, 404);
    assert_eq!(api.get("/iclock/api/terminals/?sn=NEW0001").await["count"], 0);
    let (status, _) = api.post_json("/iclock/api/terminals/reboot/", &json!({ "terminals": [id] })).await;
    assert_eq!(status, 400, "a deleted terminal takes no actions");
    let cancelled = api.get("/api/v1/devices/NEW0001/commands?state=cancelled").await;
    assert_eq!(
        (cancelled["count"].as_i64(), cancelled["data"][0]["result"].as_str()),
        (Some(1), Some("terminal deleted"))
    );
    let dev = Device { server: &server, sn: "NEW0001".into() };
    assert_eq!(poll(&dev).await, "OK", "the cancelled REBOOT is not sent");
    eventually("a deleted terminal that makes a request is listed again", async || {
        api.get("/iclock/api/terminals/?sn=NEW0001").await["count"] == 1
    })
    .await;
}

/// Two processes on one database (replicas): a command queued through one reaches a device
/// that polls the other, although the other had already found the device's queue empty and
/// answers empty polls from memory.
#[tokio::test]
async fn a_command_queued_on_one_replica_reaches_a_device_polling_another() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let a = start_process(dir.path(), &receiver, &[]);
    let b = start_process(dir.path(), &receiver, &[]);
    let api_a = Api::login(&a).await;
    let dev = Device { server: &b, sn: "CMD0090".into() };
    assert_eq!(dev.handshake().await.status, 200);
    assert_eq!(poll(&dev).await, "OK", "B has read the empty queue");
    let id = enqueue_ok(&api_a, "CMD0090", json!({ "type": "reboot" })).await;
    let mut reply = String::new();
    eventually("a poll of B hands out the command queued through A", async || {
        reply = poll(&dev).await;
        reply != "OK"
    })
    .await;
    assert_eq!(reply, format!("C:{id}:REBOOT\n"));
}
