//! What a worker keeps ([`Local`]) and what the workers share ([`Merged`]).

use super::judge;
use super::sprt::{Batch, ErrorRatioTest};
use super::window::Window;
use super::{GuardPlan, Trip};
use crate::stats::Class;

/// One worker's guard state for one split: its own window, judged on every
/// response, and the delta it has not merged yet.
#[derive(Clone, Debug, PartialEq)]
pub struct Local {
    window: Window,
    delta: Window,
}

impl Local {
    /// `clusters`: the split's, stable first.
    pub fn new(plan: &GuardPlan, clusters: usize) -> Local {
        Local {
            window: Window::new(plan, clusters),
            delta: Window::new(plan, clusters),
        }
    }

    /// Counts one response of `cluster` (0 is stable) at `now_s` (Unix
    /// seconds). No host call, no allocation.
    pub fn record(&mut self, now_s: i64, cluster: usize, class: Class, latency_ms: Option<u64>) {
        self.window.record(now_s, cluster, class, latency_ms);
        self.delta.record(now_s, cluster, class, latency_ms);
    }

    /// Moves the window to `now_s`, dropping what fell out of it (a worker
    /// that judges without having recorded for a while).
    pub fn advance(&mut self, now_s: i64) {
        self.window.advance(now_s);
    }

    /// The first limit this worker's own window breaches (error rate, p99,
    /// p95 ratio; the error ratio is judged on the merged state only).
    pub fn judge(&self) -> Option<Trip> {
        judge::window_limits(&self.window)
    }

    pub fn window(&self) -> &Window {
        &self.window
    }

    /// What was recorded since the last [`Local::clear_delta`]: absorb it
    /// into the merged state, then clear it once that state is written.
    pub fn delta(&self) -> &Window {
        &self.delta
    }

    pub fn clear_delta(&mut self) {
        self.delta.clear();
    }
}

/// The sum of every worker's deltas, kept by the host as bytes: the merged
/// window, one sequential test per target, and the trip once latched.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    pub(super) window: Window,
    /// `tests[i]` tests target `i + 1`.
    pub(super) tests: Vec<ErrorRatioTest>,
    pub(super) trip: Option<Trip>,
}

impl Merged {
    pub fn new(plan: &GuardPlan, clusters: usize) -> Merged {
        Merged {
            window: Window::new(plan, clusters),
            tests: vec![ErrorRatioTest::default(); clusters.saturating_sub(1)],
            trip: None,
        }
    }

    /// Adds a worker's delta at `now_s`, and folds it into each target's
    /// sequential test as one batch. A delta of another layout is ignored.
    pub fn absorb(&mut self, now_s: i64, delta: &Window) {
        let added = self.window.add(now_s, delta);
        let Some(k) = self.window.plan.max_error_ratio else {
            return;
        };
        let Some(stable) = added.first() else {
            return;
        };
        for (test, target) in self.tests.iter_mut().zip(&added[1..]) {
            let batch = Batch {
                target_responses: target.responses,
                target_errors: target.errors,
                stable_responses: stable.responses,
                stable_errors: stable.errors,
            };
            test.fold(now_s, k, batch);
        }
    }

    /// The first limit the merged state breaches: the window's limits,
    /// then the sequential tests.
    pub fn judge(&self) -> Option<Trip> {
        judge::window_limits(&self.window)
            .or_else(|| judge::window_error_ratio(&self.window, &self.tests))
    }

    /// Latches a trip (this state's own, or one a worker saw in its own
    /// window) for every worker to follow; the first one stays. Returns
    /// whether this one was latched.
    pub fn latch(&mut self, trip: Trip) -> bool {
        if self.trip.is_some() {
            return false;
        }
        self.trip = Some(trip);
        true
    }

    /// The latched trip.
    pub fn trip(&self) -> Option<Trip> {
        self.trip
    }

    pub fn window(&self) -> &Window {
        &self.window
    }

    /// The sequential tests: `tests()[i]` tests target `i + 1`.
    pub fn tests(&self) -> &[ErrorRatioTest] {
        &self.tests
    }
}
