//! Replicas split by role on one database (`--role device|api|worker`), and the drain on
//! shutdown: `/readyz` answers 503 while requests are still served, then the process stops
//! having lost and doubled nothing.

use crate::common;

use common::webhooks::{Receiver, Reply, SECRET, attlog_lines};
use common::{Api, Device, Server, eventually};
use serde_json::{Value, json};

async fn readyz(server: &Server) -> (u16, Value) {
    let response = reqwest::get(server.url("/readyz")).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The sum of `adms_webhook_attempts_total` on `server`'s `/metrics`: the attempts this
/// process made.
async fn delivery_attempts(server: &Server, api: &Api) -> f64 {
    let text = api.metrics_of(&server.addr).await;
    common::sum_samples(&text, |line| line.starts_with("adms_webhook_attempts_total{")).unwrap_or(0.0)
}

#[tokio::test]
async fn replicas_split_by_role_serve_their_own_routes_and_duties() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let device_side = Server::in_process(dir.path(), &[("ADMS_ROLE", "device")]).await;
    let api_side = Server::in_process(dir.path(), &[("ADMS_ROLE", "api")]).await;
    let worker = Server::in_process(dir.path(), &[("ADMS_ROLE", "worker")]).await;

    // Every replica answers the probes, with its role; only the device side runs a punch writer.
    for (server, role, writer) in
        [(&device_side, "device", "ok"), (&api_side, "api", "not used"), (&worker, "worker", "not used")]
    {
        let (status, ready) = readyz(server).await;
        assert_eq!(status, 200, "{role}: {ready}");
        assert_eq!((ready["role"].as_str(), ready["checks"]["punch_writer"].as_str()), (Some(role), Some(writer)));
        assert_eq!(ready["checks"]["wake_ups"], if role == "device" { "ok" } else { "not used" });
        assert_eq!(reqwest::get(server.url("/healthz")).await.unwrap().status(), 200);
    }

    // The routes of a role a replica does not have are not there.
    let api = Api::login(&api_side).await;
    for server in [&api_side, &worker] {
        let dev = Device { server, sn: "ROLE0001".into() };
        assert_eq!(dev.handshake().await.status, 404, "{}", server.url("/iclock/cdata"));
    }
    for server in [&device_side, &worker] {
        let response = api
            .client
            .get(server.url("/iclock/api/transactions/"))
            .header("Authorization", format!("Token {}", api.token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        assert_eq!(response.json::<Value>().await.unwrap(), json!({"detail": "Not found."}));
    }

    // Punches uploaded to the device side, read through the API side, delivered by the worker.
    let (status, endpoint) = api.post_json("/api/v1/webhooks/endpoints", &json!({"url": receiver.url()})).await;
    assert_eq!(status, 201, "{endpoint}");
    let dev = Device { server: &device_side, sn: "ROLE0001".into() };
    assert_eq!(dev.handshake().await.status, 200);
    let lines = b"1\t2026-11-20 08:00:00\t0\t1\t0\t0\t0\n2\t2026-11-20 08:01:00\t0\t1\t0\t0\t0\n";
    assert_eq!(dev.attlog(lines).await.text(), "OK: 2");
    assert_eq!(api.transactions("?terminal_sn=ROLE0001").await.len(), 2);
    eventually("the worker delivers both punches", async || {
        receiver.received().iter().filter(|r| r.event_type() == "attendance.punch").count() == 2
    })
    .await;
    assert!(delivery_attempts(&worker, &api).await >= 2.0, "the worker made the attempts");
    assert_eq!(delivery_attempts(&device_side, &api).await, 0.0, "the device side runs no dispatcher");
    assert_eq!(delivery_attempts(&api_side, &api).await, 0.0, "the API side runs no dispatcher");

    // A command queued through the API side is handed out by the device side's poll.
    let (status, queued) =
        api.post_json("/api/v1/devices/ROLE0001/commands", &json!({"command": {"type": "reboot"}})).await;
    assert_eq!(status, 201, "{queued}");
    let mut reply = String::new();
    eventually("the device side hands out the command queued through the API side", async || {
        reply = dev.get("/iclock/getrequest?SN=ROLE0001").await.text();
        reply != "OK"
    })
    .await;
    assert_eq!(reply, format!("C:{}:REBOOT\n", queued["id"]));
}

/// SIGTERM: `/readyz` turns 503 (`shutdown: draining`) while uploads are still answered, a
/// second signal ends the drain, the process exits cleanly, and every punch it acknowledged is
/// there once after a restart (a re-send adds nothing).
#[tokio::test]
async fn sigterm_drains_with_readyz_503_first_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[("ADMS_DRAIN_SECS", "600")]);
    let sent: Vec<Vec<u8>> =
        (0..40).map(|i| format!("{i}\t2026-11-20 08:{:02}:00\t0\t1\t0\t0\t0\n", i % 60).into_bytes()).collect();
    let acknowledged = {
        let dev = Device { server: &server, sn: "DRAIN001".into() };
        assert_eq!(dev.handshake().await.status, 200);
        let mut acknowledged = 0;
        for body in &sent[..20] {
            assert_eq!(dev.attlog(body).await.text(), "OK: 1");
            acknowledged += 1;
        }
        server.signal_term();
        eventually("/readyz answers 503 draining", async || {
            let (status, ready) = readyz(&server).await;
            status == 503 && ready["checks"]["shutdown"] == "draining"
        })
        .await;
        let (_, ready) = readyz(&server).await;
        assert_eq!(ready["reason"], "shutdown: draining");
        // Still served while draining: the balancer has not taken the replica out yet.
        for body in &sent[20..] {
            assert_eq!(dev.attlog(body).await.text(), "OK: 1");
            acknowledged += 1;
        }
        acknowledged
    };
    server.signal_term();
    let status = server.wait_for_exit();
    assert!(status.success(), "{status}");

    let server = Server::start(dir.path(), &[]);
    let api = Api::login(&server).await;
    assert_eq!(api.transactions("?terminal_sn=DRAIN001&page_size=100").await.len(), acknowledged);
    let dev = Device { server: &server, sn: "DRAIN001".into() };
    let all: Vec<u8> = sent.concat();
    assert_eq!(dev.attlog(&all).await.text(), "OK: 40");
    assert_eq!(api.transactions("?terminal_sn=DRAIN001&page_size=100").await.len(), 40, "a re-send adds nothing");
}

