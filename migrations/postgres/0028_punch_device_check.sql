-- The punch writer's group statement inserts only punches of device rows it has locked in the
-- same statement (`JOIN locked`), and device rows are never deleted (a terminal is deleted by
-- `deleted_at`), so the foreign key from `punches` to `devices` can never fire; it cost a
-- trigger call and a `SELECT … FOR KEY SHARE` on `devices` for every punch inserted: about half
-- of a small group's execution time (`auto_explain`, 1-line uploads from 16 devices; BENCHMARKS.md,
-- session 21). The store's tests check on both engines that a punch names a stored device.
--
-- Contract, safe for a rolling upgrade: a previous release's statements insert the same way and
-- do not rely on the constraint.
ALTER TABLE punches DROP CONSTRAINT punches_device_id_fkey;
