//! ECDS resource files: the JSON file a standalone Envoy watches
//! (`path_config_source`) to receive the filter's config without a restart.
//!
//! A file is a discovery response: `{"resources": [TypedExtensionConfig…]}`,
//! each resource a `Wasm` filter config whose plugin configuration is a
//! `StringValue` holding turnout's JSON config as a string, or (the native
//! build) a `DynamicModuleFilter` whose `filter_config` is that `StringValue`.
//! Envoy picks the parser by file extension, so these files are JSON and end
//! in `.json`.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;
use turnout::config::Problem;

use crate::fail::Fail;
use crate::input::{self, Form};
use crate::jsontext::{self, Seg};
use crate::write;

pub const RESOURCE_TYPE: &str = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";
pub const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
pub const STRING_VALUE: &str = "type.googleapis.com/google.protobuf.StringValue";
pub const NATIVE_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter";

/// Where each build's filter config keeps turnout's configuration (the
/// `StringValue`), under `typed_config`, by the filter config's `@type`.
fn config_path(filter_type: &str) -> Option<&'static [&'static str]> {
    match filter_type {
        WASM_TYPE => Some(&["config", "configuration"]),
        NATIVE_TYPE => Some(&["filter_config"]),
        _ => None,
    }
}
/// The plugin's name, root id and VM id in every resource turnoutctl
/// writes or serves: one VM per module for every turnout filter of a proxy.
pub const PLUGIN: &str = "turnout";
/// The wasm runtime of the resources turnoutctl writes or serves, unless told.
pub const DEFAULT_RUNTIME: &str = "envoy.wasm.runtime.v8";

/// One turnout filter config found in an ECDS file.
#[derive(Clone, Debug)]
pub struct Resource {
    /// Position in `resources`.
    pub index: usize,
    /// The resource name: the HTTP filter's `config_discovery` names it.
    pub name: String,
    /// The companion config text (empty when the file gives none: no splits).
    pub config: String,
}

/// Whether a parsed document is an ECDS resource file rather than a plain
/// config (a config has no `resources` field: the filter refuses one).
pub fn is_ecds(doc: &Value) -> bool {
    doc.as_object().is_some_and(|o| o.contains_key("resources"))
}

/// The turnout configs of an ECDS file, or what is wrong with its structure,
/// each problem named by its path in the file.
pub fn resources(doc: &Value) -> Result<Vec<Resource>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut fail = |path: String, message: String| problems.push(Problem { path, message });
    let Some(items) = doc.get("resources").and_then(Value::as_array) else {
        fail("resources".into(), "is not an array".into());
        return Err(problems);
    };
    if items.is_empty() {
        fail("resources".into(), "is empty: no filter config".into());
    }
    let mut found = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let path = format!("resources[{index}]");
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let at_type = text(item.get("@type"));
        if at_type.as_deref() != Some(RESOURCE_TYPE) {
            fail(format!("{path}.@type"), format!("is not {RESOURCE_TYPE}"));
            continue;
        }
        let Some(name) = text(item.get("name")).filter(|n| !n.is_empty()) else {
            fail(format!("{path}.name"), "is required".into());
            continue;
        };
        let typed = item.get("typed_config");
        let filter_type = text(typed.and_then(|t| t.get("@type"))).unwrap_or_default();
        let Some(keys) = config_path(&filter_type) else {
            fail(
                format!("{path}.typed_config.@type"),
                format!("is not {WASM_TYPE} or {NATIVE_TYPE}"),
            );
            continue;
        };
        let any = keys
            .iter()
            .try_fold(typed, |v, k| v.map(|v| v.get(*k)))
            .flatten();
        let config = match any {
            None => String::new(),
            Some(any) => {
                let cpath = format!("{path}.typed_config.{}", keys.join("."));
                if text(any.get("@type")).as_deref() != Some(STRING_VALUE) {
                    fail(format!("{cpath}.@type"), format!("is not {STRING_VALUE}"));
                    continue;
                }
                match any.get("value") {
                    None => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(_) => {
                        fail(format!("{cpath}.value"), "is not a string".into());
                        continue;
                    }
                }
            }
        };
        found.push(Resource {
            index,
            name,
            config,
        });
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        Err(problems)
    }
}

