//! API accounts and tokens. Passwords arrive already hashed (argon2, by the server); tokens are
//! stored as SHA-256 digests only, so a database leak reveals no usable credential.
//!
//! Tokens end with the account state they were issued under: a password change or a disabled
//! account bumps `token_version` (which every JWT carries, so older JWTs are refused) and revokes
//! the account's session tokens in the same transaction; [`Store::live_token`] also refuses a
//! session whose account is missing or disabled.

// Session tokens come from a login and expire; integration keys are created by an operator and
// live until revoked.
use adms_model::TokenKind;
use sqlx::FromRow;

use crate::{Store, StoreError, now_micros};

/// An API account.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct ApiUser {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    /// Carried by the account's JWTs; a JWT with another version is refused.
    pub token_version: i64,
    /// When the account was disabled (it cannot log in, none of its tokens is accepted).
    pub disabled_at: Option<i64>,
    /// `admin`, `operator` or `viewer` (see [`ROLES`]).
    pub role: String,
    /// Made by `ADMS_ADMIN_USER` at start.
    pub bootstrap: bool,
    pub created_at: i64,
}

/// The roles an account can have.
pub const ROLES: [&str; 3] = ["admin", "operator", "viewer"];

/// What [`Store::update_user`] changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChange {
    pub role: Option<String>,
    /// A new argon2 hash: ends the account's sessions and JWTs.
    pub password_hash: Option<String>,
    /// `Some(true)` disables the account (ending its sessions and JWTs), `Some(false)` enables it.
    pub disabled: Option<bool>,
}

/// Why a user change was refused.
pub const LAST_ADMIN: &str = "the last enabled admin cannot be disabled, demoted or deleted";

/// What [`Store::bootstrap_user`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapOutcome {
    pub user_id: i64,
    /// The password hash changed (the account's tokens were ended).
    pub password_changed: bool,
    /// Previous bootstrap accounts disabled now (their tokens ended), by name.
    pub disabled: Vec<String>,
}

/// How often a token's `last_used_at` is written at most.
const TOUCH_INTERVAL_MICROS: i64 = 60_000_000;

/// A token row (never the token itself).
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    pub kind: TokenKind,
    pub user_id: Option<i64>,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// An integration key's scopes, space-separated (empty for session tokens, which take their
    /// account's role).
    pub scopes: String,
}

