//! turnoutctl as operators run it: the built binary on files in a scratch
//! directory, checked on its exact output, exit code and file contents.

mod check;
mod cohort;
mod ecds;
mod edit;
mod explain;
mod rollout;
mod serve;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a run printed and how it exited.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs turnoutctl with `args`.
pub fn ctl(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_turnoutctl"))
        .args(args)
        .output()
        .expect("run turnoutctl");
    Run {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

impl Run {
    /// Asserts the exit code, showing the output when it is not.
    pub fn code(self, want: i32) -> Run {
        assert_eq!(
            self.code, want,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A fresh, empty directory for one test.
pub fn scratch(label: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "ctl-{label}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Writes `text` to `dir/name` and returns the path as a string.
pub fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, text).expect("write file");
    path.to_string_lossy().into_owned()
}

/// The design's example split at `weight`, with `extra` fields appended to
/// the split (e.g. `, "rollback": true`).
pub fn users_config(weight: &str, extra: &str) -> String {
    format!(
        r#"{{
  "version": 1,
  "user_key": [{{"header": "x-user-id"}}, {{"cookie": "uid"}}, {{"query": "uid"}}],
  "splits": [
    {{
      "name": "users",
      "match": {{"route": "users"}},
      "stable": "legacy",
      "targets": [{{"cluster": "fastapi", "weight": {weight}}}],
      "salt": "users",
      "pin": {{"fastapi": ["qa-1", "qa-2"]}},
      "force_header": "x-turnout-force"{extra}
    }}
  ]
}}
"#
    )
}

/// An ECDS file of `config`, as `turnoutctl ecds` writes it.
pub fn ecds_file(dir: &Path, config: &str) -> String {
    let plain = file(dir, "config.json", config);
    let out = dir.join("turnout.json").to_string_lossy().into_owned();
    ctl(&["ecds", &plain, "--wasm", "/opt/turnout.wasm", "-o", &out]).code(0);
    out
}
