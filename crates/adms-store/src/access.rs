//! Access control (issue 19): doors, time segments, holidays, access levels and their members
//! (migration `0020_access_model.sql`), and the provisioning plan of one access controller.
//!
//! Doors are derived from what a controller reports (`LockCount`, `ReaderCount`, `AuxInCount`,
//! `AuxOutCount` in its registry or options), in the transaction that stores the report
//! ([`derive_doors_in`](sqlite::derive_doors_in)): a door is created for each lock the
//! controller has, named `<alias or SN>-<n>` until an operator renames it, and never deleted
//! because a later report counts fewer. Auxiliary outputs (migration
//! `0023_aux_outputs_and_visitors.sql`) are derived the same way from `AuxOutCount`, named
//! `<alias or SN>-AuxOut<n>`.
//!
//! # What a controller should hold, and what it holds
//!
//! [`Store::plan_access_sync`] builds the desired tables of one controller from the model
//! (every active employee who is a member of a level with a door on it, their doors per time
//! segment, the segments, every holiday) and the tables it holds, then hands both to the pure
//! planner (`adms_model::access::plan`). The controller's tables are never read back: what it
//! holds is the access commands queued for it and not refused (`queued`, `sent` or `succeeded`),
//! applied in queue order. Planning while earlier changes are still queued therefore adds
//! nothing, a controller that is offline keeps its queue until it polls, and a command it
//! refused (or that expired) is planned again. The server queues each change under its row's
//! de-duplication key, so a burst of changes leaves one command per row in the queue.

use std::collections::{BTreeMap, BTreeSet};

use adms_model::access::{
    AccessChange, AccessDate, ControllerRows, ControllerUser, FloorGrant, Grant, LocalTime, Row, RowKey, Table,
    WeeklySchedule, desired_rows_with_floors, plan, visitor_user,
};
use adms_protocol::DeviceCommand;
use adms_protocol::access::AccessTable;
use adms_vault::Sealer;
use sqlx::FromRow;

use crate::level_members::LevelKind;
use crate::{Store, StoreError, now_micros, sealed};

/// Doors a controller may have (the `access_doors` check and the userauthorize bitmask).
pub const MAX_DOORS: i64 = 32;

