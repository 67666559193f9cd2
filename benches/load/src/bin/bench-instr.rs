//! `cargo bench-instr`: instructions per request, counted exactly by
//! valgrind's callgrind, for the ways of splitting that run natively in
//! one Envoy: (a) Envoy's own sticky split, the native floor
//! (`turnout-native --features floor`: one header read, one write, the
//! route cache cleared), (d) the Lua hash split and (e) native turnout
//! with every feature on, configured as `cargo bench-load` configures
//! them (the same listeners, routes and upstreams: `turnout_bench_load`).
//!
//! One Envoy 1.40 (`--concurrency 1`) runs under `valgrind
//! --tool=callgrind`; each listener is warmed; then, per pass, each
//! variant in turn (the order rotated by one each pass): `callgrind_control
//! -z` (costs to zero), `--requests` keep-alive requests on one connection,
//! each with a new user id, `callgrind_control -d` (a dump). The dump's
//! total over the requests is that variant's instructions per request:
//! everything Envoy ran in the window on every thread (the worker's
//! request path, the main thread's work for it), the module's and Lua's
//! included. Envoy's periodic work is off (the stats flush, the
//! watchdogs; the log is written out once a minute) so that none falls in
//! a window: it runs by the wall clock, which callgrind stretches. wasm variants are left out: V8 under
//! callgrind is too slow to be useful, and the wasm build is measured by
//! its hostcall counts (`tests/hostcalls.rs`) and `cargo bench-load`.
//!
//! Printed (and written to `target/bench-instr/report.md`): per pass and
//! variant the instructions per request, the two passes' disagreement,
//! what each variant adds over (a), the ratios (e)/(d) and floor/(d) of
//! what they add, and for (e) and the floor the Envoy callbacks and module
//! functions by inclusive instructions per request.
//!
//! Options: `--requests 1000 --warmup 300 --passes 2 --top 16`. valgrind
//! (Debian's package, which brings `callgrind_control`) is installed with
//! apt when missing; `VALGRIND_BIN` and `CALLGRIND_CONTROL` name others.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};
use std::thread::sleep;
use std::time::{Duration, Instant};

use clap::Parser;
use integration::{debian, target_dir, Envoy, HttpClient};
use turnout_bench_load::callgrind;
use turnout_bench_load::instr::{
    call_table, disagreement, ratio_of_added, short_name, thousands, Window,
};
use turnout_bench_load::{
    extra_listener, stage_bootstrap, variant_listener, Extra, ExtraModule, UpstreamKind, Upstreams,
    Variant, USER_HEADER,
};

#[derive(Parser)]
#[command(about = "Instructions per request under callgrind: (a), the native floor, (d), (e)")]
struct Cli {
    /// Requests per variant per pass.
    #[arg(long, default_value_t = 1000)]
    requests: u64,
    /// Requests per variant before the first pass.
    #[arg(long, default_value_t = 300)]
    warmup: u64,
    /// Passes over the variants (the first two are compared).
    #[arg(long, default_value_t = 2)]
    passes: usize,
    /// Rows of the per-call tables.
    #[arg(long, default_value_t = 16)]
    top: usize,
    /// NAME=PATH: another build of the native module (a `.so`) with the
    /// configuration of (e), as one more listener (repeatable): a cut
    /// measured against the module before it, in the same run.
    #[arg(long, value_parser = extra_module)]
    extra: Vec<(String, PathBuf)>,
}

fn extra_module(spec: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = spec
        .split_once('=')
        .ok_or_else(|| format!("--extra takes NAME=PATH, not {spec:?}"))?;
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err(format!("--extra's NAME is [a-z0-9_]+, not {name:?}"));
    }
    Ok((name.to_string(), PathBuf::from(path)))
}

/// A listener measured: its name and how the report labels it.
struct Case {
    listener: String,
    label: String,
}

