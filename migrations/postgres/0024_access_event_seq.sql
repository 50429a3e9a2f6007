-- A SIEM pulls an access controller's events with a gapless cursor, as an ERP pulls a
-- terminal's punches (`GET /api/v1/devices/{sn}/access-events?after_seq=`): each stored `rtlog`
-- event gets `seq`, 1, 2, 3… per controller in commit order, and the controller's row keeps the
-- last one (`access_last_seq`). See `sqlite/0024_access_event_seq.sql`.
--
-- The statement trigger numbers the rows each insert added (a re-sent line, `ON CONFLICT DO
-- NOTHING`, adds none and takes no number), for writers of a previous release too. It advances
-- the controller's row, whose lock is then held until the transaction commits: a second
-- transaction of the same controller waits for it, so numbers follow commit order and a reader
-- that saw `seq` N never later finds a new N - 1.
--
-- Expand only (see README.md): a nullable column, a column with a default, a trigger, indexes.
ALTER TABLE access_events ADD COLUMN seq BIGINT;
ALTER TABLE devices ADD COLUMN access_last_seq BIGINT NOT NULL DEFAULT 0;

UPDATE access_events AS ev SET seq = numbered.rn
FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY device_id ORDER BY id) AS rn FROM access_events) AS numbered
WHERE numbered.id = ev.id;

UPDATE devices AS d SET access_last_seq = counted.n
FROM (SELECT device_id, COUNT(*) AS n FROM access_events GROUP BY device_id) AS counted
WHERE counted.device_id = d.id;

CREATE UNIQUE INDEX access_events_device_seq ON access_events (device_id, seq);
CREATE INDEX access_events_pin_time ON access_events (pin, local_time);
CREATE INDEX access_events_local_time ON access_events (local_time);

CREATE FUNCTION access_events_number() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH counted AS (
        SELECT device_id, COUNT(*) AS n FROM new_access_events GROUP BY device_id
    ), advanced AS (
        UPDATE devices AS d SET access_last_seq = d.access_last_seq + counted.n
        FROM counted WHERE d.id = counted.device_id
        RETURNING d.id AS device_id, d.access_last_seq - counted.n AS base
    )
    UPDATE access_events AS ev SET seq = advanced.base + numbered.rn
    FROM (SELECT id, device_id, ROW_NUMBER() OVER (PARTITION BY device_id ORDER BY id) AS rn
          FROM new_access_events) AS numbered
    JOIN advanced ON advanced.device_id = numbered.device_id
    WHERE ev.id = numbered.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER access_events_number AFTER INSERT ON access_events
    REFERENCING NEW TABLE AS new_access_events FOR EACH STATEMENT EXECUTE FUNCTION access_events_number();
