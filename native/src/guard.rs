//! The guard natively: one configuration's [`Watch`] shared by every
//! worker, so the counts it judges are already the whole proxy's.
//!
//! The wasm build runs one VM per worker and merges their counts through
//! Envoy's shared data. Here the workers share memory: each response of a
//! guarded split is recorded into the configuration's one watch under a
//! lock (guarded splits only), and every tenth of a second it merges into
//! a record kept by the module for the whole process, under the split's
//! fingerprint, as the wasm build keeps it in shared data. That record is
//! what makes a trip outlive a push that leaves the split unchanged, and
//! where the sequential test is judged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use turnout::plan::Plan;
use turnout::stats::Class;
use turnout::watch::{Event, SharedStore, Watch};

/// How often the watch merges into the process's record, where the
/// sequential test is judged: a tenth of a second (the wasm build's tick
/// is half a second, but a native proxy serves several times the
/// requests in one; a merge costs a few microseconds).
const MERGE_EVERY_NS: u64 = 100_000_000;

/// The guard of one configuration.
pub struct Guard {
    watch: Mutex<Watch>,
    /// When the watch last merged (monotonic ns).
    merged_at: AtomicU64,
}

/// What happened to a split's guard: the host latches, logs and shows it.
pub enum Outcome {
    /// The split tripped here; log nothing yet (the merge records it).
    Latch(usize),
    /// A merge or restore reported it.
    Event(Event),
}

impl Guard {
    /// The guard of `plan`, or `None` when no split has one (the request
    /// path then takes no lock). Returns the trips restored from the
    /// process's record too.
    pub fn of(plan: &Plan) -> Option<(Guard, Vec<Event>)> {
        let mut watch = Watch::of(plan);
        if !watch.any() {
            return None;
        }
        let events = watch.restore(&ProcessStore);
        let guard = Guard {
            watch: Mutex::new(watch),
            merged_at: AtomicU64::new(0),
        };
        Some((guard, events))
    }

    /// A routed response of a split (`now_ns`: monotonic, never 0).
    pub fn observe(
        &self,
        split: usize,
        cluster: usize,
        class: Class,
        latency_ms: Option<u64>,
        now_ns: u64,
    ) -> Vec<Outcome> {
        let now_s = (now_ns / 1_000_000_000) as i64;
        let mut watch = self.watch.lock().unwrap_or_else(PoisonError::into_inner);
        let mut outcomes: Vec<Outcome> = watch
            .observe(split, cluster, class, latency_ms, now_s)
            .map(|_| Outcome::Latch(split))
            .into_iter()
            .collect();
        let last = self.merged_at.load(Ordering::Relaxed);
        if now_ns.saturating_sub(last) >= MERGE_EVERY_NS {
            self.merged_at.store(now_ns, Ordering::Relaxed);
            let events = watch.merge(&ProcessStore, now_s);
            outcomes.extend(events.into_iter().map(Outcome::Event));
        }
        outcomes
    }

    /// The configuration is being replaced: merge what was recorded since
    /// the last merge, so no count and no trip is lost.
    pub fn flush(&self, now_ns: u64) {
        let now_s = (now_ns / 1_000_000_000) as i64;
        let mut watch = self.watch.lock().unwrap_or_else(PoisonError::into_inner);
        watch.merge(&ProcessStore, now_s);
    }
}

/// The guard's records for the whole process, by key, with a version for
/// compare-and-swap: what Envoy's shared data is to the wasm build.
struct ProcessStore;

/// A record's bytes and its version.
type Record = (Vec<u8>, u32);

static RECORDS: Mutex<Option<HashMap<String, Record>>> = Mutex::new(None);

impl SharedStore for ProcessStore {
    fn get(&self, key: &str) -> Option<Record> {
        let records = RECORDS.lock().unwrap_or_else(PoisonError::into_inner);
        let found = records.as_ref().and_then(|r| r.get(key)).cloned();
        Some(found.unwrap_or_default())
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Option<bool> {
        let mut records = RECORDS.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = records
            .get_or_insert_with(HashMap::new)
            .entry(key.to_string())
            .or_default();
        if entry.1 != cas {
            return Some(false);
        }
        *entry = (value.to_vec(), cas.wrapping_add(1));
        Some(true)
    }
}