/// The four variants, in this order ([`A`], [`FLOOR`], [`D`], [`E`]),
/// then the extras.
const VARIANTS: [(&str, &str); 4] = [
    ("native", "(a) Envoy weighted_clusters + use_hash_policy"),
    (
        "native_floor",
        "(x) native floor: 1 header read, 1 write, clear_route_cache",
    ),
    ("lua", "(d) Lua hash split"),
    ("turnout_native", "(e) turnout-native, every feature"),
];
const A: usize = 0;
const FLOOR: usize = 1;
const D: usize = 2;
const E: usize = 3;

/// Envoy's own periodic work, off: the stats flush (every 5 s) and the
/// watchdogs' touches (several a second) run by the wall clock, which a
/// simulated Envoy stretches some fifty times, so they would be counted
/// as part of the requests, and more of them when the machine is busy.
const QUIET: &str = "stats_flush_on_admin: true\n\
watchdogs:\n  \
  main_thread_watchdog: {miss_timeout: 3600s, megamiss_timeout: 3600s}\n  \
  worker_watchdog: {miss_timeout: 3600s, megamiss_timeout: 3600s}\n";

/// The start of a listener's module's file name, as callgrind names its
/// object (`libturnout_native_<listener>.so`).
const MODULE: &str = "libturnout_native";

fn main() {
    let cli = Cli::parse();
    let valgrind = debian::tool("valgrind", "VALGRIND_BIN", "valgrind");
    let control = debian::tool("callgrind_control", "CALLGRIND_CONTROL", "valgrind");
    let out = target_dir().join("bench-instr");
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).unwrap_or_else(|e| panic!("create {}: {e}", out.display()));

    let upstreams = Upstreams::start(UpstreamKind::Harness);
    let (yaml, cases) = stage(&cli, &upstreams);
    let modules = integration::native_module_dir();
    let dumps = out.join("callgrind.out");
    let wrapper: Vec<OsString> = vec![
        valgrind.into(),
        "--tool=callgrind".into(),
        format!("--callgrind-out-file={}.%p", dumps.display()).into(),
    ];
    eprintln!("bench-instr: starting Envoy under callgrind (about a minute)");
    let started = Instant::now();
    let envoy = Envoy::start_wrapped(&yaml, 1, &modules, &wrapper, Duration::from_secs(600));
    eprintln!("bench-instr: ready after {:.0?}", started.elapsed());

    let mut clients: Vec<HttpClient> = cases.iter().map(|c| envoy.client(&c.listener)).collect();
    for (i, (case, client)) in cases.iter().zip(&mut clients).enumerate() {
        run_requests(client, &case.listener, &user_prefix(9, i), cli.warmup);
    }
    let callgrind = Callgrind {
        control,
        pid: envoy.pid(),
        dumps,
    };
    let passes = measure(&cli, &callgrind, &cases, &mut clients);
    drop(envoy);
    let report = report(&cli, &cases, &passes);
    println!("{report}");
    let path = out.join("report.md");
    fs::write(&path, &report).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    eprintln!("bench-instr: report written to {}", path.display());
}

/// The Envoy bootstrap with every variant's listener, and the variants
/// in the order the passes rotate through.
fn stage(cli: &Cli, upstreams: &Upstreams) -> (String, Vec<Case>) {
    // (e) and the floor run builds with their symbols, so the per-call
    // table names the module's functions (the code is the release
    // profile's, byte for byte: only the symbol table differs).
    let native = |name: &str, features: &[&str]| Extra {
        name: name.into(),
        module: ExtraModule::Native(build_with_symbols(name, features)),
    };
    let turnout = native("turnout_native", &[]);
    let floor = native("native_floor", &["--features", "floor"]);
    let (legacy, fastapi) = upstreams.ports();
    // Only the wasm variants read the wasm modules' paths: none here.
    let none = Path::new("");
    let extras: Vec<Extra> = cli
        .extra
        .iter()
        .map(|(name, path)| Extra {
            name: name.clone(),
            module: ExtraModule::Native(path.clone()),
        })
        .collect();
    let listeners = [
        variant_listener(Variant::Native, none, none),
        extra_listener(&floor, none, none),
        variant_listener(Variant::Lua, none, none),
        extra_listener(&turnout, none, none),
    ]
    .into_iter()
    .chain(extras.iter().map(|e| extra_listener(e, none, none)));
    let cases: Vec<Case> = VARIANTS
        .iter()
        .map(|(listener, label)| Case {
            listener: listener.to_string(),
            label: label.to_string(),
        })
        .chain(cli.extra.iter().map(|(name, path)| Case {
            listener: name.clone(),
            label: format!("{name}: {}", path.display()),
        }))
        .collect();
    (stage_bootstrap(listeners, legacy, fastapi, QUIET), cases)
}

