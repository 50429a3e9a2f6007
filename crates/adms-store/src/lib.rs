//! Durable storage for adms-bridge: the only crate that contains SQL.
//!
//! SQLite is the embedded default (WAL, `synchronous=FULL`, writes under `BEGIN IMMEDIATE`).
//! The hot path, punches, goes through [`PunchWriter`]: concurrent device uploads are coalesced
//! into one transaction and each caller is answered only after that transaction committed, so a
//! device never gets `OK` for rows that are not durable. Everything else a device sends is
//! written by the caller's own short transaction.
//!
//! The SQL is written for SQLite and, where PostgreSQL reads the same text, for both: `$N`
//! placeholders, `ON CONFLICT`, `CASE` rather than SQLite's scalar `MIN`/`MAX`. What differs
//! per engine is gathered where it can be (`sql`: list binding) or marked SQLite-only where it
//! stands (the punch writer, JSON row unpacking, `BEGIN IMMEDIATE`, the migrations' triggers).

// First: their macros are the SQL fragments and the per-engine expansion the other modules'
// statements are built with.
#[macro_use]
mod backend;
#[macro_use]
mod sql;

pub mod access;
pub mod access_events;
mod access_writer;
mod audit;
mod auth;
pub mod commands;
mod console;
pub mod cvsecurity;
mod device_events;
mod devices;
mod ele_levels;
mod error;
pub mod events;
mod health;
mod level_members;
pub mod live_punches;
pub mod maintenance;
mod migrate_data;
mod postgres;
mod punches;
mod queries;
mod quotas;
pub mod roster;
pub mod roster_sync;
pub mod sealed;
mod sqlite;
pub mod templates;
#[cfg(feature = "testing")]
pub mod testing;
mod trust;
mod uploads;
pub mod visits;
pub mod webhook_queries;
pub mod webhooks;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use backend::{Db, PgDb, SqliteDb};

use adms_vault::{Sealer, Vault};

pub use access_writer::AccessWriterMetrics;
pub use adms_model::{Approval, CommandState, Presence, TokenKind};
pub use audit::{AuditEntry, AuditFilter, NewAuditEntry};
pub use auth::{ApiToken, ApiUser, BootstrapOutcome, LAST_ADMIN, ROLES, UserChange};
pub use commands::{
    CommandPolicy, CommandResultRow, CommandRow, CommandWatch, DueCommand, EnqueueOutcome, Enqueued, NewCommand,
    ResultOutcome, TakenCommands,
};
pub use console::{ConsoleDevice, ConsoleSession, DeviceListFilter, DevicePunch, DeviceState, FleetCounts, HeldBy};
pub use device_events::{OfflineCheck, PresenceCandidate, SeenAgain};
pub use devices::{COUNTED_TABLES, Device, DeviceActivity, DeviceFacts, DeviceInfoUpdate, HandshakeUpdate, NewDevice};
pub use ele_levels::EleLevel;
pub use error::{ErrorKind, StoreError};
pub use health::{CensusDevice, CommandCensus, DeviceCensus, MigrationState};
pub use live_punches::{LiveBatch, LiveFilter, LivePunch, PunchFollower};
pub use maintenance::{Backup, Restored};
pub use migrate_data::MigrationReport;
pub use punches::{NewPunch, PunchBatch, PunchWriter, RejectedLine, Stored, WriterMetrics};
pub use queries::{
    Page, RejectedLineRow, TerminalFilter, TerminalRow, TransactionFilter, TransactionOrder, TransactionRow,
};
pub use quotas::{Quota, QuotaKind};
pub use sqlite::punch_writer::insert_new_punches;
pub use trust::{AdoptionPolicy, UserAdoption};
pub use uploads::{
    AccessEvent, AttPhotoUpload, BiometricTemplate, DeviceRecord, OperationLog, OperlogBatch, RawUpload, UserPhoto,
    UserRow,
};

/// Current time as Unix microseconds, the unit of every `*_at` column.
pub fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// PostgreSQL connections for the outbox's bookkeeping ([`backend::PgDb::delivery_pool`]): a
/// dispatcher uses two at once (its claims, its completions), plus one for an operator's
/// resend or lease sweep.
const DELIVERY_CONNECTIONS: u32 = 4;

/// Tunables for opening the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections for readers and short writers (the punch writer has its own).
    pub max_connections: u32,
    /// How long a writer waits for SQLite's write lock before failing.
    pub busy_timeout: Duration,
    /// Before migrations run on an existing SQLite database that has some pending, copy it to
    /// `<database>.before-<version>` ([`Store::migration_backup`] says where).
    pub backup_before_migrate: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { max_connections: 8, busy_timeout: Duration::from_secs(10), backup_before_migrate: false }
    }
}

