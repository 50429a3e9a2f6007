//! Event and verify-mode names as CVSecurity shows them. Clients string-compare them, so they
//! come from one table keyed by the numeric code (`adms_protocol::labels`, English: the names
//! CVSecurity's English UI uses for the event codes, ZKBio Time's for the verify modes, which
//! the reference does not list separately). Other languages are issue 19's remaining work.

use adms_protocol::labels;

/// The name of an `rtlog` event code; a code without a name is `Event <code>`.
pub fn event(code: Option<i64>) -> String {
    match code {
        Some(code) => labels::access_event(code).map_or_else(|| format!("Event {code}"), str::to_owned),
        None => "Unknown".to_owned(),
    }
}

/// CVSecurity's `eventLevel`: 0 normal, 1 abnormal (warning), 2 alarm, by the code's band.
pub fn event_level(code: Option<i64>) -> i64 {
    match code.map_or("normal", labels::access_event_level) {
        "alarm" => 2,
        "error" => 1,
        _ => 0,
    }
}

/// The name of `rtlog`'s `verifytype`: a number (old style); anything else (a C3's 32-character
/// bit string) is "Other".
pub fn verify_mode(verify_type: &str) -> &'static str {
    match verify_type.trim().parse::<i64>() {
        Ok(code) if verify_type.trim().len() <= 3 => labels::verify_type(code),
        _ => labels::verify_type(-1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_names_and_levels() {
        assert_eq!(event(Some(27)), "Unregistered Personnel");
        assert_eq!(event(Some(9999)), "Event 9999");
        assert_eq!((event_level(Some(0)), event_level(Some(23)), event_level(Some(102))), (0, 1, 2));
        assert_eq!(verify_mode("4"), "Card");
        assert_eq!(verify_mode("00000000000000000000000000000000"), "Other");
    }
}
