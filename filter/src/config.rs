//! Configuration v1: parses the companion config's JSON and validates it
//! into a `Plan`.
//!
//! Validation is a pure function of the text: no clock, no randomness, no
//! shared data. Envoy runs a new config on a throwaway VM first and then on
//! every worker, and they must all come to the same answer. Every problem is
//! reported with the path of the field it is about, all of them at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

use crate::bucket::BUCKETS;
pub use crate::fields::Problem;
use crate::fields::{is_token_byte, percent_text, Validator};
use crate::guard::{ErrorClasses, GuardPlan};
use crate::plan::{
    Anonymous, KeySource, MatchOn, Matcher, Mode, ModePolicy, Plan, SplitIndex, SplitPlan,
    TraceSettings, Weight,
};
use crate::schedule::{self, Step};
use crate::stats::Class;

// `splits[].shadow`: in the shadow's directory, but a child of this module
// so that it reports problems with the validator's own primitives.
#[path = "shadow/config.rs"]
mod shadow;

/// The configuration version this filter reads.
pub const VERSION: u64 = 1;

const DEFAULT_DECISION_HEADER: &str = "x-turnout-cluster";
const DEFAULT_USER_HEADER: &str = "x-user-id";
const DEFAULT_RETRY_AFTER_S: u64 = 30;
const MAX_RETRY_AFTER_S: u64 = 86_400;

/// Why a configuration was refused: one line per problem, each naming its field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Parses and validates a configuration. Empty or blank text means no
/// splits: every request passes untouched.
pub fn parse(text: &[u8]) -> Result<Plan, ConfigError> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(Plan {
            decision_header: DEFAULT_DECISION_HEADER.into(),
            user_key: vec![KeySource::Header(DEFAULT_USER_HEADER.into())],
            mode: mode_policy(Mode::Normal, DEFAULT_RETRY_AFTER_S, Vec::new(), None, None),
            ..Plan::default()
        });
    }
    let value: Value = serde_json::from_slice(text).map_err(|e| ConfigError {
        problems: vec![Problem {
            path: String::new(),
            message: format!("not valid JSON: {e}"),
        }],
    })?;
    let mut v = Validator::default();
    let plan = v.document(&value);
    match plan {
        Some(plan) if v.problems.is_empty() => Ok(plan),
        _ => Err(ConfigError {
            problems: v.problems,
        }),
    }
}

/// An object checked as `splits[].guard` is, every problem named under
/// `path`: a rollout plan's `analysis` means what the guard's fields mean.
pub fn guard_field(value: &Value, path: &str) -> Result<GuardPlan, Vec<Problem>> {
    let mut v = Validator::default();
    match v.guard(value, path) {
        Some(plan) if v.problems.is_empty() => Ok(plan),
        _ => Err(v.problems),
    }
}

/// XXH64 of a JSON value written canonically (object keys sorted, no
/// spaces: `serde_json` without `preserve_order`), so text that differs
/// only in layout or key order has the same fingerprint.
fn fingerprint(value: &Value) -> u64 {
    let canonical = serde_json::to_vec(value).unwrap_or_default();
    xxhash_rust::xxh64::xxh64(&canonical, 0)
}

/// Mode fields as written at one level, before inheritance.
#[derive(Default)]
struct ModeFields {
    mode: Option<Mode>,
    retry_after_s: Option<u64>,
    allow_paths: Option<Vec<String>>,
    maintenance_body: Option<String>,
}

const TOP_FIELDS: &[&str] = &[
    "version",
    "decision_header",
    "user_key",
    "anonymous",
    "splits",
    "mode",
    "retry_after_s",
    "allow_paths",
    "maintenance_body",
    "trace",
    "debug",
];
const GUARD_FIELDS: &[&str] = &[
    "window_s",
    "min_requests",
    "errors",
    "max_error_rate",
    "max_p99_ms",
    "max_p95_ratio",
    "max_error_ratio",
    "alpha",
];
/// The guard's limits: a guard must set at least one.
const GUARD_LIMITS: &[&str] = &[
    "max_error_rate",
    "max_p99_ms",
    "max_p95_ratio",
    "max_error_ratio",
];
/// The response classes a guard may count as errors.
const ERROR_CLASSES: [Class; 3] = [Class::ClientError, Class::ServerError, Class::Reset];
const MAX_GUARD_WINDOW_S: u64 = 3600;
const MAX_MIN_REQUESTS: u64 = 1_000_000_000;
/// An hour: a p99 limit above it could never be told from a hung request.
const MAX_P99_MS: f64 = 3_600_000.0;
const MAX_RATIO: f64 = 1000.0;
const MAX_ALPHA: f64 = 0.5;
const SPLIT_FIELDS: &[&str] = &[
    "name",
    "match",
    "stable",
    "targets",
    "salt",
    "rollback",
    "pin",
    "force_header",
    "mode",
    "retry_after_s",
    "allow_paths",
    "maintenance_body",
    "guard",
    "shadow",
];

