//! What the operator console asks of the database: its sessions (`console_sessions`, apart from
//! the API's tokens so neither opens the other), the overview's figures, and the device list
//! and page. Every list is keyset-paged or capped; the figures read indexes (`received_at` of
//! punches, the open-command index) or small tables.

use sqlx::FromRow;

use adms_model::{Approval, Presence};

use crate::{Store, StoreError};

/// A live console session: whose, with the account's role now.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct ConsoleSession {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub role: String,
    pub expires_at: i64,
}

/// Devices by approval and presence (deleted ones left out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetCounts {
    /// Approved and online.
    pub online: i64,
    /// Approved and not online (offline, or never judged since it was approved).
    pub offline: i64,
    /// Waiting for approval.
    pub pending: i64,
}

/// Which devices the console's list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    Online,
    Offline,
    Pending,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Online => "online",
            DeviceState::Offline => "offline",
            DeviceState::Pending => "pending",
        }
    }

    pub fn parse(word: &str) -> Option<DeviceState> {
        [DeviceState::Online, DeviceState::Offline, DeviceState::Pending].into_iter().find(|s| s.as_str() == word)
    }
}

/// The device list's filters and page.
#[derive(Debug, Clone, Default)]
pub struct DeviceListFilter {
    pub state: Option<DeviceState>,
    pub area_id: Option<i64>,
    /// A substring of the serial number or the alias, any ASCII case.
    pub search: Option<String>,
    /// Keyset: devices with a larger id than this one.
    pub after_id: Option<i64>,
    pub limit: i64,
    /// Punches received since this instant (µs) are counted as "today".
    pub today_since: i64,
}

/// One device as the console lists and shows it.
#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct ConsoleDevice {
    pub id: i64,
    pub sn: String,
    pub alias: String,
    pub approval: Approval,
    pub presence: Presence,
    pub presence_changed_at: Option<i64>,
    pub ip_address: String,
    pub model: String,
    pub firmware: String,
    pub push_version: String,
    pub time_zone: Option<String>,
    pub user_count: Option<i64>,
    pub fp_count: Option<i64>,
    pub face_count: Option<i64>,
    pub first_seen_at: i64,
    pub last_handshake_at: Option<i64>,
    pub last_activity_at: Option<i64>,
    pub area_id: i64,
    pub area_name: String,
    pub punches_today: i64,
    /// The device's clock against the server's, in seconds, as its newest punch shows it: the
    /// punch's time (read in the device's zone) minus when it was received. Positive: the
    /// device runs ahead. An estimate: a punch uploaded late makes the clock look behind.
    /// `None` without punches (or a zone to read them in).
    pub clock_skew_secs: Option<i64>,
    /// The wall-clock time of the device's newest punch (by `seq`).
    pub newest_punch_local_time: Option<String>,
}

/// A recent punch of one device (pending devices' punches included: the operator sees what
/// the API holds back).
#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct DevicePunch {
    pub id: i64,
    pub seq: i64,
    pub pin: String,
    pub local_time: String,
    pub state: String,
    pub verify: i64,
    pub work_code: String,
    pub received_at: i64,
    /// The name the device reported for the PIN.
    pub name: Option<String>,
}

// One statement for the list: the state filter is a word compared in SQL, never SQL text.
// The punch figures come from the device row, where the punch writer keeps them (migration
// 0021): the list reads no punches.
macro_rules! console_device_select {
    () => {
        "SELECT d.id, d.sn, d.alias, d.approval, d.presence, d.presence_changed_at, d.ip_address, d.model, \
                d.firmware, d.push_version, d.time_zone, d.user_count, d.fp_count, d.face_count, d.first_seen_at, \
                d.last_handshake_at, d.last_activity_at, COALESCE(ta.area_id, 1) AS area_id, \
                COALESCE(ar.area_name, '') AS area_name, \
                CASE WHEN d.day_started_at >= $1 AND d.day_started_at > 0 THEN d.last_seq - d.day_first_seq + 1 ELSE 0 END AS punches_today, \
                d.newest_punch_skew AS clock_skew_secs, d.newest_punch_local_time \
         FROM devices AS d \
         LEFT JOIN terminal_areas AS ta ON ta.device_id = d.id \
         LEFT JOIN areas AS ar ON ar.id = COALESCE(ta.area_id, 1) "
    };
}

