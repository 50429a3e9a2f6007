//! Runs the ATTLOG parser (or the split-only baseline) over a generated body, for profilers
//! that count instructions (`valgrind --tool=callgrind`), which are repeatable on a shared VM
//! where criterion's wall-clock figures are not.
//!
//! `cargo run --release -p adms-protocol --example attlog_profile -- full|split [lines] [rounds]`

use std::hint::black_box;

fn body(lines: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..lines {
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

#[inline(never)]
fn split_only(body: &[u8]) -> usize {
    let mut fields = 0;
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', body) {
        fields += 1 + memchr::memchr_iter(b'\t', &body[start..end]).count();
        start = end + 1;
    }
    fields
}

#[inline(never)]
fn split_fields(body: &[u8]) -> usize {
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

#[inline(never)]
fn full_parse(body: &[u8]) -> usize {
    let mut ok = 0;
    for (_, record) in adms_protocol::parse_attlog_body(body).flatten() {
        ok += usize::from(record.verify > 0) + record.pin.len();
    }
    ok
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "full".into());
    let lines: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let rounds: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(10);
    let buf = body(lines);
    if mode == "compare" {
        // Alternate the three so that load from other processes hits each alike; the minimum
        // of many rounds is the figure least disturbed by it.
        let mut best = [f64::MAX; 3];
        let mut sink = 0;
        for _ in 0..rounds {
            for (slot, f) in [split_only as fn(&[u8]) -> usize, split_fields, full_parse].iter().enumerate() {
                let t = std::time::Instant::now();
                sink += f(black_box(&buf));
                best[slot] = best[slot].min(t.elapsed().as_secs_f64());
            }
        }
        let [count, fields, full] = best;
        println!(
            "count-only {:.3} ms, split fields {:.3} ms, full parse {:.3} ms: full = {:.0} % of count-only, {:.0} % of split ({sink})",
            count * 1e3,
            fields * 1e3,
            full * 1e3,
            100.0 * count / full,
            100.0 * fields / full
        );
        return;
    }
    let mut total = 0;
    for _ in 0..rounds {
        total += match mode.as_str() {
            "split" => split_only(black_box(&buf)),
            "fields" => split_fields(black_box(&buf)),
            _ => full_parse(black_box(&buf)),
        };
    }
    println!("{mode}: {total}");
}
