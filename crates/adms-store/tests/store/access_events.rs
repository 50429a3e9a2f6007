//! The access-event cursor (migration 0024): every stored `rtlog` event gets a gapless `seq` per
//! controller in commit order, from concurrent writers and from a database written before the
//! numbering existed, and the cursor serves each event once with its webhook's id. Also what
//! migration 0023 derives for controllers an older database knew (their aux outputs).

use adms_store::{AccessEvent, now_micros};

use crate::common::{Engine, approved_device, fresh};

crate::on_both_engines!(
    each_controller_numbers_its_events_once_in_order,
    concurrent_uploads_of_one_controller_number_without_gaps,
    a_large_upload_is_numbered_in_order_and_a_line_sent_twice_is_one_event,
    many_controllers_at_once_each_get_their_events_and_a_failing_request_fails_alone,
    events_stored_before_0024_are_numbered_by_the_migration,
    controllers_known_before_0023_get_their_aux_outputs_from_the_migration,
);

fn event(time: &str, pin: &str, code: i64) -> AccessEvent {
    AccessEvent {
        local_time: time.into(),
        pin: pin.into(),
        card_no: "123456".into(),
        door: Some(1),
        event_code: Some(code),
        in_out: Some(0),
        verify_type: "4".into(),
        raw_line: format!("time={time}\tpin={pin}\tcardno=123456\teventaddr=1\tevent={code}").into_bytes(),
    }
}

async fn each_controller_numbers_its_events_once_in_order(engine: Engine) {
    let store = fresh(engine).await;
    store.create_endpoint("ep_a", &crate::common::endpoint_settings("http://a"), "api", "whsec_a").await.unwrap();
    let a = approved_device(&store, "ACCA").await;
    let b = approved_device(&store, "ACCB").await;
    let now = now_micros();
    store
        .store_access_events(
            a,
            &[event("2026-12-06 09:00:00", "1", 0), event("2026-12-06 09:00:01", "2", 27)],
            &[],
            now,
        )
        .await
        .unwrap();
    store.store_access_events(b, &[event("2026-12-06 09:00:00", "9", 0)], &[], now).await.unwrap();
    // A re-sent line is no new event and takes no number.
    store
        .store_access_events(
            a,
            &[event("2026-12-06 09:00:01", "2", 27), event("2026-12-06 09:00:02", "3", 0)],
            &[],
            now,
        )
        .await
        .unwrap();

    let read = |device_id: i64, sn: &'static str, after: i64, limit: i64| {
        let store = &store;
        async move { store.access_events_after_seq(device_id, sn, after, limit).await.unwrap() }
    };
    let all = read(a, "ACCA", 0, 10).await;
    let seen: Vec<(i64, &str)> = all.iter().map(|e| (e.seq, e.pin.as_str())).collect();
    assert_eq!(seen, [(1, "1"), (2, "2"), (3, "3")]);
    assert_eq!(read(b, "ACCB", 0, 10).await.iter().map(|e| e.seq).collect::<Vec<_>>(), [1]);
    assert_eq!(read(a, "ACCA", 1, 1).await, all[1..2], "a page after a seq");
    assert!(read(a, "ACCA", 3, 10).await.is_empty());

    // Each event names the id of its `access.event` webhook.
    let events = store.list_events(Some("access.event"), Some("ACCA"), 10, None).await.unwrap();
    let mut webhook_ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let mut cursor_ids: Vec<&str> = all.iter().map(|e| e.event_id.as_str()).collect();
    webhook_ids.sort_unstable();
    cursor_ids.sort_unstable();
    assert_eq!(cursor_ids, webhook_ids);
}

