-- An attempt row is written only by the completion transaction that has just moved (or been
-- refused by) the delivery it names, and delivery rows are never deleted, so the foreign key
-- from `webhook_attempts` to `webhook_deliveries` can never fire; it cost a trigger call and a
-- `SELECT … FOR KEY SHARE` of a delivery row for every attempt recorded, the largest single
-- cost of a completion (BENCHMARKS.md, session 22).
--
-- Contract, safe for a rolling upgrade: a previous release's statements insert the same way and
-- do not rely on the constraint.
ALTER TABLE webhook_attempts DROP CONSTRAINT webhook_attempts_delivery_id_fkey;
