//! Visitors (issue 19; CVSecurity's `visRegistration`): a visit is a temporary person of the
//! access model (migration `0023_aux_outputs_and_visitors.sql`). Its visitor is put on the
//! controllers of its access levels while it is in progress, as an employee member is (the
//! desired rows of `access`, with the visit's days as the user's `StartTime`/`EndTime`, which the
//! controller enforces by itself), and taken off when it ends or the visitor leaves: the plan
//! of a controller leaves out visits that are not in progress, so planning again removes the
//! visitor's rows. [`Store::settle_visit_boundaries`] names the controllers to plan again when a
//! visit starts or ends (the server runs it periodically); an exit returns them at once.
//!
//! The identity document's number and the card are sealed at rest like an employee's card;
//! the number is found by its keyed digest (`cert_index`).

use adms_model::access::{LocalTime, VisitPhase, visitor_pin};
use sqlx::FromRow;

use crate::access::AffectedControllers;
use crate::{Store, StoreError, now_micros};

/// The sealing kind of a visit's card number.
pub const VISIT_CARD_KIND: &str = crate::sealed::VISIT_CARD.kind;
/// The sealing kind (and digest kind) of a visit's identity document number.
pub const VISIT_CERT_KIND: &str = crate::sealed::VISIT_CERT.kind;

/// A visit to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVisit {
    /// The employee visited (`persPersonPin`).
    pub host_emp_code: String,
    /// The identity document: CVSecurity's certificate type (1-8) and its number.
    pub cert_type: i64,
    pub cert_num: String,
    pub name: String,
    pub phone: String,
    pub company: String,
    pub reason: String,
    pub visitor_count: i64,
    pub starts_at: LocalTime,
    pub ends_at: LocalTime,
    /// Decimal card number (or `[8 hex]`); empty for none.
    pub card_no: String,
    pub level_ids: Vec<i64>,
}

/// A registered visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessVisit {
    pub id: i64,
    /// The visitor's pin on the controllers.
    pub pin: String,
    pub host_emp_code: String,
    pub cert_type: i64,
    pub cert_num: String,
    pub name: String,
    pub phone: String,
    pub company: String,
    pub reason: String,
    pub visitor_count: i64,
    pub starts_at: LocalTime,
    pub ends_at: LocalTime,
    pub card_no: String,
    pub level_ids: Vec<i64>,
    /// When the visitor left (Unix microseconds); `None` while they have not.
    pub exited_at: Option<i64>,
    pub created_at: i64,
}

impl AccessVisit {
    pub fn phase(&self, now: &LocalTime) -> VisitPhase {
        VisitPhase::at(&self.starts_at, &self.ends_at, self.exited_at.is_some(), now)
    }
}

/// Which visit an exit names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisitKey {
    Id(i64),
    /// The visitor's document: their visit in progress (not left, not ended).
    Certificate {
        cert_type: i64,
        cert_num: String,
    },
}

/// Why a visit was not registered or ended.
#[derive(Debug, thiserror::Error)]
pub enum VisitError {
    #[error("the host employee {0:?} does not exist")]
    HostMissing(String),
    #[error("access level {0} does not exist")]
    LevelMissing(i64),
    #[error("this visitor is already registered for a visit in progress")]
    AlreadyRegistered,
    #[error("the card number is already used by employee {0}")]
    CardUsed(String),
    #[error("the visit ends before it starts")]
    EndsBeforeStart,
    #[error("no visit of this visitor is in progress")]
    NotRegistered,
    #[error("{0}: up to {1} characters, no control characters")]
    BadText(&'static str, usize),
    #[error("the visitor's name is empty")]
    NameEmpty,
    #[error("the certificate type must be 1 to 8")]
    BadCertType,
    #[error("the certificate number must be 1 to 30 letters, digits or '-'")]
    BadCertNum,
    #[error("the visitor count must be at least 1")]
    BadCount,
    #[error("the card number must be up to 20 digits, or 8 hex digits in brackets")]
    BadCard,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a visit may hold, checked before anything is stored.
fn check_visit(visit: &NewVisit) -> Result<(), VisitError> {
    let text = |field: &'static str, value: &str, max: usize| {
        if value.chars().count() > max || value.chars().any(char::is_control) {
            return Err(VisitError::BadText(field, max));
        }
        Ok(())
    };
    text("name", &visit.name, 64)?;
    if visit.name.trim().is_empty() {
        return Err(VisitError::NameEmpty);
    }
    text("phone", &visit.phone, 30)?;
    text("company", &visit.company, 100)?;
    text("reason", &visit.reason, 200)?;
    if !(1..=8).contains(&visit.cert_type) {
        return Err(VisitError::BadCertType);
    }
    let cert = &visit.cert_num;
    if cert.is_empty() || cert.len() > 30 || !cert.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(VisitError::BadCertNum);
    }
    if visit.visitor_count < 1 {
        return Err(VisitError::BadCount);
    }
    let card = &visit.card_no;
    let decimal = card.len() <= 20 && card.bytes().all(|b| b.is_ascii_digit());
    let bracketed = card.len() == 10
        && card.starts_with('[')
        && card.ends_with(']')
        && card[1..9].bytes().all(|b| b.is_ascii_hexdigit());
    if !(decimal || bracketed) {
        return Err(VisitError::BadCard);
    }
    if visit.ends_at <= visit.starts_at {
        return Err(VisitError::EndsBeforeStart);
    }
    Ok(())
}

