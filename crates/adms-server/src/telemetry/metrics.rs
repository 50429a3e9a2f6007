//! `/metrics`: one prometheus-client registry per application, encoded as OpenMetrics text.
//!
//! Two kinds of values meet here. What this process counts as it works (HTTP requests, uploads,
//! rejected lines, the punch writer's groups, webhook attempts, logins, quota refusals) lives in
//! prometheus-client's counters and histograms, registered once at start and updated where the
//! work happens. What the database knows (devices and their presence, the command queue, each
//! webhook endpoint's backlog, shared by every replica) and what the OS knows of the process
//! (CPU, memory, file descriptors) is read at each scrape into a [`Scrape`] (by the composition
//! root, `app::metrics`, which knows the state) and encoded by a [`Collector`]; scrapes take
//! turns, so each encodes the values it read. Nothing here reads the application state.

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::Method;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use adms_store::CommandCensus;
use adms_webhooks::{DeliveryMetrics, EndpointGauge};

/// The `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the request latency histogram, seconds. A device's poll may be held open
/// for its long-poll wait, hence the long tail.
const HTTP_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 60.0];

/// Upper bounds of the "seconds since a device's last request" histogram: a poll interval,
/// minutes, an hour, a day, a week.
const IDLE_BUCKETS: [f64; 10] = [10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 21_600.0, 86_400.0, 604_800.0];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// `device`, `api`, `docs`, `metrics`, `health` or `other` (see [`route_group`]).
    group: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabels {
    table: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    table: &'static str,
    reason: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The registry and what handlers record in it.
#[derive(Debug)]
pub struct Telemetry {
    registry: Registry,
    http: HistogramFamily<HttpLabels>,
    uploads: Family<TableLabels, Counter>,
    rejected_lines: Family<RejectLabels, Counter>,
    /// What the last scrape read, for [`ScrapeCollector`].
    scrape: Arc<Mutex<Scrape>>,
    /// Scrapes take turns: each encodes what it read itself.
    scrape_turn: tokio::sync::Mutex<()>,
    /// The last `/readyz` outcome (0 unknown, 1 ready, 2 not), to log changes once.
    readiness: AtomicU8,
}

/// What the registry is built from: the counters other parts of the application own.
#[derive(Debug)]
pub struct Sources<'a> {
    pub database: &'static str,
    pub writer: &'a adms_store::WriterMetrics,
    pub access_writer: &'a adms_store::AccessWriterMetrics,
    pub deliveries: &'a DeliveryMetrics,
    pub login_checks: &'a Counter,
    pub login_failures: &'a Counter,
    pub login_throttled: &'a Counter,
    pub login_busy: &'a Counter,
    pub quota_raw: &'a Counter,
    pub quota_photo: &'a Counter,
    pub capture_dropped: &'a Counter,
    pub capture_write_failures: &'a Counter,
}

impl Telemetry {
    pub fn new(sources: &Sources<'_>) -> Telemetry {
        let mut registry = Registry::default();
        let http: HistogramFamily<HttpLabels> = Family::new_with_constructor(|| Histogram::new(HTTP_BUCKETS));
        registry.register(
            "adms_http_request_duration_seconds",
            "HTTP requests by route group, method and status, and how long they took (a device poll's long wait included).",
            http.clone(),
        );
        let uploads = Family::<TableLabels, Counter>::default();
        registry.register("adms_device_uploads", "Device uploads stored, by table.", uploads.clone());
        let rejected_lines = Family::<RejectLabels, Counter>::default();
        registry.register(
            "adms_rejected_lines",
            "Uploaded lines that could not be used, kept raw, by table and reason.",
            rejected_lines.clone(),
        );
        registry.register(
            "adms_capture_dropped",
            "Device exchanges not captured because the capture queue was full (the device was answered as always).",
            sources.capture_dropped.clone(),
        );
        registry.register(
            "adms_capture_write_failures",
            "Device exchanges the capture writer could not write (disk errors, the folder at its cap).",
            sources.capture_write_failures.clone(),
        );
        let w = sources.writer;
        registry.register("adms_punches_stored", "Punches committed as new.", w.punches_stored.clone());
        registry.register(
            "adms_punches_resent",
            "Punches a device sent again that were already stored (skipped, never duplicated).",
            w.punches_resent.clone(),
        );
        registry.register(
            "adms_punch_group_batches",
            "Device uploads committed together in one punch-writer transaction.",
            w.group_batches.clone(),
        );
        registry.register(
            "adms_punch_commit_duration_seconds",
            "Time of one punch-writer transaction, from its first statement to its commit.",
            w.commit_seconds.clone(),
        );
        registry.register(
            "adms_punch_groups_failed",
            "Punch-writer transactions that failed (their uploads were retried one by one).",
            w.failed_groups.clone(),
        );
        let a = sources.access_writer;
        registry.register(
            "adms_access_event_group_uploads",
            "Access controllers' rtlog uploads committed together in one transaction.",
            a.group_uploads.clone(),
        );
        registry.register(
            "adms_access_event_commit_duration_seconds",
            "Time of one rtlog transaction, from its first statement to its commit.",
            a.commit_seconds.clone(),
        );
        registry.register(
            "adms_access_event_groups_failed",
            "rtlog transactions that failed (their uploads were retried one by one).",
            a.failed_groups.clone(),
        );
        registry.register(
            "adms_webhook_delivery_latency_seconds",
            "From the event's commit to the receiver's 2xx.",
            sources.deliveries.latency.clone(),
        );
        registry.register(
            "adms_login_password_checks",
            "Password checks run (argon2), unknown users included.",
            sources.login_checks.clone(),
        );
        registry.register(
            "adms_login_failures",
            "Logins refused for wrong credentials.",
            sources.login_failures.clone(),
        );
        let scrape = Arc::new(Mutex::new(Scrape::default()));
        registry.register_collector(Box::new(ScrapeCollector {
            scrape: Arc::clone(&scrape),
            database: sources.database,
            login_throttled: sources.login_throttled.clone(),
            login_busy: sources.login_busy.clone(),
            quota_raw: sources.quota_raw.clone(),
            quota_photo: sources.quota_photo.clone(),
        }));
        Telemetry {
            registry,
            http,
            uploads,
            rejected_lines,
            scrape,
            scrape_turn: tokio::sync::Mutex::new(()),
            readiness: AtomicU8::new(0),
        }
    }

