//! The CVSecurity-compatible API's store side (issue 19): API clients stored by digest with
//! unique live names and revocation, access controllers as devices, and stored `rtlog` events
//! read back as transactions (card numbers opened, names joined, filters and paging).

use adms_store::cvsecurity::AccessEventFilter;
use adms_store::roster::EmployeeFields;
use adms_store::{AccessEvent, Approval, DeviceFacts, ErrorKind, NewDevice, Store, now_micros, sha256};

use crate::common::{Engine, fresh};

crate::on_both_engines!(
    clients_are_stored_by_digest_named_once_and_revoked,
    access_events_read_back_as_transactions_with_names_filters_and_pages,
    a_monitor_session_hands_out_each_event_once_in_batches_shared_by_the_controllers,
    a_controller_keeps_its_newest_door_state,
    an_rtstate_body_and_its_door_state_commit_together,
);

async fn clients_are_stored_by_digest_named_once_and_revoked(engine: Engine) {
    let store = fresh(engine).await;
    let id = store.create_cvsecurity_client("visitors", &sha256(b"secret-1"), true).await.unwrap();
    let taken = store.create_cvsecurity_client("visitors", &sha256(b"secret-2"), false).await.unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::Conflict);
    let reader = store.create_cvsecurity_client("siem", &sha256(b"secret-3"), false).await.unwrap();

    let live = store.live_cvsecurity_client(&sha256(b"secret-1")).await.unwrap().expect("live");
    assert_eq!((live.id, live.name.as_str(), live.may_write, live.last_used_at), (id, "visitors", true, None));
    assert!(!store.live_cvsecurity_client(&sha256(b"secret-3")).await.unwrap().unwrap().may_write);
    assert!(store.live_cvsecurity_client(&sha256(b"unknown")).await.unwrap().is_none());
    // An integration key's digest is no client (and a client's token is no integration key).
    assert!(store.live_token(&sha256(b"secret-1"), now_micros()).await.unwrap().is_none());

    let now = now_micros();
    store.touch_cvsecurity_client(id, None, now).await.unwrap();
    let live = store.live_cvsecurity_client(&sha256(b"secret-1")).await.unwrap().unwrap();
    assert_eq!(live.last_used_at, Some(now));

    assert_eq!(store.revoke_cvsecurity_client("visitors").await.unwrap(), 1);
    assert!(store.live_cvsecurity_client(&sha256(b"secret-1")).await.unwrap().is_none());
    assert_eq!(store.revoke_cvsecurity_client("visitors").await.unwrap(), 0, "already revoked");
    assert_eq!(store.revoke_cvsecurity_client(&reader.to_string()).await.unwrap(), 1, "by id");
    // A revoked client's name can be used again.
    store.create_cvsecurity_client("visitors", &sha256(b"secret-4"), true).await.unwrap();
    let all = store.list_cvsecurity_clients().await.unwrap();
    assert_eq!(all.iter().filter(|c| c.revoked_at.is_some()).count(), 2);
}

async fn controller(store: &Store, sn: &str, approval: Approval) -> i64 {
    let device =
        store.register_device(&NewDevice { sn, approval: Some(approval), ..Default::default() }).await.unwrap();
    let facts = DeviceFacts { options: vec![("LockCount".into(), "2".into())], ..DeviceFacts::default() };
    store.store_device_facts(device.id, None, &facts).await.unwrap();
    device.id
}

fn event(time: &str, pin: &str, card: &str, door: i64, code: i64) -> AccessEvent {
    AccessEvent {
        local_time: time.into(),
        pin: pin.into(),
        card_no: card.into(),
        door: Some(door),
        event_code: Some(code),
        in_out: Some(0),
        verify_type: "4".into(),
        raw_line: format!("time={time}\tpin={pin}\tcardno={card}\teventaddr={door}\tevent={code}").into_bytes(),
    }
}

