//! One HTTP stream's filter: glue between Envoy's event hooks and the
//! core's [`Stream`], which decides, writes and counts.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use turnout::flow::{Action, Stream};

use crate::abi::{self, LogLevel, CONTINUE, STOP_ITERATION};
use crate::config::FilterConfig;
use crate::host::{Host, Pending};

pub struct Filter {
    config: Arc<FilterConfig>,
    /// Borrowed only while the flow runs, never while Envoy is called with
    /// writes: a local reply runs this filter's response hook re-entrantly.
    stream: RefCell<Stream>,
    /// The filter answered the request itself (a mode, or failing closed).
    replied: Cell<bool>,
}

impl Filter {
    pub fn new(config: Arc<FilterConfig>) -> Filter {
        Filter {
            config,
            stream: RefCell::default(),
            replied: Cell::new(false),
        }
    }

    /// `end_of_stream`: the headers ended the stream (no body follows).
    pub fn on_request_headers(&self, envoy: &mut abi::Stream<'_>, end_of_stream: bool) -> u32 {
        if cfg!(feature = "floor") {
            return floor(envoy);
        }
        #[cfg(feature = "test-panic")]
        test_panic(envoy, "request_headers");
        let config = &*self.config;
        let host = Host::new(envoy, config, Pending::take())
            .with_end_of_stream(end_of_stream)
            .with_request_headers();
        let action = self.stream.borrow_mut().on_request_headers(config, &host);
        let pending = host.into_pending();
        // Set first: the reply runs the response hook before it returns.
        self.replied.set(action == Action::Stop);
        pending.apply(envoy);
        match action {
            Action::Continue => CONTINUE,
            Action::Stop => STOP_ITERATION,
        }
    }

    /// A chunk of the request body: read only when a copy waits for it.
    pub fn on_request_body(&self, envoy: &mut abi::Stream<'_>, end_of_stream: bool) {
        if cfg!(feature = "floor") || !self.stream.borrow().wants_request_body() {
            return;
        }
        let config = &*self.config;
        let chunk = envoy.body(abi::Body::ReceivedRequest);
        let host = Host::new(envoy, config, Pending::take());
        self.stream
            .borrow_mut()
            .on_request_body(config, &host, &chunk, end_of_stream);
        host.into_pending().apply(envoy);
    }

    pub fn on_response_headers(&self, envoy: &mut abi::Stream<'_>) {
        if cfg!(feature = "floor") {
            return;
        }
        #[cfg(feature = "test-panic")]
        test_panic(envoy, "response_headers");
        let config = &*self.config;
        let host = Host::new(envoy, config, Pending::take());
        self.stream.borrow().on_response_headers(config, &host);
        if self.stream.borrow().wants_response() {
            self.stream.borrow_mut().on_response_start(config, &host);
        }
        host.into_pending().apply(envoy);
    }

    /// The stream has ended with its response final: count it.
    pub fn on_stream_complete(&self, envoy: &mut abi::Stream<'_>) {
        if cfg!(feature = "floor") {
            return;
        }
        #[cfg(feature = "test-panic")]
        test_panic(envoy, "stream_complete");
        let config = &*self.config;
        let host = Host::new(envoy, config, Pending::take());
        let stream = std::mem::take(&mut *self.stream.borrow_mut());
        stream.on_done(config, &host);
        host.into_pending().apply(envoy);
    }

    /// A hook panicked while deciding the request: answer it with a 503
    /// (unless a reply is already on its way), so that a request turnout
    /// could not decide never reaches a cluster a client may have named.
    pub fn fail(&self, envoy: &mut abi::Stream<'_>) {
        abi::log(
            LogLevel::Error,
            "turnout: request refused with 503: the filter failed",
        );
        *self.stream.borrow_mut() = Stream::default();
        if !self.replied.replace(true) {
            envoy.send_response(503, &[], b"turnout: the filter failed\n");
        }
    }
}

/// Test builds only: panics in `hook` when the request names it in
/// `x-turnout-test-panic`.
#[cfg(feature = "test-panic")]
fn test_panic(envoy: &abi::Stream<'_>, hook: &str) {
    if envoy.header(abi::HeaderMap::Request, "x-turnout-test-panic") == Some(hook.as_bytes()) {
        panic!("test panic in {hook}");
    }
}

/// Test builds only: panics on a configuration that asks for it.
#[cfg(feature = "test-panic")]
pub fn test_panic_in_config(text: &[u8]) {
    if text.windows(17).any(|w| w == b"native_test_panic") {
        panic!("test panic in config_new");
    }
}

/// Benchmark builds only (`--features floor`): the cheapest dynamic module
/// that routes by a header, as `benches/floor` is for wasm. It reads
/// `x-user-id`, adds `x-turnout-cluster` (`fastapi` when the key's last
/// byte is odd, else `legacy`) and clears the route cache: what any native
/// filter that routes by a header must do. Beside turnout-native in one
/// Envoy it tells Envoy's share of the native cost from turnout's.
fn floor(envoy: &mut abi::Stream<'_>) -> u32 {
    let odd = envoy
        .header(abi::HeaderMap::Request, "x-user-id")
        .and_then(|key| key.last())
        .is_some_and(|b| b % 2 == 1);
    let cluster: &[u8] = if odd { b"fastapi" } else { b"legacy" };
    envoy.set_header(
        abi::HeaderMap::Request,
        b"x-turnout-cluster",
        Some(cluster),
        true,
    );
    envoy.clear_route_cache();
    CONTINUE
}
