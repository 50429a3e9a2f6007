//! SQLite's side of the webhook outbox: claims, completions in bulk, and the replay's walk.
//!
//! Claims run in a `BEGIN IMMEDIATE` transaction (see `SqliteDb::begin_delivery`): it holds
//! the database's write lock from its first statement, so claims (and batch formation) take
//! turns and never see each other half-way; nothing here locks rows. Lists travel as one JSON
//! array parameter, unpacked by `json_each`.

use sqlx::SqliteConnection;

use crate::StoreError;
use crate::backend::SqliteDb;
use crate::webhook_queries::{ReplayEvent, ReplayPunch, ReplayRange, replay_columns, replay_range};
use crate::webhooks::{
    ANY_BATCHING, ClaimedDelivery, ClaimedRow, Completion, CompletionUpdate, DUE_SINGLES, batch_candidates,
    choose_units, claim_singles, claim_update, cut_batches, due_batches,
};

/// The claim when nothing batches: up to `$4` due deliveries, oldest due first, in one
/// statement; the write lock is the whole of the concurrency story.
const CLAIM_SINGLES: &str = claim_singles!("");

const DUE_BATCHES: &str = due_batches!("");

const BATCH_CANDIDATES: &str = batch_candidates!("");

/// Claims the chosen units: deliveries by id (`$4`, JSON array) and whole batches (`$5`).
const CLAIM_UNITS: &str = claim_update!(concat!(
    "WHERE state = 'pending' AND (id IN (SELECT value FROM json_each($4)) \
     OR batch_row IN (SELECT value FROM json_each($5)))"
));

/// Nothing to do: SQLite's write lock (`BEGIN IMMEDIATE`) already orders an endpoint's creation
/// before or after every punch group.
pub(crate) async fn lock_endpoints(_conn: &mut SqliteConnection) -> Result<(), StoreError> {
    Ok(())
}

/// Never: a claim here holds the database's write lock from its first statement, and its
/// statements are calls into the same process, not round trips; [`claim_units`] does it all.
pub(crate) async fn claim_singles_at_once(
    _db: &SqliteDb,
    _worker: &str,
    _now: i64,
    _lease: i64,
    _limit: i64,
) -> Result<Option<Vec<ClaimedDelivery>>, StoreError> {
    Ok(None)
}

/// Takes up to `limit` due units (single deliveries or whole batches) for `worker`, forming the
/// batches of batching endpoints first.
pub(crate) async fn claim_units(
    conn: &mut SqliteConnection,
    worker: &str,
    now: i64,
    lease: i64,
    limit: i64,
) -> Result<Vec<ClaimedRow>, StoreError> {
    let batching: bool = sqlx::query_scalar(ANY_BATCHING).fetch_one(&mut *conn).await?;
    if !batching {
        return Ok(sqlx::query_as(CLAIM_SINGLES)
            .bind(worker)
            .bind(now)
            .bind(lease)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?);
    }
    form_batches(conn, now, limit).await?;
    // One request each: a single delivery or a whole batch; the oldest due go first.
    let singles: Vec<(i64, i64)> = sqlx::query_as(DUE_SINGLES).bind(now).bind(limit).fetch_all(&mut *conn).await?;
    let batches: Vec<(i64, i64)> = sqlx::query_as(DUE_BATCHES).bind(now).bind(limit).fetch_all(&mut *conn).await?;
    let (single_ids, batch_rows) = choose_units(&singles, &batches, limit);
    Ok(sqlx::query_as(CLAIM_UNITS)
        .bind(worker)
        .bind(now)
        .bind(lease)
        .bind(to_json(&single_ids))
        .bind(to_json(&batch_rows))
        .fetch_all(&mut *conn)
        .await?)
}

