//! The compiled configuration: what the request path reads.
//!
//! `config` turns the JSON into a `Plan` once, when Envoy applies a config;
//! after that no request parses, validates or formats anything the plan
//! already holds.

use std::collections::BTreeMap;

use crate::guard::GuardPlan;
use crate::schedule::{self, Step};
use crate::shadow::ShadowPlan;

/// A validated configuration, ready for the request path.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Lowercase name of the request header that carries the decision.
    pub decision_header: String,
    pub user_key: Vec<KeySource>,
    pub anonymous: Anonymous,
    pub splits: Vec<SplitPlan>,
    /// Which splits a request may belong to, by route name: built with
    /// `splits`, so no request compares its route with every split's.
    pub index: SplitIndex,
    /// The mode of requests that match no split, and the default of splits.
    pub mode: ModePolicy,
    pub trace: TraceSettings,
    pub debug: bool,
    /// Some split has a shadow: found when parsed, so a request of a plan
    /// without one does no shadow work at all.
    pub shadowed: bool,
}

/// Where a user's key may be found, tried in configuration order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    Header(String),
    Cookie(String),
    Query(String),
}

/// What happens to requests that carry no user key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Anonymous {
    /// Sent to the stable cluster.
    #[default]
    Stable,
    /// Split by weight with a fresh draw per request (not sticky).
    Random,
}

/// One split: which requests it takes and how it divides them.
#[derive(Clone, Debug)]
pub struct SplitPlan {
    pub name: String,
    /// The split's JSON object, fingerprinted as written canonically: the
    /// guard keeps its counts and its trip under it, so a push that leaves
    /// the split unchanged keeps them and one that changes it starts anew.
    pub fingerprint: u64,
    pub matcher: Matcher,
    /// `clusters[0]` is stable; `clusters[1..]` are the targets in config
    /// order. A decision names a cluster by its index here.
    pub clusters: Vec<String>,
    /// One weight per target (`clusters[i + 1]`), in basis points.
    pub weights: Vec<Weight>,
    pub salt: String,
    pub rollback: bool,
    /// User key to cluster index.
    pub pins: BTreeMap<Vec<u8>, usize>,
    /// Lowercase header name through which a request may pick a cluster.
    pub force_header: Option<String>,
    pub mode: ModePolicy,
    /// The limits that trip the split back to stable, when configured.
    pub guard: Option<GuardPlan>,
    /// Where the split's stable requests are copied, when configured.
    pub shadow: Option<ShadowPlan>,
}

/// The splits grouped by how they match, each group in config order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SplitIndex {
    /// Route name and the splits that match on it, sorted by name.
    pub by_route: Vec<(Vec<u8>, Vec<usize>)>,
    /// The splits that match on the path.
    pub by_path: Vec<usize>,
    /// The first split that matches on a route name: those before it need
    /// no route name, so a request they take costs no hostcall for it.
    pub first_by_route: Option<usize>,
}

impl SplitIndex {
    pub fn of(splits: &[SplitPlan]) -> SplitIndex {
        let mut index = SplitIndex::default();
        for (i, split) in splits.iter().enumerate() {
            match &split.matcher.on {
                MatchOn::Route(name) => {
                    index.first_by_route.get_or_insert(i);
                    match index.find(name.as_bytes()) {
                        Ok(at) => index.by_route[at].1.push(i),
                        Err(at) => index
                            .by_route
                            .insert(at, (name.as_bytes().to_vec(), vec![i])),
                    }
                }
                MatchOn::Prefix(_) | MatchOn::Path(_) => index.by_path.push(i),
            }
        }
        index
    }

    /// The splits that match on route `name`, in config order.
    pub fn by_route(&self, name: &[u8]) -> &[usize] {
        self.find(name).map_or(&[], |at| &self.by_route[at].1)
    }

    fn find(&self, name: &[u8]) -> Result<usize, usize> {
        self.by_route
            .binary_search_by(|(route, _)| route.as_slice().cmp(name))
    }
}

/// How a split recognises its requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    pub on: MatchOn,
    /// Uppercase methods; empty means any method.
    pub methods: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatchOn {
    /// Envoy's matched route name (`xds.route_name`).
    Route(String),
    /// The path (without query) starts with this.
    Prefix(String),
    /// The path (without query) is exactly this.
    Path(String),
}

/// A target's share in basis points (100 = 1 %).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Weight {
    Fixed(u16),
    Schedule(Vec<Step>),
}

