//! The filter's metrics in Envoy: defined once when a config is applied,
//! counted in the worker's own memory on the request path, and published
//! to Envoy from the root context's tick (Envoy itself only publishes at its
//! stats flush). Dropping the counters publishes what is left, so replacing
//! a config or stopping the VM loses no count.
//!
//! Latency samples wait too: Envoy has no call that records many values
//! at once, but calls made in a loop run hot, where one made inside each
//! request crosses the VM's edge cold (BENCHMARKS.md section 3: about a
//! microsecond per request saved, below what one run resolves).

use std::cell::RefCell;

use super::abi::MetricType;
use super::host;
use crate::stats::StatsLayout;

pub struct Metrics {
    pub layout: StatsLayout,
    counters: Vec<u32>,
    histograms: Vec<u32>,
    /// `guard_tripped`, per split.
    guards: Vec<u32>,
    /// Counts not yet published, by counter index.
    pending: RefCell<Vec<u64>>,
    /// Histogram values not yet recorded: (Envoy's metric id, value).
    samples: RefCell<Vec<(u32, u64)>>,
}

/// How many latency samples wait at most: at this many, the request that
/// adds the last one records them all (8 KiB of the VM's memory; a worker
/// serving 10,000 requests/s fills it about twenty times a second).
const SAMPLES_HELD: usize = 512;

impl Metrics {
    /// Defines every metric of `layout`. A metric Envoy will not define
    /// gets id `u32::MAX`, and its counts are dropped: stats never take a
    /// request down.
    pub fn define(layout: StatsLayout) -> Metrics {
        let define = |kind, name: &String| host::define_metric(kind, name);
        let counters: Vec<u32> = layout
            .counters
            .iter()
            .map(|n| define(MetricType::Counter, n))
            .collect();
        let histograms = layout
            .histograms
            .iter()
            .map(|n| define(MetricType::Histogram, n))
            .collect();
        // A new configuration starts untripped; a trip it keeps is set
        // again when its runtime restores it.
        let guards: Vec<u32> = layout
            .gauges
            .iter()
            .map(|gauge| define(MetricType::Gauge, gauge))
            .collect();
        for &gauge in &guards {
            host::record(gauge, 0);
        }
        for (gauge, stable) in &layout.stable_info {
            host::record(define(MetricType::Gauge, gauge), u64::from(*stable));
        }
        let pending = RefCell::new(vec![0; counters.len()]);
        let samples = RefCell::new(Vec::with_capacity(SAMPLES_HELD));
        Metrics {
            layout,
            counters,
            histograms,
            guards,
            pending,
            samples,
        }
    }

    pub fn count(&self, counter: usize) {
        if let Some(n) = self.pending.borrow_mut().get_mut(counter) {
            *n += 1;
        }
    }

    pub fn record(&self, histogram: usize, value: u64) {
        let Some(&id) = self.histograms.get(histogram).filter(|&&id| id != u32::MAX) else {
            return;
        };
        let mut samples = self.samples.borrow_mut();
        samples.push((id, value));
        if samples.len() >= SAMPLES_HELD {
            record_all(&mut samples);
        }
    }

    /// Shows split `split`'s guard as tripped.
    pub fn set_guard_tripped(&self, split: usize) {
        if let Some(&gauge) = self.guards.get(split) {
            host::record(gauge, 1);
        }
    }

    /// Publishes the pending counts and samples to Envoy.
    pub fn publish(&self) {
        record_all(&mut self.samples.borrow_mut());
        let mut pending = self.pending.borrow_mut();
        for (n, &id) in pending.iter_mut().zip(&self.counters) {
            if *n > 0 {
                host::increment(id, i64::try_from(*n).unwrap_or(i64::MAX));
                *n = 0;
            }
        }
    }
}

fn record_all(samples: &mut Vec<(u32, u64)>) {
    for &(id, value) in samples.iter() {
        host::record(id, value);
    }
    samples.clear();
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.publish();
    }
}
