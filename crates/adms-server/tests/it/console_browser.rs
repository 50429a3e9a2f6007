//! The operator console in a real browser: Debian's Chromium, headless, driven through
//! chromedriver's WebDriver by fantoccini, against the server on loopback and a terminal played
//! with real HTTP requests. One browser session walks the whole story (log in, a pending
//! terminal appears and is approved, a command is sent and completes when the terminal
//! answers, the terminal goes offline when it stops polling and comes back, the XSS name shows as text, a forged form is refused, a punch appears in Live punches within a second, log out), and a screenshot of
//! every page at 1280×800 is written to `ADMS_CONSOLE_SCREENSHOTS`, else
//! `target/console-screenshots/`.
//!
//! Under `CI=true` a missing Chromium or chromedriver fails the test (`.ci/run` installs them);
//! elsewhere the test says why it did not run and passes.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use common::{ADMIN_PASSWORD, ADMIN_USER, Api, Device, Server, eventually};
use fantoccini::{Client, ClientBuilder, Locator};

/// Where the browser and its driver are, or why the test cannot run.
fn browser() -> Result<(PathBuf, PathBuf), String> {
    let find = |names: &[&str]| {
        names.iter().find_map(|name| {
            std::env::var_os("PATH")?
                .to_str()?
                .split(':')
                .map(|dir| Path::new(dir).join(name))
                .find(|path| path.is_file())
        })
    };
    let chromium = find(&["chromium", "chromium-browser", "google-chrome"]).ok_or("no chromium on PATH")?;
    let driver = find(&["chromedriver"]).ok_or("no chromedriver on PATH")?;
    Ok((chromium, driver))
}

/// chromedriver on a free loopback port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(path: &Path) -> Driver {
    let port = crate::common::closed_loopback_addr().port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
    eventually("chromedriver listens", async || tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok())
        .await;
    driver
}

async fn open_browser(driver: &Driver, chromium: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--window-size=1280,800", "--disable-dev-shm-usage", "--disable-gpu"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// The folder screenshots go to (created).
fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("ADMS_CONSOLE_SCREENSHOTS").map(PathBuf::from).unwrap_or_else(|| {
        // `target/tmp` is this test's scratch folder: the screenshots go beside it.
        Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target").join("console-screenshots")
    });
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

async fn screenshot(browser: &Client, dir: &Path, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn text_of(browser: &Client, css: &str) -> Option<String> {
    match browser.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.ok(),
        Err(_) => None,
    }
}

/// Chromium and chromedriver, or `None` (said on stderr) when they are missing outside CI.
fn browser_or_skip() -> Option<(PathBuf, PathBuf)> {
    match browser() {
        Ok(found) => Some(found),
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "the browser tests need Chromium and chromedriver under CI ({why}): apt-get install chromium chromium-driver"
            )
        }
        Err(why) => {
            eprintln!("console_browser skipped: {why} (apt-get install chromium chromium-driver)");
            None
        }
    }
}

