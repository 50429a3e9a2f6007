//! `DeliveryClient::send` against a real HTTP server on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use adms_webhooks::{
    AddressPolicy, AttemptOutcome, AttemptReport, DeliveryClient, FailureKind, NON_TEXT_BODY_MARKER,
    RESPONSE_CAPTURE_LIMIT, WebhookHeaders, WebhookSecret, signature_header, verify,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const USER_AGENT: &str = "adms-bridge-test/1";
const BODY: &str = r#"{"type":"attendance.punch","data":{"seq":1}}"#;

/// Requests that reached `/ok` (with a valid signature or not).
#[derive(Clone, Default)]
struct Hits(Arc<AtomicUsize>);

async fn ok(State(hits): State<Hits>, headers: HeaderMap, body: Bytes) -> Response {
    hits.0.fetch_add(1, Ordering::SeqCst);
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let secret: WebhookSecret = SECRET.parse().expect("secret");
    let timestamp = text("webhook-timestamp").parse().unwrap_or(0);
    let signed = verify(&secret, text("webhook-id"), timestamp, &body, text("webhook-signature"));
    if signed && text("content-type") == "application/json" && text("user-agent") == USER_AGENT {
        (StatusCode::OK, "accepted").into_response()
    } else {
        (StatusCode::UNAUTHORIZED, "bad signature or headers").into_response()
    }
}

async fn fail() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "database is down").into_response()
}

async fn gone() -> Response {
    (StatusCode::GONE, "unsubscribed").into_response()
}

async fn throttled() -> Response {
    (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "120")], "slow down").into_response()
}

async fn unavailable() -> Response {
    let in_ten_minutes = SystemTime::now() + Duration::from_secs(600);
    let retry_after = httpdate::fmt_http_date(in_ten_minutes);
    (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, retry_after)], "maintenance").into_response()
}

async fn redirect() -> Response {
    (StatusCode::FOUND, [(header::LOCATION, "/ok")], "moved").into_response()
}

async fn slow() -> Response {
    tokio::time::sleep(Duration::from_secs(10)).await;
    (StatusCode::OK, "too late").into_response()
}

async fn big() -> Response {
    (StatusCode::OK, "x".repeat(100 * 1024)).into_response()
}

async fn binary() -> Response {
    (StatusCode::OK, vec![0u8, 159, 146, 150, 0xff]).into_response()
}

struct TestServer {
    addr: SocketAddr,
    hits: Hits,
}

impl TestServer {
    async fn start() -> Self {
        let hits = Hits::default();
        let app = Router::new()
            .route("/ok", post(ok))
            .route("/fail", post(fail))
            .route("/gone", post(gone))
            .route("/throttled", post(throttled))
            .route("/unavailable", post(unavailable))
            .route("/redirect", post(redirect))
            .route("/slow", post(slow))
            .route("/big", post(big))
            .route("/binary", post(binary))
            .with_state(hits.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Self { addr, hits }
    }

    fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).expect("url")
    }

    fn hits(&self) -> usize {
        self.hits.0.load(Ordering::SeqCst)
    }
}

/// A bare TCP server for what an axum handler cannot do: it reads each whole request, writes
/// `reply` verbatim (possibly nothing, possibly a response cut short), and closes the connection.
async fn start_raw_server(reply: &'static [u8]) -> Url {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while !request_complete(&request) {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buffer[..n]),
                }
            }
            let _ = stream.write_all(reply).await;
            let _ = stream.shutdown().await;
        }
    });
    Url::parse(&format!("http://{addr}/hook")).expect("url")
}

