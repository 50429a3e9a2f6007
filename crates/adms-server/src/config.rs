//! Configuration: built-in defaults, then an optional TOML file, then `ADMS_*` environment
//! variables, then command-line flags. Validated once at start so a bad value fails the boot
//! with a message naming the key, never the first request.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
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

/// Every setting of the server.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `sqlite://PATH` (created if missing) or `postgres://USER@HOST/DB`.
    pub database_url: String,
    /// Bootstrap API account, created or updated at start. A new password ends the account's
    /// session tokens and JWTs; a new name disables the account of the previous name (and ends
    /// its tokens). Replicas must be started with the same pair.
    pub admin_user: Option<String>,
    pub admin_password: Option<String>,
    /// Default device time zone: an IANA name, a fixed offset like `+05:30`, or `auto` (the
    /// server's zone). Devices are told this zone in the handshake, so their clocks follow it.
    pub time_zone: String,
    /// Policy for unknown serial numbers (`pending` by default; `auto` approves everyone).
    pub unknown_devices: UnknownDevicePolicy,
    /// Trust rules that approve a new serial number on first contact under `pending`. Every
    /// rule that is set must hold (none set: nothing is approved automatically).
    /// SN patterns, comma-separated, `*` and `?` as wildcards (`CKJF*,A8N5??????`).
    pub device_trust_sns: String,
    /// CIDR ranges, comma-separated: the new device's address must be in one.
    pub device_trust_networks: String,
    /// Registration keys, comma-separated: the new device must present one as `pushcommkey` or
    /// `key` in its request's query string.
    pub device_trust_keys: String,
    /// CIDR ranges, comma-separated: when set, device requests (`/iclock/*`) from any other
    /// address are refused (403) and nothing they send is stored.
    pub device_networks: String,
    /// New serial numbers registered per client address and minute at most; more answer 429.
    pub device_registrations_per_minute: u32,
    /// What device-reported users and templates may change in the roster.
    pub device_users: DeviceUserPolicy,
    /// Whether an adopted device user may be (or become) an administrator on the terminals.
    pub device_users_allow_admin: bool,
    /// Earliest punch time accepted (`YYYY-MM-DD`, the device's local time); earlier punches are
    /// kept as rejected lines (`implausible_time`).
    pub punch_time_min: String,
    /// How far past the device's current time a punch may lie (seconds); later punches are kept
    /// as rejected lines (`implausible_time`).
    pub punch_time_max_ahead_secs: u64,
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
    /// Largest accepted request body (bytes). Devices send up to ~2 MB; backlogs arrive in
    /// 128-line posts.
    pub max_body_bytes: usize,
    /// Bytes of raw data (bodies of unknown tables, `querydata`, unrecognised paths, OPERLOG
    /// records of unknown kinds) one device may store per UTC day; 0: no quota. Punches and
    /// users are never limited.
    pub device_raw_quota_bytes_per_day: u64,
    /// Bytes of photos (attendance photos, user photos) one device may store per UTC day; 0:
    /// no quota.
    pub device_photo_quota_bytes_per_day: u64,
    /// Whole-request timeout (slow clients get 408).
    pub request_timeout_secs: u64,
    /// Time a connection may take to send a request's headers, counted from when it starts
    /// waiting for them, so it also closes idle keep-alive connections. Longer than the
    /// devices' poll interval, so their keep-alive connections are reused.
    pub header_read_timeout_secs: u64,
    /// Lifetime of login session tokens and JWTs.
    pub session_ttl_secs: u64,
    /// Password checks (argon2, ~19 MiB each) running at once, server-wide; this bounds the
    /// memory a burst of logins can take.
    pub login_hash_concurrency: usize,
    /// How long a login waits for a free password check before 429 (`Retry-After: 1`).
    pub login_hash_wait_ms: u64,
    /// The window failed logins are counted in, from a key's first failure; a lock-out lasts
    /// until it ends.
    pub login_window_secs: u64,
    /// Failed logins per (username, client address) in a window before that pair is locked
    /// out (429 without a password check, even with the right password). From the third,
    /// each failure also makes the pair wait 2, 4, 8 … (at most 60) s before its next try.
    /// The same user from another address is not affected.
    pub login_user_failures: u32,
    /// Failed logins per client address (any username; IPv6 by /64) in a window before the
    /// address is locked out.
    pub login_address_failures: u32,
    /// `ServerName` sent to devices.
    pub server_name: String,
    /// How often in-memory device activity is written to the database.
    pub activity_flush_secs: u64,
    /// Log filter (`info`, `adms_server=debug`, ...); `RUST_LOG` wins when set.
    pub log: String,
    /// Log format: `text` or `json`.
    pub log_format: String,
    /// One endpoint that receives every event type, managed from the environment.
    pub webhook_url: Option<String>,
    /// Its `whsec_` secret; generated and printed once when absent.
    pub webhook_secret: Option<String>,
    /// Allow webhook endpoints on private networks: RFC 1918, carrier-grade NAT, IPv6
    /// unique-local (the single-site install, where the ERP sits on the same network). It does
    /// not open loopback or link-local addresses, and cloud metadata addresses stay refused
    /// regardless.
    pub webhook_allow_private: bool,
    /// CIDR ranges allowed even when otherwise refused, comma-separated; the only way to open
    /// loopback (an ERP on the bridge's own host: `127.0.0.1/32`). The bridge's own listening
    /// address stays refused even when listed.
    pub webhook_allow_list: String,
    /// Master key sealing secrets at rest (webhook signing secrets, the JWT signing key): base64
    /// of 32 bytes. Without it, the key file (`secret_key_file`) is used.
    pub secret_key: Option<String>,
    /// A file holding the master key (the same base64 text), read when `secret_key` is not
    /// set. Default: `<database file>.key`, generated (mode 0600) on the first start of a
    /// database that has nothing sealed yet.
    pub secret_key_file: Option<std::path::PathBuf>,
    /// Webhook requests in flight at most.
    pub webhook_concurrency: usize,
    /// Whole-request timeout of a webhook attempt.
    pub webhook_timeout_secs: u64,
    /// Commands handed out per poll at most.
    pub commands_per_poll: usize,
    /// Bytes of command lines per poll at most (a single bigger command is sent alone).
    pub command_poll_bytes: usize,
    /// A sent command without a result after this many seconds is sent again.
    pub command_resend_secs: u64,
    /// Times a command is sent without a result before it expires.
    pub command_max_sends: u32,
    /// Default lifetime of a queued command (not delivered or answered by then: expired).
    pub command_ttl_secs: u64,
    /// Seconds between passes that plan every approved terminal against the roster (one also
    /// runs at start); 0 runs only the one at start.
    pub roster_reconcile_secs: u64,
    /// Test switch: the webhook clock can be moved forward through the API, to walk retry
    /// schedules of days in seconds. Never enable in production.
    pub test_clock: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8081)),
            database_url: "sqlite://data/adms-bridge.db".into(),
            admin_user: None,
            admin_password: None,
            time_zone: "auto".into(),
            unknown_devices: UnknownDevicePolicy::Pending,
            device_trust_sns: String::new(),
            device_trust_networks: String::new(),
            device_trust_keys: String::new(),
            device_networks: String::new(),
            device_registrations_per_minute: 30,
            device_users: DeviceUserPolicy::Observe,
            device_users_allow_admin: false,
            punch_time_min: "2000-01-01".into(),
            punch_time_max_ahead_secs: 86_400,
            delay_secs: 10,
            error_delay_secs: 30,
            trans_interval_min: 1,
            trans_times: "00:00;14:05".into(),
            realtime: true,
            offline_after_secs: None,
            max_body_bytes: 32 * 1024 * 1024,
            device_raw_quota_bytes_per_day: 16 * 1024 * 1024,
            device_photo_quota_bytes_per_day: 256 * 1024 * 1024,
            request_timeout_secs: 120,
            header_read_timeout_secs: 75,
            session_ttl_secs: 8 * 3600,
            login_hash_concurrency: 2,
            login_hash_wait_ms: 2000,
            login_window_secs: 900,
            login_user_failures: 5,
            login_address_failures: 20,
            server_name: "adms-bridge".into(),
            activity_flush_secs: 5,
            log: "info".into(),
            log_format: "text".into(),
            webhook_url: None,
            webhook_secret: None,
            webhook_allow_private: true,
            webhook_allow_list: String::new(),
            secret_key: None,
            secret_key_file: None,
            webhook_concurrency: 64,
            webhook_timeout_secs: 15,
            commands_per_poll: 50,
            command_poll_bytes: 64 * 1024,
            command_resend_secs: 120,
            command_max_sends: 3,
            command_ttl_secs: 7 * 86_400,
            roster_reconcile_secs: 900,
            test_clock: false,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &adms_store::redact_url(&self.database_url))
            .field("admin_user", &self.admin_user)
            .field("admin_password", &self.admin_password.as_ref().map(|_| "***"))
            .field("time_zone", &self.time_zone)
            .field("unknown_devices", &self.unknown_devices)
            .field("device_trust_sns", &self.device_trust_sns)
            .field("device_trust_networks", &self.device_trust_networks)
            .field("device_trust_keys", &(!self.device_trust_keys.is_empty()).then_some("***"))
            .field("device_networks", &self.device_networks)
            .field("device_users", &self.device_users)
            .field("delay_secs", &self.delay_secs)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("device_raw_quota_bytes_per_day", &self.device_raw_quota_bytes_per_day)
            .field("device_photo_quota_bytes_per_day", &self.device_photo_quota_bytes_per_day)
            .field("login_hash_concurrency", &self.login_hash_concurrency)
            .field("login_user_failures", &self.login_user_failures)
            .field("login_address_failures", &self.login_address_failures)
            .field("webhook_url", &self.webhook_url)
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "***"))
            .field("webhook_allow_private", &self.webhook_allow_private)
            .field("commands_per_poll", &self.commands_per_poll)
            .field("command_resend_secs", &self.command_resend_secs)
            .field("command_ttl_secs", &self.command_ttl_secs)
            .field("roster_reconcile_secs", &self.roster_reconcile_secs)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "***"))
            .field("secret_key_file", &self.secret_key_file)
            .finish_non_exhaustive()
    }
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Loads defaults, the file (if given), then `ADMS_*` variables.
    pub fn load(file: Option<&PathBuf>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        // Only the documented variables; the command-line ones (ADMS_CONFIG, ADMS_NEW_SECRET_KEY of
        // `secrets rekey`, ADMS_USER_PASSWORD of `user create|password`) are not keys.
        figment = figment.merge(Env::prefixed("ADMS_").ignore(&["config", "new_secret_key", "user_password"]));
        let config: Config = figment.extract().map_err(Box::new)?;
        Ok(config)
    }

    /// `device_registrations_per_minute`, which must allow at least one.
    pub fn registrations_per_minute(&self) -> Result<std::num::NonZeroU32, ConfigError> {
        std::num::NonZeroU32::new(self.device_registrations_per_minute).ok_or(ConfigError::Invalid {
            key: "device_registrations_per_minute",
            message: "must be at least 1".into(),
        })
    }

    /// Checks values that would otherwise fail at the first request.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid { key, message: message.to_owned() };
        if crate::zones::parse_zone(&self.time_zone).is_none() {
            return Err(invalid("time_zone", "not an IANA zone name, a ±HH:MM offset or `auto`"));
        }
        if self.delay_secs == 0 || self.delay_secs > 3600 {
            return Err(invalid("delay_secs", "must be 1 to 3600"));
        }
        if self.max_body_bytes < 64 * 1024 {
            return Err(invalid("max_body_bytes", "must be at least 65536"));
        }
        if self.session_ttl_secs < 60 {
            return Err(invalid("session_ttl_secs", "must be at least 60"));
        }
        if !(1..=64).contains(&self.login_hash_concurrency) {
            return Err(invalid("login_hash_concurrency", "must be 1 to 64"));
        }
        if self.login_hash_wait_ms > 60_000 {
            return Err(invalid("login_hash_wait_ms", "must be 0 to 60000"));
        }
        if !(60..=86_400).contains(&self.login_window_secs) {
            return Err(invalid("login_window_secs", "must be 60 to 86400"));
        }
        if !(1..=1000).contains(&self.login_user_failures) {
            return Err(invalid("login_user_failures", "must be 1 to 1000"));
        }
        if !(1..=100_000).contains(&self.login_address_failures) {
            return Err(invalid("login_address_failures", "must be 1 to 100000"));
        }
        if self.admin_user.is_some() != self.admin_password.is_some() {
            return Err(invalid("admin_password", "ADMS_ADMIN_USER and ADMS_ADMIN_PASSWORD go together"));
        }
        if self.trans_times.contains(['\n', '\r']) || self.server_name.contains(['\n', '\r']) {
            return Err(invalid("trans_times", "must be one line"));
        }
        self.webhook_address_policy()?;
        // What the device trust rules are built from (`device::trust`), checked here so that
        // configuration stays a leaf the other modules read.
        networks("device_trust_networks", &self.device_trust_networks)?;
        networks("device_networks", &self.device_networks)?;
        self.registrations_per_minute()?;
        if self.punch_window_start().is_none() {
            return Err(invalid("punch_time_min", "must be a date YYYY-MM-DD"));
        }
        if let Some(secret) = &self.webhook_secret
            && secret.parse::<adms_webhooks::WebhookSecret>().is_err()
        {
            return Err(invalid("webhook_secret", "must be whsec_ followed by base64 of 24 to 64 bytes"));
        }
        self.secret_key()?;
        if let Some(url) = &self.webhook_url
            && adms_webhooks::Url::parse(url).map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
        {
            return Err(invalid("webhook_url", "must be an http:// or https:// URL"));
        }
        if !(1..=120).contains(&self.webhook_timeout_secs) {
            return Err(invalid("webhook_timeout_secs", "must be 1 to 120"));
        }
        if self.offline_after_secs() <= self.activity_flush_secs {
            // Other replicas' activity reaches the database only that often: a shorter threshold
            // would report devices offline that are polling another replica.
            return Err(invalid("offline_after_secs", "must be longer than activity_flush_secs"));
        }
        if !(1..=4096).contains(&self.webhook_concurrency) {
            return Err(invalid("webhook_concurrency", "must be 1 to 4096"));
        }
        if !(1..=200).contains(&self.commands_per_poll) {
            // 200 is what ZKTeco's own servers send at most.
            return Err(invalid("commands_per_poll", "must be 1 to 200"));
        }
        if !(1024..=2_000_000).contains(&self.command_poll_bytes) {
            return Err(invalid("command_poll_bytes", "must be 1024 to 2000000 (MaxPackageSize)"));
        }
        if self.command_resend_secs < 10 {
            return Err(invalid("command_resend_secs", "must be at least 10"));
        }
        if !(1..=100).contains(&self.command_max_sends) {
            return Err(invalid("command_max_sends", "must be 1 to 100"));
        }
        if !(1..=3600).contains(&self.header_read_timeout_secs) {
            return Err(invalid("header_read_timeout_secs", "must be 1 to 3600"));
        }
        if self.command_ttl_secs < 60 {
            return Err(invalid("command_ttl_secs", "must be at least 60"));
        }
        if self.roster_reconcile_secs != 0 && self.roster_reconcile_secs < 60 {
            return Err(invalid("roster_reconcile_secs", "must be 0 (only at start) or at least 60"));
        }
        Ok(())
    }

    /// How the command queue hands out, re-sends and expires commands.
    pub fn command_policy(&self, default_time_zone: &str) -> adms_store::CommandPolicy {
        adms_store::CommandPolicy {
            max_per_poll: self.commands_per_poll,
            max_poll_bytes: self.command_poll_bytes,
            resend_after_micros: i64::try_from(self.command_resend_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX),
            max_sends: i64::from(self.command_max_sends),
            default_time_zone: default_time_zone.to_owned(),
        }
    }

    /// The earliest accepted punch time, from `punch_time_min`.
    pub fn punch_window_start(&self) -> Option<adms_protocol::LocalDateTime> {
        adms_protocol::LocalDateTime::parse(format!("{} 00:00:00", self.punch_time_min.trim()).as_bytes())
    }

    /// How logins are bounded and throttled.
    pub fn login_limits(&self) -> LoginLimits {
        LoginLimits {
            hash_concurrency: self.login_hash_concurrency,
            hash_wait: std::time::Duration::from_millis(self.login_hash_wait_ms),
            window: std::time::Duration::from_secs(self.login_window_secs),
            per_user: self.login_user_failures,
            per_address: self.login_address_failures,
        }
    }

    /// Where webhook requests may go. The bridge's own listener is added once the socket is
    /// bound (its port may be chosen by the OS).
    pub fn webhook_address_policy(&self) -> Result<adms_webhooks::AddressPolicy, ConfigError> {
        let allow_list = self
            .webhook_allow_list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|range| {
                range.parse().map_err(|_| ConfigError::Invalid {
                    key: "webhook_allow_list",
                    message: format!("`{range}` is not a CIDR range"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(adms_webhooks::AddressPolicy {
            allow_private: self.webhook_allow_private,
            allow_list,
            own_listeners: Vec::new(),
        })
    }

    /// The master key for secrets at rest, when configured.
    pub fn secret_key(&self) -> Result<Option<adms_webhooks::SecretKey>, ConfigError> {
        self.secret_key
            .as_deref()
            .map(|text| {
                text.parse().map_err(|error: adms_webhooks::SealError| ConfigError::Invalid {
                    key: "secret_key",
                    message: error.to_string(),
                })
            })
            .transpose()
    }

    pub fn offline_after_secs(&self) -> u64 {
        self.offline_after_secs.unwrap_or((u64::from(self.delay_secs) * 3).max(30))
    }
}

/// The login throttle's limits (`api::throttle`), from the configuration.
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
pub(crate) fn networks(key: &'static str, list: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    comma_list(list)
        .map(|range| {
            range
                .parse::<ipnet::IpNet>()
                .or_else(|_| range.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| ConfigError::Invalid { key, message: format!("`{range}` is not a CIDR range or address") })
        })
        .collect()
}
