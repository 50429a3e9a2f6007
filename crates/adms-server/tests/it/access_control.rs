//! Access control end to end (issue 19), on the engine the suite runs on: a Security PUSH
//! controller registers its doors, the API builds a time segment, a level with doors and a
//! member, and the controller's next polls hand out exactly the expected command lines; a
//! second change sends only its difference, a burst sends each row once, a re-sync clears and
//! re-sends, and a door opened through the API completes when the controller answers.

use crate::common;
use crate::common::polling::{acknowledge, poll, texts};

use common::{Api, Device, Server};
use serde_json::{Value, json};

const SN: &str = "ACC0001";

async fn post(api: &Api, path: &str, body: Value) -> Value {
    let (status, answer) = api.post_json(path, &body).await;
    assert!(status == 201 || status == 200, "POST {path}: {status} {answer}");
    answer
}

/// The `timezone` line of segment `id` with Monday 08:00-18:00 and nothing else.
fn monday_timezone(id: i64, end_hhmm: u32) -> String {
    let mut line = format!("DATA UPDATE timezone TimezoneId={id}");
    for (i, field) in adms_protocol::access::TIMEZONE_FIELDS.iter().enumerate() {
        let value = if i == 3 { 800 * 65536 + end_hhmm } else { 0 };
        line.push_str(&format!("\t{field}={value}"));
    }
    line
}

#[tokio::test]
async fn a_level_reaches_the_controller_as_exact_lines_and_a_change_sends_only_its_difference() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "auto")]).await;
    let api = Api::login(&server).await;
    let dev = Device { server: &server, sn: SN.into() };
    let registry = b"DeviceType=acc,~DeviceName=inBIO460,LockCount=4,ReaderCount=4,AuxInCount=4,AuxOutCount=4";
    assert_eq!(dev.post(&format!("/iclock/registry?SN={SN}"), registry).await.status, 200);
    let doors = api.get(&format!("/api/v1/access/doors?sn={SN}")).await;
    assert_eq!(doors["count"], 4, "{doors}");
    let door: Vec<i64> = doors["data"].as_array().unwrap().iter().map(|d| d["id"].as_i64().unwrap()).collect();
    assert_eq!(doors["data"][2]["name"], format!("{SN}-3"));

    let employee = json!({ "emp_code": "7", "first_name": "Ana", "card_no": "123456", "department": 1, "area": [1] });
    post(&api, "/personnel/api/employees/", employee).await;
    let segment = post(
        &api,
        "/api/v1/access/time-segments",
        json!({ "name": "Office", "schedule": { "monday": ["08:00-18:00"] } }),
    )
    .await;
    let tz = segment["id"].as_i64().unwrap();
    let level = post(&api, "/api/v1/access/levels", json!({ "name": "Staff", "time_segment_id": tz })).await;
    let level = level["id"].as_i64().unwrap();
    post(&api, &format!("/api/v1/access/levels/{level}/doors"), json!({ "door_ids": [door[0], door[2]] })).await;
    assert!(poll(&dev).await.is_empty(), "a level without members puts nothing on the controller");

    let (status, member) = api
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/access/levels/{level}/members/7"),
            Some(&json!({ "valid_until": "2099-12-31" })),
        )
        .await;
    assert_eq!(status, 200, "{member}");
    let first = poll(&dev).await;
    assert_eq!(
        texts(&first),
        [
            monday_timezone(tz, 1800).as_str(),
            "DATA UPDATE user CardNo=123456\tPin=7\tPassword=\tGroup=1\tStartTime=0\tEndTime=20991231\tName=Ana\tPrivilege=0",
            &format!("DATA UPDATE userauthorize Pin=7\tAuthorizeTimezoneId={tz}\tAuthorizeDoorId=5"),
        ]
    );
    acknowledge(&dev, &first).await;
    assert!(poll(&dev).await.is_empty());

    // A second change sends only its difference: door 3 leaves the level.
    let (status, _) = api.delete(&format!("/api/v1/access/levels/{level}/doors/{}", door[2])).await;
    assert_eq!(status, 204);
    let second = poll(&dev).await;
    assert_eq!(
        texts(&second),
        [format!("DATA UPDATE userauthorize Pin=7\tAuthorizeTimezoneId={tz}\tAuthorizeDoorId=1")]
    );
    acknowledge(&dev, &second).await;

    // While the controller is away, a burst of edits to the segment: it gets the last one, once.
    for end in ["17:00", "16:00", "15:00"] {
        let body = json!({ "name": "Office", "schedule": { "monday": [format!("08:00-{end}")] } });
        let (status, answer) =
            api.send(reqwest::Method::PUT, &format!("/api/v1/access/time-segments/{tz}"), Some(&body)).await;
        assert_eq!(status, 200, "{answer}");
    }
    let burst = poll(&dev).await;
    assert_eq!(texts(&burst), [monday_timezone(tz, 1500).as_str()]);
    acknowledge(&dev, &burst).await;

    // A full re-sync: the four tables cleared, then everything the controller should hold.
    let resync = post(&api, &format!("/api/v1/access/controllers/{SN}/resync"), json!({})).await;
    assert_eq!(resync["queued"], 7, "{resync}");
    let all = poll(&dev).await;
    assert_eq!(
        texts(&all)[..4],
        ["DATA DELETE userauthorize *", "DATA DELETE user *", "DATA DELETE timezone *", "DATA DELETE holiday *"]
    );
    assert_eq!(texts(&all)[6], format!("DATA UPDATE userauthorize Pin=7\tAuthorizeTimezoneId={tz}\tAuthorizeDoorId=1"));
    acknowledge(&dev, &all).await;

    // Out of the level: the right, the user and the unused time zone are deleted.
    let (status, _) = api.delete(&format!("/api/v1/access/levels/{level}/members/7")).await;
    assert_eq!(status, 204);
    assert_eq!(
        texts(&poll(&dev).await),
        [
            format!("DATA DELETE userauthorize Pin=7\tAuthorizeTimezoneId={tz}").as_str(),
            "DATA DELETE user Pin=7",
            &format!("DATA DELETE timezone TimezoneId={tz}"),
        ]
    );
}

