//! Several processes on one PostgreSQL database, as replicas behind a balancer that does not pin
//! devices: uploads, polls and results of one device arrive at either process, one process is
//! killed with SIGKILL mid-run and restarted, and PostgreSQL itself drops the connections.
//! Every acknowledged punch is stored once with a gapless `seq`, each event reaches the
//! receiver under its one id, and each queued command is handed out once.
//!
//! These stories are about PostgreSQL: they make their own PostgreSQL database, and run in the
//! suite's PostgreSQL run (`ADMS_TEST_DATABASE=postgres`; skipped, saying so, in the SQLite run).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use adms_store::testing::FreshDatabase;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::webhooks::{Receiver, SECRET};
use crate::common::{Api, RawResponse, Server, eventually, eventually_within, parse_response};

/// The terminals of a story: how many, how many uploads of how many new lines each, and the
/// prefix of their serial numbers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fleet {
    pub devices: usize,
    pub uploads: usize,
    pub lines: usize,
    pub prefix: &'static str,
}

impl Fleet {
    pub fn sn(&self, d: usize) -> String {
        format!("{}{d:03}", self.prefix)
    }

    pub fn punches(&self) -> usize {
        self.devices * self.uploads * self.lines
    }
}

/// 20,000 punches from 50 devices.
const TWO_PROCESSES: Fleet = Fleet { devices: 50, uploads: 20, lines: 20, prefix: "PGREP" };

/// Each upload repeats the last lines of the one before (a terminal re-sending after a lost OK).
const OVERLAP: usize = 5;

/// One request to `addr`; `None` when the process is gone (connection refused or reset).
pub(crate) async fn try_request(addr: &str, head: &str, body: &[u8]) -> Option<RawResponse> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(format!("\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    stream.write_all(&request).await.ok()?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.ok()?;
    (out.windows(4).any(|w| w == b"\r\n\r\n")).then(|| parse_response(&out))
}

pub(crate) fn head(method: &str, addr: &str, path: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: iClock Proxy/1.09\r\nContent-Type: text/plain")
}

/// The `line`th punch of device `d`: a distinct PIN and minute per line.
pub(crate) fn punch_line(d: usize, line: usize) -> String {
    format!("{}\t2026-04-{:02} {:02}:{:02}:00\t0\t1\t0\t0\t0", 100 + d, 1 + line / 600, (line / 60) % 10, line % 60)
}

/// Where the processes listen now (a restarted one listens on a new port).
pub(crate) type Addresses = Arc<RwLock<Vec<String>>>;

/// The environment of every process: the shared database, its key, the webhook receiver.
pub(crate) fn env<'a>(database: &'a FreshDatabase, key: &'a str, receiver_url: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("ADMS_DATABASE_URL", database.url()),
        ("ADMS_SECRET_KEY", key),
        ("ADMS_WEBHOOK_URL", receiver_url),
        ("ADMS_WEBHOOK_SECRET", SECRET),
    ]
}

/// What the devices saw.
#[derive(Default)]
pub(crate) struct Seen {
    /// Per device: every line acknowledged by an `OK: n`.
    pub acknowledged: BTreeMap<usize, BTreeSet<usize>>,
    /// Every command id handed out by a poll (with repeats, if any).
    pub handed_out: Vec<i64>,
    /// Requests that failed (process gone, or an error status): the device retried them.
    pub failures: usize,
}

/// Where a story's devices wait for its disruption (a kill) before their last third of uploads:
/// however fast the servers are, the run cannot end before the disruption has happened, and
/// there is always work left to meet it. A hold already released holds nothing.
#[derive(Clone)]
pub(crate) struct Hold(tokio::sync::watch::Receiver<bool>);

impl Hold {
    /// A hold and the sender that releases it.
    pub fn new() -> (tokio::sync::watch::Sender<bool>, Self) {
        let (release, hold) = tokio::sync::watch::channel(false);
        (release, Self(hold))
    }

    /// Devices that never wait.
    pub fn released() -> Self {
        Self(tokio::sync::watch::channel(true).1)
    }

    async fn wait(&mut self) {
        // An error means the sender is gone: nothing is left to wait for.
        let _ = self.0.wait_for(|released| *released).await;
    }
}

