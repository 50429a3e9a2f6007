//! What a device's reports may change in the roster (`device_users` policy).
//!
//! A device is a witness, not an authority: its `USER` and template lines are always kept per
//! device (`device_users`, `biometric_templates`) and raised as events, but they reach the roster,
//! and through it the other terminals, only when the operator's policy adopts them, only from an
//! approved device, only when they pass the same checks as the API (a value that could not be
//! sent back to a terminal is never adopted), and never with more privilege than the roster
//! grants unless the operator allows device-made administrators.

use crate::uploads::{BiometricTemplate, UserRow};
use adms_vault::Sealer;

use crate::{StoreError, roster, sealed};

/// How much of what a device reports about its users the roster takes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserAdoption {
    /// Kept per device and raised as `user.*` events; the roster is not touched. The default,
    /// and what every device that is not approved gets whatever the policy.
    #[default]
    Observe,
    /// A PIN the roster does not know becomes an employee, and a template slot the roster holds
    /// nothing for is taken; nothing the roster already holds changes.
    AdoptNew,
    /// Also updates employees the ERP does not manage and replaces the roster's templates.
    AdoptAll,
}

impl UserAdoption {
    pub fn as_str(self) -> &'static str {
        match self {
            UserAdoption::Observe => "observe",
            UserAdoption::AdoptNew => "adopt_new",
            UserAdoption::AdoptAll => "adopt_all",
        }
    }
}

/// The policy one upload is stored under (the server decides it per device).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdoptionPolicy {
    pub adoption: UserAdoption,
    /// Whether a device may make or keep an administrator (privilege above 0). Off: an adopted
    /// user is a normal user, and an update never raises the roster's privilege.
    pub allow_admin: bool,
}

/// The `DATA UPDATE USERINFO` a roster entry made from `u` would send: adopting a value that
/// could not be sent back to a terminal (a control, bidirectional or line-separator character,
/// an overlong name, a malformed card) would only fail later, or inject, so such a user is not
/// adopted. These are the encoder's checks, which the API's employee validation mirrors.
fn adoptable(u: &UserRow, privilege: i64) -> Result<(), adms_protocol::CommandError> {
    adms_protocol::DeviceCommand::UserUpsert {
        pin: u.pin.clone(),
        name: u.name.clone(),
        privilege: u8::try_from(privilege).unwrap_or(u8::MAX),
        password: u.password.clone(),
        card: u.card.clone(),
        group: 1,
        time_zones: "0000000100000000".to_owned(),
        verify: -1,
        vice_card: String::new(),
        start_datetime: None,
        end_datetime: None,
    }
    .encode()
    .map(drop)
}

