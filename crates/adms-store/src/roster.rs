//! The roster (ZKBio Time's personnel module): departments, areas, positions, employees,
//! terminal areas and resignations; and the snapshots [`crate::roster_sync`] plans from.
//!
//! Every statement is static text with bound parameters; filters use `(? IS NULL OR ...)`
//! guards and the order is picked from a fixed set of statements, as in `queries`.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::FromRow;

use crate::roster_sync::{DesiredEntry, DeviceState, DeviceTemplate, DeviceUser, RosterChange, TemplateKey};
use crate::roster_sync::{plan_device, plan_template_removal};
use adms_vault::{SealError, Sealer};

use crate::sealed::{self, SealedColumn};
use crate::{Page, Store, StoreError, now_micros};

/// The department and area every installation has (ids 1, seeded by the migration).
pub const DEFAULT_DEPARTMENT_ID: i64 = 1;
pub const DEFAULT_AREA_ID: i64 = 1;

/// One organisational field set on several employees by an `adjust_*` action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmployeeAssignment {
    Department(i64),
    Position(i64),
    EmpType(i64),
}

/// Departments, areas and positions share one shape: code, name, optional parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgKind {
    Department,
    Area,
    Position,
}

/// One department, area or position, with its parent's code and name.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct OrgUnit {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub parent_id: Option<i64>,
    pub parent_code: Option<String>,
    pub parent_name: Option<String>,
    pub parent_parent_id: Option<i64>,
}

/// Orders for org lists (`ordering` = id, code or name, either direction).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OrgOrder {
    #[default]
    IdAsc,
    IdDesc,
    CodeAsc,
    CodeDesc,
    NameAsc,
    NameDesc,
}

/// Which org units to list; `None` means no filter.
#[derive(Debug, Clone, Default)]
pub struct OrgFilter {
    pub id: Option<i64>,
    pub code: Option<String>,
    pub name: Option<String>,
    pub code_icontains: Option<String>,
    pub name_icontains: Option<String>,
    pub order: OrgOrder,
}

/// Writable fields of an org unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgFields {
    pub code: String,
    pub name: String,
    pub parent_id: Option<i64>,
}

struct OrgSql {
    count: &'static str,
    /// One statement per [`OrgOrder`], in declaration order.
    select: [&'static str; 6],
    insert: &'static str,
    update: &'static str,
    code_taken: &'static str,
    /// References that keep a unit from being deleted (live employees, children, terminals).
    in_use: &'static str,
    /// Detaches soft-deleted employees before a delete, so the foreign keys allow it.
    detach_deleted: &'static str,
    delete: &'static str,
}

macro_rules! org_where {
    ($code:literal, $name:literal) => {
        concat!(
            " WHERE ($1 IS NULL OR u.id = $1) AND ($2 IS NULL OR u.",
            $code,
            " = $2) AND ($3 IS NULL OR u.",
            $name,
            " = $3) AND ($4 IS NULL OR ",
            contains!("u.", $code => "$4"),
            ") AND ($5 IS NULL OR ",
            contains!("u.", $name => "$5"),
            ")"
        )
    };
}

macro_rules! org_select {
    ($table:literal, $code:literal, $name:literal, $order:expr) => {
        concat!(
            "SELECT u.id, u.",
            $code,
            " AS code, u.",
            $name,
            " AS name, u.parent_id, p.",
            $code,
            " AS parent_code, p.",
            $name,
            " AS parent_name, p.parent_id AS parent_parent_id FROM ",
            $table,
            " AS u LEFT JOIN ",
            $table,
            " AS p ON p.id = u.parent_id",
            org_where!($code, $name),
            " ORDER BY ",
            $order,
            " LIMIT $6 OFFSET $7"
        )
    };
}

macro_rules! org_sql {
    ($table:literal, $code:literal, $name:literal, $in_use:literal, $detach:literal) => {
        OrgSql {
            count: concat!("SELECT COUNT(*) FROM ", $table, " AS u", org_where!($code, $name)),
            select: [
                org_select!($table, $code, $name, "u.id ASC"),
                org_select!($table, $code, $name, "u.id DESC"),
                org_select!($table, $code, $name, concat!("u.", $code, " ASC, u.id ASC")),
                org_select!($table, $code, $name, concat!("u.", $code, " DESC, u.id DESC")),
                org_select!($table, $code, $name, concat!("u.", $name, " ASC, u.id ASC")),
                org_select!($table, $code, $name, concat!("u.", $name, " DESC, u.id DESC")),
            ],
            insert: concat!(
                "INSERT INTO ",
                $table,
                " (",
                $code,
                ", ",
                $name,
                ", parent_id, created_at) VALUES ($1, $2, $3, $4) RETURNING id"
            ),
            update: concat!("UPDATE ", $table, " SET ", $code, " = $1, ", $name, " = $2, parent_id = $3 WHERE id = $4"),
            code_taken: concat!("SELECT id FROM ", $table, " WHERE ", $code, " = $1 AND id <> $2"),
            in_use: $in_use,
            detach_deleted: $detach,
            delete: concat!("DELETE FROM ", $table, " WHERE id = $1"),
        }
    };
}

const DEPARTMENT_SQL: OrgSql = org_sql!(
    "departments",
    "dept_code",
    "dept_name",
    "SELECT (SELECT COUNT(*) FROM employees WHERE department_id = $1 AND deleted_at IS NULL) \
     + (SELECT COUNT(*) FROM departments WHERE parent_id = $1)",
    "UPDATE employees SET department_id = 1 WHERE department_id = $1 AND deleted_at IS NOT NULL"
);
const AREA_SQL: OrgSql = org_sql!(
    "areas",
    "area_code",
    "area_name",
    "SELECT (SELECT COUNT(*) FROM employee_areas AS ea JOIN employees AS e ON e.id = ea.employee_id \
     WHERE ea.area_id = $1 AND e.deleted_at IS NULL) + (SELECT COUNT(*) FROM areas WHERE parent_id = $1) \
     + (SELECT COUNT(*) FROM terminal_areas WHERE area_id = $1)",
    "DELETE FROM employee_areas WHERE area_id = $1 \
     AND employee_id IN (SELECT id FROM employees WHERE deleted_at IS NOT NULL)"
);
const POSITION_SQL: OrgSql = org_sql!(
    "positions",
    "position_code",
    "position_name",
    "SELECT (SELECT COUNT(*) FROM employees WHERE position_id = $1 AND deleted_at IS NULL) \
     + (SELECT COUNT(*) FROM positions WHERE parent_id = $1)",
    "UPDATE employees SET position_id = NULL WHERE position_id = $1 AND deleted_at IS NOT NULL"
);

impl OrgKind {
    fn sql(self) -> &'static OrgSql {
        match self {
            OrgKind::Department => &DEPARTMENT_SQL,
            OrgKind::Area => &AREA_SQL,
            OrgKind::Position => &POSITION_SQL,
        }
    }

    /// The built-in unit that cannot be deleted, if any.
    fn built_in(self) -> Option<i64> {
        match self {
            OrgKind::Department => Some(DEFAULT_DEPARTMENT_ID),
            OrgKind::Area => Some(DEFAULT_AREA_ID),
            OrgKind::Position => None,
        }
    }
}

impl OrgOrder {
    fn index(self) -> usize {
        self as usize
    }
}

/// Why a roster write was refused; the API turns each into ZKBio Time's 400 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterRefusal {
    #[error("code already used by id {0}")]
    CodeTaken(i64),
    #[error("still referenced ({0} references)")]
    InUse(i64),
    #[error("built-in unit")]
    BuiltIn,
    #[error("parent would create a cycle")]
    ParentCycle,
    #[error("duplicate card number with {0}")]
    DuplicateCard(String),
    #[error("employee {0} is already resigned")]
    AlreadyResigned(String),
}

