//! End to end, once per build (`wasm::`, `native::`): Envoy watches the
//! ECDS file that `turnoutctl ecds` wrote (`--wasm PATH` or `--native`),
//! and applies every `set-weight`, `rollback` and `resume`; requests for
//! known users (salt "users": alice → bucket 201, bob → 4352) go where
//! `turnoutctl explain` says; a refused edit changes nothing.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use integration::stage::{bootstrap, served_by};
use integration::{ecds_stat, filter_wasm, scratch_dir, Build, Envoy, Upstream};

const CONFIG: &str = r#"{
  "version": 1,
  "user_key": [{"header": "x-user-id"}],
  "splits": [
    {"name": "users", "match": {"route": "users"}, "stable": "legacy",
     "targets": [{"cluster": "fastapi", "weight": 0}], "salt": "users"}
  ]
}
"#;

/// Runs turnoutctl; returns the exit code and stdout. Its stderr is passed
/// through, so a failing test shows why a command was refused.
fn ctl(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_turnoutctl"))
        .args(args)
        .output()
        .expect("run turnoutctl");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The cluster `turnoutctl explain` predicts for `user` on route `users`.
fn predicted(file: &str, user: &str) -> String {
    let (code, json) = ctl(&[
        "explain", file, "--user", user, "--route", "users", "--json",
    ]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&json).expect("explain --json");
    doc["cluster"].as_str().expect("a cluster").to_string()
}

/// Envoy serves alice and bob from the clusters given, as turnoutctl predicts.
fn assert_served(envoy: &Envoy, file: &str, alice: &str, bob: &str) {
    let mut client = envoy.client("main");
    for (user, want) in [("alice", alice), ("bob", bob)] {
        assert_eq!(
            predicted(file, user),
            want,
            "turnoutctl's prediction for {user}"
        );
        let r = client.get("/users", &[("x-user-id", user)]);
        assert_eq!(r.status, 200, "{user}: {}", r.body_str());
        assert_eq!(served_by(&r).as_deref(), Some(want), "{user}");
    }
}

/// Runs an edit that must succeed and waits until Envoy has applied it.
fn edit_applied(envoy: &Envoy, applied: &mut u64, args: &[&str]) {
    let (code, said) = ctl(args);
    eprint!("turnoutctl {}\n{said}", args.join(" "));
    assert_eq!(code, 0, "turnoutctl {args:?}");
    *applied += 1;
    let want = *applied;
    envoy.wait_for_stat(
        &ecds_stat("turnout", "update_success"),
        |n| n >= want,
        Duration::from_secs(10),
    );
}

integration::for_each_build!(envoy_applies_every_turnoutctl_edit_and_never_a_refused_one);

fn envoy_applies_every_turnoutctl_edit_and_never_a_refused_one(build: Build) {
    let (legacy, fastapi) = (Upstream::start("legacy"), Upstream::start("fastapi"));
    let src = scratch_dir("ctl-src");
    let watched = scratch_dir("ctl-ecds");
    let config = src.join("config.json");
    fs::write(&config, CONFIG).expect("write config");
    // Envoy parses a path_config_source file by its extension: .json.
    let file_path = watched.join("turnout.json");
    let file = file_path.to_string_lossy().into_owned();
    let module = match build {
        Build::Wasm => vec!["--wasm".to_string(), filter_wasm().to_string_lossy().into()],
        Build::Native => vec!["--native".to_string()],
    };
    let config = config.to_string_lossy();
    let mut args = vec!["ecds", &config, "-o", &file];
    args.extend(module.iter().map(String::as_str));
    let (code, _) = ctl(&args);
    assert_eq!(code, 0);

    let filter = build.filter_ecds("turnout", &watched, &file_path);
    let envoy = build.start_envoy(&bootstrap(&filter, &legacy, &fastapi), 1);
    let success = ecds_stat("turnout", "update_success");
    let mut applied = envoy.wait_for_stat(&success, |n| n >= 1, Duration::from_secs(10));
    assert_served(&envoy, &file, "legacy", "legacy");

    let set = |w: &'static str| ["set-weight", &file, "users", "fastapi", w];
    edit_applied(&envoy, &mut applied, &set("25"));
    assert_served(&envoy, &file, "fastapi", "legacy");
    edit_applied(&envoy, &mut applied, &set("100"));
    assert_served(&envoy, &file, "fastapi", "fastapi");
    edit_applied(&envoy, &mut applied, &["rollback", &file, "users"]);
    assert_served(&envoy, &file, "legacy", "legacy");
    edit_applied(&envoy, &mut applied, &["resume", &file, "users"]);
    assert_served(&envoy, &file, "fastapi", "fastapi");

    refused_edit_changes_nothing(&envoy, &file_path, applied);
}

fn refused_edit_changes_nothing(envoy: &Envoy, file_path: &Path, applied: u64) {
    let file = file_path.to_string_lossy();
    let before = fs::read(file_path).expect("read ECDS file");
    let (code, _) = ctl(&["set-weight", &file, "users", "fastapi", "140"]);
    assert_eq!(code, 1);
    assert_eq!(fs::read(file_path).expect("read ECDS file"), before);
    // Time enough for Envoy to notice a change, had there been one.
    sleep(Duration::from_millis(500));
    assert_eq!(
        envoy.stat(&ecds_stat("turnout", "update_success")),
        Some(applied)
    );
    assert_eq!(
        envoy
            .stat(&ecds_stat("turnout", "update_rejected"))
            .unwrap_or(0),
        0
    );
    assert_served(envoy, &file, "fastapi", "fastapi");
}
