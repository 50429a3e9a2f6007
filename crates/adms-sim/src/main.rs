//! `adms-sim`: plays ZKTeco terminals against an adms-bridge server.
//!
//! `adms-sim replay PATH… --target URL [--user U --password P | --api-key K]` plays session
//! files (or every `*.session` under a folder), several devices at once with `--concurrency`,
//! and prints, per session, OK with its step counts or the failure with what was sent, expected
//! and came; the exit code is 1 when any session failed or did not parse.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use adms_sim::fleet;
use adms_sim::replay::{ApiAuth, ApiChecks, Credentials, Player, Report};
use adms_sim::session::{BodySources, Script, parse_script_in};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tokio::sync::Semaphore;

#[derive(Debug, Parser)]
#[command(name = "adms-sim", version, about = "Plays ZKTeco terminals against an adms-bridge server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Plays session scripts (fixtures/README.md) against a running server and checks every
    /// answer. With API credentials the `rows` and `option` steps are checked through the API,
    /// otherwise skipped (and listed); each session expects the server state it was written for
    /// (the fixture test starts a fresh server per session, with the session's `env` settings).
    Replay(ReplayArgs),
    /// Runs N simulated terminals against a server (handshake, options, users, polls at the
    /// server's Delay, punches, an offline backlog for some, commands answered; a share of them
    /// Security PUSH access panels), then prints requests/s, latencies and errors by kind. With
    /// API credentials it checks through the transactions API that every acknowledged punch is
    /// stored exactly once. Exit code 1 when a request failed or the check did not hold.
    Fleet(FleetArgs),
}

#[derive(Debug, clap::Args)]
struct FleetArgs {
    /// Terminals to simulate.
    #[arg(long)]
    devices: usize,
    /// The server, `http://HOST:PORT`.
    #[arg(long, env = "ADMS_SIM_TARGET")]
    target: String,
    /// How long the fleet runs (`30s`, `5m`, or seconds).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Terminals start spread over this much of the run (default: its first tenth).
    #[arg(long, value_parser = parse_duration)]
    ramp: Option<Duration>,
    /// Mean time between two punches of one terminal.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    punch_every: Duration,
    /// Poll at this interval instead of the `Delay` the server hands out.
    #[arg(long, value_parser = parse_duration)]
    poll_every: Option<Duration>,
    /// How long a terminal whose start-up failed waits before it starts over (firmware's
    /// `ErrorDelay`).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    error_delay: Duration,
    /// Share of the attendance terminals that go offline once and dump a backlog.
    #[arg(long, default_value_t = 0.1)]
    offline_share: f64,
    /// Share of the devices that are Security PUSH access panels (rtlog events, not punches).
    #[arg(long, default_value_t = 0.2)]
    access_share: f64,
    /// Loopback source addresses to connect from (127.0.0.1 to 127.0.0.N) when the target is
    /// on loopback.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..))]
    sources: u8,
    /// Serial numbers are this prefix and six digits.
    #[arg(long, default_value = "SIM")]
    sn_prefix: String,
    /// Seed of the terminals' choices (families, PINs, intervals, outages).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Each terminal keeps its connection open between requests (HTTP/1.1 keep-alive) instead
    /// of one connection per request with `Connection: close`.
    #[arg(long)]
    keep_alive: bool,
    /// The summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// A progress line on stderr (shown anyway when stderr is a terminal).
    #[arg(long)]
    progress: bool,
    /// Approve every fleet device through the API at the end, before the check (a server that
    /// does not approve new serial numbers holds their punches from the API until then).
    #[arg(long)]
    approve: bool,
    /// API user: with it (or `--api-key`) the acknowledged punches are checked.
    #[arg(long, env = "ADMS_SIM_USER", requires = "password")]
    user: Option<String>,
    #[arg(long, env = "ADMS_SIM_PASSWORD", requires = "user", hide_env_values = true)]
    password: Option<String>,
    #[arg(long, env = "ADMS_SIM_API_KEY", conflicts_with = "user", hide_env_values = true)]
    api_key: Option<String>,
}

