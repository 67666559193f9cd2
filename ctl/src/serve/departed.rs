//! The proxies that went away: what each had when its last stream closed,
//! so that the page can show a proxy as disconnected (with the version it
//! kept) instead of forgetting it. Without I/O, beside `Subscriptions`.
//!
//! A node that connects again is shown by its open stream; its entry here
//! is only looked at while it has none. The book is bounded: a fleet whose
//! pods come and go under new node ids would otherwise grow it for ever.

use std::collections::BTreeMap;

use super::catalog::Ms;
use super::state::{Proxy, Track};

/// How many departed nodes are remembered; the longest gone is forgotten
/// first.
pub const REMEMBERED: usize = 1_000;

/// A proxy whose stream closed, as it was then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Departed {
    pub node: String,
    pub cluster: String,
    pub api: &'static str,
    pub peer: String,
    pub left_at: Ms,
    pub resources: BTreeMap<String, Track>,
}

/// Departed proxies by node id.
#[derive(Debug, Default)]
pub struct Departures {
    by_node: BTreeMap<String, Departed>,
}

impl Departures {
    /// `proxy`'s stream closed at `now`. A stream that never said who it
    /// is (no node id) is not remembered.
    pub fn left(&mut self, proxy: &Proxy, now: Ms) {
        if proxy.node.is_empty() {
            return;
        }
        self.by_node.insert(
            proxy.node.clone(),
            Departed {
                node: proxy.node.clone(),
                cluster: proxy.cluster.clone(),
                api: proxy.api,
                peer: proxy.peer.clone(),
                left_at: now,
                resources: proxy.resources.clone(),
            },
        );
        if self.by_node.len() > REMEMBERED {
            let oldest = self
                .by_node
                .values()
                .min_by_key(|d| d.left_at)
                .map(|d| d.node.clone());
            if let Some(node) = oldest {
                self.by_node.remove(&node);
            }
        }
    }

    /// Every remembered departure, by node id.
    pub fn iter(&self) -> impl Iterator<Item = &Departed> {
        self.by_node.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::state::Subscriptions;

    #[test]
    fn the_last_departure_of_a_node_is_kept_and_the_book_is_bounded() {
        let mut subs = Subscriptions::default();
        let anonymous = subs.open("ecds", "127.0.0.1:1", 1);
        subs.close(anonymous, 2);
        assert_eq!(subs.departed.iter().count(), 0, "no node id, not kept");

        let c = crate::serve::fixture::catalog("v1", 1);
        let id = crate::serve::fixture::subscribe(&mut subs, "a", &c, 3);
        subs.close(id, 4);
        let again = crate::serve::fixture::subscribe(&mut subs, "a", &c, 5);
        subs.close(again, 6);
        let kept: Vec<&Departed> = subs.departed.iter().collect();
        assert_eq!(kept.len(), 1);
        assert_eq!((kept[0].node.as_str(), kept[0].left_at), ("a", 6));
        assert_eq!(
            kept[0].resources["turnout"].sent.as_ref().unwrap().version,
            "v1"
        );

        let mut book = Departures::default();
        let id = subs.open("ecds", "p", 7);
        let mut proxy = subs.proxy(id).unwrap().clone();
        for i in 0..=REMEMBERED as u64 {
            proxy.node = format!("n{i}");
            book.left(&proxy, 100 + i);
        }
        assert_eq!(book.iter().count(), REMEMBERED);
        assert!(book.iter().all(|d| d.node != "n0"), "the longest gone went");
    }
}
