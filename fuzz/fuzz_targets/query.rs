//! Query parsing: `keys::query(path, name)` on any bytes, plus a round
//! trip. The first byte sets the name's length; the name follows, the path
//! is the rest. A value that needed no decoding is a sub-slice of the path;
//! a decoded one is never longer than the path. Then any name and value,
//! fully percent-encoded into a query, decode back exactly.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use turnout::keys::query;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 32).min(rest.len());
    let (name, path) = rest.split_at(n);
    match query(path, name) {
        None => {}
        Some(Cow::Borrowed(value)) => {
            let start = value.as_ptr() as usize - path.as_ptr() as usize;
            assert!(value.as_ptr() >= path.as_ptr() && start + value.len() <= path.len());
            assert!(!value.contains(&b'&') && !value.contains(&b'#'));
            assert!(path[..start].contains(&b'?'));
        }
        Some(Cow::Owned(value)) => assert!(value.len() <= path.len()),
    }
    if !path.contains(&b'?') {
        assert!(query(path, name).is_none());
    }

    // Round trip: `/p?x=1&<name>=<value>` with every byte escaped.
    let (name, value) = (name, path);
    if name == b"x" {
        return;
    }
    let mut url = b"/p?x=1&".to_vec();
    escape(&mut url, name);
    url.push(b'=');
    escape(&mut url, value);
    url.extend_from_slice(b"&x=2#frag");
    let got = query(&url, name).expect("an escaped parameter is found");
    assert_eq!(&got[..], value);
});

fn escape(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
    }
}
