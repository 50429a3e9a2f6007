//! Uploads: `POST /iclock/cdata` by table, `fdata`, `querydata`, and everything else.
//!
//! Every handler answers only after its transaction committed. Lines that do not parse are
//! stored raw with the reason and counted; they never fail the rest of the batch, and the device
//! is still answered so it does not resend forever.

use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, State};
use axum::response::Response;
use http_body_util::BodyExt;

use adms_protocol::attphoto::parse_att_photo;
use adms_protocol::operlog::{OperLogRecord, parse_operlog_line};
use adms_protocol::options::parse_options;
use adms_protocol::reply::ok_count;
use adms_protocol::rtlog::parse_rtlog_line;
use adms_protocol::text::{TextEncoding, has_unsafe_chars};
use adms_protocol::{LocalDateTime, RejectReason, Rejected, UploadTable, parse_attlog_body, parse_lines};
use adms_store::{
    AccessEvent, AttPhotoUpload, BiometricTemplate, Device, DeviceFacts, DeviceInfoUpdate, DeviceRecord, NewPunch,
    OperationLog, OperlogBatch, PunchBatch, QuotaKind, RawUpload, RejectedLine, StoreError, UserPhoto, UserRow,
    now_micros,
};

use super::{DeviceCtx, DeviceError, ok};
use crate::state::SharedState;
use crate::zones::Zone;

/// Bodies above this size are parsed on the blocking pool, off the async workers.
const INLINE_PARSE_LIMIT: usize = 256 * 1024;

/// ATTLOG bodies longer than this are read in chunks of whole lines of about this size, each
/// parsed and committed before the next is read, so an upload's memory follows the chunk, not
/// the body (a parsed punch costs about 20 times its line). Devices send 1 to 128 lines per
/// post: those bodies never reach a second chunk and take the one-batch path as before.
const ATTLOG_CHUNK_BYTES: usize = 1024 * 1024;

/// Reads a whole body, at most `limit` bytes (`max_body_bytes`), as the `Bytes` extractor does.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, DeviceError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => Err(body_error(&*error, limit)),
    }
}

fn body_error(error: &(dyn std::error::Error + 'static), limit: usize) -> DeviceError {
    if error.is::<http_body_util::LengthLimitError>() {
        DeviceError::BodyTooLarge(limit)
    } else {
        DeviceError::BadRequest(format!("request body not read: {error}"))
    }
}

/// Counts and logs a quota refusal (the store only reports it) on its way to the device.
fn quota_checked(state: &SharedState, ctx: &DeviceCtx, error: StoreError) -> DeviceError {
    if let StoreError::QuotaExceeded(kind) = error
        && let Some(q) = quota(state, kind)
    {
        state.quotas.refused(ctx.entry.id(), &ctx.sn, kind, q);
    }
    error.into()
}

fn rejected_line(table: &'static str, r: &Rejected<'_>) -> RejectedLine {
    RejectedLine { table, line_no: r.line.number, raw: r.line.bytes.to_vec(), reason: r.reason.code() }
}

/// A line that parsed but is refused by the server's own checks, kept raw with `reason`.
fn refused_line(table: &'static str, line: &adms_protocol::Line<'_>, reason: RejectReason) -> RejectedLine {
    RejectedLine { table, line_no: line.number, raw: line.bytes.to_vec(), reason: reason.code() }
}

/// The punch times the server accepts (`punch_time_min`, `punch_time_max_ahead_secs`): a
/// terminal whose clock was reset to 2000 or set decades ahead would otherwise plant punches
/// that sort before or after every real one.
#[derive(Debug, Clone, Copy)]
pub struct PunchWindow {
    /// Earliest local time.
    pub earliest: LocalDateTime,
    /// Latest instant (Unix seconds, as `Zone::to_utc`): the server's now plus the allowed lead.
    pub latest_utc_secs: i64,
}

impl PunchWindow {
    pub fn for_now(state: &SharedState) -> PunchWindow {
        let lead = i64::try_from(state.config.punches.time_max_ahead_secs).unwrap_or(i64::MAX);
        PunchWindow {
            earliest: state.punch_window_start,
            latest_utc_secs: (now_micros() / 1_000_000).saturating_add(lead),
        }
    }

    /// `utc_secs` is `None` only for a time no instant can hold (the far end of year 9999).
    fn contains(&self, local: &LocalDateTime, utc_secs: Option<i64>) -> bool {
        *local >= self.earliest && utc_secs.is_some_and(|t| t <= self.latest_utc_secs)
    }
}

/// A stamp worth recording: short printable ASCII (it is echoed back in the handshake).
fn clean_stamp(stamp: Option<&str>) -> Option<&str> {
    stamp.map(str::trim).filter(|s| !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_graphic()))
}

