//! What the CVSecurity-compatible API (issue 19) needs from the store beyond the access model:
//! its API clients (`cvsecurity_clients`, migration `0022_cvsecurity_clients.sql`: a table of
//! their own, so their tokens open nothing else), and reads shaped for it: the access
//! controllers as CVSecurity's "devices", and the stored `rtlog` events as its transactions.

use sqlx::FromRow;

use crate::{Store, StoreError, now_micros, sealed};

/// How often a client's `last_used_at` is written at most.
const TOUCH_INTERVAL_MICROS: i64 = 60_000_000;

/// An API client (never its token).
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct CvSecurityClient {
    pub id: i64,
    pub name: String,
    /// May change level memberships, sync levels and open doors; otherwise it only reads.
    pub may_write: bool,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// An access controller as CVSecurity lists its devices.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct AccessDevice {
    pub id: i64,
    pub sn: String,
    pub alias: String,
    pub model: Option<String>,
    pub approved: bool,
    /// `online`, `offline` or `unknown`.
    pub presence: String,
}

/// The last `rtstate` a controller reported, its hex fields as sent.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct ControllerState {
    pub device_id: i64,
    pub local_time: String,
    pub sensor: String,
    pub relay: String,
    pub alarm: String,
    pub received_at: i64,
}

/// Which access events to read; `None` is no filter. Times are the controllers' local times,
/// `YYYY-MM-DD HH:MM:SS`, compared as text (both bounds inclusive).
#[derive(Debug, Clone, Default)]
pub struct AccessEventFilter {
    pub id: Option<i64>,
    pub sn: Option<String>,
    pub pin: Option<String>,
    pub from: Option<String>,
    pub until: Option<String>,
    /// Only the events of elevator controllers (devices with declared floors): CVSecurity's
    /// `eleTransaction/*`.
    pub elevator: bool,
}

/// One stored `rtlog` event with what the roster and the access model know about it.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct AccessEventRow {
    pub id: i64,
    pub device_id: i64,
    pub sn: String,
    pub alias: String,
    pub local_time: String,
    pub pin: String,
    /// Opened (the stored value may be sealed).
    pub card_no: String,
    pub door: Option<i64>,
    pub event_code: Option<i64>,
    pub in_out: Option<i64>,
    pub verify_type: String,
    pub door_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub dept_code: Option<String>,
    pub dept_name: Option<String>,
    #[sqlx(rename = "raw_sha256")]
    raw_digest: Vec<u8>,
    /// The controller's number for the event: 1, 2, 3… in commit order (migration 0024).
    pub seq: i64,
}

macro_rules! event_columns {
    () => {
        "SELECT ev.id, ev.device_id, d.sn, d.alias, ev.local_time, ev.pin, ev.card_no, ev.door, ev.event_code, ev.in_out, \
         ev.verify_type, dr.name AS door_name, e.first_name, e.last_name, dp.dept_code, dp.dept_name, ev.raw_sha256, \
         ev.seq"
    };
}

/// An event's (`ev`) door, employee and department.
macro_rules! event_names_joined {
    () => {
        " LEFT JOIN access_doors AS dr ON dr.device_id = ev.device_id AND dr.door_no = ev.door \
          LEFT JOIN employees AS e ON e.emp_code = ev.pin AND e.deleted_at IS NULL \
          LEFT JOIN departments AS dp ON dp.id = e.department_id"
    };
}

/// The events of approved devices with their door, employee and department.
macro_rules! events_joined {
    () => {
        concat!(
            " FROM access_events AS ev JOIN devices AS d ON d.id = ev.device_id",
            event_names_joined!(),
            " WHERE d.approval = 'approved'"
        )
    };
}

macro_rules! events_where {
    () => {
        concat!(
            events_joined!(),
            " AND ($1 IS NULL OR ev.id = $1) AND ($2 IS NULL OR d.sn = $2) \
             AND ($3 IS NULL OR ev.pin = $3) AND ($4 IS NULL OR ev.local_time >= $4) AND ($5 IS NULL OR ev.local_time <= $5) \
             AND ($6 = FALSE OR EXISTS (SELECT 1 FROM access_floors AS fl WHERE fl.device_id = ev.device_id))"
        )
    };
}

