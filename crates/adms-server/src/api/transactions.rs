//! `GET /iclock/api/transactions/`: punches in ZKBio Time 9.x's record shape.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::Serialize;
use serde_json::json;

use adms_protocol::LocalDateTime;
use adms_store::{TransactionFilter, TransactionOrder, TransactionRow};

use super::auth::Authenticated;
use super::pagination::{Envelope, ListRequest, PageParams, PageRequest, QueryParams};
use super::request::choice;
use adms_protocol::labels;

use super::{ApiError, openapi};
use crate::state::SharedState;

/// ZKBio Time 9.x transaction record; every key always present, in this order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Transaction {
    /// Ascends in arrival order; never changes for a re-sent punch.
    id: i64,
    /// The roster's employee id for `emp_code`; `null` for a PIN the roster does not know.
    emp: Option<i64>,
    /// The device PIN.
    emp_code: String,
    first_name: Option<String>,
    last_name: Option<String>,
    department: Option<String>,
    position: Option<String>,
    /// Device-local `YYYY-MM-DD HH:MM:SS`.
    punch_time: String,
    punch_state: String,
    punch_state_display: &'static str,
    verify_type: i64,
    verify_type_display: &'static str,
    work_code: String,
    gps_location: String,
    area_alias: Option<String>,
    terminal_sn: String,
    temperature: f64,
    is_mask: &'static str,
    terminal_alias: String,
    /// When the server received it, in the display zone.
    upload_time: String,
    longitude: Option<f64>,
    latitude: Option<f64>,
}

impl Transaction {
    fn from_row(r: TransactionRow, state: &SharedState) -> Transaction {
        Transaction {
            id: r.id,
            emp: r.emp_id,
            punch_state_display: labels::punch_state(&r.punch_state),
            verify_type_display: labels::verify_type(r.verify_type),
            emp_code: r.emp_code,
            // The roster's name first; the device's own record for PINs the roster lacks.
            first_name: r.emp_first_name.or(r.employee_name).filter(|n| !n.is_empty()),
            last_name: r.emp_last_name.filter(|n| !n.is_empty()),
            department: r.dept_name,
            position: r.position_name,
            punch_time: r.punch_time,
            punch_state: r.punch_state,
            verify_type: r.verify_type,
            work_code: r.work_code,
            gps_location: String::new(),
            area_alias: r.area_name,
            terminal_sn: r.terminal_sn,
            temperature: r.temperature.unwrap_or(0.0),
            is_mask: if r.mask_flag == Some(1) { "Yes" } else { "-" },
            terminal_alias: r.terminal_alias,
            upload_time: state.display_zone.format_micros(r.upload_time),
            longitude: None,
            latitude: None,
        }
    }
}

/// Parses `YYYY-MM-DD[ HH:MM[:SS]]` (space, `T`, `+` or `%20`); a bare date means the start of
/// the day, or its last second when `end_of_day` (so `end_time=2026-01-31` includes that day).
pub fn parse_filter_time(value: &str, end_of_day: bool) -> Option<LocalDateTime> {
    let v = value.trim();
    let text = match v.len() {
        10 => format!("{v} {}", if end_of_day { "23:59:59" } else { "00:00:00" }),
        16 => format!("{v}:00"),
        n if n >= 19 => v[..19].to_owned(),
        _ => return None,
    };
    LocalDateTime::parse(text.as_bytes())
}

fn time_param(value: Option<&str>, key: &'static str, end_of_day: bool) -> Result<Option<LocalDateTime>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) => parse_filter_time(v, end_of_day)
            .map(Some)
            .ok_or_else(|| ApiError::BadRequest(json!({ key: ["Enter a valid date/time."] }))),
    }
}

/// `ordering`, `+` allowed before a name (DRF reads it as ascending); anything else sorts by id.
fn order(ordering: Option<&str>) -> TransactionOrder {
    let named = ordering.and_then(|o| choice::<TransactionOrdering>(o.trim_start_matches('+').trim()));
    match named.unwrap_or(TransactionOrdering::Id) {
        TransactionOrdering::Id => TransactionOrder::IdAsc,
        TransactionOrdering::IdDesc => TransactionOrder::IdDesc,
        TransactionOrdering::PunchTime => TransactionOrder::PunchTimeAsc,
        TransactionOrdering::PunchTimeDesc => TransactionOrder::PunchTimeDesc,
        TransactionOrdering::UploadTime => TransactionOrder::UploadTimeAsc,
        TransactionOrdering::UploadTimeDesc => TransactionOrder::UploadTimeDesc,
    }
}

