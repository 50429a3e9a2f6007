//! PostgreSQL's punch group writer: one connection kept by the writer, one statement per group.
//!
//! A group is written by [`WRITE_GROUP`], a single statement whose parts PostgreSQL runs as one:
//! 1. the group's device rows are locked in id order (`FOR NO KEY UPDATE`: rows referencing a
//!    device can still be inserted meanwhile), so two processes writing the same device take
//!    turns and number its punches without gaps, and two groups sharing devices never deadlock;
//!    the endpoints advisory lock is taken shared (see [`ENDPOINTS_LOCK`]);
//! 2. the punches go in as one `INSERT … SELECT FROM unnest(arrays)`: new ones only (the natural
//!    key decides; a re-sent punch inserts nothing and keeps its id and `seq`), `seq` continuing
//!    the device's `last_seq` in upload order; a group without events first goes in as
//!    [`WRITE_NEW_GROUP`], which takes every punch as new and fails on a stored one;
//! 3. one `UPDATE` moves each device's `last_seq` (and ATTLOG stamp, newest punch's figures,
//!    first `seq` of the day) forward.
//!
//! Without webhook endpoints (the common case) the statement runs on its own, in its implicit
//! transaction: a group is **one** round trip, its commit included. Round trips, not rows, are
//! what a group of small uploads costs (each wakes a PostgreSQL backend on a busy machine). It
//! is safe because of the `punches_need_their_event` trigger: should an endpoint exist, the
//! statement fails, and the group is written the general way: `BEGIN`, the endpoint check, the
//! rejected lines, the same statement with the punches' event ids, their `attendance.punch`
//! events as one more `unnest` insert (the fan-out trigger adds the deliveries), `COMMIT`.

use std::collections::HashMap;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions as _, Connection as _};

use adms_vault::Sealer;

use crate::punches::postgres::insert_rejected;
use crate::punches::{GroupPunches, PunchBatch, check_devices_found, device_ids, group_day, punch_event};
use crate::{StoreError, now_micros};

/// Key of the transaction-level advisory lock between the punch writers (shared) and whatever
/// creates or revives a webhook endpoint (exclusive). A group that saw no endpoint makes no
/// events; on SQLite the single writer orders it before or after an endpoint's creation, here
/// this lock does: an endpoint is created only once the groups that did not see it committed,
/// and every later group sees it.
pub(crate) const ENDPOINTS_LOCK: i64 = 0x6164_6d73_0001;

/// The general path's first step: the device rows locked (as [`WRITE_GROUP`] locks them) and
/// whether any endpoint exists, asked under the endpoints lock; the transaction declares that
/// its punches carry their events (what the `punches_need_their_event` trigger asks for while
/// an endpoint exists).
const LOCK_DEVICES: &str = "\
WITH locked AS (SELECT id FROM devices WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE)
SELECT (SELECT count(*) FROM locked),
       pg_advisory_xact_lock_shared($2) IS NOT NULL
       AND set_config('adms.punch_events', 'on', true) = 'on'
       AND EXISTS (SELECT 1 FROM webhook_endpoints WHERE deleted_at IS NULL)";

