//! Roster sync plans against a real database of each engine: desired state (employees, their
//! areas, the terminals' areas) against what each device reported (OPERLOG `USER`, `BIODATA`).

use adms_store::roster::{EmployeeFields, NewResignation, OrgFields, OrgKind};
use adms_store::roster_sync::{RosterChange, TemplateKey};
use adms_store::{
    AdoptionPolicy, Approval, BiometricTemplate, NewDevice, OperlogBatch, Store, UserAdoption, UserRow, now_micros,
};

use crate::common::{Engine, device_user, fresh};

crate::on_both_engines!(
    employee_changes_plan_commands_for_the_terminals_of_their_areas,
    a_replacement_terminal_gets_the_whole_roster_of_its_area,
    device_reports_reach_the_roster_only_as_the_policy_allows,
    pending_and_unassigned_terminals_get_nothing_and_lose_nothing,
);

fn fingerprint(pin: &str, finger: i64) -> BiometricTemplate {
    crate::common::template(pin, finger, &format!("fp-{pin}-{finger}"))
}

/// An OPERLOG upload from an approved terminal whose reports the roster adopts (`adopt_all`).
async fn upload(store: &Store, device_id: i64, sn: &str, users: Vec<UserRow>, templates: Vec<BiometricTemplate>) {
    let adopt_all = AdoptionPolicy { adoption: UserAdoption::AdoptAll, allow_admin: false };
    upload_under(store, device_id, sn, users, templates, adopt_all).await;
}

async fn upload_under(
    store: &Store,
    device_id: i64,
    sn: &str,
    users: Vec<UserRow>,
    templates: Vec<BiometricTemplate>,
    adoption: AdoptionPolicy,
) {
    let batch = OperlogBatch {
        device_id,
        table: "OPERLOG",
        users,
        templates,
        received_at: now_micros(),
        device_sn: sn.into(),
        adoption,
        ..Default::default()
    };
    store.store_operlog(&batch).await.expect("store operlog");
}

async fn area(store: &Store, code: &str) -> i64 {
    store
        .save_org(OrgKind::Area, None, &OrgFields { code: code.into(), name: code.into(), parent_id: None })
        .await
        .unwrap()
}

