//! The store against a real SQLite file: group commit, de-duplication, gapless seq.

use adms_store::{NewDevice, NewPunch, Page, PunchBatch, RejectedLine, Store, TransactionFilter};

async fn open() -> (tempfile::TempDir, Store) {
    crate::common::open("nested/test.db").await
}

fn punch(pin: &str, time: &str) -> NewPunch {
    NewPunch {
        pin: pin.into(),
        local_time: time.into(),
        state: "0".into(),
        verify: 1,
        work_code: "0".into(),
        extra: "0\t0".into(),
        time_zone: Some("UTC".into()),
        utc_time: Some(0),
        mask_flag: None,
        temperature: None,
        raw_line: format!("{pin}\t{time}\t0\t1\t0\t0\t0"),
    }
}

async fn concurrent_batches_dedupe_and_get_gapless_seq(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let a = store
        .register_device(&NewDevice { approval: Some(adms_store::Approval::Approved), sn: "A1", ..Default::default() })
        .await
        .unwrap();
    let b = store
        .register_device(&NewDevice { approval: Some(adms_store::Approval::Approved), sn: "B2", ..Default::default() })
        .await
        .unwrap();
    // Same registration twice returns the same device.
    assert_eq!(
        store
            .register_device(&NewDevice {
                approval: Some(adms_store::Approval::Approved),
                sn: "A1",
                ..Default::default()
            })
            .await
            .unwrap()
            .id,
        a.id
    );

    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        let device_id = if i % 2 == 0 { a.id } else { b.id };
        tasks.push(tokio::spawn(async move {
            let mut batch = PunchBatch::new(device_id);
            // every batch repeats punch 0 and adds a distinct one, plus an in-batch duplicate
            batch.punches.push(punch("1", "2026-01-01 08:00:00"));
            batch.punches.push(punch("2", &format!("2026-01-01 09:{:02}:00", i)));
            batch.punches.push(punch("2", &format!("2026-01-01 09:{:02}:00", i)));
            batch.rejected.push(RejectedLine {
                table: "ATTLOG",
                line_no: 9,
                raw: b"junk".to_vec(),
                reason: "too_few_fields",
            });
            store.punch_writer().write(batch).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let (count, rows) =
        store.list_transactions(&TransactionFilter::default(), Page { offset: 0, limit: 1000 }).await.unwrap();
    // per device: punch "1" once + 20 distinct "2" punches
    assert_eq!(count, 42);
    for sn in ["A1", "B2"] {
        let mut seqs: Vec<i64> = rows.iter().filter(|r| r.terminal_sn == sn).map(|r| r.seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=21).collect::<Vec<_>>(), "gapless seq for {sn}");
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ascending ids");
    let dev = store.device_by_sn("A1").await.unwrap().unwrap();
    assert_eq!(dev.last_seq, 21);

    // A re-sent batch adds nothing and keeps ids.
    let mut again = PunchBatch::new(a.id);
    again.punches.push(punch("1", "2026-01-01 08:00:00"));
    store.punch_writer().write(again).await.unwrap();
    let (count2, rows2) =
        store.list_transactions(&TransactionFilter::default(), Page { offset: 0, limit: 1000 }).await.unwrap();
    assert_eq!(count2, count);
    assert_eq!(rows2, rows);
}

/// Plain groups (punches only) take the writer's cheap insert, which numbers each device's
/// punches from `last_seq` by their place in the group; a group that re-sends stored punches
/// falls back to the general insert. Both must give every device a gapless `seq` that agrees
/// with id order, and a re-sent punch keeps its id and `seq`.
async fn plain_groups_number_punches_in_upload_order_and_re_sends_fall_back_without_gaps(
    engine: crate::common::Engine,
) {
    let store = crate::common::fresh(engine).await;
    let a = store
        .register_device(&NewDevice { approval: Some(adms_store::Approval::Approved), sn: "A1", ..Default::default() })
        .await
        .unwrap();
    let b = store
        .register_device(&NewDevice { approval: Some(adms_store::Approval::Approved), sn: "B2", ..Default::default() })
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let device_id = if i % 2 == 0 { a.id } else { b.id };
        tasks.push(tokio::spawn(async move {
            let mut batch = PunchBatch::new(device_id);
            for k in 0..3 {
                batch.punches.push(punch(&format!("{i}"), &format!("2026-01-01 08:{i:02}:{k:02}")));
            }
            // In-batch duplicate of a new punch: stored once.
            batch.punches.push(punch(&format!("{i}"), &format!("2026-01-01 08:{i:02}:00")));
            store.punch_writer().write(batch).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let page = Page { offset: 0, limit: 1000 };
    let (count, rows) = store.list_transactions(&TransactionFilter::default(), page).await.unwrap();
    assert_eq!(count, 60);
    let seqs_of = |rows: &[adms_store::TransactionRow], sn: &str| -> Vec<i64> {
        rows.iter().filter(|r| r.terminal_sn == sn).map(|r| r.seq).collect()
    };
    for sn in ["A1", "B2"] {
        // `rows` is in id order: seq must count up along it.
        assert_eq!(seqs_of(&rows, sn), (1..=30).collect::<Vec<_>>(), "gapless seq in id order for {sn}");
    }
    // Each upload's punches are numbered in the order the device sent them.
    for i in 0..20 {
        let times: Vec<&str> =
            rows.iter().filter(|r| r.emp_code == i.to_string()).map(|r| r.punch_time.as_str()).collect();
        let mut sorted = times.clone();
        sorted.sort_unstable();
        assert_eq!(times, sorted, "upload {i} in order");
    }

    // A plain batch that re-sends two stored punches between two new ones.
    let mut again = PunchBatch::new(a.id);
    again.punches.push(punch("new", "2026-01-02 08:00:00"));
    again.punches.push(punch("0", "2026-01-01 08:00:00"));
    again.punches.push(punch("0", "2026-01-01 08:00:01"));
    again.punches.push(punch("new", "2026-01-02 08:00:01"));
    store.punch_writer().write(again).await.unwrap();
    let (count2, rows2) = store.list_transactions(&TransactionFilter::default(), page).await.unwrap();
    assert_eq!(count2, 62);
    assert_eq!(&rows2[..60], &rows[..], "stored punches keep their ids and seq");
    let new: Vec<(i64, &str)> = rows2[60..].iter().map(|r| (r.seq, r.punch_time.as_str())).collect();
    assert_eq!(new, [(31, "2026-01-02 08:00:00"), (32, "2026-01-02 08:00:01")]);
    assert_eq!(store.device_by_sn("A1").await.unwrap().unwrap().last_seq, 32);

    // After the fallback the next plain group takes the cheap insert again, from the new last_seq.
    let mut next = PunchBatch::new(a.id);
    next.punches.push(punch("new", "2026-01-03 08:00:00"));
    store.punch_writer().write(next).await.unwrap();
    let (_, rows3) = store.list_transactions(&TransactionFilter::default(), page).await.unwrap();
    assert_eq!(rows3.last().map(|r| (r.seq, r.terminal_sn.as_str())), Some((33, "A1")));
}

/// Terminals send their next upload only after their `OK`, and come and go: the writer lets
/// small groups wait for the devices it just answered, and must neither lose nor hold back an
/// upload when some of them stop sending.
async fn devices_that_wait_for_their_ok_all_land_while_some_stop_sending(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let mut tasks = Vec::new();
    for d in 0..16 {
        let device = store
            .register_device(&NewDevice {
                approval: Some(adms_store::Approval::Approved),
                sn: &format!("W{d:02}"),
                ..Default::default()
            })
            .await
            .unwrap();
        let store = store.clone();
        // Half the devices stop after 5 uploads, the rest go on to 40.
        let uploads = if d % 2 == 0 { 5 } else { 40 };
        tasks.push(tokio::spawn(async move {
            for i in 0..uploads {
                let mut batch = PunchBatch::new(device.id);
                batch.punches.push(punch(&format!("{d}"), &format!("2026-01-01 08:{:02}:{:02}", i / 60, i % 60)));
                store.punch_writer().write(batch).await?;
            }
            Ok::<_, adms_store::StoreError>(())
        }));
    }
    // A writer that waited for devices that never come back would hang here.
    let all = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    });
    all.await.expect("every upload answered");
    let (count, rows) =
        store.list_transactions(&TransactionFilter::default(), Page { offset: 0, limit: 1000 }).await.unwrap();
    assert_eq!(count, 8 * 5 + 8 * 40);
    for d in 0..16 {
        let sn = format!("W{d:02}");
        let seqs: Vec<i64> = rows.iter().filter(|r| r.terminal_sn == sn).map(|r| r.seq).collect();
        let expected = if d % 2 == 0 { 5 } else { 40 };
        assert_eq!(seqs, (1..=expected).collect::<Vec<_>>(), "every upload of {sn}, in order");
    }
}

async fn filters_and_pending_devices(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let a = store
        .register_device(&NewDevice { approval: Some(adms_store::Approval::Approved), sn: "A1", ..Default::default() })
        .await
        .unwrap();
    let p = store
        .register_device(&NewDevice { sn: "P1", approval: Some(adms_store::Approval::Pending), ..Default::default() })
        .await
        .unwrap();
    for (dev, pin, t) in
        [(a.id, "7", "2026-01-01 08:00:00"), (a.id, "8", "2026-01-02 08:00:00"), (p.id, "7", "2026-01-01 08:00:00")]
    {
        let mut batch = PunchBatch::new(dev);
        batch.punches.push(punch(pin, t));
        store.punch_writer().write(batch).await.unwrap();
    }
    let page = Page { offset: 0, limit: 10 };
    let all = store.list_transactions(&TransactionFilter::default(), page).await.unwrap();
    assert_eq!(all.0, 2, "pending device held back");
    let f = TransactionFilter { emp_code: Some("7".into()), ..Default::default() };
    assert_eq!(store.list_transactions(&f, page).await.unwrap().0, 1);
    let f = TransactionFilter { start_time: Some("2026-01-02 00:00:00".into()), ..Default::default() };
    let (n, rows) = store.list_transactions(&f, page).await.unwrap();
    assert_eq!((n, rows[0].emp_code.as_str()), (1, "8"));
    assert!(store.set_approval("P1", adms_store::Approval::Approved).await.unwrap());
    assert_eq!(store.list_transactions(&TransactionFilter::default(), page).await.unwrap().0, 3);
}

/// A batch that fails inside the group (here: one naming a device that does not exist) fails
/// only its own request; the group is rolled back or counted short and retried batch by batch,
/// the others are stored, and the writer's connection is left with no transaction open, so the
/// next writes commit normally. Twice: with a rejected line in each batch (the general path,
/// where the rejected line's foreign key refuses it), then plain (the cheap path, whose insert
/// joins the device rows: the group's count of them refuses it; migration 0028).
async fn a_failing_batch_fails_alone_and_leaves_the_writer_usable(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let good = store
        .register_device(&NewDevice {
            approval: Some(adms_store::Approval::Approved),
            sn: "GOOD1",
            ..Default::default()
        })
        .await
        .unwrap();
    // Eight batches at once, the fourth naming a device that does not exist.
    let eight_batches = async |hour: u32, with_rejected_line: bool| {
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let device_id = if i == 3 { 987_654 } else { good.id };
                let mut batch = PunchBatch::new(device_id);
                batch.punches.push(punch("7", &format!("2026-02-01 {hour:02}:{i:02}:00")));
                if with_rejected_line {
                    batch.rejected.push(RejectedLine {
                        table: "ATTLOG",
                        line_no: 1,
                        raw: vec![b'x'; i + 1],
                        reason: "bad_time",
                    });
                }
                (i, store.punch_writer().write(batch).await)
            }));
        }
        for t in tasks {
            let (i, result) = t.await.unwrap();
            assert_eq!(result.is_err(), i == 3, "batch {i} (rejected line: {with_rejected_line}): {result:?}");
        }
    };
    let stored = |store: Store| async move {
        store.list_transactions(&TransactionFilter::default(), Page { offset: 0, limit: 100 }).await.unwrap().0
    };
    eight_batches(10, true).await;
    assert_eq!(stored(store.clone()).await, 7);
    // The writer still commits: nothing was left open by the failed group.
    let mut later = PunchBatch::new(good.id);
    later.punches.push(punch("7", "2026-02-01 11:00:00"));
    store.punch_writer().write(later).await.unwrap();
    assert_eq!(stored(store.clone()).await, 8);
    assert_eq!(store.device_by_sn("GOOD1").await.unwrap().unwrap().last_seq, 8);

    eight_batches(12, false).await;
    assert_eq!(stored(store.clone()).await, 15);
    assert_eq!(store.device_by_sn("GOOD1").await.unwrap().unwrap().last_seq, 15);
}

