//! The scenarios: each starts what it measures, warms up, measures for a fixed time, and checks
//! what it measured (every reply exact, every acknowledged row in the database).

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adms_store::{Approval, NewDevice, NewPunch, PunchBatch, Store, StoreOptions};
use anyhow::{Context, bail, ensure};
use std::str::FromStr;

use sqlx::ConnectOptions;

use crate::http::{self, Connection};
use adms_sim::wire;

/// Shared settings of one benchmark run.
#[derive(Debug, Clone)]
pub struct Run {
    pub server_bin: PathBuf,
    pub duration: Duration,
    pub conns: usize,
    /// The database engine the server (and `limit`) run on.
    pub engine: Engine,
    /// The `Stamp` ATTLOG uploads carry.
    pub stamp: StampMode,
    /// What the devices of `ingest` and `ab` upload.
    pub table: UploadTable,
}

/// What the devices of an ingest scenario are and upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UploadTable {
    /// Attendance terminals (push 2.4.1) uploading ATTLOG punches.
    Attlog,
    /// Security PUSH access controllers, registered as panels register, uploading `rtlog`
    /// access events (one event per line, like a punch).
    Rtlog,
}

impl UploadTable {
    pub fn unit(self) -> &'static str {
        match self {
            UploadTable::Attlog => "punches/s",
            UploadTable::Rtlog => "events/s",
        }
    }
}

/// The database engine of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// A fresh SQLite file per scenario.
    Sqlite,
    /// A fresh PostgreSQL database per scenario, on the server `ADMS_TEST_POSTGRES_URL` names
    /// (default `postgres://postgres@127.0.0.1:5432/postgres`), default settings.
    Postgres,
}

/// What `Stamp` ATTLOG uploads carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StampMode {
    /// `Stamp=9999` on every upload (the server has nothing to record).
    Fixed,
    /// A new stamp on every upload, as real terminals send (the server records it with the punches).
    Changing,
}

/// The database of one scenario.
pub(crate) struct BenchDatabase {
    url: String,
    /// The master key a PostgreSQL server needs (a SQLite one generates its own file).
    secret_key: Option<String>,
    _postgres: Option<adms_store::testing::FreshDatabase>,
}

impl BenchDatabase {
    /// A fresh database of `engine`; a SQLite one is `dir/name`.
    pub(crate) async fn create(engine: Engine, dir: &Path, name: &str) -> anyhow::Result<BenchDatabase> {
        Ok(match engine {
            Engine::Sqlite => BenchDatabase {
                url: format!("sqlite://{}", dir.join(name).display()),
                secret_key: None,
                _postgres: None,
            },
            Engine::Postgres => {
                let database = adms_store::testing::FreshDatabase::create().await;
                BenchDatabase {
                    url: database.url().to_owned(),
                    secret_key: Some(adms_vault::SecretKey::generate().to_base64()),
                    _postgres: Some(database),
                }
            }
        })
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The rows stored in `table` (punches or access events).
    async fn count_rows(&self, table: UploadTable) -> anyhow::Result<u64> {
        let sql = match table {
            UploadTable::Attlog => "SELECT COUNT(*) FROM punches",
            UploadTable::Rtlog => "SELECT COUNT(*) FROM access_events",
        };
        let n: i64 = if let Some(path) = self.url.strip_prefix("sqlite://") {
            let mut conn = sqlx::sqlite::SqliteConnectOptions::new().filename(path).read_only(true).connect().await?;
            sqlx::query_scalar(sql).fetch_one(&mut conn).await?
        } else {
            let mut conn = sqlx::postgres::PgConnectOptions::from_str(&self.url)?.connect().await?;
            sqlx::query_scalar(sql).fetch_one(&mut conn).await?
        };
        Ok(u64::try_from(n)?)
    }
}

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    /// Punches/s or requests/s, over the measured window.
    pub rate: f64,
    pub unit: &'static str,
    /// For ingest: rows acknowledged to devices over the whole run, and rows found afterwards.
    pub acknowledged: Option<u64>,
    pub stored: Option<u64>,
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<44} {:>10.0} {}", self.name, self.rate, self.unit)?;
        if let (Some(sent), Some(stored)) = (self.acknowledged, self.stored) {
            write!(f, "   (acknowledged {sent}, stored {stored})")?;
        }
        Ok(())
    }
}

