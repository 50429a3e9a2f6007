//! What webhook tests share: the endpoint secret, one received request, and the one test
//! receiver, whose answers a test scripts.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::sync::Notify;

use super::{Api, Device, Server, eventually};

/// The `whsec_` secret the tests configure (the Standard Webhooks spec's test key).
pub const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// One webhook request as a receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: Bytes,
    /// The path it was sent to.
    pub path: String,
    /// The status the receiver answered (or, for a request still held, will answer); 0 when it
    /// closed the connection without an answer ([`Reply::Drop`]).
    pub status: u16,
}

impl Received {
    /// From the three Standard Webhooks headers (by case-insensitive name) and the raw body.
    pub fn new(header: impl Fn(&str) -> String, body: Bytes) -> Received {
        Received {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp").parse().unwrap_or(0),
            signature: header("webhook-signature"),
            body,
            path: String::new(),
            status: 200,
        }
    }

    /// From an axum request's headers.
    pub fn from_headers(headers: &HeaderMap, body: Bytes) -> Received {
        Received::new(|name| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(), body)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }
}

/// How the receiver answers one recorded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(u16),
    /// The status with a `Retry-After` of this many seconds.
    RetryAfter(u16, u64),
    /// The status with this `Content-Type` and body.
    Body(u16, &'static str, Vec<u8>),
    /// The status after this delay.
    Delayed(Duration, u16),
    /// Sleeps past any webhook timeout the tests use, then 200.
    Hang,
    /// Held open until [`Receiver::release`], then this status.
    Held(u16),
    /// Closes the connection without an answer, once the whole request was read (and recorded):
    /// the request was processed, but the sender cannot know it.
    Drop,
}

impl Reply {
    /// The status the sender will see (0: none, the connection is closed).
    fn status(&self) -> u16 {
        match self {
            Reply::Status(code)
            | Reply::RetryAfter(code, _)
            | Reply::Body(code, ..)
            | Reply::Delayed(_, code)
            | Reply::Held(code) => *code,
            Reply::Hang => 200,
            Reply::Drop => 0,
        }
    }
}

/// Chooses the reply to the n-th recorded request (from 1), seeing the request.
type Script = Box<dyn FnMut(usize, &Received) -> Reply + Send>;

struct Shared {
    /// Only requests of this event type are recorded and scripted; the others get 200.
    only: Option<&'static str>,
    /// Requests this says yes to are answered 200 and not recorded.
    ignore: Option<fn(&serde_json::Value) -> bool>,
    received: Mutex<Vec<Received>>,
    script: Mutex<Script>,
    release: Notify,
}

/// How to start a [`Receiver`]: every request recorded and answered 200 unless told otherwise.
pub struct ReceiverBuilder {
    addr: String,
    only: Option<&'static str>,
    ignore: Option<fn(&serde_json::Value) -> bool>,
    script: Script,
}

impl ReceiverBuilder {
    /// Listens on this address (to come back on the port of a stopped receiver).
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.addr = addr.into();
        self
    }

    /// Records and scripts only requests of `event_type`; any other request gets 200.
    pub fn only(mut self, event_type: &'static str) -> Self {
        self.only = Some(event_type);
        self
    }

    /// Answers 200 to the events `ignore` says yes to, without recording them (a
    /// [`Witness`]'s devices, say).
    pub fn ignoring(mut self, ignore: fn(&serde_json::Value) -> bool) -> Self {
        self.ignore = Some(ignore);
        self
    }

    /// Answers the recorded requests with these replies in turn, then 200.
    pub fn script(mut self, replies: Vec<Reply>) -> Self {
        let mut replies: VecDeque<Reply> = replies.into();
        self.script = Box::new(move |_, _| replies.pop_front().unwrap_or(Reply::Status(200)));
        self
    }

    /// Answers the n-th recorded request (from 1) with `reply(n)`.
    pub fn replying(mut self, mut reply: impl FnMut(usize) -> Reply + Send + 'static) -> Self {
        self.script = Box::new(move |n, _| reply(n));
        self
    }

    /// Answers each recorded request with `reply(request)` (by its path, say).
    pub fn answering(mut self, reply: impl FnMut(&Received) -> Reply + Send + 'static) -> Self {
        let mut reply = reply;
        self.script = Box::new(move |_, request| reply(request));
        self
    }

    pub async fn start(self) -> Receiver {
        let shared = Arc::new(Shared {
            only: self.only,
            ignore: self.ignore,
            received: Mutex::default(),
            script: Mutex::new(self.script),
            release: Notify::new(),
        });
        let listener = tokio::net::TcpListener::bind(&self.addr).await.expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        let accepting = Arc::clone(&shared);
        // HTTP/1.1 straight on hyper (not axum): a service that fails makes hyper close the
        // connection without an answer, which is how [`Reply::Drop`] is done. The connections
        // live in the accept task's `JoinSet`, so they end with it.
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                let shared = Arc::clone(&accepting);
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| receive(Arc::clone(&shared), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { addr, shared, task }
    }
}

