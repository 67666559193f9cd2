//! A turnout stage: the filter in a real Envoy in front of two upstreams,
//! `legacy` (stable) and `fastapi` (the new side), with the routes the
//! tests, the demo and the benchmarks share.
//!
//! Routes of listener `main`: `users` (`/users`) and `orders` (`/orders`)
//! pick their cluster by the decision header; `other` (`/`) goes to
//! `legacy` by a plain route, so a request that no split takes still works.

use std::path::PathBuf;
use std::time::Duration;

use crate::bootstrap::{
    ecds_resource, wasm_filter_ecds, wasm_filter_inline, write_atomically, Bootstrap, Listener,
    Route, RouteAction,
};
use crate::client::{HttpClient, Response};
use crate::envoy::{ecds_stat, Envoy};
use crate::upstream::Upstream;
use crate::wasm::filter_wasm;

/// The header turnout writes by default and the routes read.
pub const DECISION_HEADER: &str = "x-turnout-cluster";

/// The ECDS resource name of the filter in ECDS stages.
pub const FILTER_NAME: &str = "turnout";

pub struct Stage {
    pub envoy: Envoy,
    pub legacy: Upstream,
    pub fastapi: Upstream,
    /// The ECDS resource file, for stages whose config is pushed live.
    ecds_file: Option<PathBuf>,
    pushes: u64,
}

impl Stage {
    /// Envoy with the config given inline in the bootstrap.
    pub fn inline(config_json: &str, concurrency: u32) -> Stage {
        let (legacy, fastapi) = (Upstream::start("legacy"), Upstream::start("fastapi"));
        let filter = wasm_filter_inline(&filter_wasm(), config_json);
        let envoy = Envoy::start(&bootstrap(&filter, &legacy, &fastapi), concurrency);
        Stage {
            envoy,
            legacy,
            fastapi,
            ecds_file: None,
            pushes: 0,
        }
    }

    /// Envoy with the config delivered by ECDS from a watched file, so
    /// that `push` changes it live.
    pub fn ecds(config_json: &str, concurrency: u32) -> Stage {
        let (legacy, fastapi) = (Upstream::start("legacy"), Upstream::start("fastapi"));
        let dir = crate::paths::scratch_dir("ecds");
        let file = dir.join("turnout.yaml");
        write_atomically(
            &file,
            &ecds_resource(FILTER_NAME, &filter_wasm(), config_json),
        );
        let filter = wasm_filter_ecds(FILTER_NAME, &dir, &file);
        let envoy = Envoy::start(&bootstrap(&filter, &legacy, &fastapi), concurrency);
        Stage {
            envoy,
            legacy,
            fastapi,
            ecds_file: Some(file),
            pushes: 1,
        }
    }

    /// Replaces the ECDS file and waits until Envoy has applied the new
    /// config (`update_success` counted). Panics if it was refused.
    pub fn push(&mut self, config_json: &str) {
        let file = self.ecds_file.as_ref().expect("push needs an ECDS stage");
        write_atomically(
            file,
            &ecds_resource(FILTER_NAME, &filter_wasm(), config_json),
        );
        self.pushes += 1;
        let want = self.pushes;
        self.envoy.wait_for_stat(
            &ecds_stat(FILTER_NAME, "update_success"),
            |n| n >= want,
            Duration::from_secs(10),
        );
    }

    pub fn client(&self) -> HttpClient {
        self.envoy.client("main")
    }
}

/// The bootstrap of a stage around one turnout filter entry.
pub fn bootstrap(filter_yaml: &str, legacy: &Upstream, fastapi: &Upstream) -> String {
    let by_decision = || RouteAction::ClusterHeader(DECISION_HEADER.into());
    Bootstrap::new()
        .listener(
            Listener::new("main")
                .filter(filter_yaml)
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
        .to_yaml()
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
