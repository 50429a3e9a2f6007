//! Batched delivery end to end: the real binary, a loopback receiver, the controllable clock.
//! A backlog of punches (an endpoint paused while a terminal uploads, then resumed) reaches a
//! batching, ordered endpoint in requests of at most `batch_max` events; the first batch fails
//! and its retry carries the same `webhook-id` and byte-identical body. Invariants: every punch
//! delivered in a batch the receiver acknowledged, same id ⇒ same body, every signature valid
//! (the independent `standardwebhooks` crate), `seq` order inside and across batches.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use common::webhooks::{Received, Receiver, Reply, Witness};
use common::{Api, Device, Server, eventually};
use serde_json::{Value, json};

/// Every request with the status it was answered with.
fn requests(receiver: &Receiver) -> Vec<(Received, u16)> {
    receiver.received().into_iter().map(|r| (r.clone(), r.status)).collect()
}

#[tokio::test]
async fn a_backlog_goes_out_in_ordered_batches_and_a_retry_resends_the_same_batch() {
    const PUNCHES: usize = 300;
    const BATCH_MAX: usize = 40;
    // The first request gets a 500.
    let receiver = Receiver::builder().script(vec![Reply::Status(500)]).start().await;
    let url = receiver.url();

    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_TEST_CLOCK", "true")]).await;
    let api = Api::login(&server).await;
    let witness = Witness::create(&api).await;
    let (status, endpoint) = api
        .post_json(
            "/api/v1/webhooks/endpoints",
            &json!({ "url": url, "event_types": ["attendance.punch"], "batch_max": BATCH_MAX, "ordered": true }),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    let id = endpoint["id"].as_str().unwrap().to_owned();
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    // The terminal uploads its backlog while the receiver is unreachable (paused here).
    let (status, _) = api.patch_json(&format!("/api/v1/webhooks/endpoints/{id}"), &json!({ "paused": true })).await;
    assert_eq!(status, 200);
    let dev = Device { server: &server, sn: "BATCH001".into() };
    dev.handshake().await;
    for chunk in 0..PUNCHES / 100 {
        assert_eq!(dev.attlog(&common::webhooks::attlog_lines(chunk * 100, 100)).await.text(), "OK: 100");
    }
    let (status, _) = api.patch_json(&format!("/api/v1/webhooks/endpoints/{id}"), &json!({ "paused": false })).await;
    assert_eq!(status, 200);

    // Wait until every punch was in an acknowledged request, moving the clock for the retry.
    let acknowledged = || -> BTreeSet<String> {
        requests(&receiver)
            .iter()
            .filter(|(_, status)| *status == 200)
            .flat_map(|(r, _)| r.json()["data"].as_array().unwrap().clone())
            .map(|event| event["id"].as_str().unwrap().to_owned())
            .collect()
    };
    eventually("every punch is in an acknowledged request", async || {
        if acknowledged().len() >= PUNCHES {
            return true;
        }
        api.advance_clock(10).await;
        false
    })
    .await;
    // A dispatcher pass after the last acknowledgement: any request still to come (a retry
    // too many) has been sent before the counts below.
    witness.pass(&server).await;
    assert_eq!(acknowledged().len(), PUNCHES, "every punch delivered");

    let requests = requests(&receiver);
    let verifier = standardwebhooks::Webhook::new(&secret).expect("secret");
    let mut bodies: BTreeMap<String, Bytes> = BTreeMap::new();
    let mut last_acknowledged_seq = 0;
    for (r, status) in &requests {
        // The library's own signature of this id, timestamp and body must be among ours (its
        // `verify` also checks the timestamp against the real clock, which the test clock moved).
        let theirs = verifier.sign(&r.id, r.timestamp, &r.body).expect("library signs");
        assert!(r.signature.split(' ').any(|s| s == theirs), "signature of {} does not verify", r.id);
        if let Some(first) = bodies.insert(r.id.clone(), r.body.clone()) {
            assert_eq!(first, r.body, "same webhook-id, different body");
        }
        let body = r.json();
        assert!(r.id.starts_with("bat_"));
        assert_eq!((body["id"].as_str(), body["type"].as_str()), (Some(r.id.as_str()), Some("batch")));
        let events = body["data"].as_array().unwrap();
        assert!(!events.is_empty() && events.len() <= BATCH_MAX, "{} events in one request", events.len());
        let seqs: Vec<i64> = events.iter().map(|e| e["data"]["seq"].as_i64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "seq order inside a batch: {seqs:?}");
        for event in events {
            assert_eq!(event["type"], "attendance.punch");
        }
        if *status == 200 {
            // Ordered: each acknowledged batch continues where the previous one ended.
            assert_eq!(seqs[0], last_acknowledged_seq + 1, "seq order across batches");
            last_acknowledged_seq = *seqs.last().unwrap();
        }
    }
    assert_eq!(last_acknowledged_seq, PUNCHES as i64);
    // The failed first batch came again, the same; nothing else was sent twice.
    assert_eq!(requests[0].1, 500);
    let again: Vec<_> = requests.iter().filter(|(r, _)| r.id == requests[0].0.id).collect();
    assert_eq!(again.len(), 2, "the failed batch was retried once");
    assert_eq!(again[1].0.body, requests[0].0.body, "byte-identical retry");
    assert_eq!(requests.len(), bodies.len() + 1);
    assert!(bodies.len() >= PUNCHES.div_ceil(BATCH_MAX), "{} batches", bodies.len());

    // Each member's attempts name the batch it travelled in.
    let deliveries = api.get(&format!("/api/v1/webhooks/deliveries?endpoint={id}&limit=500")).await;
    let deliveries = deliveries["data"].as_array().unwrap();
    assert_eq!(deliveries.len(), PUNCHES);
    assert!(deliveries.iter().all(|d| d["state"] == "succeeded"));
    let first_member = requests[0].0.json()["data"][0]["id"].as_str().unwrap().to_owned();
    let delivery = deliveries.iter().find(|d| d["event_id"] == first_member.as_str()).unwrap();
    let attempts = api.get(&format!("/api/v1/webhooks/deliveries/{}/attempts", delivery["id"])).await;
    let attempts: Vec<&Value> = attempts["data"].as_array().unwrap().iter().collect();
    let statuses: Vec<i64> = attempts.iter().map(|a| a["http_status"].as_i64().unwrap()).collect();
    assert_eq!(statuses, [500, 200]);
    assert!(attempts.iter().all(|a| a["batch_id"] == requests[0].0.id.as_str()));
}
