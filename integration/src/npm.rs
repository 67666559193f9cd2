//! Node packages from npm (the published Kubernetes schemas the manifest
//! tests validate against), installed once into a directory under
//! `target/` and shared by every test process, as pyvenv.rs does for PyPI.

use crate::debian;
use crate::paths::{target_dir, with_lock};
use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// `target/<name>`, holding `node_modules/` with `packages` (exact
/// versions, `name@1.2.3`), installed on first use under a file lock. The
/// `.installed` marker, written last, names what is there: a change to the
/// list, or an interrupted install, installs again.
pub fn packages(name: &str, packages: &[&str]) -> PathBuf {
    let dir = target_dir().join(name);
    let wanted = packages.join("\n");
    with_lock(name, || {
        let marker = dir.join(".installed");
        if fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
            install(&dir, packages);
            fs::write(&marker, &wanted).expect("write install marker");
        }
    });
    dir
}

/// Node.js: `$TURNOUT_NODE`, `node` on `PATH`, or Debian's `nodejs`.
pub fn node() -> PathBuf {
    debian::tool("node", "TURNOUT_NODE", "nodejs")
}

fn install(dir: &PathBuf, packages: &[&str]) {
    eprintln!(
        "installing {} into {} (once)",
        packages.join(" "),
        dir.display()
    );
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).expect("create the npm directory");
    // A package.json of its own, so npm installs here and not in a parent.
    fs::write(dir.join("package.json"), "{\"private\": true}\n").expect("write package.json");
    let npm = debian::tool("npm", "TURNOUT_NPM", "npm");
    let out = Command::new(npm)
        .current_dir(dir)
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--save-exact",
        ])
        .args(packages)
        .output()
        .unwrap_or_else(|e| panic!("cannot run npm: {e}"));
    assert!(
        out.status.success(),
        "npm install {packages:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
