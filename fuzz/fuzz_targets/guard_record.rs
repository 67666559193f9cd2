//! The guard's merged record, as workers read it from Envoy's shared data:
//! `Merged::decode` on any bytes never panics, and what it accepts is
//! written back byte for byte by `encode` (so a record passed between
//! workers neither grows nor drifts), and can still absorb and judge.
#![no_main]

use libfuzzer_sys::fuzz_target;
use turnout::guard::{GuardPlan, Local, Merged};
use turnout::stats::Class;

fuzz_target!(|data: &[u8]| {
    let plan = GuardPlan {
        min_requests: 20,
        max_error_rate: Some(0.05),
        max_p99_ms: Some(200.0),
        max_p95_ratio: Some(2.0),
        max_error_ratio: Some(2.0),
        ..GuardPlan::default()
    };
    let Some(mut merged) = Merged::decode(&plan, 2, data) else {
        return;
    };
    let bytes = merged.encode();
    let again = Merged::decode(&plan, 2, &bytes).expect("its own encoding decodes");
    assert_eq!(again.encode(), bytes, "encode(decode(x)) is stable");
    let mut local = Local::new(&plan, 2);
    local.record(1_000, 1, Class::ServerError, Some(7));
    merged.absorb(1_000, local.delta());
    let _ = merged.judge();
    let _ = Merged::decode(&plan, 2, &merged.encode()).expect("absorbed state decodes");
});
