//! The runtime's side of shadow traffic: what a settled pair is counted
//! as (outcome, parts, fields and noise, with field counters defined as
//! they are first seen), and the copies' stop recorded for the whole proxy
//! and followed by every worker.

use super::{lock, ConfigHost, Level, Runtime};
use crate::shadow::{Outcome, Settled, Slot};

impl<H: ConfigHost> Runtime<H> {
    /// Counts, logs and shows what a settled pair came to.
    pub(super) fn count_settled(&self, settled: Settled) {
        let split = settled.split;
        if let Some(outcome) = settled.outcome {
            self.count_outcome(split, outcome);
        }
        for part in &settled.parts {
            let counter = self.layout.shadow_mismatch(split, *part);
            if let Some(id) = counter.and_then(|c| self.counter(c)) {
                self.host.increment(id, 1);
            }
        }
        let name = &self.plan.splits[split].name;
        for (kind, slots) in [(0, &settled.fields), (1, &settled.noise)] {
            for (slot, label) in slots {
                if let Some(id) = self.field_counter(split, kind, slot, name, label) {
                    self.host.increment(id, 1);
                }
            }
        }
        let histogram = self
            .layout
            .shadow_latency(split)
            .and_then(|h| self.histogram(h));
        if let (Some(id), Some(ms)) = (histogram, settled.latency_ms) {
            self.host.record(id, ms);
        }
        if let Some(line) = &settled.mismatch {
            self.host.log(Level::Info, line);
        }
        if let Some(line) = &settled.stopped {
            // One line per proxy: the worker that records the stop first
            // in the shared record says it.
            if self.record_shadow_stop(split) {
                self.host.log(Level::Warn, line);
            }
            self.show_shadow_stopped(split);
        }
    }

    /// The shared record of split `split`'s stopped copies, under its
    /// fingerprint: a push that keeps the split keeps them stopped, one
    /// that changes it starts anew (as the guard's trips).
    pub(super) fn shadow_key(&self, split: usize) -> Option<String> {
        let split = self.plan.splits.get(split)?;
        Some(format!("turnout.shadow.{:016x}", split.fingerprint))
    }

    /// Records that split `split`'s copies stopped; `true` when this
    /// runtime is the first to (or the record cannot say: the line is
    /// then written rather than lost).
    pub(super) fn record_shadow_stop(&self, split: usize) -> bool {
        let Some(key) = self.shadow_key(split) else {
            return true;
        };
        match self.host.get(&key) {
            Some((value, _)) if !value.is_empty() => false,
            Some((_, cas)) => self.host.set(&key, b"1", cas) != Some(false),
            None => true,
        }
    }

    pub(super) fn show_shadow_stopped(&self, split: usize) {
        let gauge = self.layout.shadow_tripped(split);
        if let Some(Some(id)) = gauge.and_then(|g| self.gauges.get(g)) {
            self.host.set_gauge(*id, 1);
        }
    }

    /// Stops the copies of every shadowed split that stopped in another
    /// worker, or in an earlier configuration with the same split: at the
    /// tick, and when a configuration is applied.
    pub(super) fn follow_shadow_stops(&self) {
        let Some(book) = &self.book else { return };
        for (split, plan) in self.plan.splits.iter().enumerate() {
            if plan.shadow.is_none() || lock(book).stopped(split) {
                continue;
            }
            let recorded = self
                .shadow_key(split)
                .and_then(|key| self.host.get(&key))
                .is_some_and(|(value, _)| !value.is_empty());
            if recorded {
                lock(book).follow(split);
                self.show_shadow_stopped(split);
            }
        }
    }

    pub(super) fn count_outcome(&self, split: usize, outcome: Outcome) {
        let counter = self.layout.shadow_outcome(split, outcome);
        if let Some(id) = counter.and_then(|c| self.counter(c)) {
            self.host.increment(id, 1);
        }
    }

    /// The counter of a field's slot (`kind` 0: differing, 1: noise),
    /// defined for split `name` and field `label` the first time the slot
    /// is used.
    pub(super) fn field_counter(
        &self,
        split: usize,
        kind: usize,
        slot: &Slot,
        name: &str,
        label: &str,
    ) -> Option<H::Metric> {
        let mut fields = lock(&self.fields);
        let ids = fields.get_mut(split)?.get_mut(kind)?;
        if ids.len() <= slot.index {
            ids.resize(slot.index + 1, None);
        }
        if ids[slot.index].is_none() {
            ids[slot.index] = self.host.define_field(kind == 1, name, label);
        }
        ids[slot.index]
    }
}
