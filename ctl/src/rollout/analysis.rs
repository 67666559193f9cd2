//! Judging a step: the target against the stable cluster over the hold so
//! far, by the analysis fields with the meaning the guard gives them, and
//! by the guard's own judge (`turnout::guard::judge`), which reads a
//! [`Side`] scraped from the proxies' metrics as it reads a guard's window:
//! the error rate and p99 against absolute limits, on evidence beyond
//! noise; the p95 against stable's (above the guard's floor); and the
//! guard's own sequential test of the error ratio. None of them is judged
//! before the target has `min_requests` responses: no traffic is no
//! evidence, never a pass and never a failure.
//!
//! The sequential test ([`ErrorRatioTest`]) is fed one batch per interval,
//! the counts between two scrapes, and lives for the whole rollout, not a
//! step: its chance of a false alarm stays under `alpha` however many
//! checks the rollout makes, and a failure that starts at the fourth step
//! does not have to climb back the evidence of the three healthy ones (the
//! test averages over start times).
//!
//! When the split has a shadow and the plan gates on it, its copies are
//! judged too ([`shadow`]); a shadow-only step (weight 0) is judged on the
//! copies alone, never on the target's own (absent) responses.

mod shadow;

use std::collections::BTreeMap;

use turnout::guard::judge::{self, Breach, Evidence};
use turnout::guard::sprt::{Batch, ErrorRatioTest};
use turnout::guard::GuardPlan;

pub use self::shadow::{Copies, Gate, GateBreach};
use crate::rollout::plan::ShadowGates;

/// One cluster's responses over a stretch of time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Side {
    pub responses: u64,
    pub errors: u64,
    /// Latency counts by the bits of each bucket's upper bound `le`, as
    /// Envoy's histogram has them: cumulative (a bucket counts every
    /// latency up to its bound), the `+Inf` bucket counting all.
    pub buckets: BTreeMap<u64, u64>,
}

/// The target and stable clusters over the same stretch, and the copies
/// the split's shadow sent meanwhile (none without a shadow).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sides {
    pub target: Side,
    pub stable: Side,
    pub copies: Copies,
}

/// The proxies whose guard tripped the split, and those whose shadow
/// tripped (stopped copying).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tripped {
    pub guard: Vec<String>,
    pub shadow: Vec<String>,
}

impl Side {
    pub fn add(&mut self, other: &Side) {
        self.responses += other.responses;
        self.errors += other.errors;
        for (&le, &n) in &other.buckets {
            *self.buckets.entry(le).or_default() += n;
        }
    }
}

impl Evidence for Side {
    fn responses(&self) -> u64 {
        self.responses
    }

    fn errors(&self) -> u64 {
        self.errors
    }

    /// Latencies recorded: the count of the highest bucket.
    fn timed(&self) -> u64 {
        self.buckets.values().copied().max().unwrap_or(0)
    }

    /// How many latencies were over `limit_ms`: exact when the limit is a
    /// bucket bound (Envoy's 500 ms is), else interpolated inside its
    /// bucket as the quantiles are.
    fn over(&self, limit_ms: f64) -> u64 {
        let total = self.timed();
        let mut lower = (0.0, 0u64);
        for (&bits, &count) in &self.buckets {
            let le = f64::from_bits(bits);
            if le >= limit_ms {
                if le.is_infinite() {
                    return total - lower.1;
                }
                let inside = count.saturating_sub(lower.1) as f64;
                let below = lower.1 as f64 + inside * (limit_ms - lower.0) / (le - lower.0);
                return total.saturating_sub(below.round() as u64);
            }
            lower = (le, count);
        }
        total.saturating_sub(lower.1)
    }

    /// The `q` quantile in ms, interpolated inside its bucket as
    /// Prometheus' `histogram_quantile` does; a rank in the `+Inf` bucket
    /// reads as the highest finite bound. `None` without latencies.
    fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.timed();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut lower = (0.0, 0u64);
        for (&bits, &count) in &self.buckets {
            let le = f64::from_bits(bits);
            if count as f64 >= rank {
                if le.is_infinite() {
                    return Some(lower.0);
                }
                let inside = count.saturating_sub(lower.1);
                if inside == 0 {
                    return Some(le);
                }
                let at = (rank - lower.1 as f64) / inside as f64;
                return Some(lower.0 + (le - lower.0) * at);
            }
            lower = (le, count);
        }
        Some(lower.0)
    }
}

impl Sides {
    pub fn add(&mut self, other: &Sides) {
        self.target.add(&other.target);
        self.stable.add(&other.stable);
        self.copies.add(&other.copies);
    }
}

/// Why a step failed.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// These proxies' guards tripped the split.
    GuardTripped(Vec<String>),
    /// A limit was breached, as the guard judges it (for the error ratio,
    /// the measured ratio of the error rates in the hold; the test's
    /// evidence decided).
    Limit(Breach),
    /// These proxies' shadows tripped: the copies stopped, the new side
    /// failing them.
    ShadowTripped(Vec<String>),
    /// A shadow gate was breached beyond noise.
    Gate(GateBreach),
    /// Proxies refused the step's config (node, Envoy's message), as the
    /// fleet server reports.
    Nacked(Vec<(String, String)>),
    /// The fleet server refused the file, so it is not served.
    NotServed(Vec<String>),
}

