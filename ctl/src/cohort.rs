//! `turnoutctl cohort`: who, among these users, goes where, and who would
//! move with proposed weights. Analytics and support teams ask "which of
//! our beta customers are on the new service?" and "who moves if we go to
//! 50 %?"; the answer is computed with the filter's bucketing, so it is
//! what Envoy will do.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use turnout::config;
use turnout::decide::Reason;
use turnout::plan::Plan;

use crate::change::{self, Change};
use crate::fail::Fail;
use crate::input::{self, Input};
use crate::moves::{At, Moves};
use crate::show;

/// A `--set SPLIT.CLUSTER=WEIGHT` as typed; resolved against the config's
/// split names, since both names may contain dots.
#[derive(Clone, Debug)]
pub struct Set {
    pub target: String,
    pub weight: String,
}

/// Parses `SPLIT.CLUSTER=WEIGHT` (for clap).
pub fn set_arg(text: &str) -> Result<Set, String> {
    let (target, weight) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("{text:?} is not SPLIT.CLUSTER=WEIGHT"))?;
    if !target.contains('.') {
        return Err(format!("{text:?} is not SPLIT.CLUSTER=WEIGHT"));
    }
    Ok(Set {
        target: target.to_string(),
        weight: change::weight_arg(weight)?,
    })
}

pub fn run(
    input: &Input,
    users_file: &Path,
    only: Option<&str>,
    sets: &[Set],
    now: i64,
) -> Result<(), Fail> {
    let (plan, text) = input.plan()?;
    let users = read_users(users_file)?;
    if let Some(name) = only {
        if !plan.splits.iter().any(|s| s.name == name) {
            return Err(Fail::Usage(format!("no split named {name:?}")));
        }
    }
    let mut proposed = text;
    let mut changed = Vec::new();
    for set in sets {
        let (split, cluster) = resolve(&plan, &set.target)?;
        let change = Change::Weight {
            split: split.clone(),
            cluster,
            weight: set.weight.clone(),
        };
        proposed = change::apply(&proposed, &change)?.text;
        changed.push((split, format!("{}={}", set.target, set.weight)));
    }
    let after = config::parse(proposed.as_bytes()).map_err(|e| {
        Fail::Refused(format!(
            "refused: with the proposed weights the configuration would not validate:\n{}",
            input::lines(&e.problems)
        ))
    })?;

    let (now_bounds, after_bounds) = (plan.weights_at(now), after.weights_at(now));
    let mut first = true;
    for (i, split) in plan.splits.iter().enumerate() {
        if only.is_some_and(|n| n != split.name) {
            continue;
        }
        if !first {
            outln!();
        }
        first = false;
        let before = At {
            split,
            bounds: &now_bounds.bounds[i],
        };
        outln!(
            "split {}: {} users (salt {:?}, weights at {})",
            split.name,
            users.len(),
            split.salt,
            show::rfc3339(now)
        );
        out!("{}", tally(before, &users));
        let sets: Vec<&str> = changed
            .iter()
            .filter(|(s, _)| *s == split.name)
            .map(|(_, t)| t.as_str())
            .collect();
        if sets.is_empty() {
            continue;
        }
        let proposed = At {
            split: &after.splits[i],
            bounds: &after_bounds.bounds[i],
        };
        outln!("with {}:", sets.join(", "));
        out!("{}", tally(proposed, &users));
        let moves = Moves::of_users(before, proposed, &users);
        outln!("moves (rows: from, columns: to; the diagonal stays):");
        out!("{}", moves.table());
        let flows: Vec<String> = moves
            .flows()
            .iter()
            .map(|&(f, t, n)| format!("{} → {} {n}", moves.clusters[f], moves.clusters[t]))
            .collect();
        outln!(
            "{} of {} users move ({}){}",
            moves.moved(),
            users.len(),
            show::share(moves.moved(), users.len()),
            if flows.is_empty() {
                String::new()
            } else {
                format!(": {}", flows.join(", "))
            }
        );
        let between_targets = moves.flows().iter().any(|&(f, t, _)| f != 0 && t != 0);
        if between_targets {
            outln!(
                "note: users move between targets: raising an earlier target shifts the ranges of later ones"
            );
        }
    }
    Ok(())
}

/// Users, one key per line, exactly as written (only the line end is
/// removed); blank lines are skipped, repeats counted once.
fn read_users(path: &Path) -> Result<Vec<Vec<u8>>, Fail> {
    let bytes =
        fs::read(path).map_err(|e| Fail::Usage(format!("cannot read {}: {e}", path.display())))?;
    let mut seen = HashSet::new();
    Ok(bytes
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.is_empty() && seen.insert(line.to_vec()))
        .map(<[u8]>::to_vec)
        .collect())
}

/// `SPLIT.CLUSTER` as a split of the plan and one of its targets.
fn resolve(plan: &Plan, target: &str) -> Result<(String, String), Fail> {
    let found: Vec<(String, String)> = plan
        .splits
        .iter()
        .filter_map(|s| {
            let cluster = target.strip_prefix(s.name.as_str())?.strip_prefix('.')?;
            Some((s.name.clone(), cluster.to_string()))
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Fail::Usage(format!(
            "--set {target}: no split of that name; the splits are: {}",
            plan.splits
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        many => many
            .iter()
            .find(|(s, c)| {
                plan.splits
                    .iter()
                    .any(|p| p.name == *s && p.clusters.contains(c))
            })
            .cloned()
            .ok_or_else(|| Fail::Usage(format!("--set {target}: ambiguous split name"))),
    }
}

/// Users per cluster: how many, their share, and why (bucket, pin, rollback).
fn tally(at: At<'_>, users: &[Vec<u8>]) -> String {
    let n = at.split.clusters.len();
    let (mut bucket, mut pin, mut rollback) = (vec![0; n], vec![0; n], vec![0; n]);
    for user in users {
        match at.place(user) {
            (c, Reason::Pin) => pin[c] += 1,
            (c, Reason::Rollback) => rollback[c] += 1,
            (c, _) => bucket[c] += 1,
        }
    }
    let width = at
        .split
        .clusters
        .iter()
        .map(|c| c.len() + " (stable)".len())
        .max()
        .unwrap_or(0)
        .max("cluster".len());
    let mut out = format!(
        "  {:<width$}  {:>7}  {:>8}  {:>7}  {:>5}{}\n",
        "cluster",
        "users",
        "share",
        "bucket",
        "pin",
        if at.split.rollback { "  rollback" } else { "" }
    );
    for (c, name) in at.split.clusters.iter().enumerate() {
        let total = bucket[c] + pin[c] + rollback[c];
        let label = if c == 0 {
            format!("{name} (stable)")
        } else {
            name.clone()
        };
        out.push_str(&format!(
            "  {label:<width$}  {total:>7}  {:>8}  {:>7}  {:>5}",
            show::share(total, users.len()),
            bucket[c],
            pin[c]
        ));
        if at.split.rollback {
            out.push_str(&format!("  {:>8}", rollback[c]));
        }
        out.push('\n');
    }
    out
}
