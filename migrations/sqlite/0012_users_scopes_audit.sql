-- Roles, scopes and the audit log.
--
-- role: what an account may do (admin: everything; operator: read, roster, devices, webhooks;
-- viewer: read). Every account before this migration was the bootstrap administrator.
ALTER TABLE api_users ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'
    CHECK (role IN ('admin', 'operator', 'viewer'));

-- scopes: an integration key's scopes, space-separated (session tokens take their account's
-- role instead, so this stays empty for them). Keys made before scopes existed could do
-- everything the API offered then; they keep exactly that (not the new user management and
-- audit log), so no deployed integration breaks on upgrade. New keys default to `read`.
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
UPDATE api_tokens SET scopes = 'read roster:write devices:control webhooks:admin' WHERE kind = 'integration';

-- One row per state-changing API request (after authentication, whatever its outcome) and per
-- CLI change. No foreign keys: entries outlive the accounts and keys they name.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,            -- µs since the epoch
    actor      TEXT    NOT NULL,            -- user name, key name, or 'cli'
    actor_kind TEXT    NOT NULL CHECK (actor_kind IN ('session', 'jwt', 'basic', 'integration', 'cli')),
    user_id    INTEGER,
    token_id   INTEGER,
    method     TEXT    NOT NULL,            -- HTTP method, or 'CLI'
    route      TEXT    NOT NULL,            -- route template, or the CLI command
    target     TEXT,                        -- the id the path names, or the CLI's argument
    status     INTEGER,                     -- HTTP status; NULL for the CLI
    address    TEXT                         -- client address; NULL for the CLI
);
CREATE INDEX audit_log_newest ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_by_actor ON audit_log (actor, at DESC);