#[tokio::test]
async fn a_door_opened_through_the_api_completes_when_the_controller_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "auto")]).await;
    let api = Api::login(&server).await;
    let dev = Device { server: &server, sn: "ACC0002".into() };
    assert_eq!(dev.post("/iclock/registry?SN=ACC0002", b"DeviceType=acc,LockCount=2").await.status, 200);
    let doors = api.get("/api/v1/access/doors?sn=ACC0002").await;
    let door = doors["data"][1]["id"].as_i64().expect("door 2");

    let control = |body: Value| {
        let api = &api;
        async move { api.post_json(&format!("/api/v1/access/doors/{door}/control"), &body).await }
    };
    for bad in [
        json!({ "action": "open" }),
        json!({ "action": "open", "seconds": 255 }),
        json!({ "action": "close", "seconds": 3 }),
        json!({ "action": "explode" }),
    ] {
        let (status, answer) = control(bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {answer}");
    }
    let (status, _) = api.post_json("/api/v1/access/doors/999999/control", &json!({ "action": "close" })).await;
    assert_eq!(status, 404);

    let (status, queued) = control(json!({ "action": "open", "seconds": 15 })).await;
    assert_eq!(status, 201, "{queued}");
    assert_eq!(queued["wire"], "CONTROL DEVICE 0102010F");
    let id = queued["command_id"].as_i64().unwrap();
    assert_eq!(poll(&dev).await, [(id, "CONTROL DEVICE 0102010F".to_owned())]);
    assert_eq!(api.get(&format!("/api/v1/commands/{id}")).await["state"], "sent");
    let body = format!("ID={id}&Return=0&CMD=CONTROL DEVICE\n");
    assert_eq!(dev.post("/iclock/devicecmd?SN=ACC0002", body.as_bytes()).await.status, 200);
    let done = api.get(&format!("/api/v1/commands/{id}")).await;
    assert_eq!((done["state"].as_str(), done["return_code"].as_i64()), (Some("succeeded"), Some(0)), "{done}");

    let (_, cancel) = control(json!({ "action": "cancel_alarm" })).await;
    let (_, hold) = control(json!({ "action": "normally_open" })).await;
    assert_eq!(
        (cancel["wire"].as_str(), hold["wire"].as_str()),
        (Some("CONTROL DEVICE 02020000"), Some("CONTROL DEVICE 010201FF"))
    );
}

