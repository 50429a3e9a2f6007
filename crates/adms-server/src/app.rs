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
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use adms_store::webhooks::EndpointSettings;
use adms_store::{Device, Store, StoreError, StoreOptions, now_micros};
use adms_webhooks::{
    AddressPolicy, Clock, DeliveryClient, DeliveryMetrics, Dispatcher, DispatcherConfig, EndpointGauge, SecretKey,
    WebhookSecret, sealing,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::api::access::ApiRoutes;
use crate::api::auth::{AuthSetupError, AuthState, hash_password, verify_password};
use crate::config::Config;
use crate::device::registry::{DeviceRegistry, flush_activity};
use crate::zones::{Zone, parse_zone};

/// Everything handlers share.
#[derive(Debug)]
pub struct AppState {
    pub store: Store,
    pub config: Config,
    pub devices: DeviceRegistry,
    /// The earliest accepted punch time (`punch_time_min`, validated at start).
    pub punch_window_start: adms_protocol::LocalDateTime,
    /// Which devices are trusted: approval of new serial numbers, allowed addresses,
    /// registration limits.
    pub trust: crate::device::trust::DeviceTrust,
    /// Zone for devices without their own setting; sent to devices in the handshake.
    pub default_zone: Zone,
    /// Zone the API shows server-side times (`upload_time`, `last_activity`) in.
    pub display_zone: Zone,
    pub auth: AuthState,
    pub webhooks: WebhookRuntime,
    /// How polls hand out, re-send and expire queued commands.
    pub commands: adms_store::CommandPolicy,
    /// The OpenAPI document and the docs page, rendered when the router is built (from the
    /// routes it registers) and read only by the two documentation routes. Kept here rather
    /// than in a request extension, which every device request would have paid for.
    pub documents: std::sync::OnceLock<crate::api::openapi::Documents>,
    /// Daily quota refusals (counter and log-once state).
    pub quotas: crate::limits::QuotaGuard,
}

/// What the webhook side shares with handlers.
#[derive(Debug)]
pub struct WebhookRuntime {
    /// The dispatcher's clock (movable only with `test_clock`).
    pub clock: Arc<Clock>,
    /// Wakes the dispatcher when new deliveries were committed.
    pub wake: Arc<Notify>,
    pub address_policy: AddressPolicy,
    /// What this process's dispatcher did, for `/metrics`.
    pub metrics: Arc<DeliveryMetrics>,
    /// Seals new signing secrets at rest (and opens them to sign); `None`: stored as `whsec_` text.
    pub secret_key: Option<SecretKey>,
}

impl WebhookRuntime {
    /// A new signing secret in the form it is stored.
    pub fn conceal(&self, endpoint_uid: &str, secret: &str) -> String {
        sealing::conceal(self.secret_key.as_ref(), endpoint_uid, secret)
    }
}

pub type SharedState = Arc<AppState>;

impl AppState {
    /// How far what `device` reports about its users may reach the roster: only an approved
    /// device is ever adopted from, under the operator's `device_users` policy.
    pub fn adoption_for(&self, device: &Device) -> adms_store::AdoptionPolicy {
        if device.approval != adms_store::Approval::Approved {
            return adms_store::AdoptionPolicy::default();
        }
        adms_store::AdoptionPolicy {
            adoption: self.config.device_users.adoption(),
            allow_admin: self.config.device_users_allow_admin,
        }
    }

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
    #[error("authentication: {0}")]
    Auth(#[from] AuthSetupError),
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
            let stored = store.user_by_name(user).await?.map(|u| u.password_hash);
            // The stored hash is kept when the password still matches it: hashing anew gives a
            // new salt, which the store would take for a password change and end every session
            // at every restart.
            let hash = tokio::task::spawn_blocking(move || match stored {
                Some(stored) if verify_password(&password, &stored) => Ok(stored),
                _ => hash_password(&password),
            })
            .await
            .map_err(|e| StartupError::Other(e.to_string()))?
            .map_err(StartupError::Other)?;
            let outcome = store.bootstrap_user(user, &hash).await?;
            if outcome.password_changed {
                tracing::warn!(user = %user, "admin password changed: the account's session tokens and JWTs are no longer valid");
            }
            for previous in &outcome.disabled {
                tracing::warn!(user = %user, %previous, "admin account renamed: the previous account is disabled and its tokens are no longer valid");
            }
            tracing::info!(user = %user, "admin account ready");
        }
        let secret_key = match crate::vault::master_key(&config, &store).await? {
            Some((key, source)) => {
                match &source {
                    crate::vault::KeySource::Generated(path) => tracing::warn!(
                        path = %path.display(),
                        "generated a master key file (mode 0600) that seals this database's secrets; back it up apart from the database: without it the secrets cannot be opened"
                    ),
                    crate::vault::KeySource::File(path) => {
                        tracing::info!(path = %path.display(), "master key read from its file")
                    }
                    crate::vault::KeySource::Config => tracing::info!("master key from ADMS_SECRET_KEY"),
                }
                crate::vault::check_master_key(&store, &key).await?;
                crate::vault::seal_store(&store, &key).await?;
                Some(key)
            }
            None => None,
        };
        let jwt_key = crate::vault::jwt_signing_key(&store, secret_key.as_ref()).await?;
        let auth = AuthState::load(&jwt_key, config.login_limits()).await?;
        let mut address_policy = config.webhook_address_policy()?;
        seal_stored_secrets(&store, secret_key.as_ref()).await?;
        if let Some(url) = &config.webhook_url {
            ensure_env_endpoint(
                &store,
                secret_key.as_ref(),
                url,
                config.webhook_secret.as_deref(),
                config.webhook_timeout_secs,
            )
            .await?;
        }
        let listener = TcpListener::bind(config.listen).await.map_err(|e| StartupError::Bind(config.listen, e))?;
        // A webhook to the bridge itself would let a token holder call its own API through the
        // dispatcher and read the answer in the attempt log. The bound address, not `listen`:
        // with port 0 only the socket knows its port.
        let own = listener.local_addr().map_err(|e| StartupError::Bind(config.listen, e))?;
        address_policy.own_listeners.push(own);
        let webhooks = WebhookRuntime {
            clock: Arc::new(Clock::default()),
            wake: Arc::new(Notify::new()),
            address_policy,
            metrics: Arc::default(),
            secret_key,
        };
        let commands = config.command_policy(&zone.name);
        let trust = crate::device::trust::DeviceTrust::from_config(&config)?;
        let punch_window_start =
            config.punch_window_start().ok_or_else(|| StartupError::Other("bad punch_time_min".into()))?;
        trust.log_policy();
        let state = Arc::new(AppState {
            commands,
            trust,
            punch_window_start,
            documents: std::sync::OnceLock::new(),
            quotas: crate::limits::QuotaGuard::default(),
            store,
            devices: DeviceRegistry::default(),
            display_zone: zone.clone(),
            default_zone: zone,
            auth,
            config,
            webhooks,
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
        let presence = tokio::spawn(crate::device::presence::run_checks(state.clone()));
        let command_sweep = tokio::spawn(crate::device::commands::run_expiry(state.clone()));
        let roster_reconcile = tokio::spawn(crate::roster::run_reconcile(state.clone()));
        let command_wake = tokio::spawn(crate::device::commands::run_cross_replica_wake(state.clone()));
        let stop_dispatcher = CancellationToken::new();
        let dispatcher = start_dispatcher(&state, stop_dispatcher.clone())?;
        let service = MapRequestLayer::new(normalize_path).layer(router(state.clone()));
        let header_timeout = Duration::from_secs(state.config.header_read_timeout_secs);
        let result = serve(self.listener, service, header_timeout, shutdown).await;
        background.abort();
        presence.abort();
        command_sweep.abort();
        roster_reconcile.abort();
        command_wake.abort();
        stop_dispatcher.cancel();
        // In-flight webhook requests end within their timeout; their attempts are recorded.
        let drain = Duration::from_secs(state.config.webhook_timeout_secs + 5);
        if tokio::time::timeout(drain, dispatcher).await.is_err() {
            tracing::warn!("webhook dispatcher did not stop in time; its leases will expire and be retried");
        }
        if let Err(error) = flush_activity(&state.devices, &state.store).await {
            tracing::warn!(%error, "final device activity flush failed");
        }
        state.store.close().await;
        tracing::info!("server stopped");
        result
    }
}

/// The accept loop: one HTTP/1.1 connection per task, with the peer address for the handlers
/// (`ConnectInfo`), no Nagle delay, and a limit on how long a connection may take to send a
/// request's headers (idle keep-alive time included). `axum::serve` offers no such limit, and
/// without it a client that sends its headers a byte at a time holds a connection forever (the
/// whole-request `TimeoutLayer` starts only once the headers are in). On `shutdown`: stop
/// accepting, let in-flight requests finish, close idle connections.
async fn serve<S>(
    listener: TcpListener,
    service: S,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    S: tower::Service<Request, Response = axum::response::Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Replies are small and each device waits for its own: send them at once (no Nagle).
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        let service = service.clone();
        let handler = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            tower::ServiceExt::oneshot(service.clone(), request)
        });
        let connection = connections.watch(http.serve_connection(hyper_util::rt::TokioIo::new(tcp), handler));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
    Ok(())
}

