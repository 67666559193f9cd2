//! What one plugin configuration shares with every request it serves: the
//! plan, the schedule step and guard trips in effect, the metrics, the
//! guard's watch, the random source.

use std::cell::{Cell, RefCell};

use super::abi::LogLevel;
use super::host::{self, SharedWrite};
use super::metrics::Metrics;
use crate::decide::Decision;
use crate::flow::Shared;
use crate::plan::{ActiveWeights, Plan};
use crate::stats::{Class, StatsLayout};
use crate::watch::{Event, SharedStore, Watch};

pub struct Runtime {
    pub plan: Plan,
    pub active: RefCell<ActiveWeights>,
    pub metrics: Metrics,
    watch: RefCell<Watch>,
    /// A splitmix64 generator for anonymous draws and trace ids, seeded
    /// once from the host's entropy: one host call per configuration, not
    /// per request.
    rng: Cell<u64>,
}

impl Runtime {
    /// The runtime of a configuration just accepted: its metrics defined,
    /// and the trips of its guarded splits restored from shared data (a
    /// push that leaves a tripped split unchanged keeps it tripped).
    pub fn new(plan: Plan, now: i64) -> Runtime {
        let mut active = plan.weights_at(now);
        active.tripped = vec![false; plan.splits.len()];
        let metrics = Metrics::define(StatsLayout::of(&plan));
        let seed = getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15);
        let mut watch = Watch::of(&plan);
        let events = if watch.any() {
            watch.restore(&EnvoyShared)
        } else {
            Vec::new()
        };
        let runtime = Runtime {
            plan,
            active: RefCell::new(active),
            metrics,
            watch: RefCell::new(watch),
            rng: Cell::new(seed),
        };
        runtime.apply(events);
        runtime
    }

    /// Whether a guard needs the tick more often than the stats do.
    pub fn guarded(&self) -> bool {
        self.watch.borrow().any()
    }

    /// The root's tick: publish the counters, merge the guard's counts
    /// with the other workers', and move to the schedule step now in effect.
    pub fn tick(&self) {
        self.metrics.publish();
        self.merge_guard();
        if self.plan.has_schedules() {
            let now = self.plan.weights_at(unix_now()).bounds;
            if self.active.borrow().bounds != now {
                self.active.borrow_mut().bounds = now;
            }
        }
    }

    /// Adds this worker's guard counts to the shared record (the tick, and
    /// before the configuration is replaced, so no count is lost).
    pub fn merge_guard(&self) {
        if self.guarded() {
            let events = self.watch.borrow_mut().merge(&EnvoyShared, monotonic_s());
            self.apply(events);
        }
    }

    /// Latches, logs and shows what the watch reports.
    fn apply(&self, events: Vec<Event>) {
        for event in events {
            let split = match &event {
                Event::Tripped { split, trip } => {
                    let plan = &self.plan.splits[*split];
                    host::log(LogLevel::Warn, &trip.log_line(&plan.name, &plan.clusters));
                    *split
                }
                Event::Followed { split } => *split,
            };
            self.latch(split);
            self.metrics.set_guard_tripped(split);
        }
    }

    fn latch(&self, split: usize) {
        if let Some(t) = self.active.borrow_mut().tripped.get_mut(split) {
            *t = true;
        }
    }
}

impl Shared for Runtime {
    fn plan(&self) -> &Plan {
        &self.plan
    }

    fn layout(&self) -> &StatsLayout {
        &self.metrics.layout
    }

    fn with_active<R>(&self, f: impl FnOnce(&ActiveWeights) -> R) -> R {
        f(&self.active.borrow())
    }

    fn next_u64(&self) -> u64 {
        let state = self.rng.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.rng.set(state);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Judged in the VM's memory, no host call: a trip found here sends
    /// the split to stable from the next request on; the tick records it,
    /// logs it and shows it.
    fn observe(&self, d: &Decision, class: Class, latency_ms: Option<u64>, now_nanos: u64) {
        if now_nanos == 0 {
            return;
        }
        let now_s = (now_nanos / 1_000_000_000) as i64;
        let trip = self
            .watch
            .borrow_mut()
            .observe(d.split, d.cluster, class, latency_ms, now_s);
        if trip.is_some() {
            self.latch(d.split);
        }
    }
}

/// Envoy's shared data: one store per VM id, shared by every worker.
struct EnvoyShared;

impl SharedStore for EnvoyShared {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        host::shared_data(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Option<bool> {
        match host::set_shared_data(key, value, cas) {
            SharedWrite::Written => Some(true),
            SharedWrite::Stale => Some(false),
            SharedWrite::Failed => None,
        }
    }
}

/// Seconds since the Unix epoch by Envoy's clock.
pub fn unix_now() -> i64 {
    i64::try_from(host::now_nanos() / 1_000_000_000).unwrap_or(i64::MAX)
}

/// Envoy's monotonic clock in seconds: the guard's windows, the same on
/// every worker.
fn monotonic_s() -> i64 {
    (host::monotonic_nanos() / 1_000_000_000) as i64
}
