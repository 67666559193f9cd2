//! `turnoutctl explain`: where would this user's request go, and why? The
//! request is handed to the filter's own `decide::evaluate`, so the answer
//! is the filter's: the split, the cluster, the reason and the bucket, with
//! the weights in effect at that moment and what the schedule does next.

use serde_json::{json, Value};
use turnout::bucket::{Bucket, BUCKETS};
use turnout::decide::{self, PlainRequest, Reason, RequestFacts, Verdict};
use turnout::keys;
use turnout::plan::{Anonymous, KeySource, Plan, SplitPlan};
use turnout::shadow;

use crate::check::split_json;
use crate::fail::Fail;
use crate::input::Input;
use crate::show;

/// The request to explain, as given on the command line.
pub struct Ask {
    pub user: Option<String>,
    pub route: Option<String>,
    pub path: Option<String>,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub cookies: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub at: i64,
    pub json: bool,
}

pub fn run(input: &Input, ask: &Ask) -> Result<(), Fail> {
    let (plan, _) = input.plan()?;
    let request = build(&plan, ask);
    let key = user_key(&plan, &request);
    let active = plan.weights_at(ask.at);
    let verdict = decide::evaluate(&plan, &active, &request, || 0);
    let explained = Explained {
        plan: &plan,
        ask,
        key: key.as_ref(),
        verdict,
    };
    if ask.json {
        outln!("{:#}", explained.to_json());
    } else {
        out!("{}", explained.to_text());
    }
    Ok(())
}

/// The request the filter would see: `--user` goes where the config looks
/// first (its first `user_key` source), the rest as given.
fn build(plan: &Plan, ask: &Ask) -> PlainRequest {
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    let (mut cookies, mut query) = (Vec::new(), Vec::new());
    if let Some(user) = &ask.user {
        match plan.user_key.first() {
            Some(KeySource::Header(h)) => headers.push((h.clone(), user.clone().into_bytes())),
            Some(KeySource::Cookie(c)) => cookies.push((c.clone(), user.clone())),
            Some(KeySource::Query(q)) => query.push((q.clone(), user.clone())),
            None => {}
        }
    }
    headers.extend(
        ask.headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone().into_bytes())),
    );
    cookies.extend(ask.cookies.iter().cloned());
    query.extend(ask.query.iter().cloned());
    if !cookies.is_empty() {
        let pairs: Vec<String> = cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
        match headers.iter_mut().find(|(n, _)| n == "cookie") {
            Some((_, v)) => v.extend(format!("; {}", pairs.join("; ")).bytes()),
            None => headers.push(("cookie".into(), pairs.join("; ").into_bytes())),
        }
    }
    let mut path = ask.path.clone();
    if !query.is_empty() {
        let base = path.unwrap_or_default();
        let sep = if base.contains('?') { '&' } else { '?' };
        let pairs: Vec<String> = query
            .iter()
            .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
            .collect();
        path = Some(format!("{base}{sep}{}", pairs.join("&")));
    }
    PlainRequest {
        route_name: ask.route.clone(),
        path,
        method: Some(ask.method.to_ascii_uppercase()),
        headers,
    }
}

/// Percent-encoding of everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The user key the filter would read, and from where: the first source
/// that holds a non-empty one, as `decide` reads it.
fn user_key(plan: &Plan, request: &PlainRequest) -> Option<(Vec<u8>, String)> {
    plan.user_key.iter().find_map(|source| {
        let (value, from) = match source {
            KeySource::Header(h) => (request.header(h).map(<[u8]>::to_vec), format!("header {h}")),
            KeySource::Cookie(c) => (
                request
                    .header("cookie")
                    .and_then(|v| keys::cookie(v, c.as_bytes()).map(<[u8]>::to_vec)),
                format!("cookie {c}"),
            ),
            KeySource::Query(q) => (
                request
                    .path()
                    .and_then(|p| keys::query(p, q.as_bytes()).map(|v| v.into_owned())),
                format!("query {q}"),
            ),
        };
        value.filter(|v| !v.is_empty()).map(|v| (v, from))
    })
}

