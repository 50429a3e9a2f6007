-- A SIEM pulls an access controller's events with a gapless cursor, as an ERP pulls a
-- terminal's punches (`GET /api/v1/devices/{sn}/access-events?after_seq=`): each stored `rtlog`
-- event gets `seq`, 1, 2, 3… per controller in commit order, and the controller's row keeps the
-- last one (`access_last_seq`).
--
-- The trigger numbers every inserted row, so writers of a previous release (which do not know
-- the column) number their rows too during a rolling upgrade; a re-sent line (`ON CONFLICT DO
-- NOTHING`) inserts nothing and takes no number. SQLite has one writer: a row's number is its
-- commit order. `seq` stays NULL only between the insert and the trigger.
--
-- Also the indexes the CVSecurity transaction filters use: by person, and by the controller's
-- wall-clock time.
--
-- Expand only (see README.md): a nullable column, a column with a default, a trigger, indexes.
ALTER TABLE access_events ADD COLUMN seq INTEGER;
ALTER TABLE devices ADD COLUMN access_last_seq INTEGER NOT NULL DEFAULT 0;

UPDATE access_events SET seq = numbered.rn
FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY device_id ORDER BY id) AS rn FROM access_events) AS numbered
WHERE numbered.id = access_events.id;

UPDATE devices SET access_last_seq = counted.n
FROM (SELECT device_id, COUNT(*) AS n FROM access_events GROUP BY device_id) AS counted
WHERE counted.device_id = devices.id;

CREATE UNIQUE INDEX access_events_device_seq ON access_events (device_id, seq);
CREATE INDEX access_events_pin_time ON access_events (pin, local_time);
CREATE INDEX access_events_local_time ON access_events (local_time);

CREATE TRIGGER access_events_number AFTER INSERT ON access_events
BEGIN
    UPDATE devices SET access_last_seq = access_last_seq + 1 WHERE id = NEW.device_id;
    UPDATE access_events SET seq = (SELECT access_last_seq FROM devices WHERE id = NEW.device_id)
    WHERE id = NEW.id;
END;
