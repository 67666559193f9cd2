//! Shadow traffic in the real Envoy: reads that a split sends to its
//! stable cluster are copied to the new side and compared with a second
//! answer of stable's, field by field, with every outcome counted exactly,
//! the user's answer stable's own and never held for the copy. Both
//! builds: the wasm build sends copies from its root context, the native
//! build from Envoy's main thread (docs/shadow-callouts.md).

use std::time::{Duration, Instant};

use integration::stage::Stage;
use integration::Build;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Split `users` (all on legacy) shadowed to fastapi with `shadow`, and
/// split `orders` shadowed with a 300 ms timeout.
fn config(shadow: &str) -> String {
    format!(
        r#"{{"splits": [
        {{"name": "users", "match": {{"route": "users"}}, "stable": "legacy",
          "targets": [{{"cluster": "fastapi", "weight": 0}}], "shadow": {shadow}}},
        {{"name": "orders", "match": {{"route": "orders"}}, "stable": "legacy",
          "targets": [{{"cluster": "fastapi", "weight": 0}}],
          "shadow": {{"cluster": "fastapi", "timeout_ms": 300}}}}]}}"#
    )
}

/// `turnout.shadow_…` series of the stage, by the rest of its name.
fn stat(stage: &Stage, rest: &str) -> u64 {
    let name = format!("{}.turnout.{rest}", stage.build.stats_namespace());
    stage.envoy.stat(&name).unwrap_or(0)
}

fn outcome(stage: &Stage, split: &str, outcome: &str) -> u64 {
    stat(
        stage,
        &format!("shadow_total.split.{split}.cluster.fastapi.outcome.{outcome}"),
    )
}

