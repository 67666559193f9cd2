//! The decision: precedence, stickiness, no flip-back, and the anonymous rule.

use turnout::bucket::Bucket;
use turnout::config::parse;
use turnout::decide::{cluster_of, evaluate, Decision, PlainRequest, Reason, Verdict};
use turnout::plan::{Mode, Plan};

fn plan(json: &str) -> Plan {
    parse(json.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

fn users(weight: &str, extra: &str) -> Plan {
    plan(&format!(
        r#"{{"user_key": [{{"header": "x-user-id"}}, {{"cookie": "uid"}}, {{"query": "uid"}}],
        "splits": [{{"name": "users", "match": {{"route": "users"}}, "stable": "legacy",
        "targets": [{{"cluster": "fastapi", "weight": {weight}}}], "salt": "users",
        "pin": {{"fastapi": ["qa-1"], "legacy": ["qa-2"]}}, "force_header": "x-turnout-force"{extra}}}]}}"#
    ))
}

fn request(user: Option<&str>) -> PlainRequest {
    let mut r = PlainRequest {
        route_name: Some("users".into()),
        path: Some("/users/1".into()),
        method: Some("GET".into()),
        ..Default::default()
    };
    if let Some(user) = user {
        r.headers
            .push(("x-user-id".into(), user.as_bytes().to_vec()));
    }
    r
}

fn route(plan: &Plan, req: PlainRequest) -> Decision {
    match evaluate(plan, &plan.weights_at(0), &req, || 0) {
        Verdict::Route(d) => d,
        other => panic!("not routed: {other:?}"),
    }
}

#[test]
fn bucket_decides_by_range() {
    let p = users("25", "");
    // alice is bucket 201 and bob 4352 under salt "users" (see bucket vectors).
    let alice = route(&p, request(Some("alice")));
    assert_eq!(
        (alice.cluster, alice.reason, alice.bucket),
        (1, Reason::Bucket, Some(Bucket(201)))
    );
    let bob = route(&p, request(Some("bob")));
    assert_eq!(
        (bob.cluster, bob.reason, bob.bucket),
        (0, Reason::Bucket, Some(Bucket(4352)))
    );
}

#[test]
fn share_matches_the_weight() {
    let p = users("25", "");
    let to_target = (0..10_000)
        .filter(|i| route(&p, request(Some(&format!("user-{i}")))).cluster == 1)
        .count();
    assert!((2350..=2650).contains(&to_target), "{to_target} of 10000");
}

#[test]
fn ranges_are_consecutive_in_config_order() {
    assert_eq!(cluster_of(&[1000, 3000], Bucket(0)), 1);
    assert_eq!(cluster_of(&[1000, 3000], Bucket(999)), 1);
    assert_eq!(cluster_of(&[1000, 3000], Bucket(1000)), 2);
    assert_eq!(cluster_of(&[1000, 3000], Bucket(2999)), 2);
    assert_eq!(cluster_of(&[1000, 3000], Bucket(3000)), 0);
    assert_eq!(cluster_of(&[0], Bucket(0)), 0);
    assert_eq!(cluster_of(&[10_000], Bucket(9999)), 1);
}

#[test]
fn ramping_up_never_moves_a_user_out_of_the_target() {
    let weights = ["0", "1", "5", "25", "33.33", "50", "99.99", "100"];
    let plans: Vec<Plan> = weights.iter().map(|w| users(w, "")).collect();
    for i in 0..3000 {
        let user = format!("u{i}");
        let mut in_target = false;
        for p in &plans {
            let now = route(p, request(Some(&user))).cluster == 1;
            assert!(now || !in_target, "{user} left the target on the way up");
            in_target = now;
        }
        assert!(in_target, "{user} is not in the target at 100");
    }
}

