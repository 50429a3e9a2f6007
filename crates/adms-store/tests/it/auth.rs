//! API accounts: a password change or a disabled account ends the account's sessions.

use adms_store::{Store, StoreOptions, TokenKind, now_micros};

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/auth.db", dir.path().display());
    let store = Store::open(&url, StoreOptions::default()).await.expect("open");
    (dir, store)
}

async fn session(store: &Store, user_id: i64, digest: &[u8]) {
    let expires = now_micros() + 3_600_000_000;
    store.create_token(TokenKind::Session, Some(user_id), "login", digest, Some(expires)).await.unwrap();
}

#[tokio::test]
async fn a_new_password_hash_bumps_the_version_and_revokes_sessions() {
    let (_dir, store) = open().await;
    let id = store.upsert_user("admin", "hash-1").await.unwrap();
    session(&store, id, b"session-1").await;
    store.create_token(TokenKind::Integration, None, "payroll", b"integration-1", None).await.unwrap();
    let before = store.user_by_id(id).await.unwrap().unwrap();
    assert_eq!((before.token_version, before.disabled_at), (0, None));

    // The same hash again (a restart with an unchanged password) changes nothing.
    assert_eq!(store.upsert_user("admin", "hash-1").await.unwrap(), id);
    assert_eq!(store.user_by_id(id).await.unwrap().unwrap().token_version, 0);
    assert!(store.live_token(b"session-1", now_micros()).await.unwrap().is_some());

    // A different hash: version bumped, the user's sessions revoked; integration keys untouched.
    assert_eq!(store.upsert_user("admin", "hash-2").await.unwrap(), id);
    let after = store.user_by_id(id).await.unwrap().unwrap();
    assert_eq!((after.password_hash.as_str(), after.token_version), ("hash-2", 1));
    assert!(store.live_token(b"session-1", now_micros()).await.unwrap().is_none());
    assert!(store.live_token(b"integration-1", now_micros()).await.unwrap().is_some());
}

#[tokio::test]
async fn a_renamed_bootstrap_account_disables_the_previous_one() {
    let (_dir, store) = open().await;
    let first = store.bootstrap_user("admin", "hash-1").await.unwrap();
    assert!(first.disabled.is_empty());
    session(&store, first.user_id, b"admin-session").await;
    // An account the bootstrap did not create is left alone.
    let other = store.upsert_user("operator", "hash-x").await.unwrap();
    session(&store, other, b"operator-session").await;

    // Same name again: nothing disabled, nothing revoked.
    let again = store.bootstrap_user("admin", "hash-1").await.unwrap();
    assert_eq!((again.user_id, again.disabled.len()), (first.user_id, 0));
    assert!(store.live_token(b"admin-session", now_micros()).await.unwrap().is_some());

    let renamed = store.bootstrap_user("root", "hash-1").await.unwrap();
    assert_eq!(renamed.disabled, vec!["admin".to_owned()]);
    let old = store.user_by_id(first.user_id).await.unwrap().unwrap();
    assert!(old.disabled_at.is_some());
    assert_eq!(old.token_version, 1, "the disabled account's JWTs end too");
    assert!(store.live_token(b"admin-session", now_micros()).await.unwrap().is_none());
    assert!(store.live_token(b"operator-session", now_micros()).await.unwrap().is_some());
    let root = store.user_by_id(renamed.user_id).await.unwrap().unwrap();
    assert_eq!(root.disabled_at, None);

    // Back to the first name: that account is enabled again (its old tokens stay revoked, and
    // its version moved on, so its old JWTs stay refused), and root is disabled.
    let back = store.bootstrap_user("admin", "hash-1").await.unwrap();
    assert_eq!((back.user_id, back.disabled.clone()), (first.user_id, vec!["root".to_owned()]));
    let admin = store.user_by_id(first.user_id).await.unwrap().unwrap();
    assert_eq!((admin.disabled_at, admin.token_version), (None, 1));
    assert!(store.live_token(b"admin-session", now_micros()).await.unwrap().is_none());
}
