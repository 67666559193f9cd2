//! The event hooks Envoy calls: the 21 that Envoy 1.40 requires of an HTTP
//! filter module (it refuses a module that lacks one), and two optional
//! ones that Envoy runs on its main thread for the shadow's requests
//! (`on_http_filter_config_scheduled`, `…_config_http_callout_done`),
//! exported under the ABI's names. Each turns Envoy's pointers into
//! references and hands them to `crate::filter` or `crate::shadow`; the
//! ones turnout has no use for do nothing.
//!
//! No panic crosses into Envoy: a panic there would abort the whole proxy,
//! not one stream. Every hook runs its work under `catch_unwind` (the
//! crate is built with unwinding, see the workspace's release profile) and
//! falls back to something safe: a refused configuration, a stream that
//! fails closed with a 503, or nothing.

use std::ffi::{c_char, c_void};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe, UnwindSafe};
use std::sync::Arc;

use super::{
    callout_answer, log, ConfigEnvoy, ConfigHandle, EnvoyBuffer, EnvoyHeader, LogLevel, MainThread,
    Stream, ABI_VERSION, CALLOUT_ANSWERED, CONTINUE, STOP_ITERATION,
};
use crate::config::{self, FilterConfig};
use crate::filter::Filter;
use crate::shadow::JOBS_QUEUED;

/// Runs `f`, or returns `fallback` if it panics (the panic hook has
/// already logged the panic's message and place).
fn guarded<R>(fallback: R, f: impl FnOnce() -> R + UnwindSafe) -> R {
    catch_unwind(f).unwrap_or(fallback)
}

/// A stream's filter, from the pointer `on_http_filter_new` returned.
///
/// # Safety
/// `ptr` is null or a pointer `on_http_filter_new` returned that
/// `on_http_filter_destroy` has not freed yet.
unsafe fn filter<'a>(ptr: *const c_void) -> Option<&'a Filter> {
    // SAFETY: the caller's contract: a live `Box<Filter>`, only ever
    // borrowed shared (its mutable state is in cells).
    unsafe { ptr.cast::<Filter>().as_ref() }
}

/// # Safety
/// `ptr` is the filter pointer Envoy passed to the running hook.
unsafe fn stream<'h>(ptr: *mut c_void) -> Stream<'h> {
    Stream {
        ptr,
        hook: PhantomData,
    }
}

/// The bytes of a buffer Envoy passed to the running hook (may be empty).
///
/// # Safety
/// `buffer` is null or valid for the running hook.
unsafe fn bytes<'h>(buffer: EnvoyBuffer) -> &'h [u8] {
    if buffer.ptr.is_null() {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { super::lent(buffer) }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    // Panics inside the module are caught at the hooks; their message goes
    // to Envoy's log rather than to its stderr.
    let _ = catch_unwind(|| {
        std::panic::set_hook(Box::new(|info| {
            log(LogLevel::Error, &format!("turnout: panic caught: {info}"));
        }));
    });
    ABI_VERSION.as_ptr().cast()
}

/// A filter configuration: the JSON text of `filter_config` (a
/// `StringValue` arrives as its raw string). Null refuses it; Envoy then
/// keeps the previous configuration (ECDS) or refuses to start (inline).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: *mut c_void,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    guarded(std::ptr::null(), || {
        let envoy = ConfigEnvoy {
            handle: ConfigHandle { ptr: config_envoy },
            hook: PhantomData,
        };
        // SAFETY: Envoy's config buffer is valid for this hook.
        let text = unsafe { bytes(config) };
        match config::configure(&envoy, text) {
            Some(config) => Box::into_raw(Box::new(Arc::new(config)))
                .cast_const()
                .cast(),
            None => std::ptr::null(),
        }
    })
}

