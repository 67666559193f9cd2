//! Who a proxy may say it is. With mutual TLS a proxy's node id is bound to
//! its certificate, as istiod binds a workload to its SPIFFE id: a proxy
//! may only claim a node id equal to one of its certificate's DNS names,
//! so one proxy's certificate cannot read, or be booked as, another's
//! subscription. Without TLS any node id is taken as said.

/// What a connection proves about the proxy at its other end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// Plain gRPC: nothing is proved, every node id is taken.
    Unchecked,
    /// The DNS names (subject alternative names) of the client certificate
    /// the handshake verified.
    Certified(Vec<String>),
}

impl Identity {
    /// Whether the peer may claim `node` (a request's node id, `None` when
    /// the request carries no node); why not otherwise. The first request
    /// of a stream must name the node under TLS: a later one may leave it
    /// out (Envoy's `set_node_on_first_message_only`), keeping the first's.
    pub fn admits(&self, node: Option<&str>, first: bool) -> Result<(), String> {
        let Identity::Certified(names) = self else {
            return Ok(());
        };
        let Some(node) = node else {
            return if first {
                Err("the first request names no node id; with mutual TLS a proxy must claim the node id its certificate names".into())
            } else {
                Ok(())
            };
        };
        // Equal, byte for byte; a wildcard name stands for no one proxy.
        if names.iter().any(|n| n == node && !n.starts_with("*.")) {
            return Ok(());
        }
        let named = if names.is_empty() {
            "it names no DNS name".to_string()
        } else {
            format!("it names {}", names.join(", "))
        };
        Err(format!(
            "node id {node:?} is not a DNS name of the client certificate ({named}); a proxy may only claim the node id its certificate names"
        ))
    }
}

/// Whether a later request of a stream may claim `node`: a stream keeps
/// the node id its first request named (`bound`), with or without TLS, so
/// a proxy cannot take over another's subscription on a stream it opened
/// as itself (Envoy never changes its node id on a stream). A request
/// that names no node keeps the stream's.
pub fn keeps_node(bound: Option<&str>, node: Option<&str>) -> Result<(), String> {
    match (bound, node) {
        (Some(bound), Some(node)) if bound != node => Err(format!(
            "node id {node:?} on a stream opened as {bound:?}; a stream keeps the node id of its first request"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_keeps_the_node_id_its_first_request_named() {
        assert_eq!(keeps_node(Some("a"), Some("a")), Ok(()));
        assert_eq!(keeps_node(Some("a"), None), Ok(()));
        assert_eq!(keeps_node(None, Some("b")), Ok(()));
        let e = keeps_node(Some("a"), Some("a.fleet.internal")).unwrap_err();
        assert!(e.contains("stream opened as \"a\""), "{e}");
    }

    fn certified(names: &[&str]) -> Identity {
        Identity::Certified(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn a_proxy_may_claim_a_name_of_its_certificate_and_no_other() {
        let a = certified(&["a", "a.fleet.internal"]);
        assert_eq!(a.admits(Some("a"), true), Ok(()));
        assert_eq!(a.admits(Some("a.fleet.internal"), false), Ok(()));
        let e = a.admits(Some("b"), true).unwrap_err();
        assert_eq!(
            e,
            "node id \"b\" is not a DNS name of the client certificate (it names a, \
             a.fleet.internal); a proxy may only claim the node id its certificate names"
        );
        // Equal means equal: no prefix, no case folding, no empty id.
        for other in ["A", "a.fleet", "", "a "] {
            assert!(a.admits(Some(other), false).is_err(), "{other:?}");
        }
    }

    #[test]
    fn a_wildcard_name_or_no_name_admits_no_one() {
        let wild = certified(&["*.fleet"]);
        assert!(wild.admits(Some("a.fleet"), true).is_err());
        assert!(wild.admits(Some("*.fleet"), true).is_err());
        let none = certified(&[]);
        assert!(none
            .admits(Some("a"), true)
            .unwrap_err()
            .contains("(it names no DNS name)"));
    }

    #[test]
    fn under_tls_the_first_request_must_name_the_node() {
        let a = certified(&["a"]);
        assert!(a
            .admits(None, true)
            .unwrap_err()
            .starts_with("the first request names no node id"));
        assert_eq!(a.admits(None, false), Ok(()));
    }

    #[test]
    fn without_tls_every_node_id_is_taken() {
        for node in [Some("b"), Some(""), None] {
            assert_eq!(Identity::Unchecked.admits(node, true), Ok(()));
        }
    }
}
