//! `turnoutctl check`: would Envoy accept this file? The verdict comes from
//! the filter's own parser, so the problems are word for word what Envoy's
//! log would say, one per line, each naming its field.

use std::path::Path;

use serde_json::{json, Value};
use turnout::config::{self, Problem};
use turnout::plan::{Plan, SplitPlan};
use turnout::shadow::ShadowPlan;

use crate::fail::Fail;
use crate::input::{self, Form};
use crate::show;

/// One config of the file (the file itself, or an ECDS resource) and its verdict.
struct Verdict {
    label: String,
    resource: Option<String>,
    result: Result<Plan, Vec<Problem>>,
}

pub fn run(path: &Path, now: i64, json: bool) -> Result<(), Fail> {
    let input = input::read(path)?;
    let verdicts: Result<Vec<Verdict>, Vec<Problem>> = match &input.form {
        Form::Plain => Ok(vec![verdict(input.label(None), None, &input.text)]),
        Form::Ecds(Err(problems)) => Err(problems.clone()),
        Form::Ecds(Ok(found)) => Ok(found
            .iter()
            .map(|r| verdict(input.label(Some(r)), Some(r.name.clone()), &r.config))
            .collect()),
    };
    let ok = verdicts
        .as_ref()
        .is_ok_and(|v| v.iter().all(|v| v.result.is_ok()));
    if json {
        outln!("{:#}", as_json(&input.path, &verdicts, now, ok));
    } else {
        print_text(&input.path, &verdicts, now);
    }
    if ok {
        Ok(())
    } else {
        Err(Fail::Refused(String::new()))
    }
}

fn verdict(label: String, resource: Option<String>, config: &str) -> Verdict {
    Verdict {
        label,
        resource,
        result: config::parse(config.as_bytes()).map_err(|e| e.problems),
    }
}

fn print_text(path: &Path, verdicts: &Result<Vec<Verdict>, Vec<Problem>>, now: i64) {
    let verdicts = match verdicts {
        Ok(v) => v,
        Err(problems) => {
            outln!("REFUSED {}: not a usable ECDS file", path.display());
            outln!("{}", input::lines(problems));
            return;
        }
    };
    for v in verdicts {
        match &v.result {
            Ok(plan) if plan.splits.is_empty() => {
                outln!("OK {}: no splits (every request passes untouched)", v.label)
            }
            Ok(plan) => {
                let n = plan.splits.len();
                let when = if plan.has_schedules() {
                    format!(", weights at {}", show::rfc3339(now))
                } else {
                    String::new()
                };
                outln!(
                    "OK {}: {n} split{}{when}",
                    v.label,
                    if n == 1 { "" } else { "s" }
                );
                for split in &plan.splits {
                    outln!("  {}", summary(split, now));
                }
            }
            Err(problems) => {
                let n = problems.len();
                outln!(
                    "REFUSED {}: {n} problem{}",
                    v.label,
                    if n == 1 { "" } else { "s" }
                );
                outln!("{}", input::lines(problems));
            }
        }
    }
}

/// `users: route "users", stable legacy, targets fastapi 25 %`, and what
/// else changes where requests go (rollback, pins, force header, mode).
pub fn summary(split: &SplitPlan, now: i64) -> String {
    let targets: Vec<String> = show::targets_at(split, now)
        .iter()
        .map(|t| t.summary())
        .collect();
    let mut line = format!(
        "{}: {}, stable {}, targets {}",
        split.name,
        show::matcher(&split.matcher),
        split.clusters[0],
        if targets.is_empty() {
            "none".into()
        } else {
            targets.join(", ")
        }
    );
    if split.rollback {
        line.push_str(", ROLLBACK ON (everything to stable)");
    }
    if !split.pins.is_empty() {
        line.push_str(&format!(", {} pinned users", split.pins.len()));
    }
    if let Some(h) = &split.force_header {
        line.push_str(&format!(", force header {h}"));
    }
    if split.mode.mode != turnout::plan::Mode::Normal {
        line.push_str(&format!(", mode {}", split.mode.mode.as_str()));
    }
    if let Some(shadow) = &split.shadow {
        line.push_str(&format!("; {}", show::shadow(shadow)));
    }
    line
}

fn as_json(
    path: &Path,
    verdicts: &Result<Vec<Verdict>, Vec<Problem>>,
    now: i64,
    ok: bool,
) -> Value {
    let problems = |ps: &[Problem]| -> Value {
        ps.iter()
            .map(|p| json!({"path": p.path, "message": p.message}))
            .collect()
    };
    let configs: Value = match verdicts {
        Err(_) => Value::Array(Vec::new()),
        Ok(v) => v
            .iter()
            .map(|v| match &v.result {
                Ok(plan) => json!({
                    "resource": v.resource,
                    "ok": true,
                    "splits": plan.splits.iter().map(|s| split_json(s, now)).collect::<Vec<_>>(),
                }),
                Err(ps) => json!({"resource": v.resource, "ok": false, "problems": problems(ps)}),
            })
            .collect(),
    };
    json!({
        "file": path.display().to_string(),
        "ok": ok,
        "at": show::rfc3339(now),
        "problems": verdicts.as_ref().err().map(|ps| problems(ps)).unwrap_or(json!([])),
        "configs": configs,
    })
}

/// A split as `--json` shows it; weights in percent.
pub fn split_json(split: &SplitPlan, now: i64) -> Value {
    let targets: Vec<Value> = show::targets_at(split, now)
        .iter()
        .map(|t| {
            json!({
                "cluster": t.cluster,
                "weight": f64::from(t.weight) / 100.0,
                "buckets": [t.first, t.end],
                "schedule": t.schedule.is_some(),
                "next": t.schedule.flatten().map(|s| json!({
                    "at": show::rfc3339(s.at),
                    "weight": f64::from(s.weight) / 100.0,
                })),
            })
        })
        .collect();
    json!({
        "name": split.name,
        "match": show::matcher(&split.matcher),
        "stable": split.clusters[0],
        "targets": targets,
        "salt": split.salt,
        "rollback": split.rollback,
        "pins": split.pins.len(),
        "force_header": split.force_header,
        "mode": split.mode.mode.as_str(),
        "shadow": split.shadow.as_ref().map(shadow_json),
    })
}

/// A split's shadow as `--json` shows it; `percent` in percent.
fn shadow_json(shadow: &ShadowPlan) -> Value {
    let compare = &shadow.compare;
    json!({
        "cluster": shadow.cluster,
        "percent": f64::from(shadow.percent) / 100.0,
        "methods": shadow.methods,
        "writes": shadow.writes,
        "noise": shadow.noise,
        "timeout_ms": shadow.timeout_ms,
        "compare": {
            "status": compare.status,
            "headers": compare.headers,
            "body": compare.body.as_str(),
            "ignore": compare.ignore.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        },
    })
}
