/// What can go wrong in the store. Every error has one [`ErrorKind`], which is all a caller
/// needs to decide what to do (the server answers 404, 409, 400 or 503 by it, in one place).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0} (expected sqlite://PATH or postgres://USER@HOST/DB)")]
    UnsupportedUrl(String),
    #[error("cannot create {0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From the SQLite punch writer's own connection (see `sqlite::punch_writer`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The database has a migration of a newer release that this one may not run with: a
    /// contract migration, or newer ones above a migration this binary still has to apply.
    #[error(
        "the database was migrated by a newer adms-bridge: it has migration {version} ({description}), and this \
         adms-bridge {} knows migrations up to {known}; run a release that has migration {version}, or restore the \
         backup taken before the upgrade",
        env!("CARGO_PKG_VERSION")
    )]
    NewerDatabase { version: i64, description: String, known: i64 },
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("the punch writer has stopped")]
    WriterStopped,
    /// The database did not answer in time (a health probe's bound).
    #[error("the database did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// What the call names does not exist.
    #[error("not found")]
    NotFound,
    /// A command that cannot be sent to a device.
    #[error("invalid command: {0}")]
    InvalidCommand(#[source] adms_protocol::CommandError),
    /// The input is not acceptable.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The change conflicts with what is stored (a uniqueness rule, a state that no longer
    /// allows it).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The device's daily quota of this kind would be passed: nothing of the request stored.
    #[error("daily quota for {} exceeded", .0.as_str())]
    QuotaExceeded(crate::QuotaKind),
    /// A sealed column does not open: no master key, the wrong one, or a damaged row.
    #[error("{0}")]
    Sealed(#[from] adms_vault::SealError),
}

/// What a caller can do about a [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Nothing by that name: tell the client so.
    NotFound,
    /// The stored state does not allow it (a duplicate, a state already moved on, a quota
    /// spent): tell the client; retrying the same request will not help.
    Conflict,
    /// The request itself is wrong: tell the client.
    Invalid,
    /// The database cannot answer now, or the server is misconfigured (a key that does not
    /// open its data): retry later; an operator is needed if it lasts.
    Unavailable,
}

impl StoreError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::NotFound => ErrorKind::NotFound,
            StoreError::Conflict(_) | StoreError::QuotaExceeded(_) => ErrorKind::Conflict,
            StoreError::Invalid(_) | StoreError::InvalidCommand(_) => ErrorKind::Invalid,
            StoreError::Database(sqlx::Error::Database(e)) => {
                if e.is_unique_violation() {
                    ErrorKind::Conflict
                } else if e.is_foreign_key_violation() || e.is_check_violation() {
                    ErrorKind::Invalid
                } else {
                    ErrorKind::Unavailable
                }
            }
            StoreError::Database(sqlx::Error::RowNotFound) => ErrorKind::NotFound,
            StoreError::Database(_)
            | StoreError::Sqlite(_)
            | StoreError::UnsupportedUrl(_)
            | StoreError::Io(..)
            | StoreError::Migration(_)
            | StoreError::NewerDatabase { .. }
            | StoreError::Unsupported(_)
            | StoreError::WriterStopped
            | StoreError::Timeout(_)
            | StoreError::Sealed(_) => ErrorKind::Unavailable,
        }
    }
}
