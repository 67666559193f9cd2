//! The rollout plan (`turnoutctl rollout PLAN.json`, a contract in
//! DESIGN.md): which split's target to drive through which steps, how long
//! to hold each, what to judge it by, where the metrics are, and what to do
//! on a failure. Checked as a config is, with the config's own field checks
//! (`turnout::fields`): every problem at once, each named by its field
//! (`steps[2].hold_s: 0 is not between 1 and 604800`). The weights and the
//! `analysis` are checked by the filter's own rules for a target's
//! `weight` and a split's `guard`, so they mean the same. The analysis
//! also takes the shadow's gates (`max_mismatch_rate`,
//! `max_shadow_error_rate`), and a step may be 0: a shadow-only step; both
//! need a split with a `shadow`, which only the config can say (the
//! machine refuses them at the start otherwise).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use turnout::config;
use turnout::fields::{percent_text, Problem, Validator};
use turnout::guard::GuardPlan;

use crate::fail::Fail;
use crate::http::Url;
use crate::input;

/// A checked plan.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutPlan {
    /// The config file that Envoy (or `turnoutctl serve`) reads.
    pub config: PathBuf,
    pub split: String,
    pub target: String,
    /// In order of increasing weight.
    pub steps: Vec<Step>,
    pub interval_s: u64,
    pub metrics: Metrics,
    /// Judged as the guard judges; `window_s` is not used (a step is judged
    /// over the whole hold so far).
    pub analysis: GuardPlan,
    /// The analysis' limits on the shadow's copies.
    pub gates: ShadowGates,
    pub on_failure: OnFailure,
    /// `turnoutctl serve`'s address (`HOST:PORT`, or `https://HOST:PORT`
    /// under mutual TLS, with `rollout --tls-cert … --tls-key … --ca …`)
    /// when it serves `config`: a step's hold then starts once every
    /// connected proxy ACKed it. An extension of the contract's plan.
    pub server: Option<String>,
}

/// `analysis.max_mismatch_rate` and `analysis.max_shadow_error_rate`:
/// mismatches over compared copies, and failed copies (error, timeout)
/// over copies sent, in a step's hold; judged beyond noise as the error
/// rate is.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ShadowGates {
    pub max_mismatch_rate: Option<f64>,
    pub max_shadow_error_rate: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Basis points; 0 is a shadow-only step (every user on stable, the
    /// copies judged).
    pub weight: u16,
    pub hold_s: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Metrics {
    /// A Prometheus server, queried through its HTTP API.
    Prometheus(Url),
    /// The proxies' admin endpoints, each scraped at `/stats/prometheus`.
    EnvoyAdmin(Vec<Url>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFailure {
    /// Write `"rollback": true`: every request of the split to stable.
    Rollback,
    /// Keep the weight as it is and exit.
    Pause,
}

const FIELDS: &[&str] = &[
    "config",
    "split",
    "target",
    "steps",
    "hold_s",
    "interval_s",
    "metrics",
    "analysis",
    "on_failure",
    "server",
];
pub const DEFAULT_HOLD_S: u64 = 300;
pub const DEFAULT_INTERVAL_S: u64 = 10;
/// A week: a longer hold is a schedule, not a rollout.
const MAX_HOLD_S: u64 = 7 * 86_400;
const MAX_INTERVAL_S: u64 = 3600;

/// Reads and checks the plan at `path`; unreadable is a usage error (exit
/// 2), invalid is refused (exit 1) with every problem on its own line.
pub fn read(path: &Path) -> Result<RolloutPlan, Fail> {
    let text = fs::read_to_string(path)
        .map_err(|e| Fail::Usage(format!("cannot read {}: {e}", path.display())))?;
    parse(&text).map_err(|problems| {
        Fail::Refused(format!(
            "{}: the rollout plan is refused:\n{}",
            path.display(),
            input::lines(&problems)
        ))
    })
}

/// Checks a plan's text.
pub fn parse(text: &str) -> Result<RolloutPlan, Vec<Problem>> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        vec![Problem {
            path: String::new(),
            message: format!("not valid JSON: {e}"),
        }]
    })?;
    let mut v = Validator::default();
    let plan = plan(&mut v, &value);
    match plan {
        Some(plan) if v.problems.is_empty() => Ok(plan),
        _ => Err(v.problems),
    }
}

