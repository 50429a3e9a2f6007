-- Batched delivery (endpoints with batch_max > 1) and secrets encrypted at rest.
--
-- A batch freezes which deliveries travel together: the first claim of an endpoint's due
-- deliveries groups up to batch_max of them under one webhook_batches row, and from then on they
-- are claimed, sent and completed together (each member still fenced by its own lease token),
-- so a retry re-sends the same events. The batch's webhook-id and body are derived from its
-- members' event ids and stored bodies, so the same members always make the same id and the
-- same bytes; nothing about them is stored twice.
CREATE TABLE webhook_batches (
    id          INTEGER PRIMARY KEY,
    endpoint_id INTEGER NOT NULL REFERENCES webhook_endpoints (id),
    created_at  INTEGER NOT NULL
);

-- NULL = sent on its own. Cleared when an operator resends or replays the delivery, which then
-- travels in a new batch (under a new id, since the members differ).
ALTER TABLE webhook_deliveries ADD COLUMN batch_row INTEGER REFERENCES webhook_batches (id);
-- Finds waiting batches (state first: the claim asks for pending ones) and a batch's members.
CREATE INDEX webhook_deliveries_batch ON webhook_deliveries (state, batch_row) WHERE batch_row IS NOT NULL;

-- The webhook-id the attempt was sent under when it carried a batch (NULL: the event's own id).
ALTER TABLE webhook_attempts ADD COLUMN batch_id TEXT;
