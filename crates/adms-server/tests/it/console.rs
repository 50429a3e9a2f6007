//! The operator console over HTTP (issue 18): every `/ui/` route needs a console session, the
//! session is no API credential and API credentials open no console page, every form needs
//! its CSRF token, the login is the API's (same lock-out), what devices wrote is escaped, the
//! device list pages, and every answer carries the security headers. (The same in a real
//! browser: `console_browser`.)

use crate::common;

use common::{ADMIN_PASSWORD, ADMIN_USER, Api, Device, Server};

/// A browser without JavaScript: cookies kept by hand, redirects not followed (each answer
/// is looked at).
pub struct Console {
    pub client: reqwest::Client,
    pub base: String,
    /// `name=value` of the session cookie once logged in.
    pub cookie: Option<String>,
}

/// The value of `name="<field>" value="…"` in a page (the forms' hidden fields).
pub fn hidden_field(page: &str, field: &str) -> Option<String> {
    let marker = format!("name=\"{field}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    let end = page[start..].find('"')?;
    Some(page[start..start + end].to_owned())
}

/// `name=value` of cookie `name` among a response's `Set-Cookie` headers, with the whole header.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response.headers().get_all(reqwest::header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        let pair = v.split(';').next()?.trim();
        pair.starts_with(&format!("{name}=")).then(|| (pair.to_owned(), v.to_owned()))
    })
}

impl Console {
    pub fn new(server: &Server) -> Console {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Console { client, base: format!("http://{}", server.addr), cookie: None }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.base)).header("Accept", "text/html");
        if let Some(cookie) = &self.cookie {
            request = request.header("Cookie", cookie);
        }
        request.send().await.expect("GET")
    }

    pub async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.expect("page")
    }

    /// Posts a form as a browser does (the cookie, url-encoded fields).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.post(format!("{}{path}", self.base)).form(fields);
        if let Some(cookie) = &self.cookie {
            request = request.header("Cookie", cookie);
        }
        request.send().await.expect("POST")
    }

    /// The login form's answer for these credentials (the form's CSRF value and cookie as a
    /// browser sends them back).
    pub async fn try_login(&self, username: &str, password: &str) -> reqwest::Response {
        let form = self.client.get(format!("{}/ui/login", self.base)).send().await.expect("login page");
        let (login_cookie, _) = set_cookie(&form, "adms_console_login").expect("the login form's cookie");
        let csrf = hidden_field(&form.text().await.expect("page"), "csrf_token").expect("the login form's token");
        self.client
            .post(format!("{}/ui/login", self.base))
            .header("Cookie", login_cookie)
            .form(&[("username", username), ("password", password), ("csrf_token", &csrf), ("next", "/ui/")])
            .send()
            .await
            .expect("login")
    }

    pub async fn login(server: &Server) -> Console {
        let mut console = Console::new(server);
        let response = console.try_login(ADMIN_USER, ADMIN_PASSWORD).await;
        assert_eq!(response.status(), 303, "logged in");
        let (cookie, _) = set_cookie(&response, "adms_console").expect("session cookie");
        console.cookie = Some(cookie);
        console
    }

    /// The CSRF token of the session, from a page.
    pub async fn csrf(&self) -> String {
        hidden_field(&self.page("/ui/").await, "csrf_token").expect("a form with the token")
    }
}