const COUNT_EVENTS: &str = concat!("SELECT COUNT(*)", events_where!());
// In the order they were stored: a client paging forward sees new events at the end.
const SELECT_EVENTS: &str = concat!(event_columns!(), events_where!(), " ORDER BY ev.id LIMIT $7 OFFSET $8");

/// How long a `transaction/monitor` session may stay idle before it is deleted (a later poll
/// with its timestamp starts it again from the timestamp).
pub const MONITOR_IDLE_MICROS: i64 = 24 * 3_600 * 1_000_000;

impl Store {
    /// Stores a new API client by its token's digest. Its name must not be taken by another
    /// client in force: that is a [`StoreError::Conflict`].
    pub async fn create_cvsecurity_client(
        &self,
        name: &str,
        token_sha256: &[u8],
        may_write: bool,
    ) -> Result<i64, StoreError> {
        on_db!(self, |db| {
            let created = sqlx::query_scalar(
                "INSERT INTO cvsecurity_clients (name, token_sha256, may_write, created_at) VALUES ($1, $2, $3, $4) \
                 RETURNING id",
            )
            .bind(name)
            .bind(token_sha256)
            .bind(may_write)
            .bind(now_micros())
            .fetch_one(db.pool())
            .await;
            match created {
                Ok(id) => Ok(id),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(format!(
                    "a CVSecurity API client named '{name}' exists (names are unique)"
                ))),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// The client in force (not revoked) with this token digest.
    pub async fn live_cvsecurity_client(&self, token_sha256: &[u8]) -> Result<Option<CvSecurityClient>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_as(
                "SELECT id, name, may_write, created_at, revoked_at, last_used_at FROM cvsecurity_clients \
                 WHERE token_sha256 = $1 AND revoked_at IS NULL",
            )
            .bind(token_sha256)
            .fetch_optional(db.pool())
            .await?)
        })
    }

    /// Every client, revoked or not, by id.
    pub async fn list_cvsecurity_clients(&self) -> Result<Vec<CvSecurityClient>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_as(
                "SELECT id, name, may_write, created_at, revoked_at, last_used_at FROM cvsecurity_clients ORDER BY id",
            )
            .fetch_all(db.pool())
            .await?)
        })
    }

    /// Revokes a client in force by its id or its name (a number that is the id of such a
    /// client names that client); returns how many were revoked (0 or 1).
    pub async fn revoke_cvsecurity_client(&self, id_or_name: &str) -> Result<u64, StoreError> {
        on_db!(self, |db| {
            let id: Option<i64> = id_or_name.parse().ok();
            let done = sqlx::query(
                "UPDATE cvsecurity_clients SET revoked_at = $1 WHERE id = (\
                 SELECT id FROM cvsecurity_clients WHERE revoked_at IS NULL AND (id = $2 OR name = $3) \
                 ORDER BY CASE WHEN id = $2 THEN 0 ELSE 1 END LIMIT 1)",
            )
            .bind(now_micros())
            .bind(id)
            .bind(id_or_name)
            .execute(db.pool())
            .await?;
            Ok(done.rows_affected())
        })
    }

    /// Records that a client was used at `now`, at most once a minute (`last_used` as read with
    /// [`Store::live_cvsecurity_client`]).
    pub async fn touch_cvsecurity_client(&self, id: i64, last_used: Option<i64>, now: i64) -> Result<(), StoreError> {
        if last_used.is_some_and(|at| now.saturating_sub(at) < TOUCH_INTERVAL_MICROS) {
            return Ok(());
        }
        on_db!(self, |db| {
            sqlx::query("UPDATE cvsecurity_clients SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(db.pool())
                .await?;
            Ok(())
        })
    }

    /// The door state each controller last reported.
    pub async fn controller_states(&self) -> Result<Vec<ControllerState>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_as(
                "SELECT device_id, local_time, sensor, relay, alarm, received_at FROM access_controller_states \
                 ORDER BY device_id",
            )
            .fetch_all(db.pool())
            .await?)
        })
    }

    /// The access controllers (devices that reported doors), by id; with `sn`, that one only.
    pub async fn access_devices(&self, sn: Option<&str>) -> Result<Vec<AccessDevice>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_as(
                "SELECT d.id, d.sn, d.alias, d.model, d.approval = 'approved' AS approved, d.presence \
                 FROM access_controllers AS c JOIN devices AS d ON d.id = c.device_id \
                 WHERE d.deleted_at IS NULL AND ($1 IS NULL OR d.sn = $1) ORDER BY d.id",
            )
            .bind(sn)
            .fetch_all(db.pool())
            .await?)
        })
    }

    /// The elevator controllers (devices with declared floors), by id; with `sn`, that one only.
    pub async fn elevator_devices(&self, sn: Option<&str>) -> Result<Vec<AccessDevice>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_as(
                "SELECT d.id, d.sn, d.alias, d.model, d.approval = 'approved' AS approved, d.presence FROM devices AS d \
                 WHERE d.deleted_at IS NULL AND ($1 IS NULL OR d.sn = $1) \
                 AND EXISTS (SELECT 1 FROM access_floors AS f WHERE f.device_id = d.id) ORDER BY d.id",
            )
            .bind(sn)
            .fetch_all(db.pool())
            .await?)
        })
    }

    /// How many access events of approved devices match, and one page of them (`offset`,
    /// `limit`) in the order they were stored.
    pub async fn access_events_page(
        &self,
        filter: &AccessEventFilter,
        offset: i64,
        limit: i64,
    ) -> Result<(i64, Vec<AccessEventRow>), StoreError> {
        let (count, mut rows): (i64, Vec<AccessEventRow>) = on_db!(self, |db| {
            let count: i64 = sqlx::query_scalar(COUNT_EVENTS)
                .bind(filter.id)
                .bind(&filter.sn)
                .bind(&filter.pin)
                .bind(&filter.from)
                .bind(&filter.until)
                .bind(filter.elevator)
                .fetch_one(db.pool())
                .await?;
            if count == 0 || offset >= count || limit <= 0 {
                (count, Vec::new())
            } else {
                let rows = sqlx::query_as(SELECT_EVENTS)
                    .bind(filter.id)
                    .bind(&filter.sn)
                    .bind(&filter.pin)
                    .bind(&filter.from)
                    .bind(&filter.until)
                    .bind(filter.elevator)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(db.pool())
                    .await?;
                (count, rows)
            }
        });
        self.open_cards(&mut rows)?;
        Ok((count, rows))
    }

    fn open_cards(&self, rows: &mut [AccessEventRow]) -> Result<(), StoreError> {
        let sealer = self.sealer();
        for row in rows {
            let record = sealed::digest_record(&row.device_id.to_string(), &row.raw_digest);
            row.card_no = sealer.open(sealed::ACCESS_EVENT_CARD.kind, &record, &row.card_no)?;
        }
        Ok(())
    }

    /// One `transaction/monitor` poll of the session (`client_id`, `started_ms`): the events of
    /// approved controllers stored since the session's previous poll (the first poll: those
    /// received since `started_ms`), each once, in one transaction that moves the session past
    /// them (two replicas polling one session take turns).
    ///
    /// The session keeps a cursor per controller, the last `seq` it handed out: a controller's
    /// events are numbered in commit order under its row's lock, so nothing committed late is
    /// passed over, on either engine (an id cursor would: PostgreSQL hands out ids at insert).
    /// A poll hands out at most about `limit` events, shared among the controllers with new
    /// ones (at least one each), so one controller's backlog does not hold back the others'
    /// alarms; the next poll continues. A pending controller's events wait for its approval.
    /// Idle sessions ([`MONITOR_IDLE_MICROS`]) are deleted on the way.
    pub async fn monitor_access_events(
        &self,
        client_id: i64,
        started_ms: i64,
        now: i64,
        limit: i64,
    ) -> Result<Vec<AccessEventRow>, StoreError> {
        let since = started_ms.saturating_mul(1000);
        let mut rows: Vec<AccessEventRow> = on_db!(self, |db| {
            let mut tx = db.begin().await?;
            sqlx::query("DELETE FROM cvsecurity_monitor_sessions WHERE last_poll_at < $1")
                .bind(now.saturating_sub(MONITOR_IDLE_MICROS))
                .execute(&mut *tx)
                .await?;
            let opened: Option<i64> = sqlx::query_scalar(
                "INSERT INTO cvsecurity_monitor_sessions (client_id, started_ms, cursor_id, last_poll_at) \
                 VALUES ($1, $2, 0, $3) ON CONFLICT (client_id, started_ms) DO NOTHING RETURNING client_id",
            )
            .bind(client_id)
            .bind(started_ms)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if opened.is_some() {
                // A new session starts after each controller's events received before its
                // timestamp (a controller without a cursor starts from its first event).
                sqlx::query(
                    "INSERT INTO cvsecurity_monitor_cursors (client_id, started_ms, device_id, last_seq) \
                     SELECT $1, $2, d.id, (SELECT COALESCE(MAX(ev.seq), 0) FROM access_events AS ev \
                                           WHERE ev.device_id = d.id AND ev.received_at < $3) \
                     FROM devices AS d WHERE d.access_last_seq > 0",
                )
                .bind(client_id)
                .bind(started_ms)
                .bind(since)
                .execute(&mut *tx)
                .await?;
            } else {
                sqlx::query(concat!(
                    "SELECT client_id FROM cvsecurity_monitor_sessions WHERE client_id = $1 AND started_ms = $2",
                    for_update!()
                ))
                .bind(client_id)
                .bind(started_ms)
                .execute(&mut *tx)
                .await?;
            }
            let behind: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT d.id, COALESCE(c.last_seq, 0) FROM devices AS d \
                 LEFT JOIN cvsecurity_monitor_cursors AS c \
                        ON c.client_id = $1 AND c.started_ms = $2 AND c.device_id = d.id \
                 WHERE d.approval = 'approved' AND d.access_last_seq > COALESCE(c.last_seq, 0) ORDER BY d.id",
            )
            .bind(client_id)
            .bind(started_ms)
            .fetch_all(&mut *tx)
            .await?;
            let mut rows: Vec<AccessEventRow> = Vec::new();
            if !behind.is_empty() {
                let share = (limit / behind.len() as i64).max(1);
                let (devices, cursors): (Vec<i64>, Vec<i64>) = behind.into_iter().unzip();
                rows = sqlx::query_as(concat!(
                    event_columns!(),
                    " FROM ",
                    list_rows!("$1", "w_device"),
                    " JOIN ",
                    list_rows!("$2", "w_cursor"),
                    " ON w_cursor.key = w_device.key \
                      JOIN access_events AS ev ON ev.device_id = w_device.value \
                       AND ev.seq > w_cursor.value AND ev.seq <= w_cursor.value + $3 \
                      JOIN devices AS d ON d.id = ev.device_id",
                    event_names_joined!(),
                    " ORDER BY ev.id"
                ))
                .bind(dialect::list_param(&devices))
                .bind(dialect::list_param(&cursors))
                .bind(share)
                .fetch_all(&mut *tx)
                .await?;
                // Each controller's cursor moves to the last number handed out (its rows are a
                // run of consecutive numbers after the cursor: numbers have no gaps).
                let mut moved: std::collections::BTreeMap<i64, i64> = std::collections::BTreeMap::new();
                for row in &rows {
                    let last = moved.entry(row.device_id).or_default();
                    *last = (*last).max(row.seq);
                }
                let (devices, seqs): (Vec<i64>, Vec<i64>) = moved.into_iter().unzip();
                sqlx::query(concat!(
                    "INSERT INTO cvsecurity_monitor_cursors (client_id, started_ms, device_id, last_seq) \
                     SELECT $1, $2, w_device.value, w_seq.value FROM ",
                    list_rows!("$3", "w_device"),
                    " JOIN ",
                    list_rows!("$4", "w_seq"),
                    " ON w_seq.key = w_device.key WHERE true \
                      ON CONFLICT (client_id, started_ms, device_id) DO UPDATE SET last_seq = excluded.last_seq"
                ))
                .bind(client_id)
                .bind(started_ms)
                .bind(dialect::list_param(&devices))
                .bind(dialect::list_param(&seqs))
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "UPDATE cvsecurity_monitor_sessions SET last_poll_at = $1 WHERE client_id = $2 AND started_ms = $3",
            )
            .bind(now)
            .bind(client_id)
            .bind(started_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            rows
        });
        self.open_cards(&mut rows)?;
        Ok(rows)
    }
}
