//! SQLite's punch group writer: a thread of its own owning one connection (rusqlite, on the
//! same bundled SQLite as sqlx), one `BEGIN IMMEDIATE` per group.
//!
//! The writer runs on its own OS thread (see `PunchWriter::start_sqlite`) because a group is
//! SQLite's work and little else: through sqlx, every statement of a transaction was a hop to
//! the driver's worker thread and back through the async runtime, about half of what a 1-line
//! upload cost. Here a group is a few `sqlite3_step` calls on cached statements.
//!
//! A group of new punches without events (no webhook endpoint: the common group) is a few
//! cached multi-row INSERTs, columns bound ([`insert_new_punches`]): on the writer's own
//! connection a statement is no round trip, and binding costs less than writing and unpacking
//! JSON. Every other group (events to make, re-sent punches to skip) travels to
//! SQLite as one JSON array bound as a single parameter and unpacked with `jsonb_each`, so it
//! is one static, fully parameterised INSERT whatever its size. The writer does not wait for
//! groups to fill: it commits what is waiting, and the next group gathers during that commit.
//! `seq` continues the device's `last_seq`, in upload order, without gaps (a trigger advances
//! `last_seq` as each punch goes in); SQLite's single writer makes that safe across processes.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, TransactionBehavior};

use adms_vault::Sealer;

use crate::StoreError;
use crate::backend::WriteTurns;
use crate::now_micros;
use crate::punches::{
    GroupPunches, INSERT_REJECTED_LINE, PunchBatch, ROWS_PER_STATEMENT, RejectedLine, check_devices_found, device_ids,
    group_day, punch_event, sealed_rejected_line,
};

/// Prepared statements kept by the writer's connection (every statement below, with room).
const STATEMENT_CACHE: usize = 32;

/// The writer's side of SQLite: its connection, and what the last group saw.
pub(crate) struct SqliteGroupWriter {
    conn: Connection,
    /// Whether the last transaction found a webhook endpoint: the next group then asks first
    /// (see [`SqliteGroupWriter::commit_group`]).
    endpoints_seen: bool,
    /// The display day each device was last marked with by this writer ([`MARK_DAYS`] runs
    /// only for a group with a device not yet marked for its day: once a day per device).
    marked_days: HashMap<i64, i64>,
    /// The process's SQLite writers' turns: a group waits for its turn before `BEGIN IMMEDIATE`.
    turns: WriteTurns,
}