/// `90s`, `10m`, `2h`, `500ms`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().map_err(|_| format!("`{text}` is not a duration (30s, 5m, 500ms)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{text}`: the unit is ms, s, m or h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{text}`: {e}"))
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// Session files, or folders whose `*.session` files (recursively, in name order) are played.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The server, `http://HOST:PORT`.
    #[arg(long, env = "ADMS_SIM_TARGET")]
    target: String,
    /// API user for the `api …` steps, and for the `rows`/`option` steps, which are then
    /// answered through the API (`/api/v1/stats/tables` needs an administrator). Skipped
    /// without credentials.
    #[arg(long, env = "ADMS_SIM_USER", requires = "password")]
    user: Option<String>,
    /// Password of `--user`.
    #[arg(long, env = "ADMS_SIM_PASSWORD", requires = "user", hide_env_values = true)]
    password: Option<String>,
    /// An API token (`adms-bridge token create`) instead of `--user`/`--password`.
    #[arg(long, env = "ADMS_SIM_API_KEY", conflicts_with = "user", hide_env_values = true)]
    api_key: Option<String>,
    /// Folder of the `@FILE` payloads; by default `payloads/` beside each session's folder
    /// (`fixtures/sessions/x.session` reads `fixtures/payloads/`).
    #[arg(long)]
    payloads: Option<PathBuf>,
    /// Devices played at the same time. Sessions whose first request names the same `SN` are
    /// one device's: they are played one after another, in name order.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Recorded gaps (`gap=Nms`) are waited for divided by this: 1 as the device did, 10 ten
    /// times faster, 0 not at all.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// A progress line on stderr (shown anyway when stderr is a terminal).
    #[arg(long)]
    progress: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Replay(args) => replay(args).await,
        Command::Fleet(args) => fleet(args).await,
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("adms-sim: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Plays every session; `Ok(false)` when one failed or did not parse.
async fn replay(args: ReplayArgs) -> anyhow::Result<bool> {
    let mut files = Vec::new();
    for path in &args.paths {
        collect_sessions(path, &mut files).with_context(|| format!("reading {}", path.display()))?;
    }
    if files.is_empty() {
        bail!("no *.session files in {:?}", args.paths);
    }
    let auth = match (args.user, args.password, args.api_key) {
        (Some(username), Some(password), _) => Some(ApiAuth::Login(Credentials { username, password })),
        (_, _, Some(key)) => Some(ApiAuth::Key(key)),
        _ => None,
    };
    let mut player = Player::new(&args.target)?.with_speed(args.speed);
    match &auth {
        Some(ApiAuth::Login(credentials)) => player = player.with_credentials(credentials.clone()),
        Some(ApiAuth::Key(key)) => player = player.with_api_key(key.clone()),
        None => {}
    }
    if let Some(auth) = auth {
        // Lives as long as the process: the player is shared by the concurrent devices.
        let checks: &'static ApiChecks = Box::leak(Box::new(ApiChecks::new(&args.target, auth)?));
        player = player.with_database(checks);
    }
    let player = Arc::new(player);

    // Parse everything first: a broken script is reported before any request goes out.
    let mut failed = 0;
    let mut devices: Vec<(Option<String>, Vec<Script>)> = Vec::new();
    let mut parsed = 0;
    for file in &files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {name}"))?;
        let payloads = match &args.payloads {
            Some(dir) => dir.clone(),
            None => file.parent().and_then(Path::parent).unwrap_or(Path::new(".")).join("payloads"),
        };
        let session_dir = file.parent().unwrap_or(Path::new("."));
        let sources = BodySources { payloads: &payloads, session_dir: Some(session_dir) };
        let script = match parse_script_in(&name, &text, sources) {
            Ok(script) => script,
            Err(errors) => {
                println!("{name}: INVALID\n{errors}");
                failed += 1;
                continue;
            }
        };
        for (key, value) in &script.env {
            println!("{name}: note: written for a server with {key}={value}");
        }
        parsed += 1;
        let sn = script.device_sn();
        match devices.iter_mut().find(|(device, _)| sn.is_some() && *device == sn) {
            Some((_, scripts)) => scripts.push(script),
            None => devices.push((sn, vec![script])),
        }
    }

    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let show_progress = args.progress || std::io::stderr().is_terminal();
    let progress = Progress { done: done.clone(), failures: failures.clone(), sent: player.requests_sent(), parsed };
    let ticker = show_progress.then(|| {
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                eprint!("\r{}   ", progress.line());
            }
        })
    });

    let limit = Arc::new(Semaphore::new(usize::from(args.concurrency)));
    let (reports, mut printed) = tokio::sync::mpsc::unbounded_channel::<Report>();
    let mut tasks = tokio::task::JoinSet::new();
    for (_, scripts) in devices {
        let (player, limit, reports) = (player.clone(), limit.clone(), reports.clone());
        let (done, failures) = (done.clone(), failures.clone());
        tasks.spawn(async move {
            let Ok(_turn) = limit.acquire_owned().await else { return };
            for script in scripts {
                let report = player.play(&script).await;
                done.fetch_add(1, Ordering::Relaxed);
                failures.fetch_add(usize::from(!report.passed()), Ordering::Relaxed);
                let _ = reports.send(report);
            }
        });
    }
    drop(reports);
    while let Some(report) = printed.recv().await {
        print_report(&report);
        failed += usize::from(!report.passed());
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a replay task failed")?;
    }
    if let Some(ticker) = ticker {
        ticker.abort();
        eprintln!("\r{}   ", progress.line());
    }
    println!("{} of {} sessions passed", files.len() - failed, files.len());
    Ok(failed == 0)
}

