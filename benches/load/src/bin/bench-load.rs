//! `cargo bench-load`: turnout side by side with Envoy's own sticky split,
//! the cheapest proxy-wasm filter and a Lua filter, in one Envoy with one
//! worker pinned to one core, `wrk` (and the upstreams) pinned to the
//! other.
//!
//! The run is many short slices: each cycle runs wrk for `--slice-seconds`
//! against every variant once, each cycle starting one variant later than
//! the last (a b c c' d, b c c' d a, c c' d a b, …). Envoy's CPU is read
//! in nanoseconds (the sum of `/proc/<pid>/task/*/schedstat`, utime +
//! stime if the kernel has no schedstat) before and after each slice. The
//! key figures are paired within a cycle, so that the drift of the shared
//! machine between cycles cancels: per cycle R = (b − a)/(c − a), the CPU
//! per request turnout adds over Envoy's own split against what the floor
//! adds, and b/c in requests/s. The report gives their medians, quartiles
//! and a bootstrap interval of the median over the cycles, and the pooled
//! ratio of sums over all slices with its own bootstrap interval: the
//! headline, because on a shared VM one slice's CPU per request varies by
//! 10–20 % (the machine's speed drifts over seconds), a cycle's (c) − (a)
//! is then sometimes ≤ 0, and the median of per-cycle ratios leans low.
//! The same figures corrected for the steal on Envoy's core are given as a
//! check. Slices of 2 s: 1 s and 3 s slices (for the same total time) gave
//! no narrower intervals.
//!
//! Options (all optional): `--cycles 25 --slice-seconds 2 --connections 32
//! --threads 1 --warmup 2 --upstream harness|envoy --memory-requests 100000
//! --proxy-core 0 --load-core 1 --max-other-percent 25 --retries 3
//! --bootstrap 10000`. `--rounds` and `--seconds` are the old names of
//! `--cycles` and `--slice-seconds`. A slice during which other processes
//! used more than 25 % of a core (the "other CPU" column: all busy time in
//! /proc/stat, steal included, but Envoy's, wrk's and the upstreams') is
//! measured again, up to 3 times. `--only b,c` (letters a b c c' d e, or
//! listener names native turnout floor floor_clear lua turnout_native) runs only those
//! variants and (a), which is always run. For experiments, `--extra
//! NAME=floor:WORDS` (repeatable) adds a listener running the floor filter
//! with extra hostcalls (WORDS, comma-separated: see
//! `benches/floor/src/lib.rs`), `--extra NAME=turnout:PATH` one running
//! another build of turnout (an older shell, another opt-level) with the
//! same configuration, `--extra NAME=native:PATH` another build of the native
//! module (a `.so`) with it, and `--extra NAME=config:JSON` this build of turnout
//! with another configuration (path splits, `tracestate`, `debug`: what a
//! feature costs), and `--extra NAME=bare` the floor without the SDK
//! (`benches/floor-bare`, one exported callback), `--extra NAME=native-floor`
//! the native floor (turnout-native built with `--features floor`: one
//! header read, one write, the route cache cleared), `--extra
//! NAME=native-config:JSON` this build of the native module with another
//! configuration; extras always run, and the report gives each one's
//! CPU added over (a) and over (b), paired per cycle. The report is printed
//! and written to `target/bench-load/report.md`, every slice to
//! `target/bench-load/slices.csv`.
//!
//! The options are read in `turnout_bench_load::options` (`--help` lists
//! them); `main` then runs the cycles (`run_cycles`), the memory probe
//! (`memory_probe`), works out the figures (`figures`) and writes the
//! report (`report`).

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::{exit, Command};
use std::time::{Duration, Instant};

use integration::{admin_get, envoy_binary, target_dir, workspace_root};
use turnout_bench_load::options::Options;
use turnout_bench_load::{
    children_cpu_seconds, ensure_wrk, fnv1a, hostcalls, median, pin_process, pin_self, quantile,
    ratio_of_medians, rss_kib, steal_adjusted, thread_count, ticks_per_second, wasm_memories_kib,
    CpuClock, Estimate, ExtraModule, Hostcalls, LoadStage, MachineTicks, Variant, Wrk, WrkResult,
    TURNOUT_CONFIG, WRK_SCRIPT,
};

/// The confidence level of the bootstrap intervals.
const LEVEL: f64 = 0.9;

