//! What this process's dispatcher did: attempts by outcome and the end-to-end latency of
//! deliveries (event committed → receiver answered 2xx). Counters are per process, as Prometheus
//! expects from replicas; the backlog gauges come from the database (shared by all replicas).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency histogram, seconds.
const LATENCY_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0, 300.0, 3600.0, 86_400.0];

#[derive(Debug, Default)]
pub struct DeliveryMetrics {
    /// (endpoint id, outcome) → attempts.
    attempts: Mutex<BTreeMap<(i64, &'static str), u64>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    /// Sum of latencies, µs.
    latency_sum_us: AtomicU64,
}

/// Backlog of one endpoint, from the store.
#[derive(Debug, Clone)]
pub struct EndpointGauge {
    pub endpoint: String,
    pub due: i64,
    /// Pending, waiting out a retry delay.
    pub waiting: i64,
    pub in_flight: i64,
    pub exhausted: i64,
    pub oldest_due_age_secs: f64,
    /// Age of the oldest undelivered delivery, due or waiting: what grows during an outage.
    pub oldest_pending_age_secs: f64,
    pub consecutive_failures: i64,
    /// Unix seconds of the last success (0: never).
    pub last_success_secs: f64,
}

impl DeliveryMetrics {
    /// Counts one attempt.
    pub fn record_attempt(&self, endpoint_id: i64, outcome: &'static str) {
        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        *attempts.entry((endpoint_id, outcome)).or_default() += 1;
    }

    /// Records the time from the event's commit to its 2xx, µs.
    pub fn record_latency(&self, micros: i64) {
        let micros = u64::try_from(micros).unwrap_or(0);
        let seconds = micros as f64 / 1e6;
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(micros, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of these counters and the given gauges. `endpoint_uid`
    /// maps endpoint ids to their public ids.
    pub fn render(&self, gauges: &[EndpointGauge], endpoint_uid: impl Fn(i64) -> Option<String>) -> String {
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, value: &dyn Fn(&EndpointGauge) -> f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for g in gauges {
                let _ = writeln!(out, "{name}{{endpoint=\"{}\"}} {}", label(&g.endpoint), value(g));
            }
        };
        gauge(&mut out, "adms_webhook_deliveries_due", "Deliveries due now and not yet claimed.", &|g| g.due as f64);
        gauge(
            &mut out,
            "adms_webhook_deliveries_waiting",
            "Deliveries waiting out a retry delay (the backlog of a receiver that is down).",
            &|g| g.waiting as f64,
        );
        gauge(&mut out, "adms_webhook_deliveries_in_flight", "Deliveries claimed by a worker.", &|g| {
            g.in_flight as f64
        });
        gauge(&mut out, "adms_webhook_deliveries_exhausted", "Deliveries whose retries ran out (kept).", &|g| {
            g.exhausted as f64
        });
        gauge(
            &mut out,
            "adms_webhook_oldest_due_age_seconds",
            "How long the oldest due delivery has been due.",
            &|g| g.oldest_due_age_secs,
        );
        gauge(
            &mut out,
            "adms_webhook_oldest_pending_age_seconds",
            "How long the oldest undelivered delivery (due or waiting for a retry) has been queued: alert on this.",
            &|g| g.oldest_pending_age_secs,
        );
        gauge(
            &mut out,
            "adms_webhook_endpoint_consecutive_failures",
            "Failed attempts in a row since the endpoint's last success.",
            &|g| g.consecutive_failures as f64,
        );
        gauge(
            &mut out,
            "adms_webhook_endpoint_last_success_timestamp_seconds",
            "When the endpoint last answered with success (Unix seconds; 0: never).",
            &|g| g.last_success_secs,
        );
        let _ = writeln!(
            out,
            "# HELP adms_webhook_attempts_total Delivery attempts by this process, by outcome.\n\
             # TYPE adms_webhook_attempts_total counter"
        );
        for ((endpoint_id, outcome), count) in self.attempts.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let endpoint = endpoint_uid(*endpoint_id).unwrap_or_else(|| endpoint_id.to_string());
            let _ = writeln!(
                out,
                "adms_webhook_attempts_total{{endpoint=\"{}\",outcome=\"{outcome}\"}} {count}",
                label(&endpoint)
            );
        }
        let name = "adms_webhook_delivery_latency_seconds";
        let _ = writeln!(out, "# HELP {name} From the event's commit to the receiver's 2xx.\n# TYPE {name} histogram");
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", bucket.load(Ordering::Relaxed));
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}

/// A label value with `\`, `"` and newlines escaped, as the exposition format requires.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let metrics = DeliveryMetrics::default();
        metrics.record_attempt(1, "delivered");
        metrics.record_attempt(1, "delivered");
        metrics.record_attempt(1, "timeout");
        metrics.record_latency(7_000);
        metrics.record_latency(2_000_000);
        let gauges = [EndpointGauge {
            endpoint: "ep_\"x\"".into(),
            due: 3,
            waiting: 7,
            in_flight: 1,
            exhausted: 0,
            oldest_due_age_secs: 1.5,
            oldest_pending_age_secs: 86_400.0,
            consecutive_failures: 12,
            last_success_secs: 0.0,
        }];
        let text = metrics.render(&gauges, |id| (id == 1).then(|| "ep_a".to_owned()));
        assert!(text.contains("adms_webhook_deliveries_due{endpoint=\"ep_\\\"x\\\"\"} 3\n"), "{text}");
        assert!(text.contains("adms_webhook_deliveries_waiting{endpoint=\"ep_\\\"x\\\"\"} 7\n"), "{text}");
        assert!(text.contains("adms_webhook_oldest_pending_age_seconds{endpoint=\"ep_\\\"x\\\"\"} 86400\n"), "{text}");
        assert!(text.contains("adms_webhook_endpoint_consecutive_failures{endpoint=\"ep_\\\"x\\\"\"} 12\n"), "{text}");
        assert!(text.contains("adms_webhook_oldest_due_age_seconds{endpoint=\"ep_\\\"x\\\"\"} 1.5\n"));
        assert!(text.contains("adms_webhook_attempts_total{endpoint=\"ep_a\",outcome=\"delivered\"} 2\n"));
        assert!(text.contains("adms_webhook_attempts_total{endpoint=\"ep_a\",outcome=\"timeout\"} 1\n"));
        assert!(text.contains("adms_webhook_delivery_latency_seconds_bucket{le=\"0.005\"} 0\n"));
        assert!(text.contains("adms_webhook_delivery_latency_seconds_bucket{le=\"0.01\"} 1\n"));
        assert!(text.contains("adms_webhook_delivery_latency_seconds_bucket{le=\"2.5\"} 2\n"));
        assert!(text.contains("adms_webhook_delivery_latency_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("adms_webhook_delivery_latency_seconds_count 2\n"));
        assert!(text.contains("adms_webhook_delivery_latency_seconds_sum 2.007\n"));
    }
}
