//! The decision on the host, from the request's header map (as Envoy hands
//! it to the filter) to the decision: `turnout::decide::evaluate` with the
//! shell's way of reading headers. Configs of 1 and 50 splits (the request's
//! split is the last), the key in `x-user-id` or in a 20-cookie `cookie`
//! header (the last cookie). `cargo bench -p turnout-benches`.
//!
//! Also the parts, to see where the time goes: finding a header in the
//! serialized map, XXH64 of `salt:key`, the cookie parse.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use turnout::bucket::Bucket;
use turnout::decide::{evaluate, Verdict};
use turnout::{keys, wire};
use turnout_benches::micro::{plan, request_headers, KeyIn, WireRequest};

/// Distinct users per benchmark, cycled, so that no branch predictor or
/// cache learns one key.
const USERS: usize = 1024;

fn decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    group.throughput(Throughput::Elements(1));
    for splits in [1usize, 50] {
        let plan = plan(splits);
        let active = plan.weights_at(0);
        let route = format!("route-{}", splits - 1);
        for (key_in, label) in [(KeyIn::Header, "header"), (KeyIn::Cookie20, "cookie20")] {
            let requests: Vec<Vec<u8>> = (0..USERS)
                .map(|i| request_headers(&format!("user-{i:06}"), key_in))
                .collect();
            let mut next = 0;
            group.bench_function(format!("{splits}_splits/{label}"), |b| {
                b.iter(|| {
                    let headers = &requests[next % USERS];
                    next += 1;
                    let request = WireRequest {
                        headers,
                        route_name: route.as_bytes(),
                    };
                    let verdict = evaluate(&plan, &active, &request, || 0);
                    black_box(matches!(verdict, Verdict::Route(_)))
                })
            });
        }
    }
    group.finish();
}

fn parts(c: &mut Criterion) {
    let mut group = c.benchmark_group("parts");
    let header = request_headers("user-000042", KeyIn::Header);
    let cookie = request_headers("user-000042", KeyIn::Cookie20);
    group.bench_function("find_x-user-id", |b| {
        b.iter(|| wire::find(black_box(&header), black_box(b"x-user-id")).map(<[u8]>::len))
    });
    group.bench_function("find_absent_header", |b| {
        b.iter(|| wire::find(black_box(&header), black_box(b"x-turnout-force")).is_some())
    });
    group.bench_function("xxh64_bucket", |b| {
        b.iter(|| Bucket::of(black_box(b"split-49"), black_box(b"user-000042")))
    });
    let cookie_value = wire::find(&cookie, b"cookie")
        .expect("a cookie header")
        .to_vec();
    group.bench_function("cookie20_uid", |b| {
        b.iter(|| keys::cookie(black_box(&cookie_value), black_box(b"uid")).map(<[u8]>::len))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = decisions, parts
}
criterion_main!(benches);
