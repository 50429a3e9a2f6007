//! Users and roles (`/api/v1/users`, `adms-bridge user`), scopes of users and integration
//! keys, and the audit log of state-changing requests.

use std::io::Write as _;
use std::process::Stdio;

use crate::common;

use common::{ADMIN_USER, Api, Device, Server, eventually};
use serde_json::{Value, json};

const FORBIDDEN: &str = "You do not have permission to perform this action.";

/// Runs the CLI against the server's database; stdin gets `input` when given.
pub fn cli(server: &Server, args: &[&str], env: &[(&str, &str)], input: Option<&str>) -> std::process::Output {
    let mut command = server.db().command();
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("ADMS_USER_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn the CLI");
    let mut stdin = child.stdin.take().expect("stdin");
    if let Some(input) = input {
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    drop(stdin);
    child.wait_with_output().expect("CLI output")
}

/// An integration key with these scopes, made by `adms-bridge token create`.
pub fn integration_key(server: &Server, name: &str, scopes: &[&str]) -> String {
    let mut args = vec!["token", "create", "--name", name];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    let out = cli(server, &args, &[], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A session of `username` (same client calls as [`Api::login`]).
async fn login_as(server: &Server, username: &str, password: &str) -> Api {
    let client = reqwest::Client::new();
    let response = client
        .post(server.url("/api-token-auth/"))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "login as {username}");
    let body: Value = response.json().await.unwrap();
    Api { client, server_addr: server.addr.clone(), token: body["token"].as_str().unwrap().to_owned() }
}

fn with_token(api: &Api, token: &str) -> Api {
    Api { client: api.client.clone(), server_addr: api.server_addr.clone(), token: token.to_owned() }
}

#[tokio::test]
async fn user_crud_last_admin_protection_and_ended_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let admin = Api::login(&server).await;

    let (status, listed) = admin.get_status("/api/v1/users").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["data"][0]["username"], ADMIN_USER);
    assert_eq!(listed["data"][0]["role"], "admin", "the bootstrap account is an admin");
    let admin_id = listed["data"][0]["id"].as_i64().unwrap();

    let (status, created) = admin
        .post_json("/api/v1/users", &json!({ "username": "olga", "password": "operator pass", "role": "operator" }))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!((created["username"].clone(), created["role"].clone()), (json!("olga"), json!("operator")));
    assert!(created.get("password").is_none() && created.get("password_hash").is_none(), "{created}");
    let olga_id = created["id"].as_i64().unwrap();
    let (status, again) = admin
        .post_json("/api/v1/users", &json!({ "username": "olga", "password": "another pass", "role": "viewer" }))
        .await;
    assert_eq!((status, again), (400, json!({ "username": ["A user with that username already exists."] })));
    let (status, bad) =
        admin.post_json("/api/v1/users", &json!({ "username": "x", "password": "long enough", "role": "root" })).await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad.get("role").is_some(), "{bad}");

    let (status, got) = admin.get_status(&format!("/api/v1/users/{olga_id}")).await;
    assert_eq!((status, got["disabled"].clone()), (200, json!(false)), "{got}");

    // The operator may not manage users.
    let olga = login_as(&server, "olga", "operator pass").await;
    let (status, body) = olga.get_status("/api/v1/users").await;
    assert_eq!((status, body), (403, json!({ "detail": FORBIDDEN })));

    // A new password ends the account's sessions; the new one works.
    let (status, patched) =
        admin.patch_json(&format!("/api/v1/users/{olga_id}"), &json!({ "password": "fresh password" })).await;
    assert_eq!(status, 200, "{patched}");
    let (status, _) = olga.get_status("/iclock/api/terminals/").await;
    assert_eq!(status, 401, "the session from before the password change is ended");
    let olga = login_as(&server, "olga", "fresh password").await;
    assert_eq!(olga.get_status("/iclock/api/terminals/").await.0, 200);

    // Disabled: its token is refused and it cannot log in.
    let (status, patched) = admin.patch_json(&format!("/api/v1/users/{olga_id}"), &json!({ "disabled": true })).await;
    assert_eq!((status, patched["disabled"].clone()), (200, json!(true)), "{patched}");
    assert_eq!(olga.get_status("/iclock/api/terminals/").await.0, 401);
    let refused = admin
        .client
        .post(server.url("/api-token-auth/"))
        .json(&json!({ "username": "olga", "password": "fresh password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);

    // The last enabled admin can be neither disabled, demoted nor deleted.
    for (method, body) in [
        (reqwest::Method::PATCH, Some(json!({ "disabled": true }))),
        (reqwest::Method::PATCH, Some(json!({ "role": "viewer" }))),
        (reqwest::Method::DELETE, None),
    ] {
        let (status, answer) = admin.send(method.clone(), &format!("/api/v1/users/{admin_id}"), body.as_ref()).await;
        assert_eq!(status, 409, "{method}: {answer}");
    }
    // A second admin makes the first removable.
    let (status, _) = admin
        .post_json("/api/v1/users", &json!({ "username": "ada", "password": "second admin", "role": "admin" }))
        .await;
    assert_eq!(status, 201);
    let ada = login_as(&server, "ada", "second admin").await;
    let (status, _) = ada.patch_json(&format!("/api/v1/users/{admin_id}"), &json!({ "role": "viewer" })).await;
    assert_eq!(status, 200);

    let (status, _) = ada.delete(&format!("/api/v1/users/{olga_id}")).await;
    assert_eq!(status, 204);
    assert_eq!(ada.get_status(&format!("/api/v1/users/{olga_id}")).await.0, 404);
    let (_, listed) = ada.get_status("/api/v1/users").await;
    assert_eq!(listed["count"], 2);
}

#[tokio::test]
async fn cli_manages_users() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let out =
        cli(&server, &["user", "create", "vera", "--role", "viewer"], &[("ADMS_USER_PASSWORD", "viewer pass")], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli(&server, &["user", "create", "otto", "--role", "operator"], &[], Some("from stdin\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli(&server, &["user", "list"], &[], None);
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(listing.contains("vera") && listing.contains("viewer"), "{listing}");
    assert!(listing.contains("otto") && listing.contains("operator"), "{listing}");

    let vera = login_as(&server, "vera", "viewer pass").await;
    let otto = login_as(&server, "otto", "from stdin").await;
    let out = cli(&server, &["user", "password", "otto"], &[("ADMS_USER_PASSWORD", "new otto pass")], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(otto.get_status("/iclock/api/terminals/").await.0, 401, "password change ends sessions");
    login_as(&server, "otto", "new otto pass").await;

    let out = cli(&server, &["user", "disable", "vera"], &[], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The account cache trusts a state for at most a second.
    eventually("the disabled account's session is refused (401)", async || {
        vera.get_status("/iclock/api/terminals/").await.0 == 401
    })
    .await;
    let out = cli(&server, &["user", "delete", "vera"], &[], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The last admin stays.
    let out = cli(&server, &["user", "disable", ADMIN_USER], &[], None);
    assert!(!out.status.success(), "disabling the last admin must fail");
    let out = cli(&server, &["user", "delete", ADMIN_USER], &[], None);
    assert!(!out.status.success(), "deleting the last admin must fail");
}

#[tokio::test]
async fn a_viewer_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let admin = Api::login(&server).await;
    let (status, _) = admin
        .post_json("/api/v1/users", &json!({ "username": "vic", "password": "viewer pass", "role": "viewer" }))
        .await;
    assert_eq!(status, 201);
    let vic = login_as(&server, "vic", "viewer pass").await;
    assert_eq!(vic.get_status("/iclock/api/transactions/").await.0, 200);
    assert_eq!(vic.get_status("/personnel/api/departments/").await.0, 200);
    let (status, body) =
        vic.post_json("/personnel/api/departments/", &json!({ "dept_code": "D9", "dept_name": "Nine" })).await;
    assert_eq!((status, body), (403, json!({ "detail": FORBIDDEN })));
    let (status, body) = vic.post_json("/api/v1/webhooks/endpoints", &json!({ "url": "https://example.com/x" })).await;
    assert_eq!((status, body), (403, json!({ "detail": FORBIDDEN })));
}

#[tokio::test]
async fn a_read_key_lists_transactions_but_cannot_control_devices() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let dev = Device { server: &server, sn: "SCOPE01".into() };
    assert_eq!(dev.handshake().await.status, 200);
    assert_eq!(dev.attlog(b"7\t2026-11-02 08:00:00\t0\t1\t0\t0\t0\n").await.text(), "OK: 1");
    let admin = Api::login(&server).await;
    let terminal_id = admin.get("/iclock/api/terminals/?sn=SCOPE01").await["data"][0]["id"].as_i64().unwrap();

    // Without --scope a key may only read: least privilege.
    let default_key = integration_key(&server, "reporting", &[]);
    let read_key = integration_key(&server, "payroll", &["read"]);
    for key in [&default_key, &read_key] {
        let api = with_token(&admin, key);
        assert_eq!(api.transactions("").await.len(), 1);
        let (status, body) =
            api.post_json("/api/v1/devices/SCOPE01/commands", &json!({ "command": { "type": "unlock" } })).await;
        assert_eq!((status, body), (403, json!({ "detail": FORBIDDEN })));
        let (status, body) =
            api.post_json("/iclock/api/terminals/reboot/", &json!({ "terminals": [terminal_id] })).await;
        assert_eq!((status, body), (403, json!({ "detail": FORBIDDEN })));
        let (status, _) =
            api.post_json("/iclock/api/terminals/clear_all/", &json!({ "terminals": [terminal_id] })).await;
        assert_eq!(status, 403);
    }
    // With devices:control it may.
    let control = with_token(&admin, &integration_key(&server, "doors", &["devices:control"]));
    let (status, body) =
        control.post_json("/api/v1/devices/SCOPE01/commands", &json!({ "command": { "type": "unlock" } })).await;
    assert!(status == 201 || status == 200, "{status} {body}");
    let (status, body) =
        control.post_json("/iclock/api/terminals/reboot/", &json!({ "terminals": [terminal_id] })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(control.get_status("/iclock/api/transactions/").await.0, 403, "no read scope");

    // `token list` shows each key's scopes.
    let out = cli(&server, &["token", "list"], &[], None);
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = |name: &str| listing.lines().find(|l| l.contains(name)).unwrap_or_default().to_owned();
    assert!(line("payroll").contains("read") && !line("payroll").contains("devices:control"), "{listing}");
    assert!(line("doors").contains("devices:control"), "{listing}");
    // An unknown scope is refused.
    let out = cli(&server, &["token", "create", "--name", "bad", "--scope", "everything"], &[], None);
    assert!(!out.status.success());
}

/// Audit entries of `api` (admin) matching `query`.
async fn audit(api: &Api, query: &str) -> Vec<Value> {
    let (status, page) = api.get_status(&format!("/api/v1/audit-log?page_size=100{query}")).await;
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn writes_are_audited_with_actor_route_status_and_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let dev = Device { server: &server, sn: "AUDIT01".into() };
    assert_eq!(dev.handshake().await.status, 200);
    let admin = Api::login(&server).await;

    let (status, _) =
        admin.post_json("/personnel/api/departments/", &json!({ "dept_code": "D1", "dept_name": "One" })).await;
    assert_eq!(status, 201);
    let control = with_token(&admin, &integration_key(&server, "doors", &["devices:control"]));
    let (status, _) =
        control.post_json("/api/v1/devices/AUDIT01/commands", &json!({ "command": { "type": "reboot" } })).await;
    assert!(status == 201 || status == 200, "{status}");
    let reader = with_token(&admin, &integration_key(&server, "payroll", &["read"]));
    let (status, _) =
        reader.post_json("/api/v1/devices/AUDIT01/commands", &json!({ "command": { "type": "reboot" } })).await;
    assert_eq!(status, 403);
    // Reads are not audited.
    reader.transactions("").await;
    let out =
        cli(&server, &["user", "create", "vera", "--role", "viewer"], &[("ADMS_USER_PASSWORD", "viewer pass")], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let entries = audit(&admin, "").await;
    assert!(entries.iter().all(|e| e["method"] != "GET"), "reads are not audited: {entries:?}");
    // Newest first: the CLI's user creation, the refused command, the CLI's key creation, the
    // queued command, the CLI's key creation, the department.
    let summary: Vec<String> =
        entries.iter().map(|e| format!("{} {} {}", e["actor"], e["method"], e["route"])).collect();
    assert_eq!(entries.len(), 6, "{summary:#?}");
    let cli_entry = &entries[0];
    assert_eq!(cli_entry["actor"], "cli");
    assert_eq!(cli_entry["actor_kind"], "cli");
    assert_eq!(cli_entry["method"], "CLI");
    assert_eq!(cli_entry["route"], "user create");
    assert_eq!(cli_entry["target"], "vera");
    let refused = &entries[1];
    assert_eq!(refused["actor"], "payroll");
    assert_eq!(refused["actor_kind"], "integration");
    assert!(refused["token_id"].is_i64(), "{refused}");
    assert_eq!(refused["method"], "POST");
    assert_eq!(refused["route"], "/api/v1/devices/{sn}/commands");
    assert_eq!(refused["target"], "AUDIT01");
    assert_eq!(refused["status"], 403);
    assert_eq!(refused["address"], "127.0.0.1");
    assert_eq!((entries[2]["actor"].clone(), entries[2]["route"].clone()), (json!("cli"), json!("token create")));
    assert_eq!(entries[2]["target"], "payroll");
    assert_eq!(entries[3]["actor"], "doors");
    assert!(entries[3]["status"] == 201 || entries[3]["status"] == 200, "{}", entries[3]);
    let department = &entries[5];
    assert_eq!(department["actor"], ADMIN_USER);
    assert_eq!(department["actor_kind"], "session");
    assert!(department["user_id"].is_i64(), "{department}");
    assert_eq!(department["method"], "POST");
    assert_eq!(department["route"], "/personnel/api/departments");
    assert_eq!(department["status"], 201);
    assert_eq!(department["address"], "127.0.0.1");
    assert!(department["at"].as_str().unwrap().ends_with('Z'), "{department}");
    // Filters.
    let by_doors = audit(&admin, "&user=doors").await;
    assert_eq!(by_doors.len(), 1, "{by_doors:?}");
    let since = refused["at"].as_str().unwrap();
    let recent = audit(&admin, &format!("&since={since}")).await;
    assert_eq!(recent.len(), 2, "{recent:?}");

    // Only the admin scope reads it.
    let operator_key = integration_key(&server, "ops", &["read", "roster:write", "devices:control", "webhooks:admin"]);
    let (status, body) = with_token(&admin, &operator_key).get_status("/api/v1/audit-log").await;
    assert_eq!((status, body), (403, json!({ "detail": FORBIDDEN })));
    let (status, _) = reader.get_status("/api/v1/audit-log").await;
    assert_eq!(status, 403);
}