struct Explained<'a> {
    plan: &'a Plan,
    ask: &'a Ask,
    key: Option<&'a (Vec<u8>, String)>,
    verdict: Verdict<'a>,
}

impl Explained<'_> {
    fn to_text(&self) -> String {
        let mut out = String::new();
        let mut line = |label: &str, text: String| out.push_str(&format!("{label:<9} {text}\n"));
        line("request", self.request_text());
        match self.verdict {
            Verdict::Pass => line(
                "verdict",
                "no split takes this request: it passes untouched".into(),
            ),
            Verdict::Refuse(r) => {
                let split = r
                    .split
                    .map_or("(no split)".into(), |i| self.plan.splits[i].name.clone());
                line("split", split);
                line(
                    "verdict",
                    format!(
                        "answered by turnout: 503 (mode {}), Retry-After: {}",
                        r.mode.as_str(),
                        r.retry_after
                    ),
                );
                line("body", r.body.to_string());
            }
            Verdict::Route(d) => {
                let split = &self.plan.splits[d.split];
                line(
                    "split",
                    format!("{} ({})", split.name, show::matcher(&split.matcher)),
                );
                if self.random_anonymous(d.reason) {
                    line(
                        "cluster",
                        "drawn at random per request (\"anonymous\": \"random\"), by weight".into(),
                    );
                } else {
                    line("cluster", split.clusters[d.cluster].clone());
                }
                line("reason", d.reason.as_str().into());
                line("bucket", self.bucket_text(split, d.reason));
                line("weights", format!("at {}", show::rfc3339(self.ask.at)));
                for text in clusters_text(split, self.ask.at) {
                    out.push_str(&format!("  {text}\n"));
                }
                if let Some(text) = self.shadow_text() {
                    out.push_str(&format!("{:<9} {text}\n", "shadow"));
                }
            }
        }
        out
    }

    /// Whether the request is copied by its split's shadow, and how.
    fn shadow_text(&self) -> Option<String> {
        let Verdict::Route(d) = self.verdict else {
            return None;
        };
        let shadow = self.plan.splits[d.split].shadow.as_ref()?;
        let method = self.ask.method.to_ascii_uppercase();
        let copied = shadow::sample(self.plan, &self.verdict, method.as_bytes(), || 0).is_some();
        Some(if copied {
            format!(
                "copied ({} of such requests): {}",
                show::pct(shadow.percent.into()),
                show::shadow(shadow)
            )
        } else if shadow.percent == 0 {
            format!(
                "not copied: the shadow copies 0 %; {}",
                show::shadow(shadow)
            )
        } else if d.cluster != 0 {
            format!(
                "not copied: only requests sent to stable are; {}",
                show::shadow(shadow)
            )
        } else {
            format!(
                "not copied: {method} is not one of the methods; {}",
                show::shadow(shadow)
            )
        })
    }

    fn request_text(&self) -> String {
        let mut parts = vec![self.ask.method.to_ascii_uppercase()];
        if let Some(r) = &self.ask.route {
            parts.push(format!("route {r:?}"));
        }
        if let Some(p) = &self.ask.path {
            parts.push(format!("path {p:?}"));
        }
        parts.push(match self.key {
            Some((k, from)) => format!("user {:?} ({from})", String::from_utf8_lossy(k)),
            None => "no user key".into(),
        });
        parts.join(", ")
    }

    fn random_anonymous(&self, reason: Reason) -> bool {
        reason == Reason::Anonymous && self.plan.anonymous == Anonymous::Random
    }

    /// The bucket, computed with `Bucket::of` even when the decision did
    /// not use it, and labelled so.
    fn bucket_text(&self, split: &SplitPlan, reason: Reason) -> String {
        let Some((key, _)) = self.key else {
            if self.random_anonymous(reason) {
                return "drawn per request: the request has no user key".into();
            }
            let tried: Vec<String> = self.plan.user_key.iter().map(source_text).collect();
            return format!(
                "none: no user key (tried {}); keyless requests go to stable",
                if tried.is_empty() {
                    "nothing: the config reads no key".into()
                } else {
                    tried.join(", ")
                }
            );
        };
        let bucket = Bucket::of(split.salt.as_bytes(), key);
        let hash = format!(
            "XXH64({:?}) mod {BUCKETS}",
            format!("{}:{}", split.salt, String::from_utf8_lossy(key))
        );
        let by_bucket = &split.clusters[bucket_cluster(self.plan, split, self.ask.at, bucket)];
        match reason {
            Reason::Bucket => format!("{} ({hash})", bucket.0),
            other => format!(
                "{} ({hash}; not used: the decision is a {}; by bucket it would be {by_bucket})",
                bucket.0,
                other.as_str()
            ),
        }
    }

    fn to_json(&self) -> Value {
        let at = show::rfc3339(self.ask.at);
        let user = self
            .key
            .map(|(k, from)| json!({"key": String::from_utf8_lossy(k), "from": from}));
        match self.verdict {
            Verdict::Pass => json!({"verdict": "pass", "at": at, "user": user}),
            Verdict::Refuse(r) => json!({
                "verdict": "refuse",
                "at": at,
                "user": user,
                "split": r.split.map(|i| &self.plan.splits[i].name),
                "mode": r.mode.as_str(),
                "status": 503,
                "retry_after": r.retry_after,
                "body": r.body,
            }),
            Verdict::Route(d) => {
                let split = &self.plan.splits[d.split];
                let bucket = self
                    .key
                    .map(|(k, _)| Bucket::of(split.salt.as_bytes(), k).0);
                json!({
                    "verdict": "route",
                    "at": at,
                    "user": user,
                    "split": split.name,
                    "cluster": if self.random_anonymous(d.reason) {
                        Value::Null
                    } else {
                        split.clusters[d.cluster].clone().into()
                    },
                    "reason": d.reason.as_str(),
                    "bucket": bucket,
                    "bucket_used": d.reason == Reason::Bucket,
                    "weights": split_json(split, self.ask.at),
                    "shadow": self.shadow_text(),
                })
            }
        }
    }
}