impl Weight {
    pub fn at(&self, now: i64) -> u16 {
        match self {
            Weight::Fixed(w) => *w,
            Weight::Schedule(steps) => schedule::weight_at(steps, now),
        }
    }
}

/// The maintenance windows of a cutover.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Normal,
    /// Writes (POST, PUT, PATCH, DELETE) are answered 503.
    ReadOnly,
    /// Every request but `allow_paths` is answered 503.
    Maintenance,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::ReadOnly => "read_only",
            Mode::Maintenance => "maintenance",
        }
    }
}

/// A mode with everything its answer needs, formatted once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModePolicy {
    pub mode: Mode,
    /// The `Retry-After` value, in seconds, as written in the answer.
    pub retry_after: String,
    /// Exact paths (without query) that maintenance lets through.
    pub allow_paths: Vec<String>,
    /// The body of a maintenance answer.
    pub maintenance_body: String,
    /// The body of a read-only answer.
    pub read_only_body: String,
}

/// W3C trace context handling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceSettings {
    /// Lowercase response header that echoes the trace id.
    pub response_header: String,
    /// Add a `turnout=<cluster>` entry to `tracestate`.
    pub tracestate: bool,
}

impl Default for TraceSettings {
    fn default() -> Self {
        TraceSettings {
            response_header: "x-trace-id".into(),
            tracestate: false,
        }
    }
}

/// What is in effect for each split at one moment, beside its plan.
///
/// `bounds`: the upper bucket bound of each target: target `i` of a split
/// owns buckets `bounds[i - 1]..bounds[i]` (from 0 for the first); buckets
/// from the last bound on are stable. Recomputed when time passes a
/// schedule step, so the request path only compares integers.
///
/// `tripped`: the splits whose guard has tripped (every request to stable,
/// reason `guard`), latched until the split's configuration changes.
/// Empty or short means none: a schedule step replaces `bounds` only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActiveWeights {
    pub bounds: Vec<Vec<u16>>,
    pub tripped: Vec<bool>,
}

impl ActiveWeights {
    /// Whether split `split`'s guard has tripped.
    pub fn is_tripped(&self, split: usize) -> bool {
        self.tripped.get(split).copied().unwrap_or(false)
    }
}

impl Plan {
    /// The bucket ranges in effect at `now` (Unix seconds).
    pub fn weights_at(&self, now: i64) -> ActiveWeights {
        let bounds = self
            .splits
            .iter()
            .map(|split| {
                let mut upper = 0u16;
                split
                    .weights
                    .iter()
                    .map(|w| {
                        upper = upper.saturating_add(w.at(now)).min(crate::bucket::BUCKETS);
                        upper
                    })
                    .collect()
            })
            .collect();
        ActiveWeights {
            bounds,
            tripped: Vec::new(),
        }
    }

    /// Whether any weight changes with time, so the shell must watch the clock.
    /// Whether any split has a shadow.
    pub fn has_shadows(&self) -> bool {
        self.shadowed
    }

    pub fn has_schedules(&self) -> bool {
        self.splits
            .iter()
            .flat_map(|s| &s.weights)
            .any(|w| matches!(w, Weight::Schedule(_)))
    }

    /// Whether any split matches on the route name (one hostcall to learn it).
    pub fn needs_route_name(&self) -> bool {
        self.splits
            .iter()
            .any(|s| matches!(s.matcher.on, MatchOn::Route(_)))
    }

    /// Whether evaluation may need the request path.
    pub fn needs_path(&self) -> bool {
        let by_path = self
            .splits
            .iter()
            .any(|s| !matches!(s.matcher.on, MatchOn::Route(_)));
        let by_query = self
            .user_key
            .iter()
            .any(|k| matches!(k, KeySource::Query(_)));
        let allow_list = std::iter::once(&self.mode)
            .chain(self.splits.iter().map(|s| &s.mode))
            .any(|m| m.mode == Mode::Maintenance && !m.allow_paths.is_empty());
        by_path || by_query || allow_list
    }

    /// Whether evaluation may need the request method.
    pub fn needs_method(&self) -> bool {
        let by_method = self.splits.iter().any(|s| !s.matcher.methods.is_empty());
        let read_only = std::iter::once(&self.mode)
            .chain(self.splits.iter().map(|s| &s.mode))
            .any(|m| m.mode == Mode::ReadOnly);
        by_method || read_only
    }
}