async fn access_events_read_back_as_transactions_with_names_filters_and_pages(engine: Engine) {
    let store = fresh(engine).await;
    let panel = controller(&store, "ACC1", Approval::Approved).await;
    let held = controller(&store, "HELD1", Approval::Pending).await;
    let fields = EmployeeFields {
        emp_code: "7".into(),
        first_name: "Ana".into(),
        last_name: "Lima".into(),
        department_id: 1,
        verify_mode: -1,
        app_role: 1,
        ..Default::default()
    };
    store.save_employee(&fields, &[]).await.unwrap();
    let events = [
        event("2026-12-01 08:00:00", "7", "123456", 1, 0),
        event("2026-12-02 09:00:00", "0", "0", 2, 102),
        event("2026-12-03 10:00:00", "7", "123456", 1, 23),
    ];
    store.store_access_events(panel, &events, &[], now_micros()).await.unwrap();
    store.store_access_events(held, &[event("2026-12-01 08:00:00", "7", "1", 1, 0)], &[], now_micros()).await.unwrap();

    let devices = store.access_devices(None).await.unwrap();
    assert_eq!(
        devices.iter().map(|d| (d.sn.as_str(), d.approved)).collect::<Vec<_>>(),
        [("ACC1", true), ("HELD1", false)]
    );
    assert_eq!(store.access_devices(Some("HELD1")).await.unwrap().len(), 1);

    // A pending controller's events are held from the API, as its punches are.
    let (count, rows) = store.access_events_page(&AccessEventFilter::default(), 0, 10).await.unwrap();
    assert_eq!(count, 3);
    let first = &rows[0];
    assert_eq!((first.sn.as_str(), first.pin.as_str(), first.card_no.as_str()), ("ACC1", "7", "123456"));
    assert_eq!((first.door_name.as_deref(), first.first_name.as_deref()), (Some("ACC1-1"), Some("Ana")));
    assert_eq!(first.dept_code.as_deref(), Some("1"));
    assert_eq!((rows[1].event_code, rows[1].first_name.as_deref()), (Some(102), None));

    let by_pin = AccessEventFilter { pin: Some("7".into()), ..AccessEventFilter::default() };
    let (count, page) = store.access_events_page(&by_pin, 1, 1).await.unwrap();
    assert_eq!((count, page.len(), page[0].event_code), (2, 1, Some(23)));
    let window = AccessEventFilter {
        from: Some("2026-12-02 00:00:00".into()),
        until: Some("2026-12-02 23:59:59".into()),
        ..AccessEventFilter::default()
    };
    assert_eq!(store.access_events_page(&window, 0, 10).await.unwrap().0, 1);
    let by_id = AccessEventFilter { id: Some(rows[2].id), sn: Some("ACC1".into()), ..AccessEventFilter::default() };
    assert_eq!(store.access_events_page(&by_id, 0, 10).await.unwrap().1[0].event_code, Some(23));
    let other = AccessEventFilter { sn: Some("HELD1".into()), ..AccessEventFilter::default() };
    assert_eq!(store.access_events_page(&other, 0, 10).await.unwrap(), (0, Vec::new()));
    assert_eq!(store.access_events_page(&AccessEventFilter::default(), 5, 10).await.unwrap().1.len(), 0);
}