impl SqliteGroupWriter {
    /// Opens the database file at `path` (which the pool created and migrated), or the shared
    /// in-memory database sqlx named `path`, with the settings of the pool's connections:
    /// `synchronous=FULL` (a device is told `OK` only once its rows survive a power loss),
    /// foreign keys, `secure_delete`, the busy timeout.
    pub(crate) fn open(
        path: &Path,
        in_memory: bool,
        busy_timeout: Duration,
        turns: WriteTurns,
    ) -> Result<SqliteGroupWriter, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = if in_memory {
            // sqlx names `sqlite::memory:` databases `file:sqlx-in-memory-N`, and opens a named
            // one (`sqlite:NAME?mode=memory`) by its name; both with a shared cache.
            let name = path.display().to_string();
            let name = if name.starts_with("file:") { name } else { format!("file:{name}") };
            let uri = format!("{name}?mode=memory&cache=shared");
            Connection::open_with_flags(
                uri,
                flags | OpenFlags::SQLITE_OPEN_MEMORY | OpenFlags::SQLITE_OPEN_SHARED_CACHE,
            )?
        } else {
            Connection::open_with_flags(path, flags)?
        };
        conn.busy_timeout(busy_timeout)?;
        // `temp_store = MEMORY` keeps each statement's journal in memory: SQLite keeps one for
        // every insert into `punches` (a table with triggers) and writes it to a temporary
        // file once it passes 64 KiB, which a multi-row insert does (a tenth of the writer's
        // time at 500-line uploads went to those writes; BENCHMARKS.md, session 24).
        conn.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON; \
             PRAGMA temp_store = MEMORY;",
        )?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Until the first group tells otherwise, assume endpoints exist (the checked path).
        Ok(SqliteGroupWriter { conn, endpoints_seen: true, marked_days: HashMap::new(), turns })
    }

    /// Commits every batch that was waiting when the writer got to them, in one transaction.
    ///
    /// The common group (new punches only, no webhook endpoint at the last commit) is
    /// `BEGIN IMMEDIATE`, the cheap insert ([`insert_new_punches`]), the stamps, `COMMIT`.
    /// Should a punch be stored already (a re-sent batch), the natural key's unique index fails
    /// that insert; should an endpoint have appeared since, the `punches_need_their_event`
    /// trigger does. Either way the group is rolled back and written again by
    /// [`Self::commit_checked`], which asks for endpoints first and skips stored punches.
    pub(crate) fn commit_group(
        &mut self,
        sealer: Sealer<'_>,
        batches: &[&PunchBatch],
    ) -> Result<(u64, bool), StoreError> {
        let _turn = self.turns.take_blocking();
        let plain = batches.iter().all(|b| b.rejected.is_empty());
        if plain && !self.endpoints_seen {
            match self.commit_new_punches(batches) {
                Ok(Some(inserted)) => return Ok((inserted as u64, false)),
                Ok(None) => tracing::debug!("a punch of the group went in nowhere; checking its devices"),
                Err(error) if is_event_required(&error) => {
                    tracing::debug!("a webhook endpoint appeared; writing the group with its events");
                }
                Err(error) if is_stored_already(&error) => {
                    tracing::debug!("the group re-sends stored punches; writing only the new ones");
                }
                Err(error) => return Err(error.into()),
            }
        }
        let (inserted, webhooks_on) = self.commit_checked(sealer, batches)?;
        self.endpoints_seen = webhooks_on;
        Ok((inserted, webhooks_on))
    }

    /// The cheap path: every punch new, no endpoint; the number of punches inserted. The
    /// transaction rolls back when dropped on an error, or when a punch did not go in (its device
    /// has no row: `None`, and [`Self::commit_checked`] says which).
    fn commit_new_punches(&mut self, batches: &[&PunchBatch]) -> rusqlite::Result<Option<usize>> {
        let marks = self.unmarked_days(batches);
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        mark_days(&tx, &marks)?;
        let Some(inserted) = insert_new_punches(&tx, batches)? else {
            return Ok(None);
        };
        // Terminals report a new ATTLOG stamp with most uploads: recorded in the same
        // transaction, so such uploads stay on the cheap path.
        let stamps: Vec<(i64, &str)> =
            batches.iter().filter_map(|b| Some((b.device_id, b.attlog_stamp.as_deref()?))).collect();
        if !stamps.is_empty() {
            let stamps = serde_json::to_string(&stamps).unwrap_or_else(|_| "[]".into());
            tx.prepare_cached(UPDATE_STAMPS)?.execute([stamps])?;
        }
        tx.commit()?;
        self.remember_days(marks);
        Ok(Some(inserted))
    }

    /// The group's day and its devices this writer has not marked with it yet.
    fn unmarked_days(&self, batches: &[&PunchBatch]) -> DayMarks {
        let day = group_day(batches);
        let mut devices: Vec<i64> = batches
            .iter()
            .filter(|b| !b.punches.is_empty() && self.marked_days.get(&b.device_id).is_none_or(|&marked| marked < day))
            .map(|b| b.device_id)
            .collect();
        devices.sort_unstable();
        devices.dedup();
        DayMarks { day, devices }
    }

    /// Once the marks are committed.
    fn remember_days(&mut self, marks: DayMarks) {
        for device in marks.devices {
            self.marked_days.insert(device, marks.day);
        }
    }

    /// The general path: `BEGIN IMMEDIATE` with the endpoint check, then every statement the
    /// batches need, `COMMIT`. Returns the new punch rows and whether an endpoint existed
    /// (asked inside the transaction, so an endpoint created by another process is either seen
    /// here or created after this commit).
    fn commit_checked(&mut self, sealer: Sealer<'_>, batches: &[&PunchBatch]) -> Result<(u64, bool), StoreError> {
        let marks = self.unmarked_days(batches);
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let devices = device_ids(batches);
        let (webhooks_on, found): (bool, i64) = tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE deleted_at IS NULL), \
                        (SELECT count(*) FROM devices WHERE id IN (SELECT value FROM json_each(?1)))",
            )?
            .query_row([serde_json::to_string(&devices).unwrap_or_else(|_| "[]".into())], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
        check_devices_found(found, &devices)?;
        mark_days(&tx, &marks)?;
        let inserted = write_batches(&tx, sealer, batches, webhooks_on)?;
        tx.commit()?;
        self.remember_days(marks);
        Ok((inserted, webhooks_on))
    }
}

/// A group's display day and the devices to mark with it.
struct DayMarks {
    day: i64,
    devices: Vec<i64>,
}

