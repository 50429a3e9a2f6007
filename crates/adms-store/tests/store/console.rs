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
    punches.day_started_at = punches.received_at;
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
    assert_eq!(one.newest_punch_local_time.as_deref(), Some("2026-03-01 08:01:00"));
    let recent = store.recent_device_punches(ids[1], ("2026-02-28 08:01:00", "2026-03-01 08:01:00"), 10).await.unwrap();
    assert_eq!(recent.iter().map(|p| p.pin.as_str()).collect::<Vec<_>>(), ["7"]);
}

const DAY: i64 = 24 * HOUR;

/// The figures the punch writer keeps in the device row (migration 0021) say what reading
/// `punches` would: punches today restart with each day and ignore re-sent punches, the skew
/// and time are the newest punch's by `seq`, and recent punches are read within a time window.
async fn the_device_row_keeps_punches_today_and_the_newest_punch(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let device = crate::common::approved_device(&store, "DAYS").await;
    let day1 = now_micros() - now_micros().rem_euclid(DAY) - 2 * DAY;
    let day2 = day1 + DAY;
    let write = async |day: i64, received_at: i64, punches: Vec<NewPunch>| {
        let mut batch = PunchBatch::new(device);
        (batch.day_started_at, batch.received_at, batch.punches) = (day, received_at, punches);
        store.punch_writer().write(batch).await.unwrap();
    };
    let figures = async |today: i64| {
        let d = store.console_device("DAYS", today).await.unwrap().expect("listed");
        (d.punches_today, d.clock_skew_secs, d.newest_punch_local_time)
    };
    let with_skew = |mut p: NewPunch, received_at: i64, skew: i64| {
        p.utc_time = Some(received_at / 1_000_000 + skew);
        p
    };
    assert_eq!(figures(day1).await, (0, None, None), "no punch yet");

    // Day 1: three punches in two uploads, the second re-sending one of the first.
    write(day1, day1 + HOUR, vec![punch("1", 1), punch("2", 2)]).await;
    let received = day1 + 2 * HOUR;
    write(day1, received, vec![punch("2", 2), with_skew(punch("3", 3), received, -45)]).await;
    assert_eq!(figures(day1).await, (3, Some(-45), Some("2026-03-01 08:03:00".to_owned())));

    // Day 2 counts from zero; a punch of an earlier time uploaded later is the newest by seq.
    assert_eq!(figures(day2).await.0, 0, "nothing received on day 2 yet");
    let received = day2 + HOUR;
    write(day2, received, vec![with_skew(punch("4", 0), received, 30)]).await;
    assert_eq!(figures(day2).await, (1, Some(30), Some("2026-03-01 08:00:00".to_owned())));
    // A re-sent punch adds nothing, on a day it starts either.
    write(day2, day2 + 2 * HOUR, vec![punch("1", 1)]).await;
    assert_eq!(figures(day2).await.0, 1);
    write(day2 + DAY, day2 + DAY + HOUR, vec![punch("1", 1)]).await;
    assert_eq!(figures(day2 + DAY).await.0, 0);
    // Yesterday's figure is no longer today's once the day has moved on.
    assert_eq!(figures(day2 + DAY).await.1, Some(30), "the newest punch is still the same");

    let pins = async |from: &str, to: &str| {
        let recent = store.recent_device_punches(device, (from, to), 10).await.unwrap();
        recent.into_iter().map(|p| p.pin).collect::<Vec<_>>()
    };
    assert_eq!(pins("2026-02-28 08:00:00", "2026-03-01 08:00:00").await, ["4"]);
    assert_eq!(pins("2026-02-28 08:00:00", "2026-03-01 08:03:00").await, ["4", "3", "2", "1"], "by seq, newest first");
    assert_eq!(pins("2026-03-01 08:02:00", "2026-03-01 08:03:00").await, ["3", "2"]);
}

/// A database written before 0021 gets each device's newest-punch figures from its punches.
async fn the_newest_punch_figures_are_backfilled_by_the_migration(engine: crate::common::Engine) {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let (folder, url, _database) = match engine {
        crate::common::Engine::Sqlite => ("sqlite", format!("sqlite://{}", dir.path().join("old.db").display()), None),
        crate::common::Engine::Postgres => {
            let database = adms_store::testing::FreshDatabase::create().await;
            ("postgres", database.url().to_owned(), Some(database))
        }
    };
    // The schema before this release's 0021: every migration before it.
    let old = dir.path().join("migrations");
    std::fs::create_dir(&old).unwrap();
    let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations").join(folder);
    for entry in std::fs::read_dir(&top).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.as_str() < "0021" {
            std::fs::copy(entry.path(), old.join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(old.as_path()).await.unwrap();
    const DEVICE: &str = "INSERT INTO devices (sn, first_seen_at, last_seq) VALUES ($1, 1, $2)";
    const PUNCH: &str = "INSERT INTO punches (device_id, seq, pin, local_time, state, verify, work_code, extra, \
                         utc_time, raw_line, received_at) VALUES ($1, $2, $3, $4, '0', 1, '0', '', $5, '', $6)";
    let received = 1_772_352_000_000_000_i64; // 2026-03-01 08:00:00 UTC
    // OLD1: two punches, the newer (by seq) 7 s ahead; OLD2: none.
    macro_rules! old_database {
        ($conn:expr) => {{
            let mut conn = $conn;
            migrator.run(&mut conn).await.unwrap();
            for (sn, last_seq) in [("OLD1", 2), ("OLD2", 0)] {
                sqlx::query(DEVICE).bind(sn).bind(last_seq).execute(&mut conn).await.unwrap();
            }
            for (seq, pin, time, skew) in [(1, "1", "2026-03-01 07:58:20", -100), (2, "2", "2026-03-01 08:00:07", 7)] {
                sqlx::query(PUNCH)
                    .bind(1_i64)
                    .bind(seq as i64)
                    .bind(pin)
                    .bind(time)
                    .bind(received / 1_000_000 + skew)
                    .bind(received)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            conn.close().await.unwrap();
        }};
    }
    match engine {
        crate::common::Engine::Sqlite => {
            let options =
                sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("old.db")).create_if_missing(true);
            old_database!(sqlx::SqliteConnection::connect_with(&options).await.unwrap());
        }
        crate::common::Engine::Postgres => old_database!(sqlx::PgConnection::connect(&url).await.unwrap()),
    }

    let store = adms_store::Store::open(&url, adms_store::StoreOptions::default()).await.expect("migrates to 0021");
    let old1 = store.console_device("OLD1", 0).await.unwrap().expect("listed");
    assert_eq!((old1.clock_skew_secs, old1.newest_punch_local_time.as_deref()), (Some(7), Some("2026-03-01 08:00:07")));
    assert_eq!(old1.punches_today, 0, "the day mark starts with the next punch");
    let old2 = store.console_device("OLD2", 0).await.unwrap().expect("listed");
    assert_eq!((old2.clock_skew_secs, old2.newest_punch_local_time), (None, None));
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
    the_device_row_keeps_punches_today_and_the_newest_punch,
    the_newest_punch_figures_are_backfilled_by_the_migration,
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
