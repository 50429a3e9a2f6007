//! The deployment of `docker-compose.yml`, without containers: the compose file and the
//! Dockerfile pass their checkers (a real Compose parser, hadolint), and the topology they
//! describe — HAProxy with `deploy/haproxy.cfg` in front of the `device,api` replicas, a
//! `worker` replica beside them, one PostgreSQL database — is run from the same files with
//! Debian's `haproxy`, under load, with a replica killed mid-run.
//!
//! The tools (`docker-compose`, `hadolint`, `haproxy`, Python's `yaml`) are installed by
//! `.ci/run`; under `CI` a missing one fails the test, elsewhere the test says it skipped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use adms_store::testing::FreshDatabase;
use serde_json::{Value, json};

use crate::common::webhooks::Receiver;
use crate::common::{Api, Server, eventually, eventually_within};
use crate::postgres_replicas::{
    Addresses, Fleet, Hold, Seen, assert_stored_once_gapless, head, poll_and_answer, run_device, try_request,
    wait_for_punch_deliveries,
};

/// 50,000 punches from 100 devices.
const FLEET: Fleet = Fleet { devices: 100, uploads: 25, lines: 20, prefix: "TOPO" };

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `program` is on PATH; in CI it must be (a failure naming it), elsewhere the test skips.
fn tool(program: &str, why: &str) -> bool {
    let found =
        Command::new("sh").args(["-c", &format!("command -v {program}")]).output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "{program} is needed in CI ({why}); .ci/run installs it");
        crate::common::database::skipped_as("needs a tool", &format!("{program} is not installed ({why})"));
    }
    found
}

/// The compose file as `docker-compose config` reads it (interpolated, anchors resolved), as
/// JSON: the services the deployment runs.
fn compose_config() -> Value {
    let output = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config"])
        .current_dir(repository())
        .env("POSTGRES_PASSWORD", "pw")
        .env("ADMS_SECRET_KEY", "key")
        .env("ADMS_ADMIN_PASSWORD", "admin-pw")
        .output()
        .expect("docker-compose");
    assert!(output.status.success(), "docker-compose config: {}", String::from_utf8_lossy(&output.stderr));
    let mut python = Command::new("python3")
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write as _;
    python.stdin.take().unwrap().write_all(&output.stdout).unwrap();
    let json = python.wait_with_output().unwrap();
    assert!(json.status.success(), "YAML to JSON");
    serde_json::from_slice(&json.stdout).unwrap()
}

/// What the topology test takes from the compose file: each replica's role and the settings
/// that shape the topology, and the proxy's configuration file and variables.
#[derive(Debug)]
struct Topology {
    /// The replicas behind the proxy, in the proxy's order (`BRIDGE_1`, `BRIDGE_2`).
    bridges: Vec<BTreeMap<String, String>>,
    /// The worker replica's environment.
    worker: BTreeMap<String, String>,
    /// The proxy's configuration file, in the repository.
    proxy_config: PathBuf,
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_object()
        .expect("environment as a map")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
        .collect()
}

fn topology_of(compose: &Value) -> Topology {
    let services = compose["services"].as_object().expect("services");
    let proxy = &services["proxy"];
    let proxy_env = environment(proxy);
    let bridges: Vec<BTreeMap<String, String>> = ["BRIDGE_1", "BRIDGE_2"]
        .iter()
        .map(|key| {
            let target = &proxy_env[*key];
            let (service, port) = target.split_once(':').expect("service:port");
            assert_eq!(port, "8081", "{key}");
            environment(&services[service])
        })
        .collect();
    let volume = proxy["volumes"][0].as_str().map(str::to_owned).unwrap_or_else(|| {
        format!(
            "{}:{}",
            proxy["volumes"][0]["source"].as_str().unwrap(),
            proxy["volumes"][0]["target"].as_str().unwrap()
        )
    });
    let source = volume.split(':').next().unwrap();
    Topology { bridges, worker: environment(&services["worker"]), proxy_config: repository().join(source) }
}

