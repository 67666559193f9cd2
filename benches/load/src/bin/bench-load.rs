//! `cargo bench-load`: turnout side by side with Envoy's own sticky split,
//! the cheapest proxy-wasm filter and a Lua filter, in one Envoy with one
//! worker pinned to one core, `wrk` (and the upstreams) pinned to the
//! other. Interleaved rounds, each starting one variant later than the last
//! (a b c c' d, b c c' d a, c c' d a b, …), medians reported.
//!
//! Options (all optional): `--rounds 5 --seconds 6 --connections 32
//! --threads 1 --warmup 2 --upstream harness|envoy --memory-requests 100000
//! --proxy-core 0 --load-core 1 --max-other-percent 25 --retries 3`: a
//! round during which other processes used more than 25 % of a core (the
//! "other CPU" column: all busy time in /proc/stat but Envoy's, wrk's and
//! the upstreams') is measured again, up to 3 times. For experiments, `--extra NAME=floor:WORDS`
//! (repeatable) adds a listener running the floor filter with extra
//! hostcalls (WORDS, comma-separated: see `benches/floor/src/lib.rs`), and
//! `--extra NAME=turnout:PATH` one running another build of turnout (an
//! older shell, another opt-level) with the same configuration. The report is printed and written to
//! `target/bench-load/report.md`.

use std::fmt::Write as _;
use std::fs;
use std::process::{exit, Command};
use std::time::Instant;

use integration::{admin_get, envoy_binary, target_dir};
use turnout_bench_load::{
    children_cpu_seconds, cpu_ticks, ensure_wrk, hostcalls, median, pin_process, pin_self, rss_kib,
    ticks_per_second, wasm_memories_kib, Extra, ExtraModule, Hostcalls, LoadStage, UpstreamKind,
    Variant, Wrk, WrkResult, TURNOUT_CONFIG, WRK_SCRIPT,
};

struct Options {
    rounds: u32,
    seconds: u32,
    connections: u32,
    threads: u32,
    warmup: u32,
    upstream: UpstreamKind,
    memory_requests: u64,
    proxy_core: usize,
    load_core: usize,
    extras: Vec<Extra>,
    /// Share of a core other processes may take during a round.
    max_other: f64,
    retries: u32,
}

fn options() -> Options {
    let mut o = Options {
        rounds: 5,
        seconds: 6,
        connections: 32,
        threads: 1,
        warmup: 2,
        upstream: UpstreamKind::Harness,
        memory_requests: 100_000,
        proxy_core: 0,
        load_core: 1,
        extras: Vec::new(),
        max_other: 0.25,
        retries: 3,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        let number = || -> u64 {
            value.parse().unwrap_or_else(|_| {
                eprintln!("{} needs a number, not {value:?}", args[i]);
                exit(2)
            })
        };
        match args[i].as_str() {
            "--rounds" => o.rounds = number() as u32,
            "--seconds" => o.seconds = number() as u32,
            "--connections" => o.connections = number() as u32,
            "--threads" => o.threads = number() as u32,
            "--warmup" => o.warmup = number() as u32,
            "--memory-requests" => o.memory_requests = number(),
            "--proxy-core" => o.proxy_core = number() as usize,
            "--load-core" => o.load_core = number() as usize,
            "--max-other-percent" => o.max_other = number() as f64 / 100.0,
            "--retries" => o.retries = number() as u32,
            "--extra" => {
                let module = match value.split_once('=') {
                    Some((_, spec)) if spec.starts_with("floor:") => {
                        ExtraModule::Floor(spec["floor:".len()..].replace(',', " "))
                    }
                    Some((_, spec)) if spec.starts_with("turnout:") => {
                        ExtraModule::Turnout(spec["turnout:".len()..].into())
                    }
                    _ => {
                        eprintln!("--extra NAME=floor:WORDS or NAME=turnout:PATH");
                        exit(2)
                    }
                };
                let name = value.split('=').next().unwrap_or_default().to_string();
                o.extras.push(Extra { name, module });
            }
            "--upstream" => {
                o.upstream = match value.as_str() {
                    "envoy" => UpstreamKind::Envoy,
                    "harness" => UpstreamKind::Harness,
                    _ => {
                        eprintln!("--upstream is envoy or harness");
                        exit(2)
                    }
                }
            }
            other => {
                eprintln!("unknown option {other}; see benches/src/bin/bench-load.rs");
                exit(2)
            }
        }
        i += 2;
    }
    o
}

/// One variant's figures in one round.
struct Sample {
    wrk: WrkResult,
    /// Envoy's CPU time per request, microseconds.
    envoy_us: f64,
    /// The load side's (wrk and the upstreams) CPU time per request.
    load_us: f64,
    /// CPU time of everything else on the machine during the round, as a
    /// share of one core: the noise.
    foreign: f64,
}

