//! Proves the harness itself, without the turnout filter: Envoy starts from a
//! generated bootstrap, routes by `cluster_header` to real upstreams, shows
//! stats, and dies when dropped.

use integration::{
    ecds_resource, ecds_stat, wasm_filter_ecds, wasm_filter_inline, write_atomically, Behavior,
    Bootstrap, Envoy, HttpClient, Listener, Route, RouteAction, Upstream,
};
use std::time::Duration;

/// Generous: waits end as soon as the condition holds.
const TIMEOUT: Duration = Duration::from_secs(10);

fn header_routed(stable: &Upstream, canary: &Upstream) -> String {
    Bootstrap::new()
        .listener(Listener::new("main").route(Route::new(
            "all",
            "/",
            RouteAction::ClusterHeader("x-turnout-cluster".into()),
        )))
        .cluster("stable", stable.port())
        .cluster("canary", canary.port())
        .to_yaml()
}

#[test]
fn routes_by_cluster_header_to_named_upstreams() {
    let stable = Upstream::start("stable");
    let canary = Upstream::start("canary");
    let envoy = Envoy::start(&header_routed(&stable, &canary), 2);
    let mut client = envoy.client("main");

    for (cluster, upstream) in [
        ("stable", &stable),
        ("canary", &canary),
        ("stable", &stable),
    ] {
        let resp = client.get("/x", &[("x-turnout-cluster", cluster)]);
        assert_eq!(resp.status, 200, "{}", resp.body_str());
        assert_eq!(resp.header("x-upstream").as_deref(), Some(upstream.name()));
        let body = resp.body_str();
        assert!(body.starts_with(&format!("{cluster}\n")), "{body}");
        assert!(
            body.contains(&format!("x-turnout-cluster: {cluster}\n")),
            "{body}"
        );
    }
    assert_eq!((stable.requests(), canary.requests()), (2, 1));

    // No header: no cluster, Envoy answers 503 itself.
    let resp = client.get("/x", &[]);
    assert_eq!(resp.status, 503, "{}", resp.body_str());
    assert_eq!(resp.header("x-upstream"), None);

    envoy.wait_for_stat("cluster.canary.upstream_rq_200", |n| n == 1, TIMEOUT);
    envoy.wait_for_stat("http.main.downstream_rq_completed", |n| n == 4, TIMEOUT);
    envoy.wait_for_log("starting main dispatch loop", TIMEOUT);
}

#[test]
fn raw_header_bytes_and_upstream_behaviours() {
    let ok = Upstream::start("stable");
    let failing = Upstream::start_with("canary", Behavior::Status(503));
    let envoy = Envoy::start(&header_routed(&ok, &failing), 1);
    let mut client = envoy.client("main");

    // Non-UTF-8 header bytes reach the upstream (lossily decoded in its echo).
    let resp = client
        .request(
            "GET",
            "/",
            &[("x-turnout-cluster", b"stable"), ("x-user-id", b"caf\xe9")],
        )
        .unwrap();
    assert!(resp.body_str().contains("x-user-id: caf\u{fffd}\n"));

    let resp = client.get("/", &[("x-turnout-cluster", "canary")]);
    assert_eq!(
        (resp.status, resp.header("x-upstream")),
        (503, Some("canary".into()))
    );
    let resp = client.get(
        "/",
        &[("x-turnout-cluster", "stable"), ("x-test-status", "418")],
    );
    assert_eq!(resp.status, 418);

    failing.set_behavior(Behavior::Reset);
    let resp = client.get("/", &[("x-turnout-cluster", "canary")]);
    assert_eq!(resp.status, 503);
    assert_eq!(resp.header("x-upstream"), None);

    let resp = client.send("POST", "/", &[("x-turnout-cluster", "stable")], b"hello");
    assert_eq!(resp.status, 200);
    assert!(resp.body_str().contains("content-length: 5\n"));
}

