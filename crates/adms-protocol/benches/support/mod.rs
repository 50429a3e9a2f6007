//! Inputs and baselines shared by the ATTLOG criterion bench and the `attlog_profile` example,
//! so both measure the same bodies against the same baselines.

pub fn body(lines: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..lines {
        // A mix of the layouts seen in the field: 7, 8 (trailing TAB) and 11 columns.
        let line = match i % 3 {
            0 => format!(
                "{}\t2026-11-{:02} {:02}:{:02}:{:02}\t0\t1\t0\t0\t0\n",
                1000 + i,
                1 + i % 28,
                i % 24,
                i % 60,
                (i / 60) % 60
            ),
            1 => format!(
                "{:05}\t2026-11-{:02} {:02}:{:02}:{:02}\t1\t15\t\t0\t0\t\n",
                i,
                1 + i % 28,
                i % 24,
                i % 60,
                (i / 60) % 60
            ),
            _ => format!(
                "{}\t2026-11-{:02} {:02}:{:02}:{:02}\t255\t15\t0\t0\t0\t255\t0\t0\t{}\n",
                i,
                1 + i % 28,
                i % 24,
                i % 60,
                (i / 60) % 60,
                10_000 + i
            ),
        };
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// Split baseline: memchr for every LF, then for every TAB in the line; each field's length is
/// used so that the split is not optimised away.
pub fn split(body: &[u8]) -> usize {
    let mut total = 0;
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', body) {
        let line = &body[start..end];
        let mut field_start = 0;
        for tab in memchr::memchr_iter(b'\t', line) {
            total += tab - field_start;
            field_start = tab + 1;
        }
        total += line.len() - field_start;
        start = end + 1;
    }
    total
}

/// Count-only baseline: memchr for every LF, then memchr's count of the TABs in the line.
pub fn count_only(body: &[u8]) -> usize {
    let mut fields = 0;
    for line in memchr::memchr_iter(b'\n', body).scan(0, |start, end| {
        let line = &body[*start..end];
        *start = end + 1;
        Some(line)
    }) {
        fields += 1 + memchr::memchr_iter(b'\t', line).count();
    }
    fields
}

/// What the server does with an upload: every line parsed into a record (or rejected).
pub fn full_parse(body: &[u8]) -> usize {
    let mut ok = 0;
    for (_, record) in adms_protocol::parse_attlog_body(body).flatten() {
        ok += usize::from(record.verify > 0) + record.pin.len();
    }
    ok
}

/// An OPERLOG body as a device sends it after enrolments: operation records, users and
/// templates in turn (`protocol.md` §4.2).
pub fn operlog_body(lines: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..lines {
        let line = match i % 4 {
            0 => {
                format!("OPLOG 4\t0\t2026-11-{:02} {:02}:{:02}:00\t{}\t0\t0\t0\n", 1 + i % 28, i % 24, i % 60, 1000 + i)
            }
            1 => format!(
                "USER PIN={}\tName=User {i}\tPri=0\tPasswd=\tCard=[{:08X}]\tGrp=1\tTZ=0000000100000000\tVerify=0\tViceCard=\n",
                1000 + i,
                i * 7919
            ),
            2 => format!("FP PIN={}\tFID=6\tSize=16\tValid=1\tTMP=ocoAAA8NcwAAAAAAAAAA\n", 1000 + i),
            _ => format!(
                "BIODATA Pin={}\tNo=0\tIndex=0\tValid=1\tDuress=0\tType=9\tMajorVer=5\tMinorVer=8\tFormat=0\tTmp=QUJDREVGR0hJSktMTU5P\n",
                1000 + i
            ),
        };
        out.extend_from_slice(line.as_bytes());
    }
    out
}

fn operlog_score(record: &adms_protocol::operlog::OperLogRecord<'_>) -> usize {
    use adms_protocol::operlog::OperLogRecord;
    match record {
        OperLogRecord::OpLog(op) => usize::from(op.op_code),
        OperLogRecord::User(user) => user.pin.len(),
        OperLogRecord::Biometric(bio) => bio.template.len(),
        OperLogRecord::Photo(photo) => photo.content.len(),
        OperLogRecord::Other { kind, .. } => kind.len(),
    }
}

/// Every line of an OPERLOG body parsed, as the server does.
pub fn operlog_parse(body: &[u8]) -> usize {
    adms_protocol::parse_lines(body, adms_protocol::operlog::parse_operlog_line)
        .flatten()
        .map(|(_, record)| operlog_score(&record))
        .sum()
}
