//! Several runs' `slices.csv`, pooled into one set of figures: more cycles
//! than one run holds, for a ratio that no single run settles. The figures
//! are the report's own ([`Estimate`] over whole cycles, of the same
//! per-slice values), so a pool of one run repeats what its report said.

use std::collections::HashMap;

use crate::stats::Estimate;

/// One cycle: each listener's kept slice, as (Envoy CPU µs per request,
/// requests/s).
pub type Cycle = HashMap<String, (f64, f64)>;

/// The cycles of one run's `slices.csv`. Slices measured again and not
/// kept are left out, as the report leaves them out.
pub fn cycles_of_csv(text: &str) -> Result<Vec<Cycle>, String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty file")?.split(',').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("no column {name:?}"))
    };
    let (cycle, listener, kept, requests, envoy_ns, rps) = (
        column("cycle")?,
        column("listener")?,
        column("kept")?,
        column("requests")?,
        column("envoy_ns")?,
        column("requests_per_second")?,
    );
    let mut cycles: Vec<(String, Cycle)> = Vec::new();
    for (n, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        let field = |i: usize| -> Result<&str, String> {
            fields
                .get(i)
                .copied()
                .ok_or_else(|| format!("line {}: too few fields", n + 2))
        };
        let number = |i: usize| -> Result<f64, String> {
            field(i)?
                .parse::<f64>()
                .map_err(|e| format!("line {}: {e}", n + 2))
        };
        if field(kept)? != "true" {
            continue;
        }
        // Envoy's CPU per request at full precision, as the report has it.
        let us = number(envoy_ns)? / number(requests)? / 1000.0;
        let at = field(cycle)?.to_string();
        if cycles.last().is_none_or(|(c, _)| *c != at) {
            cycles.push((at, Cycle::new()));
        }
        if let Some((_, slices)) = cycles.last_mut() {
            slices.insert(field(listener)?.to_string(), (us, number(rps)?));
        }
    }
    Ok(cycles.into_iter().map(|(_, c)| c).collect())
}

/// Issue 18's figures over `cycles`: what (e) `turnout_native` and (d)
/// `lua` add over (a) `native`, their ratio, (e)'s requests/s over (a)'s,
/// and, when every cycle ran (c) `floor`, what it adds and (e) over it.
/// Only the cycles that ran (a), (d) and (e) count. Returns the figures
/// with their names and units, and the number of cycles.
pub fn native_figures(
    cycles: &[Cycle],
    resamples: usize,
    level: f64,
) -> (Vec<(String, &'static str, Estimate)>, usize) {
    let both: Vec<&Cycle> = cycles
        .iter()
        .filter(|c| {
            ["native", "lua", "turnout_native"]
                .iter()
                .all(|v| c.contains_key(*v))
        })
        .collect();
    let added = |v: &str| -> Vec<f64> { both.iter().map(|c| c[v].0 - c["native"].0).collect() };
    let rps = |v: &str| -> Vec<f64> { both.iter().map(|c| c[v].1).collect() };
    let diff = |x: &[f64]| Estimate::of_differences(x, resamples, level);
    let ratio = |x: &[f64], y: &[f64]| Estimate::of(x, y, resamples, level);
    let mut figures = vec![
        (
            "(e) − (a), µs/request".to_string(),
            "µs",
            diff(&added("turnout_native")),
        ),
        (
            "(d) − (a), µs/request".to_string(),
            "µs",
            diff(&added("lua")),
        ),
        (
            "((e) − (a)) / ((d) − (a)), native turnout over Lua".to_string(),
            "×",
            ratio(&added("turnout_native"), &added("lua")),
        ),
        (
            "requests/s (e) / (a)".to_string(),
            "×",
            ratio(&rps("turnout_native"), &rps("native")),
        ),
    ];
    if !both.is_empty() && both.iter().all(|c| c.contains_key("floor")) {
        figures.push(("(c) − (a), µs/request".into(), "µs", diff(&added("floor"))));
        figures.push((
            "((e) − (a)) / ((c) − (a)), native turnout over the wasm floor".into(),
            "×",
            ratio(&added("turnout_native"), &added("floor")),
        ));
    }
    (figures, both.len())
}
