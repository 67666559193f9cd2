//! The configuration runtime both builds share, on the host: a test host
//! keeps the gauges, the log lines and the shared record in memory, with
//! a clock the test sets. Several runtimes on one record are several
//! workers (the wasm build's VMs); one runtime driven by its requests is
//! the native build.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use turnout::decide::{Decision, Reason};
use turnout::flow::Shared;
use turnout::runtime::{Cadence, ConfigHost, Level, MetricKind, Runtime, MERGE_EVERY_NS};
use turnout::shadow::{Opened, Reply, Side};
use turnout::stats::Class;
use turnout::watch::SharedStore;

/// What every worker of one proxy shares: the record and the gauges (by
/// name, as Envoy aggregates them), the log and the clocks.
#[derive(Default)]
struct Proxy {
    records: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    /// Every metric defined, by id (several workers define one name).
    names: RefCell<Vec<String>>,
    gauges: RefCell<HashMap<String, u64>>,
    counters: RefCell<HashMap<String, u64>>,
    samples: RefCell<Vec<(String, u64)>>,
    log: RefCell<Vec<(Level, String)>>,
    unix: Cell<i64>,
    monotonic_ns: Cell<u64>,
    /// Writes to refuse as stale (another worker won the race) before
    /// one succeeds.
    stale_writes: Cell<usize>,
    /// The store fails (Envoy cannot say).
    broken: Cell<bool>,
}

/// One worker's view of the proxy: metric ids are gauge names.
#[derive(Clone)]
struct Worker(Rc<Proxy>);

impl SharedStore for Worker {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        if self.0.broken.get() {
            return None;
        }
        Some(
            self.0
                .records
                .borrow()
                .get(key)
                .cloned()
                .unwrap_or_default(),
        )
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Option<bool> {
        if self.0.broken.get() {
            return None;
        }
        if self.0.stale_writes.get() > 0 {
            self.0.stale_writes.set(self.0.stale_writes.get() - 1);
            // Another worker wrote meanwhile: the version moves on.
            let mut records = self.0.records.borrow_mut();
            let entry = records.entry(key.to_string()).or_default();
            entry.1 += 1;
            return Some(false);
        }
        let mut records = self.0.records.borrow_mut();
        let entry = records.entry(key.to_string()).or_default();
        if entry.1 != cas {
            return Some(false);
        }
        *entry = (value.to_vec(), cas + 1);
        Some(true)
    }
}

impl ConfigHost for Worker {
    type Metric = usize;

    fn define(&self, _kind: MetricKind, name: &str) -> Option<usize> {
        let mut names = self.0.names.borrow_mut();
        names.push(name.to_string());
        Some(names.len() - 1)
    }

    fn set_gauge(&self, gauge: usize, value: u64) {
        let name = self.0.names.borrow()[gauge].clone();
        self.0.gauges.borrow_mut().insert(name, value);
    }

    fn increment(&self, counter: usize, by: u64) {
        let name = self.0.names.borrow()[counter].clone();
        *self.0.counters.borrow_mut().entry(name).or_default() += by;
    }

    fn record(&self, histogram: usize, value: u64) {
        let name = self.0.names.borrow()[histogram].clone();
        self.0.samples.borrow_mut().push((name, value));
    }

    fn log(&self, level: Level, message: &str) {
        self.0.log.borrow_mut().push((level, message.to_string()));
    }

    fn unix_now(&self) -> i64 {
        self.0.unix.get()
    }

    fn monotonic_nanos(&self) -> u64 {
        self.0.monotonic_ns.get()
    }
}

fn runtime(proxy: &Rc<Proxy>, text: &str, cadence: Cadence) -> Runtime<Worker> {
    Runtime::configure(text.as_bytes(), Worker(Rc::clone(proxy)), cadence, 7)
        .expect("a valid configuration")
}

const GUARDED: &str = r#"{"splits": [{"name": "users", "match": {"route": "users"},
    "stable": "legacy", "targets": [{"cluster": "fastapi", "weight": 50}],
    "guard": {"min_requests": 20, "max_error_rate": 0.05}}]}"#;

const TRIPPED: &str = "turnout.guard_tripped.split.users";

fn canary() -> Decision {
    Decision {
        split: 0,
        cluster: 1,
        reason: Reason::Bucket,
        bucket: None,
    }
}

