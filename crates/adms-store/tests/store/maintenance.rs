//! The database itself: migrations newer than the binary, the key-name migration, backups,
//! the backup before migrating, and restore.

use std::path::{Path, PathBuf};

use adms_store::testing::FreshDatabase;
use adms_store::{NewDevice, Store, StoreOptions};
use sqlx::Connection as _;

use crate::common::Engine;

crate::on_both_engines!(
    a_database_with_a_newer_contract_migration_is_refused_naming_it,
    a_database_a_newer_release_expanded_is_run_on_unchanged,
    integration_keys_sharing_a_name_are_renamed_by_the_migration,
);

/// A database of `engine` with every migration before `below` applied (as an older release
/// left it), then `setup` run on it. Returns its URL and what keeps it alive.
async fn older_database(engine: Engine, below: &str, setup: &[&'static str]) -> (String, Keep) {
    let dir = tempfile::tempdir().unwrap();
    let folder = match engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    };
    let old = dir.path().join("migrations");
    std::fs::create_dir(&old).unwrap();
    let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations").join(folder);
    for entry in std::fs::read_dir(&top).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.as_str() < below {
            std::fs::copy(entry.path(), old.join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(old.as_path()).await.unwrap();
    match engine {
        Engine::Sqlite => {
            let path = dir.path().join("old.db");
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
            let mut conn = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
            migrator.run(&mut conn).await.unwrap();
            for sql in setup {
                sqlx::query(*sql).execute(&mut conn).await.unwrap();
            }
            conn.close().await.unwrap();
            (format!("sqlite://{}", path.display()), Keep::Dir(dir))
        }
        Engine::Postgres => {
            let database = FreshDatabase::create().await;
            let mut conn = sqlx::PgConnection::connect(database.url()).await.unwrap();
            migrator.run(&mut conn).await.unwrap();
            for sql in setup {
                sqlx::query(*sql).execute(&mut conn).await.unwrap();
            }
            conn.close().await.unwrap();
            (database.url().to_owned(), Keep::Database(dir, database))
        }
    }
}

#[allow(dead_code)]
enum Keep {
    Dir(tempfile::TempDir),
    Database(tempfile::TempDir, FreshDatabase),
}

/// A migration of a newer release, recorded as sqlx records it (the description is the file
/// name's words).
fn future_migration(description: &str) -> String {
    format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, '{description}', TRUE, '', 0)"
    )
}

async fn a_database_with_a_newer_contract_migration_is_refused_naming_it(engine: Engine) {
    // Every migration this binary has, plus a contract one it does not know.
    let (url, _keep) = older_database(engine, "9999", &[]).await;
    let store = Store::open(&url, StoreOptions::default()).await.expect("a current database opens");
    store.close().await;
    drop(store);
    let contract = future_migration("contract drop device aliases").leak();
    let (url, _keep) = older_database(engine, "9999", &[contract]).await;
    let error = Store::open(&url, StoreOptions::default()).await.expect_err("a newer database is refused").to_string();
    assert!(error.contains("migration 9999 (contract drop device aliases)"), "{error}");
    assert!(error.contains("newer adms-bridge"), "{error}");
}

