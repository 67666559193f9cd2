//! The guard on the host: simulated traffic through simulated workers
//! (each with its own `Local` state, merging into bytes at every tick in a
//! shuffled order, as Envoy's workers do through shared data), with a
//! seeded generator so every run is the same. Run with `--nocapture` to see
//! the requests-to-trip figures; the long false-alarm measurement is
//! `cargo test --release -p turnout --test guard -- --ignored --nocapture`.

use turnout::guard::sprt::{Batch, ErrorRatioTest};
use turnout::guard::{GuardPlan, Local, Merged, Rule, Trip, Window};
use turnout::stats::Class;

/// SplitMix64: small, fast, and good enough for simulated traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }

    /// Binomial(n, p) by inversion: O(n p) steps, fine for the small
    /// batches drawn here.
    fn binomial(&mut self, n: u64, p: f64) -> u64 {
        if p > 0.5 {
            return n - self.binomial(n, 1.0 - p);
        }
        if p <= 0.0 || n == 0 {
            return 0;
        }
        let u = self.unit();
        let odds = p / (1.0 - p);
        let mut pk = (1.0 - p).powi(n as i32);
        let (mut k, mut cdf) = (0, pk);
        while u > cdf && k < n {
            pk *= (n - k) as f64 / (k + 1) as f64 * odds;
            k += 1;
            cdf += pk;
        }
        k
    }
}

/// How one cluster answers.
#[derive(Clone, Copy)]
struct Behaviour {
    error_rate: f64,
    /// Latency uniform in `lo..=hi` ms.
    latency: (u64, u64),
}

const HEALTHY: Behaviour = Behaviour {
    error_rate: 0.0,
    latency: (5, 40),
};

/// A split's traffic: stable and one target.
#[derive(Clone, Copy)]
struct Traffic {
    /// The target's share of requests.
    weight: f64,
    stable: Behaviour,
    target: Behaviour,
    /// Requests per second, spread over the workers.
    rate: u64,
}

/// Where a trip was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    /// A worker's own window, on a response.
    Worker,
    /// The merged state, at a tick.
    Merged,
}

#[derive(Debug)]
struct Tripped {
    trip: Trip,
    /// Requests sent when it tripped.
    requests: u64,
    seconds: i64,
    seen: Seen,
}

/// Workers recording responses and merging at every tick through bytes.
struct Fleet {
    plan: GuardPlan,
    workers: Vec<Local>,
    shared: Option<Vec<u8>>,
    rng: Rng,
}

const START: i64 = 1_800_000_000;

impl Fleet {
    fn new(plan: GuardPlan, workers: usize, seed: u64) -> Fleet {
        Fleet {
            plan,
            workers: (0..workers).map(|_| Local::new(&plan, 2)).collect(),
            shared: None,
            rng: Rng(seed),
        }
    }

    /// Sends up to `requests` requests; the first trip, if any.
    fn run(&mut self, traffic: Traffic, requests: u64) -> Option<Tripped> {
        let mut sent = 0;
        let mut now = START;
        while sent < requests {
            for _ in 0..traffic.rate.min(requests - sent) {
                sent += 1;
                if let Some(trip) = self.request(now, &traffic) {
                    return Some(Tripped {
                        trip,
                        requests: sent,
                        seconds: now - START,
                        seen: Seen::Worker,
                    });
                }
            }
            if let Some(trip) = self.tick(now) {
                return Some(Tripped {
                    trip,
                    requests: sent,
                    seconds: now - START,
                    seen: Seen::Merged,
                });
            }
            now += 1;
        }
        None
    }

    /// One request on a random worker; that worker's own judgement.
    fn request(&mut self, now: i64, traffic: &Traffic) -> Option<Trip> {
        let worker = self.rng.below(self.workers.len() as u64) as usize;
        let cluster = usize::from(self.rng.chance(traffic.weight));
        let b = if cluster == 1 {
            traffic.target
        } else {
            traffic.stable
        };
        let class = if self.rng.chance(b.error_rate) {
            Class::ServerError
        } else {
            Class::Success
        };
        let latency = b.latency.0 + self.rng.below(b.latency.1 - b.latency.0 + 1);
        let local = &mut self.workers[worker];
        local.record(now, cluster, class, Some(latency));
        local.judge()
    }

