//! The server's status as a document (`GET /status`, `turnoutctl status
//! --json`) and as the table `turnoutctl status` prints. The document's
//! types are the server's to write and the client's to read; times are
//! Unix milliseconds on the server's clock.

use serde::{Deserialize, Serialize};

use super::catalog::{Catalog, Ms};
use super::state::{Proxy, Stamp};

/// What the server serves, and every open stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDocument {
    pub now_ms: Ms,
    /// One per served name.
    pub resources: Vec<ResourceStatus>,
    /// One per open stream.
    pub proxies: Vec<ProxyStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceStatus {
    pub name: String,
    pub file: String,
    /// What is served, and since when; null while nothing is.
    pub version: Option<String>,
    pub since_ms: Option<Ms>,
    /// Why the file as it is now is not served; null when it is.
    pub refused: Option<RefusalStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalStatus {
    /// The refused content's version; null when the file is gone.
    pub version: Option<String>,
    pub problems: Vec<String>,
    pub at_ms: Ms,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyStatus {
    pub node: String,
    pub cluster: String,
    /// `ecds` or `ads`.
    pub api: String,
    pub peer: String,
    pub stream: u64,
    pub connected_at_ms: Ms,
    /// What the proxy had when it connected.
    pub initial_version: Option<String>,
    /// One per subscribed name.
    pub resources: Vec<TrackStatus>,
}

/// One resource on one stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackStatus {
    pub name: String,
    /// `waiting`, `pending`, `acked` or `nacked` (see `state::Track`).
    pub state: String,
    pub sent_version: Option<String>,
    pub sent_at_ms: Option<Ms>,
    pub acked_version: Option<String>,
    pub acked_at_ms: Option<Ms>,
    /// The last NACK, kept after later ACKs.
    pub nack: Option<NackStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NackStatus {
    pub version: String,
    pub message: String,
    pub at_ms: Ms,
}

pub fn document<'a>(
    catalog: &Catalog,
    proxies: impl Iterator<Item = &'a Proxy>,
    now: Ms,
) -> StatusDocument {
    let resources = catalog
        .entries
        .iter()
        .map(|(name, e)| ResourceStatus {
            name: name.clone(),
            file: e.file.display().to_string(),
            version: e.served.as_ref().map(|s| s.version.clone()),
            since_ms: e.served.as_ref().map(|s| s.since),
            refused: e.refused.as_ref().map(|r| RefusalStatus {
                version: r.version.clone(),
                problems: r.problems.clone(),
                at_ms: r.at,
            }),
        })
        .collect();
    StatusDocument {
        now_ms: now,
        resources,
        proxies: proxies.map(proxy).collect(),
    }
}

fn proxy(p: &Proxy) -> ProxyStatus {
    let version = |s: &Option<Stamp>| s.as_ref().map(|s| s.version.clone());
    let at = |s: &Option<Stamp>| s.as_ref().map(|s| s.at);
    let resources = p
        .resources
        .iter()
        .map(|(name, t)| TrackStatus {
            name: name.clone(),
            state: t.state().to_string(),
            sent_version: version(&t.sent),
            sent_at_ms: at(&t.sent),
            acked_version: version(&t.acked),
            acked_at_ms: at(&t.acked),
            nack: t.nack.as_ref().map(|n| NackStatus {
                version: n.version.clone(),
                message: n.message.clone(),
                at_ms: n.at,
            }),
        })
        .collect();
    ProxyStatus {
        node: p.node.clone(),
        cluster: p.cluster.clone(),
        api: p.api.to_string(),
        peer: p.peer.clone(),
        stream: p.stream,
        connected_at_ms: p.connected_at,
        initial_version: p.initial_version.clone(),
        resources,
    }
}

/// The document as people read it: what is served, then one line per
/// proxy and resource.
pub fn table(doc: &StatusDocument) -> String {
    let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let at = |v: Option<Ms>| v.map_or("-".to_string(), time);
    let mut out = String::new();
    let mut served = vec![row(&["RESOURCE", "VERSION", "SINCE", "FILE"])];
    let mut refusals = Vec::new();
    for r in &doc.resources {
        served.push(row(&[&r.name, &s(&r.version), &at(r.since_ms), &r.file]));
        if let Some(refused) = &r.refused {
            refusals.push(format!(
                "{}: not served as it is now (version {}, {}): {}\n",
                r.name,
                s(&refused.version),
                time(refused.at_ms),
                refused.problems.join("; ")
            ));
        }
    }
    out.push_str(&columns(&served));
    out.extend(refusals);
    let mut nodes: Vec<&str> = doc.proxies.iter().map(|p| p.node.as_str()).collect();
    nodes.sort();
    nodes.dedup();
    out.push_str(&format!(
        "\n{} proxies connected ({} streams)\n",
        nodes.len(),
        doc.proxies.len()
    ));
    if doc.proxies.is_empty() {
        return out;
    }
    let mut rows = vec![row(&[
        "NODE",
        "CLUSTER",
        "API",
        "RESOURCE",
        "STATE",
        "ACKED",
        "SENT",
        "CONNECTED",
        "LAST NACK",
    ])];
    for p in &doc.proxies {
        for r in &p.resources {
            let nack = r.nack.as_ref().map_or("-".to_string(), |n| {
                format!("{} at {}: {}", n.version, time(n.at_ms), n.message)
            });
            rows.push(row(&[
                &p.node,
                &p.cluster,
                &p.api,
                &r.name,
                &r.state,
                &s(&r.acked_version),
                &s(&r.sent_version),
                &time(p.connected_at_ms),
                &nack,
            ]));
        }
    }
    out.push_str(&columns(&rows));
    out
}

/// `ms` as RFC 3339 UTC with milliseconds: `2026-12-01T09:00:00.250Z`.
pub fn time(ms: Ms) -> String {
    let secs = crate::show::rfc3339((ms / 1000) as i64);
    format!("{}.{:03}Z", secs.trim_end_matches('Z'), ms % 1000)
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Rows as aligned columns (the last one is not padded).
fn columns(rows: &[Vec<String>]) -> String {
    let mut widths = Vec::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| match i + 1 == r.len() {
                true => c.clone(),
                false => format!("{c:<w$}", w = widths[i]),
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::fixture::{answer, catalog, subscribe};
    use crate::serve::json_text;
    use crate::serve::state::Subscriptions;
    use serde_json::Value;
    use std::path::PathBuf;

    #[test]
    fn the_document_and_its_table_show_served_refused_and_each_proxy() {
        let mut c = catalog("v1", 1_000);
        let file = PathBuf::from("/d/turnout.json");
        c.refuse(
            "turnout",
            file,
            Some("v2".into()),
            vec!["weight: bad".into()],
            2_000,
        );
        let mut subs = Subscriptions::default();
        for (node, error) in [("a", None), ("b", Some("Failed to load"))] {
            let id = subscribe(&mut subs, node, &c, 1_500);
            answer(&mut subs, id, &c, "1", error, 1_600);
        }
        let doc = document(&c, subs.proxies(), 3_000);
        let wire: Value = serde_json::from_str(&json_text(&doc)).unwrap();
        assert_eq!(wire["resources"][0]["version"], "v1");
        assert_eq!(
            wire["resources"][0]["refused"]["problems"][0],
            "weight: bad"
        );
        let a = &wire["proxies"][0];
        assert_eq!(
            (a["node"].as_str(), a["api"].as_str()),
            (Some("a"), Some("ecds"))
        );
        assert_eq!(a["resources"][0]["state"], "acked");
        assert_eq!(a["resources"][0]["acked_at_ms"], 1_600);
        let b = &wire["proxies"][1]["resources"][0];
        assert_eq!(
            (b["state"].as_str(), b["acked_version"].as_str()),
            (Some("nacked"), None)
        );
        assert_eq!(b["nack"]["message"], "Failed to load");
        assert_eq!(serde_json::from_value::<StatusDocument>(wire).unwrap(), doc);

        let text = table(&doc);
        assert!(text.contains("turnout: not served as it is now (version v2, 1970-01-01T00:00:02.000Z): weight: bad"), "{text}");
        assert!(text.contains("2 proxies connected (2 streams)"), "{text}");
        let line = text.lines().find(|l| l.starts_with("b ")).unwrap();
        assert!(
            line.contains("nacked")
                && line.ends_with("v1 at 1970-01-01T00:00:01.600Z: Failed to load"),
            "{line}"
        );
    }

    /// `status --json` is scripted against: the bytes (keys sorted, two
    /// spaces, nulls written) are what they were before the types.
    #[test]
    fn the_document_is_written_as_it_always_was() {
        let c = catalog("v1", 1_000);
        let mut subs = Subscriptions::default();
        subscribe(&mut subs, "a", &c, 1_500);
        let doc = document(&c, subs.proxies(), 3_000);
        assert_eq!(json_text(&doc), GOLDEN);
    }

    const GOLDEN: &str = r#"{
  "now_ms": 3000,
  "proxies": [
    {
      "api": "ecds",
      "cluster": "fleet",
      "connected_at_ms": 1500,
      "initial_version": "",
      "node": "a",
      "peer": "127.0.0.1:9",
      "resources": [
        {
          "acked_at_ms": null,
          "acked_version": null,
          "nack": null,
          "name": "turnout",
          "sent_at_ms": 1500,
          "sent_version": "v1",
          "state": "pending"
        }
      ],
      "stream": 1
    }
  ],
  "resources": [
    {
      "file": "/d/turnout.json",
      "name": "turnout",
      "refused": null,
      "since_ms": 1000,
      "version": "v1"
    }
  ]
}"#;
}