impl Validator {
    fn document(&mut self, value: &Value) -> Option<Plan> {
        let top = self.object(value, "")?;
        self.known_fields(top, "", TOP_FIELDS);
        if let Some(version) = top.get("version") {
            match self.whole_number(version, "version") {
                Some(VERSION) | None => {}
                Some(other) => self.fail(
                    "version",
                    format!("{other} is not supported; this filter reads version {VERSION}"),
                ),
            }
        }
        let decision_header = match top.get("decision_header") {
            Some(v) => self.header_name(v, "decision_header").unwrap_or_default(),
            None => DEFAULT_DECISION_HEADER.to_string(),
        };
        let user_key = match top.get("user_key") {
            Some(v) => self.user_key(v),
            None => vec![KeySource::Header(DEFAULT_USER_HEADER.into())],
        };
        let anonymous = match top.get("anonymous") {
            None => Anonymous::Stable,
            Some(v) => match self.string(v, "anonymous") {
                Some("stable") => Anonymous::Stable,
                Some("random") => Anonymous::Random,
                Some(other) => {
                    self.fail(
                        "anonymous",
                        format!("{other:?} is not \"stable\" or \"random\""),
                    );
                    Anonymous::Stable
                }
                None => Anonymous::Stable,
            },
        };
        let top_mode = self.mode_fields(top, "");
        let mode = resolve_mode(&top_mode, &ModeFields::default(), None);
        let trace = match top.get("trace") {
            Some(v) => self.trace(v),
            None => TraceSettings::default(),
        };
        let debug = match top.get("debug") {
            Some(v) => self.boolean(v, "debug").unwrap_or(false),
            None => false,
        };
        let splits = match top.get("splits") {
            Some(v) => self.splits(v, &top_mode),
            None => Vec::new(),
        };
        self.header_collisions(&decision_header, &user_key, &splits);
        Some(Plan {
            decision_header,
            user_key,
            anonymous,
            index: SplitIndex::of(&splits),
            splits,
            mode,
            trace,
            debug,
        })
    }

