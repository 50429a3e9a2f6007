//! Webhook delivery without a database: what the outbox worker needs to send one attempt.
//!
//! - [`signing`]: Standard Webhooks `v1` signatures and `whsec_` endpoint secrets.
//! - [`retry`]: classifying an attempt's result and the 7-day retry schedule.
//! - [`sealing`]: endpoint secrets encrypted at rest under the operator's master key.
//! - [`ssrf`]: the address policy, enforced on IP-literal URLs and inside DNS resolution.
//! - [`client`]: the HTTP client that sends one signed request and reports what happened.
//!
//! - [`dispatcher`]: the worker that claims due deliveries from the `adms-store` outbox, sends
//!   them and records each attempt.
//!
//! Persistence (the outbox, attempts, secrets at rest) belongs to `adms-store`; this crate has no
//! SQL.

pub mod client;
pub mod dispatcher;
pub mod metrics;
pub mod retry;
pub mod sealing;
pub mod signing;
pub mod ssrf;

pub use client::{
    AttemptReport, ClientBuildError, DeliveryClient, NON_TEXT_BODY_MARKER, RESPONSE_CAPTURE_LIMIT, WebhookHeaders,
    keep_as_text,
};
pub use dispatcher::{Clock, Dispatcher, DispatcherConfig, Pass};
pub use metrics::{DeliveryMetrics, EndpointGauge};
/// URLs as the client takes them.
pub use reqwest::Url;
pub use retry::{AttemptOutcome, FailureKind, RETRY_HORIZON, classify, next_attempt_delay, parse_retry_after};
pub use sealing::{SealError, SecretKey};
pub use signing::{SecretError, WebhookSecret, signature_header, verify};
pub use ssrf::{AddressPolicy, BlockReason, BlockedAddress, GuardedResolver, ResolveError, UrlError, check_url};