/// [`WRITE_GROUP`] and [`WRITE_NEW_GROUP`], which differ only in the punches they take as new.
macro_rules! write_group {
    ($fresh:literal) => {
        concat!(
            "\
WITH locked AS (
    SELECT d.id, d.last_seq FROM devices AS d
    WHERE d.id = ANY($1) AND pg_advisory_xact_lock_shared($2) IS NOT NULL
    ORDER BY d.id
    FOR NO KEY UPDATE
), n AS (
    SELECT * FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::text[],
                         $10::text[], $11::bigint[], $12::bigint[], $13::float8[], $14::text[], $15::bigint[], $16::text[])
        WITH ORDINALITY AS n (device_id, pin, local_time, state, verify, work_code, extra, time_zone, utc_time,
                              mask_flag, temperature, raw_line, received_at, event_id, ord)
), fresh AS (",
            $fresh,
            "
), inserted AS (
    INSERT INTO punches (device_id, seq, pin, local_time, state, verify, work_code, extra, time_zone, utc_time,
                         mask_flag, temperature, raw_line, received_at, event_id)
    SELECT f.device_id, l.last_seq + row_number() OVER (PARTITION BY f.device_id ORDER BY f.ord),
           f.pin, f.local_time, f.state, f.verify, f.work_code, f.extra, f.time_zone, f.utc_time,
           f.mask_flag, f.temperature, f.raw_line, f.received_at, f.event_id
    FROM fresh AS f
    JOIN locked AS l ON l.id = f.device_id
    ORDER BY f.device_id, f.ord
    RETURNING id, device_id, seq, event_id, utc_time - received_at / 1000000 AS skew, local_time
), newest AS (
    SELECT DISTINCT ON (i.device_id) i.device_id, i.seq, i.skew, i.local_time
    FROM inserted AS i
    ORDER BY i.device_id, i.seq DESC
), stamps AS (
    SELECT * FROM unnest($17::bigint[], $18::text[]) WITH ORDINALITY AS s (device_id, stamp, ord)
), advanced AS (
    UPDATE devices AS d
    SET last_seq = GREATEST(d.last_seq, COALESCE(nw.seq, 0)),
        attlog_stamp = COALESCE((SELECT s.stamp FROM stamps AS s WHERE s.device_id = d.id ORDER BY s.ord DESC LIMIT 1),
                                d.attlog_stamp),
        newest_punch_skew = CASE WHEN nw.device_id IS NULL THEN d.newest_punch_skew ELSE nw.skew END,
        newest_punch_local_time = COALESCE(nw.local_time, d.newest_punch_local_time),
        day_first_seq = CASE WHEN nw.device_id IS NOT NULL AND d.day_started_at < $19 THEN l.last_seq + 1
                             ELSE d.day_first_seq END,
        day_started_at = CASE WHEN nw.device_id IS NOT NULL THEN GREATEST(d.day_started_at, $19)
                              ELSE d.day_started_at END
    FROM locked AS l
    LEFT JOIN newest AS nw ON nw.device_id = l.id
    WHERE d.id = l.id
      AND (nw.device_id IS NOT NULL OR EXISTS (SELECT 1 FROM stamps AS s WHERE s.device_id = d.id))
    RETURNING d.id
)
-- `advanced` runs though nothing reads it: PostgreSQL always runs a data-modifying WITH part.
-- The first row (id 0, never a punch's) counts the device rows found: see `write_group`.
SELECT 0::bigint, (SELECT count(*) FROM locked), 0::bigint, NULL::text
UNION ALL
SELECT i.id, i.device_id, i.seq, i.event_id FROM inserted AS i"
        )
    };
}

/// A group's punches and device updates in one statement (see the module documentation).
/// `$1` the group's device ids, `$2` [`ENDPOINTS_LOCK`], `$3`–`$16` the punch columns,
/// `$17`/`$18` the stamps reported (device id, stamp; in group order, a device's last wins),
/// `$19` the group's display day ([`group_day`]): each device's newest punch's figures and its
/// first `seq` of the day are kept in its row (migration 0021). Returns a row counting the
/// device rows found, then each new punch's id, device, `seq` and event id.
const WRITE_GROUP: &str = write_group!(
    "
    SELECT n.* FROM n
    WHERE NOT EXISTS (SELECT 1 FROM punches AS p
                      WHERE p.local_time = n.local_time AND p.device_id = n.device_id AND p.pin = n.pin
                        AND p.state = n.state AND p.verify = n.verify AND p.work_code = n.work_code)"
);

/// [`WRITE_GROUP`] for a group whose punches are all new, as nearly every group is: without
/// the look-up of each punch before it goes in (a tenth of PostgreSQL's time at 500-line
/// uploads; BENCHMARKS.md, session 24). A stored punch then fails the statement on the natural
/// key (nothing of the group is written), and the group is written again by [`WRITE_GROUP`].
const WRITE_NEW_GROUP: &str = write_group!("\n    SELECT n.* FROM n");

const INSERT_PUNCH_EVENTS: &str = "\
INSERT INTO webhook_events (event_id, event_type, device_id, punch_id, seq, occurred_at, created_at, body)
SELECT e.event_id, 'attendance.punch', e.device_id, e.punch_id, e.seq, e.occurred_at, $7, e.body
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bytea[])
    WITH ORDINALITY AS e (event_id, device_id, punch_id, seq, occurred_at, body, ord)
WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE deleted_at IS NULL)
ORDER BY e.ord
ON CONFLICT (event_id) DO NOTHING";

/// A new punch as [`WRITE_GROUP`] returns it: id, device, `seq`, event id.
type NewRow = (i64, i64, i64, Option<String>);

/// The writer's side of PostgreSQL: a connection of its own (not the pool's, which closes
/// without waiting for the writer), kept between groups and opened again after an error, and
/// what the last group saw.
pub(crate) struct PgGroupWriter {
    connect: PgConnectOptions,
    conn: Option<PgConnection>,
    /// Whether the last group found a webhook endpoint: the next one then asks first.
    endpoints_seen: bool,
}

impl PgGroupWriter {
    pub(crate) fn new(connect: PgConnectOptions) -> PgGroupWriter {
        // One plan per prepared statement, made once (and again after `statistics` analyzes a
        // table, which invalidates it): PostgreSQL would otherwise plan [`WRITE_GROUP`], a
        // statement of seven parts, again for each group, and under 1-line uploads its backends
        // were out of CPU (from 16 devices: 4,000–4,800 punches/s with a plan per group,
        // 7,700 with one plan; BENCHMARKS.md, session 20).
        let connect = connect.options([("plan_cache_mode", "force_generic_plan")]);
        PgGroupWriter { connect, conn: None, endpoints_seen: true }
    }

