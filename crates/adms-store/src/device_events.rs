//! Device and roster events in the webhook outbox: the shared insert, and device presence
//! (`device.offline` / `device.online`).
//!
//! Every event is inserted in the transaction of its cause (a registration, a roster change, a
//! presence change), only while some endpoint exists, with an id derived from the cause: a
//! cause processed twice is one event. The fan-out trigger adds the deliveries.
//!
//! Presence changes by a conditional UPDATE (or a read under a row lock, then an update), with
//! its event in the same transaction, so when several replicas watch the same devices exactly
//! one of them reports each transition.

// Whether a device is answering, as last decided by the presence check; read strictly (the
// column's CHECK allows only its three words).
use adms_model::Presence;

use crate::events::{
    DeviceOfflineData, DeviceOnlineData, EventDevice, OFFLINE_HEARTBEAT_MISSED, device_presence_event_id, event_body,
    event_type, rfc3339_micros,
};
use crate::{Store, StoreError};

/// One device or roster event, ready to insert.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub device_id: i64,
    pub occurred_at: i64,
    pub created_at: i64,
    pub body: &'a [u8],
}

dual! {
    /// Inserts `event` in the caller's transaction while some endpoint is live; an event with the
    /// same id (the same cause) is left as it is. Returns whether a row was inserted.
    pub(crate) async fn insert_event_in(conn: &mut Conn, event: &NewEvent<'_>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO webhook_events (event_id, event_type, device_id, occurred_at, created_at, body) \
             SELECT $1, $2, $3, $4, $5, $6 \
             WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE deleted_at IS NULL) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event.event_id)
        .bind(event.event_type)
        .bind(event.device_id)
        .bind(event.occurred_at)
        .bind(event.created_at)
        .bind(event.body)
        .execute(conn)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// A device whose presence may have to change, as the database knows it.
#[derive(Debug, Clone)]
pub struct PresenceCandidate {
    pub device_id: i64,
    pub sn: String,
    /// Its own zone setting (`None`: the server default).
    pub time_zone: Option<String>,
    pub presence: Presence,
    /// When presence last changed; for an offline device, when it was marked offline.
    pub presence_changed_at: Option<i64>,
    /// Its last activity written to the database by any replica (first contact when none).
    pub last_activity_at: i64,
}

#[derive(sqlx::FromRow)]
struct CandidateRecord {
    id: i64,
    sn: String,
    time_zone: Option<String>,
    presence: Presence,
    presence_changed_at: Option<i64>,
    last_activity_at: i64,
}

/// A device to report offline if it is still silent.
#[derive(Debug, Clone)]
pub struct OfflineCheck<'a> {
    pub device_id: i64,
    /// The zone events name for the device (its own, or the server default).
    pub time_zone: &'a str,
    /// Its last request seen by this process, which the database may not have yet (0: none).
    pub seen_here: i64,
    /// Offline when not heard from since this instant (Unix µs).
    pub silent_since: i64,
    /// Now (Unix µs): when it is marked offline.
    pub now: i64,
}

/// A device that made a request again.
#[derive(Debug, Clone)]
pub struct SeenAgain<'a> {
    pub device_id: i64,
    /// The zone events name for the device (its own, or the server default).
    pub time_zone: &'a str,
    /// Its first request after being reported offline (Unix µs).
    pub back_at: i64,
    /// Now (Unix µs).
    pub now: i64,
}

impl Store {
    /// Devices whose presence may have to change: every device that is not online (offline ones
    /// come back; unknown ones are settled) and online ones the database has not seen active
    /// since `silent_since`.
    pub async fn presence_candidates(&self, silent_since: i64) -> Result<Vec<PresenceCandidate>, StoreError> {
        let rows: Vec<CandidateRecord> = on_db!(self, |db| {
            sqlx::query_as(
                "SELECT id, sn, time_zone, presence, presence_changed_at, \
                        COALESCE(last_activity_at, first_seen_at) AS last_activity_at \
                 FROM devices WHERE presence != 'online' OR COALESCE(last_activity_at, first_seen_at) < $1",
            )
            .bind(silent_since)
            .fetch_all(db.pool())
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| PresenceCandidate {
                device_id: r.id,
                sn: r.sn,
                time_zone: r.time_zone,
                presence: r.presence,
                presence_changed_at: r.presence_changed_at,
                last_activity_at: r.last_activity_at,
            })
            .collect())
    }

