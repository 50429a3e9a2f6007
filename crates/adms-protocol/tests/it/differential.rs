//! The nom grammars against the hand-written parsers they replaced (`adms_protocol::legacy`):
//! on the same bytes both must give the same records and the same rejections (line number,
//! bytes and reason), body after body. ATTLOG and OPERLOG are the tables the issue names; the
//! options, devicecmd, ATTPHOTO and INFO parsers ride along on the same inputs. Inputs: every payload of `fixtures/`, every file of
//! `../shared/captures/` when that directory exists (read in place, never copied), and generated
//! bodies built from the tokens that decide each branch of the grammars.
//!
//! Every input goes through every parser, whatever table it was written for: a parser must
//! agree with its predecessor on any bytes, not only on the ones it expects.

use std::path::{Path, PathBuf};

use adms_protocol::attphoto::parse_att_photo;
use adms_protocol::devicecmd::parse_command_results;
use adms_protocol::info::parse_info;
use adms_protocol::legacy;
use adms_protocol::operlog::{OperLogRecord, parse_operlog_line};
use adms_protocol::options::parse_options;
use adms_protocol::{AttLogRecord, parse_attlog_body, parse_attlog_line, parse_lines};
use proptest::prelude::*;

/// Asserts that both parsers agree on `body`, naming `origin` when they do not.
fn assert_same_output(body: &[u8], origin: &str) {
    let new: Vec<_> = parse_attlog_body(body).collect();
    let old: Vec<_> = legacy::attlog::parse_attlog_body(body).collect();
    assert_eq!(new, old, "ATTLOG body parser differs on {origin}");
    for result in new.iter().flatten() {
        assert_borrowed_attlog(&result.1, body);
    }
    let new: Vec<_> = parse_lines(body, parse_attlog_line).collect();
    let old: Vec<_> = parse_lines(body, legacy::attlog::parse_attlog_line).collect();
    assert_eq!(new, old, "ATTLOG line parser differs on {origin}");
    let new: Vec<_> = parse_lines(body, parse_operlog_line).collect();
    let old: Vec<_> = parse_lines(body, legacy::operlog::parse_operlog_line).collect();
    assert_eq!(new, old, "OPERLOG line parser differs on {origin}");
    for result in new.iter().flatten() {
        assert_borrowed_operlog(&result.1, body);
    }
    assert_eq!(parse_options(body), legacy::options::parse_options(body), "options parser differs on {origin}");
    assert_eq!(
        parse_command_results(body),
        legacy::devicecmd::parse_command_results(body),
        "devicecmd parser differs on {origin}"
    );
    assert_eq!(parse_att_photo(body), legacy::attphoto::parse_att_photo(body), "ATTPHOTO parser differs on {origin}");
    let text = String::from_utf8_lossy(body);
    assert_eq!(parse_info(&text), legacy::info::parse_info(&text), "INFO parser differs on {origin}");
}

/// Zero-copy: every non-empty text field lies inside the body.
fn assert_borrowed_attlog(record: &AttLogRecord<'_>, body: &[u8]) {
    for field in [record.pin, record.time_raw, record.state, record.work_code, record.extra] {
        assert_inside(field.as_bytes(), body);
    }
}

fn assert_borrowed_operlog(record: &OperLogRecord<'_>, body: &[u8]) {
    match record {
        OperLogRecord::OpLog(op) => {
            assert_inside(op.operator.as_bytes(), body);
            op.objects.iter().for_each(|object| assert_inside(object, body));
        }
        OperLogRecord::User(user) => {
            [user.pin.as_bytes(), user.name, user.card].iter().for_each(|f| assert_inside(f, body))
        }
        OperLogRecord::Biometric(bio) => [bio.pin, bio.template].iter().for_each(|f| assert_inside(f.as_bytes(), body)),
        OperLogRecord::Photo(photo) => {
            [photo.pin, photo.content].iter().for_each(|f| assert_inside(f.as_bytes(), body))
        }
        OperLogRecord::Other { kind, fields } => {
            assert_inside(kind.as_bytes(), body);
            assert_inside(fields.raw(), body);
        }
    }
}

fn assert_inside(part: &[u8], whole: &[u8]) {
    if !part.is_empty() {
        let whole = whole.as_ptr_range();
        assert!(whole.start <= part.as_ptr() && part.as_ptr_range().end <= whole.end, "a field was copied");
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return files };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn assert_same_output_on_files(dir: &Path) -> usize {
    let files = files_under(dir);
    for path in &files {
        let body = std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert_same_output(&body, &path.display().to_string());
        // Every line alone too, as a one-line upload (the path of small uploads).
        for line in body.split(|&b| b == b'\n') {
            assert_same_output(line, &format!("a line of {}", path.display()));
        }
    }
    files.len()
}

#[test]
fn fixtures_parse_alike() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    assert!(assert_same_output_on_files(&fixtures) > 20, "the fixtures were not found at {}", fixtures.display());
}

/// The shared captures live beside the repository, not in it; a checkout without them skips.
#[test]
fn shared_captures_parse_alike_when_present() {
    let captures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/captures");
    if !captures.is_dir() {
        eprintln!("skipped: no captures at {}", captures.display());
        return;
    }
    assert_same_output_on_files(&captures);
}

