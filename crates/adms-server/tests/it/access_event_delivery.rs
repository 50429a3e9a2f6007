//! Access events through the webhook path with the guarantees punches have (the harness of
//! `webhook_delivery.rs`): every `rtlog` event delivered signed, once per id, the same id with
//! the same body after a lost answer or a killed server, `seq` contiguous per controller; and
//! the controller's cursor (`GET /api/v1/devices/{sn}/access-events`) serving the same events,
//! each once, with the same ids and numbers.

use crate::common;

use common::webhooks::{Receiver, Reply, SECRET, Witness, check_delivery_invariants};
use common::{Api, Device, Server, eventually};

/// `n` distinct `rtlog` lines numbered from `from` (a granted swipe each, one second apart).
fn rtlog_lines(from: usize, n: usize) -> Vec<u8> {
    (from..from + n)
        .map(|i| {
            format!(
                "time=2026-12-06 09:{:02}:{:02}\tpin={}\tcardno=0\teventaddr=1\tevent=0\tinoutstatus=0\tverifytype=1\tindex={i}\n",
                i / 60,
                i % 60,
                100 + i
            )
        })
        .collect::<String>()
        .into_bytes()
}

const ENV: [(&str, &str); 4] = [
    ("ADMS_WEBHOOK_SECRET", SECRET),
    ("ADMS_TEST_CLOCK", "true"),
    ("ADMS_UNKNOWN_DEVICES", "auto"),
    ("ADMS_WEBHOOK_TIMEOUT_SECS", "2"),
];

fn env(url: &str) -> Vec<(&str, &str)> {
    let mut env = vec![("ADMS_WEBHOOK_URL", url)];
    env.extend_from_slice(&ENV);
    env
}

async fn upload(dev: &Device<'_>, body: &[u8]) {
    let r = dev.post(&format!("/iclock/cdata?SN={}&table=rtlog", dev.sn), body).await;
    assert_eq!((r.status, r.text()), (200, "OK".to_owned()));
}

async fn controller<'a>(server: &'a Server, sn: &str) -> Device<'a> {
    let dev = Device { server, sn: sn.into() };
    let registry = dev.post(&format!("/iclock/registry?SN={sn}"), b"DeviceType=acc,LockCount=2").await;
    assert_eq!(registry.status, 200);
    dev
}

#[tokio::test]
async fn access_events_are_delivered_signed_once_per_id_and_the_cursor_serves_the_same() {
    let receiver = Receiver::builder().ignoring(Witness::is_witness).only("access.event").start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = receiver.url();
    let server = Server::in_process(dir.path(), &env(&url)).await;
    let api = Api::login(&server).await;
    let witness = Witness::create(&api).await;
    let dev = controller(&server, "ACCHOOK1").await;
    upload(&dev, &rtlog_lines(0, 3)).await;
    upload(&dev, &rtlog_lines(3, 4)).await;
    upload(&dev, &rtlog_lines(0, 3)).await; // re-sent: no new event
    receiver.wait_for_n("access.event", 7).await;
    witness.pass(&server).await;
    let received = receiver.received();
    assert_eq!(received.len(), 7, "a re-upload creates no second delivery");
    check_delivery_invariants(&received, 7);

    // The cursor: the same events, in seq order, in pages, with the webhooks' ids and numbers.
    let first = api.get("/api/v1/devices/ACCHOOK1/access-events?after_seq=0&limit=4").await;
    assert_eq!((first["next_after_seq"].as_i64(), first["has_more"].as_bool()), (Some(4), Some(true)));
    let rest = api.get("/api/v1/devices/ACCHOOK1/access-events?after_seq=4").await;
    assert_eq!((rest["next_after_seq"].as_i64(), rest["has_more"].as_bool()), (Some(7), Some(false)));
    let served: Vec<&serde_json::Value> =
        first["data"].as_array().unwrap().iter().chain(rest["data"].as_array().unwrap()).collect();
    let seqs: Vec<i64> = served.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    for event in &served {
        let sent = received.iter().find(|r| r.id == event["event_id"].as_str().unwrap()).expect("was delivered");
        let data = &sent.json()["data"];
        for field in ["seq", "pin", "local_time", "event_code", "event_name", "level", "door"] {
            assert_eq!(event[field], data[field], "{field} of {event}");
        }
        assert_eq!(event["id"], data["access_event_id"]);
    }
    assert_eq!(served[0]["pin"], "100");
    let nothing = api.get("/api/v1/devices/ACCHOOK1/access-events?after_seq=7").await;
    assert_eq!(nothing["data"].as_array().map(Vec::len), Some(0));

    let (status, _) = api.get_status("/api/v1/devices/NOSUCH/access-events").await;
    assert_eq!(status, 404);
    let (status, body) = api.get_status("/api/v1/devices/ACCHOOK1/access-events?after_seq=-1&limit=0").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) =
        reqwest::get(server.url("/api/v1/devices/ACCHOOK1/access-events")).await.map(|r| (r.status(), ())).unwrap();
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_lost_answer_to_an_access_event_is_redelivered_with_the_same_id_and_body() {
    let receiver = Receiver::builder().only("access.event").script(vec![Reply::Drop]).start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = receiver.url();
    let server = Server::in_process(dir.path(), &env(&url)).await;
    let api = Api::login(&server).await;
    let dev = controller(&server, "ACCHOOK2").await;
    upload(&dev, &rtlog_lines(0, 1)).await;
    eventually("the event is redelivered after the lost answer", async || {
        if receiver.received().len() >= 2 {
            return true;
        }
        api.advance_clock(10).await;
        false
    })
    .await;
    let received = receiver.received();
    assert_eq!(received[0].status, 0, "the first was not answered");
    assert_eq!((&received[0].id, &received[0].body), (&received[1].id, &received[1].body));
    check_delivery_invariants(&received, 1);
}

#[tokio::test]
async fn a_server_killed_while_delivering_an_access_event_sends_the_same_event_after_restart() {
    let receiver = Receiver::builder().only("access.event").script(vec![Reply::Hang]).start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = receiver.url();
    let mut server = Server::start(dir.path(), &env(&url));
    let dev = controller(&server, "ACCHOOK3").await;
    upload(&dev, &rtlog_lines(0, 1)).await;
    eventually("the delivery is in flight", async || !receiver.received().is_empty()).await;
    server.kill(); // SIGKILL while the request hangs: the delivery stays leased
    let server = Server::start(dir.path(), &env(&url));
    let api = Api::login(&server).await;
    // The lease (max(timeout, 30 s) + 30 s) runs out; the sweep returns it; it is sent again.
    eventually("the event is sent again", async || {
        api.advance_clock(70).await;
        receiver.received().len() >= 2
    })
    .await;
    let received = receiver.received();
    assert_eq!((&received[0].id, &received[0].body), (&received[1].id, &received[1].body));
    check_delivery_invariants(&received, 1);
    receiver.stop();
}
