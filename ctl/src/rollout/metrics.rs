//! Reading the contract's series for one split: the responses of its
//! stable and target clusters by class, their latency histograms, and the
//! guard's gauge per proxy; when the split has a shadow, its copies by
//! outcome (`turnout_shadow_total` of the shadow's cluster) and its
//! gauge per proxy; from a Prometheus server (its query API) or
//! straight from the proxies' admin endpoints (`/stats/prometheus`).
//!
//! A [`Scrape`] keeps every counter per proxy, as read; what happened
//! between two scrapes is [`Scrape::since`], taken series by series, so a
//! proxy that restarts (its counters back at 0) or joins is counted from 0
//! rather than turning a sum negative. Names are matched as the filter
//! writes them into labels (`turnout::stats::sanitize`). Both formats are
//! read by `turnout_prometheus`, shared with the integration harness.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use turnout::stats::{sanitize, Class};
use turnout_prometheus::{instant_vector, parse_value, query_path, text_samples, Labels};

use super::analysis::{Side, Sides, Tripped};
use super::plan::{Metrics, RolloutPlan};
use crate::http::{self, Url};

/// How long one HTTP request may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Where the series come from, for one split's stable and target.
pub struct Source {
    metrics: Metrics,
    split: String,
    /// `[stable, target]` as the labels spell them.
    clusters: [String; 2],
    /// The shadow's cluster as the labels spell it, if the split has one.
    shadow: Option<String>,
}

/// The outcomes of `turnout_shadow_total` that are copies sent: compared
/// (`match`, `mismatch`) or failed (`error`, `timeout`). `skipped` copies
/// were never sent.
const OUTCOMES: [&str; 4] = ["match", "mismatch", "error", "timeout"];

/// Which side of the split a series is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Of {
    Stable,
    Target,
    /// The shadow's copies.
    Shadow,
}

/// One counter series.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series {
    /// The proxy (an admin URL, or Prometheus' `instance`).
    pub proxy: String,
    pub of: Of,
    pub what: What,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum What {
    /// `turnout_responses_total` of a class (its index in `Class::ALL`).
    Responses(usize),
    /// A `turnout_latency_ms_bucket`, by the bits of its upper bound `le`
    /// (positive floats, `+Inf` included, order as their bits do).
    Bucket(u64),
    /// A `turnout_shadow_total` of an outcome (its index in [`OUTCOMES`]).
    Copies(usize),
}

/// What one read saw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape {
    pub series: BTreeMap<Series, f64>,
    /// The proxies whose `turnout_guard_tripped` for the split is 1, and
    /// whose `turnout_shadow_tripped` is.
    pub tripped: Tripped,
}

impl Source {
    /// The series of `plan`'s split, whose stable cluster is `stable` and
    /// whose shadow copies to `shadow`, if it has one.
    pub fn new(plan: &RolloutPlan, stable: &str, shadow: Option<&str>) -> Source {
        Source {
            metrics: plan.metrics.clone(),
            split: sanitize(&plan.split),
            clusters: [sanitize(stable), sanitize(&plan.target)],
            shadow: shadow.map(sanitize),
        }
    }

    /// Reads the series now. With several admin endpoints, every one must
    /// answer: a sum that misses a proxy would not be the fleet's.
    pub fn scrape(&self) -> Result<Scrape, String> {
        match &self.metrics {
            Metrics::Prometheus(url) => self.prometheus(url),
            Metrics::EnvoyAdmin(urls) => {
                let mut scrape = Scrape::default();
                for url in urls {
                    let text = http::get(url, "/stats/prometheus", TIMEOUT)?;
                    self.exposition(&url.to_string(), &text, &mut scrape);
                }
                Ok(scrape)
            }
        }
    }

    fn of(&self, cluster: &str) -> Option<Of> {
        match cluster {
            c if c == self.clusters[1] => Some(Of::Target),
            c if c == self.clusters[0] => Some(Of::Stable),
            _ => None,
        }
    }

    /// The series of a sample, if it is one of ours.
    fn series(
        &self,
        name: &str,
        labels: &dyn Fn(&str) -> Option<String>,
        proxy: &str,
    ) -> Option<Series> {
        if labels("split")? != self.split {
            return None;
        }
        let cluster = labels("cluster")?;
        if name == "turnout_shadow_total" {
            // The shadow's cluster may be the target's: the name tells.
            if Some(&cluster) != self.shadow.as_ref() {
                return None;
            }
            let outcome = labels("outcome")?;
            return Some(Series {
                proxy: proxy.to_string(),
                of: Of::Shadow,
                what: What::Copies(OUTCOMES.iter().position(|o| *o == outcome)?),
            });
        }
        let of = self.of(&cluster)?;
        let what = match name {
            "turnout_responses_total" => {
                let class = labels("class")?;
                What::Responses(Class::ALL.iter().position(|c| c.as_str() == class)?)
            }
            "turnout_latency_ms_bucket" => What::Bucket(parse_value(&labels("le")?)?.to_bits()),
            _ => return None,
        };
        Some(Series {
            proxy: proxy.to_string(),
            of,
            what,
        })
    }

