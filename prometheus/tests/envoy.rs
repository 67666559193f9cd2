//! The parser against a piece of a real Envoy 1.40 `/stats/prometheus`
//! (`envoy-1.40.txt`: counters, a gauge and a whole histogram, as Envoy
//! wrote them), so a change in how Envoy's exposition is read shows here
//! and not first in the rollout controller.

use turnout_prometheus::{parse_value, text_samples};

const ENVOY: &str = include_str!("envoy-1.40.txt");

#[test]
fn every_sample_line_of_envoy_parses() {
    let lines = ENVOY
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count();
    assert_eq!(text_samples(ENVOY).count(), lines);
}

#[test]
fn a_histogram_keeps_its_labels_and_bounds() {
    let buckets: Vec<(f64, f64)> = text_samples(ENVOY)
        .filter(|s| s.name == "envoy_cluster_upstream_rq_time_bucket")
        .map(|s| {
            assert_eq!(s.label("envoy_cluster_name"), Some("admin_self"));
            // `le` comes last in Envoy's label sets.
            assert_eq!(s.labels.last().map(|(k, _)| k.as_str()), Some("le"));
            let le = s.label("le").and_then(parse_value).expect("a bound");
            (le, s.value)
        })
        .collect();
    assert_eq!(buckets.len(), 20);
    assert_eq!(buckets[0], (0.5, 4.0));
    assert_eq!(buckets[19], (f64::INFINITY, 5.0));
    assert!(buckets
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    let sum = text_samples(ENVOY)
        .find(|s| s.name == "envoy_cluster_upstream_rq_time_sum")
        .expect("the histogram's sum");
    assert!((sum.value - 3.049).abs() < 1e-3, "{sum:?}");
}
