//! The webhook outbox on both engines: events and deliveries committed with their punches,
//! leases with fencing, expiry, exhaustion and re-drive, batches; on PostgreSQL, claims of
//! several processes at once.

use std::collections::HashMap;

use adms_store::events::{batch_body, batch_id};
use adms_store::webhook_queries::ResendOutcome;
use adms_store::webhooks::{ClaimedDelivery, Completion, DeliveryOutcome, EndpointSettings};
use adms_store::{NewPunch, PunchBatch, Store, StoreOptions, now_micros};
use sqlx::Connection;

use crate::common::{Engine, approved_device, endpoint_settings, fresh, last_seq};

crate::on_both_engines!(
    punches_commit_with_their_events_and_one_delivery_per_endpoint,
    an_endpoint_created_by_another_process_gets_every_later_punch,
    a_stale_worker_is_fenced_out_after_its_lease_expires,
    exhausted_deliveries_are_redriven_on_the_next_success_and_410_pauses,
    deliveries_waiting_out_a_retry_are_due_once_the_endpoint_answers_again,
    rotation_signs_with_both_secrets_until_the_old_one_expires,
    a_resend_is_recorded_as_manual_and_its_retries_as_scheduled,
    batching_endpoints_get_frozen_batches_and_a_retry_resends_the_same_members,
    ordered_batching_keeps_each_devices_seq_order_inside_and_across_batches,
    endpoint_settings_secrets_and_backlog_read_back,
    replicas_starting_together_make_one_env_endpoint,
    a_claim_takes_at_most_what_it_asks_oldest_first_each_delivery_once,
);

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
        batch_id: None,
    }
}

