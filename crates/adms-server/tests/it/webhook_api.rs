//! The native webhook API end to end: endpoints (secret shown once, validation, SSRF refusal,
//! pause/resume, rotation, deletion), deliveries and their attempts, resend, the per-device
//! punch cursor, and replay to one endpoint without fan-out to the others.

use crate::common;

use std::collections::{HashMap, HashSet};

use common::webhooks::{Receiver, Reply};
use common::{Api, Device, Server, eventually};
use serde_json::{Value, json};

const ENDPOINTS: &str = "/api/v1/webhooks/endpoints";

/// What `receiver` got, as (path, webhook-id, body).
fn triples(receiver: &Receiver) -> Vec<(String, String, String)> {
    receiver.received().into_iter().map(|r| (r.path, r.id, String::from_utf8_lossy(&r.body).into_owned())).collect()
}

fn field_errors(body: &Value, field: &str) -> String {
    body[field].as_array().map(|m| m.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

/// A server that lets no private address through (the harness's loopback allowance would open
/// 127.0.0.1, which the validation below must refuse), and its API.
async fn server_without_private_receivers(dir: &std::path::Path) -> (Server, Api) {
    let server =
        Server::in_process(dir, &[("ADMS_WEBHOOK_ALLOW_PRIVATE", "false"), ("ADMS_WEBHOOK_ALLOW_LIST", "")]).await;
    let api = Api::login(&server).await;
    (server, api)
}

/// Creates an endpoint for `url`: its id and its secret (shown this once).
async fn created_endpoint(api: &Api, url: &str) -> (String, String) {
    let (status, created) = api.post_json(ENDPOINTS, &json!({ "url": url })).await;
    assert_eq!(status, 201, "{created}");
    (created["id"].as_str().unwrap().to_owned(), created["secret"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn every_webhook_route_answers_401_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _api) = server_without_private_receivers(dir.path()).await;
    // No token: 401 everywhere.
    let client = reqwest::Client::new();
    for (method, path) in [
        ("GET", ENDPOINTS),
        ("POST", ENDPOINTS),
        ("GET", "/api/v1/webhooks/endpoints/ep_x"),
        ("PATCH", "/api/v1/webhooks/endpoints/ep_x"),
        ("DELETE", "/api/v1/webhooks/endpoints/ep_x"),
        ("POST", "/api/v1/webhooks/endpoints/ep_x/rotate-secret"),
        ("POST", "/api/v1/webhooks/endpoints/ep_x/replay"),
        ("GET", "/api/v1/webhooks/deliveries"),
        ("GET", "/api/v1/webhooks/deliveries/1/attempts"),
        ("POST", "/api/v1/webhooks/deliveries/1/resend"),
        ("GET", "/api/v1/webhooks/backlog"),
        ("GET", "/api/v1/devices/SN1/punches"),
    ] {
        let response = client.request(method.parse().unwrap(), server.url(path)).json(&json!({})).send().await.unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"detail": "Authentication credentials were not provided."}));
    }
}

#[tokio::test]
async fn a_created_endpoint_has_defaults_and_its_secret_is_shown_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api) = server_without_private_receivers(dir.path()).await;
    // Create: 201, defaults, the secret this once.
    let (status, created) = api.post_json(ENDPOINTS, &json!({"url": "https://erp.example.com/hooks"})).await;
    assert_eq!(status, 201, "{created}");
    let uid = created["id"].as_str().unwrap().to_owned();
    assert!(uid.starts_with("ep_") && uid.len() == 27, "{uid}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(created["url"], "https://erp.example.com/hooks");
    assert_eq!(created["event_types"], Value::Null);
    assert_eq!(
        (&created["timeout_ms"], &created["batch_max"], &created["ordered"], &created["paused"]),
        (&json!(15000), &json!(1), &json!(false), &json!(false))
    );
    assert_eq!(created["source"], "api");
    let (status, second) = api
        .post_json(
            ENDPOINTS,
            &json!({"url": "http://8.8.8.8:8080/in", "description": "payroll", "event_types": ["attendance.punch"],
                    "timeout_ms": 5000, "batch_max": 50, "ordered": true}),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["event_types"], json!(["attendance.punch"]));
    assert_eq!(
        (&second["timeout_ms"], &second["batch_max"], &second["ordered"]),
        (&json!(5000), &json!(50), &json!(true))
    );
    assert_ne!(second["secret"], created["secret"]);

    // Never again: not in the list, not in the detail.
    let (status, list) = api.get_status(ENDPOINTS).await;
    assert_eq!(status, 200);
    let list = list["data"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|e| e.get("secret").is_none()));
    assert!(!serde_json::to_string(&list).unwrap().contains("whsec_"));
    let (status, detail) = api.get_status(&format!("{ENDPOINTS}/{uid}")).await;
    assert_eq!(status, 200);
    assert!(detail.get("secret").is_none());
    assert_eq!(detail["id"], uid.as_str());
}

