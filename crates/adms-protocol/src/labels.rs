//! English display labels for punch states and verify modes, as ZKBio Time shows them by default
//! (ERP connectors compare them literally; webhooks carry them beside the codes).

/// `punch_state_display` for a punch state code.
pub fn punch_state(code: &str) -> &'static str {
    match code {
        "0" | "I" | "i" => "Check In",
        "1" | "O" | "o" => "Check Out",
        "2" => "Break Out",
        "3" => "Break In",
        "4" => "Overtime In",
        "5" => "Overtime Out",
        _ => "Unknown",
    }
}

/// `verify_type_display` for a verification mode code (`protocol.md` §4.1 / ZKBio Time 9.x).
pub fn verify_type(code: i64) -> &'static str {
    match code {
        0 => "Any",
        1 => "Fingerprint",
        2 => "Badge",
        3 => "Password",
        4 => "Card",
        5 => "Fingerprint/Password",
        6 => "Fingerprint/Card",
        7 => "Password/Card",
        8 => "Badge and Fingerprint",
        9 => "Fingerprint and Password",
        10 => "Fingerprint and Card",
        11 => "Password and Card",
        12 => "Fingerprint, Password and Card",
        13 => "Badge, Fingerprint and Password",
        14 => "Fingerprint and Card or Fingerprint and Badge",
        15 => "Face",
        16 => "Face and Fingerprint",
        17 => "Face and Password",
        18 => "Face and Card",
        19 => "Face, Fingerprint and Card",
        20 => "Face, Fingerprint and Password",
        21 => "Finger Vein",
        22 => "Finger Vein and Password",
        23 => "Finger Vein and Card",
        24 => "Finger Vein, Password and Card",
        25 => "Palm",
        26 => "Palm and Card",
        27 => "Palm and Face",
        28 => "Palm and Fingerprint",
        29 => "Palm, Fingerprint and Face",
        _ => "Other",
    }
}

/// The English name of an access controller's `rtlog` event code (`protocol.md` §4.7,
/// `cvsecurity_api.md` §7.5); codes without a name here are "Event <code>" by the caller.
pub fn access_event(code: i64) -> Option<&'static str> {
    Some(match code {
        0 => "Normal Verify Open",
        1 => "Verify During Passage Mode Time Zone",
        2 => "First-Personnel Open",
        3 => "Multi-Personnel Open",
        4 => "Emergency Password Open",
        5 => "Open During Passage Mode Time Zone",
        6 => "Linkage Event Triggered",
        7 => "Cancel Alarm",
        8 => "Remote Opening",
        9 => "Remote Closing",
        10 => "Disable Intraday Passage Mode Time Zone",
        11 => "Enable Intraday Passage Mode Time Zone",
        12 => "Open Auxiliary Output",
        13 => "Close Auxiliary Output",
        20 => "Operation Interval Too Short",
        21 => "Door Inactive Time Zone Verify Open",
        22 => "Illegal Time Zone",
        23 => "Access Denied",
        24 => "Anti-Passback",
        25 => "Interlock",
        26 => "Multi-Personnel Authentication Wait",
        27 => "Unregistered Personnel",
        28 => "Opening Timeout",
        29 => "Card Expired",
        30 => "Password Error",
        100 => "Tamper Alarm",
        101 => "Duress Password Open",
        102 => "Opened Forcefully",
        103 => "Duress Fingerprint Open",
        105 => "Cannot Connect to Server",
        200 => "Door Opened Correctly",
        201 => "Door Closed Correctly",
        202 => "Exit Button Open",
        204 => "Passage Mode Time Zone Over",
        205 => "Remote Normal Opening",
        206 => "Device Started",
        208 => "Superuser Open Door",
        209 => "Exit Button (Locked)",
        214 => "Connected to Server",
        220 => "Auxiliary Input Disconnected",
        221 => "Auxiliary Input Shorted",
        _ => return None,
    })
}

/// How serious an access event code is, by its band (`protocol.md` §4.7): `alarm` (100–199,
/// 5000–5999 extended abnormal counts as `error`), `error` (20–99), otherwise `normal`.
pub fn access_event_level(code: i64) -> &'static str {
    match code {
        100..=199 => "alarm",
        20..=99 | 5000..=5999 => "error",
        _ => "normal",
    }
}