/// The rolling upgrade's promise, this binary playing the older release: a newer release
/// expanded the schema (a new table, a new nullable column, recorded as its migration 9999);
/// this one opens it, says so, and its punch writer and reads keep working.
async fn a_database_a_newer_release_expanded_is_run_on_unchanged(engine: Engine) {
    let expansion = future_migration("future punch photos").leak();
    let (url, _keep) = older_database(
        engine,
        "9999",
        &[
            "CREATE TABLE future_photos (id BIGINT PRIMARY KEY, punch_id BIGINT REFERENCES punches (id))",
            "ALTER TABLE punches ADD COLUMN future_note TEXT",
            expansion,
        ],
    )
    .await;
    let store = Store::open(&url, StoreOptions::default()).await.expect("an expanded database is run on");
    let state = store.migration_state().await.unwrap();
    assert!(state.is_current(), "{state}");
    assert!(state.to_string().contains("expanded by a newer release"), "{state}");
    let device = store
        .register_device(&NewDevice {
            approval: Some(adms_store::Approval::Approved),
            sn: "EXPANDED1",
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = adms_store::PunchBatch::new(device.id);
    batch.punches.push(adms_store::NewPunch {
        pin: "7".into(),
        local_time: "2026-12-06 08:00:00".into(),
        state: "0".into(),
        verify: 1,
        work_code: "0".into(),
        extra: String::new(),
        time_zone: None,
        utc_time: None,
        mask_flag: None,
        temperature: None,
        raw_line: "7\t2026-12-06 08:00:00\t0\t1\t0".into(),
    });
    store.punch_writer().write(batch).await.unwrap();
    let (count, _) = store
        .list_transactions(&adms_store::TransactionFilter::default(), adms_store::Page { offset: 0, limit: 10 })
        .await
        .unwrap();
    assert_eq!(count, 1);
}

async fn integration_keys_sharing_a_name_are_renamed_by_the_migration(engine: Engine) {
    let (url, _keep) = older_database(
        engine,
        "0018",
        &[
            "INSERT INTO api_tokens (id, kind, name, token_sha256, created_at) VALUES \
             (1, 'integration', 'erp', 'k1', 1), (2, 'integration', 'erp', 'k2', 1), \
             (3, 'integration', 'erp', 'k3', 1), (4, 'integration', 'other', 'k4', 1), \
             (5, 'session', 'login', 's1', 1), (6, 'session', 'login', 's2', 1)",
            "INSERT INTO api_tokens (id, kind, name, token_sha256, created_at, revoked_at) VALUES \
             (7, 'integration', 'erp', 'k7', 1, 2)",
        ],
    )
    .await;
    let store = Store::open(&url, StoreOptions::default()).await.expect("migrates");
    let names: Vec<(i64, String)> = store.list_tokens().await.unwrap().into_iter().map(|t| (t.id, t.name)).collect();
    assert_eq!(
        names,
        [
            (1, "erp".to_owned()),
            (2, "erp (2)".to_owned()),
            (3, "erp (3)".to_owned()),
            (4, "other".to_owned()),
            (7, "erp".to_owned()),
        ],
        "the oldest keeps its name; revoked keys and sessions are left alone"
    );
    assert_eq!(store.revoke_token("erp").await.unwrap(), 1);
    assert_eq!(store.revoke_token("erp (3)").await.unwrap(), 1);
}

fn sqlite_url(dir: &Path) -> (String, PathBuf) {
    let path = dir.join("bridge.db");
    (format!("sqlite://{}", path.display()), path)
}

async fn with_device(store: &Store, sn: &str) {
    store.register_device(&NewDevice { sn, ..Default::default() }).await.unwrap();
}

/// A backup is a checked, consistent copy taken while the database is open; an existing file
/// is never overwritten; PostgreSQL is refused.
#[tokio::test]
async fn a_backup_is_a_checked_copy_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = sqlite_url(dir.path());
    let store = Store::open(&url, StoreOptions::default()).await.unwrap();
    with_device(&store, "B1").await;
    let target = dir.path().join("copy.db");
    let backup = store.backup_to(&target).await.expect("backup");
    assert_eq!(backup.path, target);
    assert!(backup.bytes > 0);
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
    adms_store::maintenance::integrity_check(&target).await.expect("the copy is sound");
    let error = store.backup_to(&target).await.expect_err("an existing file is kept").to_string();
    assert!(error.contains("exists"), "{error}");

    // The copy is a database of its own with the device.
    let copy = Store::open(&format!("sqlite://{}", target.display()), StoreOptions::default()).await.unwrap();
    assert!(copy.device_by_sn("B1").await.unwrap().is_some());
    copy.close().await;

    let pg = FreshDatabase::create().await;
    let store = Store::open(pg.url(), StoreOptions::default()).await.unwrap();
    let error = store.backup_to(&dir.path().join("pg.db")).await.expect_err("pg_dump instead").to_string();
    assert!(error.contains("pg_dump"), "{error}");
}

/// Pending migrations on an existing database: copied first when asked, beside it.
#[tokio::test]
async fn pending_migrations_are_preceded_by_a_backup_when_asked() {
    let (url, _keep) =
        older_database(Engine::Sqlite, "0018", &["INSERT INTO devices (sn, first_seen_at) VALUES ('OLD', 1)"]).await;
    let options = StoreOptions { backup_before_migrate: true, ..StoreOptions::default() };
    let store = Store::open(&url, options.clone()).await.expect("migrates");
    let backup = store.migration_backup().expect("a backup was taken").to_owned();
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("old.db.before-00"), "{name}");
    adms_store::maintenance::integrity_check(&backup).await.unwrap();
    let old = Store::open(&format!("sqlite://{}", backup.display()), StoreOptions::default()).await.unwrap();
    assert!(old.device_by_sn("OLD").await.unwrap().is_some());
    old.close().await;
    store.close().await;
    drop(store);
    // Nothing pending any more: no second backup. A new database has nothing to back up.
    let again = Store::open(&url, options.clone()).await.unwrap();
    assert_eq!(again.migration_backup(), None);
    let dir = tempfile::tempdir().unwrap();
    let fresh = Store::open(&sqlite_url(dir.path()).0, options).await.unwrap();
    assert_eq!(fresh.migration_backup(), None);
}

