//! One configuration's copies in flight, and what their answers come to.
//!
//! A sampled request opens a pair: the answers it waits for are stable's
//! (a second request to the split's stable cluster), the copy's, and with
//! `noise` stable's again. Each answer comes back on its own, in any
//! order, after the user's stream has ended if need be; when the last one
//! is in, the pair is settled: compared, counted, logged, and fed to the
//! split's failure window. The host sends the requests and hands the
//! answers in; every decision about them is made here, once for both
//! builds.

use std::collections::BTreeMap;

use super::{
    compare, copy_failed, is_safe_method, mismatch_line, Answer, BodyCompare, ComparePlan, CopyEnd,
    FailureWindow, FieldTable, LogLimiter, Outcome, Part, ShadowPlan, Slot,
};
use crate::plan::Plan;

/// Which request of a pair an answer is to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    /// The split's stable cluster: the answer the copy is compared with.
    Stable,
    /// The shadow's cluster.
    Copy,
    /// The stable cluster a second time, to learn what is noise.
    Noise,
}

/// An answer as the host received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub end: CopyEnd,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
    /// From the request's dispatch to its answer.
    pub latency_ms: Option<u64>,
}

impl Reply {
    /// A request that got no answer (refused at once, reset, cancelled).
    pub fn none() -> Reply {
        Reply {
            end: CopyEnd::NoAnswer,
            headers: Vec::new(),
            body: Vec::new(),
            latency_ms: None,
        }
    }

    /// An answer Envoy handed back for a callout: its `:status`, and
    /// whether it is Envoy's own reply for a request that timed out (504)
    /// or never reached an upstream (503), which real upstream answers
    /// tell apart by `x-envoy-upstream-service-time`.
    pub fn of(headers: Vec<(Vec<u8>, Vec<u8>)>, body: Vec<u8>, latency_ms: Option<u64>) -> Reply {
        let header = |name: &[u8]| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_slice())
        };
        let status = header(b":status")
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse::<u16>().ok());
        let upstream = header(b"x-envoy-upstream-service-time").is_some();
        let end = match status {
            None => CopyEnd::NoAnswer,
            Some(504) if !upstream && body.starts_with(b"upstream request timeout") => {
                CopyEnd::TimedOut
            }
            Some(503) if !upstream && body.starts_with(b"upstream connect error") => {
                CopyEnd::NoAnswer
            }
            Some(503) if !upstream && body.starts_with(b"no healthy upstream") => CopyEnd::NoAnswer,
            Some(status) => CopyEnd::Answered(status),
        };
        Reply {
            end,
            headers,
            body,
            latency_ms,
        }
    }

    fn status(&self) -> u16 {
        match self.end {
            CopyEnd::Answered(status) => status,
            CopyEnd::NoAnswer | CopyEnd::TimedOut => 0,
        }
    }
}

/// What opening a pair came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// Send the requests of these sides, and hand their answers in.
    Pair(u64),
    /// Not sent, counted `skipped`: too many copies in flight.
    Skipped,
    /// Not sent, not counted: the split's copies have stopped.
    Stopped,
}

/// What a settled pair asks of the host: counts, and lines for the log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settled {
    pub split: usize,
    pub outcome: Option<Outcome>,
    pub parts: Vec<Part>,
    /// The fields that differ, and those that were noise, by slot (a new
    /// slot's counter is defined under `label` first).
    pub fields: Vec<(Slot, String)>,
    pub noise: Vec<(Slot, String)>,
    /// The copy's latency, when it answered.
    pub latency_ms: Option<u64>,
    /// The mismatch line, at most one per split per second.
    pub mismatch: Option<String>,
    /// The split's copies stop now: show it and log this line.
    pub stopped: Option<String>,
}

/// A pair waiting for its answers.
struct Pair {
    split: usize,
    /// The worker that sent it, whose copies in flight it counts in.
    worker: u32,
    /// A write: stable's answer is the user's, compared without its body.
    write: bool,
    method: Vec<u8>,
    path: Vec<u8>,
    trace_id: String,
    answers: BTreeMap<Side, Reply>,
    waiting: usize,
}

