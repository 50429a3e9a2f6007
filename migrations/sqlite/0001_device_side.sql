-- Device side: terminals, everything they upload, and API credentials.
-- Times: *_at columns are Unix microseconds (UTC); local_time columns are the device's
-- wall-clock text 'YYYY-MM-DD HH:MM:SS'; utc_time is Unix seconds when the zone is known.

CREATE TABLE devices (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    sn               TEXT    NOT NULL UNIQUE,
    alias            TEXT    NOT NULL DEFAULT '',
    -- 'approved' (punches visible and delivered) or 'pending' (stored, held until approved)
    approval         TEXT    NOT NULL DEFAULT 'approved' CHECK (approval IN ('approved', 'pending')),
    protocol_family  TEXT    NOT NULL DEFAULT 'att',
    device_type      TEXT    NOT NULL DEFAULT '',
    model            TEXT    NOT NULL DEFAULT '',
    firmware         TEXT    NOT NULL DEFAULT '',
    push_version     TEXT    NOT NULL DEFAULT '',
    firmware_push_version TEXT NOT NULL DEFAULT '',
    language         TEXT    NOT NULL DEFAULT '',
    ip_address       TEXT    NOT NULL DEFAULT '',
    -- IANA name or fixed offset ('+05:30'); NULL = the server default
    time_zone        TEXT,
    -- WHATWG encoding label for device text; NULL = derived from language
    text_encoding    TEXT,
    user_count       INTEGER,
    fp_count         INTEGER,
    face_count       INTEGER,
    palm_count       INTEGER,
    transaction_count INTEGER,
    fp_algorithm     TEXT    NOT NULL DEFAULT '',
    face_algorithm   TEXT    NOT NULL DEFAULT '',
    attlog_stamp     TEXT    NOT NULL DEFAULT '0',
    operlog_stamp    TEXT    NOT NULL DEFAULT '0',
    attphoto_stamp   TEXT    NOT NULL DEFAULT '0',
    biodata_stamp    TEXT    NOT NULL DEFAULT '0',
    registry_code    TEXT    NOT NULL DEFAULT '',
    -- highest per-device punch sequence number assigned so far
    last_seq         INTEGER NOT NULL DEFAULT 0,
    first_seen_at    INTEGER NOT NULL,
    last_handshake_at INTEGER,
    last_activity_at INTEGER
);

CREATE TABLE device_options (
    device_id   INTEGER NOT NULL REFERENCES devices (id),
    key         TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (device_id, key)
) WITHOUT ROWID;

CREATE TABLE punches (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id    INTEGER NOT NULL REFERENCES devices (id),
    seq          INTEGER NOT NULL,
    pin          TEXT    NOT NULL,
    local_time   TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    verify       INTEGER NOT NULL,
    work_code    TEXT    NOT NULL,
    extra        TEXT    NOT NULL,
    time_zone    TEXT,
    utc_time     INTEGER,
    mask_flag    INTEGER,
    temperature  REAL,
    raw_line     TEXT    NOT NULL,
    received_at  INTEGER NOT NULL
);
-- The natural key: a re-sent punch is the same punch. Time comes first because punches arrive
-- roughly in time order, from every device at once: new entries land on the last few pages of
-- the index instead of one page per device, so a group commit writes a handful of pages (this
-- alone is +30 % on realtime ingest), and the same index serves time-range queries.
CREATE UNIQUE INDEX punches_natural_key ON punches (local_time, device_id, pin, state, verify, work_code);
-- `seq` (per-device, gapless) is assigned by the punch writer from devices.last_seq; this trigger
-- keeps last_seq current inside the inserting statement. (An index on (device_id, seq) would
-- cost one scattered page per device per commit, halving realtime ingest; nothing looks punches
-- up by seq yet.) With a trigger on the table SQLite evaluates an INSERT's SELECT completely
-- before inserting, so every new row's seq is computed from last_seq as it was before the
-- statement.
CREATE TRIGGER punches_advance_last_seq AFTER INSERT ON punches
BEGIN
    UPDATE devices SET last_seq = NEW.seq WHERE id = NEW.device_id AND last_seq < NEW.seq;
END;

