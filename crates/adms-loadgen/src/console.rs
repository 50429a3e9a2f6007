//! `console`: how fast the operator console's pages answer on a large SQLite database (issue 18
//! asks for 100 ms at 10,000 devices and 10 million punches).
//!
//! The database is made by the server itself (migrations, the admin account), then filled in
//! bulk with SQL in one transaction (no HTTP: ten million uploads would take hours and measure
//! ingest, not the console): devices, punches spread over the last 30 days up to now (so
//! "today" and "the last hour" have punches), and a roster. The punch rows are what the writer
//! stores (per-device gapless `seq`, `last_seq` set to match). Then the server runs on it, the
//! bench logs in through the login form as a browser does, and times each page: a warm-up
//! request, then `--repeat` timed ones, printing p50 and max.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::scenarios::{BenchDatabase, Engine, ServerProcess};

/// What to seed and how often to ask.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleBench {
    pub devices: u64,
    pub punches: u64,
    pub employees: u64,
    pub repeat: usize,
}

/// One page's timings.
#[derive(Debug)]
pub struct PageFigure {
    pub name: &'static str,
    pub path: String,
    pub p50: Duration,
    pub max: Duration,
    pub bytes: usize,
}

impl std::fmt::Display for PageFigure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let flag = if self.p50 > Duration::from_millis(100) { "  OVER 100 ms" } else { "" };
        write!(
            f,
            "{:<18} p50 {:>8.1} ms  max {:>8.1} ms  {:>7} bytes  {}{flag}",
            self.name,
            self.p50.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3,
            self.bytes,
            self.path
        )
    }
}

/// Seconds of punches the seed spreads over, ending now.
const SPAN_SECS: i64 = 30 * 86_400;

/// Fills the server-made SQLite database at `file` (module docs).
fn seed(file: &Path, bench: &ConsoleBench) -> anyhow::Result<()> {
    let mut conn = rusqlite::Connection::open(file)?;
    // A bench database: no durability needed while seeding.
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;")?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let start = now - SPAN_SECS;
    let tx = conn.transaction()?;
    let first_device: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM devices", [], |r| r.get(0))?;
    let devices = i64::try_from(bench.devices)?;
    let punches = i64::try_from(bench.punches)?;
    tx.execute(
        "INSERT INTO devices (sn, alias, approval, model, firmware, push_version, ip_address, time_zone, user_count, \
                              fp_count, face_count, first_seen_at, last_activity_at, presence, presence_changed_at) \
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1) \
         SELECT printf('BENCH%06d', i), printf('Door %d', i), CASE WHEN i % 100 = 99 THEN 'pending' ELSE 'approved' END, \
                'SpeedFace-V5L', 'ZAM180-NF-Ver1.0.5', '2.4.1', printf('10.%d.%d.%d', i / 65536 % 256, i / 256 % 256, i % 256), \
                'UTC', 500, 900, 450, ?2, ?3, CASE WHEN i % 10 = 0 THEN 'offline' ELSE 'online' END, ?3 \
         FROM n",
        rusqlite::params![devices, start * 1_000_000, now * 1_000_000],
    )?;
    // The trigger that advances `last_seq` row by row is set aside while seeding (its
    // statement kept and run again after): `last_seq` is set from the same arithmetic below.
    let trigger: String = tx.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'punches_advance_last_seq'",
        [],
        |r| r.get(0),
    )?;
    tx.execute_batch("DROP TRIGGER punches_advance_last_seq")?;
    // Punch i: device i mod D, its seq i div D + 1, time spread evenly up to now.
    tx.execute(
        "INSERT INTO punches (device_id, seq, pin, local_time, state, verify, work_code, extra, time_zone, utc_time, \
                              raw_line, received_at) \
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1), \
              t(i, at, pin) AS (SELECT i, ?4 + i * ?5 / ?1, CAST((i * 7919) % ?6 + 1 AS TEXT) FROM n) \
         SELECT ?3 + i % ?2, i / ?2 + 1, pin, strftime('%Y-%m-%d %H:%M:%S', at, 'unixepoch'), \
                CAST(i % 2 AS TEXT), CASE WHEN i % 3 = 0 THEN 15 ELSE 1 END, '0', '', 'UTC', at, \
                pin || char(9) || strftime('%Y-%m-%d %H:%M:%S', at, 'unixepoch') || char(9) || (i % 2) || char(9) || '1', \
                (at + 2) * 1000000 \
         FROM t",
        rusqlite::params![punches, devices, first_device, start, SPAN_SECS, i64::try_from(bench.employees.max(1))?],
    )?;
    tx.execute(
        "UPDATE devices SET last_seq = (?1 - (id - ?3) + ?2 - 1) / ?2 WHERE id >= ?3",
        rusqlite::params![punches, devices, first_device],
    )?;
    // The figures the punch writer keeps in each device row (migration 0021): the newest
    // punch's (seq `last_seq`, index i = offset + D × (last_seq − 1), received 2 s after its
    // time) and the first `seq` of today (UTC, the server's zone here), from today's punches.
    tx.execute(
        "UPDATE devices SET newest_punch_skew = -2, \
                newest_punch_local_time = strftime('%Y-%m-%d %H:%M:%S', \
                    ?4 + ((id - ?3) + ?2 * (last_seq - 1)) * ?5 / ?1, 'unixepoch') \
         WHERE id >= ?3 AND last_seq > 0",
        rusqlite::params![punches, devices, first_device, start, SPAN_SECS],
    )?;
    let today = now - now.rem_euclid(86_400);
    tx.execute(
        "UPDATE devices SET day_started_at = ?1, day_first_seq = today.first_seq \
         FROM (SELECT device_id, MIN(seq) AS first_seq FROM punches WHERE received_at >= ?1 GROUP BY device_id) AS today \
         WHERE today.device_id = devices.id",
        rusqlite::params![today * 1_000_000],
    )?;
    tx.execute_batch(&trigger)?;
    tx.execute(
        "INSERT INTO employees (emp_code, first_name, last_name, created_at, updated_at) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 <= ?1) \
         SELECT CAST(i AS TEXT), printf('First%d', i), printf('Last%d', i), ?2, ?2 FROM n",
        rusqlite::params![i64::try_from(bench.employees)?, now * 1_000_000],
    )?;
    tx.commit()?;
    conn.execute_batch("ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(())
}

