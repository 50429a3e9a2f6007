//! Two `adms-bridge` processes on one SQLite database file (WAL), both dispatching webhooks to
//! one receiver that records every request and the status it answered.
//!
//! Process A's request for the first punch hangs; process B's clock (the test clock; in
//! production both clocks agree) is moved past A's lease, so B's sweep returns the delivery to
//! the queue and B sends it again and succeeds. When A's request finally gets its 200, A's
//! completion is refused: its lease token is stale (an attempt with `accepted = false`). Then a
//! backlog uploaded through both processes drains with both dispatching, while the receiver
//! answers every fifth punch request with 500. Afterwards: every punch reached the receiver in a
//! request it acknowledged, no delivery is `succeeded` without a 2xx for its id, same id ⇒ same
//! body, every signature valid, `seq` contiguous.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use common::webhooks::{Received, Receiver, Reply, SECRET};
use common::{Api, Database, Device, Server, eventually};

/// Punch requests, in arrival order, with the status each was (or will be) answered with.
fn punches(receiver: &Receiver) -> Vec<(Received, u16)> {
    receiver.received().into_iter().map(|r| (r.clone(), r.status)).collect()
}

/// (delivery id, event id, state, accepted attempts as (worker, status, accepted)).
async fn punch_deliveries(db: &Database) -> Vec<(i64, String, String)> {
    db.fetch_all(
        "SELECT d.id, e.event_id, d.state FROM webhook_deliveries AS d JOIN webhook_events AS e ON e.id = d.event_row \
         WHERE e.event_type = 'attendance.punch' ORDER BY d.id",
        &[],
    )
    .await
}

/// Every attempt of a delivery: (worker, trigger, HTTP status, accepted), oldest first.
async fn attempts(db: &Database, delivery_id: i64) -> Vec<(String, String, Option<i64>, bool)> {
    db.fetch_all(
        "SELECT worker, trigger_kind, http_status, accepted FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id",
        &[delivery_id.into()],
    )
    .await
}

