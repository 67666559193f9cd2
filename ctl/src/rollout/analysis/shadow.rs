//! Judging a shadow's copies in a step's hold: the plan's gates
//! (`analysis.max_mismatch_rate`, `analysis.max_shadow_error_rate`) over
//! the copies counted from `turnout_shadow_total`, by the core's rule for
//! every rate limit (`turnout::guard::judge::rate_breached`: only with
//! `min_requests` of evidence, and only beyond noise), so a low-traffic
//! step that saw 1 mismatch in 40 has not failed; and, as the error rate
//! is, a step never passes while a gate is over its limit as measured.

use turnout::guard::judge::{rate_breached, rate_over};

use crate::rollout::plan::ShadowGates;

/// A shadow's copies over a stretch, summed over the proxies. Skipped
/// copies were never sent, so they are not here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Copies {
    /// Compared, and the two answers agreed (outcome `match`).
    pub matched: u64,
    /// Compared, and they differed (outcome `mismatch`).
    pub mismatched: u64,
    /// Sent, but no answer or too late (outcomes `error`, `timeout`).
    pub failed: u64,
}

impl Copies {
    pub fn compared(&self) -> u64 {
        self.matched + self.mismatched
    }

    /// Copies sent: compared or failed.
    pub fn sent(&self) -> u64 {
        self.compared() + self.failed
    }

    pub fn add(&mut self, other: &Copies) {
        self.matched += other.matched;
        self.mismatched += other.mismatched;
        self.failed += other.failed;
    }

    /// Mismatches over compared copies; `None` with none compared.
    pub fn mismatch_rate(&self) -> Option<f64> {
        let n = self.compared();
        (n > 0).then(|| self.mismatched as f64 / n as f64)
    }
}

/// Which gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// `max_mismatch_rate`: mismatches over compared copies.
    Mismatch,
    /// `max_shadow_error_rate`: failed copies over copies sent.
    ShadowError,
}

/// A gate's figures: `count` of `of` against `limit`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GateBreach {
    pub gate: Gate,
    pub count: u64,
    pub of: u64,
    pub limit: f64,
}

impl GateBreach {
    pub fn rate(&self) -> f64 {
        if self.of == 0 {
            0.0
        } else {
            self.count as f64 / self.of as f64
        }
    }
}

/// Each gate set, with its figures in `copies`. The shadow error rate
/// counts over copies sent, not compared: a new side that fails every copy
/// has none compared, and must still fail.
fn each(gates: &ShadowGates, copies: &Copies) -> impl Iterator<Item = GateBreach> {
    let figures = [
        (
            Gate::Mismatch,
            gates.max_mismatch_rate,
            copies.mismatched,
            copies.compared(),
        ),
        (
            Gate::ShadowError,
            gates.max_shadow_error_rate,
            copies.failed,
            copies.sent(),
        ),
    ];
    figures.into_iter().filter_map(|(gate, limit, count, of)| {
        Some(GateBreach {
            gate,
            count,
            of,
            limit: limit?,
        })
    })
}

/// The first gate breached beyond noise, once it has `min_requests`.
pub fn breach(gates: &ShadowGates, copies: &Copies, min_requests: u32) -> Option<GateBreach> {
    each(gates, copies).find(|b| rate_breached(b.count, b.of, min_requests, b.limit))
}

/// The first gate over its limit as measured, evidence or not.
pub fn over_as_measured(gates: &ShadowGates, copies: &Copies) -> Option<GateBreach> {
    each(gates, copies).find(|b| rate_over(b.count, b.of, b.limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATES: ShadowGates = ShadowGates {
        max_mismatch_rate: Some(0.01),
        max_shadow_error_rate: Some(0.05),
    };

    fn copies(matched: u64, mismatched: u64, failed: u64) -> Copies {
        Copies {
            matched,
            mismatched,
            failed,
        }
    }

    #[test]
    fn a_gate_fails_beyond_noise_with_min_requests_only() {
        // 1 mismatch in 40 (2.5 % against 1 %): over, not beyond noise.
        let low = copies(39, 1, 0);
        assert_eq!(breach(&GATES, &low, 20), None);
        let over = over_as_measured(&GATES, &low).map(|b| (b.gate, b.count, b.of));
        assert_eq!(over, Some((Gate::Mismatch, 1, 40)));
        // 41 in 1,000 (4.1 %) is evidence.
        let b = breach(&GATES, &copies(959, 41, 0), 100).map(|b| (b.gate, b.count, b.of));
        assert_eq!(b, Some((Gate::Mismatch, 41, 1000)));
        // Every copy failing: none compared, but the error gate fails once
        // min_requests were sent.
        assert_eq!(breach(&GATES, &copies(0, 0, 19), 20), None);
        let b = breach(&GATES, &copies(0, 0, 20), 20).map(|b| (b.gate, b.rate()));
        assert_eq!(b, Some((Gate::ShadowError, 1.0)));
        // Within the gates, or no gate set: nothing.
        assert_eq!(over_as_measured(&GATES, &copies(1000, 10, 50)), None);
        let none = ShadowGates::default();
        assert_eq!(breach(&none, &copies(0, 1000, 1000), 1), None);
    }
}
