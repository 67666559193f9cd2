//! What one plugin configuration shares with every request it serves,
//! written once for both builds: the plan and its stats layout, the
//! metrics it defined in Envoy, the schedule step and guard trips in
//! effect, the guard's watch, the shadows' book (the copies in flight and
//! what their answers come to), the random source, and the log lines.
//!
//! A shell supplies a [`ConfigHost`] (the gauge setter, the log, the
//! clock, the record shared by every worker) and drives the runtime: the
//! wasm build from its root context's tick, the native build from its
//! requests (Envoy gives a dynamic module no timer). [`Cadence`] says
//! which, and the runtime does the same things either way: follows
//! schedules, merges the guard's counts, shows a trip in the gauge and
//! the log as soon as it is found, not at the next request, and follows
//! copies stopped elsewhere.
//!
//! The state is behind atomics and locks, not cells: the native build
//! shares one configuration among every worker. In the wasm build (one VM
//! per worker, single-threaded) they cost an uncontended flag.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use crate::config;
use crate::decide::Decision;
use crate::flow::Shared;
use crate::plan::{ActiveWeights, Plan};
use crate::shadow::{Book, Opened, Outcome, Reply, ShadowPlan, Side};
use crate::stats;
use crate::stats::{Class, StatsLayout};
use crate::watch::{Event, SharedStore, Watch};

mod shadow;

/// What kind of metric a configuration defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// How loud a log line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// How the host drives the runtime outside requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cadence {
    /// The host calls [`Runtime::tick`] periodically (the wasm build's
    /// root context, twice a second with a guard): requests make no call
    /// for schedules or merges.
    Ticked,
    /// The host has no tick: the first request of each second follows the
    /// schedules, and the guard merges at most every [`MERGE_EVERY_NS`]
    /// from the responses it sees.
    ByRequests,
}

/// How often a runtime driven [`Cadence::ByRequests`] merges the guard's
/// counts, where the sequential test is judged: a tenth of a second (a
/// merge costs a few microseconds; the wasm build's tick is half a
/// second, but a native proxy serves several times the requests).
pub const MERGE_EVERY_NS: u64 = 100_000_000;

/// What a configuration needs of its host outside a request's hooks. It is
/// also the store the guard merges into: Envoy's shared data in the wasm
/// build (one VM per worker), a record in the process natively.
pub trait ConfigHost: SharedStore {
    /// The host's handle for a metric this configuration defined.
    type Metric: Copy;
    /// Defines a metric; `None` if the host will not (its counts are then
    /// dropped: stats never take a request down).
    fn define(&self, kind: MetricKind, name: &str) -> Option<Self::Metric>;
    fn set_gauge(&self, gauge: Self::Metric, value: u64);
    /// Adds `by` to a counter, outside any request (the shadow's answers).
    fn increment(&self, counter: Self::Metric, by: u64);
    /// Records a histogram value, outside any request.
    fn record(&self, histogram: Self::Metric, value: u64);
    /// Writes a line to Envoy's log, under turnout's name.
    fn log(&self, level: Level, message: &str);
    /// Seconds since the Unix epoch by the host's clock (schedules are
    /// written in wall-clock time).
    fn unix_now(&self) -> i64;
    /// The host's monotonic clock in nanoseconds (0 if it cannot say).
    fn monotonic_nanos(&self) -> u64;
    /// Defines the counter of a shadowed split's field (`noise`: of its
    /// noise), when the field is first seen: after the configuration was
    /// applied, unlike every other metric. By default the counter named
    /// by [`stats::shadow_field_counter`] (or `shadow_noise_counter`); a
    /// host that can only define metrics while a configuration is being
    /// applied gives a handle on a labelled counter defined then instead,
    /// under the same name and labels.
    fn define_field(&self, noise: bool, split: &str, field: &str) -> Option<Self::Metric> {
        let name = if noise {
            stats::shadow_noise_counter(split, field)
        } else {
            stats::shadow_field_counter(split, field)
        };
        self.define(MetricKind::Counter, &name)
    }
    /// Why this host cannot serve a plan the parser accepted (a feature
    /// it does not have), naming the field; `None` when it can.
    fn refuses(&self, _plan: &Plan) -> Option<String> {
        None
    }
}

/// A shadowed split's field counters by slot: `[0]` the differing
/// fields', `[1]` the noise's (`None`: not defined yet, or refused).
type FieldCounters<M> = [Vec<Option<M>>; 2];