/// One shadowed split's state.
struct SplitBook {
    failures: FailureWindow,
    fields: FieldTable,
    noise: FieldTable,
    /// Copies waiting, by worker (`max_in_flight` bounds each).
    in_flight: BTreeMap<u32, u32>,
    /// Another worker (or an earlier configuration with the same split)
    /// stopped the copies: this one follows.
    followed: bool,
}

/// Every shadowed split's pairs and counts, for one configuration (one
/// worker's in the wasm build).
pub struct Book {
    splits: Vec<Option<SplitBook>>,
    pairs: BTreeMap<u64, Pair>,
    next: u64,
    log: LogLimiter,
}

impl Book {
    pub fn of(plan: &Plan) -> Book {
        let splits = plan
            .splits
            .iter()
            .map(|split| {
                let shadow = split.shadow.as_ref()?;
                Some(SplitBook {
                    failures: FailureWindow::new(shadow),
                    fields: FieldTable::new(),
                    noise: FieldTable::new(),
                    in_flight: BTreeMap::new(),
                    followed: false,
                })
            })
            .collect();
        Book {
            splits,
            pairs: BTreeMap::new(),
            next: 1,
            log: LogLimiter::new(plan.splits.len()),
        }
    }

    /// Whether any split has a shadow.
    pub fn any(&self) -> bool {
        self.splits.iter().any(Option::is_some)
    }

    /// Opens a pair for a request of `split` that was sampled for a copy;
    /// `noise` asks for stable's answer twice.
    pub fn open(
        &mut self,
        plan: &ShadowPlan,
        split: usize,
        request: (&[u8], &[u8], &str),
        noise: bool,
        worker: u32,
    ) -> Opened {
        let Some(Some(book)) = self.splits.get_mut(split) else {
            return Opened::Stopped;
        };
        if book.failures.is_tripped() || book.followed {
            return Opened::Stopped;
        }
        let in_flight = book.in_flight.entry(worker).or_default();
        if *in_flight >= plan.max_in_flight {
            return Opened::Skipped;
        }
        *in_flight += 1;
        let id = self.next;
        self.next += 1;
        let (method, path, trace_id) = request;
        self.pairs.insert(
            id,
            Pair {
                split,
                worker,
                write: !is_safe_method(method),
                method: method.to_vec(),
                path: path.to_vec(),
                trace_id: trace_id.to_string(),
                answers: BTreeMap::new(),
                waiting: if noise { 3 } else { 2 },
            },
        );
        Opened::Pair(id)
    }

    /// Whether split `split`'s copies have stopped here, by its own
    /// window or by following.
    pub fn stopped(&self, split: usize) -> bool {
        self.splits
            .get(split)
            .and_then(Option::as_ref)
            .is_some_and(|b| b.followed || b.failures.is_tripped())
    }

    /// Stops split `split`'s copies because they stopped elsewhere.
    pub fn follow(&mut self, split: usize) {
        if let Some(Some(book)) = self.splits.get_mut(split) {
            book.followed = true;
        }
    }

