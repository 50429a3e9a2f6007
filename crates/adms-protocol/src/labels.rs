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
