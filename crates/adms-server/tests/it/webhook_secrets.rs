//! Endpoint signing secrets at rest, end to end with the real binary and a loopback receiver.
//!
//! With `ADMS_SECRET_KEY`, every stored secret is sealed (no `whsec_` text in the database),
//! requests are still signed with the real secret, and the API shows a secret only when it is
//! created or rotated. Plaintext rows written before a key existed are sealed at the next start
//! and keep working. Without the key (or with another one) a server whose secrets are sealed
//! refuses to start, saying why, instead of sending requests nobody can verify.

use crate::common;

use common::webhooks::{Received, Receiver, SECRET};
use common::{Api, Database, Device, Server, start_failing};
use std::path::Path;

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const OTHER_KEY: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

async fn stored_secrets(db: &Database) -> Vec<String> {
    let rows: Vec<(String,)> = db.fetch_all("SELECT secret FROM webhook_secrets ORDER BY id", &[]).await;
    rows.into_iter().map(|(secret,)| secret).collect()
}

/// Whether the request carries a valid signature made with `secret` (the independent library).
fn signed_with(r: &Received, secret: &str) -> bool {
    let theirs = standardwebhooks::Webhook::new(secret).unwrap().sign(&r.id, r.timestamp, &r.body).unwrap();
    r.signature.split(' ').any(|s| s == theirs)
}

fn attlog(i: usize) -> Vec<u8> {
    format!("{}\t2026-11-20 08:{:02}:00\t0\t1\t0\t0\t0\n", 100 + i, i).into_bytes()
}

#[tokio::test]
async fn with_a_master_key_secrets_are_sealed_at_rest_and_requests_still_verify() {
    let receiver = Receiver::builder().only("attendance.punch").start().await;
    let base = receiver.base_url();
    let env_url = format!("{base}/env");
    let dir = tempfile::tempdir().unwrap();
    let env = [("ADMS_WEBHOOK_URL", env_url.as_str()), ("ADMS_WEBHOOK_SECRET", SECRET), ("ADMS_SECRET_KEY", KEY)];
    let mut server = Server::start(dir.path(), &env);
    let api = Api::login(&server).await;
    let (status, created) = api
        .post_json(
            "/api/v1/webhooks/endpoints",
            &serde_json::json!({ "url": format!("{base}/api"), "event_types": ["attendance.punch"] }),
        )
        .await;
    assert_eq!(status, 201);
    let uid = created["id"].as_str().unwrap().to_owned();
    let api_secret = created["secret"].as_str().unwrap().to_owned();
    assert!(api_secret.starts_with("whsec_"), "shown once, at creation");

    let rows = stored_secrets(server.db()).await;
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert!(row.starts_with("sealed:v1:"), "sealed at rest: {row}");
        assert!(!row.contains("whsec_") && !row.contains(&SECRET[6..]) && !row.contains(&api_secret[6..]));
    }
    // Never shown again.
    for path in ["/api/v1/webhooks/endpoints".to_owned(), format!("/api/v1/webhooks/endpoints/{uid}")] {
        let text = api.get(&path).await.to_string();
        assert!(!text.contains("whsec_") && !text.contains("sealed:") && !text.contains("\"secret\""), "{text}");
    }

    let dev = Device { server: &server, sn: "SEAL0001".into() };
    dev.handshake().await;
    assert_eq!(dev.attlog(&attlog(0)).await.text(), "OK: 1");
    receiver.wait_for_n("attendance.punch", 2).await;
    for r in &receiver.received() {
        let path = &r.path;
        let secret = if path == "/env" { SECRET } else { api_secret.as_str() };
        assert!(signed_with(r, secret), "{path}: signed with the real secret");
    }

    // Rotation: the new secret is shown once and stored sealed; both sign during the grace.
    let (status, rotated) =
        api.post_json(&format!("/api/v1/webhooks/endpoints/{uid}/rotate-secret"), &serde_json::json!({})).await;
    assert_eq!(status, 200);
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert!(stored_secrets(server.db()).await.iter().all(|s| s.starts_with("sealed:v1:") && !s.contains("whsec_")));
    assert_eq!(dev.attlog(&attlog(1)).await.text(), "OK: 1");
    receiver.wait_for_n("attendance.punch", 4).await;
    let last_api = receiver.received().into_iter().rev().find(|r| r.path == "/api").unwrap();
    assert!(signed_with(&last_api, &new_secret) && signed_with(&last_api, &api_secret));
    server.stop();

    // The same key and ADMS_WEBHOOK_SECRET again: recognised through the seal, no rotation.
    let mut server = Server::start(dir.path(), &env);
    assert_eq!(stored_secrets(server.db()).await.len(), 3, "no new secret row");
    server.stop();

    // Without the key, or with another one, nothing could be signed: the start fails, saying why.
    let no_key = start_failing(dir.path(), &[("ADMS_WEBHOOK_URL", env_url.as_str())]);
    assert!(no_key.contains("ADMS_SECRET_KEY"), "{no_key}");
    let wrong_key = start_failing(dir.path(), &[("ADMS_SECRET_KEY", OTHER_KEY)]);
    assert!(wrong_key.contains("does not open"), "{wrong_key}");
    let bad_key = start_failing(dir.path(), &[("ADMS_SECRET_KEY", "c2hvcnQ=")]);
    assert!(bad_key.contains("ADMS_SECRET_KEY") && bad_key.contains("32 bytes"), "{bad_key}");
    for text in [&no_key, &wrong_key, &bad_key] {
        assert!(
            !text.contains(KEY) && !text.contains(OTHER_KEY) && !text.contains(SECRET),
            "no key material in {text}"
        );
    }
}