/// Either a refusal (the caller's input) or a storage failure.
#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error(transparent)]
    Refused(#[from] RosterRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RosterError {
    fn from(e: sqlx::Error) -> Self {
        RosterError::Store(StoreError::Database(e))
    }
}

/// An area as an employee or terminal refers to it.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct AreaRef {
    pub id: i64,
    pub area_code: String,
    pub area_name: String,
}

/// Writable employee fields (ZKBio Time's names). `device_password` is the device PIN
/// password, kept in clear for the device and redacted in `Debug`.
#[derive(Clone, Default, FromRow, PartialEq, Eq)]
pub struct EmployeeFields {
    pub emp_code: String,
    pub first_name: String,
    pub last_name: String,
    pub nickname: String,
    pub device_password: String,
    pub card_no: String,
    pub department_id: i64,
    pub position_id: Option<i64>,
    pub hire_date: Option<String>,
    pub gender: Option<String>,
    pub birthday: Option<String>,
    pub verify_mode: i64,
    pub emp_type: Option<i64>,
    pub contact_tel: String,
    pub office_tel: String,
    pub mobile: String,
    pub national: String,
    pub city: String,
    pub address: String,
    pub postcode: String,
    pub email: String,
    pub enroll_sn: String,
    pub ssn: String,
    pub religion: String,
    pub dev_privilege: i64,
    pub app_status: i64,
    pub app_role: i64,
}

impl std::fmt::Debug for EmployeeFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmployeeFields")
            .field("emp_code", &self.emp_code)
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("device_password", &if self.device_password.is_empty() { "" } else { "***" })
            .field("card_no", &if self.card_no.is_empty() { "" } else { "***" })
            .field("department_id", &self.department_id)
            .field("position_id", &self.position_id)
            .finish_non_exhaustive()
    }
}

impl EmployeeFields {
    /// These fields with the sealed ones ([`sealed::EMPLOYEE_PRIVATE`], password, card) left
    /// empty: what the insert or update of the other fields writes.
    fn without_private(&self) -> EmployeeFields {
        EmployeeFields {
            device_password: String::new(),
            card_no: String::new(),
            birthday: None,
            contact_tel: String::new(),
            office_tel: String::new(),
            mobile: String::new(),
            national: String::new(),
            city: String::new(),
            address: String::new(),
            postcode: String::new(),
            email: String::new(),
            ssn: String::new(),
            religion: String::new(),
            ..self.clone()
        }
    }

    /// Opens the sealed fields of employee `id` as read from the database.
    fn open_private(&mut self, sealer: Sealer<'_>, id: i64) -> Result<(), SealError> {
        let record = id.to_string();
        let open = |column: &SealedColumn, value: &mut String| -> Result<(), SealError> {
            *value = sealer.open(column.kind, &record, value)?;
            Ok(())
        };
        open(&sealed::EMPLOYEE_PASSWORD, &mut self.device_password)?;
        open(&sealed::EMPLOYEE_CARD, &mut self.card_no)?;
        let [ssn, national, religion, birthday, contact_tel, office_tel, mobile, email, address, city, postcode] =
            &sealed::EMPLOYEE_PRIVATE;
        if let Some(value) = &mut self.birthday {
            open(birthday, value)?;
        }
        for (column, value) in [
            (ssn, &mut self.ssn),
            (national, &mut self.national),
            (religion, &mut self.religion),
            (contact_tel, &mut self.contact_tel),
            (office_tel, &mut self.office_tel),
            (mobile, &mut self.mobile),
            (email, &mut self.email),
            (address, &mut self.address),
            (city, &mut self.city),
            (postcode, &mut self.postcode),
        ] {
            open(column, value)?;
        }
        Ok(())
    }
}

/// The keyed digest a card number is found by (`employees.card_index`).
pub(crate) fn card_index(sealer: Sealer<'_>, card_no: &str) -> Option<Vec<u8>> {
    (!card_no.is_empty()).then(|| sealer.digest(sealed::EMPLOYEE_CARD.kind, card_no.as_bytes()).to_vec())
}

/// How many templates of one biometric type the roster knows for an employee.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct BioSummary {
    pub pin: String,
    pub bio_type: i64,
    pub major_ver: Option<i64>,
    pub count: i64,
}

/// An employee as the API shows it.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct Employee {
    pub id: i64,
    #[sqlx(flatten)]
    pub fields: EmployeeFields,
    pub dept_code: String,
    pub dept_name: String,
    pub position_code: Option<String>,
    pub position_name: Option<String>,
    /// `active` or `resigned`.
    pub status: String,
    pub updated_at: i64,
    #[sqlx(skip)]
    pub areas: Vec<AreaRef>,
    #[sqlx(skip)]
    pub biometrics: Vec<BioSummary>,
}

/// Which employees to list.
#[derive(Debug, Clone, Default)]
pub struct EmployeeFilter {
    pub id: Option<i64>,
    pub emp_code: Option<String>,
    pub emp_code_icontains: Option<String>,
    pub first_name: Option<String>,
    pub first_name_icontains: Option<String>,
    pub last_name: Option<String>,
    pub last_name_icontains: Option<String>,
    pub department: Option<i64>,
    pub area: Option<i64>,
    pub app_status: Option<i64>,
    /// `active` / `resigned`; `None` for both.
    pub status: Option<String>,
}

macro_rules! employees_where {
    () => {
        concat!(
            " WHERE e.deleted_at IS NULL AND ($1 IS NULL OR e.id = $1) AND ($2 IS NULL OR e.emp_code = $2) AND ($3 IS NULL OR ",
            contains!("e.emp_code" => "$3"),
            ") AND ($4 IS NULL OR e.first_name = $4) AND ($5 IS NULL OR ",
            contains!("e.first_name" => "$5"),
            ") AND ($6 IS NULL OR e.last_name = $6) AND ($7 IS NULL OR ",
            contains!("e.last_name" => "$7"),
            ") AND ($8 IS NULL OR e.department_id = $8) \
         AND ($9 IS NULL OR EXISTS (SELECT 1 FROM employee_areas AS ea WHERE ea.employee_id = e.id AND ea.area_id = $9)) \
         AND ($10 IS NULL OR e.app_status = $10) AND ($11 IS NULL OR e.status = $11)"
        )
    };
}

const COUNT_EMPLOYEES: &str = concat!("SELECT COUNT(*) FROM employees AS e", employees_where!());
const SELECT_EMPLOYEES: &str = concat!(
    "SELECT e.id, e.emp_code, e.first_name, e.last_name, e.nickname, e.device_password, e.card_no, e.department_id, \
     e.position_id, e.hire_date, e.gender, e.birthday, e.verify_mode, e.emp_type, e.contact_tel, e.office_tel, \
     e.mobile, e.national, e.city, e.address, e.postcode, e.email, e.enroll_sn, e.ssn, e.religion, e.dev_privilege, \
     e.app_status, e.app_role, d.dept_code, d.dept_name, p.position_code, p.position_name, e.status, e.updated_at \
     FROM employees AS e JOIN departments AS d ON d.id = e.department_id LEFT JOIN positions AS p ON p.id = e.position_id",
    employees_where!(),
    " ORDER BY e.id ASC LIMIT $12 OFFSET $13"
);

/// An employee write: created, or updated (ZKBio Time 9.x turns a create with a known
/// `emp_code` into an update).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedEmployee {
    pub id: i64,
    pub created: bool,
}

