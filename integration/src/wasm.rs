//! Building wasm filter crates of this workspace for `wasm32-wasip1`, from
//! inside a running test: the target is added with rustup when missing, and
//! each package is built once per process (and one build at a time across
//! processes).

use crate::paths::{with_lock, workspace_root};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

const TARGET: &str = "wasm32-wasip1";

/// Variables that a surrounding `cargo test` (or coverage tool) may have set
/// for the *host* test build and that must not leak into the wasm build:
/// host RUSTFLAGS (`-C instrument-coverage`, `-C target-cpu=native`,
/// sanitizers) would break or silently change the filter, and a target
/// directory override would move the artifact. Target-specific settings
/// (`CARGO_TARGET_WASM32_WASIP1_*`) are meant for this build and are kept.
const CLEARED_ENV: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_BUILD_DIR",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "CARGO_PRIMARY_PACKAGE",
    "LLVM_PROFILE_FILE",
];

/// The turnout filter: `target/wasm32-wasip1/release/turnout.wasm`, built
/// exactly as the README tells users to build it.
pub fn filter_wasm() -> PathBuf {
    build_wasm_package("turnout")
}

/// Builds workspace package `package` with
/// `cargo build --release --target wasm32-wasip1 -p <package>` and returns
/// `<target>/wasm32-wasip1/release/<package>.wasm`. Panics with cargo's
/// output if the build fails.
pub fn build_wasm_package(package: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    // Held during the build: other threads asking for a wasm wait for it.
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(path) = built.get(package) {
        return path.clone();
    }
    let artifact = workspace_root()
        .join("target")
        .join(TARGET)
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    with_lock("harness-wasm-build", || {
        let mut cmd = wasm_cargo();
        cmd.args([
            "build",
            "--quiet",
            "--release",
            "--target",
            TARGET,
            "-p",
            package,
        ]);
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "building wasm package {package} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    });
    assert!(
        artifact.is_file(),
        "cargo built {package} but {} is missing (is it a cdylib?)",
        artifact.display()
    );
    built.insert(package.to_string(), artifact.clone());
    artifact
}

/// A `cargo` command for a wasm32-wasip1 build or test run from inside a
/// test: the target is installed, the working directory is the workspace,
/// the target directory is the workspace's own, and the host build's flags
/// are cleared. The caller adds the subcommand and `--target wasm32-wasip1`.
pub fn wasm_cargo() -> Command {
    ensure_target();
    clean_cargo()
}

/// A `cargo` command run from inside a test for a build of this workspace
/// (wasm or native): the working directory is the workspace, the target
/// directory is the workspace's own, and the host build's flags are cleared.
pub fn clean_cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", workspace_root().join("target"));
    for var in CLEARED_ENV {
        if *var != "CARGO_TARGET_DIR" {
            cmd.env_remove(var);
        }
    }
    cmd
}

/// Adds the wasm32-wasip1 target to the active toolchain when it is missing
/// (a fresh machine has RUSTUP_AUTO_INSTALL=0). Without rustup, does nothing
/// and lets cargo report what is missing.
fn ensure_target() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let root = workspace_root();
        let Ok(out) = Command::new("rustup")
            .current_dir(&root)
            .args(["target", "list", "--installed"])
            .output()
        else {
            return;
        };
        if String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == TARGET)
        {
            return;
        }
        with_lock("harness-rustup", || {
            let out = Command::new("rustup")
                .current_dir(&root)
                .args(["target", "add", TARGET])
                .output()
                .expect("run rustup target add");
            assert!(
                out.status.success(),
                "rustup target add {TARGET} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        });
    });
}