/// One variant's figures in one slice.
struct Sample {
    wrk: WrkResult,
    /// Envoy's CPU time per request, microseconds.
    envoy_us: f64,
    /// Envoy's CPU time over the slice, nanoseconds.
    envoy_ns: u64,
    /// The load side's (wrk and the upstreams) CPU time per request.
    load_us: f64,
    /// CPU time of everything else on the machine during the slice, steal
    /// included, as a share of one core: the noise.
    foreign: f64,
    /// Of which stolen by the hypervisor (both cores).
    steal: f64,
    /// Share of the slice the hypervisor stole from Envoy's core.
    steal_proxy: f64,
    /// And from the load core.
    steal_load: f64,
    /// Wall time of the slice, seconds.
    wall: f64,
    /// Measurements thrown away before this one (the machine was busy).
    retried: u32,
    /// Kept although still busy after every retry.
    noisy: bool,
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    // SAFETY: sysconf has no preconditions. Not available_parallelism:
    // this process is pinned to one core.
    let nproc = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let envoy = Command::new(envoy_binary())
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let envoy = envoy
        .rsplit("version: ")
        .next()
        .unwrap_or_default()
        .to_string();
    format!(
        "nproc {nproc}; {model}; Linux {}; Envoy {envoy}",
        kernel.trim()
    )
}

/// The commit, and the files changed since it under the directories the
/// modules are built from: which turnout was measured.
fn source_state() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(workspace_root())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_string())
            .unwrap_or_default()
    };
    let head = git(&["rev-parse", "--short", "HEAD"]);
    let changed = git(&["status", "--porcelain", "--", "filter", "benches/floor"]);
    let changed: Vec<&str> = changed.lines().map(|l| l.get(3..).unwrap_or(l)).collect();
    if changed.is_empty() {
        format!("git {head}, filter/ and benches/floor/ as committed")
    } else {
        format!(
            "git {head} with uncommitted changes in {}",
            changed.join(", ")
        )
    }
}

/// A figure over the cycles: `num[k] / den[k]` per cycle `k`.
struct Figure {
    name: String,
    unit: &'static str,
    estimate: Estimate,
}

/// The figures of the issue: R and the requests/s ratio, raw and
/// steal-adjusted.
struct Key {
    r: Figure,
    r_adjusted: Figure,
    rps: Figure,
    rps_adjusted: Figure,
    /// median(b − a) / median(c − a) with its bootstrap interval.
    of_medians: (f64, f64, f64),
}

/// What the slices run against: the options, wrk, the stage and its
/// variants.
struct Bench {
    o: Options,
    wrk_bin: PathBuf,
    script: PathBuf,
    stage: LoadStage,
    /// (listener, short name, label): the variants run, then the extras.
    cases: Vec<(String, String, String)>,
}

impl Bench {
    fn wrk(&self, seconds: u32) -> Wrk {
        Wrk {
            bin: self.wrk_bin.clone(),
            script: self.script.clone(),
            threads: self.o.threads,
            connections: self.o.connections,
            seconds,
        }
    }

    fn index(&self, listener: &str) -> Option<usize> {
        self.cases.iter().position(|c| c.0 == listener)
    }
}

/// What the cycles measured, and how.
struct Cycles {
    /// `samples[cycle][case]`
    samples: Vec<Vec<Sample>>,
    /// Every slice measured, kept or not.
    csv: String,
    noisy: usize,
    retried: usize,
    envoy_clock: CpuClock,
    upstream_clock: CpuClock,
    /// Clock ticks per second of /proc/stat.
    hz: f64,
    load_at_start: String,
    load_at_end: String,
    /// Seconds of warm-up and slices.
    measured_for: f64,
    envoy_threads: usize,
}

/// The wasm VMs' memory, and Envoy's, before and after the probe's
/// requests: (requests served, VmRSS KiB, wasm memories).
type MemoryReading = (u64, u64, Vec<(u64, u64)>);

struct Memory {
    before: MemoryReading,
    after: MemoryReading,
    /// `/stats?filter=^wasm\.` at the end.
    wasm_stats: String,
}

/// The figures over the cycles, and what the report needs of their making.
struct Figures {
    key: Option<Key>,
    list: Vec<Figure>,
    /// Envoy's CPU per request corrected for steal, `[cycle][case]`.
    cpu_adjusted: Vec<Vec<f64>>,
    steal_m: Vec<Vec<f64>>,
    beta_cpu: f64,
    beta_rps: f64,
}

fn main() {
    let o = Options::from_args();
    if let Err(e) = pin_self(o.load_core) {
        eprintln!("cannot pin to core {}: {e}", o.load_core);
        exit(1);
    }
    let wrk_bin = ensure_wrk();
    let dir = target_dir().join("bench-load");
    fs::create_dir_all(&dir).expect("create target/bench-load");
    let script = dir.join("users.lua");
    fs::write(&script, WRK_SCRIPT).expect("write the wrk script");

    eprintln!("building the wasm modules and starting Envoy...");
    let source = source_state();
    let stage = LoadStage::with_extras(o.upstream, 1, &o.extras);
    let cases = cases(&o);
    let bench = Bench {
        o,
        wrk_bin,
        script,
        stage,
        cases,
    };
    let cycles = run_cycles(&bench);
    let memory = memory_probe(&bench);
    let stage = &bench.stage;
    let calls = [
        ("(b) turnout", &stage.turnout_wasm, TURNOUT_CONFIG),
        ("(c) floor", &stage.floor_wasm, ""),
        (
            "(c') floor + clear_route_cache",
            &stage.floor_wasm,
            "clear_route_cache",
        ),
    ]
    .map(|(label, module, config)| (label, hostcalls(module, config).expect("hostcalls.py")));
    let figures = figures(&bench, &cycles.samples);
    let report = report(&bench, &cycles, &memory, &calls, &figures, &source);
    println!("{report}");
    let out = dir.join("report.md");
    fs::write(&out, &report).expect("write the report");
    fs::write(dir.join("slices.csv"), &cycles.csv).expect("write the slices");
    eprintln!(
        "report written to {}, every slice to {}",
        out.display(),
        dir.join("slices.csv").display()
    );
}

