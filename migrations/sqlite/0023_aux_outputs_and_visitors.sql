-- Access control, continued (issue 19).
--
-- `access_aux_outputs`: one row per auxiliary output of a controller (a relay that is not a
-- lock: siren, barrier, light), created from its `AuxOutCount` as doors are from `LockCount`
-- (output number 1-32, a name an operator may change, never deleted because a controller
-- reported fewer). A row of its own, as a door is, so that its id (what CVSecurity clients keep
-- for `auxOut/*`) and its name stay put. Existing controllers get theirs below, from the count
-- they last reported.
--
-- `access_visits`: visitors (CVSecurity's `visRegistration`), each a temporary person of the
-- access model whose pin on the controllers is "8" and its id in 8 digits (CVSecurity's visitor
-- pins start with 8; derived, not stored): the host employee, the identity document (type and
-- number; the number sealed, found by its keyed digest `cert_index`), a card (sealed, like an
-- employee's), the window as local times `YYYY-MM-DD HH:MM:SS` (compared as text), and the
-- access levels it may use (`access_visit_levels`). A visit puts its visitor on the controllers
-- of its levels from its start to its end or exit; `planned_phase` (0 before the start, 1
-- during, 2 after the end or exit) is the last phase its controllers were planned for, so the
-- periodic pass plans each boundary once.
--
-- `access_floors`: the floors of an elevator controller (floor number 1-256, a name), declared
-- by an operator with the controller's floor count: no registry key for it is known (the
-- reference's elevator section has a single source and no capture).
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

CREATE TABLE access_visits (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    host_emp_code TEXT    NOT NULL,
    cert_type     INTEGER NOT NULL,
    cert_num      TEXT    NOT NULL,
    cert_index    BLOB    NOT NULL,
    name          TEXT    NOT NULL,
    phone         TEXT    NOT NULL,
    company       TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    visitor_count INTEGER NOT NULL,
    starts_at     TEXT    NOT NULL,
    ends_at       TEXT    NOT NULL,
    card_no       TEXT    NOT NULL,
    exited_at     INTEGER,
    planned_phase INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);
CREATE INDEX access_visits_cert ON access_visits (cert_type, cert_index);
CREATE INDEX access_visits_unsettled ON access_visits (planned_phase) WHERE planned_phase < 2;
CREATE TABLE access_visit_levels (
    visit_id INTEGER NOT NULL REFERENCES access_visits (id) ON DELETE CASCADE,
    level_id INTEGER NOT NULL REFERENCES access_levels (id) ON DELETE CASCADE,
    PRIMARY KEY (visit_id, level_id)
);
CREATE INDEX access_visit_levels_level ON access_visit_levels (level_id);

CREATE TABLE access_floors (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id  INTEGER NOT NULL REFERENCES devices (id),
    floor_no   INTEGER NOT NULL CHECK (floor_no BETWEEN 1 AND 256),
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (device_id, floor_no)
);
