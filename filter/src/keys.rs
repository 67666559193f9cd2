//! Where a user's key is found in a request: cookies and query strings.
//!
//! Both parsers are tolerant: a malformed pair is skipped, never an error, so
//! a hostile or broken client gets a decision (anonymous at worst), not a
//! failure. Neither allocates unless a query value needs percent-decoding.

use std::borrow::Cow;

/// The value of cookie `name` in a `cookie` header value (RFC 6265 §5.4
/// syntax: `name=value` pairs separated by `;`). Surrounding whitespace is
/// trimmed and one pair of double quotes around the value is removed. Pairs
/// without `=` are skipped; the first pair with the name wins.
///
/// The header is searched for the name itself, eight bytes at a time, and
/// only where the name starts a pair is the pair read, so the other
/// cookies of a browser's header cost next to nothing. That reads a pair
/// the same way as trimming it and splitting it at its first `=` would,
/// for every name that could equal a trimmed key: one without `=` and
/// without surrounding whitespace. No other name is ever found.
pub fn cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    if name.contains(&b'=') || trim(name).len() != name.len() {
        return None;
    }
    let Some(&first) = name.first() else {
        // The empty name: the first pair that starts with `=`.
        return pairs(header).find_map(|pair| cookie_value(pair, name));
    };
    let mut from = 0;
    while let Some(at) = find_byte(&header[from..], first).map(|i| from + i) {
        let rest = &header[at..];
        let starts_pair = matches!(trim_end(&header[..at]), [] | [.., b';']);
        if starts_pair && rest.starts_with(name) {
            let end = find_byte(rest, b';').unwrap_or(rest.len());
            if let Some(value) = cookie_value(&rest[..end], name) {
                return Some(value);
            }
        }
        from = at + 1;
    }
    None
}

fn pairs(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    header.split(|&b| b == b';')
}

/// The value of one `name=value` pair, if the pair carries `name`.
fn cookie_value<'a>(pair: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let pair = trim_start(pair);
    let after_name = trim_start(pair.strip_prefix(name)?);
    let value = trim(after_name.strip_prefix(b"=")?);
    Some(match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    })
}

/// The index of the first `byte` in `bytes`, eight bytes at a time: a
/// cookie header is mostly long values that hold neither `;` nor the
/// name's first byte.
fn find_byte(bytes: &[u8], byte: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(byte);
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in words.by_ref() {
        let mut array = [0u8; 8];
        array.copy_from_slice(word);
        let x = u64::from_le_bytes(array) ^ pattern;
        // A byte of `x` is zero where the word holds `byte`; the lowest
        // such byte sets the lowest high bit (higher ones may be false hits).
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = words.remainder();
    tail.iter().position(|&b| b == byte).map(|i| at + i)
}

/// The value of query parameter `name` in a request `:path`, percent-decoded
/// with `+` read as a space (the `application/x-www-form-urlencoded` rules
/// that browsers, Python's `parse_qs` and Go's `url.ParseQuery` follow). The
/// name is compared after the same decoding. Invalid escapes are kept as
/// they are. The first occurrence wins.
pub fn query<'a>(path: &'a [u8], name: &[u8]) -> Option<Cow<'a, [u8]>> {
    let start = path.iter().position(|&b| b == b'?')? + 1;
    let query = &path[start..];
    let query = match query.iter().position(|&b| b == b'#') {
        Some(end) => &query[..end],
        None => query,
    };
    query.split(|&b| b == b'&').find_map(|pair| {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        (form_decode(key) == name).then(|| form_decode(value))
    })
}

/// Percent-decoding with `+` as space; borrows when there is nothing to decode.
fn form_decode(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => match (raw.get(i + 1).and_then(hex), raw.get(i + 2).and_then(hex)) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(out)
}

