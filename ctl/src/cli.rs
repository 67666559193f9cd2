//! turnoutctl's command line as clap reads it: every subcommand, its
//! arguments and their help, and the small parsers for argument values.
//! What each command does is in its own module; main.rs dispatches.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::{change, cohort, ecds, tls};

#[derive(Parser)]
#[command(
    name = "turnoutctl",
    version,
    about = "Check turnout configs, explain decisions, size cohorts, edit the ECDS files Envoy watches, and serve configs to a fleet",
    after_help = "CONFIG is a turnout JSON config or an ECDS resource file (JSON) holding one.\n\
                  Exit codes: 0 ok, 1 refused or invalid, 2 usage; rollout: 3 rolled back or\n\
                  paused on a failure, 4 stopped because someone else changed the split."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Validate a config as the filter would; print one line per split, or every problem.
    Check {
        config: PathBuf,
        /// Weights as at this time (RFC 3339) instead of now.
        #[arg(long, value_parser = at_arg)]
        at: Option<i64>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Where a request goes and why: split, cluster, reason, bucket, weights.
    #[command(group(ArgGroup::new("where").required(true).multiple(true).args(["route", "path"])))]
    Explain {
        config: PathBuf,
        /// The user's key, put where the config looks first (its first user_key source).
        #[arg(long)]
        user: Option<String>,
        /// Envoy's matched route name.
        #[arg(long)]
        route: Option<String>,
        /// The request path (query included).
        #[arg(long)]
        path: Option<String>,
        #[arg(long, default_value = "GET")]
        method: String,
        /// A request header, NAME=VALUE (repeatable).
        #[arg(long = "header", value_name = "NAME=VALUE", value_parser = pair_arg)]
        headers: Vec<(String, String)>,
        /// A cookie, NAME=VALUE (repeatable).
        #[arg(long = "cookie", value_name = "NAME=VALUE", value_parser = pair_arg)]
        cookies: Vec<(String, String)>,
        /// A query parameter, NAME=VALUE (repeatable; percent-encoded for you).
        #[arg(long = "query", value_name = "NAME=VALUE", value_parser = pair_arg)]
        query: Vec<(String, String)>,
        /// Explain as at this time (RFC 3339) instead of now.
        #[arg(long, value_parser = at_arg)]
        at: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Count users per cluster; with --set, who would move where.
    Cohort {
        config: PathBuf,
        /// User keys, one per line.
        #[arg(long)]
        users: PathBuf,
        /// Only this split.
        #[arg(long)]
        split: Option<String>,
        /// A proposed weight, SPLIT.CLUSTER=WEIGHT (repeatable).
        #[arg(long = "set", value_name = "SPLIT.CLUSTER=WEIGHT", value_parser = cohort::set_arg)]
        sets: Vec<cohort::Set>,
        /// Weights as at this time (RFC 3339) instead of now.
        #[arg(long, value_parser = at_arg)]
        at: Option<i64>,
    },
    /// Set a target's weight (percent) in an ECDS file; replaces a schedule.
    SetWeight {
        ecds_file: PathBuf,
        split: String,
        cluster: String,
        #[arg(value_parser = change::weight_arg, allow_hyphen_values = true)]
        weight: String,
    },
    /// Send every request of SPLIT to its stable cluster, now.
    Rollback { ecds_file: PathBuf, split: String },
    /// Undo `rollback`: SPLIT goes back to its weights and pins.
    Resume { ecds_file: PathBuf, split: String },
    /// Drive a split's target through the steps of PLAN (JSON) while it is healthy;
    /// roll back (or pause) when it is not.
    Rollout {
        plan: PathBuf,
        /// Append every decision to this file as JSON lines.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Judge and print, but write nothing to the config.
        #[arg(long)]
        dry_run: bool,
        /// The plan's fleet server speaks mutual TLS: this client's files.
        #[command(flatten)]
        tls: ClientTls,
    },
    /// What the shadows of CONFIG's splits have seen: copies compared, the
    /// mismatch rate, the fields that differ, the noise, the copies' latency.
    #[command(group(ArgGroup::new("metrics").required(true).args(["prometheus", "envoy_admin"])))]
    Shadow {
        config: PathBuf,
        /// Prometheus' base URL (its query API; counts summed over every instance).
        #[arg(long)]
        prometheus: Option<String>,
        /// Each proxy's admin base URL (its /stats/prometheus), repeatable.
        #[arg(long)]
        envoy_admin: Vec<String>,
    },
    /// Wrap a plain config into an ECDS resource file for Envoy to watch.
    #[command(group(ArgGroup::new("build").required(true).args(["wasm", "native"])))]
    Ecds {
        config: PathBuf,
        /// The wasm module's path as Envoy sees it.
        #[arg(long)]
        wasm: Option<String>,
        /// For the native build: a DynamicModuleFilter loading module turnout_native.
        #[arg(long)]
        native: bool,
        /// The resource name (the filter's config_discovery names it).
        #[arg(long, default_value = "turnout")]
        name: String,
        /// The wasm runtime (wasm build only).
        #[arg(long, default_value = ecds::DEFAULT_RUNTIME, conflicts_with = "native")]
        runtime: String,
        /// Write here (atomically) instead of stdout; Envoy wants a .json name.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Serve every NAME.json config in DIR to a fleet of Envoys over gRPC xDS (ECDS, ADS).
    #[command(
        group(ArgGroup::new("build").required(true).args(["wasm", "native"])),
        after_help = "Each NAME.json is the resource NAME (the HTTP filter's name in \
                  config_discovery), version = XXH64 of the file's bytes in hex (with --native, \
                  followed by -native). A file the filter refuses is not served (the previous \
                  version stays). On the same port: GET / (a page that shows it all and refreshes \
                  itself), /status (JSON), /metrics (Prometheus), /wait (see `turnoutctl status \
                  --wait-*`)."
    )]
    Serve {
        dir: PathBuf,
        /// The address to listen on, IP:PORT (port 0: any free port, logged).
        #[arg(long)]
        listen: String,
        /// The wasm module's path as the proxies see it.
        #[arg(long)]
        wasm: Option<String>,
        /// Serve the native build's resources: DynamicModuleFilter, module turnout_native.
        #[arg(long)]
        native: bool,
        /// The wasm runtime (wasm build only).
        #[arg(long, default_value = ecds::DEFAULT_RUNTIME, conflicts_with = "native")]
        runtime: String,
        /// How often DIR is looked at, in milliseconds.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=60_000))]
        poll_ms: u64,
        /// Prometheus' base URL, where the page reads guard trips and shadow
        /// mismatch rates (summed over every instance) when it is open.
        #[arg(long, conflicts_with = "envoy_admin")]
        prometheus: Option<String>,
        /// Instead: each proxy's admin base URL (its /stats/prometheus), repeatable.
        #[arg(long)]
        envoy_admin: Vec<String>,
        #[command(flatten)]
        tls: ServeTls,
    },
    /// What a `turnoutctl serve` serves and what each proxy did with it; or wait for an ACK.
    #[command(
        group(ArgGroup::new("wait").args(["wait_version", "wait_file"])),
        after_help = "With --wait-version or --wait-file: exit 0 once every subscribed proxy (at least \
                      --proxies) has ACKed the version, 1 if one NACKed it, the server refused the \
                      file, the file changed again, or --timeout passed; 2 if the server cannot be asked. \
                      Against a server with mutual TLS give --tls-cert, --tls-key and --ca: refused by \
                      it (or its certificate not trusted), status exits 1."
    )]
    Status {
        /// The server, HOST:PORT (its --listen address).
        #[arg(long)]
        server: String,
        #[arg(long)]
        json: bool,
        /// Wait until every proxy has ACKed this version of --resource.
        #[arg(long, requires = "resource")]
        wait_version: Option<String>,
        /// The resource (the served file's NAME) whose version to wait for.
        #[arg(long, requires = "wait_version")]
        resource: Option<String>,
        /// Wait until every proxy has ACKed this file (in the served directory) as it is now.
        #[arg(long, conflicts_with = "resource")]
        wait_file: Option<PathBuf>,
        /// Waiting succeeds only with at least this many subscribed proxies.
        #[arg(long, default_value_t = 1)]
        proxies: usize,
        /// How long to wait, in seconds.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
        /// The server speaks mutual TLS: this client's files.
        #[command(flatten)]
        tls: ClientTls,
    },
    /// OCI images of the wasm module, for Istio's WasmPlugin and Envoy Gateway.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
}

