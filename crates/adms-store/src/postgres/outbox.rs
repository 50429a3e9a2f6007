//! PostgreSQL's side of the webhook outbox: claims, completions in bulk, and the replay's walk.
//!
//! On SQLite a claim holds the database's write lock (`BEGIN IMMEDIATE`), so claims take turns.
//! Here several dispatcher processes claim at once, and what keeps them apart is row locks:
//!
//! - A delivery is taken with `FOR UPDATE OF d SKIP LOCKED`: a row another claim is taking is
//!   skipped, not waited for, and one that claim already took (committed) fails the re-check of
//!   `state = 'pending'` that PostgreSQL makes on the newest row version. Concurrent claims take
//!   disjoint deliveries; the lease token (bumped by every claim) still fences completions, and
//!   lease expiry still returns a lost worker's deliveries.
//! - Batches are formed and claimed per endpoint under that endpoint's row lock
//!   (`FOR NO KEY UPDATE SKIP LOCKED`, which does not block the fan-out's foreign-key checks):
//!   one claim at a time cuts an endpoint's batches and sends them whole; other claims skip
//!   that endpoint's batches for this round. A delivery is put in a batch only while it is still
//!   pending and unbatched, so a batch's members, once committed, never change.
//! - The per-device order of an ordered endpoint needs no lock: a later `seq` is sendable only
//!   once every earlier one is finished (`succeeded`/`cancelled`), as every claim's snapshot sees
//!   it; a claim in progress elsewhere leaves the earlier one `pending` or `in_flight`, which
//!   blocks the later one either way.
//!
//! Lists travel as arrays (`= ANY($n)`, `unnest(...)`).

use sqlx::PgConnection;

use crate::StoreError;
use crate::backend::PgDb;
use crate::postgres::punch_writer::ENDPOINTS_LOCK;
use crate::webhook_queries::{ReplayEvent, ReplayPunch, ReplayRange, replay_columns, replay_range};
use crate::webhooks::{
    ANY_BATCHING, ClaimedDelivery, ClaimedRow, Completion, CompletionUpdate, DUE_SINGLES, any_batching,
    batch_candidates, choose_units, claim_singles, claim_update, cut_batches, delivery_joins, due_batches, sendable,
};

/// The claim when nothing batches: up to `$4` due deliveries in one statement, skipping those
/// another claim is taking.
const CLAIM_SINGLES: &str = claim_singles!(" FOR UPDATE OF d SKIP LOCKED");

/// The claim while nothing batches, in one statement outside a transaction: up to `$limit` due
/// deliveries taken as [`CLAIM_SINGLES`] takes them, returned with what sending them needs (event,
/// endpoint, the endpoint's valid secrets newest first), in the order requests are built from.
/// Takes nothing when anything batches (the condition is evaluated once per statement): the
/// transaction of [`claim_units`] forms and claims batches and singles together, oldest due
/// first, so neither waits behind the other.
///
/// It runs on its generic plan, planned once per connection (see `PgDb::DELIVERY_SETTINGS`):
/// planning it took as long as running it (1.5–2.5 ms for 32 deliveries during a drain). Two
/// things make that plan the good one (the due index walked in order, stopped at the limit,
/// each chosen delivery updated by its key), measured on 160,000 deliveries:
/// - the limit is a literal ([`CLAIM_SINGLES_AT_ONCE`] has one statement per size): with a
///   parameter the planner guesses a tenth of the backlog, and sorts all of it (43 ms a claim,
///   against 1–3 ms);
/// - `= ANY(ARRAY(…))` rather than `IN (…)`: the chosen ids are an init plan, where `IN` got a
///   hash join over a scan of every delivery (57 ms).
macro_rules! claim_at_once {
    ($limit:literal) => {
        (
            $limit,
            concat!(
                "WITH claimed AS (",
                claim_update!(
                    returning ", event_row, endpoint_id",
                    "WHERE id = ANY(ARRAY(SELECT d.id ",
                    delivery_joins!(),
                    "WHERE d.state = 'pending' AND d.next_attempt_at <= $2 AND d.batch_row IS NULL AND NOT ",
                    any_batching!(),
                    " AND ",
                    sendable!(),
                    " ORDER BY d.next_attempt_at, d.id LIMIT ",
                    $limit,
                    " FOR UPDATE OF d SKIP LOCKED))"
                ),
                ") SELECT c.id AS delivery_id, c.lease_token, c.attempt_count AS attempt_no, \
                          c.trigger_kind AS trigger, COALESCE(c.first_attempt_at, $2) AS first_attempt_at, \
                          e.event_id, e.body, e.created_at AS event_created_at, ep.id AS endpoint_id, \
                          ep.uid AS endpoint_uid, ep.url, ep.timeout_ms, \
                          ARRAY(SELECT s.secret FROM webhook_secrets AS s \
                                WHERE s.endpoint_id = ep.id AND (s.expires_at IS NULL OR s.expires_at > $2) \
                                ORDER BY s.id DESC) AS secrets, \
                          NULL::bigint AS batch_row \
                   FROM claimed AS c JOIN webhook_events AS e ON e.id = c.event_row \
                   JOIN webhook_endpoints AS ep ON ep.id = c.endpoint_id \
                   ORDER BY e.device_id NULLS FIRST, e.seq NULLS FIRST, e.id"
            ),
        )
    };
}

