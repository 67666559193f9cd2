//! The manifests in envoy/istio and envoy/envoy-gateway: valid against the
//! published schemas (Istio's and Gateway API's models from npm, Envoy
//! Gateway's CRD schemas, see manifests/validate.mjs), carrying configs
//! `turnoutctl check` accepts in the shape each platform hands them to the
//! filter, and routing each decision turnout writes to its service.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use integration::{npm, scratch_dir, workspace_root};
use serde_json::Value;

/// Exact versions: a new release of a schema package is a change to review.
const PACKAGES: &[&str] = &[
    "@kubernetes-models/istio@3.0.1",
    "@kubernetes-models/gateway-api@2.0.0",
    "ajv@8.20.0",
    "yaml@2.9.1",
];

fn manifests() -> Vec<PathBuf> {
    let envoy = workspace_root().join("envoy");
    [
        "istio/turnout.yaml",
        "envoy-gateway/httproute.yaml",
        "envoy-gateway/wasm.yaml",
        "envoy-gateway/native.yaml",
    ]
    .iter()
    .map(|f| envoy.join(f))
    .collect()
}

/// The documents of `files`, each as `(apiVersion kind, document)`, or
/// every problem the validators found.
fn validate(files: &[PathBuf]) -> Result<Vec<(String, Value)>, String> {
    static RUN: AtomicU32 = AtomicU32::new(0);
    let dir = npm::packages("npm-manifests", PACKAGES);
    // The script must sit beside node_modules (ES modules ignore NODE_PATH);
    // a copy per run, so parallel tests never read a half-written one.
    let script = dir.join(format!(
        "validate-{}-{}.mjs",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests");
    fs::copy(here.join("validate.mjs"), &script).expect("copy validate.mjs");
    let out = Command::new(npm::node())
        .arg(&script)
        .arg(here.join("schemas"))
        .args(files)
        .output()
        .expect("run node");
    let _ = fs::remove_file(&script);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(stderr);
    }
    let docs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("validate.mjs prints JSON");
    Ok(docs
        .into_iter()
        .map(|d| {
            (
                d["type"].as_str().unwrap_or_default().to_string(),
                d["doc"].clone(),
            )
        })
        .collect())
}

/// The one document of `type_` (`apiVersion kind`) named `name`.
fn find<'a>(docs: &'a [(String, Value)], type_: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|(t, d)| t == type_ && d["metadata"]["name"] == name)
        .map(|(_, d)| d)
        .unwrap_or_else(|| panic!("no {type_} {name}"))
}

fn shipped() -> Vec<(String, Value)> {
    validate(&manifests()).unwrap_or_else(|problems| panic!("the shipped manifests:\n{problems}"))
}

#[test]
fn every_shipped_manifest_matches_its_published_schema() {
    let docs = shipped();
    let mut types: Vec<String> = docs
        .iter()
        .map(|(t, d)| format!("{t} {}", d["metadata"]["name"].as_str().unwrap_or("?")))
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "extensions.istio.io/v1alpha1 WasmPlugin turnout",
            "gateway.envoyproxy.io/v1alpha1 EnvoyExtensionPolicy turnout",
            "gateway.envoyproxy.io/v1alpha1 EnvoyExtensionPolicy turnout-native",
            "gateway.envoyproxy.io/v1alpha1 EnvoyProxy turnout-native",
            "gateway.networking.k8s.io/v1 HTTPRoute users",
            "networking.istio.io/v1 VirtualService users",
        ]
    );
}

