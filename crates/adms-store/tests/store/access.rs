//! The access model on both engines: doors derived from what a controller reports, segments,
//! levels and members, and the provisioning plan of a controller against the command queue.

use adms_model::access::{AccessChange, LocalTime, WeeklySchedule};
use adms_store::access::change_command;
use adms_store::roster::EmployeeFields;
use adms_store::visits::{NewVisit, VisitError, VisitKey};
use adms_store::{Approval, CommandPolicy, CommandResultRow, DeviceFacts, ErrorKind, NewCommand, NewDevice, Store};

use crate::common::{Engine, fresh};

crate::on_both_engines!(
    doors_come_from_the_controller_report_and_levels_keep_their_rules,
    a_controller_is_planned_only_the_difference_and_catches_up_on_refusals,
    a_visitor_is_on_the_controllers_of_its_levels_only_while_the_visit_is_in_progress,
);

const NEVER: i64 = i64::MAX;

/// The controllers' local time the plans are made at.
fn now() -> LocalTime {
    "2026-12-06 12:00:00".parse().unwrap()
}

async fn controller(store: &Store, sn: &str, locks: &str) -> i64 {
    let device = store
        .register_device(&NewDevice { sn, approval: Some(Approval::Approved), ..Default::default() })
        .await
        .unwrap();
    let options = [("LockCount", locks), ("ReaderCount", "4"), ("AuxInCount", "2"), ("AuxOutCount", "2")];
    let facts = DeviceFacts {
        options: options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..DeviceFacts::default()
    };
    store.store_device_facts(device.id, None, &facts).await.unwrap();
    device.id
}

async fn employee(store: &Store, code: &str, card: &str) {
    let fields = EmployeeFields {
        emp_code: code.into(),
        first_name: format!("P{code}"),
        card_no: card.into(),
        department_id: 1,
        verify_mode: -1,
        app_role: 1,
        ..Default::default()
    };
    store.save_employee(&fields, &[]).await.unwrap();
}

/// The command text of each planned change.
fn lines(changes: &[AccessChange]) -> Vec<String> {
    changes.iter().map(|c| change_command(c).encode().unwrap()).collect()
}

/// Queues a plan as the server does (one command per row, under the row's key).
async fn queue(store: &Store, device_id: i64, changes: &[AccessChange]) {
    let commands: Vec<NewCommand> = changes
        .iter()
        .map(|c| NewCommand {
            device_id,
            command: change_command(c),
            dedupe_key: Some(c.dedup_key()),
            source: "access".into(),
            expires_at: NEVER,
        })
        .collect();
    store.enqueue_commands(&commands, adms_store::now_micros()).await.unwrap();
}

