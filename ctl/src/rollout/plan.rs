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
    /// `turnoutctl serve`'s address (`HOST:PORT`) when it serves `config`:
    /// a step's hold then starts once every connected proxy ACKed it. An
    /// extension of the contract's plan.
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
    let address = text.trim_start_matches("http://");
    match Url::parse(&format!("http://{address}")) {
        Ok(url) if url.base.is_empty() && address.contains(':') => Some(address.to_string()),
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
mod tests {
    use super::*;

    const PLAN: &str = r#"{"config": "envoy/ecds/turnout.json", "split": "users", "target": "fastapi",
 "steps": [10, 30, 50, 80, 100], "hold_s": 300, "interval_s": 10,
 "metrics": {"prometheus": "http://127.0.0.1:9090"},
 "analysis": {"min_requests": 100, "max_error_rate": 0.01, "max_p99_ms": 500,
              "max_p95_ratio": 2.0, "max_error_ratio": 2.0, "alpha": 0.001},
 "on_failure": "rollback"}"#;

    fn problems(text: &str) -> Vec<String> {
        parse(text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// The plan with `field` replaced (or removed, with `None`).
    fn with(field: &str, value: Option<&str>) -> String {
        let mut doc: Value = serde_json::from_str(PLAN).unwrap();
        let obj = doc.as_object_mut().unwrap();
        match value {
            Some(v) => obj.insert(field.into(), serde_json::from_str(v).unwrap()),
            None => obj.remove(field),
        };
        doc.to_string()
    }

    #[test]
    fn the_contract_example_parses() {
        let plan = parse(PLAN).unwrap();
        assert_eq!(plan.config, PathBuf::from("envoy/ecds/turnout.json"));
        assert_eq!(
            (plan.split.as_str(), plan.target.as_str()),
            ("users", "fastapi")
        );
        let weights: Vec<u16> = plan.steps.iter().map(|s| s.weight).collect();
        assert_eq!(weights, [1000, 3000, 5000, 8000, 10_000]);
        assert!(plan.steps.iter().all(|s| s.hold_s == 300));
        assert_eq!(plan.interval_s, 10);
        assert_eq!(
            plan.metrics,
            Metrics::Prometheus(Url::parse("http://127.0.0.1:9090").unwrap())
        );
        assert_eq!(plan.analysis.min_requests, 100);
        assert_eq!(plan.analysis.max_error_rate, Some(0.01));
        assert_eq!(plan.analysis.max_error_ratio, Some(2.0));
        assert_eq!(plan.analysis.alpha, 0.001);
        assert_eq!(plan.on_failure, OnFailure::Rollback);
        assert_eq!(plan.server, None);
    }

    #[test]
    fn a_fleet_server_is_host_and_port() {
        let plan = parse(&with("server", Some(r#""127.0.0.1:18000""#))).unwrap();
        assert_eq!(plan.server.as_deref(), Some("127.0.0.1:18000"));
        let plan = parse(&with("server", Some(r#""http://xds.internal:18000""#))).unwrap();
        assert_eq!(plan.server.as_deref(), Some("xds.internal:18000"));
        for (bad, why) in [
            (
                r#""xds.internal""#,
                "server: \"xds.internal\" is not HOST:PORT",
            ),
            (
                r#""127.0.0.1:18000/status""#,
                "server: \"127.0.0.1:18000/status\" is not HOST:PORT",
            ),
            ("18000", "server: 18000 is not a string"),
        ] {
            assert_eq!(problems(&with("server", Some(bad))), [why], "{bad}");
        }
    }

    #[test]
    fn steps_may_carry_their_own_hold_and_defaults_fill_the_rest() {
        let text = with(
            "steps",
            Some(r#"[0.5, {"weight": 30, "hold_s": 600}, {"weight": 100.0}]"#),
        );
        let text = with_removed(&text, &["hold_s", "interval_s", "on_failure"]);
        let plan = parse(&text).unwrap();
        let steps: Vec<(u16, u64)> = plan.steps.iter().map(|s| (s.weight, s.hold_s)).collect();
        assert_eq!(
            steps,
            [(50, DEFAULT_HOLD_S), (3000, 600), (10_000, DEFAULT_HOLD_S)]
        );
        assert_eq!(plan.interval_s, DEFAULT_INTERVAL_S);
        assert_eq!(plan.on_failure, OnFailure::Rollback);
        let admin = with(
            "metrics",
            Some(r#"{"envoy_admin": ["http://127.0.0.1:9901", "http://127.0.0.1:9902/"]}"#),
        );
        match parse(&admin).unwrap().metrics {
            Metrics::EnvoyAdmin(urls) => assert_eq!(urls.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse(&with("on_failure", Some("\"pause\"")))
                .unwrap()
                .on_failure,
            OnFailure::Pause
        );
    }

    fn with_removed(text: &str, fields: &[&str]) -> String {
        let mut doc: Value = serde_json::from_str(text).unwrap();
        for f in fields {
            doc.as_object_mut().unwrap().remove(*f);
        }
        doc.to_string()
    }

    #[test]
    fn every_problem_is_named_by_its_field() {
        let text = with(
            "steps",
            Some(r#"[10, 5, {"weight": 140}, {"weight": 60, "hold_s": 0, "x": 1}, 0, 70.123]"#),
        );
        let text = with_removed(&text, &["split"]);
        let mut doc: Value = serde_json::from_str(&text).unwrap();
        doc["interval_s"] = serde_json::json!(2.5);
        doc["on_failure"] = serde_json::json!("retry");
        doc["surprise"] = serde_json::json!(true);
        assert_eq!(
            problems(&doc.to_string()),
            [
                "surprise: unknown field; expected one of config, split, target, steps, hold_s, interval_s, metrics, analysis, on_failure, server",
                "split: is required",
                "interval_s: 2.5 is not a whole number",
                "steps[1]: 5 is not above the step before it (10): steps only ramp up",
                "steps[2].weight: 140 is not between 0 and 100",
                "steps[3].x: unknown field; expected one of weight, hold_s",
                "steps[3].hold_s: 0 is not between 1 and 604800",
                "steps[4]: 0 is not above the step before it (5): steps only ramp up",
                "steps[5]: 70.123 has more than two decimals (the resolution is 0.01 %)",
                "on_failure: \"retry\" is not \"rollback\" or \"pause\"",
            ]
        );
    }

    #[test]
    fn metrics_name_exactly_one_reachable_source() {
        let cases = [
            (r#"{}"#, "metrics: names no source; give one of {\"prometheus\": URL} or {\"envoy_admin\": [URL, …]}"),
            (r#"{"prometheus": "https://p:9090"}"#, "metrics.prometheus: \"https://p:9090\": https:// is not supported; give an http:// address (a local port or a proxy)"),
            (r#"{"envoy_admin": []}"#, "metrics.envoy_admin: [] is not a non-empty array of URLs"),
            (r#"{"envoy_admin": ["http://a:1", 7]}"#, "metrics.envoy_admin[1]: 7 is not a string"),
            (r#"{"graphite": "x"}"#, "metrics.graphite: unknown field; give one of {\"prometheus\": URL} or {\"envoy_admin\": [URL, …]}"),
        ];
        for (metrics, want) in cases {
            let got = problems(&with("metrics", Some(metrics)));
            assert_eq!(
                got.first().map(String::as_str),
                Some(want),
                "{metrics}: {got:?}"
            );
        }
    }

    #[test]
    fn analysis_is_checked_by_the_guard_rules() {
        let got = problems(&with(
            "analysis",
            Some(r#"{"window_s": 30, "max_error_rate": 2, "alpha": 0, "errors": ["5xx", "oops"]}"#),
        ));
        assert_eq!(
            got,
            [
                "analysis.window_s: is not used by a rollout, which judges each step over its whole hold so far",
                "analysis.errors[1]: \"oops\" is not \"4xx\", \"5xx\" or \"reset\"",
                "analysis.max_error_rate: 2 is not between 0 and 1",
                "analysis.alpha: 0 is not above 0",
            ]
        );
        let got = problems(&with("analysis", Some(r#"{"min_requests": 10}"#)));
        assert!(got[0].starts_with("analysis: sets no limit"), "{got:?}");
        let got = problems(&with("analysis", None));
        assert_eq!(got, ["analysis: is required"]);
    }

    #[test]
    fn the_shadow_gates_and_a_shadow_only_step() {
        let text = with("steps", Some("[0, 50]"));
        let gates =
            r#"{"min_requests": 100, "max_mismatch_rate": 0.01, "max_shadow_error_rate": 0.05}"#;
        let plan = parse(&with_value(&text, "analysis", gates)).unwrap();
        assert_eq!(plan.steps[0].weight, 0);
        let want = ShadowGates {
            max_mismatch_rate: Some(0.01),
            max_shadow_error_rate: Some(0.05),
        };
        assert_eq!(plan.gates, want);
        // Gates alone are limits: the guard's are absent, its other
        // fields as given or at their defaults.
        assert_eq!(plan.analysis.max_error_rate, None);
        assert_eq!(plan.analysis.min_requests, 100);
        // Beside the guard's, and checked as they are.
        let mixed =
            r#"{"max_error_rate": 0.01, "max_mismatch_rate": 0, "max_shadow_error_rate": 1.5}"#;
        assert_eq!(
            problems(&with("analysis", Some(mixed))),
            [
                "analysis.max_mismatch_rate: 0 is not above 0",
                "analysis.max_shadow_error_rate: 1.5 is not between 0 and 1",
            ]
        );
        // With no limit at all, the refusal names the gates too.
        let got = problems(&with("analysis", Some(r#"{"min_requests": 10}"#)));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].ends_with("max_mismatch_rate, max_shadow_error_rate"),
            "{got:?}"
        );
        // A gate does not hide the guard's other problems.
        let got = problems(&with(
            "analysis",
            Some(r#"{"max_mismatch_rate": 0.01, "alpha": 0}"#),
        ));
        assert_eq!(got, ["analysis.alpha: 0 is not above 0"]);
        // 0 only first: steps ramp up.
        let got = problems(&with("steps", Some("[0, 0]")));
        assert_eq!(
            got,
            ["steps[1]: 0 is not above the step before it (0): steps only ramp up"]
        );
    }

    fn with_value(text: &str, field: &str, value: &str) -> String {
        let mut doc: Value = serde_json::from_str(text).unwrap();
        doc[field] = serde_json::from_str(value).unwrap();
        doc.to_string()
    }

    #[test]
    fn the_shipped_plan_parses_and_is_the_contract_example() {
        let shipped = include_str!("../../../envoy/rollout-plan.json");
        assert_eq!(parse(shipped), parse(PLAN));
    }
}
