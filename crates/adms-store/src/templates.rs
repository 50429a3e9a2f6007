//! Biometric templates as the ERP reads them (`/iclock/api/biodatas/`): one record per template
//! slot (PIN, type, number, fragment), the newest copy any terminal reported. The per-device
//! copies stay in `biometric_templates`, where the roster sync reads them.

use sqlx::FromRow;

use crate::{Page, Store, StoreError, sealed};

/// The newest copy of one template slot. `id` is that copy's row id: stable while no terminal
/// reports a newer copy of the slot.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct TemplateRecord {
    pub id: i64,
    pub pin: String,
    /// The employee's first name, or the name a device reported for the PIN; empty if neither.
    pub first_name: String,
    pub bio_type: i64,
    pub bio_no: i64,
    pub bio_index: i64,
    pub major_ver: Option<i64>,
    pub minor_ver: Option<i64>,
    pub valid: Option<i64>,
    pub duress: Option<i64>,
    pub template: String,
    /// SN of the terminal the copy came from.
    pub device_sn: String,
    /// Id of that terminal.
    pub device_id: i64,
    pub updated_at: i64,
}

/// Optional filters of the list; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct TemplateFilter {
    pub id: Option<i64>,
    pub emp_code: Option<String>,
    pub bio_type: Option<i64>,
}

/// The newest copy of each slot, filtered. `$1` id, `$2` PIN, `$3` type.
macro_rules! newest_templates {
    () => {
        "WITH copies AS (
            SELECT t.id, t.device_id, t.pin, t.bio_type, t.bio_no, t.bio_index, t.major_ver, t.minor_ver,
                   t.valid, t.duress, t.template, t.updated_at,
                   row_number() OVER (PARTITION BY t.pin, t.bio_type, t.bio_no, t.bio_index
                                      ORDER BY t.updated_at DESC, t.id DESC) AS copy
            FROM biometric_templates AS t
            WHERE ($2 IS NULL OR t.pin = $2) AND ($3 IS NULL OR t.bio_type = $3))
         SELECT c.id, c.pin,
                COALESCE(e.first_name,
                         (SELECT u.name FROM device_users AS u WHERE u.device_id = c.device_id AND u.pin = c.pin),
                         '') AS first_name,
                c.bio_type, c.bio_no, c.bio_index, c.major_ver, c.minor_ver, c.valid, c.duress, c.template,
                d.sn AS device_sn, c.device_id, c.updated_at
         FROM copies AS c
         JOIN devices AS d ON d.id = c.device_id
         LEFT JOIN employees AS e ON e.emp_code = c.pin AND e.deleted_at IS NULL
         WHERE c.copy = 1 AND ($1 IS NULL OR c.id = $1)"
    };
}

impl Store {
    /// One page of template records in id order, and how many match.
    pub async fn list_templates(
        &self,
        f: &TemplateFilter,
        page: Page,
    ) -> Result<(i64, Vec<TemplateRecord>), StoreError> {
        let (count, mut rows): (i64, Vec<TemplateRecord>) = on_db!(self, |db| {
            let count: i64 =
                sqlx::query_scalar(concat!("SELECT COUNT(*) FROM (", newest_templates!(), ") AS matching"))
                    .bind(f.id)
                    .bind(&f.emp_code)
                    .bind(f.bio_type)
                    .fetch_one(db.pool())
                    .await?;
            if count == 0 || page.offset >= count {
                return Ok((count, Vec::new()));
            }
            let rows = sqlx::query_as(concat!(newest_templates!(), " ORDER BY c.id ASC LIMIT $4 OFFSET $5"))
                .bind(f.id)
                .bind(&f.emp_code)
                .bind(f.bio_type)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(db.pool())
                .await?;
            (count, rows)
        });
        for t in &mut rows {
            let record = format!("{}/{}/{}/{}/{}", t.device_id, t.pin, t.bio_type, t.bio_no, t.bio_index);
            t.template = self.sealer().open(sealed::DEVICE_TEMPLATE.kind, &record, &t.template)?;
        }
        Ok((count, rows))
    }

    /// The record with this id, if it is the newest copy of its slot.
    pub async fn template_by_id(&self, id: i64) -> Result<Option<TemplateRecord>, StoreError> {
        let filter = TemplateFilter { id: Some(id), ..TemplateFilter::default() };
        let (_, mut rows) = self.list_templates(&filter, Page { offset: 0, limit: 1 }).await?;
        Ok(rows.pop())
    }
}
