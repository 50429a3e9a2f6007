//! For tests only (feature `testing`): a fresh PostgreSQL database per test.
//!
//! Tests of both engines need a database nobody else writes: each gets its own, created on the
//! server `ADMS_TEST_POSTGRES_URL` names (default `postgres://postgres@127.0.0.1:5432/postgres`,
//! trust auth as in CI). [`FreshDatabase`] is dropped when its guard is; a database made for a
//! folder ([`create_for_dir`], the server tests: one database per test folder, shared by every
//! process started on it) lives until the folder is gone.
//!
//! A database is created empty ([`FreshDatabase::create`]: for tests of the migrations
//! themselves) or migrated ([`FreshDatabase::migrated`], [`create_for_dir`]): a copy of a template
//! database that has every migration of this build (`adms_test_template_<digest of the
//! migrations>`, made once by the first test that needs it, under an advisory lock). Copying it
//! costs what creating an empty database does; migrating each test's database cost about half a
//! second of every PostgreSQL test. A template is kept for later runs; one made for other
//! migrations is left too (a small database each, never reaped: another checkout's tests may be
//! copying it at that moment).
//!
//! Test databases are named `adms_test_<pid>_<nanos>_<n>` after the process that created them,
//! and a database made for a folder carries that folder as its comment (`COMMENT ON DATABASE`).
//! Whenever one is created, the test databases left behind are reaped: those whose creating
//! process is gone (a test run killed before its guards dropped) and those whose folder no
//! longer exists (a test finished and removed its temporary folder).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{Connection, Executor, PgConnection};

/// Every test database's name starts with this.
const PREFIX: &str = "adms_test_";
/// The comment of a database made for a folder: this, then the folder.
const DIR_COMMENT: &str = "adms-test dir: ";

/// The server tests create their databases on.
pub fn admin_url() -> String {
    std::env::var("ADMS_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database created for one test; dropped (with its connections) when this is.
#[derive(Debug)]
pub struct FreshDatabase {
    name: String,
    url: String,
}

impl FreshDatabase {
    /// Creates an empty database. Panics with what to do when PostgreSQL is not reachable: the
    /// PostgreSQL tests are part of the suite, not optional.
    pub async fn create() -> FreshDatabase {
        let (name, url) = create_database(None, Schema::Empty).await;
        FreshDatabase { name, url }
    }

    /// Creates a database with every migration applied, as the store's first open would leave
    /// it (and nothing else: no row the store's open might add). Panics like [`Self::create`].
    pub async fn migrated() -> FreshDatabase {
        let (name, url) = create_database(None, Schema::Migrated).await;
        FreshDatabase { name, url }
    }

    /// Its `postgres://` URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async; a thread with its own runtime keeps this usable from both.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin_url()).await.ok()?;
                drop_database(&mut conn, &name).await;
                conn.close().await.ok()
            })
        });
        let _ = dropped.join();
    }
}

/// Creates a migrated database (see [`FreshDatabase::migrated`]) that belongs to `dir` and
/// returns its `postgres://` URL. Nothing
/// drops it when the caller is done: it is reaped by a later creation once `dir` no longer
/// exists (or this process is gone). Panics like [`FreshDatabase::create`].
pub async fn create_for_dir(dir: &Path) -> String {
    create_database(Some(dir), Schema::Migrated).await.1
}

/// What a new test database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schema {
    Empty,
    Migrated,
}

/// Creates a test database (reaping the ones left behind first); its name and URL.
async fn create_database(dir: Option<&Path>, schema: Schema) -> (String, String) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let admin = admin_url();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let name =
        format!("{PREFIX}{}_{}_{}", std::process::id(), nanos % 1_000_000_000, NEXT.fetch_add(1, Ordering::Relaxed));
    let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {admin} ({e}); the tests need it: start it, or set \
             ADMS_TEST_POSTGRES_URL to a server where this user may create databases"
        )
    });
    reap(&mut conn).await;
    let create = match schema {
        Schema::Empty => format!("CREATE DATABASE \"{name}\""),
        Schema::Migrated => format!("CREATE DATABASE \"{name}\" TEMPLATE \"{}\"", migrated_template(&mut conn).await),
    };
    conn.execute(sqlx::AssertSqlSafe(create)).await.expect("create the test database");
    if let Some(dir) = dir {
        let comment = format!("{DIR_COMMENT}{}", dir.display()).replace('\'', "''");
        conn.execute(sqlx::AssertSqlSafe(format!("COMMENT ON DATABASE \"{name}\" IS '{comment}'")))
            .await
            .expect("record the test database's folder");
    }
    let _ = conn.close().await;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
    let url = format!("{base}/{name}");
    (name, url)
}

/// The name of the template with every migration of this build, created if missing: under an
/// advisory lock (test processes run side by side), migrated under another name and renamed
/// once complete, so a process killed half-way never leaves a template that looks whole.
async fn migrated_template(conn: &mut PgConnection) -> String {
    use std::hash::{Hash, Hasher};
    let migrations = &*crate::maintenance::POSTGRES_MIGRATIONS;
    let mut hasher = std::hash::DefaultHasher::new();
    for m in migrations.iter() {
        (m.version, &m.checksum[..]).hash(&mut hasher);
    }
    let name = format!("{PREFIX}template_{:016x}", hasher.finish());
    let exists = async |conn: &mut PgConnection| -> bool {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(conn)
            .await
            .expect("look for the template database")
    };
    if exists(conn).await {
        return name;
    }
    sqlx::query("SELECT pg_advisory_lock($1)").bind(TEMPLATE_LOCK).execute(&mut *conn).await.expect("template lock");
    if !exists(conn).await {
        let building = format!("{name}_building");
        drop_database(conn, &building).await;
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{building}\"")))
            .await
            .expect("create the template");
        let admin = admin_url();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
        let mut template = PgConnection::connect(&format!("{base}/{building}")).await.expect("connect to the template");
        migrations.run(&mut template).await.expect("migrate the template");
        template.close().await.expect("close the template");
        conn.execute(sqlx::AssertSqlSafe(format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\"")))
            .await
            .expect("name the template");
    }
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut *conn)
        .await
        .expect("template unlock");
    name
}

/// The advisory lock taken while the template is made (any number no other user of the test
/// server takes).
const TEMPLATE_LOCK: i64 = 0x0ad5_7e57_0001;

/// Drops the test databases nobody will use again: their creating process is gone, or the
/// folder they were made for is. Best effort: a database another process drops at the same
/// moment, or one still in use by a server being killed, is left to the next reaping.
async fn reap(conn: &mut PgConnection) {
    let Ok(databases) = sqlx::query_as::<_, (String, Option<String>)>(
        "SELECT datname::TEXT, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname LIKE 'adms\\_test\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    else {
        return;
    };
    for (name, comment) in databases {
        let creator_gone = creator_pid(&name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        let dir_gone = comment
            .as_deref()
            .and_then(|c| c.strip_prefix(DIR_COMMENT))
            .is_some_and(|dir| !PathBuf::from(dir).exists());
        if creator_gone || dir_gone {
            drop_database(conn, &name).await;
        }
    }
}

/// The process id in a test database's name (`adms_test_<pid>_…`).
fn creator_pid(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split('_').next()?.parse().ok()
}

async fn drop_database(conn: &mut PgConnection, name: &str) {
    let _ = conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))).await;
}
