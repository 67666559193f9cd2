//! Waiting until every proxy has a version: the judgement the server makes
//! after each change (pure), and the verdict as it travels to the caller.
//!
//! "Every proxy" is every open stream subscribed to the resource, and at
//! least `proxies` of them: with none connected nothing is proven, so the
//! wait goes on (until its deadline) rather than succeed on an empty fleet.

use serde_json::{json, Value};

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

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every subscribed proxy (at least `Want::proxies`) ACKed the version.
    Acked { nodes: Vec<String> },
    /// Proxies refused it: (node, Envoy's message). Final: the server does
    /// not send a NACKed response again.
    Nacked { nacks: Vec<(String, String)> },
    /// The server refused the file with this version: it is not served.
    Refused { problems: Vec<String> },
    /// The server serves another version now: the file changed again.
    Superseded { serving: String },
    /// Not yet: the proxies that have not ACKed, and why. Sent to the caller
    /// only when its deadline passes, as a timeout.
    Waiting { pending: Vec<String>, note: String },
}

impl Verdict {
    pub fn is_final(&self) -> bool {
        !matches!(self, Verdict::Waiting { .. })
    }

    /// One line for a person: what happened to `want`.
    pub fn message(&self, want: &Want) -> String {
        let what = format!("{} version {}", want.resource, want.version);
        match self {
            Verdict::Acked { nodes } => format!(
                "{what}: ACKed by all {} subscribed proxies ({})",
                nodes.len(),
                nodes.join(", ")
            ),
            Verdict::Nacked { nacks } => {
                let each: Vec<String> = nacks.iter().map(|(n, m)| format!("{n}: {m}")).collect();
                format!("{what}: NACKed by {}", each.join("; "))
            }
            Verdict::Refused { problems } => format!(
                "{what}: the server refused the file, it is not served: {}",
                problems.join("; ")
            ),
            Verdict::Superseded { serving } => {
                format!("{what}: superseded, the server now serves version {serving}")
            }
            Verdict::Waiting { pending, note } if pending.is_empty() => {
                format!("{what}: timed out: {note}")
            }
            Verdict::Waiting { pending, note } => format!(
                "{what}: timed out: {note}; not ACKed by {}",
                pending.join(", ")
            ),
        }
    }

    /// The answer on the wire (`GET /wait`).
    pub fn to_json(&self, want: &Want) -> Value {
        let mut doc = json!({
            "resource": want.resource,
            "version": want.version,
            "message": self.message(want),
        });
        let (outcome, fields) = match self {
            Verdict::Acked { nodes } => ("acked", json!({"nodes": nodes})),
            Verdict::Nacked { nacks } => (
                "nacked",
                json!({"nacks": nacks.iter().map(|(n, m)| json!({"node": n, "message": m})).collect::<Vec<_>>()}),
            ),
            Verdict::Refused { problems } => ("refused", json!({"problems": problems})),
            Verdict::Superseded { serving } => ("superseded", json!({"serving": serving})),
            Verdict::Waiting { pending, note } => {
                ("timeout", json!({"pending": pending, "note": note}))
            }
        };
        doc["outcome"] = outcome.into();
        if let (Some(doc), Value::Object(fields)) = (doc.as_object_mut(), fields) {
            doc.extend(fields);
        }
        doc
    }