/// `n` canary answers of `class`, at the proxy's clock.
fn answer(runtime: &Runtime<Worker>, proxy: &Proxy, n: usize, class: Class) {
    for _ in 0..n {
        let now = proxy.monotonic_ns.get();
        runtime.observe(&canary(), class, Some(3), now);
    }
}

fn gauge(proxy: &Proxy) -> Option<u64> {
    proxy.gauges.borrow().get(TRIPPED).copied()
}

fn warnings(proxy: &Proxy) -> Vec<String> {
    let log = proxy.log.borrow();
    log.iter()
        .filter(|(level, _)| *level == Level::Warn)
        .map(|(_, line)| line.clone())
        .collect()
}

fn is_tripped(runtime: &Runtime<Worker>) -> bool {
    runtime.with_active(|a| a.is_tripped(0))
}

fn proxy() -> Rc<Proxy> {
    let proxy = Rc::new(Proxy::default());
    proxy.monotonic_ns.set(1_000_000_000);
    proxy.unix.set(1_800_000_000);
    proxy
}

#[test]
fn a_configuration_is_logged_and_its_gauges_are_set() {
    let proxy = proxy();
    let _runtime = runtime(&proxy, GUARDED, Cadence::Ticked);
    assert_eq!(
        proxy.log.borrow().as_slice(),
        [(Level::Info, "configuration applied (1 splits)".to_string())]
    );
    let gauges = proxy.gauges.borrow();
    assert_eq!(gauges.get(TRIPPED), Some(&0));
    let info = "turnout.stable_cluster_info.split.users.cluster";
    assert_eq!(gauges.get(&format!("{info}.legacy")), Some(&1));
    assert_eq!(gauges.get(&format!("{info}.fastapi")), Some(&0));
}

#[test]
fn a_refused_configuration_names_the_field_in_the_log() {
    let proxy = proxy();
    let text = br#"{"splits": [{"name": "a", "match": {"route": "a"}, "stable": "x", "targets": [{"cluster": "x", "weight": 1}]}]}"#;
    let refused = Runtime::configure(text, Worker(Rc::clone(&proxy)), Cadence::Ticked, 7);
    assert!(refused.is_none());
    let log = proxy.log.borrow();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].0, Level::Error);
    assert!(
        log[0]
            .1
            .starts_with("configuration refused: splits[0].targets[0].cluster"),
        "{log:?}"
    );
}

/// The native symptom this runtime mends: a trip one worker found
/// showed in the gauge and the log only when the next request came.
#[test]
fn a_trip_shows_in_the_gauge_and_the_log_at_once_in_either_cadence() {
    for cadence in [Cadence::Ticked, Cadence::ByRequests] {
        let proxy = proxy();
        let runtime = runtime(&proxy, GUARDED, cadence);
        answer(&runtime, &proxy, 19, Class::Success);
        assert!(!is_tripped(&runtime));
        answer(&runtime, &proxy, 40, Class::ServerError);
        assert!(is_tripped(&runtime), "{cadence:?}");
        // No tick, no further request.
        assert_eq!(gauge(&proxy), Some(1), "{cadence:?}");
        let lines = warnings(&proxy);
        assert_eq!(lines.len(), 1, "{cadence:?}: {lines:?}");
        assert!(lines[0].starts_with("guard tripped: split=users cluster=fastapi rule=error_rate"));
    }
}

#[test]
fn another_worker_follows_a_trip_at_its_tick_and_only_the_first_logs_it() {
    let proxy = proxy();
    let a = runtime(&proxy, GUARDED, Cadence::Ticked);
    let b = runtime(&proxy, GUARDED, Cadence::Ticked);
    answer(&a, &proxy, 40, Class::ServerError);
    assert!(is_tripped(&a));
    assert!(!is_tripped(&b), "b has not merged yet");
    b.tick();
    assert!(is_tripped(&b));
    a.tick();
    b.tick();
    assert_eq!(warnings(&proxy).len(), 1, "{:?}", warnings(&proxy));
}

/// Neither worker alone has `min_requests`; their sum, judged at the
/// merge, has. A merge that loses the race reads again and still adds.
#[test]
fn the_workers_counts_add_up_at_the_merge_even_after_lost_races() {
    let proxy = proxy();
    let a = runtime(&proxy, GUARDED, Cadence::Ticked);
    let b = runtime(&proxy, GUARDED, Cadence::Ticked);
    answer(&a, &proxy, 12, Class::ServerError);
    answer(&b, &proxy, 12, Class::ServerError);
    assert!(!is_tripped(&a) && !is_tripped(&b), "12 < min_requests each");
    proxy.stale_writes.set(3);
    a.tick();
    assert!(!is_tripped(&a), "12 alone in the record");
    proxy.stale_writes.set(2);
    b.tick();
    assert!(is_tripped(&b), "24 errors in the record trip the split");
    a.tick();
    assert!(is_tripped(&a));
    assert_eq!(gauge(&proxy), Some(1));
}