/// Upload a table: punches, operation log, users, templates, photos, options, events.
///
/// Parsed from the raw bytes whatever the `Content-Type`. Answered only after the data
/// committed: `OK: <lines>` for ATTLOG and OPERLOG (the lines parsed), `<table>=<n>` for
/// `tabledata`, else `OK`. Lines that do not parse are stored raw with the reason and never
/// fail their neighbours. 503 (`ERROR: storage unavailable`) lets the device resend.
#[utoipa::path(
    post,
    path = "/iclock/cdata",
    tag = crate::api::openapi::tag::DEVICE,
    security(()),
    params(crate::api::openapi::DeviceParams, crate::api::openapi::UploadParams),
    request_body(content = Option<String>, content_type = "text/plain", description = "The table's lines (tab-separated records) or the photo."),
    responses(
        (status = 200, description = "`OK: <n>`, `<table>=<n>` or `OK`.", body = String, content_type = "text/plain"),
        (status = 400, description = "No valid `SN`: `ERROR: <reason>`.", body = String, content_type = "text/plain"),
        (status = 413, description = "Body over `max_body_bytes` (`ERROR: body too large (limit N bytes)`) or the device's daily quota passed (`ERROR: daily quota for raw uploads exceeded`, `... for photos exceeded`); nothing stored.", body = String, content_type = "text/plain"),
    )
)]
pub async fn cdata_post(State(state): State<SharedState>, ctx: DeviceCtx, body: Body) -> Result<Response, DeviceError> {
    let q = ctx.query();
    let table = UploadTable::from_query(q.table.as_deref(), q.op_stamp.is_some());
    let stamp = clean_stamp(q.stamp.as_deref().or(q.op_stamp.as_deref())).map(str::to_owned);
    let table_name = q.table_name.as_deref().map(str::to_owned);
    drop(q);
    let stored = store_table(&state, &ctx, table, body, stamp, table_name).await;
    if stored.is_ok() {
        state.telemetry.upload_stored(table.as_str());
        tracing::debug!(table = table.as_str(), "upload stored");
    }
    stored
}

/// Stores one upload of `table`; answered once it is committed.
async fn store_table(
    state: &SharedState,
    ctx: &DeviceCtx,
    table: UploadTable,
    body: Body,
    stamp: Option<String>,
    table_name: Option<String>,
) -> Result<Response, DeviceError> {
    if table == UploadTable::AttLog {
        return attlog(state, ctx, body, stamp).await;
    }
    let body = read_body(body, state.config.http.max_body_bytes).await?;
    match table {
        UploadTable::AttLog => unreachable!("streamed above"),
        UploadTable::OperLog | UploadTable::BioData | UploadTable::ErrorLog | UploadTable::IdCard => {
            operlog(state, ctx, table, body, stamp).await
        }
        UploadTable::AttPhoto => att_photo(state, ctx, &body).await,
        UploadTable::Options => options(state, ctx, &body).await,
        UploadTable::RtLog => rtlog(state, ctx, &body).await,
        UploadTable::TableData => {
            store_raw(state, ctx, "cdata", table.as_str(), &body).await?;
            let lines = adms_protocol::lines(&body).count();
            Ok(ok(format!("{}={lines}", sanitize_table_name(table_name.as_deref()))))
        }
        UploadTable::RtState => {
            let door_state = door_state(ctx, &body);
            store_raw_with_state(state, ctx, "cdata", table.as_str(), &body, door_state.as_ref()).await?;
            Ok(ok("OK"))
        }
        UploadTable::Other => {
            let name = ctx.query().table.as_deref().map_or_else(|| table.as_str().to_owned(), str::to_owned);
            store_raw(state, ctx, "cdata", &name, &body).await?;
            tracing::info!(table = %name, bytes = body.len(), "unknown table stored raw");
            Ok(ok("OK"))
        }
    }
}

