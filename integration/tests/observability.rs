//! Stats in Prometheus, trace context and the debug header, against the
//! real Envoy: exact counts per label, the latency histogram, classes of
//! failed responses, and W3C traceparent kept, generated and replaced.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use integration::stage::{served_by, Stage};
use integration::Build;
use integration::{Behavior, HttpClient, Response};
use turnout::bucket::Bucket;

const CONFIG: &str = r#"{"version": 1, "debug": true,
    "splits": [{"name": "users", "match": {"route": "users"}, "stable": "legacy",
        "targets": [{"cluster": "fastapi", "weight": 50}],
        "pin": {"fastapi": ["qa-1"]}, "force_header": "x-turnout-force"}]}"#;

fn on_fastapi(user: &str) -> bool {
    Bucket::of(b"users", user.as_bytes()).0 < 5000
}

/// The first user `u0`, `u1`, … whom the split sends to the canary.
fn canary_user() -> String {
    (0..)
        .map(|i| format!("u{i}"))
        .find(|u| on_fastapi(u))
        .expect("half the users are on the canary")
}

/// The value of one Prometheus sample, labels given in exposition order.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Waits until every expected sample has its value, then returns the text.
fn prometheus_with(stage: &Stage, expected: &[(String, f64)]) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = stage.envoy.prometheus();
        let missing: Vec<_> = expected
            .iter()
            .filter(|(s, v)| sample(&text, s) != Some(*v))
            .collect();
        if missing.is_empty() {
            return text;
        }
        if Instant::now() > deadline {
            let got: Vec<_> = missing
                .iter()
                .map(|(s, v)| format!("{s}: want {v}, got {:?}", sample(&text, s)))
                .collect();
            panic!("stats never matched:\n{}\n\n{text}", got.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn requests(cluster: &str, reason: &str) -> String {
    format!(r#"turnout_requests_total{{split="users",cluster="{cluster}",reason="{reason}"}}"#)
}

fn responses(cluster: &str, class: &str) -> String {
    format!(r#"turnout_responses_total{{split="users",cluster="{cluster}",class="{class}"}}"#)
}

fn prometheus_shows_exact_counts_per_label(build: Build) {
    let stage = Stage::inline_with(build, CONFIG, 2);
    let mut client = stage.client();
    let users: Vec<String> = (0..300).map(|i| format!("user-{i}")).collect();
    let on_new = users.iter().filter(|u| on_fastapi(u)).count();
    for u in &users {
        assert_eq!(client.get("/users", &[("x-user-id", u)]).status, 200);
    }
    for _ in 0..5 {
        client.get("/users", &[("x-user-id", "qa-1")]);
    }
    for _ in 0..7 {
        client.get(
            "/users",
            &[("x-user-id", "user-0"), ("x-turnout-force", "fastapi")],
        );
    }
    for _ in 0..4 {
        client.get("/users", &[]);
    }
    // Not a split's request: counted nowhere.
    client.get("/health", &[("x-user-id", "user-1")]);

    let total = (users.len() + 5 + 7 + 4) as f64;
    let text = prometheus_with(
        &stage,
        &[
            (requests("fastapi", "bucket"), on_new as f64),
            (requests("legacy", "bucket"), (users.len() - on_new) as f64),
            (requests("fastapi", "pin"), 5.0),
            (requests("fastapi", "force"), 7.0),
            (requests("legacy", "anonymous"), 4.0),
            (requests("fastapi", "rollback"), 0.0),
            (requests("legacy", "guard"), 0.0),
            (responses("fastapi", "2xx"), (on_new + 12) as f64),
            (
                responses("legacy", "2xx"),
                (users.len() - on_new + 4) as f64,
            ),
            (responses("legacy", "5xx"), 0.0),
            (r#"turnout_guard_tripped{split="users"}"#.into(), 0.0),
            (
                r#"turnout_stable_cluster_info{split="users",cluster="legacy"}"#.into(),
                1.0,
            ),
            (
                r#"turnout_stable_cluster_info{split="users",cluster="fastapi"}"#.into(),
                0.0,
            ),
        ],
    );
    assert!(
        text.contains("# TYPE turnout_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE turnout_latency_ms histogram"),
        "{text}"
    );

    // The histogram counts every response of the split once Envoy has
    // flushed it (every second in the stage).
    let counts = [
        (
            r#"turnout_latency_ms_count{split="users",cluster="fastapi"}"#.to_string(),
            (on_new + 12) as f64,
        ),
        (
            r#"turnout_latency_ms_count{split="users",cluster="legacy"}"#.to_string(),
            (users.len() - on_new + 4) as f64,
        ),
    ];
    let text = prometheus_with(&stage, &counts);
    let inf = sample(
        &text,
        r#"turnout_latency_ms_bucket{split="users",cluster="fastapi",le="+Inf"}"#,
    );
    assert_eq!(inf, Some((on_new + 12) as f64));
    assert!(text.contains(r#"turnout_latency_ms_bucket{split="users",cluster="legacy",le="500"}"#));
    assert_eq!(
        stage.fastapi.requests() + stage.legacy.requests(),
        total as u64 + 1
    );
}

fn failures_are_classed_5xx_4xx_and_reset(build: Build) {
    let stage = Stage::inline_with(build, CONFIG, 2);
    let mut client = stage.client();
    let canary_user = canary_user();
    let user = [("x-user-id", canary_user.as_str())];
    for _ in 0..3 {
        let r = client.get("/users", &[user[0], ("x-test-status", "503")]);
        assert_eq!((r.status, served_by(&r).as_deref()), (503, Some("fastapi")));
    }
    for _ in 0..2 {
        assert_eq!(
            client
                .get("/users", &[user[0], ("x-test-status", "404")])
                .status,
            404
        );
    }
    client.get("/users", &[user[0], ("x-test-status", "302")]);
    stage.fastapi.set_behavior(Behavior::Reset);
    for _ in 0..4 {
        let r = client.get("/users", &user);
        assert_eq!(
            (r.status, served_by(&r)),
            (503, None),
            "Envoy answers a reset upstream"
        );
    }
    stage.fastapi.set_behavior(Behavior::Ok);
    assert_eq!(client.get("/users", &user).status, 200);
    prometheus_with(
        &stage,
        &[
            (responses("fastapi", "5xx"), 3.0),
            (responses("fastapi", "4xx"), 2.0),
            (responses("fastapi", "3xx"), 1.0),
            (responses("fastapi", "reset"), 4.0),
            (responses("fastapi", "2xx"), 1.0),
            (requests("fastapi", "bucket"), 11.0),
        ],
    );
}

/// The latency runs from the request reaching the filter to the end of
/// the response: an upstream that takes 150 ms lands in (100, 250] ms, a
/// prompt one under 100 ms.
fn latency_spans_the_upstream_answer(build: Build) {
    let stage = Stage::inline_with(build, CONFIG, 1);
    let mut client = stage.client();
    let canary_user = canary_user();
    let user = ("x-user-id", canary_user.as_str());
    for _ in 0..3 {
        let r = client.get("/users", &[user, ("x-test-delay-ms", "150")]);
        assert_eq!((r.status, served_by(&r).as_deref()), (200, Some("fastapi")));
    }
    for _ in 0..2 {
        assert_eq!(client.get("/users", &[user]).status, 200);
    }
    let bucket = |le: &str| {
        format!(r#"turnout_latency_ms_bucket{{split="users",cluster="fastapi",le="{le}"}}"#)
    };
    prometheus_with(
        &stage,
        &[
            (bucket("100"), 2.0),
            (bucket("250"), 5.0),
            (
                r#"turnout_latency_ms_count{split="users",cluster="fastapi"}"#.into(),
                5.0,
            ),
        ],
    );
}

fn a_client_that_leaves_before_the_answer_is_a_reset(build: Build) {
    let stage = Stage::inline_with(build, CONFIG, 1);
    let canary_user = canary_user();
    stage
        .fastapi
        .set_behavior(Behavior::Delay(Duration::from_secs(2)));
    {
        let mut client = HttpClient::new(stage.envoy.listener_port("main"));
        client.set_timeout(Duration::from_millis(300));
        assert!(client
            .request("GET", "/users", &[("x-user-id", canary_user.as_bytes())])
            .is_err());
    }
    prometheus_with(
        &stage,
        &[
            (responses("fastapi", "reset"), 1.0),
            (responses("fastapi", "2xx"), 0.0),
        ],
    );
}

fn mode_answers_are_counted_per_split_and_mode(build: Build) {
    let config = CONFIG
        .replace(
            r#""debug": true,"#,
            r#""debug": true, "mode": "maintenance", "allow_paths": ["/health"],"#,
        )
        .replace(
            r#""force_header": "x-turnout-force""#,
            r#""force_header": "x-turnout-force", "mode": "read_only""#,
        );
    let stage = Stage::inline_with(build, &config, 1);
    let mut client = stage.client();
    for _ in 0..3 {
        assert_eq!(
            client
                .send("POST", "/users", &[("x-user-id", "a")], b"{}")
                .status,
            503
        );
    }
    assert_eq!(client.get("/users", &[("x-user-id", "a")]).status, 200);
    assert_eq!(client.get("/elsewhere", &[]).status, 503);
    assert_eq!(client.get("/health", &[]).status, 200);
    prometheus_with(
        &stage,
        &[
            (
                r#"turnout_rejected_total{split="users",mode="read_only"}"#.into(),
                3.0,
            ),
            (
                r#"turnout_rejected_total{split="users",mode="maintenance"}"#.into(),
                0.0,
            ),
            (
                r#"turnout_rejected_total{split="_none",mode="maintenance"}"#.into(),
                1.0,
            ),
        ],
    );
}

/// The `traceparent` the upstream received.
fn upstream_traceparent(r: &Response) -> String {
    let body = r.body_str();
    let line = body
        .lines()
        .find_map(|l| l.strip_prefix("traceparent: ").map(str::to_string));
    line.unwrap_or_else(|| panic!("no traceparent upstream:\n{body}"))
}

fn is_valid_generated(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() == 4
        && parts[0] == "00"
        && parts[1].len() == 32
        && hex(parts[1])
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].len() == 16
        && hex(parts[2])
        && parts[2].bytes().any(|b| b != b'0')
        && parts[3] == "01"
}

fn traceparent_is_kept_generated_or_replaced_and_echoed(build: Build) {
    let stage = Stage::inline_with(build, CONFIG, 2);
    let mut client = stage.client();
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = client.get(
        "/users",
        &[
            ("x-user-id", "a"),
            ("traceparent", valid),
            ("tracestate", "rojo=1"),
        ],
    );
    assert_eq!(upstream_traceparent(&r), valid);
    assert!(r.body_str().contains("tracestate: rojo=1\n"));
    assert_eq!(
        r.header("x-trace-id").as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );

    for invalid in [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "garbage",
    ] {
        let r = client.get(
            "/users",
            &[
                ("x-user-id", "a"),
                ("traceparent", invalid),
                ("tracestate", "rojo=1"),
            ],
        );
        let tp = upstream_traceparent(&r);
        assert!(is_valid_generated(&tp), "{invalid} became {tp}");
        assert_ne!(tp, invalid);
        assert!(
            !r.body_str().contains("tracestate"),
            "a tracestate of no trace is dropped"
        );
        assert_eq!(r.header("x-trace-id").as_deref(), Some(&tp[3..35]));
    }

    // Generated for requests that carry none, on and off the split, unique.
    let mut ids = HashSet::new();
    for i in 0..1000 {
        let path = if i % 2 == 0 { "/users" } else { "/other" };
        let r = client.get(
            path,
            &[("x-user-id", &format!("u{i}")), ("x-request-id", "mine")],
        );
        let tp = upstream_traceparent(&r);
        assert!(is_valid_generated(&tp), "{tp}");
        assert_eq!(r.header("x-trace-id").as_deref(), Some(&tp[3..35]));
        assert!(
            r.body_str().contains("x-request-id: mine\n"),
            "Envoy's request id is left alone"
        );
        ids.insert(tp[3..35].to_string());
    }
    assert_eq!(ids.len(), 1000, "trace ids repeat");
}

fn tracestate_and_a_custom_trace_header_when_configured(build: Build) {
    let config = CONFIG.replace(
        r#""debug": true,"#,
        r#""trace": {"response_header": "x-b3-like", "tracestate": true},"#,
    );
    let stage = Stage::inline_with(build, &config, 1);
    let mut client = stage.client();
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = client.get(
        "/users",
        &[
            ("x-user-id", "qa-1"),
            ("traceparent", valid),
            ("tracestate", "rojo=1,turnout=old"),
        ],
    );
    assert!(
        r.body_str()
            .contains("tracestate: turnout=fastapi,rojo=1\n"),
        "{}",
        r.body_str()
    );
    assert_eq!(
        r.header("x-b3-like").as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(r.header("x-trace-id"), None);
    assert_eq!(r.header("x-turnout-decision"), None, "debug is off");
}

/// The trace header is replaced, not doubled, when the upstream sends one
/// of that name too (here `x-upstream`, which every test upstream sends):
/// the native build adds it only when a copy of the response's headers
/// shows it absent.
fn a_trace_header_the_upstream_sends_too_is_replaced(build: Build) {
    let config = CONFIG.replace(
        r#""debug": true,"#,
        r#""trace": {"response_header": "x-upstream"},"#,
    );
    let stage = Stage::inline_with(build, &config, 1);
    let mut client = stage.client();
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for path in ["/users", "/other"] {
        let r = client.get(path, &[("x-user-id", "a"), ("traceparent", valid)]);
        assert_eq!(
            r.header_all("x-upstream"),
            ["4bf92f3577b34da6a3ce929d0e0e4736"],
            "{path}"
        );
    }
}

fn the_debug_header_explains_the_decision(build: Build) {
    let stage = Stage::inline_with(build, CONFIG, 1);
    let mut client = stage.client();
    let bucket = Bucket::of(b"users", b"alice").0;
    let r = client.get("/users", &[("x-user-id", "alice")]);
    assert_eq!(
        r.header("x-turnout-decision").as_deref(),
        Some(format!("split=users; cluster=fastapi; reason=bucket; bucket={bucket}").as_str())
    );
    let r = client.get("/users", &[("x-user-id", "qa-1")]);
    assert_eq!(
        r.header("x-turnout-decision").as_deref(),
        Some("split=users; cluster=fastapi; reason=pin")
    );
    let r = client.get("/users", &[]);
    assert_eq!(
        r.header("x-turnout-decision").as_deref(),
        Some("split=users; cluster=legacy; reason=anonymous")
    );
    let r = client.get("/other", &[("x-user-id", "alice")]);
    assert_eq!(r.header("x-turnout-decision"), None);
}

integration::for_each_build!(
    prometheus_shows_exact_counts_per_label,
    failures_are_classed_5xx_4xx_and_reset,
    latency_spans_the_upstream_answer,
    a_client_that_leaves_before_the_answer_is_a_reset,
    mode_answers_are_counted_per_split_and_mode,
    traceparent_is_kept_generated_or_replaced_and_echoed,
    tracestate_and_a_custom_trace_header_when_configured,
    a_trace_header_the_upstream_sends_too_is_replaced,
    the_debug_header_explains_the_decision,
);
