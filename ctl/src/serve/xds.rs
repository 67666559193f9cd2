//! The gRPC services Envoy connects to: ECDS
//! (`ExtensionConfigDiscoveryService`) and ADS
//! (`AggregatedDiscoveryService`), state of the world only. Both run the
//! same stream loop: a request is booked in `Subscriptions` and answered if
//! the proxy lacks something; a catalog change is pushed to every stream
//! that lacks it. Delta xDS is refused (configure `api_type: GRPC`).
//!
//! Under mutual TLS a stream is booked only once its first request claims
//! a node id the proxy's certificate names (identity.rs); a stream that
//! claims another is ended with `PermissionDenied`, and never shown.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::extension::v3::extension_config_discovery_service_server::ExtensionConfigDiscoveryService;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

use super::catalog::Catalog;
use super::hub::{now_ms, Hub};
use super::identity::{self, Identity};
use super::state::{Ask, Heard, Push};
use super::wait::label;
use crate::ecds::RESOURCE_TYPE;

type Responses = ReceiverStream<Result<DiscoveryResponse, Status>>;
type DeltaResponses = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

#[derive(Clone)]
pub struct Xds {
    hub: Arc<Hub>,
    /// Whether connections are mutual TLS sessions, whose certificate
    /// binds the node id.
    tls: bool,
}

/// One stream, as it is opened.
struct Opened {
    api: &'static str,
    peer: String,
    identity: Identity,
}

impl Xds {
    pub fn new(hub: Arc<Hub>, tls: bool) -> Xds {
        Xds { hub, tls }
    }

    /// Starts serving one stream; the responses go out as they are made.
    fn open(&self, api: &'static str, request: Request<Streaming<DiscoveryRequest>>) -> Responses {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_string(), |a| a.to_string());
        let identity = if self.tls {
            let names = request.peer_certs().and_then(|certs| {
                let own = certs.first()?;
                Some(crate::tls::dns_names(own))
            });
            Identity::Certified(names.unwrap_or_default())
        } else {
            Identity::Unchecked
        };
        let (tx, rx) = mpsc::channel(8);
        let opened = Opened {
            api,
            peer,
            identity,
        };
        tokio::spawn(run_stream(
            self.hub.clone(),
            opened,
            request.into_inner(),
            tx,
        ));
        ReceiverStream::new(rx)
    }
}

fn no_delta() -> Status {
    Status::unimplemented(
        "turnoutctl serve speaks state-of-the-world xDS only: configure api_type: GRPC",
    )
}

#[tonic::async_trait]
impl ExtensionConfigDiscoveryService for Xds {
    type StreamExtensionConfigsStream = Responses;
    type DeltaExtensionConfigsStream = DeltaResponses;

