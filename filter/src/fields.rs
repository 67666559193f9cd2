//! The typed fields of a JSON document, checked one by one: the primitives
//! that the configuration's validator (`config`) and turnoutctl's rollout
//! plan are both written with, so that a field means the same and is
//! refused in the same words in both (a weight, a whole number in a range,
//! a limit above 0).
//!
//! Each check reports its own problem, named by the field's path, and
//! returns `None`; the [`Validator`] collects the problems, so that a
//! document's problems are all reported at once rather than the first
//! alone.

use std::fmt;

use serde_json::{Map, Value};

/// One refused field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where: `splits[0].targets[1].weight`; empty for the document itself.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Collects the problems of a document while its fields are checked. The
/// configuration's walk adds its own methods to it (`config`); another
/// crate's document holds one and calls its checks.
#[derive(Default)]
pub struct Validator {
    pub problems: Vec<Problem>,
}

/// `path.name`, or `name` at the document's top.
fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

impl Validator {
    pub fn fail(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.to_string(),
            message: message.into(),
        });
    }

    // ---- typed accessors: each reports its own problem and returns None ----

    pub fn known_fields(&mut self, obj: &Map<String, Value>, path: &str, allowed: &[&str]) {
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                self.fail(
                    &child(path, key),
                    format!("unknown field; expected one of {}", allowed.join(", ")),
                );
            }
        }
    }

    pub fn required<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        path: &str,
        name: &str,
    ) -> Option<&'v Value> {
        let value = obj.get(name);
        if value.is_none() {
            self.fail(&child(path, name), "is required");
        }
        value
    }

    pub fn object<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v Map<String, Value>> {
        let obj = value.as_object();
        if obj.is_none() {
            let what = if path.is_empty() {
                "the configuration "
            } else {
                ""
            };
            self.fail(path, format!("{what}{} is not an object", short(value)));
        }
        obj
    }

    pub fn array<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v Vec<Value>> {
        let items = value.as_array();
        if items.is_none() {
            self.fail(path, format!("{} is not an array", short(value)));
        }
        items
    }

    pub fn string<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v str> {
        let text = value.as_str();
        if text.is_none() {
            self.fail(path, format!("{} is not a string", short(value)));
        }
        text
    }

    pub fn non_empty(&mut self, value: &Value, path: &str) -> Option<String> {
        match self.string(value, path)? {
            "" => {
                self.fail(path, "is empty");
                None
            }
            text => Some(text.to_string()),
        }
    }

    pub fn boolean(&mut self, value: &Value, path: &str) -> Option<bool> {
        let b = value.as_bool();
        if b.is_none() {
            self.fail(path, format!("{} is not true or false", short(value)));
        }
        b
    }

    /// A non-negative whole number; `1.0` counts (Istio sends every number
    /// as a float).
    pub fn whole_number(&mut self, value: &Value, path: &str) -> Option<u64> {
        if let Some(n) = value.as_u64() {
            return Some(n);
        }
        match value.as_f64() {
            Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1e15 => Some(f as u64),
            _ => {
                self.fail(path, format!("{} is not a whole number", short(value)));
                None
            }
        }
    }

    /// A whole number in `lo..=hi`.
    pub fn whole_in(&mut self, value: &Value, path: &str, lo: u64, hi: u64) -> Option<u64> {
        let n = self.whole_number(value, path)?;
        if !(lo..=hi).contains(&n) {
            self.fail(path, format!("{value} is not between {lo} and {hi}"));
            return None;
        }
        Some(n)
    }

    /// A number above 0 and at most `max`. `None` when refused.
    pub fn positive_up_to(&mut self, value: &Value, path: &str, max: f64) -> Option<f64> {
        let Some(x) = value.as_f64() else {
            self.fail(path, format!("{} is not a number", short(value)));
            return None;
        };
        if x.is_nan() || x <= 0.0 {
            self.fail(path, format!("{value} is not above 0"));
            return None;
        }
        if x > max {
            self.fail(path, format!("{value} is not between 0 and {max}"));
            return None;
        }
        Some(x)
    }

    /// A weight in percent with at most two decimals, as basis points.
    pub fn weight(&mut self, value: &Value, path: &str) -> Option<u16> {
        let Some(w) = value.as_f64() else {
            self.fail(path, format!("{value} is not a number"));
            return None;
        };
        if !(0.0..=100.0).contains(&w) {
            self.fail(path, format!("{value} is not between 0 and 100"));
            return None;
        }
        let bps = (w * 100.0).round();
        if (w * 100.0 - bps).abs() > 1e-6 {
            self.fail(
                path,
                format!("{value} has more than two decimals (the resolution is 0.01 %)"),
            );
            return None;
        }
        Some(bps as u16)
    }

    pub fn header_name(&mut self, value: &Value, path: &str) -> Option<String> {
        let name = self.string(value, path)?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            self.fail(path, format!("{name:?} is not a valid HTTP header name"));
            return None;
        }
        Some(name.to_ascii_lowercase())
    }

    /// A cluster name is written into a request header: visible ASCII only.
    pub fn cluster_name(&mut self, value: &Value, path: &str) -> Option<String> {
        let name = self.string(value, path)?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            self.fail(
                path,
                format!("{name:?} is not a cluster name (visible ASCII, no spaces)"),
            );
            return None;
        }
        Some(name.to_string())
    }

    /// A split name appears in stats and headers: visible ASCII, no `;`.
    pub fn label(&mut self, value: &Value, path: &str) -> Option<String> {
        let name = self.string(value, path)?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b';') {
            self.fail(
                path,
                format!("{name:?} is not a split name (visible ASCII, no spaces or ';')"),
            );
            return None;
        }
        Some(name.to_string())
    }
}

