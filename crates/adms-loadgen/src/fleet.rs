//! Issue 17's fleet benchmarks: `devices` simulated terminals, each living the device cycle of
//! adms-sim's fleet (handshake, options, users, heartbeat polls, punches, access panels'
//! registration and `rtlog`), run in this process against the release server on a fresh
//! database. The figures: latency per request kind (p50/p99/max), requests/s, errors, the
//! server's resident memory (sampled every half second, and its peak), the CPU both processes
//! used (the simulator's own cost per 1,000 devices, so the server's figures are read right: both
//! share this machine's cores), and, through the transactions API, that every acknowledged punch
//! is stored exactly once.
//!
//! The terminals are adms-sim's, not a second model of a terminal: this scenario adds only what
//! a benchmark needs around them (the server process, its memory and CPU, the verdict).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use adms_sim::fleet::{self, FleetConfig, FleetReport, Kind, Live, Verification};
use anyhow::Context;

use crate::scenarios::{BenchDatabase, Run, ServerProcess};

/// How long a terminal whose start-up failed waits before it starts over: the server's default
/// `ErrorDelay`.
const ERROR_DELAY: Duration = Duration::from_secs(30);

/// What the fleet does.
#[derive(Debug, Clone)]
pub struct FleetBench {
    pub devices: usize,
    pub duration: Duration,
    /// Terminals start spread over this much of the run.
    pub ramp: Duration,
    pub poll_every: Duration,
    pub punch_every: Duration,
    pub access_share: f64,
    pub offline_share: f64,
    pub sources: u8,
    pub keep_alive: bool,
}

/// The CPU time (user + system) a process has used, from `/proc/PID/stat` (fields 14 and 15, in
/// clock ticks of 1/100 s: the Linux ABI's `USER_HZ`).
fn cpu_time(pid: &str) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are
    // plain numbers, the state first (field 3).
    let after_name = stat.rsplit_once(')').context("no command name in /proc stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> { Ok(fields.get(i).context("short /proc stat")?.parse()?) };
    // Field 14 is the 12th after the name (field 3 is index 0).
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// A `/proc/PID/status` figure in kB (`VmRSS`, `VmHWM`).
fn status_kb(pid: &str, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find_map(|l| l.strip_prefix(key)).with_context(|| format!("no {key} in status"))?;
    Ok(line.trim_start_matches(':').trim().trim_end_matches("kB").trim().parse()?)
}

/// The server's resident memory, sampled every half second while the fleet runs.
#[derive(Debug, Default)]
struct MemorySamples {
    max_rss_kb: AtomicU64,
    last_rss_kb: AtomicU64,
}

pub async fn fleet(run: &Run, bench: FleetBench) -> anyhow::Result<String> {
    let dir = tempfile::tempdir()?;
    let database = BenchDatabase::create(run.engine, dir.path(), "fleet.db").await?;
    let delay = bench.poll_every.as_secs().max(1).to_string();
    let server = ServerProcess::start_with(
        &run.server_bin,
        &database,
        // Every terminal is told the heartbeat the fleet keeps (push 2.x `Delay`, Security PUSH
        // `RequestDelay`), so the server considers them online as a real fleet would be.
        &[("ADMS_DELAY_SECS", delay.as_str())],
    )?;
    let pid = server.pid().to_string();
    let memory = Arc::new(MemorySamples::default());
    let sampler = {
        let (memory, pid) = (memory.clone(), pid.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                if let Ok(kb) = status_kb(&pid, "VmRSS") {
                    memory.last_rss_kb.store(kb, Ordering::Relaxed);
                    memory.max_rss_kb.fetch_max(kb, Ordering::Relaxed);
                }
            }
        })
    };
    let live = Arc::new(Live::default());
    let ticker = {
        let (live, memory, devices) = (live.clone(), memory.clone(), bench.devices);
        tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                eprintln!(
                    "{:>5.0} s: {} of {devices} devices up, {} requests, {} errors, server RSS {} MiB",
                    started.elapsed().as_secs_f64(),
                    live.devices_started.load(Ordering::Relaxed),
                    live.requests.load(Ordering::Relaxed),
                    live.errors.load(Ordering::Relaxed),
                    memory.last_rss_kb.load(Ordering::Relaxed) / 1024,
                );
            }
        })
    };
    let (server_cpu_before, own_cpu_before) = (cpu_time(&pid)?, cpu_time("self")?);
    let config = FleetConfig {
        authority: server.addr.clone(),
        devices: bench.devices,
        duration: bench.duration,
        ramp: Some(bench.ramp),
        punch_every: bench.punch_every,
        poll_every: Some(bench.poll_every),
        offline_share: bench.offline_share,
        access_share: bench.access_share,
        sources: bench.sources,
        sn_prefix: "FLEET".into(),
        seed: 1,
        keep_alive: bench.keep_alive,
        error_delay: ERROR_DELAY,
    };
    let report = fleet::run(config, live).await?;
    let (server_cpu, own_cpu) = (cpu_time(&pid)? - server_cpu_before, cpu_time("self")? - own_cpu_before);
    ticker.abort();
    sampler.abort();
    let peak_rss_kb = status_kb(&pid, "VmHWM")?;
    let verification = verify(&server.addr, &report).await?;
    server.stop()?;
    let figures = FleetFigures {
        bench,
        report,
        verification,
        peak_rss_kb,
        max_sampled_rss_kb: memory.max_rss_kb.load(Ordering::Relaxed),
        server_cpu,
        own_cpu,
    };
    anyhow::ensure!(
        figures.verification.passed(),
        "acknowledged punches missing or doubled:\n{}",
        figures.report.to_text(Some(&figures.verification))
    );
    Ok(figures.to_string())
}

