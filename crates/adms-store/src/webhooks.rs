//! The webhook outbox: endpoints, their secrets, and the delivery queue.
//!
//! Deliveries are claimed with a lease and a fencing token (`lease_token`, bumped on every
//! claim) in one short transaction; the HTTP call happens outside any transaction; completion
//! is accepted only from the holder of the current token. A lease that expires (worker killed,
//! stuck) makes the delivery claimable again, and the stale worker's completion is then refused.
//! The attempt is counted at claim time, so a delivery that kills its worker every time still
//! walks its retry schedule to the end.

use std::collections::HashMap;

use sqlx::{FromRow, Row};

use crate::{Store, StoreError, now_micros};

/// A webhook endpoint as stored (secrets are never part of it).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Endpoint {
    pub id: i64,
    pub uid: String,
    pub url: String,
    pub description: String,
    /// JSON array of event types; `None` = every type.
    pub event_types: Option<String>,
    pub paused_reason: Option<String>,
    pub source: String,
    pub timeout_ms: i64,
    pub batch_max: i64,
    pub ordered: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What creating or updating an endpoint sets.
#[derive(Debug, Clone)]
pub struct EndpointSettings<'a> {
    pub url: &'a str,
    pub description: &'a str,
    /// JSON array of event types; `None` = every type.
    pub event_types: Option<&'a str>,
    pub timeout_ms: i64,
    pub batch_max: i64,
    pub ordered: bool,
}

/// A delivery claimed by a worker, with everything needed to send it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery_id: i64,
    /// The fencing token the completion must present.
    pub lease_token: i64,
    /// 1 for the first attempt.
    pub attempt_no: i64,
    /// `scheduled`, `manual` (resend) or `replay`: recorded on the attempt.
    pub trigger: String,
    /// When the first attempt was claimed (Unix µs): the retry horizon counts from here.
    pub first_attempt_at: i64,
    pub event_id: String,
    pub body: Vec<u8>,
    /// When the event was committed (Unix µs): end-to-end latency counts from here.
    pub event_created_at: i64,
    pub endpoint_id: i64,
    pub url: String,
    pub timeout_ms: i64,
    /// Signing secrets currently valid for the endpoint, newest first.
    pub secrets: Vec<String>,
}

/// What became of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Succeeded,
    /// Try again at this time (Unix µs).
    RetryAt(i64),
    /// The schedule is spent: kept as `exhausted`, re-driven on the endpoint's next success.
    Exhausted,
    /// The receiver answered 410: the endpoint is paused; the delivery waits, pending.
    EndpointGone,
}

/// The record of one attempt, written with the delivery's new state.
#[derive(Debug, Clone)]
pub struct Completion {
    pub delivery_id: i64,
    pub lease_token: i64,
    pub attempt_no: i64,
    /// From the claim: `scheduled`, `manual` or `replay`.
    pub trigger: String,
    pub worker: String,
    pub started_at: i64,
    pub duration_us: i64,
    pub http_status: Option<i64>,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub response_body: Vec<u8>,
    pub outcome: DeliveryOutcome,
}

/// One row of a delivery listing.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub endpoint_uid: String,
    pub state: String,
    pub attempt_count: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub succeeded_at: Option<i64>,
    pub created_at: i64,
}

/// Backlog figures for metrics, per endpoint.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct EndpointBacklog {
    pub endpoint_uid: String,
    pub due: i64,
    pub in_flight: i64,
    pub exhausted: i64,
    /// When the oldest due delivery became due (Unix µs).
    pub oldest_due_at: Option<i64>,
}

/// One completion as a JSON array element: delivery id, lease token, new state,
/// next_attempt_at, HTTP status, error, succeeded_at.
type CompletionRow<'a> = (i64, i64, &'a str, Option<i64>, Option<i64>, Option<&'a str>, Option<i64>);

/// What a claim reads per delivery: delivery id, event id, body, event created_at, endpoint id,
/// URL, timeout.
type ClaimDetail = (i64, String, Vec<u8>, i64, i64, String, i64);

/// A static `SELECT` of every endpoint column followed by `$tail` (a literal).
macro_rules! endpoint_select {
    ($tail:literal) => {
        concat!(
            "SELECT id, uid, url, description, event_types, paused_reason, source, timeout_ms, batch_max, ordered, \
             created_at, updated_at FROM webhook_endpoints ",
            $tail
        )
    };
}

