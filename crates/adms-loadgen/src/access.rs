//! Issue 19's provisioning benchmark: `persons` persons in `levels` access levels across
//! `controllers` access controllers. The model is built through the API while the controllers
//! are pending (nothing is planned for a controller that is not trusted); approving them plans
//! and queues what each must hold ("time to plan": the approvals, each planning and queueing one
//! controller); then every controller polls `/iclock/getrequest` and acknowledges each command on
//! `/iclock/devicecmd` until it has nothing left, counting the lines and bytes it received.
//!
//! The shape: a level has the four doors of `controllers / levels * 2` consecutive controllers
//! (so each controller is in two levels), and person `i` is in level `i % levels`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use crate::http::{self, Connection};
use crate::scenarios::{BenchDatabase, Run, ServerProcess};

/// The figures of one run.
#[derive(Debug)]
pub struct ProvisioningFigures {
    pub persons: usize,
    pub levels: usize,
    pub controllers: usize,
    /// Building the model through the API (persons, levels, doors, memberships).
    pub setup: Duration,
    /// Approving every controller: each approval plans and queues its tables.
    pub plan: Duration,
    /// Every controller receiving and acknowledging everything queued for it.
    pub delivered: Duration,
    pub lines: u64,
    pub bytes: u64,
    /// Lines received by table (`user`, `userauthorize`, `timezone`, …).
    pub lines_by_table: BTreeMap<String, u64>,
    pub polls: u64,
    /// Summed over the controllers: waiting for poll answers, and for acknowledgement answers.
    pub polling: Duration,
    pub acknowledging: Duration,
    /// Polls and acknowledgements answered 503 (storage busy) and retried, as firmware does.
    pub busy: u64,
}

impl std::fmt::Display for ProvisioningFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "provisioning {} persons in {} levels across {} controllers:",
            self.persons, self.levels, self.controllers
        )?;
        writeln!(f, "  model through the API: {:.1} s", self.setup.as_secs_f64())?;
        writeln!(f, "  plan and queue (the {} approvals): {:.2} s", self.controllers, self.plan.as_secs_f64())?;
        writeln!(
            f,
            "  queued: {} command lines, {:.1} MiB ({})",
            self.lines,
            self.bytes as f64 / 1_048_576.0,
            self.lines_by_table.iter().map(|(t, n)| format!("{t} {n}")).collect::<Vec<_>>().join(", ")
        )?;
        write!(
            f,
            "  received and acknowledged by the controllers: {:.2} s ({} polls, {:.0} lines/s; a poll's answer {:.1} ms, an acknowledgement's {:.1} ms on average; {} answered 503 and retried)",
            self.delivered.as_secs_f64(),
            self.polls,
            self.lines as f64 / self.delivered.as_secs_f64().max(0.001),
            self.polling.as_secs_f64() * 1000.0 / self.polls.max(1) as f64,
            self.acknowledging.as_secs_f64() * 1000.0 / self.polls.max(1) as f64,
            self.busy,
        )
    }
}

struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn login(addr: &str) -> anyhow::Result<Api> {
        let client = reqwest::Client::new();
        let base = format!("http://{addr}");
        let answer: Value = client
            .post(format!("{base}/api-token-auth/"))
            .json(&json!({ "username": "bench", "password": "bench-password" }))
            .send()
            .await?
            .json()
            .await?;
        let token = answer["token"].as_str().context("no token in the login answer")?.to_owned();
        Ok(Api { client, base, token })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .header("Authorization", format!("Token {}", self.token));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        ensure!(status.is_success(), "{method} {path}: {status} {text}");
        Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
    }
}

