//! Resource limits: memory per upload, the body limit's 413, per-device daily quotas.

use crate::common::{Api, Device, Server, count_rows};

/// `VmHWM` (peak resident set) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// An ATTLOG body of at least `bytes` bytes, every line a distinct punch; returns it and its
/// line count.
fn big_attlog(bytes: usize) -> (Vec<u8>, usize) {
    let mut body = Vec::with_capacity(bytes + 64);
    let mut n = 0usize;
    while body.len() < bytes {
        // Distinct PINs, times spread over a day: every line is a new punch.
        let s = n % 86_400;
        body.extend_from_slice(
            format!("{}\t2026-11-20 {:02}:{:02}:{:02}\t0\t1\t0\t0\t0\n", 100_000 + n, s / 3600, s / 60 % 60, s % 60)
                .as_bytes(),
        );
        n += 1;
    }
    (body, n)
}

/// Before the streaming upload, a 64 MB ATTLOG body raised the server's peak RSS to about
/// 1.5 GB (the whole body, then every punch owned, then the writer's JSON). Read in chunks of
/// whole lines, each committed before the next is read, the peak stays well under 256 MiB.
#[tokio::test(flavor = "multi_thread")]
async fn attlog_64mb_upload_keeps_peak_rss_bounded_and_stores_every_punch_once() {
    const BOUND_KIB: u64 = 256 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let server =
        Server::start(dir.path(), &[("ADMS_MAX_BODY_BYTES", "100000000"), ("ADMS_REQUEST_TIMEOUT_SECS", "600")]);
    let device = Device { server: &server, sn: "RSS0001".into() };
    assert_eq!(device.handshake().await.status, 200);
    let before = peak_rss_kib(server.pid());
    let (body, lines) = big_attlog(64 * 1024 * 1024);
    let r = device.attlog(&body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), format!("OK: {lines}"));
    let peak = peak_rss_kib(server.pid());
    eprintln!("peak RSS: {before} KiB before the upload, {peak} KiB after ({lines} lines, {} bytes)", body.len());
    let api = Api::login(&server).await;
    let page = api.get("/iclock/api/transactions/?page_size=1").await;
    assert_eq!(page["count"], lines, "every punch stored once");
    assert!(peak < BOUND_KIB, "peak RSS {peak} KiB over the bound {BOUND_KIB} KiB");
    // Re-sent whole (as a device does after a 503): no duplicates, same count in the reply.
    let r = device.attlog(&body).await;
    assert_eq!(r.text(), format!("OK: {lines}"));
    let page = api.get("/iclock/api/transactions/?page_size=1").await;
    assert_eq!(page["count"], lines, "a re-sent body adds nothing");
}

#[tokio::test]
async fn body_over_the_limit_answers_413_plain_text_on_device_routes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_MAX_BODY_BYTES", "65536")]).await;
    let device = Device { server: &server, sn: "BIG0001".into() };
    assert_eq!(device.handshake().await.status, 200);
    let (body, _) = big_attlog(70_000);
    let r = device.attlog(&body).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.text(), "ERROR: body too large (limit 65536 bytes)");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let r = device.post("/iclock/cdata?SN=BIG0001&table=FOO", &body).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.text(), "ERROR: body too large (limit 65536 bytes)");
    assert_eq!(count_rows(server.db(), "punches").await, 0);
    assert_eq!(count_rows(server.db(), "raw_uploads").await, 0);
}

#[tokio::test]
async fn body_over_the_limit_answers_413_json_detail_on_api_routes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_MAX_BODY_BYTES", "65536")]).await;
    let api = Api::login(&server).await;
    let big = serde_json::json!({ "url": format!("http://example.com/{}", "x".repeat(70_000)) });
    let (status, answer) = api.post_json("/api/v1/webhooks/endpoints", &big).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["detail"], "Request body too large (limit 65536 bytes).");
    // The personnel routes read at most 256 KiB of their own (under a larger max_body_bytes).
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let big = serde_json::json!({ "emp_code": "1", "first_name": "x".repeat(300_000) });
    let (status, answer) = api.post_json("/personnel/api/employees/", &big).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["detail"], "Request body too large (limit 262144 bytes).");
}

/// `adms_device_quota_refusals_total{kind="<kind>"}` from `/metrics`.
async fn quota_refusals(api: &Api, kind: &str) -> u64 {
    let text = api.metrics_of(&api.server_addr).await;
    let series = format!("adms_device_quota_refusals_total{{kind=\"{kind}\"}} ");
    crate::common::sum_samples(&text, |line| line.starts_with(&series))
        .unwrap_or_else(|| panic!("no {series} in {text}")) as u64
}

/// A raw body of `n` bytes, distinct per `tag`.
fn raw_body(tag: u8, n: usize) -> Vec<u8> {
    let mut body = vec![b'a' + tag; n];
    body[n - 1] = b'\n';
    body
}

