//! Webhook endpoint management in the console (issue 18): create (the API's rules and address
//! policy), the secret shown once after create and after a rotation and never again, replay a
//! range of punches, delete after a confirmation; every form refused without its CSRF token.

use crate::common;
use crate::console::{Console, hidden_field};

use common::webhooks::Receiver;
use common::{Api, Device, Server};

/// Whether the request carries a valid signature made with `secret` (the independent library).
fn signed_with(r: &common::webhooks::Received, secret: &str) -> bool {
    let theirs = standardwebhooks::Webhook::new(secret).unwrap().sign(&r.id, r.timestamp, &r.body).unwrap();
    r.signature.split(' ').any(|s| s == theirs)
}

/// The secret a page shows once, if it shows one.
fn shown_secret(page: &str) -> Option<String> {
    let start = page.find(r#"<code id="new-secret-value">"#)? + r#"<code id="new-secret-value">"#.len();
    let end = page[start..].find("</code>")?;
    Some(page[start..start + end].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_is_created_its_secret_shown_once_rotated_replayed_and_deleted_from_the_console() {
    let receiver = Receiver::builder().only("attendance.punch").start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    // Two punches stored before any endpoint exists: only a replay sends them.
    let terminal = Device { server: &server, sn: "HOOKS1".into() };
    assert_eq!(terminal.handshake().await.status, 200);
    let lines = b"5\t2026-11-20 08:00:00\t0\t1\t\t0\t0\n6\t2026-11-20 08:05:00\t0\t1\t\t0\t0\n";
    assert_eq!(terminal.attlog(lines).await.text(), "OK: 2");
    let console = Console::login(&server).await;
    let csrf = console.csrf().await;
    let url = receiver.url();

    // Without the token: refused, nothing created.
    let form = [("url", url.as_str()), ("event", "attendance.punch")];
    assert_eq!(console.post("/ui/webhooks/endpoints", &form).await.status(), 403);
    assert_eq!(api.get("/api/v1/webhooks/endpoints").await["data"].as_array().unwrap().len(), 0);
    // The API's rules, explained on the page.
    for (bad_url, event, why) in [
        ("ftp://erp.example.com/", "attendance.punch", "Only http and https URLs are accepted."),
        ("http://169.254.169.254/latest", "attendance.punch", "is not allowed for webhooks"),
        (url.as_str(), "punch", "Unknown event type &#34;punch&#34;."),
    ] {
        let response =
            console.post("/ui/webhooks/endpoints", &[("csrf_token", &csrf), ("url", bad_url), ("event", event)]).await;
        assert_eq!(response.status(), 400, "{bad_url} {event}");
        let page = response.text().await.unwrap();
        assert!(page.contains(why), "{why} in {page}");
    }
    assert_eq!(api.get("/api/v1/webhooks/endpoints").await["data"].as_array().unwrap().len(), 0);

    // Created: the page shows the secret this once.
    let fields =
        [("csrf_token", csrf.as_str()), ("url", &url), ("description", "ERP <test>"), ("event", "attendance.punch")];
    let response = console.post("/ui/webhooks/endpoints", &fields).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let page = response.text().await.unwrap();
    let secret = shown_secret(&page).expect("the new secret on the page");
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(page.contains("ERP &#60;test&#62;"), "the description as text");
    let endpoints = api.get("/api/v1/webhooks/endpoints").await;
    let uid = endpoints["data"][0]["id"].as_str().expect("created").to_owned();
    assert_eq!(endpoints["data"][0]["event_types"], serde_json::json!(["attendance.punch"]));
    let href = format!("/ui/webhooks/endpoints/{uid}");
    let again = console.page(&href).await;
    assert!(!again.contains(&secret) && shown_secret(&again).is_none(), "never shown again");
    assert!(console.page("/ui/webhooks").await.contains(&format!(r#"<a href="{href}">"#)), "listed with its page");

    // A replay range is checked as the API checks it, then queued and signed with the secret.
    let replay = format!("{href}/replay");
    for (fields, why) in [
        (vec![("device_sn", "NOPE")], "Unknown device."),
        (vec![("from_seq", "1")], "Required with from_seq/to_seq"),
        (vec![("from_time", "2026-11-20T08:00:00Z")], "From time: device-local"),
    ] {
        let mut form = vec![("csrf_token", csrf.as_str())];
        form.extend(fields);
        let response = console.post(&replay, &form).await;
        assert_eq!(response.status(), 400);
        assert!(response.text().await.unwrap().contains(why), "{why}");
    }
    assert_eq!(console.post(&replay, &[("device_sn", "HOOKS1")]).await.status(), 403, "without the token");
    let range = [("csrf_token", csrf.as_str()), ("device_sn", "HOOKS1"), ("from_time", "2026-11-20")];
    let response = console.post(&replay, &range).await;
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, format!("{href}?done=replayed&replayed=2&created=2"));
    assert!(console.page(&location).await.contains("Replay queued: 2 punch events"));
    let delivered = receiver.wait_for_n("attendance.punch", 2).await;
    assert!(delivered.iter().all(|r| signed_with(r, &secret)), "signed with the secret shown");

    // Rotation: refused without the token; then a new secret, shown once.
    assert_eq!(console.post(&format!("{href}/rotate-secret"), &[]).await.status(), 403);
    let bad_grace =
        console.post(&format!("{href}/rotate-secret"), &[("csrf_token", &csrf), ("grace_hours", "999")]).await;
    assert_eq!(bad_grace.status(), 400);
    let response = console.post(&format!("{href}/rotate-secret"), &[("csrf_token", &csrf), ("grace_hours", "0")]).await;
    assert_eq!(response.status(), 200);
    let rotated = shown_secret(&response.text().await.unwrap()).expect("the rotated secret");
    assert!(rotated.starts_with("whsec_") && rotated != secret);
    assert!(!console.page(&href).await.contains(&rotated), "never shown again");

    // Delete: a confirmation page first, the post refused without the token, then gone.
    let confirm = console.page(&format!("{href}/delete")).await;
    assert!(confirm.contains(r#"id="confirm-delete""#));
    assert_eq!(hidden_field(&confirm, "csrf_token").as_deref(), Some(csrf.as_str()));
    assert_eq!(console.post(&format!("{href}/delete"), &[]).await.status(), 403);
    assert_eq!(api.get_status(&format!("/api/v1/webhooks/endpoints/{uid}")).await.0, 200, "still there");
    let response = console.post(&format!("{href}/delete"), &[("csrf_token", &csrf)]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/ui/webhooks?done=deleted");
    assert_eq!(api.get_status(&format!("/api/v1/webhooks/endpoints/{uid}")).await.0, 404);
    assert_eq!(console.get(&href).await.status(), 404);
}