    /// Counts an upload of `table` that was stored.
    pub fn upload_stored(&self, table: &'static str) {
        self.uploads.get_or_create(&TableLabels { table }).inc();
    }

    /// Counts lines kept raw because they could not be used.
    /// (table, reason) of each line.
    pub fn lines_rejected(&self, rejected: &[(&'static str, &'static str)]) {
        for &(table, reason) in rejected {
            self.rejected_lines.get_or_create(&RejectLabels { table, reason }).inc();
        }
    }

    /// Logs a change of readiness once (not every probe): a warning with the reason when it is
    /// lost, a line when it comes back.
    pub fn note_readiness(&self, reason: Option<&str>) {
        let now = if reason.is_none() { 1 } else { 2 };
        let before = self.readiness.swap(now, Ordering::Relaxed);
        match (before, reason) {
            (0 | 1, Some(reason)) => tracing::warn!(%reason, "not ready: /readyz answers 503"),
            (2, None) => tracing::info!("ready again"),
            _ => {}
        }
    }
}

impl Telemetry {
    /// The OpenMetrics text of every metric, with what `read` finds in the database and the OS
    /// now. Scrapes take turns, so each encodes what it read.
    pub async fn render<E>(&self, read: impl Future<Output = Result<Scrape, E>>) -> Result<String, E> {
        let _turn = self.scrape_turn.lock().await;
        let scrape = read.await?;
        *self.scrape.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = scrape;
        let mut text = String::with_capacity(16 * 1024);
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        Ok(text)
    }

    /// Records a request's route group ([`route_group`]), method, status and duration.
    pub fn http_request(&self, group: &'static str, method: &Method, status: u16, elapsed: std::time::Duration) {
        let labels = HttpLabels { group, method: method_label(method), status };
        self.http.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }
}