impl From<sqlx::Error> for VisitError {
    fn from(e: sqlx::Error) -> VisitError {
        VisitError::Store(StoreError::Database(e))
    }
}

impl From<adms_vault::SealError> for VisitError {
    fn from(e: adms_vault::SealError) -> VisitError {
        VisitError::Store(StoreError::Sealed(e))
    }
}

#[derive(FromRow)]
struct VisitRow {
    id: i64,
    host_emp_code: String,
    cert_type: i64,
    cert_num: String,
    name: String,
    phone: String,
    company: String,
    reason: String,
    visitor_count: i64,
    starts_at: String,
    ends_at: String,
    card_no: String,
    exited_at: Option<i64>,
    created_at: i64,
}

/// The columns of a [`VisitRow`], as a literal for `concat!`.
macro_rules! visit_select {
    () => {
        "SELECT id, host_emp_code, cert_type, cert_num, name, phone, company, reason, visitor_count, starts_at, \
         ends_at, card_no, exited_at, created_at FROM access_visits"
    };
}

fn read_time(text: &str) -> Result<LocalTime, StoreError> {
    text.parse().map_err(|e| StoreError::Invalid(format!("stored visit time: {e}")))
}

impl Store {
    /// Registers a visit; returns it with the controllers of its levels (to plan: the visitor
    /// is put on them if the visit is in progress at `now`). The host must be an employee, every
    /// level must exist, the document must not be in another visit in progress, and a card must
    /// not be an employee's.
    pub async fn create_visit(
        &self,
        visit: &NewVisit,
        now: &LocalTime,
    ) -> Result<(AccessVisit, AffectedControllers), VisitError> {
        check_visit(visit)?;
        let sealer = self.sealer();
        let cert_index = sealer.digest(VISIT_CERT_KIND, visit.cert_num.as_bytes()).to_vec();
        let card_index = crate::roster::card_index(sealer, &visit.card_no);
        let phase = VisitPhase::at(&visit.starts_at, &visit.ends_at, false, now);
        let id: i64 = on_db!(self, |db| {
            let mut tx = db.begin().await?;
            let host: Option<i64> =
                sqlx::query_scalar("SELECT id FROM employees WHERE emp_code = $1 AND deleted_at IS NULL")
                    .bind(&visit.host_emp_code)
                    .fetch_optional(&mut *tx)
                    .await?;
            if host.is_none() {
                return Err(VisitError::HostMissing(visit.host_emp_code.clone()));
            }
            for level_id in &visit.level_ids {
                let found: Option<i64> = sqlx::query_scalar("SELECT id FROM access_levels WHERE id = $1")
                    .bind(level_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if found.is_none() {
                    return Err(VisitError::LevelMissing(*level_id));
                }
            }
            let open: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM access_visits WHERE cert_type = $1 AND cert_index = $2 AND exited_at IS NULL \
                 AND ends_at > $3 LIMIT 1",
            )
            .bind(visit.cert_type)
            .bind(&cert_index)
            .bind(now.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if open.is_some() {
                return Err(VisitError::AlreadyRegistered);
            }
            if let Some(card_index) = &card_index {
                let holder: Option<String> = sqlx::query_scalar(
                    "SELECT emp_code FROM employees WHERE card_index = $1 AND deleted_at IS NULL LIMIT 1",
                )
                .bind(card_index)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(holder) = holder {
                    return Err(VisitError::CardUsed(holder));
                }
            }
            // Sealed values name their row: inserted empty, then sealed under the new id.
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO access_visits (host_emp_code, cert_type, cert_num, cert_index, name, phone, company, \
                 reason, visitor_count, starts_at, ends_at, card_no, planned_phase, created_at) \
                 VALUES ($1, $2, '', $3, $4, $5, $6, $7, $8, $9, $10, '', $11, $12) RETURNING id",
            )
            .bind(&visit.host_emp_code)
            .bind(visit.cert_type)
            .bind(&cert_index)
            .bind(&visit.name)
            .bind(&visit.phone)
            .bind(&visit.company)
            .bind(&visit.reason)
            .bind(visit.visitor_count)
            .bind(visit.starts_at.as_str())
            .bind(visit.ends_at.as_str())
            .bind(phase as i64)
            .bind(now_micros())
            .fetch_one(&mut *tx)
            .await?;
            let record = id.to_string();
            sqlx::query("UPDATE access_visits SET cert_num = $1, card_no = $2 WHERE id = $3")
                .bind(sealer.seal(VISIT_CERT_KIND, &record, &visit.cert_num))
                .bind(sealer.seal(VISIT_CARD_KIND, &record, &visit.card_no))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for level_id in &visit.level_ids {
                sqlx::query(
                    "INSERT INTO access_visit_levels (visit_id, level_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .bind(level_id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            id
        });
        let visit = self.access_visit(id).await?.ok_or(StoreError::NotFound)?;
        let controllers = self.visit_controllers(&visit).await?;
        Ok((visit, controllers))
    }

    /// Every visit, newest first (or only those in progress at `in_progress_at`).
    pub async fn access_visits(&self, in_progress_at: Option<&LocalTime>) -> Result<Vec<AccessVisit>, StoreError> {
        let rows: Vec<VisitRow> = on_db!(self, |db| {
            sqlx::query_as(concat!(
                visit_select!(),
                " WHERE ($1 IS NULL OR (exited_at IS NULL AND starts_at <= $1 AND ends_at > $1)) ORDER BY id DESC"
            ))
            .bind(in_progress_at.map(LocalTime::as_str))
            .fetch_all(db.pool())
            .await?
        });
        self.read_visits(rows).await
    }

    pub async fn access_visit(&self, id: i64) -> Result<Option<AccessVisit>, StoreError> {
        let rows: Vec<VisitRow> = on_db!(self, |db| {
            sqlx::query_as(concat!(visit_select!(), " WHERE id = $1")).bind(id).fetch_all(db.pool()).await?
        });
        Ok(self.read_visits(rows).await?.pop())
    }

    async fn read_visits(&self, rows: Vec<VisitRow>) -> Result<Vec<AccessVisit>, StoreError> {
        let links: Vec<(i64, i64)> = on_db!(self, |db| {
            sqlx::query_as("SELECT visit_id, level_id FROM access_visit_levels ORDER BY visit_id, level_id")
                .fetch_all(db.pool())
                .await?
        });
        let sealer = self.sealer();
        rows.into_iter()
            .map(|r| {
                let record = r.id.to_string();
                Ok(AccessVisit {
                    id: r.id,
                    pin: visitor_pin(r.id),
                    host_emp_code: r.host_emp_code,
                    cert_type: r.cert_type,
                    cert_num: sealer.open(VISIT_CERT_KIND, &record, &r.cert_num)?,
                    name: r.name,
                    phone: r.phone,
                    company: r.company,
                    reason: r.reason,
                    visitor_count: r.visitor_count,
                    starts_at: read_time(&r.starts_at)?,
                    ends_at: read_time(&r.ends_at)?,
                    card_no: sealer.open(VISIT_CARD_KIND, &record, &r.card_no)?,
                    level_ids: links.iter().filter(|(v, _)| *v == r.id).map(|(_, l)| *l).collect(),
                    exited_at: r.exited_at,
                    created_at: r.created_at,
                })
            })
            .collect()
    }

    /// Ends a visit now (the visitor left); returns the controllers to plan again, which then
    /// lose the visitor. A visit already left, or (by document) none in progress, is
    /// [`VisitError::NotRegistered`].
    pub async fn exit_visit(&self, key: &VisitKey, now: &LocalTime) -> Result<AccessVisit, VisitError> {
        let found: Option<i64> = match key {
            VisitKey::Id(id) => on_db!(self, |db| {
                sqlx::query_scalar("SELECT id FROM access_visits WHERE id = $1 AND exited_at IS NULL")
                    .bind(id)
                    .fetch_optional(db.pool())
                    .await?
            }),
            VisitKey::Certificate { cert_type, cert_num } => {
                let cert_index = self.sealer().digest(VISIT_CERT_KIND, cert_num.as_bytes()).to_vec();
                on_db!(self, |db| {
                    sqlx::query_scalar(
                        "SELECT id FROM access_visits WHERE cert_type = $1 AND cert_index = $2 \
                         AND exited_at IS NULL AND ends_at > $3 ORDER BY id DESC LIMIT 1",
                    )
                    .bind(cert_type)
                    .bind(&cert_index)
                    .bind(now.as_str())
                    .fetch_optional(db.pool())
                    .await?
                })
            }
        };
        let id = found.ok_or(VisitError::NotRegistered)?;
        let updated = on_db!(self, |db| {
            sqlx::query(
                "UPDATE access_visits SET exited_at = $1, planned_phase = $2 WHERE id = $3 AND exited_at IS NULL",
            )
            .bind(now_micros())
            .bind(VisitPhase::Over as i64)
            .bind(id)
            .execute(db.pool())
            .await?
            .rows_affected()
        });
        if updated == 0 {
            return Err(VisitError::NotRegistered);
        }
        Ok(self.access_visit(id).await?.ok_or(StoreError::NotFound)?)
    }

    /// The controllers a visit concerns: those of its levels' doors, and those that were sent
    /// its visitor (which may have to lose them).
    pub async fn visit_controllers(&self, visit: &AccessVisit) -> Result<AffectedControllers, StoreError> {
        let kinds = crate::access::ACCESS_KINDS.map(str::to_owned);
        let ids: Vec<i64> = on_db!(self, |db| {
            sqlx::query_scalar(concat!(
                "SELECT d.device_id FROM access_visit_levels AS vl JOIN access_level_doors AS ld \
                 ON ld.level_id = vl.level_id JOIN access_doors AS d ON d.id = ld.door_id WHERE vl.visit_id = $1 \
                 UNION SELECT device_id FROM device_commands WHERE pin = $2 AND ",
                in_list!("kind", "$3")
            ))
            .bind(visit.id)
            .bind(&visit.pin)
            .bind(dialect::list_param(&kinds))
            .fetch_all(db.pool())
            .await?
        });
        Ok(ids.into_iter().collect())
    }

    /// The controllers to plan again because a visit started or ended since they were last
    /// planned for it (each boundary is returned once: the visit's `planned_phase` moves on
    /// here). The caller plans them; should that fail, the controllers' own `EndTime` still
    /// ends the visitor's access at the end of the visit's last day, and the next plan of the
    /// controller removes them.
    pub async fn settle_visit_boundaries(&self, now: &LocalTime) -> Result<AffectedControllers, StoreError> {
        let rows: Vec<VisitRow> = on_db!(self, |db| {
            sqlx::query_as(concat!(
                visit_select!(),
                // Upcoming ones that started, and the others that ended (an exit settles its own):
                // a visit in progress is not read again until its end.
                " WHERE (planned_phase = 0 AND starts_at <= $1) OR (planned_phase < 2 AND ends_at <= $1) ORDER BY id"
            ))
            .bind(now.as_str())
            .fetch_all(db.pool())
            .await?
        });
        let planned: Vec<(i64, i64)> = on_db!(self, |db| {
            sqlx::query_as("SELECT id, planned_phase FROM access_visits WHERE planned_phase < 2")
                .fetch_all(db.pool())
                .await?
        });
        let mut controllers = AffectedControllers::new();
        for visit in self.read_visits(rows).await? {
            let was = planned
                .iter()
                .find(|(id, _)| *id == visit.id)
                .map_or(VisitPhase::Over, |(_, p)| VisitPhase::from_number(*p));
            let phase = visit.phase(now);
            if phase <= was {
                continue;
            }
            controllers.extend(self.visit_controllers(&visit).await?);
            on_db!(self, |db| {
                sqlx::query("UPDATE access_visits SET planned_phase = $1 WHERE id = $2 AND planned_phase < $1")
                    .bind(phase as i64)
                    .bind(visit.id)
                    .execute(db.pool())
                    .await?;
            });
        }
        Ok(controllers)
    }
}
