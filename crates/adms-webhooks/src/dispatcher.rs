//! The outbox worker: claims due deliveries, sends them, records what happened.
//!
//! One loop claims deliveries with a lease (a short transaction), hands each to a task that signs
//! and sends it (no transaction is open during the HTTP call), and a writer task records finished
//! attempts in batches, one transaction per batch, fenced by each claim's lease token. Leases that
//! run out (a worker killed mid-request) are returned to the queue by a periodic sweep, so any
//! number of workers, in any number of processes, can share one database.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adms_store::webhooks::{ClaimedDelivery, Completion, DeliveryOutcome};
use adms_store::{Store, StoreError};
use bytes::Bytes;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::client::{AttemptReport, DeliveryClient, WebhookHeaders};
use crate::metrics::DeliveryMetrics;
use crate::retry::{AttemptOutcome, FailureKind, next_attempt_delay};
use crate::sealing::{SecretKey, reveal};
use crate::signing::{WebhookSecret, signature_header};
use adms_store::events::{batch_body, batch_id};

/// The time the dispatcher schedules by. Production uses the system clock; tests (and the
/// `ADMS_TEST_CLOCK` switch of the server) can move it forward to walk a 7-day retry schedule in
/// seconds.
#[derive(Debug, Default)]
pub struct Clock {
    /// Added to the system time, µs.
    offset_us: AtomicI64,
}

impl Clock {
    /// Now, Unix µs.
    pub fn now_micros(&self) -> i64 {
        let system = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
        system + self.offset_us.load(Ordering::Relaxed)
    }

    /// Moves the clock forward (never back: schedules only ever move forward).
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_micros()).unwrap_or(i64::MAX / 4);
        self.offset_us.fetch_add(by, Ordering::Relaxed);
    }
}

/// Tunables of one dispatcher.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Names this worker in leases and attempts.
    pub worker: String,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// How long a claim is valid: longer than any request may take.
    pub lease: Duration,
    /// How often to look for work when nothing wakes the dispatcher.
    pub idle_poll: Duration,
    /// How often to return expired leases to the queue.
    pub sweep_every: Duration,
    /// How long to let new deliveries gather after a wake-up before claiming them.
    pub gather: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            worker: format!("adms-bridge-{}", std::process::id()),
            concurrency: 64,
            lease: Duration::from_secs(60),
            idle_poll: Duration::from_secs(1),
            sweep_every: Duration::from_secs(5),
            gather: Duration::from_millis(5),
        }
    }
}

/// What one [`Dispatcher::run_once`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Leases that had run out, returned to the queue before the claims.
    pub leases_expired: u64,
    /// Requests sent (a batch is one).
    pub requests: usize,
    /// Deliveries recorded as delivered.
    pub succeeded: usize,
    /// Deliveries recorded otherwise: to be retried, exhausted, or their endpoint gone.
    pub failed: usize,
    /// Completions the store refused: their lease had been taken over meanwhile.
    pub fenced: usize,
}

