//! The command line an operator runs: `--version`, `serve --help`, `config print|example`,
//! device approval, integration keys (unique names, expiry, last use, rotation), a missing
//! database, backup and restore, the backup before migrating, a database newer than the binary,
//! and what `serve` says at start.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Output, Stdio};

use crate::common::database::Bind;
use crate::common::{Api, Database, Device, Engine, Server, engine, eventually, start_failing};

/// The binary on the database of `dir`, with `args`.
fn cli(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Database::of(dir).command();
    command.args(args).env("RUST_LOG", "warn").stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run adms-bridge")
}

fn ok(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn failed(output: &Output) -> String {
    assert!(!output.status.success(), "succeeded: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The binary without any database (no `ADMS_DATABASE_URL`).
fn bare(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_adms-bridge"));
    command.args(args);
    // Every `ADMS_*` variable is configuration to the binary, which refuses unknown ones.
    for name in ["ADMS_DATABASE_URL", "ADMS_CONFIG", "ADMS_DATA_DIR", "ADMS_TEST_DATABASE", "ADMS_TEST_POSTGRES_URL"] {
        command.env_remove(name);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run adms-bridge")
}

#[test]
fn version_and_serve_help_name_the_program_and_every_setting() {
    let version = ok(&bare(&["--version"], &[]));
    assert!(version.starts_with("adms-bridge "), "{version}");
    let help = ok(&bare(&["serve", "--help"], &[]));
    let settings = adms_server::config::settings();
    assert!(settings.len() > 50, "the table has every setting");
    for setting in settings {
        assert!(help.contains(&setting.env), "{} missing from serve --help:\n{help}", setting.env);
    }
    assert!(help.contains("[webhooks] timeout_secs") && help.contains("15"), "keys and defaults:\n{help}");
}

#[test]
fn config_example_is_a_file_config_print_reads_back_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let example = ok(&bare(&["config", "example"], &[]));
    let file = dir.path().join("adms-bridge.toml");
    std::fs::write(&file, format!("{example}\n")).unwrap();
    let printed = ok(&bare(
        &["config", "print", "--config", file.to_str().unwrap()],
        &[
            ("ADMS_ADMIN_USER", "boss"),
            ("ADMS_ADMIN_PASSWORD", "a-very-secret-password"),
            ("ADMS_DATABASE_URL", "postgres://bridge:db-secret@db.example/adms"),
            ("ADMS_DELAY_SECS", "25"),
        ],
    ));
    for secret in ["a-very-secret-password", "db-secret"] {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
    }
    assert!(printed.contains("[devices]") && printed.contains("delay_secs = 25"), "{printed}");
    assert!(printed.contains("user = \"boss\"") && printed.contains("[REDACTED]"), "{printed}");
    assert!(printed.contains("postgres://bridge:***@db.example/adms"), "{printed}");
    // The data directory defaults to `data` beside the file, as an absolute path.
    let bare_print = ok(&bare(&["config", "print", "--config", file.to_str().unwrap()], &[]));
    let data = std::path::absolute(dir.path().join("data")).unwrap();
    assert!(bare_print.contains(&format!("sqlite://{}/adms-bridge.db", data.display())), "{bare_print}");
}

/// A command on a SQLite database that does not exist says so on one line (no backtrace, even
/// with RUST_BACKTRACE=1), exits non-zero and creates nothing.
#[test]
fn a_command_on_a_missing_database_says_so_in_one_line_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nowhere");
    for args in [
        &["token", "list"][..],
        &["user", "list"],
        &["device", "list"],
        &["device", "approve", "X"],
        &["backup", "copy.db"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--data-dir", data.to_str().unwrap()]);
        let stderr = failed(&bare(&all, &[("RUST_BACKTRACE", "1"), ("RUST_LOG", "warn")]));
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line:\n{stderr}");
        assert!(stderr.starts_with("error: no database at "), "{args:?}: {stderr}");
        assert!(stderr.contains(&data.join("adms-bridge.db").display().to_string()), "{stderr}");
        assert!(!data.exists(), "{args:?} created {}", data.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_listed_with_their_approval_and_can_be_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "pending")]).await;
    Device { server: &server, sn: "PEND0001".into() }.handshake().await;
    Device { server: &server, sn: "PEND0002".into() }.handshake().await;
    let api = Api::login(&server).await;

    let pending = ok(&cli(dir.path(), &["device", "list", "--pending"], &[]));
    assert!(pending.lines().any(|l| l.starts_with("PEND0001\t-\tpending\t")), "{pending}");
    ok(&cli(dir.path(), &["device", "approve", "PEND0001"], &[]));
    let pending = ok(&cli(dir.path(), &["device", "list", "--pending"], &[]));
    assert!(!pending.contains("PEND0001") && pending.contains("PEND0002"), "{pending}");
    let all = ok(&cli(dir.path(), &["device", "list"], &[]));
    assert!(all.lines().any(|l| l.starts_with("PEND0001\t-\tapproved\t")), "{all}");

    let approval = |list: &serde_json::Value, sn: &str| {
        list["data"].as_array().unwrap().iter().find(|t| t["sn"] == sn).map(|t| t["approval"].clone())
    };
    let terminals = api.get("/iclock/api/terminals/").await;
    assert_eq!(approval(&terminals, "PEND0001"), Some("approved".into()), "{terminals}");
    assert_eq!(approval(&terminals, "PEND0002"), Some("pending".into()), "{terminals}");

    let said = ok(&cli(dir.path(), &["device", "reject", "PEND0001"], &[]));
    assert!(said.contains("pending"), "{said}");
    let terminals = api.get("/iclock/api/terminals/").await;
    assert_eq!(approval(&terminals, "PEND0001"), Some("pending".into()), "{terminals}");
    let stderr = failed(&cli(dir.path(), &["device", "reject", "NOSUCHSN"], &[]));
    assert!(stderr.contains("no device with SN 'NOSUCHSN'"), "{stderr}");
}

/// `device reject` beside a running server: the server catches up within an activity flush,
/// so the users the device then uploads are no longer adopted into the roster (the server's
/// cached approval is what lets a terminal add employees); an approval again counts from its
/// next request. (Transactions and webhook deliveries read the approval from the database and
/// are held at once.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_from_the_cli_reaches_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("ADMS_DEVICE_USERS", "adopt_new"), ("ADMS_ACTIVITY_FLUSH_SECS", "1")];
    let server = Server::in_process(dir.path(), &env).await;
    let api = Api::login(&server).await;
    let device = Device { server: &server, sn: "REJECT01".into() };
    device.handshake().await;
    let pin = std::cell::Cell::new(500);
    // The device enrols a user with a new PIN; whether the roster then has that employee.
    let enrol_and_look = async || {
        pin.set(pin.get() + 1);
        let line = format!(
            "USER PIN={}\tName=User\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000100000000\tVerify=-1\n",
            pin.get()
        );
        let path = format!("/iclock/cdata?SN=REJECT01&table=OPERLOG&Stamp={}", pin.get());
        assert_eq!(device.post(&path, line.as_bytes()).await.text(), "OK: 1");
        let employees = api.get("/personnel/api/employees/?page_size=1000").await;
        let code = pin.get().to_string();
        employees["data"].as_array().unwrap().iter().any(|e| e["emp_code"] == code.as_str())
    };
    assert!(enrol_and_look().await, "an approved terminal's new user is adopted");

    ok(&cli(dir.path(), &["device", "reject", "REJECT01"], &[]));
    eventually("a user enrolled after the rejection is not adopted", async || !enrol_and_look().await).await;
    let stored = server.db().scalar_i64("SELECT COUNT(*) FROM device_users", &[]).await;
    assert!(stored >= 2, "what the device sent is stored, adopted or not: {stored}");

    ok(&cli(dir.path(), &["device", "approve", "REJECT01"], &[]));
    assert!(enrol_and_look().await, "approved again: its next new user is adopted");
}

/// Rotation as the README describes it: a second key under a new name, both work, the old one
/// revoked by name. Names are unique; an expired key is refused; use is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_keys_rotate_by_name_expire_and_record_their_use() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let status = |key: String| {
        let request = client.get(server.url("/iclock/api/terminals/")).header("Authorization", format!("Token {key}"));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let old = ok(&cli(dir.path(), &["token", "create", "--name", "erp"], &[])).trim().to_owned();
    let stderr = failed(&cli(dir.path(), &["token", "create", "--name", "erp"], &[]));
    assert!(stderr.contains("'erp' exists") && stderr.lines().count() == 1, "{stderr}");
    assert_eq!(status(old.clone()).await, 200);

    let new = ok(&cli(dir.path(), &["token", "create", "--name", "erp-2027"], &[])).trim().to_owned();
    assert_eq!((status(old.clone()).await, status(new.clone()).await), (200, 200), "both work meanwhile");
    ok(&cli(dir.path(), &["token", "revoke", "erp"], &[]));
    assert_eq!((status(old.clone()).await, status(new.clone()).await), (401, 200), "the old one is revoked");

    let list = ok(&cli(dir.path(), &["token", "list"], &[]));
    let line = |name: &str| list.lines().find(|l| l.split('\t').nth(1) == Some(name)).unwrap_or_default().to_owned();
    assert!(line("erp").contains("\trevoked\t"), "{list}");
    let current = line("erp-2027");
    assert!(current.contains("\tactive\t") && current.contains("\tcreated 20"), "{list}");
    assert!(current.contains("\tlast used 20") && current.contains("\texpires -"), "used just now:\n{list}");

    let short =
        ok(&cli(dir.path(), &["token", "create", "--name", "short", "--expires-in", "12h"], &[])).trim().to_owned();
    assert_eq!(status(short.clone()).await, 200);
    // Twelve hours later, as far as the key is concerned.
    let moved = server
        .db()
        .execute("UPDATE api_tokens SET expires_at = $1 WHERE name = $2", &[Bind::Int(1), "short".into()])
        .await;
    assert_eq!(moved, 1);
    assert_eq!(status(short).await, 401, "an expired key is refused");
    let list = ok(&cli(dir.path(), &["token", "list"], &[]));
    assert!(list.lines().any(|l| l.contains("\tshort\texpired\t")), "{list}");
    let stderr = failed(&cli(dir.path(), &["token", "create", "--name", "x", "--expires-in", "soon"], &[]));
    assert!(stderr.contains("90d"), "{stderr}");
}