    fn user_key(&mut self, value: &Value) -> Vec<KeySource> {
        let Some(items) = self.array(value, "user_key") else {
            return Vec::new();
        };
        let mut sources = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("user_key[{i}]");
            let Some(obj) = self.object(item, &path) else {
                continue;
            };
            if obj.len() != 1 {
                self.fail(
                    &path,
                    "needs exactly one of \"header\", \"cookie\" or \"query\"",
                );
                continue;
            }
            for (kind, name) in obj {
                let field = format!("{path}.{kind}");
                let source = match kind.as_str() {
                    "header" => self.header_name(name, &field).map(KeySource::Header),
                    "cookie" => self.non_empty(name, &field).map(KeySource::Cookie),
                    "query" => self.non_empty(name, &field).map(KeySource::Query),
                    _ => {
                        self.fail(
                            &field,
                            "unknown field; expected \"header\", \"cookie\" or \"query\"",
                        );
                        None
                    }
                };
                sources.extend(source);
            }
        }
        sources
    }

    fn splits(&mut self, value: &Value, top_mode: &ModeFields) -> Vec<SplitPlan> {
        let Some(items) = self.array(value, "splits") else {
            return Vec::new();
        };
        let mut names = BTreeSet::new();
        let mut splits = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("splits[{i}]");
            if let Some(split) = self.split(item, &path, top_mode) {
                if !names.insert(split.name.clone()) {
                    self.fail(
                        &format!("{path}.name"),
                        format!("{:?} is used by an earlier split", split.name),
                    );
                }
                splits.push(split);
            }
        }
        splits
    }

    fn split(&mut self, value: &Value, path: &str, top_mode: &ModeFields) -> Option<SplitPlan> {
        let obj = self.object(value, path)?;
        self.known_fields(obj, path, SPLIT_FIELDS);
        let name = self
            .required(obj, path, "name")
            .and_then(|v| self.label(v, &format!("{path}.name")));
        let matcher = self
            .required(obj, path, "match")
            .and_then(|v| self.matcher(v, &format!("{path}.match")));
        let stable = self
            .required(obj, path, "stable")
            .and_then(|v| self.cluster_name(v, &format!("{path}.stable")));
        let (targets, weights) = match self.required(obj, path, "targets") {
            Some(v) => self.targets(v, &format!("{path}.targets"), stable.as_deref()),
            None => (Vec::new(), Vec::new()),
        };
        let salt = match obj.get("salt") {
            Some(v) => self.string(v, &format!("{path}.salt")).map(str::to_string),
            None => name.clone(),
        };
        let rollback = match obj.get("rollback") {
            Some(v) => self
                .boolean(v, &format!("{path}.rollback"))
                .unwrap_or(false),
            None => false,
        };
        let force_header = obj
            .get("force_header")
            .and_then(|v| self.header_name(v, &format!("{path}.force_header")));
        let split_mode = self.mode_fields(obj, path);
        let guard = obj
            .get("guard")
            .and_then(|v| self.guard(v, &format!("{path}.guard")));
        let shadow = obj
            .get("shadow")
            .and_then(|v| self.shadow(v, &format!("{path}.shadow"), stable.as_deref()));

        let (name, matcher, stable, salt) = (name?, matcher?, stable?, salt?);
        let mut clusters = vec![stable];
        clusters.extend(targets);
        let pins = match obj.get("pin") {
            Some(v) => self.pins(v, &format!("{path}.pin"), &clusters),
            None => BTreeMap::new(),
        };
        let mode = resolve_mode(top_mode, &split_mode, Some(&name));
        Some(SplitPlan {
            fingerprint: fingerprint(value),
            name,
            matcher,
            clusters,
            weights,
            salt,
            rollback,
            pins,
            force_header,
            mode,
            guard,
            shadow,
        })
    }

    fn matcher(&mut self, value: &Value, path: &str) -> Option<Matcher> {
        let obj = self.object(value, path)?;
        self.known_fields(obj, path, &["route", "prefix", "path", "methods"]);
        let kinds: Vec<&str> = ["route", "prefix", "path"]
            .into_iter()
            .filter(|k| obj.contains_key(*k))
            .collect();
        let on = match kinds.as_slice() {
            [kind] => {
                let field = format!("{path}.{kind}");
                let text = self.non_empty(&obj[*kind], &field)?;
                match *kind {
                    "route" => MatchOn::Route(text),
                    _ if !text.starts_with('/') => {
                        self.fail(&field, format!("{text:?} does not start with '/'"));
                        return None;
                    }
                    "prefix" => MatchOn::Prefix(text),
                    _ => MatchOn::Path(text),
                }
            }
            _ => {
                self.fail(
                    path,
                    "needs exactly one of \"route\", \"prefix\" or \"path\"",
                );
                return None;
            }
        };
        let mut methods = Vec::new();
        if let Some(v) = obj.get("methods") {
            let field = format!("{path}.methods");
            for (i, m) in self
                .array(v, &field)
                .unwrap_or(&Vec::new())
                .iter()
                .enumerate()
            {
                let item = format!("{field}[{i}]");
                if let Some(m) = self.string(m, &item) {
                    if m.is_empty() || !m.bytes().all(is_token_byte) {
                        self.fail(&item, format!("{m:?} is not an HTTP method"));
                    } else {
                        methods.push(m.to_ascii_uppercase());
                    }
                }
            }
        }
        Some(Matcher { on, methods })
    }

    fn targets(
        &mut self,
        value: &Value,
        path: &str,
        stable: Option<&str>,
    ) -> (Vec<String>, Vec<Weight>) {
        let Some(items) = self.array(value, path) else {
            return (Vec::new(), Vec::new());
        };
        let (mut clusters, mut weights) = (Vec::new(), Vec::new());
        for (i, item) in items.iter().enumerate() {
            let tpath = format!("{path}[{i}]");
            let Some(obj) = self.object(item, &tpath) else {
                continue;
            };
            self.known_fields(obj, &tpath, &["cluster", "weight", "schedule"]);
            let cluster = self
                .required(obj, &tpath, "cluster")
                .and_then(|v| self.cluster_name(v, &format!("{tpath}.cluster")));
            let weight = match (obj.get("weight"), obj.get("schedule")) {
                (Some(w), None) => self
                    .weight(w, &format!("{tpath}.weight"))
                    .map(Weight::Fixed),
                (None, Some(s)) => self
                    .schedule(s, &format!("{tpath}.schedule"))
                    .map(Weight::Schedule),
                (Some(_), Some(_)) => {
                    self.fail(&tpath, "has both \"weight\" and \"schedule\"; give one");
                    None
                }
                (None, None) => {
                    self.fail(&tpath, "needs \"weight\" or \"schedule\"");
                    None
                }
            };
            // A target whose weight is refused still names a cluster, so
            // that pins naming it are not reported as problems too.
            let Some(cluster) = cluster else { continue };
            if Some(cluster.as_str()) == stable {
                self.fail(
                    &format!("{tpath}.cluster"),
                    format!("{cluster:?} is the split's stable cluster"),
                );
            } else if clusters.contains(&cluster) {
                self.fail(
                    &format!("{tpath}.cluster"),
                    format!("{cluster:?} is listed twice"),
                );
            }
            clusters.push(cluster);
            weights.push(weight.unwrap_or(Weight::Fixed(0)));
        }
        self.weight_sum(path, &weights);
        (clusters, weights)
    }

    /// The targets' weights may never add up to more than 100 %: checked at
    /// every moment a schedule changes a weight.
    fn weight_sum(&mut self, path: &str, weights: &[Weight]) {
        let mut moments = vec![i64::MIN];
        for w in weights {
            if let Weight::Schedule(steps) = w {
                moments.extend(steps.iter().map(|s| s.at));
            }
        }
        for now in moments {
            let sum: u32 = weights.iter().map(|w| u32::from(w.at(now))).sum();
            if sum > u32::from(BUCKETS) {
                let when = if now == i64::MIN {
                    String::new()
                } else {
                    format!(" at the step of {now} (Unix time)")
                };
                self.fail(
                    path,
                    format!(
                        "weights add up to {}{when}, over 100",
                        percent_text(sum.into())
                    ),
                );
                return;
            }
        }
    }

    fn schedule(&mut self, value: &Value, path: &str) -> Option<Vec<Step>> {
        let items = self.array(value, path)?;
        if items.is_empty() {
            self.fail(path, "is empty; give at least one step");
            return None;
        }
        let mut steps: Vec<Step> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let spath = format!("{path}[{i}]");
            let Some(obj) = self.object(item, &spath) else {
                ok = false;
                continue;
            };
            self.known_fields(obj, &spath, &["at", "weight"]);
            let at = self.required(obj, &spath, "at").and_then(|v| {
                let field = format!("{spath}.at");
                let text = self.string(v, &field)?;
                schedule::parse_rfc3339(text)
                    .map_err(|e| self.fail(&field, format!("{text:?} {e}")))
                    .ok()
            });
            let weight = self
                .required(obj, &spath, "weight")
                .and_then(|v| self.weight(v, &format!("{spath}.weight")));
            match (at, weight) {
                (Some(at), Some(weight)) => {
                    if let Some(prev) = steps.last() {
                        if at <= prev.at {
                            self.fail(
                                &format!("{spath}.at"),
                                "is not after the previous step's time; steps go in time order",
                            );
                            ok = false;
                        }
                    }
                    steps.push(Step { at, weight });
                }
                _ => ok = false,
            }
        }
        ok.then_some(steps)
    }

    fn pins(&mut self, value: &Value, path: &str, clusters: &[String]) -> BTreeMap<Vec<u8>, usize> {
        let mut pins = BTreeMap::new();
        let Some(obj) = self.object(value, path) else {
            return pins;
        };
        for (cluster, users) in obj {
            let field = format!("{path}.{cluster}");
            let Some(index) = clusters.iter().position(|c| c == cluster) else {
                self.fail(
                    &field,
                    format!("{cluster:?} is not a cluster of this split"),
                );
                continue;
            };
            let Some(users) = self.array(users, &field) else {
                continue;
            };
            for (i, user) in users.iter().enumerate() {
                let upath = format!("{field}[{i}]");
                let Some(user) = self.non_empty(user, &upath) else {
                    continue;
                };
                if let Some(&other) = pins.get(user.as_bytes()) {
                    if other != index {
                        self.fail(
                            &upath,
                            format!("user {user:?} is also pinned to {:?}", clusters[other]),
                        );
                    }
                }
                pins.insert(user.into_bytes(), index);
            }
        }
        pins
    }

    /// `splits[].guard`: every field optional, at least one limit.
    fn guard(&mut self, value: &Value, path: &str) -> Option<GuardPlan> {
        let obj = self.object(value, path)?;
        self.known_fields(obj, path, GUARD_FIELDS);
        if !GUARD_LIMITS.iter().any(|l| obj.contains_key(*l)) {
            self.fail(
                path,
                format!(
                    "sets no limit, so it would judge nothing; give at least one of {}",
                    GUARD_LIMITS.join(", ")
                ),
            );
        }
        let field = |name: &str| format!("{path}.{name}");
        let defaults = GuardPlan::default();
        // Every field is checked before any refusal returns, so that all
        // of a guard's problems are reported at once.
        let window_s = match obj.get("window_s") {
            Some(v) => self.whole_in(v, &field("window_s"), 1, MAX_GUARD_WINDOW_S),
            None => Some(u64::from(defaults.window_s)),
        };
        let min_requests = match obj.get("min_requests") {
            Some(v) => self.whole_in(v, &field("min_requests"), 1, MAX_MIN_REQUESTS),
            None => Some(u64::from(defaults.min_requests)),
        };
        let errors = match obj.get("errors") {
            Some(v) => self.error_classes(v, &field("errors")),
            None => Some(defaults.errors),
        };
        let mut limit = |name: &str, max: f64| match obj.get(name) {
            Some(v) => self.positive_up_to(v, &field(name), max).map(Some),
            None => Some(None),
        };
        let max_error_rate = limit("max_error_rate", 1.0);
        let max_p99_ms = limit("max_p99_ms", MAX_P99_MS);
        let max_p95_ratio = limit("max_p95_ratio", MAX_RATIO);
        let max_error_ratio = limit("max_error_ratio", MAX_RATIO);
        let alpha = limit("alpha", MAX_ALPHA);
        Some(GuardPlan {
            window_s: u32::try_from(window_s?).ok()?,
            min_requests: u32::try_from(min_requests?).ok()?,
            errors: errors?,
            max_error_rate: max_error_rate?,
            max_p99_ms: max_p99_ms?,
            max_p95_ratio: max_p95_ratio?,
            max_error_ratio: max_error_ratio?,
            alpha: alpha?.unwrap_or(defaults.alpha),
        })
    }

    fn error_classes(&mut self, value: &Value, path: &str) -> Option<ErrorClasses> {
        let items = self.array(value, path)?;
        if items.is_empty() {
            self.fail(
                path,
                "is empty; give at least one of \"4xx\", \"5xx\", \"reset\"",
            );
            return None;
        }
        let mut classes = ErrorClasses::NONE;
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            let Some(name) = self.string(item, &ipath) else {
                ok = false;
                continue;
            };
            match ERROR_CLASSES.into_iter().find(|c| c.as_str() == name) {
                Some(class) if classes.contains(class) => {
                    self.fail(&ipath, format!("{name:?} is listed twice"));
                    ok = false;
                }
                Some(class) => classes = classes.with(class),
                None => {
                    self.fail(
                        &ipath,
                        format!("{name:?} is not \"4xx\", \"5xx\" or \"reset\""),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(classes)
    }

    fn trace(&mut self, value: &Value) -> TraceSettings {
        let mut trace = TraceSettings::default();
        let Some(obj) = self.object(value, "trace") else {
            return trace;
        };
        self.known_fields(obj, "trace", &["response_header", "tracestate"]);
        if let Some(v) = obj.get("response_header") {
            if let Some(name) = self.header_name(v, "trace.response_header") {
                trace.response_header = name;
            }
        }
        if let Some(v) = obj.get("tracestate") {
            trace.tracestate = self.boolean(v, "trace.tracestate").unwrap_or(false);
        }
        trace
    }

    fn mode_fields(&mut self, obj: &Map<String, Value>, path: &str) -> ModeFields {
        let field = |name: &str| {
            if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            }
        };
        let mut fields = ModeFields::default();
        if let Some(v) = obj.get("mode") {
            fields.mode = match self.string(v, &field("mode")) {
                Some("normal") => Some(Mode::Normal),
                Some("read_only") => Some(Mode::ReadOnly),
                Some("maintenance") => Some(Mode::Maintenance),
                Some(other) => {
                    self.fail(
                        &field("mode"),
                        format!("{other:?} is not \"normal\", \"read_only\" or \"maintenance\""),
                    );
                    None
                }
                None => None,
            };
        }
        if let Some(v) = obj.get("retry_after_s") {
            let f = field("retry_after_s");
            fields.retry_after_s = self.whole_number(v, &f).filter(|&s| {
                let ok = s <= MAX_RETRY_AFTER_S;
                if !ok {
                    self.fail(&f, format!("{s} is over {MAX_RETRY_AFTER_S} (one day)"));
                }
                ok
            });
        }
        if let Some(v) = obj.get("allow_paths") {
            let f = field("allow_paths");
            let mut paths = Vec::new();
            for (i, p) in self.array(v, &f).unwrap_or(&Vec::new()).iter().enumerate() {
                let item = format!("{f}[{i}]");
                match self.string(p, &item) {
                    Some(p) if p.starts_with('/') => paths.push(p.to_string()),
                    Some(p) => self.fail(&item, format!("{p:?} does not start with '/'")),
                    None => {}
                }
            }
            fields.allow_paths = Some(paths);
        }
        if let Some(v) = obj.get("maintenance_body") {
            fields.maintenance_body = self
                .string(v, &field("maintenance_body"))
                .map(str::to_string);
        }
        fields
    }

    /// The decision header must not be one the filter reads: it is stripped
    /// from every request, so a user key or force header of the same name
    /// could never arrive.
    fn header_collisions(&mut self, decision: &str, user_key: &[KeySource], splits: &[SplitPlan]) {
        for (i, source) in user_key.iter().enumerate() {
            if matches!(source, KeySource::Header(h) if h == decision) {
                self.fail(
                    &format!("user_key[{i}].header"),
                    format!("{decision:?} is the decision header"),
                );
            }
        }
        for (i, split) in splits.iter().enumerate() {
            if split.force_header.as_deref() == Some(decision) {
                self.fail(
                    &format!("splits[{i}].force_header"),
                    format!("{decision:?} is the decision header"),
                );
            }
        }
    }
}

/// A split's mode fields win over the top level's, one by one.
fn resolve_mode(top: &ModeFields, split: &ModeFields, split_name: Option<&str>) -> ModePolicy {
    mode_policy(
        split.mode.or(top.mode).unwrap_or_default(),
        split
            .retry_after_s
            .or(top.retry_after_s)
            .unwrap_or(DEFAULT_RETRY_AFTER_S),
        split
            .allow_paths
            .clone()
            .or_else(|| top.allow_paths.clone())
            .unwrap_or_default(),
        split
            .maintenance_body
            .as_deref()
            .or(top.maintenance_body.as_deref()),
        split_name,
    )
}

fn mode_policy(
    mode: Mode,
    retry_after_s: u64,
    allow_paths: Vec<String>,
    maintenance_body: Option<&str>,
    split: Option<&str>,
) -> ModePolicy {
    let split_json = split.map_or("null".to_string(), |s| {
        Value::String(s.to_string()).to_string()
    });
    ModePolicy {
        mode,
        retry_after: retry_after_s.to_string(),
        allow_paths,
        maintenance_body: maintenance_body.map_or_else(
            || format!("{{\"error\":\"maintenance\",\"message\":\"down for maintenance; retry after {retry_after_s} s\"}}"),
            str::to_string,
        ),
        read_only_body: format!(
            "{{\"error\":\"read_only\",\"split\":{split_json},\"message\":\"writes are paused during a migration; retry after {retry_after_s} s\"}}"
        ),
    }
}
