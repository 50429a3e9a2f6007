//! Operator actions on the outbox on both engines: replay to one endpoint without fan-out,
//! manual resend, attempts, and the per-device punch cursor.

use adms_store::events::{PunchEvent, punch_event_id};
use adms_store::webhook_queries::{ReplayOutcome, ReplayRange, ResendOutcome};
use adms_store::webhooks::{Completion, DeliveryOutcome, EndpointSettings};
use adms_store::{NewPunch, PunchBatch, Store, now_micros};

use crate::common::{Engine, approved_device, fresh};

crate::on_both_engines!(
    replay_creates_missing_events_for_the_target_endpoint_only,
    replay_works_through_chunks,
    resend_and_attempts,
    cursor_pages_by_seq_per_device
);

fn settings(url: &str) -> EndpointSettings<'_> {
    EndpointSettings { url, description: "", event_types: None, timeout_ms: 5000, batch_max: 1, ordered: false }
}

fn batch(device_id: i64, sn: &str, minutes: std::ops::Range<u32>) -> PunchBatch {
    let mut batch = PunchBatch::new(device_id);
    batch.device_sn = sn.into();
    batch.device_time_zone = "UTC".into();
    for m in minutes {
        let local_time = format!("2026-11-20 08:{m:02}:00");
        batch.punches.push(NewPunch {
            pin: "7".into(),
            raw_line: format!("7\t{local_time}\t0\t1\t0"),
            local_time,
            state: "0".into(),
            verify: 1,
            work_code: "0".into(),
            extra: String::new(),
            time_zone: Some("UTC".into()),
            utc_time: Some(1_795_161_600 + i64::from(m) * 60),
            mask_flag: None,
            temperature: None,
        });
    }
    batch
}

/// (endpoint uid, event id, state) of every delivery, oldest first.
async fn deliveries(store: &Store) -> Vec<(String, String, String)> {
    let mut rows: Vec<_> = store
        .list_deliveries(None, None, 10_000, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.endpoint_uid, d.event_id, d.state))
        .collect();
    rows.reverse();
    rows
}