/// The sizes of claim [`claim_at_once`] has a statement for, smallest first: a claim takes the
/// largest that fits its limit (so at least half of a limit up to 512, and all of the 16, 32, 48
/// or 64 slots a dispatcher often has), and the dispatcher claims again for the rest.
const CLAIM_SINGLES_AT_ONCE: [(i64, &str); 14] = [
    claim_at_once!(1),
    claim_at_once!(2),
    claim_at_once!(4),
    claim_at_once!(8),
    claim_at_once!(16),
    claim_at_once!(24),
    claim_at_once!(32),
    claim_at_once!(40),
    claim_at_once!(48),
    claim_at_once!(56),
    claim_at_once!(64),
    claim_at_once!(96),
    claim_at_once!(128),
    claim_at_once!(256),
];

/// The claim of singles while nothing batches, in one round trip (see [`claim_at_once`]).
/// A claim in a transaction took six (`BEGIN`, the batching check, the claim, two reads,
/// `COMMIT`), and with a backlog to drain the dispatcher's claims were what limited deliveries
/// (BENCHMARKS.md, session 22). `None` when it took nothing: nothing due, or batches to form.
pub(crate) async fn claim_singles_at_once(
    db: &PgDb,
    worker: &str,
    now: i64,
    lease: i64,
    limit: i64,
) -> Result<Option<Vec<ClaimedDelivery>>, StoreError> {
    let Some((_, claim)) = CLAIM_SINGLES_AT_ONCE.iter().rev().find(|(size, _)| *size <= limit) else {
        return Ok(None);
    };
    let claimed: Vec<ClaimedDelivery> =
        sqlx::query_as(*claim).bind(worker).bind(now).bind(lease).fetch_all(db.delivery_pool()).await?;
    Ok((!claimed.is_empty()).then_some(claimed))
}

/// The endpoints whose batches this claim forms and sends: live, active ones that batch or
/// still have batches waiting, locked for the transaction; those another claim holds are
/// skipped.
const LOCK_BATCHING_ENDPOINTS: &str = "\
SELECT ep.id FROM webhook_endpoints AS ep
WHERE ep.deleted_at IS NULL AND ep.paused_reason IS NULL
  AND (ep.batch_max > 1 OR EXISTS (SELECT 1 FROM webhook_deliveries AS d
                                   WHERE d.endpoint_id = ep.id AND d.state = 'pending' AND d.batch_row IS NOT NULL))
ORDER BY ep.id
FOR NO KEY UPDATE SKIP LOCKED";

/// Formed batches of the endpoints this claim holds (`$3`).
const DUE_BATCHES: &str = due_batches!("AND d.endpoint_id = ANY($3)");

/// Batch candidates of the endpoints this claim holds (`$3`).
const BATCH_CANDIDATES: &str = batch_candidates!("AND d.endpoint_id = ANY($3)");

/// Claims single deliveries chosen from a read without locks (`$4`): each is re-checked (still
/// pending and due) under its row lock, and one another claim is taking is skipped.
const CLAIM_IDS: &str = claim_update!(
    "WHERE id IN (SELECT id FROM webhook_deliveries \
                  WHERE id = ANY($4) AND state = 'pending' AND next_attempt_at <= $2 AND batch_row IS NULL \
                  ORDER BY id FOR UPDATE SKIP LOCKED)"
);

/// Claims whole batches (`$4`) of endpoints this claim holds: no other claim takes their members.
const CLAIM_BATCHES: &str = claim_update!("WHERE state = 'pending' AND batch_row = ANY($4)");