/// The judgement of one interval of a step's hold.
#[derive(Clone, Debug, PartialEq)]
pub enum StepVerdict {
    /// Nothing breached; the hold goes on.
    Ok,
    /// The hold is over and the target passed with enough traffic.
    Pass,
    /// The hold is over but the target has too few responses: it goes on.
    LowTraffic {
        have: u64,
        need: u64,
    },
    /// A shadow-only step's hold is over with too few compared copies.
    LowCopies {
        have: u64,
        need: u64,
    },
    /// The hold is over, but the error rate or p99 is over its limit by
    /// less than the evidence a failure needs: it goes on until the
    /// evidence says either way. A step never advances over a limit.
    Unsettled(Breach),
    /// As [`StepVerdict::Unsettled`], for a shadow gate.
    GateUnsettled(GateBreach),
    Fail(Failure),
}

/// The limits and the rollout's sequential test.
pub struct Judge {
    pub plan: GuardPlan,
    /// The shadow's gates, when its copies are judged: the split has a
    /// shadow and the plan gates on it (a gate, or a shadow-only step).
    pub shadow: Option<ShadowGates>,
    test: ErrorRatioTest,
}

impl Judge {
    pub fn new(plan: GuardPlan) -> Judge {
        Judge {
            plan,
            shadow: None,
            test: ErrorRatioTest::default(),
        }
    }

    /// Adds one interval's counts to the sequential test, at `now_s`.
    pub fn fold(&mut self, now_s: i64, interval: &Sides) {
        if let Some(k) = self.plan.max_error_ratio {
            let batch = Batch {
                target_responses: interval.target.responses,
                target_errors: interval.target.errors,
                stable_responses: interval.stable.responses,
                stable_errors: interval.stable.errors,
            };
            self.test.fold(now_s, k, batch);
        }
    }

    /// ln of the sequential test's evidence (0 at the start; it rejects at
    /// ln(1/alpha)).
    pub fn evidence(&self) -> f64 {
        self.test.log_evidence()
    }

    /// The first failure the proxies' guards or the counts show: guard,
    /// then error rate, p99, p95 ratio and error ratio, as the guard
    /// orders them, then the shadow (tripped, then its gates) when it is
    /// judged. `hold` is the step's counts so far. The rollout has one
    /// target, so its sequential test is judged at the plan's `alpha`. A
    /// shadow-only step judges no target limit: the target has no traffic
    /// of its own but pins and forced requests, which are no sample.
    pub fn failure(&self, hold: &Sides, tripped: &Tripped, shadow_only: bool) -> Option<Failure> {
        if !tripped.guard.is_empty() {
            return Some(Failure::GuardTripped(tripped.guard.clone()));
        }
        let (plan, target, stable) = (&self.plan, &hold.target, &hold.stable);
        let limits = || {
            judge::limits(plan, target, stable)
                .or_else(|| judge::error_ratio(plan, &self.test, plan.alpha, target, stable))
                .map(Failure::Limit)
        };
        let shadow = |gates: &ShadowGates| {
            if !tripped.shadow.is_empty() {
                return Some(Failure::ShadowTripped(tripped.shadow.clone()));
            }
            shadow::breach(gates, &hold.copies, plan.min_requests).map(Failure::Gate)
        };
        let limits = if shadow_only { None } else { limits() };
        limits.or_else(|| self.shadow.as_ref().and_then(shadow))
    }

    /// The verdict of an interval of the hold: a failure at once; else,
    /// once the hold is over, a pass with `min_requests` or more target
    /// responses in it (compared copies, in a shadow-only step), and a
    /// longer hold with fewer or with a limit breached as measured but not
    /// beyond noise.
    pub fn verdict(
        &self,
        hold: &Sides,
        tripped: &Tripped,
        hold_over: bool,
        shadow_only: bool,
    ) -> StepVerdict {
        if let Some(failure) = self.failure(hold, tripped, shadow_only) {
            return StepVerdict::Fail(failure);
        }
        if !hold_over {
            return StepVerdict::Ok;
        }
        let need = u64::from(self.plan.min_requests);
        let over_gate = || {
            let gates = self.shadow.as_ref()?;
            shadow::over_as_measured(gates, &hold.copies).map(StepVerdict::GateUnsettled)
        };
        if shadow_only {
            return match hold.copies.compared() {
                have if have < need => StepVerdict::LowCopies { have, need },
                _ => over_gate().unwrap_or(StepVerdict::Pass),
            };
        }
        match hold.target.responses {
            have if have < need => StepVerdict::LowTraffic { have, need },
            _ => judge::over_as_measured(&self.plan, &hold.target)
                .map(StepVerdict::Unsettled)
                .or_else(over_gate)
                .unwrap_or(StepVerdict::Pass),
        }
    }
}

#[cfg(test)]
mod tests;
