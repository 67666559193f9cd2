//! Waiting until every proxy has a version: the judgement the server makes
//! after each change (pure), and the answer as it travels to the caller:
//! the query of `GET /wait` and the document it answers with, one derived
//! type each, read and written by the server and its clients alike.
//!
//! "Every proxy" is every open stream subscribed to the resource, and at
//! least `proxies` of them: with none connected nothing is proven, so the
//! wait goes on (until its deadline) rather than succeed on an empty fleet.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::catalog::Catalog;
use super::state::Proxy;

/// What to wait for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    pub resource: String,
    pub version: String,
    /// At least this many subscribed proxies.
    pub proxies: usize,
}

/// The query of `GET /wait`:
/// `resource=NAME&version=V&proxies=N&timeout_ms=T`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitQuery {
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub version: String,
    #[serde(default = "one", deserialize_with = "number")]
    pub proxies: u64,
    #[serde(default = "thirty_seconds", deserialize_with = "number")]
    pub timeout_ms: u64,
    /// Any other parameter, refused by name rather than ignored: a
    /// misspelt `proxies` would otherwise wait for one proxy.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, String>,
}

/// The longest wait asked for is an hour.
const LONGEST_MS: u64 = 3_600_000;

fn one() -> u64 {
    1
}

fn thirty_seconds() -> u64 {
    30_000
}

/// A number in the query, refused in the words people read.
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let text = String::deserialize(d)?;
    text.parse()
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a number")))
}

impl WaitQuery {
    pub fn new(want: &Want, timeout: Duration) -> WaitQuery {
        WaitQuery {
            resource: want.resource.clone(),
            version: want.version.clone(),
            proxies: want.proxies as u64,
            timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
            unknown: BTreeMap::new(),
        }
    }

    /// What the query asks for, and how long to wait for it at most.
    pub fn want(self) -> Result<(Want, Duration), String> {
        if let Some(key) = self.unknown.keys().next() {
            return Err(format!("unknown parameter {key:?}"));
        }
        if self.resource.is_empty() || self.version.is_empty() {
            return Err("resource and version are required".into());
        }
        let want = Want {
            resource: self.resource,
            version: self.version,
            proxies: usize::try_from(self.proxies).unwrap_or(usize::MAX),
        };
        Ok((want, Duration::from_millis(self.timeout_ms.min(LONGEST_MS))))
    }
}

/// What became of a version sent to the fleet, as far as it is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Delivery {
    /// Every subscribed proxy (at least `Want::proxies`) ACKed the version.
    Acked { nodes: Vec<String> },
    /// Proxies refused it, with Envoy's message. Final: the server does
    /// not send a NACKed response again.
    Nacked { nacks: Vec<NodeNack> },
    /// The server refused the file with this version: it is not served.
    Refused { problems: Vec<String> },
    /// The server serves another version now: the file changed again.
    Superseded { serving: String },
    /// Not yet: the proxies that have not ACKed, and why. Sent to the caller
    /// only when its deadline passes, as a timeout.
    #[serde(rename = "timeout")]
    Waiting { pending: Vec<String>, note: String },
}

/// One proxy's NACK of the version waited for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeNack {
    pub node: String,
    /// Envoy's `error_detail.message`.
    pub message: String,
}

/// The answer of `GET /wait`: what was waited for, what became of it (its
/// `outcome` and that outcome's fields), and a line for a person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitAnswer {
    pub resource: String,
    pub version: String,
    pub message: String,
    #[serde(flatten)]
    pub delivery: Delivery,
}

impl Delivery {
    pub fn is_final(&self) -> bool {
        !matches!(self, Delivery::Waiting { .. })
    }

    /// One line for a person: what happened to `want`.
    pub fn message(&self, want: &Want) -> String {
        let what = format!("{} version {}", want.resource, want.version);
        match self {
            Delivery::Acked { nodes } => format!(
                "{what}: ACKed by all {} subscribed proxies ({})",
                nodes.len(),
                nodes.join(", ")
            ),
            Delivery::Nacked { nacks } => {
                let each: Vec<String> = nacks
                    .iter()
                    .map(|n| format!("{}: {}", n.node, n.message))
                    .collect();
                format!("{what}: NACKed by {}", each.join("; "))
            }
            Delivery::Refused { problems } => format!(
                "{what}: the server refused the file, it is not served: {}",
                problems.join("; ")
            ),
            Delivery::Superseded { serving } => {
                format!("{what}: superseded, the server now serves version {serving}")
            }
            Delivery::Waiting { pending, note } if pending.is_empty() => {
                format!("{what}: timed out: {note}")
            }
            Delivery::Waiting { pending, note } => format!(
                "{what}: timed out: {note}; not ACKed by {}",
                pending.join(", ")
            ),
        }
    }

