//! The console's pages (GET): the overview, the device list, a device, its command queue (the
//! fragment htmx refreshes), and the rejected lines. Times are shown in the server's display
//! zone; every list is paged on the server.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use adms_model::{Approval, Presence};
use adms_store::roster::{OrgFilter, OrgKind};
use adms_store::{ConsoleDevice, DeviceListFilter, DeviceState, Page, now_micros};

use super::session::ConsoleUser;
use super::{ConsoleError, render};
use crate::auth::Scope;
use crate::state::SharedState;

/// Devices per page of the list.
const DEVICES_PER_PAGE: i64 = 50;
/// What the device page shows of each history.
const RECENT_ROWS: i64 = 50;
/// Rejected lines per page.
const REJECTED_PER_PAGE: i64 = 50;
/// Areas offered in the filters and the area form (a site has a handful).
const AREAS_SHOWN: i64 = 1000;
const HOUR_MICROS: i64 = 3_600_000_000;
/// A device clock further than this from the server's is flagged.
const CLOCK_SKEW_FLAG_SECS: i64 = 300;

/// The clock skew as shown: signed, in the largest fitting unit, flagged past the threshold.
fn skew_text(skew: Option<i64>) -> (String, bool) {
    let Some(secs) = skew else { return ("unknown (no punch yet)".to_owned(), false) };
    let sign = if secs < 0 { "−" } else { "+" };
    let magnitude = secs.unsigned_abs();
    let amount = match magnitude {
        0..60 => format!("{magnitude} s"),
        60..3600 => format!("{} min", magnitude / 60),
        3600..172_800 => format!("{} h", magnitude / 3600),
        _ => format!("{} days", magnitude / 86_400),
    };
    (format!("{sign}{amount}"), magnitude > CLOCK_SKEW_FLAG_SECS.unsigned_abs())
}

/// What every page's frame shows.
pub struct Layout {
    pub user: String,
    pub role: String,
    pub csrf: String,
    pub notice: Option<String>,
}

impl Layout {
    pub(super) fn of(user: &ConsoleUser) -> Layout {
        Layout { user: user.name.clone(), role: user.role.clone(), csrf: user.csrf.clone(), notice: None }
    }
}

/// A path segment or query value, percent-encoded.
pub(super) fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The device page's address.
pub(super) fn device_href(sn: &str) -> String {
    format!("/ui/devices/{}", encode(sn))
}

fn time(state: &SharedState, micros: Option<i64>) -> String {
    micros.map_or_else(|| "never".to_owned(), |t| state.display_zone.format_micros(t))
}

/// The wall-clock times a device page reads recent punches between: the day up to the device's
/// newest punch, by the device's clock (a bounded range of the punches' time index).
fn recent_window(newest: Option<&str>) -> Option<(String, String)> {
    let newest = newest?;
    let at: jiff::civil::DateTime = newest.parse().ok()?;
    let from = at.checked_sub(jiff::Span::new().days(1)).ok()?;
    Some((from.strftime("%Y-%m-%d %H:%M:%S").to_string(), newest.to_owned()))
}

/// The start of today in the display zone (µs).
fn today_start(state: &SharedState) -> i64 {
    state.display_zone.day_start_micros(now_micros())
}

struct Bar {
    label: String,
    count: i64,
    /// Height in twentieths of the tallest bar (a CSS class: the policy allows no inline style).
    step: i64,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    layout: Layout,
    nav: &'static str,
    fleet: adms_store::FleetCounts,
    punches_hour: i64,
    punches_today: i64,
    today_start: String,
    rejected_today: i64,
    chart: Vec<Bar>,
    webhooks_due: i64,
    webhooks_waiting: i64,
    oldest_due: Option<String>,
    commands: adms_store::CommandCensus,
    oldest_queued: Option<String>,
}