async fn replay_creates_missing_events_for_the_target_endpoint_only(engine: Engine) {
    let store = fresh(engine).await;
    let dev = approved_device(&store, "SN1").await;
    // Three punches before any endpoint: stored without events.
    store.punch_writer().write(batch(dev, "SN1", 0..3)).await.unwrap();
    store.create_endpoint("ep_a", &settings("http://a"), "api", "whsec_a").await.unwrap();
    // Two punches with endpoint A: events fanned out to A.
    store.punch_writer().write(batch(dev, "SN1", 3..5)).await.unwrap();
    assert_eq!(deliveries(&store).await.len(), 2);
    store.create_endpoint("ep_b", &settings("http://b"), "api", "whsec_b").await.unwrap();

    let now = now_micros();
    let all = ReplayRange { device_id: Some(dev), ..ReplayRange::default() };
    let outcome = store.replay_punches("ep_b", &all, 100, now).await.unwrap();
    assert_eq!(outcome, ReplayOutcome::Replayed { events: 5, events_created: 3 });
    let rows = deliveries(&store).await;
    assert_eq!(rows.iter().filter(|(ep, _, _)| ep == "ep_a").count(), 2, "A gets nothing new: {rows:?}");
    assert_eq!(rows.iter().filter(|(ep, _, _)| ep == "ep_b").count(), 5);

    // The created events are exactly what the writer would have made.
    let cursor = store.punches_after_seq(dev, 0, 100).await.unwrap();
    assert_eq!(cursor.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    let b_ids: Vec<&String> = rows.iter().filter(|(ep, _, _)| ep == "ep_b").map(|(_, id, _)| id).collect();
    for p in &cursor {
        let id = punch_event_id("SN1", &p.pin, &p.local_time, &p.state, 1, &p.work_code);
        assert_eq!(p.event_id.as_deref(), Some(id.as_str()));
        assert!(b_ids.contains(&&id));
    }
    let claims = store.claim_due_deliveries("w", now_micros(), 1_000_000, 100).await.unwrap();
    let first = cursor.first().unwrap();
    let expected = PunchEvent {
        event_id: first.event_id.as_deref().unwrap(),
        device: adms_store::events::EventDevice { sn: "SN1", alias: "", time_zone: "UTC" },
        seq: 1,
        pin: "7",
        local_time: "2026-11-20 08:00:00",
        utc_time: Some(1_795_161_600),
        state: "0",
        verify: 1,
        work_code: "0",
        received_at: first.received_at,
        raw_line: "7\t2026-11-20 08:00:00\t0\t1\t0",
    }
    .body();
    let claim = claims.iter().find(|c| Some(c.event_id.as_str()) == first.event_id.as_deref()).unwrap();
    assert_eq!(String::from_utf8_lossy(&claim.body), String::from_utf8_lossy(&expected));

    // New punches still fan out to every endpoint.
    store.punch_writer().write(batch(dev, "SN1", 5..6)).await.unwrap();
    let rows = deliveries(&store).await;
    assert_eq!(rows.len(), 2 + 5 + 2);

    // Replaying again creates nothing and makes B's deliveries due again (a fresh schedule),
    // leaving the ones a worker holds alone; A is untouched.
    let outcome = store.replay_punches("ep_b", &all, 100, now_micros()).await.unwrap();
    assert_eq!(outcome, ReplayOutcome::Replayed { events: 6, events_created: 0 });
    let rows = deliveries(&store).await;
    assert_eq!(rows.iter().filter(|(ep, _, _)| ep == "ep_a").count(), 3);
    let b: Vec<_> = rows.iter().filter(|(ep, _, _)| ep == "ep_b").collect();
    assert_eq!(b.len(), 6);
    assert_eq!(b.iter().filter(|(_, _, s)| s == "in_flight").count(), 5, "claimed above: {b:?}");

    // Ranges: seq and local time, bounds inclusive; the cap; unknown endpoint.
    let seqs = ReplayRange { device_id: Some(dev), from_seq: Some(2), to_seq: Some(3), ..ReplayRange::default() };
    assert_eq!(
        store.replay_punches("ep_b", &seqs, 100, now_micros()).await.unwrap(),
        ReplayOutcome::Replayed { events: 2, events_created: 0 }
    );
    let times = ReplayRange {
        from_local_time: Some("2026-11-20 08:01:00"),
        to_local_time: Some("2026-11-20 08:04:00"),
        ..ReplayRange::default()
    };
    assert_eq!(
        store.replay_punches("ep_b", &times, 100, now_micros()).await.unwrap(),
        ReplayOutcome::Replayed { events: 4, events_created: 0 }
    );
    assert_eq!(store.replay_punches("ep_b", &all, 5, now_micros()).await.unwrap(), ReplayOutcome::TooMany(6));
    assert_eq!(store.replay_punches("ep_x", &all, 100, now_micros()).await.unwrap(), ReplayOutcome::NotFound);
}

async fn replay_works_through_chunks(engine: Engine) {
    let store = fresh(engine).await;
    let dev = approved_device(&store, "SN1").await;
    let mut big = batch(dev, "SN1", 0..0);
    for i in 0..4_500 {
        let mut p = batch(dev, "SN1", 0..1).punches.remove(0);
        p.pin = format!("{i}");
        big.punches.push(p);
    }
    store.punch_writer().write(big).await.unwrap();
    store.create_endpoint("ep_b", &settings("http://b"), "api", "whsec_b").await.unwrap();
    let outcome = store.replay_punches("ep_b", &ReplayRange::default(), 100_000, now_micros()).await.unwrap();
    assert_eq!(outcome, ReplayOutcome::Replayed { events: 4_500, events_created: 4_500 });
    assert_eq!(store.list_deliveries(Some("ep_b"), Some("pending"), 10_000, None).await.unwrap().len(), 4_500);
    let page = store.punches_after_seq(dev, 4_000, 1_000).await.unwrap();
    assert_eq!(page.first().map(|p| p.seq), Some(4_001));
    assert_eq!(page.len(), 500);
}

async fn resend_and_attempts(engine: Engine) {
    let store = fresh(engine).await;
    let dev = approved_device(&store, "SN1").await;
    store.create_endpoint("ep_a", &settings("http://a"), "api", "whsec_a").await.unwrap();
    store.punch_writer().write(batch(dev, "SN1", 0..1)).await.unwrap();
    let claim = store.claim_due_deliveries("w", now_micros(), 60_000_000, 10).await.unwrap().remove(0);
    assert_eq!(store.delivery_attempts(claim.delivery_id).await.unwrap(), Some(vec![]));
    assert_eq!(store.delivery_attempts(999).await.unwrap(), None);

    // Being sent: a resend is refused.
    assert_eq!(store.resend_delivery(claim.delivery_id, now_micros()).await.unwrap(), ResendOutcome::InFlight);
    store
        .complete_deliveries(&[Completion {
            delivery_id: claim.delivery_id,
            lease_token: claim.lease_token,
            attempt_no: claim.attempt_no,
            trigger: claim.trigger.clone(),
            worker: "w".into(),
            started_at: now_micros(),
            duration_us: 2_000,
            http_status: Some(200),
            error_kind: None,
            error: None,
            response_body: b"thanks".to_vec(),
            outcome: DeliveryOutcome::Succeeded,
            batch_id: None,
        }])
        .await
        .unwrap();
    let attempts = store.delivery_attempts(claim.delivery_id).await.unwrap().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!((attempts[0].http_status, attempts[0].accepted), (Some(200), true));
    assert_eq!(attempts[0].response_body.as_deref(), Some(&b"thanks"[..]));

    // Succeeded → pending, due now, a fresh schedule.
    assert_eq!(store.resend_delivery(claim.delivery_id, now_micros()).await.unwrap(), ResendOutcome::Queued);
    let again = store.claim_due_deliveries("w", now_micros(), 60_000_000, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt_no, 1, "attempt count restarted");
    assert_eq!(again[0].body, claim.body);

    assert_eq!(store.resend_delivery(999, now_micros()).await.unwrap(), ResendOutcome::NotFound);
    store.delete_endpoint("ep_a").await.unwrap();
    store.expire_leases(now_micros() + 120_000_000).await.unwrap();
    assert_eq!(store.resend_delivery(claim.delivery_id, now_micros()).await.unwrap(), ResendOutcome::EndpointDeleted);
}

async fn cursor_pages_by_seq_per_device(engine: Engine) {
    let store = fresh(engine).await;
    let a = approved_device(&store, "A").await;
    let b = approved_device(&store, "B").await;
    // Interleaved uploads of two devices, some with an endpoint (events) and some without.
    store.punch_writer().write(batch(a, "A", 0..3)).await.unwrap();
    store.punch_writer().write(batch(b, "B", 0..2)).await.unwrap();
    store.create_endpoint("ep_a", &settings("http://a"), "api", "whsec_a").await.unwrap();
    store.punch_writer().write(batch(a, "A", 3..6)).await.unwrap();
    store.punch_writer().write(batch(b, "B", 2..4)).await.unwrap();
    store.punch_writer().write(batch(a, "A", 6..8)).await.unwrap();

    let mut seqs = Vec::new();
    let mut after = 0;
    loop {
        let page = store.punches_after_seq(a, after, 3).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        seqs.extend(page.iter().map(|p| p.seq));
    }
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    let b_page = store.punches_after_seq(b, 1, 100).await.unwrap();
    assert_eq!(b_page.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![2, 3, 4]);
    // Starting from a seq that has an event (the index hint) still returns what follows.
    let tail = store.punches_after_seq(a, 5, 100).await.unwrap();
    assert_eq!(tail.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![6, 7, 8]);
    assert!(tail.iter().all(|p| p.event_id.as_deref().is_some_and(|id| id.starts_with("evt_"))));
}

/// On PostgreSQL punch ids are not in commit order (a smaller id may commit later), so the
/// cursor and the replay walk `(device_id, seq)`: punches stored with ids in the opposite order
/// of their seqs still come back in seq order.
#[tokio::test]
async fn cursor_and_replay_follow_seq_not_id_on_postgres() {
    use sqlx::Connection;
    let store = fresh(Engine::Postgres).await;
    let dev = approved_device(&store, "SN1").await;
    let mut conn = sqlx::PgConnection::connect(store.url()).await.unwrap();
    for (id, seq) in [(900_i64, 1_i64), (500, 2), (10, 3)] {
        let local_time = format!("2026-11-20 08:0{seq}:00");
        sqlx::query(
            "INSERT INTO punches (id, device_id, seq, pin, local_time, state, verify, work_code, extra, time_zone, \
             raw_line, received_at) VALUES ($1, $2, $3, '7', $4, '0', 1, '0', '', 'UTC', $5, $6)",
        )
        .bind(id)
        .bind(dev)
        .bind(seq)
        .bind(&local_time)
        .bind(format!("7\t{local_time}\t0\t1\t0"))
        .bind(now_micros())
        .execute(&mut conn)
        .await
        .unwrap();
    }
    sqlx::query("UPDATE devices SET last_seq = 3 WHERE id = $1").bind(dev).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();

    let first = store.punches_after_seq(dev, 0, 2).await.unwrap();
    assert_eq!(first.iter().map(|p| (p.seq, p.id)).collect::<Vec<_>>(), [(1, 900), (2, 500)]);
    let rest = store.punches_after_seq(dev, 2, 10).await.unwrap();
    assert_eq!(rest.iter().map(|p| (p.seq, p.id)).collect::<Vec<_>>(), [(3, 10)]);

    store.create_endpoint("ep_b", &settings("http://b"), "api", "whsec_b").await.unwrap();
    let from_two = ReplayRange { device_id: Some(dev), from_seq: Some(2), ..ReplayRange::default() };
    assert_eq!(
        store.replay_punches("ep_b", &from_two, 100, now_micros()).await.unwrap(),
        ReplayOutcome::Replayed { events: 2, events_created: 2 }
    );
    let all = ReplayRange::default();
    assert_eq!(
        store.replay_punches("ep_b", &all, 100, now_micros()).await.unwrap(),
        ReplayOutcome::Replayed { events: 3, events_created: 1 }
    );
    let claims = store.claim_due_deliveries("w", now_micros(), 1_000_000, 10).await.unwrap();
    let mut seqs: Vec<i64> = claims
        .iter()
        .map(|c| serde_json::from_slice::<serde_json::Value>(&c.body).unwrap()["data"]["seq"].as_i64().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2, 3]);
}
