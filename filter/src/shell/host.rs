//! Envoy's side of the ABI, called directly: the request headers read in
//! one hostcall, when first needed, and looked up in place after; property
//! reads with their paths serialized at compile time; header writes, the
//! route cache and the histogram.
//!
//! Direct, not through the SDK's `hostcalls`, for two reasons. The SDK
//! panics on any status it does not expect (a header write refused because
//! the map is gone, a property Envoy cannot serialize), and a panic kills
//! the worker's VM and every request it serves; here every failure reads as
//! "absent" or "not done". And the request path allocates nothing it does
//! not keep: the SDK builds a `Vec` of path parts and a serialized copy for
//! every property read, and copies every header of a map it reads.

use std::cell::OnceCell;

use proxy_wasm::types::{MapType, Status};

use crate::decide::RequestFacts;
use crate::wire;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> Status;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> Status;
    fn proxy_add_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_replace_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_remove_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
    ) -> Status;
    fn proxy_call_foreign_function(
        function_name_data: *const u8,
        function_name_size: usize,
        arguments_data: *const u8,
        arguments_size: usize,
        results_data: *mut *mut u8,
        results_size: *mut usize,
    ) -> Status;
    fn proxy_record_metric(metric_id: u32, value: u64) -> Status;
}

/// A property path as the ABI takes it: the parts joined by NUL.
pub struct PropertyPath(&'static [u8]);

pub const ROUTE_NAME: PropertyPath = PropertyPath(b"xds\0route_name");
pub const RESPONSE_CODE: PropertyPath = PropertyPath(b"response\0code");
pub const RESPONSE_CODE_DETAILS: PropertyPath = PropertyPath(b"response\0code_details");
pub const REQUEST_DURATION: PropertyPath = PropertyPath(b"request\0duration");

/// One request's facts as Envoy gives them, each read once, when first
/// needed, and lent out in place.
#[derive(Default)]
pub struct Host {
    /// The serialized request header map.
    headers: OnceCell<Vec<u8>>,
    route_name: OnceCell<Option<Vec<u8>>>,
}

impl Host {
    /// The first value of a request header (names are lowercase in Envoy).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let buffer = self.headers.get_or_init(request_header_map);
        wire::find(buffer, name.as_bytes())
    }
}

impl RequestFacts for Host {
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

/// Takes ownership of a buffer the host returned. On success the host
/// filled `data` with a buffer of `size` bytes that it allocated through
/// the SDK's `proxy_on_memory_allocate` (a `Vec<u8>` allocation of exactly
/// `size`), whose ownership passes to us.
///
/// # Safety
/// `data` and `size` must be what a successful hostcall wrote.
unsafe fn owned(status: Status, data: *mut u8, size: usize) -> Option<Vec<u8>> {
    match status {
        // SAFETY: see above.
        Status::Ok if !data.is_null() => Some(unsafe { Vec::from_raw_parts(data, size, size) }),
        _ => None,
    }
}

/// The request headers, serialized as the ABI hands them over. Called
/// directly rather than through the SDK, whose reader copies every header
/// and panics on what it does not expect.
fn request_header_map() -> Vec<u8> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes `data` and `size` only on success.
    unsafe {
        let status = proxy_get_header_map_pairs(MapType::HttpRequestHeaders, &mut data, &mut size);
        owned(status, data, size).unwrap_or_default()
    }
}

/// A property's value, or `None` if Envoy has none (or cannot say).
pub fn property(path: PropertyPath) -> Option<Vec<u8>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the path is a valid slice; the host writes `data` and `size`
    // only on success.
    unsafe {
        let status = proxy_get_property(path.0.as_ptr(), path.0.len(), &mut data, &mut size);
        owned(status, data, size)
    }
}

/// An integer property (Envoy serializes them as 8 little-endian bytes).
pub fn property_u64(path: PropertyPath) -> Option<u64> {
    let bytes = property(path)?;
    let array: [u8; 8] = bytes.as_slice().try_into().ok()?;
    Some(u64::from_le_bytes(array))
}

/// How a header is written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// The map has no such header: add it (no lookup in the map).
    Add,
    /// Replace every value the header may have.
    Replace,
}

/// Writes (`Some`) or removes (`None`) a header of the request or response.
pub fn set_header(map: MapType, name: &str, value: Option<&[u8]>, how: Write) {
    let (key, len) = (name.as_ptr(), name.len());
    // SAFETY: key and value are valid slices for the call's duration.
    // Failure (the map is gone) leaves nothing to do.
    unsafe {
        let _ = match (value, how) {
            (Some(v), Write::Add) => proxy_add_header_map_value(map, key, len, v.as_ptr(), v.len()),
            (Some(v), Write::Replace) => {
                proxy_replace_header_map_value(map, key, len, v.as_ptr(), v.len())
            }
            (None, _) => proxy_remove_header_map_value(map, key, len),
        };
    }
}

/// Makes Envoy match the route again, so `cluster_header` sees the decision.
/// Envoy 1.40 still clears the cache when a wasm filter writes a request
/// header; later versions do not, so the call is made explicitly.
pub fn clear_route_cache() {
    const NAME: &[u8] = b"clear_route_cache";
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: name and the empty argument are valid slices; a result, if
    // the host gives one, is ours to free.
    unsafe {
        let status = proxy_call_foreign_function(
            NAME.as_ptr(),
            NAME.len(),
            [0u8; 0].as_ptr(),
            0,
            &mut data,
            &mut size,
        );
        drop(owned(status, data, size));
    }
}

/// Records one value of a histogram (`u32::MAX`: a metric Envoy refused).
pub fn record(histogram: u32, value: u64) {
    if histogram != u32::MAX {
        // SAFETY: no pointers. A failure drops the value: stats never take
        // a request down.
        let _ = unsafe { proxy_record_metric(histogram, value) };
    }
}