/// `GET /ui/`: the fleet, punches and queues in a few numbers.
pub async fn overview(State(state): State<SharedState>, user: ConsoleUser) -> Result<Response, ConsoleError> {
    let now = now_micros();
    let today = today_start(&state);
    let this_hour = now.div_euclid(HOUR_MICROS);
    let first_hour = this_hour - 23;
    let per_hour = state.store.punches_per_hour(first_hour * HOUR_MICROS).await?;
    let tallest = per_hour.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let chart = (first_hour..=this_hour)
        .map(|hour| {
            let count = per_hour.iter().find(|(h, _)| *h == hour).map_or(0, |(_, n)| *n);
            let label = state.display_zone.format_micros(hour * HOUR_MICROS);
            // `YYYY-MM-DD HH:MM:SS` → `HH`: the hour, in the display zone.
            let label = label.get(11..13).unwrap_or_default().to_owned();
            Bar { label, count, step: (count * 20 + tallest - 1) / tallest }
        })
        .collect();
    // Today's punches are the chart's hours since midnight when midnight is on an hour (zones
    // a whole number of hours from UTC): one read of the `received_at` index instead of two
    // (the biggest cost of this page at millions of punches a month).
    let punches_today = if today.rem_euclid(HOUR_MICROS) == 0 && today >= first_hour * HOUR_MICROS {
        per_hour.iter().filter(|(hour, _)| hour * HOUR_MICROS >= today).map(|(_, n)| n).sum()
    } else {
        state.store.punches_received_since(today).await?
    };
    let backlog = state.store.delivery_backlog(state.webhooks.clock.now_micros()).await?;
    let commands = state.store.command_census().await?;
    let page = OverviewPage {
        layout: Layout::of(&user),
        nav: "overview",
        fleet: state.store.fleet_counts().await?,
        punches_hour: state.store.punches_received_since(now - HOUR_MICROS).await?,
        punches_today,
        today_start: state.display_zone.format_micros(today),
        rejected_today: state.store.rejected_lines_since(today).await?,
        chart,
        webhooks_due: backlog.iter().map(|b| b.due + b.in_flight).sum(),
        webhooks_waiting: backlog.iter().map(|b| b.waiting).sum(),
        oldest_due: backlog.iter().filter_map(|b| b.oldest_due_at).min().map(|t| state.display_zone.format_micros(t)),
        oldest_queued: commands.oldest_queued_at.map(|t| state.display_zone.format_micros(t)),
        commands,
    };
    render(&page)
}

/// A device as a row or a page shows it.
pub struct DeviceView {
    pub sn: String,
    pub href: String,
    pub state: &'static str,
    pub pending: bool,
    pub since: Option<String>,
    pub alias: String,
    pub area: String,
    pub last_request: String,
    pub last_handshake: String,
    pub first_seen: String,
    pub ip: String,
    pub model: String,
    pub firmware: String,
    pub push_version: String,
    pub time_zone: String,
    pub users: String,
    pub fingerprints: String,
    pub faces: String,
    pub punches_today: i64,
    /// The device clock against the server's (`+` ahead), from its newest punch.
    pub clock_skew: String,
    /// Past [`CLOCK_SKEW_FLAG_SECS`].
    pub clock_off: bool,
}

impl DeviceView {
    fn new(state: &SharedState, d: ConsoleDevice) -> DeviceView {
        let count = |n: Option<i64>| n.map_or_else(|| "?".to_owned(), |n| n.to_string());
        let (device_state, since) = match (d.approval, d.presence) {
            (Approval::Pending, _) => ("pending", Some(time(state, Some(d.first_seen_at)))),
            (Approval::Approved, Presence::Online) => ("online", None),
            (Approval::Approved, _) => ("offline", d.presence_changed_at.map(|t| state.display_zone.format_micros(t))),
        };
        let (clock_skew, clock_off) = skew_text(d.clock_skew_secs);
        DeviceView {
            clock_skew,
            clock_off,
            href: device_href(&d.sn),
            sn: d.sn,
            state: device_state,
            pending: d.approval == Approval::Pending,
            since,
            alias: d.alias,
            area: d.area_name,
            last_request: time(state, d.last_activity_at),
            last_handshake: time(state, d.last_handshake_at),
            first_seen: time(state, Some(d.first_seen_at)),
            ip: d.ip_address,
            model: d.model,
            firmware: d.firmware,
            push_version: d.push_version,
            time_zone: d.time_zone.unwrap_or_else(|| "the server's default".to_owned()),
            users: count(d.user_count),
            fingerprints: count(d.fp_count),
            faces: count(d.face_count),
            punches_today: d.punches_today,
        }
    }
}

