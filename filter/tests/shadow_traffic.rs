//! Shadow traffic around the comparison: which requests are copied, the
//! headers a copy carries, when the copies fail too often, the mismatch
//! line and its rate limit, and the series a shadowed split defines.

use turnout::config::parse;
use turnout::decide::{evaluate, Decision, PlainRequest, Reason, Refusal, Verdict};
use turnout::plan::{Mode, Plan};
use turnout::shadow::{
    compare, copy_failed, copy_headers, is_hop_by_hop, mismatch_line, sample, Answer, ComparePlan,
    CopyEnd, FailureWindow, LogLimiter, Outcome, Part, ShadowPlan, SHADOW_HEADER,
};
use turnout::stats::{shadow_field_counter, shadow_noise_counter, StatsLayout};

fn shadowed(shadow: &str) -> Plan {
    parse(
        format!(
            r#"{{"splits": [
            {{"name": "users", "match": {{"prefix": "/users"}}, "stable": "legacy",
              "targets": [{{"cluster": "fastapi", "weight": 25}}], "shadow": {shadow}}},
            {{"name": "orders", "match": {{"prefix": "/"}}, "stable": "legacy", "targets": []}}]}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

fn to(split: usize, cluster: usize, reason: Reason) -> Verdict<'static> {
    Verdict::Route(Decision {
        split,
        cluster,
        reason,
        bucket: None,
    })
}

#[test]
fn only_stable_reads_are_copied_at_the_percent() {
    let plan = shadowed(r#"{"cluster": "fastapi", "percent": 12.5}"#);
    let never = || -> u16 { panic!("no draw needed") };
    let copied =
        |v: &Verdict, method: &[u8], draw: u16| sample(&plan, v, method, || draw).is_some();
    // Any reason that ends on stable: bucket, rollback, guard, anonymous…
    for reason in Reason::ALL {
        assert!(copied(&to(0, 0, reason), b"GET", 0), "{reason:?}");
    }
    assert!(copied(&to(0, 0, Reason::Bucket), b"HEAD", 1249));
    assert!(!copied(&to(0, 0, Reason::Bucket), b"GET", 1250));
    // Not to a target, not a method it does not copy, not another split.
    assert!(sample(&plan, &to(0, 1, Reason::Bucket), b"GET", never).is_none());
    assert!(sample(&plan, &to(0, 0, Reason::Bucket), b"POST", never).is_none());
    assert!(sample(&plan, &to(0, 0, Reason::Bucket), b"get", never).is_none());
    assert!(sample(&plan, &to(1, 0, Reason::Bucket), b"GET", never).is_none());
    assert!(sample(&plan, &to(9, 0, Reason::Bucket), b"GET", never).is_none());
    assert!(sample(&plan, &Verdict::Pass, b"GET", never).is_none());
    // A mode's refusal is no decision.
    let refusal = Verdict::Refuse(Refusal {
        split: Some(0),
        mode: Mode::Maintenance,
        retry_after: "30",
        body: "",
    });
    assert!(sample(&plan, &refusal, b"GET", never).is_none());
    // 100 % and 0 % draw nothing.
    let all = shadowed(r#"{"cluster": "fastapi"}"#);
    let (split, shadow) = sample(&all, &to(0, 0, Reason::Pin), b"GET", never).unwrap();
    assert_eq!((split, shadow.cluster.as_str()), (0, "fastapi"));
    let none = shadowed(r#"{"cluster": "fastapi", "percent": 0}"#);
    assert!(sample(&none, &to(0, 0, Reason::Pin), b"GET", never).is_none());
}

#[test]
fn a_read_only_refusal_is_not_copied_even_with_writes() {
    let plan = shadowed(r#"{"cluster": "fastapi", "methods": ["GET", "POST"], "writes": true}"#);
    let mut plan_ro = plan.clone();
    plan_ro.splits[0].mode.mode = Mode::ReadOnly;
    let post = PlainRequest {
        path: Some("/users/1".into()),
        method: Some("POST".into()),
        ..PlainRequest::default()
    };
    let v = evaluate(&plan, &plan.weights_at(0), &post, || 0);
    assert!(sample(&plan, &v, b"POST", || 0).is_some());
    let v = evaluate(&plan_ro, &plan_ro.weights_at(0), &post, || 0);
    assert!(matches!(v, Verdict::Refuse(_)));
    assert!(sample(&plan_ro, &v, b"POST", || 0).is_none());
    // Noise is asked for reads only.
    let mut shadow = ShadowPlan::new("fastapi");
    shadow.noise = true;
    assert!(shadow.noise_for(b"GET") && !shadow.noise_for(b"POST"));
}

#[test]
fn a_copy_drops_hop_by_hop_headers_and_says_it_is_a_copy() {
    let request: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"GET"),
        (b":path", b"/users/1?x=1"),
        (b"Connection", b"keep-alive, X-Trace-Hop,  "),
        (b"keep-alive", b"timeout=5"),
        (b"x-trace-hop", b"1"),
        (b"TE", b"trailers"),
        (b"transfer-encoding", b"chunked"),
        (b"proxy-authorization", b"Basic x"),
        (b"upgrade", b"h2c"),
        (b"x-turnout-shadow", b"0"),
        (b"x-turnout-cluster", b"legacy"),
        (b"authorization", b"Bearer t"),
        (b"accept", b"application/json"),
    ];
    let copy = copy_headers(&request, &["x-turnout-cluster"]);
    let names: Vec<&[u8]> = copy.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            &b":method"[..],
            b":path",
            b"authorization",
            b"accept",
            b"x-turnout-shadow"
        ]
    );
    assert_eq!(copy.last(), Some(&(SHADOW_HEADER.as_bytes(), &b"1"[..])));
    for name in [
        "connection",
        "Keep-Alive",
        "proxy-connection",
        "trailer",
        "proxy-authenticate",
    ] {
        assert!(is_hop_by_hop(name.as_bytes()), "{name}");
    }
    assert!(!is_hop_by_hop(b"authorization"));
}