/// Handle to the database, cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    punch_writer: PunchWriter,
    /// `rtlog` events, by group commit.
    access_writer: access_writer::AccessWriter,
    /// The keys personal data and credentials are sealed with; set once, after the server
    /// checked the master key against the database ([`Store::seal_with`]). Unset: nothing is
    /// sealed (an in-memory database started without a key).
    vault: Arc<OnceLock<Vault>>,
    /// The shared `<database>.in-use` lock of a SQLite file, held while any clone lives (see
    /// [`maintenance::restore`]).
    _in_use: Option<Arc<std::fs::File>>,
    /// Where the database was copied before this open migrated it.
    migration_backup: Option<PathBuf>,
}

impl Store {
    /// Opens the database at `url` and runs the embedded migrations: `sqlite://path` or
    /// `sqlite::memory:` (created if missing) or `postgres://user@host/db` (the database must
    /// exist). Starts the punch writer.
    pub async fn open(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        let vault = Arc::new(OnceLock::new());
        if url.starts_with("sqlite:") {
            Store::open_sqlite(url, options, vault).await
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Store::open_postgres(url, options, vault).await
        } else {
            Err(StoreError::UnsupportedUrl(redact_url(url)))
        }
    }

    async fn open_sqlite(url: &str, options: StoreOptions, vault: Arc<OnceLock<Vault>>) -> Result<Store, StoreError> {
        create_private_files(url)?;
        // Held until the pools are open and the migrations ran (dropped at the end of `open`).
        let _startup = lock_for_startup(url).await?;
        let in_use = match database_path(url) {
            Some(path) => Some(Arc::new(maintenance::hold_in_use(path).await?)),
            None => None,
        };
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: in WAL mode NORMAL may lose the last commits on power loss; a device is told
            // OK only once its rows survive that.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // What an update or delete replaces is overwritten, not left in free space: values
            // sealed in place (`sealed`) must not survive in the clear in the file's free pages.
            .pragma("secure_delete", "ON")
            .busy_timeout(options.busy_timeout)
            .statement_cache_capacity(256)
            .disable_statement_logging();
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .min_connections(1)
            .connect_with(connect.clone())
            .await?;
        let applied = maintenance::sqlite_applied(&mut *pool.acquire().await?).await?;
        let schema = maintenance::schema_state(&applied, &maintenance::SQLITE_MIGRATIONS)?;
        maintenance::log_newer_expansions(schema);
        let migration_backup = match database_path(url) {
            Some(path) if options.backup_before_migrate => {
                maintenance::backup_before_migrating(&pool, path, schema).await?
            }
            _ => None,
        };
        maintenance::SQLITE_MIGRATIONS.run(&pool).await?;
        // Delivery state may lose its last commits on power loss (never on a process crash: WAL
        // frames are written before the commit returns): the worst case is a webhook sent again
        // with the same id, which at-least-once delivery allows anyway. Not syncing them keeps
        // thousands of claims and completions per second from competing with the punch writer
        // for fsyncs; the next FULL commit syncs their frames too.
        let delivery_pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(connect.clone().synchronous(SqliteSynchronous::Normal))
            .await?;
        let (path, in_memory) = (connect.get_filename().to_owned(), is_in_memory(url));
        let write_turns = backend::WriteTurns::new(options.busy_timeout);
        let writer_turns = write_turns.clone();
        let punch_writer = PunchWriter::start_sqlite(
            move || sqlite::punch_writer::SqliteGroupWriter::open(&path, in_memory, options.busy_timeout, writer_turns),
            Arc::clone(&vault),
        )
        .await?;
        let db = Db::Sqlite(SqliteDb { pool, delivery_pool, write_turns });
        Ok(Store {
            access_writer: access_writer::AccessWriter::start(db.clone(), Arc::clone(&vault)),
            db,
            punch_writer,
            vault,
            _in_use: in_use,
            migration_backup,
        })
    }

