//! The sliding window: per cluster, the responses, errors, slow responses
//! and latency histogram of the last `window_s` seconds, in slots keyed by
//! absolute Unix time so that every worker's slots line up with every
//! other's and a merge adds slot to slot.
//!
//! A window holds at most [`MAX_SLOTS`] slots. Up to 30 s a slot is one
//! second; a longer window has coarser slots (`ceil(window_s / 30)` seconds
//! each), which keeps the merged state, copied at every tick, small. The
//! window is the current (partial) slot and the `ceil(window_s / slot) - 1`
//! before it, so it covers `window_s` give or take one slot (29 to 30 s at
//! the default, 44 to 46 s for 45 s). Running totals over the live slots are kept beside them, so
//! judging reads totals (O(1) for the error rate and the p99, O(buckets) for
//! a p95) and only a slot that expires is walked.

use super::histogram::{self, BUCKETS};
use super::judge::Evidence;
use super::GuardPlan;
use crate::stats::Class;

/// The most slots a window keeps.
pub const MAX_SLOTS: u32 = 30;

// The fields of one cluster's cell, in a slot or in the totals.
pub(super) const RESPONSES: usize = 0;
pub(super) const ERRORS: usize = 1;
/// Responses with a latency, and of those the ones over `max_p99_ms`.
pub(super) const TIMED: usize = 2;
pub(super) const SLOW: usize = 3;
pub(super) const HIST: usize = 4;
pub(super) const STRIDE: usize = HIST + BUCKETS;

/// How a window is cut: the same for every worker of a configuration, so
/// their windows can be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The split's clusters: 0 is stable, then the targets.
    pub clusters: usize,
    pub slot_s: i64,
    pub slots: usize,
}

impl Layout {
    pub fn of(plan: &GuardPlan, clusters: usize) -> Layout {
        let window = i64::from(plan.window_s.max(1));
        let slot_s = (window + i64::from(MAX_SLOTS) - 1) / i64::from(MAX_SLOTS);
        let slots = ((window + slot_s - 1) / slot_s) as usize;
        Layout {
            clusters,
            slot_s,
            slots,
        }
    }
}

/// One cluster's counts over the live slots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub responses: u64,
    pub errors: u64,
    pub timed: u64,
    pub slow: u64,
}

/// One cluster's totals over a window, as the limits read them.
#[derive(Clone, Copy, Debug)]
pub struct ClusterTotals<'w> {
    window: &'w Window,
    cluster: usize,
    counts: Counts,
}

impl Evidence for ClusterTotals<'_> {
    fn responses(&self) -> u64 {
        self.counts.responses
    }

    fn errors(&self) -> u64 {
        self.counts.errors
    }

    fn timed(&self) -> u64 {
        self.counts.timed
    }

    /// The latencies over the window's own `max_p99_ms`, counted as they
    /// came (exact, no bucket error): the one limit the judge asks about,
    /// since it judges a window by the window's plan.
    fn over(&self, _limit_ms: f64) -> u64 {
        self.counts.slow
    }

    fn quantile(&self, q: f64) -> Option<f64> {
        self.window.quantile(self.cluster, q)
    }
}

/// Counts in time slots, per cluster, with their running totals.
#[derive(Clone, Debug)]
pub struct Window {
    pub(super) plan: GuardPlan,
    pub(super) layout: Layout,
    /// Latencies over this count as slow (`floor(max_p99_ms)`).
    slow_above: u64,
    /// The newest slot number (Unix time / `slot_s`); `None` until the
    /// first record. Ring position `p` holds the live slot `s` with
    /// `s mod slots == p`.
    pub(super) current: Option<i64>,
    /// `slots * clusters` cells of [`STRIDE`] fields.
    pub(super) cells: Vec<u32>,
    /// `clusters` cells: the sums of the live slots.
    pub(super) totals: Vec<u64>,
    /// Per cluster, a bucket at or above its highest non-empty one, so a
    /// high quantile's walk down starts near the data (latencies of 200 ms
    /// leave the top 50 buckets empty) rather than at 131 s.
    top: Vec<usize>,
}

