//! Two replicas of `turnoutctl serve` on one directory, every proxy's xDS
//! cluster naming both (the second endpoint the shipped bootstraps leave
//! commented out): each replica shows only the proxies on it, both serve
//! the same version for the same file, and when the replica a proxy is on
//! dies the proxy moves to the other and takes the next push from it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use integration::Build;
use serde_json::Value;

use super::{options, serving};
use crate::harness::{config, now_ms, served_version, setup, start_all, track, write, Server};

/// The node ids in a replica's status.
fn nodes(status: &Value) -> BTreeSet<String> {
    let proxies = status["proxies"].as_array().cloned().unwrap_or_default();
    let ids = proxies.iter().filter_map(|p| p["node"].as_str());
    ids.map(str::to_string).collect()
}

/// Whether every one of `nodes` is in `status` and has ACKed `version`.
fn all_acked(status: &Value, nodes: &BTreeSet<String>, version: &str) -> bool {
    let here = self::nodes(status);
    nodes
        .iter()
        .all(|n| here.contains(n) && track(status, n)["acked_version"] == version)
}

/// The time (server ms) the last of `nodes` ACKed, in `status`.
fn last_ack(status: &Value, nodes: &BTreeSet<String>) -> u64 {
    let at = nodes
        .iter()
        .map(|n| track(status, n)["acked_at_ms"].as_u64());
    at.map(|t| t.expect("an ACK time")).max().unwrap_or(0)
}

pub fn when_the_replica_a_proxy_is_on_dies_it_takes_the_next_push_from_the_other(build: Build) {
    let stage = setup(0);
    let file = &stage.file;
    let mut replicas = [
        Server::start(&stage.dir, &serving(build), 0),
        Server::start(&stage.dir, &serving(build), 0),
    ];
    let ports = [replicas[0].port, replicas[1].port];
    let fleet = [
        ("a", options(build, false)),
        ("b", options(build, false)),
        ("c", options(build, true)),
    ];
    let proxies = start_all(&fleet, &ports, &stage.upstreams);
    let everyone: BTreeSet<String> = fleet.iter().map(|(n, _)| n.to_string()).collect();

    // The same file, the same version on both: the content's hash, and the
    // build's mark (the native build's versions end in -native).
    let version = served_version(&replicas[0].status());
    assert_eq!(served_version(&replicas[1].status()), version);
    assert_eq!(
        version.ends_with("-native"),
        build == Build::Native,
        "{version}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let (on_first, on_second) = loop {
        let statuses = [replicas[0].status(), replicas[1].status()];
        let [first, second] = statuses.each_ref().map(nodes);
        let acked = |s: &Value, n: &BTreeSet<String>| all_acked(s, n, &version);
        if first.union(&second).count() == 3
            && acked(&statuses[0], &first)
            && acked(&statuses[1], &second)
        {
            // Each replica shows only the proxies connected to it.
            assert!(first.is_disjoint(&second), "{first:?} {second:?}");
            break (first, second);
        }
        assert!(
            Instant::now() < deadline,
            "not every proxy ACKed on a replica: {statuses:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    for p in &proxies {
        assert_eq!(p.ecds_stat("version_text"), version, "{}", p.node);
    }
    eprintln!("replicas ({build:?}): {on_first:?} on the first, {on_second:?} on the second");

    // Kill the replica with the most proxies (at least one is on it).
    let (dead, moved) = if on_first.len() >= on_second.len() {
        (0, on_first)
    } else {
        (1, on_second)
    };
    let killed = now_ms();
    replicas[dead].kill();
    let survivor = &replicas[1 - dead];
    let status = survivor.status_until(|s| all_acked(s, &everyone, &version));
    for node in &moved {
        let proxy = status["proxies"]
            .as_array()
            .and_then(|all| all.iter().find(|p| p["node"] == node.as_str()))
            .expect("moved");
        assert_eq!(
            proxy["initial_version"],
            version.as_str(),
            "{node} said what it had"
        );
    }
    let reconnected = last_ack(&status, &moved);

    // The next push, from the survivor alone.
    let renamed = write(file, &config(100, false));
    survivor.acked(file, 3);
    let status = survivor.status();
    let next = served_version(&status);
    assert_ne!(next, version);
    assert!(all_acked(&status, &everyone, &next), "{status:#}");
    let pushed = last_ack(&status, &moved);
    for p in &proxies {
        assert_eq!(p.serves("alice").as_deref(), Some("fastapi"), "{}", p.node);
    }

    // A replica started on the directory now serves what the survivor does.
    let replacement = Server::start(&stage.dir, &serving(build), 0);
    assert_eq!(served_version(&replacement.status()), next);

    let gap = reconnected.saturating_sub(killed);
    eprintln!(
        "replica failover ({build:?}, {} proxies moved): kill to the other replica seeing their ACK \
         of the current version {gap} ms; kill to their ACK of the next push {} ms (rename to that \
         ACK {} ms)",
        moved.len(),
        pushed.saturating_sub(killed),
        pushed.saturating_sub(renamed)
    );
}
