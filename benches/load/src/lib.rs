//! The side-by-side load benchmark (`cargo bench-load`): one Envoy, one worker, a listener per
//! way of doing the same sticky split, the same routes and upstreams.
//!
//! | listener | what splits `/users` |
//! | --- | --- |
//! | `native` | Envoy's own: `weighted_clusters` with `use_hash_policy` and a `hash_policy` on `x-user-id` (no filter) |
//! | `turnout` | turnout, every feature of the request path on (see [`TURNOUT_CONFIG`]) |
//! | `floor` | the cheapest proxy-wasm filter that routes by header (`benches/floor`) |
//! | `floor_clear` | the same, plus the explicit `clear_route_cache` call turnout makes |
//! | `lua` | an Envoy Lua filter hashing the user into `x-turnout-cluster` ([`LUA_SOURCE`]) |
//!
//! Every listener's `/users` route but `native`'s picks its cluster with
//! `cluster_header: x-turnout-cluster`; `/` goes to `legacy`. The clusters
//! `legacy` and `fastapi` point at [`Upstreams`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use integration::stage::DECISION_HEADER;
use integration::{Bootstrap, Envoy, Listener, Route, RouteAction, Upstream};

/// The request header that carries the user's id in every variant.
pub const USER_HEADER: &str = "x-user-id";

/// The ways of splitting, in the order of a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// (a) Envoy's own sticky split: the limit, the same job with no filter.
    Native,
    /// (b) turnout with every feature of the request path on.
    Turnout,
    /// (c) the cheapest proxy-wasm filter that routes by header.
    Floor,
    /// (c') the floor plus an explicit `clear_route_cache` call.
    FloorClear,
    /// (d) a hash split written by hand in Envoy's Lua filter.
    Lua,
}

impl Variant {
    pub const ALL: [Variant; 5] = [
        Variant::Native,
        Variant::Turnout,
        Variant::Floor,
        Variant::FloorClear,
        Variant::Lua,
    ];

    /// The listener's name (and the HCM's stat prefix).
    pub fn listener(self) -> &'static str {
        match self {
            Variant::Native => "native",
            Variant::Turnout => "turnout",
            Variant::Floor => "floor",
            Variant::FloorClear => "floor_clear",
            Variant::Lua => "lua",
        }
    }

    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Variant::Native => "(a) Envoy weighted_clusters + use_hash_policy",
            Variant::Turnout => "(b) turnout, every feature",
            Variant::Floor => "(c) floor: wasm, 1 header read + 1 write",
            Variant::FloorClear => "(c') floor + clear_route_cache",
            Variant::Lua => "(d) Lua hash split",
        }
    }
}

/// Turnout's configuration for the benchmark: one split on the `users`
/// route, 50 % to `fastapi`, the key from `x-user-id` then cookie `uid`,
/// pins and a force header (neither used by the load, but looked up on
/// every request), stats (always on) and trace context with the default
/// settings (`traceparent` written when absent, the trace id echoed in
/// `x-trace-id`, no `tracestate`). `debug` is off: no `x-turnout-decision`
/// response header.
pub const TURNOUT_CONFIG: &str = r#"{"version": 1,
  "user_key": [{"header": "x-user-id"}, {"cookie": "uid"}],
  "splits": [{"name": "users", "match": {"route": "users"}, "stable": "legacy",
    "targets": [{"cluster": "fastapi", "weight": 50}],
    "pin": {"fastapi": ["qa-1", "qa-2"]}, "force_header": "x-turnout-force"}]}"#;

/// What a user writes by hand in Envoy's Lua filter: a djb2 hash of the
/// user header, half the buckets to `fastapi`. Envoy's Lua filter clears
/// the route cache when a script changes request headers.
pub const LUA_SOURCE: &str = r#"function envoy_on_request(handle)
  local headers = handle:headers()
  local user = headers:get("x-user-id")
  local cluster = "legacy"
  if user ~= nil and user ~= "" then
    local h = 5381
    for i = 1, #user do
      h = (h * 33 + user:byte(i)) % 4294967296
    end
    if h % 10000 < 5000 then
      cluster = "fastapi"
    end
  end
  headers:replace("x-turnout-cluster", cluster)
end"#;

/// The cluster the Lua script picks for `user` (the same hash, in Rust).
pub fn lua_cluster(user: &[u8]) -> &'static str {
    if user.is_empty() {
        return "legacy";
    }
    let h = user
        .iter()
        .fold(5381u64, |h, &b| (h * 33 + u64::from(b)) % (1 << 32));
    if h % 10000 < 5000 {
        "fastapi"
    } else {
        "legacy"
    }
}

/// The cluster the floor filter picks for `user`.
pub fn floor_cluster(user: &[u8]) -> &'static str {
    match user.last() {
        Some(b) if b % 2 == 1 => "fastapi",
        _ => "legacy",
    }
}

