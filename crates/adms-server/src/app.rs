//! Assembling the server: state, router, middleware, background tasks, graceful shutdown.
//!
//! `Application::build` binds the listener (so tests can use `127.0.0.1:0` and read the port),
//! `run_until_stopped` serves until the shutdown future resolves, then drains in-flight requests
//! and flushes device activity.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, OriginalUri, Request};
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use tower::Layer;
use tower::util::MapRequestLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use adms_store::{Device, Store, StoreError, StoreOptions, now_micros};

use crate::api::auth::{AuthState, hash_password};
use crate::config::Config;
use crate::device::registry::{DeviceRegistry, flush_activity};
use crate::zones::{Zone, parse_zone};

/// Everything handlers share.
#[derive(Debug)]
pub struct AppState {
    pub store: Store,
    pub config: Config,
    pub devices: DeviceRegistry,
    /// Zone for devices without their own setting; sent to devices in the handshake.
    pub default_zone: Zone,
    /// Zone the API shows server-side times (`upload_time`, `last_activity`) in.
    pub display_zone: Zone,
    pub auth: AuthState,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    /// The zone a device's wall-clock times are read in.
    pub fn zone_for(&self, device: &Device) -> Zone {
        device.time_zone.as_deref().and_then(parse_zone).unwrap_or_else(|| self.default_zone.clone())
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// A built server, bound and ready to run.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: SharedState,
}

impl Application {
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        config.validate()?;
        let zone = parse_zone(&config.time_zone).ok_or_else(|| StartupError::Other("bad time_zone".into()))?;
        let store = Store::open(&config.database_url, StoreOptions::default()).await?;
        if let (Some(user), Some(password)) = (&config.admin_user, &config.admin_password) {
            let password = password.clone();
            let hash = tokio::task::spawn_blocking(move || hash_password(&password))
                .await
                .map_err(|e| StartupError::Other(e.to_string()))?
                .map_err(StartupError::Other)?;
            store.upsert_user(user, &hash).await?;
            tracing::info!(user = %user, "admin account ready");
        }
        let auth = AuthState::load(&store).await?;
        let listener = TcpListener::bind(config.listen).await.map_err(|e| StartupError::Bind(config.listen, e))?;
        let state = Arc::new(AppState {
            store,
            devices: DeviceRegistry::default(),
            display_zone: zone.clone(),
            default_zone: zone,
            auth,
            config,
        });
        Ok(Application { listener, state })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// Serves until `shutdown` resolves; then finishes in-flight requests and flushes activity.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let state = self.state.clone();
        let flush_every = Duration::from_secs(state.config.activity_flush_secs.max(1));
        let background = tokio::spawn(background_tasks(state.clone(), flush_every));
        let service = MapRequestLayer::new(normalize_path).layer(router(state.clone()));
        let result = axum::serve(
            self.listener,
            axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(service),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        background.abort();
        if let Err(error) = flush_activity(&state.devices, &state.store).await {
            tracing::warn!(%error, "final device activity flush failed");
        }
        state.store.close().await;
        tracing::info!("server stopped");
        result
    }
}

async fn background_tasks(state: SharedState, flush_every: Duration) {
    let mut tick = tokio::time::interval(flush_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        ticks += 1;
        if let Err(error) = flush_activity(&state.devices, &state.store).await {
            tracing::warn!(%error, "device activity flush failed");
        }
        if ticks % 720 == 0 {
            match state.store.purge_expired_sessions(now_micros()).await {
                Ok(n) if n > 0 => tracing::info!(purged = n, "expired session tokens removed"),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "session purge failed"),
            }
        }
    }
}

/// The router with every route and middleware.
pub fn router(state: SharedState) -> Router {
    let timeout = Duration::from_secs(state.config.request_timeout_secs.max(1));
    Router::new()
        .merge(crate::device::routes())
        .merge(crate::api::routes())
        .fallback(|| async { crate::api::not_found_page() })
        .method_not_allowed_fallback(crate::api::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(axum::middleware::map_response(log_refusals))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE]))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            (StatusCode::INTERNAL_SERVER_ERROR, "ERROR: internal error").into_response()
        }))
        .with_state(state)
}