/// Runs deliveries until `shutdown`; then waits for the requests in flight and records them.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    store: Store,
    client: DeliveryClient,
    config: DispatcherConfig,
    clock: Arc<Clock>,
    wake: Arc<Notify>,
    metrics: Arc<DeliveryMetrics>,
    /// Opens sealed signing secrets, just before signing; `None`: secrets are stored in plaintext.
    secret_key: Option<Arc<SecretKey>>,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        client: DeliveryClient,
        config: DispatcherConfig,
        clock: Arc<Clock>,
        wake: Arc<Notify>,
        metrics: Arc<DeliveryMetrics>,
    ) -> Dispatcher {
        Dispatcher { store, client, config, clock, wake, metrics, secret_key: None }
    }

    /// The operator's master key, for endpoints whose secrets are sealed at rest.
    pub fn with_secret_key(mut self, key: Option<SecretKey>) -> Dispatcher {
        self.secret_key = key.map(Arc::new);
        self
    }

    pub async fn run(self, shutdown: CancellationToken) {
        // One message per request: a batch's member completions are recorded in one transaction.
        let (done_tx, done_rx) = mpsc::channel::<Vec<Completion>>(4096);
        let writer = tokio::spawn(record_completions(self.store.clone(), done_rx, Arc::clone(&self.wake)));
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut last_sweep = i64::MIN;
        let mut last_claim_full = false;
        let sweep_every = i64::try_from(self.config.sweep_every.as_micros()).unwrap_or(i64::MAX);
        let lease = i64::try_from(self.config.lease.as_micros()).unwrap_or(i64::MAX / 4);
        while !shutdown.is_cancelled() {
            let now = self.clock.now_micros();
            if now.saturating_sub(last_sweep) >= sweep_every {
                last_sweep = now;
                match self.store.expire_leases(now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(deliveries = n, "webhook leases expired; deliveries requeued"),
                    Err(error) => tracing::error!(%error, "webhook lease sweep failed"),
                }
            }
            // A read first: a claim takes the write lock the punch writer needs, so only claim
            // when something is due. Not after a claim that filled at least half the slots it
            // had (a store may claim in steps of a few sizes): more is most likely due (a
            // backlog draining), and there the read cost PostgreSQL as much as a claim.
            let due = if std::mem::take(&mut last_claim_full) {
                Ok(Some(now))
            } else {
                self.store.next_delivery_due_at().await
            };
            match due {
                Ok(Some(due)) if due <= now => {}
                Ok(Some(due)) => {
                    let wait = Duration::from_micros(u64::try_from(due - now).unwrap_or(0));
                    self.idle(&shutdown, wait.min(self.config.idle_poll)).await;
                    continue;
                }
                Ok(None) => {
                    self.idle(&shutdown, self.config.idle_poll).await;
                    continue;
                }
                Err(error) => {
                    tracing::error!(%error, "reading the webhook queue failed");
                    self.idle(&shutdown, self.config.idle_poll).await;
                    continue;
                }
            }
            // Wait for free slots before claiming, so nothing claimed waits for a slot: one when
            // nothing is in flight (a lone event goes at once), a refill of a quarter of the slots
            // otherwise. A claim is a transaction; claiming a slot at a time as each request
            // finished made the claims, not the requests, the limit on PostgreSQL (a few round
            // trips and a commit for one or two deliveries).
            let concurrency = self.config.concurrency.max(1);
            let wanted = if permits.available_permits() == concurrency { 1 } else { (concurrency / 4).max(1) };
            let Ok(held) = Arc::clone(&permits).acquire_many_owned(wanted as u32).await else { break };
            let free = permits.available_permits() + wanted;
            let claimed = match self.store.claim_due_deliveries(&self.config.worker, now, lease, free as i64).await {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(%error, "claiming webhook deliveries failed");
                    drop(held);
                    self.idle(&shutdown, self.config.idle_poll).await;
                    continue;
                }
            };
            if claimed.is_empty() {
                // Due but not claimable now (a device pending approval, an ordered endpoint
                // waiting for an earlier seq): look again on the next wake-up or poll.
                drop(held);
                self.idle(&shutdown, self.config.idle_poll).await;
                continue;
            }
            // The slots held are used first, one per request, then more as requests finish;
            // those a smaller claim leaves unused are released at the end of the round.
            let requests = group_requests(claimed);
            last_claim_full = requests.len() * 2 >= free;
            let mut held = Some(held);
            for request in requests {
                let permit = match held.take() {
                    Some(mut slots) if slots.num_permits() > 1 => {
                        let one = slots.split(1).expect("more than one slot held");
                        held = Some(slots);
                        one
                    }
                    Some(last) => last,
                    None => match Arc::clone(&permits).acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                };
                let client = self.client.clone();
                let clock = Arc::clone(&self.clock);
                let done = done_tx.clone();
                let worker = self.config.worker.clone();
                let metrics = Arc::clone(&self.metrics);
                let key = self.secret_key.clone();
                tokio::spawn(async move {
                    let completions = deliver(&client, &clock, &worker, &metrics, key.as_deref(), request).await;
                    let _ = done.send(completions).await;
                    drop(permit);
                });
            }
        }
        // Let requests in flight finish (bounded by the client's timeout), then flush.
        let _ = permits.acquire_many(self.config.concurrency.max(1) as u32).await;
        drop(done_tx);
        let _ = writer.await;
    }

    /// One pass, then returns: returns expired leases to the queue, then claims whatever is
    /// due now (by this dispatcher's clock), sends it (up to `concurrency` requests at once) and
    /// records every attempt, again until nothing due is left to claim. Deliveries a pass fails
    /// are scheduled after now, so a pass ends. For tests and tools that drain the outbox at a
    /// known point instead of waiting for [`Dispatcher::run`]; it shares `run`'s signing,
    /// sending and outcome code, and its store calls.
    pub async fn run_once(&self) -> Result<Pass, StoreError> {
        let now = self.clock.now_micros();
        let lease = i64::try_from(self.config.lease.as_micros()).unwrap_or(i64::MAX / 4);
        let limit = i64::try_from(self.config.concurrency.max(1)).unwrap_or(i64::MAX);
        let mut pass = Pass { leases_expired: self.store.expire_leases(now).await?, ..Pass::default() };
        loop {
            let claimed = self.store.claim_due_deliveries(&self.config.worker, now, lease, limit).await?;
            if claimed.is_empty() {
                return Ok(pass);
            }
            let mut sending = tokio::task::JoinSet::new();
            for request in group_requests(claimed) {
                let client = self.client.clone();
                let clock = Arc::clone(&self.clock);
                let worker = self.config.worker.clone();
                let metrics = Arc::clone(&self.metrics);
                let key = self.secret_key.clone();
                sending
                    .spawn(async move { deliver(&client, &clock, &worker, &metrics, key.as_deref(), request).await });
                pass.requests += 1;
            }
            let mut completions = Vec::new();
            while let Some(done) = sending.join_next().await {
                completions.extend(done.unwrap_or_default());
            }
            let accepted = self.store.complete_deliveries(&completions).await?;
            pass.fenced += accepted.iter().filter(|accepted| !**accepted).count();
            for (completion, accepted) in completions.iter().zip(&accepted) {
                if *accepted {
                    match completion.outcome {
                        DeliveryOutcome::Succeeded => pass.succeeded += 1,
                        _ => pass.failed += 1,
                    }
                }
            }
        }
    }

    async fn idle(&self, shutdown: &CancellationToken, wait: Duration) {
        tokio::select! {
            () = self.wake.notified() => {
                // Under realtime load every upload wakes us; a short pause lets the uploads of the
                // next few milliseconds join one claim instead of each taking the write lock
                // (and a slot between the punch writer's commits) on its own.
                tokio::time::sleep(self.config.gather).await;
            }
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => {}
        }
    }
}

