//! The sticky weighted split, end to end in the real Envoy: share, stickiness
//! across requests and proxies, ramps without flip-back, rollback, pins, the
//! force header, anonymous users, and requests no split takes.

use std::thread;

use integration::stage::{served_by, upstream_saw, Stage, DECISION_HEADER};
use integration::Build;
use integration::{Envoy, HttpClient};
use turnout::bucket::Bucket;

/// The design's example split, with the weight and extra fields given.
fn users_config(weight: &str, extra: &str) -> String {
    format!(
        r#"{{"version": 1,
        "user_key": [{{"header": "x-user-id"}}, {{"cookie": "uid"}}, {{"query": "uid"}}],
        "splits": [{{"name": "users", "match": {{"route": "users"}}, "stable": "legacy",
            "targets": [{{"cluster": "fastapi", "weight": {weight}}}], "salt": "users",
            "pin": {{"fastapi": ["qa-1", "qa-2"], "legacy": ["qa-3"]}},
            "force_header": "x-turnout-force"{extra}}}]}}"#
    )
}

fn user(n: usize) -> String {
    format!("user-{n}")
}

/// Where the core says a user goes at `weight` basis points.
fn predicted(user: &str, weight: u16) -> &'static str {
    if Bucket::of(b"users", user.as_bytes()).0 < weight {
        "fastapi"
    } else {
        "legacy"
    }
}

