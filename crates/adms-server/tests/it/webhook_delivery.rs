//! Webhook delivery end to end: the real binary, a programmable receiver on loopback, the
//! controllable clock (`ADMS_TEST_CLOCK`), SIGKILL. After each scenario the invariants hold:
//! every punch delivered (by distinct `webhook-id`), same id ⇒ identical body, per-device `seq`
//! contiguous, every signature valid (checked with the independent `standardwebhooks` crate).
//!
//! The scenarios are about punches. The `ADMS_WEBHOOK_URL` endpoint also gets every other event
//! type (`device.registered`, and `device.offline` once the clock moves past the threshold): the
//! receivers here acknowledge those without recording them or spending their scripted replies.
//! They have their own test, `webhook_events.rs`.

use crate::common;

use common::webhooks::{Received, Receiver, Reply, SECRET, Witness, check_delivery_invariants};
use common::{Api, Device, Server, eventually};

/// A receiver that records punch requests only (the scenarios' subject) and answers them as
/// `script` says, then 200.
async fn start_receiver(addr: &str, script: Vec<Reply>) -> Receiver {
    Receiver::builder().bind(addr).only("attendance.punch").script(script).start().await
}

fn distinct_ids(receiver: &Receiver) -> usize {
    let mut ids: Vec<String> = receiver.received().into_iter().map(|r| r.id).collect();
    ids.sort();
    ids.dedup();
    ids.len()
}

/// Waits until `n` distinct punch ids arrived, moving the test clock by nothing on each look
/// when `api` is given (which wakes the dispatcher).
async fn wait_for_ids(receiver: &Receiver, n: usize, api: Option<&Api>) {
    eventually(&format!("{n} distinct punch ids arrive"), async || {
        if let Some(api) = api {
            api.advance_clock(0).await;
        }
        distinct_ids(receiver) >= n
    })
    .await;
}

/// The server in process, its `ADMS_WEBHOOK_URL` endpoint `url`, on the test clock.
async fn start_server(dir: &std::path::Path, url: &str, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![("ADMS_WEBHOOK_URL", url), ("ADMS_WEBHOOK_SECRET", SECRET), ("ADMS_TEST_CLOCK", "true")];
    env.extend_from_slice(extra);
    Server::in_process(dir, &env).await
}

/// [`start_server`] as a process of its own (to SIGKILL).
fn start_server_process(dir: &std::path::Path, url: &str, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![("ADMS_WEBHOOK_URL", url), ("ADMS_WEBHOOK_SECRET", SECRET), ("ADMS_TEST_CLOCK", "true")];
    env.extend_from_slice(extra);
    Server::start(dir, &env)
}

