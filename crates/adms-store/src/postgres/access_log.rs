//! PostgreSQL's side of `rtlog` ingest: a group of requests' events in one statement over
//! `unnest`ed arrays, however many requests and lines it carries.

use sqlx::PgConnection;

use crate::StoreError;
use crate::uploads::{AccessEvent, AccessUpload, InsertedAccessEvent};

/// Inserts the events of `uploads` that are not stored yet (a re-sent line has the digest of
/// the stored one) in one statement; returns the new rows. The numbering trigger numbers them
/// (`seq`) per device in id order, under the device rows' locks.
pub(crate) async fn insert_access_events(
    conn: &mut PgConnection,
    uploads: &[&AccessUpload],
) -> Result<Vec<InsertedAccessEvent>, StoreError> {
    let rows: Vec<(&AccessUpload, &crate::uploads::SealedAccessEvent)> =
        uploads.iter().flat_map(|u| u.events.iter().map(move |e| (*u, e))).collect();
    let device_ids: Vec<i64> = rows.iter().map(|(u, _)| u.device_id).collect();
    let received: Vec<i64> = rows.iter().map(|(u, _)| u.received_at).collect();
    let local_times: Vec<&str> = rows.iter().map(|(_, e)| e.event.local_time.as_str()).collect();
    let pins: Vec<&str> = rows.iter().map(|(_, e)| e.event.pin.as_str()).collect();
    let card_nos: Vec<&str> = rows.iter().map(|(_, e)| e.card_no.as_str()).collect();
    let verify_types: Vec<&str> = rows.iter().map(|(_, e)| e.event.verify_type.as_str()).collect();
    let number =
        |f: fn(&AccessEvent) -> Option<i64>| rows.iter().map(|(_, e)| f(&e.event)).collect::<Vec<Option<i64>>>();
    let raw_lines: Vec<&[u8]> = rows.iter().map(|(_, e)| e.raw_line.as_slice()).collect();
    let digests: Vec<&[u8]> = rows.iter().map(|(_, e)| &e.digest[..]).collect();
    // The devices locked in id order first, as every transaction that locks several device
    // rows takes them: the trigger's `UPDATE … FROM` would take them in an order of its plan's
    // choosing, and two groups sharing devices could then wait for each other in a cycle.
    let mut locked: Vec<i64> = uploads.iter().map(|u| u.device_id).collect();
    locked.sort_unstable();
    locked.dedup();
    if locked.len() > 1 {
        sqlx::query("SELECT id FROM devices WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
            .bind(&locked)
            .execute(&mut *conn)
            .await?;
    }
    let inserted: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
        "INSERT INTO access_events (device_id, local_time, pin, card_no, door, event_code, in_out, verify_type, \
                                    raw_line, raw_sha256, received_at) \
         SELECT n.device_id, n.local_time, n.pin, n.card_no, n.door, n.event_code, n.in_out, n.verify_type, \
                n.raw_line, n.raw_sha256, n.received_at \
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], \
                     $8::text[], $9::bytea[], $10::bytea[], $11::bigint[]) \
              WITH ORDINALITY AS n (device_id, local_time, pin, card_no, door, event_code, in_out, verify_type, \
                                    raw_line, raw_sha256, received_at, ord) \
         ORDER BY n.ord \
         ON CONFLICT DO NOTHING \
         RETURNING id, device_id, raw_sha256",
    )
    .bind(&device_ids)
    .bind(&local_times)
    .bind(&pins)
    .bind(&card_nos)
    .bind(number(|e| e.door))
    .bind(number(|e| e.event_code))
    .bind(number(|e| e.in_out))
    .bind(&verify_types)
    .bind(&raw_lines)
    .bind(&digests)
    .bind(&received)
    .fetch_all(&mut *conn)
    .await?;
    Ok(InsertedAccessEvent::matched(inserted, uploads))
}
