//! The host calls turnout makes, as safe functions: the request headers
//! read in one call, when first needed, and looked up in place after;
//! property reads with their paths serialized at compile time; header
//! writes, the route cache, metrics, the clock, the local reply, the log.
//!
//! Every failure reads as "absent" or "not done", never as a panic (a
//! panic kills the worker's VM and every request it serves). And the
//! request path allocates nothing it does not keep: no `Vec` of path parts
//! or serialized copy per property read, no copy of every header of a map.

use std::cell::OnceCell;
use std::rc::Rc;

use super::abi::{self, handed_over, LogLevel, MapType, MetricType, OK};
use super::runtime::Config;
use crate::decide::RequestFacts;
use crate::flow::{self, Dispatch, Write};
use crate::shadow::{Reply, Side};
use crate::{stats, wire};

/// A property path as the ABI takes it: the parts joined by NUL.
pub struct PropertyPath(&'static [u8]);

pub const ROUTE_NAME: PropertyPath = PropertyPath(b"xds\0route_name");
pub const RESPONSE_CODE: PropertyPath = PropertyPath(b"response\0code");
pub const RESPONSE_CODE_DETAILS: PropertyPath = PropertyPath(b"response\0code_details");

/// One request as Envoy gives it: each fact read once, when first
/// needed, and lent out in place; the writes the core asks for; and the
/// configuration's metrics, which count in the VM's memory.
pub struct Host<'c> {
    /// The serialized request header map.
    headers: OnceCell<Vec<u8>>,
    route_name: OnceCell<Option<Vec<u8>>>,
    /// The serialized response header map (a copied write's only).
    response: OnceCell<Vec<u8>>,
    config: &'c Rc<Config>,
    /// The request has no body (its headers ended the stream).
    end_of_stream: bool,
}

impl<'c> Host<'c> {
    pub fn new(config: &'c Rc<Config>, end_of_stream: bool) -> Host<'c> {
        Host {
            headers: OnceCell::new(),
            route_name: OnceCell::new(),
            response: OnceCell::new(),
            config,
            end_of_stream,
        }
    }

    /// The first value of a request header (names are lowercase in Envoy).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let buffer = self.headers.get_or_init(request_header_map);
        wire::find(buffer, name.as_bytes())
    }
}

impl RequestFacts for Host<'_> {
    fn route_name(&self) -> Option<&[u8]> {
        self.route_name
            .get_or_init(|| property(ROUTE_NAME))
            .as_deref()
    }
    fn path(&self) -> Option<&[u8]> {
        self.get(":path")
    }
    fn method(&self) -> Option<&[u8]> {
        self.get(":method")
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.get(name)
    }
}

impl flow::Host for Host<'_> {
    fn set_request_header(&self, name: &str, value: Option<&[u8]>, how: Write) {
        // Looking in the copy is free here, and an add spares Envoy one.
        let how = match how {
            Write::Set if self.get(name).is_none() => Write::Add,
            Write::Set => Write::Replace,
            how => how,
        };
        set_header(MapType::RequestHeaders, name, value, how);
    }
    fn clear_route_cache(&self) {
        clear_route_cache();
    }
    fn set_response_header(&self, name: &str, value: &[u8]) {
        set_header(MapType::ResponseHeaders, name, Some(value), Write::Replace);
    }
    fn send_local_response(&self, status: u32, headers: &[(&str, &[u8])], body: &[u8]) {
        send_local_response(status, headers, body);
    }
    fn monotonic_nanos(&self) -> u64 {
        monotonic_nanos()
    }
    fn response_code(&self) -> Option<u64> {
        property_u64(RESPONSE_CODE)
    }
    fn response_details_mean_reset(&self) -> bool {
        property(RESPONSE_CODE_DETAILS).is_some_and(|d| stats::details_mean_reset(&d))
    }
    fn count(&self, counter: usize) {
        self.config.counts.count(counter);
    }
    fn record(&self, histogram: usize, value: u64) {
        self.config
            .counts
            .record(&self.config.runtime, histogram, value);
    }
    fn request_headers(&self) -> Vec<(&[u8], &[u8])> {
        wire::pairs(self.headers.get_or_init(request_header_map)).collect()
    }
    fn request_has_body(&self) -> bool {
        !self.end_of_stream
    }
    fn response_headers(&self) -> Vec<(&[u8], &[u8])> {
        wire::pairs(self.response.get_or_init(response_header_map)).collect()
    }
    fn dispatch(&self, request: &Dispatch<'_>, pair: u64, side: Side) -> bool {
        let sent = http_call(
            request.cluster,
            request.headers,
            request.body,
            request.timeout_ms,
        );
        if let Some(token) = sent {
            super::await_call(token, Rc::clone(self.config), pair, side, monotonic_nanos());
        }
        sent.is_some()
    }
}

