//! The punch hot path: group commit, on either engine.
//!
//! Each device request becomes one [`PunchBatch`]. A writer takes every batch that
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
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use tokio::sync::oneshot;

use adms_vault::{Sealer, Vault};

use crate::events::{EventDevice, PunchEvent, punch_event_id};
use crate::postgres::punch_writer::PgGroupWriter;
use crate::sqlite::punch_writer::SqliteGroupWriter;
use crate::{StoreError, now_micros, sealed};

/// Rows per INSERT statement, to bound the size of one parameter.
pub(crate) const ROWS_PER_STATEMENT: usize = 2_000;
/// Batches per transaction at most.
const BATCHES_PER_GROUP: usize = 256;
/// PostgreSQL punch writers committing groups side by side, each with a connection.
const POSTGRES_WRITERS: usize = 4;
/// Punches waiting that make another PostgreSQL group start beside those in flight (see
/// [`run_side_by_side`]).
const ROWS_FOR_ANOTHER_GROUP: usize = 64;

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
    /// The start (Unix µs) of the display day `received_at` falls in: the writer marks each
    /// device's first new punch of a day, which is how the console counts "punches today"
    /// without reading `punches` (migration 0021). 0 marks nothing.
    pub day_started_at: i64,
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

/// Handle to the writer. Cloning shares it; the writer ends when every handle is dropped, after
/// writing what was queued.
#[derive(Debug, Clone)]
pub struct PunchWriter {
    tx: flume::Sender<Job>,
    metrics: Arc<WriterMetrics>,
}

/// What the punch writer did, for `/metrics` (the server registers these): recorded once per
/// group, never per punch.
#[derive(Debug)]
pub struct WriterMetrics {
    /// Device requests (batches) per committed group.
    pub group_batches: Histogram,
    /// Time from a group's first statement to its commit's return, seconds.
    pub commit_seconds: Histogram,
    /// Punches committed as new.
    pub punches_stored: Counter,
    /// Punches a device sent again that were already stored (skipped, not duplicated).
    pub punches_resent: Counter,
    /// Groups that failed and were retried batch by batch.
    pub failed_groups: Counter,
}

impl Default for WriterMetrics {
    fn default() -> Self {
        WriterMetrics {
            group_batches: Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            commit_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 14)),
            punches_stored: Counter::default(),
            punches_resent: Counter::default(),
            failed_groups: Counter::default(),
        }
    }
}

impl WriterMetrics {
    /// Records a group that committed `inserted` of its punches as new, in `elapsed`.
    fn committed(&self, batches: &[&PunchBatch], inserted: u64, elapsed: std::time::Duration) {
        let offered: usize = batches.iter().map(|b| b.punches.len()).sum();
        self.group_batches.observe(batches.len() as f64);
        self.commit_seconds.observe(elapsed.as_secs_f64());
        self.punches_stored.inc_by(inserted);
        self.punches_resent.inc_by((offered as u64).saturating_sub(inserted));
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("device_id", &self.batch.device_id).finish()
    }
}

impl PunchWriter {
    /// Whether the writer still takes batches (its thread or task has not ended).
    pub fn is_running(&self) -> bool {
        !self.tx.is_disconnected()
    }

    /// What the writer did so far.
    pub fn metrics(&self) -> &WriterMetrics {
        &self.metrics
    }
}

/// Queued batches at most; a request beyond waits for room (back-pressure on the devices).
const QUEUED_BATCHES: usize = 4096;

