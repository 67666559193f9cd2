//! The in-proxy guard in the real Envoy with two workers: a canary made to
//! fail by Envoy's fault filter (placed after turnout, so turnout counts
//! its aborts and delays as a failing upstream's) trips its split, every
//! worker follows, and the latch holds until the split changes. Healthy or
//! merely noisy canaries never trip.
//!
//! Figures are printed (`cargo test --test guard -- --nocapture`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use integration::bootstrap::fault_filter;
use integration::stage::{Stage, DECISION_HEADER};
use integration::Build;
use integration::HttpClient;

/// Two workers, each with its own VM: the guard must act on both.
const WORKERS: u32 = 2;

/// One guard test at a time: each drives thousands of requests through
/// two workers and judges how soon a trip came, which two such tests
/// sharing the machine's two cores (one per build) would skew.
fn alone() -> std::sync::MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Generous bound for waits that end as soon as their condition holds.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Split `users` from `legacy` to `fastapi` at `weight` %, with `guard`
/// (a JSON object) and the debug header, which says each request's
/// cluster and reason.
fn guarded(weight: u32, guard: &str) -> String {
    format!(
        r#"{{"debug": true, "splits": [{{"name": "users", "match": {{"route": "users"}},
        "stable": "legacy", "targets": [{{"cluster": "fastapi", "weight": {weight}}}],
        "guard": {guard}}}]}}"#
    )
}

/// The fault filter for one cluster of the decision.
fn fault(cluster: &str, abort_bp: u32, delay_bp: u32, delay_ms: u32) -> String {
    fault_filter(DECISION_HEADER, cluster, abort_bp, delay_bp, delay_ms)
}

/// One answered request: its place in the run, when it was answered, and
/// the cluster and reason of turnout's decision.
#[derive(Clone, Debug)]
struct Answer {
    index: usize,
    at: Duration,
    status: u16,
    cluster: String,
    reason: String,
}

/// The decision's cluster and reason, from `x-turnout-decision`.
fn decision_of(r: &integration::Response) -> (String, String) {
    let header = r.header("x-turnout-decision").unwrap_or_default();
    let field = |name: &str| {
        header
            .split("; ")
            .find_map(|f| f.strip_prefix(name))
            .unwrap_or_default()
            .to_string()
    };
    (field("cluster="), field("reason="))
}

/// Sends `total` requests to `/users`, each from a new user, over
/// `connections` concurrent connections (Envoy spreads connections over
/// its workers), and returns the answers in the order they were sent.
fn drive(stage: &Stage, connections: usize, total: usize, users: &str) -> Vec<Answer> {
    let port = stage.envoy.listener_port("main");
    let next = AtomicUsize::new(0);
    let answers = Mutex::new(Vec::with_capacity(total));
    let start = Instant::now();
    thread::scope(|s| {
        for _ in 0..connections {
            s.spawn(|| {
                let mut client = HttpClient::new(port);
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= total {
                        break;
                    }
                    let user = format!("{users}-{index}");
                    let r = client.get("/users", &[("x-user-id", &user)]);
                    let (cluster, reason) = decision_of(&r);
                    assert!(
                        !cluster.is_empty(),
                        "no decision: {} {}",
                        r.status,
                        r.body_str()
                    );
                    let answer = Answer {
                        index,
                        at: start.elapsed(),
                        status: r.status,
                        cluster,
                        reason,
                    };
                    answers.lock().expect("answers").push(answer);
                }
            });
        }
    });
    let mut answers = answers.into_inner().expect("answers");
    answers.sort_by_key(|a| a.index);
    answers
}

/// The last request sent to the canary, if any.
fn last_canary(answers: &[Answer]) -> Option<&Answer> {
    answers.iter().rev().find(|a| a.cluster == "fastapi")
}

fn tripped_gauge(stage: &Stage) -> Option<u64> {
    stage.envoy.stat(&format!(
        "{}.turnout.guard_tripped.split.users",
        stage.build.stats_namespace()
    ))
}

