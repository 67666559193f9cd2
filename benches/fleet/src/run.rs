//! One run of the benchmark, start to end: the server on a scratch
//! directory, the real Envoys, the simulated proxies; the pushes, each
//! timed from the file's rename to the server's status showing every
//! answer; the server killed and started again on the same port.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use integration::{filter_wasm, scratch_dir};
use serde_json::Value;
use tonic::transport::Endpoint;
use xxhash_rust::xxh64::xxh64;

use crate::answer::{Answerer, Temper};
use crate::envoys::RealEnvoys;
use crate::figures::{Answers, Push, Report, Restart};
use crate::server::{build_turnoutctl, Launch, Server};
use crate::sim::{self, Tally};

/// The ECDS resource every proxy subscribes to: `turnout.json`.
const RESOURCE: &str = "turnout";

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Simulated proxies.
    pub proxies: usize,
    /// Real Envoys beside them.
    pub envoys: usize,
    pub pushes: usize,
    /// Every `nack_every`-th simulated proxy NACKs every push (0: none).
    pub nack_every: usize,
    /// The server's `--poll-ms`; `None`: its default, what an operator gets.
    pub poll_ms: Option<u64>,
    /// Build turnoutctl in release, as an operator installs it (else the
    /// test profile, quicker to build).
    pub release: bool,
    /// Run this turnoutctl instead of building one (a profiling build,
    /// an installed release).
    pub turnoutctl: Option<PathBuf>,
    /// Simulated proxies connecting at once at the start.
    pub opening: usize,
    /// The quiet time between two pushes.
    pub gap: Duration,
    /// How long any one wait may take before the run fails.
    pub timeout: Duration,
}

/// Unix milliseconds, the unit of the server's status times.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Push `n`'s config: a split whose salt makes each push a new version.
fn config(n: usize) -> String {
    format!(
        r#"{{"version": 1, "splits": [{{"name": "users", "match": {{"route": "users"}}, "stable": "legacy",
  "targets": [{{"cluster": "fastapi", "weight": {}}}], "salt": "push-{n}"}}]}}
"#,
        n % 101
    )
}

/// Replaces `path` atomically (temporary file, fsync, rename); the time
/// just before the rename, and the version the server will serve it as.
fn write(path: &Path, text: &str) -> Result<(u64, String), String> {
    let tmp = path.with_file_name(".push.tmp");
    let mut file = File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    let at = now_ms();
    fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((at, format!("{:016x}", xxh64(text.as_bytes(), 0))))
}

/// Raises this process's soft RLIMIT_NOFILE to at least `want` (within
/// the hard limit); the server started afterwards inherits it. The limit
/// in force.
fn raise_nofile(want: u64) -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(u64::MAX);
    if current >= want {
        return current;
    }
    let raised = limit.maximum.map_or(want, |max| want.min(max));
    limit.current = Some(raised);
    match setrlimit(Resource::Nofile, limit) {
        Ok(()) => raised,
        Err(_) => current,
    }
}

/// Everything a run holds while it runs.
struct Fleet {
    launch: Launch,
    file: PathBuf,
    logs: PathBuf,
    server: Server,
    envoys: Option<RealEnvoys>,
    answerers: Vec<Answerer>,
    tally: Arc<Tally>,
    timeout: Duration,
}