    /// Every worker merges its delta, in a shuffled order, through bytes.
    fn tick(&mut self, now: i64) -> Option<Trip> {
        let mut order: Vec<usize> = (0..self.workers.len()).collect();
        self.rng.shuffle(&mut order);
        let mut tripped = None;
        for w in order {
            let mut merged = self
                .shared
                .as_deref()
                .and_then(|b| Merged::decode(&self.plan, 2, b))
                .unwrap_or_else(|| Merged::new(&self.plan, 2));
            merged.absorb(now, self.workers[w].delta());
            if let Some(trip) = merged.judge() {
                merged.latch(trip);
            }
            tripped = tripped.or(merged.trip());
            self.shared = Some(merged.encode());
            self.workers[w].clear_delta();
        }
        tripped
    }

    fn merged(&self) -> Merged {
        Merged::decode(&self.plan, 2, self.shared.as_deref().unwrap_or_default())
            .unwrap_or_else(|| Merged::new(&self.plan, 2))
    }
}

fn plan(f: impl FnOnce(&mut GuardPlan)) -> GuardPlan {
    let mut plan = GuardPlan::default();
    f(&mut plan);
    plan
}

fn errors(rate: f64) -> Behaviour {
    Behaviour {
        error_rate: rate,
        ..HEALTHY
    }
}

fn latency(lo: u64, hi: u64) -> Behaviour {
    Behaviour {
        latency: (lo, hi),
        ..HEALTHY
    }
}

// ---- the absolute limits ----

#[test]
fn half_the_error_rate_limit_does_not_trip_over_10000_requests() {
    // 0.5 % errors against a 1 % limit, at the default min_requests (50).
    // A bare point estimate would trip here in half the runs (one error in
    // the first 50 responses is 2 %); the rule asks for evidence beyond
    // noise (judge.rs, `beyond_noise`).
    let guard = plan(|p| p.max_error_rate = Some(0.01));
    for (workers, rate) in [(1, 50), (2, 200), (4, 500)] {
        let traffic = Traffic {
            weight: 0.5,
            stable: errors(0.005),
            target: errors(0.005),
            rate,
        };
        for seed in 1..=5 {
            let mut fleet = Fleet::new(guard, workers, seed);
            let tripped = fleet.run(traffic, 10_000);
            assert!(
                tripped.is_none(),
                "{workers} workers, seed {seed}: {tripped:?}"
            );
            assert!(fleet.merged().window().counts(1).responses > 500);
        }
    }
}

/// The absolute error rate's figures: how often a target trips a 1 %
/// limit within 10,000 requests, and after how many, by its error rate.
#[test]
#[ignore = "figures: the absolute error rate's trips by error rate (run with --release)"]
fn error_rate_figures() {
    let guard = plan(|p| p.max_error_rate = Some(0.01));
    for target in [0.005, 0.01, 0.015, 0.02, 0.05, 0.1, 1.0] {
        let traffic = Traffic {
            weight: 0.5,
            stable: errors(0.005),
            target: errors(target),
            rate: 200,
        };
        let runs = 1_000;
        let mut trips: Vec<u64> = (0..runs)
            .filter_map(|seed| Fleet::new(guard, 2, seed).run(traffic, 10_000))
            .map(|t| t.requests)
            .collect();
        trips.sort_unstable();
        let median = trips.get(trips.len() / 2).copied().unwrap_or(0);
        println!(
            "error_rate {} % against 1 %, weight 50, 200 requests/s, 2 workers, min_requests 50: {} of {runs} runs trip within 10,000 requests, median {median} requests",
            target * 100.0,
            trips.len()
        );
    }
}

