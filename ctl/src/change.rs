//! The changes turnoutctl makes to a config: a target's weight and a
//! split's rollback switch. Each is made on the text (see `jsontext`), so
//! the rest of the config stays exactly as the operator wrote it; the
//! caller validates the result with the filter's parser before using it.

use serde_json::Value;

use crate::fail::Fail;
use crate::jsontext::{self, Seg, Span};

pub enum Change {
    /// Give `cluster` of `split` this weight (JSON number text, percent).
    Weight {
        split: String,
        cluster: String,
        weight: String,
    },
    /// Turn the split's rollback on or off.
    Rollback { split: String, on: bool },
}

/// A changed config.
pub struct Edited {
    pub text: String,
    /// False when the config already said so: nothing to write.
    pub changed: bool,
    /// The target had a `schedule`, now replaced by the fixed weight.
    pub replaced_schedule: bool,
}

/// A WEIGHT argument: a JSON number, written into the config as typed
/// (the filter's parser then checks the range and the two decimals).
pub fn weight_arg(text: &str) -> Result<String, String> {
    match serde_json::from_str::<serde_json::Number>(text) {
        Ok(_) => Ok(text.to_string()),
        Err(_) => Err(format!(
            "{text:?} is not a number (percent, e.g. 25 or 0.5)"
        )),
    }
}

impl Change {
    pub fn split(&self) -> &str {
        match self {
            Change::Weight { split, .. } | Change::Rollback { split, .. } => split,
        }
    }
}

/// `config` with `change` made.
pub fn apply(config: &str, change: &Change) -> Result<Edited, Fail> {
    let doc: Value = serde_json::from_str(config).map_err(|e| {
        Fail::Refused(format!(
            "the configuration is not valid JSON ({e}): fix it by hand"
        ))
    })?;
    let name = change.split();
    let splits = doc
        .get("splits")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let Some(i) = splits.iter().position(|s| text(s, "name") == Some(name)) else {
        let names: Vec<&str> = splits.iter().filter_map(|s| text(s, "name")).collect();
        return Err(Fail::Usage(format!(
            "no split named {name:?}; the splits are: {}",
            list(&names)
        )));
    };
    let split_span = span(config, &[Seg::Key("splits"), Seg::Index(i)])?;
    match change {
        Change::Weight {
            cluster, weight, ..
        } => set_weight(config, &splits[i], i, name, cluster, weight),
        Change::Rollback { on, .. } => set_rollback(config, &split_span, *on),
    }
}

fn set_weight(
    config: &str,
    split: &Value,
    i: usize,
    name: &str,
    cluster: &str,
    weight: &str,
) -> Result<Edited, Fail> {
    if text(split, "stable") == Some(cluster) {
        return Err(Fail::Refused(format!(
            "{cluster:?} is the stable cluster of split {name:?}: it gets what the targets leave; set a target's weight instead"
        )));
    }
    let targets = split
        .get("targets")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let Some(j) = targets
        .iter()
        .position(|t| text(t, "cluster") == Some(cluster))
    else {
        let names: Vec<&str> = targets.iter().filter_map(|t| text(t, "cluster")).collect();
        return Err(Fail::Usage(format!(
            "{cluster:?} is not a target of split {name:?}; its targets are: {}",
            list(&names)
        )));
    };
    let target = span(
        config,
        &[
            Seg::Key("splits"),
            Seg::Index(i),
            Seg::Key("targets"),
            Seg::Index(j),
        ],
    )?;
    let members = jsontext::members(config, &target).ok_or_else(lost)?;
    let member = |key: &str| members.iter().rev().find(|m| m.key == key);
    let edited = if let Some(w) = member("weight") {
        Edited {
            text: jsontext::replace(config, &w.value, weight),
            changed: config[w.value.clone()] != *weight,
            replaced_schedule: false,
        }
    } else if let Some(s) = member("schedule") {
        // `"schedule": [...]` becomes `"weight": N`, spaced as it was.
        let colon = &config[s.key_span.end..s.value.start];
        Edited {
            text: jsontext::replace(
                config,
                &(s.key_span.start..s.value.end),
                &format!("\"weight\"{colon}{weight}"),
            ),
            changed: true,
            replaced_schedule: true,
        }
    } else {
        Edited {
            text: jsontext::append_member(config, &target, "weight", weight).ok_or_else(lost)?,
            changed: true,
            replaced_schedule: false,
        }
    };
    Ok(edited)
}

