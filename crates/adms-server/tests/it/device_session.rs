//! A terminal's life against the real binary: handshake, options, OPERLOG, ATTLOG (with the
//! quirks firmware really sends), re-upload, polls, command results; then the ERP reads it back.

use crate::common;

use common::{Api, Device, Server, count_rows, raw_request};

#[tokio::test]
async fn scripted_session_then_erp_reads_every_punch_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_TIME_ZONE", "+05:30")]).await;
    let dev = Device { server: &server, sn: "CKJF0000001".into() };

    // Handshake: GET OPTION FROM block, GMT Date, text/plain, exact length, TimeZone in minutes.
    let r = dev.handshake().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let date = r.header("date").expect("Date header");
    assert!(date.ends_with(" GMT"), "{date}");
    assert!(httpdate_parse(date), "RFC 1123 date: {date}");
    assert_eq!(r.header("content-length").and_then(|v| v.parse::<usize>().ok()), Some(r.body.len()));
    let text = r.text();
    assert!(text.starts_with("GET OPTION FROM: CKJF0000001\n"), "{text}");
    assert!(text.contains("\nTimeZone=330\n"));
    assert!(text.contains("\nATTLOGStamp=0\n") && !text.contains("None"));
    assert!(
        text.contains("\nPushProtVer=2.4.1\n") && text.contains("\nRealtime=1\n") && text.contains("\nEncrypt=0\n")
    );

    // Options dump with commas inside values and no trailing newline.
    let r = dev
        .post(
            "/iclock/cdata?SN=CKJF0000001&table=options",
            b"~DeviceName=SpeedFace-V5L,~OEMVendor=ACME Co., Ltd.,FWVersion=ZAM170-NF-Ver1.1.27,UserCount=3,FPCount=2,FaceCount=1,PushVersion=Ver 2.0.32S,IPAddress=192.168.1.201,RegDeviceType=",
        )
        .await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));

    // OPERLOG: OPLOG + USER (Latin-1 name, invalid UTF-8) + FP, one garbage line.
    let operlog = b"OPLOG 0\t0\t2026-11-20 07:59:00\t0\t0\t0\t0\nUSER PIN=016\tName=Jos\xe9\tPri=0\tPasswd=\tCard=[15CD5B07]\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\nFP PIN=016\tFID=6\tSize=8\tValid=1\tTMP=ocoAAA==\n{not a record}\n";
    let r = dev.post("/iclock/cdata?SN=CKJF0000001&table=OPERLOG&Stamp=9999", operlog).await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK: 3"));

    // ATTLOG: 7 columns LF, 8 columns with empty work code + trailing TAB + CRLF, 11 columns,
    // state 255, a PIN with leading zeros, and one impossible date.
    let attlog = b"1452\t2026-11-20 08:00:00\t0\t1\t0\t0\t0\n016\t2026-11-20 08:01:00\t0\t1\t\t0\t0\t\r\n46\t2026-11-20 08:02:00\t1\t15\t0\t0\t0\t0\t0\t0\t10881\n9999\t2026-11-20 08:03:00\t255\t15\t0\t0\t0\t255\t0\t0\t\n7\t2026-13-45 99:99:99\t0\t1\t0\n";
    // no Content-Type at all, as some firmware sends
    let head =
        format!("POST /iclock/cdata.aspx?SN=CKJF0000001&table=attlog&Stamp=9999 HTTP/1.1\r\nHost: {}", server.addr);
    let r = raw_request(&server.addr, &head, attlog).await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK: 4"));
    assert!(r.header("date").is_some());

    // Re-upload of the same batch (as after a reboot): same answer, nothing new.
    let r = dev.attlog(attlog).await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK: 4"));
    assert_eq!(count_rows(server.db(), "punches").await, 4);
    assert_eq!(count_rows(server.db(), "rejected_lines").await, 2, "one ATTLOG + one OPERLOG line kept raw");

    // Polls: first with INFO, then plain; slash and .aspx variants.
    let r =
        dev.get("/iclock/getrequest?SN=CKJF0000001&INFO=ZAM170-NF-Ver1.1.27,3,2,4,192.168.1.201,10,7,15,1,11").await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    for path in ["/iclock/getrequest.aspx?SN=CKJF0000001", "//iclock/getrequest/?SN=CKJF0000001"] {
        let r = dev.get(path).await;
        assert_eq!((r.status, r.text().as_str()), (200, "OK"), "{path}");
    }
    // Batched command results with an INFO payload; unknown ids are still acknowledged.
    let acks = b"ID=1&Return=0&CMD=DATA\nID=2&Return=-1002&CMD=DATA\nID=77&Return=0&CMD=INFO\n~DeviceName=SpeedFace-V5L\nUserCount=5\n";
    let r = dev.post("/iclock/devicecmd?SN=CKJF0000001", acks).await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    assert_eq!(count_rows(server.db(), "command_results").await, 3);
    let r = dev.post("/iclock/devicecmd?SN=CKJF0000001", acks).await;
    assert_eq!(r.status, 200);
    assert_eq!(count_rows(server.db(), "command_results").await, 3, "re-sent acks add nothing");

    // The ERP reads every punch exactly once, in the 9.x shape.
    let api = Api::login(&server).await;
    let rows = api.transactions("").await;
    assert_eq!(rows.len(), 4);
    let codes: Vec<&str> = rows.iter().map(|r| r["emp_code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["1452", "016", "46", "9999"]);
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "dense ascending ids {ids:?}");
    let r016 = &rows[1];
    assert_eq!(r016["punch_time"], "2026-11-20 08:01:00");
    assert_eq!(r016["punch_state"], "0");
    assert_eq!(r016["punch_state_display"], "Check In");
    assert_eq!(r016["verify_type"], 1);
    assert_eq!(r016["verify_type_display"], "Fingerprint");
    assert_eq!(r016["work_code"], "");
    assert_eq!(r016["terminal_sn"], "CKJF0000001");
    assert_eq!(r016["first_name"], "Jos\u{fffd}", "name decoded with replacement; raw bytes kept");
    assert_eq!(rows[3]["punch_state_display"], "Unknown");
    assert_eq!(rows[2]["punch_state_display"], "Check Out");
    assert_eq!(rows[2]["verify_type_display"], "Face");
    for key in ["emp", "last_name", "department", "position", "area_alias", "upload_time", "temperature", "is_mask"] {
        assert!(r016.get(key).is_some(), "key {key} always present");
    }

    let terminals = api.get("/iclock/api/terminals/").await;
    assert_eq!(terminals["count"], 1);
    let t = &terminals["data"][0];
    assert_eq!(t["sn"], "CKJF0000001");
    assert_eq!(t["state"], "1");
    assert_eq!(t["fw_ver"], "ZAM170-NF-Ver1.1.27");
    assert_eq!(t["terminal_name"], "SpeedFace-V5L");
    assert_eq!(t["ip_address"], "192.168.1.201");
    assert_eq!(t["user_count"], 5, "updated by the INFO command result");
    assert_eq!(t["terminal_tz"], 330);
}

