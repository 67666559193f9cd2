//! Envoy 1.40's dynamic-module ABI, as much of it as turnout uses, spoken
//! directly: the C types, the callbacks into Envoy declared by hand from
//! `source/extensions/dynamic_modules/abi/abi.h` (no crate wraps it), and
//! safe wrappers over them. The event hooks Envoy calls are in `hooks`.
//!
//! Every `unsafe` of the crate is here. The wrappers lend what Envoy
//! hands over only for as long as the ABI says it stays valid: a header
//! read is borrowed from a [`Stream`] that a write needs `&mut`, since a
//! write may invalidate every buffer Envoy lent in the same hook.
//!
//! The shadow's copies outlive the stream that asked for them, so they are
//! sent as the configuration's callouts, which Envoy 1.40 only allows on
//! its main thread (docs/shadow-callouts.md): a worker reaches it through
//! the configuration's [`Scheduler`], and only a [`MainThread`] (made in
//! the main-thread hooks) can send a callout.

pub mod hooks;

use std::ffi::c_void;
use std::marker::PhantomData;

use turnout::runtime::MetricKind;

/// The ABI version this module is built against. Envoy 1.40 accepts
/// `v0.2.0` without a warning (`v0.1.0` loads, with a deprecation warning).
pub const ABI_VERSION: &[u8] = b"v0.2.0\0";

/// A buffer owned by Envoy (`envoy_dynamic_module_type_envoy_buffer`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    ptr: *const u8,
    length: usize,
}

/// A buffer owned by the module (`envoy_dynamic_module_type_module_buffer`).
#[repr(C)]
#[derive(Clone, Copy)]
struct ModuleBuffer {
    ptr: *const u8,
    length: usize,
}

/// Headers as the ABI takes them, borrowing the module's bytes (valid for
/// as long as `headers` is).
fn module_headers<K: AsRef<[u8]>, V: AsRef<[u8]>>(headers: &[(K, V)]) -> Vec<ModuleHeader> {
    headers
        .iter()
        .map(|(k, v)| ModuleHeader {
            key: ModuleBuffer::of(k.as_ref()),
            value: ModuleBuffer::of(v.as_ref()),
        })
        .collect()
}

impl ModuleBuffer {
    fn of(bytes: &[u8]) -> ModuleBuffer {
        ModuleBuffer {
            ptr: bytes.as_ptr(),
            length: bytes.len(),
        }
    }

    /// The null buffer: "remove" to a header setter, "none" elsewhere.
    const NULL: ModuleBuffer = ModuleBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };
}

/// A header owned by the module (`envoy_dynamic_module_type_module_http_header`).
#[repr(C)]
struct ModuleHeader {
    key: ModuleBuffer,
    value: ModuleBuffer,
}

/// A header owned by Envoy (`envoy_dynamic_module_type_envoy_http_header`):
/// a request's, read for a shadow's copy, or a callout's answer's.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyHeader {
    key: EnvoyBuffer,
    value: EnvoyBuffer,
}

/// `envoy_dynamic_module_type_http_callout_init_result_Success`: any other
/// value refused the callout at once (no hook will follow).
const CALLOUT_SENT: u32 = 0;

/// `envoy_dynamic_module_type_http_callout_result_Success`: an answer
/// came (Envoy's own 503 and 504 included); `Reset` (1) and
/// `ExceedResponseBufferLimit` (2) came with none.
pub const CALLOUT_ANSWERED: u32 = 0;

/// `envoy_dynamic_module_type_http_header_type`.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum HeaderMap {
    Request = 0,
    Response = 2,
}

/// `envoy_dynamic_module_type_http_body_type`: the chunk a body hook was
/// called with (the hook's own; turnout never buffers a body in Envoy).
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Body {
    ReceivedRequest = 0,
}

/// `envoy_dynamic_module_type_log_level`.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum LogLevel {
    Info = 2,
    Warn = 3,
    Error = 4,
}

/// `envoy_dynamic_module_type_attribute_id`, the ones turnout reads.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Attribute {
    ResponseCode = 15,
    ResponseCodeDetails = 16,
    XdsRouteName = 61,
}