/// The door state of an `rtstate` body (its last line that parses), kept with the body for the
/// CVSecurity door-state calls. A body without a readable line is stored all the same.
fn door_state(ctx: &DeviceCtx, body: &[u8]) -> Option<adms_store::cvsecurity::ControllerState> {
    let Some(line) =
        adms_protocol::lines(body).filter_map(|l| adms_protocol::rtlog::parse_rtstate_line(l.bytes).ok()).last()
    else {
        tracing::info!(bytes = body.len(), "rtstate without a readable state line");
        return None;
    };
    Some(adms_store::cvsecurity::ControllerState {
        device_id: ctx.entry.id(),
        local_time: line.time.to_string(),
        sensor: line.sensor.to_owned(),
        relay: line.relay.to_owned(),
        alarm: line.alarm.to_owned(),
        received_at: now_micros(),
    })
}

fn sanitize_table_name(name: Option<&str>) -> String {
    name.unwrap_or("tabledata").chars().filter(char::is_ascii_alphanumeric).take(32).collect()
}

async fn store_raw(
    state: &SharedState,
    ctx: &DeviceCtx,
    endpoint: &str,
    table: &str,
    body: &[u8],
) -> Result<(), DeviceError> {
    store_raw_with_state(state, ctx, endpoint, table, body, None).await
}

/// Stores a body as received, charged to the device's raw quota; with a controller's door
/// state, the state too, in the same commit.
async fn store_raw_with_state(
    state: &SharedState,
    ctx: &DeviceCtx,
    endpoint: &str,
    table: &str,
    body: &[u8],
    door_state: Option<&adms_store::cvsecurity::ControllerState>,
) -> Result<(), DeviceError> {
    let table: String = table.chars().take(64).collect();
    let upload = RawUpload {
        device_id: Some(ctx.entry.id()),
        sn: &ctx.sn,
        endpoint,
        table: &table,
        query: &ctx.query,
        body,
        received_at: now_micros(),
        quota: quota(state, QuotaKind::Raw),
    };
    let stored = match door_state {
        Some(door_state) => state.store.store_rtstate_upload(&upload, door_state).await,
        None => state.store.store_raw_upload(&upload).await,
    };
    stored.map_err(|e| quota_checked(state, ctx, e))?;
    Ok(())
}

/// Parses an ATTLOG body into one batch: punches with their UTC instant, and rejected lines.
pub fn build_punch_batch(body: &[u8], device: &Device, zone: &Zone, window: &PunchWindow) -> (PunchBatch, usize) {
    let mut batch = PunchBatch::new(device.id);
    batch.device_sn.clone_from(&device.sn);
    batch.device_alias.clone_from(&device.alias);
    batch.device_time_zone.clone_from(&zone.name);
    for item in parse_attlog_body(body) {
        match item {
            Ok((line, r)) => {
                let utc_time = zone.to_utc(&r.time);
                let refused = if has_unsafe_chars(r.pin) || has_unsafe_chars(r.work_code) {
                    Some(RejectReason::UnsafeText)
                } else if !window.contains(&r.time, utc_time) {
                    Some(RejectReason::ImplausibleTime)
                } else {
                    None
                };
                match refused {
                    Some(reason) => batch.rejected.push(refused_line("ATTLOG", &line, reason)),
                    None => batch.punches.push(NewPunch {
                        pin: r.pin.to_owned(),
                        local_time: r.time.to_string(),
                        state: r.state.to_owned(),
                        verify: r.verify,
                        work_code: r.work_code.to_owned(),
                        extra: r.extra.to_owned(),
                        time_zone: Some(zone.name.clone()),
                        utc_time,
                        mask_flag: r.mask_flag(),
                        temperature: r.temperature(),
                        raw_line: String::from_utf8_lossy(line.bytes).into_owned(),
                    }),
                }
            }
            Err(rejected) => batch.rejected.push(rejected_line("ATTLOG", &rejected)),
        }
    }
    let accepted = batch.punches.len();
    (batch, accepted)
}

