//! The operator console's sessions, figures and device pages, on both engines.

use adms_store::{
    Approval, DeviceListFilter, DeviceState, NewDevice, NewPunch, PunchBatch, RejectedLine, UserChange, now_micros,
};

const HOUR: i64 = 3_600_000_000;

fn punch(pin: &str, minute: u32) -> NewPunch {
    let time = format!("2026-03-01 08:{minute:02}:00");
    NewPunch {
        pin: pin.into(),
        local_time: time.clone(),
        state: "0".into(),
        verify: 1,
        work_code: "0".into(),
        extra: String::new(),
        time_zone: Some("UTC".into()),
        utc_time: None,
        mask_flag: None,
        temperature: None,
        raw_line: format!("{pin}\t{time}\t0\t1\t0"),
    }
}

async fn sessions_end_with_logout_expiry_password_change_and_disable(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let admin = store.upsert_user("admin", "hash-1").await.unwrap();
    let olga = store.create_user("olga", "hash-o", "viewer").await.unwrap().expect("created").id;
    let now = now_micros();
    store.create_console_session(admin, b"s-admin", now, now + HOUR).await.unwrap();
    store.create_console_session(admin, b"s-short", now, now + 10).await.unwrap();
    store.create_console_session(olga, b"s-olga", now, now + HOUR).await.unwrap();

    let live = store.live_console_session(b"s-admin", now).await.unwrap().expect("live");
    assert_eq!((live.username.as_str(), live.role.as_str(), live.user_id), ("admin", "admin", admin));
    assert!(store.live_console_session(b"s-short", now + 10).await.unwrap().is_none(), "expired");
    assert!(store.live_console_session(b"unknown", now).await.unwrap().is_none());
    // A console session is no API token, and an API token no console session.
    assert!(store.live_token(b"s-admin", now).await.unwrap().is_none());
    store
        .create_token(adms_store::TokenKind::Session, Some(admin), "login", b"api-token", Some(now + HOUR))
        .await
        .unwrap();
    assert!(store.live_console_session(b"api-token", now).await.unwrap().is_none());

    assert!(store.end_console_session(b"s-admin", now).await.unwrap());
    assert!(!store.end_console_session(b"s-admin", now).await.unwrap(), "ended once");
    assert!(store.live_console_session(b"s-admin", now).await.unwrap().is_none());

    // A new password ends the account's sessions; so does a disable.
    store.create_console_session(admin, b"s-admin-2", now, now + HOUR).await.unwrap();
    store.upsert_user("admin", "hash-2").await.unwrap();
    assert!(store.live_console_session(b"s-admin-2", now).await.unwrap().is_none());
    assert!(store.live_console_session(b"s-olga", now).await.unwrap().is_some());
    store.update_user(olga, &UserChange { disabled: Some(true), ..UserChange::default() }).await.unwrap();
    assert!(store.live_console_session(b"s-olga", now).await.unwrap().is_none());
    // A disabled account gets no new session either.
    assert!(store.create_console_session(olga, b"s-olga-2", now, now + HOUR).await.is_err());

    assert!(store.purge_console_sessions(now + 11).await.unwrap() >= 2, "the ended and expired ones");
}

