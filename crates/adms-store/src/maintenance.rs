//! Looking after the database itself: which migrations it has compared with the ones this
//! binary knows (a newer database is refused, naming the migration it needs), SQLite backups
//! (`VACUUM INTO` a new file, checked with `integrity_check`), the backup taken before pending
//! migrations run, restore, and the `<database>.in-use` lock that tells a restore whether a
//! process has the database open.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::{Store, StoreError, sqlite_file};

/// The migrations this binary applies on SQLite.
pub static SQLITE_MIGRATIONS: LazyLock<Migrator> =
    LazyLock::new(|| newer_tolerant(sqlx::migrate!("../../migrations/sqlite")));
/// The migrations this binary applies on PostgreSQL.
pub static POSTGRES_MIGRATIONS: LazyLock<Migrator> =
    LazyLock::new(|| newer_tolerant(sqlx::migrate!("../../migrations/postgres")));

/// sqlx refuses to run when the database recorded a migration it does not know. During a
/// rolling upgrade that is the normal case for the older release's processes (a newer one
/// migrated first), so the decision is [`schema_state`]'s, by the expand/contract rule, and
/// sqlx's check is off.
fn newer_tolerant(mut migrator: Migrator) -> Migrator {
    migrator.set_ignore_missing(true);
    migrator
}

/// How a contract migration's description begins (its file is `NNNN_contract_….sql`): it
/// removes or changes what earlier releases use, so they must not run on a database that has
/// it (`migrations/README.md`). Every other migration is an expansion, which they run on.
const CONTRACT_PREFIX: &str = "contract";

/// A migration recorded in a database's `_sqlx_migrations`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct Applied {
    pub(crate) version: i64,
    pub(crate) description: String,
}

/// What a database's recorded migrations mean for this binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SchemaState {
    /// Migrations recorded (0: a new, empty database).
    pub(crate) applied: usize,
    /// Migrations this binary knows that the database does not have yet.
    pub(crate) pending: usize,
    /// Expansions a newer release applied that this binary does not know: it runs on the
    /// expanded schema (a rolling upgrade, or a roll-back) and migrates nothing.
    pub(crate) newer_expansions: usize,
}