fn plan(v: &mut Validator, value: &Value) -> Option<RolloutPlan> {
    let Some(top) = value.as_object() else {
        v.fail("", "the plan is not an object");
        return None;
    };
    v.known_fields(top, "", FIELDS);
    // Every field is checked before any refusal, so all problems show.
    let config = non_empty_field(v, top, "config");
    let split = non_empty_field(v, top, "split");
    let target = non_empty_field(v, top, "target");
    let hold_s = match top.get("hold_s") {
        Some(x) => v.whole_in(x, "hold_s", 1, MAX_HOLD_S),
        None => Some(DEFAULT_HOLD_S),
    };
    let interval_s = match top.get("interval_s") {
        Some(x) => v.whole_in(x, "interval_s", 1, MAX_INTERVAL_S),
        None => Some(DEFAULT_INTERVAL_S),
    };
    let steps = v
        .required(top, "", "steps")
        .and_then(|x| steps(v, x, hold_s.unwrap_or(DEFAULT_HOLD_S)));
    let metrics = v.required(top, "", "metrics").and_then(|x| metrics(v, x));
    let (analysis, gates) = match v.required(top, "", "analysis") {
        Some(x) => analysis(v, x),
        None => (None, None),
    };
    let on_failure = match top.get("on_failure") {
        None => Some(OnFailure::Rollback),
        Some(x) => match x.as_str() {
            Some("rollback") => Some(OnFailure::Rollback),
            Some("pause") => Some(OnFailure::Pause),
            _ => {
                v.fail(
                    "on_failure",
                    format!("{x} is not \"rollback\" or \"pause\""),
                );
                None
            }
        },
    };
    let server = match top.get("server") {
        None => Some(None),
        Some(x) => server(v, x).map(Some),
    };
    Some(RolloutPlan {
        config: PathBuf::from(config?),
        split: split?,
        target: target?,
        steps: steps?,
        interval_s: interval_s?,
        metrics: metrics?,
        analysis: analysis?,
        gates: gates?,
        on_failure: on_failure?,
        server: server?,
    })
}

/// `HOST:PORT` of `turnoutctl serve`, as `turnoutctl status --server`
/// takes it.
fn server(v: &mut Validator, value: &Value) -> Option<String> {
    let text = v.string(value, "server")?;
    // `https://` stays: it says the server wants the TLS files.
    let (scheme, address) = match text.strip_prefix("https://") {
        Some(rest) => ("https://", rest),
        None => ("", text.trim_start_matches("http://")),
    };
    match Url::parse(&format!("http://{address}")) {
        Ok(url) if url.base.is_empty() && address.contains(':') => {
            Some(format!("{scheme}{address}"))
        }
        Ok(_) => {
            v.fail("server", format!("{text:?} is not HOST:PORT"));
            None
        }
        Err(e) => {
            v.fail("server", e);
            None
        }
    }
}

/// A required non-empty string.
fn non_empty_field(v: &mut Validator, obj: &Map<String, Value>, name: &str) -> Option<String> {
    v.required(obj, "", name)
        .and_then(|value| v.non_empty(value, name))
}

/// `[0, 10, {"weight": 30, "hold_s": 600}, …]`: increasing weights; 0
/// (a shadow-only step) can only come first.
fn steps(v: &mut Validator, value: &Value, hold_s: u64) -> Option<Vec<Step>> {
    let items = v.array(value, "steps")?;
    if items.is_empty() {
        v.fail("steps", "is empty; give at least one weight");
        return None;
    }
    let mut steps = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = format!("steps[{i}]");
        let step = match item {
            Value::Object(obj) => step_object(v, obj, &path, hold_s),
            _ => step_weight(v, item, &path).map(|weight| Step { weight, hold_s }),
        };
        let Some(step) = step else {
            ok = false;
            continue;
        };
        if let Some(previous) = steps.last().map(|s: &Step| s.weight) {
            if step.weight <= previous {
                v.fail(
                    &path,
                    format!(
                        "{} is not above the step before it ({}): steps only ramp up",
                        percent_text(step.weight.into()),
                        percent_text(previous.into())
                    ),
                );
                ok = false;
            }
        }
        steps.push(step);
    }
    ok.then_some(steps)
}

fn step_object(
    v: &mut Validator,
    obj: &Map<String, Value>,
    path: &str,
    hold_s: u64,
) -> Option<Step> {
    v.known_fields(obj, path, &["weight", "hold_s"]);
    let weight = v
        .required(obj, path, "weight")
        .and_then(|w| step_weight(v, w, &format!("{path}.weight")));
    let hold_s = match obj.get("hold_s") {
        Some(x) => v.whole_in(x, &format!("{path}.hold_s"), 1, MAX_HOLD_S),
        None => Some(hold_s),
    };
    Some(Step {
        weight: weight?,
        hold_s: hold_s?,
    })
}