/// `…_on_http_filter_request_headers_status` (and the other phases'):
/// 0 continues the filter chain in every phase.
pub const CONTINUE: u32 = 0;
/// `StopIteration`: the filter answered the request itself.
pub const STOP_ITERATION: u32 = 1;

/// `envoy_dynamic_module_type_metrics_result_Success`.
const METRICS_OK: u32 = 0;

type FilterEnvoyPtr = *mut c_void;
/// The configuration-level metric calls' shape: configuration, metric,
/// label values (none here), value.
type ConfigMetricCall =
    unsafe extern "C" fn(ConfigEnvoyPtr, usize, *mut ModuleBuffer, usize, u64) -> u32;
type ConfigEnvoyPtr = *mut c_void;
type SchedulerPtr = *mut c_void;

extern "C" {
    fn envoy_dynamic_module_callback_log(level: LogLevel, message: ModuleBuffer);

    fn envoy_dynamic_module_callback_http_get_header(
        filter: FilterEnvoyPtr,
        map: HeaderMap,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoyPtr,
        map: HeaderMap,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_add_header(
        filter: FilterEnvoyPtr,
        map: HeaderMap,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: FilterEnvoyPtr,
        map: HeaderMap,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_get_headers(
        filter: FilterEnvoyPtr,
        map: HeaderMap,
        result_headers: *mut EnvoyHeader,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter: FilterEnvoyPtr,
        body: Body,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: FilterEnvoyPtr,
        body: Body,
        result_buffers: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_get_worker_index(filter: FilterEnvoyPtr) -> u32;
    fn envoy_dynamic_module_callback_http_clear_route_cache(filter: FilterEnvoyPtr);
    fn envoy_dynamic_module_callback_http_send_response(
        filter: FilterEnvoyPtr,
        status: u32,
        headers: *mut ModuleHeader,
        headers_len: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );
    fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: FilterEnvoyPtr,
        id: Attribute,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_get_attribute_int(
        filter: FilterEnvoyPtr,
        id: Attribute,
        result: *mut u64,
    ) -> bool;

    fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_len: usize,
        id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_len: usize,
        id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_len: usize,
        id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
        config: ConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_len: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config: ConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_len: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_record_histogram_value(
        config: ConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_len: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
        config: ConfigEnvoyPtr,
    ) -> SchedulerPtr;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
        scheduler: SchedulerPtr,
        event_id: u64,
    );
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(scheduler: SchedulerPtr);
    fn envoy_dynamic_module_callback_http_filter_config_http_callout(
        config: ConfigEnvoyPtr,
        callout_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> u32;

    fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_len: usize,
        value: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_len: usize,
        value: u64,
    ) -> u32;
}

/// Writes `message` to Envoy's log (the `dynamic_modules` logger).
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: the buffer is a valid slice for the call; Envoy copies it.
    unsafe { envoy_dynamic_module_callback_log(level, ModuleBuffer::of(message.as_bytes())) }
}

/// An Envoy filter configuration being created (`config_new`): where the
/// configuration's metrics are defined. Lives only inside that hook.
pub struct ConfigEnvoy<'h> {
    handle: ConfigHandle,
    hook: PhantomData<&'h ()>,
}

