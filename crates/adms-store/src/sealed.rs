//! The columns sealed at rest, and the two passes over all of them: sealing what an earlier
//! version stored in the clear, and re-sealing under a new master key (`secrets rekey`).
//!
//! What is sealed: credentials (device passwords, card numbers), biometric templates and photos,
//! the employee fields that identify or locate a person (national id, contact details, birthday,
//! religion), every copy of those inside queued commands, and the raw lines and bodies that may
//! repeat them (user lines, rejected lines, unknown tables, access events). Names, employee
//! codes, PINs, times and states stay in the clear: the API filters on them, and the punch path
//! stays as fast as it was.
//!
//! Each value is sealed with its kind (`table.column`) and its row's identity as associated
//! data ([`adms_vault`]). The identity is what addresses the row and never changes: the primary
//! key, or for rows found by content (a line sent again) the keyed digest of that content.
//! Empty values stay empty.

use adms_vault::{Sealer, Vault};
use sqlx::Row as _;

use crate::{Store, StoreError};

/// How a column's keyed digest relates to its row identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Digest {
    /// No digest.
    None,
    /// The row is found by the digest of this value: the identity is `prefix/hex(digest)`.
    InRecord,
    /// A digest of the value is stored beside it (to find equal values), not in the identity.
    Beside,
    /// The identity is `prefix/hex(digest)` of another column's digest (read, never written).
    OfRow,
}

/// One sealed column.
#[derive(Debug)]
pub struct SealedColumn {
    /// `table.column`: the first part of the associated data, and the digests' kind.
    pub kind: &'static str,
    /// `$1` the last key seen, `$2` a batch size; returns the key, identity (or its prefix),
    /// the stored digest (NULL without one) and the value, in key order. The key only walks the
    /// table and addresses the update; it is never sealed into a value. It is the table's `id`
    /// (on SQLite, for tables declared with `INTEGER PRIMARY KEY`, the same values as the
    /// `rowid` earlier passes walked; `device_users`, `roster_templates` and `user_photos` got
    /// their ids from their rowids in migration 0016). The same text runs on both engines.
    select: &'static str,
    /// Without a digest: `$1` the new value, `$2` the key, `$3` the value read. With one: `$1` the
    /// new value, `$2` the digest, `$3` the key, `$4` the value read.
    update: &'static str,
    binary: bool,
    digest: Digest,
}

macro_rules! sealed_column {
    ($table:literal, $column:literal, key: $key:literal, record: $record:literal, binary: $binary:literal) => {
        SealedColumn {
            kind: concat!($table, ".", $column),
            select: concat!(
                "SELECT ",
                $key,
                ", ",
                $record,
                " AS record, NULL, ",
                $column,
                " FROM ",
                $table,
                " WHERE ",
                $key,
                " > $1 AND length(",
                $column,
                ") > 0 ORDER BY ",
                $key,
                " LIMIT $2"
            ),
            update: concat!("UPDATE ", $table, " SET ", $column, " = $1 WHERE ", $key, " = $2 AND ", $column, " = $3"),
            binary: $binary,
            digest: Digest::None,
        }
    };
    ($table:literal, $column:literal, key: $key:literal, record: $record:literal, binary: $binary:literal,
     identified by: $digest_column:literal) => {
        SealedColumn {
            kind: concat!($table, ".", $column),
            select: concat!(
                "SELECT ",
                $key,
                ", ",
                $record,
                " AS record, ",
                $digest_column,
                ", ",
                $column,
                " FROM ",
                $table,
                " WHERE ",
                $key,
                " > $1 AND length(",
                $column,
                ") > 0 ORDER BY ",
                $key,
                " LIMIT $2"
            ),
            update: concat!("UPDATE ", $table, " SET ", $column, " = $1 WHERE ", $key, " = $2 AND ", $column, " = $3"),
            binary: $binary,
            digest: Digest::OfRow,
        }
    };
    ($table:literal, $column:literal, key: $key:literal, record: $record:literal, binary: $binary:literal,
     digest $how:ident: $digest_column:literal) => {
        SealedColumn {
            kind: concat!($table, ".", $column),
            select: concat!(
                "SELECT ",
                $key,
                ", ",
                $record,
                " AS record, ",
                $digest_column,
                ", ",
                $column,
                " FROM ",
                $table,
                " WHERE ",
                $key,
                " > $1 AND length(",
                $column,
                ") > 0 ORDER BY ",
                $key,
                " LIMIT $2"
            ),
            update: concat!(
                "UPDATE ",
                $table,
                " SET ",
                $column,
                " = $1, ",
                $digest_column,
                " = $2 WHERE ",
                $key,
                " = $3 AND ",
                $column,
                " = $4"
            ),
            binary: $binary,
            digest: Digest::$how,
        }
    };
}