/// Tokens that sit on the edges of the ATTLOG grammar: valid and damaged values of each column.
const ATTLOG_TOKENS: &[&str] = &[
    "1",
    "016",
    "A-12",
    "",
    " ",
    "2026-01-01 08:00:00",
    "2024-02-29T23:59:59",
    "2023-02-29 10:00:00",
    "2026-13-45 99:99:99",
    "2026-01-01 08:0",
    "2026-01-01 08:00:00 ",
    "0",
    "255",
    "256",
    "0255",
    "I",
    "X1",
    "1a",
    "15",
    "65535",
    "65536",
    "99999999",
    "+1",
    "-1",
    "face",
    "WC7",
    "\u{1}",
    "\u{7f}",
    "\0",
    "é",
    "李",
    "\u{2028}",
    "36.6",
    "\r",
];

const OPERLOG_KINDS: &[&str] = &[
    "OPLOG", "oplog", "USER", "User", "FP", "FACE", "FVEIN", "BIODATA", "USERPIC", "BIOPHOTO", "WORKCODE", "IDCARD",
    "", "{json}", "a_b9", "OP LOG",
];

const OPERLOG_TOKENS: &[&str] = &[
    "PIN=1",
    "Pin=016",
    "pin=",
    "PIN",
    " PIN =7",
    "Name=Ana",
    "Name=Jos\u{e9}",
    "Pri=14",
    "Pri=admin",
    "Pri= 3 ",
    "Verify=-1",
    "FID=6",
    "FID=x",
    "No=0",
    "Index=3",
    "Type=8",
    "Type=",
    "Valid=1",
    "Size=1184",
    "Size=99999999999999999999",
    "TMP=ocoAAA==",
    "Tmp=QUJD",
    "Content=/9j/4AAQ",
    "Url=http://x/y",
    "FileName=5.jpg",
    "=",
    "==",
    "5",
    " 5 ",
    "+5",
    "-5",
    "65536",
    "x",
    "0",
    "2020-06-23 10:39:48",
    "yesterday",
    "DHCP",
    "",
    "\u{1}",
    "\u{3000}12",
];

/// Tokens of options dumps, command results, ATTPHOTO headers and INFO values.
const OTHER_TOKENS: &[&str] = &[
    "~DeviceName=SpeedFace-V5L",
    "~OEMVendor=ZKTeco Co.",
    " Ltd.",
    ",",
    ",,",
    "\n",
    "\n,",
    " ",
    "=",
    " =x",
    "MinorVer =0",
    "x=a=b",
    "RegDeviceType=",
    "ID=1&Return=0&CMD=DATA",
    "id=2&return=-1002&cmd=DATA&ID=3",
    "ID=&Return=0",
    "ID=a13eeb9927464f9e",
    "Return=0",
    "Return=x",
    "CMD=Shell",
    "CMD=",
    "SN=ABC",
    "FILENAME=a.txt",
    "Content=total 0",
    "PIN=20260101080000-016.jpg",
    "size=4",
    "size=+4",
    "\0",
    "\r",
    "Ver 8.0.4.3-20230217",
    "12",
    "-1",
    " 30 ",
    "\u{3000}5",
    "192.168.1.201",
];

fn body_of(tokens: &'static [&'static str], heads: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let separator = prop::sample::select(vec!["\t", "\t", "\t", " ", "\t\t"]);
    let line = (
        prop::sample::select(heads.to_vec()),
        prop::sample::select(vec![" ", "\t", ""]),
        prop::collection::vec((prop::sample::select(tokens.to_vec()), separator), 0..12),
        prop::collection::vec(any::<u8>(), 0..2),
    )
        .prop_map(|(head, after_head, columns, noise)| {
            let mut line = format!("{head}{after_head}").into_bytes();
            for (token, separator) in columns {
                line.extend_from_slice(token.as_bytes());
                line.extend_from_slice(separator.as_bytes());
            }
            if line.ends_with(b"\t") && noise.is_empty() {
                line.pop();
            }
            line.extend_from_slice(&noise);
            line
        });
    let ending = prop::sample::select(vec!["\n", "\r\n", "\n\n", " \r\n"]);
    (prop::collection::vec((line, ending), 0..8), any::<bool>()).prop_map(|(lines, cut_last_terminator)| {
        let mut body = Vec::new();
        for (line, ending) in lines {
            body.extend_from_slice(&line);
            body.extend_from_slice(ending.as_bytes());
        }
        if cut_last_terminator {
            while body.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
                body.pop();
            }
        }
        body
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn generated_attlog_bodies_parse_alike(body in body_of(ATTLOG_TOKENS, ATTLOG_TOKENS)) {
        assert_same_output(&body, &format!("{:?}", String::from_utf8_lossy(&body)));
    }

    #[test]
    fn generated_operlog_bodies_parse_alike(body in body_of(OPERLOG_TOKENS, OPERLOG_KINDS)) {
        assert_same_output(&body, &format!("{:?}", String::from_utf8_lossy(&body)));
    }

    #[test]
    fn generated_option_and_result_bodies_parse_alike(body in body_of(OTHER_TOKENS, OTHER_TOKENS)) {
        assert_same_output(&body, &format!("{:?}", String::from_utf8_lossy(&body)));
    }

    #[test]
    fn arbitrary_bytes_parse_alike(body in prop::collection::vec(any::<u8>(), 0..256)) {
        assert_same_output(&body, &format!("{body:?}"));
    }
}
