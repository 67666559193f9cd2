//! What the server serves: one ECDS resource per `NAME.json` companion
//! config in its directory, checked by the filter's own parser, each with a
//! version computed from the config's bytes.
//!
//! The version is the content's, not the server's: a restarted server, or
//! another replica, serving the same files sends the same versions (a
//! reconnecting proxy's version matches), and whoever writes a file knows
//! the version it will be served as before the server has read it
//! (`version_of`). The build served is part of it: the native build's
//! versions end in `-native` (`Template::version_suffix`), so that a
//! fleet moved from one build to the other is sent a new version.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{
    async_data_source, data_source, AsyncDataSource, DataSource, TypedExtensionConfig,
};
use envoy_types::pb::envoy::extensions::dynamic_modules::v3::DynamicModuleConfig;
use envoy_types::pb::envoy::extensions::filters::http::dynamic_modules::v3::DynamicModuleFilter;
use envoy_types::pb::envoy::extensions::filters::http::wasm::v3::Wasm;
use envoy_types::pb::envoy::extensions::wasm::v3::{plugin_config, PluginConfig, VmConfig};
use envoy_types::pb::google::protobuf::{Any, StringValue};
use envoy_types::util::pack_any;
use serde_json::Value;
use turnout::plan::Plan;
use xxhash_rust::xxh64::xxh64;

use crate::ecds;

/// Milliseconds since the Unix epoch.
pub type Ms = u64;

/// The hash of a companion config: XXH64 (seed 0) of its bytes, as 16
/// lowercase hex digits. The wasm build's version of it, and the
/// `version_info` of a response that carries this one resource; the native
/// build's version is this hash and `-native` (`Template::version`).
pub fn version_of(config: &[u8]) -> String {
    format!("{:016x}", xxh64(config, 0))
}

pub use crate::ecds::Template;

/// The protobuf form of what `ecds::wrap` writes as JSON.
impl Template {
    /// The version a config with these bytes is served as in this build.
    pub fn version(&self, config: &[u8]) -> String {
        version_of(config) + self.version_suffix()
    }

    /// The resource `name`: a `TypedExtensionConfig` holding this build's
    /// filter config with `config` as turnout's configuration, exactly
    /// what `turnoutctl ecds` writes as JSON (same plugin, root and VM id;
    /// same module and filter name).
    pub fn resource(&self, name: &str, config: &str) -> Any {
        let configuration = pack_any(StringValue {
            value: config.to_string(),
        });
        let typed_config = match self {
            Template::Wasm { wasm, runtime } => pack_any(Wasm {
                config: Some(wasm_plugin(wasm, runtime, configuration)),
            }),
            Template::Native => pack_any(DynamicModuleFilter {
                dynamic_module_config: Some(DynamicModuleConfig {
                    name: ecds::NATIVE_MODULE.into(),
                    ..Default::default()
                }),
                filter_name: ecds::PLUGIN.into(),
                filter_config: Some(configuration),
                ..Default::default()
            }),
        };
        pack_any(TypedExtensionConfig {
            name: name.to_string(),
            typed_config: Some(typed_config),
        })
    }
}

/// The wasm build's plugin: the module at `wasm` in `runtime`, under the
/// plugin, root and VM id `turnout`.
fn wasm_plugin(wasm: &str, runtime: &str, configuration: Any) -> PluginConfig {
    let code = AsyncDataSource {
        specifier: Some(async_data_source::Specifier::Local(DataSource {
            specifier: Some(data_source::Specifier::Filename(wasm.to_string())),
            ..Default::default()
        })),
    };
    PluginConfig {
        name: ecds::PLUGIN.into(),
        root_id: ecds::PLUGIN.into(),
        vm: Some(plugin_config::Vm::VmConfig(VmConfig {
            vm_id: ecds::PLUGIN.into(),
            runtime: runtime.to_string(),
            code: Some(code),
            ..Default::default()
        })),
        configuration: Some(configuration),
        ..Default::default()
    }
}

