//! `turnoutctl shadow CONFIG --prometheus URL | --envoy-admin URL…`: what
//! the shadows have seen so far, per split: how many copies were compared,
//! the mismatch rate with its 95 % interval, the fields that differ most,
//! the noise, and the copies' latency beside stable's. What a team reads
//! before it moves the first real user.
//!
//! The figures are the proxies' counters since they started (summed over
//! every proxy), read from Prometheus' query API or each proxy's
//! `/stats/prometheus`. The report is made from the samples alone
//! ([`report`]), so it is tested without I/O; [`run`] only reads.

use std::path::Path;
use std::time::Duration;

use turnout::guard::judge::Evidence;
use turnout::plan::Plan;

use crate::fail::Fail;
use crate::input;
use crate::rollout::Side;
use crate::scrape::{self, sum, wilson, Samples, Source};

/// The series read, by name.
const SERIES: [&str; 6] = [
    "turnout_shadow_total",
    "turnout_shadow_mismatch_total",
    "turnout_shadow_field_total",
    "turnout_shadow_noise_total",
    "turnout_shadow_latency_ms_bucket",
    "turnout_latency_ms_bucket",
];

/// The labels kept (turnout's own: `instance` and the like are summed over).
const LABELS: [&str; 6] = ["split", "cluster", "outcome", "part", "field", "le"];

/// How many fields a split's table lists.
const TOP_FIELDS: usize = 10;

pub fn run(config: &Path, source: &Source) -> Result<(), Fail> {
    let (plan, _) = input::read(config)?.plan()?;
    if !plan.has_shadows() {
        return Err(Fail::Refused(format!(
            "{}: no split has a shadow",
            config.display()
        )));
    }
    let samples = scrape::read(source, &SERIES, &LABELS, Duration::from_secs(5))
        .map_err(|e| Fail::Refused(format!("cannot read the metrics: {e}")))?;
    outln!("{}", report(&plan, &samples));
    Ok(())
}

