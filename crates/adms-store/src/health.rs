//! What `/readyz` and `/metrics` ask of the database: whether it answers and runs this binary's
//! migrations, and the fleet and command queue in a few numbers. Every query here reads an
//! index or a small table: they run on every probe and every scrape.

use std::time::Duration;

use crate::backend::Db;
use crate::maintenance::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, postgres_applied, schema_state, sqlite_applied};
use crate::{Store, StoreError};

/// How the database's applied migrations compare with the ones this binary carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationState {
    /// Every migration of this binary is applied, and nothing else.
    Current { version: i64 },
    /// Migrations of this binary are missing or did not finish (the server migrates at start, so
    /// someone rolled the database back or a start was interrupted).
    Behind { applied: i64, known: i64 },
    /// A newer release expanded the schema (expand migrations only): this binary runs on it
    /// unchanged, as the expand/contract rule promises during a rolling upgrade.
    Expanded { applied: i64, known: i64 },
    /// The database carries a migration this binary may not run with: a newer release's
    /// contract migration.
    Ahead { applied: i64, known: i64 },
}

impl MigrationState {
    /// Whether this binary may serve on the database as it is.
    pub fn is_current(&self) -> bool {
        matches!(self, MigrationState::Current { .. } | MigrationState::Expanded { .. })
    }
}

impl std::fmt::Display for MigrationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigrationState::Current { version } => write!(f, "current (version {version})"),
            MigrationState::Behind { applied, known } => {
                write!(f, "behind: version {applied} applied, this binary needs {known}")
            }
            MigrationState::Expanded { applied, known } => {
                write!(f, "current (version {applied}: expanded by a newer release, this binary knows up to {known})")
            }
            MigrationState::Ahead { applied, known } => {
                write!(f, "ahead: version {applied} applied by a newer release, this binary knows up to {known}")
            }
        }
    }
}

/// The devices in a few numbers, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct DeviceCensus {
    /// Every device not deleted, with what the gauges need of it.
    pub devices: Vec<CensusDevice>,
}

#[derive(Debug, Clone)]
pub struct CensusDevice {
    pub sn: String,
    pub approval: adms_model::Approval,
    pub presence: adms_model::Presence,
    /// Last request as flushed to the database (µs); the server adds what it saw since.
    pub last_activity_at: Option<i64>,
}

/// The commands not yet finished, by state, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandCensus {
    pub queued: i64,
    /// Handed to a device, no result yet.
    pub sent: i64,
    /// `created_at` of the oldest queued command (µs).
    pub oldest_queued_at: Option<i64>,
}

impl Store {
    /// `SELECT 1` within `timeout`: whether the database answers at all.
    pub async fn ping(&self, timeout: Duration) -> Result<(), StoreError> {
        let query = async {
            on_db!(self, |db| {
                sqlx::query("SELECT 1").execute(db.pool()).await?;
                Ok::<(), StoreError>(())
            })
        };
        match tokio::time::timeout(timeout, query).await {
            Ok(answered) => answered,
            Err(_) => Err(StoreError::Timeout(timeout)),
        }
    }

    /// How the applied migrations compare with this binary's (the comparison the start-up check
    /// makes, `maintenance::schema_state`).
    pub async fn migration_state(&self) -> Result<MigrationState, StoreError> {
        let (applied, migrator) = match self.db() {
            Db::Sqlite(db) => {
                let mut conn = db.pool().acquire().await?;
                (sqlite_applied(&mut conn).await?, &SQLITE_MIGRATIONS)
            }
            Db::Postgres(db) => (postgres_applied(db.pool()).await?, &POSTGRES_MIGRATIONS),
        };
        let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        let newest = applied.iter().map(|a| a.version).max().unwrap_or(0);
        match schema_state(&applied, migrator) {
            Ok(state) if state.newer_expansions > 0 => Ok(MigrationState::Expanded { applied: newest, known }),
            Ok(state) if state.pending == 0 => Ok(MigrationState::Current { version: newest }),
            Ok(_) => Ok(MigrationState::Behind { applied: newest, known }),
            Err(StoreError::NewerDatabase { version, known, .. }) => {
                Ok(MigrationState::Ahead { applied: version, known })
            }
            Err(error) => Err(error),
        }
    }

    /// Every device not deleted, with its approval, presence and last flushed activity.
    pub async fn device_census(&self) -> Result<DeviceCensus, StoreError> {
        on_db!(self, |db| {
            let rows: Vec<(String, adms_model::Approval, adms_model::Presence, Option<i64>)> = sqlx::query_as(
                "SELECT sn, approval, presence, last_activity_at FROM devices WHERE deleted_at IS NULL ORDER BY id",
            )
            .fetch_all(db.pool())
            .await?;
            Ok(DeviceCensus {
                devices: rows
                    .into_iter()
                    .map(|(sn, approval, presence, last_activity_at)| CensusDevice {
                        sn,
                        approval,
                        presence,
                        last_activity_at,
                    })
                    .collect(),
            })
        })
    }

    /// Queued and sent commands, and the oldest queued one's age. Reads the index of open
    /// commands only: finished ones (the history) are not counted here.
    pub async fn command_census(&self) -> Result<CommandCensus, StoreError> {
        on_db!(self, |db| {
            let (queued, sent, oldest_queued_at): (i64, i64, Option<i64>) = sqlx::query_as(
                "SELECT COALESCE(SUM(CASE WHEN state = 'queued' THEN 1 ELSE 0 END), 0), \
                        COALESCE(SUM(CASE WHEN state = 'sent' THEN 1 ELSE 0 END), 0), \
                        MIN(CASE WHEN state = 'queued' THEN created_at END) \
                 FROM device_commands WHERE state IN ('queued', 'sent')",
            )
            .fetch_one(db.pool())
            .await?;
            Ok(CommandCensus { queued, sent, oldest_queued_at })
        })
    }
}