async fn punches_commit_with_their_events_and_one_delivery_per_endpoint(engine: Engine) {
    let store = fresh(engine).await;
    let dev = approved_device(&store, "SN1").await;

    // Before any endpoint exists, punches make no events.
    store.punch_writer().write(batch(dev, "SN1", &["1"])).await.unwrap();
    assert!(store.claim_due_deliveries("w", now_micros(), 1_000_000, 10).await.unwrap().is_empty());

    store.create_endpoint("ep_a", &endpoint_settings("http://127.0.0.1:9/a"), "api", "whsec_a").await.unwrap();
    let punch_only = EndpointSettings { event_types: Some(r#"["attendance.punch"]"#), ..endpoint_settings("http://b") };
    store.create_endpoint("ep_b", &punch_only, "api", "whsec_b").await.unwrap();
    let other = EndpointSettings { event_types: Some(r#"["device.offline"]"#), ..endpoint_settings("http://c") };
    store.create_endpoint("ep_c", &other, "api", "whsec_c").await.unwrap();

    store.punch_writer().write(batch(dev, "SN1", &["2", "3"])).await.unwrap();
    // Re-sent: no new punch, no new event, no new delivery.
    store.punch_writer().write(batch(dev, "SN1", &["2", "3"])).await.unwrap();
    // Partly re-sent: only the new punch gets an event, and the next seq.
    store.punch_writer().write(batch(dev, "SN1", &["3", "4"])).await.unwrap();

    let claims = store.claim_due_deliveries("w", now_micros(), 1_000_000, 100).await.unwrap();
    assert_eq!(claims.len(), 6, "3 punches × 2 matching endpoints");
    let mut ids: Vec<&str> = claims.iter().map(|c| c.event_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    let mut seq_by_pin: Vec<(String, i64)> = claims
        .iter()
        .map(|c| {
            let body: serde_json::Value = serde_json::from_slice(&c.body).unwrap();
            (body["data"]["pin"].as_str().unwrap_or_default().to_owned(), body["data"]["seq"].as_i64().unwrap())
        })
        .collect();
    seq_by_pin.sort_unstable();
    seq_by_pin.dedup();
    assert_eq!(seq_by_pin, [("2".to_owned(), 2), ("3".to_owned(), 3), ("4".to_owned(), 4)]);
    for c in &claims {
        let body: serde_json::Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(body["id"], c.event_id.as_str());
        assert_eq!(body["type"], "attendance.punch");
        assert_eq!(body["data"]["device"]["sn"], "SN1");
        assert!([2, 3, 4].contains(&body["data"]["seq"].as_i64().unwrap()), "seq continues the device's count");
        assert_eq!(c.attempt_no, 1);
        assert_eq!(c.secrets.len(), 1);
    }
    // Claimed deliveries are not claimable again while leased.
    assert!(store.claim_due_deliveries("w2", now_micros(), 1_000_000, 100).await.unwrap().is_empty());
}

/// A claim never takes more than its limit (PostgreSQL's claims come in a few sizes and may
/// take fewer: at least half), takes the oldest due first, and the next claim goes on from
/// there; each claimed delivery carries what signing it needs.
async fn a_claim_takes_at_most_what_it_asks_oldest_first_each_delivery_once(engine: Engine) {
    let store = fresh(engine).await;
    let dev = approved_device(&store, "SN1").await;
    store.create_endpoint("ep_a", &endpoint_settings("http://127.0.0.1:9/a"), "api", "whsec_a").await.unwrap();
    let pins: Vec<String> = (1..=45).map(|pin| pin.to_string()).collect();
    let pins: Vec<&str> = pins.iter().map(String::as_str).collect();
    store.punch_writer().write(batch(dev, "SN1", &pins)).await.unwrap();
    let seq = |c: &ClaimedDelivery| {
        serde_json::from_slice::<serde_json::Value>(&c.body).unwrap()["data"]["seq"].as_i64().unwrap()
    };

    assert!(store.claim_due_deliveries("w", now_micros(), 1_000_000, 0).await.unwrap().is_empty());
    let first = store.claim_due_deliveries("w", now_micros(), 1_000_000, 30).await.unwrap();
    assert!((15..=30).contains(&first.len()), "took {} of the 30 asked", first.len());
    let taken = i64::try_from(first.len()).unwrap();
    assert_eq!(first.iter().map(seq).collect::<Vec<_>>(), (1..=taken).collect::<Vec<_>>(), "oldest first, in order");
    let rest = store.claim_due_deliveries("w", now_micros(), 1_000_000, 100).await.unwrap();
    assert_eq!(rest.iter().map(seq).collect::<Vec<_>>(), (taken + 1..=45).collect::<Vec<_>>(), "the rest, once");
    for claim in first.iter().chain(&rest) {
        assert_eq!(claim.endpoint_uid, "ep_a");
        assert_eq!(claim.url, "http://127.0.0.1:9/a");
        assert_eq!(claim.secrets.len(), 1, "the endpoint's one secret");
        assert_eq!((claim.attempt_no, claim.batch_row), (1, None));
    }
    assert!(store.claim_due_deliveries("w", now_micros(), 1_000_000, 100).await.unwrap().is_empty());
}

/// The writer commits a group in one round trip, without asking, when the last transaction saw
/// no endpoint. An endpoint created meanwhile by another process must still get every punch
/// committed after it: the database refuses the eventless insert, and the writer writes the group
/// again with its events. Once the endpoints are gone it goes back to plain punches.
async fn an_endpoint_created_by_another_process_gets_every_later_punch(engine: Engine) {
    let store = fresh(engine).await;
    let url = store.url().to_owned();
    let dev = approved_device(&store, "SN1").await;
    // The writer learns that no endpoint exists.
    store.punch_writer().write(batch(dev, "SN1", &["1"])).await.unwrap();

    let other_process = Store::open(&url, StoreOptions::default()).await.unwrap();
    other_process.create_endpoint("ep_a", &endpoint_settings("http://127.0.0.1:9/a"), "api", "whsec_a").await.unwrap();
    store.punch_writer().write(batch(dev, "SN1", &["2", "3"])).await.unwrap();
    store.punch_writer().write(batch(dev, "SN1", &["4"])).await.unwrap();

    let claims = store.claim_due_deliveries("w", now_micros(), 1_000_000, 100).await.unwrap();
    let mut seqs: Vec<i64> = claims
        .iter()
        .map(|c| serde_json::from_slice::<serde_json::Value>(&c.body).unwrap()["data"]["seq"].as_i64().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [2, 3, 4], "every punch after the endpoint, and none before it");

    assert!(other_process.delete_endpoint("ep_a").await.unwrap());
    store.punch_writer().write(batch(dev, "SN1", &["5"])).await.unwrap();
    store.punch_writer().write(batch(dev, "SN1", &["6"])).await.unwrap();
    let events = store.list_events(Some("attendance.punch"), None, 100, None).await.unwrap();
    assert_eq!(events.len(), 3, "no events while no endpoint exists");
    assert_eq!(last_seq(&store, "SN1").await, 6, "every punch stored, gapless");

    // The invariant holds for any writer, not only ours: a punch without its event is refused
    // while an endpoint exists.
    other_process.create_endpoint("ep_b", &endpoint_settings("http://127.0.0.1:9/b"), "api", "whsec_b").await.unwrap();
    const EVENTLESS_PUNCH: &str = "INSERT INTO punches (device_id, seq, pin, local_time, state, verify, work_code, \
                                   extra, raw_line, received_at) \
                                   VALUES ($1, 99, '9', '2026-11-20 09:00:00', '0', 1, '0', '', '', 0)";
    let refused = match engine {
        Engine::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query(EVENTLESS_PUNCH).bind(dev).execute(&mut conn).await.unwrap_err()
        }
        Engine::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query(EVENTLESS_PUNCH).bind(dev).execute(&mut conn).await.unwrap_err()
        }
    };
    assert!(refused.to_string().contains("punch_event_required"), "{refused}");
    other_process.close().await;
    store.close().await;
}

async fn a_stale_worker_is_fenced_out_after_its_lease_expires(engine: Engine) {
    let store = fresh(engine).await;
    let dev = approved_device(&store, "SN1").await;
    store.create_endpoint("ep_a", &endpoint_settings("http://a"), "api", "whsec_a").await.unwrap();
    store.punch_writer().write(batch(dev, "SN1", &["1"])).await.unwrap();

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

async fn exhausted_deliveries_are_redriven_on_the_next_success_and_410_pauses(engine: Engine) {
    let store = fresh(engine).await;
    let dev = approved_device(&store, "SN1").await;
    store.create_endpoint("ep_a", &endpoint_settings("http://a"), "api", "whsec_a").await.unwrap();
    store.punch_writer().write(batch(dev, "SN1", &["1", "2"])).await.unwrap();
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
    store.punch_writer().write(batch(dev, "SN1", &["3"])).await.unwrap();
    assert!(store.claim_due_deliveries("w", now_micros(), 1_000_000, 10).await.unwrap().is_empty());
    assert!(store.set_endpoint_paused("ep_a", None).await.unwrap());
    assert_eq!(store.claim_due_deliveries("w", now_micros(), 1_000_000, 10).await.unwrap().len(), 2);
}

/// A receiver down for hours: each delivery waits out its own retry delay. The first success
/// after the outage makes every waiting delivery due at once (the receiver gets its backlog now,
/// not when each delay ends); a failure on its own re-drives nothing, and neither does a success
/// beside a delivery the receiver keeps refusing (that one keeps its backoff).
async fn deliveries_waiting_out_a_retry_are_due_once_the_endpoint_answers_again(engine: Engine) {
    const HOUR: i64 = 3_600_000_000;
    let store = fresh(engine).await;
    let dev = approved_device(&store, "SN1").await;
    store.create_endpoint("ep_a", &endpoint_settings("http://a"), "api", "whsec_a").await.unwrap();
    store.punch_writer().write(batch(dev, "SN1", &["1", "2", "3", "4"])).await.unwrap();
    let now = now_micros();
    // An attempt made at `at` on the dispatcher's clock.
    let attempt = |claim: &ClaimedDelivery, outcome, at| Completion { started_at: at, ..completion(claim, outcome) };
    let claims = store.claim_due_deliveries("w", now, 1_000_000, 10).await.unwrap();
    assert_eq!(claims.len(), 4);
    // The first retries in an hour, the others in a day.
    let failed: Vec<Completion> = claims
        .iter()
        .enumerate()
        .map(|(i, c)| attempt(c, DeliveryOutcome::RetryAt(now + if i == 0 { HOUR } else { 24 * HOUR }), now))
        .collect();
    assert_eq!(store.complete_deliveries(&failed).await.unwrap(), [true; 4]);
    assert!(store.claim_due_deliveries("w", now + 1, 1_000_000, 10).await.unwrap().is_empty());

    // An hour later the first is tried again and fails: the others keep waiting.
    let retried = store.claim_due_deliveries("w", now + HOUR + 1, 1_000_000, 10).await.unwrap();
    assert_eq!(retried.len(), 1);
    let failure = attempt(&retried[0], DeliveryOutcome::RetryAt(now + 2 * HOUR), now + HOUR + 1);
    store.complete_deliveries(&[failure]).await.unwrap();
    assert!(store.claim_due_deliveries("w", now + HOUR + 2, 1_000_000, 10).await.unwrap().is_empty());

    // Two hours later it succeeds: the three that waited for the day are due now.
    let at = now + 2 * HOUR + 1;
    let retried = store.claim_due_deliveries("w", at, 1_000_000, 10).await.unwrap();
    assert_eq!(retried.len(), 1);
    store.complete_deliveries(&[attempt(&retried[0], DeliveryOutcome::Succeeded, at)]).await.unwrap();
    let due = store.claim_due_deliveries("w", at, 1_000_000, 10).await.unwrap();
    let mut due_ids: Vec<i64> = due.iter().map(|c| c.delivery_id).collect();
    due_ids.sort_unstable();
    let mut waited: Vec<i64> = claims[1..].iter().map(|c| c.delivery_id).collect();
    waited.sort_unstable();
    assert_eq!(due_ids, waited, "every delivery that waited is due at once, each once");
    assert!(due.iter().all(|c| c.attempt_no == 2), "their attempt count goes on: {due:?}");

    // Not an outage: one delivery refused while another succeeds a second later. The refused
    // one keeps its backoff.
    let (refused, accepted) = (&due[0], &due[1]);
    let later = at + 1_000_000;
    store.complete_deliveries(&[attempt(refused, DeliveryOutcome::RetryAt(at + HOUR), at)]).await.unwrap();
    store.complete_deliveries(&[attempt(accepted, DeliveryOutcome::Succeeded, later)]).await.unwrap();
    let still_due: Vec<i64> =
        store.claim_due_deliveries("w", later, 1_000_000, 10).await.unwrap().iter().map(|c| c.delivery_id).collect();
    assert!(!still_due.contains(&refused.delivery_id), "the refused delivery waits for its retry: {still_due:?}");
}

async fn rotation_signs_with_both_secrets_until_the_old_one_expires(engine: Engine) {
    let store = fresh(engine).await;
    let dev = approved_device(&store, "SN1").await;
    store.create_endpoint("ep_a", &endpoint_settings("http://a"), "api", "whsec_old").await.unwrap();
    let until = now_micros() + 60_000_000;
    assert!(store.rotate_endpoint_secret("ep_a", "whsec_new", until).await.unwrap());
    store.punch_writer().write(batch(dev, "SN1", &["1"])).await.unwrap();
    let claim = store.claim_due_deliveries("w", now_micros(), 1_000_000, 10).await.unwrap().remove(0);
    assert_eq!(claim.secrets, ["whsec_new", "whsec_old"]);
    store.expire_leases(until + 10_000_000).await.unwrap();
    let claim = store.claim_due_deliveries("w", until + 10_000_000, 1_000_000, 10).await.unwrap().remove(0);
    assert_eq!(claim.secrets, ["whsec_new"]);
}

async fn a_resend_is_recorded_as_manual_and_its_retries_as_scheduled(engine: Engine) {
    let store = fresh(engine).await;
    let dev = approved_device(&store, "SN1").await;
    store.create_endpoint("ep_a", &endpoint_settings("http://a"), "api", "whsec_a").await.unwrap();
    store.punch_writer().write(batch(dev, "SN1", &["1"])).await.unwrap();
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

/// Groups a claim into requests the way the dispatcher does: consecutive members of one batch.
fn requests(claims: Vec<ClaimedDelivery>) -> Vec<Vec<ClaimedDelivery>> {
    let mut out: Vec<Vec<ClaimedDelivery>> = Vec::new();
    for c in claims {
        match out.last_mut() {
            Some(last) if c.batch_row.is_some() && last[0].batch_row == c.batch_row => last.push(c),
            _ => out.push(vec![c]),
        }
    }
    out
}

fn seq_of(claim: &ClaimedDelivery) -> i64 {
    serde_json::from_slice::<serde_json::Value>(&claim.body).unwrap()["data"]["seq"].as_i64().unwrap()
}

fn event_ids(request: &[ClaimedDelivery]) -> Vec<String> {
    request.iter().map(|c| c.event_id.clone()).collect()
}

async fn batching_endpoints_get_frozen_batches_and_a_retry_resends_the_same_members(engine: Engine) {
    let store = fresh(engine).await;
    let dev = approved_device(&store, "SN1").await;
    store.create_endpoint("ep_single", &endpoint_settings("http://a"), "api", "whsec_a").await.unwrap();
    store
        .create_endpoint(
            "ep_batch",
            &EndpointSettings { batch_max: 3, ..endpoint_settings("http://b") },
            "api",
            "whsec_b",
        )
        .await
        .unwrap();
    let single = store.endpoint_by_uid("ep_single").await.unwrap().unwrap().id;
    let pins = ["1", "2", "3", "4", "5", "6", "7"];
    store.punch_writer().write(batch(dev, "SN1", &pins)).await.unwrap();

    // 10 requests at most: the 7 singles and 3 batches (3 + 3 + 1) are exactly that.
    let now = now_micros();
    let claimed = requests(store.claim_due_deliveries("w", now, 1_000_000, 10).await.unwrap());
    assert_eq!(claimed.len(), 10);
    let (singles, batches): (Vec<_>, Vec<_>) = claimed.into_iter().partition(|r| r[0].batch_row.is_none());
    assert_eq!(singles.len(), 7);
    assert!(singles.iter().all(|r| r.len() == 1 && r[0].endpoint_id == single));
    let mut sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [1, 3, 3]);
    let mut batched: Vec<String> = batches.iter().flat_map(|r| event_ids(r)).collect();
    batched.sort();
    batched.dedup();
    assert_eq!(batched.len(), 7, "every event in exactly one batch");
    for request in &batches {
        let seqs: Vec<i64> = request.iter().map(seq_of).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "members in seq order: {seqs:?}");
    }

    // The full batch fails; its retry carries the same members in the same order, so the same
    // webhook-id and byte-identical body.
    let failed = batches.iter().find(|r| r.len() == 3).unwrap().clone();
    let body_of = |r: &[ClaimedDelivery]| {
        let id = batch_id(r.iter().map(|c| c.event_id.as_str()));
        let body = batch_body(&id, r.iter().map(|c| c.body.as_slice()));
        (id, body)
    };
    let first_send = body_of(&failed);
    let others: Vec<Completion> = singles
        .iter()
        .chain(batches.iter().filter(|r| r[0].batch_row != failed[0].batch_row))
        .flatten()
        .map(|c| completion(c, DeliveryOutcome::Succeeded))
        .collect();
    assert!(store.complete_deliveries(&others).await.unwrap().iter().all(|ok| *ok));
    let retry_at = now + 1;
    let done = store
        .complete_deliveries(
            &failed.iter().map(|c| completion(c, DeliveryOutcome::RetryAt(retry_at))).collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    assert_eq!(done, [true, true, true]);
    let retried = requests(store.claim_due_deliveries("w", retry_at, 1_000_000, 10).await.unwrap());
    assert_eq!(retried.len(), 1, "only the failed batch is due");
    assert_eq!(event_ids(&retried[0]), event_ids(&failed));
    assert_eq!(body_of(&retried[0]), first_send, "same id, same bytes");
    assert!(retried[0].iter().all(|c| c.attempt_no == 2));

    // Its lease runs out and another worker takes the batch: the stale worker is refused for
    // every member; the new one succeeds for all of them.
    assert_eq!(store.expire_leases(retry_at + 2_000_000).await.unwrap(), 3);
    let taken = requests(store.claim_due_deliveries("w2", retry_at + 2_000_000, 1_000_000, 10).await.unwrap());
    assert_eq!(event_ids(&taken[0]), event_ids(&failed));
    let stale: Vec<Completion> = retried[0].iter().map(|c| completion(c, DeliveryOutcome::Succeeded)).collect();
    assert_eq!(store.complete_deliveries(&stale).await.unwrap(), [false, false, false]);
    let fresh: Vec<Completion> = taken[0]
        .iter()
        .map(|c| Completion { batch_id: Some(first_send.0.clone()), ..completion(c, DeliveryOutcome::Succeeded) })
        .collect();
    assert_eq!(store.complete_deliveries(&fresh).await.unwrap(), [true, true, true]);
    let attempts = store.delivery_attempts(failed[0].delivery_id).await.unwrap().unwrap();
    let accepted: Vec<bool> = attempts.iter().map(|a| a.accepted).collect();
    assert_eq!(accepted, [true, true, false, true], "1st failure, lease expiry, the stale report, the success");
    assert_eq!(attempts[3].batch_id.as_deref(), Some(first_send.0.as_str()));

    // A resent member leaves its batch and travels in a new one, under a new id.
    assert_eq!(store.resend_delivery(failed[1].delivery_id, now_micros()).await.unwrap(), ResendOutcome::Queued);
    let resent = requests(store.claim_due_deliveries("w", now_micros(), 1_000_000, 10).await.unwrap());
    let resent = resent.iter().find(|r| r.iter().any(|c| c.delivery_id == failed[1].delivery_id)).unwrap();
    assert_eq!(event_ids(resent), [failed[1].event_id.clone()]);
    assert_ne!(body_of(resent).0, first_send.0);
}

async fn ordered_batching_keeps_each_devices_seq_order_inside_and_across_batches(engine: Engine) {
    let store = fresh(engine).await;
    let dev = approved_device(&store, "SN1").await;
    let ordered = EndpointSettings { batch_max: 2, ordered: true, ..endpoint_settings("http://b") };
    store.create_endpoint("ep_b", &ordered, "api", "whsec_b").await.unwrap();
    store.punch_writer().write(batch(dev, "SN1", &["1", "2", "3", "4", "5"])).await.unwrap();

    let mut sent: Vec<i64> = Vec::new();
    let mut now = now_micros();
    let mut failed_once = false;
    for _ in 0..10 {
        let claimed = requests(store.claim_due_deliveries("w", now, 1_000_000, 10).await.unwrap());
        if claimed.is_empty() {
            break;
        }
        assert_eq!(claimed.len(), 1, "one batch of the device at a time");
        let request = &claimed[0];
        assert!(request.len() <= 2);
        let seqs: Vec<i64> = request.iter().map(seq_of).collect();
        // The second batch fails once: nothing behind it may overtake it.
        let outcome = if seqs[0] == 3 && !failed_once {
            failed_once = true;
            DeliveryOutcome::RetryAt(now + 10)
        } else {
            sent.extend(&seqs);
            DeliveryOutcome::Succeeded
        };
        let completions: Vec<Completion> = request.iter().map(|c| completion(c, outcome)).collect();
        store.complete_deliveries(&completions).await.unwrap();
        if !matches!(outcome, DeliveryOutcome::Succeeded) {
            assert!(store.claim_due_deliveries("w", now + 5, 1_000_000, 10).await.unwrap().is_empty(), "seq 5 waits");
        }
        now += 20;
    }
    assert!(failed_once);
    assert_eq!(sent, [1, 2, 3, 4, 5]);
}

/// Two processes (two `Store` handles on one PostgreSQL database), two dispatchers each,
/// claiming at once from an endpoint that sends singly, one that batches and an ordered one:
/// every delivery is claimed by exactly one of them, every batch whole by one claim, and only
/// the head of the ordered endpoint's queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_of_two_processes_take_disjoint_deliveries_on_postgres() {
    let store = fresh(Engine::Postgres).await;
    let options = StoreOptions { max_connections: 4, ..StoreOptions::default() };
    let other_process = Store::open(store.url(), options).await.unwrap();
    let dev = approved_device(&store, "SN1").await;
    store.create_endpoint("ep_single", &endpoint_settings("http://a"), "api", "whsec_a").await.unwrap();
    let batching = EndpointSettings { batch_max: 4, ..endpoint_settings("http://b") };
    other_process.create_endpoint("ep_batch", &batching, "api", "whsec_b").await.unwrap();
    let ordered = EndpointSettings { ordered: true, ..endpoint_settings("http://c") };
    other_process.create_endpoint("ep_ordered", &ordered, "api", "whsec_c").await.unwrap();
    let pins: Vec<String> = (0..150).map(|i| i.to_string()).collect();
    let pins: Vec<&str> = pins.iter().map(String::as_str).collect();
    for chunk in pins.chunks(50) {
        store.punch_writer().write(batch(dev, "SN1", chunk)).await.unwrap();
    }

    let now = now_micros();
    // Every claimer waits here after its first non-empty claim, so the run is truly concurrent
    // (no claimer drains the queue before another has started) whatever the scheduler does.
    let all_started = std::sync::Arc::new(tokio::sync::Barrier::new(4));
    let mut claimers = Vec::new();
    for (name, handle) in [("a1", store.store()), ("a2", store.store()), ("b1", &other_process), ("b2", &other_process)]
    {
        let handle = handle.clone();
        let all_started = all_started.clone();
        claimers.push(tokio::spawn(async move {
            let mut taken: Vec<(i64, Option<i64>, usize, String)> = Vec::new(); // delivery, batch, claim no., endpoint
            let mut idle = 0;
            let mut claim_no = 0;
            let mut empty_before_first = 0;
            while idle < 3 {
                let claimed = handle.claim_due_deliveries(name, now, 600_000_000, 7).await.unwrap();
                if claimed.is_empty() && claim_no == 0 {
                    // The others hold at most 3 × 7 of 301, waiting at the barrier: a claim that
                    // finds nothing at all here would be a bug, not bad luck.
                    empty_before_first += 1;
                    assert!(empty_before_first < 1_000, "{name} never claimed anything");
                    tokio::task::yield_now().await;
                    continue;
                }
                if claimed.is_empty() {
                    idle += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                idle = 0;
                claim_no += 1;
                taken.extend(claimed.iter().map(|c| (c.delivery_id, c.batch_row, claim_no, c.endpoint_uid.clone())));
                if claim_no == 1 {
                    all_started.wait().await;
                }
            }
            (name, taken)
        }));
    }
    let mut claimed_by: HashMap<i64, &str> = HashMap::new();
    let mut batch_claims: HashMap<i64, (&str, usize, usize)> = HashMap::new(); // batch → claimer, claim, members
    let mut per_endpoint: HashMap<String, usize> = HashMap::new();
    for claimer in claimers {
        let (name, taken) = claimer.await.unwrap();
        for (delivery, batch_row, claim_no, endpoint) in taken {
            *per_endpoint.entry(endpoint).or_default() += 1;
            if let Some(first) = claimed_by.insert(delivery, name) {
                panic!("delivery {delivery} claimed by {first} and {name}");
            }
            if let Some(batch_row) = batch_row {
                let entry = batch_claims.entry(batch_row).or_insert((name, claim_no, 0));
                assert_eq!((entry.0, entry.1), (name, claim_no), "batch {batch_row} claimed whole by one claim");
                entry.2 += 1;
            }
        }
    }
    assert_eq!(claimed_by.len(), 301, "150 punches × 2 endpoints and the ordered one's head, each claimed once");
    assert_eq!(per_endpoint["ep_single"], 150);
    assert_eq!(per_endpoint["ep_ordered"], 1, "the ordered endpoint's later seqs wait behind the one in flight");
    assert_eq!(batch_claims.values().map(|b| b.2).sum::<usize>(), 150, "the batching endpoint's all in batches");
    // One claim at a time cuts an endpoint's batches (under its row lock): every batch is full
    // but the queue's last.
    let mut sizes: Vec<usize> = batch_claims.values().map(|b| b.2).collect();
    sizes.sort_unstable();
    assert_eq!(sizes[0], 2, "{sizes:?}");
    assert!(sizes[1..].iter().all(|n| *n == 4), "batch_max holds, batches are full: {sizes:?}");
    let claimers: std::collections::HashSet<&str> = claimed_by.values().copied().collect();
    assert_eq!(claimers.len(), 4, "every claimer took its share: {claimers:?}");
    assert!(store.claim_due_deliveries("late", now, 1_000_000, 100).await.unwrap().is_empty());
    other_process.close().await;
}

/// Two processes sending one ordered endpoint's queue at once, each claiming and completing in a
/// loop: a device's events are still delivered one at a time, in `seq` order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ordered_endpoint_is_sent_in_seq_order_by_two_processes_on_postgres() {
    let store = fresh(Engine::Postgres).await;
    let options = StoreOptions { max_connections: 4, ..StoreOptions::default() };
    let other_process = Store::open(store.url(), options).await.unwrap();
    let dev = approved_device(&store, "SN1").await;
    let ordered = EndpointSettings { ordered: true, ..endpoint_settings("http://c") };
    store.create_endpoint("ep_ordered", &ordered, "api", "whsec_c").await.unwrap();
    let pins: Vec<String> = (0..30).map(|i| i.to_string()).collect();
    let pins: Vec<&str> = pins.iter().map(String::as_str).collect();
    store.punch_writer().write(batch(dev, "SN1", &pins)).await.unwrap();

    let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for (name, handle) in [("a", store.store().clone()), ("b", other_process.clone())] {
        let sent = std::sync::Arc::clone(&sent);
        workers.push(tokio::spawn(async move {
            let mut idle = 0;
            while idle < 20 {
                let claimed = handle.claim_due_deliveries(name, now_micros(), 600_000_000, 5).await.unwrap();
                assert!(claimed.len() <= 1, "one of the device's events at a time");
                let Some(claim) = claimed.first() else {
                    idle += 1;
                    tokio::task::yield_now().await;
                    continue;
                };
                idle = 0;
                // Recorded while the lease is held: nobody else may be sending this device now.
                sent.lock().unwrap().push(seq_of(claim));
                let done = handle.complete_deliveries(&[completion(claim, DeliveryOutcome::Succeeded)]).await;
                assert_eq!(done.unwrap(), [true]);
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    assert_eq!(*sent.lock().unwrap(), (1..=30).collect::<Vec<i64>>());
    other_process.close().await;
}

/// Replicas configured with the same `ADMS_WEBHOOK_URL` start at once: the endpoint is made
/// once (two would deliver every event twice), and every caller gets that one.
async fn replicas_starting_together_make_one_env_endpoint(engine: Engine) {
    let store = fresh(engine).await;
    let other = store.second_process().await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..8 {
        let process = if i % 2 == 0 { store.store().clone() } else { other.clone() };
        calls.spawn(async move {
            let uid = format!("ep_env_{i}");
            // SQLite may answer one of two processes racing for its write lock with "busy"; a
            // start-up that meets it fails and is started again, as a supervisor would.
            loop {
                match process.env_endpoint_or_create(&uid, &endpoint_settings("http://a"), &format!("whsec_{i}")).await
                {
                    Ok(answer) => return answer,
                    Err(error) if error.to_string().contains("locked") => continue,
                    Err(error) => panic!("{error}"),
                }
            }
        });
    }
    let answers: Vec<(adms_store::webhooks::Endpoint, bool)> = calls.join_all().await;
    let created: Vec<_> = answers.iter().filter(|(_, created)| *created).collect();
    assert_eq!(created.len(), 1, "made once: {answers:?}");
    assert!(answers.iter().all(|(e, _)| e.uid == created[0].0.uid), "every caller got the same endpoint");
    let live: Vec<_> = store.list_endpoints().await.unwrap().into_iter().filter(|e| e.source == "env").collect();
    assert_eq!(live.len(), 1);
    other.close().await;
}

/// The endpoint administration and the outbox's metrics and listings, read back.
async fn endpoint_settings_secrets_and_backlog_read_back(engine: Engine) {
    let store = fresh(engine).await;
    let dev = approved_device(&store, "SN1").await;
    assert!(store.next_delivery_due_at().await.unwrap().is_none());
    let created = store.create_endpoint("ep_env", &endpoint_settings("http://a"), "env", "whsec_a").await.unwrap();
    assert_eq!((created.uid.as_str(), created.source.as_str(), created.ordered), ("ep_env", "env", false));
    store.create_endpoint("ep_api", &endpoint_settings("http://b"), "api", "whsec_b").await.unwrap();
    assert_eq!(store.env_endpoint().await.unwrap().map(|e| e.uid), Some("ep_env".to_owned()));
    let changed = EndpointSettings {
        description: "orders",
        event_types: Some(r#"["attendance.punch"]"#),
        batch_max: 5,
        ordered: true,
        ..endpoint_settings("http://b2")
    };
    assert!(store.update_endpoint("ep_api", &changed).await.unwrap());
    assert!(!store.update_endpoint("ep_none", &changed).await.unwrap());
    let listed = store.list_endpoints().await.unwrap();
    assert_eq!(listed.iter().map(|e| e.uid.as_str()).collect::<Vec<_>>(), ["ep_env", "ep_api"]);
    let api = &listed[1];
    assert_eq!(
        (api.url.as_str(), api.description.as_str(), api.event_types.as_deref(), api.batch_max, api.ordered),
        ("http://b2", "orders", Some(r#"["attendance.punch"]"#), 5, true)
    );

    // Secrets: current ones, every stored one, and resealing one in place (only from its text).
    assert!(store.rotate_endpoint_secret("ep_env", "whsec_a2", now_micros() + 60_000_000).await.unwrap());
    assert!(!store.rotate_endpoint_secret("ep_none", "whsec_x", 0).await.unwrap());
    assert_eq!(store.current_endpoint_secrets("ep_env").await.unwrap(), ["whsec_a2"]);
    let stored = store.stored_secrets().await.unwrap();
    assert_eq!(stored.iter().map(|s| s.secret.as_str()).collect::<Vec<_>>(), ["whsec_a", "whsec_b", "whsec_a2"]);
    assert_eq!(stored[1].endpoint_uid, "ep_api");
    assert!(store.reseal_secret(stored[1].id, "whsec_b", "sealed_b").await.unwrap());
    assert!(!store.reseal_secret(stored[1].id, "whsec_b", "sealed_again").await.unwrap());
    assert_eq!(store.current_endpoint_secrets("ep_api").await.unwrap(), ["sealed_b"]);

    // Backlog: due, in flight, exhausted, and the oldest due, per live endpoint.
    let now = now_micros();
    store.punch_writer().write(batch(dev, "SN1", &["1", "2", "3"])).await.unwrap();
    let due_at = store.next_delivery_due_at().await.unwrap().unwrap();
    assert!(due_at <= now_micros());
    let claimed = store.claim_due_deliveries("w", now_micros(), 60_000_000, 2).await.unwrap();
    let env_claim = claimed.iter().find(|c| c.endpoint_uid == "ep_env").unwrap();
    store.complete_deliveries(&[completion(env_claim, DeliveryOutcome::Exhausted)]).await.unwrap();
    let backlog = store.delivery_backlog(now_micros()).await.unwrap();
    assert_eq!(backlog.len(), 2);
    let total = |f: fn(&adms_store::webhooks::EndpointBacklog) -> i64| backlog.iter().map(f).sum::<i64>();
    assert_eq!((total(|b| b.due), total(|b| b.in_flight), total(|b| b.exhausted)), (4, 1, 1));
    assert!(backlog.iter().all(|b| b.oldest_due_at.is_some_and(|t| t >= now)));
    let env = backlog.iter().find(|b| b.endpoint_uid == "ep_env").unwrap();
    assert_eq!((env.consecutive_failures, env.last_success_at), (1, None));
    assert!(env.last_failure_at.is_some());

    // A delivery waiting out a retry delay is backlog too: `waiting`, not `due`, and the
    // oldest pending age keeps growing while the receiver is down.
    let in_flight = claimed.iter().find(|c| c.delivery_id != env_claim.delivery_id).unwrap();
    let in_an_hour = now_micros() + 3_600_000_000;
    store.complete_deliveries(&[completion(in_flight, DeliveryOutcome::RetryAt(in_an_hour))]).await.unwrap();
    let backlog_after = store.delivery_backlog(now_micros()).await.unwrap();
    let total_after = |f: fn(&adms_store::webhooks::EndpointBacklog) -> i64| backlog_after.iter().map(f).sum::<i64>();
    assert_eq!((total_after(|b| b.due), total_after(|b| b.waiting), total_after(|b| b.in_flight)), (4, 1, 0));
    let failing = backlog_after.iter().find(|b| b.endpoint_uid == in_flight.endpoint_uid).unwrap();
    assert!(failing.consecutive_failures >= 1);
    assert!(failing.oldest_pending_since.is_some_and(|t| t >= now && t <= now_micros()));

    // Listings filter by endpoint, state, type and device, and page backwards.
    let env_rows = store.list_deliveries(Some("ep_env"), None, 10, None).await.unwrap();
    assert_eq!(env_rows.len(), 3);
    assert_eq!(store.list_deliveries(None, Some("exhausted"), 10, None).await.unwrap().len(), 1);
    let page = store.list_deliveries(None, None, 2, None).await.unwrap();
    let rest = store.list_deliveries(None, None, 10, Some(page[1].id)).await.unwrap();
    assert_eq!(page.len() + rest.len(), 6);
    let events = store.list_events(Some("attendance.punch"), Some("SN1"), 10, None).await.unwrap();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.deliveries == 2 && e.delivered == 0 && e.device_sn.as_deref() == Some("SN1")));
    assert!(store.list_events(None, Some("SN9"), 10, None).await.unwrap().is_empty());

    // Paused: nothing is due; resumed: due at once. Deleted: gone from the listings and backlog.
    assert!(store.set_endpoint_paused("ep_api", Some("maintenance")).await.unwrap());
    assert_eq!(store.endpoint_by_uid("ep_api").await.unwrap().unwrap().paused_reason.as_deref(), Some("maintenance"));
    assert!(store.set_endpoint_paused("ep_api", None).await.unwrap());
    assert!(store.delete_endpoint("ep_env").await.unwrap());
    assert!(!store.delete_endpoint("ep_env").await.unwrap());
    assert!(store.env_endpoint().await.unwrap().is_none());
    assert_eq!(store.delivery_backlog(now_micros()).await.unwrap().len(), 1);
    let states: Vec<String> =
        store.list_deliveries(Some("ep_env"), None, 10, None).await.unwrap().into_iter().map(|d| d.state).collect();
    // Its two pending (one due, one waiting) and its exhausted one.
    assert_eq!(states.iter().filter(|s| *s == "cancelled").count(), 3, "{states:?}");
}
