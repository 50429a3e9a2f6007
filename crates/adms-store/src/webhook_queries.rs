//! Reads and operator actions on the webhook outbox for the API: attempts of a delivery, manual
//! resend, replay of a range of punches to one endpoint, and the per-device punch cursor.
//!
//! On SQLite, punch ids ascend in commit order (one writer) and each device's `seq` is assigned
//! in that same order, so for one device `id` order is `seq` order. The cursor and the replay
//! walk punches by `id` (the table's own b-tree) and never need an index on `(device_id, seq)`,
//! which would cost the realtime writer one scattered page per device per commit.
//!
//! On PostgreSQL ids come from a sequence and are not in commit order (a smaller id may commit
//! later), but each device's `seq` is (its writers take turns on the device row), and
//! `(device_id, seq)` is indexed: the cursor and the replay walk `(device_id, seq)` there (see
//! `postgres::outbox`).

use std::collections::HashSet;

use sqlx::FromRow;

use crate::backend::Db;
use crate::events::{EventDevice, PunchEvent, punch_event_id};
use crate::{Store, StoreError};

/// One attempt of a delivery, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AttemptRow {
    pub attempt_no: i64,
    /// `scheduled`, `manual`, `replay` or `lease_expired`.
    pub trigger_kind: String,
    pub worker: String,
    /// Unix µs.
    pub started_at: i64,
    pub duration_us: Option<i64>,
    /// The webhook-id of the batch the attempt carried (`None`: the event alone).
    pub batch_id: Option<String>,
    pub http_status: Option<i64>,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    /// What the dispatcher kept of the response body (1 KiB of text at most; rows written by
    /// earlier versions may hold up to 20 KiB of any bytes).
    pub response_body: Option<Vec<u8>>,
    /// `false` when the completion was fenced out by a newer claim.
    pub accepted: bool,
}

/// What a manual resend did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResendOutcome {
    /// The delivery is pending and due now.
    Queued,
    /// No such delivery.
    NotFound,
    /// A worker is sending it right now; its attempt decides what happens next.
    InFlight,
    /// Its endpoint was deleted; nothing will send it.
    EndpointDeleted,
}

/// A stored punch as the reconciliation cursor serves it.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct CursorPunch {
    pub id: i64,
    pub seq: i64,
    pub pin: String,
    pub local_time: String,
    pub state: String,
    pub verify: i64,
    pub work_code: String,
    /// Unix seconds, when the device's zone was known.
    pub utc_time: Option<i64>,
    pub raw_line: String,
    /// Unix µs.
    pub received_at: i64,
    /// The `attendance.punch` event id (computed for punches stored before events existed).
    pub event_id: Option<String>,
}

/// Which punches a replay covers; every bound is inclusive, absent bounds are open.
#[derive(Debug, Clone, Default)]
pub struct ReplayRange<'a> {
    pub device_id: Option<i64>,
    pub from_seq: Option<i64>,
    pub to_seq: Option<i64>,
    /// Device wall-clock time `YYYY-MM-DD HH:MM:SS`, compared as stored.
    pub from_local_time: Option<&'a str>,
    pub to_local_time: Option<&'a str>,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayOutcome {
    Replayed {
        /// Punch events in the range, each now queued (or already being sent) to the endpoint.
        events: u64,
        /// Of those, events that did not exist yet (punches stored before any endpoint).
        events_created: u64,
    },
    /// No such (live) endpoint.
    NotFound,
    /// More punches in the range than allowed in one replay.
    TooMany(i64),
}

/// Punches handled per transaction, so a large replay never holds the write lock for long.
const REPLAY_CHUNK: i64 = 2_000;

/// Punch rows a replay reads; `time_zone` falls back to the device's setting.
#[derive(Debug, FromRow)]
pub(crate) struct ReplayPunch {
    pub id: i64,
    pub device_id: i64,
    pub seq: i64,
    pub pin: String,
    pub local_time: String,
    pub state: String,
    pub verify: i64,
    pub work_code: String,
    pub time_zone: Option<String>,
    pub utc_time: Option<i64>,
    pub raw_line: String,
    pub received_at: i64,
    pub event_id: Option<String>,
    pub sn: String,
    pub alias: String,
}

/// The columns a replay reads per punch (`p` punches, `d` devices), as [`ReplayPunch`].
macro_rules! replay_columns {
    () => {
        "p.id, p.device_id, p.seq, p.pin, p.local_time, p.state, p.verify, p.work_code, \
         COALESCE(p.time_zone, d.time_zone) AS time_zone, p.utc_time, p.raw_line, p.received_at, \
         p.event_id, d.sn, d.alias"
    };
}
pub(crate) use replay_columns;

