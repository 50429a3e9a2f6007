//! What every store story starts from: a store on a fresh SQLite file or a fresh PostgreSQL
//! database, sealed as every server with a database runs it (so each story also reads and
//! writes through the seal).
//!
//! A story written for both engines is an `async fn story(engine: Engine)` opening its store
//! with [`fresh`], listed in [`on_both_engines!`], which makes one test per engine.

use std::ops::Deref;
use std::path::PathBuf;

pub use adms_store::Engine;
use adms_store::testing::FreshDatabase;
use adms_store::webhooks::EndpointSettings;
use adms_store::{BiometricTemplate, Store, StoreOptions, UserRow};
use adms_vault::{IndexKey, SecretKey, Vault};

/// One test per engine for each story: `on_both_engines!(story_a, story_b);` makes the modules
/// `story_a` and `story_b`, each with the tests `sqlite` and `postgres`.
#[macro_export]
macro_rules! on_both_engines {
    ($($story:ident),+ $(,)?) => {
        $(
            mod $story {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$story($crate::common::Engine::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$story($crate::common::Engine::Postgres).await
                }
            }
        )+
    };
}

/// A sealed store for one story, with what keeps its database alive.
pub struct TestStore {
    store: Store,
    url: String,
    vault: Vault,
    _place: Place,
}

#[allow(dead_code)]
enum Place {
    File(tempfile::TempDir),
    Database(FreshDatabase),
}

impl Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl TestStore {
    /// Another handle to the same database, as a second process would open it (its own pools
    /// and punch writer), sealed with the same keys.
    #[allow(dead_code)]
    pub async fn second_process(&self) -> Store {
        let store = Store::open(&self.url, options()).await.expect("open again");
        store.seal_with(self.vault.clone()).expect("a fresh handle has no vault");
        store
    }

    /// This handle as a plain `Store`.
    #[allow(dead_code)]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The database's URL.
    #[allow(dead_code)]
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Small pools: several PostgreSQL tests run at once against one server.
fn options() -> StoreOptions {
    StoreOptions { max_connections: 4, ..StoreOptions::default() }
}

/// A sealed store on a fresh database of `engine`.
pub async fn fresh(engine: Engine) -> TestStore {
    let vault = Vault::new(SecretKey::generate(), IndexKey::generate());
    let (url, place) = match engine {
        Engine::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            (format!("sqlite://{}", dir.path().join("story.db").display()), Place::File(dir))
        }
        Engine::Postgres => {
            let database = FreshDatabase::migrated().await;
            (database.url().to_owned(), Place::Database(database))
        }
    };
    let store = Store::open(&url, options()).await.expect("open");
    store.seal_with(vault.clone()).expect("a fresh store has no vault");
    TestStore { store, url, vault, _place: place }
}

/// A sealed store on `file` (a path relative to a new temporary folder, which the caller keeps
/// alive), with the file's path.
pub async fn open_at(file: &str) -> (tempfile::TempDir, PathBuf, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(file);
    let store = Store::open(&format!("sqlite://{}", path.display()), StoreOptions::default()).await.expect("open");
    store.seal_with(Vault::new(SecretKey::generate(), IndexKey::generate())).expect("a fresh store has no vault");
    (dir, path, store)
}

/// [`open_at`] without the path.
pub async fn open(file: &str) -> (tempfile::TempDir, Store) {
    let (dir, _, store) = open_at(file).await;
    (dir, store)
}

/// A `USER` line as a device reports it: no password or card, the default group and zones.
pub fn device_user(pin: &str, name: &str) -> UserRow {
    UserRow {
        pin: pin.into(),
        name: name.into(),
        name_raw: None,
        privilege: Some(0),
        password: String::new(),
        card: String::new(),
        group: "1".into(),
        time_zones: "0000000100000000".into(),
        verify: Some(-1),
        vice_card: String::new(),
        raw_line: format!("USER PIN={pin}\tName={name}").into_bytes(),
    }
}