/// The passes: in each, every variant in turn (the order rotated by one
/// each pass), its counts zeroed, its requests sent, its window dumped.
fn measure(
    cli: &Cli,
    callgrind: &Callgrind,
    cases: &[Case],
    clients: &mut [HttpClient],
) -> Vec<Vec<Window>> {
    let mut passes: Vec<Vec<Window>> = Vec::new();
    for pass in 0..cli.passes {
        let mut windows: Vec<Option<Window>> = vec![None; cases.len()];
        for k in 0..cases.len() {
            let i = (pass + k) % cases.len();
            callgrind.zero();
            run_requests(
                &mut clients[i],
                &cases[i].listener,
                &user_prefix(pass, i),
                cli.requests,
            );
            // The last stream's deferred deletion runs after its answer.
            sleep(Duration::from_millis(200));
            let profile = callgrind.dump();
            eprintln!(
                "bench-instr: pass {} {}: {} per request",
                pass + 1,
                cases[i].listener,
                thousands(profile.total as f64 / cli.requests as f64)
            );
            windows[i] = Some(Window {
                requests: cli.requests,
                profile,
            });
        }
        passes.push(windows.into_iter().flatten().collect());
    }
    passes
}

/// `turnout-native` built in release with `features` and its symbols
/// (`CARGO_PROFILE_RELEASE_STRIP=false`), in `target/bench-instr-NAME`.
fn build_with_symbols(name: &str, features: &[&str]) -> PathBuf {
    let target = target_dir().join(format!("bench-instr-{name}"));
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(integration::workspace_root())
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_PROFILE_RELEASE_STRIP", "false")
        .args(["build", "--quiet", "--release", "-p", "turnout-native"])
        .args(features)
        .status()
        .unwrap_or_else(|e| panic!("run cargo: {e}"));
    if !status.success() {
        eprintln!("bench-instr: building turnout-native ({name}) failed");
        exit(1);
    }
    target.join("release/libturnout_native.so")
}

/// The start of the user ids of a pass (9: the warm-up) and listener:
/// the same length for every listener, since every byte of a request
/// costs Envoy instructions (parsed, copied, hashed, echoed by the
/// upstream): ids named after the listeners moved a variant by some
/// 60 instructions per byte.
fn user_prefix(pass: usize, listener: usize) -> String {
    format!("u{:01}{:02}", pass % 10, listener % 100)
}

/// `count` GETs of `/users`, each with a new user id of the same length
/// (`prefix` and six digits); each must be served.
fn run_requests(client: &mut HttpClient, listener: &str, prefix: &str, count: u64) {
    for n in 0..count {
        let user = format!("{prefix}{:06}", n % 1_000_000);
        let response = client.get("/users", &[(USER_HEADER, &user)]);
        if response.status != 200 {
            eprintln!("bench-instr: {listener} answered {}", response.status);
            exit(1);
        }
    }
}

/// The running callgrind: zeroes its costs and dumps them on demand.
struct Callgrind {
    control: PathBuf,
    pid: u32,
    /// The dumps' path prefix (`callgrind.out`: dumps are `.PID.N`).
    dumps: PathBuf,
}

