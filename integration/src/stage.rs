//! A turnout stage: the filter in a real Envoy in front of two upstreams,
//! `legacy` (stable) and `fastapi` (the new side), with the routes the
//! tests, the demo and the benchmarks share.
//!
//! Routes of listener `main`: `users` (`/users`) and `orders` (`/orders`)
//! pick their cluster by the decision header; `other` (`/`) goes to
//! `legacy` by a plain route, so a request that no split takes still works.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::bootstrap::{write_atomically, Bootstrap, Listener, Route, RouteAction};
use crate::build::Build;
use crate::client::{HttpClient, Response};
use crate::envoy::{ecds_stat, Envoy};
use crate::upstream::Upstream;

/// The header turnout writes by default and the routes read.
pub const DECISION_HEADER: &str = "x-turnout-cluster";

/// The ECDS resource name of the filter in ECDS stages.
pub const FILTER_NAME: &str = "turnout";

pub struct Stage {
    pub envoy: Envoy,
    pub legacy: Upstream,
    pub fastapi: Upstream,
    /// Which build of turnout this Envoy runs.
    pub build: Build,
    /// The ECDS resource file, for stages whose config is pushed live.
    ecds_file: Option<PathBuf>,
    /// Configs Envoy has been given that it must accept (`update_success`
    /// expected), and that it must refuse (`update_rejected` expected).
    pushes: u64,
    rejections: u64,
}

/// How long Envoy may take to acknowledge a pushed config.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

impl Stage {
    /// Envoy with the wasm build, its config given inline in the bootstrap.
    pub fn inline(config_json: &str, concurrency: u32) -> Stage {
        Stage::inline_before(config_json, concurrency, &[])
    }

    /// [`Stage::inline`] with more HTTP filters (raw YAML entries) between
    /// turnout and the router: a fault filter that fails one cluster.
    pub fn inline_before(config_json: &str, concurrency: u32, after: &[String]) -> Stage {
        Stage::inline_with_before(Build::Wasm, config_json, concurrency, after)
    }

    /// Envoy with `build`, its config given inline in the bootstrap.
    pub fn inline_with(build: Build, config_json: &str, concurrency: u32) -> Stage {
        Stage::inline_with_before(build, config_json, concurrency, &[])
    }

    /// [`Stage::inline_with`] with more HTTP filters before the router.
    pub fn inline_with_before(
        build: Build,
        config_json: &str,
        concurrency: u32,
        after: &[String],
    ) -> Stage {
        let (legacy, fastapi) = (Upstream::start("legacy"), Upstream::start("fastapi"));
        let mut filters = vec![build.filter_inline(config_json)];
        filters.extend_from_slice(after);
        let yaml = bootstrap_for(build, &filters, &legacy, &fastapi);
        let envoy = build.start_envoy(&yaml, concurrency);
        Stage {
            envoy,
            legacy,
            fastapi,
            build,
            ecds_file: None,
            pushes: 0,
            rejections: 0,
        }
    }

    /// Envoy with the wasm build, its config delivered by ECDS from a
    /// watched file, so that `push` changes it live.
    pub fn ecds(config_json: &str, concurrency: u32) -> Stage {
        Stage::ecds_before(config_json, concurrency, &[])
    }

    /// [`Stage::ecds`] with more HTTP filters between turnout and the router.
    pub fn ecds_before(config_json: &str, concurrency: u32, after: &[String]) -> Stage {
        Stage::ecds_with_before(Build::Wasm, config_json, concurrency, after)
    }

    /// Envoy with `build`, its config delivered by ECDS.
    pub fn ecds_with(build: Build, config_json: &str, concurrency: u32) -> Stage {
        Stage::ecds_with_before(build, config_json, concurrency, &[])
    }

