//! The core's [`Host`] for one event hook of a native stream: reads go to
//! Envoy's header map (in the request hook, a copy of it read in one go)
//! and attributes, lent in place; counters and histograms go straight to
//! Envoy's metrics (atomic, and a plain function call natively); writes
//! wait in [`Pending`] and are made when the flow has returned.
//!
//! Why writes wait: a header Envoy lends stays valid only until the next
//! write, and the core may hold what it read while it writes (the trait's
//! reads and writes both take `&self`). Made afterwards, in order, the
//! writes meet no borrowed header, which `abi::Stream` checks at compile
//! time. Reads see the request as it reached the hook, as in the wasm
//! build, whose reads come from a copy of the header map.
//!
//! A shadow's request is not sent from here: it is queued for Envoy's
//! main thread (`crate::shadow`), since it must outlive the stream.

use std::cell::{Cell, RefCell};
use std::ops::Range;
use std::sync::OnceLock;
use std::time::Instant;

use turnout::decide::RequestFacts;
use turnout::flow::{self, Dispatch, Write};
use turnout::shadow::Side;
use turnout::stats;

use crate::abi::{Attribute, EnvoyHeader, HeaderCopy, HeaderMap, Stream};
use crate::config::{FilterConfig, Metric};

/// The writes a hook's flow asked for, in order, with their bytes.
#[derive(Default)]
pub struct Pending {
    ops: Vec<Op>,
    bytes: Vec<u8>,
    /// The local reply's headers (name, value), when there is one.
    reply_headers: Vec<(Range<usize>, Range<usize>)>,
}

enum Op {
    Header {
        map: HeaderMap,
        name: Range<usize>,
        value: Option<Range<usize>>,
        add: bool,
    },
    ClearRouteCache,
    Reply {
        status: u32,
        body: Range<usize>,
    },
}

thread_local! {
    /// One `Pending` per worker, reused so that a request's writes
    /// allocate nothing once the worker has warmed up.
    static SPARE: Cell<Pending> = const { Cell::new(Pending::EMPTY) };
    /// One buffer per worker for the copy of a header map.
    static HEADERS: Cell<Vec<EnvoyHeader>> = const { Cell::new(Vec::new()) };
}

impl Pending {
    const EMPTY: Pending = Pending {
        ops: Vec::new(),
        bytes: Vec::new(),
        reply_headers: Vec::new(),
    };

    /// The worker's spare (empty) buffers.
    pub fn take() -> Pending {
        SPARE.with(Cell::take)
    }

    /// Makes the writes, in order, and gives the buffers back to the worker.
    /// Returns whether a local reply was sent.
    pub fn apply(mut self, envoy: &mut Stream<'_>) -> bool {
        let mut replied = false;
        let bytes = &self.bytes;
        for op in &self.ops {
            match op {
                Op::Header {
                    map,
                    name,
                    value,
                    add,
                } => {
                    let value = value.as_ref().map(|v| &bytes[v.clone()]);
                    envoy.set_header(*map, &bytes[name.clone()], value, *add);
                }
                Op::ClearRouteCache => envoy.clear_route_cache(),
                Op::Reply { status, body } => {
                    let headers: Vec<(&[u8], &[u8])> = self
                        .reply_headers
                        .iter()
                        .map(|(n, v)| (&bytes[n.clone()], &bytes[v.clone()]))
                        .collect();
                    replied = true;
                    envoy.send_response(*status, &headers, &bytes[body.clone()]);
                }
            }
        }
        self.ops.clear();
        self.bytes.clear();
        self.reply_headers.clear();
        SPARE.with(|spare| spare.set(self));
        replied
    }

    fn keep(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        start..self.bytes.len()
    }
}

/// One hook's view of its stream, for the core's flow.
pub struct Host<'a, 'h> {
    envoy: &'a Stream<'h>,
    config: &'a FilterConfig,
    /// The request's headers, read in one go (the request-headers hook):
    /// every header the flow asks for is looked up here.
    request: Option<HeaderCopy<'a>>,
    pending: RefCell<Pending>,
    /// The request's headers ended its stream (it has no body).
    end_of_stream: bool,
}

impl<'a, 'h> Host<'a, 'h> {
    pub fn new(envoy: &'a Stream<'h>, config: &'a FilterConfig, pending: Pending) -> Self {
        Host {
            envoy,
            config,
            request: None,
            pending: RefCell::new(pending),
            end_of_stream: true,
        }
    }

    /// In the request-headers hook: whether those headers ended the
    /// stream (no body follows).
    pub fn with_end_of_stream(mut self, end_of_stream: bool) -> Self {
        self.end_of_stream = end_of_stream;
        self
    }

    /// Reads the request's headers once (two calls: their number, then
    /// all of them), for every read of this hook's flow: the key, the
    /// force header, `traceparent`, `tracestate`, the decision header
    /// (four to six reads, each a call that looks the name up in Envoy).
    pub fn with_request_headers(mut self) -> Self {
        let buffer = HEADERS.with(Cell::take);
        self.request = Some(self.envoy.header_copy(HeaderMap::Request, buffer));
        self
    }

