//! SQLite's side of the periodic activity flush: every device's last request in one `UPDATE`
//! (a JSON array parameter), not a statement per device. With 100,000 terminals polling every
//! 10 s, a flush names 50,000 devices; a statement each held the write lock for seconds of
//! every flush, and registrations waited behind it.

use sqlx::SqliteConnection;

use crate::StoreError;
use crate::devices::DeviceActivity;

pub(crate) async fn record_activity_in(
    conn: &mut SqliteConnection,
    activity: &[&DeviceActivity],
) -> Result<(), StoreError> {
    let rows: Vec<(i64, i64, &str)> =
        activity.iter().map(|a| (a.device_id, a.at_micros, a.ip_address.as_str())).collect();
    sqlx::query(
        "UPDATE devices \
         SET last_activity_at = CASE WHEN devices.last_activity_at > a.at THEN devices.last_activity_at ELSE a.at END, \
             ip_address = CASE WHEN a.ip = '' OR devices.ip_address_reported THEN devices.ip_address ELSE a.ip END, \
             deleted_at = NULL \
         FROM (SELECT j.value ->> 0 AS id, j.value ->> 1 AS at, j.value ->> 2 AS ip FROM json_each($1) AS j) AS a \
         WHERE devices.id = a.id",
    )
    .bind(serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