/// Starts the outbox worker on its own task.
fn start_dispatcher(state: &SharedState, stop: CancellationToken) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let config = &state.config;
    let client = DeliveryClient::new(
        state.webhooks.address_policy.clone(),
        Duration::from_secs(5).min(Duration::from_secs(config.webhook_timeout_secs)),
        Duration::from_secs(config.webhook_timeout_secs),
        concat!("adms-bridge/", env!("CARGO_PKG_VERSION")),
    )
    .map_err(std::io::Error::other)?;
    let dispatcher = Dispatcher::new(
        state.store.clone(),
        client,
        DispatcherConfig {
            concurrency: config.webhook_concurrency,
            // Longer than any request may take, so a live worker never loses its lease.
            // (endpoints' own timeouts are at most 30 s).
            lease: Duration::from_secs(config.webhook_timeout_secs.max(30) + 30),
            ..DispatcherConfig::default()
        },
        Arc::clone(&state.webhooks.clock),
        Arc::clone(&state.webhooks.wake),
        Arc::clone(&state.webhooks.metrics),
    )
    .with_secret_key(state.webhooks.secret_key.clone());
    Ok(tokio::spawn(dispatcher.run(stop)))
}

/// Creates or updates the endpoint `ADMS_WEBHOOK_URL` manages. A generated secret is printed
/// once, on stderr (stdout carries only the `listening on` line).
async fn ensure_env_endpoint(
    store: &Store,
    key: Option<&SecretKey>,
    url: &str,
    secret: Option<&str>,
    timeout_secs: u64,
) -> Result<(), StartupError> {
    let settings = EndpointSettings {
        url,
        description: "ADMS_WEBHOOK_URL",
        event_types: None,
        timeout_ms: i64::try_from(timeout_secs.saturating_mul(1000)).unwrap_or(15_000),
        batch_max: 1,
        ordered: false,
    };
    match store.env_endpoint().await? {
        None => {
            let generated = WebhookSecret::generate().to_string();
            let secret_text = secret.unwrap_or(&generated);
            let uid = format!("ep_env_{}", hex::encode(rand::random::<[u8; 8]>()));
            store.create_endpoint(&uid, &settings, "env", &sealing::conceal(key, &uid, secret_text)).await?;
            if secret.is_none() {
                eprintln!("webhook endpoint {url} created; its signing secret (shown once): {generated}");
            }
            tracing::info!(endpoint = %uid, "webhook endpoint from ADMS_WEBHOOK_URL created");
        }
        Some(endpoint) => {
            if endpoint.url != url || endpoint.timeout_ms != settings.timeout_ms {
                store.update_endpoint(&endpoint.uid, &settings).await?;
                tracing::info!(endpoint = %endpoint.uid, "webhook endpoint URL updated from ADMS_WEBHOOK_URL");
            }
            let current = store.current_endpoint_secrets(&endpoint.uid).await?;
            let is_current = |secret: &str| {
                current.iter().any(|stored| sealing::reveal(key, &endpoint.uid, stored).is_ok_and(|s| s == secret))
            };
            if let Some(secret) = secret
                && !is_current(secret)
            {
                // The old secret stays valid for a day, so receivers can switch without a gap.
                let sealed = sealing::conceal(key, &endpoint.uid, secret);
                store.rotate_endpoint_secret(&endpoint.uid, &sealed, now_micros() + 86_400_000_000).await?;
                tracing::info!(endpoint = %endpoint.uid, "webhook secret rotated from ADMS_WEBHOOK_SECRET");
            }
        }
    }
    Ok(())
}