/// Restore replaces the database with a checked backup, keeps the replaced file, and refuses
/// while a process has the database open or when the file is not an adms-bridge database.
#[tokio::test]
async fn restore_replaces_the_database_and_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let (url, path) = sqlite_url(dir.path());
    let store = Store::open(&url, StoreOptions::default()).await.unwrap();
    with_device(&store, "BEFORE").await;
    let backup = dir.path().join("backup.db");
    store.backup_to(&backup).await.unwrap();
    with_device(&store, "AFTER").await;

    let error = adms_store::maintenance::restore(&backup, &url).await.expect_err("in use").to_string();
    assert!(error.contains("in use") && error.contains("stop it first"), "{error}");
    store.close().await;
    drop(store);

    let not_ours = dir.path().join("other.db");
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&not_ours).create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("CREATE TABLE t (x)").execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
    let error = adms_store::maintenance::restore(&not_ours, &url).await.expect_err("not ours").to_string();
    assert!(error.contains("not an adms-bridge database"), "{error}");
    std::fs::write(dir.path().join("junk.db"), b"not a database at all").unwrap();
    assert!(adms_store::maintenance::restore(&dir.path().join("junk.db"), &url).await.is_err());

    let restored = adms_store::maintenance::restore(&backup, &url).await.expect("restored");
    assert_eq!(restored.database, path);
    let kept = restored.replaced.expect("the old database is kept");
    assert!(kept.to_string_lossy().ends_with("bridge.db.before-restore"), "{}", kept.display());
    let store = Store::open(&url, StoreOptions::default()).await.unwrap();
    assert!(store.device_by_sn("BEFORE").await.unwrap().is_some());
    assert!(store.device_by_sn("AFTER").await.unwrap().is_none(), "the backup's contents");
    store.close().await;
    drop(store);
    let old = Store::open(&format!("sqlite://{}", kept.display()), StoreOptions::default()).await.unwrap();
    assert!(old.device_by_sn("AFTER").await.unwrap().is_some(), "the replaced database, WAL included");
    old.close().await;
    drop(old);
    let error = adms_store::maintenance::restore(&backup, &url).await.expect_err("kept file in the way").to_string();
    assert!(error.contains("before-restore"), "{error}");
}
