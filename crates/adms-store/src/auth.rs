//! API accounts and tokens. Passwords arrive already hashed (argon2, by the server); tokens are
//! stored as SHA-256 digests only, so a database leak reveals no usable credential.

use sqlx::FromRow;

use crate::{Store, StoreError, now_micros};

/// An API account.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct ApiUser {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
}

/// Session tokens come from a login and expire; integration keys are created by an operator
/// and live until revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Session,
    Integration,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Session => "session",
            TokenKind::Integration => "integration",
        }
    }
}

/// A token row (never the token itself).
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    pub kind: String,
    pub user_id: Option<i64>,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl Store {
    /// Creates the account or replaces its password hash.
    pub async fn upsert_user(&self, username: &str, password_hash: &str) -> Result<i64, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_users (username, password_hash, created_at) VALUES (?, ?, ?) \
             ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash RETURNING id",
        )
        .bind(username)
        .bind(password_hash)
        .bind(now_micros())
        .fetch_one(self.pool())
        .await?;
        Ok(id)
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<ApiUser>, StoreError> {
        Ok(sqlx::query_as("SELECT id, username, password_hash FROM api_users WHERE username = ?")
            .bind(username)
            .fetch_optional(self.pool())
            .await?)
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<ApiUser>, StoreError> {
        Ok(sqlx::query_as("SELECT id, username, password_hash FROM api_users WHERE id = ?")
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Stores a new token by its digest.
    pub async fn create_token(
        &self,
        kind: TokenKind,
        user_id: Option<i64>,
        name: &str,
        token_sha256: &[u8],
        expires_at: Option<i64>,
    ) -> Result<i64, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_tokens (kind, user_id, name, token_sha256, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(kind.as_str())
        .bind(user_id)
        .bind(name)
        .bind(token_sha256)
        .bind(now_micros())
        .bind(expires_at)
        .fetch_one(self.pool())
        .await?;
        Ok(id)
    }

    /// The live (not revoked, not expired) token with this digest.
    pub async fn live_token(&self, token_sha256: &[u8], now: i64) -> Result<Option<ApiToken>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, kind, user_id, name, created_at, expires_at, revoked_at, last_used_at FROM api_tokens \
             WHERE token_sha256 = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(token_sha256)
        .bind(now)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, kind, user_id, name, created_at, expires_at, revoked_at, last_used_at FROM api_tokens \
             WHERE kind = 'integration' ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Revokes a token by id or by name; returns how many were revoked.
    pub async fn revoke_token(&self, id_or_name: &str) -> Result<u64, StoreError> {
        let id: Option<i64> = id_or_name.parse().ok();
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = ? WHERE revoked_at IS NULL AND kind = 'integration' \
             AND (id = ? OR name = ?)",
        )
        .bind(now_micros())
        .bind(id)
        .bind(id_or_name)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes expired session tokens.
    pub async fn purge_expired_sessions(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE kind = 'session' AND expires_at <= ?")
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// A server-wide secret shared by replicas, created on first use.
    pub async fn shared_secret(&self, key: &str, generate: impl FnOnce() -> Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let candidate = generate();
        sqlx::query("INSERT INTO server_settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(&candidate)
            .execute(self.pool())
            .await?;
        Ok(sqlx::query_scalar("SELECT value FROM server_settings WHERE key = ?")
            .bind(key)
            .fetch_one(self.pool())
            .await?)
    }
}