#[tokio::test]
async fn invalid_endpoint_bodies_name_each_field_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (server, api) = server_without_private_receivers(dir.path()).await;
    // Validation: DRF bodies naming the field.
    let cases = [
        (json!({"url": "ftp://erp.example.com/"}), "url", "http and https"),
        (json!({"url": "not a url"}), "url", "valid URL"),
        (json!({"url": "http://127.0.0.1:9000/hooks"}), "url", "127.0.0.1"),
        (json!({"url": "http://169.254.169.254/latest/meta-data/"}), "url", "169.254.169.254"),
        (json!({"url": "http://[::1]/"}), "url", "::1"),
        (json!({"url": format!("https://erp.example.com/{}", "a".repeat(2100))}), "url", "2048"),
        (json!({}), "url", "required"),
        (json!({"url": null}), "url", "null"),
        (
            json!({"url": "https://erp.example.com/", "event_types": ["attendance.punch", "punch.created"]}),
            "event_types",
            "punch.created",
        ),
        (json!({"url": "https://erp.example.com/", "event_types": []}), "event_types", "empty"),
        (json!({"url": "https://erp.example.com/", "event_types": "attendance.punch"}), "event_types", "list"),
        (json!({"url": "https://erp.example.com/", "timeout_ms": 500}), "timeout_ms", "between 1000 and 30000"),
        (json!({"url": "https://erp.example.com/", "timeout_ms": "5s"}), "timeout_ms", "integer"),
        (json!({"url": "https://erp.example.com/", "batch_max": 0}), "batch_max", "between 1 and 500"),
        (json!({"url": "https://erp.example.com/", "batch_max": 501}), "batch_max", "between 1 and 500"),
        (json!({"url": "https://erp.example.com/", "ordered": "yes"}), "ordered", "boolean"),
        (json!({"url": "https://erp.example.com/", "secret": "whsec_x"}), "secret", "Unknown field"),
        (json!({"url": "https://erp.example.com/", "paused": true}), "paused", "Unknown field"),
    ];
    for (body, field, message) in cases {
        let (status, answer) = api.post_json(ENDPOINTS, &body).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert!(field_errors(&answer, field).contains(message), "{body} → {answer}");
    }
    let response = api
        .client
        .post(server.url(ENDPOINTS))
        .header("Authorization", format!("Token {}", api.token))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().starts_with("JSON parse error"), "{body}");
    let (_, list) = api.get_status(ENDPOINTS).await;
    assert_eq!(list["data"], json!([]), "nothing invalid was created");
}