/// `insert_new_punches` (what `adms-loadgen floor` commits without the writer) is the writer's
/// own cheap insert: run on a connection of its own it numbers each device's punches from
/// `last_seq`, and the writer carries on from there.
#[tokio::test]
async fn the_floor_benchmarks_statement_stores_punches_as_the_writer_does() {
    let (dir, store) = open().await;
    let a = store
        .register_device(&NewDevice { approval: Some(adms_store::Approval::Approved), sn: "A1", ..Default::default() })
        .await
        .unwrap();
    let b = store
        .register_device(&NewDevice { approval: Some(adms_store::Approval::Approved), sn: "B2", ..Default::default() })
        .await
        .unwrap();
    let mut first = PunchBatch::new(a.id);
    first.punches.push(punch("1", "2026-01-01 08:00:00"));
    store.punch_writer().write(first).await.unwrap();

    let batches: Vec<PunchBatch> = [(a.id, "2"), (b.id, "3"), (a.id, "4")]
        .into_iter()
        .map(|(device_id, pin)| {
            let mut batch = PunchBatch::new(device_id);
            batch.punches.push(punch(pin, "2026-01-01 09:00:00"));
            batch
        })
        .collect();
    let path = dir.path().join("nested/test.db");
    let inserted = tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let inserted = adms_store::insert_new_punches(&conn, &batches.iter().collect::<Vec<_>>()).unwrap();
        conn.execute_batch("COMMIT").unwrap();
        inserted
    })
    .await
    .unwrap();
    assert_eq!(inserted, Some(3));

    let mut next = PunchBatch::new(a.id);
    next.punches.push(punch("5", "2026-01-01 10:00:00"));
    store.punch_writer().write(next).await.unwrap();
    let page = Page { offset: 0, limit: 100 };
    let (_, rows) = store.list_transactions(&TransactionFilter::default(), page).await.unwrap();
    let stored: Vec<(&str, &str, i64)> =
        rows.iter().map(|r| (r.terminal_sn.as_str(), r.emp_code.as_str(), r.seq)).collect();
    assert_eq!(stored, [("A1", "1", 1), ("A1", "2", 2), ("B2", "3", 1), ("A1", "4", 3), ("A1", "5", 4)]);
}

