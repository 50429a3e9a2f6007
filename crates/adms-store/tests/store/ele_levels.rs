//! Elevator levels on both engines: levels, their floors (of several elevator controllers) and
//! members, and the `usereleauthorize` rows they plan onto each controller.

use adms_model::access::{AccessChange, LocalTime, WeeklySchedule};
use adms_store::access::change_command;
use adms_store::roster::EmployeeFields;
use adms_store::{Approval, ErrorKind, NewCommand, NewDevice, Store};

use crate::common::{Engine, fresh};

crate::on_both_engines!(
    elevator_levels_keep_their_floors_members_and_rules,
    an_elevator_controller_is_planned_floor_rights_and_loses_them,
);

fn now() -> LocalTime {
    "2026-12-06 12:00:00".parse().unwrap()
}

/// An approved elevator controller with `floors` declared floors.
async fn elevator(store: &Store, sn: &str, floors: i64) -> i64 {
    let device = store
        .register_device(&NewDevice { sn, approval: Some(Approval::Approved), ..Default::default() })
        .await
        .unwrap();
    store.set_elevator_floors(device.id, floors).await.unwrap();
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

fn lines(changes: &[AccessChange]) -> Vec<String> {
    changes.iter().map(|c| change_command(c).encode().unwrap()).collect()
}

async fn queue(store: &Store, device_id: i64, changes: &[AccessChange]) {
    let commands: Vec<NewCommand> = changes
        .iter()
        .map(|c| NewCommand {
            device_id,
            command: change_command(c),
            dedupe_key: Some(c.dedup_key()),
            source: "access".into(),
            expires_at: i64::MAX,
        })
        .collect();
    store.enqueue_commands(&commands, adms_store::now_micros()).await.unwrap();
}

async fn elevator_levels_keep_their_floors_members_and_rules(engine: Engine) {
    let store = fresh(engine).await;
    let lift_a = elevator(&store, "ELE1", 4).await;
    let lift_b = elevator(&store, "ELE2", 2).await;
    let floors_a = store.access_floors(Some(lift_a)).await.unwrap();
    let floors_b = store.access_floors(Some(lift_b)).await.unwrap();
    let segment = store.create_time_segment("Always", &WeeklySchedule::always()).await.unwrap();
    let other = store.create_time_segment("Never", &WeeklySchedule::default()).await.unwrap();

    let level = store.create_ele_level("Tower", segment.id).await.unwrap();
    assert_eq!((level.name.as_str(), level.floor_ids.len(), level.member_count), ("Tower", 0, 0));
    let taken = store.create_ele_level("Tower", segment.id).await.unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::Conflict, "names are unique");
    assert_eq!(store.create_ele_level("X", 999).await.unwrap_err().kind(), ErrorKind::Invalid);
    assert_eq!(store.create_ele_level(" ", segment.id).await.unwrap_err().kind(), ErrorKind::Invalid);

    // Floors of two controllers: both are concerned by the level's changes.
    let affected =
        store.add_ele_level_floors(level.id, &[floors_a[0].id, floors_a[2].id, floors_b[1].id]).await.unwrap();
    assert_eq!(affected.into_iter().collect::<Vec<_>>(), [lift_a, lift_b]);
    assert_eq!(store.add_ele_level_floors(level.id, &[99_999]).await.unwrap_err().kind(), ErrorKind::Invalid);
    assert_eq!(store.add_ele_level_floors(99_999, &[floors_a[0].id]).await.unwrap_err().kind(), ErrorKind::NotFound);
    // Adding a floor twice keeps one.
    store.add_ele_level_floors(level.id, &[floors_a[0].id]).await.unwrap();
    let read = store.ele_level(level.id).await.unwrap().unwrap();
    assert_eq!(read.floor_ids, [floors_a[0].id, floors_a[2].id, floors_b[1].id]);
    assert_eq!(store.ele_level_by_name("Tower").await.unwrap().unwrap().id, level.id);
    assert!(store.ele_level_by_name("tower").await.unwrap().is_none());

    employee(&store, "7", "").await;
    let affected = store.put_ele_level_member(level.id, "7", None, Some("2026-12-31".parse().unwrap())).await.unwrap();
    assert_eq!(affected.len(), 2);
    assert_eq!(
        store.put_ele_level_member(level.id, "nobody", None, None).await.unwrap_err().kind(),
        ErrorKind::Invalid
    );
    let backwards = store
        .put_ele_level_member(level.id, "7", Some("2026-12-31".parse().unwrap()), Some("2026-12-01".parse().unwrap()))
        .await;
    assert_eq!(backwards.unwrap_err().kind(), ErrorKind::Invalid);
    let members = store.ele_level_members(level.id).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].emp_code.as_str(), members[0].valid_until.map(|d| d.to_string())),
        ("7", Some("2026-12-31".into()))
    );
    assert_eq!(store.ele_level(level.id).await.unwrap().unwrap().member_count, 1);
    let of_employee = store.access_controllers_of_employee("7").await.unwrap();
    assert_eq!(of_employee.into_iter().collect::<Vec<_>>(), [lift_a, lift_b]);

    // A segment an elevator level uses cannot go; its change concerns the level's controllers.
    assert_eq!(store.delete_time_segment(segment.id).await.unwrap_err().kind(), ErrorKind::Conflict);
    let affected = store.update_time_segment(segment.id, "Always", &WeeklySchedule::always()).await.unwrap();
    assert_eq!(affected.len(), 2);
    let affected = store.update_ele_level(level.id, "Tower A", other.id).await.unwrap();
    assert_eq!(affected.len(), 2);
    assert_eq!(store.ele_level(level.id).await.unwrap().unwrap().time_segment_id, other.id);
    assert_eq!(store.update_ele_level(99_999, "Y", other.id).await.unwrap_err().kind(), ErrorKind::NotFound);

    // Fewer floors declared: the level loses the floors that went.
    store.set_elevator_floors(lift_a, 2).await.unwrap();
    assert_eq!(store.ele_level(level.id).await.unwrap().unwrap().floor_ids, [floors_a[0].id, floors_b[1].id]);
    let affected = store.remove_ele_level_floor(level.id, floors_b[1].id).await.unwrap();
    assert_eq!(affected.len(), 2, "the controllers before the removal");
    assert_eq!(store.remove_ele_level_floor(level.id, floors_b[1].id).await.unwrap_err().kind(), ErrorKind::NotFound);

    assert_eq!(store.remove_ele_level_member(level.id, "7").await.unwrap().into_iter().collect::<Vec<_>>(), [lift_a]);
    assert_eq!(store.remove_ele_level_member(level.id, "7").await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(store.ele_levels().await.unwrap().len(), 1);
    assert_eq!(store.delete_ele_level(level.id).await.unwrap().into_iter().collect::<Vec<_>>(), [lift_a]);
    assert_eq!(store.delete_ele_level(level.id).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert!(store.ele_levels().await.unwrap().is_empty());
    store.delete_time_segment(other.id).await.unwrap();
    let ids = store.elevator_controller_ids().await.unwrap();
    assert_eq!(ids, [lift_a, lift_b]);
    assert_eq!(store.access_controller_ids().await.unwrap(), [lift_a, lift_b], "elevator controllers are provisioned");
}

async fn an_elevator_controller_is_planned_floor_rights_and_loses_them(engine: Engine) {
    let store = fresh(engine).await;
    let lift = elevator(&store, "ELE3", 16).await;
    let floors = store.access_floors(Some(lift)).await.unwrap();
    let segment = store.create_time_segment("Always", &WeeklySchedule::always()).await.unwrap();
    let level = store.create_ele_level("Upper", segment.id).await.unwrap();
    // Floors 8 and 9: the reference's example mask, 180.
    store.add_ele_level_floors(level.id, &[floors[7].id, floors[8].id]).await.unwrap();
    employee(&store, "7", "123456").await;
    store.put_ele_level_member(level.id, "7", None, None).await.unwrap();
    assert!(store.plan_access_sync(lift, &now()).await.unwrap().len() > 2);
    let tz = segment.id;
    let plan = lines(&store.plan_access_sync(lift, &now()).await.unwrap());
    assert_eq!(
        plan[1..],
        [
            "DATA UPDATE user CardNo=123456\tPin=7\tPassword=\tGroup=1\tStartTime=0\tEndTime=0\tName=P7\tPrivilege=0"
                .to_owned(),
            format!("DATA UPDATE usereleauthorize Pin=7\tAuthorizeTimezoneId={tz}\tAuthorizeFloors=180"),
        ]
    );
    assert!(plan[0].starts_with(&format!("DATA UPDATE timezone TimezoneId={tz}\tSunTime1=2359")), "{plan:?}");
    queue(&store, lift, &store.plan_access_sync(lift, &now()).await.unwrap()).await;
    assert!(store.plan_access_sync(lift, &now()).await.unwrap().is_empty(), "queued rows count as held");

    // Another floor: only the rights row again, with the new mask.
    store.add_ele_level_floors(level.id, &[floors[0].id]).await.unwrap();
    let plan = store.plan_access_sync(lift, &now()).await.unwrap();
    assert_eq!(
        lines(&plan),
        [format!("DATA UPDATE usereleauthorize Pin=7\tAuthorizeTimezoneId={tz}\tAuthorizeFloors=181")]
    );
    queue(&store, lift, &plan).await;

    // A full re-sync clears usereleauthorize too, on an elevator controller.
    let resync = lines(&store.plan_access_resync(lift, &now()).await.unwrap());
    assert_eq!(
        resync[..5],
        [
            "DATA DELETE userauthorize *",
            "DATA DELETE usereleauthorize *",
            "DATA DELETE user *",
            "DATA DELETE timezone *",
            "DATA DELETE holiday *"
        ]
    );

    // Out of the level: the rights, the user and the time zone go.
    store.remove_ele_level_member(level.id, "7").await.unwrap();
    let plan = lines(&store.plan_access_sync(lift, &now()).await.unwrap());
    assert_eq!(
        plan,
        [
            format!("DATA DELETE usereleauthorize Pin=7\tAuthorizeTimezoneId={tz}"),
            "DATA DELETE user Pin=7".to_owned(),
            format!("DATA DELETE timezone TimezoneId={tz}"),
        ]
    );
    // A membership that ended before today puts nothing on the controller.
    store.put_ele_level_member(level.id, "7", None, Some("2026-12-01".parse().unwrap())).await.unwrap();
    queue(&store, lift, &store.plan_access_sync(lift, &now()).await.unwrap()).await;
    assert!(store.plan_access_sync(lift, &now()).await.unwrap().is_empty());
    // A controller that is not approved gets nothing.
    let pending = store.register_device(&NewDevice { sn: "ELE4", ..Default::default() }).await.unwrap();
    store.set_elevator_floors(pending.id, 2).await.unwrap();
    assert!(store.plan_access_resync(pending.id, &now()).await.unwrap().is_empty());
}
