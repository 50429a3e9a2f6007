//! Sealed columns against a real SQLite file: nothing of a secret in the clear on disk, every
//! value read back, an older database sealed in place (re-sent lines still recognised), and a
//! re-key that moves every value to the new key.

use adms_protocol::DeviceCommand;
use adms_store::roster::{EmployeeFields, RosterError, RosterRefusal};
use adms_store::{
    AccessEvent, Approval, CommandPolicy, DeviceRecord, NewCommand, NewDevice, OperlogBatch, RawUpload, RejectedLine,
    Store, StoreOptions, UserRow, now_micros,
};
use adms_vault::{IndexKey, SecretKey, Vault};

/// Every value below appears once, as a secret; none may be found in the database's files.
const SECRETS: [&str; 10] = [
    "EMPCARD11223344",
    "EMPPASS9",
    "SSN-4471-AZ",
    "DEVPASS2468",
    "DEVCARD13572468",
    "TEMPLATE-QkFTRTY0",
    "REJECTED-PASSWD-8642",
    "IDCARD-NID-90210",
    "RAWBODY-NID-31337",
    "RTCARD24681357",
];

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/sealed.db", dir.path().display())
}

fn new_vault(index: &IndexKey) -> Vault {
    Vault::new(SecretKey::generate(), index.clone())
}

fn employee(code: &str, card: &str) -> EmployeeFields {
    EmployeeFields {
        emp_code: code.into(),
        first_name: "Ann".into(),
        department_id: 1,
        verify_mode: -1,
        app_role: 1,
        card_no: card.into(),
        device_password: "EMPPASS9".into(),
        ssn: "SSN-4471-AZ".into(),
        birthday: Some("1990-04-12".into()),
        ..Default::default()
    }
}

fn operlog(device_id: i64) -> OperlogBatch {
    OperlogBatch {
        device_id,
        table: "OPERLOG",
        users: vec![UserRow {
            password: "DEVPASS2468".into(),
            card: "DEVCARD13572468".into(),
            verify: Some(0),
            raw_line: b"USER PIN=77\tName=Bob\tPasswd=DEVPASS2468\tCard=DEVCARD13572468".to_vec(),
            ..crate::common::device_user("77", "Bob")
        }],
        templates: vec![crate::common::template("77", 3, "TEMPLATE-QkFTRTY0")],
        others: vec![DeviceRecord {
            kind: "IDCARD".into(),
            raw_line: b"IDCARD PIN=77\tIDNum=IDCARD-NID-90210".to_vec(),
        }],
        rejected: vec![RejectedLine {
            table: "OPERLOG",
            line_no: 4,
            raw: b"USER PIN=bad pin\tPasswd=REJECTED-PASSWD-8642".to_vec(),
            reason: "invalid_pin",
        }],
        received_at: now_micros(),
        device_sn: "SEAL0001".into(),
        ..Default::default()
    }
}

fn access_event() -> AccessEvent {
    AccessEvent {
        local_time: "2026-12-01 08:00:00".into(),
        pin: "77".into(),
        card_no: "RTCARD24681357".into(),
        door: Some(1),
        event_code: Some(0),
        in_out: Some(0),
        verify_type: "4".into(),
        raw_line: b"time=2026-12-01 08:00:00\tpin=77\tcardno=RTCARD24681357".to_vec(),
    }
}

fn raw_upload(device_id: i64) -> RawUpload<'static> {
    RawUpload {
        device_id: Some(device_id),
        sn: "SEAL0001",
        endpoint: "cdata",
        table: "ZZNATIONAL",
        query: "SN=SEAL0001&table=ZZNATIONAL",
        body: b"RAWBODY-NID-31337",
        received_at: now_micros(),
        quota: None,
    }
}

fn user_command(device_id: i64) -> NewCommand {
    let command: DeviceCommand = serde_json::from_value(serde_json::json!({
        "type": "user_upsert", "pin": "78", "name": "Cy", "password": "CMDPASS1", "card": "4455"
    }))
    .unwrap();
    NewCommand { device_id, command, dedupe_key: None, source: "test".into(), expires_at: i64::MAX }
}

/// Writes one of everything that is sealed; returns the device id.
async fn write_everything(store: &Store) -> i64 {
    let device = store
        .register_device(&NewDevice { sn: "SEAL0001", approval: Some(Approval::Approved), ..Default::default() })
        .await
        .unwrap();
    store.save_employee(&employee("0042", "EMPCARD11223344"), &[]).await.unwrap();
    store.store_operlog(&operlog(device.id)).await.unwrap();
    store.store_access_events(device.id, &[access_event()], &[], now_micros()).await.unwrap();
    store.store_raw_upload(&raw_upload(device.id)).await.unwrap();
    store.enqueue_commands(&[user_command(device.id)], now_micros()).await.unwrap();
    device.id
}

