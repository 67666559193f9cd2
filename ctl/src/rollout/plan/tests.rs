//! The plan's checks: the contract's example, defaults, every refusal named
//! by its field, the shadow's gates and the shadow-only step.

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
    let mixed = r#"{"max_error_rate": 0.01, "max_mismatch_rate": 0, "max_shadow_error_rate": 1.5}"#;
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
    let shipped = include_str!("../../../../envoy/rollout-plan.json");
    assert_eq!(parse(shipped), parse(PLAN));
}
