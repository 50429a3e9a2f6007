//! Configuration: built-in defaults, then an optional TOML file, then `ADMS_*` environment
//! variables, then command-line flags. Validated once at start so a bad value fails the boot
//! with a message naming the key, never the first request.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::Provider as _;
use figment::providers::{Env, Format as _, Serialized, Toml};
use figment::value::{Dict, Value};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// What to do with a serial number seen for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownDevicePolicy {
    /// Approve every new serial number at once. Anyone who can reach the port can then pose as
    /// a terminal; the server warns at start.
    Auto,
    /// Store what it sends, but hold it from the API, the roster and every command it was not
    /// explicitly sent until an operator approves it (or a trust rule does). The default.
    Pending,
}

/// What a device's `USER` and template reports may change in the roster (only ever from an
/// approved device; see `adms_store::UserAdoption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceUserPolicy {
    /// Kept per device and raised as `user.*` events; the roster is not touched. The default.
    Observe,
    /// New PINs become employees (normal users) and empty template slots are filled.
    AdoptNew,
    /// Also updates employees the ERP does not manage and replaces templates.
    AdoptAll,
}

impl DeviceUserPolicy {
    pub fn adoption(self) -> adms_store::UserAdoption {
        match self {
            DeviceUserPolicy::Observe => adms_store::UserAdoption::Observe,
            DeviceUserPolicy::AdoptNew => adms_store::UserAdoption::AdoptNew,
            DeviceUserPolicy::AdoptAll => adms_store::UserAdoption::AdoptAll,
        }
    }
}

/// Every setting of the server, in the sections of the configuration file (`[devices]`,
/// `[webhooks]`, …). Environment variables keep their flat names (`ADMS_WEBHOOK_TIMEOUT_SECS`
/// sets `[webhooks] timeout_secs`; [`FLAT_KEYS`] is the table), and so, for one release, does
/// the file: a flat key is read into its section with a warning.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `sqlite://PATH` (created if missing) or `postgres://USER@HOST/DB`. Empty (the default):
    /// `adms-bridge.db` in the data directory. A relative path in the configuration file is
    /// relative to the file's folder.
    pub database_url: String,
    /// The folder of the default database (and its key file). Default: `data` beside the
    /// configuration file, or `./data` of the current folder without one; made absolute once at
    /// start ([`Config::resolve_paths`]).
    pub data_dir: Option<PathBuf>,
    /// Before pending migrations run on an existing SQLite database, copy it to
    /// `<database>.before-<version>` (the start-up log says where).
    pub backup_before_migrate: bool,
    /// Default device time zone: an IANA name, a fixed offset like `+05:30`, or `auto` (the
    /// server's zone). Devices are told this zone in the handshake, so their clocks follow it.
    pub time_zone: String,
    /// `ServerName` sent to devices.
    pub server_name: String,
    /// Test switch: the webhook clock can be moved forward through the API, to walk retry
    /// schedules of days in seconds. Never enable in production.
    pub test_clock: bool,
    /// What this process does: `all` (the default), or one or more of `device` (the terminals'
    /// `/iclock/` routes), `api` (the REST APIs), `worker` (webhook deliveries and the periodic
    /// duties), comma-separated. Replicas on one PostgreSQL database may split the roles.
    pub role: crate::roles::Roles,
    pub admin: AdminConfig,
    pub devices: DeviceConfig,
    pub punches: PunchConfig,
    pub http: HttpConfig,
    pub login: LoginConfig,
    pub log: LogConfig,
    pub webhooks: WebhookConfig,
    pub secrets: SecretsConfig,
    pub commands: CommandConfig,
    pub roster: RosterConfig,
    pub capture: CaptureConfig,
    pub cvsecurity: CvSecurityConfig,
}

/// `[admin]`: the bootstrap API account, created or updated at start. A new password ends the
/// account's session tokens and JWTs; a new name disables the account of the previous name (and
/// ends its tokens). Replicas must be started with the same pair.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    pub user: Option<String>,
    #[serde(skip_serializing)]
    pub password: Option<SecretString>,
}

/// `[devices]`: who may be a terminal, what it is told in the handshake, what it may store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceConfig {
    /// Policy for unknown serial numbers (`pending` by default; `auto` approves everyone).
    pub unknown: UnknownDevicePolicy,
    /// Trust rules that approve a new serial number on first contact under `pending`. Every
    /// rule that is set must hold (none set: nothing is approved automatically).
    /// SN patterns, comma-separated, `*` and `?` as wildcards (`CKJF*,A8N5??????`).
    pub trust_sns: String,
    /// CIDR ranges, comma-separated: the new device's address must be in one.
    pub trust_networks: String,
    /// Registration keys, comma-separated: the new device must present one as `pushcommkey` or
    /// `key` in its request's query string.
    #[serde(skip_serializing)]
    pub trust_keys: Option<SecretString>,
    /// CIDR ranges, comma-separated: when set, device requests (`/iclock/*`) from any other
    /// address are refused (403) and nothing they send is stored.
    pub networks: String,
    /// New serial numbers registered per client address and minute at most; more answer 429.
    pub registrations_per_minute: u32,
    /// What device-reported users and templates may change in the roster.
    pub users: DeviceUserPolicy,
    /// Whether an adopted device user may be (or become) an administrator on the terminals.
    pub users_allow_admin: bool,
    /// Seconds between device polls (`Delay`).
    pub delay_secs: u32,
    /// Seconds between reconnects after a network error (`ErrorDelay`).
    pub error_delay_secs: u32,
    /// Minutes between the device's checks for new data (`TransInterval`).
    pub trans_interval_min: u32,
    /// Fixed daily upload times (`TransTimes`).
    pub trans_times: String,
    /// Push each punch as it happens (`Realtime`).
    pub realtime: bool,
    /// A device is offline after this many seconds without a request (default 3 x delay, at
    /// least 30 s).
    pub offline_after_secs: Option<u64>,
    /// How often in-memory device activity is written to the database.
    pub activity_flush_secs: u64,
    /// Bytes of raw data (bodies of unknown tables, `querydata`, unrecognised paths, OPERLOG
    /// records of unknown kinds) one device may store per UTC day; 0: no quota. Punches and
    /// users are never limited.
    pub raw_quota_bytes_per_day: u64,
    /// Bytes of photos (attendance photos, user photos) one device may store per UTC day; 0:
    /// no quota.
    pub photo_quota_bytes_per_day: u64,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            unknown: UnknownDevicePolicy::Pending,
            trust_sns: String::new(),
            trust_networks: String::new(),
            trust_keys: None,
            networks: String::new(),
            registrations_per_minute: 30,
            users: DeviceUserPolicy::Observe,
            users_allow_admin: false,
            delay_secs: 10,
            error_delay_secs: 30,
            trans_interval_min: 1,
            trans_times: "00:00;14:05".into(),
            realtime: true,
            offline_after_secs: None,
            activity_flush_secs: 5,
            raw_quota_bytes_per_day: 16 * 1024 * 1024,
            photo_quota_bytes_per_day: 256 * 1024 * 1024,
        }
    }
}

