//! Read side for the ERP API: punches and terminals, filtered and paged.
//!
//! Filters are static SQL with `(? IS NULL OR column op ?)` guards, so no statement text ever
//! depends on input; the order is picked from a fixed set of statements.

use sqlx::FromRow;

use crate::{Store, StoreError, sealed};

/// Which punches to list. `None` means "no filter".
#[derive(Debug, Clone, Default)]
pub struct TransactionFilter {
    /// Punch local time >= (canonical `YYYY-MM-DD HH:MM:SS`).
    pub start_time: Option<String>,
    /// Punch local time <=.
    pub end_time: Option<String>,
    pub emp_code: Option<String>,
    pub terminal_sn: Option<String>,
    pub terminal_alias: Option<String>,
    /// Receive time >= (Unix microseconds).
    pub upload_time_gte: Option<i64>,
    /// Receive time <= (Unix microseconds).
    pub upload_time_lte: Option<i64>,
    pub order: TransactionOrder,
}

/// Supported orderings; ties fall back to id in the same direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TransactionOrder {
    #[default]
    IdAsc,
    IdDesc,
    PunchTimeAsc,
    PunchTimeDesc,
    UploadTimeAsc,
    UploadTimeDesc,
}

/// Offset/limit of one page.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub offset: i64,
    pub limit: i64,
}

/// One punch as the API shows it.
#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct TransactionRow {
    pub id: i64,
    pub seq: i64,
    pub emp_code: String,
    pub punch_time: String,
    pub punch_state: String,
    pub verify_type: i64,
    pub work_code: String,
    pub terminal_sn: String,
    pub terminal_alias: String,
    pub device_time_zone: Option<String>,
    pub utc_time: Option<i64>,
    pub mask_flag: Option<i64>,
    pub temperature: Option<f64>,
    pub upload_time: i64,
    pub employee_name: Option<String>,
    /// The roster's employee with this PIN, when there is one.
    pub emp_id: Option<i64>,
    pub emp_first_name: Option<String>,
    pub emp_last_name: Option<String>,
    pub dept_name: Option<String>,
    pub position_name: Option<String>,
    /// The name of the terminal's area.
    pub area_name: Option<String>,
}

/// The roster's view of a punch: its employee (by PIN), their department and position, and
/// the terminal's area (area 1 when the terminal was never assigned).
macro_rules! roster_columns {
    () => {
        "e.id AS emp_id, e.first_name AS emp_first_name, e.last_name AS emp_last_name, ed.dept_name, \
         ep.position_name, ar.area_name"
    };
}

macro_rules! roster_joins {
    () => {
        "LEFT JOIN employees AS e ON e.emp_code = p.pin AND e.deleted_at IS NULL \
         LEFT JOIN departments AS ed ON ed.id = e.department_id LEFT JOIN positions AS ep ON ep.id = e.position_id \
         LEFT JOIN terminal_areas AS ta ON ta.device_id = p.device_id \
         LEFT JOIN areas AS ar ON ar.id = COALESCE(ta.area_id, 1)"
    };
}

macro_rules! transactions_select {
    ($order:literal) => {
        concat!(
            "SELECT p.id, p.seq, p.pin AS emp_code, p.local_time AS punch_time, p.state AS punch_state, \
             p.verify AS verify_type, p.work_code, d.sn AS terminal_sn, d.alias AS terminal_alias, \
             p.time_zone AS device_time_zone, p.utc_time, p.mask_flag, p.temperature, p.received_at AS upload_time, \
             u.name AS employee_name, ",
            roster_columns!(),
            " FROM punches AS p JOIN devices AS d ON d.id = p.device_id \
             LEFT JOIN device_users AS u ON u.device_id = p.device_id AND u.pin = p.pin ",
            roster_joins!(),
            " ",
            transactions_where!(),
            " ORDER BY ",
            $order,
            " LIMIT $8 OFFSET $9"
        )
    };
}

macro_rules! transactions_where {
    () => {
        "WHERE d.approval = 'approved' \
         AND ($1 IS NULL OR p.local_time >= $1) AND ($2 IS NULL OR p.local_time <= $2) \
         AND ($3 IS NULL OR p.pin = $3) AND ($4 IS NULL OR d.sn = $4) AND ($5 IS NULL OR d.alias = $5) \
         AND ($6 IS NULL OR p.received_at >= $6) AND ($7 IS NULL OR p.received_at <= $7)"
    };
}