/// A few groups, so the label stays small whatever paths clients try.
pub fn route_group(path: &str) -> &'static str {
    let lower = |prefix: &str| path.len() >= prefix.len() && path[..prefix.len()].eq_ignore_ascii_case(prefix);
    if lower("/iclock/api/") {
        "api"
    } else if lower("/iclock/") || path.eq_ignore_ascii_case("/iclock") {
        "device"
    } else if path == "/healthz" || path == "/readyz" {
        "health"
    } else if path == "/metrics" {
        "metrics"
    } else if path.starts_with("/api/docs") || path.starts_with("/api/openapi.json") {
        "docs"
    } else if path.starts_with("/api/")
        || path.starts_with("/api-token-auth")
        || path.starts_with("/jwt-api-token-auth")
        || path.starts_with("/personnel/api/")
        || path.starts_with("/att/api/")
    {
        "api"
    } else {
        "other"
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// What one scrape read from the database and the OS.
#[derive(Debug, Default)]
pub struct Scrape {
    pub devices_known: u64,
    /// Approved devices by presence: online, offline, unknown (never judged yet).
    pub presence: [u64; 3],
    pub pending_approval: u64,
    /// Seconds since each device's last request (devices that never made one are left out).
    pub idle: HistogramSnapshot,
    pub commands: CommandCensus,
    pub oldest_queued_age_secs: f64,
    pub endpoints: Vec<EndpointGauge>,
    /// ((endpoint public id, outcome), attempts).
    pub attempts: Vec<((String, &'static str), u64)>,
    pub process: metrics_process::collector::Metrics,
}

/// A histogram computed at a scrape (over the devices, not over time).
#[derive(Debug, Default)]
pub struct HistogramSnapshot {
    sum: f64,
    count: u64,
    /// (upper bound, observations in this bucket only), ending with +Inf.
    buckets: Vec<(f64, u64)>,
}

impl HistogramSnapshot {
    /// The seconds since each device's last request, in [`IDLE_BUCKETS`].
    pub fn idle(values: impl Iterator<Item = f64>) -> HistogramSnapshot {
        HistogramSnapshot::of(&IDLE_BUCKETS, values)
    }

    fn of(bounds: &[f64], values: impl Iterator<Item = f64>) -> HistogramSnapshot {
        let mut buckets: Vec<(f64, u64)> =
            bounds.iter().copied().chain(std::iter::once(f64::INFINITY)).map(|b| (b, 0)).collect();
        let (mut sum, mut count) = (0.0, 0);
        for value in values {
            sum += value;
            count += 1;
            if let Some(bucket) = buckets.iter_mut().find(|(bound, _)| value <= *bound) {
                bucket.1 += 1;
            }
        }
        HistogramSnapshot { sum, count, buckets }
    }
}

/// Encodes the [`Scrape`] the handler read, and the counters kept outside the registry's types.
#[derive(Debug)]
struct ScrapeCollector {
    scrape: Arc<Mutex<Scrape>>,
    database: &'static str,
    login_throttled: Counter,
    login_busy: Counter,
    quota_raw: Counter,
    quota_photo: Counter,
}

fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: f64) -> Result<(), std::fmt::Error> {
    encoder.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&value)
}

fn labelled<'a, L: EncodeLabelSet + 'a, V: 'a>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric_type: MetricType,
    samples: impl IntoIterator<Item = (L, V)>,
    mut encode: impl FnMut(MetricEncoder<'_>, &V) -> Result<(), std::fmt::Error>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in samples {
        encode(metric.encode_family(&labels)?, &value)?;
    }
    Ok(())
}

fn as_gauge(mut m: MetricEncoder<'_>, v: &f64) -> Result<(), std::fmt::Error> {
    m.encode_gauge(v)
}

fn as_counter(mut m: MetricEncoder<'_>, v: &u64) -> Result<(), std::fmt::Error> {
    m.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(v, None)
}