    /// The sides a pair sends, in order.
    pub fn sides(noise: bool) -> &'static [Side] {
        if noise {
            &[Side::Stable, Side::Copy, Side::Noise]
        } else {
            &[Side::Stable, Side::Copy]
        }
    }

    /// One answer of pair `id` (`now_s`: the host's clock in seconds, for
    /// the failure window and the log's rate). `Some` when it was the
    /// pair's last: what the host must count and log.
    pub fn answer(
        &mut self,
        plan: &Plan,
        id: u64,
        side: Side,
        reply: Reply,
        now_s: i64,
    ) -> Option<Settled> {
        let pair = self.pairs.get_mut(&id)?;
        if pair.answers.insert(side, reply).is_none() {
            pair.waiting = pair.waiting.saturating_sub(1);
        }
        if pair.waiting > 0 {
            return None;
        }
        let pair = self.pairs.remove(&id)?;
        let split = plan.splits.get(pair.split)?;
        let shadow = split.shadow.as_ref()?;
        let book = self.splits.get_mut(pair.split)?.as_mut()?;
        if let Some(n) = book.in_flight.get_mut(&pair.worker) {
            *n = n.saturating_sub(1);
        }
        let mut settled = Settled {
            split: pair.split,
            ..Settled::default()
        };
        let (Some(stable), Some(copy)) = (
            pair.answers.get(&Side::Stable),
            pair.answers.get(&Side::Copy),
        ) else {
            return Some(settled);
        };
        settled.latency_ms = matches!(copy.end, CopyEnd::Answered(_))
            .then_some(copy.latency_ms)
            .flatten();
        // Without stable's answer there is nothing to compare with, and
        // nothing to hold against the copy: counted as skipped.
        let CopyEnd::Answered(stable_status) = stable.end else {
            settled.outcome = Some(Outcome::Skipped);
            return Some(settled);
        };
        let running = !book.failures.is_tripped();
        book.failures.advance(now_s);
        book.failures
            .record(now_s, copy_failed(stable_status, copy.end));
        if let Some(trip) = book.failures.judge().filter(|_| running) {
            settled.stopped = Some(trip.log_line(&split.name, &shadow.cluster));
        }
        settled.outcome = Some(match copy.end {
            CopyEnd::NoAnswer => Outcome::Error,
            CopyEnd::TimedOut => Outcome::Timeout,
            CopyEnd::Answered(_) => {
                let (s, sh) = answer(stable);
                let (c, ch) = answer(copy);
                let noise = pair
                    .answers
                    .get(&Side::Noise)
                    .filter(|n| matches!(n.end, CopyEnd::Answered(_)));
                let nh = noise.map(answer);
                let second = match (noise, &nh) {
                    (Some(n), Some((status, headers))) => Some(Answer {
                        status: *status,
                        headers,
                        body: &n.body,
                    }),
                    _ => None,
                };
                // A write's stable answer is the user's own, whose body is
                // not read: in the wasm build that would make Envoy enter
                // the VM for every response body of every request.
                let without_body;
                let plan = if pair.write {
                    without_body = ComparePlan {
                        body: BodyCompare::None,
                        ..shadow.compare.clone()
                    };
                    &without_body
                } else {
                    &shadow.compare
                };
                let comparison = compare(
                    plan,
                    &Answer {
                        status: s,
                        headers: &sh,
                        body: &stable.body,
                    },
                    &Answer {
                        status: c,
                        headers: &ch,
                        body: &copy.body,
                    },
                    second.as_ref(),
                );
                let label = |table: &mut FieldTable, f: &String| {
                    let slot = table.slot(f);
                    (slot, table.label(slot.index).to_string())
                };
                settled.fields =
                    dedup(comparison.fields.iter().map(|f| label(&mut book.fields, f)));
                settled.noise = dedup(
                    comparison
                        .noise_fields
                        .iter()
                        .map(|f| label(&mut book.noise, f)),
                );
                settled.parts = comparison.parts.clone();
                if comparison.outcome == Outcome::Mismatch
                    && self.log.allow(pair.split, now_s).is_some()
                {
                    settled.mismatch = Some(mismatch_line(
                        &split.name,
                        &pair.method,
                        &pair.path,
                        s,
                        c,
                        &comparison,
                        Some(&pair.trace_id)
                            .filter(|t| !t.is_empty())
                            .map(String::as_str),
                    ));
                }
                comparison.outcome
            }
        });
        Some(settled)
    }
}

/// Header names and values, borrowed.
type Headers<'a> = Vec<(&'a [u8], &'a [u8])>;

/// A reply's status and its headers as the comparison reads them.
fn answer(r: &Reply) -> (u16, Headers<'_>) {
    let headers = r.headers.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    (r.status(), headers)
}

/// Each slot once per pair (`_other` may stand for several fields).
fn dedup(slots: impl Iterator<Item = (Slot, String)>) -> Vec<(Slot, String)> {
    let mut out: Vec<(Slot, String)> = Vec::new();
    for (slot, label) in slots {
        match out.iter_mut().find(|(s, _)| s.index == slot.index) {
            Some(seen) => seen.0.new |= slot.new,
            None => out.push((slot, label)),
        }
    }
    out
}
