//! W3C Trace Context (Level 1): keep a valid `traceparent`, make a new one
//! when it is absent or invalid, and add turnout's entry to `tracestate`.
//!
//! Pure: the random bytes of a new trace come from the caller.

use crate::keys::trim;

/// A valid version-00 `traceparent` is exactly this long; later versions
/// may be longer, with a `-` after the first 55 bytes.
const LEN: usize = 55;

/// The trace id of a valid `traceparent` (32 lowercase hex digits), or
/// `None` if the value is invalid: wrong length, uppercase or non-hex
/// digits, version `ff`, an all-zero trace or parent id.
pub fn trace_id(traceparent: &[u8]) -> Option<&[u8]> {
    let v = traceparent;
    if v.len() < LEN || (v.len() > LEN && (v[..2] == *b"00" || v[LEN] != b'-')) {
        return None;
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let (version, trace, parent, flags) = (&v[..2], &v[3..35], &v[36..52], &v[53..55]);
    let hex = |s: &[u8]| {
        s.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    let zero = |s: &[u8]| s.iter().all(|&b| b == b'0');
    let valid = hex(version)
        && version != b"ff"
        && hex(trace)
        && !zero(trace)
        && hex(parent)
        && !zero(parent)
        && hex(flags);
    valid.then_some(trace)
}

/// A new version-00 `traceparent` from 24 random bytes (16 for the trace
/// id, 8 for the parent id), with the sampled flag set so that tracers
/// downstream record the trace as they would have without turnout.
/// All-zero ids (invalid) are avoided by setting the lowest bit.
pub fn new_traceparent(random: [u8; 24]) -> [u8; LEN] {
    let mut ids = random;
    if ids[..16].iter().all(|&b| b == 0) {
        ids[15] = 1;
    }
    if ids[16..].iter().all(|&b| b == 0) {
        ids[23] = 1;
    }
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-01";
    write_hex(&mut out[3..35], &ids[..16]);
    write_hex(&mut out[36..52], &ids[16..]);
    out
}

/// The trace id inside a `traceparent` this module made or validated.
pub fn trace_id_of(traceparent: &[u8; LEN]) -> &[u8] {
    &traceparent[3..35]
}

fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// The most list members `tracestate` may carry.
const MAX_MEMBERS: usize = 32;

/// `tracestate` with `turnout=<cluster>` as its first member: an existing
/// `turnout` member is removed, empty members are dropped, and the list is
/// cut to 32 members from the right, as the spec says a vendor updates it.
/// Bytes a member value may not hold (`,`, `=`, outside 0x20..0x7e, and a
/// trailing space) are written as `_`.
pub fn with_turnout_member(tracestate: Option<&[u8]>, cluster: &str) -> Vec<u8> {
    let mut out = b"turnout=".to_vec();
    out.extend(cluster.bytes().map(|b| match b {
        b',' | b'=' => b'_',
        0x20..=0x7e => b,
        _ => b'_',
    }));
    if out.last() == Some(&b' ') {
        out.pop();
        out.push(b'_');
    }
    let others = tracestate
        .unwrap_or_default()
        .split(|&b| b == b',')
        .map(trim)
        .filter(|m| !m.is_empty() && !m.starts_with(b"turnout="))
        .take(MAX_MEMBERS - 1);
    for member in others {
        out.push(b',');
        out.extend_from_slice(member);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_kept() {
        assert_eq!(
            trace_id(VALID.as_bytes()),
            Some(&b"4bf92f3577b34da6a3ce929d0e0e4736"[..])
        );
        // A later version may carry more fields after a dash.
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-extra";
        assert!(trace_id(future.as_bytes()).is_some());
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        let cases = [
            "",
            "00",
            &VALID[..54],
            &format!("{VALID}-"),
            &format!("{VALID}0"),
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ];
        for case in cases {
            assert_eq!(trace_id(case.as_bytes()), None, "{case:?}");
        }
        assert_eq!(trace_id(b"00-\xff\xfe"), None);
    }

    #[test]
    fn new_traceparents_are_valid() {
        let mut random = [0u8; 24];
        for (i, b) in random.iter_mut().enumerate() {
            *b = (i * 37 + 11) as u8;
        }
        let tp = new_traceparent(random);
        assert_eq!(
            &tp[..],
            b"00-0b30557a9fc4e90e33587da2c7ec1136-5b80a5caef14395e-01"
        );
        assert_eq!(trace_id(&tp), Some(trace_id_of(&tp)));
        let zeros = new_traceparent([0; 24]);
        assert!(
            trace_id(&zeros).is_some(),
            "{}",
            String::from_utf8_lossy(&zeros)
        );
    }

    #[test]
    fn tracestate_gets_turnout_first() {
        assert_eq!(with_turnout_member(None, "fastapi"), b"turnout=fastapi");
        assert_eq!(
            with_turnout_member(Some(b"rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"), "legacy"),
            b"turnout=legacy,rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
        );
        assert_eq!(
            with_turnout_member(Some(b"a=1,turnout=old,,b=2"), "new"),
            b"turnout=new,a=1,b=2"
        );
        assert_eq!(with_turnout_member(None, "a,b=c"), b"turnout=a_b_c");
        let long: Vec<u8> = (0..40)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",")
            .into_bytes();
        let out = with_turnout_member(Some(&long), "x");
        assert_eq!(out.split(|&b| b == b',').count(), 32);
        assert!(out.ends_with(b"k30=v"));
    }
}