/// An ATTLOG upload: read as it arrives; a body longer than [`ATTLOG_CHUNK_BYTES`] is parsed
/// and committed in chunks of whole lines, the last one with the stamp. The device is answered
/// once, after the last chunk committed, with the count of the whole body; if any chunk fails
/// it gets 503 and re-sends the whole body, whose committed punches the natural key skips.
async fn attlog(
    state: &SharedState,
    ctx: &DeviceCtx,
    body: Body,
    stamp: Option<String>,
) -> Result<Response, DeviceError> {
    let device = ctx.entry.snapshot();
    let zone = state.zone_for(&device);
    let window = PunchWindow::for_now(state);
    let limit = state.config.http.max_body_bytes;
    // A declared length over the limit is refused before any chunk commits; only a body
    // without one (chunked encoding) can pass the limit after some chunks committed, and its
    // device gets 413 all the same (a re-send adds nothing: natural keys).
    if axum::body::HttpBody::size_hint(&body).lower() > limit as u64 {
        return Err(DeviceError::BodyTooLarge(limit));
    }
    let mut body = http_body_util::Limited::new(body, limit);
    // A body of one frame (every small post) stays the `Bytes` hyper read: no copy.
    let mut first: Option<Bytes> = None;
    let mut buf: Vec<u8> = Vec::new();
    let mut totals = ChunkTotals::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| body_error(&*e, limit))?;
        let Ok(data) = frame.into_data() else { continue };
        if buf.is_empty() && first.is_none() {
            first = Some(data);
            continue;
        }
        if let Some(first) = first.take() {
            buf.extend_from_slice(&first);
        }
        buf.extend_from_slice(&data);
        if buf.len() < ATTLOG_CHUNK_BYTES {
            continue;
        }
        // Cut after the last complete line; a line longer than a chunk waits for its end
        // (bounded by `max_body_bytes`).
        let Some(cut) = buf.iter().rposition(|&b| b == b'\n') else { continue };
        let rest = buf.split_off(cut + 1);
        let chunk = std::mem::replace(&mut buf, rest);
        let more = ChunkEnd { stamp: None, is_last: false };
        attlog_chunk(state, &device, &zone, window, Bytes::from(chunk), more, &mut totals).await?;
    }
    let last = match first {
        Some(first) => first,
        None => Bytes::from(buf),
    };
    let new_stamp = stamp.filter(|s| *s != device.attlog_stamp);
    let end = ChunkEnd { stamp: new_stamp.clone(), is_last: true };
    attlog_chunk(state, &device, &zone, window, last, end, &mut totals).await?;
    if let Some(stamp) = new_stamp {
        ctx.entry.update(|d| d.attlog_stamp = stamp);
    }
    tracing::debug!(accepted = totals.accepted, lines = totals.lines, "ATTLOG stored");
    Ok(ok(ok_count(totals.accepted)))
}

/// Whether a chunk ends the body, and then the stamp that goes with it.
#[derive(Debug)]
struct ChunkEnd {
    stamp: Option<String>,
    is_last: bool,
}

/// What the chunks of one ATTLOG body added up to so far.
#[derive(Debug, Default)]
struct ChunkTotals {
    /// Punches parsed (the `OK: <n>` of the whole body).
    accepted: usize,
    /// Lines before the next chunk, so rejected lines keep their number in the whole body.
    lines: u32,
}

/// Parses one chunk of whole lines (on the blocking pool above [`INLINE_PARSE_LIMIT`]) and
/// commits it through the punch writer.
async fn attlog_chunk(
    state: &SharedState,
    device: &Device,
    zone: &Zone,
    window: PunchWindow,
    chunk: Bytes,
    end: ChunkEnd,
    totals: &mut ChunkTotals,
) -> Result<(), DeviceError> {
    // Lines of the chunk (it ends with a whole line), for the numbers of the next one's; the
    // last chunk (a whole small body) has no next one and is not counted.
    let last = end.is_last;
    let stamp = end.stamp;
    let count_lines = move |chunk: &[u8]| {
        if last { 0 } else { u32::try_from(chunk.iter().filter(|&&b| b == b'\n').count()).unwrap_or(u32::MAX) }
    };
    let ((mut batch, accepted), lines) = if chunk.len() > INLINE_PARSE_LIMIT {
        let (device, zone) = (device.clone(), zone.clone());
        tokio::task::spawn_blocking(move || (build_punch_batch(&chunk, &device, &zone, &window), count_lines(&chunk)))
            .await
            .map_err(|e| DeviceError::Internal(e.to_string()))?
    } else {
        (build_punch_batch(&chunk, device, zone, &window), count_lines(&chunk))
    };
    if totals.lines > 0 {
        for r in &mut batch.rejected {
            r.line_no = r.line_no.saturating_add(totals.lines);
        }
    }
    batch.attlog_stamp = stamp;
    batch.day_started_at = state.display_zone.day_start_micros(batch.received_at);
    let rejected = batch.rejected.len();
    if let Some(first) = batch.rejected.first() {
        tracing::warn!(
            accepted,
            rejected,
            first_reason = first.reason,
            first_line = first.line_no,
            "ATTLOG lines rejected and kept raw"
        );
    }
    // For the counter, once the lines are committed (empty, and allocation-free, as a rule).
    let rejected_reasons: Vec<_> = batch.rejected.iter().map(|r| (r.table, r.reason)).collect();
    let stored = state.store.punch_writer().write(batch).await?;
    state.telemetry.lines_rejected(&rejected_reasons);
    if stored.made_events {
        // New punches may have new deliveries waiting.
        state.webhooks.wake.notify_one();
    }
    totals.accepted += accepted;
    totals.lines = totals.lines.saturating_add(lines);
    Ok(())
}