/// A fingerprint template (`BIODATA`, type 1) of `finger`, whose text is `text`.
pub fn template(pin: &str, finger: i64, text: &str) -> BiometricTemplate {
    BiometricTemplate {
        pin: pin.into(),
        record_kind: "BIODATA",
        bio_type: 1,
        no: finger,
        index: 0,
        valid: Some(1),
        duress: Some(0),
        major_ver: Some(10),
        minor_ver: Some(0),
        format: "0".into(),
        size: Some(8),
        template: text.into(),
    }
}

/// An approved device `sn`, registered through the store; returns its id.
#[allow(dead_code)]
pub async fn approved_device(store: &TestStore, sn: &str) -> i64 {
    let new = adms_store::NewDevice { approval: Some(adms_store::Approval::Approved), sn, ..Default::default() };
    store.register_device(&new).await.unwrap_or_else(|e| panic!("register {sn}: {e}")).id
}

/// The device's `last_seq`.
#[allow(dead_code)]
pub async fn last_seq(store: &TestStore, sn: &str) -> i64 {
    store.device_by_sn(sn).await.unwrap_or_else(|e| panic!("device {sn}: {e}")).expect("the device").last_seq
}

/// A database of `engine` at the schema just before a migration (every migration whose name
/// sorts before `version`), for the stories of what that migration does to older data.
#[allow(dead_code)]
pub struct OldDatabase {
    dir: tempfile::TempDir,
    url: String,
    engine: Engine,
    _database: Option<FreshDatabase>,
}

#[allow(dead_code)]
impl OldDatabase {
    pub async fn before(engine: Engine, version: &str) -> OldDatabase {
        let dir = tempfile::tempdir().expect("tempdir");
        let (folder, url, database) = match engine {
            Engine::Sqlite => ("sqlite", format!("sqlite://{}", dir.path().join("old.db").display()), None),
            Engine::Postgres => {
                let database = FreshDatabase::create().await;
                ("postgres", database.url().to_owned(), Some(database))
            }
        };
        let old = dir.path().join("migrations");
        std::fs::create_dir(&old).expect("migrations folder");
        let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations").join(folder);
        for entry in std::fs::read_dir(&top).expect("the migrations") {
            let entry = entry.expect("a migration");
            let name = entry.file_name().into_string().expect("a UTF-8 name");
            if name.as_str() < version {
                std::fs::copy(entry.path(), old.join(&name)).expect("copy a migration");
            }
        }
        let database = OldDatabase { dir, url, engine, _database: database };
        let migrator = sqlx::migrate::Migrator::new(old.as_path()).await.expect("the old migrations");
        match engine {
            Engine::Sqlite => migrator.run(&mut database.sqlite().await).await.expect("old schema"),
            Engine::Postgres => migrator.run(&mut database.postgres().await).await.expect("old schema"),
        }
        database
    }

    /// Runs statements (constant test SQL, no parameters) on the old schema.
    pub async fn execute(&self, sql: &'static str) {
        match self.engine {
            Engine::Sqlite => {
                sqlx::raw_sql(sql).execute(&mut self.sqlite().await).await.expect("old data");
            }
            Engine::Postgres => {
                sqlx::raw_sql(sql).execute(&mut self.postgres().await).await.expect("old data");
            }
        }
    }

    /// The store on this database, migrated to the newest schema.
    pub async fn open(&self) -> Store {
        Store::open(&self.url, options()).await.expect("migrates")
    }

    async fn sqlite(&self) -> sqlx::SqliteConnection {
        use sqlx::Connection as _;
        let options =
            sqlx::sqlite::SqliteConnectOptions::new().filename(self.dir.path().join("old.db")).create_if_missing(true);
        sqlx::SqliteConnection::connect_with(&options).await.expect("the old SQLite file")
    }

    async fn postgres(&self) -> sqlx::PgConnection {
        use sqlx::Connection as _;
        sqlx::PgConnection::connect(&self.url).await.expect("the old PostgreSQL database")
    }
}

/// A webhook endpoint at `url` for every event type, delivering one event a request.
pub fn endpoint_settings(url: &str) -> EndpointSettings<'_> {
    EndpointSettings { url, description: "", event_types: None, timeout_ms: 5000, batch_max: 1, ordered: false }
}
