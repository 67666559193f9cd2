//! A running Envoy: started from bootstrap YAML in a scratch directory,
//! ready when the admin API says LIVE and every listener has its port, and
//! killed when dropped (also while a failing test unwinds). Gives access to
//! its ports, log and stats.

use crate::client::{try_admin_get, HttpClient};
use crate::envoy_bin::envoy_binary;
use crate::paths::scratch_dir;
use crate::process::spawn_tied;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long Envoy may take to become ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How Envoy's process is started: by a wrapper program or not, and how
/// long it may take to become ready.
struct Launch<'a> {
    wrapper: &'a [OsString],
    startup: Duration,
    /// How often Envoy writes its log file out (`--file-flush-interval-msec`).
    log_flush_ms: u32,
}

/// One Envoy process with its scratch directory (bootstrap, `envoy.log`,
/// stdout/stderr, admin address). Killed with SIGKILL and reaped on drop.
pub struct Envoy {
    child: Child,
    dir: PathBuf,
    admin_port: u16,
    listeners: HashMap<String, u16>,
    /// Startup finished: failures after this point get the log on drop.
    ready: bool,
}

/// An Envoy that exited while starting: its exit status, log and stderr.
#[derive(Debug)]
pub struct StartError {
    pub status: ExitStatus,
    pub log: String,
    pub stderr: String,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<&str> = self.log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        write!(
            f,
            "Envoy exited during startup ({}):\n{tail}\n--- stderr ---\n{}",
            self.status, self.stderr
        )
    }
}

impl std::error::Error for StartError {}