/// Groups due deliveries of batching endpoints into batches of at most their `batch_max`, at most
/// `per_endpoint` batches per endpoint (what one claim can send), and freezes each group.
async fn form_batches(conn: &mut SqliteConnection, now: i64, per_endpoint: i64) -> Result<(), StoreError> {
    let candidates: Vec<(i64, i64, i64)> =
        sqlx::query_as(BATCH_CANDIDATES).bind(now).bind(per_endpoint).fetch_all(&mut *conn).await?;
    let mut assignments: Vec<(i64, i64)> = Vec::with_capacity(candidates.len());
    for (endpoint_id, members) in cut_batches(&candidates) {
        let row: i64 =
            sqlx::query_scalar("INSERT INTO webhook_batches (endpoint_id, created_at) VALUES ($1, $2) RETURNING id")
                .bind(endpoint_id)
                .bind(now)
                .fetch_one(&mut *conn)
                .await?;
        assignments.extend(members.into_iter().map(|id| (id, row)));
    }
    if !assignments.is_empty() {
        sqlx::query(
            "UPDATE webhook_deliveries SET batch_row = j.value ->> 1 FROM json_each($1) AS j \
             WHERE webhook_deliveries.id = j.value ->> 0",
        )
        .bind(to_json(&assignments))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Applies the completions whose lease token is still current; returns (delivery, endpoint) of
/// each one applied.
pub(crate) async fn apply_completions(
    conn: &mut SqliteConnection,
    updates: &[CompletionUpdate<'_>],
    now: i64,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let rows: Vec<_> = updates
        .iter()
        .map(|u| {
            (u.delivery_id, u.lease_token, u.state.as_str(), u.next_attempt_at, u.http_status, u.error, u.succeeded_at)
        })
        .collect();
    Ok(sqlx::query_as(
        "UPDATE webhook_deliveries AS d SET state = j.value ->> 2, \
                next_attempt_at = COALESCE(j.value ->> 3, d.next_attempt_at), last_status = j.value ->> 4, \
                last_error = j.value ->> 5, succeeded_at = COALESCE(j.value ->> 6, d.succeeded_at), \
                lease_owner = NULL, lease_expires_at = NULL, updated_at = $2, trigger_kind = 'scheduled' \
         FROM jsonb_each($1) AS j \
         WHERE d.id = j.value ->> 0 AND d.lease_token = j.value ->> 1 AND d.state = 'in_flight' \
         RETURNING id, endpoint_id",
    )
    .bind(to_json(&rows))
    .bind(now)
    .fetch_all(&mut *conn)
    .await?)
}

/// Records one attempt per completion, `accepted` telling which moved their delivery.
pub(crate) async fn insert_attempts(
    conn: &mut SqliteConnection,
    completions: &[Completion],
    accepted: &[bool],
) -> Result<(), StoreError> {
    let attempts: Vec<_> = completions
        .iter()
        .zip(accepted)
        .map(|(c, ok)| {
            (
                c.delivery_id,
                c.attempt_no,
                c.lease_token,
                &c.trigger,
                &c.worker,
                c.started_at,
                c.duration_us,
                c.http_status,
                c.error_kind.as_deref(),
                c.error.as_deref(),
                hex::encode(&c.response_body),
                *ok,
                c.batch_id.as_deref(),
            )
        })
        .collect();
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt_no, lease_token, trigger_kind, worker, started_at, \
         duration_us, http_status, error_kind, error, response_body, accepted, batch_id) \
         SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value ->> 5, \
                j.value ->> 6, j.value ->> 7, j.value ->> 8, j.value ->> 9, unhex(j.value ->> 10), j.value ->> 11, \
                j.value ->> 12 \
         FROM jsonb_each($1) AS j",
    )
    .bind(to_json(&attempts))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The punches a replay covers are those stored when it starts: up to the largest punch id then
/// (ids ascend in commit order here).
pub(crate) async fn replay_fence(conn: &mut SqliteConnection, _range: &ReplayRange<'_>) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM punches").fetch_one(&mut *conn).await?)
}

/// How many punches the replay covers.
pub(crate) async fn replay_count(
    conn: &mut SqliteConnection,
    last_id: &i64,
    range: &ReplayRange<'_>,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(concat!(
        "SELECT COUNT(*) FROM punches AS p JOIN devices AS d ON d.id = p.device_id \
         WHERE p.id > $1 AND p.id <= $2 AND ",
        replay_range!()
    ))
    .bind(0_i64)
    .bind(*last_id)
    .bind(range.device_id)
    .bind(range.from_seq)
    .bind(range.to_seq)
    .bind(range.from_local_time)
    .bind(range.to_local_time)
    .fetch_one(&mut *conn)
    .await?)
}

/// The replay's next chunk of punches after `cursor` (a punch id, moved past the chunk), in id
/// order: the table's own b-tree, no `(device_id, seq)` index needed.
pub(crate) async fn replay_read(
    conn: &mut SqliteConnection,
    last_id: &i64,
    range: &ReplayRange<'_>,
    cursor: &mut i64,
    limit: i64,
) -> Result<Vec<ReplayPunch>, StoreError> {
    let punches: Vec<ReplayPunch> = sqlx::query_as(concat!(
        "SELECT ",
        replay_columns!(),
        " FROM punches AS p JOIN devices AS d ON d.id = p.device_id WHERE p.id > $1 AND p.id <= $2 AND ",
        replay_range!(),
        " ORDER BY p.id LIMIT $8"
    ))
    .bind(*cursor)
    .bind(*last_id)
    .bind(range.device_id)
    .bind(range.from_seq)
    .bind(range.to_seq)
    .bind(range.from_local_time)
    .bind(range.to_local_time)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    if let Some(last) = punches.last() {
        *cursor = last.id;
    }
    Ok(punches)
}

/// Sets the event id of punches stored without one (punch id, event id).
pub(crate) async fn name_punches(conn: &mut SqliteConnection, unnamed: &[(i64, &str)]) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE punches SET event_id = j.value ->> 1 FROM json_each($1) AS j \
         WHERE punches.id = j.value ->> 0 AND punches.event_id IS NULL",
    )
    .bind(to_json(unnamed))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts a replay's new events with `fan_out = 0` (the trigger queues nobody; the replay
/// queues its own endpoint); returns how many were inserted.
pub(crate) async fn insert_replay_events(
    conn: &mut SqliteConnection,
    events: &[ReplayEvent],
) -> Result<u64, StoreError> {
    let rows: Vec<_> = events
        .iter()
        .map(|e| {
            let body = String::from_utf8_lossy(&e.body);
            (&e.event_id, e.device_id, e.punch_id, e.seq, e.occurred_at, e.created_at, body)
        })
        .collect();
    let done = sqlx::query(
        "INSERT INTO webhook_events (event_id, event_type, device_id, punch_id, seq, occurred_at, created_at, body, \
                                     fan_out) \
         SELECT j.value ->> 0, 'attendance.punch', j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, \
                j.value ->> 5, CAST(j.value ->> 6 AS BLOB), 0 \
         FROM json_each($1) AS j \
         WHERE true \
         ORDER BY j.key \
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(to_json(&rows))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// Rows as one JSON array parameter, unpacked by `json_each`.
fn to_json<T: serde::Serialize>(values: &[T]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}