    /// The answer on the wire (`GET /wait`).
    pub fn answer(&self, want: &Want) -> WaitAnswer {
        WaitAnswer {
            resource: want.resource.clone(),
            version: want.version.clone(),
            message: self.message(want),
            delivery: self.clone(),
        }
    }
}

/// How a proxy is named to people: its node id, or its address when it
/// sent none.
pub fn label(proxy: &Proxy) -> String {
    if proxy.node.is_empty() {
        proxy.peer.clone()
    } else {
        proxy.node.clone()
    }
}

/// Where `want` stands, given what the server serves and every open stream.
pub fn judge<'a>(
    catalog: &Catalog,
    proxies: impl Iterator<Item = &'a Proxy>,
    want: &Want,
) -> Delivery {
    let (resource, version) = (want.resource.as_str(), want.version.as_str());
    let entry = catalog.entries.get(resource);
    let serving = entry.and_then(|e| Some(e.served.as_ref()?.version.as_str()));
    if serving != Some(version) {
        if let Some(refusal) = entry
            .and_then(|e| e.refused.as_ref())
            .filter(|r| r.version.as_deref() == Some(version))
        {
            return Delivery::Refused {
                problems: refusal.problems.clone(),
            };
        }
        if entry.is_some_and(|e| e.previous.iter().any(|v| v == version)) {
            return Delivery::Superseded {
                serving: serving.unwrap_or_default().to_string(),
            };
        }
    }
    let mut subscribed = 0;
    let (mut acked, mut pending, mut nacks) = (Vec::new(), Vec::new(), Vec::new());
    for proxy in proxies {
        let Some(track) = proxy.resources.get(resource) else {
            continue;
        };
        subscribed += 1;
        if track.acked.as_ref().is_some_and(|a| a.version == version) {
            acked.push(label(proxy));
        } else if let Some(nack) = track.nack.as_ref().filter(|n| n.version == version) {
            nacks.push(NodeNack {
                node: label(proxy),
                message: nack.message.clone(),
            });
        } else {
            pending.push(label(proxy));
        }
    }
    if !nacks.is_empty() {
        return Delivery::Nacked { nacks };
    }
    let note = if serving != Some(version) {
        format!(
            "the server has not read version {version} (it serves {})",
            serving.unwrap_or("nothing")
        )
    } else if subscribed < want.proxies {
        format!(
            "{subscribed} proxies subscribed to {resource}, waiting for at least {}",
            want.proxies
        )
    } else if !pending.is_empty() {
        format!("{} of {subscribed} proxies have not ACKed", pending.len())
    } else {
        return Delivery::Acked { nodes: acked };
    };
    Delivery::Waiting { pending, note }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::catalog::Template;
    use crate::serve::fixture::{answer, catalog, subscribe};
    use crate::serve::json_text;
    use crate::serve::state::Subscriptions;
    use std::path::PathBuf;

    fn want(version: &str, proxies: usize) -> Want {
        Want {
            resource: "turnout".into(),
            version: version.into(),
            proxies,
        }
    }

    /// Proxies `nodes` subscribed to turnout, each sent what `c` serves.
    fn fleet(nodes: &[&str], c: &Catalog) -> (Subscriptions, Vec<u64>) {
        let mut r = Subscriptions::default();
        let ids = nodes.iter().map(|n| subscribe(&mut r, n, c, 2)).collect();
        (r, ids)
    }

    #[test]
    fn acked_only_when_every_subscribed_proxy_and_enough_of_them_have_it() {
        let c = catalog("v1", 1);
        let (mut r, ids) = fleet(&["a", "b"], &c);
        let v = judge(&c, r.proxies(), &want("v1", 1));
        assert_eq!(
            v,
            Delivery::Waiting {
                pending: vec!["a".into(), "b".into()],
                note: "2 of 2 proxies have not ACKed".into()
            }
        );
        answer(&mut r, ids[0], &c, "1", None, 3);
        answer(&mut r, ids[1], &c, "1", None, 3);
        assert_eq!(
            judge(&c, r.proxies(), &want("v1", 2)),
            Delivery::Acked {
                nodes: vec!["a".into(), "b".into()]
            }
        );
        let v = judge(&c, r.proxies(), &want("v1", 3));
        assert!(
            matches!(&v, Delivery::Waiting { note, .. } if note.contains("at least 3")),
            "{v:?}"
        );
        // No proxy proves nothing: an empty fleet is waited for, not acked.
        let empty = Subscriptions::default();
        let v = judge(&c, empty.proxies(), &want("v1", 1));
        assert!(
            matches!(&v, Delivery::Waiting { note, .. } if note.starts_with("0 proxies subscribed")),
            "{v:?}"
        );
    }

    #[test]
    fn a_nack_of_the_version_is_final_and_names_the_proxy() {
        let c = catalog("v1", 1);
        let (mut r, ids) = fleet(&["a", "b"], &c);
        answer(&mut r, ids[0], &c, "1", None, 3);
        answer(&mut r, ids[1], &c, "1", Some("Failed to load Wasm code"), 3);
        let v = judge(&c, r.proxies(), &want("v1", 1));
        assert_eq!(
            v,
            Delivery::Nacked {
                nacks: vec![NodeNack {
                    node: "b".into(),
                    message: "Failed to load Wasm code".into()
                }]
            }
        );
        assert!(v
            .message(&want("v1", 1))
            .contains("NACKed by b: Failed to load Wasm code"));
    }

    #[test]
    fn unread_refused_and_superseded_versions() {
        let mut c = catalog("v1", 1);
        let (r, _) = fleet(&["a"], &c);
        let v = judge(&c, r.proxies(), &want("v2", 1));
        assert!(
            matches!(&v, Delivery::Waiting { note, .. } if note.contains("has not read version v2 (it serves v1)")),
            "{v:?}"
        );
        c.refuse(
            "turnout",
            PathBuf::from("t.json"),
            Some("v2".into()),
            vec!["weight: bad".into()],
            2,
        );
        assert_eq!(
            judge(&c, r.proxies(), &want("v2", 1)),
            Delivery::Refused {
                problems: vec!["weight: bad".into()]
            }
        );
        let t = Template::Wasm {
            wasm: "m".into(),
            runtime: "r".into(),
        };
        c.serve(
            "turnout",
            PathBuf::from("t.json"),
            "v3".into(),
            (t.resource("turnout", "{}"), Default::default()),
            3,
        );
        assert_eq!(
            judge(&c, r.proxies(), &want("v1", 1)),
            Delivery::Superseded {
                serving: "v3".into()
            }
        );
    }

    #[test]
    fn every_delivery_survives_the_wire() {
        let w = want("v1", 3);
        let all = [
            Delivery::Acked {
                nodes: vec!["a".into()],
            },
            Delivery::Nacked {
                nacks: vec![NodeNack {
                    node: "a".into(),
                    message: "m \"q\"".into(),
                }],
            },
            Delivery::Refused {
                problems: vec!["p".into()],
            },
            Delivery::Superseded {
                serving: "v2".into(),
            },
            Delivery::Waiting {
                pending: vec!["b".into()],
                note: "n".into(),
            },
        ];
        for v in all {
            let text = json_text(&v.answer(&w));
            let back: WaitAnswer = serde_json::from_str(&text).unwrap();
            assert_eq!(back.message, v.message(&w));
            assert_eq!(back.delivery, v, "{text}");
        }
        assert!(serde_json::from_str::<WaitAnswer>("{}").is_err());
    }

    #[test]
    fn the_answer_is_written_as_it_always_was() {
        let nacked = Delivery::Nacked {
            nacks: vec![NodeNack {
                node: "c".into(),
                message: "bad".into(),
            }],
        };
        assert_eq!(
            json_text(&nacked.answer(&want("v1", 1))),
            r#"{
  "message": "turnout version v1: NACKed by c: bad",
  "nacks": [
    {
      "message": "bad",
      "node": "c"
    }
  ],
  "outcome": "nacked",
  "resource": "turnout",
  "version": "v1"
}"#
        );
        let waiting = Delivery::Waiting {
            pending: vec![],
            note: "n".into(),
        };
        let doc: serde_json::Value =
            serde_json::from_str(&json_text(&waiting.answer(&want("v1", 1)))).unwrap();
        assert_eq!(
            (&doc["outcome"], &doc["pending"]),
            (&"timeout".into(), &serde_json::json!([]))
        );
    }
}
