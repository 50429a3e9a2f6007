//! The commands of the `adms-bridge` binary, one file per family: `serve`, `config`, `token`,
//! `user`, `device`, `database` (backup, restore, migrate-data) and `secrets`.
//!
//! Every command but `serve`, `migrate-data` and `restore` works on a database that exists: a
//! SQLite file that is missing is an error ([`open_existing`]), never created by accident in
//! whatever folder the command ran in.

mod capture;
mod config;
mod database;
mod device;
mod local_http;
mod probe;
mod secrets;
mod serve;
mod token;
mod user;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use adms_server::{Config, telemetry};
use adms_store::{NewAuditEntry, Store, StoreOptions, now_micros};

/// A server for ZKTeco ADMS / iClock push terminals with a ZKBio Time-compatible API.
#[derive(Debug, Parser)]
#[command(name = "adms-bridge", version, about)]
struct Cli {
    /// TOML configuration file (every key is optional; `adms-bridge config example` prints one).
    /// Relative paths in it are relative to its folder.
    #[arg(long, global = true, env = "ADMS_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL: `sqlite://PATH` or `postgres://USER@HOST/DB` (the database must exist;
    /// needs ADMS_SECRET_KEY). Default: adms-bridge.db in the data directory.
    #[arg(long, global = true, env = "ADMS_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The folder of the default database and its key file. Default: `data` beside the
    /// configuration file, or `./data` without one.
    #[arg(long, global = true, env = "ADMS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(serve::Serve),
    /// The configuration: the effective one, or an example file.
    Config {
        #[command(subcommand)]
        action: config::ConfigAction,
    },
    /// Long-lived API keys for integrations (work as `Authorization: Token <key>`), and CVSecurity
    /// API clients (`--kind cvsecurity`: the `access_token` of the CVSecurity-compatible paths).
    Token {
        #[command(subcommand)]
        action: token::TokenAction,
    },
    /// API accounts and their roles (admin, operator, viewer).
    User {
        #[command(subcommand)]
        action: user::UserAction,
    },
    /// Device administration.
    Device {
        #[command(subcommand)]
        action: device::DeviceAction,
    },
    /// Copy the SQLite database to PATH while the server runs (a consistent snapshot, checked
    /// with SQLite's integrity check). PATH must not exist. PostgreSQL: use pg_dump. The master
    /// key file is not part of the copy: keep its backup apart.
    Backup { path: PathBuf },
    /// Replace the SQLite database with a backup made by `backup`. Stop the server first (a
    /// database in use is refused); the replaced database is kept as `<database>.before-restore`.
    Restore { path: PathBuf },
    /// Copy a bridge's data from SQLite to PostgreSQL: devices, punches (ids and seq kept),
    /// events and deliveries, commands, roster, users, tokens, secrets (still sealed: start the
    /// PostgreSQL servers with the same ADMS_SECRET_KEY or key file contents). Stop every
    /// process on both databases first. Safe to run again: it finishes an interrupted copy or
    /// catches up, and verifies row counts and a checksum of the punches.
    MigrateData {
        /// The source, `sqlite://PATH`.
        #[arg(long)]
        from: String,
        /// The target, `postgres://USER@HOST/DB` (the database must exist; it is migrated).
        #[arg(long)]
        to: String,
    },
    /// Record one device's traffic on a running server for a while (`POST /api/v1/capture`).
    Capture(capture::Capture),
    /// Exit 0 when the server's `/readyz` answers 200, 1 otherwise (a container health check).
    Probe(probe::Probe),
    /// Webhook signing secrets at rest.
    Secrets {
        #[command(subcommand)]
        action: secrets::SecretsAction,
    },
}

