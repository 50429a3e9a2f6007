//! The `Dispatcher` itself, pass by pass (`run_once`), on a real SQLite outbox (adms-store) and a
//! real receiver on 127.0.0.1: what it sends is the stored body under the event's id, signed;
//! a failure is retried on schedule and not before (no pass sends it until the clock reaches
//! its time); a 410 stops the endpoint; a lease that ran out is swept and the delivery sent by
//! the next worker, and the worker that lost it is fenced.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adms_store::webhooks::{DeliveryOutcome, EndpointSettings};
use adms_store::{Approval, NewDevice, NewPunch, PunchBatch, Store, StoreOptions, now_micros};
use adms_webhooks::{
    AddressPolicy, Clock, DeliveryClient, DeliveryMetrics, Dispatcher, DispatcherConfig, Pass, WebhookSecret, verify,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::Notify;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Request {
    id: String,
    timestamp: i64,
    signature: String,
    body: Bytes,
}

#[derive(Default)]
struct Script {
    /// Statuses for the next requests, in turn; then 200.
    statuses: Mutex<VecDeque<u16>>,
    received: Mutex<Vec<Request>>,
}

/// A receiver on loopback that records every request and answers the scripted statuses.
struct Receiver {
    url: String,
    script: Arc<Script>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(statuses: &[u16]) -> Receiver {
        async fn receive(State(script): State<Arc<Script>>, headers: HeaderMap, body: Bytes) -> StatusCode {
            let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            script.received.lock().unwrap().push(Request {
                id: text("webhook-id"),
                timestamp: text("webhook-timestamp").parse().unwrap_or(0),
                signature: text("webhook-signature"),
                body,
            });
            let status = script.statuses.lock().unwrap().pop_front().unwrap_or(200);
            StatusCode::from_u16(status).expect("status")
        }
        let script = Arc::new(Script { statuses: Mutex::new(statuses.iter().copied().collect()), ..Script::default() });
        let app = axum::Router::new().fallback(axum::routing::post(receive)).with_state(Arc::clone(&script));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, script, task }
    }

    fn received(&self) -> Vec<Request> {
        self.script.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A store on a fresh SQLite file, a device, and an endpoint for punches at `url`.
struct Outbox {
    store: Store,
    device: i64,
    _dir: tempfile::TempDir,
}

impl Outbox {
    async fn new(url: &str) -> Outbox {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(&format!("sqlite://{}", dir.path().join("outbox.db").display()), StoreOptions::default())
                .await
                .expect("open");
        let new = NewDevice { sn: "DISP0001", approval: Some(Approval::Approved), ..Default::default() };
        let device = store.register_device(&new).await.expect("device").id;
        let settings = EndpointSettings {
            url,
            description: "",
            event_types: Some(r#"["attendance.punch"]"#),
            timeout_ms: 2000,
            batch_max: 1,
            ordered: false,
        };
        store.create_endpoint("ep_test", &settings, "api", SECRET).await.expect("endpoint");
        Outbox { store, device, _dir: dir }
    }

    /// Stores punches of these PINs (08:00 UTC, one event each).
    async fn punch(&self, pins: &[&str]) {
        let mut batch = PunchBatch::new(self.device);
        batch.device_sn = "DISP0001".into();
        batch.device_time_zone = "UTC".into();
        for pin in pins {
            batch.punches.push(NewPunch {
                pin: (*pin).into(),
                local_time: "2026-11-20 08:00:00".into(),
                state: "0".into(),
                verify: 1,
                work_code: "0".into(),
                extra: String::new(),
                time_zone: Some("UTC".into()),
                utc_time: Some(1_795_161_600),
                mask_flag: None,
                temperature: None,
                raw_line: format!("{pin}\t2026-11-20 08:00:00\t0\t1\t0"),
            });
        }
        self.store.punch_writer().write(batch).await.expect("punches");
    }

    /// The stored body of every punch event, by event id.
    async fn bodies(&self) -> Vec<(String, Vec<u8>)> {
        let events = self.store.list_events(Some("attendance.punch"), None, 100, None).await.expect("events");
        events.into_iter().map(|e| (e.event_id, e.body)).collect()
    }

    fn dispatcher(&self, worker: &str, clock: &Arc<Clock>) -> Dispatcher {
        let policy =
            AddressPolicy { allow_list: vec!["127.0.0.0/8".parse().expect("net")], ..AddressPolicy::default() };
        let client = DeliveryClient::new(policy, Duration::from_secs(2), Duration::from_secs(5), "adms-bridge-test/1")
            .expect("client");
        let config = DispatcherConfig { worker: worker.into(), ..DispatcherConfig::default() };
        Dispatcher::new(
            self.store.clone(),
            client,
            config,
            Arc::clone(clock),
            Arc::new(Notify::new()),
            Arc::new(DeliveryMetrics::default()),
        )
    }
}

fn verifies(request: &Request) -> bool {
    let secret: WebhookSecret = SECRET.parse().expect("secret");
    verify(&secret, &request.id, request.timestamp, &request.body, &request.signature)
}

#[tokio::test]
async fn a_pass_sends_each_due_event_once_signed_with_its_stored_body() {
    let receiver = Receiver::start(&[]).await;
    let outbox = Outbox::new(&receiver.url).await;
    let clock = Arc::new(Clock::default());
    let dispatcher = outbox.dispatcher("w1", &clock);
    outbox.punch(&["1", "2", "3"]).await;

    let pass = dispatcher.run_once().await.expect("pass");
    assert_eq!(pass, Pass { requests: 3, succeeded: 3, ..Pass::default() });
    let mut received: Vec<(String, Vec<u8>)> =
        receiver.received().iter().map(|r| (r.id.clone(), r.body.to_vec())).collect();
    received.sort();
    let mut stored = outbox.bodies().await;
    stored.sort();
    assert_eq!(received, stored, "each event under its id with its stored bytes");
    assert!(receiver.received().iter().all(verifies), "every signature verifies");

    // Drained: the next pass has nothing to send, and sends nothing.
    assert_eq!(dispatcher.run_once().await.expect("pass"), Pass::default());
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn a_failure_is_retried_on_schedule_and_not_before() {
    let receiver = Receiver::start(&[500]).await;
    let outbox = Outbox::new(&receiver.url).await;
    let clock = Arc::new(Clock::default());
    let dispatcher = outbox.dispatcher("w1", &clock);
    outbox.punch(&["1"]).await;

    assert_eq!(dispatcher.run_once().await.expect("pass"), Pass { requests: 1, failed: 1, ..Pass::default() });
    // Before its retry time (the first retry comes seconds later), a pass sends nothing.
    assert_eq!(dispatcher.run_once().await.expect("pass"), Pass::default());
    assert_eq!(receiver.received().len(), 1);
    let next = outbox.store.next_delivery_due_at().await.expect("due").expect("a delivery is waiting");
    assert!(next > now_micros(), "scheduled after now");

    // At its time it is sent again: the same id and body, and delivered.
    clock.advance(Duration::from_micros(u64::try_from(next - now_micros()).unwrap_or(0)) + Duration::from_secs(1));
    assert_eq!(dispatcher.run_once().await.expect("pass"), Pass { requests: 1, succeeded: 1, ..Pass::default() });
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!((&received[0].id, &received[0].body), (&received[1].id, &received[1].body), "the same request again");
    assert!(received.iter().all(verifies));
    assert_eq!(outbox.store.next_delivery_due_at().await.expect("due"), None, "nothing left to send");
}

#[tokio::test]
async fn a_410_stops_the_endpoint() {
    let receiver = Receiver::start(&[410]).await;
    let outbox = Outbox::new(&receiver.url).await;
    let clock = Arc::new(Clock::default());
    let dispatcher = outbox.dispatcher("w1", &clock);
    outbox.punch(&["1"]).await;

    assert_eq!(dispatcher.run_once().await.expect("pass"), Pass { requests: 1, failed: 1, ..Pass::default() });
    let endpoint = outbox.store.endpoint_by_uid("ep_test").await.expect("read").expect("endpoint");
    assert!(endpoint.paused_reason.is_some(), "paused by the 410: {endpoint:?}");
    // A week later nothing has been sent to it again.
    clock.advance(Duration::from_secs(7 * 24 * 3600));
    outbox.punch(&["2"]).await;
    assert_eq!(dispatcher.run_once().await.expect("pass").requests, 0);
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn an_expired_lease_is_swept_and_sent_by_the_next_worker_and_the_old_worker_is_fenced() {
    let receiver = Receiver::start(&[]).await;
    let outbox = Outbox::new(&receiver.url).await;
    let clock = Arc::new(Clock::default());
    outbox.punch(&["1"]).await;

    // A worker claims the delivery and dies before recording anything.
    let lease = 60_000_000;
    let lost = outbox.store.claim_due_deliveries("dead", clock.now_micros(), lease, 10).await.expect("claim");
    assert_eq!(lost.len(), 1);
    let dispatcher = outbox.dispatcher("w2", &clock);
    assert_eq!(dispatcher.run_once().await.expect("pass"), Pass::default(), "leased: not sent while the lease runs");
    assert!(receiver.received().is_empty());

    clock.advance(Duration::from_secs(61));
    let pass = dispatcher.run_once().await.expect("pass");
    assert_eq!(pass, Pass { leases_expired: 1, requests: 1, succeeded: 1, ..Pass::default() });
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(receiver.received()[0].id, lost[0].event_id);

    // The dead worker's late completion is refused: its lease was taken over.
    let late = adms_store::webhooks::Completion {
        delivery_id: lost[0].delivery_id,
        lease_token: lost[0].lease_token,
        attempt_no: lost[0].attempt_no,
        trigger: lost[0].trigger.clone(),
        worker: "dead".into(),
        started_at: now_micros(),
        duration_us: 10,
        http_status: Some(500),
        error_kind: None,
        error: None,
        response_body: Vec::new(),
        outcome: DeliveryOutcome::RetryAt(now_micros()),
        batch_id: None,
    };
    assert_eq!(outbox.store.complete_deliveries(&[late]).await.expect("complete"), [false]);
    assert_eq!(dispatcher.run_once().await.expect("pass"), Pass::default(), "delivered once, nothing re-queued");
}