/// A door of an access controller.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AccessDoor {
    pub id: i64,
    pub device_id: i64,
    pub sn: String,
    pub door_no: i64,
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An auxiliary output of an access controller (a relay that is not a lock).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AccessAuxOutput {
    pub id: i64,
    pub device_id: i64,
    pub sn: String,
    pub aux_no: i64,
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A floor of an elevator controller.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AccessFloor {
    pub id: i64,
    pub device_id: i64,
    pub sn: String,
    pub floor_no: i64,
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Floors an elevator controller may have (the `access_floors` check; the floor mask's size).
pub const MAX_FLOORS: i64 = 256;

/// Auxiliary outputs a controller may have (the `access_aux_outputs` check; the output byte of
/// `CONTROL DEVICE` could name more, no controller has them).
pub const MAX_AUX_OUTPUTS: i64 = 32;

/// An auxiliary output's name until an operator renames it: `<alias or SN>-AuxOut<n>` (our
/// choice: CVSecurity's own default is not in the reference; migration 0023 names existing
/// ones the same way).
fn aux_output_name(device_name: &str, aux_no: i64) -> String {
    format!("{device_name}-AuxOut{aux_no}")
}

/// A time segment: weekly intervals and the intervals of each holiday type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeSegment {
    pub id: i64,
    pub name: String,
    pub schedule: WeeklySchedule,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A holiday: sent to every access controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessHoliday {
    pub id: i64,
    pub day: AccessDate,
    pub name: String,
    pub holiday_type: u8,
    pub yearly: bool,
}

/// An access level: a time segment and a set of doors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLevel {
    pub id: i64,
    pub name: String,
    pub time_segment_id: i64,
    pub door_ids: Vec<i64>,
    pub member_count: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An employee in a level, with the validity window of the membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelMember {
    pub employee_id: i64,
    pub emp_code: String,
    pub valid_from: Option<AccessDate>,
    pub valid_until: Option<AccessDate>,
}

/// The access controllers a change concerns: each must be planned again.
pub type AffectedControllers = BTreeSet<i64>;

#[derive(FromRow)]
struct SegmentRow {
    id: i64,
    name: String,
    schedule: String,
    created_at: i64,
    updated_at: i64,
}

impl SegmentRow {
    fn into_segment(self) -> Result<TimeSegment, StoreError> {
        let schedule = read_schedule(self.id, &self.schedule)?;
        Ok(TimeSegment {
            id: self.id,
            name: self.name,
            schedule,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn read_schedule(id: i64, json: &str) -> Result<WeeklySchedule, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Invalid(format!("stored schedule of time segment {id}: {e}")))
}

pub(crate) fn read_date(text: Option<String>) -> Result<Option<AccessDate>, StoreError> {
    text.map(|t| t.parse::<AccessDate>().map_err(|e| StoreError::Invalid(format!("stored date: {e}")))).transpose()
}

fn schedule_json(schedule: &WeeklySchedule) -> Result<String, StoreError> {
    schedule.validate().map_err(|e| StoreError::Invalid(e.to_string()))?;
    serde_json::to_string(schedule).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// A name for a door, a level or a segment: 1 to 100 characters, no control characters.
pub(crate) fn check_name(name: &str) -> Result<(), StoreError> {
    if name.trim().is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid("name: 1 to 100 characters, no control characters".into()));
    }
    Ok(())
}

/// The command kinds of the access tables, as the queue stores them.
pub(crate) const ACCESS_KINDS: [&str; 11] = [
    "access_user_upsert",
    "access_user_delete",
    "access_authorize_upsert",
    "access_authorize_delete",
    "access_ele_authorize_upsert",
    "access_ele_authorize_delete",
    "access_timezone_upsert",
    "access_timezone_delete",
    "access_holiday_upsert",
    "access_holiday_delete",
    "access_clear",
];

fn wire_table(table: Table) -> AccessTable {
    match table {
        Table::User => AccessTable::User,
        Table::Authorize => AccessTable::Userauthorize,
        Table::EleAuthorize => AccessTable::Usereleauthorize,
        Table::Timezone => AccessTable::Timezone,
        Table::Holiday => AccessTable::Holiday,
    }
}

/// The device command that performs `change` (encoded and validated by the command queue).
pub fn change_command(change: &AccessChange) -> DeviceCommand {
    match change {
        AccessChange::Upsert(Row::User(u)) => DeviceCommand::AccessUserUpsert {
            pin: u.pin.clone(),
            name: u.name.clone(),
            card: u.card.clone(),
            password: u.password.clone(),
            group: 1,
            start_date: u.start_date.map(AccessDate::yyyymmdd),
            end_date: u.end_date.map(AccessDate::yyyymmdd),
            privilege: 0,
        },
        AccessChange::Upsert(Row::Authorize { pin, timezone_id, doors }) => {
            DeviceCommand::AccessAuthorizeUpsert { pin: pin.clone(), timezone_id: *timezone_id, doors: *doors }
        }
        AccessChange::Upsert(Row::EleAuthorize { pin, timezone_id, floors }) => {
            DeviceCommand::AccessEleAuthorizeUpsert {
                pin: pin.clone(),
                timezone_id: *timezone_id,
                floors: floors.iter().copied().collect(),
            }
        }
        AccessChange::Delete(RowKey::EleAuthorize(pin, timezone_id)) => {
            DeviceCommand::AccessEleAuthorizeDelete { pin: pin.clone(), timezone_id: *timezone_id }
        }
        AccessChange::Upsert(Row::Timezone { timezone_id, intervals }) => {
            DeviceCommand::AccessTimezoneUpsert { timezone_id: *timezone_id, intervals: intervals.clone() }
        }
        AccessChange::Upsert(Row::Holiday { date, holiday_type, yearly }) => {
            DeviceCommand::AccessHolidayUpsert { date: date.yyyymmdd(), holiday_type: *holiday_type, yearly: *yearly }
        }
        AccessChange::Delete(RowKey::User(pin)) => DeviceCommand::AccessUserDelete { pin: pin.clone() },
        AccessChange::Delete(RowKey::Authorize(pin, timezone_id)) => {
            DeviceCommand::AccessAuthorizeDelete { pin: pin.clone(), timezone_id: *timezone_id }
        }
        AccessChange::Delete(RowKey::Timezone(timezone_id)) => {
            DeviceCommand::AccessTimezoneDelete { timezone_id: *timezone_id }
        }
        AccessChange::Delete(RowKey::Holiday(date)) => DeviceCommand::AccessHolidayDelete { date: date.yyyymmdd() },
        AccessChange::Clear(table) => DeviceCommand::AccessClear { table: wire_table(*table) },
    }
}

/// The change a queued access command performs; `None` for other commands (and for a stored
/// value no controller could hold, which then counts as not sent).
pub fn command_change(command: &DeviceCommand) -> Option<AccessChange> {
    let date = |d: u32| AccessDate::from_yyyymmdd(d).ok();
    Some(match command {
        DeviceCommand::AccessUserUpsert { pin, name, card, password, start_date, end_date, .. } => {
            AccessChange::Upsert(Row::User(ControllerUser {
                pin: pin.clone(),
                name: name.clone(),
                card: card.clone(),
                password: password.clone(),
                start_date: start_date.and_then(date),
                end_date: end_date.and_then(date),
            }))
        }
        DeviceCommand::AccessAuthorizeUpsert { pin, timezone_id, doors } => {
            AccessChange::Upsert(Row::Authorize { pin: pin.clone(), timezone_id: *timezone_id, doors: *doors })
        }
        DeviceCommand::AccessEleAuthorizeUpsert { pin, timezone_id, floors } => {
            AccessChange::Upsert(Row::EleAuthorize {
                pin: pin.clone(),
                timezone_id: *timezone_id,
                floors: floors.iter().copied().collect(),
            })
        }
        DeviceCommand::AccessEleAuthorizeDelete { pin, timezone_id } => {
            AccessChange::Delete(RowKey::EleAuthorize(pin.clone(), *timezone_id))
        }
        DeviceCommand::AccessTimezoneUpsert { timezone_id, intervals } => {
            AccessChange::Upsert(Row::Timezone { timezone_id: *timezone_id, intervals: intervals.clone() })
        }
        DeviceCommand::AccessHolidayUpsert { date: d, holiday_type, yearly } => {
            AccessChange::Upsert(Row::Holiday { date: date(*d)?, holiday_type: *holiday_type, yearly: *yearly })
        }
        DeviceCommand::AccessUserDelete { pin } => AccessChange::Delete(RowKey::User(pin.clone())),
        DeviceCommand::AccessAuthorizeDelete { pin, timezone_id } => {
            AccessChange::Delete(RowKey::Authorize(pin.clone(), *timezone_id))
        }
        DeviceCommand::AccessTimezoneDelete { timezone_id } => AccessChange::Delete(RowKey::Timezone(*timezone_id)),
        DeviceCommand::AccessHolidayDelete { date: d } => AccessChange::Delete(RowKey::Holiday(date(*d)?)),
        DeviceCommand::AccessClear { table } => AccessChange::Clear(match table {
            AccessTable::User => Table::User,
            AccessTable::Userauthorize => Table::Authorize,
            AccessTable::Usereleauthorize => Table::EleAuthorize,
            AccessTable::Timezone => Table::Timezone,
            AccessTable::Holiday => Table::Holiday,
        }),
        _ => return None,
    })
}

impl Store {
    /// Doors of every controller (or of one), by controller and door number.
    pub async fn access_doors(&self, device_id: Option<i64>) -> Result<Vec<AccessDoor>, StoreError> {
        let sql = const_format_doors::LIST;
        on_db!(self, |db| Ok(sqlx::query_as::<_, AccessDoor>(sql).bind(device_id).fetch_all(db.pool()).await?))
    }

    /// One door.
    pub async fn access_door(&self, id: i64) -> Result<Option<AccessDoor>, StoreError> {
        let sql = const_format_doors::ONE;
        on_db!(self, |db| Ok(sqlx::query_as::<_, AccessDoor>(sql).bind(id).fetch_optional(db.pool()).await?))
    }

    /// Renames a door (names are shown to people; controllers never see them).
    pub async fn rename_access_door(&self, id: i64, name: &str) -> Result<AccessDoor, StoreError> {
        check_name(name)?;
        let updated = on_db!(self, |db| {
            sqlx::query("UPDATE access_doors SET name = $1, updated_at = $2 WHERE id = $3")
                .bind(name.trim())
                .bind(now_micros())
                .bind(id)
                .execute(db.pool())
                .await?
                .rows_affected()
        });
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        self.access_door(id).await?.ok_or(StoreError::NotFound)
    }

    /// Auxiliary outputs of every controller (or of one), by controller and output number.
    pub async fn access_aux_outputs(&self, device_id: Option<i64>) -> Result<Vec<AccessAuxOutput>, StoreError> {
        let sql = const_format_doors::AUX_LIST;
        on_db!(self, |db| Ok(sqlx::query_as::<_, AccessAuxOutput>(sql).bind(device_id).fetch_all(db.pool()).await?))
    }

    /// One auxiliary output.
    pub async fn access_aux_output(&self, id: i64) -> Result<Option<AccessAuxOutput>, StoreError> {
        let sql = const_format_doors::AUX_ONE;
        on_db!(self, |db| Ok(sqlx::query_as::<_, AccessAuxOutput>(sql).bind(id).fetch_optional(db.pool()).await?))
    }

    /// The floors of every elevator controller (or of one), by controller and floor number.
    pub async fn access_floors(&self, device_id: Option<i64>) -> Result<Vec<AccessFloor>, StoreError> {
        let sql = const_format_doors::FLOOR_LIST;
        on_db!(self, |db| Ok(sqlx::query_as::<_, AccessFloor>(sql).bind(device_id).fetch_all(db.pool()).await?))
    }

    /// One floor.
    pub async fn access_floor(&self, id: i64) -> Result<Option<AccessFloor>, StoreError> {
        let sql = const_format_doors::FLOOR_ONE;
        on_db!(self, |db| Ok(sqlx::query_as::<_, AccessFloor>(sql).bind(id).fetch_optional(db.pool()).await?))
    }

    /// Declares an elevator controller's floor count (no registry key for it is known): floors
    /// 1 to `count` exist afterwards, new ones named `<alias or SN>-<n>` (CVSecurity's default),
    /// existing ones keeping their names, and those above `count` deleted. Returns the floors.
    pub async fn set_elevator_floors(&self, device_id: i64, count: i64) -> Result<Vec<AccessFloor>, StoreError> {
        if !(0..=MAX_FLOORS).contains(&count) {
            return Err(StoreError::Invalid(format!("floor_count: 0 to {MAX_FLOORS}")));
        }
        let now = now_micros();
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let device: Option<(String, String)> =
                sqlx::query_as("SELECT sn, alias FROM devices WHERE id = $1 AND deleted_at IS NULL")
                    .bind(device_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((sn, alias)) = device else { return Err(StoreError::NotFound) };
            let device_name = if alias.trim().is_empty() { sn } else { alias };
            // Elevator levels lose the floors that go (the caller plans the controller again).
            sqlx::query(
                "DELETE FROM access_ele_level_floors WHERE floor_id IN \
                 (SELECT id FROM access_floors WHERE device_id = $1 AND floor_no > $2)",
            )
            .bind(device_id)
            .bind(count)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM access_floors WHERE device_id = $1 AND floor_no > $2")
                .bind(device_id)
                .bind(count)
                .execute(&mut *tx)
                .await?;
            for floor_no in 1..=count {
                sqlx::query(
                    "INSERT INTO access_floors (device_id, floor_no, name, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $4) ON CONFLICT (device_id, floor_no) DO NOTHING",
                )
                .bind(device_id)
                .bind(floor_no)
                .bind(format!("{device_name}-{floor_no}"))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        self.access_floors(Some(device_id)).await
    }

    /// Derives a controller's doors from the registry/options it has stored (what the upload
    /// path does as it stores them); for controllers whose report predates the access model.
    pub async fn refresh_access_doors(&self, device_id: i64) -> Result<(), StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let options: Vec<(String, String)> = sqlx::query_as(
                "SELECT key, value FROM device_options WHERE device_id = $1 AND key IN \
                 ('LockCount', 'ReaderCount', 'AuxInCount', 'AuxOutCount')",
            )
            .bind(device_id)
            .fetch_all(&mut *tx)
            .await?;
            dialect::derive_doors_in(&mut tx, device_id, &options).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Every time segment, by id.
    pub async fn time_segments(&self) -> Result<Vec<TimeSegment>, StoreError> {
        let rows: Vec<SegmentRow> = on_db!(self, |db| {
            sqlx::query_as("SELECT id, name, schedule, created_at, updated_at FROM access_time_segments ORDER BY id")
                .fetch_all(db.pool())
                .await?
        });
        rows.into_iter().map(SegmentRow::into_segment).collect()
    }

    pub async fn time_segment(&self, id: i64) -> Result<Option<TimeSegment>, StoreError> {
        let row: Option<SegmentRow> = on_db!(self, |db| {
            sqlx::query_as("SELECT id, name, schedule, created_at, updated_at FROM access_time_segments WHERE id = $1")
                .bind(id)
                .fetch_optional(db.pool())
                .await?
        });
        row.map(SegmentRow::into_segment).transpose()
    }

    /// A new time segment (a name already used is a conflict).
    pub async fn create_time_segment(&self, name: &str, schedule: &WeeklySchedule) -> Result<TimeSegment, StoreError> {
        check_name(name)?;
        let json = schedule_json(schedule)?;
        let now = now_micros();
        let id: i64 = on_db!(self, |db| {
            sqlx::query_scalar(
                "INSERT INTO access_time_segments (name, schedule, created_at, updated_at) VALUES ($1, $2, $3, $3) \
                 RETURNING id",
            )
            .bind(name.trim())
            .bind(&json)
            .bind(now)
            .fetch_one(db.pool())
            .await?
        });
        self.time_segment(id).await?.ok_or(StoreError::NotFound)
    }

    /// Changes a segment; returns the controllers holding it through a level.
    pub async fn update_time_segment(
        &self,
        id: i64,
        name: &str,
        schedule: &WeeklySchedule,
    ) -> Result<AffectedControllers, StoreError> {
        check_name(name)?;
        let json = schedule_json(schedule)?;
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let updated =
                sqlx::query("UPDATE access_time_segments SET name = $1, schedule = $2, updated_at = $3 WHERE id = $4")
                    .bind(name.trim())
                    .bind(&json)
                    .bind(now_micros())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            let devices: Vec<i64> = sqlx::query_scalar(
                "SELECT d.device_id FROM access_levels AS l JOIN access_level_doors AS ld ON ld.level_id = l.id \
                 JOIN access_doors AS d ON d.id = ld.door_id WHERE l.time_segment_id = $1 \
                 UNION SELECT f.device_id FROM access_ele_levels AS l JOIN access_ele_level_floors AS lf \
                 ON lf.level_id = l.id JOIN access_floors AS f ON f.id = lf.floor_id WHERE l.time_segment_id = $1",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(devices.into_iter().collect())
        })
    }

    /// Deletes a segment no level uses (one in use is a conflict).
    pub async fn delete_time_segment(&self, id: i64) -> Result<(), StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let used: Option<i64> =
                sqlx::query_scalar("SELECT id FROM access_levels WHERE time_segment_id = $1 LIMIT 1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(level) = used {
                return Err(StoreError::Conflict(format!("time segment {id} is used by access level {level}")));
            }
            let used: Option<i64> =
                sqlx::query_scalar("SELECT id FROM access_ele_levels WHERE time_segment_id = $1 LIMIT 1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(level) = used {
                return Err(StoreError::Conflict(format!("time segment {id} is used by elevator level {level}")));
            }
            let deleted =
                sqlx::query("DELETE FROM access_time_segments WHERE id = $1").bind(id).execute(&mut *tx).await?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Every holiday, by date.
    pub async fn access_holidays(&self) -> Result<Vec<AccessHoliday>, StoreError> {
        let rows: Vec<(i64, String, String, i64, bool)> = on_db!(self, |db| {
            sqlx::query_as("SELECT id, day, name, holiday_type, yearly FROM access_holidays ORDER BY day")
                .fetch_all(db.pool())
                .await?
        });
        rows.into_iter()
            .map(|(id, day, name, holiday_type, yearly)| {
                Ok(AccessHoliday {
                    id,
                    day: read_date(Some(day))?.ok_or(StoreError::NotFound)?,
                    name,
                    holiday_type: u8::try_from(holiday_type).unwrap_or(1),
                    yearly,
                })
            })
            .collect()
    }

    /// A new holiday (one per date); every access controller gets it.
    pub async fn create_access_holiday(
        &self,
        day: AccessDate,
        name: &str,
        holiday_type: u8,
        yearly: bool,
    ) -> Result<AccessHoliday, StoreError> {
        if !(1..=3).contains(&holiday_type) {
            return Err(StoreError::Invalid("holiday_type: 1, 2 or 3".into()));
        }
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(StoreError::Invalid("name: up to 100 characters, no control characters".into()));
        }
        let id: i64 = on_db!(self, |db| {
            sqlx::query_scalar(
                "INSERT INTO access_holidays (day, name, holiday_type, yearly, created_at) VALUES ($1, $2, $3, $4, $5) \
                 RETURNING id",
            )
            .bind(day.to_string())
            .bind(name)
            .bind(i64::from(holiday_type))
            .bind(yearly)
            .bind(now_micros())
            .fetch_one(db.pool())
            .await?
        });
        Ok(AccessHoliday { id, day, name: name.to_owned(), holiday_type, yearly })
    }

    pub async fn delete_access_holiday(&self, id: i64) -> Result<(), StoreError> {
        let deleted = on_db!(self, |db| {
            sqlx::query("DELETE FROM access_holidays WHERE id = $1").bind(id).execute(db.pool()).await?.rows_affected()
        });
        if deleted == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    /// Approved controllers with at least one door or floor: the ones the access model
    /// provisions.
    pub async fn access_controller_ids(&self) -> Result<Vec<i64>, StoreError> {
        on_db!(self, |db| {
            Ok(sqlx::query_scalar(
                "SELECT v.id FROM devices AS v WHERE v.approval = 'approved' AND v.deleted_at IS NULL \
                 AND (EXISTS (SELECT 1 FROM access_doors AS d WHERE d.device_id = v.id) \
                 OR EXISTS (SELECT 1 FROM access_floors AS f WHERE f.device_id = v.id)) ORDER BY v.id",
            )
            .fetch_all(db.pool())
            .await?)
        })
    }

    /// Every level, by id.
    pub async fn access_levels(&self) -> Result<Vec<AccessLevel>, StoreError> {
        self.levels_where(None).await
    }

    pub async fn access_level(&self, id: i64) -> Result<Option<AccessLevel>, StoreError> {
        Ok(self.levels_where(Some(id)).await?.pop())
    }

    async fn levels_where(&self, id: Option<i64>) -> Result<Vec<AccessLevel>, StoreError> {
        type LevelRow = (i64, String, i64, i64, i64, i64);
        let (levels, doors): (Vec<LevelRow>, Vec<(i64, i64)>) = on_db!(self, |db| {
            let levels = sqlx::query_as(
                "SELECT l.id, l.name, l.time_segment_id, \
                 (SELECT COUNT(*) FROM access_level_members AS m WHERE m.level_id = l.id), l.created_at, l.updated_at \
                 FROM access_levels AS l WHERE ($1 IS NULL OR l.id = $1) ORDER BY l.id",
            )
            .bind(id)
            .fetch_all(db.pool())
            .await?;
            let doors = sqlx::query_as(
                "SELECT level_id, door_id FROM access_level_doors WHERE ($1 IS NULL OR level_id = $1) \
                 ORDER BY level_id, door_id",
            )
            .bind(id)
            .fetch_all(db.pool())
            .await?;
            (levels, doors)
        });
        Ok(levels
            .into_iter()
            .map(|(id, name, time_segment_id, member_count, created_at, updated_at)| AccessLevel {
                id,
                name,
                time_segment_id,
                door_ids: doors.iter().filter(|(l, _)| *l == id).map(|(_, d)| *d).collect(),
                member_count,
                created_at,
                updated_at,
            })
            .collect())
    }

    /// A new level with no doors and no members (an unknown segment is invalid).
    pub async fn create_access_level(&self, name: &str, time_segment_id: i64) -> Result<AccessLevel, StoreError> {
        check_name(name)?;
        if self.time_segment(time_segment_id).await?.is_none() {
            return Err(StoreError::Invalid(format!("time segment {time_segment_id} does not exist")));
        }
        let now = now_micros();
        let id: i64 = on_db!(self, |db| {
            sqlx::query_scalar(
                "INSERT INTO access_levels (name, time_segment_id, created_at, updated_at) VALUES ($1, $2, $3, $3) \
                 RETURNING id",
            )
            .bind(name.trim())
            .bind(time_segment_id)
            .bind(now)
            .fetch_one(db.pool())
            .await?
        });
        self.access_level(id).await?.ok_or(StoreError::NotFound)
    }

    /// Renames a level or moves it to another segment; returns the controllers of its doors.
    pub async fn update_access_level(
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
            let updated =
                sqlx::query("UPDATE access_levels SET name = $1, time_segment_id = $2, updated_at = $3 WHERE id = $4")
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
            let devices = dialect::level_controllers_in(&mut tx, id).await?;
            tx.commit().await?;
            Ok(devices)
        })
    }

    /// Deletes a level with its doors and members; returns the controllers it reached.
    pub async fn delete_access_level(&self, id: i64) -> Result<AffectedControllers, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let devices = dialect::level_controllers_in(&mut tx, id).await?;
            for sql in [
                "DELETE FROM access_level_doors WHERE level_id = $1",
                "DELETE FROM access_level_members WHERE level_id = $1",
                "DELETE FROM access_visit_levels WHERE level_id = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
            let deleted = sqlx::query("DELETE FROM access_levels WHERE id = $1").bind(id).execute(&mut *tx).await?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            tx.commit().await?;
            Ok(devices)
        })
    }

    /// Adds doors to a level (doors already in it are kept); returns the controllers of its
    /// doors afterwards. An unknown level is not found, an unknown door invalid.
    pub async fn add_access_level_doors(
        &self,
        level_id: i64,
        door_ids: &[i64],
    ) -> Result<AffectedControllers, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            dialect::lock_level_in(&mut tx, LevelKind::Door, level_id).await?;
            for door_id in door_ids {
                let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM access_doors WHERE id = $1")
                    .bind(door_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Err(StoreError::Invalid(format!("door {door_id} does not exist")));
                }
                sqlx::query(
                    "INSERT INTO access_level_doors (level_id, door_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(level_id)
                .bind(door_id)
                .execute(&mut *tx)
                .await?;
            }
            dialect::touch_level_in(&mut tx, level_id).await?;
            let devices = dialect::level_controllers_in(&mut tx, level_id).await?;
            tx.commit().await?;
            Ok(devices)
        })
    }

    /// Removes a door from a level; returns the controllers of its doors before the removal.
    pub async fn remove_access_level_door(
        &self,
        level_id: i64,
        door_id: i64,
    ) -> Result<AffectedControllers, StoreError> {
        on_db!(self, |db| {
            let mut tx = db.begin().await?;
            dialect::lock_level_in(&mut tx, LevelKind::Door, level_id).await?;
            let devices = dialect::level_controllers_in(&mut tx, level_id).await?;
            let deleted = sqlx::query("DELETE FROM access_level_doors WHERE level_id = $1 AND door_id = $2")
                .bind(level_id)
                .bind(door_id)
                .execute(&mut *tx)
                .await?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            dialect::touch_level_in(&mut tx, level_id).await?;
            tx.commit().await?;
            Ok(devices)
        })
    }

    /// The members of a level, by employee code.
    pub async fn access_level_members(&self, level_id: i64) -> Result<Vec<LevelMember>, StoreError> {
        self.level_members(LevelKind::Door, level_id).await
    }

    /// Puts an employee in a level with a validity window (replacing the window when already a
    /// member); returns the controllers of the level's doors. An unknown level is not found, an
    /// unknown (or deleted) employee invalid.
    pub async fn put_access_level_member(
        &self,
        level_id: i64,
        emp_code: &str,
        valid_from: Option<AccessDate>,
        valid_until: Option<AccessDate>,
    ) -> Result<AffectedControllers, StoreError> {
        self.put_level_member(LevelKind::Door, level_id, emp_code, valid_from, valid_until).await
    }

    /// Takes an employee out of a level; returns the controllers of the level's doors.
    pub async fn remove_access_level_member(
        &self,
        level_id: i64,
        emp_code: &str,
    ) -> Result<AffectedControllers, StoreError> {
        self.remove_level_member(LevelKind::Door, level_id, emp_code).await
    }

    /// The controllers an employee's record concerns: those of the doors of their levels, and
    /// those that were sent the employee (which may have to lose them).
    pub async fn access_controllers_of_employee(&self, emp_code: &str) -> Result<AffectedControllers, StoreError> {
        let kinds = ACCESS_KINDS;
        let ids: Vec<i64> = on_db!(self, |db| {
            sqlx::query_scalar(concat!(
                "SELECT d.device_id FROM access_level_members AS m JOIN employees AS e ON e.id = m.employee_id \
                 JOIN access_level_doors AS ld ON ld.level_id = m.level_id JOIN access_doors AS d ON d.id = ld.door_id \
                 WHERE e.emp_code = $1 \
                 UNION SELECT f.device_id FROM access_ele_level_members AS m JOIN employees AS e ON e.id = m.employee_id \
                 JOIN access_ele_level_floors AS lf ON lf.level_id = m.level_id \
                 JOIN access_floors AS f ON f.id = lf.floor_id WHERE e.emp_code = $1 \
                 UNION SELECT device_id FROM device_commands WHERE pin = $1 AND ",
                in_list!("kind", "$2")
            ))
            .bind(emp_code)
            .bind(dialect::list_param(&kinds.map(str::to_owned)))
            .fetch_all(db.pool())
            .await?
        });
        Ok(ids.into_iter().collect())
    }

    /// The changes that bring one controller to the model's desired state (see the module
    /// docs). `now` (the controllers' local time) drops memberships that ended before its day
    /// and visits that are not in progress. A controller that is not approved, and a device
    /// without doors or floors, get nothing.
    pub async fn plan_access_sync(&self, device_id: i64, now: &LocalTime) -> Result<Vec<AccessChange>, StoreError> {
        let Some(states) = self.access_states(device_id, now).await? else { return Ok(Vec::new()) };
        Ok(plan(&states.desired, &states.held))
    }

    /// A full re-sync of one controller: every access table cleared (`usereleauthorize` only on
    /// an elevator controller: a door controller has no such table to refuse), then everything
    /// it should hold. Its queued access changes are superseded as the new ones are queued.
    pub async fn plan_access_resync(&self, device_id: i64, now: &LocalTime) -> Result<Vec<AccessChange>, StoreError> {
        let Some(states) = self.access_states(device_id, now).await? else { return Ok(Vec::new()) };
        let mut changes: Vec<AccessChange> = vec![AccessChange::Clear(Table::Authorize)];
        if states.elevator {
            changes.push(AccessChange::Clear(Table::EleAuthorize));
        }
        changes.extend([Table::User, Table::Timezone, Table::Holiday].map(AccessChange::Clear));
        changes.extend(plan(&states.desired, &ControllerRows::default()));
        Ok(changes)
    }

    /// What a controller should hold and what it holds; `None` when it is not approved, or not
    /// an access controller (no doors and no floors: an attendance terminal gets no holiday
    /// either).
    async fn access_states(&self, device_id: i64, now: &LocalTime) -> Result<Option<AccessStates>, StoreError> {
        let sealer = self.sealer();
        on_db!(self, |db| {
            let mut conn = db.pool().acquire().await?;
            let kind: Option<(bool, bool)> = sqlx::query_as(
                "SELECT EXISTS (SELECT 1 FROM access_doors WHERE device_id = $1), \
                 EXISTS (SELECT 1 FROM access_floors WHERE device_id = $1) \
                 FROM devices WHERE id = $1 AND approval = 'approved' AND deleted_at IS NULL",
            )
            .bind(device_id)
            .fetch_optional(&mut *conn)
            .await?;
            let Some((doors, elevator)) = kind else { return Ok(None) };
            if !doors && !elevator {
                return Ok(None);
            }
            let desired = dialect::desired_access_rows(&mut conn, sealer, device_id, now).await?;
            let held = dialect::held_access_rows(&mut conn, sealer, device_id).await?;
            Ok(Some(AccessStates { desired, held, elevator }))
        })
    }
}

