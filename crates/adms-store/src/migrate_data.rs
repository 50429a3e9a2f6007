//! `adms-bridge migrate-data`: copies a bridge's data from SQLite to PostgreSQL.
//!
//! Table by table in foreign-key order, in batches of [`BATCH`] rows, each batch one
//! transaction on PostgreSQL. Rows travel as JSON: SQLite builds each batch as one array
//! (`json_object` per row, BLOBs as `\x`+hex, PostgreSQL's bytea text form) and PostgreSQL
//! turns it into rows of the target table with `jsonb_populate_recordset`, which converts each
//! value to its column's type (0/1 to booleans included). Every value is copied as stored:
//! ids, `seq`, event ids and sealed values (still sealed under the same master key, and still
//! opening, because their row identities are the same).
//!
//! Resumable and repeatable: a row already on PostgreSQL (an interrupted or earlier run) is
//! updated to the source's values (`ON CONFLICT (id) DO UPDATE`), small tables without ids are
//! replaced whole, so running it again finishes an interrupted copy or catches up with what
//! SQLite received since. At the end, each table's row count must agree, and the punches must
//! agree on a checksum of (id, device, seq).
//! Triggers that would act on copied rows (the delivery fan-out, the punch event guard) are
//! disabled for the copy's transactions only. No process may write either database meanwhile.

use sha2::Digest as _;

use crate::backend::Db;
use crate::{Store, StoreError};

/// Rows per batch (one JSON parameter, one PostgreSQL transaction).
const BATCH: i64 = 2_000;

/// One table to copy: its name, and the statements that read a batch from SQLite and write
/// it to PostgreSQL.
struct CopiedTable {
    name: &'static str,
    /// `$1` the last id copied, `$2` the batch size: a JSON array of rows and the batch's last
    /// id. Tables without an id column are small and copied whole.
    read: &'static str,
    /// For tables copied whole: empties the table first (in the same transaction).
    clear: Option<&'static str>,
    /// Inserts the batch; rows already there (an earlier run) are updated to the source's values.
    write: &'static str,
    /// Moves the id sequence past the copied ids.
    advance: Option<&'static str>,
    paged: bool,
    /// Disables and enables again a trigger that must not act on copied rows.
    trigger: Option<(&'static str, &'static str)>,
    count: &'static str,
}

/// One column as a `json_object` entry: name, then value.
macro_rules! json_entry {
    (value $column:literal) => {
        concat!("'", $column, "', ", $column)
    };
    (blob $column:literal) => {
        concat!(
            "'",
            $column,
            "', CASE WHEN ",
            $column,
            " IS NULL THEN NULL ELSE '\\x' || lower(hex(",
            $column,
            ")) END"
        )
    };
}

macro_rules! copy_table {
    ($table:literal, key $key:literal, [$first_kind:ident $first:literal $(, $kind:ident $column:literal)*]) => {
        CopiedTable {
            name: $table,
            read: concat!(
                "SELECT json_group_array(json_object(", json_entry!($first_kind $first), $(", ", json_entry!($kind $column),)*
                ")), MAX(", $key, ") FROM (SELECT * FROM ", $table, " WHERE ", $key, " > $1 ORDER BY ", $key, " LIMIT $2)"
            ),
            clear: None,
            write: concat!(
                "INSERT INTO ", $table, " SELECT * FROM jsonb_populate_recordset(NULL::", $table,
                ", CAST($1 AS jsonb)) ON CONFLICT (", $key, ") DO UPDATE SET (", $first, $(", ", $column,)*
                ") = (excluded.", $first, $(", excluded.", $column,)* ")"
            ),
            advance: Some(concat!(
                "SELECT setval(pg_get_serial_sequence('", $table, "', '", $key, "'), GREATEST((SELECT MAX(", $key,
                ") FROM ", $table, "), 1))"
            )),
            paged: true,
            trigger: None,
            count: concat!("SELECT COUNT(*) FROM ", $table),
        }
    };
    ($table:literal, whole, [$first_kind:ident $first:literal $(, $kind:ident $column:literal)*]) => {
        CopiedTable {
            name: $table,
            read: concat!(
                "SELECT json_group_array(json_object(", json_entry!($first_kind $first), $(", ", json_entry!($kind $column),)*
                ")), CAST($1 + $2 AS INTEGER) FROM ", $table
            ),
            clear: Some(concat!("DELETE FROM ", $table)),
            write: concat!(
                "INSERT INTO ", $table, " SELECT * FROM jsonb_populate_recordset(NULL::", $table, ", CAST($1 AS jsonb))"
            ),
            advance: None,
            paged: false,
            trigger: None,
            count: concat!("SELECT COUNT(*) FROM ", $table),
        }
    };
}