/// A resignation as the API shows it.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct Resignation {
    pub id: i64,
    pub resign_date: String,
    pub resign_type: i64,
    pub disableatt: bool,
    pub reason: String,
    pub employee_id: i64,
    pub emp_code: String,
    pub first_name: String,
    pub last_name: String,
}

/// Which resignations to list (open ones only: a reinstated resignation is history).
#[derive(Debug, Clone, Default)]
pub struct ResignationFilter {
    pub id: Option<i64>,
    pub employee: Option<i64>,
    pub resign_type: Option<i64>,
    pub resign_date: Option<String>,
}

/// A resignation to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewResignation {
    pub resign_date: String,
    pub resign_type: i64,
    pub disableatt: bool,
    pub reason: String,
}

macro_rules! resignations_where {
    () => {
        " FROM resignations AS r JOIN employees AS e ON e.id = r.employee_id \
         WHERE r.reinstated_at IS NULL AND e.deleted_at IS NULL AND ($1 IS NULL OR r.id = $1) \
         AND ($2 IS NULL OR r.employee_id = $2) AND ($3 IS NULL OR r.resign_type = $3) \
         AND ($4 IS NULL OR r.resign_date = $4)"
    };
}

impl Store {
    /// Total matches and one page of departments, areas or positions.
    pub async fn list_org(&self, kind: OrgKind, f: &OrgFilter, page: Page) -> Result<(i64, Vec<OrgUnit>), StoreError> {
        let sql = kind.sql();
        on_db!(self, |db| {
            let count: i64 = sqlx::query_scalar(sql.count)
                .bind(f.id)
                .bind(&f.code)
                .bind(&f.name)
                .bind(&f.code_icontains)
                .bind(&f.name_icontains)
                .fetch_one(db.pool())
                .await?;
            if count == 0 || page.offset >= count {
                return Ok((count, Vec::new()));
            }
            let rows = sqlx::query_as(sql.select[f.order.index()])
                .bind(f.id)
                .bind(&f.code)
                .bind(&f.name)
                .bind(&f.code_icontains)
                .bind(&f.name_icontains)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(db.pool())
                .await?;
            Ok((count, rows))
        })
    }

    pub async fn org_by_id(&self, kind: OrgKind, id: i64) -> Result<Option<OrgUnit>, StoreError> {
        let filter = OrgFilter { id: Some(id), ..OrgFilter::default() };
        Ok(self.list_org(kind, &filter, Page { offset: 0, limit: 1 }).await?.1.into_iter().next())
    }

