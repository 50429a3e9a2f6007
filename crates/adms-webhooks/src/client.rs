//! Sending one signed webhook request and reporting what happened.
//!
//! [`DeliveryClient::send`] never fails: every way an attempt can go wrong becomes an
//! [`AttemptOutcome`] in the [`AttemptReport`], which the caller records and feeds to
//! [`next_attempt_delay`](crate::retry::next_attempt_delay).

use std::error::Error as StdError;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::{Response, Url};

use crate::retry::{AttemptOutcome, FailureKind, classify, parse_retry_after};
use crate::signing::{WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};
use crate::ssrf::{AddressPolicy, GuardedResolver, ResolveError, UrlError, check_url};

/// At most this much of a response body is read and kept: enough to show an operator the
/// receiver's error message, and a bound on what a hostile receiver can make us store.
pub const RESPONSE_CAPTURE_LIMIT: usize = 20 * 1024;
/// How much of a redirect's `Location` goes into the attempt's error text.
const MAX_LOCATION_SHOWN: usize = 512;

/// The webhook client could not be built (an invalid user agent, or TLS failed to initialise).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the webhook HTTP client: {0}")]
pub struct ClientBuildError(#[source] reqwest::Error);

/// The Standard Webhooks headers of one attempt, computed by the caller (who holds the secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookHeaders {
    /// `webhook-id`: the event id, the same on every attempt.
    pub id: String,
    /// `webhook-timestamp`: Unix seconds of this attempt.
    pub timestamp: i64,
    /// `webhook-signature`: from [`signature_header`](crate::signing::signature_header).
    pub signature: String,
}

/// What one attempt came to, for the attempt log and the retry decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    /// The classified result.
    pub outcome: AttemptOutcome,
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// From the start of `send` until the response body was captured or the attempt failed.
    pub duration: Duration,
    /// Why the attempt failed, or what went wrong after the status arrived (a redirect's target,
    /// a broken response body). Never contains the URL, which may carry credentials.
    pub error: Option<String>,
    /// The first [`RESPONSE_CAPTURE_LIMIT`] bytes of the response body.
    pub response_body: Vec<u8>,
}

impl AttemptReport {
    pub(crate) fn failed(kind: FailureKind, error: String, started: Instant) -> Self {
        Self {
            outcome: AttemptOutcome::Failed { status: None, kind },
            status: None,
            duration: started.elapsed(),
            error: Some(error),
            response_body: Vec::new(),
        }
    }
}

/// An HTTP client for webhook deliveries: never follows redirects, connects only to addresses the
/// [`AddressPolicy`] allows, and bounds every attempt in time.
///
/// Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct DeliveryClient {
    http: reqwest::Client,
    policy: Arc<AddressPolicy>,
}

impl DeliveryClient {
    /// A client enforcing `policy`, giving up on connecting (including TLS) after `connect_timeout`
    /// and on the whole attempt, response body included, after `request_timeout`.
    pub fn new(
        policy: AddressPolicy,
        connect_timeout: Duration,
        request_timeout: Duration,
        user_agent: &str,
    ) -> Result<Self, ClientBuildError> {
        let policy = Arc::new(policy);
        let http = reqwest::Client::builder()
            // A redirect target was never vetted, and Standard Webhooks counts 3xx as a failure.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(GuardedResolver::new(Arc::clone(&policy)))
            // A proxy resolves the name itself, which would bypass the guarded resolver.
            .no_proxy()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .user_agent(user_agent)
            .build()
            .map_err(ClientBuildError)?;
        Ok(Self { http, policy })
    }

    /// The address policy this client enforces.
    pub fn policy(&self) -> &AddressPolicy {
        &self.policy
    }

    /// POSTs `body` as JSON to `url` with the webhook headers, and reports the outcome.
    pub async fn send(&self, url: &Url, headers: &WebhookHeaders, body: Bytes) -> AttemptReport {
        self.send_within(url, headers, body, None).await
    }

    /// [`send`](Self::send), with a whole-attempt timeout of its own (an endpoint's setting)
    /// instead of the client's.
    pub async fn send_within(
        &self,
        url: &Url,
        headers: &WebhookHeaders,
        body: Bytes,
        timeout: Option<Duration>,
    ) -> AttemptReport {
        let started = Instant::now();
        if let Err(refused) = check_url(url, &self.policy) {
            let kind = match refused {
                UrlError::Blocked(_) => FailureKind::BlockedAddress,
                UrlError::UnsupportedScheme(_) | UrlError::MissingHost => FailureKind::InvalidRequest,
            };
            return AttemptReport::failed(kind, refused.to_string(), started);
        }
        let header_map = match webhook_header_map(headers) {
            Ok(map) => map,
            Err(error) => return AttemptReport::failed(FailureKind::InvalidRequest, error, started),
        };
        let mut request = self.http.post(url.clone()).headers(header_map).body(body);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return AttemptReport::failed(failure_kind(&error), describe(error), started),
        };

