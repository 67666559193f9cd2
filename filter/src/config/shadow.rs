//! `splits[].shadow`: validated into a [`ShadowPlan`].
//!
//! It reports with the validator's primitives, as every other field does:
//! every problem names its field, all at once.
//!
//! Bounds, beside the contract's: `percent` 0 to 100 with at most two
//! decimals (as a target's weight); `methods` not empty, no repeats;
//! `timeout_ms` 1 to 60,000 (a copy held longer than a minute holds its
//! buffered body as long); `max_body_bytes` 0 (bodiless requests only) to
//! 16 MiB; `max_in_flight` 1 to 10,000; `window_s` 1 to 3,600 and
//! `min_requests` 1 to 10^9 (the guard's bounds); `max_error_rate` above 0
//! and at most 1 (1: never stop); `compare.headers` no repeats;
//! `compare.ignore` at most 64 pointers, no repeats, and only with
//! `"body": "json"` (elsewhere they would ignore nothing).

use serde_json::{Map, Value};

use super::{Validator, MAX_GUARD_WINDOW_S, MAX_MIN_REQUESTS};
use crate::shadow::{
    is_safe_method, BodyCompare, ComparePlan, Pattern, ShadowPlan, MAX_IGNORE, SAFE_METHODS,
};

const SHADOW_FIELDS: &[&str] = &[
    "cluster",
    "percent",
    "methods",
    "writes",
    "timeout_ms",
    "max_body_bytes",
    "max_in_flight",
    "compare",
    "noise",
    "max_error_rate",
    "window_s",
    "min_requests",
];
const COMPARE_FIELDS: &[&str] = &["status", "headers", "body", "ignore"];
const MAX_TIMEOUT_MS: u64 = 60_000;
const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;
const MAX_IN_FLIGHT: u64 = 10_000;

impl Validator {
    /// `splits[].shadow`; `stable`: the split's stable cluster, when valid.
    pub(super) fn shadow(
        &mut self,
        value: &Value,
        path: &str,
        stable: Option<&str>,
    ) -> Option<ShadowPlan> {
        let obj = self.object(value, path)?;
        self.known_fields(obj, path, SHADOW_FIELDS);
        let field = |name: &str| format!("{path}.{name}");
        let defaults = ShadowPlan::new("");
        // Every field is checked before any refusal returns, so that all
        // of a shadow's problems are reported at once.
        let cluster = self
            .required(obj, path, "cluster")
            .and_then(|v| self.cluster_name(v, &field("cluster")));
        if cluster.is_some() && cluster.as_deref() == stable {
            self.fail(
                &field("cluster"),
                format!(
                    "{:?} is the split's stable cluster; copies go to another",
                    stable.unwrap_or_default()
                ),
            );
        }
        let flag = |v: &mut Validator, name: &str, default: bool| match obj.get(name) {
            Some(x) => v.boolean(x, &field(name)),
            None => Some(default),
        };
        let writes = flag(self, "writes", defaults.writes);
        let noise = flag(self, "noise", defaults.noise);
        let percent = match obj.get("percent") {
            Some(v) => self.weight(v, &field("percent")),
            None => Some(defaults.percent),
        };
        let methods = match obj.get("methods") {
            Some(v) => self.shadow_methods(v, &field("methods"), writes.unwrap_or(false)),
            None => Some(defaults.methods),
        };
        let whole =
            |v: &mut Validator, name: &str, lo: u64, hi: u64, default: u32| match obj.get(name) {
                Some(x) => v
                    .whole_in(x, &field(name), lo, hi)
                    .and_then(|n| u32::try_from(n).ok()),
                None => Some(default),
            };
        let timeout_ms = whole(self, "timeout_ms", 1, MAX_TIMEOUT_MS, defaults.timeout_ms);
        let max_body_bytes = whole(
            self,
            "max_body_bytes",
            0,
            MAX_BODY_BYTES,
            defaults.max_body_bytes,
        );
        let max_in_flight = whole(
            self,
            "max_in_flight",
            1,
            MAX_IN_FLIGHT,
            defaults.max_in_flight,
        );
        let window_s = whole(self, "window_s", 1, MAX_GUARD_WINDOW_S, defaults.window_s);
        let min_requests = whole(
            self,
            "min_requests",
            1,
            MAX_MIN_REQUESTS,
            defaults.min_requests,
        );
        let max_error_rate = match obj.get("max_error_rate") {
            Some(v) => self.positive_up_to(v, &field("max_error_rate"), 1.0),
            None => Some(defaults.max_error_rate),
        };
        let compare = match obj.get("compare") {
            Some(v) => self.shadow_compare(v, &field("compare")),
            None => Some(ComparePlan::default()),
        };
        Some(ShadowPlan {
            cluster: cluster?,
            percent: percent?,
            methods: methods?,
            writes: writes?,
            timeout_ms: timeout_ms?,
            max_body_bytes: max_body_bytes?,
            max_in_flight: max_in_flight?,
            compare: compare?,
            noise: noise?,
            max_error_rate: max_error_rate?,
            window_s: window_s?,
            min_requests: min_requests?,
        })
    }

