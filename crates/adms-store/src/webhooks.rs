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

use adms_model::DeliveryState;

use crate::backend::sqlite_fns::list_param;
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

/// A signing secret as stored: the `whsec_` text, or sealed under the operator's master key
/// (the store does not tell them apart; `adms-webhooks::sealing` does).
#[derive(Clone, PartialEq, Eq, FromRow)]
pub struct StoredSecret {
    pub id: i64,
    pub endpoint_uid: String,
    pub secret: String,
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSecret")
            .field("id", &self.id)
            .field("endpoint_uid", &self.endpoint_uid)
            .finish_non_exhaustive()
    }
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

/// A delivery claimed by a worker, with everything needed to send it. `Debug` leaves out the
/// secrets and the body.
#[derive(Clone)]
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
    /// The endpoint's public id (what a sealed secret is bound to).
    pub endpoint_uid: String,
    pub url: String,
    pub timeout_ms: i64,
    /// Signing secrets currently valid for the endpoint, newest first, as stored (see
    /// [`Store::create_endpoint`]: plaintext `whsec_` text or sealed by the operator's key).
    pub secrets: Vec<String>,
    /// The batch this delivery travels in (`None`: on its own). A claim returns a batch's members
    /// together, one after the other, in the order they go into its body.
    pub batch_row: Option<i64>,
}

impl std::fmt::Debug for ClaimedDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedDelivery")
            .field("delivery_id", &self.delivery_id)
            .field("lease_token", &self.lease_token)
            .field("attempt_no", &self.attempt_no)
            .field("event_id", &self.event_id)
            .field("endpoint_uid", &self.endpoint_uid)
            .field("batch_row", &self.batch_row)
            .finish_non_exhaustive()
    }
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
    /// The batch's webhook-id, when the attempt carried a batch.
    pub batch_id: Option<String>,
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
type CompletionRow<'a> = (i64, i64, DeliveryState, Option<i64>, Option<i64>, Option<&'a str>, Option<i64>);

/// What a claim reads per delivery: delivery id, event id, body, event created_at, endpoint id,
/// endpoint uid, URL, timeout, batch row.
type ClaimDetail = (i64, String, Vec<u8>, i64, i64, String, String, i64, Option<i64>);

/// Whether batch bookkeeping is needed at all: an endpoint that batches, or batches still
/// waiting (an endpoint's `batch_max` lowered to 1 keeps its formed batches together). When
/// neither, a claim is the single statement of [`CLAIM_SINGLES`].
const ANY_BATCHING: &str = "\
SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE batch_max > 1 AND deleted_at IS NULL)
    OR EXISTS (SELECT 1 FROM webhook_deliveries WHERE state = 'pending' AND batch_row IS NOT NULL)";

/// The conditions under which a pending delivery `d` (of endpoint `ep`, event `e`, device `dv`)
/// may be sent, besides being due: its endpoint is active, its device approved, and on an
/// ordered endpoint no earlier `seq` of the same device is unfinished, unless that one travels
/// in the same batch.
macro_rules! sendable {
    () => {
        "ep.paused_reason IS NULL AND ep.deleted_at IS NULL \
         AND (dv.id IS NULL OR dv.approval = 'approved') \
         AND (ep.ordered = 0 OR e.seq IS NULL OR NOT EXISTS ( \
              SELECT 1 FROM webhook_deliveries AS p JOIN webhook_events AS pe ON pe.id = p.event_row \
              WHERE p.endpoint_id = d.endpoint_id AND pe.device_id = e.device_id AND pe.seq < e.seq \
                AND p.state IN ('pending', 'in_flight', 'exhausted') \
                AND (d.batch_row IS NULL OR p.batch_row IS NULL OR p.batch_row <> d.batch_row)))"
    };
}

/// The joins every claim query reads a delivery `d` through.
macro_rules! delivery_joins {
    () => {
        "FROM webhook_deliveries AS d \
         JOIN webhook_endpoints AS ep ON ep.id = d.endpoint_id \
         JOIN webhook_events AS e ON e.id = d.event_row \
         LEFT JOIN devices AS dv ON dv.id = e.device_id "
    };
}

