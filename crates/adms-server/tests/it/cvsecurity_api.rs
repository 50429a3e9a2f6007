//! The CVSecurity-compatible API (issue 19) driven the way its clients call it
//! (`cvsecurity_api.md`): `access_token` in the query or a form body, parameters in the query, a
//! form body or a JSON body, unversioned/`v2`/`v3` paths, `{code, message, data}` envelopes with
//! HTTP 200 and the reference's negative codes; tokens from `adms-bridge token create --kind
//! cvsecurity` that open nothing else; writes that reach the controller's command queue.

use std::path::Path;
use std::process::Stdio;

use crate::common::polling::{acknowledge, poll, texts};
use crate::common::{self, Api, Database, Device, Server};
use serde_json::{Value, json};

/// `adms-bridge token …` on the database of `dir`; its standard output.
fn token_cli(dir: &Path, args: &[&str]) -> String {
    let mut command = Database::of(dir).command();
    let output = command.arg("token").args(args).env("RUST_LOG", "warn").stdin(Stdio::null()).output().unwrap();
    assert!(output.status.success(), "token {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A CVSecurity client: every call checks HTTP 200 and returns the envelope.
struct Cv {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Cv {
    fn new(server: &Server, token: &str) -> Cv {
        Cv { client: reqwest::Client::new(), base: server.url(""), token: token.to_owned() }
    }

    async fn answer(request: reqwest::RequestBuilder) -> Value {
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), 200);
        response.json().await.expect("an envelope")
    }

    /// The URL with the token appended to the query.
    fn url(&self, path_and_query: &str) -> String {
        let sep = if path_and_query.contains('?') { '&' } else { '?' };
        format!("{}{path_and_query}{sep}access_token={}", self.base, self.token)
    }

    async fn get(&self, path_and_query: &str) -> Value {
        Cv::answer(self.client.get(self.url(path_and_query))).await
    }

    /// POST with the token in the query and the parameters as a form body.
    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Value {
        Cv::answer(self.client.post(self.url(path)).form(form)).await
    }

    /// POST with the token in the query and a JSON body.
    async fn post_json(&self, path: &str, body: &Value) -> Value {
        Cv::answer(self.client.post(self.url(path)).json(body)).await
    }
}

fn assert_success(envelope: &Value) {
    assert_eq!((envelope["code"].as_i64(), envelope["message"].as_str()), (Some(0), Some("success")), "{envelope}");
}

fn code(envelope: &Value) -> i64 {
    envelope["code"].as_i64().unwrap_or_else(|| panic!("no code: {envelope}"))
}

/// An access controller with four doors, an employee `7` with a card, a time segment and a
/// level `Staff` on doors 1 and 3; returns the level's id.
async fn access_setup(server: &Server, api: &Api, sn: &str) -> i64 {
    let dev = Device { server, sn: sn.into() };
    let registry = b"DeviceType=acc,~DeviceName=inBIO460,LockCount=4,ReaderCount=4,AuxInCount=4,AuxOutCount=4";
    assert_eq!(dev.post(&format!("/iclock/registry?SN={sn}"), registry).await.status, 200);
    let doors = api.get(&format!("/api/v1/access/doors?sn={sn}")).await;
    let door: Vec<i64> = doors["data"].as_array().unwrap().iter().map(|d| d["id"].as_i64().unwrap()).collect();
    let employee = json!({ "emp_code": "7", "first_name": "Ana", "last_name": "Lima", "card_no": "123456", "department": 1, "area": [1] });
    let (status, answer) = api.post_json("/personnel/api/employees/", &employee).await;
    assert_eq!(status, 201, "{answer}");
    let segment = json!({ "name": "Office", "schedule": { "monday": ["08:00-18:00"] } });
    let (_, segment) = api.post_json("/api/v1/access/time-segments", &segment).await;
    let level = json!({ "name": "Staff", "time_segment_id": segment["id"] });
    let (_, level) = api.post_json("/api/v1/access/levels", &level).await;
    let level = level["id"].as_i64().unwrap();
    let (status, _) = api
        .post_json(&format!("/api/v1/access/levels/{level}/doors"), &json!({ "door_ids": [door[0], door[2]] }))
        .await;
    assert_eq!(status, 200);
    level
}

#[tokio::test]
async fn an_access_token_opens_the_cvsecurity_paths_only_and_nothing_else_opens_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let token = token_cli(dir.path(), &["create", "--kind", "cvsecurity", "--name", "visitors"]);
    assert_eq!(token.len(), 64, "CVSecurity's secret shape: {token}");
    let reader = token_cli(dir.path(), &["create", "--kind", "cvsecurity", "--name", "siem", "--read-only"]);
    let cv = Cv::new(&server, &token);

    assert_success(&cv.get("/api/accLevel/list?pageNo=1&pageSize=10").await);
    // The manual's `acc_token` spelling, and the token in a form body (a Java client's way).
    let url = server.url(&format!("/api/v2/accLevel/list?pageNo=1&pageSize=10&acc_token={token}"));
    assert_success(&Cv::answer(cv.client.get(url)).await);
    let form = [("access_token", token.as_str()), ("pageNo", "1"), ("pageSize", "5")];
    assert_success(&Cv::answer(cv.client.post(server.url("/api/device/accList")).form(&form)).await);

    // Missing, unknown, and other credentials: HTTP 200, code -401.
    for bad in
        [Cv::new(&server, ""), Cv::new(&server, "8D1E0000000000000000000000000000"), Cv::new(&server, &api.token)]
    {
        let answer = bad.get("/api/accLevel/list?pageNo=1&pageSize=10").await;
        assert_eq!((code(&answer), answer["message"].as_str()), (-401, Some("Authentication required")), "{answer}");
        assert_eq!(answer["data"], Value::Null);
    }
    let answer = Cv::answer(
        cv.client
            .get(server.url("/api/accLevel/list?pageNo=1&pageSize=10"))
            .header("Authorization", format!("Token {}", api.token)),
    )
    .await;
    assert_eq!(code(&answer), -401, "an API key in a header opens no CVSecurity path");
    // ... and the CVSecurity token opens no other route, in a header or in the query.
    let native = cv.client.get(server.url("/iclock/api/terminals/")).header("Authorization", format!("Token {token}"));
    assert_eq!(native.send().await.unwrap().status(), 401);
    let native = cv.client.get(server.url(&format!("/api/v1/access/doors?access_token={token}")));
    assert_eq!(native.send().await.unwrap().status(), 401);

    // A read-only client reads but may not write.
    let siem = Cv::new(&server, &reader);
    assert_success(&siem.get("/api/door/list").await);
    let refused = siem.post_form("/api/door/remoteOpenById", &[("doorId", "1"), ("interval", "5")]).await;
    assert_eq!(code(&refused), -403, "{refused}");

    // A body over the limit: 413 with an envelope, nothing done.
    let oversized = vec![b'x'; 300 * 1024];
    let response = cv.client.post(cv.url("/api/door/remoteOpenById")).body(oversized).send().await.unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], -1);

    let list = token_cli(dir.path(), &["list"]);
    assert!(list.lines().any(|l| l.contains("\tvisitors\tactive\tcvsecurity:read+access\t")), "{list}");
    assert!(
        list.lines().any(|l| l.contains("\tsiem\tactive\tcvsecurity:read\t") && l.contains("last used 20")),
        "{list}"
    );
    token_cli(dir.path(), &["revoke", "--kind", "cvsecurity", "visitors"]);
    assert_eq!(code(&cv.get("/api/accLevel/list?pageNo=1&pageSize=10").await), -401, "revoked");
}