    /// The Prometheus text exposition of one proxy, added to `scrape`.
    fn exposition(&self, proxy: &str, text: &str, scrape: &mut Scrape) {
        for sample in text_samples(text) {
            let label = |n: &str| sample.label(n).map(str::to_string);
            let tripped = match sample.name {
                "turnout_guard_tripped" => &mut scrape.tripped.guard,
                "turnout_shadow_tripped" if self.shadow.is_some() => &mut scrape.tripped.shadow,
                _ => {
                    if let Some(series) = self.series(sample.name, &label, proxy) {
                        *scrape.series.entry(series).or_default() += sample.value;
                    }
                    continue;
                }
            };
            if sample.label("split") == Some(&self.split) && sample.value >= 1.0 {
                tripped.push(proxy.to_string());
            }
        }
    }

    /// Three instant queries, per proxy (`instance`); two more for a
    /// shadow.
    fn prometheus(&self, url: &Url) -> Result<Scrape, String> {
        let clusters = self.clusters.join("|");
        let selector = format!("split=\"{}\",cluster=~\"{clusters}\"", self.split);
        let mut counters = vec![
            ("turnout_responses_total", "class", selector.clone()),
            ("turnout_latency_ms_bucket", "le", selector),
        ];
        if let Some(shadow) = &self.shadow {
            let selector = format!("split=\"{}\",cluster=\"{shadow}\"", self.split);
            counters.push(("turnout_shadow_total", "outcome", selector));
        }
        let mut scrape = Scrape::default();
        for (name, by, selector) in counters {
            let expr = format!("sum by (instance, split, cluster, {by}) ({name}{{{selector}}})");
            for (labels, value) in query(url, &expr)? {
                let label = |n: &str| labels.get(n).cloned();
                let proxy = labels.get("instance").cloned().unwrap_or_default();
                if let Some(series) = self.series(name, &label, &proxy) {
                    scrape.series.insert(series, value);
                }
            }
        }
        let mut gauges = vec![("turnout_guard_tripped", &mut scrape.tripped.guard)];
        if self.shadow.is_some() {
            gauges.push(("turnout_shadow_tripped", &mut scrape.tripped.shadow));
        }
        for (name, tripped) in gauges {
            let expr = format!("max by (instance) ({name}{{split=\"{}\"}})", self.split);
            for (labels, value) in query(url, &expr)? {
                if value >= 1.0 {
                    tripped.push(labels.get("instance").cloned().unwrap_or_default());
                }
            }
        }
        Ok(scrape)
    }
}

impl Scrape {
    /// How many proxies report the split's series.
    pub fn proxies(&self) -> usize {
        let mut names: Vec<&str> = self.series.keys().map(|s| s.proxy.as_str()).collect();
        names.dedup();
        names.len()
    }

    /// What happened between `earlier` and this scrape, series by series:
    /// a counter that went down was reset (its proxy restarted) and counts
    /// from 0, as does a series `earlier` did not have.
    pub fn since(&self, earlier: &Scrape, errors: turnout::guard::ErrorClasses) -> Sides {
        let mut window = Sides::default();
        for (series, &now) in &self.series {
            let before = earlier.series.get(series).copied().unwrap_or(0.0);
            let delta = if now >= before { now - before } else { now };
            let delta = delta.round().max(0.0) as u64;
            let side: &mut Side = match series.of {
                Of::Target => &mut window.target,
                Of::Stable => &mut window.stable,
                Of::Shadow => {
                    let copies = &mut window.copies;
                    let What::Copies(outcome) = series.what else {
                        continue;
                    };
                    match OUTCOMES[outcome] {
                        "match" => copies.matched += delta,
                        "mismatch" => copies.mismatched += delta,
                        _ => copies.failed += delta,
                    }
                    continue;
                }
            };
            match series.what {
                What::Responses(class) => {
                    side.responses += delta;
                    if errors.contains(Class::ALL[class]) {
                        side.errors += delta;
                    }
                }
                What::Bucket(le) => *side.buckets.entry(le).or_default() += delta,
                What::Copies(_) => {}
            }
        }
        window
    }
}

