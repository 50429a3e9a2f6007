//! SQLite's punch group writer: one dedicated connection, one `BEGIN IMMEDIATE` per group.
//!
//! Punches travel to SQLite as one JSON array bound as a single parameter and unpacked with
//! `jsonb_each` (each row is then read as JSONB, without re-parsing its text), so a group of any
//! size is one static, fully parameterised INSERT. The writer does not wait for groups to fill:
//! it commits what is waiting, and the next group gathers during that commit; only a small
//! group waits, at most a millisecond, for the devices the last commit answered. Without webhook
//! endpoints a group is one round trip to SQLite's thread (see [`commit_group`]). `seq` is
//! assigned in the same statement from the device's `last_seq`, in upload order, without gaps
//! (a trigger advances `last_seq`); SQLite's single writer makes that safe across processes.

use std::collections::HashMap;

use sqlx::SqliteConnection;

use adms_vault::Sealer;

use crate::StoreError;
use crate::now_micros;
use crate::punches::sqlite::insert_rejected;
use crate::punches::{GroupPunches, PunchBatch, ROWS_PER_STATEMENT, punch_event};

/// Commits every batch that was waiting when the writer got to them, in one transaction.
///
/// While it commits, the next group gathers in the channel, so under load the groups grow by
/// themselves (and [`gather`] merges small ones).
///
/// The common group (new punches only, no webhook endpoint at the last commit) is **one** round
/// trip to SQLite's thread: `BEGIN IMMEDIATE; INSERT …; COMMIT`, with the cheap insert of
/// [`BEGIN_INSERT_NEW_PUNCHES_AND_COMMIT`]. Should a punch be stored already (a re-sent
/// batch), the natural key's unique index fails that insert; should an endpoint have appeared
/// since, the `punches_need_their_event` trigger does. Either way the group is rolled back and
/// written again by [`commit_checked`], which asks for endpoints first and skips stored punches.
pub(crate) async fn commit_group(
    conn: &mut SqliteConnection,
    sealer: Sealer<'_>,
    batches: &[&PunchBatch],
    endpoints_seen: &mut bool,
) -> Result<(u64, bool), StoreError> {
    let plain = batches.iter().all(|b| b.rejected.is_empty());
    if plain && !*endpoints_seen {
        let group = GroupPunches::new(batches, false);
        if group.sources.len() <= ROWS_PER_STATEMENT {
            let json = rows_json(&rows(&group));
            // Terminals report a new ATTLOG stamp with most uploads: recorded in the same round
            // trip, so such uploads stay on the cheap path.
            let stamps: Vec<(i64, &str)> =
                batches.iter().filter_map(|b| Some((b.device_id, b.attlog_stamp.as_deref()?))).collect();
            // Every punch was inserted, or the statement failed (see the statement).
            let committed = if stamps.is_empty() {
                sqlx::query(BEGIN_INSERT_NEW_PUNCHES_AND_COMMIT).bind(json).execute(&mut *conn).await
            } else {
                let stamps = serde_json::to_string(&stamps).unwrap_or_else(|_| "[]".into());
                sqlx::query(BEGIN_INSERT_NEW_PUNCHES_STAMPS_AND_COMMIT)
                    .bind(json)
                    .bind(stamps)
                    .execute(&mut *conn)
                    .await
            };
            match committed {
                Ok(_) => return Ok((group.sources.len() as u64, false)),
                Err(error) => {
                    rollback(conn).await;
                    if is_event_required(&error) {
                        tracing::debug!("a webhook endpoint appeared; writing the group with its events");
                    } else if is_stored_already(&error) {
                        tracing::debug!("the group re-sends stored punches; writing only the new ones");
                    } else {
                        return Err(error.into());
                    }
                }
            }
        }
    }
    let (inserted, webhooks_on) = commit_checked(conn, sealer, batches).await?;
    *endpoints_seen = webhooks_on;
    Ok((inserted, webhooks_on))
}

/// Whether the natural key refused a punch: it is stored already.
fn is_stored_already(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|e| e.is_unique_violation())
}

