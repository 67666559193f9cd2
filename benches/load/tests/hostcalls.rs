//! What one request costs in hostcalls, counted by `benches/hostcalls.py`
//! (a proxy-wasm host on wasmtime): turnout with the load benchmark's
//! configuration, and the floor. A change that adds a hostcall to the
//! request path shows here; BENCHMARKS.md explains each one.

use integration::{build_wasm_package, filter_wasm};
use turnout_bench_load::{hostcalls, TURNOUT_CONFIG};

/// ABI names as the host logs them: `proxy_` before the ABI's own, WASI's
/// as they are.
fn strings(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| match n.strip_prefix("wasi:") {
            Some(_) => n.to_string(),
            None => format!("proxy_{n}"),
        })
        .collect()
}

/// The calls into the VM that Envoy makes for every request to any
/// proxy-wasm filter built with the Rust SDK (it exports every callback).
const SDK_LIFECYCLE: [&str; 7] = [
    "on_context_create",
    "on_request_headers",
    "on_response_headers",
    "on_response_body",
    "on_log",
    "on_done",
    "on_delete",
];

/// The calls into the VM that Envoy makes for every request to turnout,
/// which exports only the callbacks it uses.
const TURNOUT_LIFECYCLE: [&str; 4] = [
    "on_context_create",
    "on_request_headers",
    "on_response_headers",
    "on_done",
];

#[test]
fn turnout_makes_ten_calls_and_three_buffer_handovers_per_request() {
    let h = hostcalls(&filter_wasm(), TURNOUT_CONFIG).unwrap();
    assert_eq!(
        h.calls,
        strings(&[
            "get_property",             // xds.route_name: the split
            "get_header_map_pairs",     // every request header, once
            "add_header_map_value",     // traceparent (absent)
            "wasi:clock_time_get",      // the latency's start (monotonic)
            "add_header_map_value",     // x-turnout-cluster
            "call_foreign_function",    // clear_route_cache
            "replace_header_map_value", // x-trace-id on the response
            "wasi:clock_time_get",      // the latency's end
            "get_property",             // response.code
            "record_metric",            // the latency histogram
        ])
    );
    let allocations = h
        .callbacks
        .iter()
        .filter(|c| *c == "proxy_on_memory_allocate")
        .count();
    assert_eq!(allocations, 3, "{:?}", h.callbacks);
    let lifecycle: Vec<String> = h
        .callbacks
        .iter()
        .filter(|c| *c != "proxy_on_memory_allocate")
        .cloned()
        .collect();
    assert_eq!(lifecycle, strings(&TURNOUT_LIFECYCLE));
}

#[test]
fn the_floor_reads_one_header_and_writes_one() {
    let floor = build_wasm_package("turnout-floor");
    let h = hostcalls(&floor, "").unwrap();
    assert_eq!(
        h.calls,
        strings(&["get_header_map_value", "replace_header_map_value"])
    );
    assert_eq!(
        h.callbacks.len(),
        SDK_LIFECYCLE.len() + 1,
        "{:?}",
        h.callbacks
    );
    let h = hostcalls(&floor, "clear_route_cache").unwrap();
    assert_eq!(
        h.calls.last().map(String::as_str),
        Some("proxy_call_foreign_function")
    );
}

#[test]
fn the_floor_without_the_sdk_is_entered_once() {
    let bare = build_wasm_package("turnout-floor-bare");
    let h = hostcalls(&bare, "").unwrap();
    assert_eq!(
        h.calls,
        strings(&["get_header_map_value", "replace_header_map_value"])
    );
    assert_eq!(
        h.callbacks,
        strings(&["on_request_headers", "on_memory_allocate"])
    );
}
