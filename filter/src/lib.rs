//! turnout: a sticky, salted traffic split for Envoy, as a proxy-wasm filter.
//!
//! The modules here are the pure core: they build and test on the host and
//! are shared with `turnoutctl`. Only `shell` talks to Envoy, and it exists
//! only in the wasm32-wasip1 build.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod bucket;
pub mod config;
pub mod decide;
pub mod fields;
pub mod flow;
pub mod guard;
pub mod keys;
pub mod plan;
pub mod runtime;
pub mod schedule;
pub mod shadow;
pub mod stats;
pub mod trace;
pub mod watch;
pub mod wire;

#[cfg(all(target_arch = "wasm32", target_os = "wasi", not(test)))]
mod shell;
