//! The two database engines behind [`Store`](crate::Store), and the macros that let a store
//! method be written once for both.
//!
//! [`Db`] is a closed enum: `Sqlite` (the embedded default) or `Postgres`. Callers keep one
//! concrete `Store`; nothing generic or `dyn` leaks out of the crate.
//!
//! A method body that reads the same on both engines is written once, inside [`on_db!`]:
//!
//! ```ignore
//! on_db!(self, |db| {
//!     Ok(sqlx::query_scalar("SELECT count(*) FROM devices").fetch_one(db.pool()).await?)
//! })
//! ```
//!
//! (It reads like a closure so that rustfmt formats the body; it is not one: `?` and `return`
//! act on the enclosing method.) The macro expands the body twice, once per engine, with `db` bound to that engine's
//! [`SqliteDb`] or [`PgDb`] (same method names: `pool()`, `begin()`, `begin_delivery()`), so the
//! body type-checks against each driver's concrete types. A single write statement outside a
//! transaction runs on `&mut *db.writer().await?` (on SQLite it waits for the writers' turn). Inside the body the per-dialect SQL
//! fragments resolve to that engine's text: `in_list!`, `list_rows!`, `upsert_ignore!`… (see
//! [`sqlite_dialect!`] and [`postgres_dialect!`]), and `dialect::` names that engine's helpers
//! (the functions written once with [`dual!`], and `list_param`).
//!
//! Functions that run inside a caller's transaction (`&mut Connection`) are written once inside
//! [`dual!`], which compiles them into a `sqlite` and a `postgres` module; [`sqlite_fns`] and
//! [`postgres_fns`] gather those modules so a body can call `dialect::insert_event_in(..)`.
//!
//! What cannot be shared (the punch writer, outbox claims, wake-ups) is written per engine in
//! its own module and chosen with a plain `match` on [`Db`].

use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

use crate::StoreError;

/// The engine a store runs on, with its pools.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    Sqlite(SqliteDb),
    Postgres(PgDb),
}

/// SQLite: one pool for readers and short writers (`BEGIN IMMEDIATE`), one without fsync per
/// commit for delivery bookkeeping (see `Store::open`), and the turns its writers take.
#[derive(Debug, Clone)]
pub(crate) struct SqliteDb {
    pub(crate) pool: SqlitePool,
    pub(crate) delivery_pool: SqlitePool,
    pub(crate) write_turns: WriteTurns,
}

impl SqliteDb {
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A write transaction: `BEGIN IMMEDIATE` takes SQLite's write lock up front, so a
    /// transaction that reads then writes never fails half-way on a lock upgrade. Waits for
    /// this process's turn first (see [`WriteTurns`]).
    #[track_caller]
    pub(crate) fn begin(&self) -> impl Future<Output = Result<SqliteWriteTx, StoreError>> + Send + '_ {
        let turn = self.write_turns.take();
        async move {
            let turn = turn.await?;
            Ok(InTurn { inner: self.pool.begin_with("BEGIN IMMEDIATE").await?, _turn: turn })
        }
    }

    /// A pooled connection for a single write statement (its own implicit transaction),
    /// holding this process's turn (see [`WriteTurns`]) until dropped.
    #[track_caller]
    pub(crate) fn writer(&self) -> impl Future<Output = Result<SqliteWriter, StoreError>> + Send + '_ {
        let turn = self.write_turns.take();
        async move {
            let turn = turn.await?;
            Ok(InTurn { inner: self.pool.acquire().await?, _turn: turn })
        }
    }

    /// A write transaction for delivery bookkeeping (no fsync per commit).
    #[track_caller]
    pub(crate) fn begin_delivery(&self) -> impl Future<Output = Result<SqliteWriteTx, StoreError>> + Send + '_ {
        let turn = self.write_turns.take();
        async move {
            let turn = turn.await?;
            Ok(InTurn { inner: self.delivery_pool.begin_with("BEGIN IMMEDIATE").await?, _turn: turn })
        }
    }
}

