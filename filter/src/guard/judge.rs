//! The limits, judged once for everyone who judges them: the guard, over a
//! target's window (a worker's own or the merged one), and turnoutctl's
//! rollout controller, over a target's counts scraped from the proxies'
//! metrics for a step's hold. Both hand their counts in as [`Evidence`],
//! and the functions here decide: [`limits`] (the error rate and the p99
//! against absolute limits, beyond noise, and the p95 against stable's),
//! [`error_ratio`] (the sequential test, see [`super::sprt`], once it has
//! enough traffic), and for the controller, which must not pass a step
//! over a limit, [`over_as_measured`]. No allocation; O(1) for the error
//! rate and the p99 over a guard's window, O(buckets) for a p95.

use super::sprt::ErrorRatioTest;
use super::window::Window;
use super::{GuardPlan, Rule, Trip};

/// The p95 ratio trips only when the target's p95 is also over this many
/// milliseconds: latencies are whole milliseconds, so below that a ratio is
/// mostly the clock's rounding (1 ms against 3 ms is "3x"). The shipped
/// alert `TurnoutCanaryLatencyP95AboveStable` has the same floor.
pub const P95_RATIO_MIN_MS: f64 = 25.0;

/// How strong the window's evidence must be before an absolute limit
/// trips: ln(1000) nats. See [`beyond_noise`].
pub const EVIDENCE_NATS: f64 = 6.907_755_278_982_137;

/// What a limit is judged on, for one side of a split (one cluster) over a
/// stretch of time: its responses and errors, and its latencies as a count
/// over a bound and as quantiles. The guard's window has them counted as
/// they came ([`super::window::ClusterTotals`]); the rollout controller
/// reads them from the Prometheus counters and histograms of the contract.
pub trait Evidence {
    /// Responses counted.
    fn responses(&self) -> u64;
    /// Of them, errors (the classes the plan counts as errors).
    fn errors(&self) -> u64;
    /// Of them, the ones with a latency.
    fn timed(&self) -> u64;
    /// How many latencies were over `limit_ms`.
    fn over(&self, limit_ms: f64) -> u64;
    /// The `q` latency quantile (`q` in 0..=1), in ms; `None` without
    /// latencies.
    fn quantile(&self, q: f64) -> Option<f64>;

    /// The error rate (0..1); `None` without responses.
    fn error_rate(&self) -> Option<f64> {
        let n = self.responses();
        (n > 0).then(|| self.errors() as f64 / n as f64)
    }
}

/// A limit the evidence breaches, with what was measured: the error rate
/// (0..1), the p99 in ms, the p95 ratio, or for `error_ratio` the ratio of
/// the two error rates over the evidence (infinite when stable had no
/// error in it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Breach {
    pub rule: Rule,
    pub measured: f64,
    pub limit: f64,
}

impl Breach {
    /// The guard's trip of the split's target `target` (`1..`).
    pub fn of_target(self, target: usize) -> Trip {
        Trip {
            target,
            rule: self.rule,
            measured: self.measured,
            limit: self.limit,
        }
    }
}

/// The first limit `target` breaches beyond noise, in the guard's order:
/// the error rate, the p99, then the p95 against `stable`'s. A limit is
/// judged only once its side has `min_requests` responses (latencies, for
/// the latency limits): no traffic is no evidence.
pub fn limits(plan: &GuardPlan, target: &impl Evidence, stable: &impl Evidence) -> Option<Breach> {
    error_rate_breach(plan, target)
        .or_else(|| p99_breach(plan, target))
        .or_else(|| p95_ratio_breach(plan, target, stable))
}

fn error_rate_breach(plan: &GuardPlan, target: &impl Evidence) -> Option<Breach> {
    let limit = plan.max_error_rate?;
    let (errors, n) = (target.errors(), target.responses());
    rate_breached(errors, n, plan.min_requests, limit).then(|| Breach {
        rule: Rule::ErrorRate,
        measured: errors as f64 / n as f64,
        limit,
    })
}

