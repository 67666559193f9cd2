//! Pooling runs' `slices.csv` gives the report's figures over all their
//! cycles: checked on slices whose figures are worked out by hand.

use turnout_bench_load::pool::{cycles_of_csv, native_figures};

const HEADER: &str = "cycle,position,listener,kept,requests,seconds,requests_per_second,envoy_ns\n";

/// One slice: `us` µs of Envoy CPU per request over 1,000 requests.
fn slice(cycle: u32, listener: &str, kept: bool, us: f64, rps: f64) -> String {
    let ns = us * 1_000.0 * 1_000.0;
    format!("{cycle},0,{listener},{kept},1000,2,{rps},{ns}\n")
}

fn figure(figures: &[(String, &'static str, turnout_bench_load::Estimate)], name: &str) -> f64 {
    figures
        .iter()
        .find(|(n, _, _)| n.starts_with(name))
        .unwrap_or_else(|| panic!("no figure {name}"))
        .2
        .pooled
}

#[test]
fn two_runs_pool_as_one_run_of_all_their_cycles() {
    // Run 1: (a) 60, (d) 70, (e) 66; a slice measured again, not kept.
    let run1 = [
        HEADER.to_string(),
        slice(1, "native", true, 60.0, 10_000.0),
        slice(1, "lua", false, 99.0, 1.0),
        slice(1, "lua", true, 70.0, 9_000.0),
        slice(1, "turnout_native", true, 66.0, 9_500.0),
    ]
    .concat();
    // Run 2: (a) 80, (d) 84, (e) 90; and a cycle without (d), left out.
    let run2 = [
        HEADER.to_string(),
        slice(1, "native", true, 80.0, 8_000.0),
        slice(1, "lua", true, 84.0, 7_000.0),
        slice(1, "turnout_native", true, 90.0, 7_500.0),
        slice(2, "native", true, 10.0, 1.0),
        slice(2, "turnout_native", true, 500.0, 1.0),
    ]
    .concat();
    let mut cycles = cycles_of_csv(&run1).expect("run 1 parses");
    cycles.extend(cycles_of_csv(&run2).expect("run 2 parses"));
    assert_eq!(cycles.len(), 3);
    let (figures, n) = native_figures(&cycles, 200, 0.9);
    assert_eq!(n, 2);
    let near = |x: f64, y: f64| assert!((x - y).abs() < 1e-9, "{x} against {y}");
    // The mean of the paired differences: (6 + 10) / 2 and (10 + 4) / 2.
    near(figure(&figures, "(e) − (a)"), 8.0);
    near(figure(&figures, "(d) − (a)"), 7.0);
    // Σ of one over Σ of the other: 16 / 14, not the mean of 0.6 and 2.5.
    near(figure(&figures, "((e) − (a)) / ((d) − (a))"), 16.0 / 14.0);
    near(
        figure(&figures, "requests/s (e) / (a)"),
        17_000.0 / 18_000.0,
    );
    // No cycle ran (c): no figure of it.
    assert!(!figures.iter().any(|(n, _, _)| n.contains("(c)")));
}

#[test]
fn a_file_without_the_columns_is_refused_with_the_column_named() {
    let error = cycles_of_csv("cycle,listener,kept\n1,native,true\n").expect_err("refused");
    assert!(error.contains("\"requests\""), "{error}");
}
