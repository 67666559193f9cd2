//! Two plugin configurations in one VM. Envoy shares a VM between wasm
//! filters whose `vm_config` is the same (same `vm_id`, same module); each
//! filter's configuration is then a root context of its own in that VM.
//! Every request must follow its own filter's configuration: the shell
//! learns a request's root context from `proxy_on_context_create`, which is
//! why it still exports that callback.

use integration::stage::{served_by, DECISION_HEADER};
use integration::{
    filter_wasm, wasm_filter_inline_named, Bootstrap, Envoy, Listener, Route, RouteAction, Upstream,
};

/// Every user of split `users` to `fastapi` (weight 100) or to `legacy` (0).
fn config(weight: u32) -> String {
    format!(
        r#"{{"version": 1, "splits": [{{"name": "users", "match": {{"route": "users"}},
            "stable": "legacy", "targets": [{{"cluster": "fastapi", "weight": {weight}}}]}}]}}"#
    )
}

/// Envoy with a listener per (plugin, weight), each plugin in VM `vm_id_of(plugin)`.
fn envoy(
    plugins: &[(&str, u32)],
    vm_id_of: impl Fn(&str) -> String,
) -> (Envoy, Upstream, Upstream) {
    let legacy = Upstream::start("legacy");
    let fastapi = Upstream::start("fastapi");
    let wasm = filter_wasm();
    let mut bootstrap = Bootstrap::new();
    for (plugin, weight) in plugins {
        bootstrap = bootstrap.listener(
            Listener::new(plugin)
                .filter(&wasm_filter_inline_named(
                    plugin,
                    &vm_id_of(plugin),
                    &wasm,
                    &config(*weight),
                ))
                .route(Route::new(
                    "users",
                    "/users",
                    RouteAction::ClusterHeader(DECISION_HEADER.into()),
                )),
        );
    }
    let yaml = bootstrap
        .cluster("legacy", legacy.port())
        .cluster("fastapi", fastapi.port())
        .to_yaml();
    (Envoy::start(&yaml, 1), legacy, fastapi)
}

#[test]
fn configurations_sharing_a_vm_each_route_their_own_requests() {
    let plugins = [("all_new", 100), ("all_old", 0)];
    let (shared, _legacy, _fastapi) = envoy(&plugins, |_| "shared".into());
    let (apart, _l, _f) = envoy(&plugins, |plugin| plugin.into());
    let vms = |e: &Envoy| e.stat("wasm.envoy.wasm.runtime.v8.active");
    assert!(
        vms(&shared) < vms(&apart),
        "one vm_id should mean fewer VMs: {:?} shared, {:?} apart",
        vms(&shared),
        vms(&apart)
    );
    let mut new = shared.client("all_new");
    let mut old = shared.client("all_old");
    for i in 0..20 {
        let user = format!("u{i}");
        let user = [("x-user-id", user.as_str())];
        // Interleaved: requests of both root contexts follow one another
        // in the same VM.
        assert_eq!(
            served_by(&new.get("/users", &user)).as_deref(),
            Some("fastapi")
        );
        assert_eq!(
            served_by(&old.get("/users", &user)).as_deref(),
            Some("legacy")
        );
    }
}