impl ConfigEnvoy<'_> {
    /// Defines an unlabelled metric; `None` if Envoy would not.
    pub fn define(&self, kind: MetricKind, name: &str) -> Option<MetricId> {
        let define = match kind {
            MetricKind::Counter => envoy_dynamic_module_callback_http_filter_config_define_counter,
            MetricKind::Gauge => envoy_dynamic_module_callback_http_filter_config_define_gauge,
            MetricKind::Histogram => {
                envoy_dynamic_module_callback_http_filter_config_define_histogram
            }
        };
        let mut id = 0usize;
        // SAFETY: `ptr` is the configuration Envoy handed to this hook;
        // the name is a valid slice for the call; no labels (null, 0);
        // `id` is a valid place for Envoy to write.
        let result = unsafe {
            define(
                self.handle.ptr,
                ModuleBuffer::of(name.as_bytes()),
                std::ptr::null_mut(),
                0,
                &mut id,
            )
        };
        (result == METRICS_OK).then_some(MetricId(id))
    }

    /// Defines a counter with labels `labels` (their values are given at
    /// each increment); `None` if Envoy would not. Envoy names each of its
    /// series `NAME.LABEL.VALUE…`, as an unlabelled counter of that name.
    pub fn define_labelled_counter(&self, name: &str, labels: &[&str]) -> Option<MetricId> {
        let mut labels: Vec<ModuleBuffer> = labels
            .iter()
            .map(|l| ModuleBuffer::of(l.as_bytes()))
            .collect();
        let mut id = 0usize;
        // SAFETY: `ptr` is the configuration Envoy handed to this hook; the
        // name and the label names are valid slices for the call (Envoy
        // interns them); `id` is a valid place for Envoy to write.
        let result = unsafe {
            envoy_dynamic_module_callback_http_filter_config_define_counter(
                self.handle.ptr,
                ModuleBuffer::of(name.as_bytes()),
                labels.as_mut_ptr(),
                labels.len(),
                &mut id,
            )
        };
        (result == METRICS_OK).then_some(MetricId(id))
    }

    /// A scheduler that runs `on_http_filter_config_scheduled` for this
    /// configuration on Envoy's main thread; `None` if Envoy gave none.
    pub fn scheduler(&self) -> Option<Scheduler> {
        // SAFETY: `ptr` is the configuration Envoy handed to this hook.
        // Envoy 1.40's scheduler keeps only a weak reference to it, so the
        // scheduler may outlive it (its events are then dropped).
        let ptr = unsafe {
            envoy_dynamic_module_callback_http_filter_config_scheduler_new(self.handle.ptr)
        };
        (!ptr.is_null()).then_some(Scheduler { ptr })
    }

    /// The configuration, for the module's configuration built in this
    /// hook to keep (and only for it: see [`ConfigHandle`]).
    pub fn handle(&self) -> ConfigHandle {
        ConfigHandle {
            ptr: self.handle.ptr,
        }
    }
}

/// Envoy's filter configuration, kept by the module's configuration that
/// its `config_new` built. Envoy's object outlives ours: its streams hold
/// it while they hold ours, and Envoy calls `config_destroy`, where ours
/// is dropped, before it destroys its own.
pub struct ConfigHandle {
    ptr: ConfigEnvoyPtr,
}

// SAFETY: Envoy shares the configuration object with every worker; the
// calls made through a handle outside `config_new` set gauges, add to
// counters (labelled or not) and record histogram values, which Envoy's
// stats do safely from any of its threads. Callouts, which are not
// thread-safe, are not made through a handle but through a `MainThread`.
unsafe impl Send for ConfigHandle {}
// SAFETY: as for `Send`: `&ConfigHandle` only touches metrics.
unsafe impl Sync for ConfigHandle {}

impl ConfigHandle {
    /// Defines an unlabelled metric; `None` if Envoy would not (after
    /// `config_new` Envoy 1.40 refuses every new metric, `Frozen`: see
    /// `crate::config` for the shadow's field counters).
    pub fn define(&self, kind: MetricKind, name: &str) -> Option<MetricId> {
        ConfigEnvoy {
            handle: ConfigHandle { ptr: self.ptr },
            hook: PhantomData,
        }
        .define(kind, name)
    }

