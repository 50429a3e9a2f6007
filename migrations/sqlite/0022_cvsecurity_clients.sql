-- API clients of the CVSecurity-compatible API (issue 19): ZKBio CVSecurity's "API
-- Authorization" clients, whose secret is the `access_token` query parameter. A table of their
-- own, not `api_tokens` rows, so that such a token opens the CVSecurity routes and nothing else,
-- and no other credential opens them (a token in a URL ends up in proxy logs; it must not be an
-- API key). Only the SHA-256 digest of the token is stored. `may_write`: the client may change
-- level memberships, sync levels and open doors; without it, it may only read.
--
-- Expand only (see README.md): a new table; a previous release ignores it.
CREATE TABLE cvsecurity_clients (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL,
    token_sha256 BLOB    NOT NULL UNIQUE,
    may_write    BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_used_at INTEGER
);
-- Names are unique among the clients in force, so `token revoke --kind cvsecurity NAME` names one.
CREATE UNIQUE INDEX cvsecurity_clients_live_name ON cvsecurity_clients (name) WHERE revoked_at IS NULL;