const COUNT_TRANSACTIONS: &str =
    concat!("SELECT COUNT(*) FROM punches AS p JOIN devices AS d ON d.id = p.device_id ", transactions_where!());

impl TransactionOrder {
    fn select(self) -> &'static str {
        match self {
            TransactionOrder::IdAsc => transactions_select!("p.id ASC"),
            TransactionOrder::IdDesc => transactions_select!("p.id DESC"),
            TransactionOrder::PunchTimeAsc => transactions_select!("p.local_time ASC, p.id ASC"),
            TransactionOrder::PunchTimeDesc => transactions_select!("p.local_time DESC, p.id DESC"),
            TransactionOrder::UploadTimeAsc => transactions_select!("p.received_at ASC, p.id ASC"),
            TransactionOrder::UploadTimeDesc => {
                transactions_select!("p.received_at DESC, p.id DESC")
            }
        }
    }
}

/// One terminal as the API shows it.
#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct TerminalRow {
    pub id: i64,
    pub sn: String,
    pub alias: String,
    pub approval: String,
    pub ip_address: String,
    pub model: String,
    pub firmware: String,
    pub push_version: String,
    pub time_zone: Option<String>,
    pub user_count: Option<i64>,
    pub fp_count: Option<i64>,
    pub face_count: Option<i64>,
    pub palm_count: Option<i64>,
    pub transaction_count: Option<i64>,
    pub last_activity_at: Option<i64>,
    pub stored_punches: i64,
}

/// Which terminals to list.
#[derive(Debug, Clone, Default)]
pub struct TerminalFilter {
    pub sn: Option<String>,
    pub alias: Option<String>,
    pub sn_icontains: Option<String>,
    pub alias_icontains: Option<String>,
    pub id: Option<i64>,
}

macro_rules! terminals_where {
    () => {
        concat!(
            "WHERE ($1 IS NULL OR sn = $1) AND ($2 IS NULL OR alias = $2) AND ($3 IS NULL OR ",
            contains!("sn" => "$3"),
            ") AND ($4 IS NULL OR ",
            contains!("alias" => "$4"),
            ") AND ($5 IS NULL OR id = $5) AND deleted_at IS NULL"
        )
    };
}

impl Store {
    /// Total matches and one page of punches.
    pub async fn list_transactions(
        &self,
        f: &TransactionFilter,
        page: Page,
    ) -> Result<(i64, Vec<TransactionRow>), StoreError> {
        on_db!(self, |db| {
            let count: i64 = sqlx::query_scalar(COUNT_TRANSACTIONS)
                .bind(&f.start_time)
                .bind(&f.end_time)
                .bind(&f.emp_code)
                .bind(&f.terminal_sn)
                .bind(&f.terminal_alias)
                .bind(f.upload_time_gte)
                .bind(f.upload_time_lte)
                .fetch_one(db.pool())
                .await?;
            if count == 0 || page.offset >= count {
                return Ok((count, Vec::new()));
            }
            let rows = sqlx::query_as(f.order.select())
                .bind(&f.start_time)
                .bind(&f.end_time)
                .bind(&f.emp_code)
                .bind(&f.terminal_sn)
                .bind(&f.terminal_alias)
                .bind(f.upload_time_gte)
                .bind(f.upload_time_lte)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(db.pool())
                .await?;
            Ok((count, rows))
        })
    }

    /// One punch by id (approved devices only).
    pub async fn transaction_by_id(&self, id: i64) -> Result<Option<TransactionRow>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_as(concat!(
                "SELECT p.id, p.seq, p.pin AS emp_code, p.local_time AS punch_time, p.state AS punch_state, \
                 p.verify AS verify_type, p.work_code, d.sn AS terminal_sn, d.alias AS terminal_alias, \
                 p.time_zone AS device_time_zone, p.utc_time, p.mask_flag, p.temperature, p.received_at AS upload_time, \
                 u.name AS employee_name, ",
                roster_columns!(),
                " FROM punches AS p JOIN devices AS d ON d.id = p.device_id \
                 LEFT JOIN device_users AS u ON u.device_id = p.device_id AND u.pin = p.pin ",
                roster_joins!(),
                " WHERE p.id = $1 AND d.approval = 'approved'"
            ))
            .bind(id)
            .fetch_optional(db.pool())
            .await?)
        })
    }

    /// Total matches and one page of terminals, by id.
    pub async fn list_terminals(&self, f: &TerminalFilter, page: Page) -> Result<(i64, Vec<TerminalRow>), StoreError> {
        on_db!(self, |db| {
            let count: i64 = sqlx::query_scalar(COUNT_TERMINALS)
                .bind(&f.sn)
                .bind(&f.alias)
                .bind(&f.sn_icontains)
                .bind(&f.alias_icontains)
                .bind(f.id)
                .fetch_one(db.pool())
                .await?;
            let rows = sqlx::query_as(SELECT_TERMINALS)
                .bind(&f.sn)
                .bind(&f.alias)
                .bind(&f.sn_icontains)
                .bind(&f.alias_icontains)
                .bind(f.id)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(db.pool())
                .await?;
            Ok((count, rows))
        })
    }
}

