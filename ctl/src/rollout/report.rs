//! What the operator sees: one line per interval,
//!
//! ```text
//! step 2/5 fastapi 30 % · held 2m10s of 5m · 4,812 req · errors 0.21 % (stable 0.18 %) · p99 87 ms (stable 80 ms) · ok
//! ```
//!
//! with the copies for a split with a shadow,
//!
//! ```text
//! step 1/2 fastapi 0 % · held 5m of 5m · 0 req · errors - (stable 0.18 %) · p99 - (stable 80 ms) · copies 412 · mismatches 0.24 % · passed
//! ```
//!
//! the writes and the verdicts between them, a final summary, and with
//! `--log FILE` the same decisions as JSON lines (time, step, figures,
//! verdict and why) for whoever reviews the rollout afterwards.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use turnout::guard::judge::{Breach, Evidence};
use turnout::guard::Rule;

use super::analysis::{Copies, Failure, Gate, GateBreach, Side, Sides, StepVerdict, Tripped};
use crate::fail::Fail;
use crate::show;

/// `4,812`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `45s`, `2m10s`, `5m`, `1h5m`.
pub fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

/// `0.21 %`, or `-` without responses.
fn rate(side: &Side) -> String {
    side.error_rate()
        .map_or("-".into(), |r| format!("{:.2} %", r * 100.0))
}

/// `0.24 %` of mismatches over compared copies, or `-` with none.
pub fn mismatches(copies: &Copies) -> String {
    copies
        .mismatch_rate()
        .map_or("-".into(), |r| format!("{:.2} %", r * 100.0))
}

/// A limit as a percentage, as the plan gives it: `1`, `0.5`, `7` (not
/// `7.000000000000001`).
pub fn limit_pct(limit: f64) -> String {
    format!("{}", (limit * 1e6).round() / 1e4)
}

/// `87 ms`, `0.4 ms`, or `-`.
fn ms(value: Option<f64>) -> String {
    match value {
        None => "-".into(),
        Some(v) if v < 10.0 => format!("{v:.1} ms"),
        Some(v) => format!("{v:.0} ms"),
    }
}

/// Where a step is: `step 2/5 fastapi 30 %`.
pub struct At {
    pub step: usize,
    pub steps: usize,
    pub target: String,
    pub weight: u16,
    /// The split has a shadow: its lines show the copies.
    pub shadowed: bool,
}

impl At {
    pub fn head(&self) -> String {
        format!(
            "step {}/{} {} {}",
            self.step + 1,
            self.steps,
            self.target,
            show::pct(self.weight.into())
        )
    }
}

/// The interval line.
pub fn interval(at: &At, held_s: u64, hold_s: u64, hold: &Sides, verdict: &str) -> String {
    let copies = if at.shadowed {
        format!(
            "copies {} · mismatches {} · ",
            count(hold.copies.sent()),
            mismatches(&hold.copies)
        )
    } else {
        String::new()
    };
    format!(
        "{} · held {} of {} · {} req · errors {} (stable {}) · p99 {} (stable {}) · {copies}{verdict}",
        at.head(),
        duration(held_s),
        duration(hold_s),
        count(hold.target.responses),
        rate(&hold.target),
        rate(&hold.stable),
        ms(hold.target.quantile(0.99)),
        ms(hold.stable.quantile(0.99)),
    )
}

/// A verdict in words.
pub fn verdict(v: &StepVerdict, evidence: f64) -> String {
    match v {
        StepVerdict::Ok => "ok".into(),
        StepVerdict::Pass => "passed".into(),
        StepVerdict::LowTraffic { have, need } => format!(
            "low traffic: {} of {} req, hold extended",
            count(*have),
            count(*need)
        ),
        StepVerdict::LowCopies { have, need } => format!(
            "low traffic: {} of {} copies, hold extended",
            count(*have),
            count(*need)
        ),
        StepVerdict::Unsettled(b) => {
            format!("{}, not yet beyond noise: hold extended", breach(b))
        }
        StepVerdict::GateUnsettled(b) => {
            format!("{}, not yet beyond noise: hold extended", gate(b))
        }
        StepVerdict::Fail(f) => format!("FAILED: {}", failure(f, evidence)),
    }
}

/// `error_rate 10.31 % > 1 %`, `guard tripped on …`.
pub fn failure(f: &Failure, evidence: f64) -> String {
    match f {
        Failure::GuardTripped(proxies) => format!("guard tripped on {}", proxies.join(", ")),
        Failure::ShadowTripped(proxies) => format!(
            "shadow tripped on {}: the copies stopped, too many failed",
            proxies.join(", ")
        ),
        Failure::Gate(b) => gate(b),
        Failure::Nacked(nacks) => {
            let each: Vec<String> = nacks.iter().map(|(n, m)| format!("{n}: {m}")).collect();
            format!("NACKed by {}", each.join("; "))
        }
        Failure::NotServed(problems) => format!(
            "the fleet server refused the config, it is not served: {}",
            problems.join("; ")
        ),
        Failure::Limit(Breach {
            rule: Rule::ErrorRatio,
            measured,
            limit,
        }) => {
            let seen = if measured.is_finite() {
                format!("{measured:.1}x in this hold")
            } else {
                "stable had no errors in this hold".into()
            };
            format!(
                "error_ratio: the error rate is over {limit}x stable's (sequential test, evidence e^{evidence:.1}; {seen})"
            )
        }
        Failure::Limit(b) => breach(b),
    }
}