async fn overview_figures_count_devices_punches_and_rejected_lines(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let a = crate::common::approved_device(&store, "A1").await;
    crate::common::approved_device(&store, "A2").await;
    store.register_device(&NewDevice { sn: "P1", ..NewDevice::default() }).await.unwrap();
    let counts = store.fleet_counts().await.unwrap();
    // A device is online from its first request.
    assert_eq!((counts.online, counts.offline, counts.pending), (2, 0, 1));

    let now = now_micros();
    let hour_start = now - now.rem_euclid(HOUR);
    // Three punches two hours ago, two now, one rejected line now.
    let mut old = PunchBatch::new(a);
    old.received_at = hour_start - 2 * HOUR;
    old.punches = vec![punch("1", 1), punch("2", 1), punch("3", 1)];
    store.punch_writer().write(old).await.unwrap();
    let mut recent = PunchBatch::new(a);
    recent.received_at = now;
    recent.punches = vec![punch("1", 2), punch("2", 2)];
    recent.rejected =
        vec![RejectedLine { table: "ATTLOG", line_no: 3, raw: b"<b>bad</b>".to_vec(), reason: "bad_time" }];
    store.punch_writer().write(recent).await.unwrap();

    assert_eq!(store.punches_received_since(now - HOUR).await.unwrap(), 2);
    assert_eq!(store.punches_received_since(hour_start - 3 * HOUR).await.unwrap(), 5);
    let per_hour = store.punches_per_hour(hour_start - 23 * HOUR).await.unwrap();
    let this_hour = hour_start / HOUR;
    assert_eq!(per_hour, vec![(this_hour - 2, 3), (this_hour, 2)]);
    assert_eq!(store.rejected_lines_since(now - HOUR).await.unwrap(), 1);
    assert_eq!(store.rejected_lines_since(now + HOUR).await.unwrap(), 0);

    // The rejected lines, keyset-paged newest first, their raw bytes opened.
    let mut more = PunchBatch::new(a);
    more.received_at = now;
    more.rejected = (0..3)
        .map(|i| RejectedLine { table: "ATTLOG", line_no: i, raw: format!("bad {i}").into_bytes(), reason: "bad_time" })
        .collect();
    store.punch_writer().write(more).await.unwrap();
    let first = store.rejected_lines_page(Some("A1"), None, 3).await.unwrap();
    let raws: Vec<_> = first.iter().map(|r| String::from_utf8_lossy(&r.raw).into_owned()).collect();
    assert_eq!(raws, ["bad 2", "bad 1", "bad 0"]);
    let rest = store.rejected_lines_page(None, Some(first[2].id), 3).await.unwrap();
    assert_eq!(rest.iter().map(|r| r.raw.as_slice()).collect::<Vec<_>>(), [b"<b>bad</b>".as_slice()]);
    assert!(store.rejected_lines_page(Some("A2"), None, 3).await.unwrap().is_empty());
}

async fn the_device_list_filters_and_pages_by_keyset(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(crate::common::approved_device(&store, &format!("CKJF{i}")).await);
    }
    store.register_device(&NewDevice { sn: "ZZ_PENDING", ..NewDevice::default() }).await.unwrap();
    store.configure_device("CKJF3", Some("Front 100%"), None, None).await.unwrap();
    let mut punches = PunchBatch::new(ids[1]);
    punches.received_at = now_micros();
    // The device's clock ten minutes ahead of the server's.
    let mut ahead = punch("7", 1);
    ahead.utc_time = Some(punches.received_at / 1_000_000 + 600);
    punches.punches = vec![ahead];
    store.punch_writer().write(punches).await.unwrap();

    let filter = DeviceListFilter { limit: 2, today_since: now_micros() - HOUR, ..DeviceListFilter::default() };
    let list = async |f: DeviceListFilter| store.console_devices(&f).await.unwrap();
    let sns = async |f: DeviceListFilter| list(f).await.into_iter().map(|d| d.sn).collect::<Vec<_>>();
    let first = list(filter.clone()).await;
    assert_eq!(first.iter().map(|d| d.sn.as_str()).collect::<Vec<_>>(), ["CKJF0", "CKJF1"]);
    assert_eq!(first[1].punches_today, 1);
    assert_eq!((first[0].clock_skew_secs, first[1].clock_skew_secs), (None, Some(600)), "from the newest punch");
    assert_eq!((first[0].area_id, first[0].approval), (1, Approval::Approved));
    assert_eq!(sns(DeviceListFilter { after_id: Some(first[1].id), ..filter.clone() }).await, ["CKJF2", "CKJF3"]);

    assert_eq!(sns(DeviceListFilter { state: Some(DeviceState::Pending), ..filter.clone() }).await, ["ZZ_PENDING"]);
    let online = DeviceListFilter { state: Some(DeviceState::Online), limit: 10, ..filter.clone() };
    assert_eq!(sns(online).await.len(), 5, "approved devices are online from their first request");
    assert!(sns(DeviceListFilter { state: Some(DeviceState::Offline), ..filter.clone() }).await.is_empty());
    // Search: SN or alias, any case; `%` matches only itself.
    let search = |text: &str| DeviceListFilter { search: Some(text.into()), limit: 10, ..filter.clone() };
    assert_eq!(sns(search("front 100%")).await, ["CKJF3"]);
    assert_eq!(sns(search("ckjf")).await.len(), 5);
    assert_eq!(sns(search("%")).await, ["CKJF3"]);
    let in_area = DeviceListFilter { area_id: Some(1), limit: 10, ..filter.clone() };
    assert_eq!(sns(in_area).await.len(), 6, "every device is in area 1 until assigned");
    assert!(sns(DeviceListFilter { area_id: Some(99), ..filter.clone() }).await.is_empty());

    let one = store.console_device("CKJF1", now_micros() - HOUR).await.unwrap().expect("found");
    assert_eq!((one.id, one.punches_today), (ids[1], 1));
    assert!(store.console_device("NOPE", 0).await.unwrap().is_none());
    let recent = store.recent_device_punches(ids[1], 10).await.unwrap();
    assert_eq!(recent.iter().map(|p| p.pin.as_str()).collect::<Vec<_>>(), ["7"]);
}

