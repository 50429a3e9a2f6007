//! What this process's dispatcher did: attempts by endpoint and outcome, and the end-to-end
//! latency of deliveries (event committed → receiver answered 2xx). Counters are per process, as
//! Prometheus expects from replicas; the backlog gauges come from the database (shared by all
//! replicas) and are read by the server at each scrape. The server's `/metrics` registers and
//! encodes these (prometheus-client).

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus_client::metrics::histogram::Histogram;

/// Upper bounds of the latency histogram, seconds: from a quick receiver to one that was down
/// for a day.
const LATENCY_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0, 300.0, 3600.0, 86_400.0];

#[derive(Debug)]
pub struct DeliveryMetrics {
    /// (endpoint id, outcome) → attempts. By id: the dispatcher knows ids; the scrape names
    /// them by their public ids.
    attempts: Mutex<BTreeMap<(i64, &'static str), u64>>,
    /// From the event's commit to the receiver's 2xx, seconds.
    pub latency: Histogram,
}

impl Default for DeliveryMetrics {
    fn default() -> Self {
        DeliveryMetrics { attempts: Mutex::default(), latency: Histogram::new(LATENCY_BUCKETS) }
    }
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
        self.latency.observe(u64::try_from(micros).unwrap_or(0) as f64 / 1e6);
    }

    /// Attempts so far: ((endpoint id, outcome), count), ordered.
    pub fn attempts(&self) -> Vec<((i64, &'static str), u64)> {
        self.attempts.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (*k, *v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_count_by_endpoint_and_outcome() {
        let metrics = DeliveryMetrics::default();
        metrics.record_attempt(1, "delivered");
        metrics.record_attempt(1, "delivered");
        metrics.record_attempt(1, "timeout");
        metrics.record_attempt(2, "delivered");
        assert_eq!(metrics.attempts(), vec![((1, "delivered"), 2), ((1, "timeout"), 1), ((2, "delivered"), 1)]);
    }
}
