//! Scripted device sessions: every `fixtures/sessions/*.session` runs against a fresh server
//! (the application in process, its own database), played by `adms_sim`: its parser
//! (`adms_sim::session`) and player (`adms_sim::replay`), the same engine as `adms-sim replay`.
//! The `rows` and `option` steps are answered here, from the test database
//! ([`TestDatabase`]). The format is documented in `fixtures/README.md`; failures and script
//! errors name `file:line`.
//!
//! `FIXTURE_SESSION=<name>` runs only the sessions whose file name contains `<name>`.

use crate::common;

use std::path::{Path, PathBuf};

use adms_sim::replay::{CheckFuture, Credentials, DatabaseChecks, Player};
use adms_sim::session::parse_script;

use common::{ADMIN_PASSWORD, ADMIN_USER, COUNTED_TABLES, Database, Server, count_rows, device_option, fixtures};

/// The `rows` and `option` steps, read from the server's database with the suite's helpers.
struct TestDatabase<'a>(&'a Database);

impl DatabaseChecks for TestDatabase<'_> {
    fn count_rows<'a>(&'a self, table: &'a str) -> CheckFuture<'a, i64> {
        Box::pin(async move { Ok(count_rows(self.0, table).await) })
    }

    fn device_option<'a>(&'a self, sn: &'a str, key: &'a str) -> CheckFuture<'a, Option<String>> {
        Box::pin(async move { Ok(device_option(self.0, sn, key).await) })
    }
}

#[tokio::test]
async fn every_fixture_session_runs_as_scripted() {
    let only = std::env::var("FIXTURE_SESSION").ok();
    let sessions: Vec<PathBuf> = session_files()
        .into_iter()
        .filter(|p| only.as_deref().is_none_or(|name| file_name(p).contains(name)))
        .collect();
    assert!(!sessions.is_empty(), "no *.session files under {}", fixtures().join("sessions").display());
    let mut failures = Vec::new();
    for path in &sessions {
        let shown = format!("fixtures/sessions/{}", file_name(path));
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{shown}: {e}"));
        let script = match parse_script(&shown, &text, &fixtures().join("payloads")) {
            Ok(script) => script,
            Err(errors) => {
                failures.push(errors.to_string());
                continue;
            }
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let env: Vec<(&str, &str)> = script.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let server = Server::in_process(dir.path(), &env).await;
        let database = TestDatabase(server.db());
        let player = Player::new(&server.url(""))
            .expect("the server's address is a target")
            .with_credentials(Credentials { username: ADMIN_USER.to_owned(), password: ADMIN_PASSWORD.to_owned() })
            .with_database(&database);
        let report = player.play(&script).await;
        // Everything is checked here: a skipped step would be a check lost.
        assert!(report.skipped.is_empty(), "{shown}: skipped steps: {:#?}", report.skipped);
        match &report.failure {
            None => {
                for note in &report.expected_failures {
                    eprintln!("{note}");
                }
                let xfailed = report.expected_failures.len();
                eprintln!("{shown}: {} steps passed, {xfailed} failed as marked (xfail)", report.steps - xfailed);
            }
            Some(failure) => failures.push(failure.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} sessions failed:\n\n{}",
        failures.len(),
        sessions.len(),
        failures.join("\n\n")
    );
}

/// The `rows` and `option` steps are checked through [`TestDatabase`], not passed: a wrong count,
/// an absent option and an `xfail` on a step that holds each end the replay.
#[tokio::test]
async fn database_steps_fail_when_the_database_disagrees() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::in_process(dir.path(), &[]).await;
    let database = TestDatabase(server.db());
    let player = Player::new(&server.url("")).expect("target").with_database(&database);
    let payloads = fixtures().join("payloads");
    let upload = "POST /iclock/cdata?SN=FIXDBC0001&table=ATTLOG&Stamp=9999 @attlog/documented-7col.txt\n=> 200 OK: 3\n";
    let cases = [
        ("rows punches 3\nrows punches 99\n", 4, "99 rows", "3 rows"),
        (
            "option FIXDBC0001 NoSuchKey ~x\n",
            3,
            "option NoSuchKey of FIXDBC0001",
            "FIXDBC0001 has no stored option NoSuchKey",
        ),
    ];
    for (checks, line, expected, came) in cases {
        let script = parse_script("case.session", &format!("{upload}{checks}"), &payloads).expect("parses");
        let report = player.play(&script).await;
        let failure = report.failure.unwrap_or_else(|| panic!("{checks:?} passed"));
        assert_eq!(failure.at, format!("case.session:{line}"), "{failure}");
        let mismatch = failure.mismatch.as_ref().expect("a mismatch");
        assert_eq!((mismatch.expected.as_str(), mismatch.came.as_str()), (expected, came), "{failure}");
    }
    let script = parse_script("xfail.session", &format!("{upload}xfail not a bug\nrows punches 3\n"), &payloads)
        .expect("parses");
    let failure = player.play(&script).await.failure.expect("an xfail that passes fails");
    assert!(failure.to_string().contains("passes now: remove the xfail"), "{failure}");
}

/// The tables a script may count are the ones the suite's `count_rows` reads.
#[test]
fn the_counted_tables_are_the_suites() {
    // The simulator does not link the store: its list of countable tables is checked here.
    assert_eq!(adms_sim::session::COUNTED_TABLES, COUNTED_TABLES);
}

fn session_files() -> Vec<PathBuf> {
    let dir = fixtures().join("sessions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "session"))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
