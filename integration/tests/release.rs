//! The release recipe (`cargo release-artifacts`) builds reproducibly: the
//! wasm module built twice from scratch, in two target directories, is the
//! same bytes, and holds none of the machine's paths (which would make a
//! build elsewhere differ). The recipe itself checks the native module the
//! same way each time it runs; building it twice here too would double the
//! cost of this test for what the recipe already refuses to hide.

use integration::release::{build, Artifact};
use integration::{scratch_dir, workspace_root};
use std::fs;

#[test]
fn the_wasm_module_is_the_same_bytes_from_two_fresh_builds_and_names_no_local_path() {
    let dirs = [scratch_dir("release-1"), scratch_dir("release-2")];
    let first = build(Artifact::Wasm, &dirs[0]).expect("first build");
    let second = build(Artifact::Wasm, &dirs[1]).expect("second build");
    assert_ne!(first.path, second.path);
    assert_eq!(
        first.sha256,
        second.sha256,
        "{} and {}",
        first.path.display(),
        second.path.display()
    );
    assert_eq!(first.size, second.size);

    let bytes = fs::read(&first.path).expect("read the module");
    let home = std::env::var("CARGO_HOME")
        .or_else(|_| std::env::var("HOME").map(|h| format!("{h}/.cargo")))
        .expect("a cargo home");
    let root = workspace_root();
    for local in [
        home,
        dirs[0].display().to_string(),
        root.display().to_string(),
    ] {
        let found = bytes.windows(local.len()).any(|w| w == local.as_bytes());
        assert!(!found, "the module names the local path {local}");
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("/cargo/registry/src/"),
        "registry sources are named by the remapped path"
    );
    // Two target directories of a release build: not kept once passed.
    for dir in dirs {
        let _ = fs::remove_dir_all(dir);
    }
}