/// Waits until `split`'s compared and refused copies add up to `n`.
fn wait_settled(stage: &Stage, split: &str, n: u64) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let all: u64 = ["match", "mismatch", "error", "timeout", "skipped"]
            .iter()
            .map(|o| outcome(stage, split, o))
            .sum();
        if all >= n {
            assert_eq!(all, n, "more outcomes than copies");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{all} of {n} copies settled\n{}\n{}",
            stage
                .envoy
                .stats()
                .lines()
                .filter(|l| l.contains("shadow"))
                .collect::<Vec<_>>()
                .join("\n"),
            stage
                .envoy
                .log()
                .lines()
                .filter(|l| l.contains("wasm") || l.contains("turnout"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A canned answer: status and body.
type Canned = (u16, &'static str);

/// `path` answered the same by both sides, the new side 1.5 s late.
fn answers_late(stage: &Stage, path: &str) {
    stage.legacy.answer(path, 200, r#"{"a":1}"#, Duration::ZERO);
    let late = Duration::from_millis(1500);
    stage.fastapi.answer(path, 200, r#"{"a":1}"#, late);
}

/// Each path: what legacy and fastapi answer.
const PAIRS: [(&str, Canned, Canned); 6] = [
    // The same JSON, reordered and spaced differently: a match.
    (
        "/users/same",
        (200, r#"{"id":1,"name":"ada","tags":["a","b"]}"#),
        (200, r#"{ "tags": [ "a", "b" ],  "name": "ada", "id": 1 }"#),
    ),
    // 2 against 2.0: a match.
    (
        "/users/number",
        (200, r#"{"id":1,"price":2}"#),
        (200, r#"{"id":1,"price":2.0}"#),
    ),
    // An ignored field: a match.
    (
        "/users/ignored",
        (200, r#"{"request_id":"r-1","v":1}"#),
        (200, r#"{"request_id":"r-2","v":1}"#),
    ),
    // A changed field: /name.
    (
        "/users/field",
        (200, r#"{"id":1,"name":"ada"}"#),
        (200, r#"{"id":1,"name":"Ada"}"#),
    ),
    // A changed element of an array: /items/*/price.
    (
        "/users/array",
        (200, r#"{"items":[{"price":1},{"price":2}]}"#),
        (200, r#"{"items":[{"price":1},{"price":3}]}"#),
    ),
    // The new side fails: status only.
    (
        "/users/status",
        (200, r#"{"ok":true}"#),
        (500, r#"{"ok":true}"#),
    ),
];

const ROUNDS: u64 = 4;

fn every_outcome_and_field_is_counted_exactly_and_the_user_gets_stable(build: Build) {
    let shadow =
        r#"{"cluster": "fastapi", "compare": {"ignore": ["/request_id"]}, "min_requests": 1000}"#;
    let stage = Stage::inline_with(build, &config(shadow), 2);
    for (path, (ls, lb), (fs, fb)) in PAIRS {
        stage.legacy.answer(path, ls, lb, Duration::ZERO);
        stage.fastapi.answer(path, fs, fb, Duration::ZERO);
    }
    let mut client = stage.client();
    for round in 0..ROUNDS {
        for (path, (status, body), _) in PAIRS {
            let user = format!("u{round}");
            let r = client.get(path, &[("x-user-id", &user)]);
            assert_eq!((r.status, r.body_str().as_str()), (status, body), "{path}");
            assert_eq!(r.header("x-upstream").as_deref(), Some("legacy"));
        }
    }
    let copies = ROUNDS * PAIRS.len() as u64;
    wait_settled(&stage, "users", copies);
    assert_eq!(outcome(&stage, "users", "match"), 3 * ROUNDS);
    assert_eq!(outcome(&stage, "users", "mismatch"), 3 * ROUNDS);
    let part = |p: &str| {
        stat(
            &stage,
            &format!("shadow_mismatch_total.split.users.cluster.fastapi.part.{p}"),
        )
    };
    assert_eq!(
        (part("status"), part("body"), part("header")),
        (ROUNDS, 2 * ROUNDS, 0)
    );
    let field = |f: &str| stat(&stage, &format!("shadow_field_total.split.users.field.{f}"));
    assert_eq!(field("/name"), ROUNDS);
    assert_eq!(field("/items/*/price"), ROUNDS);
    assert_eq!(field("/request_id"), 0, "ignored");
    // The same series in Prometheus from both builds, the native's defined
    // as a labelled counter (Envoy defines no metric after config_new).
    let prometheus = stage.envoy.prometheus();
    for series in [
        format!(r#"turnout_shadow_field_total{{split="users",field="/name"}} {ROUNDS}"#),
        format!(r#"turnout_shadow_field_total{{split="users",field="/items/*/price"}} {ROUNDS}"#),
    ] {
        assert!(
            prometheus.lines().any(|l| l == series),
            "no {series} in\n{}",
            prometheus
                .lines()
                .filter(|l| l.contains("shadow_field"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // The new side saw each copy once, marked; stable its second answers.
    assert_eq!(stage.fastapi.copies(), copies);
    assert_eq!(stage.legacy.copies(), copies);
    let latency = format!(
        "{}.turnout.shadow_latency_ms.split.users.cluster.fastapi",
        stage.build.stats_namespace()
    );
    assert!(stage.envoy.stats().contains(&latency), "no {latency}");
    // At most one mismatch line per split per second, with no value.
    stage.envoy.wait_for_log("shadow mismatch", TIMEOUT);
    let log = stage.envoy.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("shadow mismatch"))
        .collect();
    assert!(
        !lines.is_empty() && lines.len() <= 3 * ROUNDS as usize,
        "{lines:?}"
    );
    for line in &lines {
        assert!(line.contains("split=users"), "{line}");
        assert!(
            !line.contains("Ada") && !line.contains("ada"),
            "a value in {line}"
        );
    }
}

fn a_copy_never_delays_the_user_and_a_late_one_is_still_compared(build: Build) {
    let stage = Stage::inline_with(
        build,
        &config(r#"{"cluster": "fastapi", "timeout_ms": 5000}"#),
        1,
    );
    answers_late(&stage, "/users/slow");
    answers_late(&stage, "/orders/slow");
    let mut client = stage.client();
    let start = Instant::now();
    let r = client.get("/users/slow", &[("x-user-id", "u")]);
    let answered = start.elapsed();
    assert_eq!(r.status, 200);
    // Stable answers at once: the user is not held for the 1.5 s copy.
    assert!(answered < Duration::from_millis(1000), "{answered:?}");
    assert_eq!(
        outcome(&stage, "users", "match"),
        0,
        "compared before the copy answered"
    );
    wait_settled(&stage, "users", 1);
    assert_eq!(outcome(&stage, "users", "match"), 1);
    // Past orders' 300 ms timeout: a timeout, counted.
    let r = client.get("/orders/slow", &[("x-user-id", "u")]);
    assert_eq!(r.status, 200);
    wait_settled(&stage, "orders", 1);
    assert_eq!(outcome(&stage, "orders", "timeout"), 1);
}

fn writes_and_bodies_are_not_copied_unless_asked(build: Build) {
    let shadow = r#"{"cluster": "fastapi", "max_body_bytes": 16}"#;
    let stage = Stage::inline_with(build, &config(shadow), 1);
    let mut client = stage.client();
    let r = client
        .request_with_body("POST", "/users/x", &[("x-user-id", b"u")], b"{}")
        .expect("POST");
    assert_eq!(r.header("x-upstream").as_deref(), Some("legacy"));
    // A GET is copied, the POST before it was not.
    let r = client.get("/users/x", &[("x-user-id", "u")]);
    assert_eq!(r.status, 200);
    wait_settled(&stage, "users", 1);
    assert_eq!(stage.fastapi.copies(), 1);
    // A read's body is copied with it, up to max_body_bytes.
    let r = client
        .request_with_body("GET", "/users/x", &[("x-user-id", b"u")], b"{\"q\":1}")
        .expect("GET with a body");
    assert_eq!(r.header("x-upstream").as_deref(), Some("legacy"));
    wait_settled(&stage, "users", 2);
    assert_eq!(stage.fastapi.copy_bodies()[1], b"{\"q\":1}");
    // Over it: not copied, counted skipped, the user unaffected.
    let big = vec![b'x'; 17];
    let r = client
        .request_with_body("GET", "/users/x", &[("x-user-id", b"u")], &big)
        .expect("GET with a big body");
    assert_eq!(r.status, 200);
    wait_settled(&stage, "users", 3);
    assert_eq!(outcome(&stage, "users", "skipped"), 1);
    assert_eq!(stage.fastapi.copies(), 2);
    // A client cannot mark a real request as a copy.
    let r = client.get("/other", &[("x-turnout-shadow", "1")]);
    assert!(
        !r.body_str().contains("x-turnout-shadow"),
        "{}",
        r.body_str()
    );
}

/// Dual writes: a POST reaches the new side with its body, once, and is
/// compared with the user's own answer (a write is never sent to stable
/// twice); a new side that answers 5xx is a mismatch on the status.
fn dual_writes_copy_the_body_and_compare_with_the_users_answer(build: Build) {
    let shadow =
        r#"{"cluster": "fastapi", "methods": ["POST"], "writes": true, "min_requests": 1000}"#;
    let stage = Stage::inline_with(build, &config(shadow), 1);
    stage
        .legacy
        .answer("/users/w", 201, r#"{"id":7,"name":"ada"}"#, Duration::ZERO);
    stage.fastapi.answer(
        "/users/w",
        201,
        r#"{"name":"ada","id":7.0}"#,
        Duration::ZERO,
    );
    stage
        .legacy
        .answer("/users/bad", 201, r#"{"id":8}"#, Duration::ZERO);
    stage
        .fastapi
        .answer("/users/bad", 500, r#"{"id":8}"#, Duration::ZERO);
    let mut client = stage.client();
    let body = br#"{"name":"ada"}"#;
    let r = client
        .request_with_body("POST", "/users/w", &[("x-user-id", b"u")], body)
        .expect("POST");
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (201, r#"{"id":7,"name":"ada"}"#)
    );
    wait_settled(&stage, "users", 1);
    assert_eq!(outcome(&stage, "users", "match"), 1);
    assert_eq!(stage.fastapi.copy_bodies(), vec![body.to_vec()]);
    assert_eq!(stage.legacy.requests(), 1, "a write reached stable twice");
    let r = client
        .request_with_body("POST", "/users/bad", &[("x-user-id", b"u")], body)
        .expect("POST");
    assert_eq!(r.status, 201);
    wait_settled(&stage, "users", 2);
    assert_eq!(outcome(&stage, "users", "mismatch"), 1);
    let status = stat(
        &stage,
        "shadow_mismatch_total.split.users.cluster.fastapi.part.status",
    );
    assert_eq!(status, 1);
    assert_eq!(stage.legacy.requests(), 2);
}

/// A new side that fails every write trips the shadow once it has
/// `min_requests` copies: the gauge, one line, and no copy after it; the
/// users' writes go on, untouched.
fn a_failing_new_side_stops_dual_writes(build: Build) {
    let shadow =
        r#"{"cluster": "fastapi", "methods": ["POST"], "writes": true, "min_requests": 5}"#;
    let stage = Stage::inline_with(build, &config(shadow), 1);
    stage
        .legacy
        .answer("/users/f", 201, r#"{"ok":true}"#, Duration::ZERO);
    stage
        .fastapi
        .answer("/users/f", 503, r#"{"ok":false}"#, Duration::ZERO);
    let mut client = stage.client();
    let post = |client: &mut integration::HttpClient| {
        let r = client
            .request_with_body("POST", "/users/f", &[("x-user-id", b"u")], b"{}")
            .expect("POST");
        assert_eq!(r.status, 201);
    };
    for n in 1..=5 {
        post(&mut client);
        wait_settled(&stage, "users", n);
    }
    assert_eq!(stat(&stage, "shadow_tripped.split.users"), 1);
    let copies = stage.fastapi.copies();
    assert_eq!(copies, 5);
    for _ in 0..5 {
        post(&mut client);
    }
    assert_eq!(stage.fastapi.copies(), copies, "copies after the trip");
    assert_eq!(stage.legacy.requests(), 10);
    // Envoy writes its log behind the stats.
    stage.envoy.wait_for_log("shadow tripped", TIMEOUT);
    let log = stage.envoy.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("shadow tripped"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("split=users cluster=fastapi"),
        "{}",
        lines[0]
    );
}

fn a_cluster_that_does_not_exist_is_counted_and_the_user_unaffected(build: Build) {
    let stage = Stage::inline_with(build, &config(r#"{"cluster": "nowhere"}"#), 1);
    let mut client = stage.client();
    for _ in 0..3 {
        let r = client.get("/users/x", &[("x-user-id", "u")]);
        assert_eq!(r.header("x-upstream").as_deref(), Some("legacy"));
    }
    let errors = |s: &Stage| {
        let name = format!(
            "{}.turnout.shadow_total.split.users.cluster.nowhere.outcome.error",
            s.build.stats_namespace()
        );
        s.envoy.stat(&name).unwrap_or(0)
    };
    let deadline = Instant::now() + TIMEOUT;
    while errors(&stage) < 3 {
        assert!(Instant::now() < deadline, "{}", errors(&stage));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(errors(&stage), 3);
}

/// A field that changes on every call is noise, not a mismatch, while a
/// real difference beside it still is one.
fn noise_is_told_from_a_real_difference(build: Build) {
    let shadow = r#"{"cluster": "fastapi", "noise": true, "min_requests": 1000}"#;
    let stage = Stage::inline_with(build, &config(shadow), 1);
    stage
        .legacy
        .answer("/users/n", 200, r#"{"n":{n},"v":1}"#, Duration::ZERO);
    stage
        .fastapi
        .answer("/users/n", 200, r#"{"n":{n},"v":2}"#, Duration::ZERO);
    let mut client = stage.client();
    for _ in 0..ROUNDS {
        assert_eq!(client.get("/users/n", &[("x-user-id", "u")]).status, 200);
    }
    wait_settled(&stage, "users", ROUNDS);
    let field = |kind: &str, f: &str| stat(&stage, &format!("{kind}.split.users.field.{f}"));
    assert_eq!(field("shadow_noise_total", "/n"), ROUNDS);
    assert_eq!(
        field("shadow_field_total", "/n"),
        0,
        "noise counted as a mismatch"
    );
    assert_eq!(field("shadow_field_total", "/v"), ROUNDS);
    assert_eq!(outcome(&stage, "users", "mismatch"), ROUNDS);
    // Stable answered each read three times: the user, and twice on the side.
    assert_eq!(stage.legacy.requests(), 3 * ROUNDS);
}

/// `percent` 30 copies about 30 % of the eligible requests.
fn percent_copies_a_share(build: Build) {
    let shadow = r#"{"cluster": "fastapi", "percent": 30, "min_requests": 1000}"#;
    let stage = Stage::inline_with(build, &config(shadow), 1);
    let mut client = stage.client();
    let total = 300;
    for i in 0..total {
        let user = format!("u{i}");
        assert_eq!(client.get("/users/p", &[("x-user-id", &user)]).status, 200);
    }
    // Copies go out after the user's answer (natively from Envoy's main
    // thread): some may still be on their way now. Counted once every copy
    // the new side received is settled, the two read together.
    let deadline = Instant::now() + TIMEOUT;
    let copies = loop {
        let copies = stage.fastapi.copies();
        let settled: u64 = ["match", "mismatch", "error", "timeout", "skipped"]
            .iter()
            .map(|o| outcome(&stage, "users", o))
            .sum();
        if copies > 0 && settled == copies && stage.fastapi.copies() == copies {
            break copies;
        }
        assert!(
            Instant::now() < deadline,
            "{settled} settled, {copies} copies received"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Binomial(300, 0.3): 90 expected, standard deviation 7.9; 4.5 of them
    // either side is a bound a working sampler misses once in 100,000 runs.
    assert!((55..=125).contains(&copies), "{copies} of {total} copied");
}

/// Hostile answers and requests: a body that is not JSON (compared as
/// bytes), a 5 MB answer from the new side, an answer that never comes (a
/// timeout), a 5 MB request body (not copied: skipped); each counted, the
/// user's answer stable's every time.
fn hostile_bodies_and_answers_are_counted_and_the_user_unaffected(build: Build) {
    let shadow = r#"{"cluster": "fastapi", "timeout_ms": 1000, "min_requests": 1000}"#;
    let stage = Stage::inline_with(build, &config(shadow), 1);
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(5 << 20));
    stage
        .legacy
        .answer("/users/text", 200, "<html>ok</html>", Duration::ZERO);
    stage
        .fastapi
        .answer("/users/text", 200, "<html>OK</html>", Duration::ZERO);
    stage
        .legacy
        .answer("/users/big", 200, r#"{"blob":"x"}"#, Duration::ZERO);
    stage
        .fastapi
        .answer("/users/big", 200, &big, Duration::ZERO);
    stage
        .legacy
        .answer("/users/hang", 200, "{}", Duration::ZERO);
    stage
        .fastapi
        .answer("/users/hang", 200, "{}", Duration::from_secs(30));
    let mut client = stage.client();
    for (path, body) in [
        ("/users/text", "<html>ok</html>"),
        ("/users/big", r#"{"blob":"x"}"#),
        ("/users/hang", "{}"),
    ] {
        let r = client.get(path, &[("x-user-id", "u")]);
        assert_eq!((r.status, r.body_str().as_str()), (200, body), "{path}");
    }
    let upload = vec![b'{'; 5 << 20];
    let r = client
        .request_with_body("GET", "/users/upload", &[("x-user-id", b"u")], &upload)
        .expect("a 5 MB request");
    assert_eq!(r.status, 200);
    wait_settled(&stage, "users", 4);
    let counts: Vec<u64> = ["mismatch", "timeout", "skipped"]
        .iter()
        .map(|o| outcome(&stage, "users", o))
        .collect();
    // text and big differ (as bytes, and at /blob); hang times out;
    // the upload is over max_body_bytes.
    assert_eq!(counts, [2, 1, 1]);
    let blob = stat(&stage, "shadow_field_total.split.users.field./blob");
    assert_eq!(blob, 1);
    assert!(stage.envoy.admin("/ready").0 == 200, "Envoy is not serving");
}

/// A shadow that would copy writes without `"writes": true` is refused on
/// push, naming the field, and the configuration before it keeps copying.
fn a_write_without_writes_is_refused_and_the_old_config_serves(build: Build) {
    let mut stage = Stage::ecds_with(build, &config(r#"{"cluster": "fastapi"}"#), 1);
    let refused = config(r#"{"cluster": "fastapi", "methods": ["GET", "POST"]}"#);
    stage.push_rejected(&refused);
    stage.envoy.wait_for_log(
        "configuration refused: splits[0].shadow.methods[1]: \"POST\" has side effects",
        TIMEOUT,
    );
    let mut client = stage.client();
    assert_eq!(client.get("/users/x", &[("x-user-id", "u")]).status, 200);
    wait_settled(&stage, "users", 1);
    let r = client
        .request_with_body("POST", "/users/x", &[("x-user-id", b"u")], b"{}")
        .expect("POST");
    assert_eq!(r.status, 200);
    assert_eq!(stage.fastapi.copies(), 1, "a write was copied");
}

/// Copies stopped by one worker stop on every worker (the wasm build's
/// VMs follow through the shared record at their tick), with one line.
fn stopped_copies_stop_on_every_worker_with_one_line(build: Build) {
    let shadow = r#"{"cluster": "fastapi", "min_requests": 5}"#;
    let stage = Stage::inline_with(build, &config(shadow), 2);
    stage.legacy.answer("/users/f", 200, "{}", Duration::ZERO);
    stage.fastapi.answer("/users/f", 503, "{}", Duration::ZERO);
    // One connection: one worker sees every failing copy.
    let mut client = stage.client();
    let deadline = Instant::now() + TIMEOUT;
    while stat(&stage, "shadow_tripped.split.users") == 0 {
        assert!(Instant::now() < deadline, "the copies never stopped");
        assert_eq!(client.get("/users/f", &[("x-user-id", "u")]).status, 200);
    }
    // Every worker has ticked (once a second) since.
    std::thread::sleep(Duration::from_millis(1500));
    let copies = stage.fastapi.copies();
    for _ in 0..10 {
        let mut fresh = stage.client();
        for _ in 0..4 {
            assert_eq!(fresh.get("/users/f", &[("x-user-id", "u")]).status, 200);
        }
    }
    assert_eq!(stage.fastapi.copies(), copies, "a worker went on copying");
    stage.envoy.wait_for_log("shadow tripped", TIMEOUT);
    let log = stage.envoy.log();
    let lines = log.lines().filter(|l| l.contains("shadow tripped")).count();
    assert_eq!(lines, 1);
}

integration::for_each_build!(
    stopped_copies_stop_on_every_worker_with_one_line,
    a_write_without_writes_is_refused_and_the_old_config_serves,
    hostile_bodies_and_answers_are_counted_and_the_user_unaffected,
    every_outcome_and_field_is_counted_exactly_and_the_user_gets_stable,
    a_copy_never_delays_the_user_and_a_late_one_is_still_compared,
    writes_and_bodies_are_not_copied_unless_asked,
    dual_writes_copy_the_body_and_compare_with_the_users_answer,
    a_failing_new_side_stops_dual_writes,
    a_cluster_that_does_not_exist_is_counted_and_the_user_unaffected,
    noise_is_told_from_a_real_difference,
    percent_copies_a_share,
);

/// A copy still running when its configuration is replaced is counted
/// once, as a copy that got no answer (`error`): Envoy cancels it without
/// a word in both builds (the wasm plugin's root context goes with the
/// push, the native configuration when Envoy destroys it), and turnout
/// answers what it still waits for as none when its configuration goes.
fn a_copy_in_flight_across_a_push_is_counted_once(build: Build) {
    let shadow = r#"{"cluster": "fastapi", "timeout_ms": 5000}"#;
    let mut stage = Stage::ecds_with(build, &config(shadow), 1);
    answers_late(&stage, "/users/slow");
    let mut client = stage.client();
    assert_eq!(client.get("/users/slow", &[("x-user-id", "u")]).status, 200);
    // The same shadow, another configuration, while the copy runs.
    stage.push(&config(r#"{"cluster": "fastapi", "timeout_ms": 4000}"#));
    wait_settled(&stage, "users", 1);
    assert_eq!(outcome(&stage, "users", "error"), 1);
    // Nothing more comes of it once the copy's answer is due.
    std::thread::sleep(Duration::from_millis(1500));
    wait_settled(&stage, "users", 1);
}

mod push {
    use super::*;
    integration::for_each_build!(a_copy_in_flight_across_a_push_is_counted_once);
}

/// Measures, does not assert (`cargo test -p integration --test shadow
/// memory -- --ignored --nocapture`): Envoy's resident memory per copy in
/// flight, with copies held 8 s by a slow new side (each pair keeps its
/// request's headers and stable's answer meanwhile, and Envoy its callout).
#[test]
#[ignore]
fn memory_per_copy_in_flight() {
    const COPIES: u64 = 500;
    for build in [Build::Wasm, Build::Native] {
        let shadow = r#"{"cluster": "fastapi", "timeout_ms": 20000, "max_in_flight": 10000}"#;
        let stage = Stage::inline_with(build, &config(shadow), 1);
        let body = format!(r#"{{"items":[{}]}}"#, vec!["1"; 200].join(","));
        stage.legacy.answer("/users/m", 200, &body, Duration::ZERO);
        stage
            .fastapi
            .answer("/users/m", 200, &body, Duration::from_secs(8));
        let mut client = stage.client();
        let rss = || {
            let status = std::fs::read_to_string(format!("/proc/{}/status", stage.envoy.pid()))
                .expect("status");
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
                .expect("VmRSS")
        };
        // Warm up: the connections and the VM's first allocations.
        for _ in 0..50 {
            client.get("/users/m", &[("x-user-id", "u")]);
        }
        std::thread::sleep(Duration::from_secs(9));
        let before = rss();
        let start = Instant::now();
        for _ in 0..COPIES {
            client.get("/users/m", &[("x-user-id", "u")]);
        }
        let after = rss();
        let sent = start.elapsed();
        let settled: u64 = ["match", "mismatch"]
            .iter()
            .map(|o| outcome(&stage, "users", o))
            .sum();
        println!(
            "{build:?}: {COPIES} copies in flight (sent in {sent:?}, {} settled meanwhile of 50 earlier): VmRSS {before} → {after} KiB, {:.1} KiB per copy",
            settled,
            (after as f64 - before as f64) / COPIES as f64
        );
    }
}