/// What a claim sets on each delivery it takes: `$1` worker, `$2` now, `$3` lease length.
macro_rules! claim_update {
    ($($where:tt)+) => {
        concat!(
            "UPDATE webhook_deliveries SET state = 'in_flight', lease_token = lease_token + 1, lease_owner = $1, \
                    lease_expires_at = $2 + $3, attempt_count = attempt_count + 1, \
                    first_attempt_at = COALESCE(first_attempt_at, $2), updated_at = $2 ",
            $($where)+,
            " RETURNING id, lease_token, attempt_count, first_attempt_at, trigger_kind"
        )
    };
}

/// The claim when nothing batches: up to `$4` due deliveries, oldest due first, in one statement.
const CLAIM_SINGLES: &str = concat!(
    "UPDATE webhook_deliveries SET state = 'in_flight', lease_token = lease_token + 1, lease_owner = $1, \
            lease_expires_at = $2 + $3, attempt_count = attempt_count + 1, \
            first_attempt_at = COALESCE(first_attempt_at, $2), updated_at = $2 \
     WHERE id IN (SELECT d.id ",
    delivery_joins!(),
    "WHERE d.state = 'pending' AND d.next_attempt_at <= $2 AND ",
    sendable!(),
    " ORDER BY d.next_attempt_at, d.id LIMIT $4) \
     RETURNING id, lease_token, attempt_count, first_attempt_at, trigger_kind"
);

/// Due deliveries that travel alone (`$1` now, `$2` limit), with their due time.
const DUE_SINGLES: &str = concat!(
    "SELECT d.id, d.next_attempt_at ",
    delivery_joins!(),
    "WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND d.batch_row IS NULL AND ep.batch_max <= 1 AND ",
    sendable!(),
    " ORDER BY d.next_attempt_at, d.id LIMIT $2"
);

/// Formed batches whose every waiting member may be sent now (`$1` now, `$2` limit), with the
/// time the batch became due.
const DUE_BATCHES: &str = concat!(
    "SELECT d.batch_row, MAX(d.next_attempt_at) AS due ",
    delivery_joins!(),
    "WHERE d.state = 'pending' AND d.batch_row IS NOT NULL \
     GROUP BY d.batch_row \
     HAVING MAX(d.next_attempt_at) <= $1 AND MIN(CASE WHEN ",
    sendable!(),
    " THEN 1 ELSE 0 END) = 1 ORDER BY due, d.batch_row LIMIT $2"
);

/// Due deliveries of batching endpoints not yet in a batch, in the order batches are cut from
/// them (`$1` now, `$2` batches per endpoint at most). On an ordered endpoint, runs of each
/// device in `seq` order, none behind an earlier `seq` that already waits in a batch (it would
/// only wait behind it; an earlier one still unbatched may form its own batch, so nothing is
/// ever stuck behind a later one); otherwise oldest due first.
const BATCH_CANDIDATES: &str = concat!(
    "SELECT id, endpoint_id, batch_max FROM ( \
         SELECT d.id, d.endpoint_id, ep.batch_max, ep.ordered, e.device_id, \
                ROW_NUMBER() OVER (PARTITION BY d.endpoint_id, CASE WHEN ep.ordered <> 0 THEN e.device_id END \
                                   ORDER BY CASE WHEN ep.ordered <> 0 THEN e.seq END, d.next_attempt_at, d.id) AS rn ",
    delivery_joins!(),
    "WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND d.batch_row IS NULL AND ep.batch_max > 1 \
           AND ep.paused_reason IS NULL AND ep.deleted_at IS NULL \
           AND (dv.id IS NULL OR dv.approval = 'approved') \
           AND (ep.ordered = 0 OR NOT EXISTS ( \
                SELECT 1 FROM webhook_deliveries AS b JOIN webhook_events AS be ON be.id = b.event_row \
                WHERE b.state IN ('pending', 'in_flight') AND b.batch_row IS NOT NULL \
                  AND b.endpoint_id = d.endpoint_id AND be.device_id = e.device_id AND be.seq < e.seq))) AS candidates \
     WHERE rn <= CASE WHEN ordered <> 0 THEN batch_max ELSE $2 * batch_max END \
     ORDER BY endpoint_id, CASE WHEN ordered <> 0 THEN device_id END, rn \
     LIMIT 20000"
);