#[tokio::test]
async fn persons_departments_cards_and_levels_read_from_query_form_and_json_in_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "auto")]).await;
    let api = Api::login(&server).await;
    let level = access_setup(&server, &api, "ACC0101").await;
    let cv = Cv::new(&server, &token_cli(dir.path(), &["create", "--kind", "cvsecurity", "--name", "erp"]));

    let person = cv.get("/api/person/get/7").await;
    assert_success(&person);
    assert_eq!((person["data"]["name"].as_str(), person["data"]["lastName"].as_str()), (Some("Ana"), Some("Lima")));
    assert_eq!((person["data"]["cardNo"].as_str(), person["data"]["deptCode"].as_str()), (Some("123456"), Some("1")));
    assert_eq!(person["data"]["personPwd"], "", "passwords are never shown");
    assert_eq!(cv.get("/api/v2/person/get?pin=7").await["data"]["pin"], "7");
    assert_eq!(code(&cv.get("/api/person/get?pin=nobody").await), -22);
    assert_eq!(code(&cv.get("/api/person/get").await), -20);

    // The person list: JSON body (the manual), query (Swagger), form body; bare and paged.
    let bare = cv.post_json("/api/person/getPersonList", &json!({ "pins": "7,8", "pageNo": 1, "pageSize": 10 })).await;
    assert_eq!(bare["data"].as_array().map(Vec::len), Some(1), "{bare}");
    let paged = cv.post_json("/api/v2/person/getPersonList?pageNo=1&pageSize=10", &json!({ "deptCodes": ["1"] })).await;
    assert_eq!((paged["data"]["total"].as_i64(), paged["data"]["page"].as_i64()), (Some(1), Some(0)), "{paged}");
    assert_eq!((paged["data"]["size"].as_i64(), paged["data"]["lastPage"].as_bool()), (Some(1), Some(true)));
    assert_eq!(paged["data"]["data"][0]["pin"], "7");
    let form =
        cv.post_form("/api/v2/person/getPersonList", &[("pins", "7"), ("pageNo", "2"), ("pageSize", "10")]).await;
    assert_eq!((form["data"]["total"].as_i64(), form["data"]["data"].as_array().map(Vec::len)), (Some(1), Some(0)));
    // Paging errors: missing, not positive, too large.
    assert_eq!(code(&cv.post_json("/api/person/getPersonList", &json!({ "pins": "7" })).await), -92);
    assert_eq!(code(&cv.get("/api/person/getPersonList?pageNo=0&pageSize=10").await), -90);
    assert_eq!(code(&cv.get("/api/person/getPersonList?pageNo=1&pageSize=x").await), -90);
    assert_eq!(code(&cv.get("/api/person/getPersonList?pageNo=1&pageSize=10001").await), -91);
    let too_many = vec!["1"; 1001].join(",");
    assert_eq!(code(&cv.get(&format!("/api/person/getPersonList?pageNo=1&pageSize=10&pins={too_many}")).await), -1);

    let departments = cv.post_form("/api/department/getDepartmentList", &[("pageNo", "1"), ("pageSize", "10")]).await;
    assert_eq!(departments["data"]["data"][0]["code"], "1", "{departments}");
    assert_eq!(cv.get("/api/department/get/1").await["data"]["code"], "1");
    assert_eq!(code(&cv.get("/api/v2/department/get?code=nope").await), -13);
    let cards = cv.get("/api/card/getCards?pin=7").await;
    assert_eq!(cards["data"], json!([{ "pin": "7", "cardNo": "123456", "cardType": "0" }]));

    // Levels: 32-hex ids (and the decimal id) on unversioned and v2 paths.
    let levels = cv.get("/api/accLevel/list?pageNo=1&pageSize=10").await;
    let hex = levels["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!((hex.len(), levels["data"][0]["name"].as_str()), (32, Some("Staff")));
    let v2 = cv.get("/api/v2/accLevel/list?pageNo=1&pageSize=10").await;
    assert_eq!((v2["data"]["total"].as_i64(), v2["data"]["data"][0]["id"].as_str()), (Some(1), Some(hex.as_str())));
    assert_eq!(cv.get(&format!("/api/accLevel/getById/{hex}")).await["data"]["name"], "Staff");
    assert_eq!(cv.get(&format!("/api/v2/accLevel/getById?id={level}")).await["data"]["id"], hex.as_str());
    assert_eq!(cv.get("/api/v2/accLevel/getByName?name=Staff").await["data"]["id"], hex.as_str());
    assert_eq!(code(&cv.get("/api/accLevel/getById/402856aa000000000000000000000001").await), -24);
    assert_eq!(code(&cv.get("/api/accLevel/list").await), -92);

    // Doors, readers and devices.
    let doors = cv.get("/api/door/list").await;
    assert_eq!(doors["data"].as_array().map(Vec::len), Some(4), "paging is optional on door/list");
    let door = doors["data"][0].clone();
    assert_eq!((door["name"].as_str(), door["deviceSn"].as_str()), (Some("ACC0101-1"), Some("ACC0101")));
    let door_id = door["id"].as_str().unwrap();
    assert_eq!(cv.get(&format!("/api/door/get?id={door_id}")).await["data"], door);
    assert_eq!(code(&cv.get("/api/door/get").await), -44);
    let readers = cv.get("/api/v2/reader/list?pageNo=1&pageSize=3").await;
    assert_eq!((readers["data"]["total"].as_i64(), readers["data"]["lastPage"].as_bool()), (Some(8), Some(false)));
    assert_eq!(readers["data"]["data"][1]["name"], "ACC0101-1-Out");
    let reader_id = readers["data"]["data"][1]["id"].as_str().unwrap();
    assert_eq!(cv.get(&format!("/api/reader/getAcc?id={reader_id}")).await["data"]["readerState"], 1);
    let devices = cv.get("/api/device/accList?pageNo=1&pageSize=10").await;
    assert_eq!(devices["data"][0]["sn"], "ACC0101");
    assert_eq!((devices["data"][0]["state"].as_str(), devices["data"][0]["module"].as_str()), (Some("1"), Some("acc")));
    assert_eq!(code(&cv.get("/api/device/getAcc?sn=NOPE").await), -102);
}

