//! Kill the server with SIGKILL while devices are uploading: every punch that was acknowledged
//! is on disk after a restart, and the devices' re-sends create no duplicates.

use crate::common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::{Device, Server, count_rows, eventually};
use tokio::sync::Mutex;

const DEVICES: usize = 8;

/// (device number, ATTLOG body) of every batch a device sent.
type SentBatch = (usize, Vec<u8>);

fn batch(device: usize, n: usize) -> (Vec<u8>, Vec<String>) {
    let mut body = Vec::new();
    let mut keys = Vec::new();
    for line in 0..16 {
        let pin = format!("{device}{n:05}{line:02}");
        let minute = (n * 16 + line) % 60;
        let hour = (n * 16 + line) / 60 % 24;
        let time = format!("2026-11-{:02} {hour:02}:{minute:02}:00", 1 + (n * 16 + line) / 1440 % 28);
        body.extend_from_slice(format!("{pin}\t{time}\t0\t1\t0\t0\t0\n").as_bytes());
        keys.push(format!("{device}|{pin}|{time}"));
    }
    (body, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_upload_loses_nothing_acknowledged_and_resends_do_not_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let addr = server.addr.clone();
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let sent: Arc<Mutex<Vec<SentBatch>>> = Arc::default();

    let mut tasks = Vec::new();
    for device in 0..DEVICES {
        let (addr, acked, sent) = (addr.clone(), acked.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let sn = format!("KILL{device}");
            for n in 0.. {
                let (body, keys) = batch(device, n);
                sent.lock().await.push((device, body.clone()));
                let path = format!("/iclock/cdata?SN={sn}&table=ATTLOG&Stamp=9999");
                let head = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain");
                // A connection error or a cut response means "not acknowledged": stop like a
                // device that will resend later.
                let Ok(Ok(response)) =
                    tokio::time::timeout(Duration::from_secs(5), try_request(&addr, &head, &body)).await
                else {
                    return;
                };
                if response.starts_with(b"HTTP/1.1 200") && response.ends_with(b"OK: 16") {
                    acked.lock().await.extend(keys);
                } else {
                    return;
                }
            }
        }));
    }
    // Killed once uploads were acknowledged (while the devices go on uploading).
    eventually("more than 100 punches are acknowledged before the kill", async || acked.lock().await.len() > 100).await;
    server.kill();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().await.clone();
    assert!(acked.len() > 100, "the test must have had uploads acknowledged before the kill ({})", acked.len());

    // Restart on the same database: every acknowledged punch is there.
    let server = Server::start(dir.path(), &[]);
    let stored = stored_keys(&server).await;
    let missing: Vec<&String> = acked.iter().filter(|k| !stored.contains(*k)).collect();
    assert!(missing.is_empty(), "{} acknowledged punches lost, e.g. {:?}", missing.len(), missing.first());

    // Devices resend everything they sent (acknowledged or not): no duplicates, nothing lost.
    let sent = sent.lock().await.clone();
    let mut distinct = BTreeSet::new();
    for (device, body) in &sent {
        let dev = Device { server: &server, sn: format!("KILL{device}") };
        let r = dev.attlog(body).await;
        assert_eq!((r.status, r.text()), (200, "OK: 16".to_owned()));
        for line in String::from_utf8_lossy(body).lines() {
            let mut f = line.split('\t');
            distinct.insert(format!("{device}|{}|{}", f.next().unwrap(), f.next().unwrap()));
        }
    }
    let after = count_rows(server.db(), "punches").await;
    assert_eq!(after as usize, distinct.len(), "one row per distinct punch");
    assert_eq!(stored_keys(&server).await, distinct);
    // And seq stays gapless per device after the crash.
    let gaps = seq_gaps(&server).await;
    assert_eq!(gaps, 0, "per-device seq must stay contiguous");
}

async fn try_request(addr: &str, head: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(format!("\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    stream.write_all(&request).await?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await?;
    Ok(out)
}

async fn stored_keys(server: &Server) -> BTreeSet<String> {
    let rows: Vec<(String, String, String)> = server
        .db()
        .fetch_all("SELECT d.sn, p.pin, p.local_time FROM punches p JOIN devices d ON d.id = p.device_id", &[])
        .await;
    rows.into_iter().map(|(sn, pin, time)| format!("{}|{pin}|{time}", sn.trim_start_matches("KILL"))).collect()
}

async fn seq_gaps(server: &Server) -> i64 {
    server
        .db()
        .scalar_i64(
            "SELECT COUNT(*) FROM (SELECT device_id, COUNT(*) AS cnt, MAX(seq) AS mx FROM punches GROUP BY device_id) \
             AS per_device WHERE cnt <> mx",
            &[],
        )
        .await
}

/// Three processes started at the same instant on a database that does not exist yet all come
/// up (one creates and migrates it, the others wait for it), and serve the same data.
#[tokio::test]
async fn replicas_started_together_on_a_fresh_database_all_come_up() {
    let dir = tempfile::tempdir().unwrap();
    let servers = Server::start_together(dir.path(), &[], 3);
    let mut seen = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let device = common::Device { server, sn: format!("REPL000{i}") };
        assert_eq!(
            device.attlog(format!("{i}\t2026-11-20 08:00:00\t0\t1\t0\t0\t0\n").as_bytes()).await.text(),
            "OK: 1"
        );
        seen.push(count_rows(server.db(), "punches").await);
    }
    assert_eq!(seen, [1, 2, 3], "one database behind all three");
}
