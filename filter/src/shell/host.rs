//! Envoy as the core's source of request facts: the request headers are
//! read in one hostcall, when first needed, and looked up in place after.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{MapType, Status};

use crate::decide::RequestFacts;
use crate::wire;

#[derive(Default)]
pub struct Host {
    /// The serialized request header map, once read.
    headers: Option<Vec<u8>>,
}

impl Host {
    /// The first value of a request header (names are lowercase in Envoy).
    pub fn get(&mut self, name: &str) -> Option<&[u8]> {
        let buffer = self.headers.get_or_insert_with(request_header_map);
        wire::find(buffer, name.as_bytes())
    }
}

impl RequestFacts for Host {
    fn route_name(&mut self) -> Option<Vec<u8>> {
        hostcalls::get_property(vec!["xds", "route_name"])
            .ok()
            .flatten()
    }
    fn path(&mut self) -> Option<Vec<u8>> {
        self.get(":path").map(<[u8]>::to_vec)
    }
    fn method(&mut self) -> Option<Vec<u8>> {
        self.get(":method").map(<[u8]>::to_vec)
    }
    fn header(&mut self, name: &str) -> Option<Vec<u8>> {
        self.get(name).map(<[u8]>::to_vec)
    }
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> Status;
}

/// The request headers, serialized as the ABI hands them over. Called
/// directly rather than through the SDK, whose reader copies every header
/// and panics on what it does not expect.
fn request_header_map() -> Vec<u8> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: on success the host fills `data` with a buffer of `size`
    // bytes that it allocated through the SDK's `proxy_on_memory_allocate`
    // (a Vec<u8> allocation of exactly `size`), whose ownership passes to us.
    unsafe {
        match proxy_get_header_map_pairs(MapType::HttpRequestHeaders, &mut data, &mut size) {
            Status::Ok if !data.is_null() => Vec::from_raw_parts(data, size, size),
            _ => Vec::new(),
        }
    }
}
