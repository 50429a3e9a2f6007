/// What can go wrong in the store, named for what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0} (expected sqlite://PATH or postgres://USER@HOST/DB)")]
    UnsupportedUrl(String),
    #[error("cannot create directory {0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("the punch writer has stopped")]
    WriterStopped,
    #[error("not found")]
    NotFound,
    #[error("invalid command: {0}")]
    InvalidCommand(#[source] adms_protocol::CommandError),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The device's daily quota of this kind would be passed: nothing of the request stored.
    #[error("daily quota for {} exceeded", .0.as_str())]
    QuotaExceeded(crate::QuotaKind),
    /// A sealed column does not open: no master key, the wrong one, or a damaged row.
    #[error("{0}")]
    Sealed(#[from] adms_vault::SealError),
}