/// Splits a claim into requests: each delivery alone, and each batch's members (which a claim
/// returns one after the other, in body order) together.
fn group_requests(claimed: Vec<ClaimedDelivery>) -> Vec<Vec<ClaimedDelivery>> {
    let mut requests: Vec<Vec<ClaimedDelivery>> = Vec::with_capacity(claimed.len());
    for claim in claimed {
        match requests.last_mut() {
            Some(last) if claim.batch_row.is_some() && last[0].batch_row == claim.batch_row => last.push(claim),
            _ => requests.push(vec![claim]),
        }
    }
    requests
}

/// Signs and sends one request (a delivery alone, or a batch's members) and decides what comes
/// next for every delivery in it.
async fn deliver(
    client: &DeliveryClient,
    clock: &Clock,
    worker: &str,
    metrics: &DeliveryMetrics,
    key: Option<&SecretKey>,
    members: Vec<ClaimedDelivery>,
) -> Vec<Completion> {
    let Some(first) = members.first() else { return Vec::new() };
    let started_at = clock.now_micros();
    // A batching endpoint always gets the batch shape, even for a batch of one, so its receiver
    // parses one shape; the batch's id and body follow from its members.
    let (webhook_id, body, batch_id) = if first.batch_row.is_some() {
        let id = batch_id(members.iter().map(|m| m.event_id.as_str()));
        let body = batch_body(&id, members.iter().map(|m| m.body.as_slice()));
        (id.clone(), body, Some(id))
    } else {
        (first.event_id.clone(), first.body.clone(), None)
    };
    // Sealed secrets are opened here, for this one signature, and dropped with it.
    let mut unusable = None;
    let secrets: Vec<WebhookSecret> = first
        .secrets
        .iter()
        .filter_map(|stored| match reveal(key, &first.endpoint_uid, stored) {
            Ok(text) => text.parse().ok(),
            Err(error) => {
                unusable = Some(error);
                None
            }
        })
        .collect();
    let timestamp = started_at.div_euclid(1_000_000);
    let headers = WebhookHeaders {
        signature: signature_header(&secrets, &webhook_id, timestamp, &body),
        id: webhook_id,
        timestamp,
    };
    let report = match reqwest::Url::parse(&first.url) {
        // Never send a request its receiver could not verify.
        _ if secrets.is_empty() => AttemptReport::failed(
            FailureKind::InvalidRequest,
            match unusable {
                Some(error) => format!("no usable signing secret: {error}"),
                None => "no usable signing secret".to_owned(),
            },
            std::time::Instant::now(),
        ),
        Ok(url) => {
            let timeout =
                Duration::from_millis(u64::try_from(first.timeout_ms).unwrap_or(15_000).clamp(1_000, 120_000));
            client.send_within(&url, &headers, Bytes::from(body), Some(timeout)).await
        }
        Err(error) => AttemptReport::failed(FailureKind::InvalidRequest, error.to_string(), std::time::Instant::now()),
    };
    // Members complete together; the most advanced member's schedule decides for all.
    let attempt_no = members.iter().map(|m| m.attempt_no).max().unwrap_or(1);
    let first_attempt_at = members.iter().map(|m| m.first_attempt_at).min().unwrap_or(started_at);
    let outcome = match &report.outcome {
        AttemptOutcome::Delivered(_) => DeliveryOutcome::Succeeded,
        AttemptOutcome::Gone => DeliveryOutcome::EndpointGone,
        other => {
            let attempts = u32::try_from(attempt_no).unwrap_or(u32::MAX);
            let elapsed = Duration::from_micros(u64::try_from(started_at - first_attempt_at).unwrap_or(0));
            match next_attempt_delay(attempts, elapsed, other, rand::random::<f64>()) {
                Some(wait) => {
                    DeliveryOutcome::RetryAt(started_at + i64::try_from(wait.as_micros()).unwrap_or(i64::MAX / 4))
                }
                None => DeliveryOutcome::Exhausted,
            }
        }
    };
    let outcome_label = match &report.outcome {
        AttemptOutcome::Failed { kind, .. } => kind.as_str(),
        AttemptOutcome::Throttled { .. } => "throttled",
        AttemptOutcome::Gone => "gone",
        AttemptOutcome::Delivered(_) => "delivered",
    };
    metrics.record_attempt(first.endpoint_id, outcome_label);
    if report.outcome.is_delivered() {
        // Real time, like the event's commit time (the test clock only moves schedules).
        let now = adms_store::now_micros();
        for member in &members {
            metrics.record_latency(now - member.event_created_at);
        }
    }
    let error_kind = (!report.outcome.is_delivered()).then(|| outcome_label.to_owned());
    tracing::debug!(webhook_id = %headers.id, events = members.len(), attempt = attempt_no, status = ?report.status, ?outcome, "webhook attempt");
    let duration_us = i64::try_from(report.duration.as_micros()).unwrap_or(i64::MAX);
    let mut response_body = Some(report.response_body);
    members
        .iter()
        .map(|member| Completion {
            delivery_id: member.delivery_id,
            lease_token: member.lease_token,
            attempt_no: member.attempt_no,
            trigger: member.trigger.clone(),
            worker: worker.to_owned(),
            started_at,
            duration_us,
            http_status: report.status.map(i64::from),
            error_kind: error_kind.clone(),
            error: report.error.clone(),
            // The receiver answered once: its answer is kept on the first member's attempt.
            response_body: response_body.take().unwrap_or_default(),
            outcome,
            batch_id: batch_id.clone(),
        })
        .collect()
}

/// Records finished attempts, many per transaction. A failed write is retried: the attempts
/// happened, and until recorded their leases keep the deliveries from being sent again early.
async fn record_completions(store: Store, mut done: mpsc::Receiver<Vec<Completion>>, wake: Arc<Notify>) {
    let mut requests = Vec::with_capacity(256);
    let mut batch = Vec::with_capacity(256);
    while done.recv_many(&mut requests, 256).await > 0 {
        batch.extend(requests.drain(..).flatten());
        let mut delay = Duration::from_millis(50);
        loop {
            match store.complete_deliveries(&batch).await {
                Ok(accepted) => {
                    let fenced = accepted.iter().filter(|a| !**a).count();
                    if fenced > 0 {
                        tracing::warn!(fenced, "webhook completions refused: their leases had been taken over");
                    }
                    // A success may have re-driven exhausted deliveries; a 410 paused an endpoint.
                    if batch.iter().any(|c| c.outcome == DeliveryOutcome::Succeeded) {
                        wake.notify_one();
                    }
                    break;
                }
                Err(error) => {
                    tracing::error!(%error, attempts = batch.len(), "recording webhook attempts failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}