    /// Reads `to_json`'s answer back.
    pub fn from_json(doc: &Value) -> Result<Verdict, String> {
        let strings = |key: &str| -> Vec<String> {
            doc[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Ok(match doc["outcome"].as_str() {
            Some("acked") => Verdict::Acked {
                nodes: strings("nodes"),
            },
            Some("nacked") => Verdict::Nacked {
                nacks: doc["nacks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| (text(&n["node"]), text(&n["message"])))
                    .collect(),
            },
            Some("refused") => Verdict::Refused {
                problems: strings("problems"),
            },
            Some("superseded") => Verdict::Superseded {
                serving: text(&doc["serving"]),
            },
            Some("timeout") => Verdict::Waiting {
                pending: strings("pending"),
                note: text(&doc["note"]),
            },
            _ => return Err(format!("not a wait answer: {doc}")),
        })
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
) -> Verdict {
    let (resource, version) = (want.resource.as_str(), want.version.as_str());
    let entry = catalog.entries.get(resource);
    let serving = entry.and_then(|e| Some(e.served.as_ref()?.version.as_str()));
    if serving != Some(version) {
        if let Some(refusal) = entry
            .and_then(|e| e.refused.as_ref())
            .filter(|r| r.version.as_deref() == Some(version))
        {
            return Verdict::Refused {
                problems: refusal.problems.clone(),
            };
        }
        if entry.is_some_and(|e| e.previous.iter().any(|v| v == version)) {
            return Verdict::Superseded {
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
            nacks.push((label(proxy), nack.message.clone()));
        } else {
            pending.push(label(proxy));
        }
    }
    if !nacks.is_empty() {
        return Verdict::Nacked { nacks };
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
        return Verdict::Acked { nodes: acked };
    };
    Verdict::Waiting { pending, note }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::catalog::Template;
    use crate::serve::fixture::{answer, catalog, subscribe};
    use crate::serve::state::Registry;
    use std::path::PathBuf;

    fn want(version: &str, proxies: usize) -> Want {
        Want {
            resource: "turnout".into(),
            version: version.into(),
            proxies,
        }
    }

    /// Proxies `nodes` subscribed to turnout, each sent what `c` serves.
    fn fleet(nodes: &[&str], c: &Catalog) -> (Registry, Vec<u64>) {
        let mut r = Registry::default();
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
            Verdict::Waiting {
                pending: vec!["a".into(), "b".into()],
                note: "2 of 2 proxies have not ACKed".into()
            }
        );
        answer(&mut r, ids[0], &c, "1", None, 3);
        answer(&mut r, ids[1], &c, "1", None, 3);
        assert_eq!(
            judge(&c, r.proxies(), &want("v1", 2)),
            Verdict::Acked {
                nodes: vec!["a".into(), "b".into()]
            }
        );
        let v = judge(&c, r.proxies(), &want("v1", 3));
        assert!(
            matches!(&v, Verdict::Waiting { note, .. } if note.contains("at least 3")),
            "{v:?}"
        );
        // No proxy proves nothing: an empty fleet is waited for, not acked.
        let empty = Registry::default();
        let v = judge(&c, empty.proxies(), &want("v1", 1));
        assert!(
            matches!(&v, Verdict::Waiting { note, .. } if note.starts_with("0 proxies subscribed")),
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
            Verdict::Nacked {
                nacks: vec![("b".into(), "Failed to load Wasm code".into())]
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
            matches!(&v, Verdict::Waiting { note, .. } if note.contains("has not read version v2 (it serves v1)")),
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
            Verdict::Refused {
                problems: vec!["weight: bad".into()]
            }
        );
        let t = Template {
            wasm: "m".into(),
            runtime: "r".into(),
        };
        c.serve(
            "turnout",
            PathBuf::from("t.json"),
            "v3".into(),
            t.resource("turnout", "{}"),
            3,
        );
        assert_eq!(
            judge(&c, r.proxies(), &want("v1", 1)),
            Verdict::Superseded {
                serving: "v3".into()
            }
        );
    }

    #[test]
    fn every_verdict_survives_the_wire() {
        let w = want("v1", 3);
        let all = [
            Verdict::Acked {
                nodes: vec!["a".into()],
            },
            Verdict::Nacked {
                nacks: vec![("a".into(), "m \"q\"".into())],
            },
            Verdict::Refused {
                problems: vec!["p".into()],
            },
            Verdict::Superseded {
                serving: "v2".into(),
            },
            Verdict::Waiting {
                pending: vec!["b".into()],
                note: "n".into(),
            },
        ];
        for v in all {
            let doc = v.to_json(&w);
            assert_eq!(doc["message"], v.message(&w));
            assert_eq!(Verdict::from_json(&doc).unwrap(), v, "{doc}");
        }
        assert!(Verdict::from_json(&serde_json::json!({})).is_err());
    }
}
