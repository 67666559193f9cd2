//! The guard at work in one worker: records each routed response of a
//! guarded split, judges at once, merges with the other workers' counts
//! through bytes the host keeps for all of them, and latches trips.
//!
//! Envoy runs one VM per worker, each seeing its share of the traffic.
//! Each worker keeps two states per guarded split: `delta`, what it
//! recorded since it last merged, and `view`, the merged state as it last
//! read it plus its own delta. On every response it judges its view, so a
//! failure one worker alone can see trips without waiting. On every tick
//! it adds its delta into the merged state (read, add, compare-and-swap
//! write: a worker that lost the race reads again), judges the sum of
//! every worker's counts (the sequential test is judged there only), and
//! reads whether another worker tripped the split. The merged record lives
//! under the split's fingerprint, so a config push that leaves the split's
//! JSON unchanged finds its counts and its trip again, and one that changes
//! it starts anew.
//!
//! Nothing here calls the host: the host hands in the time and a
//! [`SharedStore`], and acts on what comes back (latch, log, gauge).

use crate::guard::{GuardPlan, Local, Merged, Trip};
use crate::plan::Plan;
use crate::stats::Class;

/// Bytes shared by every worker, with a compare-and-swap version (Envoy's
/// shared data in the wasm build).
pub trait SharedStore {
    /// The value under `key` (empty when absent) and its version, or
    /// `None` if the store cannot say.
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Writes `value` if the version is still `cas`: `Some(false)` when
    /// another worker wrote first, `None` when the store failed.
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Option<bool>;
}

/// How many times a tick retries a merge that lost the race.
const MERGE_ATTEMPTS: usize = 8;

/// One guarded split's state in this worker.
struct SplitWatch {
    plan: GuardPlan,
    clusters: usize,
    key: String,
    local: Local,
    /// The split has tripped here (found locally or followed).
    tripped: Option<Trip>,
    /// The trip is in the merged record (written by this worker or
    /// another), so it needs no more writing.
    recorded: bool,
}

/// What the host must do after a tick or a restore.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    /// This worker recorded the split's trip first: log it (once per
    /// proxy) and show it.
    Tripped { split: usize, trip: Trip },
    /// Another worker, or an earlier configuration with the same split,
    /// tripped it: show it.
    Followed { split: usize },
}

/// Every guarded split of one configuration, in this worker.
pub struct Watch {
    splits: Vec<Option<SplitWatch>>,
}

impl Watch {
    pub fn of(plan: &Plan) -> Watch {
        let splits = plan
            .splits
            .iter()
            .map(|split| {
                let guard = split.guard?;
                let clusters = split.clusters.len();
                Some(SplitWatch {
                    plan: guard,
                    clusters,
                    key: format!("turnout.guard.{:016x}", split.fingerprint),
                    local: Local::new(&guard, clusters),
                    tripped: None,
                    recorded: false,
                })
            })
            .collect();
        Watch { splits }
    }

    /// Whether any split has a guard (the host ticks faster then).
    pub fn any(&self) -> bool {
        self.splits.iter().any(Option::is_some)
    }

    /// A routed response of `split`'s `cluster` (`now_s`: the host's
    /// monotonic clock in seconds, the same on every worker). Returns the
    /// trip if this response tripped the split here; the host then sends
    /// the split to stable at once (the next tick records the trip).
    pub fn observe(
        &mut self,
        split: usize,
        cluster: usize,
        class: Class,
        latency_ms: Option<u64>,
        now_s: i64,
    ) -> Option<Trip> {
        let watch = self.splits.get_mut(split)?.as_mut()?;
        if watch.tripped.is_some() {
            return None;
        }
        watch.local.record(now_s, cluster, class, latency_ms);
        let trip = watch.local.judge()?;
        watch.tripped = Some(trip);
        Some(trip)
    }

    /// Reads each guarded split's merged record and follows a trip found
    /// there: called when a configuration is applied, so a push that keeps
    /// a tripped split keeps it tripped from its first request.
    pub fn restore(&mut self, store: &impl SharedStore) -> Vec<Event> {
        let mut events = Vec::new();
        for (split, watch) in self.splits.iter_mut().enumerate() {
            let Some(watch) = watch else { continue };
            let merged = store
                .get(&watch.key)
                .and_then(|(bytes, _)| Merged::decode(&watch.plan, watch.clusters, &bytes));
            if let Some(trip) = merged.and_then(|m| m.trip()) {
                watch.tripped = Some(trip);
                watch.recorded = true;
                events.push(Event::Followed { split });
            }
        }
        events
    }

    /// The tick: adds each guarded split's delta to the shared record,
    /// judges the sum, and records or follows trips.
    pub fn merge(&mut self, store: &impl SharedStore, now_s: i64) -> Vec<Event> {
        let mut events = Vec::new();
        for (split, watch) in self.splits.iter_mut().enumerate() {
            if let Some(event) = watch.as_mut().and_then(|w| w.merge(split, store, now_s)) {
                events.push(event);
            }
        }
        events
    }
}

impl SplitWatch {
    fn merge(&mut self, split: usize, store: &impl SharedStore, now_s: i64) -> Option<Event> {
        self.local.advance(now_s);
        for _ in 0..MERGE_ATTEMPTS {
            let (bytes, cas) = store.get(&self.key)?;
            let mut merged = Merged::decode(&self.plan, self.clusters, &bytes)
                .unwrap_or_else(|| Merged::new(&self.plan, self.clusters));
            let earlier = merged.trip();
            if earlier.is_none() {
                merged.absorb(now_s, self.local.delta());
                if let Some(trip) = self.tripped.or_else(|| merged.judge()) {
                    merged.latch(trip);
                }
            }
            // With a trip recorded, or nothing of ours to add, there is
            // nothing to write (and no race to lose).
            let write =
                earlier.is_none() && (merged.trip().is_some() || !self.local.delta().is_empty());
            if write && !store.set(&self.key, &merged.encode(), cas)? {
                continue;
            }
            self.local.clear_delta();
            let trip = merged.trip()?;
            self.tripped = Some(trip);
            if self.recorded {
                return None;
            }
            self.recorded = true;
            // Only the worker that recorded the trip logs it; the others
            // (even one that had found it too) show it.
            return Some(match earlier {
                None => Event::Tripped { split, trip },
                Some(_) => Event::Followed { split },
            });
        }
        None
    }
}