pub struct AreaOption {
    pub id: i64,
    pub name: String,
    pub selected: bool,
}

/// The areas, `selected` the one given.
pub(super) async fn areas(state: &SharedState, selected: Option<i64>) -> Result<Vec<AreaOption>, ConsoleError> {
    let (_, units) =
        state.store.list_org(OrgKind::Area, &OrgFilter::default(), Page { offset: 0, limit: AREAS_SHOWN }).await?;
    Ok(units
        .into_iter()
        .map(|u| AreaOption { id: u.id, name: format!("{} ({})", u.name, u.code), selected: Some(u.id) == selected })
        .collect())
}

/// The device list's query: every filter is in the URL, so a filtered page can be linked.
#[derive(Debug, Default, Deserialize)]
pub struct DeviceQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    area: String,
    #[serde(default)]
    q: String,
    /// Keyset: the last id of the previous page.
    #[serde(default)]
    after: String,
}

impl DeviceQuery {
    fn href(&self, after: Option<i64>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [("state", &self.state), ("area", &self.area), ("q", &self.q)] {
            if !value.is_empty() {
                query.append_pair(key, value);
            }
        }
        if let Some(after) = after {
            query.append_pair("after", &after.to_string());
        }
        let query = query.finish();
        if query.is_empty() { "/ui/devices".to_owned() } else { format!("/ui/devices?{query}") }
    }
}

#[derive(Template)]
#[template(path = "console/devices.html")]
struct DevicesPage {
    layout: Layout,
    nav: &'static str,
    devices: Vec<DeviceView>,
    areas: Vec<AreaOption>,
    filter_state: String,
    filter_q: String,
    first_page: Option<String>,
    next_page: Option<String>,
}

/// `GET /ui/devices?state=&area=&q=&after=`: one page of devices, by id.
pub async fn devices(
    State(state): State<SharedState>,
    user: ConsoleUser,
    Query(query): Query<DeviceQuery>,
) -> Result<Response, ConsoleError> {
    let bad = |what: &str| ConsoleError::BadRequest(format!("Unknown {what} in the address."));
    let device_state = match query.state.as_str() {
        "" => None,
        word => Some(DeviceState::parse(word).ok_or_else(|| bad("state"))?),
    };
    let area_id = match query.area.as_str() {
        "" => None,
        text => Some(text.parse::<i64>().map_err(|_| bad("area"))?),
    };
    let after_id = match query.after.as_str() {
        "" => None,
        text => Some(text.parse::<i64>().map_err(|_| bad("page"))?),
    };
    let search = query.q.trim();
    let filter = DeviceListFilter {
        state: device_state,
        area_id,
        search: (!search.is_empty()).then(|| search.to_owned()),
        after_id,
        // One more than shown: whether there is a next page.
        limit: DEVICES_PER_PAGE + 1,
        today_since: today_start(&state),
    };
    let mut rows = state.store.console_devices(&filter).await?;
    let more = rows.len() as i64 > DEVICES_PER_PAGE;
    rows.truncate(DEVICES_PER_PAGE as usize);
    let next_page = more.then(|| rows.last().map(|d| query.href(Some(d.id)))).flatten();
    let page = DevicesPage {
        layout: Layout::of(&user),
        nav: "devices",
        devices: rows.into_iter().map(|d| DeviceView::new(&state, d)).collect(),
        areas: areas(&state, area_id).await?,
        filter_state: query.state.clone(),
        filter_q: query.q.clone(),
        first_page: after_id.is_some().then(|| query.href(None)),
        next_page,
    };
    render(&page)
}

struct CommandLine {
    id: i64,
    kind: String,
    wire: String,
    state: String,
    return_code: Option<i64>,
    result: String,
    send_count: i64,
    created_at: String,
    source: String,
}

#[derive(Template)]
#[template(path = "console/commands.html")]
struct CommandsFragment {
    fragment_href: String,
    commands: Vec<CommandLine>,
    csrf: String,
    can_control: bool,
}

