//! Per-proxy xDS bookkeeping, without I/O: every open stream (one proxy's
//! subscription), what was sent on it, and what the proxy answered.
//!
//! State of the world, as Envoy speaks it: each response carries every
//! resource the stream subscribes to, under one nonce; the proxy's next
//! request names that nonce and either accepts it (ACK: its `version_info`
//! becomes the response's) or refuses it (NACK: `error_detail` set,
//! `version_info` still the last accepted one). A request with no nonce
//! opens a subscription, or reopens it after a reconnect, and carries the
//! version the proxy already has. Answers to an older nonce than the last
//! sent are stale and ignored.

use std::collections::BTreeMap;

use super::catalog::Ms;
use super::departed::Departures;

/// Every open stream (a proxy's subscription: what was sent on it and
/// what it answered), and the counters that outlive them.
#[derive(Debug, Default)]
pub struct Subscriptions {
    proxies: BTreeMap<u64, Proxy>,
    next: u64,
    /// NACKs received, by (node, resource); kept after a proxy leaves.
    pub nacks: BTreeMap<(String, String), u64>,
    /// Responses sent, by resource.
    pub pushes: BTreeMap<String, u64>,
    /// What the proxies that went away had when they left.
    pub departed: Departures,
}

/// One stream: a proxy's subscription, on the ECDS service or ADS.
#[derive(Clone, Debug)]
pub struct Proxy {
    pub stream: u64,
    /// `"ecds"` or `"ads"`.
    pub api: &'static str,
    pub peer: String,
    pub node: String,
    pub cluster: String,
    pub connected_at: Ms,
    /// The `version_info` of the stream's first request: what the proxy
    /// already had when it connected (empty for a fresh Envoy).
    pub initial_version: Option<String>,
    /// The resources asked for; empty asks for every one.
    pub subscribed: Vec<String>,
    pub resources: BTreeMap<String, Track>,
    sent: Option<Sent>,
    nonces: u64,
}

/// One resource on one stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Track {
    pub sent: Option<Stamp>,
    pub acked: Option<Stamp>,
    /// The last NACK, kept after later ACKs (the status shows it).
    pub nack: Option<Nack>,
}

impl Track {
    /// `waiting` (nothing sent yet: the server lacks the resource),
    /// `pending` (sent, not answered), `acked` or `nacked` (the last sent).
    pub fn state(&self) -> &'static str {
        let Some(sent) = &self.sent else {
            return "waiting";
        };
        if self
            .acked
            .as_ref()
            .is_some_and(|a| a.version == sent.version)
        {
            "acked"
        } else if self
            .nack
            .as_ref()
            .is_some_and(|n| n.version == sent.version)
        {
            "nacked"
        } else {
            "pending"
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub version: String,
    pub at: Ms,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nack {
    /// The version the proxy refused.
    pub version: String,
    /// Envoy's `error_detail.message`.
    pub message: String,
    pub at: Ms,
}

#[derive(Clone, Debug)]
struct Sent {
    nonce: String,
    version_info: String,
    versions: BTreeMap<String, String>,
    /// ACKed or NACKed already: later requests repeat the nonce.
    answered: bool,
}

/// One `DiscoveryRequest`, as far as the bookkeeping cares.
#[derive(Clone, Debug, Default)]
pub struct Ask<'a> {
    /// Node id and cluster, when the request carries them.
    pub node: Option<(&'a str, &'a str)>,
    pub version_info: &'a str,
    pub nonce: &'a str,
    pub names: &'a [String],
    /// `error_detail.message` of a NACK.
    pub error: Option<&'a str>,
}

/// A response to send: these resources at these versions, under `nonce`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    pub nonce: String,
    pub version_info: String,
    pub versions: BTreeMap<String, String>,
}

/// What a request said, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Heard {
    /// A subscription (re)opened, with the version the proxy has.
    Subscribe {
        names: Vec<String>,
        has: String,
    },
    Ack(BTreeMap<String, String>),
    Nack(BTreeMap<String, String>, String),
    /// An answer to an older response, or a repeated request.
    Other,
}

