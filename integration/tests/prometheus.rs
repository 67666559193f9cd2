//! The monitoring that ships with turnout: `envoy/prometheus-rules.yaml`
//! (checked and unit-tested with `promtool`), `envoy/grafana-dashboard.json`
//! (valid, and reading only the contract's series and the recording rules),
//! and both against the real thing: a Prometheus on 127.0.0.1 scraping a
//! real Envoy with the filter, after known traffic.
//!
//! promtool and prometheus come from Debian's `prometheus` package, which
//! the harness installs once when they are missing (see
//! `integration::prometheus`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use integration::prometheus::{run_promtool, scrape_config, Prometheus, Sample};
use integration::stage::{served_by, Stage};
use integration::workspace_root;
use integration::Build;
use serde_json::Value;

const RULES: &str = "envoy/prometheus-rules.yaml";
const RULES_TEST: &str = "envoy/prometheus-rules.test.yaml";
const DASHBOARD: &str = "envoy/grafana-dashboard.json";

/// The series of the stats contract, as Prometheus names them.
const CONTRACT_SERIES: [&str; 7] = [
    "turnout_requests_total",
    "turnout_responses_total",
    "turnout_latency_ms_bucket",
    "turnout_latency_ms_sum",
    "turnout_latency_ms_count",
    "turnout_guard_tripped",
    "turnout_rejected_total",
];

fn promtool_ok(args: &[&str]) -> String {
    let out = run_promtool(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn rules_pass_promtool_check() {
    let out = promtool_ok(&["check", "rules", RULES]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// Each alert fires when it should and stays silent when it should not,
/// on synthetic series (see the cases in the test file).
#[test]
fn rules_pass_their_unit_tests() {
    let out = promtool_ok(&["test", "rules", RULES_TEST]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The names the recording rules define.
fn recorded_names() -> BTreeSet<String> {
    let rules = fs::read_to_string(workspace_root().join(RULES)).expect("read the rules");
    let names: BTreeSet<String> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record:"))
        .map(|n| n.trim().to_string())
        .collect();
    assert!(names.len() >= 10, "{names:?}");
    names
}

fn dashboard() -> Value {
    let text = fs::read_to_string(workspace_root().join(DASHBOARD)).expect("read the dashboard");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD} is not valid JSON: {e}"))
}

/// Every `expr` in the dashboard's panels (rows' nested panels too).
fn dashboard_exprs(dash: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr", Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// The identifiers of a PromQL expression, string literals and Grafana
/// variables (`$split`, `$__rate_interval`) left out.
fn identifiers(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                // A string literal: skip to its closing quote.
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '$' => {
                while chars
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    chars.next();
                }
            }
            '[' => {
                // A range: [5m], [$__rate_interval].
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let mut id = c.to_string();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                        id.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(id);
            }
            _ => {}
        }
    }
    out
}

/// The dashboard is valid JSON of the expected shape, and every query in it
/// reads only the contract's series and the recording rules.
#[test]
fn dashboard_reads_only_contract_series_and_recording_rules() {
    let dash = dashboard();
    assert_eq!(dash["schemaVersion"], 39);
    assert_eq!(dash["uid"], "turnout");
    let vars = dash["templating"]["list"].as_array().expect("variables");
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no variable {name}"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    let split = var("split");
    assert_eq!(split["type"], "query");
    assert_eq!(
        split["definition"],
        "label_values(turnout_requests_total, split)"
    );
    assert_eq!(
        split["query"]["query"],
        "label_values(turnout_requests_total, split)"
    );

    let mut allowed: BTreeSet<String> = recorded_names();
    allowed.extend(CONTRACT_SERIES.iter().map(|s| s.to_string()));
    // PromQL words and the contract's labels.
    let words = [
        "sum",
        "min",
        "max",
        "by",
        "on",
        "group_left",
        "rate",
        "split",
        "cluster",
        "reason",
        "class",
        "mode",
        "le",
    ];
    let exprs = dashboard_exprs(&dash);
    assert!(exprs.len() >= 9, "{exprs:?}");
    let mut series_used = BTreeSet::new();
    for expr in &exprs {
        assert!(
            expr.contains("$split"),
            "{expr}: not filtered by the split variable"
        );
        for id in identifiers(expr) {
            if allowed.contains(&id) {
                series_used.insert(id);
            } else {
                assert!(
                    words.contains(&id.as_str()),
                    "{expr}: {id} is neither a contract series, a recording rule nor a known PromQL word"
                );
            }
        }
    }
    // Every panel the brief asks for has its series.
    for needed in [
        "turnout_requests_total",
        "turnout_responses_total",
        "turnout_guard_tripped",
        "turnout_rejected_total",
        "split_cluster:turnout_error_ratio:rate5m",
        "split_cluster:turnout_latency_ms:p50_5m",
        "split_cluster:turnout_latency_ms:p95_5m",
        "split_cluster:turnout_latency_ms:p99_5m",
    ] {
        assert!(series_used.contains(needed), "no panel reads {needed}");
    }
}

#[test]
fn identifiers_skip_strings_variables_and_ranges() {
    assert_eq!(
        identifiers(
            r#"sum by (split) (rate(x_total{split=~"$split|a b"}[$__rate_interval])) / on (split) group_left y:z:w"#
        ),
        [
            "sum",
            "by",
            "split",
            "rate",
            "x_total",
            "split",
            "on",
            "split",
            "group_left",
            "y:z:w"
        ]
    );
}

/// One split, `users`: every keyed user goes to `fastapi` (weight 100,
/// reason `bucket`), every keyless request to `legacy` (reason `anonymous`).
const CONFIG: &str = r#"{"version": 1, "splits": [{"name": "users", "match": {"route": "users"},
    "stable": "legacy", "targets": [{"cluster": "fastapi", "weight": 100}]}]}"#;

