//! Startup: configuration checked, the store opened, the admin account, the master key and
//! the secrets it seals, the listener bound, and the application state assembled.

use std::net::SocketAddr;
use std::sync::Arc;

use adms_store::{Store, StoreError, StoreOptions};
use adms_webhooks::Clock;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::Application;
use super::secrets::{ensure_env_endpoint, seal_stored_secrets};
use crate::api::auth::{AuthSetupError, AuthState, hash_password, verify_password};
use secrecy::ExposeSecret;

use crate::config::Config;
use crate::device_registry::DeviceRegistry;
use crate::state::{AppState, WebhookRuntime};
use crate::zones::parse_zone;

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
    #[error("capture folder {}: {source}", dir.display())]
    Capture { dir: std::path::PathBuf, source: std::io::Error },
    #[error("{0}")]
    Other(String),
}

impl Application {
    pub async fn build(mut config: Config) -> Result<Application, StartupError> {
        if config.database_url.trim().is_empty() {
            // Not resolved by the caller (`Config::resolve_paths`): the default database.
            config.resolve_paths(None)?;
        }
        config.validate()?;
        let zone = parse_zone(&config.time_zone).ok_or_else(|| StartupError::Other("bad time_zone".into()))?;
        let options = StoreOptions { backup_before_migrate: config.backup_before_migrate, ..StoreOptions::default() };
        let store = Store::open(&config.database_url, options).await?;
        if let Some(path) = store.migration_backup() {
            tracing::warn!(backup = %path.display(), "the database had pending migrations: it was backed up before migrating");
        }
        match adms_store::sqlite_file(&config.database_url) {
            Some(path) => tracing::info!(database = %path.display(), "database opened"),
            None => tracing::info!(database = %adms_store::redact_url(&config.database_url), "database opened"),
        }
        if let (Some(user), Some(password)) = (&config.admin.user, &config.admin.password) {
            let password = password.clone();
            let stored = store.user_by_name(user).await?.map(|u| u.password_hash);
            // The stored hash is kept when the password still matches it: hashing anew gives a
            // new salt, which the store would take for a password change and end every session
            // at every restart.
            let hash = tokio::task::spawn_blocking(move || match stored {
                Some(stored) if verify_password(password.expose_secret(), &stored) => Ok(stored),
                _ => hash_password(password.expose_secret()),
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
        } else if !store.list_users().await?.iter().any(|u| u.role == "admin" && u.disabled_at.is_none()) {
            tracing::warn!(
                "no enabled admin account: nobody can manage the API; set ADMS_ADMIN_USER and ADMS_ADMIN_PASSWORD \
                 ([admin] user and password), or run `adms-bridge user create NAME --role admin`"
            );
        }
        let secret_key = match super::vault::master_key(&config, &store).await? {
            Some((key, source)) => {
                match &source {
                    super::vault::KeySource::Generated(path) => tracing::warn!(
                        path = %path.display(),
                        "generated a master key file (mode 0600) that seals this database's secrets; back it up apart from the database: without it the secrets cannot be opened"
                    ),
                    super::vault::KeySource::File(path) => {
                        tracing::info!(path = %path.display(), "master key read from its file")
                    }
                    super::vault::KeySource::Config => tracing::info!("master key from ADMS_SECRET_KEY"),
                }
                super::vault::check_master_key(&store, &key).await?;
                super::vault::seal_store(&store, &key).await?;
                Some(key)
            }
            None => None,
        };
        let jwt_key = super::vault::jwt_signing_key(&store, secret_key.as_ref()).await?;
        let auth = AuthState::load(&jwt_key, config.login_limits()).await?;
        let mut address_policy = config.webhook_address_policy()?;
        seal_stored_secrets(&store, secret_key.as_ref()).await?;
        if let Some(url) = &config.webhooks.url {
            ensure_env_endpoint(
                &store,
                secret_key.as_ref(),
                url,
                config.webhooks.secret.as_ref().map(ExposeSecret::expose_secret),
                config.webhooks.timeout_secs,
                secret_file(&config).as_deref(),
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
        let trust = crate::device_trust::DeviceTrust::from_config(&config)?;
        let punch_window_start =
            config.punch_window_start().ok_or_else(|| StartupError::Other("bad punch_time_min".into()))?;
        trust.log_policy();
        let quotas = crate::limits::QuotaGuard::default();
        let capture_metrics = crate::capture::CaptureMetrics::default();
        let capture = match &config.capture.dir {
            Some(dir) => {
                let settings = crate::capture::CaptureSettings {
                    dir: dir.clone(),
                    all_devices: config.capture.all_devices,
                    max_file_bytes: config.capture.max_file_bytes,
                    max_file_age: std::time::Duration::from_secs(config.capture.max_file_age_secs),
                    max_total_bytes: config.capture.max_total_bytes,
                    queue_bytes: config.capture.queue_bytes,
                };
                let capture = crate::capture::Capture::start(settings, capture_metrics.clone())
                    .map_err(|source| StartupError::Capture { dir: dir.clone(), source })?;
                Some(capture)
            }
            None => None,
        };
        let telemetry = crate::telemetry::Telemetry::new(&crate::telemetry::metrics::Sources {
            database: store.engine().as_str(),
            writer: store.punch_writer().metrics(),
            access_writer: store.access_writer_metrics(),
            deliveries: &webhooks.metrics,
            login_checks: &auth.guard.metrics.password_checks,
            login_failures: &auth.guard.metrics.failures,
            login_throttled: &auth.guard.metrics.throttled,
            login_busy: &auth.guard.metrics.busy,
            quota_raw: &quotas.raw_refusals,
            quota_photo: &quotas.photo_refusals,
            capture_dropped: &capture_metrics.dropped,
            capture_write_failures: &capture_metrics.write_failures,
        });
        let state = Arc::new(AppState {
            commands,
            trust,
            punch_window_start,
            documents: std::sync::OnceLock::new(),
            quotas,
            telemetry,
            store,
            devices: DeviceRegistry::default(),
            display_zone: zone.clone(),
            default_zone: zone,
            auth,
            config,
            webhooks,
            draining: std::sync::atomic::AtomicBool::new(false),
            stopping: tokio_util::sync::CancellationToken::new(),
            wake_ups: std::sync::atomic::AtomicBool::new(false),
            capture,
        });
        Ok(Application { listener, state })
    }
}

/// Where a generated signing secret is written when it cannot be shown on a terminal: beside
/// the SQLite database (`None` for PostgreSQL and in-memory databases).
fn secret_file(config: &Config) -> Option<std::path::PathBuf> {
    adms_store::sqlite_file(&config.database_url).map(|db| {
        let mut name = db.as_os_str().to_owned();
        name.push(".webhook-secret");
        std::path::PathBuf::from(name)
    })
}