/// The error of a [`Reply::Drop`]: hyper closes the connection without writing an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the script")
    }
}

impl std::error::Error for Dropped {}

type Answer = hyper::Response<Full<Bytes>>;

fn answer(code: u16, headers: &[(&'static str, String)], body: Vec<u8>) -> Answer {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(code).expect("status");
    for (name, value) in headers {
        response.headers_mut().insert(*name, value.parse().expect("header value"));
    }
    response
}

async fn receive(shared: Arc<Shared>, request: hyper::Request<hyper::body::Incoming>) -> Result<Answer, Dropped> {
    let (head, body) = request.into_parts();
    let body = body.collect().await.map(|collected| collected.to_bytes()).unwrap_or_default();
    let mut received = Received::from_headers(&head.headers, body);
    received.path = head.uri.path().to_owned();
    let event = serde_json::from_slice::<serde_json::Value>(&received.body).unwrap_or_default();
    if shared.only.is_some_and(|only| event["type"] != only) || shared.ignore.is_some_and(|ignore| ignore(&event)) {
        return Ok(answer(200, &[], Vec::new()));
    }
    let reply = {
        let mut all = shared.received.lock().unwrap();
        let reply = (shared.script.lock().unwrap())(all.len() + 1, &received);
        received.status = reply.status();
        all.push(received);
        reply
    };
    match reply {
        Reply::Status(code) => Ok(answer(code, &[], Vec::new())),
        Reply::RetryAfter(code, secs) => Ok(answer(code, &[("retry-after", secs.to_string())], Vec::new())),
        Reply::Body(code, content_type, body) => Ok(answer(code, &[("content-type", content_type.to_owned())], body)),
        Reply::Delayed(delay, code) => {
            tokio::time::sleep(delay).await;
            Ok(answer(code, &[], Vec::new()))
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(answer(200, &[], Vec::new()))
        }
        Reply::Held(code) => {
            shared.release.notified().await;
            Ok(answer(code, &[], Vec::new()))
        }
        Reply::Drop => Err(Dropped),
    }
}

/// A webhook receiver on loopback: records what it is sent and answers as scripted.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub fn builder() -> ReceiverBuilder {
        ReceiverBuilder {
            addr: "127.0.0.1:0".to_owned(),
            only: None,
            ignore: None,
            script: Box::new(|_, _| Reply::Status(200)),
        }
    }

    /// Records every request and answers 200.
    pub async fn start() -> Receiver {
        Receiver::builder().start().await
    }

    /// `http://<addr>/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// `http://<addr>`, for tests that tell endpoints apart by path.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What was recorded, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    pub fn of_type(&self, event_type: &str) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.event_type() == event_type).collect()
    }

    /// Waits until a request of `event_type` satisfying `matches` arrived.
    pub async fn wait_for(&self, event_type: &str, matches: impl Fn(&serde_json::Value) -> bool) -> Received {
        let found = || self.of_type(event_type).into_iter().find(|r| matches(&r.json()));
        eventually(&format!("a matching {event_type} event arrives"), async || found().is_some()).await;
        found().expect("found")
    }

    /// Waits until `n` requests of `event_type` arrived, and returns them.
    pub async fn wait_for_n(&self, event_type: &str, n: usize) -> Vec<Received> {
        eventually(&format!("{n} {event_type} events arrive"), async || self.of_type(event_type).len() >= n).await;
        self.of_type(event_type)
    }

    /// Answers the request held by [`Reply::Held`].
    pub fn release(&self) {
        self.shared.release.notify_one();
    }

    /// Stops listening (the connections it has are dropped with it).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Proof that the server's background work ran after some moment, for the negative assertions