/// Device `d`: uploads its lines in overlapping batches to whichever process, polls for
/// commands and answers them, retrying anything that failed on the other process; before the
/// last third of its uploads it waits for `hold`.
pub(crate) async fn run_device(
    fleet: Fleet,
    d: usize,
    addresses: Addresses,
    seen: Arc<Mutex<Seen>>,
    uploaded: Arc<AtomicUsize>,
    mut hold: Hold,
) {
    let sn = fleet.sn(d);
    for k in 0..fleet.uploads {
        if k == fleet.uploads * 2 / 3 {
            hold.wait().await;
        }
        let first = (k * fleet.lines).saturating_sub(OVERLAP);
        let lines: Vec<usize> = (first..(k + 1) * fleet.lines).collect();
        let body: String = lines.iter().map(|&l| punch_line(d, l) + "\n").collect();
        let mut attempt = 0;
        loop {
            let addr = {
                let addresses = addresses.read().unwrap();
                addresses[(d + k + attempt) % addresses.len()].clone()
            };
            let path = format!("/iclock/cdata?SN={sn}&table=ATTLOG&Stamp={}", k + 1);
            let answer = try_request(&addr, &head("POST", &addr, &path), body.as_bytes()).await;
            match answer {
                Some(r) if r.status == 200 && r.text() == format!("OK: {}", lines.len()) => {
                    seen.lock().unwrap().acknowledged.entry(d).or_default().extend(lines.iter().copied());
                    uploaded.fetch_add(fleet.lines, Ordering::Relaxed);
                    break;
                }
                Some(r) => assert!(r.status >= 500, "device {sn} upload {k}: {} {}", r.status, r.text()),
                None => {}
            }
            seen.lock().unwrap().failures += 1;
            attempt += 1;
            assert!(attempt < 200, "device {sn} upload {k} never acknowledged");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if k % 4 == 3 {
            poll_and_answer(d, &sn, k, &addresses, &seen).await;
        }
    }
}

/// One poll (on the process `k` picks) and the answers to the commands it brought.
pub(crate) async fn poll_and_answer(d: usize, sn: &str, k: usize, addresses: &Addresses, seen: &Mutex<Seen>) {
    let addr = {
        let addresses = addresses.read().unwrap();
        addresses[(d + k + 1) % addresses.len()].clone()
    };
    let Some(r) = try_request(&addr, &head("GET", &addr, &format!("/iclock/getrequest?SN={sn}")), b"").await else {
        return;
    };
    let ids: Vec<i64> =
        r.text().lines().filter_map(|l| l.strip_prefix("C:")?.split(':').next()?.parse().ok()).collect();
    if ids.is_empty() {
        return;
    }
    seen.lock().unwrap().handed_out.extend(&ids);
    let results: String = ids.iter().map(|id| format!("ID={id}&Return=0&CMD=DATA\n")).collect();
    // The results go to the other process first and, like a terminal's, are sent again until one
    // takes them: a result lost with a killed process would have its command handed out again
    // once `resend_after` (two minutes) passed, and whether the run is that slow is luck.
    let path = format!("/iclock/devicecmd?SN={sn}");
    for attempt in 0.. {
        let addr = {
            let addresses = addresses.read().unwrap();
            addresses[(d + k + attempt) % addresses.len()].clone()
        };
        match try_request(&addr, &head("POST", &addr, &path), results.as_bytes()).await {
            Some(r) if r.status == 200 => return,
            Some(r) => assert!(r.status >= 500, "device {sn} command results: {} {}", r.status, r.text()),
            None => {}
        }
        seen.lock().unwrap().failures += 1;
        assert!(attempt < 200, "device {sn}: command results never taken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (up to `limit`) until `n` punch events were delivered successfully, reading the
/// outbox: one count a check, where counting what the receiver got would parse every body it
/// holds on each check (tens of thousands), taking the cores from the processes under test.
pub(crate) async fn wait_for_punch_deliveries(database: &FreshDatabase, n: usize, limit: Duration) {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(database.url()).await.expect("connect");
    let sql = "SELECT COUNT(*) FROM webhook_deliveries AS d JOIN webhook_events AS e ON e.id = d.event_row \
               WHERE e.event_type = 'attendance.punch' AND d.state = 'succeeded'";
    eventually_within(limit, &format!("all {n} punch events are delivered"), async || {
        let delivered: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.expect("count");
        delivered as usize >= n
    })
    .await;
}

/// Every acknowledged punch stored exactly once, with a gapless `seq` per device, read through
/// the store as another process would (punches are not sealed: no key needed).
pub(crate) async fn assert_stored_once_gapless(database: &FreshDatabase, seen: &Seen, fleet: Fleet) {
    let store =
        adms_store::Store::open(database.url(), adms_store::StoreOptions { max_connections: 2, ..Default::default() })
            .await
            .expect("open the database");
    let page = adms_store::Page { offset: 0, limit: 1_000_000 };
    let (_, rows) = store.list_transactions(&adms_store::TransactionFilter::default(), page).await.unwrap();
    let mut per_device: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for row in rows {
        per_device.entry(row.terminal_sn).or_default().push((row.seq, format!("{}\t{}", row.emp_code, row.punch_time)));
    }
    for (d, lines) in &seen.acknowledged {
        let sn = fleet.sn(*d);
        let stored = per_device.get(&sn).cloned().unwrap_or_default();
        let expected: BTreeSet<String> =
            lines.iter().map(|&l| punch_line(*d, l).splitn(3, '\t').take(2).collect::<Vec<_>>().join("\t")).collect();
        let distinct: BTreeSet<String> = stored.iter().map(|(_, key)| key.clone()).collect();
        assert_eq!(distinct.len(), stored.len(), "{sn}: a punch stored twice");
        assert_eq!(distinct, expected, "{sn}: the stored punches are not the acknowledged ones");
        let mut seqs: Vec<i64> = stored.iter().map(|(seq, _)| *seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=stored.len() as i64).collect::<Vec<_>>(), "{sn}: seq not gapless");
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_one_killed_keep_every_punch_event_and_command_once() {
    crate::postgres_run_only!("a story of PostgreSQL replicas");
    let database = FreshDatabase::create().await;
    let key = adms_vault::SecretKey::generate().to_base64();
    let receiver = Receiver::start().await;
    let receiver_url = receiver.url();
    let dir = tempfile::tempdir().unwrap();
    let env = env(&database, &key, &receiver_url);
    let mut servers = Server::start_together(dir.path(), &env, 2);
    let addresses: Addresses = Arc::new(RwLock::new(servers.iter().map(|s| s.addr.clone()).collect()));

    // Two commands per device, queued through one process before the devices start.
    let api = Api::login(&servers[1]).await;
    let mut queued = BTreeSet::new();
    let fleet = TWO_PROCESSES;
    for d in 0..fleet.devices {
        let sn = fleet.sn(d);
        let r = try_request(
            &servers[1].addr,
            &head("GET", &servers[1].addr, &format!("/iclock/cdata?SN={sn}&options=all")),
            b"",
        )
        .await
        .expect("handshake");
        assert_eq!(r.status, 200);
        for n in 0..2 {
            let body = json!({ "command": { "type": "set_option", "key": "Delay", "value": format!("{}", 10 + n) } });
            let (status, answer) = api.post_json(&format!("/api/v1/devices/{sn}/commands"), &body).await;
            assert_eq!(status, 201, "{answer}");
            queued.insert(answer["id"].as_i64().unwrap());
        }
    }

    let seen = Arc::new(Mutex::new(Seen::default()));
    let uploaded = Arc::new(AtomicUsize::new(0));
    let (release, hold) = Hold::new();
    let devices: Vec<_> = (0..fleet.devices)
        .map(|d| {
            let device =
                run_device(fleet, d, Arc::clone(&addresses), Arc::clone(&seen), Arc::clone(&uploaded), hold.clone());
            tokio::spawn(device)
        })
        .collect();

    // SIGKILL the first process once about a third of the punches are in; the devices meet the
    // dead process (their uploads alternate between the two) before it is started again.
    eventually("a third of the punches are acknowledged", async || {
        uploaded.load(Ordering::Relaxed) >= fleet.punches() / 3
    })
    .await;
    servers[0].kill();
    release.send_replace(true);
    eventually("a device met the killed process", async || seen.lock().unwrap().failures > 0).await;
    servers[0] = Server::start(dir.path(), &env);
    addresses.write().unwrap()[0] = servers[0].addr.clone();
    for device in devices {
        device.await.unwrap();
    }
    // Commands not yet handed out go at the last polls, on either process.
    for d in 0..fleet.devices {
        poll_and_answer(d, &fleet.sn(d), d, &addresses, &seen).await;
    }

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let total: usize = seen.acknowledged.values().map(BTreeSet::len).sum();
    assert_eq!(total, fleet.punches(), "every line acknowledged in the end");
    assert_stored_once_gapless(&database, &seen, fleet).await;

    let mut handed = seen.handed_out.clone();
    handed.sort_unstable();
    let distinct: Vec<i64> = handed.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
    assert_eq!(handed, distinct, "a command handed out twice");
    assert_eq!(distinct.into_iter().collect::<BTreeSet<_>>(), queued, "every queued command handed out");

    // Every punch's event arrives, and only ever under its one id.
    // 20,000 deliveries from two processes on two shared cores: longer than `eventually` waits.
    let all = fleet.punches();
    wait_for_punch_deliveries(&database, all, Duration::from_secs(120)).await;
    let mut ids_of: HashMap<String, BTreeSet<String>> = HashMap::new();
    for r in receiver.of_type("attendance.punch") {
        let data = &r.json()["data"];
        let key = format!("{}/{}/{}", data["device"]["sn"], data["pin"], data["local_time"]);
        ids_of.entry(key).or_default().insert(r.id);
    }
    if ids_of.len() != fleet.punches() {
        // Which punches the receiver never saw, and what the outbox says of them.
        let missing: Vec<String> = (0..fleet.devices)
            .flat_map(|d| (0..fleet.uploads * fleet.lines).map(move |l| (d, l)))
            .map(|(d, l)| {
                let mut fields = punch_line(d, l).split('\t').map(str::to_owned).collect::<Vec<_>>().into_iter();
                let (pin, time) = (fields.next().unwrap(), fields.next().unwrap());
                format!("\"{}\"/\"{pin}\"/\"{time}\"", fleet.sn(d))
            })
            .filter(|key| !ids_of.contains_key(key))
            .take(5)
            .collect();
        let outbox = outbox_rows(&database).await;
        panic!(
            "{} punch events received for {} punches; missing, for example: {missing:?}; outbox: {outbox}",
            ids_of.len(),
            fleet.punches()
        );
    }
    assert!(ids_of.values().all(|ids| ids.len() == 1), "a punch's event came under two ids");
}

/// The outbox's punch deliveries by state and attempts, for a failure's message.
async fn outbox_rows(database: &FreshDatabase) -> String {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(database.url()).await.expect("connect");
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT d.state, (SELECT COUNT(*) FROM webhook_attempts AS a WHERE a.delivery_id = d.id) AS attempts, COUNT(*) \
         FROM webhook_deliveries AS d JOIN webhook_events AS e ON e.id = d.event_row \
         WHERE e.event_type = 'attendance.punch' GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await
    .expect("outbox");
    format!("{rows:?}")
}

/// PostgreSQL drops every connection of the bridge, again and again, while devices upload:
/// the devices get errors (never an `OK` for rows that were not committed), and what they send
/// again is stored completely and once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_terminated_by_postgres_never_give_a_false_ok() {
    crate::postgres_run_only!("a story of PostgreSQL's connections");
    use sqlx::Connection as _;
    let database = FreshDatabase::create().await;
    let key = adms_vault::SecretKey::generate().to_base64();
    let receiver = Receiver::start().await;
    let receiver_url = receiver.url();
    let dir = tempfile::tempdir().unwrap();
    let env = env(&database, &key, &receiver_url);
    let server = Server::start(dir.path(), &env);
    let addresses: Addresses = Arc::new(RwLock::new(vec![server.addr.clone(), server.addr.clone()]));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let uploaded = Arc::new(AtomicUsize::new(0));
    let fleet = TWO_PROCESSES;
    let devices: Vec<_> = (0..10)
        .map(|d| {
            let device = run_device(
                fleet,
                d,
                Arc::clone(&addresses),
                Arc::clone(&seen),
                Arc::clone(&uploaded),
                Hold::released(),
            );
            tokio::spawn(device)
        })
        .collect();
    let database_name = database.url().rsplit('/').next().unwrap().to_owned();
    let mut admin = sqlx::PgConnection::connect(&adms_store::testing::admin_url()).await.unwrap();
    let mut terminated = 0i64;
    while devices.iter().any(|d| !d.is_finished()) && terminated < 200 {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()) AS t",
        )
        .bind(&database_name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        terminated += n;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for device in devices {
        device.await.unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(terminated > 0, "connections must have been terminated");
    assert!(seen.failures > 0, "some uploads must have failed for this story to mean anything");
    assert_stored_once_gapless(&database, &seen, fleet).await;
    drop(server);
}
