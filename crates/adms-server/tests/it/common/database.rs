//! The database of a test: the suite runs on the engine `ADMS_TEST_DATABASE` names (`sqlite`,
//! the default, or `postgres`), and every test folder has one database, shared by every
//! process started on that folder (restarts, replicas, the CLI).
//!
//! On SQLite it is `adms.db` in the folder. On PostgreSQL, the first use of a folder creates a
//! fresh database on `adms_store::testing::admin_url()` (reaped once the folder is gone) and a
//! master key (a PostgreSQL database has no key file beside it), and records both in
//! `adms-test-database` in the folder; later uses read them back.
//!
//! Tests read the database straight through [`Database`]: the same SQL on both engines (`$1`
//! placeholders, no engine-specific functions).

use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::postgres::PgRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{ConnectOptions, Connection, PgConnection, SqliteConnection};

/// The database engine of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The engine every server test runs on: `ADMS_TEST_DATABASE=postgres`, else SQLite.
pub fn engine() -> Engine {
    match std::env::var("ADMS_TEST_DATABASE").as_deref() {
        Err(_) | Ok("" | "sqlite") => Engine::Sqlite,
        Ok("postgres" | "postgresql") => Engine::Postgres,
        Ok(other) => panic!("ADMS_TEST_DATABASE={other}: expected `sqlite` or `postgres`"),
    }
}

/// Ends a test that is about SQLite itself (its files, their modes, their bytes) when the suite
/// runs on another engine, saying so on stderr: `SQLite-only (<test>): <reason>`.
#[macro_export]
macro_rules! sqlite_only {
    ($reason:expr) => {
        if $crate::common::engine() != $crate::common::Engine::Sqlite {
            $crate::common::database::skipped($reason);
            return;
        }
    };
}

/// Ends a story about PostgreSQL itself (several processes on one database, connections it
/// drops) in the suite's SQLite run: it makes its own PostgreSQL database whatever the suite's
/// engine, so the PostgreSQL run (`ADMS_TEST_DATABASE=postgres`, part of CI) is enough.
#[macro_export]
macro_rules! postgres_run_only {
    ($reason:expr) => {
        if $crate::common::engine() != $crate::common::Engine::Postgres {
            $crate::common::database::skipped_as("PostgreSQL run only", $reason);
            return;
        }
    };
}

/// Ends, in the suite's PostgreSQL run, a story about a layer above the store whose behaviour
/// does not depend on the engine (the capture writer, the console in a browser): the store calls
/// under it are tested on both engines by the store's own tests, so running it in both server
/// runs would only add CI time.
#[macro_export]
macro_rules! sqlite_run_only {
    ($reason:expr) => {
        if $crate::common::engine() != $crate::common::Engine::Sqlite {
            $crate::common::database::skipped_as("SQLite run only", $reason);
            return;
        }
    };
}

/// Says that the current test stopped because it is SQLite-only: on stderr itself, not through
/// `eprintln!`, so that the line shows even though the test passes (the test harness keeps a
/// passing test's printed output to itself).
pub fn skipped(reason: &str) {
    skipped_as("SQLite-only", reason);
}