#[tokio::test]
async fn rights_follow_the_roster_need_their_scopes_and_reach_only_approved_controllers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "pending")]).await;
    let api = Api::login(&server).await;
    // A controller that registers unapproved: its doors exist, but it gets no rights.
    let dev = Device { server: &server, sn: "ACC0003".into() };
    assert_eq!(dev.post("/iclock/registry?SN=ACC0003", b"DeviceType=acc,LockCount=1").await.status, 200);
    let door = api.get("/api/v1/access/doors?sn=ACC0003").await["data"][0]["id"].as_i64().expect("door 1");
    let created = post(
        &api,
        "/personnel/api/employees/",
        json!({ "emp_code": "8", "first_name": "Bo", "department": 1, "area": [1] }),
    )
    .await;
    let segment = post(
        &api,
        "/api/v1/access/time-segments",
        json!({ "name": "Always", "schedule": { "monday": ["00:00-23:59"] } }),
    )
    .await;
    let level = post(&api, "/api/v1/access/levels", json!({ "name": "All", "time_segment_id": segment["id"] })).await;
    let level = level["id"].as_i64().unwrap();
    post(&api, &format!("/api/v1/access/levels/{level}/doors"), json!({ "door_ids": [door] })).await;
    let (status, _) = api.send(reqwest::Method::PUT, &format!("/api/v1/access/levels/{level}/members/8"), None).await;
    assert_eq!(status, 200);
    let (status, _) = api.post_json("/api/v1/access/controllers/ACC0003/resync", &json!({})).await;
    assert_eq!(status, 409, "a pending controller is not re-synced");
    let commands = api.get("/api/v1/devices/ACC0003/commands").await;
    assert_eq!(commands["count"], 0, "nothing is queued for a pending controller: {commands}");

    // Approved, it catches up on everything; an employee's new card follows as one row.
    let (status, answer) = api.patch_json("/api/v1/devices/ACC0003", &json!({ "approval": "approved" })).await;
    assert_eq!(status, 200, "{answer}");
    let queued = poll(&dev).await;
    assert_eq!(queued.len(), 3, "timezone, user, right: {queued:?}");
    acknowledge(&dev, &queued).await;
    let id = created["id"].as_i64().unwrap();
    let (status, answer) =
        api.patch_json(&format!("/personnel/api/employees/{id}/"), &json!({ "card_no": "4242" })).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        texts(&poll(&dev).await),
        ["DATA UPDATE user CardNo=4242\tPin=8\tPassword=\tGroup=1\tStartTime=0\tEndTime=0\tName=Bo\tPrivilege=0"]
    );

    // A read-only key reads the model but changes nothing and opens no door.
    let key = crate::users_scopes_audit::integration_key(&server, "reader", &["read"]);
    let reader = Api { client: api.client.clone(), server_addr: api.server_addr.clone(), token: key };
    assert_eq!(reader.get_status("/api/v1/access/levels").await.0, 200);
    let (status, _) =
        reader.post_json(&format!("/api/v1/access/doors/{door}/control"), &json!({ "action": "close" })).await;
    assert_eq!(status, 403);
    let (status, _) = reader.delete(&format!("/api/v1/access/levels/{level}/members/8")).await;
    assert_eq!(status, 403);
    assert_eq!(api.get(&format!("/api/v1/access/levels/{level}")).await["member_count"], 1);
}

#[tokio::test]
async fn an_access_event_is_stored_once_and_becomes_one_access_event_webhook() {
    use common::webhooks::{Receiver, SECRET, Witness};
    let receiver = Receiver::builder().ignoring(Witness::is_witness).only("access.event").start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = receiver.url();
    let env = [("ADMS_WEBHOOK_URL", url.as_str()), ("ADMS_WEBHOOK_SECRET", SECRET), ("ADMS_UNKNOWN_DEVICES", "auto")];
    let server = Server::in_process(dir.path(), &env).await;
    let api = Api::login(&server).await;
    let witness = Witness::create(&api).await;
    let dev = Device { server: &server, sn: "ACC0004".into() };
    assert_eq!(dev.post("/iclock/registry?SN=ACC0004", b"DeviceType=acc,LockCount=2").await.status, 200);
    let body = "time=2026-12-06 09:00:00\tpin=7\tcardno=123456\teventaddr=1\tevent=0\tinoutstatus=0\tverifytype=4\tindex=11\n\
                time=2026-12-06 09:05:00\tpin=0\tcardno=0\teventaddr=2\tevent=102\tinoutstatus=0\tverifytype=200\tindex=12\n";
    for _ in 0..2 {
        let r = dev.post("/iclock/cdata?SN=ACC0004&table=rtlog", body.as_bytes()).await;
        assert_eq!((r.status, r.text()), (200, "OK".to_owned()));
    }
    let forced = receiver.wait_for("access.event", |b| b["data"]["event_code"] == 102).await.json();
    assert_eq!(forced["data"]["event_name"], "Opened Forcefully");
    assert_eq!((forced["data"]["level"].as_str(), forced["data"]["alarm"].as_bool()), (Some("alarm"), Some(true)));
    assert_eq!((forced["data"]["pin"].clone(), forced["data"]["door"].as_i64()), (Value::Null, Some(2)));
    let granted = receiver.wait_for("access.event", |b| b["data"]["event_code"] == 0).await.json();
    assert_eq!(granted["data"]["event_name"], "Normal Verify Open");
    assert_eq!((granted["data"]["pin"].as_str(), granted["data"]["alarm"].as_bool()), (Some("7"), Some(false)));
    assert_eq!(granted["data"]["device"]["sn"], "ACC0004");
    assert!(granted["data"].get("card_no").is_none(), "the card number is not sent");

    // The re-sent body added no row and no event: a dispatcher pass later, still two.
    witness.pass(&server).await;
    let events = receiver.of_type("access.event");
    assert_eq!(events.len(), 2, "{:?}", events.iter().map(|e| e.json()).collect::<Vec<_>>());
    assert_eq!(common::count_rows(server.db(), "access_events").await, 2);
}

