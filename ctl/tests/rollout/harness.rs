//! The real-Envoy rollout tests' harness: two Envoys watching one ECDS
//! file in front of real upstreams, traffic to both with each answer's
//! cluster and reason, an optional Prometheus scraping them, Envoy's fault
//! filter to fail the target live, and the controller run as a child
//! process whose lines are kept with their time.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, sleep, JoinHandle};
use std::time::{Duration, Instant};

use integration::bootstrap::{fault_filter, wasm_filter_ecds};
use integration::process::spawn_tied;
use integration::prometheus::Prometheus;
use integration::stage::{bootstrap_of, DECISION_HEADER};
use integration::{ecds_stat, filter_wasm, scratch_dir, Envoy, HttpClient, Upstream};
use serde_json::Value;

use super::served;

/// Split `users` from `legacy` to `fastapi` at 0 %, with the debug
/// header, which tells each request's cluster and reason.
pub const CONFIG: &str = r#"{"version": 1, "debug": true, "splits": [{"name": "users", "match": {"route": "users"},
  "stable": "legacy", "targets": [{"cluster": "fastapi", "weight": 0}]}]}
"#;

/// [`CONFIG`] with a shadow: the requests the split sends to `legacy`
/// are copied to `fastapi` (the wasm build sends copies), and the answers
/// compared.
pub const SHADOWED: &str = r#"{"version": 1, "debug": true, "splits": [{"name": "users", "match": {"route": "users"},
  "stable": "legacy", "targets": [{"cluster": "fastapi", "weight": 0}],
  "shadow": {"cluster": "fastapi"}}]}
"#;

/// Fails the requests turnout sends to `fastapi`: `abort_bp` of 10,000 at
/// first, and as many percent as the runtime key
/// `fault.http.abort.abort_percent` says once it is set.
pub fn fastapi_fault(abort_bp: u32) -> String {
    // The abort block must be there for the runtime key to act on it.
    let yaml = fault_filter(DECISION_HEADER, "fastapi", 10_000, 0, 0);
    let set = yaml.replace("numerator: 10000,", &format!("numerator: {abort_bp},"));
    assert_ne!(set, yaml, "the fault filter's abort percentage moved");
    set
}

/// Envoy's admin runtime layer, so that `/runtime_modify` works.
const ADMIN_RUNTIME: &str = "layered_runtime:\n  layers:\n  - name: admin\n    admin_layer: {}\n";

const RUNTIME_ABORT: &str = "fault.http.abort.abort_percent";

/// Intervals and holds of the compressed runs.
pub const INTERVAL_S: u64 = 1;
pub const HOLD_S: u64 = 2;
/// The analysis of the runs: the contract's example, with fewer requests
/// and a p99 limit of seconds: the loopback upstreams answer in about a
/// millisecond, and a machine whose two cores are shared may stall a
/// request for seconds, which is no failure of the target.
pub const ANALYSIS: &str = r#"{"min_requests": 20, "max_error_rate": 0.01, "max_p99_ms": 5000,
  "max_p95_ratio": 2.0, "max_error_ratio": 2.0, "alpha": 0.001}"#;
/// Requests per second sent to each proxy.
const RATE: u64 = 100;

/// Two Envoys watching one ECDS file, their upstreams, traffic to both,
/// and, if asked, a Prometheus scraping both.
pub struct Fleet {
    /// Dropped first: the traffic stops before the proxies do.
    pub traffic: Traffic,
    prometheus: Option<Prometheus>,
    envoys: Vec<Envoy>,
    _upstreams: (Upstream, Upstream),
    /// The ECDS file both proxies watch and the controller edits.
    pub file: PathBuf,
    pub dir: PathBuf,
}

