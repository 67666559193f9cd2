//! The release build of both artifacts (`turnout.wasm`, and the native
//! module `libturnout_native.so`), made reproducible: the same commit gives
//! the same bytes wherever it is built. Cargo passes workspace sources by
//! relative paths already; what else lands in the binaries (panic
//! locations in registry crates, build scripts' `OUT_DIR`) is remapped
//! from the machine's own directories to fixed names. `cargo
//! release-artifacts` (src/bin/release-artifacts.rs) builds each twice,
//! in separate target directories, and refuses to print digests that differ.

use crate::wasm::wasm_cargo;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One of the two artifacts a release ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Artifact {
    Wasm,
    Native,
}

impl Artifact {
    pub const ALL: [Artifact; 2] = [Artifact::Wasm, Artifact::Native];

    fn package(self) -> &'static str {
        match self {
            Artifact::Wasm => "turnout",
            Artifact::Native => "turnout-native",
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Artifact::Wasm => "turnout.wasm",
            Artifact::Native => "libturnout_native.so",
        }
    }

    /// Always an explicit target, so that the flags below reach the
    /// artifact's crates and never build scripts.
    fn target(self) -> String {
        match self {
            Artifact::Wasm => "wasm32-wasip1".to_string(),
            Artifact::Native => host_triple(),
        }
    }
}

/// A built artifact and what identifies it.
pub struct Built {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

/// Builds `artifact` in `target_dir` (`--release --locked`) with the
/// machine's paths remapped; cargo's output is passed through.
pub fn build(artifact: Artifact, target_dir: &Path) -> Result<Built, String> {
    let target = artifact.target();
    let cargo_home = cargo_home();
    let flags = [
        format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
        format!("--remap-path-prefix={}=/target", target_dir.display()),
    ];
    let flags: Vec<String> = flags.iter().map(|f| format!("{f:?}")).collect();
    // Added to the flags .cargo/config.toml sets for the target (cargo
    // joins arrays), which keep the wasm build's panic=abort.
    let config = format!("target.{target}.rustflags=[{}]", flags.join(","));
    let mut cmd = wasm_cargo();
    cmd.env("CARGO_TARGET_DIR", target_dir)
        .args(["build", "--release", "--locked", "--target", &target])
        .args(["-p", artifact.package(), "--config", &config]);
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building {} failed ({status})",
            artifact.file_name()
        ));
    }
    let path = target_dir
        .join(&target)
        .join("release")
        .join(artifact.file_name());
    let bytes = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(Built {
        sha256: sha256_hex(&bytes),
        size: bytes.len() as u64,
        path,
    })
}

/// `$CARGO_HOME`, or `~/.cargo`.
fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/nonexistent-cargo-home"))
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> String {
    let out = Command::new("rustc").arg("-vV").output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap_or("x86_64-unknown-linux-gnu")
        .to_string()
}

/// The lowercase hex SHA-256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
