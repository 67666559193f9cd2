//! `ecds`: the file Envoy watches, generated from a plain config.

use std::fs;

use serde_json::Value;

use crate::{ctl, file, scratch, users_config};

#[test]
fn wraps_a_validated_config_into_an_ecds_resource() {
    let dir = scratch("ecds");
    let config = users_config("25", "");
    let path = file(&dir, "c.json", &config);
    let run = ctl(&[
        "ecds",
        &path,
        "--wasm",
        "/opt/turnout.wasm",
        "--name",
        "split",
    ])
    .code(0);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let resource = &doc["resources"][0];
    assert_eq!(
        resource["@type"],
        "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
    );
    assert_eq!(resource["name"], "split");
    let wasm = &resource["typed_config"];
    assert_eq!(
        wasm["@type"],
        "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
    );
    assert_eq!(
        wasm["config"]["vm_config"]["code"]["local"]["filename"],
        "/opt/turnout.wasm"
    );
    assert_eq!(
        wasm["config"]["vm_config"]["runtime"],
        "envoy.wasm.runtime.v8"
    );
    let configuration = &wasm["config"]["configuration"];
    assert_eq!(
        configuration["@type"],
        "type.googleapis.com/google.protobuf.StringValue"
    );
    assert_eq!(configuration["value"], config.trim_end());

    let out = dir.join("turnout.json").to_string_lossy().into_owned();
    let run = ctl(&["ecds", &path, "--wasm", "/opt/turnout.wasm", "-o", &out]).code(0);
    assert_eq!(run.stdout, format!("wrote {out} (resource \"turnout\")\n"));
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    ctl(&["check", &out]).code(0);
}

#[test]
fn refuses_an_invalid_config_and_writes_nothing() {
    let dir = scratch("ecds-refused");
    let path = file(&dir, "c.json", &users_config("101", ""));
    let out = dir.join("turnout.json");
    let run = ctl(&[
        "ecds",
        &path,
        "--wasm",
        "/opt/turnout.wasm",
        "-o",
        &out.to_string_lossy(),
    ])
    .code(1);
    assert!(run
        .stderr
        .contains("\nsplits[0].targets[0].weight: 101 is not between 0 and 100\n"));
    assert!(!out.exists());
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    // An ECDS file is not wrapped twice.
    let ok = file(&dir, "ok.json", &users_config("1", ""));
    let ecds = file(
        &dir,
        "e.json",
        &ctl(&["ecds", &ok, "--wasm", "w"]).code(0).stdout,
    );
    ctl(&["ecds", &ecds, "--wasm", "w"]).code(2);
}

#[test]
fn writes_the_native_build_and_takes_exactly_one_build() {
    let dir = scratch("ecds-native");
    let config = users_config("25", "");
    let path = file(&dir, "c.json", &config);
    let run = ctl(&["ecds", &path, "--native"]).code(0);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let filter = &doc["resources"][0]["typed_config"];
    assert_eq!(
        filter["@type"],
        "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"
    );
    assert_eq!(filter["dynamic_module_config"]["name"], "turnout_native");
    assert_eq!(filter["filter_name"], "turnout");
    assert_eq!(filter["filter_config"]["value"], config.trim_end());
    // What it wrote, the edits and checks read.
    let out = dir.join("turnout.json").to_string_lossy().into_owned();
    ctl(&["ecds", &path, "--native", "-o", &out]).code(0);
    ctl(&["set-weight", &out, "users", "fastapi", "40"]).code(0);
    let doc: Value = serde_json::from_str(&fs::read_to_string(&out).unwrap()).unwrap();
    let edited = doc["resources"][0]["typed_config"]["filter_config"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(edited.contains("\"weight\": 40"), "{edited}");

    for args in [
        vec!["ecds", &path],
        vec!["ecds", &path, "--native", "--wasm", "w"],
        vec![
            "ecds",
            &path,
            "--native",
            "--runtime",
            "envoy.wasm.runtime.v8",
        ],
    ] {
        let run = ctl(&args).code(2);
        assert!(
            run.stderr.contains("--native") || run.stderr.contains("--wasm"),
            "{}",
            run.stderr
        );
    }
}
