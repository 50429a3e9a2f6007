//! The console's live punches over real HTTP (issue 18): the page and its server-sent event
//! stream, read frame by frame from a server the harness started. A punch a terminal uploads
//! arrives in the stream, a device filter leaves other terminals' punches out, the stream needs
//! a console session, and it ends when the session ends and when the server stops (an endless
//! answer must not hold the graceful shutdown open).

use crate::common;
use crate::console::Console;

use common::{Device, EVENTUALLY, Server};

/// A `text/event-stream` answer read event by event.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

/// One event: its `event:` name (`message` when none), its `id:` and its `data:`.
#[derive(Debug)]
struct SseEvent {
    name: String,
    id: Option<String>,
    data: String,
}

impl EventStream {
    async fn open(console: &Console, path: &str) -> EventStream {
        EventStream::resume(console, path, None).await
    }

    /// The stream as a reconnecting browser asks for it: after the last id it got.
    async fn resume(console: &Console, path: &str, last_event_id: Option<&str>) -> EventStream {
        let mut request = console
            .client
            .get(format!("{}{path}", console.base))
            .header("Accept", "text/event-stream")
            .header("Cookie", console.cookie.as_deref().expect("logged in"));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("the stream");
        assert_eq!(response.status(), 200, "GET {path}");
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        EventStream { response, buffer: String::new() }
    }