/// The traffic sent: canary requests, of which `CANARY_5XX` answered 503 by
/// the upstream and `CANARY_SLOW` delayed 60 ms; stable (keyless) requests,
/// of which `STABLE_5XX` answered 503.
const CANARY: u64 = 400;
const CANARY_5XX: u64 = 40;
const CANARY_SLOW: u64 = 10;
const STABLE: u64 = 100;
const STABLE_5XX: u64 = 5;

const WAIT: Duration = Duration::from_secs(20);

/// Samples by one label's value; panics on a duplicate.
fn by(samples: &[Sample], label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in samples {
        let key = s.label(label).unwrap_or_default().to_string();
        assert!(
            out.insert(key, s.value).is_none(),
            "two samples for {label}: {samples:#?}"
        );
    }
    out
}

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// The time of the last evaluation of rule group `group` (RFC 3339 text).
fn last_evaluation(prom: &Prometheus, group: &str) -> String {
    let rules = prom.api("/api/v1/rules");
    let groups = rules["data"]["groups"].as_array().expect("rule groups");
    let g = groups
        .iter()
        .find(|g| g["name"] == group)
        .unwrap_or_else(|| panic!("no rule group {group}: {rules}"));
    g["lastEvaluation"].as_str().unwrap_or_default().to_string()
}

