//! What a simulated proxy says, without I/O: the request that opens its
//! ECDS stream, its answer to each response (an ACK, or a NACK when it is
//! told to refuse or the response lacks what it asked for), and how long
//! it waits before reconnecting. `sim` drives it over a real stream.
//!
//! It speaks state-of-the-world xDS as Envoy does: the first request of a
//! stream carries the node and the version the proxy already has (empty
//! for a fresh one); an ACK names the response's nonce and version; a
//! NACK names the nonce, keeps the last accepted version and sets
//! `error_detail`.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status;

/// The ECDS resource type the server serves.
pub const RESOURCE_TYPE: &str = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";

/// gRPC's INVALID_ARGUMENT, the code Envoy puts in a NACK's `error_detail`.
const INVALID_ARGUMENT: i32 = 3;

/// Whether a proxy takes what it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Temper {
    Ack,
    /// Refuses every response, as an Envoy missing the module would.
    Nack,
}

/// A proxy's answer to one response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Ack { version: String },
    Nack { version: String, message: String },
}

/// One simulated proxy: who it is, what it subscribes to, what it has.
#[derive(Clone, Debug)]
pub struct Answerer {
    node: String,
    cluster: String,
    resource: String,
    temper: Temper,
    /// The version of the last response it accepted.
    accepted: String,
}

