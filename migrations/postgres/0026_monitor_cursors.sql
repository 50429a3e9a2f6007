-- `transaction/monitor` hands out each access event once, exactly, on every engine: a session
-- keeps, per controller, the last `seq` (migration 0024) it handed out. A controller's events
-- are numbered in commit order under its row's lock, so everything up to a number a session
-- has seen is committed; the single id cursor (`cvsecurity_monitor_sessions.cursor_id`, no
-- longer read) could pass an event whose transaction committed after a later one's
-- (PostgreSQL hands out ids at insert).
--
-- Expand only (see README.md): a new table; a previous release ignores it and keeps its id
-- cursor.
CREATE TABLE cvsecurity_monitor_cursors (
    client_id  BIGINT  NOT NULL,
    started_ms BIGINT  NOT NULL,
    device_id  BIGINT  NOT NULL REFERENCES devices (id),
    last_seq   BIGINT  NOT NULL,
    PRIMARY KEY (client_id, started_ms, device_id),
    FOREIGN KEY (client_id, started_ms) REFERENCES cvsecurity_monitor_sessions (client_id, started_ms)
        ON DELETE CASCADE
);