pub const EMPLOYEE_PASSWORD: SealedColumn =
    sealed_column!("employees", "device_password", key: "id", record: "CAST(id AS TEXT)", binary: false);
/// `card_index` is the card's keyed digest: a card number belongs to one employee.
pub const EMPLOYEE_CARD: SealedColumn = sealed_column!("employees", "card_no", key: "id", record: "CAST(id AS TEXT)", binary: false, digest Beside: "card_index");
/// The employee fields sealed besides password and card, in [`EMPLOYEE_PRIVATE_FIELDS`] order.
pub const EMPLOYEE_PRIVATE: [SealedColumn; 11] = [
    sealed_column!("employees", "ssn", key: "id", record: "CAST(id AS TEXT)", binary: false),
    sealed_column!("employees", "national", key: "id", record: "CAST(id AS TEXT)", binary: false),
    sealed_column!("employees", "religion", key: "id", record: "CAST(id AS TEXT)", binary: false),
    sealed_column!("employees", "birthday", key: "id", record: "CAST(id AS TEXT)", binary: false),
    sealed_column!("employees", "contact_tel", key: "id", record: "CAST(id AS TEXT)", binary: false),
    sealed_column!("employees", "office_tel", key: "id", record: "CAST(id AS TEXT)", binary: false),
    sealed_column!("employees", "mobile", key: "id", record: "CAST(id AS TEXT)", binary: false),
    sealed_column!("employees", "email", key: "id", record: "CAST(id AS TEXT)", binary: false),
    sealed_column!("employees", "address", key: "id", record: "CAST(id AS TEXT)", binary: false),
    sealed_column!("employees", "city", key: "id", record: "CAST(id AS TEXT)", binary: false),
    sealed_column!("employees", "postcode", key: "id", record: "CAST(id AS TEXT)", binary: false),
];
pub const DEVICE_USER_PASSWORD: SealedColumn =
    sealed_column!("device_users", "password", key: "id", record: "device_id || '/' || pin", binary: false);
pub const DEVICE_USER_CARD: SealedColumn =
    sealed_column!("device_users", "card", key: "id", record: "device_id || '/' || pin", binary: false);
pub const DEVICE_USER_VICE_CARD: SealedColumn =
    sealed_column!("device_users", "vice_card", key: "id", record: "device_id || '/' || pin", binary: false);
pub const DEVICE_USER_RAW: SealedColumn =
    sealed_column!("device_users", "raw_line", key: "id", record: "device_id || '/' || pin", binary: true);
pub const DEVICE_TEMPLATE: SealedColumn = sealed_column!(
    "biometric_templates", "template", key: "id",
    record: "device_id || '/' || pin || '/' || bio_type || '/' || bio_no || '/' || bio_index", binary: false
);
pub const ROSTER_TEMPLATE: SealedColumn = sealed_column!(
    "roster_templates", "template", key: "id", record: "pin || '/' || bio_type || '/' || bio_no || '/' || bio_index", binary: false
);
pub const USER_PHOTO: SealedColumn = sealed_column!(
    "user_photos", "content", key: "id", record: "device_id || '/' || pin || '/' || record_kind || '/' || photo_type", binary: false
);
pub const ATT_PHOTO: SealedColumn =
    sealed_column!("att_photos", "image", key: "id", record: "device_id || '/' || file_name", binary: true);