    /// Adds `by` to the series `values` of a labelled counter this
    /// configuration defined (one value per label, in order).
    pub fn increment_labelled(&self, counter: MetricId, values: &[&[u8]], by: u64) {
        let mut values: Vec<ModuleBuffer> = values.iter().map(|v| ModuleBuffer::of(v)).collect();
        // SAFETY: `ptr` is alive for as long as the handle (see the type);
        // the label values are valid slices for the call (Envoy interns
        // them into the series' name).
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_increment_counter(
                self.ptr,
                counter.0,
                values.as_mut_ptr(),
                values.len(),
                by,
            );
        }
    }

    /// Adds `by` to a counter this configuration defined.
    pub fn increment(&self, counter: MetricId, by: u64) {
        self.metric(
            envoy_dynamic_module_callback_http_filter_config_increment_counter,
            counter,
            by,
        );
    }

    /// Records a value of a histogram this configuration defined.
    pub fn record(&self, histogram: MetricId, value: u64) {
        self.metric(
            envoy_dynamic_module_callback_http_filter_config_record_histogram_value,
            histogram,
            value,
        );
    }

    /// Sets a gauge this configuration defined.
    pub fn set_gauge(&self, gauge: MetricId, value: u64) {
        self.metric(
            envoy_dynamic_module_callback_http_filter_config_set_gauge,
            gauge,
            value,
        );
    }

    /// One of the configuration's unlabelled metric calls.
    fn metric(&self, call: ConfigMetricCall, id: MetricId, value: u64) {
        // SAFETY: `ptr` is alive for as long as the handle (see the type);
        // no label values (null, 0).
        unsafe {
            call(self.ptr, id.0, std::ptr::null_mut(), 0, value);
        }
    }
}

/// A configuration's scheduler (`…_http_filter_config_scheduler_*`): from
/// any thread, [`Scheduler::commit`] makes Envoy run
/// `on_http_filter_config_scheduled` on its main thread.
pub struct Scheduler {
    ptr: SchedulerPtr,
}

// SAFETY: Envoy 1.40's config scheduler holds a weak reference to the
// configuration and posts to the main thread's dispatcher, whose `post`
// is thread-safe: `commit` may be called from any worker.
unsafe impl Send for Scheduler {}
// SAFETY: as for `Send`: `&Scheduler` only commits.
unsafe impl Sync for Scheduler {}

impl Scheduler {
    /// Asks for `on_http_filter_config_scheduled(event)` on the main
    /// thread (dropped by Envoy if the configuration is gone by then).
    pub fn commit(&self, event: u64) {
        // SAFETY: a scheduler Envoy created and that is not deleted yet
        // (deleted only in `drop`); commit is safe from any thread.
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_scheduler_commit(self.ptr, event)
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // SAFETY: deleted once, here; Envoy allows it after the
        // configuration is gone too (the scheduler holds a weak reference).
        unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_delete(self.ptr) }
    }
}

/// Envoy's filter configuration inside a hook that Envoy runs on its main
/// thread (`on_http_filter_config_scheduled`, `…_http_callout_done`): the
/// only place a configuration's callout may be sent from, since Envoy
/// keeps its callouts in the configuration without a lock and answers
/// them on the sending thread's event loop.
pub struct MainThread<'h> {
    ptr: ConfigEnvoyPtr,
    hook: PhantomData<&'h ()>,
}

/// Why Envoy refused a callout at once (`…_http_callout_init_result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CalloutRefused(pub u32);

impl MainThread<'_> {
    /// Sends a request to `cluster` that this configuration owns: it
    /// outlives every stream, and its answer comes to
    /// `on_http_filter_config_http_callout_done` with the id returned.
    /// Refused at once (an unknown cluster, no healthy host): no answer
    /// will come.
    pub fn http_callout(
        &self,
        cluster: &[u8],
        headers: &[(Vec<u8>, Vec<u8>)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u64, CalloutRefused> {
        let mut headers = module_headers(headers);
        let mut id = 0u64;
        // SAFETY: `ptr` is the configuration Envoy handed to this
        // main-thread hook; the cluster, header array and body are valid
        // for the call, and Envoy copies them into its request; `id` is a
        // valid place to write.
        let result = unsafe {
            envoy_dynamic_module_callback_http_filter_config_http_callout(
                self.ptr,
                &mut id,
                ModuleBuffer::of(cluster),
                headers.as_mut_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                timeout_ms,
            )
        };
        if result == CALLOUT_SENT {
            Ok(id)
        } else {
            Err(CalloutRefused(result))
        }
    }
}

/// A metric defined by a configuration, named by Envoy's id for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricId(usize);

/// One HTTP stream's filter in Envoy, for the length of one event hook.
/// Reads borrow from it and a write needs it mutably, so no buffer Envoy
/// lent is used after a write could have invalidated it.
pub struct Stream<'h> {
    ptr: FilterEnvoyPtr,
    hook: PhantomData<&'h ()>,
}

