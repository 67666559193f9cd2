//! The serialized header map reader: `wire::pairs` and `wire::find` on any
//! buffer (what a buggy or hostile host could hand over), and a round trip
//! of header maps made from the input. Every pair is a sub-slice of the
//! buffer, no more pairs come than the count says, `find` agrees with the
//! first matching pair, and a well-formed map reads back exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use turnout::wire::{find, pairs, serialize};

fuzz_target!(|data: &[u8]| {
    let declared = data
        .get(..4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let inside = |s: &[u8]| {
        s.as_ptr() >= data.as_ptr()
            && s.as_ptr() as usize + s.len() <= data.as_ptr() as usize + data.len()
    };
    let mut count = 0;
    for (name, value) in pairs(data) {
        assert!(inside(name) && inside(value));
        count += 1;
    }
    assert!(count <= declared);
    for probe in [&b"x-user-id"[..], b"", b"cookie", b":path"] {
        let first = pairs(data).find(|(n, _)| *n == probe).map(|(_, v)| v);
        assert_eq!(find(data, probe), first);
    }

    // Round trip: the input cut into names and values at 0xff bytes.
    let parts: Vec<&[u8]> = data.split(|&b| b == 0xff).collect();
    let map: Vec<(&[u8], &[u8])> = parts.chunks_exact(2).map(|c| (c[0], c[1])).collect();
    let buffer = serialize(&map);
    assert_eq!(pairs(&buffer).collect::<Vec<_>>(), map);
    if let Some((name, _)) = map.first() {
        let want = map.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        assert_eq!(find(&buffer, name), want);
    }
    // Any cut of a well-formed map reads a prefix of it, never more.
    let cut = usize::from(data.first().copied().unwrap_or(0)) * buffer.len() / 256;
    let got: Vec<_> = pairs(&buffer[..cut]).collect();
    assert!(got.len() <= map.len());
    assert_eq!(&map[..got.len()], &got[..]);
});
