//! The real `turnoutctl serve` as a child process: built from this
//! workspace, started on a directory, killed and started again on the same
//! port, and read from outside as an operator would: its CPU time and
//! memory from `/proc`, its status from `GET /status`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use integration::process::spawn_tied;
use integration::{clean_cargo, workspace_root, HttpClient};
use serde_json::Value;

/// Builds `turnoutctl` from this workspace (`release`: as an operator
/// installs it; otherwise the test profile's, quicker to build) and
/// returns the binary's path.
pub fn build_turnoutctl(release: bool) -> Result<PathBuf, String> {
    let mut cmd = clean_cargo();
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "turnoutctl",
        "--bin",
        "turnoutctl",
    ]);
    if release {
        cmd.arg("--release");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "building turnoutctl failed ({}):\n{stderr}",
            out.status
        ));
    }
    let profile = if release { "release" } else { "debug" };
    Ok(workspace_root()
        .join("target")
        .join(profile)
        .join("turnoutctl"))
}

/// How to start the server.
#[derive(Clone, Debug)]
pub struct Launch {
    pub binary: PathBuf,
    pub dir: PathBuf,
    /// `--wasm`: the module's path as the real Envoys see it.
    pub wasm: String,
    /// `--poll-ms`; `None` leaves the server's default.
    pub poll_ms: Option<u64>,
}

/// Memory of the server process, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the most it was resident since it started.
    pub hwm_kib: u64,
}

/// One running server, killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Server {
    /// Starts the server on `port` (0: any free one), logging to `log`;
    /// returns once it logs where it listens.
    pub fn start(launch: &Launch, port: u16, log: &Path) -> Result<Server, String> {
        let log_file = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = Command::new(&launch.binary);
        cmd.arg("serve")
            .arg(&launch.dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--wasm", &launch.wasm])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        if let Some(ms) = launch.poll_ms {
            cmd.args(["--poll-ms", &ms.to_string()]);
        }
        let child = spawn_tied(cmd).map_err(|e| format!("cannot start turnoutctl serve: {e}"))?;
        let mut server = Server {
            child,
            port,
            log: log.to_path_buf(),
        };
        server.port = server.listening()?;
        Ok(server)
    }

    /// The port from the server's "listening on" line.
    fn listening(&mut self) -> Result<u16, String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            let port = log.lines().find_map(|l| {
                let rest = l.split("listening on 127.0.0.1:").nth(1)?;
                rest.split(' ').next()?.parse::<u16>().ok()
            });
            if let Some(port) = port {
                return Ok(port);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("turnoutctl serve exited ({status}):\n{log}"));
            }
            if Instant::now() > deadline {
                return Err(format!("turnoutctl serve did not start:\n{log}"));
            }
            sleep(Duration::from_millis(5));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Bytes the server has logged.
    pub fn log_bytes(&self) -> u64 {
        fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// CPU time the process used, user and system, all threads.
    pub fn cpu(&self) -> Result<Duration, String> {
        let path = format!("/proc/{}/stat", self.pid());
        let stat = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let ticks = cpu_ticks(&stat).ok_or_else(|| format!("{path}: no utime and stime"))?;
        let per_second = rustix::param::clock_ticks_per_second();
        Ok(Duration::from_nanos(
            ticks.saturating_mul(1_000_000_000) / per_second.max(1),
        ))
    }

    pub fn memory(&self) -> Result<Memory, String> {
        let path = format!("/proc/{}/status", self.pid());
        let status = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| format!("{path}: no {key}"))
        };
        Ok(Memory {
            rss_kib: kib("VmRSS:")?,
            hwm_kib: kib("VmHWM:")?,
        })
    }

    /// The soft open-files limit the server runs with (it raises its own).
    pub fn open_files(&self) -> Result<String, String> {
        let path = format!("/proc/{}/limits", self.pid());
        let limits = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
            .ok_or_else(|| format!("{path}: no Max open files"))
    }

    /// `GET /status`, parsed.
    pub fn status(&self) -> Result<Value, String> {
        let mut client = HttpClient::new(self.port);
        let response = client
            .request("GET", "/status", &[("connection", b"close")])
            .map_err(|e| format!("GET /status: {e}"))?;
        if response.status != 200 {
            return Err(format!("GET /status: {}", response.status));
        }
        serde_json::from_slice(&response.body).map_err(|e| format!("GET /status: {e}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// utime + stime, in clock ticks, from a `/proc/PID/stat` line. The
/// command name (field 2) is in parentheses and may hold spaces, so the
/// fields are counted from its closing one: utime is the 14th field.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_counts_fields_after_the_command_name() {
        let stat = "4242 (turnout ctl) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    37 5 0 0 20 0 4 0 123 4096 300";
        assert_eq!(cpu_ticks(stat), Some(42));
        assert_eq!(cpu_ticks("4242 (x) S 1"), None);
    }
}
