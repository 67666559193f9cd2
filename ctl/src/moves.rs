//! Where users go under a plan, and who moves when the plan changes:
//! counted over the 10 000 buckets (what a weight change does to the whole
//! population) or over a list of real users (what it does to them).

use turnout::bucket::{Bucket, BUCKETS};
use turnout::decide::{self, Reason};
use turnout::plan::SplitPlan;

use crate::show;

/// A split with the bucket bounds in effect at some moment.
#[derive(Clone, Copy)]
pub struct At<'p> {
    pub split: &'p SplitPlan,
    pub bounds: &'p [u16],
}

impl At<'_> {
    /// Where a keyed user goes, and why, in `decide`'s order: rollback >
    /// pin > bucket. The force header is per request, not per user, and a
    /// mode answers requests without routing them, so neither counts here.
    pub fn place(&self, key: &[u8]) -> (usize, Reason) {
        if self.split.rollback {
            (0, Reason::Rollback)
        } else if let Some(&cluster) = self.split.pins.get(key) {
            (cluster, Reason::Pin)
        } else {
            (
                self.by_bucket(Bucket::of(self.split.salt.as_bytes(), key)),
                Reason::Bucket,
            )
        }
    }

    /// Where a bucket's users go (rollback considered, pins aside).
    pub fn by_bucket(&self, bucket: Bucket) -> usize {
        if self.split.rollback {
            0
        } else {
            decide::cluster_of(self.bounds, bucket)
        }
    }
}

/// Counts of movers, `counts[from][to]`, over the split's clusters; the
/// diagonal holds those who stay.
pub struct Moves {
    pub clusters: Vec<String>,
    pub counts: Vec<Vec<usize>>,
    pub total: usize,
}

impl Moves {
    fn new(clusters: &[String]) -> Moves {
        Moves {
            clusters: clusters.to_vec(),
            counts: vec![vec![0; clusters.len()]; clusters.len()],
            total: 0,
        }
    }

    /// Cluster `index` of `after` as an index of `before`'s clusters (an
    /// edit never changes the list, but a name lookup costs nothing).
    fn same(before: &SplitPlan, after: &SplitPlan, index: usize) -> usize {
        before
            .clusters
            .iter()
            .position(|c| *c == after.clusters[index])
            .unwrap_or(0)
    }

    /// Every bucket, before and after.
    pub fn of_buckets(before: At<'_>, after: At<'_>) -> Moves {
        let mut moves = Moves::new(&before.split.clusters);
        for b in 0..BUCKETS {
            let from = before.by_bucket(Bucket(b));
            let to = Moves::same(before.split, after.split, after.by_bucket(Bucket(b)));
            moves.counts[from][to] += 1;
        }
        moves.total = BUCKETS.into();
        moves
    }

    /// Each of `users`, before and after (pins and rollback included).
    pub fn of_users(before: At<'_>, after: At<'_>, users: &[Vec<u8>]) -> Moves {
        let mut moves = Moves::new(&before.split.clusters);
        for user in users {
            let from = before.place(user).0;
            let to = Moves::same(before.split, after.split, after.place(user).0);
            moves.counts[from][to] += 1;
        }
        moves.total = users.len();
        moves
    }

    /// How many change cluster.
    pub fn moved(&self) -> usize {
        self.flows().iter().map(|f| f.2).sum()
    }

    /// The non-empty moves `(from, to, count)`.
    pub fn flows(&self) -> Vec<(usize, usize, usize)> {
        let mut flows = Vec::new();
        for (from, row) in self.counts.iter().enumerate() {
            for (to, &n) in row.iter().enumerate() {
                if from != to && n > 0 {
                    flows.push((from, to, n));
                }
            }
        }
        flows
    }

    /// The flows as text, with counts as percentages of buckets:
    /// `legacy → fastapi 20 %`.
    pub fn bucket_flows(&self) -> String {
        self.flows()
            .iter()
            .map(|&(f, t, n)| {
                format!(
                    "{} → {} {}",
                    self.clusters[f],
                    self.clusters[t],
                    show::pct(n as u64)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The matrix, rows "from", columns "to".
    pub fn table(&self) -> String {
        let corner = "from \\ to";
        let width = self
            .clusters
            .iter()
            .map(String::len)
            .chain([corner.len()])
            .max()
            .unwrap_or(0);
        let cell = self
            .clusters
            .iter()
            .map(String::len)
            .chain([self.total.to_string().len()])
            .max()
            .unwrap_or(0);
        let mut out = format!("  {corner:<width$}");
        for c in &self.clusters {
            out.push_str(&format!("  {c:>cell$}"));
        }
        out.push('\n');
        for (from, row) in self.counts.iter().enumerate() {
            out.push_str(&format!("  {:<width$}", self.clusters[from]));
            for n in row {
                out.push_str(&format!("  {n:>cell$}"));
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnout::decide::{evaluate, PlainRequest, Verdict};

    /// `place` follows the filter's own precedence: checked against
    /// `decide::evaluate` for keyed users, pinned ones and a rollback.
    #[test]
    fn place_agrees_with_the_filter() {
        for rollback in [false, true] {
            let config = format!(
                r#"{{"splits": [{{"name": "users", "match": {{"route": "users"}}, "stable": "legacy",
                   "targets": [{{"cluster": "a", "weight": 20}}, {{"cluster": "b", "weight": 30.5}}],
                   "pin": {{"b": ["user-1"], "legacy": ["user-2"]}}, "rollback": {rollback}}}]}}"#
            );
            let plan = turnout::config::parse(config.as_bytes()).unwrap();
            let active = plan.weights_at(0);
            let at = At {
                split: &plan.splits[0],
                bounds: &active.bounds[0],
            };
            for i in 0..2000 {
                let user = format!("user-{i}");
                let request = PlainRequest {
                    route_name: Some("users".into()),
                    headers: vec![("x-user-id".into(), user.clone().into_bytes())],
                    ..PlainRequest::default()
                };
                let Verdict::Route(d) = evaluate(&plan, &active, &request, || 0) else {
                    panic!("{user} not routed");
                };
                assert_eq!(at.place(user.as_bytes()), (d.cluster, d.reason), "{user}");
            }
        }
    }
}