#[tokio::test]
async fn plaintext_secrets_keep_working_and_are_sealed_once_a_key_is_configured() {
    let receiver = Receiver::builder().only("attendance.punch").start().await;
    let base = receiver.base_url();
    let url = format!("{base}/env");
    let dir = tempfile::tempdir().unwrap();
    let keyed_env = [("ADMS_WEBHOOK_URL", url.as_str()), ("ADMS_WEBHOOK_SECRET", SECRET), ("ADMS_SECRET_KEY", KEY)];
    let mut server = Server::start(dir.path(), &keyed_env);
    let dev = Device { server: &server, sn: "SEAL0002".into() };
    dev.handshake().await;
    assert_eq!(dev.attlog(&attlog(0)).await.text(), "OK: 1");
    receiver.wait_for_n("attendance.punch", 1).await;
    server.stop();
    // A row as a version before sealing wrote it: the `whsec_` text itself.
    Database::of(dir.path()).execute("UPDATE webhook_secrets SET secret = $1", &[SECRET.into()]).await;
    assert_eq!(stored_secrets(&Database::of(dir.path())).await, [SECRET]);

    let server = Server::start(dir.path(), &keyed_env);
    let rows = stored_secrets(server.db()).await;
    assert_eq!(rows.len(), 1, "sealed in place, not rotated");
    assert!(rows[0].starts_with("sealed:v1:") && !rows[0].contains(&SECRET[6..]));
    let dev = Device { server: &server, sn: "SEAL0002".into() };
    assert_eq!(dev.attlog(&attlog(1)).await.text(), "OK: 1");
    receiver.wait_for_n("attendance.punch", 2).await;
    let received = receiver.received();
    assert!(received.iter().all(|r| signed_with(r, SECRET)), "the same secret signs before and after");
    assert_ne!(received[0].id, received[1].id);
}