const LIST_DEVICES: &str = concat!(
    console_device_select!(),
    "WHERE d.deleted_at IS NULL \
       AND ($2 IS NULL \
            OR ($2 = 'pending' AND d.approval = 'pending') \
            OR ($2 = 'online' AND d.approval = 'approved' AND d.presence = 'online') \
            OR ($2 = 'offline' AND d.approval = 'approved' AND d.presence <> 'online')) \
       AND ($3 IS NULL OR COALESCE(ta.area_id, 1) = $3) \
       AND ($4 IS NULL OR ",
    contains!("d.sn" => "$4"),
    " OR ",
    contains!("d.alias" => "$4"),
    ") AND ($5 IS NULL OR d.id > $5) \
     ORDER BY d.id ASC LIMIT $6"
);

const DEVICE_BY_SN: &str = concat!(console_device_select!(), "WHERE d.sn = $2 AND d.deleted_at IS NULL");

impl Store {
    /// Stores a new console session by its token's digest, with the account's version now.
    pub async fn create_console_session(
        &self,
        user_id: i64,
        token_sha256: &[u8],
        now: i64,
        expires_at: i64,
    ) -> Result<i64, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_scalar(
                "INSERT INTO console_sessions (user_id, token_sha256, token_version, created_at, expires_at) \
                 SELECT id, $2, token_version, $3, $4 FROM api_users WHERE id = $1 AND disabled_at IS NULL \
                 RETURNING id",
            )
            .bind(user_id)
            .bind(token_sha256)
            .bind(now)
            .bind(expires_at)
            .fetch_optional(db.pool())
            .await?
            .ok_or(StoreError::NotFound)?)
        })
    }

    /// The session with this digest while it lives: not ended, not expired, its account enabled
    /// and at the version it logged in with (a new password or a disable ends it).
    pub async fn live_console_session(
        &self,
        token_sha256: &[u8],
        now: i64,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_as(
                "SELECT s.id, s.user_id, u.username, u.role, s.expires_at \
                 FROM console_sessions AS s JOIN api_users AS u ON u.id = s.user_id \
                 WHERE s.token_sha256 = $1 AND s.ended_at IS NULL AND s.expires_at > $2 \
                   AND u.disabled_at IS NULL AND u.token_version = s.token_version",
            )
            .bind(token_sha256)
            .bind(now)
            .fetch_optional(db.pool())
            .await?)
        })
    }

    /// Ends a session (logout); whether it was live.
    pub async fn end_console_session(&self, token_sha256: &[u8], now: i64) -> Result<bool, StoreError> {
        on_db!(self, |db| {
            let done =
                sqlx::query("UPDATE console_sessions SET ended_at = $2 WHERE token_sha256 = $1 AND ended_at IS NULL")
                    .bind(token_sha256)
                    .bind(now)
                    .execute(db.pool())
                    .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Deletes sessions that expired or ended before `before`.
    pub async fn purge_console_sessions(&self, before: i64) -> Result<u64, StoreError> {
        on_db!(self, |db| {
            let done = sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1 OR ended_at <= $1")
                .bind(before)
                .execute(db.pool())
                .await?;
            Ok(done.rows_affected())
        })
    }

    /// Devices by state, counted in the database.
    pub async fn fleet_counts(&self) -> Result<FleetCounts, StoreError> {
        on_db!(self, |db| {
            let rows: Vec<(Approval, Presence, i64)> = sqlx::query_as(
                "SELECT approval, presence, COUNT(*) FROM devices WHERE deleted_at IS NULL GROUP BY approval, presence",
            )
            .fetch_all(db.pool())
            .await?;
            let mut counts = FleetCounts::default();
            for (approval, presence, n) in rows {
                match (approval, presence) {
                    (Approval::Pending, _) => counts.pending += n,
                    (Approval::Approved, Presence::Online) => counts.online += n,
                    (Approval::Approved, _) => counts.offline += n,
                }
            }
            Ok(counts)
        })
    }

    /// Punches received at or after `since` (µs), from every device.
    pub async fn punches_received_since(&self, since: i64) -> Result<i64, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM punches WHERE received_at >= $1")
                .bind(since)
                .fetch_one(db.pool())
                .await?)
        })
    }

    /// Punches received from `since` on, counted per hour: `(hour index since the epoch, count)`
    /// for the hours that have any, in order. `since` should be the start of an hour.
    pub async fn punches_per_hour(&self, since: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        on_db!(self, |db| {
            // One counted index range per hour rather than a GROUP BY over the whole window:
            // no sort of every punch of the day (the overview's main cost at 10 M punches).
            Ok(sqlx::query_as(
                "WITH RECURSIVE hours (hour) AS ( \
                     SELECT $1 / 3600000000 \
                     UNION ALL SELECT hour + 1 FROM hours \
                     WHERE hour < (SELECT MAX(received_at) FROM punches) / 3600000000) \
                 SELECT hour, n FROM ( \
                     SELECT hour, (SELECT COUNT(*) FROM punches \
                                   WHERE received_at >= hour * 3600000000 \
                                     AND received_at < (hour + 1) * 3600000000) AS n \
                     FROM hours) AS counted \
                 WHERE n > 0 ORDER BY hour",
            )
            .bind(since)
            .fetch_all(db.pool())
            .await?)
        })
    }

    /// Rejected lines first seen at or after `since` (µs).
    pub async fn rejected_lines_since(&self, since: i64) -> Result<i64, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM rejected_lines WHERE first_seen_at >= $1")
                .bind(since)
                .fetch_one(db.pool())
                .await?)
        })
    }

    /// One page of devices, by id.
    pub async fn console_devices(&self, f: &DeviceListFilter) -> Result<Vec<ConsoleDevice>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_as(LIST_DEVICES)
                .bind(f.today_since)
                .bind(f.state.map(DeviceState::as_str))
                .bind(f.area_id)
                .bind(f.search.as_deref())
                .bind(f.after_id)
                .bind(f.limit)
                .fetch_all(db.pool())
                .await?)
        })
    }

    /// One device as the console shows it.
    pub async fn console_device(&self, sn: &str, today_since: i64) -> Result<Option<ConsoleDevice>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_as(DEVICE_BY_SN).bind(today_since).bind(sn).fetch_optional(db.pool()).await?)
        })
    }

    /// A device's newest punches by `seq`, at most `limit`, among those whose wall-clock time
    /// is within `window` (inclusive, `YYYY-MM-DD HH:MM:SS`). The window keeps the read to a
    /// range of the natural key's index, which leads by time: SQLite has no index led by the
    /// device (one costs a quarter of 1-line ingest, BENCHMARKS.md 2026-12-06).
    pub async fn recent_device_punches(
        &self,
        device_id: i64,
        window: (&str, &str),
        limit: i64,
    ) -> Result<Vec<DevicePunch>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_as(
                "SELECT p.id, p.seq, p.pin, p.local_time, p.state, p.verify, p.work_code, p.received_at, u.name \
                 FROM punches AS p LEFT JOIN device_users AS u ON u.device_id = p.device_id AND u.pin = p.pin \
                 WHERE p.local_time BETWEEN $2 AND $3 AND p.device_id = $1 ORDER BY p.seq DESC LIMIT $4",
            )
            .bind(device_id)
            .bind(window.0)
            .bind(window.1)
            .bind(limit)
            .fetch_all(db.pool())
            .await?)
        })
    }
}