#[tokio::test]
async fn every_punch_is_delivered_signed_once_per_id_and_reuploads_add_nothing() {
    let receiver = start_receiver("127.0.0.1:0", vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &receiver.url(), &[]).await;
    let witness = Witness::create(&Api::login(&server).await).await;
    let dev = Device { server: &server, sn: "HOOK0001".into() };
    dev.handshake().await;
    let batch = common::webhooks::attlog_lines(0, 20);
    assert_eq!(dev.attlog(&batch).await.text(), "OK: 20");
    assert_eq!(dev.attlog(&batch).await.text(), "OK: 20", "re-upload");
    wait_for_ids(&receiver, 20, None).await;
    witness.pass(&server).await;
    let received = receiver.received();
    assert_eq!(received.len(), 20, "a re-upload creates no second delivery");
    check_delivery_invariants(&received, 20);
    let first: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(first["type"], "attendance.punch");
    assert_eq!(first["data"]["device"]["sn"], "HOOK0001");
    assert_eq!(first["data"]["time_basis"], "device_clock");

    // Delivery metrics, Prometheus text, behind auth like every API route.
    let url = server.url("/metrics");
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 401);
    let api = Api::login(&server).await;
    let text = api
        .client
        .get(&url)
        .header("Authorization", format!("Token {}", api.token))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in {text}"))
    };
    // 20 punches and the device's registration.
    assert!(value("adms_webhook_attempts_total{endpoint=\"ep_env_") >= 20.0, "{text}");
    assert!(text.contains("outcome=\"delivered\""));
    assert!(value("adms_webhook_delivery_latency_seconds_count") >= 20.0);
    assert_eq!(value("adms_webhook_deliveries_due{"), 0.0);

    // The event log: the exact bodies that were sent, with their delivery counts.
    let events = api.get("/api/v1/webhooks/events?type=attendance.punch&device_sn=HOOK0001&limit=500").await;
    let events = events["data"].as_array().unwrap();
    assert_eq!(events.len(), 20);
    for e in events {
        assert_eq!(e["body"]["id"], e["event_id"]);
        assert_eq!((e["deliveries"].as_i64(), e["delivered"].as_i64()), (Some(1), Some(1)));
        let sent = received.iter().find(|r| r.id == e["event_id"].as_str().unwrap()).expect("was delivered");
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&sent.body).unwrap(), e["body"]);
    }
    let (status, _) = api.get_status("/api/v1/webhooks/events?type=nonsense").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn failures_are_retried_on_schedule_and_retry_after_is_honoured() {
    let receiver =
        start_receiver("127.0.0.1:0", vec![Reply::Status(500), Reply::Status(503), Reply::RetryAfter(429, 120)]).await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &receiver.url(), &[]).await;
    let api = Api::login(&server).await;
    let witness = Witness::create(&api).await;
    let dev = Device { server: &server, sn: "HOOK0002".into() };
    dev.handshake().await;
    assert_eq!(dev.attlog(&common::webhooks::attlog_lines(0, 1)).await.text(), "OK: 1");
    // Attempt 1 at once (500); attempt 2 after 5 s (+ up to 1 s jitter): not before.
    wait_for_requests(&receiver, 1).await;
    api.advance_clock(4).await;
    witness.pass(&server).await;
    assert_eq!(receiver.received().len(), 1, "not retried before its time");
    api.advance_clock(3).await;
    wait_for_requests(&receiver, 2).await; // 503
    api.advance_clock(34).await; // 30 s step + jitter
    wait_for_requests(&receiver, 3).await; // 429, Retry-After 120 > the 2 min step's floor: ≥ 120 s
    api.advance_clock(100).await;
    witness.pass(&server).await;
    assert_eq!(receiver.received().len(), 3, "Retry-After honoured");
    api.advance_clock(40).await;
    wait_for_requests(&receiver, 4).await;
    check_delivery_invariants(&receiver.received(), 1);
}

async fn wait_for_requests(receiver: &Receiver, n: usize) {
    eventually(&format!("{n} punch requests arrive"), async || receiver.received().len() >= n).await;
}

#[tokio::test]
async fn receiver_down_for_two_days_then_up_gets_everything() {
    // A port left closed: connection refused until the receiver starts.
    let addr = common::closed_loopback_addr();
    let url = format!("http://{addr}/hook");
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &url, &[]).await;
    let api = Api::login(&server).await;
    let witness = Witness::create(&api).await;
    let dev = Device { server: &server, sn: "HOOK0003".into() };
    dev.handshake().await;
    assert_eq!(dev.attlog(&common::webhooks::attlog_lines(0, 5)).await.text(), "OK: 5");
    assert_eq!(dev.attlog(&common::webhooks::attlog_lines(5, 5)).await.text(), "OK: 5");
    // Two days, an hour at a time; after each hour a dispatcher pass has claimed (and failed to
    // send) every retry that hour made due.
    for _ in 0..48 {
        api.advance_clock(3600).await;
        witness.pass(&server).await;
    }
    let receiver = start_receiver(&addr.to_string(), vec![]).await;
    api.advance_clock(12 * 3600).await;
    wait_for_ids(&receiver, 10, Some(&api)).await;
    check_delivery_invariants(&receiver.received(), 10);
    // Read the outbox itself: every delivery succeeded, after retrying through the outage. The
    // receiver sees a request before its attempt is recorded: wait for the records.
    let outcome = async || -> (i64, i64) {
        server
            .db()
            .fetch_optional(
                "SELECT COUNT(*), COALESCE(MIN(d.attempt_count), 0) FROM webhook_deliveries AS d JOIN webhook_events AS e \
                 ON e.id = d.event_row WHERE d.state = 'succeeded' AND e.event_type = 'attendance.punch'",
                &[],
            )
            .await
            .expect("one row")
    };
    eventually("all 10 punch deliveries are recorded as succeeded", async || outcome().await.0 == 10).await;
    let (succeeded, min_attempts) = outcome().await;
    assert_eq!(succeeded, 10);
    assert!(min_attempts >= 10, "retried through the outage ({min_attempts} attempts)");
}