/// The runtime of one accepted configuration.
pub struct Runtime<H: ConfigHost> {
    plan: Plan,
    layout: StatsLayout,
    counters: Vec<Option<H::Metric>>,
    histograms: Vec<Option<H::Metric>>,
    /// Every gauge of the layout: per split its `guard_tripped`, then the
    /// shadows' `shadow_tripped`.
    gauges: Vec<Option<H::Metric>>,
    /// The shadows' copies in flight (`None`: no split has a shadow).
    book: Option<Mutex<Book>>,
    /// Per split, its shadow's field and noise counters by slot, defined
    /// as the fields are first seen.
    fields: Mutex<Vec<FieldCounters<H::Metric>>>,
    active: RwLock<ActiveWeights>,
    cadence: Cadence,
    /// The Unix second `active` was computed for (plans with schedules).
    active_at: AtomicI64,
    /// A splitmix64 state for anonymous draws and trace ids, seeded once
    /// by the host: one call for entropy per configuration, not per request.
    rng: AtomicU64,
    /// The guarded splits' watch (`None`: no split has a guard, and the
    /// request path takes no lock for it).
    watch: Option<Mutex<Watch>>,
    /// When the watch last merged (monotonic ns; [`Cadence::ByRequests`]).
    merged_at: AtomicU64,
    host: H,
}

impl<H: ConfigHost> Runtime<H> {
    /// Parses `text` with the core's parser and builds its runtime, logging
    /// either way: `None` refuses it, with the reason in the log. Whether
    /// it is accepted depends on the text alone; the clock only sets which
    /// schedule step is in effect.
    pub fn configure(text: &[u8], host: H, cadence: Cadence, seed: u64) -> Option<Runtime<H>> {
        let refused = |why: &dyn std::fmt::Display| {
            host.log(Level::Error, &format!("configuration refused: {why}"));
        };
        let plan = match config::parse(text) {
            Ok(plan) => plan,
            Err(error) => {
                refused(&error);
                return None;
            }
        };
        if let Some(why) = host.refuses(&plan) {
            refused(&why);
            return None;
        }
        let splits = plan.splits.len();
        let runtime = Runtime::new(plan, host, cadence, seed);
        let line = format!("configuration applied ({splits} splits)");
        runtime.host.log(Level::Info, &line);
        Some(runtime)
    }

    /// The runtime of `plan`: its metrics defined (the guard gauges at 0,
    /// the stable-cluster gauges set), and the trips of its guarded splits
    /// restored from the shared record, so a push that leaves a tripped
    /// split unchanged keeps it tripped from its first request.
    pub fn new(plan: Plan, host: H, cadence: Cadence, seed: u64) -> Runtime<H> {
        let layout = StatsLayout::of(&plan);
        let all = |kind, names: &[String]| names.iter().map(|n| host.define(kind, n)).collect();
        let counters = all(MetricKind::Counter, &layout.counters);
        let histograms = all(MetricKind::Histogram, &layout.histograms);
        let gauges: Vec<Option<H::Metric>> = all(MetricKind::Gauge, &layout.gauges);
        for gauge in gauges.iter().flatten() {
            host.set_gauge(*gauge, 0);
        }
        for (name, stable) in &layout.stable_info {
            if let Some(gauge) = host.define(MetricKind::Gauge, name) {
                host.set_gauge(gauge, u64::from(*stable));
            }
        }
        let now = host.unix_now();
        let mut active = plan.weights_at(now);
        active.tripped = vec![false; plan.splits.len()];
        let mut watch = Watch::of(&plan);
        let restored = if watch.any() {
            watch.restore(&host)
        } else {
            Vec::new()
        };
        let book = Book::of(&plan);
        let runtime = Runtime {
            watch: watch.any().then(|| Mutex::new(watch)),
            book: book.any().then(|| Mutex::new(book)),
            fields: Mutex::new(vec![[Vec::new(), Vec::new()]; plan.splits.len()]),
            plan,
            layout,
            counters,
            histograms,
            gauges,
            active: RwLock::new(active),
            cadence,
            active_at: AtomicI64::new(now),
            rng: AtomicU64::new(seed),
            merged_at: AtomicU64::new(0),
            host,
        };
        runtime.apply(restored);
        runtime.follow_shadow_stops();
        runtime
    }

    /// Envoy's handle of counter `counter` of the layout (`None`: Envoy
    /// would not define it, and it is not counted).
    pub fn counter(&self, counter: usize) -> Option<H::Metric> {
        self.counters.get(counter).copied().flatten()
    }

    /// Envoy's handle of histogram `histogram` of the layout.
    pub fn histogram(&self, histogram: usize) -> Option<H::Metric> {
        self.histograms.get(histogram).copied().flatten()
    }

    /// Whether a guard needs the tick more often than the stats do.
    pub fn guarded(&self) -> bool {
        self.watch.is_some()
    }

    pub fn host(&self) -> &H {
        &self.host
    }

    /// The host's tick ([`Cadence::Ticked`]): merge the guard's counts
    /// with the other workers', and move to the schedule step now in effect.
    pub fn tick(&self) {
        self.merge_guard();
        self.follow_shadow_stops();
        if self.plan.has_schedules() {
            self.follow_schedules(self.host.unix_now());
        }
    }

    /// Adds what the guard recorded since its last merge to the shared
    /// record: on the tick, and before the configuration is replaced, so
    /// no count and no trip is lost.
    pub fn merge_guard(&self) {
        let Some(watch) = &self.watch else { return };
        let now_ns = self.host.monotonic_nanos();
        self.merged_at.store(now_ns, Ordering::Relaxed);
        let events = lock(watch).merge(&self.host, seconds(now_ns));
        self.apply(events);
    }

