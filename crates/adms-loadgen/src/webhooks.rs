//! Webhook benchmarks: deliveries per second from a backlog, and end-to-end latency (device POST
//! → receiver got the event) at a steady punch rate. The receiver is an axum handler in this
//! process that answers 200 at once and notes when each event arrived.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adms_store::webhooks::EndpointSettings;
use adms_store::{Store, StoreOptions};
use anyhow::ensure;
use axum::body::Bytes;
use axum::extract::State;

use crate::http::{self, Connection};
use crate::scenarios::{BenchDatabase, Engine};
use crate::scenarios::{Run, ServerProcess, attlog_line};

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

#[derive(Debug, Default)]
struct Arrivals {
    /// (device SN, pin, local time) → first arrival, per endpoint path.
    first: Mutex<HashMap<(String, String), Instant>>,
    requests: Mutex<u64>,
}

async fn receive(
    State(arrivals): State<Arc<Arrivals>>,
    axum::extract::Path(endpoint): axum::extract::Path<String>,
    body: Bytes,
) -> &'static str {
    let now = Instant::now();
    *arrivals.requests.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    // Only punches are measured (device and roster events go to the same endpoints).
    if let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body)
        && event["type"] == "attendance.punch"
    {
        let key = format!(
            "{}|{}|{}",
            event["data"]["device"]["sn"].as_str().unwrap_or_default(),
            event["data"]["pin"].as_str().unwrap_or_default(),
            event["data"]["local_time"].as_str().unwrap_or_default()
        );
        arrivals.first.lock().unwrap_or_else(|p| p.into_inner()).entry((endpoint, key)).or_insert(now);
    }
    "OK"
}

async fn start_receiver() -> anyhow::Result<(String, Arc<Arrivals>)> {
    let arrivals = Arc::new(Arrivals::default());
    let app =
        axum::Router::new().route("/hook/{endpoint}", axum::routing::post(receive)).with_state(Arc::clone(&arrivals));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}/hook"), arrivals))
}

/// Starts a receiver and points `endpoints` endpoints at it; the receiver runs until the process
/// ends.
pub async fn prepare_receiver_and_database(database: &BenchDatabase, endpoints: usize) -> anyhow::Result<()> {
    let (base_url, _arrivals) = start_receiver().await?;
    prepare_database(database, &base_url, endpoints).await
}

/// Creates `endpoints` endpoints in a fresh database before the server starts.
async fn prepare_database(database: &BenchDatabase, base_url: &str, endpoints: usize) -> anyhow::Result<()> {
    let store = Store::open(database.url(), StoreOptions::default()).await?;
    for e in 0..endpoints {
        let url = format!("{base_url}/{e}");
        let settings = EndpointSettings {
            url: &url,
            description: "",
            event_types: None,
            timeout_ms: 15_000,
            batch_max: 1,
            ordered: false,
        };
        store.create_endpoint(&format!("ep_bench_{e}"), &settings, "api", SECRET).await?;
    }
    store.close().await;
    Ok(())
}

