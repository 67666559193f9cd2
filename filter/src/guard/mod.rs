//! The guard: judges each target of a split against its limits from the
//! responses it sees, so the split can be sent back to stable within about
//! a second of a failure (the shell does the sending; this decides).
//!
//! Envoy runs one VM per worker, each seeing its share of the traffic:
//!
//! - each worker records every response in its [`Local`] state, with no
//!   host call and no allocation, and judges its own window at once
//!   ([`Local::judge`]: the error rate, p99 and p95 ratio), so a failure
//!   one worker alone can see trips without waiting;
//! - at every tick (a second or less) it adds what it recorded since its
//!   last merge ([`Local::delta`]) into the [`Merged`] state that the host
//!   keeps as bytes ([`Merged::encode`], [`Merged::decode`]; compare and
//!   swap), judges the sum of all workers ([`Merged::judge`]), and clears
//!   its delta once the write succeeded;
//! - the sequential test of `max_error_ratio` runs on the merged state only
//!   (see [`sprt`]): one test over all the traffic keeps its false-alarm
//!   bound, one per worker would multiply it.
//!
//! Whichever state is judged, the limits are judged by [`judge`], through
//! a window's per-cluster totals: the same functions that turnoutctl's
//! rollout controller judges a step's scraped counts with.
//!
//! A shell, per guarded split and worker:
//!
//! ```text
//! on a response:  local.record(now_s, cluster, class, latency_ms);
//!                 if let Some(trip) = local.judge() { follow it now; keep it to latch }
//! at a tick:      loop {
//!                     (bytes, cas) = shared data under the split's key
//!                     merged = Merged::decode(plan, clusters, bytes) or Merged::new(plan, clusters)
//!                     merged.absorb(now_s, local.delta())
//!                     if let Some(trip) = kept local trip or merged.judge() { merged.latch(trip) }
//!                     write merged.encode() with cas; on a mismatch, again
//!                 }
//!                 local.clear_delta(); follow merged.trip()
//! ```
//!
//! Time is always passed in (Unix seconds, the same clock on every
//! worker), so everything here is deterministic and tested on the host.

pub mod codec;
pub mod histogram;
pub mod judge;
pub mod sprt;
mod state;
pub mod window;

use std::fmt;

use crate::stats::Class;

pub use state::{Local, Merged};
pub use window::Window;

/// A split's guard, as configured (`splits[].guard`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GuardPlan {
    /// The sliding window of the absolute limits and the p95 ratio.
    pub window_s: u32,
    /// Responses a cluster needs in the window before it is judged.
    pub min_requests: u32,
    /// Which response classes count as errors.
    pub errors: ErrorClasses,
    /// A limit that is `None` is not judged.
    pub max_error_rate: Option<f64>,
    pub max_p99_ms: Option<f64>,
    pub max_p95_ratio: Option<f64>,
    pub max_error_ratio: Option<f64>,
    /// The sequential test's false-alarm bound, per split.
    pub alpha: f64,
}

impl Default for GuardPlan {
    /// The defaults of every field, judging nothing.
    fn default() -> Self {
        GuardPlan {
            window_s: 30,
            min_requests: 50,
            errors: ErrorClasses::DEFAULT,
            max_error_rate: None,
            max_p99_ms: None,
            max_p95_ratio: None,
            max_error_ratio: None,
            alpha: 0.001,
        }
    }
}

impl GuardPlan {
    /// A stable summary of every field, with the split's cluster count:
    /// merged state written under another is not read back.
    pub fn fingerprint(&self, clusters: usize) -> u64 {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(&u64::from(codec::FORMAT).to_le_bytes());
        bytes.extend_from_slice(&(clusters as u64).to_le_bytes());
        bytes.extend_from_slice(&self.window_s.to_le_bytes());
        bytes.extend_from_slice(&self.min_requests.to_le_bytes());
        bytes.push(self.errors.0);
        for limit in [
            self.max_error_rate,
            self.max_p99_ms,
            self.max_p95_ratio,
            self.max_error_ratio,
            Some(self.alpha),
        ] {
            bytes.extend_from_slice(&limit.map_or(u64::MAX, f64::to_bits).to_le_bytes());
        }
        xxhash_rust::xxh64::xxh64(&bytes, 0)
    }
}

/// A set of response classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorClasses(u8);

impl ErrorClasses {
    pub const NONE: ErrorClasses = ErrorClasses(0);
    /// `["5xx", "reset"]`.
    pub const DEFAULT: ErrorClasses =
        ErrorClasses((1 << Class::ServerError as u8) | (1 << Class::Reset as u8));

    pub fn with(self, class: Class) -> ErrorClasses {
        ErrorClasses(self.0 | 1 << class as u8)
    }

    pub fn contains(self, class: Class) -> bool {
        self.0 & (1 << class as u8) != 0
    }
}

/// The limit a trip breached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    ErrorRate,
    P99,
    P95Ratio,
    ErrorRatio,
}

impl Rule {
    pub const ALL: [Rule; 4] = [Rule::ErrorRate, Rule::P99, Rule::P95Ratio, Rule::ErrorRatio];

    /// The configuration field's name without `max_`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::ErrorRate => "error_rate",
            Rule::P99 => "p99_ms",
            Rule::P95Ratio => "p95_ratio",
            Rule::ErrorRatio => "error_ratio",
        }
    }
}

/// A breached limit: which target, which rule, what was measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trip {
    /// The cluster index in the split (`1..`: a target).
    pub target: usize,
    pub rule: Rule,
    /// The error rate (0..1), the p99 in ms, the p95 ratio, or for
    /// `error_ratio` the ratio of the two error rates over the window
    /// (infinite when stable had no error in it).
    pub measured: f64,
    pub limit: f64,
}

impl Trip {
    /// The warning line: `guard tripped: split=users cluster=fastapi
    /// rule=error_rate measured=0.35 limit=0.01`.
    pub fn log_line(&self, split: &str, clusters: &[String]) -> String {
        let cluster = clusters.get(self.target).map_or("?", String::as_str);
        format!(
            "guard tripped: split={split} cluster={cluster} rule={} measured={} limit={}",
            self.rule.as_str(),
            number(self.measured),
            number(self.limit)
        )
    }
}

impl fmt::Display for Trip {
    /// `target=1 rule=error_rate measured=0.35 limit=0.01`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "target={} rule={} measured={} limit={}",
            self.target,
            self.rule.as_str(),
            number(self.measured),
            number(self.limit)
        )
    }
}

/// A measured value with the digits that matter: `0.0123`, `2.35`, `320`.
pub(crate) fn number(x: f64) -> String {
    if !x.is_finite() {
        return if x > 0.0 { "inf".into() } else { "nan".into() };
    }
    let text = match x.abs() {
        a if a >= 100.0 => format!("{x:.0}"),
        a if a >= 1.0 => format!("{x:.2}"),
        _ => format!("{x:.4}"),
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(0.35), "0.35");
        assert_eq!(number(0.012345), "0.0123");
        assert_eq!(number(2.0), "2");
        assert_eq!(number(2.345), "2.35");
        assert_eq!(number(320.4), "320");
        assert_eq!(number(f64::INFINITY), "inf");
        assert_eq!(number(0.0), "0");
    }

    #[test]
    fn error_classes() {
        assert!(ErrorClasses::DEFAULT.contains(Class::ServerError));
        assert!(ErrorClasses::DEFAULT.contains(Class::Reset));
        assert!(!ErrorClasses::DEFAULT.contains(Class::ClientError));
        assert!(ErrorClasses::NONE
            .with(Class::ClientError)
            .contains(Class::ClientError));
    }
}
