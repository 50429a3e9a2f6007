//! `adms-bridge`: the command line. Errors are reported with `anyhow` here and nowhere else.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use adms_server::api::auth::{Scope, Scopes, hash_password, new_token};
use adms_server::{Application, Config, telemetry};
use adms_store::{Approval, NewAuditEntry, ROLES, Store, StoreError, StoreOptions, UserChange, now_micros, sha256};

/// A server for ZKTeco ADMS / iClock push terminals with a ZKBio Time-compatible API.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (every key is optional).
    #[arg(long, global = true, env = "ADMS_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL: `sqlite://PATH` (the default, created if missing) or
    /// `postgres://USER@HOST/DB` (the database must exist; needs ADMS_SECRET_KEY).
    #[arg(long, global = true, env = "ADMS_DATABASE_URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on (`127.0.0.1:0` picks a free port and prints it).
        #[arg(long, env = "ADMS_LISTEN")]
        listen: Option<SocketAddr>,
    },
    /// Long-lived API keys for integrations (work as `Authorization: Token <key>`).
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// API accounts and their roles (admin, operator, viewer).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Device administration.
    Device {
        #[command(subcommand)]
        action: DeviceAction,
    },
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
    /// Webhook signing secrets at rest.
    Secrets {
        #[command(subcommand)]
        action: SecretsAction,
    },
}

