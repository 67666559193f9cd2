//! A proxy-wasm HTTP filter that traps on request, for the failure-policy
//! tests (integration/tests/hostile.rs). Turnout itself must never trap, so
//! this stands in for a filter that does.
//!
//! For every request it writes `x-turnout-cluster: fastapi` (so a route
//! with `cluster_header` sends it to `fastapi`) and `x-panicky-vm: <id>`,
//! an id drawn when the VM starts (so a test sees when Envoy replaced the
//! VM). A request with an `x-panic` header makes it panic in
//! `on_http_request_headers`: with `panic = "abort"` that is a wasm trap
//! (`unreachable`), a fatal error of the VM.
//!
//! Built only for wasm32-wasip1; on the host the crate is empty.

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod filter {
    use std::cell::Cell;
    use std::time::UNIX_EPOCH;

    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel};

    thread_local! {
        static VM_ID: Cell<u64> = const { Cell::new(0) };
    }

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
    }}

    struct Root;

    impl Context for Root {}

    impl RootContext for Root {
        fn on_vm_start(&mut self, _size: usize) -> bool {
            let nanos = proxy_wasm::hostcalls::get_current_time()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(1, |d| d.as_nanos() as u64);
            VM_ID.with(|id| id.set(nanos));
            true
        }

        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Request))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct Request;

    impl Context for Request {}

    impl HttpContext for Request {
        fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
            if self.get_http_request_header("x-panic").is_some() {
                panic!("turnout-test-panicky: asked to panic");
            }
            let id = VM_ID.with(Cell::get).to_string();
            self.set_http_request_header("x-turnout-cluster", Some("fastapi"));
            self.set_http_request_header("x-panicky-vm", Some(&id));
            Action::Continue
        }
    }
}
