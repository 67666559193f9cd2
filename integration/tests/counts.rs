//! Every request counted across configuration pushes: load from several
//! clients while the companion config is pushed through ECDS every 2 s
//! (each push replaces the configuration whose metrics the requests in
//! flight count in), then Envoy's `turnout_requests_total`,
//! `turnout_responses_total` and `turnout_latency_ms_count`, summed over
//! their labels, must each equal the number of requests answered, to the
//! request: no count lost when a configuration goes, none counted twice.
//!
//! Sized for a 2-core machine: 6 clients, 16 s of pushes, per build.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use integration::stage::Stage;
use integration::{Build, HttpClient};

const CLIENTS: usize = 6;
const PUSHES: usize = 8;
const PUSH_EVERY: Duration = Duration::from_secs(2);

fn config(weight: u16) -> String {
    format!(
        r#"{{"version": 1, "user_key": [{{"header": "x-user-id"}}],
        "splits": [{{"name": "users", "match": {{"route": "users"}}, "stable": "legacy",
            "targets": [{{"cluster": "fastapi", "weight": {weight}}}]}}]}}"#
    )
}

/// The sum of every sample of the Prometheus series `name` (any labels).
fn sum_of(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// The three sums, polled until they all equal `answered` or 20 s pass.
fn counted(stage: &Stage, answered: u64) -> [u64; 3] {
    let names = [
        "turnout_requests_total",
        "turnout_responses_total",
        "turnout_latency_ms_count",
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = stage.envoy.prometheus();
        let sums = names.map(|n| sum_of(&text, n));
        if sums == [answered; 3] || Instant::now() > deadline {
            return sums;
        }
        sleep(Duration::from_millis(250));
    }
}

fn every_request_is_counted_across_pushes(build: Build) {
    let mut stage = Stage::ecds_with(build, &config(50), 2);
    let port = stage.envoy.listener_port("main");
    let stop = AtomicBool::new(false);
    let answered: u64 = thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let stop = &stop;
                s.spawn(move || {
                    let mut client = HttpClient::new(port);
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let user = format!("count-{c}-{n}");
                        let r = client.get("/users", &[("x-user-id", user.as_str())]);
                        assert_eq!(r.status, 200, "{user}");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        for push in 0..PUSHES {
            sleep(PUSH_EVERY);
            stage.push(&config([10, 90, 30, 70][push % 4]));
        }
        stop.store(true, Ordering::SeqCst);
        clients.into_iter().map(|c| c.join().expect("client")).sum()
    });
    assert!(answered > 1000, "only {answered} requests answered");
    let sums = counted(&stage, answered);
    assert_eq!(
        sums, [answered; 3],
        "(requests_total, responses_total, latency_ms_count) summed over labels, \
         against the {answered} requests answered across {PUSHES} pushes"
    );
    eprintln!("{build:?}: {answered} requests, {PUSHES} pushes, every one counted");
}

integration::for_each_build!(every_request_is_counted_across_pushes);
