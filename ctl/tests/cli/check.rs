//! `check`: the filter's verdict, word for word.

use crate::{ctl, ecds_file, file, scratch, users_config};

#[test]
fn accepts_and_summarizes_each_split() {
    let dir = scratch("check-ok");
    let path = file(&dir, "c.json", &users_config("25", ""));
    let run = ctl(&["check", &path]).code(0);
    assert_eq!(
        run.stdout,
        format!(
            "OK {path}: 1 split\n  users: route \"users\", stable legacy, targets fastapi 25 %, \
             2 pinned users, force header x-turnout-force\n"
        )
    );
}

#[test]
fn refuses_with_every_field_named_problem_on_its_own_line() {
    let dir = scratch("check-refused");
    let config = users_config("140", r#", "colour": "red""#);
    let path = file(&dir, "c.json", &config);
    let run = ctl(&["check", &path]).code(1);
    let mut lines = run.stdout.lines();
    assert_eq!(lines.next(), Some(&*format!("REFUSED {path}: 2 problems")));
    let problems: Vec<&str> = lines.collect();
    assert_eq!(problems.len(), 2, "{}", run.stdout);
    assert!(
        problems[0].starts_with("splits[0].colour: unknown field; expected one of name, match, ")
    );
    assert_eq!(
        problems[1],
        "splits[0].targets[0].weight: 140 is not between 0 and 100"
    );
    // The filter's own parser, which Envoy runs, says exactly the same.
    let filter: Vec<String> = turnout::config::parse(config.as_bytes())
        .unwrap_err()
        .problems
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems, filter);
}

#[test]
fn reads_ecds_files_and_names_the_resource() {
    let dir = scratch("check-ecds");
    let path = ecds_file(&dir, &users_config("5", ""));
    let run = ctl(&["check", &path]).code(0);
    assert!(
        run.stdout
            .starts_with(&format!("OK {path} (resource \"turnout\"): 1 split\n")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("targets fastapi 5 %"));

    let text = std::fs::read_to_string(&path).unwrap();
    let broken = file(
        &dir,
        "broken.json",
        &text.replace("google.protobuf.StringValue", "google.protobuf.BytesValue"),
    );
    let run = ctl(&["check", &broken]).code(1);
    assert_eq!(
        run.stdout,
        format!(
            "REFUSED {broken}: not a usable ECDS file\n\
             resources[0].typed_config.config.configuration.@type: \
             is not type.googleapis.com/google.protobuf.StringValue\n"
        )
    );
}

#[test]
fn shows_schedules_at_a_given_time() {
    let dir = scratch("check-schedule");
    let config = users_config("25", "").replace(
        r#""weight": 25"#,
        r#""schedule": [{"at": "2026-12-01T09:00:00Z", "weight": 5}, {"at": "2026-12-08T09:00:00Z", "weight": 25}]"#,
    );
    let path = file(&dir, "c.json", &config);
    let run = ctl(&["check", &path, "--at", "2026-12-02T00:00:00Z"]).code(0);
    assert!(
        run.stdout
            .contains("targets fastapi 5 % (schedule: next 25 % at 2026-12-08T09:00:00Z)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("weights at 2026-12-02T00:00:00Z"));
}

#[test]
fn json_output_carries_the_same_verdict() {
    let dir = scratch("check-json");
    let path = file(&dir, "c.json", &users_config("100.5", ""));
    let run = ctl(&["check", &path, "--json"]).code(1);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(
        doc["configs"][0]["problems"][0],
        serde_json::json!({"path": "splits[0].targets[0].weight", "message": "100.5 is not between 0 and 100"})
    );
    let path = file(&dir, "ok.json", &users_config("25", ""));
    let doc: serde_json::Value =
        serde_json::from_str(&ctl(&["check", &path, "--json"]).code(0).stdout).unwrap();
    assert_eq!(doc["configs"][0]["splits"][0]["targets"][0]["weight"], 25.0);
}

#[test]
fn empty_config_means_no_splits_and_unreadable_file_is_usage() {
    let dir = scratch("check-empty");
    let path = file(&dir, "empty.json", "\n");
    let run = ctl(&["check", &path]).code(0);
    assert_eq!(
        run.stdout,
        format!("OK {path}: no splits (every request passes untouched)\n")
    );
    let missing = dir.join("missing.json").to_string_lossy().into_owned();
    let run = ctl(&["check", &missing]).code(2);
    assert!(run.stderr.contains("cannot read"), "{}", run.stderr);
    ctl(&["check"]).code(2);
}

/// A split's shadow is shown: where copies go, which and how many, how
/// they are compared; in JSON too.
#[test]
fn shows_a_splits_shadow() {
    let dir = scratch("check-shadow");
    let shadow = r#", "shadow": {"cluster": "fastapi", "percent": 30, "noise": true,
        "compare": {"ignore": ["/request_id"]}}"#;
    let path = file(&dir, "c.json", &users_config("10", shadow));
    let run = ctl(&["check", &path]).code(0);
    assert!(
        run.stdout.contains(
            "; shadow to fastapi: 30 % of GET, HEAD, compared by status, content-type, \
             json body ignoring /request_id, noise learned from a second stable answer\n"
        ),
        "{}",
        run.stdout
    );
    let run = ctl(&["check", &path, "--json"]).code(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let shadow = &doc["configs"][0]["splits"][0]["shadow"];
    assert_eq!(shadow["cluster"], "fastapi");
    assert_eq!(shadow["percent"], 30.0);
    assert_eq!(shadow["compare"]["ignore"][0], "/request_id");
}