impl<'h> Stream<'h> {
    /// The first value of a header, borrowed from Envoy's map.
    pub fn header(&self, map: HeaderMap, name: &str) -> Option<&[u8]> {
        let mut out = EnvoyBuffer {
            ptr: std::ptr::null(),
            length: 0,
        };
        // SAFETY: `ptr` is the filter Envoy handed to this hook; the key is
        // a valid slice; `out` is a valid place to write; the size is
        // optional (null).
        let found = unsafe {
            envoy_dynamic_module_callback_http_get_header(
                self.ptr,
                map,
                ModuleBuffer::of(name.as_bytes()),
                &mut out,
                0,
                std::ptr::null_mut(),
            )
        };
        // SAFETY: Envoy's buffer stays valid until the end of this hook or
        // the next setter call; the slice borrows `self`, and every setter
        // takes `&mut self`, so it cannot outlive either.
        (found && !out.ptr.is_null()).then(|| unsafe { lent(out) })
    }

    /// The index of the worker running this stream.
    pub fn worker_index(&self) -> u32 {
        // SAFETY: the filter is this hook's; no pointers.
        unsafe { envoy_dynamic_module_callback_http_filter_get_worker_index(self.ptr) }
    }

    /// The body chunk this body hook was called with, copied (Envoy lends
    /// it as slices that live until the hook returns).
    pub fn body(&self, body: Body) -> Vec<u8> {
        // SAFETY: the filter is this hook's.
        let count =
            unsafe { envoy_dynamic_module_callback_http_get_body_chunks_size(self.ptr, body) };
        if count == 0 {
            return Vec::new();
        }
        let empty = EnvoyBuffer {
            ptr: std::ptr::null(),
            length: 0,
        };
        let mut chunks = vec![empty; count];
        // SAFETY: the filter is this hook's; `chunks` has room for the
        // `count` slices Envoy said the body has, and nothing runs between
        // the two calls that could change it.
        let found = unsafe {
            envoy_dynamic_module_callback_http_get_body_chunks(self.ptr, body, chunks.as_mut_ptr())
        };
        if !found {
            return Vec::new();
        }
        let mut out = Vec::new();
        for chunk in chunks {
            // SAFETY: Envoy's slices stay valid until this hook returns;
            // they are copied now. A null slice is empty.
            out.extend_from_slice(unsafe { lent_or_empty(chunk) });
        }
        out
    }

    /// Every header of a map, pseudo-headers included, in Envoy's order,
    /// borrowed from Envoy's map (two calls: its size, then its entries).
    pub fn headers(&self, map: HeaderMap) -> Vec<(&[u8], &[u8])> {
        // SAFETY: the filter is this hook's.
        let size = unsafe { envoy_dynamic_module_callback_http_get_headers_size(self.ptr, map) };
        if size == 0 {
            return Vec::new();
        }
        let empty = EnvoyBuffer {
            ptr: std::ptr::null(),
            length: 0,
        };
        let mut out = vec![
            EnvoyHeader {
                key: empty,
                value: empty
            };
            size
        ];
        // SAFETY: the filter is this hook's; `out` has room for the `size`
        // entries Envoy said the map has, and nothing runs between the two
        // calls that could change the map.
        let found = unsafe {
            envoy_dynamic_module_callback_http_get_headers(self.ptr, map, out.as_mut_ptr())
        };
        if !found {
            return Vec::new();
        }
        out.iter()
            .filter(|h| !h.key.ptr.is_null())
            // SAFETY: as for `header`: Envoy's buffers stay valid until the
            // hook ends or a setter runs; the slices borrow `self`, and
            // every setter takes `&mut self`. A null value is empty.
            .map(|h| unsafe { (lent(h.key), lent_or_empty(h.value)) })
            .collect()
    }

