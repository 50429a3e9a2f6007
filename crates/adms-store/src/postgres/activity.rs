//! PostgreSQL's side of the periodic activity flush: every device's last request in one
//! `UPDATE` over `unnest`ed arrays, not a statement per device. The rows are locked first in id
//! order, as every transaction that locks several device rows takes them (the punch writers
//! above all), so two of them never wait for each other in a cycle.

use sqlx::PgConnection;

use crate::StoreError;
use crate::devices::DeviceActivity;

pub(crate) async fn record_activity_in(
    conn: &mut PgConnection,
    activity: &[&DeviceActivity],
) -> Result<(), StoreError> {
    let ids: Vec<i64> = activity.iter().map(|a| a.device_id).collect();
    let ats: Vec<i64> = activity.iter().map(|a| a.at_micros).collect();
    let ips: Vec<&str> = activity.iter().map(|a| a.ip_address.as_str()).collect();
    sqlx::query("SELECT id FROM devices WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE devices \
         SET last_activity_at = GREATEST(devices.last_activity_at, a.at), \
             ip_address = CASE WHEN a.ip = '' OR devices.ip_address_reported THEN devices.ip_address ELSE a.ip END, \
             deleted_at = NULL \
         FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS a (id, at, ip) \
         WHERE devices.id = a.id",
    )
    .bind(&ids)
    .bind(&ats)
    .bind(&ips)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