/// After a trip: once every worker has had a tick to follow it, requests
/// over fresh connections (spread over both workers) all go to stable
/// with reason `guard`.
fn assert_everyone_on_stable(stage: &Stage, users: &str) {
    std::thread::sleep(Duration::from_millis(1200));
    for answer in drive(stage, 20, 200, users) {
        assert_eq!(
            (answer.cluster.as_str(), answer.reason.as_str()),
            ("legacy", "guard"),
            "{answer:?}"
        );
    }
    assert_eq!(tripped_gauge(stage), Some(1));
}

/// The one warning line of a trip, from Envoy's log.
fn trip_lines(stage: &Stage) -> Vec<String> {
    stage
        .envoy
        .log()
        .lines()
        .filter(|l| l.contains("guard tripped"))
        .map(str::to_string)
        .collect()
}

/// With no request after the run, the trip shows anyway: the gauge at 1
/// and the warning line, within a second (the worker that finds a trip
/// records it at once; it does not wait for a tick or another request).
fn assert_shown_without_traffic(stage: &Stage, rule: &str) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let gauge = tripped_gauge(stage);
        let lines = trip_lines(stage);
        if gauge == Some(1) && lines.iter().any(|l| l.contains(&format!("rule={rule}"))) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no trip shown a second after the run, with no traffic: gauge {gauge:?}, lines {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How soon a trip must come.
#[derive(Clone, Copy, Debug)]
enum Within {
    /// Before this request of the run: for canaries that fail at once.
    Requests(usize),
    /// Before the canary got this many requests: for slow canaries. While
    /// a canary request waits, stable's go on over the other connections,
    /// as many as the machine manages (over a thousand in 400 ms on a
    /// quiet one), so the trip's place in the whole run says little.
    CanaryRequests(usize),
}

/// Starts a stage whose canary fails as `faults` make it, sends `total`
/// new users over `connections`, and checks the split tripped by `rule`
/// `within` the bound, and that every worker followed. Prints the
/// figures under `label`.
fn assert_trips(
    build: Build,
    label: &str,
    guard: &str,
    faults: &[String],
    (connections, total, within): (usize, usize, Within),
    rule: &str,
) -> (Stage, Answer) {
    let stage = Stage::inline_with_before(build, &guarded(50, guard), WORKERS, faults);
    let answers = drive(&stage, connections, total, label);
    let last = last_canary(&answers)
        .expect("the canary got requests first")
        .clone();
    let canary = answers.iter().filter(|a| a.cluster == "fastapi").count();
    println!(
        "{label}: last canary request #{} at {:.0} ms ({canary} to the canary)",
        last.index,
        last.at.as_secs_f64() * 1000.0
    );
    // The trip came during the run, not at the tick after it.
    assert!(
        answers.iter().any(|a| a.reason == "guard"),
        "no request of {total} was sent back; {canary} went to the canary"
    );
    match within {
        Within::Requests(n) => assert!(last.index < n, "{last:?}"),
        Within::CanaryRequests(n) => assert!(canary < n, "{canary} to the canary; {last:?}"),
    }
    assert_shown_without_traffic(&stage, rule);
    assert_everyone_on_stable(&stage, &format!("{label}-after"));
    let lines = trip_lines(&stage);
    assert!(
        lines
            .first()
            .is_some_and(|l| l.contains(&format!("rule={rule}"))),
        "{lines:?}\n{}",
        stage.envoy.tail()
    );
    (stage, last)
}

fn a_canary_answering_503_trips_within_200_requests_and_2_seconds_on_every_worker(build: Build) {
    let _alone = alone();
    let (stage, last) = assert_trips(
        build,
        "503 canary",
        r#"{"min_requests": 20, "max_error_rate": 0.05}"#,
        &[fault("fastapi", 10_000, 0, 0)],
        (8, 1000, Within::Requests(200)),
        "error_rate",
    );
    assert!(last.at < Duration::from_secs(2), "{last:?}");
    let line = &trip_lines(&stage)[0];
    for needle in ["split=users", "cluster=fastapi", "limit=0.05"] {
        assert!(line.contains(needle), "{needle} not in {line}");
    }
}

/// Connections each worker has accepted on the main listener, by worker.
fn connections_by_worker(stage: &Stage) -> Vec<u64> {
    // The listeners bind port 0: their stats carry the configured address.
    let listener = "listener.127.0.0.1_0.worker_";
    let mut counts = vec![0; WORKERS as usize];
    for line in stage.envoy.stats().lines() {
        let Some(rest) = line.strip_prefix(listener) else {
            continue;
        };
        let Some((worker, value)) = rest.split_once(".downstream_cx_total: ") else {
            continue;
        };
        if let (Ok(w), Ok(v)) = (worker.parse::<usize>(), value.trim().parse()) {
            counts[w] = v;
        }
    }
    counts
}

/// The canary fails over one connection, so one worker alone sees it and
/// trips; the other worker, which served none of it, follows (the wasm
/// build's VMs through the shared record at their tick; the native
/// build's workers share the configuration's state).
fn a_trip_one_worker_finds_is_followed_by_the_other(build: Build) {
    let _alone = alone();
    let guard = r#"{"min_requests": 20, "max_error_rate": 0.05}"#;
    let faults = [fault("fastapi", 10_000, 0, 0)];
    let stage = Stage::inline_with_before(build, &guarded(50, guard), WORKERS, &faults);
    let answers = drive(&stage, 1, 300, "one-worker");
    assert!(answers.iter().any(|a| a.reason == "guard"), "no trip");
    let finder = connections_by_worker(&stage);
    assert_eq!(finder.iter().sum::<u64>(), 1, "one connection: {finder:?}");
    let other = finder.iter().position(|&n| n == 0).expect("an idle worker");
    assert_everyone_on_stable(&stage, "other-worker");
    let after = connections_by_worker(&stage);
    assert!(
        after[other] > 0,
        "the other worker served none of the connections after the trip: {after:?}"
    );
}

fn a_slow_canary_trips_max_p99_ms(build: Build) {
    let _alone = alone();
    assert_trips(
        build,
        "300 ms canary",
        r#"{"min_requests": 20, "max_p99_ms": 200}"#,
        &[fault("fastapi", 0, 10_000, 300)],
        // A worker judges at its 20th slow answer, the tick at the 20th of
        // both: about 40 plus those in flight on 16 connections.
        (16, 1200, Within::CanaryRequests(200)),
        "p99_ms",
    );
}

fn a_canary_slower_than_stable_trips_max_p95_ratio(build: Build) {
    let _alone = alone();
    assert_trips(
        build,
        "60 ms canary beside a prompt stable",
        r#"{"min_requests": 20, "max_p95_ratio": 2.0}"#,
        &[fault("fastapi", 0, 10_000, 60)],
        // As for the slow canary (stable has its 20 long before).
        (16, 1200, Within::CanaryRequests(200)),
        "p95_ratio",
    );
}

fn noise_below_the_limits_and_too_few_requests_never_trip(build: Build) {
    let _alone = alone();
    // 0.5 % errors against a 1 % limit, over 10,000 requests.
    let stage = Stage::inline_with_before(
        build,
        &guarded(50, r#"{"max_error_rate": 0.01}"#),
        WORKERS,
        &[fault("fastapi", 50, 0, 0)],
    );
    let answers = drive(&stage, 8, 10_000, "n");
    let sent_back = answers.iter().filter(|a| a.reason == "guard").count();
    // What the canary really answered, should it trip: a loaded machine
    // can add resets (also errors) to the fault filter's 0.5 %.
    let canary: Vec<&Answer> = answers.iter().filter(|a| a.cluster == "fastapi").collect();
    let failed = canary.iter().filter(|a| a.status != 200).count();
    assert_eq!(
        sent_back,
        0,
        "tripped on noise ({failed} of {} canary answers were not 200):\n{:?}",
        canary.len(),
        trip_lines(&stage)
    );
    assert_eq!(tripped_gauge(&stage), Some(0));
    drop(stage);

    // Every canary request fails, but fewer than min_requests arrive.
    let stage = Stage::inline_with_before(
        build,
        &guarded(50, r#"{"min_requests": 1000, "max_error_rate": 0.01}"#),
        WORKERS,
        &[fault("fastapi", 10_000, 0, 0)],
    );
    let answers = drive(&stage, 8, 1200, "m");
    let canary = answers.iter().filter(|a| a.cluster == "fastapi").count();
    assert!(canary > 400 && canary < 1000, "{canary}");
    assert!(answers.iter().all(|a| a.reason != "guard"));
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(tripped_gauge(&stage), Some(0));
}

fn the_error_ratio_test_trips_at_ten_times_stable_and_not_at_equal_rates(build: Build) {
    let _alone = alone();
    let ratio = r#"{"max_error_ratio": 2.0, "alpha": 0.001}"#;
    // Both sides at 2 %, 20,000 requests: no evidence against the ratio.
    let stage = Stage::inline_with_before(
        build,
        &guarded(50, ratio),
        WORKERS,
        &[fault("fastapi", 200, 0, 0), fault("legacy", 200, 0, 0)],
    );
    let answers = drive(&stage, 8, 20_000, "e");
    assert!(
        answers.iter().all(|a| a.reason != "guard"),
        "{:?}",
        trip_lines(&stage)
    );
    drop(stage);

    // The canary at 10 %, stable at 1 %: tripped.
    assert_trips(
        build,
        "10 % canary beside 1 % stable",
        ratio,
        &[fault("fastapi", 1000, 0, 0), fault("legacy", 100, 0, 0)],
        (8, 12_000, Within::Requests(10_000)),
        "error_ratio",
    );
}

fn the_latch_holds_across_a_push_that_keeps_the_split_and_ends_with_one_that_changes_it(
    build: Build,
) {
    let _alone = alone();
    let guard = r#"{"min_requests": 20, "max_error_rate": 0.05}"#;
    let mut stage = Stage::ecds_with_before(
        build,
        &guarded(50, guard),
        WORKERS,
        &[fault("fastapi", 10_000, 0, 0)],
    );
    drive(&stage, 8, 400, "l");
    assert_everyone_on_stable(&stage, "l-tripped");

    // Another split added, this one untouched (its JSON laid out anew):
    // still latched, on both workers.
    let same = format!(
        r#"{{"debug": true, "splits": [
        {{"guard": {guard}, "targets": [{{"weight": 50, "cluster": "fastapi"}}],
          "stable": "legacy", "match": {{"route": "users"}}, "name": "users"}},
        {{"name": "orders", "match": {{"route": "orders"}}, "stable": "legacy", "targets": []}}]}}"#
    );
    stage.push(&same);
    assert_everyone_on_stable(&stage, "l-kept");

    // The operator decides to go on: the split changes, the latch ends.
    stage.push(&guarded(49, guard));
    let deadline = Instant::now() + TIMEOUT;
    while tripped_gauge(&stage) != Some(0) {
        assert!(Instant::now() < deadline, "the gauge stayed at 1");
        std::thread::sleep(Duration::from_millis(50));
    }
    let answers = drive(&stage, 1, 10, "l-resumed");
    assert!(
        answers
            .iter()
            .any(|a| a.cluster == "fastapi" && a.reason == "bucket"),
        "{answers:?}"
    );
}

integration::for_each_build!(
    a_canary_answering_503_trips_within_200_requests_and_2_seconds_on_every_worker,
    a_trip_one_worker_finds_is_followed_by_the_other,
    a_slow_canary_trips_max_p99_ms,
    a_canary_slower_than_stable_trips_max_p95_ratio,
    noise_below_the_limits_and_too_few_requests_never_trip,
    the_error_ratio_test_trips_at_ten_times_stable_and_not_at_equal_rates,
    the_latch_holds_across_a_push_that_keeps_the_split_and_ends_with_one_that_changes_it,
);
