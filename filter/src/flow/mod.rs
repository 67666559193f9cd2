//! What a request goes through, written once for every host: find its
//! split, decide, write the decision header and clear the route cache,
//! ensure its trace context, answer it locally when a mode says so, echo
//! its trace id, and count it and its latency when it ends.
//!
//! A host (the proxy-wasm shell, the native dynamic-module shell) supplies
//! the request through [`Host`] and the plugin configuration's state
//! through [`Shared`], and calls [`Stream`]'s three methods from its
//! callbacks. The host only moves bytes: which header is written, when the
//! route cache is cleared and what is counted are decided here, so both
//! builds behave alike by construction.

use crate::decide::{self, Decision, RequestFacts, Verdict};
use crate::plan::{ActiveWeights, Plan};
use crate::shadow::{Opened, Reply, ShadowPlan, Side};

mod copy;

use crate::stats::{Class, StatsLayout};
use crate::trace;
pub use copy::Copying;

/// How a request header is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// The map has no such header: add it (spares the host a lookup).
    Add,
    /// Replace every value the header may have.
    Replace,
    /// Add it when absent, replace it when present: the host knows which
    /// costs less. A host that reads from a copy of the map looks there
    /// and adds when it can; one whose every read is a call into Envoy
    /// replaces at once, one call instead of a read and a write.
    Set,
}

/// What a host must do for one request. Reads come from
/// [`RequestFacts`]; every call here is one the flow needs, made only when
/// it is needed (each may cross into the host: the wasm build pays for
/// every one). Failures are the host's to swallow: none may panic.
pub trait Host: RequestFacts {
    /// Writes (`Some`) or removes (`None`) a request header.
    fn set_request_header(&self, name: &str, value: Option<&[u8]>, how: Write);
    /// Makes the host match the route again, so it sees the decision.
    fn clear_route_cache(&self);
    /// Writes a response header, replacing any value it has.
    fn set_response_header(&self, name: &str, value: &[u8]);
    /// Answers the request from the filter; the stream stops there.
    fn send_local_response(&self, status: u32, headers: &[(&str, &[u8])], body: &[u8]);
    /// A monotonic clock in nanoseconds (0 if it cannot say).
    fn monotonic_nanos(&self) -> u64;
    /// The final response code (`None`: no response was sent).
    fn response_code(&self) -> Option<u64>;
    /// Whether the host's response details say the stream was reset or
    /// cut rather than answered; asked only when the code leaves a doubt.
    fn response_details_mean_reset(&self) -> bool;
    /// Adds one to a counter of the configuration's [`StatsLayout`].
    fn count(&self, counter: usize);
    /// Records one value of a histogram of the [`StatsLayout`].
    fn record(&self, histogram: usize, value: u64);
    /// Every request header, pseudo-headers included (asked only for a
    /// request a shadow copies). A host that cannot copy gives none.
    fn request_headers(&self) -> Vec<(&[u8], &[u8])> {
        Vec::new()
    }
    /// The worker serving the request (asked only for a request a shadow
    /// copies: `max_in_flight` bounds each worker's copies). A host whose
    /// configuration state is per worker anyway says 0.
    fn worker(&self) -> u32 {
        0
    }
    /// Whether a request body follows the headers.
    fn request_has_body(&self) -> bool {
        false
    }
    /// Every response header, `:status` included (asked only for a write
    /// a shadow copies: its stable answer is the user's).
    fn response_headers(&self) -> Vec<(&[u8], &[u8])> {
        Vec::new()
    }
    /// Sends a request to `cluster` that outlives this stream, whose
    /// answer the host hands to [`Shared::shadow_answer`] as `side` of
    /// `pair`; `false` if it could not be sent (unknown cluster, no
    /// healthy host): then nothing will come back for it.
    fn dispatch(&self, _request: &Dispatch<'_>, _pair: u64, _side: Side) -> bool {
        false
    }
}

/// A request to send on the side (a shadow's copy, stable's second answer).
pub struct Dispatch<'a> {
    pub cluster: &'a str,
    pub headers: &'a [(&'a [u8], &'a [u8])],
    pub body: &'a [u8],
    pub timeout_ms: u32,
}

