//! The punch hot path: group commit, on either engine.
//!
//! Each device request becomes one [`PunchBatch`]. A single writer task takes every batch that
//! is waiting, writes them all in **one** transaction, commits, and only then answers each
//! caller. Requests arriving during a commit wait for the next one, so under load one commit
//! (one `fsync`) covers many devices' requests, and no device is answered before its rows are
//! durable. One bad batch never fails its neighbours: a failed group is retried batch by batch.
//!
//! How a group is written is per engine: `sqlite::punch_writer` (one JSON parameter unpacked by
//! `jsonb_each`, `seq` from a trigger, SQLite's single writer) and `postgres::punch_writer`
//! (arrays unpacked by `UNNEST`, the device rows locked in id order so that two processes
//! writing one device still number its punches without gaps). Both de-duplicate by the natural
//! key (device, PIN, local time, state, verify, work code): a re-sent punch inserts nothing and
//! keeps its id and `seq`; `seq` continues the device's `last_seq` in upload order.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use adms_vault::{Sealer, Vault};

use crate::events::{EventDevice, PunchEvent, punch_event_id};
use crate::{StoreError, now_micros, sealed};

/// Rows per INSERT statement, to bound the size of one parameter.
pub(crate) const ROWS_PER_STATEMENT: usize = 2_000;
/// Batches per transaction at most.
const BATCHES_PER_GROUP: usize = 256;
/// A group with fewer rows may wait for more batches (see `gather`)...
const ROWS_WORTH_WAITING_FOR: usize = 64;
/// ...for this long at most (Tokio's timer rounds up to the millisecond).
const MAX_GATHER_WAIT: std::time::Duration = std::time::Duration::from_millis(1);
/// PostgreSQL punch writers committing groups side by side, each with a connection.
const POSTGRES_WRITERS: usize = 4;

/// One punch ready to store; built by the server from a parsed ATTLOG line.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NewPunch {
    pub pin: String,
    /// Canonical `YYYY-MM-DD HH:MM:SS` device wall-clock time.
    pub local_time: String,
    pub state: String,
    pub verify: u16,
    pub work_code: String,
    pub extra: String,
    /// The zone the local time was read in (IANA name or fixed offset).
    pub time_zone: Option<String>,
    /// The UTC instant (Unix seconds) when the zone is known.
    pub utc_time: Option<i64>,
    pub mask_flag: Option<u8>,
    pub temperature: Option<f64>,
    /// The line exactly as received.
    pub raw_line: String,
}

/// A line that could not be parsed: kept raw with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedLine {
    pub table: &'static str,
    pub line_no: u32,
    pub raw: Vec<u8>,
    pub reason: &'static str,
}

/// Everything one device request contributes to the punch tables.
#[derive(Debug, Clone, Default)]
pub struct PunchBatch {
    pub device_id: i64,
    pub punches: Vec<NewPunch>,
    pub rejected: Vec<RejectedLine>,
    /// New ATTLOG stamp to record, when the device reported a different one.
    pub attlog_stamp: Option<String>,
    /// Receive time, Unix microseconds.
    pub received_at: i64,
    /// The device as webhook events describe it (the SN also derives each punch's event id).
    pub device_sn: String,
    pub device_alias: String,
    pub device_time_zone: String,
}

struct Job {
    batch: PunchBatch,
    done: oneshot::Sender<Result<Stored, StoreError>>,
}

/// What storing a batch did, beyond making its punches durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Webhook events were made in the same transaction (some endpoint existed), so new
    /// deliveries may be waiting. Without endpoints there is nothing to wake the dispatcher for.
    pub made_events: bool,
}

/// Handle to the writer task. Cloning shares the task; it ends when every handle is dropped,
/// after writing what was queued.
#[derive(Debug, Clone)]
pub struct PunchWriter {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("device_id", &self.batch.device_id).finish()
    }
}