        let status = response.status().as_u16();
        let retry_after =
            header_text(&response, RETRY_AFTER).and_then(|value| parse_retry_after(value, SystemTime::now()));
        let outcome = classify(status, retry_after);
        let mut error = match &outcome {
            AttemptOutcome::Failed { kind: FailureKind::Redirect, .. } => {
                Some(match header_text(&response, LOCATION) {
                    // `to_str` admits only visible ASCII, so any byte index is a character boundary.
                    Some(location) => {
                        format!("redirect to {} not followed", location.get(..MAX_LOCATION_SHOWN).unwrap_or(location))
                    }
                    None => "redirect not followed".to_owned(),
                })
            }
            _ => None,
        };
        let (response_body, body_error) = capture_body(response).await;
        if let Some(body_error) = body_error {
            error = Some(match error {
                Some(earlier) => format!("{earlier}; {body_error}"),
                None => body_error,
            });
        }
        AttemptReport { outcome, status: Some(status), duration: started.elapsed(), error, response_body }
    }
}

fn webhook_header_map(headers: &WebhookHeaders) -> Result<HeaderMap, String> {
    let value = |name: &str, text: &str| {
        HeaderValue::from_str(text).map_err(|_| format!("{name} header value is not valid in HTTP: {text:?}"))
    };
    let mut map = HeaderMap::with_capacity(4);
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    map.insert(WEBHOOK_ID, value(WEBHOOK_ID, &headers.id)?);
    map.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(headers.timestamp));
    map.insert(WEBHOOK_SIGNATURE, value(WEBHOOK_SIGNATURE, &headers.signature)?);
    Ok(map)
}

fn header_text(response: &Response, name: reqwest::header::HeaderName) -> Option<&str> {
    response.headers().get(name).and_then(|value| value.to_str().ok())
}

/// Reads the response body up to [`RESPONSE_CAPTURE_LIMIT`], then stops; dropping the response
/// closes the connection rather than draining whatever else the receiver sends.
async fn capture_body(mut response: Response) -> (Vec<u8>, Option<String>) {
    let mut captured = Vec::new();
    while captured.len() < RESPONSE_CAPTURE_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = RESPONSE_CAPTURE_LIMIT - captured.len();
                captured.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            Err(error) => return (captured, Some(format!("reading the response body: {}", describe(error)))),
        }
    }
    (captured, None)
}

/// Why a request got no response, from the error and its chain of causes.
fn failure_kind(error: &reqwest::Error) -> FailureKind {
    for cause in causes(error) {
        if let Some(resolve) = cause.downcast_ref::<ResolveError>() {
            return match resolve {
                ResolveError::Blocked { .. } => FailureKind::BlockedAddress,
                ResolveError::Lookup { .. } | ResolveError::NoAddresses { .. } => FailureKind::Dns,
            };
        }
        if cause.is::<rustls::Error>() {
            return FailureKind::Tls;
        }
    }
    if error.is_timeout() {
        return FailureKind::Timeout;
    }
    if error.is_connect() {
        return FailureKind::Connect;
    }
    if causes(error).any(is_connection_closed) {
        return FailureKind::ConnectionClosed;
    }
    if error.is_builder() {
        return FailureKind::InvalidRequest;
    }
    FailureKind::Other
}

fn is_connection_closed(cause: &(dyn StdError + 'static)) -> bool {
    if let Some(hyper_error) = cause.downcast_ref::<hyper::Error>() {
        return hyper_error.is_incomplete_message() || hyper_error.is_canceled();
    }
    cause.downcast_ref::<io::Error>().is_some_and(|io_error| {
        matches!(
            io_error.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
        )
    })
}

/// The error and all its causes. An `io::Error` wrapping another error reports that error's
/// *source* as its own, skipping the wrapped error itself (how rustls errors reach us), so the
/// wrapped error is visited explicitly.
fn causes<'a>(error: &'a (dyn StdError + 'static)) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    let mut pending: Vec<&'a (dyn StdError + 'static)> = vec![error];
    std::iter::from_fn(move || {
        let cause = pending.pop()?;
        if let Some(source) = cause.source() {
            pending.push(source);
        }
        if let Some(inner) = cause.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            pending.push(inner);
        }
        Some(cause)
    })
}

/// The error and its causes as one line, without the request URL (it may carry credentials).
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = String::new();
    for cause in causes(&error) {
        let message = cause.to_string();
        // Wrapping errors often repeat their cause's message; say each thing once.
        if !message.is_empty() && !text.contains(&message) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&message);
        }
    }
    text
}