/// The order in which this process's SQLite writers take the database's write lock.
///
/// SQLite has one writer at a time, and a connection that finds the lock taken sleeps in its
/// busy handler (1, 2, 5 … 100 ms, then again) and polls. With a few writers that costs
/// nothing; with hundreds of devices writing at once (access controllers' events, first
/// contacts of a fleet) most of them sleep while the lock is free, each holding one of the
/// pool's connections: 1,000 controllers sending one event each got 185 events/s through
/// (BENCHMARKS.md, 2026-12-07). So writers queue here first, first come first served, and
/// only the one whose turn it is asks SQLite: the busy handler is left for other processes
/// (the command line against a running server). The punch writer's thread takes its turn too.
#[derive(Debug, Clone)]
pub(crate) struct WriteTurns {
    lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// How long a writer waits for its turn: the busy timeout, the same bound as before.
    patience: Duration,
}

/// One writer's turn: the next writer goes when it is dropped. A turn held long (every other
/// writer of the process waited meanwhile) is logged with where it was taken.
pub(crate) struct WriteTurn {
    _guard: tokio::sync::OwnedMutexGuard<()>,
    taken: std::time::Instant,
    by: &'static std::panic::Location<'static>,
}

/// A turn held longer than this is logged: a punch group or a request's transaction takes
/// milliseconds.
const LONG_TURN: Duration = Duration::from_millis(500);

impl Drop for WriteTurn {
    fn drop(&mut self) {
        let held = self.taken.elapsed();
        if held >= LONG_TURN {
            tracing::warn!(
                held_ms = held.as_millis() as u64,
                taken_at = %self.by,
                "a SQLite write held the write lock long; the process's other writers waited"
            );
        }
    }
}

impl WriteTurns {
    pub(crate) fn new(patience: Duration) -> WriteTurns {
        WriteTurns { lock: std::sync::Arc::new(tokio::sync::Mutex::new(())), patience }
    }

    /// Waits for this writer's turn, at most the busy timeout.
    #[track_caller]
    pub(crate) fn take(&self) -> impl Future<Output = Result<WriteTurn, StoreError>> + Send + 'static {
        let by = std::panic::Location::caller();
        let (lock, patience) = (std::sync::Arc::clone(&self.lock), self.patience);
        async move {
            let guard =
                tokio::time::timeout(patience, lock.lock_owned()).await.map_err(|_| StoreError::Timeout(patience))?;
            Ok(WriteTurn { _guard: guard, taken: std::time::Instant::now(), by })
        }
    }

    /// [`Self::take`] from a thread outside the async runtime (the punch writer's), without a
    /// bound: the turns ahead are each bounded (their statements hold the lock; their wait
    /// for a pooled connection has the pool's timeout).
    #[track_caller]
    pub(crate) fn take_blocking(&self) -> WriteTurn {
        let by = std::panic::Location::caller();
        let guard = std::sync::Arc::clone(&self.lock).blocking_lock_owned();
        WriteTurn { _guard: guard, taken: std::time::Instant::now(), by }
    }
}

/// A SQLite connection (`inner`: a transaction or a pooled connection) holding its writer's
/// turn until dropped. It reads as the connection it runs on (`&mut *tx`), as sqlx's
/// transaction does.
pub(crate) struct InTurn<C> {
    // Dropped before the turn: a transaction dropped unfinished is rolled back by sqlx.
    inner: C,
    _turn: WriteTurn,
}

/// A write transaction in its turn (see [`SqliteDb::begin`]).
pub(crate) type SqliteWriteTx = InTurn<sqlx::Transaction<'static, sqlx::Sqlite>>;

/// A pooled connection in its turn, for a single write statement (see [`SqliteDb::writer`]).
pub(crate) type SqliteWriter = InTurn<sqlx::pool::PoolConnection<sqlx::Sqlite>>;

impl SqliteWriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }
}

impl<C: std::ops::DerefMut<Target = sqlx::SqliteConnection>> std::ops::Deref for InTurn<C> {
    type Target = sqlx::SqliteConnection;

    fn deref(&self) -> &sqlx::SqliteConnection {
        &self.inner
    }
}

impl<C: std::ops::DerefMut<Target = sqlx::SqliteConnection>> std::ops::DerefMut for InTurn<C> {
    fn deref_mut(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.inner
    }
}

