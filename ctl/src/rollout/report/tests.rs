//! The operator's lines as the issue shows them: numbers, the interval
//! line (with the copies for a shadowed split), a gate's failure.

use super::*;

#[test]
fn numbers_read_as_the_issue_shows_them() {
    assert_eq!(count(4812), "4,812");
    assert_eq!(count(999), "999");
    assert_eq!(count(1_234_567), "1,234,567");
    assert_eq!(duration(130), "2m10s");
    assert_eq!(duration(300), "5m");
    assert_eq!(duration(45), "45s");
    assert_eq!(duration(3900), "1h5m");
    assert_eq!(duration(7200), "2h");
}

#[test]
fn the_interval_line() {
    let le = |ms: f64| ms.to_bits();
    let side = |responses, errors, buckets: &[(f64, u64)]| Side {
        responses,
        errors,
        buckets: buckets.iter().map(|&(l, n)| (le(l), n)).collect(),
    };
    let hold = Sides {
        target: side(
            4812,
            10,
            &[(50.0, 4000), (100.0, 4812), (f64::INFINITY, 4812)],
        ),
        stable: side(
            5000,
            9,
            &[(50.0, 4900), (100.0, 5000), (f64::INFINITY, 5000)],
        ),
        ..Sides::default()
    };
    let at = At {
        step: 1,
        steps: 5,
        target: "fastapi".into(),
        weight: 3000,
        shadowed: false,
    };
    assert_eq!(
        interval(&at, 130, 300, &hold, "ok"),
        "step 2/5 fastapi 30 % · held 2m10s of 5m · 4,812 req · errors 0.21 % (stable 0.18 %) · p99 97 ms (stable 75 ms) · ok"
    );
    let empty = Sides::default();
    assert!(interval(&at, 0, 300, &empty, "ok")
        .contains("0 req · errors - (stable -) · p99 - (stable -)"));
    // A shadowed split's line also shows the copies sent and the
    // mismatches over those compared.
    let shadowed = At {
        shadowed: true,
        ..at
    };
    let hold = Sides {
        copies: Copies {
            matched: 410,
            mismatched: 1,
            failed: 1,
        },
        ..hold
    };
    assert!(
        interval(&shadowed, 130, 300, &hold, "ok")
            .ends_with(" · p99 97 ms (stable 75 ms) · copies 412 · mismatches 0.24 % · ok"),
        "{}",
        interval(&shadowed, 130, 300, &hold, "ok")
    );
    assert!(interval(&shadowed, 0, 300, &empty, "ok").ends_with("copies 0 · mismatches - · ok"));
    let breach = GateBreach {
        gate: Gate::Mismatch,
        count: 41,
        of: 1000,
        limit: 0.01,
    };
    assert_eq!(
        gate(&breach),
        "mismatch_rate 4.10 % > 1 % (41 of 1,000 compared)"
    );
    let breach = GateBreach {
        gate: Gate::ShadowError,
        count: 6,
        of: 50,
        limit: 0.07,
    };
    assert_eq!(
        gate(&breach),
        "shadow_error_rate 12.00 % > 7 % (6 of 50 copies)"
    );
}