#[test]
fn fewer_than_min_requests_never_trips() {
    // A target failing every request as slowly as can be, under every rule.
    let guard = plan(|p| {
        p.min_requests = 50;
        p.max_error_rate = Some(0.01);
        p.max_p99_ms = Some(100.0);
        p.max_p95_ratio = Some(2.0);
        p.max_error_ratio = Some(2.0);
    });
    let mut merged = Merged::new(&guard, 2);
    let mut local = Local::new(&guard, 2);
    for i in 0..49 {
        let now = START + i / 10;
        local.record(now, 1, Class::Reset, Some(10_000));
        local.record(now, 0, Class::Success, Some(1));
        local.record(now, 0, Class::Success, Some(1));
        assert_eq!(local.judge(), None);
        merged.absorb(now, local.delta());
        local.clear_delta();
        assert_eq!(merged.judge(), None);
    }
    // The 50th trips.
    local.record(START + 5, 1, Class::Reset, Some(10_000));
    assert_eq!(local.judge().map(|t| t.rule), Some(Rule::ErrorRate));
    merged.absorb(START + 5, local.delta());
    assert_eq!(merged.judge().map(|t| t.rule), Some(Rule::ErrorRate));
}

#[test]
fn a_canary_failing_every_request_trips_within_a_few_dozen() {
    let guard = plan(|p| {
        p.min_requests = 20;
        p.max_error_rate = Some(0.01);
    });
    let traffic = Traffic {
        weight: 0.5,
        stable: HEALTHY,
        target: errors(1.0),
        rate: 100,
    };
    for workers in [1, 2, 4] {
        let (mut worst, mut seconds) = (0, 0);
        for seed in 1..=20 {
            let tripped = Fleet::new(guard, workers, seed)
                .run(traffic, 1_000)
                .expect("tripped");
            assert_eq!(tripped.trip.rule, Rule::ErrorRate);
            assert_eq!(tripped.trip.measured, 1.0);
            worst = worst.max(tripped.requests);
            seconds = seconds.max(tripped.seconds + 1);
        }
        println!("error_rate, 503 on every request, weight 50, min_requests 20, 100 requests/s, {workers} workers: at most {worst} requests, within {seconds} s (20 seeds)");
        // One worker: its 20th target response, about 40 requests. More
        // workers: whichever comes first, a worker's 20th or the first
        // tick's merge of them all (100 requests in).
        assert!(worst <= if workers == 1 { 70 } else { 100 }, "{worst}");
    }
}

#[test]
fn a_slow_p99_trips_and_a_fast_one_does_not() {
    let guard = plan(|p| {
        p.min_requests = 20;
        p.max_p99_ms = Some(200.0);
    });
    let slow = Traffic {
        weight: 0.5,
        stable: HEALTHY,
        target: latency(300, 310),
        rate: 100,
    };
    let tripped = Fleet::new(guard, 2, 7).run(slow, 1_000).expect("tripped");
    assert_eq!(tripped.trip.rule, Rule::P99);
    assert!(
        (288.0..=320.0).contains(&tripped.trip.measured),
        "{}",
        tripped.trip
    );
    println!(
        "p99_ms, 300 ms target against 200, min_requests 20, 2 workers: {} requests ({})",
        tripped.requests, tripped.trip
    );
    assert!(tripped.requests <= 100);

    // 1 % of the target's responses at 300 ms is not over its p99: only
    // more than 1 % is. Just under 1 % slow, over 20,000 requests.
    let mut local = Local::new(&guard, 2);
    for i in 0..20_000u64 {
        let ms = if i % 101 == 100 { 300 } else { 150 };
        local.record(START + (i / 500) as i64, 1, Class::Success, Some(ms));
        assert_eq!(local.judge(), None, "request {i}");
    }
    let fine = Traffic {
        target: latency(100, 199),
        ..slow
    };
    assert!(Fleet::new(guard, 2, 7).run(fine, 20_000).is_none());
}

