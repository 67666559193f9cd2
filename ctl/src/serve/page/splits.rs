//! A served config's splits as the page shows them: weights, rollback and
//! pins from the config, and from the proxies' own series (read by
//! figures.rs) whether each split's guard tripped and its shadow's
//! mismatch rate. Without I/O, as the rest of the document.

use serde::{Deserialize, Serialize};
use turnout::plan::SplitPlan;
use turnout::shadow::ShadowPlan;
use turnout::stats::sanitize;

use crate::scrape::{sum, wilson, Samples};
use crate::serve::catalog::Ms;
use crate::serve::status::time;
use crate::show;

/// The series the page reads from the proxies' metrics, and their labels.
pub const SERIES: [&str; 3] = [
    "turnout_guard_tripped",
    "turnout_shadow_tripped",
    "turnout_shadow_total",
];
pub const LABELS: [&str; 3] = ["split", "cluster", "outcome"];

/// The figures the proxies' series gave, as last read.
#[derive(Clone, Debug, PartialEq)]
pub enum Figures {
    /// The server was not told where the proxies' metrics are.
    Unconfigured,
    Read {
        source: String,
        at: Ms,
        samples: Samples,
    },
    Failed {
        source: String,
        at: Ms,
        error: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageSplit {
    pub name: String,
    /// `route "users"`.
    pub matcher: String,
    pub stable: String,
    pub targets: Vec<PageTarget>,
    pub rollback: bool,
    /// Users pinned to a cluster.
    pub pins: usize,
    /// `no guard`, `not tripped`, `tripped on 1 proxy`, or why unknown.
    pub guard: String,
    /// Whether a proxy reports the guard tripped; null when unknown.
    pub guard_tripped: Option<bool>,
    pub shadow: Option<PageShadow>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageTarget {
    pub cluster: String,
    /// `25 %`.
    pub weight: String,
    /// What a schedule does next (empty for a fixed weight).
    pub schedule: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageShadow {
    /// What is copied and how it is compared (`shadow to …`).
    pub describe: String,
    /// `mismatch 0.40 % of 1000 compared (95 %: …)`, or why unknown.
    pub mismatch: String,
    /// Mismatches over compared copies; null when none was compared or
    /// the figures were not read.
    pub mismatch_rate: Option<f64>,
    pub tripped: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FiguresNote {
    /// Where guard trips and mismatch rates come from, or how to show them.
    pub source: String,
    /// When they were last read (or tried); null when they are not read.
    pub at: Option<String>,
    /// Why the last read failed.
    pub error: Option<String>,
}

/// `split` as the page shows it at `now_s` (Unix seconds).
pub fn page_split(split: &SplitPlan, figures: &Figures, now_s: i64) -> PageSplit {
    let targets = show::targets_at(split, now_s)
        .iter()
        .map(|t| PageTarget {
            cluster: t.cluster.to_string(),
            weight: show::pct(t.weight.into()),
            schedule: t
                .next()
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .to_string(),
        })
        .collect();
    let read = Read {
        figures,
        split: sanitize(&split.name),
    };
    let (guard, guard_tripped) = match (&split.guard, read.tripped("turnout_guard_tripped")) {
        (None, _) => ("no guard".to_string(), None),
        (Some(_), Err(why)) => (why, None),
        (Some(_), Ok(0)) => ("not tripped".to_string(), Some(false)),
        (Some(_), Ok(n)) => (format!("tripped on {}", proxies(n)), Some(true)),
    };
    PageSplit {
        name: split.name.clone(),
        matcher: show::matcher(&split.matcher),
        stable: split.clusters.first().cloned().unwrap_or_default(),
        targets,
        rollback: split.rollback,
        pins: split.pins.len(),
        guard,
        guard_tripped,
        shadow: split.shadow.as_ref().map(|s| page_shadow(s, &read)),
    }
}

/// The figures of one split (its name as the series' labels write it).
struct Read<'f> {
    figures: &'f Figures,
    split: String,
}

impl Read<'_> {
    /// How many proxies report the gauge `series` (0/1) at 1, or why that
    /// is not known.
    fn tripped(&self, series: &str) -> Result<u64, String> {
        match self.figures {
            Figures::Read { samples, .. } => {
                Ok(sum(samples, series, &[("split", self.split.as_str())]) as u64)
            }
            other => Err(unknown(other)),
        }
    }

    /// The copies to `cluster` with `outcome`, summed over the proxies.
    fn copies(&self, cluster: &str, outcome: &str) -> u64 {
        let Figures::Read { samples, .. } = self.figures else {
            return 0;
        };
        let cluster = sanitize(cluster);
        let want = [
            ("split", self.split.as_str()),
            ("cluster", cluster.as_str()),
            ("outcome", outcome),
        ];
        sum(samples, "turnout_shadow_total", &want) as u64
    }
}

fn page_shadow(shadow: &ShadowPlan, read: &Read<'_>) -> PageShadow {
    let copies = |outcome: &str| read.copies(&shadow.cluster, outcome);
    let (mismatched, compared) = (copies("mismatch"), copies("match") + copies("mismatch"));
    let failed = copies("error") + copies("timeout");
    let tripped = read.tripped("turnout_shadow_tripped");
    let (mismatch, rate) = match &tripped {
        Err(why) => (why.clone(), None),
        Ok(_) if compared == 0 => (format!("no copy compared yet ({failed} failed)"), None),
        Ok(_) => {
            let rate = mismatched as f64 / compared as f64;
            let (low, high) = wilson(mismatched, compared);
            let text = format!(
                "mismatch {:.2} % of {compared} compared (95 %: {:.2}–{:.2} %) · {failed} failed",
                rate * 100.0,
                low * 100.0,
                high * 100.0
            );
            (text, Some(rate))
        }
    };
    PageShadow {
        describe: show::shadow(shadow),
        mismatch,
        mismatch_rate: rate,
        tripped: tripped.ok().map(|n| n > 0),
    }
}

fn proxies(n: u64) -> String {
    format!("{n} prox{}", if n == 1 { "y" } else { "ies" })
}

/// What a figure says when it was not read.
fn unknown(figures: &Figures) -> String {
    match figures {
        Figures::Unconfigured => "not read (see below)".into(),
        Figures::Failed { .. } => "unknown: the metrics could not be read".into(),
        Figures::Read { .. } => String::new(),
    }
}

pub fn note(figures: &Figures) -> FiguresNote {
    match figures {
        Figures::Unconfigured => FiguresNote {
            source: "Guard trips and shadow mismatch rates are the proxies' own series \
                     (turnout_guard_tripped, turnout_shadow_total), not the server's: start \
                     turnoutctl serve with --prometheus URL or --envoy-admin URL… to show them here."
                .into(),
            at: None,
            error: None,
        },
        Figures::Read { source, at, .. } => FiguresNote {
            source: format!("Guard trips and shadow mismatch rates from {source}"),
            at: Some(time(*at)),
            error: None,
        },
        Figures::Failed { source, at, error } => FiguresNote {
            source: format!("Guard trips and shadow mismatch rates from {source}"),
            at: Some(time(*at)),
            error: Some(error.clone()),
        },
    }
}
