//! Which requests are copied, and the headers a copy carries.

use crate::bucket::BUCKETS;
use crate::decide::Verdict;
use crate::plan::Plan;

use super::ShadowPlan;

/// The request header that marks a copy, so that the new side can tell a
/// copy from a user's request (and skip e-mails, payments).
pub const SHADOW_HEADER: &str = "x-turnout-shadow";

/// Headers that describe one connection, not the request (RFC 9110
/// 7.6.1), and `proxy-authorization`/`proxy-authenticate`, meant for this
/// proxy: a copy, on its own connection, carries none of them.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Whether a request is copied, and by which split's shadow: the decision
/// sent it to its split's stable cluster (for any reason: a mode's
/// refusal is not a decision), its method is one the shadow copies, and
/// `draw` (uniform in `0..10000`, called only when `percent` is neither 0
/// nor 100) falls under `percent`. Whether the shadow has tripped is the
/// caller's to check.
pub fn sample<'p>(
    plan: &'p Plan,
    verdict: &Verdict<'_>,
    method: &[u8],
    draw: impl FnOnce() -> u16,
) -> Option<(usize, &'p ShadowPlan)> {
    let Verdict::Route(decision) = verdict else {
        return None;
    };
    let shadow = plan.splits.get(decision.split)?.shadow.as_ref()?;
    if decision.cluster != 0 || !shadow.methods.iter().any(|m| m.as_bytes() == method) {
        return None;
    }
    let copied = match shadow.percent {
        0 => false,
        p if p >= BUCKETS => true,
        p => draw() < p,
    };
    copied.then_some((decision.split, shadow))
}

/// Whether a header is hop-by-hop by name (any case).
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
}

/// The headers of a copy: the request's (pseudo-headers included), less
/// the hop-by-hop ones, those the `connection` header names, any
/// [`SHADOW_HEADER`] the client sent and those of `also_drop` (the
/// decision header: the copy's cluster is not the decision's), and then
/// `x-turnout-shadow: 1`. Names compare in any case.
pub fn copy_headers<'h>(
    headers: &[(&'h [u8], &'h [u8])],
    also_drop: &[&str],
) -> Vec<(&'h [u8], &'h [u8])> {
    let named: Vec<&[u8]> = headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"connection"))
        .flat_map(|(_, value)| value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty())
        .collect();
    let dropped = |name: &[u8]| {
        is_hop_by_hop(name)
            || name.eq_ignore_ascii_case(SHADOW_HEADER.as_bytes())
            || named.iter().any(|n| name.eq_ignore_ascii_case(n))
            || also_drop
                .iter()
                .any(|d| name.eq_ignore_ascii_case(d.as_bytes()))
    };
    let mut copy: Vec<(&[u8], &[u8])> = headers
        .iter()
        .filter(|(name, _)| !dropped(name))
        .copied()
        .collect();
    copy.push((SHADOW_HEADER.as_bytes(), b"1"));
    copy
}