/// Two windows are equal when they count the same: the quantile hint
/// (`top`) is how one got there.
impl PartialEq for Window {
    fn eq(&self, other: &Window) -> bool {
        self.plan == other.plan
            && self.layout == other.layout
            && self.current == other.current
            && self.cells == other.cells
            && self.totals == other.totals
    }
}

impl Window {
    pub fn new(plan: &GuardPlan, clusters: usize) -> Window {
        let layout = Layout::of(plan, clusters);
        Window {
            plan: *plan,
            layout,
            slow_above: plan.max_p99_ms.map_or(u64::MAX, |l| l.floor() as u64),
            current: None,
            cells: vec![0; layout.slots * clusters * STRIDE],
            totals: vec![0; clusters * STRIDE],
            top: vec![0; clusters],
        }
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Counts one response. `latency_ms` is `None` when the clock could not
    /// be read: the response counts for the error rate, not the latencies.
    /// A cluster out of range or a time older than the window is ignored.
    /// No allocation; O(1) unless the time moved on to a new slot.
    pub fn record(&mut self, now_s: i64, cluster: usize, class: Class, latency_ms: Option<u64>) {
        if cluster >= self.layout.clusters {
            return;
        }
        let Some(cell) = self.cell_at(now_s.div_euclid(self.layout.slot_s), cluster) else {
            return;
        };
        self.bump(cell, cluster, RESPONSES);
        if self.plan.errors.contains(class) {
            self.bump(cell, cluster, ERRORS);
        }
        if let Some(ms) = latency_ms {
            self.bump(cell, cluster, TIMED);
            if ms > self.slow_above {
                self.bump(cell, cluster, SLOW);
            }
            let bucket = histogram::bucket_of(ms);
            self.bump(cell, cluster, HIST + bucket);
            self.top[cluster] = self.top[cluster].max(bucket);
        }
    }

    /// Moves the window to `now_s`: slots that fall out of it are dropped.
    pub fn advance(&mut self, now_s: i64) {
        self.advance_to(now_s.div_euclid(self.layout.slot_s));
    }

    /// A cluster's counts over the window as of its last advance.
    pub fn counts(&self, cluster: usize) -> Counts {
        let Some(t) = self.totals.get(cluster * STRIDE..(cluster + 1) * STRIDE) else {
            return Counts::default();
        };
        Counts {
            responses: t[RESPONSES],
            errors: t[ERRORS],
            timed: t[TIMED],
            slow: t[SLOW],
        }
    }

    /// A cluster's totals over the window as of its last advance, to be
    /// judged.
    pub fn cluster(&self, cluster: usize) -> ClusterTotals<'_> {
        ClusterTotals {
            window: self,
            cluster,
            counts: self.counts(cluster),
        }
    }

    /// A cluster's latency quantile (`q` in 0..=1) over the window, in ms.
    pub fn quantile(&self, cluster: usize, q: f64) -> Option<f64> {
        let t = self.totals.get(cluster * STRIDE..(cluster + 1) * STRIDE)?;
        let top = self.top.get(cluster).copied().unwrap_or(BUCKETS - 1);
        histogram::quantile(&t[HIST..=HIST + top], t[TIMED], q)
    }

    /// Whether nothing is counted.
    pub fn is_empty(&self) -> bool {
        self.totals.iter().all(|&c| c == 0)
    }

    /// Forgets everything (a worker's delta, once merged).
    pub fn clear(&mut self) {
        if !self.is_empty() {
            self.cells.fill(0);
            self.totals.fill(0);
        }
        self.top.fill(0);
        self.current = None;
    }

