//! What every store story starts from: a store on a fresh SQLite file, sealed as every server
//! with a database file runs it (so each story also reads and writes through the seal).

use std::path::PathBuf;

use adms_store::{Store, StoreOptions};
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