/// One resource of the directory: what is served, and what was refused.
#[derive(Clone, Debug)]
pub struct Entry {
    pub file: PathBuf,
    /// The last good version; `None` while the file has never been valid.
    pub served: Option<Served>,
    /// Why the file as it is now is not served (it was refused, or it is
    /// gone); `None` when the file is what is served.
    pub refused: Option<Refusal>,
    /// Versions served before `served`, newest last (at most `HISTORY`):
    /// a caller waiting for one of them learns it was superseded.
    pub previous: Vec<String>,
}

/// How many earlier versions an entry remembers.
const HISTORY: usize = 64;

#[derive(Clone, Debug)]
pub struct Served {
    pub version: String,
    /// When this version started being served.
    pub since: Ms,
    pub resource: Any,
    /// The config as the filter reads it (the page shows its splits).
    pub plan: Arc<Plan>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The refused content's version (`None`: the file is gone or unreadable).
    pub version: Option<String>,
    pub problems: Vec<String>,
    pub at: Ms,
}

/// Every resource the server knows, by name.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub entries: BTreeMap<String, Entry>,
    /// What the build served adds to a config's hash to make its version
    /// (`Template::version_suffix`).
    pub version_suffix: &'static str,
}

impl Catalog {
    /// The version a caller waiting for `version` means: a config's bare
    /// hash (`version_of`, all a client computes from a file) stands for
    /// the version this server serves that config as; a version that
    /// already is one is kept.
    pub fn resolve(&self, version: &str) -> String {
        if version.ends_with(self.version_suffix) {
            version.to_string()
        } else {
            format!("{version}{}", self.version_suffix)
        }
    }

    /// Name → version of every resource that has something to serve.
    pub fn versions(&self) -> BTreeMap<String, String> {
        self.entries
            .iter()
            .filter_map(|(name, e)| Some((name.clone(), e.served.as_ref()?.version.clone())))
            .collect()
    }

    /// The resource to send for `name`, if it is served.
    pub fn resource(&self, name: &str) -> Option<&Any> {
        Some(&self.entries.get(name)?.served.as_ref()?.resource)
    }

    /// Records that `name`'s file now holds a valid config (`plan`, served
    /// as `resource`) at `version`; true if that changes what is served.
    pub fn serve(
        &mut self,
        name: &str,
        file: PathBuf,
        version: String,
        (resource, plan): (Any, Plan),
        now: Ms,
    ) -> bool {
        let entry = self.entry(name, file);
        entry.refused = None;
        if entry.served.as_ref().is_some_and(|s| s.version == version) {
            return false;
        }
        if let Some(old) = entry.served.take() {
            entry
                .previous
                .retain(|v| *v != old.version && *v != version);
            entry.previous.push(old.version);
            if entry.previous.len() > HISTORY {
                entry.previous.remove(0);
            }
        }
        entry.served = Some(Served {
            version,
            since: now,
            resource,
            plan: Arc::new(plan),
        });
        true
    }

    /// Records that `name`'s file is not served as it is; what was served
    /// before stays. True if the refusal is new (not the same as before).
    pub fn refuse(
        &mut self,
        name: &str,
        file: PathBuf,
        version: Option<String>,
        problems: Vec<String>,
        now: Ms,
    ) -> bool {
        let entry = self.entry(name, file);
        let same = entry
            .refused
            .as_ref()
            .is_some_and(|r| r.version == version && r.problems == problems);
        if !same {
            entry.refused = Some(Refusal {
                version,
                problems,
                at: now,
            });
        }
        !same
    }

    fn entry(&mut self, name: &str, file: PathBuf) -> &mut Entry {
        self.entries.entry(name.to_string()).or_insert(Entry {
            file,
            served: None,
            refused: None,
            previous: Vec::new(),
        })
    }
}

/// The resource name of a directory entry, or `None` for files the server
/// does not look at (anything but `NAME.json`, and hidden files such as the
/// temporary files of an atomic write).
pub fn resource_name(file_name: &str) -> Option<&str> {
    let name = file_name.strip_suffix(".json")?;
    (!name.is_empty() && !name.starts_with('.')).then_some(name)
}

