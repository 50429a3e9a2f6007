//! `adms-bridge`: the command line. Errors are reported with `anyhow` here and nowhere else.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use adms_server::api::auth::new_token;
use adms_server::{Application, Config, telemetry};
use adms_store::{Approval, Store, StoreOptions, TokenKind, sha256};

/// A server for ZKTeco ADMS / iClock push terminals with a ZKBio Time-compatible API.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (every key is optional).
    #[arg(long, global = true, env = "ADMS_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL (`sqlite://PATH`).
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
    /// Device administration.
    Device {
        #[command(subcommand)]
        action: DeviceAction,
    },
    /// Webhook signing secrets at rest.
    Secrets {
        #[command(subcommand)]
        action: SecretsAction,
    },
}

#[derive(Debug, Subcommand)]
enum SecretsAction {
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
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key by id or name.
    Revoke { id_or_name: String },
}

#[derive(Debug, Subcommand)]
enum DeviceAction {
    /// Release a pending device's data.
    Approve { sn: String },
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::load(cli.config.as_ref())?;
    if let Some(url) = &cli.database_url {
        config.database_url.clone_from(url);
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = load_config(&cli)?;
    telemetry::init(&config.log, &config.log_format);
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
                TokenAction::Create { name } => {
                    anyhow::ensure!(!name.trim().is_empty() && name.len() <= 100, "--name must be 1 to 100 characters");
                    let token = new_token();
                    let id = store
                        .create_token(TokenKind::Integration, None, &name, &sha256(token.as_bytes()), None)
                        .await?;
                    writeln!(stdout, "{token}")?;
                    eprintln!("integration key #{id} '{name}' created; it is shown only once");
                }
                TokenAction::List => {
                    for t in store.list_tokens().await? {
                        let state = if t.revoked_at.is_some() { "revoked" } else { "active" };
                        writeln!(stdout, "{}\t{}\t{}", t.id, t.name, state)?;
                    }
                }
                TokenAction::Revoke { id_or_name } => {
                    let n = store.revoke_token(&id_or_name).await?;
                    anyhow::ensure!(n > 0, "no active integration key with id or name '{id_or_name}'");
                    writeln!(stdout, "revoked {n}")?;
                }
            }
            store.close().await;
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
            let settings = adms_server::vault::rekey_server_settings(&store, current.as_ref(), &new).await?;
            store.close().await;
            let mut stdout = std::io::stdout();
            writeln!(
                stdout,
                "re-sealed {} signing secrets ({} already under the new key) and {} server secrets",
                done.resealed, done.already, settings.resealed
            )?;
            match (config.secret_key.is_some(), key_file) {
                (false, Some(path)) => {
                    adms_server::vault::replace_key_file(&path, &new)?;
                    writeln!(stdout, "the key file {} now holds the new key; back it up again", path.display())?;
                }
                _ => writeln!(stdout, "start the server with the new ADMS_SECRET_KEY")?,
            }
        }
        Command::Device { action: DeviceAction::Approve { sn } } => {
            let store = Store::open(&config.database_url, StoreOptions::default()).await?;
            anyhow::ensure!(store.set_approval(&sn, Approval::Approved).await?, "no device with SN '{sn}'");
            writeln!(std::io::stdout(), "approved {sn}")?;
            store.close().await;
        }
    }
    Ok(())
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
