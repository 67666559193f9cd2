//! One server serves one build: a proxy of the other build refuses its
//! resource (the bootstrap's `type_urls`), NACKs with Envoy's message and
//! keeps serving its default config, as the fleet bootstraps say.

use integration::Build;

use super::{options, serving};
use crate::harness::{served_version, setup, track, Proxy, Server};

pub fn a_proxy_of_the_other_build_nacks_and_keeps_its_default(build: Build) {
    let other = match build {
        Build::Wasm => Build::Native,
        Build::Native => Build::Wasm,
    };
    let stage = setup(100);
    let server = Server::start(&stage.dir, &serving(other), 0);
    let proxy = Proxy::start(
        "stranger",
        &[server.port],
        &stage.upstreams,
        &super::Options {
            initial_fetch_timeout: Some("1s"),
            ..options(build, false)
        },
    );
    let status = server.status_until(|s| {
        s["proxies"]
            .as_array()
            .is_some_and(|all| all.iter().any(|p| p["node"] == "stranger"))
            && track(s, "stranger")["state"] == "nacked"
    });
    let version = served_version(&status);
    assert_eq!(version.ends_with("-native"), other == Build::Native);
    let nack = &track(&status, "stranger")["nack"];
    assert_eq!(nack["version"], version.as_str());
    let message = nack["message"].as_str().unwrap_or_default();
    let refused_type = match other {
        Build::Wasm => "envoy.extensions.filters.http.wasm.v3.Wasm",
        Build::Native => "envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
    };
    assert!(message.contains(refused_type), "{message}");
    eprintln!("a {build:?} proxy served the {other:?} build: {message}");
    // The default config, every user on the stable cluster, not a 500.
    assert_eq!(proxy.serves("alice").as_deref(), Some("legacy"));
}