pub const DEVICE_RECORD_RAW: SealedColumn = sealed_column!(
    "device_records", "raw_line", key: "id", record: "device_id || '/' || table_name", binary: true, digest InRecord: "raw_sha256"
);
pub const REJECTED_RAW: SealedColumn = sealed_column!(
    "rejected_lines", "raw", key: "id", record: "device_id || '/' || table_name", binary: true, digest InRecord: "raw_sha256"
);
pub const RAW_UPLOAD_BODY: SealedColumn = sealed_column!(
    "raw_uploads", "body", key: "id", record: "sn || '/' || endpoint || '/' || table_name", binary: true,
    digest InRecord: "body_sha256"
);
pub const ACCESS_EVENT_RAW: SealedColumn = sealed_column!(
    "access_events", "raw_line", key: "id", record: "CAST(device_id AS TEXT)", binary: true, digest InRecord: "raw_sha256"
);
/// Identified by the raw line's digest, so it must be sealed after [`ACCESS_EVENT_RAW`], which
/// may give an old row its keyed digest.
pub const ACCESS_EVENT_CARD: SealedColumn = sealed_column!(
    "access_events", "card_no", key: "id", record: "CAST(device_id AS TEXT)", binary: false,
    identified by: "raw_sha256"
);
pub const COMMAND_WIRE: SealedColumn =
    sealed_column!("device_commands", "command", key: "id", record: "CAST(id AS TEXT)", binary: false);
pub const COMMAND_PARAMS: SealedColumn =
    sealed_column!("device_commands", "params", key: "id", record: "CAST(id AS TEXT)", binary: false);

pub const VISIT_CARD: SealedColumn =
    sealed_column!("access_visits", "card_no", key: "id", record: "CAST(id AS TEXT)", binary: false);
pub const VISIT_CERT: SealedColumn = sealed_column!(
    "access_visits", "cert_num", key: "id", record: "CAST(id AS TEXT)", binary: false, digest Beside: "cert_index"
);

/// Every sealed column, in the order the passes must take them (see [`ACCESS_EVENT_CARD`]).
pub fn all_columns() -> impl Iterator<Item = &'static SealedColumn> {
    const SINGLE: [&SealedColumn; 18] = [
        &EMPLOYEE_PASSWORD,
        &EMPLOYEE_CARD,
        &DEVICE_USER_PASSWORD,
        &DEVICE_USER_CARD,
        &DEVICE_USER_VICE_CARD,
        &DEVICE_USER_RAW,
        &DEVICE_TEMPLATE,
        &ROSTER_TEMPLATE,
        &USER_PHOTO,
        &ATT_PHOTO,
        &DEVICE_RECORD_RAW,
        &REJECTED_RAW,
        &RAW_UPLOAD_BODY,
        &ACCESS_EVENT_RAW,
        &ACCESS_EVENT_CARD,
        &COMMAND_WIRE,
        &VISIT_CARD,
        &VISIT_CERT,
    ];
    SINGLE.into_iter().chain(std::iter::once(&COMMAND_PARAMS)).chain(EMPLOYEE_PRIVATE.iter())
}

/// The identity of a row found by the digest of its content.
pub fn digest_record(prefix: &str, digest: &[u8]) -> String {
    format!("{prefix}/{}", hex::encode(digest))
}

/// What a pass over the sealed columns did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Values sealed (or re-sealed) by this pass.
    pub sealed: u64,
    /// Values that already were under the target key.
    pub already: u64,
}

/// A stored value, text or binary.
enum Stored {
    Text(String),
    Bytes(Vec<u8>),
}

const BATCH: i64 = 500;
/// `server_settings` key set once every column was sealed (so later starts skip the scan).
const COLUMNS_SEALED: &str = "columns_sealed_v1";

impl Store {
    /// With a vault: seals every value an earlier version stored in the clear (and gives rows
    /// found by content their keyed digest), once per database. A value that is sealed already
    /// is left alone.
    pub async fn seal_plaintext_columns(&self) -> Result<Resealed, StoreError> {
        let Some(vault) = self.sealer().0 else { return Ok(Resealed::default()) };
        if self.server_setting(COLUMNS_SEALED).await?.is_some() {
            return Ok(Resealed::default());
        }
        let mut done = Resealed::default();
        for column in all_columns() {
            self.reseal_column(column, None, vault, true, &mut done).await?;
        }
        self.shared_secret(COLUMNS_SEALED, || b"1".to_vec()).await?;
        Ok(done)
    }

