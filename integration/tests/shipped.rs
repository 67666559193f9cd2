//! The files in `envoy/` that operators copy: the standalone bootstrap and
//! its ECDS resource boot in the real Envoy and split as documented, and
//! every bootstrap carries the stats tags of `envoy/stats_tags.yaml`.
//! (`envoy/fleet.yaml` and `envoy/fleet-native.yaml` boot in the tests of
//! `ctl/tests/fleet`, beside the `turnoutctl serve` they need.)

use std::fs;

use integration::stage::{served_by, shipped_on_test_ports};
use integration::{
    filter_wasm, native_module_dir, scratch_dir, workspace_root, Build, Envoy, Upstream,
};

fn read(path: &str) -> String {
    fs::read_to_string(workspace_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The entries of a `stats_tags:` list, whatever their indentation.
fn tag_entries(yaml: &str) -> Vec<String> {
    let start = yaml.find("stats_tags:").expect("a stats_tags: list");
    yaml[start..]
        .lines()
        .skip(1)
        .map(str::trim)
        .take_while(|l| l.starts_with("- tag_name:") || l.starts_with("regex:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_bootstrap_carries_the_stats_tags() {
    let tags = tag_entries(&read("envoy/stats_tags.yaml"));
    assert_eq!(
        tags.len(),
        32,
        "8 tags for each build's namespace, each a name and a regex"
    );
    for entry in fs::read_dir(workspace_root().join("envoy")).unwrap() {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap_or_default();
        if path.extension().is_some_and(|e| e == "yaml") && text.contains("static_resources:") {
            assert_eq!(tag_entries(&text), tags, "{}", path.display());
        }
    }
}

/// The tags of a stat name as Envoy extracts them with `stats_tags`: each
/// regex is matched against the whole original name; its first group is
/// cut from the name, its second is the value. Then the Prometheus name:
/// the custom namespace stripped, every other byte but `[a-zA-Z0-9_]` `_`.
fn prometheus_series(
    tags: &[(String, regex::Regex)],
    name: &str,
) -> (String, Vec<(String, String)>) {
    let mut cut = Vec::new();
    let mut labels = Vec::new();
    for (tag, regex) in tags {
        if let Some(m) = regex.captures(name) {
            let whole = m.get(1).unwrap();
            cut.push(whole.range());
            labels.push((tag.clone(), m.get(2).unwrap().as_str().to_string()));
        }
    }
    cut.sort_by_key(|r| r.start);
    let mut rest = String::new();
    let mut at = 0;
    for range in cut {
        rest.push_str(&name[at..range.start]);
        at = range.end;
    }
    rest.push_str(&name[at..]);
    let rest = rest
        .strip_prefix("wasmcustom.")
        .or_else(|| rest.strip_prefix("dynamicmodulescustom."))
        .unwrap();
    let series = rest
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    (series, labels)
}

/// Every name turnout defines, in both builds' namespaces, becomes the
/// contract's series with one label per `.key.value` pair: the shadow's
/// too, whose field label is a JSON pointer (`/items/*/price`).
#[test]
fn the_stats_tags_label_every_name_turnout_defines() {
    let lines = tag_entries(&read("envoy/stats_tags.yaml"));
    let tags: Vec<(String, regex::Regex)> = lines
        .chunks(2)
        .map(|pair| {
            let tag = pair[0].trim_start_matches("- tag_name:").trim();
            let regex = pair[1]
                .trim_start_matches("regex:")
                .trim()
                .trim_matches('\'');
            (tag.to_string(), regex::Regex::new(regex).unwrap())
        })
        .collect();
    let plan = turnout::config::parse(
        br#"{"splits": [
        {"name": "users", "match": {"route": "users"}, "stable": "legacy",
         "targets": [{"cluster": "fastapi", "weight": 5}],
         "guard": {"max_error_rate": 0.1}, "shadow": {"cluster": "mirror.ns"}},
        {"name": "v1.orders", "match": {"prefix": "/o"}, "stable": "outbound|80||o.ns", "targets": []}]}"#,
    )
    .unwrap();
    let layout = turnout::stats::StatsLayout::of(&plan);
    let mut names: Vec<String> = layout
        .counters
        .iter()
        .chain(&layout.histograms)
        .chain(&layout.gauges)
        .chain(layout.stable_info.iter().map(|(n, _)| n))
        .cloned()
        .collect();
    for field in ["/items/*/price", "/a~1b/~0c", "", "_other", "/k.v"] {
        names.push(turnout::stats::shadow_field_counter("users", field));
        names.push(turnout::stats::shadow_noise_counter("v1.orders", field));
    }
    let mut series = std::collections::BTreeSet::new();
    for name in &names {
        // What the name says: turnout.SERIES(.KEY.VALUE)*, no dot in a value.
        let parts: Vec<&str> = name.split('.').collect();
        let want_labels: Vec<(String, String)> = parts[2..]
            .chunks(2)
            .map(|kv| (kv[0].to_string(), kv[1].to_string()))
            .collect();
        for namespace in ["wasmcustom", "dynamicmodulescustom"] {
            let (got, mut labels) = prometheus_series(&tags, &format!("{namespace}.{name}"));
            assert_eq!(got, format!("turnout_{}", parts[1]), "{name}");
            labels.sort();
            let mut want = want_labels.clone();
            want.sort();
            assert_eq!(labels, want, "{namespace}.{name}");
        }
        series.insert(parts[1].to_string());
    }
    assert!(series.contains("shadow_field_total") && series.contains("shadow_tripped"));
    assert_eq!(series.len(), 12, "{series:?}");
    let field = prometheus_series(
        &tags,
        "wasmcustom.turnout.shadow_field_total.split.users.field./items/*/price",
    );
    assert!(field.1.contains(&("field".into(), "/items/*/price".into())));
}

/// A shipped bootstrap, its ECDS directory and ports moved to this test's.
fn shipped(
    bootstrap: &str,
    ecds_dir: &str,
    resource: String,
    legacy: &Upstream,
    fastapi: &Upstream,
) -> String {
    let dir = scratch_dir("shipped");
    fs::write(dir.join("turnout.json"), resource).unwrap();
    let yaml = read(bootstrap).replace(ecds_dir, &dir.to_string_lossy());
    shipped_on_test_ports(&yaml, legacy, fastapi)
}

fn the_standalone_bootstrap_and_its_ecds_file_split_as_documented(build: Build) {
    let (legacy, fastapi) = (Upstream::start("legacy"), Upstream::start("fastapi"));
    let envoy = match build {
        Build::Wasm => {
            let wasm = filter_wasm();
            let resource = read("envoy/ecds/turnout.json").replace(
                "target/wasm32-wasip1/release/turnout.wasm",
                &wasm.to_string_lossy(),
            );
            let yaml = shipped(
                "envoy/standalone.yaml",
                "envoy/ecds",
                resource,
                &legacy,
                &fastapi,
            );
            Envoy::start(&yaml, 2)
        }
        Build::Native => {
            let resource = read("envoy/ecds-native/turnout.json");
            let yaml = shipped(
                "envoy/standalone-native.yaml",
                "envoy/ecds-native",
                resource,
                &legacy,
                &fastapi,
            );
            Envoy::start_with_modules(&yaml, 2, &native_module_dir())
        }
    };
    let mut client = envoy.client("turnout");

    // The README's examples: alice (bucket 201) is in the 25 %, bob (4352)
    // is not, qa-1 is pinned, and other paths go to legacy untouched.
    for (user, want) in [("alice", "fastapi"), ("bob", "legacy"), ("qa-1", "fastapi")] {
        let r = client.get("/users", &[("x-user-id", user)]);
        assert_eq!(served_by(&r).as_deref(), Some(want), "{user}");
        assert!(
            r.header("x-turnout-decision").is_some(),
            "debug is on in the demo"
        );
    }
    let r = client.get("/", &[("x-user-id", "alice")]);
    assert_eq!(served_by(&r).as_deref(), Some("legacy"));

    let series = r#"turnout_requests_total{split="users",cluster="fastapi",reason="pin"} 1"#;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !envoy.prometheus().contains(series) {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            envoy.prometheus()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn the_native_ecds_file_holds_the_same_configuration_as_the_wasm_one() {
    let value = |path: &str, pointer: &str| -> String {
        let json: serde_json::Value = serde_json::from_str(&read(path)).unwrap();
        json.pointer(pointer)
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("{path}: no {pointer}"))
            .to_string()
    };
    assert_eq!(
        value(
            "envoy/ecds/turnout.json",
            "/resources/0/typed_config/config/configuration/value"
        ),
        value(
            "envoy/ecds-native/turnout.json",
            "/resources/0/typed_config/filter_config/value"
        )
    );
}

integration::for_each_build!(the_standalone_bootstrap_and_its_ecds_file_split_as_documented);

/// `envoy/fleet-native.yaml` is `envoy/fleet.yaml` but for the build: the
/// same listener, clusters (the xDS cluster's replica comments included)
/// and tags, so that the two do not drift apart.
#[test]
fn the_native_fleet_bootstrap_is_the_wasm_one_but_for_the_build() {
    // The YAML after the header comment, without what names the build: the
    // node id, the default config, the type URLs and the runtime layer.
    let body = |path: &str| -> Vec<String> {
        let text = read(path);
        let text = &text[text.find("\nnode:").expect("a node") + 1..];
        let text = text.split("layered_runtime:").next().unwrap_or_default();
        let mut lines = Vec::new();
        let mut in_default = false;
        for line in text.lines() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("default_config:") {
                in_default = true;
            } else if trimmed.starts_with("apply_default_config_without_warming:") {
                in_default = false;
            }
            if !in_default && !trimmed.starts_with("type_urls:") && !line.starts_with("node:") {
                lines.push(line.to_string());
            }
        }
        lines
    };
    let (wasm, native) = (body("envoy/fleet.yaml"), body("envoy/fleet-native.yaml"));
    assert!(wasm.len() > 100, "{wasm:?}");
    assert_eq!(wasm, native);
    let native = read("envoy/fleet-native.yaml");
    assert!(
        native.contains("envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix: true")
    );
}