    /// Closes the connection (the writer is stopping).
    pub(crate) async fn close(self) {
        if let Some(conn) = self.conn {
            let _ = conn.close().await;
        }
    }

    /// Writes the batches in one transaction. Returns the new punch rows and whether webhook
    /// events were made.
    pub(crate) async fn commit_group(
        &mut self,
        sealer: Sealer<'_>,
        batches: &[&PunchBatch],
    ) -> Result<(u64, bool), StoreError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.connect.connect().await?),
        };
        let plain = batches.iter().all(|b| b.rejected.is_empty());
        let written = if plain && !self.endpoints_seen {
            match write_alone(conn, batches).await {
                Ok(inserted) => Ok((inserted, false)),
                Err(StoreError::Database(e)) if is_event_required(&e) => {
                    tracing::debug!("a webhook endpoint appeared; writing the group with its events");
                    write_checked(conn, sealer, batches).await
                }
                Err(e) => Err(e),
            }
        } else {
            write_checked(conn, sealer, batches).await
        };
        match &written {
            Ok((_, webhooks_on)) => self.endpoints_seen = *webhooks_on,
            // The connection may be the cause (terminated, broken): the next group takes
            // another. A transaction left open by a failure is rolled back when it goes.
            Err(_) => self.conn = None,
        }
        written
    }
}

/// Whether PostgreSQL refused a punch because it needs its webhook event.
fn is_event_required(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|e| e.message().starts_with("punch_event_required"))
}

/// The common group: [`WRITE_NEW_GROUP`] alone, in its implicit transaction, or
/// [`WRITE_GROUP`] when a punch of the group is stored already.
async fn write_alone(conn: &mut sqlx::PgConnection, batches: &[&PunchBatch]) -> Result<u64, StoreError> {
    let group = GroupPunches::new(batches, false);
    match write_group(conn, WRITE_NEW_GROUP, batches, &group).await {
        Ok(rows) => Ok(rows.len() as u64),
        Err(StoreError::Database(e)) if is_stored_already(&e) => {
            tracing::debug!("the group re-sends stored punches; writing only the new ones");
            Ok(write_group(conn, WRITE_GROUP, batches, &group).await?.len() as u64)
        }
        Err(e) => Err(e),
    }
}

/// Whether the natural key refused a punch: it is stored already.
fn is_stored_already(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|e| e.is_unique_violation())
}

/// The general path: `BEGIN`, the endpoint check, rejected lines, the group with its events,
/// `COMMIT`. Returns the new punch rows and whether events were made.
async fn write_checked(
    conn: &mut sqlx::PgConnection,
    sealer: Sealer<'_>,
    batches: &[&PunchBatch],
) -> Result<(u64, bool), StoreError> {
    let mut tx = conn.begin().await?;
    let devices = device_ids(batches);
    let (found, webhooks_on): (i64, bool) =
        sqlx::query_as(LOCK_DEVICES).bind(&devices).bind(ENDPOINTS_LOCK).fetch_one(&mut *tx).await?;
    check_devices_found(found, &devices)?;
    for batch in batches {
        for r in &batch.rejected {
            insert_rejected(&mut tx, sealer, batch.device_id, r, batch.received_at).await?;
        }
    }
    let group = GroupPunches::new(batches, webhooks_on);
    let new_rows = write_group(&mut tx, WRITE_GROUP, batches, &group).await?;
    if webhooks_on && !new_rows.is_empty() {
        insert_events(&mut tx, &group, &new_rows).await?;
    }
    tx.commit().await?;
    Ok((new_rows.len() as u64, webhooks_on))
}