    /// Adds `other`'s live slots into this window (both of one layout),
    /// after moving it to `now_s` or `other`'s newest slot, whichever is
    /// later. Slots of `other` already out of this window are dropped.
    /// Returns what was added, per cluster.
    pub fn add(&mut self, now_s: i64, other: &Window) -> Vec<Counts> {
        let mut added = vec![Counts::default(); self.layout.clusters];
        let Some(other_current) = other.current else {
            self.advance(now_s);
            return added;
        };
        if other.layout != self.layout {
            return added;
        }
        self.advance_to(now_s.div_euclid(self.layout.slot_s).max(other_current));
        for pos in 0..other.layout.slots {
            let slot = other.slot_at(pos, other_current);
            for (cluster, sum) in added.iter_mut().enumerate() {
                let from = other.cell_index(pos, cluster);
                let source = &other.cells[from..from + STRIDE];
                if source[RESPONSES] == 0 {
                    continue;
                }
                let Some(cell) = self.cell_at(slot, cluster) else {
                    continue;
                };
                for (field, &value) in source.iter().enumerate() {
                    if value > 0 {
                        self.add_to(cell, cluster, field, value);
                    }
                }
                self.top[cluster] = self.top[cluster].max(other.top[cluster]);
                sum.responses += u64::from(source[RESPONSES]);
                sum.errors += u64::from(source[ERRORS]);
                sum.timed += u64::from(source[TIMED]);
                sum.slow += u64::from(source[SLOW]);
            }
        }
        added
    }

    /// Sets the totals to the sums of the slots (after decoding them).
    pub(super) fn rebuild_totals(&mut self) {
        self.totals.fill(0);
        for (i, &value) in self.cells.iter().enumerate() {
            let cluster = (i / STRIDE) % self.layout.clusters;
            self.totals[cluster * STRIDE + i % STRIDE] += u64::from(value);
        }
        for (cluster, top) in self.top.iter_mut().enumerate() {
            let hist = &self.totals[cluster * STRIDE + HIST..(cluster + 1) * STRIDE];
            *top = hist.iter().rposition(|&c| c > 0).unwrap_or(0);
        }
    }

    // ---- slots ----

    /// The live slot that ring position `pos` holds when `current` is newest.
    pub(super) fn slot_at(&self, pos: usize, current: i64) -> i64 {
        let slots = self.layout.slots as i64;
        current - (current - pos as i64).rem_euclid(slots)
    }

    pub(super) fn cell_index(&self, pos: usize, cluster: usize) -> usize {
        (pos * self.layout.clusters + cluster) * STRIDE
    }

    /// The cell of `cluster` in slot `slot`, moving the window on if the
    /// slot is newer; `None` if the slot is already out of the window.
    pub(super) fn cell_at(&mut self, slot: i64, cluster: usize) -> Option<usize> {
        self.advance_to(slot);
        let current = self.current?;
        let slots = self.layout.slots as i64;
        if current.checked_sub(slot)? >= slots {
            return None;
        }
        Some(self.cell_index(slot.rem_euclid(slots) as usize, cluster))
    }

    fn advance_to(&mut self, slot: i64) {
        let slots = self.layout.slots as i64;
        match self.current {
            Some(current) if slot <= current => return,
            Some(current) if slot.checked_sub(current).is_some_and(|d| d < slots) => {
                for expired in current + 1..=slot {
                    self.expire(expired.rem_euclid(slots) as usize);
                }
            }
            _ => {
                if !self.is_empty() {
                    self.cells.fill(0);
                    self.totals.fill(0);
                }
            }
        }
        self.current = Some(slot);
    }

    /// Takes the slot at ring position `pos` out of the totals and zeroes it.
    fn expire(&mut self, pos: usize) {
        for cluster in 0..self.layout.clusters {
            let at = self.cell_index(pos, cluster);
            if self.cells[at + RESPONSES] == 0 {
                continue;
            }
            let total = cluster * STRIDE;
            for field in 0..STRIDE {
                let value = std::mem::take(&mut self.cells[at + field]);
                let sum = &mut self.totals[total + field];
                *sum = sum.saturating_sub(u64::from(value));
            }
        }
    }

    fn bump(&mut self, cell: usize, cluster: usize, field: usize) {
        self.add_to(cell, cluster, field, 1);
    }

    /// Adds to a slot's field and its total by what the slot could take
    /// (a slot saturates rather than wraps), so the totals stay the sums.
    fn add_to(&mut self, cell: usize, cluster: usize, field: usize, value: u32) {
        let slot = &mut self.cells[cell + field];
        let before = *slot;
        *slot = before.saturating_add(value);
        self.totals[cluster * STRIDE + field] += u64::from(*slot - before);
    }
}
