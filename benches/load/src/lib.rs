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
//! | `turnout_native` | turnout's native build (`turnout-native`, a dynamic module), every feature on |
//!
//! Every listener's `/users` route but `native`'s picks its cluster with
//! `cluster_header: x-turnout-cluster`; `/` goes to `legacy`. The clusters
//! `legacy` and `fastapi` point at [`Upstreams`].
//!
//! This file builds that stage; the machine's clocks (`machine`), wrk
//! (`wrk`), the statistics of a run (`stats`) and the hostcall count
//! (`hostcalls`) are modules of their own, re-exported here; `options` is
//! `cargo bench-load`'s command line, `pool` bench-pool's.

use std::path::{Path, PathBuf};

use integration::stage::{DECISION_HEADER, NATIVE_RUNTIME};
use integration::{Bootstrap, Envoy, Listener, Route, RouteAction, Upstream};

pub mod callgrind;
mod hostcalls;
pub mod instr;
mod machine;
pub mod options;
pub mod pool;
mod stats;
mod wrk;

pub use hostcalls::*;
pub use machine::*;
pub use stats::*;
pub use wrk::*;

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
    /// (e) turnout's native build, an Envoy dynamic module, with the
    /// same configuration as (b).
    TurnoutNative,
}

impl Variant {
    pub const ALL: [Variant; 6] = [
        Variant::Native,
        Variant::Turnout,
        Variant::Floor,
        Variant::FloorClear,
        Variant::Lua,
        Variant::TurnoutNative,
    ];

    /// The listener's name (and the HCM's stat prefix).
    pub fn listener(self) -> &'static str {
        match self {
            Variant::Native => "native",
            Variant::Turnout => "turnout",
            Variant::Floor => "floor",
            Variant::FloorClear => "floor_clear",
            Variant::Lua => "lua",
            Variant::TurnoutNative => "turnout_native",
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
            Variant::TurnoutNative => "(e) turnout-native (dynamic module), every feature",
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
    let listeners = Variant::ALL
        .iter()
        .map(|&v| variant_listener(v, turnout, floor))
        .chain(extras.iter().map(|e| extra_listener(e, turnout, floor)));
    stage_bootstrap(listeners, legacy, fastapi, "")
}

/// A bootstrap with these listeners, the clusters `legacy` and `fastapi`,
/// the repository's stats tags, the native build's runtime flag and
/// `extra` (top-level YAML, may be empty).
pub fn stage_bootstrap(
    listeners: impl IntoIterator<Item = Listener>,
    legacy: u16,
    fastapi: u16,
    extra: &str,
) -> String {
    listeners
        .into_iter()
        .fold(Bootstrap::new(), Bootstrap::listener)
        .cluster("legacy", legacy)
        .cluster("fastapi", fastapi)
        .repo_stats_tags()
        .extra(&format!("{NATIVE_RUNTIME}{extra}"))
        .to_yaml()
}

/// The `users` route of every filter's listener: the cluster the decision
/// header names.
fn by_header() -> RouteAction {
    RouteAction::ClusterHeader(DECISION_HEADER.into())
}

/// `/` goes to `legacy` on every listener.
fn other_route() -> Route {
    Route::new("other", "/", RouteAction::Cluster("legacy".into()))
}

/// The listener of `variant`; `turnout` and `floor` are the wasm modules
/// (read only by the wasm variants).
pub fn variant_listener(variant: Variant, turnout: &Path, floor: &Path) -> Listener {
    let l = Listener::new(variant.listener());
    let l = match variant {
        Variant::Native => {
            let native_split = format!(
                "weighted_clusters:\n  \
                   clusters:\n  \
                   - {{name: legacy, weight: 50}}\n  \
                   - {{name: fastapi, weight: 50}}\n  \
                   use_hash_policy: true\n\
                 hash_policy:\n\
                 - header: {{header_name: {USER_HEADER}}}"
            );
            return l
                .route(Route::new(
                    "users",
                    "/users",
                    RouteAction::Raw(native_split),
                ))
                .route(other_route());
        }
        Variant::Turnout => l.filter(&wasm_filter("turnout", "turnout", turnout, TURNOUT_CONFIG)),
        Variant::Floor => l.filter(&wasm_filter("floor", "floor", floor, "")),
        Variant::FloorClear => l.filter(&wasm_filter(
            "floor_clear",
            "floor",
            floor,
            "clear_route_cache",
        )),
        Variant::Lua => l.filter(&lua_filter()),
        Variant::TurnoutNative => l.filter(&integration::native_filter_inline(TURNOUT_CONFIG)),
    };
    l.route(Route::new("users", "/users", by_header()))
        .route(other_route())
}

/// The listener of an extra; `turnout` and `floor` as for
/// [`variant_listener`].
pub fn extra_listener(e: &Extra, turnout: &Path, floor: &Path) -> Listener {
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
        ExtraModule::Native(path) => {
            let module = format!("turnout_native_{}", e.name);
            let dir = integration::native_module_dir();
            let copy = dir.join(format!("lib{module}.so"));
            // Copied beside and renamed over: an Envoy still running the
            // old file (another benchmark, a test) keeps its mapping,
            // where copying over it in place would crash that Envoy.
            let partial = dir.join(format!("lib{module}.so.{}", std::process::id()));
            std::fs::copy(path, &partial)
                .and_then(|_| std::fs::rename(&partial, &copy))
                .unwrap_or_else(|err| {
                    panic!("copy {} to {}: {err}", path.display(), copy.display())
                });
            integration::native_filter_inline(TURNOUT_CONFIG)
                .replace(integration::native::MODULE_NAME, &module)
        }
        ExtraModule::NativeConfig(json) => integration::native_filter_inline(json),
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
        .route(other_route())
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
    /// Another build of the native module (a `.so`), with
    /// [`TURNOUT_CONFIG`]: copied beside this build's as
    /// `libturnout_native_<name>.so`, since Envoy loads one module per name.
    Native(PathBuf),
    /// This build of the native module with another configuration (JSON).
    NativeConfig(String),
}

/// The benchmark's stage: the proxy Envoy and its upstreams.
pub struct LoadStage {
    pub envoy: Envoy,
    pub upstreams: Upstreams,
    pub turnout_wasm: PathBuf,
    pub floor_wasm: PathBuf,
}

impl LoadStage {
    /// Builds both wasm modules and the native one, starts the upstreams and the proxy Envoy
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
        let envoy = Envoy::start_with_modules(
            &proxy_bootstrap(&turnout_wasm, &floor_wasm, extras, legacy, fastapi),
            concurrency,
            &integration::native_module_dir(),
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
    fn the_lua_and_rust_hashes_agree_on_known_values() {
        // djb2("a") = 5381 * 33 + 97 = 177670; 177670 % 10000 = 7670: legacy.
        assert_eq!(lua_cluster(b"a"), "legacy");
        assert_eq!(lua_cluster(b""), "legacy");
        assert_eq!(floor_cluster(b"u1"), "fastapi");
        assert_eq!(floor_cluster(b"u2"), "legacy");
    }
}