    /// Creates (`id` None) or updates a unit; the code must be unused and the parent must not
    /// be the unit or one of its descendants.
    pub async fn save_org(&self, kind: OrgKind, id: Option<i64>, fields: &OrgFields) -> Result<i64, RosterError> {
        let sql = kind.sql();
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            // The code's UNIQUE constraint is what holds under concurrent writers: on PostgreSQL a
            // code taken by a transaction still open fails this save with a database error rather
            // than this refusal.
            let taken: Option<i64> = sqlx::query_scalar(sql.code_taken)
                .bind(&fields.code)
                .bind(id.unwrap_or(0))
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(other) = taken {
                return Err(RosterRefusal::CodeTaken(other).into());
            }
            if let (Some(id), Some(parent)) = (id, fields.parent_id)
                && dialect::org_is_ancestor_or_self(&mut tx, kind, id, parent).await?
            {
                return Err(RosterRefusal::ParentCycle.into());
            }
            let id = match id {
                None => {
                    sqlx::query_scalar(sql.insert)
                        .bind(&fields.code)
                        .bind(&fields.name)
                        .bind(fields.parent_id)
                        .bind(now_micros())
                        .fetch_one(&mut *tx)
                        .await?
                }
                Some(id) => {
                    let done = sqlx::query(sql.update)
                        .bind(&fields.code)
                        .bind(&fields.name)
                        .bind(fields.parent_id)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound.into());
                    }
                    id
                }
            };
            tx.commit().await?;
            Ok(id)
        })
    }

    /// Deletes a unit nothing live refers to.
    pub async fn delete_org(&self, kind: OrgKind, id: i64) -> Result<(), RosterError> {
        if kind.built_in() == Some(id) {
            return Err(RosterRefusal::BuiltIn.into());
        }
        let sql = kind.sql();
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            // The unit's row stays locked until the delete (SQLite: the write lock is held from
            // BEGIN IMMEDIATE): on PostgreSQL a new employee, child or terminal referring to it
            // takes a key-share lock on it, so none appears between the count and the delete.
            let lock = match kind {
                OrgKind::Department => concat!("SELECT id FROM departments WHERE id = $1", for_update!()),
                OrgKind::Area => concat!("SELECT id FROM areas WHERE id = $1", for_update!()),
                OrgKind::Position => concat!("SELECT id FROM positions WHERE id = $1", for_update!()),
            };
            let found: Option<i64> = sqlx::query_scalar(lock).bind(id).fetch_optional(&mut *tx).await?;
            if found.is_none() {
                return Err(StoreError::NotFound.into());
            }
            let uses: i64 = sqlx::query_scalar(sql.in_use).bind(id).fetch_one(&mut *tx).await?;
            if uses > 0 {
                return Err(RosterRefusal::InUse(uses).into());
            }
            sqlx::query(sql.detach_deleted).bind(id).execute(&mut *tx).await?;
            let done = sqlx::query(sql.delete).bind(id).execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound.into());
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// The ids among `ids` that name no unit of `kind`.
    pub async fn missing_org_ids(&self, kind: OrgKind, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        let mut missing = Vec::new();
        for id in ids {
            if self.org_by_id(kind, *id).await?.is_none() {
                missing.push(*id);
            }
        }
        Ok(missing)
    }

    /// Total matches and one page of employees, with their areas and template counts.
    pub async fn list_employees(&self, f: &EmployeeFilter, page: Page) -> Result<(i64, Vec<Employee>), StoreError> {
        let (count, mut rows, areas, biometrics) = on_db!(self, |db| {
            let count: i64 = bind_employee_filter(sqlx::query_scalar(COUNT_EMPLOYEES), f).fetch_one(db.pool()).await?;
            if count == 0 || page.offset >= count {
                return Ok((count, Vec::new()));
            }
            let rows: Vec<Employee> = bind_employee_filter(sqlx::query_as(SELECT_EMPLOYEES), f)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(db.pool())
                .await?;
            let ids: Vec<i64> = rows.iter().map(|e| e.id).collect();
            let areas: Vec<(i64, i64, String, String)> = sqlx::query_as(concat!(
                "SELECT ea.employee_id, a.id, a.area_code, a.area_name FROM employee_areas AS ea \
                 JOIN areas AS a ON a.id = ea.area_id WHERE ",
                in_list!("ea.employee_id", "$1"),
                " ORDER BY ea.employee_id, a.id"
            ))
            .bind(dialect::list_param(&ids))
            .fetch_all(db.pool())
            .await?;
            let pins: Vec<String> = rows.iter().map(|e| e.fields.emp_code.clone()).collect();
            let biometrics: Vec<BioSummary> = sqlx::query_as(concat!(
                "SELECT pin, bio_type, MAX(major_ver) AS major_ver, COUNT(DISTINCT bio_no) AS count \
                 FROM roster_templates WHERE ",
                in_list!("pin", "$1"),
                " GROUP BY pin, bio_type ORDER BY pin, bio_type"
            ))
            .bind(dialect::list_param(&pins))
            .fetch_all(db.pool())
            .await?;
            (count, rows, areas, biometrics)
        });
        for e in &mut rows {
            e.fields.open_private(self.sealer(), e.id)?;
        }
        for e in &mut rows {
            e.areas = areas
                .iter()
                .filter(|a| a.0 == e.id)
                .map(|a| AreaRef { id: a.1, area_code: a.2.clone(), area_name: a.3.clone() })
                .collect();
            e.biometrics = biometrics.iter().filter(|b| b.pin == e.fields.emp_code).cloned().collect();
        }
        Ok((count, rows))
    }

    /// One live employee by id (active or resigned).
    pub async fn employee_by_id(&self, id: i64) -> Result<Option<Employee>, StoreError> {
        let filter = EmployeeFilter { id: Some(id), ..EmployeeFilter::default() };
        Ok(self.list_employees(&filter, Page { offset: 0, limit: 1 }).await?.1.into_iter().next())
    }

    /// One live employee by code.
    pub async fn employee_by_code(&self, emp_code: &str) -> Result<Option<Employee>, StoreError> {
        let filter = EmployeeFilter { emp_code: Some(emp_code.to_owned()), ..EmployeeFilter::default() };
        Ok(self.list_employees(&filter, Page { offset: 0, limit: 1 }).await?.1.into_iter().next())
    }

    /// Creates or updates the employee with `fields.emp_code` (a deleted one comes back, active)
    /// and sets their areas. The ERP owns the record from then on: device reports no longer
    /// overwrite it.
    pub async fn save_employee(&self, fields: &EmployeeFields, area_ids: &[i64]) -> Result<SavedEmployee, RosterError> {
        let now = now_micros();
        let sealer = self.sealer();
        let public = fields.without_private();
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            // The card's partial UNIQUE index is what holds under concurrent writers: on PostgreSQL
            // a card given to another employee by a transaction still open fails this save with a
            // database error rather than this refusal.
            if let Some(card) = card_index(sealer, &fields.card_no) {
                let holder: Option<String> = sqlx::query_scalar(
                    "SELECT emp_code FROM employees WHERE card_index = $1 AND emp_code <> $2 AND deleted_at IS NULL",
                )
                .bind(card)
                .bind(&fields.emp_code)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(holder) = holder {
                    return Err(RosterRefusal::DuplicateCard(holder).into());
                }
            }
            // The employee's row is read under a lock (SQLite: the write lock held from BEGIN
            // IMMEDIATE), so whether this save creates or brings it back is decided once. A code
            // nobody holds is inserted with ON CONFLICT DO NOTHING: when a concurrent save created
            // it meanwhile (PostgreSQL), nothing comes back and the second pass updates that row.
            let mut saved = None;
            for _ in 0..2 {
                let existing: Option<(i64, Option<i64>)> = sqlx::query_as(concat!(
                    "SELECT id, deleted_at FROM employees WHERE emp_code = $1",
                    for_no_key_update!()
                ))
                .bind(&fields.emp_code)
                .fetch_optional(&mut *tx)
                .await?;
                match existing {
                    None => {
                        let id: Option<i64> = bind_employee_fields(sqlx::query_scalar(
                            "INSERT INTO employees (emp_code, first_name, last_name, nickname, device_password, card_no, \
                             department_id, position_id, hire_date, gender, birthday, verify_mode, emp_type, contact_tel, \
                             office_tel, mobile, national, city, address, postcode, email, enroll_sn, ssn, religion, \
                             dev_privilege, app_status, app_role, erp_managed, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
                             $20, $21, $22, $23, $24, $25, $26, $27, TRUE, $28, $28) \
                             ON CONFLICT (emp_code) DO NOTHING RETURNING id",
                        ), &public)
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await?;
                        if let Some(id) = id {
                            saved = Some(SavedEmployee { id, created: true });
                            break;
                        }
                    }
                    Some((id, deleted_at)) => {
                        bind_employee_fields(
                            sqlx::query(
                                "UPDATE employees SET emp_code = $1, first_name = $2, last_name = $3, nickname = $4, \
                                 device_password = $5, card_no = $6, department_id = $7, position_id = $8, hire_date = $9, \
                                 gender = $10, birthday = $11, verify_mode = $12, emp_type = $13, contact_tel = $14, \
                                 office_tel = $15, mobile = $16, national = $17, city = $18, address = $19, postcode = $20, \
                                 email = $21, enroll_sn = $22, ssn = $23, religion = $24, dev_privilege = $25, app_status = $26, \
                                 app_role = $27, erp_managed = TRUE, updated_at = $28, \
                                 status = CASE WHEN deleted_at IS NULL THEN status ELSE 'active' END, deleted_at = NULL \
                                 WHERE id = $29",
                            ),
                            &public,
                        )
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                        saved = Some(SavedEmployee { id, created: deleted_at.is_some() });
                        break;
                    }
                }
            }
            // Two passes always settle: the second finds the row the conflicting insert committed.
            let saved = saved.ok_or(StoreError::NotFound)?;
            dialect::write_private_fields(&mut tx, sealer, saved.id, fields).await?;
            sqlx::query("DELETE FROM employee_areas WHERE employee_id = $1").bind(saved.id).execute(&mut *tx).await?;
            sqlx::query(concat!(
                "INSERT INTO employee_areas (employee_id, area_id) SELECT $1, l.value FROM ",
                list_rows!("$2", "l"),
                " WHERE true ON CONFLICT DO NOTHING"
            ))
            .bind(saved.id)
            .bind(dialect::list_param(area_ids))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(saved)
        })
    }

    /// Deletes an employee from the roster (their punches stay). Soft: a device re-sending an
    /// old `USER` line does not bring them back; a create with the same code does.
    pub async fn delete_employee(&self, id: i64) -> Result<bool, StoreError> {
        let now = now_micros();
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let done = sqlx::query(
                "UPDATE employees SET deleted_at = $1, card_no = '', card_index = NULL, updated_at = $2 \
                 WHERE id = $3 AND deleted_at IS NULL",
            )
            .bind(now)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE resignations SET reinstated_at = $1 WHERE employee_id = $2 AND reinstated_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Moves employees to other areas, a department or a position (the `adjust_*` actions).
    pub async fn set_employee_areas(&self, employee_ids: &[i64], area_ids: &[i64]) -> Result<(), StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            for id in employee_ids {
                sqlx::query("DELETE FROM employee_areas WHERE employee_id = $1").bind(id).execute(&mut *tx).await?;
                sqlx::query(concat!(
                    "INSERT INTO employee_areas (employee_id, area_id) SELECT $1, l.value FROM ",
                    list_rows!("$2", "l"),
                    " WHERE true ON CONFLICT DO NOTHING"
                ))
                .bind(id)
                .bind(dialect::list_param(area_ids))
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE employees SET erp_managed = TRUE, updated_at = $1 WHERE id = $2")
                    .bind(now_micros())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Sets one organisational field of several employees at once (the `adjust_department`,
    /// `adjust_position` and `adjust_emp_type` actions), in one transaction. The ids must exist
    /// (the caller checks them, for DRF's error body).
    pub async fn set_employee_assignment(
        &self,
        employee_ids: &[i64],
        assignment: EmployeeAssignment,
    ) -> Result<(), StoreError> {
        on_db!(self, |db| {
            let (sql, value) = match assignment {
                EmployeeAssignment::Department(id) => (
                    concat!(
                        "UPDATE employees SET department_id = $1, erp_managed = TRUE, updated_at = $2 WHERE ",
                        in_list!("id", "$3")
                    ),
                    id,
                ),
                EmployeeAssignment::Position(id) => (
                    concat!(
                        "UPDATE employees SET position_id = $1, erp_managed = TRUE, updated_at = $2 WHERE ",
                        in_list!("id", "$3")
                    ),
                    id,
                ),
                EmployeeAssignment::EmpType(value) => (
                    concat!(
                        "UPDATE employees SET emp_type = $1, erp_managed = TRUE, updated_at = $2 WHERE ",
                        in_list!("id", "$3")
                    ),
                    value,
                ),
            };
            sqlx::query(sql)
                .bind(value)
                .bind(now_micros())
                .bind(dialect::list_param(employee_ids))
                .execute(db.pool())
                .await?;
            Ok(())
        })
    }

    /// Resigns employees: status `resigned`, one open resignation each. Refused as a whole if
    /// any of them is already resigned. Returns the resignation ids.
    pub async fn resign_employees(&self, employee_ids: &[i64], r: &NewResignation) -> Result<Vec<i64>, RosterError> {
        let now = now_micros();
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let mut ids = Vec::new();
            for employee_id in employee_ids {
                // Read under a row lock (SQLite: the write lock held from BEGIN IMMEDIATE): a
                // concurrent resignation of the same employee waits, then sees `resigned`.
                let (code, status): (String, String) = sqlx::query_as(concat!(
                    "SELECT emp_code, status FROM employees WHERE id = $1 AND deleted_at IS NULL",
                    for_no_key_update!()
                ))
                .bind(employee_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
                if status == "resigned" {
                    return Err(RosterRefusal::AlreadyResigned(code).into());
                }
                sqlx::query("UPDATE employees SET status = 'resigned', updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(employee_id)
                    .execute(&mut *tx)
                    .await?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO resignations (employee_id, resign_date, resign_type, disableatt, reason, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(employee_id)
                .bind(&r.resign_date)
                .bind(r.resign_type)
                .bind(r.disableatt)
                .bind(&r.reason)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                ids.push(id);
            }
            tx.commit().await?;
            Ok(ids)
        })
    }

    /// Total matches and one page of open resignations.
    pub async fn list_resignations(
        &self,
        f: &ResignationFilter,
        page: Page,
    ) -> Result<(i64, Vec<Resignation>), StoreError> {
        on_db!(self, |db| {
            let count: i64 = sqlx::query_scalar(concat!("SELECT COUNT(*)", resignations_where!()))
                .bind(f.id)
                .bind(f.employee)
                .bind(f.resign_type)
                .bind(&f.resign_date)
                .fetch_one(db.pool())
                .await?;
            if count == 0 || page.offset >= count {
                return Ok((count, Vec::new()));
            }
            let rows = sqlx::query_as(concat!(
                "SELECT r.id, r.resign_date, r.resign_type, r.disableatt, r.reason, e.id AS employee_id, e.emp_code, \
                 e.first_name, e.last_name",
                resignations_where!(),
                " ORDER BY r.id ASC LIMIT $5 OFFSET $6"
            ))
            .bind(f.id)
            .bind(f.employee)
            .bind(f.resign_type)
            .bind(&f.resign_date)
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(db.pool())
            .await?;
            Ok((count, rows))
        })
    }

    pub async fn resignation_by_id(&self, id: i64) -> Result<Option<Resignation>, StoreError> {
        let filter = ResignationFilter { id: Some(id), ..ResignationFilter::default() };
        Ok(self.list_resignations(&filter, Page { offset: 0, limit: 1 }).await?.1.into_iter().next())
    }

    /// Edits an open resignation.
    pub async fn update_resignation(&self, id: i64, r: &NewResignation) -> Result<bool, StoreError> {
        on_db!(self, |db| {
            let done = sqlx::query(
                "UPDATE resignations SET resign_date = $1, resign_type = $2, disableatt = $3, reason = $4 \
                 WHERE id = $5 AND reinstated_at IS NULL",
            )
            .bind(&r.resign_date)
            .bind(r.resign_type)
            .bind(r.disableatt)
            .bind(&r.reason)
            .bind(id)
            .execute(db.pool())
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Reinstates the employees of open resignations `resign_ids`; the resignations stay as
    /// history. Returns the reinstated employees' ids (unknown or closed ids are skipped).
    pub async fn reinstate(&self, resign_ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        let now = now_micros();
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            // A conditional UPDATE: of two concurrent reinstatements of one resignation, only
            // the first returns its employee.
            let employees: Vec<i64> = sqlx::query_scalar(concat!(
                "UPDATE resignations SET reinstated_at = $1 WHERE reinstated_at IS NULL AND ",
                in_list!("id", "$2"),
                " RETURNING employee_id"
            ))
            .bind(now)
            .bind(dialect::list_param(resign_ids))
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query(concat!(
                "UPDATE employees SET status = 'active', updated_at = $1 WHERE ",
                in_list!("id", "$2")
            ))
            .bind(now)
            .bind(dialect::list_param(&employees))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(employees)
        })
    }

    /// Assigns a terminal to an area (ZKBio Time: every terminal belongs to one area).
    pub async fn set_terminal_area(&self, device_id: i64, area_id: i64) -> Result<(), StoreError> {
        on_db!(self, |db| {
            sqlx::query(
                "INSERT INTO terminal_areas (device_id, area_id) VALUES ($1, $2) \
                 ON CONFLICT (device_id) DO UPDATE SET area_id = excluded.area_id",
            )
            .bind(device_id)
            .bind(area_id)
            .execute(db.pool())
            .await?;
            Ok(())
        })
    }

    /// The area of each terminal (area 1 when never assigned), by device id.
    pub async fn terminal_areas(&self, device_ids: &[i64]) -> Result<BTreeMap<i64, AreaRef>, StoreError> {
        let rows: Vec<(i64, i64, String, String)> = on_db!(self, |db| {
            sqlx::query_as(concat!(
                "SELECT d.value, a.id, a.area_code, a.area_name FROM ",
                list_rows!("$1", "d"),
                " JOIN areas AS a ON a.id = COALESCE((SELECT area_id FROM terminal_areas WHERE device_id = d.value), 1)",
            ))
            .bind(dialect::list_param(device_ids))
            .fetch_all(db.pool())
            .await?
        });
        Ok(rows.into_iter().map(|(d, id, area_code, area_name)| (d, AreaRef { id, area_code, area_name })).collect())
    }

    /// Forgets an employee's templates of the given types on every device copy the bridge
    /// keeps (so nothing re-sends them), and plans their removal from each device that held
    /// them. Returns the plan.
    pub async fn delete_employee_templates(
        &self,
        employee_id: i64,
        bio_types: &[i64],
    ) -> Result<Vec<(i64, RosterChange)>, StoreError> {
        let Some(employee) = self.employee_by_id(employee_id).await? else { return Err(StoreError::NotFound) };
        let pin = employee.fields.emp_code;
        let sealer = self.sealer();
        let (states, managed) = on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let mut states = dialect::device_states_for_pin(&mut tx, sealer, &pin).await?;
            let mut pending = dialect::pending_changes(&mut tx, sealer, None, Some(&pin)).await?;
            for device_id in pending.keys() {
                states
                    .entry(*device_id)
                    .or_insert_with(|| DeviceState { device_id: *device_id, ..DeviceState::default() });
            }
            for (device_id, state) in &mut states {
                state.pending = pending.remove(device_id).unwrap_or_default();
            }
            for sql in [
                concat!("DELETE FROM biometric_templates WHERE pin = $1 AND ", in_list!("bio_type", "$2")),
                concat!("DELETE FROM roster_templates WHERE pin = $1 AND ", in_list!("bio_type", "$2")),
            ] {
                sqlx::query(sql).bind(&pin).bind(dialect::list_param(bio_types)).execute(&mut *tx).await?;
            }
            let managed = dialect::managed_terminals(&mut tx, &states.keys().copied().collect()).await?;
            tx.commit().await?;
            (states, managed)
        });
        let mut plan = Vec::new();
        for state in states.values().filter(|s| managed.contains(&s.device_id)) {
            plan.extend(plan_template_removal(state, &pin, bio_types).into_iter().map(|c| (state.device_id, c)));
        }
        Ok(plan)
    }

    /// What every terminal should receive for one employee's current record: the user and
    /// their templates on each terminal of their areas, a delete on every other terminal that
    /// holds them (resigned and deleted employees are held nowhere).
    pub async fn plan_employee_sync(&self, emp_code: &str) -> Result<Vec<(i64, RosterChange)>, StoreError> {
        let pins = vec![emp_code.to_owned()];
        let sealer = self.sealer();
        let (desired, states, targets, mut pending, device_ids) = on_db!(self, |db| {
            let mut conn = db.pool().acquire().await?;
            let desired = dialect::desired_entries(&mut conn, sealer, &pins).await?;
            let states = dialect::device_states_for_pin(&mut conn, sealer, emp_code).await?;
            let targets = dialect::employee_target_devices(&mut conn, emp_code).await?;
            let mut device_ids: BTreeSet<i64> = states.keys().copied().collect();
            device_ids.extend(targets.iter().copied());
            // Every device with a command for this PIN counts too: one that got the user from the
            // queue may never have reported it back.
            let pending = dialect::pending_changes(&mut conn, sealer, None, Some(emp_code)).await?;
            device_ids.extend(pending.keys().copied());
            // A terminal that is not approved, or not assigned to an area, gets nothing the
            // operator did not queue for it by hand, not even a delete of a user it reported.
            let managed_ids = dialect::managed_terminals(&mut conn, &device_ids).await?;
            device_ids.retain(|id| managed_ids.contains(id));
            (desired, states, targets, pending, device_ids)
        });
        let managed: BTreeSet<String> = pins.into_iter().collect();
        let mut plan = Vec::new();
        for device_id in device_ids {
            let mut state =
                states.get(&device_id).cloned().unwrap_or(DeviceState { device_id, ..DeviceState::default() });
            state.pending = pending.remove(&device_id).unwrap_or_default();
            let wanted = if targets.contains(&device_id) { desired.clone() } else { BTreeMap::new() };
            plan.extend(plan_device(&state, &wanted, &managed).into_iter().map(|c| (device_id, c)));
        }
        Ok(plan)
    }

    /// What one terminal should receive to hold exactly the roster of its area (on first
    /// contact, when it comes back online, or when it replaced another one): missing or
    /// outdated users and templates, and deletes for users the roster no longer puts there.
    /// Users the roster has never heard of are left alone. A terminal that is pending, or not
    /// assigned to an area, gets nothing (see [`managed_terminals`](sqlite::managed_terminals)).
    pub async fn plan_device_sync(&self, device_id: i64) -> Result<Vec<(i64, RosterChange)>, StoreError> {
        let sealer = self.sealer();
        let (state, desired, managed) = on_db!(self, |db| {
            let mut conn = db.pool().acquire().await?;
            if dialect::managed_terminals(&mut conn, &BTreeSet::from([device_id])).await?.is_empty() {
                return Ok(Vec::new());
            }
            let wanted_pins: Vec<String> = sqlx::query_scalar(
                "SELECT e.emp_code FROM employees AS e JOIN employee_areas AS ea ON ea.employee_id = e.id \
                 JOIN terminal_areas AS ta ON ta.area_id = ea.area_id \
                 WHERE e.deleted_at IS NULL AND e.status = 'active' AND ta.device_id = $1 AND ta.area_id <> 1 \
                 GROUP BY e.emp_code",
            )
            .bind(device_id)
            .fetch_all(&mut *conn)
            .await?;
            let desired = dialect::desired_entries(&mut conn, sealer, &wanted_pins).await?;
            let mut state = dialect::device_state(&mut conn, sealer, device_id).await?;
            state.pending = dialect::pending_changes(&mut conn, sealer, Some(&[device_id]), None)
                .await?
                .remove(&device_id)
                .unwrap_or_default();
            let known: Vec<String> = sqlx::query_scalar(
                "SELECT emp_code FROM employees WHERE emp_code IN (SELECT pin FROM device_users WHERE device_id = $1 \
                 UNION SELECT pin FROM biometric_templates WHERE device_id = $1)",
            )
            .bind(device_id)
            .fetch_all(&mut *conn)
            .await?;
            let mut managed: BTreeSet<String> = known.into_iter().collect();
            managed.extend(wanted_pins);
            (state, desired, managed)
        });
        Ok(plan_device(&state, &desired, &managed).into_iter().map(|c| (device_id, c)).collect())
    }
}

fn bind_employee_filter<'q, Q>(q: Q, f: &'q EmployeeFilter) -> Q
where
    Q: BindAll<'q>,
    Option<i64>: sqlx::Encode<'q, Q::Db> + sqlx::Type<Q::Db>,
    &'q Option<String>: sqlx::Encode<'q, Q::Db> + sqlx::Type<Q::Db>,
{
    q.b(f.id)
        .b(&f.emp_code)
        .b(&f.emp_code_icontains)
        .b(&f.first_name)
        .b(&f.first_name_icontains)
        .b(&f.last_name)
        .b(&f.last_name_icontains)
        .b(f.department)
        .b(f.area)
        .b(f.app_status)
        .b(&f.status)
}

fn bind_employee_fields<'q, Q>(q: Q, f: &'q EmployeeFields) -> Q
where
    Q: BindAll<'q>,
    i64: sqlx::Encode<'q, Q::Db> + sqlx::Type<Q::Db>,
    Option<i64>: sqlx::Encode<'q, Q::Db> + sqlx::Type<Q::Db>,
    &'q String: sqlx::Encode<'q, Q::Db> + sqlx::Type<Q::Db>,
    &'q Option<String>: sqlx::Encode<'q, Q::Db> + sqlx::Type<Q::Db>,
{
    q.b(&f.emp_code)
        .b(&f.first_name)
        .b(&f.last_name)
        .b(&f.nickname)
        .b(&f.device_password)
        .b(&f.card_no)
        .b(f.department_id)
        .b(f.position_id)
        .b(&f.hire_date)
        .b(&f.gender)
        .b(&f.birthday)
        .b(f.verify_mode)
        .b(f.emp_type)
        .b(&f.contact_tel)
        .b(&f.office_tel)
        .b(&f.mobile)
        .b(&f.national)
        .b(&f.city)
        .b(&f.address)
        .b(&f.postcode)
        .b(&f.email)
        .b(&f.enroll_sn)
        .b(&f.ssn)
        .b(&f.religion)
        .b(f.dev_privilege)
        .b(f.app_status)
        .b(f.app_role)
}

