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
pub fn cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = trim(pair);
        let eq = pair.iter().position(|&b| b == b'=')?;
        if trim(&pair[..eq]) != name {
            return None;
        }
        let value = trim(&pair[eq + 1..]);
        Some(match value {
            [b'"', inner @ .., b'"'] => inner,
            _ => value,
        })
    })
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

/// Strips HTTP optional whitespace (spaces and tabs) from both ends.
pub(crate) fn trim(bytes: &[u8]) -> &[u8] {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |e| e + 1);
    &bytes[start..end]
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
