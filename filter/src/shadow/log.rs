//! The mismatch log line and its rate limit: at most one line per split per
//! second, saying where the answers differ, never what they hold (no
//! header value, no body value, no query string, which may carry tokens).

use std::fmt::Write;

use super::Comparison;

/// Fields listed in one line; the rest are counted (`+3 more`).
const FIELDS_LISTED: usize = 16;

/// `shadow mismatch: split=users method=GET path=/users/42 stable=200
/// copy=500 parts=status,body headers=content-type fields=/items/*/price
/// trace=4bf92f3577b34da6a3ce929d0e0e4736`. `headers` and `fields` are left
/// out when empty, `trace` when there is none. Every byte outside visible
/// ASCII (and `,` in a name, the list separator) is written `%XX`, so a
/// request or a body cannot forge a line or a key.
pub fn mismatch_line(
    split: &str,
    method: &[u8],
    path: &[u8],
    stable_status: u16,
    copy_status: u16,
    comparison: &Comparison,
    trace_id: Option<&str>,
) -> String {
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    let mut line = format!(
        "shadow mismatch: split={} method={} path={} stable={stable_status} copy={copy_status} parts=",
        escaped(split.as_bytes()),
        escaped(method),
        escaped(path),
    );
    let parts: Vec<&str> = comparison.parts.iter().map(|p| p.as_str()).collect();
    line.push_str(&parts.join(","));
    if !comparison.headers.is_empty() {
        line.push_str(" headers=");
        list(&mut line, &comparison.headers, comparison.headers.len());
    }
    if !comparison.fields.is_empty() {
        line.push_str(" fields=");
        list(&mut line, &comparison.fields, FIELDS_LISTED);
    }
    if let Some(trace) = trace_id {
        let _ = write!(line, " trace={}", escaped(trace.as_bytes()));
    }
    line
}

fn list(line: &mut String, names: &[String], at_most: usize) {
    for (i, name) in names.iter().take(at_most).enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&escaped(name.as_bytes()));
    }
    if names.len() > at_most {
        let _ = write!(line, ",+{} more", names.len() - at_most);
    }
}

/// Visible ASCII but `,` as is, every other byte as `%XX`.
fn escaped(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && b != b',' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// At most one mismatch line per split per second.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogLimiter {
    /// Per split: the second of its last line, and lines held back since.
    splits: Vec<(Option<i64>, u64)>,
}

impl LogLimiter {
    pub fn new(splits: usize) -> LogLimiter {
        LogLimiter {
            splits: vec![(None, 0); splits],
        }
    }

    /// Whether split `split` may log a line at `now_s` (Unix seconds):
    /// `Some(held)`, with how many lines were held back since its last
    /// one, or `None` when it already logged this second.
    pub fn allow(&mut self, split: usize, now_s: i64) -> Option<u64> {
        if split >= self.splits.len() {
            self.splits.resize(split + 1, (None, 0));
        }
        let (last, held) = &mut self.splits[split];
        if *last == Some(now_s) {
            *held += 1;
            return None;
        }
        *last = Some(now_s);
        Some(std::mem::take(held))
    }
}