    /// Every header of a map, read in two calls (its size, then its
    /// entries) into `buffer` (emptied first, reused across hooks), and
    /// looked up afterwards without calling Envoy: one read for a hook
    /// that asks for several headers.
    pub fn header_copy(&self, map: HeaderMap, mut buffer: Vec<EnvoyHeader>) -> HeaderCopy<'_> {
        buffer.clear();
        // SAFETY: the filter is this hook's.
        let size = unsafe { envoy_dynamic_module_callback_http_get_headers_size(self.ptr, map) };
        if size > 0 {
            let empty = EnvoyBuffer {
                ptr: std::ptr::null(),
                length: 0,
            };
            buffer.resize(
                size,
                EnvoyHeader {
                    key: empty,
                    value: empty,
                },
            );
            // SAFETY: the filter is this hook's; `buffer` has room for the
            // `size` entries Envoy said the map has, and nothing runs
            // between the two calls that could change the map.
            let found = unsafe {
                envoy_dynamic_module_callback_http_get_headers(self.ptr, map, buffer.as_mut_ptr())
            };
            if !found {
                buffer.clear();
                return HeaderCopy {
                    entries: buffer,
                    complete: false,
                    stream: PhantomData,
                };
            }
        }
        HeaderCopy {
            entries: buffer,
            complete: true,
            stream: PhantomData,
        }
    }

    /// Writes (`Some`) or removes (`None`) a header; `add` appends a value
    /// instead of replacing every value.
    pub fn set_header(&mut self, map: HeaderMap, name: &[u8], value: Option<&[u8]>, add: bool) {
        let key = ModuleBuffer::of(name);
        let value = value.map_or(ModuleBuffer::NULL, ModuleBuffer::of);
        // SAFETY: the filter is this hook's; key and value are valid slices
        // (or the null buffer, which removes) for the call. A failure (the
        // map is gone) leaves nothing to do.
        unsafe {
            if add && !value.ptr.is_null() {
                envoy_dynamic_module_callback_http_add_header(self.ptr, map, key, value);
            } else {
                envoy_dynamic_module_callback_http_set_header(self.ptr, map, key, value);
            }
        }
    }

    /// Makes Envoy match the route again.
    pub fn clear_route_cache(&mut self) {
        // SAFETY: the filter is this hook's.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(self.ptr) }
    }

    /// Answers the request locally. Envoy may run this filter's response
    /// hooks before it returns: the caller holds no borrow of the filter.
    pub fn send_response(&mut self, status: u32, headers: &[(&[u8], &[u8])], body: &[u8]) {
        let mut headers = module_headers(headers);
        // SAFETY: the filter is this hook's; the header array and body are
        // valid for the call, and Envoy copies them; no details (null).
        unsafe {
            envoy_dynamic_module_callback_http_send_response(
                self.ptr,
                status,
                headers.as_mut_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::NULL,
            );
        }
    }

    /// A string attribute (`xds.route_name`, `response.code_details`).
    pub fn attribute_string(&self, id: Attribute) -> Option<&[u8]> {
        let mut out = EnvoyBuffer {
            ptr: std::ptr::null(),
            length: 0,
        };
        // SAFETY: the filter is this hook's; `out` is a valid place.
        let found = unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_string(self.ptr, id, &mut out)
        };
        // SAFETY: as for headers: valid during the hook, borrowed from `self`.
        (found && !out.ptr.is_null()).then(|| unsafe { lent(out) })
    }

    /// An integer attribute (`response.code`).
    pub fn attribute_int(&self, id: Attribute) -> Option<u64> {
        let mut out = 0u64;
        // SAFETY: the filter is this hook's; `out` is a valid place.
        let found = unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_int(self.ptr, id, &mut out)
        };
        found.then_some(out)
    }

    /// Adds one to a counter of the filter's configuration. Metrics touch
    /// no header map, so this needs no `&mut`.
    pub fn increment(&self, counter: MetricId) {
        // SAFETY: the filter is this hook's; no label values (null, 0).
        unsafe {
            envoy_dynamic_module_callback_http_filter_increment_counter(
                self.ptr,
                counter.0,
                std::ptr::null_mut(),
                0,
                1,
            );
        }
    }

    /// Records a value in a histogram of the filter's configuration.
    pub fn record(&self, histogram: MetricId, value: u64) {
        // SAFETY: as in `increment`.
        unsafe {
            envoy_dynamic_module_callback_http_filter_record_histogram_value(
                self.ptr,
                histogram.0,
                std::ptr::null_mut(),
                0,
                value,
            );
        }
    }
}

