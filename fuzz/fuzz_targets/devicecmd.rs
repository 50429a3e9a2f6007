//! `POST /iclock/devicecmd` bodies: one result (or rejection) per `ID=` line; INFO payloads are
//! then read as an options dump, as the server does.
#![no_main]

use adms_protocol::devicecmd::parse_command_results;
use adms_protocol::options::parse_options;
use libfuzzer_sys::fuzz_target;

fn starts_with_id(line: &[u8]) -> bool {
    line.len() >= 3 && line[..3].eq_ignore_ascii_case(b"ID=")
}

fuzz_target!(|body: &[u8]| {
    let results = parse_command_results(body);
    let id_lines = body.split(|&b| b == b'\n').filter(|l| starts_with_id(l)).count();
    let results_for_ids = results
        .iter()
        .filter(|r| !matches!(r, Err(e) if e.reason == adms_protocol::RejectReason::NotACommandResult))
        .count();
    assert_eq!(results_for_ids, id_lines, "one result per ID= line");
    for result in results.iter().flatten() {
        assert!(!result.id.is_empty() && result.id.len() <= 64);
        for pair in parse_options(result.payload) {
            assert!(!pair.value.contains(&b'\n'));
        }
    }
});