#[tokio::test]
async fn level_writes_and_a_remote_open_reach_the_controller_through_the_command_queue() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "auto")]).await;
    let api = Api::login(&server).await;
    let level = access_setup(&server, &api, "ACC0201").await;
    let dev = Device { server: &server, sn: "ACC0201".into() };
    let cv = Cv::new(&server, &token_cli(dir.path(), &["create", "--kind", "cvsecurity", "--name", "gym"]));
    let level_hex = format!("{level:032x}");

    // The gym client's way: addLevelPerson then syncPerson, parameters in the query.
    let added = cv.post_json(&format!("/api/accLevel/addLevelPerson?pin=7&levelIds={level_hex}"), &json!({})).await;
    assert_success(&added);
    assert_eq!(added["data"], Value::Null);
    let first = poll(&dev).await;
    let tz = api.get("/api/v1/access/time-segments").await["data"][0]["id"].as_i64().unwrap();
    let authorize = format!("DATA UPDATE userauthorize Pin=7\tAuthorizeTimezoneId={tz}\tAuthorizeDoorId=5");
    assert_eq!(texts(&first).last().copied(), Some(authorize.as_str()), "{first:?}");
    acknowledge(&dev, &first).await;
    assert_success(&cv.post_form("/api/accLevel/syncPerson", &[("pin", "7"), ("levelIds", &level_hex)]).await);
    assert!(poll(&dev).await.is_empty(), "in sync already: nothing is sent twice");
    assert_success(&cv.post_form("/api/accLevel/syncLevel", &[("levelId", &level.to_string())]).await);
    assert!(poll(&dev).await.is_empty());

    // Refusals, with the reference's codes, change nothing.
    assert_eq!(code(&cv.post_form("/api/accLevel/addLevelPerson", &[("levelIds", &level_hex)]).await), -20);
    assert_eq!(code(&cv.post_form("/api/accLevel/addLevelPerson", &[("pin", "7")]).await), -42);
    assert_eq!(code(&cv.post_form("/api/accLevel/addLevelPerson", &[("pin", "nobody"), ("levelIds", "1")]).await), -22);
    let unknown = cv.post_form("/api/accLevel/addLevelPerson", &[("pin", "7"), ("levelIds", "99")]).await;
    assert_eq!(code(&unknown), -24);
    assert_eq!(code(&cv.post_form("/api/accLevel/syncLevel", &[]).await), -43);

    // A remote open by id (form body, as the TS client posts it) and by name; a bad interval.
    let doors = cv.get("/api/door/list").await;
    let door_id = doors["data"][0]["id"].as_str().unwrap().to_owned();
    assert_success(&cv.post_form("/api/door/remoteOpenById", &[("doorId", &door_id), ("interval", "5")]).await);
    assert_success(&cv.get("/api/door/remoteOpenByName?doorName=ACC0201-3&interval=10").await);
    assert_success(&cv.post_form("/api/door/remoteoffById", &[("doorId", &door_id)]).await);
    for interval in ["0", "255", "x"] {
        let refused = cv.post_form("/api/door/remoteOpenById", &[("doorId", &door_id), ("interval", interval)]).await;
        assert_eq!(code(&refused), -45, "{interval}");
    }
    assert_eq!(code(&cv.post_form("/api/door/remoteOpenById", &[("interval", "5")]).await), -44);
    assert_eq!(
        code(&cv.post_form("/api/door/remoteOpenByName", &[("doorName", "Nowhere"), ("interval", "5")]).await),
        -47
    );
    let opened = poll(&dev).await;
    assert_eq!(texts(&opened), ["CONTROL DEVICE 01010105", "CONTROL DEVICE 0103010A", "CONTROL DEVICE 01010100"]);
    acknowledge(&dev, &opened).await;

    // deleteLevel takes the person out: their right and user go.
    assert_success(&cv.post_form("/api/accLevel/deleteLevel", &[("pin", "7"), ("levelIds", &level_hex)]).await);
    let removed = poll(&dev).await;
    let right = format!("DATA DELETE userauthorize Pin=7\tAuthorizeTimezoneId={tz}");
    assert_eq!(texts(&removed)[..2], [right.as_str(), "DATA DELETE user Pin=7"], "{removed:?}");
    assert_success(&cv.post_form("/api/accLevel/deleteLevel", &[("pin", "7"), ("levelIds", &level_hex)]).await);

    // Every write is in the audit log under the client's name.
    let audit = api.get("/api/v1/audit-log?page_size=100").await;
    let by_client = audit["data"].as_array().unwrap().iter().filter(|e| e["actor"] == "cvsecurity:gym").count();
    assert!(by_client >= 8, "{audit}");
}

