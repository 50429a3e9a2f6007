//! ZKBio Time-style authentication: login bodies, schemes, error bodies, integration keys.

use crate::common;

use common::{ADMIN_PASSWORD, ADMIN_USER, Database, Device, Server};
use serde_json::{Value, json};

async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn login_bodies_schemes_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
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
    let out =
        server.db().command().args(["token", "create", "--name", "payroll"]).env("RUST_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(key.len(), 40);
    let client = reqwest::Client::new();
    let get = |h: String| client.get(server.url("/iclock/api/terminals/")).header("Authorization", h).send();
    assert_eq!(get(format!("Token {key}")).await.unwrap().status(), 200);
    let out = server.db().command().args(["token", "revoke", "payroll"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(get(format!("Token {key}")).await.unwrap().status(), 401);
    // The database holds only the digest (the file's bytes: SQLite only).
    crate::sqlite_only!("the rest reads the bytes of the SQLite file");
    let db_bytes = std::fs::read(dir.path().join("adms.db")).unwrap_or_default();
    let wal = std::fs::read(dir.path().join("adms.db-wal")).unwrap_or_default();
    let haystack = [db_bytes, wal].concat();
    assert!(!haystack.windows(key.len()).any(|w| w == key.as_bytes()), "token stored in clear");
}

#[tokio::test]
async fn zkbio_compatible_surface_paging_filters_and_unknown_paths() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
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
    // Unknown paths under the API: DRF's 404, never a page that looks like success.
    for path in ["/personnel/api/nothing/", "/iclock/api/unknown/"] {
        let r = client.get(server.url(path)).header("Accept", "text/html").send().await.unwrap();
        assert_eq!(status_and_json(r).await, (404, json!({"detail": "Not found."})), "{path}");
    }
    // A browser's GET elsewhere: ZKBio Time's page, as it answers. (The root `/` is the
    // operator console's door: `console::the_root_sends_browsers_to_the_console_and_nobody_else`.)
    let r = client.get(server.url("/base/index/")).header("Accept", "text/html").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
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

// ---------------------------------------------------------------------------------------------
// Login hardening: bounded hashing, throttling, lock-out, identical answers, token revocation.

/// A client whose connections leave from `ip` (all of 127/8 is local on Linux), so the server
/// sees a different client address per client.
fn client_from(ip: std::net::Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder().local_address(std::net::IpAddr::V4(ip)).build().unwrap()
}

/// Resident memory of a process, in KiB (`VmRSS` of /proc/<pid>/status).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Samples the server's RSS until `stop` is set; returns the highest value seen.
fn sample_peak_rss(pid: u32, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = rss_kib(pid);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            peak = peak.max(rss_kib(pid));
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        peak.max(rss_kib(pid))
    })
}

/// One login answer: status, `Retry-After`, JSON body.
#[derive(Debug)]
struct LoginAnswer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

async fn login_as(client: &reqwest::Client, url: String, username: &str, password: &str) -> LoginAnswer {
    let response = client.post(url).json(&json!({"username": username, "password": password})).send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    LoginAnswer { status, retry_after, body: response.json().await.unwrap_or(Value::Null) }
}

/// Sends `n` wrong logins for `username` at once, the i-th from `client(i)`, alternating the
/// session-token and JWT login routes.
async fn wrong_login_burst(
    server: &Server,
    username: &str,
    n: usize,
    client: impl Fn(usize) -> reqwest::Client,
) -> Vec<LoginAnswer> {
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..n {
        let client = client(i);
        let url = server.url(if i % 2 == 0 { "/api-token-auth/" } else { "/jwt-api-token-auth/" });
        let username = username.to_owned();
        burst.spawn(async move { login_as(&client, url, &username, "wrong password").await });
    }
    burst.join_all().await
}