async fn commands_fragment(
    state: &SharedState,
    user: &ConsoleUser,
    device_id: i64,
    sn: &str,
) -> Result<CommandsFragment, ConsoleError> {
    let (_, rows) = state.store.list_commands(device_id, None, Page { offset: 0, limit: RECENT_ROWS }).await?;
    let zone = &state.display_zone;
    Ok(CommandsFragment {
        fragment_href: format!("{}/commands", device_href(sn)),
        commands: rows
            .into_iter()
            .map(|c| CommandLine {
                id: c.id,
                kind: c.kind,
                wire: c.command,
                state: c.state,
                return_code: c.return_code,
                result: c.result.unwrap_or_default(),
                send_count: c.send_count,
                created_at: zone.format_micros(c.created_at),
                source: c.source,
            })
            .collect(),
        csrf: user.csrf.clone(),
        can_control: user.scopes.allows(Scope::DevicesControl),
    })
}

/// `GET /ui/devices/{sn}/commands`: the command queue alone (htmx refreshes it every 2 s).
pub async fn device_commands(
    State(state): State<SharedState>,
    user: ConsoleUser,
    Path(sn): Path<String>,
) -> Result<Response, ConsoleError> {
    let device = state.store.device_by_sn(&sn).await?.ok_or(ConsoleError::NotFound)?;
    render(&commands_fragment(&state, &user, device.id, &device.sn).await?)
}

struct PunchLine {
    pin: String,
    name: String,
    local_time: String,
    state: String,
    verify: i64,
    work_code: String,
    received: String,
}

struct RejectedView {
    sn: String,
    device_href: String,
    table: String,
    line_no: i64,
    reason: String,
    raw: String,
    seen: i64,
    first_seen: String,
    last_seen: String,
}

fn rejected_view(state: &SharedState, r: adms_store::RejectedLineRow) -> RejectedView {
    RejectedView {
        device_href: device_href(&r.sn),
        sn: r.sn,
        table: r.table_name,
        line_no: r.line_no,
        reason: r.reason,
        raw: String::from_utf8_lossy(&r.raw).into_owned(),
        seen: r.seen_count,
        first_seen: state.display_zone.format_micros(r.first_seen_at),
        last_seen: state.display_zone.format_micros(r.last_seen_at),
    }
}

#[derive(Template)]
#[template(path = "console/device.html")]
struct DevicePage {
    layout: Layout,
    nav: &'static str,
    device: DeviceView,
    error: Option<String>,
    can_control: bool,
    areas: Vec<AreaOption>,
    actions: &'static [&'static str],
    command_text: String,
    commands: String,
    punches: Vec<PunchLine>,
    rejected: Vec<RejectedView>,
    options: Vec<(String, String)>,
}

/// What the device page was redirected with after an action.
#[derive(Debug, Default, Deserialize)]
pub struct DevicePageQuery {
    /// A short word naming what was done (`approved`, `queued`, …), shown as a notice.
    done: Option<String>,
}

/// The sentence a finished action leaves on the device page; unknown words show nothing (the
/// page never echoes text from its address).
fn notice(done: Option<&str>) -> Option<String> {
    Some(
        match done? {
            "approved" => "Approved: the device is trusted from its next request.",
            "rejected" => "The device is pending again: its data is held from the API and webhooks.",
            "renamed" => "Alias saved.",
            "area" => "Area saved: the roster of the area follows.",
            "queued" => "Command queued: it is sent at the device's next poll.",
            "already_queued" => "The same command was already queued: nothing added.",
            "action" => "Terminal action queued.",
            "cancelled" => "Command cancelled.",
            _ => return None,
        }
        .to_owned(),
    )
}

/// `GET /ui/devices/{sn}`.
pub async fn device(
    State(state): State<SharedState>,
    user: ConsoleUser,
    Path(sn): Path<String>,
    Query(query): Query<DevicePageQuery>,
) -> Result<Response, ConsoleError> {
    device_page(&state, &user, &sn, notice(query.done.as_deref()), None, None).await
}