/// Each validator refuses a mistake a cluster would refuse (or, for an
/// unknown field, silently drop): the check above can fail.
#[test]
fn the_validators_refuse_what_a_cluster_would() {
    let dir = scratch_dir("manifests");
    let broken = |file: &str, from: &str, to: &str| {
        let path = workspace_root().join("envoy").join(file);
        let text = fs::read_to_string(&path).expect("read manifest");
        assert!(text.contains(from), "{file} holds {from:?}");
        let copy = dir.join(file.replace('/', "-"));
        fs::write(&copy, text.replacen(from, to, 1)).expect("write broken copy");
        let problem = validate(&[copy]).expect_err(&format!("{file} with {to:?} is refused"));
        eprintln!("{file} with {to:?}:\n{problem}");
        problem
    };
    // The digest pasted with its prefix: Istio's pattern wants the hex alone.
    let zeros = "0".repeat(64);
    let problem = broken(
        "istio/turnout.yaml",
        &format!("sha256: \"{zeros}\""),
        &format!("sha256: \"sha256:{zeros}\""),
    );
    assert!(
        problem.contains("spec/sha256 must match pattern"),
        "{problem}"
    );
    let problem = broken(
        "istio/turnout.yaml",
        "x-turnout-cluster: {exact: fastapi}",
        "x-turnout-cluster: {exactly: fastapi}",
    );
    assert!(problem.contains("VirtualService"), "{problem}");
    let problem = broken(
        "envoy-gateway/httproute.yaml",
        "type: PathPrefix",
        "type: Prefix",
    );
    assert!(problem.contains("HTTPRoute"), "{problem}");
    let problem = broken(
        "envoy-gateway/wasm.yaml",
        "failOpen: false",
        "failopen: false",
    );
    assert!(
        problem.contains("must NOT have additional properties (failopen)"),
        "{problem}"
    );
    let problem = broken("envoy-gateway/native.yaml", "type: Remote", "type: Http");
    assert!(
        problem
            .contains("EnvoyProxy turnout-native: CRD schema: /spec/dynamicModules/0/source/type"),
        "{problem}"
    );
    let problem = broken(
        "envoy-gateway/native.yaml",
        "filterName: turnout",
        "filter_name: turnout",
    );
    assert!(problem.contains("(filter_name)"), "{problem}");
}

/// Every number as a float, as Istio's Struct-to-JSON conversion may
/// write it (`1.0`, `5.0`).
fn as_struct(value: &Value) -> Value {
    match value {
        Value::Number(n) => n.as_f64().map(Value::from).unwrap_or(Value::Null),
        Value::Array(items) => Value::Array(items.iter().map(as_struct).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), as_struct(v))).collect())
        }
        other => other.clone(),
    }
}