/// A receiver down for a day, then back: its first success makes every delivery that waits out
/// a retry delay due at once, so the backlog arrives in seconds (each id once), not when each
/// delay (hours by then) ends. Meanwhile the backlog route shows the outage: everything waiting,
/// the oldest undelivered a day old, failures in a row.
#[tokio::test]
async fn a_receiver_back_after_a_day_gets_its_backlog_at_once() {
    let addr = common::closed_loopback_addr();
    let url = format!("http://{addr}/hook");
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &url, &[]).await;
    let api = Api::login(&server).await;
    let witness = Witness::create(&api).await;
    let dev = Device { server: &server, sn: "HOOK0005".into() };
    dev.handshake().await;
    assert_eq!(dev.attlog(&common::webhooks::attlog_lines(0, 10)).await.text(), "OK: 10");
    for _ in 0..24 {
        api.advance_clock(3600).await;
        witness.pass(&server).await;
    }
    // The configured endpoint is the failing one (the witness's answers); it also gets the
    // device events, so its backlog is the 10 punches and more.
    let (_, backlog) = api.get_status("/api/v1/webhooks/backlog").await;
    let failing: Vec<&serde_json::Value> =
        backlog["data"].as_array().unwrap().iter().filter(|r| r["consecutive_failures"] != 0).collect();
    assert_eq!(failing.len(), 1, "{backlog}");
    let row = failing[0];
    // (`due` may hold the last witness device's event, made due this very moment.)
    assert!(row["waiting"].as_i64().unwrap() >= 10, "the backlog waits out retry delays: {row}");
    assert!(row["consecutive_failures"].as_i64().unwrap() >= 10, "{row}");
    assert!(row["oldest_pending_age_secs"].as_f64().unwrap() >= 86_400.0, "a day behind: {row}");
    assert!(row["last_success_at"].is_null(), "{row}");

    // The receiver is back. The clock moves in 5-minute steps only until the first retry reaches
    // it; from then on it stands still, so the others (due hours later) arrive only if the
    // first success made them due.
    let receiver = start_receiver(&addr.to_string(), vec![]).await;
    let mut steps = 0;
    while distinct_ids(&receiver) == 0 {
        steps += 1;
        assert!(steps <= 24 * 12, "no retry within a day of the receiver's return");
        api.advance_clock(300).await;
        witness.pass(&server).await;
    }
    wait_for_ids(&receiver, 10, Some(&api)).await;
    check_delivery_invariants(&receiver.received(), 10);
    eventually("the backlog is empty and the endpoint healthy again", async || {
        let (_, backlog) = api.get_status("/api/v1/webhooks/backlog").await;
        backlog["data"].as_array().unwrap().iter().all(|r| {
            r["waiting"] == 0 && r["due"] == 0 && r["consecutive_failures"] == 0 && !r["last_success_at"].is_null()
        })
    })
    .await;
}

#[tokio::test]
async fn a_server_killed_mid_request_redelivers_the_same_event_after_restart() {
    let receiver = start_receiver("127.0.0.1:0", vec![Reply::Hang]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_server_process(dir.path(), &receiver.url(), &[("ADMS_WEBHOOK_TIMEOUT_SECS", "2")]);
    let dev = Device { server: &server, sn: "HOOK0004".into() };
    dev.handshake().await;
    assert_eq!(dev.attlog(&common::webhooks::attlog_lines(0, 1)).await.text(), "OK: 1");
    wait_for_requests(&receiver, 1).await;
    server.kill(); // SIGKILL while the request hangs: the delivery stays leased
    let server = start_server_process(dir.path(), &receiver.url(), &[("ADMS_WEBHOOK_TIMEOUT_SECS", "2")]);
    let api = Api::login(&server).await;
    // The lease (max(timeout, 30 s) + 30 s) runs out; the sweep returns it; it is sent again.
    api.advance_clock(70).await;
    wait_for_ids(&receiver, 1, Some(&api)).await;
    wait_for_requests(&receiver, 2).await;
    let received = receiver.received();
    assert_eq!(received[0].id, received[1].id, "same webhook-id after the crash");
    assert_eq!(received[0].body, received[1].body, "byte-identical body");
    check_delivery_invariants(&received, 1);
    receiver.stop();
}

#[tokio::test]
async fn a_lost_response_is_redelivered_with_the_same_id_and_body() {
    // The first punch request is processed, then the connection dropped without an answer.
    let receiver = start_receiver("127.0.0.1:0", vec![Reply::Drop]).await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &receiver.url(), &[]).await;
    let api = Api::login(&server).await;
    let dev = Device { server: &server, sn: "HOOK0005".into() };
    dev.handshake().await;
    assert_eq!(dev.attlog(&common::webhooks::attlog_lines(0, 1)).await.text(), "OK: 1");
    eventually("the punch is redelivered after the lost response", async || {
        if receiver.received().len() >= 2 {
            return true;
        }
        api.advance_clock(10).await;
        false
    })
    .await;
    let received = receiver.received();
    assert!(received.len() >= 2, "redelivered after the lost response");
    assert_eq!(received[0].status, 0, "the first was not answered");
    assert_eq!(received[0].id, received[1].id);
    assert_eq!(received[0].body, received[1].body);
    check_delivery_invariants(&received, 1);
}

