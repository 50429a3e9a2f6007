//! Terminals: registration on first contact, facts from handshakes, INFO and option dumps, and
//! batched activity updates (polls are not written one by one).

use sqlx::FromRow;

use adms_model::Approval;

use crate::device_events::NewEvent;
use crate::events::{DeviceRegisteredData, EventDevice, device_registered_event_id, event_body, event_type};
use crate::uploads::RawUpload;
use crate::{Store, StoreError, now_micros};

/// A terminal as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: i64,
    pub sn: String,
    pub alias: String,
    pub approval: Approval,
    pub protocol_family: String,
    pub push_version: String,
    pub language: String,
    pub time_zone: Option<String>,
    pub text_encoding: Option<String>,
    pub attlog_stamp: String,
    pub operlog_stamp: String,
    pub attphoto_stamp: String,
    pub biodata_stamp: String,
    pub registry_code: String,
    pub last_seq: i64,
}

#[derive(FromRow)]
struct DeviceRecord {
    id: i64,
    sn: String,
    alias: String,
    /// Decoded strictly: a word other than `approved`/`pending` fails the read instead of
    /// trusting (or distrusting) the device by default.
    approval: Approval,
    protocol_family: String,
    push_version: String,
    language: String,
    time_zone: Option<String>,
    text_encoding: Option<String>,
    attlog_stamp: String,
    operlog_stamp: String,
    attphoto_stamp: String,
    biodata_stamp: String,
    registry_code: String,
    last_seq: i64,
}

impl From<DeviceRecord> for Device {
    fn from(r: DeviceRecord) -> Device {
        Device {
            id: r.id,
            sn: r.sn,
            alias: r.alias,
            approval: r.approval,
            protocol_family: r.protocol_family,
            push_version: r.push_version,
            language: r.language,
            time_zone: r.time_zone,
            text_encoding: r.text_encoding,
            attlog_stamp: r.attlog_stamp,
            operlog_stamp: r.operlog_stamp,
            attphoto_stamp: r.attphoto_stamp,
            biodata_stamp: r.biodata_stamp,
            registry_code: r.registry_code,
            last_seq: r.last_seq,
        }
    }
}

const DEVICE_COLUMNS_BY_SN: &str = "SELECT id, sn, alias, approval, protocol_family, push_version, language, time_zone, \
     text_encoding, attlog_stamp, operlog_stamp, attphoto_stamp, biodata_stamp, registry_code, last_seq \
     FROM devices WHERE sn = $1";
const DEVICE_COLUMNS_BY_ID: &str = "SELECT id, sn, alias, approval, protocol_family, push_version, language, time_zone, \
     text_encoding, attlog_stamp, operlog_stamp, attphoto_stamp, biodata_stamp, registry_code, last_seq \
     FROM devices WHERE id = $1";

/// What is known about a device at its first request.
#[derive(Debug, Clone, Default)]
pub struct NewDevice<'a> {
    pub sn: &'a str,
    /// `None`: pending.
    pub approval: Option<Approval>,
    pub protocol_family: &'a str,
    pub ip_address: &'a str,
    /// The zone its `device.registered` event names: a new device has no zone of its own yet, so
    /// the server default its times are read in.
    pub default_time_zone: &'a str,
    /// The handshake this first contact is, recorded with the new row (one commit, not two;
    /// `protocol_family` and `ip_address` above are the handshake's too).
    pub handshake: Option<HandshakeUpdate<'a>>,
}

/// Facts from an attendance or Security PUSH handshake.
#[derive(Debug, Clone, Default)]
pub struct HandshakeUpdate<'a> {
    pub push_version: &'a str,
    pub language: &'a str,
    pub device_type: &'a str,
    pub protocol_family: &'a str,
    pub ip_address: &'a str,
}

