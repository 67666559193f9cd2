//! Reading turnout's own series from where the proxies' metrics are:
//! Prometheus' query API, or each proxy's admin `/stats/prometheus`.
//! Shared by `turnoutctl shadow` (the shadows' report) and `turnoutctl
//! serve --prometheus | --envoy-admin` (guard trips and mismatch rates on
//! the server's page): each names the series and labels it wants, and gets
//! them summed over every proxy.

use std::collections::BTreeMap;
use std::time::Duration;

use turnout_prometheus::{instant_vector, query_path, text_samples, Labels};

use crate::http::{self, Url};

/// Where the counters are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Prometheus(String),
    EnvoyAdmin(Vec<String>),
}

impl Source {
    /// The source the command line names (`--prometheus URL`, else each
    /// `--envoy-admin URL`), if it names one.
    pub fn from_flags(prometheus: Option<String>, envoy_admin: Vec<String>) -> Option<Source> {
        match prometheus {
            Some(url) => Some(Source::Prometheus(url)),
            None if envoy_admin.is_empty() => None,
            None => Some(Source::EnvoyAdmin(envoy_admin)),
        }
    }

    /// Every URL parses, or why one does not.
    pub fn check(&self) -> Result<(), String> {
        self.urls().try_for_each(|url| Url::parse(url).map(drop))
    }

    fn urls(&self) -> impl Iterator<Item = &String> {
        match self {
            Source::Prometheus(url) => std::slice::from_ref(url).iter(),
            Source::EnvoyAdmin(urls) => urls.iter(),
        }
    }

    /// Where the figures come from, for people: `Prometheus at URL`, `the
    /// admin endpoints of 3 proxies (URL, …)`.
    pub fn describe(&self) -> String {
        match self {
            Source::Prometheus(url) => format!("Prometheus at {url}"),
            Source::EnvoyAdmin(urls) => format!(
                "the admin endpoint{} of {} prox{} ({})",
                if urls.len() == 1 { "" } else { "s" },
                urls.len(),
                if urls.len() == 1 { "y" } else { "ies" },
                urls.join(", ")
            ),
        }
    }
}

/// A series' samples, summed over every proxy (`instance` and the
/// like dropped: only the labels asked for are kept).
pub type Samples = BTreeMap<(String, Labels), f64>;

/// The samples of the series named `series` now, with only the labels
/// named `kept`, summed over every proxy. With several admin endpoints,
/// every one must answer: a sum that misses a proxy is not the fleet's.
/// Blocking: each request is bounded by `timeout`.
pub fn read(
    source: &Source,
    series: &[&str],
    kept: &[&str],
    timeout: Duration,
) -> Result<Samples, String> {
    let mut samples = Samples::new();
    let mut add = |name: &str, labels: Labels, value: f64| {
        if !series.contains(&name) {
            return;
        }
        let labels: Labels = labels
            .into_iter()
            .filter(|(k, _)| kept.contains(&k.as_str()))
            .collect();
        *samples.entry((name.to_string(), labels)).or_default() += value;
    };
    match source {
        Source::Prometheus(url) => {
            let url = Url::parse(url)?;
            for name in series {
                let text = http::get(&url, &query_path(name), timeout)?;
                let answer = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                for sample in instant_vector(&answer)? {
                    add(name, sample.labels, sample.value);
                }
            }
        }
        Source::EnvoyAdmin(urls) => {
            for url in urls {
                let text = http::get(&Url::parse(url)?, "/stats/prometheus", timeout)?;
                for sample in text_samples(&text) {
                    let labels = sample.labels.iter().cloned().collect();
                    add(sample.name, labels, sample.value);
                }
            }
        }
    }
    Ok(samples)
}

/// The sum of the samples of `name` whose labels include every pair of
/// `want`.
pub fn sum(samples: &Samples, name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|((n, labels), _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| *v)
        .sum()
}

/// The Wilson score interval of `k` in `n` at 95 %: (0, 0) for no trials.
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let (k, n, z) = (k as f64, n as f64, 1.96f64);
    let p = k / n;
    let centre = p + z * z / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    let denominator = 1.0 + z * z / n;
    (
        ((centre - spread) / denominator).max(0.0),
        ((centre + spread) / denominator).min(1.0),
    )
}

/// One scraped sample, as `read` gives them: for tests that build figures.
#[cfg(test)]
pub fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> ((String, Labels), f64) {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ((name.to_string(), labels), value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_name_a_source_or_none() {
        assert_eq!(Source::from_flags(None, Vec::new()), None);
        let admin = vec!["http://127.0.0.1:9901".to_string()];
        assert_eq!(
            Source::from_flags(None, admin.clone()),
            Some(Source::EnvoyAdmin(admin.clone()))
        );
        let prometheus = Source::from_flags(Some("http://p:9090".into()), Vec::new());
        assert_eq!(prometheus, Some(Source::Prometheus("http://p:9090".into())));
        assert_eq!(
            Source::EnvoyAdmin(admin).describe(),
            "the admin endpoint of 1 proxy (http://127.0.0.1:9901)"
        );
        assert!(Source::EnvoyAdmin(vec!["http://a:1".into(), "b:2".into()])
            .check()
            .is_err());
        assert!(Source::Prometheus("http://p:9090".into()).check().is_ok());
    }

    #[test]
    fn sums_match_every_wanted_label() {
        let labels = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let samples: Samples = [
            (("c".into(), labels(&[("split", "a"), ("o", "x")])), 2.0),
            (("c".into(), labels(&[("split", "a"), ("o", "y")])), 3.0),
            (("c".into(), labels(&[("split", "b"), ("o", "x")])), 5.0),
            (("d".into(), labels(&[("split", "a")])), 7.0),
        ]
        .into_iter()
        .collect();
        assert_eq!(sum(&samples, "c", &[("split", "a")]), 5.0);
        assert_eq!(sum(&samples, "c", &[("split", "a"), ("o", "x")]), 2.0);
        assert_eq!(sum(&samples, "c", &[]), 10.0);
        assert_eq!(sum(&samples, "e", &[]), 0.0);
    }

    #[test]
    fn the_interval_holds_the_rate() {
        let (low, high) = wilson(1, 40);
        assert!(low < 0.025 && high > 0.025 && high < 0.14, "{low} {high}");
        assert_eq!(wilson(0, 0), (0.0, 0.0));
    }
}
