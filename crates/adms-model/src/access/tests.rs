use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn user(pin: &str) -> ControllerUser {
    ControllerUser {
        pin: pin.into(),
        name: format!("P{pin}"),
        card: String::new(),
        password: String::new(),
        start_date: None,
        end_date: None,
    }
}

fn grant(pin: &str, timezone_id: u32, door_no: u8) -> Grant {
    Grant { pin: pin.into(), timezone_id, door_no }
}

fn floor_grant(pin: &str, timezone_id: u32, floor_no: u16) -> FloorGrant {
    FloorGrant { pin: pin.into(), timezone_id, floor_no }
}

#[test]
fn floor_grants_become_one_elevator_rights_row_per_person_and_time_zone_with_their_users() {
    let users: BTreeMap<String, ControllerUser> = ["1", "2"].into_iter().map(|p| (p.to_owned(), user(p))).collect();
    let timezones = BTreeMap::from([(2, WeeklySchedule::always()), (3, WeeklySchedule::default())]);
    let floors = [
        floor_grant("1", 2, 8),
        floor_grant("1", 2, 9),
        floor_grant("1", 2, 9),
        floor_grant("1", 3, 256),
        floor_grant("2", 2, 0),
        floor_grant("2", 2, 257),
        floor_grant("9", 2, 1),
        floor_grant("1", 7, 1),
    ];
    let rows = desired_rows_with_floors(&users, &[], &floors, &timezones, &[]);
    let ele: Vec<(String, u32, Vec<u16>)> = rows
        .rows
        .values()
        .filter_map(|r| match r {
            Row::EleAuthorize { pin, timezone_id, floors } => {
                Some((pin.clone(), *timezone_id, floors.iter().copied().collect()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(ele, [("1".into(), 2, vec![8, 9]), ("1".into(), 3, vec![256])]);
    assert!(rows.rows.contains_key(&RowKey::User("1".into())), "a person with floors is a user");
    assert!(!rows.rows.contains_key(&RowKey::User("2".into())), "floors out of range grant nothing");
    assert!(!rows.rows.contains_key(&RowKey::User("9".into())) && !rows.rows.contains_key(&RowKey::Timezone(7)));
    assert_eq!(rows.len(), 1 + 2 + 2);
    // Door and floor rights of one person and time zone are two rows, with two keys.
    let both = desired_rows_with_floors(&users, &[grant("1", 2, 1)], &floors[..1], &timezones, &[]);
    assert!(both.rows.contains_key(&RowKey::Authorize("1".into(), 2)));
    assert!(both.rows.contains_key(&RowKey::EleAuthorize("1".into(), 2)));
    assert_ne!(RowKey::Authorize("1".into(), 2).dedup_key(), RowKey::EleAuthorize("1".into(), 2).dedup_key());
    let changes = plan(&both, &ControllerRows::default());
    let tables: Vec<Table> = changes
        .iter()
        .filter_map(|c| if let AccessChange::Upsert(r) = c { Some(r.key().table()) } else { None })
        .collect();
    assert_eq!(tables, [Table::Timezone, Table::User, Table::Authorize, Table::EleAuthorize]);
    let mut held = ControllerRows::default();
    changes.iter().for_each(|c| held.apply(c));
    let removal = plan(&desired_rows(&users, &[grant("1", 2, 1)], &timezones, &[]), &held);
    assert_eq!(removal, [AccessChange::Delete(RowKey::EleAuthorize("1".into(), 2))], "the user stays for the door");
}

#[test]
fn intervals_and_dates_read_and_write_their_text() {
    let interval: Interval = "08:30-12:00".parse().unwrap();
    assert_eq!(interval.packed(), 830 * 65536 + 1200);
    assert_eq!(interval.to_string(), "08:30-12:00");
    for bad in ["12:00-08:00", "24:00-24:30", "8:30-12:00", "08:30", "08:30-12:60"] {
        assert!(bad.parse::<Interval>().is_err(), "{bad}");
    }
    let date: AccessDate = "2026-12-24".parse().unwrap();
    assert_eq!(date.yyyymmdd(), 20261224);
    assert_eq!(serde_json::to_value(date).unwrap(), "2026-12-24");
    for bad in ["2026-13-01", "1999-01-01", "2026-1-01", "20261224"] {
        assert!(bad.parse::<AccessDate>().is_err(), "{bad}");
    }
    let schedule: WeeklySchedule =
        serde_json::from_str(r#"{"monday": ["13:00-18:00", "08:00-12:00"], "holiday_type2": ["00:00-23:59"]}"#)
            .unwrap();
    let packed = schedule.packed();
    assert_eq!(packed.len(), 30);
    assert_eq!(&packed[3..6], &[800 * 65536 + 1200, 1300 * 65536 + 1800, 0], "sorted within the day");
    assert_eq!(packed[24], 2359);
    let four = r#"{"friday": ["01:00-02:00", "03:00-04:00", "05:00-06:00", "07:00-08:00"]}"#;
    assert_eq!(
        serde_json::from_str::<WeeklySchedule>(four).unwrap().validate(),
        Err(AccessError::TooManyIntervals { day: "friday" })
    );
    assert!(serde_json::from_str::<WeeklySchedule>(r#"{"funday": []}"#).is_err());
}

#[test]
fn grants_become_one_rights_row_per_person_and_time_zone() {
    let users: BTreeMap<String, ControllerUser> = ["1", "2"].into_iter().map(|p| (p.to_owned(), user(p))).collect();
    let timezones = BTreeMap::from([(2, WeeklySchedule::always()), (3, WeeklySchedule::default())]);
    let grants = [grant("1", 2, 1), grant("1", 2, 3), grant("1", 3, 2), grant("2", 2, 4), grant("9", 2, 1)];
    let christmas = "2026-12-25".parse().unwrap();
    let rows = desired_rows(&users, &grants, &timezones, &[(christmas, 1, true)]);
    let authorize: Vec<(String, u32, u32)> = rows
        .rows
        .values()
        .filter_map(|r| match r {
            Row::Authorize { pin, timezone_id, doors } => Some((pin.clone(), *timezone_id, *doors)),
            _ => None,
        })
        .collect();
    assert_eq!(authorize, [("1".into(), 2, 0b101), ("1".into(), 3, 0b010), ("2".into(), 2, 0b1000)]);
    assert!(rows.rows.contains_key(&RowKey::User("1".into())) && !rows.rows.contains_key(&RowKey::User("9".into())));
    assert!(rows.rows.contains_key(&RowKey::Timezone(3)) && rows.rows.contains_key(&RowKey::Holiday(christmas)));
    assert_eq!(rows.len(), 2 + 3 + 2 + 1);
}

#[test]
fn a_plan_orders_rights_after_what_they_name_and_before_their_removal() {
    let users = BTreeMap::from([("1".to_owned(), user("1"))]);
    let timezones = BTreeMap::from([(2, WeeklySchedule::always())]);
    let first = desired_rows(&users, &[grant("1", 2, 1)], &timezones, &[]);
    let changes = plan(&first, &ControllerRows::default());
    let tables: Vec<Table> = changes
        .iter()
        .map(|c| match c {
            AccessChange::Upsert(row) => row.key().table(),
            _ => panic!("only upserts: {c:?}"),
        })
        .collect();
    assert_eq!(tables, [Table::Timezone, Table::User, Table::Authorize]);
    let mut held = ControllerRows::default();
    changes.iter().for_each(|c| held.apply(c));
    assert!(plan(&first, &held).is_empty(), "planned twice: nothing more");
    let removal = plan(&ControllerRows::default(), &held);
    assert_eq!(
        removal,
        [
            AccessChange::Delete(RowKey::Authorize("1".into(), 2)),
            AccessChange::Delete(RowKey::User("1".into())),
            AccessChange::Delete(RowKey::Timezone(2)),
        ]
    );
}

/// A small world of persons, doors, time zones and holidays; each state is a random subset.
fn world_state() -> impl Strategy<Value = ControllerRows> {
    let pins = prop::collection::btree_map(0u8..6, (any::<bool>(), prop::option::of(0u8..3)), 0..6);
    let grants = prop::collection::vec((0u8..6, 1u32..4, 1u8..5), 0..12);
    // Floors of an elevator controller, 1-256 (the ends of the mask included) and a few beyond.
    let floor_grants = prop::collection::vec((0u8..6, 1u32..4, prop_oneof![1u16..6, 250u16..258]), 0..12);
    let schedules = prop::collection::btree_map(1u32..4, prop::collection::vec((0u16..600, 0u16..600), 0..3), 0..4);
    let holidays = prop::collection::btree_map(1u32..5, (1u8..4, any::<bool>()), 0..3);
    (pins, grants, floor_grants, schedules, holidays).prop_map(|(pins, grants, floor_grants, schedules, holidays)| {
        let users: BTreeMap<String, ControllerUser> = pins
            .into_iter()
            .map(|(pin, (has_card, end))| {
                let mut u = user(&pin.to_string());
                if has_card {
                    u.card = format!("{}", 1000 + u32::from(pin));
                }
                u.end_date = end.map(|d| AccessDate::new(2027, 1, 1 + u32::from(d)).unwrap());
                (pin.to_string(), u)
            })
            .collect();
        let grants: Vec<Grant> = grants.into_iter().map(|(p, tz, door)| grant(&p.to_string(), tz, door)).collect();
        let floor_grants: Vec<FloorGrant> =
            floor_grants.into_iter().map(|(p, tz, floor)| floor_grant(&p.to_string(), tz, floor)).collect();
        let timezones = schedules
            .into_iter()
            .map(|(tz, intervals)| {
                let monday =
                    intervals.into_iter().map(|(a, b)| Interval::new(a.min(b), a.max(b) + 600).unwrap()).collect();
                (tz, WeeklySchedule { monday, ..WeeklySchedule::default() })
            })
            .collect();
        let holidays: Vec<(AccessDate, u8, bool)> = holidays
            .into_iter()
            .map(|(day, (t, yearly))| (AccessDate::new(2026, 12, day).unwrap(), t, yearly))
            .collect();
        desired_rows_with_floors(&users, &grants, &floor_grants, &timezones, &holidays)
    })
}

/// Checks one plan against the controller it is for: no change twice, no upsert of a row the
/// controller already holds as desired, no delete of a row it does not hold.
fn check_plan(changes: &[AccessChange], held: &ControllerRows) -> Result<(), TestCaseError> {
    let distinct: BTreeSet<&AccessChange> = changes.iter().collect();
    prop_assert_eq!(distinct.len(), changes.len(), "a change planned twice: {:?}", changes);
    let keys: BTreeSet<String> = changes.iter().map(AccessChange::dedup_key).collect();
    prop_assert_eq!(keys.len(), changes.len(), "two changes for one row: {:?}", changes);
    for change in changes {
        match change {
            AccessChange::Upsert(row) => prop_assert_ne!(held.rows.get(&row.key()), Some(row), "re-sent {:?}", row),
            AccessChange::Delete(key) => prop_assert!(held.rows.contains_key(key), "deleted a row not held: {:?}", key),
            AccessChange::Clear(_) => prop_assert!(false, "the planner never clears"),
        }
    }
    Ok(())
}

proptest! {
    /// Any sequence of desired states: after each, planning and applying the plan leaves the
    /// controller holding exactly the desired rows, and a second plan is empty.
    #[test]
    fn any_sequence_of_changes_converges_and_sends_nothing_twice(states in prop::collection::vec(world_state(), 1..6)) {
        let mut controller = ControllerRows::default();
        for desired in &states {
            let changes = plan(desired, &controller);
            check_plan(&changes, &controller)?;
            for change in &changes {
                controller.apply(change);
            }
            prop_assert_eq!(&controller, desired);
            prop_assert!(plan(desired, &controller).is_empty());
        }
    }

    /// Applied in order, a plan never leaves the controller holding a right (to doors or
    /// floors) whose user or time zone it does not hold.
    #[test]
    fn rights_never_name_a_missing_user_or_time_zone(before in world_state(), desired in world_state()) {
        let mut controller = ControllerRows::default();
        for change in plan(&before, &controller).iter().chain(plan(&desired, &before).iter()) {
            controller.apply(change);
            for key in controller.rows.keys() {
                if let RowKey::Authorize(pin, tz) | RowKey::EleAuthorize(pin, tz) = key {
                    prop_assert!(controller.rows.contains_key(&RowKey::User(pin.clone())), "{:?} without its user", key);
                    prop_assert!(controller.rows.contains_key(&RowKey::Timezone(*tz)), "{:?} without its time zone", key);
                }
            }
        }
    }

    /// A controller that took only part of a plan (it went offline, or refused some rows)
    /// converges on the next plan, which re-sends none of the rows it already took.
    #[test]
    fn a_controller_that_took_part_of_a_plan_catches_up(
        before in world_state(),
        desired in world_state(),
        taken in prop::collection::vec(any::<bool>(), 0..64),
    ) {
        let mut controller = ControllerRows::default();
        for change in plan(&before, &controller) {
            controller.apply(&change);
        }
        for (change, take) in plan(&desired, &controller).iter().zip(taken.iter().chain(std::iter::repeat(&false))) {
            if *take {
                controller.apply(change);
            }
        }
        let rest = plan(&desired, &controller);
        check_plan(&rest, &controller)?;
        for change in &rest {
            controller.apply(change);
        }
        prop_assert_eq!(controller, desired);
    }

    /// A full re-sync (every table cleared, then the plan against an empty controller) ends in
    /// the same tables as the incremental plan.
    #[test]
    fn a_full_resync_ends_where_the_incremental_plan_ends(before in world_state(), desired in world_state()) {
        let mut incremental = ControllerRows::default();
        for change in plan(&before, &incremental).iter().chain(plan(&desired, &before).iter()) {
            incremental.apply(change);
        }
        let mut resynced = before.clone();
        for table in [Table::Authorize, Table::EleAuthorize, Table::User, Table::Timezone, Table::Holiday] {
            resynced.apply(&AccessChange::Clear(table));
        }
        prop_assert!(resynced.is_empty());
        for change in plan(&desired, &resynced) {
            resynced.apply(&change);
        }
        prop_assert_eq!(&resynced, &incremental);
        prop_assert_eq!(&resynced, &desired);
    }
}

#[test]
fn visits_are_active_from_their_start_until_their_end_or_exit() {
    let t = |s: &str| s.parse::<LocalTime>().unwrap();
    let (start, end) = (t("2026-12-07 09:00:00"), t("2026-12-07 17:30:00"));
    assert_eq!(VisitPhase::at(&start, &end, false, &t("2026-12-07 08:59:59")), VisitPhase::Upcoming);
    assert_eq!(VisitPhase::at(&start, &end, false, &start), VisitPhase::Active);
    assert_eq!(VisitPhase::at(&start, &end, false, &t("2026-12-07 17:29:59")), VisitPhase::Active);
    assert_eq!(VisitPhase::at(&start, &end, false, &end), VisitPhase::Over);
    assert_eq!(VisitPhase::at(&start, &end, true, &t("2026-12-07 10:00:00")), VisitPhase::Over);
    assert!(VisitPhase::Upcoming < VisitPhase::Active && VisitPhase::Active < VisitPhase::Over);
    assert_eq!(VisitPhase::from_number(1), VisitPhase::Active);
    for bad in ["2026-12-07", "2026-12-07 9:00:00", "2026-12-07 24:00:00", "2026-13-07 09:00:00", "2026-12-07 09:00"] {
        assert!(bad.parse::<LocalTime>().is_err(), "{bad}");
    }
    assert_eq!(visitor_pin(1), "800000001");
    assert_eq!(visitor_pin(123_456_789), "8123456789");
    let user = visitor_user(7, "Vera", "4242", &start, &t("2026-12-09 10:00:00"));
    assert_eq!(
        (user.pin.as_str(), user.start_date.map(AccessDate::yyyymmdd), user.end_date.map(AccessDate::yyyymmdd)),
        ("800000007", Some(20261207), Some(20261209))
    );
}