/// `bind` over the query kinds sqlx has, on either engine, so one binder serves `query` and
/// `query_scalar`.
trait BindAll<'q>: Sized {
    type Db: sqlx::Database;
    fn b<T>(self, value: T) -> Self
    where
        T: 'q + sqlx::Encode<'q, Self::Db> + sqlx::Type<Self::Db>;
}

impl<'q, DB: sqlx::Database> BindAll<'q> for sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments> {
    type Db = DB;
    fn b<T>(self, value: T) -> Self
    where
        T: 'q + sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        self.bind(value)
    }
}

impl<'q, DB: sqlx::Database, O> BindAll<'q> for sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments> {
    type Db = DB;
    fn b<T>(self, value: T) -> Self
    where
        T: 'q + sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        self.bind(value)
    }
}

impl<'q, DB: sqlx::Database, O> BindAll<'q> for sqlx::query::QueryScalar<'q, DB, O, <DB as sqlx::Database>::Arguments> {
    type Db = DB;
    fn b<T>(self, value: T) -> Self
    where
        T: 'q + sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        self.bind(value)
    }
}

/// A template a device reported holding (its key, not its data).
#[derive(FromRow)]
struct DeviceTemplateRow {
    device_id: i64,
    pin: String,
    bio_type: i64,
    bio_no: i64,
    bio_index: i64,
}

