//! `explain`: the filter's decision for one request, with the bucket and
//! the weights behind it. Known vectors: salt "users", "alice" → 201,
//! "bob" → 4352.

use crate::{ctl, ecds_file, file, scratch, users_config};

fn explain(config: &str, args: &[&str]) -> String {
    let dir = scratch("explain");
    let path = file(&dir, "c.json", config);
    let mut all = vec!["explain", path.as_str()];
    all.extend_from_slice(args);
    ctl(&all).code(0).stdout
}

/// The value of a `label    value` line.
fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(label)?.strip_prefix(' ').map(str::trim))
        .unwrap_or_else(|| panic!("no {label} line in:\n{out}"))
}

#[test]
fn a_keyed_user_goes_by_bucket() {
    let config = users_config("25", "");
    let out = explain(&config, &["--user", "alice", "--route", "users"]);
    assert_eq!(field(&out, "split"), "users (route \"users\")");
    assert_eq!(field(&out, "cluster"), "fastapi");
    assert_eq!(field(&out, "reason"), "bucket");
    assert_eq!(
        field(&out, "bucket"),
        "201 (XXH64(\"users:alice\") mod 10000)"
    );
    assert!(out.contains("  legacy   stable: 75 % (buckets 2500..10000)\n"));
    assert!(out.contains("  fastapi  25 % (buckets 0..2500)\n"));

    let out = explain(&config, &["--user", "bob", "--route", "users"]);
    assert_eq!(field(&out, "cluster"), "legacy");
    assert!(field(&out, "bucket").starts_with("4352 "));
}

#[test]
fn pin_force_and_rollback_still_show_the_bucket_labelled_unused() {
    let config = users_config("25", "");
    let out = explain(&config, &["--user", "qa-1", "--route", "users"]);
    assert_eq!(field(&out, "cluster"), "fastapi");
    assert_eq!(field(&out, "reason"), "pin");
    assert!(
        field(&out, "bucket")
            .contains("not used: the decision is a pin; by bucket it would be legacy"),
        "{out}"
    );

    let out = explain(
        &config,
        &[
            "--user",
            "bob",
            "--route",
            "users",
            "--header",
            "X-Turnout-Force=fastapi",
        ],
    );
    assert_eq!(field(&out, "cluster"), "fastapi");
    assert_eq!(field(&out, "reason"), "force");
    assert!(field(&out, "bucket").starts_with("4352 "));

    let rolled = users_config("25", r#", "rollback": true"#);
    let out = explain(&rolled, &["--user", "alice", "--route", "users"]);
    assert_eq!(field(&out, "cluster"), "legacy");
    assert_eq!(field(&out, "reason"), "rollback");
    assert!(
        field(&out, "bucket")
            .starts_with("201 (XXH64(\"users:alice\") mod 10000; not used: the decision is a rollback; by bucket it would be fastapi)"),
        "{out}"
    );
}

#[test]
fn cookie_and_query_keys_are_read_as_the_filter_reads_them() {
    let by_cookie = users_config("25", "").replace(
        r#"[{"header": "x-user-id"}, {"cookie": "uid"}, {"query": "uid"}]"#,
        r#"[{"cookie": "uid"}]"#,
    );
    let out = explain(&by_cookie, &["--user", "alice", "--route", "users"]);
    assert!(field(&out, "request").contains("user \"alice\" (cookie uid)"));
    assert_eq!(field(&out, "cluster"), "fastapi");
    let out = explain(&by_cookie, &["--route", "users", "--cookie", "uid=bob"]);
    assert_eq!(field(&out, "cluster"), "legacy");

    let config = users_config("25", "");
    let out = explain(
        &config,
        &[
            "--route",
            "users",
            "--path",
            "/users",
            "--query",
            "uid=alice",
        ],
    );
    assert!(field(&out, "request").contains("user \"alice\" (query uid)"));
    assert_eq!(field(&out, "cluster"), "fastapi");

    let out = explain(&config, &["--route", "users"]);
    assert_eq!(field(&out, "reason"), "anonymous");
    assert_eq!(field(&out, "cluster"), "legacy");
}

#[test]
fn schedules_show_the_weight_in_effect_and_the_next_step() {
    let config = users_config("25", "").replace(
        r#""weight": 25"#,
        r#""schedule": [{"at": "2026-12-01T09:00:00Z", "weight": 1}, {"at": "2026-12-08T09:00:00Z", "weight": 25}]"#,
    );
    let args = ["--user", "alice", "--route", "users", "--at"];
    let before = explain(&config, &[&args[..], &["2026-12-01T08:59:59Z"]].concat());
    assert_eq!(field(&before, "cluster"), "legacy");
    assert!(before
        .contains("  fastapi  0 % (buckets 0..0) (schedule: next 1 % at 2026-12-01T09:00:00Z)\n"));
    let during = explain(&config, &[&args[..], &["2026-12-02T00:00:00Z"]].concat());
    assert!(during.contains(
        "  fastapi  1 % (buckets 0..100) (schedule: next 25 % at 2026-12-08T09:00:00Z)\n"
    ));
    let after = explain(&config, &[&args[..], &["2026-12-08T09:00:00Z"]].concat());
    assert_eq!(field(&after, "cluster"), "fastapi");
    assert!(after.contains("  fastapi  25 % (buckets 0..2500) (schedule: last step reached)\n"));
}

#[test]
fn pass_and_mode_answers_are_explained() {
    let config = users_config("25", r#", "mode": "read_only""#);
    let out = explain(&config, &["--user", "alice", "--path", "/other"]);
    assert_eq!(
        field(&out, "verdict"),
        "no split takes this request: it passes untouched"
    );
    let out = explain(
        &config,
        &["--user", "alice", "--route", "users", "--method", "post"],
    );
    assert_eq!(
        field(&out, "verdict"),
        "answered by turnout: 503 (mode read_only), Retry-After: 30"
    );
}

#[test]
fn json_output_and_ecds_input() {
    let dir = scratch("explain-json");
    let path = ecds_file(&dir, &users_config("25", ""));
    let run = ctl(&[
        "explain", &path, "--user", "alice", "--route", "users", "--json",
    ])
    .code(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["split"], "users");
    assert_eq!(doc["cluster"], "fastapi");
    assert_eq!(doc["reason"], "bucket");
    assert_eq!(doc["bucket"], 201);
    assert_eq!(doc["bucket_used"], true);
}

#[test]
fn a_request_needs_a_route_or_a_path() {
    let dir = scratch("explain-usage");
    let path = file(&dir, "c.json", &users_config("25", ""));
    ctl(&["explain", &path, "--user", "alice"]).code(2);
    ctl(&["explain", &path, "--route", "users", "--header", "novalue"]).code(2);
    ctl(&["explain", &path, "--route", "users", "--at", "tomorrow"]).code(2);
}

/// Whether a request is copied: only what the split sends to stable, and
/// only the shadow's methods.
#[test]
fn says_whether_the_shadow_copies_the_request() {
    let config = users_config("10", r#", "shadow": {"cluster": "fastapi"}"#);
    let out = explain(&config, &["--user", "bob", "--route", "users"]);
    assert!(
        field(&out, "shadow").starts_with("copied (100 % of such requests): shadow to fastapi"),
        "{out}"
    );
    let out = explain(&config, &["--user", "alice", "--route", "users"]);
    assert!(field(&out, "shadow").starts_with("not copied: only requests sent to stable are"));
    let out = explain(
        &config,
        &["--user", "bob", "--route", "users", "--method", "POST"],
    );
    assert!(field(&out, "shadow").starts_with("not copied: POST is not one of the methods"));
}