/// A measured value over its limit: `error_rate 10.31 % > 1 %`.
fn breach(b: &Breach) -> String {
    let (measured, limit) = (b.measured, b.limit);
    match b.rule {
        Rule::ErrorRate => format!("error_rate {:.2} % > {} %", measured * 100.0, limit * 100.0),
        Rule::P99 => format!("p99 {} > {limit} ms", ms(Some(measured))),
        Rule::P95Ratio => format!("p95 {measured:.2}x stable's > {limit}x"),
        Rule::ErrorRatio => format!("error_ratio {measured:.1}x > {limit}x"),
    }
}

/// A gate over its limit, with its counts: `mismatch_rate 4.10 % > 1 %
/// (41 of 1,000 compared)`.
fn gate(b: &GateBreach) -> String {
    let (name, of) = match b.gate {
        Gate::Mismatch => ("mismatch_rate", "compared"),
        Gate::ShadowError => ("shadow_error_rate", "copies"),
    };
    format!(
        "{name} {:.2} % > {} % ({} of {} {of})",
        b.rate() * 100.0,
        limit_pct(b.limit),
        count(b.count),
        count(b.of)
    )
}

/// The figures of the copies, for the log.
fn copies_json(copies: &Copies) -> Value {
    json!({
        "copies": copies.sent(),
        "compared": copies.compared(),
        "mismatches": copies.mismatched,
        "failed": copies.failed,
        "mismatch_rate": copies.mismatch_rate(),
    })
}

/// The figures of a side, for the log.
fn side_json(side: &Side) -> Value {
    json!({
        "responses": side.responses,
        "errors": side.errors,
        "error_rate": side.error_rate(),
        "p95_ms": side.quantile(0.95),
        "p99_ms": side.quantile(0.99),
    })
}

/// The log record of an interval of the hold (`held_s` of `hold_s`).
pub fn interval_record(
    at: &At,
    (held_s, hold_s): (u64, u64),
    hold: &Sides,
    tripped: &Tripped,
    evidence: f64,
    verdict: &StepVerdict,
    why: &str,
) -> Value {
    let name = match verdict {
        StepVerdict::Ok => "ok",
        StepVerdict::Pass => "pass",
        StepVerdict::LowTraffic { .. }
        | StepVerdict::LowCopies { .. }
        | StepVerdict::Unsettled(_)
        | StepVerdict::GateUnsettled(_) => "extend",
        StepVerdict::Fail(_) => "fail",
    };
    let mut record = json!({
        "step": at.step + 1, "steps": at.steps, "target": at.target,
        "weight": f64::from(at.weight) / 100.0,
        "held_s": held_s, "hold_s": hold_s,
        "target_figures": side_json(&hold.target),
        "stable_figures": side_json(&hold.stable),
        "error_ratio_log_evidence": evidence,
        "guard_tripped": tripped.guard,
        "verdict": name, "why": why,
    });
    if at.shadowed {
        record["copy_figures"] = copies_json(&hold.copies);
        record["shadow_tripped"] = json!(tripped.shadow);
    }
    record
}

/// The decision log: JSON lines appended to `--log FILE`, if given.
pub struct Log {
    file: Option<File>,
}

impl Log {
    pub fn open(path: Option<&Path>) -> Result<Log, Fail> {
        let file = match path {
            None => None,
            Some(p) => Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| {
                        Fail::Usage(format!("cannot open the log {}: {e}", p.display()))
                    })?,
            ),
        };
        Ok(Log { file })
    }

    /// One record: `event` and its fields, stamped with the time.
    pub fn write(&mut self, event: &str, fields: Value) {
        let Some(file) = &mut self.file else {
            return;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut record = Map::new();
        record.insert("time".into(), json!(show::rfc3339(now.as_secs() as i64)));
        record.insert("unix_ms".into(), json!(now.as_millis() as u64));
        record.insert("event".into(), json!(event));
        if let Value::Object(more) = fields {
            record.extend(more);
        }
        // A log that cannot be written must not stop a rollout (nor a
        // rollback): say so once and go on.
        if let Err(e) = writeln!(file, "{}", Value::Object(record)) {
            eprintln!("turnoutctl: cannot write the decision log ({e}); going on without it");
            self.file = None;
        }
    }
}

#[cfg(test)]
mod tests;