fn p99_breach(plan: &GuardPlan, target: &impl Evidence) -> Option<Breach> {
    let limit = plan.max_p99_ms?;
    // The nearest-rank p99 of n latencies is over the limit exactly when
    // more than floor(n / 100) of them are: a count, which the guard keeps
    // as latencies come, with no bucket error. Whether more than 1 % of
    // all responses would be is the same question as an error rate's.
    let (slow, timed) = (target.over(limit), target.timed());
    let over = slow > timed / 100;
    (timed >= u64::from(plan.min_requests) && over && beyond_noise(slow, timed, 0.01)).then(|| {
        Breach {
            rule: Rule::P99,
            measured: p99_measured(target, limit),
            limit,
        }
    })
}

/// The p99 a breach reports: the histogram's estimate, but never below
/// what the count proves, a whole millisecond over the limit.
fn p99_measured(target: &impl Evidence, limit: f64) -> f64 {
    let proven = limit.floor() + 1.0;
    target.quantile(0.99).unwrap_or(proven).max(proven)
}

fn p95_ratio_breach(
    plan: &GuardPlan,
    target: &impl Evidence,
    stable: &impl Evidence,
) -> Option<Breach> {
    let limit = plan.max_p95_ratio?;
    let min = u64::from(plan.min_requests);
    if target.timed() < min || stable.timed() < min {
        return None;
    }
    let target_p95 = target.quantile(0.95)?;
    if target_p95 <= P95_RATIO_MIN_MS {
        return None;
    }
    // A p95 of 0 is no latency to compare with. The guard's histogram
    // estimates above a bucket's lower bound, so it reads 0 from no
    // consistent counts; a Prometheus histogram whose rank falls in `+Inf`
    // with no finite bucket below it reads 0.
    let stable_p95 = stable.quantile(0.95).filter(|&p| p > 0.0)?;
    let ratio = target_p95 / stable_p95;
    (ratio > limit).then_some(Breach {
        rule: Rule::P95Ratio,
        measured: ratio,
        limit,
    })
}

/// The error ratio's breach, once `test` (the sequential test of this
/// target against stable) rejects at `alpha` with `min_requests` target
/// responses in all. What it reports is the ratio of the error rates over
/// `target` and `stable`; the test's evidence decided.
pub fn error_ratio(
    plan: &GuardPlan,
    test: &ErrorRatioTest,
    alpha: f64,
    target: &impl Evidence,
    stable: &impl Evidence,
) -> Option<Breach> {
    let limit = plan.max_error_ratio?;
    let min = u64::from(plan.min_requests);
    (test.target_responses() >= min && test.rejects(alpha)).then(|| Breach {
        rule: Rule::ErrorRatio,
        measured: rate_ratio(target, stable),
        limit,
    })
}

/// The error rate or the p99 over its limit as measured, evidence or not:
/// what keeps the rollout controller from passing a step whose figures are
/// over a limit by less than the evidence a failure needs. The error rate
/// first; the p99 is over when more than 1 % of the latencies are, as
/// [`limits`] counts it.
pub fn over_as_measured(plan: &GuardPlan, target: &impl Evidence) -> Option<Breach> {
    let error_rate = plan.max_error_rate.and_then(|limit| {
        let (errors, n) = (target.errors(), target.responses());
        rate_over(errors, n, limit).then(|| Breach {
            rule: Rule::ErrorRate,
            measured: errors as f64 / n as f64,
            limit,
        })
    });
    error_rate.or_else(|| {
        let limit = plan.max_p99_ms?;
        (target.over(limit) > target.timed() / 100).then(|| Breach {
            rule: Rule::P99,
            measured: p99_measured(target, limit),
            limit,
        })
    })
}