/// Every page and form of the console, as `(method, path)`.
const ROUTES: [(&str, &str); 31] = [
    ("GET", "/ui/"),
    ("GET", "/ui/devices"),
    ("GET", "/ui/devices/SN1"),
    ("GET", "/ui/devices/SN1/commands"),
    ("GET", "/ui/rejected-lines"),
    ("GET", "/ui/live"),
    ("GET", "/ui/live/stream"),
    ("GET", "/ui/people"),
    ("GET", "/ui/keys"),
    ("GET", "/ui/webhooks"),
    ("GET", "/ui/webhooks/deliveries/1"),
    ("GET", "/ui/webhooks/endpoints/ep"),
    ("GET", "/ui/webhooks/endpoints/ep/delete"),
    ("GET", "/ui/anything-else"),
    ("POST", "/ui/logout"),
    ("POST", "/ui/devices/SN1/approve"),
    ("POST", "/ui/devices/SN1/reject"),
    ("POST", "/ui/devices/SN1/alias"),
    ("POST", "/ui/devices/SN1/area"),
    ("POST", "/ui/devices/SN1/action"),
    ("POST", "/ui/devices/SN1/commands"),
    ("POST", "/ui/commands/1/cancel"),
    ("POST", "/ui/keys"),
    ("POST", "/ui/keys/1/revoke"),
    ("POST", "/ui/webhooks/deliveries/1/resend"),
    ("POST", "/ui/webhooks/endpoints/ep/pause"),
    ("POST", "/ui/webhooks/endpoints/ep/resume"),
    ("POST", "/ui/webhooks/endpoints"),
    ("POST", "/ui/webhooks/endpoints/ep/rotate-secret"),
    ("POST", "/ui/webhooks/endpoints/ep/replay"),
    ("POST", "/ui/webhooks/endpoints/ep/delete"),
];

#[tokio::test]
async fn every_console_route_needs_a_console_session_and_api_credentials_open_none() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    Device { server: &server, sn: "SN1".into() }.handshake().await;
    let anonymous = Console::new(&server);
    for (method, path) in ROUTES {
        for authorization in [None, Some(format!("Token {}", api.token)), Some(format!("Bearer {}", api.token))] {
            let mut request = match method {
                "GET" => anonymous.client.get(format!("{}{path}", anonymous.base)).header("Accept", "text/html"),
                _ => anonymous.client.post(format!("{}{path}", anonymous.base)).form(&[("csrf_token", "x")]),
            };
            if let Some(value) = &authorization {
                request = request.header("Authorization", value);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            if method == "GET" {
                assert_eq!(status, 303, "{method} {path} with {authorization:?}");
                let location = response.headers()["location"].to_str().unwrap().to_owned();
                assert!(location.starts_with("/ui/login?next="), "{path}: {location}");
            } else {
                assert!(matches!(status, 401 | 403), "{method} {path} with {authorization:?}: {status}");
            }
        }
    }
    // No POST went through: nothing was queued for the device.
    let commands = api.get("/api/v1/devices/SN1/commands").await;
    assert_eq!(commands["count"], 0);
}