/// Whether `request` holds the head and the whole `Content-Length` body.
fn request_complete(request: &[u8]) -> bool {
    let Some(head_end) = request.windows(4).position(|window| window == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    request.len() >= head_end + 4 + length
}

/// A client for the test servers on 127.0.0.1: loopback opens only through the allow list.
fn on_site_client(request_timeout: Duration) -> DeliveryClient {
    let policy = AddressPolicy { allow_list: vec!["127.0.0.0/8".parse().expect("net")], ..AddressPolicy::default() };
    DeliveryClient::new(policy, Duration::from_secs(2), request_timeout, USER_AGENT).expect("client")
}

fn signed_headers(id: &str, body: &[u8]) -> WebhookHeaders {
    let secret: WebhookSecret = SECRET.parse().expect("secret");
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64;
    let signature = signature_header(&[WebhookSecret::generate(), secret], id, timestamp, body);
    WebhookHeaders { id: id.to_owned(), timestamp, signature }
}

async fn send(client: &DeliveryClient, url: Url) -> AttemptReport {
    client.send(&url, &signed_headers("evt_test", BODY.as_bytes()), Bytes::from_static(BODY.as_bytes())).await
}

fn failed(status: Option<u16>, kind: FailureKind) -> AttemptOutcome {
    AttemptOutcome::Failed { status, kind }
}

#[tokio::test]
async fn answers_are_classified() {
    let server = TestServer::start().await;
    let client = on_site_client(Duration::from_secs(5));

    let report = send(&client, server.url("/ok")).await;
    assert_eq!(report.outcome, AttemptOutcome::Delivered(200), "{report:?}");
    assert_eq!(
        (report.status, report.error.as_deref(), &report.response_body[..]),
        (Some(200), None, &b"accepted"[..])
    );

    let report = send(&client, server.url("/fail")).await;
    assert_eq!(report.outcome, failed(Some(500), FailureKind::Http));
    assert_eq!(report.response_body, b"database is down");

    let report = send(&client, server.url("/gone")).await;
    assert_eq!((report.outcome, report.status), (AttemptOutcome::Gone, Some(410)));

    let report = send(&client, server.url("/throttled")).await;
    let expected = AttemptOutcome::Throttled { status: 429, retry_after: Some(Duration::from_secs(120)) };
    assert_eq!(report.outcome, expected);

    let report = send(&client, server.url("/unavailable")).await;
    match report.outcome {
        AttemptOutcome::Throttled { status: 503, retry_after: Some(wait) } => {
            assert!(wait > Duration::from_secs(590) && wait <= Duration::from_secs(600), "{wait:?}");
        }
        other => panic!("expected 503 with Retry-After, got {other:?}"),
    }

    let report = send(&client, server.url("/nowhere")).await;
    assert_eq!(report.outcome, failed(Some(404), FailureKind::Http));
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = TestServer::start().await;
    let client = on_site_client(Duration::from_secs(5));
    let report = send(&client, server.url("/redirect")).await;
    assert_eq!(report.outcome, failed(Some(302), FailureKind::Redirect), "{report:?}");
    assert_eq!(report.error.as_deref(), Some("redirect to /ok not followed"));
    assert_eq!(server.hits(), 0, "the redirect target must not be requested");
}

#[tokio::test]
async fn slow_receivers_time_out() {
    let server = TestServer::start().await;
    let client = on_site_client(Duration::from_millis(300));
    let report = send(&client, server.url("/slow")).await;
    assert_eq!(report.outcome, failed(None, FailureKind::Timeout), "{report:?}");
    assert!(report.duration >= Duration::from_millis(300) && report.duration < Duration::from_secs(5));
    assert!(report.error.is_some());
}

#[tokio::test]
async fn response_capture_stops_at_the_limit() {
    let server = TestServer::start().await;
    let client = on_site_client(Duration::from_secs(5));
    let report = send(&client, server.url("/big")).await;
    assert_eq!(report.outcome, AttemptOutcome::Delivered(200));
    assert_eq!(report.response_body.len(), RESPONSE_CAPTURE_LIMIT);
    assert_eq!(report.error, None);
}

#[tokio::test]
async fn binary_response_bodies_are_not_kept() {
    let server = TestServer::start().await;
    let report = send(&on_site_client(Duration::from_secs(5)), server.url("/binary")).await;
    assert_eq!(report.outcome, AttemptOutcome::Delivered(200));
    assert_eq!(report.response_body, NON_TEXT_BODY_MARKER.as_bytes());
}

#[tokio::test]
async fn broken_response_body_keeps_the_status() {
    let url =
        start_raw_server(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\npartial").await;
    let report = send(&on_site_client(Duration::from_secs(5)), url).await;
    assert_eq!(report.outcome, AttemptOutcome::Delivered(200), "{report:?}");
    assert_eq!(report.response_body, b"partial");
    assert!(report.error.as_deref().is_some_and(|error| error.starts_with("reading the response body")), "{report:?}");
}

#[tokio::test]
async fn hang_up_after_reading_the_request_is_connection_closed() {
    let url = start_raw_server(b"").await;
    let report = send(&on_site_client(Duration::from_secs(5)), url).await;
    assert_eq!(report.outcome, failed(None, FailureKind::ConnectionClosed), "{report:?}");
    assert!(report.error.is_some());
}

#[tokio::test]
async fn refused_connection_is_connect_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let report =
        send(&on_site_client(Duration::from_secs(5)), Url::parse(&format!("http://{addr}/")).expect("url")).await;
    assert_eq!(report.outcome, failed(None, FailureKind::Connect), "{report:?}");
}

#[tokio::test]
async fn tls_to_a_plain_http_server_is_tls_failure() {
    let server = TestServer::start().await;
    let url = Url::parse(&format!("https://{}/ok", server.addr)).expect("url");
    let report = send(&on_site_client(Duration::from_secs(5)), url).await;
    assert_eq!(report.outcome, failed(None, FailureKind::Tls), "{report:?}");
}

#[tokio::test]
async fn unresolvable_host_is_dns_failure() {
    let url = Url::parse("http://no-such-host.invalid/hook").expect("url");
    let report = send(&on_site_client(Duration::from_secs(5)), url).await;
    assert_eq!(report.outcome, failed(None, FailureKind::Dns), "{report:?}");
}

#[tokio::test]
async fn blocked_addresses_are_never_contacted() {
    let server = TestServer::start().await;
    let strict =
        DeliveryClient::new(AddressPolicy::default(), Duration::from_secs(2), Duration::from_secs(5), USER_AGENT)
            .expect("client");

    let report = send(&strict, server.url("/ok")).await;
    assert_eq!(report.outcome, failed(None, FailureKind::BlockedAddress), "{report:?}");

    // A name is vetted inside DNS resolution, where a rebinding answer would be caught too.
    let by_name = Url::parse(&format!("http://localhost:{}/ok", server.addr.port())).expect("url");
    let report = send(&strict, by_name.clone()).await;
    assert_eq!(report.outcome, failed(None, FailureKind::BlockedAddress), "{report:?}");
    assert_eq!(server.hits(), 0);

    // An allow-list entry opens exactly that network, by literal and by name.
    let allow_loopback =
        AddressPolicy { allow_list: vec!["127.0.0.0/8".parse().expect("net")], ..AddressPolicy::default() };
    let listed = DeliveryClient::new(allow_loopback, Duration::from_secs(2), Duration::from_secs(5), USER_AGENT)
        .expect("client");
    assert_eq!(send(&listed, server.url("/ok")).await.outcome, AttemptOutcome::Delivered(200));
    assert_eq!(send(&listed, by_name).await.outcome, AttemptOutcome::Delivered(200));
    assert_eq!(server.hits(), 2);
}

/// The bridge's own listener is refused even inside an allow-listed network, by literal and by
/// name, while another port of the same address is delivered to.
#[tokio::test]
async fn the_own_listener_is_never_contacted() {
    let own = TestServer::start().await;
    let other = TestServer::start().await;
    let policy = AddressPolicy {
        allow_list: vec!["127.0.0.0/8".parse().expect("net")],
        own_listeners: vec![own.addr],
        ..AddressPolicy::default()
    };
    let client =
        DeliveryClient::new(policy, Duration::from_secs(2), Duration::from_secs(5), USER_AGENT).expect("client");
    let report = send(&client, own.url("/ok")).await;
    assert_eq!(report.outcome, failed(None, FailureKind::BlockedAddress), "{report:?}");
    let by_name = Url::parse(&format!("http://localhost:{}/ok", own.addr.port())).expect("url");
    assert_eq!(send(&client, by_name).await.outcome, failed(None, FailureKind::BlockedAddress));
    assert_eq!(own.hits(), 0);
    assert_eq!(send(&client, other.url("/ok")).await.outcome, AttemptOutcome::Delivered(200));
    assert_eq!(other.hits(), 1);
}

#[tokio::test]
async fn invalid_requests_are_not_sent() {
    let server = TestServer::start().await;
    let client = on_site_client(Duration::from_secs(5));
    let mut headers = signed_headers("evt_test", BODY.as_bytes());
    headers.id = "evt\r\ninjected: yes".to_owned();
    let report = client.send(&server.url("/ok"), &headers, Bytes::from_static(BODY.as_bytes())).await;
    assert_eq!(report.outcome, failed(None, FailureKind::InvalidRequest), "{report:?}");

    let ftp = Url::parse("ftp://127.0.0.1/").expect("url");
    let report = send(&client, ftp).await;
    assert_eq!(report.outcome, failed(None, FailureKind::InvalidRequest), "{report:?}");
    assert_eq!(server.hits(), 0);
}