#[tokio::test]
async fn transactions_come_from_stored_rtlog_events_on_v1_v2_and_v3_paths() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "auto")]).await;
    let api = Api::login(&server).await;
    access_setup(&server, &api, "ACC0301").await;
    let dev = Device { server: &server, sn: "ACC0301".into() };
    let body = "time=2026-12-06 09:00:00\tpin=7\tcardno=123456\teventaddr=1\tevent=0\tinoutstatus=0\tverifytype=4\tindex=11\n\
                time=2026-12-06 09:05:00\tpin=0\tcardno=0\teventaddr=2\tevent=102\tinoutstatus=0\tverifytype=200\tindex=12\n\
                time=2026-12-07 10:00:00\tpin=7\tcardno=123456\teventaddr=3\tevent=23\tinoutstatus=1\tverifytype=4\tindex=13\n";
    assert_eq!(dev.post("/iclock/cdata?SN=ACC0301&table=rtlog", body.as_bytes()).await.status, 200);
    let cv =
        Cv::new(&server, &token_cli(dir.path(), &["create", "--kind", "cvsecurity", "--name", "siem", "--read-only"]));

    let all = cv.get("/api/transaction/list?pageNo=1&pageSize=10").await;
    assert_success(&all);
    let rows = all["data"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{all}");
    let granted = &rows[0];
    assert_eq!(
        (granted["pin"].as_str(), granted["name"].as_str(), granted["cardNo"].as_str()),
        (Some("7"), Some("Ana"), Some("123456"))
    );
    assert_eq!((granted["eventNo"].as_i64(), granted["eventName"].as_str()), (Some(0), Some("Normal Verify Open")));
    assert_eq!(
        (granted["eventPointName"].as_str(), granted["readerName"].as_str()),
        (Some("ACC0301-1"), Some("ACC0301-1-In"))
    );
    assert_eq!((granted["devSn"].as_str(), granted["verifyModeName"].as_str()), (Some("ACC0301"), Some("Card")));
    assert_eq!((granted["eventTime"].as_str(), granted["eventLevel"].as_i64()), (Some("2026-12-06 09:00:00"), Some(0)));
    let forced = &rows[1];
    assert_eq!(
        (forced["pin"].as_str(), forced["eventName"].as_str(), forced["eventLevel"].as_i64()),
        (Some(""), Some("Opened Forcefully"), Some(2))
    );
    assert_eq!((rows[2]["readerName"].as_str(), rows[2]["readerState"].as_i64()), (Some("ACC0301-3-Out"), Some(1)));

    let v2 = cv.get("/api/v2/transaction/list?pageNo=2&pageSize=2&personPin=7").await;
    assert_eq!(
        (v2["data"]["total"].as_i64(), v2["data"]["page"].as_i64(), v2["data"]["lastPage"].as_bool()),
        (Some(2), Some(1), Some(true)),
        "{v2}"
    );
    assert_eq!(v2["data"]["data"].as_array().map(Vec::len), Some(0));
    let day = cv.get("/api/v2/transaction/list?pageNo=1&pageSize=10&startDate=2026-12-07&endDate=2026-12-07").await;
    assert_eq!(day["data"]["total"], 1, "{day}");
    let by_device = cv.get("/api/transaction/device/ACC0301?pageNo=1&pageSize=10").await;
    assert_eq!(by_device["data"].as_array().map(Vec::len), Some(3));
    assert_eq!(cv.get("/api/v2/transaction/device/OTHER?pageNo=1&pageSize=10").await["data"]["total"], 0);
    assert_eq!(cv.get("/api/v3/transaction/device?deviceSn=ACC0301&pageNo=1&pageSize=1").await["data"]["total"], 3);
    assert_eq!(code(&cv.get("/api/v3/transaction/device?pageNo=1&pageSize=1").await), -200);
    assert_eq!(
        cv.get("/api/transaction/person/7?pageNo=1&pageSize=10").await["data"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(cv.get("/api/v3/transaction/person?pin=7&pageNo=1&pageSize=10").await["data"]["total"], 2);

    let id = granted["id"].as_str().unwrap();
    assert_eq!(cv.get(&format!("/api/transaction/getById/{id}")).await["data"], *granted);
    assert_eq!(cv.get(&format!("/api/v2/transaction/getById?id={id}")).await["data"]["eventNo"], 0);
    let missing = cv.get("/api/v2/transaction/getById?id=999999").await;
    assert_eq!((code(&missing), missing["message"].as_str()), (-1, Some("the transaction does not exist")));

    // Paging and time errors.
    assert_eq!(code(&cv.get("/api/transaction/list?pageNo=1&pageSize=1001").await), -91);
    assert_eq!(code(&cv.get("/api/transaction/list?pageNo=-1&pageSize=10").await), -90);
    assert_eq!(code(&cv.get("/api/transaction/list").await), -92);
    assert_eq!(code(&cv.get("/api/transaction/list?pageNo=1&pageSize=10&startDate=yesterday").await), -100);
    let reversed = "/api/transaction/list?pageNo=1&pageSize=10&startDate=2026-12-08&endDate=2026-12-01";
    assert_eq!(code(&cv.get(reversed).await), -101);
    // A body that is not JSON although it looks like it: a program error, still an envelope.
    let url = server.url("/api/transaction/list?pageNo=1&pageSize=10&access_token=x");
    let broken = Cv::answer(cv.client.post(url).header("Content-Type", "application/json").body("{nope")).await;
    assert_eq!(code(&broken), -1);
}

#[tokio::test]
async fn the_monitor_hands_out_each_new_event_once_per_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "auto")]).await;
    let api = Api::login(&server).await;
    access_setup(&server, &api, "ACC0401").await;
    let dev = Device { server: &server, sn: "ACC0401".into() };
    let cv = Cv::new(&server, &token_cli(dir.path(), &["create", "--kind", "cvsecurity", "--name", "siem"]));
    // The client's session timestamp, picked before the events (and sent unchanged every poll).
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() - 1000;
    let url = format!("/api/transaction/monitor?timestamp={started}");
    assert_success(&cv.get(&url).await);
    let body = "time=2026-12-06 09:00:00\tpin=7\tcardno=123456\teventaddr=1\tevent=0\tinoutstatus=0\tverifytype=4\tindex=21\n\
                time=2026-12-06 09:05:00\tpin=0\tcardno=0\teventaddr=2\tevent=102\tinoutstatus=0\tverifytype=200\tindex=22\n";
    assert_eq!(dev.post("/iclock/cdata?SN=ACC0401&table=rtlog", body.as_bytes()).await.status, 200);

    // Each event is handed out once.
    let mut rows: Vec<Value> = Vec::new();
    common::eventually("both events reach the monitor", async || {
        let answer = cv.get(&url).await;
        assert_success(&answer);
        rows.extend(answer["data"].as_array().cloned().unwrap_or_default());
        rows.len() >= 2
    })
    .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0]["id"].clone(), rows[0]["eventName"].as_str()), (Value::Null, Some("Normal Verify Open")));
    assert_eq!((rows[1]["eventNo"].as_i64(), rows[1]["devSn"].as_str()), (Some(102), Some("ACC0401")));
    assert_eq!(cv.get(&url).await["data"], json!([]), "handed out once");
    // Another session (timestamp) of the same client starts from its own timestamp.
    assert_eq!(
        cv.get(&format!("/api/transaction/monitor?timestamp={}", started - 1)).await["data"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(code(&cv.get("/api/transaction/monitor").await), -100);
    assert_eq!(code(&cv.get("/api/transaction/monitor?timestamp=soon").await), -100);
}

#[tokio::test]
async fn door_states_come_from_the_controllers_last_rtstate() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "auto")]).await;
    let api = Api::login(&server).await;
    access_setup(&server, &api, "ACC0501").await;
    let dev = Device { server: &server, sn: "ACC0501".into() };
    let cv = Cv::new(&server, &token_cli(dir.path(), &["create", "--kind", "cvsecurity", "--name", "psim"]));
    let before = cv.get("/api/door/allDoorState?timestamp=1").await;
    assert_eq!(before["data"].as_array().map(Vec::len), Some(4), "{before}");
    assert_eq!(
        (before["data"][0]["sensor"].as_str(), before["data"][0]["alarm"].as_str()),
        (Some("unknown"), Some("unknown"))
    );

    // Door 1 open with its lock released, door 2 closed and held open too long.
    let rtstate = b"time=2026-12-06 09:00:00\tsensor=0201\trelay=0100\talarm=0000000000000000\n\
                    time=2026-12-06 09:00:05\tsensor=0601\trelay=0100\talarm=0010000000000000\n";
    let r = dev.post("/iclock/cdata?SN=ACC0501&table=rtstate", rtstate).await;
    assert_eq!((r.status, r.text()), (200, "OK".to_owned()));
    let all = cv.get("/api/door/allDoorState").await;
    assert_success(&all);
    let door1 = &all["data"][0];
    assert_eq!((door1["name"].as_str(), door1["connect"].as_str()), (Some("ACC0501-1"), Some("1")), "{all}");
    assert_eq!(
        (door1["sensor"].as_str(), door1["relay"].as_str(), door1["alarm"].as_str()),
        (Some("open"), Some("open"), Some("none"))
    );
    let door2 = &all["data"][1];
    assert_eq!(
        (door2["sensor"].as_str(), door2["relay"].as_str(), door2["alarm"].as_str()),
        (Some("off"), Some("off"), Some("timeout"))
    );
    let id = door2["id"].as_str().unwrap();
    assert_eq!(cv.get(&format!("/api/door/doorStateById?doorId={id}&timestamp=1")).await["data"], *door2);
    assert_eq!(cv.get("/api/door/doorStateBySn?deviceSn=ACC0501").await["data"].as_array().map(Vec::len), Some(4));
    assert_eq!(code(&cv.get("/api/door/doorStateBySn?deviceSn=NOPE").await), -102);
    assert_eq!(code(&cv.get("/api/door/doorStateById").await), -44);
}