fn text_encoding(device: &adms_store::Device) -> TextEncoding {
    device
        .text_encoding
        .as_deref()
        .and_then(TextEncoding::for_label)
        .unwrap_or_else(|| TextEncoding::for_language(Some(device.language.as_str())))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses an OPERLOG/BIODATA body into owned rows.
pub fn build_operlog_batch(body: &[u8], device: &adms_store::Device, table: UploadTable) -> (OperlogBatch, usize) {
    let encoding = text_encoding(device);
    let table_name = table.as_str();
    let mut b =
        OperlogBatch { device_id: device.id, table: table_name, received_at: now_micros(), ..Default::default() };
    let mut accepted = 0;
    for item in parse_lines(body, parse_operlog_line) {
        let (line, record) = match item {
            Ok(ok) => ok,
            Err(rejected) => {
                b.rejected.push(rejected_line(table_name, &rejected));
                continue;
            }
        };
        accepted += 1;
        match record {
            OperLogRecord::OpLog(o) => b.oplogs.push(OperationLog {
                op_code: i64::from(o.op_code),
                operator: o.operator.to_owned(),
                local_time: o.time.to_string(),
                objects: o.objects.map(lossy),
                raw_line: line.bytes.to_vec(),
            }),
            OperLogRecord::User(u) => {
                let decoded = encoding.decode(u.name);
                if has_unsafe_chars(u.pin) || has_unsafe_chars(&decoded.text) {
                    // Kept raw and flagged; never a device user the roster could adopt.
                    accepted -= 1;
                    b.rejected.push(refused_line(table_name, &line, RejectReason::UnsafeText));
                    continue;
                }
                b.users.push(UserRow {
                    pin: u.pin.to_owned(),
                    name: decoded.text.into_owned(),
                    name_raw: (!decoded.lossless).then(|| u.name.to_vec()),
                    privilege: u.privilege,
                    password: lossy(u.password),
                    card: lossy(u.card),
                    group: lossy(u.group),
                    time_zones: lossy(u.time_zone),
                    verify: u.verify,
                    vice_card: lossy(u.vice_card),
                    raw_line: line.bytes.to_vec(),
                });
            }
            OperLogRecord::Biometric(t) if has_unsafe_chars(t.pin) => {
                accepted -= 1;
                b.rejected.push(refused_line(table_name, &line, RejectReason::UnsafeText));
            }
            OperLogRecord::Biometric(t) => b.templates.push(BiometricTemplate {
                pin: t.pin.to_owned(),
                record_kind: t.kind.as_str(),
                bio_type: t.bio_type,
                no: t.no,
                index: t.index,
                valid: t.valid,
                duress: t.duress,
                major_ver: t.major_ver,
                minor_ver: t.minor_ver,
                format: t.format.to_owned(),
                size: t.size,
                template: t.template.to_owned(),
            }),
            OperLogRecord::Photo(p) => b.photos.push(UserPhoto {
                pin: p.pin.to_owned(),
                record_kind: p.kind.as_str(),
                photo_type: p.photo_type,
                file_name: p.file_name.to_owned(),
                size: p.size,
                content: p.content.to_owned(),
                url: p.url.to_owned(),
            }),
            OperLogRecord::Other { kind, .. } => {
                b.others.push(DeviceRecord { kind: kind.to_owned(), raw_line: line.bytes.to_vec() })
            }
        }
    }
    (b, accepted)
}

async fn operlog(
    state: &SharedState,
    ctx: &DeviceCtx,
    table: UploadTable,
    body: Bytes,
    stamp: Option<String>,
) -> Result<Response, DeviceError> {
    let device = ctx.entry.snapshot();
    let current =
        if table == UploadTable::BioData { device.biodata_stamp.clone() } else { device.operlog_stamp.clone() };
    let (mut batch, accepted) = if body.len() > INLINE_PARSE_LIMIT {
        let d = device.clone();
        tokio::task::spawn_blocking(move || build_operlog_batch(&body, &d, table))
            .await
            .map_err(|e| DeviceError::Internal(e.to_string()))?
    } else {
        build_operlog_batch(&body, &device, table)
    };
    let new_stamp = stamp.filter(|s| *s != current);
    batch.operlog_stamp.clone_from(&new_stamp);
    batch.device_sn.clone_from(&device.sn);
    batch.device_alias.clone_from(&device.alias);
    batch.device_time_zone = state.zone_for(&device).name;
    batch.adoption = state.adoption_for(&device);
    batch.photo_quota = quota(state, QuotaKind::Photo);
    batch.raw_quota = quota(state, QuotaKind::Raw);
    if !batch.rejected.is_empty() {
        tracing::warn!(
            table = table.as_str(),
            accepted,
            rejected = batch.rejected.len(),
            "lines rejected and kept raw"
        );
    }
    let limited = state.store.store_operlog(&batch).await.map_err(|e| quota_checked(state, ctx, e))?;
    state.telemetry.lines_rejected(&batch.rejected.iter().map(|r| (r.table, r.reason)).collect::<Vec<_>>());
    if let Some(kind) = limited {
        // Users, templates and operation logs were stored; the charged records were dropped.
        if let Some(q) = quota(state, kind) {
            state.quotas.refused(ctx.entry.id(), &ctx.sn, kind, q);
        }
    }
    if !batch.users.is_empty() {
        // Roster changes may have new deliveries waiting.
        state.webhooks.wake.notify_one();
    }
    if let Some(stamp) = new_stamp {
        ctx.entry.update(|d| {
            if table == UploadTable::BioData {
                d.biodata_stamp = stamp;
            } else {
                d.operlog_stamp = stamp;
            }
        });
    }
    Ok(ok(ok_count(accepted)))
}

async fn att_photo(state: &SharedState, ctx: &DeviceCtx, body: &[u8]) -> Result<Response, DeviceError> {
    match parse_att_photo(body) {
        Ok(photo) => {
            let (time, pin) =
                photo.time_and_pin().map_or((None, None), |(t, p)| (Some(t.to_string()), p.map(str::to_owned)));
            state
                .store
                .store_att_photo(&AttPhotoUpload {
                    device_id: ctx.entry.id(),
                    file_name: photo.file_name.chars().take(255).collect(),
                    pin,
                    local_time: time,
                    image: photo.image.to_vec(),
                    received_at: now_micros(),
                    quota: quota(state, QuotaKind::Photo),
                })
                .await
                .map_err(|e| quota_checked(state, ctx, e))?;
        }
        Err(reason) => {
            tracing::warn!(reason = reason.code(), bytes = body.len(), "attendance photo not understood; stored raw");
            store_raw(state, ctx, "cdata", "ATTPHOTO", body).await?;
        }
    }
    Ok(ok("OK"))
}

/// Device facts carried by an options dump or an INFO result.
pub fn info_from_options(options: &[(String, String)]) -> DeviceInfoUpdate {
    let get = |k: &str| options.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    let count = |k: &str| get(k).and_then(|v| v.trim().parse::<i64>().ok());
    DeviceInfoUpdate {
        model: get("~DeviceName"),
        firmware: get("FWVersion").or_else(|| get("FirmVer")),
        firmware_push_version: get("PushVersion"),
        ip_address: get("IPAddress"),
        user_count: count("UserCount"),
        fp_count: count("FPCount"),
        face_count: count("FaceCount"),
        palm_count: count("PvCount"),
        transaction_count: count("TransactionCount"),
        fp_algorithm: get("FPVersion"),
        face_algorithm: get("FaceVersion"),
    }
}

/// Owned `(key, value)` pairs of an options dump; text before the first key is dropped here but
/// the whole body is also stored raw by the callers that need it.
pub fn owned_options(body: &[u8]) -> Vec<(String, String)> {
    parse_options(body)
        .into_iter()
        .filter(|p| !p.key.is_empty())
        .map(|p| (p.key_str().to_owned(), lossy(p.value)))
        .collect()
}

async fn options(state: &SharedState, ctx: &DeviceCtx, body: &[u8]) -> Result<Response, DeviceError> {
    let options = owned_options(body);
    let facts = DeviceFacts { info: Some(info_from_options(&options)), options, registry_code: None };
    let raw = RawUpload {
        device_id: Some(ctx.entry.id()),
        sn: &ctx.sn,
        endpoint: "cdata",
        table: "options",
        query: &ctx.query,
        body,
        received_at: now_micros(),
        // The options dump is a known table, parsed into device facts: not charged.
        quota: None,
    };
    state.store.store_device_facts(ctx.entry.id(), Some(&raw), &facts).await?;
    Ok(ok("OK"))
}

async fn rtlog(state: &SharedState, ctx: &DeviceCtx, body: &[u8]) -> Result<Response, DeviceError> {
    let mut events = Vec::new();
    let mut rejected = Vec::new();
    for item in parse_lines(body, parse_rtlog_line) {
        match item {
            Ok((line, e)) => events.push(AccessEvent {
                local_time: e.time.to_string(),
                pin: e.pin.to_owned(),
                card_no: e.card_no.to_owned(),
                door: e.door,
                event_code: e.event,
                in_out: e.in_out,
                verify_type: e.verify_type.to_owned(),
                raw_line: line.bytes.to_vec(),
            }),
            Err(r) => rejected.push(rejected_line("rtlog", &r)),
        }
    }
    let zone = &state.default_zone.name;
    let rejected_reasons: Vec<_> = rejected.iter().map(|r| (r.table, r.reason)).collect();
    state.store.store_access_events_in(ctx.entry.id(), events, rejected, now_micros(), zone).await?;
    state.telemetry.lines_rejected(&rejected_reasons);
    Ok(ok("OK"))
}

/// Upload an attendance photo (the other route some firmware uses).
#[utoipa::path(
    post,
    path = "/iclock/fdata",
    tag = crate::api::openapi::tag::DEVICE,
    security(()),
    params(crate::api::openapi::DeviceParams),
    request_body(content = Option<String>, content_type = "text/plain", description = "The photo record and its bytes."),
    responses(
        (status = 200, description = "`OK`.", body = String, content_type = "text/plain"),
        (status = 400, description = "No valid `SN`: `ERROR: <reason>`.", body = String, content_type = "text/plain"),
        (status = 413, description = "Body over `max_body_bytes` (`ERROR: body too large (limit N bytes)`) or the device's daily quota passed (`ERROR: daily quota for raw uploads exceeded`, `... for photos exceeded`); nothing stored.", body = String, content_type = "text/plain"),
    )
)]
pub async fn fdata(State(state): State<SharedState>, ctx: DeviceCtx, body: Bytes) -> Result<Response, DeviceError> {
    att_photo(&state, &ctx, &body).await
}