/// `/api/v1/query?query=EXPR`: the instant vector's labels and values.
fn query(url: &Url, expr: &str) -> Result<Vec<(Labels, f64)>, String> {
    let body = http::get(url, &query_path(expr), TIMEOUT)?;
    let json: Value = serde_json::from_str(&body)
        .map_err(|e| format!("{url}: the query answer is not JSON: {e}"))?;
    let samples = instant_vector(&json).map_err(|e| format!("{url}: query {expr:?}: {e}"))?;
    Ok(samples.into_iter().map(|s| (s.labels, s.value)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnout::guard::ErrorClasses;

    fn source() -> Source {
        Source {
            metrics: Metrics::EnvoyAdmin(Vec::new()),
            split: "users".into(),
            clusters: ["legacy".into(), "fastapi".into()],
            shadow: None,
        }
    }

    const EXPOSITION: &str = r#"# TYPE turnout_responses_total counter
turnout_responses_total{split="users",cluster="fastapi",class="2xx"} 90
turnout_responses_total{split="users",cluster="fastapi",class="5xx"} 10
turnout_responses_total{split="users",cluster="legacy",class="2xx"} 400
turnout_responses_total{split="users",cluster="legacy",class="reset"} 2
turnout_responses_total{split="orders",cluster="fastapi",class="5xx"} 1000
turnout_responses_total{split="users",cluster="other",class="5xx"} 1000
# TYPE turnout_guard_tripped gauge
turnout_guard_tripped{split="users"} 0
turnout_guard_tripped{split="orders"} 1
# TYPE turnout_latency_ms histogram
turnout_latency_ms_bucket{split="users",cluster="fastapi",le="0.5"} 10
turnout_latency_ms_bucket{split="users",cluster="fastapi",le="5"} 95
turnout_latency_ms_bucket{split="users",cluster="fastapi",le="+Inf"} 100
turnout_latency_ms_sum{split="users",cluster="fastapi"} 180
envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="x"} 5
weird_label{a="q\"uo\\te,}"} 1 1700000000
"#;

    #[test]
    fn the_exposition_is_read_for_our_split_and_clusters_only() {
        let mut scrape = Scrape::default();
        source().exposition("p1", EXPOSITION, &mut scrape);
        assert!(scrape.tripped.guard.is_empty());
        let w = scrape.since(&Scrape::default(), ErrorClasses::DEFAULT);
        assert_eq!((w.target.responses, w.target.errors), (100, 10));
        assert_eq!((w.stable.responses, w.stable.errors), (402, 2));
        assert_eq!(w.target.buckets.len(), 3);
        assert_eq!(w.target.buckets[&f64::INFINITY.to_bits()], 100);

        let tripped = EXPOSITION.replace(r#"{split="users"} 0"#, r#"{split="users"} 1"#);
        let mut scrape = Scrape::default();
        source().exposition("p2", &tripped, &mut scrape);
        assert_eq!(scrape.tripped.guard, ["p2"]);
    }

    const SHADOWED: &str = r#"turnout_responses_total{split="users",cluster="legacy",class="2xx"} 400
turnout_shadow_total{split="users",cluster="fastapi",outcome="match"} 380
turnout_shadow_total{split="users",cluster="fastapi",outcome="mismatch"} 12
turnout_shadow_total{split="users",cluster="fastapi",outcome="error"} 3
turnout_shadow_total{split="users",cluster="fastapi",outcome="timeout"} 2
turnout_shadow_total{split="users",cluster="fastapi",outcome="skipped"} 50
turnout_shadow_total{split="users",cluster="elsewhere",outcome="mismatch"} 1000
turnout_shadow_total{split="orders",cluster="fastapi",outcome="mismatch"} 1000
turnout_shadow_mismatch_total{split="users",cluster="fastapi",part="body"} 12
turnout_shadow_tripped{split="users"} 1
turnout_shadow_tripped{split="orders"} 1
"#;

    #[test]
    fn a_shadows_copies_are_read_for_its_cluster_and_summed_over_proxies() {
        let shadowed = Source {
            shadow: Some("fastapi".into()),
            ..source()
        };
        let mut scrape = Scrape::default();
        shadowed.exposition("p1", SHADOWED, &mut scrape);
        let untripped = SHADOWED.replace(r#"{split="users"} 1"#, r#"{split="users"} 0"#);
        shadowed.exposition("p2", &untripped, &mut scrape);
        assert_eq!(scrape.tripped.shadow, ["p1"]);
        assert!(scrape.tripped.guard.is_empty());
        let w = scrape.since(&Scrape::default(), ErrorClasses::DEFAULT);
        // Skipped copies were not sent; other clusters and splits are not ours.
        let c = w.copies;
        assert_eq!((c.matched, c.mismatched, c.failed), (760, 24, 10));
        assert_eq!((c.compared(), c.sent()), (784, 794));
        assert_eq!(w.stable.responses, 800);
        // Without a shadow, none of it is read.
        let mut plain = Scrape::default();
        source().exposition("p1", SHADOWED, &mut plain);
        let w = plain.since(&Scrape::default(), ErrorClasses::DEFAULT);
        assert_eq!((w.copies.sent(), plain.tripped.shadow.len()), (0, 0));
    }

    #[test]
    fn deltas_are_per_series_and_survive_a_restart() {
        let series = |proxy: &str, class| Series {
            proxy: proxy.into(),
            of: Of::Target,
            what: What::Responses(class),
        };
        let at = |a: f64, b: f64| Scrape {
            series: [(series("a", 0), a), (series("b", 0), b)]
                .into_iter()
                .collect(),
            ..Scrape::default()
        };
        // b restarted: from 500 to 20 means 20 new responses, not -480.
        let w = at(130.0, 20.0).since(&at(100.0, 500.0), ErrorClasses::DEFAULT);
        assert_eq!(w.target.responses, 30 + 20);
        // A proxy that joins counts from 0.
        let mut later = at(130.0, 520.0);
        later.series.insert(series("c", 3), 7.0);
        let w = later.since(&at(100.0, 500.0), ErrorClasses::DEFAULT);
        assert_eq!((w.target.responses, w.target.errors), (57, 7));
    }
}
