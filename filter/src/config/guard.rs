//! `splits[].guard` (and a rollout plan's `analysis`, which means what the
//! guard's fields mean): its window, error classes and limits.

use super::*;

/// An object checked as `splits[].guard` is, every problem named under
/// `path`: a rollout plan's `analysis` means what the guard's fields mean.
pub fn guard_field(value: &Value, path: &str) -> Result<GuardPlan, Vec<Problem>> {
    let mut v = Validator::default();
    match v.guard(value, path) {
        Some(plan) if v.problems.is_empty() => Ok(plan),
        _ => Err(v.problems),
    }
}

pub(super) const GUARD_FIELDS: &[&str] = &[
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
pub(super) const GUARD_LIMITS: &[&str] = &[
    "max_error_rate",
    "max_p99_ms",
    "max_p95_ratio",
    "max_error_ratio",
];
/// The response classes a guard may count as errors.
pub(super) const ERROR_CLASSES: [Class; 3] = [Class::ClientError, Class::ServerError, Class::Reset];
pub(super) const MAX_GUARD_WINDOW_S: u64 = 3600;
pub(super) const MAX_MIN_REQUESTS: u64 = 1_000_000_000;
/// An hour: a p99 limit above it could never be told from a hung request.
pub(super) const MAX_P99_MS: f64 = 3_600_000.0;
pub(super) const MAX_RATIO: f64 = 1000.0;
pub(super) const MAX_ALPHA: f64 = 0.5;

impl Validator {
    /// `splits[].guard`: every field optional, at least one limit.
    pub(super) fn guard(&mut self, value: &Value, path: &str) -> Option<GuardPlan> {
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

    pub(super) fn error_classes(&mut self, value: &Value, path: &str) -> Option<ErrorClasses> {
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
}