/// A server whose CVSecurity language is Spanish names events, verify modes and readers as a
/// Spanish CVSecurity does (a client string-compares "Usuario no registrado").
#[tokio::test]
async fn event_verify_mode_and_reader_names_follow_the_configured_language() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("ADMS_UNKNOWN_DEVICES", "auto"), ("ADMS_CVSECURITY_LANGUAGE", "es")];
    let server = Server::in_process(dir.path(), &env).await;
    let api = Api::login(&server).await;
    access_setup(&server, &api, "ACC0601").await;
    let dev = Device { server: &server, sn: "ACC0601".into() };
    let body = "time=2026-12-06 09:00:00\tpin=99\tcardno=0\teventaddr=1\tevent=27\tinoutstatus=1\tverifytype=4\tindex=1\n\
                time=2026-12-06 09:01:00\tpin=7\tcardno=123456\teventaddr=3\tevent=0\tinoutstatus=0\tverifytype=1\tindex=2\n";
    assert_eq!(dev.post("/iclock/cdata?SN=ACC0601&table=rtlog", body.as_bytes()).await.status, 200);
    let cv = Cv::new(&server, &token_cli(dir.path(), &["create", "--kind", "cvsecurity", "--name", "parking"]));
    let list = cv.get("/api/transaction/list?pageNo=1&pageSize=10").await;
    assert_success(&list);
    let names: Vec<(&str, &str, &str)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (r["eventName"].as_str().unwrap(), r["verifyModeName"].as_str().unwrap(), r["readerName"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        names,
        [
            ("Usuario no registrado", "Tarjeta", "ACC0601-1-Salida"),
            ("Apertura con verificación normal", "Huella", "ACC0601-3-Entrada")
        ]
    );
    // The webhook and the native API stay English: the language is the CVSecurity API's.
    let events = api.get("/api/v1/devices/ACC0601/access-events").await;
    assert_eq!(events["data"][0]["event_name"], "Unregistered Personnel");
}

#[tokio::test]
async fn person_add_upserts_a_person_with_levels_and_reaches_the_controller() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "auto")]).await;
    let api = Api::login(&server).await;
    let level = access_setup(&server, &api, "ACC0601").await;
    let dev = Device { server: &server, sn: "ACC0601".into() };
    let cv = Cv::new(&server, &token_cli(dir.path(), &["create", "--kind", "cvsecurity", "--name", "gym"]));
    let member = json!({
        "pin": "900", "name": "Rui", "lastName": "Sá", "gender": "M", "deptCode": "1", "cardNo": "555",
        "accLevelIds": format!("{level:032x}"), "accStartTime": "2026-12-01 00:00:00", "accEndTime": "2099-01-31 23:59:59",
    });
    // Nothing changes when a level is unknown.
    let unknown = cv.post_json("/api/person/add", &json!({ "pin": "900", "accLevelIds": "4242" })).await;
    assert_eq!(code(&unknown), -24);
    assert_eq!(code(&cv.get("/api/person/get/900").await), -22);

    assert_success(&cv.post_json("/api/person/add", &member).await);
    let person = cv.get("/api/person/get/900").await["data"].clone();
    assert_eq!(
        (person["name"].as_str(), person["lastName"].as_str(), person["cardNo"].as_str()),
        (Some("Rui"), Some("Sá"), Some("555"))
    );
    assert_eq!(person["accLevelIds"], format!("{level:032x}"));
    let lines = poll(&dev).await;
    let user = texts(&lines).into_iter().find(|l| l.starts_with("DATA UPDATE user ")).unwrap_or_default().to_owned();
    assert!(user.contains("Pin=900") && user.contains("CardNo=555") && user.contains("EndTime=20990131"), "{lines:?}");
    acknowledge(&dev, &lines).await;

    // An upsert: a second add changes what it names and keeps the rest; "" removes the card.
    assert_success(&cv.post_json("/api/person/add", &json!({ "pin": "900", "name": "Rui M.", "cardNo": "" })).await);
    let person = cv.get("/api/person/get?pin=900").await["data"].clone();
    assert_eq!(
        (person["name"].as_str(), person["lastName"].as_str(), person["cardNo"].as_str()),
        (Some("Rui M."), Some("Sá"), Some(""))
    );
    // Refusals: another person's card, a bad pin, a bad window, a read-only client.
    let taken = cv.post_json("/api/person/add", &json!({ "pin": "901", "cardNo": "123456" })).await;
    assert_eq!(code(&taken), -23, "{taken}");
    assert_eq!(code(&cv.post_json("/api/person/add", &json!({ "pin": "9 0" })).await), -29);
    assert_eq!(code(&cv.post_json("/api/person/add", &json!({ "name": "x" })).await), -20);
    let window = json!({ "pin": "902", "accStartTime": "2026-12-31", "accEndTime": "2026-12-01" });
    assert_eq!(code(&cv.post_json("/api/person/add", &window).await), -101);
    assert_eq!(code(&cv.post_json("/api/person/add", &json!({ "pin": "902", "accEndTime": "soon" })).await), -100);
    let siem =
        Cv::new(&server, &token_cli(dir.path(), &["create", "--kind", "cvsecurity", "--name", "siem", "--read-only"]));
    assert_eq!(code(&siem.post_json("/api/person/add", &json!({ "pin": "903" })).await), -403);
    assert_eq!(code(&cv.get("/api/person/get/903").await), -22);

    // Deleted (DELETE on the path form): their right and user leave the controller.
    assert_eq!(code(&siem.post_form("/api/person/delete", &[("pin", "900")]).await), -403);
    assert_eq!(code(&cv.post_form("/api/v2/person/deleteByPins", &[("pins", "900,nobody")]).await), -22);
    let deleted = Cv::answer(cv.client.delete(cv.url("/api/person/delete/900"))).await;
    assert_success(&deleted);
    assert_eq!(code(&cv.get("/api/person/get/900").await), -22);
    let removed = poll(&dev).await;
    assert!(texts(&removed).contains(&"DATA DELETE user Pin=900"), "{removed:?}");
}

#[tokio::test]
async fn aux_outputs_come_from_the_controller_report_and_are_switched_through_the_command_queue() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "auto")]).await;
    let api = Api::login(&server).await;
    access_setup(&server, &api, "ACC0301").await;
    let dev = Device { server: &server, sn: "ACC0301".into() };
    let cv = Cv::new(&server, &token_cli(dir.path(), &["create", "--kind", "cvsecurity", "--name", "motel"]));
    let reader =
        Cv::new(&server, &token_cli(dir.path(), &["create", "--kind", "cvsecurity", "--name", "siem", "--read-only"]));

    // AuxOutCount=4 in the registry: four outputs, named after the controller.
    let outputs = api.get("/api/v1/access/aux-outputs?sn=ACC0301").await;
    assert_eq!(outputs["count"], 4, "{outputs}");
    assert_eq!(
        (outputs["data"][1]["aux_no"].as_i64(), outputs["data"][1]["name"].as_str()),
        (Some(2), Some("ACC0301-AuxOut2"))
    );
    let second = outputs["data"][1]["id"].as_i64().unwrap();
    let second_hex = format!("{second:032x}");

    // The motel client's calls (the id in the query), and the timed open by symmetry.
    assert_success(&cv.post_form(&format!("/api/auxOut/remoteNormalOpenByAuxOutById?id={second_hex}"), &[]).await);
    assert_success(&cv.post_form(&format!("/api/auxOut/remoteCloseByAuxOutById?id={second_hex}"), &[]).await);
    assert_success(
        &cv.post_form("/api/auxOut/remoteOpenByAuxOutById", &[("id", &second_hex), ("interval", "30")]).await,
    );
    // Refusals: the door codes of the same meaning; a read-only client writes nothing.
    for interval in ["0", "255", ""] {
        let refused =
            cv.post_form("/api/auxOut/remoteOpenByAuxOutById", &[("id", &second_hex), ("interval", interval)]).await;
        assert_eq!(code(&refused), -45, "{interval:?}");
    }
    assert_eq!(code(&cv.post_form("/api/auxOut/remoteCloseByAuxOutById", &[]).await), -44);
    assert_eq!(
        code(&cv.post_form("/api/auxOut/remoteCloseByAuxOutById", &[("id", &format!("{:032x}", 9999))]).await),
        -47
    );
    assert_eq!(code(&reader.post_form("/api/auxOut/remoteCloseByAuxOutById", &[("id", &second_hex)]).await), -403);

    // The native route: the exact line, and its validation.
    let (status, queued) = api
        .post_json(&format!("/api/v1/access/aux-outputs/{second}/control"), &json!({ "action": "open", "seconds": 5 }))
        .await;
    assert_eq!(status, 201, "{queued}");
    assert_eq!(queued["wire"], "CONTROL DEVICE 01020205");
    let (status, _) = api
        .post_json(&format!("/api/v1/access/aux-outputs/{second}/control"), &json!({ "action": "close", "seconds": 5 }))
        .await;
    assert_eq!(status, 400);
    let (status, _) = api.post_json("/api/v1/access/aux-outputs/9999/control", &json!({ "action": "close" })).await;
    assert_eq!(status, 404);

    let sent = poll(&dev).await;
    let controls: Vec<&str> = texts(&sent).into_iter().filter(|t| t.starts_with("CONTROL DEVICE")).collect();
    assert_eq!(
        controls,
        ["CONTROL DEVICE 010202FF", "CONTROL DEVICE 01020200", "CONTROL DEVICE 0102021E", "CONTROL DEVICE 01020205"]
    );
}

