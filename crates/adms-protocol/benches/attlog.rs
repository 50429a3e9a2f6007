//! ATTLOG and OPERLOG parsing throughput beside split-only baselines over the same buffer.
//!
//! The baselines find line and field boundaries with `memchr` and do nothing else (no
//! validation, no records): `split_memchr` hands out every field (what "splitting" the buffer
//! means), `count_only_memchr` only counts each line's TABs (memchr's vectorised count, which
//! never yields a field; the baseline of the first figures). The full parse validates every
//! field and builds borrowed records. The ratios are the figures reported in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

mod support;
use support::{body, count_only, full_parse, operlog_body, operlog_parse, split};

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
    // OPERLOG beside the same split-only baseline (its bodies are TAB-separated lines too).
    for lines in [128usize, 100_000] {
        let buf = operlog_body(lines);
        let mut group = c.benchmark_group(format!("operlog_{lines}_lines"));
        group.throughput(Throughput::Bytes(buf.len() as u64));
        group.bench_function("split_memchr", |b| b.iter(|| split(black_box(&buf))));
        group.bench_function("full_parse", |b| b.iter(|| operlog_parse(black_box(&buf))));
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
