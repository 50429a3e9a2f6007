//! API accounts: a password change or a disabled account ends the account's sessions.

use adms_store::{Store, TokenKind, now_micros};

async fn session(store: &Store, user_id: i64, digest: &[u8]) {
    let expires = now_micros() + 3_600_000_000;
    store.create_token(TokenKind::Session, Some(user_id), "login", digest, Some(expires)).await.unwrap();
}

async fn a_new_password_hash_bumps_the_version_and_revokes_sessions(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
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

async fn a_renamed_bootstrap_account_disables_the_previous_one(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
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

async fn user_changes_end_sessions_and_keep_an_enabled_admin(engine: crate::common::Engine) {
    use adms_store::{StoreError, UserChange};
    let store = crate::common::fresh(engine).await;
    let admin = store.upsert_user("admin", "hash-a").await.unwrap();
    assert_eq!(store.user_by_id(admin).await.unwrap().unwrap().role, "admin", "existing accounts are admins");
    let viewer = store.create_user("vera", "hash-v", "viewer").await.unwrap().expect("created");
    assert_eq!(viewer.role, "viewer");
    assert!(store.create_user("vera", "hash-x", "admin").await.unwrap().is_none(), "name taken");
    session(&store, viewer.id, b"vera-1").await;

    // A role change alone leaves sessions alone.
    let change = UserChange { role: Some("operator".into()), ..UserChange::default() };
    let changed = store.update_user(viewer.id, &change).await.unwrap().unwrap();
    assert_eq!((changed.role.as_str(), changed.token_version), ("operator", 0));
    assert!(store.live_token(b"vera-1", now_micros()).await.unwrap().is_some());
    // A password change ends them.
    let change = UserChange { password_hash: Some("hash-v2".into()), ..UserChange::default() };
    assert_eq!(store.update_user(viewer.id, &change).await.unwrap().unwrap().token_version, 1);
    assert!(store.live_token(b"vera-1", now_micros()).await.unwrap().is_none());
    // So does disabling.
    session(&store, viewer.id, b"vera-2").await;
    let change = UserChange { disabled: Some(true), ..UserChange::default() };
    let disabled = store.update_user(viewer.id, &change).await.unwrap().unwrap();
    assert!(disabled.disabled_at.is_some());
    assert_eq!(disabled.token_version, 2);
    assert!(store.live_token(b"vera-2", now_micros()).await.unwrap().is_none());

    // The last enabled admin stays, and a refused change changes nothing.
    for change in [
        UserChange { disabled: Some(true), ..UserChange::default() },
        UserChange { role: Some("viewer".into()), password_hash: Some("other".into()), ..UserChange::default() },
    ] {
        let refused = store.update_user(admin, &change).await;
        assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    }
    let unchanged = store.user_by_id(admin).await.unwrap().unwrap();
    assert_eq!((unchanged.role.as_str(), unchanged.password_hash.as_str()), ("admin", "hash-a"));
    assert!(matches!(store.delete_user(admin).await, Err(StoreError::Conflict(_))));
    assert!(store.user_by_id(admin).await.unwrap().is_some());

    assert!(store.delete_user(viewer.id).await.unwrap());
    assert!(!store.delete_user(viewer.id).await.unwrap());
    assert_eq!(store.list_users().await.unwrap().len(), 1);
    assert!(store.update_user(viewer.id, &UserChange::default()).await.unwrap().is_none());

    // The configured account comes back as an enabled admin at start, whatever was changed.
    store.create_user("ada", "hash-ada", "admin").await.unwrap().unwrap();
    let demote = UserChange { role: Some("viewer".into()), disabled: Some(true), ..UserChange::default() };
    store.update_user(admin, &demote).await.unwrap().unwrap();
    store.bootstrap_user("admin", "hash-a").await.unwrap();
    let back = store.user_by_id(admin).await.unwrap().unwrap();
    assert_eq!((back.role.as_str(), back.disabled_at), ("admin", None));
}

async fn integration_keys_carry_their_scopes_and_the_audit_log_pages_newest_first(engine: crate::common::Engine) {
    use adms_store::{AuditFilter, NewAuditEntry, Page};
    let store = crate::common::fresh(engine).await;
    store.create_integration_token("payroll", b"key-1", "read roster:write", None).await.unwrap();
    let live = store.live_token(b"key-1", now_micros()).await.unwrap().unwrap();
    assert_eq!((live.kind.as_str(), live.scopes.as_str()), ("integration", "read roster:write"));
    assert_eq!(store.list_tokens().await.unwrap()[0].scopes, "read roster:write");

    let entry = |at: i64, actor: &str| NewAuditEntry {
        at,
        actor: actor.to_owned(),
        actor_kind: "session",
        user_id: Some(1),
        token_id: None,
        method: "POST".into(),
        route: "/api/v1/users".into(),
        target: None,
        status: Some(201),
        address: Some("127.0.0.1".into()),
    };
    for (at, actor) in [(10, "ann"), (20, "bob"), (30, "ann")] {
        store.record_audit(&entry(at, actor)).await.unwrap();
    }
    let all = Page { offset: 0, limit: 10 };
    let (count, rows) = store.list_audit(&AuditFilter::default(), all).await.unwrap();
    assert_eq!(count, 3);
    assert_eq!(rows.iter().map(|r| r.at).collect::<Vec<_>>(), [30, 20, 10]);
    assert_eq!(rows[0].status, Some(201));
    let (count, rows) = store.list_audit(&AuditFilter { actor: Some("ann".into()), since: None }, all).await.unwrap();
    assert_eq!((count, rows.len()), (2, 2));
    let (count, rows) = store.list_audit(&AuditFilter { actor: None, since: Some(20) }, all).await.unwrap();
    assert_eq!((count, rows[1].actor.as_str()), (2, "bob"));
    let (count, rows) = store.list_audit(&AuditFilter::default(), Page { offset: 1, limit: 1 }).await.unwrap();
    assert_eq!((count, rows[0].at), (3, 20));
}

async fn integration_key_names_are_unique_among_keys_in_force(engine: crate::common::Engine) {
    use adms_store::ErrorKind;
    let store = crate::common::fresh(engine).await;
    let first = store.create_integration_token("payroll", b"key-1", "read", None).await.unwrap();
    let error = store.create_integration_token("payroll", b"key-2", "read", None).await.expect_err("name taken");
    assert_eq!(error.kind(), ErrorKind::Conflict, "{error}");
    assert!(error.to_string().contains("'payroll'"), "{error}");
    // Rotation: a new key under a new name, both work, then the old one is revoked by name.
    let second = store.create_integration_token("payroll-2027", b"key-2", "read", None).await.unwrap();
    assert!(store.live_token(b"key-1", now_micros()).await.unwrap().is_some());
    assert!(store.live_token(b"key-2", now_micros()).await.unwrap().is_some());
    assert_eq!(store.revoke_token("payroll").await.unwrap(), 1);
    assert!(store.live_token(b"key-1", now_micros()).await.unwrap().is_none());
    assert!(store.live_token(b"key-2", now_micros()).await.unwrap().is_some());
    // A revoked key's name can be given again; by id, exactly that key is revoked.
    let third = store.create_integration_token("payroll", b"key-3", "read", None).await.unwrap();
    assert_eq!(store.revoke_token(&second.to_string()).await.unwrap(), 1);
    assert_eq!(store.revoke_token(&second.to_string()).await.unwrap(), 0, "already revoked");
    assert!(store.live_token(b"key-3", now_micros()).await.unwrap().is_some());
    let ids: Vec<(i64, bool)> =
        store.list_tokens().await.unwrap().iter().map(|t| (t.id, t.revoked_at.is_some())).collect();
    assert_eq!(ids, [(first, true), (second, true), (third, false)]);
}

async fn expired_keys_are_refused_and_use_is_recorded_once_a_minute(engine: crate::common::Engine) {
    let store = crate::common::fresh(engine).await;
    let now = now_micros();
    store.create_integration_token("short", b"key-short", "read", Some(now + 1_000_000)).await.unwrap();
    assert!(store.live_token(b"key-short", now).await.unwrap().is_some());
    assert!(store.live_token(b"key-short", now + 1_000_000).await.unwrap().is_none(), "expired");

    let id = store.create_integration_token("used", b"key-used", "read", None).await.unwrap();
    let row = store.live_token(b"key-used", now).await.unwrap().unwrap();
    assert_eq!(row.last_used_at, None);
    store.touch_token(id, row.last_used_at, now).await.unwrap();
    let row = store.live_token(b"key-used", now).await.unwrap().unwrap();
    assert_eq!(row.last_used_at, Some(now));
    // Within the minute: nothing written; after it, the new time.
    store.touch_token(id, row.last_used_at, now + 30_000_000).await.unwrap();
    assert_eq!(store.live_token(b"key-used", now).await.unwrap().unwrap().last_used_at, Some(now));
    store.touch_token(id, row.last_used_at, now + 61_000_000).await.unwrap();
    assert_eq!(store.live_token(b"key-used", now).await.unwrap().unwrap().last_used_at, Some(now + 61_000_000));
}

crate::on_both_engines!(
    integration_key_names_are_unique_among_keys_in_force,
    expired_keys_are_refused_and_use_is_recorded_once_a_minute,
    a_new_password_hash_bumps_the_version_and_revokes_sessions,
    a_renamed_bootstrap_account_disables_the_previous_one,
    user_changes_end_sessions_and_keep_an_enabled_admin,
    integration_keys_carry_their_scopes_and_the_audit_log_pages_newest_first,
);
