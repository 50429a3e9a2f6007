//! Every public parser must survive whatever a device (or an attacker holding a serial number)
//! sends: arbitrary bytes, and valid bodies damaged the way real uploads get damaged (cut off,
//! CRLF, stray TABs, blank lines, GB2312 bytes, trailing junk, 100 KB fields).
//!
//! Beyond "no panic", each property checks an invariant the server relies on: nothing is dropped
//! (every non-blank line is either a record or a rejection) and records borrow from the body
//! (zero-copy: every non-empty field points inside the input buffer).

use std::borrow::Cow;

use adms_protocol::attlog::{MAX_LINE_LEN, MAX_PIN_LEN, MAX_WORK_CODE_LEN};
use adms_protocol::attphoto::parse_att_photo;
use adms_protocol::devicecmd::parse_command_results;
use adms_protocol::info::parse_info;
use adms_protocol::kv::KvFields;
use adms_protocol::operlog::{OperLogRecord, parse_operlog_line};
use adms_protocol::options::parse_options;
use adms_protocol::query::{DeviceQuery, MAX_SN_LEN};
use adms_protocol::rtlog::parse_rtlog_line;
use adms_protocol::text::TextEncoding;
use adms_protocol::time::{date_time, handshake_time_zone, offset_hhmm};
use adms_protocol::{
    Line, LocalDateTime, RejectReason, Rejected, UploadTable, lines, parse_attlog_body, parse_attlog_line, parse_lines,
};
use proptest::prelude::*;
use proptest::sample::Index;

/// Size of the oversized field spliced into inputs: far above every limit the parsers enforce.
const HUGE_FIELD_LEN: usize = 100 * 1024;

// ---------------------------------------------------------------------------------------------
// Input generation
// ---------------------------------------------------------------------------------------------

/// Damage applied to a valid input. Positions are resolved against the input length at the time
/// the mutation is applied, so mutations compose.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(Index),
    InsertTab(Index),
    LfToCrlf,
    InsertBlankLines(Index, &'static [u8]),
    AppendGarbage(Vec<u8>),
    InsertInvalidUtf8(Index, &'static [u8]),
    InsertHugeField(Index, u8),
    ReplaceByte(Index, u8),
    DeleteRange(Index, Index),
    RepeatWhole,
}

/// Byte sequences that are not UTF-8 (or are control bytes a text field must not carry).
const INVALID_UTF8: &[&[u8]] = &[
    b"\xff",
    b"\xc3",             // truncated 2-byte sequence
    b"\xe9",             // Latin-1 e-acute, as sent by Windows-1252 firmware
    b"\xd5\xc5\xc8\xfd", // GB2312 name bytes
    b"\xed\xa0\x80",     // UTF-16 surrogate
    b"\xc0\x80",         // overlong NUL
    b"\xf4\x90\x80\x80", // above U+10FFFF
    b"\x80",             // lone continuation byte
    b"\x00",
    b"\x1b",
    b"\x7f",
];

const BLANK_LINES: &[&[u8]] = &[b"\n", b"\n\n", b"\r\n", b"\r\n\r\n", b"\n  \n", b"\r\r\n"];

fn insertion_point(index: &Index, len: usize) -> usize {
    index.index(len + 1)
}

impl Mutation {
    fn apply(&self, input: &mut Vec<u8>) {
        match self {
            Mutation::Truncate(at) => input.truncate(insertion_point(at, input.len())),
            Mutation::InsertTab(at) => input.insert(insertion_point(at, input.len()), b'\t'),
            Mutation::LfToCrlf => {
                *input = input.iter().flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] }).collect();
            }
            Mutation::InsertBlankLines(at, blank) => {
                let at = insertion_point(at, input.len());
                input.splice(at..at, blank.iter().copied());
            }
            Mutation::AppendGarbage(garbage) => input.extend_from_slice(garbage),
            Mutation::InsertInvalidUtf8(at, bytes) => {
                let at = insertion_point(at, input.len());
                input.splice(at..at, bytes.iter().copied());
            }
            Mutation::InsertHugeField(at, fill) => {
                let at = insertion_point(at, input.len());
                input.splice(at..at, std::iter::repeat_n(*fill, HUGE_FIELD_LEN));
            }
            Mutation::ReplaceByte(at, byte) => {
                if !input.is_empty() {
                    let at = at.index(input.len());
                    input[at] = *byte;
                }
            }
            Mutation::DeleteRange(a, b) => {
                let (a, b) = (insertion_point(a, input.len()), insertion_point(b, input.len()));
                input.drain(a.min(b)..a.max(b));
            }
            Mutation::RepeatWhole => input.extend_from_within(..),
        }
    }
}

