//! Elevator levels (issue 19, CVSecurity's `eleLevel/*`; migration `0025_elevator_levels.sql`):
//! a time segment and a set of floors of elevator controllers (`access_floors`), and the
//! employees who may select those floors, each with an optional validity window. The floors
//! reach the controllers as `usereleauthorize` rows, planned with the rest of a controller's
//! access tables (`access::plan_access_sync`); every change here returns the controllers it
//! concerns, which the caller plans again, as for door levels.

use adms_model::access::AccessDate;

use crate::access::{AffectedControllers, LevelMember, check_name};
use crate::level_members::LevelKind;
use crate::{Store, StoreError, now_micros};

/// An elevator level: a time segment and a set of floors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EleLevel {
    pub id: i64,
    pub name: String,
    pub time_segment_id: i64,
    pub floor_ids: Vec<i64>,
    pub member_count: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Store {
    /// Every elevator level, by id.
    pub async fn ele_levels(&self) -> Result<Vec<EleLevel>, StoreError> {
        self.ele_levels_where(None, None).await
    }

    pub async fn ele_level(&self, id: i64) -> Result<Option<EleLevel>, StoreError> {
        Ok(self.ele_levels_where(Some(id), None).await?.pop())
    }

    /// The level with this name (names are unique).
    pub async fn ele_level_by_name(&self, name: &str) -> Result<Option<EleLevel>, StoreError> {
        Ok(self.ele_levels_where(None, Some(name)).await?.pop())
    }

    async fn ele_levels_where(&self, id: Option<i64>, name: Option<&str>) -> Result<Vec<EleLevel>, StoreError> {
        type LevelRow = (i64, String, i64, i64, i64, i64);
        let (levels, floors): (Vec<LevelRow>, Vec<(i64, i64)>) = on_db!(self, |db| {
            let levels = sqlx::query_as(
                "SELECT l.id, l.name, l.time_segment_id, \
                 (SELECT COUNT(*) FROM access_ele_level_members AS m WHERE m.level_id = l.id), l.created_at, \
                 l.updated_at FROM access_ele_levels AS l WHERE ($1 IS NULL OR l.id = $1) \
                 AND ($2 IS NULL OR l.name = $2) ORDER BY l.id",
            )
            .bind(id)
            .bind(name)
            .fetch_all(db.pool())
            .await?;
            let floors = sqlx::query_as(
                "SELECT lf.level_id, lf.floor_id FROM access_ele_level_floors AS lf \
                 JOIN access_ele_levels AS l ON l.id = lf.level_id \
                 WHERE ($1 IS NULL OR l.id = $1) AND ($2 IS NULL OR l.name = $2) ORDER BY lf.level_id, lf.floor_id",
            )
            .bind(id)
            .bind(name)
            .fetch_all(db.pool())
            .await?;
            (levels, floors)
        });
        Ok(levels
            .into_iter()
            .map(|(id, name, time_segment_id, member_count, created_at, updated_at)| EleLevel {
                id,
                name,
                time_segment_id,
                floor_ids: floors.iter().filter(|(l, _)| *l == id).map(|(_, f)| *f).collect(),
                member_count,
                created_at,
                updated_at,
            })
            .collect())
    }

    /// A new elevator level with no floors and no members (an unknown segment is invalid, a
    /// name already used a conflict).
    pub async fn create_ele_level(&self, name: &str, time_segment_id: i64) -> Result<EleLevel, StoreError> {
        check_name(name)?;
        if self.time_segment(time_segment_id).await?.is_none() {
            return Err(StoreError::Invalid(format!("time segment {time_segment_id} does not exist")));
        }
        let now = now_micros();
        let id: i64 = on_db!(self, |db| {
            sqlx::query_scalar(
                "INSERT INTO access_ele_levels (name, time_segment_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $3) RETURNING id",
            )
            .bind(name.trim())
            .bind(time_segment_id)
            .bind(now)
            .fetch_one(db.pool())
            .await?
        });
        self.ele_level(id).await?.ok_or(StoreError::NotFound)
    }

    /// Renames a level or moves it to another segment; returns the controllers of its floors.
    pub async fn update_ele_level(
        &self,
        id: i64,
        name: &str,
        time_segment_id: i64,
    ) -> Result<AffectedControllers, StoreError> {
        check_name(name)?;
        if self.time_segment(time_segment_id).await?.is_none() {
            return Err(StoreError::Invalid(format!("time segment {time_segment_id} does not exist")));
        }
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let updated = sqlx::query(
                "UPDATE access_ele_levels SET name = $1, time_segment_id = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(name.trim())
            .bind(time_segment_id)
            .bind(now_micros())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            let devices: Vec<i64> =
                sqlx::query_scalar(LevelKind::Elevator.controllers_sql()).bind(id).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            Ok(devices.into_iter().collect())
        })
    }

    /// Deletes a level with its floors and members; returns the controllers it reached.
    pub async fn delete_ele_level(&self, id: i64) -> Result<AffectedControllers, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let devices: Vec<i64> =
                sqlx::query_scalar(LevelKind::Elevator.controllers_sql()).bind(id).fetch_all(&mut *tx).await?;
            for sql in [
                "DELETE FROM access_ele_level_floors WHERE level_id = $1",
                "DELETE FROM access_ele_level_members WHERE level_id = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
            let deleted = sqlx::query("DELETE FROM access_ele_levels WHERE id = $1").bind(id).execute(&mut *tx).await?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            tx.commit().await?;
            Ok(devices.into_iter().collect())
        })
    }

    /// Adds floors to a level (floors already in it are kept); returns the controllers of its
    /// floors afterwards. An unknown level is not found, an unknown floor invalid.
    pub async fn add_ele_level_floors(
        &self,
        level_id: i64,
        floor_ids: &[i64],
    ) -> Result<AffectedControllers, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            dialect::lock_level_in(&mut tx, LevelKind::Elevator, level_id).await?;
            for floor_id in floor_ids {
                let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM access_floors WHERE id = $1")
                    .bind(floor_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Err(StoreError::Invalid(format!("floor {floor_id} does not exist")));
                }
                sqlx::query(
                    "INSERT INTO access_ele_level_floors (level_id, floor_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(level_id)
                .bind(floor_id)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("UPDATE access_ele_levels SET updated_at = $1 WHERE id = $2")
                .bind(now_micros())
                .bind(level_id)
                .execute(&mut *tx)
                .await?;
            let devices: Vec<i64> =
                sqlx::query_scalar(LevelKind::Elevator.controllers_sql()).bind(level_id).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            Ok(devices.into_iter().collect())
        })
    }

    /// Removes a floor from a level; returns the controllers of its floors before the removal.
    pub async fn remove_ele_level_floor(
        &self,
        level_id: i64,
        floor_id: i64,
    ) -> Result<AffectedControllers, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            dialect::lock_level_in(&mut tx, LevelKind::Elevator, level_id).await?;
            let devices: Vec<i64> =
                sqlx::query_scalar(LevelKind::Elevator.controllers_sql()).bind(level_id).fetch_all(&mut *tx).await?;
            let deleted = sqlx::query("DELETE FROM access_ele_level_floors WHERE level_id = $1 AND floor_id = $2")
                .bind(level_id)
                .bind(floor_id)
                .execute(&mut *tx)
                .await?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query("UPDATE access_ele_levels SET updated_at = $1 WHERE id = $2")
                .bind(now_micros())
                .bind(level_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(devices.into_iter().collect())
        })
    }

    /// The members of an elevator level, by employee code.
    pub async fn ele_level_members(&self, level_id: i64) -> Result<Vec<LevelMember>, StoreError> {
        self.level_members(LevelKind::Elevator, level_id).await
    }

    /// Puts an employee in an elevator level with a validity window (replacing the window when
    /// already a member); returns the controllers of the level's floors. An unknown level is
    /// not found, an unknown (or deleted) employee invalid.
    pub async fn put_ele_level_member(
        &self,
        level_id: i64,
        emp_code: &str,
        valid_from: Option<AccessDate>,
        valid_until: Option<AccessDate>,
    ) -> Result<AffectedControllers, StoreError> {
        self.put_level_member(LevelKind::Elevator, level_id, emp_code, valid_from, valid_until).await
    }

    /// Takes an employee out of an elevator level; returns the controllers of its floors.
    pub async fn remove_ele_level_member(
        &self,
        level_id: i64,
        emp_code: &str,
    ) -> Result<AffectedControllers, StoreError> {
        self.remove_level_member(LevelKind::Elevator, level_id, emp_code).await
    }

    /// Elevator controllers: approved devices with at least one declared floor, by id.
    pub async fn elevator_controller_ids(&self) -> Result<Vec<i64>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_scalar(
                "SELECT v.id FROM devices AS v WHERE v.approval = 'approved' AND v.deleted_at IS NULL \
                 AND EXISTS (SELECT 1 FROM access_floors AS f WHERE f.device_id = v.id) ORDER BY v.id",
            )
            .fetch_all(db.pool())
            .await?)
        })
    }
}
