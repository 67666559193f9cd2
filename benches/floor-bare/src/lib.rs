//! The floor without the SDK: the same job as `benches/floor` (read
//! `x-user-id`, write `x-turnout-cluster`: `fastapi` or `legacy` by one byte
//! of the key, and let the route's `cluster_header` pick the cluster), but
//! speaking the proxy-wasm ABI directly and exporting only
//! `proxy_on_request_headers`. Envoy enters a module's VM only for the
//! callbacks it exports, so this is what any wasm filter that routes by a
//! header costs at the least: one entry, one read and its buffer handover,
//! one write. The SDK floor makes seven entries for the same job.
//!
//! The code exists only in the wasm32 build: the host workspace build sees
//! an empty crate.

#[cfg(target_arch = "wasm32")]
mod filter {
    use std::alloc::{alloc, Layout};
    use std::ptr::{null_mut, NonNull};

    /// The request headers' map in the ABI.
    const REQUEST_HEADERS: u32 = 0;

    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_header_map_value(
            map: u32,
            key: *const u8,
            key_size: usize,
            value: *mut *mut u8,
            value_size: *mut usize,
        ) -> u32;
        fn proxy_replace_header_map_value(
            map: u32,
            key: *const u8,
            key_size: usize,
            value: *const u8,
            value_size: usize,
        ) -> u32;
    }

    extern "C" {
        fn __wasm_call_ctors();
    }

    #[no_mangle]
    pub extern "C" fn _initialize() {
        // SAFETY: the linker's constructor list, run once.
        unsafe { __wasm_call_ctors() }
    }

    #[no_mangle]
    pub extern "C" fn proxy_abi_version_0_2_1() {}

    #[no_mangle]
    pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
        if size == 0 {
            return NonNull::dangling().as_ptr();
        }
        match Layout::array::<u8>(size) {
            // SAFETY: the layout's size is not zero.
            Ok(layout) => unsafe { alloc(layout) },
            Err(_) => null_mut(),
        }
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_request_headers(_id: u32, _headers: u32, _end: u32) -> u32 {
        const KEY: &[u8] = b"x-user-id";
        const DECISION: &[u8] = b"x-turnout-cluster";
        let mut data: *mut u8 = null_mut();
        let mut size = 0usize;
        // SAFETY: valid slices in; the host writes `data` and `size` only on
        // success, with a buffer from `proxy_on_memory_allocate`.
        let last = unsafe {
            let status = proxy_get_header_map_value(
                REQUEST_HEADERS,
                KEY.as_ptr(),
                KEY.len(),
                &mut data,
                &mut size,
            );
            match status {
                0 if !data.is_null() => Vec::from_raw_parts(data, size, size).last().copied(),
                _ => None,
            }
        };
        let cluster: &[u8] = match last {
            Some(b) if b % 2 == 1 => b"fastapi",
            _ => b"legacy",
        };
        // SAFETY: valid slices for the call's duration.
        unsafe {
            proxy_replace_header_map_value(
                REQUEST_HEADERS,
                DECISION.as_ptr(),
                DECISION.len(),
                cluster.as_ptr(),
                cluster.len(),
            );
        }
        0
    }
}
