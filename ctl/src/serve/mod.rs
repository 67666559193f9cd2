//! `turnoutctl serve DIR --listen ADDR --wasm PATH` (or `--native`): the
//! control plane of a fleet of Envoys without Istio. Each `NAME.json`
//! companion config in DIR is served over gRPC xDS (ECDS, and ADS) as the
//! resource NAME, and pushed to every subscribed proxy when the file
//! changes; what each proxy did with each push (ACK, or NACK with Envoy's
//! message) is kept and shown at `/status`, `/metrics` and `/wait` on the
//! same port, and on the page at `/` (with guard trips and shadow mismatch
//! rates read from the proxies' metrics, given `--prometheus` or
//! `--envoy-admin`).
//!
//! For the rollout controller (same binary): `version_of` gives the hash a
//! config will be served as (its version in the wasm build; the native
//! build's adds `-native`, and `/wait` takes the bare hash),
//! `client::wait_acked` waits until every proxy has it, `client::status`
//! reads the whole status.
//!
//! With `--tls-cert`, `--tls-key` and `--client-ca` the port speaks mutual
//! TLS only (see tls.rs), and a proxy may claim only the node id its
//! certificate names (identity.rs).
//!
//! The server keeps nothing on disk: what it serves is the directory, what
//! it knows of proxies is rebuilt as they reconnect (each tells the version
//! it has). Restarting it is safe: proxies keep their config meanwhile.

mod catalog;
pub mod client;
mod departed;
mod directory;
#[cfg(test)]
mod fixture;
mod http;
mod hub;
mod identity;
mod limits;
mod logging;
mod metrics;
mod page;
mod state;
mod status;
mod tls;
pub mod wait;
mod xds;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use envoy_types::pb::envoy::service::extension::v3::extension_config_discovery_service_server::ExtensionConfigDiscoveryServiceServer;
use serde::Serialize;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tracing::{info, warn};

pub use catalog::{version_of, Template};

use crate::fail::Fail;
use crate::scrape::Source;
use hub::{now_ms, Hub};

/// Where the server listens, and how.
pub struct Listen {
    /// `IP:PORT`.
    pub addr: String,
    /// Mutual TLS on the port (`--tls-cert`, `--tls-key`, `--client-ca`).
    pub tls: Option<crate::tls::Files>,
}

/// Runs the server until the process is stopped. `figures`: where the
/// page reads the proxies' guard and shadow series, if anywhere.
pub fn run(
    dir: &Path,
    listen: Listen,
    template: Template,
    poll: Duration,
    figures: Option<Source>,
) -> Result<(), Fail> {
    let addr: SocketAddr = listen.addr.parse().map_err(|_| {
        Fail::Usage(format!(
            "--listen {:?}: not an IP:PORT address",
            listen.addr
        ))
    })?;
    if let Some(source) = &figures {
        source.check().map_err(Fail::Usage)?;
    }
    let tls = match listen.tls {
        None => None,
        Some(files) => {
            let (rotation, config) = tls::start(&files)
                .map_err(|e| Fail::Usage(format!("--tls-cert, --tls-key, --client-ca: {e}")))?;
            Some((files, rotation, config))
        }
    };
    logging::start();
    let (open_files, before) = limits::raise_open_files();
    let shown = |n: Option<u64>| n.map_or("unlimited".to_string(), |n| n.to_string());
    info!(
        "open files: up to {} (RLIMIT_NOFILE, {} before; one per proxy connection)",
        shown(open_files),
        shown(before)
    );
    let mut scanner = directory::Scanner::new(dir, template);
    let changes = scanner.scan(now_ms()).map_err(Fail::Usage)?;
    for change in &changes {
        change.log();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Fail::Refused(format!("cannot start the runtime: {e}")))?;
    let figures = page::FigureReader::new(figures);
    runtime.block_on(serve(scanner, addr, poll, figures, tls))
}

/// The TLS files, what decides their rotation, and the configuration
/// they made at start.
type Tls = (crate::tls::Files, tls::Rotation, Arc<rustls::ServerConfig>);

async fn serve(
    mut scanner: directory::Scanner,
    addr: SocketAddr,
    poll: Duration,
    figures: page::FigureReader,
    tls: Option<Tls>,
) -> Result<(), Fail> {
    let hub = Hub::new(scanner.catalog().clone());
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Fail::Usage(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener.local_addr().unwrap_or(addr);
    let xds = xds::Xds::new(hub.clone(), tls.is_some());
    // One axum router for both: the HTTP routes, then the gRPC services
    // (a path each, `/SERVICE/METHOD`); what matches neither falls to the
    // HTTP side's fallback.
    let page = page::routes(hub.clone(), figures);
    let routes = Routes::from(http::router(hub.clone(), page))
        .add_service(ExtensionConfigDiscoveryServiceServer::new(xds.clone()))
        .add_service(AggregatedDiscoveryServiceServer::new(xds));
    info!(
        "listening on {bound}{} (gRPC: ECDS and ADS, state of the world; HTTP: / (the page) /status /metrics /wait)",
        if tls.is_some() { " with mutual TLS" } else { "" }
    );
    let watcher = hub.clone();
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::time::sleep(poll).await;
            match scanner.scan(now_ms()) {
                Ok(changes) if changes.is_empty() => failing = false,
                Ok(changes) => {
                    failing = false;
                    for change in &changes {
                        change.log();
                    }
                    watcher.publish(scanner.catalog().clone());
                }
                Err(e) if !failing => {
                    warn!("{e}; what is served stays");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    });
    // HTTP/2 pings find a proxy that vanished without closing its
    // connection (a host that died): its stream ends and it stops counting
    // as connected within about 25 s.
    let router = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(15)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .accept_http1(true)
        .add_routes(routes);
    let served = match tls {
        None => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            router.serve_with_incoming(incoming).await
        }
        Some((files, rotation, config)) => {
            let (serving, configs) = tokio::sync::watch::channel(config);
            tls::watch_rotation(files, rotation, serving);
            router
                .serve_with_incoming(tls::sessions(listener, configs))
                .await
        }
    };
    served.map_err(|e| Fail::Refused(format!("the server stopped: {e}")))
}

/// A document (the status, a wait's answer) as the server sends it and
/// `--json` prints it: indented by two spaces, keys sorted. Through a
/// `serde_json::Value`, whose map sorts its keys (no `preserve_order`, see
/// Cargo.toml): the documents' types list their fields in reading order,
/// and the bytes stay what scripts have read since before they had types.
pub fn json_text(doc: &impl Serialize) -> String {
    match serde_json::to_value(doc) {
        Ok(value) => format!("{value:#}"),
        // Only a map with keys that are not strings fails: none has one.
        Err(e) => format!("{{\"error\": {}}}", serde_json::Value::from(e.to_string())),
    }
}
