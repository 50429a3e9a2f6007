-- Webhook fan-out: a transactional outbox. The database is the only queue.
--
-- An event row holds the exact bytes that are sent and signed. A trigger on webhook_events
-- creates one delivery per matching endpoint in the same statement, so whoever inserts an event
-- (the punch writer, device and roster changes) fans it out atomically with its cause.
-- Times are Unix microseconds, like every other *_at column.

CREATE TABLE webhook_endpoints (
    id            INTEGER PRIMARY KEY,
    -- public id, 'ep_' + random
    uid           TEXT    NOT NULL UNIQUE,
    url           TEXT    NOT NULL,
    description   TEXT    NOT NULL DEFAULT '',
    -- JSON array of event types; NULL = every type
    event_types   TEXT,
    -- NULL = active; 'manual' (operator) or 'gone' (the receiver answered 410). Paused endpoints
    -- keep accumulating deliveries; they are only not attempted.
    paused_reason TEXT,
    -- 'api' or 'env' (the endpoint ADMS_WEBHOOK_URL manages)
    source        TEXT    NOT NULL DEFAULT 'api',
    timeout_ms    INTEGER NOT NULL DEFAULT 15000,
    -- events per request (1 = one event per request, the Standard Webhooks default)
    batch_max     INTEGER NOT NULL DEFAULT 1,
    -- 1 = deliver each device's events in seq order (head-of-line blocking per device)
    ordered       INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    -- deleted endpoints stop accumulating; their history stays
    deleted_at    INTEGER
);

-- Signing secrets. A signing key must be usable for HMAC, so it cannot be hashed: it is stored
-- as the whsec_ text and never returned by the API after creation or rotation.
CREATE TABLE webhook_secrets (
    id          INTEGER PRIMARY KEY,
    endpoint_id INTEGER NOT NULL REFERENCES webhook_endpoints (id),
    secret      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    -- NULL = current; set on rotation: requests carry both signatures until then
    expires_at  INTEGER
);
CREATE INDEX webhook_secrets_endpoint ON webhook_secrets (endpoint_id);

CREATE TABLE webhook_events (
    id           INTEGER PRIMARY KEY,
    -- 'evt_' + 26 base32 characters derived from the cause (for punches: the natural key), so a
    -- re-upload, restart or replay carries the same webhook-id; also the webhook-id header
    event_id     TEXT    NOT NULL UNIQUE,
    event_type   TEXT    NOT NULL,
    device_id    INTEGER REFERENCES devices (id),
    punch_id     INTEGER REFERENCES punches (id),
    seq          INTEGER,
    occurred_at  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    -- canonical JSON: exactly the bytes sent and signed
    body         BLOB    NOT NULL
);
CREATE INDEX webhook_events_device_seq ON webhook_events (device_id, seq);

CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY,
    event_row        INTEGER NOT NULL REFERENCES webhook_events (id),
    endpoint_id      INTEGER NOT NULL REFERENCES webhook_endpoints (id),
    -- pending | in_flight | succeeded | exhausted | cancelled
    state            TEXT    NOT NULL DEFAULT 'pending',
    attempt_count    INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    first_attempt_at INTEGER,
    -- fencing token: bumped on every claim; a completion must present the one it claimed with
    lease_token      INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_status      INTEGER,
    last_error       TEXT,
    succeeded_at     INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (event_row, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (lease_expires_at) WHERE state = 'in_flight';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, state);

CREATE TABLE webhook_attempts (
    id            INTEGER PRIMARY KEY,
    delivery_id   INTEGER NOT NULL REFERENCES webhook_deliveries (id),
    attempt_no    INTEGER NOT NULL,
    lease_token   INTEGER NOT NULL,
    -- scheduled | manual | replay | lease_expired
    trigger_kind  TEXT    NOT NULL,
    worker        TEXT    NOT NULL,
    started_at    INTEGER NOT NULL,
    duration_us   INTEGER,
    http_status   INTEGER,
    -- NULL on success; timeout | connect | dns | tls | blocked_address | redirect | http | ...
    error_kind    TEXT,
    error         TEXT,
    -- the first 20 KiB of the response body
    response_body BLOB,
    -- 0 when the completion was fenced out (a newer claim owns the delivery)
    accepted      INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id);

-- Fan-out: one delivery per live endpoint whose type filter matches, due at once.
CREATE TRIGGER webhook_events_fan_out AFTER INSERT ON webhook_events
BEGIN
    INSERT INTO webhook_deliveries (event_row, endpoint_id, next_attempt_at, created_at, updated_at)
    SELECT NEW.id, ep.id, NEW.created_at, NEW.created_at, NEW.created_at
    FROM webhook_endpoints AS ep
    WHERE ep.deleted_at IS NULL
      AND (ep.event_types IS NULL
           OR EXISTS (SELECT 1 FROM json_each(ep.event_types) AS t WHERE t.value = NEW.event_type));
END;

-- The punch's webhook id, computed by the writer from the natural key.
ALTER TABLE punches ADD COLUMN event_id TEXT;