/// The list filters (shared by the list and the export), as read from the query
/// ([`QueryParams::read`]) and as the document shows them.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TransactionQuery {
    /// Punch time from (device-local `YYYY-MM-DD[ HH:MM[:SS]]`; a bare date: from its start).
    #[param(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$")]
    start_time: Option<String>,
    /// Punch time until, inclusive (a bare date: the whole day).
    #[param(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$")]
    end_time: Option<String>,
    /// Same as `start_time` (used when `start_time` is absent).
    #[serde(rename = "punch_time__gte")]
    #[param(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$")]
    punch_time_gte: Option<String>,
    /// Same as `end_time` (used when `end_time` is absent).
    #[serde(rename = "punch_time__lte")]
    #[param(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$")]
    punch_time_lte: Option<String>,
    /// The employee's PIN.
    emp_code: Option<String>,
    terminal_sn: Option<String>,
    terminal_alias: Option<String>,
    /// Received from (display zone, `YYYY-MM-DD[ HH:MM[:SS]]`).
    #[serde(rename = "upload_time__gte")]
    #[param(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$")]
    upload_time_gte: Option<String>,
    /// Received until, inclusive.
    #[serde(rename = "upload_time__lte")]
    #[param(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$")]
    upload_time_lte: Option<String>,
    /// `id` (default), `punch_time` or `upload_time`, `-` first for descending.
    #[param(inline, value_type = Option<TransactionOrdering>)]
    ordering: Option<String>,
}

/// Sort orders of the transaction list.
#[derive(Debug, Clone, Copy, serde::Deserialize, utoipa::ToSchema)]
pub enum TransactionOrdering {
    #[serde(rename = "id")]
    Id,
    #[serde(rename = "-id")]
    IdDesc,
    #[serde(rename = "punch_time")]
    PunchTime,
    #[serde(rename = "-punch_time")]
    PunchTimeDesc,
    #[serde(rename = "upload_time")]
    UploadTime,
    #[serde(rename = "-upload_time")]
    UploadTimeDesc,
}

/// The list filters (shared by the list and the export).
fn filter_from_params(params: &QueryParams, state: &SharedState) -> Result<TransactionFilter, ApiError> {
    let q: TransactionQuery = params.read()?;
    let zone = &state.display_zone;
    let upload_gte =
        time_param(q.upload_time_gte.as_deref(), "upload_time__gte", false)?.and_then(|t| zone.micros_of(&t));
    let upload_lte = time_param(q.upload_time_lte.as_deref(), "upload_time__lte", true)?
        .and_then(|t| zone.micros_of(&t).map(|m| m + 999_999));
    let start = time_param(q.start_time.as_deref(), "start_time", false)?.or(time_param(
        q.punch_time_gte.as_deref(),
        "punch_time__gte",
        false,
    )?);
    let end = time_param(q.end_time.as_deref(), "end_time", true)?.or(time_param(
        q.punch_time_lte.as_deref(),
        "punch_time__lte",
        true,
    )?);
    Ok(TransactionFilter {
        start_time: start.map(|t| t.to_string()),
        end_time: end.map(|t| t.to_string()),
        emp_code: q.emp_code,
        terminal_sn: q.terminal_sn,
        terminal_alias: q.terminal_alias,
        upload_time_gte: upload_gte,
        upload_time_lte: upload_lte,
        order: order(q.ordering.as_deref()),
    })
}

/// List transactions (punches).
///
/// The ZKBio Time 9.x envelope with absolute `next`/`previous` links; punches of devices
/// pending approval are held back. Records carry the roster's names, department, position and
/// the terminal's area.
#[utoipa::path(
    get,
    path = "/iclock/api/transactions",
    tag = openapi::tag::TRANSACTIONS,
    params(TransactionQuery, PageParams),
    responses(
        (status = 200, description = "One page of transactions.", body = Envelope<Transaction>),
        (status = 400, description = "A filter is not a valid date/time.", body = openapi::ValidationErrors),
        (status = 404, description = "`Invalid page.`", body = openapi::Detail),
    )
)]
pub async fn list(
    State(state): State<SharedState>,
    _auth: Authenticated,
    list: ListRequest,
) -> Result<Json<Envelope<Transaction>>, ApiError> {
    let params = &list.params;
    let filter = filter_from_params(params, &state)?;
    let (count, rows) = state.store.list_transactions(&filter, list.store_page()).await?;
    let data = rows.into_iter().map(|r| Transaction::from_row(r, &state)).collect();
    Ok(Json(list.envelope(count, data)?))
}