#[derive(FromRow)]
struct UserRowForSync {
    device_id: i64,
    pin: String,
    name: String,
    privilege: Option<i64>,
    password: String,
    card: String,
    verify: Option<i64>,
}

/// What the desired device record of an employee is made of (sealed fields as stored).
#[derive(FromRow)]
struct EmployeeForSync {
    id: i64,
    emp_code: String,
    first_name: String,
    last_name: String,
    dev_privilege: i64,
    device_password: String,
    card_no: String,
    verify_mode: i64,
}

#[derive(FromRow)]
struct TemplateRowForSync {
    pin: String,
    bio_type: i64,
    bio_no: i64,
    bio_index: i64,
    record_kind: String,
    valid: Option<i64>,
    duress: Option<i64>,
    major_ver: Option<i64>,
    minor_ver: Option<i64>,
    format: String,
    template: String,
}

fn fold_states(
    sealer: Sealer<'_>,
    users: Vec<UserRowForSync>,
    templates: Vec<DeviceTemplateRow>,
) -> Result<BTreeMap<i64, DeviceState>, SealError> {
    let mut states: BTreeMap<i64, DeviceState> = BTreeMap::new();
    for u in users {
        let record = format!("{}/{}", u.device_id, u.pin);
        let password = sealer.open(sealed::DEVICE_USER_PASSWORD.kind, &record, &u.password)?;
        let card = sealer.open(sealed::DEVICE_USER_CARD.kind, &record, &u.card)?;
        let state = states
            .entry(u.device_id)
            .or_insert_with(|| DeviceState { device_id: u.device_id, ..DeviceState::default() });
        state.users.insert(
            u.pin.clone(),
            DeviceUser {
                pin: u.pin,
                name: u.name,
                privilege: u.privilege.unwrap_or(0),
                password,
                card,
                verify: u.verify,
            },
        );
    }
    for t in templates {
        let device_id = t.device_id;
        let state = states.entry(device_id).or_insert_with(|| DeviceState { device_id, ..DeviceState::default() });
        state.templates.entry(t.pin).or_default().insert(TemplateKey {
            bio_type: t.bio_type,
            no: t.bio_no,
            index: t.bio_index,
        });
    }
    Ok(states)
}