async fn the_terminals_holding_a_page_of_people_are_found_by_pin(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let gate = crate::common::approved_device(&store, "GATE").await;
    let door = crate::common::approved_device(&store, "DOOR").await;
    let mut face = crate::common::template("0042", 0, "face-0042");
    face.bio_type = 9;
    for (device_id, sn, templates) in [
        (
            gate,
            "GATE",
            vec![crate::common::template("0042", 6, "fp-6"), crate::common::template("0042", 7, "fp-7"), face],
        ),
        (door, "DOOR", vec![]),
    ] {
        let batch = adms_store::OperlogBatch {
            device_id,
            table: "OPERLOG",
            users: vec![crate::common::device_user("0042", "Ann"), crate::common::device_user("7", "Seven")],
            templates,
            received_at: now_micros(),
            device_sn: sn.into(),
            ..Default::default()
        };
        store.store_operlog(&batch).await.unwrap();
    }
    let held = store.terminals_holding(&["0042".to_owned(), "none".to_owned()]).await.unwrap();
    let seen: Vec<_> =
        held.iter().map(|h| (h.pin.as_str(), h.sn.as_str(), h.name.as_str(), h.fingerprints, h.faces)).collect();
    assert_eq!(seen, [("0042", "DOOR", "Ann", 0, 0), ("0042", "GATE", "Ann", 2, 1)]);
    assert!(store.terminals_holding(&[]).await.unwrap().is_empty());
}

crate::on_both_engines!(
    the_terminals_holding_a_page_of_people_are_found_by_pin,
    sessions_end_with_logout_expiry_password_change_and_disable,
    overview_figures_count_devices_punches_and_rejected_lines,
    the_device_list_filters_and_pages_by_keyset,
    the_punch_follower_hands_out_late_commits_once_and_filters,
);