/// Takes the endpoints lock exclusively for the transaction: creating (or reviving) an endpoint
/// waits for the punch groups that saw none, and every later group sees it (see
/// [`ENDPOINTS_LOCK`]).
pub(crate) async fn lock_endpoints(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(ENDPOINTS_LOCK).execute(&mut *conn).await?;
    Ok(())
}

/// Takes up to `limit` due units (single deliveries or whole batches) for `worker`, forming the
/// batches of the batching endpoints this claim gets to hold first.
pub(crate) async fn claim_units(
    conn: &mut PgConnection,
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
    let endpoints: Vec<i64> = sqlx::query_scalar(LOCK_BATCHING_ENDPOINTS).fetch_all(&mut *conn).await?;
    if !endpoints.is_empty() {
        form_batches(conn, now, limit, &endpoints).await?;
    }
    // One request each: a single delivery or a whole batch; the oldest due go first.
    let singles: Vec<(i64, i64)> = sqlx::query_as(DUE_SINGLES).bind(now).bind(limit).fetch_all(&mut *conn).await?;
    let batches: Vec<(i64, i64)> = if endpoints.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(DUE_BATCHES).bind(now).bind(limit).bind(&endpoints).fetch_all(&mut *conn).await?
    };
    let (single_ids, batch_rows) = choose_units(&singles, &batches, limit);
    let mut claimed: Vec<ClaimedRow> = Vec::new();
    if !single_ids.is_empty() {
        claimed = sqlx::query_as(CLAIM_IDS)
            .bind(worker)
            .bind(now)
            .bind(lease)
            .bind(&single_ids)
            .fetch_all(&mut *conn)
            .await?;
    }
    if !batch_rows.is_empty() {
        claimed.extend(
            sqlx::query_as::<_, ClaimedRow>(CLAIM_BATCHES)
                .bind(worker)
                .bind(now)
                .bind(lease)
                .bind(&batch_rows)
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    Ok(claimed)
}

/// Groups due deliveries of the held batching endpoints into batches of at most their
/// `batch_max`, at most `per_endpoint` batches per endpoint, and freezes each group. Only a
/// delivery still pending and unbatched joins (one a claim of singles took meanwhile, after an
/// endpoint started batching, stays out: the batch is what its members are at commit).
async fn form_batches(
    conn: &mut PgConnection,
    now: i64,
    per_endpoint: i64,
    endpoints: &[i64],
) -> Result<(), StoreError> {
    let candidates: Vec<(i64, i64, i64)> =
        sqlx::query_as(BATCH_CANDIDATES).bind(now).bind(per_endpoint).bind(endpoints).fetch_all(&mut *conn).await?;
    let batches = cut_batches(&candidates);
    if batches.is_empty() {
        return Ok(());
    }
    let batch_endpoints: Vec<i64> = batches.iter().map(|(endpoint, _)| *endpoint).collect();
    // One row per batch, ids in list order.
    let rows: Vec<i64> = sqlx::query_scalar(
        "WITH made AS (INSERT INTO webhook_batches (endpoint_id, created_at) \
                       SELECT e.endpoint_id, $2 FROM unnest($1::bigint[]) WITH ORDINALITY AS e (endpoint_id, ord) \
                       ORDER BY e.ord RETURNING id) \
         SELECT id FROM made ORDER BY id",
    )
    .bind(&batch_endpoints)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let mut delivery_ids: Vec<i64> = Vec::with_capacity(candidates.len());
    let mut batch_rows: Vec<i64> = Vec::with_capacity(candidates.len());
    for ((_, members), row) in batches.into_iter().zip(rows) {
        batch_rows.extend(std::iter::repeat_n(row, members.len()));
        delivery_ids.extend(members);
    }
    sqlx::query(
        "UPDATE webhook_deliveries AS d SET batch_row = a.batch_row \
         FROM unnest($1::bigint[], $2::bigint[]) AS a (id, batch_row) \
         WHERE d.id = a.id AND d.state = 'pending' AND d.batch_row IS NULL",
    )
    .bind(&delivery_ids)
    .bind(&batch_rows)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Applies the completions whose lease token is still current, in one statement over arrays;
/// returns (delivery, endpoint) of each one applied. A completion whose delivery a claim or the
/// reaper moved meanwhile waits for that row lock, then fails the re-check (token, state).
pub(crate) async fn apply_completions(
    conn: &mut PgConnection,
    updates: &[CompletionUpdate<'_>],
    now: i64,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let ids: Vec<i64> = updates.iter().map(|u| u.delivery_id).collect();
    let tokens: Vec<i64> = updates.iter().map(|u| u.lease_token).collect();
    let states: Vec<&str> = updates.iter().map(|u| u.state.as_str()).collect();
    let next: Vec<Option<i64>> = updates.iter().map(|u| u.next_attempt_at).collect();
    let statuses: Vec<Option<i64>> = updates.iter().map(|u| u.http_status).collect();
    let errors: Vec<Option<&str>> = updates.iter().map(|u| u.error).collect();
    let succeeded: Vec<Option<i64>> = updates.iter().map(|u| u.succeeded_at).collect();
    Ok(sqlx::query_as(
        "UPDATE webhook_deliveries AS d SET state = u.state, \
                next_attempt_at = COALESCE(u.next_attempt_at, d.next_attempt_at), last_status = u.last_status, \
                last_error = u.last_error, succeeded_at = COALESCE(u.succeeded_at, d.succeeded_at), \
                lease_owner = NULL, lease_expires_at = NULL, updated_at = $8, trigger_kind = 'scheduled' \
         FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::bigint[]) \
              AS u (id, lease_token, state, next_attempt_at, last_status, last_error, succeeded_at) \
         WHERE d.id = u.id AND d.lease_token = u.lease_token AND d.state = 'in_flight' \
         RETURNING d.id, d.endpoint_id",
    )
    .bind(&ids)
    .bind(&tokens)
    .bind(&states)
    .bind(&next)
    .bind(&statuses)
    .bind(&errors)
    .bind(&succeeded)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?)
}

/// Records one attempt per completion, `accepted` telling which moved their delivery.
pub(crate) async fn insert_attempts(
    conn: &mut PgConnection,
    completions: &[Completion],
    accepted: &[bool],
) -> Result<(), StoreError> {
    let col = |f: fn(&Completion) -> i64| completions.iter().map(f).collect::<Vec<i64>>();
    let delivery_ids = col(|c| c.delivery_id);
    let attempt_nos = col(|c| c.attempt_no);
    let tokens = col(|c| c.lease_token);
    let started = col(|c| c.started_at);
    let durations = col(|c| c.duration_us);
    let triggers: Vec<&str> = completions.iter().map(|c| c.trigger.as_str()).collect();
    let workers: Vec<&str> = completions.iter().map(|c| c.worker.as_str()).collect();
    let statuses: Vec<Option<i64>> = completions.iter().map(|c| c.http_status).collect();
    let kinds: Vec<Option<&str>> = completions.iter().map(|c| c.error_kind.as_deref()).collect();
    let errors: Vec<Option<&str>> = completions.iter().map(|c| c.error.as_deref()).collect();
    let bodies: Vec<&[u8]> = completions.iter().map(|c| c.response_body.as_slice()).collect();
    let batch_ids: Vec<Option<&str>> = completions.iter().map(|c| c.batch_id.as_deref()).collect();
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt_no, lease_token, trigger_kind, worker, started_at, \
         duration_us, http_status, error_kind, error, response_body, accepted, batch_id) \
         SELECT a.delivery_id, a.attempt_no, a.lease_token, a.trigger_kind, a.worker, a.started_at, a.duration_us, \
                a.http_status, a.error_kind, a.error, a.response_body, a.accepted, a.batch_id \
         FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], \
                     $8::bigint[], $9::text[], $10::text[], $11::bytea[], $12::boolean[], $13::text[]) \
              WITH ORDINALITY AS a (delivery_id, attempt_no, lease_token, trigger_kind, worker, started_at, \
                                    duration_us, http_status, error_kind, error, response_body, accepted, batch_id, ord) \
         ORDER BY a.ord",
    )
    .bind(&delivery_ids)
    .bind(&attempt_nos)
    .bind(&tokens)
    .bind(&triggers)
    .bind(&workers)
    .bind(&started)
    .bind(&durations)
    .bind(&statuses)
    .bind(&kinds)
    .bind(&errors)
    .bind(&bodies)
    .bind(accepted)
    .bind(&batch_ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Where a replay stands: the last punch handled, as (device id, seq).
pub(crate) type ReplayCursor = (i64, i64);

/// The punches a replay covers are those stored when it starts: per device, up to its
/// `last_seq` then (ids are not in commit order here, each device's `seq` is). Devices as two
/// arrays: ids and their `last_seq`.
pub(crate) async fn replay_fence(
    conn: &mut PgConnection,
    range: &ReplayRange<'_>,
) -> Result<(Vec<i64>, Vec<i64>), StoreError> {
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, last_seq FROM devices WHERE ($1::bigint IS NULL OR id = $1) ORDER BY id")
            .bind(range.device_id)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().unzip())
}