fn assert_checked(label: &str, config: &Value) {
    assert!(config.is_object(), "{label}: a config");
    let file = scratch_dir("manifest-config").join("config.json");
    fs::write(&file, serde_json::to_string_pretty(config).expect("JSON")).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_turnoutctl"))
        .arg("check")
        .arg(&file)
        .output()
        .expect("run turnoutctl");
    assert!(
        out.status.success(),
        "turnoutctl check refuses {label}'s config:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn each_manifests_config_is_one_turnoutctl_check_accepts() {
    let docs = shipped();
    let plugin = find(&docs, "extensions.istio.io/v1alpha1 WasmPlugin", "turnout");
    let istio = as_struct(&plugin["spec"]["pluginConfig"]);
    assert!(
        serde_json::to_string(&istio)
            .expect("JSON")
            .contains("\"version\":1.0"),
        "floats"
    );
    assert_checked("the WasmPlugin", &istio);
    let wasm = find(
        &docs,
        "gateway.envoyproxy.io/v1alpha1 EnvoyExtensionPolicy",
        "turnout",
    );
    assert_checked(
        "the wasm EnvoyExtensionPolicy",
        &wasm["spec"]["wasm"][0]["config"],
    );
    let native = find(
        &docs,
        "gateway.envoyproxy.io/v1alpha1 EnvoyExtensionPolicy",
        "turnout-native",
    );
    assert_checked(
        "the native EnvoyExtensionPolicy",
        &native["spec"]["dynamicModule"][0]["config"],
    );
}

/// The decision header and the clusters the config can write.
fn decisions(config: &Value) -> (String, Vec<String>) {
    let header = config["decision_header"]
        .as_str()
        .unwrap_or("x-turnout-cluster")
        .to_string();
    let split = &config["splits"][0];
    let targets = split["targets"].as_array().expect("targets");
    (
        header,
        targets
            .iter()
            .map(|t| t["cluster"].as_str().expect("cluster").to_string())
            .collect(),
    )
}

#[test]
fn the_routes_send_each_decision_the_filter_writes_to_its_service() {
    let docs = shipped();
    let plugin = &find(&docs, "extensions.istio.io/v1alpha1 WasmPlugin", "turnout")["spec"];
    assert!(
        plugin["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("oci://")),
        "an image url"
    );
    assert_eq!(
        plugin["failStrategy"], "FAIL_CLOSE",
        "chosen, not defaulted"
    );
    assert_eq!(plugin["phase"], "STATS");
    let (header, targets) = decisions(&plugin["pluginConfig"]);

    // Istio: one route per target, matched on the header; the last one, unmatched, is stable.
    let http = find(&docs, "networking.istio.io/v1 VirtualService", "users")["spec"]["http"]
        .as_array()
        .expect("http routes")
        .clone();
    let matched: Vec<String> = http
        .iter()
        .filter_map(|r| {
            r["match"][0]["headers"][&header]["exact"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        matched, targets,
        "the VirtualService matches {header} on every target"
    );
    assert!(
        http.last().is_some_and(|r| r.get("match").is_none()),
        "a default route last"
    );

    // Envoy Gateway: the same, in an HTTPRoute both policies target.
    let route = &find(&docs, "gateway.networking.k8s.io/v1 HTTPRoute", "users")["spec"];
    let rules = route["rules"].as_array().expect("rules");
    let matched: Vec<String> = rules
        .iter()
        .flat_map(|r| {
            r["matches"][0]["headers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|h| h["name"] == header.as_str())
        .map(|h| h["value"].as_str().expect("value").to_string())
        .collect();
    assert_eq!(
        matched, targets,
        "the HTTPRoute matches {header} on every target"
    );
    for name in ["turnout", "turnout-native"] {
        let policy = &find(
            &docs,
            "gateway.envoyproxy.io/v1alpha1 EnvoyExtensionPolicy",
            name,
        )["spec"];
        assert_eq!(policy["targetRefs"][0]["kind"], "HTTPRoute");
        assert_eq!(policy["targetRefs"][0]["name"], "users");
    }
    let wasm = &find(
        &docs,
        "gateway.envoyproxy.io/v1alpha1 EnvoyExtensionPolicy",
        "turnout",
    )["spec"]["wasm"][0];
    assert_eq!(wasm["code"]["type"], "Image");
    assert_eq!(wasm["failOpen"], false);

    // The native policy names a module the EnvoyProxy registers, and the
    // module's filter; the proxy sets the stats runtime flag.
    let module = &find(
        &docs,
        "gateway.envoyproxy.io/v1alpha1 EnvoyExtensionPolicy",
        "turnout-native",
    )["spec"]["dynamicModule"][0];
    assert_eq!(module["filterName"], "turnout");
    let proxy = &find(
        &docs,
        "gateway.envoyproxy.io/v1alpha1 EnvoyProxy",
        "turnout-native",
    )["spec"];
    let registered: Vec<&Value> = proxy["dynamicModules"]
        .as_array()
        .expect("modules")
        .iter()
        .map(|m| &m["name"])
        .collect();
    assert!(
        registered.contains(&&module["name"]),
        "{} is registered",
        module["name"]
    );
    let patch = &proxy["bootstrap"]["jsonPatches"][0];
    assert_eq!(patch["path"], "/layered_runtime/layers/-");
    assert_eq!(
        patch["value"]["static_layer"]
            ["envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix"],
        true
    );
}
