//! `transaction/*`: the stored `rtlog` events of approved controllers as CVSecurity access
//! transactions (`cvsecurity_api.md` §5.10 and the §6 mapping: `eventNo` = event, `doorNumber` =
//! door, `readerState` = in/out, `eventLevel` from the code's band, names from [`super::names`],
//! `readerName` = `<door>-In`/`-Out`). Every list gives the full record (the unversioned ones
//! too: extra fields cost clients nothing), in the order the events were stored, so a client
//! paging forward finds new events at the end.

use axum::extract::{Path, State};
use serde_json::{Value, json};

use adms_store::cvsecurity::{AccessEventFilter, AccessEventRow};
use adms_store::now_micros;

use super::envelope::{CvError, CvResult, Envelope};
use super::names::{self, Language};
use super::params::{CvRequest, MAX_TRANSACTION_PAGE};
use super::{Shape, ids, shaped};
use crate::state::SharedState;

/// `0` means "none" in `rtlog`'s pin and card fields.
fn some_value(text: &str) -> &str {
    if text == "0" { "" } else { text }
}

fn transaction_view(row: &AccessEventRow, language: Language) -> Value {
    let door_name = row.door.filter(|d| *d > 0).and(row.door_name.clone()).unwrap_or_default();
    let reader_name = if door_name.is_empty() { String::new() } else { language.reader(&door_name, row.in_out) };
    let event_no = row.event_code.unwrap_or(-1);
    json!({
        "id": ids::encode(row.id),
        "eventTime": row.local_time,
        "pin": some_value(&row.pin),
        "name": row.first_name.clone().unwrap_or_default(),
        "lastName": row.last_name.clone().unwrap_or_default(),
        "deptCode": row.dept_code.clone().unwrap_or_default(),
        "deptName": row.dept_name.clone().unwrap_or_default(),
        "areaName": "",
        "accZone": Value::Null,
        "cardNo": some_value(&row.card_no),
        "devSn": row.sn,
        "devName": if row.alias.is_empty() { row.sn.clone() } else { row.alias.clone() },
        "verifyModeName": language.verify_mode(&row.verify_type),
        "eventNo": event_no,
        "eventName": language.event(row.event_code),
        "eventLevel": names::event_level(row.event_code),
        "eventPointName": door_name,
        "doorName": door_name,
        "doorNumber": row.door.unwrap_or(0),
        "readerName": reader_name,
        "readerState": row.in_out.unwrap_or(0),
        "logId": Value::Null,
        "capturePhotoBase64": Value::Null,
    })
}

/// A `startDate`/`endDate` bound: `yyyy-MM-dd HH:mm:ss`, or a date alone (the whole day for an
/// end). Anything else is `-100`.
fn time_bound(text: Option<&str>, end: bool) -> Result<Option<String>, CvError> {
    let Some(text) = text else { return Ok(None) };
    let with_time = if text.len() == 10 {
        format!("{text} {}", if end { "23:59:59" } else { "00:00:00" })
    } else {
        text.to_owned()
    };
    let parsed = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", &with_time).map_err(|_| CvError::TimeFormat)?;
    Ok(Some(parsed.strftime("%Y-%m-%d %H:%M:%S").to_string()))
}

/// The filter of a list: the dates of the query, and what the path or the query names.
fn filter_of(request: &CvRequest, sn: Option<String>, pin: Option<String>) -> Result<AccessEventFilter, CvError> {
    let from = time_bound(request.params.get("startDate").or(request.params.get("startTime")), false)?;
    let until = time_bound(request.params.get("endDate").or(request.params.get("endTime")), true)?;
    if let (Some(from), Some(until)) = (&from, &until)
        && from > until
    {
        return Err(CvError::StartAfterEnd);
    }
    Ok(AccessEventFilter { id: None, sn, pin, from, until, elevator: false })
}

async fn page(state: &SharedState, request: &CvRequest, filter: &AccessEventFilter, shape: Shape) -> CvResult {
    let page = request.params.page(MAX_TRANSACTION_PAGE)?;
    let (total, rows) = state.store.access_events_page(filter, page.offset(), page.page_size).await?;
    Ok(Envelope::success(shaped(
        shape,
        page,
        total,
        rows.iter().map(|row| transaction_view(row, state.config.cvsecurity.language)).collect(),
    )))
}

/// `transaction/list` (bare), `v2/transaction/list` (paged): every event, or a person's
/// (`personPin`), between `startDate` and `endDate`.
pub async fn list(State(state): State<SharedState>, request: CvRequest, shape: Shape) -> CvResult {
    let pin = request.params.get("personPin").or(request.params.get("pin")).map(str::to_owned);
    let filter = filter_of(&request, None, pin)?;
    page(&state, &request, &filter, shape).await
}