/// Claims the chosen units: deliveries by id (`$4`, JSON array) and whole batches (`$5`).
const CLAIM_UNITS: &str = claim_update!(concat!(
    "WHERE state = 'pending' AND (",
    sqlite_in_list!("id", "$4"),
    " OR ",
    sqlite_in_list!("batch_row", "$5"),
    ")"
));

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
    /// Creates an endpoint with its first signing secret. Secrets are stored as given: the caller
    /// seals them first when the operator configured a master key.
    pub async fn create_endpoint(
        &self,
        uid: &str,
        settings: &EndpointSettings<'_>,
        source: &str,
        secret: &str,
    ) -> Result<Endpoint, StoreError> {
        let now = now_micros();
        let mut tx = self.sqlite()?.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhook_endpoints (uid, url, description, event_types, source, timeout_ms, batch_max, ordered, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
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
        Ok(sqlx::query_as(endpoint_select!("WHERE deleted_at IS NULL ORDER BY id"))
            .fetch_all(self.sqlite()?.pool())
            .await?)
    }

    pub async fn endpoint_by_uid(&self, uid: &str) -> Result<Option<Endpoint>, StoreError> {
        Ok(sqlx::query_as(endpoint_select!("WHERE uid = $1 AND deleted_at IS NULL"))
            .bind(uid)
            .fetch_optional(self.sqlite()?.pool())
            .await?)
    }

    /// The endpoint managed by `ADMS_WEBHOOK_URL`, if any.
    pub async fn env_endpoint(&self) -> Result<Option<Endpoint>, StoreError> {
        Ok(sqlx::query_as(endpoint_select!("WHERE source = 'env' AND deleted_at IS NULL ORDER BY id LIMIT 1"))
            .fetch_optional(self.sqlite()?.pool())
            .await?)
    }

    /// Replaces an endpoint's settings. `false` when there is no such endpoint.
    pub async fn update_endpoint(&self, uid: &str, settings: &EndpointSettings<'_>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET url = $1, description = $2, event_types = $3, timeout_ms = $4, batch_max = $5, \
             ordered = $6, updated_at = $7 WHERE uid = $8 AND deleted_at IS NULL",
        )
        .bind(settings.url)
        .bind(settings.description)
        .bind(settings.event_types)
        .bind(settings.timeout_ms)
        .bind(settings.batch_max)
        .bind(settings.ordered)
        .bind(now_micros())
        .bind(uid)
        .execute(self.sqlite()?.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Pauses (`Some(reason)`) or resumes (`None`) an endpoint; resuming makes its waiting
    /// deliveries due at once.
    pub async fn set_endpoint_paused(&self, uid: &str, reason: Option<&str>) -> Result<bool, StoreError> {
        let now = now_micros();
        let mut tx = self.sqlite()?.begin().await?;
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET paused_reason = $1, updated_at = $2 WHERE uid = $3 AND deleted_at IS NULL",
        )
        .bind(reason)
        .bind(now)
        .bind(uid)
        .execute(&mut *tx)
        .await?;
        if reason.is_none() {
            sqlx::query(
                "UPDATE webhook_deliveries SET next_attempt_at = CASE WHEN next_attempt_at < $1 THEN next_attempt_at ELSE $1 END \
                 WHERE state = 'pending' AND endpoint_id = (SELECT id FROM webhook_endpoints WHERE uid = $2)",
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
        let mut tx = self.sqlite()?.begin().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "UPDATE webhook_endpoints SET deleted_at = $1, updated_at = $2 WHERE uid = $3 AND deleted_at IS NULL RETURNING id",
        )
        .bind(now)
        .bind(now)
        .bind(uid)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = id {
            sqlx::query(
                "UPDATE webhook_deliveries SET state = 'cancelled', updated_at = $1 \
                 WHERE endpoint_id = $2 AND state IN ('pending', 'exhausted')",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id.is_some())
    }

    /// The endpoint's current (non-expiring) keys, as stored.
    pub async fn current_endpoint_secrets(&self, uid: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT s.secret FROM webhook_secrets AS s JOIN webhook_endpoints AS ep ON ep.id = s.endpoint_id \
             WHERE ep.uid = $1 AND s.expires_at IS NULL ORDER BY s.id DESC",
        )
        .bind(uid)
        .fetch_all(self.sqlite()?.pool())
        .await?)
    }

    /// Every stored signing secret (of deleted endpoints and expired ones too), for sealing them
    /// at rest once a master key is configured.
    pub async fn stored_secrets(&self) -> Result<Vec<StoredSecret>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT s.id, ep.uid AS endpoint_uid, s.secret FROM webhook_secrets AS s \
             JOIN webhook_endpoints AS ep ON ep.id = s.endpoint_id ORDER BY s.id",
        )
        .fetch_all(self.sqlite()?.pool())
        .await?)
    }

    /// Replaces a stored secret's text by another form of the same key (sealed), if it still
    /// holds `old` (another replica may have sealed it first). `false` when it did not.
    pub async fn reseal_secret(&self, id: i64, old: &str, new: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE webhook_secrets SET secret = $1 WHERE id = $2 AND secret = $3")
            .bind(new)
            .bind(id)
            .bind(old)
            .execute(self.sqlite()?.pool())
            .await?;
        Ok(done.rows_affected() > 0)
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
        let mut tx = self.sqlite()?.begin().await?;
        let Some(id) =
            sqlx::query_scalar::<_, i64>("SELECT id FROM webhook_endpoints WHERE uid = $1 AND deleted_at IS NULL")
                .bind(uid)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE webhook_secrets SET expires_at = CASE WHEN expires_at < $1 THEN expires_at ELSE $1 END \
             WHERE endpoint_id = $2 AND (expires_at IS NULL OR expires_at > $3)",
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
        let mut tx = self.sqlite()?.begin_delivery().await?;
        let batching: bool = sqlx::query_scalar(ANY_BATCHING).fetch_one(&mut *tx).await?;
        let claimed = if batching {
            form_batches(&mut tx, now, limit).await?;
            // One request each: a single delivery or a whole batch; the oldest due go first.
            let mut units: Vec<(i64, Option<i64>, i64)> = Vec::new();
            let singles: Vec<(i64, i64)> =
                sqlx::query_as(DUE_SINGLES).bind(now).bind(limit).fetch_all(&mut *tx).await?;
            units.extend(singles.into_iter().map(|(id, due)| (due, None, id)));
            let batches: Vec<(i64, i64)> =
                sqlx::query_as(DUE_BATCHES).bind(now).bind(limit).fetch_all(&mut *tx).await?;
            units.extend(batches.into_iter().map(|(batch, due)| (due, Some(batch), batch)));
            units.sort_unstable();
            units.truncate(usize::try_from(limit).unwrap_or(0));
            let single_ids: Vec<i64> = units.iter().filter(|u| u.1.is_none()).map(|u| u.2).collect();
            let batch_rows: Vec<i64> = units.iter().filter_map(|u| u.1).collect();
            sqlx::query(CLAIM_UNITS)
                .bind(worker)
                .bind(now)
                .bind(lease)
                .bind(list_param(&single_ids))
                .bind(list_param(&batch_rows))
                .fetch_all(&mut *tx)
                .await?
        } else {
            sqlx::query(CLAIM_SINGLES).bind(worker).bind(now).bind(lease).bind(limit).fetch_all(&mut *tx).await?
        };
        let ids: Vec<i64> = claimed.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?;
        let ids_json = list_param(&ids);
        // In the order requests are built from: singles, then each batch's members in body order.
        let details: Vec<ClaimDetail> = sqlx::query_as(concat!(
            "SELECT d.id, e.event_id, e.body, e.created_at, ep.id, ep.uid, ep.url, ep.timeout_ms, d.batch_row \
             FROM webhook_deliveries AS d \
             JOIN webhook_events AS e ON e.id = d.event_row JOIN webhook_endpoints AS ep ON ep.id = d.endpoint_id WHERE ",
            sqlite_in_list!("d.id", "$1"),
            " ORDER BY d.batch_row, e.device_id, e.seq, e.id"
        ))
        .bind(&ids_json)
        .fetch_all(&mut *tx)
        .await?;
        let secrets: Vec<(i64, String)> = sqlx::query_as(concat!(
            "SELECT endpoint_id, secret FROM webhook_secrets \
             WHERE endpoint_id IN (SELECT d.endpoint_id FROM webhook_deliveries AS d WHERE ",
            sqlite_in_list!("d.id", "$1"),
            ") \
               AND (expires_at IS NULL OR expires_at > $2) ORDER BY id DESC"
        ))
        .bind(&ids_json)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut claimed: HashMap<i64, sqlx::sqlite::SqliteRow> =
            claimed.into_iter().map(|r| (r.try_get("id").unwrap_or_default(), r)).collect();
        let mut out = Vec::with_capacity(details.len());
        for (delivery_id, event_id, body, event_created_at, endpoint_id, endpoint_uid, url, timeout_ms, batch_row) in
            details
        {
            let Some(row) = claimed.remove(&delivery_id) else { continue };
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
                endpoint_uid,
                url,
                timeout_ms,
                secrets: secrets.iter().filter(|(ep, _)| *ep == endpoint_id).map(|(_, s)| s.clone()).collect(),
                batch_row,
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
                    DeliveryOutcome::Succeeded => (DeliveryState::Succeeded, None, Some(now)),
                    DeliveryOutcome::RetryAt(at) => (DeliveryState::Pending, Some(at), None),
                    DeliveryOutcome::Exhausted => (DeliveryState::Exhausted, None, None),
                    DeliveryOutcome::EndpointGone => (DeliveryState::Pending, Some(now), None),
                };
                (c.delivery_id, c.lease_token, state, next_attempt_at, c.http_status, c.error.as_deref(), succeeded_at)
            })
            .collect();
        let mut tx = self.sqlite()?.begin_delivery().await?;
        // Fenced: only the holder of the current lease token moves the delivery.
        let applied: Vec<(i64, i64)> = sqlx::query_as(
            "UPDATE webhook_deliveries AS d SET state = j.value ->> 2, \
                    next_attempt_at = COALESCE(j.value ->> 3, d.next_attempt_at), last_status = j.value ->> 4, \
                    last_error = j.value ->> 5, succeeded_at = COALESCE(j.value ->> 6, d.succeeded_at), \
                    lease_owner = NULL, lease_expires_at = NULL, updated_at = $2, trigger_kind = 'scheduled' \
             FROM jsonb_each($1) AS j \
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
                    c.batch_id.as_deref(),
                )
            })
            .collect();
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt_no, lease_token, trigger_kind, worker, started_at, \
             duration_us, http_status, error_kind, error, response_body, accepted, batch_id) \
             SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value ->> 5, \
                    j.value ->> 6, j.value ->> 7, j.value ->> 8, j.value ->> 9, unhex(j.value ->> 10), j.value ->> 11, \
                    j.value ->> 12 \
             FROM jsonb_each($1) AS j",
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
                "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $1, attempt_count = 0, \
                        first_attempt_at = NULL, updated_at = $2 \
                 WHERE endpoint_id = $3 AND state = 'exhausted'",
            )
            .bind(now)
            .bind(now)
            .bind(endpoint_id)
            .execute(&mut *tx)
            .await?;
        }
        for endpoint_id in gone {
            sqlx::query("UPDATE webhook_endpoints SET paused_reason = 'gone', updated_at = $1 WHERE id = $2")
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
        let mut tx = self.sqlite()?.begin_delivery().await?;
        let expired: Vec<(i64, i64, i64, Option<String>)> = sqlx::query_as(
            "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $1, lease_owner = NULL, \
                    lease_expires_at = NULL, last_error = 'lease expired', updated_at = $1 \
             WHERE state = 'in_flight' AND lease_expires_at < $1 \
             RETURNING id, lease_token, attempt_count, lease_owner",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for (delivery_id, lease_token, attempt_no, _) in &expired {
            sqlx::query(
                "INSERT INTO webhook_attempts (delivery_id, attempt_no, lease_token, trigger_kind, worker, started_at, \
                 error_kind, error, accepted) VALUES ($1, $2, $3, 'lease_expired', 'reaper', $4, 'lease_expired', \
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
        .fetch_one(self.sqlite()?.pool())
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
             WHERE ($1 IS NULL OR ep.uid = $1) AND ($2 IS NULL OR d.state = $2) AND ($4 IS NULL OR d.id < $4) \
             ORDER BY d.id DESC LIMIT $3",
        )
        .bind(endpoint_uid)
        .bind(state)
        .bind(limit)
        .bind(before_id)
        .fetch_all(self.sqlite()?.pool())
        .await?)
    }

    /// Due backlog per live endpoint, for metrics.
    pub async fn delivery_backlog(&self, now: i64) -> Result<Vec<EndpointBacklog>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT ep.uid AS endpoint_uid, \
                    COALESCE(SUM(CASE WHEN d.state = 'pending' AND d.next_attempt_at <= $1 THEN 1 ELSE 0 END), 0) AS due, \
                    COALESCE(SUM(CASE WHEN d.state = 'in_flight' THEN 1 ELSE 0 END), 0) AS in_flight, \
                    COALESCE(SUM(CASE WHEN d.state = 'exhausted' THEN 1 ELSE 0 END), 0) AS exhausted, \
                    MIN(CASE WHEN d.state = 'pending' AND d.next_attempt_at <= $1 THEN d.next_attempt_at END) \
                        AS oldest_due_at \
             FROM webhook_endpoints AS ep \
             LEFT JOIN webhook_deliveries AS d ON d.endpoint_id = ep.id AND d.state IN ('pending', 'in_flight', 'exhausted') \
             WHERE ep.deleted_at IS NULL GROUP BY ep.id ORDER BY ep.id",
        )
        .bind(now)
        .fetch_all(self.sqlite()?.pool())
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
    sqlx::query("INSERT INTO webhook_secrets (endpoint_id, secret, created_at) VALUES ($1, $2, $3)")
        .bind(endpoint_id)
        .bind(secret)
        .bind(now)
        .execute(tx)
        .await?;
    Ok(())
}