async fn a_monitor_session_hands_out_each_event_once_in_batches_shared_by_the_controllers(engine: Engine) {
    let store = fresh(engine).await;
    let panel = controller(&store, "ACC1", Approval::Approved).await;
    let client = store.create_cvsecurity_client("siem", &sha256(b"secret"), false).await.unwrap();
    let other = store.create_cvsecurity_client("psim", &sha256(b"other"), false).await.unwrap();
    const SECOND: i64 = 1_000_000;
    let t0 = 1_800_000_000 * SECOND;
    let at = |n: i64| event(&format!("2027-01-15 08:00:{n:02}"), "7", "1", 1, 0);
    // One event before the session's timestamp, three after.
    store.store_access_events(panel, &[at(0)], &[], t0 - SECOND).await.unwrap();
    store.store_access_events(panel, &[at(1), at(2), at(3)], &[], t0 + SECOND).await.unwrap();
    let started_ms = t0 / 1000;
    let polled = |rows: Vec<adms_store::cvsecurity::AccessEventRow>| -> Vec<String> {
        rows.iter().map(|r| format!("{}:{}", r.sn, &r.local_time[17..])).collect()
    };
    let poll = async |store: &Store, client: i64, started_ms: i64, now: i64, limit: i64| {
        polled(store.monitor_access_events(client, started_ms, now, limit).await.unwrap())
    };

    // In batches of two, each once.
    let now = t0 + 2 * SECOND;
    assert_eq!(poll(&store, client, started_ms, now, 2).await, ["ACC1:01", "ACC1:02"]);
    assert_eq!(poll(&store, client, started_ms, now, 2).await, ["ACC1:03"]);
    assert!(poll(&store, client, started_ms, now, 2).await.is_empty());
    store.store_access_events(panel, &[at(4)], &[], now).await.unwrap();
    let later = now + SECOND;
    assert_eq!(poll(&store, client, started_ms, later, 2).await, ["ACC1:04"]);

    // Sessions are independent: another client, or another timestamp, starts from its own.
    assert_eq!(poll(&store, other, started_ms, later, 10).await.len(), 4);
    let from_before = (t0 - 2 * SECOND) / 1000;
    assert_eq!(poll(&store, client, from_before, later, 10).await.len(), 5);
    // A second handle (another replica) continues the session where the first left it.
    let replica = store.second_process().await;
    store.store_access_events(panel, &[at(5)], &[], later).await.unwrap();
    let rows = replica.monitor_access_events(client, started_ms, later + SECOND, 10).await.unwrap();
    assert_eq!((polled(rows.clone()), rows[0].card_no.as_str()), (vec!["ACC1:05".to_owned()], "1"));
    // A session idle for a day is forgotten: polled again, it starts from its timestamp.
    let next_day = later + adms_store::cvsecurity::MONITOR_IDLE_MICROS + 10 * SECOND;
    assert_eq!(poll(&store, other, started_ms + 1, next_day, 10).await.len(), 5);
    assert_eq!(poll(&store, client, started_ms, next_day, 10).await.len(), 5);

    // A batch is shared by the controllers that have new events (one each of two here), so one
    // controller's backlog does not hold back another's alarm.
    let second = controller(&store, "ACC2", Approval::Approved).await;
    store.store_access_events(panel, &[at(6), at(7), at(8)], &[], next_day).await.unwrap();
    store.store_access_events(second, &[at(9)], &[], next_day).await.unwrap();
    assert_eq!(poll(&store, client, started_ms, next_day, 2).await, ["ACC1:06", "ACC2:09"]);
    assert_eq!(poll(&store, client, started_ms, next_day, 2).await, ["ACC1:07", "ACC1:08"]);
    // A pending controller's events wait for its approval, then come.
    let held = controller(&store, "HELD1", Approval::Pending).await;
    store.store_access_events(held, &[at(10)], &[], next_day).await.unwrap();
    assert!(poll(&store, client, started_ms, next_day, 10).await.is_empty());
    assert!(store.set_approval("HELD1", Approval::Approved).await.unwrap());
    assert_eq!(poll(&store, client, started_ms, next_day, 10).await, ["HELD1:10"]);
    assert!(poll(&store, client, started_ms, next_day, 10).await.is_empty());
}

/// PostgreSQL hands out ids at insert and commits in any order: an event whose transaction
/// commits after a later event's, and after a poll that handed that one out, still reaches the
/// session, once. (On SQLite, with one writer, commits come in id order.)
#[tokio::test]
async fn a_monitor_session_hands_out_an_event_that_committed_late_on_postgres() {
    use sqlx::Connection as _;
    let store = fresh(Engine::Postgres).await;
    let late_panel = controller(&store, "ACC1", Approval::Approved).await;
    let panel = controller(&store, "ACC2", Approval::Approved).await;
    let client = store.create_cvsecurity_client("siem", &sha256(b"secret"), false).await.unwrap();
    let t0 = now_micros();
    // A stored event whose row the late writer re-inserts (a sealed card opens only under its
    // own row's digest), before the session starts.
    store
        .store_access_events(late_panel, &[event("2027-01-15 08:00:00", "7", "1", 1, 0)], &[], t0 - 10_000_000)
        .await
        .unwrap();
    let started_ms = t0 / 1000;
    let sns = |rows: Vec<adms_store::cvsecurity::AccessEventRow>| -> Vec<(String, i64)> {
        rows.into_iter().map(|r| (r.sn, r.seq)).collect()
    };
    assert!(store.monitor_access_events(client, started_ms, t0, 10).await.unwrap().is_empty());

    // A writer takes an id for ACC1's event (moving it: delete, insert again as new) and has
    // not committed yet.
    let mut late = sqlx::PgConnection::connect(store.url()).await.unwrap();
    let mut tx = late.begin().await.unwrap();
    sqlx::query(
        "WITH gone AS (DELETE FROM access_events WHERE device_id = $1 RETURNING *) \
         INSERT INTO access_events (device_id, local_time, pin, card_no, door, event_code, in_out, verify_type, \
                                    raw_line, raw_sha256, received_at) \
         SELECT device_id, local_time, pin, card_no, door, event_code, in_out, verify_type, raw_line, raw_sha256, $2 \
         FROM gone",
    )
    .bind(late_panel)
    .bind(t0 + 1_000_000)
    .execute(&mut *tx)
    .await
    .unwrap();
    // ACC2's event gets a higher id, commits first and is handed out.
    store
        .store_access_events(panel, &[event("2027-01-15 08:00:01", "8", "2", 1, 0)], &[], t0 + 2_000_000)
        .await
        .unwrap();
    let polled = store.monitor_access_events(client, started_ms, t0 + 20_000_000, 10).await.unwrap();
    assert_eq!(sns(polled), [("ACC2".to_owned(), 1)]);
    // ACC1's commits now, long after: the next poll hands it out, with its card, and once.
    tx.commit().await.unwrap();
    let polled = store.monitor_access_events(client, started_ms, t0 + 30_000_000, 10).await.unwrap();
    assert_eq!(polled.iter().map(|r| r.card_no.as_str()).collect::<Vec<_>>(), ["1"]);
    assert_eq!(sns(polled), [("ACC1".to_owned(), 2)]);
    assert!(store.monitor_access_events(client, started_ms, t0 + 40_000_000, 10).await.unwrap().is_empty());
}