/// A header map's entries as Envoy lent them ([`Stream::header_copy`]):
/// valid while the stream is borrowed shared, that is until the next write.
pub struct HeaderCopy<'s> {
    entries: Vec<EnvoyHeader>,
    /// Envoy gave every entry. When it did not (the map went away between
    /// the two calls), the copy knows nothing: a reader must not take a
    /// header missing from it for one the request lacks, since the
    /// decision header a client sent would then stay on the request.
    complete: bool,
    stream: PhantomData<&'s ()>,
}

impl HeaderCopy<'_> {
    /// Whether the copy holds the whole map (see `complete`).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The first value of header `name` (lowercase, as Envoy keeps names).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter().find(|(key, _)| *key == name).map(|(_, v)| v)
    }

    /// Every entry, pseudo-headers included, in Envoy's order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .filter(|h| !h.key.ptr.is_null())
            // SAFETY: Envoy's buffers stay valid until the hook ends or a
            // setter runs; the copy borrows the stream shared for as long
            // as it lives, and every setter takes it `&mut`. A null value
            // is empty.
            .map(|h| unsafe { (lent(h.key), lent_or_empty(h.value)) })
    }

    /// The buffer, for the next hook of this worker.
    pub fn into_buffer(mut self) -> Vec<EnvoyHeader> {
        self.entries.clear();
        self.entries
    }
}

/// The bytes of a buffer Envoy lent, or none if it is null.
///
/// # Safety
/// As for [`lent`], when `buffer.ptr` is non-null.
unsafe fn lent_or_empty<'a>(buffer: EnvoyBuffer) -> &'a [u8] {
    if buffer.ptr.is_null() {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { lent(buffer) }
}

/// A callout's answer, owned: its headers (`:status` included) and its
/// body, its chunks joined.
pub struct CalloutAnswer {
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// A callout's answer, copied out of the buffers Envoy lends only for the
/// length of `on_http_filter_config_http_callout_done`.
///
/// # Safety
/// `headers` is null or points at `headers_len` headers, and `chunks` at
/// `chunks_len` buffers, all valid for the running hook.
pub unsafe fn callout_answer(
    headers: *const EnvoyHeader,
    headers_len: usize,
    chunks: *const EnvoyBuffer,
    chunks_len: usize,
) -> CalloutAnswer {
    let headers: &[EnvoyHeader] = if headers.is_null() {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(headers, headers_len) }
    };
    let chunks: &[EnvoyBuffer] = if chunks.is_null() {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(chunks, chunks_len) }
    };
    let headers = headers
        .iter()
        // SAFETY: each buffer is valid for the hook (the caller's
        // contract), and is copied before it returns.
        .map(|h| unsafe {
            (
                lent_or_empty(h.key).to_vec(),
                lent_or_empty(h.value).to_vec(),
            )
        })
        .collect();
    let mut body = Vec::with_capacity(chunks.iter().map(|c| c.length).sum());
    for chunk in chunks {
        // SAFETY: as above.
        body.extend_from_slice(unsafe { lent_or_empty(*chunk) });
    }
    CalloutAnswer { headers, body }
}

/// The bytes of a buffer Envoy lent.
///
/// # Safety
/// `buffer.ptr` is non-null and points at `buffer.length` readable bytes
/// that stay valid and unchanged for the returned lifetime.
unsafe fn lent<'a>(buffer: EnvoyBuffer) -> &'a [u8] {
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(buffer.ptr, buffer.length) }
}