/// `[punches]`: which punch times are plausible.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PunchConfig {
    /// Earliest punch time accepted (`YYYY-MM-DD`, the device's local time); earlier punches are
    /// kept as rejected lines (`implausible_time`).
    pub time_min: String,
    /// How far past the device's current time a punch may lie (seconds); later punches are kept
    /// as rejected lines (`implausible_time`).
    pub time_max_ahead_secs: u64,
}

impl Default for PunchConfig {
    fn default() -> Self {
        PunchConfig { time_min: "2000-01-01".into(), time_max_ahead_secs: 86_400 }
    }
}

/// `[http]`: limits of every request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest accepted request body (bytes). Devices send up to ~2 MB; backlogs arrive in
    /// 128-line posts.
    pub max_body_bytes: usize,
    /// Whole-request timeout (slow clients get 408).
    pub request_timeout_secs: u64,
    /// Time a connection may take to send a request's headers, counted from when it starts
    /// waiting for them, so it also closes idle keep-alive connections. Longer than the
    /// devices' poll interval, so their keep-alive connections are reused.
    pub header_read_timeout_secs: u64,
    /// On SIGTERM (or Ctrl-C): how long `/readyz` answers 503 while requests are still served,
    /// so a load balancer takes this replica out before its listener closes. A second signal
    /// ends the wait. Then in-flight requests and background work finish.
    pub drain_secs: u64,
    /// Reverse proxies and load balancers (CIDR ranges or addresses, comma-separated) whose
    /// `X-Forwarded-For` names the client: device trust, registration limits, the login
    /// throttle and the stored device IP then see the client instead of the proxy. Empty (the
    /// default): the TCP peer is the client.
    pub trusted_proxies: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 32 * 1024 * 1024,
            request_timeout_secs: 120,
            header_read_timeout_secs: 75,
            drain_secs: 3,
            trusted_proxies: String::new(),
        }
    }
}

/// `[login]`: sessions and the login throttle.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginConfig {
    /// Lifetime of login session tokens and JWTs.
    pub session_ttl_secs: u64,
    /// Password checks (argon2, ~19 MiB each) running at once, server-wide; this bounds the
    /// memory a burst of logins can take.
    pub hash_concurrency: usize,
    /// How long a login waits for a free password check before 429 (`Retry-After: 1`).
    pub hash_wait_ms: u64,
    /// The window failed logins are counted in, from a key's first failure; a lock-out lasts
    /// until it ends.
    pub window_secs: u64,
    /// Failed logins per (username, client address) in a window before that pair is locked
    /// out (429 without a password check, even with the right password). From the third,
    /// each failure also makes the pair wait 2, 4, 8 … (at most 60) s before its next try.
    /// The same user from another address is not affected.
    pub user_failures: u32,
    /// Failed logins per client address (any username; IPv6 by /64) in a window before the
    /// address is locked out.
    pub address_failures: u32,
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            session_ttl_secs: 8 * 3600,
            hash_concurrency: 2,
            hash_wait_ms: 2000,
            window_secs: 900,
            user_failures: 5,
            address_failures: 20,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Log filter (`info`, `adms_server=debug`, ...); `RUST_LOG` wins when set.
    pub filter: String,
    /// Log format: `text` or `json`.
    pub format: String,
    /// Seconds between the summary lines at `info` (devices seen, punches stored, deliveries
    /// sent and failed); 0: none.
    pub summary_secs: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { filter: "info".into(), format: "text".into(), summary_secs: 60 }
    }
}

/// `[webhooks]`: the endpoint managed from the configuration, where requests may go, and how
/// many at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// One endpoint that receives every event type, managed from the configuration.
    pub url: Option<String>,
    /// Its `whsec_` secret; generated and printed once when absent.
    #[serde(skip_serializing)]
    pub secret: Option<SecretString>,
    /// Allow webhook endpoints on private networks: RFC 1918, carrier-grade NAT, IPv6
    /// unique-local (the single-site install, where the ERP sits on the same network). It does
    /// not open loopback or link-local addresses, and cloud metadata addresses stay refused
    /// regardless.
    pub allow_private: bool,
    /// CIDR ranges allowed even when otherwise refused, comma-separated; the only way to open
    /// loopback (an ERP on the bridge's own host: `127.0.0.1/32`). The bridge's own listening
    /// address stays refused even when listed.
    pub allow_list: String,
    /// Webhook requests in flight at most.
    pub concurrency: usize,
    /// Whole-request timeout of a webhook attempt.
    pub timeout_secs: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: None,
            secret: None,
            allow_private: true,
            allow_list: String::new(),
            concurrency: 64,
            timeout_secs: 15,
        }
    }
}

/// `[secrets]`: the master key sealing secrets and personal data at rest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// The master key: base64 of 32 bytes. Without it, the key file (`key_file`) is used.
    #[serde(skip_serializing)]
    pub key: Option<SecretString>,
    /// A file holding the master key (the same base64 text), read when `key` is not set.
    /// Default: `<database file>.key`, generated (mode 0600) on the first start of a database
    /// that has nothing sealed yet.
    pub key_file: Option<PathBuf>,
}

/// `[commands]`: how the command queue hands out, re-sends and expires commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandConfig {
    /// Commands handed out per poll at most.
    pub per_poll: usize,
    /// Bytes of command lines per poll at most (a single bigger command is sent alone).
    pub poll_bytes: usize,
    /// A sent command without a result after this many seconds is sent again.
    pub resend_secs: u64,
    /// Times a command is sent without a result before it expires.
    pub max_sends: u32,
    /// Default lifetime of a queued command (not delivered or answered by then: expired).
    pub ttl_secs: u64,
}

impl Default for CommandConfig {
    fn default() -> Self {
        CommandConfig { per_poll: 50, poll_bytes: 64 * 1024, resend_secs: 120, max_sends: 3, ttl_secs: 7 * 86_400 }
    }
}