#[tokio::test]
async fn patch_pauses_resumes_and_changes_settings_and_rotation_shows_a_new_secret_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api) = server_without_private_receivers(dir.path()).await;
    let (uid, secret) = created_endpoint(&api, "https://erp.example.com/hooks").await;
    // PATCH: settings, pause and resume.
    let path = format!("{ENDPOINTS}/{uid}");
    let (status, patched) = api.patch_json(&path, &json!({"paused": true})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!((&patched["paused"], &patched["paused_reason"]), (&json!(true), &json!("manual")));
    let (status, patched) = api
        .patch_json(
            &path,
            &json!({"description": "ERP", "event_types": ["device.online", "device.offline"], "timeout_ms": 30000}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["description"], "ERP");
    assert_eq!(patched["event_types"], json!(["device.online", "device.offline"]));
    assert_eq!(patched["timeout_ms"], 30000);
    assert_eq!(patched["paused"], true, "settings leave the pause alone");
    assert_eq!(patched["url"], "https://erp.example.com/hooks");
    let (status, patched) = api.patch_json(&path, &json!({"paused": false, "event_types": null})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!((&patched["paused"], &patched["paused_reason"]), (&json!(false), &Value::Null));
    assert_eq!(patched["event_types"], Value::Null);
    assert!(patched.get("secret").is_none());
    let (status, answer) = api.patch_json(&path, &json!({"url": "http://10.0.0.5/"})).await;
    assert_eq!(status, 400);
    assert!(field_errors(&answer, "url").contains("10.0.0.5"), "{answer}");
    let (status, answer) = api.patch_json(&path, &json!({"paused": "no", "batch_max": 0})).await;
    assert_eq!(status, 400);
    assert!(answer.get("paused").is_some() && answer.get("batch_max").is_some(), "{answer}");
    let (status, answer) = api.patch_json(&format!("{ENDPOINTS}/ep_unknown"), &json!({"paused": true})).await;
    assert_eq!((status, answer), (404, json!({"detail": "Not found."})));

    // Rotation: a new secret, shown once.
    let (status, rotated) = api.post_json(&format!("{path}/rotate-secret"), &json!({})).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    assert!(rotated["previous_secrets_valid_until"].as_str().unwrap().ends_with('Z'));
    let (status, rotated) = api.post_json(&format!("{path}/rotate-secret"), &json!({"grace_secs": 0})).await;
    assert_eq!(status, 200, "{rotated}");
    let (status, answer) = api.post_json(&format!("{path}/rotate-secret"), &json!({"grace_secs": 604_801})).await;
    assert_eq!(status, 400);
    assert!(field_errors(&answer, "grace_secs").contains("604800"), "{answer}");
    let (status, _) = api.post_json(&format!("{ENDPOINTS}/ep_unknown/rotate-secret"), &json!({})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn delivery_routes_refuse_bad_parameters_and_a_deleted_endpoint_is_gone_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api) = server_without_private_receivers(dir.path()).await;
    let (uid, _) = created_endpoint(&api, "https://erp.example.com/hooks").await;
    let (second, _) = created_endpoint(&api, "http://8.8.8.8:8080/in").await;
    let path = format!("{ENDPOINTS}/{uid}");
    // Delivery routes: bad parameters and unknown ids.
    for (query, field) in
        [("state=done", "state"), ("limit=0", "limit"), ("limit=501", "limit"), ("before=x", "before")]
    {
        let (status, answer) = api.get_status(&format!("/api/v1/webhooks/deliveries?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(answer.get(field).is_some(), "{query} → {answer}");
    }
    for path in ["/api/v1/webhooks/deliveries/999/attempts", "/api/v1/webhooks/deliveries/abc/attempts"] {
        assert_eq!(api.get_status(path).await.0, 404, "{path}");
    }
    assert_eq!(api.post_json("/api/v1/webhooks/deliveries/999/resend", &json!({})).await.0, 404);
    let (status, backlog) = api.get_status("/api/v1/webhooks/backlog").await;
    assert_eq!(status, 200);
    assert_eq!(backlog["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        backlog["data"][0],
        json!({"endpoint": uid, "due": 0, "in_flight": 0, "exhausted": 0, "oldest_due_age_secs": null,
               "waiting": 0, "oldest_pending_age_secs": null, "consecutive_failures": 0, "last_success_at": null})
    );

    // Delete: 204, then gone everywhere.
    let (status, body) = api.delete(&path).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(api.get_status(&path).await.0, 404);
    assert_eq!(api.delete(&path).await.0, 404);
    assert_eq!(api.patch_json(&path, &json!({"paused": false})).await.0, 404);
    let (_, list) = api.get_status(ENDPOINTS).await;
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids, vec![second.as_str()]);
}

/// Seven punches of one device, the first three stored before endpoint A existed, the last
/// four delivered to A: the starting point of the delivery, cursor, resend and replay tests.
struct DeliveredToA {
    hook: Receiver,
    _server: Server,
    api: Api,
    sn: String,
    a_id: String,
    _dir: tempfile::TempDir,
}

impl DeliveredToA {
    async fn start() -> DeliveredToA {
        let hook = Receiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        // The harness allow-lists 127.0.0.1, where the receiver listens.
        let server = Server::in_process(dir.path(), &[]).await;
        let api = Api::login(&server).await;
        let sn = "CQZ7232360001".to_owned();
        let dev = Device { server: &server, sn: sn.clone() };
        assert_eq!(dev.handshake().await.status, 200);
        // Three punches before any endpoint exists: stored, no events.
        let early = b"101\t2026-11-20 08:00:00\t0\t1\t0\t0\t0\n102\t2026-11-20 08:01:00\t0\t15\t0\t0\t0\n103\t2026-11-20 08:02:00\t1\t1\t0\t0\t0\n";
        assert_eq!(dev.attlog(early).await.text(), "OK: 3");
        let (status, a) = api.post_json(ENDPOINTS, &json!({"url": format!("{}/a", hook.base_url())})).await;
        assert_eq!(status, 201, "{a}");
        let a_id = a["id"].as_str().unwrap().to_owned();
        // Four more with endpoint A: one delivery each, sent to the receiver.
        let late = b"104\t2026-11-20 09:00:00\t0\t1\t0\t0\t0\n105\t2026-11-20 09:01:00\t1\t1\t0\t0\t0\n106\t2026-11-20 09:02:00\t0\t4\t5\t0\t0\n107\t2026-11-20 09:03:00\t255\t15\t0\t0\t0\n";
        assert_eq!(dev.attlog(late).await.text(), "OK: 4");
        let fixture = DeliveredToA { hook, _server: server, api, sn, a_id, _dir: dir };
        let succeeded = format!("{}&state=succeeded", fixture.a_deliveries());
        eventually("A's deliveries to succeed", async || {
            let (_, page) = fixture.api.get_status(&succeeded).await;
            page["data"].as_array().is_some_and(|d| d.len() == 4)
        })
        .await;
        fixture
    }

    fn a_deliveries(&self) -> String {
        format!("/api/v1/webhooks/deliveries?endpoint={}", self.a_id)
    }

    /// A's deliveries, newest first.
    async fn a_rows(&self) -> Vec<Value> {
        let (status, page) = self.api.get_status(&self.a_deliveries()).await;
        assert_eq!(status, 200, "{page}");
        page["data"].as_array().unwrap().clone()
    }

    /// The device's punches through the cursor.
    async fn cursor(&self, query: &str) -> (u16, Value) {
        self.api.get_status(&format!("/api/v1/devices/{}/punches{query}", self.sn)).await
    }

    /// The event ids of the seven punches, in seq order.
    async fn event_ids(&self) -> Vec<String> {
        let (_, all) = self.cursor("").await;
        all["data"].as_array().unwrap().iter().map(|p| p["event_id"].as_str().unwrap().to_owned()).collect()
    }

    /// Endpoint B, created after every punch; returns its id.
    async fn add_endpoint_b(&self) -> String {
        let (status, b) = self.api.post_json(ENDPOINTS, &json!({"url": format!("{}/b", self.hook.base_url())})).await;
        assert_eq!(status, 201, "{b}");
        b["id"].as_str().unwrap().to_owned()
    }
}

fn deliveries_of(endpoint: &str) -> String {
    format!("/api/v1/webhooks/deliveries?endpoint={endpoint}")
}

#[tokio::test]
async fn deliveries_list_newest_first_page_by_before_and_show_their_attempts() {
    let f = DeliveredToA::start().await;
    let (status, page) = f.api.get_status(&f.a_deliveries()).await;
    assert_eq!(status, 200);
    let a_rows = page["data"].as_array().unwrap().clone();
    assert_eq!(a_rows.len(), 4);
    assert_eq!(page["next_before"], Value::Null);
    let delivery = &a_rows[0];
    assert_eq!(delivery["endpoint"], f.a_id.as_str());
    assert_eq!(delivery["event_type"], "attendance.punch");
    assert_eq!(delivery["state"], "succeeded");
    assert_eq!(delivery["next_attempt_at"], Value::Null);
    assert!(delivery["succeeded_at"].as_str().unwrap().ends_with('Z'));
    assert!(delivery["created_at"].as_str().unwrap().contains('T'));
    // Newest first; `before` pages on.
    let ids: Vec<i64> = a_rows.iter().map(|d| d["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    let (_, first_page) = f.api.get_status(&format!("{}&limit=3", f.a_deliveries())).await;
    assert_eq!(first_page["next_before"], ids[2]);
    let (_, rest) = f.api.get_status(&format!("{}&limit=3&before={}", f.a_deliveries(), ids[2])).await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"][0]["id"], ids[3]);

    // Attempts of a delivery.
    let delivery_id = ids[0];
    let (status, attempts) = f.api.get_status(&format!("/api/v1/webhooks/deliveries/{delivery_id}/attempts")).await;
    assert_eq!(status, 200, "{attempts}");
    assert_eq!(attempts["delivery_id"], delivery_id);
    let attempt = &attempts["data"][0];
    assert_eq!(attempt["attempt_no"], 1);
    assert_eq!(attempt["http_status"], 200);
    assert_eq!(attempt["accepted"], true);
    assert_eq!(attempt["trigger"], "scheduled");
    assert!(attempt["started_at"].as_str().unwrap().ends_with('Z'));
    assert!(attempt["duration_ms"].is_number());
}

#[tokio::test]
async fn the_punch_cursor_walks_seq_and_shows_each_punch_as_its_webhook_carried_it() {
    let f = DeliveredToA::start().await;
    // seq 1..7 contiguous, the webhook `data` shape, matching event ids.
    let (status, all) = f.cursor("").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["device_sn"], f.sn.as_str());
    let punches = all["data"].as_array().unwrap().clone();
    let seqs: Vec<i64> = punches.iter().map(|p| p["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    assert_eq!((&all["next_after_seq"], &all["has_more"]), (&json!(7), &json!(false)));
    let ids: Vec<i64> = punches.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        punches[1],
        json!({
            "id": ids[1],
            "event_id": punches[1]["event_id"],
            "seq": 2,
            "pin": "102",
            "local_time": "2026-11-20 08:01:00",
            "utc_time": "2026-11-20T08:01:00Z",
            "time_basis": "device_clock",
            "punch_state": {"code": "0", "name": "Check In"},
            "verify_mode": {"code": 15, "name": "Face"},
            "work_code": "0",
            "received_at": punches[1]["received_at"],
            "raw": "102\t2026-11-20 08:01:00\t0\t15\t0\t0\t0",
        })
    );
    let event_ids: Vec<String> = punches.iter().map(|p| p["event_id"].as_str().unwrap().to_owned()).collect();
    assert!(event_ids.iter().all(|id| id.starts_with("evt_")));
    let a_events: HashSet<String> =
        f.a_rows().await.iter().map(|d| d["event_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(a_events, event_ids[3..].iter().cloned().collect(), "A got exactly the punches after it existed");
    // Each delivered body is the punch as the cursor shows it.
    let got = triples(&f.hook);
    for (p, id) in punches[3..].iter().zip(&event_ids[3..]) {
        let (path, _, body) = got.iter().find(|(_, got_id, _)| got_id == id).expect("delivered");
        assert_eq!(path, "/a");
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["data"]["device"]["sn"], f.sn.as_str());
        for key in [
            "seq",
            "pin",
            "local_time",
            "utc_time",
            "time_basis",
            "punch_state",
            "verify_mode",
            "work_code",
            "received_at",
            "raw",
        ] {
            assert_eq!(body["data"][key], p[key], "{key}");
        }
    }
    // Paging by seq.
    let (_, page) = f.cursor("?after_seq=0&limit=3").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    assert_eq!((&page["next_after_seq"], &page["has_more"]), (&json!(3), &json!(true)));
    let (_, page) = f.cursor("?after_seq=3&limit=3").await;
    let seqs: Vec<i64> = page["data"].as_array().unwrap().iter().map(|p| p["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, vec![4, 5, 6]);
    let (_, page) = f.cursor("?after_seq=7").await;
    assert_eq!((page["data"].as_array().unwrap().len(), &page["next_after_seq"]), (0, &json!(7)));
    assert_eq!(f.cursor("?limit=0").await.0, 400);
    assert_eq!(f.cursor("?limit=1001").await.0, 400);
    assert_eq!(f.cursor("?after_seq=-1").await.0, 400);
    assert_eq!(f.api.get_status("/api/v1/devices/NOPE/punches").await.0, 404);
}

#[tokio::test]
async fn a_resent_delivery_goes_again_under_the_same_id_with_the_same_bytes() {
    let f = DeliveredToA::start().await;
    let a_rows = f.a_rows().await;
    let delivery_id = a_rows[0]["id"].as_i64().unwrap();
    let resent_event = a_rows[0]["event_id"].as_str().unwrap().to_owned();
    let (status, answer) =
        f.api.post_json(&format!("/api/v1/webhooks/deliveries/{delivery_id}/resend"), &json!({})).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer, json!({"id": delivery_id, "state": "pending"}));
    eventually("the resent delivery", async || {
        triples(&f.hook).iter().filter(|(_, id, _)| *id == resent_event).count() == 2
    })
    .await;
    let got = triples(&f.hook);
    let bodies: HashSet<&String> = got.iter().filter(|(_, id, _)| *id == resent_event).map(|(_, _, b)| b).collect();
    assert_eq!(bodies.len(), 1, "same id ⇒ identical body");
    eventually("the resent delivery to succeed again", async || {
        let (_, attempts) = f.api.get_status(&format!("/api/v1/webhooks/deliveries/{delivery_id}/attempts")).await;
        attempts["data"].as_array().is_some_and(|a| a.len() == 2)
    })
    .await;
}

#[tokio::test]
async fn replay_sends_a_device_punches_to_one_endpoint_only_under_their_event_ids() {
    let f = DeliveredToA::start().await;
    let event_ids = f.event_ids().await;
    let a_events: HashSet<String> =
        f.a_rows().await.iter().map(|d| d["event_id"].as_str().unwrap().to_owned()).collect();
    // Endpoint B, created after every punch: nothing for it until a replay.
    let b_id = f.add_endpoint_b().await;
    let b_deliveries = deliveries_of(&b_id);
    assert_eq!(f.api.get_status(&b_deliveries).await.1["data"], json!([]));

    // Replay validation.
    let replay = format!("{ENDPOINTS}/{b_id}/replay");
    let cases = [
        (json!({"from_seq": 1}), "device_sn"),
        (json!({"device_sn": "NOPE"}), "device_sn"),
        (json!({"device_sn": f.sn, "from_seq": 5, "to_seq": 2}), "to_seq"),
        (json!({"from_time": "2026-11-20T08:00:00Z"}), "from_time"),
        (json!({"from_time": "yesterday"}), "from_time"),
        (json!({"from_time": "2026-11-20 10:00:00", "to_time": "2026-11-20 09:00:00"}), "to_time"),
        (json!({"seq": 1}), "seq"),
    ];
    for (body, field) in cases {
        let (status, answer) = f.api.post_json(&replay, &body).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert!(answer.get(field).is_some(), "{body} → {answer}");
    }
    assert_eq!(f.api.post_json(&format!("{ENDPOINTS}/ep_unknown/replay"), &json!({})).await.0, 404);

    // Replay every seq of the device to B: 7 events, 3 of them created now.
    let (status, answer) = f.api.post_json(&replay, &json!({"device_sn": f.sn, "from_seq": 1, "to_seq": 7})).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer, json!({"replayed": 7, "events_created": 3}));
    eventually("B's deliveries to succeed", async || {
        let (_, page) = f.api.get_status(&format!("{b_deliveries}&state=succeeded")).await;
        page["data"].as_array().is_some_and(|d| d.len() == 7)
    })
    .await;
    let (_, page) = f.api.get_status(&b_deliveries).await;
    let b_events: HashSet<String> =
        page["data"].as_array().unwrap().iter().map(|d| d["event_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(b_events, event_ids.iter().cloned().collect::<HashSet<_>>(), "B got every punch, by its event id");
    // No fan-out: A still has its four deliveries, and the receiver saw nothing new on /a.
    assert_eq!(f.a_rows().await.len(), 4);
    let got = triples(&f.hook);
    let on_a: Vec<&String> = got.iter().filter(|(path, _, _)| path == "/a").map(|(_, id, _)| id).collect();
    assert_eq!(on_a.len(), 4, "A's four deliveries, nothing replayed");
    assert!(on_a.iter().all(|id| a_events.contains(*id)));
    // Same id ⇒ identical body, across endpoints too.
    let mut bodies: HashMap<&String, HashSet<&String>> = HashMap::new();
    for (_, id, body) in got.iter() {
        bodies.entry(id).or_default().insert(body);
    }
    assert!(bodies.values().all(|b| b.len() == 1));
    assert_eq!(bodies.len(), 7);

    // A time-range replay (device-local, bare date = the whole day; inclusive).
    let (status, answer) =
        f.api.post_json(&replay, &json!({"from_time": "2026-11-20 08:01:00", "to_time": "2026-11-20 09:01:00"})).await;
    assert_eq!((status, answer), (202, json!({"replayed": 4, "events_created": 0})));
    let (status, answer) = f.api.post_json(&replay, &json!({"from_time": "2026-11-20", "to_time": "2026-11-20"})).await;
    assert_eq!((status, answer), (202, json!({"replayed": 7, "events_created": 0})));
    let (status, answer) = f.api.post_json(&replay, &json!({"from_time": "2026-11-21"})).await;
    assert_eq!((status, answer), (202, json!({"replayed": 0, "events_created": 0})));
    assert_eq!(f.a_rows().await.len(), 4, "replays to B never reach A");

    // An endpoint that does not take punches cannot be replayed to.
    let (_, c) = f
        .api
        .post_json(ENDPOINTS, &json!({"url": format!("{}/c", f.hook.base_url()), "event_types": ["device.offline"]}))
        .await;
    let (status, answer) =
        f.api.post_json(&format!("{ENDPOINTS}/{}/replay", c["id"].as_str().unwrap()), &json!({})).await;
    assert_eq!(status, 400, "{answer}");
}

#[tokio::test]
async fn the_backlog_lists_every_endpoint_and_a_deleted_endpoint_refuses_resends() {
    let f = DeliveredToA::start().await;
    let b_id = f.add_endpoint_b().await;
    let (status, answer) =
        f.api.post_json(&format!("{ENDPOINTS}/{b_id}/replay"), &json!({"device_sn": f.sn, "from_seq": 1})).await;
    assert_eq!(status, 202, "{answer}");

    // Backlog per endpoint.
    let (status, backlog) = f.api.get_status("/api/v1/webhooks/backlog").await;
    assert_eq!(status, 200);
    let rows = backlog["data"].as_array().unwrap();
    let endpoints: HashSet<&str> = rows.iter().map(|r| r["endpoint"].as_str().unwrap()).collect();
    assert_eq!(endpoints, HashSet::from([f.a_id.as_str(), b_id.as_str()]));
    for row in rows {
        for key in [
            "endpoint",
            "due",
            "in_flight",
            "exhausted",
            "oldest_due_age_secs",
            "waiting",
            "oldest_pending_age_secs",
            "consecutive_failures",
            "last_success_at",
        ] {
            assert!(row.get(key).is_some(), "{row}");
        }
    }

    // Deleting B cancels what waits for it; a resend of its deliveries is then refused.
    let (_, page) = f.api.get_status(&deliveries_of(&b_id)).await;
    let b_delivery = page["data"][0]["id"].as_i64().unwrap();
    assert_eq!(f.api.delete(&format!("{ENDPOINTS}/{b_id}")).await.0, 204);
    let (status, answer) =
        f.api.post_json(&format!("/api/v1/webhooks/deliveries/{b_delivery}/resend"), &json!({})).await;
    assert_eq!(status, 409, "{answer}");
}

/// Creating an endpoint: status and body.
async fn create_endpoint(api: &Api, url: &str) -> (u16, Value) {
    api.post_json(ENDPOINTS, &json!({ "url": url })).await
}

/// Loopback is closed unless allow-listed (`webhook_allow_private` does not open it), private
/// networks follow `webhook_allow_private`, and the bridge's own address stays closed even when
/// allow-listed. No device talks to these servers, so no event is ever sent to the private
/// address accepted below (and its endpoint is deleted at once anyway).
#[tokio::test]
async fn loopback_and_own_address_are_refused_private_networks_follow_allow_private() {
    let hook = Receiver::start().await;
    let receiver = hook.base_url();
    let port = receiver.rsplit(':').next().expect("receiver port").to_owned();

    // Defaults, nothing allow-listed.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_WEBHOOK_ALLOW_LIST", "")]).await;
    let api = Api::login(&server).await;
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        "http://169.254.1.1/".to_owned(),
    ] {
        let (status, answer) = create_endpoint(&api, &url).await;
        assert_eq!(status, 400, "{url} → {answer}");
        assert!(field_errors(&answer, "url").contains("not allowed"), "{url} → {answer}");
    }
    let (status, private) = create_endpoint(&api, "http://10.1.2.3/").await;
    assert_eq!(status, 201, "a private network is open by default: {private}");
    let private_path = format!("{ENDPOINTS}/{}", private["id"].as_str().unwrap());
    assert_eq!(api.delete(&private_path).await.0, 204);
    let (_, list) = api.get_status(ENDPOINTS).await;
    assert_eq!(list["data"], json!([]), "only the private endpoint was created");
    drop(server);

    // webhook_allow_private = false closes private networks too.
    let dir = tempfile::tempdir().unwrap();
    let server =
        Server::in_process(dir.path(), &[("ADMS_WEBHOOK_ALLOW_LIST", ""), ("ADMS_WEBHOOK_ALLOW_PRIVATE", "false")])
            .await;
    let api = Api::login(&server).await;
    let (status, answer) = create_endpoint(&api, "http://10.1.2.3/").await;
    assert_eq!(status, 400, "{answer}");
    assert!(field_errors(&answer, "url").contains("10.1.2.3"), "{answer}");
    drop(server);

    // 127.0.0.1 allow-listed (the harness default): other loopback services open, the bridge's
    // own listening address not, whether created or patched to.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let own_port = server.addr.rsplit(':').next().expect("server port").to_owned();
    for url in [
        server.url("/api/v1/webhooks/endpoints"),
        format!("http://localhost:{own_port}/"),
        format!("http://[::ffff:127.0.0.1]:{own_port}/"),
    ] {
        let (status, answer) = create_endpoint(&api, &url).await;
        assert_eq!(status, 400, "{url} → {answer}");
        assert!(field_errors(&answer, "url").contains("not allowed"), "{url} → {answer}");
    }
    let (status, allowed) = create_endpoint(&api, &format!("{receiver}/hook")).await;
    assert_eq!(status, 201, "an allow-listed receiver: {allowed}");
    let path = format!("{ENDPOINTS}/{}", allowed["id"].as_str().unwrap());
    let (status, answer) = api.patch_json(&path, &json!({ "url": server.url("/") })).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(api.get_status(&path).await.1["url"], format!("{receiver}/hook"), "the URL did not change");
}

/// A receiver's answer is kept for the attempts API only as text, and only its first 1024 bytes.
#[tokio::test]
async fn receiver_answers_are_kept_only_as_short_text() {
    const MARKER: &str = "[non-text response body not kept]";
    let hook = Receiver::builder()
        .answering(|request| match request.path.as_str() {
            "/long" => Reply::Body(200, "text/plain; charset=utf-8", "é".repeat(3000).into_bytes()),
            "/binary" => Reply::Body(200, "application/octet-stream", (0..=255u8).cycle().take(3000).collect()),
            "/mislabelled" => Reply::Body(200, "text/plain", vec![b'o', b'k', 0xff, 0xfe, b'!']),
            "/json" => Reply::Body(503, "application/json", br#"{"error":"db"}"#.to_vec()),
            _ => Reply::Body(200, "image/png", b"plain words, wrong type".to_vec()),
        })
        .start()
        .await;
    let receiver = hook.base_url();

    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let mut endpoints = HashMap::new();
    for path in ["long", "binary", "mislabelled", "json", "image"] {
        let (status, created) = create_endpoint(&api, &format!("{receiver}/{path}")).await;
        assert_eq!(status, 201, "{created}");
        endpoints.insert(path, created["id"].as_str().unwrap().to_owned());
    }
    let dev = Device { server: &server, sn: "BODY0001".into() };
    assert_eq!(dev.handshake().await.status, 200);
    assert_eq!(dev.attlog(b"101\t2026-11-20 08:00:00\t0\t1\t0\t0\t0\n").await.text(), "OK: 1");

    let mut bodies: HashMap<&str, Value> = HashMap::new();
    for (path, id) in &endpoints {
        let deliveries = format!("/api/v1/webhooks/deliveries?endpoint={id}");
        let mut attempt = Value::Null;
        eventually(&format!("an attempt to /{path} is recorded"), async || {
            let (_, page) = api.get_status(&deliveries).await;
            if let Some(delivery) = page["data"].as_array().and_then(|d| d.first()) {
                let (_, attempts) =
                    api.get_status(&format!("/api/v1/webhooks/deliveries/{}/attempts", delivery["id"])).await;
                attempt = attempts["data"][0].clone();
            }
            !attempt.is_null()
        })
        .await;
        bodies.insert(path, attempt);
    }
    let body =
        |path: &str| bodies[path]["response_body"].as_str().unwrap_or_else(|| panic!("{:?}", bodies[path])).to_owned();
    let long = body("long");
    assert!(long.len() <= 1024 && long.len() >= 1022, "{} bytes kept", long.len());
    assert!(long.chars().all(|c| c == 'é'), "cut on a character boundary");
    assert_eq!(bodies["long"]["response_body_truncated"], true);
    for path in ["binary", "mislabelled", "image"] {
        assert_eq!(body(path), MARKER, "/{path}: {:?}", bodies[path]);
        assert_eq!(bodies[path]["response_body_truncated"], false);
    }
    assert_eq!(body("json"), r#"{"error":"db"}"#);
    assert_eq!(
        (&bodies["json"]["http_status"], &bodies["json"]["response_body_truncated"]),
        (&json!(503), &json!(false))
    );
}
