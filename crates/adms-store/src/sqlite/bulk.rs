//! SQLite's side of the writes of many rows in one statement: the rows travel as one JSON
//! array parameter unpacked by `json_each` (SQLite has no array parameter), bytes as hex.

use sqlx::SqliteConnection;

use crate::StoreError;
use crate::device_events::NewEvent;
use crate::uploads::DeviceUserWrite;

/// Inserts webhook events in one statement while some endpoint is live, in list order; an event
/// whose id is stored already (the same cause) is left as it is.
pub(crate) async fn insert_webhook_events(
    conn: &mut SqliteConnection,
    events: &[NewEvent<'_>],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    // Event bodies are JSON written by serde: UTF-8 text, stored as the BLOB of its bytes.
    let rows: Vec<_> = events
        .iter()
        .map(|e| (e.event_id, e.event_type, e.device_id, e.occurred_at, e.created_at, String::from_utf8_lossy(e.body)))
        .collect();
    sqlx::query(
        "INSERT INTO webhook_events (event_id, event_type, device_id, occurred_at, created_at, body) \
         SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, CAST(j.value ->> 5 AS BLOB) \
         FROM json_each($1) AS j \
         WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE deleted_at IS NULL) \
         ORDER BY j.key \
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes a device's options `(key, value)` in one statement; `options` names each key once.
pub(crate) async fn upsert_device_options(
    conn: &mut SqliteConnection,
    device_id: i64,
    options: &[(&str, &str)],
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO device_options (device_id, key, value, updated_at) \
         SELECT $1, j.value ->> 0, j.value ->> 1, $2 FROM json_each($3) AS j WHERE true \
         ON CONFLICT (device_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(device_id)
    .bind(now)
    .bind(serde_json::to_string(options).unwrap_or_else(|_| "[]".into()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes a device's users in one statement; `users` names each PIN once.
pub(crate) async fn upsert_device_users(
    conn: &mut SqliteConnection,
    device_id: i64,
    users: &[DeviceUserWrite<'_>],
    now: i64,
) -> Result<(), StoreError> {
    let rows: Vec<_> = users
        .iter()
        .map(|w| {
            let u = w.user;
            (
                &u.pin,
                &u.name,
                u.name_raw.as_deref().map(hex::encode),
                u.privilege,
                &w.password,
                &w.card,
                &u.group,
                &u.time_zones,
                u.verify,
                &w.vice_card,
                hex::encode(&w.raw_line),
                w.revision,
            )
        })
        .collect();
    sqlx::query(concat!(
        device_users_upsert!(columns),
        "SELECT $1, j.value ->> 0, j.value ->> 1, unhex(j.value ->> 2), j.value ->> 3, j.value ->> 4, j.value ->> 5, \
                j.value ->> 6, j.value ->> 7, j.value ->> 8, j.value ->> 9, unhex(j.value ->> 10), $2, j.value ->> 11 \
         FROM json_each($3) AS j WHERE true",
        device_users_upsert!(on_conflict)
    ))
    .bind(device_id)
    .bind(now)
    .bind(serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
