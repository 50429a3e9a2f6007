//! A fleet of simulated terminals: each one lives the cycle `protocol.md` describes (§3.1 for
//! push 2.x attendance units, §3.13–§3.17 for Security PUSH access panels), over raw HTTP/1.1
//! as firmware sends it, and every answer is checked. [`run`] returns a [`FleetReport`]:
//! requests and latencies per kind of request, punches sent and acknowledged, errors by kind;
//! [`verify`] then reads the transactions API to check that every acknowledged punch is stored
//! exactly once.
//!
//! The device model:
//! - attendance terminals (push 2.4.1 face units, and older 2.2.14 units without `pushver`):
//!   handshake (`GET /iclock/cdata?options=all`), options dump, OPERLOG `USER` lines, then polls
//!   at the `Delay` the server gave (or `--poll-every`), the first with `INFO=`; punches at the
//!   configured rate with PINs from the device's staff and strictly increasing times; commands
//!   in a poll answer are executed and their results posted to `/iclock/devicecmd` with the
//!   return codes firmware gives (0, or -1002 for a command it does not know);
//! - access panels (Security PUSH 3.1.2): unregistered handshake, registration, the `registry=ok`
//!   handshake, configuration download (`/iclock/push`), polls at its `RequestDelay`, `rtlog`
//!   events instead of ATTLOG punches (access events, not punches: not in the verification);
//! - a share of the terminals goes offline once in the middle of the run: no requests while
//!   offline, their punches kept, and the backlog dumped in one upload when they come back.
//!
//! Connections come from several loopback source addresses (127.0.0.1, .2, …) when the target
//! is on loopback, so that the number of devices is not bounded by one address's ephemeral ports.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::wire;

/// One request kind, as the summary breaks them down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Handshake,
    Options,
    Operlog,
    Poll,
    Attlog,
    Backlog,
    Devicecmd,
    Registry,
    Push,
    Rtlog,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Handshake => "handshake",
            Kind::Options => "options",
            Kind::Operlog => "operlog",
            Kind::Poll => "poll",
            Kind::Attlog => "attlog",
            Kind::Backlog => "backlog",
            Kind::Devicecmd => "devicecmd",
            Kind::Registry => "registry",
            Kind::Push => "push",
            Kind::Rtlog => "rtlog",
        }
    }
}

/// What the fleet does.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// `HOST:PORT` of the server.
    pub authority: String,
    pub devices: usize,
    /// How long the fleet runs.
    pub duration: Duration,
    /// Devices start spread evenly over this much of the run (`None`: its first tenth). Every
    /// first contact writes (a new device, its options, its users), so a server absorbs a
    /// fleet that arrives at once at its write rate: a longer ramp keeps the start-up storm
    /// within it.
    pub ramp: Option<Duration>,
    /// Mean time between two punches of one terminal.
    pub punch_every: Duration,
    /// Poll interval instead of the `Delay` the server hands out.
    pub poll_every: Option<Duration>,
    /// Share (0..=1) of the terminals that go offline once and dump a backlog.
    pub offline_share: f64,
    /// Share (0..=1) of the devices that are Security PUSH access panels.
    pub access_share: f64,
    /// Loopback source addresses to spread connections over (127.0.0.1 ..= 127.0.0.N).
    pub sources: u8,
    /// Serial numbers are this prefix and a 6-digit number.
    pub sn_prefix: String,
    pub seed: u64,
    /// Each terminal keeps one connection open between its requests (HTTP/1.1 keep-alive), as
    /// firmware that does not send `Connection: close` does; otherwise a connection per request.
    pub keep_alive: bool,
    /// How long a terminal whose start-up failed (no answer, an error) waits before it starts
    /// over, as firmware does after a failed connection (its `ErrorDelay`; the server's default
    /// hands out 30 s).
    pub error_delay: Duration,
}

/// Why the transactions could not be read for [`verify`].
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("GET {url}: {source}")]
    Request { url: String, source: reqwest::Error },
    #[error("GET {url}: {status}, not JSON: {source}")]
    NotJson { url: String, status: reqwest::StatusCode, source: reqwest::Error },
    #[error("GET {url}: {status} {answer}")]
    Refused { url: String, status: reqwest::StatusCode, answer: Value },
}

/// Errors that stop a fleet before it starts.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("the target must be http://HOST:PORT, got `{0}`")]
    Target(String),
    #[error("the target {0} does not resolve: {1}")]
    Resolve(String, #[source] std::io::Error),
}

