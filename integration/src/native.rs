//! Building the native build of turnout (`turnout-native`, an Envoy
//! dynamic module) from inside a running test, as the README tells users
//! to: `cargo build --release -p turnout-native`. Each variant is built
//! once per process (one build at a time across processes); what a test
//! gets is the directory to give Envoy as `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`.
//!
//! Envoy reuses a module it has loaded from the same path, so a test that
//! needs other code under the same module name (the panicking test build)
//! gets it from another directory.

use crate::paths::{with_lock, workspace_root};
use crate::wasm::clean_cargo;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// The module's name in `dynamic_module_config` (`libturnout_native.so`).
pub const MODULE_NAME: &str = "turnout_native";

/// The directory holding the release `libturnout_native.so`
/// (`target/release`).
pub fn native_module_dir() -> PathBuf {
    build("release", &[])
}

/// A test-only build (`--features test-panic`) in its own target
/// directory: a request naming a hook in `x-turnout-test-panic` makes that
/// hook panic, and so does a configuration containing `native_test_panic`.
pub fn native_panicky_module_dir() -> PathBuf {
    build("native-test-panic", &["--features", "test-panic"])
}

/// A benchmark-only build (`--features floor`) in its own target
/// directory: the native floor, which reads `x-user-id`, writes the
/// decision header and clears the route cache, and does nothing else.
pub fn native_floor_module_dir() -> PathBuf {
    build("native-floor", &["--features", "floor"])
}

/// Builds `turnout-native` in release into `target/<sub>` (`release` is
/// the workspace's own target directory) and returns the artifact's
/// directory.
fn build(sub: &str, extra: &[&str]) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(dir) = built.get(sub) {
        return dir.clone();
    }
    let target = workspace_root().join("target");
    let target = if sub == "release" {
        target
    } else {
        target.join(sub)
    };
    with_lock("harness-native-build", || {
        let mut cmd = clean_cargo();
        cmd.env("CARGO_TARGET_DIR", &target)
            .args(["build", "--quiet", "--release", "-p", "turnout-native"])
            .args(extra);
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "building turnout-native failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let dir = target.join("release");
    let artifact = dir.join(format!("lib{MODULE_NAME}.so"));
    assert!(artifact.is_file(), "{} is missing", artifact.display());
    built.insert(sub.to_string(), dir.clone());
    dir
}
