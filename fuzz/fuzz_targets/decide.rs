//! The whole decision from arbitrary request bytes: `decide::evaluate` over
//! a few fixed plans (route and prefix matchers, methods, header, cookie and
//! query keys, pins, a force header, rollback, random anonymous draws,
//! schedules, read-only and maintenance modes) with a request whose route,
//! path, method and headers (the user key, `cookie`, the force header,
//! duplicates) come from the fuzzer.
//!
//! Checked: no panic; a routed decision's split and cluster are in range;
//! each reason holds what it claims (a bucket decision is
//! `Bucket::of(salt, key)` for the key a plain reading of the sources finds,
//! in the range the active weights give it; a pin is a pinned user; a force
//! names one of the split's clusters; rollback goes to stable); a refusal
//! comes only from a mode; the route, path and method are asked at most
//! once; the same request decides the same way twice.
#![no_main]

use std::cell::RefCell;
use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use turnout::bucket::{Bucket, BUCKETS};
use turnout::config::parse;
use turnout::decide::{cluster_of, evaluate, Reason, RequestFacts, Verdict};
use turnout::keys;
use turnout::plan::{KeySource, Mode, Plan};

const PLANS: &[&str] = &[
    // The design's example, with every key source.
    r#"{"version": 1,
       "user_key": [{"header": "x-user-id"}, {"cookie": "uid"}, {"query": "uid"}],
       "splits": [{"name": "users", "match": {"route": "users"}, "stable": "legacy",
         "targets": [{"cluster": "fastapi", "weight": 25}], "salt": "users",
         "pin": {"fastapi": ["qa-1", "qa-2"], "legacy": ["qa-3"]},
         "force_header": "x-turnout-force"}]}"#,
    // Two splits by path and method, several targets, random anonymous,
    // a read-only split.
    r#"{"anonymous": "random",
       "user_key": [{"cookie": "session"}, {"header": "x-user-id"}],
       "splits": [
         {"name": "orders", "match": {"prefix": "/orders", "methods": ["GET", "POST"]},
          "stable": "old", "targets": [{"cluster": "a", "weight": 10.5},
            {"cluster": "b", "weight": 0.01}, {"cluster": "c", "weight": 89.49}],
          "force_header": "x-force", "mode": "read_only", "retry_after_s": 5},
         {"name": "exact", "match": {"path": "/exact"}, "stable": "s",
          "targets": [{"cluster": "t", "weight": 100}], "rollback": true,
          "force_header": "x-force"}]}"#,
    // Maintenance with a health check let through, a schedule, query keys.
    r#"{"mode": "maintenance", "allow_paths": ["/health", "/users"],
       "user_key": [{"query": "u"}, {"query": "uid"}],
       "splits": [{"name": "sched", "match": {"prefix": "/"}, "stable": "legacy",
         "targets": [{"cluster": "new", "schedule": [
           {"at": "2020-01-01T00:00:00Z", "weight": 5},
           {"at": "2030-01-01T00:00:00Z", "weight": 50}]}],
         "pin": {"new": ["vip"]}}]}"#,
];

/// Header names the plans read, and a few they do not.
const NAMES: &[&str] = &[
    "x-user-id",
    "cookie",
    "x-turnout-force",
    "x-force",
    "traceparent",
    "x-turnout-cluster",
    "x-other",
];

/// Routes, paths, methods and header values the plans act on, so that the
/// fuzzer reaches every rule, not only "no split matches".
const ROUTES: &[&str] = &["users", "orders", "other", ""];
const PATHS: &[&str] = &[
    "/users",
    "/users?uid=",
    "/users?u=",
    "/orders",
    "/orders/1?u=",
    "/exact",
    "/exact?uid=",
    "/health",
    "/",
    "",
];
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "get"];
const VALUES: &[&str] = &[
    "alice",
    "qa-1",
    "qa-2",
    "qa-3",
    "vip",
    "fastapi",
    "legacy",
    "old",
    "a",
    "b",
    "c",
    "s",
    "t",
    "new",
    "uid=alice",
    "session=bob; uid=carol",
    "uid=qa-1",
    "session=vip",
    "",
];

/// Bytes that are a known word, arbitrary, or a known word then arbitrary.
#[derive(Arbitrary, Debug)]
enum Text {
    Known(u8),
    Raw(Vec<u8>),
    KnownThen(u8, Vec<u8>),
}