/// The punches of the fence's devices up to their fenced `seq` (`$1`, `$2`), in the range.
macro_rules! fenced_punches {
    () => {
        concat!(
            " FROM punches AS p JOIN devices AS d ON d.id = p.device_id \
              JOIN unnest($1::bigint[], $2::bigint[]) AS f (device_id, last_seq) ON f.device_id = p.device_id \
              WHERE p.seq <= f.last_seq AND ",
            replay_range!()
        )
    };
}

/// How many punches the replay covers.
pub(crate) async fn replay_count(
    conn: &mut PgConnection,
    fence: &(Vec<i64>, Vec<i64>),
    range: &ReplayRange<'_>,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(concat!("SELECT COUNT(*)", fenced_punches!()))
        .bind(&fence.0)
        .bind(&fence.1)
        .bind(range.device_id)
        .bind(range.from_seq)
        .bind(range.to_seq)
        .bind(range.from_local_time)
        .bind(range.to_local_time)
        .fetch_one(&mut *conn)
        .await?)
}

/// The replay's next chunk of punches after `cursor` (moved past the chunk), in
/// `(device_id, seq)` order: the `punches_device_seq` index.
pub(crate) async fn replay_read(
    conn: &mut PgConnection,
    fence: &(Vec<i64>, Vec<i64>),
    range: &ReplayRange<'_>,
    cursor: &mut ReplayCursor,
    limit: i64,
) -> Result<Vec<ReplayPunch>, StoreError> {
    let punches: Vec<ReplayPunch> = sqlx::query_as(concat!(
        "SELECT ",
        replay_columns!(),
        fenced_punches!(),
        " AND (p.device_id, p.seq) > ($8, $9) ORDER BY p.device_id, p.seq LIMIT $10"
    ))
    .bind(&fence.0)
    .bind(&fence.1)
    .bind(range.device_id)
    .bind(range.from_seq)
    .bind(range.to_seq)
    .bind(range.from_local_time)
    .bind(range.to_local_time)
    .bind(cursor.0)
    .bind(cursor.1)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    if let Some(last) = punches.last() {
        *cursor = (last.device_id, last.seq);
    }
    Ok(punches)
}

