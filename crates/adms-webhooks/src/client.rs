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
/// receiver's error message, and little enough that a URL pointed at some internal service does
/// not make the attempt log a way to read that service's pages.
pub const RESPONSE_CAPTURE_LIMIT: usize = 1024;
/// Kept instead of a response body that is not text (its Content-Type is not `text/*`, JSON or
/// XML, or its bytes are not UTF-8): an error message is text, and other content (files, images,
/// binary protocols) is what an operator does not need and a hostile receiver should not store.
pub const NON_TEXT_BODY_MARKER: &str = "[non-text response body not kept]";
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
    /// The first [`RESPONSE_CAPTURE_LIMIT`] bytes of the response body, cut on a character
    /// boundary, when it is text; [`NON_TEXT_BODY_MARKER`] when it is not; empty when it is empty.
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
    /// For each port the bridge listens on, a client whose resolver knows that port and so
    /// refuses names resolving to the bridge itself (reqwest's resolvers never see the port).
    own_port_http: Vec<(u16, reqwest::Client)>,
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
        let build = |resolver: GuardedResolver| {
            reqwest::Client::builder()
                // A redirect target was never vetted, and Standard Webhooks counts 3xx as a failure.
                .redirect(reqwest::redirect::Policy::none())
                .dns_resolver(resolver)
                // A proxy resolves the name itself, which would bypass the guarded resolver.
                .no_proxy()
                .connect_timeout(connect_timeout)
                .timeout(request_timeout)
                .user_agent(user_agent)
                .build()
                .map_err(ClientBuildError)
        };
        let http = build(GuardedResolver::new(Arc::clone(&policy)))?;
        let mut own_ports: Vec<u16> = policy.own_listeners.iter().map(|own| own.port()).collect();
        own_ports.sort_unstable();
        own_ports.dedup();
        let own_port_http = own_ports
            .into_iter()
            .map(|port| Ok((port, build(GuardedResolver::for_port(Arc::clone(&policy), port))?)))
            .collect::<Result<_, ClientBuildError>>()?;
        Ok(Self { http, own_port_http, policy })
    }

    /// The client for connections to `port`.
    fn http_for(&self, port: Option<u16>) -> &reqwest::Client {
        self.own_port_http.iter().find(|(own, _)| Some(*own) == port).map_or(&self.http, |(_, http)| http)
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
        let http = self.http_for(url.port_or_known_default());
        let mut request = http.post(url.clone()).headers(header_map).body(body);
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
/// closes the connection rather than draining whatever else the receiver sends. Returns what is
/// kept of it ([`keep_as_text`]).
async fn capture_body(mut response: Response) -> (Vec<u8>, Option<String>) {
    let textual = header_text(&response, CONTENT_TYPE).is_some_and(is_text_content_type);
    let mut captured = Vec::new();
    let mut error = None;
    while captured.len() < RESPONSE_CAPTURE_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = RESPONSE_CAPTURE_LIMIT - captured.len();
                captured.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            Err(failure) => {
                error = Some(format!("reading the response body: {}", describe(failure)));
                break;
            }
        }
    }
    (keep_as_text(captured, textual), error)
}

/// Whether a Content-Type names text an operator can read: `text/*`, JSON or XML (including
/// `application/*+json` and `*+xml`, such as `application/problem+json`).
fn is_text_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("text", _)) => true,
        Some(("application", subtype)) => {
            matches!(subtype, "json" | "xml") || subtype.ends_with("+json") || subtype.ends_with("+xml")
        }
        _ => false,
    }
}

/// What is kept of the first bytes of a body (at most [`RESPONSE_CAPTURE_LIMIT`]): the text,
/// when the receiver said it is text and it is UTF-8; a character cut in two by the limit is
/// dropped. Anything else becomes [`NON_TEXT_BODY_MARKER`]; an empty body stays empty.
pub fn keep_as_text(mut body: Vec<u8>, textual: bool) -> Vec<u8> {
    if body.is_empty() {
        return body;
    }
    if textual {
        match std::str::from_utf8(&body) {
            Ok(_) => return body,
            // Only the end is incomplete, and the body was cut there: keep the whole characters.
            Err(error) if error.error_len().is_none() && body.len() >= RESPONSE_CAPTURE_LIMIT => {
                body.truncate(error.valid_up_to());
                return body;
            }
            Err(_) => {}
        }
    }
    NON_TEXT_BODY_MARKER.as_bytes().to_vec()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_content_types() {
        for text in [
            "text/plain",
            "text/html; charset=utf-8",
            "TEXT/CSV",
            "application/json",
            "application/json; charset=utf-8",
            "application/problem+json",
            "application/xml",
            "application/soap+xml",
        ] {
            assert!(is_text_content_type(text), "{text}");
        }
        for other in ["application/octet-stream", "image/png", "application/pdf", "", "json", "multipart/mixed"] {
            assert!(!is_text_content_type(other), "{other}");
        }
    }

    #[test]
    fn only_text_is_kept() {
        let marker = NON_TEXT_BODY_MARKER.as_bytes().to_vec();
        assert_eq!(keep_as_text(b"database is down".to_vec(), true), b"database is down");
        assert_eq!(keep_as_text(b"database is down".to_vec(), false), marker, "not labelled as text");
        assert_eq!(keep_as_text(Vec::new(), false), Vec::<u8>::new());
        assert_eq!(keep_as_text(vec![b'o', b'k', 0xff, b'!'], true), marker, "not UTF-8");
        // Cut inside a character by the limit: the whole characters before it stay.
        let mut cut = "é".repeat(RESPONSE_CAPTURE_LIMIT / 2 - 1).into_bytes();
        cut.extend_from_slice(&"€".as_bytes()[..2]);
        assert_eq!(cut.len(), RESPONSE_CAPTURE_LIMIT);
        assert_eq!(keep_as_text(cut.clone(), true).len(), RESPONSE_CAPTURE_LIMIT - 2);
        // A body that ended inside a character is broken, not cut.
        cut.truncate(RESPONSE_CAPTURE_LIMIT - 1);
        assert_eq!(keep_as_text(cut, true), marker);
    }
}
