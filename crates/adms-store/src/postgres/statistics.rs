//! Keeping PostgreSQL's picture of the hot tables' sizes current while they are young.
//!
//! sqlx prepares every statement, and after five executions PostgreSQL may settle on one
//! generic plan for it, costed with the table sizes it knew then. A table that grows from empty
//! to thousands of rows in its first seconds (a new installation, a benchmark, a webhook
//! backlog) keeps plans made for an empty one: the punch writer's duplicate check became a full
//! scan of `punches` in every group, a delivery claim a walk over every pending delivery. The
//! plans are made again only when the table's statistics change, and autovacuum analyzes a
//! table at most once a minute (its naptime) and only past 10 % growth.
//!
//! [`grown_tables`] finds the hot tables that more than doubled since the planner last learnt
//! their size, and [`analyze`] refreshes them, which also invalidates every session's cached
//! plans over them. Doubling means a handful of `ANALYZE`s over a table's life; autovacuum
//! keeps doing the fine-grained rest. Measured (BENCHMARKS.md, 2026-12-06, 1-line uploads from
//! 16 devices on a fresh database): about 1,200 punches/s with the stale plan, about 3,400 with
//! one `ANALYZE` during the warm-up.

use sqlx::PgPool;

use crate::StoreError;

/// The tables whose statistics decide the plans of the hot paths, each with its `ANALYZE`
/// statement (identifiers cannot be bound, so each statement is written out, never assembled).
/// `devices` and `webhook_endpoints` stay small, but a claim joins them: never analyzed, their
/// filters get PostgreSQL's default selectivity (0.5 % of devices approved), and the claim that
/// believed 4 of 72,000 deliveries sendable sorted them all on disk (148 ms, 8 endpoints).
const HOT_TABLES: [(&str, &str); 7] = [
    ("punches", "ANALYZE punches"),
    ("devices", "ANALYZE devices"),
    ("webhook_endpoints", "ANALYZE webhook_endpoints"),
    ("webhook_events", "ANALYZE webhook_events"),
    ("webhook_deliveries", "ANALYZE webhook_deliveries"),
    ("webhook_attempts", "ANALYZE webhook_attempts"),
    ("device_commands", "ANALYZE device_commands"),
];

/// Below this many live rows a table's growth does not change its plans much: past its first
/// `ANALYZE`, it is left to autovacuum.
const SMALL_TABLE_ROWS: i64 = 1_000;

/// The hot tables with rows but never analyzed (`reltuples` is -1 until the first `ANALYZE`
/// or `VACUUM`), and those of at least [`SMALL_TABLE_ROWS`] with more than twice the rows the
/// planner believes, by the statistics system's live-row count.
pub(crate) async fn grown_tables(pool: &PgPool) -> Result<Vec<&'static str>, StoreError> {
    let names: Vec<&str> = HOT_TABLES.iter().map(|(name, _)| *name).collect();
    let grown: Vec<String> = sqlx::query_scalar(
        "SELECT s.relname::text FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid \
         WHERE s.schemaname = current_schema() AND s.relname = ANY($1) \
           AND ((c.reltuples < 0 AND s.n_live_tup > 0) \
                OR (s.n_live_tup >= $2 AND s.n_live_tup > 2 * c.reltuples)) \
         ORDER BY s.relname",
    )
    .bind(&names)
    .bind(SMALL_TABLE_ROWS)
    .fetch_all(pool)
    .await?;
    Ok(HOT_TABLES.iter().map(|(name, _)| *name).filter(|name| grown.iter().any(|g| g == name)).collect())
}

/// `ANALYZE`s one of the hot tables.
pub(crate) async fn analyze(pool: &PgPool, table: &str) -> Result<(), StoreError> {
    let Some((_, statement)) = HOT_TABLES.iter().find(|(name, _)| *name == table) else {
        return Err(StoreError::Invalid(format!("{table} is not a table whose statistics the store refreshes")));
    };
    sqlx::query(*statement).execute(pool).await?;
    Ok(())
}