impl Run {
    /// Deliveries per second: `punches` stored while every endpoint is paused, then all
    /// endpoints resumed at once; the clock runs until the receiver has every delivery. With
    /// `workers` > 0, the uploads go to a `device,api` replica and `workers` replicas of role
    /// `worker` deliver (replicas share a PostgreSQL database).
    pub async fn webhook_throughput(
        &self,
        endpoints: usize,
        punches: usize,
        workers: usize,
    ) -> anyhow::Result<(f64, u64)> {
        ensure!(workers == 0 || self.engine == Engine::Postgres, "worker replicas share PostgreSQL: --engine postgres");
        let (base_url, arrivals) = start_receiver().await?;
        let dir = tempfile::tempdir()?;
        let database = BenchDatabase::create(self.engine, dir.path(), "bench.db").await?;
        prepare_database(&database, &base_url, endpoints).await?;
        let server = if workers == 0 {
            ServerProcess::start(&self.server_bin, &database)?
        } else {
            ServerProcess::start_with(&self.server_bin, &database, &[("ADMS_ROLE", "device,api")])?
        };
        let worker_replicas = (0..workers)
            .map(|_| ServerProcess::start_with(&self.server_bin, &database, &[("ADMS_ROLE", "worker")]))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let store = Store::open(database.url(), StoreOptions::default()).await?;
        for e in 0..endpoints {
            store.set_endpoint_paused(&format!("ep_bench_{e}"), Some("manual")).await?;
        }
        let mut conn = Connection::open(&server.addr).await?;
        let mut request = Vec::new();
        http::get(&mut request, &server.addr, "/iclock/cdata?SN=HOOKBENCH&options=all");
        conn.send(&request).await?;
        let mut next = 0u64;
        while (next as usize) < punches {
            let mut body = Vec::new();
            for _ in 0..128.min(punches - next as usize) {
                attlog_line(&mut body, next);
                next += 1;
            }
            http::post(&mut request, &server.addr, "/iclock/cdata?SN=HOOKBENCH&table=ATTLOG", &body);
            let r = conn.send(&request).await?;
            ensure!(r.status == 200, "upload answered {}", r.status);
        }
        let expected = (punches * endpoints) as u64;
        let started = Instant::now();
        for e in 0..endpoints {
            store.set_endpoint_paused(&format!("ep_bench_{e}"), None).await?;
        }
        let deadline = started + Duration::from_secs(600);
        loop {
            let got = arrivals.first.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
            if got >= expected {
                break;
            }
            ensure!(Instant::now() < deadline, "only {got} of {expected} deliveries arrived");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let requests = *arrivals.requests.lock().unwrap_or_else(|p| p.into_inner());
        store.close().await;
        server.stop()?;
        for worker in worker_replicas {
            worker.stop()?;
        }
        Ok((expected as f64 / elapsed, requests))
    }

    /// End-to-end latency at `rate` punches/s (1-line uploads from 4 devices), one endpoint:
    /// (p50, p99, max) in ms.
    pub async fn webhook_latency(&self, rate: u64, seconds: u64) -> anyhow::Result<(f64, f64, f64, usize)> {
        let (base_url, arrivals) = start_receiver().await?;
        let dir = tempfile::tempdir()?;
        let database = BenchDatabase::create(self.engine, dir.path(), "bench.db").await?;
        prepare_database(&database, &base_url, 1).await?;
        let server = ServerProcess::start(&self.server_bin, &database)?;
        let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let devices = 4u64;
        let mut tasks = Vec::new();
        for d in 0..devices {
            let addr = server.addr.clone();
            let sent = Arc::clone(&sent);
            tasks.push(tokio::spawn(async move {
                let sn = format!("LAT{d:04}");
                let mut conn = Connection::open(&addr).await?;
                let mut request = Vec::new();
                http::get(&mut request, &addr, &format!("/iclock/cdata?SN={sn}&options=all"));
                conn.send(&request).await?;
                let interval = Duration::from_secs_f64(devices as f64 / rate as f64);
                let mut tick = tokio::time::interval(interval);
                let path = format!("/iclock/cdata?SN={sn}&table=ATTLOG");
                for n in 0..(rate * seconds / devices) {
                    tick.tick().await;
                    let mut line = Vec::new();
                    attlog_line(&mut line, n);
                    let text = String::from_utf8_lossy(&line).into_owned();
                    let mut fields = text.split('\t');
                    let key =
                        format!("{sn}|{}|{}", fields.next().unwrap_or_default(), fields.next().unwrap_or_default());
                    http::post(&mut request, &addr, &path, &line);
                    sent.lock().unwrap_or_else(|p| p.into_inner()).insert(key, Instant::now());
                    let r = conn.send(&request).await?;
                    ensure!(r.status == 200, "upload answered {}", r.status);
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let expected = sent.lock().unwrap_or_else(|p| p.into_inner()).len();
        let deadline = Instant::now() + Duration::from_secs(30);
        while arrivals.first.lock().unwrap_or_else(|p| p.into_inner()).len() < expected {
            ensure!(Instant::now() < deadline, "not every punch arrived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let sent = sent.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut latencies: Vec<f64> = arrivals
            .first
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|((_, key), at)| Some(at.duration_since(*sent.get(key)?).as_secs_f64() * 1000.0))
            .collect();
        latencies.sort_by(f64::total_cmp);
        let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        let result = (pick(0.5), pick(0.99), pick(1.0), latencies.len());
        server.stop()?;
        Ok(result)
    }
}