/// Every byte of the database's files, after a checkpoint that empties the WAL.
async fn database_bytes(dir: &tempfile::TempDir) -> Vec<u8> {
    let mut conn = connect(dir).await;
    let busy: i64 = sqlx::query_scalar("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut conn).await.unwrap();
    assert_eq!(busy, 0, "the checkpoint was not blocked");
    drop(conn);
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("sealed.db") {
            // A `-wal` or `-shm` file may be removed by its last connection closing meanwhile.
            match std::fs::read(&path) {
                Ok(content) => bytes.extend(content),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("{}: {e}", path.display()),
            }
        }
    }
    bytes
}

fn secrets_in(bytes: &[u8]) -> Vec<&'static str> {
    SECRETS.into_iter().filter(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes())).collect()
}

async fn connect(dir: &tempfile::TempDir) -> sqlx::SqliteConnection {
    <sqlx::SqliteConnection as sqlx::Connection>::connect(&url(dir)).await.unwrap()
}

async fn count(dir: &tempfile::TempDir, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&mut connect(dir).await).await.unwrap()
}

/// Reads back what [`write_everything`] wrote, through the store.
async fn assert_reads_back(store: &Store, device_id: i64) {
    let e = store.employee_by_code("0042").await.unwrap().expect("employee");
    assert_eq!(
        (e.fields.card_no.as_str(), e.fields.device_password.as_str(), e.fields.ssn.as_str()),
        ("EMPCARD11223344", "EMPPASS9", "SSN-4471-AZ")
    );
    assert_eq!(e.fields.birthday.as_deref(), Some("1990-04-12"));
    let (_, templates) =
        store.list_templates(&Default::default(), adms_store::Page { offset: 0, limit: 10 }).await.unwrap();
    assert_eq!(templates[0].template, "TEMPLATE-QkFTRTY0");
    let (_, rejected) = store.list_rejected_lines(None, adms_store::Page { offset: 0, limit: 10 }).await.unwrap();
    assert_eq!(rejected[0].raw, b"USER PIN=bad pin\tPasswd=REJECTED-PASSWD-8642");
    let (_, commands) = store.list_commands(device_id, None, adms_store::Page { offset: 0, limit: 10 }).await.unwrap();
    assert!(commands[0].command.contains("Passwd=CMDPASS1"), "{}", commands[0].command);
    assert!(commands[0].params.contains("CMDPASS1"), "{}", commands[0].params);
}

#[tokio::test]
async fn sealed_values_never_reach_the_files_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&url(&dir), StoreOptions::default()).await.unwrap();
    store.seal_with(new_vault(&IndexKey::generate())).unwrap();
    let device_id = write_everything(&store).await;
    assert_reads_back(&store, device_id).await;
    let taken = store.take_due_commands(device_id, now_micros(), &CommandPolicy::default()).await.unwrap();
    assert!(taken.commands[0].text.contains("Passwd=CMDPASS1\tCard=4455"), "the device gets the clear text");
    // Re-sent lines are recognised through their keyed digests.
    store.store_operlog(&operlog(device_id)).await.unwrap();
    store.store_access_events(device_id, &[access_event()], &[], now_micros()).await.unwrap();
    store.store_raw_upload(&raw_upload(device_id)).await.unwrap();
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM device_records").await, 1);
    assert_eq!(count(&dir, "SELECT seen_count FROM rejected_lines").await, 2);
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM access_events").await, 1);
    assert_eq!(count(&dir, "SELECT seen_count FROM raw_uploads").await, 2);
    // A card number still belongs to one employee.
    let taken = store.save_employee(&employee("0043", "EMPCARD11223344"), &[]).await;
    assert!(
        matches!(taken, Err(RosterError::Refused(RosterRefusal::DuplicateCard(ref holder))) if holder == "0042"),
        "{taken:?}"
    );
    store.close().await;
    drop(store);
    assert_eq!(secrets_in(&database_bytes(&dir).await), Vec::<&str>::new());
}

