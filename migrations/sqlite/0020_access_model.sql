-- Access control (issue 19): the model the bridge provisions access controllers from.
--
-- `access_controllers`: what a Security PUSH controller reported about its hardware in its
-- registry/options (lock, reader and aux counts), derived when they are stored.
-- `access_doors`: one row per door of a controller (door number 1-32, a name an operator may
-- change; created from `LockCount`, never deleted because a controller reported fewer).
-- `access_time_segments`: weekly intervals (3 per day) and the intervals of each holiday type,
-- as the JSON of `adms_model::access::WeeklySchedule`; a segment's id is the `TimezoneId` sent
-- to controllers. `access_holidays`: dates with their holiday type, sent to every controller.
-- `access_levels`: a time segment and a set of doors (of any controllers);
-- `access_level_members`: employees of the roster in a level, with an optional validity window
-- (local dates, inclusive).
--
-- What a controller holds is not a table: it is the access commands queued for it and not
-- refused, in queue order (`adms-store/src/access.rs`).
--
-- Expand only (see README.md): new tables; a previous release ignores them.
CREATE TABLE access_controllers (
    device_id     INTEGER PRIMARY KEY REFERENCES devices (id),
    lock_count    INTEGER NOT NULL,
    reader_count  INTEGER,
    aux_in_count  INTEGER,
    aux_out_count INTEGER,
    updated_at    INTEGER NOT NULL
);
CREATE TABLE access_doors (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id  INTEGER NOT NULL REFERENCES devices (id),
    door_no    INTEGER NOT NULL CHECK (door_no BETWEEN 1 AND 32),
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (device_id, door_no)
);
CREATE TABLE access_time_segments (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE,
    schedule   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE access_holidays (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    day          TEXT    NOT NULL UNIQUE,
    name         TEXT    NOT NULL DEFAULT '',
    holiday_type INTEGER NOT NULL CHECK (holiday_type BETWEEN 1 AND 3),
    yearly       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   INTEGER NOT NULL
);
CREATE TABLE access_levels (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL UNIQUE,
    time_segment_id INTEGER NOT NULL REFERENCES access_time_segments (id),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE TABLE access_level_doors (
    level_id INTEGER NOT NULL REFERENCES access_levels (id) ON DELETE CASCADE,
    door_id  INTEGER NOT NULL REFERENCES access_doors (id) ON DELETE CASCADE,
    PRIMARY KEY (level_id, door_id)
);
CREATE INDEX access_level_doors_door ON access_level_doors (door_id);
CREATE TABLE access_level_members (
    level_id    INTEGER NOT NULL REFERENCES access_levels (id) ON DELETE CASCADE,
    employee_id INTEGER NOT NULL REFERENCES employees (id) ON DELETE CASCADE,
    valid_from  TEXT,
    valid_until TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (level_id, employee_id)
);
CREATE INDEX access_level_members_employee ON access_level_members (employee_id);
CREATE INDEX access_levels_segment ON access_levels (time_segment_id);