/// Every table, parents before children.
const TABLES: [CopiedTable; 52] = {
    let mut tables = [
        copy_table!("devices", key "id", [value "id", value "sn", value "alias", value "approval", value "protocol_family", value "device_type", value "model", value "firmware", value "push_version", value "firmware_push_version", value "language", value "ip_address", value "time_zone", value "text_encoding", value "user_count", value "fp_count", value "face_count", value "palm_count", value "transaction_count", value "fp_algorithm", value "face_algorithm", value "attlog_stamp", value "operlog_stamp", value "attphoto_stamp", value "biodata_stamp", value "registry_code", value "last_seq", value "first_seen_at", value "last_handshake_at", value "last_activity_at", value "presence", value "presence_changed_at", value "deleted_at", value "newest_punch_skew", value "newest_punch_local_time", value "day_started_at", value "day_first_seq", value "access_last_seq", value "ip_address_reported"]),
        copy_table!("device_options", whole, [value "device_id", value "key", value "value", value "updated_at"]),
        copy_table!("departments", key "id", [value "id", value "dept_code", value "dept_name", value "parent_id", value "created_at"]),
        copy_table!("areas", key "id", [value "id", value "area_code", value "area_name", value "parent_id", value "created_at"]),
        copy_table!("positions", key "id", [value "id", value "position_code", value "position_name", value "parent_id", value "created_at"]),
        copy_table!("terminal_areas", whole, [value "device_id", value "area_id"]),
        copy_table!("employees", key "id", [value "id", value "emp_code", value "first_name", value "last_name", value "nickname", value "device_password", value "card_no", value "department_id", value "position_id", value "hire_date", value "gender", value "birthday", value "verify_mode", value "emp_type", value "contact_tel", value "office_tel", value "mobile", value "national", value "city", value "address", value "postcode", value "email", value "enroll_sn", value "ssn", value "religion", value "dev_privilege", value "app_status", value "app_role", value "status", value "erp_managed", value "deleted_at", value "created_at", value "updated_at", blob "card_index"]),
        copy_table!("employee_areas", whole, [value "employee_id", value "area_id"]),
        copy_table!("resignations", key "id", [value "id", value "employee_id", value "resign_date", value "resign_type", value "disableatt", value "reason", value "created_at", value "reinstated_at"]),
        copy_table!("punches", key "id", [value "id", value "device_id", value "seq", value "pin", value "local_time", value "state", value "verify", value "work_code", value "extra", value "time_zone", value "utc_time", value "mask_flag", value "temperature", value "raw_line", value "received_at", value "event_id"]),
        copy_table!("rejected_lines", key "id", [value "id", value "device_id", value "table_name", value "line_no", blob "raw", blob "raw_sha256", value "reason", value "seen_count", value "first_seen_at", value "last_seen_at"]),
        copy_table!("raw_uploads", key "id", [value "id", value "device_id", value "sn", value "endpoint", value "table_name", value "query", blob "body", blob "body_sha256", value "seen_count", value "received_at"]),
        copy_table!("operation_logs", key "id", [value "id", value "device_id", value "op_code", value "operator", value "local_time", value "obj1", value "obj2", value "obj3", value "obj4", blob "raw_line", value "received_at"]),
        copy_table!("device_users", key "id", [value "device_id", value "pin", value "name", blob "name_raw", value "privilege", value "password", value "card", value "group_no", value "time_zones", value "verify", value "vice_card", blob "raw_line", value "updated_at", value "revision", value "id"]),
        copy_table!("biometric_templates", key "id", [value "device_id", value "pin", value "bio_type", value "bio_no", value "bio_index", value "record_kind", value "valid", value "duress", value "major_ver", value "minor_ver", value "format", value "size", value "template", value "updated_at", value "id"]),
        copy_table!("user_photos", key "id", [value "device_id", value "pin", value "record_kind", value "photo_type", value "file_name", value "size", value "content", value "url", value "updated_at", value "id"]),
        copy_table!("device_records", key "id", [value "id", value "device_id", value "table_name", value "kind", blob "raw_line", blob "raw_sha256", value "received_at"]),
        copy_table!("att_photos", key "id", [value "id", value "device_id", value "file_name", value "pin", value "local_time", value "punch_id", blob "image", value "received_at"]),
        copy_table!("access_events", key "id", [value "id", value "device_id", value "local_time", value "pin", value "card_no", value "door", value "event_code", value "in_out", value "verify_type", blob "raw_line", blob "raw_sha256", value "received_at", value "seq"]),
        copy_table!("device_commands", key "id", [value "id", value "device_id", value "command", value "state", value "created_at", value "sent_at", value "completed_at", value "return_code", value "kind", value "params", value "dedupe_key", value "source", value "send_count", value "expires_at", value "result", blob "result_payload", value "pin"]),
        copy_table!("command_results", key "id", [value "id", value "device_id", value "command_id", value "return_code", value "cmd", blob "head", blob "payload", value "received_at", value "outcome", value "seen_count"]),
        copy_table!("api_users", key "id", [value "id", value "username", value "password_hash", value "is_superuser", value "created_at", value "token_version", value "disabled_at", value "bootstrap", value "role"]),
        copy_table!("api_tokens", key "id", [value "id", value "kind", value "user_id", value "name", blob "token_sha256", value "created_at", value "expires_at", value "revoked_at", value "last_used_at", value "scopes"]),
        copy_table!("server_settings", whole, [value "key", blob "value"]),
        copy_table!("webhook_endpoints", key "id", [value "id", value "uid", value "url", value "description", value "event_types", value "paused_reason", value "source", value "timeout_ms", value "batch_max", value "ordered", value "created_at", value "updated_at", value "deleted_at", value "consecutive_failures", value "last_success_at", value "last_failure_at", value "failing_since"]),
        copy_table!("webhook_secrets", key "id", [value "id", value "endpoint_id", value "secret", value "created_at", value "expires_at"]),
        copy_table!("webhook_events", key "id", [value "id", value "event_id", value "event_type", value "device_id", value "punch_id", value "seq", value "occurred_at", value "created_at", blob "body", value "fan_out"]),
        copy_table!("webhook_batches", key "id", [value "id", value "endpoint_id", value "created_at"]),
        copy_table!("webhook_deliveries", key "id", [value "id", value "event_row", value "endpoint_id", value "state", value "attempt_count", value "next_attempt_at", value "first_attempt_at", value "lease_token", value "lease_owner", value "lease_expires_at", value "last_status", value "last_error", value "succeeded_at", value "created_at", value "updated_at", value "trigger_kind", value "batch_row"]),
        copy_table!("webhook_attempts", key "id", [value "id", value "delivery_id", value "attempt_no", value "lease_token", value "trigger_kind", value "worker", value "started_at", value "duration_us", value "http_status", value "error_kind", value "error", blob "response_body", value "accepted", value "batch_id"]),
        copy_table!("roster_templates", key "id", [value "pin", value "bio_type", value "bio_no", value "bio_index", value "record_kind", value "valid", value "duress", value "major_ver", value "minor_ver", value "format", value "template", value "source_device_id", value "updated_at", value "id"]),
        copy_table!("audit_log", key "id", [value "id", value "at", value "actor", value "actor_kind", value "user_id", value "token_id", value "method", value "route", value "target", value "status", value "address"]),
        copy_table!("device_quota_usage", whole, [value "device_id", value "day", value "kind", value "bytes"]),
        copy_table!("console_sessions", key "id", [value "id", value "user_id", blob "token_sha256", value "token_version", value "created_at", value "expires_at", value "ended_at"]),
        copy_table!("access_controllers", whole, [value "device_id", value "lock_count", value "reader_count", value "aux_in_count", value "aux_out_count", value "updated_at"]),
        copy_table!("access_doors", key "id", [value "id", value "device_id", value "door_no", value "name", value "created_at", value "updated_at"]),
        copy_table!("access_time_segments", key "id", [value "id", value "name", value "schedule", value "created_at", value "updated_at"]),
        copy_table!("access_holidays", key "id", [value "id", value "day", value "name", value "holiday_type", value "yearly", value "created_at"]),
        copy_table!("access_levels", key "id", [value "id", value "name", value "time_segment_id", value "created_at", value "updated_at"]),
        copy_table!("access_level_doors", whole, [value "level_id", value "door_id"]),
        copy_table!("access_level_members", whole, [value "level_id", value "employee_id", value "valid_from", value "valid_until", value "created_at", value "updated_at"]),
        copy_table!("cvsecurity_clients", key "id", [value "id", value "name", blob "token_sha256", value "may_write", value "created_at", value "revoked_at", value "last_used_at"]),
        copy_table!("cvsecurity_monitor_sessions", whole, [value "client_id", value "started_ms", value "cursor_id", value "last_poll_at"]),
        copy_table!("access_controller_states", whole, [value "device_id", value "local_time", value "sensor", value "relay", value "alarm", value "received_at"]),
        copy_table!("access_aux_outputs", key "id", [value "id", value "device_id", value "aux_no", value "name", value "created_at", value "updated_at"]),
        copy_table!("access_visits", key "id", [value "id", value "host_emp_code", value "cert_type", value "cert_num", blob "cert_index", value "name", value "phone", value "company", value "reason", value "visitor_count", value "starts_at", value "ends_at", value "card_no", value "exited_at", value "planned_phase", value "created_at"]),
        copy_table!("access_visit_levels", whole, [value "visit_id", value "level_id"]),
        copy_table!("access_floors", key "id", [value "id", value "device_id", value "floor_no", value "name", value "created_at", value "updated_at"]),
        copy_table!("access_ele_levels", key "id", [value "id", value "name", value "time_segment_id", value "created_at", value "updated_at"]),
        copy_table!("access_ele_level_floors", whole, [value "level_id", value "floor_id"]),
        copy_table!("access_ele_level_members", whole, [value "level_id", value "employee_id", value "valid_from", value "valid_until", value "created_at", value "updated_at"]),
        copy_table!("cvsecurity_monitor_cursors", whole, [value "client_id", value "started_ms", value "device_id", value "last_seq"]),
    ];
    tables[9].trigger = Some((
        "ALTER TABLE punches DISABLE TRIGGER punches_need_their_event",
        "ALTER TABLE punches ENABLE TRIGGER punches_need_their_event",
    ));
    tables[18].trigger = Some((
        "ALTER TABLE access_events DISABLE TRIGGER access_events_number",
        "ALTER TABLE access_events ENABLE TRIGGER access_events_number",
    ));
    tables[26].trigger = Some((
        "ALTER TABLE webhook_events DISABLE TRIGGER webhook_events_fan_out",
        "ALTER TABLE webhook_events ENABLE TRIGGER webhook_events_fan_out",
    ));
    tables
};

