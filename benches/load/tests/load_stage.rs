//! The load benchmark's stage boots, and each of its listeners splits
//! `/users` the way the benchmark says, stickily, to both upstreams. No
//! timing is asserted here: `cargo bench-load` measures.

use std::collections::HashMap;

use integration::HttpClient;
use turnout::bucket::Bucket;
use turnout_bench_load::{
    floor_cluster, lua_cluster, Extra, ExtraModule, LoadStage, UpstreamKind, Variant, USER_HEADER,
};

fn cluster_of(client: &mut HttpClient, user: &str) -> String {
    let response = client.get("/users", &[(USER_HEADER, user)]);
    assert_eq!(response.status, 200, "{user}: {}", response.body_str());
    response.header("x-upstream").expect("an upstream answered")
}

fn check(stage: &LoadStage) {
    let users: Vec<String> = (0..200).map(|i| format!("u{i}")).collect();
    for variant in Variant::ALL {
        let mut client = HttpClient::new(stage.port(variant));
        let mut seen: HashMap<String, usize> = HashMap::new();
        for user in &users {
            let cluster = cluster_of(&mut client, user);
            let expected = match variant {
                Variant::Native => None,
                Variant::Turnout | Variant::TurnoutNative => {
                    Some(if Bucket::of(b"users", user.as_bytes()).0 < 5000 {
                        "fastapi"
                    } else {
                        "legacy"
                    })
                }
                Variant::Floor | Variant::FloorClear => Some(floor_cluster(user.as_bytes())),
                Variant::Lua => Some(lua_cluster(user.as_bytes())),
            };
            if let Some(expected) = expected {
                assert_eq!(cluster, expected, "{variant:?} {user}");
            }
            // Sticky: the same user again lands on the same cluster.
            assert_eq!(cluster_of(&mut client, user), cluster, "{variant:?} {user}");
            *seen.entry(cluster).or_default() += 1;
        }
        for cluster in ["legacy", "fastapi"] {
            let n = seen.get(cluster).copied().unwrap_or(0);
            assert!(
                (40..=160).contains(&n),
                "{variant:?}: {n} of 200 users on {cluster} ({seen:?})"
            );
        }
        // A path no split takes goes to legacy.
        let response = client.get("/health", &[(USER_HEADER, "u1")]);
        assert_eq!(response.header("x-upstream").as_deref(), Some("legacy"));
    }
    // Turnout answers with its trace id, in both builds; the floor does not.
    for variant in [Variant::Turnout, Variant::TurnoutNative] {
        let mut turnout = HttpClient::new(stage.port(variant));
        let response = turnout.get("/users", &[(USER_HEADER, "u1")]);
        assert_eq!(response.header("x-trace-id").map(|t| t.len()), Some(32));
    }
}

#[test]
fn every_listener_splits_with_envoy_upstreams() {
    check(&LoadStage::start(UpstreamKind::Envoy, 1));
}

#[test]
fn every_listener_splits_with_harness_upstreams() {
    check(&LoadStage::start(UpstreamKind::Harness, 1));
}

/// Starts a stage with `extra` and checks that it routes 50 users as the
/// wasm floor does (by the key's last byte); returns a client of it.
fn splits_like_the_floor(extra: Extra) -> (LoadStage, HttpClient) {
    let name = extra.name.clone();
    let stage = LoadStage::with_extras(UpstreamKind::Harness, 1, &[extra]);
    let mut client = HttpClient::new(stage.listener_port(&name));
    for i in 0..50 {
        let user = format!("u{i}");
        assert_eq!(
            cluster_of(&mut client, &user),
            floor_cluster(user.as_bytes()),
            "{name} {user}"
        );
    }
    (stage, client)
}

/// The floor without the SDK (`--extra NAME=bare`) splits as the floor does.
#[test]
fn the_floor_without_the_sdk_splits_like_the_floor() {
    splits_like_the_floor(Extra {
        name: "bare".into(),
        module: ExtraModule::Bare(integration::build_wasm_package("turnout-floor-bare")),
    });
}

/// The native floor (`--extra NAME=native-floor`) splits as the wasm floor
/// does, and is not turnout: no trace id.
#[test]
fn the_native_floor_splits_like_the_floor() {
    let (_stage, mut client) = splits_like_the_floor(Extra {
        name: "native_floor".into(),
        module: ExtraModule::Native(
            integration::native_floor_module_dir().join("libturnout_native.so"),
        ),
    });
    let response = client.get("/users", &[(USER_HEADER, "u1")]);
    assert_eq!(response.header("x-trace-id"), None);
}

/// The native module with another configuration (`--extra
/// NAME=native-config:JSON`) serves that configuration: here a prefix
/// match sending everyone to `fastapi`, where the benchmark's own would
/// split them by route name.
#[test]
fn the_native_module_with_another_config_serves_it() {
    let json = r#"{"splits": [{"name": "users", "match": {"prefix": "/users"},
        "stable": "legacy", "targets": [{"cluster": "fastapi", "weight": 100}]}]}"#;
    let stage = LoadStage::with_extras(
        UpstreamKind::Harness,
        1,
        &[Extra {
            name: "by_prefix".into(),
            module: ExtraModule::NativeConfig(json.into()),
        }],
    );
    let mut client = HttpClient::new(stage.listener_port("by_prefix"));
    for i in 0..20 {
        assert_eq!(cluster_of(&mut client, &format!("u{i}")), "fastapi");
    }
    let response = client.get("/users", &[(USER_HEADER, "u1")]);
    assert_eq!(response.header("x-trace-id").map(|t| t.len()), Some(32));
}