    /// Marks a device offline and emits `device.offline`, unless it is offline already or was
    /// active since `silent_since` (checked again inside the transaction, against what every
    /// replica has flushed). Returns whether this call changed it.
    pub async fn mark_device_offline(&self, check: &OfflineCheck<'_>) -> Result<bool, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let changed: Option<(String, String, i64, i64)> = sqlx::query_as(
            "UPDATE devices SET presence = 'offline', presence_changed_at = $1 \
             WHERE id = $2 AND presence != 'offline' \
               AND COALESCE(last_activity_at, first_seen_at) < $4 AND $3 < $4 \
             RETURNING sn, alias, last_seq, \
               CASE WHEN COALESCE(last_activity_at, first_seen_at) > $3 THEN COALESCE(last_activity_at, first_seen_at) ELSE $3 END",
        )
        .bind(check.now)
        .bind(check.device_id)
        .bind(check.seen_here)
        .bind(check.silent_since)
        .fetch_optional(&mut *tx)
        .await?;
            let Some((sn, alias, last_seq, last_seen_at)) = changed else {
                tx.commit().await?;
                return Ok(false);
            };
            let event_id = device_presence_event_id(event_type::DEVICE_OFFLINE, &sn, last_seen_at);
            let data = DeviceOfflineData {
                device: EventDevice { sn: &sn, alias: &alias, time_zone: check.time_zone },
                last_seen_at: rfc3339_micros(last_seen_at),
                reason: OFFLINE_HEARTBEAT_MISSED,
                last_punch_seq: last_seq,
            };
            let body = event_body(&event_id, event_type::DEVICE_OFFLINE, check.now, &data);
            let event = NewEvent {
                event_id: &event_id,
                event_type: event_type::DEVICE_OFFLINE,
                device_id: check.device_id,
                occurred_at: check.now,
                created_at: check.now,
                body: &body,
            };
            dialect::insert_event_in(&mut tx, &event).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    pub async fn mark_device_online(&self, seen: &SeenAgain<'_>) -> Result<bool, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            // The device row stays locked (SQLite: the write lock is held from BEGIN IMMEDIATE):
            // nothing changes between this read and the update.
            let before: Option<(String, String, Presence, i64, i64)> = sqlx::query_as(concat!(
                "SELECT sn, alias, presence, last_seq, COALESCE(presence_changed_at, last_activity_at, first_seen_at) \
             FROM devices WHERE id = $1",
                for_update!()
            ))
            .bind(seen.device_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((sn, alias, presence, last_seq, offline_since)) = before else {
                tx.commit().await?;
                return Err(StoreError::NotFound);
            };
            if presence == Presence::Online {
                tx.commit().await?;
                return Ok(false);
            }
            sqlx::query(
            "UPDATE devices SET presence = 'online', presence_changed_at = $1, \
             last_activity_at = CASE WHEN last_activity_at > $1 THEN last_activity_at ELSE $1 END WHERE id = $2 AND presence != 'online'",
        )
        .bind(seen.back_at)
        .bind(seen.device_id)
        .execute(&mut *tx)
        .await?;
            if presence == Presence::Offline {
                let event_id = device_presence_event_id(event_type::DEVICE_ONLINE, &sn, seen.back_at);
                let data = DeviceOnlineData {
                    device: EventDevice { sn: &sn, alias: &alias, time_zone: seen.time_zone },
                    offline_since: rfc3339_micros(offline_since),
                    back_at: rfc3339_micros(seen.back_at),
                    last_punch_seq: last_seq,
                };
                let body = event_body(&event_id, event_type::DEVICE_ONLINE, seen.back_at, &data);
                let event = NewEvent {
                    event_id: &event_id,
                    event_type: event_type::DEVICE_ONLINE,
                    device_id: seen.device_id,
                    occurred_at: seen.back_at,
                    created_at: seen.now,
                    body: &body,
                };
                dialect::insert_event_in(&mut tx, &event).await?;
            }
            tx.commit().await?;
            Ok(presence == Presence::Offline)
        })
    }
}
