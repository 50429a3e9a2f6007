//! Per-device daily byte quotas for the data that is not the product: raw bodies of unknown
//! tables and `device_records` (`raw`), attendance and user photos (`photo`). Punches and
//! users are never charged. Usage is charged inside the transaction that stores the data, so a
//! refused request stores nothing and a stored one is always counted.

use crate::{Store, StoreError};

/// What a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// Raw bodies (unknown tables, `querydata`, unrecognised paths) and `device_records`.
    Raw,
    /// Attendance photos (`fdata`, `ATTPHOTO`) and user photos (`USERPIC`/`BIOPHOTO`).
    Photo,
}

impl QuotaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaKind::Raw => "raw",
            QuotaKind::Photo => "photo",
        }
    }
}

/// The quota a request is charged against: its UTC day (days since 1970-01-01, from the
/// caller's clock) and the bytes a device may store that day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub day: i64,
    pub limit_bytes: u64,
}

impl Quota {
    /// The quota of the UTC day holding `now_micros`.
    pub fn for_day(now_micros: i64, limit_bytes: u64) -> Quota {
        Quota { day: now_micros.div_euclid(86_400_000_000), limit_bytes }
    }
}

dual! {
    /// Adds `bytes` to the device's usage of `kind` for the quota's day, or refuses with
    /// [`StoreError::QuotaExceeded`] when that would pass the limit (the caller's transaction is
    /// then rolled back, so nothing of the request is stored). Runs under the caller's write
    /// transaction (`BEGIN IMMEDIATE`), so the read and the update cannot interleave with another
    /// writer.
    pub(crate) async fn charge_in(
        conn: &mut Conn,
        device_id: i64,
        kind: QuotaKind,
        quota: Quota,
        bytes: u64,
    ) -> Result<(), StoreError> {
        if bytes == 0 {
            return Ok(());
        }
        let used: Option<i64> =
            sqlx::query_scalar("SELECT bytes FROM device_quota_usage WHERE device_id = $1 AND day = $2 AND kind = $3")
                .bind(device_id)
                .bind(quota.day)
                .bind(kind.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        let used = u64::try_from(used.unwrap_or(0)).unwrap_or(0);
        if used.saturating_add(bytes) > quota.limit_bytes {
            return Err(StoreError::QuotaExceeded(kind));
        }
        sqlx::query(
            "INSERT INTO device_quota_usage (device_id, day, kind, bytes) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (device_id, day, kind) DO UPDATE SET bytes = device_quota_usage.bytes + excluded.bytes",
        )
        .bind(device_id)
        .bind(quota.day)
        .bind(kind.as_str())
        .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

impl Store {
    /// Forgets the usage of days before `before_day`: a quota only ever reads its own day's
    /// row, so older rows are dead weight (one per device, kind and day). Returns the rows
    /// removed.
    pub async fn purge_quota_usage(&self, before_day: i64) -> Result<u64, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let purged = sqlx::query("DELETE FROM device_quota_usage WHERE day < $1")
                .bind(before_day)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(purged)
        })
    }
}
