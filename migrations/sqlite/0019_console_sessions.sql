-- The operator console's sessions (issue 18): a table of their own, not `api_tokens` rows, so
-- that a console cookie is never an API credential and an API token never opens the console.
-- Only the SHA-256 digest of the cookie's token is stored. A session carries its account's
-- `token_version` at login: a password change or a disable moves the account on, which ends
-- the session as it ends the account's JWTs.
--
-- The overview counts punches received in the last hour and day: an index on `received_at`
-- keeps that a range read at millions of punches. The people page shows which terminals hold
-- each employee of a page: an index on `device_users (pin)` finds them without a scan.
--
-- Expand only (see README.md): a new table and indexes; a previous release ignores them.
CREATE TABLE console_sessions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES api_users (id) ON DELETE CASCADE,
    token_sha256  BLOB    NOT NULL UNIQUE,
    token_version INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    ended_at      INTEGER
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
CREATE INDEX punches_received_at ON punches (received_at);
CREATE INDEX device_users_pin ON device_users (pin);