/// A new terminal's first request is its handshake: what it tells (push version, address) is
/// stored with the new device row, and a later handshake that tells something else updates it.
/// A first contact that is not a handshake (an upload) registers the device without them.
#[tokio::test]
async fn a_first_handshake_is_stored_with_the_new_device_and_a_later_one_updates_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let push_ver = |list: &serde_json::Value, sn: &str| {
        list["data"].as_array().unwrap().iter().find(|t| t["sn"] == sn).map(|t| t["push_ver"].clone())
    };
    let dev = Device { server: &server, sn: "FIRSTHS01".into() };
    assert_eq!(dev.handshake().await.status, 200);
    let uploader = Device { server: &server, sn: "FIRSTUP01".into() };
    assert!(uploader.attlog(b"1\t2026-12-01 08:00:00\t0\t1\t0\t0\n").await.text().starts_with("OK"));
    let terminals = api.get("/iclock/api/terminals/").await;
    assert_eq!(push_ver(&terminals, "FIRSTHS01"), Some("2.4.1".into()), "{terminals}");
    assert_eq!(push_ver(&terminals, "FIRSTUP01"), Some("".into()), "{terminals}");

    let r = dev.get("/iclock/cdata?SN=FIRSTHS01&options=all&pushver=2.4.2&language=69").await;
    assert_eq!(r.status, 200);
    let terminals = api.get("/iclock/api/terminals/").await;
    assert_eq!(push_ver(&terminals, "FIRSTHS01"), Some("2.4.2".into()), "{terminals}");
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_the_server_survives() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_MAX_BODY_BYTES", "65536")]).await;
    let dev = Device { server: &server, sn: "SN-X".into() };

    // No SN: 400 with a message, nothing stored.
    let r = dev.post("/iclock/cdata?table=ATTLOG", b"1\t2026-01-01 08:00:00\t0\t1\n").await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("SN"), "{}", r.text());
    let r = dev.get("/iclock/getrequest").await;
    assert_eq!(r.status, 400);
    let r = dev.get("/iclock/cdata?SN=a%0Ab&options=all").await;
    assert_eq!(r.status, 400);

    // Body over the limit: an explicit 413, never OK with nothing stored.
    let big = vec![b'1'; 70_000];
    let r = dev.attlog(&big).await;
    assert_eq!(r.status, 413);

    // Binary garbage is rejected line by line and acknowledged.
    let garbage: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let r = dev.attlog(&garbage).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "OK: 0");

    // Unknown table: stored raw, acknowledged.
    let r = dev.post("/iclock/cdata?SN=SN-X&table=FUTURETABLE", b"whatever\x00\xff").await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    assert_eq!(common::count_rows(server.db(), "raw_uploads").await, 1);

    // Expect: 100-continue is honoured (the body is read after the interim answer).
    let body = b"5\t2026-01-01 08:00:00\t0\t1\t0\t0\t0\n";
    let head = format!(
        "POST /iclock/cdata?SN=SN-X&table=ATTLOG HTTP/1.1\r\nHost: {}\r\nExpect: 100-continue\r\nContent-Type: text/plain",
        server.addr
    );
    let r = expect_continue(&server.addr, &head, body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "OK: 1");

    // Still alive and answering.
    let r = dev.get("/iclock/getrequest?SN=SN-X").await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
}