fn hex(b: &u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_space(b: &u8) -> bool {
    *b == b' ' || *b == b'\t'
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(0, |e| e + 1);
    &bytes[..end]
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Strips HTTP optional whitespace (spaces and tabs) from both ends.
pub(crate) fn trim(bytes: &[u8]) -> &[u8] {
    trim_start(trim_end(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c<'a>(header: &'a str, name: &str) -> Option<&'a str> {
        cookie(header.as_bytes(), name.as_bytes()).map(|v| std::str::from_utf8(v).unwrap())
    }

    fn q(path: &str, name: &str) -> Option<String> {
        query(path.as_bytes(), name.as_bytes()).map(|v| String::from_utf8(v.into_owned()).unwrap())
    }

    #[test]
    fn cookie_finds_the_named_pair() {
        assert_eq!(c("uid=42", "uid"), Some("42"));
        assert_eq!(c("a=1; uid=42; b=2", "uid"), Some("42"));
        assert_eq!(c("a=1;uid=42", "uid"), Some("42"));
        assert_eq!(c("  uid = 42 ;", "uid"), Some("42"));
        assert_eq!(c("uid=\"42\"", "uid"), Some("42"));
        assert_eq!(c("uid=a=b", "uid"), Some("a=b"));
    }

    #[test]
    fn cookie_is_exact_on_the_name() {
        assert_eq!(c("xuid=1; uidx=2; UID=3", "uid"), None);
        assert_eq!(c("uid=first; uid=second", "uid"), Some("first"));
    }

    #[test]
    fn cookie_tolerates_malformed_pairs() {
        assert_eq!(c("garbage; ;;=; =x; uid=7", "uid"), Some("7"));
        assert_eq!(c("", "uid"), None);
        assert_eq!(c(";;;;", "uid"), None);
        assert_eq!(c("uid", "uid"), None);
        assert_eq!(c("uid=", "uid"), Some(""));
        assert_eq!(c("uid=\"", "uid"), Some("\""));
        let many: String = (0..200)
            .map(|i| format!("junk{i}; =; "))
            .collect::<String>()
            + "uid=9";
        assert_eq!(c(&many, "uid"), Some("9"));
    }

    /// RFC 6265's reading, pair by pair: trim, split at the first `=`,
    /// compare the trimmed name. `cookie` must agree with it on any input.
    fn reference(header: &[u8], name: &[u8]) -> Option<Vec<u8>> {
        header.split(|&b| b == b';').find_map(|pair| {
            let pair = trim(pair);
            let eq = pair.iter().position(|&b| b == b'=')?;
            if trim(&pair[..eq]) != name {
                return None;
            }
            let value = trim(&pair[eq + 1..]);
            Some(match value {
                [b'"', inner @ .., b'"'] => inner.to_vec(),
                _ => value.to_vec(),
            })
        })
    }

    #[test]
    fn cookie_agrees_with_the_plain_reading() {
        // Every header and name of up to 6 bytes over an alphabet of the
        // bytes that matter, then long random ones (xorshift, fixed seed).
        let alphabet = b"u=; \t\"x";
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..6 {
            let longer: Vec<Vec<u8>> = inputs
                .iter()
                .filter(|s| s.len() == inputs.last().map_or(0, Vec::len))
                .flat_map(|s| {
                    alphabet.iter().map(move |&b| {
                        let mut t = s.clone();
                        t.push(b);
                        t
                    })
                })
                .collect();
            inputs.extend(longer);
        }
        let names: Vec<&[u8]> = vec![b"u", b"ux", b"", b" u", b"u ", b"u=", b"x\"", b"u;"];
        for header in &inputs {
            for name in &names {
                assert_eq!(
                    cookie(header, name).map(<[u8]>::to_vec),
                    reference(header, name),
                    "{:?} {:?}",
                    String::from_utf8_lossy(header),
                    String::from_utf8_lossy(name)
                );
            }
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 80) as usize;
            let header: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let name = names[(next() % names.len() as u64) as usize];
            assert_eq!(
                cookie(&header, name).map(<[u8]>::to_vec),
                reference(&header, name)
            );
        }
    }

    #[test]
    fn cookie_finds_a_separator_in_every_lane() {
        for at in 0..20 {
            let header = format!("{}; uid=7", "p".repeat(at));
            assert_eq!(c(&header, "uid"), Some("7"), "{header}");
            assert_eq!(find_byte(header.as_bytes(), b';'), Some(at));
        }
        assert_eq!(find_byte(b"abcdefghijklmnop", b';'), None);
        assert_eq!(find_byte(b"abcdefghijklmnop", b'p'), Some(15));
    }

    #[test]
    fn cookie_survives_non_utf8() {
        let header = b"a=\xff\xfe; uid=\xc3\x28";
        assert_eq!(cookie(header, b"uid"), Some(&b"\xc3\x28"[..]));
    }

    #[test]
    fn query_finds_and_decodes() {
        assert_eq!(q("/a?uid=42", "uid").as_deref(), Some("42"));
        assert_eq!(q("/a?x=1&uid=42&y=2", "uid").as_deref(), Some("42"));
        assert_eq!(q("/a?uid=a%20b", "uid").as_deref(), Some("a b"));
        assert_eq!(q("/a?uid=a+b", "uid").as_deref(), Some("a b"));
        assert_eq!(q("/a?u%69d=7", "uid").as_deref(), Some("7"));
        assert_eq!(q("/a?uid=%E2%9C%93", "uid").as_deref(), Some("✓"));
        assert_eq!(q("/a?uid=1#frag", "uid").as_deref(), Some("1"));
        assert_eq!(q("/a?uid", "uid").as_deref(), Some(""));
    }

    #[test]
    fn query_tolerates_bad_input() {
        assert_eq!(q("/a", "uid"), None);
        assert_eq!(q("/a?", "uid"), None);
        assert_eq!(q("/a?&&=&uid=5", "uid").as_deref(), Some("5"));
        assert_eq!(q("/a?uid=%zz%4", "uid").as_deref(), Some("%zz%4"));
        assert_eq!(q("/a?uid=100%", "uid").as_deref(), Some("100%"));
        assert_eq!(q("/a?uidx=1&xuid=2", "uid"), None);
        assert_eq!(q("/a?uid=1&uid=2", "uid").as_deref(), Some("1"));
    }

    #[test]
    fn query_borrows_when_nothing_to_decode() {
        assert!(matches!(
            query(b"/a?uid=42", b"uid"),
            Some(Cow::Borrowed(_))
        ));
    }
}