/// Marks the day on the devices, before their punches go in ([`MARK_DAYS`]).
fn mark_days(tx: &Connection, marks: &DayMarks) -> rusqlite::Result<()> {
    if marks.day > 0 && !marks.devices.is_empty() {
        let devices = serde_json::to_string(&marks.devices).unwrap_or_else(|_| "[]".into());
        tx.prepare_cached(MARK_DAYS)?.execute(rusqlite::params![devices, marks.day])?;
    }
    Ok(())
}

/// Whether the natural key refused a punch: it is stored already.
fn is_stored_already(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error().map(|e| e.extended_code),
        Some(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    )
}

/// Whether SQLite refused a punch because it needs its webhook event (migration 0009).
fn is_event_required(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(_, Some(message)) if message.starts_with("punch_event_required"))
}

/// Stores a rejected line ([`INSERT_REJECTED_LINE`]).
fn insert_rejected(
    tx: &Connection,
    sealer: Sealer<'_>,
    device_id: i64,
    r: &RejectedLine,
    received_at: i64,
) -> rusqlite::Result<()> {
    let (raw, digest) = sealed_rejected_line(sealer, device_id, r);
    tx.prepare_cached(INSERT_REJECTED_LINE)?.execute(rusqlite::params![
        device_id,
        r.table,
        r.line_no,
        raw,
        &digest[..],
        r.reason,
        received_at,
        received_at
    ])?;
    Ok(())
}

/// Writes every batch inside the caller's transaction; returns the number of new punch rows.
///
/// New punches also get their `attendance.punch` webhook event in the same transaction (and,
/// through the fan-out trigger, one delivery per matching endpoint), so a device is answered
/// only once its punches *and* their outbox rows are durable. Events are made only while some
/// endpoint exists (`webhooks_on`).
fn write_batches(
    tx: &Connection,
    sealer: Sealer<'_>,
    batches: &[&PunchBatch],
    webhooks_on: bool,
) -> Result<u64, StoreError> {
    for batch in batches {
        for r in &batch.rejected {
            insert_rejected(tx, sealer, batch.device_id, r, batch.received_at)?;
        }
        if let Some(stamp) = &batch.attlog_stamp {
            tx.prepare_cached("UPDATE devices SET attlog_stamp = ?1 WHERE id = ?2")?
                .execute(rusqlite::params![stamp, batch.device_id])?;
        }
    }
    let group = GroupPunches::new(batches, webhooks_on);
    let rows = rows(&group);
    let (sources, event_ids) = (&group.sources, &group.event_ids);
    let by_event_id: HashMap<&str, usize> =
        event_ids.iter().enumerate().filter_map(|(i, id)| Some((id.as_deref()?, i))).collect();
    let mut inserted = 0;
    let created_at = now_micros();
    let chunks = rows.chunks(ROWS_PER_STATEMENT).count();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let json = rows_json(chunk);
        if !webhooks_on {
            inserted += tx.prepare_cached(INSERT_PUNCHES)?.execute([json])? as u64;
            continue;
        }
        let new_rows = insert_punches_returning(tx, &json, chunks == 1)?;
        inserted += new_rows.len() as u64;
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
            tx.prepare_cached(INSERT_PUNCH_EVENTS)?.execute([json])?;
        }
    }
    Ok(inserted)
}

/// Inserts one chunk and returns what the new punches' events need: with the cheap insert when
/// the group is one chunk (its places count from the group's start), falling back to the
/// general insert inside the same transaction when a punch is stored already (SQLite undoes
/// only the failed statement).
fn insert_punches_returning(
    tx: &Connection,
    json: &str,
    whole_group: bool,
) -> rusqlite::Result<Vec<(i64, i64, String)>> {
    let read = |row: &rusqlite::Row<'_>| Ok((row.get(0)?, row.get(1)?, row.get(2)?));
    if whole_group {
        let mut statement = tx.prepare_cached(INSERT_NEW_PUNCHES_RETURNING)?;
        match statement.query_map([json], read).and_then(|rows| rows.collect()) {
            Ok(rows) => return Ok(rows),
            Err(error) if is_stored_already(&error) => {}
            Err(error) => return Err(error),
        }
    }
    tx.prepare_cached(INSERT_PUNCHES_RETURNING)?.query_map([json], read)?.collect()
}

/// One punch as a JSON array element, in the column order `INSERT_PUNCHES` reads; the last
/// element is its place among the group's punches of the same device (1, 2, …), which
/// `INSERT_NEW_PUNCHES_RETURNING` adds to the device's `last_seq`.
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

