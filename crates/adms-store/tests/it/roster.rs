//! Roster sync plans against a real SQLite file: desired state (employees, their areas, the
//! terminals' areas) against what each device reported (OPERLOG `USER`, `BIODATA`).

use adms_store::roster::{EmployeeFields, NewResignation, OrgFields, OrgKind};
use adms_store::roster_sync::{RosterChange, TemplateKey};
use adms_store::{BiometricTemplate, NewDevice, OperlogBatch, Store, StoreOptions, UserRow, now_micros};

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/roster.db", dir.path().display());
    (dir, Store::open(&url, StoreOptions::default()).await.expect("open"))
}

fn device_user(pin: &str, name: &str) -> UserRow {
    UserRow {
        pin: pin.into(),
        name: name.into(),
        name_raw: None,
        privilege: Some(0),
        password: String::new(),
        card: String::new(),
        group: "1".into(),
        time_zones: "0000000100000000".into(),
        verify: Some(-1),
        vice_card: String::new(),
        raw_line: format!("USER PIN={pin}\tName={name}").into_bytes(),
    }
}

fn fingerprint(pin: &str, finger: i64) -> BiometricTemplate {
    BiometricTemplate {
        pin: pin.into(),
        record_kind: "BIODATA",
        bio_type: 1,
        no: finger,
        index: 0,
        valid: Some(1),
        duress: Some(0),
        major_ver: Some(10),
        minor_ver: Some(0),
        format: "0".into(),
        size: Some(8),
        template: format!("fp-{pin}-{finger}"),
    }
}

async fn upload(store: &Store, device_id: i64, sn: &str, users: Vec<UserRow>, templates: Vec<BiometricTemplate>) {
    let batch = OperlogBatch {
        device_id,
        table: "OPERLOG",
        users,
        templates,
        received_at: now_micros(),
        device_sn: sn.into(),
        ..Default::default()
    };
    store.store_operlog(&batch).await.expect("store operlog");
}

fn employee(code: &str, first: &str) -> EmployeeFields {
    EmployeeFields {
        emp_code: code.into(),
        first_name: first.into(),
        department_id: 1,
        verify_mode: -1,
        app_role: 1,
        ..Default::default()
    }
}