/// A store that cannot answer loses nothing: the counts wait for the
/// next merge that can write them.
#[test]
fn a_failing_store_keeps_the_counts_for_the_next_merge() {
    let proxy = proxy();
    let a = runtime(&proxy, GUARDED, Cadence::Ticked);
    let b = runtime(&proxy, GUARDED, Cadence::Ticked);
    answer(&a, &proxy, 12, Class::ServerError);
    proxy.broken.set(true);
    a.tick();
    proxy.broken.set(false);
    answer(&b, &proxy, 12, Class::ServerError);
    b.tick();
    assert!(!is_tripped(&b), "a's 12 are not in the record yet");
    a.tick();
    assert!(is_tripped(&a), "a's 12 merged late, beside b's 12");
}

#[test]
fn a_push_that_keeps_the_split_keeps_the_trip_and_one_that_changes_it_ends_it() {
    let proxy = proxy();
    let first = runtime(&proxy, GUARDED, Cadence::ByRequests);
    answer(&first, &proxy, 40, Class::ServerError);
    assert!(is_tripped(&first));
    drop(first);
    let kept = runtime(&proxy, GUARDED, Cadence::ByRequests);
    assert!(is_tripped(&kept), "restored from the record");
    assert_eq!(gauge(&proxy), Some(1));
    let changed = runtime(&proxy, &GUARDED.replace("50", "49"), Cadence::ByRequests);
    assert!(!is_tripped(&changed));
    assert_eq!(gauge(&proxy), Some(0));
    assert_eq!(
        warnings(&proxy).len(),
        1,
        "a restored trip is not logged again"
    );
}

/// What was recorded since the last merge is merged when the runtime is
/// dropped (replaced by a push), so the next configuration counts it.
#[test]
fn a_dropped_runtime_merges_what_it_recorded() {
    let proxy = proxy();
    let old = runtime(&proxy, GUARDED, Cadence::Ticked);
    answer(&old, &proxy, 12, Class::ServerError);
    drop(old);
    let new = runtime(&proxy, GUARDED, Cadence::Ticked);
    answer(&new, &proxy, 12, Class::ServerError);
    assert!(!is_tripped(&new), "12 in this worker's window");
    new.tick();
    assert!(is_tripped(&new), "the old runtime's 12 were in the record");
}

/// Driven by requests, the sequential test's merge comes from responses,
/// at most every MERGE_EVERY_NS; ticked, it waits for the tick.
#[test]
fn merges_come_from_responses_only_when_nothing_ticks() {
    for (cadence, merged) in [(Cadence::ByRequests, true), (Cadence::Ticked, false)] {
        let proxy = proxy();
        let a = runtime(&proxy, GUARDED, cadence);
        let b = runtime(&proxy, GUARDED, cadence);
        answer(&a, &proxy, 12, Class::ServerError);
        proxy
            .monotonic_ns
            .set(proxy.monotonic_ns.get() + MERGE_EVERY_NS);
        answer(&a, &proxy, 1, Class::Success);
        answer(&b, &proxy, 12, Class::ServerError);
        proxy
            .monotonic_ns
            .set(proxy.monotonic_ns.get() + MERGE_EVERY_NS);
        answer(&b, &proxy, 1, Class::Success);
        assert_eq!(is_tripped(&b), merged, "{cadence:?}");
    }
}

#[test]
fn schedules_are_followed_on_requests_or_at_the_tick() {
    let text = r#"{"splits": [{"name": "users", "match": {"route": "users"},
        "stable": "legacy", "targets": [{"cluster": "fastapi",
        "schedule": [{"at": "2027-01-15T08:00:00Z", "weight": 10}]}]}]}"#;
    let step = 1_799_999_999; // a second before 2027-01-15T08:00:00Z
    for cadence in [Cadence::ByRequests, Cadence::Ticked] {
        let proxy = proxy();
        proxy.unix.set(step);
        let runtime = runtime(&proxy, text, cadence);
        let weight = |r: &Runtime<Worker>| r.with_active(|a| a.bounds[0][0]);
        assert_eq!(weight(&runtime), 0);
        proxy.unix.set(1_800_000_000 + 86_400 * 365 * 2);
        let on_request = weight(&runtime);
        runtime.tick();
        assert_eq!(weight(&runtime), 1000, "{cadence:?}");
        assert_eq!(
            on_request == 1000,
            cadence == Cadence::ByRequests,
            "{cadence:?}"
        );
    }
}

