//! Desired state → device changes, as a pure computation (no SQL, no I/O).
//!
//! The roster says which users (and templates) each terminal should hold: every active employee
//! on every terminal of the employee's areas. Each device reported what it holds
//! (`device_users`, `biometric_templates`), and some changes may already be queued for it. The
//! plan is the difference between the desired state and the state the device will be in once
//! its queued changes ran, so planning twice, or planning while earlier changes are still
//! queued, adds nothing. Nothing here knows how a change is encoded for the wire: the command
//! queue turns a [`RosterChange`] into a device command.

use std::collections::{BTreeMap, BTreeSet};

/// A user as a terminal should hold it (`DATA UPDATE USERINFO`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceUser {
    pub pin: String,
    pub name: String,
    /// 0 normal user, 14 administrator (the device's `Pri`).
    pub privilege: i64,
    /// Device password in clear: the device needs it. Redacted in `Debug`.
    pub password: String,
    pub card: String,
    /// The device's verify mode; `None` leaves the device default.
    pub verify: Option<i64>,
}

impl std::fmt::Debug for DeviceUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceUser")
            .field("pin", &self.pin)
            .field("name", &self.name)
            .field("privilege", &self.privilege)
            .field("password", &if self.password.is_empty() { "" } else { "***" })
            .field("card", &self.card)
            .field("verify", &self.verify)
            .finish()
    }
}

/// Which biometric a template is: (type, finger/face number, fragment index), as in `BIODATA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateKey {
    pub bio_type: i64,
    pub no: i64,
    pub index: i64,
}

/// A template as a terminal should hold it (`DATA UPDATE BIODATA` / `FINGERTMP` / `FACE`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceTemplate {
    pub pin: String,
    pub key: TemplateKey,
    /// `FP`, `FACE`, `FVEIN` or `BIODATA`: the record kind it was enrolled as.
    pub record_kind: String,
    pub valid: Option<i64>,
    pub duress: Option<i64>,
    pub major_ver: Option<i64>,
    pub minor_ver: Option<i64>,
    pub format: String,
    pub template: String,
}

/// One change to one device's roster.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RosterChange {
    UpsertUser(DeviceUser),
    /// Removes the user and, on the device, every template of the user.
    DeleteUser {
        pin: String,
    },
    UpsertTemplate(DeviceTemplate),
    /// Removes the user's templates of one type (`None`: of every type).
    DeleteTemplates {
        pin: String,
        bio_type: Option<i64>,
    },
}

impl RosterChange {
    pub fn pin(&self) -> &str {
        match self {
            RosterChange::UpsertUser(u) => &u.pin,
            RosterChange::UpsertTemplate(t) => &t.pin,
            RosterChange::DeleteUser { pin } | RosterChange::DeleteTemplates { pin, .. } => pin,
        }
    }

    /// The command queue's de-duplication key: it names what the change is *about* (a user,
    /// one template slot, one template type), not its content. While a command under the key
    /// is queued, the same command is not queued again, and a different one (the desire changed
    /// before the device polled: an edit, or a delete after an upsert) supersedes it, so the
    /// device gets the latest desire once. Keys carry no password or template.
    pub fn dedup_key(&self) -> String {
        match self {
            RosterChange::UpsertUser(u) => format!("roster:user:{}", u.pin),
            RosterChange::DeleteUser { pin } => format!("roster:user:{pin}"),
            RosterChange::UpsertTemplate(t) => {
                format!("roster:template:{}:{}:{}:{}", t.pin, t.key.bio_type, t.key.no, t.key.index)
            }
            RosterChange::DeleteTemplates { pin, bio_type } => match bio_type {
                Some(t) => format!("roster:templates:{pin}:{t}"),
                None => format!("roster:templates:{pin}:all"),
            },
        }
    }
}

/// What one employee should look like on the terminals that should hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredEntry {
    pub user: DeviceUser,
    pub templates: Vec<DeviceTemplate>,
}

/// What one device holds, as far as the bridge knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceState {
    pub device_id: i64,
    /// Users the device reported (OPERLOG `USER`), by PIN.
    pub users: BTreeMap<String, DeviceUser>,
    /// Templates the device reported, by PIN.
    pub templates: BTreeMap<String, BTreeSet<TemplateKey>>,
    /// Changes queued for the device and not yet answered, in queue order.
    pub pending: Vec<RosterChange>,
}

/// The state a device will be in once its queued changes ran, as far as the roster cares:
/// the reported users and templates with every pending change applied in order. User
/// content is compared; template content is not (the device reports what it holds, and an
/// upsert of a key it holds changes nothing the roster asks for).
fn expected_state(device: &DeviceState) -> (BTreeMap<String, DeviceUser>, BTreeMap<String, BTreeSet<TemplateKey>>) {
    let mut users = device.users.clone();
    let mut templates = device.templates.clone();
    for change in &device.pending {
        match change {
            RosterChange::UpsertUser(u) => {
                users.insert(u.pin.clone(), u.clone());
            }
            RosterChange::DeleteUser { pin } => {
                users.remove(pin);
                templates.remove(pin);
            }
            RosterChange::UpsertTemplate(t) => {
                templates.entry(t.pin.clone()).or_default().insert(t.key);
            }
            RosterChange::DeleteTemplates { pin, bio_type } => {
                if let Some(keys) = templates.get_mut(pin) {
                    keys.retain(|k| bio_type.is_some_and(|t| k.bio_type != t));
                }
            }
        }
    }
    (users, templates)
}

