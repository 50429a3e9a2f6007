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
    crate::sqlite_only!("the key file and the modes of the database files");
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
    crate::sqlite_only!("the key file beside the database file");
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
    crate::sqlite_only!("the key file beside the database file");
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

/// Values that must never be found in the database's files: each appears once, as a secret.
const SEALED_VALUES: [&str; 9] = [
    "5817",
    "8877665501",
    "SSN-7731-QX",
    "ann.private@example.org",
    "PW864213",
    "1357246899",
    "VEVNUExBVEVTRUNSRVQxMjM0",
    "REJECTPW9911",
    "2468013579",
];

fn command_lines(reply: &str) -> Vec<String> {
    reply
        .lines()
        .filter_map(|l| l.strip_prefix("C:"))
        .filter_map(|l| l.split_once(':'))
        .map(|(_, c)| c.into())
        .collect()
}

/// Every byte of the database's files once the WAL is checkpointed into the database.
async fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new().filename(dir.join("adms.db")).connect().await.unwrap();
    let busy: i64 = sqlx::query_scalar("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut conn).await.unwrap();
    assert_eq!(busy, 0, "the checkpoint was not blocked");
    drop(conn);
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("adms.db") && !n.to_string_lossy().ends_with(".key"))
        {
            // A `-wal` or `-shm` file may be removed by its last connection closing meanwhile.
            match std::fs::read(&path) {
                Ok(content) => bytes.extend(content),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("{}: {e}", path.display()),
            }
        }
    }
    bytes
}

#[tokio::test]
async fn credentials_biometrics_and_personal_data_are_sealed_in_the_database_files() {
    crate::sqlite_only!("the bytes of the database files, WAL checkpointed");
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let api = Api::login(&server).await;
    let gate = crate::common::Device { server: &server, sn: "SEALGATE1".into() };
    gate.handshake().await;
    let (_, area) = api.post_json("/personnel/api/areas/", &json!({ "area_code": "HQ", "area_name": "HQ" })).await;
    let terminal = api.get("/iclock/api/terminals/?sn=SEALGATE1").await["data"][0]["id"].as_i64().unwrap();
    let (status, _) =
        api.patch_json(&format!("/iclock/api/terminals/{terminal}/"), &json!({ "area": area["id"] })).await;
    assert_eq!(status, 200);
    let (status, employee) = api
        .post_json(
            "/personnel/api/employees/",
            &json!({ "emp_code": "0042", "first_name": "Ann", "department": 1, "area": [area["id"]],
                     "card_no": "8877665501", "device_password": "5817", "ssn": "SSN-7731-QX",
                     "email": "ann.private@example.org" }),
        )
        .await;
    assert_eq!(status, 201, "{employee}");
    // The terminal gets the clear values it needs.
    let commands = command_lines(&gate.get("/iclock/getrequest?SN=SEALGATE1").await.text());
    assert!(commands.iter().any(|c| c.contains("Passwd=5817\tCard=8877665501")), "{commands:?}");
    // What devices report: a user, a template, a line that is refused, an access event.
    let operlog = "USER PIN=77\tName=Bob\tPri=0\tPasswd=PW864213\tCard=1357246899\tGrp=1\tTZ=0000000100000000\tVerify=0\tViceCard=\n\
                   FP PIN=77\tFID=1\tSize=24\tValid=1\tTMP=VEVNUExBVEVTRUNSRVQxMjM0\n";
    let answer = gate.post("/iclock/cdata?SN=SEALGATE1&table=OPERLOG&Stamp=1", operlog.as_bytes()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(gate.attlog(b"77\tNOT-A-TIME\t0\t1\tREJECTPW9911\n").await.status, 200);
    let rtlog = b"time=2026-12-01 08:00:00\tpin=77\tcardno=2468013579\teventaddr=1\tevent=0\tinoutstatus=0\tverifytype=4\tindex=1\n";
    assert_eq!(gate.post("/iclock/cdata?SN=SEALGATE1&table=rtlog", rtlog).await.status, 200);
    // The API reads them back.
    let id = employee["id"].as_i64().unwrap();
    let shown = api.get(&format!("/personnel/api/employees/{id}/")).await;
    assert_eq!(
        (shown["card_no"].as_str(), shown["ssn"].as_str()),
        (Some("8877665501"), Some("SSN-7731-QX")),
        "{shown}"
    );
    let templates = api.get("/iclock/api/biodatas/?employee=77").await;
    assert!(templates.to_string().contains("VEVNUExBVEVTRUNSRVQxMjM0"), "{templates}");
    server.stop();

    let bytes = database_bytes(dir.path()).await;
    let found: Vec<&str> =
        SEALED_VALUES.into_iter().filter(|v| bytes.windows(v.len()).any(|w| w == v.as_bytes())).collect();
    assert_eq!(found, Vec::<&str>::new(), "found in the clear in the database files");

    // After a restart everything still opens.
    let server = Server::start(dir.path(), &[]);
    let api = Api::login(&server).await;
    let shown = api.get(&format!("/personnel/api/employees/{id}/")).await;
    assert_eq!(shown["card_no"], "8877665501", "{shown}");
}