#[tokio::test]
async fn pending_devices_are_stored_but_held_until_approved() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "pending")]).await;
    let dev = Device { server: &server, sn: "NEW-1".into() };
    assert_eq!(dev.handshake().await.status, 200);
    let r = dev.attlog(b"1\t2026-01-01 08:00:00\t0\t1\t0\t0\t0\n").await;
    assert_eq!(r.text(), "OK: 1");
    assert_eq!(count_rows(server.db(), "punches").await, 1, "stored");
    let api = Api::login(&server).await;
    assert_eq!(api.transactions("").await.len(), 0, "held from the API");
    let response = api
        .client
        .patch(server.url("/api/v1/devices/NEW-1"))
        .header("Authorization", format!("Token {}", api.token))
        .json(&serde_json::json!({ "approval": "approved", "alias": "Front door" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let rows = api.transactions("").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["terminal_alias"], "Front door");

    // A body that is not JSON, not an object, or names an unknown field, is a DRF 400 in JSON
    // like the rest of the API (axum's `Json` extractor answered it in plain text), every
    // invalid field named at once. An empty body changes nothing.
    let cases = [
        ("\u{0}", "detail", None),
        ("[]", "non_field_errors", Some("Invalid data. Expected a dictionary.")),
        ("{\"approval\": \"approved\", \"colour\": \"red\"}", "colour", Some("Unknown field.")),
    ];
    for (body, field, message) in cases {
        let response = api
            .client
            .patch(server.url("/api/v1/devices/NEW-1"))
            .header("Authorization", format!("Token {}", api.token))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body:?}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let answer: serde_json::Value = response.json().await.unwrap();
        let said = answer[field].as_str().or_else(|| answer[field][0].as_str()).unwrap_or_else(|| panic!("{answer}"));
        if let Some(message) = message {
            assert_eq!(said, message, "{body:?}");
        }
    }
    let every_field = serde_json::json!({
        "approval": "yes", "alias": "a\u{7}b", "time_zone": "Mars/Olympus", "text_encoding": "klingon"
    });
    let (status, answer) = api.patch_json("/api/v1/devices/NEW-1", &every_field).await;
    assert_eq!(status, 400);
    assert_eq!(
        answer,
        serde_json::json!({
            "approval": ["Must be \"approved\" or \"pending\"."],
            "alias": ["At most 100 printable characters."],
            "time_zone": ["Unknown time zone (IANA name or ±HH:MM)."],
            "text_encoding": ["Unknown encoding label."],
        })
    );
    let (status, answer) = api.send(reqwest::Method::PATCH, "/api/v1/devices/NEW-1", None).await;
    assert_eq!(
        (status, &answer["alias"], &answer["approval"]),
        (200, &serde_json::json!("Front door"), &serde_json::json!("approved"))
    );
}

