//! The proxy-wasm layer: moves bytes between Envoy and the core, and decides
//! nothing itself.
//!
//! Host calls go through `proxy_wasm::hostcalls` and their errors are read
//! as "absent": the SDK's trait helpers unwrap, and a panic here would kill
//! the worker's VM and with it every request it serves.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};

use crate::config;
use crate::decide::{self, Decision, RequestFacts, Verdict};
use crate::plan::{ActiveWeights, Plan};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// What the root context shares with every request of one configuration.
struct Runtime {
    plan: Plan,
    active: RefCell<ActiveWeights>,
    /// State of a splitmix64 generator for anonymous random draws, seeded
    /// once from the host's entropy: one hostcall per VM, not per request.
    rng: Cell<u64>,
}

impl Runtime {
    fn new(plan: Plan, now: i64) -> Runtime {
        let active = RefCell::new(plan.weights_at(now));
        let seed = getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15);
        Runtime {
            plan,
            active,
            rng: Cell::new(seed),
        }
    }

    fn draw(&self) -> u16 {
        let state = self.rng.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.rng.set(state);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % u64::from(crate::bucket::BUCKETS)) as u16
    }
}

struct Root {
    runtime: Rc<Runtime>,
}

impl Default for Root {
    fn default() -> Self {
        Root {
            runtime: Rc::new(Runtime::new(Plan::default(), 0)),
        }
    }
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let text = hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX,
        )
        .ok()
        .flatten()
        .unwrap_or_default();
        // Accept or refuse on the text alone; the clock only sets which
        // schedule step is in effect, never whether the config is valid.
        match config::parse(&text) {
            Ok(plan) => {
                let schedules = plan.has_schedules();
                self.runtime = Rc::new(Runtime::new(plan, unix_now()));
                let tick = if schedules {
                    Duration::from_secs(1)
                } else {
                    Duration::ZERO
                };
                let _ = hostcalls::set_tick_period(tick);
                log::info!(
                    "configuration applied ({} splits)",
                    self.runtime.plan.splits.len()
                );
                true
            }
            Err(error) => {
                log::error!("configuration refused: {error}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let now = self.runtime.plan.weights_at(unix_now());
        if *self.runtime.active.borrow() != now {
            *self.runtime.active.borrow_mut() = now;
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request {
            runtime: Rc::clone(&self.runtime),
            decision: None,
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
        .map_or(0, |d| d.as_secs() as i64)
}

struct Request {
    runtime: Rc<Runtime>,
    decision: Option<Decision>,
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let runtime = Rc::clone(&self.runtime);
        let plan = &runtime.plan;
        let verdict = {
            let active = runtime.active.borrow();
            decide::evaluate(plan, &active, &mut Host, || runtime.draw())
        };
        match verdict {
            Verdict::Pass => {
                // A client never picks its cluster: drop an inbound decision
                // header, and re-match the route if one was there.
                if request_header(&plan.decision_header).is_some() {
                    let _ = hostcalls::set_map_value_bytes(
                        MapType::HttpRequestHeaders,
                        &plan.decision_header,
                        None,
                    );
                    clear_route_cache();
                }
                Action::Continue
            }
            Verdict::Route(decision) => {
                let cluster = plan.splits[decision.split].clusters[decision.cluster].as_bytes();
                let _ = hostcalls::set_map_value_bytes(
                    MapType::HttpRequestHeaders,
                    &plan.decision_header,
                    Some(cluster),
                );
                clear_route_cache();
                self.decision = Some(decision);
                Action::Continue
            }
            Verdict::Refuse(refusal) => {
                let content_type = if refusal.body.starts_with('{') {
                    "application/json"
                } else {
                    "text/plain; charset=utf-8"
                };
                let headers = vec![
                    ("retry-after", refusal.retry_after),
                    ("content-type", content_type),
                ];
                let _ = hostcalls::send_http_response(503, headers, Some(refusal.body.as_bytes()));
                Action::Pause
            }
        }
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if let (true, Some(d)) = (self.runtime.plan.debug, self.decision) {
            let split = &self.runtime.plan.splits[d.split];
            let mut value = format!(
                "split={}; cluster={}; reason={}",
                split.name,
                split.clusters[d.cluster],
                d.reason.as_str()
            );
            if let Some(bucket) = d.bucket {
                value.push_str(&format!("; bucket={}", bucket.0));
            }
            let _ = hostcalls::add_map_value(
                MapType::HttpResponseHeaders,
                "x-turnout-decision",
                &value,
            );
        }
        Action::Continue
    }
}

/// Envoy answers the core's questions about the current request.
struct Host;

impl RequestFacts for Host {
    fn route_name(&mut self) -> Option<Vec<u8>> {
        hostcalls::get_property(vec!["xds", "route_name"])
            .ok()
            .flatten()
    }
    fn path(&mut self) -> Option<Vec<u8>> {
        request_header(":path")
    }
    fn method(&mut self) -> Option<Vec<u8>> {
        request_header(":method")
    }
    fn header(&mut self, name: &str) -> Option<Vec<u8>> {
        request_header(name)
    }
}

fn request_header(name: &str) -> Option<Vec<u8>> {
    hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name)
        .ok()
        .flatten()
}

/// Makes Envoy match the route again, so `cluster_header` sees the decision.
/// Envoy 1.40 still clears the cache when a wasm filter writes a header;
/// later versions will not, so the call is made explicitly.
fn clear_route_cache() {
    let _ = hostcalls::call_foreign_function("clear_route_cache", Some(&[]));
}
