//! The filter's metrics in Envoy: defined once when a config is applied,
//! counted in the worker's own memory on the request path, and published
//! to Envoy from the root context's tick (Envoy itself only publishes at its
//! stats flush). Dropping the counters publishes what is left, so replacing
//! a config or stopping the VM loses no count.

use std::cell::RefCell;

use super::abi::MetricType;
use super::host;
use crate::stats::StatsLayout;

pub struct Metrics {
    pub layout: StatsLayout,
    counters: Vec<u32>,
    histograms: Vec<u32>,
    /// Counts not yet published, by counter index.
    pending: RefCell<Vec<u64>>,
}

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
        for gauge in &layout.gauges {
            // The guard does not exist yet: its state is "not tripped".
            host::record(define(MetricType::Gauge, gauge), 0);
        }
        for (gauge, stable) in &layout.stable_info {
            host::record(define(MetricType::Gauge, gauge), u64::from(*stable));
        }
        let pending = RefCell::new(vec![0; counters.len()]);
        Metrics {
            layout,
            counters,
            histograms,
            pending,
        }
    }

    pub fn count(&self, counter: usize) {
        if let Some(n) = self.pending.borrow_mut().get_mut(counter) {
            *n += 1;
        }
    }

    pub fn record(&self, histogram: usize, value: u64) {
        if let Some(&id) = self.histograms.get(histogram) {
            host::record(id, value);
        }
    }

    /// Publishes the pending counts to Envoy.
    pub fn publish(&self) {
        let mut pending = self.pending.borrow_mut();
        for (n, &id) in pending.iter_mut().zip(&self.counters) {
            if *n > 0 {
                host::increment(id, i64::try_from(*n).unwrap_or(i64::MAX));
                *n = 0;
            }
        }
    }
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.publish();
    }
}
