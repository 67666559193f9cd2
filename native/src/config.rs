//! One filter configuration as Envoy applied it: the core's plan, the
//! metrics it defined in Envoy, the schedule step in effect and a random
//! source, shared by every worker's streams (hence atomics and a lock, not
//! cells: Envoy runs one configuration's streams on all its workers).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use turnout::config;
use turnout::decide::Decision;
use turnout::flow::Shared;
use turnout::plan::{ActiveWeights, Plan};
use turnout::stats::{Class, StatsLayout};
use turnout::watch::Event;

use crate::abi::{self, ConfigEnvoy, ConfigHandle, LogLevel, MetricId, MetricKind};
use crate::guard::{Guard, Outcome};
use crate::host::monotonic_nanos;

pub struct FilterConfig {
    plan: Plan,
    layout: StatsLayout,
    /// Envoy's id of each counter and histogram of `layout`, by index
    /// (`None`: Envoy would not define it, and it is not counted).
    pub counters: Vec<Option<MetricId>>,
    pub histograms: Vec<Option<MetricId>>,
    active: RwLock<ActiveWeights>,
    /// Whether any weight follows a schedule (else `active` never changes).
    schedules: bool,
    /// The Unix second `active` was computed for (plans with schedules).
    active_at: AtomicI64,
    /// A splitmix64 state for anonymous draws and trace ids, seeded once.
    rng: AtomicU64,
    /// The guarded splits' watch (`None`: no split has a guard).
    guard: Option<Guard>,
    /// Per split, Envoy's id of its `guard_tripped` gauge.
    guard_gauges: Vec<Option<MetricId>>,
    envoy: ConfigHandle,
}

impl FilterConfig {
    /// Parses `text` with the core's parser, as the wasm build does, and
    /// defines its metrics. `None` refuses it, with the reason logged in
    /// the wasm build's words.
    pub fn new(envoy: &ConfigEnvoy<'_>, text: &[u8]) -> Option<FilterConfig> {
        #[cfg(feature = "test-panic")]
        crate::filter::test_panic_in_config(text);
        let plan = match config::parse(text) {
            Ok(plan) => plan,
            Err(error) => {
                abi::log(
                    LogLevel::Error,
                    &format!("turnout: configuration refused: {error}"),
                );
                return None;
            }
        };
        let layout = StatsLayout::of(&plan);
        let define = |kind, names: &[String]| -> Vec<Option<MetricId>> {
            names.iter().map(|n| envoy.define(kind, n)).collect()
        };
        let counters = define(MetricKind::Counter, &layout.counters);
        let histograms = define(MetricKind::Histogram, &layout.histograms);
        // No guard has tripped in a configuration just applied (unless a
        // trip is restored below).
        let guard_gauges: Vec<Option<MetricId>> = layout
            .gauges
            .iter()
            .map(|gauge| envoy.define(MetricKind::Gauge, gauge))
            .collect();
        let handle = envoy.handle();
        for id in guard_gauges.iter().flatten() {
            handle.set_gauge(*id, 0);
        }
        for (gauge, stable) in &layout.stable_info {
            if let Some(id) = envoy.define(MetricKind::Gauge, gauge) {
                handle.set_gauge(id, u64::from(*stable));
            }
        }
        let now = unix_now();
        let mut active = plan.weights_at(now);
        active.tripped = vec![false; plan.splits.len()];
        let (guard, restored) = Guard::of(&plan).map_or((None, Vec::new()), |(g, e)| (Some(g), e));
        let seed = getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15);
        abi::log(
            LogLevel::Info,
            &format!(
                "turnout: configuration applied ({} splits)",
                plan.splits.len()
            ),
        );
        let config = FilterConfig {
            schedules: plan.has_schedules(),
            plan,
            layout,
            counters,
            histograms,
            active: RwLock::new(active),
            active_at: AtomicI64::new(now),
            rng: AtomicU64::new(seed),
            guard,
            guard_gauges,
            envoy: handle,
        };
        for event in restored {
            config.on_guard_event(event);
        }
        Some(config)
    }

    /// Latches, logs and shows what the guard reports, as the wasm build
    /// does: the trip's line once per proxy, the gauge at 1.
    fn on_guard_event(&self, event: Event) {
        let split = match event {
            Event::Tripped { split, trip } => {
                if let Some(plan) = self.plan.splits.get(split) {
                    abi::log(LogLevel::Warn, &trip.log_line(&plan.name, &plan.clusters));
                }
                split
            }
            Event::Followed { split } => split,
        };
        self.latch(split);
        if let Some(Some(gauge)) = self.guard_gauges.get(split) {
            self.envoy.set_gauge(*gauge, 1);
        }
    }

    /// Sends every request of `split` to stable from now on.
    fn latch(&self, split: usize) {
        let mut active = self.active.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(tripped) = active.tripped.get_mut(split) {
            *tripped = true;
        }
    }

    /// Moves to the schedule step in effect now, at most once a second:
    /// the first request of each second on any worker checks the clock.
    fn follow_schedules(&self) {
        let now = unix_now();
        if self.active_at.load(Ordering::Relaxed) == now
            || self.active_at.swap(now, Ordering::Relaxed) == now
        {
            return;
        }
        let bounds = self.plan.weights_at(now).bounds;
        let mut active = self.active.write().unwrap_or_else(PoisonError::into_inner);
        if active.bounds != bounds {
            active.bounds = bounds;
        }
    }
}

impl Shared for FilterConfig {
    fn plan(&self) -> &Plan {
        &self.plan
    }

    fn layout(&self) -> &StatsLayout {
        &self.layout
    }

    fn with_active<R>(&self, f: impl FnOnce(&ActiveWeights) -> R) -> R {
        if self.schedules {
            self.follow_schedules();
        }
        f(&self.active.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn next_u64(&self) -> u64 {
        let state = self
            .rng
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Judged at once, in the configuration's one watch: a trip sends
    /// the split to stable from the next request on, on every worker.
    fn observe(&self, d: &Decision, class: Class, latency_ms: Option<u64>, now_nanos: u64) {
        let Some(guard) = &self.guard else { return };
        if now_nanos == 0 {
            return;
        }
        for outcome in guard.observe(d.split, d.cluster, class, latency_ms, now_nanos) {
            match outcome {
                Outcome::Latch(split) => self.latch(split),
                Outcome::Event(event) => self.on_guard_event(event),
            }
        }
    }
}

impl Drop for FilterConfig {
    /// Replaced or removed: what the guard recorded since its last merge
    /// goes into the process's record, so a push loses no count.
    fn drop(&mut self) {
        if let Some(guard) = &self.guard {
            guard.flush(monotonic_nanos());
        }
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