/// Says that the current test stopped, and why (`what`: the kind of test it is).
pub fn skipped_as(what: &str, reason: &str) {
    use std::io::Write as _;
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let line = format!("{what} ({test}): {reason}; skipped on {:?}\n", engine());
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Where a PostgreSQL test database's URL and master key are recorded in its folder.
const RECORD: &str = "adms-test-database";

/// A value bound to a `$n` placeholder.
#[derive(Debug, Clone)]
pub enum Bind {
    Text(String),
    Int(i64),
}

impl From<&str> for Bind {
    fn from(value: &str) -> Bind {
        Bind::Text(value.to_owned())
    }
}

impl From<&String> for Bind {
    fn from(value: &String) -> Bind {
        Bind::Text(value.clone())
    }
}

impl From<i64> for Bind {
    fn from(value: i64) -> Bind {
        Bind::Int(value)
    }
}

/// The database of one test folder.
#[derive(Debug, Clone)]
pub struct Database {
    dir: PathBuf,
    url: String,
    /// The master key the harness generated (PostgreSQL only).
    secret_key: Option<String>,
}

enum Conn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl Database {
    /// The database of `dir`: on PostgreSQL, created (with its master key) by the first call
    /// for `dir`, read back from `dir` by every later one.
    pub fn of(dir: &Path) -> Database {
        match engine() {
            Engine::Sqlite => {
                Database { dir: dir.to_owned(), url: format!("sqlite://{}/adms.db", dir.display()), secret_key: None }
            }
            Engine::Postgres => {
                let record = dir.join(RECORD);
                if let Ok(text) = std::fs::read_to_string(&record) {
                    let mut lines = text.lines();
                    let url = lines.next().expect("recorded URL").to_owned();
                    let key = lines.next().expect("recorded key").to_owned();
                    return Database { dir: dir.to_owned(), url, secret_key: Some(key) };
                }
                let owner = dir.to_owned();
                // Callers are sync (Server::start) inside a test's runtime: create it on a thread
                // with its own.
                let url = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                    runtime.block_on(adms_store::testing::create_for_dir(&owner))
                })
                .join()
                .expect("create the test database");
                let key = adms_vault::SecretKey::generate().to_base64();
                std::fs::write(&record, format!("{url}\n{key}\n")).expect("record the test database");
                Database { dir: dir.to_owned(), url, secret_key: Some(key) }
            }
        }
    }

    /// `sqlite://…` or `postgres://…`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn engine(&self) -> Engine {
        if self.url.starts_with("sqlite:") { Engine::Sqlite } else { Engine::Postgres }
    }

    /// The master key the server holds when the test gives none: on SQLite the key file the
    /// server generated beside the database, on PostgreSQL the one the harness generated.
    pub fn master_key(&self) -> adms_vault::SecretKey {
        let text = match &self.secret_key {
            Some(key) => key.clone(),
            None => std::fs::read_to_string(self.dir.join("adms.db.key")).expect("the key file"),
        };
        text.trim().parse().expect("a master key")
    }

    /// The `adms-bridge` binary set up for this database: `ADMS_DATABASE_URL`, on PostgreSQL
    /// the harness's `ADMS_SECRET_KEY` (a test's own env, set after, overrides it), no config
    /// file, and none of the harness's own variables (every `ADMS_*` variable is configuration
    /// to the server, which refuses unknown ones).
    /// What [`Database::command`] sets for the server, as `(variable, value)` pairs: for a
    /// server started in the test's own process ([`crate::common::Server::in_process`]).
    pub fn server_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("ADMS_DATABASE_URL", self.url.clone())];
        if let Some(key) = &self.secret_key {
            env.push(("ADMS_SECRET_KEY", key.clone()));
        }
        env
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_adms-bridge"));
        cmd.env("ADMS_DATABASE_URL", &self.url)
            .env_remove("ADMS_CONFIG")
            .env_remove("ADMS_TEST_DATABASE")
            .env_remove("ADMS_TEST_POSTGRES_URL");
        if let Some(key) = &self.secret_key {
            cmd.env("ADMS_SECRET_KEY", key);
        }
        cmd
    }

    async fn connect(&self, read_only: bool) -> Conn {
        match self.engine() {
            Engine::Sqlite => Conn::Sqlite(
                SqliteConnectOptions::new()
                    .filename(self.dir.join("adms.db"))
                    .read_only(read_only)
                    .connect()
                    .await
                    .expect("open the SQLite database"),
            ),
            Engine::Postgres => {
                Conn::Postgres(PgConnection::connect(&self.url).await.expect("connect to the PostgreSQL database"))
            }
        }
    }

    /// Every row `sql` returns, as `T` (a tuple of `i64`, `String`, `Vec<u8>`, `bool`, …).
    pub async fn fetch_all<T>(&self, sql: &'static str, binds: &[Bind]) -> Vec<T>
    where
        T: Send + Unpin + for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow>,
    {
        match self.connect(true).await {
            Conn::Sqlite(mut conn) => {
                let mut query = sqlx::query_as::<_, T>(sql);
                for bind in binds {
                    query = match bind.clone() {
                        Bind::Text(v) => query.bind(v),
                        Bind::Int(v) => query.bind(v),
                    };
                }
                query.fetch_all(&mut conn).await
            }
            Conn::Postgres(mut conn) => {
                let mut query = sqlx::query_as::<_, T>(sql);
                for bind in binds {
                    query = match bind.clone() {
                        Bind::Text(v) => query.bind(v),
                        Bind::Int(v) => query.bind(v),
                    };
                }
                query.fetch_all(&mut conn).await
            }
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The row `sql` returns, if any; panics on more than one.
    pub async fn fetch_optional<T>(&self, sql: &'static str, binds: &[Bind]) -> Option<T>
    where
        T: Send + Unpin + for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow>,
    {
        let mut rows = self.fetch_all(sql, binds).await;
        assert!(rows.len() <= 1, "{sql}: {} rows", rows.len());
        rows.pop()
    }

    /// The one integer `sql` returns (`COUNT(*)`, an id).
    pub async fn scalar_i64(&self, sql: &'static str, binds: &[Bind]) -> i64 {
        self.fetch_optional::<(i64,)>(sql, binds).await.unwrap_or_else(|| panic!("{sql}: no row")).0
    }

    /// Runs a change (a test setting up what an older version or a crash left behind); the
    /// rows it affected.
    pub async fn execute(&self, sql: &'static str, binds: &[Bind]) -> u64 {
        match self.connect(false).await {
            Conn::Sqlite(mut conn) => {
                let mut query = sqlx::query(sql);
                for bind in binds {
                    query = match bind.clone() {
                        Bind::Text(v) => query.bind(v),
                        Bind::Int(v) => query.bind(v),
                    };
                }
                query.execute(&mut conn).await.map(|r| r.rows_affected())
            }
            Conn::Postgres(mut conn) => {
                let mut query = sqlx::query(sql);
                for bind in binds {
                    query = match bind.clone() {
                        Bind::Text(v) => query.bind(v),
                        Bind::Int(v) => query.bind(v),
                    };
                }
                query.execute(&mut conn).await.map(|r| r.rows_affected())
            }
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}
