//! The judgement's tests: quantiles, no data, noise, each limit, the
//! sequential test across a rollout, and the guard and the rollout judging
//! the same responses alike.

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
fn counted_both_ways(plan: &GuardPlan, target: Traffic, stable: Traffic) -> (Local, Merged, Sides) {
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