/// Inserts a punch row with a chosen id on a connection of its own (as a writer whose id was
/// taken earlier would commit it); the id's position is what the follower cares about.
async fn insert_punch_with_id(url: &str, engine: crate::common::Engine, id: i64, device_id: i64, pin: &str) {
    use sqlx::Connection as _;
    const INSERT: &str = "INSERT INTO punches (id, device_id, seq, pin, local_time, state, verify, work_code, extra, raw_line, received_at) \
         VALUES ($1, $2, $1 + 1000000, $3, '2026-03-01 09:00:00', '0', 1, '0', '', 'raw', $4)";
    match engine {
        crate::common::Engine::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query(INSERT).bind(id).bind(device_id).bind(pin).bind(now_micros()).execute(&mut conn).await.unwrap();
        }
        crate::common::Engine::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(INSERT).bind(id).bind(device_id).bind(pin).bind(now_micros()).execute(&mut conn).await.unwrap();
            // The writer's next id past the chosen ones (SQLite's AUTOINCREMENT follows by itself).
            sqlx::query("SELECT setval(pg_get_serial_sequence('punches', 'id'), (SELECT MAX(id) FROM punches))")
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

async fn the_punch_follower_hands_out_late_commits_once_and_filters(engine: crate::common::Engine) {
    use adms_store::{LiveFilter, PunchFollower};
    use std::time::{Duration, Instant};
    let store = crate::common::fresh(engine).await;
    let a = crate::common::approved_device(&store, "LIVE_A").await;
    let b = crate::common::approved_device(&store, "LIVE_B").await;
    let mut before = PunchBatch::new(a);
    before.punches = vec![punch("1", 1)];
    store.punch_writer().write(before).await.unwrap();
    let start = Instant::now();
    let mut all = PunchFollower::from_now(&store, LiveFilter::default()).await.unwrap();
    let only_b = LiveFilter { device_sn: Some("LIVE_B".into()), pin: None };
    let mut of_b = PunchFollower::from_now(&store, only_b).await.unwrap();
    let mut of_pin =
        PunchFollower::from_now(&store, LiveFilter { device_sn: None, pin: Some("9".into()) }).await.unwrap();
    assert!(all.next_batch(&store, start).await.unwrap().punches.is_empty(), "what was stored before is not new");

    // Ids taken in one order and committed in another: id n+2 is visible before n+1.
    let base = all.after_id();
    insert_punch_with_id(store.url(), engine, base + 2, b, "9").await;
    let batch = all.next_batch(&store, start).await.unwrap();
    assert_eq!(batch.punches.iter().map(|p| p.id).collect::<Vec<_>>(), [base + 2]);
    assert_eq!((batch.after_id, all.holes()), (base + 2, 1), "the missing id is waited for");
    assert_eq!(batch.punches[0].sn, "LIVE_B");
    insert_punch_with_id(store.url(), engine, base + 1, a, "7").await;
    let late = all.next_batch(&store, start + Duration::from_secs(1)).await.unwrap();
    assert_eq!(late.punches.iter().map(|p| p.id).collect::<Vec<_>>(), [base + 1], "the late commit, once");
    assert_eq!(all.holes(), 0);
    assert!(all.next_batch(&store, start).await.unwrap().punches.is_empty(), "nothing twice");

    // The filters: device B's and PIN 9's punches only, the late one included.
    let b_ids: Vec<_> = of_b.next_batch(&store, start).await.unwrap().punches.iter().map(|p| p.id).collect();
    assert_eq!(b_ids, [base + 2]);
    let pin_ids: Vec<_> =
        of_pin.next_batch(&store, start).await.unwrap().punches.iter().map(|p| p.pin.clone()).collect();
    assert_eq!(pin_ids, ["9"]);

    // A hole that never fills is given up after the window, and costs nothing after.
    insert_punch_with_id(store.url(), engine, base + 5, a, "1").await;
    assert_eq!(all.next_batch(&store, start).await.unwrap().punches.len(), 1);
    assert_eq!(all.holes(), 2);
    all.next_batch(&store, start + adms_store::live_punches::LATE_COMMIT_WINDOW + Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(all.holes(), 0);

    // The writer's own punches come through with the roster's or the device's name.
    let mut users = PunchBatch::new(a);
    users.punches = vec![punch("1", 3)];
    store.punch_writer().write(users).await.unwrap();
    let written = all.next_batch(&store, start).await.unwrap();
    assert_eq!(written.punches.len(), 1);
    assert_eq!((written.punches[0].pin.as_str(), written.punches[0].sn.as_str()), ("1", "LIVE_A"));
}

/// The case the follower exists for, with real transactions: on PostgreSQL a punch's id is
/// taken at insert, and a transaction holding an earlier id commits after a later one did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_punch_follower_waits_for_an_earlier_id_committed_late_on_postgres() {
    use sqlx::Connection as _;
    let store = crate::common::fresh(crate::common::Engine::Postgres).await;
    let writer_device = crate::common::approved_device(&store, "EARLY_W").await;
    let late_device = crate::common::approved_device(&store, "LATE_L").await;
    let mut follower = adms_store::PunchFollower::from_now(&store, adms_store::LiveFilter::default()).await.unwrap();
    let now = std::time::Instant::now();

    // A transaction takes its id and stays open...
    let mut late = sqlx::PgConnection::connect(store.url()).await.unwrap();
    let mut open = late.begin().await.unwrap();
    let late_id: i64 = sqlx::query_scalar(
        "INSERT INTO punches (device_id, seq, pin, local_time, state, verify, work_code, extra, raw_line, received_at) \
         VALUES ($1, 1, '5', '2026-03-01 09:00:00', '0', 1, '0', '', 'raw', $2) RETURNING id",
    )
    .bind(late_device)
    .bind(now_micros())
    .fetch_one(&mut *open)
    .await
    .unwrap();
    // ...while the punch writer commits a later one.
    let mut batch = PunchBatch::new(writer_device);
    batch.punches = vec![punch("6", 1)];
    store.punch_writer().write(batch).await.unwrap();
    let first = follower.next_batch(&store, now).await.unwrap();
    let ids: Vec<i64> = first.punches.iter().map(|p| p.id).collect();
    assert_eq!(ids.len(), 1);
    assert!(ids[0] > late_id, "the later id is seen first: {ids:?} vs {late_id}");
    assert!(follower.holes() >= 1, "the earlier id is waited for");

    open.commit().await.unwrap();
    let second = follower.next_batch(&store, now).await.unwrap();
    assert_eq!(second.punches.iter().map(|p| p.id).collect::<Vec<_>>(), [late_id], "handed out once it committed");
    assert_eq!(second.punches[0].sn, "LATE_L");
    assert!(follower.next_batch(&store, now).await.unwrap().punches.is_empty(), "and only once");
}