/// Answers to data queries.
///
/// Stored raw; `type=tabledata` answers `<tablename>=<lines>`.
#[utoipa::path(
    post,
    path = "/iclock/querydata",
    tag = crate::api::openapi::tag::DEVICE,
    security(()),
    params(crate::api::openapi::DeviceParams,
        ("type" = Option<String>, Query, description = "`tabledata` for table rows."),
        ("tablename" = Option<String>, Query)),
    request_body(content = Option<String>, content_type = "text/plain", description = "The answer's lines."),
    responses(
        (status = 200, description = "`<tablename>=<n>` or `OK`.", body = String, content_type = "text/plain"),
        (status = 400, description = "No valid `SN`: `ERROR: <reason>`.", body = String, content_type = "text/plain"),
        (status = 413, description = "Body over `max_body_bytes` (`ERROR: body too large (limit N bytes)`) or the device's daily quota passed (`ERROR: daily quota for raw uploads exceeded`, `... for photos exceeded`); nothing stored.", body = String, content_type = "text/plain"),
    )
)]
pub async fn querydata(State(state): State<SharedState>, ctx: DeviceCtx, body: Bytes) -> Result<Response, DeviceError> {
    let q = ctx.query();
    let kind = q.kind.as_deref().unwrap_or("").to_owned();
    let table_name = q.table_name.as_deref().map(str::to_owned);
    drop(q);
    store_raw(&state, &ctx, "querydata", &kind, &body).await?;
    if kind.eq_ignore_ascii_case("tabledata") {
        let lines = adms_protocol::lines(&body).count();
        return Ok(ok(format!("{}={lines}", sanitize_table_name(table_name.as_deref()))));
    }
    Ok(ok("OK"))
}

