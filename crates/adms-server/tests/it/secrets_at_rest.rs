//! The master key and the files on disk: a key file made on first start, every file private,
//! the database tied to its key, `secrets rekey` moving the key file along.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use sqlx::ConnectOptions;

use crate::common::{ADMIN_PASSWORD, ADMIN_USER, Api, Server, start_failing};

const OTHER_KEY: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

async fn setting(db: &Path, key: &str) -> Option<String> {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new().filename(db).read_only(true).connect().await.unwrap();
    let value: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM server_settings WHERE key = ?")
        .bind(key)
        .fetch_optional(&mut conn)
        .await
        .unwrap();
    value.map(|v| String::from_utf8_lossy(&v).into_owned())
}

#[tokio::test]
async fn the_first_start_makes_a_private_key_file_and_every_file_is_private() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_adms-bridge"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("ADMS_DATABASE_URL", format!("sqlite://{}/adms.db", data.display()))
        .env("ADMS_ADMIN_USER", ADMIN_USER)
        .env("ADMS_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .env_remove("ADMS_CONFIG")
        .env_remove("ADMS_SECRET_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on"), "{line:?}");
    let db = data.join("adms.db");
    let key_file = data.join("adms.db.key");
    assert_eq!(mode(&data), 0o700, "the data folder");
    for file in ["adms.db", "adms.db-wal", "adms.db-shm", "adms.db.key", "adms.db.startup-lock"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    let key: adms_webhooks::SecretKey = std::fs::read_to_string(&key_file).unwrap().parse().expect("a usable key");
    // The JWT signing key is sealed under it, and the database remembers which key it has.
    let jwt = setting(&db, "jwt_hs256_key").await.expect("jwt key");
    assert!(jwt.starts_with("sealed:v1:"), "{jwt}");
    let opened = key.open_for(adms_server::vault::SETTING, adms_server::vault::JWT_KEY, &jwt).expect("opens");
    assert_eq!(hex::decode(opened).unwrap().len(), 32);
    assert!(setting(&db, "master_key_check").await.is_some_and(|v| v.starts_with("sealed:v1:")));
    child.kill().unwrap();
    child.wait().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains("generated a master key file") && stderr.contains("adms.db.key"), "{stderr}");
    assert!(!stderr.contains(&key.to_base64()), "the key itself is never logged");
}

#[tokio::test]
async fn a_database_refuses_to_start_with_another_key_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    Api::login(&server).await;
    server.stop();
    let key_file = dir.path().join("adms.db.key");

    let wrong = start_failing(dir.path(), &[("ADMS_SECRET_KEY", OTHER_KEY)]);
    assert!(wrong.contains("does not open"), "{wrong}");
    let moved = dir.path().join("elsewhere.key");
    std::fs::rename(&key_file, &moved).unwrap();
    let missing = start_failing(dir.path(), &[]);
    assert!(missing.contains("sealed with a master key") && missing.contains("adms.db.key"), "{missing}");
    assert!(!key_file.exists(), "no new key was generated over the sealed database");
    // The key file named explicitly works from anywhere.
    let named = moved.display().to_string();
    let server = Server::start(dir.path(), &[("ADMS_SECRET_KEY_FILE", named.as_str())]);
    let api = Api::login(&server).await;
    assert_eq!(api.get_status("/iclock/api/transactions/").await.0, 200);
}

#[tokio::test]
async fn rekey_moves_the_key_file_and_every_server_secret_to_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    Api::login(&server).await;
    server.stop();
    let key_file = dir.path().join("adms.db.key");
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let jwt_before = setting(&dir.path().join("adms.db"), "jwt_hs256_key").await.unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_adms-bridge"))
        .args(["secrets", "rekey"])
        .env("ADMS_DATABASE_URL", format!("sqlite://{}/adms.db", dir.path().display()))
        .env("ADMS_NEW_SECRET_KEY", OTHER_KEY)
        .env_remove("ADMS_SECRET_KEY")
        .env_remove("ADMS_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("and 3 server secrets") && stdout.contains("now holds the new key"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), OTHER_KEY);
    assert_eq!(mode(&key_file), 0o600);
    assert_ne!(setting(&dir.path().join("adms.db"), "jwt_hs256_key").await.unwrap(), jwt_before);

    // The old key no longer opens the database; the new key file does, and logins work (the JWT
    // key opened).
    let old = start_failing(dir.path(), &[("ADMS_SECRET_KEY", old_key.trim())]);
    assert!(old.contains("does not open"), "{old}");
    let server = Server::start(dir.path(), &[]);
    let api = Api::login(&server).await;
    assert_eq!(api.get_status("/iclock/api/transactions/").await.0, 200);
}
