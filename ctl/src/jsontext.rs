//! Byte spans of values in JSON text, for edits that change only the bytes
//! they are about.
//!
//! An operator's config and ECDS file are reviewed as text (diffs, code
//! review, `git blame`): an edit that re-serialized the document would
//! reorder keys, reflow whitespace and respell numbers (`25.50` as `25.5`,
//! `1e2` as `100.0`). Instead the value's bytes are located and replaced,
//! and everything else stays byte for byte. The text is always parsed with
//! serde_json first, so this scanner only has to find things in JSON that
//! is known to be valid; it gives up (`None`) on anything else.

use std::ops::Range;

/// A byte range of the text.
pub type Span = Range<usize>;

/// One step of a path into a document.
#[derive(Clone, Copy, Debug)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// An object member: where its key is, and its value.
#[derive(Clone, Debug)]
pub struct Member {
    pub key: String,
    pub key_span: Span,
    pub value: Span,
}

/// The span of the value at `path`. With duplicate keys the last one counts,
/// as in serde_json (and so in the filter).
pub fn find(text: &str, path: &[Seg<'_>]) -> Option<Span> {
    let b = text.as_bytes();
    let start = skip_ws(b, 0);
    let end = value_end(b, start)?;
    let mut span = start..end;
    for seg in path {
        span = match *seg {
            Seg::Key(key) => {
                members(text, &span)?
                    .into_iter()
                    .rev()
                    .find(|m| m.key == key)?
                    .value
            }
            Seg::Index(i) => elements(text, &span)?.into_iter().nth(i)?,
        };
    }
    Some(span)
}

/// The members of the object at `span`, in document order.
pub fn members(text: &str, span: &Span) -> Option<Vec<Member>> {
    let b = text.as_bytes();
    if b.get(span.start) != Some(&b'{') {
        return None;
    }
    let mut out = Vec::new();
    let mut i = skip_ws(b, span.start + 1);
    if b.get(i) == Some(&b'}') {
        return Some(out);
    }
    loop {
        let key_end = string_end(b, i)?;
        let key: String = serde_json::from_str(&text[i..key_end]).ok()?;
        let colon = skip_ws(b, key_end);
        if b.get(colon) != Some(&b':') {
            return None;
        }
        let value_start = skip_ws(b, colon + 1);
        let end = value_end(b, value_start)?;
        out.push(Member {
            key,
            key_span: i..key_end,
            value: value_start..end,
        });
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return Some(out),
            _ => return None,
        }
    }
}

/// The elements of the array at `span`, in order.
pub fn elements(text: &str, span: &Span) -> Option<Vec<Span>> {
    let b = text.as_bytes();
    if b.get(span.start) != Some(&b'[') {
        return None;
    }
    let mut out = Vec::new();
    let mut i = skip_ws(b, span.start + 1);
    if b.get(i) == Some(&b']') {
        return Some(out);
    }
    loop {
        let end = value_end(b, i)?;
        out.push(i..end);
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b']') => return Some(out),
            _ => return None,
        }
    }
}

/// `text` with `span` replaced by `with`.
pub fn replace(text: &str, span: &Span, with: &str) -> String {
    let mut out = String::with_capacity(text.len() + with.len());
    out.push_str(&text[..span.start]);
    out.push_str(with);
    out.push_str(&text[span.end..]);
    out
}

/// `text` with member `"key": value` (value as JSON text) appended to the
/// non-empty object at `span`, spaced like the members already there.
pub fn append_member(text: &str, span: &Span, key: &str, value: &str) -> Option<String> {
    let members = members(text, span)?;
    let last = members.last()?;
    let between = match members.len() {
        1 => ", ",
        n => &text[members[n - 2].value.end..last.key_span.start],
    };
    let colon = &text[last.key_span.end..last.value.start];
    let key = serde_json::to_string(key).ok()?;
    let at = last.value.end..last.value.end;
    Some(replace(text, &at, &format!("{between}{key}{colon}{value}")))
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The end of the string starting at `i` (after its closing quote).
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    loop {
        match b.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// The end of the value starting at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let len = b[i..]
                .iter()
                .take_while(|c| !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .count();
            (len > 0).then_some(i + len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#" { "a" : [1, {"b\"c": "x]}", "d": 2.50}], "a": {"e": []},
        "f": true } "#;

    #[test]
    fn finds_values_by_path_last_duplicate_wins() {
        let at = |path: &[Seg]| find(DOC, path).map(|s| &DOC[s]);
        assert_eq!(at(&[Seg::Key("a")]), Some(r#"{"e": []}"#));
        assert_eq!(at(&[Seg::Key("a"), Seg::Key("e")]), Some("[]"));
        assert_eq!(at(&[Seg::Key("f")]), Some("true"));
        assert_eq!(at(&[Seg::Key("g")]), None);
        let first = r#"[1, {"b\"c": "x]}", "d": 2.50}]"#;
        let start = DOC.find(first).unwrap();
        let arr = start..start + first.len();
        let items = elements(DOC, &arr).unwrap();
        assert_eq!(&DOC[items[1].clone()], r#"{"b\"c": "x]}", "d": 2.50}"#);
        let m = members(DOC, &items[1]).unwrap();
        assert_eq!(m[0].key, "b\"c");
        assert_eq!(&DOC[m[1].value.clone()], "2.50");
    }

    #[test]
    fn appends_members_spaced_like_their_neighbours() {
        let pretty = "{\n  \"a\": 1,\n  \"b\": 2\n}";
        let span = find(pretty, &[]).unwrap();
        assert_eq!(
            append_member(pretty, &span, "c", "true").unwrap(),
            "{\n  \"a\": 1,\n  \"b\": 2,\n  \"c\": true\n}"
        );
        let compact = r#"{"a":1}"#;
        let span = find(compact, &[]).unwrap();
        assert_eq!(
            append_member(compact, &span, "c", "true").unwrap(),
            r#"{"a":1, "c":true}"#
        );
    }
}
