//! Configuration v1 validation: what is accepted, and the message that names
//! the field of everything refused.

use turnout::config::parse;
use turnout::guard::{ErrorClasses, GuardPlan};
use turnout::plan::{Anonymous, KeySource, MatchOn, Mode, Weight};
use turnout::schedule::Step;
use turnout::shadow::{BodyCompare, Segment, ShadowPlan};
use turnout::stats::Class;

fn refused(json: &str) -> String {
    match parse(json.as_bytes()) {
        Ok(_) => panic!("accepted: {json}"),
        Err(e) => e.to_string(),
    }
}

fn split(extra: &str) -> String {
    format!(
        r#"{{"version": 1, "splits": [{{"name": "users", "match": {{"route": "users"}}, "stable": "legacy",
            "targets": [{{"cluster": "fastapi", "weight": 25}}]{extra}}}]}}"#
    )
}

#[test]
fn the_design_example_is_accepted() {
    let plan = parse(
        br#"{
      "version": 1,
      "decision_header": "x-turnout-cluster",
      "user_key": [{"header": "x-user-id"}, {"cookie": "uid"}, {"query": "uid"}],
      "anonymous": "stable",
      "splits": [
        {
          "name": "users",
          "match": {"route": "users"},
          "stable": "legacy",
          "targets": [{"cluster": "fastapi", "weight": 25}],
          "salt": "users",
          "rollback": false,
          "pin": {"fastapi": ["qa-1", "qa-2"]},
          "force_header": "x-turnout-force"
        }
      ]
    }"#,
    )
    .unwrap();
    assert_eq!(plan.decision_header, "x-turnout-cluster");
    assert_eq!(
        plan.user_key,
        vec![
            KeySource::Header("x-user-id".into()),
            KeySource::Cookie("uid".into()),
            KeySource::Query("uid".into())
        ]
    );
    assert_eq!(plan.anonymous, Anonymous::Stable);
    let s = &plan.splits[0];
    assert_eq!(s.clusters, ["legacy", "fastapi"]);
    assert_eq!(s.weights, [Weight::Fixed(2500)]);
    assert_eq!(s.matcher.on, MatchOn::Route("users".into()));
    assert_eq!(s.pins.get(&b"qa-2"[..]), Some(&1));
    assert_eq!(s.force_header.as_deref(), Some("x-turnout-force"));
    assert_eq!(plan.weights_at(0).bounds, vec![vec![2500]]);
}

#[test]
fn empty_config_means_no_splits() {
    for text in ["", "  \n", "{}"] {
        let plan = parse(text.as_bytes()).unwrap();
        assert!(plan.splits.is_empty(), "{text:?}");
        assert_eq!(plan.decision_header, "x-turnout-cluster");
    }
}

#[test]
fn istio_floats_are_numbers() {
    let plan = parse(
        br#"{"version": 1.0, "retry_after_s": 120.0, "splits": [{"name": "a", "match": {"prefix": "/"},
        "stable": "s", "targets": [{"cluster": "t", "weight": 12.5}]}]}"#,
    )
    .unwrap();
    assert_eq!(plan.splits[0].weights, [Weight::Fixed(1250)]);
    assert_eq!(plan.mode.retry_after, "120");
}

#[test]
fn weights_have_basis_point_resolution() {
    let plan = parse(split("").replace("25", "0.01").as_bytes()).unwrap();
    assert_eq!(plan.splits[0].weights, [Weight::Fixed(1)]);
    let plan = parse(split("").replace("25", "99.99").as_bytes()).unwrap();
    assert_eq!(plan.splits[0].weights, [Weight::Fixed(9999)]);
    assert_eq!(
        refused(&split("").replace("25", "12.345")),
        "splits[0].targets[0].weight: 12.345 has more than two decimals (the resolution is 0.01 %)"
    );
}

#[test]
fn out_of_range_weight_names_its_path() {
    let json = r#"{"splits": [{"name": "a", "match": {"route": "a"}, "stable": "s",
        "targets": [{"cluster": "t", "weight": 10}, {"cluster": "u", "weight": 140}]}]}"#;
    assert_eq!(
        refused(json),
        "splits[0].targets[1].weight: 140 is not between 0 and 100"
    );
    assert_eq!(
        refused(&split("").replace("25", "-1")),
        "splits[0].targets[0].weight: -1 is not between 0 and 100"
    );
    assert_eq!(
        refused(&split("").replace("25", "\"25\"")),
        "splits[0].targets[0].weight: \"25\" is not a number"
    );
}