/// What every connection task reports.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Units (punches or requests) completed inside the measured window.
    measured: u64,
    /// Units completed over the whole run, warm-up included.
    total: u64,
}

impl Run {
    fn warm_up(&self) -> Duration {
        self.duration / 5
    }

    /// ATTLOG uploads of `lines` lines from `conns` devices, one keep-alive connection each.
    pub async fn ingest(&self, lines: usize) -> anyhow::Result<Figure> {
        self.ingest_with_endpoints(lines, 0).await
    }

    /// Ingest while `endpoints` webhook endpoints (a receiver in this process answering 200)
    /// receive every punch: the outbox rows are written in the ingest transaction and the
    /// deliveries are sent meanwhile, on the same two cores.
    pub async fn ingest_with_endpoints(&self, lines: usize, endpoints: usize) -> anyhow::Result<Figure> {
        let dir = tempfile::tempdir()?;
        let database = BenchDatabase::create(self.engine, dir.path(), "bench.db").await?;
        if endpoints > 0 {
            crate::webhooks::prepare_receiver_and_database(&database, endpoints).await?;
        }
        let server = ServerProcess::start(&self.server_bin, &database)?;
        let tally = self.drive_ingest(&server.addr, lines).await?;
        server.stop()?;
        let engine = match self.engine {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
        };
        let stamp = match self.stamp {
            StampMode::Fixed => "",
            StampMode::Changing => ", new stamps",
        };
        let what = match self.table {
            UploadTable::Attlog => "ingest",
            UploadTable::Rtlog => "rtlog ingest",
        };
        let name = if endpoints == 0 {
            format!("{what} ({engine}), {lines}-line uploads{stamp}, {} conns", self.conns)
        } else {
            format!(
                "{what} ({engine}) + {endpoints} webhook endpoint(s), {lines}-line uploads{stamp}, {} conns",
                self.conns
            )
        };
        self.rows_figure(name, tally, &database, self.table).await
    }

    /// `conns` devices uploading `lines`-line ATTLOG (or `rtlog`) bodies to `addr` for the
    /// run's duration; every reply checked.
    async fn drive_ingest(&self, addr: &str, lines: usize) -> anyhow::Result<Tally> {
        let addr = Arc::new(addr.to_owned());
        let (stamp, table) = (self.stamp, self.table);
        let clock = Clock::new(self.warm_up(), self.duration);
        let mut tasks = Vec::new();
        for device in 0..self.conns {
            let addr = Arc::clone(&addr);
            tasks.push(tokio::spawn(async move {
                let sn = format!("BENCH{device:04}");
                let mut conn = Connection::open(&addr).await?;
                let (fixed_path, expected) = match table {
                    UploadTable::Attlog => {
                        attendance_handshake(&mut conn, &addr, &sn).await?;
                        (format!("/iclock/cdata?SN={sn}&table=ATTLOG&Stamp=9999"), format!("OK: {lines}"))
                    }
                    UploadTable::Rtlog => {
                        register_access_controller(&mut conn, &addr, &sn).await?;
                        (format!("/iclock/cdata?SN={sn}&table=rtlog"), "OK".to_owned())
                    }
                };
                let mut request = Vec::new();
                let mut path = fixed_path.clone();
                let mut body = Vec::with_capacity(lines * 110);
                let mut next_punch = 0u64;
                let mut tally = Tally::default();
                while !clock.finished() {
                    body.clear();
                    for _ in 0..lines {
                        match table {
                            UploadTable::Attlog => attlog_line(&mut body, next_punch),
                            UploadTable::Rtlog => rtlog_line(&mut body, next_punch),
                        }
                        next_punch += 1;
                    }
                    if stamp == StampMode::Changing && table == UploadTable::Attlog {
                        // What the terminal's log position would say: new with every upload.
                        path.clear();
                        path.push_str(&format!("/iclock/cdata?SN={sn}&table=ATTLOG&Stamp={}", 100_000 + next_punch));
                    }
                    http::post(&mut request, &addr, &path, &body);
                    let r = conn.send(&request).await?;
                    ensure!(
                        r.status == 200 && r.body == expected.as_bytes(),
                        "device {sn} got {} {:?}",
                        r.status,
                        String::from_utf8_lossy(r.body)
                    );
                    tally.total += lines as u64;
                    if clock.measuring() {
                        tally.measured += lines as u64;
                    }
                }
                Ok(tally)
            }));
        }
        join(tasks).await
    }