/// Busy jiffies of the whole machine (`/proc/stat`), all cores.
fn machine_busy_ticks() -> u64 {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|w| w.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let total: u64 = v.iter().take(8).sum();
    total - v.get(3).copied().unwrap_or(0) - v.get(4).copied().unwrap_or(0)
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

fn main() {
    let o = options();
    if let Err(e) = pin_self(o.load_core) {
        eprintln!("cannot pin to core {}: {e}", o.load_core);
        exit(1);
    }
    let wrk_bin = ensure_wrk().unwrap_or_else(|e| {
        eprintln!("{e}");
        exit(1)
    });
    let dir = target_dir().join("bench-load");
    fs::create_dir_all(&dir).expect("create target/bench-load");
    let script = dir.join("users.lua");
    fs::write(&script, WRK_SCRIPT).expect("write the wrk script");
    let wrk = |seconds| Wrk {
        bin: wrk_bin.clone(),
        script: script.clone(),
        threads: o.threads,
        connections: o.connections,
        seconds,
    };

    eprintln!("building the wasm modules and starting Envoy...");
    let stage = LoadStage::with_extras(o.upstream, 1, &o.extras);
    // (listener, label): the five variants, then the extra floors.
    let cases: Vec<(String, String)> = Variant::ALL
        .iter()
        .map(|v| (v.listener().to_string(), v.label().to_string()))
        .chain(o.extras.iter().map(|e| {
            let label = match &e.module {
                ExtraModule::Floor(words) => format!("(x) floor + {words}"),
                ExtraModule::Turnout(path) => format!("(x) turnout {}", path.display()),
            };
            (e.name.clone(), label)
        }))
        .collect();
    let pid = stage.envoy.pid();
    pin_process(pid, o.proxy_core).unwrap_or_else(|e| {
        eprintln!("{e}");
        exit(1)
    });
    let upstream_pid = stage.upstreams.pid();
    let started = Instant::now();
    let load_at_start = load_average();
    eprintln!("load average at start: {load_at_start}");

    for (name, _) in &cases {
        let r = wrk(o.warmup)
            .run(stage.listener_port(name))
            .expect("warm-up");
        eprintln!("warm-up {name:<12} {:>9.0} req/s", r.requests_per_second);
        assert_eq!(r.errors, 0, "{name} answered errors during warm-up");
    }

    let hz = ticks_per_second();
    let measure = |name: &str| -> Sample {
        let (e0, u0, c0, m0) = (
            cpu_ticks(pid).expect("Envoy's stat"),
            cpu_ticks(upstream_pid).expect("upstream stat"),
            children_cpu_seconds(),
            machine_busy_ticks(),
        );
        let t0 = Instant::now();
        let r = wrk(o.seconds).run(stage.listener_port(name)).expect("wrk");
        let wall = t0.elapsed().as_secs_f64();
        let (e1, u1, c1, m1) = (
            cpu_ticks(pid).expect("Envoy's stat"),
            cpu_ticks(upstream_pid).expect("upstream stat"),
            children_cpu_seconds(),
            machine_busy_ticks(),
        );
        let n = r.requests.max(1) as f64;
        let envoy_s = (e1 - e0) as f64 / hz;
        let load_s = (u1 - u0) as f64 / hz + (c1 - c0);
        let foreign = (((m1 - m0) as f64 / hz) - envoy_s - load_s).max(0.0) / wall;
        Sample {
            envoy_us: envoy_s / n * 1e6,
            load_us: load_s / n * 1e6,
            foreign,
            wrk: r,
        }
    };
    let mut samples: Vec<Vec<Sample>> = cases.iter().map(|_| Vec::new()).collect();
    let mut noisy = 0;
    for round in 1..=o.rounds {
        // Each round starts one variant later (a b c d, b c d a, c d a b,
        // …): a variant's place in the round is not the same every time,
        // so whatever the place costs (the variant before it leaves the
        // caches, the pools, the allocator as it likes them) is spread
        // over all of them.
        let n = cases.len();
        for i in (0..n).map(|k| (k + round as usize - 1) % n) {
            let name = &cases[i].0;
            // A round during which other processes took more than
            // `max_other` of a core is measured again (up to `retries`
            // times); the last try is kept and counted as noisy.
            for attempt in 0..=o.retries {
                let s = measure(name);
                eprintln!(
                    "round {round} {name:<12} {:>9.0} req/s  p50 {:>7.0} us  p99 {:>7.0} us  Envoy {:>6.2} us/req  load side {:>5.2} us/req  other {:>4.0}%  errors {}",
                    s.wrk.requests_per_second,
                    s.wrk.p50_us,
                    s.wrk.p99_us,
                    s.envoy_us,
                    s.load_us,
                    s.foreign * 100.0,
                    s.wrk.errors
                );
                let quiet = s.foreign <= o.max_other && s.wrk.errors == 0;
                if quiet || attempt == o.retries {
                    noisy += usize::from(!quiet);
                    samples[i].push(s);
                    break;
                }
                eprintln!("  the machine was busy: measuring {name} again");
                std::thread::sleep(std::time::Duration::from_secs(5));
            }
        }
    }
    let load_at_end = load_average();

    // The wasm VMs' memory: after everything so far, then after
    // `memory_requests` more through turnout.
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
        served(&stage),
        rss_kib(pid).unwrap_or(0),
        wasm_memories_kib(pid).unwrap_or_default(),
    );
    let mut more = 0;
    while more < o.memory_requests {
        more += wrk(5)
            .run(stage.port(Variant::Turnout))
            .expect("wrk")
            .requests;
    }
    let after = (
        served(&stage),
        rss_kib(pid).unwrap_or(0),
        wasm_memories_kib(pid).unwrap_or_default(),
    );
    let (_, wasm_stats) = admin_get(stage.envoy.admin_port(), "/stats?filter=^wasm\\.");

    let size = |p: &std::path::Path| fs::metadata(p).map_or(0, |m| m.len());
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
    let mut report = String::new();
    let w = &mut report;
    let _ = writeln!(w, "machine: {}", machine());
    let _ = writeln!(
        w,
        "run: {} interleaved rounds of {} s per variant, wrk -t{} -c{} --latency, one user id per request; Envoy --concurrency 1 on core {}, wrk and the {:?} upstreams on core {}; load average {} at start, {} at end; {:.0} s",
        o.rounds, o.seconds, o.threads, o.connections, o.proxy_core, o.upstream, o.load_core,
        load_at_start, load_at_end, started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        w,
        "noise: {noisy} of {} samples kept with other processes above {:.0} % of a core (or wrk errors) after {} retries",
        cases.len() * o.rounds as usize,
        o.max_other * 100.0,
        o.retries
    );
    let _ = writeln!(
        w,
        "modules: turnout.wasm {} bytes, turnout_floor.wasm {} bytes\n",
        size(&stage.turnout_wasm),
        size(&stage.floor_wasm)
    );
    let _ = writeln!(
        w,
        "| variant | requests/s | p50 µs | p99 µs | Envoy CPU µs/request | added over (a) µs | Envoy's core busy | load side µs/request | load core busy | other CPU |"
    );
    let _ = writeln!(
        w,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let med = |i: usize, f: &dyn Fn(&Sample) -> f64| {
        median(&samples[i].iter().map(f).collect::<Vec<_>>())
    };
    let cpu = |i: usize| med(i, &|s| s.envoy_us);
    let rps = |i: usize| med(i, &|s| s.wrk.requests_per_second);
    for (i, (_, label)) in cases.iter().enumerate() {
        let _ = writeln!(
            w,
            "| {} | {:.0} | {:.0} | {:.0} | {:.2} | {:+.2} | {:.0} % | {:.2} | {:.0} % | {:.0} % |",
            label,
            rps(i),
            med(i, &|s| s.wrk.p50_us),
            med(i, &|s| s.wrk.p99_us),
            cpu(i),
            cpu(i) - cpu(0),
            med(i, &|s| s.envoy_us * s.wrk.requests_per_second / 1e4),
            med(i, &|s| s.load_us),
            med(i, &|s| s.load_us * s.wrk.requests_per_second / 1e4),
            med(i, &|s| s.foreign) * 100.0,
        );
    }
    let (a, b, c, c2, d) = (0, 1, 2, 3, 4);
    let added = |i: usize| cpu(i) - cpu(a);
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "- Envoy CPU per request, (b) over: (a) {:.2}×, (c) {:.2}×, (d) {:.2}×",
        cpu(b) / cpu(a),
        cpu(b) / cpu(c),
        cpu(b) / cpu(d)
    );
    let _ = writeln!(
        w,
        "- requests/s, (b) over: (a) {:.2}×, (c) {:.2}×, (d) {:.2}×",
        rps(b) / rps(a),
        rps(b) / rps(c),
        rps(b) / rps(d)
    );
    let _ = writeln!(
        w,
        "- CPU added over (a): (b) {:.2} µs is {:.2}× what (c) adds ({:.2} µs); (d) adds {:.2} µs",
        added(b),
        added(b) / added(c),
        added(c),
        added(d)
    );
    let _ = writeln!(
        w,
        "- the explicit clear_route_cache call: (c') − (c) = {:+.2} µs per request",
        cpu(c2) - cpu(c)
    );
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
    for (label, h) in &calls {
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
    println!("{report}");
    let out = dir.join("report.md");
    fs::write(&out, &report).expect("write the report");
    eprintln!("report written to {}", out.display());
}