/// Bytes that matter to these grammars, so random inputs hit separators and keys often.
fn protocol_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => prop::sample::select(b"\t\n\r =&,:;-T.0123456789ID".to_vec()),
        1 => prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz~_[]".to_vec()),
        1 => any::<u8>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let huge_fill = prop::sample::select(b"0A=\t, \n\xff".to_vec());
    prop_oneof![
        3 => any::<Index>().prop_map(Mutation::Truncate),
        3 => any::<Index>().prop_map(Mutation::InsertTab),
        1 => Just(Mutation::LfToCrlf),
        2 => (any::<Index>(), prop::sample::select(BLANK_LINES)).prop_map(|(i, b)| Mutation::InsertBlankLines(i, b)),
        2 => prop::collection::vec(protocol_byte(), 1..32).prop_map(Mutation::AppendGarbage),
        3 => (any::<Index>(), prop::sample::select(INVALID_UTF8)).prop_map(|(i, b)| Mutation::InsertInvalidUtf8(i, b)),
        1 => (any::<Index>(), huge_fill).prop_map(|(i, fill)| Mutation::InsertHugeField(i, fill)),
        3 => (any::<Index>(), protocol_byte()).prop_map(|(i, b)| Mutation::ReplaceByte(i, b)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::DeleteRange(a, b)),
        1 => Just(Mutation::RepeatWhole),
    ]
}

/// A valid seed with up to four mutations applied.
fn near_valid(seeds: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
    (prop::sample::select(seeds), prop::collection::vec(mutation(), 0..=4)).prop_map(|(seed, mutations)| {
        let mut input = seed.to_vec();
        for m in &mutations {
            m.apply(&mut input);
        }
        input
    })
}

/// Arbitrary bytes, protocol-flavoured bytes, or a damaged valid input.
fn hostile(seeds: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..256),
        2 => prop::collection::vec(protocol_byte(), 0..256),
        4 => near_valid(seeds),
    ]
}

fn hostile_text(seeds: &'static [&'static [u8]]) -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<String>(),
        3 => hostile(seeds).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

// Valid inputs, taken from the layouts documented in protocol.md and seen on real devices.

const ATTLOG_SEEDS: &[&[u8]] = &[
    b"1452\t2015-07-30 15:16:28\t0\t1\t0\t0\t0\n1453\t2015-07-30 15:17:01\t1\t1\t0\t0\t0\n",
    b"1\t2024-07-28 01:25:24\t0\t1\t\t0\t0\t\r\n2\t2024-07-28 01:26:00\t1\t1\t\t0\t0\t\r\n",
    b"46\t2025-01-29 06:58:48\t0\t15\t0\t0\t0\t0\t0\t0\t10881\n",
    b"9999\t2026-08-12 08:53:23\t0\t15\t0\t0\t0\t255\t0\t0\t\n2\t2026-09-28 10:47:39\t255\t15\t0\t0\t0\t0\t0\t0\t",
    b"76069670\t2026-09-28 11:30:05\t0\t1\t0\t0\t0\t255\t0\t0\n",
    b"016\t2026-01-01 08:00:00\t1\t4\n7\t2026-01-01T08:00:00\tI\t1\t5\n",
    b"5\t2026-01-01 08:00:00\t0\t15\t0\t0\t0\t1\t36.6\t0\t+28800\teyJncHMiOjF9\n",
];

const OPERLOG_SEEDS: &[&[u8]] = &[
    b"OPLOG 5\t0\t2020-06-23 10:39:48\tDHCP\t1\t0\t0\nOPLOG 0\t0\t2020-06-23 10:39:48\t0\t0\t0\t0\n",
    b"USER PIN=016\tName=Jos\xe9\tPri=14\tPasswd=123\tCard=[15CD5B07]\tGrp=1\tTZ=0000000100000000\tVerify=-1\tViceCard=\n",
    b"FP PIN=1\tFID=6\tSize=1184\tValid=1\tTMP=ocoAAA==\n",
    b"BIODATA Pin=5\tNo=0\tIndex=3\tValid=1\tDuress=0\tType=8\tMajorVer=12\tMinorVer=0\tFormat=0\tTmp=QUJD\n",
    b"BIOPHOTO PIN=5\tFileName=5.jpg\tType=0\tSize=36908\tContent=/9j/4AAQ\r\nUSERPIC PIN=5\tFileName=5.jpg\tSize=4\tContent=QUJD\r\n",
    b"FACE PIN=2\tFID=0\tSize=1648\tValid=1\tTMP=QUJD\nFVEIN Pin=3\tFID=1\tIndex=0\tValid=1\tSize=4\tTmp=QUJD\n",
    b"WORKCODE PIN=1\tCODE=7\tNAME=x\nIDCARD PIN=1\tSNNum=1\tIDNum=2\n",
];