    async fn open_postgres(url: &str, options: StoreOptions, vault: Arc<OnceLock<Vault>>) -> Result<Store, StoreError> {
        let connect = PgConnectOptions::from_str(url)?
            .application_name("adms-bridge")
            // Statements are logged by our own spans; sqlx's would log every punch group.
            .disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .min_connections(1)
            .acquire_timeout(backend::PG_ACQUIRE_TIMEOUT)
            .connect_with(connect.clone())
            .await?;
        // sqlx's migrator holds a PostgreSQL advisory lock while it runs, so processes starting
        // together migrate one after another.
        maintenance::schema_state(&maintenance::postgres_applied(&pool).await?, &maintenance::POSTGRES_MIGRATIONS)?;
        maintenance::POSTGRES_MIGRATIONS.run(&pool).await?;
        // Again once migrated: a newer release starting meanwhile may have migrated first.
        let schema =
            maintenance::schema_state(&maintenance::postgres_applied(&pool).await?, &maintenance::POSTGRES_MIGRATIONS)?;
        maintenance::log_newer_expansions(schema);
        // Opened as needed: a process that never delivers (role `device,api`) opens none.
        let delivery_pool = PgPoolOptions::new()
            .max_connections(DELIVERY_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(backend::PG_ACQUIRE_TIMEOUT)
            .connect_lazy_with(connect.clone().options(PgDb::DELIVERY_SETTINGS));
        let punch_writer = PunchWriter::start_postgres(connect, Arc::clone(&vault));
        let db = Db::Postgres(PgDb { pool, delivery_pool });
        let access_writer = access_writer::AccessWriter::start(db.clone(), Arc::clone(&vault));
        Ok(Store { db, punch_writer, access_writer, vault, _in_use: None, migration_backup: None })
    }

    /// From now on, every clone of this store (and its punch writer) seals and opens the
    /// sealed columns ([`sealed`]) with `vault`. Set once: a second call is refused.
    pub fn seal_with(&self, vault: Vault) -> Result<(), StoreError> {
        self.vault.set(vault).map_err(|_| StoreError::Conflict("the store's vault is already set".into()))
    }

    /// How this store seals its columns.
    pub fn sealer(&self) -> Sealer<'_> {
        Sealer(self.vault.get())
    }

    /// The punch writer (group commit).
    pub fn punch_writer(&self) -> &PunchWriter {
        &self.punch_writer
    }

    /// What the `rtlog` writers (group commit) did.
    pub fn access_writer_metrics(&self) -> &AccessWriterMetrics {
        self.access_writer.metrics()
    }

    /// Closes the pool. Punch batches already queued are still written: the writer task ends
    /// once every handle to it is dropped.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite(db) => {
                db.delivery_pool.close().await;
                db.pool.close().await;
            }
            Db::Postgres(db) => {
                db.delivery_pool.close().await;
                db.pool.close().await;
            }
        }
    }

    /// Which engine this store runs on.
    pub fn engine(&self) -> Engine {
        match &self.db {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    /// Where the database was copied before this open applied pending migrations, if it was.
    pub fn migration_backup(&self) -> Option<&Path> {
        self.migration_backup.as_deref()
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }
}

/// The database engine of a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

/// The file of a `sqlite://PATH` URL (`None` for an in-memory database).
pub fn database_path(url: &str) -> Option<&Path> {
    if is_in_memory(url) {
        return None;
    }
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(':')).then(|| Path::new(path))
}

/// The file of a `sqlite://PATH` URL; `None` for an in-memory database and for every other
/// kind of URL.
pub fn sqlite_file(url: &str) -> Option<&Path> {
    if url.starts_with("sqlite:") { database_path(url) } else { None }
}

/// Whether a `sqlite:` URL names an in-memory database (`sqlite::memory:`, `?mode=memory`).
fn is_in_memory(url: &str) -> bool {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    path.is_empty() || path == ":memory:" || query.split('&').any(|p| p == "mode=memory")
}

/// Creates the database's folder (mode 0700) and, when missing, the database file itself
/// (mode 0600) before SQLite opens it: SQLite gives its `-wal` and `-shm` files the mode of the
/// database file, so nothing of the database is ever readable by other local users. Existing
/// files and folders keep the mode the operator gave them.
fn create_private_files(url: &str) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let Some(path) = database_path(url) else {
        return Ok(());
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| StoreError::Io(parent.display().to_string(), e))?;
    }
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Io(path.display().to_string(), e)),
    }
}

/// An exclusive lock on `<database>.startup-lock`, so that processes starting at the same
/// moment on one database file (replicas, a restart racing a supervisor) create it, switch it to
/// WAL and migrate it one after another. sqlx's migrator takes no lock on SQLite: the loser of
/// that race would fail on a table the winner had just created. The lock file stays (removing
/// it could let a third process lock a file the second no longer sees).
async fn lock_for_startup(url: &str) -> Result<Option<std::fs::File>, StoreError> {
    let Some(path) = database_path(url) else {
        return Ok(None);
    };
    let lock_path = format!("{}.startup-lock", path.display());
    let locked = tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&lock_path)?;
        // Blocks while another process is starting: at most the time its migrations take.
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| StoreError::Io(format!("{}.startup-lock", path.display()), std::io::Error::other(e)))?;
    locked.map(Some).map_err(|e| StoreError::Io(format!("{}.startup-lock", path.display()), e))
}

/// A database URL with any password removed, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// SHA-256 of some bytes; used for de-duplication keys and token hashes.
pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}