/// An older binary on a database a newer release contracted refuses to start, naming the
/// migration it would need. (One a newer release only expanded is run on: the store's
/// `maintenance::a_database_a_newer_release_expanded_is_run_on_unchanged`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_with_a_newer_contract_migration_is_refused_at_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    server.stop();
    server
        .db()
        .execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'contract drop device aliases', TRUE, '', 0)",
            &[],
        )
        .await;
    let stderr = start_failing(dir.path(), &[]);
    assert!(stderr.contains("migration 9999 (contract drop device aliases)"), "{stderr}");
    assert!(stderr.contains("newer adms-bridge"), "{stderr}");
    let stderr = failed(&cli(dir.path(), &["token", "list"], &[]));
    assert!(stderr.contains("migration 9999") && stderr.lines().count() == 1, "{stderr}");
}

/// What `serve` says at start: the database it opened (a path, or a URL without password), and
/// loudly that there is no admin account.
#[test]
fn serve_names_its_database_and_warns_without_an_admin() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::of(dir.path());
    let mut child = db
        .command()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env("ADMS_TIME_ZONE", "UTC")
        .env("NO_COLOR", "1")
        .env_remove("ADMS_ADMIN_USER")
        .env_remove("ADMS_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains("ADMS_ADMIN_USER") && stderr.contains("ADMS_ADMIN_PASSWORD"), "{stderr}");
    match engine() {
        Engine::Sqlite => assert!(stderr.contains(&dir.path().join("adms.db").display().to_string()), "{stderr}"),
        Engine::Postgres => {
            assert!(stderr.contains("database opened"), "{stderr}");
            if let Some(password) = url_password(db.url()) {
                assert!(!stderr.contains(&format!(":{password}@")), "the password is logged: {stderr}");
            }
        }
    }
}

fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split_once('@')?.0;
    Some(userinfo.split_once(':')?.1.to_owned())
}

/// Backup while the server runs, restore once it is stopped (refused while it runs), the
/// replaced database kept; PostgreSQL is sent to pg_dump.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_is_restored_once_stopped() {
    let dir = tempfile::tempdir().unwrap();
    if engine() == Engine::Postgres {
        let _server = Server::in_process(dir.path(), &[]).await;
        let stderr = failed(&cli(dir.path(), &["backup", dir.path().join("x.db").to_str().unwrap()], &[]));
        assert!(stderr.contains("pg_dump") && stderr.lines().count() == 1, "{stderr}");
        return;
    }
    let mut server = Server::start(dir.path(), &[]);
    let device = Device { server: &server, sn: "BACKUP01".into() };
    device.handshake().await;
    assert!(device.attlog(b"1\t2026-01-05 08:00:00\t0\t1\t0\t0\t0\n").await.text().starts_with("OK"));
    let copy = dir.path().join("copy.db");
    let said = ok(&cli(dir.path(), &["backup", copy.to_str().unwrap()], &[]));
    assert!(said.contains("integrity checked"), "{said}");
    let stderr = failed(&cli(dir.path(), &["backup", copy.to_str().unwrap()], &[]));
    assert!(stderr.contains("exists"), "{stderr}");
    assert!(device.attlog(b"2\t2026-01-05 09:00:00\t0\t1\t0\t0\t0\n").await.text().starts_with("OK"));

    let stderr = failed(&cli(dir.path(), &["restore", copy.to_str().unwrap()], &[]));
    assert!(stderr.contains("stop it first"), "{stderr}");
    server.stop();
    let said = ok(&cli(dir.path(), &["restore", copy.to_str().unwrap()], &[]));
    assert!(said.contains("adms.db.before-restore"), "{said}");
    assert!(dir.path().join("adms.db.before-restore").exists());

    let server = Server::start(dir.path(), &[]);
    let api = Api::login(&server).await;
    let pins: Vec<String> =
        api.transactions("").await.iter().map(|t| t["emp_code"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(pins, ["1"], "the punch after the backup is not in it");
}

/// Pending migrations at start: the database is copied first, beside it, and the log says where.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_migrations_at_start_are_preceded_by_a_backup() {
    crate::sqlite_only!("a SQLite file is copied");
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    server.stop();
    // As an older release left it: without migrations 0027 (its column), 0028 and 0029 (nothing,
    // on SQLite).
    for statement in [
        "ALTER TABLE devices DROP COLUMN ip_address_reported",
        "DELETE FROM _sqlx_migrations WHERE version IN (27, 28, 29)",
    ] {
        server.db().execute(statement, &[]).await;
    }
    let backup = dir.path().join("adms.db.before-0029");
    assert!(!backup.exists());
    let server = Server::start(dir.path(), &[]);
    eventually("the backup is there", async || backup.exists()).await;
    let rows = server.db().scalar_i64("SELECT COUNT(*) FROM _sqlx_migrations WHERE version IN (27, 28, 29)", &[]).await;
    assert_eq!(rows, 3, "and the migrations ran");
}
