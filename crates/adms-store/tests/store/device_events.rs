//! Device and roster events in the outbox on both engines: `device.registered` on
//! first contact, `user.enrolled` / `user.updated` from OPERLOG `USER` lines, `device.offline` /
//! `device.online` transitions; each committed with its cause, once per cause, and only while an
//! endpoint exists.

use adms_store::{NewDevice, OfflineCheck, OperlogBatch, SeenAgain, Store, UserRow, now_micros};
use serde_json::{Value, json};

async fn add_endpoint(store: &Store) {
    let settings = crate::common::endpoint_settings("http://a");
    store.create_endpoint("ep_a", &settings, "api", "whsec_a").await.unwrap();
}

/// One stored event: id, type, body, and how many deliveries it has.
#[derive(Debug)]
struct StoredEvent {
    id: String,
    event_type: String,
    body: Value,
    raw_body: String,
    deliveries: i64,
}

/// Every event in the outbox, oldest first, read through the store.
async fn events(store: &Store) -> Vec<StoredEvent> {
    let mut rows = store.list_events(None, None, 100_000, None).await.unwrap();
    rows.sort_by_key(|row| row.id);
    rows.into_iter()
        .map(|row| StoredEvent {
            id: row.event_id,
            event_type: row.event_type,
            body: serde_json::from_slice(&row.body).unwrap(),
            raw_body: String::from_utf8(row.body).unwrap(),
            deliveries: row.deliveries,
        })
        .collect()
}

fn new_device(sn: &str) -> NewDevice<'_> {
    NewDevice {
        approval: Some(adms_store::Approval::Approved),
        sn,
        protocol_family: "att",
        ip_address: "10.0.0.5",
        default_time_zone: "+05:30",
        handshake: None,
    }
}

fn user(pin: &str, name: &str, password: &str) -> UserRow {
    UserRow {
        password: password.into(),
        card: "[15CD5B07]".into(),
        raw_line: format!("USER PIN={pin}\tName={name}\tPri=0\tPasswd={password}").into_bytes(),
        ..crate::common::device_user(pin, name)
    }
}

fn operlog(device_id: i64, users: Vec<UserRow>) -> OperlogBatch {
    OperlogBatch {
        device_id,
        table: "OPERLOG",
        users,
        received_at: now_micros(),
        device_sn: "SN1".into(),
        device_alias: "Gate A".into(),
        device_time_zone: "+05:30".into(),
        ..Default::default()
    }
}

async fn first_registration_emits_device_registered_once(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let store = store.store();
    add_endpoint(store).await;
    let device = store.register_device(&new_device("SN1")).await.unwrap();
    let again = store.register_device(&new_device("SN1")).await.unwrap();
    assert_eq!(again.id, device.id);

    let events = events(store).await;
    assert_eq!(events.len(), 1, "re-registration emits nothing: {events:?}");
    let event = &events[0];
    assert_eq!(event.event_type, "device.registered");
    assert_eq!(event.deliveries, 1, "fanned out to the endpoint");
    assert_eq!(event.id, adms_store::events::device_registered_event_id("SN1"));
    assert_eq!(event.body["id"], event.id.as_str());
    assert_eq!(event.body["type"], "device.registered");
    assert_eq!(
        event.body["data"],
        json!({
            "device": {"sn": "SN1", "alias": "", "time_zone": "+05:30"},
            "approval": "approved",
            "protocol_family": "att",
            "ip_address": "10.0.0.5",
        })
    );
    // A pending device's registration is an event too (held with its data until approval).
    store
        .register_device(&NewDevice { approval: Some(adms_store::Approval::Pending), ..new_device("SN2") })
        .await
        .unwrap();
    let events = events_of_type(store, "device.registered").await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].body["data"]["approval"], "pending");
}

async fn events_of_type(store: &Store, event_type: &str) -> Vec<StoredEvent> {
    events(store).await.into_iter().filter(|e| e.event_type == event_type).collect()
}