impl PunchWriter {
    /// A writer owning `conn`, a SQLite connection of its own.
    pub(crate) fn start_sqlite(conn: SqliteConnection, vault: Arc<OnceLock<Vault>>) -> PunchWriter {
        // Until the first group tells otherwise, assume endpoints exist (the checked path).
        PunchWriter::start(GroupWriter::Sqlite { conn, endpoints_seen: true }, vault)
    }

    /// [`POSTGRES_WRITERS`] writers, each with a PostgreSQL connection of its own opened with
    /// `connect`, committing groups side by side.
    pub(crate) fn start_postgres(
        connect: sqlx::postgres::PgConnectOptions,
        vault: Arc<OnceLock<Vault>>,
    ) -> PunchWriter {
        let writers = (0..POSTGRES_WRITERS)
            .map(|_| {
                GroupWriter::Postgres(Box::new(crate::postgres::punch_writer::PgGroupWriter::new(connect.clone())))
            })
            .collect();
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run_side_by_side(writers, rx, vault));
        PunchWriter { tx }
    }

    fn start(writer: GroupWriter, vault: Arc<OnceLock<Vault>>) -> PunchWriter {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(writer, rx, vault));
        PunchWriter { tx }
    }

    /// Stores a batch; returns once it is committed (or failed).
    pub async fn write(&self, batch: PunchBatch) -> Result<Stored, StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Job { batch, done }).await.map_err(|_| StoreError::WriterStopped)?;
        match wait.await {
            Ok(Ok(stored)) => Ok(stored),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(StoreError::WriterStopped),
        }
    }
}

/// What a group is written with.
enum GroupWriter {
    Sqlite {
        conn: SqliteConnection,
        /// What the last transaction saw; decides whether the next group asks first (see
        /// `sqlite::punch_writer::commit_group`).
        endpoints_seen: bool,
    },
    Postgres(Box<crate::postgres::punch_writer::PgGroupWriter>),
}

impl GroupWriter {
    /// Writes the batches in one transaction: the new punch rows, and whether webhook events
    /// were made (some endpoint existed).
    async fn commit(&mut self, sealer: Sealer<'_>, batches: &[&PunchBatch]) -> Result<(u64, bool), StoreError> {
        match self {
            GroupWriter::Sqlite { conn, endpoints_seen } => {
                crate::sqlite::punch_writer::commit_group(conn, sealer, batches, endpoints_seen).await
            }
            GroupWriter::Postgres(writer) => writer.commit_group(sealer, batches).await,
        }
    }

    async fn close(self) {
        match self {
            GroupWriter::Sqlite { conn, .. } => {
                let _ = conn.close().await;
            }
            GroupWriter::Postgres(writer) => (*writer).close().await,
        }
    }
}

/// One writer, one group at a time (SQLite: one writer is all the engine allows). `vault`
/// seals the rejected lines (see [`crate::sealed`]); it may be set after the writer started.
async fn run(mut writer: GroupWriter, mut rx: mpsc::Receiver<Job>, vault: Arc<OnceLock<Vault>>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(BATCHES_PER_GROUP);
    // Batches the next group may wait for (see `gather`).
    let mut expected = 0;
    while let Some(first) = rx.recv().await {
        jobs.push(first);
        take_waiting(&mut rx, &mut jobs);
        gather(&mut rx, &mut jobs, expected).await;
        let answered = jobs.len();
        commit_and_answer(&mut writer, &vault, std::mem::take(&mut jobs)).await;
        // The devices answered now, and those whose requests arrived during the commit.
        expected = (answered + rx.len()).min(BATCHES_PER_GROUP);
    }
    writer.close().await;
}