impl Store {
    /// Creates an endpoint with its first signing secret.
    pub async fn create_endpoint(
        &self,
        uid: &str,
        settings: &EndpointSettings<'_>,
        source: &str,
        secret: &str,
    ) -> Result<Endpoint, StoreError> {
        let now = now_micros();
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhook_endpoints (uid, url, description, event_types, source, timeout_ms, batch_max, ordered, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(uid)
        .bind(settings.url)
        .bind(settings.description)
        .bind(settings.event_types)
        .bind(source)
        .bind(settings.timeout_ms)
        .bind(settings.batch_max)
        .bind(settings.ordered)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        insert_secret(&mut tx, id, secret, now).await?;
        tx.commit().await?;
        self.endpoint_by_uid(uid).await?.ok_or_else(|| StoreError::Conflict("endpoint vanished".into()))
    }

    /// Live (not deleted) endpoints, oldest first.
    pub async fn list_endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        Ok(sqlx::query_as(endpoint_select!("WHERE deleted_at IS NULL ORDER BY id")).fetch_all(self.pool()).await?)
    }

    pub async fn endpoint_by_uid(&self, uid: &str) -> Result<Option<Endpoint>, StoreError> {
        Ok(sqlx::query_as(endpoint_select!("WHERE uid = ? AND deleted_at IS NULL"))
            .bind(uid)
            .fetch_optional(self.pool())
            .await?)
    }

    /// The endpoint managed by `ADMS_WEBHOOK_URL`, if any.
    pub async fn env_endpoint(&self) -> Result<Option<Endpoint>, StoreError> {
        Ok(sqlx::query_as(endpoint_select!("WHERE source = 'env' AND deleted_at IS NULL ORDER BY id LIMIT 1"))
            .fetch_optional(self.pool())
            .await?)
    }

