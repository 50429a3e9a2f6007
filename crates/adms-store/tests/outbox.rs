//! The webhook outbox against a real SQLite file: events and deliveries committed with their
//! punches, leases with fencing, expiry, exhaustion and re-drive.

use adms_store::webhooks::{Completion, DeliveryOutcome, EndpointSettings};
use adms_store::{NewDevice, NewPunch, PunchBatch, Store, StoreOptions, now_micros};

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/outbox.db", dir.path().display());
    (dir, Store::open(&url, StoreOptions::default()).await.expect("open"))
}

fn settings(url: &str) -> EndpointSettings<'_> {
    EndpointSettings { url, description: "", event_types: None, timeout_ms: 5000, batch_max: 1, ordered: false }
}

fn batch(device_id: i64, sn: &str, pins: &[&str]) -> PunchBatch {
    let mut batch = PunchBatch::new(device_id);
    batch.device_sn = sn.into();
    batch.device_time_zone = "UTC".into();
    for pin in pins {
        batch.punches.push(NewPunch {
            pin: (*pin).into(),
            local_time: "2026-11-20 08:00:00".into(),
            state: "0".into(),
            verify: 1,
            work_code: "0".into(),
            extra: String::new(),
            time_zone: Some("UTC".into()),
            utc_time: Some(1_795_161_600),
            mask_flag: None,
            temperature: None,
            raw_line: format!("{pin}\t2026-11-20 08:00:00\t0\t1\t0"),
        });
    }
    batch
}

fn completion(claim: &adms_store::webhooks::ClaimedDelivery, outcome: DeliveryOutcome) -> Completion {
    Completion {
        delivery_id: claim.delivery_id,
        lease_token: claim.lease_token,
        attempt_no: claim.attempt_no,
        trigger: claim.trigger.clone(),
        worker: "test".into(),
        started_at: now_micros(),
        duration_us: 10,
        http_status: Some(if outcome == DeliveryOutcome::Succeeded { 200 } else { 500 }),
        error_kind: None,
        error: None,
        response_body: Vec::new(),
        outcome,
    }
}

