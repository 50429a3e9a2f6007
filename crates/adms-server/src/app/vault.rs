//! The master key, and the server-wide secrets sealed under it.
//!
//! The key comes from `ADMS_SECRET_KEY`, else from a key file (`secret_key_file`, default
//! `<database file>.key`). On the first start of a database with nothing sealed yet and no key
//! configured, a key file is generated (mode 0600) and the server says where: from then on
//! every secret is sealed, and the key file must be backed up apart from the database (a stolen
//! backup of the database alone reveals no secret; a lost key file loses every secret).
//!
//! A sealed check value in `server_settings` ties the database to its key: a process started
//! with another key (or none) refuses to start instead of failing later at every use.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use adms_store::Store;
use adms_vault::{IndexKey, Vault};
use adms_webhooks::sealing::{self, SecretKey};

use super::StartupError;
use crate::config::Config;

/// `server_settings` key of the check value.
const KEY_CHECK: &str = "master_key_check";
/// `server_settings` key of the JWT signing key.
pub const JWT_KEY: &str = "jwt_hs256_key";
/// `server_settings` key of the keyed digests' key (see `adms_vault::IndexKey`).
pub const INDEX_KEY: &str = "blind_index_key";
/// Associated-data kind of values sealed in `server_settings`.
pub const SETTING: &str = "adms-bridge server setting";
const KEY_CHECK_TEXT: &str = "adms-bridge master key";

/// Where the master key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `ADMS_SECRET_KEY` / `secret_key`.
    Config,
    /// Read from this file.
    File(PathBuf),
    /// Generated into this file at this start.
    Generated(PathBuf),
}

/// The key file used when `secret_key_file` is not set: beside the database.
pub fn default_key_file(config: &Config) -> Option<PathBuf> {
    config.secrets.key_file.clone().or_else(|| {
        adms_store::database_path(&config.database_url).map(|db| {
            let mut name = db.as_os_str().to_owned();
            name.push(".key");
            PathBuf::from(name)
        })
    })
}

fn read_key_file(path: &Path) -> Result<SecretKey, StartupError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| StartupError::Other(format!("master key file {}: {e}", path.display())))?;
    text.parse().map_err(|e| StartupError::Other(format!("master key file {}: {e}", path.display())))
}

/// Writes a new key file, mode 0600, failing if one appeared meanwhile (another process starting
/// on the same database generated it: the caller then reads that one).
///
/// The key is written whole to a file of this process first and then linked at `path`, which
/// fails if `path` exists: replicas starting together on a fresh database never read a key file
/// another one is still writing (they saw it empty), and exactly one key wins.
fn create_key_file(path: &Path, key: &SecretKey) -> std::io::Result<()> {
    place_private_file(path, &format!("{}\n", key.to_base64()), |draft, path| std::fs::hard_link(draft, path))
}

/// Writes `text` whole to a draft of this process beside `path` (mode 0600, synced), then hands
/// the draft to `place` (a link that fails if `path` exists, or a rename over it), so `path`
/// never exists half written or with other permissions. The draft is removed either way.
pub(super) fn place_private_file(
    path: &Path,
    text: &str,
    place: impl FnOnce(&Path, &Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut draft = path.as_os_str().to_owned();
    draft.push(format!(".{}.draft", std::process::id()));
    let draft = std::path::PathBuf::from(draft);
    // A draft left by a crashed process that had this pid.
    let _ = std::fs::remove_file(&draft);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&draft)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        place(&draft, path)
    })();
    let _ = std::fs::remove_file(&draft);
    written
}

/// Whether anything in the database needs a master key to open.
async fn anything_sealed(store: &Store) -> Result<bool, StartupError> {
    if store.server_setting(KEY_CHECK).await?.is_some() {
        return Ok(true);
    }
    if store.server_setting(JWT_KEY).await?.is_some_and(|v| sealing::is_sealed(&String::from_utf8_lossy(&v))) {
        return Ok(true);
    }
    Ok(store.stored_secrets().await?.iter().any(|row| sealing::is_sealed(&row.secret)))
}