    /// [`Stage::ecds_with`] with more HTTP filters before the router.
    pub fn ecds_with_before(
        build: Build,
        config_json: &str,
        concurrency: u32,
        after: &[String],
    ) -> Stage {
        let (legacy, fastapi) = (Upstream::start("legacy"), Upstream::start("fastapi"));
        let dir = crate::paths::scratch_dir("ecds");
        let file = dir.join("turnout.yaml");
        write_atomically(&file, &build.ecds_resource(FILTER_NAME, config_json));
        let mut filters = vec![build.filter_ecds(FILTER_NAME, &dir, &file)];
        filters.extend_from_slice(after);
        let yaml = bootstrap_for(build, &filters, &legacy, &fastapi);
        let envoy = build.start_envoy(&yaml, concurrency);
        Stage {
            envoy,
            legacy,
            fastapi,
            build,
            ecds_file: Some(file),
            pushes: 1,
            rejections: 0,
        }
    }

    /// Replaces the ECDS file and waits until Envoy has applied the new
    /// config (`update_success` counted). Panics if it was refused.
    pub fn push(&mut self, config_json: &str) {
        self.push_nowait(config_json);
        self.wait_applied(PUSH_TIMEOUT);
    }

    /// Replaces the ECDS file with a config Envoy must accept and returns at
    /// once, with the instant the new file was renamed into place (what
    /// Envoy's directory watch reacts to). Follow with `wait_applied`.
    pub fn push_nowait(&mut self, config_json: &str) -> Instant {
        let at = self.replace_file(config_json);
        self.pushes += 1;
        at
    }

    /// Waits until Envoy has acknowledged every accepted push so far
    /// (`update_success`), polling the admin API every millisecond or two,
    /// and returns the instant it saw the acknowledgement. Panics at once if
    /// Envoy refused a config instead, or after `timeout`.
    pub fn wait_applied(&self, timeout: Duration) -> Instant {
        self.wait_ecds(timeout, |success, rejected| {
            assert!(
                rejected <= self.rejections,
                "Envoy refused a config that should be accepted:\n{}",
                refusals(&self.envoy.log())
            );
            success >= self.pushes
        })
    }

    /// Replaces the ECDS file with a config the filter must refuse, waits
    /// until Envoy counts it in `update_rejected`, and returns the instant
    /// it saw that. Panics if Envoy accepted it (`update_success` moved).
    pub fn push_rejected(&mut self, config_json: &str) -> Instant {
        self.replace_file(config_json);
        self.rejections += 1;
        self.wait_ecds(PUSH_TIMEOUT, |success, rejected| {
            assert!(
                success <= self.pushes,
                "Envoy accepted a config that should be refused: {config_json}"
            );
            rejected >= self.rejections
        })
    }

    /// The ECDS subscription's counters of this stage's filter, by short
    /// name (`update_success`, `update_rejected`, `update_attempt`, ...).
    pub fn ecds_stats(&self) -> HashMap<String, u64> {
        let prefix = ecds_stat(FILTER_NAME, "");
        // A regex; its unescaped dots match themselves too.
        let filter = format!("/stats?filter=^{prefix}");
        let (status, body) = self.envoy.admin(&filter);
        assert_eq!(status, 200, "{filter}: {body}");
        body.lines()
            .filter_map(|line| {
                let (name, value) = line.rsplit_once(": ")?;
                let short = name.strip_prefix(&prefix)?;
                Some((short.to_string(), value.trim().parse().ok()?))
            })
            .collect()
    }

    /// Like `write_atomically`, but returns the instant of the rename itself
    /// (taken just before it), not of the end of the write.
    fn replace_file(&self, config_json: &str) -> Instant {
        let file = self.ecds_file.as_ref().expect("push needs an ECDS stage");
        let contents = self.build.ecds_resource(FILTER_NAME, config_json);
        let dir = file.parent().expect("the ECDS file has a directory");
        let tmp = dir.join(".turnout.yaml.push");
        let replace = || -> std::io::Result<Instant> {
            let mut f = File::create(&tmp)?;
            f.write_all(contents.as_bytes())?;
            f.sync_all()?;
            let at = Instant::now();
            fs::rename(&tmp, file)?;
            File::open(dir)?.sync_all()?;
            Ok(at)
        };
        replace().unwrap_or_else(|e| panic!("replace {}: {e}", file.display()))
    }

