//! What the server's page shows (`GET /page.json`), made without I/O from
//! what is served (the catalog, each config parsed), what each proxy did
//! with it (the subscriptions, and the proxies that left) and the figures
//! read from the proxies' own series (guard trips, shadow copies: see
//! splits.rs). Every text a person reads is written here; the page's
//! script only puts the document's strings on the screen.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::splits::{note, page_split, Figures, FiguresNote, PageSplit};
use crate::serve::catalog::{Catalog, Ms};
use crate::serve::departed::Departed;
use crate::serve::state::{Proxy, Track};
use crate::serve::status::time;

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

fn connected(p: &Proxy, served: &BTreeMap<String, String>) -> PageProxy {
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

#[cfg(test)]
mod tests;