/// `adms-bridge secrets rekey` with ADMS_SECRET_KEY and ADMS_NEW_SECRET_KEY; (success, stdout, stderr).
fn rekey(dir: &Path, current: Option<&str>, new: &str) -> (bool, String, String) {
    let mut cmd = Database::of(dir).command();
    cmd.args(["secrets", "rekey"])
        .env("RUST_LOG", "warn")
        .env_remove("ADMS_SECRET_KEY")
        .env("ADMS_NEW_SECRET_KEY", new);
    if let Some(key) = current {
        cmd.env("ADMS_SECRET_KEY", key);
    }
    let output = cmd.output().expect("run rekey");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

/// Re-keying: every secret sealed under the new master key, the old key no longer starts the
/// server, the new one does and requests verify with the same signing secret; running it again
/// is harmless, and a wrong current key changes nothing.
#[tokio::test]
async fn rekey_moves_every_secret_to_the_new_master_key() {
    let receiver = Receiver::builder().only("attendance.punch").start().await;
    let base = receiver.base_url();
    let env_url = format!("{base}/env");
    let dir = tempfile::tempdir().unwrap();
    let with_key = |key: &'static str| {
        [
            ("ADMS_WEBHOOK_URL", env_url.clone()),
            ("ADMS_WEBHOOK_SECRET", SECRET.to_owned()),
            ("ADMS_SECRET_KEY", key.to_owned()),
        ]
    };
    let env_a = with_key(KEY);
    let env_a: Vec<(&str, &str)> = env_a.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = Server::start(dir.path(), &env_a);
    server.stop();
    let before = stored_secrets(&Database::of(dir.path())).await;
    assert_eq!(before.len(), 1);

    let (ok, stdout, stderr) = rekey(dir.path(), Some(KEY), OTHER_KEY);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("re-sealed 1 signing secrets (0 already"), "{stdout}");
    let after = stored_secrets(&Database::of(dir.path())).await;
    assert_eq!(after.len(), 1);
    assert!(after[0].starts_with("sealed:v1:") && after[0] != before[0] && !after[0].contains("whsec_"));

    let old_key = start_failing(dir.path(), &[("ADMS_SECRET_KEY", KEY)]);
    assert!(old_key.contains("does not open"), "{old_key}");
    let env_b = with_key(OTHER_KEY);
    let env_b: Vec<(&str, &str)> = env_b.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = Server::start(dir.path(), &env_b);
    assert_eq!(stored_secrets(server.db()).await.len(), 1, "the same secret recognised, no rotation");
    let dev = Device { server: &server, sn: "REKEY001".into() };
    dev.handshake().await;
    assert_eq!(dev.attlog(&attlog(0)).await.text(), "OK: 1");
    receiver.wait_for_n("attendance.punch", 1).await;
    assert!(signed_with(&receiver.received()[0], SECRET), "signed with the unchanged signing secret");
    server.stop();

    let (ok, stdout, _) = rekey(dir.path(), Some(OTHER_KEY), OTHER_KEY);
    assert!(ok && stdout.contains("re-sealed 0 signing secrets (1 already"), "{stdout}");
    let third = "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE=";
    let (ok, stdout, stderr) = rekey(dir.path(), Some(KEY), third);
    assert!(!ok, "a wrong current key is refused: {stdout}");
    assert!(stderr.contains("does not open"), "{stderr}");
    assert_eq!(stored_secrets(&Database::of(dir.path())).await, after, "nothing changed");
    for text in [&stdout, &stderr] {
        assert!(!text.contains(KEY) && !text.contains(OTHER_KEY) && !text.contains(third) && !text.contains(SECRET));
    }
}

/// Replicas of an older release that started together could each make an `ADMS_WEBHOOK_URL`
/// endpoint, and each delivered every event: the next start keeps the oldest and deletes the
/// others, and a punch then goes to the one kept only.
#[tokio::test]
async fn a_second_env_endpoint_left_by_replicas_is_deleted_at_the_next_start() {
    let receiver = Receiver::start().await;
    let env_url = format!("{}/env", receiver.base_url());
    let dir = tempfile::tempdir().unwrap();
    let env = [("ADMS_WEBHOOK_URL", env_url.as_str()), ("ADMS_WEBHOOK_SECRET", SECRET)];
    let server = Server::start(dir.path(), &env);
    let api = Api::login(&server).await;
    let (status, second) = api
        .post_json(
            "/api/v1/webhooks/endpoints",
            &serde_json::json!({ "url": format!("{}/second", receiver.base_url()) }),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    let second = second["id"].as_str().unwrap().to_owned();
    // What a racing replica of an older release left: a second endpoint of the same source.
    let changed = server
        .db()
        .execute("UPDATE webhook_endpoints SET source = 'env' WHERE uid = $1", &[second.as_str().into()])
        .await;
    assert_eq!(changed, 1);
    let live_env = async |server: &Server| {
        let rows: Vec<(String,)> = server
            .db()
            .fetch_all("SELECT uid FROM webhook_endpoints WHERE source = 'env' AND deleted_at IS NULL ORDER BY id", &[])
            .await;
        rows.into_iter().map(|(uid,)| uid).collect::<Vec<_>>()
    };
    let both = live_env(&server).await;
    assert_eq!(both.len(), 2);
    drop(server);

    let server = Server::start(dir.path(), &env);
    assert_eq!(live_env(&server).await, [both[0].clone()], "the oldest kept");
    let dev = Device { server: &server, sn: "DUPENV01".into() };
    dev.handshake().await;
    assert_eq!(dev.attlog(&attlog(0)).await.text(), "OK: 1");
    let delivered = receiver.wait_for_n("attendance.punch", 1).await;
    assert_eq!(delivered[0].path, "/env");
    let to_second: Vec<(i64,)> = server
        .db()
        .fetch_all(
            "SELECT COUNT(*) FROM webhook_deliveries AS d JOIN webhook_endpoints AS e ON e.id = d.endpoint_id \
             WHERE e.uid = $1",
            &[second.as_str().into()],
        )
        .await;
    assert_eq!(to_second, [(0,)], "the deleted endpoint gets no delivery");
}