impl PunchWriter {
    /// The SQLite writer: a thread of its own, owning the connection `open` makes (on that
    /// thread), so a group costs SQLite's work and nothing else: no hop to a driver's worker
    /// thread per statement, no async runtime between the statements of a transaction.
    pub(crate) async fn start_sqlite(
        open: impl FnOnce() -> Result<SqliteGroupWriter, StoreError> + Send + 'static,
        vault: Arc<OnceLock<Vault>>,
    ) -> Result<PunchWriter, StoreError> {
        let (tx, rx) = flume::bounded(QUEUED_BATCHES);
        let (opened, wait_opened) = oneshot::channel();
        let metrics = Arc::new(WriterMetrics::default());
        let recorded = Arc::clone(&metrics);
        std::thread::Builder::new()
            .name("adms-punch-writer".into())
            .spawn(move || match open() {
                Ok(writer) => {
                    let _ = opened.send(Ok(()));
                    run_on_thread(writer, rx, vault, &recorded);
                }
                Err(error) => {
                    let _ = opened.send(Err(error));
                }
            })
            .map_err(|e| StoreError::Io("the punch writer thread".into(), e))?;
        wait_opened.await.map_err(|_| StoreError::WriterStopped)??;
        Ok(PunchWriter { tx, metrics })
    }

    /// [`POSTGRES_WRITERS`] writers, each with a PostgreSQL connection of its own opened with
    /// `connect`, committing groups side by side.
    pub(crate) fn start_postgres(
        connect: sqlx::postgres::PgConnectOptions,
        vault: Arc<OnceLock<Vault>>,
    ) -> PunchWriter {
        let writers = (0..POSTGRES_WRITERS).map(|_| PgGroupWriter::new(connect.clone())).collect();
        let (tx, rx) = flume::bounded(QUEUED_BATCHES);
        let metrics = Arc::new(WriterMetrics::default());
        tokio::spawn(run_side_by_side(writers, rx, vault, Arc::clone(&metrics)));
        PunchWriter { tx, metrics }
    }

    /// Stores a batch; returns once it is committed (or failed).
    pub async fn write(&self, batch: PunchBatch) -> Result<Stored, StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx.send_async(Job { batch, done }).await.map_err(|_| StoreError::WriterStopped)?;
        match wait.await {
            Ok(Ok(stored)) => Ok(stored),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(StoreError::WriterStopped),
        }
    }
}

/// SQLite's one writer (one at a time is all the engine allows), on its own thread: takes what
/// is waiting, commits, answers. `vault` seals the rejected lines (see [`crate::sealed`]); it
/// may be set after the writer started.
///
/// A group never waits for more batches. With N devices sending small uploads the groups
/// settle into two alternating halves (one gathers while the other commits), each paying a
/// commit; waiting up to 1 ms for every device the last commit answered merged them into one,
/// which paid while the writer was a task hopping to sqlx's thread per statement. On its own
/// thread a commit is cheap enough that overlapping it with the next requests' handling wins:
/// 1-line uploads from 16 devices, 14.9–15.3 k punches/s waiting, 20.6–23.8 k not waiting
/// (BENCHMARKS.md, 2026-12-06).
fn run_on_thread(
    mut writer: SqliteGroupWriter,
    rx: flume::Receiver<Job>,
    vault: Arc<OnceLock<Vault>>,
    metrics: &WriterMetrics,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(BATCHES_PER_GROUP);
    while let Ok(first) = rx.recv() {
        jobs.push(first);
        take_waiting(&rx, &mut jobs);
        let sealer = Sealer(vault.get());
        let mut group = std::mem::take(&mut jobs);
        let started = Instant::now();
        let batches = batches_of(&group);
        let committed = writer.commit_group(sealer, &batches);
        record(metrics, &batches, &committed, started);
        drop(batches);
        if let Some(failed) = answer(&mut group, committed) {
            for job in failed {
                let started = Instant::now();
                let result = writer.commit_group(sealer, &[&job.batch]);
                record(metrics, &[&job.batch], &result, started);
                answer_one(job, result);
            }
        }
    }
}