/// The highest migration version this binary knows.
fn latest_known(migrator: &Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Compares what a database recorded with what `migrator` knows. Migrations recorded that this
/// binary does not know were applied by a newer release: expansions only, this release runs on
/// that schema (the expand/contract rule keeps it usable by the previous release); a contract
/// migration among them, or migrations of this binary still missing below them, mean the
/// database is no longer one this release may run on (sqlx alone would only say "missing").
pub(crate) fn schema_state(applied: &[Applied], migrator: &Migrator) -> Result<SchemaState, StoreError> {
    let unknown: Vec<&Applied> = applied.iter().filter(|a| !migrator.version_exists(a.version)).collect();
    let pending = migrator.iter().filter(|m| !applied.iter().any(|a| a.version == m.version)).count();
    let refused = unknown
        .iter()
        .find(|a| a.description.starts_with(CONTRACT_PREFIX))
        .or_else(|| if pending > 0 { unknown.iter().max_by_key(|a| a.version) } else { None });
    if let Some(refused) = refused {
        return Err(StoreError::NewerDatabase {
            version: refused.version,
            description: refused.description.clone(),
            known: latest_known(migrator),
        });
    }
    Ok(SchemaState { applied: applied.len(), pending, newer_expansions: unknown.len() })
}

/// Says so when this binary runs on a schema a newer release expanded.
pub(crate) fn log_newer_expansions(schema: SchemaState) {
    if schema.newer_expansions > 0 {
        tracing::info!(
            migrations = schema.newer_expansions,
            "the database has expand migrations of a newer release; this release runs on them unchanged"
        );
    }
}

/// The migrations a SQLite database recorded (none when it has no migration table yet).
pub(crate) async fn sqlite_applied(conn: &mut SqliteConnection) -> Result<Vec<Applied>, StoreError> {
    let has_table: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
            .fetch_one(&mut *conn)
            .await?;
    if has_table == 0 {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as("SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(&mut *conn)
        .await?)
}

/// The migrations a PostgreSQL database recorded (none when it has no migration table yet).
pub(crate) async fn postgres_applied(pool: &sqlx::PgPool) -> Result<Vec<Applied>, StoreError> {
    let has_table: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(pool).await?;
    if !has_table {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as("SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await?)
}

/// What [`Store::backup_to`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub path: PathBuf,
    pub bytes: u64,
}

/// What [`restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The database file now holding the backup's contents.
    pub database: PathBuf,
    /// Where the database it replaced was moved (`None`: there was none).
    pub replaced: Option<PathBuf>,
    /// The newest migration the restored database has.
    pub version: i64,
}

impl Store {
    /// Writes a consistent copy of the database to `path` (SQLite: `VACUUM INTO`, a snapshot
    /// taken while writers go on), mode 0600, and checks the copy with `integrity_check`. An
    /// existing `path` is never overwritten. PostgreSQL: refused (use `pg_dump`).
    pub async fn backup_to(&self, path: &Path) -> Result<Backup, StoreError> {
        match self.db() {
            crate::backend::Db::Sqlite(db) => vacuum_into(db.pool(), path).await,
            crate::backend::Db::Postgres(_) => Err(StoreError::Unsupported(
                "backup works on SQLite databases; back up a PostgreSQL database with pg_dump",
            )),
        }
    }
}

impl Store {
    /// On PostgreSQL, `ANALYZE`s the hot tables that more than doubled since the planner last
    /// learnt their size, so that statements prepared while they were small are planned again
    /// (see `postgres::statistics`); returns the tables analyzed. SQLite plans every statement
    /// without size statistics: nothing to do.
    pub async fn refresh_statistics(&self) -> Result<Vec<&'static str>, StoreError> {
        let crate::backend::Db::Postgres(db) = self.db() else { return Ok(Vec::new()) };
        let grown = crate::postgres::statistics::grown_tables(&db.pool).await?;
        for table in &grown {
            crate::postgres::statistics::analyze(&db.pool, table).await?;
        }
        Ok(grown)
    }
}

/// `VACUUM INTO` a new file at `path`, then `integrity_check` on the copy.
pub(crate) async fn vacuum_into(pool: &SqlitePool, path: &Path) -> Result<Backup, StoreError> {
    create_new_private(path)?;
    let text = path.to_str().ok_or_else(|| StoreError::Invalid(format!("{} is not UTF-8", path.display())))?;
    let copied = async {
        sqlx::query("VACUUM INTO $1").bind(text).execute(pool).await?;
        integrity_check(path).await
    }
    .await;
    if let Err(error) = copied {
        let _ = std::fs::remove_file(path);
        return Err(error);
    }
    let bytes = std::fs::metadata(path).map_err(|e| StoreError::Io(path.display().to_string(), e))?.len();
    Ok(Backup { path: path.to_owned(), bytes })
}

/// Creates `path` empty with mode 0600 (what `VACUUM INTO` accepts as its target); an existing
/// file is an error, never overwritten.
fn create_new_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(StoreError::Conflict(format!("{} exists; it is not overwritten", path.display())))
        }
        Err(e) => Err(StoreError::Io(path.display().to_string(), e)),
    }
}

/// Opens an existing SQLite file (never creating one).
async fn connect_existing(path: &Path) -> Result<SqliteConnection, StoreError> {
    Ok(SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .disable_statement_logging()
        .connect()
        .await?)
}

/// `PRAGMA integrity_check` on the file at `path`: `ok`, or the problems it reports.
pub async fn integrity_check(path: &Path) -> Result<(), StoreError> {
    let mut conn = connect_existing(path).await?;
    let report: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&mut conn).await?;
    conn.close().await?;
    if report == ["ok"] {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{} fails SQLite's integrity check: {}",
            path.display(),
            report.into_iter().take(5).collect::<Vec<_>>().join("; ")
        )))
    }
}