impl Fleet {
    /// `faults[i]`: the fault filter of proxy `i`, if any.
    pub fn start(config_json: &str, faults: [Option<String>; 2], prometheus: bool) -> Fleet {
        let (legacy, fastapi) = (Upstream::start("legacy"), Upstream::start("fastapi"));
        let dir = scratch_dir("rollout");
        let watched = scratch_dir("rollout-ecds");
        let plain = dir.join("config.json");
        fs::write(&plain, config_json).expect("write the config");
        let file = watched.join("turnout.json");
        let wasm = filter_wasm();
        let (code, out) = ctl(&[
            "ecds",
            &plain.to_string_lossy(),
            "--wasm",
            &wasm.to_string_lossy(),
            "-o",
            &file.to_string_lossy(),
        ]);
        assert_eq!(code, 0, "{out}");
        let envoys: Vec<Envoy> = faults
            .into_iter()
            .map(|fault| {
                let mut filters = vec![wasm_filter_ecds("turnout", &watched, &file)];
                filters.extend(fault);
                let yaml = bootstrap_of(&filters, &legacy, &fastapi) + ADMIN_RUNTIME;
                Envoy::start(&yaml, 1)
            })
            .collect();
        for envoy in &envoys {
            envoy.wait_for_stat(
                &ecds_stat("turnout", "update_success"),
                |n| n >= 1,
                Duration::from_secs(10),
            );
        }
        let prometheus = prometheus.then(|| scraping(&envoys));
        let ports = envoys.iter().map(|e| e.listener_port("main")).collect();
        Fleet {
            traffic: Traffic::start(ports),
            prometheus,
            envoys,
            _upstreams: (legacy, fastapi),
            file,
            dir,
        }
    }

    /// The plan's `metrics`: the Prometheus, or both admin endpoints.
    fn metrics(&self) -> String {
        match &self.prometheus {
            Some(p) => format!(r#"{{"prometheus": "http://127.0.0.1:{}"}}"#, p.port()),
            None => format!(r#"{{"envoy_admin": [{}]}}"#, self.admin_urls().join(", ")),
        }
    }

    fn admin_urls(&self) -> Vec<String> {
        let url = |e: &Envoy| format!("\"http://127.0.0.1:{}\"", e.admin_port());
        self.envoys.iter().map(url).collect()
    }

    /// Writes a plan for this fleet and returns its path.
    pub fn plan(&self, steps: &str, analysis: &str, on_failure: &str) -> PathBuf {
        let plan = format!(
            r#"{{"config": {}, "split": "users", "target": "fastapi", "steps": {steps},
  "hold_s": {HOLD_S}, "interval_s": {INTERVAL_S}, "metrics": {}, "analysis": {analysis},
  "on_failure": "{on_failure}"}}"#,
            serde_json::to_string(&self.file.to_string_lossy()).expect("a string"),
            self.metrics()
        );
        let path = self
            .dir
            .join(format!("plan-{}.json", self.traffic.now_ms()));
        fs::write(&path, plan).expect("write the plan");
        path
    }

    /// The upstreams: `(legacy, fastapi)`.
    pub fn upstreams(&self) -> (&Upstream, &Upstream) {
        (&self._upstreams.0, &self._upstreams.1)
    }

    /// Sets the abort percentage of every proxy's fault filter, now.
    pub fn fail_fastapi(&self, percent: u32) -> Instant {
        for envoy in &self.envoys {
            let path = format!("/runtime_modify?{RUNTIME_ABORT}={percent}");
            let mut admin = HttpClient::new(envoy.admin_port());
            let r = admin.send("POST", &path, &[], b"");
            assert_eq!(r.status, 200, "{path}: {}", r.body_str());
        }
        Instant::now()
    }

    /// The split in the ECDS file: the target's weight and the rollback switch.
    pub fn split(&self) -> (f64, bool) {
        let text = fs::read_to_string(&self.file).expect("read the ECDS file");
        let doc: Value = serde_json::from_str(&text).expect("the ECDS file is JSON");
        let config = doc["resources"][0]["typed_config"]["config"]["configuration"]["value"]
            .as_str()
            .expect("the config string");
        let config: Value = serde_json::from_str(config).expect("the config is JSON");
        let split = &config["splits"][0];
        (
            split["targets"][0]["weight"].as_f64().expect("a weight"),
            split["rollback"].as_bool().unwrap_or(false),
        )
    }
}

/// A Prometheus scraping both proxies every 500 ms, once it has seen the
/// split's series of both.
fn scraping(envoys: &[Envoy]) -> Prometheus {
    let targets: Vec<String> = envoys
        .iter()
        .map(|e| format!("\"127.0.0.1:{}\"", e.admin_port()))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 500ms\n  scrape_timeout: 500ms\n\
         scrape_configs:\n- job_name: envoy\n  metrics_path: /stats/prometheus\n  \
         static_configs:\n  - targets: [{}]\n",
        targets.join(", ")
    );
    let prometheus = Prometheus::start(&config);
    prometheus.wait_for(
        r#"count by (instance) (turnout_responses_total{split="users"})"#,
        Duration::from_secs(20),
        |samples| samples.len() == envoys.len(),
    );
    prometheus
}

