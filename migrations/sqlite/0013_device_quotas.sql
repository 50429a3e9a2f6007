-- Bytes each device stored per UTC day of the kinds that have a daily quota: 'raw' (raw
-- uploads of unknown tables, device_records) and 'photo' (attendance photos, user photos).
-- Updated in the transaction that stores the data, so usage and data never disagree.
CREATE TABLE device_quota_usage (
    device_id INTEGER NOT NULL REFERENCES devices (id),
    day       INTEGER NOT NULL, -- days since 1970-01-01, UTC
    kind      TEXT    NOT NULL CHECK (kind IN ('raw', 'photo')),
    bytes     INTEGER NOT NULL,
    PRIMARY KEY (device_id, day, kind)
) WITHOUT ROWID;
