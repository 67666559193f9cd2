//! Envoy v3 bootstrap YAML, generated: listeners with an HTTP connection
//! manager, named routes, static loopback clusters, the turnout wasm filter
//! (inline or through ECDS from a watched file), and ECDS resource files.
//!
//! Everything binds 127.0.0.1 port 0; `Envoy` reads the real ports from the
//! admin API by listener name. Raw YAML snippets passed in (filter entries,
//! route bodies, stats tags) are block YAML starting at column 0: they are
//! indented into place here.

use std::fs::{self, File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// A whole bootstrap: listeners, clusters and options.
#[derive(Clone, Debug, Default)]
pub struct Bootstrap {
    pub listeners: Vec<Listener>,
    /// Static clusters `(name, port)`, each one endpoint at 127.0.0.1:port.
    pub clusters: Vec<(String, u16)>,
    /// A YAML mapping with a `stats_tags:` key (as in `envoy/stats_tags.yaml`),
    /// placed under `stats_config`.
    pub stats_tags_yaml: Option<String>,
    /// Raw top-level YAML appended to the bootstrap (e.g. `layered_runtime`).
    pub extra_yaml: Option<String>,
}

/// A listener on 127.0.0.1:0 with one HTTP connection manager and one
/// virtual host `*`.
#[derive(Clone, Debug)]
pub struct Listener {
    /// Also the HCM's stat prefix; `Envoy::listener_port` looks ports up by it.
    pub name: String,
    /// Raw YAML of HTTP filter entries (`name: ...` / `typed_config: ...`),
    /// in order; the router is appended automatically.
    pub http_filters: Vec<String>,
    pub routes: Vec<Route>,
}

/// A route, matched by path prefix. Its `name` is what the filter sees as
/// `xds.route_name`.
#[derive(Clone, Debug)]
pub struct Route {
    pub name: String,
    pub prefix: String,
    pub action: RouteAction,
}

#[derive(Clone, Debug)]
pub enum RouteAction {
    /// `route: {cluster_header: <header>}`: the cluster named by a request
    /// header (the decision header the filter writes).
    ClusterHeader(String),
    /// `route: {cluster: <name>}`.
    Cluster(String),
    /// Raw YAML of the `route:` body, e.g. `weighted_clusters: ...`.
    Raw(String),
}

impl Bootstrap {
    pub fn new() -> Bootstrap {
        Bootstrap::default()
    }

    pub fn listener(mut self, listener: Listener) -> Bootstrap {
        self.listeners.push(listener);
        self
    }

    pub fn cluster(mut self, name: &str, port: u16) -> Bootstrap {
        self.clusters.push((name.to_string(), port));
        self
    }

    pub fn stats_tags(mut self, yaml: &str) -> Bootstrap {
        self.stats_tags_yaml = Some(yaml.to_string());
        self
    }

    /// Raw top-level bootstrap YAML appended as is (e.g.
    /// `stats_flush_interval: 1s`).
    pub fn extra(mut self, yaml: &str) -> Bootstrap {
        self.extra_yaml = Some(yaml.to_string());
        self
    }

    /// Uses the repository's `envoy/stats_tags.yaml`, as every shipped
    /// bootstrap does. Panics if the file is missing.
    pub fn repo_stats_tags(self) -> Bootstrap {
        let path = crate::workspace_root().join("envoy/stats_tags.yaml");
        let yaml =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        self.stats_tags(&yaml)
    }

    pub fn to_yaml(&self) -> String {
        // A node id and cluster are required by xDS subscriptions (ECDS).
        let mut y = String::from(
            "node: {id: turnout-test, cluster: turnout-test}\n\
             admin:\n  address:\n    socket_address: {address: 127.0.0.1, port_value: 0}\n\
             static_resources:\n",
        );
        y.push_str(if self.listeners.is_empty() {
            "  listeners: []\n"
        } else {
            "  listeners:\n"
        });
        for l in &self.listeners {
            y.push_str(&list_item(&l.to_yaml(), 2));
        }
        y.push_str(if self.clusters.is_empty() {
            "  clusters: []\n"
        } else {
            "  clusters:\n"
        });
        for (name, port) in &self.clusters {
            y.push_str(&list_item(&cluster_yaml(name, *port), 2));
        }
        if let Some(tags) = &self.stats_tags_yaml {
            y.push_str("stats_config:\n");
            y.push_str(&indent(tags, 2));
        }
        if let Some(extra) = &self.extra_yaml {
            y.push_str(&indent(extra, 0));
        }
        y
    }
}

impl Listener {
    pub fn new(name: &str) -> Listener {
        Listener {
            name: name.to_string(),
            http_filters: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// Appends an HTTP filter entry (raw YAML), before the router.
    pub fn filter(mut self, yaml: &str) -> Listener {
        self.http_filters.push(yaml.to_string());
        self
    }

    pub fn route(mut self, route: Route) -> Listener {
        self.routes.push(route);
        self
    }

    fn to_yaml(&self) -> String {
        let name = quote(&self.name);
        let mut y = format!(
            "name: {name}\n\
             address:\n  socket_address: {{address: 127.0.0.1, port_value: 0}}\n\
             filter_chains:\n\
             - filters:\n  \
               - name: envoy.filters.network.http_connection_manager\n    \
                 typed_config:\n      \
                   \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n      \
                   stat_prefix: {name}\n      \
                   route_config:\n        \
                     name: {name}\n        \
                     virtual_hosts:\n        \
                     - name: all\n          \
                       domains: [\"*\"]\n"
        );
        let base = 10; // indentation of the virtual host's keys
        y.push_str(&indent(
            if self.routes.is_empty() {
                "routes: []"
            } else {
                "routes:"
            },
            base,
        ));
        for r in &self.routes {
            y.push_str(&list_item(&r.to_yaml(), base));
        }
        y.push_str(&indent("http_filters:", 6));
        for f in &self.http_filters {
            y.push_str(&list_item(f, 6));
        }
        y.push_str(&list_item(
            "name: envoy.filters.http.router\n\
             typed_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
            6,
        ));
        y
    }
}

impl Route {
    pub fn new(name: &str, prefix: &str, action: RouteAction) -> Route {
        Route {
            name: name.to_string(),
            prefix: prefix.to_string(),
            action,
        }
    }

    fn to_yaml(&self) -> String {
        let body = match &self.action {
            RouteAction::ClusterHeader(h) => format!("cluster_header: {}", quote(h)),
            RouteAction::Cluster(c) => format!("cluster: {}", quote(c)),
            RouteAction::Raw(raw) => raw.clone(),
        };
        format!(
            "name: {}\nmatch: {{prefix: {}}}\nroute:\n{}",
            quote(&self.name),
            quote(&self.prefix),
            indent(&body, 2)
        )
    }
}

fn cluster_yaml(name: &str, port: u16) -> String {
    let name = quote(name);
    format!(
        "name: {name}\n\
         type: STATIC\n\
         connect_timeout: 1s\n\
         load_assignment:\n  \
           cluster_name: {name}\n  \
           endpoints:\n  \
           - lb_endpoints:\n    \
             - endpoint:\n        \
                 address:\n          \
                   socket_address: {{address: 127.0.0.1, port_value: {port}}}\n"
    )
}

/// The `typed_config` of the wasm filter (a `Wasm` message, `@type` first):
/// V8, code from a local file, `config_json` as the plugin configuration.
fn wasm_typed_config(wasm: &Path, config_json: &str) -> String {
    wasm_typed_config_named("turnout", "turnout", wasm, config_json)
}

/// The same for a plugin `name` (also its root id) in VM `vm_id`: several
/// wasm filters in one Envoy (the load benchmark's) each get their own VM.
fn wasm_typed_config_named(name: &str, vm_id: &str, wasm: &Path, config_json: &str) -> String {
    format!(
        "\"@type\": {WASM_TYPE}\n\
         config:\n  \
           name: {name}\n  \
           root_id: {name}\n  \
           vm_config:\n    \
             vm_id: {vm_id}\n    \
             runtime: envoy.wasm.runtime.v8\n    \
             code:\n      \
               local:\n        \
                 filename: {}\n  \
           configuration:\n    \
             \"@type\": type.googleapis.com/google.protobuf.StringValue\n    \
             value: {}\n",
        quote(&wasm.to_string_lossy()),
        quote(config_json),
    )
}

/// The HTTP filter entry for the turnout wasm filter with an inline
/// configuration. Fail closed: `fail_open` keeps its default (false), so a
/// broken VM answers 500 instead of silently skipping the split.
pub fn wasm_filter_inline(wasm: &Path, config_json: &str) -> String {
    wasm_filter_inline_named("turnout", "turnout", wasm, config_json)
}

/// [`wasm_filter_inline`] for plugin `name` in VM `vm_id`.
pub fn wasm_filter_inline_named(name: &str, vm_id: &str, wasm: &Path, config_json: &str) -> String {
    format!(
        "name: envoy.filters.http.wasm\ntyped_config:\n{}",
        indent(&wasm_typed_config_named(name, vm_id, wasm, config_json), 2)
    )
}

/// The HTTP filter entry for a filter named `name` whose configuration comes
/// through ECDS from `resource_file`, reloaded whenever a file is moved into
/// `watched_dir` (write it with `write_atomically`).
pub fn wasm_filter_ecds(name: &str, watched_dir: &Path, resource_file: &Path) -> String {
    filter_ecds(name, watched_dir, resource_file, WASM_TYPE)
}

/// An HTTP filter entry named `name` taking a config of `type_url` by ECDS
/// from `resource_file`, watched in `watched_dir`.
fn filter_ecds(name: &str, watched_dir: &Path, resource_file: &Path, type_url: &str) -> String {
    format!(
        "name: {}\n\
         config_discovery:\n  \
           config_source:\n    \
             resource_api_version: V3\n    \
             path_config_source:\n      \
               path: {}\n      \
               watched_directory:\n        \
                 path: {}\n  \
           type_urls:\n  \
           - {type_url}\n",
        quote(name),
        quote(&resource_file.to_string_lossy()),
        quote(&watched_dir.to_string_lossy()),
    )
}

/// The content of an ECDS resource file: a discovery response with one
/// `TypedExtensionConfig` called `name` holding the wasm filter config.
pub fn ecds_resource(name: &str, wasm: &Path, config_json: &str) -> String {
    ecds_resource_of(name, &wasm_typed_config(wasm, config_json))
}

/// An ECDS resource file: one `TypedExtensionConfig` called `name`
/// holding `typed_config` (YAML, `@type` first).
fn ecds_resource_of(name: &str, typed_config: &str) -> String {
    format!(
        "resources:\n\
         - \"@type\": type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig\n  \
           name: {}\n  \
           typed_config:\n{}",
        quote(name),
        indent(typed_config, 4)
    )
}

const NATIVE_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter";

/// The `typed_config` of the native build (a `DynamicModuleFilter`):
/// module `turnout_native` (found in `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`),
/// filter `turnout`, `config_json` as a `StringValue`.
fn native_typed_config(config_json: &str) -> String {
    format!(
        "\"@type\": {NATIVE_TYPE}\n\
         dynamic_module_config:\n  \
           name: {}\n\
         filter_name: turnout\n\
         filter_config:\n  \
           \"@type\": type.googleapis.com/google.protobuf.StringValue\n  \
           value: {}\n",
        crate::native::MODULE_NAME,
        quote(config_json),
    )
}

/// The HTTP filter entry for the native build with an inline configuration.
pub fn native_filter_inline(config_json: &str) -> String {
    format!(
        "name: envoy.filters.http.dynamic_modules\ntyped_config:\n{}",
        indent(&native_typed_config(config_json), 2)
    )
}

/// The native build's HTTP filter entry whose configuration comes by ECDS
/// from `resource_file` (as `wasm_filter_ecds`, with the
/// `DynamicModuleFilter` type URL).
pub fn native_filter_ecds(name: &str, watched_dir: &Path, resource_file: &Path) -> String {
    filter_ecds(name, watched_dir, resource_file, NATIVE_TYPE)
}

/// An ECDS resource file holding the native build's filter config.
pub fn native_ecds_resource(name: &str, config_json: &str) -> String {
    ecds_resource_of(name, &native_typed_config(config_json))
}

/// Replaces `path` with `contents` atomically: a temporary file in the same
/// directory, fsync, then rename over `path`. Readers (Envoy) never see a
/// half-written file, and the rename is the "moved into the watched
/// directory" event that makes Envoy reload it. The fsyncs stay although
/// the tests need no durability: without them most requests straddled a
/// push in CI (cause not found; commits 3cad296, 8a6f5b0 and 8d83421).
pub fn write_atomically(path: &Path, contents: &str) {
    let dir = path.parent().expect("path has a parent directory");
    let name = path
        .file_name()
        .expect("path has a file name")
        .to_string_lossy();
    let write = || -> std::io::Result<()> {
        // 0666 less the umask, as `File::create` made it, not tempfile's
        // private 0600.
        let mut file = tempfile::Builder::new()
            .prefix(&format!(".{name}.tmp-"))
            .permissions(Permissions::from_mode(0o666))
            .tempfile_in(dir)?;
        file.write_all(contents.as_bytes())?;
        file.as_file().sync_all()?;
        file.persist(path).map_err(|e| e.error)?;
        File::open(dir)?.sync_all()
    };
    write().unwrap_or_else(|e| panic!("write {} atomically: {e}", path.display()));
}

/// `s` as a YAML double-quoted scalar. A JSON string literal is one: the
/// escapes JSON uses (`\"`, `\\`, `\n`, `\uXXXX`, ...) mean the same in YAML,
/// so any configuration text (quotes, backslashes, newlines) survives.
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// Every non-empty line of `yaml` indented by `n` spaces; ends with `\n`.
fn indent(yaml: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    let mut out = String::new();
    for line in yaml.trim_end().lines() {
        if !line.trim().is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// `yaml` (a mapping at column 0) as a list item at indentation `n`.
fn list_item(yaml: &str, n: usize) -> String {
    let body = indent(yaml, n + 2);
    format!("{}- {}", " ".repeat(n), &body[n + 2..])
}

/// Envoy's fault filter, for requests whose `header` is `value` (turnout's
/// decision): answers `abort_bp` in 10,000 of them 503 itself and holds
/// `delay_bp` in 10,000 of them `delay_ms` before they go on. Placed after
/// turnout, so turnout counts and times what the fault filter does, as it
/// would a failing upstream's answers.
pub fn fault_filter(
    header: &str,
    value: &str,
    abort_bp: u32,
    delay_bp: u32,
    delay_ms: u32,
) -> String {
    let mut y = String::from(
        "name: envoy.filters.http.fault\n\
         typed_config:\n  \
           \"@type\": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault\n  \
           max_active_faults: 100000\n",
    );
    if abort_bp > 0 {
        y.push_str(&format!(
            "  abort:\n    \
                 http_status: 503\n    \
                 percentage: {{numerator: {abort_bp}, denominator: TEN_THOUSAND}}\n"
        ));
    }
    if delay_bp > 0 && delay_ms > 0 {
        y.push_str(&format!(
            "  delay:\n    \
                 fixed_delay: {}s\n    \
                 percentage: {{numerator: {delay_bp}, denominator: TEN_THOUSAND}}\n",
            f64::from(delay_ms) / 1000.0
        ));
    }
    y.push_str(&format!(
        "  headers:\n  \
         - name: {}\n    \
           string_match: {{exact: {}}}\n",
        quote(header),
        quote(value)
    ));
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_survives_awkward_json() {
        let json = "{\"a\": \"x\\\"y\\\\z\",\n \"b\": \"é\t\"}";
        let q = quote(json);
        assert!(!q.contains('\n'));
        let back: String = serde_json::from_str(&q).unwrap();
        assert_eq!(back, json);
    }

    #[test]
    fn list_item_indents_continuation_lines() {
        assert_eq!(
            list_item("a: 1\nb:\n  c: 2", 2),
            "  - a: 1\n    b:\n      c: 2\n"
        );
    }
}
