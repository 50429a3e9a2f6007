//! Everything else a device uploads: OPERLOG/BIODATA records, attendance photos, access events,
//! command results and raw bodies. Each request is one transaction; re-sent data is
//! de-duplicated by natural keys or content hashes.

use std::collections::HashMap;

use sqlx::Connection;

use crate::device_events::NewEvent;

use crate::events::{EventDevice, UserData, event_body, event_type, user_enrolled_event_id, user_updated_event_id};
use crate::punches::RejectedLine;
use crate::quotas::{Quota, QuotaKind};
use crate::trust::AdoptionPolicy;
use adms_vault::Sealer;

use crate::{Store, StoreError, now_micros, sealed, sha256};

/// `OPLOG` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationLog {
    pub op_code: i64,
    pub operator: String,
    pub local_time: String,
    pub objects: [String; 4],
    pub raw_line: Vec<u8>,
}

/// `USER` line, decoded with the device's encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub pin: String,
    pub name: String,
    /// Set when the name bytes did not decode cleanly: the original bytes.
    pub name_raw: Option<Vec<u8>>,
    pub privilege: Option<i64>,
    pub password: String,
    pub card: String,
    pub group: String,
    pub time_zones: String,
    pub verify: Option<i64>,
    pub vice_card: String,
    pub raw_line: Vec<u8>,
}

/// `FP` / `FACE` / `FVEIN` / `BIODATA` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BiometricTemplate {
    pub pin: String,
    pub record_kind: &'static str,
    pub bio_type: i64,
    pub no: i64,
    pub index: i64,
    pub valid: Option<i64>,
    pub duress: Option<i64>,
    pub major_ver: Option<i64>,
    pub minor_ver: Option<i64>,
    pub format: String,
    pub size: Option<i64>,
    pub template: String,
}

/// `USERPIC` / `BIOPHOTO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPhoto {
    pub pin: String,
    pub record_kind: &'static str,
    pub photo_type: i64,
    pub file_name: String,
    pub size: Option<i64>,
    pub content: String,
    pub url: String,
}

/// A line of a kind not modelled yet, kept raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub kind: String,
    pub raw_line: Vec<u8>,
}

/// Everything one OPERLOG/BIODATA request carries.
#[derive(Debug, Clone, Default)]
pub struct OperlogBatch {
    pub device_id: i64,
    pub table: &'static str,
    pub oplogs: Vec<OperationLog>,
    pub users: Vec<UserRow>,
    pub templates: Vec<BiometricTemplate>,
    pub photos: Vec<UserPhoto>,
    pub others: Vec<DeviceRecord>,
    pub rejected: Vec<RejectedLine>,
    pub operlog_stamp: Option<String>,
    pub received_at: i64,
    /// The device as `user.*` events describe it (the SN also derives their ids).
    pub device_sn: String,
    pub device_alias: String,
    pub device_time_zone: String,
    /// How far its users and templates reach the roster (observe only, unless the device is
    /// approved and the operator's `device_users` policy adopts them).
    pub adoption: AdoptionPolicy,
    /// Quotas for `photos` and `others` (`None`: not charged). Users, templates and operation
    /// logs are never charged.
    pub photo_quota: Option<Quota>,
    pub raw_quota: Option<Quota>,
}

/// An attendance photo.
#[derive(Debug, Clone)]
pub struct AttPhotoUpload {
    pub device_id: i64,
    pub file_name: String,
    pub pin: Option<String>,
    pub local_time: Option<String>,
    pub image: Vec<u8>,
    pub received_at: i64,
    /// The device's photo quota; `None`: not charged.
    pub quota: Option<Quota>,
}

/// An `rtlog` access event.
#[derive(Debug, Clone)]
pub struct AccessEvent {
    pub local_time: String,
    pub pin: String,
    pub card_no: String,
    pub door: Option<i64>,
    pub event_code: Option<i64>,
    pub in_out: Option<i64>,
    pub verify_type: String,
    pub raw_line: Vec<u8>,
}