/// A terminal that reported an employee's PIN, with the templates it reported for them.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct HeldBy {
    pub pin: String,
    pub sn: String,
    /// The name the terminal has for the PIN.
    pub name: String,
    pub fingerprints: i64,
    /// Face templates, infrared (type 2) and visible light (type 9).
    pub faces: i64,
}

impl Store {
    /// Which terminals reported each of `pins` (a page of employees), with their template
    /// counts; deleted terminals left out.
    pub async fn terminals_holding(&self, pins: &[String]) -> Result<Vec<HeldBy>, StoreError> {
        if pins.is_empty() {
            return Ok(Vec::new());
        }
        on_db!(self, |db| {
            Ok(sqlx::query_as(concat!(
                "SELECT u.pin, d.sn, u.name, \
                        (SELECT COUNT(*) FROM biometric_templates AS t \
                         WHERE t.device_id = u.device_id AND t.pin = u.pin AND t.bio_type = 1) AS fingerprints, \
                        (SELECT COUNT(*) FROM biometric_templates AS t \
                         WHERE t.device_id = u.device_id AND t.pin = u.pin AND t.bio_type IN (2, 9)) AS faces \
                 FROM device_users AS u JOIN devices AS d ON d.id = u.device_id \
                 WHERE d.deleted_at IS NULL AND ",
                in_list!("u.pin", "$1"),
                " ORDER BY u.pin, d.sn"
            ))
            .bind(dialect::list_param(pins))
            .fetch_all(db.pool())
            .await?)
        })
    }
}