async fn doors_come_from_the_controller_report_and_levels_keep_their_rules(engine: Engine) {
    let store = fresh(engine).await;
    let panel = controller(&store, "ACC1", "2").await;
    let doors = store.access_doors(Some(panel)).await.unwrap();
    assert_eq!(doors.iter().map(|d| (d.door_no, d.name.as_str())).collect::<Vec<_>>(), [(1, "ACC1-1"), (2, "ACC1-2")]);
    // A second report with more locks adds doors and keeps a renamed one's name; fewer locks
    // delete nothing.
    store.rename_access_door(doors[0].id, "Front").await.unwrap();
    let facts = DeviceFacts { options: vec![("LockCount".into(), "4".into())], ..DeviceFacts::default() };
    store.store_device_facts(panel, None, &facts).await.unwrap();
    let facts = DeviceFacts { options: vec![("LockCount".into(), "1".into())], ..DeviceFacts::default() };
    store.store_device_facts(panel, None, &facts).await.unwrap();
    let doors = store.access_doors(Some(panel)).await.unwrap();
    assert_eq!(doors.len(), 4);
    assert_eq!(doors[0].name, "Front");
    assert_eq!(store.rename_access_door(9999, "X").await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(store.rename_access_door(doors[1].id, "\u{7}").await.unwrap_err().kind(), ErrorKind::Invalid);

    // Auxiliary outputs the same way: from AuxOutCount (kept when a report leaves it out), more
    // added, none deleted.
    let outputs = store.access_aux_outputs(Some(panel)).await.unwrap();
    let names: Vec<(i64, &str)> = outputs.iter().map(|a| (a.aux_no, a.name.as_str())).collect();
    assert_eq!(names, [(1, "ACC1-AuxOut1"), (2, "ACC1-AuxOut2")]);
    for count in ["3", "1"] {
        let options = vec![("LockCount".into(), "4".into()), ("AuxOutCount".into(), count.into())];
        store.store_device_facts(panel, None, &DeviceFacts { options, ..DeviceFacts::default() }).await.unwrap();
    }
    let outputs = store.access_aux_outputs(Some(panel)).await.unwrap();
    assert_eq!(outputs.iter().map(|a| a.aux_no).collect::<Vec<_>>(), [1, 2, 3]);
    let third = store.access_aux_output(outputs[2].id).await.unwrap().unwrap();
    assert_eq!((third.sn.as_str(), third.device_id), ("ACC1", panel));
    assert!(store.access_aux_output(9999).await.unwrap().is_none());
    assert!(store.access_aux_outputs(Some(9999)).await.unwrap().is_empty());

    // An elevator controller's floors are declared; fewer deletes the floors above.
    let floors = store.set_elevator_floors(panel, 3).await.unwrap();
    assert_eq!(
        floors.iter().map(|f| (f.floor_no, f.name.as_str())).collect::<Vec<_>>(),
        [(1, "ACC1-1"), (2, "ACC1-2"), (3, "ACC1-3")]
    );
    let floors = store.set_elevator_floors(panel, 2).await.unwrap();
    assert_eq!(floors.len(), 2);
    assert_eq!(store.access_floor(floors[1].id).await.unwrap().unwrap().sn, "ACC1");
    assert_eq!(store.set_elevator_floors(panel, 257).await.unwrap_err().kind(), ErrorKind::Invalid);
    assert_eq!(store.set_elevator_floors(9999, 2).await.unwrap_err().kind(), ErrorKind::NotFound);

    let schedule = WeeklySchedule::always();
    let segment = store.create_time_segment("24h", &schedule).await.unwrap();
    assert_eq!(store.time_segment(segment.id).await.unwrap().unwrap().schedule, schedule);
    assert_eq!(store.create_time_segment("24h", &schedule).await.unwrap_err().kind(), ErrorKind::Conflict);
    assert_eq!(store.create_access_level("Staff", 9999).await.unwrap_err().kind(), ErrorKind::Invalid);
    let level = store.create_access_level("Staff", segment.id).await.unwrap();
    let affected = store.add_access_level_doors(level.id, &[doors[0].id, doors[1].id]).await.unwrap();
    assert_eq!(affected.into_iter().collect::<Vec<_>>(), [panel]);
    assert_eq!(store.add_access_level_doors(level.id, &[9999]).await.unwrap_err().kind(), ErrorKind::Invalid);
    assert_eq!(store.add_access_level_doors(9999, &[doors[0].id]).await.unwrap_err().kind(), ErrorKind::NotFound);
    // A segment in use is not deleted.
    assert_eq!(store.delete_time_segment(segment.id).await.unwrap_err().kind(), ErrorKind::Conflict);

    employee(&store, "7", "123456").await;
    let (from, until) = ("2026-12-01".parse().unwrap(), "2026-12-31".parse().unwrap());
    assert_eq!(
        store.put_access_level_member(level.id, "7", Some(until), Some(from)).await.unwrap_err().kind(),
        ErrorKind::Invalid
    );
    assert_eq!(
        store.put_access_level_member(level.id, "nobody", None, None).await.unwrap_err().kind(),
        ErrorKind::Invalid
    );
    store.put_access_level_member(level.id, "7", Some(from), Some(until)).await.unwrap();
    let members = store.access_level_members(level.id).await.unwrap();
    assert_eq!((members[0].emp_code.as_str(), members[0].valid_until), ("7", Some(until)));
    let read = store.access_level(level.id).await.unwrap().unwrap();
    assert_eq!((read.door_ids.len(), read.member_count), (2, 1));
    assert_eq!(store.access_controllers_of_employee("7").await.unwrap().into_iter().collect::<Vec<_>>(), [panel]);

    let affected = store.delete_access_level(level.id).await.unwrap();
    assert!(affected.contains(&panel));
    assert!(store.access_level(level.id).await.unwrap().is_none());
    store.delete_time_segment(segment.id).await.unwrap();
    assert_eq!(store.delete_time_segment(segment.id).await.unwrap_err().kind(), ErrorKind::NotFound);
}

async fn a_controller_is_planned_only_the_difference_and_catches_up_on_refusals(engine: Engine) {
    let store = fresh(engine).await;
    let panel = controller(&store, "ACC2", "4").await;
    let doors = store.access_doors(Some(panel)).await.unwrap();
    let schedule = WeeklySchedule { monday: vec!["08:00-18:00".parse().unwrap()], ..WeeklySchedule::default() };
    let segment = store.create_time_segment("Office", &schedule).await.unwrap();
    let level = store.create_access_level("Office", segment.id).await.unwrap();
    store.add_access_level_doors(level.id, &[doors[0].id, doors[2].id]).await.unwrap();
    employee(&store, "7", "123456").await;
    store.put_access_level_member(level.id, "7", None, Some("2026-12-31".parse().unwrap())).await.unwrap();
    store.create_access_holiday("2026-12-25".parse().unwrap(), "Christmas", 1, true).await.unwrap();

    let plan = store.plan_access_sync(panel, &now()).await.unwrap();
    // A device without doors (an attendance terminal) gets no holiday, nor anything else.
    let terminal = store
        .register_device(&NewDevice { sn: "ATT1", approval: Some(Approval::Approved), ..Default::default() })
        .await;
    assert!(store.plan_access_sync(terminal.unwrap().id, &now()).await.unwrap().is_empty());
    let tz = segment.id;
    let monday = 800 * 65536 + 1800;
    let mut timezone =
        format!("DATA UPDATE timezone TimezoneId={tz}\tSunTime1=0\tSunTime2=0\tSunTime3=0\tMonTime1={monday}");
    for field in adms_protocol::access::TIMEZONE_FIELDS.iter().skip(4) {
        timezone.push_str(&format!("\t{field}=0"));
    }
    assert_eq!(
        lines(&plan),
        [
            timezone,
            "DATA UPDATE holiday Holiday=20261225\tHolidayType=1\tLoop=1".to_owned(),
            "DATA UPDATE user CardNo=123456\tPin=7\tPassword=\tGroup=1\tStartTime=0\tEndTime=20261231\tName=P7\tPrivilege=0"
                .to_owned(),
            format!("DATA UPDATE userauthorize Pin=7\tAuthorizeTimezoneId={tz}\tAuthorizeDoorId=5"),
        ]
    );
    queue(&store, panel, &plan).await;
    assert!(store.plan_access_sync(panel, &now()).await.unwrap().is_empty(), "queued rows count as held");

    // A change sends only its difference: door 3 leaves the level.
    store.remove_access_level_door(level.id, doors[2].id).await.unwrap();
    let plan = store.plan_access_sync(panel, &now()).await.unwrap();
    assert_eq!(lines(&plan), [format!("DATA UPDATE userauthorize Pin=7\tAuthorizeTimezoneId={tz}\tAuthorizeDoorId=1")]);
    queue(&store, panel, &plan).await;

    // The controller takes everything, but refuses the user row: only that row is planned again.
    let policy = CommandPolicy::default();
    let taken = store.take_due_commands(panel, adms_store::now_micros(), &policy).await.unwrap();
    assert_eq!(taken.commands.len(), 4, "the superseded rights row is not handed out: {:?}", taken.commands);
    let results: Vec<CommandResultRow> = taken
        .commands
        .iter()
        .map(|c| {
            let code = if c.text.starts_with("DATA UPDATE user ") { -1 } else { 0 };
            CommandResultRow {
                command_id: c.id.to_string(),
                return_code: Some(code),
                cmd: "DATA".into(),
                head: format!("ID={}&Return={code}&CMD=DATA", c.id).into_bytes(),
                payload: vec![],
            }
        })
        .collect();
    store
        .store_command_results(panel, &results, &[], &DeviceFacts::default(), adms_store::now_micros(), &policy)
        .await
        .unwrap();
    let plan = store.plan_access_sync(panel, &now()).await.unwrap();
    assert_eq!(lines(&plan).len(), 1);
    assert!(lines(&plan)[0].starts_with("DATA UPDATE user CardNo=123456\tPin=7"), "{plan:?}");
    queue(&store, panel, &plan).await;

    // Out of the level: rights, then the user, then the unused time zone go.
    store.remove_access_level_member(level.id, "7").await.unwrap();
    let plan = store.plan_access_sync(panel, &now()).await.unwrap();
    assert_eq!(
        lines(&plan),
        [
            format!("DATA DELETE userauthorize Pin=7\tAuthorizeTimezoneId={tz}"),
            "DATA DELETE user Pin=7".to_owned(),
            format!("DATA DELETE timezone TimezoneId={tz}"),
        ]
    );
    // A full re-sync clears the four tables and sends what remains (the holiday).
    let resync = lines(&store.plan_access_resync(panel, &now()).await.unwrap());
    assert_eq!(
        resync,
        [
            "DATA DELETE userauthorize *",
            "DATA DELETE user *",
            "DATA DELETE timezone *",
            "DATA DELETE holiday *",
            "DATA UPDATE holiday Holiday=20261225\tHolidayType=1\tLoop=1",
        ]
    );
    // A membership that ended before today puts nothing on the controller.
    store.put_access_level_member(level.id, "7", None, Some("2026-12-01".parse().unwrap())).await.unwrap();
    let plan = lines(&store.plan_access_sync(panel, &now()).await.unwrap());
    assert!(plan.contains(&"DATA DELETE user Pin=7".to_owned()), "{plan:?}");
    assert!(!plan.iter().any(|l| l.starts_with("DATA UPDATE user")), "{plan:?}");
}

fn at(text: &str) -> LocalTime {
    text.parse().unwrap()
}

async fn a_visitor_is_on_the_controllers_of_its_levels_only_while_the_visit_is_in_progress(engine: Engine) {
    let store = fresh(engine).await;
    let panel = controller(&store, "ACC3", "2").await;
    let doors = store.access_doors(Some(panel)).await.unwrap();
    let segment = store.create_time_segment("24h", &WeeklySchedule::always()).await.unwrap();
    let level = store.create_access_level("Lobby", segment.id).await.unwrap();
    store.add_access_level_doors(level.id, &[doors[1].id]).await.unwrap();
    employee(&store, "7", "123456").await;
    let visit = NewVisit {
        host_emp_code: "7".into(),
        cert_type: 2,
        cert_num: "X1234567".into(),
        name: "Vera Visitor".into(),
        phone: String::new(),
        company: "ACME".into(),
        reason: "Audit".into(),
        visitor_count: 1,
        starts_at: at("2026-12-07 09:00:00"),
        ends_at: at("2026-12-08 17:00:00"),
        card_no: "4242".into(),
        level_ids: vec![level.id],
    };

    // Refusals, each before anything is stored.
    let before = at("2026-12-07 08:00:00");
    let refused = |v: NewVisit| {
        let store = &store;
        let before = &before;
        async move { store.create_visit(&v, before).await.unwrap_err() }
    };
    assert!(matches!(
        refused(NewVisit { host_emp_code: "nobody".into(), ..visit.clone() }).await,
        VisitError::HostMissing(_)
    ));
    assert!(matches!(
        refused(NewVisit { level_ids: vec![9999], ..visit.clone() }).await,
        VisitError::LevelMissing(9999)
    ));
    assert!(
        matches!(refused(NewVisit { card_no: "123456".into(), ..visit.clone() }).await, VisitError::CardUsed(c) if c == "7")
    );
    assert!(matches!(
        refused(NewVisit { ends_at: at("2026-12-07 09:00:00"), ..visit.clone() }).await,
        VisitError::EndsBeforeStart
    ));
    assert!(matches!(refused(NewVisit { cert_type: 9, ..visit.clone() }).await, VisitError::BadCertType));
    assert!(matches!(refused(NewVisit { visitor_count: 0, ..visit.clone() }).await, VisitError::BadCount));
    assert!(matches!(refused(NewVisit { card_no: "12ab".into(), ..visit.clone() }).await, VisitError::BadCard));
    assert!(matches!(
        refused(NewVisit { company: "a\tb".into(), ..visit.clone() }).await,
        VisitError::BadText("company", _)
    ));
    assert!(store.access_visits(None).await.unwrap().is_empty());

    // Registered before it starts: nothing on the controller yet.
    let (registered, controllers) = store.create_visit(&visit, &before).await.unwrap();
    assert_eq!(controllers.into_iter().collect::<Vec<_>>(), [panel]);
    let pin = registered.pin.clone();
    assert_eq!(pin, format!("8{:08}", registered.id));
    assert_eq!((registered.cert_num.as_str(), registered.card_no.as_str()), ("X1234567", "4242"), "opened when read");
    assert!(matches!(store.create_visit(&visit, &before).await.unwrap_err(), VisitError::AlreadyRegistered));
    assert!(store.plan_access_sync(panel, &before).await.unwrap().is_empty());
    assert!(store.settle_visit_boundaries(&before).await.unwrap().is_empty(), "nothing started");

    // It starts: the periodic pass names the controller once; the plan puts the visitor on it,
    // valid on the visit's days.
    let during = at("2026-12-07 09:00:30");
    assert_eq!(store.settle_visit_boundaries(&during).await.unwrap().into_iter().collect::<Vec<_>>(), [panel]);
    assert!(store.settle_visit_boundaries(&during).await.unwrap().is_empty(), "each boundary once");
    let plan = lines(&store.plan_access_sync(panel, &during).await.unwrap());
    let user = format!(
        "DATA UPDATE user CardNo=4242\tPin={pin}\tPassword=\tGroup=1\tStartTime=20261207\tEndTime=20261208\tName=Vera Visitor\tPrivilege=0"
    );
    let right = format!("DATA UPDATE userauthorize Pin={pin}\tAuthorizeTimezoneId={}\tAuthorizeDoorId=2", segment.id);
    assert!(plan.contains(&user) && plan.contains(&right), "{plan:?}");
    queue(&store, panel, &store.plan_access_sync(panel, &during).await.unwrap()).await;
    assert_eq!(store.access_visits(Some(&during)).await.unwrap().len(), 1);

    // It ends: named once more, and the plan takes the visitor off.
    let after = at("2026-12-08 17:00:00");
    assert!(store.access_visits(Some(&after)).await.unwrap().is_empty());
    assert_eq!(store.settle_visit_boundaries(&after).await.unwrap().into_iter().collect::<Vec<_>>(), [panel]);
    let plan = lines(&store.plan_access_sync(panel, &after).await.unwrap());
    let removal = [
        format!("DATA DELETE userauthorize Pin={pin}\tAuthorizeTimezoneId={}", segment.id),
        format!("DATA DELETE user Pin={pin}"),
    ];
    assert_eq!(plan[..2], removal, "{plan:?}");

    // The same document may come again once its visit is over; an exit ends a visit at once.
    let next = NewVisit { starts_at: at("2026-12-09 08:00:00"), ends_at: at("2026-12-09 18:00:00"), ..visit.clone() };
    let (again, _) = store.create_visit(&next, &after).await.unwrap();
    assert!(matches!(store.create_visit(&next, &after).await.unwrap_err(), VisitError::AlreadyRegistered));
    let late = at("2026-12-09 10:00:00");
    assert_eq!(store.settle_visit_boundaries(&late).await.unwrap().into_iter().collect::<Vec<_>>(), [panel]);
    queue(&store, panel, &store.plan_access_sync(panel, &late).await.unwrap()).await;
    let key = VisitKey::Certificate { cert_type: 2, cert_num: "X1234567".into() };
    let left = store.exit_visit(&key, &late).await.unwrap();
    assert_eq!(left.id, again.id);
    assert!(left.exited_at.is_some());
    assert!(matches!(store.exit_visit(&key, &late).await.unwrap_err(), VisitError::NotRegistered));
    assert!(matches!(store.exit_visit(&VisitKey::Id(again.id), &late).await.unwrap_err(), VisitError::NotRegistered));
    assert_eq!(store.visit_controllers(&left).await.unwrap().into_iter().collect::<Vec<_>>(), [panel]);
    assert!(store.settle_visit_boundaries(&late).await.unwrap().is_empty(), "the exit planned its end already");
    let plan = lines(&store.plan_access_sync(panel, &late).await.unwrap());
    let removal = [
        format!("DATA DELETE userauthorize Pin={}\tAuthorizeTimezoneId={}", left.pin, segment.id),
        format!("DATA DELETE user Pin={}", left.pin),
    ];
    assert_eq!(plan[..2], removal, "{plan:?}");
}