/// PostgreSQL: one pool. Concurrency is the engine's (row locks, `SKIP LOCKED`, conditional
/// updates), never a table lock.
#[derive(Debug, Clone)]
pub(crate) struct PgDb {
    pub(crate) pool: PgPool,
    /// The outbox's bookkeeping (claims, completions, lease expiry): a few connections whose
    /// sessions have [`Self::DELIVERY_SETTINGS`].
    pub(crate) delivery_pool: PgPool,
}

impl PgDb {
    /// The settings of [`Self::delivery_pool`]'s sessions (startup parameters): commits that do
    /// not wait for the WAL flush (see [`Self::begin_delivery`]), and statements outside a
    /// transaction on their cached generic plan (the claim of `postgres::outbox::
    /// claim_singles_at_once`, written so that its generic plan is the good one); transactions
    /// re-plan theirs.
    pub(crate) const DELIVERY_SETTINGS: [(&str, &str); 2] =
        [("synchronous_commit", "off"), ("plan_cache_mode", "force_generic_plan")];

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn delivery_pool(&self) -> &PgPool {
        &self.delivery_pool
    }

    /// A read-committed transaction.
    pub(crate) async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// A pooled connection for a single write statement (as SQLite's, without turns).
    pub(crate) async fn writer(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        Ok(self.pool.acquire().await?)
    }

    /// A transaction for delivery bookkeeping whose commit does not wait for the WAL flush
    /// (`synchronous_commit = off`, on the delivery pool's sessions only): as on SQLite, the
    /// worst a power loss does is send a webhook again under its same id.
    ///
    /// Its statements are planned for their parameters each time (`plan_cache_mode`): a claim's
    /// best plan walks the due index and stops at its `LIMIT`, which only a plan that sees the
    /// limit and `now` can know; the generic plan PostgreSQL settles on sorts the whole backlog
    /// (with 20,000 deliveries due: 23 ms against 0.4 ms, each claim). Planning costs well under
    /// a millisecond, once per claim or completion batch of up to 64 deliveries.
    /// One round trip: `BEGIN` and the setting travel as one simple query.
    pub(crate) async fn begin_delivery(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        Ok(self.delivery_pool.begin_with("BEGIN; SET LOCAL plan_cache_mode = force_custom_plan").await?)
    }
}

/// How long a PostgreSQL statement may wait for a connection from the pool.
pub(crate) const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite text of the per-dialect fragments and the `dialect` helpers. `$d` is a literal
/// `$` (macro-generated macros need it passed in).
macro_rules! sqlite_dialect {
    ($d:tt) => {
        /// `column IN (the list bound as parameter $n)`: a JSON array read by `json_each`
        /// (SQLite has no array parameter); bind it with `dialect::list_param`.
        #[allow(unused_macros)]
        macro_rules! in_list {
                                            ($d column:literal, $d param:literal) => {
                                                concat!($d column, " IN (SELECT value FROM json_each(", $d param, "))")
                                            };
                                        }
        /// The list bound as parameter `$n` as a table `alias (key, value)`: `key` is the
        /// element's place in the list (for `ORDER BY`).
        #[allow(unused_macros)]
        macro_rules! list_rows {
                                            ($d param:literal, $d alias:literal) => {
                                                concat!("json_each(", $d param, ") AS ", $d alias)
                                            };
                                        }
        /// Locks the rows a `SELECT` read until the transaction ends: nothing on SQLite, whose
        /// write transactions (`BEGIN IMMEDIATE`) hold the whole database.
        #[allow(unused_macros)]
        macro_rules! for_update {
            () => {
                ""
            };
        }
        /// [`for_update!`] for a row whose key does not change (rows referencing it can still
        /// be inserted meanwhile): nothing on SQLite.
        #[allow(unused_macros)]
        macro_rules! for_no_key_update {
            () => {
                ""
            };
        }
        #[allow(unused_imports)]
        use $crate::backend::sqlite_fns as dialect;
    };
}