#[test]
fn p95_ratio_trips_at_twice_the_stable_latency_and_not_at_equal() {
    let guard = plan(|p| {
        p.min_requests = 50;
        p.max_p95_ratio = Some(2.0);
    });
    let equal = Traffic {
        weight: 0.1,
        stable: latency(20, 120),
        target: latency(20, 120),
        rate: 200,
    };
    for seed in 1..=3 {
        assert!(Fleet::new(guard, 2, seed).run(equal, 20_000).is_none());
    }
    // 1.5 times slower is within a 2.0 ratio.
    let slower = Traffic {
        target: latency(30, 180),
        ..equal
    };
    assert!(Fleet::new(guard, 2, 1).run(slower, 20_000).is_none());
    // Fast clusters whose ratio is the clock's rounding do not trip.
    let rounding = Traffic {
        stable: latency(1, 2),
        target: latency(3, 6),
        ..equal
    };
    assert!(Fleet::new(guard, 2, 1).run(rounding, 20_000).is_none());

    let doubled = Traffic {
        target: latency(45, 250),
        ..equal
    };
    for weight in [0.1, 0.5] {
        let tripped = Fleet::new(guard, 2, 3)
            .run(Traffic { weight, ..doubled }, 20_000)
            .expect("tripped");
        assert_eq!(tripped.trip.rule, Rule::P95Ratio);
        assert!(tripped.trip.measured > 2.0, "{}", tripped.trip);
        println!(
            "p95_ratio, target 2.1x stable, weight {}, min_requests 50, 2 workers: {} requests ({})",
            weight * 100.0,
            tripped.requests,
            tripped.trip
        );
    }
}

// ---- the sequential test ----

fn ratio_guard() -> GuardPlan {
    plan(|p| {
        p.max_error_ratio = Some(2.0);
        p.alpha = 0.001;
    })
}

#[test]
fn equal_error_rates_never_trip_the_sequential_test() {
    let traffic = Traffic {
        weight: 0.5,
        stable: errors(0.02),
        target: errors(0.02),
        rate: 200,
    };
    let mut seed = 0;
    for workers in [1, 2, 4] {
        for weight in [0.1, 0.5, 0.9] {
            seed += 1;
            let mut fleet = Fleet::new(ratio_guard(), workers, seed);
            let tripped = fleet.run(Traffic { weight, ..traffic }, 20_000);
            assert!(
                tripped.is_none(),
                "{workers} workers, weight {weight}: {tripped:?}"
            );
            let evidence = fleet.merged().tests()[0].log_evidence();
            assert!(evidence < 1.0, "{evidence}");
        }
    }
}

#[test]
fn ten_times_the_stable_error_rate_trips_the_sequential_test() {
    let traffic = Traffic {
        weight: 0.5,
        stable: errors(0.01),
        target: errors(0.10),
        rate: 200,
    };
    for weight in [0.1, 0.5] {
        for workers in [1, 4] {
            let mut runs: Vec<(u64, i64)> = (1..=20)
                .map(|seed| {
                    let tripped = Fleet::new(ratio_guard(), workers, seed)
                        .run(Traffic { weight, ..traffic }, 50_000)
                        .expect("tripped");
                    assert_eq!(tripped.trip.rule, Rule::ErrorRatio);
                    assert_eq!(tripped.seen, Seen::Merged);
                    (tripped.requests, tripped.seconds + 1)
                })
                .collect();
            runs.sort_unstable();
            let (median, max) = (runs[runs.len() / 2], runs[runs.len() - 1]);
            println!(
                "error_ratio, 10 % against 1 %, k 2, alpha 0.001, weight {}, 200 requests/s, {workers} workers: median {} requests ({} s), max {} ({} s) (20 seeds)",
                weight * 100.0,
                median.0,
                median.1,
                max.0,
                max.1
            );
            assert!(max.0 < 10_000, "{runs:?}");
        }
    }
}

/// The false-alarm rate of the sequential test over `runs` healthy runs of
/// `requests` requests, in batches of 20 to 200 (one merged delta each, one
/// second apart), at weights from 5 to 95 %.
fn false_alarm_rate(runs: u64, requests: u64, alpha: f64, stable: f64, ratio: f64) -> f64 {
    let k = 2.0;
    let mut rng = Rng(0x5eed ^ runs ^ (ratio * 1000.0) as u64);
    let weights = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95];
    let mut alarms = 0;
    for run in 0..runs {
        let weight = weights[(run % weights.len() as u64) as usize];
        let mut test = ErrorRatioTest::default();
        let (mut sent, mut now) = (0, START);
        while sent < requests {
            let size = (20 + rng.below(181)).min(requests - sent);
            sent += size;
            let n_t = rng.binomial(size, weight);
            let n_s = size - n_t;
            let batch = Batch {
                target_responses: n_t,
                target_errors: rng.binomial(n_t, stable * ratio),
                stable_responses: n_s,
                stable_errors: rng.binomial(n_s, stable),
            };
            test.fold(now, k, batch);
            now += 1;
            if test.rejects(alpha) {
                alarms += 1;
                break;
            }
        }
    }
    alarms as f64 / runs as f64
}

