//! One request's context: decides on its headers, echoes its trace id on
//! the response, and counts it when it ends.

use std::rc::Rc;

use super::abi::{MapType, CONTINUE, PAUSE};
use super::host::{self, Host, Write};
use super::runtime::Runtime;
use crate::decide::{self, Decision, Verdict};
use crate::stats::{self, Class};
use crate::trace;

pub struct Request {
    runtime: Rc<Runtime>,
    decision: Option<Decision>,
    /// When the filter saw the request (Envoy's monotonic clock, ns), for
    /// a routed request's latency.
    start: u64,
    /// The request's W3C trace id, lowercase hex.
    trace_id: [u8; 32],
    /// The filter answered with a local reply (a mode).
    answered_locally: bool,
}

impl Request {
    pub fn new(runtime: Rc<Runtime>) -> Request {
        Request {
            runtime,
            decision: None,
            start: 0,
            trace_id: [0; 32],
            answered_locally: false,
        }
    }

    pub fn on_request_headers(&mut self) -> u32 {
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
                CONTINUE
            }
            Verdict::Route(decision) => {
                self.start = host::monotonic_nanos();
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
                CONTINUE
            }
            Verdict::Refuse(refusal) => {
                let metrics = &runtime.metrics;
                if let Some(counter) = metrics.layout.rejected(refusal.split, refusal.mode) {
                    metrics.count(counter);
                }
                let content_type: &[u8] = if refusal.body.starts_with('{') {
                    b"application/json"
                } else {
                    b"text/plain; charset=utf-8"
                };
                self.answered_locally = true;
                host::send_local_response(
                    503,
                    &[
                        ("retry-after", refusal.retry_after.as_bytes()),
                        ("content-type", content_type),
                        (plan.trace.response_header.as_str(), &self.trace_id),
                    ],
                    refusal.body.as_bytes(),
                );
                PAUSE
            }
        }
    }

    pub fn on_response_headers(&self) {
        if self.answered_locally {
            return;
        }
        let runtime = &self.runtime;
        let plan = &runtime.plan;
        host::set_header(
            MapType::ResponseHeaders,
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
                MapType::ResponseHeaders,
                "x-turnout-decision",
                Some(&value),
                Write::Replace,
            );
        }
    }

    /// The stream has ended (Envoy destroys the filter after the access
    /// log, so the response code and its details are final): count the
    /// response by class and record the latency.
    pub fn on_done(self) {
        let Some(d) = self.decision else { return };
        let end = host::monotonic_nanos();
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
        // A clock that could not be read (0) records no latency.
        if self.start > 0 && end >= self.start {
            metrics.record(
                metrics.layout.latency(d.split, d.cluster),
                (end - self.start) / 1_000_000,
            );
        }
    }

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
    host::set_header(MapType::RequestHeaders, name, value, how);
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