/// `version_info` of a response: the version of its one resource, or
/// `name=version` pairs joined by `,` when a stream asks for several.
pub fn version_info(versions: &BTreeMap<String, String>) -> String {
    match versions.iter().collect::<Vec<_>>().as_slice() {
        [(_, version)] => (*version).clone(),
        all => all
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

impl Subscriptions {
    /// A new stream from `peer`; its id.
    pub fn open(&mut self, api: &'static str, peer: &str, now: Ms) -> u64 {
        self.next += 1;
        let stream = self.next;
        self.proxies.insert(
            stream,
            Proxy {
                stream,
                api,
                peer: peer.to_string(),
                node: String::new(),
                cluster: String::new(),
                connected_at: now,
                initial_version: None,
                subscribed: Vec::new(),
                resources: BTreeMap::new(),
                sent: None,
                nonces: 0,
            },
        );
        stream
    }

    /// The stream ended at `now`; the proxy is no longer counted, only
    /// remembered as departed.
    pub fn close(&mut self, stream: u64, now: Ms) -> Option<Proxy> {
        let proxy = self.proxies.remove(&stream)?;
        self.departed.left(&proxy, now);
        Some(proxy)
    }

    pub fn proxies(&self) -> impl Iterator<Item = &Proxy> {
        self.proxies.values()
    }

    pub fn proxy(&self, stream: u64) -> Option<&Proxy> {
        self.proxies.get(&stream)
    }

    /// A request arrived on `stream`; `served` is name → version of what
    /// the server has now. What it said, and the response to send, if any.
    pub fn on_request(
        &mut self,
        stream: u64,
        ask: &Ask<'_>,
        served: &BTreeMap<String, String>,
        now: Ms,
    ) -> (Heard, Option<Push>) {
        let Some(proxy) = self.proxies.get_mut(&stream) else {
            return (Heard::Other, None);
        };
        if let Some((node, cluster)) = ask.node.filter(|(n, _)| !n.is_empty()) {
            proxy.node = node.to_string();
            proxy.cluster = cluster.to_string();
        }
        proxy
            .initial_version
            .get_or_insert_with(|| ask.version_info.to_string());
        let heard = if ask.nonce.is_empty() {
            Heard::Subscribe {
                names: ask.names.to_vec(),
                has: ask.version_info.to_string(),
            }
        } else {
            proxy.answer(ask, now, &mut self.nacks)
        };
        proxy.subscribe(ask.names);
        let fresh = ask.nonce.is_empty();
        let push = proxy.next_push(served, fresh, now);
        self.count(push.as_ref());
        (heard, push)
    }

    /// What the server serves changed; the response `stream` needs, if any.
    pub fn on_served(
        &mut self,
        stream: u64,
        served: &BTreeMap<String, String>,
        now: Ms,
    ) -> Option<Push> {
        let proxy = self.proxies.get_mut(&stream)?;
        // Nothing goes out before the proxy has asked.
        proxy.initial_version.as_ref()?;
        let push = proxy.next_push(served, false, now);
        self.count(push.as_ref());
        push
    }

    fn count(&mut self, push: Option<&Push>) {
        for name in push.into_iter().flat_map(|p| p.versions.keys()) {
            *self.pushes.entry(name.clone()).or_default() += 1;
        }
    }
}

impl Proxy {
    /// Books an ACK or NACK of the last response (others are stale).
    fn answer(
        &mut self,
        ask: &Ask<'_>,
        now: Ms,
        nacks: &mut BTreeMap<(String, String), u64>,
    ) -> Heard {
        let Some(sent) = self
            .sent
            .as_mut()
            .filter(|s| s.nonce == ask.nonce && !s.answered)
        else {
            return Heard::Other;
        };
        // An ACK names the response's version; a request that follows a
        // NACK repeats its nonce with the old version and no error.
        if ask.error.is_none() && ask.version_info != sent.version_info {
            return Heard::Other;
        }
        sent.answered = true;
        let versions = sent.versions.clone();
        match ask.error {
            None => {
                for (name, version) in &versions {
                    self.resources.entry(name.clone()).or_default().acked = Some(Stamp {
                        version: version.clone(),
                        at: now,
                    });
                }
                Heard::Ack(versions)
            }
            Some(message) => {
                // Of a response with several resources, the ones it changed
                // are the ones refused.
                for (name, version) in &versions {
                    let track = self.resources.entry(name.clone()).or_default();
                    if track.acked.as_ref().is_some_and(|a| a.version == *version) {
                        continue;
                    }
                    track.nack = Some(Nack {
                        version: version.clone(),
                        message: message.to_string(),
                        at: now,
                    });
                    *nacks.entry((self.node.clone(), name.clone())).or_default() += 1;
                }
                Heard::Nack(versions, message.to_string())
            }
        }
    }

    fn subscribe(&mut self, names: &[String]) {
        if names == self.subscribed.as_slice() {
            return;
        }
        self.subscribed = names.to_vec();
        if !names.is_empty() {
            self.resources.retain(|n, _| names.contains(n));
            for name in names {
                self.resources.entry(name.clone()).or_default();
            }
        }
    }

    /// What this stream should have now: every subscribed resource the
    /// server serves. A resource the server does not have is left out: the
    /// proxy keeps what it has (ECDS would turn a removal into a disabled
    /// filter), and a new proxy waits for it.
    fn wanted(&self, served: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        served
            .iter()
            .filter(|(n, _)| self.subscribed.is_empty() || self.subscribed.contains(n))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    }

    /// The response to send, if the stream lacks something, or it asked
    /// afresh (`fresh`: a request with no nonce is always answered when
    /// there is anything to send). A NACKed response is not sent again.
    fn next_push(
        &mut self,
        served: &BTreeMap<String, String>,
        fresh: bool,
        now: Ms,
    ) -> Option<Push> {
        let versions = self.wanted(served);
        if versions.is_empty() {
            return None;
        }
        if !fresh && self.sent.as_ref().is_some_and(|s| s.versions == versions) {
            return None;
        }
        self.nonces += 1;
        let nonce = self.nonces.to_string();
        for (name, version) in &versions {
            self.resources.entry(name.clone()).or_default().sent = Some(Stamp {
                version: version.clone(),
                at: now,
            });
        }
        let version_info = version_info(&versions);
        self.sent = Some(Sent {
            nonce: nonce.clone(),
            version_info: version_info.clone(),
            versions: versions.clone(),
            answered: false,
        });
        Some(Push {
            nonce,
            version_info,
            versions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// Subscriptions with one proxy `a` subscribed to `turnout`, sent `v1`.
    fn subscribed() -> (Subscriptions, u64, Vec<String>) {
        let mut r = Subscriptions::default();
        let id = r.open("ecds", "127.0.0.1:1", 10);
        let turnout = names(&["turnout"]);
        let ask = Ask {
            node: Some(("a", "fleet")),
            names: &turnout,
            ..Ask::default()
        };
        let (heard, push) = r.on_request(id, &ask, &served(&[("turnout", "v1")]), 11);
        assert_eq!(
            heard,
            Heard::Subscribe {
                names: turnout.clone(),
                has: String::new()
            }
        );
        let push = push.expect("the subscription is answered");
        assert_eq!(
            (push.nonce.as_str(), push.version_info.as_str()),
            ("1", "v1")
        );
        (r, id, turnout)
    }

    #[test]
    fn an_ack_books_the_version_and_asks_for_nothing() {
        let (mut r, id, turnout) = subscribed();
        let ack = Ask {
            version_info: "v1",
            nonce: "1",
            names: &turnout,
            ..Ask::default()
        };
        let (heard, push) = r.on_request(id, &ack, &served(&[("turnout", "v1")]), 12);
        assert_eq!(heard, Heard::Ack(served(&[("turnout", "v1")])));
        assert_eq!(push, None);
        let p = r.proxy(id).unwrap();
        assert_eq!((p.node.as_str(), p.cluster.as_str()), ("a", "fleet"));
        let track = &p.resources["turnout"];
        assert_eq!(
            track.sent,
            Some(Stamp {
                version: "v1".into(),
                at: 11
            })
        );
        assert_eq!(
            track.acked,
            Some(Stamp {
                version: "v1".into(),
                at: 12
            })
        );
        assert_eq!(r.pushes["turnout"], 1);
    }

    #[test]
    fn a_nack_is_booked_once_and_not_resent_until_something_changes() {
        let (mut r, id, turnout) = subscribed();
        r.on_request(
            id,
            &Ask {
                version_info: "v1",
                nonce: "1",
                names: &turnout,
                ..Ask::default()
            },
            &served(&[("turnout", "v1")]),
            12,
        );
        let now = served(&[("turnout", "v2")]);
        let push = r.on_served(id, &now, 13).expect("v2 is pushed");
        assert_eq!(
            (push.nonce.as_str(), push.version_info.as_str()),
            ("2", "v2")
        );
        assert_eq!(r.on_served(id, &now, 14), None, "sent already");

        let nack = Ask {
            version_info: "v1",
            nonce: "2",
            names: &turnout,
            error: Some("Failed to load Wasm code"),
            ..Ask::default()
        };
        let (heard, push) = r.on_request(id, &nack, &now, 15);
        assert_eq!(
            heard,
            Heard::Nack(
                served(&[("turnout", "v2")]),
                "Failed to load Wasm code".into()
            )
        );
        assert_eq!(push, None, "a NACKed response is not sent again");
        let track = &r.proxy(id).unwrap().resources["turnout"];
        assert_eq!(track.acked.as_ref().unwrap().version, "v1");
        assert_eq!(
            track.nack,
            Some(Nack {
                version: "v2".into(),
                message: "Failed to load Wasm code".into(),
                at: 15
            })
        );
        assert_eq!(r.nacks[&("a".to_string(), "turnout".to_string())], 1);

        // The next request repeats the NACKed nonce with the old version: no ACK.
        let again = Ask {
            version_info: "v1",
            nonce: "2",
            names: &turnout,
            ..Ask::default()
        };
        assert_eq!(r.on_request(id, &again, &now, 16), (Heard::Other, None));
        assert_eq!(
            r.proxy(id).unwrap().resources["turnout"]
                .acked
                .as_ref()
                .unwrap()
                .version,
            "v1"
        );

        // A stale answer (an older nonce) changes nothing.
        let stale = Ask {
            version_info: "v1",
            nonce: "1",
            names: &turnout,
            ..Ask::default()
        };
        assert_eq!(r.on_request(id, &stale, &now, 16), (Heard::Other, None));

        // A fixed config is pushed, ACKed; the last NACK stays on record.
        let fixed = served(&[("turnout", "v3")]);
        assert_eq!(r.on_served(id, &fixed, 17).unwrap().nonce, "3");
        r.on_request(
            id,
            &Ask {
                version_info: "v3",
                nonce: "3",
                names: &turnout,
                ..Ask::default()
            },
            &fixed,
            18,
        );
        let track = &r.proxy(id).unwrap().resources["turnout"];
        assert_eq!(track.acked.as_ref().unwrap().version, "v3");
        assert_eq!(track.nack.as_ref().unwrap().version, "v2");
    }

    #[test]
    fn a_reconnect_says_what_the_proxy_has_and_is_answered_even_if_current() {
        let mut r = Subscriptions::default();
        let id = r.open("ads", "p", 1);
        let turnout = names(&["turnout"]);
        let now = served(&[("turnout", "v1")]);
        assert_eq!(
            r.on_served(id, &now, 1),
            None,
            "nothing before the proxy asks"
        );
        let ask = Ask {
            node: Some(("a", "c")),
            version_info: "v1",
            names: &turnout,
            ..Ask::default()
        };
        let (heard, push) = r.on_request(id, &ask, &now, 2);
        assert_eq!(
            heard,
            Heard::Subscribe {
                names: turnout.clone(),
                has: "v1".into()
            }
        );
        assert_eq!(push.unwrap().version_info, "v1");
        assert_eq!(r.proxy(id).unwrap().initial_version.as_deref(), Some("v1"));
        assert!(r.close(id, 9).is_some());
        assert_eq!(r.proxies().count(), 0);
    }

    #[test]
    fn a_resource_the_server_lacks_is_never_sent_and_never_removed() {
        let mut r = Subscriptions::default();
        let id = r.open("ecds", "p", 1);
        let both = names(&["a", "b"]);
        let ask = Ask {
            node: Some(("n", "c")),
            names: &both,
            ..Ask::default()
        };
        let (_, push) = r.on_request(id, &ask, &served(&[]), 2);
        assert_eq!(push, None, "nothing to send: the proxy waits");
        assert_eq!(r.proxy(id).unwrap().resources.len(), 2, "both are tracked");

        let push = r.on_served(id, &served(&[("a", "x")]), 3).unwrap();
        assert_eq!(push.version_info, "x");
        let push = r
            .on_served(id, &served(&[("a", "x"), ("b", "y")]), 4)
            .unwrap();
        assert_eq!(push.version_info, "a=x,b=y");
        r.on_request(
            id,
            &Ask {
                version_info: "a=x,b=y",
                nonce: "2",
                names: &both,
                ..Ask::default()
            },
            &served(&[("a", "x"), ("b", "y")]),
            5,
        );

        // A NACK of a response with both: only the changed one is refused.
        let next = served(&[("a", "x"), ("b", "z")]);
        assert_eq!(r.on_served(id, &next, 6).unwrap().nonce, "3");
        r.on_request(
            id,
            &Ask {
                version_info: "a=x,b=y",
                nonce: "3",
                names: &both,
                error: Some("no"),
                ..Ask::default()
            },
            &next,
            7,
        );
        let p = r.proxy(id).unwrap();
        assert_eq!(p.resources["a"].nack, None);
        assert_eq!(p.resources["b"].nack.as_ref().unwrap().version, "z");

        // Unsubscribing drops the resource's track.
        let only_a = names(&["a"]);
        let (_, push) = r.on_request(
            id,
            &Ask {
                version_info: "a=x,b=y",
                nonce: "3",
                names: &only_a,
                ..Ask::default()
            },
            &next,
            8,
        );
        assert_eq!(
            push.unwrap().version_info,
            "x",
            "the new subscription is answered"
        );
        assert_eq!(
            r.proxy(id).unwrap().resources.keys().collect::<Vec<_>>(),
            ["a"]
        );
    }
}