/// Any other `/iclock/...` request: kept raw when it identifies a device, answered `OK`.
async fn other(
    State(state): State<SharedState>,
    uri: OriginalUri,
    ctx: Result<DeviceCtx, DeviceError>,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if path.starts_with("/iclock/api/") || path == "/iclock/api" {
        return axum::response::IntoResponse::into_response(crate::api::ApiError::NotFound);
    }
    match ctx {
        Ok(ctx) => {
            let endpoint: String = path.trim_start_matches("/iclock/").chars().take(64).collect();
            if let Err(e) = store_raw(&state, &ctx, &endpoint, "", &body).await {
                return axum::response::IntoResponse::into_response(e);
            }
            tracing::info!(path = %path, bytes = body.len(), "unrecognised device request stored raw");
        }
        Err(_) => tracing::info!(path = %path, "unrecognised request without a serial number"),
    }
    ok("OK")
}

/// Upload by the `edata` route (the same as `POST /iclock/cdata`).
#[utoipa::path(
    post,
    path = "/iclock/edata",
    tag = crate::api::openapi::tag::DEVICE,
    security(()),
    params(crate::api::openapi::DeviceParams, crate::api::openapi::UploadParams),
    request_body(content = Option<String>, content_type = "text/plain", description = "As `POST /iclock/cdata`."),
    responses(
        (status = 200, description = "`OK: <n>`, `<table>=<n>` or `OK`.", body = String, content_type = "text/plain"),
        (status = 400, description = "No valid `SN`: `ERROR: <reason>`.", body = String, content_type = "text/plain"),
        (status = 413, description = "Body over `max_body_bytes` (`ERROR: body too large (limit N bytes)`) or the device's daily quota passed (`ERROR: daily quota for raw uploads exceeded`, `... for photos exceeded`); nothing stored.", body = String, content_type = "text/plain"),
    )
)]
pub async fn edata_post(state: State<SharedState>, ctx: DeviceCtx, body: Body) -> Result<Response, DeviceError> {
    cdata_post(state, ctx, body).await
}