/// The response headers, serialized as the ABI hands them over.
fn response_header_map() -> Vec<u8> {
    // SAFETY: a host call that writes the buffer's pointers only on success.
    unsafe {
        handed_over(|data, size| {
            abi::proxy_get_header_map_pairs(MapType::ResponseHeaders, data, size)
        })
    }
    .unwrap_or_default()
}

/// The request headers, serialized as the ABI hands them over.
fn request_header_map() -> Vec<u8> {
    // SAFETY: a host call that writes the buffer's pointers only on success.
    unsafe {
        handed_over(|data, size| {
            abi::proxy_get_header_map_pairs(MapType::RequestHeaders, data, size)
        })
    }
    .unwrap_or_default()
}

/// A property's value, or `None` if Envoy has none (or cannot say).
pub fn property(path: PropertyPath) -> Option<Vec<u8>> {
    // SAFETY: the path is a valid slice; the host writes the buffer's
    // pointers only on success.
    unsafe {
        handed_over(|data, size| abi::proxy_get_property(path.0.as_ptr(), path.0.len(), data, size))
    }
}

/// An integer property (Envoy serializes them as 8 little-endian bytes).
pub fn property_u64(path: PropertyPath) -> Option<u64> {
    let bytes = property(path)?;
    let array: [u8; 8] = bytes.as_slice().try_into().ok()?;
    Some(u64::from_le_bytes(array))
}

/// Writes (`Some`) or removes (`None`) a header of the request or response.
pub fn set_header(map: MapType, name: &str, value: Option<&[u8]>, how: Write) {
    let (key, len) = (name.as_ptr(), name.len());
    // SAFETY: key and value are valid slices for the call's duration.
    // Failure (the map is gone) leaves nothing to do.
    unsafe {
        let _ = match (value, how) {
            (Some(v), Write::Add) => {
                abi::proxy_add_header_map_value(map, key, len, v.as_ptr(), v.len())
            }
            (Some(v), Write::Replace | Write::Set) => {
                abi::proxy_replace_header_map_value(map, key, len, v.as_ptr(), v.len())
            }
            (None, _) => abi::proxy_remove_header_map_value(map, key, len),
        };
    }
}

/// Makes Envoy match the route again, so `cluster_header` sees the decision.
/// Envoy 1.40 still clears the cache when a wasm filter writes a request
/// header; later versions do not, so the call is made explicitly.
pub fn clear_route_cache() {
    const NAME: &[u8] = b"clear_route_cache";
    // SAFETY: name and the empty argument are valid slices; a result, if
    // the host gives one, is ours, and dropped.
    drop(unsafe {
        handed_over(|data, size| {
            abi::proxy_call_foreign_function(
                NAME.as_ptr(),
                NAME.len(),
                [0u8; 0].as_ptr(),
                0,
                data,
                size,
            )
        })
    });
}

/// Records one value of a histogram, or sets a gauge (`u32::MAX`: a metric
/// Envoy refused).
pub fn record(histogram: u32, value: u64) {
    if histogram != u32::MAX {
        // SAFETY: no pointers. A failure drops the value: stats never take
        // a request down.
        let _ = unsafe { abi::proxy_record_metric(histogram, value) };
    }
}

/// The nanoseconds since the Unix epoch by Envoy's clock (0 if it cannot
/// say): for schedules, which are written in wall-clock time.
pub fn now_nanos() -> u64 {
    let mut nanos = 0u64;
    // SAFETY: the host writes one u64 through a valid pointer.
    match unsafe { abi::proxy_get_current_time_nanoseconds(&mut nanos) } {
        OK => nanos,
        _ => 0,
    }
}

/// Envoy's monotonic clock in nanoseconds (0 if it cannot say): the start
/// and end of a request's latency. Two reads cost less than the
/// `request.duration` property (whose answer the host must hand over
/// through an allocation in the VM), and a wall-clock step cannot bend it.
pub fn monotonic_nanos() -> u64 {
    let mut nanos = 0u64;
    // SAFETY: the host writes one u64 through a valid pointer.
    match unsafe { abi::clock_time_get(abi::MONOTONIC, 1, &mut nanos) } {
        0 => nanos,
        _ => 0,
    }
}

/// The plugin's configuration as Envoy delivered it (empty if none).
pub fn plugin_configuration() -> Vec<u8> {
    // SAFETY: a host call that writes the buffer's pointers only on success.
    unsafe {
        handed_over(|data, size| {
            abi::proxy_get_buffer_bytes(abi::PLUGIN_CONFIGURATION, 0, usize::MAX, data, size)
        })
    }
    .unwrap_or_default()
}

/// Asks for `on_tick` every `millis` milliseconds.
pub fn set_tick_period(millis: u32) {
    // SAFETY: no pointers.
    let _ = unsafe { abi::proxy_set_tick_period_milliseconds(millis) };
}