async fn a_controller_keeps_its_newest_door_state(engine: Engine) {
    let store = fresh(engine).await;
    let panel = controller(&store, "ACC1", Approval::Approved).await;
    let state = |at: i64, sensor: &str| door_state(panel, at, sensor);
    store.store_rtstate_upload(&rtstate_body(panel, "ACC1", b"1"), &state(20, "02")).await.unwrap();
    // An older report handled late changes nothing; a newer one replaces it.
    store.store_rtstate_upload(&rtstate_body(panel, "ACC1", b"2"), &state(10, "01")).await.unwrap();
    assert_eq!(store.controller_states().await.unwrap(), [state(20, "02")]);
    store.store_rtstate_upload(&rtstate_body(panel, "ACC1", b"3"), &state(30, "05")).await.unwrap();
    assert_eq!(store.controller_states().await.unwrap(), [state(30, "05")]);
    // A body without a readable state is kept all the same.
    store.store_raw_upload(&rtstate_body(panel, "ACC1", b"4")).await.unwrap();
    assert_eq!(raw_uploads(&store).await, 4);
}

/// One commit per device request: the body and the state it carries are kept together or not
/// at all (a state the database refuses leaves no body behind, so the device's resend is whole).
async fn an_rtstate_body_and_its_door_state_commit_together(engine: Engine) {
    let store = fresh(engine).await;
    let panel = controller(&store, "ACC1", Approval::Approved).await;
    let refused = door_state(panel + 1000, 10, "02"); // no such device: the state's key is refused
    store.store_rtstate_upload(&rtstate_body(panel, "ACC1", b"a"), &refused).await.unwrap_err();
    assert_eq!(raw_uploads(&store).await, 0, "the body of a failed request was committed");
    assert!(store.controller_states().await.unwrap().is_empty());

    store.store_rtstate_upload(&rtstate_body(panel, "ACC1", b"a"), &door_state(panel, 11, "02")).await.unwrap();
    assert_eq!(raw_uploads(&store).await, 1);
    assert_eq!(store.controller_states().await.unwrap(), [door_state(panel, 11, "02")]);
}

fn door_state(device_id: i64, received_at: i64, sensor: &str) -> adms_store::cvsecurity::ControllerState {
    adms_store::cvsecurity::ControllerState {
        device_id,
        local_time: "2026-12-06 09:00:00".into(),
        sensor: sensor.into(),
        relay: "00".into(),
        alarm: "0000".into(),
        received_at,
    }
}

fn rtstate_body<'a>(device_id: i64, sn: &'a str, body: &'a [u8]) -> adms_store::RawUpload<'a> {
    adms_store::RawUpload {
        device_id: Some(device_id),
        sn,
        endpoint: "cdata",
        table: "rtstate",
        query: "",
        body,
        received_at: now_micros(),
        quota: Some(adms_store::Quota::for_day(now_micros(), 1 << 20)),
    }
}

async fn raw_uploads(store: &Store) -> i64 {
    store.table_row_counts().await.unwrap().into_iter().find(|(t, _)| *t == "raw_uploads").unwrap().1
}