/// that follow it ("nothing else was sent"): an endpoint of its own, subscribed to
/// `device.registered` and `device.offline`, a receiver for it, and devices of its own
/// (`WITNESS…`). [`Witness::pass`] makes a new device register and waits until its event
/// arrived: a dispatcher pass has claimed what was due by then. [`Witness::device`] before a
/// clock move and [`Witness::offline`] after it do the same for a presence check. Either way an
/// assertion that something was not sent no longer depends on how long a sleep was. Receivers
/// that count every event leave the witness's out with `.ignoring(Witness::is_witness)`.
pub struct Witness {
    receiver: Receiver,
    devices: std::sync::atomic::AtomicUsize,
}

impl Witness {
    pub async fn create(api: &Api) -> Witness {
        let receiver = Receiver::start().await;
        let (status, created) = api
            .post_json(
                "/api/v1/webhooks/endpoints",
                &serde_json::json!({ "url": receiver.url(), "event_types": ["device.registered", "device.offline"] }),
            )
            .await;
        assert_eq!(status, 201, "witness endpoint: {created}");
        Witness { receiver, devices: std::sync::atomic::AtomicUsize::new(0) }
    }

    /// Whether `event` is about one of the witness's devices.
    pub fn is_witness(event: &serde_json::Value) -> bool {
        event["data"]["device"]["sn"].as_str().is_some_and(|sn| sn.starts_with("WITNESS"))
    }

    /// Registers a new device on `server`, waits until the witness got its `device.registered`,
    /// and returns its serial number.
    pub async fn device(&self, server: &Server) -> String {
        let n = self.devices.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let device = Device { server, sn: format!("WITNESS{n:03}") };
        assert_eq!(device.handshake().await.status, 200);
        let sn = device.sn;
        self.receiver.wait_for("device.registered", |event| event["data"]["device"]["sn"] == sn.as_str()).await;
        sn
    }

    /// A dispatcher pass: [`Witness::device`], its serial number dropped.
    pub async fn pass(&self, server: &Server) {
        self.device(server).await;
    }

    /// Waits until the witness got `device.offline` for its device `sn`.
    pub async fn offline(&self, sn: &str) {
        self.receiver.wait_for("device.offline", |event| event["data"]["device"]["sn"] == sn).await;
    }
}

/// An ATTLOG body of `n` distinct punches numbered from `from` (PIN `100 + i`, one minute apart).
pub fn attlog_lines(from: usize, n: usize) -> Vec<u8> {
    (from..from + n)
        .map(|i| format!("{}\t2026-11-20 {:02}:{:02}:00\t0\t1\t0\t0\t0\n", 100 + i, 8 + i / 60, i % 60))
        .collect::<String>()
        .into_bytes()
}

/// What every delivery scenario ends with, for events that carry a per-device `data.seq`
/// (punches, access events) of one device: every signature verifies (with the independent
/// `standardwebhooks` crate), the same `webhook-id` always came with the same body, `events`
/// distinct ids arrived, and their `seq`s are 1..=events.
pub fn check_delivery_invariants(received: &[Received], events: usize) {
    let verifier = standardwebhooks::Webhook::new(SECRET).expect("secret");
    let mut bodies: std::collections::BTreeMap<&str, &Bytes> = std::collections::BTreeMap::new();
    for r in received {
        // Independent signature: the library signs the same content; ours must carry it.
        let theirs = verifier.sign(&r.id, r.timestamp, &r.body).expect("library signs");
        assert!(r.signature.split(' ').any(|s| s == theirs), "signature of {} does not verify", r.id);
        if let Some(first) = bodies.insert(&r.id, &r.body) {
            assert_eq!(first, &r.body, "same webhook-id, different body");
        }
    }
    assert_eq!(bodies.len(), events, "every event delivered, none under two ids");
    let mut seqs: Vec<i64> = bodies
        .values()
        .map(|b| serde_json::from_slice::<serde_json::Value>(b).unwrap()["data"]["seq"].as_i64().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=events as i64).collect::<Vec<_>>(), "per-device seq contiguous");
}