#[tokio::test]
async fn raw_quota_refuses_with_413_stores_nothing_and_resets_per_device_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        Server::in_process(dir.path(), &[("ADMS_DEVICE_RAW_QUOTA_BYTES_PER_DAY", "1000"), ("ADMS_TEST_CLOCK", "true")])
            .await;
    let db = server.db();
    let a = Device { server: &server, sn: "QRAW0001".into() };
    let b = Device { server: &server, sn: "QRAW0002".into() };
    let api = Api::login(&server).await;
    let unknown = |d: &Device| format!("/iclock/cdata?SN={}&table=FOO", d.sn);

    let r = a.post(&unknown(&a), &raw_body(0, 600)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    // The same body again stores nothing new and is not charged again.
    let r = a.post(&unknown(&a), &raw_body(0, 600)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    assert_eq!(count_rows(db, "raw_uploads").await, 1);

    let r = a.post(&unknown(&a), &raw_body(1, 600)).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.text(), "ERROR: daily quota for raw uploads exceeded");
    assert_eq!(count_rows(db, "raw_uploads").await, 1, "nothing of the refused request stored");
    let r = a.post(&format!("/iclock/querydata?SN={}&type=tabledata&tablename=user", a.sn), &raw_body(2, 600)).await;
    assert_eq!(r.status, 413);

    // OPERLOG records of unknown kinds are raw data: refused whole when the body has nothing else.
    let records: String = (0..20).map(|i| format!("ZZZ Field={i}{}\n", "y".repeat(40))).collect();
    let operlog = format!("/iclock/cdata?SN={}&table=OPERLOG&Stamp=1", a.sn);
    let r = a.post(&operlog, records.as_bytes()).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(count_rows(db, "device_records").await, 0);
    // A body that also carries a user keeps the user (never limited) and drops the records.
    let mixed = format!("USER PIN=7\tName=Ann\tPri=0\n{records}");
    let r = a.post(&operlog, mixed.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(count_rows(db, "device_users").await, 1);
    assert_eq!(count_rows(db, "device_records").await, 0);
    // Punches are never limited.
    assert_eq!(a.attlog(b"7\t2026-11-20 08:00:00\t0\t1\t0\t0\t0\n").await.text(), "OK: 1");

    // Another device has its own quota.
    let r = b.post(&unknown(&b), &raw_body(3, 600)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    assert_eq!(count_rows(db, "raw_uploads").await, 2);
    assert_eq!(quota_refusals(&api, "raw").await, 4);
    assert_eq!(quota_refusals(&api, "photo").await, 0);

    // The next UTC day (of the server's clock) starts from zero.
    api.advance_clock(86_400).await;
    let r = a.post(&unknown(&a), &raw_body(1, 600)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    assert_eq!(count_rows(db, "raw_uploads").await, 3);
}

/// An `fdata` attendance photo body with `n` bytes of image.
fn photo_body(sn: &str, name: &str, n: usize) -> Vec<u8> {
    let mut body = format!("PIN={name}.jpg\nSN={sn}\nsize={n}\nCMD=uploadphoto\0").into_bytes();
    body.extend(std::iter::repeat_n(0xAB_u8, n));
    body
}

#[tokio::test]
async fn photo_quota_refuses_with_413_stores_nothing_and_resets_per_device_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(
        dir.path(),
        &[("ADMS_DEVICE_PHOTO_QUOTA_BYTES_PER_DAY", "100000"), ("ADMS_TEST_CLOCK", "true")],
    )
    .await;
    let db = server.db();
    let a = Device { server: &server, sn: "QPHO0001".into() };
    let b = Device { server: &server, sn: "QPHO0002".into() };
    let api = Api::login(&server).await;
    let fdata = |d: &Device| format!("/iclock/fdata?SN={}&table=ATTPHOTO", d.sn);

    let r = a.post(&fdata(&a), &photo_body(&a.sn, "20261120080000-1", 60_000)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    assert_eq!(count_rows(db, "att_photos").await, 1);
    let r = a.post(&fdata(&a), &photo_body(&a.sn, "20261120080100-2", 60_000)).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.text(), "ERROR: daily quota for photos exceeded");
    assert_eq!(count_rows(db, "att_photos").await, 1, "nothing of the refused request stored");
    // The ATTPHOTO table of cdata is the same quota.
    let r = a
        .post(&format!("/iclock/cdata?SN={}&table=ATTPHOTO", a.sn), &photo_body(&a.sn, "20261120080200-3", 60_000))
        .await;
    assert_eq!(r.status, 413);
    // User photos (USERPIC) too.
    let userpic = format!("USERPIC PIN=7\tFileName=7.jpg\tSize=60000\tContent={}\n", "Q".repeat(60_000));
    let r = a.post(&format!("/iclock/cdata?SN={}&table=OPERLOG&Stamp=1", a.sn), userpic.as_bytes()).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(count_rows(db, "user_photos").await, 0);

    let r = b.post(&fdata(&b), &photo_body(&b.sn, "20261120080000-1", 60_000)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    assert_eq!(count_rows(db, "att_photos").await, 2);
    assert_eq!(quota_refusals(&api, "photo").await, 3);

    api.advance_clock(86_400).await;
    let r = a.post(&fdata(&a), &photo_body(&a.sn, "20261120080100-2", 60_000)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    assert_eq!(count_rows(db, "att_photos").await, 3);
}

/// A declared length over the limit is refused before any part of a streamed ATTLOG commits.
#[tokio::test]
async fn attlog_over_the_limit_stores_no_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_MAX_BODY_BYTES", "2000000")]).await;
    let device = Device { server: &server, sn: "BIG0002".into() };
    let (body, _) = big_attlog(3_000_000);
    let r = device.attlog(&body).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.text(), "ERROR: body too large (limit 2000000 bytes)");
    assert_eq!(count_rows(server.db(), "punches").await, 0);
}