/// A group larger than one statement (101 punches: statements of 64, 32, 4 and 1 rows) from
/// three devices interleaved: each device's punches numbered 1, 2, … in upload order with ids
/// ascending the same way, `last_seq` at the count; the same group again fails on the natural
/// key (the writer then writes it the general way), and a group naming a device without a row
/// inserts nothing.
#[tokio::test]
async fn the_cheap_insert_numbers_a_group_of_several_statements_in_upload_order() {
    let (dir, store) = open().await;
    let mut devices = Vec::new();
    for sn in ["C1", "C2", "C3"] {
        let new = NewDevice { approval: Some(adms_store::Approval::Approved), sn, ..Default::default() };
        devices.push(store.register_device(&new).await.unwrap().id);
    }
    let batches: Vec<PunchBatch> = (0..101)
        .map(|i| {
            let mut batch = PunchBatch::new(devices[i % 3]);
            batch.punches.push(punch(&i.to_string(), "2026-01-01 09:00:00"));
            batch
        })
        .collect();
    let path = dir.path().join("nested/test.db");
    let (inserted, again, nowhere) = tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        let group: Vec<&PunchBatch> = batches.iter().collect();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let inserted = adms_store::insert_new_punches(&conn, &group).unwrap();
        conn.execute_batch("COMMIT").unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let again = adms_store::insert_new_punches(&conn, &group).is_err();
        conn.execute_batch("ROLLBACK").unwrap();
        let mut elsewhere = PunchBatch::new(i64::MAX);
        elsewhere.punches.push(punch("X", "2026-01-01 10:00:00"));
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let nowhere = adms_store::insert_new_punches(&conn, &[&batches[0], &elsewhere]).unwrap();
        conn.execute_batch("ROLLBACK").unwrap();
        (inserted, again, nowhere)
    })
    .await
    .unwrap();
    assert_eq!(inserted, Some(101));
    assert!(again, "a group of stored punches must fail the natural key");
    assert_eq!(nowhere, None);

    let (_, rows) =
        store.list_transactions(&TransactionFilter::default(), Page { offset: 0, limit: 200 }).await.unwrap();
    assert_eq!(rows.len(), 101);
    let mut by_id: Vec<_> = rows.iter().map(|r| (r.id, r.emp_code.parse::<usize>().unwrap(), r.seq)).collect();
    by_id.sort_unstable();
    let uploaded: Vec<usize> = by_id.iter().map(|(_, pin, _)| *pin).collect();
    assert_eq!(uploaded, (0..101).collect::<Vec<_>>(), "ids follow the upload order");
    for (_, pin, seq) in &by_id {
        assert_eq!(*seq, (pin / 3 + 1) as i64, "punch {pin} is its device's {}th", pin / 3 + 1);
    }
    for (place, sn) in ["C1", "C2", "C3"].into_iter().enumerate() {
        let expected = (0..101).filter(|i| i % 3 == place).count() as i64;
        assert_eq!(store.device_by_sn(sn).await.unwrap().unwrap().last_seq, expected);
    }
}