    /// Ingest (`lines`-line uploads) and polls through HAProxy with `deploy/haproxy.cfg` in
    /// front of `replicas` (1 to 3) `device,api` replicas and a `worker` on one fresh
    /// PostgreSQL database, as docker-compose.yml deploys them (a third replica is a third
    /// `server` line added to a copy of the file); with `direct`, the same load straight at the
    /// first replica (the proxy's own cost).
    pub async fn through_proxy(
        &self,
        proxy_config: &Path,
        replicas: usize,
        lines: usize,
        direct: bool,
    ) -> anyhow::Result<Vec<Figure>> {
        ensure!(self.engine == Engine::Postgres, "replicas share a PostgreSQL database: use --engine postgres");
        ensure!((1..=3).contains(&replicas), "1 to 3 replicas");
        let dir = tempfile::tempdir()?;
        let database = BenchDatabase::create(self.engine, dir.path(), "bench.db").await?;
        let front = [("ADMS_ROLE", "device,api"), ("ADMS_TRUSTED_PROXIES", "127.0.0.1"), ("ADMS_DRAIN_SECS", "0")];
        let mut servers = Vec::new();
        for _ in 0..replicas {
            servers.push(ServerProcess::start_with(&self.server_bin, &database, &front)?);
        }
        let worker = ServerProcess::start_with(
            &self.server_bin,
            &database,
            &[("ADMS_ROLE", "worker"), ("ADMS_DRAIN_SECS", "0")],
        )?;
        // The file names two servers; fewer replicas fill both lines, a third gets a line of its own.
        let bridges: Vec<String> = (0..replicas.max(2)).map(|i| servers[i % replicas].addr.clone()).collect();
        let config = if replicas > 2 {
            let mut text = std::fs::read_to_string(proxy_config).context("the proxy's configuration")?;
            text.push_str("    server bridge3 \"${BRIDGE_3}\" check\n");
            let copy = dir.path().join("haproxy-3.cfg");
            std::fs::write(&copy, text)?;
            copy
        } else {
            proxy_config.to_owned()
        };
        let proxy_addr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?.to_string()
        };
        let mut proxy = Command::new("haproxy");
        proxy.args(["-db", "-f"]).arg(&config).env("PROXY_BIND", &proxy_addr);
        for (i, bridge) in bridges.iter().enumerate() {
            proxy.env(format!("BRIDGE_{}", i + 1), bridge);
        }
        let mut proxy = proxy.stdout(Stdio::null()).spawn().context("haproxy (apt install haproxy)")?;
        let target = if direct { servers[0].addr.clone() } else { proxy_addr.clone() };
        // Until the proxy's health checks find the replicas ready.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match Connection::open(&target).await {
                Ok(mut conn) => {
                    let mut request = Vec::new();
                    http::get(&mut request, &target, "/readyz");
                    conn.send(&request).await.map(|r| r.status == 200).unwrap_or(false)
                }
                Err(_) => false,
            };
            if ready {
                break;
            }
            ensure!(Instant::now() < deadline, "the proxy found no ready replica within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let via = if direct {
            "straight at one replica".to_owned()
        } else {
            format!("through HAProxy, {replicas} replica(s)")
        };
        let tally = self.drive_ingest(&target, lines).await?;
        let ingest = self
            .punches_figure(
                format!("ingest (PostgreSQL) {via}, {lines}-line uploads, {} conns", self.conns),
                tally,
                &database,
            )
            .await?;
        let polls = self.drive_polls(&target, 1000, &format!("getrequest {via}, 1,000 SNs")).await?;
        let _ = proxy.kill();
        let _ = proxy.wait();
        for server in servers {
            server.stop()?;
        }
        worker.stop()?;
        Ok(vec![ingest, polls])
    }

    /// The same rows straight into the same schema through adms-store, no HTTP: `writers` tasks
    /// (one device each) each writing one `rows_per_tx`-row batch at a time. With one writer
    /// every batch is its own transaction; with more, the store's group commit may merge them.
    pub async fn limit(&self, rows_per_tx: usize, writers: usize) -> anyhow::Result<Figure> {
        let dir = tempfile::tempdir()?;
        let database = BenchDatabase::create(self.engine, dir.path(), "limit.db").await?;
        let store = Store::open(database.url(), StoreOptions::default()).await?;
        let clock = Clock::new(self.warm_up(), self.duration);
        let mut tasks = Vec::new();
        for w in 0..writers {
            let sn = format!("LIMIT{w:04}");
            let device = store
                .register_device(&NewDevice {
                    sn: &sn,
                    protocol_family: "attendance",
                    approval: Some(Approval::Approved),
                    ..NewDevice::default()
                })
                .await?;
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut next_punch = 0u64;
                let mut line = Vec::new();
                while !clock.finished() {
                    let mut batch = PunchBatch::new(device.id);
                    for _ in 0..rows_per_tx {
                        line.clear();
                        attlog_line(&mut line, next_punch);
                        batch.punches.push(new_punch(&line, next_punch));
                        next_punch += 1;
                    }
                    store.punch_writer().write(batch).await?;
                    tally.total += rows_per_tx as u64;
                    if clock.measuring() {
                        tally.measured += rows_per_tx as u64;
                    }
                }
                Ok(tally)
            }));
        }
        let tally = join(tasks).await?;
        store.close().await;
        let name = format!("limit: adms-store, {rows_per_tx}-row batches, {writers} writer(s)");
        self.punches_figure(name, tally, &database).await
    }

    /// What SQLite alone commits in groups shaped like 1-line uploads from `devices` devices: one
    /// punch per device per transaction, the writer's own statements
    /// ([`adms_store::insert_new_punches`]) between `BEGIN IMMEDIATE` and `COMMIT`, on one
    /// connection driven from one thread (no sqlx, no async, no HTTP), `synchronous=FULL` and
    /// `temp_store=MEMORY` as the server's writer. Devices that each wait for their `OK` cannot
    /// put more than one line each into a commit, so this is the ceiling of 1-line ingest on
    /// this machine's disk.
    pub async fn floor(&self, devices: usize) -> anyhow::Result<Figure> {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("floor.db");
        // The schema and the devices exactly as the server makes them.
        let store = Store::open(&format!("sqlite://{}", db.display()), StoreOptions::default()).await?;
        let mut device_ids = Vec::new();
        for d in 0..devices {
            let sn = format!("FLOOR{d:04}");
            let new = NewDevice {
                sn: &sn,
                protocol_family: "attendance",
                approval: Some(Approval::Approved),
                ..NewDevice::default()
            };
            device_ids.push(store.register_device(&new).await?.id);
        }
        store.close().await;
        let clock = Clock::new(self.warm_up(), self.duration);
        let path = db.clone();
        let tally = tokio::task::spawn_blocking(move || commit_in_one_thread(&path, &device_ids, clock)).await??;
        let database = BenchDatabase::create(Engine::Sqlite, dir.path(), "floor.db").await?;
        self.punches_figure(format!("floor: SQLite alone, {devices} devices x 1 punch per commit"), tally, &database)
            .await
    }

    /// The punches/s figure of a run that acknowledged `tally` punches, after checking that the
    /// database at `db` holds exactly those (the run fails otherwise).
    async fn punches_figure(&self, name: String, tally: Tally, db: &BenchDatabase) -> anyhow::Result<Figure> {
        self.rows_figure(name, tally, db, UploadTable::Attlog).await
    }

    /// The rows/s figure of a run that acknowledged `tally` rows of `table`, after checking that
    /// the database at `db` holds exactly those (the run fails otherwise).
    async fn rows_figure(
        &self,
        name: String,
        tally: Tally,
        db: &BenchDatabase,
        table: UploadTable,
    ) -> anyhow::Result<Figure> {
        let stored = db.count_rows(table).await?;
        ensure!(stored == tally.total, "{name}: acknowledged {} rows but {stored} are stored", tally.total);
        Ok(Figure {
            name,
            rate: tally.measured as f64 / self.duration.as_secs_f64(),
            unit: table.unit(),
            acknowledged: Some(tally.total),
            stored: Some(stored),
        })
    }

    /// `GET /iclock/getrequest` from `conns` connections cycling over `devices` SNs.
    pub async fn poll(&self, devices: usize) -> anyhow::Result<Figure> {
        let dir = tempfile::tempdir()?;
        let database = BenchDatabase::create(self.engine, dir.path(), "bench.db").await?;
        let server = ServerProcess::start(&self.server_bin, &database)?;
        // First contact registers a device (one commit each); do it before measuring, as a
        // fleet that has been polling for a while would have.
        let mut conn = Connection::open(&server.addr).await?;
        let mut request = Vec::new();
        for device in 0..devices {
            http::get(&mut request, &server.addr, &format!("/iclock/getrequest?SN=POLL{device:05}"));
            let r = conn.send(&request).await?;
            ensure!(r.status == 200 && r.body == b"OK", "registration poll got {}", r.status);
        }
        let figure = self.drive_polls(&server.addr, devices, "getrequest, 1,000 SNs").await?;
        server.stop()?;
        Ok(figure)
    }

    /// The same polls against a handler that does nothing but answer `OK`.
    pub async fn trivial(&self) -> anyhow::Result<Figure> {
        let server = ServerProcess::spawn(Command::new(std::env::current_exe()?).arg("trivial-server"))?;
        let figure = self.drive_polls(&server.addr, 1000, "trivial axum handler").await?;
        server.stop()?;
        Ok(figure)
    }

    async fn drive_polls(&self, addr: &str, devices: usize, label: &str) -> anyhow::Result<Figure> {
        let addr: Arc<str> = Arc::from(addr);
        let clock = Clock::new(self.warm_up(), self.duration);
        let mut tasks = Vec::new();
        for c in 0..self.conns {
            let addr = Arc::clone(&addr);
            let conns = self.conns;
            tasks.push(tokio::spawn(async move {
                let requests: Vec<Vec<u8>> = (c..devices)
                    .step_by(conns)
                    .map(|device| {
                        let mut r = Vec::new();
                        http::get(&mut r, &addr, &format!("/iclock/getrequest?SN=POLL{device:05}"));
                        r
                    })
                    .collect();
                let mut conn = Connection::open(&addr).await?;
                let mut tally = Tally::default();
                for request in requests.iter().cycle() {
                    if clock.finished() {
                        break;
                    }
                    let r = conn.send(request).await?;
                    ensure!(r.status == 200 && r.body == b"OK", "poll got {}", r.status);
                    tally.total += 1;
                    if clock.measuring() {
                        tally.measured += 1;
                    }
                }
                Ok(tally)
            }));
        }
        let tally = join(tasks).await?;
        Ok(Figure {
            name: format!("{label}, {} conns", self.conns),
            rate: tally.measured as f64 / self.duration.as_secs_f64(),
            unit: "req/s",
            acknowledged: None,
            stored: None,
        })
    }

    /// Every scenario, then the table for BENCHMARKS.md.
    pub async fn all(&self) -> anyhow::Result<()> {
        let limit = self.limit(128, 1).await?;
        println!("{limit}");
        let floor = self.floor(self.conns).await?;
        println!("{floor}");
        let mut ingest = Vec::new();
        for lines in [1, 16, 128] {
            let figure = self.ingest(lines).await?;
            println!("{figure}");
            ingest.push(figure);
        }
        // Many terminals each sending a punch as it happens: every request a group of its own
        // unless the writer merges them.
        let many = Run { conns: MANY_DEVICES, ..self.clone() }.ingest(1).await?;
        println!("{many}");
        let poll = self.poll(1000).await?;
        println!("{poll}");
        let trivial = self.trivial().await?;
        println!("{trivial}");

        println!("\n| scenario | rate | vs yardstick | stored / acknowledged |\n|---|---:|---:|---:|");
        println!(
            "| {} | {:.0} {} | (yardstick) | {} / {} |",
            limit.name,
            limit.rate,
            limit.unit,
            stored(&limit),
            acked(&limit)
        );
        println!(
            "| {} | {:.0} {} | (ceiling of 1-line uploads) | {} / {} |",
            floor.name,
            floor.rate,
            floor.unit,
            stored(&floor),
            acked(&floor)
        );
        for (f, lines) in ingest.iter().zip([1, 16, 128]) {
            let of_floor =
                if lines == 1 { format!(", {:.0} % of floor", 100.0 * f.rate / floor.rate) } else { String::new() };
            println!(
                "| {} | {:.0} {} | {:.0} % of limit{of_floor} | {} / {} |",
                f.name,
                f.rate,
                f.unit,
                100.0 * f.rate / limit.rate,
                stored(f),
                acked(f)
            );
        }
        println!(
            "| {} | {:.0} {} | {:.0} % of limit | {} / {} |",
            many.name,
            many.rate,
            many.unit,
            100.0 * many.rate / limit.rate,
            stored(&many),
            acked(&many)
        );
        println!("| {} | {:.0} {} | (yardstick) | |", trivial.name, trivial.rate, trivial.unit);
        println!(
            "| {} | {:.0} {} | {:.0} % of trivial | |",
            poll.name,
            poll.rate,
            poll.unit,
            100.0 * poll.rate / trivial.rate
        );
        Ok(())
    }
}

