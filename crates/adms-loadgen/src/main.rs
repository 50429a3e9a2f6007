//! `adms-loadgen`: the benchmarks behind BENCHMARKS.md.
//!
//! Every scenario runs the real release `adms-bridge` binary as a separate process on loopback,
//! with a fresh SQLite file (WAL, `synchronous=FULL`), and drives it from keep-alive HTTP/1.1
//! connections that write requests byte for byte as firmware does. Each figure is printed beside
//! its yardstick measured in the same run:
//!
//! - `ingest`: ATTLOG uploads of N lines from C connections (one device each) → punches/s
//!   acknowledged, and rows found in the database afterwards vs rows sent; with `--table rtlog`,
//!   the same from registered access controllers uploading `rtlog` events → events/s;
//! - `limit`: the same rows written straight into the same schema through `adms-store`, one
//!   128-row transaction at a time, no HTTP → punches/s;
//! - `floor`: the writer's statement for one punch from each of C devices, committed by SQLite
//!   alone in one thread (no sqlx, no async, no HTTP) → punches/s, the ceiling of 1-line ingest;
//! - `poll`: `GET /iclock/getrequest` from C connections cycling over D device SNs → req/s;
//! - `trivial`: the same GET against an axum handler that only answers `OK` → req/s;
//! - `console`: the operator console's pages on a SQLite database seeded in bulk (default
//!   10,000 devices and 10 million punches) → p50 and max per page;
//! - `fleet`: N simulated terminals (adms-sim's device model) keeping a heartbeat, punching,
//!   with a connection per request (or kept alive) → latency per request kind, the server's
//!   peak memory, both processes' CPU, every acknowledged punch checked through the API;
//! - `ab`: the same ingest against two server binaries, alternating, several rounds → each
//!   binary's median and their ratio (a 2-core VM moves ±20 % between runs; alternating
//!   rounds compare under the same conditions).
//!
//! Build and run with `cargo build --release -p adms-server -p adms-loadgen &&
//! target/release/adms-loadgen all`.