#[tokio::test]
async fn employee_changes_plan_commands_for_the_terminals_of_their_areas() {
    let (_dir, store) = open().await;
    let hq = store
        .save_org(OrgKind::Area, None, &OrgFields { code: "HQ".into(), name: "HQ".into(), parent_id: None })
        .await
        .unwrap();
    let gate = store.register_device(&NewDevice { sn: "GATE", ..Default::default() }).await.unwrap();
    let office = store.register_device(&NewDevice { sn: "OFFICE", ..Default::default() }).await.unwrap();
    store.set_terminal_area(office.id, hq).await.unwrap();

    // The gate (area 1) already holds user 0042 with a fingerprint, under an old name.
    upload(&store, gate.id, "GATE", vec![device_user("0042", "Ann")], vec![fingerprint("0042", 6)]).await;
    let found = store.employee_by_code("0042").await.unwrap().expect("device user appears in the roster");
    assert_eq!(found.areas.iter().map(|a| a.id).collect::<Vec<_>>(), [1]);

    // The ERP renames her and puts her in HQ only: the office gets user + fingerprint (the
    // copy the gate reported), the gate loses her.
    let mut fields = found.fields.clone();
    fields.first_name = "Ann".into();
    fields.last_name = "Lee".into();
    fields.device_password = "4321".into();
    store.save_employee(&fields, &[hq]).await.unwrap();
    let plan = store.plan_employee_sync("0042").await.unwrap();
    let office_changes: Vec<&RosterChange> = plan.iter().filter(|(d, _)| *d == office.id).map(|(_, c)| c).collect();
    let gate_changes: Vec<&RosterChange> = plan.iter().filter(|(d, _)| *d == gate.id).map(|(_, c)| c).collect();
    assert_eq!(gate_changes, [&RosterChange::DeleteUser { pin: "0042".into() }]);
    assert_eq!(office_changes.len(), 2, "{office_changes:?}");
    match office_changes[0] {
        RosterChange::UpsertUser(u) => {
            assert_eq!((u.pin.as_str(), u.name.as_str(), u.password.as_str()), ("0042", "Ann Lee", "4321"));
        }
        other => panic!("expected the user first, got {other:?}"),
    }
    match office_changes[1] {
        RosterChange::UpsertTemplate(t) => {
            assert_eq!(t.key, TemplateKey { bio_type: 1, no: 6, index: 0 });
            assert_eq!(t.template, "fp-0042-6");
        }
        other => panic!("expected the template, got {other:?}"),
    }

    // Once the office reports her as desired, nothing is left to do there.
    upload(
        &store,
        office.id,
        "OFFICE",
        vec![UserRow { password: "4321".into(), ..device_user("0042", "Ann Lee") }],
        vec![fingerprint("0042", 6)],
    )
    .await;
    let plan = store.plan_employee_sync("0042").await.unwrap();
    assert!(plan.iter().all(|(d, _)| *d == gate.id), "{plan:?}");
    // The device's report did not overwrite the ERP's record.
    assert_eq!(store.employee_by_code("0042").await.unwrap().unwrap().fields.last_name, "Lee");

    // Resigned: removed everywhere it is held; the terminal sync of the office agrees.
    let employee_id = store.employee_by_code("0042").await.unwrap().unwrap().id;
    let resignation =
        NewResignation { resign_date: "2026-12-01".into(), resign_type: 1, disableatt: true, reason: String::new() };
    store.resign_employees(&[employee_id], &resignation).await.unwrap();
    let mut plan = store.plan_employee_sync("0042").await.unwrap();
    plan.sort();
    let mut expected = vec![
        (gate.id, RosterChange::DeleteUser { pin: "0042".into() }),
        (office.id, RosterChange::DeleteUser { pin: "0042".into() }),
    ];
    expected.sort();
    assert_eq!(plan, expected);
    assert_eq!(
        store.plan_device_sync(office.id).await.unwrap(),
        [(office.id, RosterChange::DeleteUser { pin: "0042".into() })]
    );
}

#[tokio::test]
async fn a_replacement_terminal_gets_the_whole_roster_of_its_area() {
    let (_dir, store) = open().await;
    let old = store.register_device(&NewDevice { sn: "OLD", ..Default::default() }).await.unwrap();
    upload(&store, old.id, "OLD", vec![device_user("1", "One"), device_user("2", "Two")], vec![fingerprint("2", 0)])
        .await;
    store.save_employee(&employee("3", "Three"), &[1]).await.unwrap();
    // Unknown to the roster: left alone on any device.
    let replacement = store.register_device(&NewDevice { sn: "NEW", ..Default::default() }).await.unwrap();

    let plan = store.plan_device_sync(replacement.id).await.unwrap();
    let upserted: Vec<&str> = plan
        .iter()
        .filter_map(|(_, c)| match c {
            RosterChange::UpsertUser(u) => Some(u.pin.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(upserted, ["1", "2", "3"]);
    assert!(plan.iter().any(|(_, c)| matches!(c, RosterChange::UpsertTemplate(t) if t.pin == "2")));
    assert!(plan.iter().all(|(d, _)| *d == replacement.id));
    // The old terminal already holds 1 and 2; it only misses 3.
    assert_eq!(
        store.plan_device_sync(old.id).await.unwrap(),
        [(
            old.id,
            RosterChange::UpsertUser(adms_store::roster_sync::DeviceUser {
                pin: "3".into(),
                name: "Three".into(),
                privilege: 0,
                password: String::new(),
                card: String::new(),
                verify: None,
            })
        )]
    );

    // Template deletion: forgotten by the bridge, removed where held, not re-sent later.
    let two = store.employee_by_code("2").await.unwrap().unwrap();
    let plan = store.delete_employee_templates(two.id, &[1]).await.unwrap();
    assert_eq!(plan, [(old.id, RosterChange::DeleteTemplates { pin: "2".into(), bio_type: Some(1) })]);
    let plan = store.plan_device_sync(replacement.id).await.unwrap();
    assert!(!plan.iter().any(|(_, c)| matches!(c, RosterChange::UpsertTemplate(_))), "{plan:?}");
}