    /// Methods, uppercase; one with side effects only with `writes`.
    fn shadow_methods(&mut self, value: &Value, path: &str, writes: bool) -> Option<Vec<String>> {
        let items = self.array(value, path)?;
        if items.is_empty() {
            self.fail(
                path,
                "is empty; give at least one method, or set \"percent\" to 0",
            );
            return None;
        }
        let mut methods = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            let Some(m) = self.string(item, &ipath) else {
                ok = false;
                continue;
            };
            let method = m.to_ascii_uppercase();
            let problem = if m.is_empty() || !m.bytes().all(super::is_token_byte) {
                Some(format!("{m:?} is not an HTTP method"))
            } else if methods.contains(&method) {
                Some(format!("{m:?} is listed twice"))
            } else if !writes && !is_safe_method(method.as_bytes()) {
                Some(format!(
                    "{m:?} has side effects: its copies would write on the new side too (dual writes); \
                     set \"writes\": true to copy it, or copy only {}",
                    SAFE_METHODS.join(", ")
                ))
            } else {
                None
            };
            match problem {
                Some(problem) => {
                    self.fail(&ipath, problem);
                    ok = false;
                }
                None => methods.push(method),
            }
        }
        ok.then_some(methods)
    }

    /// `shadow.compare`: every field optional.
    fn shadow_compare(&mut self, value: &Value, path: &str) -> Option<ComparePlan> {
        let obj = self.object(value, path)?;
        self.known_fields(obj, path, COMPARE_FIELDS);
        let field = |name: &str| format!("{path}.{name}");
        let defaults = ComparePlan::default();
        let status = match obj.get("status") {
            Some(v) => self.boolean(v, &field("status")),
            None => Some(defaults.status),
        };
        let headers = match obj.get("headers") {
            Some(v) => self.shadow_headers(v, &field("headers")),
            None => Some(defaults.headers),
        };
        let body = match obj.get("body") {
            None => Some(defaults.body),
            Some(v) => match self.string(v, &field("body")) {
                Some("json") => Some(BodyCompare::Json),
                Some("bytes") => Some(BodyCompare::Bytes),
                Some("none") => Some(BodyCompare::None),
                Some(other) => {
                    self.fail(
                        &field("body"),
                        format!("{other:?} is not \"json\", \"bytes\" or \"none\""),
                    );
                    None
                }
                None => None,
            },
        };
        let ignore = self.shadow_ignore(obj, &field("ignore"), body);
        Some(ComparePlan {
            status: status?,
            headers: headers?,
            body: body?,
            ignore: ignore?,
        })
    }

    fn shadow_headers(&mut self, value: &Value, path: &str) -> Option<Vec<String>> {
        let items = self.array(value, path)?;
        let mut names: Vec<String> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            match self.header_name(item, &ipath) {
                Some(name) if names.contains(&name) => {
                    self.fail(&ipath, format!("{name:?} is listed twice"));
                    ok = false;
                }
                Some(name) => names.push(name),
                None => ok = false,
            }
        }
        ok.then_some(names)
    }

    /// `compare.ignore` (in `compare`'s object) checked against `body`.
    fn shadow_ignore(
        &mut self,
        compare: &Map<String, Value>,
        path: &str,
        body: Option<BodyCompare>,
    ) -> Option<Vec<Pattern>> {
        let Some(value) = compare.get("ignore") else {
            return Some(Vec::new());
        };
        let items = self.array(value, path)?;
        if items.len() > MAX_IGNORE {
            self.fail(
                path,
                format!("has {} pointers, over {MAX_IGNORE}", items.len()),
            );
            return None;
        }
        if let Some(body) = body.filter(|b| *b != BodyCompare::Json && !items.is_empty()) {
            self.fail(
                path,
                format!(
                    "applies to \"body\": \"json\" only; with {:?} it would ignore nothing",
                    body.as_str()
                ),
            );
            return None;
        }
        let mut patterns: Vec<Pattern> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            let Some(text) = self.string(item, &ipath) else {
                ok = false;
                continue;
            };
            match Pattern::parse(text) {
                Ok(p) if patterns.contains(&p) => {
                    self.fail(&ipath, format!("{text:?} is listed twice"));
                    ok = false;
                }
                Ok(p) => patterns.push(p),
                Err(why) => {
                    self.fail(&ipath, format!("{text:?} {why}"));
                    ok = false;
                }
            }
        }
        ok.then_some(patterns)
    }
}
