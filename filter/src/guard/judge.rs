//! The limits, judged per target: the absolute ones and the p95 ratio over
//! a window (a worker's own, or the merged one), the error ratio from the
//! sequential tests of the merged state. No allocation; O(1) for the error
//! rate and the p99, O(buckets) for the p95 ratio.

use super::sprt::ErrorRatioTest;
use super::window::{Counts, Window};
use super::{Rule, Trip};

/// The p95 ratio trips only when the target's p95 is also over this many
/// milliseconds: latencies are whole milliseconds, so below that a ratio is
/// mostly the clock's rounding (1 ms against 3 ms is "3x"). The shipped
/// alert `TurnoutCanaryLatencyP95AboveStable` has the same floor.
pub const P95_RATIO_MIN_MS: f64 = 25.0;

/// How strong the window's evidence must be before an absolute limit
/// trips: ln(1000) nats. See [`beyond_noise`].
pub const EVIDENCE_NATS: f64 = 6.907_755_278_982_137;

/// The first breached limit among the window's targets: error rate, p99,
/// then p95 ratio, target by target.
pub(super) fn window_limits(window: &Window) -> Option<Trip> {
    (1..window.layout.clusters).find_map(|target| target_limits(window, target))
}

fn target_limits(window: &Window, target: usize) -> Option<Trip> {
    let plan = &window.plan;
    let min = u64::from(plan.min_requests);
    let counts = window.counts(target);
    let trip = |rule, measured, limit| Trip {
        target,
        rule,
        measured,
        limit,
    };
    if let Some(limit) = plan.max_error_rate {
        if counts.responses >= min && beyond_noise(counts.errors, counts.responses, limit) {
            let rate = counts.errors as f64 / counts.responses as f64;
            return Some(trip(Rule::ErrorRate, rate, limit));
        }
    }
    if let Some(limit) = plan.max_p99_ms {
        // The nearest-rank p99 of n latencies is over the limit exactly
        // when more than floor(n / 100) of them are: counted as they come,
        // so this needs no histogram and has no bucket error. Whether more
        // than 1 % of all responses would be is the same question as an
        // error rate's.
        let over = counts.slow > counts.timed / 100;
        if counts.timed >= min && over && beyond_noise(counts.slow, counts.timed, 0.01) {
            // The histogram's estimate, but never below what the count
            // proves: a whole millisecond over the limit.
            let proven = limit.floor() + 1.0;
            let p99 = window.quantile(target, 0.99).unwrap_or(proven);
            return Some(trip(Rule::P99, p99.max(proven), limit));
        }
    }
    if let Some(limit) = plan.max_p95_ratio {
        let stable = window.counts(0);
        if counts.timed >= min && stable.timed >= min {
            let target_p95 = window.quantile(target, 0.95)?;
            if target_p95 > P95_RATIO_MIN_MS {
                // Never 0: the lowest bucket's estimate is above 0 ms.
                let stable_p95 = window.quantile(0, 0.95)?;
                let ratio = target_p95 / stable_p95;
                if ratio > limit {
                    return Some(trip(Rule::P95Ratio, ratio, limit));
                }
            }
        }
    }
    None
}

/// The first target whose sequential test rejects, once it has
/// `min_requests` responses in all. `alpha` is shared
/// among the targets (each is tested at `alpha / targets`), so the split's
/// chance of a false alarm stays at most `alpha`.
pub(super) fn error_ratio(window: &Window, tests: &[ErrorRatioTest]) -> Option<Trip> {
    let limit = window.plan.max_error_ratio?;
    let alpha = window.plan.alpha / tests.len().max(1) as f64;
    let min = u64::from(window.plan.min_requests);
    let rejected = tests
        .iter()
        .position(|t| t.target_responses() >= min && t.rejects(alpha))?;
    let target = rejected + 1;
    Some(Trip {
        target,
        rule: Rule::ErrorRatio,
        measured: rate_ratio(window.counts(target), window.counts(0)),
        limit,
    })
}

/// The target's error rate over stable's (infinite when stable had no
/// error and the target had): what a trip of `error_ratio` reports. The
/// rollout controller reports its failures the same way.
pub fn rate_ratio(target: Counts, stable: Counts) -> f64 {
    let rate = |c: Counts| {
        if c.responses == 0 {
            0.0
        } else {
            c.errors as f64 / c.responses as f64
        }
    };
    let (t, s) = (rate(target), rate(stable));
    if s > 0.0 {
        t / s
    } else if t > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// Whether `count` of `n` responses shows a rate above `limit` beyond
/// noise: the rate is over the limit, and a rate at the limit would give
/// that many or more with probability at most 1/1000 (the Chernoff bound
/// `exp(-n KL(count/n || limit))`, an exact upper bound on the binomial
/// tail). A bare point estimate trips a healthy target: with
/// `min_requests` 50 and a 1 % limit, one error in the first 50 responses
/// is 2 %, and a target at 0.5 % errors would trip in half the runs of
/// 10,000 requests. With the bound it trips in none, while a target
/// failing every request still trips at its `min_requests`-th response (1
/// of 1 is 4.6 nats at a 1 % limit), at 10 % errors after about 50
/// responses and at 2 % after about 1,800 in the window. O(1): two
/// logarithms, only when the rate is over the limit.
pub fn beyond_noise(count: u64, n: u64, limit: f64) -> bool {
    if n == 0 {
        return false;
    }
    let rate = count as f64 / n as f64;
    rate > limit && n as f64 * kl(rate, limit) >= EVIDENCE_NATS
}

/// The Kullback-Leibler divergence of Bernoulli(`r`) from Bernoulli(`p`),
/// for `r > p`.
fn kl(r: f64, p: f64) -> f64 {
    let term = |a: f64, b: f64| if a > 0.0 { a * (a / b).ln() } else { 0.0 };
    term(r, p) + term(1.0 - r, 1.0 - p)
}
