//! `cargo run --release -p turnout-bench-load --bin bench-pool -- A.csv B.csv …`:
//! pools the cycles of several `cargo bench-load` runs of one module (each
//! run's `target/bench-load/slices.csv`, copied aside) into issue 18's
//! figures, computed as the report computes them (see `pool`), with 90 %
//! bootstrap intervals from 10,000 resamples of whole cycles.

use std::fs;
use std::process::exit;

use turnout_bench_load::pool::{cycles_of_csv, native_figures};

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: bench-pool SLICES.csv [SLICES.csv …]");
        exit(2);
    }
    let mut cycles = Vec::new();
    for path in &paths {
        let text = fs::read_to_string(path).unwrap_or_else(|e| {
            eprintln!("{path}: {e}");
            exit(1)
        });
        cycles.extend(cycles_of_csv(&text).unwrap_or_else(|e| {
            eprintln!("{path}: {e}");
            exit(1)
        }));
    }
    let (figures, n) = native_figures(&cycles, 10_000, 0.9);
    if n == 0 {
        eprintln!("no cycle ran (a) native, (d) lua and (e) turnout_native");
        exit(1);
    }
    let runs = match paths.len() {
        1 => "1 run".to_string(),
        k => format!("{k} runs"),
    };
    println!("{n} cycles of {runs}, pooled (Σ over the cycles) with its 90 % interval:\n");
    println!("| figure | pooled | 90 % of pooled | median of the cycles |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, unit, e) in figures {
        let (sign, digits) = if unit == "µs" { ("+", 2) } else { ("", 3) };
        let show = |x: f64| {
            let s = if sign == "+" && x >= 0.0 { "+" } else { "" };
            format!("{s}{x:.digits$}")
        };
        println!(
            "| {name} | {} {unit} | {} – {} | {} {unit} |",
            show(e.pooled),
            show(e.pooled_lo),
            show(e.pooled_hi),
            show(e.median)
        );
    }
}