/// The cluster that served each of `users` at `/users`, asked over
/// `threads` concurrent connections.
fn clusters_of(envoy: &Envoy, users: &[String], threads: usize) -> Vec<String> {
    let port = envoy.listener_port("main");
    let chunk = users.len().div_ceil(threads).max(1);
    thread::scope(|s| {
        let handles: Vec<_> = users
            .chunks(chunk)
            .map(|chunk| {
                s.spawn(move || {
                    let mut client = HttpClient::new(port);
                    chunk
                        .iter()
                        .map(|u| {
                            let r = client.get("/users", &[("x-user-id", u)]);
                            assert_eq!(r.status, 200, "{u}: {}", r.body_str());
                            served_by(&r).expect("served by an upstream")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client thread"))
            .collect()
    })
}

fn get(
    client: &mut HttpClient,
    path: &str,
    headers: &[(&str, &str)],
) -> (String, integration::Response) {
    let r = client.get(path, headers);
    assert_eq!(r.status, 200, "{path} {headers:?}: {}", r.body_str());
    (served_by(&r).expect("served by an upstream"), r)
}

fn ten_thousand_users_split_at_25_percent_exactly_where_the_core_says(build: Build) {
    let stage = Stage::inline_with(build, &users_config("25", ""), 2);
    let users: Vec<String> = (0..10_000).map(user).collect();
    let served = clusters_of(&stage.envoy, &users, 4);

    let to_new = served.iter().filter(|c| *c == "fastapi").count();
    let share = to_new as f64 / users.len() as f64 * 100.0;
    eprintln!(
        "share to fastapi at weight 25: {share:.2} % of {} users",
        users.len()
    );
    assert!((23.5..=26.5).contains(&share), "share {share:.2} %");
    for (u, c) in users.iter().zip(&served) {
        assert_eq!(c, predicted(u, 2500), "{u}");
    }
    assert_eq!(stage.fastapi.requests() as usize, to_new);
    assert_eq!(stage.legacy.requests() as usize, users.len() - to_new);
}

fn a_user_gets_the_same_cluster_on_every_request_and_every_proxy(build: Build) {
    let config = users_config("50", "");
    let (a, b) = (
        Stage::inline_with(build, &config, 2),
        Stage::inline_with(build, &config, 2),
    );
    let users: Vec<String> = (0..2_000).map(user).collect();
    let first = clusters_of(&a.envoy, &users, 4);
    let again = clusters_of(&a.envoy, &users, 3);
    let other_proxy = clusters_of(&b.envoy, &users, 4);
    assert_eq!(first, again);
    assert_eq!(first, other_proxy);
    let to_new = first.iter().filter(|c| *c == "fastapi").count();
    assert!((900..=1100).contains(&to_new), "{to_new} of 2000 at 50 %");
}

fn ramp_5_25_50_100_never_moves_a_user_out_of_the_target(build: Build) {
    let mut stage = Stage::ecds_with(build, &users_config("5", ""), 2);
    let users: Vec<String> = (0..2_000).map(user).collect();
    let mut in_target = vec![false; users.len()];
    for weight in ["5", "25", "50", "100"] {
        stage.push(&users_config(weight, ""));
        let served = clusters_of(&stage.envoy, &users, 4);
        let bps = weight.parse::<u16>().unwrap() * 100;
        for (i, c) in served.iter().enumerate() {
            assert_eq!(c, predicted(&users[i], bps), "{} at {weight}", users[i]);
            assert!(
                !in_target[i] || c == "fastapi",
                "{} left fastapi at {weight}",
                users[i]
            );
            in_target[i] = c == "fastapi";
        }
        let share = in_target.iter().filter(|t| **t).count() as f64 / 20.0;
        eprintln!("weight {weight}: {share:.1} % of users on fastapi");
    }
    assert!(
        in_target.iter().all(|t| *t),
        "at 100 % every user is on fastapi"
    );
}

fn rollback_sends_everyone_to_stable_pins_and_force_included(build: Build) {
    let stage = Stage::inline_with(build, &users_config("100", r#", "rollback": true"#), 2);
    let mut client = stage.client();
    for u in ["alice", "bob", "qa-1", "user-1"] {
        assert_eq!(
            get(&mut client, "/users", &[("x-user-id", u)]).0,
            "legacy",
            "{u}"
        );
        let forced = [("x-user-id", u), ("x-turnout-force", "fastapi")];
        assert_eq!(
            get(&mut client, "/users", &forced).0,
            "legacy",
            "{u} forced"
        );
    }
    assert_eq!(get(&mut client, "/users", &[]).0, "legacy");
    assert_eq!(stage.fastapi.requests(), 0);
}

fn an_inbound_decision_header_is_ignored(build: Build) {
    let stage = Stage::inline_with(build, &users_config("0", ""), 2);
    let mut client = stage.client();
    // Matched split: the filter's decision replaces the client's.
    let (cluster, r) = get(
        &mut client,
        "/users",
        &[("x-user-id", "alice"), (DECISION_HEADER, "fastapi")],
    );
    assert_eq!(cluster, "legacy");
    assert!(
        upstream_saw(&r, DECISION_HEADER, "legacy"),
        "{}",
        r.body_str()
    );
    let (cluster, _) = get(&mut client, "/users", &[(DECISION_HEADER, "fastapi")]);
    assert_eq!(cluster, "legacy");
    // No split: the header is removed before the upstream sees it.
    let (cluster, r) = get(&mut client, "/health", &[(DECISION_HEADER, "fastapi")]);
    assert_eq!(cluster, "legacy");
    assert!(!r.body_str().contains(DECISION_HEADER), "{}", r.body_str());
    assert_eq!(stage.fastapi.requests(), 0);
}

fn the_force_header_names_only_the_splits_own_clusters(build: Build) {
    let stage = Stage::inline_with(build, &users_config("0", ""), 2);
    let mut client = stage.client();
    let force = |c| [("x-user-id", "alice"), ("x-turnout-force", c)];
    assert_eq!(get(&mut client, "/users", &force("fastapi")).0, "fastapi");
    assert_eq!(
        get(&mut client, "/users", &[("x-turnout-force", "fastapi")]).0,
        "fastapi"
    );
    for junk in ["other", "", "fastapi;legacy", "FASTAPI", "fastapi, fastapi"] {
        assert_eq!(
            get(&mut client, "/users", &force(junk)).0,
            "legacy",
            "{junk:?}"
        );
    }
    // A pin beats the force header.
    let pinned = [("x-user-id", "qa-3"), ("x-turnout-force", "fastapi")];
    assert_eq!(get(&mut client, "/users", &pinned).0, "legacy");
}

fn pinned_users_go_to_their_cluster_at_any_weight(build: Build) {
    for (weight, extra) in [("0", ""), ("100", "")] {
        let stage = Stage::inline_with(build, &users_config(weight, extra), 1);
        let mut client = stage.client();
        assert_eq!(
            get(&mut client, "/users", &[("x-user-id", "qa-1")]).0,
            "fastapi"
        );
        assert_eq!(
            get(&mut client, "/users", &[("x-user-id", "qa-2")]).0,
            "fastapi"
        );
        assert_eq!(
            get(&mut client, "/users", &[("x-user-id", "qa-3")]).0,
            "legacy"
        );
    }
}

fn user_keys_from_header_cookie_and_query(build: Build) {
    let stage = Stage::inline_with(build, &users_config("50", ""), 1);
    let mut client = stage.client();
    // Find users on each side, then reach them by every key source.
    let on = |side| {
        (0..)
            .map(user)
            .find(|u| predicted(u, 5000) == side)
            .unwrap()
    };
    for side in ["legacy", "fastapi"] {
        let u = on(side);
        assert_eq!(get(&mut client, "/users", &[("x-user-id", &u)]).0, side);
        let cookie = format!("theme=dark; uid={u}; junk");
        assert_eq!(get(&mut client, "/users", &[("cookie", &cookie)]).0, side);
        assert_eq!(
            get(&mut client, &format!("/users?a=1&uid={u}"), &[]).0,
            side
        );
        // The header comes first: an empty one falls through to the cookie.
        assert_eq!(
            get(
                &mut client,
                "/users",
                &[("x-user-id", ""), ("cookie", &cookie)]
            )
            .0,
            side
        );
    }
}

fn anonymous_requests_go_to_stable_or_split_at_random(build: Build) {
    let stage = Stage::inline_with(build, &users_config("50", ""), 1);
    let mut client = stage.client();
    for _ in 0..50 {
        assert_eq!(get(&mut client, "/users", &[]).0, "legacy");
    }

    let random = users_config("50", "").replace(
        r#""version": 1,"#,
        r#""version": 1, "anonymous": "random","#,
    );
    let stage = Stage::inline_with(build, &random, 2);
    let mut client = stage.client();
    let to_new = (0..2_000)
        .filter(|_| get(&mut client, "/users", &[]).0 == "fastapi")
        .count();
    assert!(
        (850..=1150).contains(&to_new),
        "{to_new} of 2000 anonymous at 50 %"
    );
    // Keyed users stay sticky under the random rule.
    let u = user(7);
    let side = predicted(&u, 5000);
    for _ in 0..20 {
        assert_eq!(get(&mut client, "/users", &[("x-user-id", &u)]).0, side);
    }
}

fn requests_no_split_takes_pass_untouched(build: Build) {
    let config = users_config("100", "").replace(
        r#"{"route": "users"}"#,
        r#"{"prefix": "/users", "methods": ["GET"]}"#,
    );
    let stage = Stage::inline_with(build, &config, 1);
    let mut client = stage.client();
    let (cluster, r) = get(
        &mut client,
        "/other?uid=alice",
        &[("x-user-id", "alice"), ("x-custom", "kept")],
    );
    assert_eq!(cluster, "legacy");
    assert!(upstream_saw(&r, "x-custom", "kept"));
    assert!(upstream_saw(&r, "x-user-id", "alice"));
    assert!(!r.body_str().contains(DECISION_HEADER), "{}", r.body_str());
    // Same path, a method the split does not take: no decision header, so
    // the cluster_header route has no cluster and Envoy answers 503 itself.
    let r = client.send("POST", "/users", &[("x-user-id", "alice")], b"{}");
    assert_eq!((r.status, served_by(&r)), (503, None));
    assert_eq!(
        get(&mut client, "/users", &[("x-user-id", "alice")]).0,
        "fastapi"
    );
}

#[test]
fn a_refused_config_at_startup_names_the_field_in_envoys_log() {
    let config = users_config("140", "");
    let wasm = integration::filter_wasm();
    let (legacy, fastapi) = (
        integration::Upstream::start("legacy"),
        integration::Upstream::start("fastapi"),
    );
    let yaml = integration::stage::bootstrap(
        &integration::wasm_filter_inline(&wasm, &config),
        &legacy,
        &fastapi,
    );
    let err = Envoy::try_start(&yaml, 1)
        .err()
        .expect("Envoy must not start with a refused config");
    assert!(
        err.log.contains(
            "configuration refused: splits[0].targets[0].weight: 140 is not between 0 and 100"
        ),
        "{}",
        err.log
    );
}

integration::for_each_build!(
    ten_thousand_users_split_at_25_percent_exactly_where_the_core_says,
    a_user_gets_the_same_cluster_on_every_request_and_every_proxy,
    ramp_5_25_50_100_never_moves_a_user_out_of_the_target,
    rollback_sends_everyone_to_stable_pins_and_force_included,
    an_inbound_decision_header_is_ignored,
    the_force_header_names_only_the_splits_own_clusters,
    pinned_users_go_to_their_cluster_at_any_weight,
    user_keys_from_header_cookie_and_query,
    anonymous_requests_go_to_stable_or_split_at_random,
    requests_no_split_takes_pass_untouched,
);
