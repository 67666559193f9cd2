//! Hostcalls per request, counted by `benches/hostcalls.py` (a
//! proxy-wasm host on wasmtime).

use std::io;
use std::path::Path;
use std::process::Command;

/// The hostcalls of one request through a filter module, as counted by
/// `benches/hostcalls.py` (a proxy-wasm host on wasmtime): the calls into
/// the VM (`callbacks`, with `proxy_on_memory_allocate` each time the host
/// hands the module a buffer) and out of it (`calls`), in order; and the
/// calls out of the VM when the root context next runs (`end_calls`, see
/// [`RootEvent`]), where a filter publishes what its requests held back,
/// and those of its first configuration (`configure_calls`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hostcalls {
    pub callbacks: Vec<String>,
    pub calls: Vec<String>,
    pub configure_calls: Vec<String>,
    pub end_calls: Vec<String>,
}

/// What the root context is called for after the requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootEvent {
    /// Its timer.
    Tick,
    /// The same configuration again, as a push delivers it.
    Configure,
    /// The VM stopping.
    Done,
}

/// The wasmtime the repository's wasm tests use (PyPI).
pub const WASMTIME: &str = "wasmtime==50.0.1";

/// Runs one request through `module` configured with `configuration` in
/// `benches/hostcalls.py` (after one that warms it up) and returns its
/// hostcalls.
pub fn hostcalls(module: &Path, configuration: &str) -> io::Result<Hostcalls> {
    hostcalls_after(module, configuration, 2, RootEvent::Tick)
}

/// Like [`hostcalls`], for the last of `requests` requests, and `end`
/// after them.
pub fn hostcalls_after(
    module: &Path,
    configuration: &str,
    requests: u32,
    end: RootEvent,
) -> io::Result<Hostcalls> {
    let end = match end {
        RootEvent::Tick => "tick",
        RootEvent::Configure => "configure",
        RootEvent::Done => "done",
    };
    let venv = integration::pyvenv::venv("wasmtime-50.0.1", WASMTIME);
    let script = integration::workspace_root().join("benches/hostcalls.py");
    let out = Command::new(integration::pyvenv::python(&venv))
        .arg(script)
        .arg(module)
        .arg(configuration)
        .arg(requests.to_string())
        .arg(end)
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "hostcalls.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(io::Error::other)?;
    let names = |key: &str| -> Vec<String> {
        json[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| Some(v.as_str()?.to_string()))
            .collect()
    };
    Ok(Hostcalls {
        callbacks: names("callbacks"),
        calls: names("calls"),
        configure_calls: names("configure_calls"),
        end_calls: names("end_calls"),
    })
}

impl Hostcalls {
    /// `name ×n` for each distinct name, in order of first appearance.
    pub fn summary(names: &[String]) -> String {
        let mut seen: Vec<(&str, usize)> = Vec::new();
        for n in names {
            match seen.iter_mut().find(|(s, _)| s == n) {
                Some((_, count)) => *count += 1,
                None => seen.push((n, 1)),
            }
        }
        seen.iter()
            .map(|(n, c)| {
                let n = n.strip_prefix("proxy_").unwrap_or(n);
                if *c > 1 {
                    format!("{n} ×{c}")
                } else {
                    n.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
