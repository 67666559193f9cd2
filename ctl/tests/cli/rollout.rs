//! `rollout`: what it refuses before it starts, with the exit code and the
//! message an operator acts on; the config is never touched. (The runs
//! themselves, against real Envoys, are in tests/rollout.rs.)

use std::fs;
use std::path::Path;

use crate::{ctl, ecds_file, file, scratch, users_config};

/// A plan for `split` in `config` with `steps`; metrics at a port nothing
/// listens on, so that a run that got past its checks stops there too.
fn plan(dir: &Path, config: &str, split: &str, steps: &str) -> String {
    let text = format!(
        r#"{{"config": {}, "split": "{split}", "target": "fastapi", "steps": {steps},
  "metrics": {{"envoy_admin": ["http://127.0.0.1:1"]}},
  "analysis": {{"max_error_rate": 0.01}}}}"#,
        serde_json::to_string(config).unwrap()
    );
    file(dir, "plan.json", &text)
}

/// Runs `rollout` on a plan for a config at `weight` with `extra` split
/// fields; asserts the code and that the config is unchanged.
fn refused(label: &str, weight: &str, extra: &str, split: &str, steps: &str, code: i32) -> String {
    let dir = scratch(label);
    let config = ecds_file(&dir, &users_config(weight, extra));
    let before = fs::read(&config).unwrap();
    let run = ctl(&["rollout", &plan(&dir, &config, split, steps)]).code(code);
    assert_eq!(fs::read(&config).unwrap(), before);
    assert_eq!(run.stdout, "");
    run.stderr
}

#[test]
fn a_plan_that_cannot_be_read_is_a_usage_error() {
    let run = ctl(&["rollout", "/nonexistent/plan.json"]).code(2);
    assert!(
        run.stderr
            .starts_with("turnoutctl: cannot read /nonexistent/plan.json"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_invalid_plan_lists_every_problem_by_field() {
    let dir = scratch("rollout-invalid");
    let path = file(
        &dir,
        "plan.json",
        r#"{"config": "x.json", "split": "users", "target": "fastapi", "steps": [30, 10],
            "metrics": {"prometheus": "https://p"}, "analysis": {"max_error_rate": 5}, "hold": 3}"#,
    );
    let run = ctl(&["rollout", &path]).code(1);
    assert_eq!(
        run.stderr,
        format!(
            "turnoutctl: {path}: the rollout plan is refused:\n\
             hold: unknown field; expected one of config, split, target, steps, hold_s, interval_s, metrics, analysis, on_failure, server\n\
             steps[1]: 10 is not above the step before it (30): steps only ramp up\n\
             metrics.prometheus: \"https://p\": https:// is not supported; give an http:// address (a local port or a proxy)\n\
             analysis.max_error_rate: 5 is not between 0 and 1\n"
        )
    );
}

#[test]
fn a_split_the_config_lacks_is_a_usage_error() {
    let stderr = refused("rollout-nosplit", "0", "", "orders", "[10]", 2);
    assert!(stderr.contains("no split named \"orders\""), "{stderr}");
}

#[test]
fn metrics_that_cannot_be_read_refuse_the_start() {
    let stderr = refused("rollout-nometrics", "0", "", "users", "[10]", 1);
    assert!(
        stderr.starts_with("turnoutctl: the metrics cannot be read, nothing written: cannot reach the server at 127.0.0.1:1 (GET /stats/prometheus): "),
        "{stderr}"
    );
}

#[test]
fn a_rolled_back_split_waits_for_resume() {
    let stderr = refused(
        "rollout-rolled-back",
        "30",
        r#", "rollback": true"#,
        "users",
        "[10, 30, 50]",
        1,
    );
    assert!(stderr.contains("rollback is on for users"), "{stderr}");
    assert!(stderr.contains("`turnoutctl resume "), "{stderr}");
    assert!(stderr.contains("it carries on from 30 %"), "{stderr}");
}

#[test]
fn a_target_past_the_last_step_or_on_a_schedule_is_refused() {
    let stderr = refused("rollout-past", "60", "", "users", "[10, 30, 50]", 1);
    assert!(
        stderr.contains("fastapi is at 60 %, above the plan's last step"),
        "{stderr}"
    );
    let dir = scratch("rollout-schedule");
    let scheduled = users_config("0", "").replace(
        r#""weight": 0"#,
        r#""schedule": [{"at": "2026-12-01T09:00:00Z", "weight": 5}]"#,
    );
    let config = ecds_file(&dir, &scheduled);
    let run = ctl(&["rollout", &plan(&dir, &config, "users", "[10]")]).code(1);
    assert!(
        run.stderr.contains("fastapi has a schedule"),
        "{}",
        run.stderr
    );
}
