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

mod guard;
mod modes;
mod shadow;
mod weights;

pub use guard::guard_field;
use guard::*;
use modes::*;

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

/// XXH64 of a JSON value written canonically (object keys sorted, no
/// spaces: `serde_json` without `preserve_order`), so text that differs
/// only in layout or key order has the same fingerprint.
fn fingerprint(value: &Value) -> u64 {
    let canonical = serde_json::to_vec(value).unwrap_or_default();
    xxhash_rust::xxh64::xxh64(&canonical, 0)
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
            shadowed: splits.iter().any(|s| s.shadow.is_some()),
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