/// The cheap insert of a group of punches that are all new (no webhook endpoint), as the writer
/// runs it between `BEGIN IMMEDIATE` and `COMMIT`: each device's `last_seq` read once, then the
/// punches in upload order as multi-row `INSERT … VALUES` statements ([`InsertNewPunches`]),
/// each punch numbered `last_seq` + its place among the device's punches of the group. Returns
/// the number inserted, or `None` when a device of the group has no row to number from. A punch
/// stored already (a re-send, or the same line twice in the group) fails it on the natural key.
///
/// Public only for `adms-loadgen floor`, which runs it on a connection of its own, in one
/// thread, without sqlx or async: what SQLite alone commits on a machine, the ceiling of the
/// writer for groups of that shape.
#[doc(hidden)]
pub fn insert_new_punches(conn: &Connection, batches: &[&PunchBatch]) -> rusqlite::Result<Option<usize>> {
    // Each device's next `seq`; a group holds few devices, so a short list beats a map.
    let mut next_seq: Vec<(i64, i64)> = Vec::new();
    let mut read_last_seq = conn.prepare_cached("SELECT last_seq FROM devices WHERE id = ?1")?;
    let mut rows = Vec::with_capacity(batches.iter().map(|b| b.punches.len()).sum());
    for batch in batches {
        if batch.punches.is_empty() {
            continue;
        }
        let at = match next_seq.iter().position(|(device, _)| *device == batch.device_id) {
            Some(at) => at,
            None => {
                let last: Option<i64> = read_last_seq.query_row([batch.device_id], |row| row.get(0)).optional()?;
                let Some(last) = last else { return Ok(None) };
                next_seq.push((batch.device_id, last + 1));
                next_seq.len() - 1
            }
        };
        for p in &batch.punches {
            rows.push((*batch, p, next_seq[at].1));
            next_seq[at].1 += 1;
        }
    }
    let mut inserted = 0;
    let mut rest = &rows[..];
    while !rest.is_empty() {
        let size = InsertNewPunches::size_for(rest.len());
        let (chunk, after) = rest.split_at(size);
        let mut statement = conn.prepare_cached(InsertNewPunches::sql(size))?;
        for (i, (batch, p, seq)) in chunk.iter().enumerate() {
            let at = i * INSERT_NEW_PUNCH_COLUMNS;
            statement.raw_bind_parameter(at + 1, batch.device_id)?;
            statement.raw_bind_parameter(at + 2, seq)?;
            statement.raw_bind_parameter(at + 3, &p.pin)?;
            statement.raw_bind_parameter(at + 4, &p.local_time)?;
            statement.raw_bind_parameter(at + 5, &p.state)?;
            statement.raw_bind_parameter(at + 6, p.verify)?;
            statement.raw_bind_parameter(at + 7, &p.work_code)?;
            statement.raw_bind_parameter(at + 8, &p.extra)?;
            statement.raw_bind_parameter(at + 9, &p.time_zone)?;
            statement.raw_bind_parameter(at + 10, p.utc_time)?;
            statement.raw_bind_parameter(at + 11, p.mask_flag)?;
            statement.raw_bind_parameter(at + 12, p.temperature)?;
            statement.raw_bind_parameter(at + 13, &p.raw_line)?;
            statement.raw_bind_parameter(at + 14, batch.received_at)?;
        }
        inserted += statement.raw_execute()?;
        rest = after;
    }
    Ok(Some(inserted))
}

/// Columns bound per punch by [`InsertNewPunches`].
const INSERT_NEW_PUNCH_COLUMNS: usize = 14;

/// The multi-row inserts of new punches without events (no endpoint): one statement per
/// power-of-two number of rows up to [`InsertNewPunches::MAX_ROWS`], so a group of any size is
/// a few cached statements (a group of 16 one-line uploads is one). Each row binds device,
/// `seq`, PIN, local time, state, verify, work code, extra, zone, UTC time, mask flag,
/// temperature, raw line, received at. No `ON CONFLICT`: a stored punch fails the group on the
/// natural key, which is then written the general way.
///
/// Rows per statement, not a statement per punch: SQLite keeps a statement journal for every
/// statement on a table with triggers, and bumps `sqlite_sequence` once per statement, so a
/// statement's fixed cost is paid once for many rows; binding the columns costs SQLite less
/// than unpacking them from JSON, and the writer less than writing it (BENCHMARKS.md, session
/// 24). The triggers still run for each row: `punches_advance_last_seq` moves `last_seq` to the
/// `seq` bound here.
struct InsertNewPunches;