/// The measured rate may exceed `alpha` by noise alone: three binomial
/// standard deviations of `runs` draws at rate `alpha` (a true rate of
/// `alpha` fails this about once in 700).
fn noise_margin(alpha: f64, runs: u64) -> f64 {
    3.0 * (alpha * (1.0 - alpha) / runs as f64).sqrt()
}

#[test]
fn the_sequential_tests_false_alarm_rate_is_at_most_alpha() {
    let (runs, requests, alpha) = (2_000, 20_000, 0.05);
    let bound = alpha + noise_margin(alpha, runs);
    for (stable, ratio, what) in [
        (0.02, 1.0, "equal rates, 2 %"),
        (0.01, 2.0, "ratio exactly k, 1 % and 2 %"),
    ] {
        let rate = false_alarm_rate(runs, requests, alpha, stable, ratio);
        println!(
            "false alarms, {what}, alpha {alpha}: {rate} ({runs} runs of {requests} requests)"
        );
        assert!(rate <= bound, "{what}: {rate} > {bound}");
    }
}

#[test]
#[ignore = "long: the false-alarm rate at alpha 0.001 (run with --release)"]
fn the_sequential_tests_false_alarm_rate_at_alpha_0_001() {
    let (runs, requests, alpha) = (100_000, 20_000, 0.001);
    for (stable, ratio, what) in [
        (0.02, 1.0, "equal rates, 2 %"),
        (0.01, 1.0, "equal rates, 1 %"),
        (0.01, 2.0, "ratio exactly k, 1 % and 2 %"),
        (0.025, 2.0, "ratio exactly k, 2.5 % and 5 %"),
        (0.05, 2.0, "ratio exactly k, 5 % and 10 %"),
    ] {
        let rate = false_alarm_rate(runs, requests, alpha, stable, ratio);
        println!(
            "false alarms, {what}, alpha {alpha}: {rate} ({runs} runs of {requests} requests)"
        );
        assert!(rate <= alpha + noise_margin(alpha, runs), "{what}: {rate}");
    }
}

#[test]
#[ignore = "long: the false-alarm rate over runs of 500,000 requests (run with --release)"]
fn the_sequential_tests_false_alarm_rate_over_long_runs() {
    // About 40 minutes of batches a second: 40 start points begin.
    let (runs, requests, alpha) = (10_000, 500_000, 0.01);
    for (stable, ratio, what) in [
        (0.01, 2.0, "ratio exactly k, 1 % and 2 %"),
        (0.05, 2.0, "ratio exactly k, 5 % and 10 %"),
    ] {
        let rate = false_alarm_rate(runs, requests, alpha, stable, ratio);
        println!(
            "false alarms, {what}, alpha {alpha}: {rate} ({runs} runs of {requests} requests)"
        );
        assert!(rate <= alpha + noise_margin(alpha, runs), "{what}: {rate}");
    }
}

// ---- merging and bytes ----

/// Records the same responses into one window and into `workers` workers'
/// deltas merged in a shuffled order at every tick.
fn one_and_merged(workers: usize, seed: u64) -> (Window, Merged, GuardPlan) {
    let guard = plan(|p| {
        p.max_error_rate = Some(0.5);
        p.max_p99_ms = Some(250.0);
        p.max_error_ratio = Some(2.0);
    });
    let mut rng = Rng(seed);
    let mut one = Window::new(&guard, 2);
    let mut locals: Vec<Local> = (0..workers).map(|_| Local::new(&guard, 2)).collect();
    let mut shared = Merged::new(&guard, 2).encode();
    let mut order: Vec<usize> = (0..workers).collect();
    for second in 0..45 {
        let now = START + second;
        for _ in 0..rng.below(300) {
            let cluster = rng.below(2) as usize;
            let class = if rng.chance(0.05) {
                Class::Reset
            } else {
                Class::Success
            };
            let ms = rng.below(1_000) * rng.below(3);
            let latency = (!rng.chance(0.01)).then_some(ms);
            one.record(now, cluster, class, latency);
            locals[rng.below(workers as u64) as usize].record(now, cluster, class, latency);
        }
        rng.shuffle(&mut order);
        for &w in &order {
            let mut merged = Merged::decode(&guard, 2, &shared).expect("decodes");
            merged.absorb(now, locals[w].delta());
            shared = merged.encode();
            locals[w].clear_delta();
        }
    }
    let merged = Merged::decode(&guard, 2, &shared).expect("decodes");
    (one, merged, guard)
}

