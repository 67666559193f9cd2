//! `cargo release-artifacts`: builds the two artifacts a release ships,
//! `turnout.wasm` and `libturnout_native.so`, twice each in separate
//! target directories (target/release-artifacts/build-1 and build-2),
//! checks that both builds gave the same bytes, copies them to
//! target/release-artifacts/, and prints the commit, each artifact's
//! sha256 and size. Exit 1 when a build fails or the two builds differ.

use integration::release::{build, Artifact};
use integration::{target_dir, workspace_root};
use std::fs;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("release-artifacts: {why}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let out = target_dir().join("release-artifacts");
    let mut lines = Vec::new();
    // Fresh directories each time: a build cargo finds up to date proves nothing.
    for dir in ["build-1", "build-2"] {
        let _ = fs::remove_dir_all(out.join(dir));
    }
    for artifact in Artifact::ALL {
        let first = build(artifact, &out.join("build-1"))?;
        let second = build(artifact, &out.join("build-2"))?;
        if first.sha256 != second.sha256 {
            return Err(format!(
                "{} is not reproducible: {} has sha256 {}, {} has {}",
                artifact.file_name(),
                first.path.display(),
                first.sha256,
                second.path.display(),
                second.sha256
            ));
        }
        let dest = out.join(artifact.file_name());
        fs::copy(&first.path, &dest).map_err(|e| format!("copy to {}: {e}", dest.display()))?;
        lines.push(format!(
            "{:<22} sha256:{}  {} bytes  ({})",
            artifact.file_name(),
            first.sha256,
            first.size,
            dest.display()
        ));
    }
    println!("commit {}", commit());
    for line in lines {
        println!("{line}");
    }
    println!("(each built twice, in separate target directories: the same bytes)");
    Ok(())
}

/// `git describe`-like: the commit, marked when the tree has changes that
/// the artifacts include but the commit does not.
fn commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(workspace_root())
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let head = git(&["rev-parse", "HEAD"]);
    if git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        head
    } else {
        format!("{head} with uncommitted changes (not reproducible from the commit)")
    }
}