/// Runs the benchmark; what it measured.
pub fn run(options: &Options) -> Result<Report, String> {
    let fds = 2 * (options.proxies + options.envoys) as u64 + 256;
    let nofile = raise_nofile(fds);
    let logs = scratch_dir("bench-fleet-logs");
    let (launch, server, first) = start_server(options, &logs)?;
    sleep(Duration::from_millis(500));
    let memory_empty = server.memory()?;
    let server_nofile = server.open_files()?;
    let envoys = match options.envoys {
        0 => None,
        n => Some(RealEnvoys::start(n, server.port, &launch.wasm)?),
    };
    let answerers = answerers(options);
    let mut fleet = Fleet {
        file: launch.dir.join(format!("{RESOURCE}.json")),
        logs,
        launch,
        server,
        envoys,
        tally: Tally::new(answerers.len()),
        answerers,
        timeout: options.timeout,
    };
    let opened = Instant::now();
    let runtime = fleet.simulate(options.opening)?;
    fleet.tally.wait_version(&first, fleet.timeout)?;
    let connect_ms = opened.elapsed().as_millis() as u64;
    // Before the first status, whose document is built in memory.
    let memory_connected = fleet.server.memory()?;
    fleet.settled(&first)?;
    let idle_cpu_per_s = fleet.idle_cpu(Duration::from_secs(2))?;
    let mut pushes = Vec::new();
    for n in 1..=options.pushes {
        sleep(options.gap);
        pushes.push(fleet.push(n)?);
    }
    let memory_after = fleet.server.memory()?;
    let last = pushes.last().map_or(first, |p: &Push| p.version.clone());
    let restart = fleet.restart(&last)?;
    runtime.shutdown_background();
    Ok(Report {
        proxies: options.proxies,
        nacking: fleet
            .answerers
            .iter()
            .filter(|a| a.temper() == Temper::Nack)
            .count(),
        envoys: options.envoys,
        poll_ms: options.poll_ms,
        nofile,
        server_nofile,
        connect_ms,
        memory_empty,
        memory_connected,
        memory_after,
        idle_cpu_per_s,
        pushes,
        restart,
    })
}

/// The served directory with its first config, and the server on it
/// (its log in `logs`); the first config's version.
fn start_server(options: &Options, logs: &Path) -> Result<(Launch, Server, String), String> {
    let binary = match &options.turnoutctl {
        Some(given) => given.clone(),
        None => build_turnoutctl(options.release)?,
    };
    let wasm = if options.envoys > 0 {
        filter_wasm().to_string_lossy().into_owned()
    } else {
        "turnout.wasm".to_string()
    };
    let dir = scratch_dir("bench-fleet-dir");
    let (_, first) = write(&dir.join(format!("{RESOURCE}.json")), &config(0))?;
    let log = logs.join("server-1.log");
    let launch = Launch {
        binary,
        dir,
        wasm,
        poll_ms: options.poll_ms,
    };
    let server = Server::start(&launch, 0, &log)?;
    Ok((launch, server, first))
}

/// The simulated proxies: `sim-0`…, every `nack_every`-th one NACKing.
fn answerers(options: &Options) -> Vec<Answerer> {
    (0..options.proxies)
        .map(|i| {
            let nacks = options.nack_every > 0 && i % options.nack_every == options.nack_every - 1;
            let temper = if nacks { Temper::Nack } else { Temper::Ack };
            Answerer::new(&format!("sim-{i}"), "bench-fleet", RESOURCE, temper)
        })
        .collect()
}