#[test]
fn precedence_rollback_pin_force_bucket() {
    let p = users("0", "");
    let force = |mut r: PlainRequest, c: &str| {
        r.headers
            .push(("x-turnout-force".into(), c.as_bytes().to_vec()));
        r
    };
    assert_eq!(route(&p, request(Some("qa-1"))).reason, Reason::Pin);
    assert_eq!(route(&p, request(Some("qa-1"))).cluster, 1);
    assert_eq!(
        route(&p, force(request(Some("qa-1")), "legacy")).reason,
        Reason::Pin
    );
    let forced = route(&p, force(request(Some("alice")), "fastapi"));
    assert_eq!((forced.cluster, forced.reason), (1, Reason::Force));
    let forced_anon = route(&p, force(request(None), "fastapi"));
    assert_eq!(
        (forced_anon.cluster, forced_anon.reason),
        (1, Reason::Force)
    );
    // Only the split's own clusters may be forced.
    for junk in ["other", "", "fastapi ", "FASTAPI", "fastapi,legacy"] {
        assert_eq!(
            route(&p, force(request(Some("alice")), junk)).reason,
            Reason::Bucket,
            "{junk:?}"
        );
    }
    let rolled = users("100", r#", "rollback": true"#);
    for r in [
        request(Some("qa-1")),
        force(request(Some("alice")), "fastapi"),
        request(Some("alice")),
        request(None),
    ] {
        let d = route(&rolled, r);
        assert_eq!((d.cluster, d.reason), (0, Reason::Rollback));
    }
}

#[test]
fn a_tripped_guard_beats_pin_force_and_bucket_but_not_rollback_or_mode() {
    let force = |mut r: PlainRequest| {
        r.headers
            .push(("x-turnout-force".into(), b"fastapi".to_vec()));
        r
    };
    fn route_tripped(p: &Plan, r: PlainRequest) -> Verdict<'_> {
        let mut active = p.weights_at(0);
        active.tripped = vec![true];
        evaluate(p, &active, &r, || 0)
    }
    let p = users("100", "");
    for r in [
        request(Some("qa-1")),
        force(request(Some("alice"))),
        request(Some("alice")),
        request(None),
    ] {
        match route_tripped(&p, r) {
            Verdict::Route(d) => assert_eq!((d.cluster, d.reason), (0, Reason::Guard)),
            other => panic!("not routed: {other:?}"),
        }
    }
    let rolled = users("100", r#", "rollback": true"#);
    match route_tripped(&rolled, request(Some("alice"))) {
        Verdict::Route(d) => assert_eq!(d.reason, Reason::Rollback),
        other => panic!("not routed: {other:?}"),
    }
    let closed = users("100", r#", "mode": "maintenance""#);
    assert!(matches!(
        route_tripped(&closed, request(Some("alice"))),
        Verdict::Refuse(_)
    ));
    // Untripped, the same requests go where pin, force and bucket say.
    assert_eq!(route(&p, request(Some("alice"))).reason, Reason::Bucket);
}

#[test]
fn key_sources_in_order_first_non_empty_wins() {
    let p = users("50", "");
    let mut r = request(Some(""));
    r.headers
        .push(("cookie".into(), b"a=1; uid=alice".to_vec()));
    assert_eq!(route(&p, r).bucket, Some(Bucket(201)));
    let mut r = request(None);
    r.path = Some("/users?uid=alice".into());
    assert_eq!(route(&p, r).bucket, Some(Bucket(201)));
    let mut r = request(Some("bob"));
    r.headers.push(("cookie".into(), b"uid=alice".to_vec()));
    assert_eq!(route(&p, r).bucket, Some(Bucket(4352)));
}

#[test]
fn anonymous_stable_and_random() {
    let p = users("100", "");
    let d = route(&p, request(None));
    assert_eq!(
        (d.cluster, d.reason, d.bucket),
        (0, Reason::Anonymous, None)
    );
    let random = plan(
        r#"{"anonymous": "random", "splits": [{"name": "a", "match": {"prefix": "/"}, "stable": "s",
        "targets": [{"cluster": "t", "weight": 30}]}]}"#,
    );
    let active = random.weights_at(0);
    let mut draws = (0u16..10_000).step_by(7);
    let mut to_target = 0;
    let mut total = 0;
    for draw in draws.by_ref() {
        let r = PlainRequest {
            path: Some("/x".into()),
            ..Default::default()
        };
        match evaluate(&random, &active, &r, || draw) {
            Verdict::Route(d) => {
                assert_eq!(d.reason, Reason::Anonymous);
                assert_eq!(d.cluster, usize::from(draw < 3000));
                to_target += d.cluster;
                total += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(to_target * 10 / total, 3);
}

#[test]
fn matching_by_prefix_path_and_method() {
    let p = plan(
        r#"{"splits": [
        {"name": "writes", "match": {"prefix": "/api/users", "methods": ["POST"]}, "stable": "s", "targets": []},
        {"name": "exact", "match": {"path": "/api/users"}, "stable": "s", "targets": []},
        {"name": "prefix", "match": {"prefix": "/api"}, "stable": "s", "targets": []}]}"#,
    );
    let split_of = |method: &str, path: &str| {
        let r = PlainRequest {
            path: Some(path.into()),
            method: Some(method.into()),
            ..Default::default()
        };
        match evaluate(&p, &p.weights_at(0), &r, || 0) {
            Verdict::Route(d) => Some(p.splits[d.split].name.as_str()),
            Verdict::Pass => None,
            Verdict::Refuse(r) => panic!("{r:?}"),
        }
    };
    assert_eq!(split_of("POST", "/api/users/7"), Some("writes"));
    assert_eq!(split_of("GET", "/api/users?x=1"), Some("exact"));
    assert_eq!(split_of("GET", "/api/users/7"), Some("prefix"));
    assert_eq!(split_of("GET", "/apiary"), Some("prefix"));
    assert_eq!(split_of("GET", "/other"), None);
    assert_eq!(split_of("GET", ""), None);
}