/// With a master key: seals every secret still stored as plaintext, and checks that every
/// sealed one opens (a wrong key fails the start, not every delivery). Without one: refuses to
/// start if any secret is sealed, since nothing could be signed.
async fn seal_stored_secrets(store: &Store, key: Option<&SecretKey>) -> Result<(), StartupError> {
    let stored = store.stored_secrets().await?;
    let mut sealed_now = 0;
    for row in &stored {
        match (key, sealing::is_sealed(&row.secret)) {
            (Some(key), true) => {
                key.open(&row.endpoint_uid, &row.secret).map_err(|e| StartupError::Other(e.to_string()))?;
            }
            (Some(key), false) => {
                if store.reseal_secret(row.id, &row.secret, &key.seal(&row.endpoint_uid, &row.secret)).await? {
                    sealed_now += 1;
                }
            }
            (None, true) => return Err(StartupError::Other(sealing::SealError::NoKey.to_string())),
            (None, false) => {}
        }
    }
    if sealed_now > 0 {
        tracing::info!(secrets = sealed_now, "webhook signing secrets sealed with ADMS_SECRET_KEY");
    }
    if key.is_none() && !stored.is_empty() {
        tracing::info!("webhook signing secrets are stored unencrypted; set ADMS_SECRET_KEY to seal them at rest");
    }
    Ok(())
}

