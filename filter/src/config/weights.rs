//! `splits[].targets`: the targets' weights, fixed or by schedule, and
//! what they may add up to.

use super::*;

impl Validator {
    pub(super) fn targets(
        &mut self,
        value: &Value,
        path: &str,
        stable: Option<&str>,
    ) -> (Vec<String>, Vec<Weight>) {
        let Some(items) = self.array(value, path) else {
            return (Vec::new(), Vec::new());
        };
        let (mut clusters, mut weights) = (Vec::new(), Vec::new());
        for (i, item) in items.iter().enumerate() {
            let tpath = format!("{path}[{i}]");
            let Some(obj) = self.object(item, &tpath) else {
                continue;
            };
            self.known_fields(obj, &tpath, &["cluster", "weight", "schedule"]);
            let cluster = self
                .required(obj, &tpath, "cluster")
                .and_then(|v| self.cluster_name(v, &format!("{tpath}.cluster")));
            let weight = match (obj.get("weight"), obj.get("schedule")) {
                (Some(w), None) => self
                    .weight(w, &format!("{tpath}.weight"))
                    .map(Weight::Fixed),
                (None, Some(s)) => self
                    .schedule(s, &format!("{tpath}.schedule"))
                    .map(Weight::Schedule),
                (Some(_), Some(_)) => {
                    self.fail(&tpath, "has both \"weight\" and \"schedule\"; give one");
                    None
                }
                (None, None) => {
                    self.fail(&tpath, "needs \"weight\" or \"schedule\"");
                    None
                }
            };
            // A target whose weight is refused still names a cluster, so
            // that pins naming it are not reported as problems too.
            let Some(cluster) = cluster else { continue };
            if Some(cluster.as_str()) == stable {
                self.fail(
                    &format!("{tpath}.cluster"),
                    format!("{cluster:?} is the split's stable cluster"),
                );
            } else if clusters.contains(&cluster) {
                self.fail(
                    &format!("{tpath}.cluster"),
                    format!("{cluster:?} is listed twice"),
                );
            }
            clusters.push(cluster);
            weights.push(weight.unwrap_or(Weight::Fixed(0)));
        }
        self.weight_sum(path, &weights);
        (clusters, weights)
    }

    /// The targets' weights may never add up to more than 100 %: checked at
    /// every moment a schedule changes a weight.
    pub(super) fn weight_sum(&mut self, path: &str, weights: &[Weight]) {
        let mut moments = vec![i64::MIN];
        for w in weights {
            if let Weight::Schedule(steps) = w {
                moments.extend(steps.iter().map(|s| s.at));
            }
        }
        for now in moments {
            let sum: u32 = weights.iter().map(|w| u32::from(w.at(now))).sum();
            if sum > u32::from(BUCKETS) {
                let when = if now == i64::MIN {
                    String::new()
                } else {
                    format!(" at the step of {now} (Unix time)")
                };
                self.fail(
                    path,
                    format!(
                        "weights add up to {}{when}, over 100",
                        percent_text(sum.into())
                    ),
                );
                return;
            }
        }
    }

    pub(super) fn schedule(&mut self, value: &Value, path: &str) -> Option<Vec<Step>> {
        let items = self.array(value, path)?;
        if items.is_empty() {
            self.fail(path, "is empty; give at least one step");
            return None;
        }
        let mut steps: Vec<Step> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let spath = format!("{path}[{i}]");
            let Some(obj) = self.object(item, &spath) else {
                ok = false;
                continue;
            };
            self.known_fields(obj, &spath, &["at", "weight"]);
            let at = self.required(obj, &spath, "at").and_then(|v| {
                let field = format!("{spath}.at");
                let text = self.string(v, &field)?;
                schedule::parse_rfc3339(text)
                    .map_err(|e| self.fail(&field, format!("{text:?} {e}")))
                    .ok()
            });
            let weight = self
                .required(obj, &spath, "weight")
                .and_then(|v| self.weight(v, &format!("{spath}.weight")));
            match (at, weight) {
                (Some(at), Some(weight)) => {
                    if let Some(prev) = steps.last() {
                        if at <= prev.at {
                            self.fail(
                                &format!("{spath}.at"),
                                "is not after the previous step's time; steps go in time order",
                            );
                            ok = false;
                        }
                    }
                    steps.push(Step { at, weight });
                }
                _ => ok = false,
            }
        }
        ok.then_some(steps)
    }
}