/// What a copy did, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// `(table, rows on SQLite, rows on PostgreSQL)`, equal for every table.
    pub tables: Vec<(&'static str, i64, i64)>,
    /// SHA-256 of every punch's (id, device, seq), in id order; equal on both.
    pub punch_checksum: String,
}

impl Store {
    /// Copies every row of this (SQLite) store into `to` (PostgreSQL, migrated), then verifies
    /// counts and the punch checksum. `progress` hears each table and the rows copied so far.
    pub async fn migrate_data_to(
        &self,
        to: &Store,
        mut progress: impl FnMut(&str, u64),
    ) -> Result<MigrationReport, StoreError> {
        let (Db::Sqlite(from), Db::Postgres(target)) = (self.db(), to.db()) else {
            return Err(StoreError::Unsupported("migrate-data copies from SQLite to PostgreSQL"));
        };
        for table in &TABLES {
            let mut after = 0i64;
            let mut copied = 0u64;
            loop {
                let (rows, last): (String, Option<i64>) = sqlx::query_as(table.read)
                    .bind(after)
                    .bind(if table.paged { BATCH } else { i64::from(i32::MAX) })
                    .fetch_one(from.pool())
                    .await?;
                let batch: Vec<serde_json::Value> = serde_json::from_str(&rows).map_err(|e| {
                    StoreError::Conflict(format!("{}: a batch read from SQLite is not JSON: {e}", table.name))
                })?;
                let mut tx = target.begin().await?;
                if let Some(clear) = table.clear {
                    sqlx::query(clear).execute(&mut *tx).await?;
                }
                if !batch.is_empty() {
                    if let Some((disable, _)) = table.trigger {
                        sqlx::query(disable).execute(&mut *tx).await?;
                    }
                    sqlx::query(table.write).bind(&rows).execute(&mut *tx).await?;
                    if let Some((_, enable)) = table.trigger {
                        sqlx::query(enable).execute(&mut *tx).await?;
                    }
                }
                tx.commit().await?;
                copied += batch.len() as u64;
                progress(table.name, copied);
                match last {
                    Some(last) if table.paged && !batch.is_empty() => after = last,
                    _ => break,
                }
            }
            if let Some(advance) = table.advance {
                sqlx::query(advance).execute(target.pool()).await?;
            }
        }
        self.verify_copy(to).await
    }