#[tokio::test]
async fn the_console_cookie_opens_no_api_route_and_carries_its_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let console = Console::new(&server);
    let response = console.try_login(ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/ui/");
    let (cookie, header) = set_cookie(&response, "adms_console").expect("session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=28800"] {
        assert!(header.contains(attribute), "{header}");
    }
    assert!(!header.contains("Secure"), "plain HTTP without a proxy saying otherwise: {header}");
    let token = cookie.split_once('=').unwrap().1.to_owned();
    for path in ["/api/v1/users", "/iclock/api/terminals/", "/api/v1/rejected-lines", "/metrics"] {
        let with_cookie = console.client.get(format!("{}{path}", console.base)).header("Cookie", &cookie).send();
        assert_eq!(with_cookie.await.unwrap().status(), 401, "{path} with the console cookie");
        let as_token =
            console.client.get(format!("{}{path}", console.base)).header("Authorization", format!("Token {token}"));
        assert_eq!(as_token.send().await.unwrap().status(), 401, "{path} with the console token as an API token");
    }
    // Behind a TLS proxy the cookie is Secure.
    let form = console.client.get(format!("{}/ui/login", console.base)).send().await.unwrap();
    let (login_cookie, _) = set_cookie(&form, "adms_console_login").unwrap();
    let csrf = hidden_field(&form.text().await.unwrap(), "csrf_token").unwrap();
    let response = console
        .client
        .post(format!("{}/ui/login", console.base))
        .header("Cookie", login_cookie)
        .header("X-Forwarded-Proto", "https")
        .form(&[("username", ADMIN_USER), ("password", ADMIN_PASSWORD), ("csrf_token", &csrf)])
        .send()
        .await
        .unwrap();
    let (_, header) = set_cookie(&response, "adms_console").expect("session cookie");
    assert!(header.contains("Secure"), "{header}");
}

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "pending")]).await;
    Device { server: &server, sn: "PEND1".into() }.handshake().await;
    let console = Console::login(&server).await;
    let other = Console::login(&server).await;
    let others_token = other.csrf().await;
    let own = console.csrf().await;
    assert_ne!(own, others_token, "tokens are per session");
    for fields in
        [vec![], vec![("csrf_token", "")], vec![("csrf_token", "00ff")], vec![("csrf_token", others_token.as_str())]]
    {
        let response = console.post("/ui/devices/PEND1/approve", &fields).await;
        assert_eq!(response.status(), 403, "{fields:?}");
    }
    // The login form's own double-submitted value: a post without it is refused too.
    let response = console
        .client
        .post(format!("{}/ui/login", console.base))
        .form(&[("username", ADMIN_USER), ("password", ADMIN_PASSWORD), ("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let page = console.page("/ui/devices/PEND1").await;
    assert!(page.contains(r#"id="device-state">pending<"#), "still pending");
    // With the token, the same form works (post, then redirect to the page).
    let response = console.post("/ui/devices/PEND1/approve", &[("csrf_token", &own)]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/ui/devices/PEND1?done=approved");
    let page = console.page("/ui/devices/PEND1?done=approved").await;
    assert!(page.contains(r#"id="device-state">online<"#), "approved");
    // Logout ends the session in the database: the old cookie opens nothing.
    let response = console.post("/ui/logout", &[("csrf_token", &own)]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(console.get("/ui/").await.status(), 303, "back to the login page");
    assert_eq!(other.get("/ui/").await.status(), 200, "another session lives on");
}

#[tokio::test]
async fn wrong_passwords_lock_the_console_login_out_as_they_do_the_apis() {
    let dir = tempfile::tempdir().unwrap();
    // Small limits: the API's throttle, shared by both logins.
    let server = Server::in_process(dir.path(), &[("ADMS_LOGIN_USER_FAILURES", "3")]).await;
    let console = Console::new(&server);
    let response = console.try_login(ADMIN_USER, "wrong").await;
    assert_eq!(response.status(), 401);
    assert!(response.text().await.unwrap().contains("Unable to log in with provided credentials."));
    // Failures through the API count for the console's login, and the other way round.
    let client = reqwest::Client::new();
    let api_login = || {
        client
            .post(server.url("/api-token-auth/"))
            .json(&serde_json::json!({ "username": ADMIN_USER, "password": "wrong" }))
            .send()
    };
    let mut locked = false;
    for _ in 0..6 {
        let status = api_login().await.unwrap().status().as_u16();
        if status == 429 {
            locked = true;
            break;
        }
        assert_eq!(status, 400);
    }
    assert!(locked, "the API locks out");
    let response = console.try_login(ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 429, "locked out even with the right password");
    assert!(response.headers().contains_key("retry-after"));
    assert!(response.text().await.unwrap().contains("Too many failed logins"));
    assert!(set_cookie(&console.try_login(ADMIN_USER, ADMIN_PASSWORD).await, "adms_console").is_none());
}

#[tokio::test]
async fn what_devices_wrote_shows_escaped_and_pages_carry_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let dev = Device { server: &server, sn: "XSS1".into() };
    assert_eq!(dev.handshake().await.status, 200);
    let operlog =
        "USER PIN=7\tName=<script>alert(1)</script>\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000100000000\tVerify=-1\n";
    let r = dev.post("/iclock/cdata?SN=XSS1&table=OPERLOG&Stamp=1", operlog.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(dev.attlog(b"7\t2026-11-20 08:00:00\t0\t1\t\t0\t0\n<img src=x onerror=alert(2)>\n").await.status, 200);
    let console = Console::login(&server).await;
    let response = console.get("/ui/devices/XSS1").await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let page = response.text().await.unwrap();
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "escaped name"
    );
    assert!(!page.contains("<script>alert(1)"), "no live script");
    assert!(!page.contains("<img src=x"), "the rejected line is text too");
    // The punch is weeks older than its upload: the device's clock looks far behind, flagged.
    let at = page.find(r#"id="clock-skew">"#).expect("the clock skew");
    let skew: String = page[at..].chars().take(120).collect();
    assert!(skew.starts_with("id=\"clock-skew\">−") && skew.contains("check the clock"), "{skew}");
    let csp = headers["content-security-policy"].to_str().unwrap();
    let script_src = csp.split(';').find(|d| d.trim().starts_with("script-src")).expect("a script-src");
    assert!(!script_src.contains("unsafe-inline") && !script_src.contains("unsafe-eval"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers.contains_key("referrer-policy"));
    assert_eq!(headers["cache-control"], "no-store");
    // No inline script at all: every script is a file of the console's own origin.
    assert!(!page.contains("<script>"), "an inline script");
    for static_file in ["/ui/static/htmx-4.0.1.min.js", "/ui/static/console-2.css"] {
        assert!(page.contains(static_file), "{static_file}");
        let response = console.client.get(format!("{}{static_file}", console.base)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{static_file} (public)");
        assert!(response.headers()["cache-control"].to_str().unwrap().contains("max-age=31536000"));
    }
    // Every device's rejected lines, the raw line as text, linked to its device.
    let rejected = console.page("/ui/rejected-lines").await;
    assert!(
        rejected.contains("&#60;img src=x onerror=alert(2)&#62;") && rejected.contains(r#"href="/ui/devices/XSS1""#)
    );
    assert!(hidden_href(&rejected, "next-page").is_none(), "one page");
    assert_eq!(console.get("/ui/rejected-lines?before=x").await.status(), 400);
    // The login page has the policy too.
    let login = console.client.get(format!("{}/ui/login", console.base)).send().await.unwrap();
    assert!(login.headers().contains_key("content-security-policy"));
}

#[tokio::test]
async fn the_root_sends_browsers_to_the_console_and_nobody_else() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let browser = client.get(server.url("/")).header("Accept", "text/html,application/xhtml+xml").send().await.unwrap();
    assert_eq!(browser.status(), 303);
    assert_eq!(browser.headers()["location"], "/ui/");
    let api_client = client.get(server.url("/")).header("Accept", "application/json").send().await.unwrap();
    assert_eq!(api_client.status(), 404);
    let post = client.post(server.url("/")).header("Accept", "text/html").send().await.unwrap();
    assert_eq!(post.status(), 404);
    // A terminal's paths are untouched.
    let dev = Device { server: &server, sn: "ROOT1".into() };
    assert_eq!(dev.handshake().await.status, 200);
    assert_eq!(dev.get("/").await.status, 404);
}

#[tokio::test]
async fn the_device_list_pages_by_keyset_with_its_filters_in_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    for i in 0..53 {
        let dev = Device { server: &server, sn: format!("PAGE{i:03}") };
        assert_eq!(dev.handshake().await.status, 200);
    }
    let console = Console::login(&server).await;
    let first = console.page("/ui/devices").await;
    assert_eq!(first.matches("<tr data-sn=").count(), 50);
    assert!(first.contains(r#"data-sn="PAGE000""#) && first.contains(r#"data-sn="PAGE049""#));
    let next = hidden_href(&first, "next-page").expect("a next page");
    assert!(next.starts_with("/ui/devices?after="), "{next}");
    let second = console.page(&next).await;
    assert_eq!(second.matches("<tr data-sn=").count(), 3);
    assert!(second.contains(r#"data-sn="PAGE052""#) && !second.contains(r#"data-sn="PAGE049""#));
    assert!(hidden_href(&second, "next-page").is_none(), "the last page");
    // A search keeps its filter in the next page's address.
    let searched = console.page("/ui/devices?q=page&state=online").await;
    assert_eq!(searched.matches("<tr data-sn=").count(), 50);
    let next = hidden_href(&searched, "next-page").expect("a next page");
    assert!(next.contains("q=page") && next.contains("state=online"), "{next}");
    assert_eq!(console.page(&next).await.matches("<tr data-sn=").count(), 3);
    assert_eq!(console.page("/ui/devices?state=pending").await.matches("<tr data-sn=").count(), 0);
    assert_eq!(console.get("/ui/devices?state=bogus").await.status(), 400);
    assert_eq!(console.get("/ui/devices/NOPE").await.status(), 404);
    // The overview counts them and links to the lists.
    let overview = console.page("/ui/").await;
    assert!(overview.contains(r#"id="devices-online" href="/ui/devices?state=online">53<"#), "53 online");
}

/// The `href` of the link with this id.
fn hidden_href(page: &str, id: &str) -> Option<String> {
    let marker = format!("id=\"{id}\"");
    let at = page.find(&marker)?;
    let tag_start = page[..at].rfind('<')?;
    let tag = &page[tag_start..at + marker.len()];
    let start = tag.find("href=\"")? + 6;
    let end = tag[start..].find('"')?;
    // Attribute values are HTML-escaped (askama writes `&` as `&#38;`).
    Some(tag[start..start + end].replace("&#38;", "&").replace("&amp;", "&"))
}

/// The login of another account.
async fn console_as(server: &Server, username: &str, password: &str) -> Console {
    let mut console = Console::new(server);
    let response = console.try_login(username, password).await;
    assert_eq!(response.status(), 303, "{username} logs in");
    console.cookie = Some(set_cookie(&response, "adms_console").expect("session cookie").0);
    console
}

#[tokio::test]
async fn device_actions_go_through_the_apis_rules_and_only_for_roles_that_may() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let dev = Device { server: &server, sn: "ACT1".into() };
    assert_eq!(dev.handshake().await.status, 200);
    let console = Console::login(&server).await;
    let csrf = console.csrf().await;
    let post = async |path: &str, fields: &[(&str, &str)]| {
        let mut all = vec![("csrf_token", csrf.as_str())];
        all.extend_from_slice(fields);
        console.post(path, &all).await
    };
    let commands = async || api.get("/api/v1/devices/ACT1/commands").await["data"].as_array().unwrap().clone();

    // Commands are read as the API reads them: unknown fields and control characters refused,
    // shown on the page with the text sent, nothing queued.
    for (command, why) in [
        (r#"{"type": "reboot", "pin": "1"}"#, "unknown field"),
        (r#"{"type": "query_userinfo", "pin": "1\t2"}"#, "control character"),
        (r#"{"type": "warp"}"#, "unknown variant"),
        ("not json", "Invalid JSON"),
        ("[1]", "Must be an object"),
    ] {
        let response = post("/ui/devices/ACT1/commands", &[("command", command)]).await;
        assert_eq!(response.status(), 400, "{command}");
        let page = response.text().await.unwrap();
        assert!(page.contains("Command refused") && page.contains(why), "{command}: {why}");
    }
    assert!(commands().await.is_empty(), "nothing queued");
    let response = post("/ui/devices/ACT1/commands", &[("command", r#"{"type": "info"}"#)]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/ui/devices/ACT1?done=queued");
    let queued = commands().await;
    assert_eq!(
        (queued.len(), queued[0]["wire"].as_str(), queued[0]["source"].as_str()),
        (1, Some("INFO"), Some("console:admin"))
    );
    let id = queued[0]["id"].as_i64().unwrap();
    // Cancel it; a second cancel is refused on the page (it is no longer queued).
    let response = post(&format!("/ui/commands/{id}/cancel"), &[]).await;
    assert_eq!(response.headers()["location"], "/ui/devices/ACT1?done=cancelled");
    assert_eq!(api.get(&format!("/api/v1/commands/{id}")).await["state"], "cancelled");
    assert_eq!(post(&format!("/ui/commands/{id}/cancel"), &[]).await.status(), 400);
    assert_eq!(post("/ui/commands/999999/cancel", &[]).await.status(), 404);

    // Terminal actions queue what the API's queue, once while queued.
    for _ in 0..2 {
        let response = post("/ui/devices/ACT1/action", &[("action", "reboot")]).await;
        assert_eq!(response.headers()["location"], "/ui/devices/ACT1?done=action");
    }
    let reboots: Vec<_> = commands().await.into_iter().filter(|c| c["wire"] == "REBOOT").collect();
    assert_eq!(reboots.len(), 1, "de-duplicated as the API's terminal action");
    assert_eq!(post("/ui/devices/ACT1/action", &[("action", "self_destruct")]).await.status(), 400);

    // Rename (the alias shows as text) and move to an area (which must exist).
    let response = post("/ui/devices/ACT1/alias", &[("alias", "<b>Front door</b>")]).await;
    assert_eq!(response.headers()["location"], "/ui/devices/ACT1?done=renamed");
    let terminals = api.get("/iclock/api/terminals/").await;
    assert_eq!(terminals["data"][0]["alias"], "<b>Front door</b>");
    assert!(console.page("/ui/devices").await.contains("&#60;b&#62;Front door&#60;/b&#62;"));
    assert_eq!(post("/ui/devices/ACT1/alias", &[("alias", "bell\u{7}")]).await.status(), 400);
    let (status, area) = api
        .post_json("/personnel/api/areas/", &serde_json::json!({ "area_code": "HQ", "area_name": "Head office" }))
        .await;
    assert_eq!(status, 201, "{area}");
    let area_id = area["id"].as_i64().unwrap().to_string();
    assert_eq!(post("/ui/devices/ACT1/area", &[("area", "424242")]).await.status(), 400);
    let response = post("/ui/devices/ACT1/area", &[("area", &area_id)]).await;
    assert_eq!(response.headers()["location"], "/ui/devices/ACT1?done=area");
    assert_eq!(api.get("/iclock/api/terminals/").await["data"][0]["area"]["area_code"], "HQ");
    assert_eq!(console.page(&format!("/ui/devices?area={area_id}")).await.matches("<tr data-sn=").count(), 1);
    assert_eq!(console.page("/ui/devices?area=1").await.matches("<tr data-sn=").count(), 0);

    // Every change is in the audit log, as the console's.
    let audit = api.get("/api/v1/audit-log?page_size=100&user=admin").await;
    let console_routes: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor_kind"] == "session")
        .filter_map(|e| e["route"].as_str())
        .filter(|route| route.starts_with("/ui/"))
        .collect();
    for route in [
        "/ui/devices/{sn}/commands",
        "/ui/commands/{id}/cancel",
        "/ui/devices/{sn}/action",
        "/ui/devices/{sn}/alias",
        "/ui/devices/{sn}/area",
    ] {
        assert!(console_routes.contains(&route), "{route} in {console_routes:?}");
    }

    // A viewer looks and may not act.
    let (status, _) = api
        .post_json(
            "/api/v1/users",
            &serde_json::json!({ "username": "vera", "password": "viewer password", "role": "viewer" }),
        )
        .await;
    assert_eq!(status, 201);
    let viewer = console_as(&server, "vera", "viewer password").await;
    let page = viewer.page("/ui/devices/ACT1").await;
    assert!(!page.contains(r#"id="send-command""#), "no action forms for a viewer");
    let token = viewer.csrf().await;
    let refused = viewer.post("/ui/devices/ACT1/reject", &[("csrf_token", &token)]).await;
    assert_eq!(refused.status(), 403);
    let refused =
        viewer.post("/ui/devices/ACT1/commands", &[("csrf_token", &token), ("command", r#"{"type": "reboot"}"#)]).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(api.get("/iclock/api/terminals/").await["data"][0]["approval"], "approved");
}

#[tokio::test]
async fn a_failing_webhook_shows_its_attempts_and_is_resent_from_the_console() {
    use common::webhooks::{Receiver, Reply, SECRET};
    // The first request fails with a body of the receiver's own; later ones succeed.
    let receiver = Receiver::builder()
        .replying(|n| {
            if n == 1 { Reply::Body(500, "text/plain", b"<b>receiver busy</b>".to_vec()) } else { Reply::Status(200) }
        })
        .start()
        .await;
    let url = receiver.url();
    let dir = tempfile::tempdir().unwrap();
    // On the test clock, the retry after the failure never comes due by itself.
    let env = [("ADMS_WEBHOOK_URL", url.as_str()), ("ADMS_WEBHOOK_SECRET", SECRET), ("ADMS_TEST_CLOCK", "true")];
    let server = Server::in_process(dir.path(), &env).await;
    assert_eq!(Device { server: &server, sn: "HOOK1".into() }.handshake().await.status, 200);
    receiver.wait_for_n("device.registered", 1).await;
    let console = Console::login(&server).await;
    let mut delivery_href = None;
    crate::common::eventually("the failed attempt is recorded", async || {
        let page = console.page("/ui/webhooks?state=pending").await;
        delivery_href = page.contains("HTTP 500").then(|| hidden_href_in_row(&page, "data-delivery")).flatten();
        delivery_href.is_some()
    })
    .await;
    let href = delivery_href.unwrap();
    let page = console.page(&href).await;
    assert!(page.contains(r#"<td class="status">500</td>"#), "the attempt's status");
    assert!(page.contains("&#60;b&#62;receiver busy&#60;/b&#62;"), "the receiver's answer, as text");
    let csrf = hidden_field(&page, "csrf_token").unwrap();
    assert_eq!(console.post(&format!("{href}/resend"), &[]).await.status(), 403, "without the token");
    let response = console.post(&format!("{href}/resend"), &[("csrf_token", &csrf)]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], format!("{href}?done=resent"));
    receiver.wait_for_n("device.registered", 2).await;
    crate::common::eventually("the delivery shows succeeded", async || {
        console.page(&href).await.contains(r#"id="delivery-state">succeeded<"#)
    })
    .await;
    assert_eq!(console.page("/ui/webhooks?state=succeeded").await.matches("<tr data-delivery=").count(), 1);
    // Pause and resume the endpoint from the page, as the API's change does.
    let api = Api::login(&server).await;
    let page = console.page("/ui/webhooks").await;
    let uid = page
        .split(r#"<tr data-endpoint=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the endpoint")
        .to_owned();
    let pause = hidden_href_in_form(&page, "/pause").expect("a pause form");
    let response = console.post(&pause, &[("csrf_token", &csrf)]).await;
    assert_eq!(response.headers()["location"], "/ui/webhooks?done=paused");
    let endpoint = api.get(&format!("/api/v1/webhooks/endpoints/{uid}")).await;
    assert_eq!(endpoint["paused_reason"], "manual", "{endpoint}");
    let page = console.page("/ui/webhooks?done=paused").await;
    let resume = hidden_href_in_form(&page, "/resume").expect("a resume form");
    assert_eq!(console.post(&resume, &[("csrf_token", &csrf)]).await.status(), 303);
    assert!(api.get(&format!("/api/v1/webhooks/endpoints/{uid}")).await["paused_reason"].is_null());
    assert_eq!(console.get("/ui/webhooks?state=bogus").await.status(), 400);
    assert_eq!(console.get("/ui/webhooks/deliveries/424242").await.status(), 404);
}

/// The first link in the first table row carrying `attribute`.
fn hidden_href_in_row(page: &str, attribute: &str) -> Option<String> {
    let row = &page[page.find(&format!("<tr {attribute}="))?..];
    let start = row.find("href=\"")? + 6;
    let end = row[start..].find('"')?;
    Some(row[start..start + end].to_owned())
}

/// The `action` of the first form posting to a path ending in `suffix`.
fn hidden_href_in_form(page: &str, suffix: &str) -> Option<String> {
    page.split("action=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|a| a.ends_with(suffix))
        .map(str::to_owned)
}

#[tokio::test]
async fn the_people_page_shows_the_roster_and_the_terminals_that_hold_each_person() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    for (code, name) in [("0042", "<i>Ann</i>"), ("1001", "Bo")] {
        let body = serde_json::json!({ "emp_code": code, "first_name": name, "department": 1, "area": [1] });
        let (status, answer) = api.post_json("/personnel/api/employees/", &body).await;
        assert_eq!(status, 201, "{answer}");
    }
    let dev = Device { server: &server, sn: "HOLD1".into() };
    assert_eq!(dev.handshake().await.status, 200);
    let operlog = "USER PIN=0042\tName=Ann\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000100000000\tVerify=-1\n\
                   FP PIN=0042\tFID=6\tSize=8\tValid=1\tTMP=ocoAAA==\n";
    assert_eq!(dev.post("/iclock/cdata?SN=HOLD1&table=OPERLOG&Stamp=1", operlog.as_bytes()).await.status, 200);
    let console = Console::login(&server).await;
    let page = console.page("/ui/people").await;
    assert_eq!(page.matches("<tr data-pin=").count(), 2);
    assert!(page.contains("&#60;i&#62;Ann&#60;/i&#62;"), "the name as text");
    let ann = &page[page.find(r#"<tr data-pin="0042">"#).unwrap()..];
    let ann = &ann[..ann.find("</tr>").unwrap()];
    assert!(ann.contains(r#"<a href="/ui/devices/HOLD1">HOLD1</a> (1 / 0)"#), "{ann}");
    let bo = &page[page.find(r#"<tr data-pin="1001">"#).unwrap()..];
    assert!(bo[..bo.find("</tr>").unwrap()].contains("none"), "nobody reported Bo");
    let searched = console.page("/ui/people?q=100").await;
    assert_eq!(searched.matches("<tr data-pin=").count(), 1);
    assert_eq!(console.get("/ui/people?page=-1").await.status(), 400);
}

#[tokio::test]
async fn api_keys_are_created_once_shown_work_on_the_api_and_are_revoked_by_admins_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let console = Console::login(&server).await;
    let csrf = console.csrf().await;
    let create = async |name: &str, scopes: &[&str]| {
        let mut fields = vec![("csrf_token", csrf.as_str()), ("name", name)];
        fields.extend(scopes.iter().map(|s| ("scope", *s)));
        console.post("/ui/keys", &fields).await
    };
    let response = create("payroll", &["read", "devices:control"]).await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    let key =
        page.split(r#"<code id="new-key-value">"#).nth(1).and_then(|rest| rest.split('<').next()).unwrap().to_owned();
    assert_eq!(key.len(), 40, "{key}");
    // Shown once: the list does not carry it.
    assert!(!console.page("/ui/keys").await.contains(&key));
    let client = reqwest::Client::new();
    let with_key = async |path: &str| {
        client.get(server.url(path)).header("Authorization", format!("Token {key}")).send().await.unwrap().status()
    };
    assert_eq!(with_key("/iclock/api/terminals/").await, 200, "the key reads");
    assert_eq!(with_key("/api/v1/users").await, 403, "and has no admin scope");
    // A name in force is refused; unknown scopes too; the key opens no console page.
    assert_eq!(create("payroll", &[]).await.status(), 400);
    assert_eq!(create("other", &["root"]).await.status(), 400);
    let as_key =
        console.client.get(format!("{}/ui/keys", console.base)).header("Authorization", format!("Token {key}"));
    assert_eq!(as_key.send().await.unwrap().status(), 303);
    // Only admins see or change keys.
    let api = Api::login(&server).await;
    let body = serde_json::json!({ "username": "otto", "password": "operator pass", "role": "operator" });
    assert_eq!(api.post_json("/api/v1/users", &body).await.0, 201);
    let operator = console_as(&server, "otto", "operator pass").await;
    assert_eq!(operator.get("/ui/keys").await.status(), 403);
    let id = page.split(r#"<tr data-key=""#).nth(1).and_then(|rest| rest.split('"').next()).unwrap().to_owned();
    let operator_csrf = operator.csrf().await;
    assert_eq!(operator.post(&format!("/ui/keys/{id}/revoke"), &[("csrf_token", &operator_csrf)]).await.status(), 403);
    assert_eq!(with_key("/iclock/api/terminals/").await, 200, "still in force");
    let response = console.post(&format!("/ui/keys/{id}/revoke"), &[("csrf_token", &csrf)]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(with_key("/iclock/api/terminals/").await, 401, "revoked");
    assert!(console.page("/ui/keys").await.contains("revoked"));
}