#[test]
fn compose_file_and_dockerfile_pass_their_checkers_and_describe_the_tested_topology() {
    if !tool("docker-compose", "the Compose parser") || !tool("hadolint", "the Dockerfile linter") {
        return;
    }
    let lint = Command::new("hadolint").arg("Dockerfile").current_dir(repository()).output().unwrap();
    assert!(lint.status.success(), "hadolint: {}", String::from_utf8_lossy(&lint.stdout));
    // A compose file the parser refuses fails here (the negative control of the check).
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(broken.path().join("docker-compose.yml"), "services:\n  a:\n    image: x\n    ports: 8081\n")
        .unwrap();
    let refused = Command::new("docker-compose").args(["config", "-q"]).current_dir(broken.path()).output().unwrap();
    assert!(!refused.status.success(), "the parser accepts anything");

    let compose = compose_config();
    let services = compose["services"].as_object().unwrap();
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(["postgres", "bridge-1", "bridge-2", "worker", "proxy"]));
    let topology = topology_of(&compose);
    // What the topology test runs: two device+api replicas behind the proxy, one worker.
    for bridge in &topology.bridges {
        assert_eq!(bridge["ADMS_ROLE"], "device,api");
        assert!(bridge["ADMS_DATABASE_URL"].starts_with("postgres://"));
        assert!(!bridge["ADMS_TRUSTED_PROXIES"].is_empty(), "the bridges must believe the proxy");
    }
    assert_eq!(topology.worker["ADMS_ROLE"], "worker");
    // Terminals reach the proxy on plain HTTP port 8081.
    let ports = &services["proxy"]["ports"][0];
    let published =
        ports.as_str().map(str::to_owned).unwrap_or_else(|| format!("{}:{}", ports["published"], ports["target"]));
    assert_eq!(published.trim_matches('"'), "8081:8081");
    assert_eq!(environment(&services["proxy"])["PROXY_BIND"], ":8081");
    // Health: each replica's through `adms-bridge probe` (its /readyz), the proxy's checks on
    // /readyz, PostgreSQL's before the replicas start.
    for name in ["bridge-1", "bridge-2", "worker"] {
        let test = &services[name]["healthcheck"]["test"];
        assert_eq!(test, &json!(["CMD", "/usr/local/bin/adms-bridge", "probe"]), "{name}");
        assert_eq!(services[name]["depends_on"]["postgres"]["condition"], "service_healthy", "{name}");
    }
    assert!(services["postgres"]["healthcheck"]["test"].to_string().contains("pg_isready"));
    let haproxy = std::fs::read_to_string(&topology.proxy_config).unwrap();
    assert!(haproxy.contains("option httpchk GET /readyz"), "the proxy checks /readyz");
    assert!(topology.proxy_config.ends_with("deploy/haproxy.cfg"));
}

/// The events of `event_type` the receiver got, alone or inside batches (with repeats, if any).
fn events(receiver: &Receiver, event_type: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for request in receiver.received() {
        let body = request.json();
        match body["type"].as_str() {
            Some("batch") => {
                out.extend(body["data"].as_array().unwrap().iter().filter(|e| e["type"] == event_type).cloned());
            }
            Some(kind) if kind == event_type => out.push(body),
            _ => {}
        }
    }
    out
}

/// `env` as the harness takes it.
fn refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Where the handshakes come from: a loopback address that is not the proxy's.
const TERMINAL_ADDRESS: &str = "127.0.0.2";