/// The upstream side: where `legacy` and `fastapi` are served.
pub enum Upstreams {
    /// A second Envoy (one worker) answering with `direct_response`: an
    /// event loop, a fixed small answer (`legacy\n` or `fastapi\n`, and
    /// `x-upstream`), no thread per connection.
    Envoy(Envoy),
    /// The integration harness's echo servers (a thread per connection,
    /// the request's headers echoed in the body).
    Harness(Upstream, Upstream),
}

/// Which [`Upstreams`] to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamKind {
    Envoy,
    Harness,
}

impl Upstreams {
    pub fn start(kind: UpstreamKind) -> Upstreams {
        match kind {
            UpstreamKind::Envoy => Upstreams::Envoy(Envoy::start(&upstream_bootstrap(), 1)),
            UpstreamKind::Harness => {
                Upstreams::Harness(Upstream::start("legacy"), Upstream::start("fastapi"))
            }
        }
    }

    /// The ports of `legacy` and `fastapi`.
    pub fn ports(&self) -> (u16, u16) {
        match self {
            Upstreams::Envoy(e) => (e.listener_port("legacy"), e.listener_port("fastapi")),
            Upstreams::Harness(l, f) => (l.port(), f.port()),
        }
    }

    /// The process whose CPU time is the upstream side's: the upstream
    /// Envoy, or this process (whose threads serve the harness upstreams).
    pub fn pid(&self) -> u32 {
        match self {
            Upstreams::Envoy(e) => e.pid(),
            Upstreams::Harness(..) => std::process::id(),
        }
    }
}

/// The upstream Envoy: listeners `legacy` and `fastapi`, each answering
/// every request itself.
pub fn upstream_bootstrap() -> String {
    let listener = |name: &str| {
        format!(
            "- name: {name}\n\
             \x20 address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}\n\
             \x20 filter_chains:\n\
             \x20 - filters:\n\
             \x20   - name: envoy.filters.network.http_connection_manager\n\
             \x20     typed_config:\n\
             \x20       \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n\
             \x20       stat_prefix: {name}\n\
             \x20       route_config:\n\
             \x20         virtual_hosts:\n\
             \x20         - name: all\n\
             \x20           domains: [\"*\"]\n\
             \x20           routes:\n\
             \x20           - match: {{prefix: \"/\"}}\n\
             \x20             direct_response: {{status: 200, body: {{inline_string: \"{name}\\n\"}}}}\n\
             \x20             response_headers_to_add:\n\
             \x20             - header: {{key: x-upstream, value: {name}}}\n\
             \x20       http_filters:\n\
             \x20       - name: envoy.filters.http.router\n\
             \x20         typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}\n"
        )
    };
    let listeners: String = ["legacy", "fastapi"]
        .iter()
        .map(|n| listener(n))
        .collect::<String>()
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect();
    format!(
        "admin:\n  address:\n    socket_address: {{address: 127.0.0.1, port_value: 0}}\n\
         static_resources:\n  listeners:\n{listeners}"
    )
}

/// A wasm filter entry (inline configuration, V8, fail closed like the
/// shipped bootstraps), each module in its own VM.
fn wasm_filter(name: &str, vm_id: &str, wasm: &Path, configuration: &str) -> String {
    integration::wasm_filter_inline_named(name, vm_id, wasm, configuration)
}

fn lua_filter() -> String {
    let source: String = LUA_SOURCE.lines().map(|l| format!("      {l}\n")).collect();
    format!(
        "name: envoy.filters.http.lua\n\
         typed_config:\n  \
           \"@type\": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua\n  \
           default_source_code:\n    \
             inline_string: |\n{source}"
    )
}