impl Callgrind {
    fn command(&self, flag: &str) {
        let status = Command::new(&self.control)
            .arg(flag)
            .arg(self.pid.to_string())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.control.display()));
        if !status.status.success() {
            panic!(
                "callgrind_control {flag} failed: {}",
                String::from_utf8_lossy(&status.stderr)
            );
        }
    }

    fn zero(&self) {
        self.command("-z");
    }

    /// Dumps the costs since the last zero and parses the dump: the
    /// newest file (callgrind numbers its dumps from 1).
    fn dump(&self) -> callgrind::Profile {
        self.command("-d");
        let dir = self.dumps.parent().unwrap_or(Path::new("."));
        let prefix = format!(
            "{}.{}.",
            self.dumps.file_name().unwrap_or_default().to_string_lossy(),
            self.pid
        );
        let newest = fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_string_lossy()
                    .strip_prefix(&prefix)?
                    .parse::<u32>()
                    .ok()
            })
            .max()
            .unwrap_or_else(|| panic!("no dump {prefix}N in {}", dir.display()));
        let path = dir.join(format!("{prefix}{newest}"));
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        callgrind::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

/// The report: per-pass figures, agreement, ratios, per-call tables.
fn report(cli: &Cli, cases: &[Case], passes: &[Vec<Window>]) -> String {
    let mut r = String::new();
    let _ = writeln!(
        r,
        "# cargo bench-instr\n\n{} keep-alive requests per variant per pass, {} passes, \
         one Envoy (`--concurrency 1`) under callgrind; instructions (Ir) per request, \
         every thread of Envoy.\n",
        cli.requests,
        passes.len()
    );
    let _ = write!(r, "| variant |");
    for p in 1..=passes.len() {
        let _ = write!(r, " pass {p} |");
    }
    let _ = writeln!(
        r,
        " passes apart | added over (a), pass 1 | over (e), pass 1 |"
    );
    let _ = writeln!(
        r,
        "| --- |{} ---: | ---: | ---: |",
        " ---: |".repeat(passes.len())
    );
    let base: Vec<f64> = passes.iter().map(|p| p[0].per_request()).collect();
    for (i, case) in cases.iter().enumerate() {
        let _ = write!(r, "| {} |", case.label);
        for p in passes {
            let _ = write!(r, " {} |", thousands(p[i].per_request()));
        }
        let apart = match passes {
            [one, two, ..] => format!(
                "{:.2} %",
                100.0 * disagreement(one[i].per_request(), two[i].per_request())
            ),
            _ => "–".into(),
        };
        let first = passes[0][i].per_request();
        let added = if i == A {
            "—".to_string()
        } else {
            format!("{:+.1} k", (first - base[0]) / 1000.0)
        };
        let over_e = if i > E {
            format!("{:+.1} k", (first - passes[0][E].per_request()) / 1000.0)
        } else {
            "—".to_string()
        };
        let _ = writeln!(r, " {apart} | {added} | {over_e} |");
    }
    let _ = writeln!(
        r,
        "\n| pass | (e) − (a) over (d) − (a) | floor − (a) over (d) − (a) | (e) − floor |"
    );
    let _ = writeln!(r, "| ---: | ---: | ---: | ---: |");
    for (n, p) in passes.iter().enumerate() {
        let [a, x, d, e] = [A, FLOOR, D, E].map(|i| p[i].per_request());
        let show = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.3}×"));
        let _ = writeln!(
            r,
            "| {} | {} | {} | +{} |",
            n + 1,
            show(ratio_of_added(e, d, a)),
            show(ratio_of_added(x, d, a)),
            thousands(e - x)
        );
    }
    let titles = [
        (E, "(e) turnout-native".to_string()),
        (FLOOR, "(x) the native floor".to_string()),
    ];
    let extras = (E + 1..cases.len()).map(|i| (i, cases[i].listener.clone()));
    for (i, title) in titles.into_iter().chain(extras) {
        let _ = writeln!(
            r,
            "\n{title}, pass 1: Envoy's dynamic-module callbacks and the module's functions \
             by inclusive instructions per request\n\n| function | object | inclusive per request | calls per request |\n| --- | --- | ---: | ---: |"
        );
        let module = format!("{MODULE}_{}", cases[i].listener);
        for row in call_table(&passes[0][i], &module, cli.top) {
            let _ = writeln!(
                r,
                "| `{}` | {} | {} | {:.2} |",
                short_name(&row.name),
                row.object,
                thousands(row.inclusive_per_request),
                row.calls_per_request
            );
        }
    }
    r
}