/// The master key of this start, generating the key file when the database has nothing sealed
/// and no key is configured. `None` only for an in-memory database without a configured key.
/// PostgreSQL has no file beside which a key could be generated, and its replicas must share
/// one: there the key must be configured.
pub async fn master_key(config: &Config, store: &Store) -> Result<Option<(SecretKey, KeySource)>, StartupError> {
    if let Some(key) = config.secret_key()? {
        return Ok(Some((key, KeySource::Config)));
    }
    if store.engine() == adms_store::Engine::Postgres && config.secrets.key_file.is_none() {
        return Err(StartupError::Other(
            "a PostgreSQL database needs a master key that every replica shares: set ADMS_SECRET_KEY (or \
             secret_key_file); `adms-bridge secrets generate-key` prints a new one"
                .into(),
        ));
    }
    let Some(path) = default_key_file(config) else { return Ok(None) };
    if path.exists() {
        return Ok(Some((read_key_file(&path)?, KeySource::File(path))));
    }
    if config.secrets.key_file.is_some() || anything_sealed(store).await? {
        // Another process starting on this database may have generated the key file since we
        // looked: it links the file before it seals anything, so once its seal is visible here,
        // so is its file.
        if path.exists() {
            return Ok(Some((read_key_file(&path)?, KeySource::File(path))));
        }
        // A named file that is missing, or a database sealed under a key nobody gave us:
        // generating one now would only make the secrets unreadable for good.
        return Err(StartupError::Other(format!(
            "the database's secrets are sealed with a master key, but none is configured: set ADMS_SECRET_KEY \
             or put the key file at {}",
            path.display()
        )));
    }
    let key = SecretKey::generate();
    match create_key_file(&path, &key) {
        Ok(()) => Ok(Some((key, KeySource::Generated(path)))),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(Some((read_key_file(&path)?, KeySource::File(path))))
        }
        Err(e) => Err(StartupError::Other(format!("cannot write the master key file {}: {e}", path.display()))),
    }
}

/// Refuses a key that is not the database's: the check value must open. A database without one
/// gets it now (sealed under this key).
pub async fn check_master_key(store: &Store, key: &SecretKey) -> Result<(), StartupError> {
    match store.server_setting(KEY_CHECK).await? {
        Some(stored) => {
            let opened = key.open_for(SETTING, KEY_CHECK, &String::from_utf8_lossy(&stored));
            if opened.as_deref() != Ok(KEY_CHECK_TEXT) {
                return Err(StartupError::Other(
                    "the master key does not open this database's secrets (another ADMS_SECRET_KEY or key file \
                     than the one it was sealed with)"
                        .into(),
                ));
            }
        }
        None => {
            let sealed = key.seal_for(SETTING, KEY_CHECK, KEY_CHECK_TEXT);
            store.shared_secret(KEY_CHECK, || sealed.into_bytes()).await?;
        }
    }
    Ok(())
}

/// The JWT signing key shared by every replica: created on first use, stored sealed. A key
/// stored in the clear by an earlier version is sealed in place.
pub async fn jwt_signing_key(store: &Store, key: Option<&SecretKey>) -> Result<Vec<u8>, StartupError> {
    let fresh: [u8; 32] = rand::random();
    let candidate = match key {
        Some(key) => key.seal_for(SETTING, JWT_KEY, &hex::encode(fresh)).into_bytes(),
        None => fresh.to_vec(),
    };
    let stored = store.shared_secret(JWT_KEY, || candidate).await?;
    let text = String::from_utf8_lossy(&stored);
    if sealing::is_sealed(&text) {
        let key = key.ok_or_else(|| StartupError::Other(sealing::SealError::NoKey.to_string()))?;
        let opened = key.open_for(SETTING, JWT_KEY, &text).map_err(|e| StartupError::Other(e.to_string()))?;
        return hex::decode(opened).map_err(|_| StartupError::Other("the stored JWT signing key is damaged".into()));
    }
    if let Some(key) = key {
        let sealed = key.seal_for(SETTING, JWT_KEY, &hex::encode(&stored));
        store.replace_server_setting(JWT_KEY, &stored, sealed.as_bytes()).await?;
        tracing::info!("JWT signing key sealed with the master key");
    }
    Ok(stored)
}

