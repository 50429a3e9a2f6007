//! Who is in a level, for both kinds of level: door levels (`access_levels`, CVSecurity's
//! `accLevel/*`) and elevator levels (`access_ele_levels`, `eleLevel/*`). Their members follow
//! the same rules (an employee of the roster, an optional validity window of local dates) in
//! tables of their own; the rules are written here once, and each statement once per table.

use adms_model::access::AccessDate;

use crate::access::{AffectedControllers, LevelMember, read_date};
use crate::{Store, StoreError, now_micros};

/// Which levels: the tables a statement names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LevelKind {
    /// Door levels: `access_level_members`, controllers of the level's doors.
    Door,
    /// Elevator levels: `access_ele_level_members`, controllers of the level's floors.
    Elevator,
}

impl LevelKind {
    /// The members of level `$1`, by employee code.
    fn members_sql(self) -> &'static str {
        match self {
            LevelKind::Door => {
                "SELECT e.id, e.emp_code, m.valid_from, m.valid_until FROM access_level_members AS m \
                 JOIN employees AS e ON e.id = m.employee_id WHERE m.level_id = $1 ORDER BY e.emp_code"
            }
            LevelKind::Elevator => {
                "SELECT e.id, e.emp_code, m.valid_from, m.valid_until FROM access_ele_level_members AS m \
                 JOIN employees AS e ON e.id = m.employee_id WHERE m.level_id = $1 ORDER BY e.emp_code"
            }
        }
    }

    /// Puts employee `$2` in level `$1` from `$3` until `$4` (at `$5`), replacing a window.
    fn put_member_sql(self) -> &'static str {
        match self {
            LevelKind::Door => {
                "INSERT INTO access_level_members (level_id, employee_id, valid_from, valid_until, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (level_id, employee_id) DO UPDATE SET \
                 valid_from = excluded.valid_from, valid_until = excluded.valid_until, updated_at = excluded.updated_at"
            }
            LevelKind::Elevator => {
                "INSERT INTO access_ele_level_members (level_id, employee_id, valid_from, valid_until, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (level_id, employee_id) DO UPDATE SET \
                 valid_from = excluded.valid_from, valid_until = excluded.valid_until, updated_at = excluded.updated_at"
            }
        }
    }

    /// Takes the employee whose code is `$2` out of level `$1`.
    fn remove_member_sql(self) -> &'static str {
        match self {
            LevelKind::Door => {
                "DELETE FROM access_level_members WHERE level_id = $1 AND employee_id = \
                 (SELECT id FROM employees WHERE emp_code = $2)"
            }
            LevelKind::Elevator => {
                "DELETE FROM access_ele_level_members WHERE level_id = $1 AND employee_id = \
                 (SELECT id FROM employees WHERE emp_code = $2)"
            }
        }
    }

    /// The controllers level `$1` reaches: those of its doors, or of its floors.
    pub(crate) fn controllers_sql(self) -> &'static str {
        match self {
            LevelKind::Door => {
                "SELECT DISTINCT d.device_id FROM access_level_doors AS ld JOIN access_doors AS d ON d.id = ld.door_id \
                 WHERE ld.level_id = $1"
            }
            LevelKind::Elevator => {
                "SELECT DISTINCT f.device_id FROM access_ele_level_floors AS lf \
                 JOIN access_floors AS f ON f.id = lf.floor_id WHERE lf.level_id = $1"
            }
        }
    }
}

impl Store {
    /// The members of a level, by employee code.
    pub(crate) async fn level_members(&self, kind: LevelKind, level_id: i64) -> Result<Vec<LevelMember>, StoreError> {
        let rows: Vec<(i64, String, Option<String>, Option<String>)> =
            on_db!(self, |db| sqlx::query_as(kind.members_sql()).bind(level_id).fetch_all(db.pool()).await?);
        rows.into_iter()
            .map(|(employee_id, emp_code, from, until)| {
                Ok(LevelMember { employee_id, emp_code, valid_from: read_date(from)?, valid_until: read_date(until)? })
            })
            .collect()
    }

    /// Puts an employee in a level with a validity window (replacing the window when already a
    /// member); returns the controllers the level reaches. An unknown level is not found, an
    /// unknown (or deleted) employee invalid.
    pub(crate) async fn put_level_member(
        &self,
        kind: LevelKind,
        level_id: i64,
        emp_code: &str,
        valid_from: Option<AccessDate>,
        valid_until: Option<AccessDate>,
    ) -> Result<AffectedControllers, StoreError> {
        if let (Some(from), Some(until)) = (valid_from, valid_until)
            && from > until
        {
            return Err(StoreError::Invalid("valid_until is before valid_from".into()));
        }
        let now = now_micros();
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            dialect::lock_level_in(&mut tx, kind, level_id).await?;
            let employee: Option<i64> =
                sqlx::query_scalar("SELECT id FROM employees WHERE emp_code = $1 AND deleted_at IS NULL")
                    .bind(emp_code)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(employee_id) = employee else {
                return Err(StoreError::Invalid(format!("employee {emp_code:?} does not exist")));
            };
            sqlx::query(kind.put_member_sql())
                .bind(level_id)
                .bind(employee_id)
                .bind(valid_from.map(|d| d.to_string()))
                .bind(valid_until.map(|d| d.to_string()))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let devices: Vec<i64> =
                sqlx::query_scalar(kind.controllers_sql()).bind(level_id).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            Ok(devices.into_iter().collect())
        })
    }

    /// Takes an employee out of a level; returns the controllers the level reaches. An unknown
    /// level, or an employee who is not a member, is not found.
    pub(crate) async fn remove_level_member(
        &self,
        kind: LevelKind,
        level_id: i64,
        emp_code: &str,
    ) -> Result<AffectedControllers, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            dialect::lock_level_in(&mut tx, kind, level_id).await?;
            let deleted = sqlx::query(kind.remove_member_sql()).bind(level_id).bind(emp_code).execute(&mut *tx).await?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            let devices: Vec<i64> =
                sqlx::query_scalar(kind.controllers_sql()).bind(level_id).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            Ok(devices.into_iter().collect())
        })
    }
}

dual! {
    /// Locks a level's row for a change of its doors, floors or members (NotFound when it does
    /// not exist), so two changes of one level plan in the order they committed.
    pub(crate) async fn lock_level_in(conn: &mut Conn, kind: LevelKind, level_id: i64) -> Result<(), StoreError> {
        let sql = match kind {
            LevelKind::Door => concat!("SELECT id FROM access_levels WHERE id = $1", for_no_key_update!()),
            LevelKind::Elevator => concat!("SELECT id FROM access_ele_levels WHERE id = $1", for_no_key_update!()),
        };
        let found: Option<i64> = sqlx::query_scalar(sql).bind(level_id).fetch_optional(&mut *conn).await?;
        found.map(|_| ()).ok_or(StoreError::NotFound)
    }
}
