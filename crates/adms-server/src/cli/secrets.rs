//! `adms-bridge secrets generate-key|rekey`.

use std::io::Write as _;

use adms_server::Config;

#[derive(Debug, clap::Subcommand)]
pub enum SecretsAction {
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

pub fn generate_key() -> anyhow::Result<()> {
    writeln!(std::io::stdout(), "{}", adms_webhooks::SecretKey::generate().to_base64())?;
    Ok(())
}

pub async fn run(action: SecretsAction, config: &Config) -> anyhow::Result<()> {
    let new_key = match action {
        SecretsAction::GenerateKey => return generate_key(),
        SecretsAction::Rekey { new_key } => new_key,
    };
    config.validate()?;
    // The current key: ADMS_SECRET_KEY, else the key file when there is one.
    let key_file = adms_server::vault::default_key_file(config).filter(|path| path.exists());
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
    let store = super::open_existing(config).await?;
    let done = adms_server::app::rekey_stored_secrets(&store, current.as_ref(), &new).await?;
    // Columns before settings: the key check moves to the new key last, once every value opens
    // with it.
    let columns = adms_server::vault::rekey_columns(&store, current.as_ref(), &new).await?;
    let settings = adms_server::vault::rekey_server_settings(&store, current.as_ref(), &new).await?;
    store.close().await;
    let mut stdout = std::io::stdout();
    writeln!(
        stdout,
        "re-sealed {} signing secrets ({} already under the new key), {} stored values ({} already) and {} server \
         secrets",
        done.resealed, done.already, columns.sealed, columns.already, settings.resealed
    )?;
    match (config.secrets.key.is_some(), key_file) {
        (false, Some(path)) => {
            adms_server::vault::replace_key_file(&path, &new)?;
            writeln!(stdout, "the key file {} now holds the new key; back it up again", path.display())?;
        }
        _ => writeln!(stdout, "start the server with the new ADMS_SECRET_KEY")?,
    }
    Ok(())
}