#[test]
fn draws_differ_and_follow_the_seed() {
    let proxy = proxy();
    let a = runtime(&proxy, GUARDED, Cadence::Ticked);
    let b = runtime(&proxy, GUARDED, Cadence::Ticked);
    let draws = |r: &Runtime<Worker>| (0..4).map(|_| r.next_u64()).collect::<Vec<_>>();
    let (da, db) = (draws(&a), draws(&b));
    assert_eq!(da, db, "the same seed draws the same");
    assert!(da.windows(2).all(|w| w[0] != w[1]), "{da:?}");
}

const SHADOWED: &str = r#"{"splits": [{"name": "users", "match": {"route": "users"},
    "stable": "legacy", "targets": [], "shadow": {"cluster": "fastapi",
    "max_in_flight": 1, "min_requests": 4, "max_error_rate": 0.5}}]}"#;

fn counter(proxy: &Proxy, rest: &str) -> u64 {
    let name = format!("turnout.{rest}");
    proxy.counters.borrow().get(&name).copied().unwrap_or(0)
}

fn json(status: u16, body: &str) -> Reply {
    Reply::of(
        vec![(b":status".to_vec(), status.to_string().into_bytes())],
        body.as_bytes().to_vec(),
        Some(4),
    )
}

fn shadow_of(runtime: &Runtime<Worker>) -> turnout::shadow::ShadowPlan {
    runtime.plan().splits[0].shadow.clone().expect("a shadow")
}