#[derive(Subcommand)]
pub(crate) enum ImageCommand {
    /// Push the wasm module to REF (registry/repository:tag); print the image's digest.
    #[command(
        after_help = "Credentials: TURNOUT_REGISTRY_USERNAME and TURNOUT_REGISTRY_PASSWORD, \
                  else the registry's entry in $DOCKER_CONFIG/config.json (or ~/.docker/config.json), \
                  else none. The first line printed is the digest (sha256:...); Istio's \
                  WasmPlugin.spec.sha256 takes it without \"sha256:\". Exit 1: the registry \
                  refused the push or cannot be reached."
    )]
    Push {
        /// The image reference, registry/repository:tag (an oci:// prefix is allowed).
        reference: String,
        /// The module: target/wasm32-wasip1/release/turnout.wasm.
        #[arg(long)]
        wasm: PathBuf,
        /// Allow plain HTTP (a registry without TLS, such as one on loopback).
        #[arg(long)]
        insecure: bool,
    },
}

/// `serve`'s mutual TLS: all three flags, or none (plaintext).
#[derive(Args)]
pub(crate) struct ServeTls {
    /// The server's certificate chain (PEM). With --tls-key and --client-ca:
    /// mutual TLS on the port, gRPC and HTTP alike; files re-read when rotated.
    #[arg(long, value_name = "F", requires_all = ["tls_key", "client_ca"])]
    tls_cert: Option<PathBuf>,
    /// The server certificate's private key (PEM).
    #[arg(long, value_name = "F", requires_all = ["tls_cert", "client_ca"])]
    tls_key: Option<PathBuf>,
    /// The CA (PEM) that signs the certificates of the proxies and operators
    /// let in; a proxy may claim only a node id its certificate names (DNS SAN).
    #[arg(long, value_name = "F", requires_all = ["tls_cert", "tls_key"])]
    client_ca: Option<PathBuf>,
}

/// A client's mutual TLS (`status`, `rollout`): all three flags, or none.
#[derive(Args)]
pub(crate) struct ClientTls {
    /// This client's certificate (PEM), signed by the server's --client-ca.
    #[arg(long, value_name = "F", requires_all = ["tls_key", "ca"])]
    tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, value_name = "F", requires_all = ["tls_cert", "ca"])]
    tls_key: Option<PathBuf>,
    /// The CA (PEM) that signs the server's certificate.
    #[arg(long, value_name = "F", requires_all = ["tls_cert", "tls_key"])]
    ca: Option<PathBuf>,
}

impl ServeTls {
    pub(crate) fn files(self) -> Option<tls::Files> {
        tls::Files::given(self.tls_cert, self.tls_key, self.client_ca)
    }
}

impl ClientTls {
    pub(crate) fn files(self) -> Option<tls::Files> {
        tls::Files::given(self.tls_cert, self.tls_key, self.ca)
    }
}

pub(crate) fn at_arg(text: &str) -> Result<i64, String> {
    turnout::schedule::parse_rfc3339(text).map_err(|e| format!("{text:?} {e}"))
}

fn pair_arg(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}
