//! A client generated from `/api/openapi.json` by a third-party generator (openapi-python-client,
//! from PyPI) logs in and creates an employee against a live server.
//!
//! Without the generator on the machine the test says so and passes, except in CI (`CI` set),
//! where it installs it (pip, as `.ci/run` does) and fails if it cannot.

use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{ADMIN_PASSWORD, ADMIN_USER, Api, Server};

/// The generator, run as `python3 -m openapi_python_client`.
const GENERATOR: &str = "openapi_python_client";
const PACKAGE: &str = "openapi-python-client";
/// The version `.ci/run` installs.
const PINNED: &str = "openapi-python-client==0.29.1";

fn python(args: &[&str]) -> std::io::Result<Output> {
    Command::new("python3").args(args).output()
}

fn generator_present() -> bool {
    python(&["-m", GENERATOR, "--version"]).is_ok_and(|o| o.status.success())
}

/// Whether the generator can run; installs it in CI.
fn generator_available() -> bool {
    if generator_present() {
        return true;
    }
    if std::env::var_os("CI").is_none() {
        eprintln!(
            "skipped: {PACKAGE} is not installed (`python3 -m pip install {PACKAGE}`); in CI (CI=true) it is installed"
        );
        return false;
    }
    for extra in [&["--break-system-packages"][..], &[]] {
        let mut args = vec!["-m", "pip", "install", "--quiet"];
        args.extend_from_slice(extra);
        args.push(PINNED);
        if python(&args).is_ok_and(|o| o.status.success()) && generator_present() {
            return true;
        }
    }
    panic!("CI: {PACKAGE} could not be installed with pip");
}

/// Logs in with the generated login calls (`/api-token-auth/` for a session token,
/// `/jwt-api-token-auth/` for a JWT), then creates an employee with the generated create call
/// under the JWT, and prints what the generated model parsed from the answer.
const SCRIPT: &str = r#"
import json, sys
from adms_client import AuthenticatedClient, Client
from adms_client.api.zk_bio_time_auth import post_api_token_auth, post_jwt_api_token_auth
from adms_client.api.personnel import post_personnel_api_employees
from adms_client.models import EmployeeRecord, EmployeeWrite, LoginBody, TokenAnswer

base_url, username, password = sys.argv[1:4]
login = post_api_token_auth.sync_detailed(
    client=Client(base_url=base_url), body=LoginBody(username=username, password=password)
)
assert login.status_code == 200, (login.status_code, login.content)
assert isinstance(login.parsed, TokenAnswer), login.parsed
assert len(login.parsed.token) == 40, login.parsed.token
jwt = post_jwt_api_token_auth.sync_detailed(
    client=Client(base_url=base_url), body=LoginBody(username=username, password=password)
)
assert jwt.status_code == 200, (jwt.status_code, jwt.content)
assert jwt.parsed.token.count(".") == 2, jwt.parsed.token
client = AuthenticatedClient(base_url=base_url, token=jwt.parsed.token, prefix="JWT")
body = EmployeeWrite.from_dict(
    {"emp_code": "0077", "first_name": "Zoë", "last_name": "Ade", "department": 1, "area": [1]}
)
created = post_personnel_api_employees.sync_detailed(client=client, body=body)
assert created.status_code == 201, (created.status_code, created.content)
assert isinstance(created.parsed, EmployeeRecord), created.parsed
record = created.parsed
print(json.dumps({"id": record.id, "emp_code": record.emp_code, "first_name": record.first_name}))
"#;

async fn blocking(mut command: Command) -> Output {
    // Off the runtime's thread: the server the command talks to runs on it.
    tokio::task::spawn_blocking(move || command.output().expect("run python3")).await.unwrap()
}

fn expect_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn generated_python_client_logs_in_and_creates_an_employee() {
    if !generator_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let document = api
        .client
        .get(server.url("/api/openapi.json"))
        .header("Authorization", format!("Token {}", api.token))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let spec = work.path().join("openapi.json");
    std::fs::write(&spec, &document).unwrap();

    let package = work.path().join("adms_client");
    let mut generate = Command::new("python3");
    generate
        .args(["-m", GENERATOR, "generate", "--meta", "none", "--path"])
        .arg(&spec)
        .arg("--output-path")
        .arg(&package);
    let output = blocking(generate).await;
    expect_success("openapi-python-client generate", &output);
    assert!(package.join("api/personnel/post_personnel_api_employees.py").is_file());

    let script = work.path().join("use_client.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let mut run = Command::new("python3");
    run.arg(&script)
        .args([&format!("http://{}", server.addr), ADMIN_USER, ADMIN_PASSWORD])
        .env("PYTHONPATH", work.path())
        .current_dir(work.path());
    let output = blocking(run).await;
    expect_success("the generated client", &output);
    let printed: Value = serde_json::from_slice(&output.stdout).expect("the script's JSON line");
    assert_eq!(printed["emp_code"], "0077");
    assert_eq!(printed["first_name"], "Zoë");
    let id = printed["id"].as_i64().expect("an id");
    let stored = api.get(&format!("/personnel/api/employees/{id}/")).await;
    assert_eq!((&stored["emp_code"], &stored["last_name"]), (&Value::from("0077"), &Value::from("Ade")));
}
