//! ATTLOG parsing throughput beside split-only baselines over the same buffer.
//!
//! The baselines find line and field boundaries with `memchr` and do nothing else (no
//! validation, no records): `split_memchr` hands out every field (what "splitting" the buffer
//! means), `count_only_memchr` only counts each line's TABs (memchr's vectorised count, which
//! never yields a field; the baseline of the first figures). The full parse validates every
//! field and builds borrowed records. The ratios are the figures reported in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn body(lines: usize) -> Vec<u8> {
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
fn split(body: &[u8]) -> usize {
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
fn count_only(body: &[u8]) -> usize {
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
fn full_parse(body: &[u8]) -> usize {
    let mut ok = 0;
    for (_, record) in adms_protocol::parse_attlog_body(body).flatten() {
        ok += usize::from(record.verify > 0) + record.pin.len();
    }
    ok
}

/// The line-by-line path, taken by bodies that are not plain ASCII.
fn line_by_line(body: &[u8]) -> usize {
    let mut ok = 0;
    for line in adms_protocol::lines(body) {
        if let Ok(record) = adms_protocol::parse_attlog_line(line.bytes) {
            ok += usize::from(record.verify > 0) + record.pin.len();
        }
    }
    ok
}

fn bench(c: &mut Criterion) {
    for lines in [128usize, 100_000] {
        let buf = body(lines);
        let mut group = c.benchmark_group(format!("attlog_{lines}_lines"));
        group.throughput(Throughput::Bytes(buf.len() as u64));
        group.bench_function("count_only_memchr", |b| b.iter(|| count_only(black_box(&buf))));
        group.bench_function("split_memchr", |b| b.iter(|| split(black_box(&buf))));
        group.bench_function("full_parse", |b| b.iter(|| full_parse(black_box(&buf))));
        group.bench_function("line_by_line", |b| b.iter(|| line_by_line(black_box(&buf))));
        group.finish();
        let mut group = c.benchmark_group(format!("attlog_{lines}_lines_per_line"));
        group.throughput(Throughput::Elements(lines as u64));
        group.bench_function("count_only_memchr", |b| b.iter(|| count_only(black_box(&buf))));
        group.bench_function("split_memchr", |b| b.iter(|| split(black_box(&buf))));
        group.bench_function("full_parse", |b| b.iter(|| full_parse(black_box(&buf))));
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