/// `[capture]`: recording device traffic as session scripts that `adms-sim replay` plays
/// (`crate::capture`). Off unless `dir` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    /// The folder of the captured sessions (one folder per device inside). Unset: no capture,
    /// and `POST /api/v1/capture` answers 409.
    pub dir: Option<PathBuf>,
    /// Record every device (`true`), or only devices turned on at run time through
    /// `POST /api/v1/capture` (`adms-bridge capture`).
    pub all_devices: bool,
    /// A device's session file is closed and a new one begun past this size...
    pub max_file_bytes: u64,
    /// ...or this age.
    pub max_file_age_secs: u64,
    /// The oldest closed files are deleted to keep the folder under this.
    pub max_total_bytes: u64,
    /// Body bytes waiting for the writer at most; beyond it exchanges are dropped (counted by
    /// `adms_capture_dropped`), never waited for.
    pub queue_bytes: usize,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            dir: None,
            all_devices: true,
            max_file_bytes: 16 * 1024 * 1024,
            max_file_age_secs: 3600,
            max_total_bytes: 1024 * 1024 * 1024,
            queue_bytes: 64 * 1024 * 1024,
        }
    }
}

/// `[roster]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RosterConfig {
    /// Seconds between passes that plan every approved terminal against the roster (one also
    /// runs at start); 0 runs only the one at start.
    pub reconcile_secs: u64,
}

impl Default for RosterConfig {
    fn default() -> Self {
        RosterConfig { reconcile_secs: 900 }
    }
}

/// `[cvsecurity]`: the CVSecurity-compatible API.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CvSecurityConfig {
    /// The language of event, verify-mode and reader names (`en`, `es` or `zh`), as CVSecurity's
    /// server UI language sets them: clients string-compare them.
    pub language: Language,
}

/// The language of the CVSecurity API's names (its tables: `api::cvsecurity::names`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Es,
    Zh,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8081)),
            database_url: String::new(),
            data_dir: None,
            backup_before_migrate: true,
            time_zone: "auto".into(),
            server_name: "adms-bridge".into(),
            test_clock: false,
            role: crate::roles::Roles::ALL,
            admin: AdminConfig::default(),
            devices: DeviceConfig::default(),
            punches: PunchConfig::default(),
            http: HttpConfig::default(),
            login: LoginConfig::default(),
            log: LogConfig::default(),
            webhooks: WebhookConfig::default(),
            secrets: SecretsConfig::default(),
            commands: CommandConfig::default(),
            roster: RosterConfig::default(),
            capture: CaptureConfig::default(),
            cvsecurity: CvSecurityConfig::default(),
        }
    }
}

/// The database URL without its password; every section as it is (secrets print as
/// `[REDACTED]`: they are `SecretString`s).
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &adms_store::redact_url(&self.database_url))
            .field("data_dir", &self.data_dir)
            .field("backup_before_migrate", &self.backup_before_migrate)
            .field("time_zone", &self.time_zone)
            .field("server_name", &self.server_name)
            .field("test_clock", &self.test_clock)
            .field("role", &self.role)
            .field("admin", &self.admin)
            .field("devices", &self.devices)
            .field("punches", &self.punches)
            .field("http", &self.http)
            .field("login", &self.login)
            .field("log", &self.log)
            .field("webhooks", &self.webhooks)
            .field("secrets", &self.secrets)
            .field("commands", &self.commands)
            .field("roster", &self.roster)
            .field("capture", &self.capture)
            .field("cvsecurity", &self.cvsecurity)
            .finish()
    }
}

/// The flat names of the settings that live in a section: each `ADMS_<NAME>` variable sets that
/// setting, and so (with a warning, for one release) does the name at the top of the file.
pub const FLAT_KEYS: &[(&str, &str)] = &[
    ("admin_user", "admin.user"),
    ("admin_password", "admin.password"),
    ("unknown_devices", "devices.unknown"),
    ("device_trust_sns", "devices.trust_sns"),
    ("device_trust_networks", "devices.trust_networks"),
    ("device_trust_keys", "devices.trust_keys"),
    ("device_networks", "devices.networks"),
    ("device_registrations_per_minute", "devices.registrations_per_minute"),
    ("device_users", "devices.users"),
    ("device_users_allow_admin", "devices.users_allow_admin"),
    ("delay_secs", "devices.delay_secs"),
    ("error_delay_secs", "devices.error_delay_secs"),
    ("trans_interval_min", "devices.trans_interval_min"),
    ("trans_times", "devices.trans_times"),
    ("realtime", "devices.realtime"),
    ("offline_after_secs", "devices.offline_after_secs"),
    ("activity_flush_secs", "devices.activity_flush_secs"),
    ("device_raw_quota_bytes_per_day", "devices.raw_quota_bytes_per_day"),
    ("device_photo_quota_bytes_per_day", "devices.photo_quota_bytes_per_day"),
    ("punch_time_min", "punches.time_min"),
    ("punch_time_max_ahead_secs", "punches.time_max_ahead_secs"),
    ("max_body_bytes", "http.max_body_bytes"),
    ("request_timeout_secs", "http.request_timeout_secs"),
    ("header_read_timeout_secs", "http.header_read_timeout_secs"),
    ("drain_secs", "http.drain_secs"),
    ("trusted_proxies", "http.trusted_proxies"),
    ("session_ttl_secs", "login.session_ttl_secs"),
    ("login_hash_concurrency", "login.hash_concurrency"),
    ("login_hash_wait_ms", "login.hash_wait_ms"),
    ("login_window_secs", "login.window_secs"),
    ("login_user_failures", "login.user_failures"),
    ("login_address_failures", "login.address_failures"),
    ("log", "log.filter"),
    ("log_format", "log.format"),
    ("log_summary_secs", "log.summary_secs"),
    ("webhook_url", "webhooks.url"),
    ("webhook_secret", "webhooks.secret"),
    ("webhook_allow_private", "webhooks.allow_private"),
    ("webhook_allow_list", "webhooks.allow_list"),
    ("webhook_concurrency", "webhooks.concurrency"),
    ("webhook_timeout_secs", "webhooks.timeout_secs"),
    ("secret_key", "secrets.key"),
    ("secret_key_file", "secrets.key_file"),
    ("commands_per_poll", "commands.per_poll"),
    ("command_poll_bytes", "commands.poll_bytes"),
    ("command_resend_secs", "commands.resend_secs"),
    ("command_max_sends", "commands.max_sends"),
    ("command_ttl_secs", "commands.ttl_secs"),
    ("roster_reconcile_secs", "roster.reconcile_secs"),
    ("capture_dir", "capture.dir"),
    ("capture_all_devices", "capture.all_devices"),
    ("capture_max_file_bytes", "capture.max_file_bytes"),
    ("capture_max_file_age_secs", "capture.max_file_age_secs"),
    ("capture_max_total_bytes", "capture.max_total_bytes"),
    ("capture_queue_bytes", "capture.queue_bytes"),
    ("cvsecurity_language", "cvsecurity.language"),
];

