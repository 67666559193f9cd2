//! `turnoutctl set-weight`, `rollback` and `resume`: change the config that
//! Envoy watches, safely. The new config must pass the filter's parser
//! before anything is written (a refused one would only be rejected by
//! Envoy, silently to the operator); the file is replaced atomically; and
//! the command says what changed and which share of users moves.

use std::path::Path;

use serde_json::Value;
use turnout::config;
use turnout::plan::{Plan, SplitPlan, Weight};

use crate::change::{self, Change, Edited};
use crate::ecds;
use crate::fail::Fail;
use crate::input::{self, Input};
use crate::moves::{At, Moves};
use crate::show;
use crate::write;

pub fn run(path: &Path, change: &Change, now: i64) -> Result<(), Fail> {
    match apply(&input::read(path)?, change, now)? {
        Some(said) => outln!("{said}"),
        None => outln!("{}: {}: unchanged", change.split(), unchanged(change)),
    }
    Ok(())
}

/// Makes `change` to the file `input` was read from, and says what changed
/// and who moves; `None` when the config already said so (nothing written).
/// The rollout controller writes its steps and its rollback through here.
pub fn apply(input: &Input, change: &Change, now: i64) -> Result<Option<String>, Fail> {
    let path = input.path.as_path();
    let (config, resource) = input.single()?;
    let label = input.label(resource);
    let before = config::parse(config.as_bytes()).ok();
    let edited = change::apply(config, change)?;
    if !edited.changed {
        return Ok(None);
    }
    let after = config::parse(edited.text.as_bytes()).map_err(|e| {
        Fail::Refused(format!(
            "refused, {} is unchanged: the new configuration would not validate:\n{}",
            path.display(),
            input::lines(&e.problems)
        ))
    })?;
    let file = match resource {
        None => edited.text.clone(),
        Some(r) => ecds::replace_config(&input.text, r.index, &edited.text)
            .ok_or_else(|| Fail::Refused(format!("{label}: has no configuration value to edit")))?,
    };
    // The file as it will be must give back exactly the new config.
    if read_back(&file, resource.map(|r| r.index)).as_deref() != Some(edited.text.as_str()) {
        return Err(Fail::Refused(format!(
            "{label}: the edited file does not read back as the new config; nothing written"
        )));
    }
    write::replace(path, file.as_bytes()).map_err(|e| {
        Fail::Refused(format!(
            "cannot write {}: {e}; the file is unchanged",
            path.display()
        ))
    })?;
    Ok(Some(describe(
        change,
        before.as_ref(),
        &after,
        &edited,
        now,
    )))
}

fn unchanged(change: &Change) -> String {
    match change {
        Change::Weight {
            cluster, weight, ..
        } => format!("{cluster} is already {weight}"),
        Change::Rollback { on: true, .. } => "rollback is already on".into(),
        Change::Rollback { on: false, .. } => "rollback is already off".into(),
    }
}

fn read_back(file: &str, index: Option<usize>) -> Option<String> {
    match index {
        None => Some(file.to_string()),
        Some(i) => {
            let doc: Value = serde_json::from_str(file).ok()?;
            let found = ecds::resources(&doc).ok()?;
            found.into_iter().find(|r| r.index == i).map(|r| r.config)
        }
    }
}

/// `users: fastapi 5 % → 25 % (users moving into fastapi: 20 % of buckets, from legacy)`.
fn describe(
    change: &Change,
    before: Option<&Plan>,
    after: &Plan,
    edited: &Edited,
    now: i64,
) -> String {
    let name = change.split();
    let find = |plan: &Plan| -> Option<(SplitPlan, Vec<u16>)> {
        let i = plan.splits.iter().position(|s| s.name == name)?;
        let bounds = plan.weights_at(now).bounds.get(i).cloned()?;
        Some((plan.splits[i].clone(), bounds))
    };
    let Some((new, new_bounds)) = find(after) else {
        return format!("{name}: changed");
    };
    let old = before.and_then(find);
    let moving = |focus: &str| match &old {
        None => "the previous config was invalid".to_string(),
        Some((split, bounds)) => {
            let moves = Moves::of_buckets(
                At { split, bounds },
                At {
                    split: &new,
                    bounds: &new_bounds,
                },
            );
            moving_text(&moves, focus)
        }
    };
    let mut out = match change {
        Change::Weight { cluster, .. } => {
            let weight_of = |split: &SplitPlan| -> String {
                let Some(i) = split.clusters.iter().position(|c| c == cluster) else {
                    return "?".into();
                };
                match &split.weights[i - 1] {
                    Weight::Fixed(w) => show::pct((*w).into()),
                    Weight::Schedule(s) => format!(
                        "schedule (now {})",
                        show::pct(turnout::schedule::weight_at(s, now).into())
                    ),
                }
            };
            let was = old.as_ref().map_or("?".into(), |(s, _)| weight_of(s));
            format!(
                "{name}: {cluster} {was} → {} ({})",
                weight_of(&new),
                moving(cluster)
            )
        }
        Change::Rollback { on, .. } => {
            let stable = &new.clusters[0];
            let pinned = new.pins.values().filter(|&&c| c != 0).count();
            let pins = match (pinned, on) {
                (0, _) => String::new(),
                (n, true) => format!("; {n} users pinned elsewhere go to {stable} too"),
                (n, false) => format!("; {n} pinned users go back to their pins"),
            };
            format!("{name}: rollback {} → {on} ({}{pins})", !on, moving(stable))
        }
    };
    if edited.replaced_schedule {
        if let Change::Weight { cluster, .. } = change {
            out.push_str(&format!(
                "\nnote: the schedule of {cluster} is replaced by this fixed weight"
            ));
        }
    }
    if new.rollback && matches!(change, Change::Weight { .. }) {
        out.push_str(&format!(
            "\nnote: rollback is on for {name}: every request still goes to {} until `turnoutctl resume`",
            new.clusters[0]
        ));
    }
    out
}

/// Who moves, said from `focus`'s side when every move is into or out of it.
fn moving_text(moves: &Moves, focus: &str) -> String {
    let flows = moves.flows();
    let share = show::pct(moves.moved() as u64);
    let names = |pick: &dyn Fn(&(usize, usize, usize)) -> usize| -> String {
        let list: Vec<&str> = flows
            .iter()
            .map(|f| moves.clusters[pick(f)].as_str())
            .collect();
        list.join(", ")
    };
    if flows.is_empty() {
        "no user moves".into()
    } else if flows.iter().all(|f| moves.clusters[f.1] == focus) {
        format!(
            "users moving into {focus}: {share} of buckets, from {}",
            names(&|f| f.0)
        )
    } else if flows.iter().all(|f| moves.clusters[f.0] == focus) {
        format!(
            "users moving out of {focus}: {share} of buckets, to {}",
            names(&|f| f.1)
        )
    } else {
        format!("users moving: {} of buckets", moves.bucket_flows())
    }
}