/// Logs in on the login page the browser is sent to from `/`.
async fn log_in(browser: &Client, base: &str) {
    browser.goto(&format!("{base}/")).await.unwrap();
    browser.wait().for_element(Locator::Id("username")).await.unwrap().send_keys(ADMIN_USER).await.unwrap();
    browser.find(Locator::Id("password")).await.unwrap().send_keys(ADMIN_PASSWORD).await.unwrap();
    browser.find(Locator::Id("login")).await.unwrap().click().await.unwrap();
    let who = browser.wait().for_element(Locator::Id("who")).await.unwrap().text().await.unwrap();
    assert_eq!(who, ADMIN_USER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_logs_in_approves_a_terminal_and_watches_its_command_complete() {
    crate::sqlite_run_only!("the pages' reads are store calls tested on both engines");
    let Some((chromium, driver_path)) = browser_or_skip() else { return };
    let started = Instant::now();
    let shots = screenshot_dir();
    let dir = tempfile::tempdir().unwrap();
    // The test clock: presence is judged on it, so "silent for a minute" needs no waiting.
    let env = [("ADMS_UNKNOWN_DEVICES", "pending"), ("ADMS_TEST_CLOCK", "true"), ("ADMS_OFFLINE_AFTER_SECS", "30")];
    let server = Server::in_process(dir.path(), &env).await;
    let api = Api::login(&server).await;
    let base = format!("http://{}", server.addr);
    let driver = start_driver(&driver_path).await;
    let browser = open_browser(&driver, &chromium).await;
    browser.set_window_size(1280, 800).await.expect("window size");

    // Not logged in: the console sends the browser to its login page.
    browser.goto(&format!("{base}/")).await.unwrap();
    assert!(browser.current_url().await.unwrap().path().starts_with("/ui/login"), "the login page");
    screenshot(&browser, &shots, "01-login").await;
    // A wrong password is answered on the page.
    browser.find(Locator::Id("username")).await.unwrap().send_keys(ADMIN_USER).await.unwrap();
    browser.find(Locator::Id("password")).await.unwrap().send_keys("not the password").await.unwrap();
    browser.find(Locator::Id("login")).await.unwrap().click().await.unwrap();
    let error = browser.wait().for_element(Locator::Id("login-error")).await.unwrap().text().await.unwrap();
    assert_eq!(error, "Unable to log in with provided credentials.");
    browser.find(Locator::Id("password")).await.unwrap().send_keys(ADMIN_PASSWORD).await.unwrap();
    browser.find(Locator::Id("login")).await.unwrap().click().await.unwrap();
    let who = browser.wait().for_element(Locator::Id("who")).await.unwrap().text().await.unwrap();
    assert_eq!(who, ADMIN_USER);

    // A terminal nobody approved yet handshakes, polls, reports a user with a hostile name and
    // a punch: it appears as pending.
    let terminal = Device { server: &server, sn: "CKJF4711".into() };
    assert_eq!(terminal.handshake().await.status, 200);
    assert_eq!(terminal.get("/iclock/getrequest?SN=CKJF4711").await.text(), "OK");
    let user =
        "USER PIN=7\tName=<script>alert(1)</script>\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000100000000\tVerify=-1\n";
    assert_eq!(terminal.post("/iclock/cdata?SN=CKJF4711&table=OPERLOG&Stamp=1", user.as_bytes()).await.status, 200);
    assert_eq!(terminal.attlog(b"7\t2026-11-20 08:00:00\t0\t1\t\t0\t0\n").await.status, 200);
    browser.goto(&format!("{base}/ui/")).await.unwrap();
    assert_eq!(text_of(&browser, "#devices-pending").await.as_deref(), Some("1"));
    screenshot(&browser, &shots, "02-overview").await;
    browser.find(Locator::Id("devices-pending")).await.unwrap().click().await.unwrap();
    let row = browser.wait().for_element(Locator::Css(r#"tr[data-sn="CKJF4711"]"#)).await.unwrap();
    assert!(row.text().await.unwrap().contains("pending"));
    screenshot(&browser, &shots, "03-devices").await;
    row.find(Locator::LinkText("CKJF4711")).await.unwrap().click().await.unwrap();
    assert_eq!(browser.wait().for_element(Locator::Id("device-state")).await.unwrap().text().await.unwrap(), "pending");

    // The name the terminal reported shows as text, and ran nothing.
    let name = text_of(&browser, "#punches td.name").await;
    assert_eq!(name.as_deref(), Some("<script>alert(1)</script>"));
    assert!(browser.get_alert_text().await.is_err(), "no alert was raised");

    // Approve from the page.
    browser.find(Locator::Id("approve")).await.unwrap().click().await.unwrap();
    eventually("the page shows the terminal approved and online", async || {
        text_of(&browser, "#device-state").await.as_deref() == Some("online")
    })
    .await;
    assert!(text_of(&browser, "p.notice").await.unwrap_or_default().starts_with("Approved"));

    // Send a command from the form: queued, then succeeded once the terminal polls and answers
    // (the queue refreshes itself through htmx, no reload).
    let field = browser.find(Locator::Id("command")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(r#"{"type": "info"}"#).await.unwrap();
    browser.find(Locator::Id("send-command")).await.unwrap().click().await.unwrap();
    let state_css = "#command-queue tr[data-command] .state";
    eventually("the command shows queued", async || text_of(&browser, state_css).await.as_deref() == Some("queued"))
        .await;
    let poll = terminal.get("/iclock/getrequest?SN=CKJF4711").await.text();
    let id = poll
        .lines()
        .find_map(|line| line.strip_prefix("C:")?.strip_suffix(":INFO"))
        .unwrap_or_else(|| panic!("the INFO command in the poll: {poll:?}"))
        .to_owned();
    let answer = format!("ID={id}&Return=0&CMD=INFO\n");
    assert_eq!(terminal.post("/iclock/devicecmd?SN=CKJF4711", answer.as_bytes()).await.text(), "OK");
    eventually("the page shows the command succeeded", async || {
        text_of(&browser, state_css).await.as_deref() == Some("succeeded")
    })
    .await;
    screenshot(&browser, &shots, "04-device").await;

    // The terminal stops polling: a minute later it is listed offline, since when; it polls
    // again and is online.
    api.advance_clock(60).await;
    let offline_row = r#"tr[data-sn="CKJF4711"]"#;
    eventually("the terminal is listed offline", async || {
        browser.goto(&format!("{base}/ui/devices?state=offline")).await.is_ok()
            && text_of(&browser, offline_row).await.is_some_and(|row| row.contains("offline since"))
    })
    .await;
    screenshot(&browser, &shots, "05-devices-offline").await;
    assert_eq!(terminal.get("/iclock/getrequest?SN=CKJF4711").await.text(), "OK");
    eventually("the terminal is online again", async || {
        browser.goto(&format!("{base}/ui/devices/CKJF4711")).await.is_ok()
            && text_of(&browser, "#device-state").await.as_deref() == Some("online")
    })
    .await;

    // A form whose CSRF token was tampered with is refused, and changes nothing.
    browser
        .execute(
            r#"document.querySelector('form[action$="/reject"] input[name=csrf_token]').value = 'forged';"#,
            vec![],
        )
        .await
        .unwrap();
    browser.find(Locator::Id("reject")).await.unwrap().click().await.unwrap();
    eventually("the refusal page", async || browser.title().await.is_ok_and(|t| t.starts_with("Refused"))).await;
    screenshot(&browser, &shots, "06-refused").await;
    browser.goto(&format!("{base}/ui/devices/CKJF4711")).await.unwrap();
    assert_eq!(text_of(&browser, "#device-state").await.as_deref(), Some("online"), "still approved");

    browser.goto(&format!("{base}/ui/rejected-lines")).await.unwrap();
    screenshot(&browser, &shots, "07-rejected-lines").await;
    browser.goto(&format!("{base}/ui/people")).await.unwrap();
    assert!(browser.find(Locator::Id("people")).await.is_ok(), "the people page");
    screenshot(&browser, &shots, "08-people").await;
    browser.goto(&format!("{base}/ui/webhooks")).await.unwrap();
    assert!(browser.find(Locator::Id("deliveries")).await.is_ok(), "the webhooks page");
    screenshot(&browser, &shots, "09-webhooks").await;
    browser.goto(&format!("{base}/ui/keys")).await.unwrap();
    assert!(browser.find(Locator::Id("keys")).await.is_ok(), "the API keys page");
    screenshot(&browser, &shots, "10-keys").await;

    // Log out: the console's pages send the browser to the login page again.
    browser.find(Locator::Id("logout")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("login")).await.unwrap();
    browser.goto(&format!("{base}/ui/devices")).await.unwrap();
    assert!(browser.current_url().await.unwrap().path().starts_with("/ui/login"), "logged out");

    browser.close().await.unwrap();
    eprintln!("console_browser: {:?} in the browser; screenshots in {}", started.elapsed(), shots.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_punch_appears_live_and_its_failing_webhook_shows_its_attempts_and_is_resent() {
    use common::webhooks::{Receiver, Reply, SECRET};
    crate::sqlite_run_only!("the pages' reads are store calls tested on both engines");
    let Some((chromium, driver_path)) = browser_or_skip() else { return };
    let shots = screenshot_dir();
    // The receiver fails the first punch delivery with an answer of its own, then succeeds.
    let receiver = Receiver::builder()
        .only("attendance.punch")
        .replying(|n| if n == 1 { Reply::Body(503, "text/plain", b"<i>busy</i>".to_vec()) } else { Reply::Status(200) })
        .start()
        .await;
    let url = receiver.url();
    let dir = tempfile::tempdir().unwrap();
    // On the test clock the retry after the failure never comes due by itself: only the
    // resend from the page sends it again.
    let env = [("ADMS_WEBHOOK_URL", url.as_str()), ("ADMS_WEBHOOK_SECRET", SECRET), ("ADMS_TEST_CLOCK", "true")];
    let server = Server::in_process(dir.path(), &env).await;
    let base = format!("http://{}", server.addr);
    let terminal = Device { server: &server, sn: "LIVE4711".into() };
    assert_eq!(terminal.handshake().await.status, 200);
    let user =
        "USER PIN=9\tName=<img src=x onerror=alert(1)>\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000100000000\tVerify=-1\n";
    assert_eq!(terminal.post("/iclock/cdata?SN=LIVE4711&table=OPERLOG&Stamp=1", user.as_bytes()).await.status, 200);
    let driver = start_driver(&driver_path).await;
    let browser = open_browser(&driver, &chromium).await;
    browser.set_window_size(1280, 800).await.expect("window size");
    log_in(&browser, &base).await;

    // Live punches: the page is connected, a punch the terminal uploads is listed within a
    // second (polled, with that deadline), its hostile name as text.
    browser.goto(&format!("{base}/ui/live")).await.unwrap();
    eventually("the live page is connected", async || {
        text_of(&browser, "#live-status").await.is_some_and(|s| s.starts_with("Connected"))
    })
    .await;
    assert_eq!(terminal.attlog(b"9\t2026-11-20 09:30:00\t1\t1\t\t0\t0\n").await.text(), "OK: 1");
    common::eventually_within(std::time::Duration::from_secs(1), "the punch is listed", async || {
        text_of(&browser, "#live-punches tr[data-punch]").await.is_some_and(|row| row.contains("2026-11-20 09:30:00"))
    })
    .await;
    let name = text_of(&browser, "#live-punches tr[data-punch] td.name").await;
    assert_eq!(name.as_deref(), Some("<img src=x onerror=alert(1)>"));
    assert!(browser.get_alert_text().await.is_err(), "no alert was raised");
    screenshot(&browser, &shots, "11-live-punches").await;

    // The punch's delivery failed: the delivery page lists the attempt with the receiver's
    // answer, and the resend button sends it again.
    receiver.wait_for_n("attendance.punch", 1).await;
    let failed_row = "#deliveries tr[data-delivery]";
    eventually("the failed delivery is listed", async || {
        browser.goto(&format!("{base}/ui/webhooks?state=pending")).await.is_ok()
            && text_of(&browser, failed_row).await.is_some_and(|row| row.contains("HTTP 503"))
    })
    .await;
    screenshot(&browser, &shots, "12-webhooks-failing").await;
    let row = browser.find(Locator::Css(failed_row)).await.unwrap();
    row.find(Locator::Css("a")).await.unwrap().click().await.unwrap();
    let attempt = browser.wait().for_element(Locator::Css("td.status")).await.unwrap().text().await.unwrap();
    assert_eq!(attempt, "503");
    assert!(browser.source().await.unwrap().contains("&lt;i&gt;busy&lt;/i&gt;"), "the receiver's answer, as text");
    browser.find(Locator::Id("resend")).await.unwrap().click().await.unwrap();
    receiver.wait_for_n("attendance.punch", 2).await;
    eventually("the delivery shows succeeded", async || {
        browser.refresh().await.is_ok() && text_of(&browser, "#delivery-state").await.as_deref() == Some("succeeded")
    })
    .await;
    screenshot(&browser, &shots, "13-delivery-resent").await;

    // The endpoint's page: its settings, backlog and forms.
    browser.goto(&format!("{base}/ui/webhooks")).await.unwrap();
    browser.find(Locator::Css("#endpoints tr[data-endpoint] a")).await.unwrap().click().await.unwrap();
    let shown = browser.wait().for_element(Locator::Id("endpoint-url")).await.unwrap().text().await.unwrap();
    assert_eq!(shown, url);
    assert!(browser.find(Locator::Id("replay")).await.is_ok(), "the replay form");
    screenshot(&browser, &shots, "14-webhook-endpoint").await;
    browser.close().await.unwrap();
}
