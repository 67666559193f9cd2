//! The proxy-wasm layer: moves bytes between Envoy and the core, and decides
//! nothing itself.
//!
//! Host calls go through `proxy_wasm::hostcalls` and their errors are read
//! as "absent": the SDK's trait helpers unwrap, and a panic here would kill
//! the worker's VM and with it every request it serves.

mod host;
mod metrics;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

use crate::config;
use crate::decide::{self, Decision, Verdict};
use crate::plan::{ActiveWeights, Plan};
use crate::stats::{self, Class, StatsLayout};
use crate::trace;

use host::{Host, Write};
use metrics::Metrics;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// What the root context shares with every request of one configuration.
struct Runtime {
    plan: Plan,
    active: RefCell<ActiveWeights>,
    metrics: Metrics,
    /// A splitmix64 generator for anonymous draws and trace ids, seeded
    /// once from the host's entropy: one hostcall per configuration, not
    /// per request.
    rng: Cell<u64>,
    /// Where the debug header is written, kept between requests so that
    /// writing it allocates nothing once it has grown.
    scratch: RefCell<Vec<u8>>,
}

impl Runtime {
    fn new(plan: Plan, now: i64) -> Runtime {
        let active = RefCell::new(plan.weights_at(now));
        let metrics = Metrics::define(StatsLayout::of(&plan));
        let seed = getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15);
        Runtime {
            plan,
            active,
            metrics,
            rng: Cell::new(seed),
            scratch: RefCell::new(Vec::new()),
        }
    }

    fn next_u64(&self) -> u64 {
        let state = self.rng.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.rng.set(state);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn random_bytes(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        for chunk in out.chunks_exact_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        out
    }
}

struct Root {
    runtime: Rc<Runtime>,
}

impl Default for Root {
    fn default() -> Self {
        let empty = config::parse(b"").unwrap_or_default();
        Root {
            runtime: Rc::new(Runtime::new(empty, 0)),
        }
    }
}