#[test]
fn weights_over_100_in_sum_are_refused() {
    let json = r#"{"splits": [{"name": "a", "match": {"route": "a"}, "stable": "s",
        "targets": [{"cluster": "t", "weight": 60}, {"cluster": "u", "weight": 40.01}]}]}"#;
    assert_eq!(
        refused(json),
        "splits[0].targets: weights add up to 100.01, over 100"
    );
}

#[test]
fn unknown_fields_are_refused_everywhere() {
    assert_eq!(refused(r#"{"versoin": 1}"#), "versoin: unknown field; expected one of version, decision_header, user_key, anonymous, splits, mode, retry_after_s, allow_paths, maintenance_body, trace, debug");
    assert!(refused(&split(r#", "weight": 3"#)).starts_with("splits[0].weight: unknown field"));
    assert!(
        refused(&split("").replace(r#""weight": 25"#, r#""weight": 25, "w": 1"#))
            .starts_with("splits[0].targets[0].w: unknown field")
    );
    assert!(refused(&split("").replace(
        r#"{"route": "users"}"#,
        r#"{"route": "users", "host": "x"}"#
    ))
    .starts_with("splits[0].match.host: unknown field"));
    assert!(refused(r#"{"trace": {"header": "x"}}"#).starts_with("trace.header: unknown field"));
    assert!(refused(r#"{"user_key": [{"header": "a", "cookie": "b"}]}"#)
        .starts_with("user_key[0]: needs exactly one"));
    assert!(refused(r#"{"user_key": [{"param": "a"}]}"#)
        .starts_with("user_key[0].param: unknown field"));
}

#[test]
fn duplicate_split_names_are_refused() {
    let json = r#"{"splits": [
        {"name": "a", "match": {"route": "a"}, "stable": "s", "targets": []},
        {"name": "a", "match": {"route": "b"}, "stable": "s", "targets": []}]}"#;
    assert_eq!(
        refused(json),
        "splits[1].name: \"a\" is used by an earlier split"
    );
}

#[test]
fn targets_may_not_repeat_or_be_stable() {
    let json = r#"{"splits": [{"name": "a", "match": {"route": "a"}, "stable": "s",
        "targets": [{"cluster": "s", "weight": 1}, {"cluster": "t", "weight": 1}, {"cluster": "t", "weight": 1}]}]}"#;
    assert_eq!(
        refused(json),
        "splits[0].targets[0].cluster: \"s\" is the split's stable cluster; \
         splits[0].targets[2].cluster: \"t\" is listed twice"
    );
}

#[test]
fn header_names_are_validated_and_lowercased() {
    assert_eq!(
        refused(r#"{"decision_header": "x turnout"}"#),
        "decision_header: \"x turnout\" is not a valid HTTP header name"
    );
    assert_eq!(
        refused(r#"{"decision_header": ""}"#),
        "decision_header: \"\" is not a valid HTTP header name"
    );
    assert_eq!(
        refused(r#"{"user_key": [{"header": "x-user:id"}]}"#),
        "user_key[0].header: \"x-user:id\" is not a valid HTTP header name"
    );
    assert!(
        refused(&split(r#", "force_header": "bad\nname""#)).starts_with("splits[0].force_header: ")
    );
    let plan =
        parse(br#"{"decision_header": "X-Turnout-Cluster", "user_key": [{"header": "X-User"}]}"#)
            .unwrap();
    assert_eq!(plan.decision_header, "x-turnout-cluster");
    assert_eq!(plan.user_key, vec![KeySource::Header("x-user".into())]);
}

#[test]
fn the_decision_header_cannot_be_read_as_a_key() {
    assert_eq!(
        refused(r#"{"decision_header": "x-user-id"}"#),
        "user_key[0].header: \"x-user-id\" is the decision header"
    );
    assert_eq!(
        refused(&split(r#", "force_header": "x-turnout-cluster""#)),
        "splits[0].force_header: \"x-turnout-cluster\" is the decision header"
    );
}

#[test]
fn pins_name_clusters_of_the_split() {
    assert_eq!(
        refused(&split(r#", "pin": {"other": ["u"]}"#)),
        "splits[0].pin.other: \"other\" is not a cluster of this split"
    );
    assert_eq!(
        refused(&split(r#", "pin": {"legacy": ["u"], "fastapi": ["u"]}"#)),
        "splits[0].pin.legacy[0]: user \"u\" is also pinned to \"fastapi\""
    );
    let plan = parse(split(r#", "pin": {"legacy": ["a"], "fastapi": ["b"]}"#).as_bytes()).unwrap();
    assert_eq!(plan.splits[0].pins.get(&b"a"[..]), Some(&0));
}

#[test]
fn match_needs_one_kind() {
    let with_match = |m: &str| split("").replace(r#"{"route": "users"}"#, m);
    assert_eq!(
        refused(&with_match("{}")),
        "splits[0].match: needs exactly one of \"route\", \"prefix\" or \"path\""
    );
    assert_eq!(
        refused(&with_match(r#"{"route": "a", "path": "/a"}"#)),
        "splits[0].match: needs exactly one of \"route\", \"prefix\" or \"path\""
    );
    assert_eq!(
        refused(&with_match(r#"{"prefix": "api"}"#)),
        "splits[0].match.prefix: \"api\" does not start with '/'"
    );
    assert_eq!(
        refused(&with_match(r#"{"path": "/a", "methods": ["GET", "B AD"]}"#)),
        "splits[0].match.methods[1]: \"B AD\" is not an HTTP method"
    );
    let plan =
        parse(with_match(r#"{"prefix": "/api", "methods": ["get", "POST"]}"#).as_bytes()).unwrap();
    assert_eq!(plan.splits[0].matcher.on, MatchOn::Prefix("/api".into()));
    assert_eq!(plan.splits[0].matcher.methods, ["GET", "POST"]);
}

#[test]
fn required_split_fields() {
    assert_eq!(
        refused(r#"{"splits": [{}]}"#),
        "splits[0].name: is required; splits[0].match: is required; splits[0].stable: is required; splits[0].targets: is required"
    );
}

#[test]
fn schedules_parse_and_must_be_in_time_order() {
    let sched =
        |steps: &str| split("").replace(r#""weight": 25"#, &format!(r#""schedule": {steps}"#));
    let plan = parse(
        sched(r#"[{"at": "2026-12-01T09:00:00Z", "weight": 5}, {"at": "2026-12-02T09:00:00Z", "weight": 25}]"#)
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        plan.splits[0].weights,
        [Weight::Schedule(vec![
            Step {
                at: 1_796_115_600,
                weight: 500
            },
            Step {
                at: 1_796_202_000,
                weight: 2500
            }
        ])]
    );
    assert!(plan.has_schedules());
    assert_eq!(plan.weights_at(0).bounds, vec![vec![0]]);
    assert_eq!(plan.weights_at(1_796_115_600).bounds, vec![vec![500]]);
    assert_eq!(
        refused(&sched(r#"[{"at": "2026-12-02T09:00:00Z", "weight": 5}, {"at": "2026-12-01T09:00:00Z", "weight": 25}]"#)),
        "splits[0].targets[0].schedule[1].at: is not after the previous step's time; steps go in time order"
    );
    assert_eq!(
        refused(&sched(r#"[{"at": "tomorrow", "weight": 5}]"#)),
        "splits[0].targets[0].schedule[0].at: \"tomorrow\" is not an RFC 3339 date-time such as 2026-12-01T09:00:00Z"
    );
    assert_eq!(
        refused(&sched("[]")),
        "splits[0].targets[0].schedule: is empty; give at least one step"
    );
    assert_eq!(
        refused(&split("").replace(r#""weight": 25"#, r#""weight": 25, "schedule": []"#)),
        "splits[0].targets[0]: has both \"weight\" and \"schedule\"; give one"
    );
}

#[test]
fn schedules_may_not_add_up_past_100_at_any_step() {
    let json = r#"{"splits": [{"name": "a", "match": {"route": "a"}, "stable": "s", "targets": [
        {"cluster": "t", "weight": 50},
        {"cluster": "u", "schedule": [{"at": "2026-12-01T00:00:00Z", "weight": 10}, {"at": "2026-12-02T00:00:00Z", "weight": 60}]}]}]}"#;
    assert_eq!(
        refused(json),
        "splits[0].targets: weights add up to 110 at the step of 1796169600 (Unix time), over 100"
    );
}

#[test]
fn the_design_guard_is_accepted() {
    let plan = parse(
        split(
            r#", "guard": {"window_s": 30, "min_requests": 50, "errors": ["5xx", "reset"], "max_error_rate": 0.01,
            "max_p99_ms": 500, "max_p95_ratio": 2.0, "max_error_ratio": 2.0, "alpha": 0.001}"#,
        )
        .as_bytes(),
    )
    .unwrap();
    let guard = plan.splits[0].guard.unwrap();
    assert_eq!(guard.window_s, 30);
    assert_eq!(guard.min_requests, 50);
    assert_eq!(guard.errors, ErrorClasses::DEFAULT);
    assert_eq!(guard.max_error_rate, Some(0.01));
    assert_eq!(guard.max_p99_ms, Some(500.0));
    assert_eq!(guard.max_p95_ratio, Some(2.0));
    assert_eq!(guard.max_error_ratio, Some(2.0));
    assert_eq!(guard.alpha, 0.001);
    // No guard, no judging.
    assert_eq!(parse(split("").as_bytes()).unwrap().splits[0].guard, None);
}

#[test]
fn guard_fields_default_and_an_absent_limit_is_not_judged() {
    let plan = parse(split(r#", "guard": {"max_error_rate": 0.05}"#).as_bytes()).unwrap();
    assert_eq!(
        plan.splits[0].guard,
        Some(GuardPlan {
            max_error_rate: Some(0.05),
            ..GuardPlan::default()
        })
    );
    let d = GuardPlan::default();
    assert_eq!((d.window_s, d.min_requests, d.alpha), (30, 50, 0.001));
    assert_eq!(
        (
            d.max_error_rate,
            d.max_p99_ms,
            d.max_p95_ratio,
            d.max_error_ratio
        ),
        (None, None, None, None)
    );
}

#[test]
fn guard_numbers_may_be_istio_floats() {
    let plan = parse(
        split(r#", "guard": {"window_s": 30.0, "min_requests": 20.0, "max_p99_ms": 250.5, "errors": ["4xx"]}"#)
            .as_bytes(),
    )
    .unwrap();
    let guard = plan.splits[0].guard.unwrap();
    assert_eq!((guard.window_s, guard.min_requests), (30, 20));
    assert_eq!(guard.max_p99_ms, Some(250.5));
    assert!(guard.errors.contains(Class::ClientError));
    assert!(!guard.errors.contains(Class::ServerError));
}

#[test]
fn guard_fields_out_of_range_name_their_path() {
    let cases = [
        (r#""alpha": 2, "max_error_ratio": 2"#, "splits[0].guard.alpha: 2 is not between 0 and 0.5"),
        (r#""alpha": 0, "max_error_ratio": 2"#, "splits[0].guard.alpha: 0 is not above 0"),
        (r#""window_s": 0, "max_error_rate": 0.1"#, "splits[0].guard.window_s: 0 is not between 1 and 3600"),
        (r#""window_s": 3601, "max_error_rate": 0.1"#, "splits[0].guard.window_s: 3601 is not between 1 and 3600"),
        (r#""window_s": 2.5, "max_error_rate": 0.1"#, "splits[0].guard.window_s: 2.5 is not a whole number"),
        (r#""min_requests": 0, "max_error_rate": 0.1"#, "splits[0].guard.min_requests: 0 is not between 1 and 1000000000"),
        (r#""max_error_rate": 1.5"#, "splits[0].guard.max_error_rate: 1.5 is not between 0 and 1"),
        (r#""max_error_rate": 0"#, "splits[0].guard.max_error_rate: 0 is not above 0"),
        (r#""max_error_rate": "1%""#, "splits[0].guard.max_error_rate: \"1%\" is not a number"),
        (r#""max_p99_ms": -5"#, "splits[0].guard.max_p99_ms: -5 is not above 0"),
        (r#""max_p95_ratio": 0.0"#, "splits[0].guard.max_p95_ratio: 0.0 is not above 0"),
        (r#""max_error_ratio": 1001"#, "splits[0].guard.max_error_ratio: 1001 is not between 0 and 1000"),
        (r#""errors": [], "max_error_rate": 0.1"#, "splits[0].guard.errors: is empty; give at least one of \"4xx\", \"5xx\", \"reset\""),
        (r#""errors": ["5xx", "2xx"], "max_error_rate": 0.1"#, "splits[0].guard.errors[1]: \"2xx\" is not \"4xx\", \"5xx\" or \"reset\""),
        (r#""errors": ["reset", "reset"], "max_error_rate": 0.1"#, "splits[0].guard.errors[1]: \"reset\" is listed twice"),
        (r#""errors": "5xx", "max_error_rate": 0.1"#, "splits[0].guard.errors: \"5xx\" is not an array"),
        (r#""max_error_rate": 0.1, "max_latency": 5"#, "splits[0].guard.max_latency: unknown field; expected one of window_s, min_requests, errors, max_error_rate, max_p99_ms, max_p95_ratio, max_error_ratio, alpha"),
    ];
    for (fields, expected) in cases {
        assert_eq!(
            refused(&split(&format!(r#", "guard": {{{fields}}}"#))),
            expected,
            "{fields}"
        );
    }
}

#[test]
fn a_guard_that_judges_nothing_is_refused() {
    for guard in [
        r#"{}"#,
        r#"{"window_s": 10, "alpha": 0.01, "errors": ["5xx"]}"#,
    ] {
        assert_eq!(
            refused(&split(&format!(r#", "guard": {guard}"#))),
            "splits[0].guard: sets no limit, so it would judge nothing; give at least one of max_error_rate, max_p99_ms, max_p95_ratio, max_error_ratio",
            "{guard}"
        );
    }
    assert_eq!(
        refused(&split(r#", "guard": null"#)),
        "splits[0].guard: null is not an object"
    );
}

#[test]
fn every_problem_of_a_guard_is_reported_at_once() {
    let message = refused(&split(
        r#", "guard": {"window_s": 0, "max_error_rate": 2, "alpha": 1, "errors": ["2xx"]}"#,
    ));
    for field in ["window_s", "max_error_rate", "alpha", "errors[0]"] {
        assert!(
            message.contains(&format!("splits[0].guard.{field}: ")),
            "{field}: {message}"
        );
    }
}

#[test]
fn modes_inherit_field_by_field() {
    let plan = parse(
        br#"{"mode": "maintenance", "retry_after_s": 120, "allow_paths": ["/healthz"], "maintenance_body": "down",
        "splits": [{"name": "a", "match": {"route": "a"}, "stable": "s", "targets": [], "mode": "read_only"},
                   {"name": "b", "match": {"route": "b"}, "stable": "s", "targets": [], "retry_after_s": 5}]}"#,
    )
    .unwrap();
    assert_eq!(plan.mode.mode, Mode::Maintenance);
    assert_eq!(plan.mode.maintenance_body, "down");
    assert_eq!(plan.splits[0].mode.mode, Mode::ReadOnly);
    assert_eq!(plan.splits[0].mode.retry_after, "120");
    assert!(plan.splits[0]
        .mode
        .read_only_body
        .contains(r#""split":"a""#));
    assert_eq!(plan.splits[1].mode.mode, Mode::Maintenance);
    assert_eq!(plan.splits[1].mode.retry_after, "5");
    assert_eq!(plan.splits[1].mode.allow_paths, ["/healthz"]);
    assert_eq!(
        refused(r#"{"mode": "off"}"#),
        "mode: \"off\" is not \"normal\", \"read_only\" or \"maintenance\""
    );
    assert_eq!(
        refused(r#"{"retry_after_s": 1.5}"#),
        "retry_after_s: 1.5 is not a whole number"
    );
}

#[test]
fn other_scalar_fields() {
    assert_eq!(
        refused(r#"{"version": 2}"#),
        "version: 2 is not supported; this filter reads version 1"
    );
    assert_eq!(
        refused(r#"{"anonymous": "sticky"}"#),
        "anonymous: \"sticky\" is not \"stable\" or \"random\""
    );
    assert_eq!(
        refused(r#"{"debug": "yes"}"#),
        "debug: \"yes\" is not true or false"
    );
    assert_eq!(refused(r#"[]"#), "the configuration [] is not an object");
    assert!(refused(r#"{"splits": "#).starts_with("not valid JSON: "));
    let plan = parse(br#"{"anonymous": "random", "debug": true, "trace": {"response_header": "X-Trace", "tracestate": true}}"#).unwrap();
    assert_eq!(plan.anonymous, Anonymous::Random);
    assert!(plan.debug);
    assert_eq!(plan.trace.response_header, "x-trace");
    assert!(plan.trace.tracestate);
}

#[test]
fn cluster_and_split_names_must_be_header_safe() {
    assert_eq!(
        refused(&split("").replace("\"legacy\"", "\"le gacy\"")),
        "splits[0].stable: \"le gacy\" is not a cluster name (visible ASCII, no spaces)"
    );
    assert!(
        refused(&split("").replace("\"name\": \"users\"", "\"name\": \"a;b\""))
            .starts_with("splits[0].name: \"a;b\" is not a split name")
    );
    let plan = parse(
        split("")
            .replace(
                "\"fastapi\"",
                "\"outbound|80||reviews.default.svc.cluster.local\"",
            )
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        plan.splits[0].clusters[1],
        "outbound|80||reviews.default.svc.cluster.local"
    );
}

#[test]
fn validation_is_deterministic() {
    let json = split(r#", "pin": {"legacy": ["a", "b"], "fastapi": ["c"]}, "mode": "bogus""#);
    let first = refused(&json);
    for _ in 0..20 {
        assert_eq!(refused(&json), first);
    }
}

#[test]
fn a_refused_weight_does_not_also_refuse_the_pins_of_its_cluster() {
    assert_eq!(
        refused(&split(r#", "pin": {"fastapi": ["qa-1"]}"#).replace("25", "140")),
        "splits[0].targets[0].weight: 140 is not between 0 and 100"
    );
}

#[test]
fn a_split_is_fingerprinted_by_its_own_json_not_its_layout() {
    let fp = |json: &str| -> Vec<u64> {
        parse(json.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"))
            .splits
            .iter()
            .map(|s| s.fingerprint)
            .collect()
    };
    let base = fp(r#"{"splits": [
        {"name": "a", "match": {"route": "a"}, "stable": "s", "targets": [{"cluster": "t", "weight": 5}]},
        {"name": "b", "match": {"route": "b"}, "stable": "s", "targets": []}]}"#);
    // Key order and spaces do not matter; other fields of the document do not either.
    let relaid = fp(r#"{"debug": true, "splits": [
        {"targets":[{"weight":5,"cluster":"t"}],"stable":"s","match":{"route":"a"},"name":"a"},
        {"name": "b", "match": {"route": "b"}, "stable": "s", "targets": []}]}"#);
    assert_eq!(base, relaid);
    // A change to a split changes its fingerprint only.
    let ramped = fp(r#"{"splits": [
        {"name": "a", "match": {"route": "a"}, "stable": "s", "targets": [{"cluster": "t", "weight": 6}]},
        {"name": "b", "match": {"route": "b"}, "stable": "s", "targets": []}]}"#);
    assert_ne!(base[0], ramped[0]);
    assert_eq!(base[1], ramped[1]);
    assert_ne!(base[0], base[1]);
}

fn shadow(json: &str) -> String {
    split(&format!(r#", "shadow": {json}"#))
}

#[test]
fn the_design_shadow_is_accepted() {
    let plan = parse(
        shadow(
            r#"{"cluster": "fastapi", "percent": 100, "methods": ["GET","HEAD"], "writes": false,
            "timeout_ms": 2000, "max_body_bytes": 1048576, "max_in_flight": 256,
            "compare": {"status": true, "headers": ["content-type"], "body": "json",
                        "ignore": ["/request_id", "/items/*/updated_at"]},
            "noise": false, "max_error_rate": 0.05, "window_s": 60, "min_requests": 50}"#,
        )
        .as_bytes(),
    )
    .unwrap();
    let s = plan.splits[0].shadow.clone().unwrap();
    let ignore: Vec<&str> = s.compare.ignore.iter().map(|p| p.as_str()).collect();
    assert_eq!(ignore, ["/request_id", "/items/*/updated_at"]);
    assert_eq!(s.compare.ignore[1].segments()[1], Segment::Any);
    // Every value written is the default.
    let mut defaults = ShadowPlan::new("fastapi");
    defaults.compare.ignore = s.compare.ignore.clone();
    assert_eq!(s, defaults);
    assert_eq!(
        (
            s.percent,
            s.methods.as_slice(),
            s.timeout_ms,
            s.max_body_bytes,
            s.max_in_flight
        ),
        (
            10_000,
            &["GET".to_string(), "HEAD".to_string()][..],
            2000,
            1_048_576,
            256
        )
    );
    assert_eq!(
        (s.window_s, s.min_requests, s.max_error_rate),
        (60, 50, 0.05)
    );
    assert_eq!(s.compare.headers, ["content-type"]);
    assert_eq!(s.compare.body, BodyCompare::Json);
    assert!(s.compare.status && !s.noise && !s.writes);
    // Only the cluster is required; a split without a shadow has none.
    let plan = parse(shadow(r#"{"cluster": "fastapi"}"#).as_bytes()).unwrap();
    assert_eq!(plan.splits[0].shadow, Some(ShadowPlan::new("fastapi")));
    assert_eq!(parse(split("").as_bytes()).unwrap().splits[0].shadow, None);
}

#[test]
fn shadow_numbers_may_be_istio_floats_and_percents_have_two_decimals() {
    let plan = parse(
        shadow(
            r#"{"cluster": "mirror", "percent": 12.5, "timeout_ms": 500.0, "max_body_bytes": 0.0,
            "max_in_flight": 8.0, "window_s": 30.0, "min_requests": 10.0, "max_error_rate": 1.0,
            "methods": ["get", "Options"], "noise": true,
            "compare": {"status": false, "headers": ["X-Version", "ETag"], "body": "bytes"}}"#,
        )
        .as_bytes(),
    )
    .unwrap();
    let s = plan.splits[0].shadow.as_ref().unwrap();
    assert_eq!(
        (s.percent, s.timeout_ms, s.max_body_bytes, s.max_in_flight),
        (1250, 500, 0, 8)
    );
    assert_eq!(
        (s.window_s, s.min_requests, s.max_error_rate),
        (30, 10, 1.0)
    );
    assert_eq!(s.methods, ["GET", "OPTIONS"]);
    assert_eq!(s.compare.headers, ["x-version", "etag"]);
    assert_eq!(
        (s.compare.status, s.compare.body, s.noise),
        (false, BodyCompare::Bytes, true)
    );
    assert_eq!(
        parse(shadow(r#"{"cluster": "f", "percent": 0.01}"#).as_bytes())
            .unwrap()
            .splits[0]
            .shadow
            .as_ref()
            .unwrap()
            .percent,
        1
    );
    assert_eq!(
        refused(&shadow(r#"{"cluster": "f", "percent": 100.001}"#)),
        "splits[0].shadow.percent: 100.001 is not between 0 and 100"
    );
    assert_eq!(
        refused(&shadow(r#"{"cluster": "f", "percent": 12.345}"#)),
        "splits[0].shadow.percent: 12.345 has more than two decimals (the resolution is 0.01 %)"
    );
}

#[test]
fn copying_writes_needs_writes_true() {
    assert_eq!(
        refused(&shadow(r#"{"cluster": "fastapi", "methods": ["GET", "POST"]}"#)),
        "splits[0].shadow.methods[1]: \"POST\" has side effects: its copies would write on the new \
         side too (dual writes); set \"writes\": true to copy it, or copy only GET, HEAD, OPTIONS"
    );
    for method in ["PUT", "patch", "DELETE", "TRACE", "PURGE"] {
        let json = format!(r#"{{"cluster": "f", "methods": ["{method}"], "writes": false}}"#);
        assert!(
            refused(&shadow(&json)).starts_with("splits[0].shadow.methods[0]: "),
            "{method}"
        );
    }
    let plan = parse(
        shadow(r#"{"cluster": "f", "methods": ["GET", "POST", "DELETE"], "writes": true}"#)
            .as_bytes(),
    )
    .unwrap();
    let s = plan.splits[0].shadow.as_ref().unwrap();
    assert_eq!((s.methods.len(), s.writes), (3, true));
}

#[test]
fn shadow_refusals_name_their_fields() {
    let cases = [
        (r#"{"percent": 5}"#, "splits[0].shadow.cluster: is required"),
        (r#"{"cluster": "legacy"}"#, "splits[0].shadow.cluster: \"legacy\" is the split's stable cluster; copies go to another"),
        (r#"{"cluster": "f", "mirror": true}"#, "splits[0].shadow.mirror: unknown field; expected one of cluster, percent, methods, writes, timeout_ms, max_body_bytes, max_in_flight, compare, noise, max_error_rate, window_s, min_requests"),
        (r#"{"cluster": "f", "compare": {"json": true}}"#, "splits[0].shadow.compare.json: unknown field; expected one of status, headers, body, ignore"),
        (r#"{"cluster": "f", "compare": {"ignore": ["request_id"]}}"#, "splits[0].shadow.compare.ignore[0]: \"request_id\" does not start with '/' (a JSON pointer, RFC 6901)"),
        (r#"{"cluster": "f", "compare": {"ignore": ["/a~2b"]}}"#, "splits[0].shadow.compare.ignore[0]: \"/a~2b\" has \"a~2b\", where '~' is not followed by 0 or 1 (write '~0' for '~', '~1' for '/')"),
        (r#"{"cluster": "f", "compare": {"ignore": [""]}}"#, "splits[0].shadow.compare.ignore[0]: \"\" is the whole body; to leave the body out, set \"body\": \"none\""),
        (r#"{"cluster": "f", "compare": {"ignore": ["/a", "/a"]}}"#, "splits[0].shadow.compare.ignore[1]: \"/a\" is listed twice"),
        (r#"{"cluster": "f", "compare": {"body": "bytes", "ignore": ["/a"]}}"#, "splits[0].shadow.compare.ignore: applies to \"body\": \"json\" only; with \"bytes\" it would ignore nothing"),
        (r#"{"cluster": "f", "compare": {"body": "xml"}}"#, "splits[0].shadow.compare.body: \"xml\" is not \"json\", \"bytes\" or \"none\""),
        (r#"{"cluster": "f", "compare": {"headers": ["content type"]}}"#, "splits[0].shadow.compare.headers[0]: \"content type\" is not a valid HTTP header name"),
        (r#"{"cluster": "f", "compare": {"headers": ["ETag", "etag"]}}"#, "splits[0].shadow.compare.headers[1]: \"etag\" is listed twice"),
        (r#"{"cluster": "f", "methods": []}"#, "splits[0].shadow.methods: is empty; give at least one method, or set \"percent\" to 0"),
        (r#"{"cluster": "f", "methods": ["GET", "get"]}"#, "splits[0].shadow.methods[1]: \"get\" is listed twice"),
        (r#"{"cluster": "f", "methods": ["G T"]}"#, "splits[0].shadow.methods[0]: \"G T\" is not an HTTP method"),
        (r#"{"cluster": "f", "timeout_ms": 0}"#, "splits[0].shadow.timeout_ms: 0 is not between 1 and 60000"),
        (r#"{"cluster": "f", "max_body_bytes": 16777217}"#, "splits[0].shadow.max_body_bytes: 16777217 is not between 0 and 16777216"),
        (r#"{"cluster": "f", "max_in_flight": 0}"#, "splits[0].shadow.max_in_flight: 0 is not between 1 and 10000"),
        (r#"{"cluster": "f", "window_s": 3601}"#, "splits[0].shadow.window_s: 3601 is not between 1 and 3600"),
        (r#"{"cluster": "f", "min_requests": 0}"#, "splits[0].shadow.min_requests: 0 is not between 1 and 1000000000"),
        (r#"{"cluster": "f", "max_error_rate": 0}"#, "splits[0].shadow.max_error_rate: 0 is not above 0"),
        (r#"{"cluster": "f", "max_error_rate": 1.5}"#, "splits[0].shadow.max_error_rate: 1.5 is not between 0 and 1"),
        (r#"{"cluster": "f", "writes": "yes"}"#, "splits[0].shadow.writes: \"yes\" is not true or false"),
        (r#"["fastapi"]"#, "splits[0].shadow: [\"fastapi\"] is not an object"),
    ];
    for (json, message) in cases {
        assert_eq!(refused(&shadow(json)), message, "{json}");
    }
    let many: Vec<String> = (0..65).map(|i| format!("\"/f{i}\"")).collect();
    let json = format!(
        r#"{{"cluster": "f", "compare": {{"ignore": [{}]}}}}"#,
        many.join(",")
    );
    assert_eq!(
        refused(&shadow(&json)),
        "splits[0].shadow.compare.ignore: has 65 pointers, over 64"
    );
    // All of a shadow's problems at once.
    assert_eq!(
        refused(&shadow(
            r#"{"cluster": "f", "timeout_ms": -1, "noise": 1, "compare": {"body": 2}}"#
        )),
        "splits[0].shadow.noise: 1 is not true or false; \
         splits[0].shadow.timeout_ms: -1 is not a whole number; \
         splits[0].shadow.compare.body: 2 is not a string"
    );
}

#[test]
fn a_changed_shadow_is_a_changed_split() {
    let fp = |json: &str| parse(json.as_bytes()).unwrap().splits[0].fingerprint;
    let base = fp(&shadow(r#"{"cluster": "fastapi", "percent": 10}"#));
    assert_eq!(base, fp(&shadow(r#"{"percent":10,"cluster":"fastapi"}"#)));
    assert_ne!(
        base,
        fp(&shadow(r#"{"cluster": "fastapi", "percent": 20}"#))
    );
    assert_ne!(base, fp(&split("")));
}