/// The proxy's bootstrap: a listener per [`Variant`], each with routes
/// `users` (`/users`, split) and `other` (`/`, to `legacy`).
/// `extras` adds a listener per [`Extra`], for experiments.
pub fn proxy_bootstrap(
    turnout: &Path,
    floor: &Path,
    extras: &[Extra],
    legacy: u16,
    fastapi: u16,
) -> String {
    let by_header = || RouteAction::ClusterHeader(DECISION_HEADER.into());
    let other = || Route::new("other", "/", RouteAction::Cluster("legacy".into()));
    let native_split = format!(
        "weighted_clusters:\n  \
           clusters:\n  \
           - {{name: legacy, weight: 50}}\n  \
           - {{name: fastapi, weight: 50}}\n  \
           use_hash_policy: true\n\
         hash_policy:\n\
         - header: {{header_name: {USER_HEADER}}}"
    );
    let listener = |variant: Variant| {
        let l = Listener::new(variant.listener());
        let l = match variant {
            Variant::Native => {
                return l
                    .route(Route::new(
                        "users",
                        "/users",
                        RouteAction::Raw(native_split.clone()),
                    ))
                    .route(other())
            }
            Variant::Turnout => {
                l.filter(&wasm_filter("turnout", "turnout", turnout, TURNOUT_CONFIG))
            }
            Variant::Floor => l.filter(&wasm_filter("floor", "floor", floor, "")),
            Variant::FloorClear => l.filter(&wasm_filter(
                "floor_clear",
                "floor",
                floor,
                "clear_route_cache",
            )),
            Variant::Lua => l.filter(&lua_filter()),
        };
        l.route(Route::new("users", "/users", by_header()))
            .route(other())
    };
    let extra = |e: &Extra| {
        let filter = match &e.module {
            ExtraModule::Floor(words) => wasm_filter(&e.name, "floor", floor, words),
            ExtraModule::Turnout(path) => wasm_filter(
                &e.name,
                &format!("turnout_{}", e.name),
                path,
                TURNOUT_CONFIG,
            ),
            ExtraModule::Config(json) => {
                wasm_filter(&e.name, &format!("turnout_{}", e.name), turnout, json)
            }
            ExtraModule::Bare(path) => wasm_filter(&e.name, "floor_bare", path, ""),
        };
        // A floor that writes no header cannot route by it.
        let users = match &e.module {
            ExtraModule::Floor(words) if words.split_whitespace().any(|w| w == "noop") => {
                RouteAction::Cluster("legacy".into())
            }
            _ => by_header(),
        };
        Listener::new(&e.name)
            .filter(&filter)
            .route(Route::new("users", "/users", users))
            .route(other())
    };
    let bootstrap = Variant::ALL
        .iter()
        .fold(Bootstrap::new(), |b, &v| b.listener(listener(v)));
    extras
        .iter()
        .fold(bootstrap, |b, e| b.listener(extra(e)))
        .cluster("legacy", legacy)
        .cluster("fastapi", fastapi)
        .repo_stats_tags()
        .to_yaml()
}

/// An extra listener, for experiments: its name, and what splits there.
#[derive(Clone, Debug)]
pub struct Extra {
    pub name: String,
    pub module: ExtraModule,
}

#[derive(Clone, Debug)]
pub enum ExtraModule {
    /// The floor filter configured with these words (see
    /// `benches/floor/src/lib.rs`): the floor plus chosen hostcalls.
    Floor(String),
    /// Another build of turnout (an older shell, another opt-level), with
    /// [`TURNOUT_CONFIG`].
    Turnout(PathBuf),
    /// This build of turnout with another configuration (JSON).
    Config(String),
    /// The floor without the SDK (`benches/floor-bare`), built at this path.
    Bare(PathBuf),
}

/// The benchmark's stage: the proxy Envoy and its upstreams.
pub struct LoadStage {
    pub envoy: Envoy,
    pub upstreams: Upstreams,
    pub turnout_wasm: PathBuf,
    pub floor_wasm: PathBuf,
}

impl LoadStage {
    /// Builds both wasm modules, starts the upstreams and the proxy Envoy
    /// with `concurrency` workers.
    pub fn start(upstream: UpstreamKind, concurrency: u32) -> LoadStage {
        LoadStage::with_extras(upstream, concurrency, &[])
    }

    /// Like `start`, with extra listeners (see [`Extra`]).
    pub fn with_extras(upstream: UpstreamKind, concurrency: u32, extras: &[Extra]) -> LoadStage {
        let turnout_wasm = integration::filter_wasm();
        let floor_wasm = integration::build_wasm_package("turnout-floor");
        let upstreams = Upstreams::start(upstream);
        let (legacy, fastapi) = upstreams.ports();
        let envoy = Envoy::start(
            &proxy_bootstrap(&turnout_wasm, &floor_wasm, extras, legacy, fastapi),
            concurrency,
        );
        LoadStage {
            envoy,
            upstreams,
            turnout_wasm,
            floor_wasm,
        }
    }

    pub fn port(&self, variant: Variant) -> u16 {
        self.envoy.listener_port(variant.listener())
    }

    pub fn listener_port(&self, name: &str) -> u16 {
        self.envoy.listener_port(name)
    }
}

// ---------------------------------------------------------------------------
// The machine: CPU time, memory and pinning of processes, from /proc.

/// User plus system CPU time of process `pid` (every thread), in clock
/// ticks (`utime + stime` of `/proc/<pid>/stat`).
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count from its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("no ')' in stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    let field = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other("short stat"))
    };
    Ok(field(11)? + field(12)?)
}