/// The configuration goes: Envoy cancels its callouts without answering
/// them, so the shadow's requests still queued or in flight are answered
/// here as no answer, and their pairs counted, before it is dropped.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    // SAFETY: a pointer `config_new` returned, not destroyed yet (this is
    // where it is), or null; Envoy's configuration, whose metrics the
    // counts use, is alive until this hook returns.
    if let Some(config) = unsafe { module_config(config) } {
        guarded(
            (),
            AssertUnwindSafe(|| config.host().copies.abandon(config)),
        );
    }
    // SAFETY: a pointer `config_new` returned from `Box::into_raw`, which
    // Envoy destroys once; streams still running hold their own `Arc`.
    unsafe { destroy::<Arc<FilterConfig>>(config) }
}

/// A configuration, from the pointer `config_new` returned.
///
/// # Safety
/// `ptr` is null or a pointer `config_new` returned that `config_destroy`
/// has not freed yet.
unsafe fn module_config<'a>(ptr: *const c_void) -> Option<&'a Arc<FilterConfig>> {
    // SAFETY: the caller's contract: a live `Box<Arc<FilterConfig>>`,
    // only ever borrowed shared.
    unsafe { ptr.cast::<Arc<FilterConfig>>().as_ref() }
}

/// On Envoy's main thread, for an event a worker committed to the
/// configuration's scheduler: the shadow's queued requests are sent.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    config_envoy: *mut c_void,
    config_module: *const c_void,
    event_id: u64,
) {
    // SAFETY: the pointer `config_new` returned for this configuration,
    // which Envoy passes until `config_destroy` (null if it refused).
    let Some(config) = (unsafe { module_config(config_module) }) else {
        return;
    };
    if event_id != JOBS_QUEUED {
        return;
    }
    // Envoy runs this hook on its main thread, with its configuration.
    let envoy = MainThread {
        ptr: config_envoy,
        hook: PhantomData,
    };
    guarded(
        (),
        AssertUnwindSafe(|| config.host().copies.send(config, &envoy)),
    );
}