/// What a controller should hold, what it holds, and whether it is an elevator controller
/// (has floors).
struct AccessStates {
    desired: ControllerRows,
    held: ControllerRows,
    elevator: bool,
}

/// The door list queries (one text for both engines).
mod const_format_doors {
    pub(super) const LIST: &str = concat!(
        "SELECT d.id, d.device_id, v.sn, d.door_no, d.name, d.created_at, d.updated_at FROM access_doors AS d \
         JOIN devices AS v ON v.id = d.device_id",
        " WHERE ($1 IS NULL OR d.device_id = $1) ORDER BY d.device_id, d.door_no"
    );
    pub(super) const ONE: &str = concat!(
        "SELECT d.id, d.device_id, v.sn, d.door_no, d.name, d.created_at, d.updated_at FROM access_doors AS d \
         JOIN devices AS v ON v.id = d.device_id",
        " WHERE d.id = $1"
    );
    pub(super) const FLOOR_LIST: &str = concat!(
        "SELECT f.id, f.device_id, v.sn, f.floor_no, f.name, f.created_at, f.updated_at FROM access_floors AS f \
         JOIN devices AS v ON v.id = f.device_id",
        " WHERE ($1 IS NULL OR f.device_id = $1) ORDER BY f.device_id, f.floor_no"
    );
    pub(super) const FLOOR_ONE: &str = concat!(
        "SELECT f.id, f.device_id, v.sn, f.floor_no, f.name, f.created_at, f.updated_at FROM access_floors AS f \
         JOIN devices AS v ON v.id = f.device_id",
        " WHERE f.id = $1"
    );
    pub(super) const AUX_LIST: &str = concat!(
        "SELECT a.id, a.device_id, v.sn, a.aux_no, a.name, a.created_at, a.updated_at FROM access_aux_outputs AS a \
         JOIN devices AS v ON v.id = a.device_id",
        " WHERE ($1 IS NULL OR a.device_id = $1) ORDER BY a.device_id, a.aux_no"
    );
    pub(super) const AUX_ONE: &str = concat!(
        "SELECT a.id, a.device_id, v.sn, a.aux_no, a.name, a.created_at, a.updated_at FROM access_aux_outputs AS a \
         JOIN devices AS v ON v.id = a.device_id",
        " WHERE a.id = $1"
    );
}

