-- Integration keys are named uniquely among the keys in force (not revoked), so that
-- `adms-bridge token revoke NAME` names exactly one key. Keys that shared a name before this
-- migration keep the name on the oldest; each later one gets its id appended (`payroll (7)`):
-- the suffix depends only on the row, so the renaming does not depend on the order rows are
-- updated in. Revoked keys keep their names (a name can be used again once its key is revoked).
--
-- Expand only (see README.md): an index; the renamed keys still work, and a previous release
-- only fails to create a duplicate name, which it never relied on.
UPDATE api_tokens SET name = name || ' (' || id || ')'
WHERE kind = 'integration' AND revoked_at IS NULL
  AND EXISTS (
      SELECT 1 FROM api_tokens AS older
      WHERE older.kind = 'integration' AND older.revoked_at IS NULL
        AND older.name = api_tokens.name AND older.id < api_tokens.id
  );
CREATE UNIQUE INDEX api_tokens_live_integration_name ON api_tokens (name)
WHERE kind = 'integration' AND revoked_at IS NULL;