/// On Envoy's main thread: the answer to a callout the configuration sent
/// (one of the shadow's requests). The headers and body are Envoy's, valid
/// only during this hook: they are copied before the core sees them.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _config_envoy: *mut c_void,
    config_module: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHeader,
    headers_len: usize,
    body_chunks: *const EnvoyBuffer,
    body_chunks_len: usize,
) {
    // SAFETY: as in `on_http_filter_config_scheduled`.
    let Some(config) = (unsafe { module_config(config_module) }) else {
        return;
    };
    guarded(
        (),
        AssertUnwindSafe(|| {
            // Reset, or over the response buffer limit: no answer.
            let answer = (result == CALLOUT_ANSWERED && !headers.is_null()).then(|| {
                // SAFETY: Envoy's arrays of `headers_len` headers and
                // `body_chunks_len` chunks, valid during this hook.
                unsafe { callout_answer(headers, headers_len, body_chunks, body_chunks_len) }
            });
            config.host().copies.answered(config, callout_id, answer);
        }),
    );
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _filter_envoy: *mut c_void,
) -> *const c_void {
    // SAFETY: a pointer `config_new` returned and Envoy has not destroyed
    // (it outlives the filters it creates), or null.
    let Some(config) = (unsafe { config.cast::<Arc<FilterConfig>>().as_ref() }) else {
        return std::ptr::null();
    };
    guarded(std::ptr::null(), || {
        let filter = Filter::new(Arc::clone(config));
        Box::into_raw(Box::new(filter)).cast_const().cast()
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy: *mut c_void,
    filter_module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: Envoy's pointers for this stream, valid for the hook.
    let (Some(filter), mut envoy) = (unsafe { (filter(filter_module), stream(filter_envoy)) })
    else {
        return CONTINUE;
    };
    match catch_unwind(AssertUnwindSafe(|| {
        filter.on_request_headers(&mut envoy, end_of_stream)
    })) {
        Ok(status) => status,
        Err(_) => {
            // Fail closed, as the wasm build does when its VM traps: a
            // request turnout could not decide is not routed.
            guarded((), AssertUnwindSafe(|| filter.fail(&mut envoy)));
            STOP_ITERATION
        }
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter_envoy: *mut c_void,
    filter_module: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    // SAFETY: Envoy's pointers for this stream, valid for the hook.
    if let (Some(filter), mut envoy) = unsafe { (filter(filter_module), stream(filter_envoy)) } {
        guarded(
            (),
            AssertUnwindSafe(|| filter.on_response_headers(&mut envoy)),
        );
    }
    CONTINUE
}

/// A chunk of the request body: a shadow's copy carries it. The body
/// passes on at once (turnout never holds it back).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    filter_envoy: *mut c_void,
    filter_module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: Envoy's pointers for this stream, valid for the hook.
    if let (Some(filter), mut envoy) = unsafe { (filter(filter_module), stream(filter_envoy)) } {
        guarded(
            (),
            AssertUnwindSafe(|| filter.on_request_body(&mut envoy, end_of_stream)),
        );
    }
    CONTINUE
}

/// The stream is complete (before the access log; the response is final).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    filter_envoy: *mut c_void,
    filter_module: *const c_void,
) {
    // SAFETY: Envoy's pointers for this stream, valid for the hook.
    if let (Some(filter), mut envoy) = unsafe { (filter(filter_module), stream(filter_envoy)) } {
        guarded(
            (),
            AssertUnwindSafe(|| filter.on_stream_complete(&mut envoy)),
        );
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter_module: *const c_void) {
    // SAFETY: a pointer `on_http_filter_new` returned from `Box::into_raw`;
    // Envoy destroys each filter once, after its last hook.
    unsafe { destroy::<Filter>(filter_module) }
}

/// Drops what `Box::into_raw` gave Envoy as `ptr` (null: nothing), with
/// any panic of the drop caught.
///
/// # Safety
/// `ptr` is null or came from `Box::<T>::into_raw` and is destroyed once.
unsafe fn destroy<T>(ptr: *const c_void) {
    let ptr = ptr.cast::<T>().cast_mut();
    if ptr.is_null() {
        return;
    }
    // SAFETY: see above.
    let boxed = unsafe { Box::from_raw(ptr) };
    guarded((), AssertUnwindSafe(move || drop(boxed)));
}

// The hooks below are required by Envoy 1.40 but not used by turnout: the
// response body, trailers, stream callouts, scheduling and watermarks pass
// untouched.

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _filter_envoy: *mut c_void,
    _filter_module: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _filter_envoy: *mut c_void,
    _filter_module: *const c_void,
) -> u32 {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _filter_envoy: *mut c_void,
    _filter_module: *const c_void,
) -> u32 {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _filter_envoy: *mut c_void,
    _filter_module: *const c_void,
    _callout_id: u64,
    _result: u32,
    _headers: *mut EnvoyHeader,
    _headers_len: usize,
    _body_chunks: *mut EnvoyBuffer,
    _body_chunks_len: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _filter_envoy: *mut c_void,
    _filter_module: *const c_void,
    _stream_id: u64,
    _headers: *mut EnvoyHeader,
    _headers_len: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _filter_envoy: *mut c_void,
    _filter_module: *const c_void,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_len: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _filter_envoy: *mut c_void,
    _filter_module: *const c_void,
    _stream_id: u64,
    _trailers: *mut EnvoyHeader,
    _trailers_len: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _filter_envoy: *mut c_void,
    _filter_module: *const c_void,
    _stream_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _filter_envoy: *mut c_void,
    _filter_module: *const c_void,
    _stream_id: u64,
    _reason: u32,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _filter_envoy: *mut c_void,
    _filter_module: *const c_void,
    _event_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _filter_envoy: *mut c_void,
    _filter_module: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _filter_envoy: *mut c_void,
    _filter_module: *const c_void,
) {
}
