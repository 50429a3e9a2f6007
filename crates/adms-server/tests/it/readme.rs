//! The README's shell examples, run as pasted against a real server.
//!
//! Every ```sh block of README.md that calls `curl` runs, in README order, in one `bash -euo
//! pipefail` session (variables such as `$TOKEN` or `$EP` carry from one block to the next, as
//! when the blocks are pasted into one terminal), with `localhost:8081` replaced by the test
//! server's address and the system curl, which fails on any HTTP status of 400 or more (a
//! command without `-f`/`--fail-with-body` gets `--fail-with-body`). A block preceded by
//! `<!-- readme-test: skip (reason) -->` is left out. The server runs with the README's admin
//! account and the product's device defaults (new serial numbers wait for approval).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{Api, Server};

/// The README's admin account (its first command block).
const README_PASSWORD: &str = "change-me";

/// One ```sh block: its first line's number in the file (1-based) and its text.
#[derive(Debug)]
struct Block {
    line: usize,
    code: String,
}

/// The ```sh blocks that call curl, without those marked `<!-- readme-test: skip (…) -->`.
fn curl_blocks(markdown: &str) -> Vec<Block> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim_start();
        let indent = lines[i].len() - fence.len();
        if fence != "```sh" {
            i += 1;
            continue;
        }
        let previous = lines[..i].iter().rev().find(|l| !l.trim().is_empty()).map(|l| l.trim());
        let skipped = previous.is_some_and(|l| l.starts_with("<!-- readme-test: skip"));
        if skipped {
            let reason = previous.and_then(|l| l.split_once('(')).map(|(_, r)| r.trim_end_matches("-->").trim());
            assert!(
                reason.is_some_and(|r| r.len() > 2),
                "README.md:{}: a skipped block names its reason: <!-- readme-test: skip (why) -->",
                i + 1
            );
        }
        let start = i + 1;
        let mut end = start;
        while end < lines.len() && lines[end].trim() != "```" {
            end += 1;
        }
        assert!(end < lines.len(), "README.md:{}: unterminated code block", i + 1);
        let code: String = lines[start..end]
            .iter()
            .map(|l| {
                let cut = l.len() - l.trim_start().len();
                format!("{}\n", &l[cut.min(indent)..])
            })
            .collect();
        if !skipped && code.contains("curl ") {
            blocks.push(Block { line: start + 1, code });
        }
        i = end + 1;
    }
    blocks
}

/// The script that runs `blocks` against `addr`: curl failing on HTTP errors, and a marker on
/// stderr before each block (`README.md:<line>`), so a failure names its block.
fn script(blocks: &[Block], addr: &str) -> String {
    let mut script = String::from(
        r#"set -euo pipefail
curl() {
    local arg fail=
    for arg in "$@"; do
        case "$arg" in --fail|--fail-with-body|-[!-]*f*) fail=1;; esac
    done
    if [ -n "$fail" ]; then command curl "$@"; else command curl --fail-with-body "$@"; fi
}
"#,
    );
    for block in blocks {
        script.push_str(&format!("echo 'README.md:{}' >&2\n", block.line));
        script.push_str(&block.code.replace("localhost:8081", addr));
    }
    script.push_str("echo 'README.md: end' >&2\n");
    script
}

/// Whether the tools the README's examples use are here; in CI they must be.
fn tools_present() -> bool {
    let missing: Vec<&str> = ["bash", "curl", "jq"]
        .into_iter()
        .filter(|tool| Command::new(tool).arg("--version").output().is_err())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "the README test needs {missing:?} on PATH");
    eprintln!("skipped: the README test needs {missing:?} on PATH");
    false
}

/// Runs `script` under bash in `cwd` with `TOKEN` set; curl reads no configuration of the user's
/// and gives up on a request after 30 s.
async fn run(script: String, cwd: &Path, token: &str) -> Output {
    let curl_home = cwd.join(".curl-home");
    std::fs::create_dir_all(&curl_home).unwrap();
    std::fs::write(curl_home.join(".curlrc"), "max-time = 30\n").unwrap();
    let (cwd, token) = (cwd.to_owned(), token.to_owned());
    // Off the runtime's thread: the server answering the script runs on it.
    tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(&cwd)
            .env("TOKEN", token)
            .env("CURL_HOME", &curl_home)
            .output()
            .expect("run bash")
    })
    .await
    .unwrap()
}