/// (listener, short name, label) of every variant run: the built-in ones
/// `--only` keeps, (a) always, then the extras.
fn cases(o: &Options) -> Vec<(String, String, String)> {
    let letter = |v: Variant| match v {
        Variant::Native => "a",
        Variant::Turnout => "b",
        Variant::Floor => "c",
        Variant::FloorClear => "c'",
        Variant::Lua => "d",
        Variant::TurnoutNative => "e",
    };
    Variant::ALL
        .iter()
        .filter(|v| {
            **v == Variant::Native
                || o.only
                    .as_ref()
                    .is_none_or(|only| only.iter().any(|n| n == v.listener()))
        })
        .map(|v| {
            (
                v.listener().to_string(),
                letter(*v).to_string(),
                v.label().to_string(),
            )
        })
        .chain(o.extras.iter().map(|e| {
            let label = match &e.module {
                ExtraModule::Floor(words) => format!("(x) {}: floor + {words}", e.name),
                ExtraModule::Turnout(path) => {
                    format!("(x) {}: turnout {}", e.name, path.display())
                }
                ExtraModule::Config(json) => format!("(x) {}: turnout with {json}", e.name),
                ExtraModule::Bare(_) => format!("(x) {}: the floor without the SDK", e.name),
                ExtraModule::Native(path) => {
                    format!("(x) {}: turnout-native {}", e.name, path.display())
                }
                ExtraModule::NativeConfig(json) => {
                    format!("(x) {}: turnout-native with {json}", e.name)
                }
            };
            (e.name.clone(), e.name.clone(), label)
        }))
        .collect()
}