async fn old_quota_usage_is_purged_and_todays_still_counts(engine: crate::common::Engine) {
    use adms_store::{Quota, QuotaKind, RawUpload, StoreError};
    let store = crate::common::fresh(engine).await;
    let device = store
        .register_device(&NewDevice {
            sn: "QUOTA001",
            approval: Some(adms_store::Approval::Approved),
            ..Default::default()
        })
        .await
        .unwrap();
    let upload = |day: i64, body: &'static [u8]| RawUpload {
        device_id: Some(device.id),
        sn: "QUOTA001",
        endpoint: "cdata",
        table: "ZZUNKNOWN",
        query: "SN=QUOTA001&table=ZZUNKNOWN",
        body,
        received_at: adms_store::now_micros(),
        quota: Some(Quota { day, limit_bytes: 10 }),
    };
    let today = 20_000;
    store.store_raw_upload(&upload(today - 10, b"0123456789")).await.unwrap();
    store.store_raw_upload(&upload(today, b"01234567")).await.unwrap();
    assert_eq!(store.purge_quota_usage(today - 1).await.unwrap(), 1, "the old day's row");
    assert_eq!(store.purge_quota_usage(today - 1).await.unwrap(), 0);
    // Today's row stays: it still refuses what would pass the day's limit.
    let refused = store.store_raw_upload(&upload(today, b"abc")).await;
    assert!(matches!(refused, Err(StoreError::QuotaExceeded(QuotaKind::Raw))), "{refused:?}");
}