mod access;
mod console;
mod fleet;
mod http;
mod scenarios;
mod webhooks;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Benchmarks for adms-bridge (see BENCHMARKS.md)")]
struct Cli {
    /// The adms-bridge binary to measure (default: beside this one).
    #[arg(long, global = true)]
    server_bin: Option<PathBuf>,
    /// Measured seconds per scenario (after a warm-up of a fifth of that).
    #[arg(long, global = true, default_value_t = 10)]
    seconds: u64,
    /// Concurrent connections.
    #[arg(long, global = true, default_value_t = 16)]
    conns: usize,
    /// The database engine of the server (a fresh database per scenario).
    #[arg(long, global = true, value_enum, default_value_t = scenarios::Engine::Sqlite)]
    engine: scenarios::Engine,
    /// The `Stamp` of ATTLOG uploads: `fixed` (9999) or `changing` (new on every upload, as
    /// real terminals send).
    #[arg(long, global = true, value_enum, default_value_t = scenarios::StampMode::Fixed)]
    stamp: scenarios::StampMode,
    /// What `ingest` and `ab` devices upload: ATTLOG punches from attendance terminals, or
    /// `rtlog` events from access controllers.
    #[arg(long, global = true, value_enum, default_value_t = scenarios::UploadTable::Attlog)]
    table: scenarios::UploadTable,
    #[command(subcommand)]
    command: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// End-to-end ATTLOG ingest for each upload size.
    Ingest {
        #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 128])]
        lines: Vec<usize>,
        /// Webhook endpoints receiving every punch meanwhile (0 = webhooks off).
        #[arg(long, default_value_t = 0)]
        webhook_endpoints: usize,
    },
    /// Direct inserts through adms-store in transactions of this many rows.
    Limit {
        #[arg(long, default_value_t = 128)]
        rows_per_tx: usize,
        /// Concurrent writers (devices); more than one lets group commit merge batches.
        #[arg(long, default_value_t = 1)]
        writers: usize,
    },
    /// SQLite alone, in one thread, committing one punch per device (`--conns` devices) per
    /// transaction: the ceiling of 1-line ingest on this machine.
    Floor,
    /// Heartbeat polls over many device SNs.
    Poll {
        #[arg(long, default_value_t = 1000)]
        devices: usize,
    },
    /// A trivial axum server answering `OK`, driven like `poll`.
    Trivial,
    /// Webhook deliveries/s from a backlog (1 and 8 endpoints) and end-to-end latency.
    Webhooks {
        #[arg(long, default_value_t = 20_000)]
        punches: usize,
        /// Punches/s for the latency run.
        #[arg(long, default_value_t = 200)]
        rate: u64,
        /// Deliver from this many `worker` replicas beside a `device,api` one (PostgreSQL),
        /// instead of one process with every role; the latency run is skipped.
        #[arg(long, default_value_t = 0)]
        workers: usize,
    },
    /// Everything above but webhooks, printed as the BENCHMARKS.md table.
    All,
    /// Ingest and polls through HAProxy (`deploy/haproxy.cfg`, Debian's haproxy) in front of 1,
    /// 2 and 3 replicas and a worker on PostgreSQL, and straight at one replica (`--engine postgres`).
    Proxy {
        #[arg(long, value_delimiter = ',', default_values_t = [1, 128])]
        lines: Vec<usize>,
        /// The proxy's configuration (default: the repository's deploy/haproxy.cfg).
        #[arg(long)]
        proxy_config: Option<PathBuf>,
    },
    /// ATTLOG ingest against a baseline binary and this one (`--server-bin`), alternating.
    Ab {
        /// The binary to compare against, e.g. a copy of `adms-bridge` built from the previous commit.
        #[arg(long)]
        baseline_bin: PathBuf,
        #[arg(long, default_value_t = 1)]
        lines: usize,
        /// Rounds; each runs the baseline, then the candidate.
        #[arg(long, default_value_t = 4)]
        rounds: usize,
    },
    /// The operator console's pages on a seeded SQLite database: p50 and max per page.
    Console {
        #[arg(long, default_value_t = 10_000)]
        devices: u64,
        #[arg(long, default_value_t = 10_000_000)]
        punches: u64,
        /// Roster size (the people page); punches use PINs 1..=this.
        #[arg(long, default_value_t = 5_000)]
        employees: u64,
        /// Timed requests per page (after one warm-up).
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
    /// Access control: persons in levels provisioned onto controllers (time to plan, lines and
    /// bytes queued, time for the controllers to receive and acknowledge them).
    Provisioning {
        #[arg(long, default_value_t = 10_000)]
        persons: usize,
        #[arg(long, default_value_t = 20)]
        levels: usize,
        #[arg(long, default_value_t = 50)]
        controllers: usize,
    },
    /// A fleet of simulated terminals (adms-sim's) keeping a heartbeat: latency per request
    /// kind, the server's memory, both processes' CPU, every acknowledged punch checked.
    Fleet {
        #[arg(long, default_value_t = 10_000)]
        devices: usize,
        /// Seconds over which the terminals start (every first contact writes: a server takes a
        /// fleet that arrives at once at its write rate).
        #[arg(long, default_value_t = 60)]
        ramp_secs: u64,
        /// Heartbeat (`getrequest`) interval of every terminal.
        #[arg(long, default_value_t = 10)]
        poll_every_secs: u64,
        /// Mean time between two punches (or access events) of one terminal.
        #[arg(long, default_value_t = 3600)]
        punch_every_secs: u64,
        /// Share of the devices that are Security PUSH access panels.
        #[arg(long, default_value_t = 0.2)]
        access_share: f64,
        /// Share of the attendance terminals that go offline once and dump a backlog.
        #[arg(long, default_value_t = 0.0)]
        offline_share: f64,
        /// Loopback source addresses (127.0.0.1 to 127.0.0.N) the connections come from.
        #[arg(long, default_value_t = 32)]
        sources: u8,
        /// One kept-alive connection per terminal instead of one per request (each costs the
        /// server a file descriptor for the whole run).
        #[arg(long)]
        keep_alive: bool,
    },
    /// (internal) serve the trivial handler and print `listening on http://ADDR`.
    #[command(hide = true)]
    TrivialServer,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Off unless asked for (LOADGEN_LOG=adms_store=debug shows group-commit sizes).
    if let Ok(filter) = std::env::var("LOADGEN_LOG") {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Scenario::TrivialServer = cli.command {
        return runtime.block_on(scenarios::serve_trivial());
    }
    let server_bin = match cli.server_bin {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("adms-bridge"),
    };
    anyhow::ensure!(server_bin.is_file(), "no server binary at {} (build adms-server first)", server_bin.display());
    let run = scenarios::Run {
        server_bin,
        duration: Duration::from_secs(cli.seconds),
        conns: cli.conns,
        engine: cli.engine,
        stamp: cli.stamp,
        table: cli.table,
    };
    runtime.block_on(async move {
        match cli.command {
            Scenario::Ingest { lines, webhook_endpoints } => {
                for n in lines {
                    let figure = run.ingest_with_endpoints(n, webhook_endpoints).await;
                    println!("{}", figure.with_context(|| format!("ingest {n} lines"))?);
                }
            }
            Scenario::Limit { rows_per_tx, writers } => println!("{}", run.limit(rows_per_tx, writers).await?),
            Scenario::Floor => println!("{}", run.floor(run.conns).await?),
            Scenario::Poll { devices } => println!("{}", run.poll(devices).await?),
            Scenario::Trivial => println!("{}", run.trivial().await?),
            Scenario::Webhooks { punches, rate, workers } => {
                let by = if workers == 0 { String::new() } else { format!(", {workers} worker replica(s)") };
                for endpoints in [1, 8] {
                    let (rate, requests) = run.webhook_throughput(endpoints, punches, workers).await?;
                    println!("webhooks, {punches} punches x {endpoints} endpoint(s){by}: {rate:.0} deliveries/s ({requests} requests)");
                }
                if workers > 0 {
                    return anyhow::Ok(());
                }
                let (p50, p99, max, n) = run.webhook_latency(rate, run.duration.as_secs()).await?;
                println!("webhook latency at {rate} punches/s, device POST -> receiver: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms ({n} punches)");
            }
            Scenario::All => run.all().await?,
            Scenario::Provisioning { persons, levels, controllers } => {
                println!("{}", access::provisioning(&run, persons, levels, controllers).await?);
            }
            Scenario::Proxy { lines, proxy_config } => {
                let config = proxy_config
                    .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/haproxy.cfg"));
                for n in lines {
                    for (replicas, direct) in [(1, true), (1, false), (2, false), (3, false)] {
                        for figure in run.through_proxy(&config, replicas, n, direct).await? {
                            println!("{figure}");
                        }
                    }
                }
            }
            Scenario::Ab { baseline_bin, lines, rounds } => {
                anyhow::ensure!(baseline_bin.is_file(), "no baseline binary at {}", baseline_bin.display());
                anyhow::ensure!(rounds > 0, "--rounds must be at least 1");
                let baseline = scenarios::Run { server_bin: baseline_bin, ..run.clone() };
                let (mut before, mut after) = (Vec::new(), Vec::new());
                for round in 1..=rounds {
                    for (name, bench, rates) in [("baseline", &baseline, &mut before), ("candidate", &run, &mut after)] {
                        let figure = bench.ingest(lines).await.with_context(|| format!("{name}, round {round}"))?;
                        println!("round {round} {name:<9} {figure}");
                        rates.push(figure.rate);
                    }
                }
                let (before, after) = (median(&mut before), median(&mut after));
                println!(
                    "{lines}-line ingest, median of {rounds}: baseline {before:.0}, candidate {after:.0} {} ({:+.1} %)",
                    run.table.unit(),
                    (after / before - 1.0) * 100.0
                );
            }
            Scenario::Console { devices, punches, employees, repeat } => {
                let bench = console::ConsoleBench { devices, punches, employees, repeat };
                for figure in console::run(&run.server_bin, bench).await? {
                    println!("{figure}");
                }
            }
            Scenario::Fleet {
                devices,
                ramp_secs,
                poll_every_secs,
                punch_every_secs,
                access_share,
                offline_share,
                sources,
                keep_alive,
            } => {
                let bench = fleet::FleetBench {
                    devices,
                    // `--seconds` is the whole run here, ramp included.
                    duration: run.duration,
                    ramp: Duration::from_secs(ramp_secs),
                    poll_every: Duration::from_secs(poll_every_secs),
                    punch_every: Duration::from_secs(punch_every_secs),
                    access_share,
                    offline_share,
                    sources,
                    keep_alive,
                };
                println!("{}", fleet::fleet(&run, bench).await?);
            }
            Scenario::TrivialServer => unreachable!("handled above"),
        }
        anyhow::Ok(())
    })
}

/// The median of a non-empty list (the mean of the middle two for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) { (values[mid - 1] + values[mid]) / 2.0 } else { values[mid] }
}