/// RFC 9110 `tchar`: the bytes of a header name or method.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Basis points written as the percentage a document holds, without
/// needless zeros: `30`, `12.5`, `0.05`, `100`. The inverse of
/// [`Validator::weight`], so a weight reads back as it was typed.
pub fn percent_text(bps: u64) -> String {
    let text = format!("{}.{:02}", bps / 100, bps % 100);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A value as shown in a message, cut short.
pub fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn percentages_are_written_as_typed() {
        assert_eq!(percent_text(3000), "30");
        assert_eq!(percent_text(1250), "12.5");
        assert_eq!(percent_text(1205), "12.05");
        assert_eq!(percent_text(5), "0.05");
        assert_eq!(percent_text(0), "0");
        assert_eq!(percent_text(10_000), "100");
        assert_eq!(percent_text(10_050), "100.5");
        // Every weight reads back as the same basis points.
        let mut v = Validator::default();
        for bps in 0..=10_000u16 {
            let text = percent_text(bps.into());
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v.weight(&value, "w"), Some(bps), "{text}");
        }
        assert!(v.problems.is_empty());
    }

    #[test]
    fn paths_join_at_the_top_and_below() {
        let mut v = Validator::default();
        let obj = json!({"a": 1, "odd": 2});
        let obj = obj.as_object().unwrap();
        assert_eq!(v.required(obj, "", "b"), None);
        assert_eq!(v.required(obj, "x[0]", "b"), None);
        v.known_fields(obj, "", &["a"]);
        v.known_fields(obj, "x", &["a"]);
        let lines: Vec<String> = v.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "b: is required",
                "x[0].b: is required",
                "odd: unknown field; expected one of a",
                "x.odd: unknown field; expected one of a",
            ]
        );
    }

    #[test]
    fn whole_numbers_take_floats_and_name_their_range() {
        let mut v = Validator::default();
        assert_eq!(v.whole_in(&json!(30.0), "n", 1, 60), Some(30));
        assert_eq!(v.whole_in(&json!(0), "n", 1, 60), None);
        assert_eq!(v.whole_in(&json!(2.5), "n", 1, 60), None);
        assert_eq!(v.whole_in(&json!("x".repeat(50)), "n", 1, 60), None);
        let lines: Vec<String> = v.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "n: 0 is not between 1 and 60".to_string(),
                "n: 2.5 is not a whole number".to_string(),
                format!("n: \"{}… is not a whole number", "x".repeat(39)),
            ]
        );
    }
}