/// Live counters, for a progress line.
#[derive(Debug, Default)]
pub struct Live {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub punches_sent: AtomicU64,
    pub punches_acknowledged: AtomicU64,
    pub devices_started: AtomicU64,
}

/// A punch a terminal sent and the server acknowledged with `OK`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Punch {
    pub sn: String,
    pub pin: String,
    /// `YYYY-MM-DD HH:MM:SS`, the terminal's wall clock.
    pub time: String,
}

/// Requests of one kind.
#[derive(Debug)]
pub struct KindStats {
    pub requests: u64,
    pub errors: u64,
    /// Latency from connect to the whole answer, µs.
    pub latency_us: Histogram<u64>,
}

impl KindStats {
    fn new() -> KindStats {
        KindStats { requests: 0, errors: 0, latency_us: new_histogram() }
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 10 min at 3 significant digits; cannot fail for these bounds.
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| unreachable!("valid histogram bounds"))
}

/// What a fleet run did.
#[derive(Debug)]
pub struct FleetReport {
    pub devices: usize,
    pub elapsed: Duration,
    /// When the steady state began (after the ramp and one poll interval more), from the start.
    pub steady_from: Duration,
    /// Requests started in the steady state, by kind: the figures of a fleet that is up.
    pub steady: BTreeMap<Kind, KindStats>,
    /// TCP connections the terminals opened (with keep-alive, far fewer than requests).
    pub connections: u64,
    pub kinds: BTreeMap<Kind, KindStats>,
    pub punches_sent: u64,
    pub acknowledged: Vec<Punch>,
    pub access_events_sent: u64,
    /// Devices whose start-up (handshake …) succeeded, at the first attempt or later.
    pub devices_up: u64,
    /// Start-ups tried again after a failure ([`FleetConfig::error_delay`] later).
    pub startup_retries: u64,
    /// Errors by kind: how many, and the first message.
    pub errors: BTreeMap<Kind, (u64, String)>,
}

impl FleetReport {
    pub fn error_count(&self) -> u64 {
        self.errors.values().map(|(n, _)| n).sum()
    }

    /// Seconds of the steady state (from its start to the end of the run).
    pub fn steady_secs(&self) -> f64 {
        self.elapsed.saturating_sub(self.steady_from).as_secs_f64()
    }

    pub fn to_json(&self, verification: Option<&Verification>) -> Value {
        let secs = self.elapsed.as_secs_f64().max(0.001);
        let by_kind = |kinds: &BTreeMap<Kind, KindStats>, secs: f64| -> serde_json::Map<String, Value> {
            kinds
                .iter()
                .map(|(kind, s)| {
                    let ms = |q: f64| s.latency_us.value_at_quantile(q) as f64 / 1000.0;
                    (
                        kind.name().to_owned(),
                        json!({
                            "requests": s.requests,
                            "per_second": s.requests as f64 / secs.max(0.001),
                            "errors": s.errors,
                            "latency_ms": { "p50": ms(0.5), "p99": ms(0.99), "max": s.latency_us.max() as f64 / 1000.0 },
                        }),
                    )
                })
                .collect()
        };
        let kinds = by_kind(&self.kinds, secs);
        let steady = by_kind(&self.steady, self.steady_secs());
        let errors: serde_json::Map<String, Value> = self
            .errors
            .iter()
            .map(|(kind, (n, first))| (kind.name().to_owned(), json!({ "count": n, "first": first })))
            .collect();
        json!({
            "devices": self.devices,
            "elapsed_secs": secs,
            "connections": self.connections,
            "requests": kinds,
            "steady_state": { "from_secs": self.steady_from.as_secs_f64(), "requests": steady },
            "punches": { "sent": self.punches_sent, "acknowledged": self.acknowledged.len() },
            "access_events_sent": self.access_events_sent,
            "devices_up": self.devices_up,
            "startup_retries": self.startup_retries,
            "errors": errors,
            "verification": verification.map(Verification::to_json),
        })
    }

