-- `biometric_templates` gets a real integer id. The public id of a template record
-- (`/iclock/api/biodatas/`) has been the table's `rowid`; PostgreSQL has no rowid, so the id
-- becomes a column, and existing rows keep the value they were published under.
--
-- Expand only (see migrations/README.md): a column, its backfill and a unique index. SQLite
-- cannot add a PRIMARY KEY column to a table; the composite primary key stays the natural key
-- of a slot copy.
ALTER TABLE biometric_templates ADD COLUMN id INTEGER;

UPDATE biometric_templates SET id = rowid;

CREATE UNIQUE INDEX biometric_templates_id ON biometric_templates (id);

-- A new row takes its rowid as id: the value the API published before this migration, so the
-- ids of rows inserted after it follow the same sequence. Also keeps ids coming for writers
-- that do not name the column (a process of the previous version during a rolling upgrade).
-- An upsert that updates an existing copy fires no INSERT trigger and keeps its id, as it
-- kept its rowid.
CREATE TRIGGER biometric_templates_assign_id AFTER INSERT ON biometric_templates
WHEN NEW.id IS NULL
BEGIN
    UPDATE biometric_templates SET id = NEW.rowid WHERE rowid = NEW.rowid;
END;