const OPTIONS_SEEDS: &[&[u8]] = &[
    b"~DeviceName=SpeedFace-V5L,~OEMVendor=ZKTeco Co., Ltd.,RegDeviceType=,FaceFunOn=1,MultiBioDataSupport=0:1:0:0:0:0:0:0:1:1",
    b"garbage\nFingerFunOn=1\r\nFaceFunOn=1,\n",
    b"MinorVer =0,x=a=b,UserCount=4,FWVersion=Ver 8.0.4.3-20230217",
    b"GET OPTION FROM: CKJF201960996\nATTLOGStamp=9999\nTransFlag=TransData AttLog\tOpLog\nTimeZone=330\nPushOptions=FingerFunOn,FaceFunOn\n",
    b"DateTime=60,ServerTZ=+0800",
];

const KV_SEEDS: &[&[u8]] = &[
    b"PIN=1\tName=Ana\tTMP=abc==\tCard=\tflag\tMinorVer =0",
    b"pin=76069670\ttime=2026-09-28 11:30:05\tcardno=0\teventaddr=1\tevent=0\tinoutstatus=0\tverifytype=15\tindex=42",
    b"time=2026-09-28 11:30:05\tsensor=01\trelay=00\talarm=0000000000000000\tdoor=01",
];

const DEVICECMD_SEEDS: &[&[u8]] = &[
    b"ID=1&Return=0&CMD=DATA\nID=2&Return=-1002&CMD=DATA\r\nID=a13eeb9927464f9e&Return=3&CMD=CHECK\n",
    b"ID=1&Return=0&CMD=DATA\nID=1786485203822&Return=0&CMD=INFO\n~DeviceName=SpeedFace-V5L\nUserCount=4\nID=9&Return=0&CMD=CHECK",
    b"junk\nID=32\nReturn=0\nCMD=Shell\nContent=total 0\nline two\n",
    b"ID=info8487\nSN=ABC\nFILENAME=shellout.txt\nCMD=GetFile\nReturn=4\nContent=\x00\x01\xff\n",
    b"ID=7&Return=0&CMD=VERIFY&StartTime=2026-01-01 00:00:00&EndTime=2026-01-02 00:00:00&AttlogSum=12&SN=SUB1\n",
];

const ATTPHOTO_SEEDS: &[&[u8]] = &[
    b"PIN=20260101080000-016.jpg\nSN=ABC123\nsize=4\nCMD=uploadphoto\0\xff\xd8\x00\xd9",
    b"PIN=20260101080000.jpg\r\nSN=X\r\nsize=1\r\nCMD=uploadphoto\0\xff",
];

const QUERY_SEEDS: &[&[u8]] = &[
    b"SN=CKJF201960996&options=all&language=69&pushver=2.4.1&PushOptionsFlag=1&DeviceType=middle%20east",
    b"SN=X&table=ATTLOG&Stamp=9999&unknown=1",
    b"SN=X&INFO=Ver%208.0.4.3-20230217,12,30,4512,192.168.1.201,10,-1,0,0,111,5,0,0",
    b"SN=X&type=tabledata&type=other&&tablename=user&count=3&cmdid=5&pin=1&OpStamp=0",
];

const INFO_SEEDS: &[&[u8]] =
    &[b"Ver 8.0.4.3-20230217,12,30,4512,192.168.1.201,10,-1,0,0,111,5,0,0", b"Ver 6.60,1,2,3,10.0.0.2,10"];

const TIME_SEEDS: &[&[u8]] =
    &[b"2024-07-28 01:25:24", b"2024-02-29T23:59:59", b"2000-01-01 00:00:00", b"9999-12-31 23:59:59"];

const TABLE_SEEDS: &[&[u8]] = &[
    b"ATTLOG",
    b"OPERLOG",
    b"BIODATA",
    b"ATTPHOTO",
    b"options",
    b"rtlog",
    b"rtstate",
    b"tabledata",
    b"ERRORLOG",
    b"IDCARD",
];

// ---------------------------------------------------------------------------------------------
// Invariant helpers
// ---------------------------------------------------------------------------------------------