/// The file `text` with the config of resource `index` replaced by
/// `config`; every other byte of the file is kept. `None` if the resource
/// has no configuration `value` to replace (in either build's place).
pub fn replace_config(text: &str, index: usize, config: &str) -> Option<String> {
    let at = |keys: &[&'static str]| {
        let mut path = vec![
            Seg::Key("resources"),
            Seg::Index(index),
            Seg::Key("typed_config"),
        ];
        path.extend(keys.iter().map(|k| Seg::Key(k)));
        path.push(Seg::Key("value"));
        jsontext::find(text, &path)
    };
    let span = [WASM_TYPE, NATIVE_TYPE]
        .iter()
        .filter_map(|t| config_path(t))
        .find_map(at)?;
    let quoted = serde_json::to_string(config).ok()?;
    Some(jsontext::replace(text, &span, &quoted))
}

/// Which build of the filter a resource turnoutctl writes or serves is
/// for, and how that build is loaded: the `typed_config` around turnout's
/// configuration. The JSON form is `wrap`'s; the protobuf form the server
/// sends is `serve::catalog`'s (`Template::resource`), field for field
/// the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Template {
    /// The wasm build: a `Wasm` filter config running the module at `wasm`
    /// (the path as the proxies see it) in `runtime`.
    Wasm { wasm: String, runtime: String },
    /// The native build: a `DynamicModuleFilter` loading module
    /// `turnout_native` (`libturnout_native.so` on the proxy's
    /// `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`), filter `turnout`.
    Native,
}

/// The native build's module name in `dynamic_module_config`.
pub const NATIVE_MODULE: &str = "turnout_native";

impl Template {
    /// What ends a served version after the config's hash: nothing for the
    /// wasm build (the version is the file's XXH64, as it always was),
    /// `-native` for the native build, so that a fleet moved from one build
    /// to the other sees a new version although the file did not change.
    pub fn version_suffix(&self) -> &'static str {
        match self {
            Template::Wasm { .. } => "",
            Template::Native => "-native",
        }
    }
}

/// A new ECDS file holding one resource called `name`: the filter of
/// `template`'s build with `config` as turnout's configuration.
pub fn wrap(name: &str, template: &Template, config: &str) -> String {
    let configuration = StringValue {
        at_type: STRING_VALUE,
        value: config,
    };
    let typed_config = match template {
        Template::Wasm { wasm, runtime } => FilterConfig::Wasm {
            at_type: WASM_TYPE,
            config: PluginConfig {
                name: PLUGIN,
                root_id: PLUGIN,
                vm_config: VmConfig {
                    vm_id: PLUGIN,
                    runtime,
                    code: AsyncDataSource {
                        local: DataSource { filename: wasm },
                    },
                },
                configuration,
            },
        },
        Template::Native => FilterConfig::Native {
            at_type: NATIVE_TYPE,
            dynamic_module_config: DynamicModuleConfig {
                name: NATIVE_MODULE,
            },
            filter_name: PLUGIN,
            filter_config: configuration,
        },
    };
    let file = File {
        resources: [TypedExtensionConfig {
            at_type: RESOURCE_TYPE,
            name,
            typed_config,
        }],
    };
    // Borrowed strings only: serializing cannot fail.
    let text = serde_json::to_string_pretty(&file).unwrap_or_default();
    text + "\n"
}

// The file `wrap` writes: Envoy's messages under their proto names, with
// the fields in the order people read them (a struct keeps its order; a
// serde_json map would sort the keys).

#[derive(Serialize)]
struct File<'a> {
    resources: [TypedExtensionConfig<'a>; 1],
}

#[derive(Serialize)]
struct TypedExtensionConfig<'a> {
    #[serde(rename = "@type")]
    at_type: &'static str,
    name: &'a str,
    typed_config: FilterConfig<'a>,
}

/// Either build's filter config (`Wasm` or `DynamicModuleFilter`).
#[derive(Serialize)]
#[serde(untagged)]
enum FilterConfig<'a> {
    Wasm {
        #[serde(rename = "@type")]
        at_type: &'static str,
        config: PluginConfig<'a>,
    },
    Native {
        #[serde(rename = "@type")]
        at_type: &'static str,
        dynamic_module_config: DynamicModuleConfig,
        filter_name: &'static str,
        filter_config: StringValue<'a>,
    },
}

#[derive(Serialize)]
struct DynamicModuleConfig {
    name: &'static str,
}

#[derive(Serialize)]
struct PluginConfig<'a> {
    name: &'static str,
    root_id: &'static str,
    vm_config: VmConfig<'a>,
    configuration: StringValue<'a>,
}

