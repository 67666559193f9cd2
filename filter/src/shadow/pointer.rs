//! JSON pointers (RFC 6901): the `compare.ignore` patterns, whose `*`
//! segment matches any key or index, and the folded pointers a comparison
//! reports, whose array indices are all written `*` (`/items/*/price`), so
//! that a difference in every element of a list is one field, not one per
//! element.

/// One segment of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// `*`: any key or index. (A key that is literally `*` is matched by
    /// it too, with every other key: a pattern cannot name it alone.)
    Any,
    /// A key, unescaped (`~1` read as `/`, `~0` as `~`); it matches an
    /// array index too when it is one written canonically (`0`, `12`, not
    /// `012`), as RFC 6901 reads it.
    Token { key: String, index: Option<usize> },
}

/// A step of the path a comparison is at.
#[derive(Clone, Copy, Debug)]
pub(super) enum Step<'v> {
    Key(&'v str),
    Index(usize),
}

impl Segment {
    pub(super) fn matches(&self, step: Step<'_>) -> bool {
        match (self, step) {
            (Segment::Any, _) => true,
            (Segment::Token { key, .. }, Step::Key(k)) => key == k,
            (Segment::Token { index, .. }, Step::Index(i)) => *index == Some(i),
        }
    }
}

/// A validated `compare.ignore` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

impl Pattern {
    /// Parses a pointer. Refused: the empty pointer (the whole body: that
    /// is `"body": "none"`), a pointer not starting with `/`, and a `~` not
    /// followed by `0` or `1`. The message completes "`<text>` …".
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(if text.is_empty() {
                "is the whole body; to leave the body out, set \"body\": \"none\"".into()
            } else {
                "does not start with '/' (a JSON pointer, RFC 6901)".into()
            });
        };
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            if raw == "*" {
                segments.push(Segment::Any);
                continue;
            }
            let key = unescape(raw).ok_or_else(|| {
                format!("has {raw:?}, where '~' is not followed by 0 or 1 (write '~0' for '~', '~1' for '/')")
            })?;
            let canonical = raw == "0" || (!raw.starts_with('0') && !raw.is_empty());
            let index = if canonical && raw.bytes().all(|b| b.is_ascii_digit()) {
                raw.parse().ok()
            } else {
                None
            };
            segments.push(Segment::Token { key, index });
        }
        Ok(Pattern {
            text: text.to_string(),
            segments,
        })
    }

    /// The pointer as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }
}

/// `~1` as `/`, `~0` as `~`; `None` for any other `~`.
fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// The folded pointer of a path: keys escaped, indices `*`.
pub(super) fn folded(path: &[Step<'_>]) -> String {
    let mut out = String::new();
    for step in path {
        out.push('/');
        match step {
            Step::Index(_) => out.push('*'),
            Step::Key(key) => {
                for c in key.chars() {
                    match c {
                        '~' => out.push_str("~0"),
                        '/' => out.push_str("~1"),
                        c => out.push(c),
                    }
                }
            }
        }
    }
    out
}

/// Whether folded pointer `outer` is `inner` or one of its ancestors
/// (`""` is everything's; `/a` is `/a/b`'s, not `/ab`'s).
pub(super) fn covers(outer: &str, inner: &str) -> bool {
    match inner.strip_prefix(outer) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}