/// Where a process's CPU time is read from: see [`CpuClock::for_process`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuClock {
    /// The sum of field 1 (time on the CPU, nanoseconds) of
    /// `/proc/<pid>/task/*/schedstat` over every thread: the scheduler's
    /// own count, in nanoseconds. With `CONFIG_PARAVIRT_TIME_ACCOUNTING`
    /// the time the hypervisor stole is not in it. A thread that exits
    /// takes its time with it: right for Envoy, whose threads live as long
    /// as it does.
    Schedstat,
    /// `utime + stime` of `/proc/<pid>/stat`, in clock ticks (10 ms at
    /// USER_HZ 100), converted to nanoseconds: when there is no schedstat
    /// (`CONFIG_SCHED_INFO` off).
    Stat,
    /// This process (`clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`):
    /// nanoseconds, every thread, those that have exited included (the
    /// harness upstreams run a thread per connection).
    ThisProcess,
}

impl CpuClock {
    /// The clock for process `pid`: this process's own clock if `pid` is
    /// this process, schedstat if the kernel has it, else `stat`. A run
    /// must keep the clock it started with: the three do not agree to the
    /// nanosecond.
    pub fn for_process(pid: u32) -> CpuClock {
        if pid == std::process::id() {
            CpuClock::ThisProcess
        } else if schedstat_ns(pid).is_ok() {
            CpuClock::Schedstat
        } else {
            CpuClock::Stat
        }
    }

    /// CPU time of `pid` so far, in nanoseconds.
    pub fn read(self, pid: u32) -> io::Result<u64> {
        match self {
            CpuClock::Schedstat => schedstat_ns(pid),
            CpuClock::Stat => Ok((cpu_ticks(pid)? as f64 * 1e9 / ticks_per_second()) as u64),
            CpuClock::ThisProcess => Ok(this_process_cpu_ns()),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            CpuClock::Schedstat => "sum of /proc/<pid>/task/*/schedstat field 1 (ns)",
            CpuClock::Stat => "utime + stime of /proc/<pid>/stat (clock ticks)",
            CpuClock::ThisProcess => "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) (ns)",
        }
    }
}

/// Time on the CPU of every live thread of `pid`, in nanoseconds: the sum
/// of the first field of `/proc/<pid>/task/*/schedstat`. An error if the
/// process has no such file (a kernel without `CONFIG_SCHED_INFO`).
pub fn schedstat_ns(pid: u32) -> io::Result<u64> {
    let mut sum = 0u64;
    let mut threads = 0;
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        // A thread may exit between the listing and the read.
        let Ok(text) = fs::read_to_string(entry?.path().join("schedstat")) else {
            continue;
        };
        let ns: u64 = text
            .split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| io::Error::other(format!("cannot read schedstat {text:?}")))?;
        sum += ns;
        threads += 1;
    }
    if threads == 0 {
        return Err(io::Error::other(format!("no schedstat for {pid}")));
    }
    Ok(sum)
}

/// The number of threads of process `pid`.
pub fn thread_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// This process's CPU time, every thread (exited ones too), nanoseconds.
pub fn this_process_cpu_ns() -> u64 {
    // SAFETY: clock_gettime writes into the timespec we pass.
    let t = unsafe {
        let mut t: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t);
        t
    };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The machine's CPU time from `/proc/stat`, in clock ticks: busy (all
/// but idle and iowait, steal included) and stolen, of all cores and of
/// each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MachineTicks {
    pub busy: u64,
    pub steal: u64,
    /// `(busy, steal)` of core 0, 1, …
    pub cores: Vec<(u64, u64)>,
}

impl MachineTicks {
    pub fn read() -> MachineTicks {
        MachineTicks::parse(&fs::read_to_string("/proc/stat").unwrap_or_default())
    }

    pub fn parse(stat: &str) -> MachineTicks {
        let mut m = MachineTicks::default();
        for line in stat.lines() {
            let mut words = line.split_whitespace();
            let Some(name) = words.next().and_then(|w| w.strip_prefix("cpu")) else {
                continue;
            };
            // user nice system idle iowait irq softirq steal
            let v: Vec<u64> = words.take(8).filter_map(|w| w.parse().ok()).collect();
            let total: u64 = v.iter().sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            let pair = (total - idle, v.get(7).copied().unwrap_or(0));
            if name.is_empty() {
                (m.busy, m.steal) = pair;
            } else if let Ok(core) = name.parse::<usize>() {
                if m.cores.len() <= core {
                    m.cores.resize(core + 1, (0, 0));
                }
                m.cores[core] = pair;
            }
        }
        m
    }

    /// Ticks stolen from `core` since `earlier`.
    pub fn steal_since(&self, earlier: &MachineTicks, core: usize) -> u64 {
        let now = self.cores.get(core).map_or(0, |c| c.1);
        let then = earlier.cores.get(core).map_or(0, |c| c.1);
        now.saturating_sub(then)
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 {
        n as f64
    } else {
        100.0
    }
}

/// CPU time of the children this process has waited for (wrk), in seconds.
pub fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// `VmRSS` of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS"))
}

