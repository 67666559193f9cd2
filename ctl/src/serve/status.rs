//! The server's status as a document (`GET /status`, `turnoutctl status
//! --json`) and as the table `turnoutctl status` prints.
//!
//! The document: `now_ms`; `resources`, one per served name (`name`,
//! `file`, `version` and `since_ms` of what is served or null, `refused`:
//! null or `{version, problems, at_ms}` for the file as it is now);
//! `proxies`, one per open stream (`node`, `cluster`, `api` ("ecds" or
//! "ads"), `peer`, `stream`, `connected_at_ms`, `initial_version`: what it
//! had when it connected, and `resources`: per subscribed name its `state`
//! (waiting, pending, acked, nacked), `sent_version`, `sent_at_ms`,
//! `acked_version`, `acked_at_ms` and `nack`: null or `{version, message,
//! at_ms}`, the last one, kept after later ACKs). Times are Unix
//! milliseconds on the server's clock.

use serde_json::{json, Value};

use super::catalog::Catalog;
use super::hub::time;
use super::state::{Proxy, Stamp};

pub fn document<'a>(
    catalog: &Catalog,
    proxies: impl Iterator<Item = &'a Proxy>,
    now: u64,
) -> Value {
    let resources: Vec<Value> = catalog
        .entries
        .iter()
        .map(|(name, e)| {
            json!({
                "name": name,
                "file": e.file.display().to_string(),
                "version": e.served.as_ref().map(|s| &s.version),
                "since_ms": e.served.as_ref().map(|s| s.since),
                "refused": e.refused.as_ref().map(|r| json!({
                    "version": r.version, "problems": r.problems, "at_ms": r.at,
                })),
            })
        })
        .collect();
    let proxies: Vec<Value> = proxies.map(proxy).collect();
    json!({"now_ms": now, "resources": resources, "proxies": proxies})
}

fn proxy(p: &Proxy) -> Value {
    let version = |s: &Option<Stamp>| s.as_ref().map(|s| s.version.clone());
    let at = |s: &Option<Stamp>| s.as_ref().map(|s| s.at);
    let resources: Vec<Value> = p
        .resources
        .iter()
        .map(|(name, t)| {
            json!({
                "name": name,
                "state": t.state(),
                "sent_version": version(&t.sent),
                "sent_at_ms": at(&t.sent),
                "acked_version": version(&t.acked),
                "acked_at_ms": at(&t.acked),
                "nack": t.nack.as_ref().map(|n| json!({
                    "version": n.version, "message": n.message, "at_ms": n.at,
                })),
            })
        })
        .collect();
    json!({
        "node": p.node,
        "cluster": p.cluster,
        "api": p.api,
        "peer": p.peer,
        "stream": p.stream,
        "connected_at_ms": p.connected_at,
        "initial_version": p.initial_version,
        "resources": resources,
    })
}

/// The document as people read it: what is served, then one line per
/// proxy and resource.
pub fn table(doc: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let at = |v: &Value| v.as_u64().map_or("-".to_string(), time);
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let mut out = String::new();
    let mut served = vec![row(&["RESOURCE", "VERSION", "SINCE", "FILE"])];
    let mut refusals = Vec::new();
    for r in list(&doc["resources"]) {
        served.push(row(&[
            &s(&r["name"]),
            &s(&r["version"]),
            &at(&r["since_ms"]),
            &s(&r["file"]),
        ]));
        if r["refused"].is_object() {
            refusals.push(format!(
                "{}: not served as it is now (version {}, {}): {}\n",
                s(&r["name"]),
                s(&r["refused"]["version"]),
                at(&r["refused"]["at_ms"]),
                list(&r["refused"]["problems"])
                    .iter()
                    .map(s)
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
    out.push_str(&columns(&served));
    out.extend(refusals);
    let proxies = list(&doc["proxies"]);
    let mut nodes: Vec<String> = proxies.iter().map(|p| s(&p["node"])).collect();
    nodes.sort();
    nodes.dedup();
    out.push_str(&format!(
        "\n{} proxies connected ({} streams)\n",
        nodes.len(),
        proxies.len()
    ));
    if proxies.is_empty() {
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
    for p in &proxies {
        for r in list(&p["resources"]) {
            let nack = match &r["nack"] {
                Value::Null => "-".to_string(),
                n => format!(
                    "{} at {}: {}",
                    s(&n["version"]),
                    at(&n["at_ms"]),
                    s(&n["message"])
                ),
            };
            rows.push(row(&[
                &s(&p["node"]),
                &s(&p["cluster"]),
                &s(&p["api"]),
                &s(&r["name"]),
                &s(&r["state"]),
                &s(&r["acked_version"]),
                &s(&r["sent_version"]),
                &at(&p["connected_at_ms"]),
                &nack,
            ]));
        }
    }
    out.push_str(&columns(&rows));
    out
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
    use crate::serve::state::Registry;
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
        let mut r = Registry::default();
        for (node, error) in [("a", None), ("b", Some("Failed to load"))] {
            let id = subscribe(&mut r, node, &c, 1_500);
            answer(&mut r, id, &c, "1", error, 1_600);
        }
        let doc = document(&c, r.proxies(), 3_000);
        assert_eq!(doc["resources"][0]["version"], "v1");
        assert_eq!(doc["resources"][0]["refused"]["problems"][0], "weight: bad");
        let a = &doc["proxies"][0];
        assert_eq!(
            (a["node"].as_str(), a["api"].as_str()),
            (Some("a"), Some("ecds"))
        );
        assert_eq!(a["resources"][0]["state"], "acked");
        assert_eq!(a["resources"][0]["acked_at_ms"], 1_600);
        let b = &doc["proxies"][1]["resources"][0];
        assert_eq!(
            (b["state"].as_str(), b["acked_version"].as_str()),
            (Some("nacked"), None)
        );
        assert_eq!(b["nack"]["message"], "Failed to load");

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
}