/// `eleTransaction/list` (bare), `v2/eleTransaction/list` (paged): as `transaction/list`, the
/// events of elevator controllers only.
pub async fn ele_list(State(state): State<SharedState>, request: CvRequest, shape: Shape) -> CvResult {
    let pin = request.params.get("personPin").or(request.params.get("pin")).map(str::to_owned);
    let filter = AccessEventFilter { elevator: true, ..filter_of(&request, None, pin)? };
    page(&state, &request, &filter, shape).await
}

/// `transaction/device/{sn}` (bare), `v2/transaction/device/{sn}` (paged).
pub async fn by_device_path(
    State(state): State<SharedState>,
    Path(sn): Path<String>,
    request: CvRequest,
    shape: Shape,
) -> CvResult {
    let filter = filter_of(&request, Some(sn.trim().to_owned()), None)?;
    page(&state, &request, &filter, shape).await
}

/// `v3/transaction/device?deviceSn=` (paged).
pub async fn by_device(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    let sn = request.params.get("deviceSn").or(request.params.get("sn")).ok_or(CvError::SnEmpty)?;
    let filter = filter_of(&request, Some(sn.to_owned()), None)?;
    page(&state, &request, &filter, Shape::Paged).await
}

/// `transaction/person/{pin}` (bare), `v2/transaction/person/{pin}` (paged).
pub async fn by_person_path(
    State(state): State<SharedState>,
    Path(pin): Path<String>,
    request: CvRequest,
    shape: Shape,
) -> CvResult {
    let filter = filter_of(&request, None, Some(pin.trim().to_owned()))?;
    page(&state, &request, &filter, shape).await
}

/// `v3/transaction/person?pin=` (paged).
pub async fn by_person(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    let pin = request.params.get("pin").ok_or(CvError::PinEmpty)?;
    let filter = filter_of(&request, None, Some(pin.to_owned()))?;
    page(&state, &request, &filter, Shape::Paged).await
}

async fn one(state: &SharedState, id: Option<&str>) -> CvResult {
    let id = id.ok_or_else(|| CvError::Other("the transaction id is empty".into()))?;
    let missing = || CvError::Other("the transaction does not exist".into());
    let filter = AccessEventFilter { id: Some(ids::decode(id).ok_or_else(missing)?), ..AccessEventFilter::default() };
    let (_, rows) = state.store.access_events_page(&filter, 0, 1).await?;
    let row = rows.first().ok_or_else(missing)?;
    Ok(Envelope::success(transaction_view(row, state.config.cvsecurity.language)))
}

/// `transaction/getById/{id}`.
pub async fn get_by_path(State(state): State<SharedState>, Path(id): Path<String>, _request: CvRequest) -> CvResult {
    one(&state, Some(id.as_str())).await
}

/// `v2/transaction/getById?id=`.
pub async fn get(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    one(&state, request.params.get("id")).await
}

/// Events one monitor poll hands out (about: at least one per controller with new events);
/// the next poll continues.
const MONITOR_BATCH: i64 = 500;

/// `transaction/monitor?timestamp=<ms>`: the SIEM feed. A client picks a timestamp on its
/// first poll and sends the same one on every poll; each poll answers the events stored since
/// the session's previous poll (the first: since the timestamp), each once, as a bare array.
/// The session is the bridge's (`cvsecurity_monitor_sessions` with a cursor per controller), so
/// a restart or another replica continues it. Rows have `id: null`, as CVSecurity's ("not stored yet").
pub async fn monitor(State(state): State<SharedState>, request: CvRequest) -> CvResult {
    let started_ms = request
        .params
        .get("timestamp")
        .and_then(|t| t.parse::<i64>().ok())
        .filter(|t| *t > 0)
        .ok_or(CvError::TimeFormat)?;
    let rows = state.store.monitor_access_events(request.client.id, started_ms, now_micros(), MONITOR_BATCH).await?;
    let views = rows
        .iter()
        .map(|row| {
            let mut view = transaction_view(row, state.config.cvsecurity.language);
            view["id"] = Value::Null;
            view
        })
        .collect();
    Ok(Envelope::success(Value::Array(views)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bounds_take_dates_and_date_times_and_refuse_the_rest() {
        assert_eq!(time_bound(Some("2026-12-01"), false).unwrap().as_deref(), Some("2026-12-01 00:00:00"));
        assert_eq!(time_bound(Some("2026-12-01"), true).unwrap().as_deref(), Some("2026-12-01 23:59:59"));
        assert_eq!(time_bound(Some("2026-12-01 08:30:00"), true).unwrap().as_deref(), Some("2026-12-01 08:30:00"));
        assert_eq!(time_bound(None, true).unwrap(), None);
        for bad in ["yesterday", "2026-13-01", "01/12/2026 08:00:00", "2026-12-01T08:00:00"] {
            assert!(matches!(time_bound(Some(bad), false), Err(CvError::TimeFormat)), "{bad}");
        }
    }
}