    /// The next event (comments and keep-alives skipped); `None` when the server ended the
    /// answer. Panics after [`EVENTUALLY`] without either.
    async fn next(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(EVENTUALLY, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let frame: String = self.buffer.drain(..end + 2).collect();
                    let mut event = SseEvent { name: "message".into(), id: None, data: String::new() };
                    for line in frame.lines() {
                        if let Some(name) = line.strip_prefix("event:") {
                            event.name = name.trim().to_owned();
                        } else if let Some(id) = line.strip_prefix("id:") {
                            event.id = Some(id.trim().to_owned());
                        } else if let Some(data) = line.strip_prefix("data:") {
                            event.data.push_str(data.trim_start());
                        }
                    }
                    if event.name != "message" || !event.data.is_empty() {
                        return Some(event);
                    }
                    continue;
                }
                match self.response.chunk().await {
                    Ok(Some(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                    Ok(None) | Err(_) => return None,
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no event and no end within {EVENTUALLY:?}"))
    }

    /// The punches of `punches` events, as JSON rows, until one of them satisfies `done`.
    async fn punches_until(&mut self, done: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
        let mut seen = Vec::new();
        loop {
            let event = self.next().await.expect("the stream went on");
            if event.name != "punches" {
                continue;
            }
            let message: serde_json::Value = serde_json::from_str(&event.data).expect("JSON");
            let rows = message["punches"].as_array().expect("punches").clone();
            let found = rows.iter().any(&done);
            seen.extend(rows);
            if found {
                return seen;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_punch_arrives_in_the_live_stream_and_a_device_filter_keeps_others_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let watched = Device { server: &server, sn: "LIVE_W".into() };
    let other = Device { server: &server, sn: "LIVE_O".into() };
    assert_eq!(watched.handshake().await.status, 200);
    assert_eq!(other.handshake().await.status, 200);
    let console = Console::login(&server).await;

    // The page names its stream with the page's filters, and loads its script (no inline one).
    let page = console.page("/ui/live?device=LIVE_W").await;
    assert!(page.contains(r#"data-stream="/ui/live/stream?device=LIVE_W""#), "{page}");
    assert!(page.contains(r#"<script src="/ui/static/console-live-1.js" defer></script>"#));
    let script = console.get("/ui/static/console-live-1.js").await;
    assert_eq!(script.status(), 200);
    assert!(script.text().await.unwrap().contains("EventSource"));

    let mut everything = EventStream::open(&console, "/ui/live/stream").await;
    let mut filtered = EventStream::open(&console, "/ui/live/stream?device=LIVE_W").await;
    for stream in [&mut everything, &mut filtered] {
        assert_eq!(stream.next().await.expect("the first event").name, "ready");
    }
    // The other terminal's punch is stored first: a filter that let it through would show it
    // before (or with) the watched one.
    assert_eq!(other.attlog(b"8\t2026-11-20 08:00:00\t0\t1\t\t0\t0\n").await.text(), "OK: 1");
    assert_eq!(watched.attlog(b"7\t2026-11-20 08:01:00\t1\t15\t\t0\t0\n").await.text(), "OK: 1");
    let all = everything.punches_until(|p| p["sn"] == "LIVE_W").await;
    let sns: Vec<_> = all.iter().map(|p| p["sn"].as_str().unwrap()).collect();
    assert_eq!(sns, ["LIVE_O", "LIVE_W"], "both, in the order they were stored");
    let only = filtered.punches_until(|p| p["sn"] == "LIVE_W").await;
    assert_eq!(only.len(), 1, "only the watched terminal's: {only:?}");
    let punch = &only[0];
    assert_eq!((punch["pin"].as_str(), punch["time"].as_str()), (Some("7"), Some("2026-11-20 08:01:00")));
    assert_eq!(punch["state"], "Check Out (1)");
    assert_eq!(punch["verify"], "Face (15)");
    assert_eq!(punch["device_href"], "/ui/devices/LIVE_W");

    // A browser reconnecting with the last id it got misses nothing stored meanwhile.
    let ready = EventStream::open(&console, "/ui/live/stream?device=LIVE_W").await.next().await.expect("ready");
    let last_id = ready.id.expect("the ready event carries the starting id");
    assert_eq!(watched.attlog(b"7\t2026-11-20 08:01:30\t0\t1\t\t0\t0\n").await.text(), "OK: 1");
    let mut resumed = EventStream::resume(&console, "/ui/live/stream?device=LIVE_W", Some(&last_id)).await;
    let missed = resumed.punches_until(|p| p["time"] == "2026-11-20 08:01:30").await;
    assert_eq!(missed.len(), 1, "{missed:?}");

    // A PIN filter: the next punch of another PIN is left out, this PIN's comes.
    let mut by_pin = EventStream::open(&console, "/ui/live/stream?pin=42").await;
    assert_eq!(by_pin.next().await.expect("ready").name, "ready");
    assert_eq!(watched.attlog(b"41\t2026-11-20 08:02:00\t0\t1\t\t0\t0\n").await.text(), "OK: 1");
    assert_eq!(watched.attlog(b"42\t2026-11-20 08:03:00\t0\t1\t\t0\t0\n").await.text(), "OK: 1");
    let pins: Vec<_> = by_pin.punches_until(|p| p["pin"] == "42").await.iter().map(|p| p["pin"].clone()).collect();
    assert_eq!(pins, ["42"]);

    // No session: the page sends the browser to the login form, the stream is refused.
    let anonymous = Console::new(&server);
    let page = anonymous.get("/ui/live").await;
    assert_eq!(page.status(), 303);
    let stream = anonymous
        .client
        .get(format!("{}/ui/live/stream", anonymous.base))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_ends_with_its_session_and_does_not_hold_a_stopping_server_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let console = Console::login(&server).await;
    let csrf = console.csrf().await;

    // Logging out ends the stream: the page is told, and the answer ends.
    let mut stream = EventStream::open(&console, "/ui/live/stream").await;
    assert_eq!(stream.next().await.expect("ready").name, "ready");
    assert_eq!(console.post("/ui/logout", &[("csrf_token", &csrf)]).await.status(), 303);
    let ended = stream.next().await.expect("an event before the end");
    assert_eq!((ended.name.as_str(), ended.data.as_str()), ("ended", "session"));
    assert!(stream.next().await.is_none(), "the answer ends");

    // A stream open while the server is told to stop ends, and the server exits.
    let console = Console::login(&server).await;
    let mut stream = EventStream::open(&console, "/ui/live/stream").await;
    assert_eq!(stream.next().await.expect("ready").name, "ready");
    server.signal_term();
    assert!(stream.next().await.is_none(), "the stream ends when the server stops");
    let status = server.wait_for_exit();
    assert!(status.success(), "a clean exit: {status:?}");
}