#[test]
fn merged_deltas_equal_recording_everything_in_one_window() {
    for workers in [1, 2, 4] {
        let (one, merged, _) = one_and_merged(workers, 11);
        assert_eq!(merged.window(), &one, "{workers} workers");
        assert!(merged.window().counts(1).responses > 1_000);
        assert_eq!(merged.window().quantile(1, 0.99), one.quantile(1, 0.99));
    }
}

#[test]
fn the_sequential_test_does_not_depend_on_how_batches_are_cut_when_no_errors() {
    // Batches without errors carry no evidence however they are cut.
    let mut a = ErrorRatioTest::default();
    let mut b = ErrorRatioTest::default();
    a.fold(
        START,
        2.0,
        Batch {
            target_responses: 10,
            stable_responses: 10,
            ..Batch::default()
        },
    );
    for _ in 0..10 {
        b.fold(
            START,
            2.0,
            Batch {
                target_responses: 1,
                stable_responses: 1,
                ..Batch::default()
            },
        );
    }
    assert_eq!(a.log_evidence(), b.log_evidence());
    assert_eq!(a.target_responses(), b.target_responses());
}

#[test]
fn encode_and_decode_round_trip() {
    let (_, mut merged, guard) = one_and_merged(3, 5);
    merged.latch(Trip {
        target: 1,
        rule: Rule::ErrorRatio,
        measured: f64::INFINITY,
        limit: 2.0,
    });
    let bytes = merged.encode();
    let back = Merged::decode(&guard, 2, &bytes).expect("decodes");
    assert_eq!(back, merged);
    assert_eq!(back.encode(), bytes);
    // An empty state too.
    let empty = Merged::new(&guard, 2);
    assert_eq!(Merged::decode(&guard, 2, &empty.encode()), Some(empty));
}

#[test]
fn bytes_of_another_configuration_are_not_read() {
    let (_, merged, guard) = one_and_merged(2, 5);
    let bytes = merged.encode();
    let other = GuardPlan {
        min_requests: 51,
        ..guard
    };
    assert_eq!(Merged::decode(&other, 2, &bytes), None);
    assert_eq!(Merged::decode(&guard, 3, &bytes), None);
    let mut other_format = bytes.clone();
    other_format[2] += 1;
    assert_eq!(Merged::decode(&guard, 2, &other_format), None);
    let mut trailing = bytes;
    trailing.push(0);
    assert_eq!(Merged::decode(&guard, 2, &trailing), None);
}

#[test]
fn hostile_bytes_never_panic() {
    let (_, merged, guard) = one_and_merged(2, 9);
    let bytes = merged.encode();
    // Every truncation.
    for len in 0..bytes.len() {
        assert_eq!(Merged::decode(&guard, 2, &bytes[..len]), None, "{len}");
    }
    // Every single-byte change: refused, or decoded into a state that can
    // be judged, absorbed into and encoded again.
    let mut rng = Rng(3);
    // Every byte of the header and the tests, then a sample of the slots.
    let positions = (0..bytes.len()).filter(|&i| i < 300 || i % 13 == 0);
    for i in positions {
        let mut bent = bytes.clone();
        bent[i] ^= 1 << rng.below(8);
        if let Some(mut m) = Merged::decode(&guard, 2, &bent) {
            let _ = m.judge();
            m.absorb(START + 50, merged.window());
            let _ = m.encode();
        }
    }
    // Random garbage, some of it behind a valid header.
    for n in 0..2_000 {
        let len = rng.below(400) as usize;
        let mut junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if n % 2 == 0 {
            let header = bytes.len().min(11 + rng.below(60) as usize);
            junk.splice(0..0, bytes[..header].iter().copied());
        }
        if let Some(m) = Merged::decode(&guard, 2, &junk) {
            let _ = m.judge();
        }
    }
}