/// Two processes storing one controller's events at once: every event numbered, 1..=N with no
/// gap and no number twice (on PostgreSQL the controller's row serialises the numbering).
async fn concurrent_uploads_of_one_controller_number_without_gaps(engine: Engine) {
    let store = fresh(engine).await;
    let second = store.second_process().await;
    let panel = approved_device(&store, "ACC1").await;
    let uploads = (0..16).map(|i| {
        let handle = if i % 2 == 0 { store.store().clone() } else { second.clone() };
        tokio::spawn(async move {
            let lines: Vec<AccessEvent> =
                (0..5).map(|j| event(&format!("2026-12-06 10:{i:02}:{j:02}"), &format!("{i}"), 0)).collect();
            handle.store_access_events(panel, &lines, &[], now_micros()).await.unwrap();
        })
    });
    for upload in uploads.collect::<Vec<_>>() {
        upload.await.unwrap();
    }
    let seqs: Vec<i64> =
        store.access_events_after_seq(panel, "ACC1", 0, 1000).await.unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=80).collect::<Vec<i64>>());
    // A request's lines are numbered together, in the order sent.
    let rows = store.access_events_after_seq(panel, "ACC1", 0, 1000).await.unwrap();
    for request in rows.chunks(5) {
        let times: Vec<&str> = request.iter().map(|e| &e.local_time[17..]).collect();
        assert_eq!(times, ["00", "01", "02", "03", "04"], "{request:?}");
    }
}

/// One upload of 300 lines (a controller's backlog after an outage), one line of it sent twice
/// in the body: 299 events numbered in the order sent, each with its one webhook event naming
/// the same number and row.
async fn a_large_upload_is_numbered_in_order_and_a_line_sent_twice_is_one_event(engine: Engine) {
    let store = fresh(engine).await;
    store.create_endpoint("ep_a", &crate::common::endpoint_settings("http://a"), "api", "whsec_a").await.unwrap();
    let panel = approved_device(&store, "ACCL").await;
    let mut lines: Vec<AccessEvent> = (0..299)
        .map(|i| event(&format!("2026-12-06 {:02}:{:02}:{:02}", i / 3600, i / 60 % 60, i % 60), &format!("{i}"), 0))
        .collect();
    lines.insert(150, lines[10].clone());
    store.store_access_events(panel, &lines, &[], now_micros()).await.unwrap();

    let stored = store.access_events_after_seq(panel, "ACCL", 0, 1000).await.unwrap();
    let numbered: Vec<(i64, String)> = stored.iter().map(|e| (e.seq, e.pin.clone())).collect();
    let expected: Vec<(i64, String)> = (0..299).map(|i| (i + 1, i.to_string())).collect();
    assert_eq!(numbered, expected);
    let events = store.list_events(Some("access.event"), Some("ACCL"), 1000, None).await.unwrap();
    assert_eq!(events.len(), 299);
    let seq_of: std::collections::HashMap<&str, i64> = stored.iter().map(|e| (e.event_id.as_str(), e.seq)).collect();
    for e in &events {
        let body: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(body["data"]["seq"].as_i64(), seq_of.get(e.event_id.as_str()).copied(), "{body}");
        let row = stored.iter().find(|s| s.event_id == e.event_id).map(|s| s.id);
        assert_eq!(body["data"]["access_event_id"].as_i64(), row, "{body}");
    }
}

/// Many controllers sending at once (their requests share transactions), one request among
/// them naming a controller that does not exist: that request fails, every other one is stored
/// whole, each controller numbered 1..=3, each event with its one webhook event.
async fn many_controllers_at_once_each_get_their_events_and_a_failing_request_fails_alone(engine: Engine) {
    let store = fresh(engine).await;
    store.create_endpoint("ep_a", &crate::common::endpoint_settings("http://a"), "api", "whsec_a").await.unwrap();
    let mut panels = Vec::new();
    for i in 0..40 {
        panels.push(approved_device(&store, &format!("ACCM{i:02}")).await);
    }
    let missing = panels.iter().max().unwrap() + 1000;
    let mut uploads = tokio::task::JoinSet::new();
    for (i, &panel) in panels.iter().chain([&missing]).enumerate() {
        let handle = store.store().clone();
        uploads.spawn(async move {
            let lines: Vec<AccessEvent> =
                (0..3).map(|j| event(&format!("2026-12-06 11:{i:02}:{j:02}"), &format!("{i}"), 0)).collect();
            (panel, handle.store_access_events(panel, &lines, &[], now_micros()).await)
        });
    }
    let mut failed = Vec::new();
    while let Some(done) = uploads.join_next().await {
        let (panel, result) = done.unwrap();
        if let Err(error) = result {
            failed.push((panel, error.to_string()));
        }
    }
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, missing);
    for (i, &panel) in panels.iter().enumerate() {
        let sn = format!("ACCM{i:02}");
        let stored = store.access_events_after_seq(panel, &sn, 0, 10).await.unwrap();
        let numbered: Vec<(i64, &str)> = stored.iter().map(|e| (e.seq, &e.local_time[17..])).collect();
        assert_eq!(numbered, [(1, "00"), (2, "01"), (3, "02")], "{sn}");
        // Each webhook body names its own row and number, though the group numbered several
        // controllers in one statement.
        let events = store.list_events(Some("access.event"), Some(&sn), 10, None).await.unwrap();
        assert_eq!(events.len(), 3, "{sn}");
        for e in &events {
            let body: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
            let row = stored.iter().find(|s| s.event_id == e.event_id).expect("the event's row");
            assert_eq!(body["data"]["seq"].as_i64(), Some(row.seq), "{body}");
            assert_eq!(body["data"]["access_event_id"].as_i64(), Some(row.id), "{body}");
            assert_eq!(body["data"]["device"]["sn"].as_str(), Some(sn.as_str()), "{body}");
        }
    }
}