/// The PostgreSQL text of the per-dialect fragments (see [`sqlite_dialect!`]).
macro_rules! postgres_dialect {
    ($d:tt) => {
        /// `column = ANY(the array bound as parameter $n)`.
        #[allow(unused_macros)]
        macro_rules! in_list {
                                    ($d column:literal, $d param:literal) => {
                                        concat!($d column, " = ANY(", $d param, ")")
                                    };
                                }
        /// The array bound as parameter `$n` as a table `alias (value, key)`, `key` counting
        /// from 1 in list order.
        #[allow(unused_macros)]
        macro_rules! list_rows {
                                    ($d param:literal, $d alias:literal) => {
                                        concat!("unnest(", $d param, ") WITH ORDINALITY AS ", $d alias, " (value, key)")
                                    };
                                }
        /// Locks the rows a `SELECT` read until the transaction ends.
        #[allow(unused_macros)]
        macro_rules! for_update {
            () => {
                " FOR UPDATE"
            };
        }
        /// Locks the rows a `SELECT` read against other writers of them, but not against
        /// inserts of rows that reference them (foreign keys take `FOR KEY SHARE`).
        #[allow(unused_macros)]
        macro_rules! for_no_key_update {
            () => {
                " FOR NO KEY UPDATE"
            };
        }
        #[allow(unused_imports)]
        use $crate::backend::postgres_fns as dialect;
    };
}

/// Runs `$body` with `$db` bound to the store's engine (see the module documentation);
/// `on_db!(engine ENGINE, |db| …)` for a [`Db`] held outside a store (a writer task's).
macro_rules! on_db {
    (engine $engine:expr, |$db:ident| $body:expr) => {
        match $engine {
            $crate::backend::Db::Sqlite($db) => {
                sqlite_dialect!($);
                $body
            }
            $crate::backend::Db::Postgres($db) => {
                postgres_dialect!($);
                $body
            }
        }
    };
    ($store:expr, |$db:ident| $body:expr) => {
        match $store.db() {
            $crate::backend::Db::Sqlite($db) => {
                sqlite_dialect!($);
                $body
            }
            $crate::backend::Db::Postgres($db) => {
                postgres_dialect!($);
                $body
            }
        }
    };
}

/// Compiles the items once per engine, into modules `sqlite` and `postgres` of the module it is
/// used in, each with its dialect's fragments and `Db`/`Conn` naming its driver's database and
/// connection types. Register the modules in [`sqlite_fns`] / [`postgres_fns`].
macro_rules! dual {
    ($($item:item)*) => {
        pub(crate) mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            #[allow(dead_code)]
            pub(crate) type Db = sqlx::Sqlite;
            #[allow(dead_code)]
            pub(crate) type Conn = sqlx::SqliteConnection;
            sqlite_dialect!($);
            $($item)*
        }
        pub(crate) mod postgres {
            #[allow(unused_imports)]
            use super::*;
            #[allow(dead_code)]
            pub(crate) type Db = sqlx::Postgres;
            #[allow(dead_code)]
            pub(crate) type Conn = sqlx::PgConnection;
            postgres_dialect!($);
            $($item)*
        }
    };
}

/// SQLite's helpers, as `dialect::` in an [`on_db!`] body.
pub(crate) mod sqlite_fns {
    pub(crate) use crate::access::sqlite::{
        derive_doors_in, desired_access_rows, held_access_rows, level_controllers_in, touch_level_in,
    };
    pub(crate) use crate::auth::sqlite::{
        ensure_an_admin_remains, revoke_sessions_in, upsert_api_user_in, user_by_id_in,
    };
    pub(crate) use crate::commands::sqlite::{
        apply_result_in, command_in, enqueue_commands_in, expire_in, insert_completed_event_in,
    };
    pub(crate) use crate::device_events::sqlite::insert_event_in;
    pub(crate) use crate::devices::sqlite::{store_facts_in, update_info_in};
    pub(crate) use crate::level_members::sqlite::lock_level_in;
    pub(crate) use crate::punches::sqlite::insert_rejected;
    pub(crate) use crate::quotas::sqlite::charge_in;
    pub(crate) use crate::roster::sqlite::{
        desired_entries, device_state, device_states_for_pin, employee_target_devices, managed_terminals,
        org_is_ancestor_or_self, pending_changes, write_private_fields,
    };
    pub(crate) use crate::sqlite::access_log::insert_access_events;
    pub(crate) use crate::sqlite::activity::record_activity_in;
    pub(crate) use crate::sqlite::bulk::{insert_webhook_events, upsert_device_options, upsert_device_users};
    pub(crate) use crate::sqlite::outbox::{
        apply_completions, claim_singles_at_once, claim_units, insert_attempts, insert_replay_events, lock_endpoints,
        name_punches, replay_count, replay_fence, replay_read,
    };
    pub(crate) use crate::trust::sqlite::{adopt_device_template_in, adopt_device_user_in};
    pub(crate) use crate::uploads::sqlite::{charge_operlog_in, insert_raw_in, upsert_users_in, write_access_group_in};
    pub(crate) use crate::webhook_queries::sqlite::replay_chunk;
    pub(crate) use crate::webhooks::sqlite::{insert_endpoint, insert_secret};