#[derive(Debug, Subcommand)]
enum SecretsAction {
    /// Print a new random master key (base64 of 32 bytes), for ADMS_SECRET_KEY.
    GenerateKey,
    /// Re-seal every stored signing secret under a new master key. Stop every adms-bridge
    /// process on the database first, then start them with the new key as ADMS_SECRET_KEY. The
    /// current key is ADMS_SECRET_KEY (unset: the secrets are stored unencrypted). Safe to run
    /// again if it was interrupted.
    Rekey {
        /// The new key, base64 of 32 random bytes; better passed as ADMS_NEW_SECRET_KEY than on
        /// the command line, where other users can see it.
        #[arg(long, env = "ADMS_NEW_SECRET_KEY", hide_env_values = true)]
        new_key: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Create a key; it is printed once and stored only as a hash.
    Create {
        #[arg(long)]
        name: String,
        /// A scope the key gets (repeat for several): read, roster:write, devices:control,
        /// webhooks:admin, admin. Without any: read only.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// List keys (never the keys themselves) with their scopes.
    List,
    /// Revoke a key by id or name.
    Revoke { id_or_name: String },
}

/// Passwords are read from ADMS_USER_PASSWORD, or else from one line of standard input, so that
/// they appear neither on the command line nor in a prompt that scripts cannot answer.
#[derive(Debug, Subcommand)]
enum UserAction {
    /// Create an account.
    Create {
        name: String,
        /// admin, operator or viewer.
        #[arg(long)]
        role: String,
    },
    /// List accounts.
    List,
    /// Disable an account (ends its sessions and JWTs).
    Disable { name: String },
    /// Delete an account.
    Delete { name: String },
    /// Set a new password (ends the account's sessions and JWTs).
    Password { name: String },
}

#[derive(Debug, Subcommand)]
enum DeviceAction {
    /// Release a pending device's data.
    Approve { sn: String },
}

/// The configuration, and the flat keys its file still used (for a warning).
fn load_config(cli: &Cli) -> anyhow::Result<(Config, Vec<String>)> {
    let (mut config, flat_keys) = Config::load(cli.config.as_ref())?;
    if let Some(url) = &cli.database_url {
        config.database_url.clone_from(url);
    }
    Ok((config, flat_keys))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (mut config, flat_keys) = load_config(&cli)?;
    telemetry::init(&config.log.filter, &config.log.format);
    if !flat_keys.is_empty() {
        tracing::warn!(
            keys = %flat_keys.join(", "),
            "the configuration file uses flat keys; they are read into their sections for this release only: move them"
        );
    }
    match cli.command {
        Command::Serve { listen } => {
            if let Some(listen) = listen {
                config.listen = listen;
            }
            let app = Application::build(config).await.context("starting adms-bridge")?;
            let addr = app.local_addr()?;
            let mut stdout = std::io::stdout();
            writeln!(stdout, "listening on http://{addr}")?;
            stdout.flush()?;
            tracing::info!(%addr, "adms-bridge started");
            app.run_until_stopped(shutdown_signal()).await?;
        }
        Command::Token { action } => {
            config.validate()?;
            let store = Store::open(&config.database_url, StoreOptions::default()).await?;
            let mut stdout = std::io::stdout();
            match action {
                TokenAction::Create { name, scopes } => {
                    anyhow::ensure!(!name.trim().is_empty() && name.len() <= 100, "--name must be 1 to 100 characters");
                    let mut parsed = Vec::new();
                    for scope in &scopes {
                        parsed.push(Scope::parse(scope).with_context(|| {
                            format!(
                                "unknown scope '{scope}' (read, roster:write, devices:control, webhooks:admin, admin)"
                            )
                        })?);
                    }
                    // Least privilege: a key given no scope may only read.
                    if parsed.is_empty() {
                        parsed.push(Scope::Read);
                    }
                    let scopes = Scopes::of(&parsed).to_list();
                    let token = new_token();
                    let id = store.create_integration_token(&name, &sha256(token.as_bytes()), &scopes).await?;
                    audit_cli(&store, "token create", &name).await;
                    writeln!(stdout, "{token}")?;
                    eprintln!("integration key #{id} '{name}' ({scopes}) created; it is shown only once");
                }
                TokenAction::List => {
                    for t in store.list_tokens().await? {
                        let state = if t.revoked_at.is_some() { "revoked" } else { "active" };
                        writeln!(stdout, "{}\t{}\t{}\t{}", t.id, t.name, state, t.scopes)?;
                    }
                }
                TokenAction::Revoke { id_or_name } => {
                    let n = store.revoke_token(&id_or_name).await?;
                    anyhow::ensure!(n > 0, "no active integration key with id or name '{id_or_name}'");
                    audit_cli(&store, "token revoke", &id_or_name).await;
                    writeln!(stdout, "revoked {n}")?;
                }
            }
            store.close().await;
        }
        Command::Secrets { action: SecretsAction::GenerateKey } => {
            println!("{}", adms_webhooks::SecretKey::generate().to_base64());
        }
        Command::Secrets { action: SecretsAction::Rekey { new_key } } => {
            config.validate()?;
            // The current key: ADMS_SECRET_KEY, else the key file when there is one.
            let key_file = adms_server::vault::default_key_file(&config).filter(|path| path.exists());
            let current = match (config.secret_key()?, &key_file) {
                (Some(key), _) => Some(key),
                (None, Some(path)) => Some(
                    std::fs::read_to_string(path)?
                        .parse::<adms_webhooks::SecretKey>()
                        .map_err(|error| anyhow::anyhow!("key file {}: {error}", path.display()))?,
                ),
                (None, None) => None,
            };
            let new: adms_webhooks::SecretKey =
                new_key.parse().map_err(|error| anyhow::anyhow!("new key (ADMS_NEW_SECRET_KEY): {error}"))?;
            let store = Store::open(&config.database_url, StoreOptions::default()).await?;
            let done = adms_server::app::rekey_stored_secrets(&store, current.as_ref(), &new).await?;
            // Columns before settings: the key check moves to the new key last, once every
            // value opens with it.
            let columns = adms_server::vault::rekey_columns(&store, current.as_ref(), &new).await?;
            let settings = adms_server::vault::rekey_server_settings(&store, current.as_ref(), &new).await?;
            store.close().await;
            let mut stdout = std::io::stdout();
            writeln!(
                stdout,
                "re-sealed {} signing secrets ({} already under the new key), {} stored values ({} already) and {} \
                 server secrets",
                done.resealed, done.already, columns.sealed, columns.already, settings.resealed
            )?;
            match (config.secrets.key.is_some(), key_file) {
                (false, Some(path)) => {
                    adms_server::vault::replace_key_file(&path, &new)?;
                    writeln!(stdout, "the key file {} now holds the new key; back it up again", path.display())?;
                }
                _ => writeln!(stdout, "start the server with the new ADMS_SECRET_KEY")?,
            }
        }
        Command::User { action } => {
            config.validate()?;
            let store = Store::open(&config.database_url, StoreOptions::default()).await?;
            let outcome = user_command(&store, action).await;
            store.close().await;
            outcome?;
        }
        Command::MigrateData { from, to } => {
            let source = Store::open(&from, StoreOptions::default()).await.context("opening the source")?;
            let target = Store::open(&to, StoreOptions::default()).await.context("opening the target")?;
            let mut last_table = String::new();
            let report = source
                .migrate_data_to(&target, |table, rows| {
                    if table != last_table || rows % 100_000 < 2_000 {
                        eprintln!("{table}: {rows} rows");
                        last_table = table.to_owned();
                    }
                })
                .await
                .context("copying")?;
            let mut out = std::io::stdout();
            for (table, rows, _) in &report.tables {
                writeln!(out, "{table:<22} {rows:>12}")?;
            }
            writeln!(out, "verified: every table's row count, and the punch checksum {}", report.punch_checksum)?;
            source.close().await;
            target.close().await;
        }
        Command::Device { action: DeviceAction::Approve { sn } } => {
            let store = Store::open(&config.database_url, StoreOptions::default()).await?;
            anyhow::ensure!(store.set_approval(&sn, Approval::Approved).await?, "no device with SN '{sn}'");
            audit_cli(&store, "device approve", &sn).await;
            writeln!(std::io::stdout(), "approved {sn}")?;
            store.close().await;
        }
    }
    Ok(())
}

/// Runs a `user` command.
async fn user_command(store: &Store, action: UserAction) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout();
    let last_admin = |error: StoreError| match error {
        StoreError::Conflict(reason) => anyhow::anyhow!("refused: {reason}"),
        other => other.into(),
    };
    match action {
        UserAction::Create { name, role } => {
            let name = name.trim().to_owned();
            anyhow::ensure!(!name.is_empty() && name.chars().count() <= 150, "the name must be 1 to 150 characters");
            anyhow::ensure!(ROLES.contains(&role.as_str()), "--role must be one of {}", ROLES.join(", "));
            let hash = new_password_hash().await?;
            let user = store.create_user(&name, &hash, &role).await?.with_context(|| format!("'{name}' exists"))?;
            audit_cli(store, "user create", &name).await;
            writeln!(stdout, "created #{} '{}' ({})", user.id, user.username, user.role)?;
        }
        UserAction::List => {
            for u in store.list_users().await? {
                let state = if u.disabled_at.is_some() { "disabled" } else { "enabled" };
                writeln!(stdout, "{}\t{}\t{}\t{}", u.id, u.username, u.role, state)?;
            }
        }
        UserAction::Disable { name } => {
            let id = user_id(store, &name).await?;
            let change = UserChange { disabled: Some(true), ..UserChange::default() };
            store.update_user(id, &change).await.map_err(last_admin)?;
            audit_cli(store, "user disable", &name).await;
            writeln!(stdout, "disabled '{name}'")?;
        }
        UserAction::Delete { name } => {
            let id = user_id(store, &name).await?;
            store.delete_user(id).await.map_err(last_admin)?;
            audit_cli(store, "user delete", &name).await;
            writeln!(stdout, "deleted '{name}'")?;
        }
        UserAction::Password { name } => {
            let id = user_id(store, &name).await?;
            let change = UserChange { password_hash: Some(new_password_hash().await?), ..UserChange::default() };
            store.update_user(id, &change).await.map_err(last_admin)?;
            audit_cli(store, "user password", &name).await;
            writeln!(stdout, "password of '{name}' changed; its sessions are ended")?;
        }
    }
    Ok(())
}

async fn user_id(store: &Store, name: &str) -> anyhow::Result<i64> {
    Ok(store.user_by_name(name).await?.with_context(|| format!("no account named '{name}'"))?.id)
}

/// The password from ADMS_USER_PASSWORD or one line of standard input, hashed (argon2, on
/// the blocking pool).
async fn new_password_hash() -> anyhow::Result<String> {
    let password = match std::env::var("ADMS_USER_PASSWORD") {
        Ok(password) => password,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
            line.trim_end_matches(['\n', '\r']).to_owned()
        }
    };
    let length = password.chars().count();
    anyhow::ensure!(
        (8..=1024).contains(&length),
        "the password must be 8 to 1024 characters (ADMS_USER_PASSWORD or stdin)"
    );
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await?
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

/// Records a change made from the command line. Like the server's, a failed write is
/// reported, not fatal: the change itself is already committed.
async fn audit_cli(store: &Store, command: &str, target: &str) {
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

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = terminate => {} }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
