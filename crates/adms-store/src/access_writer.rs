//! `rtlog` ingest by group commit: the access events of every request waiting when a writer is
//! free are written in one transaction, so a thousand controllers each sending one event as it
//! happens cost a commit per group, not per request.
//!
//! A group is a handful of statements however many requests it holds ([`crate::uploads`]'s
//! `write_access_group_in`: the events of all of them in one insert, their webhook events in
//! another); a request is answered only once its group committed. Should a
//! group fail (a request naming a device deleted meanwhile), it is rolled back and its requests
//! are written again one by one, so one request's error is never another's.
//!
//! SQLite: one writer (the engine has one at a time). PostgreSQL: [`POSTGRES_WRITERS`] side by
//! side, each group taking its devices in id order (every device row an event locks, by the
//! numbering trigger, is locked in that order), so two groups sharing devices take turns and
//! never deadlock.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use adms_vault::{Sealer, Vault};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::oneshot;

use crate::StoreError;
use crate::backend::Db;
use crate::uploads::AccessUpload;

/// Requests in one group at most.
const UPLOADS_PER_GROUP: usize = 256;
/// Requests queued at most; one beyond waits for room (back-pressure on the controllers).
const QUEUED_UPLOADS: usize = 4096;
/// PostgreSQL writers committing groups side by side.
const POSTGRES_WRITERS: usize = 4;

struct Job {
    upload: AccessUpload,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The queue to the access event writers.
#[derive(Debug, Clone)]
pub(crate) struct AccessWriter {
    tx: flume::Sender<Job>,
    metrics: Arc<AccessWriterMetrics>,
}

/// What the access event writers did, for `/metrics`: recorded once per group.
#[derive(Debug)]
pub struct AccessWriterMetrics {
    /// Device requests per committed group.
    pub group_uploads: Histogram,
    /// Time from a group's first statement to its commit's return, seconds.
    pub commit_seconds: Histogram,
    /// Groups that failed and were retried request by request.
    pub failed_groups: Counter,
}

impl Default for AccessWriterMetrics {
    fn default() -> Self {
        AccessWriterMetrics {
            group_uploads: Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            commit_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 14)),
            failed_groups: Counter::default(),
        }
    }
}

impl AccessWriter {
    /// Starts the writers on the current runtime. They end once every handle is dropped.
    pub(crate) fn start(db: Db, vault: Arc<OnceLock<Vault>>) -> AccessWriter {
        let (tx, rx) = flume::bounded(QUEUED_UPLOADS);
        let metrics = Arc::new(AccessWriterMetrics::default());
        let writers = match db {
            Db::Sqlite(_) => 1,
            Db::Postgres(_) => POSTGRES_WRITERS,
        };
        for _ in 0..writers {
            tokio::spawn(run(db.clone(), Arc::clone(&vault), rx.clone(), Arc::clone(&metrics)));
        }
        AccessWriter { tx, metrics }
    }

    pub(crate) fn metrics(&self) -> &AccessWriterMetrics {
        &self.metrics
    }

    /// Writes one request's events; returns once they are committed (or failed).
    pub(crate) async fn write(&self, upload: AccessUpload) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx.send_async(Job { upload, done }).await.map_err(|_| StoreError::WriterStopped)?;
        wait.await.map_err(|_| StoreError::WriterStopped)?
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("device_id", &self.upload.device_id).finish()
    }
}

/// One writer: takes what is waiting, commits it as one group, answers.
async fn run(db: Db, vault: Arc<OnceLock<Vault>>, rx: flume::Receiver<Job>, metrics: Arc<AccessWriterMetrics>) {
    while let Ok(first) = rx.recv_async().await {
        let mut jobs = vec![first];
        while jobs.len() < UPLOADS_PER_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // Devices in id order: the order every group locks them in (see the module docs).
        jobs.sort_by_key(|job| job.upload.device_id);
        let sealer = Sealer(vault.get());
        let uploads: Vec<&AccessUpload> = jobs.iter().map(|job| &job.upload).collect();
        let committed = commit_group(&db, sealer, &uploads, &metrics).await;
        drop(uploads);
        match committed {
            Ok(()) => {
                for job in jobs {
                    let _ = job.done.send(Ok(()));
                }
            }
            Err(error) if jobs.len() == 1 => {
                let _ = jobs.pop().map(|job| job.done.send(Err(error)));
            }
            Err(StoreError::Timeout(waited)) => {
                // No turn at the write lock in time: the same wait for each request alone
                // would only lengthen the queue. Every request is refused (the controllers
                // send again).
                for job in jobs {
                    let _ = job.done.send(Err(StoreError::Timeout(waited)));
                }
            }
            Err(error) => {
                metrics.failed_groups.inc();
                tracing::debug!(%error, uploads = jobs.len(), "an access event group failed; writing its requests one by one");
                for job in jobs {
                    let result = commit_group(&db, sealer, &[&job.upload], &metrics).await;
                    let _ = job.done.send(result);
                }
            }
        }
    }
}

/// Writes `uploads` in one transaction; a committed group is recorded in `metrics`.
async fn commit_group(
    db: &Db,
    sealer: Sealer<'_>,
    uploads: &[&AccessUpload],
    metrics: &AccessWriterMetrics,
) -> Result<(), StoreError> {
    on_db!(engine db, |db| {
        let mut tx = db.begin().await?;
        let started = Instant::now();
        dialect::write_access_group_in(&mut tx, sealer, uploads).await?;
        tx.commit().await?;
        metrics.group_uploads.observe(uploads.len() as f64);
        metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
        Ok(())
    })
}