/// Devices of the many-devices ingest scenario, one connection each.
const MANY_DEVICES: usize = 1_000;

fn stored(f: &Figure) -> u64 {
    f.stored.unwrap_or_default()
}

fn acked(f: &Figure) -> u64 {
    f.acknowledged.unwrap_or_default()
}

/// The warm-up and measured windows, shared by every task of a scenario.
#[derive(Debug, Clone, Copy)]
struct Clock {
    measure_from: Instant,
    end: Instant,
}

impl Clock {
    fn new(warm_up: Duration, duration: Duration) -> Clock {
        let measure_from = Instant::now() + warm_up;
        Clock { measure_from, end: measure_from + duration }
    }

    fn measuring(&self) -> bool {
        let now = Instant::now();
        now >= self.measure_from && now < self.end
    }

    fn finished(&self) -> bool {
        Instant::now() >= self.end
    }
}

async fn join(tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Tally>>>) -> anyhow::Result<Tally> {
    let mut sum = Tally::default();
    for task in tasks {
        let t = task.await??;
        sum.measured += t.measured;
        sum.total += t.total;
    }
    Ok(sum)
}

/// 2026-01-01 00:00:00: punch `n` of a device is at this instant plus `n` seconds, so every
/// line of a run is distinct (and stored) and the natural-key check does real work.
const BASE_EPOCH: i64 = 1_767_225_600;

