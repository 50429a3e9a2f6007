//! Roster sync plans against a real database of each engine: desired state (employees, their
//! areas, the terminals' areas) against what each device reported (OPERLOG `USER`, `BIODATA`).

use adms_store::roster::{
    EmployeeAssignment, EmployeeFields, EmployeeFilter, NewResignation, OrgFields, OrgFilter, OrgKind, OrgOrder,
    ResignationFilter, RosterError, RosterRefusal,
};
use adms_store::roster_sync::{RosterChange, TemplateKey};
use adms_store::{
    AdoptionPolicy, Approval, BiometricTemplate, NewDevice, OperlogBatch, Page, Store, UserAdoption, UserRow,
    now_micros,
};

use crate::common::{Engine, device_user, fresh};

crate::on_both_engines!(
    employee_changes_plan_commands_for_the_terminals_of_their_areas,
    a_replacement_terminal_gets_the_whole_roster_of_its_area,
    device_reports_reach_the_roster_only_as_the_policy_allows,
    pending_and_unassigned_terminals_get_nothing_and_lose_nothing,
    org_units_employees_and_resignations_keep_their_rules,
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

/// The roster's own rules, with no terminal involved: unit codes and parents, what keeps a unit
/// from being deleted, employee saves (created, updated, brought back), cards, areas and
/// assignments, resignations and reinstatement.
async fn org_units_employees_and_resignations_keep_their_rules(engine: Engine) {
    let store = fresh(engine).await;
    let all = Page { offset: 0, limit: 100 };
    let unit = |code: &str, parent_id| OrgFields { code: code.into(), name: format!("{code} name"), parent_id };

    // Units: a code is used once; a parent may not be the unit or one of its descendants.
    let top = store.save_org(OrgKind::Department, None, &unit("TOP", None)).await.unwrap();
    let mid = store.save_org(OrgKind::Department, None, &unit("MID", Some(top))).await.unwrap();
    let low = store.save_org(OrgKind::Department, None, &unit("LOW", Some(mid))).await.unwrap();
    assert!(matches!(
        store.save_org(OrgKind::Department, None, &unit("MID", None)).await,
        Err(RosterError::Refused(RosterRefusal::CodeTaken(id))) if id == mid
    ));
    assert!(matches!(
        store.save_org(OrgKind::Department, Some(top), &unit("TOP", Some(low))).await,
        Err(RosterError::Refused(RosterRefusal::ParentCycle))
    ));
    assert!(matches!(
        store.save_org(OrgKind::Department, Some(mid), &unit("MID", Some(mid))).await,
        Err(RosterError::Refused(RosterRefusal::ParentCycle))
    ));
    assert!(matches!(
        store.save_org(OrgKind::Department, Some(9999), &unit("NONE", None)).await,
        Err(RosterError::Store(adms_store::StoreError::NotFound))
    ));
    // Renamed in place, under the same parent.
    assert_eq!(store.save_org(OrgKind::Department, Some(low), &unit("LOW2", Some(mid))).await.unwrap(), low);
    let found = store.org_by_id(OrgKind::Department, low).await.unwrap().expect("unit");
    assert_eq!(
        (found.code.as_str(), found.parent_code.as_deref(), found.parent_parent_id),
        ("LOW2", Some("MID"), Some(top))
    );
    let by_name = OrgFilter { order: OrgOrder::CodeDesc, ..OrgFilter::default() };
    let (count, units) = store.list_org(OrgKind::Department, &by_name, all).await.unwrap();
    assert_eq!(count, 4);
    assert_eq!(units.iter().map(|u| u.code.as_str()).collect::<Vec<_>>(), ["TOP", "MID", "LOW2", "1"]);
    assert_eq!(store.missing_org_ids(OrgKind::Department, &[top, 9999]).await.unwrap(), [9999]);

    // Deletes: never the built-in unit, never one with children or live members.
    assert!(matches!(
        store.delete_org(OrgKind::Department, 1).await,
        Err(RosterError::Refused(RosterRefusal::BuiltIn))
    ));
    assert!(matches!(
        store.delete_org(OrgKind::Department, mid).await,
        Err(RosterError::Refused(RosterRefusal::InUse(1)))
    ));
    assert!(matches!(
        store.delete_org(OrgKind::Department, 9999).await,
        Err(RosterError::Store(adms_store::StoreError::NotFound))
    ));
    let hall = area(&store, "HALL").await;
    let yard = area(&store, "YARD").await;
    let position = store.save_org(OrgKind::Position, None, &unit("CLERK", None)).await.unwrap();

    // Employees: a create, an update of the same code, a card held once.
    let ann = EmployeeFields { card_no: "4242".into(), department_id: low, ..employee("0042", "Ann") };
    let saved = store.save_employee(&ann, &[hall, yard]).await.unwrap();
    assert!(saved.created);
    let again = store.save_employee(&EmployeeFields { last_name: "Lee".into(), ..ann.clone() }, &[hall]).await.unwrap();
    assert_eq!((again.id, again.created), (saved.id, false));
    let found = store.employee_by_id(saved.id).await.unwrap().expect("employee");
    assert_eq!((found.fields.last_name.as_str(), found.fields.card_no.as_str()), ("Lee", "4242"));
    assert_eq!((found.dept_code.as_str(), found.status.as_str()), ("LOW2", "active"));
    assert_eq!(found.areas.iter().map(|a| a.id).collect::<Vec<_>>(), [hall]);
    assert!(matches!(
        store.save_employee(&EmployeeFields { card_no: "4242".into(), ..employee("7", "Bob") }, &[]).await,
        Err(RosterError::Refused(RosterRefusal::DuplicateCard(holder))) if holder == "0042"
    ));
    let bob = store.save_employee(&employee("7", "Bob"), &[yard]).await.unwrap();
    assert!(matches!(
        store.delete_org(OrgKind::Department, low).await,
        Err(RosterError::Refused(RosterRefusal::InUse(1)))
    ));

    // Assignments move several employees at once.
    store.set_employee_areas(&[saved.id, bob.id], &[yard, hall]).await.unwrap();
    store.set_employee_assignment(&[saved.id, bob.id], EmployeeAssignment::Position(position)).await.unwrap();
    store.set_employee_assignment(&[bob.id], EmployeeAssignment::EmpType(3)).await.unwrap();
    store.set_employee_assignment(&[bob.id], EmployeeAssignment::Department(mid)).await.unwrap();
    let in_yard = EmployeeFilter { area: Some(yard), ..EmployeeFilter::default() };
    let (count, rows) = store.list_employees(&in_yard, all).await.unwrap();
    assert_eq!(count, 2);
    for e in &rows {
        assert_eq!(e.areas.iter().map(|a| a.id).collect::<Vec<_>>(), [hall, yard], "{}", e.fields.emp_code);
        assert_eq!(e.position_code.as_deref(), Some("CLERK"));
    }
    let bob_now = store.employee_by_code("7").await.unwrap().unwrap();
    assert_eq!((bob_now.fields.emp_type, bob_now.fields.department_id), (Some(3), mid));

    // Resignations: once each, editable while open, closed by reinstatement.
    let leave =
        NewResignation { resign_date: "2026-12-01".into(), resign_type: 1, disableatt: true, reason: "moved".into() };
    let ids = store.resign_employees(&[saved.id], &leave).await.unwrap();
    assert_eq!(ids.len(), 1);
    assert!(matches!(
        store.resign_employees(&[bob.id, saved.id], &leave).await,
        Err(RosterError::Refused(RosterRefusal::AlreadyResigned(code))) if code == "0042"
    ));
    assert_eq!(store.employee_by_code("7").await.unwrap().unwrap().status, "active", "refused as a whole");
    let resigned = EmployeeFilter { status: Some("resigned".into()), ..EmployeeFilter::default() };
    assert_eq!(store.list_employees(&resigned, all).await.unwrap().0, 1);
    let edited = NewResignation { disableatt: false, resign_type: 2, ..leave.clone() };
    assert!(store.update_resignation(ids[0], &edited).await.unwrap());
    let r = store.resignation_by_id(ids[0]).await.unwrap().expect("open resignation");
    assert_eq!((r.disableatt, r.resign_type, r.emp_code.as_str()), (false, 2, "0042"));
    let by_type = ResignationFilter { resign_type: Some(2), ..ResignationFilter::default() };
    assert_eq!(store.list_resignations(&by_type, all).await.unwrap().0, 1);
    assert_eq!(store.reinstate(&[ids[0], 9999]).await.unwrap(), [saved.id]);
    assert!(store.reinstate(&[ids[0]]).await.unwrap().is_empty(), "closed already");
    assert!(!store.update_resignation(ids[0], &leave).await.unwrap(), "history is not edited");
    assert_eq!(store.employee_by_id(saved.id).await.unwrap().unwrap().status, "active");

    // A deleted employee frees the card and comes back, as created, with a new save.
    assert!(store.delete_employee(bob.id).await.unwrap());
    assert!(!store.delete_employee(bob.id).await.unwrap());
    assert!(store.employee_by_code("7").await.unwrap().is_none());
    let back = store.save_employee(&employee("7", "Bob"), &[]).await.unwrap();
    assert_eq!((back.id, back.created), (bob.id, true));
    assert!(store.delete_employee(saved.id).await.unwrap());
    let carla = EmployeeFields { card_no: "4242".into(), ..employee("8", "Carla") };
    store.save_employee(&carla, &[]).await.unwrap();
    // The deleted employee no longer keeps the department, the area or the position.
    store.delete_org(OrgKind::Department, low).await.unwrap();
    store.save_employee(&employee("7", "Bob"), &[]).await.unwrap();
    store.set_employee_assignment(&[bob.id], EmployeeAssignment::Position(position)).await.unwrap();
    assert!(matches!(
        store.delete_org(OrgKind::Position, position).await,
        Err(RosterError::Refused(RosterRefusal::InUse(1)))
    ));
    assert!(store.org_by_id(OrgKind::Department, low).await.unwrap().is_none());
    // Only the deleted employee was still in the hall: it goes, and its member row with it.
    store.delete_org(OrgKind::Area, hall).await.unwrap();
    assert!(store.org_by_id(OrgKind::Area, hall).await.unwrap().is_none());

    // Terminals never assigned are in area 1.
    let areas = store.terminal_areas(&[4242]).await.unwrap();
    assert_eq!(areas.get(&4242).map(|a| a.id), Some(1));
}
