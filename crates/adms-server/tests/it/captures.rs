//! Real device payloads from public material (`../shared/captures`, present beside the
//! checkout on the team's machines; never copied into the repository). Invariants only: no
//! panic or 5xx, parsed + rejected lines = total lines, and ingesting twice adds nothing.

use crate::common;

use adms_protocol::operlog::parse_operlog_line;
use adms_protocol::{lines, parse_attlog_line, parse_lines};
use common::{COUNTED_TABLES, Database, Device, Server, count_rows};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    AttLog,
    OperLog,
    BioData,
    Options,
    Registry,
    DeviceCmd,
    RtLog,
    TableData,
    RequestLines,
}

fn classify(name: &str) -> Option<Kind> {
    let n = name.to_ascii_lowercase();
    if n.ends_with(".tsv")
        || n.contains("_head")
        || n.contains("response")
        || n.contains("reply")
        || n.contains("documented")
        || n.contains("command_accepted")
        || n.contains("params_table")
    {
        return None;
    }
    Some(
        if n.contains("request_line")
            || n.contains("query_strings")
            || n.contains("info_lines")
            || n.contains("get_line")
        {
            Kind::RequestLines
        } else if n.contains("attlog") {
            Kind::AttLog
        } else if n.contains("biodata") {
            Kind::BioData
        } else if n.contains("operlog") || n.contains("oplog") {
            Kind::OperLog
        } else if n.contains("registry_body") {
            Kind::Registry
        } else if n.contains("options_body") {
            Kind::Options
        } else if n.contains("devicecmd") || n.contains("ack") {
            Kind::DeviceCmd
        } else if n.contains("rtlog") {
            Kind::RtLog
        } else if n.contains("user_table") {
            Kind::TableData
        } else {
            return None;
        },
    )
}

async fn snapshot(db: &Database) -> Vec<i64> {
    let mut out = Vec::new();
    for t in COUNTED_TABLES {
        out.push(count_rows(db, t).await);
    }
    out
}

#[tokio::test]
async fn every_capture_ingests_without_loss_or_duplicates() {
    let Some(dir) = common::shared_captures() else {
        eprintln!("../shared/captures not present: nothing to check");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::in_process(tmp.path(), &[]).await;
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    entries.sort();
    for (i, path) in entries.iter().enumerate() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(kind) = classify(&name) else { continue };
        let body = std::fs::read(path).unwrap();
        let sn = format!("CAP{i:03}");
        let dev = Device { server: &server, sn: sn.clone() };
        let total = lines(&body).count();
        let (endpoint, expect_count) = match kind {
            Kind::AttLog => {
                let parsed = parse_lines(&body, parse_attlog_line).filter(Result::is_ok).count();
                let rejected = parse_lines(&body, parse_attlog_line).filter(Result::is_err).count();
                assert_eq!(parsed + rejected, total, "{name}");
                (format!("/iclock/cdata?SN={sn}&table=ATTLOG&Stamp=9999"), Some(parsed))
            }
            Kind::OperLog | Kind::BioData => {
                let parsed = parse_lines(&body, parse_operlog_line).filter(Result::is_ok).count();
                let rejected = parse_lines(&body, parse_operlog_line).filter(Result::is_err).count();
                assert_eq!(parsed + rejected, total, "{name}");
                let table = if kind == Kind::BioData { "BIODATA" } else { "OPERLOG" };
                (format!("/iclock/cdata?SN={sn}&table={table}&Stamp=9999"), Some(parsed))
            }
            Kind::Options => (format!("/iclock/cdata?SN={sn}&table=options"), None),
            Kind::Registry => (format!("/iclock/registry?SN={sn}"), None),
            Kind::DeviceCmd => (format!("/iclock/devicecmd?SN={sn}"), None),
            Kind::RtLog => (format!("/iclock/cdata?SN={sn}&table=rtlog"), None),
            Kind::TableData => (format!("/iclock/cdata?SN={sn}&table=tabledata&tablename=user&count={total}"), None),
            Kind::RequestLines => {
                for line in String::from_utf8_lossy(&body).lines() {
                    let target = line.trim().trim_start_matches("GET ").trim_start_matches("POST ");
                    let target = target.split(" HTTP/").next().unwrap_or_default().trim();
                    if target.is_empty() {
                        continue;
                    }
                    let target = if target.starts_with('/') {
                        target.to_owned()
                    } else {
                        format!("/iclock/getrequest?{target}")
                    };
                    let r = dev.get(&target).await;
                    assert!(r.status == 200 || r.status == 400, "{name}: {target} -> {}", r.status);
                }
                checked += 1;
                continue;
            }
        };
        let r1 = dev.post(&endpoint, &body).await;
        assert_eq!(r1.status, 200, "{name}: {}", r1.text());
        if let Some(n) = expect_count {
            assert_eq!(r1.text(), format!("OK: {n}"), "{name}");
        }
        let after_first = snapshot(server.db()).await;
        let r2 = dev.post(&endpoint, &body).await;
        assert_eq!((r2.status, r2.text()), (r1.status, r1.text()), "{name}: same answer on re-send");
        let after_second = snapshot(server.db()).await;
        assert_eq!(after_first, after_second, "{name}: re-ingest added rows ({COUNTED_TABLES:?})");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} captures checked");
    // The server is still healthy.
    let r = Device { server: &server, sn: "AFTER".into() }.get("/iclock/getrequest?SN=AFTER").await;
    assert_eq!(r.status, 200);
}