/// The punch the server would build from `line` (punch `n`, zone UTC).
fn new_punch(line: &[u8], n: u64) -> NewPunch {
    let raw = String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(line)).into_owned();
    let mut fields = raw.split('\t');
    NewPunch {
        pin: fields.next().unwrap_or_default().to_owned(),
        local_time: fields.next().unwrap_or_default().to_owned(),
        state: "0".into(),
        verify: 1,
        work_code: "0".into(),
        extra: "0\t0".into(),
        time_zone: Some("UTC".into()),
        utc_time: Some(BASE_EPOCH + n as i64),
        mask_flag: None,
        temperature: None,
        raw_line: raw,
    }
}

/// Appends punch `n` as a 7-column ATTLOG line (adms-sim's, as its terminals write it); PINs
/// cycle over 1,000 employees.
pub(crate) fn attlog_line(out: &mut Vec<u8>, n: u64) {
    wire::write_attlog_line(out, (1 + n % 1000) as u32, BASE_EPOCH as u64 + n);
}

/// Appends event `n` as an `rtlog` line: a granted card swipe (event 0) on one of four doors,
/// PINs cycling over 1,000 persons, `index` the controller's log position.
pub(crate) fn rtlog_line(out: &mut Vec<u8>, n: u64) {
    let pin = (1 + n % 1000) as u32;
    let event = wire::RtlogEvent {
        unix: BASE_EPOCH as u64 + n,
        pin,
        card_no: 100_000 + pin,
        door: (1 + n % 4) as u8,
        event: 0,
        verify_type: 4,
        index: n + 1,
    };
    wire::write_rtlog_line(out, &event);
}

