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
mod tests {
    use super::*;
    use turnout::guard::{Local, Merged, Rule};
    use turnout::stats::Class;

    /// Envoy's default histogram bounds (ms), the ones `turnout_latency_ms` has.
    const BOUNDS: [f64; 12] = [
        0.5,
        1.0,
        5.0,
        10.0,
        25.0,
        50.0,
        100.0,
        250.0,
        500.0,
        1000.0,
        2500.0,
        f64::INFINITY,
    ];

    /// `responses` with `errors`, latencies given as (ms, how many).
    fn side(responses: u64, errors: u64, latencies: &[(f64, u64)]) -> Side {
        let buckets = BOUNDS
            .iter()
            .map(|&le| {
                let n = latencies
                    .iter()
                    .filter(|(ms, _)| *ms <= le)
                    .map(|(_, n)| n)
                    .sum();
                (le.to_bits(), n)
            })
            .collect();
        Side {
            responses,
            errors,
            buckets,
        }
    }

    fn none() -> Tripped {
        Tripped::default()
    }

    fn window(target: Side, stable: Side) -> Sides {
        Sides {
            target,
            stable,
            ..Sides::default()
        }
    }

    fn plan(analysis: &str) -> GuardPlan {
        turnout::config::guard_field(&serde_json::from_str(analysis).unwrap(), "analysis").unwrap()
    }

    #[test]
    fn quantiles_interpolate_like_histogram_quantile() {
        // 90 at 3 ms (bucket 1..5), 10 at 80 ms (bucket 50..100).
        let s = side(100, 0, &[(3.0, 90), (80.0, 10)]);
        // p50: rank 50 of 90 in 1..5: 1 + 4 * 50/90.
        assert!((s.quantile(0.5).unwrap() - (1.0 + 4.0 * 50.0 / 90.0)).abs() < 1e-9);
        // p99: rank 99, 9 of 10 in 50..100.
        assert!((s.quantile(0.99).unwrap() - 95.0).abs() < 1e-9);
        // Latencies over a limit: exact on a bound, interpolated inside.
        assert_eq!(s.over(50.0), 10);
        assert_eq!(s.over(75.0), 5);
        assert_eq!(s.over(1.0), 100);
        assert_eq!(s.over(5000.0), 0);
        // Beyond the last finite bound: the bound.
        let slow = side(10, 0, &[(9999.0, 10)]);
        assert_eq!(slow.quantile(0.99), Some(2500.0));
        assert_eq!(Side::default().quantile(0.99), None);
    }

    #[test]
    fn no_data_never_passes_and_never_fails() {
        let judge = Judge::new(plan(
            r#"{"min_requests": 100, "max_error_rate": 0.01, "max_p99_ms": 500}"#,
        ));
        let empty = Sides::default();
        assert_eq!(
            judge.verdict(&empty, &none(), false, false),
            StepVerdict::Ok
        );
        assert_eq!(
            judge.verdict(&empty, &none(), true, false),
            StepVerdict::LowTraffic { have: 0, need: 100 }
        );
        // 99 responses, all failed and slow: below min_requests, not judged.
        let bad = window(side(99, 99, &[(3000.0, 99)]), side(1000, 0, &[(2.0, 1000)]));
        assert_eq!(judge.verdict(&bad, &none(), false, false), StepVerdict::Ok);
        assert_eq!(
            judge.verdict(&bad, &none(), true, false),
            StepVerdict::LowTraffic {
                have: 99,
                need: 100
            }
        );
        // Enough of it is judged.
        let healthy = window(side(100, 0, &[(3.0, 100)]), side(1000, 0, &[(2.0, 1000)]));
        assert_eq!(
            judge.verdict(&healthy, &none(), false, false),
            StepVerdict::Ok
        );
        assert_eq!(
            judge.verdict(&healthy, &none(), true, false),
            StepVerdict::Pass
        );
    }