fn set_rollback(config: &str, split: &Span, on: bool) -> Result<Edited, Fail> {
    let members = jsontext::members(config, split).ok_or_else(lost)?;
    let value = if on { "true" } else { "false" };
    let text = match members.iter().rev().find(|m| m.key == "rollback") {
        Some(m) if config[m.value.clone()] == *value => None,
        Some(m) => Some(jsontext::replace(config, &m.value, value)),
        // Absent is off.
        None if !on => None,
        None => Some(jsontext::append_member(config, split, "rollback", value).ok_or_else(lost)?),
    };
    Ok(Edited {
        changed: text.is_some(),
        text: text.unwrap_or_else(|| config.to_string()),
        replaced_schedule: false,
    })
}

fn text<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn span(config: &str, path: &[Seg<'_>]) -> Result<Span, Fail> {
    jsontext::find(config, path).ok_or_else(lost)
}

/// The text scanner disagrees with serde_json: never expected, but never a panic.
fn lost() -> Fail {
    Fail::Refused("cannot locate the field in the configuration text".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{
    "splits": [
        {"name": "a", "match": {"route": "a"}, "stable": "s",
         "targets": [{"cluster": "t", "weight": 5.0}, {"cluster": "u", "schedule": [{"at": "2026-01-01T00:00:00Z", "weight": 1}]}]},
        {"name": "b", "match": {"route": "b"}, "stable": "s", "targets": [], "rollback" : false}
    ]
}"#;

    fn weight(split: &str, cluster: &str, w: &str) -> Result<Edited, Fail> {
        let change = Change::Weight {
            split: split.into(),
            cluster: cluster.into(),
            weight: w.into(),
        };
        apply(CONFIG, &change)
    }

    fn rollback(split: &str, on: bool) -> Edited {
        let change = Change::Rollback {
            split: split.into(),
            on,
        };
        apply(CONFIG, &change).unwrap()
    }

    #[test]
    fn weight_replaces_only_its_bytes() {
        let e = weight("a", "t", "25").unwrap();
        assert!(e.changed && !e.replaced_schedule);
        assert_eq!(
            e.text,
            CONFIG.replace(r#""weight": 5.0}"#, r#""weight": 25}"#)
        );
        assert!(!weight("a", "t", "5.0").unwrap().changed);
    }

    #[test]
    fn weight_replaces_a_schedule_in_place() {
        let e = weight("a", "u", "10").unwrap();
        assert!(e.changed && e.replaced_schedule);
        assert_eq!(
            e.text,
            CONFIG.replace(
                r#""schedule": [{"at": "2026-01-01T00:00:00Z", "weight": 1}]"#,
                r#""weight": 10"#
            )
        );
    }

    #[test]
    fn weight_refuses_unknown_names_and_the_stable_side() {
        let msg = |r: Result<Edited, Fail>| r.err().unwrap().to_string();
        assert_eq!(
            msg(weight("x", "t", "1")),
            "no split named \"x\"; the splits are: a, b"
        );
        assert_eq!(
            msg(weight("a", "v", "1")),
            "\"v\" is not a target of split \"a\"; its targets are: t, u"
        );
        assert!(msg(weight("a", "s", "1")).starts_with("\"s\" is the stable cluster"));
    }

    #[test]
    fn rollback_sets_or_adds_the_switch() {
        let on = rollback("b", true);
        assert!(on.changed);
        assert_eq!(
            on.text,
            CONFIG.replace(r#""rollback" : false"#, r#""rollback" : true"#)
        );
        assert!(!rollback("b", false).changed);
        assert!(!rollback("a", false).changed);
        let added = rollback("a", true);
        assert_eq!(
            added.text,
            CONFIG.replace(
                r#""weight": 1}]}]}"#,
                "\"weight\": 1}]}],\n         \"rollback\": true}"
            )
        );
        assert!(
            turnout::config::parse(added.text.as_bytes())
                .unwrap()
                .splits[0]
                .rollback
        );
    }

    #[test]
    fn weight_arg_takes_json_numbers() {
        assert_eq!(weight_arg("25"), Ok("25".into()));
        assert_eq!(weight_arg("0.25"), Ok("0.25".into()));
        assert!(weight_arg("25%").is_err());
        assert!(weight_arg("").is_err());
    }
}