/// A refusal for load or throttling: 429, DRF's throttle body, a `Retry-After` in seconds.
fn assert_throttled(answer: &LoginAnswer) {
    assert_eq!(answer.status, 429, "{answer:?}");
    let retry_after: u64 = answer.retry_after.as_deref().and_then(|v| v.parse().ok()).expect("Retry-After seconds");
    assert!(retry_after >= 1, "{answer:?}");
    let detail = answer.body["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("Request was throttled. Expected available in "), "{answer:?}");
}

fn bad_credentials() -> Value {
    json!({"non_field_errors": ["Unable to log in with provided credentials."]})
}

/// Three bursts of 64 concurrent wrong logins for the real account, each from its own client
/// address so that no throttle hides them: only the bound on concurrent password hashes keeps
/// the server's memory in check (argon2 takes ~19 MiB per hash). Before that bound, the growth
/// measured here was several hundred MiB per burst.
#[tokio::test]
async fn wrong_login_bursts_keep_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    // One real login first, so the baseline includes a hash's worth of allocator state.
    let first = login_as(&reqwest::Client::new(), server.url("/api-token-auth/"), ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!(first.status, 200, "{first:?}");
    let baseline = rss_kib(server.pid());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_peak_rss(server.pid(), stop.clone());
    let mut refused = 0;
    for burst in 0..3u8 {
        let answers = wrong_login_burst(&server, ADMIN_USER, 64, |i| {
            client_from(std::net::Ipv4Addr::new(127, 0, 10 + burst, 1 + i as u8))
        })
        .await;
        for answer in &answers {
            if answer.status == 400 {
                assert_eq!(answer.body, bad_credentials());
            } else {
                assert_throttled(answer);
                refused += 1;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    let growth_mib = peak.saturating_sub(baseline) / 1024;
    eprintln!("wrong_login_bursts: RSS {} MiB -> peak {} MiB, {refused} of 192 refused", baseline / 1024, peak / 1024);
    assert!(growth_mib < 150, "RSS grew by {growth_mib} MiB during 3 bursts of 64 wrong logins");
}

/// Wrong logins for one account from one address are throttled (at most `login_user_failures`,
/// 5 by default, are checked at all; the rest get 429 without hashing), and the lock-out of
/// that (user, address) pair does not keep the account's owner out from another address.
#[tokio::test]
async fn wrong_login_burst_is_throttled_but_the_user_logs_in_from_another_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let attacker = client_from(std::net::Ipv4Addr::new(127, 0, 0, 1));
    let baseline = rss_kib(server.pid());
    let mut checked = 0;
    for _ in 0..3 {
        for answer in wrong_login_burst(&server, ADMIN_USER, 64, |_| attacker.clone()).await {
            if answer.status == 400 {
                assert_eq!(answer.body, bad_credentials());
                checked += 1;
            } else {
                assert_throttled(&answer);
            }
        }
    }
    assert!(checked <= 5, "{checked} wrong passwords were checked; the lock-out allows 5");
    let growth_mib = rss_kib(server.pid()).saturating_sub(baseline) / 1024;
    eprintln!("throttled bursts: {checked} of 192 checked, RSS growth {growth_mib} MiB");
    assert!(growth_mib < 150, "RSS grew by {growth_mib} MiB");
    // The locked pair is refused even with the right password (no hash is run for it), on
    // every route, Basic included.
    let locked = login_as(&attacker, server.url("/api-token-auth/"), ADMIN_USER, ADMIN_PASSWORD).await;
    assert_throttled(&locked);
    let basic = format!("Basic {}", base64_encode(&format!("{ADMIN_USER}:{ADMIN_PASSWORD}")));
    let r = attacker.get(server.url("/iclock/api/transactions/")).header("Authorization", &basic).send().await.unwrap();
    assert_eq!(r.status(), 429);
    // The owner, from another address, logs in with every method.
    let owner = client_from(std::net::Ipv4Addr::new(127, 0, 0, 2));
    let ok = login_as(&owner, server.url("/api-token-auth/"), ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let ok = login_as(&owner, server.url("/jwt-api-token-auth/"), ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let r = owner.get(server.url("/iclock/api/transactions/")).header("Authorization", &basic).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// An unknown user and a known user with a wrong password get the same answer, and both run a
/// password check (against a dummy hash for the unknown user), so neither the body nor the
/// work done tells them apart. (Timing itself is not asserted: wall-clock tests are flaky.)
#[tokio::test]
async fn unknown_and_known_users_get_the_same_answer_and_the_same_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let api = common::Api::login(&server).await;
    let checks = || async {
        let r = api
            .client
            .get(server.url("/metrics"))
            .header("Authorization", format!("Token {}", api.token))
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("adms_login_password_checks_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no adms_login_password_checks_total in {text}"))
    };
    let client = reqwest::Client::new();
    for route in ["/api-token-auth/", "/jwt-api-token-auth/"] {
        let before = checks().await;
        let known = login_as(&client, server.url(route), ADMIN_USER, "wrong password").await;
        let after_known = checks().await;
        let unknown = login_as(&client, server.url(route), "nobody-here", "wrong password").await;
        let after_unknown = checks().await;
        assert_eq!((known.status, &known.body), (400, &bad_credentials()), "{route}");
        assert_eq!((unknown.status, &unknown.body), (known.status, &known.body), "{route}");
        assert_eq!(after_known - before, 1, "{route}: the known user's password was checked once");
        assert_eq!(after_unknown - after_known, 1, "{route}: the unknown user cost the same check");
    }
    let transactions = server.url("/iclock/api/transactions/");
    let basic = |creds: &str| {
        client.get(&transactions).header("Authorization", format!("Basic {}", base64_encode(creds))).send()
    };
    let known = status_and_json(basic(&format!("{ADMIN_USER}:wrong")).await.unwrap()).await;
    let unknown = status_and_json(basic("nobody-here:wrong").await.unwrap()).await;
    assert_eq!(known, (401, json!({"detail": "Invalid username/password."})));
    assert_eq!(unknown, known);
}

/// The session token and JWT of a fresh login.
async fn session_and_jwt(server: &Server, username: &str, password: &str) -> (String, String) {
    let client = reqwest::Client::new();
    let token = login_as(&client, server.url("/api-token-auth/"), username, password).await;
    assert_eq!(token.status, 200, "{token:?}");
    let jwt = login_as(&client, server.url("/jwt-api-token-auth/"), username, password).await;
    assert_eq!(jwt.status, 200, "{jwt:?}");
    (token.body["token"].as_str().unwrap().to_owned(), jwt.body["token"].as_str().unwrap().to_owned())
}

/// Status and body of `GET /iclock/api/transactions/` with this `Authorization` header.
async fn transactions_with(server: &Server, authorization: &str) -> (u16, Value) {
    let client = reqwest::Client::new();
    status_and_json(
        client
            .get(server.url("/iclock/api/transactions/"))
            .header("Authorization", authorization)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn password_change_ends_sessions_and_jwts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let (token, jwt) = session_and_jwt(&server, ADMIN_USER, ADMIN_PASSWORD).await;
    // A restart with the same password is not a change: the sessions live on.
    server.stop();
    let mut server = Server::start(dir.path(), &[]);
    assert_eq!(transactions_with(&server, &format!("Token {token}")).await.0, 200);
    assert_eq!(transactions_with(&server, &format!("JWT {jwt}")).await.0, 200);
    // A new password ends every session token and JWT issued under the old one.
    server.stop();
    let new_password = "battery staple";
    let server = Server::start(dir.path(), &[("ADMS_ADMIN_PASSWORD", new_password)]);
    assert_eq!(transactions_with(&server, &format!("Token {token}")).await, (401, json!({"detail": "Invalid token."})));
    assert_eq!(transactions_with(&server, &format!("JWT {jwt}")).await.0, 401);
    assert_eq!(transactions_with(&server, &format!("Bearer {jwt}")).await.0, 401);
    let old_basic = format!("Basic {}", base64_encode(&format!("{ADMIN_USER}:{ADMIN_PASSWORD}")));
    assert_eq!(transactions_with(&server, &old_basic).await.0, 401);
    let (token, jwt) = session_and_jwt(&server, ADMIN_USER, new_password).await;
    assert_eq!(transactions_with(&server, &format!("Token {token}")).await.0, 200);
    assert_eq!(transactions_with(&server, &format!("JWT {jwt}")).await.0, 200);
}

/// The JWT signing key as stored (`server_settings`, sealed), read from the database and
/// opened with the server's master key (on SQLite the key file it generated beside the
/// database): what an attacker holding both the database and the key would have.
async fn stored_jwt_key(db: &Database) -> Vec<u8> {
    let (sealed,): (Vec<u8>,) =
        db.fetch_optional("SELECT value FROM server_settings WHERE key = 'jwt_hs256_key'", &[]).await.expect("jwt key");
    let key = db.master_key();
    let opened = key
        .open_for(adms_server::vault::SETTING, adms_server::vault::JWT_KEY, std::str::from_utf8(&sealed).unwrap())
        .expect("sealed under the key file's key");
    hex::decode(opened).expect("hex")
}

async fn admin_id(db: &Database) -> i64 {
    db.scalar_i64("SELECT id FROM api_users WHERE username = $1", &[ADMIN_USER.into()]).await
}

/// A JWT signed with `key` for `user_id`, valid until 2100.
fn forge_jwt(key: &[u8], user_id: i64, username: &str) -> String {
    let claims = json!({
        "token_type": "access", "user_id": user_id, "username": username, "email": "",
        "exp": 4_102_444_800_i64, "iat": 1_700_000_000_i64, "orig_iat": 1_700_000_000_i64,
        "jti": "forged", "ver": 0,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .unwrap()
}

#[tokio::test]
async fn jwt_for_a_missing_user_is_refused_even_with_the_real_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let key = stored_jwt_key(server.db()).await;
    // Control: the key read is the real one, so a token for the real account passes.
    let genuine = forge_jwt(&key, admin_id(server.db()).await, ADMIN_USER);
    assert_eq!(transactions_with(&server, &format!("JWT {genuine}")).await.0, 200);
    let forged = forge_jwt(&key, 987_654, "ghost");
    for scheme in ["JWT", "Bearer"] {
        let (status, body) = transactions_with(&server, &format!("{scheme} {forged}")).await;
        assert_eq!(status, 401, "{scheme}: {body}");
        assert!(body["detail"].is_string(), "{body}");
    }
}

/// The bootstrap account renamed (a different `ADMS_ADMIN_USER`): the previous account is
/// disabled, cannot log in, and its tokens are refused.
#[tokio::test]
async fn renamed_admin_account_is_disabled_with_its_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let (token, jwt) = session_and_jwt(&server, ADMIN_USER, ADMIN_PASSWORD).await;
    server.stop();
    let server = Server::start(dir.path(), &[("ADMS_ADMIN_USER", "root")]);
    assert_eq!(transactions_with(&server, &format!("Token {token}")).await.0, 401);
    assert_eq!(transactions_with(&server, &format!("JWT {jwt}")).await.0, 401);
    let old_basic = format!("Basic {}", base64_encode(&format!("{ADMIN_USER}:{ADMIN_PASSWORD}")));
    assert_eq!(transactions_with(&server, &old_basic).await.0, 401);
    let client = reqwest::Client::new();
    let old = login_as(&client, server.url("/api-token-auth/"), ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!((old.status, old.body), (400, bad_credentials()));
    let (token, jwt) = session_and_jwt(&server, "root", ADMIN_PASSWORD).await;
    assert_eq!(transactions_with(&server, &format!("Token {token}")).await.0, 200);
    assert_eq!(transactions_with(&server, &format!("JWT {jwt}")).await.0, 200);
}