    pub fn to_text(&self, verification: Option<&Verification>) -> String {
        let secs = self.elapsed.as_secs_f64().max(0.001);
        let mut out = format!(
            "{} devices for {secs:.1} s ({} up, {} start-ups tried again), {} connections\n",
            self.devices, self.devices_up, self.startup_retries, self.connections
        );
        out.push_str(&format!(
            "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}\n",
            "kind", "requests", "per s", "p50 ms", "p99 ms", "max ms", "errors"
        ));
        let table = |out: &mut String, kinds: &BTreeMap<Kind, KindStats>, secs: f64| {
            for (kind, s) in kinds {
                let ms = |us: u64| us as f64 / 1000.0;
                out.push_str(&format!(
                    "{:<10} {:>9} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>7}\n",
                    kind.name(),
                    s.requests,
                    s.requests as f64 / secs.max(0.001),
                    ms(s.latency_us.value_at_quantile(0.5)),
                    ms(s.latency_us.value_at_quantile(0.99)),
                    ms(s.latency_us.max()),
                    s.errors
                ));
            }
        };
        table(&mut out, &self.kinds, secs);
        if !self.steady.is_empty() {
            out.push_str(&format!(
                "steady state (requests started {:.0} s in and later: every device up, one poll interval on):\n",
                self.steady_from.as_secs_f64()
            ));
            table(&mut out, &self.steady, self.steady_secs());
        }
        out.push_str(&format!(
            "punches: {} sent, {} acknowledged; access events: {} sent\n",
            self.punches_sent,
            self.acknowledged.len(),
            self.access_events_sent
        ));
        for (kind, (n, first)) in &self.errors {
            out.push_str(&format!("errors ({}): {n}, first: {first}\n", kind.name()));
        }
        if let Some(v) = verification {
            out.push_str(&v.to_text());
        }
        out
    }
}

/// What one device did, merged into the report at the end.
struct DeviceOutcome {
    /// TCP connections it opened.
    connections: u64,
    acknowledged: Vec<Punch>,
    punches_sent: u64,
    access_events_sent: u64,
    up: bool,
    startup_retries: u64,
}

/// Requests and errors by kind, shared by every terminal of a run. One histogram per kind for
/// the whole fleet, not per terminal: a histogram of this range is ~160 KB, which a hundred
/// thousand terminals could not each hold. A request records under a lock held for a few
/// hundred nanoseconds, never across an await.
#[derive(Debug)]
struct Recorder {
    kinds: std::sync::Mutex<BTreeMap<Kind, KindStats>>,
    /// The same, for requests started at or after `steady_from`.
    steady: std::sync::Mutex<BTreeMap<Kind, KindStats>>,
    steady_from: Instant,
    errors: std::sync::Mutex<BTreeMap<Kind, (u64, String)>>,
}

impl Recorder {
    fn request(&self, kind: Kind, started: Instant, failure: Option<String>) {
        let latency_us = started.elapsed().as_micros().clamp(1, 600_000_000) as u64;
        let record = |table: &std::sync::Mutex<BTreeMap<Kind, KindStats>>| {
            let mut kinds = table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let stats = kinds.entry(kind).or_insert_with(KindStats::new);
            stats.requests += 1;
            let _ = stats.latency_us.record(latency_us);
            if failure.is_some() {
                stats.errors += 1;
            }
        };
        record(&self.kinds);
        if started >= self.steady_from {
            record(&self.steady);
        }
        if let Some(failure) = failure {
            let mut errors = self.errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            errors.entry(kind).or_insert((0, failure)).0 += 1;
        }
    }
}

/// The authority of an `http://HOST:PORT` target.
pub fn authority_of(target: &str) -> Result<String, FleetError> {
    target
        .strip_prefix("http://")
        .map(|rest| rest.strip_suffix('/').unwrap_or(rest))
        .filter(|a| !a.is_empty() && !a.contains('/') && !a.contains('?'))
        .map(str::to_owned)
        .ok_or_else(|| FleetError::Target(target.to_owned()))
}