/// Every acknowledged punch, read back through the transactions API as the bench's admin.
async fn verify(addr: &str, report: &FleetReport) -> anyhow::Result<Verification> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(300)).build()?;
    let base = format!("http://{addr}");
    let credentials = adms_sim::replay::Credentials { username: "bench".into(), password: "bench-password".into() };
    let token = adms_sim::replay::login(&client, &base, &credentials).await.map_err(|e| anyhow::anyhow!(e))?;
    Ok(fleet::verify(&client, &base, &token, "FLEET", &report.acknowledged).await?)
}

fn kinds_table(
    f: &mut std::fmt::Formatter<'_>,
    kinds: &std::collections::BTreeMap<Kind, adms_sim::fleet::KindStats>,
    secs: f64,
) -> std::fmt::Result {
    for (kind, stats) in kinds {
        let ms = |q: f64| stats.latency_us.value_at_quantile(q) as f64 / 1000.0;
        writeln!(
            f,
            "    {:<10} {:>9} requests ({:>7.0}/s), p50 {:>7.1} ms, p99 {:>7.1} ms, max {:>8.1} ms{}",
            kind.name(),
            stats.requests,
            stats.requests as f64 / secs.max(0.001),
            ms(0.5),
            ms(0.99),
            stats.latency_us.max() as f64 / 1000.0,
            if stats.errors > 0 { format!(", {} errors", stats.errors) } else { String::new() },
        )?;
    }
    Ok(())
}

struct FleetFigures {
    bench: FleetBench,
    report: FleetReport,
    verification: Verification,
    peak_rss_kb: u64,
    max_sampled_rss_kb: u64,
    server_cpu: Duration,
    own_cpu: Duration,
}

impl std::fmt::Display for FleetFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (b, r) = (&self.bench, &self.report);
        let secs = r.elapsed.as_secs_f64().max(0.001);
        let requests: u64 = r.kinds.values().map(|k| k.requests).sum();
        writeln!(
            f,
            "fleet of {} devices for {:.0} s ({} each {:?}, punches every {:?} on average, {:.0} % access panels, {}), simulator and server on this machine:",
            b.devices,
            secs,
            if b.keep_alive { "keep-alive connections, polls" } else { "a connection per request, polls" },
            b.poll_every,
            b.punch_every,
            b.access_share * 100.0,
            format_args!("{} source addresses", b.sources),
        )?;
        writeln!(f, "  requests: {requests} ({:.0}/s), connections opened: {}", requests as f64 / secs, r.connections)?;
        writeln!(
            f,
            "  devices up: {} of {} ({} start-ups tried again after a failure, {:?} later)",
            r.devices_up, b.devices, r.startup_retries, ERROR_DELAY
        )?;
        writeln!(f, "  whole run (terminals starting over the first {:.0} s):", b.ramp.as_secs_f64())?;
        kinds_table(f, &r.kinds, secs)?;
        writeln!(f, "  steady state (requests started from {:.0} s on):", r.steady_from.as_secs_f64())?;
        kinds_table(f, &r.steady, r.steady_secs())?;
        let steady_polls = r.steady.get(&Kind::Poll).map_or(0, |s| s.requests);
        // Every terminal polls once per interval: what a fleet that keeps its heartbeat sends.
        let expected = b.devices as f64 * r.steady_secs() / b.poll_every.as_secs_f64();
        writeln!(
            f,
            "  heartbeat kept: {steady_polls} polls in the steady state, {:.1} % of one per device per {:?}",
            steady_polls as f64 / expected.max(1.0) * 100.0,
            b.poll_every
        )?;
        for (kind, (n, first)) in &r.errors {
            writeln!(f, "  errors ({}): {n}, first: {first}", kind.name())?;
        }
        let poll_p99 = r.steady.get(&Kind::Poll).map_or(0.0, |s| s.latency_us.value_at_quantile(0.99) as f64 / 1000.0);
        writeln!(
            f,
            "  steady-state poll p99 {poll_p99:.1} ms ({} the 100 ms bar)",
            if poll_p99 < 100.0 { "under" } else { "OVER" }
        )?;
        writeln!(
            f,
            "  server RSS: peak {:.0} MiB (largest half-second sample {:.0} MiB)",
            self.peak_rss_kb as f64 / 1024.0,
            self.max_sampled_rss_kb as f64 / 1024.0
        )?;
        writeln!(
            f,
            "  CPU over the run: server {:.0} % of a core, simulator {:.0} % ({:.1} % of a core per 1,000 devices)",
            self.server_cpu.as_secs_f64() / secs * 100.0,
            self.own_cpu.as_secs_f64() / secs * 100.0,
            self.own_cpu.as_secs_f64() / secs * 100.0 / (b.devices as f64 / 1000.0).max(0.001),
        )?;
        write!(
            f,
            "  punches: {} sent, {} acknowledged, {} stored exactly once, {} missing, {} doubled; {} access events sent",
            r.punches_sent,
            r.acknowledged.len(),
            self.verification.acknowledged - self.verification.missing.len() - self.verification.duplicated.len(),
            self.verification.missing.len(),
            self.verification.duplicated.len(),
            r.access_events_sent,
        )
    }
}