/// Exchange requests of newer firmware: stored raw, answered `OK`.
#[utoipa::path(
    method(get, post),
    path = "/iclock/exchange",
    tag = crate::api::openapi::tag::DEVICE,
    security(()),
    params(("SN" = Option<String>, Query)),
    request_body(content = Option<String>, content_type = "text/plain", description = "Anything; stored raw."),
    responses(
        (status = 200, description = "`OK`.", body = String, content_type = "text/plain"),
        (status = 404, description = "An unknown path under `/iclock/api/`.", body = crate::api::openapi::Detail),
    )
)]
pub async fn exchange(
    state: State<SharedState>,
    uri: OriginalUri,
    ctx: Result<DeviceCtx, DeviceError>,
    body: Bytes,
) -> Response {
    other(state, uri, ctx, body).await
}

/// Any other device path: stored raw when it names a device (`SN`), answered `OK`.
///
/// Firmware variants call paths of their own; keeping the request lets us support them later.
/// Paths under `/iclock/api/` are the ERP side's: unknown ones answer 404 `{"detail": "Not found."}`.
#[utoipa::path(
    method(get, post),
    path = "/iclock/{*rest}",
    tag = crate::api::openapi::tag::DEVICE,
    security(()),
    params(("rest" = String, Path, description = "The rest of the path (may contain `/`)."), ("SN" = Option<String>, Query)),
    request_body(content = Option<String>, content_type = "text/plain", description = "Anything; stored raw."),
    responses(
        (status = 200, description = "`OK`.", body = String, content_type = "text/plain"),
        (status = 404, description = "An unknown path under `/iclock/api/`.", body = crate::api::openapi::Detail),
    )
)]
pub async fn unrecognised(
    state: State<SharedState>,
    uri: OriginalUri,
    ctx: Result<DeviceCtx, DeviceError>,
    body: Bytes,
) -> Response {
    other(state, uri, ctx, body).await
}

/// The quota of `kind` for today (the UTC day of the server's clock, which `test_clock` can
/// move); `None` when the limit is 0 (no quota).
fn quota(state: &SharedState, kind: QuotaKind) -> Option<adms_store::Quota> {
    let limit = match kind {
        QuotaKind::Raw => state.config.devices.raw_quota_bytes_per_day,
        QuotaKind::Photo => state.config.devices.photo_quota_bytes_per_day,
    };
    (limit > 0).then(|| adms_store::Quota::for_day(state.webhooks.clock.now_micros(), limit))
}