/// Offset of `part` inside `whole` when `part` points into it. Empty slices carry no bytes and
/// may legitimately be `""` constants, so they are accepted anywhere.
fn offset_in(part: &[u8], whole: &[u8]) -> Option<usize> {
    let w = whole.as_ptr_range();
    let p = part.as_ptr_range();
    (w.start <= p.start && p.end <= w.end).then(|| p.start as usize - w.start as usize)
}

#[track_caller]
fn assert_borrowed(part: &[u8], whole: &[u8]) {
    assert!(part.is_empty() || offset_in(part, whole).is_some(), "field {part:?} does not point into the input");
}

/// Non-blank lines of a body with their 1-based numbers, computed independently of
/// `adms_protocol::lines` (split on LF, drop one CR, skip lines of only spaces/CR).
fn oracle_lines(body: &[u8]) -> Vec<(u32, &[u8])> {
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| (u32::try_from(i + 1).unwrap(), line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(|&b| b == b' ' || b == b'\r'))
        .collect()
}

fn has_control_except_tab(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b != b'\t' && (b < 0x20 || b == 0x7f))
}

/// Checks one parsed ATTLOG record against its line, using `str::split` as the oracle.
fn check_attlog_record(line: &[u8], r: &adms_protocol::AttLogRecord<'_>) {
    assert!(line.len() <= MAX_LINE_LEN);
    assert!(!has_control_except_tab(line), "accepted a control character: {line:?}");
    for field in [r.pin, r.time_raw, r.state, r.work_code, r.extra] {
        assert_borrowed(field.as_bytes(), line);
    }
    assert_eq!(offset_in(r.pin.as_bytes(), line), Some(0), "the PIN starts the line");
    let text = std::str::from_utf8(line).expect("an accepted line is UTF-8");
    let columns: Vec<&str> = text.split('\t').collect();
    assert!(columns.len() >= 4);
    assert_eq!(columns[0], r.pin);
    assert_eq!(columns[1], r.time_raw);
    assert_eq!(columns[2], r.state);
    assert_eq!(columns[3].parse::<u16>().ok(), Some(r.verify));
    assert_eq!(columns.get(4).copied().unwrap_or(""), r.work_code);
    assert_eq!(columns.get(5..).map(|c| c.join("\t")).unwrap_or_default(), r.extra);
    assert!(!r.pin.is_empty() && r.pin.len() <= MAX_PIN_LEN);
    assert!(r.work_code.len() <= MAX_WORK_CODE_LEN);
    assert_eq!(LocalDateTime::parse(r.time_raw.as_bytes()), Some(r.time));
    for index in 0..16 {
        let column = r.column(index);
        if index < 5 {
            assert_eq!(column, None, "the first five columns have their own fields");
        } else if index == 5 && r.extra.is_empty() {
            // An empty `extra` cannot tell "no column 5" from "empty column 5"; both read as "".
            assert_eq!(column.unwrap_or(""), columns.get(5).copied().unwrap_or(""));
        } else {
            assert_eq!(column, columns.get(index).copied(), "column {index}");
        }
    }
    let _ = (r.mask_flag(), r.temperature());
}

/// Whether an ATTLOG line is acceptable, written from `protocol.md` §4.1 with `str::split`
/// rather than with the parser's combinators.
fn attlog_oracle_accepts(line: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(line) else { return false };
    let columns: Vec<&str> = text.split('\t').collect();
    let no_control = |s: &str| !s.bytes().any(|b| b < 0x20 || b == 0x7f);
    let number = |s: &str, max_len: usize| {
        (1..=max_len).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u32>().is_ok()
    };
    let state_ok = |s: &str| {
        (s.len() == 1 && s.as_bytes()[0].is_ascii_alphabetic()) || (number(s, 3) && s.parse::<u32>().unwrap() <= 255)
    };
    let verify_ok = |s: &str| number(s, 5) && s.parse::<u32>().unwrap() <= u32::from(u16::MAX);
    line.len() <= MAX_LINE_LEN
        && columns.len() >= 4
        && !columns[0].is_empty()
        && columns[0].len() <= MAX_PIN_LEN
        && no_control(columns[0])
        && LocalDateTime::parse(columns[1].as_bytes()).is_some()
        && state_ok(columns[2])
        && verify_ok(columns[3])
        && columns.get(4).is_none_or(|w| w.len() <= MAX_WORK_CODE_LEN)
        && columns.iter().skip(4).all(|c| no_control(c))
}