#[derive(Serialize)]
struct VmConfig<'a> {
    vm_id: &'static str,
    runtime: &'a str,
    code: AsyncDataSource<'a>,
}

#[derive(Serialize)]
struct AsyncDataSource<'a> {
    local: DataSource<'a>,
}

#[derive(Serialize)]
struct DataSource<'a> {
    filename: &'a str,
}

/// In an `Any`: turnout's config as one string.
#[derive(Serialize)]
struct StringValue<'a> {
    #[serde(rename = "@type")]
    at_type: &'static str,
    value: &'a str,
}

/// `turnoutctl ecds`: wraps a plain config into the ECDS file Envoy
/// watches, after the filter's parser accepted it (a refused config in that
/// file would leave Envoy on its old config, or answering 500 at startup).
pub fn run(
    config: &Path,
    template: &Template,
    name: &str,
    output: Option<&Path>,
) -> Result<(), Fail> {
    let input = input::read(config)?;
    if !matches!(input.form, Form::Plain) {
        return Err(Fail::Usage(format!(
            "{} is already an ECDS resource file",
            config.display()
        )));
    }
    let text = input.text.trim_end();
    input::parse(text, &input.label(None))?;
    let file = wrap(name, template, text);
    match output {
        None => std::io::stdout()
            .write_all(file.as_bytes())
            .map_err(|e| Fail::Refused(format!("cannot write to stdout: {e}"))),
        Some(out) => {
            write::replace(out, file.as_bytes())
                .map_err(|e| Fail::Refused(format!("cannot write {}: {e}", out.display())))?;
            if out.extension().is_none_or(|e| e != "json") {
                eprintln!(
                    "note: Envoy reads a path_config_source file as JSON only when its name ends in .json"
                );
            }
            outln!("wrote {} (resource {name:?})", out.display());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_file_reads_back_and_edits_in_place() {
        let config = "{\"splits\": []}\n";
        let template = Template::Wasm {
            wasm: "/x/\"t\".wasm".into(),
            runtime: DEFAULT_RUNTIME.into(),
        };
        let text = wrap("turnout", &template, config);
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert!(is_ecds(&doc));
        let found = resources(&doc).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "turnout");
        assert_eq!(found[0].config, config);
        let vm = &doc["resources"][0]["typed_config"]["config"]["vm_config"];
        assert_eq!(vm["code"]["local"]["filename"], "/x/\"t\".wasm");

        let edited = replace_config(&text, 0, "{}").unwrap();
        let doc: Value = serde_json::from_str(&edited).unwrap();
        assert_eq!(resources(&doc).unwrap()[0].config, "{}");
        assert_eq!(edited.replace(r#""value": "{}""#, ""), {
            let old = serde_json::to_string(config).unwrap();
            text.replace(&format!("\"value\": {old}"), "")
        });
    }

    #[test]
    fn structure_problems_name_the_field() {
        let doc: Value = serde_json::from_str(
            r#"{"resources": [{"@type": "x"}, {"@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig", "name": "t",
               "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
               "config": {"configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": 3}}}}]}"#,
        )
        .unwrap();
        let problems: Vec<String> = resources(&doc)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            problems,
            [
                format!("resources[0].@type: is not {RESOURCE_TYPE}"),
                "resources[1].typed_config.config.configuration.value: is not a string".into(),
            ]
        );
    }

    /// envoy/ecds-native/turnout.json, the native build's shipped ECDS file.
    fn shipped_native_file() -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy/ecds-native/turnout.json");
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn the_native_builds_file_reads_back_and_edits_in_place() {
        let text = shipped_native_file();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let found = resources(&doc).unwrap();
        assert_eq!(found[0].name, "turnout");
        assert!(found[0].config.contains("\"fastapi\""));
        let edited = replace_config(&text, 0, "{}").unwrap();
        let doc: Value = serde_json::from_str(&edited).unwrap();
        assert_eq!(resources(&doc).unwrap()[0].config, "{}");
        assert_eq!(
            doc["resources"][0]["typed_config"]["dynamic_module_config"]["name"],
            "turnout_native"
        );
    }

    /// `turnoutctl ecds --native` writes the shipped native file, byte for
    /// byte, from its config.
    #[test]
    fn the_native_wrap_is_the_shipped_native_file() {
        let text = shipped_native_file();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let config = &resources(&doc).unwrap()[0].config;
        assert_eq!(wrap("turnout", &Template::Native, config), text);
    }
}
