//! `adms-bridge user …`: API accounts.

use std::io::Write as _;

use anyhow::Context as _;

use adms_server::Config;
use adms_server::api::auth::hash_password;
use adms_store::{ROLES, Store, StoreError, UserChange};

/// Passwords are read from ADMS_USER_PASSWORD, or else from one line of standard input, so that
/// they appear neither on the command line nor in a prompt that scripts cannot answer.
#[derive(Debug, clap::Subcommand)]
pub enum UserAction {
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

pub async fn run(action: UserAction, config: &Config) -> anyhow::Result<()> {
    let store = super::open_existing(config).await?;
    let outcome = user_command(&store, action).await;
    store.close().await;
    outcome
}

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
            super::audit(store, "user create", &name).await;
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
            super::audit(store, "user disable", &name).await;
            writeln!(stdout, "disabled '{name}'")?;
        }
        UserAction::Delete { name } => {
            let id = user_id(store, &name).await?;
            store.delete_user(id).await.map_err(last_admin)?;
            super::audit(store, "user delete", &name).await;
            writeln!(stdout, "deleted '{name}'")?;
        }
        UserAction::Password { name } => {
            let id = user_id(store, &name).await?;
            let change = UserChange { password_hash: Some(new_password_hash().await?), ..UserChange::default() };
            store.update_user(id, &change).await.map_err(last_admin)?;
            super::audit(store, "user password", &name).await;
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
