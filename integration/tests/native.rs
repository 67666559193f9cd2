//! What is particular to the native build (the Envoy dynamic module) in
//! the real Envoy: refused configurations at startup and on update, a
//! panic in any hook (Envoy must survive it, and the request get a sane
//! answer), and the same Prometheus series as the wasm build for the
//! same traffic. Everything else runs against both builds in the other
//! test files.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use integration::stage::{bootstrap_for, served_by, Stage, FILTER_NAME};
use integration::{
    ecds_stat, native_ecds_resource, native_filter_ecds, native_filter_inline,
    native_panicky_module_dir, scratch_dir, write_atomically, Build, Envoy, Upstream,
};

const CONFIG: &str = r#"{"version": 1, "splits": [{"name": "users",
    "match": {"route": "users"}, "stable": "legacy",
    "targets": [{"cluster": "fastapi", "weight": 50}], "pin": {"fastapi": ["qa-1"]}}]}"#;

/// Refused: the weight is out of range (named by its field).
const REFUSED: &str = r#"{"version": 1, "splits": [{"name": "users",
    "match": {"route": "users"}, "stable": "legacy",
    "targets": [{"cluster": "fastapi", "weight": 140}]}]}"#;
const REFUSAL: &str =
    "turnout: configuration refused: splits[0].targets[0].weight: 140 is not between 0 and 100";

const TIMEOUT: Duration = Duration::from_secs(10);

/// The user that `CONFIG` pins to fastapi, whatever the weight.
const PINNED: &str = "qa-1";

#[test]
fn a_refused_config_is_named_in_the_log_at_startup_and_on_update() {
    let (legacy, fastapi) = (Upstream::start("legacy"), Upstream::start("fastapi"));

    // Inline: Envoy refuses to start, and says why.
    let inline = bootstrap_for(
        Build::Native,
        &[native_filter_inline(REFUSED)],
        &legacy,
        &fastapi,
    );
    let err = Build::Native
        .try_start_envoy(&inline, 1)
        .err()
        .expect("Envoy must not start with a refused inline config");
    assert!(err.log.contains(REFUSAL), "{err}");

    // By ECDS: a refused push is counted and the previous config serves.
    let mut stage = Stage::ecds_with(Build::Native, CONFIG, 2);
    let mut client = stage.client();
    let pinned = |client: &mut integration::HttpClient| {
        served_by(&client.get("/users", &[("x-user-id", PINNED)]))
    };
    assert_eq!(pinned(&mut client).as_deref(), Some("fastapi"));
    stage.push_rejected(REFUSED);
    stage.envoy.wait_for_log(REFUSAL, TIMEOUT);
    assert_eq!(pinned(&mut client).as_deref(), Some("fastapi"));
    let stats = stage.ecds_stats();
    assert_eq!(
        (stats.get("update_success"), stats.get("update_rejected")),
        (Some(&1), Some(&1))
    );
    // A valid push after the refused one applies.
    stage.push(&CONFIG.replace(r#""fastapi": ["qa-1"]"#, r#""legacy": ["qa-1"]"#));
    assert_eq!(pinned(&mut client).as_deref(), Some("legacy"));
}

#[test]
fn a_refused_config_by_ecds_at_startup_serves_nothing_unrouted() {
    // ECDS with a refused first config: Envoy starts, and turnout's place in
    // the chain has no configuration, so Envoy answers for it; a request is
    // never routed without a decision.
    let (legacy, fastapi) = (Upstream::start("legacy"), Upstream::start("fastapi"));
    let dir = scratch_dir("ecds");
    let file = dir.join("turnout.yaml");
    write_atomically(&file, &native_ecds_resource(FILTER_NAME, REFUSED));
    let filters = [native_filter_ecds(FILTER_NAME, &dir, &file)];
    let envoy = Build::Native.start_envoy(
        &bootstrap_for(Build::Native, &filters, &legacy, &fastapi),
        1,
    );
    envoy.wait_for_stat(
        &ecds_stat(FILTER_NAME, "update_rejected"),
        |n| n == 1,
        TIMEOUT,
    );
    let r = envoy.client("main").get(
        "/users",
        &[("x-user-id", "alice"), ("x-turnout-cluster", "fastapi")],
    );
    assert_eq!(r.status, 500, "{}", r.body_str());
    assert_eq!(legacy.requests() + fastapi.requests(), 0);
    envoy.wait_for_log(REFUSAL, TIMEOUT);
}

/// Envoy with the test build of the module, whose hooks panic on demand.
fn panicky_stage(config: &str) -> (Envoy, Upstream, Upstream, std::path::PathBuf) {
    let (legacy, fastapi) = (Upstream::start("legacy"), Upstream::start("fastapi"));
    let dir = scratch_dir("ecds");
    let file = dir.join("turnout.yaml");
    write_atomically(&file, &native_ecds_resource(FILTER_NAME, config));
    let filters = [native_filter_ecds(FILTER_NAME, &dir, &file)];
    let envoy = Envoy::start_with_modules(
        &bootstrap_for(Build::Native, &filters, &legacy, &fastapi),
        2,
        &native_panicky_module_dir(),
    );
    (envoy, legacy, fastapi, file)
}

#[test]
fn a_panic_in_any_hook_is_caught_and_envoy_serves_on() {
    let (envoy, legacy, fastapi, file) = panicky_stage(CONFIG);
    let mut client = envoy.client("main");
    let panic_in = |client: &mut integration::HttpClient, hook: &str| {
        client.get(
            "/users",
            &[
                ("x-user-id", PINNED),
                ("x-turnout-cluster", "legacy"),
                ("x-turnout-test-panic", hook),
            ],
        )
    };

    // Deciding: fails closed, never routed (not even where the client
    // asked to go).
    let before = legacy.requests() + fastapi.requests();
    let r = panic_in(&mut client, "request_headers");
    assert_eq!(r.status, 503, "{}", r.body_str());
    assert_eq!(r.body_str(), "turnout: the filter failed\n");
    assert_eq!(legacy.requests() + fastapi.requests(), before);

    // After the decision: the response goes through.
    let r = panic_in(&mut client, "response_headers");
    assert_eq!((r.status, served_by(&r).as_deref()), (200, Some("fastapi")));
    let r = panic_in(&mut client, "stream_complete");
    assert_eq!((r.status, served_by(&r).as_deref()), (200, Some("fastapi")));

    // Configuring: refused like any bad config, the old one serves.
    write_atomically(
        &file,
        &native_ecds_resource(FILTER_NAME, r#"{"native_test_panic": 1}"#),
    );
    envoy.wait_for_stat(
        &ecds_stat(FILTER_NAME, "update_rejected"),
        |n| n == 1,
        TIMEOUT,
    );

    // The same Envoy still decides, on every worker.
    for _ in 0..20 {
        let mut fresh = envoy.client("main");
        let r = fresh.get("/users", &[("x-user-id", PINNED)]);
        assert_eq!((r.status, served_by(&r).as_deref()), (200, Some("fastapi")));
    }
    // One line per panic: Envoy writes its log behind the stats, so wait
    // for the four lines (request, response, stream end, config) rather
    // than reading it once.
    let caught = || {
        envoy
            .log()
            .lines()
            .filter(|l| l.contains("turnout: panic caught: panicked at"))
            .count()
    };
    let deadline = Instant::now() + TIMEOUT;
    while caught() < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(caught(), 4, "{}", envoy.tail());
}

/// The turnout series of `/stats/prometheus`, each with its value, leaving
/// out the latency histogram's values (each build records its own timing).
fn turnout_series(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| l.starts_with("turnout_"))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, value)| {
            let timing = series.starts_with("turnout_latency_ms");
            let value = if timing { "-" } else { value };
            (series.to_string(), value.to_string())
        })
        .collect()
}