#[test]
fn copies_fail_on_no_answer_timeouts_and_new_5xx() {
    assert!(copy_failed(200, CopyEnd::NoAnswer));
    assert!(copy_failed(503, CopyEnd::TimedOut));
    assert!(copy_failed(200, CopyEnd::Answered(502)));
    assert!(copy_failed(404, CopyEnd::Answered(500)));
    assert!(!copy_failed(503, CopyEnd::Answered(500)));
    assert!(!copy_failed(200, CopyEnd::Answered(404)));
    assert!(!copy_failed(500, CopyEnd::Answered(200)));
}

fn window(max_error_rate: f64, min_requests: u32) -> FailureWindow {
    let mut plan = ShadowPlan::new("fastapi");
    plan.max_error_rate = max_error_rate;
    plan.min_requests = min_requests;
    plan.window_s = 60;
    FailureWindow::new(&plan)
}

#[test]
fn a_failing_new_side_stops_the_copies_and_stays_stopped() {
    let mut w = window(0.05, 50);
    for i in 0..49 {
        w.record(1000, true);
        assert_eq!(w.judge(), None, "{i}: fewer than min_requests");
    }
    w.record(1000, true);
    let trip = w.judge().unwrap();
    assert_eq!((trip.failures, trip.copies), (50, 50));
    assert_eq!(
        trip.log_line("users", "fastapi"),
        "shadow tripped: split=users cluster=fastapi failed=50 copies=50 rate=1 limit=0.05; \
         copies stop until the split's configuration changes"
    );
    // Latched: healthy copies and time do not undo it.
    for _ in 0..1000 {
        w.record(5000, false);
    }
    w.advance(9000);
    assert_eq!(w.judge(), Some(trip));
    assert!(w.is_tripped());
}

