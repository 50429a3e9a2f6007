//! ZKBio Time-style authentication: login bodies, schemes, error bodies, integration keys.

use crate::common;

use common::{ADMIN_PASSWORD, ADMIN_USER, Device, Server};
use serde_json::{Value, json};

async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn login_bodies_schemes_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = reqwest::Client::new();
    let url = |p: &str| server.url(p);

    // JSON, form-encoded and multipart logins all work; each gives a different session token.
    let (s, json_login) = status_and_json(
        client
            .post(url("/api-token-auth/"))
            .json(&json!({"username": ADMIN_USER, "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    let token = json_login["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 40);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    let (s, form_login) = status_and_json(
        client
            .post(url("/api-token-auth"))
            .form(&[("username", ADMIN_USER), ("password", ADMIN_PASSWORD)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    assert_ne!(form_login["token"], json_login["token"], "several sessions per user");
    let form = reqwest::multipart::Form::new().text("username", ADMIN_USER).text("password", ADMIN_PASSWORD);
    let (s, _) = status_and_json(client.post(url("/api-token-auth/")).multipart(form).send().await.unwrap()).await;
    assert_eq!(s, 200);
    // Cloud-style body: email stands in for username, company ignored.
    let (s, _) = status_and_json(
        client
            .post(url("/jwt-api-token-auth/"))
            .json(&json!({"company": "x", "email": ADMIN_USER, "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);

    // Wrong credentials: 400 with DRF's body; missing fields: 400 per field.
    let (s, body) = status_and_json(
        client
            .post(url("/api-token-auth/"))
            .json(&json!({"username": ADMIN_USER, "password": "nope"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, body), (400, json!({"non_field_errors": ["Unable to log in with provided credentials."]})));
    let (s, body) =
        status_and_json(client.post(url("/jwt-api-token-auth/")).json(&json!({})).send().await.unwrap()).await;
    assert_eq!(
        (s, body),
        (400, json!({"username": ["This field is required."], "password": ["This field is required."]}))
    );

    // Every scheme, any case.
    let (s, jwt) = status_and_json(
        client
            .post(url("/jwt-api-token-auth/"))
            .json(&json!({"username": ADMIN_USER, "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    let jwt = jwt["token"].as_str().unwrap().to_owned();
    let claims = decode_claims(&jwt);
    let exp = claims["exp"].as_i64().unwrap();
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(exp - iat, 8 * 3600, "session lifetime 8 h by default");
    assert_eq!(claims["username"], ADMIN_USER);
    let transactions = url("/iclock/api/transactions/");
    for header in [
        format!("Token {token}"),
        format!("token {token}"),
        format!("Bearer {token}"),
        format!("JWT {jwt}"),
        format!("jwt {jwt}"),
        format!("Bearer {jwt}"),
        format!("Basic {}", base64_encode(&format!("{ADMIN_USER}:{ADMIN_PASSWORD}"))),
    ] {
        let r = client.get(&transactions).header("Authorization", &header).send().await.unwrap();
        assert_eq!(r.status(), 200, "{header}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], 0);
        assert_eq!(body["msg"], "");
    }
    // 401s with DRF bodies.
    let cases: [(Option<String>, &str); 5] = [
        (None, "Authentication credentials were not provided."),
        (Some("Token 0000000000000000000000000000000000000000".into()), "Invalid token."),
        (Some(format!("JWT {}x", jwt)), "Error decoding signature."),
        (Some(format!("Basic {}", base64_encode("admin:wrong"))), "Invalid username/password."),
        (Some("Digest abc".into()), "Authentication credentials were not provided."),
    ];
    for (header, detail) in cases {
        let mut request = client.get(&transactions);
        if let Some(h) = &header {
            request = request.header("Authorization", h);
        }
        let (s, body) = status_and_json(request.send().await.unwrap()).await;
        assert_eq!((s, body), (401, json!({ "detail": detail })), "{header:?}");
    }
}

#[tokio::test]
async fn integration_keys_from_the_cli_work_until_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let db = format!("sqlite://{}/adms.db", dir.path().display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_adms-bridge"))
        .args(["token", "create", "--name", "payroll"])
        .env("ADMS_DATABASE_URL", &db)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(key.len(), 40);
    let client = reqwest::Client::new();
    let get = |h: String| client.get(server.url("/iclock/api/terminals/")).header("Authorization", h).send();
    assert_eq!(get(format!("Token {key}")).await.unwrap().status(), 200);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_adms-bridge"))
        .args(["token", "revoke", "payroll"])
        .env("ADMS_DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(get(format!("Token {key}")).await.unwrap().status(), 401);
    // The database holds only the digest.
    let db_bytes = std::fs::read(dir.path().join("adms.db")).unwrap_or_default();
    let wal = std::fs::read(dir.path().join("adms.db-wal")).unwrap_or_default();
    let haystack = [db_bytes, wal].concat();
    assert!(!haystack.windows(key.len()).any(|w| w == key.as_bytes()), "token stored in clear");
}

#[tokio::test]
async fn zkbio_compatible_surface_paging_filters_and_unknown_paths() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let dev = Device { server: &server, sn: "PAGE1".into() };
    let mut body = String::new();
    for i in 0..25 {
        body.push_str(&format!("{}\t2026-11-{:02} 08:00:00\t{}\t1\t0\t0\t0\n", 100 + i % 5, 1 + i, i % 2));
    }
    assert_eq!(dev.attlog(body.as_bytes()).await.text(), "OK: 25");
    let api = common::Api::login(&server).await;
    let page1 = api.get("/iclock/api/transactions/?page_size=10").await;
    assert_eq!(page1["count"], 25);
    assert_eq!(page1["data"].as_array().unwrap().len(), 10);
    assert_eq!(page1["previous"], Value::Null);
    let next = page1["next"].as_str().unwrap();
    assert!(next.starts_with(&format!("http://{}/iclock/api/transactions/?", server.addr)), "{next}");
    // Follow next verbatim to the end.
    let mut seen: Vec<i64> = page1["data"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let mut link = page1["next"].as_str().map(str::to_owned);
    while let Some(url) = link {
        let path = url.trim_start_matches(&format!("http://{}", server.addr)).to_owned();
        let page = api.get(&path).await;
        seen.extend(page["data"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()));
        link = page["next"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, (1..=25).collect::<Vec<_>>());
    // Filters: emp_code exact, time window inclusive, bare end date means the whole day, ordering.
    let f = api.get("/iclock/api/transactions/?emp_code=101&page_size=100").await;
    assert_eq!(f["count"], 5);
    let f = api.get("/iclock/api/transactions/?start_time=2026-11-03+08:00:00&end_time=2026-11-05&page_size=100").await;
    assert_eq!(f["count"], 3);
    let f = api.get("/iclock/api/transactions/?start_time=2026-11-03%2008:00:00&&end_time=2026-11-05T08:00:00").await;
    assert_eq!(f["count"], 3);
    let f = api.get("/iclock/api/transactions/?ordering=-punch_time&page_size=1").await;
    assert_eq!(f["data"][0]["punch_time"], "2026-11-25 08:00:00");
    let f = api.get("/iclock/api/transactions/?ordering=+-id&page_size=1").await;
    assert_eq!(f["data"][0]["id"], 25, "`+-id` decodes to ` -id`, trimmed, honoured");
    let f = api.get("/iclock/api/transactions/?ordering=bogus&page_size=1").await;
    assert_eq!(f["data"][0]["id"], 1, "unknown ordering ignored");
    let f = api.get("/iclock/api/transactions/?upload_time__gte=2000-01-01&terminal_sn=PAGE1&page_size=1").await;
    assert_eq!(f["count"], 25);
    let f = api.get("/iclock/api/transactions/?terminal_sn=OTHER").await;
    assert_eq!(f["count"], 0);

    let client = &api.client;
    let auth = format!("Token {}", api.token);
    let r =
        client.get(server.url("/iclock/api/transactions/?page=9")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(status_and_json(r).await, (404, json!({"detail": "Invalid page."})));
    let r = client
        .get(server.url("/iclock/api/transactions/?start_time=yesterday"))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_json(r).await.0, 400);
    let r = client.get(server.url("/iclock/api/transactions/3/")).header("Authorization", &auth).send().await.unwrap();
    let (s, one) = status_and_json(r).await;
    assert_eq!((s, one["id"].as_i64()), (200, Some(3)));
    let r =
        client.get(server.url("/iclock/api/transactions/999/")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(status_and_json(r).await, (404, json!({"detail": "Not found."})));
    let r = client.post(server.url("/iclock/api/transactions/")).header("Authorization", &auth).send().await.unwrap();
    assert_eq!(status_and_json(r).await, (405, json!({"detail": "Method \"POST\" not allowed."})));
    // Unknown paths: 200 and a small HTML page, as ZKBio Time.
    for path in ["/personnel/api/nothing/", "/iclock/api/unknown/", "/"] {
        let r = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    }
    let docs = client.get(server.url("/api/docs/")).send().await.unwrap().text().await.unwrap();
    assert!(docs.contains("<title>BioTime 9.5 API DOCS</title>"));
    // Rejected-line report on the native API.
    assert_eq!(dev.attlog(b"broken line\n").await.text(), "OK: 0");
    let rejected = api.get("/api/v1/rejected-lines?sn=PAGE1").await;
    assert_eq!(rejected["count"], 1);
    assert_eq!(rejected["data"][0]["raw_text"], "broken line");
    assert_eq!(rejected["data"][0]["reason"], "too_few_fields");
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn decode_claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}