/// Sends a request to `cluster` from the root context (it outlives the
/// stream that asked for it): its token, or `None` if Envoy refused it at
/// once (an unknown cluster, no healthy host). Its answer comes to
/// `proxy_on_http_call_response`.
pub fn http_call(
    cluster: &str,
    headers: &[(&[u8], &[u8])],
    body: &[u8],
    timeout_ms: u32,
) -> Option<u32> {
    let headers = wire::serialize(headers);
    let trailers = wire::serialize::<&[u8], &[u8]>(&[]);
    let mut token = 0u32;
    // SAFETY: every pointer is a valid slice for the call's duration; the
    // host writes one u32 through a valid pointer.
    let status = unsafe {
        abi::proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            headers.as_ptr(),
            headers.len(),
            body.as_ptr(),
            body.len(),
            trailers.as_ptr(),
            trailers.len(),
            timeout_ms,
            &mut token,
        )
    };
    (status == OK).then_some(token)
}

/// The current chunk of a request's or response's body, inside its
/// callback (empty if Envoy has none).
pub fn body(buffer: u32, size: usize) -> Vec<u8> {
    if size == 0 {
        return Vec::new();
    }
    // SAFETY: a host call that writes the buffer's pointers only on success.
    unsafe { handed_over(|data, len| abi::proxy_get_buffer_bytes(buffer, 0, size, data, len)) }
        .unwrap_or_default()
}

/// The answer, inside `proxy_on_http_call_response`: its headers and body.
pub fn http_call_response(body_size: usize, latency_ms: Option<u64>) -> Reply {
    // SAFETY: host calls that write the buffer's pointers only on success.
    let headers = unsafe {
        handed_over(|data, size| {
            abi::proxy_get_header_map_pairs(MapType::HttpCallResponseHeaders, data, size)
        })
    }
    .unwrap_or_default();
    let headers = wire::pairs(&headers)
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    let body = if body_size == 0 {
        Vec::new()
    } else {
        // SAFETY: as above.
        unsafe {
            handed_over(|data, size| {
                abi::proxy_get_buffer_bytes(abi::HTTP_CALL_RESPONSE_BODY, 0, body_size, data, size)
            })
        }
        .unwrap_or_default()
    };
    Reply::of(headers, body, latency_ms)
}

/// Writes a line to Envoy's log, under the plugin's name.
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: the message is a valid slice for the call's duration.
    let _ = unsafe { abi::proxy_log(level, message.as_ptr(), message.len()) };
}

/// Defines a metric; `u32::MAX` if Envoy will not (its counts are then
/// dropped: stats never take a request down).
pub fn define_metric(kind: MetricType, name: &str) -> u32 {
    let mut id = u32::MAX;
    // SAFETY: the name is a valid slice; the host writes one u32.
    match unsafe { abi::proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) } {
        OK => id,
        _ => u32::MAX,
    }
}

/// Adds `by` to a counter (`u32::MAX`: a metric Envoy refused).
pub fn increment(counter: u32, by: i64) {
    if counter != u32::MAX {
        // SAFETY: no pointers.
        let _ = unsafe { abi::proxy_increment_metric(counter, by) };
    }
}

/// Answers the request from the filter: Envoy sends the reply once the
/// current callback returns.
pub fn send_local_response(status: u32, headers: &[(&str, &[u8])], body: &[u8]) {
    let headers = wire::serialize(headers);
    // SAFETY: every pointer is a valid slice for the call's duration.
    let _ = unsafe {
        abi::proxy_send_local_response(
            status,
            std::ptr::null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    };
}

/// A value of Envoy's shared data (one store per VM id, shared by every
/// worker's VM) and the compare-and-swap token of its version: `None` if
/// the host cannot say; an absent key is an empty value with token 0.
pub fn shared_data(key: &str) -> Option<(Vec<u8>, u32)> {
    let mut cas = 0u32;
    let mut status = OK;
    // SAFETY: the key is a valid slice; the host writes the buffer's
    // pointers only on success, and one u32 through a valid pointer.
    let value = unsafe {
        handed_over(|data, size| {
            status = abi::proxy_get_shared_data(key.as_ptr(), key.len(), data, size, &mut cas);
            status
        })
    };
    match (value, status) {
        (Some(value), _) => Some((value, cas)),
        (None, OK | abi::NOT_FOUND) => Some((Vec::new(), cas)),
        (None, _) => None,
    }
}

/// How a shared-data write ended.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SharedWrite {
    Written,
    /// Another worker wrote the key since `cas` was read: read it again.
    Stale,
    Failed,
}

/// Writes a shared-data value if its version is still `cas` (0: write
/// whatever is there).
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> SharedWrite {
    // SAFETY: key and value are valid slices for the call's duration.
    match unsafe {
        abi::proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    } {
        OK => SharedWrite::Written,
        abi::CAS_MISMATCH => SharedWrite::Stale,
        _ => SharedWrite::Failed,
    }
}
