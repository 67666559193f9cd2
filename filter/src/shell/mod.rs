//! The proxy-wasm layer: moves bytes between Envoy and the core, and decides
//! nothing itself.
//!
//! The module exports only the callbacks turnout uses: Envoy does not enter
//! the VM for one a module does not export (`abi` says why the SDK is not
//! used). A request costs four entries: its context's creation, its request
//! and response headers, and its end (`proxy_on_done`), where its response
//! is counted and its latency taken, and its state freed.
//!
//! Each callback takes its context out of the table, works on it, and puts
//! it back, so nothing is borrowed while Envoy runs a host call, and a
//! callback for a context the table does not know lets the stream go on.

mod abi;
mod host;
mod metrics;
mod request;
mod runtime;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use abi::CONTINUE;
use request::Request;
use runtime::Config;

use crate::flow::Shared as _;
use crate::shadow::{Reply, Side};

/// Every context of this VM by id: the root contexts (one per plugin
/// configuration sharing the VM, usually one) and the live requests.
#[derive(Default)]
struct Contexts {
    roots: BTreeMap<u32, Root>,
    requests: BTreeMap<u32, Request>,
    /// The shadows' requests in flight, by token: the configuration that
    /// sent each (it may have been replaced since), its pair and side, and
    /// when it was sent.
    calls: BTreeMap<u32, Call>,
}

struct Call {
    config: Rc<Config>,
    pair: u64,
    side: Side,
    sent_ns: u64,
}

/// Remembers a request sent for a shadow until its answer comes.
fn await_call(token: u32, config: Rc<Config>, pair: u64, side: Side, sent_ns: u64) {
    let call = Call {
        config,
        pair,
        side,
        sent_ns,
    };
    CONTEXTS.with(|c| c.borrow_mut().calls.insert(token, call));
}

thread_local! {
    static CONTEXTS: RefCell<Contexts> = RefCell::default();
}

fn take_root(id: u32) -> Option<Root> {
    CONTEXTS.with(|c| c.borrow_mut().roots.remove(&id))
}

fn put_root(id: u32, root: Root) {
    CONTEXTS.with(|c| c.borrow_mut().roots.insert(id, root));
}

fn take_request(id: u32) -> Option<Request> {
    CONTEXTS.with(|c| c.borrow_mut().requests.remove(&id))
}

fn put_request(id: u32, request: Request) {
    CONTEXTS.with(|c| c.borrow_mut().requests.insert(id, request));
}

/// A plugin configuration's context: holds the configuration every
/// request of it shares, and replaces it when Envoy pushes a new one.
struct Root {
    config: Rc<Config>,
}

impl Default for Root {
    fn default() -> Self {
        Root {
            config: Rc::new(Config::empty()),
        }
    }
}

impl Root {
    fn on_configure(&mut self) -> bool {
        let Some(config) = Config::configure(&host::plugin_configuration()) else {
            return false;
        };
        // The old configuration publishes its last counts when the last
        // request holding it ends; its guard counts go to the shared
        // record now, where a split left unchanged finds them.
        self.config.runtime.merge_guard();
        self.config = Rc::new(config);
        // Every second: publish the counters (a top-level mode counts
        // rejections even with no split) and follow schedules; twice a
        // second with a guard, so every worker follows a trip within half
        // a second of its recording.
        let period = if self.config.runtime.guarded() {
            500
        } else {
            1000
        };
        host::set_tick_period(period);
        true
    }

    fn on_tick(&self) {
        self.config.tick();
    }

    /// The plugin or the VM is stopping (a push replaces the plugin, and
    /// with it this root): publish what is counted. The root is dropped
    /// after; requests still running keep its configuration. Envoy cancels
    /// the root's calls without an answer when it goes, so the shadow's
    /// requests it still waits for are answered here as none: their pairs
    /// are counted, not lost.
    fn on_done(self) {
        let abandoned: Vec<Call> = CONTEXTS.with(|c| {
            let mut c = c.borrow_mut();
            let tokens: Vec<u32> = c
                .calls
                .iter()
                .filter(|(_, call)| Rc::ptr_eq(&call.config, &self.config))
                .map(|(token, _)| *token)
                .collect();
            tokens
                .into_iter()
                .filter_map(|token| c.calls.remove(&token))
                .collect()
        });
        for call in abandoned {
            call.config
                .runtime
                .shadow_answer(call.pair, call.side, Reply::none());
        }
        self.config.counts.publish(&self.config.runtime);
        self.config.runtime.merge_guard();
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(id: u32, parent: u32) {
    if parent == 0 {
        put_root(id, Root::default());
        return;
    }
    let config = CONTEXTS.with(|c| {
        c.borrow()
            .roots
            .get(&parent)
            .map(|root| Rc::clone(&root.config))
    });
    if let Some(config) = config {
        put_request(id, Request::new(config));
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(id: u32, _size: u32) -> u32 {
    let mut root = take_root(id).unwrap_or_default();
    let applied = root.on_configure();
    put_root(id, root);
    u32::from(applied)
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(id: u32) {
    if let Some(root) = take_root(id) {
        root.on_tick();
        put_root(id, root);
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(id: u32, _headers: u32, end_of_stream: u32) -> u32 {
    let Some(mut request) = take_request(id) else {
        return CONTINUE;
    };
    let action = request.on_request_headers(end_of_stream != 0);
    put_request(id, request);
    action
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(id: u32, _headers: u32, _end_of_stream: u32) -> u32 {
    if let Some(mut request) = take_request(id) {
        request.on_response_headers();
        put_request(id, request);
    }
    CONTINUE
}

/// A chunk of a request's body. Exported for the shadows' copies, which
/// carry the body: Envoy enters the VM for every chunk of every request
/// that has a body (a request without one never comes here), and the
/// chunk is read only when a copy waits for it.
#[no_mangle]
pub extern "C" fn proxy_on_request_body(id: u32, size: u32, end_of_stream: u32) -> u32 {
    // Looked at in place first: a request no copy waits for (nearly every
    // one) leaves the table as it is.
    let wanted = CONTEXTS.with(|c| {
        c.borrow()
            .requests
            .get(&id)
            .is_some_and(Request::wants_request_body)
    });
    if !wanted {
        return CONTINUE;
    }
    if let Some(mut request) = take_request(id) {
        request.on_request_body(size as usize, end_of_stream != 0);
        put_request(id, request);
    }
    CONTINUE
}

/// The answer to a shadow's request (to the root context that sent it,
/// after the stream that asked for it has ended, if need be): compared
/// once its pair is complete. A failed call has no headers.
#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    _root: u32,
    token: u32,
    headers: u32,
    body_size: u32,
    _trailers: u32,
) {
    let Some(call) = CONTEXTS.with(|c| c.borrow_mut().calls.remove(&token)) else {
        return;
    };
    let now = host::monotonic_nanos();
    let latency_ms =
        (call.sent_ns > 0 && now >= call.sent_ns).then(|| (now - call.sent_ns) / 1_000_000);
    let reply = if headers == 0 {
        Reply::none()
    } else {
        host::http_call_response(body_size as usize, latency_ms)
    };
    call.config
        .runtime
        .shadow_answer(call.pair, call.side, reply);
}

/// A request's end (Envoy calls it after the access log, with the
/// response final), or the VM's stop for a root context.
#[no_mangle]
pub extern "C" fn proxy_on_done(id: u32) -> u32 {
    if let Some(request) = take_request(id) {
        request.on_done();
    } else if let Some(root) = take_root(id) {
        root.on_done();
    }
    1
}