impl Context for Root {
    fn on_done(&mut self) -> bool {
        self.runtime.metrics.publish();
        true
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let text = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        // Accept or refuse on the text alone; the clock only sets which
        // schedule step is in effect, never whether the config is valid.
        match config::parse(&text) {
            Ok(plan) => {
                let splits = plan.splits.len();
                // The old runtime publishes its last counts when the last
                // request holding it ends.
                self.runtime = Rc::new(Runtime::new(plan, unix_now()));
                // Every second: publish the counters (a top-level mode
                // counts rejections even with no split) and follow schedules.
                let _ = hostcalls::set_tick_period(Duration::from_secs(1));
                log::info!("configuration applied ({splits} splits)");
                true
            }
            Err(error) => {
                log::error!("configuration refused: {error}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let runtime = &self.runtime;
        runtime.metrics.publish();
        if runtime.plan.has_schedules() {
            let now = runtime.plan.weights_at(unix_now());
            if *runtime.active.borrow() != now {
                *runtime.active.borrow_mut() = now;
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request {
            runtime: Rc::clone(&self.runtime),
            decision: None,
            trace_id: [0; 32],
            answered_locally: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

fn unix_now() -> i64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

struct Request {
    runtime: Rc<Runtime>,
    decision: Option<Decision>,
    /// The request's W3C trace id, lowercase hex.
    trace_id: [u8; 32],
    /// The filter answered with a local reply (a mode).
    answered_locally: bool,
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let runtime = Rc::clone(&self.runtime);
        let plan = &runtime.plan;
        let host = Host::default();
        let verdict = {
            let active = runtime.active.borrow();
            decide::evaluate(plan, &active, &host, || {
                (runtime.next_u64() % 10_000) as u16
            })
        };
        self.ensure_traceparent(&host, &verdict);
        match verdict {
            Verdict::Pass => {
                // A client never picks its cluster: drop an inbound decision
                // header, and match the route again if one was there.
                if host.get(&plan.decision_header).is_some() {
                    set_request_header(&plan.decision_header, None, Write::Replace);
                    host::clear_route_cache();
                }
                Action::Continue
            }
            Verdict::Route(decision) => {
                let split = &plan.splits[decision.split];
                // Replace only an inbound one (a client never picks its
                // cluster); else add, which spares Envoy a lookup.
                let how = match host.get(&plan.decision_header) {
                    Some(_) => Write::Replace,
                    None => Write::Add,
                };
                set_request_header(
                    &plan.decision_header,
                    Some(split.clusters[decision.cluster].as_bytes()),
                    how,
                );
                host::clear_route_cache();
                let metrics = &runtime.metrics;
                metrics.count(metrics.layout.request(
                    decision.split,
                    decision.cluster,
                    decision.reason,
                ));
                self.decision = Some(decision);
                Action::Continue
            }
            Verdict::Refuse(refusal) => {
                let metrics = &runtime.metrics;
                if let Some(counter) = metrics.layout.rejected(refusal.split, refusal.mode) {
                    metrics.count(counter);
                }
                let content_type = if refusal.body.starts_with('{') {
                    "application/json"
                } else {
                    "text/plain; charset=utf-8"
                };
                let trace_id = std::str::from_utf8(&self.trace_id).unwrap_or_default();
                let headers = vec![
                    ("retry-after", refusal.retry_after),
                    ("content-type", content_type),
                    (plan.trace.response_header.as_str(), trace_id),
                ];
                self.answered_locally = true;
                let _ = hostcalls::send_http_response(503, headers, Some(refusal.body.as_bytes()));
                Action::Pause
            }
        }
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if self.answered_locally {
            return Action::Continue;
        }
        let runtime = &self.runtime;
        let plan = &runtime.plan;
        host::set_header(
            MapType::HttpResponseHeaders,
            &plan.trace.response_header,
            Some(&self.trace_id),
            Write::Replace,
        );
        if let (true, Some(d)) = (plan.debug, self.decision) {
            let split = &plan.splits[d.split];
            let mut value = runtime.scratch.borrow_mut();
            value.clear();
            for part in [
                "split=",
                &split.name,
                "; cluster=",
                &split.clusters[d.cluster],
                "; reason=",
                d.reason.as_str(),
            ] {
                value.extend_from_slice(part.as_bytes());
            }
            if let Some(bucket) = d.bucket {
                value.extend_from_slice(b"; bucket=");
                push_decimal(&mut value, bucket.0);
            }
            host::set_header(
                MapType::HttpResponseHeaders,
                "x-turnout-decision",
                Some(&value),
                Write::Replace,
            );
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let Some(d) = self.decision else { return };
        let code = host::property_u64(host::RESPONSE_CODE);
        let class = match Class::of(code, false) {
            Class::ServerError | Class::Reset => {
                let details = host::property(host::RESPONSE_CODE_DETAILS);
                Class::of(code, details.is_some_and(|d| stats::details_mean_reset(&d)))
            }
            class => class,
        };
        let metrics = &self.runtime.metrics;
        metrics.count(metrics.layout.response(d.split, d.cluster, class));
        if let Some(nanos) = host::property_u64(host::REQUEST_DURATION) {
            metrics.record(
                metrics.layout.latency(d.split, d.cluster),
                nanos / 1_000_000,
            );
        }
    }
}

impl Request {
    /// Keeps a valid inbound `traceparent`, or writes a new one (dropping
    /// a `tracestate` that no longer belongs to any trace), and adds
    /// turnout's `tracestate` member when configured.
    fn ensure_traceparent(&mut self, host: &Host, verdict: &Verdict<'_>) {
        let plan = &self.runtime.plan;
        let kept: Option<[u8; 32]> = host
            .get("traceparent")
            .and_then(trace::trace_id)
            .and_then(|id| id.try_into().ok());
        match kept {
            Some(id) => self.trace_id = id,
            None => {
                let traceparent = trace::new_traceparent(self.runtime.random_bytes());
                self.trace_id
                    .copy_from_slice(trace::trace_id_of(&traceparent));
                // Absent: add (no lookup in Envoy's map); invalid: replace.
                let how = match host.get("traceparent") {
                    Some(_) => Write::Replace,
                    None => Write::Add,
                };
                set_request_header("traceparent", Some(&traceparent), how);
                if host.get("tracestate").is_some() {
                    set_request_header("tracestate", None, Write::Replace);
                }
            }
        }
        if let (true, Verdict::Route(d)) = (plan.trace.tracestate, verdict) {
            let cluster = &plan.splits[d.split].clusters[d.cluster];
            let inbound = if kept.is_some() {
                host.get("tracestate")
            } else {
                None
            };
            set_request_header(
                "tracestate",
                Some(&trace::with_turnout_member(inbound, cluster)),
                Write::Replace,
            );
        }
    }
}

fn set_request_header(name: &str, value: Option<&[u8]>, how: Write) {
    host::set_header(MapType::HttpRequestHeaders, name, value, how);
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, n: u16) {
    let mut digits = [0u8; 5];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}