/// Whether SQLite refused a punch because it needs its webhook event (migration 0009).
fn is_event_required(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|e| e.message().starts_with("punch_event_required"))
}

/// The general path: `BEGIN IMMEDIATE` with the endpoint check, every statement the batches
/// need, and the last one sent together with `COMMIT`. Returns the new punch rows and whether
/// an endpoint existed.
///
/// sqlx's `Transaction` is not used because it cannot send `BEGIN` or `COMMIT` with another
/// statement; [`rollback`] ends the transaction on every error path.
async fn commit_checked(
    conn: &mut SqliteConnection,
    sealer: Sealer<'_>,
    batches: &[&PunchBatch],
) -> Result<(u64, bool), StoreError> {
    let webhooks_on = begin(conn).await?;
    let written = write_batches(conn, sealer, batches, webhooks_on).await;
    Ok((finish(conn, written).await?, webhooks_on))
}

/// `BEGIN IMMEDIATE`, and whether any endpoint exists to make events for (asked inside the
/// transaction, so an endpoint created by another process is either seen here or created after
/// this commit).
async fn begin(conn: &mut SqliteConnection) -> Result<bool, StoreError> {
    let webhooks_on =
        sqlx::query_scalar("BEGIN IMMEDIATE; SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE deleted_at IS NULL)")
            .fetch_one(&mut *conn)
            .await;
    if webhooks_on.is_err() {
        rollback(conn).await;
    }
    Ok(webhooks_on?)
}

/// Runs the group's last statement with `COMMIT` (or `COMMIT` alone), or rolls back when
/// writing failed. Returns the number of new punch rows.
async fn finish(conn: &mut SqliteConnection, written: Result<Written, StoreError>) -> Result<u64, StoreError> {
    let committed = match written {
        Ok(Written { inserted, last: None }) => sqlx::query("COMMIT").execute(&mut *conn).await.map(|_| inserted),
        Ok(Written { inserted, last: Some((sql, json)) }) => {
            // sqlx adds up SQLite's change count after each statement, and `COMMIT` does not
            // reset it: the INSERT's rows are counted twice. Event rows are not punches.
            let punches = |done: sqlx::sqlite::SqliteQueryResult| {
                if sql == INSERT_PUNCHES_AND_COMMIT { done.rows_affected() / 2 } else { 0 }
            };
            sqlx::query(sql).bind(json).execute(&mut *conn).await.map(|done| inserted + punches(done))
        }
        Err(error) => {
            rollback(conn).await;
            return Err(error);
        }
    };
    if committed.is_err() {
        rollback(conn).await;
    }
    Ok(committed?)
}

/// Ends a transaction that failed. SQLite may already have rolled it back itself (some I/O
/// errors do), in which case `ROLLBACK` reports "no transaction is active": nothing to undo.
async fn rollback(conn: &mut SqliteConnection) {
    if let Err(error) = sqlx::query("ROLLBACK").execute(&mut *conn).await {
        tracing::debug!(%error, "rollback after a failed punch group");
    }
}

/// What [`write_batches`] did, and the statement it left for [`finish`] to send with `COMMIT`.
struct Written {
    /// New punch rows already inserted.
    inserted: u64,
    /// The last statement (one that ends in `; COMMIT`) and its JSON parameter.
    last: Option<(&'static str, String)>,
}

/// One punch as a JSON array element, in the column order `INSERT_PUNCHES` reads; the last
/// element is its place among the group's punches of the same device (1, 2, …), which
/// `BEGIN_INSERT_NEW_PUNCHES_AND_COMMIT` adds to the device's `last_seq`.
type PunchRow<'a> = (
    i64,
    &'a str,
    &'a str,
    &'a str,
    u16,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<i64>,
    Option<u8>,
    Option<f64>,
    &'a str,
    i64,
    Option<&'a str>,
    i64,
);

