//! OPERLOG / BIODATA bodies: every non-blank line is a record or a rejection, never a panic.
#![no_main]

use adms_protocol::operlog::{OperLogRecord, parse_operlog_line};
use adms_protocol::{lines, parse_lines};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let mut seen = 0;
    for result in parse_lines(body, parse_operlog_line) {
        seen += 1;
        match result {
            Ok((_, OperLogRecord::User(user))) => {
                assert!(!user.pin.is_empty());
                let _ = user.fields.iter().count();
            }
            Ok((_, OperLogRecord::Other { kind, fields })) => {
                assert!(!kind.is_empty());
                let _ = (fields.get("PIN"), fields.get_int("Size"));
            }
            Ok(_) => {}
            Err(rejected) => {
                let _ = rejected.reason.code();
            }
        }
    }
    assert_eq!(seen, lines(body).count(), "a line was dropped");
});