#[tokio::test]
async fn an_older_database_is_sealed_in_place_once_and_still_knows_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    // Written as a version before sealing did: no vault.
    let store = Store::open(&url(&dir), StoreOptions::default()).await.unwrap();
    let device_id = write_everything(&store).await;
    store.close().await;
    drop(store);
    assert_eq!(secrets_in(&database_bytes(&dir).await), SECRETS.to_vec(), "the older database holds them in the clear");

    let store = Store::open(&url(&dir), StoreOptions::default()).await.unwrap();
    store.seal_with(new_vault(&IndexKey::generate())).unwrap();
    let done = store.seal_plaintext_columns().await.unwrap();
    assert!(done.sealed >= 12, "{done:?}");
    assert_eq!(store.seal_plaintext_columns().await.unwrap().sealed, 0, "once per database");
    assert_reads_back(&store, device_id).await;
    store.store_operlog(&operlog(device_id)).await.unwrap();
    store.store_access_events(device_id, &[access_event()], &[], now_micros()).await.unwrap();
    store.store_raw_upload(&raw_upload(device_id)).await.unwrap();
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM device_records").await, 1, "old digests were re-keyed");
    assert_eq!(count(&dir, "SELECT seen_count FROM rejected_lines").await, 2);
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM access_events").await, 1);
    assert_eq!(count(&dir, "SELECT seen_count FROM raw_uploads").await, 2);
    let taken = store.save_employee(&employee("0043", "EMPCARD11223344"), &[]).await;
    assert!(matches!(taken, Err(RosterError::Refused(RosterRefusal::DuplicateCard(_)))), "{taken:?}");
    store.close().await;
    drop(store);
    assert_eq!(secrets_in(&database_bytes(&dir).await), Vec::<&str>::new());
}

#[tokio::test]
async fn rekey_moves_every_value_to_the_new_key_and_keeps_the_digests() {
    let dir = tempfile::tempdir().unwrap();
    let index = IndexKey::generate();
    let old = new_vault(&index);
    let new = new_vault(&index);
    let store = Store::open(&url(&dir), StoreOptions::default()).await.unwrap();
    store.seal_with(old.clone()).unwrap();
    let device_id = write_everything(&store).await;
    let done = store.reseal_columns(Some(&old), &new).await.unwrap();
    assert!(done.sealed >= 12 && done.already == 0, "{done:?}");
    let again = store.reseal_columns(Some(&old), &new).await.unwrap();
    assert_eq!((again.sealed, again.already), (0, done.sealed), "a second run finds everything moved");
    store.close().await;
    drop(store);

    let under_old = Store::open(&url(&dir), StoreOptions::default()).await.unwrap();
    under_old.seal_with(old).unwrap();
    assert!(under_old.employee_by_code("0042").await.is_err(), "the old key no longer opens them");
    under_old.close().await;
    drop(under_old);
    let store = Store::open(&url(&dir), StoreOptions::default()).await.unwrap();
    store.seal_with(new).unwrap();
    assert_reads_back(&store, device_id).await;
    store.store_operlog(&operlog(device_id)).await.unwrap();
    assert_eq!(count(&dir, "SELECT COUNT(*) FROM device_records").await, 1);
    let taken = store.save_employee(&employee("0043", "EMPCARD11223344"), &[]).await;
    assert!(matches!(taken, Err(RosterError::Refused(RosterRefusal::DuplicateCard(_)))), "{taken:?}");
    store.close().await;
    drop(store);
    assert_eq!(secrets_in(&database_bytes(&dir).await), Vec::<&str>::new());
}

/// Both passes over the sealed columns, on either engine: values an unsealed store wrote are
/// sealed in place, read back, move to a new key, and the old key no longer opens them.
async fn plaintext_is_sealed_then_rekeyed_and_reads_back(engine: crate::common::Engine) {
    let db = crate::common::fresh(engine).await;
    let options = || StoreOptions { max_connections: 2, ..StoreOptions::default() };
    let plain = Store::open(db.url(), options()).await.unwrap();
    let device_id = write_everything(&plain).await;
    plain.close().await;

    let index = IndexKey::generate();
    let (old, new) = (new_vault(&index), new_vault(&index));
    let store = Store::open(db.url(), options()).await.unwrap();
    store.seal_with(old.clone()).unwrap();
    let sealed = store.seal_plaintext_columns().await.unwrap();
    assert!(sealed.sealed >= 12, "{sealed:?}");
    assert_reads_back(&store, device_id).await;
    let done = store.reseal_columns(Some(&old), &new).await.unwrap();
    assert_eq!((done.sealed, done.already), (sealed.sealed, 0), "every value moves to the new key");
    store.close().await;

    let under_old = Store::open(db.url(), options()).await.unwrap();
    under_old.seal_with(old).unwrap();
    assert!(under_old.employee_by_code("0042").await.is_err(), "the old key no longer opens them");
    under_old.close().await;
    let store = Store::open(db.url(), options()).await.unwrap();
    store.seal_with(new).unwrap();
    assert_reads_back(&store, device_id).await;
    let taken = store.save_employee(&employee("0043", "EMPCARD11223344"), &[]).await;
    assert!(matches!(taken, Err(RosterError::Refused(RosterRefusal::DuplicateCard(_)))), "{taken:?}");
    store.close().await;
}

crate::on_both_engines!(plaintext_is_sealed_then_rekeyed_and_reads_back);