/// The wasm VMs' linear memories of process `pid`: `(size, resident)` in
/// KiB of each. V8 reserves a linear memory with its guard region as one
/// large mapping (8 GiB on Envoy 1.40) and makes the module's pages
/// readable and writable at its start, which splits off a `rw-p` mapping
/// of exactly the memory's size: the one right before each `---p` mapping
/// of at least 4 GiB. `memory.grow` would make it larger.
pub fn wasm_memories_kib(pid: u32) -> io::Result<Vec<(u64, u64)>> {
    struct Mapping {
        start: u64,
        end: u64,
        perms: String,
        size: u64,
        rss: u64,
    }
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    let mut maps: Vec<Mapping> = Vec::new();
    let kib = |l: &str, key: &str| -> Option<u64> {
        l.strip_prefix(key)?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let range = words.next().unwrap_or_default();
        if let Some((a, b)) = range.split_once('-') {
            if let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                maps.push(Mapping {
                    start,
                    end,
                    perms: words.next().unwrap_or_default().to_string(),
                    size: 0,
                    rss: 0,
                });
                continue;
            }
        }
        if let Some(m) = maps.last_mut() {
            if let Some(v) = kib(line, "Size:") {
                m.size = v;
            } else if let Some(v) = kib(line, "Rss:") {
                m.rss = v;
            }
        }
    }
    Ok(maps
        .windows(2)
        .filter(|w| {
            w[1].perms == "---p"
                && w[1].end - w[1].start >= 4 << 30
                && w[0].end == w[1].start
                && w[0].perms == "rw-p"
        })
        .map(|w| (w[0].size, w[0].rss))
        .collect())
}

/// Pins the calling thread (and so every thread and process it starts
/// afterwards) to CPU `core`.
pub fn pin_self(core: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays in it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Pins every thread of process `pid` to CPU `core` (`taskset -a -p -c`).
pub fn pin_process(pid: u32, core: usize) -> io::Result<()> {
    let out = Command::new("taskset")
        .args(["-a", "-p", "-c", &core.to_string(), &pid.to_string()])
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "taskset failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// wrk

/// `wrk`, installed with Debian's apt (`apt-get update`, then
/// `apt-get install -y wrk`) when it is not on the PATH.
pub fn ensure_wrk() -> io::Result<PathBuf> {
    if let Some(path) = which("wrk") {
        return Ok(path);
    }
    eprintln!("wrk is missing: apt-get update && apt-get install -y wrk");
    for args in [&["update"][..], &["install", "-y", "wrk"][..]] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "apt-get {args:?} failed: {status}"
            )));
        }
    }
    which("wrk").ok_or_else(|| io::Error::other("apt-get installed wrk, but it is not on PATH"))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// The wrk script: every request carries a new user id (`u<n>`, a counter
/// per wrk thread, prefixed with the thread's number when there are more).
pub const WRK_SCRIPT: &str = r#"local counter = 0
local prefix = "u"
function setup(thread)
  thread:set("id", tostring(math.random(1000000)))
end
function init(args)
  if id ~= nil then prefix = "u" .. id .. "-" end
end
request = function()
  counter = counter + 1
  return wrk.format("GET", "/users", {["x-user-id"] = prefix .. counter})
end
"#;

/// One wrk run's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WrkResult {
    pub requests: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
    /// Latency percentiles, in microseconds.
    pub p50_us: f64,
    pub p99_us: f64,
    /// Non-2xx/3xx answers plus socket errors.
    pub errors: u64,
}