#[tokio::test]
async fn a_visitor_registered_by_a_visitor_system_gets_the_doors_of_its_levels_until_they_leave() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "auto")]).await;
    let api = Api::login(&server).await;
    let level = access_setup(&server, &api, "ACC0401").await;
    let dev = Device { server: &server, sn: "ACC0401".into() };
    let cv = Cv::new(&server, &token_cli(dir.path(), &["create", "--kind", "cvsecurity", "--name", "reception"]));
    let level_hex = format!("{level:032x}");
    // A window around now (the server's zone is UTC in tests).
    let local = |hours: i64| {
        let at = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(hours);
        at.to_zoned(jiff::tz::TimeZone::UTC).strftime("%Y-%m-%d %H:%M:%S").to_string()
    };
    let (start, end) = (local(-1), local(2));
    let visit = json!({
        "persPersonPin": "7", "certType": 2, "certNum": "P998877", "visEmpName": "Vera Visitor",
        "visitEmpPhone": "+34 600 000 000", "company": "ACME", "visitReason": "Audit", "visitorCount": 1,
        "startTime": start, "endTime": end, "cardNo": "5555", "visLevels": level_hex,
    });

    // The reference's codes for what is missing or wrong; nothing is registered.
    let without = |key: &str| {
        let mut body = visit.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    for (key, expected) in [
        ("persPersonPin", -240),
        ("certType", -241),
        ("certNum", -242),
        ("visEmpName", -243),
        ("visitReason", -245),
        ("startTime", -246),
        ("visitorCount", -256),
    ] {
        assert_eq!(code(&cv.post_json("/api/visRegistration/add", &without(key)).await), expected, "{key}");
    }
    let with = |key: &str, value: Value| {
        let mut body = visit.clone();
        body[key] = value;
        body
    };
    assert_eq!(code(&cv.post_json("/api/visRegistration/add", &with("startTime", json!("yesterday"))).await), -248);
    assert_eq!(code(&cv.post_json("/api/visRegistration/add", &with("certType", json!(12))).await), -249);
    assert_eq!(code(&cv.post_json("/api/visRegistration/add", &with("certNum", json!("no spaces"))).await), -250);
    assert_eq!(code(&cv.post_json("/api/visRegistration/add", &with("persPersonPin", json!("nobody"))).await), -251);
    assert_eq!(code(&cv.post_json("/api/visRegistration/add", &with("visitorCount", json!(0))).await), -256);
    assert_eq!(code(&cv.post_json("/api/visRegistration/add", &with("endTime", json!(start.clone()))).await), -101);
    assert_eq!(code(&cv.post_json("/api/visRegistration/add", &with("visLevels", json!("99"))).await), -24);
    assert_eq!(code(&cv.post_json("/api/visRegistration/add", &with("cardNo", json!("123456"))).await), -23);
    assert_eq!(api.get("/api/v1/access/visits").await["count"], 0);

    // Registered: the visitor, valid on the visit's days, and their right reach the controller.
    assert_success(&cv.post_json("/api/visRegistration/add", &visit).await);
    assert_eq!(code(&cv.post_json("/api/visRegistration/add", &visit).await), -253);
    let visits = api.get("/api/v1/access/visits?in_progress=true").await;
    assert_eq!(visits["count"], 1, "{visits}");
    let pin = visits["data"][0]["pin"].as_str().unwrap().to_owned();
    assert!(pin.starts_with('8'), "{pin}");
    assert_eq!(visits["data"][0]["phase"], "active");
    let sent = poll(&dev).await;
    let user = texts(&sent)
        .into_iter()
        .find(|t| t.contains(&format!("Pin={pin}\t")) && t.starts_with("DATA UPDATE user "))
        .map(str::to_owned);
    let user = user.unwrap_or_else(|| panic!("no user row for {pin}: {sent:?}"));
    let days = (start[..10].replace('-', ""), end[..10].replace('-', ""));
    assert!(
        user.contains(&format!("StartTime={}\tEndTime={}", days.0, days.1)) && user.contains("CardNo=5555"),
        "{user}"
    );
    assert!(texts(&sent).iter().any(|t| t.starts_with(&format!("DATA UPDATE userauthorize Pin={pin}\t"))), "{sent:?}");
    acknowledge(&dev, &sent).await;

    // The visitor leaves: their rows are deleted at once; a second exit finds no visit.
    assert_success(&cv.post_form("/api/visRegistration/exit", &[("certType", "2"), ("certNum", "P998877")]).await);
    assert_eq!(
        code(&cv.post_form("/api/visRegistration/exit", &[("certType", "2"), ("certNum", "P998877")]).await),
        -254
    );
    assert_eq!(code(&cv.post_form("/api/visRegistration/exit", &[("certNum", "P998877")]).await), -241);
    let removed = poll(&dev).await;
    assert!(texts(&removed).contains(&format!("DATA DELETE user Pin={pin}").as_str()), "{removed:?}");
    let visits = api.get("/api/v1/access/visits").await;
    assert_eq!((visits["data"][0]["phase"].as_str(), visits["data"][0]["exited_at"].is_i64()), (Some("over"), true));

    // The native API: a visit registered and ended by id.
    let body = json!({
        "host_emp_code": "7", "cert_type": 3, "cert_num": "PASS-1", "name": "Nico",
        "starts_at": start, "ends_at": end, "level_ids": [level],
    });
    let (status, created) = api.post_json("/api/v1/access/visits", &body).await;
    assert_eq!(status, 201, "{created}");
    let (status, again) = api.post_json("/api/v1/access/visits", &body).await;
    assert_eq!(status, 409, "{again}");
    let (status, bad) = api.post_json("/api/v1/access/visits", &json!({ "host_emp_code": "7", "cert_type": 3, "cert_num": "Q", "name": "N", "starts_at": "soon", "ends_at": end })).await;
    assert_eq!((status, bad["starts_at"].is_array()), (400, true), "{bad}");
    let id = created["id"].as_i64().unwrap();
    let (status, ended) = api.post_json(&format!("/api/v1/access/visits/{id}/exit"), &json!({})).await;
    assert_eq!((status, ended["phase"].as_str()), (200, Some("over")), "{ended}");
    let (status, _) = api.post_json(&format!("/api/v1/access/visits/{id}/exit"), &json!({})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn elevator_floors_are_declared_listed_and_released_through_the_command_queue() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "auto")]).await;
    let api = Api::login(&server).await;
    let dev = Device { server: &server, sn: "ELE0101".into() };
    let registry = b"DeviceType=acc,~DeviceName=EC16,LockCount=1,ReaderCount=1";
    assert_eq!(dev.post("/iclock/registry?SN=ELE0101", registry).await.status, 200);
    let cv = Cv::new(&server, &token_cli(dir.path(), &["create", "--kind", "cvsecurity", "--name", "lobby"]));

    // Declared by an operator: 10 floors, then 9 (the tenth goes).
    let (status, floors) = api
        .send(reqwest::Method::PUT, "/api/v1/access/controllers/ELE0101/floors", Some(&json!({ "floor_count": 10 })))
        .await;
    assert_eq!((status, floors["count"].as_u64()), (200, Some(10)), "{floors}");
    let (status, floors) = api
        .send(reqwest::Method::PUT, "/api/v1/access/controllers/ELE0101/floors", Some(&json!({ "floor_count": 9 })))
        .await;
    assert_eq!((status, floors["count"].as_u64()), (200, Some(9)), "{floors}");
    let (status, _) = api
        .send(reqwest::Method::PUT, "/api/v1/access/controllers/ELE0101/floors", Some(&json!({ "floor_count": 257 })))
        .await;
    assert_eq!(status, 400);
    let (status, _) = api
        .send(reqwest::Method::PUT, "/api/v1/access/controllers/NOPE/floors", Some(&json!({ "floor_count": 2 })))
        .await;
    assert_eq!(status, 404);

    // CVSecurity's view: {id, floorNo, name, deviceId}, bare and paged.
    let listed = cv.get("/api/floor/list").await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(9), "{listed}");
    let ninth = &listed["data"][8];
    assert_eq!((ninth["floorNo"].as_i64(), ninth["name"].as_str()), (Some(9), Some("ELE0101-9")));
    let floor_id = ninth["id"].as_str().unwrap().to_owned();
    assert_eq!(floor_id.len(), 32);
    let paged = cv.get("/api/v2/floor/list?pageNo=2&pageSize=5").await;
    assert_eq!((paged["data"]["total"].as_i64(), paged["data"]["size"].as_i64()), (Some(9), Some(4)), "{paged}");

    // Released for 5 s, closed by both spellings; the reference's codes for what is missing.
    assert_success(&cv.post_form("/api/floor/remoteOpenById", &[("floorId", &floor_id), ("interval", "5")]).await);
    assert_success(&cv.post_form("/api/floor/remoteCloseById", &[("floorId", &floor_id)]).await);
    assert_success(&cv.get(&format!("/api/floor/remoteoffById?floorId={floor_id}")).await);
    assert_eq!(code(&cv.post_form("/api/floor/remoteOpenById", &[("interval", "5")]).await), -201);
    assert_eq!(code(&cv.post_form("/api/floor/remoteOpenById", &[("floorId", &floor_id)]).await), -202);
    assert_eq!(
        code(&cv.post_form("/api/floor/remoteOpenById", &[("floorId", &floor_id), ("interval", "0")]).await),
        -203
    );
    assert_eq!(code(&cv.post_form("/api/floor/remoteCloseById", &[("floorId", "99999")]).await), -1);

    // The native route: normally open.
    let native_id = floors["data"][0]["id"].as_i64().unwrap();
    let (status, queued) = api
        .post_json(&format!("/api/v1/access/floors/{native_id}/control"), &json!({ "action": "normally_open" }))
        .await;
    assert_eq!(status, 201, "{queued}");

    // Floor 9 is the top bit of the mask's second byte; floor 1 the top bit of the first.
    let rest = |bytes: usize| "00".repeat(bytes);
    let sent = poll(&dev).await;
    let controls: Vec<&str> = texts(&sent).into_iter().filter(|t| t.starts_with("CONTROL DEVICE")).collect();
    assert_eq!(
        controls,
        [
            format!("CONTROL DEVICE 110080{}05", rest(30)),
            format!("CONTROL DEVICE 110080{}00", rest(30)),
            format!("CONTROL DEVICE 110080{}00", rest(30)),
            format!("CONTROL DEVICE 1280{}FF", rest(31)),
        ]
    );
}

