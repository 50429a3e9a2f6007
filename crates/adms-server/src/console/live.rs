//! Live punches: `GET /ui/live` (the page, filters in its address) and `GET /ui/live/stream`
//! (server-sent events the page's own script, `assets/console/console-live-1.js`, follows).
//!
//! The stream reads the database through `adms_store::PunchFollower`, so it shows every
//! replica's punches and skips none committed out of id order (its docs say how). It keeps up
//! with any ingest rate without freezing the page: at most one message per [`BATCH_EVERY`],
//! with at most `ROWS_PER_BATCH` rows (the newest; what it could not show is counted in the
//! message), and the page keeps its newest `MAX_ROWS` rows.
//!
//! It ends by itself when the server begins to stop (`AppState::stopping`; the browser
//! reconnects, to another replica behind a balancer, and resumes after the last id it got
//! through `Last-Event-ID`), and when the session ends (logout, expiry, password change),
//! checked every [`SESSION_CHECK_EVERY`]: the page is told and stops.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use adms_protocol::labels;
use adms_store::{LiveBatch, LiveFilter, PunchFollower};

use super::pages::{Layout, device_href, encode};
use super::session::ConsoleUser;
use super::{ConsoleError, render};
use crate::state::SharedState;

/// How often the stream looks for new punches, and so the most messages it sends.
const BATCH_EVERY: Duration = Duration::from_millis(250);
/// How often the stream checks that its session still lives.
const SESSION_CHECK_EVERY: Duration = Duration::from_secs(5);
/// How long the browser waits before reconnecting after the stream ended (a stopping replica).
const RECONNECT_AFTER: Duration = Duration::from_secs(2);
/// Rows the page keeps, newest first.
const MAX_ROWS: usize = 500;

#[derive(Debug, Default, Deserialize)]
pub struct LiveQuery {
    /// A device's serial number.
    #[serde(default)]
    device: String,
    #[serde(default)]
    pin: String,
}

impl LiveQuery {
    fn filter(&self) -> LiveFilter {
        let given = |text: &str| Some(text.trim().to_owned()).filter(|t| !t.is_empty());
        LiveFilter { device_sn: given(&self.device), pin: given(&self.pin) }
    }

    /// The stream's address, with the page's filters.
    fn stream_href(&self) -> String {
        let filter = self.filter();
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(sn) = &filter.device_sn {
            query.append_pair("device", sn);
        }
        if let Some(pin) = &filter.pin {
            query.append_pair("pin", pin);
        }
        let query = query.finish();
        if query.is_empty() { "/ui/live/stream".to_owned() } else { format!("/ui/live/stream?{query}") }
    }
}

#[derive(Template)]
#[template(path = "console/live.html")]
struct LivePage {
    layout: Layout,
    nav: &'static str,
    filter_device: String,
    filter_pin: String,
    stream: String,
    max_rows: usize,
    /// Where the device filter links (the device page), when there is one.
    device_page: Option<String>,
}

/// `GET /ui/live?device=&pin=`.
pub async fn live(user: ConsoleUser, Query(query): Query<LiveQuery>) -> Result<Response, ConsoleError> {
    let filter = query.filter();
    render(&LivePage {
        layout: Layout::of(&user),
        nav: "live",
        device_page: filter.device_sn.as_deref().map(device_href),
        filter_device: filter.device_sn.unwrap_or_default(),
        filter_pin: filter.pin.unwrap_or_default(),
        stream: query.stream_href(),
        max_rows: MAX_ROWS,
    })
}

/// One punch as the page's script writes it into a row (as text: nothing here is markup).
#[derive(Debug, Serialize)]
struct PunchRow {
    id: i64,
    received: String,
    sn: String,
    alias: String,
    device_href: String,
    pin: String,
    name: String,
    time: String,
    state: String,
    verify: String,
}

/// A `punches` message.
#[derive(Debug, Serialize)]
struct PunchesMessage {
    /// Oldest first.
    punches: Vec<PunchRow>,
    /// Punches stored meanwhile that the stream did not send (too fast to show).
    not_shown: u64,
}