impl Answerer {
    pub fn new(node: &str, cluster: &str, resource: &str, temper: Temper) -> Answerer {
        Answerer {
            node: node.to_string(),
            cluster: cluster.to_string(),
            resource: resource.to_string(),
            temper,
            accepted: String::new(),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn temper(&self) -> Temper {
        self.temper
    }

    /// The message of this proxy's NACK of `version`, as the server's
    /// status should show it.
    pub fn nack_message(&self, version: &str) -> String {
        format!("simulated proxy {} refuses version {version}", self.node)
    }

    /// The first request of a stream: the node, the resource, and the
    /// version it has (what a reconnecting Envoy tells a restarted server).
    pub fn subscribe(&self) -> DiscoveryRequest {
        DiscoveryRequest {
            version_info: self.accepted.clone(),
            node: Some(Node {
                id: self.node.clone(),
                cluster: self.cluster.clone(),
                ..Node::default()
            }),
            resource_names: vec![self.resource.clone()],
            type_url: RESOURCE_TYPE.to_string(),
            ..DiscoveryRequest::default()
        }
    }

    /// Answers `response`: the request to send and what it said.
    pub fn answer(&mut self, response: &DiscoveryResponse) -> (Answer, DiscoveryRequest) {
        let version = response.version_info.clone();
        let refusal = match self.temper {
            Temper::Nack => Some(self.nack_message(&version)),
            Temper::Ack => self.problem(response),
        };
        let mut request = DiscoveryRequest {
            version_info: self.accepted.clone(),
            resource_names: vec![self.resource.clone()],
            type_url: RESOURCE_TYPE.to_string(),
            response_nonce: response.nonce.clone(),
            ..DiscoveryRequest::default()
        };
        let answer = match refusal {
            None => {
                self.accepted = version.clone();
                request.version_info = version.clone();
                Answer::Ack { version }
            }
            Some(message) => {
                request.error_detail = Some(Status {
                    code: INVALID_ARGUMENT,
                    message: message.clone(),
                    details: Vec::new(),
                });
                Answer::Nack { version, message }
            }
        };
        (answer, request)
    }

    /// Why `response` cannot be taken, as Envoy would refuse it: not the
    /// type asked for, or without the subscribed resource.
    fn problem(&self, response: &DiscoveryResponse) -> Option<String> {
        if response.type_url != RESOURCE_TYPE {
            return Some(format!("unexpected type {}", response.type_url));
        }
        let carried = response
            .resources
            .iter()
            .any(|r| r.type_url == RESOURCE_TYPE);
        (!carried).then(|| format!("no {} in the response", self.resource))
    }
}

/// The wait before a reconnect, as Envoy's gRPC client backs off
/// (`retry_back_off` of `envoy/fleet.yaml`: base 0.25 s, at most 5 s):
/// a random time up to a ceiling that doubles with each failed attempt.
/// Random so that a thousand proxies losing their server at once do not
/// all come back in the same millisecond.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            base,
            max,
            attempt: 0,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The next wait.
    pub fn next_wait(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(self.rng.u64(0..=ms))
    }

    /// A stream was answered: the next failure starts from the base again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::Any;

    fn response(version: &str, nonce: &str) -> DiscoveryResponse {
        DiscoveryResponse {
            version_info: version.into(),
            nonce: nonce.into(),
            type_url: RESOURCE_TYPE.into(),
            resources: vec![Any {
                type_url: RESOURCE_TYPE.into(),
                value: Vec::new(),
            }],
            ..DiscoveryResponse::default()
        }
    }

    #[test]
    fn a_fresh_proxy_subscribes_with_its_node_and_no_version() {
        let proxy = Answerer::new("sim-7", "fleet", "turnout", Temper::Ack);
        let first = proxy.subscribe();
        let node = first.node.expect("the first request names the node");
        assert_eq!(
            (node.id.as_str(), node.cluster.as_str()),
            ("sim-7", "fleet")
        );
        assert_eq!(first.resource_names, ["turnout"]);
        assert_eq!(first.type_url, RESOURCE_TYPE);
        assert_eq!(
            (first.version_info.as_str(), first.response_nonce.as_str()),
            ("", "")
        );
    }

    #[test]
    fn an_ack_names_the_nonce_and_version_and_a_reconnect_tells_it() {
        let mut proxy = Answerer::new("a", "fleet", "turnout", Temper::Ack);
        let (answer, ack) = proxy.answer(&response("v1", "1"));
        assert_eq!(
            answer,
            Answer::Ack {
                version: "v1".into()
            }
        );
        assert_eq!(
            (ack.version_info.as_str(), ack.response_nonce.as_str()),
            ("v1", "1")
        );
        assert!(ack.error_detail.is_none());
        assert!(
            ack.node.is_none(),
            "the node goes on the first message only"
        );
        assert_eq!(proxy.subscribe().version_info, "v1");
    }

    #[test]
    fn a_nacking_proxy_keeps_its_version_and_says_why() {
        let mut proxy = Answerer::new("b", "fleet", "turnout", Temper::Ack);
        proxy.answer(&response("v1", "1"));
        proxy.temper = Temper::Nack;
        let (answer, nack) = proxy.answer(&response("v2", "2"));
        let message = proxy.nack_message("v2");
        assert_eq!(
            answer,
            Answer::Nack {
                version: "v2".into(),
                message: message.clone()
            }
        );
        assert_eq!(
            (nack.version_info.as_str(), nack.response_nonce.as_str()),
            ("v1", "2")
        );
        let detail = nack.error_detail.expect("a NACK carries error_detail");
        assert_eq!((detail.code, detail.message), (INVALID_ARGUMENT, message));
        assert_eq!(proxy.subscribe().version_info, "v1");
    }

    #[test]
    fn a_response_without_the_resource_is_refused_even_by_an_acking_proxy() {
        let mut proxy = Answerer::new("c", "fleet", "turnout", Temper::Ack);
        let mut empty = response("v1", "1");
        empty.resources.clear();
        let (answer, _) = proxy.answer(&empty);
        assert!(matches!(answer, Answer::Nack { message, .. } if message.contains("no turnout")));
        let mut wrong = response("v1", "2");
        wrong.type_url = "type.googleapis.com/other".into();
        assert!(matches!(proxy.answer(&wrong).0, Answer::Nack { .. }));
        assert_eq!(proxy.subscribe().version_info, "");
    }

    #[test]
    fn the_backoff_stays_under_a_ceiling_that_doubles_to_the_max_and_resets() {
        let (base, max) = (Duration::from_millis(250), Duration::from_secs(5));
        let mut backoff = Backoff::new(base, max, 1);
        let ceilings = [250, 500, 1000, 2000, 4000, 5000, 5000];
        for ceiling in ceilings {
            assert!(backoff.next_wait() <= Duration::from_millis(ceiling));
        }
        backoff.reset();
        let waits: Vec<Duration> = (0..50)
            .map(|_| {
                backoff.reset();
                backoff.next_wait()
            })
            .collect();
        assert!(waits.iter().all(|w| *w <= base), "{waits:?}");
        assert!(waits.iter().any(|w| *w != waits[0]), "jittered: {waits:?}");
    }
}
