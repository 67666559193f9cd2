//! W3C trace context: `trace::trace_id` and `trace::with_turnout_member` on
//! any bytes, and `new_traceparent` on any randomness. A `Some` trace id is
//! 32 lowercase hex digits, not all zero, taken from bytes 3..35 of the
//! input; the new `tracestate` starts with turnout's member, has at most 32
//! members, none empty and no other turnout member.
#![no_main]

use libfuzzer_sys::fuzz_target;
use turnout::trace::{new_traceparent, trace_id, trace_id_of, with_turnout_member};

fuzz_target!(|data: &[u8]| {
    if let Some(id) = trace_id(data) {
        assert_eq!(id.len(), 32);
        assert!(id.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert!(id.iter().any(|&b| b != b'0'));
        assert_eq!(id, &data[3..35]);
        assert!(data.len() == 55 || (data.len() > 55 && data[55] == b'-'));
    }

    // The tracestate member, with a cluster name from the first bytes.
    let split = usize::from(data.first().copied().unwrap_or(0) % 16).min(data.len());
    let (cluster, tracestate) = data.split_at(split);
    let cluster = String::from_utf8_lossy(cluster);
    let out = with_turnout_member(Some(tracestate), &cluster);
    assert!(out.starts_with(b"turnout="));
    let members: Vec<&[u8]> = out.split(|&b| b == b',').collect();
    assert!(members.len() <= 32, "{} members", members.len());
    let own = &members[0][b"turnout=".len()..];
    assert!(own
        .iter()
        .all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'='));
    assert!(own.last() != Some(&b' '));
    for m in &members[1..] {
        assert!(!m.is_empty());
        assert!(!m.starts_with(b"turnout="));
        assert!(m.first() != Some(&b' ') && m.last() != Some(&b' '));
    }

    // A new traceparent from any 24 random bytes is valid.
    let mut random = [0u8; 24];
    for (r, d) in random.iter_mut().zip(data) {
        *r = *d;
    }
    let tp = new_traceparent(random);
    assert_eq!(trace_id(&tp), Some(trace_id_of(&tp)));
});
