//! Where the harness keeps things: the workspace, its `target/` directory,
//! unique per-test scratch directories, and the file locks that keep
//! parallel test binaries from installing or building the same thing twice.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

/// The workspace root (the parent of this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration crate has a parent directory")
        .to_path_buf()
}

/// `<workspace>/target`: where the harness keeps its Envoy install, its
/// scratch directories and its locks. Deliberately not `CARGO_TARGET_DIR`:
/// those things should survive a coverage run's separate target directory.
pub fn target_dir() -> PathBuf {
    workspace_root().join("target")
}

/// A fresh, empty directory under `target/harness-tmp/`, unique to this
/// process and call (`<label>-<pid>-<n>`), for bootstraps, logs, ECDS files.
/// Directories are left in place (a failed test's are worth reading); the
/// first call in a process removes those of processes that have exited.
pub fn scratch_dir(label: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static SWEPT: Once = Once::new();
    let root = target_dir().join("harness-tmp");
    SWEPT.call_once(|| sweep(&root));
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = root.join(format!("{label}-{}-{n}", std::process::id()));
    // A leftover from an earlier process that had the same pid.
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Removes the scratch directories of processes that no longer run.
fn sweep(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Runs `f` holding an exclusive lock on `target/<name>.lock`, so that only
/// one process (and one thread: each call opens its own file description)
/// at a time does what `f` does. The lock is released when the file closes,
/// also if `f` panics or the process dies.
pub(crate) fn with_lock<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let dir = target_dir();
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let path = dir.join(format!("{name}.lock"));
    let file = File::create(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("lock {}: {e}", path.display()));
    let out = f();
    drop(file);
    out
}