/// Facts from `INFO=`, an options dump or an INFO command result. `None` leaves a value as is.
#[derive(Debug, Clone, Default)]
pub struct DeviceInfoUpdate {
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub firmware_push_version: Option<String>,
    pub ip_address: Option<String>,
    pub user_count: Option<i64>,
    pub fp_count: Option<i64>,
    pub face_count: Option<i64>,
    pub palm_count: Option<i64>,
    pub transaction_count: Option<i64>,
    pub fp_algorithm: Option<String>,
    pub face_algorithm: Option<String>,
}

/// Last activity of a device, flushed in batches.
#[derive(Debug, Clone)]
pub struct DeviceActivity {
    pub device_id: i64,
    pub at_micros: i64,
    pub ip_address: String,
}

/// What a device told about itself in one request.
#[derive(Debug, Clone, Default)]
pub struct DeviceFacts {
    /// Option dump (`key=value` as sent).
    pub options: Vec<(String, String)>,
    /// Counts and versions derived from it.
    pub info: Option<DeviceInfoUpdate>,
    /// A Security PUSH registry code to keep.
    pub registry_code: Option<String>,
}

impl DeviceFacts {
    pub fn is_empty(&self) -> bool {
        self.options.is_empty() && self.info.is_none() && self.registry_code.is_none()
    }
}

dual! {
    pub(crate) async fn store_facts_in(
        conn: &mut Conn,
        device_id: i64,
        facts: &DeviceFacts,
    ) -> Result<(), StoreError> {
        let now = now_micros();
        if !facts.options.is_empty() {
            // One statement for the whole dump; a key named twice keeps its last value.
            let mut seen = std::collections::HashSet::with_capacity(facts.options.len());
            let mut options: Vec<(&str, &str)> = facts
                .options
                .iter()
                .rev()
                .filter(|(key, _)| seen.insert(key.as_str()))
                .map(|(key, value)| (key.as_str(), value.as_str()))
                .collect();
            options.reverse();
            dialect::upsert_device_options(&mut *conn, device_id, &options, now).await?;
        }
        if let Some(info) = &facts.info {
            dialect::update_info_in(conn, device_id, info).await?;
        }
        // An access controller's registry or options name its doors.
        dialect::derive_doors_in(conn, device_id, &facts.options).await?;
        if let Some(code) = &facts.registry_code {
            sqlx::query("UPDATE devices SET registry_code = $1 WHERE id = $2")
                .bind(code)
                .bind(device_id)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn update_info_in(conn: &mut Conn, device_id: i64, u: &DeviceInfoUpdate) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE devices SET model = COALESCE($1, model), firmware = COALESCE($2, firmware), \
             firmware_push_version = COALESCE($3, firmware_push_version), ip_address = COALESCE($4, ip_address), \
             ip_address_reported = (ip_address_reported OR $4 IS NOT NULL), \
             user_count = COALESCE($5, user_count), fp_count = COALESCE($6, fp_count), \
             face_count = COALESCE($7, face_count), palm_count = COALESCE($8, palm_count), \
             transaction_count = COALESCE($9, transaction_count), fp_algorithm = COALESCE($10, fp_algorithm), \
             face_algorithm = COALESCE($11, face_algorithm) WHERE id = $12",
        )
        .bind(&u.model)
        .bind(&u.firmware)
        .bind(&u.firmware_push_version)
        // An empty address is no report (a firmware with the field but no network set up).
        .bind(u.ip_address.as_deref().filter(|ip| !ip.trim().is_empty()))
        .bind(u.user_count)
        .bind(u.fp_count)
        .bind(u.face_count)
        .bind(u.palm_count)
        .bind(u.transaction_count)
        .bind(&u.fp_algorithm)
        .bind(&u.face_algorithm)
        .bind(device_id)
        .execute(conn)
        .await?;
        Ok(())
    }
}