/// Get one transaction.
#[utoipa::path(
    get,
    path = "/iclock/api/transactions/{id}",
    tag = openapi::tag::TRANSACTIONS,
    params(("id" = i64, Path, description = "The transaction id.")),
    responses(
        (status = 200, description = "The transaction.", body = Transaction),
        (status = 404, description = "No such transaction.", body = openapi::Detail),
    )
)]
pub async fn detail(
    State(state): State<SharedState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Transaction>, ApiError> {
    let id = super::parse_id(&id)?;
    let row = state.store.transaction_by_id(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(Transaction::from_row(row, &state)))
}

/// Export transactions as CSV, tab-separated text or an XLSX workbook.
///
/// The filtered, ordered (and, with `page` / `page_size`, paged; otherwise every match)
/// transactions as a file whose header row is the record's field names (without the GPS
/// coordinates). `txt` is tab-separated; `xls` (ZKBio Time's name) and `xlsx` give an Office
/// Open XML workbook of at most 1,048,575 rows: `punch_time` and `upload_time` as date-time
/// cells (`yyyy-mm-dd hh:mm:ss`), ids and numbers as numbers, PINs and other codes as text
/// (leading zeros kept), columns sized to their content. With `bom=1`, a `csv` or `txt` file
/// starts with a UTF-8 byte order mark (for Excel).
#[utoipa::path(
    get,
    path = "/iclock/api/transactions/export",
    tag = openapi::tag::TRANSACTIONS,
    params(
        ("export_type" = inline(ExportType), Query, description = "The file format."),
        ("bom" = Option<bool>, Query, description = "`1` (or `true`): a `csv` or `txt` file starts with a UTF-8 byte order mark, so that Excel reads it as UTF-8 (accented names) rather than in the local code page. Ignored for the workbook."),
        TransactionQuery,
        PageParams,
    ),
    responses(
        (status = 200, description = "The file (`Content-Disposition: attachment`).", content(
            (String = "text/csv"),
            (String = "text/plain"),
            (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        )),
        (status = 400, description = "`export_type` missing or not offered, a filter is invalid, or too many rows for one worksheet.", body = openapi::ValidationErrors),
        (status = 404, description = "`Invalid page.`", body = openapi::Detail),
    )
)]
pub async fn export(
    State(state): State<SharedState>,
    _auth: Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let params = QueryParams::parse(raw.as_deref());
    let format = match params.get("export_type") {
        Some(name) => match choice::<ExportType>(name) {
            Some(export_type) => export_type.format(),
            None => {
                return Err(ApiError::BadRequest(
                    json!({ "export_type": [format!("\"{name}\" is not a valid choice.")] }),
                ));
            }
        },
        None => return Err(ApiError::BadRequest(json!({ "export_type": ["This field is required."] }))),
    };
    let bom = match params.get("bom") {
        None | Some("" | "0" | "false" | "False" | "no" | "off") => false,
        Some("1" | "true" | "True" | "yes" | "on") => true,
        Some(_) => return Err(ApiError::BadRequest(json!({ "bom": ["Must be a valid boolean."] }))),
    };
    let filter = filter_from_params(&params, &state)?;
    let page = if params.get("page").is_some() || params.get("page_size").is_some() || params.get("limit").is_some() {
        PageRequest::from_params(&params)?.store_page()
    } else {
        adms_store::Page { offset: 0, limit: i64::MAX }
    };
    let (_, rows) = state.store.list_transactions(&filter, page).await?;
    if matches!(format, ExportFormat::Xlsx) && rows.len() >= XLSX_MAX_DATA_ROWS {
        return Err(ApiError::BadRequest(json!({
            "export_type": [format!("More than {XLSX_MAX_DATA_ROWS} rows do not fit one worksheet; narrow the time range or use page and page_size.")]
        })));
    }
    let records: Vec<[String; 20]> =
        rows.into_iter().map(|row| export_record(Transaction::from_row(row, &state))).collect();
    // Encoding a large export is CPU work of seconds: off the async workers.
    let bytes = tokio::task::spawn_blocking(move || format.encode(&records, bom))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let disposition = format!("attachment; filename=\"transactions.{}\"", format.extension());
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, format.content_type().to_owned()),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