async fn start_server(dir: &Path) -> (Server, Api) {
    let server = Server::in_process(
        dir,
        &[
            ("ADMS_ADMIN_PASSWORD", README_PASSWORD),
            ("ADMS_UNKNOWN_DEVICES", "pending"),
            ("ADMS_DEVICE_REGISTRATIONS_PER_MINUTE", "30"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let login: Value = client
        .post(server.url("/api-token-auth/"))
        .json(&serde_json::json!({ "username": "admin", "password": README_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().expect("token").to_owned();
    let api = Api { client, server_addr: server.addr.clone(), token };
    (server, api)
}

#[tokio::test]
async fn readme_curl_examples_run_as_pasted() {
    if !tools_present() {
        return;
    }
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let blocks = curl_blocks(&readme);
    assert!(blocks.len() >= 8, "{} curl blocks found in README.md", blocks.len());
    let dir = tempfile::tempdir().unwrap();
    let (server, api) = start_server(dir.path()).await;
    let work = tempfile::tempdir().unwrap();
    let output = run(script(&blocks, &server.addr), work.path(), &api.token).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last_block = stderr.lines().rev().find(|l| l.starts_with("README.md:")).unwrap_or("before any block");
    assert!(
        output.status.success(),
        "the README's commands failed in the block at {last_block} ({}):\nstderr:\n{stderr}\nstdout:\n{stdout}",
        output.status
    );
    assert_eq!(last_block, "README.md: end", "{stderr}");

    // The story the blocks tell happened on the server.
    let punches = api.transactions("emp_code=016").await;
    assert_eq!(punches.len(), 1, "the played terminal's punch: {punches:?}");
    assert_eq!(punches[0]["terminal_sn"], "CKJF0000001");
    assert_eq!(punches[0]["first_name"], "José", "the employee the README creates");
    assert!(stdout.contains("\"emp_code\": \"016\""), "the punch listed by the README's jq filter: {stdout}");
    let users = api.get("/api/v1/users").await;
    let olga = users["data"].as_array().unwrap().iter().find(|u| u["username"] == "olga").expect("olga");
    assert_eq!(olga["disabled"], true, "{olga}");
    let endpoint: Value = serde_json::from_slice(&std::fs::read(work.path().join("endpoint.json")).unwrap()).unwrap();
    assert!(endpoint["secret"].as_str().is_some_and(|s| s.starts_with("whsec_")), "{endpoint}");
    let document: Value =
        serde_json::from_slice(&std::fs::read(work.path().join("adms-bridge.openapi.json")).unwrap()).unwrap();
    assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")));
    let csv = std::fs::read(work.path().join("transactions.csv")).unwrap();
    assert!(csv.starts_with(b"\xEF\xBB\xBFid,emp,emp_code,"), "{:?}", String::from_utf8_lossy(&csv));
    assert!(String::from_utf8_lossy(&csv).contains(",016,"), "{}", String::from_utf8_lossy(&csv));
    let xlsx = std::fs::read(work.path().join("transactions.xlsx")).unwrap();
    assert!(xlsx.starts_with(b"PK"), "a workbook (a zip file)");
}

/// The runner itself: a command answered with an error status fails the run, whether or not
/// the README's command says `-f`, and a marked block is left out.
#[tokio::test]
async fn readme_runner_fails_on_an_error_status_and_skips_marked_blocks() {
    if !tools_present() {
        return;
    }
    let markdown = "\
Text.

```sh
curl -s localhost:8081/iclock/api/terminals/ -H \"Authorization: Token $TOKEN\" >/dev/null
```

<!-- readme-test: skip (needs a terminal on the network) -->
```sh
curl -s localhost:8081/no/such/thing
```

- In a list:

  ```sh
  curl -s localhost:8081/api/v1/users/999 -H \"Authorization: Token $TOKEN\"
  ```
";
    let blocks = curl_blocks(markdown);
    assert_eq!(blocks.iter().map(|b| b.line).collect::<Vec<_>>(), [4, 15], "{blocks:?}");
    assert!(blocks[1].code.starts_with("curl -s "), "indentation removed: {:?}", blocks[1].code);
    let dir = tempfile::tempdir().unwrap();
    let (server, api) = start_server(dir.path()).await;
    let work = tempfile::tempdir().unwrap();

    let output = run(script(&blocks[..1], &server.addr), work.path(), &api.token).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // 404 for an unknown user: curl without -f in the README still fails the run.
    let output = run(script(&blocks, &server.addr), work.path(), &api.token).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("README.md:15") && !stderr.contains("README.md: end"), "{stderr}");
    // And with -f (here without the token: 401).
    let unauthorised = [Block { line: 1, code: "curl -sf localhost:8081/api/v1/users >/dev/null\n".into() }];
    let output = run(script(&unauthorised, &server.addr), work.path(), &api.token).await;
    assert!(!output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}