const COUNT_TERMINALS: &str = concat!("SELECT COUNT(*) FROM devices ", terminals_where!());

const SELECT_TERMINALS: &str = concat!(
    "SELECT id, sn, alias, approval, ip_address, model, firmware, push_version, time_zone, user_count, fp_count, \
     face_count, palm_count, transaction_count, last_activity_at, last_seq AS stored_punches FROM devices ",
    terminals_where!(),
    " ORDER BY id ASC LIMIT $6 OFFSET $7"
);

/// A rejected line as operators see it.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct RejectedLineRow {
    pub id: i64,
    pub sn: String,
    pub table_name: String,
    pub line_no: i64,
    pub raw: Vec<u8>,
    pub reason: String,
    pub seen_count: i64,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
}

impl Store {
    /// Rejected lines, newest first, optionally for one device.
    pub async fn list_rejected_lines(
        &self,
        sn: Option<&str>,
        page: Page,
    ) -> Result<(i64, Vec<RejectedLineRow>), StoreError> {
        on_db!(self, |db| {
            let count: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM rejected_lines AS r JOIN devices AS d ON d.id = r.device_id WHERE ($1 IS NULL OR d.sn = $1)",
            )
            .bind(sn)
            .fetch_one(db.pool())
            .await?;
            let stored: Vec<StoredRejectedLine> = sqlx::query_as(
                "SELECT r.id, d.sn, r.table_name, r.line_no, r.raw, r.reason, r.seen_count, r.first_seen_at, \
                        r.last_seen_at, r.device_id, r.raw_sha256 \
                 FROM rejected_lines AS r JOIN devices AS d ON d.id = r.device_id WHERE ($1 IS NULL OR d.sn = $1) \
                 ORDER BY r.id DESC LIMIT $2 OFFSET $3",
            )
            .bind(sn)
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(db.pool())
            .await?;
            Ok((count, self.open_rejected(stored)?))
        })
    }
}

impl Store {
    /// Rejected lines, newest first, optionally of one device, keyset-paged: at most `limit`
    /// with an id below `before_id` (the last id of the previous page). Counts nothing, so a
    /// page costs the same however many lines are kept.
    pub async fn rejected_lines_page(
        &self,
        sn: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<RejectedLineRow>, StoreError> {
        on_db!(self, |db| {
            let stored: Vec<StoredRejectedLine> = sqlx::query_as(
                "SELECT r.id, d.sn, r.table_name, r.line_no, r.raw, r.reason, r.seen_count, r.first_seen_at, \
                        r.last_seen_at, r.device_id, r.raw_sha256 \
                 FROM rejected_lines AS r JOIN devices AS d ON d.id = r.device_id \
                 WHERE ($1 IS NULL OR d.sn = $1) AND ($2 IS NULL OR r.id < $2) \
                 ORDER BY r.id DESC LIMIT $3",
            )
            .bind(sn)
            .bind(before_id)
            .bind(limit)
            .fetch_all(db.pool())
            .await?;
            self.open_rejected(stored)
        })
    }

    /// Opens the sealed raw lines of rows read from `rejected_lines`.
    fn open_rejected(&self, stored: Vec<StoredRejectedLine>) -> Result<Vec<RejectedLineRow>, StoreError> {
        let mut rows = Vec::with_capacity(stored.len());
        for StoredRejectedLine { mut row, device_id, raw_sha256 } in stored {
            let record = sealed::digest_record(&format!("{device_id}/{}", row.table_name), &raw_sha256);
            row.raw = self.sealer().open_bytes(sealed::REJECTED_RAW.kind, &record, &row.raw)?;
            rows.push(row);
        }
        Ok(rows)
    }
}

/// A rejected line as stored: with what identifies it for opening.
#[derive(FromRow)]
struct StoredRejectedLine {
    #[sqlx(flatten)]
    row: RejectedLineRow,
    device_id: i64,
    raw_sha256: Vec<u8>,
}
