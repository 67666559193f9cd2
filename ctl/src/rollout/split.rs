//! Where the split stands, read from the config, every time: the
//! controller keeps no state of its own, so a restarted rollout carries on
//! from the weight in the file, and a split that no longer reads as the
//! controller left it was changed by someone else (an operator's
//! `turnoutctl rollback`, a hand edit), whom it must never fight.

use serde_json::Value;
use turnout::plan::Weight;

use crate::fail::Fail;
use crate::input::{self, Input};

/// The split as the config has it now.
#[derive(Clone, Debug, PartialEq)]
pub struct Stand {
    pub stable: String,
    /// The target's weight, in basis points.
    pub weight: u16,
    pub rollback: bool,
    /// The cluster the split's shadow copies to, if it has one.
    pub shadow: Option<String>,
    /// The split's JSON object: what "unchanged" is measured against.
    pub json: Value,
}

/// Reads the split from the config in `input`: refused (exit 1) when the
/// config does not validate or the target's weight is a schedule, a usage
/// error (exit 2) when the split or the target is not there.
pub fn read(input: &Input, split: &str, target: &str) -> Result<Stand, Fail> {
    let (config, resource) = input.single()?;
    let plan = input::parse(config, &input.label(resource))?;
    let Some(found) = plan.splits.iter().find(|s| s.name == split) else {
        return Err(Fail::Usage(format!(
            "{}: no split named {split:?}",
            input.path.display()
        )));
    };
    let Some(i) = found.clusters.iter().skip(1).position(|c| c == target) else {
        return Err(Fail::Usage(format!(
            "{}: {target:?} is not a target of split {split:?} (targets: {})",
            input.path.display(),
            found.clusters[1..].join(", ")
        )));
    };
    let weight = match &found.weights[i] {
        Weight::Fixed(w) => *w,
        Weight::Schedule(_) => {
            return Err(Fail::Refused(format!(
                "{split}: {target} has a schedule; a rollout sets fixed weights (replace the schedule with `turnoutctl set-weight` first)"
            )))
        }
    };
    Ok(Stand {
        stable: found.clusters[0].clone(),
        weight,
        rollback: found.rollback,
        shadow: found.shadow.as_ref().map(|s| s.cluster.clone()),
        json: split_json(config, split).unwrap_or(Value::Null),
    })
}

/// The split's object in the config text.
fn split_json(config: &str, split: &str) -> Option<Value> {
    let doc: Value = serde_json::from_str(config).ok()?;
    doc.get("splits")?
        .as_array()?
        .iter()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(split))
        .cloned()
}

/// What differs between two versions of a split, one line per field:
/// `rollback: false → true`, `targets[0].weight: 30 → 50`. Numbers that
/// are equal in value (`30`, `30.0`) are not a change.
pub fn changes(before: &Value, after: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    let at = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                match (x.get(key), y.get(key)) {
                    (Some(p), Some(q)) => walk(&at(key), p, q, out),
                    (Some(p), None) => out.push(format!("{}: {} → (removed)", at(key), short(p))),
                    (None, Some(q)) => out.push(format!("{}: (absent) → {}", at(key), short(q))),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                walk(&format!("{path}[{i}]"), p, q, out);
            }
        }
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        _ if a == b => {}
        _ => {
            let name = if path.is_empty() { "the split" } else { path };
            out.push(format!("{name}: {} → {}", short(a), short(b)));
        }
    }
}

/// A value as shown in a message, cut short.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_name_each_field() {
        let before = json!({"name": "users", "stable": "legacy",
            "targets": [{"cluster": "fastapi", "weight": 30}], "pin": {"fastapi": ["qa"]}});
        let mut after = before.clone();
        assert!(changes(&before, &after).is_empty());
        after["targets"][0]["weight"] = json!(30.0);
        assert!(changes(&before, &after).is_empty(), "30.0 is 30");
        after["targets"][0]["weight"] = json!(50);
        after["rollback"] = json!(true);
        after["pin"]["fastapi"] = json!(["qa", "qb"]);
        assert_eq!(
            changes(&before, &after),
            [
                "pin.fastapi: [\"qa\"] → [\"qa\",\"qb\"]",
                "rollback: (absent) → true",
                "targets[0].weight: 30 → 50",
            ]
        );
        assert_eq!(
            changes(&before, &Value::Null)[0],
            format!("the split: {} → null", short(&before))
        );
    }
}
