//! turnout-native: the turnout filter as an Envoy dynamic module.
//!
//! The same core as the wasm build (`turnout`: config, decision, request
//! flow, stats layout) behind Envoy 1.40's dynamic-module ABI, whose calls
//! into Envoy are plain function calls rather than crossings of a VM's
//! edge. Envoy loads `libturnout_native.so` with
//! `envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter`
//! (`dynamic_module_config: {name: turnout_native}`, `filter_name:
//! turnout`), its `filter_config` a `StringValue` holding the same JSON.
//!
//! `abi` speaks the ABI (all the crate's `unsafe` is there) and exports the
//! hooks; `filter` and `host` are glue; `config` holds what a configuration
//! shares across workers; `shadow` carries the shadow's requests from the
//! workers to Envoy's main thread, which sends them. Nothing here decides:
//! the core does.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(feature = "test-panic", allow(clippy::panic))]

mod abi;
mod config;
mod filter;
mod host;
mod shadow;
