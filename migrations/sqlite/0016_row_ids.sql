-- `device_users`, `roster_templates` and `user_photos` get a real integer id, as
-- `biometric_templates` did in 0015: sealed values name their row by it (the associated data of
-- a sealed value), and the resealing passes walk by it. Those passes walked SQLite's `rowid`,
-- which PostgreSQL does not have. Existing rows keep their rowid as id, so values sealed
-- under it still open.
--
-- Expand only (see README.md): a column, its backfill, a unique index, and a trigger that gives
-- rows written by a process of the previous release an id too.
ALTER TABLE device_users ADD COLUMN id INTEGER;
UPDATE device_users SET id = rowid;
CREATE UNIQUE INDEX device_users_id ON device_users (id);
CREATE TRIGGER device_users_assign_id AFTER INSERT ON device_users
WHEN NEW.id IS NULL
BEGIN
    UPDATE device_users SET id = NEW.rowid WHERE rowid = NEW.rowid;
END;

ALTER TABLE roster_templates ADD COLUMN id INTEGER;
UPDATE roster_templates SET id = rowid;
CREATE UNIQUE INDEX roster_templates_id ON roster_templates (id);
CREATE TRIGGER roster_templates_assign_id AFTER INSERT ON roster_templates
WHEN NEW.id IS NULL
BEGIN
    UPDATE roster_templates SET id = NEW.rowid WHERE rowid = NEW.rowid;
END;

ALTER TABLE user_photos ADD COLUMN id INTEGER;
UPDATE user_photos SET id = rowid;
CREATE UNIQUE INDEX user_photos_id ON user_photos (id);
CREATE TRIGGER user_photos_assign_id AFTER INSERT ON user_photos
WHEN NEW.id IS NULL
BEGIN
    UPDATE user_photos SET id = NEW.rowid WHERE rowid = NEW.rowid;
END;