/// Parses wrk's report (run with `--latency`).
pub fn parse_wrk(text: &str) -> Option<WrkResult> {
    let mut r = WrkResult::default();
    let mut seen = (false, false, false, false);
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => {
                r.p50_us = duration_us(v)?;
                seen.0 = true;
            }
            ["99%", v] => {
                r.p99_us = duration_us(v)?;
                seen.1 = true;
            }
            [n, "requests", "in", s, ..] => {
                r.requests = n.parse().ok()?;
                r.seconds = duration_us(s.trim_end_matches(','))? / 1e6;
                seen.2 = true;
            }
            ["Requests/sec:", v] => {
                r.requests_per_second = v.parse().ok()?;
                seen.3 = true;
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => r.errors += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                r.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    (seen == (true, true, true, true)).then_some(r)
}

/// A wrk duration (`512.00us`, `1.23ms`, `2.00s`, `1.5m`) in microseconds.
fn duration_us(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(n * scale)
}

/// A wrk invocation.
#[derive(Clone, Debug)]
pub struct Wrk {
    pub bin: PathBuf,
    pub script: PathBuf,
    pub threads: u32,
    pub connections: u32,
    pub seconds: u32,
}

impl Wrk {
    /// Runs wrk against `http://127.0.0.1:<port>/users` and parses its report.
    pub fn run(&self, port: u16) -> io::Result<WrkResult> {
        let out = Command::new(&self.bin)
            .args([
                "-t",
                &self.threads.to_string(),
                "-c",
                &self.connections.to_string(),
                "-d",
                &format!("{}s", self.seconds),
                "--latency",
                "-s",
            ])
            .arg(&self.script)
            .arg(format!("http://127.0.0.1:{port}/users"))
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "wrk failed ({}): {text}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        parse_wrk(&text)
            .ok_or_else(|| io::Error::other(format!("cannot read wrk's report:\n{text}")))
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

// ---------------------------------------------------------------------------
// Statistics: quantiles and a bootstrap over the cycles of a run.

/// The `q` quantile (0 ≤ q ≤ 1) of `values`, interpolated linearly between
/// order statistics (R's type 7: the median of an even count is the mean
/// of the middle two). NaN for no values.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    quantile_sorted(&v, q)
}

fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    match v.len() {
        0 => f64::NAN,
        1 => v[0],
        n => {
            let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
            let (lo, frac) = (h.floor() as usize, h - h.floor());
            if lo + 1 < n && frac > 0.0 {
                v[lo] + (v[lo + 1] - v[lo]) * frac
            } else {
                v[lo]
            }
        }
    }
}

/// A small deterministic random number generator (xorshift64*), for the
/// bootstrap: the same run gives the same interval.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0; the bias of the modulo is below 2⁻⁵⁰ for
    /// the counts used here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The bootstrap's seed: fixed, so a report can be reproduced from its
/// slices.
pub const BOOTSTRAP_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// A percentile bootstrap: `statistic` of `resamples` resamples (with
/// replacement) of the indices `0..n`, and the `(1 − level)/2` and
/// `(1 + level)/2` quantiles of its values: for `level` 0.9, the 5th and
/// 95th percentiles. `(NaN, NaN)` for `n` = 0.
pub fn bootstrap_interval(
    n: usize,
    resamples: usize,
    level: f64,
    seed: u64,
    statistic: impl Fn(&[usize]) -> f64,
) -> (f64, f64) {
    if n == 0 || resamples == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = XorShift::new(seed);
    let mut idx = vec![0; n];
    let mut values: Vec<f64> = (0..resamples)
        .map(|_| {
            idx.iter_mut().for_each(|i| *i = rng.below(n));
            statistic(&idx)
        })
        .collect();
    values.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    (
        quantile_sorted(&values, tail),
        quantile_sorted(&values, 1.0 - tail),
    )
}

/// A figure measured once per cycle as `num[k] / den[k]` (a difference of
/// CPU per request has `den` 1, a ratio of two variants' figures has the
/// second one there), summed up over the cycles of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Median and quartiles of the per-cycle values.
    pub median: f64,
    pub q1: f64,
    pub q3: f64,
    /// Bootstrap interval (over cycles) of the median.
    pub median_lo: f64,
    pub median_hi: f64,
    /// Σ num / Σ den over all cycles: for a difference the mean, for
    /// (b − a)/(c − a) the ratio of the summed differences.
    pub pooled: f64,
    /// Bootstrap interval (over cycles) of `pooled`.
    pub pooled_lo: f64,
    pub pooled_hi: f64,
    /// The number of cycles.
    pub n: usize,
}

impl Estimate {
    /// The estimate of `num[k] / den[k]` over cycles `k`, with bootstrap
    /// intervals at `level` from `resamples` resamples of the cycles.
    pub fn of(num: &[f64], den: &[f64], resamples: usize, level: f64) -> Estimate {
        assert_eq!(num.len(), den.len());
        Estimate::over_cycles(num.len(), resamples, level, |idx| {
            (
                idx.iter().map(|&i| num[i]).collect(),
                idx.iter().map(|&i| den[i]).collect(),
            )
        })
    }

    /// The estimate of a per-cycle difference (`den` 1 everywhere).
    pub fn of_differences(values: &[f64], resamples: usize, level: f64) -> Estimate {
        Estimate::of(values, &vec![1.0; values.len()], resamples, level)
    }

    /// The general form: `pairs(cycles)` gives `(num, den)`, one of each
    /// per cycle listed in `cycles` (a list of indices in `0..n`, repeats
    /// allowed), and may compute them from those cycles only, as a fit
    /// would (see [`steal_adjusted`]): the bootstrap then repeats the fit
    /// in every resample.
    pub fn over_cycles(
        n: usize,
        resamples: usize,
        level: f64,
        pairs: impl Fn(&[usize]) -> (Vec<f64>, Vec<f64>),
    ) -> Estimate {
        let median_of = |idx: &[usize]| {
            let (x, y) = pairs(idx);
            median(&x.iter().zip(&y).map(|(x, y)| x / y).collect::<Vec<_>>())
        };
        let pooled = |idx: &[usize]| {
            let (x, y) = pairs(idx);
            x.iter().sum::<f64>() / y.iter().sum::<f64>()
        };
        let all: Vec<usize> = (0..n).collect();
        let (x, y) = pairs(&all);
        let per_cycle: Vec<f64> = x.iter().zip(&y).map(|(x, y)| x / y).collect();
        let (median_lo, median_hi) =
            bootstrap_interval(n, resamples, level, BOOTSTRAP_SEED, median_of);
        let (pooled_lo, pooled_hi) =
            bootstrap_interval(n, resamples, level, BOOTSTRAP_SEED ^ 1, pooled);
        Estimate {
            median: median(&per_cycle),
            q1: quantile(&per_cycle, 0.25),
            q3: quantile(&per_cycle, 0.75),
            median_lo,
            median_hi,
            pooled: pooled(&all),
            pooled_lo,
            pooled_hi,
            n,
        }
    }
}

