//! Device and roster events end to end: the application with `ADMS_WEBHOOK_URL`, the test clock
//! and a 30 s offline threshold, a receiver on loopback. A device's first contact, an OPERLOG
//! `USER` line, missed heartbeats and the device's return each arrive once, signed, under an id
//! of their own: one story per kind of event, so a failure names it.

use crate::common;

use common::webhooks::{Received, Receiver, SECRET, Witness};
use common::{Api, Device, Server};

/// A server whose `ADMS_WEBHOOK_URL` endpoint is `receiver` (which leaves the witness's devices
/// out), its admin API and a witness; the device of every story is `EVT0001`. A story binds
/// every field, `_dir` included: the folder must outlive the server (on PostgreSQL a test
/// database whose folder is gone is reaped by the next test that creates one).
struct Scenario {
    receiver: Receiver,
    server: Server,
    api: Api,
    witness: Witness,
    _dir: tempfile::TempDir,
}

async fn scenario() -> Scenario {
    let receiver = Receiver::builder().ignoring(Witness::is_witness).start().await;
    let url = receiver.url();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(
        dir.path(),
        &[
            ("ADMS_WEBHOOK_URL", url.as_str()),
            ("ADMS_WEBHOOK_SECRET", SECRET),
            ("ADMS_TEST_CLOCK", "true"),
            ("ADMS_OFFLINE_AFTER_SECS", "30"),
        ],
    )
    .await;
    let api = Api::login(&server).await;
    let witness = Witness::create(&api).await;
    Scenario { receiver, server, api, witness, _dir: dir }
}

/// How many requests of each of `types` arrived, in that order.
fn counts(received: &[Received], types: &[&str]) -> Vec<usize> {
    types.iter().map(|t| received.iter().filter(|r| r.event_type() == *t).count()).collect()
}

/// Every request is signed (checked with the independent library), carries its `webhook-id` in
/// its body, is about `EVT0001`, and came once: one id per event.
fn assert_signed_once_each(received: &[Received]) {
    let verifier = standardwebhooks::Webhook::new(SECRET).expect("secret");
    let mut ids: Vec<&str> = Vec::new();
    for r in received {
        let body = r.json();
        assert_eq!(body["id"], r.id.as_str(), "the body carries the webhook-id");
        assert_eq!(body["api_version"], "1");
        assert_eq!(body["data"]["device"]["sn"], "EVT0001");
        let theirs = verifier.sign(&r.id, r.timestamp, &r.body).expect("library signs");
        assert!(r.signature.split(' ').any(|s| s == theirs), "signature of {} does not verify", r.id);
        ids.push(&r.id);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), received.len(), "one id per event, each delivered once");
}

#[tokio::test]
async fn a_first_contact_is_announced_once_as_device_registered() {
    let Scenario { receiver, server, api: _api, witness, _dir } = scenario().await;
    let dev = Device { server: &server, sn: "EVT0001".into() };

    assert_eq!(dev.handshake().await.status, 200);
    let registered = receiver.wait_for_n("device.registered", 1).await;
    let data = &registered[0].json()["data"];
    assert_eq!(data["device"], serde_json::json!({"sn": "EVT0001", "alias": "", "time_zone": "UTC"}));
    assert_eq!((&data["approval"], &data["protocol_family"]), (&"approved".into(), &"att".into()));
    assert_eq!(data["ip_address"], "127.0.0.1");

    // Contact again: no second registration (a dispatcher pass ran after it: the witness's).
    assert_eq!(dev.handshake().await.status, 200);
    witness.pass(&server).await;
    let received = receiver.received();
    assert_eq!(received.len(), 1, "nothing else: {:?}", received.iter().map(Received::event_type).collect::<Vec<_>>());
    assert_signed_once_each(&received);
}