/// The settings at the top of the file, outside any section (their variables are
/// `ADMS_<NAME>`).
pub const TOP_LEVEL_KEYS: &[&str] =
    &["listen", "database_url", "data_dir", "backup_before_migrate", "time_zone", "server_name", "test_clock", "role"];

/// Settings that are secrets: never printed, never serialised.
pub const SECRET_KEYS: &[&str] = &["admin.password", "devices.trust_keys", "webhooks.secret", "secrets.key"];

/// The database file in the data directory when no `database_url` is given.
pub const DEFAULT_DATABASE_FILE: &str = "adms-bridge.db";

/// One setting: where it goes in the file (`devices.delay_secs`, or `listen` at the top) and the
/// variable that sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: &'static str,
    pub env: String,
}

/// Every setting, top-level keys first, then the sections in the order of [`FLAT_KEYS`].
pub fn settings() -> Vec<Setting> {
    let env = |name: &str| format!("ADMS_{}", name.to_ascii_uppercase());
    TOP_LEVEL_KEYS
        .iter()
        .map(|key| Setting { key, env: env(key) })
        .chain(FLAT_KEYS.iter().map(|(flat, key)| Setting { key, env: env(flat) }))
        .collect()
}

/// A setting's default as TOML (`None`: unset by default, or a secret).
pub fn default_value(key: &str) -> Option<toml::Value> {
    let defaults = toml::Value::try_from(Config::default()).ok()?;
    let value = match key.split_once('.') {
        Some((section, name)) => defaults.get(section)?.get(name)?,
        None => defaults.get(key)?,
    };
    (value.as_str() != Some("") || key != "database_url").then(|| value.clone())
}

/// What `serve --help` lists after its flags: every setting, its variable and its default.
pub fn settings_help() -> String {
    let mut text = String::from(
        "Settings (configuration file key, environment variable, default); a variable overrides the file, a flag \
         both:\n",
    );
    for setting in settings() {
        let key = match setting.key.split_once('.') {
            Some((section, name)) => format!("[{section}] {name}"),
            None => setting.key.to_owned(),
        };
        let default = match (default_value(setting.key), setting.key) {
            (_, "database_url") => "sqlite://<data_dir>/adms-bridge.db".to_owned(),
            (_, "data_dir") => "./data, or data beside the configuration file".to_owned(),
            (_, key) if SECRET_KEYS.contains(&key) => "unset (secret)".to_owned(),
            (Some(value), _) => value.to_string(),
            (None, _) => "unset".to_owned(),
        };
        text.push_str(&format!("  {key:<40} {:<40} {default}\n", setting.env));
    }
    text
}

/// A commented configuration file with every setting at its default (`adms-bridge config
/// example`): settings without a default are commented out with an example value.
pub fn example_toml() -> String {
    let mut text = String::from(
        "# adms-bridge configuration. Every setting is optional; each shows its environment variable (which\n\
         # overrides the file) and its default. Relative paths are relative to this file's folder.\n",
    );
    let mut section = "";
    for setting in settings() {
        let (this_section, name) = setting.key.split_once('.').unwrap_or(("", setting.key));
        if this_section != section {
            section = this_section;
            text.push_str(&format!("\n[{section}]\n"));
        }
        let example = match setting.key {
            "database_url" => Some("\"sqlite:///var/lib/adms-bridge/adms-bridge.db\" (or postgres://USER@HOST/DB)"),
            "data_dir" => Some("\"/var/lib/adms-bridge\""),
            "admin.user" => Some("\"admin\""),
            "admin.password" => Some("\"a long password\""),
            "devices.trust_keys" => Some("\"pairing-key-1,pairing-key-2\""),
            "devices.offline_after_secs" => Some("30"),
            "webhooks.url" => Some("\"https://erp.example.com/adms-webhooks\""),
            "webhooks.secret" => Some("\"whsec_...\""),
            "secrets.key" => Some("\"base64 of 32 bytes (adms-bridge secrets generate-key)\""),
            "secrets.key_file" => Some("\"/var/lib/adms-bridge/adms-bridge.db.key\""),
            _ => None,
        };
        match (default_value(setting.key), example) {
            (Some(value), _) if !SECRET_KEYS.contains(&setting.key) => {
                text.push_str(&format!("# {}\n{name} = {value}\n", setting.env));
            }
            (_, example) => {
                let default = match setting.key {
                    "database_url" => "adms-bridge.db in the data directory",
                    "data_dir" => "data beside this file",
                    "devices.offline_after_secs" => "3 x delay_secs, at least 30",
                    "secrets.key_file" => "<database file>.key",
                    key if SECRET_KEYS.contains(&key) => "unset (a secret: better set by its variable)",
                    _ => "unset",
                };
                let example = example.unwrap_or("\"\"");
                text.push_str(&format!("# {} (default: {default})\n# {name} = {example}\n", setting.env));
            }
        }
    }
    text
}

/// A `sqlite:` URL whose relative path is made relative to `folder` (other URLs unchanged).
fn sqlite_url_under(url: &str, folder: &Path) -> String {
    match adms_store::sqlite_file(url) {
        Some(path) if path.is_relative() => {
            let query = url.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
            format!("sqlite://{}{query}", folder.join(path).display())
        }
        _ => url.to_owned(),
    }
}

/// Which path settings the configuration file itself set.
#[derive(Debug, Default)]
struct FilePaths {
    data_dir: bool,
    database_url: bool,
    key_file: bool,
}

/// `ADMS_*` variables of the command line, not settings: the configuration file, the new key of
/// `secrets rekey`, the password of `user create|password`.
const NOT_SETTINGS: &[&str] = &["config", "new_secret_key", "user_password"];

/// A setting as an operator may have written it: its place in the file and its variable
/// (`[secrets] key` (ADMS_SECRET_KEY)).
fn describe_key(key: &str) -> String {
    match (FLAT_KEYS.iter().find(|(_, path)| *path == key), key.split_once('.')) {
        (Some((flat, _)), Some((section, name))) => {
            format!("`[{section}] {name}` ({})", format!("ADMS_{flat}").to_ascii_uppercase())
        }
        _ if key.contains(' ') => key.to_owned(),
        _ => format!("`{key}` ({})", format!("ADMS_{key}").to_ascii_uppercase()),
    }
}