/// Sets the event id of punches stored without one (punch id, event id).
pub(crate) async fn name_punches(conn: &mut PgConnection, unnamed: &[(i64, &str)]) -> Result<(), StoreError> {
    let (ids, event_ids): (Vec<i64>, Vec<&str>) = unnamed.iter().copied().unzip();
    sqlx::query(
        "UPDATE punches SET event_id = u.event_id FROM unnest($1::bigint[], $2::text[]) AS u (id, event_id) \
         WHERE punches.id = u.id AND punches.event_id IS NULL",
    )
    .bind(&ids)
    .bind(&event_ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts a replay's new events with `fan_out` off (the trigger queues nobody; the replay
/// queues its own endpoint); returns how many were inserted.
pub(crate) async fn insert_replay_events(conn: &mut PgConnection, events: &[ReplayEvent]) -> Result<u64, StoreError> {
    let event_ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let col = |f: fn(&ReplayEvent) -> i64| events.iter().map(f).collect::<Vec<i64>>();
    let bodies: Vec<&[u8]> = events.iter().map(|e| e.body.as_slice()).collect();
    let done = sqlx::query(
        "INSERT INTO webhook_events (event_id, event_type, device_id, punch_id, seq, occurred_at, created_at, body, \
                                     fan_out) \
         SELECT n.event_id, 'attendance.punch', n.device_id, n.punch_id, n.seq, n.occurred_at, n.created_at, n.body, \
                FALSE \
         FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bytea[]) \
              WITH ORDINALITY AS n (event_id, device_id, punch_id, seq, occurred_at, created_at, body, ord) \
         ORDER BY n.ord \
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&event_ids)
    .bind(col(|e| e.device_id))
    .bind(col(|e| e.punch_id))
    .bind(col(|e| e.seq))
    .bind(col(|e| e.occurred_at))
    .bind(col(|e| e.created_at))
    .bind(&bodies)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}