async fn fleet(args: FleetArgs) -> anyhow::Result<bool> {
    let authority = fleet::authority_of(&args.target)?;
    let config = fleet::FleetConfig {
        authority: authority.clone(),
        devices: args.devices,
        duration: args.duration,
        ramp: args.ramp,
        punch_every: args.punch_every,
        poll_every: args.poll_every,
        offline_share: args.offline_share.clamp(0.0, 1.0),
        access_share: args.access_share.clamp(0.0, 1.0),
        sources: args.sources,
        sn_prefix: args.sn_prefix.clone(),
        seed: args.seed,
        keep_alive: args.keep_alive,
        error_delay: args.error_delay,
    };
    let live = Arc::new(fleet::Live::default());
    let ticker = (args.progress || std::io::stderr().is_terminal()).then(|| {
        let live = live.clone();
        let devices = args.devices;
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let requests = live.requests.load(Ordering::Relaxed);
                eprint!(
                    "\r{:>4.0} s: {} of {devices} devices up, {requests} requests ({:.0}/s), punches {} sent {} acknowledged, {} errors   ",
                    started.elapsed().as_secs_f64(),
                    live.devices_started.load(Ordering::Relaxed),
                    requests as f64 / started.elapsed().as_secs_f64().max(0.001),
                    live.punches_sent.load(Ordering::Relaxed),
                    live.punches_acknowledged.load(Ordering::Relaxed),
                    live.errors.load(Ordering::Relaxed),
                );
            }
        })
    });
    let report = fleet::run(config, live).await?;
    if let Some(ticker) = ticker {
        ticker.abort();
        eprintln!();
    }
    let auth = match (args.user, args.password, args.api_key) {
        (Some(username), Some(password), _) => Some(ApiAuth::Login(Credentials { username, password })),
        (_, _, Some(key)) => Some(ApiAuth::Key(key)),
        _ => None,
    };
    let verification = match auth {
        None => None,
        Some(auth) => {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
            let base = format!("http://{authority}");
            let token = match auth {
                ApiAuth::Key(key) => key,
                ApiAuth::Login(credentials) => {
                    adms_sim::replay::login(&client, &base, &credentials).await.map_err(|e| anyhow::anyhow!(e))?
                }
            };
            if args.approve {
                approve_all(&client, &base, &token, &args.sn_prefix, args.devices).await?;
            }
            let checked = fleet::verify(&client, &base, &token, &args.sn_prefix, &report.acknowledged)
                .await
                .context("checking the punches through the API")?;
            Some(checked)
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json(verification.as_ref()))?);
    } else {
        print!("{}", report.to_text(verification.as_ref()));
    }
    Ok(report.error_count() == 0 && verification.is_none_or(|v| v.passed()))
}

/// `PATCH /api/v1/devices/SN {"approval": "approved"}` for every fleet device, 16 at a time.
async fn approve_all(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    prefix: &str,
    devices: usize,
) -> anyhow::Result<()> {
    let limit = Arc::new(Semaphore::new(16));
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..devices {
        let (client, limit) = (client.clone(), limit.clone());
        let url = format!("{base}/api/v1/devices/{prefix}{index:06}");
        let token = token.to_owned();
        tasks.spawn(async move {
            let _turn = limit.acquire_owned().await?;
            let response = client
                .patch(&url)
                .header("Authorization", format!("Token {token}"))
                .json(&serde_json::json!({ "approval": "approved" }))
                .send()
                .await?;
            // 404: a device that never reached the server (its errors are in the summary).
            if !response.status().is_success() && response.status() != reqwest::StatusCode::NOT_FOUND {
                anyhow::bail!("PATCH {url}: {}", response.status());
            }
            Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// What the progress line counts.
#[derive(Clone)]
struct Progress {
    done: Arc<AtomicUsize>,
    failures: Arc<AtomicUsize>,
    sent: Arc<std::sync::atomic::AtomicU64>,
    parsed: usize,
}

impl Progress {
    fn line(&self) -> String {
        format!(
            "{} of {} sessions played, {} failed, {} requests sent",
            self.done.load(Ordering::Relaxed),
            self.parsed,
            self.failures.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed),
        )
    }
}

fn print_report(report: &Report) {
    for skipped in &report.skipped {
        println!("  skipped {skipped}");
    }
    for xfail in &report.expected_failures {
        println!("  xfail {xfail}");
    }
    let counts = format!(
        "{} steps passed, {} failed as marked (xfail), {} skipped",
        report.steps_passed(),
        report.expected_failures.len(),
        report.skipped.len()
    );
    match &report.failure {
        None => println!("{}: OK, {} steps: {counts}", report.name, report.steps),
        Some(failure) => {
            println!("{}: FAILED at step {} of {} ({counts})\n{failure}", report.name, report.run, report.steps)
        }
    }
}

/// `path` itself when a file, else every `*.session` below it in name order.
fn collect_sessions(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if !path.is_dir() {
        std::fs::metadata(path)?;
        out.push(path.to_owned());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            collect_sessions(&entry, out)?;
        } else if entry.extension().is_some_and(|e| e == "session") {
            out.push(entry);
        }
    }
    Ok(())
}
