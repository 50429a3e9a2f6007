//! The audit log: who changed what, when and from where. The server writes one entry per
//! state-changing API request (after authentication, whatever the outcome) and the CLI one per
//! change it makes; entries are never updated.

use sqlx::FromRow;

use crate::{Page, Store, StoreError};

/// An entry to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// µs since the epoch.
    pub at: i64,
    /// The user or key name, or `cli`.
    pub actor: String,
    /// `session`, `jwt`, `basic`, `integration` or `cli`.
    pub actor_kind: &'static str,
    pub user_id: Option<i64>,
    pub token_id: Option<i64>,
    /// The HTTP method, or `CLI`.
    pub method: String,
    /// The route template (`/api/v1/devices/{sn}/commands`), or the CLI command (`user create`).
    pub route: String,
    /// The id the path names, or the CLI's argument.
    pub target: Option<String>,
    /// The HTTP status answered; `None` for the CLI.
    pub status: Option<u16>,
    /// The client address; `None` for the CLI.
    pub address: Option<String>,
}

/// A stored entry.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub actor_kind: String,
    pub user_id: Option<i64>,
    pub token_id: Option<i64>,
    pub method: String,
    pub route: String,
    pub target: Option<String>,
    pub status: Option<i64>,
    pub address: Option<String>,
}

/// Which entries [`Store::list_audit`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this actor.
    pub actor: Option<String>,
    /// Only entries at or after this instant (µs).
    pub since: Option<i64>,
}

impl Store {
    /// Writes one entry.
    pub async fn record_audit(&self, entry: &NewAuditEntry) -> Result<i64, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_scalar(
                "INSERT INTO audit_log (at, actor, actor_kind, user_id, token_id, method, route, target, status, address) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            )
            .bind(entry.at)
            .bind(&entry.actor)
            .bind(entry.actor_kind)
            .bind(entry.user_id)
            .bind(entry.token_id)
            .bind(&entry.method)
            .bind(&entry.route)
            .bind(&entry.target)
            .bind(entry.status.map(i64::from))
            .bind(&entry.address)
            .fetch_one(db.pool())
            .await?)
        })
    }

    /// How many entries match, and one page of them, newest first.
    pub async fn list_audit(&self, filter: &AuditFilter, page: Page) -> Result<(i64, Vec<AuditEntry>), StoreError> {
        on_db!(self, |db| {
            // One static statement: an absent filter is a NULL parameter that matches everything.
            let count: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM audit_log WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR at >= $2)",
            )
            .bind(&filter.actor)
            .bind(filter.since)
            .fetch_one(db.pool())
            .await?;
            let rows = sqlx::query_as(
                "SELECT id, at, actor, actor_kind, user_id, token_id, method, route, target, status, address \
                 FROM audit_log WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR at >= $2) \
                 ORDER BY at DESC, id DESC LIMIT $3 OFFSET $4",
            )
            .bind(&filter.actor)
            .bind(filter.since)
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(db.pool())
            .await?;
            Ok((count, rows))
        })
    }
}
