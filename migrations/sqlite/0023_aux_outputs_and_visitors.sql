-- Access control, continued (issue 19).
--
-- `access_aux_outputs`: one row per auxiliary output of a controller (a relay that is not a
-- lock: siren, barrier, light), created from its `AuxOutCount` as doors are from `LockCount`
-- (output number 1-32, a name an operator may change, never deleted because a controller
-- reported fewer). A row of its own, as a door is, so that its id (what CVSecurity clients keep
-- for `auxOut/*`) and its name stay put. Existing controllers get theirs below, from the count
-- they last reported.
--
-- Expand only (see README.md): new tables; a previous release ignores them.
CREATE TABLE access_aux_outputs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id  INTEGER NOT NULL REFERENCES devices (id),
    aux_no     INTEGER NOT NULL CHECK (aux_no BETWEEN 1 AND 32),
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (device_id, aux_no)
);
INSERT INTO access_aux_outputs (device_id, aux_no, name, created_at, updated_at)
WITH RECURSIVE numbers (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < 32)
SELECT c.device_id, numbers.n,
       (CASE WHEN TRIM(d.alias) = '' THEN d.sn ELSE d.alias END) || '-AuxOut' || CAST(numbers.n AS TEXT),
       c.updated_at, c.updated_at
FROM access_controllers AS c JOIN devices AS d ON d.id = c.device_id JOIN numbers ON numbers.n <= c.aux_out_count
ORDER BY c.device_id, numbers.n;