/// Terminals report a new ATTLOG stamp with most uploads: it is recorded with the punches
/// (the device's last one in a group wins), on the writer's cheap path as on its general one.
async fn reported_stamps_are_recorded_with_the_punches(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let approved = |sn| NewDevice { approval: Some(adms_store::Approval::Approved), sn, ..Default::default() };
    let a = store.register_device(&approved("S1")).await.unwrap();
    let b = store.register_device(&approved("S2")).await.unwrap();
    // Each device uploads twice, waiting for its OK in between, beside the other device.
    let mut tasks = Vec::new();
    for (d, device) in [a.id, b.id].into_iter().enumerate() {
        let store = store.store().clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..2 {
                let mut batch = PunchBatch::new(device);
                batch.punches.push(punch("9", &format!("2026-02-01 10:00:0{i}")));
                batch.attlog_stamp = Some(format!("{}", 500 + 2 * i + d));
                store.punch_writer().write(batch).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stamp = |sn| {
        let store = store.store().clone();
        async move { store.device_by_sn(sn).await.unwrap().unwrap().attlog_stamp }
    };
    assert_eq!((stamp("S1").await, stamp("S2").await), ("502".to_owned(), "503".to_owned()));
    // A re-sent punch with a newer stamp takes the general path; the stamp still moves.
    let mut again = PunchBatch::new(a.id);
    again.punches.push(punch("9", "2026-02-01 10:00:00"));
    again.attlog_stamp = Some("600".into());
    store.punch_writer().write(again).await.unwrap();
    assert_eq!(stamp("S1").await, "600");
    assert_eq!(store.device_by_sn("S1").await.unwrap().unwrap().last_seq, 2, "nothing new stored");
}

crate::on_both_engines!(
    reported_stamps_are_recorded_with_the_punches,
    concurrent_batches_dedupe_and_get_gapless_seq,
    plain_groups_number_punches_in_upload_order_and_re_sends_fall_back_without_gaps,
    devices_that_wait_for_their_ok_all_land_while_some_stop_sending,
    filters_and_pending_devices,
    a_failing_batch_fails_alone_and_leaves_the_writer_usable,
    old_quota_usage_is_purged_and_todays_still_counts,
    statistics_of_a_table_that_doubled_are_refreshed_once,
    an_activity_flush_writes_every_device_in_one_go,
    a_reported_address_outlives_the_address_requests_come_from,
    an_options_dump_is_stored_in_one_go_and_a_key_named_twice_keeps_its_last_value,
);

/// An options dump (every terminal sends one at first contact) is one statement: a key named
/// twice in it keeps its last value (PostgreSQL refuses to update one row twice in a
/// statement), and a later dump changes what it names and leaves the rest.
async fn an_options_dump_is_stored_in_one_go_and_a_key_named_twice_keeps_its_last_value(engine: crate::common::Engine) {
    use adms_store::DeviceFacts;
    let store = crate::common::fresh(engine).await;
    let device = crate::common::approved_device(&store, "OPT1").await;
    let facts = |pairs: &[(&str, &str)]| DeviceFacts {
        options: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..DeviceFacts::default()
    };
    let first =
        facts(&[("UserCount", "3"), ("~DeviceName", "SpeedFace"), ("UserCount", "4"), ("IPAddress", "10.0.0.2")]);
    store.store_device_facts(device, None, &first).await.unwrap();
    let stored = store.device_options(device).await.unwrap();
    let expected =
        |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>();
    assert_eq!(stored, expected(&[("IPAddress", "10.0.0.2"), ("UserCount", "4"), ("~DeviceName", "SpeedFace")]));
    store.store_device_facts(device, None, &facts(&[("UserCount", "5")])).await.unwrap();
    let stored = store.device_options(device).await.unwrap();
    assert_eq!(stored, expected(&[("IPAddress", "10.0.0.2"), ("UserCount", "5"), ("~DeviceName", "SpeedFace")]));
}

/// The periodic activity flush (polls are kept in memory): one batch for many devices, a device
/// named twice keeping its latest request, a time never moving back, an empty address leaving
/// the known one, and a deleted terminal that polled shown again.
async fn an_activity_flush_writes_every_device_in_one_go(engine: crate::common::Engine) {
    use adms_store::{DeviceActivity, TerminalFilter};
    let store = crate::common::fresh(engine).await;
    let mut ids = Vec::new();
    for i in 0..500 {
        ids.push(crate::common::approved_device(&store, &format!("ACT{i:04}")).await);
    }
    store.delete_terminal(ids[2], 1).await.unwrap();
    // Times after the registrations' own (first contact sets the last activity).
    let t = |secs: i64| adms_store::now_micros() / 1_000_000 * 1_000_000 + 3_600_000_000 + secs * 1_000_000;
    let (t1, t2, t25, t3, t4) = (t(1), t(2), t(2) + 500_000, t(3), t(4));
    let seen = |id: i64, at: i64, ip: &str| DeviceActivity { device_id: id, at_micros: at, ip_address: ip.into() };
    let mut batch: Vec<DeviceActivity> = ids.iter().map(|&id| seen(id, t2, "10.0.0.1")).collect();
    batch.push(seen(ids[0], t3, "10.0.0.9"));
    batch.push(seen(ids[0], t25, "10.0.0.8"));
    store.record_activity(&batch).await.unwrap();
    // Later: an older time for device 1 (a flush that lost a race), no address for device 3.
    store.record_activity(&[seen(ids[1], t1, "10.0.0.2"), seen(ids[3], t4, "")]).await.unwrap();

    let page = adms_store::Page { offset: 0, limit: 1000 };
    let (count, rows) = store.list_terminals(&TerminalFilter::default(), page).await.unwrap();
    assert_eq!(count, 500, "the deleted terminal that polled is listed again");
    let row = |id: i64| rows.iter().find(|r| r.id == id).unwrap();
    assert_eq!((row(ids[0]).last_activity_at, row(ids[0]).ip_address.as_str()), (Some(t3), "10.0.0.9"));
    assert_eq!((row(ids[1]).last_activity_at, row(ids[1]).ip_address.as_str()), (Some(t2), "10.0.0.2"));
    assert_eq!((row(ids[3]).last_activity_at, row(ids[3]).ip_address.as_str()), (Some(t4), "10.0.0.1"));
    assert!(rows.iter().all(|r| r.last_activity_at >= Some(t2)), "every device of the batch written");
}

/// The address a device reports for itself (options dump, `INFO=`) is the one kept: the
/// address its requests come from (a NAT gateway's, say) stands in only until it reports one,
/// and neither the periodic activity flush nor a later handshake writes over it. An empty report
/// is no report.
async fn a_reported_address_outlives_the_address_requests_come_from(engine: crate::common::Engine) {
    use adms_store::{DeviceActivity, DeviceInfoUpdate, HandshakeUpdate, TerminalFilter};
    let store = crate::common::fresh(engine).await;
    let (reporting, silent) =
        (crate::common::approved_device(&store, "ADDR1").await, crate::common::approved_device(&store, "ADDR2").await);
    let address = async |id: i64| {
        let page = adms_store::Page { offset: 0, limit: 10 };
        let (_, rows) = store.list_terminals(&TerminalFilter::default(), page).await.unwrap();
        rows.into_iter().find(|r| r.id == id).unwrap().ip_address
    };
    let flush = async |ip: &str| {
        let at = adms_store::now_micros() + 3_600_000_000;
        let seen = |device_id: i64| DeviceActivity { device_id, at_micros: at, ip_address: ip.into() };
        store.record_activity(&[seen(reporting), seen(silent)]).await.unwrap();
    };
    let report = |ip: &str| DeviceInfoUpdate { ip_address: Some(ip.into()), ..DeviceInfoUpdate::default() };

    flush("203.0.113.7").await;
    store.update_device_info(reporting, &report("")).await.unwrap();
    flush("203.0.113.8").await;
    assert_eq!(address(reporting).await, "203.0.113.8", "before a report the request's address is shown");
    store.update_device_info(reporting, &report("192.168.1.210")).await.unwrap();
    flush("203.0.113.9").await;
    let handshake =
        HandshakeUpdate { protocol_family: "att", ip_address: "203.0.113.10", ..HandshakeUpdate::default() };
    store.record_handshake(reporting, &handshake).await.unwrap();
    store.record_handshake(silent, &handshake).await.unwrap();
    assert_eq!(address(reporting).await, "192.168.1.210");
    assert_eq!(address(silent).await, "203.0.113.10", "a device that never reported follows its requests");
    store.update_device_info(reporting, &report("192.168.1.211")).await.unwrap();
    assert_eq!(address(reporting).await, "192.168.1.211", "a new report moves it");
}

/// A young `punches` table that grew past what the planner believes gets its statistics
/// refreshed (PostgreSQL), once: right after, the planner's size is current. SQLite has none
/// to refresh.
async fn statistics_of_a_table_that_doubled_are_refreshed_once(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let device_id = crate::common::approved_device(&store, "STATS1").await;
    for chunk in 0..3 {
        let mut batch = PunchBatch::new(device_id);
        for i in 0..500 {
            batch.punches.push(punch(&format!("{i}"), &format!("2026-02-0{} 08:00:00", chunk + 1)));
        }
        store.punch_writer().write(batch).await.unwrap();
    }
    if engine == crate::common::Engine::Sqlite {
        assert_eq!(store.refresh_statistics().await.unwrap(), Vec::<&str>::new());
        return;
    }
    // The statistics system learns of the inserts when the writer's backend reports them
    // (within about a second of its commit): wait for it, with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let refreshed = store.refresh_statistics().await.unwrap();
        if refreshed.contains(&"punches") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "punches was never found grown: {refreshed:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        !store.refresh_statistics().await.unwrap().contains(&"punches"),
        "after its ANALYZE the planner knows the table's size"
    );
    // The device row was analyzed at the first refresh at the latest (never analyzed, not
    // empty), and is not again while it stays under the growth rule's floor.
    assert!(!store.refresh_statistics().await.unwrap().contains(&"devices"));
}