/// Several writers, each with its own connection, committing groups side by side (PostgreSQL:
/// a group's statement waits mostly for its commit's WAL flush, during which the others run,
/// and concurrent commits share flushes). A group forms from what is waiting when a writer is
/// free, so under load the groups grow by themselves. Two groups with batches of the same
/// device take turns on its row (see `postgres::punch_writer`).
async fn run_side_by_side(writers: Vec<GroupWriter>, mut rx: mpsc::Receiver<Job>, vault: Arc<OnceLock<Vault>>) {
    let mut idle = writers;
    let mut busy: tokio::task::JoinSet<GroupWriter> = tokio::task::JoinSet::new();
    loop {
        let Some(mut writer) = idle.pop() else {
            match busy.join_next().await {
                Some(Ok(writer)) => idle.push(writer),
                Some(Err(error)) => tracing::error!(%error, "a punch group task failed"),
                None => break,
            }
            continue;
        };
        let first = tokio::select! {
            finished = busy.join_next(), if !busy.is_empty() => {
                idle.push(writer);
                match finished {
                    Some(Ok(done)) => idle.push(done),
                    Some(Err(error)) => tracing::error!(%error, "a punch group task failed"),
                    None => {}
                }
                continue;
            }
            job = rx.recv() => match job {
                Some(job) => job,
                None => {
                    idle.push(writer);
                    break;
                }
            },
        };
        let mut jobs = vec![first];
        take_waiting(&mut rx, &mut jobs);
        let vault = Arc::clone(&vault);
        busy.spawn(async move {
            commit_and_answer(&mut writer, &vault, jobs).await;
            writer
        });
    }
    while let Some(done) = busy.join_next().await {
        if let Ok(writer) = done {
            idle.push(writer);
        }
    }
    for writer in idle {
        writer.close().await;
    }
}

/// Commits the jobs' batches as one group and answers each job; when the group fails, each
/// batch is retried on its own, so only the culprit's device gets an error (and resends).
async fn commit_and_answer(writer: &mut GroupWriter, vault: &OnceLock<Vault>, mut jobs: Vec<Job>) {
    let sealer = Sealer(vault.get());
    let batches: Vec<&PunchBatch> = jobs.iter().map(|j| &j.batch).collect();
    let committed = writer.commit(sealer, &batches).await;
    drop(batches);
    match committed {
        Ok((inserted, made_events)) => {
            tracing::debug!(batches = jobs.len(), inserted, "punch group committed");
            let stored = Stored { made_events };
            for job in jobs.drain(..) {
                let _ = job.done.send(Ok(stored));
            }
        }
        Err(error) => {
            tracing::warn!(%error, batches = jobs.len(), "punch group failed; retrying batches one by one");
            for job in jobs.drain(..) {
                let result = writer.commit(sealer, &[&job.batch]).await;
                let result = result.map(|(_, made_events)| Stored { made_events }).map_err(|e| {
                    tracing::error!(device_id = job.batch.device_id, error = %e, "punch batch failed");
                    e
                });
                let _ = job.done.send(result);
            }
        }
    }
}

/// Moves every job already in the channel into the group.
fn take_waiting(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>) {
    while jobs.len() < BATCHES_PER_GROUP {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
}

/// Lets a small group wait, briefly, for the devices the last commit just answered.
///
/// Terminals send their next upload only after our `OK`. Committing whatever is waiting keeps
/// SQLite busy, but with N devices sending small uploads it settles into two alternating
/// groups of about N/2 (one gathers while the other commits), and every group pays the whole
/// fixed cost of a commit (an `fsync` above all) for a few rows. When the last commit answered
/// `expected` devices in all (those it held plus those that arrived meanwhile), a group of
/// fewer small batches waits until they are all back, or [`MAX_GATHER_WAIT`] passes: the
/// groups merge into one of N, and one `fsync` covers twice the rows. A device that stopped
/// sending costs one wait; the next group expects only those that came. Large groups (a
/// backlog in 128-line uploads) never wait: their rows cost more than a commit.
async fn gather(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>, expected: usize) {
    let rows = |jobs: &[Job]| jobs.iter().map(|j| j.batch.punches.len()).sum::<usize>();
    if jobs.len() >= expected || rows(jobs) >= ROWS_WORTH_WAITING_FOR {
        return;
    }
    let deadline = tokio::time::sleep(MAX_GATHER_WAIT);
    tokio::pin!(deadline);
    while jobs.len() < expected && rows(jobs) < ROWS_WORTH_WAITING_FOR {
        tokio::select! {
            job = rx.recv() => match job {
                Some(job) => {
                    jobs.push(job);
                    take_waiting(rx, jobs);
                }
                None => return,
            },
            () = &mut deadline => return,
        }
    }
}

/// Key of a punch for de-duplication inside one group.
type NaturalKey<'a> = (i64, &'a str, &'a str, &'a str, u16, &'a str);

/// The punches of a group that may be new: de-duplicated by natural key across its batches (a
/// device may re-send inside one group), with their webhook event ids when events are made.
pub(crate) struct GroupPunches<'a> {
    pub(crate) sources: Vec<(&'a PunchBatch, &'a NewPunch)>,
    pub(crate) event_ids: Vec<Option<String>>,
}