/// A database written before 0024: its events are numbered per controller in id order, and the
/// next event continues from there.
async fn events_stored_before_0024_are_numbered_by_the_migration(engine: Engine) {
    let old = crate::common::OldDatabase::before(engine, "0024").await;
    old.execute(
        "INSERT INTO devices (sn, first_seen_at, approval) VALUES ('OLD1', 1, 'approved'), ('OLD2', 1, 'approved');
         INSERT INTO access_events (device_id, local_time, pin, card_no, door, event_code, in_out, verify_type, raw_line, raw_sha256, received_at)
         VALUES (1, '2026-12-06 08:00:00', '1', '', 1, 0, 0, '4', 'a', 'a', 1),
                (2, '2026-12-06 08:00:00', '7', '', 1, 0, 0, '4', 'b', 'b', 1),
                (1, '2026-12-06 08:00:01', '2', '', 1, 0, 0, '4', 'c', 'c', 1)",
    )
    .await;
    let store = old.open().await;
    let pins = |rows: Vec<adms_store::access_events::CursorAccessEvent>| -> Vec<(i64, String)> {
        rows.into_iter().map(|e| (e.seq, e.pin)).collect()
    };
    assert_eq!(
        pins(store.access_events_after_seq(1, "OLD1", 0, 10).await.unwrap()),
        [(1, "1".into()), (2, "2".into())]
    );
    assert_eq!(pins(store.access_events_after_seq(2, "OLD2", 0, 10).await.unwrap()), [(1, "7".into())]);
    store.store_access_events(1, &[event("2026-12-06 08:00:02", "3", 0)], &[], now_micros()).await.unwrap();
    assert_eq!(pins(store.access_events_after_seq(1, "OLD1", 2, 10).await.unwrap()), [(3, "3".into())]);
}

/// Migration 0023: a controller that reported `AuxOutCount` before it gets one output per count,
/// named after its alias or serial number; one without the count gets none.
async fn controllers_known_before_0023_get_their_aux_outputs_from_the_migration(engine: Engine) {
    let old = crate::common::OldDatabase::before(engine, "0023").await;
    old.execute(
        "INSERT INTO devices (sn, alias, first_seen_at, approval) VALUES ('OLDAUX1', '', 1, 'approved'),
                ('OLDAUX2', 'Lobby', 1, 'approved'), ('OLDAUX3', '', 1, 'approved');
         INSERT INTO access_controllers (device_id, lock_count, aux_out_count, updated_at)
         VALUES (1, 2, 2, 5), (2, 1, 1, 6), (3, 1, NULL, 7)",
    )
    .await;
    let store = old.open().await;
    let outputs: Vec<(i64, i64, String)> =
        store.access_aux_outputs(None).await.unwrap().into_iter().map(|o| (o.device_id, o.aux_no, o.name)).collect();
    assert_eq!(
        outputs,
        [
            (1, 1, "OLDAUX1-AuxOut1".to_owned()),
            (1, 2, "OLDAUX1-AuxOut2".to_owned()),
            (2, 1, "Lobby-AuxOut1".to_owned())
        ]
    );
}