/// Runs the fleet to its end; `live` is updated as it goes.
pub async fn run(config: FleetConfig, live: Arc<Live>) -> Result<FleetReport, FleetError> {
    let addr = tokio::net::lookup_host(&config.authority)
        .await
        .map_err(|e| FleetError::Resolve(config.authority.clone(), e))?
        .next()
        .ok_or_else(|| FleetError::Resolve(config.authority.clone(), std::io::ErrorKind::NotFound.into()))?;
    let started = Instant::now();
    let deadline = started + config.duration;
    let config = Arc::new(config);
    let ramp = config.ramp.unwrap_or(config.duration / 10);
    let settle = config.poll_every.unwrap_or(Duration::from_secs(10));
    let recorder = Arc::new(Recorder {
        kinds: Default::default(),
        steady: Default::default(),
        steady_from: started + ramp + settle,
        errors: Default::default(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..config.devices {
        let (config, live, recorder) = (config.clone(), live.clone(), recorder.clone());
        tasks.spawn(async move {
            Terminal::new(
                index,
                &config,
                addr,
                deadline,
                started + ramp.mul_f64(index as f64 / config.devices.max(1) as f64),
                recorder,
            )
            .live(&live)
            .await
        });
    }
    let mut report = FleetReport {
        devices: config.devices,
        elapsed: Duration::ZERO,
        steady_from: recorder.steady_from - started,
        steady: BTreeMap::new(),
        connections: 0,
        kinds: BTreeMap::new(),
        punches_sent: 0,
        acknowledged: Vec::new(),
        access_events_sent: 0,
        devices_up: 0,
        startup_retries: 0,
        errors: BTreeMap::new(),
    };
    while let Some(outcome) = tasks.join_next().await {
        let Ok(outcome) = outcome else { continue };
        report.connections += outcome.connections;
        report.punches_sent += outcome.punches_sent;
        report.access_events_sent += outcome.access_events_sent;
        report.devices_up += u64::from(outcome.up);
        report.startup_retries += outcome.startup_retries;
        report.acknowledged.extend(outcome.acknowledged);
    }
    report.elapsed = started.elapsed();
    report.kinds = std::mem::take(&mut *recorder.kinds.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    report.steady = std::mem::take(&mut *recorder.steady.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    report.errors = std::mem::take(&mut *recorder.errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    report.acknowledged.sort();
    Ok(report)
}

/// SplitMix64: a small deterministic generator per terminal (`--seed`), so a run can be
/// repeated device for device.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An exponential wait around `mean` (punches arrive as a Poisson process), kept within
    /// [mean/10, 5 × mean].
    fn around(&mut self, mean: Duration) -> Duration {
        let factor = (-(1.0 - self.unit()).ln()).clamp(0.1, 5.0);
        mean.mul_f64(factor)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// A push 2.4.1 face/fingerprint terminal.
    Push2,
    /// An older unit without `pushver` (2.2.14), Chinese UI.
    Legacy,
    /// A Security PUSH 3.1.2 access panel.
    Access,
}

/// One simulated terminal.
struct Terminal {
    sn: String,
    family: Family,
    rng: Rng,
    link: Link,
    deadline: Instant,
    start_at: Instant,
    poll_every: Option<Duration>,
    punch_every: Duration,
    /// Whether it goes offline once; when and for how long is set once it is up.
    goes_offline: bool,
    offline: Option<(Instant, Duration)>,
    /// The PINs of its staff.
    staff: Vec<u32>,
    /// Its wall clock for the next punch (strictly increasing, so no two punches share a key).
    clock: u64,
    outcome: DeviceOutcome,
    error_delay: Duration,
    recorder: Arc<Recorder>,
}

impl Terminal {
    fn new(
        index: usize,
        config: &FleetConfig,
        server: SocketAddr,
        deadline: Instant,
        start_at: Instant,
        recorder: Arc<Recorder>,
    ) -> Terminal {
        let mut rng = Rng(config.seed ^ (index as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
        let family = if rng.unit() < config.access_share {
            Family::Access
        } else if rng.below(4) == 0 {
            Family::Legacy
        } else {
            Family::Push2
        };
        let goes_offline = family != Family::Access && rng.unit() < config.offline_share;
        let source = (server.ip().is_loopback() && server.is_ipv4() && config.sources > 1)
            .then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (index % usize::from(config.sources)) as u8)));
        let staff_size = 20 + rng.below(200) as u32;
        let first_pin = 1000 + rng.below(8000) as u32;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        Terminal {
            sn: format!("{}{index:06}", config.sn_prefix),
            family,
            rng,
            link: Link { server, source, keep_alive: config.keep_alive, stream: None, opened: 0 },
            deadline,
            start_at,
            poll_every: config.poll_every,
            punch_every: config.punch_every,
            goes_offline,
            offline: None,
            staff: (first_pin..first_pin + staff_size).collect(),
            // Punches carry the UTC wall clock of an hour ago, well inside any accepted window
            // (a fresh server keeps punches up to a day ahead and from 2000 on).
            clock: now - 3600,
            outcome: DeviceOutcome {
                connections: 0,
                acknowledged: Vec::new(),
                punches_sent: 0,
                access_events_sent: 0,
                up: false,
                startup_retries: 0,
            },
            error_delay: config.error_delay,
            recorder,
        }
    }

    async fn live(mut self, live: &Live) -> DeviceOutcome {
        tokio::time::sleep_until(self.start_at.into()).await;
        live.devices_started.fetch_add(1, Ordering::Relaxed);
        // A start-up that fails is tried again from the handshake after the error delay, as
        // long as the run lasts.
        let server_delay = loop {
            let delay = match self.family {
                Family::Access => self.register_access_panel(live).await,
                Family::Push2 | Family::Legacy => self.start_attendance(live).await,
            };
            if let Some(delay) = delay {
                break delay;
            }
            let again = Instant::now() + self.error_delay;
            if again >= self.deadline {
                self.outcome.connections = self.link.opened;
                return self.outcome;
            }
            self.outcome.startup_retries += 1;
            tokio::time::sleep_until(again.into()).await;
        };
        self.outcome.up = true;
        // The outage lies in the middle of what is left of the run once the terminal is up, so
        // that it ends in time for the backlog to go out however long start-up took.
        if self.goes_offline {
            let up = Instant::now();
            let left = self.deadline.saturating_duration_since(up);
            let from = up + left.mul_f64(0.2 + 0.15 * self.rng.unit());
            self.offline = Some((from, left.mul_f64(0.2 + 0.1 * self.rng.unit())));
        }
        let poll_every = self.poll_every.unwrap_or(server_delay);
        let mut next_poll = Instant::now() + poll_every;
        let mut next_punch = Instant::now() + self.rng.around(self.punch_every);
        // Someone punches as the network goes down: an outage always leaves a backlog.
        let mut outage_punch = self.offline.map(|(from, _)| from);
        let mut backlog: Vec<(u32, u64)> = Vec::new();
        let mut first_poll = true;
        loop {
            let next = next_poll.min(next_punch).min(outage_punch.unwrap_or(next_punch));
            if next >= self.deadline {
                break;
            }
            tokio::time::sleep_until(next.into()).await;
            if outage_punch == Some(next) {
                outage_punch = None;
                let punch = self.next_punch();
                backlog.push(punch);
                continue;
            }
            let offline_now = self.offline.is_some_and(|(from, len)| next >= from && next < from + len);
            if next == next_punch {
                next_punch += self.rng.around(self.punch_every);
                let punch = self.next_punch();
                if offline_now {
                    backlog.push(punch);
                } else if self.family == Family::Access {
                    self.send_access_event(live, punch).await;
                } else {
                    self.send_punches(live, Kind::Attlog, vec![punch]).await;
                }
                continue;
            }
            next_poll += poll_every;
            if offline_now {
                continue;
            }
            if !backlog.is_empty() {
                let dump = std::mem::take(&mut backlog);
                self.send_punches(live, Kind::Backlog, dump).await;
            }
            self.poll(live, first_poll).await;
            first_poll = false;
        }
        // Back from an outage that lasted to the end: what it kept goes out before it stops.
        if !backlog.is_empty() {
            self.send_punches(live, Kind::Backlog, backlog).await;
        }
        self.outcome.connections = self.link.opened;
        self.outcome
    }

    fn next_punch(&mut self) -> (u32, u64) {
        let pin = self.staff[self.rng.below(self.staff.len() as u64) as usize];
        self.clock += 1 + self.rng.below(3);
        (pin, self.clock)
    }

    /// Handshake, options dump, enrolled users; the `Delay` the server gave.
    async fn start_attendance(&mut self, live: &Live) -> Option<Duration> {
        let sn = self.sn.clone();
        let handshake = match self.family {
            Family::Legacy => format!("/iclock/cdata?SN={sn}&options=all&language=83"),
            _ => format!("/iclock/cdata?SN={sn}&options=all&pushver=2.4.1&language=69"),
        };
        let answer = self.exchange(live, Kind::Handshake, "GET", &handshake, b"", |body| {
            body.starts_with(&format!("GET OPTION FROM: {sn}\n"))
        });
        let answer = answer.await?;
        let delay = answer
            .lines()
            .find_map(|l| l.strip_prefix("Delay="))
            .and_then(|d| d.trim().parse::<u64>().ok())
            .map_or(Duration::from_secs(10), Duration::from_secs);
        let options = format!(
            "~DeviceName=SpeedFace-V5L,MAC=00:17:61:{:02x}:{:02x}:{:02x},TransactionCount=0,UserCount={},\
             FingerFunOn=1,FaceFunOn=1,Language=69,IPAddress=10.0.{}.{},FWVersion=ZAM170-NF-Ver1.1.27,\
             PushVersion=Ver 2.0.32S-20200506",
            self.rng.below(256),
            self.rng.below(256),
            self.rng.below(256),
            self.staff.len(),
            self.rng.below(256),
            1 + self.rng.below(254),
        );
        let path = format!("/iclock/cdata?SN={sn}&table=options");
        self.exchange(live, Kind::Options, "POST", &path, options.as_bytes(), |b| b.starts_with("OK")).await?;
        let users: String = self.staff[..3]
            .iter()
            .enumerate()
            .map(|(i, pin)| {
                let name = ["Ana Souza", "Ravi Kumar", "Li Wei"][i];
                format!(
                    "USER PIN={pin}\tName={name}\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000100000000\tVerify=0\tViceCard=\n"
                )
            })
            .collect();
        let path = format!("/iclock/cdata?SN={sn}&table=OPERLOG&OpStamp=1");
        self.exchange(live, Kind::Operlog, "POST", &path, users.as_bytes(), |b| b == "OK: 3").await?;
        Some(delay)
    }

    /// Unregistered handshake, registration, registered handshake, configuration download; the
    /// `RequestDelay` the server gave.
    async fn register_access_panel(&mut self, live: &Live) -> Option<Duration> {
        let sn = self.sn.clone();
        let handshake = wire::access_handshake_path(&sn);
        self.exchange(live, Kind::Handshake, "GET", &handshake, b"", |b| b == "OK").await?;
        let mac = [self.rng.below(256) as u8, self.rng.below(256) as u8];
        let registry = wire::access_registry_body(mac, [self.rng.below(256) as u8, 1 + self.rng.below(254) as u8]);
        let path = format!("/iclock/registry?SN={sn}");
        self.exchange(live, Kind::Registry, "POST", &path, registry.as_bytes(), |b| b.starts_with("RegistryCode="))
            .await?;
        self.exchange(live, Kind::Handshake, "GET", &handshake, b"", |b| b.starts_with("registry=ok\n")).await?;
        let path = format!("/iclock/push?SN={sn}");
        let config = self.exchange(live, Kind::Push, "GET", &path, b"", |b| b.starts_with("ServerVersion=")).await?;
        let delay = config
            .lines()
            .find_map(|l| l.strip_prefix("RequestDelay="))
            .and_then(|d| d.trim().parse::<u64>().ok())
            .map_or(Duration::from_secs(10), Duration::from_secs);
        Some(delay)
    }

    async fn poll(&mut self, live: &Live, first: bool) {
        let sn = self.sn.clone();
        let path = if first {
            format!("/iclock/getrequest?SN={sn}&INFO=Ver%202.4.1,{},3,0,10.0.0.1,10,7,12,0,111", self.staff.len())
        } else {
            format!("/iclock/getrequest?SN={sn}")
        };
        let Some(answer) = self.exchange(live, Kind::Poll, "GET", &path, b"", |_| true).await else { return };
        let results: String = answer
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("C:")?;
                let (id, command) = rest.split_once(':')?;
                let verb = command.split_whitespace().next().unwrap_or_default();
                // What firmware answers: 0 for what it runs, -1002 for a command it does not know.
                let known = ["INFO", "DATA", "CHECK", "CLEAR", "REBOOT", "SET", "ENROLL_FP", "LOG", "QUERY"];
                let code = if known.contains(&verb) { 0 } else { -1002 };
                Some(format!("ID={id}&Return={code}&CMD={verb}\n"))
            })
            .collect();
        if !results.is_empty() {
            let path = format!("/iclock/devicecmd?SN={sn}");
            self.exchange(live, Kind::Devicecmd, "POST", &path, results.as_bytes(), |b| b.starts_with("OK")).await;
        }
    }

    async fn send_punches(&mut self, live: &Live, kind: Kind, punches: Vec<(u32, u64)>) {
        let mut body = Vec::with_capacity(punches.len() * 40);
        for &(pin, unix) in &punches {
            wire::write_attlog_line(&mut body, pin, unix);
        }
        let path = format!("/iclock/cdata?SN={}&table=ATTLOG&Stamp={}", self.sn, self.clock);
        let ok = format!("OK: {}", punches.len());
        self.outcome.punches_sent += punches.len() as u64;
        live.punches_sent.fetch_add(punches.len() as u64, Ordering::Relaxed);
        if self.exchange(live, kind, "POST", &path, &body, |b| b == ok).await.is_some() {
            live.punches_acknowledged.fetch_add(punches.len() as u64, Ordering::Relaxed);
            let sn = self.sn.clone();
            self.outcome.acknowledged.extend(punches.into_iter().map(|(pin, unix)| Punch {
                sn: sn.clone(),
                pin: pin.to_string(),
                time: wire::wall_clock(unix),
            }));
        }
    }

    async fn send_access_event(&mut self, live: &Live, (pin, unix): (u32, u64)) {
        self.outcome.access_events_sent += 1;
        let index = self.outcome.access_events_sent;
        let mut line = Vec::with_capacity(110);
        // A granted face verification on the first door.
        let event = wire::RtlogEvent { unix, pin, card_no: 0, door: 1, event: 0, verify_type: 15, index };
        wire::write_rtlog_line(&mut line, &event);
        let path = format!("/iclock/cdata?SN={}&table=rtlog", self.sn);
        self.exchange(live, Kind::Rtlog, "POST", &path, &line, |b| b.starts_with("OK")).await;
    }

    /// One request; the answer's body when it came with 200 and `accept` holds, else the error
    /// is counted under `kind` and `None` returned.
    async fn exchange(
        &mut self,
        live: &Live,
        kind: Kind,
        method: &str,
        path: &str,
        body: &[u8],
        accept: impl Fn(&str) -> bool,
    ) -> Option<String> {
        live.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        // Boxed: the exchange's buffers live on the heap only while a request is out, not in
        // every sleeping terminal's task for the whole run.
        let result = Box::pin(self.link.send(method, path, body)).await;
        let failure = match result {
            Ok((200, text)) if accept(&text) => {
                self.recorder.request(kind, started, None);
                return Some(text);
            }
            Ok((status, text)) => format!("{method} {path}: {status} {:?}", text.chars().take(120).collect::<String>()),
            Err(e) => format!("{method} {path}: {e}"),
        };
        live.errors.fetch_add(1, Ordering::Relaxed);
        self.recorder.request(kind, started, Some(failure));
        None
    }
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A terminal's way to the server: a connection per request (`Connection: close`), or one kept
/// open between requests (keep-alive), from `source` when given.
struct Link {
    server: SocketAddr,
    source: Option<IpAddr>,
    keep_alive: bool,
    stream: Option<TcpStream>,
    /// Connections opened so far.
    opened: u64,
}

impl Link {
    /// One request as firmware sends it (HTTP/1.1); the status and the body.
    async fn send(&mut self, method: &str, path: &str, body: &[u8]) -> Result<(u16, String), String> {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: iClock Proxy/1.09\r\nAccept: */*\r\n{}Content-Length: {}\r\n{}\r\n",
            self.server,
            if method == "POST" { "Content-Type: text/plain\r\n" } else { "" },
            body.len(),
            if self.keep_alive { "" } else { "Connection: close\r\n" },
        )
        .into_bytes();
        request.extend_from_slice(body);
        let answer = match self.stream.take() {
            // A kept connection the server may have closed meanwhile (its idle timeout): one more
            // try on a new one, as firmware reconnects.
            Some(stream) => match tokio::time::timeout(REQUEST_TIMEOUT, exchange(stream, &request)).await {
                Ok(Ok(answer)) => Ok(answer),
                _ => self.fresh_exchange(&request).await,
            },
            None => self.fresh_exchange(&request).await,
        }?;
        let (status, text, stream) = answer;
        if self.keep_alive {
            self.stream = stream;
        }
        Ok((status, text))
    }

    async fn fresh_exchange(&mut self, request: &[u8]) -> Result<(u16, String, Option<TcpStream>), String> {
        self.opened += 1;
        let attempt = async {
            let stream = match self.source {
                Some(ip) => {
                    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
                    socket.bind(SocketAddr::new(ip, 0)).map_err(|e| format!("bind {ip}: {e}"))?;
                    socket.connect(self.server).await.map_err(|e| format!("connect from {ip}: {e}"))?
                }
                None => TcpStream::connect(self.server).await.map_err(|e| format!("connect: {e}"))?,
            };
            exchange(stream, request).await
        };
        tokio::time::timeout(REQUEST_TIMEOUT, attempt).await.map_err(|_| "no answer in 60 s".to_owned())?
    }
}

/// Writes `request` and reads one answer: the head, then `Content-Length` bytes of body (or, with
/// none, to the end). The stream is handed back when it can carry another request.
async fn exchange(mut stream: TcpStream, request: &[u8]) -> Result<(u16, String, Option<TcpStream>), String> {
    stream.write_all(request).await.map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    let split = loop {
        if let Some(split) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            break split;
        }
        let n = stream.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the connection closed before an answer".to_owned());
        }
        out.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or("no status")?;
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
    };
    let mut body = out.split_off(split + 4);
    let reusable = match header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(length) => {
            while body.len() < length {
                let n = stream.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Err("the connection closed inside the body".to_owned());
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(length);
            !header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
        }
        None => {
            stream.read_to_end(&mut body).await.map_err(|e| format!("read: {e}"))?;
            false
        }
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned(), reusable.then_some(stream)))
}

/// What the transactions API holds of the acknowledged punches.
#[derive(Debug)]
pub struct Verification {
    pub acknowledged: usize,
    /// Acknowledged, not stored.
    pub missing: Vec<Punch>,
    /// Stored more than once.
    pub duplicated: Vec<(Punch, usize)>,
    /// Stored for a fleet device but never acknowledged (an answer lost on the way: allowed).
    pub unacknowledged_stored: usize,
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty()
    }

    fn to_json(&self) -> Value {
        let show = |p: &Punch| format!("{} {} {}", p.sn, p.pin, p.time);
        json!({
            "passed": self.passed(),
            "acknowledged": self.acknowledged,
            "missing": self.missing.iter().take(20).map(show).collect::<Vec<_>>(),
            "missing_count": self.missing.len(),
            "duplicated": self.duplicated.iter().take(20).map(|(p, n)| format!("{} ×{n}", show(p))).collect::<Vec<_>>(),
            "duplicated_count": self.duplicated.len(),
            "stored_unacknowledged": self.unacknowledged_stored,
        })
    }

    fn to_text(&self) -> String {
        if self.passed() {
            return format!(
                "verified: all {} acknowledged punches are stored exactly once ({} stored without an acknowledgement)\n",
                self.acknowledged, self.unacknowledged_stored
            );
        }
        let mut out = format!(
            "VERIFICATION FAILED: of {} acknowledged punches, {} missing, {} stored more than once\n",
            self.acknowledged,
            self.missing.len(),
            self.duplicated.len()
        );
        for p in self.missing.iter().take(10) {
            out.push_str(&format!("  missing: {} PIN {} at {}\n", p.sn, p.pin, p.time));
        }
        for (p, n) in self.duplicated.iter().take(10) {
            out.push_str(&format!("  stored {n} times: {} PIN {} at {}\n", p.sn, p.pin, p.time));
        }
        out
    }
}

/// Reads every transaction through the API (`/iclock/api/transactions/`, page by page) and
/// compares the fleet's devices' punches with what was acknowledged. `token` authenticates
/// (`Authorization: Token …`).
pub async fn verify(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    sn_prefix: &str,
    acknowledged: &[Punch],
) -> Result<Verification, VerifyError> {
    let mut stored: HashMap<Punch, usize> = HashMap::new();
    let mut url = Some(format!("{base}/iclock/api/transactions/?page_size=1000"));
    while let Some(current) = url.take() {
        let response = client
            .get(&current)
            .header("Authorization", format!("Token {token}"))
            .send()
            .await
            .map_err(|source| VerifyError::Request { url: current.clone(), source })?;
        let status = response.status();
        let page: Value =
            response.json().await.map_err(|source| VerifyError::NotJson { url: current.clone(), status, source })?;
        if !status.is_success() {
            return Err(VerifyError::Refused { url: current, status, answer: page });
        }
        for record in page["data"].as_array().into_iter().flatten() {
            let sn = record["terminal_sn"].as_str().unwrap_or_default();
            if !sn.starts_with(sn_prefix) {
                continue;
            }
            let punch = Punch {
                sn: sn.to_owned(),
                pin: record["emp_code"].as_str().unwrap_or_default().to_owned(),
                time: record["punch_time"].as_str().unwrap_or_default().to_owned(),
            };
            *stored.entry(punch).or_default() += 1;
        }
        url = page["next"].as_str().map(str::to_owned);
    }
    let mut verification = Verification {
        acknowledged: acknowledged.len(),
        missing: Vec::new(),
        duplicated: Vec::new(),
        unacknowledged_stored: 0,
    };
    let mut acked: HashMap<&Punch, ()> = HashMap::with_capacity(acknowledged.len());
    for punch in acknowledged {
        acked.insert(punch, ());
        match stored.get(punch).copied().unwrap_or(0) {
            0 => verification.missing.push(punch.clone()),
            1 => {}
            n => verification.duplicated.push((punch.clone(), n)),
        }
    }
    verification.unacknowledged_stored = stored.keys().filter(|p| !acked.contains_key(p)).count();
    Ok(verification)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punch_waits_stay_near_their_mean() {
        let mut rng = Rng(7);
        let mean = Duration::from_secs(10);
        let waits: Vec<Duration> = (0..10_000).map(|_| rng.around(mean)).collect();
        assert!(waits.iter().all(|w| *w >= mean / 10 && *w <= mean * 5));
        let average = waits.iter().sum::<Duration>() / 10_000;
        assert!(average > Duration::from_secs(8) && average < Duration::from_secs(12), "{average:?}");
    }
}