impl<'a> GroupPunches<'a> {
    pub(crate) fn new(batches: &[&'a PunchBatch], with_events: bool) -> GroupPunches<'a> {
        let mut seen: HashSet<NaturalKey<'_>> = HashSet::new();
        let mut group = GroupPunches { sources: Vec::new(), event_ids: Vec::new() };
        for batch in batches {
            for p in &batch.punches {
                let key = (
                    batch.device_id,
                    p.pin.as_str(),
                    p.local_time.as_str(),
                    p.state.as_str(),
                    p.verify,
                    p.work_code.as_str(),
                );
                if !seen.insert(key) {
                    continue;
                }
                group.event_ids.push(with_events.then(|| {
                    punch_event_id(&batch.device_sn, &p.pin, &p.local_time, &p.state, p.verify, &p.work_code)
                }));
                group.sources.push((batch, p));
            }
        }
        group
    }
}

/// The `attendance.punch` event of a new punch, once it has its id's `seq`.
pub(crate) fn punch_event<'a>(batch: &'a PunchBatch, p: &'a NewPunch, event_id: &'a str, seq: i64) -> PunchEvent<'a> {
    PunchEvent {
        event_id,
        device: EventDevice { sn: &batch.device_sn, alias: &batch.device_alias, time_zone: &batch.device_time_zone },
        seq,
        pin: &p.pin,
        local_time: &p.local_time,
        utc_time: p.utc_time,
        state: &p.state,
        verify: p.verify,
        work_code: &p.work_code,
        received_at: batch.received_at,
        raw_line: &p.raw_line,
    }
}

dual! {
    /// Stores a rejected line, sealed (it may be a user line with a password or card); a re-sent
    /// identical line only bumps its counter.
    pub(crate) async fn insert_rejected(
        conn: &mut Conn,
        sealer: Sealer<'_>,
        device_id: i64,
        r: &RejectedLine,
        received_at: i64,
    ) -> Result<(), StoreError> {
        let digest = sealer.digest(sealed::REJECTED_RAW.kind, &r.raw);
        let prefix = format!("{device_id}/{}", r.table);
        sqlx::query(
            "INSERT INTO rejected_lines (device_id, table_name, line_no, raw, raw_sha256, reason, first_seen_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (device_id, table_name, raw_sha256) DO UPDATE SET seen_count = rejected_lines.seen_count + 1, \
             last_seen_at = excluded.last_seen_at",
        )
        .bind(device_id)
        .bind(r.table)
        .bind(i64::from(r.line_no))
        .bind(sealer.seal_bytes(sealed::REJECTED_RAW.kind, &sealed::digest_record(&prefix, &digest), &r.raw))
        .bind(&digest[..])
        .bind(r.reason)
        .bind(received_at)
        .bind(received_at)
        .execute(conn)
        .await?;
        Ok(())
    }
}

impl PunchBatch {
    pub fn new(device_id: i64) -> PunchBatch {
        PunchBatch { device_id, received_at: now_micros(), ..PunchBatch::default() }
    }
}
