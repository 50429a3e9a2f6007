//! PostgreSQL's side of `rtlog` ingest: a request's events and their webhook events, each in
//! one statement over `unnest`ed arrays, however many lines it carries.

use sqlx::PgConnection;

use crate::StoreError;
use crate::uploads::{InsertedAccessEvent, SealedAccessEvent};

/// Inserts `events` of `device_id` that are not stored yet (a re-sent line has the digest of
/// the stored one) in one statement; returns the new rows. The statement trigger numbers them
/// (`seq`) in id order, under the device row's lock.
pub(crate) async fn insert_access_events(
    conn: &mut PgConnection,
    device_id: i64,
    events: &[SealedAccessEvent],
    received_at: i64,
) -> Result<Vec<InsertedAccessEvent>, StoreError> {
    let local_times: Vec<&str> = events.iter().map(|e| e.event.local_time.as_str()).collect();
    let pins: Vec<&str> = events.iter().map(|e| e.event.pin.as_str()).collect();
    let card_nos: Vec<&str> = events.iter().map(|e| e.card_no.as_str()).collect();
    let verify_types: Vec<&str> = events.iter().map(|e| e.event.verify_type.as_str()).collect();
    let number = |f: fn(&crate::uploads::AccessEvent) -> Option<i64>| {
        events.iter().map(|e| f(&e.event)).collect::<Vec<Option<i64>>>()
    };
    let raw_lines: Vec<&[u8]> = events.iter().map(|e| e.raw_line.as_slice()).collect();
    let digests: Vec<&[u8]> = events.iter().map(|e| &e.digest[..]).collect();
    let inserted: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "INSERT INTO access_events (device_id, local_time, pin, card_no, door, event_code, in_out, verify_type, \
                                    raw_line, raw_sha256, received_at) \
         SELECT $1, n.local_time, n.pin, n.card_no, n.door, n.event_code, n.in_out, n.verify_type, n.raw_line, \
                n.raw_sha256, $2 \
         FROM unnest($3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], \
                     $10::bytea[], $11::bytea[]) \
              WITH ORDINALITY AS n (local_time, pin, card_no, door, event_code, in_out, verify_type, raw_line, \
                                    raw_sha256, ord) \
         ORDER BY n.ord \
         ON CONFLICT DO NOTHING \
         RETURNING id, raw_sha256",
    )
    .bind(device_id)
    .bind(received_at)
    .bind(&local_times)
    .bind(&pins)
    .bind(&card_nos)
    .bind(number(|e| e.door))
    .bind(number(|e| e.event_code))
    .bind(number(|e| e.in_out))
    .bind(&verify_types)
    .bind(&raw_lines)
    .bind(&digests)
    .fetch_all(&mut *conn)
    .await?;
    Ok(InsertedAccessEvent::matched(inserted, events))
}

/// Inserts the `access.event` webhook events of one request (ids derived from their lines, so
/// an event inserted before is left as it is).
pub(crate) async fn insert_access_webhook_events(
    conn: &mut PgConnection,
    device_id: i64,
    occurred_at: i64,
    events: &[(String, Vec<u8>)],
) -> Result<(), StoreError> {
    let ids: Vec<&str> = events.iter().map(|(id, _)| id.as_str()).collect();
    let bodies: Vec<&[u8]> = events.iter().map(|(_, body)| body.as_slice()).collect();
    sqlx::query(
        "INSERT INTO webhook_events (event_id, event_type, device_id, occurred_at, created_at, body) \
         SELECT n.event_id, $1, $2, $3, $3, n.body \
         FROM unnest($4::text[], $5::bytea[]) WITH ORDINALITY AS n (event_id, body, ord) \
         ORDER BY n.ord \
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(crate::events::event_type::ACCESS_EVENT)
    .bind(device_id)
    .bind(occurred_at)
    .bind(&ids)
    .bind(&bodies)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