/// Writes every batch inside the caller's transaction, except for one last statement that the
/// caller sends together with `COMMIT` (see [`Written`]).
///
/// New punches also get their `attendance.punch` webhook event in the same transaction (and,
/// through the fan-out trigger, one delivery per matching endpoint), so a device is answered
/// only once its punches *and* their outbox rows are durable. Events are made only while some
/// endpoint exists (`webhooks_on`).
async fn write_batches(
    tx: &mut SqliteConnection,
    sealer: Sealer<'_>,
    batches: &[&PunchBatch],
    webhooks_on: bool,
) -> Result<Written, StoreError> {
    // Rare extras first, so that the punches can go last, with the COMMIT.
    for batch in batches {
        for r in &batch.rejected {
            insert_rejected(tx, sealer, batch.device_id, r, batch.received_at).await?;
        }
        if let Some(stamp) = &batch.attlog_stamp {
            sqlx::query("UPDATE devices SET attlog_stamp = $1 WHERE id = $2")
                .bind(stamp)
                .bind(batch.device_id)
                .execute(&mut *tx)
                .await?;
        }
    }
    let group = GroupPunches::new(batches, webhooks_on);
    let rows = rows(&group);
    let (sources, event_ids) = (&group.sources, &group.event_ids);
    let by_event_id: HashMap<&str, usize> =
        event_ids.iter().enumerate().filter_map(|(i, id)| Some((id.as_deref()?, i))).collect();
    let mut written = Written { inserted: 0, last: None };
    let created_at = now_micros();
    let chunks = rows.chunks(ROWS_PER_STATEMENT).count();
    for (index, chunk) in rows.chunks(ROWS_PER_STATEMENT).enumerate() {
        let json = rows_json(chunk);
        let last_chunk = index + 1 == chunks;
        if !webhooks_on {
            if last_chunk {
                written.last = Some((INSERT_PUNCHES_AND_COMMIT, json));
            } else {
                written.inserted += sqlx::query(INSERT_PUNCHES).bind(json).execute(&mut *tx).await?.rows_affected();
            }
            continue;
        }
        let new_rows = insert_punches_returning(tx, &json, chunks == 1).await?;
        written.inserted += new_rows.len() as u64;
        let events: Vec<EventRow> = new_rows
            .iter()
            .filter_map(|(punch_id, seq, event_id)| {
                let (batch, p) = sources[*by_event_id.get(event_id.as_str())?];
                let event = punch_event(batch, p, event_id, *seq);
                let body = String::from_utf8(event.body()).unwrap_or_default();
                Some((event_id.clone(), batch.device_id, *punch_id, *seq, event.occurred_at(), created_at, body))
            })
            .collect();
        if !events.is_empty() {
            let json = serde_json::to_string(&events).unwrap_or_else(|_| "[]".into());
            if last_chunk {
                written.last = Some((INSERT_PUNCH_EVENTS_AND_COMMIT, json));
            } else {
                sqlx::query(INSERT_PUNCH_EVENTS).bind(json).execute(&mut *tx).await?;
            }
        }
    }
    Ok(written)
}