#[tokio::test]
async fn two_processes_on_one_database_race_for_leases_and_a_stale_completion_is_refused() {
    // The first punch request is held open until released; every fifth is answered 500.
    // Device events are acknowledged, not part of the scenario.
    let receiver = Receiver::builder()
        .only("attendance.punch")
        .replying(|ordinal| match ordinal {
            1 => Reply::Held(200),
            n if n % 5 == 0 => Reply::Status(500),
            _ => Reply::Status(200),
        })
        .start()
        .await;
    let url = receiver.url();
    let env = [
        ("ADMS_WEBHOOK_URL", url.as_str()),
        ("ADMS_WEBHOOK_SECRET", SECRET),
        ("ADMS_TEST_CLOCK", "true"),
        ("ADMS_WEBHOOK_TIMEOUT_SECS", "30"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let a = Server::start(dir.path(), &env);
    let api_a = Api::login(&a).await;
    let dev_a = Device { server: &a, sn: "RACE0001".into() };
    dev_a.handshake().await;
    assert_eq!(dev_a.attlog(&common::webhooks::attlog_lines(0, 1)).await.text(), "OK: 1");
    eventually("A's request hangs", async || punches(&receiver).len() == 1).await;

    // B opens the same file while A holds the lease; its clock is moved past that lease.
    let b = Server::start(dir.path(), &env);
    assert_eq!(a.db().url(), b.db().url());
    let api_b = Api::login(&b).await;
    api_b.advance_clock(70).await;
    eventually("B sends the first punch again", async || punches(&receiver).len() >= 2).await;
    let first_id = punches(&receiver)[0].0.id.clone();
    assert_eq!(punches(&receiver)[1].0.id, first_id, "the same event, re-claimed by B");
    let deliveries = punch_deliveries(a.db()).await;
    let first_delivery = deliveries[0].0;
    eventually("B's 200 completes the first delivery", async || punch_deliveries(a.db()).await[0].2 == "succeeded")
        .await;
    assert_eq!(punch_deliveries(a.db()).await[0].2, "succeeded", "B's 200 completed it");
    // The clocks agree again; A's held request is answered 200 now, too late.
    api_a.advance_clock(70).await;
    receiver.release();
    let worker_a = format!("adms-bridge-{}", a.pid());
    let worker_b = format!("adms-bridge-{}", b.pid());
    eventually("A's late answer is recorded", async || {
        attempts(a.db(), first_delivery).await.iter().any(|t| t.0 == worker_a && !t.3)
    })
    .await;
    let history = attempts(a.db(), first_delivery).await;
    assert!(
        history
            .iter()
            .any(|(w, trigger, status, ok)| *w == worker_a && trigger == "scheduled" && *status == Some(200) && !ok),
        "A's late 200 is recorded but refused: {history:?}"
    );
    assert!(history.iter().any(|(_, trigger, _, ok)| trigger == "lease_expired" && *ok), "{history:?}");
    assert!(history.iter().any(|(w, _, status, ok)| *w == worker_b && *status == Some(200) && *ok), "{history:?}");
    assert_eq!(punch_deliveries(a.db()).await[0].2, "succeeded", "the refused report changed nothing");

    // A backlog through both processes (one device, alternating), both dispatching.
    let dev_b = Device { server: &b, sn: "RACE0001".into() };
    let total = 1 + 8 * 25;
    for chunk in 0..8 {
        let device = if chunk % 2 == 0 { &dev_a } else { &dev_b };
        assert_eq!(device.attlog(&common::webhooks::attlog_lines(1 + chunk * 25, 25)).await.text(), "OK: 25");
    }
    let acknowledged = || -> BTreeSet<String> {
        punches(&receiver).iter().filter(|(_, status)| *status == 200).map(|(r, _)| r.id.clone()).collect()
    };
    eventually("every punch is acknowledged and every delivery settled", async || {
        let settled = punch_deliveries(a.db()).await.iter().all(|d| d.2 == "succeeded");
        if acknowledged().len() >= total && settled {
            return true;
        }
        // Retries after the 500s: both clocks move together.
        api_a.advance_clock(10).await;
        api_b.advance_clock(10).await;
        false
    })
    .await;
    let acknowledged = acknowledged();
    assert_eq!(acknowledged.len(), total, "every punch reached the receiver in an acknowledged request");

    let punches = punches(&receiver);
    let verifier = standardwebhooks::Webhook::new(SECRET).unwrap();
    let mut bodies: BTreeMap<&str, &Bytes> = BTreeMap::new();
    for (r, _) in &punches {
        let theirs = verifier.sign(&r.id, r.timestamp, &r.body).unwrap();
        assert!(r.signature.split(' ').any(|s| s == theirs), "signature of {} does not verify", r.id);
        if let Some(first) = bodies.insert(&r.id, &r.body) {
            assert_eq!(first, &r.body, "same webhook-id, different body");
        }
    }
    let mut seqs: Vec<i64> = bodies
        .values()
        .map(|b| serde_json::from_slice::<serde_json::Value>(b).unwrap()["data"]["seq"].as_i64().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>(), "seq contiguous across both processes");

    // No delivery succeeded without a 2xx for its id; its accepted success is a 2xx attempt.
    let deliveries = punch_deliveries(a.db()).await;
    assert_eq!(deliveries.len(), total);
    let mut workers_that_succeeded = BTreeSet::new();
    for (id, event_id, state) in &deliveries {
        assert_eq!(state, "succeeded");
        assert!(acknowledged.contains(event_id), "{event_id} succeeded without a 2xx");
        let history = attempts(a.db(), *id).await;
        let (worker, _, status, _) = history.iter().rev().find(|t| t.3).expect("an accepted attempt");
        assert!(status.is_some_and(|s| (200..300).contains(&s)), "{event_id}: last accepted attempt {history:?}");
        workers_that_succeeded.insert(worker.clone());
    }
    assert!(
        workers_that_succeeded.contains(&worker_a) && workers_that_succeeded.contains(&worker_b),
        "both processes delivered: {workers_that_succeeded:?}"
    );
}
