//! How the plan's values are written for people: percentages, times,
//! matchers and the weight each target has at a moment. Shared by every
//! command so that `check`, `explain`, `cohort` and the edits agree.

use turnout::bucket::BUCKETS;
use turnout::plan::{MatchOn, Matcher, SplitPlan, Weight};
use turnout::schedule::{self, Step};
use turnout::shadow::ShadowPlan;

/// Basis points as a percentage without needless zeros: `25 %`, `0.5 %`.
pub fn pct(bps: u64) -> String {
    format!("{} %", turnout::fields::percent_text(bps))
}

/// A count as a share of `total`, two decimals: `24.80 %`.
pub fn share(count: usize, total: usize) -> String {
    if total == 0 {
        return "-".into();
    }
    format!("{:.2} %", count as f64 * 100.0 / total as f64)
}

/// Unix seconds as RFC 3339 UTC, the form schedules are written in.
pub fn rfc3339(secs: i64) -> String {
    turnout::schedule::format_rfc3339(secs)
}

/// `route "users"`, `prefix "/api" (GET, POST)`.
pub fn matcher(m: &Matcher) -> String {
    let on = match &m.on {
        MatchOn::Route(r) => format!("route {r:?}"),
        MatchOn::Prefix(p) => format!("prefix {p:?}"),
        MatchOn::Path(p) => format!("path {p:?}"),
    };
    if m.methods.is_empty() {
        on
    } else {
        format!("{on} [{}]", m.methods.join(", "))
    }
}

/// A target of a split at one moment.
pub struct TargetNow<'p> {
    pub cluster: &'p str,
    pub weight: u16,
    /// Buckets it owns: `first..end`.
    pub first: u16,
    pub end: u16,
    /// The schedule's next step, when the weight is scheduled and one remains.
    pub schedule: Option<Option<&'p Step>>,
}

/// The targets of `split` at `now`, with the bucket ranges they own.
pub fn targets_at(split: &SplitPlan, now: i64) -> Vec<TargetNow<'_>> {
    let mut first = 0u16;
    split
        .weights
        .iter()
        .zip(&split.clusters[1..])
        .map(|(w, cluster)| {
            let weight = w.at(now);
            let end = first.saturating_add(weight).min(BUCKETS);
            let t = TargetNow {
                cluster,
                weight,
                first,
                end,
                schedule: match w {
                    Weight::Fixed(_) => None,
                    Weight::Schedule(steps) => Some(schedule::next_step(steps, now)),
                },
            };
            first = end;
            t
        })
        .collect()
}

impl TargetNow<'_> {
    /// `fastapi 25 %`, `canary 5 % (schedule: next 10 % at 2026-…Z)`.
    pub fn summary(&self) -> String {
        format!(
            "{} {}{}",
            self.cluster,
            pct(self.weight.into()),
            self.next()
        )
    }

    /// What the schedule does next, if the weight is scheduled.
    pub fn next(&self) -> String {
        match self.schedule {
            None => String::new(),
            Some(None) => " (schedule: last step reached)".into(),
            Some(Some(step)) => format!(
                " (schedule: next {} at {})",
                pct(step.weight.into()),
                rfc3339(step.at)
            ),
        }
    }
}

/// `shadow to fastapi: 30 % of GET, HEAD, compared by status, content-type
/// and JSON body, noise learned`: what a split's shadow copies and how its
/// answers are compared.
pub fn shadow(shadow: &ShadowPlan) -> String {
    let compare = &shadow.compare;
    let mut parts: Vec<String> = Vec::new();
    if compare.status {
        parts.push("status".into());
    }
    parts.extend(compare.headers.iter().cloned());
    match compare.body {
        turnout::shadow::BodyCompare::None => {}
        body => parts.push(format!("{} body", body.as_str())),
    }
    let mut text = format!(
        "shadow to {}: {} of {}{}, compared by {}",
        shadow.cluster,
        pct(shadow.percent.into()),
        shadow.methods.join(", "),
        if shadow.writes { " (dual writes)" } else { "" },
        if parts.is_empty() {
            "nothing".into()
        } else {
            parts.join(", ")
        }
    );
    if !compare.ignore.is_empty() {
        let ignored: Vec<&str> = compare.ignore.iter().map(|p| p.as_str()).collect();
        text.push_str(&format!(" ignoring {}", ignored.join(" ")));
    }
    if shadow.noise {
        text.push_str(", noise learned from a second stable answer");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_percentages_and_times() {
        assert_eq!(pct(2500), "25 %");
        assert_eq!(pct(50), "0.5 %");
        assert_eq!(pct(5), "0.05 %");
        assert_eq!(pct(0), "0 %");
        assert_eq!(pct(10_000), "100 %");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_115_600), "2026-12-01T09:00:00Z");
        assert_eq!(rfc3339(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        for t in [0i64, 951_782_400, 1_796_115_600, 4_102_444_799] {
            assert_eq!(
                turnout::schedule::parse_rfc3339(&rfc3339(t)),
                Ok(t),
                "round trip {t}"
            );
        }
    }
}