/// A browser without JavaScript: the session cookie kept by hand.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookie: String,
}

impl Browser {
    async fn log_in(addr: &str) -> anyhow::Result<Browser> {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        let base = format!("http://{addr}");
        let form = client.get(format!("{base}/ui/login")).send().await?;
        let login_cookie = cookie_pair(&form, "adms_console_login").context("the login form's cookie")?;
        let page = form.text().await?;
        let marker = "name=\"csrf_token\" value=\"";
        let at = page.find(marker).context("the login form's token")? + marker.len();
        let csrf = &page[at..at + page[at..].find('"').context("token end")?];
        let response = client
            .post(format!("{base}/ui/login"))
            .header("Cookie", login_cookie)
            .form(&[("username", "bench"), ("password", "bench-password"), ("csrf_token", csrf), ("next", "/ui/")])
            .send()
            .await?;
        ensure!(response.status() == 303, "login answered {}", response.status());
        let cookie = cookie_pair(&response, "adms_console").context("the session cookie")?;
        Ok(Browser { client, base, cookie })
    }

    /// The page's size, after checking it answered 200.
    async fn get(&self, path: &str) -> anyhow::Result<usize> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .header("Accept", "text/html")
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        if status != 200 {
            bail!("GET {path} answered {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(body.len())
    }
}

fn cookie_pair(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get_all(reqwest::header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        let pair = v.split(';').next()?.trim();
        pair.starts_with(&format!("{name}=")).then(|| pair.to_owned())
    })
}

/// Seeds, serves and times every page (module docs).
pub async fn run(server_bin: &Path, bench: ConsoleBench) -> anyhow::Result<Vec<PageFigure>> {
    ensure!(bench.devices > 0 && bench.punches > 0 && bench.repeat > 0, "devices, punches and repeat must be above 0");
    let dir = tempfile::tempdir()?;
    let database = BenchDatabase::create(Engine::Sqlite, dir.path(), "console.db").await?;
    // The server makes the schema and the admin account, then stops.
    ServerProcess::start(server_bin, &database)?.stop()?;
    let started = Instant::now();
    let file = dir.path().join("console.db");
    let seeding = bench;
    tokio::task::spawn_blocking(move || seed(&file, &seeding)).await??;
    eprintln!(
        "console: seeded {} devices, {} punches, {} people in {:.1} s",
        bench.devices,
        bench.punches,
        bench.employees,
        started.elapsed().as_secs_f64()
    );
    let server = ServerProcess::start(server_bin, &database)?;
    let browser = Browser::log_in(&server.addr).await?;
    let deep = bench.devices.saturating_sub(60);
    let middle = bench.devices / 2;
    let pages: Vec<(&'static str, String)> = vec![
        ("overview", "/ui/".into()),
        ("devices", "/ui/devices".into()),
        ("devices, deep", format!("/ui/devices?after={deep}")),
        ("devices, offline", "/ui/devices?state=offline".into()),
        ("devices, search", "/ui/devices?q=BENCH0099".into()),
        ("device", format!("/ui/devices/BENCH{middle:06}")),
        ("device commands", format!("/ui/devices/BENCH{middle:06}/commands")),
        ("rejected lines", "/ui/rejected-lines".into()),
        ("live", "/ui/live".into()),
        ("webhooks", "/ui/webhooks".into()),
        ("people", "/ui/people".into()),
        ("people, deep", "/ui/people?page=50".into()),
        ("keys", "/ui/keys".into()),
    ];
    let mut figures = Vec::new();
    for (name, path) in pages {
        let bytes = browser.get(&path).await.with_context(|| name.to_owned())?;
        let mut times = Vec::with_capacity(bench.repeat);
        for _ in 0..bench.repeat {
            let at = Instant::now();
            browser.get(&path).await?;
            times.push(at.elapsed());
        }
        times.sort();
        figures.push(PageFigure { name, path, p50: times[times.len() / 2], max: times[times.len() - 1], bytes });
    }
    server.stop()?;
    Ok(figures)
}
