//! What one request costs in hostcalls, counted by `benches/hostcalls.py`
//! (a proxy-wasm host on wasmtime): turnout with the load benchmark's
//! configuration, and the floor. A change that adds a hostcall to the
//! request path shows here; BENCHMARKS.md explains each one.

use integration::{build_wasm_package, filter_wasm};
use turnout_bench_load::{hostcalls, hostcalls_after, Hostcalls, RootEvent, TURNOUT_CONFIG};

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
fn turnout_makes_nine_calls_and_three_buffer_handovers_per_request() {
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

/// A guard judges every response in the VM's memory: a request of a
/// guarded split makes exactly the calls of an unguarded one. (Its
/// counts reach the other workers at the tick, by shared data.)
#[test]
fn a_guard_adds_no_call_to_the_request_path() {
    let guarded = TURNOUT_CONFIG.replace(
        r#""force_header": "x-turnout-force"}"#,
        r#""force_header": "x-turnout-force", "guard": {"min_requests": 1,
            "max_error_rate": 0.01, "max_p99_ms": 500, "max_p95_ratio": 2.0,
            "max_error_ratio": 2.0}}"#,
    );
    assert_ne!(guarded, TURNOUT_CONFIG);
    let plain = hostcalls(&filter_wasm(), TURNOUT_CONFIG).unwrap();
    let h = hostcalls_after(&filter_wasm(), &guarded, 2, RootEvent::Tick).unwrap();
    assert_eq!(h.calls, plain.calls);
    assert_eq!(h.callbacks, plain.callbacks);
    // The tick reads the shared record and writes the worker's counts.
    assert_eq!(
        end_count(&h, "proxy_get_shared_data"),
        1,
        "{:?}",
        h.end_calls
    );
    assert_eq!(
        end_count(&h, "proxy_set_shared_data"),
        1,
        "{:?}",
        h.end_calls
    );
}

fn count(calls: &[String], name: &str) -> usize {
    calls.iter().filter(|c| *c == name).count()
}

fn end_count(h: &Hostcalls, name: &str) -> usize {
    count(&h.end_calls, name)
}

/// The tick publishes what the requests held back, and so do a pushed
/// configuration replacing the old one and the VM's stop: both requests'
/// latency values, and each counter they moved, once.
#[test]
fn turnout_publishes_what_it_held_at_the_tick_a_push_and_the_stop() {
    for end in [RootEvent::Tick, RootEvent::Configure, RootEvent::Done] {
        let h = hostcalls_after(&filter_wasm(), TURNOUT_CONFIG, 2, end).unwrap();
        // A configuration applied sets its gauges with the same call.
        let gauges = match end {
            RootEvent::Configure => count(&h.configure_calls, "proxy_record_metric"),
            _ => 0,
        };
        assert_eq!(
            end_count(&h, "proxy_record_metric"),
            gauges + 2,
            "{end:?}: {:?}",
            h.end_calls
        );
        // turnout_requests_total and turnout_responses_total, for one
        // cluster and reason: u1 lands on the same cluster twice.
        assert_eq!(
            end_count(&h, "proxy_increment_metric"),
            2,
            "{end:?}: {:?}",
            h.end_calls
        );
    }
}

/// At 512 values held, the request that adds the last records them all,
/// so a worker whose tick is late holds 8 KiB at most.
#[test]
fn turnout_records_held_latencies_when_it_holds_512() {
    let record = |h: &Hostcalls| {
        h.calls
            .iter()
            .filter(|c| *c == "proxy_record_metric")
            .count()
    };
    let h = hostcalls_after(&filter_wasm(), TURNOUT_CONFIG, 511, RootEvent::Tick).unwrap();
    assert_eq!(record(&h), 0, "{:?}", h.calls);
    assert_eq!(end_count(&h, "proxy_record_metric"), 511);
    let h = hostcalls_after(&filter_wasm(), TURNOUT_CONFIG, 512, RootEvent::Tick).unwrap();
    assert_eq!(record(&h), 512, "{:?}", h.calls);
    assert_eq!(end_count(&h, "proxy_record_metric"), 0, "{:?}", h.end_calls);
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
