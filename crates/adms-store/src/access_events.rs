//! The reconciliation cursor of an access controller's events: every stored `rtlog` event has
//! a gapless `seq` per controller, in commit order (numbered by the `access_events_number`
//! trigger of migration 0024, on both engines), so a SIEM that pulls "after the last `seq` I
//! stored" never misses an event and never sees one twice, whichever replica answers.

use sqlx::FromRow;

use crate::events::{event_id, event_type};
use crate::{Store, StoreError};

/// A stored access event as the cursor serves it (the card number is not served: it is sealed
/// at rest and the `access.event` webhook leaves it out too).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct CursorAccessEvent {
    pub id: i64,
    pub seq: i64,
    /// The controller's wall-clock time, `YYYY-MM-DD HH:MM:SS`.
    pub local_time: String,
    pub pin: String,
    pub door: Option<i64>,
    pub event_code: Option<i64>,
    pub in_out: Option<i64>,
    pub verify_type: String,
    /// Unix µs.
    pub received_at: i64,
    /// The id of the event's `access.event` webhook (derived from the controller and the line).
    #[sqlx(skip)]
    pub event_id: String,
    #[sqlx(rename = "raw_sha256")]
    raw_digest: Vec<u8>,
}

impl Store {
    /// A controller's access events with `seq > after_seq`, in `seq` order, at most `limit`.
    pub async fn access_events_after_seq(
        &self,
        device_id: i64,
        sn: &str,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<CursorAccessEvent>, StoreError> {
        let mut rows: Vec<CursorAccessEvent> = on_db!(self, |db| {
            sqlx::query_as(
                "SELECT id, seq, local_time, pin, door, event_code, in_out, verify_type, received_at, raw_sha256 \
                 FROM access_events WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(device_id)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(db.pool())
            .await?
        });
        for row in &mut rows {
            row.event_id = event_id(&[event_type::ACCESS_EVENT, sn, &hex::encode(&row.raw_digest)]);
        }
        Ok(rows)
    }
}