/// What one plugin configuration shares with every request it serves.
pub trait Shared {
    fn plan(&self) -> &Plan;
    fn layout(&self) -> &StatsLayout;
    /// Runs `f` on the state in effect now (schedule step, guard trips).
    fn with_active<R>(&self, f: impl FnOnce(&ActiveWeights) -> R) -> R;
    /// A uniform random number (anonymous draws, new trace ids).
    fn next_u64(&self) -> u64;
    /// A routed request's response, for the guard: `latency_ms` is `None`
    /// when the clock could not be read; `now_nanos` is the stream's end
    /// on the host's monotonic clock (0 if it could not be read).
    fn observe(&self, decision: &Decision, class: Class, latency_ms: Option<u64>, now_nanos: u64);
    /// Opens a pair of answers to compare for a request `split`'s shadow
    /// sampled (see `runtime::Runtime::shadow_open`).
    fn shadow_open(
        &self,
        split: usize,
        plan: &ShadowPlan,
        request: (&[u8], &[u8], &str),
        noise: bool,
        worker: u32,
    ) -> Opened;
    /// One answer of a pair.
    fn shadow_answer(&self, pair: u64, side: Side, reply: Reply);
}

/// What the host does with the stream after a request callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// The filter answered locally: the host stops the stream's iteration.
    Stop,
}

/// One request's state between its callbacks.
#[derive(Clone, Debug, Default)]
pub struct Stream {
    decision: Option<Decision>,
    /// When the filter saw the request (the host's monotonic clock, ns).
    start: u64,
    /// The request's W3C trace id, lowercase hex.
    trace_id: [u8; 32],
    /// The filter answered with a local reply (a mode).
    answered_locally: bool,
    /// The request is being copied by its split's shadow (boxed: most
    /// requests are not, and carry one pointer for it).
    copying: Option<Box<Copying>>,
}