/// The database's index key: generated on first use, stored sealed under `key`.
pub async fn index_key(store: &Store, key: &SecretKey) -> Result<IndexKey, StartupError> {
    let candidate = key.seal_for(SETTING, INDEX_KEY, &IndexKey::generate().to_base64()).into_bytes();
    let stored = store.shared_secret(INDEX_KEY, || candidate).await?;
    let opened = key
        .open_for(SETTING, INDEX_KEY, &String::from_utf8_lossy(&stored))
        .map_err(|e| StartupError::Other(format!("{INDEX_KEY}: {e}")))?;
    IndexKey::from_base64(&opened).map_err(|e| StartupError::Other(format!("{INDEX_KEY}: {e}")))
}

/// Seals the store's columns with `key` from now on, and seals what an earlier version (or a
/// start without a key) left in the clear.
pub async fn seal_store(store: &Store, key: &SecretKey) -> Result<(), StartupError> {
    let vault = Vault::new(key.clone(), index_key(store, key).await?);
    store.seal_with(vault)?;
    let done = store.seal_plaintext_columns().await?;
    if done.sealed > 0 {
        tracing::info!(values = done.sealed, "personal data and credentials stored in the clear are now sealed");
    }
    Ok(())
}

/// Re-seals every sealed column under `new` (see `Store::reseal_columns`); the index key is
/// kept (so no digest changes) and re-sealed with the other settings by
/// [`rekey_server_settings`], which must run after this.
pub async fn rekey_columns(
    store: &Store,
    current: Option<&SecretKey>,
    new: &SecretKey,
) -> Result<adms_store::sealed::Resealed, StartupError> {
    // The index key opens with the current key, or (a run interrupted after the settings were
    // re-sealed) with the new one; a database never sealed gets one now.
    let index = match current {
        Some(current) => match index_key(store, current).await {
            Ok(index) => index,
            Err(_) => index_key(store, new).await?,
        },
        None => index_key(store, new).await?,
    };
    let from = current.map(|key| Vault::new(key.clone(), index.clone()));
    let to = Vault::new(new.clone(), index);
    Ok(store.reseal_columns(from.as_ref(), &to).await?)
}

/// What [`rekey_server_settings`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RekeyedSettings {
    pub resealed: usize,
}

/// Re-seals the sealed server settings (the key check, the JWT signing key) under `new`,
/// opening them with `current`; a setting already under `new` is left alone.
pub async fn rekey_server_settings(
    store: &Store,
    current: Option<&SecretKey>,
    new: &SecretKey,
) -> Result<RekeyedSettings, StartupError> {
    let mut done = RekeyedSettings { resealed: 0 };
    for name in [KEY_CHECK, JWT_KEY, INDEX_KEY] {
        let Some(stored) = store.server_setting(name).await? else { continue };
        let text = String::from_utf8_lossy(&stored).into_owned();
        let plain = if sealing::is_sealed(&text) {
            if new.open_for(SETTING, name, &text).is_ok() {
                continue;
            }
            let current = current.ok_or_else(|| StartupError::Other(sealing::SealError::NoKey.to_string()))?;
            current.open_for(SETTING, name, &text).map_err(|e| StartupError::Other(format!("{name}: {e}")))?
        } else {
            hex::encode(&stored)
        };
        if !store.replace_server_setting(name, &stored, new.seal_for(SETTING, name, &plain).as_bytes()).await? {
            return Err(StartupError::Other(format!(
                "{name} changed while being re-keyed: is a server still running on this database?"
            )));
        }
        done.resealed += 1;
    }
    Ok(done)
}

/// Replaces the key file with `new` (written beside it, then renamed over it, mode 0600).
pub fn replace_key_file(path: &Path, new: &SecretKey) -> Result<(), StartupError> {
    let temporary = path.with_extension("key.new");
    let _ = std::fs::remove_file(&temporary);
    create_key_file(&temporary, new)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| StartupError::Other(format!("cannot replace the master key file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_key_file_sits_beside_the_database() {
        let mut config = Config { database_url: "sqlite:///var/lib/adms/adms.db".into(), ..Config::default() };
        assert_eq!(default_key_file(&config), Some(PathBuf::from("/var/lib/adms/adms.db.key")));
        config.secrets.key_file = Some("/etc/adms/master.key".into());
        assert_eq!(default_key_file(&config), Some(PathBuf::from("/etc/adms/master.key")));
        config.secrets.key_file = None;
        config.database_url = "sqlite::memory:".into();
        assert_eq!(default_key_file(&config), None);
    }
}