/// An elevator controller with `floors` declared floors; the ids of its floors, by number.
async fn elevator(server: &Server, api: &Api, sn: &str, floors: u32) -> Vec<i64> {
    let dev = Device { server, sn: sn.into() };
    assert_eq!(dev.post(&format!("/iclock/registry?SN={sn}"), b"DeviceType=acc,~DeviceName=EC16").await.status, 200);
    let path = format!("/api/v1/access/controllers/{sn}/floors");
    let (status, listed) = api.send(reqwest::Method::PUT, &path, Some(&json!({ "floor_count": floors }))).await;
    assert_eq!(status, 200, "{listed}");
    listed["data"].as_array().unwrap().iter().map(|f| f["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn an_elevator_level_reaches_the_controller_as_exact_floor_rights_and_leaves_with_its_member() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_UNKNOWN_DEVICES", "auto")]).await;
    let api = Api::login(&server).await;
    let floor = elevator(&server, &api, "ELE0001", 16).await;
    let dev = Device { server: &server, sn: "ELE0001".into() };
    assert!(poll(&dev).await.is_empty(), "declared floors alone put nothing on the controller");

    let employee = json!({ "emp_code": "7", "first_name": "Ana", "card_no": "123456", "department": 1, "area": [1] });
    let created = post(&api, "/personnel/api/employees/", employee).await;
    let segment = post(
        &api,
        "/api/v1/access/time-segments",
        json!({ "name": "Office", "schedule": { "monday": ["08:00-18:00"] } }),
    )
    .await;
    let tz = segment["id"].as_i64().unwrap();
    let level = post(&api, "/api/v1/access/elevator-levels", json!({ "name": "Upper", "time_segment_id": tz })).await;
    assert_eq!((level["floor_ids"].as_array().map(Vec::len), level["member_count"].as_i64()), (Some(0), Some(0)));
    let level = level["id"].as_i64().unwrap();
    // Floors 8 and 9: the reference's example, mask 180.
    let with_floors = post(
        &api,
        &format!("/api/v1/access/elevator-levels/{level}/floors"),
        json!({ "floor_ids": [floor[7], floor[8]] }),
    )
    .await;
    assert_eq!(with_floors["floor_ids"], json!([floor[7], floor[8]]));
    assert!(poll(&dev).await.is_empty(), "a level without members puts nothing on the controller");

    let (status, member) =
        api.send(reqwest::Method::PUT, &format!("/api/v1/access/elevator-levels/{level}/members/7"), None).await;
    assert_eq!(status, 200, "{member}");
    assert_eq!(member, json!({ "emp_code": "7", "valid_from": null, "valid_until": null }));
    let first = poll(&dev).await;
    assert_eq!(
        texts(&first),
        [
            monday_timezone(tz, 1800).as_str(),
            "DATA UPDATE user CardNo=123456\tPin=7\tPassword=\tGroup=1\tStartTime=0\tEndTime=0\tName=Ana\tPrivilege=0",
            &format!("DATA UPDATE usereleauthorize Pin=7\tAuthorizeTimezoneId={tz}\tAuthorizeFloors=180"),
        ]
    );
    acknowledge(&dev, &first).await;
    assert!(poll(&dev).await.is_empty());
    // The employee's new card follows to the elevator controller as one row.
    let id = created["id"].as_i64().unwrap();
    let (status, answer) =
        api.patch_json(&format!("/personnel/api/employees/{id}/"), &json!({ "card_no": "4242" })).await;
    assert_eq!(status, 200, "{answer}");
    let card = poll(&dev).await;
    assert_eq!(
        texts(&card),
        ["DATA UPDATE user CardNo=4242\tPin=7\tPassword=\tGroup=1\tStartTime=0\tEndTime=0\tName=Ana\tPrivilege=0"]
    );
    acknowledge(&dev, &card).await;
    // A read-only key reads elevator levels but changes nothing.
    let key = crate::users_scopes_audit::integration_key(&server, "reader", &["read"]);
    let reader = Api { client: api.client.clone(), server_addr: api.server_addr.clone(), token: key };
    assert_eq!(reader.get_status(&format!("/api/v1/access/elevator-levels/{level}")).await.0, 200);
    assert_eq!(reader.delete(&format!("/api/v1/access/elevator-levels/{level}/members/7")).await.0, 403);
    let members = api.get(&format!("/api/v1/access/elevator-levels/{level}/members")).await;
    assert_eq!(members["count"], 1, "{members}");
    assert_eq!(api.get(&format!("/api/v1/access/elevator-levels/{level}")).await["member_count"], 1);
    assert_eq!(api.get("/api/v1/access/elevator-levels").await["count"], 1);

    // Floor 9 leaves: only the rights row again.
    let (status, _) = api.delete(&format!("/api/v1/access/elevator-levels/{level}/floors/{}", floor[8])).await;
    assert_eq!(status, 204);
    let second = poll(&dev).await;
    assert_eq!(
        texts(&second),
        [format!("DATA UPDATE usereleauthorize Pin=7\tAuthorizeTimezoneId={tz}\tAuthorizeFloors=80")]
    );
    acknowledge(&dev, &second).await;

    // A full re-sync of an elevator controller clears its floor rights too.
    let resync = post(&api, "/api/v1/access/controllers/ELE0001/resync", json!({})).await;
    assert_eq!(resync["queued"], 8, "{resync}");
    let all = poll(&dev).await;
    assert_eq!(texts(&all)[..2], ["DATA DELETE userauthorize *", "DATA DELETE usereleauthorize *"]);
    acknowledge(&dev, &all).await;

    // Out of the level: the floor rights, the user and the unused time zone are deleted.
    let (status, _) = api.delete(&format!("/api/v1/access/elevator-levels/{level}/members/7")).await;
    assert_eq!(status, 204);
    assert_eq!(
        texts(&poll(&dev).await),
        [
            format!("DATA DELETE usereleauthorize Pin=7\tAuthorizeTimezoneId={tz}").as_str(),
            "DATA DELETE user Pin=7",
            &format!("DATA DELETE timezone TimezoneId={tz}"),
        ]
    );

    // What the routes refuse.
    let (status, _) =
        api.post_json("/api/v1/access/elevator-levels", &json!({ "name": "Upper", "time_segment_id": tz })).await;
    assert_eq!(status, 409, "names are unique");
    let (status, _) =
        api.post_json("/api/v1/access/elevator-levels", &json!({ "name": "X", "time_segment_id": 999 })).await;
    assert_eq!(status, 400);
    let (status, _) = api
        .post_json(&format!("/api/v1/access/elevator-levels/{level}/floors"), &json!({ "floor_ids": [99999] }))
        .await;
    assert_eq!(status, 400);
    let (status, _) = api.send(reqwest::Method::PUT, "/api/v1/access/elevator-levels/99999/members/7", None).await;
    assert_eq!(status, 404);
    let (status, _) =
        api.send(reqwest::Method::PUT, &format!("/api/v1/access/elevator-levels/{level}/members/nobody"), None).await;
    assert_eq!(status, 400);
    let (status, _) = api.delete(&format!("/api/v1/access/elevator-levels/{level}/members/7")).await;
    assert_eq!(status, 404);
    let (status, _) = api.delete(&format!("/api/v1/access/time-segments/{tz}")).await;
    assert_eq!(status, 409, "a segment an elevator level uses stays");
    let renamed = json!({ "name": "Upper floors", "time_segment_id": tz });
    let (status, updated) =
        api.send(reqwest::Method::PUT, &format!("/api/v1/access/elevator-levels/{level}"), Some(&renamed)).await;
    assert_eq!((status, updated["name"].as_str()), (200, Some("Upper floors")), "{updated}");
    let (status, _) = api.delete(&format!("/api/v1/access/elevator-levels/{level}")).await;
    assert_eq!(status, 204);
    let (status, _) = api.get_status(&format!("/api/v1/access/elevator-levels/{level}")).await;
    assert_eq!(status, 404);
}