#[tokio::test]
async fn elevator_devices_levels_and_transactions_from_query_form_and_json_in_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "auto")]).await;
    let api = Api::login(&server).await;
    // A door controller with employee 7 (whose events are not elevator transactions), and an
    // elevator controller with 10 floors.
    access_setup(&server, &api, "ACC0901").await;
    let lift = Device { server: &server, sn: "ELE0901".into() };
    assert_eq!(lift.post("/iclock/registry?SN=ELE0901", b"DeviceType=acc,~DeviceName=EC16").await.status, 200);
    let (status, floors) = api
        .send(reqwest::Method::PUT, "/api/v1/access/controllers/ELE0901/floors", Some(&json!({ "floor_count": 10 })))
        .await;
    assert_eq!(status, 200, "{floors}");
    let floor: Vec<i64> = floors["data"].as_array().unwrap().iter().map(|f| f["id"].as_i64().unwrap()).collect();
    let (_, segment) = api
        .post_json(
            "/api/v1/access/time-segments",
            &json!({ "name": "Always", "schedule": { "monday": ["00:00-23:59"] } }),
        )
        .await;
    let tz = segment["id"].as_i64().unwrap();
    let (_, level) =
        api.post_json("/api/v1/access/elevator-levels", &json!({ "name": "Lobby", "time_segment_id": tz })).await;
    let level = level["id"].as_i64().unwrap();
    let (status, _) = api
        .post_json(
            &format!("/api/v1/access/elevator-levels/{level}/floors"),
            &json!({ "floor_ids": [floor[0], floor[2]] }),
        )
        .await;
    assert_eq!(status, 200);
    let cv = Cv::new(&server, &token_cli(dir.path(), &["create", "--kind", "cvsecurity", "--name", "lifts"]));

    // Devices: the elevator controller only, CVSecurity's elevator type and module.
    let bare = cv.get("/api/eleDevice/eleList?pageNo=1&pageSize=10").await;
    assert_success(&bare);
    let devices = bare["data"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "{bare}");
    assert_eq!(
        (
            devices[0]["sn"].as_str(),
            devices[0]["type"].as_str(),
            devices[0]["module"].as_str(),
            devices[0]["state"].as_str()
        ),
        (Some("ELE0901"), Some("EC-100"), Some("ele"), Some("1"))
    );
    assert_eq!(devices[0]["id"].as_str().map(str::len), Some(32));
    let paged = cv.post_form("/api/v2/eleDevice/eleList", &[("pageNo", "1"), ("pageSize", "5")]).await;
    assert_eq!(
        (paged["data"]["total"].as_i64(), paged["data"]["data"][0]["status"].as_str()),
        (Some(1), Some("1")),
        "{paged}"
    );
    assert_eq!(cv.get("/api/eleDevice/getEle?sn=ELE0901").await["data"]["name"], "ELE0901");
    assert_eq!(code(&cv.get("/api/eleDevice/getEle?sn=ACC0901").await), -102, "a door controller is not an elevator");
    assert_eq!(code(&cv.get("/api/eleDevice/getEle").await), -200);
    assert_eq!(code(&cv.get("/api/eleDevice/eleList").await), -92);

    // Levels: {id, name}, bare and paged, by 32-hex id and by name.
    let bare = cv.get("/api/eleLevel/list?pageNo=1&pageSize=10").await;
    let hex = bare["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!((hex.len(), bare["data"][0]["name"].as_str()), (32, Some("Lobby")), "{bare}");
    let v2 = cv.post_json("/api/v2/eleLevel/list", &json!({ "pageNo": 1, "pageSize": 10 })).await;
    assert_eq!(
        (v2["data"]["total"].as_i64(), v2["data"]["data"][0]["id"].as_str()),
        (Some(1), Some(hex.as_str())),
        "{v2}"
    );
    assert_eq!(cv.get(&format!("/api/eleLevel/getById/{hex}")).await["data"]["name"], "Lobby");
    assert_eq!(cv.get("/api/eleLevel/getByName/Lobby").await["data"]["id"], hex.as_str());
    assert_eq!(code(&cv.get("/api/eleLevel/getById/402856aa000000000000000000000001").await), -24);
    assert_eq!(code(&cv.get("/api/eleLevel/getByName/Nowhere").await), -24);

    // syncPerson (form): the person is put in the level and the controller gets the rows.
    assert_success(&cv.post_form("/api/eleLevel/syncPerson", &[("pin", "7"), ("levelIds", &hex)]).await);
    let first = poll(&lift).await;
    let lines = texts(&first);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with(&format!("DATA UPDATE timezone TimezoneId={tz}\t")), "{lines:?}");
    assert_eq!(
        lines[1..],
        [
            "DATA UPDATE user CardNo=123456\tPin=7\tPassword=\tGroup=1\tStartTime=0\tEndTime=0\tName=Ana Lima\tPrivilege=0",
            &format!("DATA UPDATE usereleauthorize Pin=7\tAuthorizeTimezoneId={tz}\tAuthorizeFloors=5"),
        ]
    );
    acknowledge(&lift, &first).await;
    // syncLevel (query) with nothing changed queues nothing; the errors of a membership write.
    assert_success(&cv.post_form(&format!("/api/eleLevel/syncLevel?levelId={hex}"), &[]).await);
    assert!(poll(&lift).await.is_empty());
    assert_eq!(code(&cv.post_form("/api/eleLevel/syncLevel", &[]).await), -43);
    assert_eq!(code(&cv.post_form("/api/eleLevel/syncPerson", &[("levelIds", &hex)]).await), -20);
    assert_eq!(code(&cv.post_form("/api/eleLevel/syncPerson", &[("pin", "7")]).await), -42);
    assert_eq!(code(&cv.post_form("/api/eleLevel/syncPerson", &[("pin", "404"), ("levelIds", &hex)]).await), -22);
    let unknown = "402856aa000000000000000000000001";
    assert_eq!(code(&cv.post_form("/api/eleLevel/syncPerson", &[("pin", "7"), ("levelIds", unknown)]).await), -24);

    // deleteLevel (JSON): the rows go.
    assert_success(&cv.post_json("/api/eleLevel/deleteLevel", &json!({ "pin": "7", "levelIds": hex })).await);
    assert_eq!(
        texts(&poll(&lift).await),
        [
            format!("DATA DELETE usereleauthorize Pin=7\tAuthorizeTimezoneId={tz}").as_str(),
            "DATA DELETE user Pin=7",
            &format!("DATA DELETE timezone TimezoneId={tz}"),
        ]
    );
    assert_success(&cv.post_json("/api/eleLevel/deleteLevel", &json!({ "pin": "7", "levelIds": hex })).await);

    // Transactions: the elevator controller's events only, in transaction/list's shape.
    let door = Device { server: &server, sn: "ACC0901".into() };
    let event = |index: u32| {
        format!(
            "time=2026-12-06 09:0{index}:00\tpin=7\tcardno=123456\teventaddr=1\tevent=0\tinoutstatus=0\tverifytype=4\tindex={index}\n"
        )
    };
    assert_eq!(door.post("/iclock/cdata?SN=ACC0901&table=rtlog", event(1).as_bytes()).await.status, 200);
    assert_eq!(lift.post("/iclock/cdata?SN=ELE0901&table=rtlog", event(2).as_bytes()).await.status, 200);
    let all = cv.get("/api/transaction/list?pageNo=1&pageSize=10").await;
    assert_eq!(all["data"].as_array().map(Vec::len), Some(2), "{all}");
    let ele = cv.get("/api/eleTransaction/list?pageNo=1&pageSize=10").await;
    let rows = ele["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{ele}");
    assert_eq!((rows[0]["devSn"].as_str(), rows[0]["pin"].as_str()), (Some("ELE0901"), Some("7")));
    let same_keys = |a: &Value, b: &Value| {
        a.as_object().unwrap().keys().collect::<Vec<_>>() == b.as_object().unwrap().keys().collect::<Vec<_>>()
    };
    assert!(same_keys(&rows[0], &all["data"][0]), "the record shape of transaction/list");
    let v2 =
        cv.post_form("/api/v2/eleTransaction/list", &[("pageNo", "1"), ("pageSize", "10"), ("personPin", "7")]).await;
    assert_eq!((v2["data"]["total"].as_i64(), v2["data"]["lastPage"].as_bool()), (Some(1), Some(true)), "{v2}");
    assert_eq!(code(&cv.get("/api/eleTransaction/list?pageNo=1&pageSize=10&startDate=bad").await), -100);

    // A read-only client reads but does not write; no token (or another credential) opens nothing.
    let reader =
        Cv::new(&server, &token_cli(dir.path(), &["create", "--kind", "cvsecurity", "--name", "siem", "--read-only"]));
    assert_success(&reader.get("/api/eleLevel/list?pageNo=1&pageSize=10").await);
    assert_eq!(code(&reader.post_form("/api/eleLevel/syncPerson", &[("pin", "7"), ("levelIds", &hex)]).await), -403);
    for bad in [Cv::new(&server, ""), Cv::new(&server, &api.token)] {
        for path in ["/api/eleLevel/list?pageNo=1&pageSize=10", "/api/eleDevice/eleList?pageNo=1&pageSize=10"] {
            assert_eq!(code(&bad.get(path).await), -401, "{path}");
        }
        assert_eq!(code(&bad.post_form("/api/eleLevel/syncLevel", &[("levelId", &hex)]).await), -401);
    }
}