impl Collector for ScrapeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.scrape.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = &mut encoder;
        labelled(
            e,
            "adms_build_info",
            "This binary's version and the database engine it runs on (always 1).",
            MetricType::Gauge,
            [([("version", env!("CARGO_PKG_VERSION")), ("database", self.database)], 1.0)],
            as_gauge,
        )?;
        gauge(e, "adms_devices_known", "Devices registered (deleted ones excepted).", s.devices_known as f64)?;
        labelled(
            e,
            "adms_devices",
            "Approved devices by presence (unknown: not judged since it registered).",
            MetricType::Gauge,
            [("online", s.presence[0]), ("offline", s.presence[1]), ("unknown", s.presence[2])]
                .map(|(presence, n)| ([("presence", presence)], n as f64)),
            as_gauge,
        )?;
        gauge(
            e,
            "adms_devices_pending_approval",
            "Devices waiting for an operator's approval.",
            s.pending_approval as f64,
        )?;
        e.encode_descriptor(
            "adms_device_last_request_age_seconds",
            "Seconds since each device's last request, as a histogram over the devices.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            s.idle.sum,
            s.idle.count,
            &s.idle.buckets,
            None,
        )?;
        labelled(
            e,
            "adms_commands",
            "Device commands not finished, by state (queued: waiting for a poll; sent: no result yet).",
            MetricType::Gauge,
            [([("state", "queued")], s.commands.queued as f64), ([("state", "sent")], s.commands.sent as f64)],
            as_gauge,
        )?;
        gauge(
            e,
            "adms_commands_oldest_queued_age_seconds",
            "How long the oldest queued command has waited (0: none queued).",
            s.oldest_queued_age_secs,
        )?;
        type EndpointValue = fn(&EndpointGauge) -> f64;
        let per_endpoint: [(&str, &str, EndpointValue); 8] = [
            ("adms_webhook_deliveries_due", "Deliveries due now and not yet claimed.", |g| g.due as f64),
            (
                "adms_webhook_deliveries_waiting",
                "Deliveries waiting out a retry delay (the backlog of a receiver that is down).",
                |g| g.waiting as f64,
            ),
            ("adms_webhook_deliveries_in_flight", "Deliveries claimed by a worker.", |g| g.in_flight as f64),
            ("adms_webhook_deliveries_exhausted", "Deliveries whose retries ran out (kept).", |g| g.exhausted as f64),
            ("adms_webhook_oldest_due_age_seconds", "How long the oldest due delivery has been due.", |g| {
                g.oldest_due_age_secs
            }),
            (
                "adms_webhook_oldest_pending_age_seconds",
                "How long the oldest undelivered delivery (due or waiting for a retry) has been queued: alert on this.",
                |g| g.oldest_pending_age_secs,
            ),
            (
                "adms_webhook_endpoint_consecutive_failures",
                "Failed attempts in a row since the endpoint's last success.",
                |g| g.consecutive_failures as f64,
            ),
            (
                "adms_webhook_endpoint_last_success_timestamp_seconds",
                "When the endpoint last answered with success (Unix seconds; 0: never).",
                |g| g.last_success_secs,
            ),
        ];
        for (name, help, value) in per_endpoint {
            let samples = s.endpoints.iter().map(|g| ([("endpoint", g.endpoint.as_str())], value(g)));
            labelled(e, name, help, MetricType::Gauge, samples, as_gauge)?;
        }
        labelled(
            e,
            "adms_webhook_attempts",
            "Delivery attempts by this process, by endpoint and outcome.",
            MetricType::Counter,
            s.attempts
                .iter()
                .map(|((endpoint, outcome), n)| ([("endpoint", endpoint.as_str()), ("outcome", *outcome)], *n)),
            as_counter,
        )?;
        labelled(
            e,
            "adms_login_refused",
            "Logins refused without a check (throttled: too many failures; busy: no check slot).",
            MetricType::Counter,
            [([("reason", "throttled")], self.login_throttled.get()), ([("reason", "busy")], self.login_busy.get())],
            as_counter,
        )?;
        labelled(
            e,
            "adms_device_quota_refusals",
            "Uploads refused because the device passed a daily quota.",
            MetricType::Counter,
            [([("kind", "raw")], self.quota_raw.get()), ([("kind", "photo")], self.quota_photo.get())],
            as_counter,
        )?;
        encode_process(e, &s.process)
    }
}

/// The standard `process_*` metrics, under their standard names.
fn encode_process(
    e: &mut DescriptorEncoder<'_>,
    p: &metrics_process::collector::Metrics,
) -> Result<(), std::fmt::Error> {
    if let Some(cpu) = p.cpu_seconds_total {
        e.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            MetricType::Counter,
        )?
        .encode_counter::<prometheus_client::encoding::NoLabelSet, _, f64>(&cpu, None)?;
    }
    let gauges = [
        ("process_resident_memory_bytes", "Resident memory size in bytes.", p.resident_memory_bytes),
        ("process_virtual_memory_bytes", "Virtual memory size in bytes.", p.virtual_memory_bytes),
        ("process_open_fds", "Number of open file descriptors.", p.open_fds),
        ("process_max_fds", "Maximum number of open file descriptors.", p.max_fds),
        (
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds.",
            p.start_time_seconds,
        ),
        ("process_threads", "Number of OS threads in the process.", p.threads),
    ];
    for (name, help, value) in gauges {
        if let Some(value) = value {
            gauge(e, name, help, value as f64)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fall_into_few_groups() {
        for (path, group) in [
            ("/iclock/cdata", "device"),
            ("/iclock/getrequest", "device"),
            ("/iclock/api/transactions/", "api"),
            ("/api/v1/webhooks/endpoints", "api"),
            ("/api-token-auth/", "api"),
            ("/personnel/api/employees/", "api"),
            ("/api/openapi.json", "docs"),
            ("/metrics", "metrics"),
            ("/readyz", "health"),
            ("/wp-login.php", "other"),
        ] {
            assert_eq!(route_group(path), group, "{path}");
        }
    }

    #[test]
    fn snapshot_histograms_put_each_value_in_its_bucket() {
        let h = HistogramSnapshot::of(&[10.0, 60.0], [5.0, 10.0, 11.0, 1e9].into_iter());
        assert_eq!(h.count, 4);
        assert_eq!(h.buckets, vec![(10.0, 2), (60.0, 1), (f64::INFINITY, 1)]);
        assert!((h.sum - (26.0 + 1e9)).abs() < 1e-3);
    }
}