async fn terminal(store: &Store, sn: &str, area_id: Option<i64>) -> adms_store::Device {
    let device = store
        .register_device(&NewDevice { sn, approval: Some(Approval::Approved), ..Default::default() })
        .await
        .unwrap();
    if let Some(area_id) = area_id {
        store.set_terminal_area(device.id, area_id).await.unwrap();
    }
    device
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

async fn employee_changes_plan_commands_for_the_terminals_of_their_areas(engine: Engine) {
    let store = fresh(engine).await;
    let hq = area(&store, "HQ").await;
    let yard = area(&store, "YARD").await;
    let gate = terminal(&store, "GATE", Some(yard)).await;
    let office = terminal(&store, "OFFICE", Some(hq)).await;

    // The gate already holds user 0042 with a fingerprint, under an old name; adopted, she
    // joins the gate's area.
    upload(&store, gate.id, "GATE", vec![device_user("0042", "Ann")], vec![fingerprint("0042", 6)]).await;
    let found = store.employee_by_code("0042").await.unwrap().expect("device user appears in the roster");
    assert_eq!(found.areas.iter().map(|a| a.id).collect::<Vec<_>>(), [yard]);

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

async fn a_replacement_terminal_gets_the_whole_roster_of_its_area(engine: Engine) {
    let store = fresh(engine).await;
    let site = area(&store, "SITE").await;
    let old = terminal(&store, "OLD", Some(site)).await;
    upload(&store, old.id, "OLD", vec![device_user("1", "One"), device_user("2", "Two")], vec![fingerprint("2", 0)])
        .await;
    store.save_employee(&employee("3", "Three"), &[site]).await.unwrap();
    let replacement = terminal(&store, "NEW", Some(site)).await;

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

async fn device_reports_reach_the_roster_only_as_the_policy_allows(engine: Engine) {
    let store = fresh(engine).await;
    let site = area(&store, "SITE").await;
    let gate = terminal(&store, "GATE", Some(site)).await;
    store.save_employee(&EmployeeFields { card_no: "4242".into(), ..employee("0042", "Ann") }, &[site]).await.unwrap();
    let admin =
        |pin: &str, name: &str| UserRow { privilege: Some(14), password: "99".into(), ..device_user(pin, name) };
    let policy = |adoption| AdoptionPolicy { adoption, allow_admin: false };

    // observe: kept per device, nothing in the roster; its template is not the roster's.
    upload_under(
        &store,
        gate.id,
        "GATE",
        vec![admin("7", "Mallory")],
        vec![fingerprint("0042", 1)],
        policy(UserAdoption::Observe),
    )
    .await;
    assert!(store.employee_by_code("7").await.unwrap().is_none());
    assert!(
        store
            .plan_employee_sync("0042")
            .await
            .unwrap()
            .iter()
            .all(|(_, c)| !matches!(c, RosterChange::UpsertTemplate(_)))
    );

    // adopt_new: the new PIN becomes a normal user in the terminal's area with her finger; the
    // ERP's employee is neither renamed nor given the device's finger.
    upload_under(
        &store,
        gate.id,
        "GATE",
        vec![admin("8", "Carla"), device_user("0042", "Renamed")],
        vec![fingerprint("8", 2), fingerprint("0042", 2)],
        policy(UserAdoption::AdoptNew),
    )
    .await;
    let carla = store.employee_by_code("8").await.unwrap().expect("adopted");
    assert_eq!((carla.fields.dev_privilege, carla.areas.iter().map(|a| a.id).collect::<Vec<_>>()), (0, vec![site]));
    assert_eq!(store.employee_by_code("0042").await.unwrap().unwrap().fields.first_name, "Ann");
    let templates = |plan: Vec<(i64, RosterChange)>| -> Vec<(String, i64)> {
        plan.into_iter()
            .filter_map(|(_, c)| match c {
                RosterChange::UpsertTemplate(t) => Some((t.pin, t.key.no)),
                _ => None,
            })
            .collect()
    };
    let second = terminal(&store, "SECOND", Some(site)).await;
    let plan: Vec<_> = store.plan_device_sync(second.id).await.unwrap();
    assert_eq!(templates(plan), [("8".to_owned(), 2)], "only the adopted template travels");
    // adopt_all takes the ERP employee's finger too.
    upload_under(&store, gate.id, "GATE", vec![], vec![fingerprint("0042", 3)], policy(UserAdoption::AdoptAll)).await;
    let plan: Vec<_> = store.plan_device_sync(second.id).await.unwrap();
    assert_eq!(templates(plan), [("0042".to_owned(), 3), ("8".to_owned(), 2)]);

    // adopt_all on a device-made employee: follows the device but never gains privilege; a
    // device made with admins allowed keeps it, and a later report cannot raise it again.
    upload_under(&store, gate.id, "GATE", vec![admin("8", "Carla Two")], vec![], policy(UserAdoption::AdoptAll)).await;
    let carla = store.employee_by_code("8").await.unwrap().unwrap();
    assert_eq!((carla.fields.first_name.as_str(), carla.fields.dev_privilege), ("Carla Two", 0));
    let allow = AdoptionPolicy { adoption: UserAdoption::AdoptAll, allow_admin: true };
    upload_under(&store, gate.id, "GATE", vec![admin("9", "Root")], vec![], allow).await;
    assert_eq!(store.employee_by_code("9").await.unwrap().unwrap().fields.dev_privilege, 14);

    // A name the API would refuse is never adopted.
    upload_under(&store, gate.id, "GATE", vec![device_user("10", &"x".repeat(40))], vec![], allow).await;
    assert!(store.employee_by_code("10").await.unwrap().is_none());
}

async fn pending_and_unassigned_terminals_get_nothing_and_lose_nothing(engine: Engine) {
    let store = fresh(engine).await;
    let site = area(&store, "SITE").await;
    store.save_employee(&employee("1", "One"), &[site]).await.unwrap();
    store.save_employee(&employee("2", "Two"), &[1]).await.unwrap();
    let unassigned = terminal(&store, "LOOSE", None).await;
    let pending = store.register_device(&NewDevice { sn: "PEND", ..Default::default() }).await.unwrap();
    assert_eq!(pending.approval, Approval::Pending, "a device nobody vouched for starts pending");
    store.set_terminal_area(pending.id, site).await.unwrap();
    // Both hold roster users the roster does not want there.
    for device in [&unassigned, &pending] {
        upload_under(&store, device.id, &device.sn, vec![device_user("1", "One")], vec![], AdoptionPolicy::default())
            .await;
    }
    assert_eq!(store.plan_device_sync(unassigned.id).await.unwrap(), []);
    assert_eq!(store.plan_device_sync(pending.id).await.unwrap(), []);
    for pin in ["1", "2"] {
        let plan = store.plan_employee_sync(pin).await.unwrap();
        assert!(plan.iter().all(|(d, _)| *d != unassigned.id && *d != pending.id), "{pin}: {plan:?}");
    }
    // Area 1 ("Not Authorized") holds nobody, even when assigned explicitly.
    let explicit = terminal(&store, "AREA1", Some(1)).await;
    assert_eq!(store.plan_device_sync(explicit.id).await.unwrap(), []);
    // Once approved and assigned, the terminal gets its area's roster.
    store.set_approval("PEND", Approval::Approved).await.unwrap();
    let plan = store.plan_device_sync(pending.id).await.unwrap();
    assert!(plan.is_empty(), "it already holds user 1 as desired: {plan:?}");
    let site_terminal = terminal(&store, "SITE2", Some(site)).await;
    let plan = store.plan_device_sync(site_terminal.id).await.unwrap();
    assert_eq!(plan.len(), 1, "{plan:?}");
}