    /// Moves to the schedule step in effect at `now` (Unix seconds).
    fn follow_schedules(&self, now: i64) {
        let bounds = self.plan.weights_at(now).bounds;
        let mut active = self.active.write().unwrap_or_else(PoisonError::into_inner);
        if active.bounds != bounds {
            active.bounds = bounds;
        }
    }

    /// [`Cadence::ByRequests`]: the first request of each second on any
    /// worker follows the schedules.
    fn follow_schedules_now_and_then(&self) {
        let now = self.host.unix_now();
        if self.active_at.load(Ordering::Relaxed) == now
            || self.active_at.swap(now, Ordering::Relaxed) == now
        {
            return;
        }
        self.follow_schedules(now);
    }

    /// Latches, logs and shows what the watch reports: the trip's line
    /// once per proxy (by the worker that recorded it), the gauge at 1.
    fn apply(&self, events: Vec<Event>) {
        for event in events {
            let split = match event {
                Event::Tripped { split, trip } => {
                    if let Some(plan) = self.plan.splits.get(split) {
                        let line = trip.log_line(&plan.name, &plan.clusters);
                        self.host.log(Level::Warn, &line);
                    }
                    split
                }
                Event::Followed { split } => split,
            };
            self.latch(split);
            if let Some(Some(gauge)) = self.gauges.get(split) {
                self.host.set_gauge(*gauge, 1);
            }
        }
    }

    /// Sends every request of `split` to stable from now on.
    fn latch(&self, split: usize) {
        let mut active = self.active.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(tripped) = active.tripped.get_mut(split) {
            *tripped = true;
        }
    }
}

impl<H: ConfigHost> Shared for Runtime<H> {
    fn plan(&self) -> &Plan {
        &self.plan
    }

    fn layout(&self) -> &StatsLayout {
        &self.layout
    }

    fn with_active<R>(&self, f: impl FnOnce(&ActiveWeights) -> R) -> R {
        if self.cadence == Cadence::ByRequests && self.plan.has_schedules() {
            self.follow_schedules_now_and_then();
        }
        f(&self.active.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn next_u64(&self) -> u64 {
        const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut z = self
            .rng
            .fetch_add(GOLDEN, Ordering::Relaxed)
            .wrapping_add(GOLDEN);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Opens a pair for a request of `split` sampled for a copy (`request`:
    /// its method, path and trace id): the host then sends the sides of
    /// `Book::sides(noise)` and hands each answer to `shadow_answer`.
    /// A copy past `max_in_flight` is counted `skipped` here.
    fn shadow_open(
        &self,
        split: usize,
        plan: &ShadowPlan,
        request: (&[u8], &[u8], &str),
        noise: bool,
        worker: u32,
    ) -> Opened {
        let Some(book) = &self.book else {
            return Opened::Stopped;
        };
        let opened = lock(book).open(plan, split, request, noise, worker);
        if opened == Opened::Skipped {
            self.count_outcome(split, Outcome::Skipped);
        }
        opened
    }

    /// An answer to one side of pair `pair`: the last one settles it.
    fn shadow_answer(&self, pair: u64, side: Side, reply: Reply) {
        let Some(book) = &self.book else { return };
        let now_s = seconds(self.host.monotonic_nanos());
        let settled = lock(book).answer(&self.plan, pair, side, reply, now_s);
        if let Some(settled) = settled {
            self.count_settled(settled);
        }
    }

    /// Judged at once, in memory: a trip found here sends the split to
    /// stable from the next request on, and is merged into the shared
    /// record at once, so the gauge and the log show it now, whether or
    /// not another request or tick comes.
    fn observe(&self, d: &Decision, class: Class, latency_ms: Option<u64>, now_nanos: u64) {
        let Some(watch) = &self.watch else { return };
        if now_nanos == 0 {
            return;
        }
        let now_s = seconds(now_nanos);
        let mut watch = lock(watch);
        let tripped = watch
            .observe(d.split, d.cluster, class, latency_ms, now_s)
            .is_some();
        if tripped {
            self.latch(d.split);
        }
        let due = self.cadence == Cadence::ByRequests
            && now_nanos.saturating_sub(self.merged_at.load(Ordering::Relaxed)) >= MERGE_EVERY_NS;
        if tripped || due {
            self.merged_at.store(now_nanos, Ordering::Relaxed);
            let events = watch.merge(&self.host, now_s);
            drop(watch);
            self.apply(events);
        }
    }
}

impl<H: ConfigHost> Drop for Runtime<H> {
    /// Replaced or removed: what the guard recorded since its last merge
    /// goes into the shared record, so a push loses no count.
    fn drop(&mut self) {
        if let Some(watch) = &self.watch {
            let now_s = seconds(self.host.monotonic_nanos());
            lock(watch).merge(&self.host, now_s);
        }
    }
}

/// A lock whose holder panicked is still good: every update under these
/// locks leaves a consistent state.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Monotonic nanoseconds as the guard's seconds.
fn seconds(nanos: u64) -> i64 {
    (nanos / 1_000_000_000) as i64
}
