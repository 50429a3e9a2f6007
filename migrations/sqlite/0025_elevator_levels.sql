-- Elevator levels (issue 19: CVSecurity's `eleLevel/*`): which floors of elevator controllers
-- (`access_floors`, migration 0023) a person may select, and when.
--
-- `access_ele_levels`: a name and a time segment (its id is the `AuthorizeTimezoneId` sent, as
-- for door levels); `access_ele_level_floors`: the level's floors, of any elevator controllers;
-- `access_ele_level_members`: employees of the roster in a level, with an optional validity
-- window (local dates, inclusive), as `access_level_members`. Apart from the door levels
-- (`access_levels`) because CVSecurity numbers and names them apart (`eleLevel/*` vs
-- `accLevel/*`) and a controller receives them in another table (`usereleauthorize`).
--
-- Expand only (see README.md): new tables; a previous release ignores them.
CREATE TABLE access_ele_levels (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL UNIQUE,
    time_segment_id INTEGER NOT NULL REFERENCES access_time_segments (id),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX access_ele_levels_segment ON access_ele_levels (time_segment_id);
CREATE TABLE access_ele_level_floors (
    level_id INTEGER NOT NULL REFERENCES access_ele_levels (id) ON DELETE CASCADE,
    floor_id INTEGER NOT NULL REFERENCES access_floors (id) ON DELETE CASCADE,
    PRIMARY KEY (level_id, floor_id)
);
CREATE INDEX access_ele_level_floors_floor ON access_ele_level_floors (floor_id);
CREATE TABLE access_ele_level_members (
    level_id    INTEGER NOT NULL REFERENCES access_ele_levels (id) ON DELETE CASCADE,
    employee_id INTEGER NOT NULL REFERENCES employees (id) ON DELETE CASCADE,
    valid_from  TEXT,
    valid_until TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (level_id, employee_id)
);
CREATE INDEX access_ele_level_members_employee ON access_ele_level_members (employee_id);