impl InsertNewPunches {
    /// Rows of the largest statement (× 14 parameters, well under SQLite's 32,766).
    const MAX_ROWS: usize = 64;

    /// The largest statement size that fits in `remaining` rows.
    fn size_for(remaining: usize) -> usize {
        if remaining >= Self::MAX_ROWS { Self::MAX_ROWS } else { 1 << remaining.ilog2() }
    }

    /// The statement for `rows` rows (a power of two up to [`Self::MAX_ROWS`]).
    fn sql(rows: usize) -> &'static str {
        static STATEMENTS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
            (0..=InsertNewPunches::MAX_ROWS.ilog2()).map(|k| InsertNewPunches::build(1 << k)).collect()
        });
        &STATEMENTS[rows.ilog2() as usize]
    }

    fn build(rows: usize) -> String {
        let mut sql = String::from(
            "INSERT INTO punches (device_id, seq, pin, local_time, state, verify, work_code, extra, time_zone, \
             utc_time, mask_flag, temperature, raw_line, received_at) VALUES ",
        );
        for row in 0..rows {
            let first = row * INSERT_NEW_PUNCH_COLUMNS + 1;
            let placeholders: Vec<String> =
                (first..first + INSERT_NEW_PUNCH_COLUMNS).map(|n| format!("?{n}")).collect();
            if row > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            sql.push_str(&placeholders.join(", "));
            sql.push(')');
        }
        sql
    }
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
/// The same, returning what the new punches' webhook events need.
const INSERT_PUNCHES_RETURNING: &str = insert_punches!("\nRETURNING id, seq, event_id");

/// The cheap insert of a group's JSON (see `INSERT_NEW_PUNCHES_RETURNING`).
macro_rules! insert_new_punches {
    ($tail:literal) => {
        concat!(
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

/// Punches that are all new, with their events' ids (a group while some endpoint exists):
/// cheaper than `INSERT_PUNCHES` (no look-up before each row, no window to number them): each
/// `seq` is the device's `last_seq` plus the punch's place in the group, ids follow the array.
/// That is right only when every punch is new, so there is no `ON CONFLICT`: a stored punch
/// fails the statement on the natural key, and the writer takes the general insert (see
/// [`insert_punches_returning`]). `last_seq` is read as it was before the statement, because
/// SQLite runs an INSERT's SELECT to its end before inserting when the table has triggers
/// (`punches_advance_last_seq`; the store tests fail if that ever changes).
const INSERT_NEW_PUNCHES_RETURNING: &str = insert_new_punches!("\nRETURNING id, seq, event_id");

/// Records the ATTLOG stamps the uploads reported (`$1`: a JSON array of `[device id, stamp]`,
/// in group order: a device's last one wins).
const UPDATE_STAMPS: &str = "\
UPDATE devices SET attlog_stamp = (SELECT s.value ->> 1 FROM json_each($1) AS s
                                   WHERE s.value ->> 0 = devices.id ORDER BY s.key DESC LIMIT 1)
WHERE id IN (SELECT s.value ->> 0 FROM json_each($1) AS s)";

/// The first `seq` of a new display day on the devices that have not seen it (`?1` a JSON
/// array of device ids, `?2` the day's start; numbered, since SQLite numbers `$n` names in the
/// order they appear): the next punch of each gets `last_seq + 1`.
/// The writer runs it once a day per device (it remembers the marks it committed; migration
/// 0021).
const MARK_DAYS: &str = "\
UPDATE devices SET day_started_at = ?2, day_first_seq = last_seq + 1
WHERE id IN (SELECT value FROM json_each(?1)) AND day_started_at < ?2";

/// One `attendance.punch` event as a JSON array element, in the column order
/// `INSERT_PUNCH_EVENTS` reads.
type EventRow = (String, i64, i64, i64, i64, i64, String);

/// The events of new punches, only while some endpoint exists to receive them (events for
/// punches stored before the first endpoint are made by replay). The fan-out trigger adds the
/// deliveries.
const INSERT_PUNCH_EVENTS: &str = "\
INSERT INTO webhook_events (event_id, event_type, device_id, punch_id, seq, occurred_at, created_at, body)
SELECT j.value ->> 0, 'attendance.punch', j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value ->> 5,
       CAST(j.value ->> 6 AS BLOB)
FROM jsonb_each($1) AS j
WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE deleted_at IS NULL)
ORDER BY j.key
ON CONFLICT (event_id) DO NOTHING";
