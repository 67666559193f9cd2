//! Configuration parsing and validation: `turnout::config::parse` on any
//! bytes. It must never panic, must give the same answer twice (Envoy's
//! validation VM and every worker must agree), and a plan it accepts must
//! keep the invariants the request path relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use turnout::bucket::BUCKETS;
use turnout::config::parse;
use turnout::plan::{KeySource, MatchOn, Weight};
use turnout::shadow::{is_safe_method, Outcome, Part, MAX_IGNORE};
use turnout::stats::StatsLayout;

fuzz_target!(|data: &[u8]| {
    let first = parse(data);
    let again = parse(data);
    assert_eq!(
        format!("{first:?}"),
        format!("{again:?}"),
        "parse is not a pure function of the text"
    );
    let plan = match first {
        Ok(plan) => plan,
        Err(error) => {
            // Every refusal says why, naming something.
            assert!(!error.problems.is_empty());
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| {
                (b.is_ascii_alphanumeric() && !b.is_ascii_uppercase())
                    || b"!#$%&'*+-.^_`|~".contains(&b)
            })
    };
    assert!(token(&plan.decision_header), "{:?}", plan.decision_header);
    assert!(token(&plan.trace.response_header));
    for source in &plan.user_key {
        match source {
            KeySource::Header(h) => {
                assert!(token(h));
                assert_ne!(h, &plan.decision_header);
            }
            KeySource::Cookie(n) | KeySource::Query(n) => assert!(!n.is_empty()),
        }
    }
    let mut moments = vec![i64::MIN, 0, i64::MAX];
    let mut names = std::collections::BTreeSet::new();
    for split in &plan.splits {
        assert!(names.insert(split.name.clone()), "duplicate split name");
        assert!(!split.name.is_empty() && !split.name.contains(';'));
        assert_eq!(split.clusters.len(), split.weights.len() + 1);
        for (i, c) in split.clusters.iter().enumerate() {
            // Written into a request header.
            assert!(!c.is_empty() && c.bytes().all(|b| b.is_ascii_graphic()));
            if i > 0 {
                assert_ne!(c, &split.clusters[0], "a target equal to stable");
            }
        }
        for &index in split.pins.values() {
            assert!(index < split.clusters.len());
        }
        if let Some(h) = &split.force_header {
            assert!(token(h));
            assert_ne!(h, &plan.decision_header);
        }
        if let Some(shadow) = &split.shadow {
            assert_ne!(shadow.cluster, split.clusters[0], "a shadow of stable");
            assert!(shadow.percent <= BUCKETS && !shadow.methods.is_empty());
            assert!(shadow.writes || shadow.methods.iter().all(|m| is_safe_method(m.as_bytes())));
            assert!(shadow.compare.ignore.len() <= MAX_IGNORE);
            assert!(shadow.max_error_rate > 0.0 && shadow.max_error_rate <= 1.0);
            assert!(shadow.timeout_ms > 0 && shadow.window_s > 0 && shadow.min_requests > 0);
        }
        match &split.matcher.on {
            MatchOn::Route(r) => assert!(!r.is_empty()),
            MatchOn::Prefix(p) | MatchOn::Path(p) => assert!(p.starts_with('/')),
        }
        for w in &split.weights {
            if let Weight::Schedule(steps) = w {
                assert!(!steps.is_empty());
                assert!(steps.windows(2).all(|s| s[0].at < s[1].at));
                for s in steps {
                    moments.extend([s.at, s.at.saturating_sub(1)]);
                }
            }
        }
    }
    // The weights in effect never add up to more than 100 % (10000 bucket
    // points), at any moment: weights only change at step times.
    for &now in &moments {
        for split in &plan.splits {
            let sum: u32 = split.weights.iter().map(|w| u32::from(w.at(now))).sum();
            assert!(sum <= u32::from(BUCKETS), "weights sum to {sum} at {now}");
        }
        let active = plan.weights_at(now);
        assert_eq!(active.bounds.len(), plan.splits.len());
        for bounds in &active.bounds {
            assert!(bounds.windows(2).all(|b| b[0] <= b[1]));
            assert!(bounds.iter().all(|&b| b <= BUCKETS));
        }
    }
    // The stats layout indexes every decision the plan can make.
    let layout = StatsLayout::of(&plan);
    for (s, split) in plan.splits.iter().enumerate() {
        for c in 0..split.clusters.len() {
            for reason in turnout::decide::Reason::ALL {
                assert!(layout.request(s, c, reason) < layout.counters.len());
            }
            assert!(layout.latency(s, c) < layout.histograms.len());
        }
        // A shadowed split's series exist, and only a shadowed split's.
        let outcome = layout.shadow_outcome(s, Outcome::Skipped);
        assert_eq!(outcome.is_some(), split.shadow.is_some());
        if split.shadow.is_some() {
            assert!(outcome.is_some_and(|i| i < layout.counters.len()));
            assert!(layout
                .shadow_mismatch(s, Part::Body)
                .is_some_and(|i| i < layout.counters.len()));
            assert!(layout
                .shadow_latency(s)
                .is_some_and(|i| i < layout.histograms.len()));
            assert!(layout
                .shadow_tripped(s)
                .is_some_and(|i| i >= plan.splits.len() && i < layout.gauges.len()));
        }
    }
    let _ = (
        plan.needs_path(),
        plan.needs_method(),
        plan.needs_route_name(),
    );
});