impl Text {
    fn bytes(&self, words: &[&str]) -> Vec<u8> {
        let word = |i: &u8| words[usize::from(*i) % words.len()].as_bytes().to_vec();
        match self {
            Text::Known(i) => word(i),
            Text::Raw(v) => v.clone(),
            Text::KnownThen(i, v) => [word(i), v.clone()].concat(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct RawInput {
    plan: u8,
    now: i64,
    draw: u16,
    route: Option<Text>,
    path: Option<Text>,
    method: Option<Text>,
    headers: Vec<(u8, Text)>,
}

#[derive(Debug)]
struct Input {
    plan: u8,
    now: i64,
    draw: u16,
    route: Option<Vec<u8>>,
    path: Option<Vec<u8>>,
    method: Option<Vec<u8>>,
    headers: Vec<(u8, Vec<u8>)>,
}

impl From<RawInput> for Input {
    fn from(raw: RawInput) -> Input {
        Input {
            plan: raw.plan,
            now: raw.now,
            draw: raw.draw,
            route: raw.route.map(|t| t.bytes(ROUTES)),
            path: raw.path.map(|t| t.bytes(PATHS)),
            method: raw.method.map(|t| t.bytes(METHODS)),
            headers: raw
                .headers
                .into_iter()
                .map(|(n, v)| (n, v.bytes(VALUES)))
                .collect(),
        }
    }
}

struct Request<'a> {
    input: &'a Input,
    asked: RefCell<[u32; 3]>,
}

impl Request<'_> {
    /// The first value of a header, as Envoy's header map gives it.
    fn first(&self, name: &str) -> Option<&[u8]> {
        self.input
            .headers
            .iter()
            .find(|(n, _)| NAMES[usize::from(*n) % NAMES.len()] == name)
            .map(|(_, v)| v.as_slice())
    }
}

impl RequestFacts for Request<'_> {
    fn route_name(&self) -> Option<&[u8]> {
        self.asked.borrow_mut()[0] += 1;
        self.input.route.as_deref()
    }
    fn path(&self) -> Option<&[u8]> {
        self.asked.borrow_mut()[1] += 1;
        self.input.path.as_deref()
    }
    fn method(&self) -> Option<&[u8]> {
        self.asked.borrow_mut()[2] += 1;
        self.input.method.as_deref()
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.first(name)
    }
}

fn plans() -> &'static Vec<Plan> {
    static PLANS_PARSED: OnceLock<Vec<Plan>> = OnceLock::new();
    PLANS_PARSED.get_or_init(|| {
        PLANS
            .iter()
            .map(|p| parse(p.as_bytes()).expect("the fixed plans are valid"))
            .collect()
    })
}

/// The user key as a plain reading of the plan's sources finds it.
fn expected_key(plan: &Plan, request: &Request<'_>) -> Option<Vec<u8>> {
    plan.user_key.iter().find_map(|source| {
        let key = match source {
            KeySource::Header(h) => request.first(h).map(<[u8]>::to_vec),
            KeySource::Cookie(c) => {
                let header = request.first("cookie").unwrap_or_default();
                keys::cookie(header, c.as_bytes()).map(<[u8]>::to_vec)
            }
            KeySource::Query(q) => {
                let path = request.input.path.clone().unwrap_or_default();
                keys::query(&path, q.as_bytes()).map(|v| v.into_owned())
            }
        };
        key.filter(|k| !k.is_empty())
    })
}

fuzz_target!(|raw: RawInput| {
    let input = Input::from(raw);
    let plans = plans();
    let plan = &plans[usize::from(input.plan) % plans.len()];
    let active = plan.weights_at(input.now);
    let request = Request {
        input: &input,
        asked: RefCell::new([0; 3]),
    };
    let mut draws = 0;
    let verdict = evaluate(plan, &active, &request, || {
        draws += 1;
        input.draw
    });
    assert!(
        request.asked.borrow().iter().all(|&n| n <= 1),
        "a fact was asked more than once: {:?}",
        request.asked.borrow()
    );
    assert!(draws <= 1);
    let again = Request {
        input: &input,
        asked: RefCell::new([0; 3]),
    };
    assert_eq!(verdict, evaluate(plan, &active, &again, || input.draw));

    match verdict {
        Verdict::Pass => assert!(draws == 0),
        Verdict::Refuse(refusal) => {
            let policy = refusal.split.map_or(&plan.mode, |s| &plan.splits[s].mode);
            assert_ne!(policy.mode, Mode::Normal);
            assert_eq!(refusal.mode, policy.mode);
            if refusal.mode == Mode::ReadOnly {
                let method = input.method.as_deref().unwrap_or_default();
                assert!(matches!(method, b"POST" | b"PUT" | b"PATCH" | b"DELETE"));
            }
        }
        Verdict::Route(d) => {
            assert!(d.split < plan.splits.len());
            let split = &plan.splits[d.split];
            assert!(d.cluster < split.clusters.len());
            let bounds = &active.bounds[d.split];
            let key = expected_key(plan, &request);
            match d.reason {
                Reason::Rollback => {
                    assert!(split.rollback);
                    assert_eq!(d.cluster, 0);
                }
                Reason::Pin => {
                    let key = key.expect("a pin needs a key");
                    assert_eq!(split.pins.get(&key), Some(&d.cluster));
                }
                Reason::Force => {
                    let header = split.force_header.as_deref().expect("a force header");
                    let value = request.first(header).expect("a forced request names one");
                    assert_eq!(value, split.clusters[d.cluster].as_bytes());
                }
                Reason::Bucket => {
                    let key = key.expect("a bucket needs a key");
                    let bucket = Bucket::of(split.salt.as_bytes(), &key);
                    assert_eq!(d.bucket, Some(bucket));
                    assert_eq!(d.cluster, cluster_of(bounds, bucket));
                    assert!(!split.pins.contains_key(&key));
                }
                Reason::Anonymous => {
                    assert!(key.is_none(), "a keyed request decided as anonymous");
                    match d.bucket {
                        Some(b) => {
                            assert_eq!(b, Bucket(input.draw % BUCKETS));
                            assert_eq!(d.cluster, cluster_of(bounds, b));
                        }
                        None => assert_eq!(d.cluster, 0),
                    }
                }
                Reason::Guard => panic!("no guard exists yet"),
            }
            // What a cluster's bucket range means: a cluster other than
            // stable only by its range, a pin, or a force.
            if d.cluster > 0 && matches!(d.reason, Reason::Bucket | Reason::Anonymous) {
                let b = d.bucket.expect("a bucket").0;
                let lower = if d.cluster == 1 {
                    0
                } else {
                    bounds[d.cluster - 2]
                };
                assert!(lower <= b && b < bounds[d.cluster - 1]);
            }
        }
    }
});