#[test]
fn both_builds_show_the_same_prometheus_series_for_the_same_traffic() {
    let config = r#"{"version": 1, "mode": "read_only", "splits": [{"name": "users",
        "match": {"route": "users"}, "stable": "legacy",
        "targets": [{"cluster": "fastapi", "weight": 30}], "pin": {"fastapi": ["qa-1"]},
        "force_header": "x-turnout-force"}]}"#;
    let series = Build::ALL.map(|build| {
        let stage = Stage::inline_with(build, config, 2);
        let mut client = stage.client();
        for n in 0..200 {
            let user = format!("user-{n}");
            assert_eq!(client.get("/users", &[("x-user-id", &user)]).status, 200);
        }
        client.get("/users", &[("x-user-id", PINNED)]);
        client.get("/users", &[("x-turnout-force", "fastapi")]);
        client.get("/users", &[]);
        let post = client.request("POST", "/users", &[("x-user-id", b"writer")]);
        assert_eq!(post.expect("POST answered").status, 503);
        let delete = client.request("DELETE", "/elsewhere", &[]);
        assert_eq!(delete.expect("DELETE answered").status, 503);
        // The wasm build publishes its counts every second.
        let settled = |text: &str| {
            turnout_series(text)
                .iter()
                .filter(|(s, _)| s.starts_with("turnout_requests_total"))
                .map(|(_, v)| v.parse::<u64>().unwrap_or(0))
                .sum::<u64>()
                == 203
        };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let text = stage.envoy.prometheus();
            if settled(&text) {
                return turnout_series(&text);
            }
            assert!(Instant::now() < deadline, "{build:?}:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let [wasm, native] = &series;
    assert!(wasm.len() > 40, "{wasm:?}");
    assert_eq!(wasm, native);
    for (series, value) in [
        (
            r#"turnout_requests_total{split="users",cluster="fastapi",reason="pin"}"#,
            "1",
        ),
        (
            r#"turnout_requests_total{split="users",cluster="fastapi",reason="force"}"#,
            "1",
        ),
        (
            r#"turnout_requests_total{split="users",cluster="legacy",reason="anonymous"}"#,
            "1",
        ),
        (
            r#"turnout_rejected_total{split="users",mode="read_only"}"#,
            "1",
        ),
        (
            r#"turnout_rejected_total{split="_none",mode="read_only"}"#,
            "1",
        ),
        (
            r#"turnout_stable_cluster_info{split="users",cluster="legacy"}"#,
            "1",
        ),
        (
            r#"turnout_stable_cluster_info{split="users",cluster="fastapi"}"#,
            "0",
        ),
        (r#"turnout_guard_tripped{split="users"}"#, "0"),
    ] {
        assert_eq!(
            native.get(series).map(String::as_str),
            Some(value),
            "{series}"
        );
    }
}
