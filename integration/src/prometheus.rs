//! Prometheus and `promtool` from Debian's `prometheus` package, for the
//! tests of `envoy/prometheus-rules.yaml`: found on `PATH` (or named by
//! `PROMETHEUS_BIN` / `PROMTOOL_BIN`), installed with `apt-get` once when
//! absent, and a real Prometheus server on 127.0.0.1 that dies with the
//! test that started it.

use crate::client::try_admin_get;
use crate::envoy::poll;
use crate::paths::scratch_dir;
use crate::process::spawn_tied;
use serde_json::Value;
use std::fs::{self, File};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The Debian package that ships both binaries.
const PACKAGE: &str = "prometheus";

/// How long Prometheus may take to answer `/-/ready`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// `promtool`, installed first if needed.
pub fn promtool() -> PathBuf {
    tool("promtool", "PROMTOOL_BIN")
}

/// The `prometheus` server binary, installed first if needed.
pub fn prometheus_binary() -> PathBuf {
    tool("prometheus", "PROMETHEUS_BIN")
}

/// Runs `promtool` with `args` from the workspace root (so relative rule
/// paths resolve as in the repository) and returns its output.
pub fn run_promtool(args: &[&str]) -> Output {
    Command::new(promtool())
        .args(args)
        .current_dir(crate::workspace_root())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run promtool {args:?}: {e}"))
}

fn tool(name: &str, override_var: &str) -> PathBuf {
    crate::debian::tool(name, override_var, PACKAGE)
}

/// A Prometheus configuration: scrape `metrics_path` on
/// `127.0.0.1:target_port` (job `envoy`) and evaluate `rule_files`, both
/// every `interval`.
pub fn scrape_config(
    target_port: u16,
    metrics_path: &str,
    rule_files: &[PathBuf],
    interval: Duration,
) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let every = format!("{}ms", interval.as_millis());
    let mut y = format!(
        "global:\n  scrape_interval: {every}\n  scrape_timeout: {every}\n  evaluation_interval: {every}\n"
    );
    y.push_str("rule_files:\n");
    for f in rule_files {
        y.push_str(&format!("- {}\n", q(&f.to_string_lossy())));
    }
    y.push_str(&format!(
        "scrape_configs:\n\
         - job_name: envoy\n  \
           metrics_path: {}\n  \
           static_configs:\n  \
           - targets: [{}]\n",
        q(metrics_path),
        q(&format!("127.0.0.1:{target_port}"))
    ));
    y
}

/// One sample of an instant vector, as turnoutctl's rollout controller
/// reads it too.
pub use turnout_prometheus::Sample;

/// A Prometheus server on 127.0.0.1 with its TSDB and log in a scratch
/// directory; killed (SIGKILL) and reaped on drop, and by the kernel if the
/// test process dies first.
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Prometheus {
    /// Starts Prometheus with `config_yaml` on a free loopback port and
    /// waits until it is ready. Panics with its log if it exits or is not
    /// ready within 30 s.
    pub fn start(config_yaml: &str) -> Prometheus {
        let dir = scratch_dir("prometheus");
        let config = dir.join("prometheus.yml");
        fs::write(&config, config_yaml).expect("write prometheus.yml");
        // The free port is found by binding and releasing it: another
        // process may take it in between, so a start that fails on its
        // address is retried on a new one.
        for _ in 0..3 {
            let port = free_port();
            let file = |name: &str| File::create(dir.join(name)).expect("create output file");
            let mut cmd = Command::new(prometheus_binary());
            cmd.arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=info")
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(file("stdout.txt"))
                .stderr(file("prometheus.log"));
            let child = spawn_tied(cmd).unwrap_or_else(|e| panic!("cannot start prometheus: {e}"));
            let mut prometheus = Prometheus {
                child,
                dir: dir.clone(),
                port,
            };
            match prometheus.wait_ready() {
                Ok(()) => return prometheus,
                Err(log) if log.contains("address already in use") => continue,
                Err(log) => panic!("Prometheus exited during startup:\n{log}"),
            }
        }
        panic!("Prometheus found no free port in three tries")
    }

    /// `Err(log)` if the process exited; panics after the timeout.
    fn wait_ready(&mut self) -> Result<(), String> {
        let ready = poll(STARTUP_TIMEOUT, || {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(Err(self.log()));
            }
            match try_admin_get(self.port, "/-/ready") {
                Ok((200, _)) => Some(Ok(())),
                _ => None,
            }
        });
        ready.unwrap_or_else(|| {
            panic!(
                "Prometheus not ready after {STARTUP_TIMEOUT:?}:\n{}",
                self.tail()
            )
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The scratch directory: `prometheus.yml`, `prometheus.log`, `data/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `GET path` on the HTTP API, parsed; panics unless it is a 200 with
    /// `"status": "success"`.
    pub fn api(&self, path: &str) -> Value {
        let (status, body) = try_admin_get(self.port, path)
            .unwrap_or_else(|e| panic!("GET 127.0.0.1:{}{path}: {e}", self.port));
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: {status}, not JSON ({e}): {body}"));
        assert!(
            status == 200 && json["status"] == "success",
            "GET {path}: {status} {body}"
        );
        json
    }

    /// The instant vector `expr` evaluates to now (`/api/v1/query`).
    pub fn query(&self, expr: &str) -> Vec<Sample> {
        let json = self.api(&turnout_prometheus::query_path(expr));
        turnout_prometheus::instant_vector(&json).unwrap_or_else(|e| panic!("{expr}: {e}: {json}"))
    }

    /// Queries `expr` until `done` accepts the result, and returns it;
    /// panics with the last result and the log's tail after `timeout`.
    pub fn wait_for(
        &self,
        expr: &str,
        timeout: Duration,
        done: impl Fn(&[Sample]) -> bool,
    ) -> Vec<Sample> {
        let mut last = Vec::new();
        let found = poll(timeout, || {
            last = self.query(expr);
            done(&last).then(|| last.clone())
        });
        found.unwrap_or_else(|| {
            panic!(
                "{expr} did not reach the expected result in {timeout:?}; last: {last:#?}\n{}",
                self.tail()
            )
        })
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// The last lines of the log, for failure messages.
    pub fn tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "--- {} (last 30 lines) ---\n{}",
            self.dir.join("prometheus.log").display(),
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "Prometheus output kept in {}\n{}",
                self.dir.display(),
                self.tail()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A loopback port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_config_names_target_path_and_rules() {
        let y = scrape_config(
            9901,
            "/stats/prometheus",
            &[PathBuf::from("/r/rules.yaml")],
            Duration::from_secs(1),
        );
        assert!(y.contains("scrape_interval: 1000ms"), "{y}");
        assert!(y.contains("evaluation_interval: 1000ms"), "{y}");
        assert!(y.contains("- \"/r/rules.yaml\""), "{y}");
        assert!(y.contains("metrics_path: \"/stats/prometheus\""), "{y}");
        assert!(y.contains("targets: [\"127.0.0.1:9901\"]"), "{y}");
    }
}