/// Takes the database's `<database>.in-use` lock, shared, for as long as the returned file is
/// held: every process with a [`Store`] open holds it, so a restore (which needs it exclusively)
/// can tell that the database is in use.
pub(crate) async fn hold_in_use(path: &Path) -> Result<std::fs::File, StoreError> {
    let lock_path = in_use_path(path);
    let shown = lock_path.display().to_string();
    tokio::task::spawn_blocking(move || {
        let file = open_lock_file(&lock_path)?;
        // Blocks only while a restore runs.
        file.lock_shared()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| StoreError::Io(shown.clone(), std::io::Error::other(e)))?
    .map_err(|e| StoreError::Io(shown, e))
}

fn in_use_path(database: &Path) -> PathBuf {
    suffixed(database, ".in-use")
}

fn open_lock_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(path)
}

/// `path` with `suffix` appended to its file name.
pub(crate) fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Replaces the SQLite database of `url` with the backup at `from`: the backup must pass
/// `integrity_check` and be an adms-bridge database whose migrations this binary knows (older
/// is fine: the next start migrates it); the database must not be open in any process (its
/// `.in-use` lock). The replaced database is kept as `<database>.before-restore` (its WAL
/// checkpointed into it first), and the copy is written beside the target and renamed over it,
/// so a failure leaves no half-written database.
pub async fn restore(from: &Path, url: &str) -> Result<Restored, StoreError> {
    let Some(target) = sqlite_file(url) else {
        return Err(StoreError::Unsupported(
            "restore works on SQLite databases; restore a PostgreSQL database with pg_restore or psql",
        ));
    };
    if !from.is_file() {
        return Err(StoreError::Invalid(format!("{} is not a file", from.display())));
    }
    integrity_check(from).await?;
    let mut source = connect_existing(from).await?;
    let applied = sqlite_applied(&mut source).await?;
    let devices: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'devices'")
            .fetch_one(&mut source)
            .await?;
    if applied.is_empty() || devices == 0 {
        return Err(StoreError::Invalid(format!("{} is not an adms-bridge database", from.display())));
    }
    schema_state(&applied, &SQLITE_MIGRATIONS)?;
    let version = applied.iter().map(|a| a.version).max().unwrap_or(0);

    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        return Err(StoreError::Invalid(format!("{} does not exist", parent.display())));
    }
    let lock = open_lock_file(&in_use_path(target)).map_err(|e| StoreError::Io(target.display().to_string(), e))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(StoreError::Conflict(format!(
                "{} is in use by a running adms-bridge process: stop it first",
                target.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::Io(target.display().to_string(), e)),
    }

    let replaced = if target.exists() {
        let kept = suffixed(target, ".before-restore");
        if kept.exists() {
            return Err(StoreError::Conflict(format!(
                "{} exists from an earlier restore: move it away first",
                kept.display()
            )));
        }
        // Whatever the WAL still holds goes into the file that is kept, and no WAL of the old
        // database is left to be replayed onto the restored one.
        let mut old = connect_existing(target).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut old).await?;
        old.close().await?;
        rename(target, &kept)?;
        for side in ["-wal", "-shm"] {
            let file = suffixed(target, side);
            if file.exists() {
                rename(&file, &suffixed(&kept, side))?;
            }
        }
        Some(kept)
    } else {
        None
    };
    let partial = suffixed(target, ".restoring");
    let _ = std::fs::remove_file(&partial);
    create_new_private(&partial)?;
    let text = partial.to_str().ok_or_else(|| StoreError::Invalid(format!("{} is not UTF-8", partial.display())))?;
    let copied = async {
        sqlx::query("VACUUM INTO $1").bind(text).execute(&mut source).await?;
        integrity_check(&partial).await
    }
    .await;
    source.close().await?;
    if let Err(error) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::Io(partial.display().to_string(), e))?;
    rename(&partial, target)?;
    drop(lock);
    Ok(Restored { database: target.to_owned(), replaced, version })
}