/// A weight as the config's.
fn step_weight(v: &mut Validator, value: &Value, path: &str) -> Option<u16> {
    v.weight(value, path)
}

fn metrics(v: &mut Validator, value: &Value) -> Option<Metrics> {
    let one_of = "give one of {\"prometheus\": URL} or {\"envoy_admin\": [URL, …]}";
    let Some(obj) = value.as_object() else {
        v.fail("metrics", format!("{value} is not an object; {one_of}"));
        return None;
    };
    for key in obj
        .keys()
        .filter(|k| !["prometheus", "envoy_admin"].contains(&k.as_str()))
    {
        v.fail(
            &format!("metrics.{key}"),
            format!("unknown field; {one_of}"),
        );
    }
    match (obj.get("prometheus"), obj.get("envoy_admin")) {
        (Some(u), None) => url(v, u, "metrics.prometheus").map(Metrics::Prometheus),
        (None, Some(Value::Array(urls))) if !urls.is_empty() => {
            let urls: Vec<Option<Url>> = urls
                .iter()
                .enumerate()
                .map(|(i, u)| url(v, u, &format!("metrics.envoy_admin[{i}]")))
                .collect();
            urls.into_iter()
                .collect::<Option<Vec<Url>>>()
                .map(Metrics::EnvoyAdmin)
        }
        (None, Some(other)) => {
            v.fail(
                "metrics.envoy_admin",
                format!("{other} is not a non-empty array of URLs"),
            );
            None
        }
        (Some(_), Some(_)) => {
            v.fail("metrics", format!("has both sources; {one_of}"));
            None
        }
        (None, None) => {
            v.fail("metrics", format!("names no source; {one_of}"));
            None
        }
    }
}

fn url(v: &mut Validator, value: &Value, path: &str) -> Option<Url> {
    let text = v.string(value, path)?;
    Url::parse(text).map_err(|e| v.fail(path, e)).ok()
}

/// The shadow's gates, beside the guard's fields in `analysis`.
const GATES: [&str; 2] = ["max_mismatch_rate", "max_shadow_error_rate"];

/// The guard's fields, checked by the guard's rules (`window_s` has no
/// meaning here), and the shadow's gates, each above 0 and at most 1. A
/// gate is a limit: an analysis with gates and no guard limit judges the
/// copies alone.
fn analysis(v: &mut Validator, value: &Value) -> (Option<GuardPlan>, Option<ShadowGates>) {
    let mut value = value.clone();
    let mut gates = Some(ShadowGates::default());
    let mut any_gate = false;
    if let Some(obj) = value.as_object_mut() {
        if obj.remove("window_s").is_some() {
            v.fail(
                "analysis.window_s",
                "is not used by a rollout, which judges each step over its whole hold so far",
            );
        }
        // Taken out before the guard's check, which knows no such field.
        let [mismatch, error] = GATES.map(|name| {
            obj.remove(name).map(|x| {
                any_gate = true;
                v.positive_up_to(&x, &format!("analysis.{name}"), 1.0)
            })
        });
        gates = match (mismatch, error) {
            (Some(None), _) | (_, Some(None)) => None,
            (m, e) => Some(ShadowGates {
                max_mismatch_rate: m.flatten(),
                max_shadow_error_rate: e.flatten(),
            }),
        };
    }
    let guard = match config::guard_field(&value, "analysis") {
        Ok(plan) => Some(plan),
        Err(problems) => {
            let before = v.problems.len();
            for p in problems {
                // The guard's "sets no limit" counts only its own limits.
                let no_limit = p.path == "analysis" && p.message.starts_with("sets no limit");
                match (no_limit, any_gate) {
                    (true, true) => {}
                    (true, false) => {
                        v.fail("analysis", format!("{}, {}", p.message, GATES.join(", ")))
                    }
                    (false, _) => v.problems.push(p),
                }
            }
            // Only "sets no limit" with a gate set: the guard's fields
            // are otherwise good, and at their defaults where absent.
            if v.problems.len() == before {
                guard_defaults(&value)
            } else {
                None
            }
        }
    };
    (guard, gates)
}

/// The guard's fields of an analysis that sets no guard limit, checked by
/// the guard's rules with a stand-in limit that is then taken out.
fn guard_defaults(value: &Value) -> Option<GuardPlan> {
    let mut value = value.clone();
    value
        .as_object_mut()?
        .insert("max_error_rate".into(), Value::from(1.0));
    let mut plan = config::guard_field(&value, "analysis").ok()?;
    plan.max_error_rate = None;
    Some(plan)
}

#[cfg(test)]
mod tests;
