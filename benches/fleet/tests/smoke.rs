//! The fleet benchmark runs end to end at a small size: 20 simulated
//! proxies (2 of which NACK every push) and one real Envoy, three pushes
//! and a server restart. Every proxy answered every push as told, and the
//! server's status shows each NACK with the proxy's message. No timing is
//! asserted here: `cargo bench-fleet` measures.

use std::time::Duration;

use turnout_bench_fleet::figures::Answers;
use turnout_bench_fleet::{run, Options};

#[test]
fn every_proxy_answers_every_push_and_the_status_shows_each_nack() {
    let options = Options {
        proxies: 20,
        envoys: 1,
        pushes: 3,
        nack_every: 10,
        poll_ms: None,
        release: false,
        turnoutctl: None,
        opening: 8,
        gap: Duration::from_millis(100),
        timeout: Duration::from_secs(30),
    };
    let report = run(&options).expect("the benchmark runs");
    // 18 simulated proxies and the Envoy ACK, 2 simulated proxies NACK.
    let as_told = Answers {
        acked: 19,
        nacked: 2,
        wrong: 0,
    };
    assert_eq!(report.pushes.len(), 3);
    for (i, push) in report.pushes.iter().enumerate() {
        assert_eq!(push.answers, as_told, "push {}", i + 1);
        assert!(push.envoys_last_ack_ms.is_some(), "push {}", i + 1);
    }
    assert_eq!(report.restart.answers, as_told, "after the restart");
    assert!(report.restart.envoys_last_ack_ms.is_some());
    assert_eq!(report.nacking, 2);
    assert!(report.memory_connected.rss_kib > 0);

    let lines = report.json_lines();
    assert_eq!(lines.len(), 4, "a line per push and the summary");
    assert_eq!(lines[3]["kind"], "summary");
    assert_eq!(lines[3]["restart"]["nacked"], 2);
    let table = report.table();
    assert!(table.contains("rename → last real Envoy's ACK"), "{table}");
}
