-- The outbox invariant, enforced by the database: while any webhook endpoint exists, a punch is
-- stored only together with its `attendance.punch` event (the writer sets `event_id` on every
-- new row and inserts the event in the same transaction).
--
-- This is what lets the punch writer commit a group in ONE round trip to SQLite
-- (`BEGIN IMMEDIATE; INSERT …; COMMIT`) when it last saw no endpoint, instead of asking first:
-- if an endpoint was created meanwhile, the insert fails here, the writer rolls the group back
-- and writes it again with its events. The probe is one lookup in a table of a few rows.
CREATE TRIGGER punches_need_their_event BEFORE INSERT ON punches
WHEN NEW.event_id IS NULL AND EXISTS (SELECT 1 FROM webhook_endpoints WHERE deleted_at IS NULL)
BEGIN
    SELECT RAISE(ABORT, 'punch_event_required: a webhook endpoint exists, the punch needs its event');
END;
