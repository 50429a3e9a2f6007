//! Capture of device traffic as session scripts (`fixtures/README.md`) that `adms-sim replay`
//! plays unchanged: per device, every `/iclock/*` exchange (never the API's) with its method,
//! path and query as the device sent them, the firmware headers of [`RECORDED_HEADERS`], the
//! exact body bytes (in a payload file beside the session), our status and body as the expected
//! answer, and the time since the device's previous answer.
//!
//! Recording never delays or fails a device request: [`Capture::record`] only hands the
//! exchange to a bounded queue (`try_send`, and a budget of queued bytes); when either is full
//! the exchange is dropped and counted (`adms_capture_dropped`). One OS thread of its own
//! ([`writer`]) drains the queue and does the file I/O, so nothing here blocks the runtime.
//! Files rotate by size and age, and the oldest closed ones are deleted to keep the folder under
//! its cap.
//!
//! A leaf: it reads no application state (the state holds it).

mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

/// Request headers recorded as firmware sent them. Everything else is left out: `Host` and
/// `Content-Length` are the replay's to write, and `Authorization` never reaches a device path
/// legitimately (API credentials are never captured).
pub const RECORDED_HEADERS: [&str; 5] = ["user-agent", "accept", "content-type", "cookie", "accept-language"];

/// Exchanges waiting for the writer at most (besides the byte budget).
const QUEUE_EXCHANGES: usize = 4096;

/// What `[capture]` configures, resolved.
#[derive(Debug, Clone)]
pub struct CaptureSettings {
    pub dir: PathBuf,
    /// Every device (true), or only those turned on at run time ([`Capture::enable`]).
    pub all_devices: bool,
    pub max_file_bytes: u64,
    pub max_file_age: Duration,
    pub max_total_bytes: u64,
    /// Bytes of bodies queued for the writer at most; an exchange that would exceed it is
    /// dropped.
    pub queue_bytes: usize,
}

/// One device exchange, as the capture layer saw it.
#[derive(Debug)]
pub struct Exchange {
    /// The `SN` of the query ("" without one).
    pub sn: String,
    /// When the request arrived and when its answer was complete.
    pub started: Instant,
    pub finished: Instant,
    pub method: String,
    /// Path and query exactly as the device sent them (before path normalisation).
    pub target: String,
    /// The [`RECORDED_HEADERS`] the request carried, in its order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// False when the server answered before reading the whole body (a 413, say): the body is
    /// not known, so the exchange is written as a comment only.
    pub body_complete: bool,
    pub status: u16,
    pub answer: Bytes,
}

impl Exchange {
    fn queued_bytes(&self) -> usize {
        self.body.len() + self.answer.len() + self.target.len()
    }
}

/// The counters of what capture could not write, registered in `/metrics` by the composition
/// root (present, at zero, when capture is off).
#[derive(Debug, Clone, Default)]
pub struct CaptureMetrics {
    /// Exchanges dropped because the queue (its count or its bytes) was full.
    pub dropped: Counter,
    /// Exchanges the writer could not write (disk full, permissions, over the disk cap).
    pub write_failures: Counter,
}

/// The capture switch and queue. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Capture {
    settings: CaptureSettings,
    sender: mpsc::Sender<Exchange>,
    queued_bytes: Arc<AtomicUsize>,
    metrics: CaptureMetrics,
    /// Devices turned on at run time, until when.
    enabled: Mutex<HashMap<String, Instant>>,
}

impl Capture {
    /// Starts the writer thread; the queue closes (and the thread ends) when the `Capture` is
    /// dropped.
    pub fn start(settings: CaptureSettings, metrics: CaptureMetrics) -> std::io::Result<Arc<Capture>> {
        std::fs::create_dir_all(&settings.dir)?;
        let (sender, receiver) = mpsc::channel(QUEUE_EXCHANGES);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let files = writer::Files::open(&settings)?;
        let worker = writer::Writer::new(files, receiver, queued_bytes.clone(), metrics.write_failures.clone());
        std::thread::Builder::new().name("adms-capture".into()).spawn(move || worker.run())?;
        tracing::info!(dir = %settings.dir.display(), all_devices = settings.all_devices, "capturing device traffic");
        Ok(Arc::new(Capture { settings, sender, queued_bytes, metrics, enabled: Mutex::new(HashMap::new()) }))
    }

    /// Whether this device's exchanges are recorded now.
    pub fn wants(&self, sn: &str) -> bool {
        if self.settings.all_devices {
            return true;
        }
        let mut enabled = self.enabled.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match enabled.get(sn) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                enabled.remove(sn);
                false
            }
            None => false,
        }
    }

    /// Records `sn`'s exchanges for `duration` from now (replacing an earlier window).
    pub fn enable(&self, sn: &str, duration: Duration) {
        let until = Instant::now() + duration;
        self.enabled.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(sn.to_owned(), until);
        tracing::info!(sn, secs = duration.as_secs(), "capture turned on for the device");
    }

    /// Whether every device is recorded (`[capture] all_devices`).
    pub fn all_devices(&self) -> bool {
        self.settings.all_devices
    }

    /// The largest body worth holding for the writer: one over the queue's byte budget would be
    /// dropped anyway, so the capture layer stops copying it.
    pub fn max_queued_body(&self) -> usize {
        self.settings.queue_bytes
    }

    /// Hands the exchange to the writer, or drops and counts it when the queue is full. Never
    /// waits.
    pub fn record(&self, exchange: Exchange) {
        let size = exchange.queued_bytes();
        let before = self.queued_bytes.fetch_add(size, Ordering::AcqRel);
        if before + size > self.settings.queue_bytes {
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            self.drop_one(&exchange.sn, "the capture queue's byte budget is used up");
            return;
        }
        if let Err(error) = self.sender.try_send(exchange) {
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            let exchange = match error {
                mpsc::error::TrySendError::Full(e) | mpsc::error::TrySendError::Closed(e) => e,
            };
            self.drop_one(&exchange.sn, "the capture queue is full");
        }
    }

    /// Blocks until every queued exchange is written or `limit` passed (at shutdown, off the
    /// runtime); returns whether the queue was empty.
    pub fn wait_until_written(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.queued_bytes.load(Ordering::Acquire) > 0 {
            if Instant::now() >= deadline {
                tracing::warn!("capture: exchanges still queued at shutdown are not written");
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Counts an exchange the capture layer gave up on (a body over the queue's byte budget).
    pub fn record_dropped(&self, sn: &str) {
        self.drop_one(sn, "its body alone is over the capture queue's byte budget");
    }

    fn drop_one(&self, sn: &str, why: &str) {
        let total = self.metrics.dropped.inc() + 1;
        // The first drop and then one in a thousand: a full queue under load must not flood the log.
        if total == 1 || total.is_multiple_of(1000) {
            tracing::warn!(sn, dropped_so_far = total, "device exchange not captured: {why}");
        }
    }
}

/// Parses `--for` durations as an operator writes them: `90s`, `10m`, `2h`, or plain seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, ""), |i| text.split_at(i));
    let n: u64 = number.parse().ok()?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written() {
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        for bad in ["", "0", "m", "10d", "-5s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