/// Checks a file's bytes as the filter would; the config text and what the
/// filter makes of it, or every problem. Beyond the filter's parser: a name that cannot be a filter name
/// in a URL query, text that is not UTF-8, an empty file (a writer that
/// truncates before writing would otherwise serve "no splits" for a
/// moment), and an ECDS resource file (the server wraps configs itself).
pub fn check(name: &str, bytes: &[u8]) -> Result<(String, Plan), Vec<String>> {
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(vec![format!(
            "the name {name:?}: a served resource name has only ASCII letters, digits, '.', '_' and '-'"
        )]);
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(vec!["the file is not UTF-8 text".into()]);
    };
    if text.trim().is_empty() {
        return Err(vec![
            "the file is empty (write {} for a config without splits)".into(),
        ]);
    }
    if serde_json::from_str::<Value>(text).is_ok_and(|doc| ecds::is_ecds(&doc)) {
        return Err(vec![
            "the file is an ECDS resource file: the server serves plain companion configs and wraps them itself".into(),
        ]);
    }
    turnout::config::parse(bytes)
        .map(|plan| (text.to_string(), plan))
        .map_err(|e| e.problems.iter().map(ToString::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::extensions::wasm::v3::plugin_config::Vm;
    use prost::{Message, Name};

    #[test]
    fn version_is_xxh64_of_the_bytes_in_hex() {
        // Python: xxhash.xxh64(b"", seed=0).hexdigest()
        assert_eq!(version_of(b""), "ef46db3751d8e999");
        assert_eq!(version_of(b"{}").len(), 16);
        assert_ne!(version_of(b"{}"), version_of(b"{} "));
    }

    #[test]
    fn the_resource_is_what_turnoutctl_ecds_writes() {
        assert_eq!(TypedExtensionConfig::type_url(), ecds::RESOURCE_TYPE);
        assert_eq!(Wasm::type_url(), ecds::WASM_TYPE);
        assert_eq!(StringValue::type_url(), ecds::STRING_VALUE);
        let template = Template::Wasm {
            wasm: "/opt/turnout.wasm".into(),
            runtime: ecds::DEFAULT_RUNTIME.into(),
        };
        let any = template.resource("edge", "{\"splits\": []}");
        let typed = TypedExtensionConfig::decode(any.value.as_slice()).unwrap();
        assert_eq!(typed.name, "edge");
        let wasm = Wasm::decode(typed.typed_config.unwrap().value.as_slice()).unwrap();
        let plugin = wasm.config.unwrap();
        assert_eq!(
            (plugin.name.as_str(), plugin.root_id.as_str()),
            ("turnout", "turnout")
        );
        let config = StringValue::decode(plugin.configuration.unwrap().value.as_slice()).unwrap();
        assert_eq!(config.value, "{\"splits\": []}");
        let Some(Vm::VmConfig(vm)) = plugin.vm else {
            panic!("no vm_config")
        };
        assert_eq!(
            (vm.vm_id.as_str(), vm.runtime.as_str()),
            ("turnout", ecds::DEFAULT_RUNTIME)
        );
        let Some(async_data_source::Specifier::Local(local)) = vm.code.unwrap().specifier else {
            panic!("no local code")
        };
        assert_eq!(
            local.specifier,
            Some(data_source::Specifier::Filename("/opt/turnout.wasm".into()))
        );
    }

    #[test]
    fn the_native_resource_is_what_turnoutctl_ecds_native_writes() {
        assert_eq!(DynamicModuleFilter::type_url(), ecds::NATIVE_TYPE);
        let any = Template::Native.resource("edge", "{\"splits\": []}");
        let typed = TypedExtensionConfig::decode(any.value.as_slice()).unwrap();
        assert_eq!(typed.name, "edge");
        let filter =
            DynamicModuleFilter::decode(typed.typed_config.unwrap().value.as_slice()).unwrap();
        assert_eq!(filter.dynamic_module_config.unwrap().name, "turnout_native");
        assert_eq!(filter.filter_name, "turnout");
        assert!(!filter.terminal_filter);
        let config = filter.filter_config.unwrap();
        assert_eq!(config.type_url, ecds::STRING_VALUE);
        let config = StringValue::decode(config.value.as_slice()).unwrap();
        assert_eq!(config.value, "{\"splits\": []}");
        // The JSON `turnoutctl ecds --native` writes says the same.
        let file: serde_json::Value =
            serde_json::from_str(&ecds::wrap("edge", &Template::Native, "{}")).unwrap();
        let json = &file["resources"][0]["typed_config"];
        assert_eq!(json["dynamic_module_config"]["name"], "turnout_native");
        assert_eq!(json["filter_name"], "turnout");
    }

    #[test]
    fn a_change_of_build_changes_the_version_and_a_bare_hash_resolves_to_it() {
        let wasm = Template::Wasm {
            wasm: "m.wasm".into(),
            runtime: ecds::DEFAULT_RUNTIME.into(),
        };
        let hash = version_of(b"{}");
        assert_eq!(wasm.version(b"{}"), hash);
        assert_eq!(Template::Native.version(b"{}"), format!("{hash}-native"));
        let native = Catalog {
            version_suffix: Template::Native.version_suffix(),
            ..Catalog::default()
        };
        assert_eq!(native.resolve(&hash), format!("{hash}-native"));
        assert_eq!(
            native.resolve(&format!("{hash}-native")),
            format!("{hash}-native")
        );
        assert_eq!(Catalog::default().resolve(&hash), hash);
    }

    #[test]
    fn check_refuses_what_the_filter_refuses_and_what_would_serve_by_accident() {
        assert_eq!(check("turnout", b"{}").map(|c| c.0), Ok("{}".into()));
        let problems = check(
            "turnout",
            br#"{"splits": [{"name": "a", "match": {"route": "a"}, "stable": "x", "targets": [{"cluster": "y", "weight": 140}]}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            problems,
            ["splits[0].targets[0].weight: 140 is not between 0 and 100"]
        );
        assert!(check("turnout", b" \n").unwrap_err()[0].contains("empty"));
        assert!(check("turnout", b"\xff").unwrap_err()[0].contains("UTF-8"));
        assert!(check("turnout", br#"{"resources": []}"#).unwrap_err()[0].contains("ECDS"));
        assert!(check("a b", b"{}").unwrap_err()[0].contains("name"));
    }

    #[test]
    fn a_refusal_keeps_what_is_served_and_history_is_kept() {
        let t = Template::Wasm {
            wasm: "m.wasm".into(),
            runtime: ecds::DEFAULT_RUNTIME.into(),
        };
        let mut c = Catalog::default();
        let file = PathBuf::from("d/turnout.json");
        assert!(c.serve(
            "turnout",
            file.clone(),
            "v1".into(),
            (t.resource("turnout", "{}"), Plan::default()),
            1
        ));
        assert!(!c.serve(
            "turnout",
            file.clone(),
            "v1".into(),
            (t.resource("turnout", "{}"), Plan::default()),
            2
        ));
        assert!(c.refuse(
            "turnout",
            file.clone(),
            Some("v2".into()),
            vec!["bad".into()],
            3
        ));
        assert!(!c.refuse(
            "turnout",
            file.clone(),
            Some("v2".into()),
            vec!["bad".into()],
            4
        ));
        assert_eq!(c.versions()["turnout"], "v1");
        assert_eq!(c.entries["turnout"].refused.as_ref().unwrap().at, 3);
        assert!(c.serve(
            "turnout",
            file.clone(),
            "v3".into(),
            (t.resource("turnout", "{}"), Plan::default()),
            5
        ));
        assert!(c.entries["turnout"].refused.is_none());
        assert_eq!(c.entries["turnout"].previous, ["v1"]);
        assert!(c.resource("turnout").is_some());
        assert!(c.resource("other").is_none());
    }

    #[test]
    fn only_visible_json_files_are_resources() {
        assert_eq!(resource_name("turnout.json"), Some("turnout"));
        assert_eq!(resource_name(".turnout.json.turnoutctl-1.tmp"), None);
        assert_eq!(resource_name(".x.json"), None);
        assert_eq!(resource_name("turnout.yaml"), None);
        assert_eq!(resource_name(".json"), None);
    }
}
