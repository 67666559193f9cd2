//! `set-weight`, `rollback`, `resume`: the ECDS file after each, byte for
//! byte, and refusals that leave it untouched.

use std::fs;
use std::path::Path;

use crate::{ctl, ecds_file, file, scratch, users_config};

/// The ECDS file as `turnoutctl ecds` writes it for `config`, to compare with.
fn wrapped(dir: &Path, config: &str) -> String {
    let path = ecds_file(&dir.join("expected"), config);
    fs::read_to_string(path).unwrap()
}

fn setup(label: &str, config: &str) -> (std::path::PathBuf, String) {
    let dir = scratch(label);
    fs::create_dir_all(dir.join("expected")).unwrap();
    let path = ecds_file(&dir, config);
    (dir, path)
}

/// Files in `dir` other than the given ones: a temporary file left behind.
fn strays(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !["config.json", "turnout.json", "expected"].contains(&n.as_str()))
        .collect()
}

#[test]
fn set_weight_changes_only_the_weight() {
    let (dir, path) = setup("set-weight", &users_config("5", ""));
    let run = ctl(&["set-weight", &path, "users", "fastapi", "25"]).code(0);
    assert_eq!(
        run.stdout,
        "users: fastapi 5 % → 25 % (users moving into fastapi: 20 % of buckets, from legacy)\n"
    );
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        wrapped(&dir, &users_config("25", ""))
    );
    assert!(strays(&dir).is_empty(), "{:?}", strays(&dir));

    let run = ctl(&["set-weight", &path, "users", "fastapi", "10"]).code(0);
    assert!(run
        .stdout
        .contains("(users moving out of fastapi: 15 % of buckets, to legacy)"));
    let run = ctl(&["set-weight", &path, "users", "fastapi", "10"]).code(0);
    assert_eq!(run.stdout, "users: fastapi is already 10: unchanged\n");
}

#[test]
fn set_weight_replaces_a_schedule_and_says_so() {
    let scheduled = users_config("5", "").replace(
        r#""weight": 5"#,
        r#""schedule": [{"at": "2020-01-01T00:00:00Z", "weight": 5}]"#,
    );
    let (dir, path) = setup("set-weight-schedule", &scheduled);
    let run = ctl(&["set-weight", &path, "users", "fastapi", "0.5"]).code(0);
    assert_eq!(
        run.stdout,
        "users: fastapi schedule (now 5 %) → 0.5 % (users moving out of fastapi: 4.5 % of buckets, to legacy)\n\
         note: the schedule of fastapi is replaced by this fixed weight\n"
    );
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        wrapped(&dir, &users_config("0.5", ""))
    );
}

#[test]
fn a_refused_change_leaves_the_file_byte_identical() {
    let (dir, path) = setup("refused", &users_config("5", ""));
    let before = fs::read(&path).unwrap();
    for (weight, problem) in [
        ("140", "splits[0].targets[0].weight: 140 is not between 0 and 100"),
        (
            "12.345",
            "splits[0].targets[0].weight: 12.345 has more than two decimals (the resolution is 0.01 %)",
        ),
    ] {
        let run = ctl(&["set-weight", &path, "users", "fastapi", weight]).code(1);
        assert!(
            run.stderr.starts_with(&format!(
                "turnoutctl: refused, {path} is unchanged: the new configuration would not validate:\n{problem}\n"
            )),
            "{}",
            run.stderr
        );
        assert_eq!(fs::read(&path).unwrap(), before);
    }
    ctl(&["set-weight", &path, "users", "legacy", "10"]).code(1);
    ctl(&["set-weight", &path, "users", "canary", "10"]).code(2);
    ctl(&["set-weight", &path, "orders", "fastapi", "10"]).code(2);
    ctl(&["set-weight", &path, "users", "fastapi", "ten"]).code(2);
    ctl(&["rollback", &path, "orders"]).code(2);
    assert_eq!(fs::read(&path).unwrap(), before);
    assert!(strays(&dir).is_empty(), "{:?}", strays(&dir));
}

#[test]
fn rollback_and_resume_flip_the_switch() {
    let (dir, path) = setup("rollback", &users_config("25", ""));
    let run = ctl(&["rollback", &path, "users"]).code(0);
    assert_eq!(
        run.stdout,
        "users: rollback false → true (users moving into legacy: 25 % of buckets, from fastapi; \
         2 users pinned elsewhere go to legacy too)\n"
    );
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        wrapped(&dir, &users_config("25", ",\n      \"rollback\": true"))
    );
    let run = ctl(&["rollback", &path, "users"]).code(0);
    assert_eq!(run.stdout, "users: rollback is already on: unchanged\n");

    let run = ctl(&["resume", &path, "users"]).code(0);
    assert!(run.stdout.starts_with("users: rollback true → false"));
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        wrapped(&dir, &users_config("25", ",\n      \"rollback\": false"))
    );
    let run = ctl(&["resume", &path, "users"]).code(0);
    assert_eq!(run.stdout, "users: rollback is already off: unchanged\n");
}

#[test]
fn plain_config_files_are_edited_in_place_too() {
    let dir = scratch("edit-plain");
    let path = file(&dir, "c.json", &users_config("5", ""));
    ctl(&["set-weight", &path, "users", "fastapi", "7.5"]).code(0);
    assert_eq!(fs::read_to_string(&path).unwrap(), users_config("7.5", ""));
}