#[tokio::test]
async fn user_lines_are_announced_as_enrolled_then_updated_once_each() {
    let Scenario { receiver, server, api: _api, witness, _dir } = scenario().await;
    let dev = Device { server: &server, sn: "EVT0001".into() };
    assert_eq!(dev.handshake().await.status, 200);

    // OPERLOG USER: user.enrolled; the same line again: nothing; a changed name: user.updated.
    let operlog = |line: &'static str| {
        let dev = &dev;
        async move { dev.post(&format!("/iclock/cdata?SN={}&table=OPERLOG&Stamp=1", dev.sn), line.as_bytes()).await }
    };
    let ann = "USER PIN=016\tName=Ann\tPri=0\tPasswd=Qx7Wz\tCard=[15CD5B07]\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n";
    assert_eq!(operlog(ann).await.text(), "OK: 1");
    let enrolled = receiver.wait_for_n("user.enrolled", 1).await;
    let data = &enrolled[0].json()["data"];
    assert_eq!((&data["pin"], &data["name"], &data["has_password"]), (&"016".into(), &"Ann".into(), &true.into()));
    assert!(
        !String::from_utf8_lossy(&enrolled[0].body).contains("Qx7Wz"),
        "the password is never sent (letters no id, digest or timestamp can hold)"
    );
    assert_eq!(operlog(ann).await.text(), "OK: 1");
    let ann_lee = "USER PIN=016\tName=Ann Lee\tPri=0\tPasswd=Qx7Wz\tCard=[15CD5B07]\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n";
    assert_eq!(operlog(ann_lee).await.text(), "OK: 1");
    let updated = receiver.wait_for_n("user.updated", 1).await;
    assert_eq!(updated[0].json()["data"]["name"], "Ann Lee");

    witness.pass(&server).await;
    let received = receiver.received();
    let types = ["device.registered", "user.enrolled", "user.updated"];
    assert_eq!(counts(&received, &types), [1, 1, 1], "the repeated line announced nothing");
    assert_eq!(received.len(), 3, "nothing else: {:?}", received.iter().map(Received::event_type).collect::<Vec<_>>());
    assert_signed_once_each(&received);
}

#[tokio::test]
async fn missed_heartbeats_and_the_return_are_announced_once_per_transition() {
    let Scenario { receiver, server, api, witness, _dir } = scenario().await;
    let dev = Device { server: &server, sn: "EVT0001".into() };
    assert_eq!(dev.handshake().await.status, 200);
    receiver.wait_for_n("device.registered", 1).await;

    // Missed heartbeats: 60 s without a request (threshold 30 s) → device.offline, once.
    api.advance_clock(60).await;
    let offline = receiver.wait_for_n("device.offline", 1).await;
    let data = &offline[0].json()["data"];
    assert_eq!((&data["reason"], &data["last_punch_seq"]), (&"heartbeat_missed".into(), &0.into()));
    assert!(data["last_seen_at"].as_str().unwrap().ends_with('Z'));
    // A witness device, silent as long as this one from now: its device.offline proves that a
    // presence check ran after the clock moved, and that what it found was sent.
    let silent = witness.device(&server).await;
    api.advance_clock(60).await;
    witness.offline(&silent).await;
    assert_eq!(receiver.of_type("device.offline").len(), 1, "still offline: no second device.offline");
    assert!(receiver.of_type("device.online").is_empty());

    // A poll: device.online, once, saying since when it was offline.
    assert_eq!(dev.get(&format!("/iclock/getrequest?SN={}", dev.sn)).await.text(), "OK");
    let online = receiver.wait_for_n("device.online", 1).await;
    let data = &online[0].json()["data"];
    assert_eq!(data["offline_since"], offline[0].json()["timestamp"]);
    assert_eq!(online[0].json()["timestamp"], data["back_at"]);
    assert_eq!(data["last_punch_seq"], 0);
    assert_eq!(dev.get(&format!("/iclock/getrequest?SN={}", dev.sn)).await.text(), "OK");

    // Silent again: a second transition under a second id.
    let silent = witness.device(&server).await;
    api.advance_clock(60).await;
    let offline = receiver.wait_for_n("device.offline", 2).await;
    assert_ne!(offline[0].id, offline[1].id);
    witness.offline(&silent).await;

    let received = receiver.received();
    let types = ["device.registered", "device.offline", "device.online"];
    assert_eq!(counts(&received, &types), [1, 2, 1]);
    assert_eq!(received.len(), 4, "nothing else: {:?}", received.iter().map(Received::event_type).collect::<Vec<_>>());
    assert_signed_once_each(&received);
}
