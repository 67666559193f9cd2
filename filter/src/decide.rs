//! The decision: which split a request belongs to and which cluster it goes
//! to, or whether a maintenance mode answers it.
//!
//! Precedence, highest first: mode > rollback > guard > pin > force > bucket
//! (or the anonymous rule when the request carries no user key). The host
//! supplies the request through [`RequestFacts`], asked lazily so that a
//! fact no rule needs costs no hostcall.

use std::borrow::Cow;

use crate::bucket::Bucket;
use crate::keys;
use crate::plan::{
    ActiveWeights, Anonymous, KeySource, MatchOn, Mode, ModePolicy, Plan, SplitPlan,
};

/// What the host can tell about a request, borrowed from wherever the host
/// keeps it (the shell: the header map Envoy handed over), so deciding
/// copies nothing. Evaluation asks for the route name, path and method at
/// most once each, and only when a rule needs them.
pub trait RequestFacts {
    /// Envoy's matched route name.
    fn route_name(&self) -> Option<&[u8]>;
    /// The `:path` pseudo-header, query included.
    fn path(&self) -> Option<&[u8]>;
    /// The `:method` pseudo-header.
    fn method(&self) -> Option<&[u8]>;
    /// A request header by lowercase name (the first value if repeated).
    fn header(&self, name: &str) -> Option<&[u8]>;
}

/// Why a request went where it went. The names are the `reason` label of
/// the stats and of the debug header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    Bucket,
    Pin,
    Force,
    Rollback,
    Guard,
    Anonymous,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Bucket,
        Reason::Pin,
        Reason::Force,
        Reason::Rollback,
        Reason::Guard,
        Reason::Anonymous,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Bucket => "bucket",
            Reason::Pin => "pin",
            Reason::Force => "force",
            Reason::Rollback => "rollback",
            Reason::Guard => "guard",
            Reason::Anonymous => "anonymous",
        }
    }
}

/// A routed request: indexes into the plan's splits and that split's clusters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub split: usize,
    /// 0 is stable, `i > 0` is target `i - 1`.
    pub cluster: usize,
    pub reason: Reason,
    /// The bucket the decision was made from, when one was computed.
    pub bucket: Option<Bucket>,
}

/// A request the filter answers itself because of a mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal<'p> {
    pub split: Option<usize>,
    pub mode: Mode,
    pub retry_after: &'p str,
    pub body: &'p str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<'p> {
    /// No split takes the request: it passes untouched.
    Pass,
    Route(Decision),
    Refuse(Refusal<'p>),
}

/// Decides for one request. `draw` gives a uniform bucket for anonymous
/// requests under `"anonymous": "random"`; it is called only then.
pub fn evaluate<'p>(
    plan: &'p Plan,
    active: &ActiveWeights,
    request: &impl RequestFacts,
    draw: impl FnOnce() -> u16,
) -> Verdict<'p> {
    let mut facts = Facts {
        request,
        route: None,
        path: None,
        method: None,
        cookie: None,
    };
    let split = split_of(plan, &mut facts);
    let policy = split.map_or(&plan.mode, |i| &plan.splits[i].mode);
    if let Some(refusal) = refusal(policy, split, &mut facts) {
        return Verdict::Refuse(refusal);
    }
    let Some(index) = split else {
        return Verdict::Pass;
    };
    let split_plan = &plan.splits[index];
    let bounds = active.bounds.get(index).map_or(&[][..], Vec::as_slice);
    let decide = |cluster, reason, bucket| {
        Verdict::Route(Decision {
            split: index,
            cluster,
            reason,
            bucket,
        })
    };

    if split_plan.rollback {
        return decide(0, Reason::Rollback, None);
    }
    if active.is_tripped(index) {
        return decide(0, Reason::Guard, None);
    }
    let key = user_key(plan, &mut facts);
    if let Some(&cluster) = key.as_deref().and_then(|k| split_plan.pins.get(k)) {
        return decide(cluster, Reason::Pin, None);
    }
    if let Some(cluster) = forced(split_plan, &mut facts) {
        return decide(cluster, Reason::Force, None);
    }
    match key {
        Some(key) => {
            let bucket = Bucket::of(split_plan.salt.as_bytes(), &key);
            decide(cluster_of(bounds, bucket), Reason::Bucket, Some(bucket))
        }
        None if plan.anonymous == Anonymous::Random => {
            let bucket = Bucket(draw() % crate::bucket::BUCKETS);
            decide(cluster_of(bounds, bucket), Reason::Anonymous, Some(bucket))
        }
        None => decide(0, Reason::Anonymous, None),
    }
}