/// What [`rekey_stored_secrets`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rekeyed {
    /// Secrets now sealed under the new key.
    pub resealed: usize,
    /// Secrets that already were (a run interrupted earlier, then run again).
    pub already: usize,
}

/// Seals every stored signing secret under `new`, opening it with `current` (`None`: stored
/// unencrypted). Row by row, each a compare-and-swap, so an interrupted run leaves every row
/// under one of the two keys and running it again finishes the job. Every process on the
/// database must be stopped first and started again with the new key.
pub async fn rekey_stored_secrets(
    store: &Store,
    current: Option<&SecretKey>,
    new: &SecretKey,
) -> Result<Rekeyed, StartupError> {
    let mut done = Rekeyed { resealed: 0, already: 0 };
    for row in store.stored_secrets().await? {
        if sealing::is_sealed(&row.secret) && new.open(&row.endpoint_uid, &row.secret).is_ok() {
            done.already += 1;
            continue;
        }
        let secret = sealing::reveal(current, &row.endpoint_uid, &row.secret)
            .map_err(|error| StartupError::Other(format!("secret #{} of {}: {error}", row.id, row.endpoint_uid)))?;
        if !store.reseal_secret(row.id, &row.secret, &new.seal(&row.endpoint_uid, &secret)).await? {
            return Err(StartupError::Other(format!(
                "secret #{} changed while being re-keyed: is a server still running on this database?",
                row.id
            )));
        }
        done.resealed += 1;
    }
    Ok(done)
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
        if ticks.is_multiple_of(720) {
            match state.store.purge_expired_sessions(now_micros()).await {
                Ok(n) if n > 0 => tracing::info!(purged = n, "expired session tokens removed"),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "session purge failed"),
            }
        }
    }
}

/// Every route with its OpenAPI document: the device protocol, the API, `/metrics`, and the
/// test clock when it is enabled (undocumented otherwise, because it does not exist).
fn documented_routes(state: &SharedState) -> (Router<SharedState>, utoipa::openapi::OpenApi) {
    use crate::api::auth::Scope;
    let base = OpenApiRouter::with_openapi(crate::api::openapi::base_document())
        .merge(crate::device::routes())
        .merge(crate::api::routes(state));
    // Prometheus scrapes with a `read` key.
    let mut routes = ApiRoutes::new(base, state).scoped(Scope::Read, routes!(metrics));
    if state.config.test_clock {
        routes = routes.scoped(Scope::Admin, routes!(advance_test_clock));
    }
    let (router, doc) = routes.into_router().split_for_parts();
    (router, crate::api::openapi::finish(doc))
}