#[test]
fn envoy_is_killed_when_dropped() {
    let up = Upstream::start("stable");
    let envoy = Envoy::start(&header_routed(&up, &up), 1);
    let pid = envoy.pid();
    let admin = envoy.admin_port();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(envoy);
    // Reaped by drop: the pid is gone, and so is the admin listener.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    let mut client = HttpClient::new(admin);
    assert!(client.request("GET", "/ready", &[]).is_err());
}

#[test]
fn upstream_drop_does_not_hang() {
    let up = Upstream::start("stable");
    let mut client = HttpClient::new(up.port());
    assert_eq!(client.get("/", &[]).status, 200);
    // A keep-alive connection is still open while the upstream stops.
    drop(up);
    assert!(client.request("GET", "/", &[]).is_err());
}

/// The filter configuration both wasm tests use: `{}` is valid (no splits,
/// requests pass untouched), an unknown field is refused.
const REFUSED: &str = r#"{"refuse_me": "unknown field, \"quoted\"\n"}"#;

fn stable_route(filter_yaml: &str, stable: &Upstream) -> String {
    Bootstrap::new()
        .listener(Listener::new("main").filter(filter_yaml).route(Route::new(
            "all",
            "/",
            RouteAction::Cluster("stable".into()),
        )))
        .cluster("stable", stable.port())
        .to_yaml()
}

#[test]
fn ecds_file_replacement_reloads_or_rejects() {
    let wasm = integration::filter_wasm();
    let stable = Upstream::start("stable");
    let dir = integration::scratch_dir("ecds");
    let file = dir.join("turnout.yaml");
    write_atomically(&file, &ecds_resource("turnout", &wasm, "{}"));
    let envoy = Envoy::start(
        &stable_route(&wasm_filter_ecds("turnout", &dir, &file), &stable),
        2,
    );
    let mut client = envoy.client("main");
    assert_eq!(client.get("/", &[]).status, 200);
    let success = ecds_stat("turnout", "update_success");
    let rejected = ecds_stat("turnout", "update_rejected");
    assert_eq!(
        (envoy.stat(&success), envoy.stat(&rejected)),
        (Some(1), Some(0))
    );

    // Refused: counted, and the previous configuration keeps serving.
    write_atomically(&file, &ecds_resource("turnout", &wasm, REFUSED));
    envoy.wait_for_stat(&rejected, |n| n == 1, TIMEOUT);
    assert_eq!(client.get("/", &[]).status, 200);

    write_atomically(&file, &ecds_resource("turnout", &wasm, "{}"));
    envoy.wait_for_stat(&success, |n| n == 2, TIMEOUT);
    assert_eq!(client.get("/", &[]).status, 200);
}

#[test]
fn refused_config_at_startup() {
    let wasm = integration::filter_wasm();
    let stable = Upstream::start("stable");

    // Inline: Envoy 1.40 refuses to start with a fail-closed plugin that
    // cannot load.
    let inline = stable_route(&wasm_filter_inline(&wasm, REFUSED), &stable);
    let err = Envoy::try_start(&inline, 1)
        .err()
        .expect("Envoy must not start");
    assert!(
        err.log.contains("Unable to create Wasm plugin turnout"),
        "{err}"
    );

    // ECDS: Envoy starts, and the listener fails closed (500) until a valid
    // configuration arrives.
    let dir = integration::scratch_dir("ecds");
    let file = dir.join("turnout.yaml");
    write_atomically(&file, &ecds_resource("turnout", &wasm, REFUSED));
    let envoy = Envoy::start(
        &stable_route(&wasm_filter_ecds("turnout", &dir, &file), &stable),
        1,
    );
    assert_eq!(
        envoy.stat(&ecds_stat("turnout", "update_rejected")),
        Some(1)
    );
    assert_eq!(envoy.client("main").get("/", &[]).status, 500);
    assert_eq!(stable.requests(), 0);
}
