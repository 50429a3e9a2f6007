-- API clients of the CVSecurity-compatible API (issue 19), their monitor sessions, door states: ZKBio CVSecurity's "API
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

-- `transaction/monitor` polling sessions: a client picks a millisecond timestamp on its first
-- poll and sends the same one on every poll; each session hands out the events stored since its
-- previous poll (the first: those received since the timestamp). Kept here, not in memory, so
-- a restart or another replica continues where the session was. Idle sessions are deleted.
CREATE TABLE cvsecurity_monitor_sessions (
    client_id    INTEGER  NOT NULL REFERENCES cvsecurity_clients (id),
    started_ms   INTEGER  NOT NULL,
    cursor_id    INTEGER  NOT NULL DEFAULT 0,
    last_poll_at INTEGER  NOT NULL,
    PRIMARY KEY (client_id, started_ms)
);

-- The last door state each access controller reported (`rtstate`: its hex fields as sent,
-- decoded per door when read), for CVSecurity's door-state calls. The bodies themselves stay in
-- `raw_uploads` as before.
CREATE TABLE access_controller_states (
    device_id   INTEGER  PRIMARY KEY REFERENCES devices (id),
    local_time  TEXT    NOT NULL,
    sensor      TEXT    NOT NULL,
    relay       TEXT    NOT NULL,
    alarm       TEXT    NOT NULL,
    received_at INTEGER  NOT NULL
);