/// A worksheet holds 1,048,576 rows; one is the header.
const XLSX_MAX_DATA_ROWS: usize = 1_048_575;

/// The file formats of the transactions export.
#[derive(Debug, Clone, Copy)]
enum ExportFormat {
    /// CSV (`,`) or the TXT export (TAB), with a header row.
    Delimited(u8),
    /// One worksheet, header row in bold, numeric columns as numbers.
    Xlsx,
}

impl ExportFormat {
    fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Delimited(b',') => "text/csv; charset=utf-8",
            ExportFormat::Delimited(_) => "text/plain; charset=utf-8",
            ExportFormat::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            ExportFormat::Delimited(b',') => "csv",
            ExportFormat::Delimited(_) => "txt",
            ExportFormat::Xlsx => "xlsx",
        }
    }

    /// The file; `bom`: a delimited file starts with the UTF-8 byte order mark.
    fn encode(self, records: &[[String; 20]], bom: bool) -> Result<Vec<u8>, ApiError> {
        match self {
            ExportFormat::Delimited(delimiter) => {
                let write_error = |e: csv::Error| ApiError::Internal(e.to_string());
                let start = if bom { UTF8_BOM.to_vec() } else { Vec::new() };
                let mut writer = csv::WriterBuilder::new().delimiter(delimiter).from_writer(start);
                writer.write_record(EXPORT_COLUMNS).map_err(write_error)?;
                for record in records {
                    writer.write_record(record.iter().map(|cell| inert_cell(cell))).map_err(write_error)?;
                }
                writer.into_inner().map_err(|e| ApiError::Internal(e.to_string()))
            }
            ExportFormat::Xlsx => encode_xlsx(records).map_err(|e| ApiError::Internal(e.to_string())),
        }
    }
}

/// What `bom=1` puts before a delimited file: Excel reads a CSV file without it in the local
/// code page (`JosÃ©` for `José`).
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The first characters that make a spreadsheet read a CSV/TXT cell as a formula (or, TAB and CR,
/// that some programs strip before doing so).
const FORMULA_TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A CSV/TXT cell a spreadsheet will show as text. Devices are unauthenticated and choose PINs,
/// work codes, serial numbers and user names, so any cell may start a formula
/// (`=HYPERLINK(...)`); such cells get a leading `'` (OWASP CSV injection guidance), which
/// spreadsheets take as "text follows" and other readers see as one extra character. Every
/// column is treated alike, numbers included (a negative temperature reads `'-1.5`), so no
/// column's safety depends on what it is expected to hold.
fn inert_cell(cell: &str) -> std::borrow::Cow<'_, [u8]> {
    if cell.starts_with(FORMULA_TRIGGERS) { [b"'", cell.as_bytes()].concat().into() } else { cell.as_bytes().into() }
}

/// Columns written as numbers in the spreadsheet (ids, codes, temperature), so formulas and
/// filters work on them.
const NUMERIC_COLUMNS: [&str; 4] = ["id", "emp", "verify_type", "temperature"];

/// Columns written as date-time cells: device-local and display-zone `YYYY-MM-DD HH:MM:SS`.
const DATETIME_COLUMNS: [&str; 2] = ["punch_time", "upload_time"];

/// Codes whose every character counts (`016` is not `16`): text cells in a column formatted as
/// text (`@`), so a value typed into the column later stays text too.
const TEXT_COLUMNS: [&str; 4] = ["emp_code", "punch_state", "work_code", "terminal_sn"];

/// The number format of the date-time cells.
const DATETIME_FORMAT: &str = "yyyy-mm-dd hh:mm:ss";

/// Column widths (in characters) stay within these bounds: a column never hides its header, and
/// one long name does not make a column wider than a screen.
const MIN_WIDTH: usize = 6;
const MAX_WIDTH: usize = 50;

/// A `YYYY-MM-DD HH:MM:SS` value (fractions of a second ignored) as a spreadsheet date-time.
fn excel_datetime(value: &str) -> Option<rust_xlsxwriter::ExcelDateTime> {
    let local = LocalDateTime::parse(value.get(..19)?.as_bytes())?;
    rust_xlsxwriter::ExcelDateTime::from_ymd(local.year, local.month, local.day)
        .and_then(|date| date.and_hms(u16::from(local.hour), local.minute, local.second))
        .ok()
}

