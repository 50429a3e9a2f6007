//! Runs the ATTLOG parser (or one of the memchr baselines) over the bench's generated body, for
//! profilers that count instructions (`valgrind --tool=callgrind`), which are repeatable on a
//! shared VM where criterion's wall-clock figures are not; `compare` prints min-of-N times of
//! all three, alternated so that outside load hits each alike.
//!
//! `operlog` runs the OPERLOG parser over an OPERLOG body of the same number of lines.
//!
//! `cargo run --release -p adms-protocol --example attlog_profile -- full|split|count|operlog|compare [lines] [rounds]`

use std::hint::black_box;

#[path = "../benches/support/mod.rs"]
mod support;
use support::{body, count_only, full_parse, operlog_body, operlog_parse, split};

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "full".into());
    let lines: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let rounds: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(10);
    let buf = if mode.starts_with("operlog") { operlog_body(lines) } else { body(lines) };
    if mode == "compare" {
        // Alternate the four so that load from other processes hits each alike; the minimum
        // of many rounds is the figure least disturbed by it.
        let mut best = [f64::MAX; 3];
        let mut sink = 0;
        for _ in 0..rounds {
            for (slot, f) in [count_only as fn(&[u8]) -> usize, split, full_parse].iter().enumerate() {
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
            "count" => count_only(black_box(&buf)),
            "split" => split(black_box(&buf)),
            "operlog" => operlog_parse(black_box(&buf)),
            _ => full_parse(black_box(&buf)),
        };
    }
    println!("{mode}: {total}");
}
