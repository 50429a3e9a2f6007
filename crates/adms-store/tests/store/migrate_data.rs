//! `migrate-data`: a bridge's data copied from SQLite to PostgreSQL, verified, resumable.

use adms_protocol::DeviceCommand;
use adms_store::testing::FreshDatabase;
use adms_store::webhooks::EndpointSettings;
use adms_store::{Approval, NewCommand, NewDevice, NewPunch, Page, PunchBatch, Store, StoreOptions, TransactionFilter};
use adms_vault::{IndexKey, SecretKey, Vault};

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
        utc_time: Some(1_772_352_000 + i64::from(minute) * 60),
        mask_flag: None,
        temperature: Some(36.6),
        raw_line: format!("{pin}\t{time}\t0\t1\t0"),
    }
}

async fn punches(store: &Store, device_id: i64, pins: &[&str], minutes: std::ops::Range<u32>) {
    let mut batch = PunchBatch::new(device_id);
    for minute in minutes {
        for pin in pins {
            batch.punches.push(punch(pin, minute));
        }
    }
    store.punch_writer().write(batch).await.unwrap();
}

const ALL: Page = Page { offset: 0, limit: 100_000 };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_moves_to_postgres_with_ids_seq_and_sealed_values_intact_and_a_second_run_adds_only_new_rows() {
    let vault = Vault::new(SecretKey::generate(), IndexKey::generate());
    let dir = tempfile::tempdir().unwrap();
    let source =
        Store::open(&format!("sqlite://{}/bridge.db", dir.path().display()), StoreOptions::default()).await.unwrap();
    source.seal_with(vault.clone()).unwrap();

    let approved = NewDevice { sn: "A1", approval: Some(Approval::Approved), ..Default::default() };
    let a = source.register_device(&approved).await.unwrap();
    let b = source.register_device(&NewDevice { sn: "B2", ..Default::default() }).await.unwrap();
    punches(&source, a.id, &["1", "2"], 0..30).await;
    source
        .create_endpoint(
            "ep_m",
            &EndpointSettings {
                url: "http://127.0.0.1:9/hook",
                description: "erp",
                event_types: None,
                timeout_ms: 5000,
                batch_max: 1,
                ordered: true,
            },
            "api",
            "whsec_secret",
        )
        .await
        .unwrap();
    // With an endpoint, new punches carry events (and the fan-out made their deliveries).
    punches(&source, b.id, &["7"], 0..10).await;
    let command = NewCommand {
        device_id: a.id,
        command: DeviceCommand::SetOption { key: "Delay".into(), value: "30".into() },
        dedupe_key: Some("delay".into()),
        source: "test".into(),
        expires_at: i64::MAX,
    };
    let queued = source.enqueue_commands(&[command], 1).await.unwrap();
    source.upsert_user("erp", "hash").await.unwrap();
    // An elevator level (migration 0025) with a floor of A1, which is an elevator controller.
    let floors = source.set_elevator_floors(a.id, 3).await.unwrap();
    let always = source.create_time_segment("Always", &adms_model::access::WeeklySchedule::always()).await.unwrap();
    let lift_level = source.create_ele_level("Lobby", always.id).await.unwrap();
    source.add_ele_level_floors(lift_level.id, &[floors[1].id]).await.unwrap();

    let database = FreshDatabase::create().await;
    let target =
        Store::open(database.url(), StoreOptions { max_connections: 4, ..StoreOptions::default() }).await.unwrap();
    target.seal_with(vault.clone()).unwrap();
    let mut heard = Vec::new();
    let report = source.migrate_data_to(&target, |table, rows| heard.push((table.to_owned(), rows))).await.unwrap();
    let count = |name: &str| report.tables.iter().find(|(t, _, _)| *t == name).map(|(_, here, _)| *here);
    assert_eq!(count("punches"), Some(70));
    assert_eq!(count("devices"), Some(2));
    assert!(count("webhook_deliveries").unwrap() >= 10, "{report:?}");
    assert!(heard.iter().any(|(t, rows)| t == "punches" && *rows == 70), "{heard:?}");

    // The same answers from both: ids, seq, events, sealed command text.
    let filter = TransactionFilter::default();
    assert_eq!(
        source.list_transactions(&filter, ALL).await.unwrap(),
        target.list_transactions(&filter, ALL).await.unwrap()
    );
    assert_eq!(source.device_by_sn("B2").await.unwrap(), target.device_by_sn("B2").await.unwrap());
    assert_eq!(source.ele_levels().await.unwrap(), target.ele_levels().await.unwrap());
    assert_eq!(target.ele_level(lift_level.id).await.unwrap().unwrap().floor_ids, [floors[1].id]);
    let copied = target.command(queued[0].id).await.unwrap().expect("the command is there");
    assert_eq!(copied.command, "SET OPTION Delay=30", "sealed under the same key, and still opening");
    // A second run (after an interruption, or to catch up) copies only what is new.
    punches(&source, a.id, &["1"], 30..35).await;
    let again = source.migrate_data_to(&target, |_, _| {}).await.unwrap();
    assert_eq!(again.punch_checksum, source.migrate_data_to(&target, |_, _| {}).await.unwrap().punch_checksum);
    let (copied_count, _) = target.list_transactions(&filter, Page { offset: 0, limit: 1 }).await.unwrap();
    // B2 is pending: its 10 punches are stored (and copied) but not listed.
    assert_eq!(copied_count, 65, "60 listed punches copied before, 5 new ones once");

    // New rows on PostgreSQL continue after the copied ids and seqs.
    punches(&target, a.id, &["3"], 0..1).await;
    let (_, rows) = target.list_transactions(&filter, ALL).await.unwrap();
    let newest = rows.iter().max_by_key(|r| r.id).unwrap();
    assert_eq!((newest.id, newest.seq), (76, 66));
    // And new elevator levels after the copied ones.
    let next = target.create_ele_level("Roof", always.id).await.unwrap();
    assert_eq!(next.id, lift_level.id + 1);
}
