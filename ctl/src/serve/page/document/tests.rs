use super::*;
use crate::scrape::sample;
use crate::serve::fixture::{answer, catalog, catalog_of, subscribe};
use crate::serve::json_text;
use crate::serve::page::splits::PageTarget;
use crate::serve::state::Subscriptions;
use turnout_prometheus::Labels;

/// A split at 30 % with two pins, a guard and a shadow; another without.
const CONFIG: &str = r#"{"splits": [
  {"name": "users", "match": {"route": "users"}, "stable": "legacy",
   "targets": [{"cluster": "fastapi", "weight": 30}],
   "pin": {"fastapi": ["qa-1", "qa-2"]},
   "guard": {"max_error_rate": 0.01},
   "shadow": {"cluster": "fastapi"}},
  {"name": "orders", "match": {"prefix": "/orders"}, "stable": "old",
   "targets": [{"cluster": "new", "weight": 0.5}], "rollback": true}]}"#;

fn read(samples: Vec<((String, Labels), f64)>) -> Figures {
    Figures::Read {
        source: "Prometheus at http://p:9090".into(),
        at: 5_000,
        samples: samples.into_iter().collect(),
    }
}

fn track<'d>(doc: &'d PageDocument, node: &str) -> &'d PageTrack {
    let proxy = doc.proxies.iter().find(|p| p.node == node);
    &proxy
        .unwrap_or_else(|| panic!("{node}: {doc:#?}"))
        .resources[0]
}

