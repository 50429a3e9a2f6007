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
