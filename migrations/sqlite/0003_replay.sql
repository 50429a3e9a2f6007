-- Replay: sending a range of punches again to ONE endpoint.
--
-- A punch stored while no endpoint existed has no event row; replay creates it. Through the
-- fan-out trigger that insert would also queue the event for every other matching endpoint,
-- which did not ask for it. Events inserted with fan_out = 0 are skipped by the trigger; the
-- replay then queues the target endpoint's delivery itself, in the same transaction.
-- Every other writer leaves the column at its default and fans out as before.

ALTER TABLE webhook_events ADD COLUMN fan_out INTEGER NOT NULL DEFAULT 1;

DROP TRIGGER webhook_events_fan_out;

-- Fan-out: one delivery per live endpoint whose type filter matches, due at once.
CREATE TRIGGER webhook_events_fan_out AFTER INSERT ON webhook_events WHEN NEW.fan_out = 1
BEGIN
    INSERT INTO webhook_deliveries (event_row, endpoint_id, next_attempt_at, created_at, updated_at)
    SELECT NEW.id, ep.id, NEW.created_at, NEW.created_at, NEW.created_at
    FROM webhook_endpoints AS ep
    WHERE ep.deleted_at IS NULL
      AND (ep.event_types IS NULL
           OR EXISTS (SELECT 1 FROM json_each(ep.event_types) AS t WHERE t.value = NEW.event_type));
END;
