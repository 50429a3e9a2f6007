-- Device trust: what a terminal reports about its users is observed, not obeyed.
--
-- `biometric_templates` stays what each device reported. The templates the roster holds, and
-- pushes to the terminals of an employee's areas, are these: a device's template reaches it only
-- when the `device_users` policy adopts it (from an approved device), or when it was already
-- being pushed before this migration (below).
CREATE TABLE roster_templates (
    pin              TEXT    NOT NULL,
    bio_type         INTEGER NOT NULL,
    bio_no           INTEGER NOT NULL,
    bio_index        INTEGER NOT NULL,
    record_kind      TEXT    NOT NULL,
    valid            INTEGER,
    duress           INTEGER,
    major_ver        INTEGER,
    minor_ver        INTEGER,
    format           TEXT    NOT NULL,
    template         TEXT    NOT NULL,
    -- The device it was adopted from (NULL once that device is gone).
    source_device_id INTEGER REFERENCES devices (id) ON DELETE SET NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (pin, bio_type, bio_no, bio_index)
);

-- Until now every device's newest template of a slot was pushed. Keep what approved devices
-- reported, so an upgrade changes nothing an operator relied on; templates of pending devices
-- were never theirs to spread.
INSERT INTO roster_templates (pin, bio_type, bio_no, bio_index, record_kind, valid, duress, major_ver, minor_ver,
                              format, template, source_device_id, updated_at)
SELECT pin, bio_type, bio_no, bio_index, record_kind, valid, duress, major_ver, minor_ver, format, template,
       device_id, updated_at
FROM (SELECT t.*, row_number() OVER (PARTITION BY t.pin, t.bio_type, t.bio_no, t.bio_index
                                     ORDER BY t.updated_at DESC, t.rowid DESC) AS copy
      FROM biometric_templates AS t JOIN devices AS d ON d.id = t.device_id
      WHERE d.approval = 'approved')
WHERE copy = 1;