/// Parses the command line, loads the configuration and runs the command.
pub async fn run() -> anyhow::Result<()> {
    let command =
        Cli::command().mut_subcommand("serve", |serve| serve.after_help(adms_server::config::settings_help()));
    let cli = Cli::from_arg_matches(&command.get_matches())?;
    // What needs no configuration works whatever the configuration says.
    match &cli.command {
        Command::Config { action: config::ConfigAction::Example } => return config::example(),
        Command::Secrets { action: secrets::SecretsAction::GenerateKey } => return secrets::generate_key(),
        _ => {}
    }
    let (config, flat_keys) = load_config(&cli)?;
    telemetry::init(&config.log.filter, &config.log.format);
    if !flat_keys.is_empty() {
        tracing::warn!(
            keys = %flat_keys.join(", "),
            "the configuration file uses flat keys; they are read into their sections for this release only: move them"
        );
    }
    match cli.command {
        Command::Serve(serve) => serve.run(config).await,
        Command::Config { action } => config::run(action, &config),
        Command::Token { action } => token::run(action, &config).await,
        Command::User { action } => user::run(action, &config).await,
        Command::Device { action } => device::run(action, &config).await,
        Command::Backup { path } => database::backup(&config, &path).await,
        Command::Restore { path } => database::restore(&config, &path).await,
        Command::MigrateData { from, to } => database::migrate_data(&from, &to).await,
        Command::Secrets { action } => secrets::run(action, &config).await,
        Command::Capture(capture) => capture.run(&config).await,
        Command::Probe(probe) => probe.run(&config).await,
    }
}

/// The configuration: defaults, the file, `ADMS_*` variables, then the flags, with its paths
/// made absolute. Also returns the flat keys the file still used (for a warning).
fn load_config(cli: &Cli) -> anyhow::Result<(Config, Vec<String>)> {
    let (mut config, flat_keys) = Config::load(cli.config.as_ref())?;
    if let Some(url) = &cli.database_url {
        config.database_url.clone_from(url);
    }
    if let Some(dir) = &cli.data_dir {
        config.data_dir = Some(dir.clone());
    }
    config.resolve_paths(cli.config.as_deref())?;
    Ok((config, flat_keys))
}

/// Where the database is, for messages: the SQLite file, or the URL without its password.
pub fn database_name(config: &Config) -> String {
    match adms_store::sqlite_file(&config.database_url) {
        Some(path) => path.display().to_string(),
        None => adms_store::redact_url(&config.database_url),
    }
}

/// Opens the configured database, which must exist: a missing SQLite file is an error, not a
/// new empty database. Pending migrations run (after the backup `backup_before_migrate` asks
/// for).
pub async fn open_existing(config: &Config) -> anyhow::Result<Store> {
    config.validate()?;
    if let Some(path) = adms_store::sqlite_file(&config.database_url)
        && !path.exists()
    {
        anyhow::bail!(
            "no database at {}: start `adms-bridge serve` once to create it, or name the database with --data-dir, \
             --database-url or --config",
            path.display()
        );
    }
    let options = StoreOptions { backup_before_migrate: config.backup_before_migrate, ..StoreOptions::default() };
    let store = Store::open(&config.database_url, options)
        .await
        .with_context(|| format!("opening the database {}", database_name(config)))?;
    if let Some(path) = store.migration_backup() {
        eprintln!("the database had pending migrations: it was backed up to {} first", path.display());
    }
    Ok(store)
}

/// Records a change made from the command line. Like the server's, a failed write is
/// reported, not fatal: the change itself is already committed.
pub async fn audit(store: &Store, command: &str, target: &str) {
    let entry = NewAuditEntry {
        at: now_micros(),
        actor: "cli".to_owned(),
        actor_kind: "cli",
        user_id: None,
        token_id: None,
        method: "CLI".to_owned(),
        route: command.to_owned(),
        target: Some(target.to_owned()),
        status: None,
        address: None,
    };
    if let Err(error) = store.record_audit(&entry).await {
        eprintln!("warning: audit entry for '{command} {target}' not written: {error}");
    }
}

/// A stored instant (µs) as UTC to the second, or `-`.
pub fn when(micros: Option<i64>) -> String {
    micros
        .and_then(|us| jiff::Timestamp::from_second(us.div_euclid(1_000_000)).ok())
        .map_or_else(|| "-".to_owned(), |t| t.to_string())
}