impl Store {
    /// Serial numbers of the devices waiting for approval (an operator may have withdrawn one's
    /// approval from the CLI or another replica: a server re-reads these to catch up).
    pub async fn pending_device_sns(&self) -> Result<Vec<String>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_scalar("SELECT sn FROM devices WHERE approval = 'pending' ORDER BY id")
                .fetch_all(db.pool())
                .await?)
        })
    }

    /// Ids of the approved devices (those the roster is kept on), in id order.
    pub async fn approved_device_ids(&self) -> Result<Vec<i64>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_scalar("SELECT id FROM devices WHERE approval = 'approved' ORDER BY id")
                .fetch_all(db.pool())
                .await?)
        })
    }

    /// A device by its id (the ZKBio Time terminal id).
    pub async fn device_by_id(&self, id: i64) -> Result<Option<Device>, StoreError> {
        on_db!(self, |db| {
            let row: Option<DeviceRecord> =
                sqlx::query_as(DEVICE_COLUMNS_BY_ID).bind(id).fetch_optional(db.pool()).await?;
            Ok(row.map(Device::from))
        })
    }

    pub async fn device_by_sn(&self, sn: &str) -> Result<Option<Device>, StoreError> {
        on_db!(self, |db| {
            let row: Option<DeviceRecord> =
                sqlx::query_as(DEVICE_COLUMNS_BY_SN).bind(sn).fetch_optional(db.pool()).await?;
            Ok(row.map(Device::from))
        })
    }

    /// Registers a device on first contact, or returns the existing one (another replica or
    /// request may have registered it concurrently). The call that inserts the row also emits
    /// `device.registered`, in the same transaction.
    pub async fn register_device(&self, new: &NewDevice<'_>) -> Result<Device, StoreError> {
        on_db!(self, |db| {
            // A device nobody vouched for is not trusted.
            let approval = new.approval.unwrap_or(Approval::Pending);
            let now = now_micros();
            let mut tx = db.begin().await?;
            let handshake = new.handshake.as_ref();
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO devices (sn, approval, protocol_family, ip_address, first_seen_at, last_activity_at, \
                 presence, presence_changed_at, push_version, language, device_type, last_handshake_at) \
                 VALUES ($1, $2, $3, $4, $5, $5, 'online', $5, $6, $7, $8, $9) \
                 ON CONFLICT (sn) DO NOTHING RETURNING id",
            )
            .bind(new.sn)
            .bind(approval)
            .bind(new.protocol_family)
            .bind(new.ip_address)
            .bind(now)
            .bind(handshake.map_or("", |h| h.push_version))
            .bind(handshake.map_or("", |h| h.language))
            .bind(handshake.map_or("", |h| h.device_type))
            .bind(handshake.map(|_| now))
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(device_id) = inserted {
                let event_id = device_registered_event_id(new.sn);
                let data = DeviceRegisteredData {
                    device: EventDevice { sn: new.sn, alias: "", time_zone: new.default_time_zone },
                    approval: approval.as_str(),
                    protocol_family: new.protocol_family,
                    ip_address: new.ip_address,
                };
                let body = event_body(&event_id, event_type::DEVICE_REGISTERED, now, &data);
                let event = NewEvent {
                    event_id: &event_id,
                    event_type: event_type::DEVICE_REGISTERED,
                    device_id,
                    occurred_at: now,
                    created_at: now,
                    body: &body,
                };
                dialect::insert_event_in(&mut tx, &event).await?;
            }
            let device: Option<DeviceRecord> =
                sqlx::query_as(DEVICE_COLUMNS_BY_SN).bind(new.sn).fetch_optional(&mut *tx).await?;
            tx.commit().await?;
            device.map(Device::from).ok_or(StoreError::NotFound)
        })
    }

    pub async fn record_handshake(&self, device_id: i64, h: &HandshakeUpdate<'_>) -> Result<(), StoreError> {
        on_db!(self, |db| {
            sqlx::query(
                "UPDATE devices SET push_version = $1, language = $2, device_type = $3, protocol_family = $4, \
                 ip_address = CASE WHEN ip_address_reported THEN ip_address ELSE $5 END, last_handshake_at = $6, \
                 last_activity_at = $7 WHERE id = $8",
            )
            .bind(h.push_version)
            .bind(h.language)
            .bind(h.device_type)
            .bind(h.protocol_family)
            .bind(h.ip_address)
            .bind(now_micros())
            .bind(now_micros())
            .bind(device_id)
            .execute(&mut *db.writer().await?)
            .await?;
            Ok(())
        })
    }

    /// Records device facts from `INFO=` (one statement).
    pub async fn update_device_info(&self, device_id: i64, u: &DeviceInfoUpdate) -> Result<(), StoreError> {
        on_db!(self, |db| {
            let mut conn = db.writer().await?;
            dialect::update_info_in(&mut conn, device_id, u).await
        })
    }

    /// Stores what a device told about itself in one request (options dump, counts, registry
    /// code) and, optionally, the raw body, in one transaction.
    pub async fn store_device_facts(
        &self,
        device_id: i64,
        raw: Option<&RawUpload<'_>>,
        facts: &DeviceFacts,
    ) -> Result<(), StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            if let Some(raw) = raw {
                dialect::insert_raw_in(&mut tx, self.sealer(), raw).await?;
            }
            dialect::store_facts_in(&mut tx, device_id, facts).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn device_options(&self, device_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_as("SELECT key, value FROM device_options WHERE device_id = $1 ORDER BY key")
                .bind(device_id)
                .fetch_all(db.pool())
                .await?)
        })
    }

    /// Rows in each of [`COUNTED_TABLES`], in that order: what an operator (or a replayed
    /// session's `rows TABLE N` check) reads through the API. Each count is a full count, so
    /// this is an administrator's read, not a hot path.
    pub async fn table_row_counts(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        on_db!(self, |db| {
            let rows: Vec<(String, i64)> = sqlx::query_as(TABLE_ROW_COUNTS).fetch_all(db.pool()).await?;
            // By name: UNION ALL promises no order.
            Ok(COUNTED_TABLES
                .into_iter()
                .map(|table| (table, rows.iter().find(|(name, _)| name == table).map_or(0, |(_, n)| *n)))
                .collect())
        })
    }

    /// Records the stamp a device reported for a table (`attlog`, `operlog`, `attphoto`, `biodata`).
    pub async fn set_stamp(&self, device_id: i64, table: &str, stamp: &str) -> Result<(), StoreError> {
        on_db!(self, |db| {
            let sql = match table {
                "attlog" => "UPDATE devices SET attlog_stamp = $1 WHERE id = $2",
                "operlog" => "UPDATE devices SET operlog_stamp = $1 WHERE id = $2",
                "attphoto" => "UPDATE devices SET attphoto_stamp = $1 WHERE id = $2",
                "biodata" => "UPDATE devices SET biodata_stamp = $1 WHERE id = $2",
                _ => return Ok(()),
            };
            sqlx::query(sql).bind(stamp).bind(device_id).execute(&mut *db.writer().await?).await?;
            Ok(())
        })
    }

    /// Writes the last activity of many devices in one transaction (polls are kept in memory and
    /// flushed periodically, so a heartbeat costs no write).
    pub async fn record_activity(&self, activity: &[DeviceActivity]) -> Result<(), StoreError> {
        on_db!(self, |db| {
            if activity.is_empty() {
                return Ok(());
            }
            // In id order, as every transaction that locks several device rows takes them (the
            // punch writers above all): two of them never wait for each other in a cycle. A
            // device named twice keeps its latest request (one row per device: an `UPDATE …
            // FROM` with two would pick either).
            let mut activity: Vec<&DeviceActivity> = activity.iter().collect();
            activity.sort_by_key(|a| (a.device_id, a.at_micros));
            activity.reverse();
            activity.dedup_by_key(|a| a.device_id);
            activity.reverse();
            // One statement for the whole batch (see `dialect::record_activity_in`).
            let mut tx = db.begin().await?;
            dialect::record_activity_in(&mut tx, &activity).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Approves a pending device; returns false when no device has that SN.
    pub async fn set_approval(&self, sn: &str, approval: Approval) -> Result<bool, StoreError> {
        on_db!(self, |db| {
            let done = sqlx::query("UPDATE devices SET approval = $1 WHERE sn = $2")
                .bind(approval)
                .bind(sn)
                .execute(db.pool())
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Sets per-device settings an operator controls (`None` leaves a value unchanged).
    /// Hides a terminal from the terminals API and cancels its queued commands (its data
    /// stays; its next request brings it back). Returns whether it existed.
    pub async fn delete_terminal(&self, id: i64, now: i64) -> Result<bool, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let done = sqlx::query("UPDATE devices SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE device_commands SET state = 'cancelled', completed_at = $1, result = 'terminal deleted' \
                 WHERE device_id = $2 AND state = 'queued'",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Brings back a deleted terminal (an operator creating it again).
    pub async fn restore_terminal(&self, id: i64) -> Result<(), StoreError> {
        on_db!(self, |db| {
            sqlx::query("UPDATE devices SET deleted_at = NULL WHERE id = $1").bind(id).execute(db.pool()).await?;
            Ok(())
        })
    }

    /// Whether a terminal was deleted through the API (and has not made a request since).
    pub async fn terminal_deleted(&self, id: i64) -> Result<bool, StoreError> {
        on_db!(self, |db| {
            let deleted: Option<Option<i64>> = sqlx::query_scalar("SELECT deleted_at FROM devices WHERE id = $1")
                .bind(id)
                .fetch_optional(db.pool())
                .await?;
            Ok(matches!(deleted, Some(Some(_))))
        })
    }

    pub async fn configure_device(
        &self,
        sn: &str,
        alias: Option<&str>,
        time_zone: Option<&str>,
        text_encoding: Option<&str>,
    ) -> Result<bool, StoreError> {
        on_db!(self, |db| {
            let done = sqlx::query(
                "UPDATE devices SET alias = COALESCE($1, alias), time_zone = COALESCE($2, time_zone), \
                 text_encoding = COALESCE($3, text_encoding) WHERE sn = $4",
            )
            .bind(alias)
            .bind(time_zone)
            .bind(text_encoding)
            .bind(sn)
            .execute(db.pool())
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }
}

/// The tables [`Store::table_row_counts`] counts, in the order of its answer.
pub const COUNTED_TABLES: [&str; 13] = [
    "devices",
    "punches",
    "rejected_lines",
    "operation_logs",
    "device_users",
    "biometric_templates",
    "user_photos",
    "device_records",
    "device_options",
    "command_results",
    "access_events",
    "raw_uploads",
    "att_photos",
];

/// One statement for every count of [`COUNTED_TABLES`], one row each: the table's name and count.
const TABLE_ROW_COUNTS: &str = "SELECT 'devices', COUNT(*) FROM devices UNION ALL SELECT 'punches', COUNT(*) FROM punches \
     UNION ALL SELECT 'rejected_lines', COUNT(*) FROM rejected_lines UNION ALL SELECT 'operation_logs', COUNT(*) FROM operation_logs \
     UNION ALL SELECT 'device_users', COUNT(*) FROM device_users UNION ALL SELECT 'biometric_templates', COUNT(*) FROM biometric_templates \
     UNION ALL SELECT 'user_photos', COUNT(*) FROM user_photos UNION ALL SELECT 'device_records', COUNT(*) FROM device_records \
     UNION ALL SELECT 'device_options', COUNT(*) FROM device_options UNION ALL SELECT 'command_results', COUNT(*) FROM command_results \
     UNION ALL SELECT 'access_events', COUNT(*) FROM access_events UNION ALL SELECT 'raw_uploads', COUNT(*) FROM raw_uploads \
     UNION ALL SELECT 'att_photos', COUNT(*) FROM att_photos";