#[tokio::test]
async fn a_timeout_is_retried_and_a_410_pauses_the_endpoint_until_resumed() {
    let receiver = start_receiver("127.0.0.1:0", vec![Reply::Hang, Reply::Status(410)]).await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &receiver.url(), &[("ADMS_WEBHOOK_TIMEOUT_SECS", "1")]).await;
    let api = Api::login(&server).await;
    let witness = Witness::create(&api).await;
    let dev = Device { server: &server, sn: "HOOK0006".into() };
    dev.handshake().await;
    assert_eq!(dev.attlog(&common::webhooks::attlog_lines(0, 1)).await.text(), "OK: 1");
    // Attempt 1 hangs past the 1 s timeout; a timeout waits at least 60 s before the next one.
    wait_for_requests(&receiver, 1).await;
    // The clock moves only once the hung attempt has timed out and been recorded.
    let uid = api.get("/api/v1/webhooks/endpoints").await["data"][0]["id"].as_str().unwrap().to_owned();
    eventually("the hung attempt times out and is recorded", async || {
        let deliveries = api.get(&format!("/api/v1/webhooks/deliveries?endpoint={uid}")).await;
        let Some(id) = deliveries["data"][0]["id"].as_i64() else { return false };
        let attempts = api.get(&format!("/api/v1/webhooks/deliveries/{id}/attempts")).await;
        attempts["data"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    api.advance_clock(30).await;
    witness.pass(&server).await;
    assert_eq!(receiver.received().len(), 1, "a timeout is not retried at once");
    api.advance_clock(40).await;
    wait_for_requests(&receiver, 2).await; // 410
    let endpoints = api.get("/api/v1/webhooks/endpoints").await;
    let endpoint = &endpoints["data"][0];
    eventually("the 410 pauses the endpoint", async || {
        api.get("/api/v1/webhooks/endpoints").await["data"][0]["paused_reason"] == "gone"
    })
    .await;
    let uid = endpoint["id"].as_str().unwrap().to_owned();
    let endpoint = api.get(&format!("/api/v1/webhooks/endpoints/{uid}")).await;
    assert_eq!((endpoint["paused"].as_bool(), endpoint["paused_reason"].as_str()), (Some(true), Some("gone")));

    // Paused: new punches accumulate, nothing is sent, however far the clock moves.
    assert_eq!(dev.attlog(&common::webhooks::attlog_lines(1, 2)).await.text(), "OK: 2");
    api.advance_clock(3600).await;
    witness.pass(&server).await;
    assert_eq!(receiver.received().len(), 2);
    let pending = api.get(&format!("/api/v1/webhooks/deliveries?endpoint={uid}&state=pending")).await;
    let pending_punches =
        pending["data"].as_array().unwrap().iter().filter(|d| d["event_type"] == "attendance.punch").count();
    assert_eq!(pending_punches, 3, "the 410'd delivery and the two new ones wait");

    let (status, _) =
        api.patch_json(&format!("/api/v1/webhooks/endpoints/{uid}"), &serde_json::json!({ "paused": false })).await;
    assert_eq!(status, 200);
    wait_for_ids(&receiver, 3, Some(&api)).await;
    check_delivery_invariants(&receiver.received(), 3);
    let attempts = |received: &[Received], id: &str| received.iter().filter(|r| r.id == id).count();
    let received = receiver.received();
    assert_eq!(attempts(&received, &received[0].id), 3, "timeout, 410, then delivered: one id throughout");
}