    /// The value to bind for an `in_list!`/`list_rows!` parameter: a JSON array.
    pub(crate) fn list_param<T: serde::Serialize>(values: &[T]) -> String {
        // A slice of numbers or strings always serialises.
        serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
    }

    /// Nothing to do: on SQLite, other processes find new commands by the id high-water mark
    /// (`Store::commands_queued_after`; ids ascend in commit order under its single writer).
    pub(crate) async fn announce_commands(
        _conn: &mut sqlx::SqliteConnection,
        _devices: &[i64],
    ) -> Result<(), crate::StoreError> {
        Ok(())
    }
}

/// PostgreSQL's helpers, as `dialect::` in an [`on_db!`] body.
pub(crate) mod postgres_fns {
    pub(crate) use crate::access::postgres::{
        derive_doors_in, desired_access_rows, held_access_rows, level_controllers_in, touch_level_in,
    };
    pub(crate) use crate::auth::postgres::{
        ensure_an_admin_remains, revoke_sessions_in, upsert_api_user_in, user_by_id_in,
    };
    pub(crate) use crate::commands::postgres::{
        apply_result_in, command_in, enqueue_commands_in, expire_in, insert_completed_event_in,
    };
    pub(crate) use crate::device_events::postgres::insert_event_in;
    pub(crate) use crate::devices::postgres::{store_facts_in, update_info_in};
    pub(crate) use crate::level_members::postgres::lock_level_in;
    pub(crate) use crate::postgres::access_log::insert_access_events;
    pub(crate) use crate::postgres::activity::record_activity_in;
    pub(crate) use crate::postgres::bulk::{insert_webhook_events, upsert_device_options, upsert_device_users};
    pub(crate) use crate::postgres::outbox::{
        apply_completions, claim_singles_at_once, claim_units, insert_attempts, insert_replay_events, lock_endpoints,
        name_punches, replay_count, replay_fence, replay_read,
    };
    pub(crate) use crate::punches::postgres::insert_rejected;
    pub(crate) use crate::quotas::postgres::charge_in;
    pub(crate) use crate::roster::postgres::{
        desired_entries, device_state, device_states_for_pin, employee_target_devices, managed_terminals,
        org_is_ancestor_or_self, pending_changes, write_private_fields,
    };
    pub(crate) use crate::trust::postgres::{adopt_device_template_in, adopt_device_user_in};
    pub(crate) use crate::uploads::postgres::{
        charge_operlog_in, insert_raw_in, upsert_users_in, write_access_group_in,
    };
    pub(crate) use crate::webhook_queries::postgres::replay_chunk;
    pub(crate) use crate::webhooks::postgres::{insert_endpoint, insert_secret};

    /// The value to bind for an `in_list!`/`list_rows!` parameter: an array.
    pub(crate) fn list_param<T: Clone>(values: &[T]) -> Vec<T> {
        values.to_vec()
    }

    /// Tells every process listening on [`crate::postgres::wakeups::COMMANDS_CHANNEL`] which
    /// devices got commands; PostgreSQL delivers it when (and only if) the transaction commits.
    pub(crate) async fn announce_commands(
        conn: &mut sqlx::PgConnection,
        devices: &[i64],
    ) -> Result<(), crate::StoreError> {
        if devices.is_empty() {
            return Ok(());
        }
        let payload = devices.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(crate::postgres::wakeups::COMMANDS_CHANNEL)
            .bind(payload)
            .execute(conn)
            .await?;
        Ok(())
    }
}
