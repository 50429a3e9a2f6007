//! Every `fixtures/sessions/*.session` played by the `adms-sim replay` binary against the real
//! `adms-bridge` process ([`Server::start`]) on a fresh database of the suite's engine (SQLite,
//! or PostgreSQL with `ADMS_TEST_DATABASE=postgres`): what an operator does against a running
//! server. The `rows` and `option` steps go through the API (`adms-sim` has the admin account),
//! so nothing is skipped. `fixture_sessions` plays the same files in process, with the database
//! read directly; this one proves the binary and the API path.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ADMIN_PASSWORD, ADMIN_USER, Server, fixtures};

/// The `adms-sim` binary of this build. Cargo builds another package's binary only for that
/// package's tests, so when `cargo test -p adms-server` runs alone it is built here first (a
/// no-op when `cargo test --workspace` already did).
pub fn adms_sim_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/it-HASH → target/<profile>/adms-sim
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let binary = profile_dir.join(format!("adms-sim{}", std::env::consts::EXE_SUFFIX));
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let target_dir = profile_dir.parent().expect("the target folder");
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--quiet", "-p", "adms-sim", "--bin", "adms-sim", "--target-dir"]).arg(target_dir);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build -p adms-sim");
        assert!(status.success(), "cargo build -p adms-sim failed");
    });
    assert!(binary.is_file(), "{} was not built", binary.display());
    binary
}

#[test]
fn every_fixture_session_replays_through_the_binary() {
    let binary = adms_sim_binary();
    let dir = fixtures().join("sessions");
    let mut sessions: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("sessions")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "session"))
        .collect();
    sessions.sort();
    assert!(sessions.len() >= 4, "{sessions:?}");
    let mut failures = Vec::new();
    for session in &sessions {
        let shown = session.display().to_string();
        let text = std::fs::read_to_string(session).expect("read");
        let script = adms_sim::session::parse_script(&shown, &text, &fixtures().join("payloads")).expect("parses");
        let folder = tempfile::tempdir().expect("temp dir");
        let env: Vec<(&str, &str)> = script.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let server = Server::start(folder.path(), &env);
        let output = Command::new(&binary)
            .args(["replay", &shown, "--target", &server.url(""), "--user", ADMIN_USER, "--password", ADMIN_PASSWORD])
            .env_remove("ADMS_SIM_API_KEY")
            .output()
            .expect("run adms-sim");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let steps = script.steps.len();
        let xfails = script.steps.iter().filter(|s| s.xfail.is_some()).count();
        let ok = format!(
            "{shown}: OK, {steps} steps: {} steps passed, {xfails} failed as marked (xfail), 0 skipped",
            steps - xfails
        );
        if output.status.code() != Some(0) || !stdout.lines().any(|l| l == ok) {
            failures.push(format!(
                "{shown}: exit {:?}, expected the line {ok:?}\n{stdout}{}",
                output.status.code(),
                String::from_utf8_lossy(&output.stderr)
            ));
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