    #[test]
    fn a_step_over_a_limit_without_evidence_neither_passes_nor_fails() {
        let judge = Judge::new(plan(r#"{"min_requests": 20, "max_error_rate": 0.01}"#));
        let stable = side(1000, 0, &[]);
        // 4 errors in 121 (3.3 %) against 1 %: not beyond noise, so no
        // failure; but no pass either.
        let hold = window(side(121, 4, &[]), stable.clone());
        assert_eq!(judge.verdict(&hold, &none(), false, false), StepVerdict::Ok);
        match judge.verdict(&hold, &none(), true, false) {
            StepVerdict::Unsettled(Breach {
                rule,
                measured,
                limit,
            }) => {
                assert_eq!((rule, limit), (Rule::ErrorRate, 0.01));
                assert!((measured - 4.0 / 121.0).abs() < 1e-12);
            }
            other => panic!("{other:?}"),
        }
        // More of the same is evidence: it fails.
        let hold = window(side(605, 20, &[]), stable.clone());
        assert!(matches!(
            judge.verdict(&hold, &none(), true, false),
            StepVerdict::Fail(_)
        ));
        // Under the limit, it passes.
        let hold = window(side(605, 5, &[]), stable);
        assert_eq!(
            judge.verdict(&hold, &none(), true, false),
            StepVerdict::Pass
        );
    }

    #[test]
    fn a_tripped_guard_fails_at_once_even_without_data() {
        let judge = Judge::new(plan(r#"{"max_error_rate": 0.01}"#));
        let tripped = Tripped {
            guard: vec!["http://127.0.0.1:9901".into()],
            ..Tripped::default()
        };
        let v = judge.verdict(&Sides::default(), &tripped, false, false);
        assert_eq!(
            v,
            StepVerdict::Fail(Failure::GuardTripped(vec!["http://127.0.0.1:9901".into()]))
        );
    }

    #[test]
    fn each_limit_fails_as_the_guard_judges_it() {
        let judge = Judge::new(plan(
            r#"{"min_requests": 50, "max_error_rate": 0.05, "max_p99_ms": 500, "max_p95_ratio": 2.0}"#,
        ));
        let stable = side(1000, 1, &[(3.0, 1000)]);
        let rule = |w: &Sides| match judge.failure(w, &none(), false) {
            Some(Failure::Limit(breach)) => Some(breach.rule),
            _ => None,
        };
        // 20 % errors against 5 %: beyond noise in 100 responses.
        assert_eq!(
            rule(&window(side(100, 20, &[(3.0, 100)]), stable.clone())),
            Some(Rule::ErrorRate)
        );
        // 10 % is over the limit, but 100 responses are not evidence
        // enough (a 5 % target shows that much once in 40 tries); 1,000 are.
        assert_eq!(
            rule(&window(side(100, 10, &[(3.0, 100)]), stable.clone())),
            None
        );
        assert_eq!(
            rule(&window(side(1000, 100, &[(3.0, 1000)]), stable.clone())),
            Some(Rule::ErrorRate)
        );
        // 5 % errors is at the limit, not over it.
        assert_eq!(
            rule(&window(side(1000, 50, &[(3.0, 1000)]), stable.clone())),
            None
        );
        // 10 % of latencies at 800 ms: p99 in 500..1000.
        assert_eq!(
            rule(&window(
                side(100, 0, &[(3.0, 90), (800.0, 10)]),
                stable.clone()
            )),
            Some(Rule::P99)
        );
        // 2 % slow in 100 is noise for a p99.
        assert_eq!(
            rule(&window(
                side(100, 0, &[(3.0, 98), (800.0, 2)]),
                stable.clone()
            )),
            None
        );
        // p95 of 80 ms against stable's 3: over twice, and over the floor.
        assert_eq!(
            rule(&window(side(100, 0, &[(80.0, 100)]), stable.clone())),
            Some(Rule::P95Ratio)
        );
        // 20 ms against 3 ms is "7x" but under the guard's 25 ms floor.
        assert_eq!(
            rule(&window(side(100, 0, &[(20.0, 100)]), stable.clone())),
            None
        );
        // The ratio needs stable's latencies too.
        assert_eq!(
            rule(&window(
                side(100, 0, &[(80.0, 100)]),
                side(10, 0, &[(3.0, 10)])
            )),
            None
        );
    }

    fn interval(n_t: u64, e_t: u64, n_s: u64, e_s: u64) -> Sides {
        window(side(n_t, e_t, &[]), side(n_s, e_s, &[]))
    }

    #[test]
    fn the_error_ratio_test_runs_across_the_whole_rollout() {
        let judge_of = || {
            Judge::new(plan(
                r#"{"min_requests": 50, "max_error_ratio": 2.0, "alpha": 0.001}"#,
            ))
        };
        // A healthy target, at stable's error rate, for 2 hours of 10 s
        // intervals: the evidence stays under 1/alpha.
        let mut judge = judge_of();
        for i in 0..720 {
            judge.fold(i * 10, &interval(100, 1, 900, 9));
            assert_eq!(
                judge.failure(&Sides::default(), &none(), false),
                None,
                "interval {i}"
            );
        }
        // Then the target fails at 10x stable's rate: found within minutes,
        // however long the healthy part was.
        let mut seconds = 0;
        while judge.failure(&Sides::default(), &none(), false).is_none() {
            judge.fold(7200 + seconds, &interval(100, 10, 900, 9));
            seconds += 10;
            assert!(seconds < 600, "{}", judge.evidence());
        }
        // Not before the target has min_requests responses in all.
        let mut judge = judge_of();
        judge.fold(0, &interval(40, 40, 900, 0));
        assert!(judge.evidence() > -0.001f64.ln());
        assert_eq!(judge.failure(&Sides::default(), &none(), false), None);
        judge.fold(10, &interval(10, 10, 100, 0));
        assert!(matches!(
            judge.failure(&Sides::default(), &none(), false),
            Some(Failure::Limit(Breach {
                rule: Rule::ErrorRatio,
                ..
            }))
        ));
    }

    /// Responses of one side: (how many, class, latency in ms).
    type Traffic<'a> = &'a [(u64, Class, u64)];

    /// The same responses as the guard counts them (a worker's window and
    /// the merged state) and as the rollout reads them from Envoy's
    /// histogram (the contract's bounds).
    fn counted_both_ways(
        plan: &GuardPlan,
        target: Traffic,
        stable: Traffic,
    ) -> (Local, Merged, Sides) {
        let now = 1_800_000_000;
        let mut local = Local::new(plan, 2);
        let mut hold = Sides::default();
        for (cluster, traffic) in [(0, stable), (1, target)] {
            let mut latencies = Vec::new();
            let (mut responses, mut errors) = (0, 0);
            for &(n, class, ms) in traffic {
                for _ in 0..n {
                    local.record(now, cluster, class, Some(ms));
                }
                responses += n;
                errors += if plan.errors.contains(class) { n } else { 0 };
                latencies.push((ms as f64, n));
            }
            let scraped = side(responses, errors, &latencies);
            match cluster {
                0 => hold.stable = scraped,
                _ => hold.target = scraped,
            }
        }
        let mut merged = Merged::new(plan, 2);
        merged.absorb(now, local.delta());
        (local, merged, hold)
    }

    /// The guard and the rollout controller, handed the same responses,
    /// judge them with the same functions: the same counts, the same
    /// breach (with the same figure where both read it from counts; the
    /// latency estimates differ with the histograms' buckets), the same
    /// breach as measured.
    #[test]
    fn the_guard_and_the_rollout_judge_the_same_responses_alike() {
        use Class::{ServerError as E, Success as S};
        let plan = plan(
            r#"{"min_requests": 50, "max_error_rate": 0.05, "max_p99_ms": 500,
                "max_p95_ratio": 2.0, "max_error_ratio": 2.0, "alpha": 0.001}"#,
        );
        let stable: Traffic = &[(1998, S, 3), (2, E, 3)];
        let cases: [(Traffic, Traffic, Option<Rule>, Option<Rule>); 9] = [
            // Healthy.
            (&[(199, S, 3), (1, E, 3)], stable, None, None),
            // 20 % errors against 5 %.
            (
                &[(80, S, 3), (20, E, 3)],
                stable,
                Some(Rule::ErrorRate),
                Some(Rule::ErrorRate),
            ),
            // 10 % slow at 800 ms: a p99 over 500.
            (
                &[(90, S, 3), (10, S, 800)],
                stable,
                Some(Rule::P99),
                Some(Rule::P99),
            ),
            // A p95 of 80 ms against 3.
            (&[(100, S, 80)], stable, Some(Rule::P95Ratio), None),
            // 20 ms against 3: under the floor.
            (&[(100, S, 20)], stable, None, None),
            // All failing and slow, but under min_requests.
            (&[(40, E, 3000)], stable, None, Some(Rule::ErrorRate)),
            // 4 % errors: under the error rate's 5 %, but 40 times stable's.
            (
                &[(960, S, 3), (40, E, 3)],
                &[(9990, S, 3), (10, E, 3)],
                Some(Rule::ErrorRatio),
                None,
            ),
            // 5.8 % errors: over 5 % as measured, not beyond noise (and
            // about stable's rate).
            (
                &[(114, S, 3), (7, E, 3)],
                &[(1890, S, 3), (110, E, 3)],
                None,
                Some(Rule::ErrorRate),
            ),
            // 2 of 100 slow: over the p99 as measured, not beyond noise.
            (&[(98, S, 3), (2, S, 800)], stable, None, Some(Rule::P99)),
        ];
        for (i, (target, stable, breached, over)) in cases.into_iter().enumerate() {
            let (local, merged, hold) = counted_both_ways(&plan, target, stable);
            let window = local.window();
            // The same counts, read either way.
            let figures = |e: &dyn Fn(f64) -> (u64, u64, u64, u64)| e(500.0);
            for (guard, scraped) in [
                (window.cluster(0), &hold.stable),
                (window.cluster(1), &hold.target),
            ] {
                assert_eq!(
                    figures(&|ms| (
                        guard.responses(),
                        guard.errors(),
                        guard.timed(),
                        guard.over(ms)
                    )),
                    figures(&|ms| (
                        scraped.responses(),
                        scraped.errors(),
                        scraped.timed(),
                        scraped.over(ms)
                    )),
                    "case {i}"
                );
            }
            // The guard: a worker's window, then the merged state with its
            // sequential test.
            let worker = local.judge();
            let guard = merged.judge();
            // The rollout: the hold's counts, with its own sequential test.
            let mut judge = Judge::new(plan);
            judge.fold(0, &hold);
            let rollout = match judge.failure(&hold, &none(), false) {
                Some(Failure::Limit(breach)) => Some(breach),
                None => None,
                other => panic!("case {i}: {other:?}"),
            };
            assert_eq!(guard.map(|t| t.rule), breached, "case {i}");
            assert_eq!(rollout.map(|b| b.rule), breached, "case {i}");
            if breached != Some(Rule::ErrorRatio) {
                assert_eq!(worker.map(|t| t.rule), breached, "case {i}");
            }
            if let (Some(trip), Some(breach)) = (guard, rollout) {
                if matches!(trip.rule, Rule::ErrorRate | Rule::ErrorRatio) {
                    assert_eq!(trip.measured, breach.measured, "case {i}");
                }
            }
            let over_guard = judge::over_as_measured(&plan, &window.cluster(1));
            let over_rollout = judge::over_as_measured(&plan, &hold.target);
            assert_eq!(over_guard.map(|b| b.rule), over, "case {i}");
            assert_eq!(over_rollout.map(|b| b.rule), over, "case {i}");
        }
    }
}
