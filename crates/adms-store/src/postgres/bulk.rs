//! PostgreSQL's side of the writes of many rows in one statement: one array parameter per
//! column, read back as rows by `unnest`.

use sqlx::PgConnection;

use crate::StoreError;
use crate::device_events::NewEvent;
use crate::uploads::DeviceUserWrite;

/// Inserts webhook events in one statement while some endpoint is live, in list order; an event
/// whose id is stored already (the same cause) is left as it is.
pub(crate) async fn insert_webhook_events(conn: &mut PgConnection, events: &[NewEvent<'_>]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = events.iter().map(|e| e.event_id).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type).collect();
    let devices: Vec<i64> = events.iter().map(|e| e.device_id).collect();
    let occurred: Vec<i64> = events.iter().map(|e| e.occurred_at).collect();
    let created: Vec<i64> = events.iter().map(|e| e.created_at).collect();
    let bodies: Vec<&[u8]> = events.iter().map(|e| e.body).collect();
    sqlx::query(
        "INSERT INTO webhook_events (event_id, event_type, device_id, occurred_at, created_at, body) \
         SELECT n.event_id, n.event_type, n.device_id, n.occurred_at, n.created_at, n.body \
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bytea[]) \
              WITH ORDINALITY AS n (event_id, event_type, device_id, occurred_at, created_at, body, ord) \
         WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE deleted_at IS NULL) \
         ORDER BY n.ord \
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&types)
    .bind(&devices)
    .bind(&occurred)
    .bind(&created)
    .bind(&bodies)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes a device's options `(key, value)` in one statement; `options` names each key once
/// (PostgreSQL refuses to update one row twice in a statement).
pub(crate) async fn upsert_device_options(
    conn: &mut PgConnection,
    device_id: i64,
    options: &[(&str, &str)],
    now: i64,
) -> Result<(), StoreError> {
    let keys: Vec<&str> = options.iter().map(|(k, _)| *k).collect();
    let values: Vec<&str> = options.iter().map(|(_, v)| *v).collect();
    sqlx::query(
        "INSERT INTO device_options (device_id, key, value, updated_at) \
         SELECT $1, n.key, n.value, $2 FROM unnest($3::text[], $4::text[]) AS n (key, value) \
         ON CONFLICT (device_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(device_id)
    .bind(now)
    .bind(&keys)
    .bind(&values)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes a device's users in one statement; `users` names each PIN once.
pub(crate) async fn upsert_device_users(
    conn: &mut PgConnection,
    device_id: i64,
    users: &[DeviceUserWrite<'_>],
    now: i64,
) -> Result<(), StoreError> {
    let pins: Vec<&str> = users.iter().map(|w| w.user.pin.as_str()).collect();
    let names: Vec<&str> = users.iter().map(|w| w.user.name.as_str()).collect();
    let names_raw: Vec<Option<&[u8]>> = users.iter().map(|w| w.user.name_raw.as_deref()).collect();
    let privileges: Vec<Option<i64>> = users.iter().map(|w| w.user.privilege).collect();
    let passwords: Vec<&str> = users.iter().map(|w| w.password.as_str()).collect();
    let cards: Vec<&str> = users.iter().map(|w| w.card.as_str()).collect();
    let groups: Vec<&str> = users.iter().map(|w| w.user.group.as_str()).collect();
    let time_zones: Vec<&str> = users.iter().map(|w| w.user.time_zones.as_str()).collect();
    let verifies: Vec<Option<i64>> = users.iter().map(|w| w.user.verify).collect();
    let vice_cards: Vec<&str> = users.iter().map(|w| w.vice_card.as_str()).collect();
    let raw_lines: Vec<&[u8]> = users.iter().map(|w| w.raw_line.as_slice()).collect();
    let revisions: Vec<i64> = users.iter().map(|w| w.revision).collect();
    sqlx::query(concat!(
        device_users_upsert!(columns),
        "SELECT $1, n.pin, n.name, n.name_raw, n.privilege, n.password, n.card, n.group_no, n.time_zones, \
                n.verify, n.vice_card, n.raw_line, $2, n.revision \
         FROM unnest($3::text[], $4::text[], $5::bytea[], $6::bigint[], $7::text[], $8::text[], $9::text[], \
                     $10::text[], $11::bigint[], $12::text[], $13::bytea[], $14::bigint[]) \
              AS n (pin, name, name_raw, privilege, password, card, group_no, time_zones, verify, vice_card, \
                    raw_line, revision)",
        device_users_upsert!(on_conflict)
    ))
    .bind(device_id)
    .bind(now)
    .bind(&pins)
    .bind(&names)
    .bind(&names_raw)
    .bind(&privileges)
    .bind(&passwords)
    .bind(&cards)
    .bind(&groups)
    .bind(&time_zones)
    .bind(&verifies)
    .bind(&vice_cards)
    .bind(&raw_lines)
    .bind(&revisions)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
