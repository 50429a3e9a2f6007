//! SQLite's side of `rtlog` ingest: a group of requests' events in one statement (a JSON array
//! parameter unpacked by `json_each`), however many requests and lines the group carries.

use sqlx::SqliteConnection;

use crate::StoreError;
use crate::uploads::{AccessUpload, InsertedAccessEvent};

/// Inserts the events of `uploads` that are not stored yet (a re-sent line has the digest of
/// the stored one) in one statement; returns the new rows. The numbering trigger gives each
/// row its `seq` as it is inserted, in the array's order.
pub(crate) async fn insert_access_events(
    conn: &mut SqliteConnection,
    uploads: &[&AccessUpload],
) -> Result<Vec<InsertedAccessEvent>, StoreError> {
    // Bytes travel as hex: JSON has no byte strings.
    let rows: Vec<_> = uploads
        .iter()
        .flat_map(|u| u.events.iter().map(move |e| (u, e)))
        .map(|(u, e)| {
            let ev = &e.event;
            (
                u.device_id,
                &ev.local_time,
                &ev.pin,
                &e.card_no,
                ev.door,
                ev.event_code,
                ev.in_out,
                &ev.verify_type,
                hex::encode(&e.raw_line),
                hex::encode(e.digest),
                u.received_at,
            )
        })
        .collect();
    let inserted: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
        "INSERT INTO access_events (device_id, local_time, pin, card_no, door, event_code, in_out, verify_type, \
                                    raw_line, raw_sha256, received_at) \
         SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value ->> 5, \
                j.value ->> 6, j.value ->> 7, unhex(j.value ->> 8), unhex(j.value ->> 9), j.value ->> 10 \
         FROM json_each($1) AS j \
         WHERE true \
         ORDER BY j.key \
         ON CONFLICT DO NOTHING \
         RETURNING id, device_id, raw_sha256",
    )
    .bind(serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into()))
    .fetch_all(&mut *conn)
    .await?;
    Ok(InsertedAccessEvent::matched(inserted, uploads))
}