fn check_kv(fields: &KvFields<'_>, input: &[u8]) {
    assert_eq!(fields.raw().as_ptr_range(), input.as_ptr_range());
    for (key, value) in fields.iter() {
        assert_borrowed(key, input);
        assert_borrowed(value, input);
        assert!(!key.contains(&b'\t') && !key.contains(&b'=') && !value.contains(&b'\t'));
        assert_eq!(key, key.trim_ascii());
        if let Ok(key) = std::str::from_utf8(key) {
            let first = fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(key.as_bytes())).map(|(_, v)| v);
            assert_eq!(fields.get(key), first);
            let _ = (fields.get_str(key), fields.get_int(key));
        }
    }
}

fn check_operlog_record(line: &[u8], record: &OperLogRecord<'_>) {
    match record {
        OperLogRecord::OpLog(op) => {
            assert_borrowed(op.operator.as_bytes(), line);
            for object in op.objects {
                assert_borrowed(object, line);
                assert!(!object.contains(&b'\t'));
            }
        }
        OperLogRecord::User(u) => {
            assert!(!u.pin.is_empty() && u.pin.len() <= MAX_PIN_LEN);
            for field in [u.pin.as_bytes(), u.name, u.password, u.card, u.group, u.time_zone, u.vice_card] {
                assert_borrowed(field, line);
                assert!(!field.contains(&b'\t'));
            }
            assert_eq!(u.fields.get("PIN"), Some(u.pin.as_bytes()));
            assert_eq!(u.fields.get_int("Pri"), Ok(u.privilege));
            check_kv(&u.fields, u.fields.raw());
        }
        OperLogRecord::Biometric(b) => {
            assert!(!b.pin.is_empty());
            for field in [b.pin, b.format, b.template] {
                assert_borrowed(field.as_bytes(), line);
            }
            let _ = b.kind.as_str();
        }
        OperLogRecord::Photo(p) => {
            assert!(!p.pin.is_empty());
            for field in [p.pin, p.file_name, p.content, p.url] {
                assert_borrowed(field.as_bytes(), line);
            }
            let _ = p.kind.as_str();
        }
        OperLogRecord::Other { kind, fields } => {
            let modelled = ["OPLOG", "USER", "FP", "FACE", "FVEIN", "BIODATA", "USERPIC", "BIOPHOTO"];
            assert!(!modelled.iter().any(|m| m.eq_ignore_ascii_case(kind)), "{kind} has its own record type");
            assert_eq!(offset_in(kind.as_bytes(), line), Some(0), "the kind starts the line");
            assert!(!kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
            assert_borrowed(fields.raw(), line);
            check_kv(fields, fields.raw());
        }
    }
}

/// Every non-blank line comes back exactly once, in order, as a record or a rejection.
fn check_nothing_dropped<T>(body: &[u8], results: &[Result<(Line<'_>, T), Rejected<'_>>]) {
    let framed: Vec<(u32, &[u8])> = results
        .iter()
        .map(|r| match r {
            Ok((line, _)) => (line.number, line.bytes),
            Err(rejected) => (rejected.line.number, rejected.line.bytes),
        })
        .collect();
    assert_eq!(framed, oracle_lines(body), "parsed + rejected must equal the non-blank lines");
    for (_, bytes) in &framed {
        assert_borrowed(bytes, body);
    }
    for r in results {
        if let Err(rejected) = r {
            assert!(!rejected.reason.code().is_empty());
            assert!(!rejected.reason.to_string().is_empty());
        }
    }
}

fn starts_with_ignore_case(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn attlog_body_keeps_every_line(body in hostile(ATTLOG_SEEDS)) {
        assert_eq!(lines(&body).count(), oracle_lines(&body).len());
        let results: Vec<_> = parse_lines(&body, parse_attlog_line).collect();
        check_nothing_dropped(&body, &results);
        for r in &results {
            match r {
                Ok((line, record)) => check_attlog_record(line.bytes, record),
                Err(rejected) => {
                    if rejected.line.bytes.len() > MAX_LINE_LEN {
                        assert_eq!(rejected.reason, RejectReason::FieldTooLong);
                    } else if std::str::from_utf8(rejected.line.bytes).is_err() {
                        assert_eq!(rejected.reason, RejectReason::InvalidUtf8);
                    }
                }
            }
        }
    }

    #[test]
    fn attlog_body_fast_path_agrees_with_line_by_line(body in hostile(ATTLOG_SEEDS)) {
        // parse_attlog_body skips per-line checks on plain-ASCII bodies; it must never change
        // an answer (except for a cut-off last line, which only it can recognise), only the speed.
        let fast: Vec<_> = parse_attlog_body(&body).collect();
        let slow: Vec<_> = parse_lines(&body, parse_attlog_line).collect();
        assert_eq!(fast.len(), slow.len());
        for (i, (f, s)) in fast.iter().zip(&slow).enumerate() {
            match f {
                Err(Rejected { reason: RejectReason::TruncatedTail, line }) => {
                    assert_eq!(i, fast.len() - 1, "only the last line can be a truncated tail");
                    assert!(!body.ends_with(b"\n"));
                    assert_eq!(line.bytes, s.as_ref().map_or_else(|r| r.line.bytes, |(l, _)| l.bytes));
                }
                _ => assert_eq!(f, s),
            }
        }
    }

    #[test]
    fn attlog_single_line_never_panics(line in hostile(ATTLOG_SEEDS)) {
        // The whole input as one "line", terminators included: the parser must not assume
        // framing already happened.
        let parsed = parse_attlog_line(&line);
        if let Ok(record) = &parsed {
            check_attlog_record(&line, record);
        }
        assert_eq!(parsed.is_ok(), attlog_oracle_accepts(&line), "parser and oracle disagree on {line:?}");
    }

    #[test]
    fn operlog_body_keeps_every_line(body in hostile(OPERLOG_SEEDS)) {
        let results: Vec<_> = parse_lines(&body, parse_operlog_line).collect();
        check_nothing_dropped(&body, &results);
        for (line, record) in results.iter().flatten() {
            check_operlog_record(line.bytes, record);
        }
    }

    #[test]
    fn options_pairs_borrow_and_never_span_lines(body in hostile(OPTIONS_SEEDS)) {
        let pairs = parse_options(&body);
        let mut last_end = 0;
        for pair in &pairs {
            assert_borrowed(pair.key, &body);
            assert_borrowed(pair.value, &body);
            assert!(pair.key.iter().all(|&b| b.is_ascii_alphanumeric() || b"~_.-".contains(&b)));
            assert!(!pair.value.contains(&b'\n'), "a newline only separates pairs");
            assert_eq!(pair.value, pair.value.trim_ascii());
            let _ = pair.key_str();
            // Pairs come out in body order and never overlap.
            for part in [pair.key, pair.value] {
                if let Some(start) = offset_in(part, &body).filter(|_| !part.is_empty()) {
                    assert!(start >= last_end, "pairs out of order or overlapping");
                    last_end = start + part.len();
                }
            }
        }
    }

    #[test]
    fn kv_fields_borrow_and_find_the_first_match(raw in hostile(KV_SEEDS)) {
        let fields = KvFields::new(&raw);
        check_kv(&fields, &raw);
        for key in ["PIN", "pin", "time", "Name", "TMP", "", "="] {
            let _ = (fields.get(key), fields.get_str(key), fields.get_int(key));
        }
    }

    #[test]
    fn rtlog_line_never_panics(line in hostile(KV_SEEDS)) {
        if let Ok(event) = parse_rtlog_line(&line) {
            assert_eq!(event.fields.raw().as_ptr_range(), line.as_ptr_range());
            assert_eq!(event.fields.get("time").and_then(LocalDateTime::parse), Some(event.time));
            for field in [event.pin, event.card_no, event.verify_type] {
                assert_borrowed(field.as_bytes(), &line);
            }
        }
    }

    #[test]
    fn devicecmd_results_match_id_lines(body in hostile(DEVICECMD_SEEDS)) {
        let results = parse_command_results(&body);
        // Independent framing: LF-split lines with one CR dropped.
        let body_lines: Vec<&[u8]> = body.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).collect();
        let id_lines = body_lines.iter().filter(|l| starts_with_ignore_case(l, b"ID=")).count();
        let leading_junk = body_lines
            .iter()
            .take_while(|l| !starts_with_ignore_case(l, b"ID="))
            .filter(|l| !l.trim_ascii().is_empty())
            .count();
        let junk = results
            .iter()
            .filter(|r| matches!(r, Err(e) if e.reason == RejectReason::NotACommandResult))
            .count();
        assert_eq!(junk, leading_junk, "only text before the first ID= is junk");
        assert_eq!(results.len() - junk, id_lines, "one result (or rejection) per ID= line");
        let mut last_end = 0;
        for r in &results {
            match r {
                Ok(result) => {
                    assert!(!result.id.is_empty() && result.id.len() <= 64);
                    assert!(starts_with_ignore_case(result.head, b"ID="));
                    for part in [result.head, result.id.as_bytes(), result.cmd.as_bytes(), result.payload] {
                        assert_borrowed(part, &body);
                    }
                    if let Some(start) = offset_in(result.payload, &body).filter(|_| !result.payload.is_empty()) {
                        assert!(start >= last_end, "payloads overlap");
                        last_end = start + result.payload.len();
                        let payload_starts_result = result
                            .payload
                            .split(|&b| b == b'\n')
                            .any(|l| starts_with_ignore_case(l, b"ID="));
                        assert!(!payload_starts_result, "a payload swallowed the next result");
                    }
                    let _ = parse_options(result.payload);
                }
                Err(rejected) => {
                    assert_borrowed(rejected.line.bytes, &body);
                    let number = usize::try_from(rejected.line.number).unwrap();
                    assert_eq!(body_lines.get(number - 1), Some(&rejected.line.bytes), "line number");
                }
            }
        }
    }

    #[test]
    fn attphoto_splits_at_the_first_nul(body in hostile(ATTPHOTO_SEEDS)) {
        if let Ok(photo) = parse_att_photo(&body) {
            let nul = body.iter().position(|&b| b == 0).expect("a photo body has a NUL");
            assert_eq!(photo.image.as_ptr_range(), body[nul + 1..].as_ptr_range());
            assert!(!photo.file_name.is_empty());
            for field in [photo.file_name, photo.sn, photo.cmd] {
                assert_borrowed(field.as_bytes(), &body[..nul]);
                assert_eq!(field, field.trim());
            }
            if let Some((time, pin)) = photo.time_and_pin() {
                let digits: String = time.to_string().chars().filter(char::is_ascii_digit).collect();
                assert!(photo.file_name.starts_with(&digits));
                if let Some(pin) = pin {
                    assert_borrowed(pin.as_bytes(), photo.file_name.as_bytes());
                }
            }
        }
    }

    #[test]
    fn device_query_values_borrow_when_not_decoded(query in hostile_text(QUERY_SEEDS)) {
        let q = DeviceQuery::parse(&query);
        for value in [
            &q.sn, &q.options, &q.pushver, &q.language, &q.device_type, &q.push_options_flag, &q.table, &q.stamp,
            &q.op_stamp, &q.info, &q.kind, &q.table_name, &q.count, &q.cmd_id, &q.pin,
        ] {
            if let Some(Cow::Borrowed(v)) = value {
                assert_borrowed(v.as_bytes(), query.as_bytes());
            }
        }
        if let Ok(sn) = q.serial() {
            assert!(!sn.is_empty() && sn.len() <= MAX_SN_LEN && sn.bytes().all(|b| b.is_ascii_graphic()));
        }
        let _ = q.is_handshake();
        let table = UploadTable::from_query(q.table.as_deref(), q.op_stamp.is_some());
        let _ = table.as_str();
        if let Some(info) = q.info.as_deref() {
            let _ = parse_info(info);
        }
    }

    #[test]
    fn info_values_borrow_and_counts_are_not_negative(value in hostile_text(INFO_SEEDS)) {
        let info = parse_info(&value);
        for text in [info.firmware, info.ip_address, info.fp_algorithm, info.face_algorithm, info.functions]
            .into_iter()
            .flatten()
        {
            assert_borrowed(text.as_bytes(), value.as_bytes());
            assert!(!text.is_empty() && text == text.trim() && !text.contains(','));
        }
        for count in [
            info.user_count, info.fp_count, info.attlog_count, info.face_count, info.card_count,
            info.user_photo_count, info.att_photo_count,
        ]
        .into_iter()
        .flatten()
        {
            assert!(count >= 0);
        }
    }

    #[test]
    fn table_names_never_panic(name in hostile_text(TABLE_SEEDS), has_op_stamp in any::<bool>()) {
        let table = UploadTable::from_query(Some(&name), has_op_stamp);
        if table != UploadTable::Other {
            assert!(table.as_str().eq_ignore_ascii_case(name.trim()));
        }
    }

    #[test]
    fn time_parsing_accepts_only_canonical_text(input in hostile(TIME_SEEDS)) {
        if let Some(t) = LocalDateTime::parse(&input) {
            let mut canonical = input.clone();
            if canonical.get(10) == Some(&b'T') {
                canonical[10] = b' ';
            }
            assert_eq!(t.to_bytes().as_slice(), canonical.as_slice());
            assert_eq!(t.to_string().as_bytes(), canonical.as_slice());
        }
        if let Ok((rest, t)) = date_time(&input) {
            // The nom parser consumes exactly 19 bytes and leaves the rest untouched.
            assert_eq!(rest.as_ptr_range(), input[19..].as_ptr_range());
            assert_eq!(LocalDateTime::parse(&input[..19]), Some(t));
        }
    }

    #[test]
    fn time_values_never_panic(
        year in any::<u16>(),
        month in any::<u8>(),
        day in any::<u8>(),
        hour in any::<u8>(),
        minute in any::<u8>(),
        second in any::<u8>(),
        offset in any::<i32>(),
    ) {
        // Records built by hand (not parsed) may hold impossible values; formatting must not panic.
        let t = LocalDateTime { year, month, day, hour, minute, second };
        let _ = (t.to_bytes(), t.to_string(), t.zk_encoded());
        let _ = (handshake_time_zone(offset), offset_hhmm(offset));
    }

    #[test]
    fn text_decoding_flags_every_loss(
        bytes in hostile(OPERLOG_SEEDS),
        label in prop::sample::select(vec!["utf-8", "gbk", "gb18030", "big5", "windows-1252", "shift_jis", "euc-kr"]),
        language in prop::option::of(prop::sample::select(vec!["69", "83", "84", " 83 ", ""])),
        text in any::<String>(),
    ) {
        let encodings =
            [TextEncoding::UTF8, TextEncoding::for_label(label).unwrap(), TextEncoding::for_language(language)];
        for encoding in encodings {
            let decoded = encoding.decode(&bytes);
            if !decoded.lossless {
                assert!(decoded.text.contains('\u{fffd}'), "{} lost bytes without a replacement", encoding.name());
            }
            let _ = encoding.encode(&text);
        }
        let utf8 = TextEncoding::UTF8.decode(&bytes);
        assert_eq!(utf8.lossless, std::str::from_utf8(&bytes).is_ok());
        assert_eq!(TextEncoding::UTF8.encode(&text).as_deref(), Some(text.as_bytes()));
        let _ = TextEncoding::for_label(&String::from_utf8_lossy(&bytes));
    }
}

/// Lines much longer than any limit are rejected, not truncated or panicked on, and
/// a 100 KB field in the middle of a batch does not hide the lines around it.
#[test]
fn huge_fields_do_not_swallow_neighbouring_lines() {
    let huge = vec![b'9'; HUGE_FIELD_LEN];
    let mut body = b"1\t2026-01-01 08:00:00\t0\t1\t0\t0\t0\n".to_vec();
    body.extend_from_slice(&huge);
    body.extend_from_slice(b"\t2026-01-01 08:00:00\t0\t1\n2\t2026-01-01 08:00:01\t0\t1\r\n");
    let results: Vec<_> = parse_lines(&body, parse_attlog_line).collect();
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[2].is_ok());
    assert_eq!(results[1].as_ref().err().map(|r| r.reason), Some(RejectReason::FieldTooLong));

    let mut operlog = b"FP PIN=1\tFID=6\tTMP=".to_vec();
    operlog.extend(std::iter::repeat_n(b'A', HUGE_FIELD_LEN));
    operlog.extend_from_slice(b"\nUSER PIN=2\tName=x\n");
    let results: Vec<_> = parse_lines(&operlog, parse_operlog_line).collect();
    assert_eq!(results.len(), 2);
    let Ok((_, OperLogRecord::Biometric(template))) = &results[0] else { panic!("{:?}", results[0]) };
    assert_eq!(template.template.len(), HUGE_FIELD_LEN);
    assert!(matches!(results[1], Ok((_, OperLogRecord::User(_)))));

    let mut cmd = b"ID=1&Return=0&CMD=INFO\n".to_vec();
    cmd.extend(std::iter::repeat_n(b'\n', HUGE_FIELD_LEN));
    cmd.extend_from_slice(b"ID=2&Return=0&CMD=DATA");
    let results = parse_command_results(&cmd);
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 2);
}

/// Regression (found by `options_pairs_borrow_and_never_span_lines`): a comma right after a
/// newline used to glue the next line into the previous value, newline included.
#[test]
fn options_newline_then_comma_does_not_glue_lines() {
    let pairs: Vec<(&[u8], &[u8])> = parse_options(b"FaceFunOn=1\n,garbage\r\n,~OEMVendor=ZKTeco Co., Ltd.")
        .into_iter()
        .map(|p| (p.key, p.value))
        .collect();
    assert_eq!(
        pairs,
        [(&b"FaceFunOn"[..], &b"1"[..]), (b"", b"garbage"), (b"~OEMVendor", b"ZKTeco Co., Ltd.")],
        "a newline separates even when a comma follows it"
    );
}