    /// The writes the flow asked for, to be applied.
    pub fn into_pending(self) -> Pending {
        if let Some(copy) = self.request {
            HEADERS.with(|spare| spare.set(copy.into_buffer()));
        }
        self.pending.into_inner()
    }

    /// A request header, from the copy when there is a whole one.
    fn request_header(&self, name: &str) -> Option<&[u8]> {
        match &self.request {
            Some(copy) if copy.is_complete() => copy.get(name.as_bytes()),
            _ => self.envoy.header(HeaderMap::Request, name),
        }
    }

    fn header_op(&self, map: HeaderMap, name: &str, value: Option<&[u8]>, add: bool) {
        let mut pending = self.pending.borrow_mut();
        let name = pending.keep(name.as_bytes());
        let value = value.map(|v| pending.keep(v));
        pending.ops.push(Op::Header {
            map,
            name,
            value,
            add,
        });
    }
}

impl RequestFacts for Host<'_, '_> {
    fn route_name(&self) -> Option<&[u8]> {
        self.envoy.attribute_string(Attribute::XdsRouteName)
    }
    fn path(&self) -> Option<&[u8]> {
        self.request_header(":path")
    }
    fn method(&self) -> Option<&[u8]> {
        self.request_header(":method")
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.request_header(name)
    }
}

impl flow::Host for Host<'_, '_> {
    fn set_request_header(&self, name: &str, value: Option<&[u8]>, how: Write) {
        // `Set` replaces: Envoy's set looks the header up itself, one call
        // where a read first would make two.
        self.header_op(HeaderMap::Request, name, value, how == Write::Add);
    }

    fn clear_route_cache(&self) {
        self.pending.borrow_mut().ops.push(Op::ClearRouteCache);
    }

    /// Added when the response has no such header, as found in a copy of
    /// the response's headers (two calls); replaced when it has. Envoy's
    /// set looks the name up in the response map, which makes Envoy index
    /// the whole map first: 2.9 k instructions, against 1.2 k for the
    /// copy and an add (BENCHMARKS.md section 11).
    fn set_response_header(&self, name: &str, value: &[u8]) {
        let copy = self
            .envoy
            .header_copy(HeaderMap::Response, HEADERS.with(Cell::take));
        // An incomplete copy proves nothing absent: replace (set).
        let absent = copy.is_complete() && copy.get(name.as_bytes()).is_none();
        HEADERS.with(|spare| spare.set(copy.into_buffer()));
        self.header_op(HeaderMap::Response, name, Some(value), absent);
    }

    fn send_local_response(&self, status: u32, headers: &[(&str, &[u8])], body: &[u8]) {
        let mut pending = self.pending.borrow_mut();
        for (name, value) in headers {
            let name = pending.keep(name.as_bytes());
            let value = pending.keep(value);
            pending.reply_headers.push((name, value));
        }
        let body = pending.keep(body);
        pending.ops.push(Op::Reply { status, body });
    }

    fn monotonic_nanos(&self) -> u64 {
        monotonic_nanos()
    }

    fn response_code(&self) -> Option<u64> {
        self.envoy.attribute_int(Attribute::ResponseCode)
    }

    fn response_details_mean_reset(&self) -> bool {
        self.envoy
            .attribute_string(Attribute::ResponseCodeDetails)
            .is_some_and(stats::details_mean_reset)
    }

    fn count(&self, counter: usize) {
        if let Some(Metric::Named(id)) = self.config.counter(counter) {
            self.envoy.increment(id);
        }
    }

    fn record(&self, histogram: usize, value: u64) {
        if let Some(Metric::Named(id)) = self.config.histogram(histogram) {
            self.envoy.record(id, value);
        }
    }

    /// Asked only for a request a shadow copies: from the copy.
    fn request_headers(&self) -> Vec<(&[u8], &[u8])> {
        match &self.request {
            Some(copy) => copy.iter().collect(),
            None => self.envoy.headers(HeaderMap::Request),
        }
    }

    fn request_has_body(&self) -> bool {
        !self.end_of_stream
    }

    /// Asked only for a request a shadow copies: one call into Envoy. The
    /// configuration's book is shared by every worker; `max_in_flight`
    /// bounds each worker's copies, as in the wasm build.
    fn worker(&self) -> u32 {
        self.envoy.worker_index()
    }

    /// Asked only for a write a shadow copies: two calls into Envoy.
    fn response_headers(&self) -> Vec<(&[u8], &[u8])> {
        self.envoy.headers(HeaderMap::Response)
    }

    /// Queued for the main thread, which sends it (`crate::shadow`).
    fn dispatch(&self, request: &Dispatch<'_>, pair: u64, side: Side) -> bool {
        self.config.host().copies.queue(request, pair, side)
    }
}

/// Nanoseconds on a monotonic clock, from the module's first reading
/// (never 0, which the flow reads as "no clock").
pub fn monotonic_nanos() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}