#[test]
fn noise_in_the_failure_rate_does_not_trip_and_old_failures_expire() {
    // 3 % failures against a 5 % limit never trip.
    let mut w = window(0.05, 50);
    for i in 0..10_000 {
        w.record(1000 + i / 100, i % 100 < 3);
        assert_eq!(w.judge(), None, "{i}");
    }
    // One failure in 50 is 2 %: the guard's evidence rule, not the point
    // estimate, is what judges. At 40 %, 50 copies are evidence enough.
    let mut w = window(0.01, 50);
    for i in 0..50 {
        w.record(1000, i == 0);
    }
    assert_eq!(w.judge(), None);
    let mut w = window(0.05, 50);
    for i in 0..50 {
        w.record(1000, i % 5 < 2);
    }
    assert!(w.judge().is_some());
    // Failures a window ago no longer count.
    let mut w = window(0.05, 50);
    for _ in 0..40 {
        w.record(1000, true);
    }
    for _ in 0..40 {
        w.record(1100, false);
    }
    assert_eq!(w.judge(), None);
}

#[test]
fn the_mismatch_line_names_where_never_what() {
    let plan = ComparePlan::default();
    let headers: &[(&[u8], &[u8])] = &[(b"content-type", b"application/json")];
    let other: &[(&[u8], &[u8])] = &[(b"content-type", b"text/secret-type")];
    let stable = Answer {
        status: 200,
        headers,
        body: br#"{"email": "ada@example.com", "n": 1}"#,
    };
    let copy = Answer {
        status: 500,
        headers: other,
        body: br#"{"email": "bob@example.com", "n": 1}"#,
    };
    let c = compare(&plan, &stable, &copy, None);
    assert_eq!(c.parts, [Part::Status, Part::Header, Part::Body]);
    let line = mismatch_line(
        "users",
        b"GET",
        b"/users/42?token=s3cret",
        200,
        500,
        &c,
        Some("4bf92f3577b34da6a3ce929d0e0e4736"),
    );
    assert_eq!(
        line,
        "shadow mismatch: split=users method=GET path=/users/42 stable=200 copy=500 \
         parts=status,header,body headers=content-type fields=/email trace=4bf92f3577b34da6a3ce929d0e0e4736"
    );
    for secret in ["s3cret", "example.com", "secret-type", "json"] {
        assert!(!line.contains(secret), "{secret}");
    }
    // A body's keys and a request's path cannot forge a line.
    let stable = Answer {
        status: 200,
        headers,
        body: b"{\"a\\nb, c\": 1}",
    };
    let copy = Answer {
        status: 200,
        headers,
        body: b"{\"a\\nb, c\": 2}",
    };
    let c = compare(&plan, &stable, &copy, None);
    let line = mismatch_line("users", b"GET", b"/x y\n", 200, 200, &c, None);
    assert_eq!(
        line,
        "shadow mismatch: split=users method=GET path=/x%20y%0A stable=200 copy=200 parts=body fields=/a%0Ab%2C%20c"
    );
    // Many fields: some listed, the rest counted.
    let keys = |v: u8| {
        format!(
            "{{{}}}",
            (0..20)
                .map(|i| format!("\"k{i:02}\": {v}"))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let (a, b) = (keys(1), keys(2));
    let c = compare(
        &plan,
        &Answer {
            status: 200,
            headers,
            body: a.as_bytes(),
        },
        &Answer {
            status: 200,
            headers,
            body: b.as_bytes(),
        },
        None,
    );
    assert!(mismatch_line("s", b"GET", b"/", 200, 200, &c, None).ends_with("/k15,+4 more"));
}

#[test]
fn one_line_per_split_per_second() {
    let mut limiter = LogLimiter::new(2);
    assert_eq!(limiter.allow(0, 100), Some(0));
    assert_eq!(limiter.allow(0, 100), None);
    assert_eq!(limiter.allow(0, 100), None);
    assert_eq!(limiter.allow(1, 100), Some(0), "another split");
    assert_eq!(limiter.allow(0, 101), Some(2), "two held back");
    assert_eq!(limiter.allow(0, 101), None);
    assert_eq!(limiter.allow(5, 101), Some(0), "a split past the size");
}

#[test]
fn a_shadowed_split_adds_its_series_after_all_others() {
    let bare = parse(
        br#"{"splits": [
        {"name": "users", "match": {"prefix": "/users"}, "stable": "legacy", "targets": [{"cluster": "fastapi", "weight": 25}]},
        {"name": "orders", "match": {"prefix": "/"}, "stable": "legacy", "targets": []}]}"#,
    )
    .unwrap();
    let without = StatsLayout::of(&bare);
    let plan = shadowed(r#"{"cluster": "outbound|80||fastapi.ns.svc.cluster.local"}"#);
    let with = StatsLayout::of(&plan);
    // Everything a plan without shadow defines, unchanged and first.
    assert_eq!(
        with.counters[..without.counters.len()],
        without.counters[..]
    );
    assert_eq!(
        with.histograms[..without.histograms.len()],
        without.histograms[..]
    );
    assert_eq!(with.gauges[..without.gauges.len()], without.gauges[..]);
    assert_eq!(with.stable_info, without.stable_info);
    assert_eq!(without.shadow_outcome(0, Outcome::Match), None);
    let c = "outbound_80__fastapi_ns_svc_cluster_local";
    let counter = |i: Option<usize>| with.counters[i.unwrap()].clone();
    let expected: Vec<String> = Outcome::ALL
        .iter()
        .map(|o| {
            format!(
                "turnout.shadow_total.split.users.cluster.{c}.outcome.{}",
                o.as_str()
            )
        })
        .chain(Part::ALL.iter().map(|p| {
            format!(
                "turnout.shadow_mismatch_total.split.users.cluster.{c}.part.{}",
                p.as_str()
            )
        }))
        .collect();
    assert_eq!(with.counters[without.counters.len()..], expected[..]);
    assert_eq!(
        counter(with.shadow_outcome(0, Outcome::Skipped)),
        expected[4]
    );
    assert_eq!(counter(with.shadow_mismatch(0, Part::Header)), expected[6]);
    assert_eq!(
        with.histograms[with.shadow_latency(0).unwrap()],
        format!("turnout.shadow_latency_ms.split.users.cluster.{c}")
    );
    assert_eq!(
        with.gauges[with.shadow_tripped(0).unwrap()],
        "turnout.shadow_tripped.split.users"
    );
    assert_eq!(
        with.gauges[0], "turnout.guard_tripped.split.users",
        "guard gauges keep their index"
    );
    assert_eq!(with.shadow_tripped(1), None);
    assert_eq!(with.shadow_outcome(1, Outcome::Match), None);
    // Field series, defined as fields are seen.
    assert_eq!(
        shadow_field_counter("v1.users", "/items/*/price"),
        "turnout.shadow_field_total.split.v1_users.field./items/*/price"
    );
    assert_eq!(
        shadow_noise_counter("users", "/a.b/~1c d/ü"),
        "turnout.shadow_noise_total.split.users.field./a_b/~1c_d/_"
    );
    assert_eq!(
        shadow_field_counter("users", ""),
        "turnout.shadow_field_total.split.users.field._root"
    );
    assert_eq!(
        shadow_field_counter("users", "_other"),
        "turnout.shadow_field_total.split.users.field._other"
    );
}

/// Whether a plan copies anything is known when it is parsed: the request
/// path of a plan without a shadow asks nothing more.
#[test]
fn a_plan_knows_whether_it_has_a_shadow() {
    assert!(shadowed(r#"{"cluster": "fastapi"}"#).has_shadows());
    let plain = parse(
        br#"{"splits": [{"name": "users", "match": {"prefix": "/"},
        "stable": "legacy", "targets": []}]}"#,
    )
    .unwrap();
    assert!(!plain.has_shadows());
    assert!(!parse(b"").unwrap().has_shadows());
}