fn encode_xlsx(records: &[[String; 20]]) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::Format;
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("transactions")?;
    let bold = Format::new().set_bold();
    let datetime = Format::new().set_num_format(DATETIME_FORMAT);
    let text = Format::new().set_num_format("@");
    // Widths in characters: the header's, then the longest value's (date-times: their format's).
    let mut widths: [usize; 20] = EXPORT_COLUMNS.map(str::len);
    for (col, name) in (0u16..).zip(EXPORT_COLUMNS) {
        sheet.write_string_with_format(0, col, name, &bold)?;
        if TEXT_COLUMNS.contains(&name) {
            sheet.set_column_format(col, &text)?;
        }
    }
    // Cells go in as strings, numbers or date-times, never as formulas (`write_string` stores
    // `=1+2` as the text it is), so the workbook needs no quoting.
    for (row, record) in (1u32..).zip(records) {
        for ((col, name), value) in (0u16..).zip(EXPORT_COLUMNS).zip(record) {
            let index = usize::from(col);
            if value.is_empty() {
                continue;
            }
            if NUMERIC_COLUMNS.contains(&name)
                && let Ok(number) = value.parse::<f64>()
            {
                sheet.write_number(row, col, number)?;
                widths[index] = widths[index].max(value.len());
            } else if DATETIME_COLUMNS.contains(&name)
                && let Some(instant) = excel_datetime(value)
            {
                sheet.write_datetime_with_format(row, col, instant, &datetime)?;
                widths[index] = widths[index].max(DATETIME_FORMAT.len());
            } else {
                if TEXT_COLUMNS.contains(&name) {
                    sheet.write_string_with_format(row, col, value, &text)?;
                } else {
                    sheet.write_string(row, col, value)?;
                }
                widths[index] = widths[index].max(value.chars().count());
            }
        }
    }
    for (col, width) in (0u16..).zip(widths) {
        // One character of margin, for the header's bold face and the filter button.
        let width = (width + 1).clamp(MIN_WIDTH, MAX_WIDTH);
        sheet.set_column_width(col, u32::try_from(width).unwrap_or(50))?;
    }
    sheet.set_freeze_panes(1, 0)?;
    workbook.save_to_buffer()
}

/// One transaction as the export's row, in [`EXPORT_COLUMNS`] order.
fn export_record(t: Transaction) -> [String; 20] {
    let opt = |v: Option<String>| v.unwrap_or_default();
    [
        t.id.to_string(),
        t.emp.map(|e| e.to_string()).unwrap_or_default(),
        t.emp_code,
        opt(t.first_name),
        opt(t.last_name),
        opt(t.department),
        opt(t.position),
        t.punch_time,
        t.punch_state,
        t.punch_state_display.to_owned(),
        t.verify_type.to_string(),
        t.verify_type_display.to_owned(),
        t.work_code,
        t.gps_location,
        opt(t.area_alias),
        t.terminal_sn,
        t.temperature.to_string(),
        t.is_mask.to_owned(),
        t.terminal_alias,
        t.upload_time,
    ]
}

/// Export formats.
#[derive(Debug, Clone, Copy, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportType {
    Csv,
    Txt,
    /// ZKBio Time's name for its spreadsheet export; answered with an XLSX workbook.
    Xls,
    Xlsx,
}

impl ExportType {
    fn format(self) -> ExportFormat {
        match self {
            ExportType::Csv => ExportFormat::Delimited(b','),
            ExportType::Txt => ExportFormat::Delimited(b'\t'),
            // What we write is Office Open XML, which Excel, LibreOffice and pandas open by
            // content whatever the extension.
            ExportType::Xls | ExportType::Xlsx => ExportFormat::Xlsx,
        }
    }
}

/// The export's columns: the transaction record's fields, without the GPS coordinates.
const EXPORT_COLUMNS: [&str; 20] = [
    "id",
    "emp",
    "emp_code",
    "first_name",
    "last_name",
    "department",
    "position",
    "punch_time",
    "punch_state",
    "punch_state_display",
    "verify_type",
    "verify_type_display",
    "work_code",
    "gps_location",
    "area_alias",
    "terminal_sn",
    "temperature",
    "is_mask",
    "terminal_alias",
    "upload_time",
];