/// Waits until rule group `group` has run an evaluation that started after
/// this call: its last evaluation time (set when a run ends, to the time it
/// started) changes twice, since the first change may be a run already
/// going on.
fn wait_for_evaluation_after_now(prom: &Prometheus, group: &str) {
    let mut seen = last_evaluation(prom, group);
    for _ in 0..2 {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let now = last_evaluation(prom, group);
            if now != seen {
                seen = now;
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "rule group {group} not evaluated in {WAIT:?}:\n{}",
                prom.tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A real Prometheus scrapes a real Envoy (the stage's admin
/// `/stats/prometheus`) every second and evaluates the shipped rules every
/// second. After known traffic: the raw counters equal what was sent, the
/// recording rules give the expected series, labels and values, the canary
/// error alert is pending for the canary only (the stable cluster also has
/// errors, but is under the traffic floor), no rule failed to evaluate, and
/// every dashboard query runs and returns data.
fn prometheus_evaluates_the_rules_on_real_envoy_stats(build: Build) {
    let stage = Stage::inline_with(build, CONFIG, 2);
    let rules: PathBuf = workspace_root().join(RULES);
    let prom = Prometheus::start(&scrape_config(
        stage.envoy.admin_port(),
        "/stats/prometheus",
        &[rules],
        Duration::from_secs(1),
    ));

    // Scraped before any traffic: every (cluster, reason) series exists at
    // 0, so rates start from a zero sample.
    let before = prom.wait_for(r#"turnout_requests_total{split="users"}"#, WAIT, |s| {
        s.len() == 12
    });
    assert!(before.iter().all(|s| s.value == 0.0), "{before:#?}");
    let s = &before[0];
    assert_eq!(s.label("job"), Some("envoy"), "{s:?}");
    assert_eq!(
        s.label("instance"),
        Some(format!("127.0.0.1:{}", stage.envoy.admin_port()).as_str())
    );

    let mut client = stage.client();
    for i in 0..CANARY {
        let user = format!("user-{i}");
        let mut headers = vec![("x-user-id", user.as_str())];
        let fail = i % (CANARY / CANARY_5XX) == 0;
        let slow = i % (CANARY / CANARY_SLOW) == 1;
        if fail {
            headers.push(("x-test-status", "503"));
        }
        if slow {
            headers.push(("x-test-delay-ms", "60"));
        }
        let r = client.get("/users", &headers);
        assert_eq!(served_by(&r).as_deref(), Some("fastapi"), "{r:?}");
        assert_eq!(r.status, if fail { 503 } else { 200 }, "{r:?}");
    }
    for i in 0..STABLE {
        let fail = i % (STABLE / STABLE_5XX) == 0;
        let headers: &[(&str, &str)] = if fail {
            &[("x-test-status", "503")]
        } else {
            &[]
        };
        let r = client.get("/users", headers);
        assert_eq!(served_by(&r).as_deref(), Some("legacy"), "{r:?}");
        assert_eq!(r.status, if fail { 503 } else { 200 }, "{r:?}");
    }

    // The raw counters, once scraped, are exactly what was sent.
    let requests = prom.wait_for(r#"turnout_requests_total{split="users"}"#, WAIT, |s| {
        s.iter().map(|s| s.value).sum::<f64>() == (CANARY + STABLE) as f64
    });
    for s in &requests {
        let expected = match (s.label("cluster"), s.label("reason")) {
            (Some("fastapi"), Some("bucket")) => CANARY,
            (Some("legacy"), Some("anonymous")) => STABLE,
            _ => 0,
        };
        assert_eq!(s.value, expected as f64, "{s:?}");
    }
    let responses = prom.wait_for(r#"turnout_responses_total{split="users"}"#, WAIT, |s| {
        s.iter().map(|s| s.value).sum::<f64>() == (CANARY + STABLE) as f64
    });
    assert_eq!(responses.len(), 10, "{responses:#?}");
    for s in &responses {
        let expected = match (s.label("cluster"), s.label("class")) {
            (Some("fastapi"), Some("2xx")) => CANARY - CANARY_5XX,
            (Some("fastapi"), Some("5xx")) => CANARY_5XX,
            (Some("legacy"), Some("2xx")) => STABLE - STABLE_5XX,
            (Some("legacy"), Some("5xx")) => STABLE_5XX,
            _ => 0,
        };
        assert_eq!(s.value, expected as f64, "{s:?}");
    }
    // Histograms reach Envoy's admin at the next stats flush (1 s).
    prom.wait_for(r#"turnout_latency_ms_count{split="users"}"#, WAIT, |s| {
        let c = by(s, "cluster");
        c.get("fastapi") == Some(&(CANARY as f64)) && c.get("legacy") == Some(&(STABLE as f64))
    });

    // The recording rules: one series per (split, cluster), summed over
    // proxies (no instance or job label). Every counter started from a
    // sample of 0 at the same scrapes, so the ratios are exact.
    let errors = prom.wait_for("split_cluster:turnout_error_ratio:rate5m", WAIT, |s| {
        let c = by(s, "cluster");
        s.len() == 2
            && c.get("fastapi").is_some_and(|v| near(*v, 0.1))
            && c.get("legacy").is_some_and(|v| near(*v, 0.05))
    });
    for s in &errors {
        let names: Vec<&str> = s.labels.keys().map(String::as_str).collect();
        assert_eq!(names, ["__name__", "cluster", "split"], "{s:?}");
        assert_eq!(s.label("split"), Some("users"));
    }
    prom.wait_for("split_cluster:turnout_requests:share5m", WAIT, |s| {
        let c = by(s, "cluster");
        s.len() == 2
            && c.get("fastapi").is_some_and(|v| near(*v, 0.8))
            && c.get("legacy").is_some_and(|v| near(*v, 0.2))
    });
    // The canary serves over 1 response/s over 5 minutes (400 in the
    // window), the stable cluster a third of that.
    let rates = by(
        &prom.query("split_cluster:turnout_responses:rate5m"),
        "cluster",
    );
    assert!(rates["fastapi"] >= 400.0 / 300.0, "{rates:?}");
    assert!(rates["legacy"] < 1.0, "{rates:?}");
    // Latency: 10 of 400 canary requests took 60 ms, so its p99 lies in
    // the (50, 100] bucket (or the next, on a slow machine) and its median
    // well below; the stable cluster's median too.
    let p99 = prom.wait_for(
        r#"split_cluster:turnout_latency_ms:p99_5m{cluster="fastapi"}"#,
        WAIT,
        |s| s.len() == 1 && s[0].value > 50.0,
    );
    assert!(p99[0].value <= 250.0, "{p99:?}");
    // The recording rule may run a second behind the scrape that brought
    // the last latencies: wait for an evaluation that has both clusters
    // (NaN until a cluster's histogram has risen within the window).
    let p50 = prom.wait_for("split_cluster:turnout_latency_ms:p50_5m", WAIT, |s| {
        let c = by(s, "cluster");
        ["fastapi", "legacy"]
            .iter()
            .all(|&k| c.get(k).is_some_and(|v| !v.is_nan()))
    });
    let p50 = by(&p50, "cluster");
    assert!(p50["fastapi"] < 50.0 && p50["legacy"] < 50.0, "{p50:?}");
    let reference = prom.query("split:turnout_latency_ms:p95_reference_5m");
    assert_eq!(reference.len(), 1, "{reference:?}");
    assert_eq!(reference[0].label("split"), Some("users"));

    // The canary error alert is pending (`for: 2m`) for the canary; the
    // stable cluster's 5 % errors are under the traffic floor, and the
    // latency alerts have nothing to say. Judged on an evaluation of the
    // alerts that started after the recorded values above were final.
    wait_for_evaluation_after_now(&prom, "turnout.alerts");
    let pending = prom.query(r#"ALERTS{alertname="TurnoutCanaryErrorRateHigh"}"#);
    assert_eq!(pending.len(), 1, "{pending:#?}");
    let a = &pending[0];
    assert_eq!(a.label("split"), Some("users"));
    assert_eq!(a.label("cluster"), Some("fastapi"));
    assert_eq!(a.label("alertstate"), Some("pending"));
    assert_eq!(a.label("severity"), Some("page"));
    let others = prom.query(r#"ALERTS{alertname!="TurnoutCanaryErrorRateHigh"}"#);
    assert!(others.is_empty(), "{others:#?}");

    // No rule failed to evaluate.
    let groups = prom.api("/api/v1/rules");
    let groups = groups["data"]["groups"].as_array().expect("rule groups");
    assert_eq!(groups.len(), 2, "{groups:#?}");
    for rule in groups.iter().flat_map(|g| g["rules"].as_array().unwrap()) {
        assert_eq!(rule["health"], "ok", "{rule:#}");
    }

    // Every dashboard query runs, with the split variable at "All" and
    // Grafana's rate interval at 1 minute, and returns data.
    let splits = prom.api("/api/v1/label/split/values?match%5B%5D=turnout_requests_total");
    assert_eq!(splits["data"], serde_json::json!(["users"]));
    for expr in dashboard_exprs(&dashboard()) {
        let q = expr
            .replace("$__rate_interval", "1m")
            .replace("$split", ".*");
        let result = prom.query(&q);
        assert!(!result.is_empty(), "dashboard query returns nothing: {q}");
    }
}

integration::for_each_build!(prometheus_evaluates_the_rules_on_real_envoy_stats,);