dual! {
    /// Takes a `USER` line a device reported into the roster as far as `policy` allows (inside the
    /// upload's transaction). A new employee goes into the device's area when the terminal was
    /// assigned one, else area 1 ("Not Authorized", pushed nowhere). An employee the ERP manages, or
    /// deleted, is never changed. A card another employee holds is not copied (the upload must never
    /// fail on it).
    pub(crate) async fn adopt_device_user_in(
        conn: &mut Conn,
        sealer: Sealer<'_>,
        device_id: i64,
        user: &UserRow,
        policy: AdoptionPolicy,
        now: i64,
    ) -> Result<(), StoreError> {
        if policy.adoption == UserAdoption::Observe {
            return Ok(());
        }
        let reported = user.privilege.unwrap_or(0);
        let privilege = if policy.allow_admin { reported } else { 0 };
        if let Err(error) = adoptable(user, privilege) {
            tracing::warn!(device_id, pin = %user.pin.escape_debug(), %error, "device user kept per device, not adopted: a value the API would refuse");
            return Ok(());
        }
        let update = policy.adoption == UserAdoption::AdoptAll;
        let known: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM employees WHERE emp_code = $1)")
            .bind(&user.pin)
            .fetch_one(&mut *conn)
            .await?;
        if known && !update {
            return Ok(());
        }
        // A new employee gets `$3` (0 unless device-made administrators are allowed). An update may
        // lower the roster's privilege to the device's `$6` but never raise it, unless `$5` allows.
        // No row comes back when the ERP manages the employee, or deleted it, or when the policy
        // only adopts new PINs (`$7` false): nothing changes then. The read above is only a
        // shortcut: on PostgreSQL another upload may create the employee after it, and `$7` keeps
        // `adopt_new` from changing that employee (SQLite's writer lock made the read enough).
        let adopted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO employees (emp_code, first_name, dev_privilege, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (emp_code) DO UPDATE SET first_name = excluded.first_name, \
             dev_privilege = CASE WHEN $5 OR $6 < employees.dev_privilege THEN $6 ELSE employees.dev_privilege END, \
             updated_at = excluded.updated_at \
             WHERE $7 AND NOT employees.erp_managed AND employees.deleted_at IS NULL RETURNING id",
        )
        .bind(&user.pin)
        .bind(&user.name)
        .bind(privilege)
        .bind(now)
        .bind(policy.allow_admin)
        .bind(reported)
        .bind(update)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(id) = adopted else { return Ok(()) };
        // Password and card are sealed under the employee's id. A card another employee holds is
        // not copied.
        let mut card_index = roster::card_index(sealer, &user.card);
        if let Some(index) = &card_index {
            let taken: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM employees WHERE card_index = $1 AND id <> $2 AND deleted_at IS NULL)",
            )
            .bind(index)
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
            if taken {
                card_index = None;
            }
        }
        let record = id.to_string();
        let password = sealer.seal(sealed::EMPLOYEE_PASSWORD.kind, &record, &user.password);
        const WRITE: &str = "UPDATE employees SET device_password = $1, card_no = $2, card_index = $3 WHERE id = $4";
        if card_index.is_some() {
            // The check above cannot see a card given by another upload whose transaction is
            // still open (PostgreSQL; SQLite has a single writer): once that one commits, the
            // card's unique index refuses this update. It runs in a savepoint, so the upload then
            // goes on without the card instead of failing.
            let mut savepoint = sqlx::Connection::begin(&mut *conn).await?;
            let written = sqlx::query(WRITE)
                .bind(&password)
                .bind(sealer.seal(sealed::EMPLOYEE_CARD.kind, &record, &user.card))
                .bind(&card_index)
                .bind(id)
                .execute(&mut *savepoint)
                .await;
            match written {
                Ok(_) => savepoint.commit().await?,
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    savepoint.rollback().await?;
                    card_index = None;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if card_index.is_none() {
            sqlx::query(WRITE)
                .bind(&password)
                .bind(sealer.seal(sealed::EMPLOYEE_CARD.kind, &record, ""))
                .bind(None::<Vec<u8>>)
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
        // The employee joins the terminal's area when the terminal was assigned one; one with no
        // area at all goes into area 1 ("Not Authorized", pushed nowhere) so it can be found.
        sqlx::query(
            "INSERT INTO employee_areas (employee_id, area_id) \
             SELECT e.id, COALESCE((SELECT area_id FROM terminal_areas WHERE device_id = $2), 1) FROM employees AS e \
             WHERE e.emp_code = $1 AND NOT e.erp_managed AND e.deleted_at IS NULL \
             AND (EXISTS (SELECT 1 FROM terminal_areas WHERE device_id = $2) \
                  OR NOT EXISTS (SELECT 1 FROM employee_areas AS ea WHERE ea.employee_id = e.id)) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&user.pin)
        .bind(device_id)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Takes a template a device reported into the roster's templates as far as `policy` allows:
    /// `adopt_new` only fills a slot the roster holds nothing for, and never for an employee the ERP
    /// manages (a finger enrolled under someone else's PIN must not travel); `adopt_all` fills and
    /// replaces for anyone.
    pub(crate) async fn adopt_device_template_in(
        conn: &mut Conn,
        sealer: Sealer<'_>,
        device_id: i64,
        t: &BiometricTemplate,
        policy: AdoptionPolicy,
        now: i64,
    ) -> Result<(), StoreError> {
        let replace = match policy.adoption {
            UserAdoption::Observe => return Ok(()),
            UserAdoption::AdoptNew => false,
            UserAdoption::AdoptAll => true,
        };
        if !roster::valid_pin(&t.pin) {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO roster_templates (pin, bio_type, bio_no, bio_index, record_kind, valid, duress, major_ver, \
             minor_ver, format, template, source_device_id, updated_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 \
             WHERE $14 OR NOT EXISTS (SELECT 1 FROM employees WHERE emp_code = $1 AND erp_managed) \
             ON CONFLICT (pin, bio_type, bio_no, bio_index) DO UPDATE SET record_kind = excluded.record_kind, \
             valid = excluded.valid, duress = excluded.duress, major_ver = excluded.major_ver, \
             minor_ver = excluded.minor_ver, format = excluded.format, template = excluded.template, \
             source_device_id = excluded.source_device_id, updated_at = excluded.updated_at WHERE $14",
        )
        .bind(&t.pin)
        .bind(t.bio_type)
        .bind(t.no)
        .bind(t.index)
        .bind(t.record_kind)
        .bind(t.valid)
        .bind(t.duress)
        .bind(t.major_ver)
        .bind(t.minor_ver)
        .bind(&t.format)
        .bind(sealer.seal(
            sealed::ROSTER_TEMPLATE.kind,
            &format!("{}/{}/{}/{}", t.pin, t.bio_type, t.no, t.index),
            &t.template,
        ))
        .bind(device_id)
        .bind(now)
        .bind(replace)
        .execute(conn)
        .await?;
        Ok(())
    }
}