/// Whether a reported user already matches the desired one. A device that reports no verify
/// mode, or the desired "device default", does not count as a difference.
fn user_matches(have: &DeviceUser, want: &DeviceUser) -> bool {
    have.name == want.name
        && have.privilege == want.privilege
        && have.password == want.password
        && have.card == want.card
        && (want.verify.is_none() || have.verify.is_none() || have.verify == want.verify)
}

/// The changes that bring `device` to the desired state, for the PINs in `managed` (the PINs
/// the roster decides about: a PIN outside it, e.g. one the roster has never heard of, is left
/// as the device has it). `desired` holds the entries this device should have; a managed PIN
/// missing from it should not be on the device.
///
/// Order: deletions first, then user upserts, each user followed by its templates (a device
/// accepts a template only for a user it holds).
pub fn plan_device(
    device: &DeviceState,
    desired: &BTreeMap<String, DesiredEntry>,
    managed: &BTreeSet<String>,
) -> Vec<RosterChange> {
    let (users, templates) = expected_state(device);
    let mut deletions = Vec::new();
    let mut upserts = Vec::new();
    for pin in managed {
        let held = users.get(pin);
        let held_templates = templates.get(pin);
        match desired.get(pin) {
            None => {
                if held.is_some() || held_templates.is_some_and(|t| !t.is_empty()) {
                    deletions.push(RosterChange::DeleteUser { pin: pin.clone() });
                }
            }
            Some(entry) => {
                if !held.is_some_and(|h| user_matches(h, &entry.user)) {
                    upserts.push(RosterChange::UpsertUser(entry.user.clone()));
                }
                for t in &entry.templates {
                    if !held_templates.is_some_and(|keys| keys.contains(&t.key)) {
                        upserts.push(RosterChange::UpsertTemplate(t.clone()));
                    }
                }
            }
        }
    }
    deletions.extend(upserts);
    deletions
}