impl Fleet {
    /// Starts the simulated proxies on a runtime of their own (two
    /// workers, the machine's cores), `opening` connecting at once.
    fn simulate(&self, opening: usize) -> Result<tokio::runtime::Runtime, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        let endpoint = Endpoint::from_shared(format!("http://127.0.0.1:{}", self.server.port))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(1));
        let answerers = self.answerers.clone();
        sim::start(&runtime, answerers, &endpoint, &self.tally, opening);
        Ok(runtime)
    }

    /// The server's CPU per second over `span` with nothing to push.
    fn idle_cpu(&self, span: Duration) -> Result<Duration, String> {
        let before = self.server.cpu()?;
        sleep(span);
        Ok((self.server.cpu()? - before).div_f64(span.as_secs_f64()))
    }

    /// One push: rename, every proxy's answer, the server's figures.
    fn push(&self, n: usize) -> Result<Push, String> {
        let (cpu, log) = (self.server.cpu()?, self.server.log_bytes());
        let (renamed, version) = write(&self.file, &config(n))?;
        self.tally.wait_version(&version, self.timeout)?;
        if let Some(envoys) = &self.envoys {
            envoys.wait_applied(&version, self.timeout)?;
        }
        // Before reading the status, whose cost is not the push's.
        let cpu = self.server.cpu()? - cpu;
        let log_bytes = self.server.log_bytes().saturating_sub(log);
        let rss_kib = self.server.memory()?.rss_kib;
        let (status, answers) = self.settled(&version)?;
        let since = status["resources"][0]["since_ms"].as_u64().unwrap_or(0);
        let (sims, envoys) = self.last_times(&status, &version);
        Ok(Push {
            read_ms: since.saturating_sub(renamed),
            sims_last_sent_ms: sims.0.saturating_sub(renamed),
            sims_last_ack_ms: sims.1.saturating_sub(renamed),
            envoys_last_ack_ms: envoys.map(|at| at.saturating_sub(renamed)),
            version,
            answers,
            cpu,
            log_bytes,
            rss_kib,
        })
    }

    /// Kills the server, starts it again on the same port, and waits
    /// until every proxy answered it.
    fn restart(&mut self, version: &str) -> Result<Restart, String> {
        self.server.kill();
        let epoch = self.tally.next_epoch();
        let started = now_ms();
        self.server = Server::start(
            &self.launch,
            self.server.port,
            &self.logs.join("server-2.log"),
        )?;
        let listening_ms = now_ms().saturating_sub(started);
        self.tally.wait_epoch(epoch, self.timeout)?;
        let cpu = self.server.cpu()?;
        let (status, answers) = self.settled(version)?;
        let (sims, envoys) = self.last_times(&status, version);
        Ok(Restart {
            listening_ms,
            sims_last_ack_ms: sims.1.saturating_sub(started),
            envoys_last_ack_ms: envoys.map(|at| at.saturating_sub(started)),
            answers,
            cpu,
            memory: self.server.memory()?,
        })
    }

    /// The status once it shows every proxy's answer to `version` (or at
    /// the timeout), and what it shows.
    fn settled(&self, version: &str) -> Result<(Value, Answers), String> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let status = self.server.status()?;
            let answers = self.answers(&status, version);
            if answers.wrong == 0 || Instant::now() > deadline {
                return Ok((status, answers));
            }
            sleep(Duration::from_millis(10));
        }
    }

    /// Counts, in `status`, the proxies that did with `version` what they
    /// were told to.
    fn answers(&self, status: &Value, version: &str) -> Answers {
        let mut answers = Answers::default();
        let envoys = self.envoys.iter().flat_map(|e| e.nodes());
        let expected = self
            .answerers
            .iter()
            .map(|a| (a.node(), a.temper(), a.nack_message(version)))
            .chain(envoys.map(|node| (node, Temper::Ack, String::new())));
        let tracks = tracks(status);
        for (node, temper, message) in expected {
            let track = tracks.get(node).copied().unwrap_or(&Value::Null);
            let acked = track["acked_version"] == version && track["state"] == "acked";
            let nack = &track["nack"];
            let nacked = nack["version"] == version && nack["message"] == message.as_str();
            match temper {
                Temper::Ack if acked => answers.acked += 1,
                Temper::Nack if nacked => answers.nacked += 1,
                _ => answers.wrong += 1,
            }
        }
        answers
    }

    /// From `status`: the last time a simulated proxy was sent `version`
    /// and ACKed it, and the last real Envoy's ACK.
    fn last_times(&self, status: &Value, version: &str) -> ((u64, u64), Option<u64>) {
        let tracks = tracks(status);
        let track = |node: &str| tracks.get(node).copied().unwrap_or(&Value::Null);
        let acked_at = |node: &str| {
            let track = track(node);
            (track["acked_version"] == version).then(|| track["acked_at_ms"].as_u64().unwrap_or(0))
        };
        let sims = self.answerers.iter().map(|a| a.node());
        let sent = sims
            .clone()
            .filter_map(|node| track(node)["sent_at_ms"].as_u64())
            .max()
            .unwrap_or(0);
        let acked = sims.filter_map(acked_at).max().unwrap_or(0);
        let envoys = self
            .envoys
            .as_ref()
            .and_then(|e| e.nodes().filter_map(acked_at).max());
        ((sent, acked), envoys)
    }
}

/// Each proxy's subscription to the resource in the status, by node id.
fn tracks(status: &Value) -> HashMap<&str, &Value> {
    let all = status["proxies"].as_array().map_or(&[][..], Vec::as_slice);
    all.iter()
        .filter_map(|p| Some((p["node"].as_str()?, &p["resources"][0])))
        .collect()
}
