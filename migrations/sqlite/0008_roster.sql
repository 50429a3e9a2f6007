-- The roster the bridge keeps (ZKBio Time's personnel module): employees, departments, areas,
-- positions, which terminals belong to which area, and resignations. `device_users` and
-- `biometric_templates` stay what each device reported; this is the desired state.
-- Times: *_at are Unix microseconds; dates are 'YYYY-MM-DD' text as the API shows them.

CREATE TABLE departments (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    dept_code  TEXT    NOT NULL UNIQUE,
    dept_name  TEXT    NOT NULL,
    parent_id  INTEGER REFERENCES departments (id),
    created_at INTEGER NOT NULL
);

CREATE TABLE areas (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    area_code  TEXT    NOT NULL UNIQUE,
    area_name  TEXT    NOT NULL,
    parent_id  INTEGER REFERENCES areas (id),
    created_at INTEGER NOT NULL
);

CREATE TABLE positions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    position_code TEXT    NOT NULL UNIQUE,
    position_name TEXT    NOT NULL,
    parent_id     INTEGER REFERENCES positions (id),
    created_at    INTEGER NOT NULL
);

-- ZKBio Time ships with department 1 and area 1; employees first seen on a device, and
-- terminals nobody assigned, land there.
INSERT INTO departments (id, dept_code, dept_name, parent_id, created_at) VALUES (1, '1', 'Department', NULL, 0);
INSERT INTO areas (id, area_code, area_name, parent_id, created_at) VALUES (1, '1', 'Not Authorized', NULL, 0);

-- A terminal belongs to one area (no row: area 1).
CREATE TABLE terminal_areas (
    device_id INTEGER PRIMARY KEY REFERENCES devices (id),
    area_id   INTEGER NOT NULL REFERENCES areas (id)
);
CREATE INDEX terminal_areas_area ON terminal_areas (area_id);

CREATE TABLE employees (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    -- the device PIN, as text: leading zeros are significant
    emp_code        TEXT    NOT NULL UNIQUE,
    first_name      TEXT    NOT NULL DEFAULT '',
    last_name       TEXT    NOT NULL DEFAULT '',
    nickname        TEXT    NOT NULL DEFAULT '',
    -- kept in clear because the device needs it in DATA UPDATE USERINFO; never shown by the API
    device_password TEXT    NOT NULL DEFAULT '',
    card_no         TEXT    NOT NULL DEFAULT '',
    department_id   INTEGER NOT NULL DEFAULT 1 REFERENCES departments (id),
    position_id     INTEGER REFERENCES positions (id),
    hire_date       TEXT,
    gender          TEXT,
    birthday        TEXT,
    verify_mode     INTEGER NOT NULL DEFAULT -1,
    emp_type        INTEGER,
    contact_tel     TEXT    NOT NULL DEFAULT '',
    office_tel      TEXT    NOT NULL DEFAULT '',
    mobile          TEXT    NOT NULL DEFAULT '',
    national        TEXT    NOT NULL DEFAULT '',
    city            TEXT    NOT NULL DEFAULT '',
    address         TEXT    NOT NULL DEFAULT '',
    postcode        TEXT    NOT NULL DEFAULT '',
    email           TEXT    NOT NULL DEFAULT '',
    enroll_sn       TEXT    NOT NULL DEFAULT '',
    ssn             TEXT    NOT NULL DEFAULT '',
    religion        TEXT    NOT NULL DEFAULT '',
    dev_privilege   INTEGER NOT NULL DEFAULT 0,
    app_status      INTEGER NOT NULL DEFAULT 0,
    app_role        INTEGER NOT NULL DEFAULT 1,
    -- 'active' or 'resigned' (resigned: removed from every terminal, punches kept)
    status          TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'resigned')),
    -- 1 once the ERP created or edited the employee: from then on device reports no longer
    -- overwrite the fields (the ERP is the source of truth); 0 = known only from a device
    erp_managed     INTEGER NOT NULL DEFAULT 0,
    -- soft delete, so a re-sent device line does not bring a deleted employee back
    deleted_at      INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
-- ZKBio Time: a card number belongs to one employee.
CREATE UNIQUE INDEX employees_card ON employees (card_no) WHERE card_no <> '' AND deleted_at IS NULL;
CREATE INDEX employees_department ON employees (department_id);

CREATE TABLE employee_areas (
    employee_id INTEGER NOT NULL REFERENCES employees (id),
    area_id     INTEGER NOT NULL REFERENCES areas (id),
    PRIMARY KEY (employee_id, area_id)
) WITHOUT ROWID;
CREATE INDEX employee_areas_area ON employee_areas (area_id);

CREATE TABLE resignations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    employee_id   INTEGER NOT NULL REFERENCES employees (id),
    resign_date   TEXT    NOT NULL,
    -- 1 quit, 2 dismissed, 3 resign, 4 transfer, 5 keep position without salary
    resign_type   INTEGER NOT NULL CHECK (resign_type BETWEEN 1 AND 5),
    disableatt    INTEGER NOT NULL DEFAULT 1,
    reason        TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    -- set by reinstatement; the row stays as history
    reinstated_at INTEGER
);
-- At most one open resignation per employee.
CREATE UNIQUE INDEX resignations_open ON resignations (employee_id) WHERE reinstated_at IS NULL;