fn source_text(source: &KeySource) -> String {
    match source {
        KeySource::Header(h) => format!("header {h}"),
        KeySource::Cookie(c) => format!("cookie {c}"),
        KeySource::Query(q) => format!("query {q}"),
    }
}

/// The cluster a bucket owns at `now`, rollback aside.
fn bucket_cluster(plan: &Plan, split: &SplitPlan, now: i64, bucket: Bucket) -> usize {
    let index = plan
        .splits
        .iter()
        .position(|s| s.name == split.name)
        .unwrap_or_default();
    let active = plan.weights_at(now);
    decide::cluster_of(
        active.bounds.get(index).map_or(&[][..], Vec::as_slice),
        bucket,
    )
}

/// One line per cluster: the stable side's share, then each target's weight,
/// buckets and next schedule step.
fn clusters_text(split: &SplitPlan, now: i64) -> Vec<String> {
    let targets = show::targets_at(split, now);
    let taken = targets.last().map_or(0, |t| t.end);
    let width = split.clusters.iter().map(String::len).max().unwrap_or(0);
    let mut lines = vec![format!(
        "{:<width$}  stable: {} (buckets {taken}..{BUCKETS})",
        split.clusters[0],
        show::pct((BUCKETS - taken).into())
    )];
    for t in &targets {
        lines.push(format!(
            "{:<width$}  {} (buckets {}..{}){}",
            t.cluster,
            show::pct(t.weight.into()),
            t.first,
            t.end,
            t.next()
        ));
    }
    if split.rollback {
        lines.push("rollback is on: every request of the split goes to stable".into());
    }
    lines
}