/// The push 2.4.1 handshake of an attendance terminal.
async fn attendance_handshake(conn: &mut Connection, addr: &str, sn: &str) -> anyhow::Result<()> {
    let mut request = Vec::new();
    http::get(&mut request, addr, &format!("/iclock/cdata?SN={sn}&options=all&pushver=2.4.1"));
    let r = conn.send(&request).await?;
    ensure!(r.status == 200, "handshake answered {}", r.status);
    Ok(())
}

/// A Security PUSH controller's first contact (protocol.md §3.13): the unregistered handshake,
/// its registry, and the handshake that finds it registered.
async fn register_access_controller(conn: &mut Connection, addr: &str, sn: &str) -> anyhow::Result<()> {
    let mut request = Vec::new();
    let handshake = wire::access_handshake_path(sn);
    http::get(&mut request, addr, &handshake);
    let r = conn.send(&request).await?;
    ensure!(r.status == 200, "handshake answered {}", r.status);
    let registry = wire::access_registry_body([0, 1], [0, 1]);
    http::post(&mut request, addr, &format!("/iclock/registry?SN={sn}"), registry.as_bytes());
    let r = conn.send(&request).await?;
    ensure!(r.status == 200 && r.body.starts_with(b"RegistryCode="), "registry answered {}", r.status);
    http::get(&mut request, addr, &handshake);
    let r = conn.send(&request).await?;
    ensure!(r.status == 200 && r.body.starts_with(b"registry=ok"), "registered handshake answered {}", r.status);
    Ok(())
}