impl Stream {
    /// The decision made for the request, once its headers were seen.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    pub fn on_request_headers(&mut self, shared: &impl Shared, host: &impl Host) -> Action {
        let plan = shared.plan();
        let verdict = shared.with_active(|active| {
            decide::evaluate(plan, active, host, || (shared.next_u64() % 10_000) as u16)
        });
        self.ensure_traceparent(shared, host, &verdict);
        if plan.has_shadows() {
            self.copying = copy::start(shared, host, &verdict, &self.trace_id);
        }
        match verdict {
            Verdict::Pass => {
                // A client never picks its cluster: drop an inbound decision
                // header, and match the route again if one was there.
                if host.header(&plan.decision_header).is_some() {
                    host.set_request_header(&plan.decision_header, None, Write::Replace);
                    host.clear_route_cache();
                }
                Action::Continue
            }
            Verdict::Route(decision) => {
                self.start = host.monotonic_nanos();
                let split = &plan.splits[decision.split];
                // Replaces an inbound one: a client never picks its cluster.
                host.set_request_header(
                    &plan.decision_header,
                    Some(split.clusters[decision.cluster].as_bytes()),
                    Write::Set,
                );
                host.clear_route_cache();
                let layout = shared.layout();
                host.count(layout.request(decision.split, decision.cluster, decision.reason));
                self.decision = Some(decision);
                Action::Continue
            }
            Verdict::Refuse(refusal) => {
                if let Some(counter) = shared.layout().rejected(refusal.split, refusal.mode) {
                    host.count(counter);
                }
                let content_type: &[u8] = if refusal.body.starts_with('{') {
                    b"application/json"
                } else {
                    b"text/plain; charset=utf-8"
                };
                self.answered_locally = true;
                host.send_local_response(
                    503,
                    &[
                        ("retry-after", refusal.retry_after.as_bytes()),
                        ("content-type", content_type),
                        (plan.trace.response_header.as_str(), &self.trace_id),
                    ],
                    refusal.body.as_bytes(),
                );
                Action::Stop
            }
        }
    }

    /// Whether the host should hand the request body's chunks in (a copy
    /// waits for them); when not, it reads nothing.
    pub fn wants_request_body(&self) -> bool {
        self.copying
            .as_ref()
            .is_some_and(|c| c.wants_request_body())
    }

    /// A chunk of the request body (`end`: the last).
    pub fn on_request_body(
        &mut self,
        shared: &impl Shared,
        host: &impl Host,
        chunk: &[u8],
        end: bool,
    ) {
        if let Some(copying) = &mut self.copying {
            copying.request_body(shared, host, chunk, end);
        }
    }

    /// Whether the host should hand the response in: a copied write's
    /// stable answer is the user's own.
    pub fn wants_response(&self) -> bool {
        self.copying.as_ref().is_some_and(|c| c.wants_response())
    }

    /// The response's headers, for a copied write: stable's answer.
    pub fn on_response_start(&mut self, shared: &impl Shared, host: &impl Host) {
        if let Some(copying) = &mut self.copying {
            copying.response_headers(shared, host);
        }
    }

    /// Echoes the trace id, and with `debug` the decision.
    pub fn on_response_headers(&self, shared: &impl Shared, host: &impl Host) {
        if self.answered_locally {
            return;
        }
        let plan = shared.plan();
        host.set_response_header(&plan.trace.response_header, &self.trace_id);
        if let (true, Some(d)) = (plan.debug, self.decision) {
            host.set_response_header("x-turnout-decision", debug_value(plan, &d).as_bytes());
        }
    }

    /// The stream has ended (with the response final): count the response
    /// by class, record the latency, and tell the guard.
    pub fn on_done(self, shared: &impl Shared, host: &impl Host) {
        if let Some(copying) = self.copying {
            copying.end(shared);
        }
        let Some(d) = self.decision else { return };
        let end = host.monotonic_nanos();
        let code = host.response_code();
        let class = match Class::of(code, false) {
            Class::ServerError | Class::Reset => {
                Class::of(code, host.response_details_mean_reset())
            }
            class => class,
        };
        let layout = shared.layout();
        host.count(layout.response(d.split, d.cluster, class));
        // A clock that could not be read (0) records no latency.
        let latency_ms =
            (self.start > 0 && end >= self.start).then(|| (end - self.start) / 1_000_000);
        if let Some(ms) = latency_ms {
            host.record(layout.latency(d.split, d.cluster), ms);
        }
        shared.observe(&d, class, latency_ms, end);
    }

    /// Keeps a valid inbound `traceparent`, or writes a new one (dropping
    /// a `tracestate` that no longer belongs to any trace), and adds
    /// turnout's `tracestate` member when configured.
    fn ensure_traceparent(
        &mut self,
        shared: &impl Shared,
        host: &impl Host,
        verdict: &Verdict<'_>,
    ) {
        let plan = shared.plan();
        let inbound = host.header("traceparent");
        let kept: Option<[u8; 32]> = inbound
            .and_then(trace::trace_id)
            .and_then(|id| id.try_into().ok());
        match kept {
            Some(id) => self.trace_id = id,
            None => {
                let traceparent = trace::new_traceparent(random_bytes(shared));
                self.trace_id
                    .copy_from_slice(trace::trace_id_of(&traceparent));
                // Absent: add (no lookup in the host's map); invalid: replace.
                let how = match inbound {
                    Some(_) => Write::Replace,
                    None => Write::Add,
                };
                host.set_request_header("traceparent", Some(&traceparent), how);
                if host.header("tracestate").is_some() {
                    host.set_request_header("tracestate", None, Write::Replace);
                }
            }
        }
        if let (true, Verdict::Route(d)) = (plan.trace.tracestate, verdict) {
            let cluster = &plan.splits[d.split].clusters[d.cluster];
            let state = if kept.is_some() {
                host.header("tracestate")
            } else {
                None
            };
            host.set_request_header(
                "tracestate",
                Some(&trace::with_turnout_member(state, cluster)),
                Write::Replace,
            );
        }
    }
}

/// The `x-turnout-decision` value of a decision (only with `debug`).
pub fn debug_value(plan: &Plan, d: &Decision) -> String {
    let split = &plan.splits[d.split];
    let mut value = format!(
        "split={}; cluster={}; reason={}",
        split.name,
        split.clusters[d.cluster],
        d.reason.as_str()
    );
    if let Some(bucket) = d.bucket {
        value.push_str("; bucket=");
        value.push_str(&bucket.0.to_string());
    }
    value
}

/// 24 random bytes: a new trace id and span id.
fn random_bytes(shared: &impl Shared) -> [u8; 24] {
    let mut out = [0u8; 24];
    for chunk in out.chunks_exact_mut(8) {
        chunk.copy_from_slice(&shared.next_u64().to_le_bytes());
    }
    out
}