/// Inserts one chunk and returns what the new punches' events need: with the cheap insert when
/// the group is one chunk (its places count from the group's start), falling back to the
/// general insert inside the same transaction when a punch is stored already (SQLite undoes
/// only the failed statement).
async fn insert_punches_returning(
    tx: &mut SqliteConnection,
    json: &str,
    whole_group: bool,
) -> Result<Vec<(i64, i64, String)>, StoreError> {
    if whole_group {
        match sqlx::query_as(INSERT_NEW_PUNCHES_RETURNING).bind(json).fetch_all(&mut *tx).await {
            Ok(rows) => return Ok(rows),
            Err(error) if is_stored_already(&error) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(sqlx::query_as(INSERT_PUNCHES_RETURNING).bind(json).fetch_all(&mut *tx).await?)
}

/// The group's rows in the order `INSERT_PUNCHES` reads them.
fn rows<'a>(group: &'a GroupPunches<'_>) -> Vec<PunchRow<'a>> {
    let mut per_device: HashMap<i64, i64> = HashMap::new();
    group
        .sources
        .iter()
        .zip(&group.event_ids)
        .map(|((batch, p), event_id)| {
            let place = per_device.entry(batch.device_id).or_insert(0);
            *place += 1;
            (
                batch.device_id,
                p.pin.as_str(),
                p.local_time.as_str(),
                p.state.as_str(),
                p.verify,
                p.work_code.as_str(),
                p.extra.as_str(),
                p.time_zone.as_deref(),
                p.utc_time,
                p.mask_flag,
                p.temperature,
                p.raw_line.as_str(),
                batch.received_at,
                event_id.as_deref(),
                *place,
            )
        })
        .collect()
}

/// The cheap insert of a group of new punches (no webhook endpoint) and its one parameter, as
/// the writer sends them between `BEGIN IMMEDIATE` and `COMMIT`.
///
/// Only for `adms-loadgen floor`, which runs this same statement on a connection of its own, in
/// one thread, without sqlx or async: what SQLite alone commits on a machine, the ceiling of
/// the writer for groups of that shape.
#[doc(hidden)]
pub fn new_punches_insert(batches: &[&PunchBatch]) -> (&'static str, String) {
    let group = GroupPunches::new(batches, false);
    (INSERT_NEW_PUNCHES, rows_json(&rows(&group)))
}

/// The JSON array parameter of one INSERT.
fn rows_json(rows: &[PunchRow<'_>]) -> String {
    serde_json::to_string(rows).unwrap_or_else(|_| "[]".into())
}

/// The statement shared by both variants below (see `INSERT_PUNCHES`).
macro_rules! insert_punches {
    ($tail:literal) => {
        concat!(
            "\
WITH n AS MATERIALIZED (
    SELECT j.key AS ord, j.value ->> 0 AS device_id, j.value ->> 1 AS pin, j.value ->> 2 AS local_time,
           j.value ->> 3 AS state, j.value ->> 4 AS verify, j.value ->> 5 AS work_code, j.value ->> 6 AS extra,
           j.value ->> 7 AS time_zone, j.value ->> 8 AS utc_time, j.value ->> 9 AS mask_flag,
           j.value ->> 10 AS temperature, j.value ->> 11 AS raw_line, j.value ->> 12 AS received_at,
           j.value ->> 13 AS event_id
    FROM jsonb_each($1) AS j)
INSERT INTO punches (device_id, seq, pin, local_time, state, verify, work_code, extra, time_zone, utc_time, \
                     mask_flag, temperature, raw_line, received_at, event_id)
SELECT n.device_id, d.last_seq + row_number() OVER (PARTITION BY n.device_id ORDER BY n.ord),
       n.pin, n.local_time, n.state, n.verify, n.work_code, n.extra, n.time_zone, n.utc_time,
       n.mask_flag, n.temperature, n.raw_line, n.received_at, n.event_id
FROM n
JOIN devices AS d ON d.id = n.device_id
WHERE NOT EXISTS (SELECT 1 FROM punches AS p
                  WHERE p.device_id = n.device_id AND p.pin = n.pin AND p.local_time = n.local_time
                    AND p.state = n.state AND p.verify = n.verify AND p.work_code = n.work_code)
ORDER BY n.device_id, n.ord
ON CONFLICT DO NOTHING",
            $tail
        )
    };
}

/// New punches only (the natural key decides), `seq` continuing the device's `last_seq` in
/// upload order, ids ascending in the same order for each device. Across the devices of one
/// group ids go device by device (the order the window function already sorted in, so SQLite
/// sorts once); the group commits at once, so no reader sees one device's rows without the
/// others'.
const INSERT_PUNCHES: &str = insert_punches!("");
/// The same, committing the transaction in the same round trip.
const INSERT_PUNCHES_AND_COMMIT: &str = insert_punches!(";\nCOMMIT");
/// The statement shared by both variants below (see `BEGIN_INSERT_NEW_PUNCHES_AND_COMMIT`).
macro_rules! insert_new_punches {
    ($head:literal, $tail:literal) => {
        concat!(
            $head,
            "\
INSERT INTO punches (device_id, seq, pin, local_time, state, verify, work_code, extra, time_zone, utc_time, \
                     mask_flag, temperature, raw_line, received_at, event_id)
SELECT d.id, d.last_seq + (j.value ->> 14), j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4,
       j.value ->> 5, j.value ->> 6, j.value ->> 7, j.value ->> 8, j.value ->> 9, j.value ->> 10, j.value ->> 11,
       j.value ->> 12, j.value ->> 13
FROM jsonb_each($1) AS j
JOIN devices AS d ON d.id = j.value ->> 0",
            $tail
        )
    };
}

/// Punches that are all new, in one round trip: open the transaction, insert, commit.
///
/// Cheaper than `INSERT_PUNCHES` (no look-up before each row, no window to number them): each
/// `seq` is the device's `last_seq` plus the punch's place in the group, ids follow the array.
/// That is right only when every punch is new, so there is no `ON CONFLICT`: a stored punch
/// fails the statement on the natural key, and the writer takes the general insert (see
/// [`commit_group`] and [`insert_punches_returning`]). `last_seq` is read as it was before the
/// statement, because SQLite runs an INSERT's SELECT to its end before inserting when the table
/// has triggers (`punches_advance_last_seq`; the store tests fail if that ever changes).
const BEGIN_INSERT_NEW_PUNCHES_AND_COMMIT: &str = insert_new_punches!("BEGIN IMMEDIATE;\n", ";\nCOMMIT");
/// [`BEGIN_INSERT_NEW_PUNCHES_AND_COMMIT`] that also records the ATTLOG stamps the uploads
/// reported (`$2`: a JSON array of `[device id, stamp]`, in group order: a device's last one
/// wins).
const BEGIN_INSERT_NEW_PUNCHES_STAMPS_AND_COMMIT: &str = insert_new_punches!(
    "BEGIN IMMEDIATE;\n",
    ";\nUPDATE devices SET attlog_stamp = (SELECT s.value ->> 1 FROM json_each($2) AS s \
     WHERE s.value ->> 0 = devices.id ORDER BY s.key DESC LIMIT 1) \
     WHERE id IN (SELECT s.value ->> 0 FROM json_each($2) AS s);\nCOMMIT"
);
/// The same statement alone, for [`new_punches_insert`].
const INSERT_NEW_PUNCHES: &str = insert_new_punches!("", "");
/// The same inside an open transaction, returning what the new punches' webhook events need.
const INSERT_NEW_PUNCHES_RETURNING: &str = insert_new_punches!("", "\nRETURNING id, seq, event_id");
/// The same, returning what the new punches' webhook events need.
const INSERT_PUNCHES_RETURNING: &str = insert_punches!("\nRETURNING id, seq, event_id");

/// One `attendance.punch` event as a JSON array element, in the column order
/// `INSERT_PUNCH_EVENTS` reads.
type EventRow = (String, i64, i64, i64, i64, i64, String);

/// The events of new punches, only while some endpoint exists to receive them (events for
/// punches stored before the first endpoint are made by replay). The fan-out trigger adds the
/// deliveries.
macro_rules! insert_punch_events {
    ($tail:literal) => {
        concat!(
            "\
INSERT INTO webhook_events (event_id, event_type, device_id, punch_id, seq, occurred_at, created_at, body)
SELECT j.value ->> 0, 'attendance.punch', j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value ->> 5,
       CAST(j.value ->> 6 AS BLOB)
FROM jsonb_each($1) AS j
WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE deleted_at IS NULL)
ORDER BY j.key
ON CONFLICT (event_id) DO NOTHING",
            $tail
        )
    };
}

const INSERT_PUNCH_EVENTS: &str = insert_punch_events!("");
/// The same, committing the transaction in the same round trip.
const INSERT_PUNCH_EVENTS_AND_COMMIT: &str = insert_punch_events!(";\nCOMMIT");