    /// Row counts of every table, and the punch checksum, on both stores; an error naming the
    /// first difference.
    async fn verify_copy(&self, to: &Store) -> Result<MigrationReport, StoreError> {
        let (Db::Sqlite(from), Db::Postgres(target)) = (self.db(), to.db()) else {
            return Err(StoreError::Unsupported("migrate-data copies from SQLite to PostgreSQL"));
        };
        let mut report = MigrationReport::default();
        for table in &TABLES {
            let here: i64 = sqlx::query_scalar(table.count).fetch_one(from.pool()).await?;
            let there: i64 = sqlx::query_scalar(table.count).fetch_one(target.pool()).await?;
            if here != there {
                return Err(StoreError::Conflict(format!(
                    "{}: {here} rows on SQLite but {there} on PostgreSQL after the copy",
                    table.name
                )));
            }
            report.tables.push((table.name, here, there));
        }
        let here = self.punch_checksum().await?;
        let there = to.punch_checksum().await?;
        if here != there {
            return Err(StoreError::Conflict("the punches differ after the copy (checksum of id, device, seq)".into()));
        }
        report.punch_checksum = here;
        Ok(report)
    }

    /// SHA-256 over every punch's (id, device, seq), in id order, as hex.
    async fn punch_checksum(&self) -> Result<String, StoreError> {
        on_db!(self, |db| {
            let mut hash = sha2::Sha256::new();
            let mut after = 0i64;
            loop {
                let rows: Vec<(i64, i64, i64)> =
                    sqlx::query_as("SELECT id, device_id, seq FROM punches WHERE id > $1 ORDER BY id LIMIT $2")
                        .bind(after)
                        .bind(10_000i64)
                        .fetch_all(db.pool())
                        .await?;
                let Some(&(last, _, _)) = rows.last() else { break };
                for (id, device, seq) in rows {
                    hash.update(id.to_le_bytes());
                    hash.update(device.to_le_bytes());
                    hash.update(seq.to_le_bytes());
                }
                after = last;
            }
            Ok(hex::encode(hash.finalize()))
        })
    }
}
