//! The counts of one configuration in this worker, held in the VM's memory
//! on the request path and published to Envoy from the root context's tick
//! (Envoy itself only publishes at its stats flush), and when the
//! configuration is dropped, so replacing it or stopping the VM loses no
//! count.
//!
//! Latency samples wait too: Envoy has no call that records many values
//! at once, but calls made in a loop run hot, where one made inside each
//! request crosses the VM's edge cold (BENCHMARKS.md section 3: about a
//! microsecond per request saved, below what one run resolves).

use std::cell::RefCell;

use super::host;
use super::runtime::Envoy;
use crate::runtime::Runtime;

pub struct Counts {
    /// Counts not yet published, by counter index.
    pending: RefCell<Vec<u64>>,
    /// Histogram values not yet recorded: (Envoy's metric id, value).
    samples: RefCell<Vec<(u32, u64)>>,
}

/// How many latency samples wait at most: at this many, the request that
/// adds the last one records them all (8 KiB of the VM's memory; a worker
/// serving 10,000 requests/s fills it about twenty times a second).
const SAMPLES_HELD: usize = 512;

impl Counts {
    /// Room for `counters` counters.
    pub fn new(counters: usize) -> Counts {
        Counts {
            pending: RefCell::new(vec![0; counters]),
            samples: RefCell::new(Vec::with_capacity(SAMPLES_HELD)),
        }
    }

    pub fn count(&self, counter: usize) {
        if let Some(n) = self.pending.borrow_mut().get_mut(counter) {
            *n += 1;
        }
    }

    /// Holds one value of histogram `histogram` (a metric Envoy would not
    /// define drops it).
    pub fn record(&self, runtime: &Runtime<Envoy>, histogram: usize, value: u64) {
        let Some(id) = runtime.histogram(histogram) else {
            return;
        };
        let mut samples = self.samples.borrow_mut();
        samples.push((id, value));
        if samples.len() >= SAMPLES_HELD {
            record_all(&mut samples);
        }
    }

    /// Publishes the pending counts and samples to Envoy.
    pub fn publish(&self, runtime: &Runtime<Envoy>) {
        record_all(&mut self.samples.borrow_mut());
        let mut pending = self.pending.borrow_mut();
        for (counter, n) in pending.iter_mut().enumerate() {
            if *n > 0 {
                if let Some(id) = runtime.counter(counter) {
                    host::increment(id, i64::try_from(*n).unwrap_or(i64::MAX));
                }
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
