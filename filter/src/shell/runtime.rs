//! The wasm build's side of a plugin configuration: the core's
//! [`Runtime`] over Envoy's proxy-wasm calls, and the counts this worker
//! holds for it until the next tick.

use super::abi::{LogLevel, MetricType};
use super::host::{self, SharedWrite};
use super::metrics::Counts;
use crate::flow::Shared;
use crate::runtime::{Cadence, ConfigHost, Level, MetricKind, Runtime};
use crate::watch::SharedStore;

/// One plugin configuration in this worker's VM.
pub struct Config {
    pub runtime: Runtime<Envoy>,
    pub counts: Counts,
}

impl Config {
    /// The configuration of `text`, or `None` (logged) if turnout refuses it.
    pub fn configure(text: &[u8]) -> Option<Config> {
        let runtime = Runtime::configure(text, Envoy, Cadence::Ticked, seed())?;
        Some(Config::of(runtime))
    }

    /// The empty configuration a root context starts with: no split.
    pub fn empty() -> Config {
        let plan = crate::config::parse(b"").unwrap_or_default();
        Config::of(Runtime::new(plan, Envoy, Cadence::Ticked, seed()))
    }

    fn of(runtime: Runtime<Envoy>) -> Config {
        let counts = Counts::new(runtime.layout().counters.len());
        Config { runtime, counts }
    }

    /// The root's tick: publish the counts, then merge the guard and
    /// follow the schedules.
    pub fn tick(&self) {
        self.counts.publish(&self.runtime);
        self.runtime.tick();
    }
}

impl Drop for Config {
    /// Dropping publishes what is left, so replacing a configuration or
    /// stopping the VM loses no count.
    fn drop(&mut self) {
        self.counts.publish(&self.runtime);
    }
}

/// One seed per configuration from the host's entropy (a fixed one if it
/// has none: the draws are for spreading, not secrets).
fn seed() -> u64 {
    getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15)
}

/// Envoy as the wasm build reaches it outside a request; its shared data
/// (one store per VM id, shared by every worker) holds the guard's record.
pub struct Envoy;

impl ConfigHost for Envoy {
    type Metric = u32;

    fn define(&self, kind: MetricKind, name: &str) -> Option<u32> {
        let kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
        };
        Some(host::define_metric(kind, name)).filter(|&id| id != u32::MAX)
    }

    fn set_gauge(&self, gauge: u32, value: u64) {
        host::record(gauge, value);
    }

    fn increment(&self, counter: u32, by: u64) {
        host::increment(counter, i64::try_from(by).unwrap_or(i64::MAX));
    }

    fn record(&self, histogram: u32, value: u64) {
        host::record(histogram, value);
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        host::log(level, message);
    }

    fn unix_now(&self) -> i64 {
        i64::try_from(host::now_nanos() / 1_000_000_000).unwrap_or(i64::MAX)
    }

    fn monotonic_nanos(&self) -> u64 {
        host::monotonic_nanos()
    }
}

impl SharedStore for Envoy {
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