/// `statement` ([`WRITE_GROUP`] or [`WRITE_NEW_GROUP`]) for the group's punches and its
/// batches' stamps; fails when a device of the group has no row (the punches of the others may
/// be committed then, when `conn` is not in a transaction: written again alone, they are found
/// stored).
async fn write_group(
    conn: &mut sqlx::PgConnection,
    statement: &'static str,
    batches: &[&PunchBatch],
    group: &GroupPunches<'_>,
) -> Result<Vec<NewRow>, StoreError> {
    let columns = Columns::of(group);
    let (stamp_devices, stamps): (Vec<i64>, Vec<&str>) =
        batches.iter().filter_map(|b| Some((b.device_id, b.attlog_stamp.as_deref()?))).unzip();
    let devices = device_ids(batches);
    let mut rows: Vec<NewRow> = sqlx::query_as(statement)
        .bind(&devices)
        .bind(ENDPOINTS_LOCK)
        .bind(&columns.device_id)
        .bind(&columns.pin)
        .bind(&columns.local_time)
        .bind(&columns.state)
        .bind(&columns.verify)
        .bind(&columns.work_code)
        .bind(&columns.extra)
        .bind(&columns.time_zone)
        .bind(&columns.utc_time)
        .bind(&columns.mask_flag)
        .bind(&columns.temperature)
        .bind(&columns.raw_line)
        .bind(&columns.received_at)
        .bind(&columns.event_id)
        .bind(stamp_devices)
        .bind(stamps)
        .bind(group_day(batches))
        .fetch_all(&mut *conn)
        .await?;
    let found = rows.iter().position(|row| row.0 == 0).map_or(0, |at| rows.remove(at).1);
    check_devices_found(found, &devices)?;
    Ok(rows)
}

/// The events of the new punches, found by their event ids.
async fn insert_events(
    tx: &mut sqlx::PgConnection,
    group: &GroupPunches<'_>,
    new_rows: &[NewRow],
) -> Result<(), StoreError> {
    let by_event_id: HashMap<&str, usize> =
        group.event_ids.iter().enumerate().filter_map(|(i, id)| Some((id.as_deref()?, i))).collect();
    let mut events = EventColumns::default();
    for (punch_id, device_id, seq, event_id) in new_rows {
        let Some(event_id) = event_id.as_deref() else { continue };
        let Some(&place) = by_event_id.get(event_id) else { continue };
        let (batch, p) = group.sources[place];
        let event = punch_event(batch, p, event_id, *seq);
        events.event_id.push(event_id);
        events.device_id.push(*device_id);
        events.punch_id.push(*punch_id);
        events.seq.push(*seq);
        events.occurred_at.push(event.occurred_at());
        events.body.push(event.body());
    }
    if events.event_id.is_empty() {
        return Ok(());
    }
    sqlx::query(INSERT_PUNCH_EVENTS)
        .bind(&events.event_id)
        .bind(&events.device_id)
        .bind(&events.punch_id)
        .bind(&events.seq)
        .bind(&events.occurred_at)
        .bind(&events.body)
        .bind(now_micros())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The group's punches as one array per column, the parameters of [`INSERT_PUNCHES`].
struct Columns<'a> {
    device_id: Vec<i64>,
    pin: Vec<&'a str>,
    local_time: Vec<&'a str>,
    state: Vec<&'a str>,
    verify: Vec<i64>,
    work_code: Vec<&'a str>,
    extra: Vec<&'a str>,
    time_zone: Vec<Option<&'a str>>,
    utc_time: Vec<Option<i64>>,
    mask_flag: Vec<Option<i64>>,
    temperature: Vec<Option<f64>>,
    raw_line: Vec<&'a str>,
    received_at: Vec<i64>,
    event_id: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn of(group: &'a GroupPunches<'a>) -> Columns<'a> {
        let n = group.sources.len();
        let mut c = Columns {
            device_id: Vec::with_capacity(n),
            pin: Vec::with_capacity(n),
            local_time: Vec::with_capacity(n),
            state: Vec::with_capacity(n),
            verify: Vec::with_capacity(n),
            work_code: Vec::with_capacity(n),
            extra: Vec::with_capacity(n),
            time_zone: Vec::with_capacity(n),
            utc_time: Vec::with_capacity(n),
            mask_flag: Vec::with_capacity(n),
            temperature: Vec::with_capacity(n),
            raw_line: Vec::with_capacity(n),
            received_at: Vec::with_capacity(n),
            event_id: Vec::with_capacity(n),
        };
        for ((batch, p), event_id) in group.sources.iter().zip(&group.event_ids) {
            c.device_id.push(batch.device_id);
            c.pin.push(&p.pin);
            c.local_time.push(&p.local_time);
            c.state.push(&p.state);
            c.verify.push(i64::from(p.verify));
            c.work_code.push(&p.work_code);
            c.extra.push(&p.extra);
            c.time_zone.push(p.time_zone.as_deref());
            c.utc_time.push(p.utc_time);
            c.mask_flag.push(p.mask_flag.map(i64::from));
            c.temperature.push(p.temperature);
            c.raw_line.push(&p.raw_line);
            c.received_at.push(batch.received_at);
            c.event_id.push(event_id.as_deref());
        }
        c
    }
}

/// The new punches' events as one array per column, the parameters of [`INSERT_PUNCH_EVENTS`].
#[derive(Default)]
struct EventColumns<'a> {
    event_id: Vec<&'a str>,
    device_id: Vec<i64>,
    punch_id: Vec<i64>,
    seq: Vec<i64>,
    occurred_at: Vec<i64>,
    body: Vec<Vec<u8>>,
}