/// Pins Envoy, warms every listener up, then runs the cycles.
fn run_cycles(bench: &Bench) -> Cycles {
    let (o, stage, cases) = (&bench.o, &bench.stage, &bench.cases);
    let pid = stage.envoy.pid();
    pin_process(pid, o.proxy_core).unwrap_or_else(|e| {
        eprintln!("{e}");
        exit(1)
    });
    let upstream_pid = stage.upstreams.pid();
    let envoy_clock = CpuClock::for_process(pid);
    let upstream_clock = CpuClock::for_process(upstream_pid);
    let started = Instant::now();
    let load_at_start = load_average();
    eprintln!(
        "load average at start: {load_at_start}; Envoy's CPU from {}",
        envoy_clock.describe()
    );

    for (name, _, _) in cases {
        let r = bench
            .wrk(o.warmup)
            .run(stage.listener_port(name))
            .expect("warm-up");
        eprintln!("warm-up {name:<12} {:>9.0} req/s", r.requests_per_second);
        assert_eq!(r.errors, 0, "{name} answered errors during warm-up");
    }

    let hz = ticks_per_second();
    let measure = |name: &str| -> Sample {
        let read = || {
            (
                envoy_clock.read(pid).expect("Envoy's CPU time"),
                upstream_clock
                    .read(upstream_pid)
                    .expect("the upstreams' CPU time"),
                children_cpu_seconds(),
                MachineTicks::read(),
            )
        };
        let (e0, u0, c0, m0) = read();
        let t0 = Instant::now();
        let r = bench
            .wrk(o.slice_seconds)
            .run(stage.listener_port(name))
            .expect("wrk");
        let wall = t0.elapsed().as_secs_f64();
        let (e1, u1, c1, m1) = read();
        let n = r.requests.max(1) as f64;
        let envoy_ns = e1.saturating_sub(e0);
        let envoy_s = envoy_ns as f64 / 1e9;
        let load_s = u1.saturating_sub(u0) as f64 / 1e9 + (c1 - c0);
        let busy_s = m1.busy.saturating_sub(m0.busy) as f64 / hz;
        let steal_s = m1.steal.saturating_sub(m0.steal) as f64 / hz;
        let core_steal = |core| m1.steal_since(&m0, core) as f64 / hz / wall;
        Sample {
            envoy_us: envoy_s / n * 1e6,
            envoy_ns,
            load_us: load_s / n * 1e6,
            foreign: (busy_s - envoy_s - load_s).max(0.0) / wall,
            steal: steal_s / wall,
            steal_proxy: core_steal(o.proxy_core),
            steal_load: core_steal(o.load_core),
            wall,
            retried: 0,
            noisy: false,
            wrk: r,
        }
    };
    let n = cases.len();
    let mut csv = String::from(
        "cycle,position,listener,kept,requests,seconds,requests_per_second,p50_us,p99_us,errors,envoy_ns,envoy_us_per_request,load_us_per_request,other_share,steal_share,steal_proxy_share,steal_load_share,wall_s\n",
    );
    // samples[cycle][case]
    let mut samples: Vec<Vec<Sample>> = Vec::new();
    let mut noisy = 0;
    let mut retried = 0;
    for cycle in 0..o.cycles as usize {
        // Each cycle starts one variant later (a b c d, b c d a, c d a b,
        // …): a variant's place in the cycle is not the same every time,
        // so whatever the place costs (the variant before it leaves the
        // caches, the pools, the allocator as it likes them) is spread
        // over all of them; over a multiple of the number of variants,
        // evenly.
        let mut row: Vec<Option<Sample>> = (0..n).map(|_| None).collect();
        for (position, i) in (0..n).map(|k| (k + cycle) % n).enumerate() {
            let name = &cases[i].0;
            // A slice during which other processes took more than
            // `max_other` of a core is measured again (up to `retries`
            // times); the last try is kept and counted as noisy.
            for attempt in 0..=o.retries {
                let mut s = measure(name);
                let quiet = s.foreign <= o.max_other && s.wrk.errors == 0;
                let keep = quiet || attempt == o.retries;
                let _ = writeln!(
                    csv,
                    "{},{position},{name},{keep},{},{},{},{},{},{},{},{:.3},{:.3},{:.4},{:.4},{:.4},{:.4},{:.3}",
                    cycle + 1,
                    s.wrk.requests,
                    s.wrk.seconds,
                    s.wrk.requests_per_second,
                    s.wrk.p50_us,
                    s.wrk.p99_us,
                    s.wrk.errors,
                    s.envoy_ns,
                    s.envoy_us,
                    s.load_us,
                    s.foreign,
                    s.steal,
                    s.steal_proxy,
                    s.steal_load,
                    s.wall
                );
                eprintln!(
                    "cycle {:>2} {name:<12} {:>7.0} req/s  p50 {:>6.0} us  p99 {:>6.0} us  Envoy {:>7.2} us/req  load side {:>6.2} us/req  other {:>3.0}% (steal {:>2.0}%, from Envoy's core {:>2.0}%)  errors {}",
                    cycle + 1,
                    s.wrk.requests_per_second,
                    s.wrk.p50_us,
                    s.wrk.p99_us,
                    s.envoy_us,
                    s.load_us,
                    s.foreign * 100.0,
                    s.steal * 100.0,
                    s.steal_proxy * 100.0,
                    s.wrk.errors
                );
                if keep {
                    s.retried = attempt;
                    s.noisy = !quiet;
                    noisy += usize::from(!quiet);
                    retried += attempt as usize;
                    row[i] = Some(s);
                    break;
                }
                eprintln!("  the machine was busy: measuring {name} again");
                std::thread::sleep(Duration::from_secs(2));
            }
        }
        samples.push(row.into_iter().map(|s| s.expect("measured")).collect());
    }
    let load_at_end = load_average();
    let measured_for = started.elapsed().as_secs_f64();
    let envoy_threads = thread_count(pid);
    Cycles {
        samples,
        csv,
        noisy,
        retried,
        envoy_clock,
        upstream_clock,
        hz,
        load_at_start,
        load_at_end,
        measured_for,
        envoy_threads,
    }
}

