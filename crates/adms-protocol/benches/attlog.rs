//! ATTLOG parsing throughput beside a split-only baseline over the same buffer.
//!
//! The baseline only finds line and field boundaries with `memchr` (no validation, no
//! records); the full parse validates every field and builds borrowed records. The ratio of the
//! two is the figure reported in BENCHMARKS.md.

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

/// Split-only baseline: memchr for every LF, then memchr for every TAB in the line.
fn split_only(body: &[u8]) -> usize {
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
        group.bench_function("split_only_memchr", |b| b.iter(|| split_only(black_box(&buf))));
        group.bench_function("full_parse", |b| b.iter(|| full_parse(black_box(&buf))));
        group.bench_function("line_by_line", |b| b.iter(|| line_by_line(black_box(&buf))));
        group.finish();
        let mut group = c.benchmark_group(format!("attlog_{lines}_lines_per_line"));
        group.throughput(Throughput::Elements(lines as u64));
        group.bench_function("split_only_memchr", |b| b.iter(|| split_only(black_box(&buf))));
        group.bench_function("full_parse", |b| b.iter(|| full_parse(black_box(&buf))));
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
