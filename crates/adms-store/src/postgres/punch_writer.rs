//! PostgreSQL's punch group writer: a pool connection per group, four statements and a commit.
//!
//! 1. The group's device rows are locked in id order (`FOR NO KEY UPDATE`: rows referencing a
//!    device can still be inserted meanwhile), so two processes writing the same device take
//!    turns and number its punches without gaps, and two groups sharing devices never deadlock. The same statement takes the endpoints lock in shared mode and
//!    asks whether any webhook endpoint exists (see [`ENDPOINTS_LOCK`]).
//! 2. The punches go in as one `INSERT … SELECT FROM unnest(arrays)`: new ones only (the natural
//!    key decides), `seq` continuing the device's `last_seq` in upload order.
//! 3. Their `attendance.punch` events (while an endpoint exists) as one more `unnest` insert; the
//!    fan-out trigger adds the deliveries.
//! 4. One `UPDATE` moves each device's `last_seq` (and ATTLOG stamp) forward.
//!
//! A re-sent punch inserts nothing and keeps its id and `seq`. Rejected lines, rare, are
//! written one statement each.

use std::collections::HashMap;

use sqlx::PgPool;

use adms_vault::Sealer;

use crate::punches::postgres::insert_rejected;
use crate::punches::{GroupPunches, PunchBatch, punch_event};
use crate::{StoreError, now_micros};

/// Key of the transaction-level advisory lock between the punch writers (shared) and whatever
/// creates or revives a webhook endpoint (exclusive). A group that saw no endpoint makes no
/// events; on SQLite the single writer orders it before or after an endpoint's creation, here
/// this lock does: an endpoint is created only once the groups that did not see it committed,
/// and every later group sees it.
pub(crate) const ENDPOINTS_LOCK: i64 = 0x6164_6d73_0001;

const LOCK_DEVICES: &str = "\
WITH locked AS (SELECT id FROM devices WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE)
SELECT (SELECT count(*) FROM locked),
       pg_advisory_xact_lock_shared($2) IS NOT NULL
       AND EXISTS (SELECT 1 FROM webhook_endpoints WHERE deleted_at IS NULL)";

const INSERT_PUNCHES: &str = "\
WITH n AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[],
                         $8::text[], $9::bigint[], $10::bigint[], $11::float8[], $12::text[], $13::bigint[], $14::text[])
        WITH ORDINALITY AS n (device_id, pin, local_time, state, verify, work_code, extra, time_zone, utc_time,
                              mask_flag, temperature, raw_line, received_at, event_id, ord)
), fresh AS (
    SELECT n.* FROM n
    WHERE NOT EXISTS (SELECT 1 FROM punches AS p
                      WHERE p.local_time = n.local_time AND p.device_id = n.device_id AND p.pin = n.pin
                        AND p.state = n.state AND p.verify = n.verify AND p.work_code = n.work_code)
)
INSERT INTO punches (device_id, seq, pin, local_time, state, verify, work_code, extra, time_zone, utc_time,
                     mask_flag, temperature, raw_line, received_at, event_id)
SELECT f.device_id, d.last_seq + row_number() OVER (PARTITION BY f.device_id ORDER BY f.ord),
       f.pin, f.local_time, f.state, f.verify, f.work_code, f.extra, f.time_zone, f.utc_time,
       f.mask_flag, f.temperature, f.raw_line, f.received_at, f.event_id
FROM fresh AS f
JOIN devices AS d ON d.id = f.device_id
ORDER BY f.device_id, f.ord
RETURNING id, device_id, seq, event_id";

const INSERT_PUNCH_EVENTS: &str = "\
INSERT INTO webhook_events (event_id, event_type, device_id, punch_id, seq, occurred_at, created_at, body)
SELECT e.event_id, 'attendance.punch', e.device_id, e.punch_id, e.seq, e.occurred_at, $7, e.body
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bytea[])
    WITH ORDINALITY AS e (event_id, device_id, punch_id, seq, occurred_at, body, ord)
WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE deleted_at IS NULL)
ORDER BY e.ord
ON CONFLICT (event_id) DO NOTHING";

const ADVANCE_DEVICES: &str = "\
UPDATE devices AS d
SET last_seq = GREATEST(d.last_seq, COALESCE(u.last_seq, 0)), attlog_stamp = COALESCE(u.stamp, d.attlog_stamp)
FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS u (id, last_seq, stamp)
WHERE d.id = u.id";

/// Writes the batches in one transaction. Returns the new punch rows and whether webhook
/// events were made.
pub(crate) async fn commit_group(
    pool: &PgPool,
    sealer: Sealer<'_>,
    batches: &[&PunchBatch],
) -> Result<(u64, bool), StoreError> {
    let mut device_ids: Vec<i64> = batches.iter().map(|b| b.device_id).collect();
    device_ids.sort_unstable();
    device_ids.dedup();

    let mut tx = pool.begin().await?;
    let (_, webhooks_on): (i64, bool) =
        sqlx::query_as(LOCK_DEVICES).bind(&device_ids).bind(ENDPOINTS_LOCK).fetch_one(&mut *tx).await?;

    for batch in batches {
        for r in &batch.rejected {
            insert_rejected(&mut tx, sealer, batch.device_id, r, batch.received_at).await?;
        }
    }

    let group = GroupPunches::new(batches, webhooks_on);
    let mut new_rows: Vec<(i64, i64, i64, Option<String>)> = Vec::new();
    if !group.sources.is_empty() {
        let columns = Columns::of(&group);
        new_rows = sqlx::query_as(INSERT_PUNCHES)
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
            .fetch_all(&mut *tx)
            .await?;
    }

    if webhooks_on && !new_rows.is_empty() {
        insert_events(&mut tx, &group, &new_rows).await?;
    }

    // Per device: the highest new seq, and the last stamp reported in the group.
    let mut advance: HashMap<i64, (Option<i64>, Option<&str>)> = HashMap::new();
    for (_, device_id, seq, _) in &new_rows {
        let entry = advance.entry(*device_id).or_default();
        entry.0 = Some(entry.0.map_or(*seq, |s| s.max(*seq)));
    }
    for batch in batches {
        if let Some(stamp) = &batch.attlog_stamp {
            advance.entry(batch.device_id).or_default().1 = Some(stamp);
        }
    }
    if !advance.is_empty() {
        let mut ids = Vec::with_capacity(advance.len());
        let mut seqs = Vec::with_capacity(advance.len());
        let mut stamps = Vec::with_capacity(advance.len());
        for (id, (seq, stamp)) in advance {
            ids.push(id);
            seqs.push(seq);
            stamps.push(stamp);
        }
        sqlx::query(ADVANCE_DEVICES).bind(ids).bind(seqs).bind(stamps).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok((new_rows.len() as u64, webhooks_on))
}

/// The events of the new punches, found by their event ids.
async fn insert_events(
    tx: &mut sqlx::PgConnection,
    group: &GroupPunches<'_>,
    new_rows: &[(i64, i64, i64, Option<String>)],
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