/// Per-slice figures `y[cycle][case]` (each > 0) corrected for a
/// covariate `s[cycle][case]` measured in the same slice, for the cycles
/// listed in `cycles`: the model is `ln y = μ(case) + β·s + noise`, β the
/// least-squares slope within each case, pooled over the cases; each
/// value is multiplied by `exp(−β·(s − reference))`, `reference` the
/// median of `s` over those slices. Returns the corrected rows (in the
/// order of `cycles`) and β.
///
/// Used with the share of the proxy's core the hypervisor stole during a
/// slice: on a shared VM that is the largest known cause of the spread of
/// Envoy's CPU per request, the same for every variant, and measured.
pub fn steal_adjusted(y: &[Vec<f64>], s: &[Vec<f64>], cycles: &[usize]) -> (Vec<Vec<f64>>, f64) {
    let cases = y.first().map_or(0, Vec::len);
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for case in 0..cases {
        let m = cycles.len() as f64;
        let mean_s = cycles.iter().map(|&k| s[k][case]).sum::<f64>() / m;
        let mean_y = cycles.iter().map(|&k| y[k][case].ln()).sum::<f64>() / m;
        for &k in cycles {
            sxy += (s[k][case] - mean_s) * (y[k][case].ln() - mean_y);
            sxx += (s[k][case] - mean_s).powi(2);
        }
    }
    // Shares of a core: a spread below 1e-9 is rounding, not a spread.
    let beta = if sxx > 1e-9 { sxy / sxx } else { 0.0 };
    let reference = median(
        &cycles
            .iter()
            .flat_map(|&k| s[k].iter().copied())
            .collect::<Vec<_>>(),
    );
    let rows = cycles
        .iter()
        .map(|&k| {
            (0..cases)
                .map(|c| y[k][c] * (-beta * (s[k][c] - reference)).exp())
                .collect()
        })
        .collect();
    (rows, beta)
}

/// `median(num) / median(den)` over cycles, with its bootstrap interval
/// (resampling cycles, the pairs kept together): a ratio of two paired
/// differences that one cycle's tiny denominator cannot throw off.
pub fn ratio_of_medians(num: &[f64], den: &[f64], resamples: usize, level: f64) -> (f64, f64, f64) {
    let stat = |idx: &[usize]| {
        let pick = |v: &[f64]| median(&idx.iter().map(|&i| v[i]).collect::<Vec<_>>());
        pick(num) / pick(den)
    };
    let all: Vec<usize> = (0..num.len()).collect();
    let (lo, hi) = bootstrap_interval(num.len(), resamples, level, BOOTSTRAP_SEED ^ 2, stat);
    (stat(&all), lo, hi)
}

/// FNV-1a, 64 bits: tells two builds of a module apart in a report.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_reports() {
        let report = "Running 10s test @ http://127.0.0.1:1234/users
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.53ms  250.00us   9.87ms   90.00%
    Req/Sec    20.95k     1.20k   22.00k    80.00%
  Latency Distribution
     50%  512.00us
     75%    1.60ms
     90%    1.80ms
     99%    2.50ms
  208516 requests in 10.00s, 25.08MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  20850.86