fn rename(from: &Path, to: &Path) -> Result<(), StoreError> {
    std::fs::rename(from, to).map_err(|e| StoreError::Io(format!("{} -> {}", from.display(), to.display()), e))
}

/// Where the automatic backup before migrating a database to `version` goes: beside it,
/// `<database>.before-<version>` (a timestamp added if that exists from an earlier attempt).
pub(crate) fn pre_migration_path(database: &Path, version: i64) -> PathBuf {
    let path = suffixed(database, &format!(".before-{version:04}"));
    if path.exists() { suffixed(&path, &format!("-{}", crate::now_micros() / 1_000_000)) } else { path }
}

/// Takes the backup before pending migrations run on an existing SQLite database.
pub(crate) async fn backup_before_migrating(
    pool: &SqlitePool,
    database: &Path,
    state: SchemaState,
) -> Result<Option<PathBuf>, StoreError> {
    if state.applied == 0 || state.pending == 0 {
        return Ok(None);
    }
    let path = pre_migration_path(database, latest_known(&SQLITE_MIGRATIONS));
    vacuum_into(pool, &path).await?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(versions: &[i64]) -> Vec<Applied> {
        versions.iter().map(|&version| Applied { version, description: format!("m{version}") }).collect()
    }

    #[test]
    fn a_database_newer_than_the_binary_names_the_migration_it_needs() {
        let known = latest_known(&SQLITE_MIGRATIONS);
        let all: Vec<i64> = (1..=known).collect();
        let state = schema_state(&applied(&all), &SQLITE_MIGRATIONS).expect("current");
        assert_eq!(state.pending, 0);
        let older = schema_state(&applied(&all[..all.len() - 1]), &SQLITE_MIGRATIONS).expect("older is migrated");
        assert_eq!(older.pending, 1);
        let mut newer = applied(&all);
        newer.push(Applied { version: known + 1, description: "contract drop old columns".into() });
        let error = schema_state(&newer, &SQLITE_MIGRATIONS).expect_err("a newer contract is refused").to_string();
        assert!(error.contains(&format!("migration {}", known + 1)), "{error}");
        assert!(error.contains(&format!("up to {known}")), "{error}");
    }

    #[test]
    fn a_database_a_newer_release_only_expanded_is_run_on_without_migrating() {
        let known = latest_known(&SQLITE_MIGRATIONS);
        let mut newer = applied(&(1..=known).collect::<Vec<_>>());
        newer.push(Applied { version: known + 1, description: "access model".into() });
        newer.push(Applied { version: known + 2, description: "console indexes".into() });
        let state = schema_state(&newer, &SQLITE_MIGRATIONS).expect("expansions are run on");
        assert_eq!((state.pending, state.newer_expansions), (0, 2));
        // A contract among them, or one of this binary's own migrations still missing, is not.
        newer.push(Applied { version: known + 3, description: "contract drop devices alias".into() });
        let error = schema_state(&newer, &SQLITE_MIGRATIONS).expect_err("contract").to_string();
        assert!(error.contains(&format!("migration {}", known + 3)), "{error}");
        newer.pop();
        newer.remove(usize::try_from(known - 1).unwrap());
        let error = schema_state(&newer, &SQLITE_MIGRATIONS).expect_err("a gap below").to_string();
        assert!(error.contains(&format!("migration {}", known + 2)), "{error}");
    }

    #[test]
    fn no_shipped_migration_is_a_contract_yet_and_names_say_which_kind() {
        // The prefix is what older releases read: a contract must say so in its file name,
        // and an expansion must not start with the word by accident.
        for migrator in [&*SQLITE_MIGRATIONS, &*POSTGRES_MIGRATIONS] {
            for m in migrator.iter() {
                assert!(
                    !m.description.starts_with(CONTRACT_PREFIX),
                    "migration {} ({}) would be read as a contract by older releases",
                    m.version,
                    m.description
                );
            }
        }
    }
}