    /// Replaces an endpoint's settings. `false` when there is no such endpoint.
    pub async fn update_endpoint(&self, uid: &str, settings: &EndpointSettings<'_>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET url = ?, description = ?, event_types = ?, timeout_ms = ?, batch_max = ?, \
             ordered = ?, updated_at = ? WHERE uid = ? AND deleted_at IS NULL",
        )
        .bind(settings.url)
        .bind(settings.description)
        .bind(settings.event_types)
        .bind(settings.timeout_ms)
        .bind(settings.batch_max)
        .bind(settings.ordered)
        .bind(now_micros())
        .bind(uid)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Pauses (`Some(reason)`) or resumes (`None`) an endpoint; resuming makes its waiting
    /// deliveries due at once.
    pub async fn set_endpoint_paused(&self, uid: &str, reason: Option<&str>) -> Result<bool, StoreError> {
        let now = now_micros();
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET paused_reason = ?, updated_at = ? WHERE uid = ? AND deleted_at IS NULL",
        )
        .bind(reason)
        .bind(now)
        .bind(uid)
        .execute(&mut *tx)
        .await?;
        if reason.is_none() {
            sqlx::query(
                "UPDATE webhook_deliveries SET next_attempt_at = MIN(next_attempt_at, ?) \
                 WHERE state = 'pending' AND endpoint_id = (SELECT id FROM webhook_endpoints WHERE uid = ?)",
            )
            .bind(now)
            .bind(uid)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes an endpoint: it stops accumulating deliveries; waiting ones are cancelled; the
    /// history stays.
    pub async fn delete_endpoint(&self, uid: &str) -> Result<bool, StoreError> {
        let now = now_micros();
        let mut tx = self.begin().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "UPDATE webhook_endpoints SET deleted_at = ?, updated_at = ? WHERE uid = ? AND deleted_at IS NULL RETURNING id",
        )
        .bind(now)
        .bind(now)
        .bind(uid)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = id {
            sqlx::query(
                "UPDATE webhook_deliveries SET state = 'cancelled', updated_at = ? \
                 WHERE endpoint_id = ? AND state IN ('pending', 'exhausted')",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id.is_some())
    }

    /// Whether `secret` is the endpoint's current (non-expiring) key.
    pub async fn endpoint_has_current_secret(&self, uid: &str, secret: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM webhook_secrets AS s JOIN webhook_endpoints AS ep ON ep.id = s.endpoint_id \
             WHERE ep.uid = ? AND s.secret = ? AND s.expires_at IS NULL)",
        )
        .bind(uid)
        .bind(secret)
        .fetch_one(self.pool())
        .await?)
    }

    /// Makes `secret` the endpoint's current key; the keys that were current stay valid until
    /// `old_valid_until` (Unix µs), so receivers can switch without missing a request.
    pub async fn rotate_endpoint_secret(
        &self,
        uid: &str,
        secret: &str,
        old_valid_until: i64,
    ) -> Result<bool, StoreError> {
        let now = now_micros();
        let mut tx = self.begin().await?;
        let Some(id) =
            sqlx::query_scalar::<_, i64>("SELECT id FROM webhook_endpoints WHERE uid = ? AND deleted_at IS NULL")
                .bind(uid)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE webhook_secrets SET expires_at = MIN(COALESCE(expires_at, ?1), ?1) \
             WHERE endpoint_id = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
        )
        .bind(old_valid_until)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_secret(&mut tx, id, secret, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Claims up to `limit` due deliveries for `worker` until `now + lease` (Unix µs), in one
    /// short transaction. Deliveries of paused or deleted endpoints, of devices still pending
    /// approval, and (on ordered endpoints) those behind an unfinished earlier `seq` of the
    /// same device are not due.
    pub async fn claim_due_deliveries(
        &self,
        worker: &str,
        now: i64,
        lease: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let mut tx = self.begin_delivery().await?;
        let claimed = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'in_flight', lease_token = lease_token + 1, lease_owner = ?1, \
                    lease_expires_at = ?2 + ?3, attempt_count = attempt_count + 1, \
                    first_attempt_at = COALESCE(first_attempt_at, ?2), updated_at = ?2 \
             WHERE id IN ( \
                 SELECT d.id FROM webhook_deliveries AS d \
                 JOIN webhook_endpoints AS ep ON ep.id = d.endpoint_id \
                 JOIN webhook_events AS e ON e.id = d.event_row \
                 LEFT JOIN devices AS dv ON dv.id = e.device_id \
                 WHERE d.state = 'pending' AND d.next_attempt_at <= ?2 \
                   AND ep.paused_reason IS NULL AND ep.deleted_at IS NULL \
                   AND (dv.id IS NULL OR dv.approval = 'approved') \
                   AND (ep.ordered = 0 OR e.seq IS NULL OR NOT EXISTS ( \
                        SELECT 1 FROM webhook_deliveries AS p JOIN webhook_events AS pe ON pe.id = p.event_row \
                        WHERE p.endpoint_id = d.endpoint_id AND pe.device_id = e.device_id AND pe.seq < e.seq \
                          AND p.state IN ('pending', 'in_flight', 'exhausted'))) \
                 ORDER BY d.next_attempt_at, d.id LIMIT ?4) \
             RETURNING id, lease_token, attempt_count, first_attempt_at, event_row, endpoint_id, trigger_kind",
        )
        .bind(worker)
        .bind(now)
        .bind(lease)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let ids: Vec<i64> = claimed.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?;
        let ids_json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
        let details: Vec<ClaimDetail> = sqlx::query_as(
            "SELECT d.id, e.event_id, e.body, e.created_at, ep.id, ep.url, ep.timeout_ms FROM webhook_deliveries AS d \
             JOIN webhook_events AS e ON e.id = d.event_row JOIN webhook_endpoints AS ep ON ep.id = d.endpoint_id \
             WHERE d.id IN (SELECT value FROM json_each(?))",
        )
        .bind(&ids_json)
        .fetch_all(&mut *tx)
        .await?;
        let secrets: Vec<(i64, String)> = sqlx::query_as(
            "SELECT endpoint_id, secret FROM webhook_secrets \
             WHERE endpoint_id IN (SELECT d.endpoint_id FROM webhook_deliveries AS d \
                                   WHERE d.id IN (SELECT value FROM json_each(?1))) \
               AND (expires_at IS NULL OR expires_at > ?2) ORDER BY id DESC",
        )
        .bind(&ids_json)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut details: HashMap<i64, ClaimDetail> = details.into_iter().map(|d| (d.0, d)).collect();
        let mut out = Vec::with_capacity(claimed.len());
        for row in claimed {
            let delivery_id: i64 = row.try_get("id")?;
            let Some((_, event_id, body, event_created_at, endpoint_id, url, timeout_ms)) =
                details.remove(&delivery_id)
            else {
                continue;
            };
            out.push(ClaimedDelivery {
                delivery_id,
                lease_token: row.try_get("lease_token")?,
                attempt_no: row.try_get("attempt_count")?,
                trigger: row.try_get("trigger_kind")?,
                first_attempt_at: row.try_get::<Option<i64>, _>("first_attempt_at")?.unwrap_or(now),
                event_id,
                body,
                event_created_at,
                endpoint_id,
                url,
                timeout_ms,
                secrets: secrets.iter().filter(|(ep, _)| *ep == endpoint_id).map(|(_, s)| s.clone()).collect(),
            });
        }
        Ok(out)
    }

    /// Records attempts and applies their outcomes, all in one transaction. Returns, per
    /// completion, whether it was accepted (`false`: the lease had been taken over, so only the
    /// attempt is kept, for the record).
    pub async fn complete_deliveries(&self, completions: &[Completion]) -> Result<Vec<bool>, StoreError> {
        let now = now_micros();
        let updates: Vec<CompletionRow<'_>> = completions
            .iter()
            .map(|c| {
                let (state, next_attempt_at, succeeded_at) = match c.outcome {
                    DeliveryOutcome::Succeeded => ("succeeded", None, Some(now)),
                    DeliveryOutcome::RetryAt(at) => ("pending", Some(at), None),
                    DeliveryOutcome::Exhausted => ("exhausted", None, None),
                    DeliveryOutcome::EndpointGone => ("pending", Some(now), None),
                };
                (c.delivery_id, c.lease_token, state, next_attempt_at, c.http_status, c.error.as_deref(), succeeded_at)
            })
            .collect();
        let mut tx = self.begin_delivery().await?;
        // Fenced: only the holder of the current lease token moves the delivery.
        let applied: Vec<(i64, i64)> = sqlx::query_as(
            "UPDATE webhook_deliveries AS d SET state = j.value ->> 2, \
                    next_attempt_at = COALESCE(j.value ->> 3, d.next_attempt_at), last_status = j.value ->> 4, \
                    last_error = j.value ->> 5, succeeded_at = COALESCE(j.value ->> 6, d.succeeded_at), \
                    lease_owner = NULL, lease_expires_at = NULL, updated_at = ?2, trigger_kind = 'scheduled' \
             FROM jsonb_each(?1) AS j \
             WHERE d.id = j.value ->> 0 AND d.lease_token = j.value ->> 1 AND d.state = 'in_flight' \
             RETURNING id, endpoint_id",
        )
        .bind(serde_json::to_string(&updates).unwrap_or_else(|_| "[]".into()))
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let endpoint_of: HashMap<i64, i64> = applied.into_iter().collect();
        let accepted: Vec<bool> = completions.iter().map(|c| endpoint_of.contains_key(&c.delivery_id)).collect();
        let attempts: Vec<_> = completions
            .iter()
            .zip(&accepted)
            .map(|(c, ok)| {
                (
                    c.delivery_id,
                    c.attempt_no,
                    c.lease_token,
                    &c.trigger,
                    &c.worker,
                    c.started_at,
                    c.duration_us,
                    c.http_status,
                    c.error_kind.as_deref(),
                    c.error.as_deref(),
                    hex::encode(&c.response_body),
                    *ok,
                )
            })
            .collect();
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt_no, lease_token, trigger_kind, worker, started_at, \
             duration_us, http_status, error_kind, error, response_body, accepted) \
             SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value ->> 5, \
                    j.value ->> 6, j.value ->> 7, j.value ->> 8, j.value ->> 9, unhex(j.value ->> 10), j.value ->> 11 \
             FROM jsonb_each(?) AS j",
        )
        .bind(serde_json::to_string(&attempts).unwrap_or_else(|_| "[]".into()))
        .execute(&mut *tx)
        .await?;
        // Per endpoint, once per batch: a success re-drives what was given up on (with a fresh
        // schedule); a 410 pauses the endpoint.
        let mut succeeded: Vec<i64> = Vec::new();
        let mut gone: Vec<i64> = Vec::new();
        for (c, ok) in completions.iter().zip(&accepted) {
            let Some(&endpoint_id) = endpoint_of.get(&c.delivery_id).filter(|_| *ok) else { continue };
            let list = match c.outcome {
                DeliveryOutcome::Succeeded => &mut succeeded,
                DeliveryOutcome::EndpointGone => &mut gone,
                _ => continue,
            };
            if !list.contains(&endpoint_id) {
                list.push(endpoint_id);
            }
        }
        for endpoint_id in succeeded {
            sqlx::query(
                "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = ?, attempt_count = 0, \
                        first_attempt_at = NULL, updated_at = ? \
                 WHERE endpoint_id = ? AND state = 'exhausted'",
            )
            .bind(now)
            .bind(now)
            .bind(endpoint_id)
            .execute(&mut *tx)
            .await?;
        }
        for endpoint_id in gone {
            sqlx::query("UPDATE webhook_endpoints SET paused_reason = 'gone', updated_at = ? WHERE id = ?")
                .bind(now)
                .bind(endpoint_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(accepted)
    }

    /// Returns deliveries whose lease ran out to the queue (due now), recording a
    /// `lease_expired` attempt for each. Returns how many.
    pub async fn expire_leases(&self, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_delivery().await?;
        let expired: Vec<(i64, i64, i64, Option<String>)> = sqlx::query_as(
            "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = ?1, lease_owner = NULL, \
                    lease_expires_at = NULL, last_error = 'lease expired', updated_at = ?1 \
             WHERE state = 'in_flight' AND lease_expires_at < ?1 \
             RETURNING id, lease_token, attempt_count, lease_owner",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for (delivery_id, lease_token, attempt_no, _) in &expired {
            sqlx::query(
                "INSERT INTO webhook_attempts (delivery_id, attempt_no, lease_token, trigger_kind, worker, started_at, \
                 error_kind, error, accepted) VALUES (?, ?, ?, 'lease_expired', 'reaper', ?, 'lease_expired', \
                 'the worker did not report back before its lease ran out', 1)",
            )
            .bind(delivery_id)
            .bind(attempt_no)
            .bind(lease_token)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(expired.len() as u64)
    }

    /// When the next delivery that could be claimed (pending, endpoint active) becomes due
    /// (Unix µs), if any. A read: it takes no write lock, unlike a claim.
    pub async fn next_delivery_due_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(d.next_attempt_at) FROM webhook_deliveries AS d \
             JOIN webhook_endpoints AS ep ON ep.id = d.endpoint_id \
             WHERE d.state = 'pending' AND ep.paused_reason IS NULL AND ep.deleted_at IS NULL",
        )
        .fetch_one(self.pool())
        .await?)
    }

    /// Deliveries, newest first, optionally of one endpoint and/or state.
    pub async fn list_deliveries(
        &self,
        endpoint_uid: Option<&str>,
        state: Option<&str>,
        limit: i64,
        before_id: Option<i64>,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT d.id, e.event_id, e.event_type, ep.uid AS endpoint_uid, d.state, d.attempt_count, \
                    d.next_attempt_at, d.last_status, d.last_error, d.succeeded_at, d.created_at \
             FROM webhook_deliveries AS d \
             JOIN webhook_events AS e ON e.id = d.event_row \
             JOIN webhook_endpoints AS ep ON ep.id = d.endpoint_id \
             WHERE (?1 IS NULL OR ep.uid = ?1) AND (?2 IS NULL OR d.state = ?2) AND (?4 IS NULL OR d.id < ?4) \
             ORDER BY d.id DESC LIMIT ?3",
        )
        .bind(endpoint_uid)
        .bind(state)
        .bind(limit)
        .bind(before_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Due backlog per live endpoint, for metrics.
    pub async fn delivery_backlog(&self, now: i64) -> Result<Vec<EndpointBacklog>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT ep.uid AS endpoint_uid, \
                    COALESCE(SUM(d.state = 'pending' AND d.next_attempt_at <= ?1), 0) AS due, \
                    COALESCE(SUM(d.state = 'in_flight'), 0) AS in_flight, \
                    COALESCE(SUM(d.state = 'exhausted'), 0) AS exhausted, \
                    MIN(CASE WHEN d.state = 'pending' AND d.next_attempt_at <= ?1 THEN d.next_attempt_at END) \
                        AS oldest_due_at \
             FROM webhook_endpoints AS ep \
             LEFT JOIN webhook_deliveries AS d ON d.endpoint_id = ep.id AND d.state IN ('pending', 'in_flight', 'exhausted') \
             WHERE ep.deleted_at IS NULL GROUP BY ep.id ORDER BY ep.id",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?)
    }
}

/// A new current signing secret for an endpoint.
async fn insert_secret(
    tx: &mut sqlx::SqliteConnection,
    endpoint_id: i64,
    secret: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO webhook_secrets (endpoint_id, secret, created_at) VALUES (?, ?, ?)")
        .bind(endpoint_id)
        .bind(secret)
        .bind(now)
        .execute(tx)
        .await?;
    Ok(())
}