/// Template removals for one employee on one device (`del_bio_template`), skipping those
/// already queued and those the device cannot hold (it reported no such template and none is
/// queued).
pub fn plan_template_removal(device: &DeviceState, pin: &str, bio_types: &[i64]) -> Vec<RosterChange> {
    let (_, templates) = expected_state(device);
    let held: BTreeSet<i64> =
        templates.get(pin).map(|keys| keys.iter().map(|k| k.bio_type).collect()).unwrap_or_default();
    bio_types
        .iter()
        .filter(|t| held.contains(t))
        .map(|t| RosterChange::DeleteTemplates { pin: pin.to_owned(), bio_type: Some(*t) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(pin: &str, name: &str) -> DeviceUser {
        DeviceUser {
            pin: pin.into(),
            name: name.into(),
            privilege: 0,
            password: String::new(),
            card: String::new(),
            verify: None,
        }
    }

    fn template(pin: &str, bio_type: i64, no: i64) -> DeviceTemplate {
        DeviceTemplate {
            pin: pin.into(),
            key: TemplateKey { bio_type, no, index: 0 },
            record_kind: "BIODATA".into(),
            valid: Some(1),
            duress: Some(0),
            major_ver: Some(12),
            minor_ver: Some(0),
            format: "0".into(),
            template: format!("tmpl-{pin}-{bio_type}-{no}"),
        }
    }

    fn desired(entries: &[DesiredEntry]) -> BTreeMap<String, DesiredEntry> {
        entries.iter().map(|e| (e.user.pin.clone(), e.clone())).collect()
    }

    fn pins(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn new_employee_goes_to_an_empty_device_with_templates_after_the_user() {
        let entry = DesiredEntry { user: user("0042", "Ann"), templates: vec![template("0042", 1, 3)] };
        let device = DeviceState { device_id: 7, ..DeviceState::default() };
        let plan = plan_device(&device, &desired(std::slice::from_ref(&entry)), &pins(&["0042"]));
        assert_eq!(
            plan,
            vec![
                RosterChange::UpsertUser(entry.user.clone()),
                RosterChange::UpsertTemplate(entry.templates[0].clone())
            ]
        );
    }

    #[test]
    fn a_device_that_already_matches_gets_nothing_and_a_changed_field_gets_one_upsert() {
        let mut entry = DesiredEntry { user: user("7", "Bo"), templates: vec![template("7", 9, 0)] };
        let mut device = DeviceState { device_id: 1, ..DeviceState::default() };
        device.users.insert("7".into(), DeviceUser { verify: Some(0), ..entry.user.clone() });
        device.templates.entry("7".into()).or_default().insert(entry.templates[0].key);
        assert!(plan_device(&device, &desired(std::slice::from_ref(&entry)), &pins(&["7"])).is_empty());
        entry.user.card = "12345".into();
        assert_eq!(
            plan_device(&device, &desired(std::slice::from_ref(&entry)), &pins(&["7"])),
            vec![RosterChange::UpsertUser(entry.user)]
        );
    }

    #[test]
    fn queued_changes_are_not_planned_again() {
        let entry = DesiredEntry { user: user("5", "Cy"), templates: vec![template("5", 1, 0)] };
        let mut device = DeviceState { device_id: 2, ..DeviceState::default() };
        let first = plan_device(&device, &desired(std::slice::from_ref(&entry)), &pins(&["5"]));
        assert_eq!(first.len(), 2);
        device.pending = first;
        assert!(plan_device(&device, &desired(&[entry]), &pins(&["5"])).is_empty());
    }

    #[test]
    fn resigned_employee_is_deleted_where_reported_or_queued_and_nowhere_else() {
        let mut reported = DeviceState { device_id: 1, ..DeviceState::default() };
        reported.users.insert("9".into(), user("9", "Di"));
        assert_eq!(
            plan_device(&reported, &BTreeMap::new(), &pins(&["9"])),
            vec![RosterChange::DeleteUser { pin: "9".into() }]
        );
        // Only queued, never confirmed: the upsert would still arrive, so it is undone.
        let queued = DeviceState {
            device_id: 2,
            pending: vec![RosterChange::UpsertUser(user("9", "Di"))],
            ..DeviceState::default()
        };
        assert_eq!(
            plan_device(&queued, &BTreeMap::new(), &pins(&["9"])),
            vec![RosterChange::DeleteUser { pin: "9".into() }]
        );
        // Never there: nothing to do; and a delete already queued is not repeated.
        let empty = DeviceState { device_id: 3, ..DeviceState::default() };
        assert!(plan_device(&empty, &BTreeMap::new(), &pins(&["9"])).is_empty());
        reported.pending.push(RosterChange::DeleteUser { pin: "9".into() });
        assert!(plan_device(&reported, &BTreeMap::new(), &pins(&["9"])).is_empty());
    }

    #[test]
    fn a_queued_delete_means_the_user_must_be_sent_again_when_reinstated() {
        let entry = DesiredEntry { user: user("3", "Ed"), templates: vec![] };
        let mut device = DeviceState { device_id: 1, ..DeviceState::default() };
        device.users.insert("3".into(), entry.user.clone());
        device.pending.push(RosterChange::DeleteUser { pin: "3".into() });
        assert_eq!(
            plan_device(&device, &desired(std::slice::from_ref(&entry)), &pins(&["3"])),
            vec![RosterChange::UpsertUser(entry.user)]
        );
    }

    #[test]
    fn terminal_sync_leaves_pins_the_roster_does_not_manage() {
        let mut device = DeviceState { device_id: 1, ..DeviceState::default() };
        device.users.insert("100".into(), user("100", "Local admin"));
        device.users.insert("200".into(), user("200", "Moved away"));
        let entry = DesiredEntry { user: user("300", "Fay"), templates: vec![] };
        let plan = plan_device(&device, &desired(std::slice::from_ref(&entry)), &pins(&["200", "300"]));
        assert_eq!(plan, vec![RosterChange::DeleteUser { pin: "200".into() }, RosterChange::UpsertUser(entry.user)]);
    }

    #[test]
    fn template_removal_only_where_the_type_is_held() {
        let mut device = DeviceState { device_id: 1, ..DeviceState::default() };
        device.templates.entry("4".into()).or_default().insert(TemplateKey { bio_type: 1, no: 0, index: 0 });
        assert_eq!(
            plan_template_removal(&device, "4", &[1, 9]),
            vec![RosterChange::DeleteTemplates { pin: "4".into(), bio_type: Some(1) }]
        );
        device.pending.push(RosterChange::DeleteTemplates { pin: "4".into(), bio_type: Some(1) });
        assert!(plan_template_removal(&device, "4", &[1, 9]).is_empty());
    }

    #[test]
    fn dedup_keys_name_the_target_and_hide_secrets() {
        let mut a = user("1", "Gus");
        a.password = "4321".into();
        let key = RosterChange::UpsertUser(a.clone()).dedup_key();
        assert!(!key.contains("4321"));
        // An edit or a delete of the same user replaces a queued upsert: same key.
        a.password = "1234".into();
        assert_eq!(key, RosterChange::UpsertUser(a.clone()).dedup_key());
        assert_eq!(key, RosterChange::DeleteUser { pin: "1".into() }.dedup_key());
        assert_ne!(key, RosterChange::DeleteUser { pin: "10".into() }.dedup_key());
        let t = template("1", 1, 3);
        assert_ne!(
            RosterChange::UpsertTemplate(t.clone()).dedup_key(),
            RosterChange::UpsertTemplate(template("1", 1, 4)).dedup_key()
        );
        assert!(!RosterChange::UpsertTemplate(t).dedup_key().contains("tmpl"));
        assert!(!format!("{a:?}").contains("1234"));
    }
}