/// A pair is settled by its last answer, in whatever order they come:
/// its outcome, parts and fields are counted, the field's counter is
/// defined when first seen, and the copy's latency is recorded.
#[test]
fn a_pair_settles_at_its_last_answer_and_counts_its_fields() {
    let proxy = proxy();
    let runtime = runtime(&proxy, SHADOWED, Cadence::Ticked);
    let plan = shadow_of(&runtime);
    let Opened::Pair(pair) = runtime.shadow_open(0, &plan, (b"GET", b"/u?q=1", ""), false, 0)
    else {
        panic!("not opened");
    };
    runtime.shadow_answer(pair, Side::Copy, json(200, r#"{"a":1,"b":3}"#));
    assert_eq!(
        counter(
            &proxy,
            "shadow_total.split.users.cluster.fastapi.outcome.mismatch"
        ),
        0
    );
    runtime.shadow_answer(pair, Side::Stable, json(200, r#"{"b":2,"a":1}"#));
    assert_eq!(
        counter(
            &proxy,
            "shadow_total.split.users.cluster.fastapi.outcome.mismatch"
        ),
        1
    );
    assert_eq!(
        counter(
            &proxy,
            "shadow_mismatch_total.split.users.cluster.fastapi.part.body"
        ),
        1
    );
    assert_eq!(
        counter(&proxy, "shadow_field_total.split.users.field./b"),
        1
    );
    assert_eq!(
        proxy.samples.borrow().as_slice(),
        [(
            "turnout.shadow_latency_ms.split.users.cluster.fastapi".to_string(),
            4
        )]
    );
    let log = proxy.log.borrow();
    let line = &log.last().expect("a mismatch line").1;
    assert!(
        line.starts_with("shadow mismatch: split=users method=GET path=/u stable=200 copy=200"),
        "{line}"
    );
    // An answer to a settled pair changes nothing.
    drop(log);
    runtime.shadow_answer(pair, Side::Copy, json(200, "{}"));
    assert_eq!(
        counter(
            &proxy,
            "shadow_total.split.users.cluster.fastapi.outcome.mismatch"
        ),
        1
    );
}

/// Past `max_in_flight`, a copy is not sent and is counted `skipped`;
/// when copies fail past `max_error_rate`, they stop (gauge, one line).
#[test]
fn copies_are_skipped_past_max_in_flight_and_stop_when_they_fail() {
    let proxy = proxy();
    let runtime = runtime(&proxy, SHADOWED, Cadence::Ticked);
    let plan = shadow_of(&runtime);
    let request = (&b"GET"[..], &b"/u"[..], "");
    let Opened::Pair(first) = runtime.shadow_open(0, &plan, request, false, 0) else {
        panic!("not opened");
    };
    assert_eq!(
        runtime.shadow_open(0, &plan, request, false, 0),
        Opened::Skipped
    );
    assert_eq!(
        counter(
            &proxy,
            "shadow_total.split.users.cluster.fastapi.outcome.skipped"
        ),
        1
    );
    // max_in_flight is per worker: another worker's copy is sent (its
    // stable side lost here, so it weighs nothing in the window below).
    let Opened::Pair(other) = runtime.shadow_open(0, &plan, request, false, 1) else {
        panic!("worker 1 was held to worker 0's copies");
    };
    runtime.shadow_answer(other, Side::Stable, Reply::none());
    runtime.shadow_answer(other, Side::Copy, json(200, "{}"));
    runtime.shadow_answer(first, Side::Stable, json(200, "{}"));
    runtime.shadow_answer(first, Side::Copy, Reply::none());
    // Failing every copy: beyond noise for a 50 % limit after ten.
    for _ in 0..9 {
        let Opened::Pair(pair) = runtime.shadow_open(0, &plan, request, false, 0) else {
            panic!("not opened");
        };
        runtime.shadow_answer(pair, Side::Stable, json(200, "{}"));
        runtime.shadow_answer(pair, Side::Copy, json(503, "{}"));
    }
    assert_eq!(
        counter(
            &proxy,
            "shadow_total.split.users.cluster.fastapi.outcome.error"
        ),
        1
    );
    assert_eq!(
        proxy
            .gauges
            .borrow()
            .get("turnout.shadow_tripped.split.users"),
        Some(&1)
    );
    assert_eq!(
        runtime.shadow_open(0, &plan, request, false, 0),
        Opened::Stopped
    );
    let stopped: Vec<String> = warnings(&proxy);
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert!(
        stopped[0].starts_with("shadow tripped: split=users cluster=fastapi"),
        "{stopped:?}"
    );
}

/// Copies stopped in one worker stop in the others, with one line for
/// the proxy: a worker that trips after another says nothing, one that
/// has not tripped follows at its tick (and a runtime made later, as by a
/// push that keeps the split, at once); a push that changes the split
/// starts them again.
#[test]
fn stopped_copies_are_followed_by_every_worker_and_said_once() {
    let proxy = proxy();
    let a = runtime(&proxy, SHADOWED, Cadence::Ticked);
    let b = runtime(&proxy, SHADOWED, Cadence::Ticked);
    let d = runtime(&proxy, SHADOWED, Cadence::Ticked);
    let plan = shadow_of(&a);
    let request = (&b"GET"[..], &b"/u"[..], "");
    let opened = |r: &Runtime<Worker>| match r.shadow_open(0, &plan, request, false, 0) {
        Opened::Pair(pair) => Some(pair),
        _ => None,
    };
    let fail_once = |r: &Runtime<Worker>| {
        let pair = opened(r).expect("opened");
        r.shadow_answer(pair, Side::Stable, json(200, "{}"));
        r.shadow_answer(pair, Side::Copy, json(503, "{}"));
    };
    for _ in 0..10 {
        fail_once(&a);
    }
    assert_eq!(opened(&a), None);
    for _ in 0..10 {
        fail_once(&b);
    }
    assert_eq!(opened(&b), None);
    assert_eq!(warnings(&proxy).len(), 1, "{:?}", warnings(&proxy));
    let pair = opened(&d).expect("d has not followed yet");
    d.shadow_answer(pair, Side::Stable, json(200, "{}"));
    d.shadow_answer(pair, Side::Copy, json(200, "{}"));
    d.tick();
    assert_eq!(opened(&d), None, "d follows at its tick");
    let kept = runtime(&proxy, SHADOWED, Cadence::Ticked);
    assert_eq!(opened(&kept), None, "kept across a push");
    assert_eq!(warnings(&proxy).len(), 1, "{:?}", warnings(&proxy));
    let changed = runtime(&proxy, &SHADOWED.replace("0.5", "0.6"), Cadence::Ticked);
    let plan = shadow_of(&changed);
    let reopened = changed.shadow_open(0, &plan, request, false, 0);
    assert!(matches!(reopened, Opened::Pair(_)), "{reopened:?}");
}