/// The range filter of a replay on punches `p`: `$3` device, `$4`/`$5` seq bounds, `$6`/`$7`
/// local-time bounds (each engine binds its own fence and cursor as `$1`, `$2` and from `$8`).
macro_rules! replay_range {
    () => {
        "($3 IS NULL OR p.device_id = $3) AND ($4 IS NULL OR p.seq >= $4) AND ($5 IS NULL OR p.seq <= $5) \
         AND ($6 IS NULL OR p.local_time >= $6) AND ($7 IS NULL OR p.local_time <= $7)"
    };
}
pub(crate) use replay_range;

/// One `attendance.punch` event a replay creates.
#[derive(Debug, Clone)]
pub(crate) struct ReplayEvent {
    pub event_id: String,
    pub device_id: i64,
    pub punch_id: i64,
    pub seq: i64,
    pub occurred_at: i64,
    pub created_at: i64,
    pub body: Vec<u8>,
}

impl Store {
    /// The attempts of a delivery, oldest first; `None` when there is no such delivery.
    pub async fn delivery_attempts(&self, delivery_id: i64) -> Result<Option<Vec<AttemptRow>>, StoreError> {
        on_db!(self, |db| {
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = $1)")
                .bind(delivery_id)
                .fetch_one(db.pool())
                .await?;
            if !exists {
                return Ok(None);
            }
            let rows = sqlx::query_as(
                "SELECT attempt_no, trigger_kind, worker, started_at, duration_us, batch_id, http_status, error_kind, \
                        error, response_body, accepted \
                 FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id",
            )
            .bind(delivery_id)
            .fetch_all(db.pool())
            .await?;
            Ok(Some(rows))
        })
    }

    /// Makes a delivery due at `now` (Unix µs) again. A finished one (`succeeded`, `exhausted`,
    /// `cancelled`) starts a fresh retry schedule; a pending one keeps its attempt count. A
    /// delivery that travelled in a batch leaves it and is batched afresh (under a new batch id:
    /// the old batch's members, and so its id and body, are no longer the same).
    pub async fn resend_delivery(&self, delivery_id: i64, now: i64) -> Result<ResendOutcome, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            // Both engines evaluate every SET expression against the row as it was before the
            // update. PostgreSQL: a delivery a claim is taking is waited for, then found in flight.
            let updated: Option<i64> = sqlx::query_scalar(
                "UPDATE webhook_deliveries SET \
                        attempt_count = CASE WHEN state = 'pending' THEN attempt_count ELSE 0 END, \
                        first_attempt_at = CASE WHEN state = 'pending' THEN first_attempt_at ELSE NULL END, \
                        state = 'pending', next_attempt_at = $1, updated_at = $1, trigger_kind = 'manual', \
                        batch_row = NULL \
                 WHERE id = $2 AND state <> 'in_flight' \
                   AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE deleted_at IS NULL) \
                 RETURNING id",
            )
            .bind(now)
            .bind(delivery_id)
            .fetch_optional(&mut *tx)
            .await?;
            let outcome = if updated.is_some() {
                ResendOutcome::Queued
            } else {
                let found: Option<(String, Option<i64>)> = sqlx::query_as(
                    "SELECT d.state, ep.deleted_at FROM webhook_deliveries AS d \
                     JOIN webhook_endpoints AS ep ON ep.id = d.endpoint_id WHERE d.id = $1",
                )
                .bind(delivery_id)
                .fetch_optional(&mut *tx)
                .await?;
                match found {
                    None => ResendOutcome::NotFound,
                    Some((_, Some(_))) => ResendOutcome::EndpointDeleted,
                    Some(_) => ResendOutcome::InFlight,
                }
            };
            tx.commit().await?;
            Ok(outcome)
        })
    }

    /// A device's punches with `seq > after_seq`, in `seq` order, at most `limit`.
    pub async fn punches_after_seq(
        &self,
        device_id: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<CursorPunch>, StoreError> {
        let mut rows: Vec<CursorPunch> = match self.db() {
            Db::Sqlite(db) => {
                // Where to start walking: the punch of the device's last event at or before
                // `after_seq` (found through the events' (device_id, seq) index); every later seq
                // has a larger id.
                let start_after: i64 = sqlx::query_scalar(
                    "SELECT COALESCE((SELECT punch_id FROM webhook_events \
                                      WHERE device_id = $1 AND seq <= $2 AND punch_id IS NOT NULL \
                                      ORDER BY seq DESC LIMIT 1), 0)",
                )
                .bind(device_id)
                .bind(after_seq)
                .fetch_one(db.pool())
                .await?;
                sqlx::query_as(
                    "SELECT id, seq, pin, local_time, state, verify, work_code, utc_time, raw_line, received_at, \
                            event_id \
                     FROM punches WHERE id > $1 AND device_id = $2 AND seq > $3 ORDER BY id LIMIT $4",
                )
                .bind(start_after)
                .bind(device_id)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(db.pool())
                .await?
            }
            // Ids are not in commit order here; the (device_id, seq) index is the walk.
            Db::Postgres(db) => {
                sqlx::query_as(
                    "SELECT id, seq, pin, local_time, state, verify, work_code, utc_time, raw_line, received_at, \
                            event_id \
                     FROM punches WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(device_id)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(db.pool())
                .await?
            }
        };
        if rows.iter().any(|p| p.event_id.is_none()) {
            let sn: String = on_db!(self, |db| {
                sqlx::query_scalar("SELECT sn FROM devices WHERE id = $1").bind(device_id).fetch_one(db.pool()).await?
            });
            for p in rows.iter_mut().filter(|p| p.event_id.is_none()) {
                let verify = u16::try_from(p.verify).unwrap_or_default();
                p.event_id = Some(punch_event_id(&sn, &p.pin, &p.local_time, &p.state, verify, &p.work_code));
            }
        }
        Ok(rows)
    }

    /// Sends a range of punches again to one endpoint, due at `now` (Unix µs).
    ///
    /// Punches without an event (stored while no endpoint existed) get their `attendance.punch`
    /// event, built exactly as the punch writer builds it, inserted with `fan_out` off so that
    /// no other endpoint is queued. Then every event in the range gets a delivery to this
    /// endpoint: a new one, or the existing one made pending and due now with a fresh schedule
    /// (one being sent right now is left to its worker). The range is fixed at the punches
    /// stored when the replay starts (the engine's fence: SQLite the largest punch id,
    /// PostgreSQL each device's `last_seq`) and worked through in chunks, one short transaction
    /// each; a replay interrupted half-way can simply be repeated.
    pub async fn replay_punches(
        &self,
        endpoint_uid: &str,
        range: &ReplayRange<'_>,
        max_events: i64,
        now: i64,
    ) -> Result<ReplayOutcome, StoreError> {
        if self.endpoint_by_uid(endpoint_uid).await?.is_none() {
            return Ok(ReplayOutcome::NotFound);
        }
        on_db!(self, |db| {
            let (fence, count) = {
                let mut conn = db.pool().acquire().await?;
                let fence = dialect::replay_fence(&mut conn, range).await?;
                let count = dialect::replay_count(&mut conn, &fence, range).await?;
                (fence, count)
            };
            if count > max_events {
                return Ok(ReplayOutcome::TooMany(count));
            }
            let mut cursor = Default::default();
            let (mut events, mut events_created) = (0_u64, 0_u64);
            loop {
                let mut tx = db.begin().await?;
                let Some(endpoint_id) = sqlx::query_scalar::<_, i64>(
                    "SELECT id FROM webhook_endpoints WHERE uid = $1 AND deleted_at IS NULL",
                )
                .bind(endpoint_uid)
                .fetch_optional(&mut *tx)
                .await?
                else {
                    // Deleted while the replay ran: what was queued so far was cancelled with it.
                    return Ok(ReplayOutcome::NotFound);
                };
                let punches = dialect::replay_read(&mut tx, &fence, range, &mut cursor, REPLAY_CHUNK).await?;
                if punches.is_empty() {
                    tx.commit().await?;
                    break;
                }
                let full_chunk = punches.len() as i64 == REPLAY_CHUNK;
                events_created += dialect::replay_chunk(&mut tx, &punches, endpoint_id, now).await?;
                events += punches.len() as u64;
                tx.commit().await?;
                if !full_chunk {
                    break;
                }
            }
            Ok(ReplayOutcome::Replayed { events, events_created })
        })
    }
}

/// The `attendance.punch` event ids of a chunk's punches: stored, or computed as the punch
/// writer computes them (punches stored before events existed).
fn replay_event_ids(punches: &[ReplayPunch]) -> Vec<String> {
    punches
        .iter()
        .map(|p| {
            p.event_id.clone().unwrap_or_else(|| {
                let verify = u16::try_from(p.verify).unwrap_or_default();
                punch_event_id(&p.sn, &p.pin, &p.local_time, &p.state, verify, &p.work_code)
            })
        })
        .collect()
}

/// The events to create for the punches whose event id is not in `existing`, built exactly as
/// the punch writer builds them.
fn replay_events(
    punches: &[ReplayPunch],
    event_ids: &[String],
    existing: &HashSet<String>,
    now: i64,
) -> Vec<ReplayEvent> {
    punches
        .iter()
        .zip(event_ids)
        .filter(|(_, id)| !existing.contains(id.as_str()))
        .map(|(p, id)| {
            let event = PunchEvent {
                event_id: id,
                device: EventDevice { sn: &p.sn, alias: &p.alias, time_zone: p.time_zone.as_deref().unwrap_or("") },
                seq: p.seq,
                pin: &p.pin,
                local_time: &p.local_time,
                utc_time: p.utc_time,
                state: &p.state,
                verify: u16::try_from(p.verify).unwrap_or_default(),
                work_code: &p.work_code,
                received_at: p.received_at,
                raw_line: &p.raw_line,
            };
            ReplayEvent {
                event_id: id.clone(),
                device_id: p.device_id,
                punch_id: p.id,
                seq: p.seq,
                occurred_at: event.occurred_at(),
                created_at: now,
                body: event.body(),
            }
        })
        .collect()
}

dual! {
    /// Creates the missing events of one chunk and queues every event of it; returns how many
    /// events were created.
    pub(crate) async fn replay_chunk(
        conn: &mut Conn,
        punches: &[ReplayPunch],
        endpoint_id: i64,
        now: i64,
    ) -> Result<u64, StoreError> {
        /// One delivery per listed event to the endpoint: inserted, or an existing one made due
        /// now with a fresh schedule (unless a worker holds it: PostgreSQL waits for the row lock
        /// of a claim in progress, then sees it in flight).
        const UPSERT_REPLAY_DELIVERIES: &str = concat!(
            "INSERT INTO webhook_deliveries (event_row, endpoint_id, next_attempt_at, created_at, updated_at, trigger_kind) \
             SELECT e.id, $1, $2, $2, $2, 'replay' FROM ",
            list_rows!("$3", "j"),
            " JOIN webhook_events AS e ON e.event_id = j.value \
             WHERE true \
             ORDER BY j.key \
             ON CONFLICT (event_row, endpoint_id) DO UPDATE SET \
                 state = 'pending', next_attempt_at = excluded.next_attempt_at, attempt_count = 0, \
                 first_attempt_at = NULL, updated_at = excluded.updated_at, trigger_kind = 'replay', batch_row = NULL \
             WHERE webhook_deliveries.state <> 'in_flight'"
        );
        let event_ids = replay_event_ids(punches);
        // Punches stored before events existed learn their event id.
        let unnamed: Vec<(i64, &str)> = punches
            .iter()
            .zip(&event_ids)
            .filter(|(p, _)| p.event_id.is_none())
            .map(|(p, id)| (p.id, id.as_str()))
            .collect();
        if !unnamed.is_empty() {
            dialect::name_punches(&mut *conn, &unnamed).await?;
        }
        let ids_param = dialect::list_param(&event_ids);
        let existing: HashSet<String> = sqlx::query_scalar(concat!(
            "SELECT j.value FROM ",
            list_rows!("$1", "j"),
            " WHERE EXISTS (SELECT 1 FROM webhook_events WHERE event_id = j.value)"
        ))
        .bind(&ids_param)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
        let missing = replay_events(punches, &event_ids, &existing, now);
        let mut created = 0;
        if !missing.is_empty() {
            created = dialect::insert_replay_events(&mut *conn, &missing).await?;
        }
        sqlx::query(UPSERT_REPLAY_DELIVERIES).bind(endpoint_id).bind(now).bind(&ids_param).execute(&mut *conn).await?;
        Ok(created)
    }
}

/// One row of the event listing: the stored body as JSON text.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventListRow {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub device_sn: Option<String>,
    pub seq: Option<i64>,
    pub occurred_at: i64,
    pub created_at: i64,
    pub body: Vec<u8>,
    /// Deliveries of this event: all, and those succeeded.
    pub deliveries: i64,
    pub delivered: i64,
}