/// Several PostgreSQL writers, each with its own connection, committing groups side by side (a
/// group's statement waits mostly for its commit's WAL flush, during which the others run, and
/// concurrent commits share flushes). Two groups with batches of the same device take turns on
/// its row (see `postgres::punch_writer`).
///
/// A group's statement costs PostgreSQL about the same CPU whether it carries one punch or a
/// hundred, so small uploads are written by one group at a time: what arrives while it commits
/// waits and forms the next group. Another group starts beside those in flight only once the
/// waiting batches hold [`ROWS_FOR_ANOTHER_GROUP`] punches, where the writers' overlap is what
/// pays (from 16 devices, one writer for every group: 11,000 punches/s at 1-line uploads, 4
/// writers 7,000; at 500-line uploads 61,000 against 92,000; BENCHMARKS.md, session 21).
async fn run_side_by_side(
    writers: Vec<PgGroupWriter>,
    rx: flume::Receiver<Job>,
    vault: Arc<OnceLock<Vault>>,
    metrics: Arc<WriterMetrics>,
) {
    let mut idle = writers;
    let mut busy: tokio::task::JoinSet<PgGroupWriter> = tokio::task::JoinSet::new();
    let mut waiting: Vec<Job> = Vec::new();
    let mut closed = false;
    loop {
        take_waiting(&rx, &mut waiting);
        let rows: usize = waiting.iter().map(|job| job.batch.punches.len()).sum();
        let start_group = !waiting.is_empty()
            && !idle.is_empty()
            && (busy.is_empty() || closed || rows >= ROWS_FOR_ANOTHER_GROUP || waiting.len() >= BATCHES_PER_GROUP);
        if start_group {
            let writer = idle.pop().expect("an idle writer");
            busy.spawn(commit_group(writer, std::mem::take(&mut waiting), Arc::clone(&vault), Arc::clone(&metrics)));
            continue;
        }
        if closed && waiting.is_empty() {
            break;
        }
        tokio::select! {
            finished = busy.join_next(), if !busy.is_empty() => match finished {
                Some(Ok(writer)) => idle.push(writer),
                Some(Err(error)) => tracing::error!(%error, "a punch group task failed"),
                None => {}
            },
            job = rx.recv_async(), if !closed && waiting.len() < BATCHES_PER_GROUP => match job {
                Ok(job) => waiting.push(job),
                Err(_) => closed = true,
            },
            // Every writer lost to a panic: the waiting batches' callers get an error.
            else => break,
        }
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

/// Commits `jobs` as one group on `writer` (and, if the group fails, each job alone) and
/// answers them; gives the writer back.
async fn commit_group(
    mut writer: PgGroupWriter,
    mut jobs: Vec<Job>,
    vault: Arc<OnceLock<Vault>>,
    metrics: Arc<WriterMetrics>,
) -> PgGroupWriter {
    let sealer = Sealer(vault.get());
    let started = Instant::now();
    let batches = batches_of(&jobs);
    let committed = writer.commit_group(sealer, &batches).await;
    record(&metrics, &batches, &committed, started);
    drop(batches);
    if let Some(failed) = answer(&mut jobs, committed) {
        for job in failed {
            let started = Instant::now();
            let result = writer.commit_group(sealer, &[&job.batch]).await;
            record(&metrics, &[&job.batch], &result, started);
            answer_one(job, result);
        }
    }
    writer
}

/// Records a group's outcome in the writer's metrics.
fn record(
    metrics: &WriterMetrics,
    batches: &[&PunchBatch],
    committed: &Result<(u64, bool), StoreError>,
    started: Instant,
) {
    match committed {
        Ok((inserted, _)) => metrics.committed(batches, *inserted, started.elapsed()),
        Err(_) => {
            metrics.failed_groups.inc();
        }
    }
}

fn batches_of(jobs: &[Job]) -> Vec<&PunchBatch> {
    jobs.iter().map(|j| &j.batch).collect()
}

/// Answers every job of a committed group. A failed group is handed back, for each batch to be
/// retried on its own, so only the culprit's device gets an error (and resends).
fn answer(jobs: &mut Vec<Job>, committed: Result<(u64, bool), StoreError>) -> Option<Vec<Job>> {
    match committed {
        Ok((inserted, made_events)) => {
            tracing::debug!(batches = jobs.len(), inserted, "punch group committed");
            for job in jobs.drain(..) {
                let _ = job.done.send(Ok(Stored { made_events }));
            }
            None
        }
        Err(error) => {
            tracing::warn!(%error, batches = jobs.len(), "punch group failed; retrying batches one by one");
            Some(std::mem::take(jobs))
        }
    }
}

/// Answers a batch retried on its own.
fn answer_one(job: Job, result: Result<(u64, bool), StoreError>) {
    let result = result.map(|(_, made_events)| Stored { made_events }).inspect_err(|e| {
        tracing::error!(device_id = job.batch.device_id, error = %e, "punch batch failed");
    });
    let _ = job.done.send(result);
}

/// Moves every job already in the channel into the group.
fn take_waiting(rx: &flume::Receiver<Job>, jobs: &mut Vec<Job>) {
    while jobs.len() < BATCHES_PER_GROUP {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
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

/// The distinct devices of a group, ascending (the order their rows are locked in).
pub(crate) fn device_ids(batches: &[&PunchBatch]) -> Vec<i64> {
    let mut ids: Vec<i64> = batches.iter().map(|b| b.device_id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Fails a group that names a device with no row (`found` of `devices` were found). The
/// writers' inserts join the device rows, so such a batch would otherwise be answered as
/// stored with nothing stored; failing, the group is written again batch by batch and only the
/// batch naming it fails. (No foreign key does it: SQLite's cannot fire behind the join, and
/// PostgreSQL's is gone, migration 0028.)
pub(crate) fn check_devices_found(found: i64, devices: &[i64]) -> Result<(), StoreError> {
    if usize::try_from(found).ok() == Some(devices.len()) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!("a punch batch names a device that is not stored (one of {devices:?})")))
    }
}

/// The display day a group marks on its devices (see [`PunchBatch::day_started_at`]): one
/// day for the whole group, its latest (a group spanning midnight counts its few punches from
/// before midnight as the new day's).
pub(crate) fn group_day(batches: &[&PunchBatch]) -> i64 {
    batches.iter().map(|b| b.day_started_at).max().unwrap_or(0)
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

/// Stores a rejected line (`$1`–`$8`: device, table, line number, sealed raw bytes, their
/// digest, reason, received at twice); a re-sent identical line only bumps its counter.
pub(crate) const INSERT_REJECTED_LINE: &str = "\
INSERT INTO rejected_lines (device_id, table_name, line_no, raw, raw_sha256, reason, first_seen_at, last_seen_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (device_id, table_name, raw_sha256) DO UPDATE SET seen_count = rejected_lines.seen_count + 1,
    last_seen_at = excluded.last_seen_at";

/// A rejected line as stored: sealed (it may be a user line with a password or card), and the
/// keyed digest that recognises it when it is sent again.
pub(crate) fn sealed_rejected_line(sealer: Sealer<'_>, device_id: i64, r: &RejectedLine) -> (Vec<u8>, [u8; 32]) {
    let digest = sealer.digest(sealed::REJECTED_RAW.kind, &r.raw);
    let prefix = format!("{device_id}/{}", r.table);
    (sealer.seal_bytes(sealed::REJECTED_RAW.kind, &sealed::digest_record(&prefix, &digest), &r.raw), digest)
}

dual! {
    /// Stores a rejected line ([`INSERT_REJECTED_LINE`]).
    pub(crate) async fn insert_rejected(
        conn: &mut Conn,
        sealer: Sealer<'_>,
        device_id: i64,
        r: &RejectedLine,
        received_at: i64,
    ) -> Result<(), StoreError> {
        let (raw, digest) = sealed_rejected_line(sealer, device_id, r);
        sqlx::query(INSERT_REJECTED_LINE)
            .bind(device_id)
            .bind(r.table)
            .bind(i64::from(r.line_no))
            .bind(raw)
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