#[tokio::test]
async fn security_push_device_registers_and_uploads_access_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let dev = Device { server: &server, sn: "ACC-1".into() };
    let r = dev.get("/iclock/cdata?SN=ACC-1&options=all&pushver=3.1.2&DeviceType=acc").await;
    assert_eq!(r.text(), "OK", "unregistered access device is asked to register");
    let r = dev
        .post("/iclock/registry?SN=ACC-1", b"DeviceType=acc,~DeviceName=inBIO460,FirmVer=AC Ver 5.7.6,MachineType=10")
        .await;
    let code = r.text();
    assert!(code.starts_with("RegistryCode=") && code.len() > 13, "{code}");
    let r = dev.get("/iclock/cdata?SN=ACC-1&options=all&pushver=3.1.2&DeviceType=acc").await;
    let text = r.text();
    assert!(text.starts_with("registry=ok\n"), "{text}");
    assert!(text.contains(&code), "same registry code");
    assert!(!text.contains("ATTLOGStamp"));
    let r = dev.get("/iclock/push?SN=ACC-1").await;
    assert!(r.text().contains("TransTables=User Transaction"));
    let r = dev.get("/iclock/rtdata?SN=ACC-1&type=time").await;
    assert!(r.text().starts_with("DateTime=") && r.text().contains(",ServerTZ=+0000"), "{}", r.text());
    let rtlog = b"time=2026-09-28 11:30:05\tpin=76069670\tcardno=0\teventaddr=1\tevent=0\tinoutstatus=0\tverifytype=15\tindex=1\n";
    let r = dev.post("/iclock/cdata?SN=ACC-1&table=rtlog", rtlog).await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    let r = dev.post("/iclock/cdata?SN=ACC-1&table=rtlog", rtlog).await;
    assert_eq!(r.status, 200);
    assert_eq!(count_rows(server.db(), "access_events").await, 1);
    let r = dev.post("/iclock/querydata?SN=ACC-1&type=tabledata&type=tabledata&cmdid=5&tablename=user&count=2&packcnt=1&packidx=1", b"user uid=1\tpin=1\r\nuser uid=2\tpin=2\r\n").await;
    assert_eq!(r.text(), "user=2");
    let r = dev.get("/iclock/ping?SN=ACC-1").await;
    assert_eq!(r.text(), "OK");
}

/// Sends headers, waits for `100 Continue`, then sends the body.
async fn expect_continue(addr: &str, head: &str, body: &[u8]) -> common::RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut interim = [0u8; 64];
    let n = stream.read(&mut interim).await.unwrap();
    assert!(interim[..n].starts_with(b"HTTP/1.1 100"), "{:?}", String::from_utf8_lossy(&interim[..n]));
    stream.write_all(body).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    common::parse_response(&out)
}

fn httpdate_parse(date: &str) -> bool {
    // e.g. "Sun, 22 Nov 2026 12:50:31 GMT"
    let parts: Vec<&str> = date.split(' ').collect();
    parts.len() == 6 && parts[0].ends_with(',') && parts[4].len() == 8 && parts[5] == "GMT"
}

/// A connection that sends its headers too slowly, or sits idle after a request, is closed after
/// `header_read_timeout_secs`; a device that sends whole requests keeps its connection.
#[tokio::test]
async fn slow_or_idle_connections_are_closed_after_the_header_read_timeout() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_HEADER_READ_TIMEOUT_SECS", "1")]).await;
    // Waits for the server to close the connection; `None` if it is still open after `limit`.
    async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        let mut buf = [0u8; 512];
        loop {
            match tokio::time::timeout(limit, stream.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
                Ok(Ok(_)) => continue,
                Err(_) => return None,
            }
        }
    }

    // Headers that never end (a byte now and then would be the same).
    let mut slow = TcpStream::connect(&server.addr).await.unwrap();
    slow.write_all(b"GET /iclock/getrequest?SN=SLOW0001 HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let closed = closed_within(&mut slow, Duration::from_secs(10)).await;
    assert!(closed.is_some_and(|t| t >= Duration::from_millis(900)), "closed after the timeout: {closed:?}");

    // Whole requests on one keep-alive connection are served (the second on the connection the
    // first left open); then, idle, it is closed.
    let mut device = TcpStream::connect(&server.addr).await.unwrap();
    for _ in 0..2 {
        device.write_all(b"GET /iclock/getrequest?SN=KEEP0001 HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = device.read(&mut buf).await.unwrap();
        let reply = String::from_utf8_lossy(&buf[..n]);
        assert!(reply.starts_with("HTTP/1.1 200") && reply.ends_with("\r\n\r\nOK"), "{reply}");
    }
    let closed = closed_within(&mut device, Duration::from_secs(10)).await;
    assert!(closed.is_some_and(|t| t >= Duration::from_millis(800)), "idle connection closed: {closed:?}");
}