fn message(state: &SharedState, batch: LiveBatch) -> PunchesMessage {
    let zone = &state.display_zone;
    PunchesMessage {
        not_shown: batch.not_shown,
        punches: batch
            .punches
            .into_iter()
            .map(|p| PunchRow {
                id: p.id,
                received: zone.format_micros(p.received_at),
                device_href: device_href(&p.sn),
                sn: p.sn,
                alias: p.alias,
                name: p.name.unwrap_or_default(),
                time: p.local_time,
                state: format!("{} ({})", labels::punch_state(&p.state), p.state),
                verify: format!("{} ({})", labels::verify_type(p.verify), p.verify),
                pin: p.pin,
            })
            .collect(),
    }
}

/// What a running stream holds.
struct Follow {
    state: SharedState,
    user: ConsoleUser,
    follower: PunchFollower,
    ticks: tokio::time::Interval,
    session_checked: Instant,
    /// The first event (the reconnect delay and the starting id) is still to be sent.
    greeted: bool,
    ended: bool,
}

impl Follow {
    /// The next event, or `None` when the stream ends.
    async fn next_event(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        if !self.greeted {
            self.greeted = true;
            return Some(
                Event::default()
                    .event("ready")
                    .id(self.follower.after_id().to_string())
                    .retry(RECONNECT_AFTER)
                    .data("{}"),
            );
        }
        loop {
            tokio::select! {
                biased;
                () = self.state.stopping.cancelled() => {
                    // No farewell: the browser reconnects (after `retry`), to a replica that
                    // is not stopping, from the last id it got.
                    tracing::debug!(user = %self.user.name, "live stream ended: the server is stopping");
                    return None;
                }
                _ = self.ticks.tick() => {}
            }
            let now = Instant::now();
            if now.duration_since(self.session_checked) >= SESSION_CHECK_EVERY {
                self.session_checked = now;
                match self.user.is_live(&self.state).await {
                    Ok(true) => {}
                    Ok(false) => {
                        self.ended = true;
                        tracing::debug!(user = %self.user.name, "live stream ended: the session ended");
                        return Some(Event::default().event("ended").data("session"));
                    }
                    // The database did not answer: the next check decides.
                    Err(error) => tracing::warn!(%error, "live stream: session not checked"),
                }
            }
            match self.follower.next_batch(&self.state.store, now).await {
                Ok(batch) if batch.punches.is_empty() && batch.not_shown == 0 => {}
                Ok(batch) => {
                    let id = batch.after_id.to_string();
                    let message = message(&self.state, batch);
                    match Event::default().event("punches").id(id).json_data(&message) {
                        Ok(event) => return Some(event),
                        Err(error) => tracing::error!(%error, "live stream: message not encoded"),
                    }
                }
                // Nothing is lost: the follower's cursor did not move, the next tick retries.
                Err(error) => tracing::warn!(%error, "live stream: punches not read"),
            }
        }
    }
}

/// `GET /ui/live/stream?device=&pin=`: `text/event-stream` of `ready` (the starting id), then
/// `punches` messages (JSON: `punches`, oldest first, and `not_shown`), and `ended` when the
/// session ends. A `Last-Event-ID` resumes after that punch id.
pub async fn stream(
    State(state): State<SharedState>,
    user: ConsoleUser,
    headers: HeaderMap,
    Query(query): Query<LiveQuery>,
) -> Result<Response, ConsoleError> {
    let filter = query.filter();
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok());
    let follower = match resume {
        Some(after_id) if after_id >= 0 => PunchFollower::after(after_id, filter),
        _ => PunchFollower::from_now(&state.store, filter).await?,
    };
    let mut ticks = tokio::time::interval(BATCH_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::debug!(user = %user.name, device = %encode(&query.device), "live stream started");
    let follow = Follow { state, user, follower, ticks, session_checked: Instant::now(), greeted: false, ended: false };
    let events = futures_util::stream::unfold(follow, |mut follow| async move {
        let event = follow.next_event().await?;
        Some((Ok::<_, Infallible>(event), follow))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}
