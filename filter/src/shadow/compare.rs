//! Comparing the stable cluster's answer with the copy's: the status, the
//! listed response headers and the body, as `compare` says; and the noise
//! (Diffy's method): what differs between two answers of the stable
//! cluster itself to the same request (a timestamp, a request id) is not
//! held against the copy.

use serde_json::Value;

use super::diff::{self, Fields};
use super::pointer::covers;
use super::{BodyCompare, ComparePlan};

/// One answer to a request, as far as a comparison reads it.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'a> {
    pub status: u16,
    /// The response headers (any case; a repeated header as several pairs).
    pub headers: &'a [(&'a [u8], &'a [u8])],
    pub body: &'a [u8],
}

/// The `outcome` label of `turnout_shadow_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Match,
    Mismatch,
    /// The copy got no answer.
    Error,
    Timeout,
    /// The copy was not sent (a body over `max_body_bytes`, too many in flight).
    Skipped,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Match,
        Outcome::Mismatch,
        Outcome::Error,
        Outcome::Timeout,
        Outcome::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::Mismatch => "mismatch",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Skipped => "skipped",
        }
    }
}

/// The `part` label of `turnout_shadow_mismatch_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    Status,
    Header,
    Body,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::Status, Part::Header, Part::Body];

    pub fn as_str(self) -> &'static str {
        match self {
            Part::Status => "status",
            Part::Header => "header",
            Part::Body => "body",
        }
    }
}

/// How a copy's answer compares with stable's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comparison {
    /// `Match` or `Mismatch`.
    pub outcome: Outcome,
    /// The parts that differ (not as noise), in [`Part::ALL`] order.
    pub parts: Vec<Part>,
    /// The headers that differ, lowercase, in `compare.headers` order.
    pub headers: Vec<String>,
    /// The body's fields that differ (not as noise): folded pointers,
    /// sorted, each once. Empty when the bodies differ as bytes.
    pub fields: Vec<String>,
    /// The fields where the two stable answers differ (`""`: the whole
    /// body, when it is not JSON), sorted; empty without a second answer.
    pub noise_fields: Vec<String>,
}

/// Compares the copy's answer with stable's. With `noise_from` (a second
/// answer of stable to the same request), whatever differs between the two
/// stable answers is noise: a field under a noisy one, a header that
/// differs between them, the status if theirs differ, and the whole body
/// if theirs differ as bytes. What is left decides the outcome.
pub fn compare(
    plan: &ComparePlan,
    stable: &Answer<'_>,
    copy: &Answer<'_>,
    noise_from: Option<&Answer<'_>>,
) -> Comparison {
    let found = differences(plan, stable, copy);
    let (noisy_status, noisy_headers, noise_fields) = match noise_from {
        Some(second) => {
            let noise = differences(plan, stable, second);
            (noise.status, noise.headers, noise.body.noisy())
        }
        None => (false, Vec::new(), Vec::new()),
    };
    let noisy = |field: &str| noise_fields.iter().any(|n| covers(n, field));

    let status = found.status && !noisy_status;
    let headers: Vec<String> = found
        .headers
        .into_iter()
        .filter(|h| !noisy_headers.contains(h))
        .collect();
    let (body, fields) = match found.body {
        Body::Same => (false, Vec::new()),
        Body::Bytes => (!noisy(""), Vec::new()),
        Body::Fields(found) => {
            let fields: Vec<String> = found.set.into_iter().filter(|f| !noisy(f)).collect();
            // Fields past the cap are unknown: they may not be noise.
            (!fields.is_empty() || found.truncated, fields)
        }
    };
    let parts: Vec<Part> = [(status, Part::Status), (!headers.is_empty(), Part::Header)]
        .into_iter()
        .chain(std::iter::once((body, Part::Body)))
        .filter_map(|(differs, part)| differs.then_some(part))
        .collect();
    Comparison {
        outcome: if parts.is_empty() {
            Outcome::Match
        } else {
            Outcome::Mismatch
        },
        parts,
        headers,
        fields,
        noise_fields,
    }
}

/// The noisy fields of two stable answers' bodies: where they differ, as
/// `compare` would find it (`""` when they differ as bytes: the whole body).
pub fn noisy_fields(plan: &ComparePlan, first: &[u8], second: &[u8]) -> Vec<String> {
    body(plan, first, second).noisy()
}

/// Every difference of two answers, before noise.
struct Differences {
    status: bool,
    headers: Vec<String>,
    body: Body,
}

enum Body {
    Same,
    /// Compared as bytes (not JSON, or `"bytes"`), and different.
    Bytes,
    /// Compared as JSON, and different at these fields.
    Fields(Fields),
}

impl Body {
    fn noisy(self) -> Vec<String> {
        match self {
            Body::Same => Vec::new(),
            Body::Bytes => vec![String::new()],
            Body::Fields(fields) => fields.set.into_iter().collect(),
        }
    }
}

fn differences(plan: &ComparePlan, a: &Answer<'_>, b: &Answer<'_>) -> Differences {
    Differences {
        status: plan.status && a.status != b.status,
        headers: plan
            .headers
            .iter()
            .filter(|name| !values(a.headers, name).eq(values(b.headers, name)))
            .cloned()
            .collect(),
        body: body(plan, a.body, b.body),
    }
}

/// The values of header `name` (any case), in order: a header missing on
/// one side differs, as do repeated values in another order.
fn values<'a>(
    headers: &'a [(&'a [u8], &'a [u8])],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| *v)
}

fn body(plan: &ComparePlan, a: &[u8], b: &[u8]) -> Body {
    if plan.body == BodyCompare::None || a == b {
        return Body::Same;
    }
    if plan.body == BodyCompare::Json {
        let parsed = serde_json::from_slice::<Value>(a)
            .and_then(|x| Ok((x, serde_json::from_slice::<Value>(b)?)));
        if let Ok((x, y)) = parsed {
            let fields = diff::fields(&x, &y, &plan.ignore);
            return if fields.is_empty() {
                Body::Same
            } else {
                Body::Fields(fields)
            };
        }
    }
    Body::Bytes
}
