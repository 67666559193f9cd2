//! `turnoutctl serve DIR --listen ADDR --wasm PATH`: the control plane of
//! a fleet of Envoys without Istio. Each `NAME.json` companion config in
//! DIR is served over gRPC xDS (ECDS, and ADS) as the resource NAME, and
//! pushed to every subscribed proxy when the file changes; what each proxy
//! did with each push (ACK, or NACK with Envoy's message) is kept and
//! shown at `/status`, `/metrics` and `/wait` on the same port.
//!
//! For the rollout controller (same binary): `version_of` gives the
//! version a config will be served as, `client::wait_acked` waits until
//! every proxy has it, `client::status` reads the whole status.
//!
//! The server keeps nothing on disk: what it serves is the directory, what
//! it knows of proxies is rebuilt as they reconnect (each tells the version
//! it has). Restarting it is safe: proxies keep their config meanwhile.

mod catalog;
pub mod client;
mod directory;
#[cfg(test)]
mod fixture;
mod http;
mod hub;
mod limits;
mod logging;
mod metrics;
mod state;
mod status;
pub mod wait;
mod xds;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use envoy_types::pb::envoy::service::extension::v3::extension_config_discovery_service_server::ExtensionConfigDiscoveryServiceServer;
use serde::Serialize;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tracing::{info, warn};

pub use catalog::{version_of, Template};

use crate::fail::Fail;
use hub::{now_ms, Hub};

/// Runs the server until the process is stopped.
pub fn run(dir: &Path, listen: &str, template: Template, poll: Duration) -> Result<(), Fail> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| Fail::Usage(format!("--listen {listen:?}: not an IP:PORT address")))?;
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
    runtime.block_on(serve(scanner, addr, poll))
}

async fn serve(
    mut scanner: directory::Scanner,
    addr: SocketAddr,
    poll: Duration,
) -> Result<(), Fail> {
    let hub = Hub::new(scanner.catalog().clone());
    let incoming = TcpIncoming::bind(addr)
        .map_err(|e| Fail::Usage(format!("cannot listen on {addr}: {e}")))?
        .with_nodelay(Some(true));
    let bound = incoming.local_addr().unwrap_or(addr);
    let xds = xds::Xds::new(hub.clone());
    // One axum router for both: the HTTP routes, then the gRPC services
    // (a path each, `/SERVICE/METHOD`); what matches neither falls to the
    // HTTP side's fallback.
    let routes = Routes::from(http::router(hub.clone()))
        .add_service(ExtensionConfigDiscoveryServiceServer::new(xds.clone()))
        .add_service(AggregatedDiscoveryServiceServer::new(xds));
    info!(
        "listening on {bound} (gRPC: ECDS and ADS, state of the world; HTTP: /status /metrics /wait)"
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
    Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(15)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .accept_http1(true)
        .add_routes(routes)
        .serve_with_incoming(incoming)
        .await
        .map_err(|e| Fail::Refused(format!("the server stopped: {e}")))
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