    async fn stream_extension_configs(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Responses>, Status> {
        Ok(Response::new(self.open("ecds", request)))
    }

    async fn delta_extension_configs(
        &self,
        _: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<DeltaResponses>, Status> {
        Err(no_delta())
    }

    async fn fetch_extension_configs(
        &self,
        _: Request<DiscoveryRequest>,
    ) -> Result<Response<DiscoveryResponse>, Status> {
        Err(Status::unimplemented(
            "turnoutctl serve streams: configure api_type: GRPC",
        ))
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Xds {
    type StreamAggregatedResourcesStream = Responses;
    type DeltaAggregatedResourcesStream = DeltaResponses;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Responses>, Status> {
        Ok(Response::new(self.open("ads", request)))
    }

    async fn delta_aggregated_resources(
        &self,
        _: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<DeltaResponses>, Status> {
        Err(no_delta())
    }
}

/// What a stream's loop wakes up to. Lives for one turn of the loop, on
/// its stack: the size of the request variant costs nothing, a box would
/// cost an allocation per message.
#[allow(clippy::large_enum_variant)]
enum Event {
    /// The proxy's next request, its end, or its failure.
    Request(Result<Option<DiscoveryRequest>, Status>),
    /// The catalog changed (`false`: the server is stopping).
    Served(bool),
}

/// One proxy's stream, from its first request to its end.
async fn run_stream(
    hub: Arc<Hub>,
    opened: Opened,
    mut inbound: Streaming<DiscoveryRequest>,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
) {
    let Opened {
        api,
        peer,
        identity,
    } = opened;
    // Nothing is booked before the first request says who the proxy is.
    let Some((gate, first)) = admitted(identity, &mut inbound, &tx, &peer, api).await else {
        return;
    };
    let stream = hub.subscriptions().open(api, &peer, now_ms());
    let mut catalog = hub.watch_catalog();
    let mut other_types = false;
    let mut next = Some(first);
    let ended = loop {
        let event = match next.take() {
            Some(request) => Event::Request(Ok(Some(request))),
            None => tokio::select! {
                request = inbound.message() => Event::Request(request),
                changed = catalog.changed() => Event::Served(changed.is_ok()),
            },
        };
        let response = match event {
            Event::Request(Ok(Some(mut request))) if is_ecds(&request) => {
                if let Err(why) = gate.later(&mut request) {
                    warn!("{peer} ({api}) refused: {why}");
                    let _ = tx.send(Err(Status::permission_denied(why))).await;
                    break "refused".to_string();
                }
                let served = catalog.borrow_and_update().clone();
                heard(&hub, stream, &request, &served)
            }
            Event::Request(Ok(Some(request))) => {
                if !other_types {
                    let wants = &request.type_url;
                    info!("{peer} ({api}) asks for {wants}: only ECDS is served, ignored");
                    other_types = true;
                }
                None
            }
            Event::Request(Ok(None)) => break "closed".to_string(),
            Event::Request(Err(status)) => break format!("ended: {}", status.message()),
            Event::Served(true) => {
                let served = catalog.borrow_and_update().clone();
                pushed(&hub, stream, &served)
            }
            Event::Served(false) => break "server stopping".to_string(),
        };
        if let Some(response) = response {
            if tx.send(Ok(response)).await.is_err() {
                break "closed".to_string();
            }
        }
    };
    if let Some(proxy) = hub.subscriptions().close(stream, now_ms()) {
        info!(
            "{} ({api}, {peer}) disconnected: stream {ended}",
            label(&proxy)
        );
    }
    hub.touch();
}

/// The stream's first request and its gate, if the proxy may claim the
/// node it names; a refusal is logged and sent. `None` when the stream
/// ends first or is refused.
async fn admitted(
    identity: Identity,
    inbound: &mut Streaming<DiscoveryRequest>,
    tx: &mpsc::Sender<Result<DiscoveryResponse, Status>>,
    peer: &str,
    api: &str,
) -> Option<(Gate, DiscoveryRequest)> {
    let first = inbound.message().await.ok().flatten()?;
    match Gate::admit(identity, &first) {
        Ok(gate) => Some((gate, first)),
        Err(why) => {
            warn!("{peer} ({api}) refused: {why}");
            let _ = tx.send(Err(Status::permission_denied(why))).await;
            None
        }
    }
}

/// Who a stream is: what its connection proves, and the node its first
/// request was admitted as.
struct Gate {
    identity: Identity,
    /// The first request's node: later requests keep it, and one that
    /// leaves it out (`set_node_on_first_message_only`) is booked as it.
    node: Option<Node>,
}

impl Gate {
    /// The stream, if its first request may claim the node it names;
    /// why not otherwise.
    fn admit(identity: Identity, first: &DiscoveryRequest) -> Result<Gate, String> {
        identity.admits(node_id(first), true)?;
        Ok(Gate {
            identity,
            node: first.node.clone(),
        })
    }

    /// A later request: refused if it claims a node the certificate does
    /// not name or another than the stream's; given the stream's node if
    /// it names none.
    fn later(&self, request: &mut DiscoveryRequest) -> Result<(), String> {
        let claimed = node_id(request);
        self.identity.admits(claimed, false)?;
        let bound = self.node.as_ref().map(|n| n.id.as_str());
        identity::keeps_node(bound, claimed)?;
        if request.node.is_none() {
            request.node.clone_from(&self.node);
        }
        Ok(())
    }
}

fn node_id(request: &DiscoveryRequest) -> Option<&str> {
    request.node.as_ref().map(|n| n.id.as_str())
}

fn is_ecds(request: &DiscoveryRequest) -> bool {
    request.type_url.is_empty() || request.type_url == RESOURCE_TYPE
}

/// Books a request; the response it calls for, if any.
fn heard(
    hub: &Hub,
    stream: u64,
    request: &DiscoveryRequest,
    catalog: &Catalog,
) -> Option<DiscoveryResponse> {
    let node = request
        .node
        .as_ref()
        .map(|n| (n.id.as_str(), n.cluster.as_str()));
    let ask = Ask {
        node,
        version_info: &request.version_info,
        nonce: &request.response_nonce,
        names: &request.resource_names,
        error: request.error_detail.as_ref().map(|e| e.message.as_str()),
    };
    let (said, push, who) = {
        let mut subscriptions = hub.subscriptions();
        let (said, push) = subscriptions.on_request(stream, &ask, &catalog.versions(), now_ms());
        let who = subscriptions
            .proxy(stream)
            .map(|p| format!("{} ({}, {})", label(p), p.api, p.peer))
            .unwrap_or_default();
        (said, push, who)
    };
    match said {
        Heard::Subscribe { names, has } => info!(
            "{who} subscribes to {} (has {})",
            if names.is_empty() {
                "everything".to_string()
            } else {
                names.join(", ")
            },
            if has.is_empty() { "nothing" } else { &has }
        ),
        Heard::Ack(versions) => info!("{who} ACKed {}", pairs(&versions)),
        Heard::Nack(versions, message) => warn!("{who} NACKed {}: {message}", pairs(&versions)),
        Heard::Other => {}
    }
    hub.touch();
    push.map(|p| response(p, catalog))
}

/// The response a catalog change calls for on `stream`, if any.
fn pushed(hub: &Hub, stream: u64, catalog: &Catalog) -> Option<DiscoveryResponse> {
    let push = hub
        .subscriptions()
        .on_served(stream, &catalog.versions(), now_ms());
    push.map(|p| response(p, catalog))
}

fn pairs(versions: &std::collections::BTreeMap<String, String>) -> String {
    let each: Vec<String> = versions.iter().map(|(n, v)| format!("{n} {v}")).collect();
    each.join(", ")
}

fn response(push: Push, catalog: &Catalog) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: push.version_info,
        resources: push
            .versions
            .keys()
            .filter_map(|name| catalog.resource(name).cloned())
            .collect(),
        type_url: RESOURCE_TYPE.to_string(),
        nonce: push.nonce,
        ..Default::default()
    }
}