#[derive(FromRow)]
struct GrantRow {
    employee_id: i64,
    emp_code: String,
    first_name: String,
    last_name: String,
    card_no: String,
    device_password: String,
    time_segment_id: i64,
    /// The door's number, or for a grant through an elevator level the floor's.
    number: i64,
    valid_from: Option<String>,
    valid_until: Option<String>,
}

/// A visitor's grant on one door of the controller, during their visit.
#[derive(FromRow)]
struct VisitorGrantRow {
    visit_id: i64,
    name: String,
    card_no: String,
    starts_at: String,
    ends_at: String,
    time_segment_id: i64,
    door_no: i64,
}

/// One end of a membership's validity window (`None`: unlimited).
type Validity = Option<AccessDate>;

/// Folds the grants of one controller into its desired rows: one user per employee, whose
/// validity spans all their memberships reaching the controller (unlimited when one is).
fn fold_desired(
    sealer: Sealer<'_>,
    grants: Vec<GrantRow>,
    floor_grants: Vec<GrantRow>,
    visitor_grants: Vec<VisitorGrantRow>,
    segments: Vec<(i64, String)>,
    holidays: Vec<(String, i64, bool)>,
) -> Result<ControllerRows, StoreError> {
    let mut users: BTreeMap<String, ControllerUser> = BTreeMap::new();
    // Per person, the starts and ends of their memberships reaching this controller.
    let mut windows: BTreeMap<String, (Vec<Validity>, Vec<Validity>)> = BTreeMap::new();
    let mut model_grants = Vec::new();
    let mut model_floor_grants = Vec::new();
    let grants = grants.into_iter().map(|g| (g, false)).chain(floor_grants.into_iter().map(|g| (g, true)));
    for (g, floor) in grants {
        let window = windows.entry(g.emp_code.clone()).or_default();
        window.0.push(read_date(g.valid_from)?);
        window.1.push(read_date(g.valid_until)?);
        if !users.contains_key(&g.emp_code) {
            let record = g.employee_id.to_string();
            let card = sealer.open(sealed::EMPLOYEE_CARD.kind, &record, &g.card_no)?;
            let password = sealer.open(sealed::EMPLOYEE_PASSWORD.kind, &record, &g.device_password)?;
            let full = format!("{} {}", g.first_name, g.last_name);
            let name = full
                .trim()
                .chars()
                .take(adms_protocol::command::NAME_MAX_CHARS)
                .collect::<String>()
                .trim_end()
                .to_owned();
            users.insert(
                g.emp_code.clone(),
                ControllerUser { pin: g.emp_code.clone(), name, card, password, start_date: None, end_date: None },
            );
        }
        let Ok(timezone_id) = u32::try_from(g.time_segment_id) else { continue };
        if floor {
            if let Ok(floor_no) = u16::try_from(g.number) {
                model_floor_grants.push(FloorGrant { pin: g.emp_code, timezone_id, floor_no });
            }
        } else if let Ok(door_no) = u8::try_from(g.number) {
            model_grants.push(Grant { pin: g.emp_code, timezone_id, door_no });
        }
    }
    for (pin, (starts, ends)) in windows {
        if let Some(user) = users.get_mut(&pin) {
            // Unlimited when one membership is; otherwise the earliest start, the latest end.
            user.start_date = starts.iter().copied().collect::<Option<Vec<_>>>().and_then(|s| s.into_iter().min());
            user.end_date = ends.iter().copied().collect::<Option<Vec<_>>>().and_then(|e| e.into_iter().max());
        }
    }
    // Visitors: valid on the days of their visit. An employee whose code is a visitor's pin
    // keeps the row (the controller can hold one); the visitor gets nothing there.
    let employees: std::collections::BTreeSet<String> = users.keys().cloned().collect();
    for g in visitor_grants {
        let pin = adms_model::access::visitor_pin(g.visit_id);
        if employees.contains(&pin) {
            tracing::warn!(pin, "a visitor's pin is an employee's code: the visitor is not provisioned");
            continue;
        }
        if !users.contains_key(&pin) {
            let read =
                |t: &str| t.parse::<LocalTime>().map_err(|e| StoreError::Invalid(format!("stored visit time: {e}")));
            let card = sealer.open(crate::visits::VISIT_CARD_KIND, &g.visit_id.to_string(), &g.card_no)?;
            let name: String = g.name.chars().take(adms_protocol::command::NAME_MAX_CHARS).collect();
            let user = visitor_user(g.visit_id, name.trim_end(), &card, &read(&g.starts_at)?, &read(&g.ends_at)?);
            users.insert(pin.clone(), user);
        }
        if let (Ok(timezone_id), Ok(door_no)) = (u32::try_from(g.time_segment_id), u8::try_from(g.door_no)) {
            model_grants.push(Grant { pin, timezone_id, door_no });
        }
    }
    let mut timezones = BTreeMap::new();
    for (id, json) in segments {
        if let Ok(timezone_id) = u32::try_from(id) {
            timezones.insert(timezone_id, read_schedule(id, &json)?);
        }
    }
    let holidays = holidays
        .into_iter()
        .map(|(day, t, yearly)| {
            Ok((read_date(Some(day))?.ok_or(StoreError::NotFound)?, u8::try_from(t).unwrap_or(1), yearly))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(desired_rows_with_floors(&users, &model_grants, &model_floor_grants, &timezones, &holidays))
}

dual! {
    /// Creates the doors (and records the hardware counts) of a controller from the
    /// `LockCount`/`ReaderCount`/`AuxInCount`/`AuxOutCount` of a report; a report without
    /// `LockCount` changes nothing.
    pub(crate) async fn derive_doors_in(
        conn: &mut Conn,
        device_id: i64,
        options: &[(String, String)],
    ) -> Result<(), StoreError> {
        let count = |key: &str| {
            options.iter().rev().find(|(k, _)| k == key).and_then(|(_, v)| v.trim().parse::<i64>().ok())
        };
        let Some(locks) = count("LockCount").map(|n| n.clamp(0, MAX_DOORS)) else { return Ok(()) };
        let now = now_micros();
        sqlx::query(
            "INSERT INTO access_controllers (device_id, lock_count, reader_count, aux_in_count, aux_out_count, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (device_id) DO UPDATE SET lock_count = excluded.lock_count, \
             reader_count = COALESCE(excluded.reader_count, access_controllers.reader_count), \
             aux_in_count = COALESCE(excluded.aux_in_count, access_controllers.aux_in_count), \
             aux_out_count = COALESCE(excluded.aux_out_count, access_controllers.aux_out_count), \
             updated_at = excluded.updated_at",
        )
        .bind(device_id)
        .bind(locks)
        .bind(count("ReaderCount"))
        .bind(count("AuxInCount"))
        .bind(count("AuxOutCount"))
        .bind(now)
        .execute(&mut *conn)
        .await?;
        let (sn, alias): (String, String) = sqlx::query_as("SELECT sn, alias FROM devices WHERE id = $1")
            .bind(device_id)
            .fetch_one(&mut *conn)
            .await?;
        let device_name = if alias.trim().is_empty() { sn } else { alias };
        for door_no in 1..=locks {
            sqlx::query(
                "INSERT INTO access_doors (device_id, door_no, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
                 ON CONFLICT (device_id, door_no) DO NOTHING",
            )
            .bind(device_id)
            .bind(door_no)
            .bind(format!("{device_name}-{door_no}"))
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        // The count this report gave, or the one an earlier report did.
        let aux_outputs: Option<i64> =
            sqlx::query_scalar("SELECT aux_out_count FROM access_controllers WHERE device_id = $1")
                .bind(device_id)
                .fetch_one(&mut *conn)
                .await?;
        for aux_no in 1..=aux_outputs.unwrap_or(0).clamp(0, MAX_AUX_OUTPUTS) {
            sqlx::query(
                "INSERT INTO access_aux_outputs (device_id, aux_no, name, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT (device_id, aux_no) DO NOTHING",
            )
            .bind(device_id)
            .bind(aux_no)
            .bind(aux_output_name(&device_name, aux_no))
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    pub(crate) async fn touch_level_in(conn: &mut Conn, level_id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE access_levels SET updated_at = $1 WHERE id = $2")
            .bind(now_micros())
            .bind(level_id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The controllers of a level's doors.
    pub(crate) async fn level_controllers_in(conn: &mut Conn, level_id: i64) -> Result<AffectedControllers, StoreError> {
        let ids: Vec<i64> =
            sqlx::query_scalar(LevelKind::Door.controllers_sql()).bind(level_id).fetch_all(&mut *conn).await?;
        Ok(ids.into_iter().collect())
    }

    /// The rows the model puts on one controller.
    pub(crate) async fn desired_access_rows(
        conn: &mut Conn,
        sealer: Sealer<'_>,
        device_id: i64,
        now: &LocalTime,
    ) -> Result<ControllerRows, StoreError> {
        let today = now.date();
        let grants: Vec<GrantRow> = sqlx::query_as(
            "SELECT e.id AS employee_id, e.emp_code, e.first_name, e.last_name, e.card_no, e.device_password, \
             l.time_segment_id, d.door_no AS number, m.valid_from, m.valid_until \
             FROM access_level_members AS m JOIN access_levels AS l ON l.id = m.level_id \
             JOIN access_level_doors AS ld ON ld.level_id = l.id JOIN access_doors AS d ON d.id = ld.door_id \
             JOIN employees AS e ON e.id = m.employee_id \
             WHERE d.device_id = $1 AND e.deleted_at IS NULL AND e.status = 'active' \
             AND (m.valid_until IS NULL OR m.valid_until >= $2) ORDER BY e.emp_code, l.time_segment_id, d.door_no",
        )
        .bind(device_id)
        .bind(today.to_string())
        .fetch_all(&mut *conn)
        .await?;
        // Elevator levels: the same persons' rules, floors instead of doors.
        let floor_grants: Vec<GrantRow> = sqlx::query_as(
            "SELECT e.id AS employee_id, e.emp_code, e.first_name, e.last_name, e.card_no, e.device_password, \
             l.time_segment_id, f.floor_no AS number, m.valid_from, m.valid_until \
             FROM access_ele_level_members AS m JOIN access_ele_levels AS l ON l.id = m.level_id \
             JOIN access_ele_level_floors AS lf ON lf.level_id = l.id JOIN access_floors AS f ON f.id = lf.floor_id \
             JOIN employees AS e ON e.id = m.employee_id \
             WHERE f.device_id = $1 AND e.deleted_at IS NULL AND e.status = 'active' \
             AND (m.valid_until IS NULL OR m.valid_until >= $2) ORDER BY e.emp_code, l.time_segment_id, f.floor_no",
        )
        .bind(device_id)
        .bind(today.to_string())
        .fetch_all(&mut *conn)
        .await?;
        let visitor_grants: Vec<VisitorGrantRow> = sqlx::query_as(
            "SELECT v.id AS visit_id, v.name, v.card_no, v.starts_at, v.ends_at, l.time_segment_id, d.door_no \
             FROM access_visits AS v JOIN access_visit_levels AS vl ON vl.visit_id = v.id \
             JOIN access_levels AS l ON l.id = vl.level_id JOIN access_level_doors AS ld ON ld.level_id = l.id \
             JOIN access_doors AS d ON d.id = ld.door_id \
             WHERE d.device_id = $1 AND v.exited_at IS NULL AND v.starts_at <= $2 AND v.ends_at > $2 \
             ORDER BY v.id, l.time_segment_id, d.door_no",
        )
        .bind(device_id)
        .bind(now.as_str())
        .fetch_all(&mut *conn)
        .await?;
        let segments: Vec<(i64, String)> = sqlx::query_as(
            "SELECT s.id, s.schedule FROM access_time_segments AS s JOIN access_levels AS l \
             ON l.time_segment_id = s.id JOIN access_level_doors AS ld ON ld.level_id = l.id \
             JOIN access_doors AS d ON d.id = ld.door_id WHERE d.device_id = $1 \
             UNION SELECT s.id, s.schedule FROM access_time_segments AS s JOIN access_ele_levels AS l \
             ON l.time_segment_id = s.id JOIN access_ele_level_floors AS lf ON lf.level_id = l.id \
             JOIN access_floors AS f ON f.id = lf.floor_id WHERE f.device_id = $1",
        )
        .bind(device_id)
        .fetch_all(&mut *conn)
        .await?;
        let holidays: Vec<(String, i64, bool)> =
            sqlx::query_as("SELECT day, holiday_type, yearly FROM access_holidays ORDER BY day")
                .fetch_all(&mut *conn)
                .await?;
        fold_desired(sealer, grants, floor_grants, visitor_grants, segments, holidays)
    }

    /// The rows one controller holds: its access commands that were not refused, cancelled or
    /// lost (`queued`, `sent`, `succeeded`), applied in queue order.
    pub(crate) async fn held_access_rows(
        conn: &mut Conn,
        sealer: Sealer<'_>,
        device_id: i64,
    ) -> Result<ControllerRows, StoreError> {
        let kinds: Vec<String> = ACCESS_KINDS.iter().map(|k| (*k).to_owned()).collect();
        let rows: Vec<(i64, String)> = sqlx::query_as(concat!(
            "SELECT id, params FROM device_commands WHERE device_id = $1 AND state IN ('queued', 'sent', 'succeeded') \
             AND ",
            in_list!("kind", "$2"),
            " ORDER BY id"
        ))
        .bind(device_id)
        .bind(dialect::list_param(&kinds))
        .fetch_all(&mut *conn)
        .await?;
        let mut held = ControllerRows::default();
        for (id, params) in rows {
            let params = sealer.open(sealed::COMMAND_PARAMS.kind, &id.to_string(), &params)?;
            let change = serde_json::from_str::<DeviceCommand>(&params).ok().and_then(|c| command_change(&c));
            if let Some(change) = change {
                held.apply(&change);
            }
        }
        Ok(held)
    }
}