    /// Polls `update_success` and `update_rejected` until `done` says so.
    fn wait_ecds(&self, timeout: Duration, done: impl Fn(u64, u64) -> bool) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.ecds_stats();
            let count = |name: &str| stats.get(name).copied().unwrap_or(0);
            if done(count("update_success"), count("update_rejected")) {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "Envoy did not process the pushed config in {timeout:?} (ECDS stats {stats:?}):\n{}",
                self.envoy.tail()
            );
            sleep(Duration::from_millis(1));
        }
    }

    pub fn client(&self) -> HttpClient {
        self.envoy.client("main")
    }
}

/// The runtime flag a bootstrap running the native build sets, so that
/// Envoy strips the dynamic modules' stat namespace in `/stats/prometheus`
/// as it strips wasm's: both builds then show the same series.
pub const NATIVE_RUNTIME: &str = "layered_runtime:\n  \
     layers:\n  \
     - name: turnout-native\n    \
       static_layer:\n      \
         envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix: true\n";

/// The bootstrap of a stage of `build` whose listener has these HTTP
/// filters (turnout first) before the router.
pub fn bootstrap_for(
    build: Build,
    filters: &[String],
    legacy: &Upstream,
    fastapi: &Upstream,
) -> String {
    let yaml = bootstrap_of(filters, legacy, fastapi);
    match build {
        Build::Wasm => yaml,
        Build::Native => yaml + NATIVE_RUNTIME,
    }
}

/// The bootstrap of a stage around one turnout filter entry.
pub fn bootstrap(filter_yaml: &str, legacy: &Upstream, fastapi: &Upstream) -> String {
    bootstrap_of(&[filter_yaml.to_string()], legacy, fastapi)
}

/// The bootstrap of a stage whose listener has these HTTP filters (turnout
/// first) before the router.
pub fn bootstrap_of(filters: &[String], legacy: &Upstream, fastapi: &Upstream) -> String {
    let by_decision = || RouteAction::ClusterHeader(DECISION_HEADER.into());
    let listener = filters
        .iter()
        .fold(Listener::new("main"), |l, f| l.filter(f));
    Bootstrap::new()
        .listener(
            listener
                .route(Route::new("users", "/users", by_decision()))
                .route(Route::new("orders", "/orders", by_decision()))
                .route(Route::new(
                    "other",
                    "/",
                    RouteAction::Cluster("legacy".into()),
                )),
        )
        .cluster("legacy", legacy.port())
        .cluster("fastapi", fastapi.port())
        .repo_stats_tags()
        .extra("stats_flush_interval: 1s")
        .to_yaml()
}

/// The filter's "configuration refused" lines of an Envoy log.
fn refusals(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("configuration refused"))
        .collect();
    lines.join("\n")
}

/// The upstream that served a response, or `None` if Envoy answered itself.
pub fn served_by(response: &Response) -> Option<String> {
    response.header("x-upstream")
}

/// Whether the upstream saw request header `name: value` (its echo).
pub fn upstream_saw(response: &Response, name: &str, value: &str) -> bool {
    response
        .body_str()
        .lines()
        .any(|l| l == format!("{name}: {value}"))
}

/// A shipped bootstrap (`envoy/*.yaml`) moved onto this test's ports: its
/// admin and listener on free ports, its `legacy` (18081) and `fastapi`
/// (18082) clusters on the test's upstreams.
pub fn shipped_on_test_ports(yaml: &str, legacy: &Upstream, fastapi: &Upstream) -> String {
    yaml.replace("port_value: 9901", "port_value: 0")
        .replace("port_value: 10000", "port_value: 0")
        .replace(
            "port_value: 18081",
            &format!("port_value: {}", legacy.port()),
        )
        .replace(
            "port_value: 18082",
            &format!("port_value: {}", fastapi.port()),
        )
}
