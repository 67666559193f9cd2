//! The server's own Prometheus metrics (`GET /metrics`), made from the
//! catalog and the subscriptions at each scrape.
//!
//! | series | labels | |
//! | --- | --- | --- |
//! | `turnout_xds_proxies` | | distinct node ids with an open stream |
//! | `turnout_xds_streams` | | open streams |
//! | `turnout_xds_served_version_info` | `resource`, `version` | 1 for what the server serves |
//! | `turnout_xds_refused_file` | `resource` | 1 while the file is not served as it is (refused, or gone) |
//! | `turnout_xds_acked_version_info` | `node`, `cluster`, `resource`, `version` | 1 per connected proxy: the version it ACKed last |
//! | `turnout_xds_proxies_behind` | `resource` | subscribed streams whose ACKed version is not the served one |
//! | `turnout_xds_nacks_total` | `node`, `resource` | NACKs received (kept after the proxy leaves) |
//! | `turnout_xds_pushes_total` | `resource` | responses sent carrying the resource |

use std::collections::BTreeSet;
use std::fmt::Write;

use super::catalog::Catalog;
use super::state::Subscriptions;

pub fn render(catalog: &Catalog, subs: &Subscriptions) -> String {
    let mut out = String::new();
    let nodes: BTreeSet<&str> = subs.proxies().map(|p| p.node.as_str()).collect();
    head(
        &mut out,
        "proxies",
        "gauge",
        "Proxies (distinct node ids) with an open xDS stream.",
    );
    line(&mut out, "proxies", &[], nodes.len() as u64);
    head(&mut out, "streams", "gauge", "Open xDS streams.");
    line(&mut out, "streams", &[], subs.proxies().count() as u64);

    let served = catalog.versions();
    head(
        &mut out,
        "served_version_info",
        "gauge",
        "The version the server serves, per resource.",
    );
    for (name, version) in &served {
        line(
            &mut out,
            "served_version_info",
            &[("resource", name), ("version", version)],
            1,
        );
    }
    head(
        &mut out,
        "refused_file",
        "gauge",
        "1 while a resource's file is not served as it is now (refused or gone).",
    );
    for (name, entry) in &catalog.entries {
        line(
            &mut out,
            "refused_file",
            &[("resource", name)],
            u64::from(entry.refused.is_some()),
        );
    }

    head(
        &mut out,
        "acked_version_info",
        "gauge",
        "The version each connected proxy ACKed last, per resource.",
    );
    for p in subs.proxies() {
        for (name, track) in &p.resources {
            if let Some(acked) = &track.acked {
                let labels = [
                    ("node", p.node.as_str()),
                    ("cluster", &p.cluster),
                    ("resource", name),
                    ("version", &acked.version),
                ];
                line(&mut out, "acked_version_info", &labels, 1);
            }
        }
    }
    head(
        &mut out,
        "proxies_behind",
        "gauge",
        "Subscribed streams whose ACKed version is not the served one.",
    );
    for (name, version) in &served {
        let behind = subs
            .proxies()
            .filter_map(|p| p.resources.get(name))
            .filter(|t| t.acked.as_ref().is_none_or(|a| a.version != *version))
            .count();
        line(
            &mut out,
            "proxies_behind",
            &[("resource", name)],
            behind as u64,
        );
    }

    head(
        &mut out,
        "nacks_total",
        "counter",
        "NACKs received, per node and resource.",
    );
    for ((node, name), n) in &subs.nacks {
        line(
            &mut out,
            "nacks_total",
            &[("node", node), ("resource", name)],
            *n,
        );
    }
    head(
        &mut out,
        "pushes_total",
        "counter",
        "Responses sent carrying the resource.",
    );
    for (name, n) in &subs.pushes {
        line(&mut out, "pushes_total", &[("resource", name)], *n);
    }
    out
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(
        out,
        "# HELP turnout_xds_{name} {help}\n# TYPE turnout_xds_{name} {kind}"
    );
}

fn line(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    let labels: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", labels.join(","))
    };
    let _ = writeln!(out, "turnout_xds_{name}{braces} {value}");
}

/// A label value as the exposition format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::fixture::{answer, catalog, subscribe};

    #[test]
    fn series_follow_the_subscriptions() {
        let c = catalog("v1", 1);
        let mut r = Subscriptions::default();
        for (node, error) in [("a", None), ("b\"x", Some("no"))] {
            let id = subscribe(&mut r, node, &c, 2);
            answer(&mut r, id, &c, "1", error, 3);
        }
        let text = render(&c, &r);
        for want in [
            "turnout_xds_proxies 2\n",
            "turnout_xds_served_version_info{resource=\"turnout\",version=\"v1\"} 1\n",
            "turnout_xds_refused_file{resource=\"turnout\"} 0\n",
            "turnout_xds_acked_version_info{node=\"a\",cluster=\"fleet\",resource=\"turnout\",version=\"v1\"} 1\n",
            "turnout_xds_proxies_behind{resource=\"turnout\"} 1\n",
            "turnout_xds_nacks_total{node=\"b\\\"x\",resource=\"turnout\"} 1\n",
            "turnout_xds_pushes_total{resource=\"turnout\"} 2\n",
            "# TYPE turnout_xds_nacks_total counter\n",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
    }
}