/// The first split, in config order, that takes the request. Only the
/// splits of the request's route and those matching on the path are tried,
/// and the route name is asked for only when no split before the first
/// route-matched one takes the request.
fn split_of<R: RequestFacts>(plan: &Plan, facts: &mut Facts<'_, R>) -> Option<usize> {
    let index = &plan.index;
    let mut by_path = index.by_path.iter().copied().peekable();
    let first_by_route = index.first_by_route.unwrap_or(usize::MAX);
    while let Some(i) = by_path.next_if(|&i| i < first_by_route) {
        if facts.matches(&plan.splits[i]) {
            return Some(i);
        }
    }
    index.first_by_route?;
    let mut by_route = index.by_route(facts.route()).iter().copied().peekable();
    // Both lists are in config order: merge them.
    loop {
        let i = match (by_route.peek(), by_path.peek()) {
            (Some(&r), Some(&p)) if p < r => by_path.next(),
            (Some(_), _) => by_route.next(),
            (None, _) => by_path.next(),
        }?;
        if facts.matches(&plan.splits[i]) {
            return Some(i);
        }
    }
}

/// The cluster that owns `bucket` given the targets' upper bounds.
pub fn cluster_of(bounds: &[u16], bucket: Bucket) -> usize {
    bounds
        .iter()
        .position(|&upper| bucket.0 < upper)
        .map_or(0, |i| i + 1)
}

fn refusal<'p, R: RequestFacts>(
    policy: &'p ModePolicy,
    split: Option<usize>,
    facts: &mut Facts<'_, R>,
) -> Option<Refusal<'p>> {
    let body = match policy.mode {
        Mode::Normal => return None,
        Mode::Maintenance => {
            let path = facts.path_only();
            if policy.allow_paths.iter().any(|p| p.as_bytes() == path) {
                return None;
            }
            &policy.maintenance_body
        }
        Mode::ReadOnly => {
            if !matches!(facts.method(), b"POST" | b"PUT" | b"PATCH" | b"DELETE") {
                return None;
            }
            &policy.read_only_body
        }
    };
    Some(Refusal {
        split,
        mode: policy.mode,
        retry_after: &policy.retry_after,
        body,
    })
}

/// The first configured source that holds a non-empty key.
fn user_key<'r, R: RequestFacts>(plan: &Plan, facts: &mut Facts<'r, R>) -> Option<Cow<'r, [u8]>> {
    plan.user_key.iter().find_map(|source| {
        let key = match source {
            KeySource::Header(name) => facts.request.header(name).map(Cow::Borrowed),
            KeySource::Cookie(name) => {
                keys::cookie(facts.cookie(), name.as_bytes()).map(Cow::Borrowed)
            }
            KeySource::Query(name) => keys::query(facts.path(), name.as_bytes()),
        };
        key.filter(|k| !k.is_empty())
    })
}

/// The cluster a force header names, if it names one of the split's.
fn forced<R: RequestFacts>(split: &SplitPlan, facts: &mut Facts<'_, R>) -> Option<usize> {
    let value = facts.request.header(split.force_header.as_deref()?)?;
    split.clusters.iter().position(|c| c.as_bytes() == value)
}

/// The request's facts, each asked of the host at most once.
struct Facts<'r, R> {
    request: &'r R,
    route: Option<&'r [u8]>,
    path: Option<&'r [u8]>,
    method: Option<&'r [u8]>,
    cookie: Option<&'r [u8]>,
}

impl<'r, R: RequestFacts> Facts<'r, R> {
    fn matches(&mut self, split: &SplitPlan) -> bool {
        let on = match &split.matcher.on {
            MatchOn::Route(name) => self.route() == name.as_bytes(),
            MatchOn::Prefix(prefix) => self.path_only().starts_with(prefix.as_bytes()),
            MatchOn::Path(path) => self.path_only() == path.as_bytes(),
        };
        on && (split.matcher.methods.is_empty() || {
            let method = self.method();
            split.matcher.methods.iter().any(|m| m.as_bytes() == method)
        })
    }

    fn route(&mut self) -> &'r [u8] {
        let request = self.request;
        self.route
            .get_or_insert_with(|| request.route_name().unwrap_or_default())
    }

    fn path(&mut self) -> &'r [u8] {
        let request = self.request;
        self.path
            .get_or_insert_with(|| request.path().unwrap_or_default())
    }

    /// The path without its query or fragment.
    fn path_only(&mut self) -> &'r [u8] {
        let path = self.path();
        let end = path
            .iter()
            .position(|&b| b == b'?' || b == b'#')
            .unwrap_or(path.len());
        &path[..end]
    }

    fn method(&mut self) -> &'r [u8] {
        let request = self.request;
        self.method
            .get_or_insert_with(|| request.method().unwrap_or_default())
    }

    fn cookie(&mut self) -> &'r [u8] {
        let request = self.request;
        self.cookie
            .get_or_insert_with(|| request.header("cookie").unwrap_or_default())
    }
}

/// A request given as plain values: for `turnoutctl explain` and tests.
#[derive(Clone, Debug, Default)]
pub struct PlainRequest {
    pub route_name: Option<String>,
    pub path: Option<String>,
    pub method: Option<String>,
    /// Lowercase names.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl RequestFacts for PlainRequest {
    fn route_name(&self) -> Option<&[u8]> {
        self.route_name.as_ref().map(|s| s.as_bytes())
    }
    fn path(&self) -> Option<&[u8]> {
        self.path.as_ref().map(|s| s.as_bytes())
    }
    fn method(&self) -> Option<&[u8]> {
        self.method.as_ref().map(|s| s.as_bytes())
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}