dual! {
    /// Writes the sealed fields of employee `id` (see [`EmployeeFields::without_private`]).
    pub(crate) async fn write_private_fields(
        conn: &mut Conn,
        sealer: Sealer<'_>,
        id: i64,
        f: &EmployeeFields,
    ) -> Result<(), StoreError> {
        let record = id.to_string();
        let seal = |column: &SealedColumn, value: &str| sealer.seal(column.kind, &record, value);
        let [ssn, national, religion, birthday, contact_tel, office_tel, mobile, email, address, city, postcode] =
            &sealed::EMPLOYEE_PRIVATE;
        sqlx::query(
            "UPDATE employees SET device_password = $1, card_no = $2, card_index = $3, ssn = $4, national = $5, \
             religion = $6, birthday = $7, contact_tel = $8, office_tel = $9, mobile = $10, email = $11, address = $12, \
             city = $13, postcode = $14 WHERE id = $15",
        )
        .bind(seal(&sealed::EMPLOYEE_PASSWORD, &f.device_password))
        .bind(seal(&sealed::EMPLOYEE_CARD, &f.card_no))
        .bind(card_index(sealer, &f.card_no))
        .bind(seal(ssn, &f.ssn))
        .bind(seal(national, &f.national))
        .bind(seal(religion, &f.religion))
        .bind(f.birthday.as_deref().map(|value| seal(birthday, value)))
        .bind(seal(contact_tel, &f.contact_tel))
        .bind(seal(office_tel, &f.office_tel))
        .bind(seal(mobile, &f.mobile))
        .bind(seal(email, &f.email))
        .bind(seal(address, &f.address))
        .bind(seal(city, &f.city))
        .bind(seal(postcode, &f.postcode))
        .bind(id)
        .execute(conn)
        .await?;
        Ok(())
    }


    pub(crate) async fn org_is_ancestor_or_self(
        conn: &mut Conn,
        kind: OrgKind,
        id: i64,
        candidate_parent: i64,
    ) -> Result<bool, StoreError> {
        // Walk up from the candidate parent; reaching `id` means a cycle. Depth is bounded by
        // the number of units, and trees are shallow in practice. Each unit on the way is
        // locked (SQLite: the write lock held from BEGIN IMMEDIATE): on PostgreSQL two
        // concurrent saves that would close a cycle between them each lock a unit the other
        // one updates, so one waits and then sees the other's parent, or they deadlock and one
        // fails; neither commits a cycle.
        let mut current = Some(candidate_parent);
        let mut steps = 0;
        while let Some(unit) = current {
            if unit == id {
                return Ok(true);
            }
            steps += 1;
            if steps > 10_000 {
                return Ok(true);
            }
            let parent: Option<Option<i64>> = match kind {
                OrgKind::Department => {
                    sqlx::query_scalar(concat!("SELECT parent_id FROM departments WHERE id = $1", for_no_key_update!()))
                }
                OrgKind::Area => {
                    sqlx::query_scalar(concat!("SELECT parent_id FROM areas WHERE id = $1", for_no_key_update!()))
                }
                OrgKind::Position => {
                    sqlx::query_scalar(concat!("SELECT parent_id FROM positions WHERE id = $1", for_no_key_update!()))
                }
            }
            .bind(unit)
            .fetch_optional(&mut *conn)
            .await?;
            current = parent.flatten();
        }
        Ok(false)
    }


    /// The terminals among `device_ids` that the roster manages: approved and assigned to an area
    /// other than area 1 ("Not Authorized"). Others are left alone: no user is sent to them, and
    /// none they hold is deleted (approving a terminal full of users must not wipe it).
    pub(crate) async fn managed_terminals(
        conn: &mut Conn,
        device_ids: &BTreeSet<i64>,
    ) -> Result<BTreeSet<i64>, StoreError> {
        let ids: Vec<i64> = device_ids.iter().copied().collect();
        let approved: Vec<i64> = sqlx::query_scalar(concat!(
            "SELECT d.id FROM devices AS d JOIN terminal_areas AS ta ON ta.device_id = d.id \
             WHERE d.approval = 'approved' AND ta.area_id <> 1 AND ",
            in_list!("d.id", "$1")
        ))
        .bind(dialect::list_param(&ids))
        .fetch_all(&mut *conn)
        .await?;
        Ok(approved.into_iter().collect())
    }

    /// What every device reported for one PIN, by device id (`pending` is filled by the caller).
    pub(crate) async fn device_states_for_pin(
        conn: &mut Conn,
        sealer: Sealer<'_>,
        pin: &str,
    ) -> Result<BTreeMap<i64, DeviceState>, StoreError> {
        let users: Vec<UserRowForSync> = sqlx::query_as(
            "SELECT device_id, pin, name, privilege, password, card, verify FROM device_users WHERE pin = $1",
        )
        .bind(pin)
        .fetch_all(&mut *conn)
        .await?;
        let templates: Vec<DeviceTemplateRow> =
            sqlx::query_as("SELECT device_id, pin, bio_type, bio_no, bio_index FROM biometric_templates WHERE pin = $1")
                .bind(pin)
                .fetch_all(&mut *conn)
                .await?;
        Ok(fold_states(sealer, users, templates)?)
    }

    /// User and template commands that will still run on each device, or ran after the device
    /// last reported the user, in queue order (whoever queued them): open ones (`queued`, `sent`),
    /// and succeeded ones the device has not reported back since.
    pub(crate) async fn pending_changes(
        conn: &mut Conn,
        sealer: Sealer<'_>,
        device_ids: Option<&[i64]>,
        pin: Option<&str>,
    ) -> Result<BTreeMap<i64, Vec<RosterChange>>, StoreError> {
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(concat!(
            "SELECT c.id, c.device_id, c.params FROM device_commands AS c \
             WHERE ($1 IS NULL OR ",
            in_list!("c.device_id", "$1"),
            ") \
             AND ($2 IS NULL OR c.pin = $2) \
             AND c.kind IN ('user_upsert', 'user_delete', 'fingerprint_upsert', 'fingerprint_delete', 'face_upsert', \
             'face_delete', 'biodata_upsert', 'biodata_delete') \
             AND (c.state IN ('queued', 'sent') OR (c.state = 'succeeded' AND c.completed_at > COALESCE( \
             (SELECT u.updated_at FROM device_users AS u WHERE u.device_id = c.device_id \
             AND u.pin = c.pin), 0))) \
             ORDER BY c.id"
        ))
        .bind(device_ids.map(dialect::list_param))
        .bind(pin)
        .fetch_all(&mut *conn)
        .await?;
        let mut out: BTreeMap<i64, Vec<RosterChange>> = BTreeMap::new();
        for (id, device_id, params) in rows {
            let params = sealer.open(sealed::COMMAND_PARAMS.kind, &id.to_string(), &params)?;
            let change = serde_json::from_str::<adms_protocol::DeviceCommand>(&params)
                .ok()
                .and_then(|c| RosterChange::from_command(&c));
            if let Some(change) = change {
                out.entry(device_id).or_default().push(change);
            }
        }
        Ok(out)
    }

    /// What one device reported, all PINs.
    pub(crate) async fn device_state(
        conn: &mut Conn,
        sealer: Sealer<'_>,
        device_id: i64,
    ) -> Result<DeviceState, StoreError> {
        let users: Vec<UserRowForSync> = sqlx::query_as(
            "SELECT device_id, pin, name, privilege, password, card, verify FROM device_users WHERE device_id = $1",
        )
        .bind(device_id)
        .fetch_all(&mut *conn)
        .await?;
        let templates: Vec<DeviceTemplateRow> = sqlx::query_as(
            "SELECT device_id, pin, bio_type, bio_no, bio_index FROM biometric_templates WHERE device_id = $1",
        )
        .bind(device_id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(fold_states(sealer, users, templates)?
            .remove(&device_id)
            .unwrap_or(DeviceState { device_id, ..DeviceState::default() }))
    }

    /// The devices an employee belongs on: every approved terminal assigned to one of their areas
    /// (area 1, "Not Authorized", holds nobody); none when resigned or deleted.
    pub(crate) async fn employee_target_devices(conn: &mut Conn, emp_code: &str) -> Result<BTreeSet<i64>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT d.id FROM devices AS d JOIN terminal_areas AS ta ON ta.device_id = d.id \
             JOIN employee_areas AS ea ON ea.area_id = ta.area_id \
             JOIN employees AS e ON e.id = ea.employee_id \
             WHERE e.emp_code = $1 AND e.deleted_at IS NULL AND e.status = 'active' AND d.approval = 'approved' \
             AND ta.area_id <> 1",
        )
        .bind(emp_code)
        .fetch_all(&mut *conn)
        .await?;
        Ok(ids.into_iter().collect())
    }

    /// The desired device record of each active employee among `pins`, with the templates the
    /// roster holds for them (`roster_templates`: adopted from devices by the `device_users` policy,
    /// never merely reported).
    pub(crate) async fn desired_entries(
        conn: &mut Conn,
        sealer: Sealer<'_>,
        pins: &[String],
    ) -> Result<BTreeMap<String, DesiredEntry>, StoreError> {
        let employees: Vec<EmployeeForSync> = sqlx::query_as(
            concat!("SELECT id, emp_code, first_name, last_name, dev_privilege, device_password, card_no, verify_mode FROM employees \
             WHERE deleted_at IS NULL AND status = 'active' AND ", in_list!("emp_code", "$1")),
        )
        .bind(dialect::list_param(pins))
        .fetch_all(&mut *conn)
        .await?;
        let templates: Vec<TemplateRowForSync> = sqlx::query_as(concat!(
            "SELECT pin, bio_type, bio_no, bio_index, record_kind, valid, duress, major_ver, minor_ver, format, \
             template FROM roster_templates WHERE ",
            in_list!("pin", "$1")
        ))
        .bind(dialect::list_param(pins))
        .fetch_all(&mut *conn)
        .await?;
        let mut roster_templates: BTreeMap<(String, TemplateKey), DeviceTemplate> = BTreeMap::new();
        for t in templates {
            let key = TemplateKey { bio_type: t.bio_type, no: t.bio_no, index: t.bio_index };
            let record = format!("{}/{}/{}/{}", t.pin, t.bio_type, t.bio_no, t.bio_index);
            let template = sealer.open(sealed::ROSTER_TEMPLATE.kind, &record, &t.template)?;
            roster_templates.insert(
                (t.pin.clone(), key),
                DeviceTemplate {
                    pin: t.pin,
                    key,
                    record_kind: t.record_kind,
                    valid: t.valid,
                    duress: t.duress,
                    major_ver: t.major_ver,
                    minor_ver: t.minor_ver,
                    format: t.format,
                    template,
                },
            );
        }
        let mut out = BTreeMap::new();
        for EmployeeForSync {
            id,
            emp_code: code,
            first_name: first,
            last_name: last,
            dev_privilege: privilege,
            device_password: password,
            card_no: card,
            verify_mode: verify,
        } in employees
        {
            let record = id.to_string();
            let password = sealer.open(sealed::EMPLOYEE_PASSWORD.kind, &record, &password)?;
            let card = sealer.open(sealed::EMPLOYEE_CARD.kind, &record, &card)?;
            // As the device will hold it (and report it back): cut to its name length.
            let full = format!("{first} {last}");
            let name =
                full.trim().chars().take(adms_protocol::command::NAME_MAX_CHARS).collect::<String>().trim_end().to_owned();
            let user =
                DeviceUser { pin: code.clone(), name, privilege, password, card, verify: (verify >= 0).then_some(verify) };
            let templates = roster_templates.iter().filter(|((pin, _), _)| *pin == code).map(|(_, t)| t.clone()).collect();
            out.insert(code, DesiredEntry { user, templates });
        }
        Ok(out)
    }
}

/// A PIN the roster can hold and a terminal can take: 1 to 24 ASCII letters or digits.
pub(crate) fn valid_pin(pin: &str) -> bool {
    (1..=adms_protocol::command::PIN_MAX_LEN).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_alphanumeric())
}
