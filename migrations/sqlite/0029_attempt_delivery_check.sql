-- PostgreSQL drops the foreign key from `webhook_attempts` to `webhook_deliveries` here (see its
-- 0029: attempts are written only for deliveries their own transaction has just updated). SQLite
-- checks it in the same process at little cost, so it stays; this version exists so both
-- folders hold the same versions and names.
SELECT 1;