-- Lines that could not be parsed, from any table, kept raw with the reason.
CREATE TABLE rejected_lines (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id    INTEGER NOT NULL REFERENCES devices (id),
    table_name   TEXT    NOT NULL,
    line_no      INTEGER NOT NULL,
    raw          BLOB    NOT NULL,
    raw_sha256   BLOB    NOT NULL,
    reason       TEXT    NOT NULL,
    seen_count   INTEGER NOT NULL DEFAULT 1,
    first_seen_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX rejected_lines_dedup ON rejected_lines (device_id, table_name, raw_sha256);

-- Whole request bodies kept as received: unknown tables, access-control state, registry bodies.
CREATE TABLE raw_uploads (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id    INTEGER REFERENCES devices (id),
    sn           TEXT    NOT NULL,
    endpoint     TEXT    NOT NULL,
    table_name   TEXT    NOT NULL,
    query        TEXT    NOT NULL,
    body         BLOB    NOT NULL,
    body_sha256  BLOB    NOT NULL,
    seen_count   INTEGER NOT NULL DEFAULT 1,
    received_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX raw_uploads_dedup ON raw_uploads (sn, endpoint, table_name, body_sha256);

CREATE TABLE operation_logs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id    INTEGER NOT NULL REFERENCES devices (id),
    op_code      INTEGER NOT NULL,
    operator     TEXT    NOT NULL,
    local_time   TEXT    NOT NULL,
    obj1         TEXT    NOT NULL,
    obj2         TEXT    NOT NULL,
    obj3         TEXT    NOT NULL,
    obj4         TEXT    NOT NULL,
    raw_line     BLOB    NOT NULL,
    received_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX operation_logs_natural_key
    ON operation_logs (device_id, op_code, operator, local_time, obj1, obj2, obj3, obj4);

-- The roster as each device reports it (OPERLOG USER lines).
CREATE TABLE device_users (
    device_id    INTEGER NOT NULL REFERENCES devices (id),
    pin          TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    -- the name bytes when they did not decode cleanly in the device's encoding
    name_raw     BLOB,
    privilege    INTEGER,
    password     TEXT    NOT NULL,
    card         TEXT    NOT NULL,
    group_no     TEXT    NOT NULL,
    time_zones   TEXT    NOT NULL,
    verify       INTEGER,
    vice_card    TEXT    NOT NULL,
    raw_line     BLOB    NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (device_id, pin)
);

-- Biometric templates exactly as received (FP, FACE, FVEIN, BIODATA).
CREATE TABLE biometric_templates (
    device_id    INTEGER NOT NULL REFERENCES devices (id),
    pin          TEXT    NOT NULL,
    bio_type     INTEGER NOT NULL,
    bio_no       INTEGER NOT NULL,
    bio_index    INTEGER NOT NULL,
    record_kind  TEXT    NOT NULL,
    valid        INTEGER,
    duress       INTEGER,
    major_ver    INTEGER,
    minor_ver    INTEGER,
    format       TEXT    NOT NULL,
    size         INTEGER,
    template     TEXT    NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (device_id, pin, bio_type, bio_no, bio_index)
);

-- USERPIC / BIOPHOTO (base64 JPEG as received, or a URL).
CREATE TABLE user_photos (
    device_id    INTEGER NOT NULL REFERENCES devices (id),
    pin          TEXT    NOT NULL,
    record_kind  TEXT    NOT NULL,
    photo_type   INTEGER NOT NULL,
    file_name    TEXT    NOT NULL,
    size         INTEGER,
    content      TEXT    NOT NULL,
    url          TEXT    NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (device_id, pin, record_kind, photo_type)
);

-- Records of kinds not modelled yet (IDCARD, WORKCODE, ERRORLOG, ...), one row per line.
CREATE TABLE device_records (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id    INTEGER NOT NULL REFERENCES devices (id),
    table_name   TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    raw_line     BLOB    NOT NULL,
    raw_sha256   BLOB    NOT NULL,
    received_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX device_records_dedup ON device_records (device_id, table_name, raw_sha256);

-- Attendance photos (binary JPEG), linked to the punch when one matches.
CREATE TABLE att_photos (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id    INTEGER NOT NULL REFERENCES devices (id),
    file_name    TEXT    NOT NULL,
    pin          TEXT,
    local_time   TEXT,
    punch_id     INTEGER REFERENCES punches (id),
    image        BLOB    NOT NULL,
    received_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX att_photos_file ON att_photos (device_id, file_name);

-- Security PUSH real-time access events (rtlog).
CREATE TABLE access_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id    INTEGER NOT NULL REFERENCES devices (id),
    local_time   TEXT    NOT NULL,
    pin          TEXT    NOT NULL,
    card_no      TEXT    NOT NULL,
    door         INTEGER,
    event_code   INTEGER,
    in_out       INTEGER,
    verify_type  TEXT    NOT NULL,
    raw_line     BLOB    NOT NULL,
    raw_sha256   BLOB    NOT NULL,
    received_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX access_events_dedup ON access_events (device_id, raw_sha256);

-- Commands queued for devices (filled by the command-queue work; results already stored).
CREATE TABLE device_commands (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id    INTEGER NOT NULL REFERENCES devices (id),
    command      TEXT    NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'queued',
    created_at   INTEGER NOT NULL,
    sent_at      INTEGER,
    completed_at INTEGER,
    return_code  INTEGER
);

-- Every result a device posts to /iclock/devicecmd, matched or not.
CREATE TABLE command_results (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id    INTEGER NOT NULL REFERENCES devices (id),
    command_id   TEXT    NOT NULL,
    return_code  INTEGER,
    cmd          TEXT    NOT NULL,
    head         BLOB    NOT NULL,
    payload      BLOB    NOT NULL,
    received_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX command_results_dedup ON command_results (device_id, command_id, head);

CREATE TABLE api_users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    is_superuser  INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL
);

-- Session tokens (from login) and integration keys (from the CLI); only SHA-256 hashes stored.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT    NOT NULL CHECK (kind IN ('session', 'integration')),
    user_id      INTEGER REFERENCES api_users (id),
    name         TEXT    NOT NULL,
    token_sha256 BLOB    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
);

-- Server-wide secrets and settings that every replica must share (the JWT signing key).
CREATE TABLE server_settings (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