/// Rows as one JSON array parameter, unpacked by `json_each` in a SQLite-only statement (a
/// PostgreSQL port binds arrays per column instead).
fn to_json<T: serde::Serialize>(values: &[T]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}

/// Groups due deliveries of batching endpoints into batches of at most their `batch_max`, at most
/// `per_endpoint` batches per endpoint (what one claim can send), and freezes each group.
async fn form_batches(tx: &mut sqlx::SqliteConnection, now: i64, per_endpoint: i64) -> Result<(), StoreError> {
    let candidates: Vec<(i64, i64, i64)> =
        sqlx::query_as(BATCH_CANDIDATES).bind(now).bind(per_endpoint).fetch_all(&mut *tx).await?;
    let mut assignments: Vec<(i64, i64)> = Vec::with_capacity(candidates.len());
    let mut current: Option<(i64, i64, usize)> = None; // endpoint, batch row, members so far
    for (delivery_id, endpoint_id, batch_max) in candidates {
        let full = |members: usize| i64::try_from(members).unwrap_or(i64::MAX) >= batch_max;
        let batch_row = match current {
            Some((endpoint, row, members)) if endpoint == endpoint_id && !full(members) => {
                current = Some((endpoint, row, members + 1));
                row
            }
            _ => {
                let row: i64 = sqlx::query_scalar(
                    "INSERT INTO webhook_batches (endpoint_id, created_at) VALUES ($1, $2) RETURNING id",
                )
                .bind(endpoint_id)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                current = Some((endpoint_id, row, 1));
                row
            }
        };
        assignments.push((delivery_id, batch_row));
    }
    if !assignments.is_empty() {
        sqlx::query(
            "UPDATE webhook_deliveries SET batch_row = j.value ->> 1 FROM json_each($1) AS j \
             WHERE webhook_deliveries.id = j.value ->> 0",
        )
        .bind(to_json(&assignments))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
