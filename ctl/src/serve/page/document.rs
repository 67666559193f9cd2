//! What the server's page shows (`GET /page.json`), made without I/O from
//! what is served (the catalog, each config parsed), what each proxy did
//! with it (the subscriptions, and the proxies that left) and the figures
//! read from the proxies' own series (guard trips, shadow copies). Every
//! text a person reads is written here; the page's script only puts the
//! document's strings on the screen.

use serde::{Deserialize, Serialize};
use turnout::plan::SplitPlan;
use turnout::stats::sanitize;

use crate::scrape::{sum, wilson, Samples};
use crate::serve::catalog::{Catalog, Ms};
use crate::serve::departed::Departed;
use crate::serve::state::{Proxy, Track};
use crate::serve::status::time;
use crate::show;

/// The series the page reads from the proxies' metrics, and their labels.
pub const SERIES: [&str; 3] = [
    "turnout_guard_tripped",
    "turnout_shadow_tripped",
    "turnout_shadow_total",
];
pub const LABELS: [&str; 3] = ["split", "cluster", "outcome"];

/// The figures the proxies' series gave, as last read.
#[derive(Clone, Debug, PartialEq)]
pub enum Figures {
    /// The server was not told where the proxies' metrics are.
    Unconfigured,
    Read {
        source: String,
        at: Ms,
        samples: Samples,
    },
    Failed {
        source: String,
        at: Ms,
        error: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageDocument {
    /// When the document was made (UTC).
    pub now: String,
    pub resources: Vec<PageResource>,
    /// A row per open stream, then per proxy that left and has not come back.
    pub proxies: Vec<PageProxy>,
    pub figures: FiguresNote,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageResource {
    pub name: String,
    pub file: String,
    /// What is served; null while nothing is.
    pub version: Option<String>,
    pub since: Option<String>,
    /// Why the file as it is now is not served; null when it is.
    pub refused: Option<String>,
    /// `2 ACKed · 1 NACKed`: the proxies by state.
    pub tally: String,
    /// The served config's splits.
    pub splits: Vec<PageSplit>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageSplit {
    pub name: String,
    /// `route "users"`.
    pub matcher: String,
    pub stable: String,
    pub targets: Vec<PageTarget>,
    pub rollback: bool,
    /// Users pinned to a cluster.
    pub pins: usize,
    /// `no guard`, `not tripped`, `tripped on 1 proxy`, or why unknown.
    pub guard: String,
    /// Whether a proxy reports the guard tripped; null when unknown.
    pub guard_tripped: Option<bool>,
    pub shadow: Option<PageShadow>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageTarget {
    pub cluster: String,
    /// `25 %`.
    pub weight: String,
    /// What a schedule does next (empty for a fixed weight).
    pub schedule: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageShadow {
    /// What is copied and how it is compared (`shadow to …`).
    pub describe: String,
    /// `mismatch 0.40 % of 1000 compared (95 %: …)`, or why unknown.
    pub mismatch: String,
    /// Mismatches over compared copies; null when none was compared or
    /// the figures were not read.
    pub mismatch_rate: Option<f64>,
    pub tripped: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageProxy {
    pub node: String,
    pub cluster: String,
    pub api: String,
    pub peer: String,
    pub connected: bool,
    /// `connected since T` or `disconnected at T`.
    pub connection: String,
    pub resources: Vec<PageTrack>,
}

/// One resource on one proxy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageTrack {
    pub resource: String,
    pub state: State,
    /// `ACKed`, `behind`, `NACKed`, `waiting`, `disconnected`.
    pub label: String,
    /// The version it has, and what it is waiting for or did.
    pub detail: String,
    /// Envoy's message, when the proxy refused what is served.
    pub nack: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Has what is served.
    Acked,
    /// Has something older, and has not refused what is served.
    Behind,
    /// Refused what is served (keeps what it had).
    Nacked,
    /// Nothing is served for the resource yet.
    Waiting,
    /// Its stream closed; it keeps what it had.
    Disconnected,
}

impl State {
    fn label(self) -> &'static str {
        match self {
            State::Acked => "ACKed",
            State::Behind => "behind",
            State::Nacked => "NACKed",
            State::Waiting => "waiting",
            State::Disconnected => "disconnected",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FiguresNote {
    /// Where guard trips and mismatch rates come from, or how to show them.
    pub source: String,
    /// When they were last read (or tried); null when they are not read.
    pub at: Option<String>,
    /// Why the last read failed.
    pub error: Option<String>,
}

/// The page's document at `now`.
pub fn document<'a>(
    catalog: &Catalog,
    proxies: impl Iterator<Item = &'a Proxy>,
    departed: impl Iterator<Item = &'a Departed>,
    figures: &Figures,
    now: Ms,
) -> PageDocument {
    let served = catalog.versions();
    let mut rows: Vec<PageProxy> = proxies.map(|p| connected(p, &served)).collect();
    rows.sort_by(|a, b| a.node.cmp(&b.node));
    let gone: Vec<PageProxy> = departed
        .filter(|d| !rows.iter().any(|r| r.node == d.node))
        .map(disconnected)
        .collect();
    rows.extend(gone);
    let resources = catalog
        .entries
        .iter()
        .map(|(name, entry)| {
            let served = entry.served.as_ref();
            let splits = served.map_or_else(Vec::new, |s| {
                let now_s = (now / 1000) as i64;
                s.plan
                    .splits
                    .iter()
                    .map(|split| page_split(split, figures, now_s))
                    .collect()
            });
            PageResource {
                name: name.clone(),
                file: entry.file.display().to_string(),
                version: served.map(|s| s.version.clone()),
                since: served.map(|s| time(s.since)),
                refused: entry.refused.as_ref().map(|r| r.problems.join("; ")),
                tally: tally(name, &rows),
                splits,
            }
        })
        .collect();
    PageDocument {
        now: time(now),
        resources,
        proxies: rows,
        figures: note(figures),
    }
}

fn connected(p: &Proxy, served: &std::collections::BTreeMap<String, String>) -> PageProxy {
    let resources = p
        .resources
        .iter()
        .map(|(name, track)| page_track(name, track, served.get(name)))
        .collect();
    PageProxy {
        node: p.node.clone(),
        cluster: p.cluster.clone(),
        api: p.api.to_string(),
        peer: p.peer.clone(),
        connected: true,
        connection: format!("connected since {}", time(p.connected_at)),
        resources,
    }
}

fn disconnected(d: &Departed) -> PageProxy {
    let resources = d
        .resources
        .iter()
        .map(|(name, track)| PageTrack {
            resource: name.clone(),
            state: State::Disconnected,
            label: State::Disconnected.label().into(),
            detail: format!("had {} when it left", has(track)),
            nack: None,
        })
        .collect();
    PageProxy {
        node: d.node.clone(),
        cluster: d.cluster.clone(),
        api: d.api.to_string(),
        peer: d.peer.clone(),
        connected: false,
        connection: format!("disconnected at {}", time(d.left_at)),
        resources,
    }
}

/// The version a track's proxy has, as people read it.
fn has(track: &Track) -> String {
    track
        .acked
        .as_ref()
        .map_or("nothing from this server".into(), |a| a.version.clone())
}

fn page_track(name: &str, track: &Track, served: Option<&String>) -> PageTrack {
    let acked = track.acked.as_ref().map(|a| &a.version);
    let (state, detail, nack) = match (served, track.state()) {
        (None, _) => (State::Waiting, "nothing is served yet".to_string(), None),
        (Some(_), "nacked") => {
            let n = track.nack.as_ref();
            let refused = n.map_or(String::new(), |n| {
                format!("refused {} at {}; ", n.version, time(n.at))
            });
            let detail = format!("{refused}keeps {}", has(track));
            (State::Nacked, detail, n.map(|n| n.message.clone()))
        }
        (Some(v), _) if acked == Some(v) => {
            let at = track.acked.as_ref().map_or(0, |a| a.at);
            (State::Acked, format!("has {v} since {}", time(at)), None)
        }
        (Some(v), _) => {
            let sent = match &track.sent {
                Some(s) if s.version == *v => format!("sent at {}, no answer yet", time(s.at)),
                _ => "not sent yet".into(),
            };
            let detail = format!("has {}; {v} {sent}", has(track));
            (State::Behind, detail, None)
        }
    };
    PageTrack {
        resource: name.to_string(),
        state,
        label: state.label().into(),
        detail,
        nack,
    }
}

/// `2 ACKed · 1 NACKed`, or `no proxy`.
fn tally(resource: &str, rows: &[PageProxy]) -> String {
    let states: Vec<State> = rows
        .iter()
        .flat_map(|p| &p.resources)
        .filter(|t| t.resource == resource)
        .map(|t| t.state)
        .collect();
    let counts: Vec<String> = [
        State::Acked,
        State::Behind,
        State::Nacked,
        State::Waiting,
        State::Disconnected,
    ]
    .into_iter()
    .map(|s| (s, states.iter().filter(|t| **t == s).count()))
    .filter(|(_, n)| *n > 0)
    .map(|(s, n)| format!("{n} {}", s.label()))
    .collect();
    if counts.is_empty() {
        "no proxy".into()
    } else {
        counts.join(" · ")
    }
}

fn page_split(split: &SplitPlan, figures: &Figures, now_s: i64) -> PageSplit {
    let targets = show::targets_at(split, now_s)
        .iter()
        .map(|t| PageTarget {
            cluster: t.cluster.to_string(),
            weight: show::pct(t.weight.into()),
            schedule: t
                .next()
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .to_string(),
        })
        .collect();
    let label = sanitize(&split.name);
    let tripped = |series: &str| -> Result<u64, String> {
        match figures {
            Figures::Read { samples, .. } => {
                Ok(sum(samples, series, &[("split", label.as_str())]) as u64)
            }
            _ => Err(unknown(figures)),
        }
    };
    let (guard, guard_tripped) = match (&split.guard, tripped("turnout_guard_tripped")) {
        (None, _) => ("no guard".to_string(), None),
        (Some(_), Err(why)) => (why, None),
        (Some(_), Ok(0)) => ("not tripped".to_string(), Some(false)),
        (Some(_), Ok(n)) => (format!("tripped on {}", proxies(n)), Some(true)),
    };
    let shadow = split.shadow.as_ref().map(|shadow| {
        let copies = |outcome: &str| -> u64 {
            let Figures::Read { samples, .. } = figures else {
                return 0;
            };
            let cluster = sanitize(&shadow.cluster);
            let want = [
                ("split", label.as_str()),
                ("cluster", cluster.as_str()),
                ("outcome", outcome),
            ];
            sum(samples, "turnout_shadow_total", &want) as u64
        };
        let (mismatched, compared) = (copies("mismatch"), copies("match") + copies("mismatch"));
        let failed = copies("error") + copies("timeout");
        let shadow_tripped = tripped("turnout_shadow_tripped");
        let (mismatch, rate) = match &shadow_tripped {
            Err(why) => (why.clone(), None),
            Ok(_) if compared == 0 => (format!("no copy compared yet ({failed} failed)"), None),
            Ok(_) => {
                let rate = mismatched as f64 / compared as f64;
                let (low, high) = wilson(mismatched, compared);
                let text = format!(
                    "mismatch {:.2} % of {compared} compared (95 %: {:.2}–{:.2} %) · {failed} failed",
                    rate * 100.0,
                    low * 100.0,
                    high * 100.0
                );
                (text, Some(rate))
            }
        };
        PageShadow {
            describe: show::shadow(shadow),
            mismatch,
            mismatch_rate: rate,
            tripped: shadow_tripped.ok().map(|n| n > 0),
        }
    });
    PageSplit {
        name: split.name.clone(),
        matcher: show::matcher(&split.matcher),
        stable: split.clusters.first().cloned().unwrap_or_default(),
        targets,
        rollback: split.rollback,
        pins: split.pins.len(),
        guard,
        guard_tripped,
        shadow,
    }
}

fn proxies(n: u64) -> String {
    format!("{n} prox{}", if n == 1 { "y" } else { "ies" })
}

/// What a figure says when it was not read.
fn unknown(figures: &Figures) -> String {
    match figures {
        Figures::Unconfigured => "not read (see below)".into(),
        Figures::Failed { .. } => "unknown: the metrics could not be read".into(),
        Figures::Read { .. } => String::new(),
    }
}

fn note(figures: &Figures) -> FiguresNote {
    match figures {
        Figures::Unconfigured => FiguresNote {
            source: "Guard trips and shadow mismatch rates are the proxies' own series \
                     (turnout_guard_tripped, turnout_shadow_total), not the server's: start \
                     turnoutctl serve with --prometheus URL or --envoy-admin URL… to show them here."
                .into(),
            at: None,
            error: None,
        },
        Figures::Read { source, at, .. } => FiguresNote {
            source: format!("Guard trips and shadow mismatch rates from {source}"),
            at: Some(time(*at)),
            error: None,
        },
        Figures::Failed { source, at, error } => FiguresNote {
            source: format!("Guard trips and shadow mismatch rates from {source}"),
            at: Some(time(*at)),
            error: Some(error.clone()),
        },
    }
}

#[cfg(test)]
mod tests;
