//! What every store story starts from: a store on a fresh SQLite file, sealed as every server
//! with a database file runs it (so each story also reads and writes through the seal).

use std::path::PathBuf;

use adms_store::{BiometricTemplate, Store, StoreOptions, UserRow};
use adms_vault::{IndexKey, SecretKey, Vault};

/// A sealed store on `file` (a path relative to a new temporary folder, which the caller keeps
/// alive), with the file's path.
pub async fn open_at(file: &str) -> (tempfile::TempDir, PathBuf, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(file);
    let store = Store::open(&format!("sqlite://{}", path.display()), StoreOptions::default()).await.expect("open");
    store.seal_with(Vault::new(SecretKey::generate(), IndexKey::generate())).expect("a fresh store has no vault");
    (dir, path, store)
}

/// [`open_at`] without the path.
pub async fn open(file: &str) -> (tempfile::TempDir, Store) {
    let (dir, _, store) = open_at(file).await;
    (dir, store)
}

/// A `USER` line as a device reports it: no password or card, the default group and zones.
pub fn device_user(pin: &str, name: &str) -> UserRow {
    UserRow {
        pin: pin.into(),
        name: name.into(),
        name_raw: None,
        privilege: Some(0),
        password: String::new(),
        card: String::new(),
        group: "1".into(),
        time_zones: "0000000100000000".into(),
        verify: Some(-1),
        vice_card: String::new(),
        raw_line: format!("USER PIN={pin}\tName={name}").into_bytes(),
    }
}

/// A fingerprint template (`BIODATA`, type 1) of `finger`, whose text is `text`.
pub fn template(pin: &str, finger: i64, text: &str) -> BiometricTemplate {
    BiometricTemplate {
        pin: pin.into(),
        record_kind: "BIODATA",
        bio_type: 1,
        no: finger,
        index: 0,
        valid: Some(1),
        duress: Some(0),
        major_ver: Some(10),
        minor_ver: Some(0),
        format: "0".into(),
        size: Some(8),
        template: text.into(),
    }
}
