//! Cookie parsing: `keys::cookie(header, name)` on any bytes. The first
//! byte sets the name's length; the name follows, the header is the rest.
//! A found value is a sub-slice of the header that holds no `;`, and the
//! pair it came from really carries the name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use turnout::keys::cookie;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 32).min(rest.len());
    let (name, header) = rest.split_at(n);
    let Some(value) = cookie(header, name) else {
        // Not found: no pair in the header is exactly `name=...` once
        // trimmed (checked against a plain reading of RFC 6265).
        assert!(!header.split(|&b| b == b';').any(|pair| {
            let pair = trim(pair);
            pair.iter()
                .position(|&b| b == b'=')
                .is_some_and(|eq| trim(&pair[..eq]) == name)
        }));
        return;
    };
    let start = value.as_ptr() as usize - header.as_ptr() as usize;
    assert!(
        value.as_ptr() >= header.as_ptr() && start + value.len() <= header.len(),
        "not a sub-slice of the header"
    );
    assert!(!value.contains(&b';'));
    // The pair holding the value names the cookie.
    let pair_start = header[..start]
        .iter()
        .rposition(|&b| b == b';')
        .map_or(0, |i| i + 1);
    let before = &header[pair_start..start];
    let eq = before
        .iter()
        .position(|&b| b == b'=')
        .expect("a '=' before the value");
    assert_eq!(trim(&before[..eq]), name);
});

fn trim(b: &[u8]) -> &[u8] {
    let sp = |c: &u8| *c == b' ' || *c == b'\t';
    let s = b.iter().position(|c| !sp(c)).unwrap_or(b.len());
    let e = b.iter().rposition(|c| !sp(c)).map_or(s, |e| e + 1);
    &b[s..e]
}