impl Store {
    /// Events, newest first, optionally of one type and/or device, before `before_id`.
    pub async fn list_events(
        &self,
        event_type: Option<&str>,
        device_sn: Option<&str>,
        limit: i64,
        before_id: Option<i64>,
    ) -> Result<Vec<EventListRow>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_as(
                "SELECT e.id, e.event_id, e.event_type, dv.sn AS device_sn, e.seq, e.occurred_at, e.created_at, e.body, \
                        (SELECT CAST(COUNT(*) AS BIGINT) FROM webhook_deliveries AS d WHERE d.event_row = e.id) AS deliveries, \
                        (SELECT CAST(COUNT(*) AS BIGINT) FROM webhook_deliveries AS d WHERE d.event_row = e.id AND d.state = 'succeeded') \
                            AS delivered \
                 FROM webhook_events AS e LEFT JOIN devices AS dv ON dv.id = e.device_id \
                 WHERE ($1 IS NULL OR e.event_type = $1) AND ($2 IS NULL OR dv.sn = $2) AND ($4 IS NULL OR e.id < $4) \
                 ORDER BY e.id DESC LIMIT $3",
            )
            .bind(event_type)
            .bind(device_sn)
            .bind(limit)
            .bind(before_id)
            .fetch_all(db.pool())
            .await?)
        })
    }
}