async fn users_are_enrolled_once_and_updated_only_when_a_stored_field_changes(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let store = store.store();
    let device = store.register_device(&new_device("SN1")).await.unwrap();
    add_endpoint(store).await;

    store.store_operlog(&operlog(device.id, vec![user("7", "Ann", "1234")])).await.unwrap();
    let enrolled = events(store).await;
    assert_eq!(enrolled.len(), 1);
    assert_eq!(enrolled[0].event_type, "user.enrolled");
    assert_eq!(enrolled[0].id, adms_store::events::user_enrolled_event_id("SN1", "7"));
    assert_eq!(
        enrolled[0].body["data"],
        json!({
            "device": {"sn": "SN1", "alias": "Gate A", "time_zone": "+05:30"},
            "pin": "7",
            "name": "Ann",
            "privilege": 0,
            "card": "[15CD5B07]",
            "group": "1",
            "time_zone": "0000000100000000",
            "has_password": true,
        })
    );

    // The same line again (a device re-sends its roster): nothing.
    store.store_operlog(&operlog(device.id, vec![user("7", "Ann", "1234")])).await.unwrap();
    assert_eq!(events_len(store).await, 1, "an identical USER line emits nothing");

    // A real change: user.updated, with the new values.
    store.store_operlog(&operlog(device.id, vec![user("7", "Ann Lee", "1234")])).await.unwrap();
    // Back, then forward again: each change is its own event (the second "Ann Lee" is not
    // mistaken for the first).
    store.store_operlog(&operlog(device.id, vec![user("7", "Ann", "1234")])).await.unwrap();
    store.store_operlog(&operlog(device.id, vec![user("7", "Ann Lee", "1234")])).await.unwrap();
    // A password-only change is a change, reported without the password.
    store.store_operlog(&operlog(device.id, vec![user("7", "Ann Lee", "9999")])).await.unwrap();
    // Cleared password.
    store.store_operlog(&operlog(device.id, vec![user("7", "Ann Lee", "")])).await.unwrap();

    let updated = events_of_type(store, "user.updated").await;
    let names: Vec<&str> = updated.iter().map(|e| e.body["data"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Ann Lee", "Ann", "Ann Lee", "Ann Lee", "Ann Lee"]);
    let has_password: Vec<bool> = updated.iter().map(|e| e.body["data"]["has_password"].as_bool().unwrap()).collect();
    assert_eq!(has_password, [true, true, true, true, false]);
    let mut ids: Vec<&str> = updated.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5, "one id per change");
    for event in events(store).await {
        assert!(
            !event.raw_body.contains("1234") && !event.raw_body.contains("9999"),
            "password leaked: {}",
            event.raw_body
        );
        assert!(event.body["data"].get("password").is_none());
        assert_eq!(event.deliveries, 1);
    }

    // Two users in one upload, one new and one unchanged: one event.
    let before = events_len(store).await;
    store.store_operlog(&operlog(device.id, vec![user("7", "Ann Lee", ""), user("8", "Bo", "")])).await.unwrap();
    let after = events(store).await;
    assert_eq!(after.len(), before + 1);
    assert_eq!((after[before].event_type.as_str(), &after[before].body["data"]["pin"]), ("user.enrolled", &json!("8")));

    // One PIN three times in one upload (a user edited before the terminal could send): each
    // line is compared with the one before it, and the last one is what is stored.
    let before = events_len(store).await;
    let lines = vec![user("9", "Cy", ""), user("9", "Cy Ng", ""), user("9", "Cy Ng", "")];
    store.store_operlog(&operlog(device.id, lines)).await.unwrap();
    let after = events(store).await;
    let changes: Vec<(&str, &str)> =
        after[before..].iter().map(|e| (e.event_type.as_str(), e.body["data"]["name"].as_str().unwrap())).collect();
    assert_eq!(changes, [("user.enrolled", "Cy"), ("user.updated", "Cy Ng")]);
    store.store_operlog(&operlog(device.id, vec![user("9", "Cy Ng", "")])).await.unwrap();
    assert_eq!(events_len(store).await, after.len(), "the last line is the stored one");
}

async fn events_len(store: &Store) -> usize {
    events(store).await.len()
}

async fn without_endpoints_nothing_is_emitted_but_everything_is_stored(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let store = store.store();
    let device = store.register_device(&new_device("SN1")).await.unwrap();
    store.store_operlog(&operlog(device.id, vec![user("7", "Ann", "")])).await.unwrap();
    store.store_operlog(&operlog(device.id, vec![user("7", "Ann Lee", "")])).await.unwrap();
    let now = now_micros();
    let offline = OfflineCheck { device_id: device.id, time_zone: "UTC", seen_here: 0, silent_since: now, now };
    assert!(store.mark_device_offline(&offline).await.unwrap(), "presence still changes");
    let back = SeenAgain { device_id: device.id, time_zone: "UTC", back_at: now + 1, now: now + 1 };
    assert!(store.mark_device_online(&back).await.unwrap());
    assert!(events(store).await.is_empty());

    // An endpoint created later receives later causes only.
    add_endpoint(store).await;
    store.store_operlog(&operlog(device.id, vec![user("7", "Ann", "")])).await.unwrap();
    let types: Vec<String> = events(store).await.into_iter().map(|e| e.event_type).collect();
    assert_eq!(types, ["user.updated"]);
}

async fn presence_transitions_are_reported_once_each(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let store = store.store();
    add_endpoint(store).await;
    let device = store.register_device(&new_device("SN1")).await.unwrap();
    let registered_at = now_micros();
    let t = registered_at + 60_000_000;

    // Seen by this process after the cutoff (not flushed yet): not offline.
    let recent =
        OfflineCheck { device_id: device.id, time_zone: "UTC", seen_here: t - 1, silent_since: t - 30_000_000, now: t };
    assert!(!store.mark_device_offline(&recent).await.unwrap());
    // Silent for the threshold: offline, once, even when two replicas both try.
    let silent = OfflineCheck { seen_here: 0, ..recent.clone() };
    let (a, b) = tokio::join!(store.mark_device_offline(&silent), store.mark_device_offline(&silent));
    assert_eq!([a.unwrap(), b.unwrap()].iter().filter(|changed| **changed).count(), 1);
    let later = OfflineCheck { silent_since: t + 30_000_000, now: t + 60_000_000, ..silent.clone() };
    assert!(!store.mark_device_offline(&later).await.unwrap(), "already offline");

    let offline = events_of_type(store, "device.offline").await;
    assert_eq!(offline.len(), 1);
    let data = &offline[0].body["data"];
    assert_eq!(data["reason"], "heartbeat_missed");
    assert_eq!(data["last_punch_seq"], 0);
    assert_eq!(data["device"], json!({"sn": "SN1", "alias": "", "time_zone": "UTC"}));
    assert_eq!(offline[0].body["timestamp"], adms_store::events::rfc3339_micros(t).as_str());
    let last_seen = data["last_seen_at"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap().as_microsecond();
    assert!((registered_at - 1_000_000..=registered_at).contains(&last_seen), "last seen at registration");

    // Back: device.online once, saying since when it was offline.
    let back_at = t + 90_000_000;
    let back = SeenAgain { device_id: device.id, time_zone: "UTC", back_at, now: back_at };
    let (a, b) = tokio::join!(store.mark_device_online(&back), store.mark_device_online(&back));
    assert_eq!([a.unwrap(), b.unwrap()].iter().filter(|changed| **changed).count(), 1);
    let online = events_of_type(store, "device.online").await;
    assert_eq!(online.len(), 1);
    assert_eq!(online[0].body["data"]["offline_since"], offline[0].body["timestamp"]);
    assert_eq!(online[0].body["data"]["back_at"], adms_store::events::rfc3339_micros(back_at).as_str());
    assert_eq!(online[0].body["timestamp"], online[0].body["data"]["back_at"]);

    // Its request counts as activity: not offline again before the threshold from back_at.
    let soon = OfflineCheck { silent_since: back_at - 1, now: back_at + 1, ..silent.clone() };
    assert!(!store.mark_device_offline(&soon).await.unwrap());
    // Silent again: a second transition, a second id.
    let again = OfflineCheck { silent_since: back_at + 1, now: back_at + 30_000_001, ..silent };
    assert!(store.mark_device_offline(&again).await.unwrap());
    let offline = events_of_type(store, "device.offline").await;
    assert_eq!(offline.len(), 2);
    assert_ne!(offline[0].id, offline[1].id);
    assert_eq!(offline[1].body["data"]["last_seen_at"], adms_store::events::rfc3339_micros(back_at).as_str());
    assert!(events(store).await.iter().all(|e| e.deliveries == 1));
}

crate::on_both_engines!(
    first_registration_emits_device_registered_once,
    users_are_enrolled_once_and_updated_only_when_a_stored_field_changes,
    without_endpoints_nothing_is_emitted_but_everything_is_stored,
    presence_transitions_are_reported_once_each,
);