#[test]
fn each_proxy_is_acked_behind_nacked_or_disconnected_with_envoys_message() {
    let c = catalog("v1", 1_000);
    let mut subs = Subscriptions::default();
    let a = subscribe(&mut subs, "a", &c, 1_500);
    answer(&mut subs, a, &c, "1", None, 1_600);
    let b = subscribe(&mut subs, "<script>alert(1)</script>", &c, 1_500);
    answer(
        &mut subs,
        b,
        &c,
        "1",
        Some("Failed to load <b>wasm</b>"),
        1_700,
    );
    subscribe(&mut subs, "c", &c, 1_800);
    let gone = subscribe(&mut subs, "d", &c, 1_000);
    answer(&mut subs, gone, &c, "1", None, 1_100);
    subs.close(gone, 1_900);
    // `a` left once and came back: it is shown connected, once.
    let old_a = subscribe(&mut subs, "a", &c, 900);
    subs.close(old_a, 1_000);

    let doc = document(
        &c,
        subs.proxies(),
        subs.departed.iter(),
        &Figures::Unconfigured,
        2_000,
    );
    let nodes: Vec<&str> = doc.proxies.iter().map(|p| p.node.as_str()).collect();
    assert_eq!(nodes, ["<script>alert(1)</script>", "a", "c", "d"]);

    let a = track(&doc, "a");
    assert_eq!((a.state, a.label.as_str()), (State::Acked, "ACKed"));
    assert_eq!(a.detail, "has v1 since 1970-01-01T00:00:01.600Z");
    let b = track(&doc, "<script>alert(1)</script>");
    assert_eq!((b.state, b.label.as_str()), (State::Nacked, "NACKed"));
    assert_eq!(b.nack.as_deref(), Some("Failed to load <b>wasm</b>"));
    assert_eq!(
        b.detail,
        "refused v1 at 1970-01-01T00:00:01.700Z; keeps nothing from this server"
    );
    let c_track = track(&doc, "c");
    assert_eq!(
        (c_track.state, c_track.nack.as_deref()),
        (State::Behind, None)
    );
    assert_eq!(
        c_track.detail,
        "has nothing from this server; v1 sent at 1970-01-01T00:00:01.800Z, no answer yet"
    );
    let d = &doc.proxies[3];
    assert!(!d.connected);
    assert_eq!(d.connection, "disconnected at 1970-01-01T00:00:01.900Z");
    assert_eq!(d.resources[0].state, State::Disconnected);
    assert_eq!(d.resources[0].detail, "had v1 when it left");

    let r = &doc.resources[0];
    assert_eq!(
        (r.name.as_str(), r.version.as_deref()),
        ("turnout", Some("v1"))
    );
    assert_eq!(r.tally, "1 ACKed · 1 behind · 1 NACKed · 1 disconnected");
    assert!(r.splits.is_empty(), "{{}} has no split");

    // The strings travel as JSON strings, markup and all: the page's
    // script puts them on the screen as text.
    let wire = json_text(&doc);
    assert!(
        wire.contains(r#""node": "<script>alert(1)</script>""#),
        "{wire}"
    );
    let back: PageDocument = serde_json::from_str(&wire).unwrap();
    assert_eq!(back, doc);
}

#[test]
fn a_proxy_is_behind_once_a_new_version_is_served_and_waiting_when_none_is() {
    let c = catalog("v1", 1_000);
    let mut subs = Subscriptions::default();
    let a = subscribe(&mut subs, "a", &c, 1_500);
    answer(&mut subs, a, &c, "1", None, 1_600);
    let next = catalog("v2", 2_000);
    let doc = document(
        &next,
        subs.proxies(),
        subs.departed.iter(),
        &Figures::Unconfigured,
        2_001,
    );
    let a_track = track(&doc, "a");
    assert_eq!(a_track.state, State::Behind);
    assert_eq!(a_track.detail, "has v1; v2 not sent yet");

    let none = crate::serve::catalog::Catalog::default();
    let doc = document(
        &none,
        subs.proxies(),
        subs.departed.iter(),
        &Figures::Unconfigured,
        2_001,
    );
    assert_eq!(track(&doc, "a").state, State::Waiting);
    assert!(doc.resources.is_empty());
}

#[test]
fn splits_show_weights_rollback_pins_guard_and_shadow_from_the_proxies_series() {
    let c = catalog_of(CONFIG, "v1", 1_000);
    let subs = Subscriptions::default();
    let figures = read(vec![
        sample("turnout_guard_tripped", &[("split", "users")], 1.0),
        sample("turnout_guard_tripped", &[("split", "orders")], 0.0),
        sample("turnout_shadow_tripped", &[("split", "users")], 0.0),
        sample(
            "turnout_shadow_total",
            &[
                ("split", "users"),
                ("cluster", "fastapi"),
                ("outcome", "match"),
            ],
            996.0,
        ),
        sample(
            "turnout_shadow_total",
            &[
                ("split", "users"),
                ("cluster", "fastapi"),
                ("outcome", "mismatch"),
            ],
            4.0,
        ),
        sample(
            "turnout_shadow_total",
            &[
                ("split", "users"),
                ("cluster", "fastapi"),
                ("outcome", "timeout"),
            ],
            2.0,
        ),
        sample(
            "turnout_shadow_total",
            &[
                ("split", "users"),
                ("cluster", "other"),
                ("outcome", "mismatch"),
            ],
            1000.0,
        ),
    ]);
    let doc = document(&c, subs.proxies(), subs.departed.iter(), &figures, 2_000);
    let splits = &doc.resources[0].splits;
    let users = &splits[0];
    assert_eq!(
        (
            users.name.as_str(),
            users.matcher.as_str(),
            users.stable.as_str()
        ),
        ("users", "route \"users\"", "legacy")
    );
    assert_eq!(
        users.targets,
        [PageTarget {
            cluster: "fastapi".into(),
            weight: "30 %".into(),
            schedule: String::new()
        }]
    );
    assert_eq!((users.rollback, users.pins), (false, 2));
    assert_eq!(
        (users.guard.as_str(), users.guard_tripped),
        ("tripped on 1 proxy", Some(true))
    );
    let shadow = users.shadow.as_ref().expect("a shadow");
    assert!(
        shadow.describe.starts_with("shadow to fastapi"),
        "{}",
        shadow.describe
    );
    assert_eq!(
        shadow.mismatch,
        "mismatch 0.40 % of 1000 compared (95 %: 0.16–1.02 %) · 2 failed"
    );
    assert_eq!(
        (shadow.mismatch_rate, shadow.tripped),
        (Some(0.004), Some(false))
    );

    let orders = &splits[1];
    assert_eq!(orders.targets[0].weight, "0.5 %");
    assert!(orders.rollback);
    assert_eq!(
        (orders.guard.as_str(), orders.guard_tripped),
        ("no guard", None)
    );
    assert_eq!(orders.shadow, None);
    assert_eq!(
        doc.figures,
        FiguresNote {
            source: "Guard trips and shadow mismatch rates from Prometheus at http://p:9090".into(),
            at: Some("1970-01-01T00:00:05.000Z".into()),
            error: None
        }
    );

    // Nothing read yet: no copy compared, the guard not tripped.
    let doc = document(
        &c,
        subs.proxies(),
        subs.departed.iter(),
        &read(vec![]),
        2_000,
    );
    let users = &doc.resources[0].splits[0];
    assert_eq!(
        (users.guard.as_str(), users.guard_tripped),
        ("not tripped", Some(false))
    );
    let shadow = users.shadow.as_ref().unwrap();
    assert_eq!(shadow.mismatch, "no copy compared yet (0 failed)");
    assert_eq!(shadow.mismatch_rate, None);
}

#[test]
fn without_a_source_the_page_says_where_the_figures_come_from() {
    let c = catalog_of(CONFIG, "v1", 1_000);
    let subs = Subscriptions::default();
    let doc = document(
        &c,
        subs.proxies(),
        subs.departed.iter(),
        &Figures::Unconfigured,
        2_000,
    );
    let users = &doc.resources[0].splits[0];
    assert_eq!(users.guard_tripped, None);
    assert_eq!(users.guard, "not read (see below)");
    assert_eq!(
        users.shadow.as_ref().unwrap().mismatch,
        "not read (see below)"
    );
    assert!(
        doc.figures
            .source
            .contains("--prometheus URL or --envoy-admin URL")
            && doc.figures.source.contains("turnout_guard_tripped"),
        "{}",
        doc.figures.source
    );
    assert_eq!(doc.figures.at, None);

    let failed = Figures::Failed {
        source: "the admin endpoint of 1 proxy (http://127.0.0.1:1)".into(),
        at: 3_000,
        error: "cannot reach the server".into(),
    };
    let doc = document(&c, subs.proxies(), subs.departed.iter(), &failed, 4_000);
    assert_eq!(
        doc.resources[0].splits[0].guard,
        "unknown: the metrics could not be read"
    );
    assert_eq!(
        doc.figures.error.as_deref(),
        Some("cannot reach the server")
    );
}
