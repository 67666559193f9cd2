//! One filter configuration as Envoy applied it: the core's plan, the
//! metrics it defined in Envoy, the schedule step in effect and a random
//! source, shared by every worker's streams (hence atomics and a lock, not
//! cells: Envoy runs one configuration's streams on all its workers).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use turnout::config;
use turnout::decide::Decision;
use turnout::flow::Shared;
use turnout::plan::{ActiveWeights, Plan};
use turnout::stats::{Class, StatsLayout};

use crate::abi::{self, ConfigEnvoy, LogLevel, MetricId, MetricKind};

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
        for gauge in &layout.gauges {
            // No guard has tripped in a configuration just applied.
            if let Some(id) = envoy.define(MetricKind::Gauge, gauge) {
                envoy.set_gauge(id, 0);
            }
        }
        for (gauge, stable) in &layout.stable_info {
            if let Some(id) = envoy.define(MetricKind::Gauge, gauge) {
                envoy.set_gauge(id, u64::from(*stable));
            }
        }
        let now = unix_now();
        let active = RwLock::new(plan.weights_at(now));
        let seed = getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15);
        abi::log(
            LogLevel::Info,
            &format!(
                "turnout: configuration applied ({} splits)",
                plan.splits.len()
            ),
        );
        Some(FilterConfig {
            schedules: plan.has_schedules(),
            plan,
            layout,
            counters,
            histograms,
            active,
            active_at: AtomicI64::new(now),
            rng: AtomicU64::new(seed),
        })
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
        let mut active = self.active.write().unwrap_or_else(|e| e.into_inner());
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
        f(&self.active.read().unwrap_or_else(|e| e.into_inner()))
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

    fn observe(&self, _decision: &Decision, _class: Class, _latency_ms: Option<u64>, _now: u64) {}
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