/// The router with every route and middleware.
pub fn router(state: SharedState) -> Router {
    let timeout = Duration::from_secs(state.config.request_timeout_secs.max(1));
    let (routes, doc) = documented_routes(&state);
    // Built once per state; a second router for the same state documents the same routes.
    let _ = state.documents.set(crate::api::openapi::Documents::new(&doc));
    let max_body_bytes = state.config.max_body_bytes;
    let routes = routes
        .fallback(|| async { crate::api::not_found_page() })
        .method_not_allowed_fallback(crate::api::method_not_allowed)
        .with_state(state);
    // The middleware wraps the router once, outermost first. (`Router::layer` would wrap every
    // route on its own, each layer in a boxed service of its own that is cloned and whose
    // future is boxed on every request.)
    let middleware = tower::ServiceBuilder::new()
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            (StatusCode::INTERNAL_SERVER_ERROR, "ERROR: internal error").into_response()
        }))
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE]))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(axum::middleware::map_response(log_refusals))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(max_body_bytes, crate::limits::explain_body_limit));
    Router::new().fallback_service(middleware.service(routes))
}

/// Prometheus metrics.
///
/// Text exposition format, authenticated like every API route (Prometheus sends
/// `Authorization: Bearer <integration key>`): webhook delivery counters of this process, the
/// backlog of each endpoint, and this process's login counters (password checks, failures,
/// refusals).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = crate::api::openapi::tag::METRICS,
    responses((status = 200, description = "The metrics.", body = String, content_type = "text/plain; version=0.0.4"))
)]
async fn metrics(
    axum::extract::State(state): axum::extract::State<SharedState>,
    _who: crate::api::auth::Authenticated,
) -> Result<axum::response::Response, crate::api::ApiError> {
    let now = state.webhooks.clock.now_micros();
    let backlog = state.store.delivery_backlog(now).await?;
    let endpoints = state.store.list_endpoints().await?;
    let gauges: Vec<EndpointGauge> = backlog
        .into_iter()
        .map(|b| EndpointGauge {
            endpoint: b.endpoint_uid,
            due: b.due,
            in_flight: b.in_flight,
            exhausted: b.exhausted,
            oldest_due_age_secs: b.oldest_due_at.map_or(0.0, |at| (now - at).max(0) as f64 / 1e6),
        })
        .collect();
    let mut text =
        state.webhooks.metrics.render(&gauges, |id| endpoints.iter().find(|e| e.id == id).map(|e| e.uid.clone()));
    text.push_str(&state.auth.guard.metrics.render());
    text.push_str(&state.quotas.render());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
struct ClockAdvance {
    advance_secs: u64,
}

/// The dispatcher's clock after a move.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only: the handler answers with json!")]
struct ClockNow {
    /// RFC 3339 UTC.
    now: String,
}

/// Move the webhook dispatcher's clock forward (tests only).
///
/// Only with `test_clock`, for tests that walk retry schedules of days. Authenticated like
/// every API route.
#[utoipa::path(
    post,
    path = "/api/v1/test/clock",
    tag = crate::api::openapi::tag::TESTING,
    request_body = ClockAdvance,
    responses(
        (status = 200, description = "The clock's new time.", body = ClockNow),
        (status = 400, description = "Malformed JSON."),
        (status = 415, description = "The body is not `application/json`."),
        (status = 422, description = "Not `{\"advance_secs\": <n>}`."),
    )
)]
async fn advance_test_clock(
    axum::extract::State(state): axum::extract::State<SharedState>,
    _who: crate::api::auth::Authenticated,
    axum::Json(body): axum::Json<ClockAdvance>,
) -> axum::Json<serde_json::Value> {
    state.webhooks.clock.advance(Duration::from_secs(body.advance_secs));
    state.webhooks.wake.notify_one();
    axum::Json(serde_json::json!({ "now": adms_store::events::rfc3339_micros(state.webhooks.clock.now_micros()) }))
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
