//! The guard on the request path, on the host: what a worker does per
//! response (`Local::record`, then `Local::judge` over its own window) with
//! every limit configured, and what it does per tick (decode the merged
//! state, absorb its delta, judge, encode). `cargo bench -p turnout-benches
//! --bench guard`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use turnout::guard::{GuardPlan, Local, Merged};
use turnout::stats::Class;

const START: i64 = 1_800_000_000;

fn every_limit() -> GuardPlan {
    GuardPlan {
        max_error_rate: Some(0.01),
        max_p99_ms: Some(500.0),
        max_p95_ratio: Some(2.0),
        max_error_ratio: Some(2.0),
        ..GuardPlan::default()
    }
}

/// A worker's state after `seconds` of `per_second` responses, latencies
/// spread over 1 to 200 ms.
fn busy_local(plan: &GuardPlan, seconds: i64, per_second: u64) -> Local {
    let mut local = Local::new(plan, 2);
    for second in 0..seconds {
        for i in 0..per_second {
            local.record(
                START + second,
                (i % 2) as usize,
                Class::Success,
                Some(1 + i % 200),
            );
        }
    }
    local
}

fn per_response(c: &mut Criterion) {
    let plan = every_limit();
    let mut group = c.benchmark_group("guard");
    group.throughput(Throughput::Elements(1));
    let mut local = busy_local(&plan, 30, 1_000);
    let mut i = 0u64;
    group.bench_function("record_and_judge", |b| {
        b.iter(|| {
            i += 1;
            // A new second every 1,000 responses: slots expire as in life.
            let now = START + 30 + (i / 1_000) as i64;
            local.record(now, (i % 2) as usize, Class::Success, Some(1 + i % 200));
            black_box(local.judge())
        })
    });
    group.finish();
}

fn per_tick(c: &mut Criterion) {
    let plan = every_limit();
    let mut group = c.benchmark_group("guard_tick");
    // 30 s of 1,000 responses a second merged, and one worker's delta of
    // 250 responses.
    let mut merged = Merged::new(&plan, 2);
    merged.absorb(START + 29, busy_local(&plan, 30, 1_000).delta());
    let bytes = merged.encode();
    let mut worker = Local::new(&plan, 2);
    for i in 0..250u64 {
        worker.record(
            START + 29,
            (i % 2) as usize,
            Class::Success,
            Some(1 + i % 200),
        );
    }
    let delta = worker.delta();
    group.bench_function("decode_absorb_judge_encode", |b| {
        b.iter(|| {
            let mut m = Merged::decode(&plan, 2, black_box(&bytes))
                .unwrap_or_else(|| Merged::new(&plan, 2));
            m.absorb(START + 29, delta);
            black_box(m.judge());
            black_box(m.encode().len())
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = per_response, per_tick
}
criterion_main!(benches);
