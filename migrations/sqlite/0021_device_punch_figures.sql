-- The console lists every device with its punches today and its clock skew, and a device page
-- shows its recent punches. SQLite has no index led by the device (one costs a quarter of
-- 1-line ingest: BENCHMARKS.md, 2026-12-06), so reading those from `punches` scans the table.
-- Instead the punch writer keeps them in the device row it already writes in every group:
--
-- - `newest_punch_skew`: the newest punch's (by `seq`) time read in the device's zone minus
--   when it was received, in seconds (NULL when the device's zone was unknown);
-- - `newest_punch_local_time`: that punch's wall-clock time, which bounds the device page's
--   read of recent punches to one day of the natural key's index;
-- - `day_started_at` / `day_first_seq`: the start (µs) of the display day the device's first
--   new punch of that day was received in, and that punch's `seq`: "punches today" is
--   `last_seq - day_first_seq + 1` while `day_started_at` is today's start.
--
-- The trigger that advances `last_seq` sets the first two from the same row; the writer sets
-- the day mark before each group's insert (`MARK_DAYS`). Both figures are backfilled from the
-- newest punch of each device in one pass; the day mark starts with the first punch received
-- after the upgrade.
--
-- Expand only (see README.md): new columns with defaults, and a trigger that fills them for
-- writers of a previous release too.
ALTER TABLE devices ADD COLUMN newest_punch_skew INTEGER;
ALTER TABLE devices ADD COLUMN newest_punch_local_time TEXT;
ALTER TABLE devices ADD COLUMN day_started_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN day_first_seq INTEGER NOT NULL DEFAULT 0;

DROP TRIGGER punches_advance_last_seq;
-- As in 0001: `last_seq` kept current inside the inserting statement, now with the newest
-- punch's figures.
CREATE TRIGGER punches_advance_last_seq AFTER INSERT ON punches
BEGIN
    UPDATE devices
    SET last_seq = NEW.seq,
        newest_punch_skew = NEW.utc_time - NEW.received_at / 1000000,
        newest_punch_local_time = NEW.local_time
    WHERE id = NEW.device_id AND last_seq < NEW.seq;
END;

-- One pass over `punches` (SQLite takes a bare column's values from the row of the MAX).
UPDATE devices
SET newest_punch_skew = newest.skew, newest_punch_local_time = newest.local_time
FROM (SELECT device_id, MAX(seq), utc_time - received_at / 1000000 AS skew, local_time
      FROM punches GROUP BY device_id) AS newest
WHERE newest.device_id = devices.id;