/// An `rtlog` event ready to insert: its sealed values and the digest of its line (its
/// natural key: a re-sent line is the same row).
pub(crate) struct SealedAccessEvent {
    pub event: AccessEvent,
    pub card_no: String,
    pub raw_line: Vec<u8>,
    pub digest: [u8; 32],
}

/// A row a group's insert created: its id, its device, and which event of which request it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InsertedAccessEvent {
    pub id: i64,
    pub device_id: i64,
    pub upload: usize,
    pub index: usize,
}

impl InsertedAccessEvent {
    /// Matches the `(id, device, digest)` rows an insert returned to the events of `uploads`
    /// (a line sent twice, in one body or in two requests of the group, is one row, matched to
    /// its first place).
    pub(crate) fn matched(rows: Vec<(i64, i64, Vec<u8>)>, uploads: &[&AccessUpload]) -> Vec<InsertedAccessEvent> {
        let mut place: std::collections::HashMap<(i64, &[u8]), (usize, usize)> = std::collections::HashMap::new();
        for (upload, u) in uploads.iter().enumerate() {
            for (index, e) in u.events.iter().enumerate() {
                place.entry((u.device_id, &e.digest[..])).or_insert((upload, index));
            }
        }
        rows.into_iter()
            .filter_map(|(id, device_id, digest)| {
                place.get(&(device_id, digest.as_slice())).map(|&(upload, index)| InsertedAccessEvent {
                    id,
                    device_id,
                    upload,
                    index,
                })
            })
            .collect()
    }
}

/// One `rtlog` request ready to write: its events sealed and digested (before any
/// transaction, so the write lock is held for the statements only).
pub(crate) struct AccessUpload {
    pub device_id: i64,
    pub events: Vec<SealedAccessEvent>,
    pub rejected: Vec<RejectedLine>,
    pub received_at: i64,
    pub default_time_zone: String,
}

impl AccessUpload {
    fn seal(
        sealer: Sealer<'_>,
        device_id: i64,
        events: Vec<AccessEvent>,
        rejected: Vec<RejectedLine>,
        received_at: i64,
        default_time_zone: &str,
    ) -> AccessUpload {
        let device = device_id.to_string();
        let events = events
            .into_iter()
            .map(|event| {
                let digest = sealer.digest(sealed::ACCESS_EVENT_RAW.kind, &event.raw_line);
                let record = sealed::digest_record(&device, &digest);
                SealedAccessEvent {
                    card_no: sealer.seal(sealed::ACCESS_EVENT_CARD.kind, &record, &event.card_no),
                    raw_line: sealer.seal_bytes(sealed::ACCESS_EVENT_RAW.kind, &record, &event.raw_line),
                    digest,
                    event,
                }
            })
            .collect();
        AccessUpload { device_id, events, rejected, received_at, default_time_zone: default_time_zone.to_owned() }
    }
}

/// A whole request body kept as received.
#[derive(Debug, Clone)]
pub struct RawUpload<'a> {
    pub device_id: Option<i64>,
    pub sn: &'a str,
    pub endpoint: &'a str,
    pub table: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
    pub received_at: i64,
    /// The device's raw quota; `None` (known tables kept beside their parsed form, such as
    /// options dumps and registry bodies): not charged.
    pub quota: Option<Quota>,
}

