//! ATTLOG bodies: framing plus per-line parsing. Every non-blank line must come back as a record
//! or a rejection, and every record must borrow from the body.
#![no_main]

use adms_protocol::{lines, parse_attlog_line, parse_lines};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let range = body.as_ptr_range();
    let mut seen = 0;
    for result in parse_lines(body, parse_attlog_line) {
        seen += 1;
        if let Ok((line, record)) = result {
            for field in [record.pin, record.time_raw, record.state, record.work_code, record.extra] {
                let field = field.as_bytes().as_ptr_range();
                assert!(field.start == field.end || (range.start <= field.start && field.end <= range.end));
            }
            assert!(!record.pin.is_empty());
            assert!(line.bytes.len() <= adms_protocol::attlog::MAX_LINE_LEN);
            let _ = (record.mask_flag(), record.temperature(), record.column(11));
        }
    }
    assert_eq!(seen, lines(body).count(), "a line was dropped");
});
