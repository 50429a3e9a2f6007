-- The console lists every device with its punches today and its clock skew, and a device page
-- shows its recent punches; the punch writer keeps those figures in the device row it already
-- updates in every group (`WRITE_GROUP`), so the list reads no punches (see
-- `sqlite/0021_device_punch_figures.sql`, where that matters most, for each column):
-- `newest_punch_skew` and `newest_punch_local_time` from the newest punch by `seq`,
-- `day_started_at` / `day_first_seq` the device's first new punch of the display day.
--
-- Backfilled from each device's newest punch (`punches_device_seq` finds it); the day mark
-- starts with the first punch received after the upgrade.
--
-- Expand only (see README.md): new columns with defaults. A previous release's writer leaves
-- them as they were (during a rolling upgrade, the figures follow the new release's writes).
ALTER TABLE devices ADD COLUMN newest_punch_skew BIGINT;
ALTER TABLE devices ADD COLUMN newest_punch_local_time TEXT;
ALTER TABLE devices ADD COLUMN day_started_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN day_first_seq BIGINT NOT NULL DEFAULT 0;

UPDATE devices AS d
SET newest_punch_skew = p.utc_time - p.received_at / 1000000, newest_punch_local_time = p.local_time
FROM punches AS p
WHERE p.device_id = d.id AND p.seq = d.last_seq;