/// The loop of [`Run::floor`]: one transaction per group of one punch per device.
fn commit_in_one_thread(db: &Path, device_ids: &[i64], clock: Clock) -> anyhow::Result<Tally> {
    let conn = rusqlite::Connection::open(db)?;
    // As the server's writer connection (`Store::open`).
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "full")?;
    conn.pragma_update(None, "foreign_keys", "on")?;
    conn.pragma_update(None, "temp_store", "memory")?;
    let mut tally = Tally::default();
    let mut line = Vec::new();
    let mut next_punch = 0u64;
    while !clock.finished() {
        let batches: Vec<PunchBatch> = device_ids
            .iter()
            .map(|&device_id| {
                line.clear();
                attlog_line(&mut line, next_punch);
                let mut batch = PunchBatch::new(device_id);
                batch.punches.push(new_punch(&line, next_punch));
                next_punch += 1;
                batch
            })
            .collect();
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let inserted = adms_store::insert_new_punches(&conn, &batches.iter().collect::<Vec<_>>())?.unwrap_or(0);
        conn.execute_batch("COMMIT")?;
        ensure!(inserted == batches.len(), "inserted {inserted} of {} punches", batches.len());
        tally.total += inserted as u64;
        if clock.measuring() {
            tally.measured += inserted as u64;
        }
    }
    Ok(tally)
}

