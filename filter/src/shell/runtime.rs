//! What one plugin configuration shares with every request it serves: the
//! plan, the schedule step in effect, the metrics, the random source.

use std::cell::{Cell, RefCell};

use super::host;
use super::metrics::Metrics;
use crate::decide::Decision;
use crate::flow::Shared;
use crate::plan::{ActiveWeights, Plan};
use crate::stats::{Class, StatsLayout};

pub struct Runtime {
    pub plan: Plan,
    pub active: RefCell<ActiveWeights>,
    pub metrics: Metrics,
    /// A splitmix64 generator for anonymous draws and trace ids, seeded
    /// once from the host's entropy: one host call per configuration, not
    /// per request.
    rng: Cell<u64>,
}

impl Runtime {
    pub fn new(plan: Plan, now: i64) -> Runtime {
        let active = RefCell::new(plan.weights_at(now));
        let metrics = Metrics::define(StatsLayout::of(&plan));
        let seed = getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15);
        Runtime {
            plan,
            active,
            metrics,
            rng: Cell::new(seed),
        }
    }

    /// The root's tick: publish the counters, and move to the schedule
    /// step now in effect.
    pub fn publish_and_follow_schedules(&self) {
        self.metrics.publish();
        if self.plan.has_schedules() {
            let now = self.plan.weights_at(unix_now()).bounds;
            if self.active.borrow().bounds != now {
                self.active.borrow_mut().bounds = now;
            }
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

    fn observe(&self, _decision: &Decision, _class: Class, _latency_ms: Option<u64>) {}
}

/// Seconds since the Unix epoch by Envoy's clock.
pub fn unix_now() -> i64 {
    i64::try_from(host::now_nanos() / 1_000_000_000).unwrap_or(i64::MAX)
}