impl Envoy {
    /// Starts Envoy with `bootstrap_yaml` and `concurrency` worker threads
    /// and waits until it is ready. Panics (with the log's tail) if it exits
    /// or is not ready within 30 s.
    pub fn start(bootstrap_yaml: &str, concurrency: u32) -> Envoy {
        Envoy::try_start(bootstrap_yaml, concurrency).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like `start`, but an Envoy that exits during startup (for instance
    /// because an inline wasm configuration was refused: Envoy 1.40 treats a
    /// fail-closed plugin that cannot load as a fatal bootstrap error) is an
    /// `Err` holding its log. Not being ready in 30 s still panics.
    pub fn try_start(bootstrap_yaml: &str, concurrency: u32) -> Result<Envoy, StartError> {
        Envoy::try_start_with(bootstrap_yaml, concurrency, |_| {})
    }

    /// Like `start`, with `customize` applied to Envoy's command before it
    /// is spawned: a working directory (relative paths in the config are
    /// resolved from it), more arguments (`--service-node NAME`).
    pub fn start_with(
        bootstrap_yaml: &str,
        concurrency: u32,
        customize: impl FnOnce(&mut Command),
    ) -> Envoy {
        Envoy::try_start_with(bootstrap_yaml, concurrency, customize)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like `start`, with `ENVOY_DYNAMIC_MODULES_SEARCH_PATH` set to
    /// `modules`: where Envoy finds a dynamic module's `lib<name>.so`.
    pub fn start_with_modules(bootstrap_yaml: &str, concurrency: u32, modules: &Path) -> Envoy {
        Envoy::try_start_with_modules(bootstrap_yaml, concurrency, Some(modules))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `try_start`, with the dynamic modules' directory when given.
    pub fn try_start_with_modules(
        bootstrap_yaml: &str,
        concurrency: u32,
        modules: Option<&Path>,
    ) -> Result<Envoy, StartError> {
        Envoy::try_start_with(bootstrap_yaml, concurrency, |cmd| {
            if let Some(modules) = modules {
                cmd.env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", modules);
            }
        })
    }

    /// Like `start_with_modules`, with Envoy run by `wrapper` (a program
    /// and its arguments, Envoy's command line after them: `valgrind
    /// --tool=callgrind`), given `startup` to become ready: an Envoy under
    /// a simulator starts tens of times slower. Its `pid` is the wrapper's,
    /// which for valgrind is Envoy's own process.
    pub fn start_wrapped(
        bootstrap_yaml: &str,
        concurrency: u32,
        modules: &Path,
        wrapper: &[OsString],
        startup: Duration,
    ) -> Envoy {
        // The log is written out once a minute: the 10 ms flush timer
        // would run thousands of times while a simulated Envoy serves a
        // thousand requests, and be counted as theirs.
        let launch = Launch {
            wrapper,
            startup,
            log_flush_ms: 60_000,
        };
        Envoy::try_start_launched(bootstrap_yaml, concurrency, &launch, |cmd| {
            cmd.env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", modules);
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start_with(
        bootstrap_yaml: &str,
        concurrency: u32,
        customize: impl FnOnce(&mut Command),
    ) -> Result<Envoy, StartError> {
        let launch = Launch {
            wrapper: &[],
            startup: STARTUP_TIMEOUT,
            log_flush_ms: 10,
        };
        Envoy::try_start_launched(bootstrap_yaml, concurrency, &launch, customize)
    }

    fn try_start_launched(
        bootstrap_yaml: &str,
        concurrency: u32,
        launch: &Launch<'_>,
        customize: impl FnOnce(&mut Command),
    ) -> Result<Envoy, StartError> {
        let dir = scratch_dir("envoy");
        let config = dir.join("bootstrap.yaml");
        fs::write(&config, bootstrap_yaml).expect("write bootstrap");
        let file = |name: &str| File::create(dir.join(name)).expect("create output file");
        let mut cmd = match launch.wrapper.split_first() {
            None => Command::new(envoy_binary()),
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(envoy_binary());
                cmd
            }
        };
        // cargo runs tests with its target directories on LD_LIBRARY_PATH,
        // and `cargo test --workspace` builds libturnout_native.so there:
        // Envoy, which looks a module up there when it is not on
        // ENVOY_DYNAMIC_MODULES_SEARCH_PATH, would find that one, as no
        // operator's Envoy would. Envoy itself needs no library path.
        cmd.env_remove("LD_LIBRARY_PATH");
        cmd.arg("-c")
            .arg(&config)
            .arg("--concurrency")
            .arg(concurrency.to_string())
            // Several Envoys run at once (parallel tests): no shared memory
            // region collisions between them.
            .arg("--use-dynamic-base-id")
            // The log file is written in batches: flush often, so that
            // `log()` lags by milliseconds, not the default 10 s.
            .arg("--file-flush-interval-msec")
            .arg(launch.log_flush_ms.to_string())
            .args(["-l", "info", "--log-path"])
            .arg(dir.join("envoy.log"))
            .arg("--admin-address-path")
            .arg(dir.join("admin.txt"))
            .stdin(Stdio::null())
            .stdout(file("stdout.txt"))
            .stderr(file("stderr.txt"));
        customize(&mut cmd);
        let child = spawn_tied(cmd).unwrap_or_else(|e| panic!("cannot start Envoy: {e}"));
        let mut envoy = Envoy {
            child,
            dir,
            admin_port: 0,
            listeners: HashMap::new(),
            ready: false,
        };
        envoy.wait_ready(launch.startup)?;
        envoy.ready = true;
        Ok(envoy)
    }

    fn wait_ready(&mut self, startup: Duration) -> Result<(), StartError> {
        let deadline = Instant::now() + startup;
        let mut pause = Duration::from_millis(5);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(StartError {
                    status,
                    log: self.log(),
                    stderr: fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default(),
                });
            }
            if self.admin_port == 0 {
                self.admin_port = fs::read_to_string(self.dir.join("admin.txt"))
                    .ok()
                    .and_then(|a| a.trim().rsplit(':').next()?.parse().ok())
                    .unwrap_or(0);
            }
            if self.admin_port != 0 && self.is_ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                panic!("Envoy not ready after {startup:?}:\n{}", self.tail());
            }
            sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Admin says LIVE and every listener reports a bound port.
    fn is_ready(&mut self) -> bool {
        match try_admin_get(self.admin_port, "/ready") {
            Ok((200, body)) if body.trim() == "LIVE" => {}
            _ => return false,
        }
        let Ok((200, json)) = try_admin_get(self.admin_port, "/listeners?format=json") else {
            return false;
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&json) else {
            return false;
        };
        let mut ports = HashMap::new();
        for l in json["listener_statuses"].as_array().into_iter().flatten() {
            let name = l["name"].as_str().unwrap_or_default().to_string();
            let port = l["local_address"]["socket_address"]["port_value"]
                .as_u64()
                .unwrap_or(0);
            if port == 0 {
                return false;
            }
            ports.insert(name, port as u16);
        }
        self.listeners = ports;
        true
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// The scratch directory holding the bootstrap, log and outputs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The port the listener called `name` is bound to.
    pub fn listener_port(&self, name: &str) -> u16 {
        *self.listeners.get(name).unwrap_or_else(|| {
            panic!(
                "no listener {name:?}; Envoy has {:?}",
                self.listeners.keys().collect::<Vec<_>>()
            )
        })
    }

    /// A keep-alive client for the listener called `name`.
    pub fn client(&self, listener: &str) -> HttpClient {
        HttpClient::new(self.listener_port(listener))
    }

    /// `GET path` on the admin API: status and body.
    pub fn admin(&self, path: &str) -> (u16, String) {
        crate::client::admin_get(self.admin_port, path)
    }

    /// The whole Envoy log so far (written every 10 ms: to see a line that
    /// an action is about to cause, use `wait_for_log`).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; panics with the log's tail
    /// after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let found = poll(timeout, || self.log().contains(needle).then_some(()));
        if found.is_none() {
            panic!(
                "{needle:?} not in the Envoy log after {timeout:?}:\n{}",
                self.tail()
            );
        }
    }

    /// `/stats` as text (`name: value` lines).
    pub fn stats(&self) -> String {
        let (status, body) = self.admin("/stats");
        assert_eq!(status, 200, "/stats: {body}");
        body
    }

    /// `/stats/prometheus`.
    pub fn prometheus(&self) -> String {
        let (status, body) = self.admin("/stats/prometheus");
        assert_eq!(status, 200, "/stats/prometheus: {body}");
        body
    }

    /// The counter or gauge called exactly `name` (as `/stats` names it,
    /// e.g. `wasmcustom.turnout.…`), or `None` if there is none.
    pub fn stat(&self, name: &str) -> Option<u64> {
        self.stats().lines().find_map(|line| {
            let (n, v) = line.rsplit_once(": ")?;
            (n == name).then(|| v.trim().parse().ok())?
        })
    }

    /// Waits until stat `name` exists and `pred` holds for its value, and
    /// returns the value; panics with the last value after `timeout`.
    pub fn wait_for_stat(&self, name: &str, pred: impl Fn(u64) -> bool, timeout: Duration) -> u64 {
        poll(timeout, || self.stat(name).filter(|v| pred(*v))).unwrap_or_else(|| {
            panic!(
                "stat {name} did not reach the expected value in {timeout:?} (now {:?})",
                self.stat(name)
            )
        })
    }

    /// The last lines of the log and of stderr, for failure messages.
    pub fn tail(&self) -> String {
        let last = |text: String, n: usize| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        let stderr = fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default();
        format!(
            "--- {} (last 60 lines) ---\n{}\n--- stderr ---\n{}",
            self.dir.join("envoy.log").display(),
            last(self.log(), 60),
            last(stderr, 20)
        )
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        // A failing test: keep the directory for a post-mortem and show the
        // log (read before the kill, which gives Envoy no chance to flush).
        let post_mortem = std::thread::panicking().then(|| self.tail());
        let _ = self.child.kill();
        let _ = self.child.wait();
        match post_mortem {
            Some(tail) if self.ready => {
                eprintln!("Envoy output kept in {}\n{tail}", self.dir.display())
            }
            Some(_) => eprintln!("Envoy output kept in {}", self.dir.display()),
            None => {
                let _ = fs::remove_dir_all(&self.dir);
            }
        }
    }
}

/// The name of an ECDS subscription's stat for the HTTP filter `filter`
/// (the name given to `wasm_filter_ecds`). Useful ones on Envoy 1.40:
/// `update_success` (a file accepted, also an unchanged one),
/// `update_rejected` (refused: the previous config stays), `update_attempt`.
pub fn ecds_stat(filter: &str, stat: &str) -> String {
    format!("extension_config_discovery.http_filter.{filter}.{stat}")
}

/// Calls `f` until it returns `Some` or `timeout` passes, pausing a little
/// longer each time (5 ms up to 100 ms).
pub(crate) fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}