#[test]
fn unmatched_route_passes() {
    let p = users("50", "");
    let mut r = request(Some("alice"));
    r.route_name = Some("other".into());
    assert_eq!(evaluate(&p, &p.weights_at(0), &r, || 0), Verdict::Pass);
    r.route_name = None;
    assert_eq!(evaluate(&p, &p.weights_at(0), &r, || 0), Verdict::Pass);
}

#[test]
fn modes_refuse_and_allow() {
    let p = plan(
        r#"{"mode": "maintenance", "allow_paths": ["/healthz"], "splits": [
        {"name": "ro", "match": {"prefix": "/ro"}, "stable": "s", "targets": [], "mode": "read_only"},
        {"name": "up", "match": {"prefix": "/up"}, "stable": "s", "targets": [], "mode": "normal"}]}"#,
    );
    let verdict = |method: &str, path: &str| {
        let r = PlainRequest {
            path: Some(path.into()),
            method: Some(method.into()),
            ..Default::default()
        };
        match evaluate(&p, &p.weights_at(0), &r, || 0) {
            Verdict::Refuse(r) => Some(r.mode),
            _ => None,
        }
    };
    assert_eq!(verdict("GET", "/anything"), Some(Mode::Maintenance));
    assert_eq!(verdict("GET", "/healthz"), None);
    assert_eq!(verdict("GET", "/healthz?full=1"), None);
    assert_eq!(verdict("GET", "/ro/x"), None);
    for m in ["POST", "PUT", "PATCH", "DELETE"] {
        assert_eq!(verdict(m, "/ro/x"), Some(Mode::ReadOnly), "{m}");
    }
    assert_eq!(verdict("POST", "/up/x"), None);
}

#[test]
fn schedules_move_the_bounds_with_time() {
    let p = plan(
        r#"{"splits": [{"name": "a", "match": {"prefix": "/"}, "stable": "s", "targets": [
        {"cluster": "t", "schedule": [{"at": "1970-01-01T00:01:40Z", "weight": 5}, {"at": "1970-01-01T00:03:20Z", "weight": 25}]},
        {"cluster": "u", "weight": 10}]}]}"#,
    );
    assert_eq!(p.weights_at(99).bounds, vec![vec![0, 1000]]);
    assert_eq!(p.weights_at(100).bounds, vec![vec![500, 1500]]);
    assert_eq!(p.weights_at(200).bounds, vec![vec![2500, 3500]]);
}

#[test]
fn hostile_keys_get_a_decision() {
    let p = users("50", "");
    for key in [
        vec![0xffu8; 8192],
        vec![0u8; 3],
        b"\r\n".to_vec(),
        vec![b'a'; 1 << 16],
    ] {
        let mut r = request(None);
        r.headers.push(("x-user-id".into(), key));
        assert_eq!(route(&p, r).reason, Reason::Bucket);
    }
}

