//! Runs the ATTLOG parser (or one of the memchr baselines) over the bench's generated body, for
//! profilers that count instructions (`valgrind --tool=callgrind`), which are repeatable on a
//! shared VM where criterion's wall-clock figures are not; `compare` prints min-of-N times of
//! all three, alternated so that outside load hits each alike.
//!
//! `legacy` runs the hand-written ATTLOG parser the nom grammar replaced, `operlog` and
//! `operlog-legacy` the two OPERLOG parsers over an OPERLOG body of the same number of lines,
//! `operlog-compare` those two as `compare` does.
//!
//! `cargo run --release -p adms-protocol --example attlog_profile -- full|legacy|split|count|operlog|operlog-legacy|compare|operlog-compare [lines] [rounds]`

use std::hint::black_box;

#[path = "../benches/support/mod.rs"]
mod support;
use support::{
    body, count_only, full_parse, full_parse_legacy, operlog_body, operlog_parse, operlog_parse_legacy, split,
};

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "full".into());
    let lines: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let rounds: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(10);
    let buf = if mode.starts_with("operlog") { operlog_body(lines) } else { body(lines) };
    if mode == "operlog-compare" {
        // The two OPERLOG parsers, alternated as in `compare`.
        let mut best = [f64::MAX; 2];
        let mut sink = 0;
        for _ in 0..rounds {
            for (slot, f) in [operlog_parse_legacy as fn(&[u8]) -> usize, operlog_parse].iter().enumerate() {
                let t = std::time::Instant::now();
                sink += f(black_box(&buf));
                best[slot] = best[slot].min(t.elapsed().as_secs_f64());
            }
        }
        let [legacy, full] = best;
        println!(
            "OPERLOG legacy parse {:.3} ms, full parse {:.3} ms: {:.1} % of legacy's time ({sink})",
            legacy * 1e3,
            full * 1e3,
            100.0 * full / legacy
        );
        return;
    }
    if mode == "compare" {
        // Alternate the four so that load from other processes hits each alike; the minimum
        // of many rounds is the figure least disturbed by it.
        let mut best = [f64::MAX; 4];
        let mut sink = 0;
        for _ in 0..rounds {
            for (slot, f) in [count_only as fn(&[u8]) -> usize, split, full_parse_legacy, full_parse].iter().enumerate()
            {
                let t = std::time::Instant::now();
                sink += f(black_box(&buf));
                best[slot] = best[slot].min(t.elapsed().as_secs_f64());
            }
        }
        let [count, fields, legacy, full] = best;
        println!(
            "count-only {:.3} ms, split fields {:.3} ms, legacy parse {:.3} ms, full parse {:.3} ms: full = {:.0} % of count-only, {:.0} % of split, {:.1} % of legacy's time ({sink})",
            count * 1e3,
            fields * 1e3,
            legacy * 1e3,
            full * 1e3,
            100.0 * count / full,
            100.0 * fields / full,
            100.0 * full / legacy
        );
        return;
    }
    let mut total = 0;
    for _ in 0..rounds {
        total += match mode.as_str() {
            "count" => count_only(black_box(&buf)),
            "split" => split(black_box(&buf)),
            "legacy" => full_parse_legacy(black_box(&buf)),
            "operlog" => operlog_parse(black_box(&buf)),
            "operlog-legacy" => operlog_parse_legacy(black_box(&buf)),
            _ => full_parse(black_box(&buf)),
        };
    }
    println!("{mode}: {total}");
}