/// The target's error rate over stable's (infinite when stable had no
/// error and the target had): what a breach of `error_ratio` reports.
pub fn rate_ratio(target: &impl Evidence, stable: &impl Evidence) -> f64 {
    let (t, s) = (
        target.error_rate().unwrap_or(0.0),
        stable.error_rate().unwrap_or(0.0),
    );
    if s > 0.0 {
        t / s
    } else if t > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// Whether `count` failures of `n` breach a rate limit: judged only once
/// there are `min_requests` of them (no traffic is no evidence), and then
/// only beyond noise ([`beyond_noise`]). The one rule for every rate
/// limit: the guard's and the rollout's error rate, a shadow's copy
/// failures (where it stops copying), and the rollout's shadow gates
/// (mismatches over compared copies, failed copies over copies sent).
pub fn rate_breached(count: u64, n: u64, min_requests: u32, limit: f64) -> bool {
    n >= u64::from(min_requests) && beyond_noise(count, n, limit)
}

/// Whether `count` of `n` is over `limit` as measured, evidence or not
/// (false without any): what keeps the rollout controller from passing a
/// step over a rate limit. See [`over_as_measured`].
pub fn rate_over(count: u64, n: u64, limit: f64) -> bool {
    n > 0 && count as f64 / n as f64 > limit
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

// ---- the guard's windows ----

/// The first breached limit among the window's targets: error rate, p99,
/// then p95 ratio, target by target.
pub(super) fn window_limits(window: &Window) -> Option<Trip> {
    let stable = window.cluster(0);
    (1..window.layout.clusters).find_map(|target| {
        limits(&window.plan, &window.cluster(target), &stable).map(|b| b.of_target(target))
    })
}

/// The first target whose sequential test rejects, once it has
/// `min_requests` responses in all. `alpha` is shared among the targets
/// (each is tested at `alpha / targets`), so the split's chance of a false
/// alarm stays at most `alpha`.
pub(super) fn window_error_ratio(window: &Window, tests: &[ErrorRatioTest]) -> Option<Trip> {
    let alpha = window.plan.alpha / tests.len().max(1) as f64;
    let stable = window.cluster(0);
    tests.iter().enumerate().find_map(|(i, test)| {
        let target = i + 1;
        error_ratio(&window.plan, test, alpha, &window.cluster(target), &stable)
            .map(|b| b.of_target(target))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::sprt::Batch;
    use crate::stats::Class;

    /// Evidence given as figures, the way a test states them.
    #[derive(Clone, Copy, Default)]
    struct Figures {
        responses: u64,
        errors: u64,
        timed: u64,
        /// Latencies over the plan's `max_p99_ms`.
        slow: u64,
        p95: Option<f64>,
        p99: Option<f64>,
    }

    impl Evidence for Figures {
        fn responses(&self) -> u64 {
            self.responses
        }
        fn errors(&self) -> u64 {
            self.errors
        }
        fn timed(&self) -> u64 {
            self.timed
        }
        fn over(&self, _limit_ms: f64) -> u64 {
            self.slow
        }
        fn quantile(&self, q: f64) -> Option<f64> {
            if q >= 0.99 {
                self.p99
            } else {
                self.p95
            }
        }
    }

    fn plan() -> GuardPlan {
        GuardPlan {
            min_requests: 50,
            max_error_rate: Some(0.05),
            max_p99_ms: Some(500.0),
            max_p95_ratio: Some(2.0),
            ..GuardPlan::default()
        }
    }

    /// `n` responses of `errors` errors, all timed at `ms`.
    fn at(n: u64, errors: u64, ms: f64) -> Figures {
        Figures {
            responses: n,
            errors,
            timed: n,
            slow: if ms > 500.0 { n } else { 0 },
            p95: (n > 0).then_some(ms),
            p99: (n > 0).then_some(ms),
        }
    }

    fn rule(target: Figures, stable: Figures) -> Option<Rule> {
        limits(&plan(), &target, &stable).map(|b| b.rule)
    }

    #[test]
    fn the_error_rate_trips_beyond_noise_and_only_with_min_requests() {
        let stable = at(1000, 0, 3.0);
        // 20 % against 5 % in 100: beyond noise.
        let breach = limits(&plan(), &at(100, 20, 3.0), &stable);
        assert_eq!(
            breach,
            Some(Breach {
                rule: Rule::ErrorRate,
                measured: 0.2,
                limit: 0.05
            })
        );
        // 10 % in 100 is over the limit, not beyond noise; in 1,000 it is.
        assert_eq!(rule(at(100, 10, 3.0), stable), None);
        assert_eq!(rule(at(1000, 100, 3.0), stable), Some(Rule::ErrorRate));
        // At the limit is not over it.
        assert_eq!(rule(at(1000, 50, 3.0), stable), None);
        // Every one of 49 failing is below min_requests; the 50th is judged.
        assert_eq!(rule(at(49, 49, 3.0), stable), None);
        assert_eq!(rule(at(50, 50, 3.0), stable), Some(Rule::ErrorRate));
        // No traffic is no evidence.
        assert_eq!(rule(Figures::default(), Figures::default()), None);
    }

    #[test]
    fn the_p99_trips_on_the_count_over_the_limit_and_reports_what_it_proves() {
        let stable = at(1000, 0, 3.0);
        let slow = |n: u64, slow: u64, p99: f64| Figures {
            slow,
            p99: Some(p99),
            ..at(n, 0, 3.0)
        };
        let breach = limits(&plan(), &slow(100, 10, 800.0), &stable);
        assert_eq!(
            breach,
            Some(Breach {
                rule: Rule::P99,
                measured: 800.0,
                limit: 500.0
            })
        );
        // 2 in 100 is noise for a p99; 1 in 100 is not even over it.
        assert_eq!(rule(slow(100, 2, 800.0), stable), None);
        assert_eq!(rule(slow(1000, 10, 800.0), stable), None);
        // An estimate under the limit reads as the least the count proves.
        let breach = limits(&plan(), &slow(100, 10, 420.0), &stable);
        assert_eq!(breach.map(|b| b.measured), Some(501.0));
        // Latencies, not responses, are what min_requests counts here.
        let untimed = Figures {
            timed: 40,
            slow: 40,
            ..slow(100, 0, 800.0)
        };
        assert_eq!(rule(untimed, stable), None);
    }

    #[test]
    fn the_p95_ratio_needs_both_sides_the_floor_and_a_stable_latency() {
        let stable = at(1000, 0, 3.0);
        let breach = limits(&plan(), &at(100, 0, 80.0), &stable);
        assert_eq!(
            breach.map(|b| (b.rule, b.measured)),
            Some((Rule::P95Ratio, 80.0 / 3.0))
        );
        // "8x", but under the 25 ms floor.
        assert_eq!(rule(at(100, 0, 24.0), stable), None);
        // Twice is not over twice.
        assert_eq!(rule(at(100, 0, 60.0), at(1000, 0, 30.0)), None);
        // Stable below min_requests, or with a p95 of 0, is nothing to compare with.
        assert_eq!(rule(at(100, 0, 80.0), at(49, 0, 3.0)), None);
        assert_eq!(rule(at(100, 0, 80.0), at(1000, 0, 0.0)), None);
        // The error rate is judged first.
        assert_eq!(rule(at(100, 20, 800.0), stable), Some(Rule::ErrorRate));
    }

    #[test]
    fn over_as_measured_is_the_breach_without_the_evidence() {
        let plan = GuardPlan {
            min_requests: 20,
            max_error_rate: Some(0.01),
            max_p99_ms: Some(500.0),
            ..GuardPlan::default()
        };
        // 4 in 121 is over 1 %, not beyond noise.
        let target = at(121, 4, 3.0);
        assert_eq!(limits(&plan, &target, &target), None);
        let over = over_as_measured(&plan, &target);
        assert_eq!(over.map(|b| b.rule), Some(Rule::ErrorRate));
        assert_eq!(over.map(|b| b.measured), Some(4.0 / 121.0));
        // 2 of 100 slow: over the p99, not beyond noise.
        let slow = Figures {
            slow: 2,
            p99: Some(600.0),
            ..at(100, 0, 3.0)
        };
        assert_eq!(limits(&plan, &slow, &slow), None);
        assert_eq!(
            over_as_measured(&plan, &slow).map(|b| (b.rule, b.measured)),
            Some((Rule::P99, 600.0))
        );
        assert_eq!(over_as_measured(&plan, &at(100, 1, 3.0)), None);
    }

    #[test]
    fn the_error_ratio_is_judged_by_its_test_and_reports_the_rates() {
        let plan = GuardPlan {
            min_requests: 50,
            max_error_ratio: Some(2.0),
            alpha: 0.001,
            ..GuardPlan::default()
        };
        let mut test = ErrorRatioTest::default();
        let batch = Batch {
            target_responses: 40,
            target_errors: 40,
            stable_responses: 900,
            stable_errors: 9,
        };
        test.fold(0, 2.0, batch);
        assert!(test.rejects(plan.alpha));
        let (target, stable) = (at(40, 40, 3.0), at(900, 9, 3.0));
        // The test rejects, but the target has 40 of 50 responses.
        assert_eq!(
            error_ratio(&plan, &test, plan.alpha, &target, &stable),
            None
        );
        test.fold(
            1,
            2.0,
            Batch {
                target_responses: 10,
                target_errors: 10,
                stable_responses: 100,
                stable_errors: 1,
            },
        );
        let breach = error_ratio(
            &plan,
            &test,
            plan.alpha,
            &at(50, 50, 3.0),
            &at(1000, 10, 3.0),
        );
        assert_eq!(
            breach,
            Some(Breach {
                rule: Rule::ErrorRatio,
                measured: 100.0,
                limit: 2.0
            })
        );
        let no_stable_errors = error_ratio(&plan, &test, plan.alpha, &target, &at(900, 0, 3.0));
        assert_eq!(no_stable_errors.map(|b| b.measured), Some(f64::INFINITY));
        let unset = GuardPlan {
            max_error_ratio: None,
            ..plan
        };
        assert_eq!(
            error_ratio(&unset, &test, plan.alpha, &target, &stable),
            None
        );
    }

    /// A guard's window, judged through [`Evidence`], gives what its counts
    /// stated as figures give.
    #[test]
    fn a_window_is_judged_as_its_counts_are() {
        let plan = plan();
        // (target errors, target latency) over 100 target responses, and
        // the limit they breach.
        let cases = [
            (0, 3, None),
            (20, 3, Some(Rule::ErrorRate)),
            (10, 3, None),
            (0, 800, Some(Rule::P99)),
            (0, 80, Some(Rule::P95Ratio)),
            (0, 20, None),
            (30, 900, Some(Rule::ErrorRate)),
        ];
        for (errors, ms, want) in cases {
            let mut window = Window::new(&plan, 2);
            for i in 0..1000u64 {
                window.record(1_800_000_000, 0, Class::Success, Some(3));
                if i < 100 {
                    let class = if i < errors {
                        Class::ServerError
                    } else {
                        Class::Success
                    };
                    window.record(1_800_000_000, 1, class, Some(ms));
                }
            }
            let figures = |cluster: usize| {
                let c = window.counts(cluster);
                Figures {
                    responses: c.responses,
                    errors: c.errors,
                    timed: c.timed,
                    slow: c.slow,
                    p95: window.quantile(cluster, 0.95),
                    p99: window.quantile(cluster, 0.99),
                }
            };
            let judged = limits(&plan, &window.cluster(1), &window.cluster(0));
            assert_eq!(
                judged,
                limits(&plan, &figures(1), &figures(0)),
                "{errors} errors, {ms} ms"
            );
            assert_eq!(judged.map(|b| b.rule), want, "{errors} errors, {ms} ms");
            assert_eq!(judged.map(|b| b.of_target(1)), window_limits(&window));
        }
    }
}