/// One answered request: when, from which proxy, turnout's cluster and
/// reason, and the status.
#[derive(Clone, Debug)]
pub struct Answer {
    pub at: Instant,
    pub proxy: usize,
    pub cluster: String,
    pub reason: String,
    pub status: u16,
}

/// Requests to `/users` from new users, [`RATE`] per second to each proxy.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    threads: Vec<JoinHandle<()>>,
    started: Instant,
}

impl Traffic {
    pub fn start(ports: Vec<u16>) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let threads = ports
            .into_iter()
            .enumerate()
            .map(|(proxy, port)| {
                let (stop, answers) = (stop.clone(), answers.clone());
                thread::spawn(move || {
                    let mut client = HttpClient::new(port);
                    let mut n = 0u64;
                    let mut next = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let user = format!("u{proxy}-{n}");
                        let r = client.get("/users", &[("x-user-id", &user)]);
                        let decision = r.header("x-turnout-decision").unwrap_or_default();
                        let field = |name: &str| {
                            decision
                                .split("; ")
                                .find_map(|f| f.strip_prefix(name))
                                .unwrap_or_default()
                                .to_string()
                        };
                        let answer = Answer {
                            at: Instant::now(),
                            proxy,
                            cluster: field("cluster="),
                            reason: field("reason="),
                            status: r.status,
                        };
                        answers.lock().expect("answers").push(answer);
                        next += Duration::from_micros(1_000_000 / RATE);
                        let now = Instant::now();
                        if next > now {
                            sleep(next - now);
                        } else {
                            next = now;
                        }
                    }
                })
            })
            .collect();
        Traffic {
            stop,
            answers,
            threads,
            started: Instant::now(),
        }
    }

    pub fn answers(&self) -> Vec<Answer> {
        self.answers.lock().expect("answers").clone()
    }

    fn now_ms(&self) -> u128 {
        self.started.elapsed().as_millis()
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Runs turnoutctl to the end: exit code and stdout (stderr passed through).
fn ctl(args: &[&str]) -> (i32, String) {
    let run = served::ctl(args);
    eprint!("{}", run.stderr);
    (run.code, run.stdout)
}

/// A running `turnoutctl rollout`, killed if the test ends first. Its
/// lines are echoed (with `--nocapture`) and kept with their time.
pub struct Controller {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    reader: Option<JoinHandle<()>>,
}

impl Controller {
    pub fn start(plan: &Path, extra: &[&str]) -> Controller {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_turnoutctl"));
        cmd.arg("rollout")
            .arg(plan)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut child = spawn_tied(cmd).expect("start turnoutctl rollout");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = lines.clone();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("  | {line}");
                kept.lock().expect("lines").push((Instant::now(), line));
            }
        });
        Controller {
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// Waits for the first line that contains `needle`, and returns its time.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .lines
                .lock()
                .expect("lines")
                .iter()
                .find(|(_, l)| l.contains(needle))
                .map(|(at, _)| *at);
            if let Some(at) = found {
                return at;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} in {timeout:?}:\n{}",
                self.output()
            );
            sleep(Duration::from_millis(5));
        }
    }

    fn output(&self) -> String {
        let lines = self.lines.lock().expect("lines");
        lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits for the exit: the code and the whole output.
    pub fn finish(mut self, timeout: Duration) -> (i32, String) {
        let deadline = Instant::now() + timeout;
        while self.running() {
            assert!(
                Instant::now() < deadline,
                "still running after {timeout:?}:\n{}",
                self.output()
            );
            sleep(Duration::from_millis(20));
        }
        let status = self.child.wait().expect("wait");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("reader");
        }
        (status.code().expect("exited with a code"), self.output())
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const STEPS: &str = "[10, 30, 50, 80, 100]";

/// Long enough for five steps of 2 s holds with settling, on a busy machine.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The target's weight in the summary `ROLLED BACK at step N/5 fastapi W %`.
pub fn rolled_back_weight(output: &str) -> f64 {
    let summary = output
        .lines()
        .find_map(|l| l.split("ROLLED BACK at step ").nth(1))
        .unwrap_or_else(|| panic!("no ROLLED BACK summary:\n{output}"));
    summary
        .split_whitespace()
        .nth(2)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no weight in {summary:?}"))
}

/// The interval lines of step `n/5` that passed, in order.
pub fn passed_steps(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|l| l.ends_with("· passed"))
        .map(|l| l.split(" · ").next().unwrap_or_default().to_string())
        .collect()
}
