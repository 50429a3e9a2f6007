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
    a_monitor_session_hands_out_each_settled_event_once_in_batches,
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

async fn a_monitor_session_hands_out_each_settled_event_once_in_batches(engine: Engine) {
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
    let settle = 2 * SECOND;
    let times = |rows: &[adms_store::cvsecurity::AccessEventRow]| -> Vec<String> {
        rows.iter().map(|r| r.local_time[17..].to_owned()).collect()
    };

    // Not settled yet at t0 + 2 s: nothing; then in batches of two, each once.
    assert!(store.monitor_access_events(client, started_ms, t0 + 2 * SECOND, settle, 2).await.unwrap().is_empty());
    let now = t0 + 4 * SECOND;
    assert_eq!(times(&store.monitor_access_events(client, started_ms, now, settle, 2).await.unwrap()), ["01", "02"]);
    assert_eq!(times(&store.monitor_access_events(client, started_ms, now, settle, 2).await.unwrap()), ["03"]);
    assert!(store.monitor_access_events(client, started_ms, now, settle, 2).await.unwrap().is_empty());
    store.store_access_events(panel, &[at(4)], &[], now).await.unwrap();
    let later = now + 3 * SECOND;
    assert_eq!(times(&store.monitor_access_events(client, started_ms, later, settle, 2).await.unwrap()), ["04"]);

    // Sessions are independent: another client, or another timestamp, starts from its own.
    assert_eq!(store.monitor_access_events(other, started_ms, later, settle, 10).await.unwrap().len(), 4);
    let from_before = (t0 - 2 * SECOND) / 1000;
    assert_eq!(store.monitor_access_events(client, from_before, later, settle, 10).await.unwrap().len(), 5);
    // A second handle (another replica) continues the session where the first left it.
    let replica = store.second_process().await;
    store.store_access_events(panel, &[at(5)], &[], later).await.unwrap();
    let rows = replica.monitor_access_events(client, started_ms, later + 3 * SECOND, settle, 10).await.unwrap();
    assert_eq!((times(&rows), rows[0].card_no.as_str()), (vec!["05".to_owned()], "1"));
    // A session idle for a day is forgotten: polled again, it starts from its timestamp.
    let next_day = later + adms_store::cvsecurity::MONITOR_IDLE_MICROS + 10 * SECOND;
    assert_eq!(store.monitor_access_events(other, started_ms + 1, next_day, settle, 10).await.unwrap().len(), 5);
    assert_eq!(store.monitor_access_events(client, started_ms, next_day, settle, 10).await.unwrap().len(), 5);
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