#[tokio::test]
async fn punches_commit_with_their_events_and_one_delivery_per_endpoint() {
    let (_dir, store) = open().await;
    let dev = store.register_device(&NewDevice { sn: "SN1", ..Default::default() }).await.unwrap();

    // Before any endpoint exists, punches make no events.
    store.punch_writer().write(batch(dev.id, "SN1", &["1"])).await.unwrap();
    assert!(store.claim_due_deliveries("w", now_micros(), 1_000_000, 10).await.unwrap().is_empty());

    store.create_endpoint("ep_a", &settings("http://127.0.0.1:9/a"), "api", "whsec_a").await.unwrap();
    let punch_only = EndpointSettings { event_types: Some(r#"["attendance.punch"]"#), ..settings("http://b") };
    store.create_endpoint("ep_b", &punch_only, "api", "whsec_b").await.unwrap();
    let other = EndpointSettings { event_types: Some(r#"["device.offline"]"#), ..settings("http://c") };
    store.create_endpoint("ep_c", &other, "api", "whsec_c").await.unwrap();

    store.punch_writer().write(batch(dev.id, "SN1", &["2", "3"])).await.unwrap();
    // Re-sent: no new punch, no new event, no new delivery.
    store.punch_writer().write(batch(dev.id, "SN1", &["2", "3"])).await.unwrap();

    let claims = store.claim_due_deliveries("w", now_micros(), 1_000_000, 100).await.unwrap();
    assert_eq!(claims.len(), 4, "2 punches × 2 matching endpoints");
    let mut ids: Vec<&str> = claims.iter().map(|c| c.event_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2);
    for c in &claims {
        let body: serde_json::Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(body["id"], c.event_id.as_str());
        assert_eq!(body["type"], "attendance.punch");
        assert_eq!(body["data"]["device"]["sn"], "SN1");
        assert!([2, 3].contains(&body["data"]["seq"].as_i64().unwrap()), "seq continues the device's count");
        assert_eq!(c.attempt_no, 1);
        assert_eq!(c.secrets.len(), 1);
    }
    // Claimed deliveries are not claimable again while leased.
    assert!(store.claim_due_deliveries("w2", now_micros(), 1_000_000, 100).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_stale_worker_is_fenced_out_after_its_lease_expires() {
    let (_dir, store) = open().await;
    let dev = store.register_device(&NewDevice { sn: "SN1", ..Default::default() }).await.unwrap();
    store.create_endpoint("ep_a", &settings("http://a"), "api", "whsec_a").await.unwrap();
    store.punch_writer().write(batch(dev.id, "SN1", &["1"])).await.unwrap();

    let now = now_micros();
    let first = store.claim_due_deliveries("slow", now, 1_000, 10).await.unwrap().remove(0);
    // The lease runs out; the reaper makes it due; another worker takes it.
    assert_eq!(store.expire_leases(now + 2_000).await.unwrap(), 1);
    let second = store.claim_due_deliveries("fast", now + 2_000, 1_000_000, 10).await.unwrap().remove(0);
    assert_eq!(second.delivery_id, first.delivery_id);
    assert!(second.lease_token > first.lease_token);
    assert_eq!(second.attempt_no, 2, "the lost attempt counts");

    let stale = store.complete_deliveries(&[completion(&first, DeliveryOutcome::Succeeded)]).await.unwrap();
    assert_eq!(stale, [false], "the stale worker's completion is refused");
    let fresh = store.complete_deliveries(&[completion(&second, DeliveryOutcome::Succeeded)]).await.unwrap();
    assert_eq!(fresh, [true]);
    let rows = store.list_deliveries(None, None, 10, None).await.unwrap();
    assert_eq!(rows[0].state, "succeeded");
}

#[tokio::test]
async fn exhausted_deliveries_are_redriven_on_the_next_success_and_410_pauses() {
    let (_dir, store) = open().await;
    let dev = store.register_device(&NewDevice { sn: "SN1", ..Default::default() }).await.unwrap();
    store.create_endpoint("ep_a", &settings("http://a"), "api", "whsec_a").await.unwrap();
    store.punch_writer().write(batch(dev.id, "SN1", &["1", "2"])).await.unwrap();
    let now = now_micros();
    let claims = store.claim_due_deliveries("w", now, 1_000_000, 1).await.unwrap();
    store.complete_deliveries(&[completion(&claims[0], DeliveryOutcome::Exhausted)]).await.unwrap();
    let states: Vec<String> =
        store.list_deliveries(None, None, 10, None).await.unwrap().into_iter().map(|d| d.state).collect();
    assert_eq!(states, ["pending", "exhausted"]);

    let claims = store.claim_due_deliveries("w", now, 1_000_000, 10).await.unwrap();
    assert_eq!(claims.len(), 1);
    store.complete_deliveries(&[completion(&claims[0], DeliveryOutcome::Succeeded)]).await.unwrap();
    let rows = store.list_deliveries(None, None, 10, None).await.unwrap();
    assert_eq!((rows[0].state.as_str(), rows[1].state.as_str()), ("succeeded", "pending"), "re-driven");
    assert_eq!(rows[1].attempt_count, 0, "with a fresh schedule");

    // 410: the endpoint pauses, the delivery waits (pending), nothing is claimable until resumed.
    let claim = store.claim_due_deliveries("w", now_micros(), 1_000_000, 10).await.unwrap().remove(0);
    store.complete_deliveries(&[completion(&claim, DeliveryOutcome::EndpointGone)]).await.unwrap();
    assert_eq!(store.endpoint_by_uid("ep_a").await.unwrap().unwrap().paused_reason.as_deref(), Some("gone"));
    store.punch_writer().write(batch(dev.id, "SN1", &["3"])).await.unwrap();
    assert!(store.claim_due_deliveries("w", now_micros(), 1_000_000, 10).await.unwrap().is_empty());
    assert!(store.set_endpoint_paused("ep_a", None).await.unwrap());
    assert_eq!(store.claim_due_deliveries("w", now_micros(), 1_000_000, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_until_the_old_one_expires() {
    let (_dir, store) = open().await;
    let dev = store.register_device(&NewDevice { sn: "SN1", ..Default::default() }).await.unwrap();
    store.create_endpoint("ep_a", &settings("http://a"), "api", "whsec_old").await.unwrap();
    let until = now_micros() + 60_000_000;
    assert!(store.rotate_endpoint_secret("ep_a", "whsec_new", until).await.unwrap());
    store.punch_writer().write(batch(dev.id, "SN1", &["1"])).await.unwrap();
    let claim = store.claim_due_deliveries("w", now_micros(), 1_000_000, 10).await.unwrap().remove(0);
    assert_eq!(claim.secrets, ["whsec_new", "whsec_old"]);
    store.expire_leases(until + 10_000_000).await.unwrap();
    let claim = store.claim_due_deliveries("w", until + 10_000_000, 1_000_000, 10).await.unwrap().remove(0);
    assert_eq!(claim.secrets, ["whsec_new"]);
}

#[tokio::test]
async fn a_resend_is_recorded_as_manual_and_its_retries_as_scheduled() {
    let (_dir, store) = open().await;
    let dev = store.register_device(&NewDevice { sn: "SN1", ..Default::default() }).await.unwrap();
    store.create_endpoint("ep_a", &settings("http://a"), "api", "whsec_a").await.unwrap();
    store.punch_writer().write(batch(dev.id, "SN1", &["1"])).await.unwrap();
    let claim = store.claim_due_deliveries("w", now_micros(), 1_000_000, 10).await.unwrap().remove(0);
    assert_eq!(claim.trigger, "scheduled");
    store.complete_deliveries(&[completion(&claim, DeliveryOutcome::Succeeded)]).await.unwrap();

    store.resend_delivery(claim.delivery_id, now_micros()).await.unwrap();
    let resent = store.claim_due_deliveries("w", now_micros(), 1_000_000, 10).await.unwrap().remove(0);
    assert_eq!((resent.trigger.as_str(), resent.attempt_no), ("manual", 1));
    store.complete_deliveries(&[completion(&resent, DeliveryOutcome::RetryAt(now_micros()))]).await.unwrap();
    let retry = store.claim_due_deliveries("w", now_micros() + 1, 1_000_000, 10).await.unwrap().remove(0);
    assert_eq!(retry.trigger, "scheduled");

    let attempts = store.delivery_attempts(claim.delivery_id).await.unwrap().unwrap();
    let kinds: Vec<&str> = attempts.iter().map(|a| a.trigger_kind.as_str()).collect();
    assert_eq!(kinds, ["scheduled", "manual"]);
}