/// The device page, with a notice, or an error and the command text that caused it.
pub(super) async fn device_page(
    state: &SharedState,
    user: &ConsoleUser,
    sn: &str,
    notice: Option<String>,
    error: Option<String>,
    command_text: Option<String>,
) -> Result<Response, ConsoleError> {
    let device = state.store.console_device(sn, today_start(state)).await?.ok_or(ConsoleError::NotFound)?;
    let device_id = device.id;
    let commands = commands_fragment(state, user, device_id, &device.sn).await?;
    let commands = commands.render().map_err(|e| ConsoleError::Internal(e.to_string()))?;
    let zone = &state.display_zone;
    let punches = match recent_window(device.newest_punch_local_time.as_deref()) {
        Some((from, to)) => state.store.recent_device_punches(device_id, (&from, &to), RECENT_ROWS).await?,
        None => Vec::new(),
    };
    let punches = punches
        .into_iter()
        .map(|p| PunchLine {
            pin: p.pin,
            name: p.name.unwrap_or_default(),
            local_time: p.local_time,
            state: p.state,
            verify: p.verify,
            work_code: p.work_code,
            received: zone.format_micros(p.received_at),
        })
        .collect();
    let rejected = state.store.rejected_lines_page(Some(&device.sn), None, RECENT_ROWS).await?;
    let mut layout = Layout::of(user);
    layout.notice = notice;
    let areas = areas(state, Some(device.area_id)).await?;
    let page = DevicePage {
        layout,
        nav: "devices",
        device: DeviceView::new(state, device),
        error,
        can_control: user.scopes.allows(Scope::DevicesControl),
        areas,
        actions: &crate::services::commands::TERMINAL_ACTIONS,
        command_text: command_text.unwrap_or_else(|| r#"{"type": "info"}"#.to_owned()),
        commands,
        punches,
        rejected: rejected.into_iter().map(|r| rejected_view(state, r)).collect(),
        options: state.store.device_options(device_id).await?,
    };
    let mut response = render(&page)?;
    if page.error.is_some() {
        *response.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    }
    Ok(response)
}

#[derive(Template)]
#[template(path = "console/rejected.html")]
struct RejectedPage {
    layout: Layout,
    nav: &'static str,
    rejected: Vec<RejectedView>,
    next_page: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RejectedQuery {
    /// Keyset: the last id of the previous page.
    #[serde(default)]
    before: String,
}

/// `GET /ui/rejected-lines?before=`: every device's rejected lines, newest first.
pub async fn rejected_lines(
    State(state): State<SharedState>,
    user: ConsoleUser,
    Query(query): Query<RejectedQuery>,
) -> Result<Response, ConsoleError> {
    let before_id = match query.before.as_str() {
        "" => None,
        text => Some(text.parse::<i64>().map_err(|_| ConsoleError::BadRequest("Unknown page in the address.".into()))?),
    };
    // One more than shown: whether there is an older page.
    let mut rows = state.store.rejected_lines_page(None, before_id, REJECTED_PER_PAGE + 1).await?;
    let more = rows.len() as i64 > REJECTED_PER_PAGE;
    rows.truncate(REJECTED_PER_PAGE as usize);
    let next_page = more.then(|| rows.last().map(|r| format!("/ui/rejected-lines?before={}", r.id))).flatten();
    render(&RejectedPage {
        layout: Layout::of(&user),
        nav: "overview",
        rejected: rows.into_iter().map(|r| rejected_view(&state, r)).collect(),
        next_page,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_skew_reads_signed_and_is_flagged_past_five_minutes() {
        assert_eq!(skew_text(None), ("unknown (no punch yet)".to_owned(), false));
        assert_eq!(skew_text(Some(12)), ("+12 s".to_owned(), false));
        assert_eq!(skew_text(Some(-300)), ("−5 min".to_owned(), false));
        assert_eq!(skew_text(Some(-301)), ("−5 min".to_owned(), true));
        assert_eq!(skew_text(Some(7200)), ("+2 h".to_owned(), true));
        assert_eq!(skew_text(Some(-3 * 86_400)), ("−3 days".to_owned(), true));
    }
}
