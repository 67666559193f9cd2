//! A configuration's request counts and latency values, batched in the
//! module and handed to Envoy on its main thread: a request makes no
//! metric call into Envoy.
//!
//! Why: a counter increment through the ABI is a call, an id lookup and
//! three atomic adds in Envoy; a histogram value a thread-local map lookup
//! and an insertion. Here a count is one atomic add in the worker's own
//! stripe of the configuration's [`Batch`] (stripes keep workers off each
//! other's cache lines), a latency value a push on the stripe's list.
//!
//! When: a module thread wakes every [`FLUSH_EVERY`] and, for every live
//! configuration that counted since, commits [`STATS_DUE`] to its
//! scheduler; Envoy runs `on_http_filter_config_scheduled` on its main
//! thread, where [`flush`] moves every stripe's counts into Envoy's
//! counters (one call per counter that moved, by how much it moved) and
//! records the values. Counts reach `/stats` within about a second, as
//! the wasm build's (published from its root context's 1 s tick).
//!
//! No count is lost: `config_destroy` flushes what is left (Envoy
//! destroys a configuration after its last stream, when it is replaced
//! by a push or its listener has drained), and a stripe whose list of
//! values fills before a flush records them itself, from its worker.
//! Envoy's counters and histograms may be fed from any of its threads:
//! a counter is atomic, a histogram value goes to the calling thread's
//! own histogram, which Envoy merges at its stats flush.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use crate::abi::Scheduler;
use crate::config::{FilterConfig, Metric};

/// The scheduler event that says "counts are waiting".
pub const STATS_DUE: u64 = 2;

/// How often the module's thread looks for counts to flush.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Stripes per configuration: workers beyond this many share stripes
/// (still exact: every add is atomic).
const STRIPES: usize = 8;

/// Latency values a stripe holds before its worker records them itself.
const MAX_VALUES: usize = 4096;

/// One worker's share of a configuration's counts.
struct Stripe {
    /// One per counter of the configuration's stats layout.
    counts: Box<[AtomicU64]>,
    /// (histogram of the layout, value) waiting to be recorded.
    values: Mutex<Vec<(usize, u64)>>,
}

/// A configuration's counts and values not yet in Envoy.
pub struct Batch {
    /// Sized when the configuration's layout is known ([`Batch::size`]).
    stripes: OnceLock<Box<[Stripe]>>,
    /// Something was counted since the module's thread last looked.
    dirty: AtomicBool,
    /// Reaches the main thread; `None`: Envoy gave none, and counts wait
    /// for `config_destroy`.
    scheduler: Option<Scheduler>,
}

thread_local! {
    /// This thread's stripe, the same in every configuration.
    static STRIPE: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES
    };
}

impl Batch {
    /// An empty batch, watched by the module's flushing thread.
    pub fn new(scheduler: Option<Scheduler>) -> Arc<Batch> {
        let batch = Arc::new(Batch {
            stripes: OnceLock::new(),
            dirty: AtomicBool::new(false),
            scheduler,
        });
        watch(Arc::downgrade(&batch));
        batch
    }

    /// Makes room for `counters` counters (once; later calls do nothing).
    pub fn size(&self, counters: usize) {
        self.stripes.get_or_init(|| {
            (0..STRIPES)
                .map(|_| Stripe {
                    counts: (0..counters).map(|_| AtomicU64::new(0)).collect(),
                    values: Mutex::new(Vec::new()),
                })
                .collect()
        });
    }

    fn stripe(&self) -> Option<&Stripe> {
        let stripes = self.stripes.get()?;
        STRIPE.with(|s| stripes.get(*s))
    }

    /// Adds one to counter `counter` of the layout.
    pub fn count(&self, counter: usize) {
        if let Some(count) = self.stripe().and_then(|s| s.counts.get(counter)) {
            count.fetch_add(1, Ordering::SeqCst);
            self.mark();
        }
    }

    /// Holds a value of histogram `histogram`; when the stripe is full,
    /// gives back what it held for the caller to record now.
    pub fn record(&self, histogram: usize, value: u64) -> Option<Vec<(usize, u64)>> {
        let stripe = self.stripe()?;
        let mut values = stripe.values.lock().unwrap_or_else(PoisonError::into_inner);
        values.push((histogram, value));
        self.mark();
        (values.len() >= MAX_VALUES).then(|| std::mem::take(&mut *values))
    }

    /// Marks the batch as having counts (a plain read when it already is).
    fn mark(&self) {
        if !self.dirty.load(Ordering::SeqCst) {
            self.dirty.store(true, Ordering::SeqCst);
        }
    }

    /// Every stripe's counts since the last take, summed per counter, and
    /// every held value; the stripes are left at zero.
    fn take(&self) -> (Vec<u64>, Vec<(usize, u64)>) {
        let Some(stripes) = self.stripes.get() else {
            return (Vec::new(), Vec::new());
        };
        let mut counts = vec![0u64; stripes.first().map_or(0, |s| s.counts.len())];
        let mut values = Vec::new();
        for stripe in stripes.iter() {
            for (sum, count) in counts.iter_mut().zip(stripe.counts.iter()) {
                *sum += count.swap(0, Ordering::SeqCst);
            }
            let mut held = stripe.values.lock().unwrap_or_else(PoisonError::into_inner);
            values.append(&mut held);
        }
        (counts, values)
    }
}

/// Moves what `config`'s batch holds into Envoy's metrics: on the main
/// thread (`STATS_DUE`), and in `config_destroy`.
pub fn flush(config: &FilterConfig) {
    let native = config.host();
    let (counts, values) = native.batch.take();
    for (counter, by) in counts.into_iter().enumerate() {
        if let (true, Some(Metric::Named(id))) = (by > 0, config.counter(counter)) {
            native.handle().increment(id, by);
        }
    }
    record(config, &values);
}

/// Records latency values in Envoy's histograms, from this thread.
pub fn record(config: &FilterConfig, values: &[(usize, u64)]) {
    for &(histogram, value) in values {
        if let Some(Metric::Named(id)) = config.histogram(histogram) {
            config.host().handle().record(id, value);
        }
    }
}

/// The batches the module's thread looks at.
static WATCHED: Mutex<Vec<Weak<Batch>>> = Mutex::new(Vec::new());

/// Adds `batch` to the module's thread's list, starting the thread once.
fn watch(batch: Weak<Batch>) {
    static THREAD: OnceLock<()> = OnceLock::new();
    WATCHED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(batch);
    THREAD.get_or_init(|| {
        // Without the thread counts reach Envoy at `config_destroy` only;
        // nothing else changes, so a failure to start it is not fatal.
        let _ = std::thread::Builder::new()
            .name("turnout-stats".into())
            .spawn(|| loop {
                std::thread::sleep(FLUSH_EVERY);
                due();
            });
    });
}

/// One look of the module's thread: asks the main thread to flush every
/// live batch with counts, and forgets the batches of gone configurations.
fn due() {
    let mut watched = WATCHED.lock().unwrap_or_else(PoisonError::into_inner);
    watched.retain(|weak| {
        let Some(batch) = weak.upgrade() else {
            return false;
        };
        if batch.dirty.swap(false, Ordering::SeqCst) {
            if let Some(scheduler) = &batch.scheduler {
                scheduler.commit(STATS_DUE);
            }
        }
        true
    });
}