/// Refusals produced by middleware (body limit, timeout) get a log line in the request span,
/// so an operator sees which device sends oversized or stalled uploads.
async fn log_refusals(response: axum::response::Response) -> axum::response::Response {
    match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE => tracing::warn!("request body over max_body_bytes refused with 413"),
        StatusCode::REQUEST_TIMEOUT => tracing::warn!("request not completed within request_timeout_secs: 408"),
        _ => {}
    }
    response
}

/// One span per request, carrying the device serial when there is one.
fn request_span(request: &Request) -> tracing::Span {
    let query = request.uri().query().unwrap_or_default();
    let sn = form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k.eq_ignore_ascii_case("sn")).map(|(_, v)| v);
    // WARN level so the span (and its SN) is present whenever warnings and errors are logged.
    tracing::warn_span!("request", method = %request.method(), path = %request.uri().path(), sn = sn.as_deref().unwrap_or(""))
}

/// Rewrites the path before routing: doubled slashes collapsed, trailing slash and `.aspx`
/// dropped, device paths lower-cased (`/iclock/cdata.aspx`, `//iclock/cdata/`, `/iClock/cdata`
/// all reach `/iclock/cdata`). The original URI stays available as [`OriginalUri`].
pub fn normalize_path(mut request: Request) -> Request {
    let original = request.uri().clone();
    let path = original.path();
    request.extensions_mut().insert(OriginalUri(original.clone()));
    if is_normal(path) {
        return request;
    }
    let mut normalized = String::with_capacity(path.len());
    let mut previous_slash = false;
    for c in path.chars() {
        if c == '/' && previous_slash {
            continue;
        }
        previous_slash = c == '/';
        normalized.push(c);
    }
    while normalized.len() > 1 && normalized.ends_with('/') {
        normalized.pop();
    }
    if normalized.len() > 5 && normalized.as_bytes()[normalized.len() - 5..].eq_ignore_ascii_case(b".aspx") {
        normalized.truncate(normalized.len() - 5);
    }
    let lower = normalized.to_ascii_lowercase();
    if lower.starts_with("/iclock/") && !lower.starts_with("/iclock/api/") {
        normalized = lower;
    }
    if normalized != path {
        let rebuilt = match original.query() {
            Some(q) => format!("{normalized}?{q}"),
            None => normalized,
        };
        if let Ok(uri) = rebuilt.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// The common case, checked without allocating: no `//`, no trailing `/`, no `.aspx`, and a
/// device path already in lower case.
fn is_normal(path: &str) -> bool {
    let b = path.as_bytes();
    let device_path = b.len() >= 8 && b[..8].eq_ignore_ascii_case(b"/iclock/") && !b[8..].starts_with(b"api/");
    let double_slash = path.contains("//");
    let trailing_slash = b.len() > 1 && path.ends_with('/');
    let aspx = b.len() > 5 && b[b.len() - 5..].eq_ignore_ascii_case(b".aspx");
    let upper_case_device_path = device_path && b.iter().any(u8::is_ascii_uppercase);
    !(double_slash || trailing_slash || aspx || upper_case_device_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_variants_normalise() {
        let cases = [
            ("/iclock/cdata.aspx?SN=1", "/iclock/cdata?SN=1"),
            ("//iclock/cdata/?SN=1", "/iclock/cdata?SN=1"),
            ("/iClock/GetRequest.ASPX", "/iclock/getrequest"),
            ("/iclock/api/transactions/", "/iclock/api/transactions"),
            ("/", "/"),
            ("/api-token-auth/", "/api-token-auth"),
            ("/iclock/getrequest?SN=1", "/iclock/getrequest?SN=1"),
            ("/iclock/api/Transactions", "/iclock/api/Transactions"),
            ("/att/api/firstLastReport/", "/att/api/firstLastReport"),
        ];
        for (input, want) in cases {
            let request = Request::builder().uri(input).body(axum::body::Body::empty()).unwrap();
            assert_eq!(normalize_path(request).uri().to_string(), want, "{input}");
        }
    }
}
