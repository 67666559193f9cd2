//! When a split stops copying: the copies' failures over a sliding window,
//! judged as the guard judges `max_error_rate`.
//!
//! A copy fails when it gets no answer, times out, or answers 5xx where
//! stable did not. The window is the guard's own ([`Window`], one
//! "cluster": the copies), counting a failure as a 5xx and any other
//! copy as a success, and the limit trips when the window holds
//! `min_requests` copies and its failure rate is over `max_error_rate`
//! beyond noise ([`rate_breached`], the guard's rule): a few failures in a small window do
//! not stop the copies, a new side that fails every copy does at the
//! `min_requests`-th. A trip is latched until the configuration changes
//! (the shell makes a new window for a new plan).
//!
//! This is one worker's window. Workers may also add theirs together as
//! the guard's do (`Window::add`), since the slots of every worker line up.

use super::ShadowPlan;
use crate::guard::judge::rate_breached;
use crate::guard::{ErrorClasses, GuardPlan, Window};
use crate::stats::Class;

/// How a copy ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyEnd {
    /// An answer with this status.
    Answered(u16),
    /// No answer: a reset, a refused connection, no healthy host.
    NoAnswer,
    TimedOut,
}

/// Whether a copy failed, given the status stable answered.
pub fn copy_failed(stable_status: u16, end: CopyEnd) -> bool {
    let server_error = |s: u16| (500..=599).contains(&s);
    match end {
        CopyEnd::Answered(status) => server_error(status) && !server_error(stable_status),
        CopyEnd::NoAnswer | CopyEnd::TimedOut => true,
    }
}

/// A tripped shadow: what the window held when it tripped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShadowTrip {
    pub failures: u64,
    pub copies: u64,
    pub limit: f64,
}

impl ShadowTrip {
    pub fn rate(&self) -> f64 {
        if self.copies == 0 {
            0.0
        } else {
            self.failures as f64 / self.copies as f64
        }
    }

    /// The warning line: `shadow tripped: split=users cluster=fastapi
    /// failed=12 copies=50 rate=0.24 limit=0.05; copies stop until the
    /// split's configuration changes`.
    pub fn log_line(&self, split: &str, cluster: &str) -> String {
        format!(
            "shadow tripped: split={split} cluster={cluster} failed={} copies={} rate={} limit={}; \
             copies stop until the split's configuration changes",
            self.failures,
            self.copies,
            crate::guard::number(self.rate()),
            crate::guard::number(self.limit)
        )
    }
}

/// One split's copy failures over the window, and its latched trip.
#[derive(Clone, Debug, PartialEq)]
pub struct FailureWindow {
    window: Window,
    min_requests: u32,
    limit: f64,
    trip: Option<ShadowTrip>,
}

impl FailureWindow {
    pub fn new(plan: &ShadowPlan) -> FailureWindow {
        let guard = GuardPlan {
            window_s: plan.window_s,
            min_requests: plan.min_requests,
            errors: ErrorClasses::NONE.with(Class::ServerError),
            max_error_rate: Some(plan.max_error_rate),
            ..GuardPlan::default()
        };
        FailureWindow {
            window: Window::new(&guard, 1),
            min_requests: plan.min_requests,
            limit: plan.max_error_rate,
            trip: None,
        }
    }

    /// Counts one copy that was sent (a skipped one is not) at `now_s`
    /// (Unix seconds). Nothing is counted once tripped.
    pub fn record(&mut self, now_s: i64, failed: bool) {
        if self.trip.is_some() {
            return;
        }
        let class = if failed {
            Class::ServerError
        } else {
            Class::Success
        };
        self.window.record(now_s, 0, class, None);
    }

    /// The trip, latched: judged anew until it trips, then the same.
    pub fn judge(&mut self) -> Option<ShadowTrip> {
        if self.trip.is_none() {
            let counts = self.window.counts(0);
            if rate_breached(
                counts.errors,
                counts.responses,
                self.min_requests,
                self.limit,
            ) {
                self.trip = Some(ShadowTrip {
                    failures: counts.errors,
                    copies: counts.responses,
                    limit: self.limit,
                });
            }
        }
        self.trip
    }

    /// Moves the window to `now_s`: copies older than it stop counting.
    pub fn advance(&mut self, now_s: i64) {
        self.window.advance(now_s);
    }

    pub fn is_tripped(&self) -> bool {
        self.trip.is_some()
    }

    /// The window itself, to add workers' windows together.
    pub fn window(&self) -> &Window {
        &self.window
    }
}