impl Store {
    /// Creates the account or replaces its password hash. A different hash is a password change:
    /// the account's `token_version` moves on (its JWTs are refused) and its session tokens are
    /// revoked, in the same transaction. The same hash again changes nothing. A disabled account
    /// stays disabled.
    pub async fn upsert_user(&self, username: &str, password_hash: &str) -> Result<i64, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let (id, _) = dialect::upsert_api_user_in(&mut tx, username, password_hash).await?;
            tx.commit().await?;
            Ok(id)
        })
    }

    /// The account named by `ADMS_ADMIN_USER` at start: created or given this password hash
    /// (a different hash ends its tokens, as [`Store::upsert_user`]), marked as the bootstrap
    /// account, enabled and made an admin; every other bootstrap account (the name used before a rename) is
    /// disabled and its tokens ended. One transaction, so a rename never leaves both usable.
    ///
    /// The caller passes the stored hash back when the configured password still matches it:
    /// hashing anew gives another salt, which would look like a change and end every session at
    /// every restart.
    pub async fn bootstrap_user(&self, username: &str, password_hash: &str) -> Result<BootstrapOutcome, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let (user_id, password_changed) = dialect::upsert_api_user_in(&mut tx, username, password_hash).await?;
            // The configured account is the way back in: enabled and an admin again at every start,
            // whatever was changed over the API.
            sqlx::query("UPDATE api_users SET bootstrap = TRUE, disabled_at = NULL, role = 'admin' WHERE id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            let now = now_micros();
            let disabled: Vec<(i64, String)> = sqlx::query_as(
                "UPDATE api_users SET disabled_at = $1, token_version = token_version + 1 \
                 WHERE bootstrap AND id <> $2 AND disabled_at IS NULL RETURNING id, username",
            )
            .bind(now)
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await?;
            for (id, _) in &disabled {
                dialect::revoke_sessions_in(&mut tx, *id, now).await?;
            }
            tx.commit().await?;
            Ok(BootstrapOutcome {
                user_id,
                password_changed,
                disabled: disabled.into_iter().map(|(_, name)| name).collect(),
            })
        })
    }

    /// The account, disabled or not (callers check `disabled_at`).
    pub async fn user_by_name(&self, username: &str) -> Result<Option<ApiUser>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_as(
                "SELECT id, username, password_hash, token_version, disabled_at, role, bootstrap, created_at FROM api_users WHERE username = $1",
            )
            .bind(username)
            .fetch_optional(db.pool())
            .await?)
        })
    }

    /// The account, disabled or not (callers check `disabled_at`).
    pub async fn user_by_id(&self, id: i64) -> Result<Option<ApiUser>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_as(
                "SELECT id, username, password_hash, token_version, disabled_at, role, bootstrap, created_at FROM api_users WHERE id = $1",
            )
                .bind(id)
                .fetch_optional(db.pool())
                .await?)
        })
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
        on_db!(self, |db| {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO api_tokens (kind, user_id, name, token_sha256, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(kind)
            .bind(user_id)
            .bind(name)
            .bind(token_sha256)
            .bind(now_micros())
            .bind(expires_at)
            .fetch_one(db.pool())
            .await?;
            Ok(id)
        })
    }

    /// The live (not revoked, not expired) token with this digest. A token of an account that
    /// no longer exists or is disabled is not live, even if it was never revoked.
    pub async fn live_token(&self, token_sha256: &[u8], now: i64) -> Result<Option<ApiToken>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_as(
                "SELECT t.id, t.kind, t.user_id, t.name, t.created_at, t.expires_at, t.revoked_at, t.last_used_at, t.scopes \
                 FROM api_tokens AS t LEFT JOIN api_users AS u ON u.id = t.user_id \
                 WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2) \
                 AND (t.user_id IS NULL OR (u.id IS NOT NULL AND u.disabled_at IS NULL))",
            )
            .bind(token_sha256)
            .bind(now)
            .fetch_optional(db.pool())
            .await?)
        })
    }

    pub async fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_as(
                "SELECT id, kind, user_id, name, created_at, expires_at, revoked_at, last_used_at, scopes FROM api_tokens \
                 WHERE kind = 'integration' ORDER BY id",
            )
            .fetch_all(db.pool())
            .await?)
        })
    }

    /// Revokes an integration key in force by its id or its name (names are unique among the
    /// keys in force; a number that is the id of such a key names that key); returns how many
    /// were revoked (0 or 1).
    pub async fn revoke_token(&self, id_or_name: &str) -> Result<u64, StoreError> {
        on_db!(self, |db| {
            let id: Option<i64> = id_or_name.parse().ok();
            let done = sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE id = (\
                 SELECT id FROM api_tokens WHERE revoked_at IS NULL AND kind = 'integration' \
                 AND (id = $2 OR name = $3) ORDER BY CASE WHEN id = $2 THEN 0 ELSE 1 END LIMIT 1)",
            )
            .bind(now_micros())
            .bind(id)
            .bind(id_or_name)
            .execute(db.pool())
            .await?;
            Ok(done.rows_affected())
        })
    }

    /// Stores a new integration key by its digest, with its scopes (space-separated) and an
    /// optional expiry. Its name must not be taken by another key in force: that is a
    /// [`StoreError::Conflict`].
    pub async fn create_integration_token(
        &self,
        name: &str,
        token_sha256: &[u8],
        scopes: &str,
        expires_at: Option<i64>,
    ) -> Result<i64, StoreError> {
        on_db!(self, |db| {
            let created = sqlx::query_scalar(
                "INSERT INTO api_tokens (kind, user_id, name, token_sha256, created_at, scopes, expires_at) \
                 VALUES ('integration', NULL, $1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(name)
            .bind(token_sha256)
            .bind(now_micros())
            .bind(scopes)
            .bind(expires_at)
            .fetch_one(db.pool())
            .await;
            match created {
                Ok(id) => Ok(id),
                // The digest is unique too, but of 32 random bytes: the name is what collides.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    Err(StoreError::Conflict(format!("an integration key named '{name}' exists (names are unique)")))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Records that a token was used at `now`, at most once a minute per token: `last_used`
    /// is what the caller read with the token ([`Store::live_token`]), and a use within a minute
    /// of it writes nothing.
    pub async fn touch_token(&self, id: i64, last_used: Option<i64>, now: i64) -> Result<(), StoreError> {
        if last_used.is_some_and(|at| now.saturating_sub(at) < TOUCH_INTERVAL_MICROS) {
            return Ok(());
        }
        on_db!(self, |db| {
            sqlx::query(
                "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at <= $3)",
            )
            .bind(now)
            .bind(id)
            .bind(now.saturating_sub(TOUCH_INTERVAL_MICROS))
            .execute(db.pool())
            .await?;
            Ok(())
        })
    }

    /// Every account, by id.
    pub async fn list_users(&self) -> Result<Vec<ApiUser>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_as(
                "SELECT id, username, password_hash, token_version, disabled_at, role, bootstrap, created_at \
                 FROM api_users ORDER BY id",
            )
            .fetch_all(db.pool())
            .await?)
        })
    }

    /// Creates an account; `None` when the name is taken.
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        role: &str,
    ) -> Result<Option<ApiUser>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_as(
                "INSERT INTO api_users (username, password_hash, created_at, role) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (username) DO NOTHING \
                 RETURNING id, username, password_hash, token_version, disabled_at, role, bootstrap, created_at",
            )
            .bind(username)
            .bind(password_hash)
            .bind(now_micros())
            .bind(role)
            .fetch_optional(db.pool())
            .await?)
        })
    }

    /// Changes an account in one transaction; `None` when there is no such account. A new
    /// password or a disable moves `token_version` on and revokes the account's sessions (as
    /// [`Store::upsert_user`] does). Refused with [`StoreError::Conflict`] ([`LAST_ADMIN`]) when
    /// no enabled admin would remain.
    pub async fn update_user(&self, id: i64, change: &UserChange) -> Result<Option<ApiUser>, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let now = now_micros();
            let Some(before) = dialect::user_by_id_in(&mut tx, id).await? else { return Ok(None) };
            if let Some(role) = &change.role {
                sqlx::query("UPDATE api_users SET role = $1 WHERE id = $2")
                    .bind(role)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut end_tokens = false;
            if let Some(hash) = &change.password_hash
                && *hash != before.password_hash
            {
                sqlx::query("UPDATE api_users SET password_hash = $1 WHERE id = $2")
                    .bind(hash)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                end_tokens = true;
            }
            match change.disabled {
                Some(true) if before.disabled_at.is_none() => {
                    sqlx::query("UPDATE api_users SET disabled_at = $1 WHERE id = $2")
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    end_tokens = true;
                }
                Some(false) => {
                    sqlx::query("UPDATE api_users SET disabled_at = NULL WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                _ => {}
            }
            if end_tokens {
                sqlx::query("UPDATE api_users SET token_version = token_version + 1 WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                dialect::revoke_sessions_in(&mut tx, id, now).await?;
            }
            dialect::ensure_an_admin_remains(&mut tx).await?;
            let after = dialect::user_by_id_in(&mut tx, id).await?;
            tx.commit().await?;
            Ok(after)
        })
    }

    /// Deletes an account and its session tokens; `false` when there is no such account.
    /// Refused like [`Store::update_user`] when it is the last enabled admin.
    pub async fn delete_user(&self, id: i64) -> Result<bool, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            sqlx::query("DELETE FROM api_tokens WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM console_sessions WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
            let done = sqlx::query("DELETE FROM api_users WHERE id = $1").bind(id).execute(&mut *tx).await?;
            dialect::ensure_an_admin_remains(&mut tx).await?;
            tx.commit().await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Deletes expired session tokens.
    pub async fn purge_expired_sessions(&self, now: i64) -> Result<u64, StoreError> {
        on_db!(self, |db| {
            let done = sqlx::query("DELETE FROM api_tokens WHERE kind = 'session' AND expires_at <= $1")
                .bind(now)
                .execute(db.pool())
                .await?;
            Ok(done.rows_affected())
        })
    }

    /// A server-wide setting, if stored.
    pub async fn server_setting(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_scalar("SELECT value FROM server_settings WHERE key = $1")
                .bind(key)
                .fetch_optional(db.pool())
                .await?)
        })
    }

    /// Replaces a server-wide setting only while it still holds `current` (re-sealing under a
    /// new key, racing nobody's write); false when it changed meanwhile.
    pub async fn replace_server_setting(&self, key: &str, current: &[u8], new: &[u8]) -> Result<bool, StoreError> {
        on_db!(self, |db| {
            let done = sqlx::query("UPDATE server_settings SET value = $1 WHERE key = $2 AND value = $3")
                .bind(new)
                .bind(key)
                .bind(current)
                .execute(db.pool())
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// A server-wide secret shared by replicas, created on first use.
    pub async fn shared_secret(&self, key: &str, generate: impl FnOnce() -> Vec<u8>) -> Result<Vec<u8>, StoreError> {
        on_db!(self, |db| {
            let candidate = generate();
            sqlx::query("INSERT INTO server_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(&candidate)
                .execute(db.pool())
                .await?;
            Ok(sqlx::query_scalar("SELECT value FROM server_settings WHERE key = $1")
                .bind(key)
                .fetch_one(db.pool())
                .await?)
        })
    }
}

dual! {
    /// Inserts the account or sets its hash; returns its id and whether the hash changed (then its
    /// token version moved on and its sessions were revoked).
    pub(crate) async fn upsert_api_user_in(
        tx: &mut Conn,
        username: &str,
        password_hash: &str,
    ) -> Result<(i64, bool), StoreError> {
        // Inserted first when new; otherwise the row is read locked (PostgreSQL; SQLite's write
        // transaction holds the database), so processes starting together with the same
        // account take turns instead of failing on the unique name.
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO api_users (username, password_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (username) DO NOTHING RETURNING id",
        )
        .bind(username)
        .bind(password_hash)
        .bind(now_micros())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = inserted {
            return Ok((id, false));
        }
        let (id, hash): (i64, String) =
            sqlx::query_as(concat!("SELECT id, password_hash FROM api_users WHERE username = $1", for_update!()))
                .bind(username)
                .fetch_one(&mut *tx)
                .await?;
        if hash == password_hash {
            return Ok((id, false));
        }
        sqlx::query("UPDATE api_users SET password_hash = $1, token_version = token_version + 1 WHERE id = $2")
            .bind(password_hash)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        dialect::revoke_sessions_in(tx, id, now_micros()).await?;
        Ok((id, true))
    }

    /// Revokes every live session token of the account (integration keys are not tied to one).
    pub(crate) async fn revoke_sessions_in(tx: &mut Conn, user_id: i64, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND kind = 'session' AND revoked_at IS NULL")
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    pub(crate) async fn user_by_id_in(tx: &mut Conn, id: i64) -> Result<Option<ApiUser>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, username, password_hash, token_version, disabled_at, role, bootstrap, created_at \
             FROM api_users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?)
    }

    /// Checked after a change, inside its transaction: returning the error drops (rolls back) it,
    /// so nobody can lock every administrator out, whatever the order of concurrent changes
    /// (`BEGIN IMMEDIATE` serialises them).
    pub(crate) async fn ensure_an_admin_remains(tx: &mut Conn) -> Result<(), StoreError> {
        let admins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_users WHERE role = 'admin' AND disabled_at IS NULL")
            .fetch_one(&mut *tx)
            .await?;
        if admins == 0 { Err(StoreError::Conflict(LAST_ADMIN.to_owned())) } else { Ok(()) }
    }
}