/// Runs `jobs` over `conns` concurrent tasks.
async fn in_parallel<F, Fut>(conns: usize, jobs: usize, job: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (job, next) = (job.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= jobs {
                    return anyhow::Ok(());
                }
                job(i).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

pub async fn provisioning(
    run: &Run,
    persons: usize,
    levels: usize,
    controllers: usize,
) -> anyhow::Result<ProvisioningFigures> {
    ensure!(levels > 0 && controllers >= levels, "at least one level and as many controllers as levels");
    let dir = tempfile::tempdir()?;
    let database = BenchDatabase::create(run.engine, dir.path(), "bench.db").await?;
    let server = ServerProcess::start_with(&run.server_bin, &database, &[("ADMS_UNKNOWN_DEVICES", "pending")])?;
    let addr = server.addr.clone();
    let api = Arc::new(Api::login(&addr).await?);
    let sn = |c: usize| format!("ACCB{c:04}");

    let started = Instant::now();
    let mut conn = Connection::open(&addr).await?;
    let mut request = Vec::new();
    for c in 0..controllers {
        // The registry of adms-sim's access panels (four doors).
        let body = adms_sim::wire::access_registry_body([(c >> 8) as u8, c as u8], [(c >> 8) as u8, c as u8]);
        http::post(&mut request, &addr, &format!("/iclock/registry?SN={}", sn(c)), body.as_bytes());
        let r = conn.send(&request).await?;
        ensure!(r.status == 200, "registry of {} answered {}", sn(c), r.status);
    }
    let doors = api.call(reqwest::Method::GET, "/api/v1/access/doors", None).await?;
    let mut doors_of: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for door in doors["data"].as_array().context("doors")? {
        let sn = door["sn"].as_str().context("door sn")?.to_owned();
        doors_of.entry(sn).or_default().push(door["id"].as_i64().context("door id")?);
    }
    ensure!(doors_of.len() == controllers, "{} controllers have doors, not {controllers}", doors_of.len());
    let segment = json!({ "name": "Office", "schedule": { "monday": ["08:00-18:00"], "tuesday": ["08:00-18:00"],
        "wednesday": ["08:00-18:00"], "thursday": ["08:00-18:00"], "friday": ["08:00-18:00"] } });
    let segment = api.call(reqwest::Method::POST, "/api/v1/access/time-segments", Some(segment)).await?;
    let per_level = (controllers * 2 / levels).max(1);
    let mut level_ids = Vec::new();
    for l in 0..levels {
        let level = json!({ "name": format!("Level {l}"), "time_segment_id": segment["id"] });
        let level = api.call(reqwest::Method::POST, "/api/v1/access/levels", Some(level)).await?;
        let id = level["id"].as_i64().context("level id")?;
        let first = l * controllers / levels;
        let door_ids: Vec<i64> =
            (first..first + per_level).flat_map(|c| doors_of[&sn(c % controllers)].clone()).collect();
        api.call(
            reqwest::Method::POST,
            &format!("/api/v1/access/levels/{id}/doors"),
            Some(json!({ "door_ids": door_ids })),
        )
        .await?;
        level_ids.push(id);
    }
    let conns = run.conns;
    let people = api.clone();
    in_parallel(conns, persons, move |i| {
        let api = people.clone();
        async move {
            let person = json!({ "emp_code": format!("{}", 10_000 + i), "first_name": format!("P{i}"), "last_name": "Bench",
                "card_no": format!("{}", 1_000_000 + i), "department": 1, "area": [1] });
            api.call(reqwest::Method::POST, "/personnel/api/employees/", Some(person)).await.map(|_| ())
        }
    })
    .await?;
    let members = api.clone();
    let level_ids = Arc::new(level_ids);
    in_parallel(conns, persons, move |i| {
        let (api, level_ids) = (members.clone(), level_ids.clone());
        async move {
            let path = format!("/api/v1/access/levels/{}/members/{}", level_ids[i % level_ids.len()], 10_000 + i);
            api.call(reqwest::Method::PUT, &path, Some(json!({}))).await.map(|_| ())
        }
    })
    .await?;
    let setup = started.elapsed();

    let started = Instant::now();
    for c in 0..controllers {
        api.call(
            reqwest::Method::PATCH,
            &format!("/api/v1/devices/{}", sn(c)),
            Some(json!({ "approval": "approved" })),
        )
        .await?;
    }
    let plan = started.elapsed();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..controllers {
        let (addr, sn) = (addr.clone(), sn(c));
        tasks.push(tokio::spawn(async move { drain_commands(&addr, &sn).await }));
    }
    let mut figures = ProvisioningFigures {
        persons,
        levels,
        controllers,
        setup,
        plan,
        delivered: Duration::ZERO,
        lines: 0,
        bytes: 0,
        lines_by_table: BTreeMap::new(),
        polls: 0,
        polling: Duration::ZERO,
        acknowledging: Duration::ZERO,
        busy: 0,
    };
    for task in tasks {
        let received = task.await??;
        figures.lines += received.lines;
        figures.bytes += received.bytes;
        figures.polls += received.polls;
        figures.polling += received.polling;
        figures.acknowledging += received.acknowledging;
        figures.busy += received.busy;
        for (table, n) in received.lines_by_table {
            *figures.lines_by_table.entry(table).or_default() += n;
        }
    }
    figures.delivered = started.elapsed();
    server.stop()?;
    Ok(figures)
}

#[derive(Debug, Default)]
struct Received {
    lines: u64,
    bytes: u64,
    polls: u64,
    /// Time spent waiting for poll answers and for acknowledgement answers.
    polling: Duration,
    acknowledging: Duration,
    /// Answers 503 (storage busy), retried.
    busy: u64,
    lines_by_table: BTreeMap<String, u64>,
}

/// One controller: polls and acknowledges every command (`Return=0`) until a poll answers `OK`.
async fn drain_commands(addr: &str, sn: &str) -> anyhow::Result<Received> {
    let mut conn = Connection::open(addr).await?;
    let mut request = Vec::new();
    let mut received = Received::default();
    let poll = format!("/iclock/getrequest?SN={sn}");
    let ack = format!("/iclock/devicecmd?SN={sn}");
    loop {
        http::get(&mut request, addr, &poll);
        let asked = Instant::now();
        let r = conn.send(&request).await?;
        received.polling += asked.elapsed();
        if r.status == 503 {
            // Busy storage: firmware polls again, so does this controller.
            received.busy += 1;
            continue;
        }
        ensure!(r.status == 200, "{sn}: poll answered {}", r.status);
        received.polls += 1;
        if r.body == b"OK" {
            return Ok(received);
        }
        let text = String::from_utf8_lossy(r.body).into_owned();
        received.bytes += r.body.len() as u64;
        let mut acks = String::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            // C:<id>:<command>
            let mut parts = line.splitn(3, ':');
            let (Some("C"), Some(id), Some(command)) = (parts.next(), parts.next(), parts.next()) else {
                anyhow::bail!("{sn}: not a command line: {line:?}");
            };
            let mut words = command.split(' ');
            let verb = words.next().unwrap_or_default();
            let table = match verb {
                "DATA" => format!("{} {}", words.next().unwrap_or_default(), words.next().unwrap_or_default()),
                other => other.to_owned(),
            };
            *received.lines_by_table.entry(table).or_default() += 1;
            received.lines += 1;
            acks.push_str(&format!("ID={id}&Return=0&CMD={verb}\n"));
        }
        http::post(&mut request, addr, &ack, acks.as_bytes());
        let sent = Instant::now();
        let r = conn.send(&request).await?;
        received.acknowledging += sent.elapsed();
        if r.status == 503 {
            // Not stored: the commands stay sent and come back on a later poll, as on firmware.
            received.busy += 1;
            continue;
        }
        ensure!(r.status == 200, "{sn}: devicecmd answered {}", r.status);
    }
}