/// The sectioned path of a flat setting name, if it has one.
fn sectioned(flat: &str) -> Option<&'static str> {
    FLAT_KEYS.iter().find(|(name, _)| *name == flat).map(|(_, path)| *path)
}

/// The configuration file's keys, with every flat key (one whose value is not a table) moved
/// into its section. Returns the flat keys found, to be warned about.
fn sectioned_file(mut file: Dict) -> Result<(Dict, Vec<String>), ConfigError> {
    let file_error = |message: String| ConfigError::Invalid { key: "configuration file", message };
    let mut deprecated = Vec::new();
    let flat: Vec<String> = file
        .iter()
        .filter(|(k, v)| !matches!(v, Value::Dict(..)) && sectioned(k).is_some())
        .map(|(k, _)| k.clone())
        .collect();
    for key in flat {
        let (Some(value), Some(path)) = (file.remove(&key), sectioned(&key)) else { continue };
        let (section, name) = path.split_once('.').unwrap_or((path, ""));
        let entry = file.entry(section.to_owned()).or_insert_with(|| Value::from(Dict::new()));
        let Value::Dict(_, section_table) = entry else {
            return Err(file_error(format!("`{section}` must be a section")));
        };
        if section_table.contains_key(name) {
            return Err(file_error(format!(
                "`{key}` and `[{section}] {name}` are the same setting: keep `[{section}] {name}`"
            )));
        }
        section_table.insert(name.to_owned(), value);
        deprecated.push(format!("`{key}` (now `[{section}] {name}`)"));
    }
    Ok((file, deprecated))
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration key {}: {message}", describe_key(key))]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Loads defaults, the file (if given), then `ADMS_*` variables. Also returns the flat keys
    /// the file still used (see [`FLAT_KEYS`]), for a warning once logging is set up.
    pub fn load(file: Option<&PathBuf>) -> Result<(Config, Vec<String>), ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let mut deprecated = Vec::new();
        let mut in_file = FilePaths::default();
        if let Some(path) = file {
            let data = Toml::file_exact(path).data().map_err(Box::new)?;
            let (sections, flat) = sectioned_file(data.into_values().next().unwrap_or_default())?;
            deprecated = flat;
            in_file = FilePaths {
                data_dir: sections.contains_key("data_dir"),
                database_url: sections.contains_key("database_url"),
                key_file: matches!(sections.get("secrets"), Some(Value::Dict(_, d)) if d.contains_key("key_file")),
            };
            figment = figment.merge(Serialized::defaults(sections));
        }
        // Only the documented variables (not the command line's). A variable keeps its flat
        // name; it sets the setting in its section.
        let env = Env::prefixed("ADMS_")
            .ignore(NOT_SETTINGS)
            .map(|key| sectioned(&key.as_str().to_ascii_lowercase()).map_or_else(|| key.into(), Into::into));
        figment = figment.merge(env);
        let mut config: Config = figment.extract().map_err(Box::new)?;
        // A relative path written in the file is relative to the file's folder (unless its
        // variable replaced it: that one is relative to the current folder).
        if let Some(folder) =
            file.and_then(|f| std::path::absolute(f).ok()).and_then(|f| f.parent().map(Path::to_owned))
        {
            let unset = |name: &str| std::env::var_os(name).is_none();
            if in_file.data_dir && unset("ADMS_DATA_DIR") {
                config.data_dir = config.data_dir.map(|dir| folder.join(dir));
            }
            if in_file.database_url && unset("ADMS_DATABASE_URL") {
                config.database_url = sqlite_url_under(&config.database_url, &folder);
            }
            if in_file.key_file && unset("ADMS_SECRET_KEY_FILE") {
                config.secrets.key_file = config.secrets.key_file.map(|path| folder.join(path));
            }
        }
        Ok((config, deprecated))
    }

    /// Makes every path absolute, once, at start: the data directory (given, else `data`
    /// beside the configuration file `file`, else `./data`), the database (empty: `adms-bridge.db`
    /// in the data directory) and the key file; what is still relative is relative to the
    /// current folder. After this, nothing depends on the folder the process runs in.
    pub fn resolve_paths(&mut self, file: Option<&Path>) -> Result<(), ConfigError> {
        let absolute = |key: &'static str, path: &Path| {
            std::path::absolute(path)
                .map_err(|e| ConfigError::Invalid { key, message: format!("{}: {e}", path.display()) })
        };
        let data_dir = match self.data_dir.take() {
            Some(dir) => dir,
            None => match file.and_then(|f| std::path::absolute(f).ok()).and_then(|f| f.parent().map(Path::to_owned)) {
                Some(folder) => folder.join("data"),
                None => PathBuf::from("data"),
            },
        };
        let data_dir = absolute("data_dir", &data_dir)?;
        let here = absolute("data_dir", Path::new("."))?;
        if self.database_url.trim().is_empty() {
            self.database_url = format!("sqlite://{}", data_dir.join(DEFAULT_DATABASE_FILE).display());
        } else {
            self.database_url = sqlite_url_under(&self.database_url, &here);
        }
        if let Some(path) = &self.secrets.key_file {
            self.secrets.key_file = Some(absolute("secrets.key_file", path)?);
        }
        if let Some(dir) = &self.capture.dir {
            self.capture.dir = Some(absolute("capture.dir", dir)?);
        }
        self.data_dir = Some(data_dir);
        Ok(())
    }

    /// The effective configuration as a TOML file in its sections: the database URL without
    /// its password, each secret that is set as `"[REDACTED]"`.
    pub fn to_redacted_toml(&self) -> Result<String, ConfigError> {
        let invalid = |e: &dyn std::fmt::Display| ConfigError::Invalid { key: "configuration", message: e.to_string() };
        let mut value = toml::Value::try_from(self).map_err(|e| invalid(&e))?;
        let table = value.as_table_mut().ok_or_else(|| invalid(&"not a table"))?;
        table.insert("database_url".into(), toml::Value::String(adms_store::redact_url(&self.database_url)));
        let secrets = [
            ("admin", "password", self.admin.password.is_some()),
            ("devices", "trust_keys", self.devices.trust_keys.is_some()),
            ("webhooks", "secret", self.webhooks.secret.is_some()),
            ("secrets", "key", self.secrets.key.is_some()),
        ];
        for (section, key, set) in secrets {
            if let (true, Some(toml::Value::Table(section))) = (set, table.get_mut(section)) {
                section.insert(key.into(), toml::Value::String("[REDACTED]".into()));
            }
        }
        toml::to_string(&value).map_err(|e| invalid(&e))
    }

    /// The defaults, then `ADMS_*` variables given as pairs, read as [`Config::load`] reads the
    /// environment: for an application built in process (the tests).
    pub fn from_variables<'a>(variables: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        for (name, value) in variables {
            let Some(key) = name.strip_prefix("ADMS_").map(str::to_ascii_lowercase) else { continue };
            if NOT_SETTINGS.contains(&key.as_str()) {
                continue;
            }
            let path = sectioned(&key).map_or(key.clone(), str::to_owned);
            // Parsed as figment parses an environment variable's value.
            let value: Value = value.parse().unwrap_or_else(|never| match never {});
            figment = figment.merge(Serialized::default(&path, value));
        }
        let mut config: Config = figment.extract().map_err(Box::new)?;
        config.resolve_paths(None)?;
        Ok(config)
    }

    /// `[devices] registrations_per_minute`, which must allow at least one.
    pub fn registrations_per_minute(&self) -> Result<std::num::NonZeroU32, ConfigError> {
        std::num::NonZeroU32::new(self.devices.registrations_per_minute).ok_or(ConfigError::Invalid {
            key: "devices.registrations_per_minute",
            message: "must be at least 1".into(),
        })
    }

    /// Checks values that would otherwise fail at the first request.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid { key, message: message.to_owned() };
        if crate::zones::parse_zone(&self.time_zone).is_none() {
            return Err(invalid("time_zone", "not an IANA zone name, a ±HH:MM offset or `auto`"));
        }
        if self.devices.delay_secs == 0 || self.devices.delay_secs > 3600 {
            return Err(invalid("devices.delay_secs", "must be 1 to 3600"));
        }
        if self.http.max_body_bytes < 64 * 1024 {
            return Err(invalid("http.max_body_bytes", "must be at least 65536"));
        }
        if self.login.session_ttl_secs < 60 {
            return Err(invalid("login.session_ttl_secs", "must be at least 60"));
        }
        if !(1..=64).contains(&self.login.hash_concurrency) {
            return Err(invalid("login.hash_concurrency", "must be 1 to 64"));
        }
        if self.login.hash_wait_ms > 60_000 {
            return Err(invalid("login.hash_wait_ms", "must be 0 to 60000"));
        }
        if !(60..=86_400).contains(&self.login.window_secs) {
            return Err(invalid("login.window_secs", "must be 60 to 86400"));
        }
        if !(1..=1000).contains(&self.login.user_failures) {
            return Err(invalid("login.user_failures", "must be 1 to 1000"));
        }
        if !(1..=100_000).contains(&self.login.address_failures) {
            return Err(invalid("login.address_failures", "must be 1 to 100000"));
        }
        if self.admin.user.is_some() != self.admin.password.is_some() {
            return Err(invalid("admin.password", "ADMS_ADMIN_USER and ADMS_ADMIN_PASSWORD go together"));
        }
        if self.devices.trans_times.contains(['\n', '\r']) || self.server_name.contains(['\n', '\r']) {
            return Err(invalid("devices.trans_times", "must be one line"));
        }
        self.webhook_address_policy()?;
        // What the device trust rules are built from (`device_trust`), checked here so that
        // configuration stays a leaf the other modules read.
        networks("devices.trust_networks", &self.devices.trust_networks)?;
        networks("devices.networks", &self.devices.networks)?;
        networks("http.trusted_proxies", &self.http.trusted_proxies)?;
        self.registrations_per_minute()?;
        if self.punch_window_start().is_none() {
            return Err(invalid("punches.time_min", "must be a date YYYY-MM-DD"));
        }
        if let Some(secret) = &self.webhooks.secret
            && secret.expose_secret().parse::<adms_webhooks::WebhookSecret>().is_err()
        {
            return Err(invalid("webhooks.secret", "must be whsec_ followed by base64 of 24 to 64 bytes"));
        }
        self.secret_key()?;
        if let Some(url) = &self.webhooks.url
            && adms_webhooks::Url::parse(url).map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
        {
            return Err(invalid("webhooks.url", "must be an http:// or https:// URL"));
        }
        if !(1..=120).contains(&self.webhooks.timeout_secs) {
            return Err(invalid("webhooks.timeout_secs", "must be 1 to 120"));
        }
        if self.offline_after_secs() <= self.devices.activity_flush_secs {
            // Other replicas' activity reaches the database only that often: a shorter threshold
            // would report devices offline that are polling another replica.
            return Err(invalid("devices.offline_after_secs", "must be longer than devices.activity_flush_secs"));
        }
        if !(1..=4096).contains(&self.webhooks.concurrency) {
            return Err(invalid("webhooks.concurrency", "must be 1 to 4096"));
        }
        if !(1..=200).contains(&self.commands.per_poll) {
            // 200 is what ZKTeco's own servers send at most.
            return Err(invalid("commands.per_poll", "must be 1 to 200"));
        }
        if !(1024..=2_000_000).contains(&self.commands.poll_bytes) {
            return Err(invalid("commands.poll_bytes", "must be 1024 to 2000000 (MaxPackageSize)"));
        }
        if self.commands.resend_secs < 10 {
            return Err(invalid("commands.resend_secs", "must be at least 10"));
        }
        if !(1..=100).contains(&self.commands.max_sends) {
            return Err(invalid("commands.max_sends", "must be 1 to 100"));
        }
        if !(1..=3600).contains(&self.http.header_read_timeout_secs) {
            return Err(invalid("http.header_read_timeout_secs", "must be 1 to 3600"));
        }
        if self.commands.ttl_secs < 60 {
            return Err(invalid("commands.ttl_secs", "must be at least 60"));
        }
        if self.roster.reconcile_secs != 0 && self.roster.reconcile_secs < 60 {
            return Err(invalid("roster.reconcile_secs", "must be 0 (only at start) or at least 60"));
        }
        Ok(())
    }

    /// How the command queue hands out, re-sends and expires commands.
    pub fn command_policy(&self, default_time_zone: &str) -> adms_store::CommandPolicy {
        adms_store::CommandPolicy {
            max_per_poll: self.commands.per_poll,
            max_poll_bytes: self.commands.poll_bytes,
            resend_after_micros: i64::try_from(self.commands.resend_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX),
            max_sends: i64::from(self.commands.max_sends),
            default_time_zone: default_time_zone.to_owned(),
        }
    }

    /// The earliest accepted punch time, from `[punches] time_min`.
    pub fn punch_window_start(&self) -> Option<adms_protocol::LocalDateTime> {
        adms_protocol::LocalDateTime::parse(format!("{} 00:00:00", self.punches.time_min.trim()).as_bytes())
    }

    /// How logins are bounded and throttled.
    pub fn login_limits(&self) -> LoginLimits {
        LoginLimits {
            hash_concurrency: self.login.hash_concurrency,
            hash_wait: std::time::Duration::from_millis(self.login.hash_wait_ms),
            window: std::time::Duration::from_secs(self.login.window_secs),
            per_user: self.login.user_failures,
            per_address: self.login.address_failures,
        }
    }

    /// Where webhook requests may go. The bridge's own listener is added once the socket is
    /// bound (its port may be chosen by the OS).
    pub fn webhook_address_policy(&self) -> Result<adms_webhooks::AddressPolicy, ConfigError> {
        let allow_list = self
            .webhooks
            .allow_list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|range| {
                range.parse().map_err(|_| ConfigError::Invalid {
                    key: "webhooks.allow_list",
                    message: format!("`{range}` is not a CIDR range"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(adms_webhooks::AddressPolicy {
            allow_private: self.webhooks.allow_private,
            allow_list,
            own_listeners: Vec::new(),
        })
    }

    /// The master key for secrets at rest, when configured.
    pub fn secret_key(&self) -> Result<Option<adms_webhooks::SecretKey>, ConfigError> {
        self.secrets
            .key
            .as_ref()
            .map(|text| {
                let text = text.expose_secret();
                text.parse().map_err(|error: adms_webhooks::SealError| ConfigError::Invalid {
                    key: "secrets.key",
                    message: error.to_string(),
                })
            })
            .transpose()
    }

    pub fn offline_after_secs(&self) -> u64 {
        self.devices.offline_after_secs.unwrap_or((u64::from(self.devices.delay_secs) * 3).max(30))
    }
}

/// The login throttle's limits (`auth::throttle`), from the configuration.
#[derive(Debug, Clone)]
pub struct LoginLimits {
    /// Password checks running at once.
    pub hash_concurrency: usize,
    /// How long a login waits for a free check slot before 429.
    pub hash_wait: std::time::Duration,
    /// The window failures are counted in.
    pub window: std::time::Duration,
    /// Failures per (username, address) in a window before its lock-out.
    pub per_user: u32,
    /// Failures per address in a window before its lock-out.
    pub per_address: u32,
}

/// The items of a comma-separated setting, trimmed, empty ones skipped.
pub(crate) fn comma_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// A comma-separated list of CIDR ranges or single addresses (setting `key`).
pub fn networks(key: &'static str, list: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    comma_list(list)
        .map(|range| {
            range
                .parse::<ipnet::IpNet>()
                .or_else(|_| range.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| ConfigError::Invalid { key, message: format!("`{range}` is not a CIDR range or address") })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_file(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("adms-bridge.toml");
        std::fs::write(&path, text).expect("the file is written");
        Config::load(Some(&path))
    }

    #[test]
    fn a_sectioned_file_sets_its_sections() {
        let (config, flat) = load_file(
            "time_zone = \"+05:30\"\n\
             [devices]\nunknown = \"auto\"\ndelay_secs = 20\n\
             [webhooks]\ntimeout_secs = 7\nallow_list = \"127.0.0.1/32\"\n\
             [log]\nformat = \"json\"\n",
        )
        .expect("the file loads");
        assert!(flat.is_empty(), "{flat:?}");
        assert_eq!(config.time_zone, "+05:30");
        assert_eq!(config.devices.unknown, UnknownDevicePolicy::Auto);
        assert_eq!(config.devices.delay_secs, 20);
        assert_eq!(config.webhooks.timeout_secs, 7);
        assert_eq!(config.webhooks.allow_list, "127.0.0.1/32");
        assert_eq!(config.log.format, "json");
        assert_eq!(config.log.filter, "info", "what the file does not set keeps its default");
    }

    #[test]
    fn flat_keys_of_an_older_file_land_in_their_sections_and_are_reported() {
        let (config, flat) =
            load_file("unknown_devices = \"auto\"\nwebhook_timeout_secs = 9\nlog = \"debug\"\ncommands_per_poll = 5\n")
                .expect("the file loads");
        assert_eq!(config.devices.unknown, UnknownDevicePolicy::Auto);
        assert_eq!(config.webhooks.timeout_secs, 9);
        assert_eq!(config.log.filter, "debug");
        assert_eq!(config.commands.per_poll, 5);
        let mut flat = flat;
        flat.sort();
        assert_eq!(
            flat,
            [
                "`commands_per_poll` (now `[commands] per_poll`)",
                "`log` (now `[log] filter`)",
                "`unknown_devices` (now `[devices] unknown`)",
                "`webhook_timeout_secs` (now `[webhooks] timeout_secs`)",
            ]
        );
    }

    #[test]
    fn variables_keep_their_flat_names_and_set_their_sections() {
        let config = Config::from_variables([
            ("ADMS_WEBHOOK_TIMEOUT_SECS", "9"),
            ("ADMS_UNKNOWN_DEVICES", "auto"),
            ("ADMS_LOG", "debug"),
            ("ADMS_ADMIN_PASSWORD", "a long password"),
            ("ADMS_TIME_ZONE", "+01:00"),
            ("ADMS_CONFIG", "ignored.toml"),
            ("HOME", "/root"),
        ])
        .expect("the variables load");
        assert_eq!(config.webhooks.timeout_secs, 9);
        assert_eq!(config.devices.unknown, UnknownDevicePolicy::Auto);
        assert_eq!(config.log.filter, "debug");
        assert_eq!(config.admin.password.as_ref().map(ExposeSecret::expose_secret), Some("a long password"));
        assert_eq!(config.time_zone, "+01:00");
        assert!(Config::from_variables([("ADMS_NO_SUCH_SETTING", "1")]).is_err(), "a typo is refused");
    }

    #[test]
    fn an_invalid_setting_is_named_as_written_in_the_file_and_the_environment() {
        let config = Config::from_variables([("ADMS_WEBHOOK_TIMEOUT_SECS", "0")]).expect("the variables load");
        let error = config.validate().expect_err("0 s is refused").to_string();
        assert!(error.contains("`[webhooks] timeout_secs` (ADMS_WEBHOOK_TIMEOUT_SECS)"), "{error}");
        let config = Config::from_variables([("ADMS_TIME_ZONE", "Mars/Olympus")]).expect("the variables load");
        let error = config.validate().expect_err("no such zone").to_string();
        assert!(error.contains("`time_zone` (ADMS_TIME_ZONE)"), "{error}");
    }

    #[test]
    fn one_setting_given_both_ways_is_refused() {
        let error = load_file("webhook_timeout_secs = 9\n[webhooks]\ntimeout_secs = 7\n").expect_err("ambiguous");
        assert!(error.to_string().contains("keep `[webhooks] timeout_secs`"), "{error}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let error = load_file("[webhooks]\ntimeout = 7\n").expect_err("a typo");
        assert!(error.to_string().contains("timeout"), "{error}");
    }

    #[test]
    fn every_flat_key_names_a_setting_that_exists() {
        let defaults = serde_json::to_value(Config::default()).expect("serialisable");
        for (flat, path) in FLAT_KEYS {
            let (section, name) = path.split_once('.').expect("a section and a name");
            let secret = matches!(*path, "admin.password" | "devices.trust_keys" | "webhooks.secret" | "secrets.key");
            assert!(
                secret || defaults[section].get(name).is_some(),
                "{flat} -> {path} is not a setting (secrets are not serialised)"
            );
        }
    }

    #[test]
    fn the_example_file_names_every_setting_and_loads_as_the_defaults() {
        let example = example_toml();
        let (config, flat) = load_file(&example).expect("the example loads");
        assert!(flat.is_empty(), "{flat:?}");
        assert_eq!(
            serde_json::to_value(&config).expect("serialisable"),
            serde_json::to_value(Config::default()).expect("serialisable"),
            "the example sets every setting to its default"
        );
        for setting in settings() {
            let name = setting.key.rsplit('.').next().expect("a name");
            assert!(example.contains(&format!("# {}", setting.env)), "{} missing", setting.env);
            assert!(example.contains(&format!("{name} = ")), "{} missing", setting.key);
        }
        // The table covers every setting the configuration has.
        let defaults = serde_json::to_value(Config::default()).expect("serialisable");
        for (key, value) in defaults.as_object().expect("an object") {
            match value.as_object() {
                Some(section) => {
                    for name in section.keys() {
                        let path = format!("{key}.{name}");
                        assert!(FLAT_KEYS.iter().any(|(_, p)| *p == path), "{path} has no variable in FLAT_KEYS");
                    }
                }
                None => assert!(TOP_LEVEL_KEYS.contains(&key.as_str()), "{key} is not in TOP_LEVEL_KEYS"),
            }
        }
    }

    #[test]
    fn relative_paths_of_the_file_are_relative_to_its_folder_and_the_defaults_to_the_data_directory() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("adms-bridge.toml");
        std::fs::write(&path, "[secrets]\nkey_file = \"keys/master.key\"\n").expect("written");
        let (mut config, _) = Config::load(Some(&path)).expect("loads");
        config.resolve_paths(Some(&path)).expect("resolves");
        let folder = std::path::absolute(dir.path()).expect("absolute");
        assert_eq!(config.data_dir.as_deref(), Some(folder.join("data").as_path()));
        assert_eq!(config.database_url, format!("sqlite://{}", folder.join("data/adms-bridge.db").display()));
        assert_eq!(config.secrets.key_file.as_deref(), Some(folder.join("keys/master.key").as_path()));

        std::fs::write(&path, "database_url = \"sqlite://db/bridge.db?mode=rwc\"\ndata_dir = \"state\"\n")
            .expect("written");
        let (mut config, _) = Config::load(Some(&path)).expect("loads");
        config.resolve_paths(Some(&path)).expect("resolves");
        assert_eq!(config.data_dir.as_deref(), Some(folder.join("state").as_path()));
        assert_eq!(config.database_url, format!("sqlite://{}?mode=rwc", folder.join("db/bridge.db").display()));

        let mut config = Config { data_dir: Some("/srv/adms".into()), ..Config::default() };
        config.resolve_paths(None).expect("resolves");
        assert_eq!(config.database_url, "sqlite:///srv/adms/adms-bridge.db");
        let mut config = Config::default();
        config.resolve_paths(None).expect("resolves");
        let here = std::path::absolute("data").expect("absolute");
        assert_eq!(config.database_url, format!("sqlite://{}/adms-bridge.db", here.display()));
        let mut config = Config { database_url: "postgres://u:pw@h/db".into(), ..Config::default() };
        config.resolve_paths(None).expect("resolves");
        assert_eq!(config.database_url, "postgres://u:pw@h/db", "other URLs are left alone");
    }

    #[test]
    fn the_printed_configuration_is_sectioned_toml_without_secrets() {
        let (mut config, _) = load_file(
            "database_url = \"postgres://bridge:db-password@db.example/adms\"\n\
             [admin]\nuser = \"admin\"\npassword = \"hunter2-password\"\n\
             [devices]\ntrust_keys = \"pairing-key\"\ndelay_secs = 20\n",
        )
        .expect("the file loads");
        config.resolve_paths(None).expect("resolves");
        let printed = config.to_redacted_toml().expect("printable");
        for secret in ["hunter2", "pairing-key", "db-password"] {
            assert!(!printed.contains(secret), "{secret} printed: {printed}");
        }
        assert!(printed.contains("[devices]") && printed.contains("delay_secs = 20"), "{printed}");
        assert!(printed.contains("password = \"[REDACTED]\""), "{printed}");
        let parsed: toml::Value = printed.parse().expect("the print is TOML");
        assert_eq!(parsed["admin"]["user"].as_str(), Some("admin"));
    }

    #[test]
    fn secrets_never_reach_a_debug_print() {
        let (config, _) = load_file(
            "[admin]\nuser = \"admin\"\npassword = \"hunter2-password\"\n\
             [webhooks]\nsecret = \"whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0\"\n\
             [secrets]\nkey = \"a2V5LWtleS1rZXkta2V5LWtleS1rZXkta2V5LWtleS0=\"\n\
             [devices]\ntrust_keys = \"pairing-key\"\n",
        )
        .expect("the file loads");
        let printed = format!("{config:?}");
        for secret in ["hunter2", "whsec_c2Vj", "a2V5LWtleS", "pairing-key"] {
            assert!(!printed.contains(secret), "{secret} printed: {printed}");
        }
        assert!(printed.contains("admin"), "the rest is printed: {printed}");
    }
}
