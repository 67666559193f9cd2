//! Tools from Debian packages that tests and benchmarks need (Prometheus,
//! wrk, chromium, valgrind, the OCI registry): found on `PATH` (or named by
//! an override variable), installed with `apt-get` once when absent, as a
//! newcomer's machine has only the Rust toolchain and Python.

use crate::paths::with_lock;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The binary `name` from the Debian package `package`: `$override_var` if
/// set, else the first `name` on `PATH`, else `/usr/bin/name` or
/// `/usr/sbin/name`; when none exists, the package is installed (once,
/// under a file lock shared by every test process) and the lookup is
/// repeated. Panics with what to install when that is not possible.
pub fn tool(name: &str, override_var: &str, package: &str) -> PathBuf {
    if let Some(path) = env::var_os(override_var) {
        return PathBuf::from(path);
    }
    if let Some(path) = find(name) {
        return path;
    }
    with_lock(&format!("apt-{package}"), || {
        // Another process may have installed it while this one waited.
        if find(name).is_none() {
            install(package, name, override_var);
        }
    });
    find(name).unwrap_or_else(|| {
        panic!("{name} is still missing after installing the Debian package {package:?}")
    })
}

/// `name` on `PATH`, or in `/usr/bin` or `/usr/sbin`, if executable.
pub fn find(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `apt-get update` then `apt-get install -y --no-install-recommends
/// PACKAGE`. Needs root: anyone else gets a message that says what to
/// install. A package's service is not started where `policy-rc.d` forbids
/// it (containers), and the tests never talk to one: they start their own
/// on a free port.
fn install(package: &str, name: &str, override_var: &str) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "{name} is not installed, and installing it needs root.\n\
             Install Debian's package yourself (`sudo apt-get install {package}`), or put\n\
             {name} on PATH (or name it in {override_var}), then run the tests again."
        );
    }
    eprintln!("installing the Debian package {package} for {name} (once)");
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        // Wait for another apt or dpkg instead of failing on its lock.
        cmd.args(["-o", "DPkg::Lock::Timeout=300", "-q"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null());
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run apt-get: {e}"));
        assert!(
            out.status.success(),
            "apt-get {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    apt(&["update"]);
    apt(&["install", "-y", "--no-install-recommends", package]);
}
