//! The proxy-wasm ABI (0.2.1) as Envoy implements it: the host functions
//! turnout calls, and the module-level exports every proxy-wasm module
//! carries (the ABI marker, the allocator the host fills buffers through,
//! the WASI reactor's initializer).
//!
//! Written here rather than taken from the Rust SDK for two reasons, both
//! measured or read in Envoy's source:
//!
//! - Envoy enters the VM for a callback only when the module exports it
//!   (proxy-wasm-cpp-host skips a missing `proxy_on_response_body`,
//!   `proxy_on_log`, `proxy_on_delete`…). The SDK exports every callback,
//!   so each response body chunk, each access log and each context's
//!   deletion cost a trip into the VM that turnout does not need; a trip
//!   costs about a microsecond of Envoy's CPU (BENCHMARKS.md).
//! - The SDK's host call wrappers panic on any status they do not expect,
//!   and a panic kills the worker's VM with every request it serves. Every
//!   call here reports failure as a value.

use std::alloc::{alloc, Layout};
use std::ptr::NonNull;

/// A host call's result (only `Ok` is read; anything else is "not done").
pub type Status = u32;
pub const OK: Status = 0;
/// `proxy_get_shared_data`: no value under the key yet.
pub const NOT_FOUND: Status = 1;
/// `proxy_set_shared_data`: another worker wrote the key since it was read.
pub const CAS_MISMATCH: Status = 8;

/// The header maps of the ABI (named as the ABI names them).
#[derive(Clone, Copy)]
#[allow(clippy::enum_variant_names)]
#[repr(u32)]
pub enum MapType {
    RequestHeaders = 0,
    ResponseHeaders = 2,
    /// The answer's headers, inside `proxy_on_http_call_response`.
    HttpCallResponseHeaders = 6,
}

/// The metric kinds of `proxy_define_metric`.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

/// The log levels of `proxy_log`.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum LogLevel {
    Info = 2,
    Warn = 3,
    Error = 4,
}

/// The buffer holding the plugin's configuration.
pub const PLUGIN_CONFIGURATION: u32 = 7;
/// The answer's body, inside `proxy_on_http_call_response`.
pub const HTTP_CALL_RESPONSE_BODY: u32 = 4;
/// The request's body chunk, inside `proxy_on_request_body`.
pub const HTTP_REQUEST_BODY: u32 = 0;

/// What a header callback returns: let the stream go on, or hold it.
pub const CONTINUE: u32 = 0;
pub const PAUSE: u32 = 1;

#[link(wasm_import_module = "env")]
extern "C" {
    pub fn proxy_log(level: LogLevel, message: *const u8, size: usize) -> Status;
    pub fn proxy_get_current_time_nanoseconds(time: *mut u64) -> Status;
    pub fn proxy_set_tick_period_milliseconds(period: u32) -> Status;
    pub fn proxy_get_buffer_bytes(
        buffer: u32,
        start: usize,
        max_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> Status;
    pub fn proxy_get_header_map_pairs(map: MapType, data: *mut *mut u8, size: *mut usize)
        -> Status;
    pub fn proxy_add_header_map_value(
        map: MapType,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> Status;
    pub fn proxy_replace_header_map_value(
        map: MapType,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> Status;
    pub fn proxy_remove_header_map_value(map: MapType, key: *const u8, key_size: usize) -> Status;
    pub fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> Status;
    pub fn proxy_send_local_response(
        status_code: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> Status;
    pub fn proxy_call_foreign_function(
        name: *const u8,
        name_size: usize,
        arguments: *const u8,
        arguments_size: usize,
        results: *mut *mut u8,
        results_size: *mut usize,
    ) -> Status;
    pub fn proxy_define_metric(
        kind: MetricType,
        name: *const u8,
        name_size: usize,
        id: *mut u32,
    ) -> Status;
    pub fn proxy_increment_metric(id: u32, offset: i64) -> Status;
    pub fn proxy_get_shared_data(
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
        cas: *mut u32,
    ) -> Status;
    pub fn proxy_set_shared_data(
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
        cas: u32,
    ) -> Status;
    pub fn proxy_record_metric(id: u32, value: u64) -> Status;
    pub fn proxy_http_call(
        upstream: *const u8,
        upstream_size: usize,
        headers: *const u8,
        headers_size: usize,
        body: *const u8,
        body_size: usize,
        trailers: *const u8,
        trailers_size: usize,
        timeout_ms: u32,
        token: *mut u32,
    ) -> Status;
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    /// WASI's clock; Envoy serves clock 1 from its monotonic time source.
    pub fn clock_time_get(clock: u32, precision: u64, time: *mut u64) -> u16;
}

/// WASI's monotonic clock.
pub const MONOTONIC: u32 = 1;

/// Tells Envoy which ABI the module speaks.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Where the host puts every buffer it hands over. The buffer's layout is
/// a `Vec<u8>` of capacity `size`, so [`handed_over`] takes it back as one. Null
/// (no memory) makes the host call fail, which reads as "absent".
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    if size == 0 {
        return NonNull::dangling().as_ptr();
    }
    match Layout::array::<u8>(size) {
        // SAFETY: the layout's size is not zero.
        Ok(layout) => unsafe { alloc(layout) },
        Err(_) => std::ptr::null_mut(),
    }
}

extern "C" {
    fn __wasm_call_ctors();
}

/// The WASI reactor's initializer, which Envoy calls once per VM.
#[no_mangle]
pub extern "C" fn _initialize() {
    // SAFETY: the linker's constructor list, run once, before any callback.
    unsafe { __wasm_call_ctors() }
}

/// Makes a host call that hands a buffer back, and takes the buffer: on
/// success the host wrote, through the two pointers `call` is given, a
/// buffer of `size` bytes it got from [`proxy_on_memory_allocate`]. `None`
/// when the call failed or handed nothing back.
///
/// # Safety
/// `call` must make a host call that writes those two pointers only so.
pub unsafe fn handed_over(
    call: impl FnOnce(*mut *mut u8, *mut usize) -> Status,
) -> Option<Vec<u8>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    match call(&mut data, &mut size) {
        // SAFETY: see above; a null buffer is no buffer.
        OK if !data.is_null() => Some(unsafe { Vec::from_raw_parts(data, size, size) }),
        _ => None,
    }
}