impl Store {
    /// Stores one OPERLOG/BIODATA request in one transaction.
    ///
    /// Returns the quota that made it drop photos or raw records (see [`OperlogBatch::photo_quota`]);
    /// [`StoreError::QuotaExceeded`] when the body held nothing else (nothing stored).
    pub async fn store_operlog(&self, b: &OperlogBatch) -> Result<Option<QuotaKind>, StoreError> {
        on_db!(self, |db| {
            let sealer = self.sealer();
            let mut tx = db.begin().await?;
            let now = b.received_at;
            for o in &b.oplogs {
                sqlx::query(
                    "INSERT INTO operation_logs (device_id, op_code, operator, local_time, obj1, obj2, obj3, obj4, raw_line, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                )
                .bind(b.device_id)
                .bind(o.op_code)
                .bind(&o.operator)
                .bind(&o.local_time)
                .bind(&o.objects[0])
                .bind(&o.objects[1])
                .bind(&o.objects[2])
                .bind(&o.objects[3])
                .bind(&o.raw_line)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            dialect::upsert_users_in(&mut tx, sealer, b).await?;
            for t in &b.templates {
                sqlx::query(
                    "INSERT INTO biometric_templates (device_id, pin, bio_type, bio_no, bio_index, record_kind, valid, duress, \
                     major_ver, minor_ver, format, size, template, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                     ON CONFLICT (device_id, pin, bio_type, bio_no, bio_index) DO UPDATE SET record_kind = excluded.record_kind, \
                     valid = excluded.valid, duress = excluded.duress, major_ver = excluded.major_ver, \
                     minor_ver = excluded.minor_ver, format = excluded.format, size = excluded.size, \
                     template = excluded.template, updated_at = excluded.updated_at",
                )
                .bind(b.device_id)
                .bind(&t.pin)
                .bind(t.bio_type)
                .bind(t.no)
                .bind(t.index)
                .bind(t.record_kind)
                .bind(t.valid)
                .bind(t.duress)
                .bind(t.major_ver)
                .bind(t.minor_ver)
                .bind(&t.format)
                .bind(t.size)
                .bind(sealer.seal(
                    sealed::DEVICE_TEMPLATE.kind,
                    &format!("{}/{}/{}/{}/{}", b.device_id, t.pin, t.bio_type, t.no, t.index),
                    &t.template,
                ))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                dialect::adopt_device_template_in(&mut tx, sealer, b.device_id, t, b.adoption, now).await?;
            }
            // Photos and raw records are charged to the device's quotas in a savepoint: over quota,
            // a body that also carries users, templates or operation logs keeps those (they are the
            // product) and loses only the charged part; a body of charged records only is refused
            // whole. `limited` reports which quota refused. A body with neither takes no savepoint.
            let limited = if b.photos.is_empty() && b.others.is_empty() {
                None
            } else {
                let mut sp = tx.begin().await?;
                let photo_bytes: u64 = b.photos.iter().map(|p| (p.content.len() + p.url.len()) as u64).sum();
                let mut raw_bytes = 0u64;
                for p in &b.photos {
                    sqlx::query(
                        "INSERT INTO user_photos (device_id, pin, record_kind, photo_type, file_name, size, content, url, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (device_id, pin, record_kind, photo_type) DO UPDATE SET \
                         file_name = excluded.file_name, size = excluded.size, content = excluded.content, url = excluded.url, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(b.device_id)
                    .bind(&p.pin)
                    .bind(p.record_kind)
                    .bind(p.photo_type)
                    .bind(&p.file_name)
                    .bind(p.size)
                    .bind(sealer.seal(
                        sealed::USER_PHOTO.kind,
                        &format!("{}/{}/{}/{}", b.device_id, p.pin, p.record_kind, p.photo_type),
                        &p.content,
                    ))
                    .bind(&p.url)
                    .bind(now)
                    .execute(&mut *sp)
                    .await?;
                }
                for o in &b.others {
                    let digest = sealer.digest(sealed::DEVICE_RECORD_RAW.kind, &o.raw_line);
                    let record = sealed::digest_record(&format!("{}/{}", b.device_id, b.table), &digest);
                    let inserted = sqlx::query(
                        "INSERT INTO device_records (device_id, table_name, kind, raw_line, raw_sha256, received_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    )
                    .bind(b.device_id)
                    .bind(b.table)
                    .bind(&o.kind)
                    .bind(sealer.seal_bytes(sealed::DEVICE_RECORD_RAW.kind, &record, &o.raw_line))
                    .bind(&digest[..])
                    .bind(now)
                    .execute(&mut *sp)
                    .await?;
                    // A re-sent line stores nothing and costs nothing.
                    if inserted.rows_affected() > 0 {
                        raw_bytes += o.raw_line.len() as u64;
                    }
                }
                let charged = dialect::charge_operlog_in(&mut sp, b, photo_bytes, raw_bytes).await;
                match charged {
                    Ok(()) => {
                        sp.commit().await?;
                        None
                    }
                    Err(StoreError::QuotaExceeded(kind)) => {
                        sp.rollback().await?;
                        if b.oplogs.is_empty() && b.users.is_empty() && b.templates.is_empty() {
                            return Err(StoreError::QuotaExceeded(kind));
                        }
                        Some(kind)
                    }
                    Err(e) => return Err(e),
                }
            };
            for r in &b.rejected {
                dialect::insert_rejected(&mut tx, sealer, b.device_id, r, now).await?;
            }
            if let Some(stamp) = &b.operlog_stamp {
                let sql = if b.table == "BIODATA" {
                    "UPDATE devices SET biodata_stamp = $1 WHERE id = $2"
                } else {
                    "UPDATE devices SET operlog_stamp = $1 WHERE id = $2"
                };
                sqlx::query(sql).bind(stamp).bind(b.device_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(limited)
        })
    }

    /// Stores an attendance photo and links it to the punch it belongs to, when stored.
    /// Charged to the photo quota (a re-sent photo replaces the stored one and is charged again:
    /// cheaper than comparing images, and firmware re-sends photos rarely).
    pub async fn store_att_photo(&self, p: &AttPhotoUpload) -> Result<(), StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            if let Some(quota) = p.quota {
                dialect::charge_in(&mut tx, p.device_id, QuotaKind::Photo, quota, p.image.len() as u64).await?;
            }
            sqlx::query(
                "INSERT INTO att_photos (device_id, file_name, pin, local_time, punch_id, image, received_at) \
                 VALUES ($1, $2, $3, $4, (SELECT id FROM punches WHERE device_id = $5 AND pin = $6 AND local_time = $7 ORDER BY id LIMIT 1), $8, $9) \
                 ON CONFLICT (device_id, file_name) DO UPDATE SET image = excluded.image, \
                 punch_id = COALESCE(att_photos.punch_id, excluded.punch_id)",
            )
            .bind(p.device_id)
            .bind(&p.file_name)
            .bind(&p.pin)
            .bind(&p.local_time)
            .bind(p.device_id)
            .bind(&p.pin)
            .bind(&p.local_time)
            .bind(self.sealer().seal_bytes(sealed::ATT_PHOTO.kind, &format!("{}/{}", p.device_id, p.file_name), &p.image))
            .bind(p.received_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Stores `rtlog` events and rejected lines of one request ([`Self::store_access_events_in`]
    /// with UTC for a device without its own zone).
    pub async fn store_access_events(
        &self,
        device_id: i64,
        events: &[AccessEvent],
        rejected: &[RejectedLine],
        received_at: i64,
    ) -> Result<(), StoreError> {
        self.store_access_events_in(device_id, events.to_vec(), rejected.to_vec(), received_at, "UTC").await
    }

    /// Stores `rtlog` events and rejected lines of one request; returns once they are
    /// committed. Each event is stored once (a re-sent line is recognised by its digest) and,
    /// in the same transaction, becomes an `access.event` webhook event (while an endpoint
    /// exists) whose id is derived from the device and the line, so a re-sent line is neither
    /// a second row nor a second event. `default_time_zone` is the zone named in the event for
    /// a device without its own.
    ///
    /// The requests waiting meanwhile share one transaction ([`crate::access_writer`]).
    pub async fn store_access_events_in(
        &self,
        device_id: i64,
        events: Vec<AccessEvent>,
        rejected: Vec<RejectedLine>,
        received_at: i64,
        default_time_zone: &str,
    ) -> Result<(), StoreError> {
        let upload = AccessUpload::seal(self.sealer(), device_id, events, rejected, received_at, default_time_zone);
        self.access_writer.write(upload).await
    }

    /// Keeps a whole body as received (unknown tables, registry bodies, ...).
    ///
    /// With a quota, the body is charged to the device's raw quota in the same transaction,
    /// unless the same body is already stored (a re-send only counts `seen_count`).
    pub async fn store_raw_upload(&self, u: &RawUpload<'_>) -> Result<(), StoreError> {
        self.store_raw_upload_with_state(u, None).await
    }

    /// Keeps an access controller's `rtstate` body as [`Store::store_raw_upload`] does and, in
    /// the same transaction, the door state it carries, unless a newer state is kept already
    /// (uploads of one controller may be handled out of order by two replicas). One commit, so
    /// a device that is answered an error resends a whole request.
    pub async fn store_rtstate_upload(
        &self,
        u: &RawUpload<'_>,
        state: &crate::cvsecurity::ControllerState,
    ) -> Result<(), StoreError> {
        self.store_raw_upload_with_state(u, Some(state)).await
    }

    async fn store_raw_upload_with_state(
        &self,
        u: &RawUpload<'_>,
        state: Option<&crate::cvsecurity::ControllerState>,
    ) -> Result<(), StoreError> {
        on_db!(self, |db| {
            let charged = u.quota.zip(u.device_id);
            if charged.is_none() && state.is_none() {
                // One statement: its own transaction.
                let mut conn = db.pool().acquire().await?;
                return dialect::insert_raw_in(&mut conn, self.sealer(), u).await;
            }
            let mut tx = db.begin().await?;
            if let Some((quota, device_id)) = charged {
                let stored: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM raw_uploads WHERE sn = $1 AND endpoint = $2 AND table_name = $3 AND body_sha256 = $4",
                )
                .bind(u.sn)
                .bind(u.endpoint)
                .bind(u.table)
                .bind(&self.sealer().digest(sealed::RAW_UPLOAD_BODY.kind, u.body)[..])
                .fetch_optional(&mut *tx)
                .await?;
                if stored.is_none() {
                    dialect::charge_in(&mut tx, device_id, QuotaKind::Raw, quota, u.body.len() as u64).await?;
                }
            }
            dialect::insert_raw_in(&mut tx, self.sealer(), u).await?;
            if let Some(state) = state {
                sqlx::query(
                    "INSERT INTO access_controller_states (device_id, local_time, sensor, relay, alarm, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (device_id) DO UPDATE SET local_time = excluded.local_time, \
                     sensor = excluded.sensor, relay = excluded.relay, alarm = excluded.alarm, received_at = excluded.received_at \
                     WHERE access_controller_states.received_at <= excluded.received_at",
                )
                .bind(state.device_id)
                .bind(&state.local_time)
                .bind(&state.sensor)
                .bind(&state.relay)
                .bind(&state.alarm)
                .bind(state.received_at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

/// A `USER` line as it is written: its secrets and raw line sealed, with its revision.
pub(crate) struct DeviceUserWrite<'a> {
    pub user: &'a UserRow,
    pub password: String,
    pub card: String,
    pub vice_card: String,
    pub raw_line: Vec<u8>,
    pub revision: i64,
}

/// A user's fields as stored (secrets opened), to tell a change from a re-sent line.
#[derive(sqlx::FromRow)]
struct StoredUser {
    pin: String,
    name: String,
    name_raw: Option<Vec<u8>>,
    privilege: Option<i64>,
    password: String,
    card: String,
    group_no: String,
    time_zones: String,
    verify: Option<i64>,
    vice_card: String,
    revision: i64,
}

impl StoredUser {
    /// What storing `u` at `revision` leaves.
    fn of(u: &UserRow, revision: i64) -> Self {
        StoredUser {
            pin: u.pin.clone(),
            name: u.name.clone(),
            name_raw: u.name_raw.clone(),
            privilege: u.privilege,
            password: u.password.clone(),
            card: u.card.clone(),
            group_no: u.group.clone(),
            time_zones: u.time_zones.clone(),
            verify: u.verify,
            vice_card: u.vice_card.clone(),
            revision,
        }
    }

    fn same_as(&self, u: &UserRow) -> bool {
        self.name == u.name
            && self.name_raw == u.name_raw
            && self.privilege == u.privilege
            && self.password == u.password
            && self.card == u.card
            && self.group_no == u.group
            && self.time_zones == u.time_zones
            && self.verify == u.verify
            && self.vice_card == u.vice_card
    }
}

dual! {
    /// Writes a group of `rtlog` requests inside the caller's transaction, whatever their
    /// number: the new events of all of them in one statement, their `access.event` webhook
    /// events (while an endpoint exists) in one more, plus a read of their devices; then the
    /// rejected lines. `uploads` come in device id order (the order the rows are locked in).
    pub(crate) async fn write_access_group_in(
        conn: &mut Conn,
        sealer: Sealer<'_>,
        uploads: &[&AccessUpload],
    ) -> Result<(), StoreError> {
        let mut stored = if uploads.iter().all(|u| u.events.is_empty()) {
            Vec::new()
        } else {
            dialect::insert_access_events(&mut *conn, uploads).await?
        };
        let webhooks_live = !stored.is_empty()
            && sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE deleted_at IS NULL)")
                .fetch_one(&mut *conn)
                .await?;
        if webhooks_live {
            let mut device_ids: Vec<i64> = stored.iter().map(|s| s.device_id).collect();
            device_ids.sort_unstable();
            device_ids.dedup();
            let devices: Vec<(i64, String, String, Option<String>, i64)> = sqlx::query_as(concat!(
                "SELECT id, sn, alias, time_zone, access_last_seq FROM devices WHERE ",
                in_list!("id", "$1")
            ))
            .bind(dialect::list_param(&device_ids))
            .fetch_all(&mut *conn)
            .await?;
            // The numbering trigger (migration 0024) gave each device's new rows consecutive
            // numbers in id order, under the device row's lock (SQLite: the one writer), so its
            // last number is enough to know every one.
            stored.sort_unstable_by_key(|s| (s.device_id, s.id));
            let devices: std::collections::HashMap<i64, (String, String, Option<String>, i64)> =
                devices.into_iter().map(|(id, sn, alias, zone, last_seq)| (id, (sn, alias, zone, last_seq))).collect();
            let mut webhook_events: Vec<(String, i64, i64, Vec<u8>)> = Vec::with_capacity(stored.len());
            for rows in stored.chunk_by(|a, b| a.device_id == b.device_id) {
                let device_id = rows[0].device_id;
                let Some((sn, alias, zone, last_seq)) = devices.get(&device_id) else { continue };
                let first_seq = last_seq - rows.len() as i64 + 1;
                for (seq, row) in (first_seq..).zip(rows) {
                    let u = uploads[row.upload];
                    let e = &u.events[row.index];
                    let device = crate::events::EventDevice {
                        sn,
                        alias,
                        time_zone: zone.as_deref().unwrap_or(&u.default_time_zone),
                    };
                    let event_id =
                        crate::events::event_id(&[crate::events::event_type::ACCESS_EVENT, sn, &hex::encode(e.digest)]);
                    let body =
                        crate::events::access_event_body(&event_id, &device, (row.id, seq), &e.event, u.received_at);
                    webhook_events.push((event_id, device_id, u.received_at, body));
                }
            }
            let webhook_events: Vec<NewEvent<'_>> = webhook_events
                .iter()
                .map(|(event_id, device_id, received_at, body)| NewEvent {
                    event_id,
                    event_type: crate::events::event_type::ACCESS_EVENT,
                    device_id: *device_id,
                    occurred_at: *received_at,
                    created_at: *received_at,
                    body,
                })
                .collect();
            dialect::insert_webhook_events(&mut *conn, &webhook_events).await?;
        }
        for u in uploads {
            for r in &u.rejected {
                dialect::insert_rejected(&mut *conn, sealer, u.device_id, r, u.received_at).await?;
            }
        }
        Ok(())
    }

    /// Stores the `USER` lines of an OPERLOG body and, for each that enrols a user or changes a
    /// stored field, its `user.enrolled` / `user.updated` event; an identical re-sent line emits
    /// nothing. Three statements however many lines (a first contact dumps every user): a read of
    /// the stored users, one upsert of each PIN's last line, one insert of the events. Lines naming
    /// one PIN twice are compared in order, each against the one before.
    pub(crate) async fn upsert_users_in(
        conn: &mut Conn,
        sealer: Sealer<'_>,
        b: &OperlogBatch,
    ) -> Result<(), StoreError> {
        if b.users.is_empty() {
            return Ok(());
        }
        let pins: Vec<&str> = b.users.iter().map(|u| u.pin.as_str()).collect();
        let stored: Vec<StoredUser> = sqlx::query_as(concat!(
            "SELECT pin, name, name_raw, privilege, password, card, group_no, time_zones, verify, vice_card, revision \
             FROM device_users WHERE device_id = $1 AND ",
            in_list!("pin", "$2")
        ))
        .bind(b.device_id)
        .bind(dialect::list_param(&pins))
        .fetch_all(&mut *conn)
        .await?;
        let mut current: HashMap<String, StoredUser> = HashMap::with_capacity(b.users.len());
        for mut s in stored {
            let record = format!("{}/{}", b.device_id, s.pin);
            s.password = sealer.open(sealed::DEVICE_USER_PASSWORD.kind, &record, &s.password)?;
            s.card = sealer.open(sealed::DEVICE_USER_CARD.kind, &record, &s.card)?;
            s.vice_card = sealer.open(sealed::DEVICE_USER_VICE_CARD.kind, &record, &s.vice_card)?;
            current.insert(s.pin.clone(), s);
        }
        // Each line against what came before it; the last line of a PIN is what is written.
        let mut changes: Vec<(&UserRow, &'static str, i64)> = Vec::new();
        let mut last: HashMap<&str, (usize, i64)> = HashMap::with_capacity(b.users.len());
        for (i, u) in b.users.iter().enumerate() {
            let (change, revision) = match current.get(&u.pin) {
                None => (Some(event_type::USER_ENROLLED), 0),
                Some(s) if s.same_as(u) => (None, s.revision),
                Some(s) => (Some(event_type::USER_UPDATED), s.revision + 1),
            };
            if let Some(kind) = change {
                changes.push((u, kind, revision));
            }
            current.insert(u.pin.clone(), StoredUser::of(u, revision));
            last.insert(&u.pin, (i, revision));
        }
        let mut writes: Vec<(usize, i64)> = last.into_values().collect();
        writes.sort_unstable();
        let writes: Vec<DeviceUserWrite<'_>> = writes
            .into_iter()
            .map(|(i, revision)| {
                let u = &b.users[i];
                let record = format!("{}/{}", b.device_id, u.pin);
                DeviceUserWrite {
                    user: u,
                    password: sealer.seal(sealed::DEVICE_USER_PASSWORD.kind, &record, &u.password),
                    card: sealer.seal(sealed::DEVICE_USER_CARD.kind, &record, &u.card),
                    vice_card: sealer.seal(sealed::DEVICE_USER_VICE_CARD.kind, &record, &u.vice_card),
                    raw_line: sealer.seal_bytes(sealed::DEVICE_USER_RAW.kind, &record, &u.raw_line),
                    revision,
                }
            })
            .collect();
        dialect::upsert_device_users(&mut *conn, b.device_id, &writes, b.received_at).await?;
        let mut events: Vec<(String, &'static str, Vec<u8>)> = Vec::with_capacity(changes.len());
        for (u, kind, revision) in changes {
            // Only a new or changed line may reach the roster: a re-sent old line must not bring
            // back an employee the ERP deleted, nor undo an edit.
            dialect::adopt_device_user_in(&mut *conn, sealer, b.device_id, u, b.adoption, b.received_at).await?;
            let event_id = if kind == event_type::USER_ENROLLED {
                user_enrolled_event_id(&b.device_sn, &u.pin)
            } else {
                user_updated_event_id(&b.device_sn, &u.pin, revision, &user_values_sha256_hex(u))
            };
            let data = UserData {
                device: EventDevice { sn: &b.device_sn, alias: &b.device_alias, time_zone: &b.device_time_zone },
                pin: &u.pin,
                name: &u.name,
                privilege: u.privilege,
                card: &u.card,
                group: &u.group,
                time_zone: &u.time_zones,
                has_password: !u.password.is_empty(),
            };
            let body = event_body(&event_id, kind, b.received_at, &data);
            events.push((event_id, kind, body));
        }
        let created_at = now_micros();
        let events: Vec<NewEvent<'_>> = events
            .iter()
            .map(|(event_id, kind, body)| NewEvent {
                event_id,
                event_type: kind,
                device_id: b.device_id,
                occurred_at: b.received_at,
                created_at,
                body,
            })
            .collect();
        dialect::insert_webhook_events(&mut *conn, &events).await?;
        Ok(())
    }

    pub(crate) async fn insert_raw_in(
        conn: &mut Conn,
        sealer: Sealer<'_>,
        u: &RawUpload<'_>,
    ) -> Result<(), StoreError> {
        let digest = sealer.digest(sealed::RAW_UPLOAD_BODY.kind, u.body);
        let record = sealed::digest_record(&format!("{}/{}/{}", u.sn, u.endpoint, u.table), &digest);
        sqlx::query(
            "INSERT INTO raw_uploads (device_id, sn, endpoint, table_name, query, body, body_sha256, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (sn, endpoint, table_name, body_sha256) \
             DO UPDATE SET seen_count = raw_uploads.seen_count + 1",
        )
        .bind(u.device_id)
        .bind(u.sn)
        .bind(u.endpoint)
        .bind(u.table)
        .bind(u.query)
        .bind(sealer.seal_bytes(sealed::RAW_UPLOAD_BODY.kind, &record, u.body))
        .bind(&digest[..])
        .bind(u.received_at)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Charges an OPERLOG body's photos and newly stored raw records to their quotas.
    pub(crate) async fn charge_operlog_in(
        conn: &mut Conn,
        b: &OperlogBatch,
        photo_bytes: u64,
        raw_bytes: u64,
    ) -> Result<(), StoreError> {
        if let Some(quota) = b.photo_quota {
            dialect::charge_in(conn, b.device_id, QuotaKind::Photo, quota, photo_bytes).await?;
        }
        if let Some(quota) = b.raw_quota {
            dialect::charge_in(conn, b.device_id, QuotaKind::Raw, quota, raw_bytes).await?;
        }
        Ok(())
    }
}

/// SHA-256 (hex) of a user's stored values, for its `user.updated` id. The password is left
/// out: device passwords are short PINs, and a digest over one would let anyone holding the
/// event id guess it; a password-only change still gets its own id through the revision.
fn user_values_sha256_hex(u: &UserRow) -> String {
    let values = (
        &u.name,
        u.name_raw.as_deref().map(hex::encode),
        u.privilege,
        !u.password.is_empty(),
        &u.card,
        &u.group,
        &u.time_zones,
        u.verify,
        &u.vice_card,
    );
    hex::encode(sha256(serde_json::to_string(&values).unwrap_or_default().as_bytes()))
}