/// The wasm VMs' memory: after everything so far, then after
/// `memory_requests` more through turnout.
fn memory_probe(bench: &Bench) -> Memory {
    let (stage, pid) = (&bench.stage, bench.stage.envoy.pid());
    let served = |stage: &LoadStage| -> u64 {
        let (_, body) = admin_get(
            stage.envoy.admin_port(),
            "/stats?filter=^http\\.turnout\\.downstream_rq_completed$",
        );
        body.rsplit(": ")
            .next()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let before = (
        served(stage),
        rss_kib(pid).unwrap_or(0),
        wasm_memories_kib(pid).unwrap_or_default(),
    );
    let mut more = 0;
    while more < bench.o.memory_requests {
        more += bench
            .wrk(5)
            .run(stage.port(Variant::Turnout))
            .expect("wrk")
            .requests;
    }
    let after = (
        served(stage),
        rss_kib(pid).unwrap_or(0),
        wasm_memories_kib(pid).unwrap_or_default(),
    );
    let (_, wasm_stats) = admin_get(stage.envoy.admin_port(), "/stats?filter=^wasm\\.");
    Memory {
        before,
        after,
        wasm_stats,
    }
}

/// Envoy's CPU per request of case `i`, per cycle.
fn cpu_of(samples: &[Vec<Sample>], i: usize) -> Vec<f64> {
    samples.iter().map(|row| row[i].envoy_us).collect()
}

fn minus(x: &[f64], y: &[f64]) -> Vec<f64> {
    x.iter().zip(y).map(|(x, y)| x - y).collect()
}

/// What case `i` adds to Envoy's CPU per request over (a), per cycle.
fn added(samples: &[Vec<Sample>], i: usize) -> Vec<f64> {
    minus(&cpu_of(samples, i), &cpu_of(samples, 0))
}

/// The figures over the cycles.
fn figures(bench: &Bench, samples: &[Vec<Sample>]) -> Figures {
    let (o, cases) = (&bench.o, &bench.cases);
    let n = cases.len();
    let index = |listener: &str| bench.index(listener);
    let cycles = samples.len();
    let cpu_of = |i: usize| cpu_of(samples, i);
    let rps_of = |i: usize| -> Vec<f64> {
        samples
            .iter()
            .map(|row| row[i].wrk.requests_per_second)
            .collect()
    };
    let (a, b, c, c2) = (0, index("turnout"), index("floor"), index("floor_clear"));
    let added = |i: usize| added(samples, i);
    let diff = |name: String, x: Vec<f64>| Figure {
        name,
        unit: "µs",
        estimate: Estimate::of_differences(&x, o.resamples, LEVEL),
    };
    let ratio = |name: String, x: Vec<f64>, y: Vec<f64>| Figure {
        name,
        unit: "×",
        estimate: Estimate::of(&x, &y, o.resamples, LEVEL),
    };
    let short = |i: usize| format!("({})", cases[i].1);

    // The same figures corrected for the steal on Envoy's core (see
    // `steal_adjusted`): `m[cycle][case]`, the fit repeated in every
    // bootstrap resample of the cycles.
    let matrix = |f: &dyn Fn(&Sample) -> f64| -> Vec<Vec<f64>> {
        samples
            .iter()
            .map(|row| row.iter().map(f).collect())
            .collect()
    };
    let (cpu_m, rps_m, steal_m) = (
        matrix(&|s| s.envoy_us),
        matrix(&|s| s.wrk.requests_per_second),
        matrix(&|s| s.steal_proxy),
    );
    let all: Vec<usize> = (0..cycles).collect();
    let (cpu_adjusted, beta_cpu) = steal_adjusted(&cpu_m, &steal_m, &all);
    let (_, beta_rps) = steal_adjusted(&rps_m, &steal_m, &all);
    let adjusted = |name: String,
                    unit: &'static str,
                    m: &Vec<Vec<f64>>,
                    num: &dyn Fn(&[f64]) -> f64,
                    den: &dyn Fn(&[f64]) -> f64| Figure {
        name,
        unit,
        estimate: Estimate::over_cycles(cycles, o.resamples, LEVEL, |idx| {
            let (rows, _) = steal_adjusted(m, &steal_m, idx);
            (
                rows.iter().map(|r| num(r)).collect(),
                rows.iter().map(|r| den(r)).collect(),
            )
        }),
    };

    let mut figures: Vec<Figure> = Vec::new();
    let key = match (b, c) {
        (Some(b), Some(c)) => Some(Key {
            r: ratio(
                "R = ((b) − (a)) / ((c) − (a)), Envoy CPU per request".into(),
                added(b),
                added(c),
            ),
            r_adjusted: adjusted(
                "R, steal-adjusted".into(),
                "×",
                &cpu_m,
                &|r| r[b] - r[a],
                &|r| r[c] - r[a],
            ),
            rps: ratio("requests/s (b) / (c)".into(), rps_of(b), rps_of(c)),
            rps_adjusted: adjusted(
                "requests/s (b) / (c), steal-adjusted".into(),
                "×",
                &rps_m,
                &|r| r[b],
                &|r| r[c],
            ),
            of_medians: ratio_of_medians(&added(b), &added(c), o.resamples, LEVEL),
        }),
        _ => None,
    };
    for i in 1..n {
        figures.push(diff(format!("{} − (a), µs/request", short(i)), added(i)));
        figures.push(adjusted(
            format!("{} − (a), steal-adjusted", short(i)),
            "µs",
            &cpu_m,
            &|r| r[i] - r[a],
            &|_| 1.0,
        ));
    }
    if let (Some(c), Some(c2)) = (c, c2) {
        figures.push(diff(
            "(c') − (c): the clear_route_cache call".into(),
            minus(&cpu_of(c2), &cpu_of(c)),
        ));
    }
    if let Some(b) = b {
        for i in (1..n).filter(|&i| i != b) {
            figures.push(diff(
                format!("{} − (b), µs/request", short(i)),
                minus(&cpu_of(i), &cpu_of(b)),
            ));
        }
        for i in (0..n).filter(|&i| i != b) {
            figures.push(ratio(
                format!("Envoy CPU per request (b) / {}", short(i)),
                cpu_of(b),
                cpu_of(i),
            ));
        }
        for i in (0..n).filter(|&i| i != b) {
            figures.push(ratio(
                format!("requests/s (b) / {}", short(i)),
                rps_of(b),
                rps_of(i),
            ));
        }
    }
    // Issue 18's figures for the native build (e): what it adds over (a)
    // against what Lua (d) and the wasm floor (c) add, and its requests/s
    // against (a)'s.
    let (d, e) = (index("lua"), index("turnout_native"));
    if let (Some(d), Some(e)) = (d, e) {
        figures.push(ratio(
            "((e) − (a)) / ((d) − (a)), native turnout over Lua".into(),
            added(e),
            added(d),
        ));
        if let Some(c) = c {
            figures.push(ratio(
                "((e) − (a)) / ((c) − (a)), native turnout over the wasm floor".into(),
                added(e),
                added(c),
            ));
        }
        figures.push(ratio("requests/s (e) / (a)".into(), rps_of(e), rps_of(a)));
    }
    // Each extra's own R: what it adds over (a) against what the floor
    // adds, and its difference from (b), raw and steal-adjusted: to
    // compare two builds of turnout run side by side.
    for (i, case) in cases.iter().enumerate().skip(n - o.extras.len()) {
        if let Some(c) = c {
            figures.push(ratio(
                format!("(({0}) − (a)) / ((c) − (a)), R of {0}", case.1),
                added(i),
                added(c),
            ));
            figures.push(adjusted(
                format!("R of {}, steal-adjusted", case.1),
                "×",
                &cpu_m,
                &|r| r[i] - r[a],
                &|r| r[c] - r[a],
            ));
        }
        if let Some(b) = b {
            figures.push(adjusted(
                format!("({}) − (b), steal-adjusted", case.1),
                "µs",
                &cpu_m,
                &|r| r[i] - r[b],
                &|_| 1.0,
            ));
        }
    }
    Figures {
        key,
        list: figures,
        cpu_adjusted,
        steal_m,
        beta_cpu,
        beta_rps,
    }
}

/// The report, in Markdown.
fn report(
    bench: &Bench,
    cycles_run: &Cycles,
    memory: &Memory,
    calls: &[(&str, Hostcalls)],
    figures_made: &Figures,
    source: &str,
) -> String {
    let (o, stage, cases) = (&bench.o, &bench.stage, &bench.cases);
    let samples = &cycles_run.samples;
    let Cycles {
        noisy,
        retried,
        envoy_clock,
        upstream_clock,
        hz,
        load_at_start,
        load_at_end,
        measured_for,
        envoy_threads,
        ..
    } = cycles_run;
    let Memory {
        before,
        after,
        wasm_stats,
    } = memory;
    let Figures {
        key,
        list: figures,
        cpu_adjusted,
        steal_m,
        beta_cpu,
        beta_rps,
    } = figures_made;
    let (n, cycles) = (cases.len(), samples.len());
    let (a, b, c) = (0, bench.index("turnout"), bench.index("floor"));
    let cpu_of = |i: usize| cpu_of(samples, i);
    let added = |i: usize| added(samples, i);
    let med = |i: usize, f: &dyn Fn(&Sample) -> f64| {
        median(&samples.iter().map(|row| f(&row[i])).collect::<Vec<_>>())
    };
    let mut report = String::new();
    let w = &mut report;
    let _ = writeln!(w, "machine: {}", machine());
    let _ = writeln!(
        w,
        "run: {cycles} cycles of {} s slices, one per variant and cycle, each cycle starting one variant later; wrk -t{} -c{} --latency, one user id per request; Envoy --concurrency 1 on core {}, wrk and the {:?} upstreams on core {}; load average {} at start, {} at end; {:.0} s of warm-up and slices",
        o.slice_seconds, o.threads, o.connections, o.proxy_core, o.upstream, o.load_core,
        load_at_start, load_at_end, measured_for
    );
    let _ = writeln!(
        w,
        "clocks: Envoy's CPU from the {}, over its {envoy_threads} threads; the upstreams' from the {}; wrk's from getrusage; other CPU from /proc/stat (ticks of {:.0} ms)",
        envoy_clock.describe(),
        upstream_clock.describe(),
        1e3 / hz
    );
    let _ = writeln!(
        w,
        "noise: {retried} slices measured again because other processes (steal included) took more than {:.0} % of a core or wrk saw errors; {noisy} of {} slices kept so after {} retries",
        o.max_other * 100.0,
        cycles * n,
        o.retries
    );
    let module = |p: &std::path::Path| {
        let bytes = fs::read(p).unwrap_or_default();
        format!("{} bytes, fnv1a {:016x}", bytes.len(), fnv1a(&bytes))
    };
    let _ = writeln!(
        w,
        "modules: {source}; turnout.wasm {}; turnout_floor.wasm {}\n",
        module(&stage.turnout_wasm),
        module(&stage.floor_wasm)
    );

    let _ = writeln!(
        w,
        "Per variant, medians over the {cycles} slices (\"added over (a)\" is the median of the differences paired within each cycle; \"steal-adjusted\" is Envoy's CPU corrected to the run's median steal on Envoy's core, {:.1} %, with ln(CPU) rising {beta_cpu:.2} per unit of steal share):\n",
        median(&steal_m.concat()) * 100.0
    );
    let _ = writeln!(
        w,
        "| variant | requests/s | p50 µs | p99 µs | Envoy CPU µs/request | its IQR | added over (a) µs | steal-adjusted µs/request | Envoy's core busy | stolen from it | load side µs/request | load core busy | other CPU |"
    );
    let _ = writeln!(
        w,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for (i, (_, _, label)) in cases.iter().enumerate() {
        let cpu = cpu_of(i);
        let q = |p| quantile(&cpu, p);
        let over = if i == a {
            "—".to_string()
        } else {
            format!("{:+.2}", median(&added(i)))
        };
        let _ = writeln!(
            w,
            "| {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2}–{:.2} | {} | {:.2} | {:.0} % | {:.1} % | {:.2} | {:.0} % | {:.0} % |",
            label,
            med(i, &|s| s.wrk.requests_per_second),
            med(i, &|s| s.wrk.p50_us),
            med(i, &|s| s.wrk.p99_us),
            q(0.5),
            q(0.25),
            q(0.75),
            over,
            median(&cpu_adjusted.iter().map(|r| r[i]).collect::<Vec<_>>()),
            med(i, &|s| s.envoy_us * s.wrk.requests_per_second / 1e4),
            med(i, &|s| s.steal_proxy) * 100.0,
            med(i, &|s| s.load_us),
            med(i, &|s| s.load_us * s.wrk.requests_per_second / 1e4),
            med(i, &|s| s.foreign) * 100.0,
        );
    }

    if let (Some(b), Some(c)) = (b, c) {
        let _ = writeln!(
            w,
            "\nPer cycle (Envoy CPU µs per request; * marks a cycle with a slice kept noisy):\n"
        );
        let _ = writeln!(
            w,
            "| cycle | first | (a) | (b) − (a) | (c) − (a) | R = (b − a)/(c − a) | R steal-adjusted | requests/s (b)/(c) | stolen from Envoy's core | most other CPU |"
        );
        let _ = writeln!(
            w,
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for (k, row) in samples.iter().enumerate() {
            let (ba, ca) = (
                row[b].envoy_us - row[a].envoy_us,
                row[c].envoy_us - row[a].envoy_us,
            );
            let other = row.iter().map(|s| s.foreign).fold(0.0, f64::max);
            let adj = &cpu_adjusted[k];
            let _ = writeln!(
                w,
                "| {}{} | ({}) | {:.2} | {:+.2} | {:+.2} | {:.2} | {:.2} | {:.3} | {:.1} % | {:.0} % |",
                k + 1,
                if row.iter().any(|s| s.noisy) { "*" } else { "" },
                cases[k % n].1,
                row[a].envoy_us,
                ba,
                ca,
                ba / ca,
                (adj[b] - adj[a]) / (adj[c] - adj[a]),
                row[b].wrk.requests_per_second / row[c].wrk.requests_per_second,
                median(&row.iter().map(|s| s.steal_proxy).collect::<Vec<_>>()) * 100.0,
                other * 100.0
            );
        }
    }

    let _ = writeln!(
        w,
        "\nOver the cycles: the per-cycle figure's median, its quartiles, a bootstrap {:.0} % interval of the median ({} resamples of the {cycles} cycles), and the pooled figure (Σ over all slices: Σ(b) − Σ(a) over Σ(c) − Σ(a) for a ratio of differences, Σ(x)/Σ(y) for a ratio, the mean for a difference) with its own bootstrap interval:\n",
        LEVEL * 100.0,
        o.resamples
    );
    let _ = writeln!(
        w,
        "| figure | median | IQR | {0:.0} % of the median | pooled | {0:.0} % of pooled |",
        LEVEL * 100.0
    );
    let _ = writeln!(w, "| --- | ---: | ---: | ---: | ---: | ---: |");
    let row = |w: &mut String, f: &Figure| {
        let e = &f.estimate;
        let (p, sign) = if f.unit == "×" { (3, "") } else { (2, "+") };
        let fmt = |x: f64| {
            if sign == "+" {
                format!("{x:+.p$}")
            } else {
                format!("{x:.p$}")
            }
        };
        let _ = writeln!(
            w,
            "| {} | {}{u} | {} – {} | {} – {} | {}{u} | {} – {} |",
            f.name,
            fmt(e.median),
            fmt(e.q1),
            fmt(e.q3),
            fmt(e.median_lo),
            fmt(e.median_hi),
            fmt(e.pooled),
            fmt(e.pooled_lo),
            fmt(e.pooled_hi),
            u = if f.unit == "×" { "×" } else { " µs" },
        );
    };
    if let Some(k) = &key {
        for f in [&k.r, &k.r_adjusted, &k.rps, &k.rps_adjusted] {
            row(w, f);
        }
    }
    for f in figures {
        row(w, f);
    }

    if let (Some(k), Some(c)) = (&key, c) {
        let (e, adj, (rm, rm_lo, rm_hi)) = (&k.r.estimate, &k.r_adjusted.estimate, k.of_medians);
        let below = added(c).iter().filter(|x| **x <= 0.0).count();
        let _ = writeln!(
            w,
            "\n- **R = ((b) − (a))/((c) − (a)) = {:.2}×** ({:.0} % interval {:.2}–{:.2}): the ratio of the summed differences over all {cycles} cycles. Target ≤ 1.5× (goal 1.25×): {}. Checks: steal-adjusted {:.2}× ({:.2}–{:.2}); median of (b) − (a) over median of (c) − (a) {:.2}× ({:.2}–{:.2}); per-cycle R: median {:.2}× (IQR {:.2}–{:.2}, interval of the median {:.2}–{:.2}).",
            e.pooled,
            LEVEL * 100.0,
            e.pooled_lo,
            e.pooled_hi,
            verdict(e.pooled_lo, e.pooled_hi, 1.5, true),
            adj.pooled,
            adj.pooled_lo,
            adj.pooled_hi,
            rm,
            rm_lo,
            rm_hi,
            e.median,
            e.q1,
            e.q3,
            e.median_lo,
            e.median_hi,
        );
        let (e, adj) = (&k.rps.estimate, &k.rps_adjusted.estimate);
        let _ = writeln!(
            w,
            "- **requests/s (b)/(c) = {:.3}×** ({:.0} % interval {:.3}–{:.3}): Σ(b)/Σ(c) over the cycles. Bound ≥ 0.9×: {}. Checks: steal-adjusted {:.3}× ({:.3}–{:.3}); per-cycle median {:.3}× (IQR {:.3}–{:.3}, interval of the median {:.3}–{:.3}).",
            e.pooled,
            LEVEL * 100.0,
            e.pooled_lo,
            e.pooled_hi,
            verdict(e.pooled_lo, e.pooled_hi, 0.9, false),
            adj.pooled,
            adj.pooled_lo,
            adj.pooled_hi,
            e.median,
            e.q1,
            e.q3,
            e.median_lo,
            e.median_hi,
        );
        let _ = writeln!(
            w,
            "- Why the pooled ratio and not the median of the per-cycle R: a cycle's (c) − (a) is a small difference of two slices that each vary by 10–20 % (the machine's speed drifts over seconds); in {below} of {cycles} cycles here it was ≤ 0, which puts that cycle's R at the bottom of the order instead of the top, so the median of R leans low. The intervals are percentile bootstraps over whole cycles: they hold the slice-to-slice noise, but take cycles as independent, so a drift of the machine over minutes is not in them; two runs that agree within them are the check."
        );
        let _ = writeln!(
            w,
            "- Steal-adjusted: each slice's figure corrected to the run's median steal on Envoy's core, fitted within each variant (ln(CPU per request) {beta_cpu:+.2}, ln(requests/s) {beta_rps:+.2} per unit of steal share; refitted in every bootstrap resample). Envoy's core is saturated, so what the hypervisor steals from it is lost throughput, and slices with steal also cost more CPU per request. A check, not the headline: a few slices with much steal set the fit."
        );
    }
    let _ = writeln!(
        w,
        "- memory: turnout had served {} requests; after {} more: Envoy VmRSS {} → {} KiB, wasm linear memories (size, resident KiB) {:?} → {:?}",
        before.0,
        after.0 - before.0,
        before.1,
        after.1,
        before.2,
        after.2
    );
    let _ = writeln!(
        w,
        "\nHostcalls per request (benches/hostcalls.py: one request through the module on a counting host):\n"
    );
    let _ = writeln!(w, "| filter | calls out of the VM | calls into the VM |");
    let _ = writeln!(w, "| --- | --- | --- |");
    for (label, h) in calls {
        let _ = writeln!(
            w,
            "| {label} | {}: {} | {}: {} |",
            h.calls.len(),
            Hostcalls::summary(&h.calls),
            h.callbacks.len(),
            Hostcalls::summary(&h.callbacks)
        );
    }
    let _ = writeln!(
        w,
        "\nEnvoy's wasm stats at the end:\n```\n{}```",
        wasm_stats
    );
    report
}

/// Whether the interval `lo`–`hi` is on the good side of `bound` (below
/// it if `below`, else above it).
fn verdict(lo: f64, hi: f64, bound: f64, below: bool) -> &'static str {
    let (good, bad) = if below {
        (hi <= bound, lo > bound)
    } else {
        (lo >= bound, hi < bound)
    };
    if good {
        "met, the whole interval on the good side"
    } else if bad {
        "not met, the whole interval on the wrong side"
    } else {
        "not resolved, the interval straddles the bound"
    }
}