/// One request from `source` (a local address) to `addr`; the answer's status.
async fn request_from(source: &str, addr: &str, head: &str) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    stream.write_all(format!("{head}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    crate::common::parse_response(&answer).status
}

/// A free port on loopback, below the ephemeral range (see [`crate::common::closed_loopback_addr`]).
fn free_port() -> u16 {
    crate::common::closed_loopback_addr().port()
}

/// HAProxy from Debian's package on `deploy/haproxy.cfg`, in the foreground; killed on drop.
struct Proxy(Child);

impl Proxy {
    fn start(config: &Path, bind: &str, bridges: &[String]) -> Proxy {
        let mut command = Command::new("haproxy");
        command.args(["-db", "-f"]).arg(config).env("PROXY_BIND", bind).stdout(Stdio::null());
        for (i, bridge) in bridges.iter().enumerate() {
            command.env(format!("BRIDGE_{}", i + 1), bridge);
        }
        Proxy(command.spawn().expect("haproxy"))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `adms_http_request_duration_seconds_count` of the device route group on `addr`: device
/// requests this replica answered.
async fn device_requests(addr: &str, api: &Api) -> f64 {
    let text = api.metrics_of(addr).await;
    crate::common::sum_samples(&text, |line| {
        line.starts_with("adms_http_request_duration_seconds_count{") && line.contains("group=\"device\"")
    })
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_behind_haproxy_one_killed_keep_every_punch_event_command_and_transition_once() {
    crate::postgres_run_only!("a story of PostgreSQL replicas");
    if !tool("docker-compose", "the topology comes from the compose file") || !tool("haproxy", "the proxy") {
        return;
    }
    let topology = topology_of(&compose_config());
    let database = FreshDatabase::create().await;
    let key = adms_vault::SecretKey::generate().to_base64();
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Every replica: the shared database and key, presence quick enough to watch.
    let shared = |settings: &BTreeMap<String, String>| -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> =
            ["ADMS_ROLE", "ADMS_DRAIN_SECS"].iter().map(|k| ((*k).to_owned(), settings[*k].clone())).collect();
        env.extend(
            [
                ("ADMS_DATABASE_URL", database.url()),
                ("ADMS_SECRET_KEY", key.as_str()),
                // The proxy runs on loopback here (the compose network's ranges there).
                ("ADMS_TRUSTED_PROXIES", "127.0.0.1"),
                ("ADMS_ACTIVITY_FLUSH_SECS", "1"),
                ("ADMS_OFFLINE_AFTER_SECS", "4"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        env
    };
    let bridge_env: Vec<Vec<(String, String)>> = topology.bridges.iter().map(shared).collect();
    let worker_env = shared(&topology.worker);

    let listen: Vec<String> = (0..2).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let mut bridges: Vec<Server> =
        (0..2).map(|i| Server::start_on(dir.path(), &refs(&bridge_env[i]), &listen[i])).collect();
    let worker = Server::start(dir.path(), &refs(&worker_env));
    let proxy_addr = format!("127.0.0.1:{}", free_port());
    let _proxy = Proxy::start(&topology.proxy_config, &proxy_addr, &listen);
    eventually("the proxy sends requests to a ready replica", async || {
        try_request(&proxy_addr, &head("GET", &proxy_addr, "/readyz"), b"").await.is_some_and(|r| r.status == 200)
    })
    .await;
    let (status, ready) = {
        let r = reqwest::get(worker.url("/readyz")).await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!((status, ready["role"].as_str()), (200, Some("worker")));

    // The ERP's endpoint, created through the second replica's API, takes batches of up to 100
    // events (each keeps its own id inside the batch).
    let api = Api::login(&bridges[1]).await;
    let (status, endpoint) =
        api.post_json("/api/v1/webhooks/endpoints", &json!({"url": receiver.url(), "batch_max": 100})).await;
    assert_eq!(status, 201, "{endpoint}");

    // Two commands per device, queued through the second replica's API before the devices start.
    let mut queued = BTreeSet::new();
    for d in 0..FLEET.devices {
        let sn = FLEET.sn(d);
        // From another loopback address than the proxy's: the replicas store the terminal's.
        let handshake = head("GET", &proxy_addr, &format!("/iclock/cdata?SN={sn}&options=all"));
        assert_eq!(request_from(TERMINAL_ADDRESS, &proxy_addr, &handshake).await, 200);
        for n in 0..2 {
            let body = json!({ "command": { "type": "set_option", "key": "Delay", "value": format!("{}", 10 + n) } });
            let (status, answer) = api.post_json(&format!("/api/v1/devices/{sn}/commands"), &body).await;
            assert_eq!(status, 201, "{answer}");
            queued.insert(answer["id"].as_i64().unwrap());
        }
    }
    // The devices' address as the replicas stored it: the client behind the proxy, which the
    // proxy's X-Forwarded-For names (127.0.0.1, the proxy, is trusted; the terminal is not).
    let terminal = api.get(&format!("/iclock/api/terminals/?sn={}", FLEET.sn(0))).await;
    assert_eq!(terminal["data"][0]["ip_address"], TERMINAL_ADDRESS, "{terminal}");

    // Every request through the proxy, which alternates between the replicas.
    let addresses: Addresses = Arc::new(RwLock::new(vec![proxy_addr.clone()]));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let uploaded = Arc::new(AtomicUsize::new(0));
    let (release, hold) = Hold::new();
    let devices: Vec<_> = (0..FLEET.devices)
        .map(|d| {
            let device =
                run_device(FLEET, d, Arc::clone(&addresses), Arc::clone(&seen), Arc::clone(&uploaded), hold.clone());
            tokio::spawn(device)
        })
        .collect();
    eventually("a third of the punches are acknowledged", async || {
        uploaded.load(Ordering::Relaxed) >= FLEET.punches() / 3
    })
    .await;
    bridges[0].kill();
    bridges[0] = Server::start_on(dir.path(), &refs(&bridge_env[0]), &listen[0]);
    // The last third of the uploads waits for the restart, so the restarted replica has work.
    release.send_replace(true);
    for device in devices {
        device.await.unwrap();
    }
    for d in 0..FLEET.devices {
        poll_and_answer(d, &FLEET.sn(d), d, &addresses, &seen).await;
    }
    // Both replicas answered devices (the restarted one since its restart, too).
    for addr in &listen {
        assert!(device_requests(addr, &api).await > 0.0, "{addr} answered no device request");
    }

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let total: usize = seen.acknowledged.values().map(BTreeSet::len).sum();
    assert_eq!(total, FLEET.punches(), "every line acknowledged in the end");
    assert_stored_once_gapless(&database, &seen, FLEET).await;
    let mut handed = seen.handed_out.clone();
    handed.sort_unstable();
    let distinct: BTreeSet<i64> = handed.iter().copied().collect();
    assert_eq!(handed.len(), distinct.len(), "a command handed out twice");
    assert_eq!(distinct, queued, "every queued command handed out");

    // Every punch's event delivered (by the worker), and only ever under its one id.
    let all = FLEET.punches();
    wait_for_punch_deliveries(&database, all, Duration::from_secs(300)).await;
    let mut ids_of: HashMap<String, BTreeSet<String>> = HashMap::new();
    for event in events(&receiver, "attendance.punch") {
        let data = &event["data"];
        ids_of
            .entry(format!("{}/{}/{}", data["device"]["sn"], data["pin"], data["local_time"]))
            .or_default()
            .insert(event["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids_of.len(), all);
    assert!(ids_of.values().all(|ids| ids.len() == 1), "a punch's event came under two ids");

    // Presence: the devices fall silent and go offline, one comes back. Each transition is
    // reported once: per device, offline and online alternate.
    let back = FLEET.sn(7);
    eventually_within(Duration::from_secs(60), "every device is reported offline", async || {
        let offline: BTreeSet<String> = events(&receiver, "device.offline")
            .iter()
            .filter_map(|e| e["data"]["device"]["sn"].as_str().map(str::to_owned))
            .collect();
        offline.len() == FLEET.devices
    })
    .await;
    let r = try_request(&proxy_addr, &head("GET", &proxy_addr, &format!("/iclock/getrequest?SN={back}")), b"")
        .await
        .expect("poll");
    assert_eq!(r.status, 200);
    eventually("the device that came back is reported online", async || {
        events(&receiver, "device.online").iter().any(|e| e["data"]["device"]["sn"] == back.as_str())
    })
    .await;
    // Per device, each event once (a re-delivery of an event keeps its id), in time order.
    let mut transitions: BTreeMap<String, BTreeMap<String, (String, String)>> = BTreeMap::new();
    for kind in ["device.offline", "device.online"] {
        for event in events(&receiver, kind) {
            let sn = event["data"]["device"]["sn"].as_str().unwrap().to_owned();
            let at = event["timestamp"].as_str().unwrap().to_owned();
            let id = event["id"].as_str().unwrap().to_owned();
            transitions.entry(sn).or_default().insert(id, (at, kind.to_owned()));
        }
    }
    for (sn, events) in transitions {
        let mut events: Vec<(String, String)> = events.into_values().collect();
        events.sort();
        let kinds: Vec<&str> = events.iter().map(|(_, kind)| kind.as_str()).collect();
        assert!(kinds.windows(2).all(|w| w[0] != w[1]), "{sn}: a transition reported twice: {kinds:?}");
    }
    assert!(seen.failures > 0, "the kill must have failed some requests for this story to mean anything");
}
