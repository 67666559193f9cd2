//! Reading Prometheus, for turnoutctl's rollout controller and the
//! integration harness: the text exposition sample by sample (what Envoy's
//! admin serves at `/stats/prometheus`, scraped when the controller reads
//! the proxies directly), and the answers of the HTTP query API
//! (`/api/v1/query`), whose instant vectors both read.
//!
//! The text parser is written here, not taken from a crate. The one on
//! crates.io, `prometheus-parse` 0.2.5, was tried on a whole Envoy 1.40
//! `/stats/prometheus` and on turnout's series: it reads Envoy's histograms
//! (`_bucket{...,le="..."}` gathered per series, other labels kept), but it
//! splits a label set on `,` and `=` without reading the quotes, so
//! `a="x,y"` came out as `x`, and `w{a="q\"uo\\te,}",b="x=y"} 1` (an
//! escaped quote and a `}` in a value) was dropped whole; it also brings
//! `regex`, `chrono` and `itertools` for what is one loop here. Envoy
//! 1.40's exposition is `# TYPE` comments and `name{labels} value` lines
//! (`tests/envoy-1.40.txt` is a piece of one); the parser also takes
//! timestamps, escapes and bare names.

use std::collections::BTreeMap;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

/// A series' labels, by name.
pub type Labels = BTreeMap<String, String>;

/// One sample line of the text exposition: `name{a="b",c="d"} value [ts]`.
#[derive(Clone, Debug, PartialEq)]
pub struct TextSample<'a> {
    pub name: &'a str,
    /// In the order the line gives them, unescaped.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl TextSample<'_> {
    /// The value of the label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The samples of a whole exposition, comments, blank and malformed lines
/// left out.
pub fn text_samples(text: &str) -> impl Iterator<Item = TextSample<'_>> {
    text.lines().filter_map(parse_line)
}

/// One line of the text exposition, if it is a sample.
pub fn parse_line(line: &str) -> Option<TextSample<'_>> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        let close = loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => break i,
                ',' | ' ' => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                other => key.push(other),
            }
        };
        rest = &inner[close + 1..];
    }
    let value = parse_value(rest.split_whitespace().next()?)?;
    Some(TextSample {
        name,
        labels,
        value,
    })
}

/// A sample value as Prometheus writes it: a float, `NaN`, `+Inf`, `-Inf`
/// (and Go's `Inf`).
pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Everything but RFC 3986's unreserved characters is escaped in a query.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The path and query of an instant query for `expr`.
pub fn query_path(expr: &str) -> String {
    format!(
        "/api/v1/query?query={}",
        utf8_percent_encode(expr, QUERY_VALUE)
    )
}

/// One sample of an instant vector: its labels (with `__name__` when the
/// series has one) and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    /// The value of the label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// The samples of a query API answer (`{"status": "success", "data":
/// {"resultType": "vector", "result": [...]}}`); `Err` says what else it
/// was.
pub fn instant_vector(answer: &Value) -> Result<Vec<Sample>, String> {
    if answer["status"] != "success" {
        return Err(format!("the query failed: {}", answer["error"]));
    }
    let data = &answer["data"];
    if data["resultType"] != "vector" {
        return Err(format!(
            "the answer is not an instant vector but {}",
            data["resultType"]
        ));
    }
    data["result"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .ok_or_else(|| format!("a sample without labels: {r}"))?
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let value = r["value"][1]
                .as_str()
                .and_then(parse_value)
                .ok_or_else(|| format!("a sample without a value: {r}"))?;
            Ok(Sample { labels, value })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_parse_with_escapes_and_timestamps() {
        let s = parse_line(r#"weird_label{a="q\"uo\\te,}",b="x=y"} 1.5 1700000000"#).unwrap();
        assert_eq!(s.name, "weird_label");
        assert_eq!(
            s.labels,
            [
                ("a".into(), "q\"uo\\te,}".into()),
                ("b".into(), "x=y".into())
            ]
        );
        assert_eq!(
            (s.value, s.label("b"), s.label("c")),
            (1.5, Some("x=y"), None)
        );
        assert_eq!(
            parse_line(r#"n{a="line\nbreak"} 1"#).unwrap().labels[0].1,
            "line\nbreak"
        );
        assert_eq!(parse_line("plain 3").map(|s| s.value), Some(3.0));
        assert_eq!(parse_line("# HELP x y"), None);
        assert_eq!(parse_line("# TYPE x counter"), None);
        assert_eq!(parse_line("broken{a=\"x"), None);
        assert_eq!(parse_line("unquoted{a=x} 1"), None);
        assert_eq!(parse_line("novalue{a=\"x\"}"), None);
    }

    #[test]
    fn values_parse_as_prometheus_writes_them() {
        assert_eq!(parse_value("0.25"), Some(0.25));
        assert_eq!(parse_value("1e3"), Some(1000.0));
        assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_value("Inf"), Some(f64::INFINITY));
        assert_eq!(parse_value("-Inf"), Some(f64::NEG_INFINITY));
        assert!(parse_value("NaN").unwrap().is_nan());
        assert_eq!(parse_value("x"), None);
    }

    #[test]
    fn queries_are_url_encoded() {
        assert_eq!(
            query_path(r#"sum by (a) (x{b=~"c|d"}) > 0.5"#),
            "/api/v1/query?query=sum%20by%20%28a%29%20%28x%7Bb%3D~%22c%7Cd%22%7D%29%20%3E%200.5"
        );
    }

    #[test]
    fn instant_vectors_are_read_and_failures_said() {
        let answer: Value = serde_json::from_str(
            r#"{"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {"__name__": "up", "instance": "a:1"}, "value": [1700000000.1, "1"]},
                {"metric": {}, "value": [1700000000.1, "+Inf"]}]}}"#,
        )
        .unwrap();
        let samples = instant_vector(&answer).unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(
            (samples[0].label("instance"), samples[0].value),
            (Some("a:1"), 1.0)
        );
        assert_eq!(samples[1].value, f64::INFINITY);

        let failed: Value =
            serde_json::from_str(r#"{"status": "error", "error": "parse error"}"#).unwrap();
        assert_eq!(
            instant_vector(&failed).unwrap_err(),
            "the query failed: \"parse error\""
        );
        let matrix: Value = serde_json::from_str(
            r#"{"status": "success", "data": {"resultType": "matrix", "result": []}}"#,
        )
        .unwrap();
        assert!(instant_vector(&matrix).is_err());
        let bad: Value = serde_json::from_str(
            r#"{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "x"]}]}}"#,
        )
        .unwrap();
        assert!(instant_vector(&bad).is_err());
    }
}