/// A server process on 127.0.0.1:0; killed if dropped without `stop`.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) addr: String,
}

impl ServerProcess {
    pub(crate) fn start(bin: &Path, database: &BenchDatabase) -> anyhow::Result<ServerProcess> {
        ServerProcess::start_with(bin, database, &[])
    }

    /// [`ServerProcess::start`] with more settings (`extra`, as environment variables).
    pub(crate) fn start_with(
        bin: &Path,
        database: &BenchDatabase,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<ServerProcess> {
        let command = |limit_registrations: bool| {
            let mut cmd = Command::new(bin);
            if let Some(key) = &database.secret_key {
                cmd.env("ADMS_SECRET_KEY", key);
            }
            cmd.args(["serve", "--listen", "127.0.0.1:0"])
                .env("ADMS_DATABASE_URL", database.url())
                .env("ADMS_ADMIN_USER", "bench")
                .env("ADMS_ADMIN_PASSWORD", "bench-password")
                .env("ADMS_TIME_ZONE", "UTC")
                .env("ADMS_UNKNOWN_DEVICES", "auto")
                // The webhook scenarios' receiver listens on loopback, which the address policy
                // refuses unless listed.
                .env("ADMS_WEBHOOK_ALLOW_LIST", "127.0.0.1/32")
                .env("RUST_LOG", std::env::var("LOADGEN_SERVER_LOG").unwrap_or_else(|_| "error".into()))
                .env_remove("ADMS_CONFIG");
            if limit_registrations {
                // Every simulated terminal registers from loopback at once.
                cmd.env("ADMS_DEVICE_REGISTRATIONS_PER_MINUTE", "1000000");
            }
            // Last, so a scenario's settings win over the defaults above.
            for (key, value) in extra {
                cmd.env(key, value);
            }
            cmd
        };
        // A baseline binary from before the registration limit refuses the unknown key: it has
        // no limit, so it runs without it.
        ServerProcess::spawn(&mut command(true)).or_else(|_| ServerProcess::spawn(&mut command(false)))
    }

    /// The server's process id (its memory and CPU are read from `/proc`).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn spawn(cmd: &mut Command) -> anyhow::Result<ServerProcess> {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().context("spawn server")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("listening on http://") else {
            let _ = child.kill();
            bail!("server printed {line:?} instead of its address");
        };
        Ok(ServerProcess { addr: addr.to_owned(), child })
    }

    /// SIGTERM, and wait for a clean exit. A server that drains before it stops (`/readyz` 503
    /// for `drain_secs`) gets a second SIGTERM, which ends the drain.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut again = Some(Instant::now() + Duration::from_millis(300));
        while self.child.try_wait()?.is_none() {
            if again.is_some_and(|at| Instant::now() >= at) {
                Command::new("kill").args(["-TERM", &pid]).status()?;
                again = None;
            }
            ensure!(Instant::now() < deadline, "server did not stop within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The yardstick for polls: axum answering `OK` to anything, nothing else.
pub async fn serve_trivial() -> anyhow::Result<()> {
    let app = axum::Router::new().fallback(|| async { "OK" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on http://{}", listener.local_addr()?);
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
        term.recv().await;
    };
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punch_lines_are_distinct_valid_times() {
        let mut out = Vec::new();
        attlog_line(&mut out, 0);
        assert_eq!(out, b"1\t2026-01-01 00:00:00\t0\t1\t0\t0\t0\n");
        out.clear();
        attlog_line(&mut out, 86_400 * 59 + 3661);
        assert_eq!(out, b"262\t2026-03-01 01:01:01\t0\t1\t0\t0\t0\n");
    }

    #[test]
    fn rtlog_lines_name_a_door_a_card_and_the_log_position() {
        let mut out = Vec::new();
        rtlog_line(&mut out, 5);
        assert_eq!(
            out,
            b"time=2026-01-01 00:00:05\tpin=6\tcardno=100006\teventaddr=2\tevent=0\tinoutstatus=0\tverifytype=4\tindex=6\n"
        );
    }
}