    /// Re-seals every sealed column under `to`, opening values with `from` (values stored in
    /// the clear are sealed as well). Row by row, each a compare-and-swap, in batches: an
    /// interrupted run leaves every value under one of the two keys, and running it again
    /// finishes the job. Every server on the database must be stopped first.
    pub async fn reseal_columns(&self, from: Option<&Vault>, to: &Vault) -> Result<Resealed, StoreError> {
        let mut done = Resealed::default();
        for column in all_columns() {
            self.reseal_column(column, from, to, false, &mut done).await?;
        }
        Ok(done)
    }

    async fn reseal_column(
        &self,
        column: &SealedColumn,
        from: Option<&Vault>,
        to: &Vault,
        plaintext_only: bool,
        done: &mut Resealed,
    ) -> Result<(), StoreError> {
        on_db!(self, |db| {
            let (from, to_sealer) = (Sealer(from), Sealer(Some(to)));
            let mut after = 0i64;
            loop {
                let rows = sqlx::query(column.select).bind(after).bind(BATCH).fetch_all(db.pool()).await?;
                let Some(last) = rows.last() else { return Ok(()) };
                after = last.try_get(0)?;
                let mut tx = db.begin().await?;
                for row in &rows {
                    let key: i64 = row.try_get(0)?;
                    let prefix: String = row.try_get(1)?;
                    let stored_digest: Option<Vec<u8>> = row.try_get(2)?;
                    let stored =
                        if column.binary { Stored::Bytes(row.try_get(3)?) } else { Stored::Text(row.try_get(3)?) };
                    let sealed = match &stored {
                        Stored::Text(text) => adms_vault::is_sealed(text),
                        Stored::Bytes(bytes) => adms_vault::is_sealed_bytes(bytes),
                    };
                    if sealed && plaintext_only {
                        done.already += 1;
                        continue;
                    }
                    // A value in the clear gets its digest (again): rows written by an earlier
                    // version hold a plain SHA-256, or none.
                    let plain_bytes = |stored: &Stored| match stored {
                        Stored::Text(text) => text.as_bytes().to_vec(),
                        Stored::Bytes(bytes) => bytes.clone(),
                    };
                    let new_digest = (!sealed && matches!(column.digest, Digest::InRecord | Digest::Beside))
                        .then(|| to_sealer.digest(column.kind, &plain_bytes(&stored)).to_vec());
                    let record = match column.digest {
                        Digest::InRecord | Digest::OfRow => {
                            let digest = new_digest.as_deref().or(stored_digest.as_deref()).unwrap_or_default();
                            digest_record(&prefix, digest)
                        }
                        Digest::None | Digest::Beside => prefix,
                    };
                    let update = sqlx::query(column.update);
                    let update = match &stored {
                        Stored::Text(text) => {
                            if sealed && to_sealer.open(column.kind, &record, text).is_ok() {
                                done.already += 1;
                                continue;
                            }
                            let plain = from.open(column.kind, &record, text)?;
                            update.bind(to_sealer.seal(column.kind, &record, &plain))
                        }
                        Stored::Bytes(bytes) => {
                            if sealed && to_sealer.open_bytes(column.kind, &record, bytes).is_ok() {
                                done.already += 1;
                                continue;
                            }
                            let plain = from.open_bytes(column.kind, &record, bytes)?;
                            update.bind(to_sealer.seal_bytes(column.kind, &record, &plain))
                        }
                    };
                    let update = match column.digest {
                        Digest::None | Digest::OfRow => update,
                        Digest::InRecord | Digest::Beside => update.bind(new_digest.or(stored_digest)),
                    };
                    let update = update.bind(key);
                    let update = match &stored {
                        Stored::Text(text) => update.bind(text.as_str()),
                        Stored::Bytes(bytes) => update.bind(bytes.as_slice()),
                    };
                    if update.execute(&mut *tx).await?.rows_affected() == 0 {
                        return Err(StoreError::Conflict(format!(
                            "{} of row {key} changed while being sealed: is a server still running on this database?",
                            column.kind
                        )));
                    }
                    done.sealed += 1;
                }
                tx.commit().await?;
            }
        })
    }
}