Transfer/sec:      2.51MB
";
        let r = parse_wrk(report).unwrap();
        assert_eq!(r.requests, 208_516);
        assert_eq!(r.seconds, 10.0);
        assert_eq!(r.requests_per_second, 20850.86);
        assert_eq!((r.p50_us, r.p99_us), (512.0, 2500.0));
        assert_eq!(r.errors, 7);
        assert_eq!(parse_wrk("nothing"), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn the_lua_and_rust_hashes_agree_on_known_values() {
        // djb2("a") = 5381 * 33 + 97 = 177670; 177670 % 10000 = 7670: legacy.
        assert_eq!(lua_cluster(b"a"), "legacy");
        assert_eq!(lua_cluster(b""), "legacy");
        assert_eq!(floor_cluster(b"u1"), "fastapi");
        assert_eq!(floor_cluster(b"u2"), "legacy");
    }

    #[test]
    fn this_process_has_cpu_time() {
        assert!(cpu_ticks(std::process::id()).is_ok());
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn schedstat_counts_this_process_in_nanoseconds() {
        let pid = std::process::id();
        let Ok(before) = schedstat_ns(pid) else {
            // A kernel without CONFIG_SCHED_INFO: the stat fallback.
            assert_eq!(CpuClock::for_process(1), CpuClock::Stat);
            return;
        };
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 30 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = schedstat_ns(pid).unwrap();
        // 30 ms of spinning, give or take what the machine stole.
        assert!(after - before >= 5_000_000, "{before} → {after}");
        assert!(this_process_cpu_ns() >= 30_000_000 / 6);
        assert_eq!(CpuClock::for_process(pid), CpuClock::ThisProcess);
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [4.0, 1.0, 3.0, 2.0, 5.0];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.25), 2.0);
        assert_eq!(quantile(&v, 0.75), 4.0);
        assert_eq!(quantile(&[1.0, 2.0], 0.5), 1.5);
        assert_eq!(quantile(&[7.0], 0.9), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn the_rng_is_deterministic_and_spread() {
        let mut a = XorShift::new(42);
        let mut b = XorShift::new(42);
        let mut counts = [0usize; 10];
        for _ in 0..10_000 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            counts[x] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn reads_proc_stat() {
        let stat = "cpu  10 0 10 100 5 0 0 7 0 0\n\
                    cpu0 4 0 6 50 2 0 0 5 0 0\n\
                    cpu1 6 0 4 50 3 0 0 2 0 0\n\
                    intr 1 2 3\n";
        let m = MachineTicks::parse(stat);
        assert_eq!((m.busy, m.steal), (27, 7));
        assert_eq!(m.cores, vec![(15, 5), (12, 2)]);
        let later = MachineTicks::parse(&stat.replace("0 0 5 0 0", "0 0 9 0 0"));
        assert_eq!(later.steal_since(&m, 0), 4);
        assert_eq!(later.steal_since(&m, 1), 0);
        assert_eq!(later.steal_since(&m, 7), 0);
        assert!(!MachineTicks::read().cores.is_empty());
    }

    #[test]
    fn the_steal_adjustment_finds_a_common_slope() {
        // Two cases, 1.0 and 2.0, inflated by exp(0.5·s).
        let s: Vec<Vec<f64>> = (0..6)
            .map(|k| vec![0.05 * k as f64, 0.3 - 0.05 * k as f64])
            .collect();
        let y: Vec<Vec<f64>> = s
            .iter()
            .map(|r| vec![(0.5 * r[0]).exp(), 2.0 * (0.5 * r[1]).exp()])
            .collect();
        let all: Vec<usize> = (0..6).collect();
        let (rows, beta) = steal_adjusted(&y, &s, &all);
        assert!((beta - 0.5).abs() < 1e-9, "{beta}");
        let reference = median(&s.concat());
        for r in &rows {
            assert!((r[0] - (0.5 * reference).exp()).abs() < 1e-9);
            assert!((r[1] / r[0] - 2.0).abs() < 1e-9);
        }
        // Over a resample, only those cycles, in that order.
        let (rows, _) = steal_adjusted(&y, &s, &[5, 5, 0]);
        assert_eq!(rows.len(), 3);
        // No spread of the covariate: nothing to fit, nothing changed.
        let flat = vec![vec![0.1, 0.1]; 3];
        let (rows, beta) = steal_adjusted(&y[..3], &flat, &[0, 1, 2]);
        assert_eq!(beta, 0.0);
        assert_eq!(rows, y[..3].to_vec());
    }

    #[test]
    fn estimates_of_a_ratio() {
        // (b − a)/(c − a) per cycle: 2 in every cycle but one outlier.
        let num = [20.0, 22.0, 18.0, 20.0, 200.0, 20.0, 21.0, 19.0];
        let den = [10.0, 11.0, 9.0, 10.0, 1.0, 10.0, 10.5, 9.5];
        let e = Estimate::of(&num, &den, 2000, 0.9);
        assert_eq!(e.n, 8);
        assert_eq!(e.median, 2.0);
        assert!(e.q1 <= e.median && e.median <= e.q3);
        assert!(e.median_lo <= e.median && e.median <= e.median_hi);
        assert!((e.pooled - 340.0 / 71.0).abs() < 1e-12);
        assert!(e.pooled_lo <= e.pooled && e.pooled <= e.pooled_hi);
        // Deterministic.
        assert_eq!(e, Estimate::of(&num, &den, 2000, 0.9));
        let d = Estimate::of_differences(&[1.0, 2.0, 3.0], 100, 0.9);
        assert_eq!((d.median, d.pooled), (2.0, 2.0));
        let (r, lo, hi) = ratio_of_medians(&num, &den, 2000, 0.9);
        assert_eq!(r, 20.0 / 10.0);
        assert!(lo <= r && r <= hi);
    }
}

// ---------------------------------------------------------------------------
// Hostcalls

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
