//! Shadow traffic, the pure part: which requests a split copies to another
//! cluster (`splits[].shadow`), what the copy carries, how its answer is
//! compared with the stable cluster's, which fields differ, when the copies
//! fail too often to go on, and what is logged. The shells send the copies
//! and count; nothing here calls the host, reads a clock or draws a number.
//!
//! A shell, per request that a split sends to its stable cluster:
//!
//! ```text
//! on the request:  if !tripped && shadow::sample(plan, &verdict, method, || draw())
//!                  { copy with shadow::copy_headers(..), the body if <= max_body_bytes
//!                    and in flight < max_in_flight (else outcome skipped) }
//!                  if plan.noise_for(method) { send it to stable a second time too }
//! on both answers: c = compare(&plan.compare, &stable, &copy, second.as_ref());
//!                  count c.outcome, c.parts, c.fields and c.noise_fields (FieldTable
//!                  gives each field its series), log c.log_line(..) if LogLimiter allows
//! every copy:      failures.record(now_s, copy_failed(stable_status, end));
//!                  if let Some(trip) = failures.judge() { stop copying, gauge 1, one line }
//! ```
//!
//! The parsing of `splits[].shadow` is in `config/shadow.rs`, with the
//! rest of the configuration's.

mod book;
mod compare;
mod diff;
mod failures;
mod fields;
mod log;
mod pointer;
mod request;

pub use book::{Book, Opened, Reply, Settled, Side};
pub use compare::{compare, noisy_fields, Answer, Comparison, Outcome, Part};
pub use diff::MAX_FIELDS_PER_PAIR;
pub use failures::{copy_failed, CopyEnd, FailureWindow, ShadowTrip};
pub use fields::{FieldTable, Slot, MAX_FIELDS, OTHER_FIELD, ROOT_FIELD};
pub use log::{mismatch_line, LogLimiter};
pub use pointer::{Pattern, Segment};
pub use request::{copy_headers, is_hop_by_hop, sample, HOP_BY_HOP, SHADOW_HEADER};

/// A split's shadow, as configured (`splits[].shadow`), validated.
#[derive(Clone, Debug, PartialEq)]
pub struct ShadowPlan {
    /// The cluster the copies go to.
    pub cluster: String,
    /// The share of eligible requests copied, in basis points (0..=10000).
    pub percent: u16,
    /// Uppercase methods that are copied.
    pub methods: Vec<String>,
    /// Whether methods with side effects may be copied (dual writes).
    pub writes: bool,
    pub timeout_ms: u32,
    /// A request body over this is not copied (outcome `skipped`).
    pub max_body_bytes: u32,
    /// Copies waiting per worker past which a copy is skipped.
    pub max_in_flight: u32,
    pub compare: ComparePlan,
    /// Reads are also sent to stable a second time to learn the noise.
    pub noise: bool,
    /// The copies' failure rate over `window_s` that stops the copying.
    pub max_error_rate: f64,
    pub window_s: u32,
    /// Copies the window needs before it is judged.
    pub min_requests: u32,
}

impl ShadowPlan {
    /// The plan of `{"cluster": CLUSTER}`: every other field at its default.
    pub fn new(cluster: &str) -> ShadowPlan {
        ShadowPlan {
            cluster: cluster.to_string(),
            percent: 10_000,
            methods: vec!["GET".into(), "HEAD".into()],
            writes: false,
            timeout_ms: 2000,
            max_body_bytes: 1_048_576,
            max_in_flight: 256,
            compare: ComparePlan::default(),
            noise: false,
            max_error_rate: 0.05,
            window_s: 60,
            min_requests: 50,
        }
    }

    /// Whether a copy of a `method` request is also sent to stable a
    /// second time: only reads, since a write sent twice writes twice.
    pub fn noise_for(&self, method: &[u8]) -> bool {
        self.noise && is_safe_method(method)
    }
}

/// How two answers are compared (`compare`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComparePlan {
    pub status: bool,
    /// Lowercase response header names whose values must be equal.
    pub headers: Vec<String>,
    pub body: BodyCompare,
    /// Subtrees left out of a JSON comparison. At most
    /// [`MAX_IGNORE`] of them, so a set of them fits a `u64`.
    pub ignore: Vec<Pattern>,
}

impl Default for ComparePlan {
    fn default() -> Self {
        ComparePlan {
            status: true,
            headers: vec!["content-type".into()],
            body: BodyCompare::Json,
            ignore: Vec::new(),
        }
    }
}

/// `compare.body`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BodyCompare {
    /// Both parsed and compared value by value; a body that is not JSON
    /// is compared as bytes.
    #[default]
    Json,
    Bytes,
    None,
}

impl BodyCompare {
    pub fn as_str(self) -> &'static str {
        match self {
            BodyCompare::Json => "json",
            BodyCompare::Bytes => "bytes",
            BodyCompare::None => "none",
        }
    }
}

/// The most `compare.ignore` entries: the comparison tracks which of them
/// still match the path it is at in one `u64`.
pub const MAX_IGNORE: usize = 64;

/// Methods without side effects (RFC 9110 safe methods but TRACE, which
/// reflects the request and has no business on a copy).
pub const SAFE_METHODS: [&str; 3] = ["GET", "HEAD", "OPTIONS"];

/// Whether a method may be copied without `"writes": true`.
pub fn is_safe_method(method: &[u8]) -> bool {
    SAFE_METHODS.iter().any(|m| m.as_bytes() == method)
}