/// SIGTERM while a webhook delivery is in flight: the process waits for it (the receiver's 200
/// is recorded before it exits), exits cleanly, and after a restart the event is not sent again — the next
/// punch's delivery, which comes after any resend would, proves it.
// Multi-threaded: the receiver answers on another thread while this one waits for the exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_delivery_finishes_it_and_sends_it_once() {
    let receiver = Receiver::builder()
        .only("attendance.punch")
        .replying(|ordinal| if ordinal == 1 { Reply::Held(200) } else { Reply::Status(200) })
        .start()
        .await;
    let url = receiver.url();
    let env = [("ADMS_WEBHOOK_URL", url.as_str()), ("ADMS_WEBHOOK_SECRET", SECRET)];
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &env);
    {
        let dev = Device { server: &server, sn: "TERM0001".into() };
        assert_eq!(dev.handshake().await.status, 200);
        assert_eq!(dev.attlog(&attlog_lines(0, 1)).await.text(), "OK: 1");
    }
    eventually("the delivery is in flight", async || receiver.of_type("attendance.punch").len() == 1).await;
    server.signal_term();
    // Shutdown under way (the listener is closed) while the delivery is still held.
    let addr = server.addr.clone();
    eventually("the listener closes", async || tokio::net::TcpStream::connect(&addr).await.is_err()).await;
    receiver.release();
    let status = server.wait_for_exit();
    assert!(status.success(), "{status}");
    // Recorded before the process ended: a process that left without waiting would have left
    // the delivery leased (`in_flight`) and the receiver's answer unheard.
    let succeeded = "SELECT COUNT(*) FROM webhook_deliveries AS d JOIN webhook_events AS e ON e.id = d.event_row \
                     WHERE e.event_type = 'attendance.punch' AND d.state = 'succeeded'";
    assert_eq!(server.db().scalar_i64(succeeded, &[]).await, 1);
    let first = receiver.of_type("attendance.punch")[0].id.clone();

    let server = Server::start(dir.path(), &env);
    let dev = Device { server: &server, sn: "TERM0001".into() };
    assert_eq!(dev.attlog(&attlog_lines(1, 1)).await.text(), "OK: 1");
    eventually("the next punch is delivered", async || receiver.of_type("attendance.punch").len() >= 2).await;
    let ids: Vec<String> = receiver.of_type("attendance.punch").into_iter().map(|r| r.id).collect();
    assert_eq!(ids.iter().filter(|id| **id == first).count(), 1, "the finished delivery was sent again: {ids:?}");
}