/// The report of every shadowed split of `plan`.
pub fn report(plan: &Plan, samples: &Samples) -> String {
    let mut out = Vec::new();
    for split in &plan.splits {
        let Some(shadow) = &split.shadow else {
            continue;
        };
        let of = |name: &str, want: &[(&str, &str)]| sum(samples, name, want);
        let copy = [
            ("split", split.name.as_str()),
            ("cluster", shadow.cluster.as_str()),
        ];
        let outcome =
            |o: &str| of("turnout_shadow_total", &[copy[0], copy[1], ("outcome", o)]) as u64;
        let (matched, mismatched) = (outcome("match"), outcome("mismatch"));
        let compared = matched + mismatched;
        let rate = |n: u64| {
            if compared == 0 {
                "-".to_string()
            } else {
                format!("{:.2} %", n as f64 * 100.0 / compared as f64)
            }
        };
        let (low, high) = wilson(mismatched, compared);
        out.push(format!(
            "{} → {}: {} compared · mismatch {} (95 %: {:.2}–{:.2} %) · errors {} · timeouts {} · skipped {}",
            split.name,
            shadow.cluster,
            compared,
            rate(mismatched),
            low * 100.0,
            high * 100.0,
            outcome("error"),
            outcome("timeout"),
            outcome("skipped"),
        ));
        let part = |p: &str| {
            of(
                "turnout_shadow_mismatch_total",
                &[copy[0], copy[1], ("part", p)],
            ) as u64
        };
        out.push(format!(
            "  parts: status {} · header {} · body {}",
            part("status"),
            part("header"),
            part("body")
        ));
        let fields = |name: &str| -> Vec<(String, u64)> {
            let mut by_field: Vec<(String, u64)> = samples
                .iter()
                .filter(|((n, labels), _)| {
                    n == name && labels.get("split").map(String::as_str) == Some(&split.name)
                })
                .filter_map(|((_, labels), v)| Some((labels.get("field")?.clone(), *v as u64)))
                .filter(|(_, n)| *n > 0)
                .collect();
            by_field.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            by_field
        };
        let differing = fields("turnout_shadow_field_total");
        if !differing.is_empty() {
            out.push("  fields that differ (pairs, share of compared)".into());
            for (field, n) in differing.iter().take(TOP_FIELDS) {
                out.push(format!("    {field:<32} {n:>8} {:>9}", rate(*n)));
            }
            if differing.len() > TOP_FIELDS {
                out.push(format!("    … and {} more", differing.len() - TOP_FIELDS));
            }
        }
        let noise = fields("turnout_shadow_noise_total");
        if !noise.is_empty() {
            let listed: Vec<String> = noise.iter().map(|(f, n)| format!("{f} ({n})")).collect();
            out.push(format!(
                "  noise (not counted as mismatches): {}",
                listed.join(", ")
            ));
        }
        let side = |name: &str, labels: &[(&str, &str)]| {
            let mut side = Side::default();
            for ((n, l), v) in samples {
                let matches = labels
                    .iter()
                    .all(|(k, want)| l.get(*k).map(String::as_str) == Some(*want));
                if n == name && matches {
                    if let Some(le) = l.get("le").and_then(|s| turnout_prometheus::parse_value(s)) {
                        *side.buckets.entry(le.to_bits()).or_default() += *v as u64;
                    }
                }
            }
            side
        };
        let copies = side("turnout_shadow_latency_ms_bucket", &copy);
        let stable = side(
            "turnout_latency_ms_bucket",
            &[("split", &split.name), ("cluster", &split.clusters[0])],
        );
        let ms = |s: &Side, q: f64| s.quantile(q).map_or("-".into(), |v| format!("{v:.0} ms"));
        out.push(format!(
            "  latency: copies p50 {} p99 {} · stable p50 {} p99 {}",
            ms(&copies, 0.5),
            ms(&copies, 0.99),
            ms(&stable, 0.5),
            ms(&stable, 0.99)
        ));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::sample;

    #[test]
    fn reports_counts_rates_fields_noise_and_latency() {
        let plan = turnout::config::parse(
            br#"{"splits": [{"name": "users", "match": {"route": "users"}, "stable": "legacy",
                "targets": [], "shadow": {"cluster": "fastapi", "noise": true}}]}"#,
        )
        .expect("valid");
        fn with(extra: (&'static str, &'static str)) -> [(&'static str, &'static str); 3] {
            [("split", "users"), ("cluster", "fastapi"), extra]
        }
        let samples: Samples = [
            sample("turnout_shadow_total", &with(("outcome", "match")), 996.0),
            sample("turnout_shadow_total", &with(("outcome", "mismatch")), 4.0),
            sample("turnout_shadow_total", &with(("outcome", "timeout")), 1.0),
            sample(
                "turnout_shadow_mismatch_total",
                &with(("part", "body")),
                4.0,
            ),
            sample(
                "turnout_shadow_field_total",
                &[("split", "users"), ("field", "/price")],
                3.0,
            ),
            sample(
                "turnout_shadow_field_total",
                &[("split", "users"), ("field", "/name")],
                1.0,
            ),
            sample(
                "turnout_shadow_noise_total",
                &[("split", "users"), ("field", "/at")],
                1000.0,
            ),
            sample(
                "turnout_shadow_latency_ms_bucket",
                &with(("le", "10")),
                500.0,
            ),
            sample(
                "turnout_shadow_latency_ms_bucket",
                &with(("le", "+Inf")),
                1000.0,
            ),
            sample(
                "turnout_latency_ms_bucket",
                &[("split", "users"), ("cluster", "legacy"), ("le", "+Inf")],
                9.0,
            ),
        ]
        .into_iter()
        .collect();
        let text = report(&plan, &samples);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "users → fastapi: 1000 compared · mismatch 0.40 % (95 %: 0.16–1.02 %) · errors 0 · timeouts 1 · skipped 0"
        );
        assert_eq!(lines[1], "  parts: status 0 · header 0 · body 4");
        assert!(
            lines[3].starts_with("    /price") && lines[3].ends_with("0.30 %"),
            "{text}"
        );
        assert!(lines[4].starts_with("    /name"), "{text}");
        assert_eq!(lines[5], "  noise (not counted as mismatches): /at (1000)");
        assert!(
            lines[6].starts_with("  latency: copies p50 10 ms"),
            "{text}"
        );
    }
}