/// Splits of both kinds, interleaved, some sharing a route: the first split
/// in config order that takes the request wins, as a plain scan finds it.
#[test]
fn the_route_index_keeps_config_order() {
    let p = plan(
        r#"{"splits": [
          {"name": "s0", "match": {"prefix": "/a", "methods": ["GET"]}, "stable": "x", "targets": []},
          {"name": "s1", "match": {"route": "users", "methods": ["POST"]}, "stable": "x", "targets": []},
          {"name": "s2", "match": {"prefix": "/u"}, "stable": "x", "targets": []},
          {"name": "s3", "match": {"route": "users"}, "stable": "x", "targets": []},
          {"name": "s4", "match": {"route": "other"}, "stable": "x", "targets": []},
          {"name": "s5", "match": {"path": "/a/b"}, "stable": "x", "targets": []},
          {"name": "s6", "match": {"route": "other", "methods": ["PUT"]}, "stable": "x", "targets": []}
        ]}"#,
    );
    // The plain reading: each split's matcher in turn.
    let scan = |route: &str, path: &str, method: &str| {
        let takes = |i: usize| match i {
            0 => path.starts_with("/a") && method == "GET",
            1 => route == "users" && method == "POST",
            2 => path.starts_with("/u"),
            3 => route == "users",
            4 => route == "other",
            5 => path == "/a/b",
            6 => route == "other" && method == "PUT",
            _ => unreachable!(),
        };
        (0..7).find(|&i| takes(i))
    };
    for route in ["users", "other", "none", ""] {
        for path in ["/a", "/a/b", "/u/1", "/z"] {
            for method in ["GET", "POST", "PUT"] {
                let r = PlainRequest {
                    route_name: (!route.is_empty()).then(|| route.into()),
                    path: Some(path.into()),
                    method: Some(method.into()),
                    ..Default::default()
                };
                let split = match evaluate(&p, &p.weights_at(0), &r, || 0) {
                    Verdict::Route(d) => Some(d.split),
                    Verdict::Pass => None,
                    other => panic!("{other:?}"),
                };
                assert_eq!(split, scan(route, path, method), "{route} {method} {path}");
            }
        }
    }
}

/// A request that a split before the first route-matched one takes never
/// costs the host a route-name lookup.
#[test]
fn the_route_name_is_asked_only_when_needed() {
    use std::cell::Cell;
    use turnout::decide::RequestFacts;

    struct Counting {
        plain: PlainRequest,
        route_asked: Cell<u32>,
    }
    impl RequestFacts for Counting {
        fn route_name(&self) -> Option<&[u8]> {
            self.route_asked.set(self.route_asked.get() + 1);
            self.plain.route_name()
        }
        fn path(&self) -> Option<&[u8]> {
            self.plain.path()
        }
        fn method(&self) -> Option<&[u8]> {
            self.plain.method()
        }
        fn header(&self, name: &str) -> Option<&[u8]> {
            self.plain.header(name)
        }
    }
    let p = plan(
        r#"{"splits": [
          {"name": "health", "match": {"path": "/health"}, "stable": "x", "targets": []},
          {"name": "users", "match": {"route": "users"}, "stable": "x", "targets": []},
          {"name": "rest", "match": {"prefix": "/"}, "stable": "x", "targets": []}
        ]}"#,
    );
    for (path, route, asked, split) in [
        ("/health", "users", 0, 0),
        ("/users/1", "users", 1, 1),
        ("/orders", "orders", 1, 2),
    ] {
        let r = Counting {
            plain: PlainRequest {
                route_name: Some(route.into()),
                path: Some(path.into()),
                method: Some("GET".into()),
                ..Default::default()
            },
            route_asked: Cell::new(0),
        };
        let Verdict::Route(d) = evaluate(&p, &p.weights_at(0), &r, || 0) else {
            panic!("{path} not routed");
        };
        assert_eq!((d.split, r.route_asked.get()), (split, asked), "{path}");
    }
}