#[test]
fn the_merged_state_of_a_busy_split_fits_the_budget() {
    // 30 s at 2,000 responses/s per cluster, latencies over the whole
    // histogram (1 ms to 100 s, log-uniform).
    let guard = plan(|p| p.max_error_ratio = Some(2.0));
    let mut rng = Rng(1);
    let mut merged = Merged::new(&guard, 2);
    let mut delta = Window::new(&guard, 2);
    for second in 0..30 {
        for i in 0..4_000 {
            let ms = (1e5f64.powf(rng.unit())) as u64;
            delta.record(START + second, i % 2, Class::Success, Some(ms));
        }
        merged.absorb(START + second, &delta);
        delta.clear();
    }
    let size = merged.encode().len();
    println!("encoded merged state, 1 stable + 1 target, 30 s, every bucket in use: {size} bytes");
    assert!(size <= 32 * 1024, "{size}");
}

#[test]
fn a_trip_makes_one_clear_log_line() {
    let trip = Trip {
        target: 1,
        rule: Rule::ErrorRate,
        measured: 0.35,
        limit: 0.01,
    };
    assert_eq!(
        trip.to_string(),
        "target=1 rule=error_rate measured=0.35 limit=0.01"
    );
    let clusters = ["legacy".to_string(), "fastapi".to_string()];
    assert_eq!(
        trip.log_line("users", &clusters),
        "guard tripped: split=users cluster=fastapi rule=error_rate measured=0.35 limit=0.01"
    );
    let names: Vec<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names, ["error_rate", "p99_ms", "p95_ratio", "error_ratio"]);
}

#[test]
fn no_traffic_is_no_evidence() {
    let guard = plan(|p| {
        p.min_requests = 1;
        p.max_error_rate = Some(0.01);
        p.max_p99_ms = Some(1.0);
        p.max_p95_ratio = Some(1.0);
        p.max_error_ratio = Some(1.0);
    });
    let mut merged = Merged::new(&guard, 2);
    let mut local = Local::new(&guard, 2);
    for second in 0..600 {
        local.advance(START + second);
        assert_eq!(local.judge(), None);
        merged.absorb(START + second, local.delta());
        assert_eq!(merged.judge(), None);
    }
    // Only stable traffic, with errors: nothing to judge a target on.
    for second in 0..600 {
        local.record(START + second, 0, Class::ServerError, Some(1_000));
        merged.absorb(START + second, local.delta());
        local.clear_delta();
        assert_eq!((local.judge(), merged.judge()), (None, None));
    }
    assert!(merged.tests()[0].log_evidence().abs() < 1e-9);
}

#[test]
fn old_slots_leave_the_window() {
    let guard = plan(|p| {
        p.min_requests = 10;
        p.max_error_rate = Some(0.1);
    });
    let mut local = Local::new(&guard, 2);
    for _ in 0..10 {
        local.record(START, 1, Class::ServerError, None);
    }
    assert_eq!(local.judge().map(|t| t.rule), Some(Rule::ErrorRate));
    // 29 s later the errors are still in the 30 s window; at 30 s they are out.
    local.advance(START + 29);
    assert_eq!(local.window().counts(1).errors, 10);
    local.advance(START + 30);
    assert_eq!(local.window().counts(1).responses, 0);
    assert_eq!(local.judge(), None);
    // A response from before the window is dropped; a clock that went back
    // a little still counts in its own slot.
    local.record(START, 1, Class::ServerError, None);
    local.record(START + 25, 1, Class::ServerError, None);
    assert_eq!(local.window().counts(1).responses, 1);
    // A window of an hour has 2-minute slots.
    let long = GuardPlan {
        window_s: 3600,
        ..guard
    };
    let layout = Window::new(&long, 2).layout();
    assert_eq!((layout.slot_s, layout.slots), (120, 30));
}
